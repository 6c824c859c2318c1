"""The ``oci`` provider: Distribution/OCI deletion through the registry API itself. Does I/O
(through the registry API it is handed).

DELETE by digest removes the manifest with every tag on it; DELETE by tag (OCI
distribution spec 1.1) removes the tag alone where the registry supports it, and is
``Unsupported`` on Distribution 2.8, where prune falls back to a placeholder.
"""

from __future__ import annotations

from collections.abc import Sequence

from tagger.errors import UsageError
from tagger.registry.protocols import RegistryApi, Version


class OciProvider:
    name = "oci"

    def check(self, api: RegistryApi, repository: str, *, delete: bool, untagged: bool) -> None:
        if untagged:
            raise UsageError(
                f"--untagged needs a registry that lists untagged versions: {api.host} "
                "is provider oci (ghcr and Harbor list them: set --provider ghcr or harbor "
                "for such a registry at another address)"
            )

    def delete_refusal(self, api: RegistryApi, repository: str) -> str | None:
        return api.registry_delete_refusal(repository)

    def delete(self, api: RegistryApi, repository: str, ref: str) -> None:
        api.registry_delete(repository, ref)

    def versions(self, api: RegistryApi, repository: str) -> Sequence[Version]:
        raise UsageError(f"{api.host} lists no versions without tags (provider oci)")

    def refused_as_last(self) -> frozenset[str]:
        return frozenset()

    def immutable_tags(self, api: RegistryApi, repository: str) -> str | None:
        return None
