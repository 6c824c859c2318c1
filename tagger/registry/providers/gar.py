"""The ``gar`` provider: Google Artifact Registry through its REST API (v1). Does I/O
(network; ``gcloud`` for a token when none is given).

From the Artifact Registry REST reference
(https://cloud.google.com/artifact-registry/docs/reference/rest):

- ``GET v1/projects/*/locations/*/repositories/*`` (projects.locations.repositories/get):
  ``format`` ``DOCKER`` and ``dockerConfig.immutableTags``; a repository with immutable
  tags refuses to move or delete a tag, so build-push writes no claim or temporary tag
  there (the registry's refusal is the guard) and prune reports its refusals as skips;
- ``…/packages/*/tags`` (packages.tags/list, delete): a tag's ``name`` and the
  ``version`` it points at; ``DELETE …/tags/TAG`` removes the tag alone;
- ``…/packages/*/versions`` (packages.versions/list with ``view=FULL``: ``relatedTags``,
  ``createTime``, ``updateTime``; delete with ``force=true``, which removes the version's
  tags along): a version is a manifest, named by its digest; its delete is a long-running
  operation (``done``), followed with ``GET v1/{operation}`` (projects.locations.operations/get);
- lists are paged by ``pageSize`` and ``nextPageToken``/``pageToken``; errors are
  ``{"error": {"code", "message", "status"}}``
  (https://cloud.google.com/apis/design/errors).

The image ``LOCATION-docker.pkg.dev/PROJECT/REPOSITORY/IMAGE`` is package ``IMAGE`` (a
``/`` in it is sent as ``%2F``) of that repository; the location is the host's, else
``CLOUDSDK_ARTIFACTS_LOCATION``. The token is ``GOOGLE_OAUTH_ACCESS_TOKEN``, else what
``gcloud auth print-access-token`` prints (through ``tagger.proc``); it is registered for
redaction the moment it is read. The registry API's own manifest DELETE answers
``GOOGLE_MANIFEST_DANGLING_TAG`` while tags reference the manifest: deleting goes through
the REST API instead. ``IMGTAG_GAR_API_URL`` overrides the API base (default
``https://artifactregistry.googleapis.com``; plain HTTP on loopback only).
"""

from __future__ import annotations

import itertools
import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
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
from tagger.proc import ProgramNotFound, Runner
from tagger.registry.cloudhosts import api_variable, gar_location
from tagger.registry.http import MAX_PAGES, RetryBudget, StatusRule, clean
from tagger.registry.protocols import RegistryApi, Version
from tagger.registry.providers.api import Answer, Api
from tagger.registry.reference import is_digest

DEFAULT_API_URL = "https://artifactregistry.googleapis.com"
PAGE_SIZE = 100
GCLOUD_TIMEOUT_SECONDS = 60.0
_TOKEN_HINT = (
    "set GOOGLE_OAUTH_ACCESS_TOKEN (in GitHub Actions google-github-actions/auth with "
    "token_format: access_token), or log in with gcloud; the identity needs "
    "roles/artifactregistry.repoAdmin on the repository to delete"
)
GAR_RULES = (StatusRule(401, AuthenticationError, hint=_TOKEN_HINT),)


def gar_error_text(body: bytes) -> str:
    """Google's error text: ``{"error": {"status", "message"}}``.

    >>> gar_error_text(b'{"error": {"code": 404, "status": "NOT_FOUND", "message": "gone"}}')
    'NOT_FOUND: gone'
    """
    try:
        error = json.loads(body)["error"]
        status, message = str(error.get("status", "")), str(error.get("message", ""))
    except Exception:
        return ""
    return f"{status}: {message}" if status and message else status or message


@dataclass(frozen=True, slots=True)
class GarPath:
    """Where an image lives in the REST API."""

    project: str
    location: str
    repository: str
    package: str

    @property
    def repo_name(self) -> str:
        return f"projects/{self.project}/locations/{self.location}/repositories/{self.repository}"

    @property
    def package_name(self) -> str:
        return f"{self.repo_name}/packages/{quote(self.package, safe='')}"


def gar_path(repository: str, location: str) -> GarPath:
    """The REST names of an image path ``PROJECT/REPOSITORY/IMAGE``.

    >>> gar_path("acme/docker/tools/app", "europe-west4").package_name
    'projects/acme/locations/europe-west4/repositories/docker/packages/tools%2Fapp'
    >>> gar_path("acme/app", "us")
    Traceback (most recent call last):
    ...
    tagger.errors.UsageError: 'acme/app' is no Artifact Registry image: its path is \
PROJECT/REPOSITORY/IMAGE
    """
    parts = repository.split("/", 2)
    if len(parts) != 3 or not all(parts):
        raise UsageError(
            f"{repository!r} is no Artifact Registry image: its path is PROJECT/REPOSITORY/IMAGE"
        )
    return GarPath(parts[0], location, parts[1], parts[2])


def location_of(host: str, env: Mapping[str, str]) -> str:
    """The location: the host's, else ``CLOUDSDK_ARTIFACTS_LOCATION``.

    >>> location_of("us-east1-docker.pkg.dev", {}), location_of("127.0.0.1:1",
    ...     {"CLOUDSDK_ARTIFACTS_LOCATION": "europe"})
    ('us-east1', 'europe')
    """
    location = gar_location(host) or (env.get("CLOUDSDK_ARTIFACTS_LOCATION") or "").strip()
    if not location:
        raise UsageError(
            f"{host} names no Artifact Registry location: set CLOUDSDK_ARTIFACTS_LOCATION "
            "for the gar provider"
        )
    if not location.replace("-", "").isalnum() or len(location) > 40:
        raise UsageError(f"{clean(location, 40)!r} is no Artifact Registry location")
    return location


def check_token(token: str, where: str) -> str:
    """A bearer token that can go into a header.

    >>> check_token("ya29.a0Af", "GOOGLE_OAUTH_ACCESS_TOKEN")
    'ya29.a0Af'
    >>> check_token("ya29 a0", "GOOGLE_OAUTH_ACCESS_TOKEN")
    Traceback (most recent call last):
    ...
    tagger.errors.UsageError: GOOGLE_OAUTH_ACCESS_TOKEN does not parse as an access token \
(it holds spaces or control characters)
    """
    token = token.strip()
    register_secret(token)
    if not token or not token.isprintable() or " " in token:
        raise UsageError(
            f"{where} does not parse as an access token (it holds spaces or control characters)"
        )
    return token


def _when(value: object) -> datetime | None:
    """Google's times (RFC 3339, up to nine digits of fractions).

    >>> _when("2026-12-07T15:00:00.123456789Z").isoformat()
    '2026-12-07T15:00:00.123456+00:00'
    """
    if not isinstance(value, str):
        return None
    text = value.replace("Z", "+00:00")
    head, dot, rest = text.partition(".")
    if dot:  # Google writes up to nine digits of fractions
        digits = "".join(itertools.takewhile(str.isdigit, rest))
        text = f"{head}.{digits[:6]}{rest[len(digits) :]}"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


class GarProvider:
    name = "gar"

    def __init__(
        self,
        host: str,
        env: Mapping[str, str],
        budget: RetryBudget | None = None,
        *,
        runner: Runner | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        # Bad input is exit 2 before any request: the location, the token's shape, the base.
        self.host = host
        self.location = location_of(host, env)
        given = env.get("GOOGLE_OAUTH_ACCESS_TOKEN")
        self._token = check_token(given, "GOOGLE_OAUTH_ACCESS_TOKEN") if given else None
        self._runner = runner
        self._env = env
        self._sleep = sleep
        variable = api_variable("gar")
        self._api = Api(
            env.get(variable) or DEFAULT_API_URL,
            variable=variable,
            what="the Artifact Registry API",
            rules=GAR_RULES,
            budget=budget,
            detail=gar_error_text,
        )
        self._lock = threading.Lock()
        self._authorized = False
        self._repos: dict[str, dict[str, Any]] = {}

    # -- the API ---------------------------------------------------------------------------

    @property
    def api(self) -> Api:
        with self._lock:
            if not self._authorized:
                self._api.set_header("Authorization", f"Bearer {self._access_token()}")
                self._authorized = True
        return self._api

    def _access_token(self) -> str:
        if self._token is not None:
            return self._token
        runner = self._runner or Runner(env=self._env)
        try:
            result = runner.run(
                ["gcloud", "auth", "print-access-token"], timeout=GCLOUD_TIMEOUT_SECONDS
            )
        except ProgramNotFound:
            raise UsageError(
                f"deleting from Artifact Registry goes through its API: {_TOKEN_HINT}"
            ) from None
        except subprocess.TimeoutExpired:
            raise UsageError(
                f"gcloud auth print-access-token did not answer within "
                f"{GCLOUD_TIMEOUT_SECONDS:g} s: {_TOKEN_HINT}"
            ) from None
        if not result.ok:
            raise UsageError(
                f"gcloud auth print-access-token failed (exit {result.returncode}): {_TOKEN_HINT}"
            )
        self._token = check_token(result.stdout, "the token gcloud printed")
        return self._token

    def _get(self, path: str, doing: str, params: Mapping[str, str] | None = None) -> Any:
        return self.api.request("GET", f"/v1/{path}", doing=doing, params=params).json(doing)

    def _paged(self, path: str, key: str, doing: str, params: Mapping[str, str]) -> Iterator[Any]:
        token = ""
        for _ in range(MAX_PAGES):
            query = {
                **params,
                "pageSize": str(PAGE_SIZE),
                **({"pageToken": token} if token else {}),
            }
            doc = self._get(path, doing, query)
            items = doc.get(key) if isinstance(doc, dict) else None
            yield from items if isinstance(items, list) else []
            nxt = doc.get("nextPageToken") if isinstance(doc, dict) else None
            if not isinstance(nxt, str) or not nxt:
                return
            token = nxt
        raise RegistryError(f"the Artifact Registry API sent more than {MAX_PAGES} pages")

    def repository(self, repository: str) -> dict[str, Any]:
        """The repository's resource (remembered for the run)."""
        where = gar_path(repository, self.location)
        with self._lock:
            if where.repo_name in self._repos:
                return self._repos[where.repo_name]
        doing = f"reading the Artifact Registry repository {where.repo_name}"
        try:
            doc = self._get(where.repo_name, doing)
        except NotFound:
            raise RegistryError(
                f"Artifact Registry has no repository {where.repo_name} for this token: check "
                "the image name (LOCATION-docker.pkg.dev/PROJECT/REPOSITORY/IMAGE)"
            ) from None
        found = doc if isinstance(doc, dict) else {}
        with self._lock:
            self._repos[where.repo_name] = found
        return found

    # -- the Provider interface --------------------------------------------------------------

    def check(self, api: RegistryApi, repository: str, *, delete: bool, untagged: bool) -> None:
        gar_path(repository, self.location)
        if delete or untagged:
            self.repository(repository)

    def delete_refusal(self, api: RegistryApi, repository: str) -> str | None:
        try:
            self.repository(repository)
        except (UsageError, RegistryError) as exc:
            return str(exc)
        return None

    def immutable_tags(self, api: RegistryApi, repository: str) -> str | None:
        try:
            repo = self.repository(repository)
        except (UsageError, AccessDenied, AuthenticationError):
            return None  # the push still meets the registry's own refusal
        config = repo.get("dockerConfig")
        if isinstance(config, dict) and config.get("immutableTags") is True:
            return (
                f"the Artifact Registry repository {repo.get('name') or repository} keeps "
                "its tags immutable (dockerConfig.immutableTags)"
            )
        return None

    def versions(self, api: RegistryApi, repository: str) -> Sequence[Version]:
        where = gar_path(repository, self.location)
        doing = f"listing the versions of {self.host}/{repository}"
        out: list[Version] = []
        try:
            items = list(
                self._paged(f"{where.package_name}/versions", "versions", doing, {"view": "FULL"})
            )
        except NotFound:
            return []  # no package yet: nothing pushed
        for n, item in enumerate(items):
            if not isinstance(item, dict):
                continue
            digest = str(item.get("name") or "").rpartition("/")[2]
            if not is_digest(digest):
                continue
            tags = tuple(
                str(t.get("name") or "").rpartition("/")[2]
                for t in item.get("relatedTags") or []
                if isinstance(t, dict)
            )
            out.append(
                Version(
                    n,
                    digest,
                    tuple(t for t in tags if t),
                    _when(item.get("createTime")),
                    _when(item.get("updateTime")),
                )
            )
        return out

    def delete(self, api: RegistryApi, repository: str, ref: str) -> None:
        where = gar_path(repository, self.location)
        shown = f"{self.host}/{repository}{'@' if is_digest(ref) else ':'}{ref}"
        if is_digest(ref):
            path = f"/v1/{where.package_name}/versions/{ref}"
            params: dict[str, str] | None = {"force": "true"}
            doing = f"deleting the version {shown}"
        else:
            path = f"/v1/{where.package_name}/tags/{quote(ref, safe='')}"
            params = None
            doing = f"deleting the tag {shown}"
        resp = self.api.request("DELETE", path, doing=doing, ok=(400, 404), params=params)
        if resp.status == 404:
            raise NotFound(f"{shown} is gone already")
        if resp.status == 400:
            self._refused(resp, shown, doing)
        self._wait(resp, doing)

    def _refused(self, resp: Answer, shown: str, doing: str) -> None:
        detail = clean(gar_error_text(resp.body), 300)
        if "immutable" in detail.lower():
            # The repository's own rule: a skip with its words, not a failure.
            raise Protected(f"Artifact Registry keeps {shown} ({detail})")
        raise RegistryError(f"the Artifact Registry API refused while {doing} ({detail})")

    def _wait(self, resp: Answer, doing: str) -> None:
        """Follow a long-running operation until ``done``, within the retry budget."""
        doc = resp.json(doing) if resp.body else {}
        for attempt in itertools.count(1):
            if not isinstance(doc, dict) or doc.get("done") is True or "name" not in doc:
                error = doc.get("error") if isinstance(doc, dict) else None
                if isinstance(error, dict):
                    message = clean(str(error.get("message") or error), 200)
                    raise RegistryError(
                        f"the Artifact Registry API failed while {doing}: {message}"
                    )
                return
            name = str(doc["name"])
            if not name.startswith("projects/") or ".." in name:
                raise RegistryError(
                    f"the Artifact Registry API named an odd operation while {doing}"
                )
            delay = self._api.core.retry.backoff_delay(attempt)
            if not self._api.core.budget.spend(delay):
                raise RegistryError(
                    f"the Artifact Registry API did not finish while {doing} within imgtag's "
                    "retry budget: check the version later"
                )
            self._sleep(delay)
            doc = self._get(name, doing)

    def refused_as_last(self) -> frozenset[str]:
        return frozenset()
