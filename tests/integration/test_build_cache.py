"""``build-push`` on the modern pipeline: registry cache, provenance, annotations.

Against the real bed: BuildKit through ``docker buildx`` on Engine 26 (containerd image
store) writes and reads a registry cache next to the image, makes provenance
attestations and annotations; what a builder cannot honour is exit 2 before anything is
claimed. Every test asserts what a user sees and then the registry's state.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1]))

import test_build_push as bp

import testbed as tb
from appfixture import make_app

#: An unused loopback port: nothing answers there.
DEAD_REGISTRY = "127.0.0.1:1"


@pytest.fixture(scope="module")
def env26(testbed: tb.Testbed, engine26: tb.ModernEngine) -> dict[str, str]:
    return {**engine26.env(testbed), "IMGTAG_BUILDER": "buildkit"}


@pytest.fixture(scope="module")
def env20(testbed: tb.Testbed) -> dict[str, str]:
    return {**testbed.env(), "STORAGE_DRIVER": "vfs", "BUILDAH_ISOLATION": "chroot"}


def cached_steps(stderr: str) -> int:
    """How many Dockerfile steps BuildKit took from a cache rather than running them.

    A hit prints ``#N CACHED``; a hit whose layer is needed for the export prints, instead,
    the download of that layer from the cache (``#N sha256:<64 hex> 113B / 113B done``).
    A step that ran prints neither: a COPY that ran has no download lines.
    """
    steps = set(re.findall(r"^#(\d+) \[[^\]]*\d+/\d+\] ", stderr, re.MULTILINE))
    hits = {
        step
        for step in steps
        if re.search(rf"^#{step} (CACHED|sha256:[0-9a-f]{{64}} .* done)\s*$", stderr, re.MULTILINE)
    }
    return len(hits)


def test_a_registry_cache_is_written_then_hits_after_a_prune(
    registry_plain: tb.Registry, env26: dict[str, str], engine26: tb.ModernEngine, tmp_path: Path
) -> None:
    app = make_app(tmp_path / "app", "cached")
    repo = bp.fresh_repo("cache")
    image = registry_plain.image(repo)
    cache = registry_plain.image(repo, "buildcache")
    first = bp.build_push(
        app,
        image,
        "--build", "1",
        "--cache-to", f"type=registry,ref={cache},mode=max",
        "--cache-from", cache,  # not there yet: BuildKit warns and builds without it
        "--provenance", "max",
        "--annotation", "org.example.team=tools",
        env=env26,
    )  # fmt: skip
    doc = bp.ok_doc(first)
    assert f"warning: --cache-from {cache} could not be read" in first.stderr
    view = bp.RegistryView.of(registry_plain)
    assert view.tags(repo) == ["1.0.0-1", "buildcache"], "no claim or temporary tag is left"
    index = view.manifest(repo, "1.0.0-1")
    kinds = [bp.is_attestation_entry(m) for m in index["manifests"]]
    assert kinds == [False, True], "the image and its provenance, as buildx made them"
    manifest = view.image_manifest(repo, "1.0.0-1")
    annotations = manifest.get("annotations") or {}
    assert annotations["org.example.team"] == "tools"
    assert annotations["org.opencontainers.image.version"] == "1.0.0-1", "labels as annotations"
    assert view.digest(repo, "1.0.0-1") == doc["digest"]
    # A fresh builder (as a new CI job has) reads every step from the registry cache.
    pruned = subprocess.run(
        [str(engine26.tools.docker), "buildx", "prune", "-af"],
        env=env26, capture_output=True, text=True,
    )  # fmt: skip
    assert pruned.returncode == 0, pruned.stderr
    second = bp.build_push(app, image, "--build", "2", "--cache-from", cache, env=env26)
    bp.ok_doc(second)
    assert "could not be read" not in second.stderr
    assert cached_steps(second.stderr) == 2, second.stderr  # both COPY steps
    assert view.tags(repo) == ["1.0.0-1", "1.0.0-2", "buildcache"]


def test_a_cache_that_cannot_be_written_fails_unless_ignore_error(
    registry_plain: tb.Registry, env26: dict[str, str], tmp_path: Path
) -> None:
    app = make_app(tmp_path / "app", "no cache registry")
    repo = bp.fresh_repo("cacheto")
    image = registry_plain.image(repo)
    dead = f"type=registry,ref={DEAD_REGISTRY}/x:buildcache"
    failed = bp.build_push(app, image, "--build", "1", "--cache-to", dead, env=env26)
    assert "build failed" in bp.error_sentence(failed, 6)
    view = bp.RegistryView.of(registry_plain)
    assert view.tags(repo) == [], "buildx pushed first: its temporary tag is removed too"
    ignored = bp.build_push(
        app, image, "--build", "1", "--cache-to", dead + ",ignore-error=true", env=env26
    )
    doc = bp.ok_doc(ignored)
    assert view.tags(repo) == ["1.0.0-1"] and view.digest(repo, "1.0.0-1") == doc["digest"]


def test_provenance_false_pushes_a_plain_manifest(
    registry_plain: tb.Registry, env26: dict[str, str], tmp_path: Path
) -> None:
    app = make_app(tmp_path / "app", "no provenance")
    repo = bp.fresh_repo("noprov")
    env = {**env26, "IMGTAG_PROVENANCE": "false"}  # the variable, as the option
    bp.ok_doc(bp.build_push(app, registry_plain.image(repo), "--build", "1", env=env))
    manifest = bp.RegistryView.of(registry_plain).manifest(repo, "1.0.0-1")
    assert "manifests" not in manifest and manifest["layers"], "one image, no attestation"


REFUSED = {
    # name: (builder, engine, arguments, what the sentence names)
    "docker and a local cache": ("docker", "20", ["--cache-from", "type=local,src=/tmp"], "docker"),
    "docker and a cache-to": ("docker", "20", ["--cache-to", "r/x:c"], "docker"),
    "docker and provenance": ("docker", "20", ["--provenance", "max"], "docker"),
    "docker and an annotation": ("docker", "20", ["--annotation", "a=b"], "docker"),
    "buildah and provenance": ("buildah", "20", ["--provenance", "min"], "buildah"),
    "buildah and an inline cache": ("buildah", "20", ["--cache-to", "type=inline"], "buildah"),
    "the 20.10 CLI and a cache-to": ("buildkit", "20", ["--cache-to", "r/x:c"], "buildkit"),
    "the 20.10 CLI and provenance": ("buildkit", "20", ["--provenance", "max"], "buildkit"),
    "a malformed spec": ("buildkit", "26", ["--cache-from", "type=registry"], "ref="),
    "an unknown cache type": ("buildkit", "26", ["--cache-to", "type=s3,bucket=b"], "s3"),
    "a bad provenance": ("buildkit", "26", ["--provenance", "mode=max"], "false, min or max"),
    "a bad annotation": ("buildkit", "26", ["--annotation", "novalue"], "KEY=VALUE"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_what_a_builder_cannot_honour_is_exit_2_before_any_claim(
    case: str,
    registry_plain: tb.Registry,
    env20: dict[str, str],
    env26: dict[str, str],
    tmp_path: Path,
) -> None:
    builder, engine, args, named = REFUSED[case]
    app = make_app(tmp_path / "app", "refused")
    repo = bp.fresh_repo("refused")
    env = env26 if engine == "26" else env20
    result = bp.build_push(
        app, registry_plain.image(repo), "--builder", builder, "--build", "1", *args, env=env
    )
    sentence = bp.error_sentence(result, 2)
    assert named in sentence, sentence
    assert "building" not in result.stderr
    assert bp.RegistryView.of(registry_plain).tags(repo) == [], "nothing claimed or pushed"


def test_the_config_file_sets_the_cache(
    registry_plain: tb.Registry, env26: dict[str, str], tmp_path: Path
) -> None:
    repo = bp.fresh_repo("cachecfg")
    cache = registry_plain.image(repo, "buildcache")
    config = f'cache_to = ["type=registry,ref={cache}"]\nprovenance = false\n'
    app = make_app(tmp_path / "app", "configured", files={".imgtag.toml": config})
    bp.ok_doc(bp.build_push(app, registry_plain.image(repo), "--build", "1", env=env26))
    view = bp.RegistryView.of(registry_plain)
    assert view.tags(repo) == ["1.0.0-1", "buildcache"]
    assert "manifests" not in view.manifest(repo, "1.0.0-1"), "provenance = false"


# --- readers of an index with attestation manifests -------------------------------------


def test_analyze_and_squash_read_an_image_with_attestations(
    registry_plain: tb.Registry, env26: dict[str, str], engine26: tb.ModernEngine, tmp_path: Path
) -> None:
    from clirun import run_cli

    dockerfile = "FROM scratch\nCOPY busybox /busybox\nCOPY content.txt /content.txt\n"
    app = make_app(tmp_path / "app", "attested", dockerfile=dockerfile)
    repo = bp.fresh_repo("attested")
    pushed = bp.build_push(
        app, registry_plain.image(repo), "--build", "1", "--provenance", "max", env=env26
    )
    bp.ok_doc(pushed)
    ref = registry_plain.image(repo, "1.0.0-1")
    # analyze --from-registry takes the image, never the attestation (unknown/unknown).
    analyzed = run_cli(["analyze", ref, "--from-registry", "--format", "json"], env=env26)
    assert analyzed.code == 0, analyzed.stderr
    report = json.loads(analyzed.stdout)
    assert len(report["layers"]) == 2, "the image's two layers, not the attestation's one"
    # The same index loaded into the containerd image store: `docker save` writes it with
    # its attestation, and squash reads the one image of it.
    local = f"imgtag-it/attested-{repo[-8:]}:1"
    loaded = subprocess.run(
        [str(engine26.tools.docker), "buildx", "build", "--progress", "plain",
         "--provenance", "mode=max", "--load", "-t", local, str(app.path)],
        env=env26, capture_output=True, text=True,
    )  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    squashed = run_cli(["squash", local, "--from", "2", "--format", "json"], env=env26)
    assert squashed.code == 0, squashed.stderr
    assert '"squashed_layers": 2' in squashed.stdout
