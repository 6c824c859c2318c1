FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends g++ make \
    && rm -rf /var/lib/apt/lists/*
COPY . /src
RUN make -C /src install
RUN apt-get purge -y --auto-remove g++ make
USER 1000
ENTRYPOINT ["tini", "--", "tool"]
