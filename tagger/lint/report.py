"""Render a :class:`LintReport` as text, json, SARIF 2.1.0 or a GitLab code-quality
report. Pure: strings out, the CLI prints them.

SARIF: https://docs.oasis-open.org/sarif/sarif/v2.1.0/sarif-v2.1.0.html (GitHub code
scanning reads it). GitLab: https://docs.gitlab.com/ci/testing/code_quality/#code-quality-report-format
"""

from __future__ import annotations

import hashlib
import json
from pathlib import PurePosixPath

from tagger.lint import LintReport
from tagger.lint.findings import DOCS_URL, RULE_INDEX, Finding, Severity

_SARIF_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}
_GITLAB_SEVERITY = {Severity.ERROR: "major", Severity.WARNING: "minor", Severity.INFO: "info"}


def render_text(report: LintReport) -> str:
    """``file:line: SEVERITY RULE message (fix: ...)``, one line per finding."""
    return "".join(
        f"{f.file}:{f.line}: {f.severity.value.upper()} {f.rule} {f.message} (fix: {f.fix})\n"
        for f in report.findings
    )


def summary(report: LintReport) -> str:
    counts = report.counts()
    files = len(report.files)
    return (
        f"{len(report.findings)} finding(s) in {files} file(s): {counts['error']} error, "
        f"{counts['warning']} warning, {counts['info']} info"
    )


def render_json(report: LintReport) -> str:
    return json.dumps({"findings": [f.as_dict() for f in report.findings]}, ensure_ascii=False)


def _uri(path: str) -> str:
    # Relative, forward slashes: code scanning resolves it against the checkout.
    text = path.replace("\\", "/")
    while text.startswith("./"):
        text = text[2:]
    return str(PurePosixPath(text))


def render_sarif(report: LintReport, version: str) -> str:
    from tagger.lint.rules import ALL_RULES

    rules = [
        {
            "id": rule.id,
            "name": rule.id,
            "shortDescription": {"text": rule.summary},
            "fullDescription": {"text": f"{rule.summary}. Fix: {rule.fix}"},
            "helpUri": rule.help_uri,
            "help": {"text": rule.fix},
            "defaultConfiguration": {"level": _SARIF_LEVEL[rule.severity]},
        }
        for rule in ALL_RULES
    ]
    known = {rule.id for rule in ALL_RULES}
    for rule_id in sorted({f.rule for f in report.findings} - known):  # hadolint's
        rules.append(
            {
                "id": rule_id,
                "name": rule_id,
                "shortDescription": {"text": f"hadolint {rule_id}"},
                "helpUri": f"https://github.com/hadolint/hadolint/wiki/{rule_id}"
                if rule_id.startswith("DL")
                else f"https://www.shellcheck.net/wiki/{rule_id}",
            }
        )
    index = {r["id"]: i for i, r in enumerate(rules)}
    results = [
        {
            "ruleId": f.rule,
            "ruleIndex": index[f.rule],
            "level": _SARIF_LEVEL[f.severity],
            "message": {"text": f"{f.message} (fix: {f.fix})"},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": _uri(f.file)},
                        "region": {"startLine": max(f.line, 1)},
                    }
                }
            ],
        }
        for f in report.findings
    ]
    doc = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "imgtag",
                        "version": version,
                        "informationUri": DOCS_URL + RULE_INDEX,
                        "rules": rules,
                    }
                },
                "results": results,
            }
        ],
    }
    return json.dumps(doc, indent=2, ensure_ascii=False)


def fingerprint(finding: Finding) -> str:
    """Stable across runs and unrelated edits elsewhere: file, rule, line and message."""
    key = f"{_uri(finding.file)}\0{finding.rule}\0{finding.line}\0{finding.message}"
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def render_gitlab(report: LintReport) -> str:
    return json.dumps(
        [
            {
                "description": f"{f.rule}: {f.message}",
                "check_name": f.rule,
                "fingerprint": fingerprint(f),
                "severity": _GITLAB_SEVERITY[f.severity],
                "location": {"path": _uri(f.file), "lines": {"begin": max(f.line, 1)}},
            }
            for f in report.findings
        ],
        indent=2,
        ensure_ascii=False,
    )
