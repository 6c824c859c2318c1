"""The image-tag grammar ``X.Y.Z[-PRE]-N`` and its ordering: the one owner. Pure, no I/O.

:class:`ImageVersion` orders the way image tags must (``docs/tag-grammar.md``), which is
not semver's way: semver reads ``1.2.3-5`` as a pre-release *before* ``1.2.3`` and would
compare numeric identifiers of different lengths as strings, so image tags never go
through semver's ordering. The semver.org expression lives here too, because git release
tags and pre-release identifiers share its pieces.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering

import semver

# semver.org's own regular expression (https://semver.org/#is-there-a-suggested-regular-
# expression-regex-to-check-a-semver-string), used to pre-filter thousands of tag names
# cheaply before the few that matter are handed to `semver.Version`.
SEMVER_PATTERN = (
    r"(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)"
    r"(?:-(?P<pre>(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)"
    r"(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+(?P<meta>[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?"
)
SEMVER_RE = re.compile(SEMVER_PATTERN + r"\Z")
_PRE_IDENT = r"(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)"
_IMAGE_TAG = (
    r"(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)"
    rf"(?:-(?P<pre>{_PRE_IDENT}(?:\.{_PRE_IDENT})*))?"
    r"-(?P<build>\d+)"
)
_IMAGE_TAG_RE = re.compile(_IMAGE_TAG + r"\Z")
#: The grammar as a plain anchored pattern without named groups: prune's default
#: ``--match``, shown to users and combined with their own patterns.
IMAGE_TAG_PATTERN = "^" + re.sub(r"\(\?P<\w+>", "(", _IMAGE_TAG) + "$"
# OCI distribution spec: a tag is [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}.
_TAG_CHARS_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")

MAX_TAG_LENGTH = 128


def is_valid_tag(tag: str) -> bool:
    """Whether ``tag`` is a valid image tag (OCI distribution spec grammar).

    >>> is_valid_tag("1.4.2-17"), is_valid_tag("-x"), is_valid_tag("a" * 129)
    (True, False, False)
    """
    return _TAG_CHARS_RE.match(tag) is not None


def prerelease_key(pre: str | None) -> tuple[tuple[int, int | str], ...]:
    """Semver precedence for pre-release identifiers as a sortable tuple.

    Numeric identifiers compare as integers and sort before alphanumeric ones, which
    compare in ASCII order; a shorter list that is a prefix of a longer one sorts first
    (semver.org, rule 11). Python's tuple ordering gives the last rule for free.

    >>> prerelease_key("rc.10") > prerelease_key("rc.9")
    True
    >>> prerelease_key("alpha") < prerelease_key("alpha.1") < prerelease_key("beta")
    True
    """
    if not pre:
        return ()
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in pre.split("."))


@total_ordering
@dataclass(frozen=True, slots=True)
class ImageVersion:
    """An image tag ``X.Y.Z[-PRE]-N``, ordered as ``docs/tag-grammar.md`` says.

    >>> v = ImageVersion.parse("2.0.0-rc.1-3")
    >>> v.version, v.build, str(v)
    ('2.0.0-rc.1', 3, '2.0.0-rc.1-3')
    >>> ImageVersion.parse("1.2.3-10") > ImageVersion.parse("1.2.3-9")
    True
    >>> ImageVersion.parse("1.10.0-1") > ImageVersion.parse("1.9.0-1")
    True
    >>> ImageVersion.parse("1.2.3-1") > ImageVersion.parse("1.2.3-rc.1-99")
    True
    >>> ImageVersion.parse("latest") is None
    True
    """

    major: int
    minor: int
    patch: int
    prerelease: str | None
    build: int

    @classmethod
    def parse(cls, tag: str) -> ImageVersion | None:
        """Parse an image tag; ``None`` when it does not follow the grammar."""
        if len(tag) > MAX_TAG_LENGTH:
            return None
        m = _IMAGE_TAG_RE.match(tag)
        if m is None:
            return None
        return cls(int(m["major"]), int(m["minor"]), int(m["patch"]), m["pre"], int(m["build"]))

    @property
    def version(self) -> str:
        """``X.Y.Z[-PRE]``: the release this build belongs to."""
        core = f"{self.major}.{self.minor}.{self.patch}"
        return f"{core}-{self.prerelease}" if self.prerelease else core

    @property
    def is_release(self) -> bool:
        return self.prerelease is None

    def sort_key(self) -> tuple[object, ...]:
        return (
            self.major,
            self.minor,
            self.patch,
            self.prerelease is None,  # a release sorts after its pre-releases
            prerelease_key(self.prerelease),
            self.build,
        )

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, ImageVersion):
            return NotImplemented
        return self.sort_key() < other.sort_key()

    def __str__(self) -> str:
        return f"{self.version}-{self.build}"


def image_version(version: semver.Version, build: int) -> ImageVersion:
    """Combine X.Y.Z[-PRE] and N.

    >>> str(image_version(semver.Version.parse("2.0.0-rc.1"), 3))
    '2.0.0-rc.1-3'
    """
    return ImageVersion(
        version.major,
        version.minor,
        version.patch,
        str(version.prerelease) if version.prerelease is not None else None,
        build,
    )
