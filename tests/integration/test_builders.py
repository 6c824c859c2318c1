"""``imgtag build-push --builder docker|buildkit|buildah`` against the real bed.

The same guard whichever builds: every test asserts what a user sees (exit code, JSON,
one error sentence) and then the registry's state, read independently with ``requests``
(``RegistryView`` of ``test_build_push.py``). buildah runs as users run it inside CI
containers (``STORAGE_DRIVER=vfs``, ``BUILDAH_ISOLATION=chroot``); BuildKit runs through
Debian's docker CLI (20.10, ``DOCKER_BUILDKIT=1``) against the bed's bridgeless engine.
Test images are ``FROM scratch`` with busybox: nothing is pulled.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1]))

import test_build_push as bp

import testbed as tb
from appfixture import make_app

BUILDERS = ["docker", "buildkit", "buildah"]
MODERN = ["buildkit", "buildah"]
SECRET_VALUE = "imgtag-" + "s3cret" + "-" + "Z9q" * 4


#: docker and buildkit on both engines (20.10; 26 with the containerd image store), buildah
#: (which needs no engine) once.
BUILDER_ENGINES = [
    ("docker", "engine20"),
    ("docker", "engine26"),
    ("buildkit", "engine20"),
    ("buildkit", "engine26"),
    ("buildah", "engine20"),
]
MODERN_ENGINES = [(b, e) for b, e in BUILDER_ENGINES if b in MODERN]
on_engines = pytest.mark.parametrize(
    ("builder", "bed_engine"), BUILDER_ENGINES, indirect=["bed_engine"]
)
modern_on_engines = pytest.mark.parametrize(
    ("builder", "bed_engine"), MODERN_ENGINES, indirect=["bed_engine"]
)
#: Tests where the engine does not matter run on the 20.10 one only.
one_engine = pytest.mark.parametrize("bed_engine", ["engine20"], indirect=True)


@pytest.fixture(scope="module")
def bed_env(bed_engine: tb.BedEngine) -> dict[str, str]:
    return {**bed_engine.env, "STORAGE_DRIVER": "vfs", "BUILDAH_ISOLATION": "chroot"}


def ok(result: Any, builder: str) -> dict[str, Any]:
    doc = bp.ok_doc(result)
    assert doc["builder"] == builder
    return doc


def blobs_of(view: bp.RegistryView, repo: str, ref: str) -> list[bytes]:
    """Every blob and manifest reachable from ``repo:ref`` (index children included),
    layers both as stored and decompressed."""
    found: list[bytes] = []
    resp = view.call("GET", f"/v2/{repo}/manifests/{ref}", headers={"Accept": tb.MANIFEST_ACCEPT})
    assert resp.status_code == 200
    found.append(resp.content)
    doc = resp.json()
    for child in doc.get("manifests") or []:
        found += blobs_of(view, repo, child["digest"])
    for desc in [doc.get("config"), *(doc.get("layers") or [])]:
        if not desc:
            continue
        data = view.blob(repo, desc["digest"])
        found.append(data)
        if data[:2] == b"\x1f\x8b":
            found.append(gzip.decompress(data))
    return found


# --- each builder publishes, with OCI labels, through the same guard ------------------


@on_engines
def test_each_builder_publishes_with_oci_labels_and_outputs(
    builder: str,
    registry_basic: tb.Registry,
    bed_env: dict[str, str],
    tmp_path: Path,
) -> None:
    app = make_app(tmp_path / "app", f"hello {builder}", origin=bp.ORIGIN_WITH_TOKEN)
    repo = bp.fresh_repo(f"b-{builder}")
    image = registry_basic.image(repo)
    gh_output = tmp_path / "gh"
    env_file = tmp_path / "out.env"
    result = bp.build_push(
        app,
        image,
        "--builder",
        builder,
        "--build",
        "1",
        "--env-file",
        str(env_file),
        env={**bed_env, "GITHUB_OUTPUT": str(gh_output)},
    )
    doc = ok(result, builder)
    view = bp.RegistryView.of(registry_basic)
    assert view.digest(repo, "1.0.0-1") == doc["digest"]
    assert view.tags(repo) == ["1.0.0-1"], "no claim or build name may be left behind"
    labels = view.labels(repo, "1.0.0-1")
    assert labels[bp.LABEL_VERSION] == "1.0.0-1"
    assert labels[bp.LABEL_REVISION] == app.head()
    assert labels[bp.LABEL_SOURCE] == bp.PUBLIC_SOURCE
    assert view.file(repo, "1.0.0-1", "content.txt") == f"hello {builder}"
    assert f"digest={doc['digest']}" in gh_output.read_text()
    assert f"IMGTAG_DIGEST={doc['digest']}" in env_file.read_text()
    bp.no_secret(result, bp.TOKEN_SECRET, registry_basic.password or "?")


@on_engines
def test_each_builder_refuses_an_existing_tag_and_skips_the_same_commit(
    builder: str, registry_plain: tb.Registry, bed_env: dict[str, str], tmp_path: Path
) -> None:
    app = make_app(tmp_path / "app", "exists")
    repo = bp.fresh_repo(f"x-{builder}")
    image = registry_plain.image(repo)
    args = ("--builder", builder, "--build", "1")
    first = ok(bp.build_push(app, image, *args, env=bed_env), builder)
    again = bp.build_push(app, image, *args, env=bed_env)
    assert first["digest"] in bp.error_sentence(again, 3)
    assert "building" not in again.stderr, "nothing is built for a tag that exists"
    skipped = bp.ok_doc(bp.build_push(app, image, *args, "--on-exists", "skip", env=bed_env))
    assert skipped["pushed"] is False and skipped["digest"] == first["digest"]
    assert bp.RegistryView.of(registry_plain).tags(repo) == ["1.0.0-1"]


@on_engines
def test_each_builder_squashes_its_own_layers_into_one(
    builder: str, registry_plain: tb.Registry, bed_env: dict[str, str], tmp_path: Path
) -> None:
    dockerfile = bp.SQUASH_DOCKERFILE.format(base="scratch")
    app = make_app(tmp_path / "app", "squashed", dockerfile=dockerfile)
    repo = bp.fresh_repo(f"sq-{builder}")
    view = bp.RegistryView.of(registry_plain)
    image = registry_plain.image(repo)
    doc = ok(
        bp.build_push(app, image, "--builder", builder, "--build", "1", "--squash", env=bed_env),
        builder,
    )
    assert doc["squash"]["base_layers"] == 0
    manifest = view.manifest(repo, "1.0.0-1")
    assert len(manifest["layers"]) == 1
    names = {n.lstrip("./") for n in bp._layer_names(view, repo, manifest["layers"][0]["digest"])}
    assert {"busybox", "a.txt", "content.txt"} <= names
    assert not any(n.endswith("big") for n in names), "a deleted file came back"
    config = view.config(repo, "1.0.0-1")
    assert config["config"]["User"] == "1001"
    assert config["config"]["Labels"][bp.LABEL_VERSION] == "1.0.0-1"


@on_engines
def test_each_builder_six_concurrent_publishes_have_exactly_one_winner(
    builder: str, registry_plain: tb.Registry, bed_env: dict[str, str], tmp_path: Path
) -> None:
    repo = bp.fresh_repo(f"race-{builder}")
    runs = bp.race(tmp_path, registry_plain.image(repo), bed_env, extra=("--builder", builder))
    winner = bp.assert_one_winner(runs, bp.RegistryView.of(registry_plain), repo, "1.0.0-7")
    assert json.loads(winner.stdout)["builder"] == builder


@on_engines
def test_a_failing_build_is_exit_6_and_leaves_no_claim_and_no_tag(
    builder: str, registry_plain: tb.Registry, bed_env: dict[str, str], tmp_path: Path
) -> None:
    app = make_app(tmp_path / "app", "x", dockerfile=bp.FAILING["run-false"])
    repo = bp.fresh_repo(f"fail-{builder}")
    result = bp.build_push(
        app, registry_plain.image(repo), "--builder", builder, "--build", "1", env=bed_env
    )
    assert "build failed" in bp.error_sentence(result, 6)
    assert bp.RegistryView.of(registry_plain).tags(repo) == [], "no tag, no claim tag"


CRASHING = {
    # A builder killed midway (SIGKILL after its first line): the run must clean up.
    "buildah": '#!/bin/sh\nif [ "$1" = bud ]; then echo "STEP 1/3: FROM scratch"; kill -9 $$; fi\n'
    'exec /usr/bin/buildah "$@"\n',
    "buildkit": '#!/bin/sh\ncase "$1" in\n  version) echo 20.10.24; exit 0;;\n'
    '  build) echo "#1 [internal] load build definition"; kill -9 $$;;\nesac\nexit 1\n',
}


@one_engine
@pytest.mark.parametrize("builder", sorted(CRASHING))
def test_a_builder_crashing_midway_leaves_no_claim_and_no_tag(
    builder: str, registry_plain: tb.Registry, bed_env: dict[str, str], tmp_path: Path
) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / ("buildah" if builder == "buildah" else "docker")
    fake.write_text(CRASHING[builder])
    fake.chmod(0o755)
    app = make_app(tmp_path / "app", "crash")
    repo = bp.fresh_repo(f"crash-{builder}")
    env = {**bed_env, "PATH": f"{bindir}:{os.environ['PATH']}"}
    result = bp.build_push(
        app, registry_plain.image(repo), "--builder", builder, "--build", "1", env=env
    )
    assert "build failed" in bp.error_sentence(result, 6)
    assert bp.RegistryView.of(registry_plain).tags(repo) == [], "no tag, no claim tag"


# --- what only the modern builders can do -------------------------------------------------

MOUNTS_DOCKERFILE = """\
FROM scratch
COPY busybox /busybox
RUN --mount=type=cache,target=/cache ["/busybox", "sh", "-c", \
"/busybox date > /cache/stamp && /busybox ls /cache > /cached.txt"]
RUN --mount=type=secret,id=tok ["/busybox", "sh", "-c", \
"echo token is $(/busybox cat /run/secrets/tok) && /busybox wc -c < /run/secrets/tok > /len"]
RUN --mount=type=secret,id=envtok ["/busybox", "sh", "-c", \
"/busybox cat /run/secrets/envtok && /busybox wc -c < /run/secrets/envtok > /envlen"]
COPY content.txt /content.txt
"""


@modern_on_engines
def test_cache_and_secret_mounts_and_the_secret_reaches_nothing_else(
    builder: str, registry_plain: tb.Registry, bed_env: dict[str, str], tmp_path: Path
) -> None:
    secret_file = tmp_path / "token.txt"
    secret_file.write_text(SECRET_VALUE + "\n")
    env_value = SECRET_VALUE[::-1]
    app = make_app(tmp_path / "app", "mounts", dockerfile=MOUNTS_DOCKERFILE)
    repo = bp.fresh_repo(f"mounts-{builder}")
    image = registry_plain.image(repo)
    env_file = tmp_path / "out.env"
    gh_output = tmp_path / "gh"
    result = bp.build_push(
        app,
        image,
        "--builder",
        builder,
        "--build",
        "1",
        "--secret",
        f"id=tok,src={secret_file}",
        "--secret",
        "id=envtok,env=IMGTAG_IT_TOKEN",
        "--env-file",
        str(env_file),
        env={**bed_env, "IMGTAG_IT_TOKEN": env_value, "GITHUB_OUTPUT": str(gh_output)},
    )
    doc = ok(result, builder)
    # The RUN did read both secrets: it echoed them (redacted) and stored their lengths.
    assert "token is ***" in result.stderr
    view = bp.RegistryView.of(registry_plain)
    blobs = blobs_of(view, repo, "1.0.0-1")
    layers = b"".join(blobs)
    assert f"{len(SECRET_VALUE) + 1}\n".encode() in layers
    assert f"{len(env_value)}\n".encode() in layers
    for value in (SECRET_VALUE, env_value):
        for blob in blobs:
            assert value.encode() not in blob, "a secret reached a pushed blob"
        bp.no_secret(result, value)
        assert value not in env_file.read_text() and value not in gh_output.read_text()
    # The cache mount worked and stayed out of the image.
    assert b"stamp" in layers
    names = {
        n.lstrip("./")
        for d in view.image_manifest(repo, "1.0.0-1")["layers"]
        for n in bp._layer_names(view, repo, d["digest"])
    }
    assert "cached.txt" in names and not any(n.startswith("cache/") for n in names)
    assert doc["pushed"] is True


COPY_ONLY = "FROM scratch\nCOPY content.txt /content.txt\n"


@modern_on_engines
def test_two_platforms_make_an_index_and_aliases_and_skip_work_on_it(
    builder: str,
    registry_plain: tb.Registry,
    bed_engine: tb.BedEngine,
    bed_env: dict[str, str],
    tmp_path: Path,
) -> None:
    app = make_app(tmp_path / "app", "two platforms", dockerfile=COPY_ONLY)
    repo = bp.fresh_repo(f"mp-{builder}")
    image = registry_plain.image(repo)
    args = ("--builder", builder, "--build", "1", "--platform", "linux/amd64,linux/arm64")
    doc = ok(bp.build_push(app, image, *args, "--alias", "latest", env=bed_env), builder)
    view = bp.RegistryView.of(registry_plain)
    assert view.digest(repo, "1.0.0-1") == doc["digest"]
    assert view.digest(repo, "latest") == doc["digest"], "the alias names the index"
    index = view.manifest(repo, "1.0.0-1")
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    images = [m for m in index["manifests"] if not bp.is_attestation_entry(m)]
    platforms = [(m["platform"]["os"], m["platform"]["architecture"]) for m in images]
    assert platforms == [("linux", "amd64"), ("linux", "arm64")]
    attestations = [m for m in index["manifests"] if bp.is_attestation_entry(m)]
    if builder == "buildkit" and bed_engine.containerd_store:
        # buildx's own index, kept byte for byte: one provenance attestation per platform.
        refs = [m["annotations"]["vnd.docker.reference.digest"] for m in attestations]
        assert refs == [m["digest"] for m in images]
    else:
        assert attestations == []
    for entry in images:
        config = view.config(repo, entry["digest"])
        assert config["architecture"] == entry["platform"]["architecture"]
        assert config["config"]["Labels"][bp.LABEL_REVISION] == app.head()
    assert view.tags(repo) == ["1.0.0-1", "latest"], "temporary tags and claims are gone"
    if builder != "buildah":  # buildah names nothing locally
        import docker

        engine = docker.APIClient(base_url=bed_env["DOCKER_HOST"], version="auto")
        names = [t for i in engine.images() for t in i.get("RepoTags") or [] if repo in t]
        engine.close()
        assert not [n for n in names if ":imgtag-" in n], f"the run's names stay: {names}"
    skipped = bp.ok_doc(bp.build_push(app, image, *args, "--on-exists", "skip", env=bed_env))
    assert skipped["pushed"] is False and skipped["digest"] == doc["digest"]


# --- refusals and bad input: exit 2 before anything is claimed ----------------------------


BAD_INPUT = {
    "unknown builder": (["--builder", "kaniko"], {}, "kaniko"),
    "unknown builder from env": ([], {"IMGTAG_BUILDER": "kaniko"}, "kaniko"),
    "malformed secret": (["--secret", "id=tok"], {}, "--secret"),
    "secret without id": (["--secret", "src=/etc/hostname"], {}, "no id"),
    "missing secret file": (["--secret", "id=tok,src=/nonexistent/tok"], {}, "/nonexistent/tok"),
    "unset secret variable": (["--secret", "id=tok,env=IMGTAG_IT_UNSET"], {}, "IMGTAG_IT_UNSET"),
    "unknown platform": (["--platform", "linux/amd46"], {}, "amd46"),
    "malformed platform": (["--platform", "linux"], {}, "os/arch"),
    "docker and a secret": (["--builder", "docker", "--secret", "id=t,env=HOME"], {}, "docker"),
    "docker and a platform": (["--builder", "docker", "--platform", "linux/arm64"], {}, "docker"),
}


@one_engine
@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_is_exit_2_before_anything_is_claimed(
    case: str, registry_plain: tb.Registry, bed_env: dict[str, str], tmp_path: Path
) -> None:
    args, env, named = BAD_INPUT[case]
    app = make_app(tmp_path / "app", "bad")
    repo = bp.fresh_repo("bad")
    result = bp.build_push(
        app, registry_plain.image(repo), *args, "--build", "1", env={**bed_env, **env}
    )
    assert named in bp.error_sentence(result, 2)
    assert "building" not in result.stderr
    assert bp.RegistryView.of(registry_plain).tags(repo) == [], "nothing may be claimed"


@one_engine
def test_an_unknown_builder_in_the_config_file_is_exit_2(
    registry_plain: tb.Registry, bed_env: dict[str, str], tmp_path: Path
) -> None:
    app = make_app(tmp_path / "app", "cfg", files={".imgtag.toml": 'builder = "kaniko"\n'})
    repo = bp.fresh_repo("badcfg")
    result = bp.build_push(app, registry_plain.image(repo), "--build", "1", env=bed_env)
    assert "builder" in bp.error_sentence(result, 2)
    assert bp.RegistryView.of(registry_plain).tags(repo) == []


@one_engine
def test_the_config_file_picks_the_builder(
    registry_plain: tb.Registry, bed_env: dict[str, str], tmp_path: Path
) -> None:
    app = make_app(tmp_path / "app", "cfg", files={".imgtag.toml": 'builder = "buildah"\n'})
    repo = bp.fresh_repo("cfg")
    ok(bp.build_push(app, registry_plain.image(repo), "--build", "1", env=bed_env), "buildah")


# --- no engine at all -----------------------------------------------------------------------

NO_ENGINE = "unix:///nonexistent/docker.sock"


@one_engine
def test_buildah_builds_and_pushes_with_no_engine_reachable(
    registry_basic: tb.Registry, bed_env: dict[str, str], tmp_path: Path
) -> None:
    app = make_app(tmp_path / "app", "no engine")
    repo = bp.fresh_repo("noengine")
    image = registry_basic.image(repo)
    env = {**bed_env, "DOCKER_HOST": NO_ENGINE}
    explicit = ok(
        bp.build_push(app, image, "--builder", "buildah", "--build", "1", env=env), "buildah"
    )
    assert bp.RegistryView.of(registry_basic).digest(repo, "1.0.0-1") == explicit["digest"]
    # auto finds no engine and says it picked buildah.
    auto = bp.build_push(app, image, "--build", "2", env=env)
    ok(auto, "buildah")
    assert "builder: buildah" in auto.stderr
    assert bp.RegistryView.of(registry_basic).tags(repo) == ["1.0.0-1", "1.0.0-2"]


def test_auto_picks_buildkit_when_the_engine_answers(
    registry_plain: tb.Registry, bed_env: dict[str, str], tmp_path: Path
) -> None:
    app = make_app(tmp_path / "app", "auto")
    result = bp.build_push(
        app, registry_plain.image(bp.fresh_repo("auto")), "--build", "1", env=bed_env
    )
    ok(result, "buildkit")
    assert "builder: buildkit" in result.stderr


@one_engine
def test_no_builder_at_all_is_exit_6_naming_what_to_install(
    registry_plain: tb.Registry, bed_env: dict[str, str], tmp_path: Path
) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    git = shutil.which("git")
    assert git is not None
    (bindir / "git").symlink_to(git)
    app = make_app(tmp_path / "app", "nothing")
    repo = bp.fresh_repo("nobuilder")
    env = {**bed_env, "DOCKER_HOST": NO_ENGINE, "PATH": str(bindir)}
    sentence = bp.error_sentence(
        bp.build_push(app, registry_plain.image(repo), "--build", "1", env=env), 6
    )
    assert "install buildah" in sentence and "Docker engine" in sentence
    assert bp.RegistryView.of(registry_plain).tags(repo) == []


@modern_on_engines
def test_squash_over_a_from_image_in_the_registry_keeps_its_layers(
    builder: str,
    registry_plain: tb.Registry,
    bed_env: dict[str, str],
    docker_client: Any,
    tmp_path: Path,
) -> None:
    # The base lives only in the registry: neither BuildKit nor buildah keeps it in the
    # engine, so its layers must be read from there for the squash to leave them alone.
    base = registry_plain.image(bp.fresh_repo("sqbase"), "1")
    base_layers = tb.build_scratch_image(docker_client, base, "the base").attrs["RootFS"]["Layers"]
    tb.push_image(docker_client, base)
    docker_client.images.remove(base)
    app = make_app(tmp_path / "app", "over", dockerfile=bp.SQUASH_DOCKERFILE.format(base=base))
    repo = bp.fresh_repo(f"sqreg-{builder}")
    view = bp.RegistryView.of(registry_plain)
    image = registry_plain.image(repo)
    try:
        doc = ok(
            bp.build_push(
                app, image, "--builder", builder, "--build", "1", "--squash", env=bed_env
            ),
            builder,
        )
    finally:
        if builder == "buildah":  # buildah keeps the FROM image it pulled: not ours to keep
            subprocess.run(
                ["buildah", "rmi", base],
                env={**os.environ, **bed_env},
                capture_output=True,
                check=False,
            )
    assert doc["squash"]["base_layers"] == len(base_layers)
    assert base in doc["squash"]["base"]
    diff_ids = view.config(repo, "1.0.0-1")["rootfs"]["diff_ids"]
    assert diff_ids[: len(base_layers)] == base_layers, "base layers changed"
    assert len(diff_ids) == len(base_layers) + 1
    assert view.file(repo, "1.0.0-1", "content.txt") == "over"
