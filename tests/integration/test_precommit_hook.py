"""The ``imgtag-lint`` hook of ``.pre-commit-hooks.yaml``, run by pre-commit itself.

``pre-commit try-repo`` is what a hook author runs before publishing: it clones the hook
repository at a commit, installs it into pre-commit's own virtualenv (``pip install .``,
dependencies from the package index) and runs the hook on a project. The hook repository
here is a git repository made of this checkout's packaging files, so the test does not
depend on what is committed in the checkout. One pre-commit home for the module: the
environment is built once and both runs (a bad Dockerfile, a clean one) reuse it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

sys.path.insert(0, str(Path(__file__).parents[1]))

from gitfixture import GitRepoBuilder, git_env

ROOT = Path(__file__).resolve().parents[2]
PRE_COMMIT = Path(sys.executable).parent / "pre-commit"

BAD = "FROM ubuntu\nUSER 1\n"  # IMG001: an untagged base image, an error
CLEAN = (
    'FROM alpine:3.20\nRUN apk add --no-cache tini\nUSER 1000\nENTRYPOINT ["/sbin/tini", "--"]\n'
)


@pytest.fixture(scope="module")
def hook_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git repository holding the hook definition and the package, committed."""
    path = tmp_path_factory.mktemp("hook-repo") / "imgtag"
    path.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in (".pre-commit-hooks.yaml", "pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, path / name)
    for name in ("tagger", "ci-templates"):
        shutil.copytree(ROOT / name, path / name, ignore=ignore)
    repo = GitRepoBuilder(path)
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "hook repository")
    return path


@pytest.fixture(scope="module")
def pre_commit_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not PRE_COMMIT.exists():
        pytest.fail("pre-commit is missing: pip install -e '.[test]'", pytrace=False)
    return tmp_path_factory.mktemp("pre-commit-home")


def try_repo(project: Path, hook_repo: Path, home: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **git_env(),
        "PRE_COMMIT_HOME": str(home),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "NO_COLOR": "1",
    }
    # pre-commit's virtualenv is made by this interpreter; no CI variables leak in.
    env.pop("CI", None)
    return subprocess.run(
        [
            str(PRE_COMMIT),
            "try-repo",
            str(hook_repo),
            "imgtag-lint",
            "--all-files",
            "--verbose",
            "--color=never",
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def project_with(tmp_path: Path, dockerfile: str) -> Path:
    repo = GitRepoBuilder(tmp_path / "project")
    repo.commit("add the image", files={"Dockerfile": dockerfile, "app.py": "print('hi')\n"})
    return repo.path


def test_the_hook_definition() -> None:
    (hook,) = YAML(typ="safe").load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "imgtag-lint"
    assert hook["language"] == "python"
    assert hook["entry"] == "imgtag lint"
    assert hook["types"] == ["dockerfile"]


def test_a_bad_dockerfile_fails_the_hook_and_shows_the_finding(
    tmp_path: Path, hook_repo: Path, pre_commit_home: Path
) -> None:
    result = try_repo(project_with(tmp_path, BAD), hook_repo, pre_commit_home)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "imgtag lint" in output and "Failed" in output, output
    assert "Dockerfile:1: ERROR IMG001 base image ubuntu has no tag" in output, output


def test_a_clean_dockerfile_passes_the_hook(
    tmp_path: Path, hook_repo: Path, pre_commit_home: Path
) -> None:
    result = try_repo(project_with(tmp_path, CLEAN), hook_repo, pre_commit_home)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "imgtag lint" in output and "Passed" in output, output
    # --verbose shows imgtag's summary: the hook got the Dockerfile alone, not app.py.
    assert "0 finding(s) in 1 file(s)" in output, output
