"""Proves the test bed: real pushes through the real engine into the three real registries,
checked independently of docker by reading the registries over HTTP with ``requests``.

Does I/O: builds images, pushes them, runs a container, and talks HTTP(S) to loopback.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests

import testbed as tb

if TYPE_CHECKING:
    import docker

pytestmark = pytest.mark.integration

REPO = "testbed/smoke"
TAG = "1.0.0-1"


def _manifest(registry: tb.Registry, repo: str, ref: str, **kwargs: Any) -> requests.Response:
    kwargs.setdefault("auth", registry.auth)
    return requests.get(
        f"{registry.url}/v2/{repo}/manifests/{ref}",
        headers={"Accept": tb.MANIFEST_ACCEPT},
        verify=registry.verify,
        timeout=10,
        **kwargs,
    )


def test_push_lands_in_the_registry_with_the_reported_digest(
    registry: tb.Registry, docker_client: docker.DockerClient
) -> None:
    reference = registry.image(REPO, TAG)
    tb.build_scratch_image(docker_client, reference, f"smoke test of the {registry.name} bed\n")

    lines = list(
        docker_client.api.push(
            registry.image(REPO),
            tag=TAG,
            stream=True,
            decode=True,
            auth_config=registry.auth_config,
        )
    )
    # push() does not raise for a failed push: the failure is only inside the stream.
    errors = [line for line in lines if "errorDetail" in line or "error" in line]
    assert errors == [], f"push to {registry.name} failed: {errors}"
    digests = {line["aux"]["Digest"] for line in lines if "Digest" in line.get("aux", {})}
    assert len(digests) == 1, f"push stream reported digests {digests}: {lines[-3:]}"
    pushed = digests.pop()

    resp = _manifest(registry, REPO, TAG)
    assert resp.status_code == 200, resp.text
    assert resp.headers["Docker-Content-Digest"] == pushed
    # Independent of what the registry claims: the digest is the hash of the bytes served.
    assert f"sha256:{hashlib.sha256(resp.content).hexdigest()}" == pushed
    assert resp.headers["Content-Type"] in tb.MANIFEST_MEDIA_TYPES

    # The same manifest by digest, and a tag that was never pushed is a 404.
    assert _manifest(registry, REPO, pushed).status_code == 200
    assert _manifest(registry, REPO, "9.9.9-9").status_code == 404


def test_basic_registry_rejects_a_wrong_password(registry_basic: tb.Registry) -> None:
    assert registry_basic.username and registry_basic.password
    v2 = f"{registry_basic.url}/v2/"
    assert requests.get(v2, auth=registry_basic.auth, timeout=10).status_code == 200

    wrong = (registry_basic.username, registry_basic.password + "x")
    assert requests.get(v2, auth=wrong, timeout=10).status_code == 401
    assert _manifest(registry_basic, REPO, TAG, auth=wrong).status_code == 401

    anonymous = requests.get(v2, timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Basic ")


def test_push_without_credentials_fails_in_the_stream(
    registry_basic: tb.Registry, docker_client: docker.DockerClient
) -> None:
    reference = registry_basic.image("testbed/denied", TAG)
    tb.build_scratch_image(docker_client, reference, "nobody may push this\n")
    with pytest.raises(tb.PushError, match=r"push of .* failed"):
        tb.push_image(docker_client, reference, auth_config=None)
    assert _manifest(registry_basic, "testbed/denied", TAG).status_code == 404


def test_tls_registry_is_trusted_only_through_the_bed_ca(
    registry_tls: tb.Registry, testbed: tb.Testbed
) -> None:
    assert registry_tls.url.startswith("https://127.0.0.1:")
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{registry_tls.url}/v2/", timeout=10)  # system CAs only
    assert requests.get(f"{registry_tls.url}/v2/", verify=registry_tls.verify, timeout=10).ok

    installed = Path("/etc/docker/certs.d") / registry_tls.host / "ca.crt"
    assert installed == testbed.certs_d_file
    assert installed.read_bytes() == testbed.ca_file.read_bytes()


def test_delete_by_digest_is_enabled(
    registry_plain: tb.Registry, docker_client: docker.DockerClient
) -> None:
    reference = registry_plain.image("testbed/delete", TAG)
    tb.build_scratch_image(docker_client, reference, "delete me\n")
    digest = tb.push_image(docker_client, reference).digest
    assert _manifest(registry_plain, "testbed/delete", TAG).status_code == 200

    resp = requests.delete(f"{registry_plain.url}/v2/testbed/delete/manifests/{digest}", timeout=10)
    assert resp.status_code == 202, resp.text
    assert _manifest(registry_plain, "testbed/delete", TAG).status_code == 404


def test_a_container_from_a_scratch_image_runs(docker_client: docker.DockerClient) -> None:
    image = tb.build_scratch_image(docker_client, "testbed/run:1", "hello from the test bed\n")
    assert docker_client.containers.run(image.id, remove=True, network_mode="none") == (
        b"hello from the test bed\n"
    )
    out = docker_client.containers.run(
        image.id, ["/busybox", "uname", "-s"], remove=True, network_mode="none"
    )
    assert out == b"Linux\n"


def test_the_engine_is_the_beds_own(
    testbed: tb.Testbed, docker_client: docker.DockerClient
) -> None:
    info = docker_client.info()
    assert Path(info["DockerRootDir"]).is_relative_to(testbed.root)
    assert info["Driver"] == testbed.engine.storage_driver
    assert docker_client.ping() is True
    # dockerd counts loopback as an insecure registry and then skips TLS verification
    # (certs.d is not even read), so a push through the engine to the TLS registry proves
    # nothing about CA handling: test that with a client that verifies (requests, skopeo).
    assert "127.0.0.0/8" in info["RegistryConfig"]["InsecureRegistryCIDRs"]


# --- the second engine: Debian 13's 26 with the containerd image store -----------------


def test_engine26_runs_with_the_containerd_store_and_buildx(
    testbed: tb.Testbed, engine26: tb.ModernEngine, registry_plain: tb.Registry, tmp_path: Path
) -> None:
    import subprocess

    status, body = tb._engine_get(engine26.host.removeprefix("unix://"), "/info")
    info = json.loads(body)
    assert status == 200
    assert engine26.version.startswith("26."), engine26.version
    assert info["Driver"] == "overlayfs", "the containerd snapshotter, not overlay2"
    env = engine26.env(testbed)
    # buildx comes from the engine's own docker config, which the 20.10 CLI never reads.
    version = subprocess.run(
        [str(engine26.tools.docker), "buildx", "version"], env=env, capture_output=True, text=True
    )
    assert version.returncode == 0 and "0.13" in version.stdout, version.stderr
    # A buildx build pushes to the bed's registry through this engine.
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY f /f\n")
    (tmp_path / "f").write_text("engine 26")
    ref = registry_plain.image("bed-engine26", "one")
    build = subprocess.run(
        [str(engine26.tools.docker), "buildx", "build", "--progress", "plain",
         "--provenance=false", "--output",
         f"type=image,name={ref},push=true,registry.insecure=true", str(tmp_path)],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr[-2000:]
    resp = requests.head(
        f"{registry_plain.url}/v2/bed-engine26/manifests/one",
        headers={"Accept": tb.MANIFEST_ACCEPT},
        timeout=10,
    )
    assert resp.status_code == 200


def test_debian13_cosign_and_oras_run(debian13: tb.Debian13Tools) -> None:
    import subprocess

    for tool in (debian13.cosign, debian13.oras):
        answer = subprocess.run([str(tool), "version"], capture_output=True, text=True)
        assert answer.returncode == 0, (tool, answer.stderr)
