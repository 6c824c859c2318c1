"""The ``buildah`` builder: daemonless builds with ``buildah bud`` and ``buildah push``.

Does I/O: runs ``buildah`` (through ``tagger.proc``) and writes a private temporary
auth file. No Docker engine is involved at all, so this works on runners without one
(Kubernetes executors, rootless CI), typically with ``STORAGE_DRIVER=vfs`` and
``BUILDAH_ISOLATION=chroot`` set by the job, as buildah's own images do.

- Credentials: imgtag resolves the target registry's credentials as the docker CLI would
  (``tagger.registry.auth``) and hands them to buildah in a temporary ``--authfile`` (a
  copy of the user's docker ``config.json`` with that registry's entry set), never on a
  command line. buildah itself fails when ``DOCKER_CONFIG`` names a directory without
  ``config.json``; the auth file avoids that too.
- Plain HTTP: ``--tls-verify=false`` only for loopback registries and ``--insecure-registry``
  hosts (on ``bud`` for a FROM image there, on ``push`` for the target), as dockerd allows.
- Layers: plain ``bud`` (``--layers=false``) commits the image's own instructions as one
  layer over its FROM image, which is what ``--squash`` means here; ``bud --squash`` would
  merge the base too, so it is never used.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tagger.build.builders.base import (
    Builder,
    BuildRequest,
    Built,
    Capabilities,
    Progress,
    cli_build_flags,
)
from tagger.errors import EngineError, redact
from tagger.registry.platform import Platform
from tagger.registry.reference import Reference, is_loopback_host

if TYPE_CHECKING:
    from tagger.proc import Runner, Running

Credentials = Callable[[], Mapping[str, str] | None]


def plain_http(host: str, insecure: Sequence[str]) -> bool:
    """Whether buildah may talk to ``host`` without TLS verification.

    >>> plain_http("127.0.0.1:5000", ()), plain_http("ghcr.io", ()), plain_http("r:1", ["r:1"])
    (True, False, True)
    """
    return is_loopback_host(host) or host in insecure


def bud_argv(
    request: BuildRequest, iidfile: str, *, authfile: str | None, tls_verify: bool
) -> list[str]:
    """``buildah bud`` for one platform. Pure.

    >>> from tagger.build.builders.base import Secret
    >>> req = BuildRequest("ctx", "ctx/Dockerfile", "r/a:b", {"A": "1"}, "app", {"l": "v"},
    ...                    (Secret("tok", "/s"),), (Platform("linux", "arm64"),), "host")
    >>> " ".join(bud_argv(req, "/iid", authfile="/auth.json", tls_verify=False))
    'buildah bud --layers=false --iidfile /iid -t r/a:b -f ctx/Dockerfile --build-arg A=1 \
--target app --label l=v --secret id=tok,src=/s --platform linux/arm64 --network host \
--authfile /auth.json --tls-verify=false ctx'
    """
    caching = bool(request.cache_from or request.cache_to)
    layers = "--layers" if caching else "--layers=false"
    argv = ["buildah", "bud", layers, "--iidfile", iidfile, "-t", request.name]
    argv += cli_build_flags(request)
    for spec in request.cache_from:
        argv += ["--cache-from", str(spec.ref)]
    for spec in request.cache_to:
        argv += ["--cache-to", str(spec.ref)]
    if request.no_cache:
        argv.append("--no-cache")
    if request.pull:
        argv.append("--pull=always")
    for key, value in request.annotations.items():
        argv += ["--annotation", f"{key}={value}"]
    if authfile:
        argv += ["--authfile", authfile]
    if not tls_verify:
        argv.append("--tls-verify=false")
    argv.append(request.context)
    return argv


def auth_file_content(
    user_config: Mapping[str, Any] | None, registry: str, creds: Mapping[str, str] | None
) -> dict[str, Any]:
    """The auth file buildah gets: the user's docker config with ``registry``'s entry
    replaced by the credentials imgtag resolved (helpers included). Pure.

    >>> auth_file_content({"credHelpers": {"gcr.io": "gcr"}}, "r:1",
    ...                   {"username": "u", "password": "p"})
    {'credHelpers': {'gcr.io': 'gcr'}, 'auths': {'r:1': {'auth': 'dTpw'}}}
    >>> auth_file_content(None, "r:1", None)
    {'auths': {}}
    """
    doc: dict[str, Any] = dict(user_config or {})
    auths = dict(doc.get("auths") or {}) if isinstance(doc.get("auths"), dict) else {}
    helpers = doc.get("credHelpers")
    if creds:
        entry: dict[str, str] = {}
        if creds.get("username") and creds.get("password"):
            pair = f"{creds['username']}:{creds['password']}".encode()
            entry["auth"] = base64.b64encode(pair).decode()
        if creds.get("identitytoken"):
            entry["identitytoken"] = creds["identitytoken"]
        if entry:
            auths[registry] = entry
            if isinstance(helpers, dict) and registry in helpers:
                # The helper was asked already; buildah must not ask it again differently.
                doc["credHelpers"] = {k: v for k, v in helpers.items() if k != registry}
    doc["auths"] = auths
    return doc


class BuildahBuilder(Builder):
    name = "buildah"
    capabilities = Capabilities(
        secrets=True,
        platform=True,
        platforms=True,
        network=True,
        cache_mounts=True,
        # buildah's --cache-from/--cache-to name a registry repository (with --layers).
        cache_from=frozenset({"registry"}),
        cache_to=frozenset({"registry"}),
        no_cache=True,
        pull=True,
        annotations=True,
    )

    def __init__(
        self,
        runner: Runner,
        env: Mapping[str, str],
        registry: str,
        *,
        credentials: Credentials = lambda: None,
        insecure: Sequence[str] = (),
        ca_file: str | None = None,
        plain_http_base: Callable[[], str | None] = lambda: None,
        started: Callable[[Running], None] | None = None,
    ) -> None:
        self._runner = runner
        self._env = env
        self._registry = registry
        self._credentials = credentials
        self._insecure = tuple(insecure)
        self._ca_file = ca_file
        self._plain_http_base = plain_http_base
        self._removing: list[Running] = []
        self._started = started
        self._temp: str | None = None
        self._authfile: str | None = None

    # -- files of this run ---------------------------------------------------------------

    def _dir(self) -> str:
        if self._temp is None:
            self._temp = tempfile.mkdtemp(prefix="imgtag-buildah-")  # mode 0700
        return self._temp

    def _auth(self) -> str:
        if self._authfile is None:
            user: dict[str, Any] | None = None
            where = self._env.get("REGISTRY_AUTH_FILE") or os.path.join(
                self._env.get("DOCKER_CONFIG") or os.path.expanduser("~/.docker"), "config.json"
            )
            try:
                with open(where, encoding="utf-8") as fh:
                    loaded = json.load(fh)
                user = loaded if isinstance(loaded, dict) else None
            except (OSError, ValueError):
                user = None
            doc = auth_file_content(user, self._registry, self._credentials())
            path = os.path.join(self._dir(), "auth.json")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(doc, fh)
            self._authfile = path
        return self._authfile

    def _cert_args(self) -> list[str]:
        if not self._ca_file:
            return []
        certs = os.path.join(self._dir(), "certs")
        if not os.path.isdir(certs):
            os.mkdir(certs)
            shutil.copyfile(self._ca_file, os.path.join(certs, "ca.crt"))
        return ["--cert-dir", certs]

    def close(self) -> None:
        for running in self._removing:
            running.wait(timeout=120)
        self._removing.clear()
        if self._temp is not None:
            shutil.rmtree(self._temp, ignore_errors=True)
            self._temp = self._authfile = None

    # -- the builder -----------------------------------------------------------------------

    def _run(self, argv: list[str], progress: Progress, doing: str) -> list[str]:
        result = self._runner.stream(
            argv, lambda line: progress(redact(line)), started=self._started
        )
        if result.returncode < 0:
            raise EngineError(f"{doing} failed: buildah was killed by signal {-result.returncode}")
        if not result.ok:
            lines = [line.strip() for line in result.stdout.splitlines() if line.strip()]
            errors = [line for line in lines if line.lower().startswith(("error", "time="))]
            last = (errors or lines or ["no output"])[-1]
            raise EngineError(f"{doing} failed: {redact(last)[:500]}")
        return result.stdout.splitlines()

    def build(self, request: BuildRequest, progress: Progress) -> list[Built]:
        base = self._plain_http_base()
        host = Reference.parse(base).registry if base and base != "scratch" else None
        tls_verify = host is None or not plain_http(host, self._insecure)
        platforms: Sequence[Platform | None] = request.platforms or (None,)
        built: list[Built] = []
        for platform in platforms:
            one = request.for_platform(platform) if len(platforms) > 1 else request
            iidfile = os.path.join(self._dir(), f"iid-{len(built)}")
            argv = bud_argv(one, iidfile, authfile=self._auth(), tls_verify=tls_verify)
            before = self._working_containers()
            try:
                self._run(argv[:-1] + self._cert_args() + argv[-1:], progress, "the build")
            except BaseException:
                self._remove_new_working_containers(before)
                raise
            try:
                with open(iidfile, encoding="utf-8") as fh:
                    image_id = fh.read().strip()
            except OSError:
                image_id = ""
            if not image_id.startswith("sha256:"):
                image_id = f"sha256:{image_id}" if len(image_id) == 64 else ""
            if not image_id:
                raise EngineError(f"the build of {one.name} reported no image ID")
            built.append(Built(image_id, one.name, platform))
        return built

    def _working_containers(self) -> set[str] | None:
        """IDs of the working containers ``buildah bud`` leaves (``None``: unknown)."""
        res = self._runner.run(["buildah", "containers", "--json"])
        try:
            listed = json.loads(res.stdout) if res.ok else None
        except ValueError:
            return None
        if listed is None and res.ok:
            return set()  # buildah lists no containers as `null`
        if not isinstance(listed, list):
            return None
        return {
            str(c["id"])
            for c in listed
            if isinstance(c, dict)
            and c.get("builder")
            and str(c.get("containername", "")).startswith("working-container")
        }

    def _remove_new_working_containers(self, before: set[str] | None) -> None:
        """After a build that did not finish: remove the working containers it made.

        buildah 1.28 stopped by a signal while it starts a RUN step leaves its working
        container behind (seen here with SIGTERM and SIGINT alike). Only containers that
        appeared while this build ran are removed; a second build started on the same
        storage in that window would lose its own, a risk only shared storage runs.
        """
        if before is None:
            return
        after = self._working_containers() or set()
        for container in sorted(after - before):
            self._runner.run(["buildah", "rm", container])

    def squash(
        self, image: Built, known_base: str | None, progress: Progress
    ) -> tuple[Built, dict[str, Any]]:
        # Plain `bud` already committed the image's own instructions as one layer above its
        # FROM image (`bud --squash` would merge the base too): nothing is left to do.
        lines = self._run(
            [
                "buildah",
                "inspect",
                "--type",
                "image",
                "--format",
                "{{len .OCIv1.RootFS.DiffIDs}}",
                image.image_id,
            ],
            lambda _line: None,
            "reading the built image",
        )
        total = int(lines[-1]) if lines and lines[-1].strip().isdigit() else 0
        own = 1 if total and known_base != "scratch" else total
        base = "FROM scratch" if known_base == "scratch" else f"FROM {known_base or 'its base'}"
        progress(f"{image.name}: buildah committed its own layers as one above {base}")
        doc = {
            "image": image.name,
            "id": image.image_id,
            "tag": None,
            "squashed_layers": 0,
            "base_layers": total - own,
            "size_before": None,
            "size_after": None,
            "base": f"{base} (buildah commits the image's own layers as one)",
            "changed": False,
            "old_id": image.image_id,
        }
        return image, doc

    def push(self, image: Built, repository: str, tag: str, progress: Progress) -> str:
        digestfile = os.path.join(self._dir(), "digest")
        argv = ["buildah", "push", "--authfile", self._auth(), "--digestfile", digestfile]
        argv += self._cert_args()
        if plain_http(Reference.parse(repository).registry, self._insecure):
            argv.append("--tls-verify=false")
        argv += [image.image_id, f"docker://{repository}:{tag}"]
        self._run(argv, progress, f"the push of {repository}:{tag}")
        try:
            with open(digestfile, encoding="utf-8") as fh:
                digest = fh.read().strip()
            os.unlink(digestfile)
        except OSError:
            digest = ""
        if not digest.startswith("sha256:"):
            raise EngineError(f"the push of {repository}:{tag} reported no digest")
        return digest

    def discard(self, image: Built) -> None:
        # In the background while the run verifies and releases its claim (deleting a vfs
        # copy of the image takes a while); close() waits for it. A leftover local name is
        # harmless: never fail a published run for it.
        with contextlib.suppress(OSError):
            self._removing.append(self._runner.start(["buildah", "rmi", image.name]))
