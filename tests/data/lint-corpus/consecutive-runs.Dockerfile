FROM alpine:3.20
RUN mkdir -p /app
# a comment between does not split them
RUN chown 1000 /app
RUN echo done > /app/done
ENV A=1
RUN echo single
USER 1000
ENTRYPOINT ["/sbin/tini", "--"]
