FROM registry.fedoraproject.org/fedora-minimal:40
RUN dnf5 --version || true
RUN --mount=type=cache,target=/var/cache/dnf \
    microdnf install -y --setopt=tsflags=nodocs python3 dumb-init
USER 1001
ENTRYPOINT ["dumb-init", "--"]
CMD ["python3", "-m", "http.server"]
