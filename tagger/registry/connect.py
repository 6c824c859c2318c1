"""Opening a registry client with its provider chosen. Does I/O only when the client is
used (reading the docker config and running credential helpers happen on the first
challenge).

The provider is ``--provider``, else ``IMGTAG_PROVIDER``, else the configuration's
``provider``, else the registry host: ``ghcr.io`` is ``ghcr``, Docker Hub's names are
``dockerhub``, the cloud registries' hosts ``ecr``, ``gar`` and ``acr``
(``tagger.registry.cloudhosts``), GitLab.com or ``$CI_REGISTRY`` ``gitlab``, anything else
``oci`` (Harbor is chosen by name: its hosts are the user's own). The client and the provider's
management API share one retry budget: one command on one registry waits at most that
long in all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from tagger.errors import UsageError
from tagger.registry.auth import Credentials
from tagger.registry.client import RegistryClient
from tagger.registry.cloudhosts import CLOUD_PROVIDERS, check_forced, provider_for_host
from tagger.registry.http import RetryBudget, RetryPolicy
from tagger.registry.protocols import Provider
from tagger.registry.reference import HUB_HOSTS, Reference
from tagger.registry.transport import Transport

# Self-hosted registries' providers (issue 22): GitLab by host or $CI_REGISTRY, Harbor by name.
SELF_HOSTED = ("gitlab", "harbor")
PROVIDERS: tuple[str, ...] = ("oci", "ghcr", "dockerhub", *SELF_HOSTED, *CLOUD_PROVIDERS)
GHCR_HOSTS = frozenset({"ghcr.io"})
POOL_SIZE = 16  # connections kept per host: Transport's default


def choose(
    ref: Reference,
    given: str | None = None,
    env: Mapping[str, str] | None = None,
    configured: str | None = None,
) -> str:
    """The provider's name for ``ref``: ``given`` > ``IMGTAG_PROVIDER`` > ``configured`` >
    the host. An unknown name is a usage error (exit 2) that says where to set it.

    >>> choose(Reference.parse_repository("ghcr.io/o/app"))
    'ghcr'
    >>> choose(Reference.parse_repository("user/app"))
    'dockerhub'
    >>> choose(Reference.parse_repository("127.0.0.1:5000/o/app"), env={"IMGTAG_PROVIDER": "GHCR"})
    'ghcr'
    >>> choose(Reference.parse_repository("123456789012.dkr.ecr.eu-west-1.amazonaws.com/app"))
    'ecr'
    """
    name = given or (env or {}).get("IMGTAG_PROVIDER") or configured
    if name:
        if name.strip().lower() not in PROVIDERS:
            raise UsageError(
                f"unknown provider {name!r}: set --provider, IMGTAG_PROVIDER or the config key "
                f"provider to one of {', '.join(PROVIDERS)}"
            )
        forced = name.strip().lower()
        check_forced(forced, ref.registry, env or {})
        return forced
    if (cloud := provider_for_host(ref.registry)) is not None:
        return cloud
    if ref.registry in GHCR_HOSTS:
        return "ghcr"
    if ref.registry in HUB_HOSTS:
        return "dockerhub"
    if _is_gitlab(ref.registry, env or {}):
        return "gitlab"
    return "oci"


def _is_gitlab(host: str, env: Mapping[str, str]) -> bool:
    from tagger.registry.providers.gitlab import HOSTS

    return host in HOSTS or (bool(env.get("CI_REGISTRY")) and host == env.get("CI_REGISTRY"))


def make_provider(
    name: str, env: Mapping[str, str], budget: RetryBudget, host: str = ""
) -> Provider:
    """The provider called ``name`` (see :func:`choose`) for the registry ``host``; its API
    shares ``budget``."""
    if name in CLOUD_PROVIDERS:
        from tagger.registry.providers.cloud import make_cloud_provider

        return make_cloud_provider(name, host, env, budget)
    if name == "gitlab":
        from tagger.registry.providers.gitlab import GitLabProvider

        return GitLabProvider(env, budget)
    if name == "harbor":
        from tagger.registry.providers.harbor import HarborProvider

        return HarborProvider(env, budget, host)
    if name == "ghcr":
        from tagger.registry.providers.ghcr import GhcrProvider

        return GhcrProvider(env, budget)
    if name == "dockerhub":
        from tagger.registry.providers.dockerhub import DockerHubProvider

        return DockerHubProvider(env, budget)
    from tagger.registry.providers.oci import OciProvider

    return OciProvider()


def open_client(
    ref: Reference,
    env: Mapping[str, str],
    *,
    insecure: Sequence[str] = (),
    ca_file: str | None = None,
    retry: RetryPolicy | None = None,
    provider: str | None = None,
    configured_provider: str | None = None,
    concurrency: int = 1,
) -> tuple[RegistryClient, Callable[[], Credentials | None]]:
    """A client for ``ref``'s registry with credentials as the docker CLI finds them, and
    the (cached) credential lookup itself, for handing the same credentials to the engine.

    Its deletes go through the registry's provider: ``provider`` (``--provider``), else
    ``IMGTAG_PROVIDER``, else ``configured_provider`` (the configuration's), else the host.

    ``concurrency`` is how many threads will share the client: the connection pool holds
    at least that many, so every thread keeps its connection instead of opening a new one
    whenever the pool is full (urllib3 drops the extra connections silently)."""
    from tagger.registry.auth import DockerConfig

    name = choose(ref, provider, env, configured_provider)
    config = DockerConfig.load(env)
    cache: list[Credentials | None] = []

    def credentials() -> Credentials | None:
        if not cache:
            cache.append(config.credentials(ref.registry))
        return cache[0]

    budget = RetryBudget(retry or RetryPolicy.from_env(env))
    transport = Transport(
        ref.api_host,
        credentials,
        insecure=ref.registry in insecure or ref.api_host in insecure,
        ca_file=ca_file,
        budget=budget,
        pool_size=max(POOL_SIZE, concurrency),
    )
    return RegistryClient(transport, make_provider(name, env, budget, ref.registry)), credentials
