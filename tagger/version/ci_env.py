"""CI detection and build counters, read from an environment mapping. Pure, no I/O.

Each CI system is recognised by a variable only it sets, and gives its own
per-project (per-pipeline, per-job) build counter: the number users see in the CI's UI
and that grows with every run of that project. Global run ids and UUIDs are no counters.
Sources: each CI's documentation of its predefined variables (linked per entry).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum


class Counter(StrEnum):
    """Where N in ``X.Y.Z-N`` comes from."""

    CI = "ci"
    TIMESTAMP = "timestamp"
    COMMITS = "commits"
    REGISTRY = "registry"
    AUTO = "auto"


@dataclass(frozen=True, slots=True)
class CISystem:
    """A CI system: its name, how to recognise it, and its build counter variable."""

    name: str
    detect: tuple[tuple[str, str | None], ...]  # (variable, required value or None = any)
    counter_var: str
    docs: str

    def matches(self, env: Mapping[str, str]) -> bool:
        return any(
            var in env and (value is None or env[var].lower() == value)
            for var, value in self.detect
        )


# Order matters where systems share variables: Gitea/Forgejo Actions also set
# GITHUB_ACTIONS and GITHUB_RUN_NUMBER (same meaning, so they count as github);
# TeamCity and Jenkins both set BUILD_NUMBER, so each is recognised by its own marker.
CI_SYSTEMS: tuple[CISystem, ...] = (
    CISystem(
        "github",
        (("GITHUB_ACTIONS", "true"),),
        "GITHUB_RUN_NUMBER",
        "https://docs.github.com/actions/learn-github-actions/variables",
    ),
    CISystem(
        "gitlab",
        (("GITLAB_CI", "true"),),
        "CI_PIPELINE_IID",
        "https://docs.gitlab.com/ee/ci/variables/predefined_variables.html",
    ),
    CISystem(
        "jenkins",
        (("JENKINS_URL", None), ("JENKINS_HOME", None)),
        "BUILD_NUMBER",
        "https://www.jenkins.io/doc/book/pipeline/jenkinsfile/#using-environment-variables",
    ),
    CISystem(
        "circleci",
        (("CIRCLECI", "true"),),
        "CIRCLE_BUILD_NUM",
        "https://circleci.com/docs/variables/",
    ),
    CISystem(
        # Azure has no per-project integer counter in the environment (the build
        # *number* is a format string); BUILD_BUILDID grows monotonically instead.
        "azure",
        (("TF_BUILD", "true"),),
        "BUILD_BUILDID",
        "https://learn.microsoft.com/azure/devops/pipelines/build/variables",
    ),
    CISystem(
        "bitbucket",
        (("BITBUCKET_BUILD_NUMBER", None),),
        "BITBUCKET_BUILD_NUMBER",
        "https://support.atlassian.com/bitbucket-cloud/docs/variables-and-secrets/",
    ),
    CISystem(
        "buildkite",
        (("BUILDKITE", "true"),),
        "BUILDKITE_BUILD_NUMBER",
        "https://buildkite.com/docs/pipelines/environment-variables",
    ),
    CISystem(
        "travis",
        (("TRAVIS", "true"),),
        "TRAVIS_BUILD_NUMBER",
        "https://docs.travis-ci.com/user/environment-variables/",
    ),
    CISystem(
        "drone",
        (("DRONE", "true"),),
        "DRONE_BUILD_NUMBER",
        "https://docs.drone.io/pipeline/environment/reference/",
    ),
    CISystem(
        "woodpecker",
        (("CI", "woodpecker"),),
        "CI_PIPELINE_NUMBER",
        "https://woodpecker-ci.org/docs/usage/environment",
    ),
    CISystem(
        "teamcity",
        (("TEAMCITY_VERSION", None),),
        "BUILD_NUMBER",
        "https://www.jetbrains.com/help/teamcity/predefined-build-parameters.html",
    ),
    CISystem(
        "appveyor",
        (("APPVEYOR", "true"),),
        "APPVEYOR_BUILD_NUMBER",
        "https://www.appveyor.com/docs/environment-variables/",
    ),
    CISystem(
        "codebuild",
        (("CODEBUILD_BUILD_ID", None),),
        "CODEBUILD_BUILD_NUMBER",
        "https://docs.aws.amazon.com/codebuild/latest/userguide/build-env-ref-env-vars.html",
    ),
    CISystem(
        "bamboo",
        (("bamboo_buildKey", None),),
        "bamboo_buildNumber",
        "https://confluence.atlassian.com/bamboo/bamboo-variables-289277087.html",
    ),
    CISystem(
        "gocd",
        (("GO_SERVER_URL", None),),
        "GO_PIPELINE_COUNTER",
        "https://docs.gocd.org/current/faq/dev_use_current_revision_in_build.html",
    ),
    CISystem(
        "bitrise",
        (("BITRISE_IO", "true"),),
        "BITRISE_BUILD_NUMBER",
        "https://devcenter.bitrise.io/en/references/available-environment-variables.html",
    ),
)


def detect_ci(env: Mapping[str, str]) -> CISystem | None:
    """The CI system this environment belongs to, or ``None`` outside a known CI.

    >>> detect_ci({"GITLAB_CI": "true", "CI": "true"}).name
    'gitlab'
    >>> detect_ci({"CI": "true"}) is None
    True
    """
    for system in CI_SYSTEMS:
        if system.matches(env):
            return system
    return None


class CounterUnavailable(ValueError):
    """The CI's counter variable is missing or not a non-negative integer."""


def ci_build_number(system: CISystem, env: Mapping[str, str]) -> int:
    """The CI's build counter as an integer.

    >>> ci_build_number(detect_ci({"GITHUB_ACTIONS": "true", "GITHUB_RUN_NUMBER": "42"}),
    ...                 {"GITHUB_RUN_NUMBER": "42"})
    42
    """
    raw = env.get(system.counter_var)
    if raw is None or raw == "":
        raise CounterUnavailable(f"{system.name} CI does not set {system.counter_var}")
    if not raw.isdigit() or not raw.isascii():
        raise CounterUnavailable(
            f"{system.name} CI sets {system.counter_var}={raw!r}, which is not a "
            "non-negative integer"
        )
    return int(raw)


def timestamp_build(now: datetime) -> int:
    """N for ``--counter timestamp``: UTC ``YYYYMMDDHHMMSS``.

    >>> from datetime import timezone, timedelta
    >>> timestamp_build(datetime(2026, 11, 27, 23, 15, tzinfo=timezone(timedelta(hours=1))))
    20261127221500
    """
    return int(now.astimezone(UTC).strftime("%Y%m%d%H%M%S"))
