# syntax=docker/dockerfile:1.7
FROM debian:12-slim

RUN <<EOF
set -eux
apt-get update
apt-get install -y --no-install-recommends ca-certificates curl tini
rm -rf /var/lib/apt/lists/*
useradd -l -u 1001 -m worker
EOF

COPY <<EOF /etc/worker.conf
interval=60
RUN this is not an instruction
EOF

WORKDIR /home/worker
RUN <<EOF bash
curl -fsSL -o /tmp/app.tgz https://example.com/app.tgz
tar -xzf /tmp/app.tgz -C /home/worker
rm /tmp/app.tgz
EOF
USER worker
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["/home/worker/app/run"]
