"""``imgtag release`` stopped by a real SIGTERM: before the push it undoes everything it
did; once the push has begun it finishes it, prints the release and exits 143, so the
local repository and the remote never disagree."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_release_git import IDENTITY, refs

from gitfixture import GitRepoBuilder, git, git_env

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def work(tmp_path: Path) -> tuple[GitRepoBuilder, Path]:
    remote = tmp_path / "remote.git"
    git("init", "-q", "--bare", "-b", "main", str(remote), env=git_env())
    repo = GitRepoBuilder(tmp_path / "work")
    repo.commit("feat: first", files={"app.txt": "1\n"}).tag("v1.2.0", annotated=True)
    repo.commit("feat(api): add /health")
    repo.git("remote", "add", "origin", str(remote))
    repo.git("push", "-q", "origin", "HEAD:refs/heads/main", "--tags")
    return repo, remote


def slow_hook(path: Path, ready: Path, seconds: float) -> None:
    """A git hook that says it started, then takes its time."""
    path.write_text(f"#!/bin/sh\ntouch '{ready}'\nsleep {seconds}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def release_until(repo: GitRepoBuilder, ready: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGTAG_")}
    env.update({**IDENTITY, "PYTHONPATH": str(ROOT)})
    proc = subprocess.Popen(
        [sys.executable, "-m", "tagger", "release", "--repo", str(repo.path), "--push"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the hook never ran"
        time.sleep(0.02)
    return proc


def test_sigterm_before_the_push_undoes_the_release_commit_and_tag(
    work: tuple[GitRepoBuilder, Path], tmp_path: Path
) -> None:
    repo, remote = work
    ready = tmp_path / "commit-started"
    slow_hook(repo.path / ".git/hooks/pre-commit", ready, 20)
    local_before, remote_before, head = refs(repo.path), refs(remote), repo.head()

    proc = release_until(repo, ready)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)

    assert proc.returncode == 143, err
    assert err == "imgtag: error: stopped by SIGTERM; cleaned up\n"
    assert out == ""
    assert refs(repo.path) == local_before and repo.head() == head
    assert refs(remote) == remote_before
    assert git("status", "--porcelain", cwd=repo.path) == ""
    assert not (repo.path / "CHANGELOG.md").exists()


def test_sigterm_during_the_push_finishes_it_prints_the_release_and_exits_143(
    work: tuple[GitRepoBuilder, Path], tmp_path: Path
) -> None:
    repo, remote = work
    ready = tmp_path / "push-started"
    slow_hook(repo.path / ".git/hooks/pre-push", ready, 1)

    proc = release_until(repo, ready)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)

    assert proc.returncode == 143, err
    assert "v1.3.0" in out, "the release that was published is printed"
    assert "stopped by SIGTERM" in err
    local, published = refs(repo.path), refs(remote)
    assert published["refs/tags/v1.3.0"] == local["refs/tags/v1.3.0"]
    assert published["refs/heads/main"] == repo.head()
