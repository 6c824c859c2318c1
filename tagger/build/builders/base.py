"""The builder interface: what ``build-push`` asks of docker, BuildKit or buildah. Pure.

A :class:`Builder` turns a :class:`BuildRequest` (one frozen value: context, Dockerfile,
name, build args, target, labels, secrets, platforms, network) into :class:`Built`
images, one per platform, in its own local store; it can squash one, push one to a tag
(returning the digest the registry stored) and forget one. Everything that guards the
tag (claim, checks, verify, aliases) is ``tagger.build.publish``'s, never a builder's.

Each builder declares :class:`Capabilities`; :meth:`Builder.check` turns an option the
builder cannot honour into a :class:`~tagger.errors.UsageError` (exit 2) naming the
builder, before anything is claimed. Option values are parsed here, at the boundary,
by pure functions (:func:`parse_secret`, :func:`parse_platforms`).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from tagger.build.cache import CacheSpec
from tagger.errors import UsageError, register_secret
from tagger.registry.platform import Platform

Progress = Callable[[str], None]

#: The builders ``--builder`` names, in the order ``auto`` tries them.
BUILDER_NAMES = ("buildkit", "docker", "buildah")
#: What a secret file may hold and still be registered for redaction (larger files are
#: keys or archives that a build log would not echo whole).
MAX_REDACTED_SECRET_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class SecretSpec:
    """``--secret id=ID,src=PATH`` or ``--secret id=ID,env=VAR``, as buildx spells it."""

    id: str
    src: str | None = None
    env: str | None = None


def parse_secret(text: str) -> SecretSpec:
    """Parse one ``--secret`` value (buildx's syntax: ``type=file|env`` optional,
    ``source`` for ``src``).

    >>> parse_secret("id=npm,src=/run/npmrc")
    SecretSpec(id='npm', src='/run/npmrc', env=None)
    >>> parse_secret("id=tok,env=GITHUB_TOKEN")
    SecretSpec(id='tok', src=None, env='GITHUB_TOKEN')
    >>> parse_secret("type=env,id=tok,source=TOKEN")
    SecretSpec(id='tok', src=None, env='TOKEN')
    >>> parse_secret("id=x")
    Traceback (most recent call last):
    ...
    tagger.errors.UsageError: --secret 'id=x' needs src=PATH or env=VAR (e.g. id=npm,src=.npmrc)
    >>> parse_secret("src=/a")
    Traceback (most recent call last):
    ...
    tagger.errors.UsageError: --secret 'src=/a' has no id= (e.g. id=npm,src=.npmrc)
    >>> parse_secret("id=a,src=/a,env=B")
    Traceback (most recent call last):
    ...
    tagger.errors.UsageError: --secret 'id=a,src=/a,env=B' names both src and env: pick one
    """
    example = "(e.g. id=npm,src=.npmrc)"
    fields: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        if not sep or not value or key not in ("id", "src", "source", "env", "type"):
            raise UsageError(f"--secret {text!r} is not id=ID,src=PATH or id=ID,env=VAR")
        key = "src" if key == "source" else key
        if key in fields:
            raise UsageError(f"--secret {text!r} gives {key}= twice")
        fields[key] = value
    kind = fields.pop("type", None)
    if kind not in (None, "file", "env"):
        raise UsageError(f"--secret {text!r}: type must be file or env")
    if kind == "env" and "src" in fields and "env" not in fields:
        fields["env"] = fields.pop("src")
    if "id" not in fields:
        raise UsageError(f"--secret {text!r} has no id= {example}")
    if "src" in fields and "env" in fields:
        raise UsageError(f"--secret {text!r} names both src and env: pick one")
    if "src" not in fields and "env" not in fields:
        raise UsageError(f"--secret {text!r} needs src=PATH or env=VAR {example}")
    if not all(c.isalnum() or c in "-_." for c in fields["id"]):
        raise UsageError(f"--secret {text!r}: an id is letters, digits, '-', '_' and '.'")
    return SecretSpec(fields["id"], fields.get("src"), fields.get("env"))


@dataclass(frozen=True, slots=True)
class Secret:
    """A secret ready for a builder: always a file (an ``env=`` secret is written to a
    private temporary file by the caller, so every builder takes the same form)."""

    id: str
    path: str


def load_secrets(specs: Sequence[SecretSpec], env: Mapping[str, str]) -> dict[str, bytes]:
    """Each secret's value by id, registered for redaction. A file that does not exist, an
    unset variable or a repeated id is a :class:`UsageError` (exit 2). Does I/O (reads)."""
    values: dict[str, bytes] = {}
    for spec in specs:
        if spec.id in values:
            raise UsageError(f"--secret id={spec.id} is given twice")
        if spec.env is not None:
            if spec.env not in env:
                raise UsageError(f"--secret id={spec.id}: the variable {spec.env} is not set")
            value = env[spec.env].encode()
        else:
            assert spec.src is not None
            path = os.path.expanduser(spec.src)
            if not os.path.isfile(path):
                raise UsageError(f"--secret id={spec.id}: {spec.src} is no such file")
            try:
                with open(path, "rb") as fh:
                    value = fh.read()
            except OSError as exc:
                raise UsageError(
                    f"--secret id={spec.id}: cannot read {spec.src}: {exc.strerror}"
                ) from None
        values[spec.id] = value
        register_value(value)
    return values


def register_value(value: bytes) -> None:
    """Register a secret's text (and its lines) so that no output ever shows it."""
    if len(value) > MAX_REDACTED_SECRET_BYTES:
        return
    text = value.decode("utf-8", errors="replace")
    register_secret(text)
    register_secret(text.strip())
    for line in text.splitlines():
        register_secret(line.strip())


#: Operating systems and architectures of OCI platforms (Go's GOOS/GOARCH that images
#: use): a typo such as ``linux/amd46`` is bad input, not a build that fails later.
KNOWN_OS = frozenset({"linux", "windows", "freebsd", "darwin", "solaris", "illumos", "wasip1"})
KNOWN_ARCH = frozenset(
    {
        "amd64",
        "arm64",
        "arm",
        "386",
        "ppc64le",
        "ppc64",
        "s390x",
        "riscv64",
        "mips64le",
        "mips64",
        "mipsle",
        "mips",
        "loong64",
        "wasm",
    }
)


def parse_platforms(values: Sequence[str]) -> tuple[Platform, ...]:
    """``--platform`` values (each may be a comma list) as platforms, in order.

    >>> [str(p) for p in parse_platforms(["linux/amd64,linux/arm64", "linux/arm/v7"])]
    ['linux/amd64', 'linux/arm64', 'linux/arm/v7']
    >>> parse_platforms(["linux/amd46"])
    Traceback (most recent call last):
    ...
    tagger.errors.UsageError: --platform linux/amd46: unknown architecture amd46 (e.g. amd64, arm64)
    >>> parse_platforms(["linux/amd64,linux/amd64"])
    Traceback (most recent call last):
    ...
    tagger.errors.UsageError: --platform linux/amd64 is given twice
    """
    found: list[Platform] = []
    for value in values:
        for item in value.split(","):
            platform = Platform.parse(item)
            if platform.os not in KNOWN_OS:
                raise UsageError(f"--platform {item}: unknown operating system {platform.os}")
            if platform.architecture not in KNOWN_ARCH:
                raise UsageError(
                    f"--platform {item}: unknown architecture {platform.architecture} "
                    "(e.g. amd64, arm64)"
                )
            if platform in found:
                raise UsageError(f"--platform {platform} is given twice")
            found.append(platform)
    return tuple(found)


@dataclass(frozen=True)
class BuildRequest:
    """One build, as every builder takes it. ``name`` is the local name of the result
    (``registry/repository:imgtag-build-HEX``): unique to this run, so another job on the
    same engine or store cannot swap the image between build and push."""

    context: str
    dockerfile: str | None
    name: str
    build_args: Mapping[str, str] = field(default_factory=dict)
    target: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    secrets: tuple[Secret, ...] = ()
    platforms: tuple[Platform, ...] = ()
    network: str | None = None
    cache_from: tuple[CacheSpec, ...] = ()
    cache_to: tuple[CacheSpec, ...] = ()
    no_cache: bool = False
    pull: bool = False
    #: ``false``, ``min``, ``max``, or None for the builder's own default.
    provenance: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)

    def for_platform(self, platform: Platform | None) -> BuildRequest:
        """The same build for one platform, under a name of that platform's own."""
        from dataclasses import replace

        if platform is None:
            return self
        suffix = str(platform).replace("/", "-")
        return replace(self, name=f"{self.name}-{suffix}", platforms=(platform,))


@dataclass(frozen=True, slots=True)
class Built:
    """One image a builder made: its ID (the config's digest), the local name it has, and
    the platform asked for (``None``: the builder's default)."""

    image_id: str
    name: str
    platform: Platform | None = None


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a builder can honour; anything else is exit 2 naming the builder."""

    secrets: bool
    platform: bool  # one --platform
    platforms: bool  # several --platform (an index)
    network: bool
    cache_mounts: bool
    #: The cache types ``--cache-from`` / ``--cache-to`` may name (``tagger.build.cache``).
    cache_from: frozenset[str] = frozenset()
    cache_to: frozenset[str] = frozenset()
    no_cache: bool = False
    pull: bool = False
    #: Makes provenance attestations (``--provenance min|max``; ``false`` is always fine).
    provenance: bool = False
    annotations: bool = False


def check_request(name: str, cap: Capabilities, request: BuildRequest) -> None:
    """Refuse (exit 2, naming the builder) an option it cannot honour. Pure.

    >>> docker = Capabilities(False, False, False, True, False)
    >>> check_request("docker", docker, BuildRequest(".", None, "a:b", network="none"))
    >>> check_request("docker", docker, BuildRequest(".", None, "a:b",
    ...               platforms=(Platform("linux", "arm64"),)))
    Traceback (most recent call last):
    ...
    tagger.errors.UsageError: the docker builder cannot honour --platform: use ...
    """
    who = f"the {name} builder"
    others = "use --builder buildkit or buildah"
    if request.secrets and not cap.secrets:
        raise UsageError(f"{who} cannot pass --secret to a build: {others}")
    if len(request.platforms) > 1 and not cap.platforms:
        raise UsageError(f"{who} cannot build several platforms: {others}")
    if request.platforms and not cap.platform:
        raise UsageError(f"{who} cannot honour --platform: {others}")
    if request.network is not None and not cap.network:
        raise UsageError(f"{who} cannot honour --network")
    for option, specs, types in (
        ("--cache-from", request.cache_from, cap.cache_from),
        ("--cache-to", request.cache_to, cap.cache_to),
    ):
        for spec in specs:
            if spec.type not in types:
                can = f"it takes {', '.join(sorted(types))}" if types else "it has no such cache"
                raise UsageError(
                    f"{who} cannot honour {option} {spec.buildx()} ({can}): use --builder buildkit"
                )
    if request.no_cache and not cap.no_cache:
        raise UsageError(f"{who} cannot honour --no-cache")
    if request.pull and not cap.pull:
        raise UsageError(f"{who} cannot honour --pull")
    if request.provenance not in (None, "false") and not cap.provenance:
        raise UsageError(
            f"{who} makes no provenance attestations: --provenance {request.provenance} needs "
            "--builder buildkit through docker buildx (or pass --provenance false)"
        )
    if request.annotations and not cap.annotations:
        raise UsageError(f"{who} cannot honour --annotation: use --builder buildkit or buildah")


class Builder(ABC):
    """A way to build images. Subclasses say their ``name`` and ``capabilities``."""

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities]

    def check(self, request: BuildRequest) -> None:
        """Refuse (exit 2, naming this builder) what it cannot honour. Pure."""
        check_request(self.name, self.capabilities, request)

    @abstractmethod
    def build(self, request: BuildRequest, progress: Progress) -> list[Built]:
        """Build ``request``: one image per platform (one image when none is asked for)."""

    @abstractmethod
    def squash(
        self, image: Built, known_base: str | None, progress: Progress
    ) -> tuple[Built, dict[str, Any]]:
        """The image with its own layers above ``known_base`` (the FROM image, when the
        Dockerfile names one) merged into one, and what was done (``squash`` in json)."""

    @abstractmethod
    def push(self, image: Built, repository: str, tag: str, progress: Progress) -> str:
        """Push exactly ``image`` to ``repository:tag`` (``registry/path``); return the
        manifest digest the registry stored."""

    @abstractmethod
    def discard(self, image: Built) -> None:
        """Forget the local name(s) this run gave ``image`` (never raises)."""

    def pushes_by_building(self, *, squash: bool) -> bool:
        """Whether this builder publishes through :meth:`build_and_push` (its build writes
        the registry itself) rather than :meth:`build` then :meth:`push`."""
        return False

    def build_and_push(self, request: BuildRequest, name: str, progress: Progress) -> Built:
        """Build ``request`` (every platform at once) and push the result straight to
        ``name`` (``registry/repository:TEMP``, a temporary tag of the run); the returned
        :class:`Built`'s ``image_id`` is the digest the registry stored (a manifest or the
        builder's own index, attestations included). Only where
        :meth:`pushes_by_building` says so."""
        raise NotImplementedError(f"the {self.name} builder builds locally, then pushes")

    def forget(self, repository: str, tag: str) -> None:  # noqa: B027 (optional hook)
        """Forget the local name ``repository:tag`` that :meth:`push` gave (never raises).

        For the run's temporary per-platform tags; builders that push by image ID and name
        nothing locally need nothing here."""

    def cancel(self) -> None:  # noqa: B027 (optional hook)
        """Stop a build in progress (called from a signal handler: quick, never raises).

        Builders that run a program need nothing here: the interrupted read of its output
        terminates it (``tagger.proc.Runner.stream``)."""

    def close(self) -> None:  # noqa: B027 (optional hook: temporary files of a run)
        """Remove what the builder made for this run only (temporary files)."""


def cli_build_flags(request: BuildRequest) -> list[str]:
    """The flags ``docker build``/``buildx build`` and ``buildah bud`` share, for a request
    (the same spelling in both CLIs: buildah follows docker's).

    >>> cli_build_flags(BuildRequest("ctx", "ctx/Dockerfile", "r/a:b", build_args={"A": "1"},
    ...                              target="app", network="host"))
    ['-f', 'ctx/Dockerfile', '--build-arg', 'A=1', '--target', 'app', '--network', 'host']
    """
    argv: list[str] = []
    if request.dockerfile:
        argv += ["-f", request.dockerfile]
    for key, value in request.build_args.items():
        argv += ["--build-arg", f"{key}={value}"]
    if request.target:
        argv += ["--target", request.target]
    for key, value in request.labels.items():
        argv += ["--label", f"{key}={value}"]
    for secret in request.secrets:
        argv += ["--secret", f"id={secret.id},src={secret.path}"]
    for platform in request.platforms:
        argv += ["--platform", str(platform)]
    if request.network:
        argv += ["--network", request.network]
    return argv
