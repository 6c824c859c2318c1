"""Planning a squash: which tar entries the one merged layer holds, in which order. Pure.

:func:`plan_squash` replays the headers of an image's layers (bottom first) onto an
in-memory tree of paths, as the engine applies them, and returns the entries of ONE layer
that, applied over the base layers, gives the same file tree as the squashed layers did.
It reads no data: each output entry says where its bytes are (``Source``: a layer index and
the data offset ``tarfile`` found), and :mod:`tagger.image.squash` copies them.

The replay follows the engine (moby ``pkg/archive`` ``UnpackLayer``) and the OCI layer spec
(https://github.com/opencontainers/image-spec/blob/main/layer.md):

- an entry at a path that exists replaces it, except a directory over a directory, which
  merges (the new header wins, the children stay); a missing parent is created 0755;
- ``.wh.NAME`` deletes ``NAME`` (and its subtree), ``.wh..wh..opq`` every child of its
  directory, from the LOWER layers only: a layer's whiteouts are applied before its other
  entries ("whiteout files MUST only apply to resources in lower/parent layers");
- a hard link names an inode, not a path: it keeps the data when its target is later
  overwritten or deleted, and a link header's metadata becomes the inode's (moby chmods,
  chowns and chtimes the link target after ``os.Link``).

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

Member names are untrusted: ``./a``, ``/a`` and ``a/`` mean ``a``; a ``..`` component is an
:class:`~tagger.errors.ImageFormatError`, as are sparse members and hard links to nothing.
"""

from __future__ import annotations

import copy
import posixpath
import tarfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from tagger.errors import ImageFormatError

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"

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


def normalise(name: str) -> str:
    """A member name as a path relative to the root, ``""`` for the root itself.

    >>> normalise("./usr/bin/"), normalise("/etc//passwd"), normalise("."), normalise("./")
    ('usr/bin', 'etc/passwd', '', '')
    >>> normalise("a/../../etc")
    Traceback (most recent call last):
    ...
    tagger.errors.ImageFormatError: a layer has a member outside the root: 'a/../../etc'
    """
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ImageFormatError(f"a layer has a member outside the root: {name!r}")
    return "/".join(parts)


class _Inode:
    """A regular file's data and metadata, shared by its hard links."""

    __slots__ = ("info", "source", "touched")

    def __init__(self, info: tarfile.TarInfo, source: Source, touched: bool) -> None:
        self.info = info  # the last header that wrote it (metadata)
        self.source = source
        self.touched = touched  # a squashed layer wrote or linked it


class _Node:
    __slots__ = ("base", "children", "info", "inode", "keeps_base", "touched")

    def __init__(
        self,
        info: tarfile.TarInfo | None,
        *,
        base: bool,
        inode: _Inode | None = None,
        is_dir: bool = False,
    ) -> None:
        self.info = info  # None: an implicit parent directory, or the root
        self.inode = inode
        self.children: dict[str, _Node] | None = {} if is_dir else None
        self.base = base  # made while replaying the base layers
        self.touched = False  # a squashed layer wrote this directory's header
        # Directories: the base's children under it are still visible (False once the
        # directory was made anew or opaque in a squashed layer).
        self.keeps_base = base


def _implicit_dir(base: bool) -> _Node:
    return _Node(None, base=base, is_dir=True)


class _Replay:
    def __init__(self) -> None:
        self.root = _implicit_dir(base=True)
        self.in_base = True

    def parent(self, parts: list[str]) -> _Node:
        """The directory holding ``parts[-1]``; missing or non-directory parents are made
        anew (the engine's MkdirAll)."""
        node = self.root
        for part in parts[:-1]:
            assert node.children is not None
            child = node.children.get(part)
            if child is None or child.children is None:
                child = _implicit_dir(self.in_base)
                node.children[part] = child
            node = child
        return node

    def lookup(self, path: str) -> _Node | None:
        node: _Node | None = self.root
        for part in path.split("/") if path else []:
            if node is None or node.children is None:
                return None
            node = node.children.get(part)
        return node

    def layer(self, index: int, members: Iterable[tarfile.TarInfo]) -> None:
        entries: list[tuple[str, tarfile.TarInfo]] = []
        for info in members:
            if info.sparse is not None:
                raise ImageFormatError(f"layer {index} has a sparse member {info.name!r}")
            path = normalise(info.name)
            base = posixpath.basename(path)
            if base.startswith(WHITEOUT_PREFIX):
                self.whiteout(path, base)
            else:
                entries.append((path, info))
        for path, info in entries:
            self.entry(index, path, info)

    def whiteout(self, path: str, base: str) -> None:
        directory = self.lookup(posixpath.dirname(path))
        if directory is None or directory.children is None:
            return
        if base == OPAQUE_MARKER:
            directory.children.clear()
            # Only a squashed layer's marker hides the base; the base's own markers are
            # part of the base (its lower layers are below it at load time anyway).
            directory.keeps_base = directory.keeps_base and self.in_base
        else:
            directory.children.pop(base[len(WHITEOUT_PREFIX) :], None)

    def entry(self, index: int, path: str, info: tarfile.TarInfo) -> None:
        if not path:  # the root directory's own header: its metadata is the engine's
            return
        parts = path.split("/")
        parent = self.parent(parts)
        assert parent.children is not None
        name = parts[-1]
        old = parent.children.get(name)
        touched = not self.in_base
        if info.isdir():
            if old is not None and old.children is not None:
                old.info = info  # a directory over a directory merges
                old.touched = old.touched or touched
                return
            parent.children[name] = _Node(info, base=self.in_base, is_dir=True)
            return
        if info.islnk():
            target = self.lookup(normalise(info.linkname))
            if target is None:
                raise ImageFormatError(
                    f"layer {index} links {info.name!r} to {info.linkname!r}, which no "
                    "layer below or before it has"
                )
            if target.inode is not None:
                # The link header's metadata becomes the inode's (moby chmods the target).
                inode = target.inode
                inode.info = _with_data_size(info, inode.source.size)
                inode.touched = inode.touched or touched
                parent.children[name] = _Node(info, base=self.in_base, inode=inode)
            else:
                # A hard link to a symlink, device or fifo: the same kind of entry again.
                clone = copy.copy(target.info) if target.info is not None else None
                if clone is None or target.children is not None:
                    raise ImageFormatError(f"layer {index} hard-links {info.name!r} to a directory")
                parent.children[name] = _Node(clone, base=self.in_base)
            return
        if info.isreg():
            source = Source(index, info.offset_data, info.size)
            inode = _Inode(info, source, touched)
            parent.children[name] = _Node(info, base=self.in_base, inode=inode)
            return
        parent.children[name] = _Node(info, base=self.in_base)


def _with_data_size(info: tarfile.TarInfo, size: int) -> tarfile.TarInfo:
    clone = copy.copy(info)
    clone.size = size
    return clone


def plan_squash(
    base_layers: Sequence[Iterable[tarfile.TarInfo]],
    squashed_layers: Sequence[Iterable[tarfile.TarInfo]],
) -> SquashPlan:
    """The entries of one layer equal to ``squashed_layers`` applied over ``base_layers``.

    Each layer is its tar headers in order (``tarfile`` members with ``offset_data``);
    ``Source.layer`` counts base layers first. Only headers are read, never data.
    """
    replay = _Replay()
    for index, members in enumerate(base_layers):
        replay.layer(index, members)
    base_index = _snapshot(replay.root)
    replay.in_base = False
    for index, members in enumerate(squashed_layers, start=len(base_layers)):
        replay.layer(index, members)
    return _emit(replay.root, base_index)


def _snapshot(root: _Node) -> dict[str, frozenset[str] | None]:
    """Every base path: a directory's child names, or ``None`` for a non-directory."""
    index: dict[str, frozenset[str] | None] = {}
    stack: list[tuple[str, _Node]] = [("", root)]
    while stack:
        path, node = stack.pop()
        if node.children is None:
            index[path] = None
            continue
        index[path] = frozenset(node.children)
        for name, child in node.children.items():
            stack.append((f"{path}/{name}" if path else name, child))
    return index


def _walk(node: _Node, path: str) -> Iterator[tuple[str, _Node]]:
    """Depth first, parents before children, names sorted (the emission order)."""
    yield path, node
    if node.children:
        for name in sorted(node.children):
            yield from _walk(node.children[name], f"{path}/{name}" if path else name)


def _emit(root: _Node, base_index: dict[str, frozenset[str] | None]) -> SquashPlan:
    # Each touched inode's first path in emission order carries its data.
    carrier: dict[int, str] = {}
    for path, node in _walk(root, ""):
        if node.inode is not None and node.inode.touched:
            carrier.setdefault(id(node.inode), path)
    counts = [0, 0]  # whiteouts, data bytes

    def subtree(path: str, node: _Node, base_visible: bool) -> list[OutEntry]:
        if node.children is None:
            return _leaf(path, node, carrier, counts)
        out: list[OutEntry] = []
        base_children = base_index.get(path) if base_visible else None
        opaque = base_children is not None and not node.keeps_base and bool(path)
        if opaque:
            # A directory made anew (or opaque) over a base directory hides all of it.
            out.append(OutEntry(_whiteout_info(f"{path}/{OPAQUE_MARKER}"), None))
            counts[0] += 1
        elif base_children:
            # The root cannot be made opaque: a whiteout for each base child that is gone
            # (and its surviving children, all made anew, get markers of their own).
            for gone in sorted(base_children - node.children.keys()):
                out.append(OutEntry(_whiteout_info(_join(path, WHITEOUT_PREFIX + gone)), None))
                counts[0] += 1
        child_visible = base_visible and not opaque
        for name in sorted(node.children):
            out.extend(subtree(_join(path, name), node.children[name], child_visible))
        changed = not node.base or node.touched
        if path and (out or changed):
            out.insert(0, OutEntry(_dir_info(path, node.info), None))
        return out

    entries = subtree("", root, True)
    return SquashPlan(tuple(entries), whiteouts=counts[0], data_bytes=counts[1])


def _join(path: str, name: str) -> str:
    return f"{path}/{name}" if path else name


def _leaf(path: str, node: _Node, carrier: dict[int, str], counts: list[int]) -> list[OutEntry]:
    inode = node.inode
    if inode is not None:
        if not inode.touched:
            return []
        first = carrier[id(inode)]
        info = _clean(inode.info, path)
        if first == path:
            info.type = tarfile.REGTYPE
            info.linkname = ""
            info.size = inode.source.size
            counts[1] += inode.source.size
            return [OutEntry(info, inode.source)]
        info.type = tarfile.LNKTYPE
        info.linkname = first
        info.size = 0
        return [OutEntry(info, None)]
    if node.base:
        return []
    assert node.info is not None
    info = _clean(node.info, path)
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
