FROM centos:7
RUN yum -y update && yum -y install epel-release
RUN yum -y install --setopt=tsflags=nodocs nginx && yum clean all
RUN curl -fsSL -o /tmp/node.tar.xz https://nodejs.org/dist/v16.20.2/node-v16.20.2-linux-x64.tar.xz \
    && tar -xJf /tmp/node.tar.xz -C /usr/local --strip-components=1
COPY . /srv/app
RUN rm -f /tmp/node.tar.xz
RUN useradd -u 1000 app
USER app
CMD ["/usr/local/bin/node", "/srv/app/index.js"]
