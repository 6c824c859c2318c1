"""``imgtag release`` against real git: a work clone, a bare repository as its remote, and a
second clone that pushes ahead (docs/release.md).

Every test asserts what a user sees (exit code, stdout, one stderr sentence) and what git
then holds: refs, the annotated tag's message, the release commit, CHANGELOG.md byte for
byte, and the remote's refs. Refusals and bad input are checked to change nothing at all
(:func:`snapshot` before and after: every ref here and on the remote, HEAD, the index and
the work tree's files).
"""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))

from clirun import CliResult, run_cli
from gitfixture import GitRepoBuilder, git, git_env

JSON_KEYS = ["version", "tag", "previous_tag", "commit", "notes", "changelog", "pushed"]
#: Who git says makes the release commit and tag (the global config is ignored).
IDENTITY = {
    "GIT_AUTHOR_NAME": "Release Bot",
    "GIT_AUTHOR_EMAIL": "release@example.com",
    "GIT_COMMITTER_NAME": "Release Bot",
    "GIT_COMMITTER_EMAIL": "release@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


@dataclass
class Project:
    """``work`` (a clone whose origin is ``remote``) and ``other``, a second clone."""

    work: GitRepoBuilder
    remote: Path
    tmp: Path

    def other(self) -> GitRepoBuilder:
        """A second clone of the remote, as a colleague has it now."""
        path = self.tmp / f"other-{len(list(self.tmp.glob('other-*')))}"
        clone = GitRepoBuilder(path, init=False)
        git("clone", "-q", str(self.remote), str(path), env=git_env())
        return clone

    def push(self) -> None:
        self.work.git("push", "-q", "origin", "HEAD:refs/heads/main", "--tags")


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """A released v1.2.0 and three commits since, pushed to a bare remote."""
    remote = tmp_path / "remote.git"
    git("init", "-q", "--bare", "-b", "main", str(remote), env=git_env())
    work = GitRepoBuilder(tmp_path / "work")
    work.commit("feat: first", files={"app.txt": "1\n"}).tag("v1.2.0", annotated=True)
    work.commit("fix(ui): align the header")
    work.commit("docs: explain the header")
    work.commit("feat(api): add /health")
    work.git("remote", "add", "origin", str(remote))
    project = Project(work, remote, tmp_path)
    project.push()
    return project


def imgtag(
    repo: GitRepoBuilder | Path, *args: str, env: Mapping[str, str] | None = None
) -> CliResult:
    path = repo.path if isinstance(repo, GitRepoBuilder) else repo
    return run_cli(["release", "--repo", str(path), *args], env={**IDENTITY, **(env or {})})


def release_json(repo: GitRepoBuilder, *args: str) -> dict[str, Any]:
    result = imgtag(repo, *args, "--format", "json")
    assert result.code == 0, result
    assert result.stderr == ""
    doc = json.loads(result.stdout)
    assert list(doc)[: len(JSON_KEYS)] == JSON_KEYS
    return dict(doc)


def assert_error(result: CliResult, code: int, *needles: str) -> None:
    """Exit ``code``, nothing on stdout, one ``imgtag: error:`` sentence naming the needles."""
    assert result.code == code, result
    assert result.stdout == "", result
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("imgtag: error: "), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    for needle in needles:
        assert needle.lower() in result.stderr.lower(), (needle, result.stderr)


def refs(path: Path) -> dict[str, str]:
    out = git("for-each-ref", "--format=%(refname) %(objectname)", cwd=path)
    return dict(line.split(" ", 1) for line in out.splitlines())


def snapshot(project: Project) -> tuple[object, ...]:
    """Everything a release could change, here and on the remote."""
    work = project.work.path
    files = {
        p.relative_to(work).as_posix(): p.read_bytes()
        for p in sorted(work.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(work).parts
    }
    return (
        refs(work),
        refs(project.remote),
        git("rev-parse", "--symbolic-full-name", "HEAD", cwd=work),
        git("rev-parse", "HEAD", cwd=work),
        git("ls-files", "-s", cwd=work),
        files,
    )


def utc_date() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d")


def tag_message(repo: GitRepoBuilder, tag: str) -> str:
    return git("for-each-ref", f"refs/tags/{tag}", "--format=%(contents)", cwd=repo.path) + "\n"


# --- bumps and prefixes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "args", "expected"),
    [
        ("fix: a bug", (), "1.2.1"),
        ("feat: a feature", (), "1.3.0"),
        ("feat!: an incompatible feature", (), "2.0.0"),
        ("refactor: x\n\nBREAKING CHANGE: the API moved", (), "2.0.0"),
        ("chore: tidy", (), "1.2.1"),
        ("feat: a feature", ("--bump", "patch"), "1.2.1"),
        ("fix: a bug", ("--bump", "major"), "2.0.0"),
    ],
)
def test_the_version_follows_the_commits_or_the_bump_asked_for(
    tmp_path: Path, message: str, args: tuple[str, ...], expected: str
) -> None:
    repo = GitRepoBuilder(tmp_path / "r").commit("init").tag("v1.2.0").commit(message)
    doc = release_json(repo, "--no-changelog", *args)
    assert (doc["version"], doc["tag"], doc["previous_tag"]) == (expected, f"v{expected}", "v1.2.0")
    assert git("rev-list", "-n1", f"v{expected}", cwd=repo.path) == repo.head()


def test_a_release_is_an_annotated_tag_on_the_release_commit(project: Project) -> None:
    work = project.work
    before = work.head()

    result = imgtag(work)

    assert result.code == 0, result
    assert result.stdout.startswith("Released v1.3.0 (previous: v1.2.0) at ")
    assert git("cat-file", "-t", "v1.3.0", cwd=work.path) == "tag"
    assert git("rev-list", "-n1", "v1.3.0", cwd=work.path) == work.head()
    assert git("log", "-1", "--format=%s", cwd=work.path) == "chore(release): 1.3.0"
    assert git("rev-parse", "HEAD^", cwd=work.path) == before
    # The release commit holds the changelog and nothing else.
    assert git("show", "--name-only", "--format=", "HEAD", cwd=work.path) == "CHANGELOG.md"
    assert git("status", "--porcelain", cwd=work.path) == ""
    # Without --push the remote is only asked, never changed.
    assert "refs/tags/v1.3.0" not in refs(project.remote)
    fix, feat = (git("rev-parse", "--short=7", f"HEAD~{n}", cwd=work.path) for n in (3, 1))
    notes = f"### Added\n- api: add /health ({feat})\n\n### Fixed\n- ui: align the header ({fix})\n"
    # The tag message is the notes verbatim: "###" lines survive (--cleanup=verbatim).
    assert tag_message(work, "v1.3.0") == notes
    assert result.stdout.endswith("\n\n" + notes)


def test_notes_list_breaking_changes_first_and_once_and_leave_chores_out(tmp_path: Path) -> None:
    repo = GitRepoBuilder(tmp_path / "r").commit("init").tag("v0.9.0")
    for message in [
        "feat(cli)!: rename --out to --output",
        "fix: crash on empty input\n\nBREAKING CHANGE: empty input is now an error",
        "perf: cache the index",
        "refactor: split the parser",
        "chore: bump deps",
        "ci: cache pip",
        "docs: readme",
        "test: more cases",
        "style: format",
        "build: wheel",
        "Merge branch 'x'",
        "feat: colours",
    ]:
        repo.commit(message)
    short = {
        git("log", "-1", "--format=%s", h, cwd=repo.path): h[:7]
        for h in git("rev-list", "HEAD", cwd=repo.path).splitlines()
    }

    doc = release_json(repo, "--no-changelog")

    assert doc["version"] == "1.0.0"
    assert doc["notes"] == (
        "### Breaking changes\n"
        f"- cli: rename --out to --output ({short['feat(cli)!: rename --out to --output']})\n"
        f"- crash on empty input ({short['fix: crash on empty input']})\n"
        "\n### Added\n"
        f"- colours ({short['feat: colours']})\n"
        "\n### Changed\n"
        f"- cache the index ({short['perf: cache the index']})\n"
        f"- split the parser ({short['refactor: split the parser']})\n"
    )
    assert tag_message(repo, "v1.0.0") == doc["notes"]


def test_the_first_release_takes_the_initial_version(tmp_path: Path) -> None:
    repo = GitRepoBuilder(tmp_path / "r").commit("feat: start")
    assert release_json(repo, "--no-changelog")["tag"] == "v0.1.0"
    repo2 = GitRepoBuilder(tmp_path / "r2").commit("feat: start")
    doc = release_json(repo2, "--no-changelog", "--initial-version", "1.0.0")
    assert (doc["tag"], doc["previous_tag"]) == ("v1.0.0", None)


def test_the_new_tag_uses_the_prefix_the_existing_tags_use(tmp_path: Path) -> None:
    repo = GitRepoBuilder(tmp_path / "r").commit("init").tag("1.4.0").commit("fix: x")
    assert release_json(repo, "--no-changelog")["tag"] == "1.4.1"


def test_a_monorepo_prefix_and_changelog_file(tmp_path: Path) -> None:
    repo = GitRepoBuilder(tmp_path / "r")
    repo.commit("init", files={"api/CHANGELOG.md": "# API changelog\n\n## [Unreleased]\n"})
    repo.tag("api/v2.1.0").tag("web/v7.0.0").tag("v9.0.0")
    repo.commit("feat(api): pagination")

    doc = release_json(repo, "--tag-prefix", "api/v", "--changelog-file", "api/CHANGELOG.md")

    assert (doc["version"], doc["tag"], doc["previous_tag"]) == (
        "2.2.0",
        "api/v2.2.0",
        "api/v2.1.0",
    )
    assert doc["changelog"] == "api/CHANGELOG.md"
    text = (repo.path / "api/CHANGELOG.md").read_text()
    assert "## [Unreleased]\n\n## [2.2.0] - " in text
    assert not (repo.path / "CHANGELOG.md").exists()
    assert git("show", "--name-only", "--format=", "HEAD", cwd=repo.path) == "api/CHANGELOG.md"
    # The other components' tags are untouched and `next` for the component counts from it.
    result = run_cli(
        ["next", "--repo", str(repo.path), "--tag-prefix", "api/v", "--counter", "commits"]
    )
    assert result.stdout == "2.2.0-0\n"


# --- pre-releases ------------------------------------------------------------------------------


def test_prereleases_count_up_and_the_release_covers_them_all(project: Project) -> None:
    work = project.work
    rc1 = release_json(work, "--prerelease", "rc")
    assert (rc1["version"], rc1["tag"], rc1["previous_tag"]) == (
        "1.3.0-rc.1",
        "v1.3.0-rc.1",
        "v1.2.0",
    )
    work.commit("fix: rc feedback")
    rc2 = release_json(work, "--prerelease", "rc")
    assert (rc2["tag"], rc2["previous_tag"]) == ("v1.3.0-rc.2", "v1.3.0-rc.1")
    # rc.2's notes cover only what came after rc.1.
    assert "rc feedback" in rc2["notes"] and "/health" not in rc2["notes"]

    final = release_json(work)

    assert (final["tag"], final["previous_tag"]) == ("v1.3.0", "v1.2.0")
    for subject in ("api: add /health", "ui: align the header", "rc feedback"):
        assert subject in final["notes"], subject
    text = (work.path / "CHANGELOG.md").read_text()
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert [h.split(" - ")[0] for h in headings] == [
        "## [Unreleased]",
        "## [1.3.0]",
        "## [1.3.0-rc.2]",
        "## [1.3.0-rc.1]",
    ]
    assert run_cli(["next", "--repo", str(work.path), "--counter", "commits"]).stdout == "1.3.0-0\n"


def test_a_release_after_prereleases_goes_higher_when_the_commits_call_for_it(
    project: Project,
) -> None:
    work = project.work
    release_json(work, "--prerelease", "rc", "--no-changelog")
    work.commit("feat!: drop the v1 API")
    assert release_json(work, "--no-changelog")["tag"] == "v2.0.0"


def test_another_prerelease_id_starts_at_1(project: Project) -> None:
    work = project.work
    assert release_json(work, "--prerelease", "alpha", "--no-changelog")["tag"] == "v1.3.0-alpha.1"
    work.commit("fix: y")
    assert release_json(work, "--prerelease", "beta", "--no-changelog")["tag"] == "v1.3.0-beta.1"


def test_a_prerelease_id_that_sorts_below_the_last_one_is_exit_2(project: Project) -> None:
    work = project.work
    release_json(work, "--prerelease", "rc", "--no-changelog")
    work.commit("fix: y")
    before = snapshot(project)
    assert_error(imgtag(work, "--prerelease", "alpha"), 2, "1.3.0-alpha.1", "v1.3.0-rc.1")
    assert snapshot(project) == before


# --- the changelog ------------------------------------------------------------------------------

OLDER = (
    "## [1.2.0] - 2023-01-05\n\n### Added\n- The first feature.  \n\n"
    "[1.2.0]: https://example.com/compare/v1.1.0...v1.2.0\n"
)


def _commit_changelog(project: Project, text: str | bytes) -> None:
    path = project.work.path / "CHANGELOG.md"
    if isinstance(text, str):
        text = text.encode()
    path.write_bytes(text)
    project.work.git("add", "CHANGELOG.md")
    project.work.git("commit", "-q", "-m", "docs: changelog")


def test_unreleased_entries_move_into_the_new_section_and_older_ones_stay_byte_identical(
    project: Project,
) -> None:
    head = (
        "# Changelog\n\nIntro.\n\n## [Unreleased]\n\n### Added\n- A hand-written entry.\n\n"
        "### Security\n- Pinned the base image.\n\n"
    )
    _commit_changelog(project, head + OLDER)
    date_before = utc_date()

    doc = release_json(project.work)

    text = (project.work.path / "CHANGELOG.md").read_text()
    assert text.endswith("\n" + OLDER)  # byte for byte, trailing spaces included
    new_head = text[: -len(OLDER)]
    feat, fix = (git("rev-parse", "--short=7", f"HEAD~{n}", cwd=project.work.path) for n in (2, 4))
    # The date is UTC during the run (either side of a midnight the run may straddle).
    assert new_head in {
        "# Changelog\n\nIntro.\n\n## [Unreleased]\n\n"
        f"## [1.3.0] - {date}\n\n"
        "### Added\n- A hand-written entry.\n"
        f"- api: add /health ({feat})\n\n"
        f"### Fixed\n- ui: align the header ({fix})\n\n"
        "### Security\n- Pinned the base image.\n\n"
        for date in (date_before, utc_date())
    }, new_head
    assert doc["changelog"] == "CHANGELOG.md"


def test_without_unreleased_the_section_goes_above_the_first_version(project: Project) -> None:
    _commit_changelog(project, "# Changelog\n\nIntro.\n\n" + OLDER)
    release_json(project.work)
    text = (project.work.path / "CHANGELOG.md").read_text()
    assert text.startswith("# Changelog\n\nIntro.\n\n## [1.3.0] - ")
    assert text.endswith("\n" + OLDER)
    assert "Unreleased" not in text


def test_without_any_section_the_new_one_goes_below_the_title(project: Project) -> None:
    _commit_changelog(project, "# Changelog\n\nEverything that changed.\n")
    release_json(project.work)
    text = (project.work.path / "CHANGELOG.md").read_text()
    assert text.startswith("# Changelog\n\nEverything that changed.\n\n## [1.3.0] - ")


def test_a_missing_changelog_is_created(project: Project) -> None:
    release_json(project.work)
    text = (project.work.path / "CHANGELOG.md").read_text()
    assert text.startswith("# Changelog\n")
    assert "## [Unreleased]\n\n## [1.3.0] - " in text
    assert git("ls-files", "CHANGELOG.md", cwd=project.work.path) == "CHANGELOG.md"


def test_crlf_line_endings_are_kept(project: Project) -> None:
    old = OLDER.replace("\n", "\r\n").encode()
    _commit_changelog(project, b"# Changelog\r\n\r\n## [Unreleased]\r\n\r\n" + old)
    release_json(project.work)
    data = (project.work.path / "CHANGELOG.md").read_bytes()
    assert data.endswith(b"\r\n" + old)
    assert b"\n" not in data.replace(b"\r\n", b"")


def test_no_changelog_tags_head_itself(project: Project) -> None:
    head = project.work.head()
    doc = release_json(project.work, "--no-changelog")
    assert (doc["commit"], doc["changelog"]) == (head, None)
    assert project.work.head() == head
    assert not (project.work.path / "CHANGELOG.md").exists()


# --- dry run, json, notes file ------------------------------------------------------------------


def test_a_dry_run_changes_nothing(project: Project) -> None:
    before = snapshot(project)

    doc = release_json(project.work, "--dry-run", "--push", "--notes-file", "notes.md")
    text = imgtag(project.work, "--dry-run")

    assert snapshot(project) == before
    assert (doc["tag"], doc["commit"], doc["pushed"], doc["changelog"]) == (
        "v1.3.0",
        None,
        False,
        "CHANGELOG.md",
    )
    assert "api: add /health" in doc["notes"]
    assert text.code == 0 and text.stdout.startswith("Would release v1.3.0 (previous: v1.2.0)")


def test_the_json_document(project: Project) -> None:
    doc = release_json(project.work, "--push")
    assert doc == {
        "version": "1.3.0",
        "tag": "v1.3.0",
        "previous_tag": "v1.2.0",
        "commit": project.work.head(),
        "notes": tag_message(project.work, "v1.3.0"),
        "changelog": "CHANGELOG.md",
        "pushed": True,
        "status": "released",
        "remote": "origin",
        "branch": "main",
    }


def test_the_notes_file_gets_the_notes(project: Project, tmp_path: Path) -> None:
    notes = tmp_path / "notes.md"
    doc = release_json(project.work, "--notes-file", str(notes))
    assert notes.read_text() == doc["notes"] == tag_message(project.work, "v1.3.0")


# --- push --------------------------------------------------------------------------------------


def test_push_sends_the_branch_and_the_tag(project: Project) -> None:
    doc = release_json(project.work, "--push")
    remote = refs(project.remote)
    assert remote["refs/heads/main"] == project.work.head() == doc["commit"]
    assert git("cat-file", "-t", "v1.3.0", cwd=project.remote) == "tag"
    assert remote["refs/tags/v1.3.0"] == refs(project.work.path)["refs/tags/v1.3.0"]


def test_a_rejected_push_undoes_the_tag_and_the_commit(project: Project) -> None:
    """The remote moves between the check and the push (a colleague pushes from a second
    clone while the release runs): git refuses the atomic push, nothing is left behind."""
    other = project.other()
    other.commit("fix: pushed by a colleague")
    hook = project.work.path / ".git/hooks/pre-push"
    hook.write_text(
        "#!/bin/sh\n"
        "unset GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE\n"
        f"git -C '{other.path}' push -q origin HEAD:refs/heads/main >&2\n"
    )
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR)
    work_before = snapshot(project)[0]
    head = project.work.head()

    result = imgtag(project.work, "--push")

    assert_error(result, 3, "push to origin was refused", "undone")
    assert refs(project.work.path) == work_before
    assert project.work.head() == head
    assert git("status", "--porcelain", cwd=project.work.path) == ""
    assert not (project.work.path / "CHANGELOG.md").exists()
    remote = refs(project.remote)
    assert remote["refs/heads/main"] == other.head()
    assert not any(ref.startswith("refs/tags/v1.3") for ref in remote)


def test_a_push_the_remote_rejects_undoes_everything(project: Project) -> None:
    hook = project.remote / "hooks/pre-receive"
    hook.write_text("#!/bin/sh\necho 'main is protected' >&2\nexit 1\n")
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR)
    _commit_changelog(project, "# Changelog\n\n## [Unreleased]\n\n- Kept.\n")
    before = snapshot(project)

    result = imgtag(project.work, "--push")

    assert_error(result, 3, "refused", "undone")
    assert snapshot(project) == before


# --- refusals and bad input ----------------------------------------------------------------------


def test_a_dirty_tree_is_refused_and_untracked_files_do_not_count(project: Project) -> None:
    (project.work.path / "app.txt").write_text("changed\n")
    before = snapshot(project)
    assert_error(imgtag(project.work), 3, "uncommitted changes")
    assert snapshot(project) == before

    project.work.git("checkout", "--", "app.txt")
    (project.work.path / "scratch.log").write_text("untracked\n")
    assert release_json(project.work)["tag"] == "v1.3.0"
    assert (project.work.path / "scratch.log").exists()
    assert "scratch.log" not in git("show", "--name-only", "--format=", cwd=project.work.path)


def test_a_tag_that_exists_locally_is_refused(project: Project) -> None:
    project.work.branch("side").commit("chore: elsewhere").tag("v1.3.0").checkout("main")
    before = snapshot(project)
    assert_error(imgtag(project.work), 3, "v1.3.0 already exists here")
    assert snapshot(project) == before


def test_a_tag_that_exists_only_on_the_remote_is_refused_even_without_push(
    project: Project,
) -> None:
    other = project.other()
    other.commit("feat: theirs").tag("v1.3.0", annotated=True)
    other.git("push", "-q", "origin", "v1.3.0")
    assert "refs/tags/v1.3.0" not in refs(project.work.path)
    before = snapshot(project)

    assert_error(imgtag(project.work), 3, "v1.3.0 already exists on origin")
    assert snapshot(project) == before


def test_a_branch_that_moved_on_the_remote_is_refused(project: Project) -> None:
    other = project.other()
    other.commit("fix: theirs")
    other.git("push", "-q", "origin", "HEAD:main")
    before = snapshot(project)

    assert_error(imgtag(project.work, "--push"), 3, "branch main on origin moved")
    assert snapshot(project) == before


def test_without_a_remote_nothing_is_asked(tmp_path: Path) -> None:
    repo = GitRepoBuilder(tmp_path / "r").commit("init").tag("v1.0.0").commit("fix: x")
    assert release_json(repo)["tag"] == "v1.0.1"


def test_an_unreachable_remote_is_exit_4_before_anything_changes(project: Project) -> None:
    project.work.git("remote", "set-url", "origin", str(project.tmp / "gone.git"))
    before = snapshot(project)
    assert_error(imgtag(project.work), 4, "cannot ask the remote origin")
    assert snapshot(project) == before


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (("--prerelease", "rc_1"), ("--prerelease", "rc_1")),
        (("--prerelease", "01"), ("--prerelease",)),
        (("--prerelease", ""), ("--prerelease",)),
        (("--remote", "upstream"), ("no remote named upstream", "origin")),
        (("--notes-file", "/nonexistent-dir/notes.md"), ("--notes-file",)),
        (("--changelog-file", "../outside.md"), ("outside the repository",)),
        (("--initial-version", "1.2"), ("--initial-version",)),
        (("--bump", "sideways"), ("--bump",)),
    ],
)
def test_bad_input_is_exit_2_before_anything_changes(
    project: Project, args: tuple[str, ...], needles: tuple[str, ...]
) -> None:
    before = snapshot(project)
    assert_error(imgtag(project.work, *args), 2, *needles)
    assert snapshot(project) == before


def test_an_unwritable_notes_file_is_exit_2(project: Project, tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "notes.md").write_text("old\n")
    (locked / "notes.md").chmod(0o444)
    before = snapshot(project)
    # root may write to a read-only file: then a directory stands in for it.
    writable = os.access(locked / "notes.md", os.W_OK)
    target = str(locked) if writable else str(locked / "notes.md")
    assert_error(imgtag(project.work, "--notes-file", target), 2, "--notes-file")
    assert snapshot(project) == before


def test_push_needs_a_remote_and_a_branch(project: Project, tmp_path: Path) -> None:
    lonely = GitRepoBuilder(tmp_path / "lonely").commit("feat: x")
    assert_error(imgtag(lonely, "--push"), 2, "no remote named origin")

    project.work.checkout("HEAD~1")
    before = snapshot(project)
    assert_error(imgtag(project.work, "--push"), 2, "detached")
    assert snapshot(project) == before


def test_without_a_git_identity_nothing_changes(project: Project) -> None:
    before = snapshot(project)
    env = {
        **{k: "" for k in IDENTITY if k.endswith(("_NAME", "_EMAIL"))},
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "user.useConfigOnly",
        "GIT_CONFIG_VALUE_0": "true",
    }
    assert_error(imgtag(project.work, env=env), 2, "user.name")
    assert snapshot(project) == before


def test_a_repository_without_commits_is_exit_4(tmp_path: Path) -> None:
    repo = GitRepoBuilder(tmp_path / "empty")
    assert_error(imgtag(repo), 4, "no commits")


# --- already released -----------------------------------------------------------------------------


def test_a_head_that_is_released_already_exits_0_and_changes_nothing(project: Project) -> None:
    first = release_json(project.work, "--push")
    before = snapshot(project)

    again = imgtag(project.work, "--push")
    doc = release_json(project.work, "--push", "--bump", "major")

    assert again.code == 0, again
    assert again.stdout == f"v1.3.0 is already released at {first['commit'][:7]}: nothing to do.\n"
    assert snapshot(project) == before
    assert {k: doc[k] for k in JSON_KEYS} == {**{k: first[k] for k in JSON_KEYS}, "pushed": False}
    assert doc["status"] == "already-released"


def test_a_prerelease_at_head_does_not_stop_the_release_itself(project: Project) -> None:
    release_json(project.work, "--prerelease", "rc", "--no-changelog")
    assert imgtag(project.work, "--prerelease", "rc").stdout.startswith(
        "v1.3.0-rc.1 is already released"
    )
    doc = release_json(project.work, "--no-changelog")
    assert (doc["tag"], doc["commit"]) == ("v1.3.0", project.work.head())


def test_next_counts_from_the_release(project: Project) -> None:
    def next_tag() -> str:
        result = run_cli(["next", "--repo", str(project.work.path), "--counter", "commits"])
        assert result.code == 0, result
        return result.stdout.strip()

    assert next_tag() == "1.2.1-3"
    release_json(project.work)
    assert next_tag() == "1.3.0-0"
    project.work.commit("fix: after")
    assert next_tag() == "1.3.1-1"
