"""Claims: the tiny unique manifest that makes "publish this tag" a race with one winner. Pure.

A registry has no "create this tag only if absent", so two runs that derive the same tag
could both find it missing and both push. Before building, a run puts a marker manifest
unique to it under :func:`claim_tag` of the tag; after the build it checks the claim is
still its own (whoever wrote last owns the tag). ``tagger.build.publish`` does the I/O;
this module only names, writes and reads claims.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

from tagger.registry.manifests import marker_manifest

CLAIM_LEASE_SECONDS = 15 * 60  # a claim older than this belongs to a run that died
CLAIM_SETTLE_SECONDS = 0.5  # ≫ the few ms between a contender's HEAD and its PUT


def claim_tag(tag: str) -> str:
    """The claim tag for ``tag``: stable, valid, outside the image-tag grammar.

    >>> claim_tag("1.4.2-17")
    'imgtag-claim-e094d8b6a8f355a7'
    """
    return "imgtag-claim-" + hashlib.sha256(tag.encode()).hexdigest()[:16]


def claim_manifest(tag: str, nonce: str, now: datetime) -> bytes:
    """A marker manifest, unique by ``nonce``, saying a publish of ``tag`` is in progress."""
    return marker_manifest(
        {
            "org.imgtag.claim.tag": tag,
            "org.imgtag.claim.nonce": nonce,
            "org.imgtag.claim.created": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    )


def claim_age(raw: bytes, now: datetime) -> float | None:
    """Seconds since a claim was made, or ``None`` if the manifest is no readable claim."""
    try:
        created = json.loads(raw)["annotations"]["org.imgtag.claim.created"]
        when = datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except (ValueError, KeyError, TypeError):
        return None
    return (now - when).total_seconds()
