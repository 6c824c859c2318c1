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
one candidate always survives.

Signatures, attestations, SBOMs and other referrers follow their subject: cosign's tags
``sha256-<hex>.sig|.att|.sbom``, the OCI 1.1 referrers tag schema's ``sha256-<hex>`` (an
index of the manifests whose subject is that digest) and, where the registry answers the
referrers API, the untagged manifests it lists. They are never candidates: each stays
while its subject stays and goes with it (a referrer manifest by its digest). One whose
subject no longer exists is an orphan: it stays (its subject may live in another
repository, as with ``COSIGN_REPOSITORY``) unless ``--orphans`` is given.
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
# cosign's tag scheme (sha256-<hex>.sig / .att / .sbom) and the OCI 1.1 referrers tag
# schema (sha256-<hex>, an index): each names the manifest it belongs to.
SIGNATURE_RE = re.compile(r"^(sha256)-([0-9a-f]{64})(?:\.(sig|att|sbom))?$")
#: What the plan says of an orphan it keeps.
ORPHAN_KEPT = "orphan (--orphans removes it)"
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
    #: ``--orphans``: remove signatures and referrers whose subject is gone.
    orphans: bool = False

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


def subject_of(state: TagState) -> str | None:
    """The digest a signature, attestation, SBOM or referrers-index tag belongs to, or
    ``None`` for any other tag (``sha256-<hex>`` without a suffix only as an index, which
    is what the referrers tag schema puts there).

    >>> subject_of(TagState("sha256-" + "a" * 64 + ".sig", "sha256:" + "b" * 64))[:10]
    'sha256:aaa'
    >>> subject_of(TagState("sha256-" + "a" * 64, "sha256:" + "b" * 64)) is None
    True
    """
    m = SIGNATURE_RE.match(state.tag)
    if m is None or (m[3] is None and not state.is_index):
        return None
    return f"{m[1]}:{m[2]}"


@dataclass(frozen=True, slots=True)
class Action:
    """One row of the plan. ``tag`` is empty for an untagged referrer (it goes by digest);
    ``subject`` names the digest a signature or referrer follows (the executor removes
    followers first, and keeps a subject whose follower could not be removed)."""

    tag: str
    digest: str
    created: datetime | None
    action: str
    reason: str
    subject: str | None = None

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
    referrers: Mapping[str, frozenset[str]] | None = None,
    in_use: frozenset[str] = frozenset(),
) -> list[Action]:
    """Decide every tag's fate. Pure.

    ``index_children`` maps an index digest to the digests of its manifests (nested
    indexes included); ``missing_subjects`` are signature subjects the registry no longer
    has (orphans: their image was deleted elsewhere, lives in another repository, or a run
    that failed half-way deleted the image but not its signature); ``referrers`` maps a
    digest to the untagged manifests the referrers API lists for it (empty where the
    registry has no such API: the referrers tag schema's index is then a tag like the
    others, with its referrers as children); ``in_use`` are digests something runs
    (``--keep-from``): a tag on one, or on an index that holds one, is kept whatever the
    other rules say.
    """
    index_children = index_children or {}
    referrers = referrers or {}
    followers = {s.tag: subject for s in states if (subject := subject_of(s)) is not None}
    signatures = set(followers)
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

    # --- signatures and referrers follow their subject: they go only when it goes ---
    # To a fixed point: a signature of a referrer goes once the referrer's index goes.
    known = protected(set())  # every tagged digest and what tagged indexes hold
    for tag, subject in followers.items():
        if subject in missing_subjects:
            if policy.orphans:
                doomed_tags.add(tag)
                reasons[tag] = f"orphan: {subject[:19]} is gone (--orphans)"
            else:
                reasons[tag] = ORPHAN_KEPT
    while True:
        surviving = protected(doomed_tags)
        newly = {
            tag
            for tag, subject in followers.items()
            if tag not in doomed_tags and subject in known and subject not in surviving
        }
        if not newly:
            break
        for tag in newly:
            doomed_tags.add(tag)
            subject = followers[tag]
            reasons[tag] = (
                f"{_kind(tag)} of {subject[:19]}, which is deleted"
                if subject in tags_on
                else f"{_kind(tag)} of {subject[:19]}, a manifest of a deleted index"
            )
    untagged = _untagged_referrers(states, followers, doomed_tags, surviving,
                                   index_children, referrers)  # fmt: skip

    actions: list[Action] = []
    # Highest first, as a reader scans a list of versions.
    for state in sorted(states, key=_order_key, reverse=True):
        if state.tag not in doomed_tags:
            reason = reasons.get(state.tag)
            if reason is None:
                reason = (
                    "not a candidate (--match)"
                    if state.tag not in signatures
                    else f"{_kind(state.tag)} of a kept image"
                )
            actions.append(
                Action(state.tag, state.digest, state.created, KEEP, reason,
                       followers.get(state.tag))
            )  # fmt: skip
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
            actions.append(
                Action(state.tag, state.digest, state.created, DELETE, reason,
                       followers.get(state.tag))
            )  # fmt: skip
    for digest, subject in untagged:
        reason = f"referrer of {subject[:19]}, which is deleted"
        actions.append(Action("", digest, None, DELETE, reason, subject))
    return actions


def _kind(tag: str) -> str:
    """What a follower tag is, for the plan's reasons."""
    suffix = tag.rpartition(".")[2] if "." in tag else ""
    return {"sig": "signature", "att": "attestation", "sbom": "SBOM"}.get(suffix, "referrers")


def _untagged_referrers(
    states: Sequence[TagState],
    followers: Mapping[str, str],
    doomed_tags: set[str],
    surviving: set[str],
    index_children: Mapping[str, frozenset[str]],
    referrers: Mapping[str, frozenset[str]],
) -> list[tuple[str, str]]:
    """(digest, subject) of each untagged referrer that goes with its subject: those the
    referrers API lists for a deleted digest, and the manifests a deleted referrers-index
    tag holds; then their own referrers, and so on."""
    tagged = {s.digest for s in states}
    gone = {s.digest for s in states if s.tag in doomed_tags} - surviving
    referrer_indexes = {
        s.digest for s in states if s.tag in followers and "." not in s.tag and s.digest in gone
    }
    found: dict[str, str] = {}
    queue = sorted(gone)
    while queue:
        subject = queue.pop()
        held = set(referrers.get(subject, ()))
        if subject in referrer_indexes:
            held |= index_children.get(subject, frozenset())
        for digest in sorted(held):
            if digest in surviving or digest in tagged or digest in found:
                continue
            found[digest] = subject
            queue.append(digest)
    return sorted(found.items(), key=lambda item: (item[1], item[0]))


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
