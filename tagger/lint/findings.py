"""What a lint run produces: :class:`Severity`, :class:`Finding`, :class:`Rule`. Pure."""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tagger.lint.parser import Dockerfile

#: The project's repository as a browser shows it. SARIF's ``helpUri`` must be an absolute
#: URI (the schema's format is ``uri``, not ``uri-reference``), so rule pages are named by
#: their address there: ``docs/lint/<ID>.md`` on the main branch.
REPOSITORY_URL = "https://github.com/imgtag-release/imgtag"
DOCS_URL = REPOSITORY_URL + "/blob/main/"
#: The rule pages' folder in the repository, and its index.
RULE_DOCS = "docs/lint"
RULE_INDEX = RULE_DOCS + "/README.md"


def rule_doc(rule_id: str) -> str:
    """The repository path of a rule's page.

    >>> rule_doc("IMG001")
    'docs/lint/IMG001.md'
    """
    return f"{RULE_DOCS}/{rule_id.upper()}.md"


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
        """The json format's object, keys in the documented order (``docs/lint/README.md``)."""
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
        """The address of the rule's page (``docs/lint/<ID>.md``), for SARIF's ``helpUri``.

        >>> Rule("IMG001", Severity.ERROR, "", "", lambda df: ()).help_uri
        'https://github.com/imgtag-release/imgtag/blob/main/docs/lint/IMG001.md'
        """
        return DOCS_URL + rule_doc(self.id)
