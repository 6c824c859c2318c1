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
from tagger.registry.client import EMPTY_CONFIG, OCI_MANIFEST, marker_manifest
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
    placeholder: bool = False  # left by an interrupted untag: always removed


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
) -> list[Action]:
    """Decide every tag's fate. Pure.

    ``index_children`` maps an index digest to the digests of its manifests (nested
    indexes included); ``missing_subjects`` are signature subjects the registry no longer
    has (a run that failed half-way deleted the image but not its signature).
    """
    index_children = index_children or {}
    signatures = {s.tag for s in states if _SIGNATURE_RE.match(s.tag)}
    placeholders = {s.tag for s in states if s.placeholder and s.tag not in signatures}
    candidates = [
        s
        for s in states
        if s.tag not in signatures
        and s.tag not in placeholders
        and policy.match.search(s.tag) is not None
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
    doomed_tags = {s.tag for s in doomed} | placeholders
    for tag in placeholders:
        reasons[tag] = "a placeholder left by an interrupted untag"

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
        m = _SIGNATURE_RE.match(tag)
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
) -> tuple[list[TagState], dict[str, frozenset[str]], frozenset[str]]:
    """What the registry holds for ``repository``: one tag list, concurrent HEADs, index
    children (nested ones too), config blobs only where a rule needs created times (once
    per digest), and the signature subjects that are gone."""
    tags = client.list_tags(repository)
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        heads = list(pool.map(lambda t: (t, client.head_manifest(repository, t)), tags))
        infos = {t: h for t, h in heads if h is not None}  # vanished since the list: skip
        children = _index_children(
            client, repository, pool, {h.digest for h in infos.values() if _is_index(h.media_type)}
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
        placeholders = {
            d
            for d, is_ph in pool.map(lambda d: (d, _is_placeholder(client, repository, d)), small)
            if is_ph
        }
        subjects = {f"{m[1]}:{m[2]}" for t in infos if (m := _SIGNATURE_RE.match(t)) is not None}
        known = {h.digest for h in infos.values()} | {c for cs in children.values() for c in cs}
        unknown = sorted(subjects - known)
        missing = frozenset(
            d
            for d, gone in pool.map(
                lambda d: (d, client.head_manifest(repository, d) is None), unknown
            )
            if gone
        )
    states = [
        TagState(
            t, h.digest, created.get(h.digest), _is_index(h.media_type), h.digest in placeholders
        )
        for t, h in infos.items()
    ]
    return states, children, missing


def _index_children(
    client: Any, repository: str, pool: ThreadPoolExecutor, indexes: set[str]
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


def _is_index(media_type: str) -> bool:
    return media_type in (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    )


def _children(client: Any, repository: str, digest: str) -> list[tuple[str, bool]]:
    doc = client.get_manifest(repository, digest).json()
    manifests = doc.get("manifests")
    if not isinstance(manifests, list):
        return []
    return [
        (str(m["digest"]), _is_index(str(m.get("mediaType", ""))))
        for m in manifests
        if isinstance(m, dict) and isinstance(m.get("digest"), str)
    ]


def _is_placeholder(client: Any, repository: str, digest: str) -> bool:
    annotations = client.get_manifest(repository, digest).json().get("annotations")
    return isinstance(annotations, dict) and "org.imgtag.prune.untag" in annotations


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
    """Carry out the deletes and untags, compare-and-delete.

    Each tag is HEADed again just before it is touched, and skipped if its digest
    changed since planning; kept tags are HEADed again before the deletes, and a digest a
    kept tag now points at is not deleted. Untags run one at a time (Distribution answers
    500 or DIGEST_INVALID when placeholder uploads and deletes by digest interleave);
    signatures go before the images they sign, so a run that fails half-way never
    strands a signature.
    """
    deletes: dict[str, list[Action]] = defaultdict(list)
    untags: list[Action] = []
    for action in actions:
        if action.action == DELETE:
            deletes[action.digest].append(action)
        elif action.action == UNTAG:
            untags.append(action)
    if not deletes and not untags:
        return []
    everything = [*untags, *(a for group in deletes.values() for a in group)]
    try:
        deletable = client.can_delete(repository)
    except RegistryError as exc:  # the registry failed to answer: each removal failed
        return [Outcome(a, False, str(exc)) for a in everything]
    if not deletable:
        reason = "the registry does not delete manifests (Distribution: storage.delete.enabled)"
        return [Outcome(a, False, reason) for a in everything]

    def skipped(group: Sequence[Action], why: str) -> list[Outcome]:
        return [Outcome(replace(a, action=SKIP, reason=why), True) for a in group]

    def delete_digest(group: list[Action]) -> list[Outcome]:
        digest = group[0].digest
        try:
            for action in group:
                now = client.head_manifest(repository, action.tag)
                if now is None or now.digest != digest:
                    return skipped(group, "changed since planning")
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

    outcomes: list[Outcome] = []
    if untags:
        try:
            client.upload_blob(repository, EMPTY_CONFIG)  # the placeholders' config, once
        except RegistryError as exc:
            outcomes.extend(Outcome(a, False, str(exc)) for a in untags)
            untags = []
        outcomes.extend(untag(a) for a in untags)
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        # A kept tag moved onto a doomed digest since planning (a rollback of `latest`)
        # makes that digest a keeper: deleting it would take the kept tag along.
        kept = [a for a in actions if a.action == KEEP]
        now_kept = {
            h.digest
            for h in pool.map(lambda a: client.head_manifest(repository, a.tag), kept)
            if h is not None
        }
        groups = list(deletes.values())
        for group in groups:
            if group[0].digest in now_kept:
                outcomes.extend(skipped(group, "a kept tag points at it now"))
        groups = [g for g in groups if g[0].digest not in now_kept]
        signatures = [g for g in groups if all(_SIGNATURE_RE.match(a.tag) for a in g)]
        others = [g for g in groups if not all(_SIGNATURE_RE.match(a.tag) for a in g)]
        for phase in (signatures, others):
            for group_outcomes in pool.map(delete_digest, phase):
                outcomes.extend(group_outcomes)
    return outcomes


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
    placeholder = marker_manifest(
        {"org.imgtag.prune.untag": action.tag, "org.imgtag.prune.nonce": unique()}
    )
    digest = client.put_manifest(repository, action.tag, placeholder, OCI_MANIFEST)
    client.delete_manifest(repository, digest)
    return Outcome(action, True, "via a placeholder")
