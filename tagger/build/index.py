"""The OCI image index of a multi-platform build, as values. Pure.

Each platform's image is pushed under a temporary tag of the run (:func:`temp_tag`),
then the final tag gets one manifest PUT: the index of those manifests
(:func:`index_document`, one :func:`index_entry` per platform, whose ``platform`` is read
from the image's own config by :func:`config_platform`). Afterwards each temporary tag
is pointed at a unique :func:`placeholder_manifest`, which is deleted by its digest
(deleting the platform manifest's digest would break the index). The pushes and
deletes are ``tagger.build.publish``'s.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from tagger.registry.manifests import marker_manifest
from tagger.registry.mediatypes import OCI_INDEX
from tagger.registry.platform import Platform


def temp_tag(run_id: str, platform: Platform | None) -> str:
    """The temporary tag one platform's image is pushed under before the index.

    >>> temp_tag("0a1b2c3d4e5f", Platform.parse("linux/arm/v7"))
    'imgtag-tmp-0a1b2c3d4e5f-linux-arm-v7'
    """
    where = str(platform).replace("/", "-")
    return f"imgtag-tmp-{run_id}-{where}"


def build_tag(run_id: str) -> str:
    """The temporary tag a builder that pushes itself (buildx) writes its whole result to.

    >>> build_tag("0a1b2c3d4e5f")
    'imgtag-tmp-0a1b2c3d4e5f-build'
    """
    return f"imgtag-tmp-{run_id}-build"


def config_platform(config: bytes) -> dict[str, str]:
    """An index entry's ``platform`` from an image config's ``os``/``architecture``/``variant``.

    >>> config_platform(b'{"os": "linux", "architecture": "arm64", "variant": "v8"}')
    {'os': 'linux', 'architecture': 'arm64', 'variant': 'v8'}
    >>> config_platform(b'not json')
    {'os': '', 'architecture': ''}
    """
    try:
        doc = json.loads(config)
    except ValueError:
        doc = {}
    doc = doc if isinstance(doc, dict) else {}
    platform = {"os": str(doc.get("os") or ""), "architecture": str(doc.get("architecture") or "")}
    if doc.get("variant"):
        platform["variant"] = str(doc["variant"])
    return platform


def platform_text(platform: Mapping[str, str]) -> str:
    """An index entry's ``platform`` as ``os/arch[/variant]``, for messages.

    >>> platform_text({"os": "linux", "architecture": "arm64", "variant": "v8"})
    'linux/arm64/v8'
    >>> platform_text({"os": "linux", "architecture": ""})
    'linux'
    """
    return "/".join(
        v for v in (platform.get("os"), platform.get("architecture"), platform.get("variant")) if v
    )


def index_entry(
    media_type: str, digest: str, size: int, platform: Mapping[str, str]
) -> dict[str, Any]:
    """One platform's manifest as an entry of the index.

    >>> index_entry("application/vnd.oci.image.manifest.v1+json", "sha256:ab", 420,
    ...             {"os": "linux", "architecture": "amd64"})["platform"]
    {'os': 'linux', 'architecture': 'amd64'}
    """
    return {"mediaType": media_type, "digest": digest, "size": size, "platform": dict(platform)}


def index_document(entries: Sequence[Mapping[str, Any]]) -> bytes:
    """The OCI image index of ``entries``, compact, as pushed under the final tag.

    >>> index_document([])
    b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}'
    """
    return json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": list(entries)},
        separators=(",", ":"),
    ).encode()


def placeholder_manifest(nonce: str) -> bytes:
    """A manifest no other tag shares (``nonce`` makes it unique), to untag a temporary tag.

    >>> placeholder_manifest("a") != placeholder_manifest("b")
    True
    """
    return marker_manifest({"org.imgtag.placeholder": nonce})
