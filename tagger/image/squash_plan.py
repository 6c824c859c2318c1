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

Every walk is iterative and keeps no path string per base path: a tree the engine applies
may be 2,000 levels deep (Linux's PATH_MAX is 4096 bytes), deeper than Python's recursion.

Member names are untrusted: ``./a``, ``/a``, ``a/`` and ``b/../a`` mean ``a``; a name that
climbs out of the root is an :class:`~tagger.errors.ImageFormatError`, as are sparse
members (their data is not one contiguous run to copy).
"""

from __future__ import annotations

import copy
import tarfile
from collections.abc import Iterable, Sequence
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


# The base tree's shape: a directory's children by name, ``None`` for anything else.
_Shape = dict[str, "_Shape | None"]


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
    replay.expand()  # a node per directory: each may need an entry or a whiteout
    base_shape = _snapshot(replay.root)
    for index, members in enumerate(squashed_layers, start=len(base_layers)):
        replay.layer(index, members)
    replay.expand()
    return _emit(replay.root, base_shape, len(base_layers))


def _snapshot(root: Node) -> _Shape:
    """The base tree's shape: each directory's children by name, ``None`` for anything else.
    Names only, no path strings (one per level of a deep tree would be quadratic)."""
    shape: _Shape = {}
    stack: list[tuple[Node, _Shape]] = [(root, shape)]
    while stack:
        node, out = stack.pop()
        assert node.children is not None
        for name, child in node.children.items():
            if child.children is None:
                out[name] = None
            else:
                sub: _Shape = {}
                out[name] = sub
                stack.append((child, sub))
    return shape


def _emit(root: Node, base: _Shape, base_count: int) -> SquashPlan:
    """The output entries, in one iterative walk (a layer may be thousands of levels deep).

    A node is the base's when a base layer made it (``made``); a squashed layer touched it
    when it wrote it last (``layer``), or an inode when it wrote or linked it last
    (``last``); a directory still shows the base's children under it (``shape``: the base's
    names there, ``None`` where the base is hidden or had no directory) unless a squashed
    layer made it anew or opaque. A directory's own entry goes before its subtree, and only
    if it changed or something below it is emitted: its slot is kept and filled (or left
    empty) once the subtree is done.
    """
    carrier: dict[int, str] = {}  # each touched inode's first path: it carries the data
    out: list[OutEntry | None] = []
    emitted = 0  # entries in ``out`` that are not empty slots
    whiteouts = data_bytes = 0
    # (parent's path, name, node, base shape, slot, emitted then): a node to visit (slot
    # -1), or a directory whose subtree is done (its entry's slot in ``out``).
    stack: list[tuple[str, str, Node, _Shape | None, int, int]] = [("", "", root, base, -1, 0)]
    while stack:
        parent, name, node, shape, slot, before = stack.pop()
        path = _join(parent, name)
        if slot >= 0:
            changed = node.made >= base_count or node.layer >= base_count
            if emitted > before or changed:
                out[slot] = OutEntry(_dir_info(path, node.header), None)
                emitted += 1
            continue
        children = node.children
        if children is None:
            entry = _leaf(path, node, carrier, base_count)
            if entry is not None:
                out.append(entry)
                emitted += 1
                if entry.source is not None:
                    data_bytes += entry.source.size
            continue
        if path:
            stack.append((parent, name, node, None, len(out), emitted))
            out.append(None)  # this directory's entry, if it is emitted
        keeps_base = node.made < base_count and node.opaque < base_count
        opaque = shape is not None and not keeps_base and bool(path)
        if opaque:
            # A directory made anew (or opaque) over a base directory hides all of it.
            out.append(OutEntry(_whiteout_info(f"{path}/{OPAQUE_WHITEOUT}"), None))
            emitted += 1
            whiteouts += 1
        elif shape:
            # The root cannot be made opaque: a whiteout for each base child that is gone
            # (and its surviving children, all made anew, get markers of their own).
            for gone in sorted(shape.keys() - children.keys()):
                out.append(OutEntry(_whiteout_info(whiteout_name(_join(path, gone))), None))
                emitted += 1
                whiteouts += 1
        below = None if opaque or shape is None else shape
        for child in sorted(children, reverse=True):  # popped in sorted order
            sub = below.get(child) if below else None
            stack.append((path, child, children[child], sub, -1, 0))
    entries = tuple(entry for entry in out if entry is not None)
    return SquashPlan(entries, whiteouts=whiteouts, data_bytes=data_bytes)


def _join(path: str, name: str) -> str:
    return f"{path}/{name}" if path else name


def _leaf(path: str, node: Node, carrier: dict[int, str], base_count: int) -> OutEntry | None:
    inode = node.inode
    if inode is not None:
        if inode.last < base_count:
            return None
        first = carrier.setdefault(id(inode), path)
        info = _clean(inode.header, path)
        if first == path:
            info.type = tarfile.REGTYPE
            info.linkname = ""
            info.size = inode.size
            return OutEntry(info, Source(inode.layer, inode.data.offset_data, inode.size))
        info.type = tarfile.LNKTYPE
        info.linkname = first
        info.size = 0
        return OutEntry(info, None)
    if node.made < base_count:
        return None
    assert node.header is not None
    info = _clean(node.header, path)
    info.size = 0
    return OutEntry(info, None)


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
