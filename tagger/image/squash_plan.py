"""Planning a squash: which tar entries the one merged layer holds, in which order. Pure.

:func:`plan_squash` replays the headers of an image's layers (bottom first) onto an
in-memory tree of paths, as the engine applies them, and returns the entries of ONE layer
that, applied over the base layers, gives the same file tree as the squashed layers did.
It reads no data: each output entry says where its bytes are (``Source``: a layer index and
the data offset ``tarfile`` found), and :mod:`tagger.image.squash` copies them.

The replay is :class:`tagger.image.overlay.Replay`, the one ``analyze`` measures with: it
follows the engine (moby ``pkg/archive`` ``UnpackLayer``) and the OCI layer spec (entries
replace, directories merge, whiteouts hide lower layers only, hard links share an inode
whose metadata the last link header sets). Here it is strict: a hard link to nothing or to
a directory is an :class:`~tagger.errors.ImageFormatError`, since the planned layer must be
one the engine can apply.

The output layer:

- parents before children (depth first, names sorted), every ancestor of a changed path
  included with its final header (else the engine would make it 0755 root in the new layer,
  and overlayfs shows the upper directory's attributes);
- each inode's data once, under its first path; its other paths are hard links to that one,
  after it. Links across layers cannot be applied on overlay2 (the engine untars a layer
  into its own directory), so an inode touched by a squashed layer is emitted whole, with
  data copied from the base layer when that is where its bytes are;
- whiteouts only where the BASE has something to hide: ``.wh.NAME`` for a base path that is
  gone, ``.wh..wh..opq`` in a directory that replaced a base directory (deleted and made
  anew, or made opaque); whiteouts that hide squashed-layer content only are dropped.

Member names are untrusted: ``./a``, ``/a``, ``a/`` and ``b/../a`` mean ``a``; a name that
climbs out of the root is an :class:`~tagger.errors.ImageFormatError`, as are sparse
members (their data is not one contiguous run to copy).
"""

from __future__ import annotations

import copy
import tarfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from tagger.errors import ImageFormatError
from tagger.image.overlay import OPAQUE_WHITEOUT, Node, Replay, kind_of, whiteout_name

# The opaque marker's name, as callers of the planner knew it (the grammar is overlay's).
OPAQUE_MARKER = OPAQUE_WHITEOUT

# PAX keys that restate attributes the output header sets itself: kept, they would win over
# the (normalised) name, link target or size (tarfile lets pax headers take priority).
_RESTATED_PAX_KEYS = frozenset({"path", "linkpath", "size", "uid", "gid", "uname", "gname"})


@dataclass(frozen=True, slots=True)
class Source:
    """Where an output file's bytes are: layer ``layer`` (an index into the layers given to
    :func:`plan_squash`, base layers first), ``offset`` (``TarInfo.offset_data``), ``size``."""

    layer: int
    offset: int
    size: int


@dataclass(frozen=True, slots=True)
class OutEntry:
    """One entry of the squashed layer: the header to write and, for a file, its bytes."""

    info: tarfile.TarInfo
    source: Source | None


@dataclass(frozen=True, slots=True)
class SquashPlan:
    """The squashed layer's entries in order, and a few counts for the report."""

    entries: tuple[OutEntry, ...]
    whiteouts: int
    data_bytes: int

    def tar_size(self, encoding: str = "utf-8") -> int:
        """The exact byte size of the layer tar :func:`header_bytes` and padding make."""
        total = 1024  # two zero blocks end the archive
        for entry in self.entries:
            total += len(header_bytes(entry.info, encoding))
            if entry.source is not None:
                total += _padded(entry.source.size)
        return total


def _padded(size: int) -> int:
    return (size + 511) // 512 * 512


def header_bytes(info: tarfile.TarInfo, encoding: str = "utf-8") -> bytes:
    """The PAX-format header block(s) of ``info`` (the same bytes for the size and the write).

    >>> info = tarfile.TarInfo("a/b")
    >>> len(header_bytes(info))
    512
    """
    return info.tobuf(tarfile.PAX_FORMAT, encoding, "surrogateescape")


class _Plan(Replay):
    """The replay (:mod:`tagger.image.overlay`), strict about hard links: the planned layer
    must be one the engine can apply."""

    def __init__(self) -> None:
        super().__init__(strict=True)

    def layer(self, index: int, members: Iterable[tarfile.TarInfo]) -> None:
        self.current = index
        for info in members:
            if info.sparse is not None:
                raise ImageFormatError(f"layer {index} has a sparse member {info.name!r}")
            self.apply(kind_of(info), info.name, info.size, info.linkname, info)


def plan_squash(
    base_layers: Sequence[Iterable[tarfile.TarInfo]],
    squashed_layers: Sequence[Iterable[tarfile.TarInfo]],
) -> SquashPlan:
    """The entries of one layer equal to ``squashed_layers`` applied over ``base_layers``.

    Each layer is its tar headers in order (``tarfile`` members with ``offset_data``);
    ``Source.layer`` counts base layers first. Only headers are read, never data.
    """
    replay = _Plan()
    for index, members in enumerate(base_layers):
        replay.layer(index, members)
    base_index = _snapshot(replay.root)
    for index, members in enumerate(squashed_layers, start=len(base_layers)):
        replay.layer(index, members)
    return _emit(replay.root, base_index, len(base_layers))


def _snapshot(root: Node) -> dict[str, frozenset[str] | None]:
    """Every base path: a directory's child names, or ``None`` for a non-directory."""
    index: dict[str, frozenset[str] | None] = {}
    stack: list[tuple[str, Node]] = [("", root)]
    while stack:
        path, node = stack.pop()
        if node.children is None:
            index[path] = None
            continue
        index[path] = frozenset(node.children)
        for name, child in node.children.items():
            stack.append((f"{path}/{name}" if path else name, child))
    return index


def _walk(node: Node, path: str) -> Iterator[tuple[str, Node]]:
    """Depth first, parents before children, names sorted (the emission order)."""
    yield path, node
    if node.children:
        for name in sorted(node.children):
            yield from _walk(node.children[name], f"{path}/{name}" if path else name)


def _emit(root: Node, base_index: dict[str, frozenset[str] | None], base_count: int) -> SquashPlan:
    """The output entries. A node is the base's when a base layer made it (``made``); a
    squashed layer touched it when it wrote it last (``layer``), or an inode when it wrote or
    linked it last (``last``); a directory still shows the base's children under it unless a
    squashed layer made it anew or opaque."""
    # Each touched inode's first path in emission order carries its data.
    carrier: dict[int, str] = {}
    for path, node in _walk(root, ""):
        if node.inode is not None and node.inode.last >= base_count:
            carrier.setdefault(id(node.inode), path)
    counts = [0, 0]  # whiteouts, data bytes

    def subtree(path: str, node: Node, base_visible: bool) -> list[OutEntry]:
        if node.children is None:
            return _leaf(path, node, carrier, counts, base_count)
        out: list[OutEntry] = []
        base_children = base_index.get(path) if base_visible else None
        keeps_base = node.made < base_count and node.opaque < base_count
        opaque = base_children is not None and not keeps_base and bool(path)
        if opaque:
            # A directory made anew (or opaque) over a base directory hides all of it.
            out.append(OutEntry(_whiteout_info(f"{path}/{OPAQUE_WHITEOUT}"), None))
            counts[0] += 1
        elif base_children:
            # The root cannot be made opaque: a whiteout for each base child that is gone
            # (and its surviving children, all made anew, get markers of their own).
            for gone in sorted(base_children - node.children.keys()):
                out.append(OutEntry(_whiteout_info(whiteout_name(_join(path, gone))), None))
                counts[0] += 1
        child_visible = base_visible and not opaque
        for name in sorted(node.children):
            out.extend(subtree(_join(path, name), node.children[name], child_visible))
        changed = node.made >= base_count or node.layer >= base_count
        if path and (out or changed):
            out.insert(0, OutEntry(_dir_info(path, node.header), None))
        return out

    entries = subtree("", root, True)
    return SquashPlan(tuple(entries), whiteouts=counts[0], data_bytes=counts[1])


def _join(path: str, name: str) -> str:
    return f"{path}/{name}" if path else name


def _leaf(
    path: str, node: Node, carrier: dict[int, str], counts: list[int], base_count: int
) -> list[OutEntry]:
    inode = node.inode
    if inode is not None:
        if inode.last < base_count:
            return []
        first = carrier[id(inode)]
        info = _clean(inode.header, path)
        if first == path:
            info.type = tarfile.REGTYPE
            info.linkname = ""
            info.size = inode.size
            counts[1] += inode.size
            return [OutEntry(info, Source(inode.layer, inode.data.offset_data, inode.size))]
        info.type = tarfile.LNKTYPE
        info.linkname = first
        info.size = 0
        return [OutEntry(info, None)]
    if node.made < base_count:
        return []
    assert node.header is not None
    info = _clean(node.header, path)
    info.size = 0
    return [OutEntry(info, None)]


def _clean(info: tarfile.TarInfo, path: str) -> tarfile.TarInfo:
    """A copy of ``info`` named ``path``, without pax keys that would override the header."""
    out = copy.copy(info)
    out.name = path
    out.pax_headers = {k: v for k, v in info.pax_headers.items() if k not in _RESTATED_PAX_KEYS}
    return out


def _dir_info(path: str, info: tarfile.TarInfo | None) -> tarfile.TarInfo:
    if info is None:  # an implicit parent: what the engine's MkdirAll would have made
        out = tarfile.TarInfo(path)
        out.type = tarfile.DIRTYPE
        out.mode = 0o755
        return out
    out = _clean(info, path)
    out.size = 0
    return out


def _whiteout_info(path: str) -> tarfile.TarInfo:
    # moby writes whiteouts as empty regular files, mode 0600 (pkg/archive, ConvertWrite).
    info = tarfile.TarInfo(path)
    info.mode = 0o600
    return info
