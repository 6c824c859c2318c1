"""``imgtag next``: print the next image tag for the checkout. A few lines of glue."""

from __future__ import annotations

import enum
from typing import Annotated

import typer

from tagger.cli.options import (
    BuildOpt,
    BumpOpt,
    CounterOpt,
    ImageOpt,
    InitialVersionOpt,
    RepoOpt,
    TagPrefixOpt,
)


class NextFormat(enum.StrEnum):
    PLAIN = "plain"
    JSON = "json"
    ENV = "env"


def register(app: typer.Typer) -> None:
    @app.command("next")
    def next_(
        repo: RepoOpt = None,
        tag_prefix: TagPrefixOpt = None,
        bump: BumpOpt = None,
        initial_version: InitialVersionOpt = None,
        build: BuildOpt = None,
        counter: CounterOpt = None,
        image: ImageOpt = None,
        fmt: Annotated[
            NextFormat, typer.Option("--format", help="plain: the tag; json; env: dotenv.")
        ] = NextFormat.PLAIN,
    ) -> None:
        """Print the next image tag (X.Y.Z[-PRE]-N) for the checkout."""
        import os
        from datetime import UTC, datetime

        from tagger.output import to_dotenv, to_json
        from tagger.version.next import NextOptions, derive

        options = NextOptions.resolve(
            {
                "repo": repo,
                "tag_prefix": tag_prefix,
                "bump": bump,
                "initial_version": initial_version,
                "build": build,
                "counter": counter,
                "image": image,
            }
        )
        result = derive(options, os.environ, datetime.now(UTC))
        if fmt is NextFormat.JSON:
            typer.echo(to_json(result.as_dict()))
        elif fmt is NextFormat.ENV:
            typer.echo(to_dotenv(result.as_dict()), nl=False)
        else:
            typer.echo(result.tag)
