"""The one place that runs external programs (git today; credential helpers, hadolint later).

Does I/O: spawns processes. Callers get a :class:`Result` or a typed error, never a
``CalledProcessError``; the environment is pinned to the C locale so that callers may
rely on what the programs print.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


class ProgramNotFound(OSError):
    """The program is not installed (not on PATH)."""

    def __init__(self, program: str) -> None:
        super().__init__(f"{program} is not installed or not on PATH")
        self.program = program


@dataclass(frozen=True, slots=True)
class Result:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class Runner:
    """Runs programs with captured output and a fixed, locale-independent environment."""

    def __init__(self, extra_env: Mapping[str, str] | None = None) -> None:
        env = dict(os.environ)
        # Messages we parse must not be translated.
        env["LC_ALL"] = "C"
        env.update(extra_env or {})
        self._env = env

    def run(
        self,
        args: Sequence[str],
        *,
        cwd: str | os.PathLike[str] | None = None,
        input: str | None = None,
        timeout: float | None = None,
    ) -> Result:
        try:
            proc = subprocess.Popen(
                list(args),
                cwd=cwd,
                env=self._env,
                stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                encoding="utf-8",
                errors="surrogateescape",
            )
        except FileNotFoundError as exc:
            raise ProgramNotFound(args[0]) from exc
        try:
            stdout, stderr = proc.communicate(input, timeout=timeout)
        except BaseException:
            # A timeout, or a signal that stops imgtag (tagger.lifecycle raises in the main
            # thread). subprocess.run would SIGKILL the child; SIGTERM lets it clean up
            # first (git removes its index.lock, so the undo that follows can run).
            _stop_child(proc)
            raise
        return Result(tuple(args), proc.returncode, stdout, stderr)


def _stop_child(proc: subprocess.Popen[str], grace: float = 5.0) -> None:
    proc.terminate()
    try:
        proc.communicate(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
