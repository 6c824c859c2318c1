"""The pure analyzer (``tagger.image.analyze``) on synthetic layers written with ``tarfile``:
every waste rule, the base attribution, the thresholds, and hostile input."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import pytest

from tagger.errors import ExitCode, ImageFormatError, UsageError
from tagger.image.analyze import Analysis, analyze, check_thresholds, parse_size
from tagger.image.archive import LayerInfo, SavedImage

# An entry: ("file", name, size) | ("dir", name) | ("link", name, target)
#           | ("sym", name, target) | ("wh", dir_or_empty, name) | ("opq", dir)
Entry = tuple[Any, ...]


def layer_tar(entries: Sequence[Entry]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            kind, name = entry[0], entry[1]
            if kind == "file":
                info = tarfile.TarInfo(name)
                info.size = entry[2]
                tar.addfile(info, io.BytesIO(b"x" * entry[2]))
                continue
            if kind == "wh":
                info = tarfile.TarInfo(f"{name}/.wh.{entry[2]}" if name else f".wh.{entry[2]}")
            elif kind == "opq":
                info = tarfile.TarInfo(f"{name}/.wh..wh..opq")
            else:
                info = tarfile.TarInfo(name)
                info.type = {"dir": tarfile.DIRTYPE, "link": tarfile.LNKTYPE}.get(
                    kind, tarfile.SYMTYPE
                )
                if kind in ("link", "sym"):
                    info.linkname = entry[2]
            tar.addfile(info)
    return out.getvalue()


class FakeImage:
    """An ImageSource over in-memory layer blobs (plain tar, gzip, or junk)."""

    def __init__(self, blobs: Sequence[bytes], created_by: Sequence[str] = ()) -> None:
        self.blobs = list(blobs)
        self._layers = tuple(
            LayerInfo(
                index=i,
                diff_id="sha256:" + hashlib.sha256(blob).hexdigest(),
                size=len(blob),
                created_by=created_by[i] if i < len(created_by) else f"RUN step {i}",
            )
            for i, blob in enumerate(self.blobs)
        )

    @property
    def name(self) -> str:
        return "fake:1"

    @property
    def config(self) -> Mapping[str, Any]:
        return {}

    @property
    def config_bytes(self) -> bytes:
        return b"{}"

    @property
    def layers(self) -> Sequence[LayerInfo]:
        return self._layers

    @contextlib.contextmanager
    def open_layer(self, index: int) -> Iterator[IO[bytes]]:
        from tagger.image.archive import decompressed

        with decompressed(io.BytesIO(self.blobs[index]), f"layer {index}") as plain:
            yield plain


def image(*layers: Sequence[Entry], gz: bool = False) -> FakeImage:
    blobs = [layer_tar(entries) for entries in layers]
    return FakeImage([gzip.compress(b, mtime=0) if gz else b for b in blobs])


def run(*layers: Sequence[Entry], base: int = 0, gz: bool = False) -> Analysis:
    return analyze(image(*layers, gz=gz), base_layers=base)


# --- the rules the issue fixes ----------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_a_file_written_then_deleted_wastes_its_size(gz: bool) -> None:
    a = run(
        [("file", "keep", 100), ("file", "big", 20_000)],
        [("wh", "", "big")],
        gz=gz,
    )
    assert a.size == 20_100
    assert a.wasted_bytes == 20_000
    assert a.final_size == 100
    assert a.efficiency == pytest.approx(100 / 20_100)
    assert [(w.path, w.wasted_bytes, w.layers, w.removed_in) for w in a.worst] == [
        ("/big", 20_000, (0,), (1,))
    ]
    assert [layer.wasted_bytes for layer in a.layers] == [20_000, 0]


def test_a_file_written_twice_wastes_one_copy_not_two() -> None:
    a = run([("file", "f", 4096)], [("file", "f", 4096)])
    assert a.size == 8192
    assert a.wasted_bytes == 4096  # dive says 8192 (its issue #684)
    assert a.efficiency == 0.5
    assert a.worst[0].layers == (0, 1)
    assert a.worst[0].removed_in == (1,)


def test_the_same_path_three_times_wastes_the_two_earlier_copies() -> None:
    a = run([("file", "f", 10)], [("file", "f", 20)], [("file", "f", 5)])
    assert (a.size, a.wasted_bytes, a.final_size) == (35, 30, 5)
    assert a.worst[0].layers == (0, 1, 2)
    assert [layer.wasted_bytes for layer in a.layers] == [10, 20, 0]


def test_duplicate_entries_inside_one_layer_waste_the_earlier_one() -> None:
    a = run([("file", "f", 7), ("file", "./f", 3)])
    assert (a.size, a.wasted_bytes) == (10, 7)


def test_an_opaque_directory_removes_everything_below_it_from_lower_layers() -> None:
    a = run(
        [("dir", "d"), ("file", "d/x", 10), ("dir", "d/sub"), ("file", "d/sub/y", 5)],
        # What the opaque layer itself writes stays, before or after the marker.
        [("dir", "d"), ("file", "d/early", 2), ("opq", "d"), ("file", "d/z", 3)],
    )
    assert a.wasted_bytes == 15
    assert a.final_size == 5
    assert sorted(w.path for w in a.worst) == ["/d/sub/y", "/d/x"]


def test_a_whiteout_only_hides_lower_layers_not_its_own() -> None:
    # OCI image-spec, layer.md#whiteouts: same-layer files are not hidden.
    a = run([("file", "a", 8)], [("file", "a", 3), ("wh", "", "a")])
    assert (a.wasted_bytes, a.final_size) == (8, 3)


def test_a_deleted_directory_wastes_its_whole_subtree() -> None:
    a = run(
        [("dir", "d"), ("file", "d/x", 4), ("dir", "d/sub"), ("file", "d/sub/y", 6)],
        [("wh", "", "d")],
    )
    assert (a.wasted_bytes, a.final_size) == (10, 0)
    assert a.efficiency == 0.0


def test_a_file_replaced_by_a_directory() -> None:
    a = run([("file", "p", 7)], [("dir", "p"), ("file", "p/q", 2)])
    assert (a.wasted_bytes, a.final_size) == (7, 2)


def test_a_file_in_the_way_of_a_parent_directory_is_replaced() -> None:
    a = run([("file", "p", 7)], [("file", "p/q", 2)])
    assert (a.wasted_bytes, a.final_size) == (7, 2)


def test_a_directory_replaced_by_a_file_wastes_its_subtree() -> None:
    a = run(
        [("dir", "d"), ("file", "d/x", 4), ("file", "d/sub/y", 6)],
        [("file", "d", 1)],
    )
    assert (a.wasted_bytes, a.final_size) == (10, 1)


def test_a_directory_over_a_directory_merges() -> None:
    a = run([("dir", "d"), ("file", "d/x", 4)], [("dir", "d"), ("file", "d/y", 6)])
    assert (a.wasted_bytes, a.final_size) == (0, 10)


def test_hard_links_count_their_bytes_once_and_keep_them_alive() -> None:
    a = run(
        [("file", "a", 9), ("link", "b", "a"), ("link", "c", "/a")],
        [("wh", "", "a")],  # b and c still hold the data
        [("wh", "", "b")],
    )
    assert a.size == 9
    assert a.wasted_bytes == 0
    a = run(
        [("file", "a", 9), ("link", "b", "a")],
        [("wh", "", "a"), ("wh", "", "b")],
    )
    assert (a.size, a.wasted_bytes) == (9, 9)
    assert a.worst[0].layers == (0,)


def test_a_hard_link_to_nothing_is_an_empty_file() -> None:
    a = run([("link", "b", "missing"), ("link", "self", "self"), ("file", "f", 3)])
    assert (a.size, a.wasted_bytes) == (3, 0)


def test_symlinks_and_empty_files_waste_nothing() -> None:
    a = run([("sym", "s", "/x"), ("file", "e", 0)], [("wh", "", "s"), ("wh", "", "e")])
    assert (a.size, a.wasted_bytes, a.worst) == (0, 0, ())
    assert a.efficiency == 1.0


def test_whiteouts_of_missing_paths_remove_nothing() -> None:
    a = run([("file", "f", 3)], [("wh", "nowhere", "x"), ("wh", "f", "y"), ("opq", "gone")])
    assert (a.size, a.wasted_bytes) == (3, 0)


def test_an_empty_image_and_empty_layers() -> None:
    a = analyze(FakeImage([]))
    assert (a.size, a.wasted_bytes, a.efficiency, a.user_wasted_percent) == (0, 0, 1.0, 0.0)
    a = analyze(FakeImage([b"", layer_tar([])]))
    assert [layer.entries for layer in a.layers] == [0, 0]


# --- base and user waste -----------------------------------------------------------------


def test_waste_whose_copy_lives_in_the_base_is_not_the_users() -> None:
    layers = (
        [("file", "base-file", 10), ("file", "shared", 6)],  # base
        [("wh", "", "base-file"), ("file", "tmp", 30)],  # user: deletes a base file
        [("wh", "", "tmp"), ("file", "shared", 6), ("file", "app", 4)],  # user
    )
    a = run(*layers, base=1)
    assert a.wasted_bytes == 10 + 30 + 6
    assert a.user_size == 40
    assert a.user_wasted_bytes == 30  # base-file and the first "shared" live in the base
    assert a.user_wasted_percent == pytest.approx(75.0)
    assert run(*layers, base=0).user_wasted_percent == pytest.approx(100 * 46 / 56)
    assert run(*layers, base=3).user_wasted_percent == 0.0
    with pytest.raises(UsageError):
        run(*layers, base=4)


def test_worst_paths_are_ranked_and_cut_to_top() -> None:
    img = image(
        [("file", "a", 1), ("file", "b", 3), ("file", "c", 2)],
        [("wh", "", "a"), ("wh", "", "b"), ("wh", "", "c")],
    )
    assert [w.path for w in analyze(img).worst] == ["/b", "/c", "/a"]
    assert [w.path for w in analyze(img, top=2).worst] == ["/b", "/c"]
    as_json = analyze(img, top=1).as_dict()
    assert as_json["worst"] == [{"path": "/b", "wasted_bytes": 3, "layers": [0], "removed_in": [1]}]
    for key in ("image", "size", "efficiency", "wasted_bytes", "user_wasted_percent"):
        assert key in as_json
    assert set(as_json["layers"][0]) >= {"digest", "size", "created_by"}
    assert as_json["layers"][0]["created_by"] == "RUN step 0"


def test_deep_paths_do_not_recurse() -> None:
    deep = "/".join(["d"] * 3000)
    a = run([("file", f"{deep}/f", 5)], [("wh", "", "d")])
    assert a.wasted_bytes == 5
    a = run([("file", f"{deep}/f", 5)], [("opq", "d")])
    assert a.wasted_bytes == 5


# --- hostile input -----------------------------------------------------------------------


def test_absolute_and_dotted_names_are_the_same_path() -> None:
    a = run([("file", "/etc/x", 5)], [("file", "./etc/../etc//x", 5)])
    assert (a.wasted_bytes, a.worst[0].path) == (5, "/etc/x")


@pytest.mark.parametrize("name", ["../escape", "a/../../escape", "/.."])
def test_names_that_climb_out_of_the_root_are_bad_input(name: str) -> None:
    with pytest.raises(ImageFormatError) as err:
        run([("file", name, 1)])
    assert err.value.exit_code == ExitCode.USAGE


def test_a_hard_link_target_that_climbs_out_is_bad_input() -> None:
    with pytest.raises(ImageFormatError):
        run([("link", "b", "../../etc/shadow")])


def _half(blob: bytes) -> bytes:
    return blob[: len(blob) // 2]


@pytest.mark.parametrize(
    "blob",
    [
        pytest.param(b"\x1f\x8b\x08\x00junk that is no deflate stream" * 20, id="gzip-junk"),
        pytest.param(_half(gzip.compress(layer_tar([("file", "f", 50_000)]))), id="gzip-cut"),
        pytest.param(b"not a tar at all " * 100, id="plain-junk"),
        pytest.param(layer_tar([("file", "f", 5000)])[:1500], id="tar-cut"),
        pytest.param(b"\x28\xb5\x2f\xfd" + b"\0" * 100, id="zstd"),
    ],
)
def test_damaged_layers_are_image_format_errors(blob: bytes) -> None:
    with pytest.raises(ImageFormatError) as err:
        analyze(FakeImage([layer_tar([("file", "ok", 1)]), blob]))
    assert err.value.exit_code == ExitCode.USAGE
    assert "layer 1" in str(err.value)


# --- a saved archive: the seekable path skips file data -------------------------------------


def _docker_save(path: Path, layers: Sequence[bytes], *, oci: bool = False) -> None:
    ids = ["sha256:" + hashlib.sha256(layer).hexdigest() for layer in layers]
    config = json.dumps(
        {
            "rootfs": {"type": "layers", "diff_ids": ids},
            "history": [{"created_by": f"RUN {i}"} for i in range(len(layers))],
        }
    ).encode()
    files: dict[str, bytes] = {}
    if oci:
        blobs = [gzip.compress(layer, mtime=0) for layer in layers]
        for blob in [*blobs, config]:
            files[f"blobs/sha256/{hashlib.sha256(blob).hexdigest()}"] = blob
        manifest = json.dumps(
            {
                "config": {"digest": "sha256:" + hashlib.sha256(config).hexdigest()},
                "layers": [
                    {
                        "digest": "sha256:" + hashlib.sha256(b).hexdigest(),
                        "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    }
                    for b in blobs
                ],
            }
        ).encode()
        files[f"blobs/sha256/{hashlib.sha256(manifest).hexdigest()}"] = manifest
        files["index.json"] = json.dumps(
            {"manifests": [{"digest": "sha256:" + hashlib.sha256(manifest).hexdigest()}]}
        ).encode()
    else:
        for i, layer in enumerate(layers):
            files[f"l{i}/layer.tar"] = layer
        files["config.json"] = config
        files["manifest.json"] = json.dumps(
            [
                {
                    "Config": "config.json",
                    "RepoTags": ["saved:1"],
                    "Layers": [f"l{i}/layer.tar" for i in range(len(layers))],
                }
            ]
        ).encode()
    with tarfile.open(path, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize("oci", [False, True], ids=["docker-layout", "oci-layout"])
def test_a_saved_archive_gives_the_same_figures(tmp_path: Path, oci: bool) -> None:
    entries: tuple[list[Entry], ...] = (
        [("file", "a", 3000), ("file", "b", 1000), ("link", "c", "b")],
        [("wh", "", "a"), ("file", "b", 1000), ("opq", "none")],
    )
    blobs = [layer_tar(e) for e in entries]
    _docker_save(tmp_path / "img.tar", blobs, oci=oci)
    with SavedImage(str(tmp_path / "img.tar")) as saved:
        got = analyze(saved, base_layers=1)
    want = analyze(FakeImage(blobs), base_layers=1)
    assert (got.size, got.wasted_bytes, got.user_wasted_bytes) == (5000, 3000, 0)
    assert (want.size, want.wasted_bytes, want.user_wasted_bytes) == (5000, 3000, 0)
    assert [layer.created_by for layer in got.layers] == ["RUN 0", "RUN 1"]
    assert got.worst == want.worst


def test_a_damaged_layer_inside_a_saved_archive(tmp_path: Path) -> None:
    _docker_save(tmp_path / "img.tar", [layer_tar([("file", "f", 5000)])[:1500]])
    with SavedImage(str(tmp_path / "img.tar")) as saved, pytest.raises(ImageFormatError):
        analyze(saved)


# --- a save read once, as it arrives --------------------------------------------------------


class _OnePass(io.RawIOBase):
    """A save arriving over a socket: read only, in pieces of at most 7,000 bytes."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), len(self._data), 7000)
        memoryview(buffer).cast("B")[:n] = self._data[:n]
        self._data = self._data[n:]
        return n


def _reordered(path: Path, *, reverse: bool = True) -> bytes:
    """The archive at ``path`` with its members in reverse order (upper layers first)."""
    out = io.BytesIO()
    with tarfile.open(path) as src, tarfile.open(fileobj=out, mode="w") as dst:
        members = src.getmembers()
        for member in reversed(members) if reverse else members:
            dst.addfile(member, src.extractfile(member) if member.isfile() else None)
    return out.getvalue()


@pytest.mark.parametrize("oci", [False, True], ids=["docker-layout", "oci-layout"])
@pytest.mark.parametrize("reverse", [False, True], ids=["in-order", "upper-layers-first"])
def test_a_save_read_as_it_arrives_gives_the_saved_archives_figures(
    tmp_path: Path, oci: bool, reverse: bool
) -> None:
    from tagger.image.analyze import analyze_save

    entries: tuple[list[Entry], ...] = (
        [("file", "a", 3000), ("file", "b", 1000), ("link", "c", "b"), ("dir", "d")],
        [("wh", "", "a"), ("file", "b", 1000), ("opq", "none"), ("file", "d/e", 70_000)],
        [],
        [("file", "d/e", 10)],
    )
    _docker_save(tmp_path / "img.tar", [layer_tar(e) for e in entries], oci=oci)
    with SavedImage(str(tmp_path / "img.tar")) as saved:
        want = analyze(saved, base_layers=1)
    got = analyze_save(_OnePass(_reordered(tmp_path / "img.tar", reverse=reverse)), base_layers=1)
    assert {**got.as_dict(), "image": ""} == {**want.as_dict(), "image": ""}
    assert (got.size, got.wasted_bytes) == (75010, 73000)


@pytest.mark.parametrize(
    "blob",
    [
        pytest.param(b"\x1f\x8b\x08\x00junk that is no deflate stream" * 20, id="gzip-junk"),
        pytest.param(_half(gzip.compress(layer_tar([("file", "f", 50_000)]))), id="gzip-cut"),
        pytest.param(b"not a tar at all " * 100, id="plain-junk"),
        pytest.param(layer_tar([("file", "f", 5000)])[:1500], id="tar-cut"),
        pytest.param(b"\x28\xb5\x2f\xfd" + b"\0" * 100, id="zstd"),
        pytest.param(b'{"a json document": "as a layer"}', id="json"),
    ],
)
def test_a_damaged_layer_of_a_streamed_save_is_named_by_its_place(
    tmp_path: Path, blob: bytes
) -> None:
    """The damaged layer arrives first in the stream; the error still names layer 1."""
    from tagger.image.analyze import analyze_save

    _docker_save(tmp_path / "img.tar", [layer_tar([("file", "ok", 1)]), blob])
    with pytest.raises(ImageFormatError) as err:
        analyze_save(_OnePass(_reordered(tmp_path / "img.tar")))
    assert err.value.exit_code == ExitCode.USAGE
    assert "layer 1" in str(err.value) and "\0" not in str(err.value)


def test_a_save_that_breaks_off_is_an_image_format_error(tmp_path: Path) -> None:
    from tagger.image.analyze import analyze_save

    _docker_save(tmp_path / "img.tar", [layer_tar([("file", "f", 50_000)])])
    data = (tmp_path / "img.tar").read_bytes()
    with tarfile.open(tmp_path / "img.tar") as tar:
        last = tar.getmembers()[-1]  # manifest.json: cut inside its data
    for cut in (len(data) // 3, last.offset_data + last.size // 2):
        with pytest.raises(ImageFormatError):
            analyze_save(_OnePass(data[:cut]))


def test_a_streamed_save_refuses_more_documents_than_it_keeps(tmp_path: Path) -> None:
    from tagger.image import archive
    from tagger.image.analyze import analyze_save

    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        doc = b"{" + b" " * (1 << 20) + b"}"
        for i in range(archive.MAX_KEPT_BYTES // len(doc) + 2):
            info = tarfile.TarInfo(f"d{i}.json")
            info.size = len(doc)
            tar.addfile(info, io.BytesIO(doc))
    with pytest.raises(ImageFormatError, match="MiB of documents"):
        analyze_save(_OnePass(out.getvalue()))


# --- thresholds and sizes ------------------------------------------------------------------


def test_thresholds_pass_at_the_limit_and_fail_beyond_it() -> None:
    a = run([("file", "f", 4)], [("file", "f", 4)], base=1)  # efficiency 0.5, 4 wasted
    checks = check_thresholds(
        a, lowest_efficiency=0.5, highest_wasted_bytes=4, highest_user_wasted_percent=0.0
    )
    assert [c.passed for c in checks] == [True, True, True]
    checks = check_thresholds(
        a, lowest_efficiency=0.51, highest_wasted_bytes=3, highest_user_wasted_percent=0.0
    )
    assert [c.passed for c in checks] == [False, False, True]
    assert "--lowest-efficiency" in checks[0].message
    assert "--highest-wasted-bytes" in checks[1].message
    assert check_thresholds(a) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("20MB", 20_000_000),
        ("20 mb", 20_000_000),
        ("20MiB", 20 * 2**20),
        ("20Mi", 20 * 2**20),
        ("1.5GB", 1_500_000_000),
        ("1.5GiB", 1536 * 2**20),
        ("10k", 10_000),
        ("7b", 7),
    ],
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "MB", "-5MB", "5XB", "1e6", "5 M B"])
def test_parse_size_refuses_junk(text: str) -> None:
    with pytest.raises(UsageError):
        parse_size(text)


def _headers_by_tarfile(data: bytes) -> list[tuple[int, str, int, str]]:
    from tagger.image.overlay import kind_of

    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        return [(kind_of(i), i.name, i.size, i.linkname) for i in tar]


def _odd_tar(fmt: int) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        for name, type_, size, link in [
            ("plain", tarfile.REGTYPE, 700, ""),
            ("dir/", tarfile.DIRTYPE, 0, ""),
            ("v7-dir/", tarfile.AREGTYPE, 0, ""),
            ("hard", tarfile.LNKTYPE, 0, "plain"),
            ("dev", tarfile.CHRTYPE, 0, ""),
            ("fifo", tarfile.FIFOTYPE, 0, ""),
            ("cont", tarfile.CONTTYPE, 5, ""),
            ("ünïcode-näme", tarfile.REGTYPE, 1, ""),
            ("d/" * 60 + "long-enough-for-a-ustar-prefix", tarfile.REGTYPE, 3, ""),
            # a link name too long for ustar: an extension header (not in USTAR_FORMAT)
            *([] if fmt == tarfile.USTAR_FORMAT else [("sym", tarfile.SYMTYPE, 0, "../x" * 40)]),
        ]:
            info = tarfile.TarInfo(name)
            info.type, info.size, info.linkname = type_, size, link
            tar.addfile(info, io.BytesIO(bytes(size)) if size else None)
    return out.getvalue()


@pytest.mark.parametrize(
    "fmt",
    [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT],
    ids=["ustar", "gnu", "pax"],
)
def test_headers_read_without_tarfile_are_tarfiles(fmt: int) -> None:
    """A plain layer of a streamed save is read by simple_headers until an extension
    header, and by tarfile from there: together they must give what tarfile alone gives."""
    from tagger.image.analyze import read_records
    from tagger.image.layers import Forward, Window, simple_headers

    data = _odd_tar(fmt)
    forward = Forward(_OnePass(data))
    got = read_records(Window(forward, len(data)))
    assert got.error is None
    assert got.records == _headers_by_tarfile(data)
    assert len(got.records) == 10 - (fmt == tarfile.USTAR_FORMAT)
    simple = list(simple_headers(Window(Forward(_OnePass(data)), len(data))))
    assert len(simple) >= 7  # the plain ones at least, before any extension header


def test_a_plain_layer_cut_inside_a_file_is_damaged_after_that_file() -> None:
    from tagger.image.analyze import read_records
    from tagger.image.layers import Forward, Window

    data = layer_tar([("file", "a", 10), ("file", "b", 5000), ("file", "c", 1)])[:2500]
    got = read_records(Window(Forward(_OnePass(data)), len(data)))
    assert [r[1] for r in got.records] == ["a", "b"]  # b's header was read; its data is cut
    assert isinstance(got.error, tarfile.ReadError)


# --- layers read ahead of the replay (--from-registry) ---------------------------------------


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_layers_read_ahead_give_the_same_figures(gz: bool) -> None:
    layers = [
        [("file", "a", 3000), ("file", "b", 1000), ("link", "c", "b")],
        [("wh", "", "a"), ("file", "b", 1000), ("opq", "none")],
        [],
        [("file", "d/e", 10), ("sym", "s", "d/e")],
        [("wh", "d", "e"), ("file", "b", 7)],
    ]
    want = analyze(image(*layers, gz=gz), base_layers=1)
    for workers in (2, 4, 8):
        got = analyze(image(*layers, gz=gz), base_layers=1, workers=workers)
        assert got.as_dict() == want.as_dict()
    assert want.wasted_bytes == 4010  # the first b lives on as c


def test_layers_read_ahead_raise_the_lowest_layers_error_first() -> None:
    """Layer 3 is damaged and arrives first; layer 1 climbs out of the root: layer 1's
    error, as a read one layer at a time gives it. Then the damaged layer alone."""
    ok = layer_tar([("file", "ok", 1)])
    damaged = _half(gzip.compress(layer_tar([("file", "f", 50_000)])))
    climbing = layer_tar([("file", "x", 1), ("file", "../../etc/passwd", 1)])
    with pytest.raises(ImageFormatError, match="outside the root"):
        analyze(FakeImage([ok, climbing, ok, damaged]), workers=4)
    with pytest.raises(ImageFormatError, match="layer 3"):
        analyze(FakeImage([ok, ok, ok, damaged]), workers=4)
