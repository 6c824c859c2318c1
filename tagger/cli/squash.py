"""``imgtag squash IMAGE``: merge the image's own layers into one. Glue only.

The work is :func:`tagger.image.squash.squash_image` (also what ``build-push --squash``
calls). By default the squashed image takes IMAGE's own name, so ``imgtag squash app:1.0``
leaves ``app:1.0`` pointing at the squashed image (``docker-squash -t app:1.0 app:1.0``);
``--tag NEW`` names it otherwise and leaves IMAGE alone. An IMAGE given by ID gets no name
unless ``--tag`` is given. Data on stdout, progress on stderr. Heavy imports (docker SDK)
happen inside the command body only.
"""

from __future__ import annotations

import enum
from typing import Annotated

import typer


class SquashFormat(enum.StrEnum):
    TEXT = "text"
    JSON = "json"


def register(app: typer.Typer) -> None:
    @app.command("squash")
    def squash(
        image: Annotated[str, typer.Argument(help="A local image: name[:tag] or ID.")],
        tag: Annotated[
            str | None,
            typer.Option(
                "--tag",
                "-t",
                help="Name of the squashed image. [default: IMAGE's own name; none for an ID]",
            ),
        ] = None,
        from_: Annotated[
            str | None,
            typer.Option(
                "--from",
                "-f",
                help="The base: an IMAGE whose layers are a prefix, or N (squash the top N "
                "layers). [default: the longest prefix shared with another local image]",
            ),
        ] = None,
        all_layers: Annotated[
            bool, typer.Option("--all", help="Squash every layer, the base's too.")
        ] = False,
        fmt: Annotated[
            SquashFormat, typer.Option("--format", help="text or json on stdout.")
        ] = SquashFormat.TEXT,
    ) -> None:
        """Merge the image's own layers (above its base) into one layer."""
        from tagger.engine import Engine, stderr_progress
        from tagger.errors import UsageError
        from tagger.image.squash import squash_image
        from tagger.output import to_json

        if from_ is not None and all_layers:
            raise UsageError("--from and --all exclude each other: give one of them")
        if from_ is not None and not from_.strip():
            raise UsageError("--from needs an image name or a number of layers")
        result = squash_image(
            Engine(),
            image,
            tag=tag,
            from_=from_,
            all_layers=all_layers,
            progress=stderr_progress,
        )
        if fmt is SquashFormat.JSON:
            typer.echo(to_json(result.as_dict()))
            return
        name = result.tag or result.id
        if not result.changed:
            typer.echo(f"{name}: nothing to squash ({result.base_source}); image unchanged")
            return
        typer.echo(
            f"{name}: squashed {result.squashed_layers} layers into 1 above "
            f"{result.base_layers} base layers; {result.size_before} -> {result.size_after} "
            f"bytes; id {result.id}"
        )
