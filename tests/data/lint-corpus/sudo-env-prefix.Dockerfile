FROM ubuntu:22.04
RUN DEBIAN_FRONTEND=noninteractive sudo -E apt-get -yq install curl && rm -rf /var/lib/apt/lists/*
USER 1000
ENTRYPOINT ["tini", "--"]
