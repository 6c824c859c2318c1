"""The check table (CHK001 to CHK005), verdicts and results. Pure."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field


class Verdict(enum.StrEnum):
    PASS = "pass"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True, slots=True)
class Check:
    id: str
    title: str
    runtime: bool  # needs a container (an engine), not only the image's config


CHECKS: tuple[Check, ...] = (
    Check(
        "CHK001", "PID 1 stops on SIGTERM (or the image's STOPSIGNAL) within the grace period", True
    ),
    Check(
        "CHK002", "runs under an arbitrary uid in group 0; its writable paths are writable", True
    ),
    Check("CHK003", "USER is set and is not root", False),
    Check("CHK004", "no port below 1024 is exposed by a non-root image", False),
    Check("CHK005", "ENTRYPOINT/CMD in exec form, or an init as PID 1", False),
)
CHECK_IDS = tuple(c.id for c in CHECKS)
HELP_BASE = "https://github.com/imgtag-release/imgtag/blob/main/docs/check"


def help_url(check_id: str) -> str | None:
    """The docs page of a CHK check (``None`` for a structure test).

    >>> help_url("CHK001")
    'https://github.com/imgtag-release/imgtag/blob/main/docs/check/CHK001.md'
    >>> help_url("commandTests[0]") is None
    True
    """
    return f"{HELP_BASE}/{check_id}.md" if check_id in CHECK_IDS else None


@dataclass(frozen=True, slots=True)
class Result:
    """One check's or one structure test's verdict.

    ``id`` is ``CHK00N`` or the structure test's place (``commandTests[2]``,
    ``metadataTest``); ``name`` what a person reads; ``details`` why it failed (or why
    it was skipped, or what was measured)."""

    id: str
    name: str
    verdict: Verdict
    details: tuple[str, ...] = ()
    seconds: float | None = None
    stdout: str | None = None
    stderr: str | None = None

    @property
    def failed(self) -> bool:
        return self.verdict is Verdict.FAIL


def passed(id_: str, name: str, *details: str, seconds: float | None = None) -> Result:
    return Result(id_, name, Verdict.PASS, tuple(details), seconds)


def failed(id_: str, name: str, *details: str, seconds: float | None = None) -> Result:
    return Result(id_, name, Verdict.FAIL, tuple(details), seconds)


def skipped(id_: str, name: str, why: str) -> Result:
    return Result(id_, name, Verdict.SKIP, (why,))


def title(check_id: str) -> str:
    """
    >>> title("CHK003")
    'USER is set and is not root'
    """
    return next(c.title for c in CHECKS if c.id == check_id)


@dataclass(frozen=True)
class Report:
    image: str
    image_id: str
    results: Sequence[Result] = field(default_factory=tuple)

    @property
    def failures(self) -> list[Result]:
        return [r for r in self.results if r.failed]

    def counts(self) -> dict[str, int]:
        """
        >>> Report("i", "x", [passed("CHK003", "t"), skipped("CHK001", "t", "no engine")]).counts()
        {'pass': 1, 'fail': 0, 'skip': 1}
        """
        return {v.value: sum(r.verdict is v for r in self.results) for v in Verdict}
