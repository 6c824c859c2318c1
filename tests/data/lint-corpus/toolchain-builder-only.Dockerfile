FROM debian:bookworm-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends gcc make libc6-dev \
    && rm -rf /var/lib/apt/lists/*
COPY . /src
RUN make -C /src
FROM gcr.io/distroless/base-debian12:nonroot
COPY --from=build /src/app /app
ENTRYPOINT ["/app"]
