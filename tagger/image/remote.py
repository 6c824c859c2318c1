"""An image read straight from a registry, as an :class:`~tagger.image.archive.ImageSource`.
Does I/O (HTTP, through :class:`~tagger.registry.client.RegistryClient`).

The manifest is fetched with every manifest media type in ``Accept``
(``docs/registries.md``); an index (OCI index or Docker manifest list) is resolved to one
platform by ``tagger.registry.platform.pick``. The config is a verified blob; each layer is
a blob streamed when :meth:`RemoteImage.open_layer` is entered, decompressed on the fly
(:mod:`tagger.image.layers`), its digest checked as it arrives
(https://github.com/opencontainers/image-spec/blob/main/manifest.md).
No engine is needed and nothing is written to disk.

Where the bytes came from decides the exit code: a layer that cannot be read (damaged or
truncated gzip, a tar that breaks off, bytes that do not match the digest) is a
:class:`~tagger.errors.RegistryError` (exit 5) here, while the same damage in an engine's
``docker save`` stays an :class:`~tagger.errors.ImageFormatError` (exit 2). A layer
compression imgtag cannot read (zstd by its media type) is still exit 2: no registry is
to blame for it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import IO, Any, cast

from tagger.errors import ImageFormatError, ImageNotFoundError, NotFound, RegistryError
from tagger.image.archive import LayerInfo, diff_ids, layer_history, load_json
from tagger.image.layers import opened
from tagger.registry.client import RegistryClient
from tagger.registry.mediatypes import FOREIGN_LAYER_MARKERS, is_index
from tagger.registry.platform import Platform, listed, pick
from tagger.registry.reference import Reference


class RemoteImage:
    """An image in a registry: manifest and config read at construction, layers streamed."""

    def __init__(
        self, client: RegistryClient, ref: Reference, *, platform: Platform | None = None
    ) -> None:
        self._client = client
        self._repository = ref.repository
        target = ref.digest or ref.tag or "latest"
        where = f"{client.host}/{ref.repository}" + (f"@{target}" if ref.digest else f":{target}")
        try:
            manifest = client.get_manifest(ref.repository, target)
        except NotFound:
            raise ImageNotFoundError(
                f"the registry has no image {where}: check the name and tag"
            ) from None
        doc = manifest.json()
        if is_index(manifest.media_type) or "manifests" in doc:
            child = pick(doc.get("manifests"), platform)
            if child is None:
                available = ", ".join(listed(doc.get("manifests"))) or "none"
                raise ImageNotFoundError(
                    f"{where} has no image for {platform or 'any platform'} (it has: {available}): "
                    "choose one with --platform"
                )
            manifest = client.get_manifest(ref.repository, child)
            doc = manifest.json()
        #: The digest of the image manifest read (the platform's, for an index).
        self.digest = manifest.digest
        config_desc, layer_descs = doc.get("config"), doc.get("layers")
        if not isinstance(config_desc, dict) or not isinstance(layer_descs, list):
            raise ImageFormatError(f"the manifest of {where} has no config and layers")
        config_digest = config_desc.get("digest")
        if not isinstance(config_digest, str):
            raise ImageFormatError(f"the manifest of {where} has no config digest")
        self._config_bytes = client.get_blob(ref.repository, config_digest)
        config = load_json(self._config_bytes, "image config")
        if not isinstance(config, dict):
            raise ImageFormatError(f"the config of {where} is not a JSON object")
        self._config: dict[str, Any] = config
        ids = diff_ids(config)
        if len(ids) != len(layer_descs):
            raise ImageFormatError(
                f"the manifest of {where} lists {len(layer_descs)} layers but its config {len(ids)}"
            )
        self._descriptors: list[tuple[str, int | None, str]] = []
        for desc in layer_descs:
            digest = desc.get("digest") if isinstance(desc, dict) else None
            if not isinstance(digest, str):
                raise ImageFormatError(f"a layer of {where} has no digest")
            size = desc.get("size")
            media_type = str(desc.get("mediaType", ""))
            if any(mark in media_type for mark in FOREIGN_LAYER_MARKERS):
                raise ImageFormatError(
                    f"{where} has a foreign (non-distributable) layer, which imgtag cannot read"
                )
            if media_type.endswith("+zstd"):
                raise ImageFormatError(
                    f"{where} has a zstd-compressed layer, which imgtag cannot read yet"
                )
            self._descriptors.append(
                (digest, size if isinstance(size, int) and size >= 0 else None, media_type)
            )
        created = layer_history(config, len(ids))
        self._layers = tuple(
            LayerInfo(
                index=i,
                diff_id=ids[i],
                size=self._descriptors[i][1] or 0,
                created_by=created[i],
                media_type=self._descriptors[i][2],
            )
            for i in range(len(ids))
        )
        self._name = str(ref)
        self._where = where

    @property
    def name(self) -> str:
        return self._name

    @property
    def config(self) -> Mapping[str, Any]:
        return self._config

    @property
    def config_bytes(self) -> bytes:
        return self._config_bytes

    @property
    def layers(self) -> Sequence[LayerInfo]:
        return self._layers

    def layer_digest(self, index: int) -> str:
        """The stored (compressed) blob digest of layer ``index``."""
        return self._descriptors[index][0]

    @contextlib.contextmanager
    def open_layer(self, index: int) -> Iterator[IO[bytes]]:
        digest, size, _media_type = self._descriptors[index]
        with (
            self.layer_errors(),
            self._client.open_blob(self._repository, digest, size=size) as blob,
            # finish: the rest after the tar's end marker, and the digest check
            opened(cast(IO[bytes], blob), f"layer {index}", finish=blob.finish) as plain,
        ):
            yield plain

    @contextlib.contextmanager
    def layer_errors(self) -> Iterator[None]:
        """A layer that cannot be read, or replayed, is the registry's error (exit 5): it
        sent bytes that are not a readable layer, no user's mistake. Around
        :meth:`open_layer`, and around an analysis that reads layers ahead of its replay."""
        try:
            yield
        except ImageFormatError as exc:
            raise RegistryError(f"{exc} (read from {self._where})") from None
