"""``imgtag build-push`` against the real bed: dockerd and Distribution registries.

README.md, "imgtag build-push"; docs/registries.md; docs/exit-codes.md. Every test asserts what a
user sees (exit code, the JSON on stdout, one ``imgtag: error:`` sentence on stderr without
a traceback) and then the REGISTRY's state, read independently with ``requests`` and all
four manifest media types in ``Accept`` (never through imgtag's own client).

Checkouts are real git repositories with a ``FROM scratch`` Dockerfile
(``tests/appfixture.py``); every test pushes to a fresh repository name, so tests do not
see each other's tags on the session's shared registries. The concurrency tests run the
installed ``imgtag`` console script as separate processes, as CI jobs would; the rest run
``tagger.cli.main`` in-process (``tests/clirun.py``), which is faster.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import secrets
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests

sys.path.insert(0, str(Path(__file__).parents[1]))

import testbed as tb
from appfixture import change, make_app
from clirun import CliResult, run_cli
from gitfixture import GitRepoBuilder

JSON_KEYS = [
    "image",
    "tag",
    "digest",
    "aliases",
    "pushed",
    "lint",
    "lint_findings",
    "squash",
    "builder",
    "signed",
    "signatures",
    "check",
]
CLAIM_PREFIX = "imgtag-claim-"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST_ONLY = "application/vnd.docker.distribution.manifest.v2+json"
#: The console script installed next to this interpreter (``pip install -e .``).
IMGTAG = Path(sys.executable).with_name("imgtag")
#: A remote URL with a CI token in it, as actions/checkout and GitLab runners write them.
TOKEN_SECRET = "ghs_" + "S3cr3tT0ken" + "x" * 8
ORIGIN_WITH_TOKEN = f"https://x-access-token:{TOKEN_SECRET}@github.com/o/r.git"
PUBLIC_SOURCE = "https://github.com/o/r"

LABEL_VERSION = "org.opencontainers.image.version"
LABEL_REVISION = "org.opencontainers.image.revision"
LABEL_CREATED = "org.opencontainers.image.created"
LABEL_TITLE = "org.opencontainers.image.title"
LABEL_SOURCE = "org.opencontainers.image.source"


# --- the registry, seen independently -----------------------------------------------------


@dataclass
class RegistryView:
    """Reads (and, for set-ups, writes) a registry with plain ``requests``."""

    url: str
    auth: Any = None
    verify: str | bool = True

    @classmethod
    def of(cls, reg: tb.Registry) -> RegistryView:
        return cls(reg.url, reg.auth, reg.verify)

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """One request to ``path`` under the registry's root URL."""
        with requests.Session() as session:
            session.trust_env = False  # no proxy for 127.0.0.1
            return session.request(
                method,
                f"{self.url}{path}",
                auth=self.auth,
                verify=self.verify,
                timeout=30,
                **kwargs,
            )

    def digest(self, repo: str, ref: str, accept: str = tb.MANIFEST_ACCEPT) -> str | None:
        """The digest ``repo:ref`` points at, or None (404)."""
        resp = self.call("HEAD", f"/v2/{repo}/manifests/{ref}", headers={"Accept": accept})
        if resp.status_code == 404:
            return None
        assert resp.status_code == 200, (resp.status_code, resp.headers)
        return str(resp.headers["Docker-Content-Digest"])

    def tags(self, repo: str) -> list[str]:
        resp = self.call("GET", f"/v2/{repo}/tags/list")
        if resp.status_code == 404:
            return []
        assert resp.status_code == 200, resp.text
        return sorted(resp.json().get("tags") or [])

    def manifest(self, repo: str, ref: str) -> dict[str, Any]:
        resp = self.call(
            "GET", f"/v2/{repo}/manifests/{ref}", headers={"Accept": tb.MANIFEST_ACCEPT}
        )
        assert resp.status_code == 200, resp.text
        doc: dict[str, Any] = resp.json()
        return doc

    def image_manifest(self, repo: str, ref: str) -> dict[str, Any]:
        """The image manifest of ``repo:ref``: itself, or the one image of an index whose
        other entries are attestations (buildx's provenance)."""
        doc = self.manifest(repo, ref)
        if "manifests" not in doc:
            return doc
        images = [m for m in doc["manifests"] if not is_attestation_entry(m)]
        assert len(images) == 1, f"{repo}:{ref} is an index of {len(images)} images"
        return self.manifest(repo, images[0]["digest"])

    def blob(self, repo: str, digest: str) -> bytes:
        resp = self.call("GET", f"/v2/{repo}/blobs/{digest}")
        assert resp.status_code == 200, resp.status_code
        return resp.content

    def config(self, repo: str, ref: str) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(
            self.blob(repo, self.image_manifest(repo, ref)["config"]["digest"])
        )
        return doc

    def labels(self, repo: str, ref: str) -> dict[str, str]:
        labels: dict[str, str] = self.config(repo, ref)["config"].get("Labels") or {}
        return labels

    def file(self, repo: str, ref: str, name: str) -> str:
        """A file's text from the image's top layer (``content.txt`` of the app)."""
        layer = self.image_manifest(repo, ref)["layers"][-1]["digest"]
        with tarfile.open(fileobj=io.BytesIO(self.blob(repo, layer)), mode="r:*") as tar:
            member = tar.extractfile(name)
            assert member is not None, f"{name} is not in the top layer of {repo}:{ref}"
            return member.read().decode()

    def upload_blob(self, repo: str, data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        start = self.call("POST", f"/v2/{repo}/blobs/uploads/")
        assert start.status_code == 202, start.text
        location = start.headers["Location"]
        if location.startswith("/"):
            location = f"{self.url}{location}"
        sep = "&" if "?" in location else "?"
        with requests.Session() as session:
            session.trust_env = False
            done = session.put(
                f"{location}{sep}digest={digest}",
                data=data,
                headers={"Content-Type": "application/octet-stream"},
                auth=self.auth,
                verify=self.verify,
                timeout=30,
            )
        assert done.status_code == 201, done.text
        return digest

    def put_manifest(self, repo: str, ref: str, raw: bytes, media_type: str) -> str:
        resp = self.call(
            "PUT", f"/v2/{repo}/manifests/{ref}", data=raw, headers={"Content-Type": media_type}
        )
        assert resp.status_code == 201, resp.text
        return str(resp.headers["Docker-Content-Digest"])

    def copy_tag(self, repo: str, src: str, dest: str) -> str:
        resp = self.call(
            "GET", f"/v2/{repo}/manifests/{src}", headers={"Accept": tb.MANIFEST_ACCEPT}
        )
        assert resp.status_code == 200
        media_type = resp.headers["Content-Type"].split(";")[0]
        return self.put_manifest(repo, dest, resp.content, media_type)


# --- helpers ------------------------------------------------------------------------------


def is_attestation_entry(entry: Mapping[str, Any]) -> bool:
    """An index entry BuildKit added for provenance (read independently of imgtag's code)."""
    annotations = entry.get("annotations") or {}
    return annotations.get("vnd.docker.reference.type") == "attestation-manifest"


def fresh_repo(prefix: str = "bp") -> str:
    return f"imgtag-it/{prefix}-{secrets.token_hex(4)}"


def build_push(app: GitRepoBuilder, image: str, *args: str, env: Mapping[str, str]) -> CliResult:
    """``imgtag build-push IMAGE --format json ARGS`` run in the checkout (context ``.``)."""
    return run_cli(["build-push", image, "--format", "json", *args], cwd=app.path, env=env)


def no_secret(result: CliResult, *secrets_: str) -> None:
    for secret in secrets_:
        assert secret not in result.stdout, "a secret reached stdout"
        assert secret not in result.stderr, "a secret reached stderr"


def ok_doc(result: CliResult) -> dict[str, Any]:
    """Success: exit 0, exactly one JSON document on stdout with the contract's keys."""
    assert result.code == 0, result
    assert "Traceback" not in result.stderr
    assert "imgtag: error" not in result.stderr
    assert result.stdout.endswith("\n") and result.stdout.count("\n") == 1, result.stdout
    doc: dict[str, Any] = json.loads(result.stdout)
    assert list(doc) == JSON_KEYS
    return doc


def error_sentence(result: CliResult, code: int) -> str:
    """Failure with ``code``: nothing on stdout, one ``imgtag: error:`` line, last on stderr."""
    assert result.code == code, result
    assert result.stdout == "", result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.rstrip("\n").split("\n")
    errors = [line for line in lines if line.startswith("imgtag: error: ")]
    assert errors == [lines[-1]], result.stderr
    sentence = lines[-1].removeprefix("imgtag: error: ")
    assert sentence and "\n" not in sentence
    return sentence


def clean_env() -> dict[str, str]:
    """This process's environment without any CI system's or imgtag's variables."""
    from tagger.version.ci_env import CI_SYSTEMS

    drop = {"CI"}
    for system in CI_SYSTEMS:
        drop.update(var for var, _ in system.detect)
        drop.add(system.counter_var)
    return {
        k: v
        for k, v in os.environ.items()
        if k not in drop and not k.startswith(("IMGTAG_", "GITHUB_"))
    }


def write_docker_config(directory: Path, config: Mapping[str, Any]) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config))
    return str(directory)


def basic_auths(host: str, user: str, password: str) -> dict[str, Any]:
    return {"auths": {host: {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}}}


def unused_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bed_env(bed_engine: tb.BedEngine) -> dict[str, str]:
    """The bed's DOCKER_HOST and DOCKER_CONFIG (``auths`` for basic and token), and the
    classic ``docker`` builder: this file pins down that path (its "Step 1/" log included);
    ``test_builders.py`` runs the guard through every builder. Each test runs on both
    engines: 20.10 (classic image store) and 26 (containerd image store)."""
    return {**bed_engine.env, "IMGTAG_BUILDER": "docker"}


@pytest.fixture
def app(tmp_path: Path) -> GitRepoBuilder:
    """A checkout at ``v1.0.0`` whose origin URL carries a token."""
    return make_app(tmp_path / "app", "hello", origin=ORIGIN_WITH_TOKEN)


# --- 1. a new tag pushes, on every registry set-up ----------------------------------------


def _helper_setup(tmp_path: Path, bed: tb.Testbed) -> tuple[dict[str, str], Path]:
    """A credential helper ``docker-credential-imgtagtest`` on PATH that answers ``get``
    with the basic registry's user and password, and a docker config naming it."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "helper.log"
    answer = json.dumps(
        {"ServerURL": bed.basic.host, "Username": bed.basic.username, "Secret": bed.basic.password}
    )
    helper = bindir / "docker-credential-imgtagtest"
    helper.write_text(
        "#!/bin/sh\n"
        'if [ "$1" != get ]; then echo "unsupported: $1" >&2; exit 1; fi\n'
        "read -r server\n"
        f'echo "get $server" >> {log}\n'
        f"echo '{answer}'\n"
    )
    helper.chmod(0o755)
    config = write_docker_config(
        tmp_path / "docker-helper", {"credHelpers": {bed.basic.host: "imgtagtest"}}
    )
    env = {"DOCKER_CONFIG": config, "PATH": f"{bindir}:{os.environ.get('PATH', '')}"}
    return env, log


SETUPS = ["plain", "basic", "helper", "tls-ca-file", "tls-env", "token"]


@pytest.mark.parametrize("setup", SETUPS)
def test_new_tag_is_pushed_with_oci_labels(
    setup: str, testbed: tb.Testbed, bed_env: dict[str, str], app: GitRepoBuilder, tmp_path: Path
) -> None:
    env = dict(bed_env)
    args: list[str] = []
    helper_log: Path | None = None
    if setup in ("plain", "basic", "token"):
        reg = testbed.registries[setup]
    elif setup == "helper":
        reg = testbed.basic
        extra, helper_log = _helper_setup(tmp_path, testbed)
        env.update(extra)
    else:
        reg = testbed.tls
        if setup == "tls-ca-file":
            args = ["--ca-file", str(testbed.ca_file)]
        else:
            env["IMGTAG_CA_FILE"] = str(testbed.ca_file)
    repo = fresh_repo(setup)
    image = reg.image(repo)
    before = datetime.now(UTC).replace(microsecond=0)

    result = build_push(app, image, "--build", "1", *args, env=env)

    doc = ok_doc(result)
    view = RegistryView.of(reg)
    assert doc["image"] == image
    assert doc["tag"] == "1.0.0-1"
    assert doc["pushed"] is True
    assert doc["aliases"] == []
    assert doc["digest"].startswith("sha256:")
    assert view.digest(repo, "1.0.0-1") == doc["digest"]
    assert view.tags(repo) == ["1.0.0-1"], "no claim tag may be left behind"
    labels = view.labels(repo, "1.0.0-1")
    assert labels[LABEL_VERSION] == "1.0.0-1"
    assert labels[LABEL_REVISION] == app.head()
    assert labels[LABEL_TITLE] == repo.rsplit("/", 1)[-1]
    assert labels[LABEL_SOURCE] == PUBLIC_SOURCE
    created = datetime.strptime(labels[LABEL_CREATED], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert before <= created <= datetime.now(UTC) + timedelta(seconds=1)
    assert view.file(repo, "1.0.0-1", "content.txt") == "hello"
    assert all(TOKEN_SECRET not in value for value in labels.values())
    no_secret(result, TOKEN_SECRET, testbed.basic.password or "?", testbed.token.password or "?")
    assert "Step 1/" in result.stderr, "the build log goes to stderr"
    if helper_log is not None:
        assert helper_log.read_text().splitlines()[0] == f"get {testbed.basic.host}"


# --- 2. an existing tag is never overwritten ----------------------------------------------


def test_existing_tag_is_refused_and_skip_needs_the_same_commit(
    registry_plain: tb.Registry, bed_env: dict[str, str], app: GitRepoBuilder
) -> None:
    repo = fresh_repo("exists")
    image = registry_plain.image(repo)
    view = RegistryView.of(registry_plain)
    first = ok_doc(build_push(app, image, "--build", "1", env=bed_env))
    digest = first["digest"]

    again = build_push(app, image, "--build", "1", env=bed_env)
    sentence = error_sentence(again, 3)
    assert digest in sentence
    assert "1.0.0-1" in sentence
    assert "Step 1/" not in again.stderr, "nothing is built for a tag that exists"
    assert view.digest(repo, "1.0.0-1") == digest

    dry = build_push(app, image, "--build", "1", "--dry-run", env=bed_env)
    assert digest in error_sentence(dry, 3), "a dry run says the tag exists too"

    skipped = build_push(app, image, "--build", "1", "--on-exists", "skip", env=bed_env)
    doc = ok_doc(skipped)
    assert doc["pushed"] is False
    assert doc["digest"] == digest
    assert doc["tag"] == "1.0.0-1"
    assert "Step 1/" not in skipped.stderr, "skip must not build"
    assert view.digest(repo, "1.0.0-1") == digest

    # Another commit that derives the same tag (`--bump none` keeps 1.0.0, `--build 1`).
    change(app, "other content")
    other = build_push(
        app, image, "--build", "1", "--bump", "none", "--on-exists", "skip", env=bed_env
    )
    sentence = error_sentence(other, 3)
    assert digest in sentence
    assert "Step 1/" not in other.stderr
    assert view.digest(repo, "1.0.0-1") == digest
    assert view.tags(repo) == ["1.0.0-1"]


# --- 3. the false-404 trap: an OCI image under the tag ------------------------------------


def _push_oci_image(view: RegistryView, repo: str, tag: str) -> str:
    """An OCI image manifest (config + one layer) PUT under ``tag`` with requests."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        data = b"oci image\n"
        info = tarfile.TarInfo("content.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    layer = buf.getvalue()
    diff_id = "sha256:" + hashlib.sha256(gzip.decompress(layer)).hexdigest()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": {LABEL_REVISION: "0" * 40}},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }
    ).encode()
    config_digest = view.upload_blob(repo, config)
    layer_digest = view.upload_blob(repo, layer)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": layer_digest,
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    return view.put_manifest(repo, tag, manifest, OCI_MANIFEST)


def test_an_oci_image_under_the_tag_is_seen_and_never_overwritten(
    registry_plain: tb.Registry, bed_env: dict[str, str], app: GitRepoBuilder
) -> None:
    repo = fresh_repo("oci")
    view = RegistryView.of(registry_plain)
    oci_digest = _push_oci_image(view, repo, "1.0.0-1")
    # The trap is real on this registry: without the OCI types in Accept it answers 404.
    assert view.digest(repo, "1.0.0-1", accept=DOCKER_MANIFEST_ONLY) is None
    assert view.digest(repo, "1.0.0-1") == oci_digest

    result = build_push(app, registry_plain.image(repo), "--build", "1", env=bed_env)

    sentence = error_sentence(result, 3)
    assert oci_digest in sentence
    assert view.digest(repo, "1.0.0-1") == oci_digest
    assert view.tags(repo) == ["1.0.0-1"]

    # --on-exists skip reads the OCI image's revision label (not HEAD's): still refused.
    skip = build_push(
        app, registry_plain.image(repo), "--build", "1", "--on-exists", "skip", env=bed_env
    )
    assert oci_digest in error_sentence(skip, 3)
    assert view.digest(repo, "1.0.0-1") == oci_digest


# --- 4. credentials -----------------------------------------------------------------------

WRONG_PASSWORD = "wr0ng-Pa55-" + "q7Zt" * 3


@pytest.mark.parametrize("which", ["basic", "token"])
def test_wrong_credentials_exit_5_without_showing_them(
    which: str, testbed: tb.Testbed, bed_env: dict[str, str], app: GitRepoBuilder, tmp_path: Path
) -> None:
    reg = testbed.registries[which]
    assert reg.username is not None
    config = write_docker_config(
        tmp_path / "docker-wrong", basic_auths(reg.host, reg.username, WRONG_PASSWORD)
    )
    repo = fresh_repo(f"wrong-{which}")

    result = build_push(
        app, reg.image(repo), "--build", "1", env={**bed_env, "DOCKER_CONFIG": config}
    )

    sentence = error_sentence(result, 5)
    assert reg.host in sentence
    no_secret(result, WRONG_PASSWORD, base64.b64encode(WRONG_PASSWORD.encode()).decode())
    assert "Step 1/" not in result.stderr
    assert RegistryView.of(reg).tags(repo) == []


def test_no_credentials_exit_5_and_say_docker_login(
    registry_basic: tb.Registry, bed_env: dict[str, str], app: GitRepoBuilder, tmp_path: Path
) -> None:
    config = write_docker_config(tmp_path / "docker-empty", {})
    repo = fresh_repo("nocreds")
    result = build_push(
        app,
        registry_basic.image(repo),
        "--build",
        "1",
        env={**bed_env, "DOCKER_CONFIG": config},
    )
    sentence = error_sentence(result, 5)
    assert f"docker login {registry_basic.host}" in sentence
    assert RegistryView.of(registry_basic).tags(repo) == []


# --- 5. a dirty work tree -----------------------------------------------------------------


def test_dirty_tree_is_refused_unless_allow_dirty(
    registry_plain: tb.Registry, bed_env: dict[str, str], app: GitRepoBuilder
) -> None:
    repo = fresh_repo("dirty")
    image = registry_plain.image(repo)
    view = RegistryView.of(registry_plain)
    app.write("content.txt", "uncommitted")

    refused = build_push(app, image, "--build", "1", env=bed_env)

    assert "--allow-dirty" in error_sentence(refused, 3)
    assert "Step 1/" not in refused.stderr
    assert view.tags(repo) == []

    allowed = ok_doc(build_push(app, image, "--build", "1", "--allow-dirty", env=bed_env))
    assert allowed["pushed"] is True
    assert view.digest(repo, allowed["tag"]) == allowed["digest"]
    assert view.file(repo, allowed["tag"], "content.txt") == "uncommitted"


# --- 6. dry run ---------------------------------------------------------------------------


def test_dry_run_pushes_nothing(
    registry_plain: tb.Registry, bed_env: dict[str, str], app: GitRepoBuilder
) -> None:
    repo = fresh_repo("dry")
    doc = ok_doc(
        build_push(app, registry_plain.image(repo), "--build", "1", "--dry-run", env=bed_env)
    )
    assert doc["pushed"] is False
    assert doc["tag"] == "1.0.0-1"
    assert doc["digest"] is None
    view = RegistryView.of(registry_plain)
    assert view.digest(repo, "1.0.0-1") is None
    assert view.tags(repo) == []


# --- 7. aliases ---------------------------------------------------------------------------

ALIASES = ["latest", "1", "1.0", "edge"]


def _alias_args(*aliases: str) -> list[str]:
    return [arg for alias in aliases for arg in ("--alias", alias)]


@pytest.fixture
def released(
    tmp_path: Path, registry_plain: tb.Registry, bed_env: dict[str, str]
) -> tuple[GitRepoBuilder, str, str]:
    """v0.9.0 then v1.0.0 on main; 1.0.0-1 pushed with ``--alias latest/1/1.0/edge``.
    Returns the checkout, the repository and the 1.0.0-1 digest."""
    app = make_app(tmp_path / "app", "0.9.0", tag="v0.9.0")
    change(app, "1.0.0", "feat: one").tag("v1.0.0")
    repo = fresh_repo("alias")
    image = registry_plain.image(repo)
    doc = ok_doc(build_push(app, image, "--build", "1", *_alias_args(*ALIASES), env=bed_env))
    assert doc["tag"] == "1.0.0-1"
    assert doc["aliases"] == ALIASES
    view = RegistryView.of(registry_plain)
    for alias in ALIASES:
        assert view.digest(repo, alias) == doc["digest"], alias
    return app, repo, str(doc["digest"])


def test_first_release_moves_every_alias(released: tuple[GitRepoBuilder, str, str]) -> None:
    # The assertions are in the fixture; this names them as a test of their own.
    _app, _repo, digest = released
    assert digest.startswith("sha256:")


def test_backport_moves_only_the_ordinary_alias(
    released: tuple[GitRepoBuilder, str, str],
    registry_plain: tb.Registry,
    bed_env: dict[str, str],
) -> None:
    app, repo, release_digest = released
    app.git("switch", "-q", "-c", "release-0.9", "v0.9.0")
    change(app, "0.9.1", "fix: backport").tag("v0.9.1")
    view = RegistryView.of(registry_plain)

    doc = ok_doc(
        build_push(
            app, registry_plain.image(repo), "--build", "1", *_alias_args(*ALIASES), env=bed_env
        )
    )

    assert doc["tag"] == "0.9.1-1"
    assert view.digest(repo, "edge") == doc["digest"]
    for alias in ("latest", "1", "1.0"):
        assert view.digest(repo, alias) == release_digest, f"{alias} moved to a backport"
    assert doc["aliases"] == ["edge"]


def test_prerelease_moves_no_release_alias(
    released: tuple[GitRepoBuilder, str, str],
    registry_plain: tb.Registry,
    bed_env: dict[str, str],
) -> None:
    app, repo, release_digest = released
    change(app, "2.0.0-rc.1", "feat!: two").tag("v2.0.0-rc.1")
    view = RegistryView.of(registry_plain)

    doc = ok_doc(
        build_push(
            app,
            registry_plain.image(repo),
            "--build",
            "1",
            *_alias_args("latest", "2", "2.0", "edge"),
            env=bed_env,
        )
    )

    assert doc["tag"] == "2.0.0-rc.1-1"
    assert doc["aliases"] == ["edge"]
    assert view.digest(repo, "latest") == release_digest
    assert view.digest(repo, "2") is None
    assert view.digest(repo, "2.0") is None
    assert view.digest(repo, "edge") == doc["digest"]


# --- 8. outputs ---------------------------------------------------------------------------


def test_github_output_and_env_file(
    registry_plain: tb.Registry, bed_env: dict[str, str], app: GitRepoBuilder, tmp_path: Path
) -> None:
    gh_output = tmp_path / "github_output"
    gh_output.write_text("earlier=step\n")
    env_file = tmp_path / "out.env"
    image = registry_plain.image(fresh_repo("out"))

    result = build_push(
        app,
        image,
        "--build",
        "3",
        "--env-file",
        str(env_file),
        env={**bed_env, "GITHUB_OUTPUT": str(gh_output)},
    )

    doc = ok_doc(result)
    assert gh_output.read_text() == (
        f"earlier=step\nimage={image}\ntag=1.0.0-3\ndigest={doc['digest']}\n"
    )
    values = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if line.strip())
    assert values["IMGTAG_IMAGE"] == image
    assert values["IMGTAG_TAG"] == "1.0.0-3"
    assert values["IMGTAG_DIGEST"] == doc["digest"]


# --- 9. --counter registry ----------------------------------------------------------------


def test_counter_registry_counts_in_the_registry(
    registry_basic: tb.Registry, bed_env: dict[str, str], app: GitRepoBuilder
) -> None:
    repo = fresh_repo("counter")
    image = registry_basic.image(repo)
    view = RegistryView.of(registry_basic)
    first = ok_doc(build_push(app, image, "--build", "1", env=bed_env))
    view.copy_tag(repo, "1.0.0-1", "1.0.0-5")
    # Neighbours that must not count: another version, a pre-release, an alias.
    for other in ("1.0.1-9", "1.0.0-rc.1-50", "latest"):
        view.copy_tag(repo, "1.0.0-1", other)

    nxt = run_cli(
        ["next", "--repo", str(app.path), "--counter", "registry", "--image", image],
        env=bed_env,
    )
    assert (nxt.code, nxt.stdout) == (0, "1.0.0-6\n"), nxt

    doc = ok_doc(build_push(app, image, "--counter", "registry", env=bed_env))
    assert doc["tag"] == "1.0.0-6"
    assert view.digest(repo, "1.0.0-6") == doc["digest"] != first["digest"]


# --- 10. unreachable engine, unreachable registry -----------------------------------------


def test_engine_unreachable_is_exit_6(
    registry_plain: tb.Registry, bed_env: dict[str, str], app: GitRepoBuilder
) -> None:
    repo = fresh_repo("noengine")
    result = build_push(
        app,
        registry_plain.image(repo),
        "--build",
        "1",
        env={**bed_env, "DOCKER_HOST": "unix:///nonexistent.sock"},
    )
    sentence = error_sentence(result, 6)
    assert "engine" in sentence.lower()
    assert RegistryView.of(registry_plain).tags(repo) == []


def test_registry_unreachable_is_exit_5(
    bed_env: dict[str, str], app: GitRepoBuilder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tagger.registry import transport

    # The same five attempts, with waits of milliseconds instead of ~8 s in all.
    real = transport.RetryPolicy
    monkeypatch.setattr(transport, "RetryPolicy", lambda: real(backoff=0.01, max_backoff=0.02))
    host = f"127.0.0.1:{unused_port()}"
    result = build_push(app, f"{host}/imgtag-it/app", "--build", "1", env=bed_env)
    sentence = error_sentence(result, 5)
    assert host in sentence
    assert "Step 1/" not in result.stderr


# --- 11. a build that fails ---------------------------------------------------------------

FAILING = {
    "run-false": 'FROM scratch\nCOPY busybox /busybox\nRUN ["/busybox", "false"]\n',
    "copy-missing": "FROM scratch\nCOPY busybox /busybox\nCOPY missing.txt /missing.txt\n",
}


@pytest.mark.parametrize("case", sorted(FAILING))
def test_build_failure_is_exit_6_and_leaves_nothing(
    case: str, registry_plain: tb.Registry, bed_env: dict[str, str], tmp_path: Path
) -> None:
    app = make_app(tmp_path / "app", "x", dockerfile=FAILING[case])
    repo = fresh_repo(case)
    result = build_push(app, registry_plain.image(repo), "--build", "1", env=bed_env)
    sentence = error_sentence(result, 6)
    assert "build failed" in sentence
    if case == "run-false":
        assert "non-zero code: 1" in sentence
    else:
        assert "missing.txt" in sentence
    assert RegistryView.of(registry_plain).tags(repo) == [], "no tag, no claim tag"


# --- claims: another run's fresh claim blocks, a dead run's stale claim does not -----------


def _plant_claim(view: RegistryView, repo: str, tag: str, created: datetime) -> str:
    """The claim another imgtag run would have put for ``tag`` at ``created``."""
    from tagger.registry.markers import claim_manifest, claim_tag

    view.upload_blob(repo, b"{}")
    raw = claim_manifest(tag, secrets.token_hex(16), created)
    return view.put_manifest(repo, claim_tag(tag), raw, OCI_MANIFEST)


def test_fresh_claim_blocks_and_stale_claim_does_not(
    registry_plain: tb.Registry, bed_env: dict[str, str], app: GitRepoBuilder
) -> None:
    from tagger.registry.markers import claim_tag

    repo = fresh_repo("claim")
    image = registry_plain.image(repo)
    view = RegistryView.of(registry_plain)
    ctag = claim_tag("1.0.0-1")
    assert ctag.startswith(CLAIM_PREFIX)
    fresh = _plant_claim(view, repo, "1.0.0-1", datetime.now(UTC))

    blocked = build_push(app, image, "--build", "1", env=bed_env)

    assert "another imgtag run" in error_sentence(blocked, 3)
    assert "Step 1/" not in blocked.stderr
    assert view.digest(repo, "1.0.0-1") is None
    assert view.digest(repo, ctag) == fresh, "another run's claim is not ours to remove"

    # The same claim made 20 minutes ago: its run died long since; it must not block.
    _plant_claim(view, repo, "1.0.0-1", datetime.now(UTC) - timedelta(minutes=20))
    doc = ok_doc(build_push(app, image, "--build", "1", env=bed_env))
    assert view.digest(repo, "1.0.0-1") == doc["digest"]
    assert view.tags(repo) == ["1.0.0-1"]


def test_token_registry_without_delete_permission_pushes_without_a_claim(
    testbed: tb.Testbed, bed_env: dict[str, str], app: GitRepoBuilder
) -> None:
    issuer = testbed.token_issuer
    previous = issuer.stats()["config"]["grant"]
    repo = fresh_repo("nodelete-perm")
    issuer.configure(grant=["pull", "push"])  # nobody may delete: claims could not be removed
    try:
        result = build_push(app, testbed.token.image(repo), "--build", "1", env=bed_env)
    finally:
        issuer.configure(grant=previous)
    doc = ok_doc(result)
    view = RegistryView.of(testbed.token)
    assert view.digest(repo, "1.0.0-1") == doc["digest"]
    assert view.tags(repo) == ["1.0.0-1"], "no claim may be left that cannot be removed"


# --- the engine is shared: the image pushed must be the one this run built ----------------


def test_push_sends_the_image_this_run_built(
    registry_plain: tb.Registry,
    bed_env: dict[str, str],
    app: GitRepoBuilder,
    bed_engine: tb.BedEngine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import docker

    from tagger import engine as engine_module

    repo = fresh_repo("shared-engine")
    view = RegistryView.of(registry_plain)
    real_build = engine_module.Engine.build
    # A client of our own, not the session's `docker_client`: the SDK caches the docker
    # config it finds in the environment on its first build, and during run_cli that is
    # the bed's, with credentials that would then leak into other tests' pushes.
    rival = docker.DockerClient(base_url=bed_engine.host, timeout=120)

    def build_then_rival(self: Any, **kwargs: Any) -> Any:
        built = real_build(self, **kwargs)
        # Another job on the same engine (a concurrent run of the same tag from another
        # checkout) finishes its build of the same name a moment later.
        tb.build_scratch_image(rival, kwargs["tag"], "rival checkout")
        return built

    monkeypatch.setattr(engine_module.Engine, "build", build_then_rival)
    try:
        result = build_push(app, registry_plain.image(repo), "--build", "1", env=bed_env)
    finally:
        rival.close()

    # Correct: push what this run built; acceptable: refuse. Never: publish the rival's
    # image under this run's name and labels, and report success.
    if result.code == 0:
        doc = ok_doc(result)
        assert view.digest(repo, "1.0.0-1") == doc["digest"]
    else:
        assert result.code in (3, 6), result
        error_sentence(result, result.code)
    if view.digest(repo, "1.0.0-1") is not None:
        assert view.file(repo, "1.0.0-1", "content.txt") == "hello"
        assert view.labels(repo, "1.0.0-1")[LABEL_REVISION] == app.head()


# --- 12. concurrency: six processes, one tag ----------------------------------------------


@dataclass
class Run:
    app: GitRepoBuilder
    content: str
    code: int
    stdout: str
    stderr: str


def race(
    tmp_path: Path,
    image: str,
    env: Mapping[str, str],
    count: int = 6,
    extra: Sequence[str] = (),
) -> list[Run]:
    """``count`` imgtag processes of the same tag from ``count`` checkouts, started at once."""
    apps = []
    for i in range(count):
        content = f"contender {i} {secrets.token_hex(4)}"
        apps.append((make_app(tmp_path / f"c{i}", content), content))
    proc_env = {**clean_env(), **env}
    argv = [str(IMGTAG), "build-push", image, "--build", "7", "--format", "json", *extra]
    logs = [(tmp_path / f"c{i}.out", tmp_path / f"c{i}.err") for i in range(count)]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for (a, _), (out, err) in zip(apps, logs, strict=True):
            with out.open("wb") as stdout, err.open("wb") as stderr:
                procs.append(
                    subprocess.Popen(argv, cwd=a.path, env=proc_env, stdout=stdout, stderr=stderr)
                )
        deadline = time.monotonic() + 180
        for proc in procs:
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        for proc in procs:  # only on a timeout: never leave a contender running
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return [
        Run(a, content, proc.returncode, out.read_text(), err.read_text())
        for (a, content), proc, (out, err) in zip(apps, procs, logs, strict=True)
    ]


def assert_one_winner(runs: list[Run], view: RegistryView, repo: str, tag: str) -> Run:
    codes = sorted(r.code for r in runs)
    detail = "\n".join(f"--- exit {r.code}\n{r.stdout}{r.stderr[-600:]}" for r in runs)
    assert codes == [0] + [3] * (len(runs) - 1), detail
    (winner,) = (r for r in runs if r.code == 0)
    doc = json.loads(winner.stdout)
    assert list(doc) == JSON_KEYS
    assert doc["tag"] == tag and doc["pushed"] is True
    final = view.digest(repo, tag)
    assert final == doc["digest"], detail
    for loser in (r for r in runs if r.code != 0):
        assert loser.stdout == "", "a refused run printed a result"
        assert "Traceback" not in loser.stderr
        last = loser.stderr.rstrip("\n").split("\n")[-1]
        assert last.startswith("imgtag: error: "), loser.stderr
    assert [t for t in view.tags(repo) if t.startswith(CLAIM_PREFIX)] == []
    assert view.tags(repo) == [tag]
    # The image under the tag is the one the winner built from its own checkout, although
    # all six build the same name on one engine (the push checks the image it sent).
    assert view.file(repo, tag, "content.txt") == winner.content, detail
    return winner


@pytest.mark.parametrize("round_", [1, 2, 3])
def test_six_concurrent_publishes_have_exactly_one_winner(
    round_: int, registry_plain: tb.Registry, bed_env: dict[str, str], tmp_path: Path
) -> None:
    repo = fresh_repo(f"race{round_}")
    runs = race(tmp_path, registry_plain.image(repo), bed_env)
    assert_one_winner(runs, RegistryView.of(registry_plain), repo, "1.0.0-7")


# --- 13. a registry that cannot delete: the claim fallback --------------------------------


@pytest.fixture(scope="module")
def registry_nodelete(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryView]:
    """Distribution with ``storage.delete.enabled: false`` (Docker Hub-like: no DELETE),
    started and stopped here (the bed has none)."""
    root = tmp_path_factory.mktemp("reg-nodelete")
    (root / "storage").mkdir()
    log_file = root / "registry.log"
    for _attempt in range(3):
        port = unused_port()
        config = {
            "version": 0.1,
            "log": {"level": "warn", "formatter": "text"},
            "storage": {
                "filesystem": {"rootdirectory": str(root / "storage")},
                "delete": {"enabled": False},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {"addr": f"127.0.0.1:{port}", "secret": secrets.token_hex(16)},
        }
        (root / "config.yml").write_text(json.dumps(config))  # JSON is YAML
        with log_file.open("wb") as log:
            proc = subprocess.Popen(
                ["/usr/bin/docker-registry", "serve", str(root / "config.yml")],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        view = RegistryView(f"http://127.0.0.1:{port}")
        deadline = time.monotonic() + 20
        up = False
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                if view.call("GET", "/v2/").status_code == 200:
                    up = True
                    break
            except requests.ConnectionError:
                pass
            time.sleep(0.05)
        if up:
            break
        proc.kill()
        proc.wait()
    else:
        pytest.fail(f"docker-registry without delete did not start: {log_file.read_text()}")
    try:
        yield view
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _host(view: RegistryView) -> str:
    return view.url.removeprefix("http://")


def test_no_delete_registry_push_works_without_a_claim(
    registry_nodelete: RegistryView, bed_env: dict[str, str], app: GitRepoBuilder
) -> None:
    view = registry_nodelete
    repo = fresh_repo("nodelete")
    # The registry really refuses deletes.
    probe = view.call("DELETE", f"/v2/{repo}/manifests/sha256:{'0' * 64}")
    assert probe.status_code == 405, probe.status_code

    result = build_push(app, f"{_host(view)}/{repo}", "--build", "1", env=bed_env)

    doc = ok_doc(result)
    assert view.digest(repo, "1.0.0-1") == doc["digest"]
    assert view.tags(repo) == ["1.0.0-1"], "the fallback makes no claim"


def test_no_delete_registry_concurrent_publishes_have_exactly_one_winner(
    registry_nodelete: RegistryView, bed_env: dict[str, str], tmp_path: Path
) -> None:
    repo = fresh_repo("nodelete-race")
    runs = race(tmp_path, f"{_host(registry_nodelete)}/{repo}", bed_env)
    assert_one_winner(runs, registry_nodelete, repo, "1.0.0-7")


# --- 3. lint before building; 4. --squash after building ---------------------------------

LINT_ERROR_DOCKERFILE = """\
FROM busybox:latest
COPY content.txt /content.txt
CMD ["/bin/cat", "/content.txt"]
"""


def test_lint_errors_stop_build_push_before_anything_reaches_the_registry(
    registry_plain: tb.Registry, bed_env: dict[str, str], tmp_path: Path
) -> None:
    app = make_app(tmp_path / "app", dockerfile=LINT_ERROR_DOCKERFILE)
    repo = fresh_repo("lint")
    result = build_push(app, registry_plain.image(repo), "--build", "1", env=bed_env)
    sentence = error_sentence(result, 1)
    assert "IMG001" in sentence and "--no-lint" in sentence
    assert "Step 1/" not in result.stderr, "nothing is built after a lint error"
    assert "Dockerfile:1: error IMG001" in result.stderr
    # Not even a claim tag: lint runs before anything is written.
    assert RegistryView.of(registry_plain).tags(repo) == []


def test_no_lint_and_a_configured_ignore_let_the_same_dockerfile_through(
    registry_plain: tb.Registry, bed_env: dict[str, str], tmp_path: Path
) -> None:
    app = make_app(tmp_path / "app", dockerfile=LINT_ERROR_DOCKERFILE)
    image = registry_plain.image(fresh_repo("nolint"))
    skipped = ok_doc(build_push(app, image, "--build", "1", "--no-lint", "--dry-run", env=bed_env))
    assert skipped["lint"] == "skipped" and skipped["lint_findings"] == {}

    configured = make_app(
        tmp_path / "configured",
        dockerfile=LINT_ERROR_DOCKERFILE,
        files={".imgtag.toml": '[lint]\nignore = ["IMG001"]\n'},
    )
    doc = ok_doc(build_push(configured, image, "--build", "1", "--dry-run", env=bed_env))
    assert doc["lint"] == "passed"
    assert doc["lint_findings"]["error"] == 0


def test_lint_warnings_are_reported_and_do_not_stop_the_push(
    registry_plain: tb.Registry, bed_env: dict[str, str], app: GitRepoBuilder
) -> None:
    result = build_push(app, registry_plain.image(fresh_repo("warn")), "--build", "1", env=bed_env)
    doc = ok_doc(result)
    assert doc["pushed"] is True and doc["lint"] == "passed"
    # The app runs as root (no USER): IMG012 is a warning, shown and counted.
    assert doc["lint_findings"]["warning"] >= 1
    assert "IMG012" in result.stderr


SQUASH_DOCKERFILE = """\
FROM {base}
COPY busybox /busybox
RUN ["/busybox", "sh", "-c", "/busybox dd if=/dev/zero of=/big bs=1k count=512 && echo 1 > /a.txt"]
RUN ["/busybox", "rm", "/big"]
COPY content.txt /content.txt
USER 1001
CMD ["/busybox", "cat", "/content.txt"]
"""


def _layer_names(view: RegistryView, repo: str, digest: str) -> set[str]:
    with tarfile.open(fileobj=io.BytesIO(view.blob(repo, digest)), mode="r:*") as tar:
        return set(tar.getnames())


def test_squash_from_scratch_pushes_one_layer_with_the_final_tree(
    registry_plain: tb.Registry, bed_env: dict[str, str], tmp_path: Path
) -> None:
    dockerfile = SQUASH_DOCKERFILE.format(base="scratch")
    app = make_app(tmp_path / "app", "squashed", dockerfile=dockerfile)
    repo = fresh_repo("squash")
    view = RegistryView.of(registry_plain)
    image = registry_plain.image(repo)
    doc = ok_doc(build_push(app, image, "--build", "1", "--squash", env=bed_env))
    assert doc["squash"]["squashed_layers"] == 4 and doc["squash"]["base_layers"] == 0
    manifest = view.manifest(repo, "1.0.0-1")
    assert manifest["config"]["digest"] and len(manifest["layers"]) == 1
    names = _layer_names(view, repo, manifest["layers"][0]["digest"])
    assert {"busybox", "a.txt", "content.txt"} <= {n.lstrip("./") for n in names}
    assert not any(n.endswith("big") for n in names), "a deleted file came back"
    config = view.config(repo, "1.0.0-1")
    assert config["config"]["User"] == "1001"
    assert config["config"]["Labels"][LABEL_VERSION] == "1.0.0-1"
    assert view.file(repo, "1.0.0-1", "content.txt") == "squashed"


def test_squash_keeps_the_from_image_layers_shared(
    registry_plain: tb.Registry,
    bed_env: dict[str, str],
    bed_engine: tb.BedEngine,
    tmp_path: Path,
) -> None:
    import docker

    base = f"imgtag-it/sqbase-{secrets.token_hex(3)}:1"
    client = docker.DockerClient(base_url=bed_engine.host, timeout=120)
    try:  # the base exists only in the engine under test
        base_image = tb.build_scratch_image(client, base, "the base")
    finally:
        client.close()
    base_layers = base_image.attrs["RootFS"]["Layers"]
    app = make_app(tmp_path / "app", "over a base", dockerfile=SQUASH_DOCKERFILE.format(base=base))
    repo = fresh_repo("squashbase")
    view = RegistryView.of(registry_plain)
    image = registry_plain.image(repo)
    doc = ok_doc(build_push(app, image, "--build", "1", "--squash", env=bed_env))
    assert doc["squash"]["base_layers"] == len(base_layers)
    # The containerd image store's classic builder records one layer fewer for this
    # Dockerfile (seen here: 3 on Engine 26); the base and the one layer above are what count.
    assert doc["squash"]["squashed_layers"] == (3 if bed_engine.containerd_store else 4)
    diff_ids = view.config(repo, "1.0.0-1")["rootfs"]["diff_ids"]
    assert diff_ids[: len(base_layers)] == base_layers, "base layers changed"
    assert len(diff_ids) == len(base_layers) + 1
