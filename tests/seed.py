"""Seed images into a real registry through its API (no engine): fast fixtures for client,
build-push and prune tests. Does I/O against the registry given.

Each image is a real, pullable image: gzip tar layers with one file each (one layer, or
as many as :func:`seed_layers` is given), and a config whose ``created`` and labels the
caller chooses.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Mapping, Sequence

from tagger.registry.client import RegistryClient
from tagger.registry.mediatypes import DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST


def _layer(content: str) -> tuple[bytes, str]:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        data = content.encode()
        info = tarfile.TarInfo("content.txt")
        info.size, info.mtime, info.mode = len(data), 0, 0o644
        tar.addfile(info, io.BytesIO(data))
    diff_id = "sha256:" + hashlib.sha256(raw.getvalue()).hexdigest()
    return gzip.compress(raw.getvalue(), mtime=0), diff_id


def seed_image(
    client: RegistryClient,
    repository: str,
    tag: str,
    content: str,
    *,
    created: str | None = "2026-11-01T00:00:00Z",
    labels: Mapping[str, str] | None = None,
    media_type: str = DOCKER_MANIFEST,
) -> str:
    """Push a one-layer image under ``tag``; return its manifest digest."""
    return seed_layers(
        client, repository, tag, [content], created=created, labels=labels, media_type=media_type
    )


def seed_layers(
    client: RegistryClient,
    repository: str,
    tag: str,
    contents: Sequence[str],
    *,
    created: str | None = "2026-11-01T00:00:00Z",
    labels: Mapping[str, str] | None = None,
    media_type: str = DOCKER_MANIFEST,
    architecture: str = "amd64",
) -> str:
    """Push an image with one layer per item of ``contents`` (bottom first: images that
    share their first contents share those layers) under ``tag``; return its digest."""
    return seed_blobs(
        client,
        repository,
        tag,
        [_layer(content) for content in contents],
        created=created,
        labels=labels,
        media_type=media_type,
        architecture=architecture,
    )


def seed_blobs(
    client: RegistryClient,
    repository: str,
    tag: str,
    layers: Sequence[tuple[bytes, str]],
    *,
    created: str | None = "2026-11-01T00:00:00Z",
    labels: Mapping[str, str] | None = None,
    media_type: str = DOCKER_MANIFEST,
    architecture: str = "amd64",
) -> str:
    """Push an image whose layers are the given gzip blobs with their diff_ids (bottom
    first), whatever bytes they hold (hostile layers); return its digest."""
    config: dict[str, object] = {
        "architecture": architecture,
        "os": "linux",
        "config": {"Labels": dict(labels or {})},
        "rootfs": {"type": "layers", "diff_ids": [diff_id for _, diff_id in layers]},
    }
    if created is not None:
        config["created"] = created
    config_raw = json.dumps(config, sort_keys=True).encode()
    config_digest = client.upload_blob(repository, config_raw)
    layer_digests = [client.upload_blob(repository, layer) for layer, _ in layers]
    oci = media_type == OCI_MANIFEST
    manifest = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json"
            if oci
            else "application/vnd.docker.container.image.v1+json",
            "digest": config_digest,
            "size": len(config_raw),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip"
                if oci
                else "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "digest": digest,
                "size": len(layer),
            }
            for digest, (layer, _) in zip(layer_digests, layers, strict=True)
        ],
    }
    raw = json.dumps(manifest, sort_keys=True).encode()
    return client.put_manifest(repository, tag, raw, media_type)


_ARCHES = ("amd64", "arm64", "ppc64le", "s390x", "riscv64")


def seed_index(
    client: RegistryClient,
    repository: str,
    tag: str,
    child_digests: Sequence[str],
    media_type: str = OCI_INDEX,
) -> str:
    """Push an index (OCI image index or Docker manifest list) under ``tag`` whose
    ``manifests`` are ``child_digests`` (already in ``repository``); return its digest."""
    entries = []
    for number, digest in enumerate(child_digests):
        child = client.get_manifest(repository, digest)
        entries.append(
            {
                "mediaType": child.media_type,
                "digest": digest,
                "size": len(child.raw),
                # Distinct platforms, as a multi-arch build has.
                "platform": {"os": "linux", "architecture": _ARCHES[number % len(_ARCHES)]},
            }
        )
    doc = {"schemaVersion": 2, "mediaType": media_type, "manifests": entries}
    raw = json.dumps(doc, sort_keys=True).encode()
    return client.put_manifest(repository, tag, raw, media_type)
