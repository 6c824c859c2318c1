FROM debian:bookworm-slim
RUN echo "big" > /opt/data.bin
RUN cd /opt && rm data.bin
USER 1000
ENTRYPOINT ["tini", "--"]
