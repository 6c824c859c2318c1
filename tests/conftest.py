"""Shared pytest fixtures: the real test bed (Docker engine + three registries).

The fixtures start real processes (see ``tests/testbed.py``) the first time a test asks
for them, once per session (once per worker under pytest-xdist), and stop them at the
end. A bed that cannot start makes every test that needs it an ERROR with the reason and
the service's log tail: it is never skipped, with ``CI=true`` or without.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

# pytest puts this directory on sys.path for a conftest outside a package ("prepend"
# import mode), so the bed module imports by its file name, as it does from a shell.
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


@pytest.fixture(params=["plain", "basic", "tls"])
def registry(request: pytest.FixtureRequest) -> tb.Registry:
    """Each of the three registries in turn."""
    value: tb.Registry = request.getfixturevalue(f"registry_{request.param}")
    return value


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _STARTUP_SECONDS:
        terminalreporter.write_line(f"test bed: started in {_STARTUP_SECONDS[0]:.1f} s")
