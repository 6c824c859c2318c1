"""The squash's archive side (``tagger.image.squash``) without an engine: an OCI-layout save
with gzip layers is read (inflated into the temporary directory), and the Docker-layout
archive streamed to ``docker load`` is well-formed: announced length, layer digest in the
config, manifest naming every layer."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tagger.image.archive import SavedImage
from tagger.image.squash import (
    _Archive,
    _LayerFiles,
    _prefetched,
    _squashed_config,
    default_tag,
    with_tag,
)
from tagger.image.squash_plan import plan_squash


def _tar(files: dict[str, bytes], whiteouts: tuple[str, ...] = ()) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name in whiteouts:
            tar.addfile(tarfile.TarInfo(name))
    return out.getvalue()


def _oci_archive(path: Path, layers: list[bytes]) -> dict[str, Any]:
    blobs: dict[str, bytes] = {}

    def blob(data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return digest

    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["A=1"], "Cmd": ["/app"]},
        "created": "2026-01-01T00:00:00Z",
        "rootfs": {
            "type": "layers",
            "diff_ids": ["sha256:" + hashlib.sha256(t).hexdigest() for t in layers],
        },
        "history": [{"created_by": f"RUN {i}"} for i in range(len(layers))]
        + [{"created_by": "CMD", "empty_layer": True}],
    }
    config_bytes = json.dumps(config).encode()
    manifest = {
        "schemaVersion": 2,
        "config": {"digest": blob(config_bytes), "size": len(config_bytes)},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": blob(gz)}
            for gz in (gzip.compress(t) for t in layers)
        ],
    }
    manifest_bytes = json.dumps(manifest).encode()
    index = {"schemaVersion": 2, "manifests": [{"digest": blob(manifest_bytes)}]}
    with tarfile.open(path, "w") as tar:
        members = {"index.json": json.dumps(index).encode(), "oci-layout": b"{}"}
        members.update({f"blobs/sha256/{d[7:]}": data for d, data in blobs.items()})
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return config


def test_gzip_layers_are_inflated_and_the_load_archive_is_well_formed(tmp_path: Path) -> None:
    layers = [
        _tar({"bin/app": b"base-app"}),
        _tar({"data/big": b"x" * 5000, "keep": b"k"}),
        b"",  # an empty layer: tarfile calls a 0-byte tar at offset 0 an "empty file"
        _tar({"keep": b"k2"}, whiteouts=("data/.wh.big", "bin/.wh.app")),
    ]
    path = tmp_path / "oci.tar"
    original = _oci_archive(path, layers)
    with SavedImage(str(path)) as saved, _LayerFiles(saved, str(tmp_path)) as files:
        assert [m.name for m in files.headers(1)] == ["data/big", "keep"]
        assert (tmp_path / "layer-1.tar").exists()  # inflated: data is read at random offsets
        assert files.headers(2) == []
        plan = plan_squash([files.headers(0)], [files.headers(i) for i in (1, 2, 3)])
        template = _squashed_config(saved.config, 1, 3, "--from 3")
        manifest = json.dumps([{"Config": "config.json", "Layers": ["b/l.tar", "s/l.tar"]}])
        archive = _Archive(files, plan, template, manifest.encode(), raw_base=())
        data = b"".join(_prefetched(archive.chunks()))
    assert len(data) == archive.length()
    with tarfile.open(fileobj=io.BytesIO(data)) as outer:
        layer = outer.extractfile("squashed/layer.tar").read()  # type: ignore[union-attr]
        config = json.loads(outer.extractfile("config.json").read())  # type: ignore[union-attr]
    diff_ids = config["rootfs"]["diff_ids"]
    assert diff_ids[0] == original["rootfs"]["diff_ids"][0]
    assert diff_ids[1] == "sha256:" + hashlib.sha256(layer).hexdigest()
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        got = {m.name: tar.extractfile(m).read() if m.isreg() else None for m in tar}  # type: ignore[union-attr]
    # data/big was written and deleted above the base: only its parent stays (the engine
    # made it for data/big, and the whiteout removes the file alone); bin/app was the base's.
    assert got == {"bin": None, "bin/.wh.app": b"", "data": None, "keep": b"k2"}
    history = config["history"]
    assert [h.get("empty_layer", False) for h in history] == [False, True, True, True, True, False]
    assert history[-1]["created_by"] == "imgtag squash: merged 3 layers"
    assert history[-1]["created"] == original["created"]  # the same input, the same image ID
    assert config["config"] == original["config"]


def test_a_failing_producer_raises_in_the_consumer() -> None:
    def broken() -> Any:
        yield b"a"
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        list(_prefetched(broken()))


def test_default_names() -> None:
    assert default_tag("sha256:" + "0" * 64) is None
    assert with_tag("127.0.0.1:5000/a/b") == "127.0.0.1:5000/a/b:latest"
