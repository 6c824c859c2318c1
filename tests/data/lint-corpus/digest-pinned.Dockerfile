FROM node@sha256:4b4c6a2e8c9f1b1f3c1f0d8e8d3e2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c
USER node
ENTRYPOINT ["dumb-init", "node", "index.js"]
