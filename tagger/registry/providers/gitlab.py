"""The ``gitlab`` provider: GitLab's container registry, through its registry API and the
GitLab REST API. Does I/O.

From GitLab's public documentation:

- the container registry API (https://docs.gitlab.com/api/container_registry/):
  ``GET /projects/:id/registry/repositories`` and ``GET /groups/:id/registry/repositories``
  list a project's or a group's repositories (``id``, ``path``, ``location``), paged with
  ``Link`` (``page``, ``per_page`` at most 100); ``GET …/repositories/:repository_id/tags``
  lists tag names; ``DELETE …/repositories/:repository_id/tags/:tag_name`` deletes one tag
  (200), the image stays; a project is named by its id or its URL-encoded path
  (https://docs.gitlab.com/api/rest/#namespaced-paths);
- tag deletes through the registry API itself: GitLab's registry deletes a tag with
  ``DELETE /v2/<name>/manifests/<tag>`` from GitLab 16.4 on (older ones answer as
  Distribution does, and the REST delete is used instead); a manifest DELETE by digest
  removes the image with its tags;
- protected container tags (https://docs.gitlab.com/user/packages/container_registry/protected_container_tags/):
  a delete of a protected tag, or of a digest a protected tag points at, by someone below
  the rule's level answers 403. Prune reports it as a skip with that reason (the survivor
  rule already keeps what the policy keeps; the registry keeps this too);
- authentication (https://docs.gitlab.com/api/rest/authentication/): a personal, project or
  group access token in ``PRIVATE-TOKEN`` (``GITLAB_TOKEN``), or a CI job's ``CI_JOB_TOKEN``
  in ``JOB-TOKEN``, which reaches only its own project's registry;
- rate limits (https://docs.gitlab.com/security/rate_limits/): 429 with ``Retry-After``,
  waited out by the HTTP core within the command's budget.

The API base is ``IMGTAG_GITLAB_API_URL``, else ``CI_API_V4_URL`` (a job sets it), else
``https://gitlab.com/api/v4``; its path is kept. Created dates come from image configs
through the registry API, as for every provider; the REST API gives the repositories
under a path (``REGISTRY/GROUP/*``), a repository's id, and the tag delete of older GitLab.

The image ``HOST/GROUP/PROJECT/NAME`` is the repository ``GROUP/PROJECT/NAME`` of the project
whose path is its longest prefix: ``CI_PROJECT_PATH`` where it is one, else the first of
the prefixes, longest first, that the API knows as a project.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from urllib.parse import quote

from tagger.errors import (
    AccessDenied,
    AuthenticationError,
    NotFound,
    Protected,
    RegistryError,
    Unsupported,
    UsageError,
    register_secret,
)
from tagger.registry.http import RetryBudget, StatusRule
from tagger.registry.protocols import RegistryApi, Version
from tagger.registry.providers.api import Api, answer_text
from tagger.registry.reference import is_digest

DEFAULT_API_URL = "https://gitlab.com/api/v4"
HOSTS = frozenset({"registry.gitlab.com"})
PER_PAGE = 100
_TOKEN_HINT = (
    "set GITLAB_TOKEN to an access token with the api scope and the Maintainer role (or "
    "run in a job of the project, which sets CI_JOB_TOKEN)"
)
GITLAB_RULES = (StatusRule(401, AuthenticationError, hint=_TOKEN_HINT),)


def candidates(repository: str, project_path: str | None = None) -> list[str]:
    """The project paths ``repository`` may belong to, the likeliest first.

    >>> candidates("grp/proj/sub")
    ['grp/proj/sub', 'grp/proj']
    >>> candidates("grp/proj/sub", "grp/proj")
    ['grp/proj']
    """
    if project_path and (repository == project_path or repository.startswith(project_path + "/")):
        return [project_path]
    parts = repository.split("/")
    return ["/".join(parts[:n]) for n in range(len(parts), 1, -1)] or [repository]


class GitLabProvider:
    name = "gitlab"

    def __init__(self, env: Mapping[str, str], budget: RetryBudget | None = None) -> None:
        self._budget = budget
        self._base = env.get("IMGTAG_GITLAB_API_URL") or env.get("CI_API_V4_URL") or DEFAULT_API_URL
        self._variable = (
            "IMGTAG_GITLAB_API_URL" if env.get("IMGTAG_GITLAB_API_URL") else ("CI_API_V4_URL")
        )
        private = (env.get("GITLAB_TOKEN") or "").strip() or None
        job = (env.get("CI_JOB_TOKEN") or "").strip() or None
        register_secret(private)
        register_secret(job)
        # A token of a person or a project may do more than a job's: it goes first.
        self._header = (
            ("PRIVATE-TOKEN", private) if private else ("JOB-TOKEN", job) if job else None
        )
        self._project_path = (env.get("CI_PROJECT_PATH") or "").strip() or None
        self._api: Api | None = None
        self._lock = threading.Lock()
        self._projects: dict[str, str] = {}  # repository → project id
        self._repo_ids: dict[str, int] = {}  # repository → registry repository id
        self._rest_deletes = False  # the registry API deletes no tag here (GitLab < 16.4)

    @property
    def api(self) -> Api:
        with self._lock:
            if self._api is None:
                headers = {self._header[0]: self._header[1]} if self._header else {}
                self._api = Api(
                    self._base,
                    variable=self._variable,
                    what="the GitLab API",
                    headers=headers,
                    rules=GITLAB_RULES,
                    budget=self._budget,
                )
            return self._api

    # -- projects and repositories ----------------------------------------------------------

    def _project_of(self, repository: str) -> str:
        with self._lock:
            if repository in self._projects:
                return self._projects[repository]
        for path in candidates(repository, self._project_path):
            resp = self.api.request(
                "GET",
                f"/projects/{quote(path, safe='')}",
                doing=f"looking up the GitLab project of {repository}",
                ok=(404,),
            )
            if resp.status == 404:
                continue
            doc = resp.json("looking up a GitLab project")
            pid = doc.get("id") if isinstance(doc, dict) else None
            if isinstance(pid, int) and not isinstance(pid, bool):
                with self._lock:
                    self._projects[repository] = str(pid)
                return str(pid)
        raise RegistryError(
            f"the GitLab API at {self.api.base} knows no project for {repository!r} that this "
            f"token may see: check the image name and the token ({_TOKEN_HINT})"
        )

    def _listing(self, path: str, doing: str) -> Iterator[dict[str, object]]:
        for doc in self.api.pages(
            path, doing=doing, params={"per_page": str(PER_PAGE)}, body_next=False
        ):
            if not isinstance(doc, list):
                raise RegistryError(f"the GitLab API answered a list that is not one while {doing}")
            yield from (item for item in doc if isinstance(item, dict))

    def _repository_id(self, repository: str) -> int:
        with self._lock:
            if repository in self._repo_ids:
                return self._repo_ids[repository]
        pid = self._project_of(repository)
        doing = f"listing the registry repositories of the GitLab project {pid}"
        found: dict[str, int] = {}
        for item in self._listing(f"/projects/{pid}/registry/repositories", doing):
            rid, path = item.get("id"), item.get("path")
            if isinstance(rid, int) and not isinstance(rid, bool) and isinstance(path, str):
                found[path] = rid
        with self._lock:
            self._repo_ids.update(found)
            if repository in self._repo_ids:
                return self._repo_ids[repository]
        raise NotFound(f"the GitLab project {pid} has no registry repository {repository}")

    def repositories(self, api: RegistryApi, prefix: str) -> list[str]:
        """The repositories of the project ``prefix``, else of the group ``prefix``."""
        if not prefix:
            raise UsageError(
                "GitLab lists repositories by project or group: name one, REGISTRY/GROUP/*"
            )
        where = quote(prefix, safe="")
        resp = self.api.request(
            "GET", f"/projects/{where}", doing=f"looking up {prefix}", ok=(404,)
        )
        kind = "projects" if resp.status != 404 else "groups"
        doing = f"listing the registry repositories of the GitLab {kind[:-1]} {prefix}"
        try:
            return [
                str(item["path"])
                for item in self._listing(f"/{kind}/{where}/registry/repositories", doing)
                if isinstance(item.get("path"), str)
            ]
        except NotFound:
            return []

    # -- the Provider interface --------------------------------------------------------------

    def check(self, api: RegistryApi, repository: str, *, delete: bool, untagged: bool) -> None:
        if untagged:
            raise UsageError(
                "--untagged needs a registry that lists untagged versions: GitLab lists "
                "tags only (its own cleanup policies remove untagged images)"
            )
        if delete:
            if self._header is None:
                raise UsageError(f"deleting from GitLab's registry needs a token: {_TOKEN_HINT}")
            self._repository_id(repository)

    def delete_refusal(self, api: RegistryApi, repository: str) -> str | None:
        if self._header is None:
            return f"deleting from GitLab's registry needs a token: {_TOKEN_HINT}"
        return None

    def versions(self, api: RegistryApi, repository: str) -> Sequence[Version]:
        raise UsageError("GitLab lists no versions without tags (provider gitlab)")

    def immutable_tags(self, api: RegistryApi, repository: str) -> str | None:
        # GitLab's protected tags refuse a delete, not a claim's
        # push; a refused push is recognised in the registry's words (immutable.py).
        return None

    def refused_as_last(self) -> frozenset[str]:
        return frozenset()

    def delete(self, api: RegistryApi, repository: str, ref: str) -> None:
        if is_digest(ref):
            try:
                api.registry_delete(repository, ref)
            except AccessDenied as exc:
                raise Protected(
                    f"protected: GitLab refused to delete {ref[:19]}, a protected tag points "
                    f"at it ({exc})"
                ) from None
            return
        if not self._rest_deletes:
            try:
                api.registry_delete(repository, ref)
                return
            except Unsupported:
                self._rest_deletes = True  # GitLab before 16.4: the REST API deletes tags
            except AccessDenied:
                pass  # protected, or the token may not: the REST answer says which
        self._rest_delete(repository, ref)

    def _rest_delete(self, repository: str, tag: str) -> None:
        rid = self._repository_id(repository)
        pid = self._project_of(repository)
        path = f"/projects/{pid}/registry/repositories/{rid}/tags/{quote(tag, safe='')}"
        doing = f"deleting the tag {repository}:{tag} through the GitLab API"
        resp = self.api.request("DELETE", path, doing=doing, ok=(403, 404))
        if resp.status == 404:
            raise NotFound(f"{repository}:{tag} is gone already")
        if resp.status == 403:
            detail = answer_text(resp)
            if "protect" in detail.lower():
                raise Protected(f"protected tag: GitLab refused the delete ({detail})")
            raise AccessDenied(
                f"the GitLab API denied the delete while {doing}"
                f"{f' ({detail})' if detail else ''}: {_TOKEN_HINT}"
            )
