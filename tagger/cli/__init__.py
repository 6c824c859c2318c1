"""The ``imgtag`` command line: the typer app and :func:`main`, which maps errors to exits.

Each command lives in its own module and imports what it needs inside its body, so
that ``imgtag next`` never pays for the docker SDK or requests (hatch's lazy-import
habit). :func:`main` is the one place where exceptions become exit codes and stderr
text (``docs/exit-codes.md``); everything printed there goes through ``redact``.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence

import typer

from tagger import __version__
from tagger.errors import ExitCode, ImgtagError, Interrupted, redact

app = typer.Typer(
    name="imgtag",
    help="Immutable X.Y.Z-N tags for container images: derive, build, push, prune, lint.",
    no_args_is_help=True,
    add_completion=False,
    # Locals can hold credentials: never show them in a traceback.
    pretty_exceptions_show_locals=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    # Plain help: rich markup would eat "[registry/]" and "[default: ...]" in help texts.
    rich_markup_mode=None,
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"imgtag {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", is_eager=True, callback=_show_version, help="Print the version."
    ),
    debug: bool = typer.Option(
        False, "--debug", help="Show tracebacks for internal errors (credentials redacted)."
    ),
) -> None:
    """imgtag gives container images immutable X.Y.Z-N tags and manages them."""


# Command registration: importing these modules is cheap by design.
from tagger.cli import analyze as _analyze  # noqa: E402
from tagger.cli import build_push as _build_push  # noqa: E402
from tagger.cli import check as _check  # noqa: E402
from tagger.cli import ci as _ci  # noqa: E402
from tagger.cli import lint as _lint  # noqa: E402
from tagger.cli import next as _next  # noqa: E402
from tagger.cli import promote as _promote  # noqa: E402
from tagger.cli import prune as _prune  # noqa: E402
from tagger.cli import release as _release  # noqa: E402
from tagger.cli import squash as _squash  # noqa: E402

_next.register(app)
_build_push.register(app)
_prune.register(app)
_lint.register(app)
_ci.register(app)
_analyze.register(app)
_squash.register(app)
_check.register(app)
_release.register(app)
_promote.register(app)


def _err(message: str) -> None:
    sys.stderr.write(f"imgtag: error: {redact(message)}\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run imgtag; return the process exit code (see ``ExitCode``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    return run(app, _build_push.optional_values(args))


def run(typer_app: typer.Typer, args: list[str]) -> int:
    """Invoke ``typer_app`` and map whatever happens to an exit code and one stderr line.

    The one place where exceptions become exit codes (each tested in
    ``tests/unit/test_exit_codes.py``).
    """
    # Read --debug before parsing, so it also covers errors while parsing options.
    debug = "--debug" in args
    try:
        rv = _only_the_command(typer_app, args)(
            args=args, prog_name="imgtag", standalone_mode=False
        )
    except ImgtagError as exc:
        _err(str(exc))
        return int(exc.exit_code)
    except typer.TyperException as exc:  # click's usage errors, bundled by typer
        hint = ""
        ctx = getattr(exc, "ctx", None)
        if ctx is not None:
            hint = f" (see '{ctx.command_path} --help')"
        _err(f"{exc.format_message()}{hint}")
        return int(getattr(exc, "exit_code", ExitCode.USAGE))
    except (KeyboardInterrupt, typer.Abort):
        _err("interrupted")
        return int(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        # `imgtag next | head -c1`: the reader left. Point stdout at /dev/null so the
        # interpreter's final flush does not complain, and say nothing.
        with contextlib.suppress(OSError, ValueError, AttributeError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return int(ExitCode.OK)
    except Exception as exc:
        if (stopped := _interrupted_inside(exc)) is not None:
            # A signal handler raised while a C extension (BuildKit's parser) was running:
            # the interpreter reports a SystemError that wraps the Interrupted.
            _err(str(stopped))
            return int(stopped.exit_code)
        if debug:
            import traceback

            sys.stderr.write(redact(traceback.format_exc()))
        _err(
            f"internal error ({type(exc).__name__}: {exc}); this is a bug in imgtag, "
            "please report it with the output of --debug"
        )
        return int(ExitCode.INTERNAL)
    # typer returns an int when it handled an exit itself (--help, --version, Ctrl-C).
    return int(rv) if isinstance(rv, int) else int(ExitCode.OK)


def _only_the_command(typer_app: typer.Typer, args: list[str]) -> typer.Typer:
    """``typer_app`` with only the command ``args`` name, when they name one: typer turns
    every registered command's options into click's on each run, ~20 ms for eight of them,
    a seventh of ``imgtag next`` (benchmarks/README.md). The options are still declared
    once and parsed by typer alone; ``imgtag --help`` and a misspelt command see them all.
    The root's options are flags, so the first word that is no option is the command."""
    import copy

    # (Not next(): the submodule tagger.cli.next shadows the builtin in this package.)
    words = [arg for arg in args if not arg.startswith("-")]
    chosen = [info for info in typer_app.registered_commands if words and info.name == words[0]]
    if len(chosen) != 1 or typer_app.registered_groups:
        return typer_app
    slim = copy.copy(typer_app)
    slim.registered_commands = chosen
    return slim


def _interrupted_inside(exc: BaseException) -> Interrupted | None:
    """The :class:`Interrupted` an unexpected exception was caused by, if any."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, Interrupted):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None
