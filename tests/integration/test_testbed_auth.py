"""Proves the bed's token-auth registry and its fault proxy with independent clients:
``requests`` for the HTTP exchanges, the Docker engine and skopeo for real pushes.

Does I/O: talks HTTP to the bed's loopback services, builds and pushes images, runs
openssl and skopeo.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import time
from typing import TYPE_CHECKING, Any

import pytest
import requests

import faultproxy
import testbed as tb

if TYPE_CHECKING:
    import docker

pytestmark = pytest.mark.integration

TAG = "1.0.0-1"


def _b64url_json(part: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def _fetch_token(
    registry: tb.Registry, *scopes: str, auth: tuple[str, str] | None = None
) -> requests.Response:
    assert registry.token_realm is not None
    params = [("service", registry.token_service), *(("scope", s) for s in scopes)]
    return requests.get(registry.token_realm, params=params, auth=auth, timeout=10)


def _user(registry: tb.Registry) -> tuple[str, str]:
    assert registry.username is not None and registry.password is not None
    return (registry.username, registry.password)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Accept": tb.MANIFEST_ACCEPT}


def _push(
    client: docker.DockerClient, reference: str, content: str, auth: dict[str, str] | None = None
) -> str:
    tb.build_scratch_image(client, reference, content)
    return tb.push_image(client, reference, auth_config=auth).digest


# --------------------------------------------------------------------------- token registry


def test_token_registry_challenges_then_accepts_a_token(
    registry_token: tb.Registry, token_issuer: tb.TokenIssuer
) -> None:
    base = registry_token.url
    v2 = requests.get(f"{base}/v2/", timeout=10)
    assert v2.status_code == 401
    scheme, params = tb.parse_challenge(v2.headers["WWW-Authenticate"])
    assert scheme == "bearer"
    assert params == {"realm": token_issuer.realm, "service": token_issuer.service}

    url = f"{base}/v2/auth/one/manifests/{TAG}"
    denied = requests.get(url, headers={"Accept": tb.MANIFEST_ACCEPT}, timeout=10)
    assert denied.status_code == 401
    scheme, params = tb.parse_challenge(denied.headers["WWW-Authenticate"])
    assert (scheme, params["scope"]) == ("bearer", "repository:auth/one:pull")
    assert params["realm"] == registry_token.token_realm

    answer = _fetch_token(registry_token, params["scope"], auth=_user(registry_token))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"token", "access_token", "expires_in", "issued_at"}
    assert body["token"] == body["access_token"]
    assert body["expires_in"] == 300

    header_b64, claims_b64, _signature = body["token"].split(".")
    header, claims = _b64url_json(header_b64), _b64url_json(claims_b64)
    assert (header["typ"], header["alg"]) == ("JWT", "RS256")
    cert_der = base64.b64decode(header["x5c"][0])
    pem = token_issuer.cert_file.read_text()
    assert base64.b64encode(cert_der).decode() in "".join(pem.splitlines())
    assert claims["aud"] == token_issuer.service  # a string: Distribution 2.8.2 wants one
    assert claims["iss"] == token_issuer.issuer
    assert claims["sub"] == registry_token.username
    assert claims["access"] == [{"type": "repository", "name": "auth/one", "actions": ["pull"]}]
    assert claims["nbf"] <= claims["iat"] <= time.time() + 1
    assert claims["jti"]

    # Authorised now: the manifest is simply unknown.
    allowed = requests.get(url, headers=_bearer(body["token"]), timeout=10)
    assert allowed.status_code == 404, allowed.text
    assert allowed.json()["errors"][0]["code"] in ("MANIFEST_UNKNOWN", "NAME_UNKNOWN")
    assert token_issuer.stats()["by_user"] == {registry_token.username: 1}


def test_a_request_outside_the_tokens_scope_is_401(
    registry_token: tb.Registry, token_issuer: tb.TokenIssuer
) -> None:
    token = token_issuer.token("repository:auth/mine:pull")
    base = f"{registry_token.url}/v2"

    other = requests.get(f"{base}/auth/other/tags/list", headers=_bearer(token), timeout=10)
    assert other.status_code == 401
    _, params = tb.parse_challenge(other.headers["WWW-Authenticate"])
    assert params["scope"] == "repository:auth/other:pull"
    assert params["error"] == "insufficient_scope"

    upload = requests.post(f"{base}/auth/mine/blobs/uploads/", headers=_bearer(token), timeout=10)
    assert upload.status_code == 401
    assert "push" in tb.parse_challenge(upload.headers["WWW-Authenticate"])[1]["scope"]

    # DELETE needs the delete action, which pull (and push) do not include.
    digest = "sha256:" + "0" * 64
    delete = requests.delete(
        f"{base}/auth/mine/manifests/{digest}", headers=_bearer(token), timeout=10
    )
    assert delete.status_code == 401
    assert tb.parse_challenge(delete.headers["WWW-Authenticate"])[1]["scope"] == (
        "repository:auth/mine:delete"
    )

    # The catalog is a resource of its own type.
    catalog = requests.get(f"{base}/_catalog", headers=_bearer(token), timeout=10)
    assert catalog.status_code == 401
    assert tb.parse_challenge(catalog.headers["WWW-Authenticate"])[1]["scope"] == (
        "registry:catalog:*"
    )


def test_wrong_password_is_401_and_anonymous_gets_a_token_without_access(
    registry_token: tb.Registry, token_issuer: tb.TokenIssuer
) -> None:
    user, password = _user(registry_token)
    scope = "repository:auth/anon:pull"
    wrong = _fetch_token(registry_token, scope, auth=(user, password + "x"))
    assert wrong.status_code == 401
    assert wrong.headers["WWW-Authenticate"].startswith("Basic ")
    assert _fetch_token(registry_token, scope, auth=("nobody", password)).status_code == 401

    anonymous = _fetch_token(registry_token, scope)
    assert anonymous.status_code == 200
    token = anonymous.json()["token"]
    claims = _b64url_json(token.split(".")[1])
    assert (claims["sub"], claims["access"]) == ("", [])

    resp = requests.get(
        f"{registry_token.url}/v2/auth/anon/tags/list", headers=_bearer(token), timeout=10
    )
    assert resp.status_code == 401
    assert tb.parse_challenge(resp.headers["WWW-Authenticate"])[1]["error"] == "insufficient_scope"
    # ... while the token is a valid one: /v2/ only needs authentication.
    assert requests.get(f"{registry_token.url}/v2/", headers=_bearer(token), timeout=10).ok

    stats = token_issuer.stats()
    assert (stats["denied"], stats["anonymous"], stats["issued"]) == (2, 1, 1)


def test_a_token_stops_working_after_its_lifetime(
    registry_token: tb.Registry, token_issuer: tb.TokenIssuer
) -> None:
    # Distribution accepts a token 60 s past `exp`; the issuer stamps `exp` that much
    # earlier, so `expires_in` is the real lifetime (see tests/tokenissuer.py). Both ends
    # are checked without a clock: the lifetime from the token's own claims, and the end of
    # it with a token whose lifetime is already over.
    scope = "repository:auth/expiry:pull"
    url = f"{registry_token.url}/v2/auth/expiry/tags/list"
    token_issuer.configure(expires_in=2)
    leeway = token_issuer.stats()["config"]["registry_leeway"]  # Distribution's: 60 s
    token = token_issuer.token(scope)
    claims = _b64url_json(token.split(".")[1])
    # `exp` is rounded up to a whole second, `iat` down: 2 s of life, or 3 s at most.
    assert claims["exp"] + leeway - claims["iat"] in (2, 3)
    assert requests.get(url, headers=_bearer(token), timeout=10).status_code == 404

    # `exp` stamped `leeway + 2` s early: a 1 s lifetime that is over before the token is
    # even issued (the registry's last second, exp + leeway, is ceil(now) - 1).
    token_issuer.configure(expires_in=1, registry_leeway=leeway + 2)
    over = token_issuer.token(scope)
    expired = requests.get(url, headers=_bearer(over), timeout=10)
    assert expired.status_code == 401
    assert tb.parse_challenge(expired.headers["WWW-Authenticate"])[1]["error"] == "invalid_token"

    # Re-authenticating gives a working token again, and the issuer counted all three.
    token_issuer.configure(expires_in=2, registry_leeway=leeway)
    fresh = token_issuer.token(scope)
    assert requests.get(url, headers=_bearer(fresh), timeout=10).status_code == 404
    stats = token_issuer.stats()
    assert stats["issued"] == 3
    assert [t["expires_in"] for t in stats["recent"]] == [2, 1, 2]


def test_the_grant_cap_withholds_delete(
    registry_token: tb.Registry,
    token_issuer: tb.TokenIssuer,
    docker_client: docker.DockerClient,
) -> None:
    reference = registry_token.image("auth/delete", TAG)
    digest = _push(docker_client, reference, "delete through a token\n", registry_token.auth_config)
    url = f"{registry_token.url}/v2/auth/delete/manifests/{digest}"

    token_issuer.configure(grant=["pull", "push"])
    capped = token_issuer.token("repository:auth/delete:pull,push,delete")
    claims = _b64url_json(capped.split(".")[1])
    assert claims["access"][0]["actions"] == ["pull", "push"]
    assert requests.delete(url, headers=_bearer(capped), timeout=10).status_code == 401

    token_issuer.configure(grant=None)
    full = token_issuer.token("repository:auth/delete:delete")
    resp = requests.delete(url, headers=_bearer(full), timeout=10)
    assert resp.status_code == 202, resp.text
    # `*` is accepted for every action, too.
    star = token_issuer.token("repository:auth/delete:*")
    assert requests.get(url, headers=_bearer(star), timeout=10).status_code == 404


def test_the_engine_pushes_with_auth_config_and_fetches_tokens(
    registry_token: tb.Registry,
    token_issuer: tb.TokenIssuer,
    docker_client: docker.DockerClient,
) -> None:
    reference = registry_token.image("auth/engine", TAG)
    tb.build_scratch_image(docker_client, reference, "pushed through the token dance\n")
    with pytest.raises(tb.PushError, match="failed"):
        tb.push_image(docker_client, reference, auth_config=None)
    before = token_issuer.stats()
    assert before["anonymous"] >= 1 and before["issued"] == before["anonymous"]

    digest = tb.push_image(docker_client, reference, auth_config=registry_token.auth_config).digest
    after = token_issuer.stats()
    assert after["by_user"].get(registry_token.username, 0) >= 1
    granted = [a for t in after["recent"] if t["sub"] for a in t["access"]]
    assert {"type": "repository", "name": "auth/engine", "actions": ["push", "pull"]} in granted

    # Read back with the bed's requests handler (challenge, token, retry).
    resp = requests.get(
        f"{registry_token.url}/v2/auth/engine/manifests/{TAG}",
        headers={"Accept": tb.MANIFEST_ACCEPT},
        auth=registry_token.auth,
        timeout=10,
    )
    assert resp.status_code == 200
    assert [r.status_code for r in resp.history] == [401]
    assert resp.headers["Docker-Content-Digest"] == digest
    assert f"sha256:{hashlib.sha256(resp.content).hexdigest()}" == digest


def test_skopeo_copies_into_the_token_registry(
    registry_plain: tb.Registry,
    registry_token: tb.Registry,
    docker_client: docker.DockerClient,
    token_issuer: tb.TokenIssuer,
) -> None:
    skopeo = shutil.which("skopeo")
    assert skopeo, "skopeo is not installed: apt-get install skopeo (scripts/test.sh does)"
    source = registry_plain.image("auth/skopeo-src", TAG)
    _push(docker_client, source, "copied by skopeo\n")
    user, password = _user(registry_token)
    target = registry_token.image("auth/skopeo-dst", TAG)
    proc = subprocess.run(
        [skopeo, "--insecure-policy", "copy", "--src-tls-verify=false",
         "--dest-tls-verify=false", f"--dest-creds={user}:{password}",
         f"docker://{source}", f"docker://{target}"],
        capture_output=True, text=True, timeout=120, check=False,
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(token_issuer.root)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert token_issuer.stats()["by_user"].get(user, 0) >= 1

    src = requests.get(
        f"{registry_plain.url}/v2/auth/skopeo-src/manifests/{TAG}",
        headers={"Accept": tb.MANIFEST_ACCEPT},
        timeout=10,
    )
    dst = requests.get(
        f"{registry_token.url}/v2/auth/skopeo-dst/manifests/{TAG}",
        headers={"Accept": tb.MANIFEST_ACCEPT},
        auth=registry_token.auth,
        timeout=10,
    )
    assert dst.status_code == 200, dst.text
    assert json.loads(dst.content)["layers"] == json.loads(src.content)["layers"]


def test_tokens_are_signed_like_openssl_signs(token_issuer: tb.TokenIssuer) -> None:
    token = token_issuer.token("repository:auth/sig:pull")
    header_b64, claims_b64, signature_b64 = token.split(".")
    signature = base64.urlsafe_b64decode(signature_b64 + "=" * (-len(signature_b64) % 4))
    # PKCS#1 v1.5 is deterministic: the stdlib signature must be openssl's, byte for byte.
    proc = subprocess.run(
        ["openssl", "dgst", "-sha256", "-sign", str(token_issuer.key_file)],
        input=f"{header_b64}.{claims_b64}".encode(),
        capture_output=True,
        timeout=30,
        check=True,
    )
    assert proc.stdout == signature


# --------------------------------------------------------------------------- fault proxy


def test_the_proxy_passes_an_upload_through_and_keeps_it_on_the_proxy(
    fault_proxy: faultproxy.FaultProxy, registry_plain: tb.Registry
) -> None:
    repo = "proxy/upload"
    started = requests.post(f"{fault_proxy.url}/v2/{repo}/blobs/uploads/", timeout=10)
    assert started.status_code == 202, started.text
    location = started.headers["Location"]
    assert location.startswith(f"{fault_proxy.url}/v2/{repo}/blobs/uploads/"), location
    direct = requests.post(f"{registry_plain.url}/v2/{repo}/blobs/uploads/", timeout=10)
    assert direct.headers["Location"].startswith(registry_plain.url)  # so it was rewritten

    blob = os.urandom(4 * 1024 * 1024 + 17)
    digest = f"sha256:{hashlib.sha256(blob).hexdigest()}"
    # A generator body goes out chunked, as the Docker engine sends blob uploads.
    pieces = (blob[i : i + 65536] for i in range(0, len(blob), 65536))
    patched = requests.patch(location, data=pieces, timeout=30)
    assert patched.status_code == 202, patched.text
    done = requests.put(f"{patched.headers['Location']}&digest={digest}", timeout=30)
    assert done.status_code == 201, done.text

    stored = requests.head(f"{registry_plain.url}/v2/{repo}/blobs/{digest}", timeout=10)
    assert stored.status_code == 200
    assert int(stored.headers["Content-Length"]) == len(blob)
    fetched = requests.get(f"{fault_proxy.url}/v2/{repo}/blobs/{digest}", timeout=30)
    assert fetched.content == blob
    assert fault_proxy.count("PATCH") == 1 and fault_proxy.count("PUT", r"/uploads/") == 1
    assert [(s.method, s.outcome) for s in fault_proxy.seen] == [
        ("POST", 202), ("PATCH", 202), ("PUT", 201), ("GET", 200),
    ]  # fmt: skip


def test_the_proxy_throttles_the_next_requests_with_retry_after(
    fault_proxy: faultproxy.FaultProxy,
) -> None:
    fault = fault_proxy.throttle(2, retry_after=3)
    answers = [requests.get(f"{fault_proxy.url}/v2/", timeout=10) for _ in range(3)]
    assert [r.status_code for r in answers] == [429, 429, 200]
    assert [r.headers.get("Retry-After") for r in answers] == ["3", "3", None]
    assert answers[0].json()["errors"][0]["code"] == "TOOMANYREQUESTS"
    assert fault.hits == 2
    assert [s.outcome for s in fault_proxy.seen] == [429, 429, 200]
    assert fault_proxy.count("GET", "^/v2/$") == 3


@pytest.mark.parametrize("status", [502, 503, 504])
def test_the_proxy_answers_a_server_error_once(
    fault_proxy: faultproxy.FaultProxy, status: int
) -> None:
    fault_proxy.fail(status, times=1)
    first = requests.get(f"{fault_proxy.url}/v2/", timeout=10)
    assert first.status_code == status
    assert first.json()["errors"][0]["code"] == "UNAVAILABLE"
    assert requests.get(f"{fault_proxy.url}/v2/", timeout=10).status_code == 200


def test_the_proxy_fails_a_seeded_fraction_of_requests(
    fault_proxy: faultproxy.FaultProxy,
) -> None:
    def run() -> list[int]:
        fault_proxy.fail(503, probability=0.5)
        return [requests.get(f"{fault_proxy.url}/v2/", timeout=10).status_code for _ in range(40)]

    first = run()
    assert 5 <= first.count(503) <= 35 and set(first) == {200, 503}, first
    fault_proxy.reset()
    assert run() == first  # same seed, same requests: same faults
    fault_proxy.reset(seed=1)
    assert run() != first


def test_the_proxy_resets_a_connection(fault_proxy: faultproxy.FaultProxy) -> None:
    fault_proxy.reset_connection(times=1)
    with requests.Session() as session:
        with pytest.raises(requests.ConnectionError):
            session.get(f"{fault_proxy.url}/v2/", timeout=10)
        assert session.get(f"{fault_proxy.url}/v2/", timeout=10).status_code == 200
    assert [s.outcome for s in fault_proxy.seen] == ["reset", 200]


def test_the_proxy_delays_requests(fault_proxy: faultproxy.FaultProxy) -> None:
    # Lower bounds only: the proxy sleeps before it answers, so a delayed answer cannot
    # come sooner, however loaded the machine. Whether a request was delayed at all is
    # read from the fault's own counters, not from a clock.
    delay = fault_proxy.delay(0.6, times=1)
    started = time.monotonic()
    assert requests.get(f"{fault_proxy.url}/v2/", timeout=10).status_code == 200
    assert time.monotonic() - started >= 0.6
    assert (delay.hits, delay.times) == (1, 0)
    assert requests.get(f"{fault_proxy.url}/v2/", timeout=10).status_code == 200
    assert delay.hits == 1  # used up: the second request went through undelayed

    fault_proxy.delay(2, times=1)
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.get(f"{fault_proxy.url}/v2/", timeout=0.5)

    # A delay stacks with a later fault: it answers, late.
    fault_proxy.delay(0.3, times=1)
    fault_proxy.fail(503, times=1)
    started = time.monotonic()
    assert requests.get(f"{fault_proxy.url}/v2/", timeout=10).status_code == 503
    assert time.monotonic() - started >= 0.3


def test_the_proxy_applies_faults_by_method_and_path(
    fault_proxy: faultproxy.FaultProxy,
) -> None:
    base = f"{fault_proxy.url}/v2"
    digest = "sha256:" + "0" * 64
    deletes = fault_proxy.fail(503, method="DELETE")
    manifests = fault_proxy.throttle(None, retry_after=1, path=r"/manifests/")

    assert requests.get(f"{base}/", timeout=10).status_code == 200
    assert requests.get(f"{base}/proxy/filter/tags/list", timeout=10).status_code == 404
    assert requests.get(f"{base}/proxy/filter/manifests/{TAG}", timeout=10).status_code == 429
    assert requests.head(f"{base}/proxy/filter/manifests/{TAG}", timeout=10).status_code == 429
    # The first matching fault answers: DELETE meets the 503 before the path's 429.
    assert requests.delete(f"{base}/proxy/filter/manifests/{digest}", timeout=10).status_code == 503
    assert (deletes.hits, manifests.hits) == (1, 2)

    assert fault_proxy.count("DELETE") == 1
    assert fault_proxy.count("GET|HEAD", "/manifests/") == 2
    assert fault_proxy.counts[("GET", "/v2/")] == 1

    fault_proxy.clear()
    assert requests.get(f"{base}/proxy/filter/manifests/{TAG}", timeout=10).status_code == 404


def test_the_engine_pushes_through_the_proxy(
    fault_proxy: faultproxy.FaultProxy,
    registry_plain: tb.Registry,
    docker_client: docker.DockerClient,
) -> None:
    # dockerd treats 127.0.0.0/8 as insecure, so plain HTTP on the proxy's port works.
    digest = _push(docker_client, fault_proxy.image("proxy/engine", TAG), "through the proxy\n")
    assert fault_proxy.count("PUT", r"/proxy/engine/manifests/") == 1
    assert fault_proxy.count("PATCH|PUT", r"/blobs/uploads/") >= 2
    assert all(s.fault is None for s in fault_proxy.seen)

    resp = requests.get(
        f"{registry_plain.url}/v2/proxy/engine/manifests/{TAG}",
        headers={"Accept": tb.MANIFEST_ACCEPT},
        timeout=10,
    )
    assert resp.headers["Docker-Content-Digest"] == digest


def test_the_engine_reports_an_injected_manifest_error_in_the_stream(
    fault_proxy: faultproxy.FaultProxy, docker_client: docker.DockerClient
) -> None:
    # The engine retries blob uploads (after ~5 s) but not the manifest PUT: one 503 there
    # fails the push, and only inside the stream (push() itself does not raise).
    fault_proxy.fail(503, times=1, method="PUT", path=r"/manifests/")
    with pytest.raises(tb.PushError, match="503"):
        _push(docker_client, fault_proxy.image("proxy/fails", TAG), "never tagged\n")
    assert fault_proxy.count("PUT", r"/manifests/") == 1
