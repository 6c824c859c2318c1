"""The typed seams of the registry layer: what commands need of a registry, and what a
registry's provider does for it. Pure: protocols and a value type, no I/O.

- :class:`Registry` is what build-push's guard and lease, prune and promote call (promote
  also streams, mounts and pushes blobs: :class:`ReadsBytes` is a stream's one method). The real
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
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

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


class ReadsBytes(Protocol):
    """A stream of bytes (a blob being read): ``read`` returns ``b""`` at its end."""

    def read(self, size: int = -1, /) -> bytes | None: ...


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

    def immutable_tags(self, api: RegistryApi, repository: str) -> str | None:
        """The registry's own word that ``repository``'s tags are immutable server-side
        (ECR ``imageTagMutability: IMMUTABLE``, Artifact Registry ``immutableTags``), as a
        sentence; ``None`` where they are not or the registry does not tell. There
        build-push writes no claim or temporary tag: the registry's refusal is the guard."""


@runtime_checkable
class ListsRepositories(Protocol):
    """A provider that lists a registry's repositories through its own API (GitLab's
    projects and groups, Harbor's projects), where the registry API's ``_catalog`` is not
    open to users. Providers without it are listed through ``_catalog``."""

    def repositories(self, api: RegistryApi, prefix: str) -> list[str]:
        """Every repository under ``prefix`` (``""``: all this login may see), full paths."""


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

    def list_repositories(self, prefix: str) -> list[str]:
        """Every repository under ``prefix/`` (``""``: the whole registry)."""

    def image_config(
        self, repository: str, ref: str, platform: Platform | None = None
    ) -> dict[str, Any]: ...

    def referrers(self, repository: str, digest: str) -> list[str] | None:
        """Manifests whose subject is ``digest`` (OCI 1.1 referrers API); ``None`` where
        the registry has no such API."""

    # -- blobs ---------------------------------------------------------------------------

    def get_blob(self, repository: str, digest: str, *, max_bytes: int = ...) -> bytes: ...

    def has_blob(
        self, repository: str, digest: str, *, actions: tuple[str, ...] = ("pull", "push")
    ) -> bool: ...

    def upload_blob(self, repository: str, data: bytes) -> str: ...

    def open_blob(
        self, repository: str, digest: str, *, size: int | None = None
    ) -> AbstractContextManager[ReadsBytes]:
        """A blob's bytes as a stream, its digest (and ``size``) checked as it ends."""

    def mount_blob(self, repository: str, digest: str, from_repository: str) -> bool:
        """Mount a blob of ``from_repository`` of the same registry: ``True`` when the
        registry did (201); ``False`` when the caller must upload it."""

    def push_blob(self, repository: str, digest: str, size: int, source: ReadsBytes) -> None:
        """Upload a blob of any size from a stream, memory bounded."""

    # -- deleting, through the provider --------------------------------------------------

    def delete_manifest(self, repository: str, ref: str) -> None:
        """Delete by digest (every tag on it) or by tag where the provider can."""

    def delete_refusal(self, repository: str) -> str | None:
        """``None`` when deleting works here; else why not (a sentence)."""

    def can_delete(self, repository: str) -> bool: ...

    def check_access(self, repository: str, *, delete: bool, untagged: bool) -> None: ...

    def versions(self, repository: str) -> Sequence[Version]: ...

    def refused_as_last(self) -> frozenset[str]: ...

    def immutable_tags(self, repository: str) -> str | None:
        """Why ``repository``'s tags are immutable server-side, or ``None``."""
