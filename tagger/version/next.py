"""``imgtag next``'s executor: git facts + CI environment + clock → a :class:`Derivation`.

Thin on purpose: the decisions live in ``tagger.version.bump`` (pure) and ``tagger.version.ci_env``
(pure); this module only gathers the facts they need, asking git no more than it must.
Does I/O through ``tagger.version.git``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tagger.errors import UsageError
from tagger.version.bump import Bump, Derivation, next_version, parse_initial_version
from tagger.version.ci_env import (
    Counter,
    CounterUnavailable,
    ci_build_number,
    detect_ci,
    timestamp_build,
)
from tagger.version.git import GitRepo
from tagger.version.grammar import ImageVersion, image_version

if TYPE_CHECKING:
    from tagger.config import Config


@dataclass(frozen=True, slots=True)
class NextOptions:
    """The resolved options of ``imgtag next`` (and the version part of build-push)."""

    repo: str = "."
    tag_prefix: str | None = None  # None: an optional "v"
    bump: Bump = Bump.PATCH
    initial_version: str = "0.1.0"
    build: int | None = None
    counter: Counter = Counter.AUTO
    image: str | None = None

    @classmethod
    def resolve(cls, given: Mapping[str, Any], project: Config | None = None) -> NextOptions:
        """Option > ``IMGTAG_*`` variable (typer reads those) > config file > default.

        ``given`` maps option names to the values given (``None``: not given). The config
        file is the one at the root of ``repo`` (``project``, when the caller read it).
        """
        from tagger import config

        defaults = dict(NEXT_DEFAULTS)
        repo = given.get("repo") or defaults["repo"]
        project = project if project is not None else config.load(repo)
        values = project.resolve("", {**given, "repo": repo}, defaults)
        return cls(
            repo=values["repo"],
            tag_prefix=values["tag_prefix"],
            bump=Bump(values["bump"]),
            initial_version=values["initial_version"],
            build=values["build"],
            counter=Counter(values["counter"]),
            image=values["image"],
        )


#: The defaults of the version options, by option name (config keys are the same).
NEXT_DEFAULTS: Mapping[str, Any] = {
    "repo": ".",
    "tag_prefix": None,
    "bump": Bump.PATCH,
    "initial_version": "0.1.0",
    "build": None,
    "counter": Counter.AUTO,
    "image": None,
}


def derive(
    options: NextOptions,
    env: Mapping[str, str],
    now: datetime,
    registry_tags: Callable[[str], Sequence[str]] | None = None,
) -> Derivation:
    """Derive the next image tag for the checkout at ``options.repo``.

    ``registry_tags(image)`` lists the image's tags, for ``--counter registry``.
    """
    try:
        parse_initial_version(options.initial_version)
    except ValueError as exc:
        raise UsageError(f"--initial-version: {exc}") from exc
    # Settle N's source before touching git: a usage error should not wait for git.
    system = detect_ci(env)
    counter = options.counter
    if options.build is None and counter is Counter.AUTO:
        counter = Counter.CI if system is not None else Counter.TIMESTAMP
    if options.build is None and counter is Counter.CI and system is None:
        raise UsageError(
            "--counter ci needs a CI build counter, but no known CI system is detected: "
            "use --counter timestamp, --counter commits or --build N"
        )
    if options.build is None and counter is Counter.REGISTRY and not options.image:
        raise UsageError("--counter registry needs --image, the repository to count in")

    repo = GitRepo.open(options.repo)
    # `git status` needs nothing the tags give: it runs beside them (~6 ms of a 120 ms
    # run on the 10,000-tag repository of benchmarks/README.md).
    dirty = _beside(repo.is_dirty)
    base = repo.find_base(options.tag_prefix)
    # Without a base tag the distance counts from the root, as setuptools-scm does.
    distance = base.distance if base is not None else repo.count_commits()
    messages: list[str] = []
    if base is not None and distance > 0 and options.bump is Bump.AUTO:
        messages = repo.commit_messages(base.tag.commit)
    version = next_version(
        base.tag if base is not None else None,
        distance,
        options.bump,
        messages,
        options.initial_version,
    )

    if options.build is not None:
        build, counter_name = options.build, "build"
    elif counter is Counter.CI:
        assert system is not None
        try:
            build = ci_build_number(system, env)
        except CounterUnavailable as exc:
            raise UsageError(f"{exc}: use --build N or another --counter") from exc
        counter_name = counter.value
    elif counter is Counter.REGISTRY:
        assert options.image is not None
        tags = (registry_tags or _registry_tags(env))(options.image)
        build = registry_build(version_text(version), tags)
        counter_name = counter.value
    elif counter is Counter.COMMITS:
        build = distance
        counter_name = counter.value
    else:
        build, counter_name = timestamp_build(now), Counter.TIMESTAMP.value

    return Derivation(
        image_version=image_version(version, build),
        base_tag=base.tag.name if base is not None else None,
        distance=distance,
        commit=repo.head,
        dirty=dirty(),
        counter=counter_name,
        ci=system.name if system is not None else None,
    )


def _beside(question: Callable[[], bool]) -> Callable[[], bool]:
    """``question`` asked in a thread at once; the returned call waits for its answer (or
    raises its error)."""
    import threading

    answer: list[bool] = []
    failed: list[BaseException] = []

    def ask() -> None:
        try:
            answer.append(question())
        except BaseException as exc:  # handed to the caller's thread
            failed.append(exc)

    thread = threading.Thread(target=ask, name="imgtag-git", daemon=True)
    thread.start()

    def result() -> bool:
        thread.join()
        if failed:
            raise failed[0]
        return answer[0]

    return result


def version_text(version: object) -> str:
    """``X.Y.Z[-PRE]`` of a semver version, without build metadata."""
    return str(version).split("+", 1)[0]


def registry_build(version: str, tags: Iterable[str]) -> int:
    """N for ``--counter registry``: 1 + the highest N already there for that version.

    >>> registry_build("1.2.3", ["1.2.3-4", "1.2.3-10", "1.2.4-99", "latest", "1.2.3-rc.1-50"])
    11
    >>> registry_build("2.0.0-rc.1", ["1.2.3-4"])
    1
    """
    builds = [v.build for v in map(ImageVersion.parse, tags) if v and v.version == version]
    return max(builds, default=0) + 1


def _registry_tags(env: Mapping[str, str]) -> Callable[[str], Sequence[str]]:
    def tags(image: str) -> Sequence[str]:
        from tagger.registry.connect import open_client
        from tagger.registry.reference import Reference

        ref = Reference.parse_repository(image)
        client, _ = open_client(ref, env)
        return client.list_tags(ref.repository)

    return tags
