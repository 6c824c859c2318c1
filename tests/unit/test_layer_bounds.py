"""The tar header bounds of ``tagger.image.layers.open_tar`` on in-memory streams, streamed
and seekable: names at and above 64 KiB, PAX headers above 1 MiB, extension chains, global
headers, sizes that lie, sparse maps (docs/registries.md, "Untrusted answers")."""

from __future__ import annotations

import io
import sys
import tarfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))

import tarcraft as tc

from tagger.errors import ImageFormatError
from tagger.image.layers import MAX_NAME, MAX_PAX, open_tar


def read(data: bytes, *, seekable: bool) -> list[tarfile.TarInfo]:
    """Every member of ``data``, errors as the one ImageFormatError a user sees."""
    from tagger.image.layers import layer_error

    stream = io.BytesIO(data) if seekable else io.BufferedReader(_Pipe(data))
    with open_tar(stream, "layer 3", seekable=seekable) as tar:
        try:
            return list(tar or ())
        except tarfile.TarError as exc:
            raise layer_error(exc, "layer 3") from None


class _Pipe(io.RawIOBase):
    """A stream that cannot seek, read in small pieces."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        chunk = self._data.read(min(len(buffer), 7000))
        buffer[: len(chunk)] = chunk
        return len(chunk)


both = pytest.mark.parametrize("seekable", [True, False], ids=["seekable", "stream"])


@both
def test_names_of_64_kib_are_read(seekable: bool) -> None:
    path = b"d/" * (MAX_NAME // 2 - 1) + b"ff"
    data = (
        tc.gnu_long_name(path)
        + tc.entry("f", b"abc")
        + tc.pax(tc.pax_record("linkpath", path))
        + tc.header("hard", type_=b"1")
        + tc.gnu_long_name(path, type_=b"K")
        + tc.header("sym", type_=b"2")
        + tc.end()
    )
    members = read(data, seekable=seekable)
    assert [len(m.name) for m in members] == [MAX_NAME, 4, 3]
    assert [len(m.linkname) for m in members] == [0, MAX_NAME, MAX_NAME]
    assert members[0].size == 3


@both
@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(
            tc.gnu_long_name(b"x" * (MAX_NAME + 1)) + tc.entry("f"),
            f"layer 3 has a GNU long name of {MAX_NAME + 2} bytes",
            id="long-name",
        ),
        pytest.param(
            tc.gnu_long_name(b"x" * (MAX_NAME + 1), type_=b"K") + tc.header("l", type_=b"2"),
            "GNU long name",
            id="long-link",
        ),
        pytest.param(
            tc.pax(tc.pax_record("path", b"p" * (MAX_NAME + 1))) + tc.entry("f"),
            f"layer 3 has a path of {MAX_NAME + 1} bytes",
            id="pax-path",
        ),
        pytest.param(
            tc.pax(tc.pax_record("linkpath", "é".encode() * (MAX_NAME // 2 + 1)))
            + tc.header("l", type_=b"2"),
            f"link name of {MAX_NAME + 2} bytes",
            id="pax-linkpath-in-utf8-bytes",
        ),
        pytest.param(
            tc.pax(tc.pax_record("comment", b"c" * MAX_PAX)) + tc.entry("f"),
            "PAX header of",
            id="pax-header",
        ),
        # Refused from the size field, before anything is read: no data follows here.
        pytest.param(
            tc.header("././@LongLink", type_=b"L", size=1 << 33),
            "GNU long name of 8589934592 bytes",
            id="declared-only",
        ),
        pytest.param(
            tc.pax(tc.pax_record("a", b"b")) * (9) + tc.entry("f"),
            "more than 8 extension headers",
            id="chain",
        ),
        pytest.param(
            tc.pax(tc.pax_record("size", b"-5")) + tc.entry("f"),
            "size of -5 bytes",
            id="negative-size",
        ),
        pytest.param(
            tc.header("f", size=1 << 70) + tc.end(),
            f"size of {1 << 70} bytes",
            id="base-256-size",
        ),
        pytest.param(
            tc.header("s", type_=b"S", extended=True, sparse=[(1, 1)], realsize=10)
            + (bytes(504) + b"\1" + bytes(7)) * (MAX_PAX // 512 + 1),
            "GNU sparse map above",
            id="sparse-map",
        ),
        pytest.param(
            tc.header("s", type_=b"S", extended=True, sparse=[(1, 1)], realsize=10),
            "unexpected end of data in a GNU sparse map",
            id="sparse-map-ends",
        ),
        pytest.param(
            tc.pax(
                tc.pax_record("GNU.sparse.major", b"1") + tc.pax_record("GNU.sparse.minor", b"0")
            )
            + tc.header("s")
            + b"9999999\n"
            + b"1\n" * (MAX_PAX // 2 + 512),
            "GNU sparse map above",
            id="pax-sparse-map",
        ),
    ],
)
def test_headers_beyond_the_bounds_are_format_errors(
    data: bytes, message: str, seekable: bool
) -> None:
    with pytest.raises(ImageFormatError, match=r"^layer 3 ") as err:
        read(data, seekable=seekable)
    assert message in str(err.value)


def test_a_size_that_lies_ends_a_stream_at_once() -> None:
    """A member of 1 TiB in a 2 KiB stream: skipping its data stops at the end, where
    tarfile alone would go on reading nothing a MiB at a time."""
    data = tc.header("f", size=1 << 40) + b"x" * 512
    with pytest.raises(ImageFormatError, match=r"layer 3 is damaged .*end of data"):
        read(data, seekable=False)


@both
def test_global_pax_headers_are_skipped_as_the_engine_skips_them(seekable: bool) -> None:
    """moby's UnpackLayer ignores a ``g`` header; tarfile would rename every later entry."""
    data = tc.pax(tc.pax_record("path", b"renamed"), type_=b"g") + tc.entry("f", b"x")
    members = read(data + tc.entry("g") + tc.end(), seekable=seekable)
    assert [(m.name, m.size) for m in members] == [("f", 1), ("g", 0)]


@both
def test_sparse_maps_within_the_bound_are_read(seekable: bool) -> None:
    old = tc.header("s", type_=b"S", size=512, extended=True, sparse=[(0, 5)], realsize=4096)
    extension = bytearray(512)
    extension[0:24] = b"00000001000\0" + b"00000000005\0"  # offset 512, 5 bytes
    pax10 = tc.pax(
        tc.pax_record("GNU.sparse.major", b"1")
        + tc.pax_record("GNU.sparse.minor", b"0")
        + tc.pax_record("GNU.sparse.name", b"t")
        + tc.pax_record("GNU.sparse.realsize", b"8192")
    )
    data = (
        old
        + bytes(extension)
        + bytes(512)
        + pax10
        + tc.header("GNUSparseFile.0/t", size=1024)
        + b"1\n0\n5\n".ljust(512, b"\0")
        + bytes(512)
        + tc.end()
    )
    members = read(data, seekable=seekable)
    # (tarfile keeps the header's unused map slots as (0, 0) runs, as it always did)
    runs = [[run for run in m.sparse or () if run[1]] for m in members]
    assert [(m.name, m.size) for m in members] == [("s", 4096), ("t", 8192)]
    assert runs == [[(0, 5), (512, 5)], [(0, 5)]]
