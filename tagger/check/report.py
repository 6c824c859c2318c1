"""``imgtag check``'s report as text, json or JUnit XML. Pure.

JUnit is what CI systems show as test results (GitLab's ``artifacts:reports:junit``,
GitHub actions that publish reports, Jenkins' ``junit`` step): one ``testcase`` per check
or structure test, a failure as ``<failure>``, a skipped check as ``<skipped>``.
"""

from __future__ import annotations

from typing import Any
from xml.etree import ElementTree as ET

from tagger.check.results import Report, Result, Verdict, help_url
from tagger.errors import escape_control


def as_dict(report: Report) -> dict[str, Any]:
    return {
        "image": report.image,
        "image_id": report.image_id,
        "passed": not report.failures,
        "counts": report.counts(),
        "checks": [_result(r) for r in report.results],
    }


def _result(r: Result) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": r.id,
        "name": r.name,
        "verdict": r.verdict.value,
        "details": list(r.details),
        "seconds": None if r.seconds is None else round(r.seconds, 3),
        "help": help_url(r.id),
    }
    if r.stdout is not None:
        doc["stdout"] = r.stdout
        doc["stderr"] = r.stderr
    return doc


def render_json(report: Report) -> str:
    from tagger.output import to_json

    return to_json(as_dict(report))


_MARK = {Verdict.PASS: "pass", Verdict.FAIL: "FAIL", Verdict.SKIP: "skip"}


def render_text(report: Report) -> str:
    """
    >>> from tagger.check.results import passed, failed
    >>> print(render_text(Report("app:1", "sha256:x", [passed("CHK003", "USER", "USER 1001"),
    ...                                                 failed("CHK004", "ports", "EXPOSE 80")])))
    pass  CHK003  USER
            USER 1001
    FAIL  CHK004  ports
            EXPOSE 80
            see https://github.com/imgtag-release/imgtag/blob/main/docs/check/CHK004.md
    <BLANKLINE>
    """
    lines = []
    for r in report.results:
        lines.append(f"{_MARK[r.verdict]:<4}  {r.id}  {r.name}")
        lines.extend(f"        {escape_control(d, keep_newlines=False)}" for d in r.details)
        url = help_url(r.id)
        if r.verdict is Verdict.FAIL and url:
            lines.append(f"        see {url}")
    return "\n".join(lines) + "\n"


def summary(report: Report) -> str:
    """
    >>> from tagger.check.results import passed
    >>> summary(Report("app:1", "x", [passed("CHK003", "USER")]))
    'check app:1: 1 passed, 0 failed, 0 skipped'
    """
    c = report.counts()
    return f"check {report.image}: {c['pass']} passed, {c['fail']} failed, {c['skip']} skipped"


def render_junit(report: Report) -> str:
    """
    >>> from tagger.check.results import failed, skipped
    >>> r = Report("a", "x", [failed("CHK001", "stop", "killed"), skipped("CHK002", "u", "no")])
    >>> print(render_junit(r)[:119])
    <?xml version="1.0" encoding="UTF-8"?>
    <testsuites name="imgtag check" tests="2" failures="1" skipped="1" time="0.000">
    >>> '<failure message="killed">killed</failure>' in render_junit(r)
    True
    >>> '<skipped message="no" />' in render_junit(r)
    True
    """
    counts = report.counts()
    total = sum(r.seconds or 0.0 for r in report.results)
    attrs = {
        "tests": str(len(report.results)),
        "failures": str(counts["fail"]),
        "skipped": str(counts["skip"]),
        "time": f"{total:.3f}",
    }
    root = ET.Element("testsuites", {"name": "imgtag check", **attrs})
    suite = ET.SubElement(
        root,
        "testsuite",
        {
            "name": f"imgtag check {report.image}",
            "tests": attrs["tests"],
            "failures": attrs["failures"],
            "errors": "0",
            "skipped": attrs["skipped"],
            "time": attrs["time"],
        },
    )
    for r in report.results:
        case = ET.SubElement(
            suite,
            "testcase",
            {
                "classname": "imgtag.check",
                "name": f"{r.id} {r.name}",
                "time": f"{r.seconds or 0.0:.3f}",
            },
        )
        text = _xml_safe("\n".join(r.details))
        first = r.details[0] if r.details else r.verdict.value
        if r.verdict is Verdict.FAIL:
            ET.SubElement(case, "failure", {"message": _xml_safe(first)}).text = text
        elif r.verdict is Verdict.SKIP:
            ET.SubElement(case, "skipped", {"message": _xml_safe(first)})
        if r.stdout:
            ET.SubElement(case, "system-out").text = _xml_safe(r.stdout)
        if r.stderr:
            ET.SubElement(case, "system-err").text = _xml_safe(r.stderr)
    body = ET.tostring(root, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body


def _xml_safe(text: str) -> str:
    # XML 1.0 has no place for most control characters; a command's output may hold them.
    return "".join(
        ch if ch in "\t\n\r" or (ord(ch) >= 0x20 and ch not in "\ufffe\uffff") else repr(ch)[1:-1]
        for ch in text
    )
