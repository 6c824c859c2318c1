"""``imgtag lint``: Dockerfile best-practice rules IMG001-IMG013 (and hadolint's, merged).

The public API build-push uses: :func:`lint_paths`, :func:`lint_text`, :class:`Finding`,
:class:`Severity`, :class:`LintReport`, :func:`final_base_image`. Parsing and rules are
pure; :func:`lint_paths` and :func:`final_base_image` read files, and ``hadolint=True``
runs hadolint through :class:`tagger.proc.Runner`. Imports stay lean (no docker, no
requests).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tagger.lint.findings import Finding, Rule, Severity
from tagger.lint.parser import Dockerfile, DockerfileError, parse, substitute

__all__ = [
    "DockerfileError",
    "Finding",
    "LintReport",
    "Rule",
    "Severity",
    "final_base_image",
    "lint_dockerfile",
    "lint_paths",
    "lint_text",
    "read_dockerfile",
]


@dataclass(frozen=True)
class LintReport:
    """Findings of one run, sorted by file, line, rule."""

    files: tuple[str, ...]
    findings: tuple[Finding, ...]

    def at_or_above(self, bar: Severity | None) -> tuple[Finding, ...]:
        """Findings at or above ``bar`` (``None``: never fail)."""
        if bar is None:
            return ()
        return tuple(f for f in self.findings if f.severity >= bar)

    def counts(self) -> dict[str, int]:
        out = {s.value: 0 for s in (Severity.ERROR, Severity.WARNING, Severity.INFO)}
        for finding in self.findings:
            out[finding.severity.value] += 1
        return out


def read_dockerfile(path: str | Path) -> str:
    """A Dockerfile's text; unreadable or not text is a :class:`DockerfileError`."""
    from tagger.lint.parser import MAX_BYTES

    file = Path(path)
    try:
        if file.is_dir():
            raise DockerfileError(f"{path} is a directory, not a Dockerfile")
        with file.open("rb") as fh:
            data = fh.read(MAX_BYTES + 1)
    except FileNotFoundError as exc:
        raise DockerfileError(f"{path}: no such file") from exc
    except OSError as exc:
        raise DockerfileError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if len(data) > MAX_BYTES:
        raise DockerfileError(f"{path} is larger than {MAX_BYTES // 1024 // 1024} MiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DockerfileError(f"{path} is not UTF-8 text (byte {exc.start})") from exc


def lint_dockerfile(df: Dockerfile, *, ignore: Iterable[str] = ()) -> list[Finding]:
    """Run every rule on a parsed Dockerfile, honouring ``ignore`` and inline ignores."""
    from tagger.lint.facts import clear_cache
    from tagger.lint.rules import ALL_RULES

    skip = {i.upper() for i in ignore} | set(df.global_ignores)
    findings: set[Finding] = set()
    try:
        for rule in ALL_RULES:
            if rule.id in skip:
                continue
            for line, message in rule.check(df):
                if rule.id in df.ignores.get(line, frozenset()):
                    continue
                findings.add(Finding(df.path, line, rule.id, rule.severity, message, rule.fix))
    finally:
        clear_cache()
    return sorted(findings)


def lint_text(text: str, path: str = "Dockerfile", *, ignore: Iterable[str] = ()) -> list[Finding]:
    """Lint Dockerfile ``text`` (pure).

    >>> clean = 'FROM alpine:3.20\\nUSER 1001\\nCMD ["tini", "--", "x"]\\n'
    >>> lint_text(clean)
    []
    >>> [(f.rule, f.line) for f in lint_text("FROM ubuntu\\nCMD run\\n")]
    [('IMG001', 1), ('IMG002', 1), ('IMG012', 1), ('IMG011', 2), ('IMG013', 2)]
    """
    return lint_dockerfile(parse(text, path), ignore=ignore)


def lint_paths(
    paths: Sequence[str | Path], *, ignore: Iterable[str] = (), hadolint: bool = False
) -> LintReport:
    """Lint each file; with ``hadolint`` also run hadolint and merge its findings.

    Raises :class:`DockerfileError` (exit 2) for a file that cannot be read or parsed,
    and :class:`tagger.errors.UsageError` when hadolint is asked for but missing.
    """
    ignore = tuple(i.upper() for i in ignore)
    findings: list[Finding] = []
    parsed: list[Dockerfile] = []
    for path in paths:
        parsed.append(parse(read_dockerfile(path), str(path)))
    for df in parsed:
        findings.extend(lint_dockerfile(df, ignore=ignore))
    if hadolint:
        from tagger.lint.hadolint import run_hadolint

        for df in parsed:
            for finding in run_hadolint(df.path):
                if finding.rule in ignore or finding.rule in df.global_ignores:
                    continue
                if finding.rule in df.ignores.get(finding.line, frozenset()):
                    continue
                findings.append(finding)
    return LintReport(tuple(str(p) for p in paths), tuple(sorted(set(findings))))


def final_base_image(
    path: str | Path,
    build_args: Mapping[str, str] | None = None,
    target: str | None = None,
) -> str | None:
    """The external image the final (or ``target``) stage is built FROM, following
    ``FROM <stage>`` chains; ``"scratch"`` for scratch; ``None`` when a ``${VAR}`` stays
    unresolved. ``build_args`` override ARG defaults, as ``--build-arg`` does.
    """
    df = parse(read_dockerfile(path), str(path))
    return base_image_of(df, build_args, target)


def base_image_of(
    df: Dockerfile, build_args: Mapping[str, str] | None = None, target: str | None = None
) -> str | None:
    """:func:`final_base_image` on a parsed Dockerfile (pure).

    >>> df = parse("ARG V=3.12\\nFROM python:${V}-slim AS b\\nFROM b AS c\\nFROM scratch\\n")
    >>> base_image_of(df), base_image_of(df, target="c"), base_image_of(df, {"V": "3.13"}, "b")
    ('scratch', 'python:3.12-slim', 'python:3.13-slim')
    """
    from tagger.errors import UsageError

    values: dict[str, str | None] = dict(df.meta_args)
    values.update(build_args or {})
    stage = df.final_stage
    if target is not None:
        found = df.stage_by_name(target, len(df.stages))
        if found is None:
            raise UsageError(f"{df.path} has no stage named {target!r}")
        stage = found
    root = df.stage_chain(stage)[-1]
    raw = root.from_instruction.args[0] if root.from_instruction.args else root.base
    image = substitute(raw, values)
    if "$" in image:
        return None
    return "scratch" if image.lower() == "scratch" else image
