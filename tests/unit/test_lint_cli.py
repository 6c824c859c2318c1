"""``imgtag lint`` through the command line: exit codes, formats, config, hadolint."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jsonschema
import pytest

from clirun import run_cli
from tagger.lint.hadolint import find_hadolint

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "tests" / "schemas" / "sarif-schema-2.1.0.json"

BAD = "FROM python:3.12\nRUN apt-get update && apt-get install -y curl\nCMD python app.py\n"
WARN_ONLY = "FROM python:3.12-slim\nCMD python app.py\nUSER 1000\n"
CLEAN = (
    'FROM alpine:3.20\nRUN apk add --no-cache tini\nUSER 1000\nENTRYPOINT ["/sbin/tini", "--"]\n'
)


def write(tmp_path: Path, text: str, name: str = "Dockerfile") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_clean_file_exits_0_and_default_is_dockerfile(tmp_path: Path) -> None:
    write(tmp_path, CLEAN)
    result = run_cli(["lint"], cwd=tmp_path)
    assert (result.code, result.stdout) == (0, "")
    assert "0 finding(s) in 1 file(s)" in result.stderr


def test_error_finding_exits_1(tmp_path: Path) -> None:
    write(tmp_path, "FROM ubuntu\nUSER 1\n")
    result = run_cli(["lint", "Dockerfile"], cwd=tmp_path)
    assert result.code == 1
    assert result.stdout.startswith("Dockerfile:1: ERROR IMG001 base image ubuntu has no tag")
    assert "imgtag: error: 1 finding(s) at or above error" in result.stderr


@pytest.mark.parametrize(
    ("fail_on", "code"), [("error", 0), ("warning", 1), ("info", 1), ("none", 0)]
)
def test_fail_on(tmp_path: Path, fail_on: str, code: int) -> None:
    write(tmp_path, WARN_ONLY)
    assert run_cli(["lint", "--fail-on", fail_on], cwd=tmp_path).code == code


def test_fail_on_info_with_info_only(tmp_path: Path) -> None:
    write(tmp_path, 'FROM alpine:3.20\nUSER 1000\nCMD ["app"]\n')  # IMG011 only
    assert run_cli(["lint", "--fail-on", "warning"], cwd=tmp_path).code == 0
    assert run_cli(["lint", "--fail-on", "info"], cwd=tmp_path).code == 1


def test_ignore_option(tmp_path: Path) -> None:
    write(tmp_path, "FROM ubuntu\nUSER 1\n")
    result = run_cli(["lint", "--ignore", "IMG001", "--ignore", "IMG002"], cwd=tmp_path)
    assert (result.code, result.stdout) == (0, "")


@pytest.mark.parametrize(
    "text",
    ["", "\x00\x01\x02binary", "FROM a\nBOGUS x\n", "FROM a\nRUN <<EOF\nopen\n"],
)
def test_unparsable_is_exit_2(tmp_path: Path, text: str) -> None:
    write(tmp_path, text)
    result = run_cli(["lint"], cwd=tmp_path)
    assert result.code == 2
    assert result.stderr.startswith("imgtag: error: Dockerfile")
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_missing_unreadable_and_non_utf8_are_exit_2(tmp_path: Path) -> None:
    assert run_cli(["lint", "nope"], cwd=tmp_path).stderr == "imgtag: error: nope: no such file\n"
    (tmp_path / "dir").mkdir()
    assert run_cli(["lint", "dir"], cwd=tmp_path).code == 2
    (tmp_path / "latin1").write_bytes(b"FROM a\nLABEL x=\xe9\n")
    assert run_cli(["lint", "latin1"], cwd=tmp_path).code == 2


def test_bad_file_among_good_ones_is_exit_2_not_1(tmp_path: Path) -> None:
    write(tmp_path, "FROM ubuntu\n", "a")
    result = run_cli(["lint", "a", "missing"], cwd=tmp_path)
    assert result.code == 2


def test_json_format(tmp_path: Path) -> None:
    write(tmp_path, BAD)
    result = run_cli(["lint", "--format", "json", "--fail-on", "none"], cwd=tmp_path)
    assert result.code == 0
    data = json.loads(result.stdout)
    assert list(data) == ["findings"]
    assert {(f["rule"], f["line"]) for f in data["findings"]} == {
        ("IMG002", 1), ("IMG012", 1), ("IMG006", 2), ("IMG008", 2), ("IMG011", 3), ("IMG013", 3),
    }  # fmt: skip
    for item in data["findings"]:
        assert list(item) == ["rule", "severity", "file", "line", "message", "fix"]
        assert item["file"] == "Dockerfile"


def test_sarif_validates_against_the_official_schema(tmp_path: Path) -> None:
    write(tmp_path, BAD)
    result = run_cli(["lint", "--format", "sarif", "--fail-on", "none"], cwd=tmp_path)
    doc = json.loads(result.stdout)
    schema = json.loads(SCHEMA.read_text())
    jsonschema.validators.validator_for(schema)(schema).validate(doc)
    run = doc["runs"][0]
    rules = {r["id"]: r for r in run["tool"]["driver"]["rules"]}
    assert set(rules) >= {f"IMG{n:03d}" for n in range(1, 14)}
    assert all(
        r["helpUri"].startswith("https://") and r["shortDescription"]["text"]
        for r in rules.values()
    )
    levels = {r["ruleId"]: r["level"] for r in run["results"]}
    assert levels["IMG006"] == "warning" and levels["IMG002"] == "note"
    location = run["results"][0]["locations"][0]["physicalLocation"]
    assert location == {"artifactLocation": {"uri": "Dockerfile"}, "region": {"startLine": 1}}


def test_sarif_schema_rejects_a_broken_document() -> None:
    schema = json.loads(SCHEMA.read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validators.validator_for(schema)(schema).validate(
            {"version": "2.1.0", "runs": [{"results": []}]}
        )


def test_gitlab_format(tmp_path: Path) -> None:
    write(tmp_path, BAD)
    first = run_cli(
        ["lint", "--format", "gitlab", "--fail-on", "none", "./Dockerfile"], cwd=tmp_path
    )
    items = json.loads(first.stdout)
    assert {i["check_name"] for i in items} == {
        "IMG002",
        "IMG012",
        "IMG006",
        "IMG008",
        "IMG011",
        "IMG013",
    }
    for item in items:
        assert set(item) == {"description", "check_name", "fingerprint", "severity", "location"}
        assert item["severity"] in {"info", "minor", "major", "critical", "blocker"}
        assert item["location"]["path"] == "Dockerfile"
        assert isinstance(item["location"]["lines"]["begin"], int)
    assert len({i["fingerprint"] for i in items}) == len(items)
    again = run_cli(["lint", "--format", "gitlab", "--fail-on", "none"], cwd=tmp_path)
    assert [i["fingerprint"] for i in json.loads(again.stdout)] == [i["fingerprint"] for i in items]


def test_config_file_and_env_precedence(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    write(tmp_path, WARN_ONLY)
    (tmp_path / ".imgtag.toml").write_text('[lint]\nfail_on = "warning"\nignore = ["IMG011"]\n')
    assert run_cli(["lint"], cwd=tmp_path).code == 1  # file: warning
    assert run_cli(["lint"], cwd=tmp_path, env={"IMGTAG_FAIL_ON": "error"}).code == 0  # env > file
    assert (
        run_cli(["lint", "--fail-on", "warning"], cwd=tmp_path, env={"IMGTAG_FAIL_ON": "none"}).code
        == 1
    )  # option > env
    out = run_cli(["lint", "--format", "json", "--fail-on", "none"], cwd=tmp_path).stdout
    assert "IMG011" not in out and "IMG013" in out
    (tmp_path / ".imgtag.toml").write_text('[lint]\nfail_on = "sometimes"\n')
    bad = run_cli(["lint"], cwd=tmp_path)
    assert bad.code == 2 and "lint.fail_on" in bad.stderr


def test_help_mentions_inline_ignores() -> None:
    result = run_cli(["lint", "--help"])
    assert result.code == 0
    assert "# imgtag ignore=ID" in result.stdout and "global ignore" in result.stdout


def test_hadolint_findings_are_merged_and_ignorable(tmp_path: Path) -> None:
    write(tmp_path, BAD)
    result = run_cli(["lint", "--hadolint", "--format", "json", "--fail-on", "none"], cwd=tmp_path)
    assert result.code == 0
    rules = {(f["rule"], f["line"], f["severity"]) for f in json.loads(result.stdout)["findings"]}
    assert ("DL3008", 2, "warning") in rules and ("DL3025", 3, "warning") in rules
    assert ("IMG006", 2, "warning") in rules
    ignored = run_cli(
        ["lint", "--hadolint", "--ignore", "DL3008", "--format", "json", "--fail-on", "none"],
        cwd=tmp_path,
    )
    assert "DL3008" not in ignored.stdout and "DL3025" in ignored.stdout


def test_hadolint_missing_is_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, CLEAN)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "nowhere" / "python"))
    result = run_cli(["lint", "--hadolint"], cwd=tmp_path, env={"PATH": str(tmp_path)})
    assert result.code == 2
    assert result.stderr == (
        "imgtag: error: hadolint is not installed: pip install 'imgtag-release[hadolint]'\n"
    )


def test_repository_dockerfile_passes_imgtag_and_hadolint() -> None:
    result = run_cli(["lint", "--fail-on", "info", "Dockerfile"], cwd=ROOT)
    assert (result.code, result.stdout) == (0, "")
    import subprocess

    proc = subprocess.run(
        [find_hadolint(), str(ROOT / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert (proc.returncode, proc.stdout) == (0, "")
