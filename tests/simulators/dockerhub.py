"""A Docker Hub simulator: the registry API of a real Distribution registry with DELETE
refused, and the Hub API's login, tag list and tag delete over that registry's state.

Standard library only; does I/O (threads on 127.0.0.1, the real registry's API and storage).

What it follows, from the public documentation:

- https://docs.docker.com/reference/api/hub/latest/ ("Create an access token":
  ``POST /v2/auth/token`` with ``identifier``/``secret`` answers ``access_token``; the older
  ``POST /v2/users/login`` with ``username``/``password`` answers ``token``; "Rate Limiting":
  429 with ``Retry-After``, ``X-RateLimit-*`` headers);
- https://docs.docker.com/reference/api/hub/latest/operations/ListRepositoryTags/
  (``GET /v2/namespaces/{namespace}/repositories/{repository}/tags``, ``page``,
  ``page_size`` at most 100; ``count``, ``next``, ``previous``, ``results`` with ``name``,
  ``digest``, ``last_updated``, ``images``);
- docker's hub-tool (https://github.com/docker/hub-tool, ``pkg/hub/tags.go``) deletes a tag
  with ``DELETE /v2/repositories/{namespace}/{repository}/tags/{tag}/``; the image stays.

The model: Hub repository ``NS/REPO`` is the registry repository ``NS/REPO``. The real
registry cannot delete a tag alone, so a tag delete here points the tag at a unique
placeholder and deletes the placeholder by digest: the tag is gone and its image stays (as
an untagged manifest), which is what Hub does.
"""

from __future__ import annotations

import secrets
import threading
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from simulators.common import JsonApi, RegistryState, Reply, Request, Simulator, iso, registry_front


@dataclass
class HubUser:
    password: str
    may_delete: bool = True


@dataclass
class DockerHubSimulator(Simulator):
    """Start with :meth:`start`; ``registry_host`` goes in image names, ``api_url`` in
    ``IMGTAG_DOCKERHUB_API_URL``; ``users`` maps user names to passwords and rights."""

    registry_target: str
    storage: Path
    users: dict[str, HubUser] = field(default_factory=dict)
    max_page_size: int = 100
    #: False: ``/v2/auth/token`` is missing (404), as on an older Hub API.
    auth_token_endpoint: bool = True

    def start(self) -> DockerHubSimulator:
        self.state = RegistryState(f"http://{self.registry_target}", self.storage)
        self.front = registry_front(self.registry_target)
        self._sessions: dict[str, str] = {}
        self._lock = threading.Lock()
        ns, repo = r"(?P<ns>[^/]+)", r"(?P<repo>[^/]+)"
        self.api = JsonApi(
            [
                ("POST", r"/v2/auth/token", self._auth_token),
                ("POST", r"/v2/users/login", self._users_login),
                ("GET", rf"/v2/namespaces/{ns}/repositories/{repo}/tags", self._tags),
                ("DELETE", rf"/v2/repositories/{ns}/{repo}/tags/(?P<tag>[^/]+)/", self._delete),
            ]
        )
        return self

    @property
    def api_url(self) -> str:
        return self.api.base

    # -- the API ----------------------------------------------------------------------------

    def _login(self, username: object, password: object, key: str) -> Reply:
        user = self.users.get(str(username))
        if user is None or user.password != password:
            return Reply(401, {"detail": "Incorrect authentication credentials"})
        token = "hubjwt-" + secrets.token_hex(16)
        with self._lock:
            self._sessions[token] = str(username)
        return Reply(200, {key: token})

    def _auth_token(self, req: Request) -> Reply:
        if not self.auth_token_endpoint:
            return Reply(404, {"detail": "Not found"})
        body = req.json() or {}
        return self._login(body.get("identifier"), body.get("secret"), "access_token")

    def _users_login(self, req: Request) -> Reply:
        body = req.json() or {}
        return self._login(body.get("username"), body.get("password"), "token")

    def _user(self, req: Request) -> HubUser | None:
        with self._lock:
            name = self._sessions.get(req.bearer or "")
        return self.users.get(name) if name else None

    def _tags(self, req: Request, ns: str, repo: str) -> Reply:
        if self._user(req) is None:
            return Reply(401, {"detail": "authentication required"})
        name = f"{urllib.parse.unquote(ns)}/{urllib.parse.unquote(repo)}"
        manifests = self.state.manifests(name)
        if not manifests:
            return Reply(404, {"message": "object not found", "errinfo": {}})
        rows = sorted(
            (
                {
                    "name": tag,
                    "digest": m.digest,
                    "last_updated": iso(m.updated),
                    "tag_status": "active",
                    "images": [{"digest": m.digest, "status": "active"}],
                }
                for m in manifests
                for tag in m.tags
            ),
            key=lambda r: (str(r["last_updated"]), str(r["name"])),
            reverse=True,
        )
        try:
            size = max(1, min(int(req.query.get("page_size", "10")), 100, self.max_page_size))
            page = max(1, int(req.query.get("page", "1")))
        except ValueError:
            return Reply(400, {"message": "invalid page"})
        chunk = rows[(page - 1) * size : page * size]

        def link(number: int) -> str:
            query = urllib.parse.urlencode(
                {**req.query, "page": str(number), "page_size": str(size)}
            )
            return f"{req.base}{req.path}?{query}"

        return Reply(
            200,
            {
                "count": len(rows),
                "next": link(page + 1) if page * size < len(rows) else None,
                "previous": link(page - 1) if page > 1 else None,
                "results": chunk,
            },
        )

    def _delete(self, req: Request, ns: str, repo: str, tag: str) -> Reply:
        user = self._user(req)
        if user is None:
            return Reply(401, {"detail": "authentication required"})
        if not user.may_delete:
            return Reply(403, {"detail": "insufficient scope: this token may not delete"})
        name = f"{urllib.parse.unquote(ns)}/{urllib.parse.unquote(repo)}"
        tag = urllib.parse.unquote(tag)
        if self.state.head(name, tag) is None:
            return Reply(404, {"message": "tag not found", "errinfo": {}})
        self.state.remove_tag(name, tag)
        return Reply(204)
