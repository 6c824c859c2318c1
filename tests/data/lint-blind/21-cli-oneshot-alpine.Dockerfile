FROM alpine
RUN apk update && apk add git openssh-client
WORKDIR /work
ENTRYPOINT ["git"]
CMD ["--help"]
