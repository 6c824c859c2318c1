FROM registry.access.redhat.com/ubi9/ubi-minimal:9.4
RUN microdnf install -y --nodocs --setopt=install_weak_deps=0 shadow-utils tini \
    && microdnf clean all \
    && useradd -l -r -u 1001 app
USER 1001
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["/opt/app/run"]
