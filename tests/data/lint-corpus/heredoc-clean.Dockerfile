# syntax=docker/dockerfile:1.7
FROM debian:bookworm-slim
RUN <<-EOT bash
	set -eux
	apt-get update
	apt-get install -y --no-install-recommends ca-certificates tini
	rm -rf /var/lib/apt/lists/*
	useradd -l -u 10001 app
	EOT
COPY <<EOF /etc/app.conf
apt-get install -y this-is-data-not-a-command
EOF
USER app
ENTRYPOINT ["tini", "--", "/usr/local/bin/app"]
