"""User rules: IMG009 (``useradd -l``), IMG012 (the final stage runs as root). Pure.

IMG009 follows hadolint's DL3046: ``useradd`` without ``-l``/``--no-log-init`` and a
large UID writes a huge sparse /var/log/faillog and lastlog into the layer
(https://github.com/moby/moby/issues/5419). IMG012 follows DL3002 and the Dockerfile
best practice "USER": a container that need not be root should not be.
"""

from __future__ import annotations

from collections.abc import Iterator

from tagger.lint.facts import image_name, run_commands
from tagger.lint.findings import Rule, Severity
from tagger.lint.parser import Dockerfile, Instruction

_ROOT_NAMES = frozenset({"root", "0"})


def check_useradd(df: Dockerfile) -> Iterator[tuple[int, str]]:
    """IMG009: ``useradd`` without ``-l`` (``--no-log-init``).

    Catches ``useradd -u 10001 app``; not ``useradd -l -u 10001 app``,
    ``useradd --no-log-init -r app`` or busybox ``adduser``.
    Fix: ``useradd -l ...``.
    """
    for instruction in df.instructions:
        if instruction.cmd != "RUN":
            continue
        for command in run_commands(instruction):
            if command.program == "useradd" and not command.has_flag("-l", "--no-log-init"):
                yield instruction.line, "useradd without -l writes large lastlog/faillog files"
                break


def is_root_user(value: str) -> bool:
    """Whether a USER value means root: ``root``, ``0``, ``root:root``, ``0:0``, ``0:1000``.

    >>> [is_root_user(v) for v in ("root", "0:0", "1001", "app:root", "${U}")]
    [True, True, False, False, False]
    """
    return value.partition(":")[0].strip().lower() in _ROOT_NAMES


def _nonroot_base(base: str) -> bool:
    # distroless :nonroot tags, nginx-unprivileged/rootless images and Chainguard images
    # set a non-root USER themselves.
    name, tag, _ = image_name(base)
    return (
        "nonroot" in (tag or "")
        or any(marker in name for marker in ("unprivileged", "rootless"))
        or name.startswith("cgr.dev/chainguard/")
    )


def check_root(df: Dockerfile) -> Iterator[tuple[int, str]]:
    """IMG012: the final stage runs as root: no USER in its chain (a stage built FROM an
    earlier stage inherits that stage's USER), or the last USER is root/0.

    Catches no USER at all, ``USER root``, ``USER 0:0``; not ``USER 1001``, ``USER app``,
    a final ``FROM build`` whose ``build`` stage set ``USER app``, or a distroless
    ``:nonroot`` base. Fix: create a user and ``USER 10001`` (numeric: Kubernetes'
    runAsNonRoot can check it).
    """
    final = df.final_stage
    for stage in df.stage_chain(final):
        users: list[Instruction] = [i for i in stage.instructions if i.cmd == "USER"]
        if users:
            last = users[-1]
            if last.args and is_root_user(last.args[0]):
                yield last.line, f"the final stage runs as {last.args[0]}"
            return
    root = df.stage_chain(final)[-1]
    if _nonroot_base(root.base):
        return
    yield final.from_line, "the final stage has no USER: it runs as root"


RULES = (
    Rule(
        "IMG009",
        Severity.WARNING,
        "useradd without -l",
        "useradd -l (--no-log-init) ...",
        check_useradd,
    ),
    Rule(
        "IMG012",
        Severity.WARNING,
        "the final stage runs as root",
        "add a user and end the final stage with a numeric USER (USER 10001)",
        check_root,
    ),
)
