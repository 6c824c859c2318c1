"""The ``dockerhub`` provider: deleting Docker Hub tags through the Hub API. Does I/O.

Docker Hub's registry API deletes nothing; its own API (https://docs.docker.com/reference/api/hub/latest/)
does, with a bearer token:

- login: ``POST /v2/auth/token`` with ``{"identifier", "secret"}`` (a password or a personal
  access token) answers ``{"access_token"}``; where that endpoint is missing, the older
  ``POST /v2/users/login`` with ``{"username", "password"}`` answers ``{"token"}``;
- tags: ``GET /v2/namespaces/{ns}/repositories/{repo}/tags?page_size=100`` answers
  ``{"count", "next", "results": [{"name", "digest", ...}]}``, paged by the ``next`` URL;
- delete a tag: ``DELETE /v2/repositories/{ns}/{repo}/tags/{tag}/`` (204), what docker's
  hub-tool does (https://github.com/docker/hub-tool, ``pkg/hub/tags.go``). The image stays
  on Hub (Hub removes untagged images by its own retention).

So deleting by tag removes that tag alone, and deleting by digest removes every tag on that
digest. The credentials are the docker ``config.json`` entry for
``https://index.docker.io/v1/``, as ``docker login`` writes it; the API base is
``IMGTAG_DOCKERHUB_API_URL`` (default ``https://hub.docker.com``).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping, Sequence
from urllib.parse import quote

from tagger.errors import (
    AccessDenied,
    AuthenticationError,
    NotFound,
    RegistryError,
    UsageError,
    register_secret,
)
from tagger.registry.auth import DOCKER_HUB_SERVER_URL, Credentials, DockerConfig
from tagger.registry.http import RetryBudget
from tagger.registry.protocols import RegistryApi, Version
from tagger.registry.providers.api import Api, answer_text
from tagger.registry.reference import is_digest

DEFAULT_API_URL = "https://hub.docker.com"
PAGE_SIZE = 100
_LOGIN_HINT = (
    f"run `docker login` for Docker Hub (the config.json entry {DOCKER_HUB_SERVER_URL}) "
    "with a user that may delete tags of this repository (a personal access token with "
    "Read, Write & Delete)"
)


def split_repository(repository: str) -> tuple[str, str]:
    """``(namespace, repository)`` of a Hub image path.

    >>> split_repository("library/ubuntu")
    ('library', 'ubuntu')
    """
    parts = repository.split("/")
    if len(parts) != 2 or not all(parts):
        raise UsageError(
            f"{repository!r} is no Docker Hub repository: Hub names are NAMESPACE/REPOSITORY"
        )
    return parts[0], parts[1]


class DockerHubProvider:
    name = "dockerhub"

    def __init__(self, env: Mapping[str, str], budget: RetryBudget | None = None) -> None:
        self._env = env
        self._budget = budget  # the registry's: one budget for the command
        self._base = env.get("IMGTAG_DOCKERHUB_API_URL") or DEFAULT_API_URL
        self._api: Api | None = None
        self._lock = threading.Lock()
        self._tags_lock = threading.Lock()
        self._tag_map: dict[str, dict[str, str]] = {}

    @property
    def api(self) -> Api:
        with self._lock:
            if self._api is None:
                api = Api(
                    self._base,
                    variable="IMGTAG_DOCKERHUB_API_URL",
                    what="the Docker Hub API",
                    budget=self._budget,
                )
                api.set_header("Authorization", f"Bearer {self._login(api)}")
                self._api = api
            return self._api

    def _credentials(self) -> Credentials:
        creds = DockerConfig.load(self._env).credentials(DOCKER_HUB_SERVER_URL)
        if creds is None or not creds.username or not creds.password:
            raise UsageError(f"deleting from Docker Hub needs its API's login: {_LOGIN_HINT}")
        register_secret(creds.password)
        return creds

    def _login(self, api: Api) -> str:
        creds = self._credentials()
        doing = "logging in to the Docker Hub API"
        resp = api.request(
            "POST",
            "/v2/auth/token",
            doing=doing,
            json_body={"identifier": creds.username, "secret": creds.password},
            ok=(401, 403, 404, 405),
        )
        key = "access_token"
        if resp.status in (404, 405):
            resp = api.request(
                "POST",
                "/v2/users/login",
                doing=doing,
                json_body={"username": creds.username, "password": creds.password},
                ok=(401, 403),
            )
            key = "token"
        if resp.status in (401, 403):
            raise AuthenticationError(
                f"the Docker Hub API rejected the login of {creds.username!r}: {_LOGIN_HINT}"
            )
        doc = resp.json(doing)
        token = doc.get(key) if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token:
            raise RegistryError("the Docker Hub API answered a login without a token")
        register_secret(token)
        return token

    # -- the Provider interface --------------------------------------------------------------

    def check(self, api: RegistryApi, repository: str, *, delete: bool, untagged: bool) -> None:
        split_repository(repository)
        if untagged:
            raise UsageError(
                "--untagged is for ghcr alone: Docker Hub keeps untagged images out of the "
                "tag list and removes them by its own retention"
            )
        if delete:
            self.api  # noqa: B018 (credentials exist and log in)

    def delete_refusal(self, api: RegistryApi, repository: str) -> str | None:
        try:
            self.api  # noqa: B018
        except UsageError as exc:
            return str(exc)
        return None

    def versions(self, api: RegistryApi, repository: str) -> Sequence[Version]:
        raise UsageError("Docker Hub lists no versions without tags (provider dockerhub)")

    def tags(self, repository: str) -> list[tuple[str, str]]:
        """``(tag, digest)`` of every tag, to the last page."""
        ns, repo = split_repository(repository)
        path = f"/v2/namespaces/{quote(ns, safe='')}/repositories/{quote(repo, safe='')}/tags"
        doing = f"listing the tags of docker.io/{repository}"
        out = []
        try:
            for doc in self.api.pages(
                path, doing=doing, params={"page_size": str(PAGE_SIZE)}, body_next=True
            ):
                results = doc.get("results") if isinstance(doc, dict) else None
                for item in results or []:
                    if isinstance(item, dict) and isinstance(item.get("name"), str):
                        out.append((item["name"], str(item.get("digest") or "")))
        except NotFound:
            raise RegistryError(
                f"the Docker Hub API has no repository docker.io/{repository} for this login: "
                "check the name"
            ) from None
        return out

    def _tags_on(self, repository: str, digest: str) -> list[str]:
        """The tags on ``digest``, from one tag list per run: deletes run concurrently and
        pages shift under a list taken meanwhile. The first list is taken before any delete
        by digest (the others wait for it); a digest found without tags is listed afresh."""
        with self._tags_lock:
            if repository not in self._tag_map:
                self._tag_map[repository] = dict(self.tags(repository))
            found = [t for t, d in self._tag_map[repository].items() if d == digest]
            if not found:
                self._tag_map[repository] = dict(self.tags(repository))
                found = [t for t, d in self._tag_map[repository].items() if d == digest]
            return found

    def delete(self, api: RegistryApi, repository: str, ref: str) -> None:
        if not is_digest(ref):
            self._delete_tag(repository, ref)
            return
        doomed = self._tags_on(repository, ref)
        if not doomed:
            raise NotFound(f"docker.io/{repository}@{ref} has no tag left (gone already)")
        for tag in doomed:
            with contextlib.suppress(NotFound):  # went since the list: what we wanted
                self._delete_tag(repository, tag)

    def _delete_tag(self, repository: str, tag: str) -> None:
        ns, repo = split_repository(repository)
        where = f"{quote(ns, safe='')}/{quote(repo, safe='')}"
        path = f"/v2/repositories/{where}/tags/{quote(tag, safe='')}/"
        doing = f"deleting the tag docker.io/{repository}:{tag}"
        resp = self.api.request("DELETE", path, doing=doing, ok=(403, 404))
        if resp.status < 300 or resp.status == 404:
            with self._tags_lock:
                self._tag_map.get(repository, {}).pop(tag, None)
        if resp.status == 404:
            raise NotFound(f"docker.io/{repository}:{tag} is gone already")
        if resp.status == 403:
            detail = answer_text(resp)
            raise AccessDenied(
                f"the Docker Hub API denied the delete while {doing}"
                f"{f' ({detail})' if detail else ''}: {_LOGIN_HINT}"
            )

    def refused_as_last(self) -> frozenset[str]:
        return frozenset()

    def immutable_tags(self, api: RegistryApi, repository: str) -> str | None:
        return None
