ARG BASE=ubuntu
FROM ${BASE}
RUN echo hello
USER 1000
CMD ["bash"]
