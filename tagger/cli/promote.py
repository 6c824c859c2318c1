"""``imgtag promote SRC DEST...``: copy a tested image to its release tags, digest for
digest, under build-push's guard. A few lines of glue.

Heavy imports (requests) happen inside the command body only.
"""

from __future__ import annotations

from typing import Annotated

import typer

from tagger.cli.options import CaFileOpt, InsecureOpt, ProviderOpt, TextFormat


def register(app: typer.Typer) -> None:
    @app.command("promote")
    def promote(
        source: Annotated[str, typer.Argument(help="SRC: IMAGE:TAG or IMAGE@DIGEST.")],
        destinations: Annotated[
            list[str],
            typer.Argument(help="DEST...: IMAGE:TAG (another tag, repository or registry)."),
        ],
        alias: Annotated[
            list[str] | None,
            typer.Option("--alias", help="Floating tag (latest, 1, 1.4, main); repeatable."),
        ] = None,
        with_signatures: Annotated[
            bool,
            typer.Option(
                "--with-signatures/--no-signatures",
                help="Copy cosign signatures, attestations and referrers of the digests.",
            ),
        ] = True,
        platform: Annotated[
            list[str] | None,
            typer.Option("--platform", help="Refused: a subset of an index is another image."),
        ] = None,
        dry_run: Annotated[
            bool, typer.Option("--dry-run", help="Check every destination; write nothing.")
        ] = False,
        fmt: Annotated[
            TextFormat, typer.Option("--format", help="text or json on stdout.")
        ] = TextFormat.TEXT,
        concurrency: Annotated[
            int, typer.Option("--concurrency", help="Blobs copied at once (1 to 64).")
        ] = 4,
        provider: ProviderOpt = None,
        insecure_registry: InsecureOpt = None,
        ca_file: CaFileOpt = None,
    ) -> None:
        """Copy SRC to each DEST verbatim (same digest); never overwrite a tag."""
        import os

        from tagger import config
        from tagger.lifecycle import Stop, handling_signals
        from tagger.output import to_json
        from tagger.promote.run import PromoteOptions, PromoteRefused
        from tagger.promote.run import promote as run_promote
        from tagger.registry.markers import lease_seconds

        project = config.load(".")
        options = PromoteOptions(
            source=source,
            destinations=tuple(destinations),
            aliases=tuple(alias or ()),
            with_signatures=with_signatures,
            platforms=tuple(platform or ()),
            dry_run=dry_run,
            concurrency=concurrency,
            claim_lease=lease_seconds(os.environ, project.value("claim_lease")),
        )

        def show(doc: dict[str, object], lines: list[str]) -> None:
            if fmt is TextFormat.JSON:
                typer.echo(to_json(doc))
            else:
                for line in lines:
                    typer.echo(line)

        with handling_signals(Stop()) as stop:
            try:
                result = run_promote(
                    options,
                    os.environ,
                    insecure=tuple(insecure_registry or ()),
                    ca_file=ca_file,
                    provider=provider or project.value("provider"),
                    stop=stop,
                )
            except PromoteRefused as refused:
                with stop.shielded():  # what was copied is reported, then exit 3
                    show(refused.result.as_dict(), refused.result.text_lines())
                raise
            with stop.shielded():  # a written tag is always reported
                show(result.as_dict(), result.text_lines())
            stop.check()
