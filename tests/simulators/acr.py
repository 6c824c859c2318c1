"""An Azure Container Registry simulator: the registry API of a real Distribution registry
(manifest DELETE by digest passed through unless the image is locked) and ACR's own
``/acr/v1`` API and ``/oauth2`` token endpoints over that registry's state.

Standard library only; does I/O (threads on 127.0.0.1, the real registry's API and storage).

What it follows, from the Azure Container Registry REST reference
(https://learn.microsoft.com/en-us/rest/api/containerregistry/):

- "Refresh Tokens - Get From Exchange": ``POST /oauth2/exchange`` (form:
  ``grant_type=access_token``, ``service``, ``access_token``) answers ``refresh_token``;
- "Access Tokens - Get": ``POST /oauth2/token`` (form: ``grant_type=refresh_token``,
  ``service``, ``scope``, ``refresh_token``) answers ``access_token``; "Access Tokens - Get
  From Login": ``GET /oauth2/token?service=…&scope=…`` with Basic authentication
  (https://github.com/Azure/acr/blob/main/docs/AAD-OAuth.md tells the same flow);
- "Tag - Get List" (``GET /acr/v1/{name}/_tags``, ``n``, ``last``, ``Link`` ``rel="next"``;
  ``tags`` with ``name``, ``digest``, ``createdTime``, ``lastUpdateTime``,
  ``changeableAttributes``), "Tag - Get Attributes" (``…/_tags/{reference}``: ``tag``),
  "Tag - Delete" (``DELETE …/_tags/{reference}``, 202: the tag alone);
- "Manifests - Get List" (``GET /acr/v1/{name}/_manifests``: every manifest, tagged or
  not, with ``tags``) and "Manifests - Get Attributes" (``…/_manifests/{digest}``:
  ``manifest``);
- locks (https://learn.microsoft.com/en-us/azure/container-registry/container-registry-image-lock):
  an image or tag with ``writeEnabled`` or ``deleteEnabled`` false refuses its delete
  ("The operation is disallowed on this registry, repository or image.").

The model: ACR repository ``R`` is the registry repository ``R``; a tag deleted alone points
at a unique placeholder that is deleted by digest (the real registry cannot delete a tag);
times are the mtimes of the revision links. Requests need an access token whose scope
names the repository (``delete`` for deletes, ``metadata_read`` for the rest).
"""

from __future__ import annotations

import re
import secrets
import threading
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faultproxy import FaultProxy, distribution_error
from simulators.common import JsonApi, RegistryState, Reply, Request, Simulator, iso

DISALLOWED = "The operation is disallowed on this registry, repository or image."
_MANIFEST = re.compile(r"/v2/(?P<repo>.+)/manifests/(?P<ref>[^/]+)")


def attributes(write: bool = True, delete: bool = True) -> dict[str, bool]:
    return {
        "deleteEnabled": delete,
        "writeEnabled": write,
        "readEnabled": True,
        "listEnabled": True,
    }


@dataclass
class AcrSimulator(Simulator):
    """Start with :meth:`start`; ``registry_host`` goes in image names, ``api_url`` in
    ``IMGTAG_ACR_API_URL``. ``refresh_tokens`` are what ``az acr login`` leaves in the
    docker config; ``aad_tokens`` Entra ID tokens it exchanges; ``users`` user → password."""

    registry_target: str
    storage: Path
    refresh_tokens: set[str] = field(default_factory=set)
    aad_tokens: set[str] = field(default_factory=set)
    users: dict[str, str] = field(default_factory=dict)
    max_page: int = 100

    def start(self) -> AcrSimulator:
        self.state = RegistryState(f"http://{self.registry_target}", self.storage)
        self.front = FaultProxy(self.registry_target).start()
        self.front.intercept(self._registry_answer)
        #: (repo, tag or digest) -> changeableAttributes; absent: all enabled.
        self.locks: dict[tuple[str, str], dict[str, bool]] = {}
        self._access: dict[str, str] = {}  # access token -> scope
        self._lock = threading.Lock()
        name, digest = r"(?P<repo>.+)", r"(?P<digest>sha256:[0-9a-f]{64})"
        self.api = JsonApi(
            [
                ("POST", r"/oauth2/exchange", self._exchange),
                ("POST", r"/oauth2/token", self._token),
                ("GET", r"/oauth2/token", self._login),
                ("GET", rf"/acr/v1/{name}/_tags", self._tags),
                ("GET", rf"/acr/v1/{name}/_tags/(?P<tag>[^/]+)", self._tag),
                ("DELETE", rf"/acr/v1/{name}/_tags/(?P<tag>[^/]+)", self._delete_tag),
                ("GET", rf"/acr/v1/{name}/_manifests", self._manifests),
                ("GET", rf"/acr/v1/{name}/_manifests/{digest}", self._manifest),
            ]
        )  # fmt: skip
        return self

    @property
    def api_url(self) -> str:
        return self.api.base

    def lock(self, repo: str, ref: str, *, write: bool = True, delete: bool = True) -> None:
        self.locks[(repo, ref)] = attributes(write, delete)

    def _attrs(self, repo: str, ref: str) -> dict[str, bool]:
        return self.locks.get((repo, ref), attributes())

    @staticmethod
    def _locked(attrs: dict[str, bool]) -> bool:
        return not (attrs["deleteEnabled"] and attrs["writeEnabled"])

    # -- the registry front: locked images refuse their DELETE -------------------------------

    def _registry_answer(
        self, method: str, path: str, query: str
    ) -> tuple[int, dict[str, str], bytes] | None:
        m = _MANIFEST.fullmatch(path)
        if method != "DELETE" or m is None:
            return None
        repo, ref = m["repo"], m["ref"]
        if not ref.startswith("sha256:"):
            return distribution_error(405, "UNSUPPORTED", "The operation is unsupported.")
        tags = [t for t, d in self.state.tags(repo).items() if d == ref]
        if self._locked(self._attrs(repo, ref)) or any(
            self._locked(self._attrs(repo, t)) for t in tags
        ):
            return distribution_error(405, "UNSUPPORTED", DISALLOWED)
        return None

    # -- tokens ------------------------------------------------------------------------------

    @staticmethod
    def _form(req: Request) -> dict[str, str]:
        return dict(urllib.parse.parse_qsl(req.body.decode()))

    def _exchange(self, req: Request) -> Reply:
        form = self._form(req)
        if (
            form.get("grant_type") != "access_token"
            or form.get("access_token") not in self.aad_tokens
        ):
            return Reply(
                401, {"errors": [{"code": "UNAUTHORIZED", "message": "invalid AAD token"}]}
            )
        refresh = "acr-refresh-" + secrets.token_hex(12)
        with self._lock:
            self.refresh_tokens.add(refresh)
        return Reply(200, {"refresh_token": refresh})

    def _issue(self, scope: str) -> Reply:
        token = "acr-access-" + secrets.token_hex(12)
        with self._lock:
            self._access[token] = scope
        return Reply(200, {"access_token": token})

    def _token(self, req: Request) -> Reply:
        form = self._form(req)
        if (
            form.get("grant_type") != "refresh_token"
            or form.get("refresh_token") not in self.refresh_tokens
        ):
            return Reply(
                401, {"errors": [{"code": "UNAUTHORIZED", "message": "invalid refresh token"}]}
            )
        return self._issue(form.get("scope", ""))

    def _login(self, req: Request) -> Reply:
        import base64

        scheme, _, value = str(req.headers.get("Authorization") or "").partition(" ")
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except ValueError:
            user, password = "", ""
        if scheme.lower() != "basic" or self.users.get(user) != password or not user:
            return Reply(
                401, {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}
            )
        return self._issue(req.query.get("scope", ""))

    def _allowed(self, req: Request, repo: str, action: str) -> Reply | None:
        with self._lock:
            scope = self._access.get(req.bearer or "")
        if scope is None:
            return Reply(
                401, {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}
            )
        kind, _, rest = scope.partition(":")
        name, _, actions = rest.rpartition(":")
        if kind != "repository" or name != repo or action not in actions.split(","):
            return Reply(
                403,
                {
                    "errors": [
                        {"code": "DENIED", "message": "requested access to the resource is denied"}
                    ]
                },
            )
        return None

    # -- /acr/v1 ------------------------------------------------------------------------------

    def _page(self, req: Request, repo: str, items: list[dict[str, Any]], key: str) -> Reply:
        try:
            n = max(1, min(int(req.query.get("n", "100")), self.max_page))
        except ValueError:
            return Reply(400, {"errors": [{"code": "BAD_REQUEST", "message": "bad n"}]})
        last = req.query.get("last")
        names = [str(i["name"] if "name" in i else i["digest"]) for i in items]
        start = names.index(last) + 1 if last in names else 0
        chunk = items[start : start + n]
        headers = {}
        if start + n < len(items):
            q = urllib.parse.urlencode({"last": names[start + n - 1], "n": str(n)})
            headers["Link"] = f'<{req.path}?{q}>; rel="next"'
        doc = {"registry": self.registry_host, "imageName": repo, key: chunk}
        return Reply(200, doc, headers)

    def _tag_doc(self, repo: str, tag: str, digest: str, updated: float) -> dict[str, Any]:
        return {
            "name": tag,
            "digest": digest,
            "createdTime": iso(updated).replace("Z", ".1234567Z"),
            "lastUpdateTime": iso(updated).replace("Z", ".1234567Z"),
            "signed": False,
            "changeableAttributes": self._attrs(repo, tag),
        }

    def _manifest_doc(
        self, repo: str, digest: str, tags: tuple[str, ...], updated: float
    ) -> dict[str, Any]:
        return {
            "digest": digest,
            "imageSize": 1,
            "createdTime": iso(updated).replace("Z", ".1234567Z"),
            "lastUpdateTime": iso(updated).replace("Z", ".1234567Z"),
            "tags": list(tags),
            "changeableAttributes": self._attrs(repo, digest),
        }

    def _tags(self, req: Request, repo: str) -> Reply:
        repo = urllib.parse.unquote(repo)
        if (denied := self._allowed(req, repo, "metadata_read")) is not None:
            return denied
        rows = sorted(
            (
                self._tag_doc(repo, t, m.digest, m.updated)
                for m in self.state.manifests(repo)
                for t in m.tags
            ),
            key=lambda r: str(r["name"]),
        )
        return self._page(req, repo, rows, "tags")

    def _tag(self, req: Request, repo: str, tag: str) -> Reply:
        repo, tag = urllib.parse.unquote(repo), urllib.parse.unquote(tag)
        if (denied := self._allowed(req, repo, "metadata_read")) is not None:
            return denied
        for m in self.state.manifests(repo):
            if tag in m.tags:
                doc = {"registry": self.registry_host, "imageName": repo}
                return Reply(200, {**doc, "tag": self._tag_doc(repo, tag, m.digest, m.updated)})
        return Reply(
            404,
            {"errors": [{"code": "TAG_UNKNOWN", "message": "the specified tag does not exist"}]},
        )

    def _delete_tag(self, req: Request, repo: str, tag: str) -> Reply:
        repo, tag = urllib.parse.unquote(repo), urllib.parse.unquote(tag)
        if (denied := self._allowed(req, repo, "delete")) is not None:
            return denied
        if self.state.head(repo, tag) is None:
            return Reply(
                404,
                {
                    "errors": [
                        {"code": "TAG_UNKNOWN", "message": "the specified tag does not exist"}
                    ]
                },
            )
        if self._locked(self._attrs(repo, tag)):
            return Reply(405, {"errors": [{"code": "UNSUPPORTED", "message": DISALLOWED}]})
        self.state.remove_tag(repo, tag)
        return Reply(202)

    def _manifests(self, req: Request, repo: str) -> Reply:
        repo = urllib.parse.unquote(repo)
        if (denied := self._allowed(req, repo, "metadata_read")) is not None:
            return denied
        rows = [
            self._manifest_doc(repo, m.digest, m.tags, m.updated)
            for m in self.state.manifests(repo)
        ]
        if not rows:
            return Reply(
                404,
                {
                    "errors": [
                        {"code": "NAME_UNKNOWN", "message": "repository name not known to registry"}
                    ]
                },
            )
        return self._page(req, repo, rows, "manifests")

    def _manifest(self, req: Request, repo: str, digest: str) -> Reply:
        repo = urllib.parse.unquote(repo)
        if (denied := self._allowed(req, repo, "metadata_read")) is not None:
            return denied
        for m in self.state.manifests(repo):
            if m.digest == digest:
                doc = {"registry": self.registry_host, "imageName": repo}
                return Reply(
                    200, {**doc, "manifest": self._manifest_doc(repo, m.digest, m.tags, m.updated)}
                )
        return Reply(404, {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]})
