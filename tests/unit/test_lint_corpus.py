"""Precision and recall of the IMG rules over a corpus of real-world-shaped Dockerfiles.

Expectations in tests/data/lint-corpus/expected.json were written by reading each file.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from tagger.lint import lint_paths
from tagger.lint.rules import ALL_RULES

CORPUS = Path(__file__).resolve().parents[1] / "data" / "lint-corpus"


def _expected() -> dict[str, set[tuple[str, int]]]:
    data = json.loads((CORPUS / "expected.json").read_text())
    return {name: {(r, int(line)) for r, line in items} for name, items in data["findings"].items()}


def test_every_corpus_file_has_expectations() -> None:
    files = {p.name for p in CORPUS.glob("*.Dockerfile")}
    assert len(files) >= 40
    assert files == set(_expected())


def test_precision_and_recall(capsys: object) -> None:
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for name, expected in _expected().items():
        got = {(f.rule, f.line) for f in lint_paths([CORPUS / name]).findings}
        for rule, _ in got & expected:
            tp[rule] += 1
        for rule, _ in got - expected:
            fp[rule] += 1
        for rule, _ in expected - got:
            fn[rule] += 1
    lines = []
    for rule in sorted({r.id for r in ALL_RULES}):
        p = tp[rule] / ((tp[rule] + fp[rule]) or 1)
        r = tp[rule] / ((tp[rule] + fn[rule]) or 1)
        lines.append(f"{rule}: tp={tp[rule]} fp={fp[rule]} fn={fn[rule]} P={p:.2f} R={r:.2f}")
    total_tp, total_fp, total_fn = sum(tp.values()), sum(fp.values()), sum(fn.values())
    precision = total_tp / (total_tp + total_fp)
    recall = total_tp / (total_tp + total_fn)
    print("\n".join(lines))
    print(f"overall: precision={precision:.3f} recall={recall:.3f} (tp={total_tp})")
    assert precision > 0.95
    assert recall > 0.95


def test_every_rule_is_exercised_and_has_a_clean_counterpart() -> None:
    expected = _expected()
    per_rule: Counter[str] = Counter(rule for items in expected.values() for rule, _ in items)
    for rule in ALL_RULES:
        assert per_rule[rule.id] >= 2, rule.id
        # a file that does what the rule asks: same practice, no finding
        assert any(not any(r == rule.id for r, _ in items) for items in expected.values()), rule.id
