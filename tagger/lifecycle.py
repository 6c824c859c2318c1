"""Signals: SIGINT, SIGTERM and SIGHUP become an orderly stop; a second one exits at once.

A CI system cancels a job with SIGTERM (then SIGKILL a few seconds later) and a person
presses Ctrl-C, so a run must stop quickly *and* leave nothing behind: no claim, no
temporary tag, no build container. :class:`Stop` is the cancellation token a command
shares with the code it runs:

- The first signal records itself, runs the registered cancel callbacks (terminate a
  builder process, close an engine stream) and, in ``raising`` mode, raises
  :class:`~tagger.errors.Interrupted` in the main thread, so ``finally`` blocks release
  what the run holds. Commands that stop cooperatively (prune's executor lets deletes in
  flight finish) use ``raising=False`` and poll :meth:`Stop.requested`.
- Inside :meth:`Stop.shielded` (the final manifest write, its verification and the
  report) nothing is raised: the stop is delivered when the block ends.
- A second signal exits the process at once with the signal's code.

No I/O except the one stderr line on a second signal; handlers are installed only in the
main thread (Python's rule) and restored afterwards.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType

from tagger.errors import ExitCode, Interrupted

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_CODES = {
    signal.SIGINT: ExitCode.INTERRUPTED,
    signal.SIGTERM: ExitCode.TERMINATED,
    signal.SIGHUP: ExitCode.HANGUP,
}


def exit_code_for(signum: int) -> ExitCode:
    """The exit code after stopping for ``signum``.

    >>> int(exit_code_for(signal.SIGTERM)), int(exit_code_for(signal.SIGHUP))
    (143, 129)
    """
    return _CODES.get(signal.Signals(signum), ExitCode.INTERRUPTED)


class Stop:
    """The cancellation token of one run."""

    def __init__(self, *, raising: bool = True) -> None:
        self.raising = raising
        self.signum: int | None = None
        self._callbacks: list[Callable[[], None]] = []
        self._shield_depth = 0
        self._lock = threading.Lock()

    @property
    def requested(self) -> bool:
        return self.signum is not None

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name if self.signum is not None else "no signal"

    def interrupted(self, detail: str = "cleaned up") -> Interrupted:
        """The error that ends a stopped run (exit 130, 143 or 129)."""
        signum = self.signum if self.signum is not None else signal.SIGINT
        return Interrupted(f"stopped by {self.signal_name}; {detail}", exit_code_for(signum))

    def check(self) -> None:
        """Raise :class:`Interrupted` if a stop was requested (outside a shield)."""
        if self.signum is not None and self._shield_depth == 0:
            raise self.interrupted()

    @contextlib.contextmanager
    def on_stop(self, callback: Callable[[], None]) -> Iterator[None]:
        """Run ``callback`` when a stop arrives while the block runs (at once if one has)."""
        with self._lock:
            self._callbacks.append(callback)
            already = self.signum is not None
        if already:
            callback()
        try:
            yield
        finally:
            with self._lock:
                self._callbacks.remove(callback)

    @contextlib.contextmanager
    def shielded(self) -> Iterator[None]:
        """Defer the stop while the block runs: a write that has begun is finished."""
        self._shield_depth += 1
        try:
            yield
        finally:
            self._shield_depth -= 1

    def request(self, signum: int) -> None:
        """Record a stop (what the signal handler does; tests call it directly)."""
        with self._lock:
            first = self.signum is None
            if first:
                self.signum = signum
            callbacks = list(self._callbacks) if first else []
        for callback in callbacks:
            with contextlib.suppress(Exception):  # cleanup is best effort; the stop is not
                callback()

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.signum is not None:
            # The second signal: the user (or CI) will not wait for the clean-up.
            sys.stderr.write(f"imgtag: {signal.Signals(signum).name} again: exiting now\n")
            sys.stderr.flush()
            os._exit(int(exit_code_for(signum)))
        self.request(signum)
        if self.raising and self._shield_depth == 0:
            raise self.interrupted()


@contextlib.contextmanager
def handling_signals(stop: Stop) -> Iterator[Stop]:
    """Route SIGINT, SIGTERM and SIGHUP to ``stop`` while the block runs (main thread)."""
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {sig: signal.getsignal(sig) for sig in SIGNALS}
    for sig in SIGNALS:
        signal.signal(sig, stop._handle)
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
