"""build-push's real collaborators: the registry client, the engine, the builder choice.

:func:`publish` builds them from the environment and runs a
:class:`~tagger.build.publish.Publisher`; tests hand the publisher fakes instead. Does
I/O only through what it builds (it reads the config file and, for a base image's
layers, a Dockerfile and another registry), and starts the docker SDK's slow import early.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from tagger.build.builders.base import Builder, Built
from tagger.build.labels import github_source
from tagger.build.options import BuildPushOptions, BuildPushResult, parse_key_values
from tagger.build.publish import Publisher
from tagger.errors import RegistryError, UsageError
from tagger.lifecycle import Stop
from tagger.registry.platform import Platform
from tagger.registry.reference import Reference


def publish(
    options: BuildPushOptions,
    env: Mapping[str, str],
    *,
    insecure: Sequence[str] = (),
    ca_file: str | None = None,
    stop: Stop | None = None,
) -> BuildPushResult:
    """Build the real collaborators (registry client, engine) and run the publisher."""
    import threading

    from tagger.version.ci_env import Counter
    from tagger.version.git import remote_url
    from tagger.version.next import derive

    # Imports that take a while (benchmarks/README.md) run in threads while git answers:
    # the registry client (requests) now, the docker SDK where a builder may need it.
    modules = ["tagger.registry.client"]
    if not options.dry_run and options.builder != "buildah":
        modules.append("docker")
    for module in modules:
        threading.Thread(
            target=_preload, args=(module,), name="imgtag-preload", daemon=True
        ).start()
    derived = None
    if options.next.counter is not Counter.REGISTRY or options.next.build is not None:
        # Git only: derive now, beside those imports (--counter registry needs the client).
        derived = derive(options.next, env, datetime.now(UTC))

    from tagger.engine import Engine, stderr_progress
    from tagger.registry.client import RegistryClient
    from tagger.registry.connect import open_client

    ref = Reference.parse_repository(options.image)
    # Claims delete through the registry's provider (ghcr: the GitHub API; Hub: its API).
    client, credentials = open_client(
        ref, env, insecure=insecure, ca_file=ca_file, configured_provider=options.provider
    )

    clients: dict[str, RegistryClient] = {ref.registry: client}

    def client_for(other: Reference) -> RegistryClient:
        """``build-push IMAGE IMAGE...``: the client of another image's registry."""
        if other.registry not in clients:
            clients[other.registry], _ = open_client(
                other, env, insecure=insecure, ca_file=ca_file,
                configured_provider=options.provider,
            )  # fmt: skip
        return clients[other.registry]

    def auth_config() -> Mapping[str, str] | None:
        creds = credentials()
        if creds is None:
            return None
        return {**creds.auth_config(), "serveraddress": ref.registry}

    def source() -> str | None:
        return github_source(env) or remote_url(options.next.repo)

    from tagger.build.builders import Wiring, choose

    engines: list[Engine] = []

    def engine() -> Engine:
        if not engines:
            engines.append(Engine(env))
        return engines[0]

    def base_layers(image: str, platform: Platform | None) -> list[str] | None:
        """A FROM image's diff_ids, from its registry (BuildKit does not keep it local)."""
        try:
            base = Reference.parse(image)
            base_client, _ = open_client(base, env, insecure=insecure, ca_file=ca_file)
            config = base_client.image_config(
                base.repository, base.digest or base.tag or "latest", platform
            )
        except (RegistryError, UsageError):
            return None
        diff_ids = (config.get("rootfs") or {}).get("diff_ids")
        return [str(x) for x in diff_ids] if isinstance(diff_ids, list) else None

    def plain_http_base() -> str | None:
        """The final FROM image if the Dockerfile may name a loopback or insecure registry
        at all (a text search first: most never do, and parsing costs an import)."""
        from pathlib import Path as _Path

        path = options.file or os.path.join(options.context, "Dockerfile")
        try:
            text = _Path(path).read_text(encoding="utf-8", errors="replace")
        except OSError:
            return None
        if not any(host in text for host in ("localhost", "127.", "[::1]", *insecure)):
            return None
        from tagger.lint import final_base_image

        try:
            build_args = parse_key_values(options.build_args, "--build-arg")
            return final_base_image(path, build_args, options.target)
        except UsageError:
            return None

    wiring = Wiring(
        env=env,
        engine=engine,
        registry=ref.registry,
        auth_config=auth_config,
        base_layers=base_layers,
        plain_http_base=plain_http_base,
        insecure=tuple(insecure),
        ca_file=ca_file,
    )
    signer = None
    if options.sign:
        from tagger.build.signing import Cosign, SignSettings

        # cosign reaches the registry as imgtag does: plain HTTP only to loopback and to
        # the hosts named insecure, the same CA file.
        signer = Cosign(
            SignSettings(options.sign_key, options.sign_tlog),
            env,
            plain_http=ref.is_loopback or ref.registry in insecure,
            ca_file=ca_file,
        )

    def check(builder: Builder, images: list[Built], result: BuildPushResult) -> None:
        """build-push --check: each image built, before the push (tagger.check.gate)."""
        from tagger.check.gate import check_built

        for image in images:
            with_engine = builder.name != "buildah"
            report = check_built(
                image.image_id,
                options.check_settings,
                strict=options.check == "strict",
                builder=builder.name,
                log=stderr_progress,
                engine=engine() if with_engine else None,
                config_of=None if with_engine else functools.partial(_buildah_config, image, env),
                stop=stop,
            )
            result.check_counts = report.counts()
        result.check = "passed"

    publisher = Publisher(
        options,
        derive=lambda: (
            derived
            if derived is not None
            else derive(
                options.next,
                env,
                datetime.now(UTC),
                registry_tags=lambda _: client.list_tags(ref.repository),
            )
        ),
        client=client,
        builder=lambda: choose(options.builder, wiring, stderr_progress),
        auth_config=auth_config,
        remote_url=source,
        log=stderr_progress,
        env=env,
        stop=stop,
        signer=signer,
        client_for=client_for,
        check=check,
    )
    return publisher.run()


def _preload(module: str) -> None:
    with contextlib.suppress(Exception):  # the real import later reports any problem
        importlib.import_module(module)


def _buildah_config(image: Built, env: Mapping[str, str]) -> dict[str, Any] | None:
    """The image's config (``config`` of the OCI image config) as buildah stored it."""
    import json

    from tagger.proc import Runner

    # Debian 12's buildah 1.28 has no "json" template function: read the whole document.
    result = Runner(env=env).run(["buildah", "inspect", "--type", "image", image.image_id])
    if not result.ok:
        return None
    try:
        doc = json.loads(result.stdout)
    except ValueError:
        return None
    config = (doc.get("OCIv1") or {}).get("config") if isinstance(doc, dict) else None
    return config if isinstance(config, dict) else None
