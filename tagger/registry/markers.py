"""Markers: the tags and tiny manifests imgtag itself leaves in a registry, with one owner.
Pure, except :func:`untag`, which removes a tag through the registry it is handed.

Three kinds, each written by build-push and cleaned up by prune's housekeeping:

- **Claims** (``imgtag-claim-<hash of the tag>``): a marker manifest unique to one run
  that makes "publish this tag" a race with one winner. A registry has no "create this
  tag only if absent", so two runs that derive the same tag could both find it missing
  and both push: before building, a run puts its claim under :func:`claim_tag` of the
  tag; after the build it checks the claim is still its own. A claim is a *lease*: the
  run renews it (``renewed``) while it lives; one not renewed for a lease
  (``IMGTAG_CLAIM_LEASE``, config ``claim_lease``, 60 s) belongs to a run that died: the
  next run takes it over, and prune deletes it. A claim names its run (``run``).
- **Temporary tags** (``imgtag-tmp-<run>-<platform>``): each platform's image of a
  multi-platform build before the index is written. The run id starts with the UTC time
  the run began, so prune can tell a leftover (its run holds no live claim and began more
  than a lease ago) from one a running build-push still needs.
- **Placeholders**: a unique marker pushed over a tag so that the tag can be removed alone
  by deleting the placeholder's digest (Distribution 2.8 cannot DELETE a tag, and a DELETE
  of the tag's digest would take every other tag on it along). One left behind by a
  killed run is deleted by prune. Placeholders written before this module (prune's
  ``org.imgtag.prune.untag``) are still recognised.

A marker is a tiny OCI manifest with no layers, unique by its annotations; its config is
the OCI empty descriptor, which must be in the repository before the marker is pushed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from tagger.errors import ConfigError, NotFound, Unsupported
from tagger.registry.manifests import sha256_digest
from tagger.registry.mediatypes import EMPTY_CONFIG, EMPTY_CONFIG_TYPE, OCI_MANIFEST

if TYPE_CHECKING:
    from tagger.registry.platform import Platform
    from tagger.registry.protocols import Registry

CLAIM_PREFIX = "imgtag-claim-"
TEMP_PREFIX = "imgtag-tmp-"
DEFAULT_LEASE_SECONDS = 60.0
MIN_LEASE_SECONDS = 1.0  # shorter than a registry round trip would expire while renewing
MAX_LEASE_SECONDS = 7 * 24 * 3600.0
CLAIM_SETTLE_SECONDS = 0.5  # ≫ the few ms between a contender's HEAD and its PUT

_TAG, _NONCE = "org.imgtag.claim.tag", "org.imgtag.claim.nonce"
_CREATED, _RENEWED = "org.imgtag.claim.created", "org.imgtag.claim.renewed"
_RUN = "org.imgtag.claim.run"
_PLACEHOLDER, _PLACEHOLDER_NONCE = "org.imgtag.placeholder", "org.imgtag.placeholder.nonce"
#: Placeholder keys of earlier versions (prune's own, before markers had one owner).
_OLD_PLACEHOLDER_KEYS = ("org.imgtag.prune.untag",)
# Written with microseconds (a short lease is renewed several times a second); claims of
# imgtag 0.x were stamped to the second, and both are read.
_STAMP, _STAMPS = "%Y-%m-%dT%H:%M:%S.%fZ", ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ")
_RUN_STAMP = "%Y%m%d%H%M%S"
# imgtag-tmp-[<YYYYmmddHHMMSS>-]<12 hex>-<platform>; the stamp is missing on older runs'.
_TEMP_RE = re.compile(r"imgtag-tmp-(?:(\d{14})-)?([0-9a-f]{12})-[A-Za-z0-9_.-]+\Z")


def marker_manifest(annotations: Mapping[str, str]) -> bytes:
    """A tiny OCI manifest with no layers, made unique by its ``annotations``. Its config
    is the empty descriptor, which must be in the repository (``upload_blob``) first.

    >>> len(marker_manifest({"a": "1"})) < 300
    True
    """
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": EMPTY_CONFIG_TYPE,
            "digest": sha256_digest(EMPTY_CONFIG),
            "size": len(EMPTY_CONFIG),
        },
        "layers": [],
        "annotations": dict(annotations),
    }
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def _annotations(raw: bytes) -> dict[str, object]:
    try:
        annotations = json.loads(raw).get("annotations")
    except (ValueError, AttributeError):
        return {}
    return annotations if isinstance(annotations, dict) else {}


# -- claims ------------------------------------------------------------------------------


def claim_tag(tag: str) -> str:
    """The claim tag for ``tag``: stable, valid, outside the image-tag grammar.

    >>> claim_tag("1.4.2-17")
    'imgtag-claim-e094d8b6a8f355a7'
    """
    return CLAIM_PREFIX + hashlib.sha256(tag.encode()).hexdigest()[:16]


def claim_manifest(
    tag: str,
    nonce: str,
    created: datetime,
    renewed: datetime | None = None,
    run: str | None = None,
) -> bytes:
    """A marker manifest, unique by ``nonce`` (and by ``renewed``), saying a publish of
    ``tag`` is in progress by the run ``run``. A renewal is the same claim with a later
    ``renewed``.

    >>> now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    >>> claimed_at(claim_manifest("1.0.0-1", "n", now)) == now
    True
    >>> claimed_at(claim_manifest("1.0.0-1", "n", now, now.replace(hour=13)))
    datetime.datetime(2026, 12, 1, 13, 0, tzinfo=datetime.timezone.utc)
    >>> claim_run(claim_manifest("1.0.0-1", "n", now, run="20261201120000-0a1b2c3d4e5f"))
    '20261201120000-0a1b2c3d4e5f'
    """
    annotations = {_TAG: tag, _NONCE: nonce, _CREATED: _stamp(created)}
    if renewed is not None:
        annotations[_RENEWED] = _stamp(renewed)
    if run is not None:
        annotations[_RUN] = run
    return marker_manifest(annotations)


def claimed_at(raw: bytes) -> datetime | None:
    """When a claim was last written (made or renewed); ``None`` for no readable claim.

    >>> claimed_at(b"{}") is None, claimed_at(b"not json") is None
    (True, True)
    """
    annotations = _annotations(raw)
    text = annotations.get(_RENEWED) or annotations.get(_CREATED)
    if not isinstance(text, str):
        return None
    for fmt in _STAMPS:
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


def claim_run(raw: bytes) -> str | None:
    """The run a claim belongs to (claims of older versions name none)."""
    run = _annotations(raw).get(_RUN)
    return run if isinstance(run, str) else None


def claim_age(raw: bytes, now: datetime) -> float | None:
    """Seconds since a claim was last written, or ``None`` if it is no readable claim."""
    when = claimed_at(raw)
    return None if when is None else (now - when).total_seconds()


def lease_seconds(env: Mapping[str, str], configured: object = None) -> float:
    """The lease: ``IMGTAG_CLAIM_LEASE`` > config ``claim_lease`` > 60 s.

    >>> lease_seconds({}), lease_seconds({"IMGTAG_CLAIM_LEASE": "5"}), lease_seconds({}, 30)
    (60.0, 5.0, 30.0)
    >>> lease_seconds({"IMGTAG_CLAIM_LEASE": "soon"})
    Traceback (most recent call last):
    ...
    tagger.errors.ConfigError: IMGTAG_CLAIM_LEASE 'soon' is not a number of seconds from 1 to 604800
    """
    where = "IMGTAG_CLAIM_LEASE"
    value: object = env.get(where)
    if value is None:
        where, value = "claim_lease", configured
    if value is None:
        return DEFAULT_LEASE_SECONDS
    seconds = math.nan  # anything but a number fails the range check below
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        with contextlib.suppress(ValueError):
            seconds = float(value)
    if not MIN_LEASE_SECONDS <= seconds <= MAX_LEASE_SECONDS:  # NaN fails too
        raise ConfigError(
            f"{where} {value!r} is not a number of seconds from {MIN_LEASE_SECONDS:g} to "
            f"{MAX_LEASE_SECONDS:g}"
        )
    return seconds


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime(_STAMP)


# -- temporary tags ----------------------------------------------------------------------


def run_id(started: datetime, nonce: str) -> str:
    """A run's id: when it began (UTC, to the second) and 12 hex digits of ``nonce``.

    >>> run_id(datetime(2026, 12, 7, 15, 30, tzinfo=UTC), "0a1b2c3d4e5f6789")
    '20261207153000-0a1b2c3d4e5f'
    """
    return f"{started.astimezone(UTC).strftime(_RUN_STAMP)}-{nonce[:12]}"


def temp_tag(run: str, platform: Platform | None) -> str:
    """The temporary tag one platform's image is pushed under before the index; without a
    platform, the tag a builder that pushes itself (buildx) writes its whole result to.

    >>> from tagger.registry.platform import Platform
    >>> temp_tag("20261207153000-0a1b2c3d4e5f", Platform.parse("linux/arm/v7"))
    'imgtag-tmp-20261207153000-0a1b2c3d4e5f-linux-arm-v7'
    >>> temp_tag("20261207153000-0a1b2c3d4e5f", None)
    'imgtag-tmp-20261207153000-0a1b2c3d4e5f-build'
    """
    where = "build" if platform is None else str(platform).replace("/", "-")
    return f"{TEMP_PREFIX}{run}-{where}"


def stage_tag(run: str) -> str:
    """The temporary tag a signed build's image (or index) is pushed under, so that it
    can be verified and signed before its final tag exists.

    >>> stage_tag("20261207153000-0a1b2c3d4e5f")
    'imgtag-tmp-20261207153000-0a1b2c3d4e5f-signing'
    """
    return f"{TEMP_PREFIX}{run}-signing"


@dataclass(frozen=True, slots=True)
class TempTag:
    """What a temporary tag's name tells: its run, and when the run began (``None`` for
    the names of older versions, which carry no time)."""

    run: str
    started: datetime | None


def parse_temp_tag(tag: str) -> TempTag | None:
    """The run of a temporary tag; ``None`` for any other tag.

    >>> parse_temp_tag("imgtag-tmp-20261207153000-0a1b2c3d4e5f-linux-amd64").started.hour
    15
    >>> parse_temp_tag("imgtag-tmp-0a1b2c3d4e5f-linux-amd64")
    TempTag(run='0a1b2c3d4e5f', started=None)
    >>> parse_temp_tag("1.0.0-1") is None
    True
    """
    m = _TEMP_RE.match(tag)
    if m is None:
        return None
    if m[1] is None:
        return TempTag(m[2], None)
    try:
        started = datetime.strptime(m[1], _RUN_STAMP).replace(tzinfo=UTC)
    except ValueError:
        return TempTag(f"{m[1]}-{m[2]}", None)
    return TempTag(f"{m[1]}-{m[2]}", started)


# -- placeholders ------------------------------------------------------------------------


def placeholder_manifest(tag: str, nonce: str) -> bytes:
    """A manifest no other tag shares (``nonce`` makes it unique), pushed over ``tag`` to
    remove that tag alone.

    >>> placeholder_manifest("t", "a") != placeholder_manifest("t", "b")
    True
    >>> is_placeholder(placeholder_manifest("t", "a"))
    True
    """
    return marker_manifest({_PLACEHOLDER: tag, _PLACEHOLDER_NONCE: nonce})


def is_placeholder(raw: bytes) -> bool:
    """Whether a manifest is an untag placeholder (of this version or an older one).

    >>> is_placeholder(marker_manifest({"org.imgtag.prune.untag": "1.0.0-1"}))
    True
    >>> is_placeholder(claim_manifest("1", "n", datetime(2026, 1, 1, tzinfo=UTC)))
    False
    """
    annotations = _annotations(raw)
    return any(key in annotations for key in (_PLACEHOLDER, *_OLD_PLACEHOLDER_KEYS))


def untag(registry: Registry, repository: str, tag: str, nonce: Callable[[], str]) -> bool:
    """Remove ``tag`` alone, leaving its manifest for the other tags and indexes on it.
    Does I/O through ``registry``. ``True`` when it took a placeholder.

    1. A DELETE of the tag (OCI distribution spec 1.1, or a provider that deletes tags).
    2. Where that is unsupported (Distribution 2.8, ghcr), point the tag at a unique
       placeholder, then delete that placeholder by its digest, which no other tag shares.
    """
    try:
        registry.delete_manifest(repository, tag)
        return False
    except (Unsupported, NotFound):
        pass
    registry.upload_blob(repository, EMPTY_CONFIG)
    raw = placeholder_manifest(tag, nonce())
    digest = registry.put_manifest(repository, tag, raw, OCI_MANIFEST)
    registry.delete_manifest(repository, digest)
    return True
