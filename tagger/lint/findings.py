"""What a lint run produces: :class:`Severity`, :class:`Finding`, :class:`Rule`. Pure."""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tagger.lint.parser import Dockerfile

HELP_BASE = "https://github.com/imgtag-release/imgtag/blob/main/docs/lint.md#"


class Severity(enum.Enum):
    """Finding severities, ordered error > warning > info.

    >>> Severity.ERROR > Severity.WARNING > Severity.INFO
    True
    >>> Severity.parse("Warning")
    <Severity.WARNING: 'warning'>
    """

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"

    @property
    def rank(self) -> int:
        return ("info", "warning", "error").index(self.value)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank < other.rank

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank <= other.rank

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank > other.rank

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank >= other.rank

    @classmethod
    def parse(cls, text: str) -> Severity:
        return cls(text.strip().lower())


@dataclass(frozen=True, order=True)
class Finding:
    """One finding: ``line`` is the first line of the instruction it is about."""

    file: str
    line: int
    rule: str
    severity: Severity
    message: str
    fix: str

    def as_dict(self) -> dict[str, object]:
        """The json format's object, keys in DESIGN.md's order."""
        return {
            "rule": self.rule,
            "severity": self.severity.value,
            "file": self.file,
            "line": self.line,
            "message": self.message,
            "fix": self.fix,
        }


# A check yields (line, message) pairs for one parsed Dockerfile.
Check = Callable[["Dockerfile"], Iterable[tuple[int, str]]]


@dataclass(frozen=True)
class Rule:
    """A rule: its fixed id and severity, the practice it enforces, and the fix."""

    id: str
    severity: Severity
    summary: str
    fix: str
    check: Check

    @property
    def help_uri(self) -> str:
        return HELP_BASE + self.id.lower()
