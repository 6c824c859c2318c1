"""The one place that runs external programs: git, credential helpers, hadolint, builders.

Does I/O: spawns processes. Callers get a :class:`Result` or a typed error, never a
``CalledProcessError``; the environment is pinned to the C locale so that callers may
rely on what the programs print.

Long-running programs (``docker build``, ``buildah bud``) go through :meth:`Runner.stream`,
which hands each output line to a callback as it comes and keeps the process
cancellable: :meth:`Running.terminate` stops it, and an exception in the caller (a
``KeyboardInterrupt`` included) terminates it before propagating, so no builder is left
running behind imgtag.
"""

from __future__ import annotations

import collections
import contextlib
import os
import select
import subprocess
from collections.abc import Callable, Mapping, Sequence
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

    def __init__(
        self, extra_env: Mapping[str, str] | None = None, *, env: Mapping[str, str] | None = None
    ) -> None:
        # ``env`` replaces this process's environment (a caller that was handed one).
        env = dict(os.environ if env is None else env)
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
        proc = self._popen(
            args,
            cwd=cwd,
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            stdout, stderr = proc.communicate(input, timeout=timeout)
        except BaseException:
            # A timeout, or a signal that stops imgtag (tagger.lifecycle raises in the main
            # thread). subprocess.run would SIGKILL the child; SIGTERM lets it clean up
            # first (git removes its index.lock, so the undo that follows can run).
            _stop_child(proc)
            raise
        return Result(tuple(args), proc.returncode, stdout, stderr)

    def _popen(
        self, args: Sequence[str], *, cwd: str | os.PathLike[str] | None, stdin: int, stderr: int
    ) -> subprocess.Popen[str]:
        """Start ``args`` with stdout captured as text (undecodable bytes kept)."""
        try:
            return subprocess.Popen(
                list(args),
                cwd=cwd,
                env=self._env,
                stdin=stdin,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                encoding="utf-8",
                errors="surrogateescape",
            )
        except FileNotFoundError as exc:
            raise ProgramNotFound(args[0]) from exc

    def stream(
        self,
        args: Sequence[str],
        on_line: Callable[[str], None],
        *,
        cwd: str | os.PathLike[str] | None = None,
        started: Callable[[Running], None] | None = None,
        keep: int = 40,
    ) -> Result:
        """Run ``args`` with stdout and stderr merged, each line to ``on_line`` as it
        arrives; the last ``keep`` lines are the result's ``stdout`` (for error messages).

        ``started`` receives the :class:`Running` process (a canceller may terminate it).
        """
        proc = self._popen(args, cwd=cwd, stdin=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        running = Running(proc)
        tail: collections.deque[str] = collections.deque(maxlen=keep)
        try:
            if started is not None:
                started(running)
            assert proc.stdout is not None
            for line in proc.stdout:
                line = line.rstrip("\n")
                tail.append(line)
                on_line(line)
            returncode = proc.wait()
        except BaseException:
            running.terminate()
            raise
        finally:
            if proc.stdout is not None:
                proc.stdout.close()
        return Result(tuple(args), returncode, "\n".join(tail), "")

    def start(self, args: Sequence[str]) -> Running:
        """Start ``args`` with its output discarded; the caller waits (``Running.wait``)."""
        try:
            proc = subprocess.Popen(
                list(args),
                env=self._env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                text=True,
            )
        except FileNotFoundError as exc:
            raise ProgramNotFound(args[0]) from exc
        return Running(proc)


class Running:
    """A program :meth:`Runner.stream` or :meth:`Runner.start` started; :meth:`terminate`
    stops it (idempotent), :meth:`wait` waits for it."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self._proc = proc

    def wait(self, timeout: float | None = None) -> int | None:
        """The exit code; ``None`` (and the program terminated) if it outlives ``timeout``."""
        try:
            if timeout is not None and not _exited_within(self._proc.pid, timeout):
                raise subprocess.TimeoutExpired(self._proc.args, timeout)
            return self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.terminate()
            return None

    @property
    def pid(self) -> int:
        return self._proc.pid

    def terminate(self, grace: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; waits for the process to end."""
        if self._proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self._proc.terminate()
        try:
            self._proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
            self._proc.wait()


def _stop_child(proc: subprocess.Popen[str], grace: float = 5.0) -> None:
    proc.terminate()
    try:
        proc.communicate(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()


def _exited_within(pid: int, timeout: float) -> bool:
    """Whether process ``pid`` ends within ``timeout`` seconds (it may still need reaping).

    ``Popen.wait(timeout)`` polls with sleeps of up to 50 ms, which a short cleanup at the
    end of every run would pay; a pidfd becomes readable the moment the process exits.
    """
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # not Linux 5.3+, or already reaped: Popen decides
        return True
    try:
        ready, _, _ = select.select([pidfd], [], [], timeout)
        return bool(ready)
    finally:
        os.close(pidfd)
