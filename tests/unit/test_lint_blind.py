"""Blind accuracy check of `imgtag lint` against tests/data/lint-blind/.

The expectations in expected.json were written from the rule table and the documented
conventions only, before the linter was run (see the README.md in that folder). This test
measures precision and recall over IMG rule ids and requires both to be >= 0.95 overall.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from tagger.lint import lint_paths

CORPUS = Path(__file__).resolve().parents[1] / "data" / "lint-blind"
THRESHOLD = 0.95

Key = tuple[str, str, int]  # (file name, rule id, line)


def _expected() -> Counter[Key]:
    data = json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))
    wanted: Counter[Key] = Counter()
    for name, findings in data.items():
        for rule, line in findings:
            wanted[(name, rule, int(line))] += 1
    return wanted


def _actual(names: list[str]) -> Counter[Key]:
    got: Counter[Key] = Counter()
    for name in names:
        report = lint_paths([CORPUS / name])
        for finding in report.findings:
            if finding.rule.startswith("IMG"):
                got[(Path(finding.file).name, finding.rule, int(finding.line))] += 1
    return got


def _ratio(num: int, den: int) -> float:
    return num / den if den else 1.0


def test_corpus_is_complete() -> None:
    data = json.loads((CORPUS / "expected.json").read_text(encoding="utf-8"))
    on_disk = sorted(p.name for p in CORPUS.glob("*.Dockerfile"))
    assert sorted(data) == on_disk
    assert len(on_disk) >= 24
    assert sum(1 for v in data.values() if not v) >= 8


def test_lint_blind_precision_recall() -> None:
    wanted = _expected()
    names = sorted(p.name for p in CORPUS.glob("*.Dockerfile"))
    got = _actual(names)

    true_pos = wanted & got
    missed = wanted - got
    spurious = got - wanted
    tp = sum(true_pos.values())
    precision = _ratio(tp, sum(got.values()))
    recall = _ratio(tp, sum(wanted.values()))

    rules = sorted({k[1] for k in wanted} | {k[1] for k in got})
    print(
        f"\noverall: precision {precision:.3f}  recall {recall:.3f}  "
        f"(tp {tp}, fp {sum(spurious.values())}, fn {sum(missed.values())})"
    )
    for rule in rules:
        r_tp = sum(n for k, n in true_pos.items() if k[1] == rule)
        r_got = sum(n for k, n in got.items() if k[1] == rule)
        r_want = sum(n for k, n in wanted.items() if k[1] == rule)
        print(
            f"  {rule}: precision {_ratio(r_tp, r_got):.3f}  recall {_ratio(r_tp, r_want):.3f}"
            f"  (tp {r_tp}, got {r_got}, expected {r_want})"
        )

    disagreements = [f"  missed   {f}:{line} {rule}" for (f, rule, line) in sorted(missed)]
    disagreements += [f"  spurious {f}:{line} {rule}" for (f, rule, line) in sorted(spurious)]
    if disagreements:
        print("disagreements (expected vs linter):")
        print("\n".join(disagreements))

    report = "\n".join(disagreements)
    assert precision >= THRESHOLD, f"precision {precision:.3f} < {THRESHOLD}\n{report}"
    assert recall >= THRESHOLD, f"recall {recall:.3f} < {THRESHOLD}\n{report}"
