"""Release versions from git tags: which tag is the base, and how X.Y.Z moves. Pure, no I/O.

Git tags are parsed with `semver` (precedence as semver.org defines it); the image tag
they become is ``tagger.version.grammar``'s. :func:`next_version` is the pure planner;
``tagger.version.next`` gathers its facts from git and the CI environment.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import overload

import semver

from tagger.version.grammar import SEMVER_PATTERN, SEMVER_RE, ImageVersion, prerelease_key


class Bump(StrEnum):
    """How X.Y.Z moves when HEAD is past the base tag."""

    PATCH = "patch"
    MINOR = "minor"
    MAJOR = "major"
    NONE = "none"
    AUTO = "auto"


@dataclass(frozen=True, slots=True)
class VersionTag:
    """A git tag whose name is ``prefix + semver``.

    ``text`` is the semver part of the name; :attr:`version` parses it on demand
    because a repository may hold thousands of these and callers look at one or two.
    """

    name: str
    commit: str
    text: str

    @property
    def version(self) -> semver.Version:
        return semver.Version.parse(self.text)

    def precedence(self) -> tuple[object, ...]:
        """A sortable key: semver precedence (build metadata ignored).

        >>> VersionTag("v1.10.0", "c", "1.10.0").precedence() > VersionTag(
        ...     "1.9.0+b", "c", "1.9.0+b").precedence()
        True
        """
        m = SEMVER_RE.match(self.text)
        assert m is not None, self.text
        return (
            int(m["major"]),
            int(m["minor"]),
            int(m["patch"]),
            m["pre"] is None,
            prerelease_key(m["pre"]),
        )


def split_prefix(name: str, prefix: str | None) -> str | None:
    """The semver part of a tag name, or ``None`` when the name lacks the prefix.

    ``prefix=None`` is the default: an optional ``v``.

    >>> split_prefix("v1.2.3", None), split_prefix("1.2.3", None)
    ('1.2.3', '1.2.3')
    >>> split_prefix("api/v1.2.3", "api/v"), split_prefix("v1.2.3", "api/v")
    ('1.2.3', None)
    """
    if prefix is None:
        return name[1:] if name.startswith("v") else name
    return name[len(prefix) :] if name.startswith(prefix) else None


#: Longest number in a version tag taken as one (2**64 has 20 digits).
MAX_VERSION_DIGITS = 20
_LONG_NUMBER_RE = re.compile(rf"\d{{{MAX_VERSION_DIGITS + 1}}}")


class _Tags(Sequence[VersionTag]):
    """Version tags in order, each made when it is first looked at: ``next`` looks at one
    or two of 10,000 (making them all took ~8 ms, benchmarks/README.md)."""

    def __init__(self, tags: Mapping[str, str], ordered: list[tuple[str, str]]) -> None:
        self._tags = tags
        self._ordered = ordered  # (name, head)

    def __len__(self) -> int:
        return len(self._ordered)

    @overload
    def __getitem__(self, index: int) -> VersionTag: ...

    @overload
    def __getitem__(self, index: slice) -> list[VersionTag]: ...

    def __getitem__(self, index: int | slice) -> VersionTag | list[VersionTag]:
        if isinstance(index, slice):
            return [self._make(item) for item in self._ordered[index]]
        return self._make(self._ordered[index])

    def __iter__(self) -> Iterator[VersionTag]:
        return map(self._make, self._ordered)

    def _make(self, item: tuple[str, str]) -> VersionTag:
        name, head = item
        return VersionTag(name, self._tags[name], name[len(head) :])


def version_tags(tags: Mapping[str, str], prefix: str | None) -> Sequence[VersionTag]:
    """The tags named ``prefix + semver``, highest precedence first.

    ``tags`` maps tag names to the commits they point at. Names that are not exactly
    ``prefix + semver`` (``release-2020``, ``v1.2``, ``v1.02.3``) are ignored. Ties
    (``v1.2.3`` and ``1.2.3``, or two build-metadata variants) are broken by name,
    descending, so that the result is deterministic.

    >>> tags = dict.fromkeys(["v1.9.0", "v1.10.0", "v1.2", "release-2020", "v1.02.3"], "c")
    >>> [t.name for t in version_tags(tags, None)]
    ['v1.10.0', 'v1.9.0']
    >>> [t.name for t in version_tags({"api/v2.0.0": "c", "v3.0.0": "c"}, "api/v")]
    ['api/v2.0.0']
    """
    # One regular-expression pass over all names at once (in C) instead of a match
    # per name: a monorepo can hold tens of thousands of tags.
    lead = "v?" if prefix is None else re.escape(prefix)
    pattern = re.compile(rf"^({lead})({SEMVER_PATTERN})$", re.MULTILINE)
    keyed = [
        (
            (int(major), int(minor), int(patch), not pre, prerelease_key(pre) if pre else ()),
            head + text,
            head,
        )
        for head, text, major, minor, patch, pre, _meta in pattern.findall("\n".join(tags))
        # A number of more digits than any real version (a 5000-digit major) is no
        # version: passed over, like any other tag that is not one.
        if _LONG_NUMBER_RE.search(text) is None
    ]
    # Highest first; equal precedence (``v1.2.3`` and ``1.2.3``) by name, descending.
    keyed.sort(reverse=True)
    return _Tags(tags, [(name, head) for _, name, head in keyed])


# --- bumping ---------------------------------------------------------------------------

_CC_HEADER_RE = re.compile(
    r"(?P<type>[A-Za-z][\w-]*)(?:\((?P<scope>[^()\r\n]*)\))?(?P<bang>!)?: (?P<desc>\S.*)"
)
_CC_BREAKING_RE = re.compile(r"^BREAKING[ -]CHANGE: ", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class ConventionalCommit:
    """A commit message read the Conventional Commits way (the one reader of them).

    ``type`` is lower-cased, ``None`` for a free-text subject (``Merge branch 'x'``);
    ``subject`` is the description after ``type(scope): ``, or the whole first line.
    """

    type: str | None
    scope: str | None
    breaking: bool
    subject: str

    @classmethod
    def parse(cls, message: str) -> ConventionalCommit:
        """
        >>> ConventionalCommit.parse("feat(api)!: drop v1\\n\\nbody")
        ConventionalCommit(type='feat', scope='api', breaking=True, subject='drop v1')
        >>> ConventionalCommit.parse("Merge branch 'x'\\n\\nBREAKING CHANGE: y")
        ConventionalCommit(type=None, scope=None, breaking=True, subject="Merge branch 'x'")
        """
        header = message.lstrip().split("\n", 1)[0].rstrip()
        breaking = _CC_BREAKING_RE.search(message) is not None
        m = _CC_HEADER_RE.match(header)
        if m is None:
            return cls(None, None, breaking, header)
        return cls(
            m["type"].lower(), m["scope"] or None, breaking or bool(m["bang"]), m["desc"].strip()
        )


def conventional_bump(messages: Iterable[str]) -> Bump:
    """The bump Conventional Commits ask for (https://www.conventionalcommits.org/).

    ``!`` or a ``BREAKING CHANGE:`` footer → major, ``feat`` → minor, anything else
    (fixes, chores, merge commits, free text) → patch.

    >>> conventional_bump(["fix: x", "feat(api): y"])
    <Bump.MINOR: 'minor'>
    >>> conventional_bump(["refactor!: drop py2"]), conventional_bump(["x\\n\\nBREAKING CHANGE: y"])
    (<Bump.MAJOR: 'major'>, <Bump.MAJOR: 'major'>)
    >>> conventional_bump(["Merge branch 'feature'", "docs: typo"])
    <Bump.PATCH: 'patch'>
    """
    bump = Bump.PATCH
    for message in messages:
        commit = ConventionalCommit.parse(message)
        if commit.breaking:
            return Bump.MAJOR
        if commit.type == "feat":
            bump = Bump.MINOR
    return bump


def bump_version(base: semver.Version, bump: Bump) -> semver.Version:
    """The version after ``base`` when HEAD is past it. Build metadata is dropped.

    Past a pre-release, any bump but ``none`` gives the next pre-release.

    >>> str(bump_version(semver.Version.parse("1.2.3+b.7"), Bump.MINOR))
    '1.3.0'
    >>> str(bump_version(semver.Version.parse("2.0.0-rc.1"), Bump.MAJOR))
    '2.0.0-rc.2'
    >>> str(bump_version(semver.Version.parse("1.2.3"), Bump.NONE))
    '1.2.3'
    """
    if bump is Bump.AUTO:
        raise ValueError("resolve Bump.AUTO with conventional_bump() first")
    base = base.replace(build=None)
    if bump is Bump.NONE:
        return base
    if base.prerelease is not None:
        return base.bump_prerelease()
    if bump is Bump.MAJOR:
        return base.bump_major()
    if bump is Bump.MINOR:
        return base.bump_minor()
    return base.bump_patch()


# --- derivation ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Derivation:
    """Everything ``imgtag next`` knows about the tag it derived."""

    image_version: ImageVersion
    base_tag: str | None
    distance: int
    commit: str
    dirty: bool
    counter: str
    ci: str | None

    @property
    def tag(self) -> str:
        return str(self.image_version)

    @property
    def short_commit(self) -> str:
        return self.commit[:7]

    def as_dict(self) -> dict[str, object]:
        """The JSON document of ``imgtag next --format json`` (keys as the README lists them)."""
        v = self.image_version
        return {
            "tag": self.tag,
            "version": v.version,
            "build": v.build,
            "major": v.major,
            "minor": v.minor,
            "patch": v.patch,
            "prerelease": v.prerelease,
            "base_tag": self.base_tag,
            "distance": self.distance,
            "commit": self.commit,
            "short_commit": self.short_commit,
            "dirty": self.dirty,
            "counter": self.counter,
            "ci": self.ci,
        }


def next_version(
    base: VersionTag | None,
    distance: int,
    bump: Bump,
    messages: Sequence[str],
    initial_version: str,
) -> semver.Version:
    """X.Y.Z[-PRE] for HEAD: the base's on the tag, else bumped, else the initial version.

    >>> t = VersionTag("v1.2.3", "c", "1.2.3")
    >>> str(next_version(t, 0, Bump.MAJOR, [], "0.1.0"))
    '1.2.3'
    >>> str(next_version(t, 2, Bump.AUTO, ["feat: x"], "0.1.0"))
    '1.3.0'
    >>> str(next_version(None, 5, Bump.PATCH, [], "0.1.0"))
    '0.1.0'
    """
    if base is None:
        return parse_initial_version(initial_version)
    if distance == 0:
        return base.version.replace(build=None)
    if bump is Bump.AUTO:
        bump = conventional_bump(messages)
    return bump_version(base.version, bump)


def parse_initial_version(text: str) -> semver.Version:
    """Parse ``--initial-version``; a leading ``v`` is allowed, build metadata dropped.

    >>> str(parse_initial_version("v1.0.0-beta.1"))
    '1.0.0-beta.1'
    """
    rest = text[1:] if text.startswith("v") else text
    if SEMVER_RE.match(rest) is None:
        raise ValueError(f"{text!r} is not a semantic version such as 0.1.0")
    return semver.Version.parse(rest).replace(build=None)
