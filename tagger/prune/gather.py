"""What a repository holds, read from the registry for the prune planner. Does I/O.

One tag list, a HEAD per tag (concurrently), index children (nested ones too), config
blobs only where a keep rule needs created times (once per digest), the markers
(placeholders, build-push's claims and their runs) and the signature subjects that are gone;
then (:func:`gather_referrers`) the untagged referrers the OCI 1.1 referrers API lists,
where the registry answers it.
"""

from __future__ import annotations

import re
from concurrent.futures import Executor, ThreadPoolExecutor
from datetime import UTC, datetime

from tagger.errors import RegistryError
from tagger.prune.plan import SIGNATURE_RE, Policy, TagState
from tagger.registry.markers import CLAIM_PREFIX, claim_run, claimed_at, is_placeholder
from tagger.registry.mediatypes import OCI_MANIFEST, is_index
from tagger.registry.protocols import Registry
from tagger.version.grammar import ImageVersion


def gather(
    client: Registry,
    repository: str,
    policy: Policy,
    concurrency: int,
    pool: Executor | None = None,
) -> tuple[list[TagState], dict[str, frozenset[str]], frozenset[str]]:
    """What the registry holds for ``repository``: one tag list, concurrent HEADs, index
    children (nested ones too), config blobs only where a rule needs created times (once
    per digest), and the signature subjects that are gone.

    ``pool`` runs the requests where a run over many repositories shares one (its owner
    shuts it down); else one of ``concurrency`` threads lives for this call."""
    tags = client.list_tags(repository)
    own = ThreadPoolExecutor(max_workers=max(1, concurrency)) if pool is None else None
    pool = own or pool
    assert pool is not None
    try:
        heads = list(pool.map(lambda t: (t, client.head_manifest(repository, t)), tags))
        infos = {t: h for t, h in heads if h is not None}  # vanished since the list: skip
        children = _index_children(
            client, repository, pool, {h.digest for h in infos.values() if is_index(h.media_type)}
        )
        # Created times: every digest for --keep-within; otherwise only where keep-last
        # must order candidates outside the X.Y.Z-N grammar (a custom --match).
        wanted = {
            h.digest
            for t, h in infos.items()
            if policy.needs_created
            or (policy.match.search(t) and ImageVersion.parse(t) is None and policy.keep_last)
        }
        created = dict(pool.map(lambda d: (d, _created(client, repository, d)), sorted(wanted)))
        # Placeholders of an interrupted untag: tiny OCI manifests; read only those.
        small = sorted(
            {h.digest for h in infos.values() if h.media_type == OCI_MANIFEST and 0 < h.size < 1024}
        )
        markers = dict(pool.map(lambda d: (d, _marker(client, repository, d)), small))
        placeholders = {d for d, (is_ph, _, _) in markers.items() if is_ph}
        claimed = {d: (when, run) for d, (_, when, run) in markers.items() if when is not None}
        subjects = {f"{m[1]}:{m[2]}" for t in infos if (m := SIGNATURE_RE.match(t)) is not None}
        known = {h.digest for h in infos.values()} | {c for cs in children.values() for c in cs}
        unknown = sorted(subjects - known)
        missing = frozenset(
            d
            for d, gone in pool.map(
                lambda d: (d, client.head_manifest(repository, d) is None), unknown
            )
            if gone
        )
    finally:
        # A signal raised while waiting: queued requests are dropped, not run to the end.
        if own is not None:
            own.shutdown(wait=True, cancel_futures=True)
    states = []
    for t, h in infos.items():
        is_claim = t.startswith(CLAIM_PREFIX)
        when, run = claimed.get(h.digest, (None, None)) if is_claim else (None, None)
        states.append(
            TagState(
                t,
                h.digest,
                created.get(h.digest),
                is_index(h.media_type),
                h.digest in placeholders,
                when,
                run,
            )
        )
    return states, children, missing


#: How deep referrers of referrers are followed (a signature of an SBOM of an image is 2).
MAX_REFERRER_DEPTH = 4


def gather_referrers(
    client: Registry,
    repository: str,
    states: list[TagState],
    children: dict[str, frozenset[str]],
    concurrency: int,
    pool: Executor | None = None,
) -> dict[str, frozenset[str]]:
    """Each digest's referrers from the registry's referrers API, for every digest a tag
    reaches (index children included) and then for the referrers found, a few levels
    deep. Empty where the registry has no referrers API (one request tells: Distribution
    2.8 answers 404); the referrers tag schema's ``sha256-<hex>`` tags hold them there.

    ``pool`` runs the requests where a run over many repositories shares one (its owner
    shuts it down); else one of ``concurrency`` threads lives for this call."""
    reached = {s.digest for s in states} | {c for kids in children.values() for c in kids}
    todo = sorted(reached)
    if not todo:
        return {}
    first = client.referrers(repository, todo[0])
    if first is None:
        return {}
    found: dict[str, frozenset[str]] = {todo[0]: frozenset(first)}
    own = pool is None
    if pool is None:
        pool = ThreadPoolExecutor(max_workers=max(1, concurrency))
    try:
        todo = todo[1:] + sorted(set(first) - reached)
        for _depth in range(MAX_REFERRER_DEPTH):
            if not todo:
                break
            answers = dict(pool.map(lambda d: (d, client.referrers(repository, d)), todo))
            found.update({d: frozenset(r or ()) for d, r in answers.items()})
            todo = sorted({r for refs in answers.values() for r in refs or ()} - found.keys())
    finally:
        if own:
            pool.shutdown(wait=True, cancel_futures=True)
    return {d: refs for d, refs in found.items() if refs}


def _index_children(
    client: Registry, repository: str, pool: Executor, indexes: set[str]
) -> dict[str, frozenset[str]]:
    children: dict[str, frozenset[str]] = {}
    todo = sorted(indexes)
    for _depth in range(8):  # nesting deeper than this is not an image anyone builds
        if not todo:
            break
        found = dict(pool.map(lambda d: (d, _children(client, repository, d)), todo))
        children.update({d: frozenset(k for k, _ in kids) for d, kids in found.items()})
        todo = sorted(
            {k for kids in found.values() for k, is_index in kids if is_index} - children.keys()
        )
    return children


def _children(client: Registry, repository: str, digest: str) -> list[tuple[str, bool]]:
    doc = client.get_manifest(repository, digest).json()
    manifests = doc.get("manifests")
    if not isinstance(manifests, list):
        return []
    return [
        (str(m["digest"]), is_index(str(m.get("mediaType", ""))))
        for m in manifests
        if isinstance(m, dict) and isinstance(m.get("digest"), str)
    ]


def _marker(
    client: Registry, repository: str, digest: str
) -> tuple[bool, datetime | None, str | None]:
    """(is an untag placeholder, when a build-push claim was last renewed, its run)."""
    raw = client.get_manifest(repository, digest).raw
    return is_placeholder(raw), claimed_at(raw), claim_run(raw)


def _created(client: Registry, repository: str, digest: str) -> datetime | None:
    try:
        config = client.image_config(repository, digest)
    except RegistryError:
        return None  # unknown: the keep-within rule keeps it
    return parse_created(config.get("created"))


def parse_created(value: object) -> datetime | None:
    """An image config's ``created`` (RFC 3339, nanoseconds allowed) or ``None``.

    >>> parse_created("2026-11-27T22:15:00.123456789Z")
    datetime.datetime(2026, 11, 27, 22, 15, 0, 123456, tzinfo=datetime.timezone.utc)
    >>> parse_created("yesterday") is None
    True
    """
    if not isinstance(value, str):
        return None
    text = value.strip().replace("Z", "+00:00")
    # Go writes up to nine fractional digits; Python reads six.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)
