"""ImageVersion ordering and parsing, tag selection, bumps: the pure planner of imgtag next."""

from __future__ import annotations

import random

import pytest
import semver

from tagger.version.bump import (
    Bump,
    VersionTag,
    bump_version,
    conventional_bump,
    next_version,
    version_tags,
)
from tagger.version.grammar import ImageVersion, is_valid_tag


@pytest.mark.parametrize(
    "ordered",
    [
        ["1.2.3-9", "1.2.3-10"],
        ["1.9.0-1", "1.10.0-1"],
        ["1.2.3-rc.1-99", "1.2.3-1"],  # a release after its pre-releases
        ["2.0.0-rc.9-1", "2.0.0-rc.10-1"],  # numeric identifiers as integers
        ["2.0.0-alpha-1", "2.0.0-alpha.1-1", "2.0.0-beta-1", "2.0.0-rc.1-1"],
        ["1.2.3-20261127221500", "1.2.4-1"],
        ["0.9.9-1", "1.0.0-0"],
    ],
)
def test_image_tags_order_as_the_contract_says(ordered: list[str]) -> None:
    versions = [ImageVersion.parse(t) for t in ordered]
    assert all(v is not None for v in versions)
    shuffled = list(versions)
    random.Random(7).shuffle(shuffled)
    assert [str(v) for v in sorted(shuffled)] == ordered  # type: ignore[type-var]


def test_semver_would_order_image_tags_wrongly() -> None:
    # The reason ImageVersion exists: semver reads "-5" as a pre-release.
    assert semver.Version.parse("1.2.3-5") < semver.Version.parse("1.2.3")
    assert ImageVersion.parse("1.2.3-5") is not None


@pytest.mark.parametrize(
    ("tag", "parts"),
    [
        ("1.4.2-17", (1, 4, 2, None, 17)),
        ("2.0.0-rc.1-3", (2, 0, 0, "rc.1", 3)),
        ("1.4.2-20261127221500", (1, 4, 2, None, 20261127221500)),
        ("1.2.3-5-7", (1, 2, 3, "5", 7)),  # N is the last all-digit part
        ("0.0.0-0", (0, 0, 0, None, 0)),
    ],
)
def test_parse(tag: str, parts: tuple[object, ...]) -> None:
    v = ImageVersion.parse(tag)
    assert v is not None
    assert (v.major, v.minor, v.patch, v.prerelease, v.build) == parts
    assert str(v) == tag


@pytest.mark.parametrize(
    "tag",
    ["latest", "1.2.3", "1.2-3", "01.2.3-4", "1.2.3-rc.01-4", "v1.2.3-4", "1.2.3-4+meta", "1.2.3-"],
)
def test_not_image_versions(tag: str) -> None:
    assert ImageVersion.parse(tag) is None


def test_tag_charset_and_length() -> None:
    assert is_valid_tag("a" * 128)
    assert not is_valid_tag("a" * 129)
    assert not is_valid_tag(".x")
    assert not is_valid_tag("1.2.3+meta")
    assert ImageVersion.parse("1.2.3-" + "9" * 200) is None


def test_version_tags_highest_first_and_filtered() -> None:
    names = [
        "v1.9.0",
        "v1.10.0",
        "1.2.0",
        "v2.0.0-rc.1",
        "v2.0.0-rc.10",
        "release-2020",
        "v1.2",
        "v1.02.3",
        "vv1.0.0",
        "1.2.3.4",
        "v1.10.0+build.5",
    ]
    tags = {name: f"c-{name}" for name in names}
    result = version_tags(tags, None)
    assert [t.name for t in result] == [
        "v2.0.0-rc.10",
        "v2.0.0-rc.1",
        "v1.10.0+build.5",
        "v1.10.0",
        "v1.9.0",
        "1.2.0",
    ]
    assert result[0].commit == "c-v2.0.0-rc.10"
    assert str(result[2].version) == "1.10.0+build.5"


def test_version_tags_with_a_monorepo_prefix() -> None:
    tags = dict.fromkeys(["api/v1.2.3", "api/v1.10.0", "web/v9.0.0", "v8.0.0", "api/1.0.0"], "c")
    assert [t.name for t in version_tags(tags, "api/v")] == ["api/v1.10.0", "api/v1.2.3"]
    assert [t.name for t in version_tags({"1.0.0": "c", "v0.5.0": "c"}, "v")] == ["v0.5.0"]
    assert [t.name for t in version_tags({"1.0.0": "c"}, "")] == ["1.0.0"]
    # A prefix is literal text, not a pattern.
    assert list(version_tags({"apixv1.0.0": "c"}, "api.v")) == []


@pytest.mark.parametrize(
    ("base", "bump", "expected"),
    [
        ("1.2.3", Bump.PATCH, "1.2.4"),
        ("1.2.3", Bump.MINOR, "1.3.0"),
        ("1.2.3", Bump.MAJOR, "2.0.0"),
        ("1.2.3", Bump.NONE, "1.2.3"),
        ("1.2.3+meta.1", Bump.PATCH, "1.2.4"),
        ("2.0.0-rc.1", Bump.PATCH, "2.0.0-rc.2"),
        ("2.0.0-rc.1", Bump.MAJOR, "2.0.0-rc.2"),
        ("2.0.0-rc.1", Bump.NONE, "2.0.0-rc.1"),
        ("2.0.0-beta", Bump.MINOR, "2.0.0-beta.0"),  # as semver (and npm semver) do
        ("0.9.9", Bump.MAJOR, "1.0.0"),
    ],
)
def test_bump(base: str, bump: Bump, expected: str) -> None:
    assert str(bump_version(semver.Version.parse(base), bump)) == expected


def test_bump_auto_must_be_resolved_first() -> None:
    with pytest.raises(ValueError):
        bump_version(semver.Version.parse("1.0.0"), Bump.AUTO)


@pytest.mark.parametrize(
    ("messages", "expected"),
    [
        ([], Bump.PATCH),
        (["fix: a"], Bump.PATCH),
        (["feat: a"], Bump.MINOR),
        (["Feat(parser): a"], Bump.MINOR),
        (["fix: a", "feat(x): b", "chore: c"], Bump.MINOR),
        (["feat!: drop"], Bump.MAJOR),
        (["refactor(core)!: drop"], Bump.MAJOR),
        (["fix: a\n\nBREAKING CHANGE: the API changed"], Bump.MAJOR),
        (["fix: a\n\nBREAKING-CHANGE: the API changed"], Bump.MAJOR),
        (["fix: mention of breaking change: in lower case"], Bump.PATCH),
        (["feature: not a conventional type", "featx: no"], Bump.PATCH),
        (["feat:no space is not conventional"], Bump.PATCH),
        (["Merge branch 'x' into main"], Bump.PATCH),
        (["docs: a\n\nfeat: in the body is not a header"], Bump.PATCH),
    ],
)
def test_conventional_commits(messages: list[str], expected: Bump) -> None:
    assert conventional_bump(messages) is expected


def test_next_version() -> None:
    base = VersionTag("v1.2.3+b", "c", "1.2.3+b")
    assert str(next_version(base, 0, Bump.MAJOR, [], "0.1.0")) == "1.2.3"
    assert str(next_version(base, 3, Bump.AUTO, ["feat!: x"], "0.1.0")) == "2.0.0"
    assert str(next_version(None, 3, Bump.MAJOR, [], "v2.0.0-beta.1")) == "2.0.0-beta.1"
    with pytest.raises(ValueError, match="not a semantic version"):
        next_version(None, 0, Bump.PATCH, [], "1.0")
