FROM python:3.12 AS build
RUN pip wheel --wheel-dir /wheels psycopg
FROM python:3.12-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini libpq5 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/* && useradd -l -u 10001 app
USER 10001
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["python", "-m", "app"]
