"""Hostile input without a server: lint's FROM chains, realm judging, redaction forms.

Pure checks of the pieces ``tests/integration/test_hostile.py`` drives through a hostile
registry; here the cases that need no network (issue 15, items 1-3 and 10).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from clirun import run_cli
from tagger.errors import RegistryError, redact, register_secret
from tagger.registry.auth import Credentials
from tagger.registry.reference import is_loopback_host
from tagger.registry.transport import realm_target


@pytest.mark.timeout(60)
def test_lint_of_16000_chained_stages_finishes(tmp_path: Path) -> None:
    """Issue 15.10: quadratic before (11 s for 4,000 stages here, so some 3 min for 16,000:
    past the timeout), linear now (0.5 s for 4,000)."""
    n = 16_000
    dockerfile = tmp_path / "Dockerfile"
    lines = ["FROM scratch AS s0", *(f"FROM s{i - 1} AS s{i}" for i in range(1, n))]
    dockerfile.write_text("\n".join(lines) + "\nUSER 10001\n")
    result = run_cli(["lint", str(dockerfile), "--format", "json"])
    assert result.code == 0, result.stderr


@pytest.mark.parametrize(
    "realm",
    ["http://[::1]@127.0.0.2:5001/token", "https://localhost@evil.example/token"],
)
def test_realm_with_userinfo_is_refused(realm: str) -> None:
    with pytest.raises(RegistryError, match="user info"):
        realm_target(realm, "127.0.0.1:5000")


def test_realm_judged_by_the_host_it_reaches() -> None:
    assert not realm_target("http://auth.example:80/t", "127.0.0.1:5000").send_credentials
    assert realm_target("http://127.0.0.2:80/t", "127.0.0.1:5000").host == "127.0.0.2:80"
    assert not is_loopback_host("[::1]@auth.example")


def test_every_form_of_a_credential_is_redacted() -> None:
    creds = Credentials(username="alice", password="pa€€word-1234", registry_token="tok\n42xyz")
    basic = creds.basic_header()
    assert basic is not None
    for text in (basic, repr(basic), repr("tok\n42xyz"), '"pa\\u20ac\\u20acword-1234"'):
        assert "***" in redact(text), text
    assert redact("https://ghp_SECRET1@ghcr.io/v2/") == "https://***@ghcr.io/v2/"
    register_secret("quoted secret&=x")
    assert redact("?password=quoted+secret%26%3Dx") == "?password=***"
