"""Package manager rules: IMG006 (apt recommends), IMG007 (dnf weak deps/docs),
IMG008 (package cache left in the layer). Pure.

Follows hadolint's DL3015 (``--no-install-recommends``), DL3009/DL3019/DL3032/DL3040
(clean the cache in the same RUN), and Red Hat's UBI guidance for ``install_weak_deps``
and ``tsflags=nodocs``. A ``RUN --mount=type=cache`` on the cache directory keeps the
cache out of the layer, so it counts as clean
(https://docs.docker.com/build/cache/optimize/#use-cache-mounts).
"""

from __future__ import annotations

from collections.abc import Iterator

from tagger.lint.facts import PackageAction, cache_mounts, package_action, run_commands
from tagger.lint.findings import Rule, Severity
from tagger.lint.parser import Dockerfile, Instruction
from tagger.lint.shell import SimpleCommand


def _runs(df: Dockerfile) -> Iterator[tuple[Instruction, list[SimpleCommand]]]:
    for instruction in df.instructions:
        if instruction.cmd == "RUN":
            yield instruction, run_commands(instruction)


def _installs(commands: list[SimpleCommand], manager: str) -> list[PackageAction]:
    return [
        a
        for c in commands
        if (a := package_action(c)) and a.manager == manager and a.action == "install"
    ]


def check_apt_recommends(df: Dockerfile) -> Iterator[tuple[int, str]]:
    """IMG006: ``apt-get install`` without ``--no-install-recommends`` pulls in
    recommended packages nobody asked for.

    Catches ``apt-get install -y curl``; not ``apt-get -y install --no-install-recommends
    curl``, ``-o APT::Install-Recommends=false``, or an earlier RUN that wrote
    ``APT::Install-Recommends "false"`` into apt.conf.d.
    Fix: ``apt-get install -y --no-install-recommends ...``.
    """
    configured = False
    for instruction, commands in _runs(df):
        if "Install-Recommends" in instruction.text and any(
            v in instruction.text for v in ('"0"', '"false"', "false", "=0")
        ):
            configured = True
        for action in _installs(commands, "apt"):
            command = action.command
            options = " ".join(command.args)
            if configured or command.has_flag("--no-install-recommends"):
                continue
            if "Install-Recommends=false" in options or "Install-Recommends=0" in options:
                continue
            if command.program == "aptitude":
                continue
            yield instruction.line, f"{command.program} install without --no-install-recommends"


def check_dnf_weak_deps(df: Dockerfile) -> Iterator[tuple[int, str]]:
    """IMG007: yum/dnf/microdnf install without ``install_weak_deps=false`` or
    ``tsflags=nodocs`` (either one satisfies it; yum has no weak dependencies).

    Catches ``dnf install -y httpd``; not ``dnf install -y --setopt=install_weak_deps=False
    httpd``, ``microdnf install --nodocs x``, ``yum install --setopt=tsflags=nodocs x``.
    Fix: add ``--setopt=install_weak_deps=0 --setopt=tsflags=nodocs`` (``--nodocs``).
    """
    for instruction, commands in _runs(df):
        for action in _installs(commands, "yum"):
            options = " ".join(action.command.args).lower()
            if (
                "install_weak_deps=false" in options
                or "install_weak_deps=0" in options
                or "tsflags=nodocs" in options
                or action.command.has_flag("--nodocs")
            ):
                continue
            yield (
                instruction.line,
                f"{action.command.program} install without --setopt=install_weak_deps=0 "
                "or --setopt=tsflags=nodocs",
            )


def _removes(commands: list[SimpleCommand], prefix: str) -> bool:
    return any(
        c.program == "rm" and any(p.startswith(prefix) for p in c.positionals()) for c in commands
    )


def _cached(instruction: Instruction, prefix: str) -> bool:
    return any(prefix.startswith(t) or t.startswith(prefix) for t in cache_mounts(instruction))


def check_cache_cleaned(df: Dockerfile) -> Iterator[tuple[int, str]]:
    """IMG008: the package manager's cache stays in the layer.

    Catches apt-get install without ``rm -rf /var/lib/apt/lists/*`` in the same RUN,
    yum/dnf/microdnf install without ``clean all`` (or ``rm -rf /var/cache/{yum,dnf}``),
    ``apk add`` without ``--no-cache`` (or ``rm -rf /var/cache/apk/*``). Not a RUN with a
    ``--mount=type=cache`` on that directory.
    Fix: clean in the same RUN, or mount the cache directory as a cache.
    """
    for instruction, commands in _runs(df):
        if _installs(commands, "apt") and not (
            _removes(commands, "/var/lib/apt/lists") or _cached(instruction, "/var/lib/apt")
        ):
            yield instruction.line, "apt lists are left in the layer: rm -rf /var/lib/apt/lists/*"
        if _installs(commands, "yum"):
            cleaned = any(
                c.program in ("yum", "dnf", "microdnf", "tdnf")
                and c.positionals()[:2] == ["clean", "all"]
                for c in commands
            )
            if not (
                cleaned
                or _removes(commands, "/var/cache/yum")
                or _removes(commands, "/var/cache/dnf")
                or _cached(instruction, "/var/cache/yum")
                or _cached(instruction, "/var/cache/dnf")
            ):
                yield instruction.line, "yum/dnf cache is left in the layer: run clean all"
        for action in _installs(commands, "apk"):
            if not (
                action.command.has_flag("--no-cache")
                or _removes(commands, "/var/cache/apk")
                or _cached(instruction, "/var/cache/apk")
                or _cached(instruction, "/etc/apk/cache")
            ):
                yield instruction.line, "apk add without --no-cache leaves the index in the layer"
                break


RULES = (
    Rule(
        "IMG006",
        Severity.WARNING,
        "apt-get install without --no-install-recommends",
        "apt-get install -y --no-install-recommends PACKAGES",
        check_apt_recommends,
    ),
    Rule(
        "IMG007",
        Severity.WARNING,
        "yum/dnf/microdnf install without install_weak_deps=false or tsflags=nodocs",
        "add --setopt=install_weak_deps=0 --setopt=tsflags=nodocs (microdnf: --nodocs)",
        check_dnf_weak_deps,
    ),
    Rule(
        "IMG008",
        Severity.WARNING,
        "package cache not cleaned in the same RUN",
        "apt: && rm -rf /var/lib/apt/lists/*; yum/dnf: && dnf clean all; apk: --no-cache; "
        "or RUN --mount=type=cache on the cache directory",
        check_cache_cleaned,
    ),
)
