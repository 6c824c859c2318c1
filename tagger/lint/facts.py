"""Facts rules share: the simple commands of a RUN, package installs, paths. Pure.

A RUN's program is its shell text, or, for ``RUN <<EOF`` (the heredoc is the whole
command), the heredoc body run by the shell; ``RUN bash <<EOF`` likewise. Other heredocs
(``cat <<EOF > /etc/x``) are data. See
https://docs.docker.com/reference/dockerfile/#here-documents.
"""

from __future__ import annotations

import functools
import posixpath
import re
from dataclasses import dataclass

from tagger.errors import InvalidReferenceError
from tagger.lint.parser import Instruction, Stage
from tagger.lint.shell import SimpleCommand, split_commands
from tagger.registry.reference import DOCKER_HUB, Reference

_HEREDOC_WORD_RE = re.compile(r"^<<-?(['\"]?)([A-Za-z0-9_.-]+)\1$")


def run_commands(instruction: Instruction) -> list[SimpleCommand]:
    """The simple commands a RUN executes (exec form: the argv itself); cached while one
    file is linted, since every rule asks (:func:`clear_cache` after).

    >>> from tagger.lint.parser import parse
    >>> run = parse("FROM a\\nRUN <<EOF\\napt-get update\\napt-get install -y x\\nEOF\\n")
    >>> [c.argv for c in run_commands(run.instructions[1])]
    [('apt-get', 'update'), ('apt-get', 'install', '-y', 'x')]
    """
    return list(_run_commands(instruction))


@functools.cache
def _run_commands(instruction: Instruction) -> tuple[SimpleCommand, ...]:
    return tuple(_split_run(instruction))


def clear_cache() -> None:
    """Forget the commands of the RUNs linted so far (the linter calls it per file)."""
    _run_commands.cache_clear()
    _package_action.cache_clear()


def _split_run(instruction: Instruction) -> list[SimpleCommand]:
    if instruction.json:
        if not instruction.args:
            return []
        # ["sh", "-c", "..."] is still a shell script
        return split_commands(" ".join(_quote(a) for a in instruction.args))
    text = instruction.text
    commands: list[SimpleCommand] = []
    bodies = {h.name: h.content for h in instruction.heredocs}
    script_words = text.split()
    if script_words and _HEREDOC_WORD_RE.match(script_words[0]):
        name = _HEREDOC_WORD_RE.match(script_words[0]).group(2)  # type: ignore[union-attr]
        body = bodies.pop(name, "")
        if not body.startswith("#!") or re.match(r"#!\s*\S*/(ba|da|a)?sh\b", body):
            commands.extend(split_commands(body))
        text = " ".join(script_words[1:])
    for command in split_commands(text):
        commands.append(command)
        if command.program in ("sh", "bash", "dash", "ash") and any(
            _HEREDOC_WORD_RE.match(a) for a in command.args
        ):
            for a in command.args:
                match = _HEREDOC_WORD_RE.match(a)
                if match and match.group(2) in bodies:
                    commands.extend(split_commands(bodies.pop(match.group(2))))
    return commands


def _quote(word: str) -> str:
    return "'" + word.replace("'", "'\\''") + "'"


# --- package managers --------------------------------------------------------------------

APT = frozenset({"apt-get", "apt", "aptitude"})
YUM = frozenset({"yum", "dnf", "microdnf", "tdnf"})
APK = frozenset({"apk"})
PIP = frozenset({"pip", "pip3"})

_APT_VALUE_OPTS = frozenset({"-o", "-c", "-t", "--target-release", "--option", "--config-file"})
_YUM_VALUE_OPTS = frozenset(
    {"--setopt", "--enablerepo", "--disablerepo", "--releasever", "-c", "--config",
     "--installroot", "--repo", "--repofrompath", "-d", "-e", "-x", "--exclude"}
)  # fmt: skip
_APK_VALUE_OPTS = frozenset(
    {"-t", "--virtual", "-X", "--repository", "-p", "--root", "--arch", "--cache-dir",
     "--keys-dir", "--repositories-file"}
)  # fmt: skip
_PIP_VALUE_OPTS = frozenset(
    {"-r", "--requirement", "-c", "--constraint", "-i", "--index-url", "--extra-index-url",
     "-f", "--find-links", "-t", "--target", "--prefix", "--root", "-e", "--editable"}
)  # fmt: skip


@dataclass(frozen=True)
class PackageAction:
    """An install or removal by a package manager: ``manager`` is apt, yum, apk or pip."""

    manager: str
    action: str  # "install" or "remove"
    packages: tuple[str, ...]
    command: SimpleCommand


def package_action(command: SimpleCommand) -> PackageAction | None:
    """What ``command`` does with packages, if anything.

    >>> package_action(split_commands("apt-get -y install --no-install-recommends gcc")[0])
    ... # doctest: +ELLIPSIS
    PackageAction(manager='apt', action='install', packages=('gcc',), ...)
    >>> package_action(split_commands("apk add --virtual .deps gcc")[0]).packages
    ('.deps', 'gcc')
    """
    return _package_action(command)


@functools.lru_cache(maxsize=65536)
def _package_action(command: SimpleCommand) -> PackageAction | None:
    # Cached: every package rule asks about every command (cleared by clear_cache()).
    program = command.program
    if program in APT:
        words = command.positionals(_APT_VALUE_OPTS)
        verbs = {"install": "install", "remove": "remove", "purge": "remove",
                 "autoremove": "remove"}  # fmt: skip
        if words and words[0] in verbs:
            return PackageAction("apt", verbs[words[0]], tuple(words[1:]), command)
    elif program in YUM:
        words = command.positionals(_YUM_VALUE_OPTS)
        verbs = {"install": "install", "groupinstall": "install", "reinstall": "install",
                 "remove": "remove", "erase": "remove", "autoremove": "remove",
                 "groupremove": "remove"}  # fmt: skip
        if words and words[0] in verbs:
            return PackageAction("yum", verbs[words[0]], tuple(words[1:]), command)
    elif program in APK:
        words = command.positionals(_APK_VALUE_OPTS)
        if words and words[0] in ("add", "del"):
            packages = list(words[1:])
            for i, arg in enumerate(command.args[:-1]):
                if arg in ("-t", "--virtual"):
                    packages.insert(0, command.args[i + 1])
            action = "install" if words[0] == "add" else "remove"
            return PackageAction("apk", action, tuple(packages), command)
    elif program in PIP or (program.startswith("python") and command.args[:2] == ("-m", "pip")):
        args = command.args[2:] if not program.startswith("pip") else command.args
        sub = SimpleCommand(("pip", *args))
        words = sub.positionals(_PIP_VALUE_OPTS)
        if words and words[0] in ("install", "uninstall"):
            action = "install" if words[0] == "install" else "remove"
            return PackageAction("pip", action, tuple(words[1:]), sub)
    return None


def cache_mounts(instruction: Instruction) -> list[str]:
    """Targets of ``RUN --mount=type=cache,target=...`` (their content is not in the layer)."""
    targets: list[str] = []
    for flag in instruction.flags:
        if not flag.startswith("--mount="):
            continue
        fields = dict(
            part.partition("=")[::2] for part in flag[len("--mount=") :].split(",") if part
        )
        if fields.get("type") == "cache":
            target = fields.get("target") or fields.get("dst") or fields.get("destination")
            if target:
                targets.append(target.rstrip("/") or "/")
    return targets


def resolve(path: str, cwd: str) -> str:
    """``path`` made absolute against ``cwd``, normalised.

    >>> resolve("app.tgz", "/tmp"), resolve("/a/../b/", "/x")
    ('/tmp/app.tgz', '/b')
    """
    if not path.startswith("/"):
        path = posixpath.join(cwd or "/", path)
    return posixpath.normpath(path)


def workdirs(stage: Stage) -> dict[int, str]:
    """The working directory in effect at each instruction line of ``stage``."""
    cwd = "/"
    out: dict[int, str] = {}
    for instruction in stage.instructions:
        out[instruction.line] = cwd
        if instruction.cmd == "WORKDIR" and instruction.args:
            cwd = resolve(instruction.args[0], cwd)
    return out


def image_name(reference: str) -> tuple[str, str | None, str | None]:
    """Split an image reference into (repository, tag, digest), Docker Hub names short.

    A name docker accepts is read by :class:`tagger.registry.reference.Reference`, the one
    parser of image names. The linter must not stop at what it cannot parse (``FROM
    ${BASE}``, a mistyped name: other rules still apply), so anything else is split the
    lenient way: ``@`` starts the digest, the last ``:`` after the last ``/`` the tag.

    >>> image_name("docker.io/library/python:3.12-slim@sha256:ab")
    ('python', '3.12-slim', 'sha256:ab')
    >>> image_name("localhost:5000/team/app"), image_name("index.docker.io/team/app:1")
    (('localhost:5000/team/app', None, None), ('team/app', '1', None))
    >>> image_name("${REGISTRY}/App:${TAG}")
    ('${registry}/app', '${TAG}', None)
    """
    try:
        ref = Reference.parse(reference)
    except InvalidReferenceError:
        return _lenient_name(reference)
    name = ref.repository.removeprefix("library/") if ref.registry == DOCKER_HUB else ref.name
    return name.lower(), ref.tag, ref.digest  # host names are case-insensitive


def _lenient_name(reference: str) -> tuple[str, str | None, str | None]:
    name, _, digest = reference.partition("@")
    tag = None
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
    for prefix in ("docker.io/library/", "index.docker.io/library/", "library/", "docker.io/"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    return name.lower(), tag, digest or None
