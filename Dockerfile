# syntax=docker/dockerfile:1
# imgtag itself: build the wheels in one stage, install them into a slim, non-root one.
# Linted in tests/unit/test_lint_cli.py with `imgtag lint --fail-on info` and hadolint.

FROM python:3.12-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY tagger ./tagger
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.12-slim-bookworm
ARG TINI_VERSION=0.19.0-1
RUN apt-get update \
    && apt-get install -y --no-install-recommends "tini=${TINI_VERSION}" \
    && rm -rf /var/lib/apt/lists/* \
    && useradd -l -r -u 10001 -g 0 -d /work imgtag
# A bind mount, not COPY + rm: the wheels never become a layer.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index /wheels/*.whl
WORKDIR /work
USER 10001
ENTRYPOINT ["/usr/bin/tini", "--", "imgtag"]
CMD ["--help"]
