"""``imgtag ci PROVIDER``: print (or write) a ready-made CI pipeline. Glue only.

The logic lives in :mod:`tagger.pipelines.render`; this module reads options, writes the result
to stdout or ``--output``, and says on stderr where the file goes.
"""

from __future__ import annotations

from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    @app.command("ci")
    def ci(
        provider: Annotated[
            str,
            typer.Argument(
                help="github, gitlab, jenkins, circleci, azure, bitbucket, tekton or kubernetes."
            ),
        ],
        image: Annotated[
            str | None,
            typer.Option(
                "--image",
                help="[registry/]path the pipeline builds and prunes. "
                "[default: the template's, e.g. $CI_REGISTRY_IMAGE]",
            ),
        ] = None,
        install: Annotated[
            str | None,
            typer.Option(
                "--install",
                help="IMGTAG_INSTALL's default: a pip requirement, path or URL. "
                "[default: imgtag-release==THIS_VERSION]",
            ),
        ] = None,
        output: Annotated[
            str | None,
            typer.Option("--output", "-o", help="Write to this file. [default: stdout]"),
        ] = None,
        force: Annotated[
            bool, typer.Option("--force", help="Overwrite an existing --output file.")
        ] = False,
    ) -> None:
        """Print a CI pipeline: full-history checkout, hadolint + imgtag lint,
        build-push --squash, and a scheduled prune."""
        import sys

        from tagger.errors import UsageError
        from tagger.pipelines import render as templates

        values = templates.values_for(image, install)
        text = templates.render_provider(provider, values)
        if output is None or output == "-":
            sys.stdout.write(text)
            return
        try:
            # "x" refuses an existing file atomically; --force truncates it.
            with open(output, "w" if force else "x", encoding="utf-8", newline="") as fh:
                fh.write(text)
        except FileExistsError:
            raise UsageError(f"{output} exists; pass --force to overwrite it") from None
        except OSError as exc:
            raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from None
        sys.stderr.write(
            f"imgtag: wrote the {provider} pipeline to {output}; {templates.NEXT_STEP[provider]}\n"
        )
