"""Which floating tags (``latest``, ``X``, ``X.Y``, ``main``) a published build may move. Pure.

Aliases are mutable by design, so they are moved only after the immutable tag is verified,
and release aliases only by the highest release of their line: a backport or a
pre-release never moves ``latest``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from tagger.version.grammar import SEMVER_RE, ImageVersion

_FLOATING = frozenset({"latest"})
#: The build number a plain ``X.Y.Z`` tag orders with: after every ``X.Y.Z-N`` of its
#: release (it is that release, promoted), before the next release.
RELEASE_TAG_BUILD = 2**63 - 1
_VERSION_ALIAS_RE = re.compile(r"(0|[1-9]\d*)(\.(0|[1-9]\d*))?\Z")


def is_version_alias(alias: str) -> bool:
    """Whether ``alias`` is a release alias: ``latest``, ``X`` or ``X.Y``.

    >>> [is_version_alias(a) for a in ("latest", "1", "1.4", "1.4.2", "main", "01")]
    [True, True, True, False, False, False]
    """
    return alias in _FLOATING or _VERSION_ALIAS_RE.match(alias) is not None


def tag_version(tag: str) -> ImageVersion | None:
    """The version a tag orders as: ``X.Y.Z[-PRE]-N`` as the grammar says, and a plain
    ``X.Y.Z[-PRE]`` (a release tag ``imgtag promote`` writes) as that release, after each
    of its builds. ``None`` for any other tag.

    >>> tag_version("1.4.2-9") < tag_version("1.4.2") < tag_version("1.4.3-1")
    True
    >>> tag_version("1.4.2-9").build, tag_version("main"), tag_version("1.4.2+meta")
    (9, None, None)
    """
    version = ImageVersion.parse(tag)
    if version is not None:
        return version
    m = SEMVER_RE.match(tag)
    if m is None or m["meta"] is not None:
        return None
    return ImageVersion(
        int(m["major"]), int(m["minor"]), int(m["patch"]), m["pre"], RELEASE_TAG_BUILD
    )


def moving_aliases(
    aliases: Sequence[str], version: ImageVersion, registry_tags: Sequence[str]
) -> tuple[list[str], list[str]]:
    """Split ``aliases`` into (move, hold).

    ``latest``, ``X`` and ``X.Y`` move only for a release that is the highest among the
    registry's releases (all of them, that major, or that major.minor), and ``X``/``X.Y``
    only when they are this build's own: a backport, a pre-release or a build of another
    line never moves them. Other aliases (``main``, ``sha-abc``) always move.

    >>> tags = ["2.0.0-1", "1.4.2-9", "1.5.0-rc.1-1"]
    >>> moving_aliases(["latest", "1", "1.4", "edge"], ImageVersion.parse("1.4.3-1"), tags)
    (['1', '1.4', 'edge'], ['latest'])
    >>> moving_aliases(["latest", "2"], ImageVersion.parse("2.1.0-rc.1-1"), tags)
    ([], ['latest', '2'])
    >>> moving_aliases(["1", "1.0"], ImageVersion.parse("0.9.1-1"), tags)
    ([], ['1', '1.0'])

    A plain release tag counts as that release (``tag_version``):

    >>> moving_aliases(["latest"], ImageVersion.parse("2.0.0-2"), [*tags, "2.0.0"])
    ([], ['latest'])
    """
    releases = [v for v in map(tag_version, registry_tags) if v and v.is_release]
    own_major, own_minor = f"{version.major}", f"{version.major}.{version.minor}"
    move: list[str] = []
    hold: list[str] = []
    for alias in aliases:
        if not is_version_alias(alias):
            move.append(alias)
            continue
        if not version.is_release or alias not in (*_FLOATING, own_major, own_minor):
            hold.append(alias)
            continue
        if alias in _FLOATING:
            peers = releases
        elif alias == own_major:
            peers = [v for v in releases if v.major == version.major]
        else:
            peers = [v for v in releases if (v.major, v.minor) == (version.major, version.minor)]
        (move if all(v <= version for v in peers) else hold).append(alias)
    return move, hold
