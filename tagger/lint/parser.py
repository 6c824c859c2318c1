"""Dockerfile parsing: text in, a :class:`Dockerfile` of stages and instructions out. Pure.

The instruction-level parse is BuildKit's own: the ``dockerfile`` package (PyPI) wraps
``github.com/moby/buildkit/frontend/dockerfile/parser``, the Go parser ``docker build``
runs, so continuations, the ``escape`` directive, comments and empty lines inside a
continued instruction, heredocs (``<<EOF``, ``<<-EOF``, quoted delimiters, several per
instruction, ``COPY <<EOF /path``), JSON versus shell form and its line limits are
exactly what BuildKit does. ``dockerfile-parse`` (pure Python) was evaluated and
rejected: it has no heredoc support (a heredoc body's lines come back as instructions
named ``APT-GET`` or ``EOF``), so every rule would see a wrong program.

On top of that this module does what BuildKit does after parsing and before building
(https://docs.docker.com/reference/dockerfile/): it checks instruction names and the
``FROM`` grammar, groups instructions into stages, resolves ``ARG`` before ``FROM`` and
``${VAR}``/``${VAR:-default}`` in ``FROM``, and reads imgtag's ignore comments
(``# imgtag ignore=ID`` above an instruction, ``# imgtag global ignore=ID``), which
BuildKit drops as comments.

Every failure is a :class:`DockerfileError` (a ``UsageError``: exit 2). Dockerfiles are
untrusted: size, NUL bytes and depth are bounded before the Go parser sees them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

from tagger.errors import UsageError

# BuildKit refuses a line over 64 KiB; a whole file this big is no Dockerfile.
# Real Dockerfiles are a few KB; the cap bounds the work an untrusted file can cause
# (linting is linear in the text: benchmarks/README.md has its rate).
MAX_BYTES = 1024 * 1024

# https://docs.docker.com/reference/dockerfile/#overview (MAINTAINER is deprecated, still valid)
KNOWN_INSTRUCTIONS = frozenset(
    {
        "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK",
        "LABEL", "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME",
        "WORKDIR",
    }
)  # fmt: skip

_DIRECTIVE_RE = re.compile(r"^#\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(.*?)\s*$")
_IGNORE_RE = re.compile(r"^\s*#\s*imgtag\s+(global\s+)?ignore\s*=\s*([A-Za-z0-9_, ]+?)\s*$")
_VAR_RE = re.compile(
    r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))"
)


class DockerfileError(UsageError):
    """The Dockerfile cannot be read or parsed (exit 2, never a finding)."""


@dataclass(frozen=True)
class Heredoc:
    """One heredoc of an instruction: ``<<[-]["]NAME["]`` and its body."""

    name: str
    content: str


@dataclass(frozen=True)
class Instruction:
    """One instruction as BuildKit parsed it.

    ``args`` are the words after the flags: the JSON array's items in exec form, else
    one string (the joined shell text) for RUN/CMD/ENTRYPOINT/SHELL or the split words.
    ``line`` is the instruction's first line (1-based), ``end_line`` its last.
    """

    cmd: str
    args: tuple[str, ...]
    flags: tuple[str, ...]
    json: bool
    line: int
    end_line: int
    original: str
    heredocs: tuple[Heredoc, ...] = ()
    sub_cmd: str | None = None
    stage: int = -1  # index of its stage; -1 for ARGs before the first FROM

    @property
    def text(self) -> str:
        """The shell-form text (args joined), as RUN/CMD/ENTRYPOINT hand it to the shell."""
        return " ".join(self.args)


@dataclass(frozen=True)
class Stage:
    """A build stage: its ``FROM`` and the instructions up to the next ``FROM``."""

    index: int
    base: str  # the image reference as written (after ARG substitution)
    name: str | None  # ``AS name``, lower-cased as BuildKit compares it
    platform: str | None
    instructions: tuple[Instruction, ...]
    from_line: int

    @property
    def from_instruction(self) -> Instruction:
        return self.instructions[0]


@dataclass(frozen=True)
class Dockerfile:
    path: str
    instructions: tuple[Instruction, ...]
    stages: tuple[Stage, ...]
    meta_args: Mapping[str, str | None]  # ARGs before the first FROM, with defaults
    escape: str = "\\"
    syntax: str | None = None
    # rule ids ignored on an instruction's first line, and in the whole file
    ignores: Mapping[int, frozenset[str]] = field(default_factory=dict)
    global_ignores: frozenset[str] = frozenset()

    @cached_property
    def _first_named(self) -> dict[str, int]:
        # Name -> index of the first stage of that name: one pass, so that looking up a
        # `FROM stage` is O(1) and a chain of n stages costs O(n), not O(n^2).
        first: dict[str, int] = {}
        for stage in self.stages:
            if stage.name is not None:
                first.setdefault(stage.name, stage.index)
        return first

    def stage_by_name(self, name: str, before: int) -> Stage | None:
        """The stage named ``name`` (or numbered, as ``COPY --from=0``) before ``before``:
        the first stage in the file that has that name or that number."""
        lowered = name.lower()
        candidates = [self._first_named.get(lowered, len(self.stages))]
        if lowered.isdigit() and len(lowered) <= 9:
            candidates.append(int(lowered))
        index = min(candidates)
        return self.stages[index] if index < min(before, len(self.stages)) else None

    def parent_stage(self, stage: Stage) -> Stage | None:
        """The earlier stage ``stage`` is built ``FROM``, if any."""
        return self.stage_by_name(stage.base, stage.index)

    def stage_chain(self, stage: Stage) -> list[Stage]:
        """``stage`` and the earlier stages it is built from, nearest first."""
        chain = [stage]
        seen = {stage.index}
        parent = self.parent_stage(stage)
        while parent is not None and parent.index not in seen:
            chain.append(parent)
            seen.add(parent.index)
            parent = self.parent_stage(parent)
        return chain

    @property
    def final_stage(self) -> Stage:
        return self.stages[-1]


def substitute(text: str, values: Mapping[str, str | None]) -> str:
    """Expand ``$VAR``, ``${VAR}``, ``${VAR:-default}``, ``${VAR:+alt}`` as BuildKit's
    shell-word expansion does for ``FROM``. A plain ``${VAR}`` without a value is kept
    as written (it comes from ``--build-arg`` at build time), so callers can tell.

    >>> substitute("python:${V:-3.11}-slim", {})
    'python:3.11-slim'
    >>> substitute("$REG/app:${TAG}", {"REG": "r.io", "TAG": "1"})
    'r.io/app:1'
    >>> substitute("x${A:+-dev}", {"A": "1"})
    'x-dev'
    >>> substitute("${BASE}:1", {"BASE": None})
    '${BASE}:1'
    """

    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(4)
        op, word = match.group(2), match.group(3) or ""
        value = values.get(name)
        is_set = name in values and value is not None
        if op is None:
            # Unknown here, given at build time (--build-arg): keep it visible.
            return value if is_set and value is not None else match.group(0)
        if op == ":-":
            return value if value else word
        if op == "-":
            return value or "" if is_set else word
        if op == ":+":
            return word if value else ""
        return word if is_set else ""  # "+"

    return _VAR_RE.sub(one, text)


def _directives(text: str) -> tuple[str, str | None]:
    """The ``escape`` and ``syntax`` parser directives: only at the top of the file, before
    any comment, empty line or instruction (https://docs.docker.com/reference/dockerfile/#parser-directives).
    """
    escape, syntax = "\\", None
    for line in text.splitlines():
        match = _DIRECTIVE_RE.match(line)
        if not match:
            break
        key, value = match.group(1).lower(), match.group(2)
        if key == "escape":
            if value not in ("\\", "`"):
                raise DockerfileError(f"invalid escape directive {value!r}: use \\ or `")
            escape = value
        elif key == "syntax":
            syntax = value
    return escape, syntax


def _ignore_comments(
    lines: list[str], instruction_lines: list[int]
) -> tuple[dict[int, frozenset[str]], frozenset[str]]:
    """Inline ``# imgtag ignore=ID[,ID]`` comments on the comment lines directly above an
    instruction (as hadolint's ``# hadolint ignore=``), and ``# imgtag global ignore=``."""
    starts = set(instruction_lines)
    per_line: dict[int, frozenset[str]] = {}
    global_ids: set[str] = set()
    pending: set[str] = set()
    for number, line in enumerate(lines, start=1):
        match = _IGNORE_RE.match(line)
        if number in starts:
            if pending:
                per_line[number] = frozenset(pending)
            pending = set()
            continue
        if match:
            ids = {part.strip().upper() for part in match.group(2).split(",") if part.strip()}
            if match.group(1):
                global_ids |= ids
            else:
                pending |= ids
        elif not line.lstrip().startswith("#"):
            pending = set()  # an empty or other line breaks "directly above"
    return per_line, frozenset(global_ids)


def parse(text: str, path: str = "Dockerfile") -> Dockerfile:
    """Parse Dockerfile ``text``; ``path`` only names it in messages and findings.

    >>> df = parse("ARG V=3.12\\nFROM python:${V}-slim AS build\\nRUN make\\nFROM build\\n")
    >>> [(s.index, s.base, s.name) for s in df.stages]
    [(0, 'python:3.12-slim', 'build'), (1, 'build', None)]
    >>> parse("FROM a\\nRUN <<EOF\\nset -e\\nEOF\\n").instructions[1].heredocs
    (Heredoc(name='EOF', content='set -e\\n'),)
    """
    if len(text) > MAX_BYTES:
        raise DockerfileError(f"{path} is larger than {MAX_BYTES // 1024 // 1024} MiB")
    if "\x00" in text:
        raise DockerfileError(f"{path} contains NUL bytes: it is not a Dockerfile")
    text = text.removeprefix("\ufeff")  # BuildKit skips a UTF-8 byte order mark
    escape, syntax = _directives(text)

    # The BuildKit parser (cheap to import, yet only lint needs it); no type information.
    import dockerfile as gofile  # type: ignore[import-not-found,unused-ignore]

    try:
        commands = gofile.parse_string(text)
    except gofile.GoParseError as exc:
        raise DockerfileError(f"{path} cannot be parsed: {exc}") from exc

    instructions: list[Instruction] = []
    stages: list[Stage] = []
    meta_args: dict[str, str | None] = {}
    current: list[Instruction] = []
    pending_from: tuple[str, str | None, str | None, int] | None = None

    def close_stage() -> None:
        if pending_from is not None:
            base, name, platform, line = pending_from
            stages.append(Stage(len(stages), base, name, platform, tuple(current), line))

    for command in commands:
        cmd = command.cmd.upper()
        if cmd not in KNOWN_INSTRUCTIONS:
            raise DockerfileError(
                f"{path}:{command.start_line}: unknown instruction {command.cmd!r}"
            )
        heredocs = tuple(_heredoc(h) for h in command.heredocs)
        if cmd == "FROM":
            close_stage()
            current = []
            base, name, platform = _from_args(command, meta_args, path)
            pending_from = (base, name, platform, command.start_line)
        elif pending_from is None and cmd != "ARG":
            raise DockerfileError(
                f"{path}:{command.start_line}: {cmd} before the first FROM "
                "(only ARG may come before it)"
            )
        instruction = Instruction(
            cmd=cmd,
            args=tuple(command.value),
            flags=tuple(command.flags),
            json=bool(command.json),
            line=command.start_line,
            end_line=command.end_line,
            original=command.original,
            heredocs=heredocs,
            sub_cmd=command.sub_cmd.upper() if command.sub_cmd else None,
            stage=len(stages) if pending_from is not None else -1,
        )
        if pending_from is None:  # ARG before FROM: a meta arg
            for word in command.value:
                key, sep, value = word.partition("=")
                meta_args[key] = _unquote(value) if sep else None
        else:
            current.append(instruction)
        instructions.append(instruction)
    close_stage()
    if not stages:
        raise DockerfileError(f"{path} has no FROM instruction")

    lines = text.splitlines()
    per_line, global_ids = _ignore_comments(lines, [i.line for i in instructions])
    return Dockerfile(
        path=path,
        instructions=tuple(instructions),
        stages=tuple(stages),
        meta_args=meta_args,
        escape=escape,
        syntax=syntax,
        ignores=per_line,
        global_ignores=global_ids,
    )


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _heredoc(raw: object) -> Heredoc:
    name = str(getattr(raw, "name", ""))
    content = str(getattr(raw, "content", ""))
    return Heredoc(name, content)


def _from_args(
    command: object, meta_args: Mapping[str, str | None], path: str
) -> tuple[str, str | None, str | None]:
    """``FROM [--platform=P] image [AS name]``, with meta ARGs substituted in the image."""
    words = list(getattr(command, "value", ()))
    line = getattr(command, "start_line", 0)
    platform = None
    for flag in getattr(command, "flags", ()):
        if str(flag).startswith("--platform="):
            platform = str(flag).partition("=")[2]
    if len(words) == 1:
        name = None
    elif len(words) == 3 and words[1].lower() == "as":
        name = words[2].lower()
    else:
        raise DockerfileError(
            f"{path}:{line}: FROM needs an image and optionally 'AS name', got {' '.join(words)!r}"
        )
    base = substitute(words[0], meta_args)
    if not base:
        raise DockerfileError(f"{path}:{line}: FROM names no image after ARG substitution")
    return base, name, platform
