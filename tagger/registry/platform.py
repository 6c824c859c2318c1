"""Platforms (``os/arch[/variant]``) and choosing one image of an index: the one owner. Pure.

Every reader of an index goes through :func:`pick`: the config build-push compares
revisions with, prune's created times, ``analyze --from-registry`` and its ``--base``.
Asked for no platform, :func:`pick` takes ``linux/amd64`` (what ``docker pull`` takes on
the machines CI runs on), else the first real image; attestation manifests, which buildx
lists with platform ``unknown/unknown``, are never picked.
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


def _entries(manifests: Any) -> list[tuple[str, dict[str, Any]]]:
    """(digest, platform object) of each well-formed index entry."""
    found = []
    for entry in manifests if isinstance(manifests, list) else []:
        if not isinstance(entry, dict) or not isinstance(entry.get("digest"), str):
            continue
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
    return next((d for d, got in entries if got.get("os") != "unknown"), None)


def listed(manifests: Any) -> list[str]:
    """The platforms an index offers, as ``os/arch[/variant]`` (attestations left out).

    >>> listed([{"digest": "sha256:a", "platform": {"os": "linux", "architecture": "arm",
    ...          "variant": "v7"}}])
    ['linux/arm/v7']
    """
    return [
        str(Platform(str(got["os"]), str(got.get("architecture")), got.get("variant") or None))
        for _, got in _entries(manifests)
        if got.get("os") not in (None, "unknown")
    ]
