"""The lint rule pages under docs/lint/: one per rule, linked from SARIF, examples that hold.

Every rule of ``tagger.lint.rules`` has a page, every page names a rule, SARIF's
``helpUri`` names that page, and every Dockerfile example on a page behaves as the page
says when the linter runs on it: an example followed by a ``text`` block reports exactly
those lines for the page's rule, any other example reports nothing for it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from clirun import run_cli
from tagger.lint import lint_text
from tagger.lint.findings import DOCS_URL, RULE_DOCS, RULE_INDEX, rule_doc
from tagger.lint.rules import ALL_RULES

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / RULE_DOCS
RULE_IDS = sorted(rule.id for rule in ALL_RULES)
_FENCE_RE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.MULTILINE | re.DOTALL)


def _repository_path(uri: str) -> Path:
    assert uri.startswith(DOCS_URL), f"{uri} is not an address in the repository"
    return ROOT / uri.removeprefix(DOCS_URL)


def test_every_rule_in_the_code_has_a_page_and_every_page_a_rule() -> None:
    mentioned = set()
    for source in (ROOT / "tagger" / "lint").rglob("*.py"):
        mentioned |= set(re.findall(r"\bIMG\d{3}\b", source.read_text(encoding="utf-8")))
    assert mentioned <= set(RULE_IDS), "rule ids in tagger/lint that no rule has"
    pages = {page.stem for page in DOCS.glob("IMG*.md")}
    assert pages == set(RULE_IDS)
    index = (ROOT / RULE_INDEX).read_text(encoding="utf-8")
    for rule_id in RULE_IDS:
        assert f"[{rule_id}]({rule_id}.md)" in index, f"{RULE_INDEX} does not link {rule_id}"


def test_every_help_uri_names_a_file_in_the_repository() -> None:
    for rule in ALL_RULES:
        assert rule.help_uri == DOCS_URL + rule_doc(rule.id)
        assert _repository_path(rule.help_uri).is_file(), rule.help_uri


def test_sarif_links_each_rule_to_its_page(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM python\nRUN apt-get install -y x\n")
    result = run_cli(["lint", "--format", "sarif", "--fail-on", "none"], cwd=tmp_path)
    driver = json.loads(result.stdout)["runs"][0]["tool"]["driver"]
    assert _repository_path(driver["informationUri"]) == ROOT / RULE_INDEX
    pages = {r["id"]: _repository_path(r["helpUri"]) for r in driver["rules"]}
    assert pages == {rule_id: DOCS / f"{rule_id}.md" for rule_id in RULE_IDS}
    assert all(page.is_file() for page in pages.values())


def _examples(text: str) -> list[tuple[str, str, str | None]]:
    """(section, Dockerfile, expected output or None) for each ``dockerfile`` block."""
    blocks = [(m.start(), m.group(1), m.group(2), m.end()) for m in _FENCE_RE.finditer(text)]
    found = []
    for i, (start, lang, body, end) in enumerate(blocks):
        if lang != "dockerfile":
            continue
        headings = re.findall(r"^## (.+)$", text[:start], re.MULTILINE)
        section = headings[-1] if headings else ""
        expected = None
        if i + 1 < len(blocks):
            n_start, n_lang, n_body, _ = blocks[i + 1]
            if n_lang == "text" and not text[end:n_start].strip():
                expected = n_body
        found.append((section, body, expected))
    return found


@pytest.mark.parametrize("rule_id", RULE_IDS)
def test_the_examples_on_each_page_hold(rule_id: str) -> None:
    page = DOCS / f"{rule_id}.md"
    examples = _examples(page.read_text(encoding="utf-8"))
    sections = {section for section, _, _ in examples}
    assert {"What it catches", "What it does not catch", "Fix"} <= sections, page.name
    for section, dockerfile, expected in examples:
        findings = [f for f in lint_text(dockerfile) if f.rule == rule_id]
        shown = "".join(
            f"{f.file}:{f.line}: {f.severity.value.upper()} {f.rule} {f.message}\n"
            for f in findings
        )
        if expected is not None:
            assert shown == expected, f"{page.name} ({section}):\n{dockerfile}"
        else:
            assert section != "What it catches", f"{page.name}: an example without output"
            assert shown == "", f"{page.name} ({section}) says {rule_id} stays silent:\n{shown}"
