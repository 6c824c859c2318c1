"""Split the shell text of a RUN into simple commands, so rules see programs and flags. Pure.

A small POSIX-shell tokenizer (quotes, backslashes, comments, redirections) rather than
``shlex``: ``shlex`` treats ``&&``, ``;``, ``|`` and ``>`` as word characters unless told
otherwise and knows nothing of redirection targets. It does not expand variables or
globs; it splits on ``&&``, ``||``, ``;``, ``|``, ``&``, newlines and ``( ) { }``, drops
shell keywords (``if``, ``then``, ``do`` ...), recurses into ``sh -c '...'`` and
``bash -c "..."``, and strips wrappers (``sudo``, ``env``, ``VAR=value``, ``exec``,
``nohup``, ``time``, ``command``) so that ``DEBIAN_FRONTEND=noninteractive sudo -E
apt-get -y install x`` is the program ``apt-get`` with ``-y install x``.

Bounded for untrusted input: linear in the text, ``sh -c`` nesting at most 8 deep.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

MAX_DEPTH = 8

_OPERATORS = ("&&", "||", ";;", ";", "|", "&", "\n", "(", ")")
_OPERATOR_CHARS = frozenset("&|;\n()")
_KEYWORDS = frozenset(
    {"if", "then", "else", "elif", "fi", "do", "done", "while", "until", "!", "{", "}",
     "esac", "in"}
)  # fmt: skip
_ASSIGNMENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_SHELLS = frozenset({"sh", "bash", "dash", "ash", "zsh", "ksh"})
# wrapper -> its options that take a value
_WRAPPERS: dict[str, frozenset[str]] = {
    "sudo": frozenset({"-u", "-g", "-h", "-p", "-C", "-D", "-r", "-t", "-U"}),
    "env": frozenset({"-u", "-C", "-S"}),
    "exec": frozenset({"-a"}),
    "nohup": frozenset(),
    "time": frozenset({"-f", "-o"}),
    "command": frozenset(),
    "nice": frozenset({"-n"}),
    "ionice": frozenset({"-c", "-n"}),
    "chroot": frozenset(),
    "gosu": frozenset(),
    "su-exec": frozenset(),
    "xargs": frozenset({"-n", "-I", "-d", "-P", "-L", "-s", "-E", "-a"}),
}
# wrappers whose first positional argument is a user, not the program
_USER_FIRST = frozenset({"gosu", "su-exec", "chroot"})


@dataclass(frozen=True)
class SimpleCommand:
    """One simple command: ``argv[0]`` is the program as written (wrappers removed)."""

    argv: tuple[str, ...]
    env: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()  # targets of > and >> redirections

    @functools.cached_property
    def program(self) -> str:
        """The program's base name: ``/usr/bin/apt-get`` -> ``apt-get``."""
        return self.argv[0].rsplit("/", 1)[-1] if self.argv else ""

    @property
    def args(self) -> tuple[str, ...]:
        return self.argv[1:]

    def has_flag(self, *names: str) -> bool:
        """Whether any of ``names`` is given: ``--long``, ``--long=value``, or a short
        ``-x`` alone or bundled (``-yq`` has ``-y``)."""
        for arg in self.args:
            if arg == "--":
                break
            for name in names:
                if name.startswith("--"):
                    if arg == name or arg.startswith(name + "="):
                        return True
                elif (
                    len(name) == 2
                    and arg.startswith("-")
                    and not arg.startswith("--")
                    and name[1] in arg[1:]
                ):
                    return True
        return False

    def positionals(self, value_options: frozenset[str] = frozenset()) -> list[str]:
        """Arguments that are not options (or the values of ``value_options``)."""
        out: list[str] = []
        skip = False
        rest = False
        for arg in self.args:
            if skip:
                skip = False
                continue
            if rest or not arg.startswith("-") or arg == "-":
                out.append(arg)
            elif arg == "--":
                rest = True
            elif arg in value_options:
                skip = True
        return out


def _tokenize(text: str) -> list[tuple[str, str]]:
    """Tokens as (kind, value): kind "w" word, "o" operator, ">" output target, "<" other
    redirection target (dropped later)."""
    tokens: list[tuple[str, str]] = []
    word: list[str] = []
    in_word = False
    pending_redirect: str | None = None
    i, n = 0, len(text)

    def end_word() -> None:
        nonlocal in_word, pending_redirect
        if in_word:
            value = "".join(word)
            if pending_redirect is not None:
                tokens.append((pending_redirect, value))
                pending_redirect = None
            else:
                tokens.append(("w", value))
        word.clear()
        in_word = False

    while i < n:
        c = text[i]
        if c == "\\":
            if i + 1 < n and text[i + 1] == "\n":
                i += 2  # line continuation
                continue
            if i + 1 < n:
                word.append(text[i + 1])
            in_word = True
            i += 2
            continue
        if c == "'":
            end = text.find("'", i + 1)
            end = n if end < 0 else end
            word.append(text[i + 1 : end])
            in_word = True
            i = end + 1
            continue
        if c == '"':
            i += 1
            while i < n and text[i] != '"':
                if text[i] == "\\" and i + 1 < n and text[i + 1] in '"\\$`\n':
                    if text[i + 1] != "\n":
                        word.append(text[i + 1])
                    i += 2
                    continue
                word.append(text[i])
                i += 1
            in_word = True
            i += 1
            continue
        if c == "#" and not in_word:
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        if c in " \t\r":
            end_word()
            i += 1
            continue
        if c in "<>":
            # "2>" / "2>&1": a pure-digit word just before is the file descriptor
            if in_word and "".join(word).isdigit():
                word.clear()
                in_word = False
            end_word()
            j = i
            while j < n and text[j] in "<>&|-":
                j += 1
            op = text[i:j]
            i = j
            if op.endswith("&") and i < n and (text[i].isdigit() or text[i] == "-"):
                while i < n and (text[i].isdigit() or text[i] == "-"):
                    i += 1  # >&2, 2>&1, <&- : a descriptor, no file
                continue
            pending_redirect = ">" if ">" in op else "<"
            continue
        if c == "&" and i + 1 < n and text[i + 1] == ">":  # &> file
            end_word()
            i += 2
            if i < n and text[i] == ">":
                i += 1
            pending_redirect = ">"
            continue
        matched = (
            next((op for op in _OPERATORS if text.startswith(op, i)), None)
            if c in _OPERATOR_CHARS
            else None
        )
        if matched is not None:
            end_word()
            tokens.append(("o", matched))
            i += len(matched)
            continue
        if c == "$" and i + 1 < n and text[i + 1] == "(":
            # $( ... ): keep as part of the word up to the matching parenthesis
            depth, j = 0, i + 1
            while j < n:
                if text[j] == "(":
                    depth += 1
                elif text[j] == ")":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            word.append(text[i : j + 1])
            in_word = True
            i = j + 1
            continue
        word.append(c)
        in_word = True
        i += 1
    end_word()
    return tokens


def split_commands(text: str, _depth: int = 0) -> list[SimpleCommand]:
    """The simple commands of shell ``text``, in order.

    >>> [c.argv for c in split_commands("apt-get update && apt-get -y install x; rm -rf /a")]
    [('apt-get', 'update'), ('apt-get', '-y', 'install', 'x'), ('rm', '-rf', '/a')]
    >>> c = split_commands("DEBIAN_FRONTEND=noninteractive sudo -E apt-get install -y x")[0]
    >>> c.program, c.env, c.args
    ('apt-get', ('DEBIAN_FRONTEND=noninteractive',), ('install', '-y', 'x'))
    >>> [c.argv for c in split_commands("sh -c 'cd /x && make' | tee log")]
    [('cd', '/x'), ('make',), ('tee', 'log')]
    >>> split_commands("curl -sSL https://x/y.tgz > /tmp/y.tgz 2>&1")[0].writes
    ('/tmp/y.tgz',)
    """
    commands: list[SimpleCommand] = []
    current: list[str] = []
    writes: list[str] = []

    def flush() -> None:
        if current or writes:
            commands.extend(_finish(list(current), tuple(writes), _depth))
        current.clear()
        writes.clear()

    for kind, value in _tokenize(text):
        if kind == "o":
            flush()
        elif kind == ">":
            writes.append(value)
        elif kind == "w":
            current.append(value)
    flush()
    return commands


def _finish(words: list[str], writes: tuple[str, ...], depth: int) -> list[SimpleCommand]:
    while words and words[0] in _KEYWORDS:
        words.pop(0)
    if words and words[0] in ("for", "case", "select", "function"):
        return []  # `for x in a b` / `case $x in`: no program of its own
    env: list[str] = []
    while words and _ASSIGNMENT_RE.match(words[0]):
        env.append(words.pop(0))
    # strip wrappers: sudo -E, env A=b, exec, nohup ...
    while words and words[0].rsplit("/", 1)[-1] in _WRAPPERS:
        name = words[0].rsplit("/", 1)[-1]
        value_opts = _WRAPPERS[name]
        words.pop(0)
        while words and words[0].startswith("-") and words[0] != "-":
            opt = words.pop(0)
            if opt in value_opts and words:
                words.pop(0)
            if opt == "--":
                break
        if name == "env":
            while words and _ASSIGNMENT_RE.match(words[0]):
                env.append(words.pop(0))
        if name in _USER_FIRST and words:
            words.pop(0)
    if not words:
        return [SimpleCommand((), tuple(env), writes)] if writes else []
    program = words[0].rsplit("/", 1)[-1]
    if program in _SHELLS and depth < MAX_DEPTH:
        # sh -c 'script' [name args...]: the script is what runs
        for index, word in enumerate(words[1:], start=1):
            if word.startswith("-") and "c" in word[1:] and not word.startswith("--"):
                if index + 1 < len(words):
                    return split_commands(words[index + 1], depth + 1)
                break
            if not word.startswith("-"):
                break
    return [SimpleCommand(tuple(words), tuple(env), writes)]
