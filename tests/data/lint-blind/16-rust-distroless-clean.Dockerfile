FROM rust:1.77-slim-bookworm AS builder
WORKDIR /app
COPY . .
RUN cargo build --release --locked

FROM gcr.io/distroless/cc-debian12:nonroot
ADD --chmod=755 https://github.com/krallin/tini/releases/download/v0.19.0/tini-static /tini
COPY --from=builder /app/target/release/api /usr/local/bin/api
USER nonroot:nonroot
EXPOSE 8080
ENTRYPOINT ["/tini", "--", "/usr/local/bin/api"]
