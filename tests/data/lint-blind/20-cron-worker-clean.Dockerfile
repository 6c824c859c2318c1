ARG ALPINE_VERSION=3.20
FROM alpine:${ALPINE_VERSION} AS base
RUN apk add --no-cache dcron libcap tini python3 \
    && addgroup -S worker && adduser -S -G worker worker \
    && chown worker:worker /usr/sbin/crond \
    && setcap cap_setgid=ep /usr/sbin/crond
USER worker

FROM base AS worker
COPY --chown=worker:worker crontab /etc/crontabs/worker
COPY --chown=worker:worker jobs/ /home/worker/jobs/
ENTRYPOINT ["/sbin/tini", "--"]
CMD ["crond", "-f", "-l", "2"]
