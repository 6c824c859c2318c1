"""Talking to container registries, in one direction: reference → credentials → HTTP core
→ transport → registry API and providers → connect.

- ``reference``: image references as the docker CLI parses them, Docker Hub hosts, the one
  digest check (pure);
- ``mediatypes``, ``manifests``, ``platform``: media types, manifest values, choosing one
  image of an index (pure);
- ``markers``: claims, temporary tags and untag placeholders, with one owner (pure, but
  ``untag()``);
- ``protocols``: the ``Registry`` seam commands depend on and the ``Provider`` interface
  (pure);
- ``auth``: credentials as the docker CLI finds them (reads config, runs helpers);
- ``http``: the one HTTP core: retries within a budget, rate limits, caps, pages, HTTP
  statuses as typed errors (network);
- ``transport``: the registry API's scheme, TLS and authentication over the core (network);
- ``client``: the registry API imgtag uses, deleting through its provider (network);
- ``providers``: how deleting works where the registry API cannot (ghcr.io, Docker Hub);
- ``connect``: opening a client with its provider chosen.
"""
