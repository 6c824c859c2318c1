"""Claims: the tiny unique manifest that makes "publish this tag" a race with one winner. Pure.

A registry has no "create this tag only if absent", so two runs that derive the same tag
could both find it missing and both push. Before building, a run puts a marker manifest
unique to it under :func:`claim_tag` of the tag; after the build it checks the claim is
still its own (whoever wrote last owns the tag). ``tagger.build.publish`` does the I/O;
this module only names, writes and reads claims.

A claim is a *lease*: the run that holds it renews it (writes it again with a new
``renewed`` time) while it lives, and a claim not renewed for a lease
(``IMGTAG_CLAIM_LEASE``, config ``claim_lease``, 60 s by default) belongs to a run that
died: the next run takes it over, and ``imgtag prune`` removes it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime

from tagger.errors import ConfigError
from tagger.registry.manifests import marker_manifest

CLAIM_PREFIX = "imgtag-claim-"
DEFAULT_LEASE_SECONDS = 60.0
MIN_LEASE_SECONDS = 1.0  # shorter than a registry round trip would expire while renewing
MAX_LEASE_SECONDS = 7 * 24 * 3600.0
CLAIM_SETTLE_SECONDS = 0.5  # ≫ the few ms between a contender's HEAD and its PUT

_TAG, _NONCE = "org.imgtag.claim.tag", "org.imgtag.claim.nonce"
_CREATED, _RENEWED = "org.imgtag.claim.created", "org.imgtag.claim.renewed"
# Written with microseconds (a short lease is renewed several times a second); claims of
# imgtag 0.x were stamped to the second, and both are read.
_STAMP, _STAMPS = "%Y-%m-%dT%H:%M:%S.%fZ", ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ")


def claim_tag(tag: str) -> str:
    """The claim tag for ``tag``: stable, valid, outside the image-tag grammar.

    >>> claim_tag("1.4.2-17")
    'imgtag-claim-e094d8b6a8f355a7'
    """
    return CLAIM_PREFIX + hashlib.sha256(tag.encode()).hexdigest()[:16]


def claim_manifest(
    tag: str, nonce: str, created: datetime, renewed: datetime | None = None
) -> bytes:
    """A marker manifest, unique by ``nonce`` (and by ``renewed``), saying a publish of
    ``tag`` is in progress. A renewal is the same claim with a later ``renewed``.

    >>> now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    >>> claimed_at(claim_manifest("1.0.0-1", "n", now)) == now
    True
    >>> claimed_at(claim_manifest("1.0.0-1", "n", now, now.replace(hour=13)))
    datetime.datetime(2026, 12, 1, 13, 0, tzinfo=datetime.timezone.utc)
    """
    annotations = {_TAG: tag, _NONCE: nonce, _CREATED: _stamp(created)}
    if renewed is not None:
        annotations[_RENEWED] = _stamp(renewed)
    return marker_manifest(annotations)


def claimed_at(raw: bytes) -> datetime | None:
    """When a claim was last written (made or renewed); ``None`` for no readable claim.

    >>> claimed_at(b"{}") is None, claimed_at(b"not json") is None
    (True, True)
    """
    try:
        annotations = json.loads(raw)["annotations"]
        text = annotations.get(_RENEWED) or annotations[_CREATED]
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    for fmt in _STAMPS:
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except (ValueError, TypeError):
            continue
    return None


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
