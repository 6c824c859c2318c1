FROM alpine:3.20
RUN apk add --no-cache build-base cmake
COPY . /src
RUN cmake -S /src -B /build && cmake --build /build
USER 1000
ENTRYPOINT ["/sbin/tini", "--", "/build/app"]
