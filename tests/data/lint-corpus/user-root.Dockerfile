FROM debian:bookworm-slim
RUN useradd -l -u 1000 app
USER app
COPY . /app
USER root
ENTRYPOINT ["tini", "--", "/app/run"]
