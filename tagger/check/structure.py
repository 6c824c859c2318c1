"""container-structure-test files (schema 2.0.0), parsed and judged. Pure.

What the file asks for becomes :class:`StructureFile`; :mod:`tagger.check.runtime` gathers
what the image shows (command output, tar headers of paths, file bytes, the config) and
the ``judge_*`` functions here turn that into the errors container-structure-test would
report, so the verdicts are the same as the binary's on the same image and file.

Two of the binary's plain bugs are not copied (``docs/check/structure-tests.md``): a
command test's own ``envVars`` count in ``$VAR`` expansion of its command and args, and
``exposedPorts``/``unexposedPorts`` accept ``8080/tcp`` as well as ``8080``.

Regular expressions are Go's (RE2) in the file; :func:`go_search` runs them with Python's
``re`` where the two agree, and translates where they differ in ways a test meets
(``$`` is the end of the text, not the end before a final newline; ``\\z``; POSIX classes).
"""

from __future__ import annotations

import json
import re
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tagger.check.static import ImageFacts, port_number
from tagger.errors import UsageError

#: The schema keys imgtag runs, and those it knows but refuses (exit 2 naming them).
RUN_KEYS = (
    "schemaVersion",
    "globalEnvVars",
    "commandTests",
    "fileExistenceTests",
    "fileContentTests",
    "metadataTest",
)
NOT_RUN = {
    "licenseTests": "imgtag does not run licenseTests (Debian copyright files)",
    "containerRunOptions": "imgtag does not run containerRunOptions (the CHK checks choose "
    "the user and network themselves)",
}


class StructureFileError(UsageError):
    """A container-structure-test file imgtag cannot run (exit 2)."""


@dataclass(frozen=True, slots=True)
class EnvVar:
    key: str
    value: str
    is_regex: bool = False


@dataclass(frozen=True, slots=True)
class CommandTest:
    name: str
    command: str
    args: tuple[str, ...] = ()
    setup: tuple[tuple[str, ...], ...] = ()
    teardown: tuple[tuple[str, ...], ...] = ()
    env_vars: tuple[EnvVar, ...] = ()
    exit_code: int = 0
    expected_output: tuple[str, ...] = ()
    excluded_output: tuple[str, ...] = ()
    expected_error: tuple[str, ...] = ()
    excluded_error: tuple[str, ...] = ()

    @property
    def log_name(self) -> str:
        return f"Command Test: {self.name}"

    def invalid(self) -> list[str]:
        """What container-structure-test's validation reports (a failed test, not exit 2)."""
        errors = []
        if not self.name:
            errors.append("Please provide a valid name for every test")
        if not self.command:
            errors.append(f"Please provide a valid command to run for test {self.name}")
        if any(not c for c in self.setup):
            errors.append("Error in setup command configuration encountered")
        if any(not c for c in self.teardown):
            errors.append("Error in teardown command configuration encountered")
        if any(not e.key or not e.value for e in self.env_vars):
            errors.append("Please provide non-empty keys and values for all specified env vars")
        return errors


@dataclass(frozen=True, slots=True)
class FileExistenceTest:
    name: str
    path: str
    should_exist: bool = True
    permissions: str = ""
    uid: int = -1
    gid: int = -1
    is_executable_by: str = ""

    @property
    def log_name(self) -> str:
        return f"File Existence Test: {self.name}"

    def invalid(self) -> list[str]:
        return _file_test_errors(self.name, self.path)


@dataclass(frozen=True, slots=True)
class FileContentTest:
    name: str
    path: str
    expected_contents: tuple[str, ...] = ()
    excluded_contents: tuple[str, ...] = ()

    @property
    def log_name(self) -> str:
        return f"File Content Test: {self.name}"

    def invalid(self) -> list[str]:
        return _file_test_errors(self.name, self.path)


@dataclass(frozen=True, slots=True)
class MetadataTest:
    env_vars: tuple[EnvVar, ...] = ()
    unbound_env_vars: tuple[EnvVar, ...] = ()
    exposed_ports: tuple[str, ...] = ()
    unexposed_ports: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    workdir: str = ""
    volumes: tuple[str, ...] = ()
    unmounted_volumes: tuple[str, ...] = ()
    labels: tuple[EnvVar, ...] = ()
    user: str = ""

    log_name = "Metadata Test"

    @property
    def empty(self) -> bool:
        return self == MetadataTest()

    def invalid(self) -> list[str]:
        errors = []
        if any(not e.key for e in self.env_vars):
            errors.append("Environment variable key cannot be empty")
        if any(not e.key for e in self.labels):
            errors.append("Label key cannot be empty")
        if any(not p for p in self.exposed_ports):
            errors.append("Port cannot be empty")
        if any(not v for v in self.volumes):
            errors.append("Volume cannot be empty")
        return errors


@dataclass(frozen=True)
class StructureFile:
    path: str
    global_env: tuple[EnvVar, ...] = ()
    command_tests: tuple[CommandTest, ...] = ()
    file_existence_tests: tuple[FileExistenceTest, ...] = ()
    file_content_tests: tuple[FileContentTest, ...] = ()
    metadata: MetadataTest = field(default_factory=MetadataTest)

    @property
    def count(self) -> int:
        return (
            len(self.command_tests)
            + len(self.file_existence_tests)
            + len(self.file_content_tests)
            + (0 if self.metadata.empty else 1)
        )


# --- reading a file ---------------------------------------------------------------------


def load(path: str) -> StructureFile:
    """Read and check a container-structure-test file (``.yaml``, ``.yml`` or ``.json``,
    as the binary decides by the name). Anything it cannot run is exit 2 naming the key."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StructureFileError(f"--config {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StructureFileError(f"--config {path}: cannot read it ({exc})") from None
    return parse(text, path)


def parse(text: str, path: str = "tests.yaml") -> StructureFile:
    """
    >>> f = parse("schemaVersion: 2.0.0\\ncommandTests:\\n- name: a\\n  command: /x\\n")
    >>> f.command_tests[0].command, f.count
    ('/x', 1)
    >>> def fails(text):
    ...     try:
    ...         parse(text)
    ...     except StructureFileError as exc:
    ...         return str(exc)[:58]
    >>> fails("schemaVersion: 2.0.0\\nlicenseTests: []\\n")
    'tests.yaml: licenseTests: imgtag does not run licenseTests'
    >>> fails("schemaVersion: 2.0.0\\ncommandTests:\\n- name: a\\n  comand: /x\\n")
    'tests.yaml: unknown key commandTests[0].comand (known keys'
    """
    lowered = path.lower()
    if lowered.endswith((".yaml", ".yml")):
        doc = _yaml(text, path)
        strict = True
    elif lowered.endswith(".json"):
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise StructureFileError(f"{path} is not valid JSON: {exc}") from None
        strict = False  # the binary reads JSON with Go's case-insensitive field match
    else:
        raise StructureFileError(
            f"--config {path}: a container-structure-test file must end in .yaml, .yml or .json"
        )
    return _build(doc, path, strict)


def _yaml(text: str, path: str) -> Any:
    import yaml  # only for --config: keeps every other command lean

    class _Loader(yaml.SafeLoader):
        pass

    def _no_duplicates(loader: yaml.SafeLoader, node: yaml.MappingNode) -> Any:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node)
            if key in seen:
                raise StructureFileError(f"{path}: key {key!r} appears twice")
            seen.add(key)
        return loader.construct_mapping(node)

    _Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise StructureFileError(
            f"{path} is not valid YAML: {' '.join(str(exc).split())}"
        ) from None


class _Fields:
    """One mapping of the file, its keys checked against a type's fields."""

    def __init__(self, doc: Any, where: str, known: Sequence[str], path: str, strict: bool):
        if doc is None:
            doc = {}
        if not isinstance(doc, dict):
            raise StructureFileError(f"{path}: {where or 'the file'} must be a mapping")
        self.path, self.where = path, where
        by_lower = {k.lower(): k for k in known}
        self.values: dict[str, Any] = {}
        for key, value in doc.items():
            name = (
                key if str(key) in known else (None if strict else by_lower.get(str(key).lower()))
            )
            if name is None:
                place = f"{where}.{key}" if where else str(key)
                raise StructureFileError(
                    f"{path}: unknown key {place} (known keys: {', '.join(sorted(known))})"
                )
            self.values[name] = value

    def _fail(self, key: str, what: str) -> StructureFileError:
        place = f"{self.where}.{key}" if self.where else key
        return StructureFileError(f"{self.path}: {place} must be {what}")

    def text(self, key: str, default: str = "") -> str:
        value = self.values.get(key)
        if value is None:
            return default
        if isinstance(value, dict | list):
            raise self._fail(key, "a string")
        return _scalar(value)

    def whole(self, key: str, default: int) -> int:
        value = self.values.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._fail(key, "a whole number")
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self.values.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self._fail(key, "true or false")
        return value

    def texts(self, key: str) -> tuple[str, ...]:
        value = self.values.get(key)
        if value is None:
            return ()
        if not isinstance(value, list) or any(isinstance(v, dict | list) for v in value):
            raise self._fail(key, "a list of strings")
        return tuple(_scalar(v) for v in value if v is not None)

    def optional_texts(self, key: str) -> tuple[str, ...] | None:
        return self.texts(key) if key in self.values else None

    def commands(self, key: str) -> tuple[tuple[str, ...], ...]:
        value = self.values.get(key)
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(c, list) for c in value):
            raise self._fail(key, "a list of commands, each a list of strings")
        return tuple(tuple(_scalar(v) for v in c) for c in value)

    def items(self, key: str) -> list[tuple[str, Any]]:
        value = self.values.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self._fail(key, "a list")
        return [
            (f"{self.where + '.' if self.where else ''}{key}[{i}]", v) for i, v in enumerate(value)
        ]


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


_ENV_KEYS = ("key", "value", "isRegex")
_COMMAND_KEYS = (
    "name", "setup", "teardown", "envVars", "exitCode", "command", "args",
    "expectedOutput", "excludedOutput", "expectedError", "excludedError",
)  # fmt: skip
_EXISTENCE_KEYS = (
    "name", "path", "shouldExist", "permissions", "uid", "gid", "isExecutableBy",
)  # fmt: skip
_CONTENT_KEYS = ("name", "path", "expectedContents", "excludedContents")
_METADATA_KEYS = (
    "envVars", "unboundEnvVars", "exposedPorts", "unexposedPorts", "entrypoint", "cmd",
    "workdir", "volumes", "unmountedVolumes", "labels", "user",
)  # fmt: skip


def _build(doc: Any, path: str, strict: bool) -> StructureFile:
    if not isinstance(doc, dict):
        raise StructureFileError(f"{path}: a container-structure-test file is a mapping")
    for key in doc:
        if key in NOT_RUN or (not strict and str(key).lower() in {k.lower() for k in NOT_RUN}):
            name = key if key in NOT_RUN else next(k for k in NOT_RUN if k.lower() == key.lower())
            raise StructureFileError(f"{path}: {key}: {NOT_RUN[name]}")
    top = _Fields(doc, "", RUN_KEYS, path, strict)
    version = top.text("schemaVersion")
    if not version:
        raise StructureFileError(f"{path}: no schemaVersion (imgtag runs schema 2.0.0)")
    if version != "2.0.0":
        raise StructureFileError(f"{path}: schemaVersion {version}: imgtag runs schema 2.0.0 only")

    def env_list(fields: _Fields, key: str) -> tuple[EnvVar, ...]:
        out = []
        for where, item in fields.items(key):
            f = _Fields(item, where, _ENV_KEYS, path, strict)
            out.append(EnvVar(f.text("key"), f.text("value"), f.flag("isRegex", False)))
        return tuple(out)

    commands = []
    for where, item in top.items("commandTests"):
        f = _Fields(item, where, _COMMAND_KEYS, path, strict)
        commands.append(
            CommandTest(
                name=f.text("name"),
                command=f.text("command"),
                args=f.texts("args"),
                setup=f.commands("setup"),
                teardown=f.commands("teardown"),
                env_vars=env_list(f, "envVars"),
                exit_code=f.whole("exitCode", 0),
                expected_output=f.texts("expectedOutput"),
                excluded_output=f.texts("excludedOutput"),
                expected_error=f.texts("expectedError"),
                excluded_error=f.texts("excludedError"),
            )
        )
    existence = []
    for where, item in top.items("fileExistenceTests"):
        f = _Fields(item, where, _EXISTENCE_KEYS, path, strict)
        existence.append(
            FileExistenceTest(
                name=f.text("name"),
                path=f.text("path"),
                should_exist=f.flag("shouldExist", True),
                permissions=f.text("permissions"),
                uid=f.whole("uid", -1),
                gid=f.whole("gid", -1),
                is_executable_by=f.text("isExecutableBy"),
            )
        )
    contents = []
    for where, item in top.items("fileContentTests"):
        f = _Fields(item, where, _CONTENT_KEYS, path, strict)
        contents.append(
            FileContentTest(
                name=f.text("name"),
                path=f.text("path"),
                expected_contents=f.texts("expectedContents"),
                excluded_contents=f.texts("excludedContents"),
            )
        )
    m = _Fields(top.values.get("metadataTest"), "metadataTest", _METADATA_KEYS, path, strict)
    metadata = MetadataTest(
        env_vars=env_list(m, "envVars"),
        unbound_env_vars=env_list(m, "unboundEnvVars"),
        exposed_ports=m.texts("exposedPorts"),
        unexposed_ports=m.texts("unexposedPorts"),
        entrypoint=m.optional_texts("entrypoint"),
        cmd=m.optional_texts("cmd"),
        workdir=m.text("workdir"),
        volumes=m.texts("volumes"),
        unmounted_volumes=m.texts("unmountedVolumes"),
        labels=env_list(m, "labels"),
        user=m.text("user"),
    )
    return StructureFile(
        path=path,
        global_env=env_list(top, "globalEnvVars"),
        command_tests=tuple(commands),
        file_existence_tests=tuple(existence),
        file_content_tests=tuple(contents),
        metadata=metadata,
    )


# --- Go's semantics that the verdicts depend on ----------------------------------------


def _is_alnum(c: str) -> bool:
    return c == "_" or (c.isascii() and c.isalnum())


def expand(text: str, lookup: Callable[[str], str]) -> str:
    """Go's ``os.Expand``: ``$NAME`` and ``${NAME}``, a missing name is empty, a lone
    ``$`` stays, bad syntax (``${``) is eaten. Not a shell: no quoting, no defaults.

    >>> env = {"A": "1", "HOME": "/root"}.get
    >>> expand("$A-${HOME}/x $ $1 ${} end$", lambda k: env(k) or "")
    '1-/root/x $   end$'
    """
    out: list[str] = []
    i = 0
    j = 0
    n = len(text)
    while j < n:
        if text[j] == "$" and j + 1 < n:
            out.append(text[i:j])
            name, width = _shell_name(text[j + 1 :])
            if not name and width > 0:
                pass  # invalid syntax: eaten
            elif not name:
                out.append("$")
            else:
                out.append(lookup(name))
            j += width
            i = j + 1
        j += 1
    out.append(text[i:])
    return "".join(out)


def _shell_name(s: str) -> tuple[str, int]:
    special = "*#$@!?-0123456789"
    if s[0] == "{":
        if len(s) > 2 and s[1] in special and s[2] == "}":
            return s[1:2], 3
        for i in range(1, len(s)):
            if s[i] == "}":
                if i == 1:
                    return "", 2
                return s[1:i], i + 1
        return "", 1
    if s[0] in special:
        return s[0:1], 1
    i = 0
    while i < len(s) and _is_alnum(s[i]):
        i += 1
    return s[:i], i


_POSIX = {
    "alnum": "0-9A-Za-z", "alpha": "A-Za-z", "ascii": "\\x00-\\x7f", "blank": "\\t ",
    "cntrl": "\\x00-\\x1f\\x7f", "digit": "0-9", "graph": "!-~", "lower": "a-z",
    "print": " -~", "punct": "!-/:-@\\[-`{-~", "space": "\\t\\n\\v\\f\\r ", "upper": "A-Z",
    "word": "0-9A-Za-z_", "xdigit": "0-9A-Fa-f",
}  # fmt: skip
_MULTILINE = re.compile(r"\(\?[a-zA-Z]*m[a-zA-Z]*[:)]")


def python_regex(pattern: str) -> str:
    """A Go (RE2) pattern in Python's dialect.

    >>> python_regex("ok$"), python_regex("a\\\\z"), python_regex("[[:digit:]]+")
    ('ok\\\\Z', 'a\\\\Z', '[0-9]+')
    >>> python_regex("[$]")
    '[$]'
    >>> python_regex("(?m)^ok$")
    '(?m)^ok$'
    """
    multiline = bool(_MULTILINE.search(pattern))
    out: list[str] = []
    i, n, in_class = 0, len(pattern), False
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            nxt = pattern[i + 1]
            if nxt == "z":
                out.append("\\Z")
            elif nxt == "Q":
                end = pattern.find("\\E", i + 2)
                literal = pattern[i + 2 :] if end < 0 else pattern[i + 2 : end]
                out.append(re.escape(literal))
                i = n if end < 0 else end + 2
                continue
            else:
                out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            if c == "[" and pattern.startswith("[:", i):
                end = pattern.find(":]", i + 2)
                name = pattern[i + 2 : end] if end > 0 else ""
                if name in _POSIX:
                    out.append(_POSIX[name])
                    i = end + 2
                    continue
            if c == "]":
                in_class = False
            out.append(c)
            i += 1
            continue
        if c == "[":
            in_class = True
            out.append(c)
            i += 1
            # A "]" or "^]" right after "[" is a literal, in Go as in Python.
            if pattern.startswith("^", i):
                out.append("^")
                i += 1
            if pattern.startswith("]", i):
                out.append("]")
                i += 1
            continue
        if c == "$" and not multiline:
            out.append("\\Z")
        else:
            out.append(c)
        i += 1
    return "".join(out)


def go_search(pattern: str, text: str) -> bool | None:
    """Whether the Go pattern matches somewhere in ``text``; ``None`` if it does not
    compile (the binary then fails the test whichever way it asked).

    >>> go_search("hello$", "hello\\n"), go_search("hello", "say hello\\n"), go_search("(", "")
    (False, True, None)
    """
    try:
        compiled = re.compile(python_regex(pattern), re.ASCII)
    except re.error:
        return None
    return compiled.search(text) is not None


def _regex_ok(pattern: str, text: str, should_match: bool) -> bool:
    found = go_search(pattern, text)
    return found is not None and found == should_match


def check_output(test: CommandTest, stdout: str, stderr: str, exit_code: int) -> list[str]:
    """The errors of one command test's run, in the binary's order and words.

    >>> t = CommandTest("t", "/x", expected_output=("hi",), exit_code=0)
    >>> check_output(t, "hi\\n", "", 0), len(check_output(t, "", "", 3))
    ([], 2)
    """
    errors = []
    for s in test.expected_error:
        if not _regex_ok(s, stderr, True):
            errors.append(f"Expected string '{s}' not found in error '{stderr}'")
    for s in test.excluded_error:
        if not _regex_ok(s, stderr, False):
            errors.append(f"Excluded string '{s}' found in error '{stderr}'")
    for s in test.expected_output:
        if not _regex_ok(s, stdout, True):
            errors.append(f"Expected string '{s}' not found in output '{stdout}'")
    for s in test.excluded_output:
        if not _regex_ok(s, stdout, False):
            errors.append(f"Excluded string '{s}' found in output '{stdout}'")
    if test.exit_code != exit_code:
        errors.append(
            f"Test '{test.name}' exited with incorrect error code. Expected: "
            f"{test.exit_code}, Actual: {exit_code}"
        )
    return errors


def env_lookup(env: Mapping[str, str]) -> Callable[[str], str]:
    return lambda key: env.get(key, "")


def command_argv(test: CommandTest, env: Mapping[str, str]) -> list[str]:
    """The command and args after ``$VAR`` expansion: the image's env with the file's
    globalEnvVars and (unlike the binary) the test's own envVars.

    >>> t = CommandTest("t", "/bin/echo", ("$A", "${B}"), env_vars=(EnvVar("B", "own"),))
    >>> command_argv(t, {"A": "image"})
    ['/bin/echo', 'image', 'own']
    """
    merged = {**env, **{e.key: e.value for e in test.env_vars}}
    lookup = env_lookup(merged)
    return [expand(a, lookup) for a in (test.command, *test.args)]


def global_env(file: StructureFile, image_env: Mapping[str, str]) -> dict[str, str]:
    """globalEnvVars, each value expanded against the image's env (as the binary does)."""
    lookup = env_lookup(image_env)
    return {e.key: expand(e.value, lookup) for e in file.global_env}


# --- file tests: tar headers as Go reads them -------------------------------------------

_TYPE_BITS = "dalTLDpSugct?"
_MODE_DIR, _MODE_SYMLINK, _MODE_DEVICE, _MODE_PIPE, _MODE_SOCKET = 31, 27, 26, 25, 24
_MODE_SETUID, _MODE_SETGID, _MODE_CHAR, _MODE_STICKY = 23, 22, 21, 20


@dataclass(frozen=True, slots=True)
class Entry:
    """One tar header of a path, as the engine's archive of it gives it."""

    name: str
    type: bytes  # tarfile's type flag: b"0" regular, b"1" hard link, b"2" symlink, b"5" dir
    mode: int  # the header's mode field, file-type bits included when the writer set them
    uid: int
    gid: int
    linkname: str = ""


def go_mode(entry: Entry) -> str:
    """The mode string Go's ``FileMode.String()`` gives a tar header's ``FileInfo``.

    >>> go_mode(Entry("d", b"5", 0o40755, 0, 0)), go_mode(Entry("f", b"0", 0o4755, 0, 0))
    ('drwxr-xr-x', 'urwxr-xr-x')
    >>> go_mode(Entry("l", b"2", 0o777, 0, 0)), go_mode(Entry("t", b"5", 0o1777, 0, 0))
    ('Lrwxrwxrwx', 'dtrwxrwxrwx')
    """
    bits = 0
    if entry.mode & stat.S_ISUID:
        bits |= 1 << _MODE_SETUID
    if entry.mode & stat.S_ISGID:
        bits |= 1 << _MODE_SETGID
    if entry.mode & stat.S_ISVTX:
        bits |= 1 << _MODE_STICKY
    kind = entry.mode & ~0o7777
    by_mode = {
        stat.S_IFDIR: 1 << _MODE_DIR,
        stat.S_IFIFO: 1 << _MODE_PIPE,
        stat.S_IFLNK: 1 << _MODE_SYMLINK,
        stat.S_IFBLK: 1 << _MODE_DEVICE,
        stat.S_IFCHR: (1 << _MODE_DEVICE) | (1 << _MODE_CHAR),
        stat.S_IFSOCK: 1 << _MODE_SOCKET,
    }
    bits |= by_mode.get(kind, 0)
    by_type = {
        b"2": 1 << _MODE_SYMLINK,
        b"3": (1 << _MODE_DEVICE) | (1 << _MODE_CHAR),
        b"4": 1 << _MODE_DEVICE,
        b"5": 1 << _MODE_DIR,
        b"6": 1 << _MODE_PIPE,
    }
    bits |= by_type.get(entry.type, 0)
    letters = "".join(c for i, c in enumerate(_TYPE_BITS) if bits & (1 << (31 - i)))
    perms = "".join(c if entry.mode & (1 << (8 - i)) else "-" for i, c in enumerate("rwxrwxrwx"))
    return (letters or "-") + perms


def judge_existence(test: FileExistenceTest, entry: Entry | None, error: str) -> list[str]:
    """The errors of a file existence test, given the path's header (``None`` with the
    reason in ``error`` when the path is not there)."""
    if entry is None:
        if test.should_exist:
            return [f"Error examining file in container: {error}"]
        return []
    if not test.should_exist:
        return [f"File {test.path} should not exist but does"]
    errors = []
    mode = go_mode(entry)
    if test.permissions and mode != test.permissions:
        errors.append(
            f"{test.path} has incorrect permissions. Expected: {test.permissions}, Actual: {mode}"
        )
    masks = {"any": 0o111, "owner": 0o100, "group": 0o010, "other": 0o001}
    if test.is_executable_by:
        mask = masks.get(test.is_executable_by)
        if mask is None:
            errors.append(f"{test.is_executable_by} not recognised as a valid option")
        elif not entry.mode & mask:
            errors.append(
                f"{test.path} has incorrect executable bit. Expected to be executable by "
                f"{test.is_executable_by}, Actual: {mode}"
            )
    if test.uid != -1 and entry.uid != test.uid:
        errors.append(
            f"{test.path} has incorrect user ownership. Expected: {test.uid}, Actual: {entry.uid}"
        )
    if test.gid != -1 and entry.gid != test.gid:
        errors.append(
            f"{test.path} has incorrect group ownership. Expected: {test.gid}, Actual: {entry.gid}"
        )
    return errors


def judge_content(test: FileContentTest, content: str | None, error: str) -> list[str]:
    if content is None:
        return [f"Failed to open {test.path}. Error: {error}"]
    errors = []
    for s in test.expected_contents:
        if not _regex_ok(s, content, True):
            errors.append(f"Expected string '{s}' not found in file content")
    for s in test.excluded_contents:
        if not _regex_ok(s, content, False):
            errors.append(f"Excluded string '{s}' found in file content")
    return errors


# --- the metadata test ------------------------------------------------------------------


def _port_exposed(spec: str, exposed: Sequence[str]) -> bool:
    """``8080`` matches 8080 over any protocol; ``8080/tcp`` only that one.

    >>> _port_exposed("8080/tcp", ["8080/tcp"]), _port_exposed("8080", ["8080/udp"])
    (True, True)
    >>> _port_exposed("8080/udp", ["8080/tcp"])
    False
    """
    if "/" in spec:
        return spec.lower() in (p.lower() for p in exposed)
    return any(str(port_number(p)) == spec for p in exposed)


def _value_matches(want: EnvVar, actual: str) -> bool:
    return _regex_ok(want.value, actual, True) if want.is_regex else want.value == actual


def judge_metadata(test: MetadataTest, facts: ImageFacts) -> list[str]:
    """
    >>> facts = ImageFacts.from_config({"ExposedPorts": {"8080/tcp": {}}, "User": "1001"})
    >>> judge_metadata(MetadataTest(exposed_ports=("8080/tcp", "8080"), user="1001"), facts)
    []
    >>> judge_metadata(MetadataTest(cmd=("/app",)), facts)
    ['Image Cmd [] does not match expected Cmd: [/app]']
    """
    errors = []
    for e in test.env_vars:
        if e.key not in facts.env:
            errors.append(f"variable {e.key} not found in image env")
        elif not _value_matches(e, facts.env[e.key]):
            errors.append(
                f"env var {e.key} value {facts.env[e.key]} does not match expected value: {e.value}"
            )
    for e in test.unbound_env_vars:
        if e.key in facts.env:
            errors.append(f"env variable {e.key} should not be present in image metadata")
    for e in test.labels:
        if e.key not in facts.labels:
            errors.append(f"label {e.key} not found in image metadata")
        elif not _value_matches(e, facts.labels[e.key]):
            errors.append(
                f"label {e.key} value {facts.labels[e.key]} does not match expected value: "
                f"{e.value}"
            )
    if test.cmd is not None and test.cmd != facts.cmd:
        errors.append(
            f"Image Cmd {_go_list(facts.cmd)} does not match expected Cmd: {_go_list(test.cmd)}"
        )
    if test.entrypoint is not None and test.entrypoint != facts.entrypoint:
        errors.append(
            f"Image entrypoint {_go_list(facts.entrypoint)} does not match expected "
            f"entrypoint: {_go_list(test.entrypoint)}"
        )
    if test.workdir and test.workdir != facts.workdir:
        errors.append(
            f"Image workdir {facts.workdir} does not match config workdir: {test.workdir}"
        )
    if test.user and test.user != facts.user:
        errors.append(f"Image user {facts.user} does not match config user: {test.user}")
    for port in test.exposed_ports:
        if not _port_exposed(port, facts.exposed):
            errors.append(f"Port {port} not found in config")
    for port in test.unexposed_ports:
        if _port_exposed(port, facts.exposed):
            errors.append(f"Port {port} should not be exposed")
    for volume in test.volumes:
        if volume not in facts.volumes:
            errors.append(f"Volume {volume} not found in config")
    for volume in test.unmounted_volumes:
        if volume in facts.volumes:
            errors.append(f"Volume {volume} should not be mounted")
    return errors


def _go_list(items: Sequence[str]) -> str:
    return "[" + " ".join(items) + "]"


def _file_test_errors(name: str, path: str) -> list[str]:
    """What container-structure-test's validation reports for a file test's name and path.

    >>> _file_test_errors("", "/etc")
    ['Please provide a valid name for every test']
    >>> _file_test_errors("conf", "")
    ['Please provide a valid file path for test conf']
    """
    errors = []
    if not name:
        errors.append("Please provide a valid name for every test")
    if not path:
        errors.append(f"Please provide a valid file path for test {name}")
    return errors
