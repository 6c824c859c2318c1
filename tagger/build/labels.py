"""The OCI labels a build gets, and where ``org.opencontainers.image.source`` comes from.

Pure: functions of a derivation, a reference, a URL and the environment mapping.
Annotation keys: https://github.com/opencontainers/image-spec/blob/main/annotations.md
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

from tagger.registry.reference import Reference
from tagger.version.bump import Derivation

REVISION_LABEL = "org.opencontainers.image.revision"


def public_url(url: str | None) -> str | None:
    """A git remote URL without credentials, as https when it is an scp-like address.

    >>> public_url("https://x-access-token:ghs_abc@github.com/o/r.git")
    'https://github.com/o/r'
    >>> public_url("git@gitlab.com:group/app.git")
    'https://gitlab.com/group/app'
    """
    if not url:
        return None
    url = url.strip()
    if "://" not in url and ":" in url and "@" in url.split(":")[0]:
        host_part, path = url.split(":", 1)
        url = f"https://{host_part.split('@', 1)[1]}/{path}"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https", "ssh", "git"):
        return None
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    scheme = "https" if parts.scheme in ("ssh", "git") else parts.scheme
    path = parts.path.removesuffix(".git")
    return urlunsplit((scheme, host, path, "", ""))


def oci_labels(
    derivation: Derivation, image: Reference, source: str | None, now: datetime
) -> dict[str, str]:
    """The OCI annotations as labels (https://github.com/opencontainers/image-spec/blob/main/annotations.md)."""
    labels = {
        "org.opencontainers.image.version": derivation.tag,
        REVISION_LABEL: derivation.commit,
        "org.opencontainers.image.created": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "org.opencontainers.image.title": image.repository.rsplit("/", 1)[-1],
    }
    if source:
        labels["org.opencontainers.image.source"] = source
    return labels


def github_source(env: Mapping[str, str]) -> str | None:
    server, repo = env.get("GITHUB_SERVER_URL"), env.get("GITHUB_REPOSITORY")
    return f"{server}/{repo}" if server and repo else None
