"""``imgtag prune`` across repositories: settings, then plan and apply through the
registries it is handed, returning a :class:`PruneResult`. Does I/O (registries, progress
on stderr); the decisions are ``tagger.prune.plan``'s, the printing ``tagger.prune.report``'s
and the command line's, the signals the command line's (through the ``Stop`` it passes).

Settings: option > ``IMGTAG_*`` variable > ``--policy`` file > ``[tool.imgtag.prune]`` >
default. :meth:`PruneResult.outcome_error` is what the run ends with: ``None`` when every
action succeeded, exit 5 when any failed (each named), 143/130/129 when a signal stopped it,
1 when the plan was larger than ``--max-delete``; a re-run finishes the job.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from tagger.errors import ImgtagError, PolicyError, RegistryError
from tagger.lifecycle import Stop
from tagger.progress import log as _log
from tagger.prune.execute import Outcome
from tagger.prune.execute import apply as apply_actions
from tagger.prune.gather import gather, gather_referrers
from tagger.prune.plan import (
    DEFAULT_MATCH,
    DELETE,
    SKIP,
    UNTAG,
    Action,
    Policy,
    compile_regex,
    parse_duration,
    plan,
    removals,
)
from tagger.prune.untagged import apply_untagged, index_children, plan_untagged, recent
from tagger.registry.markers import lease_seconds
from tagger.registry.protocols import Registry
from tagger.registry.reference import Reference


@dataclass(frozen=True)
class PruneSettings:
    policy: Policy
    concurrency: int
    #: ``--provider``/``IMGTAG_PROVIDER``/config ``provider``; None: by the registry host.
    provider: str | None = None
    #: ``--untagged`` (ghcr): also delete versions without a tag that nothing needs.
    untagged: bool = False

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
        return cls(policy, int(values["concurrency"]), provider, bool(values.get("untagged")))


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
        return None


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
) -> PruneResult:
    """Plan every repository, then (``apply``) carry the plans out.

    ``stop`` is the command's: a signal while planning raises at once (nothing was
    changed); while applying, the removals in flight finish, the rest are reported as
    not started and the result's :meth:`~PruneResult.outcome_error` says which signal.
    """
    result = PruneResult(applied=apply)
    children_of: dict[str, dict[str, frozenset[str]]] = {}
    planned_at = now()
    for ref in refs:
        # Before any plan: a missing token or an unknown owner is said once, up front.
        clients[ref.registry].check_access(ref.repository, delete=apply, untagged=settings.untagged)
    for ref in refs:
        client = clients[ref.registry]
        _log(f"{ref}: reading tags")
        states, children, missing = gather(
            client, ref.repository, settings.policy, settings.concurrency
        )
        referrers = gather_referrers(client, ref.repository, states, children, settings.concurrency)
        actions = plan(states, settings.policy, planned_at, children, missing, referrers)
        if settings.untagged:
            actions += _plan_untagged(client, ref.repository, actions, children, planned_at)
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
    if not apply:
        return result

    # From here on a signal lets the removals in flight finish: nothing half-done.
    stop.raising = False
    for ref, actions in result.plans:
        if not removals(actions) or stop.requested:
            continue
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
        )
        if settings.untagged:
            outcomes += apply_untagged(
                client,
                ref.repository,
                [a for a in actions if not a.subject],
                children_of[str(ref)],
                now,
                stopped=lambda: (
                    f"not started: stopped by {stop.signal_name}" if stop.requested else None
                ),
            )
        refused = client.refused_as_last()
        for o in outcomes:
            if not o.ok and o.action.digest in refused:
                # The survivor rule keeps a tagged version; the registry insists on it too.
                o = Outcome(replace(o.action, action=SKIP, reason=LAST_VERSION), True, o.detail)
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
    return result


def _plan_untagged(
    client: Registry,
    repository: str,
    actions: list[Action],
    children: dict[str, frozenset[str]],
    now: datetime,
) -> list[Action]:
    """Rows for the versions without a tag (``--untagged``); reads the version list and the
    manifests of recent untagged indexes."""
    versions = client.versions(repository)
    young = [v.digest for v in versions if not v.tags and recent(v, now)]
    known = index_children(client, repository, young, children)
    return plan_untagged(versions, actions, known, now)
