"""Registry providers: how deleting works on each kind of registry. Each one satisfies
``tagger.registry.protocols.Provider``; ``tagger.registry.connect`` chooses one.

- ``oci``: Distribution/OCI, deleting through the registry API itself (I/O);
- ``ghcr``: ghcr.io, deleting package versions through the GitHub REST API (I/O);
- ``dockerhub``: Docker Hub, deleting tags through the Hub API (I/O);
- ``api``: a management API over the HTTP core: its base URL, its error text, its
  pages (I/O).
"""
