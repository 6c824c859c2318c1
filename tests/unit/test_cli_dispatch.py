"""The command line builds only the command a run names: what a user sees stays the same.

``tagger.cli.run`` hands typer an app with the one command that the first word which is
not an option names; everything else (no command, ``--help``, a misspelt one) sees them all.
"""

from __future__ import annotations

import pytest

from tagger.cli import _only_the_command, app, main
from tagger.errors import ExitCode


def names(args: list[str]) -> list[str | None]:
    return [info.name for info in _only_the_command(app, args).registered_commands]


def test_a_run_gets_the_one_command_it_names() -> None:
    assert names(["next", "--format", "json"]) == ["next"]
    assert names(["--debug", "analyze", "img:1"]) == ["analyze"]
    every = [info.name for info in app.registered_commands]
    assert len(every) >= 8
    assert names([]) == names(["--help"]) == names(["nxt"]) == every
    assert app.registered_commands == _only_the_command(app, ["--version"]).registered_commands


def test_what_a_user_sees_is_unchanged(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == ExitCode.OK
    out = capsys.readouterr().out
    assert all(f"  {info.name} " in out for info in app.registered_commands), out
    assert main(["nxt"]) == ExitCode.USAGE
    assert "No such command 'nxt'. Did you mean 'next'?" in capsys.readouterr().err
    assert main(["next", "--help"]) == ExitCode.OK
    assert "Usage: imgtag next [OPTIONS]" in capsys.readouterr().out
    assert main(["next", "--bogus"]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert "No such option: --bogus" in err and "(see 'imgtag next --help')" in err
