FROM debian:bookworm-slim
RUN apt-get update \
    # the next line installs curl
    && apt-get install -y curl \

    && rm -rf /var/lib/apt/lists/*
USER 1000
ENTRYPOINT ["tini", "--"]
