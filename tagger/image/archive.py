"""An image as its config and an ordered list of layer tar streams. Reads files only.

:class:`ImageSource` is what ``analyze`` and ``squash`` work on; :class:`SavedImage` reads
one from a ``docker save`` tarball, in either layout the engine writes:

- the Docker layout (dockerd < 25): ``manifest.json`` naming ``<config>.json`` and
  ``<id>/layer.tar`` members, layers uncompressed;
- the OCI layout (dockerd >= 25, and ``skopeo copy ... oci-archive:``): ``index.json`` and
  ``blobs/sha256/<hex>``, usually with a ``manifest.json`` pointing into ``blobs/`` too;
  layers may be gzip-compressed (opened through :mod:`tagger.image.layers`).

See https://github.com/moby/docker-image-spec and the OCI image layout spec,
https://github.com/opencontainers/image-spec/blob/main/image-layout.md.

The archive is untrusted input: member names from its JSON are only looked up inside the
tar, never joined to a path on disk; JSON documents are size-capped; a layer that cannot
be read (zstd, damaged gzip) is an :class:`~tagger.errors.ImageFormatError` (exit 2).
"""

from __future__ import annotations

import contextlib
import io
import json
import posixpath
import tarfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any, Generic, Protocol, TypeVar, cast

from tagger.errors import ImageFormatError
from tagger.image.layers import (
    HEAD_BYTES,
    Compression,
    Forward,
    Window,
    compression,
    layer_error,
    open_tar,
    opened,
)

# Opening layers is tagger.image.layers' business; the name stays importable from here.
from tagger.image.layers import decompressed as decompressed
from tagger.registry.platform import image_entries

T = TypeVar("T")

# Config, manifest and index documents are a few KB; a bigger one is not an image.
MAX_JSON_BYTES = 16 << 20


@dataclass(frozen=True, slots=True)
class LayerInfo:
    """One layer of an image, bottom first.

    ``diff_id`` is the sha256 of the uncompressed tar (the config's ``rootfs.diff_ids``);
    ``size`` the bytes it takes where it is stored (compressed in a registry, plain in a
    Docker-layout save); ``created_by`` the history instruction that made it, or ``""``.
    """

    index: int
    diff_id: str
    size: int
    created_by: str
    media_type: str = ""


class ImageSource(Protocol):
    """A readable image: its config and layers, each layer openable as a plain tar stream."""

    @property
    def name(self) -> str: ...

    @property
    def config(self) -> Mapping[str, Any]: ...

    @property
    def config_bytes(self) -> bytes: ...

    @property
    def layers(self) -> Sequence[LayerInfo]: ...

    def open_layer(self, index: int) -> contextlib.AbstractContextManager[IO[bytes]]:
        """The uncompressed tar stream of layer ``index`` (read it sequentially)."""
        ...


def layer_history(config: Mapping[str, Any], count: int) -> list[str]:
    """The ``created_by`` of each of ``count`` layers, from the config's history.

    History entries with ``empty_layer`` (ENV, CMD, LABEL ...) made no layer and are
    skipped; when the rest do not line up with the layers, the missing ones are ``""``.

    >>> cfg = {"history": [
    ...     {"created_by": "COPY busybox /bin/busybox"},
    ...     {"created_by": "ENV A=1", "empty_layer": True},
    ...     {"created_by": "RUN make"},
    ... ]}
    >>> layer_history(cfg, 2)
    ['COPY busybox /bin/busybox', 'RUN make']
    >>> layer_history({}, 2)
    ['', '']
    """
    history = config.get("history")
    made: list[str] = []
    if isinstance(history, list):
        for entry in history:
            if isinstance(entry, dict) and not entry.get("empty_layer"):
                made.append(str(entry.get("created_by", "")))
    if len(made) != count:
        # Misaligned history (hand-made images): align from the top, where our layers are.
        made = made[-count:] if len(made) > count else [""] * (count - len(made)) + made
    return made


def diff_ids(config: Mapping[str, Any]) -> list[str]:
    """The config's ``rootfs.diff_ids``, checked to be a list of strings."""
    rootfs = config.get("rootfs")
    ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ImageFormatError("the image config has no rootfs.diff_ids list")
    return list(ids)


def load_json(data: bytes, what: str) -> Any:
    """Parse an untrusted JSON document, with one clear error for junk."""
    if len(data) > MAX_JSON_BYTES:
        raise ImageFormatError(f"the {what} is {len(data)} bytes: too big to be an image's")
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise ImageFormatError(f"the {what} is not valid JSON") from None


class _Layout:
    """What the two ways of reading a save share: finding the image in its members (either
    layout), the config, the layers in order. A subclass sets ``_members`` and says how a
    member's bytes are read (:meth:`_bytes`), then calls :meth:`_setup`."""

    path: str
    _members: dict[str, tarfile.TarInfo]

    def _bytes(self, member: tarfile.TarInfo) -> bytes:
        raise NotImplementedError

    def _setup(self, reference: str | None) -> None:
        config_name, layer_names, media_types, repo_tags = self._find(reference)
        self._config_bytes = self._read(config_name, "image config")
        self._config = load_json(self._config_bytes, "image config")
        if not isinstance(self._config, dict):
            raise ImageFormatError("the image config is not a JSON object")
        ids = diff_ids(self._config)
        if len(ids) != len(layer_names):
            raise ImageFormatError(
                f"the archive lists {len(layer_names)} layers but the config {len(ids)}"
            )
        created = layer_history(self._config, len(ids))
        self._layer_names = layer_names
        self._layers = tuple(
            LayerInfo(
                index=i,
                diff_id=ids[i],
                size=self._member(layer_names[i], "layer").size,
                created_by=created[i],
                media_type=media_types[i],
            )
            for i in range(len(ids))
        )
        self.repo_tags = repo_tags
        self._name = reference or (repo_tags[0] if repo_tags else self.path)

    @property
    def name(self) -> str:
        return self._name

    @property
    def config(self) -> Mapping[str, Any]:
        return self._config  # type: ignore[no-any-return]

    @property
    def config_bytes(self) -> bytes:
        return self._config_bytes

    @property
    def layers(self) -> Sequence[LayerInfo]:
        return self._layers

    def layer_member(self, index: int) -> tarfile.TarInfo:
        """The tar member holding layer ``index`` as stored (squash copies base layers)."""
        return self._member(self._layer_names[index], "layer")

    # -- reading the layouts -------------------------------------------------------------

    def _member(self, name: str, what: str) -> tarfile.TarInfo:
        member = self._members.get(name)
        # dockerd 20.10's save writes a layer identical to an earlier one as a symlink
        # "<id>/layer.tar -> ../<other>/layer.tar". Resolve links inside the tar only,
        # a few hops at most, and never to a name that climbs out of it.
        for _ in range(8):
            if member is None or not (member.issym() or member.islnk()):
                break
            base = posixpath.dirname(member.name.removeprefix("./")) if member.issym() else ""
            target = posixpath.normpath(posixpath.join(base, member.linkname)).removeprefix("./")
            if target == ".." or target.startswith(("../", "/")):
                break
            member = self._members.get(target)
        if member is None or not member.isfile():
            raise ImageFormatError(f"the archive has no {what} file {name!r}")
        return member

    def _read(self, name: str, what: str) -> bytes:
        member = self._member(name, what)
        if member.size > MAX_JSON_BYTES:
            raise ImageFormatError(f"the {what} {name!r} is too big to be one")
        return self._bytes(member)

    def _find(self, reference: str | None) -> tuple[str, list[str], list[str], list[str]]:
        """(config member, layer members, layer media types, repo tags) of the image."""
        if "manifest.json" in self._members:
            entries = load_json(self._read("manifest.json", "manifest.json"), "manifest.json")
            if not isinstance(entries, list) or not entries:
                raise ImageFormatError("manifest.json lists no image")
            entry = _pick(entries, reference)
            config, layers = entry.get("Config"), entry.get("Layers")
            if not isinstance(config, str) or not isinstance(layers, list):
                raise ImageFormatError("manifest.json has no Config and Layers")
            if not all(isinstance(layer, str) for layer in layers):
                raise ImageFormatError("manifest.json's Layers are not file names")
            tags = entry.get("RepoTags") or []
            repo_tags = [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []
            return config, list(layers), [""] * len(layers), repo_tags
        if "index.json" in self._members:
            return self._find_oci()
        raise ImageFormatError(
            f"{self.path} has neither manifest.json nor index.json: not a docker save archive"
        )

    def _find_oci(self) -> tuple[str, list[str], list[str], list[str]]:
        index = load_json(self._read("index.json", "index.json"), "index.json")
        manifests = index.get("manifests") if isinstance(index, dict) else None
        if not isinstance(manifests, list) or len(manifests) != 1:
            raise ImageFormatError("index.json must list exactly one image manifest")
        manifest = self._blob_json(manifests[0], "image manifest")
        if "manifests" in manifest:  # an index of platforms: take the only image
            # (BuildKit's attestation manifests beside it are not images).
            nested = image_entries(manifest["manifests"])
            if len(nested) != 1:
                raise ImageFormatError("the archive holds a multi-platform index: pick one")
            manifest = self._blob_json(nested[0], "image manifest")
        config = manifest.get("config")
        layers = manifest.get("layers")
        if not isinstance(config, dict) or not isinstance(layers, list):
            raise ImageFormatError("the image manifest has no config and layers")
        annotations = index.get("manifests", [{}])[0].get("annotations") or {}
        name = annotations.get("io.containerd.image.name") or annotations.get(
            "org.opencontainers.image.ref.name"
        )
        return (
            _blob_path(config),
            [_blob_path(layer) for layer in layers],
            [str(layer.get("mediaType", "")) for layer in layers],
            [name] if isinstance(name, str) else [],
        )

    def _blob_json(self, descriptor: Any, what: str) -> dict[str, Any]:
        doc = load_json(self._read(_blob_path(descriptor), what), what)
        if not isinstance(doc, dict):
            raise ImageFormatError(f"the {what} is not a JSON object")
        return doc


class SavedImage(_Layout):
    """An image inside a ``docker save`` (or OCI layout) tarball on disk.

    ``reference`` picks one image of a multi-image archive by its RepoTag; by default the
    archive must hold exactly one.
    """

    def __init__(self, path: str, reference: str | None = None) -> None:
        self.path = path
        try:
            self._tar = tarfile.open(path, mode="r:")  # noqa: SIM115 (closed by close())
        except (OSError, tarfile.TarError) as exc:
            raise ImageFormatError(f"{path} is not a readable image archive ({exc})") from None
        # skopeo's and some tools' archives name members "./index.json".
        self._members = {m.name.removeprefix("./"): m for m in self._tar.getmembers()}
        try:
            self._setup(reference)
        except BaseException:
            self._tar.close()
            raise

    def _bytes(self, member: tarfile.TarInfo) -> bytes:
        raw = self._tar.extractfile(member)
        assert raw is not None  # _member() checked it is a file
        with raw:
            return raw.read()

    # -- ImageSource --------------------------------------------------------------------

    @contextlib.contextmanager
    def open_layer(self, index: int) -> Iterator[IO[bytes]]:
        name = self._layer_names[index]
        raw = self._tar.extractfile(self._member(name, "layer"))
        if raw is None:
            raise ImageFormatError(f"layer {index} ({name}) is not a file in the archive")
        with raw, opened(raw, f"layer {index}") as plain:
            yield plain

    def layer_compression(self, index: int) -> Compression:
        """How layer ``index`` is stored in the archive (zstd is an ImageFormatError)."""
        with self.open_raw(self.layer_member(index)) as raw:
            return compression(raw.read(HEAD_BYTES), f"layer {index}")

    def open_raw(self, member: tarfile.TarInfo) -> IO[bytes]:
        raw = self._tar.extractfile(member)
        if raw is None:
            raise ImageFormatError(f"{member.name} is not a file in the archive")
        return raw

    def close(self) -> None:
        self._tar.close()

    def __enter__(self) -> SavedImage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: The JSON documents a streamed save may keep in memory, all together.
MAX_KEPT_BYTES = 64 << 20
_DOCUMENTS = ("manifest.json", "index.json", "repositories", "oci-layout")


class StreamedSave(_Layout, Generic[T]):
    """An image read once from a ``docker save`` stream as it arrives: no file, no second
    pass. Only the small JSON documents are kept, and what ``read_layer`` made of each
    member that may be a layer.

    A save lists its members in name order (dockerd 20.10: ``<v1 id>/layer.tar`` members,
    then ``<config>.json`` and ``manifest.json``; the OCI layout: ``blobs/`` before
    ``index.json``), so which member is which layer is known only at the end: each member
    that is not a JSON document is handed to ``read_layer`` as a window of the stream
    (read it, or not: the rest is skipped), and :meth:`layer_result` gives the result of
    layer ``index`` once the manifest has ordered them. ``read_layer`` must not keep the
    window beyond its call.
    """

    def __init__(
        self, stream: IO[bytes], read_layer: Callable[[IO[bytes]], T], name: str = "the save"
    ) -> None:
        self.path = name
        self._read_layer = read_layer
        self._members = {}
        self._kept: dict[str, bytes] = {}
        self._results: dict[str, T] = {}
        forward = Forward(stream)
        with open_tar(cast(IO[bytes], forward), "the saved image", seekable=True) as tar:
            if tar is None:
                raise ImageFormatError("the engine's save is empty: not an image archive")
            for member in _members_of(tar):
                self._take(forward, member)
        self._setup(None)

    def _take(self, forward: Forward, member: tarfile.TarInfo) -> None:
        name = member.name.removeprefix("./")
        self._members[name] = member
        if not member.isfile():
            return
        window = Window(forward, member.size)
        document = name in _DOCUMENTS or name.endswith((".json", "/json", "/VERSION"))
        small = member.size <= MAX_JSON_BYTES
        if small and (document or window.peek(1) == b"{"):
            kept = sum(len(data) for data in self._kept.values()) + member.size
            if kept > MAX_KEPT_BYTES:
                raise ImageFormatError(
                    f"the saved image holds more than {MAX_KEPT_BYTES >> 20} MiB of documents"
                )
            self._kept[name] = window.read(member.size)
        elif not document:
            self._results[name] = self._read_layer(cast(IO[bytes], window))

    def _bytes(self, member: tarfile.TarInfo) -> bytes:
        data = self._kept.get(member.name.removeprefix("./"))
        if data is None:
            raise ImageFormatError(f"the archive's {member.name!r} is not a JSON document")
        return data

    def layer_result(self, index: int) -> T:
        """What ``read_layer`` made of layer ``index`` (bottom first)."""
        member = self.layer_member(index)
        name = member.name.removeprefix("./")
        if name in self._results:
            return self._results[name]
        # A small layer that looked like JSON was kept whole: read it now.
        self._results[name] = result = self._read_layer(io.BytesIO(self._kept[name]))
        return result


def _members_of(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    """The members of a tar read once (none kept for ``getmembers()``)."""
    members: list[tarfile.TarInfo] = tar.members  # type: ignore[attr-defined]
    try:
        while True:
            info = tar.next()
            if info is None:
                return
            members.clear()
            yield info
    except (tarfile.TarError, EOFError, ValueError) as exc:
        raise layer_error(exc, "the saved image") from None


def _blob_path(descriptor: Any) -> str:
    """``blobs/<alg>/<hex>`` for a descriptor, checking the digest looks like one."""
    digest = descriptor.get("digest") if isinstance(descriptor, dict) else None
    if not isinstance(digest, str) or ":" not in digest:
        raise ImageFormatError("a descriptor in the archive has no digest")
    alg, _, hexpart = digest.partition(":")
    if not alg.isalnum() or not hexpart.isalnum():
        raise ImageFormatError(f"a descriptor in the archive has a malformed digest {digest!r}")
    return f"blobs/{alg}/{hexpart}"


def _pick(entries: list[Any], reference: str | None) -> dict[str, Any]:
    dicts = [e for e in entries if isinstance(e, dict)]
    if reference is not None:
        for entry in dicts:
            if reference in (entry.get("RepoTags") or []):
                return entry
    if len(dicts) != 1:
        raise ImageFormatError(f"the archive holds {len(dicts)} images: name the one to read")
    return dicts[0]
