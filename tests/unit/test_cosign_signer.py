"""``tagger.build.signing``: the command lines imgtag gives cosign, and its errors.

cosign here is a small shell script that records its arguments and answers as told:
keyless signing needs a CI's OIDC token and Sigstore's services, so it cannot run here,
and this is what can be checked of it (the real cosign signs and verifies with a key in
``tests/integration/test_signing.py``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tagger.build.signing import Cosign, SignSettings, signature_tag
from tagger.errors import ExitCode, RegistryError, UsageError, redact

DIGEST = "sha256:" + "ab" * 32
PASSWORD = "pw-" + "S3cr3t" * 2


def fake_cosign(tmp_path: Path, *, exit_code: int = 0, says: str = "") -> tuple[Path, Path]:
    log = tmp_path / "argv.jsonl"
    script = tmp_path / "cosign"
    script.write_text(
        "#!/usr/bin/env python3\n"
        "import json, os, sys\n"
        f"open({str(log)!r}, 'a').write(json.dumps({{'argv': sys.argv[1:], "
        "'password': os.environ.get('COSIGN_PASSWORD')}) + '\\n')\n"
        f"sys.stderr.write({says!r})\n"
        f"sys.exit({exit_code} if sys.argv[1] != 'version' else 0)\n"
    )
    script.chmod(0o755)
    return script, log


def calls(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_a_key_is_checked_with_public_key_and_signs_by_digest(tmp_path: Path) -> None:
    script, log = fake_cosign(tmp_path)
    env = {"IMGTAG_COSIGN": str(script), "COSIGN_PASSWORD": PASSWORD, "PATH": "/usr/bin:/bin"}
    cosign = Cosign(SignSettings("cosign.key", tlog=False), env, plain_http=True)
    cosign.check()
    lines: list[str] = []
    cosign.sign("127.0.0.1:5000/team/app", DIGEST, recursive=True, progress=lines.append)
    check, sign = calls(log)
    assert check["argv"] == ["public-key", "--key", "cosign.key"]
    assert sign["argv"] == [
        "sign", "--yes", "--key", "cosign.key", "--tlog-upload=false", "--recursive",
        "--allow-http-registry", f"127.0.0.1:5000/team/app@{DIGEST}",
    ]  # fmt: skip
    assert sign["password"] == PASSWORD, "COSIGN_PASSWORD passes through to cosign"
    assert redact(f"x {PASSWORD}") == "x ***", "and is registered for redaction"


def test_keyless_in_github_actions_signs_with_the_ambient_token(tmp_path: Path) -> None:
    script, log = fake_cosign(tmp_path)
    env = {
        "IMGTAG_COSIGN": str(script),
        "ACTIONS_ID_TOKEN_REQUEST_URL": "https://token.actions.example/",
        "PATH": "/usr/bin:/bin",
    }
    cosign = Cosign(SignSettings(None), env, ca_file="/etc/ca.pem")
    cosign.check()
    cosign.sign("ghcr.io/acme/app", DIGEST, recursive=False, progress=lambda _: None)
    version, sign = calls(log)
    assert version["argv"] == ["version"]
    assert sign["argv"] == [
        "sign", "--yes", "--registry-cacert", "/etc/ca.pem", f"ghcr.io/acme/app@{DIGEST}",
    ]  # fmt: skip


def test_keyless_without_an_oidc_token_is_exit_2(tmp_path: Path) -> None:
    script, _log = fake_cosign(tmp_path)
    cosign = Cosign(SignSettings(None), {"IMGTAG_COSIGN": str(script), "PATH": "/usr/bin"})
    with pytest.raises(UsageError, match="id-token: write") as err:
        cosign.check()
    assert err.value.exit_code == ExitCode.USAGE


def test_a_key_cosign_cannot_use_is_exit_2_and_a_failed_sign_is_exit_5(tmp_path: Path) -> None:
    script, _log = fake_cosign(
        tmp_path, exit_code=1, says=f"Error: decrypt: encrypted: decryption failed {PASSWORD}\n"
    )
    env = {"IMGTAG_COSIGN": str(script), "COSIGN_PASSWORD": PASSWORD}
    cosign = Cosign(SignSettings("k.key"), env)
    with pytest.raises(UsageError) as bad_key:
        cosign.check()
    assert "decryption failed" in str(bad_key.value) and PASSWORD not in redact(str(bad_key.value))
    with pytest.raises(RegistryError) as refused:
        cosign.sign("r.example/a/b", DIGEST, recursive=False, progress=lambda _: None)
    assert refused.value.exit_code == ExitCode.REGISTRY
    assert "final tag was not written" in str(refused.value)


def test_an_env_key_is_registered_for_redaction(tmp_path: Path) -> None:
    key = "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nZm9vYmFyYmF6cXV4eHl6enk0Mg==\n"
    Cosign(SignSettings("env://MY_KEY"), {"MY_KEY": key})
    assert "Zm9vYmFyYmF6cXV4eHl6enk0Mg==" not in redact("line Zm9vYmFyYmF6cXV4eHl6enk0Mg==")


def test_cosign_missing_is_exit_2_naming_the_installer(tmp_path: Path) -> None:
    cosign = Cosign(SignSettings("k.key"), {"IMGTAG_COSIGN": str(tmp_path / "none")})
    with pytest.raises(UsageError, match="cosign-installer"):
        cosign.check()


def test_signature_tag_is_cosigns_scheme() -> None:
    assert signature_tag(DIGEST) == "sha256-" + "ab" * 32 + ".sig"
