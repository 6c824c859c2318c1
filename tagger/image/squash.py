"""``squash``: merge an image's own layers into one and load the result. Does I/O.

:func:`squash_image` is what ``imgtag squash`` and ``build-push --squash`` call:

1. ``docker save`` the image into a temporary directory (removed afterwards, also on
   errors and Ctrl-C); no member of a layer is ever extracted to a file of its own;
2. read the tar headers of every layer (a Docker-layout save holds plain layer tars, so
   ``tarfile`` seeks past the data; a gzip layer of an OCI-layout save is decompressed to
   the temporary directory first) and plan the one merged layer
   (:mod:`tagger.image.squash_plan`, pure);
3. stream a Docker-layout archive straight into ``docker load``: the merged layer (its bytes
   copied from the saved file in big chunks and hashed on the way, by a producer thread,
   while this one writes to the socket: its sha256 is the new diff_id), then the config,
   then ``manifest.json``. The base layers are not in it: moby's
   ``tarexport`` load skips reading a layer whose chain ID the engine already has
   (``daemon/images/tarexport/load.go``), so the archive names their files without holding
   them. An engine that wants them anyway gets a second archive with them copied raw.

The merged layer is a plain (uncompressed) tar: the engine stores layers uncompressed, so the
image's size on the engine is the same either way, and gzip would only cost time (about as
much again as the whole squash; ``benchmarks/README.md``), and the engine inflates it again.

The new config keeps everything of the old one (env, entrypoint, cmd, labels, user, ...);
``rootfs.diff_ids`` is the base's plus the new layer's; ``history`` keeps every entry, marks
those of the squashed layers ``empty_layer`` and ends with one entry for the squash whose
``created`` is the image's own, so squashing the same image twice gives the same image ID.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import tarfile
import tempfile
import threading
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from queue import Full, Queue
from typing import IO, TYPE_CHECKING, Any, BinaryIO, cast

from tagger.errors import EngineError, ImageFormatError, InvalidReferenceError, UsageError
from tagger.image.archive import SavedImage
from tagger.image.layers import layer_error, open_tar
from tagger.image.squash_plan import SquashPlan, header_bytes, plan_squash
from tagger.registry.reference import Reference

if TYPE_CHECKING:
    from tagger.engine import Engine

Progress = Callable[[str], None]

# Copy member data in big chunks: fewer syscalls and hash updates per byte.
CHUNK = 4 << 20
# Files up to this size are copied into the header buffer rather than sent on their own.
_SMALL = 256 << 10
# The diff_id placeholder has the length of every sha256 digest, so the config's length
# (and with it the archive's, sent as Content-Length) is known before the layer is hashed.
_DIGEST_PLACEHOLDER = "sha256:" + "0" * 64
_IMAGE_ID_RE = re.compile(r"(sha256:)?[0-9a-f]{12,64}\Z")


def _quiet(_line: str) -> None:
    pass


@dataclass(frozen=True, slots=True)
class SquashResult:
    """What a squash did. ``changed`` is False for a no-op (0 or 1 layer to squash): then
    ``id`` is the unchanged image's ID."""

    image: str
    id: str
    tag: str | None
    squashed_layers: int
    base_layers: int
    size_before: int
    size_after: int
    base_source: str
    changed: bool
    old_id: str

    def as_dict(self) -> dict[str, Any]:
        """The ``--format json`` document."""
        return {
            "image": self.image,
            "id": self.id,
            "tag": self.tag,
            "squashed_layers": self.squashed_layers,
            "base_layers": self.base_layers,
            "size_before": self.size_before,
            "size_after": self.size_after,
            "base": self.base_source,
            "changed": self.changed,
            "old_id": self.old_id,
        }


def default_tag(image: str) -> str | None:
    """The name a squash of ``image`` takes by default: the image's own ``name:tag`` (as
    ``docker-squash -t IMAGE IMAGE``); ``None`` for an image ID or a digest reference.

    >>> default_tag("app"), default_tag("reg:5000/app:1.2"), default_tag("app@sha256:" + "a" * 64)
    ('app:latest', 'reg:5000/app:1.2', None)
    >>> default_tag("0123456789ab") is None
    True
    """
    if _IMAGE_ID_RE.match(image):
        return None
    try:
        ref = Reference.parse(image)
    except InvalidReferenceError:
        return None  # not a name (an ID prefix, ...): the engine says what it is
    return None if ref.digest is not None else with_tag(image)


def with_tag(name: str) -> str:
    """``name`` as written, with ``:latest`` when it has no tag (``docker load`` needs a
    tagged name); a name that is not one is an InvalidReferenceError (exit 2).

    >>> with_tag("localhost:5000/app"), with_tag("app:v1")
    ('localhost:5000/app:latest', 'app:v1')
    """
    return name if Reference.parse(name).tag is not None else f"{name}:latest"


def _split_tag(name: str) -> tuple[str, str]:
    """(repository as written, tag) of a tagged name, for the engine's tag call.

    >>> _split_tag("localhost:5000/app:1.2")
    ('localhost:5000/app', '1.2')
    """
    tag = Reference.parse(name).tag
    if tag is None:
        raise InvalidReferenceError(f'"{name}" has no tag')
    return name[: -len(tag) - 1], tag


def squash_image(
    engine: Engine,
    image: str,
    *,
    tag: str | None = None,
    from_: str | None = None,
    all_layers: bool = False,
    known_base: str | None = None,
    progress: Progress = _quiet,
    workdir: str | None = None,
) -> SquashResult:
    """Squash the layers of ``image`` above its base into one; load and tag the result.

    ``tag``: the new image's name (default :func:`default_tag`). ``from_``: a base image
    or a count of top layers (``--from``); ``all_layers``: squash every layer;
    ``known_base``: the FROM image when the caller knows it (build-push). ``workdir``: where
    the temporary directory goes (default ``$TMPDIR``).
    """
    from tagger.image.base import choose_base, rootfs_layers

    if tag and Reference.parse(tag).digest is not None:  # a bad --tag is exit 2 before any work
        raise UsageError(f"--tag {tag} names a digest: give a name[:tag] for the squashed image")
    new_tag = with_tag(tag) if tag else default_tag(image)
    doc = engine.inspect_image(image)
    old_id = str(doc.get("Id", ""))
    layers = rootfs_layers(doc)
    if layers is None:
        raise ImageFormatError("the engine reports no layers for the image")
    size_before = int(doc.get("Size") or 0)
    choice = choose_base(
        engine, image, layers, from_=from_, all_layers=all_layers, known_base=known_base
    )
    base_count = choice.layers
    count = len(layers) - base_count
    if count <= 1:
        progress(
            f"{image}: {count} layer{'s' if count != 1 else ''} above its base "
            f"({choice.source}): nothing to squash"
        )
        if new_tag and new_tag not in (doc.get("RepoTags") or []):
            engine.tag(old_id, *_split_tag(new_tag))
        return SquashResult(
            image=image,
            id=old_id,
            tag=new_tag,
            squashed_layers=0,
            base_layers=base_count,
            size_before=size_before,
            size_after=size_before,
            base_source=choice.source,
            changed=False,
            old_id=old_id,
        )
    progress(f"squashing {count} layers of {image} above {base_count} base layers")
    progress(f"base: {choice.source}")
    with tempfile.TemporaryDirectory(prefix="imgtag-squash-", dir=workdir) as temp:
        archive = os.path.join(temp, "image.tar")
        progress(f"saving {image}")
        with open(archive, "wb") as out:
            engine.save(old_id, cast(BinaryIO, out))
        with SavedImage(archive) as saved:
            if list(saved.layers[i].diff_id for i in range(len(saved.layers))) != layers:
                raise ImageFormatError(f"the engine saved other layers than {image} has")
            progress(f"planning the merged layer from {len(layers)} layers' headers")
            with _LayerFiles(saved, temp) as files:
                plan = plan_squash(
                    [files.headers(i) for i in range(base_count)],
                    [files.headers(i) for i in range(base_count, len(layers))],
                )
                progress(
                    f"loading the merged layer: {len(plan.entries)} entries, "
                    f"{plan.data_bytes} bytes of files, {plan.whiteouts} whiteouts"
                )
                new_id = _load(
                    engine, saved, files, plan, base_count, count, choice.source, new_tag
                )
    # The ID is the config's digest in the classic image store, the manifest's in the
    # containerd image store (Engine 26 with containerd-snapshotter), which _load cannot
    # know beforehand: ask the engine by the name the load gave it.
    info = engine.inspect_image(new_tag) if new_tag else engine.inspect_image(new_id)
    new_id = str(info.get("Id") or new_id)
    size_after = int(info.get("Size") or 0)
    tagged = f", tagged {new_tag}" if new_tag else ""
    progress(f"squashed {image} ({old_id[:19]}) into {new_id[:19]}{tagged}")
    return SquashResult(
        image=image,
        id=new_id,
        tag=new_tag,
        squashed_layers=count,
        base_layers=base_count,
        size_before=size_before,
        size_after=size_after,
        base_source=choice.source,
        changed=True,
        old_id=old_id,
    )


# --- reading layers ------------------------------------------------------------------


class _LayerFiles:
    """Each layer as a plain tar at an offset of a file on disk, for headers and data.

    A plain layer of the saved archive is read in place; a gzip one is inflated once into
    the temporary directory (its data must be read at random offsets).
    """

    def __init__(self, saved: SavedImage, temp: str) -> None:
        self._saved = saved
        self._temp = temp
        self._spans: dict[int, tuple[str, int, int]] = {}
        self._handles: dict[str, IO[bytes]] = {}

    def __enter__(self) -> _LayerFiles:
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles.values():
            handle.close()

    def span(self, index: int) -> tuple[str, int, int]:
        """(file, offset, length) of layer ``index``'s plain tar."""
        if index in self._spans:
            return self._spans[index]
        member = self._saved.layer_member(index)
        path = self._saved.path
        if self._saved.layer_compression(index) == "gzip":
            path = os.path.join(self._temp, f"layer-{index}.tar")
            with self._saved.open_layer(index) as plain, open(path, "wb") as out:
                shutil.copyfileobj(plain, out, CHUNK)
            span = (path, 0, os.path.getsize(path))
        else:
            span = (path, member.offset_data, member.size)
        self._spans[index] = span
        return span

    def _handle(self, path: str) -> IO[bytes]:
        if path not in self._handles:
            self._handles[path] = open(path, "rb")  # noqa: SIM115 (closed in __exit__)
        return self._handles[path]

    def headers(self, index: int) -> list[tarfile.TarInfo]:
        """Layer ``index``'s members in order; ``offset_data`` counts from its file's start."""
        path, start, length = self.span(index)
        end = start + length
        handle = self._handle(path)
        handle.seek(start)
        members: list[tarfile.TarInfo] = []
        what = f"layer {index}"
        try:
            with open_tar(handle, what, seekable=True) as tar:
                for info in tar or ():
                    if info.offset >= end:
                        break  # a layer without its end blocks: the next member is not its
                    if info.offset_data + (info.size if info.isreg() else 0) > end:
                        raise ImageFormatError(f"layer {index} is truncated at {info.name!r}")
                    members.append(info)
        except ImageFormatError:
            # An empty layer may be zero blocks only (the saved archive's next member
            # follows): no entries.
            if not os.pread(handle.fileno(), 512, start).strip(b"\0"):
                return []
            raise
        except tarfile.TarError as exc:
            raise layer_error(exc, what) from None
        return members

    def data(self, index: int, offset: int, size: int) -> Iterator[bytes]:
        """``size`` bytes of layer ``index``'s file at ``offset``, in chunks of CHUNK.

        ``os.pread`` leaves the file position alone, so the producer thread may read while
        nothing else does; memory stays at one chunk whatever the file's size.
        """
        path, _, _ = self.span(index)
        fd = self._handle(path).fileno()
        while size > 0:
            chunk = os.pread(fd, min(size, CHUNK), offset)
            if not chunk:
                raise ImageFormatError(f"layer {index} ends inside a file's data")
            yield chunk
            offset += len(chunk)
            size -= len(chunk)

    def raw_member(self, index: int) -> tarfile.TarInfo:
        """Layer ``index`` as stored in the saved archive (maybe compressed)."""
        return self._saved.layer_member(index)

    def raw_span(self, index: int) -> tuple[str, int]:
        """(file, offset) of layer ``index`` as stored, for a raw copy."""
        return (self._saved.path, self._saved.layer_member(index).offset_data)


# --- writing the archive -------------------------------------------------------------


def _squashed_config(
    config: Mapping[str, Any], base_count: int, count: int, source: str
) -> dict[str, Any]:
    """The new config with the placeholder diff_id last (see ``_DIGEST_PLACEHOLDER``)."""
    new: dict[str, Any] = json.loads(json.dumps(config))
    rootfs = new.setdefault("rootfs", {"type": "layers"})
    rootfs["diff_ids"] = [*list(rootfs.get("diff_ids", []))[:base_count], _DIGEST_PLACEHOLDER]
    history = new.get("history")
    if isinstance(history, list):
        made = [
            i for i, h in enumerate(history) if isinstance(h, dict) and not h.get("empty_layer")
        ]
        # The entries that made the squashed layers: the top `count` of those that made one.
        for i in made[-count:]:
            history[i]["empty_layer"] = True
    else:
        history = new["history"] = []
    entry: dict[str, Any] = {
        "created_by": f"imgtag squash: merged {count} layers",
        "comment": f"squashed {count} layers above {base_count} base layers ({source})",
    }
    if isinstance(new.get("created"), str):
        entry = {"created": new["created"], **entry}
    history.append(entry)
    return new


class _Stream(io.RawIOBase):
    """A read-only stream of known length over a generator of byte chunks.

    ``__len__`` lets ``requests`` send a Content-Length instead of chunked encoding.
    """

    def __init__(self, chunks: Iterator[bytes], length: int) -> None:
        self._chunks = chunks
        self._length = length
        self._pending = memoryview(b"")
        self.sent = 0

    def __len__(self) -> int:
        return self._length

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        # requests subtracts tell() from len(): without it (RawIOBase.tell raises), it would
        # guess 0 bytes and fall back to chunked encoding.
        return self.sent

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = memoryview(chunk)
        view = memoryview(buffer).cast("B")
        n = min(len(view), len(self._pending))
        view[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        self.sent += n
        return n

    def read(self, size: int = -1) -> bytes:
        # http.client reads blocks of 8-16 KiB: hand out slices without a readinto copy.
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return b""
            self._pending = memoryview(chunk)
        n = len(self._pending) if size is None or size < 0 else min(size, len(self._pending))
        data = self._pending[:n].tobytes()
        self._pending = self._pending[n:]
        self.sent += n
        return data


def _tar_header(name: str, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o644
    return header_bytes(info)


def _pad(size: int) -> bytes:
    return bytes(-size % 512)


@dataclass
class _Archive:
    """The Docker-layout archive for ``docker load``, produced as a stream."""

    files: _LayerFiles
    plan: SquashPlan
    config_template: dict[str, Any]
    manifest: bytes
    raw_base: Sequence[tuple[str, int]]  # (member name, layer index) copied raw, or none
    layer_name: str = "squashed/layer.tar"
    config_bytes: bytes = b""

    def _config_for(self, diff_id: str) -> bytes:
        config = json.loads(json.dumps(self.config_template))
        config["rootfs"]["diff_ids"][-1] = diff_id
        return json.dumps(config, separators=(",", ":")).encode()

    def length(self) -> int:
        config_len = len(self._config_for(_DIGEST_PLACEHOLDER))
        layer_len = self.plan.tar_size()
        total = 512 + layer_len + len(_pad(layer_len))
        for _name, index in self.raw_base:
            size = self.files.raw_member(index).size
            total += 512 + size + len(_pad(size))
        for size in (config_len, len(self.manifest)):
            total += 512 + size + len(_pad(size))
        return total + 1024

    def chunks(self) -> Iterator[bytes]:
        for name, index in self.raw_base:
            member = self.files.raw_member(index)
            yield _tar_header(name, member.size)
            yield from self._copy(self.files.raw_span(index), member.size)
            yield _pad(member.size)
        layer_len = self.plan.tar_size()
        yield _tar_header(self.layer_name, layer_len)
        digest = hashlib.sha256()
        buffer = bytearray()
        written = 0
        for entry in self.plan.entries:
            buffer += header_bytes(entry.info)
            source = entry.source
            if source is not None and source.size <= _SMALL:
                # A small file joins the buffer: one chunk for many files, not three each
                # (3,000 files of 14 KB: 9,000 chunks through the queue and the socket).
                for part in self.files.data(source.layer, source.offset, source.size):
                    buffer += part
                buffer += _pad(source.size)
            elif source is not None:
                if buffer:
                    digest.update(buffer)
                    written += len(buffer)
                    yield bytes(buffer)
                    buffer.clear()
                for part in self.files.data(source.layer, source.offset, source.size):
                    digest.update(part)
                    written += len(part)
                    yield part
                buffer += _pad(source.size)
            if len(buffer) >= CHUNK:
                digest.update(buffer)
                written += len(buffer)
                yield bytes(buffer)
                buffer.clear()
        buffer += bytes(1024)
        digest.update(buffer)
        written += len(buffer)
        yield bytes(buffer)
        if written != layer_len:  # a bug in tar_size(): the engine would reject the archive
            raise AssertionError(f"wrote {written} layer bytes, announced {layer_len}")
        yield _pad(layer_len)
        self.config_bytes = self._config_for("sha256:" + digest.hexdigest())
        yield _tar_header("config.json", len(self.config_bytes))
        yield self.config_bytes
        yield _pad(len(self.config_bytes))
        yield _tar_header("manifest.json", len(self.manifest))
        yield self.manifest
        yield _pad(len(self.manifest))
        yield bytes(1024)

    def _copy(self, span: tuple[str, int], size: int) -> Iterator[bytes]:
        path, offset = span
        with open(path, "rb") as handle:
            handle.seek(offset)
            while size > 0:
                chunk = handle.read(min(size, CHUNK))
                if not chunk:
                    raise ImageFormatError("a base layer ends early in the saved archive")
                size -= len(chunk)
                yield chunk


def _load(
    engine: Engine,
    saved: SavedImage,
    files: _LayerFiles,
    plan: SquashPlan,
    base_count: int,
    count: int,
    source: str,
    new_tag: str | None,
) -> str:
    """Stream the archive into ``docker load``; return the new image ID."""
    template = _squashed_config(saved.config, base_count, count, source)
    layer_names = [f"base-{i}/layer.tar" for i in range(base_count)] + ["squashed/layer.tar"]
    manifest_doc = [
        {"Config": "config.json", "RepoTags": [new_tag] if new_tag else [], "Layers": layer_names}
    ]
    manifest = json.dumps(manifest_doc, separators=(",", ":")).encode()
    archive = _Archive(files, plan, template, manifest, raw_base=())
    try:
        _send(engine, archive)
    except EngineError:
        # An engine that does not skip the layers it has (not moby's tarexport: e.g. the
        # containerd image store of dockerd >= 25) wants every file the manifest names, and
        # its error wording is its own: send them too, copied raw from the saved archive.
        if base_count == 0:
            raise
        raw = [(layer_names[i], i) for i in range(base_count)]
        archive = _Archive(files, plan, template, manifest, raw_base=raw)
        _send(engine, archive)
    return "sha256:" + hashlib.sha256(archive.config_bytes).hexdigest()


def _prefetched(chunks: Iterator[bytes], depth: int = 8) -> Generator[bytes, None, None]:
    """``chunks``, produced in a thread ``depth`` chunks ahead of the consumer.

    Reading the saved file and hashing (hashlib and ``os.pread`` release the GIL) then run
    while this thread sends the previous chunks to the engine: the sha256 of the new layer
    overlaps the socket writes instead of adding to them. The producer stops when the
    consumer goes away (an error, Ctrl-C), so no thread outlives the squash.
    """
    queue: Queue[tuple[bytes | None, BaseException | None]] = Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        item: tuple[bytes | None, BaseException | None]
        try:
            for chunk in chunks:
                item = (chunk, None)
                while not stop.is_set():
                    try:
                        queue.put(item, timeout=0.1)
                        break
                    except Full:
                        continue
                if stop.is_set():
                    return
            item = (None, None)
        except BaseException as exc:  # handed to the consumer, which raises it
            item = (None, exc)
        while not stop.is_set():
            try:
                queue.put(item, timeout=0.1)
                return
            except Full:
                continue

    worker = threading.Thread(target=produce, name="imgtag-squash-layer", daemon=True)
    worker.start()
    try:
        while True:
            chunk, error = queue.get()
            if error is not None:
                raise error
            if chunk is None:
                return
            yield chunk
    finally:
        stop.set()
        worker.join()


def _send(engine: Engine, archive: _Archive) -> None:
    chunks = _prefetched(archive.chunks())
    stream = _Stream(chunks, archive.length())
    try:
        engine.load(cast(BinaryIO, stream))
    finally:
        chunks.close()  # stops the producer thread whatever happened
    if stream.sent != len(stream):
        raise EngineError(
            f"the engine stopped reading the squashed image after {stream.sent} of "
            f"{len(stream)} bytes"
        )


__all__ = ["SquashResult", "default_tag", "squash_image", "with_tag"]
