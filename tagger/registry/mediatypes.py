"""Manifest media types: the one list of what imgtag reads and writes. Pure, no I/O.

Distribution answers 404 to a HEAD whose ``Accept`` lacks an OCI image's type, so an
existence check that forgot one would overwrite (``docs/registries.md``). Every request
for a manifest sends :data:`ACCEPT`; anything else a registry answers is refused.
"""

from __future__ import annotations

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"

#: Every manifest type imgtag understands, in the order of ``Accept``.
MANIFEST_TYPES = (OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST)
#: The types whose manifests list other manifests (multi-platform images).
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
ACCEPT = ", ".join(MANIFEST_TYPES)

#: The empty config of marker manifests (OCI image-spec 1.1, "Guidance for an empty
#: descriptor"): https://github.com/opencontainers/image-spec/blob/main/manifest.md
EMPTY_CONFIG = b"{}"
EMPTY_CONFIG_TYPE = "application/vnd.oci.empty.v1+json"

#: Layers whose blobs a registry may not hold (Windows base layers).
FOREIGN_LAYER_MARKERS = (
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "nondistributable",
)


def is_index(media_type: str | None) -> bool:
    """Whether ``media_type`` is an image index or a Docker manifest list.

    >>> is_index(OCI_INDEX), is_index(DOCKER_LIST), is_index(OCI_MANIFEST), is_index(None)
    (True, True, False, False)
    """
    return media_type in INDEX_TYPES
