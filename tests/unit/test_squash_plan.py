"""The pure squash planner (``tagger.image.squash_plan``) on synthetic layers made with
``tarfile`` in memory.

The main check is a model: a small reference applier (below, independent of the planner)
applies layers the way the engine does, and the base plus the ONE planned layer must give
the same tree as the base plus the original layers: every path's type, mode, owner, mtime,
content, symlink target, xattrs and hard-link group.
"""

from __future__ import annotations

import io
import sys
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))

import tarcraft as tc

from tagger.errors import ImageFormatError
from tagger.image.layers import open_tar
from tagger.image.squash_plan import OPAQUE_MARKER, SquashPlan, header_bytes, plan_squash

# ("file", name, content[, mode]) | ("dir", name[, mode]) | ("link", name, target)
# | ("sym", name, target) | ("fifo", name) | ("wh", name) | ("opq", dir)
Entry = tuple[Any, ...]


def layer(entries: Sequence[Entry], mtime: int = 1000) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            kind, name = entry[0], entry[1]
            info = tarfile.TarInfo(name)
            info.mtime = mtime
            data = None
            if kind == "file":
                data = entry[2].encode()
                info.size = len(data)
                info.mode = entry[3] if len(entry) > 3 else 0o644
            elif kind == "xfile":  # a file with an xattr
                data = entry[2].encode()
                info.size = len(data)
                info.pax_headers = {"SCHILY.xattr.user.k": "v"}
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
                info.mode = entry[2] if len(entry) > 2 else 0o755
            elif kind == "link":
                info.type, info.linkname = tarfile.LNKTYPE, entry[2]
            elif kind == "sym":
                info.type, info.linkname = tarfile.SYMTYPE, entry[2]
            elif kind == "fifo":
                info.type = tarfile.FIFOTYPE
            elif kind == "wh":
                head, _, tail = name.rpartition("/")
                info.name = f"{head}/.wh.{tail}" if head else f".wh.{tail}"
            elif kind == "opq":
                info.name = f"{name}/{OPAQUE_MARKER}"
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        return tar.getmembers()


def write_plan(plan: SquashPlan, layers: Sequence[bytes]) -> bytes:
    """The squashed layer, written as tagger.image.squash writes it (headers, data, padding)."""
    out = bytearray()
    for entry in plan.entries:
        out += header_bytes(entry.info)
        if entry.source is not None:
            src = entry.source
            out += layers[src.layer][src.offset : src.offset + src.size]
            out += bytes(-src.size % 512)
    out += bytes(1024)
    assert len(out) == plan.tar_size()
    return bytes(out)


# --- the reference applier --------------------------------------------------------------


class Inode:
    def __init__(self, content: bytes, info: tarfile.TarInfo, layer: int) -> None:
        self.content, self.info, self.layer = content, info, layer


def _norm(name: str) -> str:
    return "/".join(p for p in name.split("/") if p not in ("", "."))


def apply(fs: dict[str, Any], data: bytes, layer_no: int, strict: bool = False) -> None:
    """Apply one layer tar to ``fs`` (path -> ("dir", info) | Inode | ("other", info)).

    ``strict``: a hard link must name a file of the same layer, as on overlay2 (the engine
    untars each layer into a directory of its own); the synthetic inputs may break that.
    """
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        entries = [(m, tar.extractfile(m).read() if m.isreg() else b"") for m in tar]  # type: ignore[union-attr]
    for m, _ in entries:  # whiteouts first: they hide lower layers only
        path = _norm(m.name)
        head, _, base = path.rpartition("/")
        if base == OPAQUE_MARKER:
            for p in [p for p in fs if p.startswith(head + "/") or (not head and p)]:
                del fs[p]
        elif base.startswith(".wh."):
            gone = f"{head}/{base[4:]}" if head else base[4:]
            for p in [p for p in fs if p == gone or p.startswith(gone + "/")]:
                del fs[p]
    for m, content in entries:
        path = _norm(m.name)
        if path.rpartition("/")[2].startswith(".wh.") or not path:
            continue
        old = fs.get(path)
        if old is not None and not (isinstance(old, tuple) and old[0] == "dir" and m.isdir()):
            for p in [p for p in fs if p == path or p.startswith(path + "/")]:
                del fs[p]
        parent = path.rpartition("/")[0]
        while parent and parent not in fs:  # missing parents, deepest first
            implicit = tarfile.TarInfo(parent)
            implicit.type, implicit.mode = tarfile.DIRTYPE, 0o755
            fs[parent] = ("dir", implicit)
            parent = parent.rpartition("/")[0]
        if m.isdir():
            fs[path] = ("dir", m)
        elif m.islnk():
            target = fs[_norm(m.linkname)]
            assert isinstance(target, Inode)
            assert not strict or target.layer == layer_no, f"{path} links across layers"
            target.info = m
            fs[path] = target
        elif m.isreg():
            fs[path] = Inode(content, m, layer_no)
        else:
            fs[path] = ("other", m)


def _meta(info: tarfile.TarInfo) -> tuple[Any, ...]:
    xattrs = {k: v for k, v in info.pax_headers.items() if "xattr" in k}
    return (info.mode, info.uid, info.gid, int(info.mtime), tuple(sorted(xattrs.items())))


def view(fs: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    groups: dict[int, list[str]] = {}
    for path, node in fs.items():
        if isinstance(node, Inode):
            groups.setdefault(id(node), []).append(path)
    out: dict[str, tuple[Any, ...]] = {}
    for path, node in fs.items():
        if isinstance(node, Inode):
            out[path] = ("file", node.content, _meta(node.info), tuple(sorted(groups[id(node)])))
        else:
            kind, info = node
            out[path] = (kind, info.type, info.linkname if info.issym() else "", _meta(info))
    return out


def check(base: Sequence[Sequence[Entry]], own: Sequence[Sequence[Entry]]) -> bytes:
    """Plan, write, apply; assert the trees match; return the squashed layer."""
    base_tars = [layer(entries, 1000 + i) for i, entries in enumerate(base)]
    own_tars = [layer(entries, 2000 + i) for i, entries in enumerate(own)]
    every = base_tars + own_tars
    plan = plan_squash([members(t) for t in base_tars], [members(t) for t in own_tars])
    squashed = write_plan(plan, every)
    want: dict[str, Any] = {}
    for n, tar in enumerate(every):
        apply(want, tar, n)
    got: dict[str, Any] = {}
    for n, tar in enumerate([*base_tars, squashed]):
        apply(got, tar, n, strict=tar is squashed)
    assert view(got) == view(want)
    seen: set[str] = set()
    for name in (m.name.rstrip("/") for m in members(squashed)):  # parents before children
        parent = name.rpartition("/")[0]
        assert not parent or parent in seen, f"{name} before its parent"
        seen.add(name)
    return squashed


def names_of(data: bytes) -> list[str]:
    return [m.name.rstrip("/") for m in members(data)]


BASE: list[list[Entry]] = [
    [
        ("dir", "etc"),
        ("file", "etc/keep", "k"),
        ("file", "etc/delme", "d"),
        ("dir", "opt", 0o750),
        ("dir", "opt/gone"),
        ("file", "opt/gone/x", "x"),
        ("dir", "opt/opq"),
        ("file", "opt/opq/old", "o"),
        ("dir", "var"),
        ("file", "var/t", "t"),
    ]
]


def test_deletions_of_base_paths_stay_as_whiteouts_and_others_are_dropped() -> None:
    own: list[list[Entry]] = [
        [("dir", "tmp"), ("file", "tmp/scratch", "s" * 2000), ("file", "new", "n")],
        [("wh", "etc/delme"), ("wh", "opt/gone"), ("wh", "tmp/scratch")],
    ]
    out = check(BASE, own)
    names = names_of(out)
    assert "etc/.wh.delme" in names and "opt/.wh.gone" in names
    assert not any("scratch" in n for n in names)  # hides squashed-layer content only
    # The base's untouched files are not copied; an ancestor keeps its mode (0750).
    assert "etc/keep" not in names and "var/t" not in names
    assert {m.name.rstrip("/"): m.mode for m in members(out)}["opt"] == 0o750


def test_a_directory_made_anew_over_a_base_directory_is_opaque() -> None:
    own: list[list[Entry]] = [[("wh", "opt/opq"), ("dir", "opt/opq"), ("file", "opt/opq/new", "n")]]
    names = names_of(check(BASE, own))
    assert f"opt/opq/{OPAQUE_MARKER}" in names
    assert names.index("opt/opq") < names.index(f"opt/opq/{OPAQUE_MARKER}")


def test_an_opaque_marker_over_a_base_directory_stays_and_one_over_own_content_goes() -> None:
    own: list[list[Entry]] = [
        [("dir", "mine"), ("file", "mine/a", "a")],
        [("opq", "opt/opq"), ("file", "opt/opq/n", "n"), ("opq", "mine"), ("file", "mine/b", "b")],
    ]
    names = names_of(check(BASE, own))
    assert f"opt/opq/{OPAQUE_MARKER}" in names
    assert f"mine/{OPAQUE_MARKER}" not in names and "mine/a" not in names


def test_hard_links_survive_overwrite_and_delete_of_their_target() -> None:
    own: list[list[Entry]] = [
        [("file", "one", "first"), ("link", "one-link", "one"), ("file", "tmp", "tt")],
        [("link", "tmp-link", "tmp")],
        [("wh", "one"), ("file", "one", "second"), ("wh", "tmp")],
        [("link", "one2", "one")],
    ]
    out = check([], own)
    by_name = {m.name: m for m in members(out)}
    # Deleted target: the link's path carries the data itself.
    assert by_name["tmp-link"].isreg() and by_name["tmp-link"].size == 2
    assert by_name["one-link"].isreg()  # the old "one" inode, its first surviving path
    assert by_name["one2"].islnk() and by_name["one2"].linkname == "one"


def test_a_link_to_a_base_file_copies_the_base_file_into_the_layer() -> None:
    own: list[list[Entry]] = [[("link", "var/t2", "var/t")]]
    out = check(BASE, own)
    by_name = {m.name: m for m in members(out)}
    assert by_name["var/t"].isreg() and by_name["var/t2"].linkname == "var/t"


def test_type_changes_modes_symlinks_fifos_and_xattrs() -> None:
    own: list[list[Entry]] = [
        [
            ("file", "f2d", "f"),
            ("dir", "d2f"),
            ("file", "d2f/in", "i"),
            ("dir", "priv", 0o700),
            ("file", "priv/s", "s", 0o600),
            ("file", "suid", "x", 0o4755),
            ("dir", "empty"),
            ("sym", "sym", "/one"),
            ("fifo", "fifo"),
            ("xfile", "xattr", "x"),
        ],
        [("wh", "f2d"), ("dir", "f2d"), ("file", "f2d/inner", "i"), ("wh", "d2f")],
        [("file", "d2f", "now a file"), ("wh", "etc"), ("file", "etc", "etc is a file")],
    ]
    out = check(BASE, own)
    by_name = {m.name.rstrip("/"): m for m in members(out)}
    assert by_name["xattr"].pax_headers.get("SCHILY.xattr.user.k") == "v"
    assert by_name["suid"].mode == 0o4755 and by_name["empty"].isdir()


def test_a_directory_over_a_directory_merges_and_takes_the_new_header() -> None:
    own: list[list[Entry]] = [[("dir", "opt", 0o700), ("file", "opt/added", "a")]]
    out = check(BASE, own)
    names = names_of(out)
    assert {m.name.rstrip("/"): m.mode for m in members(out)}["opt"] == 0o700
    assert not any(".wh." in n for n in names)  # the base's children stay visible


def test_the_root_made_opaque_whites_out_each_base_child() -> None:
    own: list[list[Entry]] = [[("opq", "."), ("dir", "etc"), ("file", "etc/new", "n")]]
    names = names_of(check(BASE, own))
    assert {".wh.opt", ".wh.var", f"etc/{OPAQUE_MARKER}"} <= set(names)


def test_member_names_are_normalised_and_escapes_refused() -> None:
    own: list[list[Entry]] = [[("dir", "./a/"), ("file", "/a//b", "b")]]
    assert names_of(check([], own)) == ["a", "a/b"]
    with pytest.raises(ImageFormatError, match="outside the root"):
        plan_squash([], [members(layer([("file", "a/../../etc/passwd", "x")]))])


def test_a_link_to_nothing_is_refused() -> None:
    with pytest.raises(ImageFormatError, match="no layer below"):
        plan_squash([], [members(layer([("link", "a", "missing")]))])


def test_whiteouts_inside_the_base_are_the_base_s_business() -> None:
    base: list[list[Entry]] = [
        *BASE,
        [("opq", "opt/opq"), ("file", "opt/opq/newer", "n"), ("wh", "var/t")],
    ]
    own: list[list[Entry]] = [[("file", "top", "t")], [("file", "etc/more", "m")]]
    names = names_of(check(base, own))
    assert not any(".wh." in n for n in names) and "opt" not in names


# --- deep trees -------------------------------------------------------------------------

DEEP = "/".join(["d"] * 5000)  # 10 KB of name: the engine's limit is the bytes, not depth


def test_a_tree_5000_levels_deep_is_planned_without_recursion() -> None:
    """Raw GNU long-name headers (tests/tarcraft.py) read as squash reads them: the walks
    recursed once per level before (RecursionError: exit 70)."""
    deep = DEEP.encode()
    crafted = b"".join(
        [
            tc.gnu_long_name(deep + b"/f"),
            tc.entry("f", b"hello"),
            tc.gnu_long_name(deep + b"/f", type_=b"K"),
            tc.gnu_long_name(deep + b"/l"),
            tc.header("l", type_=b"1"),
            tc.end(),
        ]
    )
    with open_tar(io.BytesIO(crafted), "layer 0", seekable=True) as tar:
        assert tar is not None
        own = list(tar)
    plan = plan_squash([], [own])
    names = [entry.info.name for entry in plan.entries]
    assert names == [*("/".join(["d"] * n) for n in range(1, 5001)), f"{DEEP}/f", f"{DEEP}/l"]
    assert [entry.info.type for entry in plan.entries[-2:]] == [tarfile.REGTYPE, tarfile.LNKTYPE]
    assert plan.entries[-1].info.linkname == f"{DEEP}/f" and plan.data_bytes == 5


def test_deep_trees_over_a_deep_base() -> None:
    """The model check (the same tree either way) on a base 5,000 levels deep: a whiteout,
    an opaque directory and a type change down there."""
    base: list[list[Entry]] = [
        [("file", f"{DEEP}/f", "f"), ("file", f"{DEEP}/g", "g"), ("file", f"{DEEP}/o/x", "x")]
    ]
    own: list[list[Entry]] = [
        [("wh", f"{DEEP}/f"), ("file", f"{DEEP}/h", "h"), ("opq", f"{DEEP}/o")],
        [("wh", f"{DEEP}/g"), ("dir", f"{DEEP}/g"), ("file", f"{DEEP}/g/in", "i")],
    ]
    squashed = {m.name.rstrip("/"): m for m in members(check(base, own))}
    assert {f"{DEEP}/.wh.f", f"{DEEP}/o/{OPAQUE_MARKER}", f"{DEEP}/h"} <= squashed.keys()
    assert squashed[f"{DEEP}/g"].isdir() and f"{DEEP}/g/in" in squashed


def test_chains_of_undeclared_directories_are_cut_where_entries_reach_inside() -> None:
    """The replay keeps ``p/q/r/s`` (implied by one file) as one chain; entries, whiteouts,
    opaque markers and hard links inside it must act on the directory they name."""
    base: list[list[Entry]] = [[("file", "p/q/r/s/f", "f"), ("file", "b/c/d/e/x", "x")]]
    own: list[list[Entry]] = [
        [("dir", "p/q", 0o700), ("file", "p/q/r/g", "g"), ("file", "b/c/y/z", "z")],
        [("wh", "p/q/r/s/f"), ("opq", "b/c/d"), ("link", "p/l", "p/q/r/g")],
        [("file", "m/n/o/k", "k"), ("wh", "m/n"), ("file", "m/n2/o", "o"), ("dir", "m/n2")],
    ]
    squashed = {m.name.rstrip("/"): m for m in members(check(base, own))}
    assert squashed["p/q"].mode == 0o700 and squashed["p/q/r/g"].linkname == "p/l"
    assert {"p/q/r/s/.wh.f", f"b/c/d/{OPAQUE_MARKER}"} <= squashed.keys()
    assert squashed["m/n/o/k"].isreg() and squashed["m/n2/o"].isreg()  # same layer: kept
