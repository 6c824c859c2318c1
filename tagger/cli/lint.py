"""``imgtag lint [DOCKERFILE...]``: lint, print in the format asked for, exit 1 at the bar.
Glue only; the linter (and its Go-backed parser) is imported inside the command body.
"""

from __future__ import annotations

import enum
from typing import Annotated

import typer


class LintFormat(enum.StrEnum):
    TEXT = "text"
    JSON = "json"
    SARIF = "sarif"
    GITLAB = "gitlab"


class FailOn(enum.StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"
    NONE = "none"


def register(app: typer.Typer) -> None:
    """Add the ``lint`` command to ``app``."""

    @app.command("lint")
    def lint(
        dockerfiles: Annotated[
            list[str] | None,
            typer.Argument(help="Dockerfiles to lint. [default: ./Dockerfile]"),
        ] = None,
        fmt: Annotated[
            LintFormat, typer.Option("--format", help="text, json, sarif or gitlab.")
        ] = LintFormat.TEXT,
        fail_on: Annotated[
            FailOn | None,
            typer.Option(
                "--fail-on",
                envvar="IMGTAG_FAIL_ON",
                case_sensitive=False,
                help="Exit 1 for findings at or above this severity. [default: error]",
            ),
        ] = None,
        ignore: Annotated[
            list[str] | None,
            typer.Option(
                "--ignore",
                help="Skip a rule (IMG003, DL3008); repeatable. In a Dockerfile, "
                "'# imgtag ignore=ID[,ID]' directly above an instruction skips it there, "
                "'# imgtag global ignore=ID' in the whole file.",
            ),
        ] = None,
        hadolint: Annotated[
            bool | None,
            typer.Option(
                "--hadolint/--no-hadolint",
                envvar="IMGTAG_HADOLINT",
                help="Also run hadolint and merge its findings (DLxxxx, SCxxxx).",
            ),
        ] = None,
    ) -> None:
        """Lint Dockerfiles against image-building best practice (rules IMG001-IMG013)."""
        import sys

        from tagger import __version__
        from tagger.errors import PolicyError
        from tagger.lint import lint_paths
        from tagger.lint import report as render
        from tagger.lint.settings import LintSettings

        given = {
            "ignore": ignore or None,
            "fail_on": fail_on.value if fail_on is not None else None,
            "hadolint": hadolint,
        }
        settings = LintSettings.resolve(given)
        paths = dockerfiles or ["Dockerfile"]
        result = lint_paths(paths, ignore=settings.ignore, hadolint=settings.hadolint)
        if fmt is LintFormat.TEXT:
            out = render.render_text(result)
        elif fmt is LintFormat.JSON:
            out = render.render_json(result) + "\n"
        elif fmt is LintFormat.SARIF:
            out = render.render_sarif(result, __version__) + "\n"
        else:
            out = render.render_gitlab(result) + "\n"
        sys.stdout.write(out)
        sys.stdout.flush()
        sys.stderr.write(render.summary(result) + "\n")
        failing = result.at_or_above(settings.bar)
        if failing:
            raise PolicyError(
                f"{len(failing)} finding(s) at or above {settings.fail_on} "
                "(see --fail-on, --ignore)"
            )
