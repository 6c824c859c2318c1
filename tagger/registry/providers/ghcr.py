"""The ``ghcr`` provider: deleting from ghcr.io through the GitHub REST API. Does I/O.

ghcr.io answers a manifest DELETE with 405 ``UNSUPPORTED``. The GitHub REST API's
"packages" endpoints (https://docs.github.com/en/rest/packages/packages) list a container
package's versions and delete one by id:

- ``GET /users/{owner}`` tells a user from an organisation (``type``); then
  ``GET /{users|orgs}/{owner}/packages/container/{package}/versions?per_page=100`` lists the
  versions, newest first, paged with ``Link`` (``per_page`` at most 100); each version's
  ``name`` is its manifest digest and ``metadata.container.tags`` its tags;
- ``DELETE /{users|orgs}/{owner}/packages/container/{package}/versions/{id}`` deletes one
  (204); a second delete answers 404; the last tagged version of a package is refused
  with 400 ("you cannot delete the last tagged version of a package").

The image ``ghcr.io/OWNER/A/B`` is package ``A/B`` of OWNER, one URL path segment
(``A%2FB``). The API base is ``GITHUB_API_URL`` (default ``https://api.github.com``; a
GitHub Enterprise value ends in ``/api/v3`` and that path is kept). The token is
``GITHUB_TOKEN``, else ``GH_TOKEN``: a classic token needs ``read:packages`` and
``delete:packages``; a workflow's own token needs ``packages: write`` on a package that
grants the repository admin access.

Deleting a version deletes the image with all its tags; a tag alone cannot be deleted, so
:meth:`GhcrProvider.delete` answers ``Unsupported`` for a tag and prune isolates the tag
with a unique placeholder pushed through the registry API, then deletes the placeholder's
version.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from datetime import datetime
from urllib.parse import quote

from tagger.errors import (
    AccessDenied,
    AuthenticationError,
    NotFound,
    RegistryError,
    Unsupported,
    UsageError,
    register_secret,
)
from tagger.registry.http import RetryBudget, StatusRule
from tagger.registry.protocols import RegistryApi, Version
from tagger.registry.providers.api import Answer, Api, answer_text
from tagger.registry.reference import is_digest

DEFAULT_API_URL = "https://api.github.com"
PER_PAGE = 100
_TOKEN_HINT = (
    "set GITHUB_TOKEN (or GH_TOKEN) to a token that may delete packages: a classic token "
    "with read:packages and delete:packages, or in a workflow `permissions: packages: write`"
)
#: The GitHub API's additions to the core's status table.
GITHUB_RULES = (StatusRule(401, AuthenticationError, hint=_TOKEN_HINT),)


#: One version of a container package (the registry layer's own value type).
PackageVersion = Version


def split_repository(repository: str) -> tuple[str, str]:
    """``OWNER/PACKAGE`` of an image path; the package may hold ``/``.

    >>> split_repository("acme/tools/app")
    ('acme', 'tools/app')
    """
    owner, _, package = repository.partition("/")
    if not owner or not package:
        raise UsageError(
            f"{repository!r} is no ghcr package: ghcr images are ghcr.io/OWNER/PACKAGE"
        )
    return owner, package


def _when(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def parse_versions(page: object) -> list[PackageVersion]:
    """The versions of one page of the list endpoint; entries that are not versions of a
    container (no digest name) are left out.

    >>> parse_versions([{"id": 7, "name": "sha256:" + "a" * 64,
    ...                  "metadata": {"container": {"tags": ["1.0.0-1"]}}}])[0].tags
    ('1.0.0-1',)
    """
    if not isinstance(page, list):
        raise RegistryError("the GitHub API answered a version list that is not a list")
    out = []
    for item in page:
        if not isinstance(item, dict):
            continue
        vid, name = item.get("id"), item.get("name")
        if isinstance(vid, bool) or not isinstance(vid, int) or not isinstance(name, str):
            continue
        if not is_digest(name):
            continue
        meta = item.get("metadata")
        container = meta.get("container") if isinstance(meta, dict) else None
        tags = container.get("tags") if isinstance(container, dict) else None
        clean = tuple(t for t in tags or () if isinstance(t, str))
        out.append(
            PackageVersion(
                vid, name, clean, _when(item.get("created_at")), _when(item.get("updated_at"))
            )
        )
    return out


class GhcrProvider:
    name = "ghcr"

    def __init__(self, env: Mapping[str, str], budget: RetryBudget | None = None) -> None:
        self._budget = budget  # the registry's: one budget for the command
        self._base = env.get("GITHUB_API_URL") or DEFAULT_API_URL
        self._token = (env.get("GITHUB_TOKEN") or env.get("GH_TOKEN") or "").strip() or None
        register_secret(self._token)
        self._api: Api | None = None
        self._lock = threading.Lock()
        self._search_lock = threading.Lock()
        self._kinds: dict[str, str] = {}
        self._scopes: str | None = None
        self._ids: dict[tuple[str, str], int] = {}
        self._refused: set[str] = set()

    # -- the API ---------------------------------------------------------------------------

    @property
    def api(self) -> Api:
        if self._token is None:
            raise UsageError(f"deleting from ghcr goes through the GitHub API: {_TOKEN_HINT}")
        if self._api is None:
            self._api = Api(
                self._base,
                variable="GITHUB_API_URL",
                what="the GitHub API",
                headers={
                    "Authorization": f"Bearer {self._token}",
                    "Accept": "application/vnd.github+json",
                    "X-GitHub-Api-Version": "2022-11-28",
                },
                rules=GITHUB_RULES,
                # GitHub's secondary limits: "wait for at least one minute" when no header
                # says how long (rate-limits-for-the-rest-api, "Handle rate limit errors").
                bare_429=60.0,
                budget=self._budget,
            )
        return self._api

    def _kind(self, owner: str) -> str:
        """``users`` or ``orgs``: where the owner's packages live."""
        with self._lock:
            if owner in self._kinds:
                return self._kinds[owner]
        doing = f"looking up the owner {owner}"
        resp = self.api.request("GET", f"/users/{quote(owner, safe='')}", doing=doing, ok=(404,))
        if resp.status == 404:
            raise RegistryError(
                f"the GitHub API at {self.api.base} knows no user or organisation {owner!r}: "
                "check the image name (ghcr.io/OWNER/PACKAGE) and GITHUB_API_URL"
            )
        doc = resp.json(doing)
        kind = "orgs" if isinstance(doc, dict) and doc.get("type") == "Organization" else "users"
        with self._lock:
            self._kinds[owner] = kind
            if self._scopes is None:
                self._scopes = resp.headers.get("x-oauth-scopes")
        return kind

    def _path(self, repository: str) -> str:
        owner, package = split_repository(repository)
        kind = self._kind(owner)
        # Nested package names are one path segment: "tools/app" is "tools%2Fapp".
        return f"/{kind}/{quote(owner, safe='')}/packages/container/{quote(package, safe='')}"

    # -- the Provider interface --------------------------------------------------------------

    def check(self, api: RegistryApi, repository: str, *, delete: bool, untagged: bool) -> None:
        split_repository(repository)
        if delete or untagged:
            self._path(repository)  # a token, and an owner that exists
        if delete and self.delete_refusal(api, repository) is not None:
            raise AccessDenied(
                f"the token in GITHUB_TOKEN/GH_TOKEN lacks the scope delete:packages "
                f"(it has: {self._scopes}): {_TOKEN_HINT}"
            )

    def delete_refusal(self, api: RegistryApi, repository: str) -> str | None:
        if self._token is None:
            return f"deleting from ghcr goes through the GitHub API: {_TOKEN_HINT}"
        self._path(repository)
        # A classic token lists its scopes in X-OAuth-Scopes; a workflow's token lists none
        # and is judged by its delete.
        scopes = (self._scopes or "").strip()
        if scopes and "delete:packages" not in {s.strip() for s in scopes.split(",")}:
            return f"the token lacks the scope delete:packages: {_TOKEN_HINT}"
        return None

    def versions(self, api: RegistryApi, repository: str) -> list[PackageVersion]:
        """Every version of the package, to the last page."""
        out: list[PackageVersion] = []
        for page in self._pages(repository):
            out.extend(page)
        return out

    def _pages(self, repository: str) -> Iterator[list[PackageVersion]]:
        """Pages of versions, fetched as they are consumed (a search may stop early)."""
        path = f"{self._path(repository)}/versions"
        doing = f"listing the versions of ghcr.io/{repository}"
        try:
            for doc in self.api.pages(
                path, doing=doing, params={"per_page": str(PER_PAGE)}, body_next=False
            ):
                yield parse_versions(doc)
        except NotFound:
            raise RegistryError(
                f"the GitHub API shows no container package ghcr.io/{repository} to this "
                f"token: check the name, and that the token may read it ({_TOKEN_HINT})"
            ) from None

    def delete(self, api: RegistryApi, repository: str, ref: str) -> None:
        if not is_digest(ref):
            raise Unsupported(
                f"ghcr deletes whole versions through the GitHub API, not the tag {ref} alone"
            )
        vid = self._version_id(api, repository, ref)
        path = f"{self._path(repository)}/versions/{vid}"
        doing = f"deleting version {vid} ({ref[:19]}) of ghcr.io/{repository}"
        resp = self.api.request("DELETE", path, doing=doing, ok=(400, 401, 403, 404))
        if resp.status < 300:
            return
        self._refuse(resp, repository, ref, doing)

    def _refuse(self, resp: Answer, repository: str, digest: str, doing: str) -> None:
        detail = answer_text(resp)
        if resp.status == 404:
            raise NotFound(f"ghcr.io/{repository}@{digest} is gone already")
        if resp.status == 400:
            with self._lock:
                self._refused.add(digest)
            raise RegistryError(
                f"the GitHub API refused while {doing}: {detail or 'HTTP 400'} (ghcr keeps "
                "the last tagged version of a package)"
            )
        if resp.status == 401:
            raise AuthenticationError(
                f"the GitHub API rejected the token while {doing}: {_TOKEN_HINT}"
            )
        raise AccessDenied(
            f"the GitHub API denied the delete while {doing}"
            f"{f' ({detail})' if detail else ''}: the token may not delete this package; "
            f"{_TOKEN_HINT}"
        )

    def refused_as_last(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._refused)

    def _version_id(self, api: RegistryApi, repository: str, digest: str) -> int:
        """The id of the version named ``digest``: a digest's id never changes, so ids are
        remembered; an unknown digest is looked for from the newest page on (a placeholder
        pushed a moment ago is on the first)."""
        key = (repository, digest)
        with self._lock:
            if key in self._ids:
                return self._ids[key]
        # One search at a time: pages shift under a search while versions are deleted, so
        # a version missed is searched again once before it counts as gone.
        with self._search_lock:
            for _attempt in range(2):
                for page in self._pages(repository):
                    with self._lock:
                        self._ids.update({(repository, v.digest): v.id for v in page})
                    if any(v.digest == digest for v in page):
                        return self._ids[key]
                if api.head_manifest(repository, digest) is None:
                    break
        if api.head_manifest(repository, digest) is not None:
            raise RegistryError(
                f"the GitHub API lists no version {digest[:19]} of ghcr.io/{repository}, but "
                "the registry has it: run again"
            )
        raise NotFound(f"ghcr.io/{repository} has no version {digest[:19]} (gone already)")

    def immutable_tags(self, api: RegistryApi, repository: str) -> str | None:
        return None
