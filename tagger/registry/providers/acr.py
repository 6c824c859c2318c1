"""The ``acr`` provider: Azure Container Registry through its own ``/acr/v1`` API. Does I/O.

From the Azure Container Registry REST reference
(https://learn.microsoft.com/en-us/rest/api/containerregistry/):

- tokens (https://learn.microsoft.com/en-us/rest/api/containerregistry/refresh-tokens/get-from-exchange,
  .../access-tokens/get, .../access-tokens/get-from-login, and
  https://github.com/Azure/acr/blob/main/docs/AAD-OAuth.md): an ACR refresh token comes
  from ``az acr login`` (the docker config's ``identitytoken``), or from an Entra ID access
  token through ``POST /oauth2/exchange`` (``grant_type=access_token``, ``service``,
  ``access_token``); ``POST /oauth2/token`` (``grant_type=refresh_token``, ``service``,
  ``scope``, ``refresh_token``) turns it into an access token for one scope; a user name
  and password (the admin user, a repository-scoped token, a service principal) get one
  from ``GET /oauth2/token?service=…&scope=…`` with Basic authentication. Scopes are
  ``repository:NAME:pull,push,delete,metadata_read,metadata_write``;
- ``GET /acr/v1/{name}/_tags`` ("Tag - Get List": ``tags`` with ``name``, ``digest``,
  ``createdTime``, ``lastUpdateTime``, ``changeableAttributes``), ``n`` and ``last``,
  paged by ``Link: <…>; rel="next"``; ``GET /acr/v1/{name}/_tags/{tag}`` its attributes;
  ``DELETE /acr/v1/{name}/_tags/{tag}`` removes the tag alone (202), the manifest stays;
- ``GET /acr/v1/{name}/_manifests`` ("Manifests - Get List": every manifest, tagged or
  not, with ``digest``, ``tags``, ``createdTime``, ``lastUpdateTime``,
  ``changeableAttributes``), paged the same way; ``…/_manifests/{digest}`` one manifest;
- a manifest is deleted by digest through the registry API
  (``DELETE /v2/{name}/manifests/{digest}``), with every tag on it;
- locks (https://learn.microsoft.com/en-us/azure/container-registry/container-registry-image-lock):
  ``writeEnabled: false`` locks an image or tag against changes and deletes,
  ``deleteEnabled: false`` against deletes: prune reports a skip with that reason
  (:class:`~tagger.errors.Protected`), never a failure.

The API base is the registry's own host (``https://NAME.azurecr.io``), or
``IMGTAG_ACR_API_URL`` (plain HTTP on loopback only: the test bed's simulator). Every token
is registered for redaction the moment it is read.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
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
from tagger.registry.auth import Credentials, DockerConfig
from tagger.registry.cloudhosts import api_variable
from tagger.registry.http import MAX_TOKEN_BYTES, RetryBudget, StatusRule
from tagger.registry.protocols import RegistryApi, Version
from tagger.registry.providers.api import Api
from tagger.registry.reference import is_digest

PAGE = 100
#: An Entra ID access token for the exchange (``az account get-access-token``).
AAD_TOKEN_VARIABLE = "IMGTAG_ACR_AAD_TOKEN"
_LOGIN_HINT = (
    "log in as the docker CLI does (az acr login --name NAME, or docker login NAME.azurecr.io "
    f"with a token or service principal), or set {AAD_TOKEN_VARIABLE} to an Entra ID access "
    "token; the identity needs delete rights on the repository (AcrDelete, or a token with "
    "content/delete and metadata/read)"
)
ACR_RULES = (StatusRule(401, AuthenticationError, hint=_LOGIN_HINT),)


def acr_error_text(body: bytes) -> str:
    """ACR's error text: ``{"errors": [{"code", "message"}]}``.

    >>> acr_error_text(b'{"errors": [{"code": "DENIED", "message": "locked"}]}')
    'DENIED: locked'
    """
    import json

    try:
        first = json.loads(body)["errors"][0]
        code, message = str(first.get("code", "")), str(first.get("message", ""))
    except Exception:
        return ""
    return f"{code}: {message}" if message else code


def lock_reason(attributes: object, what: str) -> str | None:
    """Why ``attributes`` (``changeableAttributes``) keep ``what`` from being deleted.

    >>> lock_reason({"deleteEnabled": False, "writeEnabled": True}, "tag 1.0.0-1")
    'locked on ACR: tag 1.0.0-1 has deleteEnabled false'
    >>> lock_reason({"deleteEnabled": True, "writeEnabled": True}, "x") is None
    True
    """
    if not isinstance(attributes, dict):
        return None
    for key in ("writeEnabled", "deleteEnabled"):
        if attributes.get(key) is False:
            return f"locked on ACR: {what} has {key} false"
    return None


def _when(value: object) -> datetime | None:
    """ACR's times, fractions of seven digits and all.

    >>> _when("2026-12-07T15:00:00.1234567Z").isoformat()
    '2026-12-07T15:00:00.123456+00:00'
    >>> _when("2026-12-07T15:00:00").tzinfo is not None, _when("soon")
    (True, None)
    """
    if not isinstance(value, str):
        return None
    text = value.replace("Z", "+00:00")
    # ACR writes seven digits of fractions; fromisoformat takes at most six.
    head, dot, rest = text.partition(".")
    if dot:
        digits = "".join(itertools.takewhile(str.isdigit, rest))
        text = f"{head}.{digits[:6]}{rest[len(digits) :]}"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


class AcrProvider:
    name = "acr"

    def __init__(
        self, host: str, env: Mapping[str, str], budget: RetryBudget | None = None
    ) -> None:
        self.host = host
        self._env = env
        self._budget = budget
        variable = api_variable("acr")
        self._base = env.get(variable) or f"https://{host}"
        self._variable = variable
        self._aad = (env.get(AAD_TOKEN_VARIABLE) or "").strip() or None
        register_secret(self._aad)
        if self._aad is not None and not self._aad.isprintable():
            raise UsageError(f"{AAD_TOKEN_VARIABLE} does not parse: it holds control characters")
        self._api: Api | None = None
        self._lock = threading.Lock()
        self._refresh: str | None = None
        self._basic: Credentials | None = None
        self._tokens: dict[str, str] = {}
        # Bad input is exit 2 before any request: a base URL that is not one.
        self.api  # noqa: B018

    # -- the API and its tokens --------------------------------------------------------------

    @property
    def api(self) -> Api:
        with self._lock:
            if self._api is None:
                self._api = Api(
                    self._base,
                    variable=self._variable,
                    what="the ACR API",
                    rules=ACR_RULES,
                    budget=self._budget,
                    detail=acr_error_text,
                )
            return self._api

    def _credentials(self) -> None:
        """The refresh token (``identitytoken``, or the exchange of an Entra ID token) or
        the user and password to log in with; a usage error when there is neither."""
        if self._refresh is not None or self._basic is not None:
            return
        creds = DockerConfig.load(self._env).credentials(self.host)
        if creds is not None and creds.identity_token:
            self._refresh = creds.identity_token
            return
        if self._aad is not None:
            self._refresh = self._exchange(self._aad)
            return
        if creds is not None and creds.username and creds.password:
            self._basic = creds
            return
        raise UsageError(f"deleting from ACR needs its API's login: {_LOGIN_HINT}")

    def _exchange(self, aad: str) -> str:
        doing = "exchanging the Entra ID token for an ACR refresh token"
        resp = self.api.core.request(
            "POST",
            self.api.url("/oauth2/exchange"),
            doing=doing,
            service=self.api.service,
            max_bytes=MAX_TOKEN_BYTES,
            what="a token answer",
            data={"grant_type": "access_token", "service": self.host, "access_token": aad},
            allow_redirects=False,
        )
        return self._token_from(resp.json(doing), "refresh_token", doing)

    def _token_from(self, doc: object, key: str, doing: str) -> str:
        token = doc.get(key) if isinstance(doc, dict) else None
        if not isinstance(token, str) or not token or not token.isprintable():
            raise RegistryError(f"the ACR API answered without a {key} while {doing}")
        register_secret(token)
        return token

    def _access_token(self, repository: str) -> str:
        scope = f"repository:{repository}:pull,delete,metadata_read"
        with self._lock:
            if scope in self._tokens:
                return self._tokens[scope]
        self._credentials()
        doing = f"getting an ACR access token for {self.host}/{repository}"
        if self._refresh is not None:
            resp = self.api.core.request(
                "POST",
                self.api.url("/oauth2/token"),
                doing=doing,
                service=self.api.service,
                max_bytes=MAX_TOKEN_BYTES,
                what="a token answer",
                data={
                    "grant_type": "refresh_token",
                    "service": self.host,
                    "scope": scope,
                    "refresh_token": self._refresh,
                },
                allow_redirects=False,
            )
        else:
            header = self._basic.basic_header() if self._basic is not None else None
            if header is None:
                raise UsageError(f"deleting from ACR needs its API's login: {_LOGIN_HINT}")
            resp = self.api.core.request(
                "GET",
                self.api.url("/oauth2/token"),
                doing=doing,
                service=self.api.service,
                max_bytes=MAX_TOKEN_BYTES,
                what="a token answer",
                params={"service": self.host, "scope": scope},
                headers={"Authorization": header},
                allow_redirects=False,
            )
        token = self._token_from(resp.json(doing), "access_token", doing)
        with self._lock:
            self._tokens[scope] = token
        return token

    def _request(
        self, method: str, path: str, repository: str, doing: str, ok: tuple[int, ...] = ()
    ) -> Any:
        self.api.set_header("Authorization", f"Bearer {self._access_token(repository)}")
        return self.api.request(method, path, doing=doing, ok=ok)

    def _path(self, repository: str) -> str:
        # ACR's paths take the repository as it is, slashes and all.
        return f"/acr/v1/{quote(repository, safe='/')}"

    # -- the Provider interface --------------------------------------------------------------

    def check(self, api: RegistryApi, repository: str, *, delete: bool, untagged: bool) -> None:
        """Before planning: a login that works and a repository that exists, with one
        ``GET …/_tags?n=1``."""
        if not (delete or untagged):
            return
        doing = f"reading the tags of {self.host}/{repository}"
        resp = self._request(
            "GET", f"{self._path(repository)}/_tags?n=1", repository, doing, ok=(404,)
        )
        if resp.status == 404:
            raise RegistryError(
                f"ACR has no repository {self.host}/{repository} for this login: check the name"
            )

    def delete_refusal(self, api: RegistryApi, repository: str) -> str | None:
        try:
            self._credentials()
            self._access_token(repository)
        except (UsageError, AuthenticationError, AccessDenied) as exc:
            return str(exc)
        return None

    def immutable_tags(self, api: RegistryApi, repository: str) -> str | None:
        return None  # ACR locks single images and tags, not a repository's tags

    def versions(self, api: RegistryApi, repository: str) -> Sequence[Version]:
        """Every manifest, tagged or not (``_manifests``), to the last page."""
        doing = f"listing the manifests of {self.host}/{repository}"
        self.api.set_header("Authorization", f"Bearer {self._access_token(repository)}")
        out: list[Version] = []
        try:
            for doc in self.api.pages(
                f"{self._path(repository)}/_manifests",
                doing=doing,
                params={"n": str(PAGE)},
                body_next=False,
            ):
                items = doc.get("manifests") if isinstance(doc, dict) else None
                for item in items or []:
                    if not isinstance(item, dict) or not is_digest(str(item.get("digest") or "")):
                        continue
                    tags = tuple(t for t in item.get("tags") or () if isinstance(t, str))
                    out.append(
                        Version(
                            len(out),
                            str(item["digest"]),
                            tags,
                            _when(item.get("createdTime")),
                            _when(item.get("lastUpdateTime")),
                        )
                    )
        except NotFound:
            raise RegistryError(f"ACR has no repository {self.host}/{repository}") from None
        return out

    def delete(self, api: RegistryApi, repository: str, ref: str) -> None:
        if is_digest(ref):
            where = f"{self.host}/{repository}@{ref}"
            doing = f"reading the attributes of {where}"
            resp = self._request(
                "GET", f"{self._path(repository)}/_manifests/{ref}", repository, doing, ok=(404,)
            )
            if resp.status == 404:
                raise NotFound(f"{where} is gone already")
            doc = resp.json(doing)
            manifest = doc.get("manifest") if isinstance(doc, dict) else None
            attrs = manifest.get("changeableAttributes") if isinstance(manifest, dict) else None
            if (why := lock_reason(attrs, f"the image {ref[:19]}")) is not None:
                raise Protected(why)
            # Its tags go with it: a locked one keeps the image.
            tags = manifest.get("tags") if isinstance(manifest, dict) else None
            for tag in tags if isinstance(tags, list) else []:
                try:
                    why = self._tag_lock(repository, tag) if isinstance(tag, str) else None
                except NotFound:
                    continue  # that tag went meanwhile
                if why is not None:
                    raise Protected(why)
            try:
                api.registry_delete(repository, ref)
            except Unsupported as exc:  # locked since we looked: the registry's own words
                raise Protected(f"locked on ACR: the image {ref[:19]} ({exc})") from None
            return
        where = f"{self.host}/{repository}:{ref}"
        tag_path = self._tag_path(repository, ref)
        if (why := self._tag_lock(repository, ref)) is not None:
            raise Protected(why)
        doing = f"deleting the tag {where}"
        resp = self._request("DELETE", tag_path, repository, doing, ok=(404, 405))
        if resp.status == 404:
            raise NotFound(f"{where} is gone already")
        if resp.status == 405:
            # Protected since we looked: the registry's own words.
            detail = acr_error_text(resp.body) or "HTTP 405"
            raise Protected(f"locked on ACR: {ref} ({detail})")

    def _tag_path(self, repository: str, tag: str) -> str:
        return f"{self._path(repository)}/_tags/{quote(tag, safe='')}"

    def _tag_lock(self, repository: str, tag: str) -> str | None:
        """Why ``tag`` is locked, or ``None``; a :class:`NotFound` when it is gone."""
        where = f"{self.host}/{repository}:{tag}"
        doing = f"reading the attributes of {where}"
        resp = self._request("GET", self._tag_path(repository, tag), repository, doing, ok=(404,))
        if resp.status == 404:
            raise NotFound(f"{where} is gone already")
        doc = resp.json(doing)
        item = doc.get("tag") if isinstance(doc, dict) else None
        attrs = item.get("changeableAttributes") if isinstance(item, dict) else None
        return lock_reason(attrs, f"the tag {tag}")

    def refused_as_last(self) -> frozenset[str]:
        return frozenset()
