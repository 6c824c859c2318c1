"""The streaming pieces under ``analyze --from-registry``: the blob reader's digest and size
checks (``tagger.registry.client.BlobReader``) and the layer inflater of
``tagger.image.layers``, on in-memory streams."""

from __future__ import annotations

import gzip
import hashlib
import io
import os

import pytest

from tagger.errors import ExitCode, ImageFormatError, RegistryError, UsageError
from tagger.image.layers import _Gunzip
from tagger.registry.client import BlobReader
from tagger.registry.platform import Platform, pick


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class _Raw:
    """urllib3's response ``raw``: read(n) in pieces, optionally breaking after some bytes."""

    def __init__(self, data: bytes, piece: int = 7000, break_after: int | None = None) -> None:
        self._data = io.BytesIO(data)
        self._piece = piece
        self._break_after = break_after

    def read(self, n: int) -> bytes:
        if self._break_after is not None and self._data.tell() >= self._break_after:
            raise ConnectionResetError("peer reset")
        return self._data.read(min(n, self._piece))


def _read_all(reader: BlobReader) -> bytes:
    stream = io.BufferedReader(reader, buffer_size=4096)
    out = stream.read()
    reader.finish()
    return out


def test_a_blob_whose_bytes_match_its_digest_reads_whole() -> None:
    data = os.urandom(100_000)
    reader = BlobReader(_Raw(data), _digest(data), len(data), "reading x")
    assert _read_all(reader) == data
    reader.close()


@pytest.mark.parametrize(
    ("sent", "size"),
    [
        pytest.param(b"y" * 5000, None, id="other-bytes"),
        pytest.param(b"x" * 4999, 5000, id="short"),
        pytest.param(b"x" * 5001, 5000, id="long"),
    ],
)
def test_a_blob_that_does_not_match_is_a_registry_error(sent: bytes, size: int | None) -> None:
    reader = BlobReader(_Raw(sent), _digest(b"x" * 5000), size, "reading x")
    with pytest.raises(RegistryError) as err:
        _read_all(reader)
    assert err.value.exit_code == ExitCode.REGISTRY
    reader.close()


def test_finish_checks_what_the_consumer_left_unread() -> None:
    data = os.urandom(50_000)
    reader = BlobReader(_Raw(data + b"tampered"), _digest(data), None, "reading x")
    reader.read(1000)
    with pytest.raises(RegistryError, match="do not match"):
        reader.finish()
    reader.close()


def test_a_broken_connection_is_a_registry_error() -> None:
    data = os.urandom(50_000)
    reader = BlobReader(_Raw(data, break_after=20_000), _digest(data), None, "reading x")
    with pytest.raises(RegistryError, match="connection broke"):
        _read_all(reader)
    reader.close()


def test_an_unknown_digest_algorithm_is_refused() -> None:
    with pytest.raises(RegistryError):
        BlobReader(_Raw(b""), "md5:abc", None, "reading x")


# --- inflating -------------------------------------------------------------------------------


def _inflate(blob: bytes) -> bytes:
    head, rest = blob[:10], io.BytesIO(blob[10:])
    return io.BufferedReader(_Gunzip(head, rest, "layer 3")).read()


def test_gunzip_reads_one_member_and_several() -> None:
    one, two = os.urandom(300_000), b"z" * 3_000_000
    assert _inflate(gzip.compress(one)) == one
    assert _inflate(gzip.compress(one) + gzip.compress(two)) == one + two
    assert _inflate(gzip.compress(one) + b"\0" * 512) == one  # padding after the last member


@pytest.mark.parametrize(
    "blob",
    [
        pytest.param(gzip.compress(os.urandom(100_000))[:-5000], id="truncated"),
        pytest.param(b"\x1f\x8b\x08\x00" + b"junk" * 100, id="junk"),
    ],
)
def test_gunzip_refuses_damaged_streams(blob: bytes) -> None:
    with pytest.raises(ImageFormatError, match="layer 3") as err:
        _inflate(blob)
    assert err.value.exit_code == ExitCode.USAGE


# --- platforms -------------------------------------------------------------------------------

INDEX = [
    {"digest": "sha256:att", "platform": {"os": "unknown", "architecture": "unknown"}},
    {"digest": "sha256:arm", "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}},
    {"digest": "sha256:amd", "platform": {"os": "linux", "architecture": "amd64"}},
    "junk",
    {"platform": {"os": "linux", "architecture": "amd64"}},
]


def test_pick_platform() -> None:
    assert pick(INDEX, Platform.parse("linux/amd64")) == "sha256:amd"
    assert pick(INDEX, Platform.parse("linux/arm/v7")) == "sha256:arm"
    assert pick(INDEX, Platform.parse("linux/arm/v6")) is None
    assert pick(INDEX, Platform.parse("windows/amd64")) is None
    assert pick(None, Platform.parse("linux/amd64")) is None


def test_pick_without_a_platform_prefers_amd64_and_never_an_attestation() -> None:
    assert pick(INDEX) == "sha256:amd"
    assert pick(INDEX[:2]) == "sha256:arm"  # no amd64: the first real image
    assert pick(INDEX[:1]) is None  # attestations only


@pytest.mark.parametrize("text", ["linux", "linux/", "/amd64", "a/b/c/d"])
def test_parse_platform_refuses_junk(text: str) -> None:
    with pytest.raises(UsageError):
        Platform.parse(text)
