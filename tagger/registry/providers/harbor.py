"""The ``harbor`` provider: deleting from a Harbor registry through Harbor's API v2.0.
Does I/O.

From Harbor's public API definition (https://github.com/goharbor/harbor/blob/main/api/v2.0/swagger.yaml,
served by every Harbor at ``/devcenter-api-2.0``) and its documentation
(https://goharbor.io/docs/main/working-with-projects/working-with-images/create-tag-immutability-rules/):

- ``GET /projects/{project_name}/repositories`` lists a project's repositories (``name``
  is ``project/path``); ``GET /projects/{p}/repositories/{r}/artifacts`` lists artifacts
  (``digest``, ``tags[].name``, ``push_time``, ``references[].child_digest``) with
  ``with_tag=true``, ``page``/``page_size`` (at most 100) and a ``Link`` header, and
  ``q=tags%3Dnil`` for those without a tag;
- ``DELETE …/artifacts/{reference}/tags/{tag_name}`` removes one tag and leaves the
  artifact (200): a tag goes alone without a placeholder; ``DELETE …/artifacts/{digest}``
  removes the artifact with every tag on it;
- a repository name holding ``/`` is URL-encoded twice in these paths (``a/b`` is
  ``a%252Fb``): Harbor's router decodes once and its handler again;
- tag immutability rules (doublestar patterns on repositories and tags) make Harbor
  answer a delete of a covered tag, or of an artifact one is on, with 412 and the code
  ``PRECONDITION`` ("… configured as immutable …"): a skip, in Harbor's words;
- errors are ``{"errors": [{"code", "message"}]}``; credentials are HTTP Basic, the
  docker config's entry for the registry's host (a user or a robot account).

The API base is ``IMGTAG_HARBOR_API_URL`` (ending in ``/api/v2.0``), else
``https://HOST/api/v2.0`` of the registry. ``--untagged`` works here: Harbor lists the
artifacts without a tag (one listing with ``with_tag=true`` gives both kinds, which
``--untagged`` needs: what is tagged now protects what it references).
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
    Protected,
    RegistryError,
    UsageError,
    register_secret,
)
from tagger.registry.auth import Credentials, DockerConfig
from tagger.registry.http import RetryBudget, StatusRule
from tagger.registry.protocols import RegistryApi, Version
from tagger.registry.providers.api import Answer, Api, answer_text
from tagger.registry.reference import is_digest

PAGE_SIZE = 100


def _login_hint(host: str) -> str:
    return f"run `docker login {host}` as a user or robot account that may delete artifacts"


def split_repository(repository: str) -> tuple[str, str]:
    """``(project, repository)`` with the repository encoded twice for a URL path.

    >>> split_repository("team/tools/app")
    ('team', 'tools%252Fapp')
    """
    project, _, rest = repository.partition("/")
    if not project or not rest:
        raise UsageError(f"{repository!r} is no Harbor repository: Harbor names are PROJECT/PATH")
    return quote(project, safe=""), quote(quote(rest, safe=""), safe="")


def _when(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def parse_artifacts(page: object) -> list[Version]:
    """The artifacts of one page of the listing, as versions (id, digest, tags, pushed).

    >>> parse_artifacts([{"id": 3, "digest": "sha256:" + "a" * 64, "tags": [{"name": "v1"}],
    ...                   "push_time": "2026-01-02T03:04:05.000Z"}])[0].tags
    ('v1',)
    """
    if not isinstance(page, list):
        raise RegistryError("the Harbor API answered an artifact list that is not a list")
    out = []
    for item in page:
        if not isinstance(item, dict):
            continue
        aid, digest = item.get("id"), item.get("digest")
        if not isinstance(digest, str) or not is_digest(digest):
            continue
        tags = tuple(
            t["name"]
            for t in (item.get("tags") or [])
            if isinstance(t, dict) and isinstance(t.get("name"), str)
        )
        pushed = _when(item.get("push_time"))
        vid = aid if isinstance(aid, int) and not isinstance(aid, bool) else 0
        out.append(Version(vid, digest, tags, pushed, pushed))
    return out


class HarborProvider:
    name = "harbor"

    def __init__(
        self, env: Mapping[str, str], budget: RetryBudget | None = None, host: str = ""
    ) -> None:
        self._env = env
        self._budget = budget
        self._host = host
        self._base = env.get("IMGTAG_HARBOR_API_URL") or f"https://{host}/api/v2.0"
        self._api: Api | None = None
        self._creds: Credentials | None = None
        self._lock = threading.Lock()

    @property
    def api(self) -> Api:
        with self._lock:
            if self._api is None:
                hint = _login_hint(self._host)
                api = Api(
                    self._base,
                    variable="IMGTAG_HARBOR_API_URL",
                    what="the Harbor API",
                    rules=(StatusRule(401, AuthenticationError, hint=hint),),
                    budget=self._budget,
                )
                creds = DockerConfig.load(self._env).credentials(self._host)
                if creds is not None and creds.username and creds.password:
                    import base64

                    register_secret(creds.password)
                    pair = f"{creds.username}:{creds.password}".encode()
                    token = base64.b64encode(pair).decode()
                    register_secret(token)
                    api.set_header("Authorization", f"Basic {token}")
                    self._creds = creds
                self._api = api
            return self._api

    def _path(self, repository: str) -> str:
        project, repo = split_repository(repository)
        return f"/projects/{project}/repositories/{repo}"

    def _pages(self, path: str, doing: str, params: Mapping[str, str]) -> Iterator[object]:
        try:
            yield from self.api.pages(
                path, doing=doing, params={"page_size": str(PAGE_SIZE), **params}, body_next=False
            )
        except NotFound:
            raise RegistryError(
                f"the Harbor API at {self.api.base} shows no {path} to this login: check the "
                f"name and the login ({_login_hint(self._host)})"
            ) from None

    # -- listings ----------------------------------------------------------------------------

    def repositories(self, api: RegistryApi, prefix: str) -> list[str]:
        """Every repository of the project ``prefix`` starts with (``""``: all of them)."""
        project = prefix.split("/", 1)[0]
        path = f"/projects/{quote(project, safe='')}/repositories" if project else "/repositories"
        doing = f"listing the repositories of {prefix or self._host} through the Harbor API"
        out = []
        try:
            for page in self.api.pages(
                path, doing=doing, params={"page_size": str(PAGE_SIZE)}, body_next=False
            ):
                for item in page if isinstance(page, list) else []:
                    if isinstance(item, dict) and isinstance(item.get("name"), str):
                        out.append(item["name"])
        except NotFound:
            return []
        return out

    def versions(self, api: RegistryApi, repository: str) -> list[Version]:
        """Every artifact of the repository, tagged or not, to the last page."""
        doing = f"listing the artifacts of {self._host}/{repository}"
        out: list[Version] = []
        for page in self._pages(f"{self._path(repository)}/artifacts", doing, {"with_tag": "true"}):
            out.extend(parse_artifacts(page))
        return out

    # -- the Provider interface --------------------------------------------------------------

    def check(self, api: RegistryApi, repository: str, *, delete: bool, untagged: bool) -> None:
        split_repository(repository)
        if delete and self.delete_refusal(api, repository) is not None:
            raise UsageError(f"deleting from Harbor needs a login: {_login_hint(self._host)}")

    def delete_refusal(self, api: RegistryApi, repository: str) -> str | None:
        self.api  # noqa: B018 (reads the credentials)
        if self._creds is None:
            return f"deleting from Harbor needs a login: {_login_hint(self._host)}"
        return None

    def immutable_tags(self, api: RegistryApi, repository: str) -> str | None:
        # Harbor's immutable-tag rules cover tag patterns, not
        # repositories: a refused push is recognised in Harbor's words (immutable.py).
        return None

    def refused_as_last(self) -> frozenset[str]:
        return frozenset()

    def delete(self, api: RegistryApi, repository: str, ref: str) -> None:
        if is_digest(ref):
            path = f"{self._path(repository)}/artifacts/{ref}"
            doing = f"deleting the artifact {self._host}/{repository}@{ref[:19]}"
        else:
            tag = quote(ref, safe="")
            path = f"{self._path(repository)}/artifacts/{tag}/tags/{tag}"
            doing = f"deleting the tag {self._host}/{repository}:{ref}"
        resp = self.api.request("DELETE", path, doing=doing, ok=(403, 404, 412))
        if resp.status < 300:
            return
        self._refuse(resp, repository, ref, doing)

    def _refuse(self, resp: Answer, repository: str, ref: str, doing: str) -> None:
        detail = answer_text(resp)
        if resp.status == 404:
            raise NotFound(f"{self._host}/{repository} has no {ref[:19]} (gone already)")
        if resp.status == 412:
            raise Protected(f"immutable: Harbor refused the delete ({detail or 'HTTP 412'})")
        raise AccessDenied(
            f"the Harbor API denied the delete while {doing}"
            f"{f' ({detail})' if detail else ''}: {_login_hint(self._host)}"
        )
