"""``imgtag prune IMAGE...``: plan, print, and (with ``--apply``) carry out. Glue only:
it owns the signals and the printing, ``tagger.prune.run`` the work.

Heavy imports (requests) happen inside the command body.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any

import typer

from tagger.cli.options import CaFileOpt, InsecureOpt, ProviderOpt


class PruneFormat(enum.StrEnum):
    TEXT = "text"
    JSON = "json"


PRUNE_DEFAULTS: dict[str, Any] = {
    "keep_last": 10,
    "keep_per_version": 1,
    "keep_within": None,
    "keep": [],
    "match": None,
    "max_delete": None,
    "concurrency": 8,
    "provider": None,
    "untagged": False,
    "orphans": False,
    "untagged_grace": "1h",
    "keep_from": None,
    "validate": False,
}


def register(app: typer.Typer) -> None:
    @app.command("prune")
    def prune(
        images: Annotated[
            list[str],
            typer.Argument(
                help="[registry/]path of each repository; REGISTRY/PATH/* for every "
                "repository under PATH."
            ),
        ],
        apply: Annotated[
            bool, typer.Option("--apply", help="Delete; without it, a dry run.")
        ] = False,
        policy: Annotated[
            str | None,
            typer.Option("--policy", envvar="IMGTAG_POLICY", help="TOML file with the keys below."),
        ] = None,
        keep_last: Annotated[
            int | None,
            typer.Option(
                "--keep-last",
                envvar="IMGTAG_KEEP_LAST",
                min=0,
                help="Keep the N highest tags. [default: 10]",
            ),
        ] = None,
        keep_per_version: Annotated[
            int | None,
            typer.Option(
                "--keep-per-version",
                envvar="IMGTAG_KEEP_PER_VERSION",
                min=0,
                help="Keep the N highest builds of each X.Y.Z[-PRE]. [default: 1]",
            ),
        ] = None,
        keep_within: Annotated[
            str | None,
            typer.Option(
                "--keep-within",
                envvar="IMGTAG_KEEP_WITHIN",
                help="Keep what was created within this long (30d, 12h).",
            ),
        ] = None,
        keep: Annotated[
            list[str] | None,
            typer.Option("--keep", help="Keep tags matching this regex; repeatable."),
        ] = None,
        match: Annotated[
            str | None,
            typer.Option(
                "--match",
                envvar="IMGTAG_MATCH",
                help="Candidates: tags matching this regex. [default: X.Y.Z[-PRE]-N]",
            ),
        ] = None,
        max_delete: Annotated[
            int | None,
            typer.Option(
                "--max-delete",
                envvar="IMGTAG_MAX_DELETE",
                min=0,
                help="Refuse a plan that removes more tags.",
            ),
        ] = None,
        concurrency: Annotated[
            int | None,
            typer.Option(
                "--concurrency",
                envvar="IMGTAG_CONCURRENCY",
                min=1,
                help="Parallel requests. [default: 8]",
            ),
        ] = None,
        fmt: Annotated[
            PruneFormat, typer.Option("--format", help="text or json.")
        ] = PruneFormat.TEXT,
        provider: ProviderOpt = None,
        untagged: Annotated[
            bool | None,
            typer.Option(
                "--untagged/--no-untagged",
                envvar="IMGTAG_UNTAGGED",
                help="ghcr: also delete versions without a tag that no kept image needs.",
                show_default=False,
            ),
        ] = None,
        orphans: Annotated[
            bool | None,
            typer.Option(
                "--orphans/--no-orphans",
                help="Also remove signatures, attestations, SBOMs and referrers whose "
                "subject is gone (kept by default: it may live in another repository).",
            ),
        ] = None,
        untagged_grace: Annotated[
            str | None,
            typer.Option(
                "--untagged-grace",
                envvar="IMGTAG_UNTAGGED_GRACE",
                help="Keep untagged versions younger than this (90m, 2h). [default: 1h]",
            ),
        ] = None,
        keep_from: Annotated[
            str | None,
            typer.Option(
                "--keep-from",
                envvar="IMGTAG_KEEP_FROM",
                help="File (- for stdin) of image references or digests in use: never pruned.",
            ),
        ] = None,
        validate: Annotated[
            bool | None,
            typer.Option(
                "--validate/--no-validate",
                envvar="IMGTAG_VALIDATE",
                help="Check that every tag that stays resolves fully (manifests, blobs).",
                show_default=False,
            ),
        ] = None,
        insecure_registry: InsecureOpt = None,
        ca_file: CaFileOpt = None,
    ) -> None:
        """Remove old tags from registries, digest-safely. A dry run unless --apply."""
        import os

        from tagger.lifecycle import Stop, handling_signals
        from tagger.progress import log
        from tagger.prune import report
        from tagger.prune.inuse import read_in_use
        from tagger.prune.run import PruneSettings, connect, expand, parse_target, run_prune

        given = {
            "keep_last": keep_last,
            "keep_per_version": keep_per_version,
            "keep_within": keep_within,
            "keep": keep or None,
            "match": match,
            "max_delete": max_delete,
            "concurrency": concurrency,
            "provider": provider,
            "untagged": untagged,
            "orphans": orphans,
            "untagged_grace": untagged_grace,
            "keep_from": keep_from,
            "validate": validate,
        }
        settings = PruneSettings.resolve(given, PRUNE_DEFAULTS, policy_file=policy)
        targets = [parse_target(image) for image in images]
        # Read before any registry is asked: a bad list is exit 2 with nothing done.
        in_use = read_in_use(settings.keep_from) if settings.keep_from else []
        clients = connect(
            [t.ref for t in targets],
            settings,
            os.environ,
            insecure=tuple(insecure_registry or ()),
            ca_file=ca_file,
        )
        refs, empty = expand(targets, clients)
        for target in empty:
            log(f"no repository under {target.text[:-2]}")
        if not refs:
            typer.echo(f"no repository under {', '.join(t.text[:-2] for t in empty)}")
            return
        # A signal while planning stops at once; while applying, run_prune lets the
        # removals in flight finish and says so in its result.
        with handling_signals(Stop(raising=True)) as stop:
            result = run_prune(refs, clients, settings, apply=apply, stop=stop, in_use=in_use)
            with stop.shielded():  # what was done is always reported
                if fmt is PruneFormat.JSON:
                    typer.echo(report.render_json(result))
                else:
                    typer.echo(report.render_text(result))
                for line in report.failures(result):
                    log(line)
        error = result.outcome_error() or (stop.interrupted() if stop.requested else None)
        if error is not None:
            raise error
