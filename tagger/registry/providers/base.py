"""The provider interface, the choice of a provider, and the client that routes deletes
through it. No I/O here (providers do theirs when asked).

Distribution-compatible deletion is not universal: ghcr.io answers a manifest DELETE with
405 ``UNSUPPORTED`` and Docker Hub deletes tags through its own API. A :class:`Provider`
says whether deleting works and deletes; :class:`ProviderClient` is the registry client
with ``can_delete`` and ``delete_manifest`` routed through it, so build-push's claims and
prune's executor stay the same on every registry.

The provider is ``--provider`` (prune), else ``IMGTAG_PROVIDER``, else the configuration's
``provider``, else the registry host: ``ghcr.io`` is ``ghcr``, Docker Hub's names are
``dockerhub``, anything else ``oci``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Protocol

from tagger.errors import RegistryError, UsageError
from tagger.registry.client import RegistryClient
from tagger.registry.reference import HUB_HOSTS, Reference
from tagger.registry.transport import Transport

PROVIDERS = ("oci", "ghcr", "dockerhub")
GHCR_HOSTS = frozenset({"ghcr.io"})
_DIGEST_RE = re.compile(r"^(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})$")


def is_digest(ref: str) -> bool:
    """Whether ``ref`` is a well-formed digest (checked before it goes into a URL).

    >>> is_digest("sha256:" + "a" * 64), is_digest("1.0.0-1"), is_digest("sha256:../x")
    (True, False, False)
    """
    return _DIGEST_RE.match(ref) is not None


def choose(
    ref: Reference,
    given: str | None = None,
    env: Mapping[str, str] | None = None,
    configured: str | None = None,
) -> str:
    """The provider's name for ``ref``: ``given`` > ``IMGTAG_PROVIDER`` > ``configured`` >
    the host. An unknown name is a usage error (exit 2) that says where to set it.

    >>> choose(Reference.parse_repository("ghcr.io/o/app"))
    'ghcr'
    >>> choose(Reference.parse_repository("user/app"))
    'dockerhub'
    >>> choose(Reference.parse_repository("127.0.0.1:5000/o/app"), env={"IMGTAG_PROVIDER": "GHCR"})
    'ghcr'
    """
    name = given or (env or {}).get("IMGTAG_PROVIDER") or configured
    if name:
        if name.strip().lower() not in PROVIDERS:
            raise UsageError(
                f"unknown provider {name!r}: set --provider, IMGTAG_PROVIDER or the config key "
                f"provider to one of {', '.join(PROVIDERS)}"
            )
        return name.strip().lower()
    if ref.registry in GHCR_HOSTS:
        return "ghcr"
    if ref.registry in HUB_HOSTS:
        return "dockerhub"
    return "oci"


class Provider(Protocol):
    """What prune and build-push need from a registry's way of deleting."""

    name: str

    def check(self, repository: str, *, delete: bool, untagged: bool) -> None:
        """Before anything is planned: raise the one-sentence error for a missing token
        (exit 2), an unknown owner (exit 5), ``--untagged`` where it means nothing (exit 2)."""

    def can_delete(self, repository: str) -> bool:
        """Whether deleting works here for these credentials (``False``: claims fall back)."""

    def delete(self, repository: str, ref: str) -> None:
        """Delete by digest (the image, with every tag on it) or by tag (the tag alone).
        :class:`~tagger.errors.Unsupported` where a tag cannot go alone; ``NotFound`` when
        it is gone already."""

    def refused_as_last(self) -> frozenset[str]:
        """Digests the registry refused to delete because they are the last tagged version."""


class ProviderClient(RegistryClient):
    """The registry API client, deleting through ``provider``."""

    def __init__(self, transport: Transport, provider_name: str) -> None:
        super().__init__(transport)
        self.provider_name = provider_name
        self._provider: Provider | None = None

    @property
    def provider(self) -> Provider:
        if self._provider is None:
            raise RegistryError("no provider attached to this client")  # a bug, not input
        return self._provider

    def attach(self, provider: Provider) -> None:
        self._provider = provider

    def registry_delete(self, repository: str, digest: str) -> None:
        """The registry API's own DELETE by digest (the ``oci`` provider's way)."""
        RegistryClient.delete_manifest(self, repository, digest)

    def registry_can_delete(self, repository: str) -> bool:
        return RegistryClient.can_delete(self, repository)

    def can_delete(self, repository: str) -> bool:
        return self.provider.can_delete(repository)

    def delete_manifest(self, repository: str, digest: str) -> None:
        self.provider.delete(repository, digest)


def attach_provider(
    client: ProviderClient, ref: Reference, env: Mapping[str, str], name: str
) -> None:
    """Give ``client`` the provider called ``name`` (see :func:`choose`)."""
    if name == "ghcr":
        from tagger.registry.providers.ghcr import GhcrProvider

        client.attach(
            GhcrProvider(env, lambda repo, digest: client.head_manifest(repo, digest) is not None)
        )
    elif name == "dockerhub":
        from tagger.registry.providers.dockerhub import DockerHubProvider

        client.attach(DockerHubProvider(env))
    else:
        from tagger.registry.providers.oci import OciProvider

        client.attach(OciProvider(client))
