FROM python:3.12-slim
USER 1000
ENTRYPOINT /usr/local/bin/start.sh
