"""``imgtag next`` against real git repositories built in ``tmp_path`` (docs/tag-grammar.md).

Every repository is made by the git CLI (``tests/gitfixture.py``) with fixed identities and
dates; every test asserts what a user sees: the exit code, the exact stdout, and for errors
one ``imgtag: error: ...`` line on stderr without a traceback. N is pinned (``--build`` or
``--counter commits``) wherever the test is not about N itself.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))

from clirun import CliResult, run_cli
from gitfixture import GitRepoBuilder, git, git_env

JSON_KEYS = [
    "tag",
    "version",
    "build",
    "major",
    "minor",
    "patch",
    "prerelease",
    "base_tag",
    "distance",
    "commit",
    "short_commit",
    "dirty",
    "counter",
    "ci",
]
ALL_BUMPS = ["patch", "minor", "major", "none", "auto"]


# --- helpers ---------------------------------------------------------------------------------


@pytest.fixture
def repo(tmp_path: Path) -> GitRepoBuilder:
    """An empty repository (``git init -b main``, no commit yet)."""
    return GitRepoBuilder(tmp_path / "repo")


def imgtag_next(
    repo: GitRepoBuilder | Path, *args: str, env: Mapping[str, str] | None = None
) -> CliResult:
    path = repo.path if isinstance(repo, GitRepoBuilder) else repo
    return run_cli(["next", "--repo", str(path), *args], env=env)


def ok_tag(repo: GitRepoBuilder | Path, *args: str, env: Mapping[str, str] | None = None) -> str:
    """Run ``imgtag next ARGS`` (plain); assert success and return the tag."""
    result = imgtag_next(repo, *args, env=env)
    assert result.code == 0, result
    assert result.stderr == ""
    assert result.stdout.endswith("\n")
    assert result.stdout.count("\n") == 1
    return result.stdout[:-1]


def ok_json(
    repo: GitRepoBuilder | Path, *args: str, env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Run ``imgtag next ARGS --format json``; assert success and return the document."""
    result = imgtag_next(repo, *args, "--format", "json", env=env)
    assert result.code == 0, result
    assert result.stderr == ""
    doc = json.loads(result.stdout)
    assert isinstance(doc, dict)
    assert list(doc) == JSON_KEYS
    return doc


def assert_error(result: CliResult, code: int, *needles: str) -> None:
    """Exit ``code``, nothing on stdout, one ``imgtag: error:`` line naming every needle."""
    assert result.code == code, result
    assert result.stdout == "", result
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("imgtag: error: "), result.stderr
    assert result.stderr.endswith("\n") and result.stderr.count("\n") == 1, result.stderr
    for needle in needles:
        assert needle.lower() in result.stderr.lower(), (needle, result.stderr)


def parse_dotenv(text: str) -> dict[str, str]:
    """``KEY=value`` lines as a shell reads them (single quotes removed)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, raw = line.partition("=")
        assert sep, line
        assert key.isidentifier() and key == key.upper(), line
        assert key not in out, f"duplicate {key}"
        words = shlex.split(raw)
        assert len(words) <= 1, line
        out[key] = words[0] if words else ""
    return out


# --- which tag is the base ---------------------------------------------------------------


@pytest.mark.parametrize("annotated", [False, True], ids=["lightweight", "annotated"])
def test_base_is_the_highest_tag_not_the_nearest_nor_the_newest(
    repo: GitRepoBuilder, annotated: bool
) -> None:
    repo.commit("feat: old").tag("v2.0.0", annotated=annotated)
    repo.commit("fix: backport").tag("v1.5.0", annotated=annotated).commit("fix: x")
    # git describe (and "the newest tag by date") would say v1.5.0.
    assert git("describe", "--tags", "--abbrev=0", cwd=repo.path) == "v1.5.0"
    doc = ok_json(repo, "--build", "3")
    assert doc["base_tag"] == "v2.0.0"
    assert doc["distance"] == 2
    assert doc["tag"] == "2.0.1-3"
    assert ok_tag(repo, "--build", "3") == "2.0.1-3"


def test_1_10_0_is_higher_than_1_9_0(repo: GitRepoBuilder) -> None:
    # v1.10.0 is older and sorts lower as a string: only numeric ordering picks it.
    repo.commit().tag("v1.10.0").commit().tag("v1.9.0").commit()
    doc = ok_json(repo, "--build", "1")
    assert (doc["base_tag"], doc["tag"]) == ("v1.10.0", "1.10.1-1")


@pytest.mark.parametrize(
    "name",
    [
        "release-2020",
        "v1.2",
        "v1.02.3",
        "1.2.3.4",
        "vv1.2.3",
        "V9.0.0",
        "v9.0.0-rc.01",
        "v9.0.0.1",
        "v9.0.0.1",
        "x9.0.0",
        "v9.0.0.1",
    ],
)
def test_tags_that_are_not_prefix_plus_semver_are_ignored(repo: GitRepoBuilder, name: str) -> None:
    repo.commit().tag("v1.0.0").commit().tag(name)
    doc = ok_json(repo, "--build", "5")
    assert (doc["base_tag"], doc["distance"], doc["tag"]) == ("v1.0.0", 1, "1.0.1-5")


def test_a_higher_tag_on_an_unmerged_branch_is_ignored_until_merged(
    repo: GitRepoBuilder,
) -> None:
    repo.commit("init").tag("v1.0.0")
    repo.branch("side").commit("feat: side").tag("v3.0.0")
    repo.checkout("main").commit("fix: main")
    doc = ok_json(repo, "--build", "1")
    assert (doc["base_tag"], doc["distance"], doc["tag"]) == ("v1.0.0", 1, "1.0.1-1")

    repo.merge("side")
    doc = ok_json(repo, "--build", "1")
    # HEAD is now past v3.0.0 by "fix: main" and the merge commit.
    assert (doc["base_tag"], doc["distance"], doc["tag"]) == ("v3.0.0", 2, "3.0.1-1")


def test_a_higher_tag_on_a_later_unrelated_branch_leaves_the_reachable_highest(
    repo: GitRepoBuilder,
) -> None:
    # Several candidates, the top one unreachable: the next highest reachable one wins,
    # not merely the nearest.
    repo.commit().tag("v1.4.0").commit().tag("v1.2.0")
    repo.branch("side").commit().tag("v5.0.0").tag("v4.0.0")
    repo.checkout("main").commit()
    doc = ok_json(repo, "--build", "1")
    assert (doc["base_tag"], doc["distance"], doc["tag"]) == ("v1.4.0", 2, "1.4.1-1")


def test_tags_on_descendants_of_head_are_ignored(repo: GitRepoBuilder) -> None:
    repo.commit().tag("v1.0.0").commit().tag("v2.0.0").commit()
    repo.checkout("v1.0.0")  # detached, as CI checks out an older commit
    doc = ok_json(repo, "--counter", "commits")
    assert (doc["base_tag"], doc["tag"], doc["distance"]) == ("v1.0.0", "1.0.0-0", 0)


def test_an_orphan_branch_sees_no_tag_of_the_other_history(repo: GitRepoBuilder) -> None:
    repo.commit().tag("v3.0.0").git("checkout", "-q", "--orphan", "fresh")
    repo.commit().commit()
    doc = ok_json(repo, "--counter", "commits")
    assert (doc["base_tag"], doc["tag"], doc["distance"]) == (None, "0.1.0-2", 2)


@pytest.mark.parametrize("kind", ["tree", "blob"])
def test_a_version_tag_on_a_tree_or_blob_is_ignored(repo: GitRepoBuilder, kind: str) -> None:
    repo.commit("one", files={"README": "hi\n"}).tag("v1.0.0").commit()
    target = repo.rev("HEAD^{tree}") if kind == "tree" else repo.rev("HEAD:README")
    repo.tag("v9.0.0", ref=target)
    doc = ok_json(repo, "--build", "1")
    assert (doc["base_tag"], doc["tag"]) == ("v1.0.0", "1.0.1-1")


# --- on the tag, past the tag --------------------------------------------------------------


@pytest.mark.parametrize("bump", ALL_BUMPS)
@pytest.mark.parametrize("annotated", [False, True], ids=["lightweight", "annotated"])
def test_head_on_the_tag_keeps_its_version_for_every_bump(
    repo: GitRepoBuilder, bump: str, annotated: bool
) -> None:
    repo.commit("feat!: big").commit("feat: x").tag("v1.2.3", annotated=annotated)
    doc = ok_json(repo, "--bump", bump, "--build", "7")
    assert doc["tag"] == "1.2.3-7"
    assert doc["version"] == "1.2.3"
    assert (doc["base_tag"], doc["distance"]) == ("v1.2.3", 0)
    assert ok_tag(repo, "--bump", bump, "--build", "7") == "1.2.3-7"


@pytest.mark.parametrize(
    ("bump", "expected"),
    [("patch", "1.2.4"), ("minor", "1.3.0"), ("major", "2.0.0"), ("none", "1.2.3")],
)
def test_every_bump_past_a_tag(repo: GitRepoBuilder, bump: str, expected: str) -> None:
    repo.commit().tag("v1.2.3").commit().commit()
    assert ok_tag(repo, "--bump", bump, "--build", "9") == f"{expected}-9"


def test_the_default_bump_is_patch(repo: GitRepoBuilder) -> None:
    repo.commit().tag("v1.2.3").commit("feat!: would be major with auto")
    assert ok_tag(repo, "--build", "0") == "1.2.4-0"


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        (["fix: a bug"], "1.2.4"),
        (["feat(scope): a feature"], "1.3.0"),
        (["fix: a", "feat: b", "chore: c"], "1.3.0"),
        (["feat!: drop the old API"], "2.0.0"),
        (["refactor(core)!: rename"], "2.0.0"),
        (["fix: a\n\nBREAKING CHANGE: the config moved"], "2.0.0"),
        (["Update the readme"], "1.2.4"),
        (["docs: typo", "Merge branch 'x'"], "1.2.4"),
    ],
    ids=["fix", "feat-scope", "mixed", "bang", "scope-bang", "footer", "free-text", "docs"],
)
def test_bump_auto_reads_conventional_commits_since_the_base(
    repo: GitRepoBuilder, messages: list[str], expected: str
) -> None:
    # Commits before the base tag must not count: the breaking one there is history.
    repo.commit("feat!: before the tag").tag("v1.2.3")
    for message in messages:
        repo.commit(message)
    assert ok_tag(repo, "--bump", "auto", "--build", "1") == f"{expected}-1"


def test_bump_auto_counts_commits_of_a_merged_branch(repo: GitRepoBuilder) -> None:
    repo.commit().tag("v1.2.3").branch("topic").commit("feat: on the topic")
    repo.checkout("main").commit("fix: on main").merge("topic", "Merge branch 'topic'")
    assert ok_tag(repo, "--bump", "auto", "--build", "1") == "1.3.0-1"


# --- pre-releases and build metadata ---------------------------------------------------------


@pytest.mark.parametrize("bump", ["patch", "minor", "major", "auto"])
def test_past_a_prerelease_any_bump_but_none_gives_the_next_prerelease(
    repo: GitRepoBuilder, bump: str
) -> None:
    repo.commit().tag("v2.0.0-rc.1").commit("feat!: more")
    doc = ok_json(repo, "--bump", bump, "--build", "4")
    assert doc["tag"] == "2.0.0-rc.2-4"
    assert (doc["version"], doc["prerelease"]) == ("2.0.0-rc.2", "rc.2")
    assert (doc["major"], doc["minor"], doc["patch"]) == (2, 0, 0)


def test_past_a_prerelease_bump_none_keeps_it(repo: GitRepoBuilder) -> None:
    repo.commit().tag("v2.0.0-rc.1").commit()
    assert ok_tag(repo, "--bump", "none", "--build", "4") == "2.0.0-rc.1-4"


def test_on_a_prerelease_tag(repo: GitRepoBuilder) -> None:
    repo.commit().tag("v2.0.0-rc.1")
    doc = ok_json(repo, "--build", "3")
    assert doc["tag"] == "2.0.0-rc.1-3"
    assert (doc["prerelease"], doc["distance"]) == ("rc.1", 0)


def test_rc_10_is_higher_than_rc_9(repo: GitRepoBuilder) -> None:
    repo.commit().tag("v2.0.0-rc.10").commit().tag("v2.0.0-rc.9").commit()
    doc = ok_json(repo, "--build", "1")
    assert (doc["base_tag"], doc["tag"]) == ("v2.0.0-rc.10", "2.0.0-rc.11-1")


@pytest.mark.parametrize("release_first", [False, True], ids=["rc-older", "release-older"])
def test_a_release_beats_its_prereleases(repo: GitRepoBuilder, release_first: bool) -> None:
    first, second = ("v2.0.0", "v2.0.0-rc.5") if release_first else ("v2.0.0-rc.5", "v2.0.0")
    repo.commit().tag(first).commit().tag(second).commit()
    doc = ok_json(repo, "--build", "1")
    assert (doc["base_tag"], doc["tag"], doc["prerelease"]) == ("v2.0.0", "2.0.1-1", None)


def test_release_and_prerelease_on_the_same_commit(repo: GitRepoBuilder) -> None:
    repo.commit().tag("v2.0.0-rc.5").tag("v2.0.0")
    assert ok_tag(repo, "--build", "1") == "2.0.0-1"


def test_build_metadata_is_dropped(repo: GitRepoBuilder) -> None:
    repo.commit().tag("v1.2.3+build.7")
    doc = ok_json(repo, "--build", "12")
    assert doc["tag"] == "1.2.3-12"
    assert doc["version"] == "1.2.3"
    assert doc["base_tag"] == "v1.2.3+build.7"
    assert "+" not in ok_tag(repo, "--build", "12")
    repo.commit()
    assert ok_tag(repo, "--build", "12") == "1.2.4-12"


# --- no tags, prefixes ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((), "0.1.0"),
        (("--initial-version", "1.0.0"), "1.0.0"),
        (("--initial-version", "v1.0.0"), "1.0.0"),
        (("--initial-version", "2.0.0-beta.1"), "2.0.0-beta.1"),
    ],
    ids=["default", "custom", "v-prefixed", "prerelease"],
)
def test_no_tag_gives_the_initial_version(
    repo: GitRepoBuilder, args: tuple[str, ...], expected: str
) -> None:
    repo.commit().commit().tag("release-2020").commit()
    doc = ok_json(repo, *args, "--build", "2")
    assert doc["tag"] == f"{expected}-2"
    assert doc["base_tag"] is None
    assert doc["distance"] == 3


@pytest.mark.parametrize("value", ["1.0", "x", "01.0.0", "1.0.0.0", ""])
def test_an_invalid_initial_version_is_exit_2(repo: GitRepoBuilder, value: str) -> None:
    repo.commit()
    assert_error(imgtag_next(repo, "--initial-version", value), 2, "initial-version")


def test_monorepo_tag_prefix(repo: GitRepoBuilder) -> None:
    repo.commit().tag("api/v1.2.3").tag("v7.0.0").commit().tag("web/v9.0.0").commit()
    doc = ok_json(repo, "--tag-prefix", "api/v", "--build", "1")
    assert (doc["base_tag"], doc["tag"]) == ("api/v1.2.3", "1.2.4-1")
    doc = ok_json(repo, "--tag-prefix", "web/v", "--build", "1")
    assert (doc["base_tag"], doc["tag"]) == ("web/v9.0.0", "9.0.1-1")
    # The default prefix (an optional v) sees neither api/ nor web/ tags.
    assert ok_json(repo, "--build", "1")["base_tag"] == "v7.0.0"
    # A prefix nothing matches: the initial version, not another component's tag.
    assert ok_tag(repo, "--tag-prefix", "db/v", "--build", "1") == "0.1.0-1"


@pytest.mark.parametrize(
    ("tags", "prefix", "base"),
    [
        (["1.2.3"], None, "1.2.3"),
        (["v1.2.3"], None, "v1.2.3"),
        (["v1.2.3", "1.3.0"], None, "1.3.0"),
        (["v1.3.0", "1.2.3"], None, "v1.3.0"),
        (["v1.0.0", "1.2.3"], "v", "v1.0.0"),
        (["1.2.3"], "v", None),
        (["v1.0.0", "1.2.3"], "", "1.2.3"),
    ],
)
def test_default_prefix_is_an_optional_v(
    repo: GitRepoBuilder, tags: list[str], prefix: str | None, base: str | None
) -> None:
    for name in tags:
        repo.commit().tag(name)
    repo.commit()
    args = ("--tag-prefix", prefix) if prefix is not None else ()
    assert ok_json(repo, *args, "--build", "1")["base_tag"] == base


def test_annotated_and_lightweight_tags_mix(repo: GitRepoBuilder) -> None:
    repo.commit().tag("v1.0.0", annotated=True).commit().tag("v1.1.0").commit()
    repo.commit().tag("v1.2.0", annotated=True).commit()
    doc = ok_json(repo, "--counter", "commits")
    assert (doc["base_tag"], doc["distance"], doc["tag"]) == ("v1.2.0", 1, "1.2.1-1")
    # The commit is HEAD's, never the tag object's.
    assert doc["commit"] == repo.head()


# --- N ---------------------------------------------------------------------------------------


def test_build_wins_over_every_counter(repo: GitRepoBuilder) -> None:
    repo.commit().tag("v1.0.0").commit()
    env = {"GITHUB_ACTIONS": "true", "GITHUB_RUN_NUMBER": "77"}
    for counter in ["ci", "timestamp", "commits", "auto"]:
        doc = ok_json(repo, "--counter", counter, "--build", "42", env=env)
        assert (doc["tag"], doc["build"], doc["counter"]) == ("1.0.1-42", 42, "build")
    # --counter ci outside a CI is fine when --build gives N.
    assert ok_tag(repo, "--counter", "ci", "--build", "42") == "1.0.1-42"
    assert ok_tag(repo, "--build", "0") == "1.0.1-0"


@pytest.mark.parametrize("value", ["-1", "x", "1.5", ""])
def test_a_build_that_is_no_non_negative_integer_is_exit_2(
    repo: GitRepoBuilder, value: str
) -> None:
    repo.commit().tag("v1.0.0")
    assert_error(imgtag_next(repo, "--build", value), 2, "--build")


def test_counter_commits_is_the_distance_from_the_base_tag(repo: GitRepoBuilder) -> None:
    repo.commit().commit().tag("v1.0.0").commits(3)
    doc = ok_json(repo, "--counter", "commits")
    assert (doc["tag"], doc["build"], doc["distance"], doc["counter"]) == (
        "1.0.1-3",
        3,
        3,
        "commits",
    )
    repo.tag("v1.0.1")
    assert ok_tag(repo, "--counter", "commits") == "1.0.1-0"


def test_counter_commits_without_a_tag_counts_from_the_root(repo: GitRepoBuilder) -> None:
    repo.commit().commits(4)
    assert git("rev-list", "--count", "HEAD", cwd=repo.path) == "5"
    doc = ok_json(repo, "--counter", "commits")
    assert (doc["tag"], doc["distance"], doc["base_tag"]) == ("0.1.0-5", 5, None)


def _assert_timestamp_now(build: int) -> None:
    text = str(build)
    assert len(text) == 14 and text.isdigit(), text
    stamp = datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    assert abs(datetime.now(UTC) - stamp) < timedelta(minutes=2), text


@pytest.mark.parametrize("args", [("--counter", "timestamp"), ("--counter", "auto"), ()])
def test_timestamp_counter_is_utc_now(repo: GitRepoBuilder, args: tuple[str, ...]) -> None:
    repo.commit().tag("v1.0.0").commit()
    # A local time zone far from UTC must not leak into N.
    doc = ok_json(repo, *args, env={"TZ": "Pacific/Kiritimati"})
    assert doc["counter"] == "timestamp"
    assert doc["ci"] is None
    _assert_timestamp_now(doc["build"])
    assert doc["tag"] == f"1.0.1-{doc['build']}"


def test_counter_ci_outside_a_ci_is_exit_2(repo: GitRepoBuilder) -> None:
    repo.commit().tag("v1.0.0")
    assert_error(imgtag_next(repo, "--counter", "ci"), 2, "--counter")
    # "CI=true" alone names no CI system and no counter.
    assert_error(imgtag_next(repo, "--counter", "ci", env={"CI": "true"}), 2, "--counter")


CI_ENVS: list[tuple[str, dict[str, str], str]] = [
    ("github", {"GITHUB_ACTIONS": "true", "CI": "true"}, "GITHUB_RUN_NUMBER"),
    ("gitlab", {"GITLAB_CI": "true", "CI": "true"}, "CI_PIPELINE_IID"),
    ("jenkins", {"JENKINS_URL": "https://ci.example/"}, "BUILD_NUMBER"),
    ("circleci", {"CIRCLECI": "true", "CI": "true"}, "CIRCLE_BUILD_NUM"),
    ("azure", {"TF_BUILD": "True"}, "BUILD_BUILDID"),
    ("bitbucket", {"CI": "true"}, "BITBUCKET_BUILD_NUMBER"),
    ("buildkite", {"BUILDKITE": "true", "CI": "true"}, "BUILDKITE_BUILD_NUMBER"),
    ("travis", {"TRAVIS": "true", "CI": "true"}, "TRAVIS_BUILD_NUMBER"),
    ("drone", {"DRONE": "true", "CI": "drone"}, "DRONE_BUILD_NUMBER"),
    ("woodpecker", {"CI": "woodpecker"}, "CI_PIPELINE_NUMBER"),
    ("teamcity", {"TEAMCITY_VERSION": "2024.03"}, "BUILD_NUMBER"),
]


@pytest.mark.parametrize(("name", "marker", "var"), CI_ENVS, ids=[c[0] for c in CI_ENVS])
@pytest.mark.parametrize("counter", ["ci", "auto"])
def test_counter_ci_reads_each_ci_systems_counter(
    repo: GitRepoBuilder, name: str, marker: dict[str, str], var: str, counter: str
) -> None:
    repo.commit().tag("v1.0.0").commit()
    doc = ok_json(repo, "--counter", counter, env={**marker, var: "1234"})
    assert (doc["tag"], doc["build"], doc["counter"], doc["ci"]) == ("1.0.1-1234", 1234, "ci", name)


@pytest.mark.parametrize("value", ["12a", "-3", "1.0", " 7", "", "٣"])
def test_a_ci_counter_that_is_no_integer_is_exit_2(repo: GitRepoBuilder, value: str) -> None:
    repo.commit().tag("v1.0.0")
    env = {"GITLAB_CI": "true", "CI_PIPELINE_IID": value}
    assert_error(imgtag_next(repo, "--counter", "ci", env=env), 2, "CI_PIPELINE_IID")


def test_counter_ci_without_the_counter_variable_is_exit_2(repo: GitRepoBuilder) -> None:
    repo.commit().tag("v1.0.0")
    assert_error(
        imgtag_next(repo, "--counter", "auto", env={"GITHUB_ACTIONS": "true"}),
        2,
        "GITHUB_RUN_NUMBER",
    )


# --- output formats ----------------------------------------------------------------------------


def test_plain_is_the_tag_and_a_newline(repo: GitRepoBuilder) -> None:
    repo.commit().tag("v1.2.3").commit()
    result = imgtag_next(repo, "--build", "17")
    assert (result.code, result.stdout, result.stderr) == (0, "1.2.4-17\n", "")
    result = imgtag_next(repo, "--build", "17", "--format", "plain")
    assert (result.code, result.stdout, result.stderr) == (0, "1.2.4-17\n", "")


def test_json_document(repo: GitRepoBuilder) -> None:
    repo.commit().tag("v2.0.0-rc.1", annotated=True).commit().commit()
    doc = ok_json(repo, "--counter", "ci", env={"GITHUB_ACTIONS": "true", "GITHUB_RUN_NUMBER": "8"})
    head = repo.head()
    assert doc == {
        "tag": "2.0.0-rc.2-8",
        "version": "2.0.0-rc.2",
        "build": 8,
        "major": 2,
        "minor": 0,
        "patch": 0,
        "prerelease": "rc.2",
        "base_tag": "v2.0.0-rc.1",
        "distance": 2,
        "commit": head,
        "short_commit": doc["short_commit"],
        "dirty": False,
        "counter": "ci",
        "ci": "github",
    }
    assert len(head) == 40
    assert 7 <= len(doc["short_commit"]) < 40 and head.startswith(doc["short_commit"])
    for key in ["build", "major", "minor", "patch", "distance"]:
        assert type(doc[key]) is int, key
    assert type(doc["dirty"]) is bool


def test_json_document_without_a_tag_or_prerelease(repo: GitRepoBuilder) -> None:
    repo.commit()
    doc = ok_json(repo, "--build", "0")
    assert (doc["tag"], doc["prerelease"], doc["base_tag"], doc["ci"]) == (
        "0.1.0-0",
        None,
        None,
        None,
    )
    assert (doc["distance"], doc["counter"]) == (1, "build")


def test_env_format_is_dotenv_with_every_json_key(repo: GitRepoBuilder) -> None:
    repo.commit().tag("v1.2.3").commit()
    doc = ok_json(repo, "--build", "5")
    result = imgtag_next(repo, "--build", "5", "--format", "env")
    assert result.code == 0 and result.stderr == ""
    assert result.stdout.startswith("IMGTAG_TAG=1.2.4-5\n")
    assert result.stdout.endswith("\n")
    values = parse_dotenv(result.stdout)
    assert list(values) == [f"IMGTAG_{k.upper()}" for k in JSON_KEYS]
    assert values["IMGTAG_TAG"] == doc["tag"] == "1.2.4-5"
    assert values["IMGTAG_VERSION"] == "1.2.4"
    assert values["IMGTAG_BUILD"] == "5"
    assert values["IMGTAG_COMMIT"] == repo.head()
    assert values["IMGTAG_BASE_TAG"] == "v1.2.3"
    assert values["IMGTAG_DIRTY"] == "false"
    assert values["IMGTAG_PRERELEASE"] == ""


def test_env_format_is_sourceable_by_a_shell(repo: GitRepoBuilder, tmp_path: Path) -> None:
    repo.commit().tag("v1.2.3-rc.1").commit()
    result = imgtag_next(repo, "--build", "5", "--format", "env")
    assert result.code == 0
    env_file = tmp_path / "imgtag.env"
    env_file.write_text(result.stdout, encoding="utf-8")
    out = subprocess.run(
        [
            "sh",
            "-c",
            '. "$1" && printf "%s|%s|%s" "$IMGTAG_TAG" "$IMGTAG_PRERELEASE" "$IMGTAG_CI"',
            "sh",
            str(env_file),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out == "1.2.3-rc.2-5|rc.2|"


def test_the_env_output_does_not_break_the_next_run(repo: GitRepoBuilder) -> None:
    repo.commit().tag("v1.2.3").commit()
    first = imgtag_next(repo, "--build", "5", "--format", "env")
    assert first.code == 0
    exported = parse_dotenv(first.stdout)
    # The documented CI pattern: the dotenv lines become the next step's environment.
    assert ok_tag(repo, "--build", "6", env=exported) == "1.2.4-6"


# --- dirty -----------------------------------------------------------------------------------


def test_dirty_is_about_tracked_files(repo: GitRepoBuilder) -> None:
    repo.commit("add", files={"app.py": "print(1)\n"}).tag("v1.0.0")
    repo.write("untracked.txt", "x")
    doc = ok_json(repo, "--build", "1")
    assert doc["dirty"] is False
    assert doc["tag"] == "1.0.0-1"  # the version does not change with the work tree

    repo.write("app.py", "print(2)\n")
    doc = ok_json(repo, "--build", "1")
    assert (doc["dirty"], doc["tag"]) == (True, "1.0.0-1")

    git("checkout", "--", "app.py", cwd=repo.path)
    assert ok_json(repo, "--build", "1")["dirty"] is False
    repo.write("staged.txt", "x").git("add", "staged.txt")
    assert ok_json(repo, "--build", "1")["dirty"] is True


# --- exit 4 ----------------------------------------------------------------------------------


def test_a_directory_that_is_no_repository_is_exit_4(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    env = {"GIT_CEILING_DIRECTORIES": str(tmp_path)}
    assert_error(imgtag_next(plain, env=env), 4, "git")
    assert_error(run_cli(["next"], cwd=plain, env=env), 4, "git")


def test_a_nonexistent_repo_path_is_exit_4(tmp_path: Path) -> None:
    assert_error(imgtag_next(tmp_path / "nowhere"), 4, "nowhere")


def test_a_file_or_a_bare_repository_is_exit_4(repo: GitRepoBuilder, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x", encoding="utf-8")
    assert_error(imgtag_next(tmp_path / "file"), 4, "file")
    repo.commit().tag("v1.0.0")
    git("clone", "-q", "--bare", str(repo.path), str(tmp_path / "bare.git"))
    assert_error(imgtag_next(tmp_path / "bare.git"), 4, "bare.git")


def test_a_repository_without_commits_is_exit_4(repo: GitRepoBuilder) -> None:
    assert_error(imgtag_next(repo), 4, "no commits", "commit")
    repo.write("a.txt", "x").git("add", "a.txt")
    assert_error(imgtag_next(repo, "--build", "1"), 4, "commit")


def _assert_says_fetch(result: CliResult) -> None:
    assert_error(result, 4, "shallow")
    text = result.stderr.lower()
    assert any(hint in text for hint in ("unshallow", "fetch-depth", "git fetch")), text


def test_shallow_clone_without_tags_is_exit_4(repo: GitRepoBuilder, tmp_path: Path) -> None:
    # actions/checkout's default: depth 1, HEAD past the last tag, no tag in the clone.
    repo.commit().tag("v1.0.0").commits(3)
    clone = repo.clone(tmp_path / "clone", "--depth", "1")
    assert git("tag", cwd=clone.path) == ""
    for args in [(), ("--counter", "commits"), ("--build", "1"), ("--initial-version", "1.0.0")]:
        _assert_says_fetch(imgtag_next(clone, *args))


def test_shallow_clone_of_a_repository_without_tags_is_exit_4(
    repo: GitRepoBuilder, tmp_path: Path
) -> None:
    # Never a silent 0.1.0 when the clone is shallow: the tags may lie beyond the cut.
    repo.commit().commits(3)
    clone = repo.clone(tmp_path / "clone", "--depth", "2")
    _assert_says_fetch(imgtag_next(clone, "--build", "1"))


def test_shallow_clone_on_the_highest_tag_works(repo: GitRepoBuilder, tmp_path: Path) -> None:
    # A tag pipeline: depth 1 with HEAD on the (highest) release tag, which the clone follows.
    repo.commit().tag("v1.0.0").commits(3).tag("v1.1.0", annotated=True)
    clone = repo.clone(tmp_path / "clone", "--depth", "1")
    assert git("tag", cwd=clone.path) == "v1.1.0"
    doc = ok_json(clone, "--counter", "commits")
    assert (doc["tag"], doc["base_tag"], doc["distance"]) == ("1.1.0-0", "v1.1.0", 0)


def _gitlab_style_fetch(origin: GitRepoBuilder, dest: Path, depth: int) -> GitRepoBuilder:
    """What GitLab's runner does: init, ``remote add origin``, a shallow fetch of the heads
    *and the tags*, and a detached checkout of the pipeline's commit."""
    env = git_env()
    git("init", "-q", str(dest), env=env)
    git("remote", "add", "origin", origin.path.resolve().as_uri(), cwd=dest, env=env)
    git(
        "fetch",
        "-q",
        f"--depth={depth}",
        "--prune",
        "origin",
        "+refs/heads/*:refs/remotes/origin/*",
        "+refs/tags/*:refs/tags/*",
        cwd=dest,
        env=env,
    )
    git("checkout", "-q", "--detach", "origin/main", cwd=dest, env=env)
    return GitRepoBuilder(dest, init=False)


def test_shallow_fetch_whose_history_holds_the_highest_tag_works(
    repo: GitRepoBuilder, tmp_path: Path
) -> None:
    repo.commit().commits(6).tag("v1.0.0").commits(3).tag("v1.4.0").commits(2)
    clone = _gitlab_style_fetch(repo, tmp_path / "clone", depth=5)
    assert git("rev-parse", "--is-shallow-repository", cwd=clone.path) == "true"
    doc = ok_json(clone, "--counter", "commits")
    assert (doc["tag"], doc["base_tag"], doc["distance"]) == ("1.4.1-2", "v1.4.0", 2)
    assert doc["commit"] == repo.head()


@pytest.mark.parametrize("depth", [1, 4])
def test_shallow_fetch_with_a_higher_tag_beyond_the_cut_is_exit_4(
    repo: GitRepoBuilder, tmp_path: Path, depth: int
) -> None:
    # v2.0.0 is the highest tag and an ancestor of HEAD, but older than the fetched depth;
    # the lower v1.9.0 is inside (depth 4) or outside too (depth 1, as actions/checkout
    # with fetch-tags: true). A silent 1.9.1 would be wrong.
    repo.commit().tag("v2.0.0").commits(6).tag("v1.9.0").commits(2)
    assert ok_tag(repo, "--build", "1") == "2.0.1-1"
    clone = _gitlab_style_fetch(repo, tmp_path / "clone", depth=depth)
    assert "v2.0.0" in git("tag", cwd=clone.path).split()
    _assert_says_fetch(imgtag_next(clone, "--build", "1"))
    result = imgtag_next(clone, "--build", "1")
    assert "v2.0.0" in result.stderr


@pytest.mark.parametrize(
    ("past", "depth"), [(2, 4), (0, 1)], ids=["past-the-lower-tag", "on-the-lower-tag"]
)
def test_shallow_clone_that_hides_a_higher_tag_is_never_a_lower_version(
    repo: GitRepoBuilder, tmp_path: Path, past: int, depth: int
) -> None:
    repo.commit().tag("v2.0.0").commits(6).tag("v1.9.0")
    if past:
        repo.commits(past)
    assert ok_tag(repo, "--build", "1") == "2.0.1-1"  # the full history's answer
    clone = repo.clone(tmp_path / "clone", "--depth", str(depth))
    assert git("tag", cwd=clone.path) == "v1.9.0"  # the clone follows only this tag
    _assert_says_fetch(imgtag_next(clone, "--build", "1"))


def test_unshallowing_fixes_the_shallow_clone(repo: GitRepoBuilder, tmp_path: Path) -> None:
    repo.commit().tag("v2.0.0").commits(6).tag("v1.9.0").commits(2)
    clone = _gitlab_style_fetch(repo, tmp_path / "clone", depth=4)
    assert imgtag_next(clone, "--build", "1").code == 4
    git("fetch", "-q", "--tags", "--unshallow", repo.path.resolve().as_uri(), cwd=clone.path)
    assert ok_tag(clone, "--build", "1") == "2.0.1-1"


# --- configuration -------------------------------------------------------------------------------


def _tagged(repo: GitRepoBuilder) -> GitRepoBuilder:
    return repo.commit().tag("v1.2.3").commit()


def test_imgtag_toml_is_used(repo: GitRepoBuilder) -> None:
    _tagged(repo).write(".imgtag.toml", 'bump = "minor"\n')
    assert ok_tag(repo, "--build", "1") == "1.3.0-1"


def test_pyproject_tool_imgtag_is_used(repo: GitRepoBuilder) -> None:
    _tagged(repo).write(
        "pyproject.toml",
        '[project]\nname = "x"\n\n[tool.imgtag]\nbump = "minor"\ntag_prefix = "v"\n'
        'counter = "commits"\n',
    )
    assert ok_tag(repo) == "1.3.0-1"


def test_a_pyproject_without_tool_imgtag_is_no_configuration(repo: GitRepoBuilder) -> None:
    _tagged(repo).write("pyproject.toml", '[project]\nname = "imgtag-like"\n')
    assert ok_tag(repo, "--build", "1") == "1.2.4-1"


def test_imgtag_toml_wins_over_pyproject(repo: GitRepoBuilder) -> None:
    _tagged(repo).write(".imgtag.toml", 'bump = "minor"\n')
    repo.write("pyproject.toml", '[tool.imgtag]\nbump = "major"\n')
    assert ok_tag(repo, "--build", "1") == "1.3.0-1"


def test_precedence_option_over_env_over_file(repo: GitRepoBuilder) -> None:
    _tagged(repo).write(".imgtag.toml", 'bump = "minor"\ncounter = "commits"\n')
    assert ok_tag(repo) == "1.3.0-1"
    assert ok_tag(repo, env={"IMGTAG_BUMP": "major"}) == "2.0.0-1"
    assert ok_tag(repo, "--bump", "none", env={"IMGTAG_BUMP": "major"}) == "1.2.3-1"
    assert ok_tag(repo, "--build", "9", env={"IMGTAG_COUNTER": "timestamp"}) == "1.3.0-9"


@pytest.mark.parametrize(
    ("filename", "text", "needles"),
    [
        (".imgtag.toml", 'bump = "minor"\nbumb = "major"\n', ["bumb"]),
        ("pyproject.toml", "[tool.imgtag]\nrepository = 'x'\n", ["repository"]),
        (".imgtag.toml", "[prune]\nkeep_forever = 1\n", ["keep_forever"]),
        ("pyproject.toml", "[tool.imgtag.frobnicate]\nx = 1\n", ["frobnicate"]),
    ],
    ids=["top", "pyproject-top", "prune", "table"],
)
def test_an_unknown_config_key_is_exit_2_naming_it(
    repo: GitRepoBuilder, filename: str, text: str, needles: list[str]
) -> None:
    _tagged(repo).write(filename, text)
    assert_error(imgtag_next(repo, "--build", "1"), 2, filename, *needles)


@pytest.mark.parametrize(
    "text",
    ["bump = 3\n", 'bump = "sideways"\n', "tag_prefix = 1\n", "[prune]\nkeep_last = -1\n"],
)
def test_a_config_value_of_the_wrong_kind_is_exit_2(repo: GitRepoBuilder, text: str) -> None:
    _tagged(repo).write(".imgtag.toml", text)
    key = text.split("=")[0].split("\n")[-1].strip()
    assert_error(imgtag_next(repo, "--build", "1"), 2, ".imgtag.toml", key)


@pytest.mark.parametrize("filename", [".imgtag.toml", "pyproject.toml"])
def test_invalid_toml_is_exit_2(repo: GitRepoBuilder, filename: str) -> None:
    _tagged(repo).write(filename, '[tool.imgtag]\nbump = "minor\n')
    assert_error(imgtag_next(repo, "--build", "1"), 2, filename, "toml")


def test_prune_and_lint_tables_are_accepted(repo: GitRepoBuilder) -> None:
    _tagged(repo).write(
        "pyproject.toml",
        "[tool.imgtag]\nbump = 'major'\nimage = 'registry.example/app'\n\n"
        "[tool.imgtag.prune]\nkeep_last = 5\nkeep_per_version = 2\nkeep_within = '30d'\n"
        "keep = ['^stable$']\nmax_delete = 100\nconcurrency = 4\n\n"
        "[tool.imgtag.lint]\nignore = ['IMG003']\nfail_on = 'warning'\n",
    )
    assert ok_tag(repo, "--build", "1") == "2.0.0-1"
    repo.write(".imgtag.toml", "bump = 'minor'\n[prune]\nkeep_last = 3\n[lint]\nhadolint = true\n")
    assert ok_tag(repo, "--build", "1") == "1.3.0-1"


def test_config_tag_prefix_for_a_monorepo(repo: GitRepoBuilder) -> None:
    repo.commit().tag("v5.0.0").tag("api/v1.2.3").commit()
    repo.write(".imgtag.toml", 'tag_prefix = "api/v"\n')
    assert ok_tag(repo, "--build", "1") == "1.2.4-1"


# --- where it runs from -----------------------------------------------------------------------


def test_repo_option_from_another_directory(repo: GitRepoBuilder, tmp_path: Path) -> None:
    _tagged(repo).write(".imgtag.toml", 'bump = "minor"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = run_cli(["next", "--repo", str(repo.path), "--build", "1"], cwd=elsewhere)
    assert (result.code, result.stdout, result.stderr) == (0, "1.3.0-1\n", "")
    # A relative --repo is relative to the working directory.
    result = run_cli(["next", "--repo", "../repo", "--build", "1"], cwd=elsewhere)
    assert (result.code, result.stdout, result.stderr) == (0, "1.3.0-1\n", "")


def test_a_linked_worktree_and_an_odd_path(repo: GitRepoBuilder, tmp_path: Path) -> None:
    _tagged(repo).write(".imgtag.toml", 'bump = "major"\n')
    odd = tmp_path / "work tree ü"
    git("worktree", "add", "-q", str(odd), "v1.2.3", cwd=repo.path)
    odd.joinpath(".imgtag.toml").write_text('bump = "minor"\n', encoding="utf-8")
    git("commit", "-q", "--allow-empty", "-m", "on the worktree", cwd=odd, env=git_env())
    # The worktree's own checkout, with the configuration at its root.
    result = run_cli(["next", "--counter", "commits"], cwd=odd)
    assert (result.code, result.stdout, result.stderr) == (0, "1.3.0-1\n", "")
    assert ok_tag(odd, "--counter", "commits") == "1.3.0-1"


def test_from_a_subdirectory_the_config_at_the_root_is_found(repo: GitRepoBuilder) -> None:
    _tagged(repo).commit("add", files={"src/app/main.py": "x\n"})
    repo.write(".imgtag.toml", 'bump = "major"\ncounter = "commits"\n')
    sub = repo.path / "src" / "app"
    result = run_cli(["next"], cwd=sub)
    assert (result.code, result.stdout, result.stderr) == (0, "2.0.0-2\n", "")
    result = run_cli(["next", "--repo", str(sub)])
    assert (result.code, result.stdout, result.stderr) == (0, "2.0.0-2\n", "")


# --- the process: imports and the console script ------------------------------------------------

_LEAN_SCRIPT = """
import sys
from tagger.cli import main
code = main(sys.argv[1:])
heavy = sorted(m for m in ("docker", "requests", "git", "rich", "botocore") if m in sys.modules)
print("RESULT", code, ",".join(heavy))
"""


@pytest.mark.parametrize("in_repo", [True, False], ids=["repo", "no-repo"])
def test_imgtag_next_imports_no_heavy_module(
    repo: GitRepoBuilder, tmp_path: Path, in_repo: bool
) -> None:
    _tagged(repo)
    where = repo.path if in_repo else tmp_path
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGTAG_")}
    env["GIT_CEILING_DIRECTORIES"] = str(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-c", _LEAN_SCRIPT, "next", "--counter", "commits"],
        cwd=where,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    last = proc.stdout.splitlines()[-1]
    expected_code = 0 if in_repo else 4
    assert last == f"RESULT {expected_code} ", (proc.stdout, proc.stderr)
    if in_repo:
        assert proc.stdout.startswith("1.2.4-1\n")


def test_the_console_script_outside_a_repository(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "imgtag"
    assert script.is_file(), f"{script} is not installed"
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGTAG_")}
    env["GIT_CEILING_DIRECTORIES"] = str(tmp_path)
    proc = subprocess.run(
        [str(script), "next"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 4, proc
    assert proc.stdout == ""
    assert proc.stderr.startswith("imgtag: error: ")
    assert proc.stderr.count("\n") == 1 and proc.stderr.endswith("\n"), proc.stderr
    assert "Traceback" not in proc.stderr


def test_shallow_fetch_without_a_remote_to_ask_is_exit_4(
    repo: GitRepoBuilder, tmp_path: Path
) -> None:
    # Fetched by URL, no remote configured: nothing can tell whether a higher tag exists
    # beyond the cut, so imgtag refuses rather than guess.
    repo.commit().commits(3).tag("v1.4.0").commits(2)
    dest = tmp_path / "anon"
    env = git_env()
    git("init", "-q", str(dest), env=env)
    git(
        "fetch",
        "-q",
        "--depth=3",
        repo.path.resolve().as_uri(),
        "+refs/heads/main:refs/remotes/x/main",
        "+refs/tags/*:refs/tags/*",
        cwd=dest,
        env=env,
    )
    git("checkout", "-q", "--detach", "x/main", cwd=dest, env=env)
    result = imgtag_next(GitRepoBuilder(dest, init=False), "--build", "1")
    _assert_says_fetch(result)
    assert "remote cannot be asked" in result.stderr


def test_config_choices_are_case_insensitive(repo: GitRepoBuilder) -> None:
    repo.commit().tag("v1.0.0").commit()
    (repo.path / ".imgtag.toml").write_text('bump = "MINOR"\n')
    assert ok_tag(repo, "--build", "1") == "1.1.0-1"


def test_a_bare_repository_says_to_use_a_checkout(repo: GitRepoBuilder, tmp_path: Path) -> None:
    repo.commit()
    git("clone", "-q", "--bare", str(repo.path), str(tmp_path / "b.git"))
    result = imgtag_next(tmp_path / "b.git")
    assert result.code == 4
    assert "bare repository" in result.stderr and "checkout" in result.stderr
