"""A GitLab simulator: GitLab's container registry in front of a real Distribution registry
(tag and digest DELETE with protected tags), and the GitLab REST API's container registry
endpoints over that registry's state.

Standard library only; does I/O (threads on 127.0.0.1, the real registry's API and storage).

What it follows, from GitLab's public documentation:

- https://docs.gitlab.com/api/container_registry/: ``GET /projects/:id/registry/repositories``
  and ``GET /groups/:id/registry/repositories`` (``id``, ``name``, ``path``, ``project_id``,
  ``location``), ``GET …/repositories/:repository_id/tags`` (``name``, ``path``,
  ``location`` only), ``GET …/tags/:tag_name`` (adds ``revision``, ``digest``,
  ``created_at``, ``total_size``), ``DELETE …/tags/:tag_name`` (200); "Container registry
  pagination" (``page``, ``per_page`` at most 100, ``Link`` with ``rel="next"``); a job
  token in ``JOB-TOKEN`` reaches only its own project;
- https://docs.gitlab.com/api/rest/#namespaced-paths: ``:id`` is a project id or its
  URL-encoded path (``group%2Fproject``); a project the token may not see answers 404;
- https://docs.gitlab.com/api/rest/authentication/: ``PRIVATE-TOKEN`` or ``JOB-TOKEN``;
  401 without one;
- https://docs.gitlab.com/user/packages/container_registry/protected_container_tags/:
  rules by tag-name pattern (RE2) per project; a delete of a protected tag by someone below
  the rule's level is refused (403), through the REST API and the registry API alike, and
  so is a DELETE of a manifest a protected tag points at;
- https://docs.gitlab.com/user/packages/container_registry/delete_container_registry_images/
  (GitLab 16.4 and later delete a tag through the registry API's
  ``DELETE /v2/<name>/manifests/<tag>``);
- https://docs.gitlab.com/security/rate_limits/ (429 with ``Retry-After``).

The model: a project is a path given to the simulator; its registry repositories are the
real registry's repositories whose path is the project's or under it (and under no longer
project path). Ids are handed out on first sight and never change. A tag delete points the
tag at a unique placeholder on the real registry and deletes that by digest (Distribution
cannot delete a tag alone): the tag goes, its image stays. With ``registry_tag_delete``
False the registry API answers a tag DELETE as Distribution does (GitLab before 16.4).
"""

from __future__ import annotations

import itertools
import re
import threading
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from faultproxy import FaultProxy, distribution_error
from simulators.common import JsonApi, RegistryState, Reply, Request, Simulator, iso, page_link

API_PREFIX = "/api/v4"
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}\Z")
_MANIFEST_PATH = re.compile(r"/v2/(?P<name>.+)/manifests/(?P<ref>[^/]+)\Z")


@dataclass
class GitLabSimulator(Simulator):
    """``registry_host`` goes in image names, ``api_url`` in ``IMGTAG_GITLAB_API_URL``.

    ``projects`` are project paths; ``private_tokens`` may use every project, each of
    ``job_tokens`` only the project it names; ``protected`` maps a project path to the
    tag-name patterns its rules protect (for every token here: none is an owner)."""

    registry_target: str
    storage: Path
    projects: list[str]
    private_tokens: set[str] = field(default_factory=set)
    job_tokens: dict[str, str] = field(default_factory=dict)
    protected: dict[str, list[str]] = field(default_factory=dict)
    registry_tag_delete: bool = True
    max_per_page: int = 100

    def start(self) -> GitLabSimulator:
        self.state = RegistryState(f"http://{self.registry_target}", self.storage)
        self.front = FaultProxy(self.registry_target).start()
        self.front.intercept(self._registry_delete)
        self._lock = threading.Lock()
        self._ids = itertools.count(101)
        self._project_ids = {path: 7000 + n for n, path in enumerate(self.projects)}
        self._repo_ids: dict[str, int] = {}
        pid, rid = r"(?P<pid>[^/]+)", r"(?P<rid>\d+)"
        base = f"{API_PREFIX}/projects/{pid}"
        self.api = JsonApi(
            [
                ("GET", base, self._project),
                ("GET", f"{base}/registry/repositories", self._project_repositories),
                (
                    "GET",
                    f"{API_PREFIX}/groups/(?P<gid>[^/]+)/registry/repositories",
                    self._group_repositories,
                ),
                ("GET", f"{base}/registry/repositories/{rid}/tags", self._tags),
                ("GET", f"{base}/registry/repositories/{rid}/tags/(?P<tag>[^/]+)", self._tag),
                ("DELETE", f"{base}/registry/repositories/{rid}/tags/(?P<tag>[^/]+)", self._delete),
            ]
        )
        return self

    @property
    def api_url(self) -> str:
        return f"{self.api.base}{API_PREFIX}"

    # -- the model ---------------------------------------------------------------------------

    def project_of(self, repo: str) -> str | None:
        """The project a registry repository belongs to: the longest project path."""
        found = [p for p in self.projects if repo == p or repo.startswith(p + "/")]
        return max(found, key=len) if found else None

    def is_protected(self, repo: str, tag: str) -> bool:
        project = self.project_of(repo)
        patterns = self.protected.get(project or "", [])
        return any(re.fullmatch(p, tag) for p in patterns)

    def _repo_id(self, repo: str) -> int:
        with self._lock:
            if repo not in self._repo_ids:
                self._repo_ids[repo] = next(self._ids)
            return self._repo_ids[repo]

    def _repo_by_id(self, rid: str) -> str | None:
        with self._lock:
            return next((r for r, i in self._repo_ids.items() if str(i) == rid), None)

    def _repositories(self, project: str) -> list[str]:
        return [r for r in self.state.catalog(project) if self.project_of(r) == project]

    # -- the registry API's DELETE -----------------------------------------------------------

    def _registry_delete(
        self, method: str, path: str, query: str
    ) -> tuple[int, dict[str, str], bytes] | None:
        m = _MANIFEST_PATH.match(path)
        if method != "DELETE" or m is None:
            return None
        name, ref = m["name"], urllib.parse.unquote(m["ref"])
        if _DIGEST.match(ref):
            tags = [t for t, d in self.state.tags(name).items() if d == ref]
            if any(self.is_protected(name, t) for t in tags):
                return distribution_error(403, "DENIED", f"a protected tag points at {ref[:19]}")
            return None  # the real registry deletes it
        if not self.registry_tag_delete:
            return None  # the real registry answers as Distribution does
        if self.is_protected(name, ref):
            return distribution_error(403, "DENIED", f"the tag {ref} is protected")
        if self.state.head(name, ref) is None:
            return distribution_error(404, "MANIFEST_UNKNOWN", ref)
        self.state.remove_tag(name, ref)
        return 202, {}, b""

    # -- the REST API ------------------------------------------------------------------------

    def _may(self, req: Request, project: str) -> Reply | None:
        private = req.headers.get("PRIVATE-TOKEN")
        job = req.headers.get("JOB-TOKEN")
        if private and private in self.private_tokens:
            return None
        if job and self.job_tokens.get(job) == project:
            return None
        if private or job:
            return Reply(404, {"message": "404 Project Not Found"})
        return Reply(401, {"message": "401 Unauthorized"})

    def _project_path(self, pid: str) -> str | None:
        text = urllib.parse.unquote(pid)
        if text.isdigit():
            return next((p for p, i in self._project_ids.items() if str(i) == text), None)
        return text if text in self._project_ids else None

    def _page(self, req: Request, rows: list[dict[str, object]]) -> Reply:
        try:
            per = max(1, min(int(req.query.get("per_page", "20")), 100, self.max_per_page))
            page = max(1, int(req.query.get("page", "1")))
        except ValueError:
            return Reply(400, {"message": "400 Bad request - page is invalid"})
        last = max(1, -(-len(rows) // per))
        chunk = rows[(page - 1) * per : page * per]
        query = {**req.query, "per_page": str(per)}
        link = page_link(f"{req.base}{req.path}", query, page, last)
        headers = {"X-Total": str(len(rows)), "X-Page": str(page)}
        if link:
            headers["Link"] = link
        return Reply(200, chunk, headers)

    def _project(self, req: Request, pid: str) -> Reply:
        project = self._project_path(pid)
        if project is None:
            return Reply(404, {"message": "404 Project Not Found"})
        if (denied := self._may(req, project)) is not None:
            return denied
        return Reply(200, {"id": self._project_ids[project], "path_with_namespace": project})

    def _repository_rows(self, project: str) -> list[dict[str, object]]:
        host = self.front.host
        return [
            {
                "id": self._repo_id(repo),
                "name": repo[len(project) + 1 :] if repo != project else "",
                "path": repo,
                "project_id": self._project_ids[project],
                "location": f"{host}/{repo}",
                "created_at": "2026-01-01T00:00:00.000Z",
            }
            for repo in self._repositories(project)
        ]

    def _project_repositories(self, req: Request, pid: str) -> Reply:
        project = self._project_path(pid)
        if project is None:
            return Reply(404, {"message": "404 Project Not Found"})
        if (denied := self._may(req, project)) is not None:
            return denied
        return self._page(req, self._repository_rows(project))

    def _group_repositories(self, req: Request, gid: str) -> Reply:
        group = urllib.parse.unquote(gid)
        projects = [p for p in self.projects if p.startswith(group + "/")]
        if not projects:
            return Reply(404, {"message": "404 Group Not Found"})
        if req.headers.get("PRIVATE-TOKEN") not in self.private_tokens:
            return Reply(404 if req.headers.get("PRIVATE-TOKEN") else 401, {"message": "denied"})
        rows = [row for p in sorted(projects) for row in self._repository_rows(p)]
        return self._page(req, rows)

    def _repository(self, req: Request, pid: str, rid: str) -> tuple[str, Reply | None]:
        project = self._project_path(pid)
        repo = self._repo_by_id(rid)
        if project is None or repo is None or self.project_of(repo) != project:
            return "", Reply(404, {"message": "404 Repository Not Found"})
        return repo, self._may(req, project)

    def _tags(self, req: Request, pid: str, rid: str) -> Reply:
        repo, denied = self._repository(req, pid, rid)
        if denied is not None:
            return denied
        host = self.front.host
        rows: list[dict[str, object]] = [
            {"name": t, "path": f"{repo}:{t}", "location": f"{host}/{repo}:{t}"}
            for t in sorted(self.state.tags_list(repo))
        ]
        return self._page(req, rows)

    def _tag(self, req: Request, pid: str, rid: str, tag: str) -> Reply:
        repo, denied = self._repository(req, pid, rid)
        if denied is not None:
            return denied
        tag = urllib.parse.unquote(tag)
        digest = self.state.head(repo, tag)
        if digest is None:
            return Reply(404, {"message": "404 Tag Not Found"})
        updated = {m.digest: m.updated for m in self.state.manifests(repo)}
        return Reply(
            200,
            {
                "name": tag,
                "path": f"{repo}:{tag}",
                "location": f"{self.front.host}/{repo}:{tag}",
                "revision": digest.split(":", 1)[1],
                "short_revision": digest.split(":", 1)[1][:9],
                "digest": digest,
                "created_at": iso(updated.get(digest, 0.0)),
                "total_size": 0,
            },
        )

    def _delete(self, req: Request, pid: str, rid: str, tag: str) -> Reply:
        repo, denied = self._repository(req, pid, rid)
        if denied is not None:
            return denied
        tag = urllib.parse.unquote(tag)
        if self.is_protected(repo, tag):
            return Reply(403, {"message": f"403 Forbidden - Protected tag {tag} cannot be deleted"})
        if self.state.head(repo, tag) is None:
            return Reply(404, {"message": "404 Tag Not Found"})
        self.state.remove_tag(repo, tag)
        return Reply(200)
