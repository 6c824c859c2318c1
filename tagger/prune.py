"""``imgtag prune``: a pure planner and a thin executor for digest-safe tag retention.

:func:`plan` (pure, no I/O) takes what a registry holds for one repository — tags, the
digest each points at, created times, which digests are indexes and their children —
and a :class:`Policy`, and decides per tag: ``keep``, ``delete`` (the digest goes, with
every tag on it), ``untag`` (the tag goes alone: its digest stays for another tag) or
``skip``, each with a reason. :func:`apply` (I/O, through the registry client) carries a
plan out, re-checking each tag's digest just before touching it.

Rules (DESIGN.md, "imgtag prune"): only tags matching ``--match`` are candidates; keep
rules are a union (the N highest, the N highest builds of each X.Y.Z[-PRE], anything
created within a duration with unknown dates kept, ``--keep`` regexes); a digest is
deleted only when every tag on it goes; index children are never deleted directly;
signature/attestation tags follow their subject; one candidate always survives.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from tagger.errors import NotFound, RegistryError, Unsupported, UsageError
from tagger.versioning import ImageVersion

# The image-tag grammar of DESIGN.md: X.Y.Z[-PRE]-N.
DEFAULT_MATCH = (
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(-(0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(\.(0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*)?"
    r"-\d+$"
)
# cosign's tag scheme: sha256-<hex>.sig / .att / .sbom name the manifest they belong to.
_SIGNATURE_RE = re.compile(r"^(sha256)-([0-9a-f]{64})\.(sig|att|sbom)$")
_DURATION_RE = re.compile(r"^(\d+)([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_TRUSTWORTHY_FROM = datetime(2000, 1, 1, tzinfo=UTC)

KEEP, DELETE, UNTAG, SKIP = "keep", "delete", "untag", "skip"


def parse_duration(text: str) -> timedelta:
    """``30d``, ``12h``, ``2w``, ``90m``, ``45s``.

    >>> parse_duration("30d")
    datetime.timedelta(days=30)
    """
    m = _DURATION_RE.match(text.strip())
    if m is None:
        raise UsageError(f"--keep-within {text!r} is not a duration such as 30d, 12h or 2w")
    return timedelta(seconds=int(m[1]) * _UNIT_SECONDS[m[2]])


def compile_regex(pattern: str, option: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise UsageError(f"{option} {pattern!r} is not a valid regular expression: {exc}") from None


@dataclass(frozen=True)
class Policy:
    keep_last: int = 10
    keep_per_version: int = 1
    keep_within: timedelta | None = None
    keep: tuple[re.Pattern[str], ...] = ()
    match: re.Pattern[str] = field(default_factory=lambda: re.compile(DEFAULT_MATCH))
    max_delete: int | None = None

    @property
    def needs_created(self) -> bool:
        """Whether any rule looks at created times (config blobs are fetched only then)."""
        return self.keep_within is not None


@dataclass(frozen=True, slots=True)
class TagState:
    """What the registry says about one tag."""

    tag: str
    digest: str
    created: datetime | None = None
    is_index: bool = False


@dataclass(frozen=True, slots=True)
class Action:
    tag: str
    digest: str
    created: datetime | None
    action: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "tag": self.tag,
            "digest": self.digest,
            "created": _iso(self.created),
            "action": self.action,
            "reason": self.reason,
        }


def _iso(when: datetime | None) -> str | None:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if when else None


def trustworthy(created: datetime | None, now: datetime) -> bool:
    """A created time a rule may rely on: present, from 2000 on, not in the future.

    Reproducible builds stamp 1970 (SOURCE_DATE_EPOCH=0), some tools 0001-01-01.

    >>> now = datetime(2026, 11, 27, tzinfo=UTC)
    >>> trustworthy(datetime(1970, 1, 1, tzinfo=UTC), now), trustworthy(None, now)
    (False, False)
    >>> trustworthy(now + timedelta(days=1), now), trustworthy(now - timedelta(days=1), now)
    (False, True)
    """
    return created is not None and _TRUSTWORTHY_FROM <= created <= now + timedelta(minutes=5)


def _order_key(state: TagState) -> tuple[Any, ...]:
    # Highest first: image versions by the contract's ordering; tags outside the grammar
    # (a custom --match) after them, newest first, then by name.
    version = ImageVersion.parse(state.tag)
    if version is not None:
        return (1, version.sort_key(), 0.0, state.tag)
    stamp = state.created.timestamp() if state.created else 0.0
    return (0, (), stamp, state.tag)


def plan(
    states: Sequence[TagState],
    policy: Policy,
    now: datetime,
    index_children: Mapping[str, frozenset[str]] | None = None,
) -> list[Action]:
    """Decide every tag's fate. Pure.

    ``index_children`` maps an index digest to the digests of its manifests.
    """
    index_children = index_children or {}
    signatures = {s.tag for s in states if _SIGNATURE_RE.match(s.tag)}
    candidates = [
        s for s in states if s.tag not in signatures and policy.match.search(s.tag) is not None
    ]
    reasons: dict[str, str] = {}

    # --- keep rules (a union) ---
    ordered = sorted(candidates, key=_order_key, reverse=True)
    for rank, state in enumerate(ordered[: policy.keep_last], start=1):
        reasons.setdefault(state.tag, f"keep-last: #{rank} of {len(ordered)}")
    if policy.keep_per_version:
        groups: dict[str, list[TagState]] = defaultdict(list)
        for state in ordered:
            version = ImageVersion.parse(state.tag)
            if version is not None:
                groups[version.version].append(state)
        for version_text, members in groups.items():
            for state in members[: policy.keep_per_version]:
                reasons.setdefault(state.tag, f"keep-per-version: newest build of {version_text}")
    if policy.keep_within is not None:
        for state in candidates:
            if not trustworthy(state.created, now):
                reasons.setdefault(state.tag, "keep-within: created date unknown or untrusted")
            elif state.created is not None and now - state.created <= policy.keep_within:
                reasons.setdefault(state.tag, "keep-within: created recently")
    for state in candidates:
        for pattern in policy.keep:
            if pattern.search(state.tag):
                reasons.setdefault(state.tag, f"keep: matches {pattern.pattern}")
                break
    doomed = [s for s in candidates if s.tag not in reasons]
    if candidates and len(doomed) == len(candidates):
        # Never an empty repository by policy: the highest candidate stays.
        reasons[ordered[0].tag] = "the last candidate always survives"
        doomed = [s for s in doomed if s.tag != ordered[0].tag]
    doomed_tags = {s.tag for s in doomed}

    # --- digest safety, and signatures follow their subject ---
    tags_on: dict[str, set[str]] = defaultdict(set)
    for state in states:
        tags_on[state.digest].add(state.tag)
    for tag in sorted(signatures):
        m = _SIGNATURE_RE.match(tag)
        assert m is not None
        subject = f"{m[1]}:{m[2]}"
        # The subject leaves only if every tag on it leaves (an untag keeps the digest).
        if subject in tags_on and tags_on[subject] <= doomed_tags:
            doomed_tags.add(tag)
            reasons[tag] = f"signature of {subject[:19]}, which is deleted"
    surviving_digests = {s.digest for s in states if s.tag not in doomed_tags}
    protected_children: set[str] = set()
    for index_digest, children in index_children.items():
        if index_digest in surviving_digests:
            protected_children |= children

    actions: list[Action] = []
    # Highest first, as a reader scans a list of versions.
    for state in sorted(states, key=_order_key, reverse=True):
        if state.tag not in doomed_tags:
            reason = reasons.get(state.tag)
            if reason is None:
                reason = (
                    "not a candidate (--match)"
                    if state.tag not in signatures
                    else ("signature of a kept image")
                )
            actions.append(Action(state.tag, state.digest, state.created, KEEP, reason))
            continue
        others = tags_on[state.digest] - doomed_tags
        if others:
            kept = sorted(others)[0]
            reason = f"shares its digest with {kept}, which stays: the tag goes alone"
            actions.append(Action(state.tag, state.digest, state.created, UNTAG, reason))
        elif state.digest in protected_children:
            reason = "its digest is in a kept index: the tag goes alone"
            actions.append(Action(state.tag, state.digest, state.created, UNTAG, reason))
        else:
            reason = reasons.get(state.tag) or "no keep rule keeps it"
            actions.append(Action(state.tag, state.digest, state.created, DELETE, reason))
    return actions


def removals(actions: Iterable[Action]) -> int:
    return sum(1 for a in actions if a.action in (DELETE, UNTAG))


# -- executor ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    action: Action
    ok: bool
    detail: str = ""


def gather(
    client: Any, repository: str, policy: Policy, concurrency: int
) -> tuple[list[TagState], dict[str, frozenset[str]]]:
    """What the registry holds for ``repository``: one tag list, concurrent HEADs, and
    config blobs only when a rule needs created times (once per digest)."""
    tags = client.list_tags(repository)
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        heads = list(pool.map(lambda t: (t, client.head_manifest(repository, t)), tags))
        infos = {t: h for t, h in heads if h is not None}  # vanished since the list: skip
        index_digests = {h.digest for h in infos.values() if _is_index(h.media_type)}
        children: dict[str, frozenset[str]] = {}
        for digest, kids in pool.map(
            lambda d: (d, _children(client, repository, d)), sorted(index_digests)
        ):
            children[digest] = kids
        created: dict[str, datetime | None] = {}
        if policy.needs_created:
            digests = sorted({h.digest for h in infos.values()})
            for digest, when in pool.map(lambda d: (d, _created(client, repository, d)), digests):
                created[digest] = when
    states = [
        TagState(t, h.digest, created.get(h.digest), h.digest in index_digests)
        for t, h in infos.items()
    ]
    return states, children


def _is_index(media_type: str) -> bool:
    return media_type in (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    )


def _children(client: Any, repository: str, digest: str) -> frozenset[str]:
    doc = client.get_manifest(repository, digest).json()
    manifests = doc.get("manifests")
    if not isinstance(manifests, list):
        return frozenset()
    return frozenset(
        str(m["digest"])
        for m in manifests
        if isinstance(m, dict) and isinstance(m.get("digest"), str)
    )


def _created(client: Any, repository: str, digest: str) -> datetime | None:
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


def apply(
    client: Any,
    repository: str,
    actions: Sequence[Action],
    concurrency: int,
    unique: Callable[[], str],
) -> list[Outcome]:
    """Carry out the deletes and untags, compare-and-delete: each tag is HEADed again
    just before, and skipped if its digest changed since planning."""
    deletes: dict[str, list[Action]] = defaultdict(list)
    untags: list[Action] = []
    for action in actions:
        if action.action == DELETE:
            deletes[action.digest].append(action)
        elif action.action == UNTAG:
            untags.append(action)

    def delete_digest(group: list[Action]) -> list[Outcome]:
        digest = group[0].digest
        try:
            for action in group:
                now = client.head_manifest(repository, action.tag)
                if now is None or now.digest != digest:
                    changed = Outcome(
                        replace(action, action=SKIP, reason="changed since planning"), True
                    )
                    return [changed] + [
                        Outcome(replace(a, action=SKIP, reason="changed since planning"), True)
                        for a in group
                        if a is not action
                    ]
            client.delete_manifest(repository, digest)
        except NotFound:
            return [Outcome(a, True, "already gone") for a in group]
        except RegistryError as exc:
            return [Outcome(a, False, str(exc)) for a in group]
        return [Outcome(a, True) for a in group]

    def untag(action: Action) -> Outcome:
        try:
            now = client.head_manifest(repository, action.tag)
            if now is None:
                return Outcome(action, True, "already gone")
            if now.digest != action.digest:
                return Outcome(replace(action, action=SKIP, reason="changed since planning"), True)
            return _untag(client, repository, action, unique)
        except RegistryError as exc:
            return Outcome(action, False, str(exc))

    if (deletes or untags) and not can_delete(client, repository):
        reason = "the registry does not delete manifests (Distribution: storage.delete.enabled)"
        return [
            Outcome(a, False, reason) for a in [*untags, *(x for g in deletes.values() for x in g)]
        ]
    outcomes: list[Outcome] = []
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        # Untags first: their placeholders must be gone before deletes rescan the tags.
        outcomes.extend(pool.map(untag, untags))
        for group_outcomes in pool.map(delete_digest, list(deletes.values())):
            outcomes.extend(group_outcomes)
    return outcomes


def can_delete(client: Any, repository: str) -> bool:
    """Whether DELETE works here: a digest that cannot exist answers 404 where it does,
    405 (or 400 UNSUPPORTED) where deletes are off, 401/403 where we may not."""
    try:
        client.delete_manifest(repository, "sha256:" + "0" * 64)
    except NotFound:
        return True
    except RegistryError:
        return False
    return True


def _untag(client: Any, repository: str, action: Action, unique: Callable[[], str]) -> Outcome:
    # 1. OCI distribution spec 1.1: DELETE /v2/<name>/manifests/<tag> removes the tag alone.
    try:
        client.delete_manifest(repository, action.tag)
        return Outcome(action, True)
    except Unsupported:
        pass
    except NotFound:
        pass
    # 2. Distribution 2.8 cannot: point the tag at a unique placeholder, then delete that
    #    placeholder by its digest, which no other tag shares.
    placeholder = placeholder_manifest(action.tag, unique())
    client.upload_blob(repository, b"{}")
    digest = client.put_manifest(repository, action.tag, placeholder, _OCI_MANIFEST)
    client.delete_manifest(repository, digest)
    return Outcome(action, True, "via a placeholder")


_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def placeholder_manifest(tag: str, nonce: str) -> bytes:
    import hashlib
    import json

    doc = {
        "schemaVersion": 2,
        "mediaType": _OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.empty.v1+json",
            "digest": "sha256:" + hashlib.sha256(b"{}").hexdigest(),
            "size": 2,
        },
        "layers": [],
        "annotations": {"org.imgtag.prune.untag": tag, "org.imgtag.prune.nonce": nonce},
    }
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
