"""The pure half of ``imgtag release`` (``tagger.version.release``): the version, the notes
and the changelog edit, text in and text out. The git half is in
``tests/integration/test_release_git.py``."""

from __future__ import annotations

import pytest

from tagger.version.bump import Bump, VersionTag
from tagger.version.release import (
    NO_CHANGES,
    Commit,
    check_prerelease_id,
    edit_changelog,
    merge_entries,
    plan_version,
    release_notes,
)

NOTES = "### Added\n- x (abc1234)\n"


def t(text: str, prefix: str = "v") -> VersionTag:
    return VersionTag(prefix + text, "c", text)


@pytest.mark.parametrize(
    ("base", "last", "messages", "bump", "pre", "expected"),
    [
        (None, None, [], Bump.AUTO, None, "0.1.0"),
        (t("1.2.0"), t("1.2.0"), ["fix: a"], Bump.AUTO, None, "1.2.1"),
        (t("1.2.0"), t("1.2.0"), ["feat: a"], Bump.AUTO, "rc", "1.3.0-rc.1"),
        (t("1.3.0-rc.1"), t("1.2.0"), ["fix: a"], Bump.PATCH, None, "1.3.0"),
        (t("1.3.0-rc.1"), None, ["feat!: a"], Bump.AUTO, None, "1.3.0"),
        (t("1.2.0"), t("1.2.0"), ["fix: a"], Bump.NONE, None, "1.2.0"),
        (t("2.0.0-beta.3"), t("1.9.9"), ["fix: a"], Bump.AUTO, "beta", "2.0.0-beta.4"),
    ],
)
def test_plan_version(
    base: VersionTag | None,
    last: VersionTag | None,
    messages: list[str],
    bump: Bump,
    pre: str | None,
    expected: str,
) -> None:
    existing = [tag for tag in (base, last) if tag is not None]
    assert str(plan_version(base, last, messages, bump, pre, "0.1.0", existing)) == expected


def test_prerelease_numbers_count_every_tag_of_that_version_and_id() -> None:
    existing = [t("1.3.0-rc.1"), t("1.3.0-rc.7"), t("1.3.0-beta.9"), t("1.4.0-rc.20")]
    version = plan_version(t("1.3.0-rc.1"), t("1.2.0"), [], Bump.PATCH, "rc", "0.1.0", existing)
    assert str(version) == "1.3.0-rc.8"


def test_an_initial_prerelease_version_is_kept_or_given_the_new_id() -> None:
    assert str(plan_version(None, None, [], Bump.AUTO, None, "1.0.0-beta.1")) == "1.0.0-beta.1"
    assert str(plan_version(None, None, [], Bump.AUTO, "rc", "v1.0.0-beta.1")) == "1.0.0-rc.1"


@pytest.mark.parametrize("bad", ["", "rc_1", "01", "rc..1", "rc.", "ümlaut", "rc 1"])
def test_invalid_prerelease_ids(bad: str) -> None:
    with pytest.raises(ValueError, match="pre-release identifier"):
        check_prerelease_id(bad)


def test_notes_without_anything_notable() -> None:
    assert release_notes([Commit("a" * 40, "chore: x"), Commit("b" * 40, "Merge x")]) == (
        NO_CHANGES + "\n"
    )


def test_merge_keeps_free_text_first_and_unknown_headings_last() -> None:
    entries = "Highlights of the month.\n\n### Notes\n- Read me.\n\n### Fixed\n- By hand.\n"
    notes = "### Breaking changes\n- b (1111111)\n\n### Fixed\n- f (2222222)\n"
    assert merge_entries(notes, entries) == (
        "Highlights of the month.\n\n"
        "### Breaking changes\n- b (1111111)\n\n"
        "### Fixed\n- By hand.\n- f (2222222)\n\n"
        "### Notes\n- Read me.\n"
    )
    assert merge_entries(f"{NO_CHANGES}\n", "### Added\n- Hand.\n") == "### Added\n- Hand.\n"
    assert merge_entries(NOTES, "\n\n") == NOTES


def test_a_heading_inside_a_code_fence_is_no_section() -> None:
    old = "# C\n\n## [Unreleased]\n\n```md\n## [0.0.1] - not a section\n```\n\n## [1.0.0] - x\n"
    new = edit_changelog(old, "1.1.0", "2024-01-02", NOTES)
    assert new == (
        "# C\n\n## [Unreleased]\n\n## [1.1.0] - 2024-01-02\n\n"
        "```md\n## [0.0.1] - not a section\n```\n\n"
        "### Added\n- x (abc1234)\n\n## [1.0.0] - x\n"
    )


def test_placement_without_unreleased() -> None:
    assert edit_changelog("", "1.0.0", "d", NOTES) == "## [1.0.0] - d\n\n" + NOTES
    assert edit_changelog("Some notes\n", "1.0.0", "d", NOTES) == (
        "## [1.0.0] - d\n\n" + NOTES + "\nSome notes\n"
    )
    # A title without sections: below it (and its introduction), even without a last newline.
    assert edit_changelog("# Changes\n\nIntro", "1.0.0", "d", NOTES) == (
        "# Changes\n\nIntro\n\n## [1.0.0] - d\n\n" + NOTES
    )
    # Above the first *version* section; other sections before it stay above.
    old = "# Changes\n\n## How to read this\n\nText.\n\n## v0.9.0\n- old\n"
    assert edit_changelog(old, "1.0.0", "d", NOTES) == (
        "# Changes\n\n## How to read this\n\nText.\n\n## [1.0.0] - d\n\n"
        + NOTES
        + "\n## v0.9.0\n- old\n"
    )


def test_unreleased_at_the_end_of_the_file() -> None:
    assert edit_changelog("# C\n\n## [Unreleased]\n- Hand.\n", "1.0.0", "d", NOTES) == (
        "# C\n\n## [Unreleased]\n\n## [1.0.0] - d\n\n- Hand.\n\n" + NOTES
    )


def test_a_missing_file_becomes_a_keep_a_changelog_file() -> None:
    text = edit_changelog(None, "0.1.0", "2024-01-02", NOTES)
    assert text.startswith("# Changelog\n\n")
    assert "[Keep a Changelog](https://keepachangelog.com/en/1.1.0/)" in text
    assert text.endswith("## [Unreleased]\n\n## [0.1.0] - 2024-01-02\n\n" + NOTES)
