"""The lint policy of a project: ``[tool.imgtag.lint]`` with options and variables over it.

One owner, because ``imgtag lint`` and build-push's lint step must apply the same policy.
Reads the config file (I/O through ``tagger.config``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tagger.lint.findings import Severity

if TYPE_CHECKING:
    from tagger.config import Config

LINT_DEFAULTS: Mapping[str, Any] = {"ignore": [], "fail_on": "error", "hadolint": False}


@dataclass(frozen=True, slots=True)
class LintSettings:
    ignore: tuple[str, ...] = ()
    fail_on: str = "error"  # error|warning|info|none
    hadolint: bool = False

    @classmethod
    def resolve(
        cls, given: Mapping[str, Any], root: str = ".", project: Config | None = None
    ) -> LintSettings:
        """Option > ``IMGTAG_*`` variable > ``[tool.imgtag.lint]`` at ``root`` (``project``,
        when the caller read it) > default."""
        from tagger import config

        project = project if project is not None else config.load(root)
        values = project.resolve("lint", dict(given), dict(LINT_DEFAULTS))
        return cls(tuple(values["ignore"]), str(values["fail_on"]), bool(values["hadolint"]))

    @property
    def bar(self) -> Severity | None:
        """The lowest severity that fails; ``None`` for ``--fail-on none``."""
        return None if self.fail_on == "none" else Severity.parse(self.fail_on)
