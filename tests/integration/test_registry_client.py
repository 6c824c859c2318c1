"""The registry client against real registries: auth, token expiry, scopes, and faults
(429 with Retry-After, 5xx, dropped connections) injected by a proxy in front of one."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

import testbed as tb
from faultproxy import FaultProxy
from seed import seed_image
from tagger.errors import (
    AccessDenied,
    AuthenticationError,
    ExitCode,
    RateLimited,
    RegistryError,
    RegistryUnreachable,
)
from tagger.registry.auth import Credentials
from tagger.registry.client import RegistryClient
from tagger.registry.connect import open_client
from tagger.registry.mediatypes import OCI_MANIFEST
from tagger.registry.reference import Reference
from tagger.registry.transport import RetryPolicy, Transport

FAST = RetryPolicy(attempts=4, backoff=0.01, max_backoff=0.05)


def client_for(
    host: str,
    creds: Credentials | None = None,
    *,
    ca_file: str | None = None,
    retry: RetryPolicy = FAST,
    sleeps: list[float] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> RegistryClient:
    def sleep(seconds: float) -> None:
        if sleeps is not None:
            sleeps.append(seconds)
        time.sleep(min(seconds, 0.05))

    return RegistryClient(
        Transport(host, lambda: creds, ca_file=ca_file, retry=retry, sleep=sleep, clock=clock)
    )


class FakeClock:
    """The transport's clock (monotonic seconds), moved by the test instead of by waiting."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def creds_of(registry: tb.Registry) -> Credentials | None:
    if registry.username is None:
        return None
    return Credentials(username=registry.username, password=registry.password)


def test_round_trip_on_every_registry(registry: tb.Registry) -> None:
    client = client_for(registry.host, creds_of(registry), ca_file=registry.ca_file)
    repo = "client/roundtrip"
    digest = seed_image(client, repo, "1.0.0-1", "one")
    info = client.head_manifest(repo, "1.0.0-1")
    assert info is not None and info.digest == digest
    assert client.head_manifest(repo, "9.9.9-9") is None
    assert "1.0.0-1" in client.list_tags(repo)
    assert client.get_manifest(repo, digest).digest == digest
    assert client.image_config(repo, "1.0.0-1")["created"] == "2026-11-01T00:00:00Z"


def test_oci_manifests_are_found_not_a_false_404(registry_plain: tb.Registry) -> None:
    client = client_for(registry_plain.host)
    digest = seed_image(client, "client/oci", "1.0.0-1", "oci", media_type=OCI_MANIFEST)
    info = client.head_manifest("client/oci", "1.0.0-1")
    assert info is not None
    assert (info.digest, info.media_type) == (digest, OCI_MANIFEST)
    # The trap the Accept header avoids: without the OCI type, Distribution says 404.
    bare = requests.head(
        f"{registry_plain.url}/v2/client/oci/manifests/1.0.0-1",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        timeout=10,
    )
    assert bare.status_code == 404


def test_unknown_repository_has_no_tags(registry_plain: tb.Registry) -> None:
    assert client_for(registry_plain.host).list_tags("client/never-pushed") == []


def test_delete_by_digest_removes_every_tag_on_it(registry_plain: tb.Registry) -> None:
    client = client_for(registry_plain.host)
    digest = seed_image(client, "client/del", "a", "shared")
    seed_image(client, "client/del", "b", "shared")
    seed_image(client, "client/del", "keep", "other")
    client.delete_manifest("client/del", digest)
    assert client.list_tags("client/del") == ["keep"]


def test_wrong_password_is_an_authentication_error(
    registry_basic: tb.Registry, registry_token: tb.Registry
) -> None:
    for registry in (registry_basic, registry_token):
        assert registry.username is not None
        client = client_for(registry.host, Credentials(registry.username, "wrong-pw-123"))
        with pytest.raises(AuthenticationError) as err:
            client.head_manifest("client/auth", "x")
        assert err.value.exit_code == ExitCode.REGISTRY
        assert "wrong-pw-123" not in str(err.value)


def test_token_scope_outside_the_grant_is_access_denied(
    registry_token: tb.Registry, token_issuer: tb.TokenIssuer
) -> None:
    client = client_for(registry_token.host, creds_of(registry_token))
    digest = seed_image(client, "client/scope", "1.0.0-1", "x")
    token_issuer.configure(grant=["pull", "push"])
    with pytest.raises(AccessDenied, match="lack"):
        client.delete_manifest("client/scope", digest)
    assert client.head_manifest("client/scope", "1.0.0-1") is not None


def test_an_expired_token_is_fetched_again_mid_run(
    registry_token: tb.Registry, token_issuer: tb.TokenIssuer
) -> None:
    # The token lives 120 s; the client's clock, not the test, lets them pass. The registry
    # would still accept the old token: only the client's own bookkeeping can refetch it.
    token_issuer.configure(expires_in=120)
    clock = FakeClock()
    client = client_for(registry_token.host, creds_of(registry_token), clock=clock)
    seed_image(client, "client/expiry", "1.0.0-1", "x")
    assert client.head_manifest("client/expiry", "1.0.0-1") is not None
    fetched, issued = client.transport.token_fetches, token_issuer.stats()["issued"]

    clock.now += 100  # within the lifetime: the cached token is used
    assert client.head_manifest("client/expiry", "1.0.0-1") is not None
    assert client.transport.token_fetches == fetched

    clock.now += 20  # 120 s after it was issued: expired mid-run, one fresh token
    assert client.head_manifest("client/expiry", "1.0.0-1") is not None
    assert client.transport.token_fetches == fetched + 1
    assert token_issuer.stats()["issued"] == issued + 1


def test_an_expired_cached_token_is_replaced_after_a_401(
    registry_token: tb.Registry, token_issuer: tb.TokenIssuer
) -> None:
    # The client's cache says the token is good (its clock stands still), the registry says
    # it expired: only the 401 tells. One fresh token, then success.
    client = client_for(registry_token.host, creds_of(registry_token), clock=FakeClock())
    seed_image(client, "client/expiry2", "1.0.0-1", "x")
    assert client.head_manifest("client/expiry2", "1.0.0-1") is not None
    # Swap every cached token for one of the same scopes that the registry has let expire:
    # stamped with an `exp` further back than its leeway (see tests/tokenissuer.py).
    config = token_issuer.stats()["config"]
    token_issuer.configure(expires_in=1, registry_leeway=config["registry_leeway"] + 2)
    for scope, token in client.transport._tokens.items():
        token.value = token_issuer.token(*scope.split())
    token_issuer.configure(
        expires_in=config["expires_in"], registry_leeway=config["registry_leeway"]
    )
    fetched = client.transport.token_fetches

    assert client.head_manifest("client/expiry2", "1.0.0-1") is not None
    assert client.transport.token_fetches == fetched + 1


def test_429_with_retry_after_is_honoured(fault_proxy: FaultProxy) -> None:
    sleeps: list[float] = []
    client = client_for(fault_proxy.host, sleeps=sleeps)
    fault_proxy.throttle(times=2, retry_after=1, method="HEAD")
    assert client.head_manifest("client/throttle", "x") is None
    assert sleeps == [1.0, 1.0]
    assert fault_proxy.count(method="HEAD") == 3


@pytest.mark.parametrize("status", [502, 503, 504])
def test_5xx_are_retried_with_backoff(fault_proxy: FaultProxy, status: int) -> None:
    sleeps: list[float] = []
    client = client_for(fault_proxy.host, sleeps=sleeps)
    fault_proxy.fail(status, times=2, path="/manifests/")
    assert client.head_manifest("client/5xx", "x") is None
    assert len(sleeps) == 2 and sleeps[1] > sleeps[0]


def test_dropped_connections_are_retried(fault_proxy: FaultProxy) -> None:
    client = client_for(fault_proxy.host)
    fault_proxy.reset_connection(times=2, path="/manifests/")
    assert client.head_manifest("client/reset", "x") is None


def test_retries_are_bounded(fault_proxy: FaultProxy) -> None:
    client = client_for(fault_proxy.host)
    fault_proxy.throttle(times=None, retry_after=0, path="/manifests/")
    with pytest.raises(RateLimited):
        client.head_manifest("client/bounded", "x")
    assert fault_proxy.count(path="/manifests/") == FAST.attempts
    fault_proxy.clear()
    fault_proxy.reset_connection(times=None, path="/manifests/")
    with pytest.raises(RegistryUnreachable):
        client.head_manifest("client/bounded", "x")


def test_a_500_is_retried_on_a_read_but_not_on_a_write(fault_proxy: FaultProxy) -> None:
    client = client_for(fault_proxy.host)
    fault_proxy.fail(500, times=2, method="HEAD", path="/manifests/")
    assert client.head_manifest("client/500", "x") is None  # read: retried
    assert fault_proxy.count(method="HEAD", path="/manifests/") == 3
    fault_proxy.fail(500, times=None, method="PUT", path="/manifests/")
    with pytest.raises(RegistryError, match="HTTP 500"):
        seed_image(client, "client/500", "1.0.0-1", "x")  # write: a 500 may have taken effect
    assert fault_proxy.count(method="PUT", path="/manifests/") == 1


def test_unreachable_registry() -> None:
    with pytest.raises(RegistryUnreachable) as err:
        client_for("127.0.0.1:9").head_manifest("x/y", "z")
    assert err.value.exit_code == ExitCode.REGISTRY


def test_tls_needs_the_ca(registry_tls: tb.Registry) -> None:
    with pytest.raises(RegistryUnreachable, match="TLS"):
        # Not loopback-by-name: the HTTP fallback is for loopback only, so use the IP but
        # insist on verification by giving the system bundle.
        client_for(registry_tls.host, ca_file=requests.certs.where()).head_manifest("a/b", "c")
    assert client_for(registry_tls.host, ca_file=registry_tls.ca_file).list_tags("a/b") == []


def test_reference_normalisation_reaches_the_right_host(registry_plain: tb.Registry) -> None:
    ref = Reference.parse_repository(f"{registry_plain.host}/client/ref")
    assert ref.api_host == registry_plain.host


def test_every_thread_keeps_its_connection(registry_plain: tb.Registry) -> None:
    # 24 threads, more than the default pool of 16: a pool sized to the concurrency never
    # has to drop a connection that a later request then opens again.
    threads = 24
    client, _ = open_client(
        Reference.parse_repository(f"{registry_plain.host}/client/pool"), {}, concurrency=threads
    )
    repo = "client/pool"
    seed_image(client, repo, "1.0.0-1", "pool")
    barrier = threading.Barrier(threads)

    def head(_: int) -> None:
        barrier.wait(timeout=30)  # a wave: every thread wants a connection at once
        assert client.head_manifest(repo, "1.0.0-1") is not None

    with ThreadPoolExecutor(max_workers=threads) as pool:
        for _wave in range(5):
            list(pool.map(head, range(threads)))
    # The connections urllib3 opened to the registry over plain HTTP (the scheme probe's
    # HTTPS attempt has a pool of its own).
    pools = client.transport.session.get_adapter(client.transport.base_url()).poolmanager.pools
    # urllib3's RecentlyUsedContainer refuses plain iteration: .keys() is its way.
    keys = pools.keys()
    opened = sum(pools[key].num_connections for key in keys if key.key_scheme == "http")
    assert 1 <= opened <= threads
