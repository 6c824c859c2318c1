FROM alpine:3.20
RUN apk add --no-cache --virtual .build-deps gcc musl-dev
COPY src /src
RUN cc -o /usr/local/bin/tool /src/tool.c
RUN apk del .build-deps
USER 1000
ENTRYPOINT ["/sbin/tini", "--", "tool"]
