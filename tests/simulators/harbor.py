"""A Harbor simulator: the registry API of a real Distribution registry with DELETE
refused, and Harbor's API v2.0 (repositories, artifacts, tag and artifact deletes,
immutable-tag rules) over that registry's state.

Standard library only; does I/O (threads on 127.0.0.1, the real registry's API and storage).

What it follows, from Harbor's public API definition and documentation:

- https://github.com/goharbor/harbor/blob/main/api/v2.0/swagger.yaml: basePath
  ``/api/v2.0``; ``GET /projects/{project_name}/repositories`` and ``GET /repositories``
  (``name`` is ``project/path``); ``GET /projects/{project_name}/repositories/
  {repository_name}/artifacts`` (``page``, ``page_size`` at most 100, ``q``,
  ``with_tag``; ``Link`` and ``X-Total-Count`` headers; each artifact with ``id``,
  ``digest``, ``manifest_media_type``, ``push_time``, ``tags[].name`` and
  ``references[].child_digest``); ``DELETE …/artifacts/{reference}/tags/{tag_name}`` and
  ``DELETE …/artifacts/{reference}`` (200); the parameter ``repository_name`` is "The name
  of the repository. If it contains slash, encode it twice over with URL encoding. e.g.
  a/b -> a%2Fb -> a%252Fb"; errors as ``{"errors": [{"code", "message"}]}``, 412 for a
  precondition that fails;
- https://goharbor.io/docs/main/working-with-projects/working-with-images/create-tag-immutability-rules/
  (rules per project: repositories and tags matched by doublestar patterns such as
  ``**``, ``1.*``, ``{a,b}``; an immutable tag cannot be deleted, nor the artifact it is on);
- https://goharbor.io/docs/main/working-with-projects/project-configuration/create-robot-accounts/
  (robot accounts log in with HTTP Basic, as users do).

The model: project ``P``'s repository ``P/R`` is the real registry's repository ``P/R``;
every manifest is an artifact; an artifact id is given on first sight and never changes;
a tag delete points the tag at a unique placeholder on the real registry and deletes that
by digest (Distribution cannot delete a tag alone): the tag goes, its artifact stays.
"""

from __future__ import annotations

import base64
import itertools
import re
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

API_PREFIX = "/api/v2.0"
_INDEX_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
)


def doublestar(pattern: str) -> re.Pattern[str]:
    """A doublestar pattern as a regex: ``**`` any path, ``*`` any name part, ``?`` one
    character, ``{a,b}`` either."""
    out, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            out, i = out + ".*", i + 2
            continue
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "{":
            end = pattern.index("}", i)
            out += "(?:" + "|".join(re.escape(a) for a in pattern[i + 1 : end].split(",")) + ")"
            i = end
        else:
            out += re.escape(c)
        i += 1
    return re.compile(out + r"\Z")


def _errors(status: int, code: str, message: str) -> Reply:
    return Reply(status, {"errors": [{"code": code, "message": message}]})


@dataclass
class HarborSimulator(Simulator):
    """``registry_host`` goes in image names, ``api_url`` in ``IMGTAG_HARBOR_API_URL``;
    ``users`` maps user (or robot) names to passwords; ``immutable`` maps a project to its
    rules, each ``(repository pattern, tag pattern)`` (the repository without the project)."""

    registry_target: str
    storage: Path
    users: dict[str, str] = field(default_factory=dict)
    immutable: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    max_page_size: int = 100

    def start(self) -> HarborSimulator:
        self.state = RegistryState(f"http://{self.registry_target}", self.storage)
        self.front = registry_front(self.registry_target)
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._artifact_ids: dict[tuple[str, str], int] = {}
        p, r = r"(?P<project>[^/]+)", r"(?P<repo>[^/]+)"
        base = f"{API_PREFIX}/projects/{p}/repositories/{r}/artifacts"
        self.api = JsonApi(
            [
                ("GET", f"{API_PREFIX}/repositories", self._all_repositories),
                ("GET", f"{API_PREFIX}/projects/{p}/repositories", self._repositories),
                ("GET", base, self._artifacts),
                ("DELETE", f"{base}/(?P<ref>[^/]+)/tags/(?P<tag>[^/]+)", self._delete_tag),
                ("DELETE", f"{base}/(?P<ref>[^/]+)", self._delete_artifact),
            ]
        )
        return self

    @property
    def api_url(self) -> str:
        return f"{self.api.base}{API_PREFIX}"

    # -- the model ---------------------------------------------------------------------------

    def is_immutable(self, name: str, tag: str) -> bool:
        project, _, repo = name.partition("/")
        return any(
            doublestar(rp).match(repo) and doublestar(tp).match(tag)
            for rp, tp in self.immutable.get(project, [])
        )

    def _user(self, req: Request) -> str | None:
        scheme, _, value = (req.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except ValueError:
            return None
        return user if self.users.get(user) == password else None

    def _name(self, req: Request, project: str, repo: str) -> tuple[str, Reply | None]:
        if self._user(req) is None:
            return "", _errors(401, "UNAUTHORIZED", "unauthorized")
        once = urllib.parse.unquote(repo)
        if "/" in once:
            # Encoded once: Harbor's router decodes it to a path, and no route matches.
            return "", _errors(404, "NOT_FOUND", "the requested resource is not found")
        name = f"{urllib.parse.unquote(project)}/{urllib.parse.unquote(once)}"
        if not self.state.manifests(name):
            return "", _errors(404, "NOT_FOUND", f"repository {name} not found")
        return name, None

    def _page(self, req: Request, rows: list[dict[str, object]]) -> Reply:
        try:
            size = max(1, min(int(req.query.get("page_size", "10")), 100, self.max_page_size))
            page = max(1, int(req.query.get("page", "1")))
        except ValueError:
            return _errors(400, "BAD_REQUEST", "invalid page")
        last = max(1, -(-len(rows) // size))
        query = {**req.query, "page_size": str(size)}
        headers = {"X-Total-Count": str(len(rows))}
        link = page_link(f"{req.base}{req.path}", query, page, last)
        if link:
            headers["Link"] = link
        return Reply(200, rows[(page - 1) * size : page * size], headers)

    # -- the API -----------------------------------------------------------------------------

    def _repository_rows(self, names: list[str]) -> list[dict[str, object]]:
        return [{"id": n + 1, "name": name} for n, name in enumerate(names)]

    def _all_repositories(self, req: Request) -> Reply:
        if self._user(req) is None:
            return _errors(401, "UNAUTHORIZED", "unauthorized")
        return self._page(req, self._repository_rows(self.state.catalog()))

    def _repositories(self, req: Request, project: str) -> Reply:
        if self._user(req) is None:
            return _errors(401, "UNAUTHORIZED", "unauthorized")
        prefix = urllib.parse.unquote(project) + "/"
        names = self.state.catalog(prefix)
        if not names:
            return _errors(404, "NOT_FOUND", f"project {project} not found")
        return self._page(req, self._repository_rows(names))

    def _artifact_id(self, name: str, digest: str) -> int:
        with self._lock:
            key = (name, digest)
            if key not in self._artifact_ids:
                self._artifact_ids[key] = next(self._ids)
            return self._artifact_ids[key]

    def _artifacts(self, req: Request, project: str, repo: str) -> Reply:
        name, denied = self._name(req, project, repo)
        if denied is not None:
            return denied
        rows = []
        for m in reversed(self.state.manifests(name)):  # newest first, as Harbor sorts
            media_type, doc = self.state.manifest(name, m.digest)
            children = doc.get("manifests") if media_type in _INDEX_TYPES else None
            row: dict[str, object] = {
                "id": self._artifact_id(name, m.digest),
                "digest": m.digest,
                "manifest_media_type": media_type,
                "push_time": iso(m.updated),
                "references": [
                    {"child_digest": c.get("digest")} for c in children or [] if isinstance(c, dict)
                ],
            }
            if req.query.get("with_tag", "true") == "true":
                row["tags"] = [{"name": t, "push_time": iso(m.updated)} for t in m.tags] or None
            if req.query.get("q") == "tags=nil" and m.tags:
                continue
            rows.append(row)
        return self._page(req, rows)

    def _delete_tag(self, req: Request, project: str, repo: str, ref: str, tag: str) -> Reply:
        name, denied = self._name(req, project, repo)
        if denied is not None:
            return denied
        tag, ref = urllib.parse.unquote(tag), urllib.parse.unquote(ref)
        digest = self.state.head(name, tag)
        if digest is None or self.state.head(name, ref) != digest:
            return _errors(404, "NOT_FOUND", f"tag {tag} not found")
        if self.is_immutable(name, tag):
            return _errors(
                412,
                "PRECONDITION",
                f"the operation isn't allowed as the tag {tag} of {name} is configured as "
                "immutable, update the tag immutability rule first",
            )
        self.state.remove_tag(name, tag)
        return Reply(200)

    def _delete_artifact(self, req: Request, project: str, repo: str, ref: str) -> Reply:
        name, denied = self._name(req, project, repo)
        if denied is not None:
            return denied
        ref = urllib.parse.unquote(ref)
        digest = self.state.head(name, ref)
        if digest is None:
            return _errors(404, "NOT_FOUND", f"artifact {ref} not found")
        tags = [t for t, d in self.state.tags(name).items() if d == digest]
        locked = [t for t in tags if self.is_immutable(name, t)]
        if locked:
            return _errors(
                412,
                "PRECONDITION",
                f"the operation isn't allowed as the tag {locked[0]} of {name} is configured "
                "as immutable, update the tag immutability rule first",
            )
        self.state.delete_digest(name, digest)
        return Reply(200)
