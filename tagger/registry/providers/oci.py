"""The ``oci`` provider: Distribution/OCI deletion through the registry API itself. Does I/O.

DELETE by digest removes the manifest with every tag on it; DELETE by tag (OCI
distribution spec 1.1) removes the tag alone where the registry supports it, and is
``Unsupported`` on Distribution 2.8, where prune falls back to a placeholder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tagger.errors import UsageError

if TYPE_CHECKING:
    from tagger.registry.providers.base import ProviderClient


class OciProvider:
    name = "oci"

    def __init__(self, client: ProviderClient) -> None:
        self._client = client

    def check(self, repository: str, *, delete: bool, untagged: bool) -> None:
        if untagged:
            raise UsageError(
                f"--untagged needs a registry that lists untagged versions: {self._client.host} "
                "is provider oci (only ghcr has them; set --provider ghcr for a ghcr registry "
                "at another address)"
            )

    def can_delete(self, repository: str) -> bool:
        return self._client.registry_can_delete(repository)

    def delete(self, repository: str, ref: str) -> None:
        self._client.registry_delete(repository, ref)

    def refused_as_last(self) -> frozenset[str]:
        return frozenset()
