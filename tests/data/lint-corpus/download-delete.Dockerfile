FROM debian:12-slim
WORKDIR /tmp
RUN apt-get update && apt-get install -y --no-install-recommends curl ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN curl -fsSLO https://example.com/tool-1.0.tar.gz
RUN tar xzf tool-1.0.tar.gz -C /opt && rm tool-1.0.tar.gz
USER 1000
ENTRYPOINT ["tini", "--", "/opt/tool/bin/tool"]
