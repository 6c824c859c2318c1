"""Manifests imgtag writes itself, and digests of bytes. Pure, no I/O.

A *marker* is a tiny OCI manifest with no layers, unique by its annotations: build-push's
claim and prune's untag placeholder are markers. Its config is the OCI empty descriptor,
which must be in the repository before the marker is pushed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

from tagger.registry.mediatypes import EMPTY_CONFIG, EMPTY_CONFIG_TYPE, OCI_MANIFEST


def sha256_digest(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``.

    >>> sha256_digest(b"{}")
    'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a'
    """
    return "sha256:" + hashlib.sha256(data).hexdigest()


def marker_manifest(annotations: Mapping[str, str]) -> bytes:
    """A tiny OCI manifest with no layers, made unique by its ``annotations``: a claim of
    build-push, a placeholder of prune. Its config is :data:`EMPTY_CONFIG`, which must be
    in the repository (``upload_blob``) before the manifest is pushed.

    >>> len(marker_manifest({"a": "1"})) < 300
    True
    """
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": EMPTY_CONFIG_TYPE,
            "digest": sha256_digest(EMPTY_CONFIG),
            "size": len(EMPTY_CONFIG),
        },
        "layers": [],
        "annotations": dict(annotations),
    }
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
