"""The ``docker`` builder: the Docker Engine API's classic builder, through ``tagger.engine``.

Does I/O (the engine). Builds, squashes (``tagger.image.squash``), tags and pushes through
the engine; the classic builder has no secrets and no platforms, which
:class:`~tagger.build.builders.base.Builder.check` refuses up front.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from tagger.build.builders.base import Builder, BuildRequest, Built, Capabilities, Progress
from tagger.errors import UsageError

if TYPE_CHECKING:
    from tagger.engine import Engine

AuthConfig = Callable[[], Mapping[str, str] | None]


class DockerBuilder(Builder):
    name = "docker"
    capabilities = Capabilities(
        secrets=False,
        platform=False,
        platforms=False,
        network=True,
        cache_mounts=False,
        # The classic builder takes --cache-from IMAGE only: images it may reuse layers of.
        cache_from=frozenset({"registry"}),
        no_cache=True,
        pull=True,
    )

    def __init__(self, engine: Engine, auth_config: AuthConfig = lambda: None) -> None:
        self.engine = engine
        self._auth_config = auth_config

    def check(self, request: BuildRequest) -> None:
        super().check(request)
        if type(self) is DockerBuilder:
            for spec in request.cache_from:
                if spec.attrs != (("ref", spec.ref),):
                    raise UsageError(
                        f"the docker builder takes --cache-from IMAGE only, not {spec.buildx()}: "
                        "use --builder buildkit"
                    )

    def build(self, request: BuildRequest, progress: Progress) -> list[Built]:
        extra: dict[str, Any] = {}
        if request.network is not None:
            extra["network_mode"] = request.network
        if request.cache_from:
            extra["cache_from"] = [spec.ref for spec in request.cache_from]
        if request.no_cache:
            extra["nocache"] = True
        if request.pull:
            extra["pull"] = True
        result = self.engine.build(
            context=request.context,
            dockerfile=request.dockerfile,
            tag=request.name,
            buildargs=request.build_args,
            target=request.target,
            labels=request.labels,
            progress=progress,
            **extra,
        )
        return [Built(result.image_id, request.name)]

    def squash(
        self, image: Built, known_base: str | None, progress: Progress
    ) -> tuple[Built, dict[str, Any]]:
        return self._squash(image, known_base=known_base, from_=None, progress=progress)

    def _squash(
        self, image: Built, *, known_base: str | None, from_: str | None, progress: Progress
    ) -> tuple[Built, dict[str, Any]]:
        from tagger.image.squash import squash_image

        squashed = squash_image(
            self.engine, image.name, known_base=known_base, from_=from_, progress=progress
        )
        if squashed.changed and squashed.old_id:
            self.engine.untag(squashed.old_id)  # the unsquashed image, now nameless
        return Built(squashed.id, image.name, image.platform), squashed.as_dict()

    def push(self, image: Built, repository: str, tag: str, progress: Progress) -> str:
        self.engine.tag(image.image_id, repository, tag)
        return self.engine.push(repository, tag, self._auth_config(), progress=progress)

    def cancel(self) -> None:
        # Dropping the connection makes dockerd cancel the build and remove the build's
        # container (rm/forcerm); the interrupted stream raises in the main thread.
        self.engine.close()

    def discard(self, image: Built) -> None:
        self.engine.untag(image.name)

    def forget(self, repository: str, tag: str) -> None:
        self.engine.untag(f"{repository}:{tag}")
