"""Build real git repositories for tests through the git CLI (no GitPython).

``GitRepoBuilder(tmp_path / "repo").commit("feat: x").tag("v1.2.3")`` makes a repository
with deterministic authors and dates: every commit gets the next second after a fixed
epoch, so hashes and ``git log`` order are the same on every run. The global and system
git configuration are ignored (no signing hooks, no templates from the machine).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

# 2023-11-14T22:13:20Z; each commit or annotated tag moves the clock one second on.
_EPOCH = 1_700_000_000


def git_env(when: int | None = None) -> dict[str, str]:
    """The environment for a deterministic git process: fixed identity, date, C locale."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("GIT_") and k not in {"LANG", "LANGUAGE"}
    }
    env.update(
        {
            "GIT_AUTHOR_NAME": "Test Author",
            "GIT_AUTHOR_EMAIL": "author@example.com",
            "GIT_COMMITTER_NAME": "Test Committer",
            "GIT_COMMITTER_EMAIL": "committer@example.com",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_CONFIG_NOSYSTEM": "1",
            "LC_ALL": "C",
        }
    )
    if when is not None:
        date = f"@{when} +0000"
        env["GIT_AUTHOR_DATE"] = date
        env["GIT_COMMITTER_DATE"] = date
    return env


def git(
    *args: str,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> str:
    """Run ``git ARGS`` and return its stdout, stripped; a failure raises with stderr."""
    proc = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env=dict(env) if env is not None else git_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
    return proc.stdout.strip()


class GitRepoBuilder:
    """A git repository under construction; the building methods return ``self``."""

    def __init__(self, path: Path, *, branch: str = "main", init: bool = True) -> None:
        self.path = Path(path)
        self._clock = _EPOCH
        if init:
            self.path.mkdir(parents=True, exist_ok=True)
            self.git("init", "-q", "-b", branch)

    # -- plumbing --------------------------------------------------------------------------

    def _tick(self) -> int:
        self._clock += 1
        return self._clock

    def git(self, *args: str) -> str:
        """Run git in the repository with the next deterministic date."""
        return git(*args, cwd=self.path, env=git_env(self._tick()))

    # -- building --------------------------------------------------------------------------

    def commit(
        self, message: str = "chore: change", *, files: Mapping[str, str] | None = None
    ) -> GitRepoBuilder:
        """A commit with ``message``; empty unless ``files`` (path → text) are given."""
        if files:
            for name, text in files.items():
                target = self.path / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
                self.git("add", "--", name)
            self.git("commit", "-q", "-m", message)
        else:
            self.git("commit", "-q", "--allow-empty", "-m", message)
        return self

    def commits(self, count: int, message: str = "chore: change") -> GitRepoBuilder:
        """``count`` empty commits in one go (``commit-tree`` is faster than ``commit``)."""
        head = self.head()
        tree = self.git("rev-parse", "HEAD^{tree}")
        for i in range(count):
            head = self.git("commit-tree", tree, "-p", head, "-m", f"{message} {i}")
        self.git("update-ref", "HEAD", head)
        return self

    def tag(self, name: str, *, annotated: bool = False, ref: str = "HEAD") -> GitRepoBuilder:
        """A lightweight tag (or an annotated one) on ``ref``."""
        if annotated:
            self.git("tag", "-a", "-m", f"release {name}", name, ref)
        else:
            self.git("tag", name, ref)
        return self

    def branch(self, name: str) -> GitRepoBuilder:
        """Create ``name`` at HEAD and switch to it."""
        self.git("switch", "-q", "-c", name)
        return self

    def checkout(self, ref: str) -> GitRepoBuilder:
        self.git("checkout", "-q", ref)
        return self

    def merge(self, ref: str, message: str | None = None) -> GitRepoBuilder:
        """A merge commit (``--no-ff``) of ``ref`` into the current branch."""
        self.git("merge", "-q", "--no-ff", "-m", message or f"Merge {ref}", ref)
        return self

    def write(self, name: str, text: str) -> GitRepoBuilder:
        """Write a file in the work tree without committing it."""
        target = self.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        return self

    # -- questions ---------------------------------------------------------------------------

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")

    def rev(self, ref: str) -> str:
        return self.git("rev-parse", ref)

    def clone(self, dest: Path, *args: str) -> GitRepoBuilder:
        """``git clone ARGS file://self dest`` (file:// so that ``--depth`` is honoured)."""
        git("clone", "-q", *args, self.path.resolve().as_uri(), str(dest), env=git_env())
        clone = GitRepoBuilder(dest, init=False)
        clone._clock = self._clock
        return clone
