FROM registry.access.redhat.com/ubi9/ubi:9.4
RUN dnf install -y gcc make openssl-devel
RUN dnf install -y --setopt=install_weak_deps=false --setopt=tsflags=nodocs python3-pip && dnf clean all
COPY . /opt/app
RUN cd /opt/app && make && make install
RUN dnf remove -y gcc make && dnf clean all
USER 0
CMD /opt/app/bin/server --foreground
