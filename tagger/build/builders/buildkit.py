"""The ``buildkit`` builder: BuildKit through the docker CLI, images land in the engine.

Does I/O: runs the docker CLI (through ``tagger.proc``) and talks to the engine
(``tagger.engine``) for networks, squash and push. Two ways in, found by
:func:`find_cli`: ``docker buildx build --load`` where the buildx plugin exists, else
``DOCKER_BUILDKIT=1 docker build`` on a CLI older than 23.0 (those drive dockerd's
embedded BuildKit; 23.0 and later have no builder of their own without buildx). The
embedded BuildKit takes one platform per build and has no registry exporter, so a
multi-platform build is one build per platform (``tagger.build.publish`` writes the
index). BuildKit does not put the FROM image it pulls in the engine's store, so
``--squash`` reads the base image's layers from its registry.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tagger.build.builders.base import (
    BuildRequest,
    Built,
    Capabilities,
    Progress,
    check_request,
    cli_build_flags,
)
from tagger.build.builders.docker import AuthConfig, DockerBuilder
from tagger.build.cache import CACHE_TYPES, UnreadCaches
from tagger.errors import EngineError, ImageNotFoundError, redact
from tagger.registry.platform import Platform

if TYPE_CHECKING:
    from tagger.engine import Engine
    from tagger.proc import Runner, Running

#: The diff_ids of an image in its registry (for a FROM image BuildKit pulled), or None.
BaseLayers = Callable[[str, Platform | None], list[str] | None]

#: The first docker CLI release without a builder of its own (``docker build`` is buildx).
LEGACY_BUILDKIT_BEFORE = 23


@dataclass(frozen=True, slots=True)
class DockerCli:
    """A docker CLI that can drive BuildKit: ``buildx`` or the legacy ``DOCKER_BUILDKIT=1``."""

    path: str
    buildx: bool
    version: str


def client_major(version: str) -> int | None:
    """The major version of a ``docker version`` client string.

    >>> client_major("20.10.24+dfsg1"), client_major("28.2.2"), client_major("dev")
    (20, 28, None)
    """
    head = version.strip().split(".", 1)[0]
    return int(head) if head.isdigit() else None


def find_cli(runner: Runner, env: Mapping[str, str]) -> DockerCli | None:
    """The docker CLI to build with: one with buildx first, else one older than 23.0.

    Looks at ``docker`` on ``PATH`` and at the usual install places (a distribution's
    ``/usr/bin/docker`` may be older than a newer one earlier on ``PATH``).
    """
    candidates: list[str] = []
    seen: set[str] = set()
    for path in (
        shutil.which("docker", path=env.get("PATH")),
        "/usr/bin/docker",
        "/usr/local/bin/docker",
    ):
        if path and os.access(path, os.X_OK) and os.path.realpath(path) not in seen:
            seen.add(os.path.realpath(path))
            candidates.append(path)
    legacy: DockerCli | None = None
    for path in candidates:
        # buildx first: it answers without asking the engine, and where it works the
        # client's version does not matter (one process less on every build-push).
        buildx = runner.run([path, "buildx", "version"], timeout=20)
        if buildx.ok:
            words = buildx.stdout.split()
            return DockerCli(path, True, f"buildx {words[1]}" if len(words) > 1 else "buildx")
        answer = runner.run([path, "version", "--format", "{{.Client.Version}}"], timeout=20)
        version = answer.stdout.strip().splitlines()[0] if answer.stdout.strip() else ""
        major = client_major(version)
        if legacy is None and major is not None and major < LEGACY_BUILDKIT_BEFORE:
            legacy = DockerCli(path, False, version)
    return legacy


def build_argv(
    cli: DockerCli, request: BuildRequest, iidfile: str, *, plain_http: bool = False
) -> list[str]:
    """The docker CLI command line of one BuildKit build. Pure.

    >>> from tagger.build.builders.base import Secret
    >>> req = BuildRequest(".", None, "r/a:b", {"A": "1"}, None, {"l": "v"},
    ...                    (Secret("tok", "/s"),), (Platform("linux", "arm64"),), "host")
    >>> " ".join(build_argv(DockerCli("docker", False, "20.10"), req, "/iid"))
    'docker build --progress plain --iidfile /iid -t r/a:b --build-arg A=1 --label l=v \
--secret id=tok,src=/s --platform linux/arm64 --network host .'
    """
    argv = [cli.path, *(["buildx", "build", "--load"] if cli.buildx else ["build"])]
    argv += ["--progress", "plain", "--iidfile", iidfile, "-t", request.name]
    argv += cli_build_flags(request)
    if cli.buildx:
        from tagger.registry.reference import is_loopback_host

        argv += buildx_flags(request, plain_http=lambda host: plain_http and is_loopback_host(host))
    else:  # the 20.10 CLI: --cache-from IMAGE (inline caches), no exporters
        for spec in request.cache_from:
            argv += ["--cache-from", str(spec.ref)]
        argv += (["--no-cache"] if request.no_cache else []) + (["--pull"] if request.pull else [])
    argv.append(request.context)
    return argv


def buildx_flags(request: BuildRequest, *, plain_http: Callable[[str], bool]) -> list[str]:
    """The cache, provenance and annotation flags of ``docker buildx build``. Pure.

    A registry cache on a plain-HTTP registry (``plain_http(host)``) gets
    ``registry.insecure=true``, as the image output does. The OCI labels are also written
    as annotations of the manifest, unless ``--annotation`` gives the same key.

    >>> from tagger.build.cache import parse_cache
    >>> req = BuildRequest(".", None, "r/a:b", labels={"org.opencontainers.image.version": "1"},
    ...     cache_from=(parse_cache("127.0.0.1:5000/a:c", "--cache-from"),),
    ...     cache_to=(parse_cache("type=inline", "--cache-to"),), no_cache=True,
    ...     provenance="max", annotations={"k": "v"})
    >>> print(" ".join(buildx_flags(req, plain_http=lambda host: host.startswith("127."))))
    --cache-from type=registry,ref=127.0.0.1:5000/a:c,registry.insecure=true \
--cache-to type=inline --no-cache --provenance=mode=max --annotation k=v \
--annotation org.opencontainers.image.version=1
    """
    from tagger.registry.reference import Reference

    argv: list[str] = []
    for option, specs in (("--cache-from", request.cache_from), ("--cache-to", request.cache_to)):
        for spec in specs:
            if (
                spec.type == "registry"
                and spec.ref
                and plain_http(Reference.parse(spec.ref).registry)
            ):
                spec = spec.with_attr("registry.insecure", "true")
            argv += [option, spec.buildx()]
    if request.no_cache:
        argv.append("--no-cache")
    if request.pull:
        argv.append("--pull")
    if request.provenance == "false":
        argv.append("--provenance=false")
    elif request.provenance is not None:
        argv.append(f"--provenance=mode={request.provenance}")
    annotations = dict(request.annotations)
    for key, value in request.labels.items():
        if key.startswith("org.opencontainers.image.") and "\n" not in value:
            annotations.setdefault(key, value)
    for key, value in annotations.items():
        argv += ["--annotation", f"{key}={value}"]
    return argv


def buildx_push_argv(
    cli: DockerCli, request: BuildRequest, name: str, metadata_file: str, *, plain_http: bool
) -> list[str]:
    """``docker buildx build`` that pushes to ``name`` itself: one build for every platform,
    the registry gets BuildKit's own manifest or index (attestations included). Pure.

    The docker driver refuses ``push-by-digest=true`` ("not implemented for docker
    driver"), so ``name`` is a temporary tag of the run; ``tagger.build.publish`` writes
    the final tag from it. ``registry.insecure=true`` lets BuildKit use a plain-HTTP or
    loopback registry (it tries TLS first).

    >>> req = BuildRequest(".", None, "r/a:b", platforms=(Platform("linux", "amd64"),
    ...                    Platform("linux", "arm64")), network="host")
    >>> " ".join(buildx_push_argv(DockerCli("docker", True, "26.1"), req, "r/a:t", "/m",
    ...                           plain_http=True))
    'docker buildx build --progress plain --metadata-file /m --output \
type=image,name=r/a:t,push=true,registry.insecure=true --platform linux/amd64 \
--platform linux/arm64 --network host .'
    """
    from tagger.registry.reference import is_loopback_host

    output = f"type=image,name={name},push=true"
    if plain_http:
        output += ",registry.insecure=true"
    argv = [cli.path, "buildx", "build", "--progress", "plain", "--metadata-file", metadata_file]
    argv += ["--output", output]
    argv += cli_build_flags(request)
    argv += buildx_flags(request, plain_http=lambda host: plain_http and is_loopback_host(host))
    argv.append(request.context)
    return argv


def metadata_digest(text: str) -> str:
    """The digest buildx's ``--metadata-file`` reports it pushed, else ``""``. Pure.

    >>> metadata_digest('{"containerimage.digest": "sha256:' + "a" * 64 + '"}')[:9]
    'sha256:aa'
    >>> metadata_digest("{}"), metadata_digest("not json")
    ('', '')
    """
    import json

    try:
        doc = json.loads(text)
    except ValueError:
        return ""
    digest = doc.get("containerimage.digest") if isinstance(doc, dict) else None
    if not isinstance(digest, str) or not digest.startswith("sha256:") or len(digest) != 71:
        return ""
    return digest


def failure(lines: Sequence[str]) -> str:
    """The sentence a failed build ends with: BuildKit's last error line. Pure.

    >>> failure(["#5 0.1 hi", "error: failed to solve: executor failed: exit code: 1", ""])
    'failed to solve: executor failed: exit code: 1'
    >>> failure(["just this"])
    'just this'
    """
    text = [line.strip() for line in lines if line.strip()]
    for line in reversed(text):
        lowered = line.lower()
        for prefix in ("error: ", "error:", "ERROR: "):
            if line.startswith(prefix) or lowered.startswith(prefix.lower()):
                return line[len(prefix) :].strip()
    return text[-1] if text else "no output"


class BuildKitBuilder(DockerBuilder):
    name = "buildkit"
    capabilities = Capabilities(
        secrets=True,
        platform=True,
        platforms=True,
        network=True,
        cache_mounts=True,
        cache_from=frozenset(CACHE_TYPES),
        cache_to=frozenset(CACHE_TYPES),
        no_cache=True,
        pull=True,
        provenance=True,
        annotations=True,
    )
    #: What the docker CLI's own BuildKit (before 23.0, no buildx) can honour.
    legacy_capabilities = Capabilities(
        secrets=True,
        platform=True,
        platforms=True,
        network=True,
        cache_mounts=True,
        cache_from=frozenset({"registry"}),
        no_cache=True,
        pull=True,
    )

    def check(self, request: BuildRequest) -> None:
        if self.cli.buildx:
            super().check(request)
            return
        name = f"{self.name} (docker CLI {self.cli.version or '?'} without buildx)"
        check_request(name, self.legacy_capabilities, request)

    def __init__(
        self,
        engine: Engine,
        cli: DockerCli,
        runner: Runner,
        auth_config: AuthConfig = lambda: None,
        base_layers: BaseLayers = lambda _image, _platform: None,
        started: Callable[[Running], None] | None = None,
        plain_http: bool = False,
    ) -> None:
        super().__init__(engine, auth_config)
        self.cli = cli
        self._plain_http = plain_http
        self._runner = runner
        self._base_layers = base_layers
        self._started = started
        self._network_checked: str | None = None

    def _network(self, request: BuildRequest, progress: Progress) -> str | None:
        if request.network is not None:
            return request.network
        if self._network_checked is None:
            # An engine without its bridge (dockerd --bridge=none) fails every RUN on
            # BuildKit's default network; the host's is the one it has.
            self._network_checked = "" if self.engine.has_network("bridge") else "host"
            if self._network_checked:
                progress("buildkit: the engine has no bridge network: RUN uses --network host")
        return self._network_checked or None

    def build(self, request: BuildRequest, progress: Progress) -> list[Built]:
        network = self._network(request, progress)
        platforms: Sequence[Platform | None] = request.platforms or (None,)
        built: list[Built] = []
        for platform in platforms:
            one = request.for_platform(platform) if len(platforms) > 1 else request
            built.append(self._build_one(one, network, platform, progress))
        return built

    def _stream(self, argv: list[str], progress: Progress) -> tuple[Any, UnreadCaches]:
        """Run the docker CLI, its output to ``progress``; BuildKit goes on without a
        ``--cache-from`` it cannot read, which the returned watch names."""
        unread = UnreadCaches()

        def line_out(line: str) -> None:
            unread.feed(line)
            progress(redact(line))

        return self._runner.stream(argv, line_out, started=self._started), unread

    def pushes_by_building(self, *, squash: bool) -> bool:
        # buildx pushes BuildKit's own result (every platform, attestations); --squash
        # rewrites the image locally, so it takes the --load path.
        return self.cli.buildx and not squash

    def build_and_push(self, request: BuildRequest, name: str, progress: Progress) -> Built:
        from dataclasses import replace

        request = replace(request, network=self._network(request, progress))
        try:
            return self._build_and_push(request, name, progress)
        except BaseException:
            # buildx may have named the image in the engine before it failed (a --cache-to
            # that cannot be written fails after the push): the run leaves no name behind.
            self.engine.untag(name)
            raise

    def _run_build(self, argv: list[str], progress: Progress) -> None:
        """Run one ``docker build``/``buildx build``: a failure is exit 6 in the CLI's words,
        a cache that could not be read a warning."""
        result, unread = self._stream(argv, progress)
        if result.returncode < 0:
            raise EngineError(
                f"the build failed: the docker CLI was killed by signal {-result.returncode}"
            )
        if not result.ok:
            raise EngineError(
                f"the build failed: {redact(failure(result.stdout.splitlines()))[:500]}"
            )
        for ref in unread.refs:
            progress(f"warning: --cache-from {ref} could not be read: built without it")

    def _build_and_push(self, request: BuildRequest, name: str, progress: Progress) -> Built:
        with tempfile.TemporaryDirectory(prefix="imgtag-buildkit-") as temp:
            metadata = os.path.join(temp, "metadata.json")
            argv = buildx_push_argv(self.cli, request, name, metadata, plain_http=self._plain_http)
            self._run_build(argv, progress)
            try:
                with open(metadata, encoding="utf-8") as fh:
                    digest = metadata_digest(fh.read())
            except OSError:
                digest = ""
        if not digest:
            raise EngineError(f"the build of {name} reported no pushed digest (buildx metadata)")
        return Built(digest, name, None)

    def _build_one(
        self,
        request: BuildRequest,
        network: str | None,
        platform: Platform | None,
        progress: Progress,
    ) -> Built:
        from dataclasses import replace

        request = replace(request, network=network)
        with tempfile.TemporaryDirectory(prefix="imgtag-buildkit-") as temp:
            iidfile = os.path.join(temp, "iid")
            argv = build_argv(self.cli, request, iidfile, plain_http=self._plain_http)
            self._run_build(argv, progress)
            try:
                with open(iidfile, encoding="utf-8") as fh:
                    image_id = fh.read().strip()
            except OSError:
                image_id = ""
        if not image_id.startswith("sha256:"):
            raise EngineError(f"the build of {request.name} reported no image ID")
        return Built(image_id, request.name, platform)

    def squash(
        self, image: Built, known_base: str | None, progress: Progress
    ) -> tuple[Built, dict[str, Any]]:
        from tagger.image.base import rootfs_layers

        if not known_base or known_base == "scratch":
            return self._squash(image, known_base=known_base, from_=None, progress=progress)
        try:
            self.engine.inspect_image(known_base)
            return self._squash(image, known_base=known_base, from_=None, progress=progress)
        except ImageNotFoundError:
            pass  # BuildKit pulled it without storing it in the engine: ask its registry
        base = self._base_layers(known_base, image.platform)
        layers = rootfs_layers(self.engine.inspect_image(image.image_id)) or []
        if base and len(base) < len(layers) and layers[: len(base)] == base:
            squashed, doc = self._squash(
                image, known_base=None, from_=str(len(layers) - len(base)), progress=progress
            )
            doc["base"] = f"FROM {known_base} (its layers read from its registry)"
            return squashed, doc
        if base and layers == base:
            progress(f"{image.name}: no layers above FROM {known_base}: nothing to squash")
        return self._squash(image, known_base=known_base, from_=None, progress=progress)
