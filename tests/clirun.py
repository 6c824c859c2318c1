"""Run the ``imgtag`` command line in-process, as a user would see it: exit code, stdout, stderr.

Goes through ``tagger.cli.main`` (not typer's CliRunner alone), so the error-to-exit-code
mapping and the stderr wording are what is tested.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CliResult:
    code: int
    stdout: str
    stderr: str


def run_cli(
    args: Sequence[str],
    *,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    clear_ci: bool = True,
) -> CliResult:
    """Run ``imgtag ARGS`` in this process and capture what it printed.

    ``env`` is added to the environment; with ``clear_ci`` the variables of every CI
    system (including this machine's own ``CI=true``) are removed first, so a test is
    not decided by the CI it happens to run in.
    """
    from tagger.cli import main
    from tagger.version.ci_env import CI_SYSTEMS

    saved_env = dict(os.environ)
    saved_cwd = Path.cwd()
    out, err = io.StringIO(), io.StringIO()
    try:
        if clear_ci:
            for system in CI_SYSTEMS:
                for var, _ in system.detect:
                    os.environ.pop(var, None)
                os.environ.pop(system.counter_var, None)
            # IMGTAG_RETRY_* stay: tests that inject faults shorten the backoff with them.
            for var in [
                v
                for v in os.environ
                if v.startswith("IMGTAG_") and not v.startswith("IMGTAG_RETRY")
            ]:
                os.environ.pop(var)
            os.environ.pop("CI", None)
        os.environ.update(env or {})
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
    return CliResult(code, out.getvalue(), err.getvalue())
