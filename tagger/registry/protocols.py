"""The typed seams of the registry layer: what commands need of a registry, and what a
registry's provider does for it. Pure: protocols and a value type, no I/O.

- :class:`Registry` is what build-push's guard and lease, prune and promote call. The real
  one is :class:`tagger.registry.client.RegistryClient` (opened by
  :func:`tagger.registry.connect.open_client`); the unit tests' ``tests/fakes.py``
  satisfies it too, and mypy checks both.
- :class:`Provider` is a registry's way of deleting and listing versions (the
  distribution API's own DELETE, the GitHub packages API, the Docker Hub API, ...). The
  client routes its deletes through the provider it was opened with; a provider gets the
  registry API it may use (:class:`RegistryApi`) with each call, so neither holds the
  other and nothing is attached after construction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from tagger.registry.manifests import Manifest, ManifestInfo
from tagger.registry.platform import Platform


@dataclass(frozen=True, slots=True)
class Version:
    """One version of a package, where a registry lists versions (ghcr): a manifest
    digest, the tags on it, and when it was made and last changed."""

    id: int
    digest: str
    tags: tuple[str, ...]
    created_at: datetime | None = None
    updated_at: datetime | None = None


class RegistryApi(Protocol):
    """The registry API operations a provider may use."""

    @property
    def host(self) -> str: ...

    def head_manifest(
        self, repository: str, ref: str, *, actions: tuple[str, ...] = ("pull",)
    ) -> ManifestInfo | None: ...

    def registry_delete(self, repository: str, ref: str) -> None:
        """The distribution API's own DELETE of a manifest (by digest) or a tag."""

    def registry_delete_refusal(self, repository: str) -> str | None:
        """``None`` when the distribution API's DELETE works here; else why not."""


class Provider(Protocol):
    """A registry's way of deleting, chosen by host or ``--provider``."""

    name: str

    def check(self, api: RegistryApi, repository: str, *, delete: bool, untagged: bool) -> None:
        """Before anything is planned: raise the one-sentence error for a missing token
        (exit 2), an unknown owner (exit 5), ``--untagged`` where it means nothing (exit 2)."""

    def delete_refusal(self, api: RegistryApi, repository: str) -> str | None:
        """``None`` when deleting works here for these credentials; else the sentence that
        says why not and what to do (claims fall back, prune reports it)."""

    def delete(self, api: RegistryApi, repository: str, ref: str) -> None:
        """Delete by digest (the image, with every tag on it) or by tag (the tag alone).
        :class:`~tagger.errors.Unsupported` where a tag cannot go alone; ``NotFound`` when
        it is gone already."""

    def versions(self, api: RegistryApi, repository: str) -> Sequence[Version]:
        """Every version, tagged or not, where the registry lists them (``--untagged``)."""

    def refused_as_last(self) -> frozenset[str]:
        """Digests the registry refused to delete because they are the last tagged version."""


class Registry(Protocol):
    """What build-push's guard and lease, prune and promote need of a registry."""

    @property
    def host(self) -> str: ...

    @property
    def provider_name(self) -> str: ...

    # -- manifests and tags --------------------------------------------------------------

    def head_manifest(
        self, repository: str, ref: str, *, actions: tuple[str, ...] = ("pull",)
    ) -> ManifestInfo | None:
        """The digest ``ref`` (a tag or digest) points at, or ``None`` if there is none."""

    def get_manifest(self, repository: str, ref: str) -> Manifest: ...

    def put_manifest(self, repository: str, ref: str, raw: bytes, media_type: str) -> str:
        """Upload a manifest under ``ref`` (a tag or its digest); return its digest."""

    def list_tags(self, repository: str) -> list[str]: ...

    def image_config(
        self, repository: str, ref: str, platform: Platform | None = None
    ) -> dict[str, Any]: ...

    def referrers(self, repository: str, digest: str) -> list[str] | None:
        """Manifests whose subject is ``digest`` (OCI 1.1 referrers API); ``None`` where
        the registry has no such API."""

    # -- blobs ---------------------------------------------------------------------------

    def get_blob(self, repository: str, digest: str, *, max_bytes: int = ...) -> bytes: ...

    def has_blob(self, repository: str, digest: str) -> bool: ...

    def upload_blob(self, repository: str, data: bytes) -> str: ...

    # -- deleting, through the provider --------------------------------------------------

    def delete_manifest(self, repository: str, ref: str) -> None:
        """Delete by digest (every tag on it) or by tag where the provider can."""

    def delete_refusal(self, repository: str) -> str | None:
        """``None`` when deleting works here; else why not (a sentence)."""

    def can_delete(self, repository: str) -> bool: ...

    def check_access(self, repository: str, *, delete: bool, untagged: bool) -> None: ...

    def versions(self, repository: str) -> Sequence[Version]: ...

    def refused_as_last(self) -> frozenset[str]: ...
