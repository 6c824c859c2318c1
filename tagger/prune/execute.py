"""Carries a prune plan out: compare-and-delete, untag through placeholders. Does I/O.

Each tag is HEADed again just before it is touched and skipped when its digest changed
since planning, so a plan made a minute ago never deletes what a push made since.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, replace

from tagger.errors import NotFound, Protected, RegistryError
from tagger.lifecycle import Stop
from tagger.prune.plan import DELETE, KEEP, SKIP, UNTAG, Action
from tagger.registry.markers import untag as untag_alone
from tagger.registry.protocols import Registry


@dataclass(frozen=True, slots=True)
class Outcome:
    action: Action
    ok: bool
    detail: str = ""


def apply(
    client: Registry,
    repository: str,
    actions: Sequence[Action],
    concurrency: int,
    unique: Callable[[], str],
    stop: Stop | None = None,
    pool: Executor | None = None,
) -> list[Outcome]:
    """Carry out the deletes and untags, compare-and-delete.

    ``pool`` runs the requests (a run over many repositories shares one, so that
    ``--concurrency`` bounds the requests in flight in all); else one of ``concurrency``.

    Each tag is HEADed again just before it is touched, and skipped if its digest
    changed since planning; kept tags are HEADed again before the deletes, and so are
    tags made since planning (one more tag list): a digest either now points at is not
    deleted. Untags run one at a time (Distribution answers 500 or DIGEST_INVALID when
    placeholder uploads and deletes by digest interleave); untagged referrers go first,
    then signature and referrer tags, then the images they follow, and an image whose
    signature or referrer could not be removed stays (skipped) with it: a run that fails
    half-way never strands a signature, and a re-run finishes the job.

    Once ``stop`` is requested (SIGTERM, SIGINT, SIGHUP), removals in flight finish and no
    new one starts: those are reported as skipped, and a re-run does them.
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
        refusal = client.delete_refusal(repository)
    except RegistryError as exc:  # the registry failed to answer: each removal failed
        return [Outcome(a, False, str(exc)) for a in everything]
    if refusal is not None:
        return [Outcome(a, False, refusal) for a in everything]

    def skipped(group: Sequence[Action], why: str) -> list[Outcome]:
        return [Outcome(replace(a, action=SKIP, reason=why), True) for a in group]

    def stopped() -> str | None:
        if stop is None or not stop.requested:
            return None
        return f"not started: stopped by {stop.signal_name}"

    def delete_digest(group: list[Action]) -> list[Outcome]:
        digest = group[0].digest
        if (why := stopped()) is not None:
            return skipped(group, why)
        try:
            for action in group:
                # An untagged referrer has no tag to re-check: its digest must still be there.
                now = client.head_manifest(repository, action.tag or action.digest)
                if now is None or now.digest != digest:
                    return skipped(group, "changed since planning")
            client.delete_manifest(repository, digest)
        except NotFound:
            return [Outcome(a, True, "already gone") for a in group]
        except Protected as exc:  # the registry's own rule: a keep it decides, not a failure
            return skipped(group, str(exc))
        except RegistryError as exc:
            return [Outcome(a, False, str(exc)) for a in group]
        return [Outcome(a, True) for a in group]

    def untag(action: Action) -> Outcome:
        if (why := stopped()) is not None:
            return Outcome(replace(action, action=SKIP, reason=why), True)
        try:
            now = client.head_manifest(repository, action.tag)
            if now is None:
                return Outcome(action, True, "already gone")
            if now.digest != action.digest:
                return Outcome(replace(action, action=SKIP, reason="changed since planning"), True)
            via = untag_alone(client, repository, action.tag, unique)
            return Outcome(action, True, "via a placeholder" if via else "")
        except Protected as exc:
            return Outcome(replace(action, action=SKIP, reason=str(exc)), True)
        except RegistryError as exc:
            return Outcome(action, False, str(exc))

    outcomes: list[Outcome] = [untag(a) for a in untags]
    own = ThreadPoolExecutor(max_workers=max(1, concurrency)) if pool is None else None
    with own or contextlib.nullcontext():
        pool = own or pool
        assert pool is not None
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
        # A tag made since planning (a rollback tag, a reproducible rebuild's new tag) on a
        # doomed digest is in no plan: deleting by digest would take it along unseen.
        planned = {a.tag for a in actions}
        try:
            new = [t for t in client.list_tags(repository) if t not in planned] if groups else []
            now_new = {
                h.digest
                for h in pool.map(lambda t: client.head_manifest(repository, t), new)
                if h is not None
            }
        except RegistryError as exc:
            outcomes.extend(Outcome(a, False, str(exc)) for g in groups for a in g)
            return outcomes
        for group in groups:
            if group[0].digest in now_new:
                outcomes.extend(skipped(group, "a tag made since planning points at it"))
        groups = [g for g in groups if g[0].digest not in now_new]
        referrers = [g for g in groups if all(not a.tag for a in g)]
        followers = [g for g in groups if g not in referrers and all(a.subject for a in g)]
        others = [g for g in groups if g not in referrers and g not in followers]
        kept_subjects: set[str] = set()  # subjects of a follower that could not be removed
        for phase in (referrers, followers, others):
            for group in [g for g in phase if g[0].digest in kept_subjects]:
                why = "a signature or referrer of it could not be removed: it stays with it"
                outcomes.extend(skipped(group, why))
                kept_subjects.update(a.subject for a in group if a.subject)
            phase = [g for g in phase if g[0].digest not in kept_subjects]
            for group_outcomes in pool.map(delete_digest, phase):
                outcomes.extend(group_outcomes)
                kept_subjects.update(
                    o.action.subject
                    for o in group_outcomes
                    if o.action.subject and (not o.ok or o.action.action == SKIP)
                )
    return outcomes
