"""Shared pytest fixtures: the real test bed (Docker engine + four registries, one of
them behind a token server) and a fault-injecting proxy.

The fixtures start real processes (see ``tests/testbed.py``) the first time a test asks
for them, once per session (once per worker under pytest-xdist), and stop them at the
end. A bed that cannot start makes every test that needs it an ERROR with the reason and
the service's log tail: it is never skipped, with ``CI=true`` or without.
``fault_proxy`` (``tests/faultproxy.py``) is a thread of this process, new for every test.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

# pytest puts this directory on sys.path for a conftest outside a package ("prepend"
# import mode), so the bed modules import by their file names, as they do from a shell.
# (isort counts faultproxy as third-party: pyproject's known-first-party lacks it.)
import faultproxy
import testbed as tb

if TYPE_CHECKING:
    import docker

_STARTUP_SECONDS: list[float] = []


@pytest.fixture(scope="session")
def testbed() -> Iterator[tb.Testbed]:
    """The whole bed, started once for the session and always stopped afterwards."""
    started = time.monotonic()
    bed = tb.start()
    _STARTUP_SECONDS.append(time.monotonic() - started)
    try:
        yield bed
    finally:
        bed.stop()


@pytest.fixture(scope="session")
def engine(testbed: tb.Testbed) -> tb.Engine:
    return testbed.engine


@pytest.fixture(scope="session")
def docker_client(engine: tb.Engine) -> Iterator[docker.DockerClient]:
    """A docker SDK client on the bed's engine (never on the host's default engine)."""
    import docker

    # Builds and pushes of the tiny test images take seconds; the SDK's default 60 s
    # read timeout is only hit by a hung engine, and then a clear error beats a hang.
    client = docker.DockerClient(base_url=engine.host, timeout=120)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session")
def engine26(testbed: tb.Testbed) -> tb.ModernEngine:
    """Debian 13's engine 26 with the containerd image store and buildx, started the first
    time a test asks (suites that do not need it pay nothing) and stopped with the bed.
    A missing toolchain is an ERROR naming the fetch script, never a skip."""
    return tb.start_engine26(testbed)


@pytest.fixture(scope="session")
def debian13(engine26: tb.ModernEngine) -> tb.Debian13Tools:
    """Debian 13's cosign and oras (``.cosign``, ``.oras``), beside its engine."""
    return engine26.tools


#: The engines the build-push, builder and signal suites run on (ids of ``bed_engine``).
ENGINES = ("engine20", "engine26")


@pytest.fixture(scope="session", params=ENGINES)
def bed_engine(request: pytest.FixtureRequest, testbed: tb.Testbed) -> tb.BedEngine:
    """Each engine in turn: Debian 12's 20.10, then Debian 13's 26 (containerd store).
    Session scope groups the tests by engine, so the 26 engine starts once, late."""
    if request.param == "engine20":
        return tb.bed_engine(testbed, None)
    modern: tb.ModernEngine = request.getfixturevalue("engine26")
    return tb.bed_engine(testbed, modern)


@pytest.fixture(scope="session")
def registry_plain(testbed: tb.Testbed) -> tb.Registry:
    """Plain HTTP, anonymous."""
    return testbed.plain


@pytest.fixture(scope="session")
def registry_basic(testbed: tb.Testbed) -> tb.Registry:
    """Plain HTTP with htpasswd basic auth (``username``/``password`` on the object)."""
    return testbed.basic


@pytest.fixture(scope="session")
def registry_tls(testbed: tb.Testbed) -> tb.Registry:
    """HTTPS with a certificate from the bed's own CA (``ca_file``), anonymous."""
    return testbed.tls


@pytest.fixture(scope="session")
def registry_token(testbed: tb.Testbed) -> tb.Registry:
    """Plain HTTP with Docker token auth: ``token_realm``/``token_service`` on the object,
    ``username``/``password`` for the realm; ``auth`` is a ``requests`` bearer handler."""
    return testbed.token


@pytest.fixture
def token_issuer(testbed: tb.Testbed) -> Iterator[tb.TokenIssuer]:
    """The token registry's realm, with counters at zero and its start-up configuration;
    whatever the test changes (``configure(expires_in=2)``) is undone afterwards."""
    issuer = testbed.token_issuer
    issuer.reset()
    try:
        yield issuer
    finally:
        issuer.reset()


@pytest.fixture
def fault_proxy(registry_plain: tb.Registry) -> Iterator[faultproxy.FaultProxy]:
    """A fresh fault-injecting proxy in front of the plain registry (no faults, counters at
    zero, seed 0), stopped after the test."""
    with faultproxy.FaultProxy(registry_plain.host, seed=0) as proxy:
        yield proxy


@pytest.fixture(params=["plain", "basic", "tls", "token"])
def registry(request: pytest.FixtureRequest) -> tb.Registry:
    """Each of the four registries in turn."""
    value: tb.Registry = request.getfixturevalue(f"registry_{request.param}")
    return value


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _STARTUP_SECONDS:
        terminalreporter.write_line(f"test bed: started in {_STARTUP_SECONDS[0]:.1f} s")
