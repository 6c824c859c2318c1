ARG PYTHON_VERSION=3.12
ARG VARIANT
FROM python:${PYTHON_VERSION}-slim AS base
RUN pip install --no-cache-dir uvicorn
FROM base
USER 10001
ENTRYPOINT ["tini", "--"]
CMD ["uvicorn", "app:app"]
