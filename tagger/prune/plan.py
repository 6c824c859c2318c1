"""``imgtag prune``'s planner: digest-safe tag retention as a pure function.

:func:`plan` (pure, no I/O) takes what a registry holds for one repository — tags, the
digest each points at, created times, which digests are indexes and their children —
and a :class:`Policy`, and decides per tag: ``keep``, ``delete`` (the digest goes, with
every tag on it), ``untag`` (the tag goes alone: its digest stays for another tag) or
``skip``, each with a reason. ``tagger.prune.gather`` reads those facts and
``tagger.prune.execute`` carries a plan out, re-checking each digest before touching it.

Rules (``docs/prune.md``): only tags matching ``--match`` are candidates; keep
rules are a union (the N highest, the N highest builds of each X.Y.Z[-PRE], anything
created within a duration with unknown dates kept, ``--keep`` regexes); a digest is
deleted only when every tag on it goes; index children are never deleted directly;
signature/attestation tags follow their subject; one candidate always survives.
Housekeeping, whatever ``--match`` says (the markers of ``tagger.registry.markers``):
build-push claims not renewed for a lease, placeholders of an interrupted untag and
temporary tags of a build-push that died are removed; a live claim, and the temporary tags
of its run, are never touched.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tagger.errors import UsageError
from tagger.registry.markers import CLAIM_PREFIX, DEFAULT_LEASE_SECONDS, parse_temp_tag
from tagger.version.grammar import IMAGE_TAG_PATTERN, ImageVersion

#: Candidates by default: tags that follow the image-tag grammar.
DEFAULT_MATCH = IMAGE_TAG_PATTERN
# cosign's tag scheme: sha256-<hex>.sig / .att / .sbom name the manifest they belong to.
SIGNATURE_RE = re.compile(r"^(sha256)-([0-9a-f]{64})\.(sig|att|sbom)$")
_DURATION_RE = re.compile(r"^(\d+)([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_MAX_DURATION_SECONDS = 36500 * 86400
_TRUSTWORTHY_FROM = datetime(2000, 1, 1, tzinfo=UTC)

KEEP, DELETE, UNTAG, SKIP = "keep", "delete", "untag", "skip"
#: The reason of a tag kept because ``--keep-from`` names its digest.
IN_USE = "in use"


def parse_duration(text: str, option: str = "--keep-within") -> timedelta:
    """``30d``, ``12h``, ``2w``, ``90m``, ``45s``.

    >>> parse_duration("30d")
    datetime.timedelta(days=30)
    """
    m = _DURATION_RE.match(text.strip())
    if m is None:
        raise UsageError(f"{option} {text[:40]!r} is not a duration such as 30d, 12h or 2w")
    # Bounded before any arithmetic: timedelta stops at 999,999,999 days, and "now minus
    # the duration" must stay a date. A century keeps everything any registry holds.
    seconds = int(m[1]) * _UNIT_SECONDS[m[2]] if len(m[1]) <= 12 else _MAX_DURATION_SECONDS + 1
    if seconds > _MAX_DURATION_SECONDS:
        raise UsageError(
            f"{option} {text[:40]!r} is longer than 100 years (36500d); write at most that"
        )
    return timedelta(seconds=seconds)


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
    #: How long an unrenewed build-push claim stands (``tagger.registry.markers``).
    claim_lease: timedelta = timedelta(seconds=DEFAULT_LEASE_SECONDS)

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
    placeholder: bool = False  # left by an interrupted untag: always removed
    claimed_at: datetime | None = None  # a build-push claim: when it was last renewed
    claim_run: str | None = None  # a build-push claim: the run it belongs to


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
    missing_subjects: frozenset[str] = frozenset(),
    in_use: frozenset[str] = frozenset(),
) -> list[Action]:
    """Decide every tag's fate. Pure.

    ``index_children`` maps an index digest to the digests of its manifests (nested
    indexes included); ``missing_subjects`` are signature subjects the registry no longer
    has (a run that failed half-way deleted the image but not its signature); ``in_use``
    are digests something runs (``--keep-from``): a tag on one, or on an index that holds
    one, is kept whatever the other rules say.
    """
    index_children = index_children or {}
    signatures = {s.tag for s in states if SIGNATURE_RE.match(s.tag)}
    placeholders = {s.tag for s in states if s.placeholder and s.tag not in signatures}
    claims = {s.tag: s.claimed_at for s in states if s.claimed_at is not None and is_claim(s)}
    # Housekeeping whatever --match says: a claim whose run stopped renewing it is stale.
    stale = {tag: now - when for tag, when in claims.items() if now - when > policy.claim_lease}
    temps, leftovers = _temporary_tags(states, claims, stale, policy, now, signatures)
    candidates = [
        s
        for s in states
        if s.tag not in signatures
        and s.tag not in placeholders
        and s.tag not in claims
        and s.tag not in temps
        and policy.match.search(s.tag) is not None
    ]
    reasons: dict[str, str] = {}
    if in_use:
        # First, so that its reason is the one shown: this is the rule that must not lose.
        for state in candidates:
            if state.digest in in_use or in_use & holds(state.digest, index_children):
                reasons[state.tag] = IN_USE
    lease = int(policy.claim_lease.total_seconds())
    for tag in claims:
        reasons[tag] = (
            f"stale claim: not renewed for {int(stale[tag].total_seconds())} s (lease {lease} s)"
            if tag in stale
            else "live claim of a running build-push"
        )
    for tag in temps:
        reasons[tag] = (
            "leftover temporary tag of a build-push that stopped"
            if tag in leftovers
            else "temporary tag of a running build-push"
        )

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
    doomed_tags = {s.tag for s in doomed} | placeholders | set(stale) | leftovers
    for tag in placeholders:
        reasons[tag] = "leftover placeholder of an interrupted untag"

    # --- digest safety: what survives, with everything a surviving index holds ---
    tags_on: dict[str, set[str]] = defaultdict(set)
    for state in states:
        tags_on[state.digest].add(state.tag)

    def protected(doomed_now: set[str]) -> set[str]:
        alive = {st.digest for st in states if st.tag not in doomed_now}
        queue = list(alive)
        while queue:  # transitive: an index inside a kept index keeps its own children
            for child in index_children.get(queue.pop(), ()):
                if child not in alive:
                    alive.add(child)
                    queue.append(child)
        return alive

    # --- signatures follow their subject: they go only when the subject goes ---
    surviving = protected(doomed_tags - signatures)
    for tag in sorted(signatures):
        m = SIGNATURE_RE.match(tag)
        assert m is not None
        subject = f"{m[1]}:{m[2]}"
        if subject in missing_subjects:
            doomed_tags.add(tag)
            reasons[tag] = f"signature of {subject[:19]}, which is gone"
        elif subject in tags_on and subject not in surviving:
            doomed_tags.add(tag)
            reasons[tag] = f"signature of {subject[:19]}, which is deleted"
    surviving = protected(doomed_tags)

    actions: list[Action] = []
    # Highest first, as a reader scans a list of versions.
    for state in sorted(states, key=_order_key, reverse=True):
        if state.tag not in doomed_tags:
            reason = reasons.get(state.tag)
            if reason is None:
                reason = (
                    "not a candidate (--match)"
                    if state.tag not in signatures
                    else "signature of a kept image"
                )
            actions.append(Action(state.tag, state.digest, state.created, KEEP, reason))
            continue
        others = tags_on[state.digest] - doomed_tags
        if others:
            kept = sorted(others)[0]
            reason = f"shares its digest with {kept}, which stays: the tag goes alone"
            actions.append(Action(state.tag, state.digest, state.created, UNTAG, reason))
        elif state.digest in surviving:
            reason = "its digest is in a kept index: the tag goes alone"
            actions.append(Action(state.tag, state.digest, state.created, UNTAG, reason))
        else:
            reason = reasons.get(state.tag) or "no keep rule keeps it"
            actions.append(Action(state.tag, state.digest, state.created, DELETE, reason))
    return actions


def _temporary_tags(
    states: Sequence[TagState],
    claims: Mapping[str, datetime],
    stale: Mapping[str, timedelta],
    policy: Policy,
    now: datetime,
    signatures: set[str],
) -> tuple[set[str], set[str]]:
    """Build-push's temporary tags, and those of them that are leftovers: their run holds
    no live claim here and began more than a lease ago (names of older versions carry no
    time: leftovers when no live claim stands at all)."""
    live_claims = [s for s in states if s.tag in claims and s.tag not in stale]
    live_runs = {s.claim_run for s in live_claims if s.claim_run}
    temps: set[str] = set()
    leftovers: set[str] = set()
    for state in states:
        temp = parse_temp_tag(state.tag)
        if temp is None or state.tag in signatures:
            continue
        temps.add(state.tag)
        if temp.run in live_runs:
            continue
        if temp.started is None:
            if not live_claims:
                leftovers.add(state.tag)
        elif now - temp.started > policy.claim_lease:
            leftovers.add(state.tag)
    return temps, leftovers


def holds(digest: str, index_children: Mapping[str, frozenset[str]]) -> set[str]:
    """Every manifest an index holds, transitively (an image holds none).

    >>> sorted(holds("i", {"i": frozenset({"a", "j"}), "j": frozenset({"b"})}))
    ['a', 'b', 'j']
    """
    found: set[str] = set()
    queue = [digest]
    while queue:
        for child in index_children.get(queue.pop(), ()):
            if child not in found:
                found.add(child)
                queue.append(child)
    return found


def is_claim(state: TagState) -> bool:
    """Whether the tag holds a build-push claim (by name *and* content: a user's own tag
    that merely starts with the prefix is an ordinary tag)."""
    return state.claimed_at is not None and state.tag.startswith(CLAIM_PREFIX)


def removals(actions: Iterable[Action]) -> int:
    return sum(1 for a in actions if a.action in (DELETE, UNTAG))
