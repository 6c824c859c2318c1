# syntax=docker/dockerfile:1.7
FROM debian:bookworm-slim
RUN <<EOF
set -eux
apt-get update
apt-get install -y curl
EOF
COPY <<EOF /etc/app.conf
port = 8080
EOF
USER 1000
ENTRYPOINT ["curl"]
