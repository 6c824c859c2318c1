"""``imgtag promote`` against the real bed: Distribution registries, plain and with auth,
a fault proxy in front of one, and real imgtag processes for the race and the signals.

docs/promote.md. Every test asserts what a user sees (exit code, the JSON on stdout, one
``imgtag: error:`` sentence) and then the registries' state, read independently with
``requests`` (``test_build_push.RegistryView``), never through imgtag's client: the same
digests, the same bytes, no claim left, no tag that is not complete. The images are
seeded through the registry API (``tests/seed.py``): an OCI index of two platforms with
an attestation manifest per platform, the shape ``docker buildx build --push`` writes.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1]))

import test_build_push as bp
from test_registry_providers import ghcr, hub  # noqa: F401  (the providers' simulators)

import testbed as tb
from clirun import CliResult, run_cli
from faultproxy import FaultProxy
from seed import seed_blobs
from tagger.registry.client import RegistryClient
from tagger.registry.connect import open_client
from tagger.registry.mediatypes import OCI_INDEX, OCI_MANIFEST
from tagger.registry.reference import Reference

ROOT = Path(__file__).parents[2]
ROW_KEYS = ["image", "tag", "status", "blobs_copied", "blobs_mounted", "bytes_copied"]
CLAIM = "imgtag-claim-"
ATTESTATION = "attestation-manifest"


# --- seeding --------------------------------------------------------------------------------


def client_of(host: str, env: Mapping[str, str]) -> RegistryClient:
    client, _ = open_client(Reference.parse_repository(f"{host}/x"), env)
    return client


def _layer(size: int, salt: str) -> tuple[bytes, str]:
    """A "layer": ``size`` bytes unique to ``salt`` (the registry does not look inside)."""
    seed = hashlib.sha256(salt.encode()).digest()
    data = (seed * (size // len(seed) + 1))[:size]
    return data, "sha256:" + hashlib.sha256(data).hexdigest()


def seed_buildx_index(
    client: RegistryClient, repo: str, tag: str, salt: str, layer_size: int = 64 * 1024
) -> dict[str, Any]:
    """An OCI index as buildx pushes it: linux/amd64 and linux/arm64 images (two layers
    each, the first shared) and, per image, an ``unknown/unknown`` attestation manifest
    (an in-toto layer) annotated ``vnd.docker.reference.type: attestation-manifest``."""
    shared = _layer(layer_size, f"{salt}-base")
    entries = []
    children = []
    for arch in ("amd64", "arm64"):
        digest = seed_blobs(
            client,
            repo,
            f"tmp-{arch}",
            [shared, _layer(layer_size, f"{salt}-{arch}")],
            media_type=OCI_MANIFEST,
            architecture=arch,
        )
        raw = client.get_manifest(repo, digest).raw
        entries.append(
            {
                "mediaType": OCI_MANIFEST,
                "digest": digest,
                "size": len(raw),
                "platform": {"architecture": arch, "os": "linux"},
            }
        )
        children.append(digest)
    for image in list(children):
        statement = json.dumps({"_type": "https://in-toto.io/Statement/v0.1", "s": salt}).encode()
        layer = client.upload_blob(repo, statement)
        config = client.upload_blob(repo, b'{"architecture":"unknown","os":"unknown"}')
        doc = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config,
                "size": len(b'{"architecture":"unknown","os":"unknown"}'),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.in-toto+json",
                    "digest": layer,
                    "size": len(statement),
                    "annotations": {
                        "in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"
                    },
                }
            ],
        }
        raw = json.dumps(doc, indent=2).encode()
        digest = client.put_manifest(
            repo, "sha256:" + hashlib.sha256(raw).hexdigest(), raw, OCI_MANIFEST
        )
        entries.append(
            {
                "mediaType": OCI_MANIFEST,
                "digest": digest,
                "size": len(raw),
                "annotations": {
                    "vnd.docker.reference.digest": image,
                    "vnd.docker.reference.type": ATTESTATION,
                },
                "platform": {"architecture": "unknown", "os": "unknown"},
            }
        )
        children.append(digest)
    # Bytes as a tool writes them (indented, in its key order): verbatim means these bytes.
    index_raw = json.dumps(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}, indent=3
    ).encode()
    index = client.put_manifest(repo, tag, index_raw, OCI_INDEX)
    return {"digest": index, "children": children, "raw": index_raw}


def seed_plain_image(
    client: RegistryClient, repo: str, tag: str, salt: str, size: int = 4096
) -> str:
    return seed_blobs(
        client,
        repo,
        tag,
        [_layer(size, f"{salt}-1"), _layer(size, f"{salt}-2")],
        media_type=OCI_MANIFEST,
    )


def seed_signature(client: RegistryClient, repo: str, digest: str, suffix: str = ".sig") -> str:
    """What ``cosign sign`` leaves: a ``sha256-<hex>.sig`` tag holding an OCI manifest with
    a simplesigning payload layer and its signature annotation."""
    payload = json.dumps(
        {
            "critical": {
                "image": {"docker-manifest-digest": digest},
                "type": "cosign container image signature",
            }
        }
    ).encode()
    layer = client.upload_blob(repo, payload)
    config = client.upload_blob(repo, b"{}")
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config,
            "size": 2,
        },
        "layers": [
            {
                "mediaType": "application/vnd.dev.cosign.simplesigning.v1+json",
                "digest": layer,
                "size": len(payload),
                "annotations": {
                    "dev.cosignproject.cosign/signature": "MEUCIQ" + secrets.token_hex(8)
                },
            }
        ],
    }
    tag = digest.replace(":", "-") + suffix
    return client.put_manifest(repo, tag, json.dumps(doc).encode(), OCI_MANIFEST)


# --- running ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bed_env(testbed: tb.Testbed) -> dict[str, str]:
    return {**testbed.env(), "IMGTAG_RETRY_BACKOFF": "0.01"}


def promote(*args: str, env: Mapping[str, str], cwd: Path) -> CliResult:
    return run_cli(["promote", *args], env=env, cwd=cwd)


def json_doc(result: CliResult, code: int = 0) -> dict[str, Any]:
    assert result.code == code, result
    assert "Traceback" not in result.stderr
    doc: dict[str, Any] = json.loads(result.stdout)
    assert list(doc)[:3] == ["source", "digest", "destinations"]
    for row in doc["destinations"]:
        assert list(row) == ROW_KEYS
    return doc


def repo_name(prefix: str) -> str:
    return f"imgtag-it/{prefix}-{secrets.token_hex(4)}"


def claims(view: bp.RegistryView, repo: str) -> list[str]:
    return [t for t in view.tags(repo) if t.startswith(CLAIM)]


def raw_manifest(view: bp.RegistryView, repo: str, ref: str) -> tuple[bytes, str]:
    resp = view.call("GET", f"/v2/{repo}/manifests/{ref}", headers={"Accept": tb.MANIFEST_ACCEPT})
    assert resp.status_code == 200, (repo, ref, resp.status_code)
    return resp.content, resp.headers["Content-Type"].split(";")[0]


def assert_same_tree(
    src: bp.RegistryView, src_repo: str, dst: bp.RegistryView, dst_repo: str, digest: str
) -> None:
    """Every manifest under ``digest`` has the same bytes and media type at the
    destination, and every blob it references is there with the same bytes."""
    raw, media_type = raw_manifest(src, src_repo, digest)
    assert raw_manifest(dst, dst_repo, digest) == (raw, media_type)
    doc = json.loads(raw)
    for entry in doc.get("manifests", []):
        assert_same_tree(src, src_repo, dst, dst_repo, entry["digest"])
    for blob in [doc["config"], *doc["layers"]] if "config" in doc else []:
        assert dst.blob(dst_repo, blob["digest"]) == src.blob(src_repo, blob["digest"])


# --- 1. within one registry: mounted, verbatim, an index with attestations -----------------


def test_an_index_with_attestations_goes_to_another_repository_verbatim_and_mounted(
    fault_proxy: FaultProxy, registry_plain: tb.Registry, bed_env: dict[str, str], tmp_path: Path
) -> None:
    client = client_of(registry_plain.host, bed_env)
    src_repo, dst_repo = repo_name("stage"), repo_name("release")
    seeded = seed_buildx_index(client, src_repo, "1.4.2-17", "mount")
    fault_proxy.reset()

    result = promote(
        fault_proxy.image(src_repo, "1.4.2-17"),
        fault_proxy.image(dst_repo, "1.4.2-17"),
        "--format",
        "json",
        env=bed_env,
        cwd=tmp_path,
    )

    doc = json_doc(result)
    assert doc["digest"] == seeded["digest"]
    (row,) = doc["destinations"]
    # 3 distinct image layers + 2 configs + 2 attestation layers + 2 attestation configs
    # (the two attestation configs are the same bytes: one blob).
    assert row["status"] == "copied" and row["blobs_copied"] == 0 and row["bytes_copied"] == 0
    assert row["blobs_mounted"] == 7, row
    # No layer byte crossed the wire: every blob was mounted. The 2 bytes are the claim's
    # config, the empty descriptor "{}".
    assert fault_proxy.bytes_in("PUT|PATCH", r"/blobs/uploads/") == len(b"{}")
    assert fault_proxy.count("POST", rf"/v2/{dst_repo}/blobs/uploads/") >= 7
    view = bp.RegistryView.of(registry_plain)
    assert view.digest(dst_repo, "1.4.2-17") == seeded["digest"]
    assert raw_manifest(view, dst_repo, "1.4.2-17")[0] == seeded["raw"]
    assert_same_tree(view, src_repo, view, dst_repo, seeded["digest"])
    index = view.manifest(dst_repo, "1.4.2-17")
    kinds = [m.get("annotations", {}).get("vnd.docker.reference.type") for m in index["manifests"]]
    assert kinds.count(ATTESTATION) == 2
    assert view.tags(dst_repo) == ["1.4.2-17"], "no claim, no temporary tag left"


# --- 2. across registries: plain to basic auth, token to plain -------------------------------


@pytest.mark.parametrize("pair", [("plain", "basic"), ("token", "plain")])
def test_across_registries_streams_every_blob_and_a_rerun_is_exists(
    pair: tuple[str, str], testbed: tb.Testbed, bed_env: dict[str, str], tmp_path: Path
) -> None:
    src_reg, dst_reg = testbed.registries[pair[0]], testbed.registries[pair[1]]
    src_repo, dst_repo = repo_name("across"), repo_name("across")
    # Layers of 2 MiB: above the small-blob size, so they are streamed, not read whole.
    seeded = seed_buildx_index(
        client_of(src_reg.host, bed_env), src_repo, "2.0.0-3", pair[0], layer_size=2 << 20
    )
    src_view, dst_view = bp.RegistryView.of(src_reg), bp.RegistryView.of(dst_reg)

    args = [
        src_reg.image(src_repo, "2.0.0-3"),
        dst_reg.image(dst_repo, "2.0.0"),
        "--format",
        "json",
    ]
    doc = json_doc(promote(*args, env=bed_env, cwd=tmp_path))

    (row,) = doc["destinations"]
    assert row["status"] == "copied" and row["blobs_mounted"] == 0
    assert row["blobs_copied"] == 7
    sizes = 0
    for child in seeded["children"]:
        m = src_view.manifest(src_repo, child)
        sizes += sum(b["size"] for b in [m["config"], *m["layers"]])
    # Each distinct blob once (the shared base layer and attestation config counted once).
    assert 0 < row["bytes_copied"] <= sizes
    assert dst_view.digest(dst_repo, "2.0.0") == seeded["digest"]
    assert_same_tree(src_view, src_repo, dst_view, dst_repo, seeded["digest"])
    assert dst_view.tags(dst_repo) == ["2.0.0"]

    again = json_doc(promote(*args, env=bed_env, cwd=tmp_path))
    assert again["destinations"][0]["status"] == "exists"
    assert again["destinations"][0]["bytes_copied"] == 0
    assert dst_view.tags(dst_repo) == ["2.0.0"]


# --- 3. a destination holding another digest ------------------------------------------------


def test_a_destination_with_another_digest_is_exit_3_naming_both_and_untouched(
    registry_plain: tb.Registry,
    registry_basic: tb.Registry,
    bed_env: dict[str, str],
    tmp_path: Path,
) -> None:
    src = client_of(registry_plain.host, bed_env)
    dst = client_of(registry_basic.host, bed_env)
    src_repo, dst_repo, ok_repo = repo_name("src"), repo_name("taken"), repo_name("free")
    ours = seed_plain_image(src, src_repo, "1.0.0-1", "ours")
    theirs = seed_plain_image(dst, dst_repo, "1.0.0", "theirs")

    result = promote(
        registry_plain.image(src_repo, "1.0.0-1"),
        registry_basic.image(dst_repo, "1.0.0"),
        registry_basic.image(ok_repo, "1.0.0"),
        "--format",
        "json",
        env=bed_env,
        cwd=tmp_path,
    )

    sentence = bp.error_sentence(CliResult(result.code, "", result.stderr), 3)
    assert ours in sentence and theirs in sentence
    doc = json.loads(result.stdout)
    assert [r["status"] for r in doc["destinations"]] == ["refused", "copied"]
    view = bp.RegistryView.of(registry_basic)
    assert view.digest(dst_repo, "1.0.0") == theirs
    assert view.tags(dst_repo) == ["1.0.0"], "nothing was added to the refused repository"
    assert view.digest(ok_repo, "1.0.0") == ours


# --- 4. a registry failing midway: exit 5, nothing tagged, a re-run finishes ----------------


def test_a_registry_failing_midway_is_exit_5_with_nothing_tagged_and_a_rerun_finishes(
    fault_proxy: FaultProxy,
    registry_basic: tb.Registry,
    registry_plain: tb.Registry,
    bed_env: dict[str, str],
    tmp_path: Path,
) -> None:
    src_repo, dst_repo = repo_name("src"), repo_name("midway")
    seeded = seed_buildx_index(
        client_of(registry_basic.host, bed_env), src_repo, "3.1.0-2", "midway"
    )
    # After the claim's config and two blobs, every blob upload fails: a registry that
    # goes away in the middle of the copy.
    fault_proxy.fail(503, method="PUT", path=r"/blobs/uploads/", skip=3)
    env = {**bed_env, "IMGTAG_RETRIES": "2"}
    args = [registry_basic.image(src_repo, "3.1.0-2"), fault_proxy.image(dst_repo, "3.1.0-2")]

    failed = promote(*args, env=env, cwd=tmp_path)

    sentence = bp.error_sentence(failed, 5)
    assert "503" in sentence or "unavailable" in sentence.lower() or "answered" in sentence
    view = bp.RegistryView.of(registry_plain)
    assert view.tags(dst_repo) == [], "nothing tagged: no image tag, no claim"

    fault_proxy.clear()
    doc = json_doc(promote(*args, "--format", "json", env=env, cwd=tmp_path))
    assert doc["destinations"][0]["status"] == "copied"
    assert view.digest(dst_repo, "3.1.0-2") == seeded["digest"]
    assert view.tags(dst_repo) == ["3.1.0-2"]
    assert_same_tree(bp.RegistryView.of(registry_basic), src_repo, view, dst_repo, seeded["digest"])


# --- 5. real processes: SIGTERM midway, the six-way race --------------------------------------


def imgtag(args: Sequence[str], cwd: Path, env: Mapping[str, str]) -> subprocess.Popen[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("IMGTAG_") and k != "CI"}
    full.update({"PYTHONPATH": str(ROOT), "IMGTAG_RETRY_BACKOFF": "0.01", **env})
    return subprocess.Popen(
        [sys.executable, "-m", "tagger", *args],
        cwd=cwd,
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError("the condition never came true")


def test_sigterm_midway_releases_the_claim_tags_nothing_and_exits_143(
    fault_proxy: FaultProxy,
    registry_plain: tb.Registry,
    registry_basic: tb.Registry,
    bed_env: dict[str, str],
    tmp_path: Path,
) -> None:
    src_repo, dst_repo = repo_name("src"), repo_name("sigterm")
    seeded = seed_buildx_index(client_of(registry_basic.host, bed_env), src_repo, "1.0.0-5", "sig")
    # Blob uploads are slow at the destination: the signal lands while blobs are copied.
    fault_proxy.delay(0.5, method="PUT", path=r"/blobs/uploads/")
    args = [
        "promote",
        registry_basic.image(src_repo, "1.0.0-5"),
        fault_proxy.image(dst_repo, "1.0.0-5"),
    ]
    proc = imgtag(args, tmp_path, bed_env)
    try:
        # The claim is written, and the first layer (after the claim's config) is on its way.
        wait_until(
            lambda: (
                (
                    fault_proxy.count("PUT", rf"/v2/{dst_repo}/manifests/{CLAIM}") >= 1
                    and fault_proxy.count("PUT", rf"/v2/{dst_repo}/blobs/uploads/") >= 2
                )
                or proc.poll() is not None
            )
        )
        assert proc.poll() is None, proc.communicate()
        view = bp.RegistryView.of(registry_plain)
        assert claims(view, dst_repo), "the claim stands while the copy runs"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, err
    assert out == "" and "Traceback" not in err
    assert err.rstrip().split("\n")[-1].startswith("imgtag: error: stopped by SIGTERM"), err
    assert view.tags(dst_repo) == [], "claim released, no tag written"

    fault_proxy.clear()
    done = imgtag(args, tmp_path, bed_env)
    out, err = done.communicate(timeout=120)
    assert done.returncode == 0, err
    assert view.digest(dst_repo, "1.0.0-5") == seeded["digest"]


def test_six_promotes_to_one_tag_have_exactly_one_winner(
    registry_plain: tb.Registry, bed_env: dict[str, str], tmp_path: Path
) -> None:
    client = client_of(registry_plain.host, bed_env)
    src_repo, dst_repo = repo_name("candidates"), repo_name("race")
    sources = {
        seed_plain_image(client, src_repo, f"1.0.0-{i}", f"contender-{i}-{secrets.token_hex(2)}"): i
        for i in range(1, 7)
    }
    dest = registry_plain.image(dst_repo, "1.0.0")
    procs = [
        imgtag(
            ["promote", registry_plain.image(src_repo, f"1.0.0-{i}"), dest, "--format", "json"],
            tmp_path,
            bed_env,
        )
        for i in range(1, 7)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        results.append((proc.returncode, out, err))
    detail = "\n".join(f"--- {c}\n{o}{e[-400:]}" for c, o, e in results)
    assert sorted(c for c, _, _ in results) == [0, 3, 3, 3, 3, 3], detail
    (winner,) = [json.loads(o) for c, o, _ in results if c == 0]
    assert winner["destinations"][0]["status"] == "copied"
    view = bp.RegistryView.of(registry_plain)
    assert view.digest(dst_repo, "1.0.0") == winner["digest"]
    assert winner["digest"] in sources
    assert view.tags(dst_repo) == ["1.0.0"], "one tag, no claim left"
    for code, _out, err in results:
        if code == 3:
            assert err.rstrip().split("\n")[-1].startswith("imgtag: error: "), err


# --- 6. signatures and aliases come along --------------------------------------------------


def test_signatures_attestations_and_referrers_come_along_with_their_digests(
    registry_plain: tb.Registry,
    registry_basic: tb.Registry,
    bed_env: dict[str, str],
    tmp_path: Path,
) -> None:
    src = client_of(registry_plain.host, bed_env)
    src_repo, dst_repo = repo_name("signed"), repo_name("signed")
    seeded = seed_buildx_index(src, src_repo, "1.2.0-4", "signed")
    hexpart = seeded["digest"].removeprefix("sha256:")
    sig = seed_signature(src, src_repo, seeded["digest"], ".sig")
    att = seed_signature(src, src_repo, seeded["digest"], ".att")
    child_sig = seed_signature(src, src_repo, seeded["children"][0], ".sig")
    # The referrers tag schema: an index of the referrers under sha256-<hex>.
    referrer = src.get_manifest(src_repo, att)
    referrers = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    "mediaType": OCI_MANIFEST,
                    "digest": att,
                    "size": len(referrer.raw),
                    "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json",
                }
            ],
        }
    ).encode()
    fallback = src.put_manifest(src_repo, f"sha256-{hexpart}", referrers, OCI_INDEX)

    doc = json_doc(
        promote(
            registry_plain.image(src_repo, "1.2.0-4"),
            registry_basic.image(dst_repo, "1.2.0-4"),
            "--format",
            "json",
            "--alias",
            "latest",
            "--alias",
            "1",
            env=bed_env,
            cwd=tmp_path,
        )
    )

    assert doc["destinations"][0]["status"] == "copied"
    view = bp.RegistryView.of(registry_basic)
    assert view.digest(dst_repo, f"sha256-{hexpart}.sig") == sig
    assert view.digest(dst_repo, f"sha256-{hexpart}.att") == att
    assert view.digest(dst_repo, f"sha256-{hexpart}") == fallback
    child_hex = seeded["children"][0].removeprefix("sha256:")
    assert view.digest(dst_repo, f"sha256-{child_hex}.sig") == child_sig
    assert view.digest(dst_repo, "latest") == seeded["digest"]
    assert view.digest(dst_repo, "1") == seeded["digest"]

    # --no-signatures: the image alone.
    bare = repo_name("bare")
    json_doc(
        promote(
            registry_plain.image(src_repo, "1.2.0-4"),
            registry_basic.image(bare, "1.2.0-4"),
            "--format",
            "json",
            "--no-signatures",
            env=bed_env,
            cwd=tmp_path,
        )
    )
    assert view.tags(bare) == ["1.2.0-4"]


# --- 7. bad input -------------------------------------------------------------------------


def test_bad_input(registry_plain: tb.Registry, bed_env: dict[str, str], tmp_path: Path) -> None:
    client = client_of(registry_plain.host, bed_env)
    repo = repo_name("bad")
    digest = seed_plain_image(client, repo, "1.0.0-1", "bad")
    src = registry_plain.image(repo, "1.0.0-1")
    view = bp.RegistryView.of(registry_plain)

    missing = promote(
        registry_plain.image(repo, "9.9.9-9"),
        registry_plain.image(repo, "x"),
        env=bed_env,
        cwd=tmp_path,
    )
    assert "9.9.9-9" in bp.error_sentence(missing, 5)

    with_digest = promote(src, f"{registry_plain.image(repo)}@{digest}", env=bed_env, cwd=tmp_path)
    assert "digest" in bp.error_sentence(with_digest, 2)

    platform = promote(
        src,
        registry_plain.image(repo, "2.0.0"),
        "--platform",
        "linux/amd64",
        env=bed_env,
        cwd=tmp_path,
    )
    assert "digest" in bp.error_sentence(platform, 2)

    assert view.tags(repo) == ["1.0.0-1"]


def test_the_same_source_and_destination_is_exit_0_and_writes_nothing(
    fault_proxy: FaultProxy, registry_plain: tb.Registry, bed_env: dict[str, str], tmp_path: Path
) -> None:
    repo = repo_name("same")
    digest = seed_plain_image(client_of(registry_plain.host, bed_env), repo, "1.0.0-1", "same")
    fault_proxy.reset()
    ref = fault_proxy.image(repo, "1.0.0-1")

    doc = json_doc(promote(ref, ref, "--format", "json", env=bed_env, cwd=tmp_path))

    assert doc["digest"] == digest and doc["destinations"][0]["status"] == "exists"
    assert fault_proxy.count("PUT|POST|PATCH|DELETE") == 0, fault_proxy.counts


# --- 8. build-push IMAGE IMAGE...: one build, the same tag everywhere --------------------


@pytest.fixture
def app(tmp_path: Path) -> Any:
    from appfixture import make_app

    return make_app(tmp_path / "app", "promoted")


def test_build_push_to_several_repositories_builds_once_and_promotes_the_rest(
    registry_plain: tb.Registry, registry_basic: tb.Registry, bed_env: dict[str, str], app: Any
) -> None:
    first, second, third = repo_name("bp1"), repo_name("bp2"), repo_name("bp3")
    env = {**bed_env, "IMGTAG_BUILDER": "docker"}
    images = [
        registry_plain.image(first),
        registry_basic.image(second),
        registry_plain.image(third),
    ]

    result = bp.run_cli(
        ["build-push", *images, "--build", "4", "--format", "json", "--alias", "latest"],
        cwd=app.path,
        env=env,
    )

    assert result.code == 0, result
    doc = json.loads(result.stdout)
    assert list(doc) == [*bp.JSON_KEYS, "also"]
    assert doc["tag"] == "1.0.0-4" and doc["pushed"] is True
    rows = doc["also"]
    assert [(r["image"], r["status"]) for r in rows] == [
        (images[1], "copied"),
        (images[2], "copied"),
    ]
    assert rows[1]["blobs_mounted"] > 0 and rows[1]["bytes_copied"] == 0, "same registry: mounted"
    assert rows[0]["blobs_copied"] > 0, "another registry: uploaded"
    plain, basic = bp.RegistryView.of(registry_plain), bp.RegistryView.of(registry_basic)
    for view, repo in ((plain, first), (basic, second), (plain, third)):
        assert view.digest(repo, "1.0.0-4") == doc["digest"]
        assert view.digest(repo, "latest") == doc["digest"]
        assert sorted(view.tags(repo)) == ["1.0.0-4", "latest"]


def test_build_push_to_several_repositories_stops_before_building_when_one_has_the_tag(
    registry_plain: tb.Registry, registry_basic: tb.Registry, bed_env: dict[str, str], app: Any
) -> None:
    first, taken = repo_name("bp1"), repo_name("taken")
    theirs = seed_plain_image(client_of(registry_basic.host, bed_env), taken, "1.0.0-4", "theirs")
    env = {**bed_env, "IMGTAG_BUILDER": "docker"}

    result = bp.run_cli(
        ["build-push", registry_plain.image(first), registry_basic.image(taken), "--build", "4"],
        cwd=app.path,
        env=env,
    )

    sentence = bp.error_sentence(result, 3)
    assert theirs in sentence and "nothing was built" in sentence
    assert bp.RegistryView.of(registry_plain).tags(first) == [], "nothing pushed anywhere"
    assert bp.RegistryView.of(registry_basic).tags(taken) == ["1.0.0-4"]


# --- 9. the race through the providers that delete with their own API ----------------------


@pytest.mark.parametrize("provider", ["ghcr", "dockerhub"])
def test_six_promotes_have_one_winner_where_claims_are_deleted_through_a_provider_api(
    provider: str,
    request: pytest.FixtureRequest,
    registry_plain: tb.Registry,
    bed_env: dict[str, str],
    tmp_path: Path,
) -> None:
    import test_registry_providers as rp

    if provider == "ghcr":
        sim = request.getfixturevalue("ghcr")
        env = {**bed_env, **rp.ghcr_env(sim)}
        owner = "alice"
    else:
        sim = request.getfixturevalue("hub")
        env = {**bed_env, **rp.hub_env(sim, tmp_path)}
        owner = "hubber"
    client = client_of(registry_plain.host, bed_env)
    src_repo, dst_repo = f"{owner}/{repo_name('c')[10:]}", f"{owner}/{repo_name('r')[10:]}"
    for i in range(1, 7):
        seed_plain_image(client, src_repo, f"1.0.0-{i}", f"{provider}-{i}-{secrets.token_hex(2)}")
    dest = f"{sim.registry_host}/{dst_repo}:1.0.0"
    procs = [
        imgtag(["promote", f"{sim.registry_host}/{src_repo}:1.0.0-{i}", dest], tmp_path, env)
        for i in range(1, 7)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        results.append((proc.returncode, out, err))
    detail = "\n".join(f"--- {c}\n{o}{e[-400:]}" for c, o, e in results)
    assert sorted(c for c, _, _ in results) == [0, 3, 3, 3, 3, 3], detail
    view = bp.RegistryView.of(registry_plain)
    assert view.tags(dst_repo) == ["1.0.0"], "one tag; every claim deleted through the API"
    assert sim.api.count("DELETE") >= 1, "claims went through the provider's API"
    assert sim.front.count("DELETE") == 0


# --- 10. bounded memory: a layer larger than the process is streamed through it -----------

_MAXRSS = (
    "import resource, subprocess, sys;"
    "code = subprocess.run(sys.argv[1:]).returncode;"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss);"
    "sys.exit(code)"
)


def test_a_large_layer_across_registries_is_streamed_with_bounded_memory(
    registry_plain: tb.Registry,
    registry_basic: tb.Registry,
    bed_env: dict[str, str],
    tmp_path: Path,
) -> None:
    size = 160 << 20
    client = client_of(registry_plain.host, bed_env)
    src_repo, dst_repo = repo_name("big"), repo_name("big")
    digest = seed_blobs(client, src_repo, "1.0.0-1", [_layer(size, "big")], media_type=OCI_MANIFEST)
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGTAG_") and k != "CI"}
    env.update({"PYTHONPATH": str(ROOT), **bed_env})
    argv = [sys.executable, "-c", _MAXRSS, sys.executable, "-m", "tagger", "promote"]
    argv += [registry_plain.image(src_repo, "1.0.0-1"), registry_basic.image(dst_repo, "1.0.0-1")]

    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)

    assert proc.returncode == 0, proc.stderr
    peak_kib = int(proc.stdout.strip().splitlines()[-1])
    # The whole process peaks well below the layer it copied (Linux reports KiB).
    assert peak_kib * 1024 < size // 2, f"peak RSS {peak_kib} KiB for a {size >> 20} MiB layer"
    assert bp.RegistryView.of(registry_basic).digest(dst_repo, "1.0.0-1") == digest
