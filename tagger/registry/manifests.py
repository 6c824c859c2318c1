"""Manifests as values: what a HEAD tells, a manifest's bytes, and digests of bytes. Pure, no I/O.

The manifests imgtag writes itself (claims, placeholders) are ``tagger.registry.markers``'s.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from tagger.errors import RegistryError


@dataclass(frozen=True, slots=True)
class ManifestInfo:
    """What a HEAD tells: the digest and media type a reference points at."""

    digest: str
    media_type: str
    size: int


@dataclass(frozen=True, slots=True)
class Manifest:
    """A manifest's raw bytes (digests are over these exact bytes) and what they are."""

    digest: str
    media_type: str
    raw: bytes

    def json(self) -> dict[str, Any]:
        try:
            doc = json.loads(self.raw)
        except ValueError as exc:
            raise RegistryError(f"the manifest {self.digest} is not JSON") from exc
        if not isinstance(doc, dict):
            raise RegistryError(f"the manifest {self.digest} is not a JSON object")
        return doc


def sha256_digest(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``.

    >>> sha256_digest(b"{}")
    'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a'
    """
    return "sha256:" + hashlib.sha256(data).hexdigest()
