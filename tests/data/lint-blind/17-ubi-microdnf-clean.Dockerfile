FROM registry.access.redhat.com/ubi9/ubi-minimal:9.4
ARG TINI_VERSION=v0.19.0
ADD --chmod=755 https://github.com/krallin/tini/releases/download/${TINI_VERSION}/tini /usr/local/bin/tini
RUN microdnf install -y --nodocs --setopt=install_weak_deps=0 python3.11 python3.11-pip \
    && microdnf clean all
WORKDIR /opt/app-root/src
COPY --chown=1001:0 . .
RUN python3.11 -m pip install --no-cache-dir -r requirements.txt
USER 1001
ENTRYPOINT ["/usr/local/bin/tini", "--"]
CMD ["python3.11", "-m", "app"]
