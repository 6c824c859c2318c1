"""Registry providers: how deleting works on each kind of registry.

- ``base``: the :class:`~tagger.registry.providers.base.Provider` interface, the choice of
  a provider (``--provider``, ``IMGTAG_PROVIDER``, config ``provider``, else the host) and
  :class:`~tagger.registry.providers.base.ProviderClient`, the registry client whose
  deletes go through the provider (pure);
- ``oci``: Distribution/OCI, deleting through the registry API itself (I/O);
- ``ghcr``: ghcr.io, deleting package versions through the GitHub REST API (I/O);
- ``dockerhub``: Docker Hub, deleting tags through the Hub API (I/O);
- ``api``: HTTP to those management APIs: deadlines, size caps, pagination, rate limits (I/O).
"""
