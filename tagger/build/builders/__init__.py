"""Builders: the ways ``build-push`` can build an image, behind one small interface.

- ``base``: the interface (:class:`Builder`, the :class:`BuildRequest` value, :class:`Built`,
  capabilities) and the pure parsers of ``--secret`` and ``--platform``;
- ``docker``: the Docker Engine API's classic builder (``tagger.engine``);
- ``buildkit``: BuildKit through the docker CLI (buildx, or ``DOCKER_BUILDKIT=1`` before 23.0);
- ``buildah``: daemonless ``buildah bud``, no engine at all.

:func:`choose` picks one (``auto``: buildkit, else docker, else buildah) and does the I/O
of finding out what works here: the engine answers, a docker CLI can drive BuildKit,
``buildah`` is installed.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tagger.build.builders.base import (
    BUILDER_NAMES,
    Builder,
    BuildRequest,
    Built,
    Capabilities,
    Secret,
    SecretSpec,
    load_secrets,
    parse_platforms,
    parse_secret,
)
from tagger.errors import EngineError, UsageError
from tagger.registry.platform import Platform

if TYPE_CHECKING:
    from tagger.engine import Engine
    from tagger.proc import Running

__all__ = [
    "BUILDER_NAMES",
    "BuildRequest",
    "Builder",
    "Built",
    "Capabilities",
    "Secret",
    "SecretSpec",
    "Wiring",
    "capabilities_of",
    "choose",
    "load_secrets",
    "parse_platforms",
    "parse_secret",
]


@dataclass(frozen=True)
class Wiring:
    """What the builders need from the run: the environment, the engine (created lazily),
    the target registry and its credentials, and a way to read a FROM image's layers."""

    env: Mapping[str, str]
    engine: Callable[[], Engine]
    registry: str
    auth_config: Callable[[], Mapping[str, str] | None]
    base_layers: Callable[[str, Platform | None], list[str] | None]
    #: The final FROM image when it may live on a loopback or insecure registry (buildah
    #: must then be told ``--tls-verify=false`` for it), else None.
    plain_http_base: Callable[[], str | None]
    insecure: Sequence[str] = ()
    ca_file: str | None = None
    started: Callable[[Running], None] | None = None


def choose(name: str, wiring: Wiring, log: Callable[[str], None]) -> Builder:
    """The builder ``name`` (or, for ``auto``, the first that works here). A builder that
    cannot work here is exit 6 naming what to install or start."""
    from tagger.proc import Runner

    if name not in ("auto", *BUILDER_NAMES):
        raise UsageError(f"--builder {name}: unknown builder (auto, {', '.join(BUILDER_NAMES)})")
    runner = Runner(env=wiring.env)
    if name == "docker":
        return _docker(wiring)
    if name == "buildkit":
        built = _buildkit(wiring, runner)
        if built is None:
            raise EngineError(
                "the buildkit builder needs the docker CLI with the buildx plugin (or a "
                "docker CLI older than 23.0, such as Debian's docker.io): install "
                "docker-buildx, or pick --builder docker or buildah"
            )
        return built
    if name == "buildah":
        if not _has_buildah(wiring.env):
            raise EngineError(
                "the buildah builder needs buildah: install it (apt-get install buildah, "
                "dnf install buildah), or pick --builder buildkit or docker"
            )
        return _buildah(wiring, runner)
    # auto: buildkit, else docker, else buildah.
    engine_problem = None
    try:
        wiring.engine().api  # noqa: B018 (connects: raises when nothing answers)
    except EngineError as exc:
        engine_problem = str(exc)
    if engine_problem is None:
        chosen: Builder | None = _buildkit(wiring, runner)
        why = "BuildKit through the docker CLI"
        if chosen is None:
            chosen, why = _docker(wiring), "the engine answers, no docker CLI drives BuildKit"
    elif _has_buildah(wiring.env):
        chosen, why = _buildah(wiring, runner), "no Docker engine answers, buildah is installed"
    else:
        raise EngineError(
            f"no builder works here: {engine_problem.rstrip('.')}; and buildah is not "
            "installed: start a Docker engine, or install buildah (apt-get install buildah)"
        )
    log(f"builder: {chosen.name} (auto: {why})")
    return chosen


def capabilities_of(name: str) -> Capabilities:
    """What the builder called ``name`` can honour (without finding out whether it works)."""
    if name == "docker":
        from tagger.build.builders.docker import DockerBuilder

        return DockerBuilder.capabilities
    if name == "buildkit":
        from tagger.build.builders.buildkit import BuildKitBuilder

        return BuildKitBuilder.capabilities
    if name == "buildah":
        from tagger.build.builders.buildah import BuildahBuilder

        return BuildahBuilder.capabilities
    raise UsageError(f"--builder {name}: unknown builder (auto, {', '.join(BUILDER_NAMES)})")


def _docker(wiring: Wiring) -> Builder:
    from tagger.build.builders.docker import DockerBuilder

    return DockerBuilder(wiring.engine(), wiring.auth_config)


def _buildkit(wiring: Wiring, runner: object) -> Builder | None:
    from tagger.build.builders.buildkit import BuildKitBuilder, find_cli
    from tagger.proc import Runner

    assert isinstance(runner, Runner)
    cli = find_cli(runner, wiring.env)
    if cli is None:
        return None
    from tagger.registry.reference import is_loopback_host

    cli_runner = Runner({"DOCKER_BUILDKIT": "1"}, env=wiring.env)
    return BuildKitBuilder(
        wiring.engine(),
        cli,
        cli_runner,
        wiring.auth_config,
        wiring.base_layers,
        started=wiring.started,
        plain_http=is_loopback_host(wiring.registry) or wiring.registry in wiring.insecure,
    )


def _has_buildah(env: Mapping[str, str]) -> bool:
    return shutil.which("buildah", path=env.get("PATH")) is not None


def _buildah(wiring: Wiring, runner: object) -> Builder:
    from tagger.build.builders.buildah import BuildahBuilder
    from tagger.proc import Runner

    assert isinstance(runner, Runner)
    return BuildahBuilder(
        runner,
        wiring.env,
        wiring.registry,
        credentials=wiring.auth_config,
        insecure=wiring.insecure,
        ca_file=wiring.ca_file,
        plain_http_base=wiring.plain_http_base,
        started=wiring.started,
    )
