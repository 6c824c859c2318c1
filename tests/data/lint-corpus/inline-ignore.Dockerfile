# imgtag global ignore=IMG011
FROM ubuntu:22.04
# imgtag ignore=IMG006,IMG008
RUN apt-get update && apt-get install -y curl
USER 1000
CMD ["curl", "--version"]
