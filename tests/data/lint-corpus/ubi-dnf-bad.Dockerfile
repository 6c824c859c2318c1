FROM registry.access.redhat.com/ubi9/ubi:9.4
RUN dnf install -y httpd
RUN dnf clean all
USER 1001
CMD ["httpd", "-DFOREGROUND"]
