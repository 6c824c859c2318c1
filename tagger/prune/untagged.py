"""``imgtag prune --untagged`` (ghcr): versions with no tag that nothing surviving needs.

On ghcr every moved tag and every multi-arch child leaves a version without a tag behind.
:func:`plan_untagged` (pure) decides which go: a version with no tag is deleted unless a
surviving image references it (an index that stays, transitively, or the subject of a
signature that stays), something runs it (``--keep-from``), or it was pushed within the
grace (``--untagged-grace``, default an hour: a multi-arch push uploads its children
before the index that tags them). Its rows are plan rows like any other, with
``tag`` ``""`` (json keys unchanged) and ``created`` null.

:func:`apply_untagged` (I/O) carries them out after the tag removals: it lists the
versions again and recomputes what survives from what the registry holds *then* (a delete
that was skipped keeps its index's children; a tag pushed since planning protects its
image), and deletes each version only if it still has no tag and nothing needs it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Protocol

from tagger.errors import NotFound, Protected, RegistryError
from tagger.prune.execute import Outcome
from tagger.prune.plan import DELETE, KEEP, SIGNATURE_RE, SKIP, UNTAG, Action
from tagger.registry.protocols import Registry

#: A version without a tag this young may be a child of an index still being pushed.
GRACE = timedelta(hours=1)
REASON = "untagged: no tag, and no surviving index or signature needs it"
_MAX_DEPTH = 8


class Version(Protocol):
    @property
    def digest(self) -> str: ...
    @property
    def tags(self) -> tuple[str, ...]: ...
    @property
    def updated_at(self) -> datetime | None: ...


def recent(version: Version, now: datetime, grace: timedelta = GRACE) -> bool:
    # No date at all counts as recent: never a deletion on a guess.
    return version.updated_at is None or now - version.updated_at < grace


def _span(grace: timedelta) -> str:
    """``60 min``, ``90 s``: how a grace reads in a reason.

    >>> _span(GRACE), _span(timedelta(seconds=90))
    ('60 min', '90 s')
    """
    seconds = int(grace.total_seconds())
    return f"{seconds // 60} min" if seconds % 60 == 0 else f"{seconds} s"


def closure(roots: Iterable[str], children: Mapping[str, frozenset[str]]) -> set[str]:
    """``roots`` with everything their indexes hold, transitively.

    >>> sorted(closure({"i"}, {"i": frozenset({"a", "j"}), "j": frozenset({"b"})}))
    ['a', 'b', 'i', 'j']
    """
    alive = set(roots)
    queue = list(alive)
    while queue:
        for child in children.get(queue.pop(), ()):
            if child not in alive:
                alive.add(child)
                queue.append(child)
    return alive


def subjects(tags: Iterable[str]) -> set[str]:
    """The digests signature tags (``sha256-<hex>.sig``) name."""
    return {f"{m[1]}:{m[2]}" for t in tags if (m := SIGNATURE_RE.match(t)) is not None}


def plan_untagged(
    versions: Sequence[Version],
    actions: Sequence[Action],
    children: Mapping[str, frozenset[str]],
    now: datetime,
    grace: timedelta = GRACE,
    in_use: frozenset[str] = frozenset(),
) -> list[Action]:
    """Rows for the versions without a tag. Pure.

    ``actions`` is the plan of the tagged versions; ``children`` maps every index digest
    known (tagged ones from gathering, recent untagged ones too) to its manifests;
    ``in_use`` the digests something runs.
    """
    tagged = {a.digest for a in actions}
    # What stays: digests a kept (or skipped) tag points at, digests an untag leaves in
    # place, and recent untagged versions; with their children and signature subjects.
    roots = {a.digest for a in actions if a.action in (KEEP, SKIP, UNTAG)}
    roots |= subjects(a.tag for a in actions if a.action in (KEEP, SKIP))
    untagged = [v for v in versions if not v.tags and v.digest not in tagged]
    roots |= {v.digest for v in untagged if recent(v, now, grace)} | in_use
    alive = closure(roots, children)
    rows = []
    for v in sorted(untagged, key=lambda v: v.digest):
        if v.digest in in_use:
            rows.append(Action("", v.digest, None, KEEP, "in use"))
            continue
        if v.digest in alive and not recent(v, now, grace):
            continue  # a part of a surviving image, not a leftover: no row
        if recent(v, now, grace):
            why = f"untagged, but pushed within the last {_span(grace)} (a push may be running)"
            rows.append(Action("", v.digest, None, KEEP, why))
        else:
            rows.append(Action("", v.digest, None, DELETE, REASON))
    return rows


def index_children(
    client: Registry, repository: str, digests: Iterable[str], known: Mapping[str, frozenset[str]]
) -> dict[str, frozenset[str]]:
    """``known`` plus the children of every digest in ``digests`` not known yet (a manifest
    read each; an image has none), nested indexes too. I/O."""
    out = dict(known)
    todo = [d for d in digests if d not in out]
    for _ in range(_MAX_DEPTH):
        if not todo:
            break
        found: list[str] = []
        for digest in todo:
            try:
                doc = client.get_manifest(repository, digest).json()
            except NotFound:
                out[digest] = frozenset()
                continue
            manifests = doc.get("manifests")
            kids = frozenset(
                str(m["digest"])
                for m in (manifests if isinstance(manifests, list) else [])
                if isinstance(m, dict) and isinstance(m.get("digest"), str)
            )
            out[digest] = kids
            found.extend(kids)
        todo = [d for d in dict.fromkeys(found) if d not in out]
    return out


def apply_untagged(
    client: Registry,
    repository: str,
    actions: Sequence[Action],
    children: Mapping[str, frozenset[str]],
    now: Callable[[], datetime],
    grace: timedelta = GRACE,
    stopped: Callable[[], str | None] = lambda: None,
    in_use: frozenset[str] = frozenset(),
) -> list[Outcome]:
    """Delete the untagged versions ``actions`` names, each only if it still has no tag
    and nothing that survives now needs it. I/O."""
    doomed = [a for a in actions if a.action == DELETE and not a.tag]
    if not doomed:
        return []
    try:
        versions = client.versions(repository)
        tagged_now = [v for v in versions if v.tags]
        young = [v for v in versions if not v.tags and recent(v, now(), grace)]
        roots = {v.digest for v in tagged_now} | {v.digest for v in young}
        roots |= subjects(t for v in tagged_now for t in v.tags) | in_use
        alive = closure(roots, index_children(client, repository, roots, children))
    except RegistryError as exc:
        return [Outcome(a, False, str(exc)) for a in doomed]
    untagged_now = {v.digest for v in versions if not v.tags}
    outcomes = []
    for action in doomed:
        why = stopped()
        if why is None and action.digest in alive:
            why = "a surviving image needs it now"
        if why is None and action.digest not in untagged_now:
            why = "tagged since planning" if action.digest in roots else None
            if why is None:
                outcomes.append(Outcome(action, True, "already gone"))
                continue
        if why is not None:
            outcomes.append(Outcome(replace(action, action=SKIP, reason=why), True))
            continue
        try:
            client.delete_manifest(repository, action.digest)
        except NotFound:
            outcomes.append(Outcome(action, True, "already gone"))
        except Protected as exc:
            outcomes.append(Outcome(replace(action, action=SKIP, reason=str(exc)), True))
        except RegistryError as exc:
            outcomes.append(Outcome(action, False, str(exc)))
        else:
            outcomes.append(Outcome(action, True))
    return outcomes
