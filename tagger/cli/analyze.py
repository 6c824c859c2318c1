"""``imgtag analyze IMAGE``: wasted space per layer and path, with CI thresholds. Glue only.

``tagger.image.sources`` reads the image (from the engine, or with ``--from-registry``
straight from the registry) and resolves the thresholds; the figures come from
``tagger.image.analyze``. Data on stdout, progress on stderr; thresholds crossed are exit 1
after the report. Heavy imports (docker SDK, requests, rich) happen inside the body only.
"""

from __future__ import annotations

import enum
from typing import Annotated

import typer

from tagger.cli.options import CaFileOpt, InsecureOpt


class AnalyzeFormat(enum.StrEnum):
    TEXT = "text"
    JSON = "json"


def register(app: typer.Typer) -> None:
    @app.command("analyze")
    def analyze(
        image: Annotated[
            str, typer.Argument(help="A local image (name or ID), or with --from-registry a ref.")
        ],
        from_registry: Annotated[
            bool,
            typer.Option(
                "--from-registry", help="Read the image from its registry; no engine needed."
            ),
        ] = False,
        platform: Annotated[
            str | None,
            typer.Option(
                "--platform",
                help="os/arch[/variant] to pick from a multi-platform index. [default: "
                "linux/amd64, else the first image]",
            ),
        ] = None,
        base: Annotated[
            str | None,
            typer.Option(
                "--base",
                help="The base image: a count N of bottom layers, or an IMAGE whose layers "
                "are a prefix. [default: the longest prefix shared with another local "
                "image; 1 with --from-registry]",
            ),
        ] = None,
        top: Annotated[
            int | None,
            typer.Option("--top", min=0, help="How many worst paths to list. [default: 10]"),
        ] = None,
        fmt: Annotated[
            AnalyzeFormat, typer.Option("--format", help="text or json on stdout.")
        ] = AnalyzeFormat.TEXT,
        lowest_efficiency: Annotated[
            float | None,
            typer.Option(
                "--lowest-efficiency",
                envvar="IMGTAG_LOWEST_EFFICIENCY",
                min=0.0,
                max=1.0,
                help="Exit 1 when the efficiency (0..1) is below this.",
            ),
        ] = None,
        highest_wasted_bytes: Annotated[
            str | None,
            typer.Option(
                "--highest-wasted-bytes",
                envvar="IMGTAG_HIGHEST_WASTED_BYTES",
                help="Exit 1 when more bytes are wasted (bytes, or 20MB, 20MiB, 1.5GB).",
            ),
        ] = None,
        highest_user_wasted_percent: Annotated[
            float | None,
            typer.Option(
                "--highest-user-wasted-percent",
                envvar="IMGTAG_HIGHEST_USER_WASTED_PERCENT",
                min=0.0,
                max=100.0,
                help="Exit 1 when the image's own layers waste more than this percent (0..100).",
            ),
        ] = None,
        insecure_registry: InsecureOpt = None,
        ca_file: CaFileOpt = None,
    ) -> None:
        """Show each layer's size and instruction, the wasted bytes and the worst paths."""
        import os

        from tagger.errors import PolicyError, UsageError, escape_control
        from tagger.image.sources import AnalyzeSettings, from_engine
        from tagger.image.sources import from_registry as from_registry_
        from tagger.output import to_json
        from tagger.registry.platform import Platform

        given = {
            "lowest_efficiency": lowest_efficiency,
            "highest_wasted_bytes": highest_wasted_bytes,
            "highest_user_wasted_percent": highest_user_wasted_percent,
            "top": top,
            "base": base,
        }
        settings = AnalyzeSettings.resolve(given)
        if platform is not None and not from_registry:
            raise UsageError("--platform needs --from-registry (the engine has one platform)")

        from tagger.progress import log as progress

        if from_registry:
            result, note, extra = from_registry_(
                image,
                settings.base,
                settings.top,
                Platform.parse(platform) if platform else None,
                os.environ,
                tuple(insecure_registry or ()),
                ca_file,
                progress,
            )
        else:
            result, note, extra = from_engine(
                image, settings.base, settings.top, os.environ, progress
            )
        from tagger.image.analyze import check_thresholds, render_text

        checks = check_thresholds(result, **settings.limits)
        if fmt is AnalyzeFormat.JSON:
            doc = result.as_dict()
            doc.update(extra)
            doc["base"] = note
            doc["checks"] = [
                {"option": c.option, "limit": c.limit, "value": c.value, "passed": c.passed}
                for c in checks
            ]
            doc["passed"] = all(c.passed for c in checks)
            typer.echo(to_json(doc))
        else:
            # Instructions and paths come from the image (a registry's, maybe): no
            # terminal escapes on the way to a screen. JSON above stays exact.
            text = render_text(result, checks, base_note=note, width=_width())
            typer.echo(escape_control(text), nl=False)
        failed = [c.message for c in checks if not c.passed]
        if failed:
            raise PolicyError(f"{result.image}: " + "; ".join(failed))


def _width() -> int:
    import shutil

    # A terminal's width; a pipe or a CI log gets enough room for the layer table.
    return max(100, shutil.get_terminal_size((120, 24)).columns)
