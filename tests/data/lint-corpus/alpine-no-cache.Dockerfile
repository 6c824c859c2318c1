FROM alpine:3.20
RUN apk update && apk add curl ca-certificates
COPY run.sh /run.sh
USER nobody
ENTRYPOINT ["/run.sh"]
