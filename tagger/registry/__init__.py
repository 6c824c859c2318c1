"""Talking to container registries, in one direction: reference → credentials → transport
→ registry API → providers.

- ``reference``: image references as the docker CLI parses them, Docker Hub hosts (pure);
- ``mediatypes``, ``manifests``, ``platform``: media types, marker manifests, choosing one
  image of an index (pure);
- ``auth``: credentials as the docker CLI finds them (reads config, runs helpers);
- ``transport``: one HTTP session per registry: TLS, auth challenges, caps, deadlines,
  retries, HTTP statuses as typed errors (network);
- ``client``: the registry API imgtag uses (network);
- ``providers``: how deleting works where the registry API cannot (ghcr.io, Docker Hub).
"""
