"""Layering rules: IMG003 (merge RUNs), IMG004 (files deleted a layer too late),
IMG005 (build packages removed a layer too late). Pure.

Every RUN is a layer; a file deleted in a later layer still ships in the earlier one
(https://docs.docker.com/build/building/best-practices/#run). IMG003 follows hadolint's
DL3059 (consecutive RUNs with the same flags).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator

from tagger.lint.facts import package_action, resolve, run_commands, workdirs
from tagger.lint.findings import Rule, Severity
from tagger.lint.parser import Dockerfile, Instruction, Stage


def check_consecutive_runs(df: Dockerfile) -> Iterator[tuple[int, str]]:
    """IMG003: consecutive RUN instructions (nothing between them but comments) that
    have the same flags can be one RUN, one layer.

    Catches ``RUN apt-get update`` / ``RUN apt-get install -y x``; not RUNs separated by
    a COPY/ENV (often deliberate, for the build cache) or with different ``--mount``s.
    Fix: join them with ``&&`` (or one heredoc). One finding at each RUN that follows
    another, at its own line, as hadolint's DL3059 reports it.
    """
    for stage in df.stages:
        previous: Instruction | None = None
        for instruction in stage.instructions:
            if instruction.cmd != "RUN":
                previous = None
                continue
            if previous is not None and previous.flags == instruction.flags:
                yield (
                    instruction.line,
                    f"this RUN directly follows the RUN at line {previous.line}: "
                    "merge them into one layer",
                )
            previous = instruction


def _downloads_and_creations(instruction: Instruction, cwd: str) -> list[str]:
    """Files a RUN (or ADD URL) fetched or wrote, as absolute paths."""
    files: list[str] = []
    if instruction.cmd == "ADD":
        sources = [a for a in instruction.args[:-1] if "://" in a]
        if sources and instruction.args:
            dest = resolve(instruction.args[-1], cwd)
            for url in sources:
                # "ADD url /tmp" lands in /tmp/<name> when /tmp is a directory
                files.append(resolve(url.rstrip("/").rsplit("/", 1)[-1], dest))
                if not instruction.args[-1].endswith("/"):
                    files.append(dest)
        return files
    for command in run_commands(instruction):
        if command.program == "cd" and command.args:
            cwd = resolve(command.args[0], cwd)
            continue
        files.extend(resolve(w, cwd) for w in command.writes if w != "/dev/null")
        args = command.args
        urls = [a for a in args if "://" in a]
        if command.program == "curl":
            for i, arg in enumerate(args):
                if arg in ("-o", "--output") and i + 1 < len(args):
                    files.append(resolve(args[i + 1], cwd))
                elif arg.startswith("--output="):
                    files.append(resolve(arg.partition("=")[2], cwd))
            if command.has_flag("-O", "--remote-name"):
                files.extend(resolve(u.split("?")[0].rsplit("/", 1)[-1], cwd) for u in urls)
        elif command.program == "wget":
            target = None
            for i, arg in enumerate(args):
                if arg in ("-O", "--output-document") and i + 1 < len(args):
                    target = args[i + 1]
                elif arg.startswith(("--output-document=", "-O")) and len(arg) > 2:
                    target = arg.partition("=")[2] if "=" in arg else arg[2:]
            if target is None:
                files.extend(resolve(u.split("?")[0].rsplit("/", 1)[-1], cwd) for u in urls)
            elif target != "-":
                files.append(resolve(target, cwd))
        elif command.program == "git" and args[:1] == ("clone",) and urls:
            rest = [a for a in args[1:] if not a.startswith("-")]
            after = rest[rest.index(urls[0]) + 1 :] if urls[0] in rest else []
            name = after[0] if after else urls[0].rstrip("/").rsplit("/", 1)[-1]
            files.append(resolve(name.removesuffix(".git"), cwd))
    return files


def _removals(instruction: Instruction, cwd: str) -> list[str]:
    removed: list[str] = []
    for command in run_commands(instruction):
        if command.program == "cd" and command.args:
            cwd = resolve(command.args[0], cwd)
        elif command.program == "rm":
            removed.extend(resolve(p, cwd) for p in command.positionals())
    return removed


def _covers(removed: str, created: str) -> bool:
    return (
        removed == created
        or created.startswith(removed.rstrip("/") + "/")
        or fnmatch.fnmatchcase(created, removed)
    )


def check_deleted_later(df: Dockerfile) -> Iterator[tuple[int, str]]:
    """IMG004: a file downloaded (``curl -o``/``-O``, ``wget``, ``ADD URL``, ``git clone``)
    or written (``> file``) in one layer and removed (``rm``) in a later RUN.

    Catches ``RUN wget https://x/a.tgz`` then ``RUN tar xzf a.tgz && rm a.tgz``; not a
    download removed in the same RUN. Paths resolve against WORKDIR and ``cd``.
    Fix: download, use and delete in one RUN, or fetch in a builder stage.
    """
    for stage in df.stages:
        yield from _deleted_later_in(stage)


# Untrusted input: bound the created-files x removals comparison (it is quadratic).
MAX_TRACKED_FILES = 512
MAX_REMOVALS_PER_RUN = 64
MAX_COMPARISONS = 200_000  # per stage


def _deleted_later_in(stage: Stage) -> Iterator[tuple[int, str]]:
    cwd_at = workdirs(stage)
    created: dict[str, int] = {}  # path -> line of the first RUN/ADD that made it
    budget = MAX_COMPARISONS
    for instruction in stage.instructions:
        if instruction.cmd not in ("RUN", "ADD"):
            continue
        cwd = cwd_at[instruction.line]
        if instruction.cmd == "RUN":
            removed = _removals(instruction, cwd)[:MAX_REMOVALS_PER_RUN]
            if budget <= 0:
                removed = []
            budget -= len(removed) * len(created)
            hits = sorted(
                {
                    (line, path)
                    for path, line in created.items()
                    for r in removed
                    if _covers(r, path)
                }
            )
            if hits:
                line, path = hits[0]
                yield (
                    instruction.line,
                    f"{path} from line {line} is deleted here, in a later layer: "
                    "it still ships in the earlier one",
                )
        for path in _downloads_and_creations(instruction, cwd):
            if len(created) < MAX_TRACKED_FILES:
                created.setdefault(path, instruction.line)


def check_packages_removed_later(df: Dockerfile) -> Iterator[tuple[int, str]]:
    """IMG005: packages installed in one RUN and removed in a later RUN (build deps).

    Catches ``RUN apk add --virtual .deps gcc`` ... ``RUN apk del .deps``, apt-get
    install/purge, yum/dnf install/remove, pip install/uninstall across RUNs; not an
    install and removal in the same RUN.
    Fix: install, build and remove the build dependencies in one RUN, or use a builder stage.
    """
    for stage in df.stages:
        installed: dict[tuple[str, str], int] = {}
        for instruction in stage.instructions:
            if instruction.cmd != "RUN":
                continue
            actions = [a for c in run_commands(instruction) if (a := package_action(c))]
            removed_here: list[str] = []
            for action in actions:
                if action.action == "remove":
                    for package in action.packages:
                        line = installed.get((action.manager, package))
                        if line is not None and line != instruction.line:
                            removed_here.append(f"{package} (line {line})")
            if removed_here:
                yield (
                    instruction.line,
                    "removes packages installed by an earlier RUN, whose layer keeps them: "
                    + ", ".join(removed_here),
                )
            for action in actions:
                if action.action == "install":
                    for package in action.packages:
                        installed.setdefault((action.manager, package), instruction.line)


RULES = (
    Rule(
        "IMG003",
        Severity.INFO,
        "consecutive RUN instructions that can be merged",
        "join consecutive RUNs with && (or one heredoc) into one layer",
        check_consecutive_runs,
    ),
    Rule(
        "IMG004",
        Severity.WARNING,
        "a file downloaded or created in one RUN and deleted in a later RUN",
        "download, use and delete the file in the same RUN, or fetch it in a builder stage",
        check_deleted_later,
    ),
    Rule(
        "IMG005",
        Severity.WARNING,
        "packages installed in one RUN and removed in a later RUN",
        "install, use and remove build dependencies in one RUN, or use a builder stage",
        check_packages_removed_later,
    ),
)
