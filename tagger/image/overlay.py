"""Layer replay: the whiteout grammar and one application of layer headers onto a tree of
paths, as the engine applies layers. Pure, no I/O: it sees tar headers only, never data.

``analyze`` (what each layer wastes) and ``squash_plan`` (the one layer equal to many) both
replay through :class:`Replay`; they differ only in what they note on the way (hooks) and
in how strict they are about hard links to nothing (``analyze`` measures whatever it is
given, ``squash`` must write a layer the engine can apply).

The rules follow the engine (moby ``pkg/archive`` ``UnpackLayer``) and the OCI layer spec
(https://github.com/opencontainers/image-spec/blob/main/layer.md):

- names are normalised as ``filepath.Join(root, name)`` does (``./a``, ``/a``, ``a/`` and
  ``b/../a`` mean ``a``); a name that climbs out of the root is refused, as the engine
  refuses such a layer ("invalid path");
- an entry at a path that exists replaces it, except a directory over a directory, which
  merges (the new header wins, the children stay); so a file replaced by a directory, or a
  directory by a file, removes the old one and its whole subtree; a missing parent is made
  (0755, the engine's MkdirAll), and a non-directory in its way is removed;
- ``.wh.NAME`` removes ``NAME`` and everything below it, ``.wh..wh..opq`` everything below
  its directory, from the LOWER layers only: what the same layer writes stays, before or
  after the marker ("whiteout files MUST only apply to resources in lower/parent layers");
- a hard link names an inode, not a path: it shares its target's data, which stays alive
  while any of its names does; the link header's metadata becomes the inode's (moby chmods,
  chowns and chtimes the target after ``os.Link``). A hard link to a symlink, device or fifo
  is that kind of entry again.

Every walk is iterative: a layer may hold paths thousands of components deep. Directories
nobody declared (the parents an entry implies) are made as one node per chain: ``a/b/c/f``
in an empty tree is a node ``a`` whose :attr:`Node.tail` is ``b/c``, then ``f``. Such a
directory has no header and no data, so a chain needs no more than its names; a chain is
cut where an entry, a whiteout or a hard link reaches inside it. So the memory of a replay
grows with the entries a layer lists, not with the depth its paths imply (a 36 KiB gzip
layer of 300 paths 30,000 levels deep took 2.5 GB at a node per level).
"""

from __future__ import annotations

import sys
import tarfile
from typing import Any

from tagger.errors import ImageFormatError

WHITEOUT_PREFIX = ".wh."
OPAQUE_WHITEOUT = ".wh..wh..opq"

# What a tar entry is to the replay (and what a node of the tree is: no LINK nodes).
DIR, FILE, LINK, OTHER = 0, 1, 2, 3


def kind_of(info: tarfile.TarInfo) -> int:
    """The replay's kind of a tar header: DIR, LINK (a hard link), FILE or OTHER."""
    if info.isdir():
        return DIR
    if info.islnk():
        return LINK
    if info.isreg():
        return FILE
    return OTHER


def whiteout_name(name: str) -> str:
    """The entry that hides ``name`` in a layer above.

    >>> whiteout_name("etc"), whiteout_name("usr/lib/x.so")
    ('.wh.etc', 'usr/lib/.wh.x.so')
    """
    head, slash, base = name.rpartition("/")
    return f"{head}{slash}{WHITEOUT_PREFIX}{base}"


def split_path(name: str) -> list[str]:
    """A tar member name as path components below ``/``; climbing above ``/`` is bad input.

    >>> split_path("./usr//lib/../bin/")
    ['usr', 'bin']
    >>> split_path("/etc/passwd"), split_path("."), split_path("./")
    (['etc', 'passwd'], [], [])
    >>> split_path("a/../../etc")
    Traceback (most recent call last):
    ...
    tagger.errors.ImageFormatError: a layer has an entry outside the root: 'a/../../etc'
    """
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise ImageFormatError(f"a layer has an entry outside the root: {name[:200]!r}")
            parts.pop()
            continue
        parts.append(part)
    return parts


class Inode:
    """A regular file's data, shared by its hard links and alive while one of its names is.

    ``layer``: the layer whose entry holds the bytes (``data``: that entry's header, for its
    data offset); ``header``: the last header that wrote or linked it (its metadata);
    ``last``: the last layer that wrote or linked it."""

    __slots__ = ("data", "header", "last", "layer", "links", "size")

    def __init__(self, size: int, layer: int, header: Any) -> None:
        self.size = size
        self.layer = layer
        self.last = layer
        self.data = header
        self.header = header
        self.links = 1


class Node:
    """A path of the replayed tree. ``made``: the layer that created it (-1: the root);
    ``layer``: the last layer whose entry wrote it (a directory made for a child counts as
    written by that child's layer); ``header``: that entry's header (``None`` for a
    directory nobody declared); ``opaque``: the last layer that made this directory opaque
    (-1: none).

    ``tail``: ``""``, or the names of a chain of undeclared directories below this one, each
    the only child of the one before (``b/c``: this node stands for ``a``, ``a/b`` and
    ``a/b/c``, and ``children`` are those of ``a/b/c``). A node with a tail is an undeclared
    directory itself (no header, not opaque, ``layer == made``), as are all of its chain.
    """

    __slots__ = ("children", "header", "inode", "kind", "layer", "made", "opaque", "tail")

    def __init__(self, kind: int, layer: int, header: Any = None, inode: Inode | None = None):
        self.kind = kind
        self.made = layer
        self.layer = layer
        self.header = header
        self.inode = inode
        self.opaque = -1
        self.tail = ""
        self.children: dict[str, Node] | None = {} if kind == DIR else None


def _cut(node: Node, keep: int, names: list[str]) -> None:
    """Cut ``node``'s chain (``names``: its tail) after ``keep`` names: ``node`` then ends
    at the directory ``names[keep - 1]`` (itself for 0), whose only child is the rest."""
    rest = Node(DIR, node.made)
    rest.tail = "/".join(names[keep + 1 :])
    rest.children = node.children
    node.children = {sys.intern(names[keep]): rest}
    node.tail = "/".join(names[:keep])


def _alone(node: Node) -> Node:
    """``node``, cut from its chain so that it stands for its own directory only."""
    if node.tail:
        _cut(node, 0, node.tail.split("/"))
    return node


class Replay:
    """Layers applied one entry at a time: set :attr:`current` to the layer's index, then
    :meth:`apply` each of its headers in order.

    ``strict``: a hard link to nothing or to a directory is an ImageFormatError (the engine
    would fail to apply it); otherwise it becomes an entry without data. Subclasses note
    what they need in :meth:`wrote` and :meth:`freed`.
    """

    def __init__(self, *, strict: bool = False) -> None:
        self.root = Node(DIR, -1)
        self.current = 0
        self.strict = strict

    # -- hooks ---------------------------------------------------------------------------

    def wrote(self, path: str, node: Node, data: bool) -> None:
        """A file (``data``: it brought its bytes) or hard link entry was written at
        ``path`` (``/a/b``)."""

    def freed(self, inode: Inode, path: str) -> None:
        """``inode``'s last name, ``path``, left the tree: its data is gone."""

    # -- entries -------------------------------------------------------------------------

    def apply(
        self, kind: int, name: str, size: int = 0, linkname: str = "", header: Any = None
    ) -> None:
        """Apply one entry of layer :attr:`current` (``header`` is kept on the node)."""
        parts = split_path(name)
        if not parts:
            return  # the root directory's own header: its metadata is the engine's
        base = parts[-1]
        if base.startswith(WHITEOUT_PREFIX):
            self._whiteout(parts[:-1], base)
            return
        parent = self._parent(parts)
        children = parent.children
        assert children is not None
        path = "/" + "/".join(parts)
        existing = children.get(base)
        if kind == DIR:
            if existing is not None and existing.kind == DIR:
                _alone(existing).layer = self.current  # a directory over a directory merges
                existing.header = header
                return
            if existing is not None:
                self._remove_all(children, base, path)
            children[sys.intern(base)] = Node(DIR, self.current, header)
            return
        if kind == LINK:
            # Look the target up before removing what is at the path (a link to itself).
            target = self.lookup(split_path(linkname))
            if self.strict and target is None:
                raise ImageFormatError(
                    f"layer {self.current} links {name!r} to {linkname!r}, which no "
                    "layer below or before it has"
                )
            if self.strict and target is not None and target.kind == DIR:
                raise ImageFormatError(f"layer {self.current} hard-links {name!r} to a directory")
            inode = target.inode if target is not None and target.kind == FILE else None
            if existing is not None:
                self._remove_all(children, base, path)
            if inode is not None and inode.links > 0:
                inode.links += 1
                inode.last = self.current
                inode.header = header  # the link's metadata becomes the inode's
                node = children[base] = Node(FILE, self.current, header, inode)
            else:
                # A link to a symlink, device or fifo is that entry again; to nothing (not
                # strict), an entry without data.
                clone = target.header if target is not None and target.kind == OTHER else header
                node = children[base] = Node(OTHER, self.current, clone)
            self.wrote(path, node, False)
            return
        if existing is not None:
            self._remove_all(children, base, path)
        if kind == FILE:
            inode = Inode(size, self.current, header)
            node = children[base] = Node(FILE, self.current, header, inode)
            self.wrote(path, node, True)
        else:  # symlinks, devices, fifos: no data
            children[base] = Node(OTHER, self.current, header)

    def _whiteout(self, dir_parts: list[str], base: str) -> None:
        directory: Node | None = self.root
        if dir_parts:
            holder = self.lookup(dir_parts[:-1])
            if holder is None or holder.children is None:
                return
            directory = holder.children.get(dir_parts[-1])
        if directory is None or directory.children is None:
            return  # whiting out what is not there (or below a file) removes nothing
        _alone(directory)  # its own children, and opaque alone
        dir_path = "".join("/" + p for p in dir_parts)
        if base == OPAQUE_WHITEOUT:
            directory.opaque = self.current
            for name in list(directory.children):
                self._remove_lower(directory.children, name, dir_path + "/" + name)
            return
        name = base[len(WHITEOUT_PREFIX) :]
        if name in directory.children and name not in ("", ".", ".."):
            self._remove_lower(directory.children, name, dir_path + "/" + name)

    def _parent(self, parts: list[str]) -> Node:
        """The directory that holds ``parts`` (a node that ends there: its ``children`` are
        that directory's), made where missing, as one chain; a non-directory in the way is
        removed and replaced by a directory, as the engine's MkdirAll would need. No path
        string is built on the way (a deep path would make it quadratic)."""
        node = self.root
        last = len(parts) - 1
        depth = 0
        while depth < last:
            name = parts[depth]
            children = node.children
            assert children is not None
            child = children.get(name)
            if child is None or child.kind != DIR:
                if child is not None:
                    self._remove_all(children, name, "/" + "/".join(parts[: depth + 1]))
                child = Node(DIR, self.current)
                child.tail = "/".join(parts[depth + 1 : last])
                # Interned: a name repeated across the tree (lib, node_modules) is one str.
                children[sys.intern(name)] = child
                return child
            node = child
            depth += 1 + self._through(child, parts, depth + 1, last)
        return node

    def lookup(self, parts: list[str]) -> Node | None:
        """The node that ends at ``parts`` (the root for ``[]``), or ``None``. A path that
        ends inside a chain cuts it there, so that ``children`` are that directory's."""
        node = self.root
        depth = 0
        while depth < len(parts):
            if node.children is None:
                return None
            child = node.children.get(parts[depth])
            if child is None:
                return None
            node = child
            depth += 1 + self._through(child, parts, depth + 1, len(parts))
        return node

    @staticmethod
    def _through(node: Node, parts: list[str], start: int, stop: int) -> int:
        """How far ``parts[start:stop]`` follows ``node``'s chain; the chain is cut where
        the path leaves it or stops inside it, so that ``node`` ends there."""
        tail = node.tail
        if not tail:
            return 0
        count = tail.count("/") + 1
        if stop - start >= count and "/".join(parts[start : start + count]) == tail:
            return count  # the usual case: the whole chain
        names = tail.split("/")
        went = 0
        while went < count and start + went < stop and parts[start + went] == names[went]:
            went += 1
        _cut(node, went, names)
        return went

    def expand(self) -> None:
        """Cut every chain into a node per directory (what ``squash`` writes out)."""
        stack = [self.root]
        while stack:
            node = stack.pop()
            if node.tail:
                names = node.tail.split("/")
                below = node.children
                node.tail = ""
                for name in names:
                    child = Node(DIR, node.made)
                    assert node.children is not None
                    node.children = {sys.intern(name): child}
                    node = child
                node.children = below
            if node.children:
                stack.extend(child for child in node.children.values() if child.kind == DIR)

    # -- removals ------------------------------------------------------------------------

    def _drop(self, node: Node, path: str) -> None:
        inode = node.inode
        if inode is None:
            return
        inode.links -= 1
        if inode.links == 0:
            self.freed(inode, path)

    def _remove_all(self, children: dict[str, Node], name: str, path: str) -> None:
        """Remove ``name`` (at ``path``) and its whole subtree."""
        stack: list[tuple[Node, _Trail]] = [(children.pop(name), None)]
        while stack:
            node, trail = stack.pop()
            if node.children:
                here = (node.tail, trail) if node.tail else trail
                stack.extend((child, (n, here)) for n, child in node.children.items())
            elif node.inode is not None:
                self._drop(node, _path(path, trail))

    def _remove_lower(self, children: dict[str, Node], name: str, path: str) -> None:
        """Remove ``name`` and what is below it, but keep what the current layer wrote
        (and the directories that hold it): whiteouts only hide lower layers."""
        # Post-order without recursion: (parent's children, name, trail, expanded?).
        stack: list[tuple[dict[str, Node], str, _Trail, bool]] = [(children, name, None, False)]
        while stack:
            owner, key, trail, expanded = stack.pop()
            node = owner.get(key)
            if node is None:
                continue
            if node.kind == DIR:
                if node.children and not expanded:
                    stack.append((owner, key, trail, True))
                    kids = node.children
                    here = (node.tail, trail) if node.tail else trail
                    stack.extend((kids, n, (n, here), False) for n in list(kids))
                elif not node.children and node.layer != self.current:
                    del owner[key]
                # else: it holds (or is) what this layer wrote, so it stays
            elif node.layer != self.current:
                del owner[key]
                if node.inode is not None:
                    self._drop(node, _path(path, trail))


# Where a walk below a path is: (name, the trail of its parent), None at the start (a chain's
# tail, ``b/c``, is one name of several components here). Siblings
# share their parent's trail, so a walk thousands of levels deep holds one small tuple per
# level; a full path string is made only for a file whose data may be freed (a string per
# level, each as long as its path, would be quadratic in the depth).
_Trail = tuple[str, "_Trail"] | None


def _path(start: str, trail: _Trail) -> str:
    """The path ``trail`` leads to below ``start``."""
    names: list[str] = []
    while trail is not None:
        names.append(trail[0])
        trail = trail[1]
    names.append(start)
    return "/".join(reversed(names))
