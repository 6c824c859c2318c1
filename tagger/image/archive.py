"""An image as its config and an ordered list of layer tar streams. Reads files only.

:class:`ImageSource` is what ``analyze`` and ``squash`` work on; :class:`SavedImage` reads
one from a ``docker save`` tarball, in either layout the engine writes:

- the Docker layout (dockerd < 25): ``manifest.json`` naming ``<config>.json`` and
  ``<id>/layer.tar`` members, layers uncompressed;
- the OCI layout (dockerd >= 25, and ``skopeo copy ... oci-archive:``): ``index.json`` and
  ``blobs/sha256/<hex>``, usually with a ``manifest.json`` pointing into ``blobs/`` too;
  layers may be gzip-compressed.

See https://github.com/moby/docker-image-spec and the OCI image layout spec,
https://github.com/opencontainers/image-spec/blob/main/image-layout.md.

The archive is untrusted input: member names from its JSON are only looked up inside the
tar, never joined to a path on disk; JSON documents are size-capped; a layer compression
that cannot be read (zstd) is an :class:`~tagger.errors.ImageFormatError` (exit 2).
"""

from __future__ import annotations

import contextlib
import io
import json
import posixpath
import tarfile
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any, Protocol, cast

from tagger.errors import ImageFormatError

# Config, manifest and index documents are a few KB; a bigger one is not an image.
MAX_JSON_BYTES = 16 << 20

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_CHUNK = 1 << 20  # read size for layer streams


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


@contextlib.contextmanager
def decompressed(raw: IO[bytes], what: str) -> Iterator[IO[bytes]]:
    """``raw`` as a plain tar stream: gzip is decompressed, plain tar passes through."""
    head = raw.read(4)
    if not isinstance(head, bytes):
        raise ImageFormatError(f"{what} cannot be read")
    if head.startswith(ZSTD_MAGIC):
        raise ImageFormatError(f"{what} is zstd-compressed, which imgtag cannot read yet")
    if head.startswith(GZIP_MAGIC):
        yield cast(IO[bytes], io.BufferedReader(_Gunzip(head, raw, what), buffer_size=_CHUNK))
    else:
        yield cast(IO[bytes], io.BufferedReader(_Prefixed(head, raw), buffer_size=_CHUNK))


class _Prefixed(io.RawIOBase):
    """A read-only raw stream: ``head`` (already read from ``raw``), then the rest of it."""

    def __init__(self, head: bytes, raw: IO[bytes]) -> None:
        self._head = head
        self._raw = raw

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._head:
            n = min(len(view), len(self._head))
            view[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._raw.read(len(view))
        view[: len(data)] = data
        return len(data)


class _Gunzip(io.RawIOBase):
    """A gzip stream inflated with 1 MiB reads. Python 3.11's :mod:`gzip` hands zlib 8 KiB
    at a time, a Python call per piece: several times slower on a layer of incompressible
    data. zlib still checks each member's CRC; concatenated members are read in turn."""

    def __init__(self, head: bytes, raw: IO[bytes], what: str) -> None:
        self._raw = raw
        self._what = what
        self._pending = head
        self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._in_member = False  # input went into the current member, which has not ended
        self._raw_eof = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while True:
            if self._pending:
                self._in_member = True
                try:
                    out = self._inflate.decompress(self._pending, len(view))
                except zlib.error as exc:
                    raise ImageFormatError(f"{self._what} is not valid gzip ({exc})") from None
                self._pending = self._inflate.unconsumed_tail
                if self._inflate.eof:
                    # What follows the member is in unused_data (with an output limit,
                    # CPython leaves a copy of it in unconsumed_tail too: not both).
                    rest = self._inflate.unused_data
                    # Another member may follow; NUL padding after the last one is allowed.
                    self._pending = rest if rest.strip(b"\0") else b""
                    self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
                    self._in_member = False
                if out:
                    view[: len(out)] = out
                    return len(out)
                if self._pending:
                    continue
            if self._raw_eof:
                return 0
            chunk = self._raw.read(_CHUNK)
            if not chunk:
                self._raw_eof = True
                if self._in_member:
                    raise ImageFormatError(f"{self._what} is truncated: its gzip stream ends early")
                return 0
            self._pending = chunk


class SavedImage:
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
            config_name, layer_names, media_types, repo_tags = self._find(reference)
            self._config_bytes = self._read(config_name, "image config")
        except BaseException:
            self._tar.close()
            raise
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
        self._name = reference or (repo_tags[0] if repo_tags else path)

    # -- ImageSource --------------------------------------------------------------------

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

    @contextlib.contextmanager
    def open_layer(self, index: int) -> Iterator[IO[bytes]]:
        name = self._layer_names[index]
        raw = self._tar.extractfile(self._member(name, "layer"))
        if raw is None:
            raise ImageFormatError(f"layer {index} ({name}) is not a file in the archive")
        with raw, decompressed(raw, f"layer {index}") as plain:
            yield plain

    def layer_member(self, index: int) -> tarfile.TarInfo:
        """The tar member holding layer ``index`` as stored (squash copies base layers)."""
        return self._member(self._layer_names[index], "layer")

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
        raw = self._tar.extractfile(member)
        assert raw is not None  # _member() checked it is a file
        with raw:
            return raw.read()

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
        if "manifests" in manifest:  # an index of platforms: take the only one
            nested = manifest["manifests"]
            if not isinstance(nested, list) or len(nested) != 1:
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
