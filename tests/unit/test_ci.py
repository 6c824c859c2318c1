"""CI detection and counters: each system by its own variables, N from its own counter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from tagger.version.ci_env import (
    CI_SYSTEMS,
    CounterUnavailable,
    ci_build_number,
    detect_ci,
    timestamp_build,
)

CASES = [
    ("github", {"GITHUB_ACTIONS": "true", "GITHUB_RUN_NUMBER": "41", "CI": "true"}),
    ("gitlab", {"GITLAB_CI": "true", "CI_PIPELINE_IID": "41", "CI_PIPELINE_ID": "9999"}),
    ("jenkins", {"JENKINS_URL": "http://j/", "BUILD_NUMBER": "41", "BUILD_ID": "41"}),
    ("circleci", {"CIRCLECI": "true", "CIRCLE_BUILD_NUM": "41"}),
    ("azure", {"TF_BUILD": "True", "BUILD_BUILDID": "41", "BUILD_BUILDNUMBER": "20261127.3"}),
    ("bitbucket", {"BITBUCKET_BUILD_NUMBER": "41", "CI": "true"}),
    ("buildkite", {"BUILDKITE": "true", "BUILDKITE_BUILD_NUMBER": "41"}),
    ("travis", {"TRAVIS": "true", "TRAVIS_BUILD_NUMBER": "41"}),
    ("drone", {"DRONE": "true", "DRONE_BUILD_NUMBER": "41"}),
    ("woodpecker", {"CI": "woodpecker", "CI_PIPELINE_NUMBER": "41"}),
    ("teamcity", {"TEAMCITY_VERSION": "2024.1", "BUILD_NUMBER": "41"}),
    ("appveyor", {"APPVEYOR": "True", "APPVEYOR_BUILD_NUMBER": "41"}),
    ("codebuild", {"CODEBUILD_BUILD_ID": "p:uuid", "CODEBUILD_BUILD_NUMBER": "41"}),
    ("bamboo", {"bamboo_buildKey": "P-J", "bamboo_buildNumber": "41"}),
    ("gocd", {"GO_SERVER_URL": "https://go/", "GO_PIPELINE_COUNTER": "41"}),
    ("bitrise", {"BITRISE_IO": "true", "BITRISE_BUILD_NUMBER": "41"}),
]


@pytest.mark.parametrize(("name", "env"), CASES, ids=[c[0] for c in CASES])
def test_each_ci_and_its_counter(name: str, env: dict[str, str]) -> None:
    system = detect_ci(env)
    assert system is not None
    assert system.name == name
    assert ci_build_number(system, env) == 41


def test_every_system_is_tested() -> None:
    assert {s.name for s in CI_SYSTEMS} == {name for name, _ in CASES}


@pytest.mark.parametrize(
    "env", [{}, {"CI": "true"}, {"GITHUB_ACTIONS": "false"}, {"BUILD_NUMBER": "3"}]
)
def test_not_a_known_ci(env: dict[str, str]) -> None:
    assert detect_ci(env) is None


def test_gitea_actions_counts_as_github() -> None:
    env = {"GITEA_ACTIONS": "true", "GITHUB_ACTIONS": "true", "GITHUB_RUN_NUMBER": "5"}
    system = detect_ci(env)
    assert system is not None and system.name == "github"


@pytest.mark.parametrize("raw", ["", "abc", "-3", "1.2", "٣"])
def test_counter_must_be_a_non_negative_integer(raw: str) -> None:
    env = {"GITLAB_CI": "true", "CI_PIPELINE_IID": raw}
    system = detect_ci(env)
    assert system is not None
    with pytest.raises(CounterUnavailable, match="CI_PIPELINE_IID"):
        ci_build_number(system, env)


def test_missing_counter() -> None:
    env = {"GITHUB_ACTIONS": "true"}
    system = detect_ci(env)
    assert system is not None
    with pytest.raises(CounterUnavailable, match="does not set GITHUB_RUN_NUMBER"):
        ci_build_number(system, env)


def test_timestamp_is_utc() -> None:
    cest = timezone(timedelta(hours=2))
    assert timestamp_build(datetime(2026, 6, 1, 1, 2, 3, tzinfo=cest)) == 20260531230203
    assert timestamp_build(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == 20260102030405
