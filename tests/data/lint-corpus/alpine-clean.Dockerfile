FROM alpine:3.20
RUN apk add --no-cache curl ca-certificates tini
COPY run.sh /run.sh
USER 65534
ENTRYPOINT ["/sbin/tini", "--", "/run.sh"]
