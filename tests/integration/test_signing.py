"""``imgtag build-push --sign`` against the real bed, with the real cosign (Debian 13's 2.5.0).

docs/signing.md. Keys are made by ``cosign generate-key-pair``; every signed push is
checked with ``cosign verify --key`` (the final tag, and each platform manifest of an
index); the registry is read independently (``RegistryView`` of ``test_build_push.py``).

"The final tag never stands unsigned" is watched, not assumed: a thread polls the
registry for the whole run, and each time it sees the final tag it asks, *afterwards*,
whether the signature of the digest it saw is there. A signature is never removed, so a
signature missing after the tag was seen means the tag stood unsigned. The same watcher
catches exactly that in the old way (build-push, then ``cosign sign``), so it can fail.

Keyless signing needs a CI's OIDC token and Sigstore's public services: it cannot run
here; ``tests/unit/test_cosign_signer.py`` checks the command line imgtag gives cosign for it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1]))

import test_build_push as bp
from test_builders import BUILDER_ENGINES, COPY_ONLY, MODERN_ENGINES

import testbed as tb
from appfixture import make_app
from clirun import run_cli
from faultproxy import FaultProxy

#: Every builder on every engine it runs on here, buildx on the 26 engine included.
SIGN_ENGINES = [*BUILDER_ENGINES, ("buildkit", "engine26")]
SIGN_ENGINES = list(dict.fromkeys(SIGN_ENGINES))
one_engine = pytest.mark.parametrize("bed_engine", ["engine20"], indirect=True)
PASSWORD = "imgtag-" + "k3y" + "-pass-" + "Q7w" * 3
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


@dataclass(frozen=True)
class Keys:
    cosign: Path
    key: Path
    pub: Path

    def run(
        self, *args: str, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.cosign), *args],
            capture_output=True,
            text=True,
            env={**os.environ, "COSIGN_PASSWORD": PASSWORD, **(env or {})},
            stdin=subprocess.DEVNULL,
            timeout=120,
            check=False,
        )

    def verify(self, ref: str) -> subprocess.CompletedProcess[str]:
        return self.run(
            "verify",
            "--key",
            str(self.pub),
            "--insecure-ignore-tlog",
            "--allow-http-registry",
            ref,
        )


@pytest.fixture(scope="module")
def keys(debian13: tb.Debian13Tools, tmp_path_factory: pytest.TempPathFactory) -> Keys:
    where = tmp_path_factory.mktemp("cosign-keys")
    made = subprocess.run(
        [str(debian13.cosign), "generate-key-pair"],
        cwd=where,
        capture_output=True,
        text=True,
        env={**os.environ, "COSIGN_PASSWORD": PASSWORD},
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    return Keys(debian13.cosign, where / "cosign.key", where / "cosign.pub")


@pytest.fixture(scope="module")
def bed_env(bed_engine: tb.BedEngine, keys: Keys) -> dict[str, str]:
    return {
        **bed_engine.env,
        "STORAGE_DRIVER": "vfs",
        "BUILDAH_ISOLATION": "chroot",
        "IMGTAG_COSIGN": str(keys.cosign),
        "COSIGN_PASSWORD": PASSWORD,
    }


def sign_args(keys: Keys) -> tuple[str, ...]:
    return ("--sign", "--sign-key", str(keys.key), "--no-sign-tlog")


def sig_tag(digest: str) -> str:
    return digest.replace(":", "-") + ".sig"


# --- the watcher --------------------------------------------------------------------------


@dataclass
class Watch:
    """What a poller saw of ``repo:tag`` while a run went on."""

    seen_tag: int = 0  # polls that found the final tag
    unsigned: list[str] = field(default_factory=list)  # digests seen under the tag unsigned
    errors: list[str] = field(default_factory=list)
    saw_unsigned: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def stop(self) -> None:
        self.done.set()
        if self.thread is not None:
            self.thread.join(60)


def _poll(watch: Watch, view: bp.RegistryView, repo: str, tag: str) -> None:
    with requests.Session() as session:
        session.trust_env = False

        def head(ref: str) -> str | None:
            resp = session.head(
                f"{view.url}/v2/{repo}/manifests/{ref}",
                headers={"Accept": tb.MANIFEST_ACCEPT},
                auth=view.auth,
                verify=view.verify,
                timeout=30,
            )
            # Distribution may answer 500 while the tag is being written: not seen yet.
            return resp.headers.get("Docker-Content-Digest") if resp.ok else None

        while not watch.done.is_set():
            try:
                digest = head(tag)
                if digest is None:
                    continue
                watch.seen_tag += 1
                # Asked after the tag was seen: absent now means absent then.
                if head(sig_tag(digest)) is None:
                    watch.unsigned.append(digest)
                    watch.saw_unsigned.set()
            except requests.RequestException as exc:
                watch.errors.append(str(exc))


@pytest.fixture
def watcher() -> Iterator[Callable[[bp.RegistryView, str, str], Watch]]:
    """``watcher(view, repo, tag)`` starts polling at once; ``.stop()`` ends it."""
    started: list[Watch] = []

    def start(view: bp.RegistryView, repo: str, tag: str) -> Watch:
        watch = Watch()
        watch.thread = threading.Thread(target=_poll, args=(watch, view, repo, tag), daemon=True)
        watch.thread.start()
        started.append(watch)
        return watch

    yield start
    for watch in started:
        watch.stop()


# --- signed pushes ------------------------------------------------------------------------


def signed_push(
    builder: str,
    registry: tb.Registry,
    env: Mapping[str, str],
    tmp_path: Path,
    keys: Keys,
    *extra: str,
) -> tuple[dict[str, Any], str]:
    dockerfile = COPY_ONLY if "--platform" in extra else None
    kwargs = {"dockerfile": dockerfile} if dockerfile else {}
    app = make_app(tmp_path / "app", f"signed {builder}", **kwargs)
    repo = bp.fresh_repo(f"sg-{builder}")
    result = bp.build_push(
        app,
        registry.image(repo),
        "--builder",
        builder,
        "--build",
        "1",
        *sign_args(keys),
        *extra,
        env=env,
    )
    doc = bp.ok_doc(result)
    bp.no_secret(result, PASSWORD, *keys.key.read_text().splitlines()[1:3])
    return doc, repo


@pytest.mark.parametrize(("builder", "bed_engine"), SIGN_ENGINES, indirect=["bed_engine"])
def test_each_builder_signs_the_digest_before_the_tag_appears(
    builder: str,
    registry_plain: tb.Registry,
    bed_env: dict[str, str],
    tmp_path: Path,
    keys: Keys,
    watcher: Callable[[bp.RegistryView, str, str], Watch],
) -> None:
    view = bp.RegistryView.of(registry_plain)
    app = make_app(tmp_path / "app", f"watched {builder}")
    repo = bp.fresh_repo(f"sw-{builder}")
    watch = watcher(view, repo, "1.0.0-1")
    result = bp.build_push(
        app,
        registry_plain.image(repo),
        "--builder",
        builder,
        "--build",
        "1",
        "--alias",
        "latest",
        *sign_args(keys),
        env=bed_env,
    )
    watch.stop()
    doc = bp.ok_doc(result)
    bp.no_secret(result, PASSWORD)
    digest = doc["digest"]
    assert watch.errors == []
    assert watch.seen_tag > 0, "the watcher saw the tag at the end at least"
    assert watch.unsigned == [], "the final tag stood unsigned"
    assert doc["signed"] is True
    # buildx on the 26 engine pushes an index (the image and its provenance attestation):
    # --recursive signs the index and each manifest in it.
    pushed = view.manifest(repo, "1.0.0-1")
    signed = [digest, *(m["digest"] for m in pushed.get("manifests") or [])]
    assert doc["signatures"] == [sig_tag(d) for d in signed]
    assert view.digest(repo, "1.0.0-1") == digest
    assert view.tags(repo) == sorted(["1.0.0-1", "latest", *doc["signatures"]]), (
        "no staging tag or claim is left"
    )
    ref = f"{registry_plain.host}/{repo}"
    verified = keys.verify(f"{ref}:1.0.0-1")
    assert verified.returncode == 0, verified.stderr
    assert keys.verify(f"{ref}:latest").returncode == 0, "the alias names the signed digest"


@pytest.mark.parametrize("bed_engine", ["engine20"], indirect=True)
def test_the_watcher_catches_a_tag_signed_after_the_push(
    registry_plain: tb.Registry,
    bed_env: dict[str, str],
    tmp_path: Path,
    keys: Keys,
    watcher: Callable[[bp.RegistryView, str, str], Watch],
) -> None:
    """The old way (build-push, then ``cosign sign``) leaves the tag unsigned for a while:
    the same watcher must see that, or its silence above would prove nothing."""
    view = bp.RegistryView.of(registry_plain)
    app = make_app(tmp_path / "app", "signed later")
    repo = bp.fresh_repo("late")
    watch = watcher(view, repo, "1.0.0-1")
    result = bp.build_push(
        app, registry_plain.image(repo), "--builder", "docker", "--build", "1", env=bed_env
    )
    doc = bp.ok_doc(result)
    assert doc["signed"] is False and doc["signatures"] == []
    # The tag stands unsigned until cosign runs: the watcher sees it (no clock involved).
    assert watch.saw_unsigned.wait(60), watch
    signed = keys.run(
        "sign",
        "--yes",
        "--key",
        str(keys.key),
        "--tlog-upload=false",
        "--allow-http-registry",
        f"{registry_plain.host}/{repo}@{doc['digest']}",
    )
    assert signed.returncode == 0, signed.stderr
    watch.stop()
    assert watch.unsigned[0] == doc["digest"]
    assert keys.verify(f"{registry_plain.host}/{repo}:1.0.0-1").returncode == 0


@pytest.mark.parametrize(("builder", "bed_engine"), MODERN_ENGINES, indirect=["bed_engine"])
def test_an_index_and_each_platform_manifest_are_signed(
    builder: str,
    registry_plain: tb.Registry,
    bed_engine: tb.BedEngine,
    bed_env: dict[str, str],
    tmp_path: Path,
    keys: Keys,
) -> None:
    doc, repo = signed_push(
        builder, registry_plain, bed_env, tmp_path, keys, "--platform", "linux/amd64,linux/arm64"
    )
    view = bp.RegistryView.of(registry_plain)
    index = view.manifest(repo, "1.0.0-1")
    assert index["mediaType"] == OCI_INDEX
    children = [m["digest"] for m in index["manifests"]]
    images = [m for m in index["manifests"] if not bp.is_attestation_entry(m)]
    platforms = [(m["platform"]["os"], m["platform"]["architecture"]) for m in images]
    assert platforms == [("linux", "amd64"), ("linux", "arm64")]
    attestations = [m for m in index["manifests"] if bp.is_attestation_entry(m)]
    if builder == "buildkit" and bed_engine.containerd_store:
        # buildx pushes while it builds: its own index, one provenance attestation per
        # platform, is what is signed (--recursive: the attestations too).
        refs = [m["annotations"]["vnd.docker.reference.digest"] for m in attestations]
        assert refs == [m["digest"] for m in images]
    else:
        assert attestations == []
    assert doc["signatures"] == [sig_tag(d) for d in [doc["digest"], *children]]
    assert view.tags(repo) == sorted(["1.0.0-1", *doc["signatures"]])
    ref = f"{registry_plain.host}/{repo}"
    for target in [f"{ref}:1.0.0-1", *(f"{ref}@{d}" for d in children)]:
        verified = keys.verify(target)
        assert verified.returncode == 0, (target, verified.stderr)


# --- a key that cannot be used, a signature that cannot be written ------------------------


@one_engine
@pytest.mark.parametrize("case", ["wrong password", "missing key", "no password", "bad env key"])
def test_a_key_that_cannot_be_used_is_exit_2_before_any_claim(
    case: str, registry_plain: tb.Registry, bed_env: dict[str, str], tmp_path: Path, keys: Keys
) -> None:
    env = dict(bed_env)
    key = str(keys.key)
    if case == "wrong password":
        env["COSIGN_PASSWORD"] = "not-" + PASSWORD
    elif case == "missing key":
        key = str(tmp_path / "nope.key")
    elif case == "no password":
        del env["COSIGN_PASSWORD"]
    else:
        env["IMGTAG_TEST_KEY"] = "not a key"
        key = "env://IMGTAG_TEST_KEY"
    app = make_app(tmp_path / "app", "bad key")
    repo = bp.fresh_repo("sk")
    result = bp.build_push(
        app,
        registry_plain.image(repo),
        "--builder",
        "docker",
        "--build",
        "1",
        "--sign",
        "--sign-key",
        key,
        "--no-sign-tlog",
        env=env,
    )
    sentence = bp.error_sentence(result, 2)
    assert "--sign-key" in sentence and "COSIGN_PASSWORD" in sentence
    assert "building" not in result.stderr, "nothing is built"
    bp.no_secret(result, PASSWORD, "not-" + PASSWORD)
    assert bp.RegistryView.of(registry_plain).tags(repo) == [], "no claim, nothing pushed"


@one_engine
def test_a_registry_that_refuses_the_signature_is_exit_5_with_no_final_tag(
    registry_plain: tb.Registry,
    bed_env: dict[str, str],
    tmp_path: Path,
    keys: Keys,
    fault_proxy: FaultProxy,
) -> None:
    app = make_app(tmp_path / "app", "refused")
    repo = bp.fresh_repo("sr")
    # The registry takes the image and the claim, and refuses the signature's manifest.
    fault_proxy.fail(403, method="PUT", path=r"/manifests/sha256-[0-9a-f]{64}\.sig$")
    result = bp.build_push(
        app,
        fault_proxy.image(repo),
        "--builder",
        "docker",
        "--build",
        "1",
        *sign_args(keys),
        env=bed_env,
    )
    sentence = bp.error_sentence(result, 5)
    assert "final tag was not written" in sentence
    assert fault_proxy.count("PUT", r"/manifests/sha256-[0-9a-f]{64}\.sig$") >= 1
    bp.no_secret(result, PASSWORD)
    view = bp.RegistryView.of(registry_plain)
    assert view.digest(repo, "1.0.0-1") is None, "no final tag"
    assert view.tags(repo) == [], "the claim and the staging tag are removed"


# --- prune keeps what it signs, with its signatures and referrers -------------------------


def oras(debian13: tb.Debian13Tools, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(debian13.oras), *args, "--plain-http"],
        capture_output=True,
        text=True,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, (args, done.stderr)
    return done


def discovered(debian13: tb.Debian13Tools, ref: str, cwd: Path) -> list[str]:
    """The referrers ``oras discover`` reads back for ``ref`` (their digests)."""
    out = oras(debian13, "discover", "--format", "json", ref, cwd=cwd).stdout
    return sorted(m["digest"] for m in json.loads(out).get("manifests") or [])


@one_engine
def test_prune_keeps_signatures_and_referrers_with_their_image_and_cosign_still_verifies(
    registry_plain: tb.Registry,
    bed_env: dict[str, str],
    tmp_path: Path,
    keys: Keys,
    debian13: tb.Debian13Tools,
) -> None:
    view = bp.RegistryView.of(registry_plain)
    repo = bp.fresh_repo("sp")
    host = registry_plain.host
    ref = f"{host}/{repo}"
    app = make_app(tmp_path / "app", "v1", dockerfile=COPY_ONLY)
    docs = {}
    # Two signed indexes (buildah, two platforms: --recursive signs each manifest) and a
    # signed single-platform image; each gets an SBOM attached with oras (Distribution 2.8
    # has no referrers API: oras writes the sha256-<hex> index tag).
    for build, platform in (("1", "linux/amd64,linux/arm64"), ("2", "linux/amd64,linux/arm64"),
                            ("3", "linux/amd64")):  # fmt: skip
        result = bp.build_push(app, ref, "--builder", "buildah", "--build", build,
                               "--platform", platform, *sign_args(keys), env=bed_env)  # fmt: skip
        docs[build] = bp.ok_doc(result)
        (tmp_path / "sbom.json").write_text(json.dumps({"build": build}))
        oras(debian13, "attach", "--artifact-type", "application/spdx+json",
             f"{ref}:1.0.0-{build}", "sbom.json", cwd=tmp_path)  # fmt: skip
    sboms = {b: discovered(debian13, f"{ref}:1.0.0-{b}", tmp_path) for b in docs}
    assert all(len(found) == 1 for found in sboms.values()), sboms
    # An orphan here: the signature of an image in another repository (COSIGN_REPOSITORY).
    other_repo = bp.fresh_repo("elsewhere")
    other_app = make_app(tmp_path / "o", "other")
    other = bp.ok_doc(bp.build_push(other_app, f"{host}/{other_repo}", "--builder", "buildah",
                                    "--build", "1", env=bed_env))  # fmt: skip
    elsewhere = {"COSIGN_REPOSITORY": ref}
    made = keys.run("sign", "--yes", "--key", str(keys.key), "--tlog-upload=false",
                    "--allow-http-registry", f"{host}/{other_repo}@{other['digest']}",
                    env=elsewhere)  # fmt: skip
    assert made.returncode == 0, made.stderr
    orphan = sig_tag(other["digest"])
    before = set(view.tags(repo))
    assert orphan in before
    # Each signed index left a signature for itself and for each of its two manifests.
    assert len(docs["1"]["signatures"]) == 3 and set(docs["1"]["signatures"]) <= before

    workdir = tmp_path / "cwd"
    workdir.mkdir()
    args = [ref, "--keep-last", "1", "--keep-per-version", "0"]
    plan = run_cli(["prune", *args, "--format", "json"], cwd=workdir, env=bed_env)
    rows = {r["tag"] or r["digest"]: r for r in json.loads(plan.stdout)["plan"]}
    assert (rows[orphan]["action"], rows[orphan]["reason"]) == (
        "keep",
        "orphan (--orphans removes it)",
    )
    applied = run_cli(["prune", *args, "--apply"], cwd=workdir, env=bed_env)
    assert applied.code == 0, applied

    after = set(view.tags(repo))
    kept = {"1.0.0-3", *docs["3"]["signatures"], docs["3"]["digest"].replace(":", "-"), orphan}
    assert after == kept, after ^ kept
    # What went with its image: signatures of the index and of each platform manifest, the
    # referrers index and the SBOM manifest itself.
    live = _live(registry_plain, repo)
    for build in ("1", "2"):
        assert docs[build]["digest"] not in live
        assert not set(sboms[build]) & live, "the SBOM went with its image"
    assert sboms["3"][0] in live
    # cosign verify passes for every kept tag, and for the image elsewhere (its signature
    # here stayed); oras discover reads the kept image's SBOM back.
    assert keys.verify(f"{ref}:1.0.0-3").returncode == 0
    elsewhere_ok = keys.run("verify", "--key", str(keys.pub), "--insecure-ignore-tlog",
                            "--allow-http-registry", f"{host}/{other_repo}:1.0.0-1",
                            env=elsewhere)  # fmt: skip
    assert elsewhere_ok.returncode == 0, elsewhere_ok.stderr
    assert discovered(debian13, f"{ref}:1.0.0-3", tmp_path) == sboms["3"]

    # --orphans removes the orphan, and only it.
    removed = run_cli(["prune", *args, "--apply", "--orphans"], cwd=workdir, env=bed_env)
    assert removed.code == 0, removed
    assert set(view.tags(repo)) == kept - {orphan}
    assert keys.verify(f"{ref}:1.0.0-3").returncode == 0


def _live(registry: tb.Registry, repo: str) -> set[str]:
    revisions = (
        registry.root / "storage/docker/registry/v2/repositories" / repo / "_manifests/revisions"
    )
    return {
        f"{algo.name}:{rev.name}"
        for algo in revisions.iterdir()
        for rev in algo.iterdir()
        if (rev / "link").is_file()
    }
