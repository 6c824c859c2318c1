FROM alpine:3.20 AS base
RUN adduser -D -u 1000 app
USER 1000
FROM base
COPY app /app
ENTRYPOINT ["/sbin/tini", "--", "/app"]
