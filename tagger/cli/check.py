"""``imgtag check IMAGE``: run the image's runtime checks and a container-structure-test
file; print the report; exit 1 when a check fails. Glue only: ``tagger.check`` does the
work, and is imported inside the command body (with it, later, the docker SDK).
"""

from __future__ import annotations

import enum
from typing import Annotated

import typer


class CheckFormat(enum.StrEnum):
    TEXT = "text"
    JSON = "json"
    JUNIT = "junit"


def register(app: typer.Typer) -> None:
    @app.command("check")
    def check(
        image: Annotated[str, typer.Argument(help="A local image of the engine (name or ID).")],
        fmt: Annotated[
            CheckFormat, typer.Option("--format", help="text, json or junit on stdout.")
        ] = CheckFormat.TEXT,
        config: Annotated[
            str | None,
            typer.Option(
                "--config",
                help="A container-structure-test file (schema 2.0.0) whose tests run too.",
            ),
        ] = None,
        stop_timeout: Annotated[
            float | None,
            typer.Option(
                "--stop-timeout",
                min=0,
                help="CHK001's grace period in seconds before the engine kills PID 1. "
                "[default: 10]",
            ),
        ] = None,
        user: Annotated[
            str | None,
            typer.Option(
                "--user",
                help="UID:GID CHK002 runs the image as. [default: 1000680000:0, an "
                "arbitrary uid in group 0 as OpenShift assigns]",
            ),
        ] = None,
        writable: Annotated[
            list[str] | None,
            typer.Option(
                "--writable",
                help="A path CHK002 checks is writable, besides WORKDIR and VOLUMEs; repeatable.",
            ),
        ] = None,
        ignore: Annotated[
            list[str] | None,
            typer.Option("--ignore", help="Skip a check (CHK001...CHK005); repeatable."),
        ] = None,
    ) -> None:
        """Run the image: PID 1 and SIGTERM, an arbitrary uid, USER, ports, exec form."""
        import os
        import sys

        from tagger.check.report import render_json, render_junit, render_text, summary
        from tagger.check.run import check_image, load_structure
        from tagger.check.settings import CheckSettings
        from tagger.engine import Engine
        from tagger.errors import PolicyError
        from tagger.lifecycle import Stop, handling_signals
        from tagger.progress import log

        given = {
            "config": config,
            "stop_timeout": stop_timeout,
            "user": user,
            "writable": writable or None,
            "ignore": ignore or None,
        }
        settings = CheckSettings.resolve(given)
        structure = load_structure(settings)  # exit 2 before any container starts
        engine = Engine(os.environ)
        with handling_signals(Stop()) as stop:
            try:
                report = check_image(engine, image, settings, structure, stop=stop, progress=log)
            finally:
                engine.close()
            with stop.shielded():
                if fmt is CheckFormat.JSON:
                    out = render_json(report) + "\n"
                elif fmt is CheckFormat.JUNIT:
                    out = render_junit(report) + "\n"
                else:
                    out = render_text(report)
                sys.stdout.write(out)
                sys.stdout.flush()
                sys.stderr.write(summary(report) + "\n")
            stop.check()
        if report.failures:
            ids = ", ".join(r.id for r in report.failures)
            raise PolicyError(f"{image}: {len(report.failures)} check(s) failed: {ids}")
