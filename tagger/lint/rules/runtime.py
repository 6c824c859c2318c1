"""Runtime rules: IMG010 (toolchains in the final image), IMG011 (an init as PID 1),
IMG013 (shell-form ENTRYPOINT/CMD). Pure.

IMG013 follows hadolint's DL3025 and the Dockerfile reference on ENTRYPOINT's shell
form ("will not receive Unix signals"). IMG011: a process that runs as PID 1 gets no
default signal handlers and must reap zombies; tini/dumb-init do both
(https://github.com/krallin/tini). ``docker run --init`` is invisible to a Dockerfile.
Only the final stage (and the stages it is built FROM) is judged: it is what ships.
"""

from __future__ import annotations

from collections.abc import Iterator

from tagger.lint.facts import image_name, package_action, run_commands
from tagger.lint.findings import Rule, Severity
from tagger.lint.parser import Dockerfile, Instruction

_TOOLCHAIN_PACKAGES = frozenset(
    {"gcc", "g++", "gcc-c++", "clang", "llvm", "make", "cmake", "build-essential",
     "build-base", "autoconf", "automake", "libtool", "golang", "go", "rust", "rustc",
     "cargo", "maven", "gradle", "gfortran", "nasm", "@development-tools",
     "development tools"}
)  # fmt: skip
_TOOLCHAIN_IMAGES = frozenset({"golang", "rust", "gcc", "maven", "gradle", "buildpack-deps"})

_INITS = frozenset(
    {"tini", "tini-static", "dumb-init", "docker-init", "catatonit", "s6-svscan",
     "runsvdir", "supervisord", "my_init", "systemd"}
)  # fmt: skip


def _chain_instructions(df: Dockerfile) -> list[Instruction]:
    """The final image's instructions, oldest stage first."""
    out: list[Instruction] = []
    for stage in reversed(df.stage_chain(df.final_stage)):
        out.extend(stage.instructions)
    return out


def _is_toolchain(package: str) -> bool:
    name = package.split("=")[0].split(">")[0].split("<")[0].lower()
    if name in _TOOLCHAIN_PACKAGES:
        return True
    return name.startswith(("openjdk-", "java-")) and ("-jdk" in name or "devel" in name)


def check_toolchain(df: Dockerfile) -> Iterator[tuple[int, str]]:
    """IMG010: compilers or build toolchains in the final stage.

    Catches ``apt-get install gcc make`` or a ``golang``/``maven`` base in the final
    stage; not the same in a builder stage that the final stage only COPYs from, nor
    toolchain packages removed again in the same RUN.
    Fix: build in a builder stage and COPY --from it the artefacts only.
    """
    root = df.stage_chain(df.final_stage)[-1]
    name, tag, _ = image_name(root.base)
    if name in _TOOLCHAIN_IMAGES or (
        name in ("openjdk", "eclipse-temurin", "amazoncorretto")
        and "jre" not in (tag or "")
        and tag is not None
        and "jdk" in tag
    ):
        yield root.from_line, f"the final image is built on the toolchain image {root.base}"
    for instruction in _chain_instructions(df):
        if instruction.cmd != "RUN":
            continue
        installed: set[str] = set()
        removed: set[str] = set()
        for command in run_commands(instruction):
            action = package_action(command)
            if action is None or action.manager == "pip":
                continue
            target = installed if action.action == "install" else removed
            target.update(p.lower() for p in action.packages)
        tools = sorted(p for p in installed - removed if _is_toolchain(p))
        if tools:
            yield instruction.line, "build toolchain in the final image: " + ", ".join(tools)


def _effective(df: Dockerfile, cmd: str) -> Instruction | None:
    found = None
    for instruction in _chain_instructions(df):
        if instruction.cmd == cmd:
            found = instruction
    return found


def _first_word(instruction: Instruction) -> str:
    if instruction.json:
        word = instruction.args[0] if instruction.args else ""
    else:
        words = instruction.text.split()
        word = words[0] if words else ""
    return word


def is_init(word: str) -> bool:
    """Whether an ENTRYPOINT's program is an init that forwards signals and reaps.

    >>> [is_init(w) for w in ("tini", "/sbin/tini", "/usr/bin/dumb-init", "/init", "node")]
    [True, True, True, True, False]
    """
    if word == "/init":  # s6-overlay
        return True
    return word.rsplit("/", 1)[-1] in _INITS


def check_init(df: Dockerfile) -> Iterator[tuple[int, str]]:
    """IMG011: the final image starts its process without an init as PID 1.

    Applies when the final stage's chain sets a CMD or ENTRYPOINT (the image runs a
    process of its own; without one, the base image's decides). ``FROM scratch`` images
    are not exempt: a static server is PID 1 there too. Catches ``ENTRYPOINT
    ["/app"]``, ``CMD ["node", "server.js"]``; not ``ENTRYPOINT ["tini", "--"]``,
    ``/sbin/tini``, ``dumb-init``, ``docker-init``, s6-overlay's ``/init``.
    Fix: ``ENTRYPOINT ["/usr/bin/tini", "--"]`` (or ``docker run --init``).
    """
    entrypoint = _effective(df, "ENTRYPOINT")
    command = _effective(df, "CMD")
    target = entrypoint if entrypoint is not None and entrypoint.args else command
    if target is None or not target.args:
        return
    word = _first_word(target)
    if is_init(word):
        return
    yield target.line, f"{target.cmd} starts {word} as PID 1 without an init (tini, dumb-init)"


def check_shell_form(df: Dockerfile) -> Iterator[tuple[int, str]]:
    """IMG013: shell-form ENTRYPOINT/CMD in the final stage: PID 1 is ``/bin/sh -c`` and
    SIGTERM never reaches the application (``docker stop`` waits, then kills).

    Catches ``CMD python app.py``, ``ENTRYPOINT /entrypoint.sh``; not the exec form
    ``CMD ["python", "app.py"]``, nor ``CMD exec python app.py`` (the shell replaces itself).
    Fix: the JSON exec form ``CMD ["python", "app.py"]``.
    """
    for instruction in df.final_stage.instructions:
        if instruction.cmd not in ("CMD", "ENTRYPOINT") or instruction.json:
            continue
        text = instruction.text.strip()
        if not text or text.startswith("exec "):
            continue
        yield instruction.line, f"shell-form {instruction.cmd}: /bin/sh is PID 1, use exec form"


RULES = (
    Rule(
        "IMG010",
        Severity.INFO,
        "compilers or build toolchains in the final stage",
        "build in a builder stage and COPY --from=builder only the artefacts",
        check_toolchain,
    ),
    Rule(
        "IMG011",
        Severity.INFO,
        "no init process as ENTRYPOINT for a long-running process",
        'ENTRYPOINT ["/usr/bin/tini", "--"] (or dumb-init) before the command',
        check_init,
    ),
    Rule(
        "IMG013",
        Severity.WARNING,
        "shell-form ENTRYPOINT/CMD",
        'use the exec form: CMD ["program", "arg"]',
        check_shell_form,
    ),
)
