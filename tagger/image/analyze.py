"""How much of an image is waste: per-layer sizes, wasted bytes, efficiency, worst paths.

Pure: no I/O beyond reading the layer streams an :class:`~tagger.image.archive.ImageSource`
hands out. One sequential pass over each layer's tar, bottom layer first, replays the
layers onto an in-memory tree of paths (memory grows with the number of paths, never with
the bytes), as the engine does when it applies them: :class:`tagger.image.overlay.Replay`,
whose rules (replacement, whiteouts that hide lower layers only, hard links sharing one
inode) are the same ones ``squash`` plans with. A regular file's bytes stay alive while any
of its names does; a hard link entry carries no data of its own; a hard link to nothing
counts as an empty file (the engine would fail to apply it).

Only tar headers are needed: a plain ``layer.tar`` inside a saved archive is walked with seeks
over the file data; a compressed or remote layer is read through once, as it arrives.

The figures (the README's ``imgtag analyze`` section):

- ``size``: the bytes of regular files over all layers (what dive calls the image size);
- ``wasted_bytes``: every stored copy of a file that does not reach the final file system,
  counted once: copies a later entry overwrote (a 4 MiB file written twice wastes 4 MiB, not
  the 8 dive reports, its issue #684) and files removed later (whiteouts, opaque
  directories, type changes). So ``wasted_bytes = size - bytes of the final files``;
- ``efficiency = 1 - wasted_bytes / size`` (1.0 for an image without file bytes), in 0..1;
- ``user_wasted_percent``: the waste whose wasted copy lives in the image's own layers (the
  layers above its base), as a percent of those layers' file bytes, in 0..100. A base file
  deleted by the image's own layer is the base's waste: the image's layers do not hold it.
  dive's ``userWastedPercent`` divides *all* waste by the size of every layer but the first.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import queue
import re
import tarfile
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from decimal import Decimal
from typing import IO, Any, cast

from tagger.errors import ImageFormatError, UsageError
from tagger.image.archive import ImageSource, LayerInfo, SavedImage, StreamedSave
from tagger.image.layers import (
    HEAD_BYTES,
    INFLATE_ERRORS,
    Forward,
    Window,
    compression,
    decompressed,
    layer_error,
    open_tar,
    simple_headers,
)
from tagger.image.overlay import DIR, FILE, LINK, OTHER, Inode, Node, Replay, kind_of

Progress = Callable[[str], None]
#: What the replay needs of one tar header: its kind, name, size and link name.
Record = tuple[int, str, int, str]


@dataclass(frozen=True, slots=True)
class LayerReport:
    """One layer's figures. ``size``: regular-file bytes in its tar; ``stored_size``: what it
    takes where it is stored; ``wasted_bytes``: its bytes that do not reach the final file
    system; ``entries``: tar entries (whiteouts included)."""

    index: int
    digest: str
    size: int
    stored_size: int
    wasted_bytes: int
    entries: int
    created_by: str


@dataclass(frozen=True, slots=True)
class WastedPath:
    """A path whose copies were wasted: ``layers`` wrote it (every copy, the final one too),
    ``removed_in`` overwrote or deleted a copy."""

    path: str
    wasted_bytes: int
    layers: tuple[int, ...]
    removed_in: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Analysis:
    """The figures of one image; see the module docstring for their definitions."""

    image: str
    size: int
    stored_size: int
    wasted_bytes: int
    user_wasted_bytes: int
    user_size: int
    base_layers: int
    layers: tuple[LayerReport, ...]
    worst: tuple[WastedPath, ...]

    @property
    def final_size(self) -> int:
        """Bytes of the regular files in the final file system (each inode once)."""
        return self.size - self.wasted_bytes

    @property
    def efficiency(self) -> float:
        """``1 - wasted / size`` in 0..1; 1.0 for an image without file bytes.

        >>> Analysis("x", 8, 8, 2, 0, 0, 0, (), ()).efficiency
        0.75
        """
        return 1.0 - self.wasted_bytes / self.size if self.size else 1.0

    @property
    def user_wasted_percent(self) -> float:
        """Waste in the image's own layers as a percent (0..100) of their file bytes."""
        return 100.0 * self.user_wasted_bytes / self.user_size if self.user_size else 0.0

    def as_dict(self) -> dict[str, Any]:
        """The JSON document of ``analyze --format json`` (the README's keys first)."""
        return {
            "image": self.image,
            "size": self.size,
            "efficiency": self.efficiency,
            "wasted_bytes": self.wasted_bytes,
            "user_wasted_percent": self.user_wasted_percent,
            "layers": [
                {
                    "digest": layer.digest,
                    "size": layer.size,
                    "created_by": layer.created_by,
                    "index": layer.index,
                    "stored_size": layer.stored_size,
                    "wasted_bytes": layer.wasted_bytes,
                    "entries": layer.entries,
                    "base": layer.index < self.base_layers,
                }
                for layer in self.layers
            ],
            "worst": [
                {
                    "path": path.path,
                    "wasted_bytes": path.wasted_bytes,
                    "layers": list(path.layers),
                    "removed_in": list(path.removed_in),
                }
                for path in self.worst
            ],
            "final_size": self.final_size,
            "stored_size": self.stored_size,
            "user_wasted_bytes": self.user_wasted_bytes,
            "user_size": self.user_size,
            "base_layers": self.base_layers,
        }


# --- the replay -------------------------------------------------------------------------


class _Waste:
    __slots__ = ("bytes", "layers", "removed_in")

    def __init__(self) -> None:
        self.bytes = 0
        self.layers: set[int] = set()
        self.removed_in: set[int] = set()


class _Measure(Replay):
    """The layers replayed (:mod:`tagger.image.overlay`), counting what each removal wastes."""

    def __init__(self, layer_count: int) -> None:
        super().__init__()
        self.layer_bytes = [0] * layer_count
        self.layer_wasted = [0] * layer_count
        self.layer_entries = [0] * layer_count
        self.wasted: dict[str, _Waste] = {}

    def entry(self, info: tarfile.TarInfo) -> None:
        self.record((kind_of(info), info.name, info.size, info.linkname))

    def record(self, record: Record) -> None:
        kind, name, size, linkname = record
        self.layer_entries[self.current] += 1
        if kind == FILE:
            self.apply(FILE, name, max(0, size))
        else:
            self.apply(kind, name, 0, linkname)

    def wrote(self, path: str, node: Node, data: bool) -> None:
        if data and node.inode is not None:
            self.layer_bytes[self.current] += node.inode.size
        # Paths with waste list every layer that wrote them, the final copy's too.
        record = self.wasted.get(path)
        if record is not None:
            record.layers.add(self.current)

    def freed(self, inode: Inode, path: str) -> None:
        if not inode.size:
            return
        self.layer_wasted[inode.layer] += inode.size
        record = self.wasted.get(path)
        if record is None:
            record = self.wasted[path] = _Waste()
        record.bytes += inode.size
        record.layers.add(inode.layer)
        record.removed_in.add(self.current)


# --- reading the layers ----------------------------------------------------------------

_READ_ERRORS: tuple[type[Exception], ...] = (
    tarfile.TarError,
    *INFLATE_ERRORS,
    gzip.BadGzipFile,
    EOFError,
    ValueError,
)


@contextlib.contextmanager
def _layer_tar(source: ImageSource, layer: LayerInfo) -> Iterator[tarfile.TarFile | None]:
    """The layer as a tar reader (``None`` for a layer of 0 bytes): seekable, so that file
    data is skipped rather than read, for a plain tar inside a saved archive; else a
    sequential stream (gzip must be read through anyway). Headers are bounded
    (:func:`tagger.image.layers.open_tar`)."""
    what = f"layer {layer.index}"
    if isinstance(source, SavedImage) and source.layer_compression(layer.index) == "plain":
        raw = source.open_raw(source.layer_member(layer.index))
        with raw, open_tar(raw, what, seekable=True) as tar:
            yield tar
        return
    with source.open_layer(layer.index) as stream, open_tar(stream, what, seekable=False) as tar:
        yield tar


def _entries(tar: tarfile.TarFile | None, what: int | str | None) -> Iterator[tarfile.TarInfo]:
    if tar is None:
        return
    # next() keeps every member for getmembers(); we never need them again.
    members: list[tarfile.TarInfo] = tar.members  # type: ignore[attr-defined]
    try:
        while True:
            info = tar.next()
            if info is None:
                return
            members.clear()
            yield info
    except _READ_ERRORS as exc:
        where = f"layer {what}" if isinstance(what, int) else what or "the saved image"
        raise layer_error(exc, where) from None


_RECORD_ERRORS: tuple[type[Exception], ...] = (ImageFormatError, *_READ_ERRORS)
# A layer of a streamed save is read before its index is known; its errors say where
# with this stand-in until the layer's turn comes.
_SOMEWHERE = "layer \0"
_UNBOUNDED = 1 << 62  # the size of a window that ends where its stream ends
# tar types as the replay's kinds (kind_of's table, for simple_headers' type bytes).
_KINDS = {b"5": DIR, b"1": LINK, b"0": FILE, b"\0": FILE, b"7": FILE}


class _LayerRecords:
    """One layer of a streamed save, read: its headers as records, in order, and the error
    that stopped the reading, if one did (raised after the records, in the layer's turn,
    as a sequential read would have raised it there)."""

    __slots__ = ("error", "final", "records")

    def __init__(self) -> None:
        self.records: list[Record] = []
        self.error: BaseException | None = None
        self.final = False  # the error is the source's own: raised as it is

    def raise_here(self, index: int) -> None:
        """Raise the error as a sequential read of layer ``index`` would have."""
        if self.error is not None:
            list(self.replayed(index))

    def replayed(self, index: int) -> Iterator[Record]:
        yield from self.records
        error = self.error
        if self.final and error is not None:
            raise error
        if isinstance(error, ImageFormatError):
            raise ImageFormatError(str(error).replace(_SOMEWHERE, f"layer {index}")) from None
        if error is not None:
            raise layer_error(error, f"layer {index}") from None


def read_records(
    stored: IO[bytes], what: str = _SOMEWHERE, *, opened: bool = False
) -> _LayerRecords:
    """Every tar header of one stored layer (plain or gzip), as it passes: a plain tar is
    walked with forward seeks over file data, gzip read through; ``opened``: ``stored``
    is the plain tar stream already (a source's ``open_layer``). Errors are kept, not
    raised (:class:`_LayerRecords`)."""
    read = _LayerRecords()
    records = read.records
    if opened:
        # A seekable view of the plain stream: file data is skipped into one buffer, not
        # copied through tarfile's stream mode, and plain headers skip tarfile as below.
        stored = cast(IO[bytes], Window(Forward(stored), _UNBOUNDED))
    try:
        head = stored.peek(HEAD_BYTES)[:HEAD_BYTES] if isinstance(stored, Window) else b""
        if not head and not isinstance(stored, Window):  # an in-memory layer
            head = stored.read(HEAD_BYTES)
            stored.seek(0)
        seekable = opened or compression(head, what) == "plain"
        if seekable and isinstance(stored, Window):
            for kind, name, size, link in simple_headers(stored):
                records.append((_KINDS.get(kind, OTHER), name, size, link))
        with contextlib.ExitStack() as stack:
            plain = stored if seekable else stack.enter_context(decompressed(stored, what))
            tar = stack.enter_context(open_tar(plain, what, seekable=seekable))
            if tar is None:
                return read
            members = tar.members  # type: ignore[attr-defined]
            while (info := tar.next()) is not None:
                members.clear()
                records.append((kind_of(info), info.name, info.size, info.linkname))
    except _RECORD_ERRORS as exc:
        read.error = exc
    return read


def analyze_save(
    stream: IO[bytes],
    *,
    base_layers: int = 0,
    top: int = 10,
    progress: Progress | None = None,
) -> Analysis:
    """:func:`analyze` of a ``docker save`` read once as it arrives
    (:class:`~tagger.image.archive.StreamedSave`): each layer's headers are taken as the
    stream passes, and replayed in order once the manifest has named the order."""
    saved = StreamedSave(stream, read_records)
    count = len(saved.layers)

    @contextlib.contextmanager
    def records(layer: LayerInfo) -> Iterator[Iterable[Record]]:
        if progress is not None:
            progress(
                f"reading layer {layer.index + 1}/{count} "
                f"({short_digest(layer.diff_id)}, {human_size(layer.size)})"
            )
        yield saved.layer_result(layer.index).replayed(layer.index)

    return _measure(saved.name, saved.layers, records, base_layers=base_layers, top=top)


def analyze(
    source: ImageSource,
    *,
    base_layers: int = 0,
    top: int = 10,
    progress: Progress | None = None,
    workers: int = 1,
) -> Analysis:
    """Replay ``source``'s layers bottom first and measure them (see the module docstring).

    ``base_layers`` bottom layers are the base image's; ``top`` worst paths are kept.
    ``workers`` > 1: that many layers are read at once, each into its records, while the
    replay goes on in order (:func:`_read_ahead`).
    """
    layers = list(source.layers)

    def note(layer: LayerInfo) -> None:
        if progress is not None:
            progress(
                f"reading layer {layer.index + 1}/{len(layers)} "
                f"({short_digest(layer.diff_id)}, {human_size(layer.size)})"
            )

    if workers > 1 and len(layers) > 1:
        with _read_ahead(source, layers, workers) as results:

            @contextlib.contextmanager
            def ahead(layer: LayerInfo) -> Iterator[Iterable[Record]]:
                note(layer)
                yield results[layer.index].result().replayed(layer.index)

            return _measure(source.name, layers, ahead, base_layers=base_layers, top=top)

    @contextlib.contextmanager
    def records(layer: LayerInfo) -> Iterator[Iterable[tarfile.TarInfo]]:
        note(layer)
        with _layer_tar(source, layer) as tar:
            yield _entries(tar, layer.index)

    return _measure(source.name, layers, records, base_layers=base_layers, top=top)


class _Stopped(Exception):
    """The analysis ended (an error in an earlier layer): a reader ahead stops."""


class _StopAware(io.RawIOBase):
    """A layer stream that stops being read once ``stop`` is set."""

    def __init__(self, raw: IO[bytes], stop: threading.Event) -> None:
        self._raw = raw
        self._stop = stop

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._stop.is_set():
            raise _Stopped
        return self._raw.readinto(buffer)  # type: ignore[attr-defined, no-any-return]


@contextlib.contextmanager
def _read_ahead(
    source: ImageSource, layers: Sequence[LayerInfo], workers: int
) -> Iterator[list[Future[_LayerRecords]]]:
    """Each layer read by one of ``workers`` threads into its records, lowest layers
    first; the replay takes them in order. A layer's error is raised in its turn, as the
    source raises it (a registry's layer that breaks off stays the registry's error),
    after the records read before it. The threads are daemons and stop reading when the
    analysis ends, so an error never waits for the other layers' downloads.

    Why: a registry serves layers as fast as they are asked for, and the gunzip and the
    digest of one layer (both outside the GIL) overlap another's download: 0.9x dive with
    one layer at a time on the 150 MB image of benchmarks/README.md."""
    stop = threading.Event()
    results: list[Future[_LayerRecords]] = [Future() for _ in layers]
    pending: queue.SimpleQueue[int] = queue.SimpleQueue()
    for layer in layers:
        pending.put(layer.index)

    def work() -> None:
        while not stop.is_set():
            try:
                index = pending.get_nowait()
            except queue.Empty:
                return
            got = _LayerRecords()
            try:
                with source.open_layer(index) as plain:
                    got = read_records(
                        cast(IO[bytes], _StopAware(plain, stop)), f"layer {index}", opened=True
                    )
                    got.raise_here(index)  # inside, so the source names it its way
            except _Stopped:
                return
            except Exception as exc:
                got.error, got.final = exc, True
            results[index].set_result(got)

    threads = [
        threading.Thread(target=work, name=f"imgtag-layer-{n}", daemon=True)
        for n in range(min(workers, len(layers)))
    ]
    for thread in threads:
        thread.start()
    try:
        yield results
    finally:
        stop.set()


def _measure(
    name: str,
    layers: Sequence[LayerInfo],
    records: Callable[
        [LayerInfo], contextlib.AbstractContextManager[Iterable[tarfile.TarInfo] | Iterable[Record]]
    ],
    *,
    base_layers: int,
    top: int,
) -> Analysis:
    if not 0 <= base_layers <= len(layers):
        raise UsageError(f"the base cannot be {base_layers} layers of an image with {len(layers)}")
    replay = _Measure(len(layers))
    for layer in layers:
        replay.current = layer.index
        with records(layer) as entries:
            for entry in entries:
                if isinstance(entry, tuple):
                    replay.record(entry)
                else:
                    replay.entry(entry)
    reports = tuple(
        LayerReport(
            index=layer.index,
            digest=layer.diff_id,
            size=replay.layer_bytes[i],
            stored_size=layer.size,
            wasted_bytes=replay.layer_wasted[i],
            entries=replay.layer_entries[i],
            created_by=layer.created_by,
        )
        for i, layer in enumerate(layers)
    )
    ranked = sorted(replay.wasted.items(), key=lambda item: (-item[1].bytes, item[0]))
    worst = tuple(
        WastedPath(
            path, record.bytes, tuple(sorted(record.layers)), tuple(sorted(record.removed_in))
        )
        for path, record in ranked[: max(0, top)]
    )
    user = reports[base_layers:]
    return Analysis(
        image=name,
        size=sum(r.size for r in reports),
        stored_size=sum(r.stored_size for r in reports),
        wasted_bytes=sum(r.wasted_bytes for r in reports),
        user_wasted_bytes=sum(r.wasted_bytes for r in user),
        user_size=sum(r.size for r in user),
        base_layers=base_layers,
        layers=reports,
        worst=worst,
    )


# --- thresholds --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Check:
    """One CI threshold and how the image fared (``passed``)."""

    option: str
    limit: float  # an int for --highest-wasted-bytes
    value: float
    passed: bool
    message: str


def check_thresholds(
    analysis: Analysis,
    *,
    lowest_efficiency: float | None = None,
    highest_wasted_bytes: int | None = None,
    highest_user_wasted_percent: float | None = None,
) -> list[Check]:
    """Each threshold given, checked as dive's CI rules do: below the lowest efficiency or
    above a highest value fails; the limit itself passes.

    >>> a = Analysis("x", 100, 100, 30, 30, 100, 0, (), ())
    >>> [c.passed for c in check_thresholds(a, lowest_efficiency=0.7,
    ...                                     highest_wasted_bytes=29)]
    [True, False]
    """
    checks: list[Check] = []
    if lowest_efficiency is not None:
        value = analysis.efficiency
        checks.append(
            Check(
                "--lowest-efficiency",
                lowest_efficiency,
                value,
                value >= lowest_efficiency,
                f"efficiency {value:.4f} is below --lowest-efficiency {lowest_efficiency:g}",
            )
        )
    if highest_wasted_bytes is not None:
        wasted = analysis.wasted_bytes
        checks.append(
            Check(
                "--highest-wasted-bytes",
                highest_wasted_bytes,
                wasted,
                wasted <= highest_wasted_bytes,
                f"wasted bytes {wasted} ({human_size(wasted)}) are above --highest-wasted-bytes "
                f"{highest_wasted_bytes} ({human_size(highest_wasted_bytes)})",
            )
        )
    if highest_user_wasted_percent is not None:
        percent = analysis.user_wasted_percent
        checks.append(
            Check(
                "--highest-user-wasted-percent",
                highest_user_wasted_percent,
                percent,
                percent <= highest_user_wasted_percent,
                f"user wasted percent {percent:.2f} is above --highest-user-wasted-percent "
                f"{highest_user_wasted_percent:g}",
            )
        )
    return checks


# --- sizes --------------------------------------------------------------------------------

_SIZE_RE = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([a-z]*)\s*\Z", re.IGNORECASE)
_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "ki": 2**10,
    "kib": 2**10,
    "mi": 2**20,
    "mib": 2**20,
    "gi": 2**30,
    "gib": 2**30,
    "ti": 2**40,
    "tib": 2**40,
}


_MAX_SIZE = 2**63 - 1


def parse_size(text: str) -> int:
    """Bytes from ``1024``, ``20MB`` (SI, as dive's go-humanize reads it), ``20MiB``,
    ``1.5GB``; case does not matter.

    >>> parse_size("20MB"), parse_size("20MiB"), parse_size("1.5gb"), parse_size("512")
    (20000000, 20971520, 1500000000, 512)
    >>> parse_size("lots")
    Traceback (most recent call last):
    ...
    tagger.errors.UsageError: "lots" is not a size: write bytes, or e.g. 20MB, 20MiB, 1.5GB
    """
    match = _SIZE_RE.match(text)
    unit = _UNITS.get(match.group(2).lower()) if match else None
    if match is None or unit is None:
        raise UsageError(f'"{text[:40]}" is not a size: write bytes, or e.g. 20MB, 20MiB, 1.5GB')
    # Exact decimal arithmetic, bounded: a float overflows to inf on 320 digits.
    number = match.group(1)
    size = int(Decimal(number) * unit) if len(number) <= 40 else _MAX_SIZE + 1
    if size > _MAX_SIZE:
        raise UsageError(f'"{text[:40]}" is larger than any image can be (at most 8 EiB)')
    return size


def human_size(size: float) -> str:
    """Binary units, as ``docker images`` and ``du -h`` show them.

    >>> human_size(0), human_size(1023), human_size(20971520), human_size(1536 * 2**20)
    ('0 B', '1023 B', '20.0 MiB', '1.5 GiB')
    """
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def short_digest(digest: str) -> str:
    """``sha256:`` and the first 12 hex digits.

    >>> short_digest("sha256:0123456789abcdef0123")
    'sha256:0123456789ab'
    """
    algo, _, hexpart = digest.partition(":")
    return f"{algo}:{hexpart[:12]}" if hexpart else digest[:19]


# --- the text report -----------------------------------------------------------------------


def render_text(
    analysis: Analysis, checks: Sequence[Check] = (), *, base_note: str = "", width: int = 120
) -> str:
    """The human report: a summary like dive's CI output, a layer table, the worst paths and
    the threshold results. Returns the text (rich renders into a string, no colour)."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    out = io.StringIO()
    console = Console(
        file=out, width=width, no_color=True, highlight=False, emoji=False, color_system=None
    )
    a = analysis

    def line(text: str) -> None:
        console.print(text, markup=False, soft_wrap=True)

    base = f"{a.base_layers}" + (f" ({base_note})" if base_note else "")
    line(f"Image: {a.image}")
    line(f"  layers: {len(a.layers)}, base layers: {base}")
    line(
        f"  size: {a.size} bytes ({human_size(a.size)}), final {human_size(a.final_size)}, "
        f"stored {human_size(a.stored_size)}"
    )
    line(f"  efficiency: {100 * a.efficiency:.4f} %")
    line(f"  wasted bytes: {a.wasted_bytes} bytes ({human_size(a.wasted_bytes)})")
    line(
        f"  user wasted percent: {a.user_wasted_percent:.4f} % "
        f"({human_size(a.user_wasted_bytes)} of {human_size(a.user_size)})"
    )
    layers = Table(box=box.SIMPLE, title="Layers", title_justify="left", pad_edge=False)
    for header, justify in (
        ("#", "right"),
        ("Size", "right"),
        ("Wasted", "right"),
        ("Stored", "right"),
        ("Digest", "left"),
        ("Created by", "left"),
    ):
        layers.add_column(header, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    # The instruction gets what the figures leave, cut with an ellipsis.
    layers.columns[-1].overflow = "ellipsis"
    layers.columns[-1].max_width = max(20, width - 75)
    for layer in a.layers:
        mark = "*" if layer.index < a.base_layers else ""
        layers.add_row(
            f"{mark}{layer.index}",
            human_size(layer.size),
            human_size(layer.wasted_bytes) if layer.wasted_bytes else "-",
            human_size(layer.stored_size),
            short_digest(layer.digest),
            " ".join(layer.created_by.split()) or "-",
        )
    console.print(layers)
    if a.base_layers:
        line("  * a layer of the base image")
    if a.worst:
        worst = Table(box=box.SIMPLE, title="Wasted space", title_justify="left", pad_edge=False)
        worst.add_column("Wasted", justify="right", no_wrap=True)
        worst.add_column("Written in", justify="left", no_wrap=True)
        worst.add_column("Removed in", justify="left", no_wrap=True)
        worst.add_column("Path", justify="left", overflow="fold")
        for path in a.worst:
            worst.add_row(
                human_size(path.wasted_bytes),
                ",".join(map(str, path.layers)),
                ",".join(map(str, path.removed_in)),
                path.path,
            )
        console.print(worst)
    else:
        line("No wasted space.")
    if checks:
        line("Results:")
        for check in checks:
            verdict = "PASS" if check.passed else "FAIL"
            detail = "" if check.passed else f": {check.message}"
            limit = f"{check.limit:g}" if isinstance(check.limit, float) else str(check.limit)
            line(f"  {verdict}: {check.option} {limit}{detail}")
        failed = sum(not c.passed for c in checks)
        line(
            f"Result: {'FAIL' if failed else 'PASS'} [total {len(checks)}] "
            f"[passed {len(checks) - failed}] [failed {failed}]"
        )
    # rich pads lines to the width; a CI log is easier to read (and diff) without.
    return "".join(text.rstrip() + "\n" for text in out.getvalue().splitlines())
