"""The project documents itself: nothing points outside the repository, no link is broken.

Every tracked text file is read: none may name a design document that is not in the
repository. Every relative link in ``README.md``, under ``docs/`` and in any other tracked
markdown file must name a file that exists, and a ``#fragment`` on a markdown target must
name one of its headings (GitHub's anchors).
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Spelled in two parts so that this file does not name them itself.
FORBIDDEN = ("DES" + "IGN.md", ".ci-" + "notes.md")
_SKIP_DIRS = {".git", ".venv", ".tools", "node_modules", "__pycache__", "build", "dist"}

_FENCE_RE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
_CODE_SPAN_RE = re.compile(r"(`+)(?:(?!\1).)+?\1")
_LINK_RE = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def tracked_files() -> list[Path]:
    """The repository's tracked files; in an export without git, every file in the tree."""
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True, check=True
        ).stdout
        names = [n for n in out.decode("utf-8", "surrogateescape").split("\0") if n]
        return [ROOT / n for n in names if (ROOT / n).is_file()]
    except (OSError, subprocess.CalledProcessError):
        found = []
        for base, dirs, files in os.walk(ROOT):
            dirs[:] = [d for d in dirs if d not in _SKIP_DIRS and not d.endswith(".egg-info")]
            found.extend(Path(base) / f for f in files)
        return found


def _text(path: Path) -> str | None:
    data = path.read_bytes()
    if b"\0" in data[:8192]:
        return None  # binary
    return data.decode("utf-8", "replace")


def test_no_file_names_a_document_outside_the_repository() -> None:
    files = tracked_files()
    assert any(p.name == "README.md" for p in files), "found no files to check"
    offenders = []
    for path in files:
        text = _text(path)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            if any(name in line for name in FORBIDDEN):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == [], "point these at docs/ instead:\n" + "\n".join(offenders)


def slug(heading: str) -> str:
    """GitHub's anchor for a markdown heading.

    >>> slug("`imgtag prune`: keep rules and safety rules")
    'imgtag-prune-keep-rules-and-safety-rules'
    >>> slug("Errors and exit codes")
    'errors-and-exit-codes'
    """
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip())
    text = text.lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    for line in _FENCE_RE.sub("", markdown).splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m is None:
            continue
        base = slug(m.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return found


def links(markdown: str) -> list[str]:
    """Link targets outside code blocks and code spans."""
    text = _CODE_SPAN_RE.sub("", _FENCE_RE.sub("", markdown))
    return _LINK_RE.findall(text)


def _documents() -> list[Path]:
    """README.md, docs/, and every other tracked markdown file."""
    tracked = {p for p in tracked_files() if p.suffix == ".md"}
    return sorted(tracked | {ROOT / "README.md", *(ROOT / "docs").rglob("*.md")})


def test_the_documents_exist() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in _documents()}
    expected = {
        "README.md",
        "docs/README.md",
        "docs/architecture.md",
        "docs/tag-grammar.md",
        "docs/registries.md",
        "docs/prune.md",
        "docs/exit-codes.md",
        "docs/configuration.md",
        "docs/lint/README.md",
    }
    assert expected <= names


@pytest.mark.parametrize("document", _documents(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_resolve(document: Path) -> None:
    text = document.read_text(encoding="utf-8")
    broken = []
    for target in links(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):
            continue  # http:, https:, mailto:
        path_part, _, fragment = target.partition("#")
        resolved = (document.parent / path_part).resolve() if path_part else document
        if not resolved.exists():
            broken.append(f"{target}: no such file")
            continue
        if ROOT not in resolved.parents and resolved != ROOT:
            broken.append(f"{target}: outside the repository")
            continue
        if (
            fragment
            and resolved.suffix == ".md"
            and fragment not in anchors(resolved.read_text(encoding="utf-8"))
        ):
            broken.append(f"{target}: no heading with that anchor")
    assert broken == [], f"{document.relative_to(ROOT)}:\n" + "\n".join(broken)


def test_the_link_checker_reads_links_and_anchors() -> None:
    assert links("[a](docs/x.md) `[b](y.md)` ![c](img.png)\n```\n[d](z.md)\n```\n") == [
        "docs/x.md",
        "img.png",
    ]
    assert "errors-and-exit-codes" in anchors((ROOT / "docs" / "architecture.md").read_text())


def test_the_architecture_page_lists_every_module() -> None:
    """Each module of the package has a row in one of the architecture page's tables (its
    file name in backticks), so the page stays true as modules come and go."""
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    rows = "\n".join(line for line in page.splitlines() if line.startswith("|"))
    missing = []
    for module in sorted((ROOT / "tagger").rglob("*.py")):
        relative = module.relative_to(ROOT / "tagger")
        if module.name in ("__init__.py", "__main__.py") and relative.parent != Path("."):
            continue
        if relative.parts[0] == "cli":
            continue  # one row names every command module
        named = f"`tagger/{relative}`" if relative.parent == Path(".") else f"`{module.name}`"
        nested = f"`{relative.parent.name}/{module.name}`"
        if named not in rows and nested not in rows:
            missing.append(str(relative))
    assert missing == [], f"docs/architecture.md has no row for {missing}"
