"""A ghcr.io simulator: the registry API of a real Distribution registry with DELETE
refused, and the GitHub REST API's "packages" endpoints over that registry's state.

Standard library only; does I/O (threads on 127.0.0.1, the real registry's API and storage).

What it follows, from the public documentation:

- https://docs.github.com/en/rest/packages/packages: "List package versions for a package
  owned by an organization / by a user" (``GET /{orgs|users}/{owner}/packages/container/
  {package_name}/versions``, each version with ``id``, ``name`` = the manifest digest,
  ``created_at``, ``updated_at`` and ``metadata.container.tags``), "Delete package version
  for an organization / for a user" (``DELETE .../versions/{package_version_id}``, 204), and
  the scopes: ``read:packages`` to list, ``delete:packages`` to delete;
- https://docs.github.com/en/rest/users/users ("Get a user": ``type`` is ``User`` or
  ``Organization``);
- https://docs.github.com/en/rest/using-the-rest-api/using-pagination-in-the-rest-api
  (``page``, ``per_page`` at most 100, ``Link`` with ``rel="next"``/``"last"``);
- https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api (403 or
  429 with ``x-ratelimit-remaining: 0`` and ``x-ratelimit-reset``, or ``retry-after``);
- deleting a package's last tagged version answers 400 ("You cannot delete the last tagged
  version of a package. You must delete the package instead."), as reported in
  https://github.com/kairos-io/kairos/issues/4723 and
  https://github.com/actions/delete-package-versions/issues/231; a second delete 404.

The model: package ``P`` of owner ``O`` is the registry repository ``O/P`` (``P`` may hold
``/``, sent as ``%2F``); its versions are the repository's manifests, tagged or not; a
version id is given to a digest the first time it is seen and never changes; deleting a
version deletes that digest on the real registry (every tag on it goes). The API is served
under ``/api/v3``, as on GitHub Enterprise, so that clients must keep the base's path.
"""

from __future__ import annotations

import itertools
import threading
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from simulators.common import (
    JsonApi,
    RegistryState,
    Reply,
    Request,
    Simulator,
    iso,
    page_link,
    registry_front,
)

API_PREFIX = "/api/v3"
LAST_TAGGED = (
    "You cannot delete the last tagged version of a package. You must delete the package instead."
)


@dataclass
class Token:
    scopes: str = "read:packages, write:packages, delete:packages"
    classic: bool = True  # classic tokens list their scopes in X-OAuth-Scopes

    @property
    def may_delete(self) -> bool:
        return "delete:packages" in self.scopes


@dataclass
class GhcrSimulator(Simulator):
    """Start with :meth:`start`; ``registry_host`` goes in image names, ``api_url`` in
    ``GITHUB_API_URL``; ``tokens`` maps token values to their rights."""

    registry_target: str  # the real registry, 127.0.0.1:PORT
    storage: Path  # its storage root directory
    owners: dict[str, str] = field(
        default_factory=lambda: {"alice": "User", "acme": "Organization"}
    )
    tokens: dict[str, Token] = field(default_factory=dict)
    max_per_page: int = 100
    #: Digests whose delete answers 400 as the last tagged version would (a fault).
    refuse_as_last: set[str] = field(default_factory=set)

    def start(self) -> GhcrSimulator:
        self.state = RegistryState(f"http://{self.registry_target}", self.storage)
        self.front = registry_front(self.registry_target)
        self._ids: dict[tuple[str, str], int] = {}
        self._next_id = itertools.count(1000)
        self._lock = threading.Lock()
        owner = r"(?P<owner>[^/]+)"
        pkg = r"(?P<package>[^/]+)"
        versions = rf"{API_PREFIX}/(?P<kind>users|orgs)/{owner}/packages/container/{pkg}/versions"
        self.api = JsonApi(
            [
                ("GET", rf"{API_PREFIX}/users/{owner}", self._user),
                ("GET", versions, self._list),
                ("DELETE", rf"{versions}/(?P<vid>\d+)", self._delete),
            ]
        )
        return self

    @property
    def api_url(self) -> str:
        return f"{self.api.base}{API_PREFIX}"

    # -- the API ----------------------------------------------------------------------------

    def _auth(self, req: Request) -> tuple[Token | None, Reply | None]:
        token = self.tokens.get(req.bearer or "")
        if token is None:
            return None, Reply(401, {"message": "Bad credentials"})
        return token, None

    def _headers(self, token: Token) -> dict[str, str]:
        return {"X-OAuth-Scopes": token.scopes} if token.classic else {}

    def _user(self, req: Request, owner: str) -> Reply:
        token, denied = self._auth(req)
        if denied or token is None:
            return denied or Reply(401)
        kind = self.owners.get(owner)
        if kind is None:
            return Reply(404, {"message": "Not Found"})
        return Reply(200, {"login": owner, "type": kind}, self._headers(token))

    def _package(self, kind: str, owner: str, package: str) -> str | None:
        """The registry repository of a package, or None if there is no such package."""
        expected = "orgs" if self.owners.get(owner) == "Organization" else "users"
        if owner not in self.owners or kind != expected:
            return None
        repo = f"{owner}/{urllib.parse.unquote(package)}"
        return repo if self.state.manifests(repo) else None

    def versions(self, repo: str) -> list[dict[str, object]]:
        """The versions of a package as the API lists them, newest first."""
        out = []
        for m in self.state.manifests(repo):
            with self._lock:
                vid = self._ids.setdefault((repo, m.digest), next(self._next_id))
            out.append(
                {
                    "id": vid,
                    "name": m.digest,
                    "url": f"{self.api_url}/versions/{vid}",
                    "created_at": iso(m.updated),
                    "updated_at": iso(m.updated),
                    "metadata": {"package_type": "container", "container": {"tags": list(m.tags)}},
                }
            )
        out.sort(key=lambda v: (str(v["updated_at"]), int(str(v["id"]))), reverse=True)
        return out

    def _list(self, req: Request, kind: str, owner: str, package: str) -> Reply:
        token, denied = self._auth(req)
        if denied or token is None:
            return denied or Reply(401)
        repo = self._package(kind, owner, package)
        if repo is None:
            return Reply(404, {"message": "Package not found."})
        try:
            per_page = max(1, min(int(req.query.get("per_page", "30")), 100, self.max_per_page))
            page = max(1, int(req.query.get("page", "1")))
        except ValueError:
            return Reply(422, {"message": "Invalid page"})
        items = self.versions(repo)
        last = max(1, -(-len(items) // per_page))
        chunk = items[(page - 1) * per_page : page * per_page]
        headers = self._headers(token)
        if last > 1:
            query = {k: v for k, v in req.query.items() if k != "page"}
            headers["Link"] = page_link(f"{req.base}{req.path}", query, page, last)
        return Reply(200, chunk, headers)

    def _delete(self, req: Request, kind: str, owner: str, package: str, vid: str) -> Reply:
        token, denied = self._auth(req)
        if denied or token is None:
            return denied or Reply(401)
        repo = self._package(kind, owner, package)
        if repo is None:
            return Reply(404, {"message": "Package not found."})
        if not token.may_delete:
            return Reply(
                403,
                {"message": "You need delete:packages scope to delete package versions."},
                {**self._headers(token), "X-Accepted-OAuth-Scopes": "delete:packages"},
            )
        versions = {int(str(v["id"])): v for v in self.versions(repo)}
        version = versions.get(int(vid))
        if version is None:
            return Reply(404, {"message": "Package version not found."})
        digest = str(version["name"])
        tagged = [v for v in versions.values() if v["metadata"]["container"]["tags"]]  # type: ignore[index]
        if digest in self.refuse_as_last or (len(tagged) == 1 and tagged[0] is version):
            return Reply(400, {"message": LAST_TAGGED})
        self.state.delete_digest(repo, digest)  # a failure answers 500 "simulator bug"
        return Reply(204)
