"""``imgtag prune`` across repositories: settings, progress, the plan table, the summary.

Does I/O (registry, stdout/stderr); the decisions are ``tagger.prune.plan``'s.
Settings: option > ``IMGTAG_*`` variable > ``--policy`` file > ``[tool.imgtag.prune]`` >
default. The plan prints first, then a summary; exit 0 when every action succeeded, 5
when any failed (each named), so a re-run finishes the job.
"""

from __future__ import annotations

import re
import secrets
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from tagger.build.claim import lease_seconds
from tagger.errors import PolicyError, RegistryError
from tagger.lifecycle import Stop, handling_signals
from tagger.progress import log as _log
from tagger.prune.execute import Outcome
from tagger.prune.execute import apply as apply_actions
from tagger.prune.gather import gather
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
from tagger.prune.untagged import apply_untagged, index_children, plan_untagged, recent


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
        )
        provider = values.get("provider") or project.value("provider")
        return cls(policy, int(values["concurrency"]), provider, bool(values.get("untagged")))


def run_prune(
    images: Sequence[str],
    settings: PruneSettings,
    *,
    apply: bool,
    json_output: bool,
    env: Mapping[str, str],
    insecure: Sequence[str] = (),
    ca_file: str | None = None,
) -> None:
    """Plan every repository, print the plans, apply them, print the summary.

    A signal while planning stops at once (nothing was changed); while applying, the
    removals in flight finish, the plan and the summary so far are printed, and the run
    exits 143 (SIGTERM), 130 (SIGINT) or 129 (SIGHUP).
    """
    stop = Stop(raising=True)
    with handling_signals(stop):
        _run(images, settings, stop, apply, json_output, env, insecure, ca_file)


def _run(
    images: Sequence[str],
    settings: PruneSettings,
    stop: Stop,
    apply: bool,
    json_output: bool,
    env: Mapping[str, str],
    insecure: Sequence[str],
    ca_file: str | None,
) -> None:
    from tagger.registry.client import open_client
    from tagger.registry.reference import Reference

    now = datetime.now(UTC)
    refs = [Reference.parse_repository(image) for image in images]
    clients: dict[str, Any] = {}
    plans: list[tuple[Reference, list[Action]]] = []
    children_of: dict[str, dict[str, frozenset[str]]] = {}
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
    for ref in refs:
        # Before any plan: a missing token or an unknown owner is said once, up front.
        clients[ref.registry].provider.check(
            ref.repository, delete=apply, untagged=settings.untagged
        )
    for ref in refs:
        client = clients[ref.registry]
        _log(f"{ref}: reading tags")
        states, children, missing = gather(
            client, ref.repository, settings.policy, settings.concurrency
        )
        actions = plan(states, settings.policy, now, children, missing)
        if settings.untagged:
            actions += _plan_untagged(client, ref.repository, actions, children, now)
        children_of[str(ref)] = children
        plans.append((ref, actions))
        limit = settings.policy.max_delete
        if limit is not None and removals(actions) > limit:
            _print_plans(plans, json_output, {})
            raise PolicyError(
                f"{ref}: the plan removes {removals(actions)} tags, more than --max-delete "
                f"{limit}: nothing was deleted; raise the limit or narrow the policy"
            )

    results: dict[tuple[str, str], tuple[str, str, bool, str]] = {}
    if apply:
        # From here on a signal lets the removals in flight finish: nothing half-done.
        stop.raising = False
        for ref, actions in plans:
            if not removals(actions) or stop.requested:
                continue
            _log(f"{ref}: removing {removals(actions)} tags")
            outcomes = apply_actions(
                clients[ref.registry],
                ref.repository,
                [a for a in actions if a.tag],  # untagged versions: apply_untagged below
                settings.concurrency,
                lambda: secrets.token_hex(8),
                stop,
            )
            if settings.untagged:
                outcomes += apply_untagged(
                    clients[ref.registry],
                    clients[ref.registry].provider,
                    ref.repository,
                    actions,
                    children_of[str(ref)],
                    lambda: datetime.now(UTC),
                    stopped=lambda: (
                        f"not started: stopped by {stop.signal_name}" if stop.requested else None
                    ),
                )
            refused = clients[ref.registry].provider.refused_as_last()
            for o in outcomes:
                if not o.ok and o.action.digest in refused:
                    # The survivor rule keeps a tagged version; the registry insists on it too.
                    o = Outcome(replace(o.action, action=SKIP, reason=LAST_VERSION), True, o.detail)
                results[_key(ref, o.action)] = (
                    o.action.action,
                    o.action.reason,
                    o.ok,
                    o.detail,
                )
        if stop.requested:
            not_started = f"not started: stopped by {stop.signal_name}"
            for ref, actions in plans:
                for a in actions:
                    if a.action in (DELETE, UNTAG):
                        results.setdefault(_key(ref, a), (SKIP, not_started, True, ""))
    _print_plans(plans, json_output, results)
    failed = [(key, r) for key, r in results.items() if not r[2]]
    summary = _summary(plans, results, apply)
    if not json_output:
        sys.stdout.write(summary + "\n")
    for (image, tag), (_, _, _, detail) in failed:
        _log(f"failed: {image}:{tag}: {detail}")
    if stop.requested:
        raise stop.interrupted(
            "the removals in flight finished: run the same command again to finish"
        )
    if failed:
        raise RegistryError(
            f"{len(failed)} of {sum(removals(a) for _, a in plans)} removals failed (named "
            "above): run the same command again to finish"
        )


LAST_VERSION = "the registry keeps the last tagged version of a package"


def _key(ref: Any, action: Action) -> tuple[str, str]:
    # Untagged versions (--untagged) have no tag: their digest tells them apart.
    return (str(ref), action.tag or action.digest)


def _plan_untagged(
    client: Any,
    repository: str,
    actions: list[Action],
    children: dict[str, frozenset[str]],
    now: datetime,
) -> list[Action]:
    """Rows for the versions without a tag (``--untagged``); reads the version list and the
    manifests of recent untagged indexes."""
    provider = client.provider
    versions = provider.versions(repository)
    young = [v.digest for v in versions if not v.tags and recent(v, now)]
    known = index_children(client, repository, young, children)
    return plan_untagged(versions, actions, known, now)


def _rows(
    plans: Sequence[tuple[Any, list[Action]]],
    results: Mapping[tuple[str, str], tuple[str, str, bool, str]],
) -> list[dict[str, Any]]:
    rows = []
    for ref, actions in plans:
        for a in actions:
            row = {"image": str(ref), **a.as_dict()}
            done = results.get(_key(ref, a))
            if done is not None:
                row["action"], row["reason"] = done[0], done[1]
                row["result"] = "ok" if done[2] else f"failed: {done[3]}"
            rows.append(row)
    return rows


def _print_plans(
    plans: Sequence[tuple[Any, list[Action]]],
    json_output: bool,
    results: Mapping[tuple[str, str], tuple[str, str, bool, str]],
) -> None:
    from tagger.output import to_json

    rows = _rows(plans, results)
    if json_output:
        sys.stdout.write(to_json({"plan": rows, "summary": _counts(rows)}) + "\n")
        return
    headers = ("IMAGE", "TAG", "DIGEST", "CREATED", "ACTION", "REASON")
    table = [
        (
            r["image"],
            r["tag"] or "-",
            r["digest"][:19],
            r["created"] or "-",
            r["action"],
            r["reason"] + (f" [{r['result']}]" if "result" in r and r["result"] != "ok" else ""),
        )
        for r in rows
    ]
    widths = [
        max([len(h)] + [len(_safe(str(row[i]))) for row in table])
        for i, h in enumerate(headers[:-1])
    ]
    lines = [
        "  ".join(h.ljust(w) for h, w in zip(headers[:-1], widths, strict=True))
        + "  "
        + headers[-1]
    ]
    for row in table:
        cells = [_safe(str(c)).ljust(w) for c, w in zip(row[:-1], widths, strict=True)]
        lines.append("  ".join(cells) + "  " + _safe(str(row[-1])))
    sys.stdout.write("\n".join(lines) + "\n")


_UNSAFE = re.compile(r"[^\x20-\x7e]")


def _safe(text: str) -> str:
    # Tag names come from the registry: no terminal escapes on the way to a screen.
    return _UNSAFE.sub("?", text)


def _counts(rows: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    counts = {KEEP: 0, DELETE: 0, UNTAG: 0, SKIP: 0, "failed": 0}
    for row in rows:
        counts[row["action"]] = counts.get(row["action"], 0) + 1
        if str(row.get("result", "ok")).startswith("failed"):
            counts["failed"] += 1
    return counts


def _summary(
    plans: Sequence[tuple[Any, list[Action]]],
    results: Mapping[tuple[str, str], tuple[str, str, bool, str]],
    applied: bool,
) -> str:
    counts = _counts(_rows(plans, results))
    noun = "repository" if len(plans) == 1 else "repositories"
    text = (
        f"{len(plans)} {noun}: keep {counts[KEEP]}, delete {counts[DELETE]}, "
        f"untag {counts[UNTAG]}, skip {counts[SKIP]}"
    )
    if applied:
        return text + (f", failed {counts['failed']}" if counts["failed"] else ", all done")
    return text + " (dry run: nothing deleted; pass --apply)"
