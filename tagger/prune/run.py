"""``imgtag prune`` across repositories: settings, the ``IMAGE`` targets (``REG/path/*``
expanded through the registry's listing), then plan, apply and validate through the
registries it is handed, returning a :class:`PruneResult`. Does I/O (registries, progress
on stderr; :func:`parse_target` is pure); the decisions are ``tagger.prune.plan``'s, the
printing ``tagger.prune.report``'s and the command line's, the signals the command line's
(through the ``Stop`` it passes).

Settings: option > ``IMGTAG_*`` variable > ``--policy`` file > ``[tool.imgtag.prune]`` >
default. :meth:`PruneResult.outcome_error` is what the run ends with: ``None`` when every
action succeeded, exit 5 when any failed or (``--validate``) a tag that stays does not
resolve (each named), 143/130/129 when a signal stopped it,
1 when the plan was larger than ``--max-delete``; a re-run finishes the job.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from tagger.errors import ImgtagError, PolicyError, RegistryError, UsageError
from tagger.lifecycle import Stop
from tagger.progress import log as _log
from tagger.prune.execute import Outcome
from tagger.prune.execute import apply as apply_actions
from tagger.prune.gather import gather, gather_referrers
from tagger.prune.inuse import InUse, resolve_in_use
from tagger.prune.plan import (
    DEFAULT_MATCH,
    DELETE,
    KEEP,
    SKIP,
    UNTAG,
    Action,
    Policy,
    compile_regex,
    parse_duration,
    plan,
    removals,
)
from tagger.prune.untagged import GRACE, apply_untagged, index_children, plan_untagged, recent
from tagger.prune.validate import Broken, validate
from tagger.registry.markers import lease_seconds
from tagger.registry.protocols import Registry
from tagger.registry.reference import Reference


@dataclass(frozen=True)
class PruneSettings:
    policy: Policy
    concurrency: int
    #: ``--provider``/``IMGTAG_PROVIDER``/config ``provider``; None: by the registry host.
    provider: str | None = None
    #: ``--untagged`` (ghcr, Harbor): also delete versions without a tag that nothing needs.
    untagged: bool = False
    #: ``--untagged-grace``: untagged versions younger than this are kept.
    untagged_grace: timedelta = GRACE
    #: ``--keep-from``: a file of references or digests in use, ``-`` for standard input.
    keep_from: str | None = None
    #: ``--validate``: every kept tag must resolve fully.
    validate: bool = False

    @classmethod
    def resolve(
        cls,
        given: Mapping[str, Any],
        defaults: Mapping[str, Any],
        policy_file: str | None,
        env: Mapping[str, str] | None = None,
    ) -> PruneSettings:
        import os

        from tagger import config

        project = config.load(".")
        lease = lease_seconds(os.environ if env is None else env, project.value("claim_lease"))
        layered = dict(project.sections.get("prune", {}))
        if policy_file:
            layered.update(config.load_section(policy_file, "prune"))
        values = config.Config(None, {"prune": layered}).resolve("prune", given, defaults)
        within = values["keep_within"]
        policy = Policy(
            keep_last=int(values["keep_last"]),
            keep_per_version=int(values["keep_per_version"]),
            keep_within=parse_duration(within) if within else None,
            keep=tuple(compile_regex(p, "--keep") for p in values["keep"]),
            match=compile_regex(values["match"] or DEFAULT_MATCH, "--match"),
            max_delete=values["max_delete"],
            claim_lease=timedelta(seconds=lease),
            orphans=bool(values.get("orphans")),
        )
        provider = values.get("provider") or project.value("provider")
        grace = values.get("untagged_grace")
        return cls(
            policy,
            int(values["concurrency"]),
            provider,
            bool(values.get("untagged")),
            parse_duration(grace, "--untagged-grace") if grace else GRACE,
            values.get("keep_from") or None,
            bool(values.get("validate")),
        )


LAST_VERSION = "the registry keeps the last tagged version of a package"

#: What became of one planned row: (action, reason, succeeded, detail).
Done = tuple[str, str, bool, str]


@dataclass
class PruneResult:
    """The plans of every repository, what applying them did, and how the run ended."""

    plans: list[tuple[Reference, list[Action]]] = field(default_factory=list)
    results: dict[tuple[str, str], Done] = field(default_factory=dict)
    applied: bool = False
    #: Raised by the command line once the plans are printed (``--max-delete``, a signal).
    refusal: ImgtagError | None = None
    #: The digests ``--keep-from`` resolved to.
    in_use: frozenset[str] = frozenset()
    #: ``--validate``: how many tags that stay were checked (None: not asked), and those
    #: that do not resolve fully.
    validated: int | None = None
    broken: list[Broken] = field(default_factory=list)

    def failed(self) -> list[tuple[tuple[str, str], Done]]:
        return [(key, done) for key, done in self.results.items() if not done[2]]

    def outcome_error(self) -> ImgtagError | None:
        """The error the run ends with, if any (see the module docstring)."""
        if self.refusal is not None:
            return self.refusal
        failed = self.failed()
        if failed:
            return RegistryError(
                f"{len(failed)} of {sum(removals(a) for _, a in self.plans)} removals failed "
                "(named above): run the same command again to finish"
            )
        if self.broken:
            return RegistryError(
                f"--validate: {len(self.broken)} of {self.validated} tags that stay do not "
                "resolve fully (named above): push them again or remove them"
            )
        return None


@dataclass(frozen=True)
class Target:
    """One ``IMAGE`` argument: a repository, or (``REG/path/*``) every repository under a
    path; ``ref.repository`` is then the path (``""``: the whole registry)."""

    text: str
    ref: Reference
    wildcard: bool = False


def parse_target(text: str) -> Target:
    """An ``IMAGE`` argument. Pure. A ``*`` anywhere but a last ``/*`` is exit 2.

    >>> t = parse_target("127.0.0.1:5000/team/*")
    >>> t.ref.registry, t.ref.repository, t.wildcard
    ('127.0.0.1:5000', 'team', True)
    >>> parse_target("127.0.0.1:5000/*").ref.repository
    ''
    >>> parse_target("reg.example/te*m/app")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tagger.errors.UsageError: 'reg.example/te*m/app': a * is allowed only as a last /* ...
    """
    if "*" not in text:
        return Target(text, Reference.parse_repository(text))
    base = text[:-2]
    if not text.endswith("/*") or "*" in base or not base:
        raise UsageError(
            f"{text[:120]!r}: a * is allowed only as a last /* (REGISTRY/PATH/* prunes every "
            "repository under PATH)"
        )
    first, _, rest = base.partition("/")
    if not rest and ("." in first or ":" in first or first == "localhost"):
        # REGISTRY/*: every repository of the registry.
        ref = Reference.parse_repository(f"{first}/x")
        return Target(text, Reference(ref.registry, ""), True)
    ref = Reference.parse_repository(base)
    return Target(text, Reference(ref.registry, ref.repository), True)


def expand(
    targets: Sequence[Target], clients: Mapping[str, Registry]
) -> tuple[list[Reference], list[Target]]:
    """The repositories the targets name, each once, in the order given (a wildcard's
    sorted), and the wildcards under which there is none. I/O: a listing per wildcard."""
    refs: dict[str, Reference] = {}
    empty: list[Target] = []
    for target in targets:
        if not target.wildcard:
            refs.setdefault(str(target.ref), target.ref)
            continue
        client = clients[target.ref.registry]
        _log(f"{target.text}: listing repositories")
        names = sorted(client.list_repositories(target.ref.repository))
        if not names:
            empty.append(target)
        for name in names:
            ref = Reference(target.ref.registry, name)
            refs.setdefault(str(ref), ref)
    return list(refs.values()), empty


def key(ref: Reference, action: Action) -> tuple[str, str]:
    """A row's key: untagged versions (``--untagged``) have no tag, their digest tells."""
    return (str(ref), action.tag or action.digest)


def connect(
    refs: Sequence[Reference],
    settings: PruneSettings,
    env: Mapping[str, str],
    *,
    insecure: Sequence[str] = (),
    ca_file: str | None = None,
) -> dict[str, Registry]:
    """One client per registry host of ``refs``, with the provider the settings name."""
    from tagger.registry.connect import open_client

    clients: dict[str, Registry] = {}
    for ref in refs:
        if ref.registry not in clients:
            clients[ref.registry] = open_client(
                ref,
                env,
                insecure=insecure,
                ca_file=ca_file,
                provider=settings.provider,
                concurrency=settings.concurrency,
            )[0]
    return clients


def run_prune(
    refs: Sequence[Reference],
    clients: Mapping[str, Registry],
    settings: PruneSettings,
    *,
    apply: bool,
    stop: Stop,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    in_use: Sequence[InUse] = (),
) -> PruneResult:
    """Plan every repository, then (``apply``) carry the plans out, then (``validate``)
    check that every tag that stays resolves fully.

    Repositories are planned and applied side by side; their requests share one pool of
    ``concurrency`` threads, so that is the bound on requests in flight for the whole run
    (and the last repository's requests use every thread, not a share of them).

    ``in_use`` (``--keep-from``) is resolved once, before any plan: a tag whose digest is
    in use is kept in every repository. ``stop`` is the command's: a signal while planning
    raises at once (nothing was changed); while applying, the removals in flight finish,
    the rest are reported as not started and the result's
    :meth:`~PruneResult.outcome_error` says which signal.
    """
    result = PruneResult(applied=apply)
    planned_at = now()
    for ref in refs:
        # Before any plan: a missing token or an unknown owner is said once, up front.
        clients[ref.registry].check_access(ref.repository, delete=apply, untagged=settings.untagged)
    workers = max(1, settings.concurrency)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="prune")
    repos = ThreadPoolExecutor(
        max_workers=max(1, min(workers, len(refs))), thread_name_prefix="prune-repo"
    )
    try:
        if in_use:
            _log(f"resolving {len(in_use)} images in use")
            result.in_use = resolve_in_use(in_use, clients)

        def plan_one(ref: Reference) -> tuple[list[Action], dict[str, frozenset[str]]]:
            client = clients[ref.registry]
            _log(f"{ref}: reading tags")
            states, children, missing = gather(
                client, ref.repository, settings.policy, settings.concurrency, pool
            )
            referrers = gather_referrers(
                client, ref.repository, states, children, settings.concurrency, pool
            )
            actions = plan(
                states,
                settings.policy,
                planned_at,
                children,
                missing,
                referrers,
                in_use=result.in_use,
            )
            if settings.untagged:
                actions += _plan_untagged(
                    client, ref.repository, actions, children, planned_at, settings, result.in_use
                )
            return actions, children

        children_of: dict[str, dict[str, frozenset[str]]] = {}
        for ref, (actions, children) in zip(refs, repos.map(plan_one, refs), strict=True):
            children_of[str(ref)] = children
            result.plans.append((ref, actions))
            limit = settings.policy.max_delete
            if limit is not None and removals(actions) > limit:
                result.applied = False
                result.refusal = PolicyError(
                    f"{ref}: the plan removes {removals(actions)} tags, more than --max-delete "
                    f"{limit}: nothing was deleted; raise the limit or narrow the policy"
                )
                return result
        if apply:
            # From here on a signal lets the removals in flight finish: nothing half-done.
            stop.raising = False
            _apply_all(result, clients, settings, stop, now, children_of, pool, repos)
        if settings.validate and not stop.requested:
            _validate_all(result, clients, pool, repos)
    finally:
        # A signal raised while planning: queued requests are dropped, not run to the end,
        # and a repository's planner finds the pool closed and stops.
        pool.shutdown(wait=False, cancel_futures=True)
        repos.shutdown(wait=True, cancel_futures=True)
        pool.shutdown(wait=True)
    return result


def _apply_all(
    result: PruneResult,
    clients: Mapping[str, Registry],
    settings: PruneSettings,
    stop: Stop,
    now: Callable[[], datetime],
    children_of: Mapping[str, dict[str, frozenset[str]]],
    pool: Executor,
    repos: Executor,
) -> None:
    def apply_one(planned: tuple[Reference, list[Action]]) -> list[Outcome]:
        ref, actions = planned
        if not removals(actions) or stop.requested:
            return []
        client = clients[ref.registry]
        _log(f"{ref}: removing {removals(actions)} tags")
        outcomes = apply_actions(
            client,
            ref.repository,
            # Untagged versions: apply_untagged below; untagged referrers follow a subject.
            [a for a in actions if a.tag or a.subject],
            settings.concurrency,
            lambda: secrets.token_hex(8),
            stop,
            pool,
        )
        if settings.untagged:
            outcomes += apply_untagged(
                client,
                ref.repository,
                [a for a in actions if not a.subject],
                children_of[str(ref)],
                now,
                settings.untagged_grace,
                stopped=lambda: (
                    f"not started: stopped by {stop.signal_name}" if stop.requested else None
                ),
                in_use=result.in_use,
            )
        refused = client.refused_as_last()
        out = []
        for o in outcomes:
            if not o.ok and o.action.digest in refused:
                # The survivor rule keeps a tagged version; the registry insists on it too.
                o = Outcome(replace(o.action, action=SKIP, reason=LAST_VERSION), True, o.detail)
            out.append(o)
        return out

    for (ref, _), outcomes in zip(result.plans, repos.map(apply_one, result.plans), strict=True):
        for o in outcomes:
            result.results[key(ref, o.action)] = (o.action.action, o.action.reason, o.ok, o.detail)
    if stop.requested:
        not_started = f"not started: stopped by {stop.signal_name}"
        for ref, actions in result.plans:
            for a in actions:
                if a.action in (DELETE, UNTAG):
                    result.results.setdefault(key(ref, a), (SKIP, not_started, True, ""))
        result.refusal = stop.interrupted(
            "the removals in flight finished: run the same command again to finish"
        )


def staying(result: PruneResult, ref: Reference, actions: Sequence[Action]) -> list[str]:
    """The tags of ``ref`` that stay: kept, or planned to go and then skipped (a failed
    removal stays too, but its failure is reported already)."""
    out = []
    for a in actions:
        done = result.results.get(key(ref, a))
        final = done[0] if done is not None else a.action
        if a.tag and final in (KEEP, SKIP):
            out.append(a.tag)
    return out


def _validate_all(
    result: PruneResult, clients: Mapping[str, Registry], pool: Executor, repos: Executor
) -> None:
    def one(planned: tuple[Reference, list[Action]]) -> tuple[int, list[Broken]]:
        ref, actions = planned
        _log(f"{ref}: validating what stays")
        return validate(
            clients[ref.registry], str(ref), ref.repository, staying(result, ref, actions), pool
        )

    result.validated = 0
    for checked, broken in repos.map(one, result.plans):
        result.validated += checked
        result.broken.extend(broken)


def _plan_untagged(
    client: Registry,
    repository: str,
    actions: list[Action],
    children: dict[str, frozenset[str]],
    now: datetime,
    settings: PruneSettings,
    in_use: frozenset[str],
) -> list[Action]:
    """Rows for the versions without a tag (``--untagged``); reads the version list and the
    manifests of recent untagged indexes."""
    grace = settings.untagged_grace
    versions = client.versions(repository)
    young = [v.digest for v in versions if not v.tags and recent(v, now, grace)]
    known = index_children(
        client, repository, [*young, *(in_use & {v.digest for v in versions})], children
    )
    return plan_untagged(versions, actions, known, now, grace, in_use)
