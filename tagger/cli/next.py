"""``imgtag next``: print the next image tag for the checkout. A few lines of glue.

The options here are reused by ``build-push`` (DESIGN.md: it "takes every next option").
"""

from __future__ import annotations

import enum
from typing import Annotated, Any

import typer

from tagger.ci import Counter
from tagger.versioning import Bump


class NextFormat(enum.StrEnum):
    PLAIN = "plain"
    JSON = "json"
    ENV = "env"


RepoOpt = Annotated[
    str | None,
    typer.Option(
        "--repo", envvar="IMGTAG_REPO", help="The git checkout.  [default: .]", show_default=False
    ),
]
TagPrefixOpt = Annotated[
    str | None,
    typer.Option(
        "--tag-prefix",
        envvar="IMGTAG_TAG_PREFIX",
        help="Prefix of version tags, e.g. api/v in a monorepo.  [default: an optional v]",
    ),
]
BumpOpt = Annotated[
    Bump | None,
    typer.Option(
        "--bump",
        envvar="IMGTAG_BUMP",
        help="How X.Y.Z moves past the base tag; auto reads Conventional Commits. [default: patch]",
        case_sensitive=False,
    ),
]
InitialVersionOpt = Annotated[
    str | None,
    typer.Option(
        "--initial-version",
        envvar="IMGTAG_INITIAL_VERSION",
        help="Version when no tag is reachable.  [default: 0.1.0]",
    ),
]
# No envvar for --build: `imgtag next --format env` writes IMGTAG_BUILD, and sourcing
# that file (or appending it to $GITHUB_ENV) must not pin the next run's build number.
BuildOpt = Annotated[
    int | None,
    typer.Option("--build", min=0, help="N itself; wins over --counter.", show_default=False),
]
# No envvar for --counter either: the env output has IMGTAG_COUNTER (the counter used,
# e.g. "build"), and `>> $GITHUB_ENV` would silently pin every later step's counter.
CounterOpt = Annotated[
    Counter | None,
    typer.Option(
        "--counter",
        help="Where N comes from: ci, timestamp, commits, registry; auto is ci inside a "
        "known CI, else timestamp.  [default: auto]",
        case_sensitive=False,
    ),
]
ImageOpt = Annotated[
    str | None,
    typer.Option(
        "--image", envvar="IMGTAG_IMAGE", help="Image repository (for --counter registry)."
    ),
]

NEXT_DEFAULTS: dict[str, Any] = {
    "repo": ".",
    "tag_prefix": None,
    "bump": Bump.PATCH,
    "initial_version": "0.1.0",
    "build": None,
    "counter": Counter.AUTO,
    "image": None,
}


def next_options(given: dict[str, Any]) -> Any:
    """Resolve option > env > config file > default into ``NextOptions``."""
    from tagger import config
    from tagger.nextversion import NextOptions

    repo = given.get("repo") or NEXT_DEFAULTS["repo"]
    values = config.load(repo).resolve("", {**given, "repo": repo}, NEXT_DEFAULTS)
    return NextOptions(
        repo=values["repo"],
        tag_prefix=values["tag_prefix"],
        bump=Bump(values["bump"]),
        initial_version=values["initial_version"],
        build=values["build"],
        counter=Counter(values["counter"]),
        image=values["image"],
    )


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

        from tagger.nextversion import derive
        from tagger.output import to_dotenv, to_json

        options = next_options(
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
