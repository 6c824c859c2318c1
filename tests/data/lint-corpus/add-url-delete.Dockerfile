FROM alpine:3.20
ADD https://example.com/archive.zip /tmp/
RUN unzip /tmp/archive.zip -d /opt
RUN rm -rf /tmp/archive.zip
USER 1000
ENTRYPOINT ["/sbin/tini", "--", "/opt/archive/run"]
