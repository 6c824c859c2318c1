"""Platforms (``os/arch[/variant]``) and choosing one image of an index: the one owner. Pure.

Every reader of an index goes through :func:`pick`: the config build-push compares
revisions with, prune's created times, ``analyze --from-registry`` and its ``--base``.
Asked for no platform, :func:`pick` takes ``linux/amd64`` (what ``docker pull`` takes on
the machines CI runs on), else the first real image; attestation manifests are never
picked. :func:`is_attestation` is the one test of what an attestation is: BuildKit (buildx
provenance and SBOMs) lists them with platform ``unknown/unknown`` and the annotation
``vnd.docker.reference.type: attestation-manifest``; :func:`image_entries` is an index's
entries without them. They are still children of their index (prune keeps them with it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tagger.errors import UsageError


@dataclass(frozen=True, slots=True)
class Platform:
    """``os/arch[/variant]``.

    >>> Platform.parse("linux/arm64/v8")
    Platform(os='linux', architecture='arm64', variant='v8')
    >>> str(Platform.parse("linux/amd64"))
    'linux/amd64'
    >>> Platform.parse("linux")
    Traceback (most recent call last):
    ...
    tagger.errors.UsageError: --platform linux is not os/arch[/variant] (e.g. linux/amd64)
    """

    os: str
    architecture: str
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        parts = text.strip().split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise UsageError(f"--platform {text} is not os/arch[/variant] (e.g. linux/amd64)")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    def matches(self, entry: dict[str, Any]) -> bool:
        """Whether an index entry's ``platform`` object is this platform (any variant when
        this one names none)."""
        return (
            entry.get("os") == self.os
            and entry.get("architecture") == self.architecture
            and (self.variant is None or entry.get("variant") == self.variant)
        )

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


DEFAULT_PLATFORM = Platform("linux", "amd64")


#: The annotation BuildKit puts on an attestation manifest's index entry, and its value.
REFERENCE_TYPE = "vnd.docker.reference.type"
ATTESTATION_MANIFEST = "attestation-manifest"


def is_attestation(entry: Any) -> bool:
    """Whether an index entry is an attestation manifest (provenance, SBOM), not an image.

    >>> is_attestation({"digest": "sha256:a", "annotations": {REFERENCE_TYPE: ATTESTATION_MANIFEST},
    ...                 "platform": {"os": "unknown", "architecture": "unknown"}})
    True
    >>> is_attestation({"digest": "sha256:b", "platform": {"os": "unknown",
    ...                 "architecture": "unknown"}})
    True
    >>> is_attestation({"digest": "sha256:c", "platform": {"os": "linux", "architecture": "amd64"}})
    False
    """
    if not isinstance(entry, dict):
        return False
    annotations = entry.get("annotations")
    if isinstance(annotations, dict) and annotations.get(REFERENCE_TYPE) == ATTESTATION_MANIFEST:
        return True
    got = entry.get("platform")
    return (
        isinstance(got, dict)
        and got.get("os") == "unknown"
        and got.get("architecture")
        in (
            "unknown",
            None,
        )
    )


def image_entries(manifests: Any) -> list[dict[str, Any]]:
    """The well-formed entries of an index's ``manifests`` that are images, in order.

    >>> image_entries([{"digest": "sha256:a", "platform": {"os": "linux", "architecture": "arm64"}},
    ...                {"digest": "sha256:b", "platform": {"os": "unknown",
    ...                 "architecture": "unknown"}}, "junk"])
    [{'digest': 'sha256:a', 'platform': {'os': 'linux', 'architecture': 'arm64'}}]
    """
    return [
        entry
        for entry in (manifests if isinstance(manifests, list) else [])
        if isinstance(entry, dict)
        and isinstance(entry.get("digest"), str)
        and not is_attestation(entry)
    ]


def _entries(manifests: Any) -> list[tuple[str, dict[str, Any]]]:
    """(digest, platform object) of each well-formed image entry (attestations left out)."""
    found = []
    for entry in image_entries(manifests):
        got = entry.get("platform")
        found.append((str(entry["digest"]), got if isinstance(got, dict) else {}))
    return found


def pick(manifests: Any, platform: Platform | None = None) -> str | None:
    """The digest of the index entry for ``platform``; ``None`` when there is none.

    With ``platform=None``: linux/amd64, else the first entry that is not an attestation.

    >>> index = [{"digest": "sha256:a", "platform": {"os": "linux", "architecture": "arm64",
    ...           "variant": "v8"}}, {"digest": "sha256:b", "platform": {"os": "linux",
    ...           "architecture": "amd64"}}]
    >>> pick(index), pick(index, Platform.parse("linux/arm64"))
    ('sha256:b', 'sha256:a')
    >>> pick(index, Platform.parse("linux/arm64/v7")) is None
    True
    >>> pick([{"digest": "sha256:c", "platform": {"os": "unknown", "architecture": "unknown"}},
    ...       {"digest": "sha256:d", "platform": {"os": "linux", "architecture": "s390x"}}])
    'sha256:d'
    """
    entries = _entries(manifests)
    if platform is not None:
        return next((d for d, got in entries if platform.matches(got)), None)
    exact = next((d for d, got in entries if DEFAULT_PLATFORM.matches(got)), None)
    if exact is not None:
        return exact
    return next((d for d, _got in entries), None)


def listed(manifests: Any) -> list[str]:
    """The platforms an index offers, as ``os/arch[/variant]`` (attestations left out).

    >>> listed([{"digest": "sha256:a", "platform": {"os": "linux", "architecture": "arm",
    ...          "variant": "v7"}}])
    ['linux/arm/v7']
    """
    return [
        str(Platform(str(got["os"]), str(got.get("architecture")), got.get("variant") or None))
        for _, got in _entries(manifests)
        if got.get("os") is not None
    ]
