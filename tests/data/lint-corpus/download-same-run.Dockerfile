FROM debian:12-slim
RUN apt-get update && apt-get install -y --no-install-recommends wget tini \
    && rm -rf /var/lib/apt/lists/* \
    && wget -q -O /tmp/tool.tgz https://example.com/tool.tgz \
    && tar xzf /tmp/tool.tgz -C /opt \
    && rm -f /tmp/tool.tgz
USER 1000
ENTRYPOINT ["tini", "--", "/opt/tool/bin/tool"]
