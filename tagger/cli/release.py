"""``imgtag release``: cut the version (annotated tag, CHANGELOG.md, push). A few lines of glue."""

from __future__ import annotations

from typing import Annotated

import typer

from tagger.cli.options import (
    InitialVersionOpt,
    ReleaseBumpOpt,
    RepoOpt,
    TagPrefixOpt,
    TextFormat,
)


def register(app: typer.Typer) -> None:
    @app.command("release")
    def release(
        repo: RepoOpt = None,
        tag_prefix: TagPrefixOpt = None,
        bump: ReleaseBumpOpt = None,
        initial_version: InitialVersionOpt = None,
        prerelease: Annotated[
            str | None,
            typer.Option(
                "--prerelease",
                metavar="ID",
                help="Cut a pre-release X.Y.Z-ID.N (rc: 1.3.0-rc.1, then rc.2).",
            ),
        ] = None,
        changelog: Annotated[
            bool,
            typer.Option(
                "--changelog/--no-changelog",
                help="Add the version's section to the changelog and commit it.",
            ),
        ] = True,
        changelog_file: Annotated[
            str,
            typer.Option("--changelog-file", help="The changelog, from the repository root."),
        ] = "CHANGELOG.md",
        push: Annotated[
            bool,
            typer.Option("--push/--no-push", help="Push the branch and the tag, atomically."),
        ] = False,
        remote: Annotated[
            str | None,
            typer.Option(
                "--remote",
                help="The remote to push to and ask for existing tags.  [default: origin]",
            ),
        ] = None,
        dry_run: Annotated[
            bool, typer.Option("--dry-run", help="Say what would be released; change nothing.")
        ] = False,
        notes_file: Annotated[
            str | None,
            typer.Option("--notes-file", help="Also write the release notes to this file."),
        ] = None,
        fmt: Annotated[
            TextFormat, typer.Option("--format", help="text or json on stdout.")
        ] = TextFormat.TEXT,
    ) -> None:
        """Tag the next version (annotated, with release notes), update the changelog."""
        from datetime import UTC, datetime

        from tagger.lifecycle import Stop, handling_signals
        from tagger.output import to_json
        from tagger.version.release import ReleaseOptions
        from tagger.version.release import release as cut

        options = ReleaseOptions.resolve(
            {
                "repo": repo,
                "tag_prefix": tag_prefix,
                "bump": bump,
                "initial_version": initial_version,
                "prerelease": prerelease,
                "changelog": changelog,
                "changelog_file": changelog_file,
                "push": push,
                "remote": remote,
                "dry_run": dry_run,
                "notes_file": notes_file,
            }
        )
        with handling_signals(Stop()) as stop:
            result = cut(options, datetime.now(UTC), stop)
            with stop.shielded():
                if fmt is TextFormat.JSON:
                    typer.echo(to_json(result.as_dict()))
                else:
                    typer.echo(result.as_text(), nl=False)
            stop.check()  # a signal during the push: the release is out, and so is the exit
