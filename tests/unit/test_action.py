"""``action.yml``, the composite GitHub Action.

Valid against check-jsonschema's vendored github-action schema (no network), and wired as
promised: the inputs the contract names, outputs read from the build-push step (which
appends them to ``$GITHUB_OUTPUT``), inputs passed to the shell through ``env:`` only, and
the build step's script really builds the argument list it should (run by bash with
``imgtag`` replaced by a recorder of its arguments: the script is under test, not imgtag).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML  # comes with check-jsonschema

ROOT = Path(__file__).resolve().parents[2]
ACTION = ROOT / "action.yml"
CHECK = Path(sys.executable).parent / "check-jsonschema"


def _action() -> Any:
    return YAML(typ="safe").load(ACTION.read_text())


def _check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CHECK), "--builtin-schema", "vendor.github-actions", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_action_validates_against_the_github_action_schema() -> None:
    result = _check(ACTION)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("  using: composite", "  using: compound"),
        ("    value: ${{ steps.build-push", "    valu: x"),
    ],
)
def test_a_broken_action_fails_the_schema(tmp_path: Path, old: str, new: str) -> None:
    text = ACTION.read_text()
    assert old in text
    broken = tmp_path / "action.yml"
    broken.write_text(text.replace(old, new, 1))
    result = _check(broken)
    assert result.returncode == 1, result.stdout + result.stderr


def test_inputs_and_outputs_are_the_promised_ones() -> None:
    action = _action()
    for name in ("image", "builder", "counter", "aliases", "squash", "lint"):
        assert name in action["inputs"], name
    for name in ("registry", "username", "password", "install"):
        assert name in action["inputs"], name
    assert action["inputs"]["image"]["required"] is True
    assert action["inputs"]["builder"]["default"] == "auto"
    assert action["runs"]["using"] == "composite"
    steps = {s.get("id"): s for s in action["runs"]["steps"]}
    assert {k: v["value"] for k, v in action["outputs"].items()} == {
        k: f"${{{{ steps.build-push.outputs.{k} }}}}" for k in ("image", "tag", "digest")
    }
    assert "GITHUB_OUTPUT" in steps["build-push"]["run"]  # said where the outputs come from
    # The password goes to docker on stdin, never on a command line.
    login = next(s for s in action["runs"]["steps"] if "docker login" in s.get("run", ""))
    assert "--password-stdin" in login["run"]
    assert login["if"] == "inputs.username != ''"


def test_inputs_reach_the_shell_through_env_only() -> None:
    for step in _action()["runs"]["steps"]:
        if "run" in step:
            assert "${{" not in step["run"], step["run"]  # no script injection by inputs
            assert step["shell"] == "bash"
    # Every action used is pinned to an exact version.
    for step in _action()["runs"]["steps"]:
        if "uses" in step:
            assert re.search(r"@v\d+\.\d+\.\d+$", step["uses"]), step["uses"]


def _build_args(tmp_path: Path, **inputs: str) -> list[str]:
    """Run the build step's script as the runner would; return imgtag's argv."""
    action = _action()
    step = next(s for s in action["runs"]["steps"] if s.get("id") == "build-push")
    values = {k: str(v.get("default", "")) for k, v in action["inputs"].items()} | inputs
    env = {"PATH": os.environ["PATH"], "RUNNER_TEMP": str(tmp_path)}
    for var, expression in step["env"].items():
        name = re.fullmatch(r"\$\{\{ inputs\.([a-z-]+) \}\}", expression)
        assert name is not None, expression
        env[var] = values[name.group(1)]
    recorder = tmp_path / "imgtag-venv/bin/imgtag"
    recorder.parent.mkdir(parents=True)
    recorder.write_text('#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\n')
    recorder.chmod(0o755)
    proc = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc.stdout.splitlines()


def test_the_build_step_passes_the_inputs_on(tmp_path: Path) -> None:
    assert _build_args(tmp_path, image="ghcr.io/o/app") == [
        "build-push", "ghcr.io/o/app", "--counter", "auto", "--context", ".",
    ]  # fmt: skip
    args = _build_args(
        tmp_path / "2",
        image="reg.example/app",
        builder="buildah",
        counter="ci",
        aliases="latest, 1.4\nmain",
        squash="true",
        lint="false",
        file="docker/Dockerfile",
    )
    assert args == [
        "build-push", "reg.example/app", "--counter", "ci", "--context", ".",
        "--builder", "buildah", "--file", "docker/Dockerfile", "--squash", "--no-lint",
        "--alias", "latest", "--alias", "1.4", "--alias", "main",
    ]  # fmt: skip


def test_the_registry_cache_and_provenance_inputs_are_passed_on(tmp_path: Path) -> None:
    args = _build_args(
        tmp_path,
        image="ghcr.io/o/app",
        **{
            "cache-from": "ghcr.io/o/app:buildcache\n",
            "cache-to": "type=registry,ref=ghcr.io/o/app:buildcache,mode=max\ntype=inline",
            "provenance": "max",
        },
    )
    assert args[6:] == [
        "--cache-from", "ghcr.io/o/app:buildcache",
        "--cache-to", "type=registry,ref=ghcr.io/o/app:buildcache,mode=max",
        "--cache-to", "type=inline",
        "--provenance", "max",
    ]  # fmt: skip


def test_a_squash_that_is_not_a_boolean_fails_the_step(tmp_path: Path) -> None:
    action = _action()
    step = next(s for s in action["runs"]["steps"] if s.get("id") == "build-push")
    proc = subprocess.run(
        ["bash", "-eo", "pipefail", "-c", step["run"]],
        env={"PATH": os.environ["PATH"], "IMAGE": "a/b", "SQUASH": "yes", "RUNNER_TEMP": "/x"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "::error::the input squash must be true or false" in proc.stdout


def test_signing_inputs_reach_imgtag_and_the_key_stays_in_the_environment(tmp_path: Path) -> None:
    """Keyless signing needs GitHub's OIDC token and Sigstore: it cannot run here; this
    checks the command line imgtag gets and that cosign is installed by sigstore's action."""
    key = "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nabc\n"
    args = _build_args(tmp_path, image="ghcr.io/o/app", sign="true", **{"cosign-key": key})
    assert args[-3:] == ["--sign", "--sign-key", "env://COSIGN_PRIVATE_KEY"]
    assert not any("PRIVATE KEY" in a for a in args), "the key is never on a command line"
    keyless = _build_args(tmp_path / "2", image="ghcr.io/o/app", sign="true")
    assert keyless[-1] == "--sign"
    ref = _build_args(tmp_path / "3", image="a/b", sign="true", **{"sign-key": "gcpkms://k"})
    assert ref[-3:] == ["--sign", "--sign-key", "gcpkms://k"]
    assert _build_args(tmp_path / "4", image="a/b", sign="false")[-1] == "--no-sign"
    steps = _action()["runs"]["steps"]
    installer = next(s for s in steps if "cosign-installer" in s.get("uses", ""))
    assert installer["if"] == "inputs.sign == 'true'"
    assert re.fullmatch(r"sigstore/cosign-installer@v\d+\.\d+\.\d+", installer["uses"])
    build = next(s for s in steps if s.get("id") == "build-push")
    assert build["env"]["COSIGN_PASSWORD"] == "${{ inputs.cosign-password }}"
