FROM python:3.12-slim
USER 1000
ENTRYPOINT ["tini", "--"]
CMD exec gunicorn app:app
