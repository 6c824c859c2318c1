"""Making the cloud registries' providers (``ecr``, ``gar``, ``acr``) for a host. Does no
I/O itself (each provider checks its input when made: exit 2 before any request).
"""

from __future__ import annotations

from collections.abc import Mapping

from tagger.errors import UsageError
from tagger.registry.http import RetryBudget
from tagger.registry.protocols import Provider


def make_cloud_provider(
    name: str, host: str, env: Mapping[str, str], budget: RetryBudget
) -> Provider:
    """The provider ``name`` for the registry ``host``; its API shares ``budget``."""
    if name == "ecr":
        from tagger.registry.providers.ecr import EcrProvider

        return EcrProvider(host, env, budget)
    if name == "acr":
        from tagger.registry.providers.acr import AcrProvider

        return AcrProvider(host, env, budget)
    if name == "gar":
        from tagger.registry.providers.gar import GarProvider

        return GarProvider(host, env, budget)
    raise UsageError(f"unknown cloud provider {name!r}")
