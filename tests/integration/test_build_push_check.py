"""``imgtag build-push --check`` against the real bed: the image just built is checked
before its tag is written. A failed check is exit 1 with nothing tagged and no claim left;
with buildah (no engine) the runtime checks are skipped with a line that says so, and
``--check=strict`` fails them. The registry is read independently (``RegistryView``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import test_build_push as bp

import testbed as tb
from appfixture import make_app
from gitfixture import GitRepoBuilder
from tagger.errors import ExitCode

TINI = Path("/usr/bin/tini-static")
# busybox sleep as PID 1 ignores SIGTERM: CHK001 fails.
SLEEPER = """\
FROM scratch
COPY busybox /busybox
USER 1001
CMD ["/busybox", "sleep", "1000"]
"""
# The same under tini: every check passes.
GOOD = """\
FROM scratch
COPY busybox /busybox
COPY tini /tini
USER 1001
ENTRYPOINT ["/tini", "--"]
CMD ["/busybox", "sleep", "1000"]
"""
# What the config alone shows fails too: root, shell form.
STATIC_BAD = """\
FROM scratch
COPY busybox /busybox
CMD /busybox sleep 1000
"""
FAST = "[check]\nstop_timeout = 1\n"


def app_with(tmp_path: Path, dockerfile: str, config: str = FAST) -> GitRepoBuilder:
    repo = make_app(tmp_path / "app", "check", dockerfile=dockerfile, tag=None)
    shutil.copy2(TINI, repo.path / "tini")
    repo.git("add", "--", "tini")
    repo.commit("feat: tini and the config", files={".imgtag.toml": config})
    repo.tag("v1.0.0")
    return repo


@pytest.fixture(scope="module")
def docker_env(testbed: tb.Testbed) -> dict[str, str]:
    return {**testbed.env(), "IMGTAG_BUILDER": "docker"}


@pytest.fixture(scope="module")
def buildah_env(testbed: tb.Testbed) -> dict[str, str]:
    return {**testbed.env(), "STORAGE_DRIVER": "vfs", "BUILDAH_ISOLATION": "chroot"}


def test_a_failed_check_is_exit_1_and_nothing_is_tagged(
    registry_plain: tb.Registry, docker_env: dict[str, str], tmp_path: Path
) -> None:
    app = app_with(tmp_path, SLEEPER)
    repo = bp.fresh_repo("chk-fail")
    result = bp.build_push(
        app, registry_plain.image(repo), "--check", "--build", "1", env=docker_env
    )
    sentence = bp.error_sentence(result, ExitCode.POLICY)
    assert "failed 1 check(s) (CHK001)" in sentence and "nothing was pushed" in sentence
    assert "check: CHK001: fail: PID 1" in result.stderr
    # No tag, no claim: the repository has nothing at all.
    assert bp.RegistryView.of(registry_plain).tags(repo) == []


def test_a_passing_check_publishes_and_says_so(
    registry_plain: tb.Registry, docker_env: dict[str, str], tmp_path: Path
) -> None:
    app = app_with(tmp_path, GOOD)
    repo = bp.fresh_repo("chk-pass")
    result = bp.build_push(
        app, registry_plain.image(repo), "--check", "--build", "1", env=docker_env
    )
    doc = bp.ok_doc(result)
    assert doc["check"] == "passed" and doc["pushed"] is True
    assert "check: CHK001: pass: PID 1 stopped on SIGTERM" in result.stderr
    assert bp.RegistryView.of(registry_plain).tags(repo) == ["1.0.0-1"]


def test_config_turns_the_check_on_and_check_off_wins(
    registry_plain: tb.Registry, docker_env: dict[str, str], tmp_path: Path
) -> None:
    app = app_with(tmp_path, STATIC_BAD, FAST + "build_push = true\nignore = ['CHK001']\n")
    repo = bp.fresh_repo("chk-cfg")
    image = registry_plain.image(repo)
    failed = bp.build_push(app, image, "--build", "1", "--no-lint", env=docker_env)
    # No /bin/sh in the image for its shell-form CMD: it does not even start (CHK002).
    assert "(CHK002, CHK003, CHK005)" in bp.error_sentence(failed, ExitCode.POLICY)
    assert "check: CHK001: skip: ignored (--ignore)" in failed.stderr
    off = bp.build_push(app, image, "--build", "1", "--no-lint", "--check=off", env=docker_env)
    assert bp.ok_doc(off)["check"] == "skipped"
    assert bp.RegistryView.of(registry_plain).tags(repo) == ["1.0.0-1"]


def test_buildah_skips_the_runtime_checks_and_strict_fails_them(
    registry_plain: tb.Registry, buildah_env: dict[str, str], tmp_path: Path
) -> None:
    app = app_with(tmp_path, GOOD)
    repo = bp.fresh_repo("chk-buildah")
    image = registry_plain.image(repo)
    args = ("--builder", "buildah", "--build", "1")
    result = bp.build_push(app, image, *args, "--check", env=buildah_env)
    doc = bp.ok_doc(result)
    assert doc["builder"] == "buildah" and doc["check"] == "passed"
    skipped = "skip: skipped: the buildah builder leaves no image in a Docker engine to run"
    assert f"check: CHK001: {skipped}" in result.stderr
    assert f"check: CHK002: {skipped}" in result.stderr
    # What the image's config shows was judged all the same.
    assert "check: CHK003: pass: USER 1001" in result.stderr
    assert "check: CHK005: pass: PID 1 is tini" in result.stderr
    strict = bp.build_push(
        app, image, "--builder", "buildah", "--build", "2", "--check=strict", env=buildah_env
    )
    sentence = bp.error_sentence(strict, ExitCode.POLICY)
    assert "--check=strict: 2 check(s) could not run with the buildah builder" in sentence
    assert bp.RegistryView.of(registry_plain).tags(repo) == ["1.0.0-1"]


def test_buildah_still_fails_what_the_config_shows(
    registry_plain: tb.Registry, buildah_env: dict[str, str], tmp_path: Path
) -> None:
    app = app_with(tmp_path, STATIC_BAD)
    repo = bp.fresh_repo("chk-buildah-bad")
    result = bp.build_push(
        app,
        registry_plain.image(repo),
        "--builder",
        "buildah",
        "--build",
        "1",
        "--no-lint",
        "--check",
        env=buildah_env,
    )
    assert "(CHK003, CHK005)" in bp.error_sentence(result, ExitCode.POLICY)
    assert bp.RegistryView.of(registry_plain).tags(repo) == []
