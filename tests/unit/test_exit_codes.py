"""Every exit code of docs/exit-codes.md, produced through the one mapping in tagger.cli.run."""

from __future__ import annotations

import pytest
import typer

from tagger.cli import run
from tagger.errors import (
    ConfigError,
    DirtyTreeError,
    EngineError,
    ExitCode,
    GitError,
    ImgtagError,
    PolicyError,
    RefusedError,
    RegistryError,
    ShallowCloneError,
    UsageError,
    register_secret,
)


def _app_raising(exc: BaseException) -> typer.Typer:
    app = typer.Typer(add_completion=False)

    @app.command()
    def boom(flag: bool = False) -> None:
        raise exc

    @app.command()
    def fine() -> None:
        typer.echo("data")

    return app


def test_the_table_is_the_contract() -> None:
    assert {c.name: int(c) for c in ExitCode} == {
        "OK": 0,
        "POLICY": 1,
        "USAGE": 2,
        "REFUSED": 3,
        "GIT": 4,
        "REGISTRY": 5,
        "ENGINE": 6,
        "INTERNAL": 70,
        "INTERRUPTED": 130,
    }


def test_success_is_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(_app_raising(RuntimeError()), ["fine"]) == 0
    assert capsys.readouterr().out == "data\n"


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (PolicyError("3 findings at or above error"), 1),
        (UsageError("--image is not a valid reference"), 2),
        (ConfigError("unknown key bumpp"), 2),
        (RefusedError("the tag exists"), 3),
        (DirtyTreeError("the work tree is dirty"), 3),
        (GitError("not a repository"), 4),
        (ShallowCloneError("shallow"), 4),
        (RegistryError("registry unreachable"), 5),
        (EngineError("engine unreachable"), 6),
    ],
)
def test_each_error_class_maps_to_its_code(
    error: ImgtagError, code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(_app_raising(error), ["boom"]) == code
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"imgtag: error: {error}\n"


def test_usage_error_from_the_parser_is_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(_app_raising(RuntimeError()), ["boom", "--no-such-option"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("imgtag: error: No such option: --no-such-option")
    assert err.count("\n") == 1


def test_a_bug_is_70_without_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(_app_raising(KeyError("oops")), ["boom"]) == 70
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "internal error (KeyError" in err
    assert err.count("\n") == 1


def test_debug_shows_the_traceback_redacted(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tagger.cli import main
    from tagger.version import next as nextversion

    register_secret("sup3r-secret-pw")

    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("login with sup3r-secret-pw failed")

    monkeypatch.setattr(nextversion, "derive", broken)
    assert main(["--debug", "next"]) == 70
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert "sup3r-secret-pw" not in err
    assert main(["next"]) == 70
    assert "Traceback" not in capsys.readouterr().err


def test_expected_errors_never_show_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    from tagger.cli import main

    assert main(["--debug", "next", "--repo", "/nonexistent/dir"]) == 4
    assert "Traceback" not in capsys.readouterr().err


def test_interrupted_is_130(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(_app_raising(KeyboardInterrupt()), ["boom"]) == 130
    assert "Traceback" not in capsys.readouterr().err


def test_internal_error_text_is_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    app = _app_raising(RuntimeError("GET https://bob:hunter22@reg.example/v2/ failed"))
    assert run(app, ["boom"]) == 70
    err = capsys.readouterr().err
    assert "hunter22" not in err
    assert "https://***@reg.example/v2/" in err
