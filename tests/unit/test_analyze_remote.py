"""The streaming pieces under ``analyze --from-registry``: the blob reader's digest and size
checks (``tagger.registry.client.BlobReader``) and the layer inflater of
``tagger.image.layers``, and the exit code of a corrupt layer read by
``tagger.image.remote.RemoteImage``, on in-memory streams."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Iterator
from typing import cast

import pytest

from tagger.errors import ExitCode, ImageFormatError, RegistryError, UsageError
from tagger.image.analyze import analyze
from tagger.image.layers import _Gunzip, opened
from tagger.image.remote import RemoteImage
from tagger.registry.client import BlobReader, Manifest, RegistryClient
from tagger.registry.mediatypes import OCI_MANIFEST
from tagger.registry.platform import Platform, pick
from tagger.registry.reference import Reference


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


# --- where the bytes came from decides the exit code ------------------------------------------


class _FakeRegistry:
    """A registry client holding one image in memory: the real BlobReader checks what it
    serves. ``served`` replaces a blob's bytes (a registry that sends other bytes)."""

    host = "registry.test"

    def __init__(self, layers: list[bytes], media_type: str, served: dict[str, bytes]) -> None:
        self.blobs: dict[str, bytes] = {}
        descriptors = []
        for blob in layers:
            digest = _digest(blob)
            self.blobs[digest] = blob
            descriptors.append({"mediaType": media_type, "digest": digest, "size": None})
        config = json.dumps(
            {"rootfs": {"type": "layers", "diff_ids": [_digest(b) for b in layers]}}
        ).encode()
        self.blobs[_digest(config)] = config
        self.manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"digest": _digest(config), "size": len(config)},
                "layers": descriptors,
            }
        ).encode()
        self.served = served

    def get_manifest(self, repository: str, ref: str) -> Manifest:
        return Manifest(_digest(self.manifest), OCI_MANIFEST, self.manifest)

    def get_blob(self, repository: str, digest: str) -> bytes:
        return self.blobs[digest]

    @contextlib.contextmanager
    def open_blob(
        self, repository: str, digest: str, *, size: int | None = None
    ) -> Iterator[BlobReader]:
        data = self.served.get(digest, self.blobs[digest])
        reader = BlobReader(_Raw(data), digest, size, f"reading the blob {digest}")
        try:
            yield reader
        finally:
            reader.close()


def _tar(name: str, data: bytes) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


GZIP_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
_LAYER = gzip.compress(_tar("data", os.urandom(200_000)))


def _remote(
    bad: bytes, *, media_type: str = GZIP_LAYER, served: bytes | None = None
) -> RemoteImage:
    good = gzip.compress(_tar("ok", b"fine"))
    client = _FakeRegistry([good, bad], media_type, {_digest(bad): served} if served else {})
    return RemoteImage(cast(RegistryClient, client), Reference.parse("registry.test/app:1"))


@pytest.mark.parametrize(
    ("blob", "served"),
    [
        pytest.param(b"\x1f\x8b\x08\x00" + b"junk" * 100, None, id="bad-gzip"),
        pytest.param(_LAYER[: len(_LAYER) // 2], None, id="truncated"),
        pytest.param(_LAYER, _LAYER[:-10] + b"0123456789", id="digest-mismatch"),
        pytest.param(gzip.compress(b"not a tar at all " * 100), None, id="not-a-tar"),
    ],
)
def test_a_corrupt_layer_from_a_registry_is_a_registry_error(
    blob: bytes, served: bytes | None
) -> None:
    image = _remote(blob, served=served)
    with pytest.raises(RegistryError) as err:
        analyze(image)
    assert err.value.exit_code == ExitCode.REGISTRY
    assert "layer 1" in str(err.value) or "do not match" in str(err.value)


def test_the_same_corrupt_layer_from_an_engine_save_stays_a_format_error() -> None:
    # What a SavedImage's open_layer does with the bytes of an engine's `docker save`.
    with (
        pytest.raises(ImageFormatError) as err,
        opened(io.BytesIO(_LAYER[:5000]), "layer 1") as plain,
    ):
        plain.read()
    assert err.value.exit_code == ExitCode.USAGE


def test_a_sound_remote_image_reads_and_a_zstd_one_is_unsupported_input() -> None:
    assert analyze(_remote(_LAYER)).size == 4 + 200_000
    with pytest.raises(ImageFormatError, match="zstd") as err:
        _remote(_LAYER, media_type="application/vnd.oci.image.layer.v1.tar+zstd")
    assert err.value.exit_code == ExitCode.USAGE
