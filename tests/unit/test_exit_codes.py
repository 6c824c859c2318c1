"""Every exit code of the table (docs/exit-codes.md), produced through the one mapping in
tagger.cli.run."""

from __future__ import annotations

import os
import signal
import time

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
    Interrupted,
    PolicyError,
    RefusedError,
    RegistryError,
    ShallowCloneError,
    UsageError,
    register_secret,
)
from tagger.lifecycle import Stop, handling_signals


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
        "HANGUP": 129,
        "INTERRUPTED": 130,
        "TERMINATED": 143,
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


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)]
)
def test_a_stop_by_signal_exits_128_plus_the_signal(
    signum: int, code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    stop = Stop()
    stop.request(signum)
    assert run(_app_raising(stop.interrupted()), ["boom"]) == code
    err = capsys.readouterr().err
    assert err == f"imgtag: error: stopped by {signal.Signals(signum).name}; cleaned up\n"


def test_a_real_sigterm_in_the_main_thread_raises_the_143_error() -> None:
    stop, before = Stop(), signal.getsignal(signal.SIGTERM)
    with pytest.raises(Interrupted) as caught, handling_signals(stop):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # interrupted by the handler long before this ends
    assert caught.value.exit_code == 143
    assert signal.getsignal(signal.SIGTERM) is before, "the previous handler is restored"


def test_a_shielded_block_finishes_before_the_stop_is_delivered() -> None:
    stop, done = Stop(), []
    with handling_signals(stop), pytest.raises(Interrupted):
        with stop.shielded():
            os.kill(os.getpid(), signal.SIGTERM)
            done.append("the final write")
        stop.check()
    assert done == ["the final write"]


def test_cancel_callbacks_run_once_on_the_first_signal() -> None:
    stop, calls = Stop(raising=False), []
    with handling_signals(stop), stop.on_stop(lambda: calls.append("terminate builder")):
        os.kill(os.getpid(), signal.SIGHUP)
        assert stop.requested and calls == ["terminate builder"]
    assert int(stop.interrupted().exit_code) == 129


def test_internal_error_text_is_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    app = _app_raising(RuntimeError("GET https://bob:hunter22@reg.example/v2/ failed"))
    assert run(app, ["boom"]) == 70
    err = capsys.readouterr().err
    assert "hunter22" not in err
    assert "https://***@reg.example/v2/" in err


def test_a_stop_raised_inside_a_c_extension_still_exits_with_the_signal_code(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # CPython reports a handler's exception raised during a C call as a SystemError whose
    # cause is that exception (seen with BuildKit's parser under SIGTERM).
    stop = Stop()
    stop.request(signal.SIGTERM)
    wrapped = SystemError(
        "<built-in function parse_string> returned a result with an exception set"
    )
    wrapped.__cause__ = stop.interrupted()
    assert run(_app_raising(wrapped), ["boom"]) == 143
    assert capsys.readouterr().err == "imgtag: error: stopped by SIGTERM; cleaned up\n"


def test_progress_lines_are_redacted_and_cannot_drive_the_terminal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tagger.progress import log

    register_secret("s3cret-token-value")
    log("push https://x:s3cret-token-value@reg.example/v2/ \x1b[2J done\r\n")
    err = capsys.readouterr().err
    assert "s3cret-token-value" not in err and "\x1b" not in err and "\r" not in err
    assert err == "push https://***@reg.example/v2/ \\x1b[2J done\n"
