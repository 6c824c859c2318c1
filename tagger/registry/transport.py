"""The registry API's transport: one registry host, its scheme and its authentication.
Does I/O (network, through the HTTP core).

A :class:`Transport` sends through one :class:`~tagger.registry.http.HttpCore` (the
project's one HTTP core: retries within a budget, caps, status → typed errors) and adds
what only the registry API needs:

- **Scheme**: HTTPS with verification (a custom CA from ``ca_file``, or docker's
  ``/etc/docker/certs.d/HOST/ca.crt``). Plain HTTP only for loopback registries and for
  hosts the caller names insecure, and then only after HTTPS failed, as dockerd does.
- **Auth** (https://distribution.github.io/distribution/spec/auth/token/): on a 401 the
  ``WWW-Authenticate`` challenge says Basic or Bearer; Bearer tokens are fetched from the
  realm per scope, cached until they expire, and fetched again when a request answers 401
  with a token that was good a moment ago (tokens can expire mid-run).
- **Errors**: :func:`registry_service` is the registry API's small table on top of the
  core's status map (the distribution spec's error codes).

Everything a registry answers is untrusted: a token realm on plain HTTP gets no
credentials unless it is on loopback or the registry's own host.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from tagger.errors import (
    AccessDenied,
    AuthenticationError,
    RegistryError,
    RegistryUnreachable,
    Unsupported,
    register_secret,
)
from tagger.registry.auth import Credentials
from tagger.registry.http import (
    MAX_ANSWER_BYTES,
    MAX_ERROR_BYTES,
    MAX_TOKEN_BYTES,
    USER_AGENT,
    HttpCore,
    OneShotBody,
    RetryBudget,
    RetryPolicy,
    Service,
    StatusRule,
    clean,
    raise_for_status,
)
from tagger.registry.immutable import REGISTRY_RULES
from tagger.registry.reference import is_loopback_host

__all__ = ["RetryPolicy", "Transport", "parse_challenge", "realm_target"]

_TOKEN_RE = re.compile(r"[\x21-\x7e]+\Z")
_CERTS_D = Path("/etc/docker/certs.d")


@dataclass(frozen=True, slots=True)
class Challenge:
    """A parsed ``WWW-Authenticate`` header."""

    scheme: str  # "basic" or "bearer", lower-case
    params: Mapping[str, str]


_CHALLENGE_PARAM_RE = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


def parse_challenge(header: str) -> Challenge | None:
    """Parse ``WWW-Authenticate`` (RFC 7235; registries send one challenge).

    >>> c = parse_challenge('Bearer realm="https://auth.io/token",service="reg",scope="a:b:pull"')
    >>> c.scheme, c.params["realm"], c.params["scope"]
    ('bearer', 'https://auth.io/token', 'a:b:pull')
    >>> parse_challenge('Basic realm="Registry Realm"').scheme
    'basic'
    """
    header = header.strip()
    if not header:
        return None
    scheme, _, rest = header.partition(" ")
    params = {
        key.lower(): (quoted if quoted or not bare else bare).replace('\\"', '"')
        for key, quoted, bare in _CHALLENGE_PARAM_RE.findall(rest)
    }
    return Challenge(scheme.lower(), params)


@dataclass(frozen=True, slots=True)
class RealmTarget:
    """Where a token request really goes, and whether credentials may go with it."""

    url: str
    host: str  # host[:port] the connection is made to, user info never included
    send_credentials: bool


def realm_target(realm: str, registry_host: str) -> RealmTarget:
    """Judge a challenge's token ``realm`` by the host a request to it reaches.

    Credentials go over HTTPS, or over plain HTTP to loopback or to the registry's own
    host. A realm with user info is refused: ``http://[::1]@evil/`` goes to ``evil``,
    and no token service needs it.

    >>> realm_target("https://auth.example/token", "r.example").send_credentials
    True
    >>> realm_target("http://auth.example/token", "r.example").send_credentials
    False
    >>> realm_target("http://127.0.0.1:5001/token", "r.example").host
    '127.0.0.1:5001'
    >>> realm_target("http://[::1]@auth.example/token", "r.example")
    Traceback (most recent call last):
    ...
    tagger.errors.RegistryError: r.example names a token realm with user info (it would \
go to auth.example): refused
    """
    try:
        parts = urlsplit(realm)
        hostname, port = parts.hostname, parts.port
    except ValueError:
        hostname, port, parts = None, None, None
    if parts is None or parts.scheme not in ("http", "https") or not hostname:
        raise RegistryError(f"{registry_host} names no usable token realm ({clean(realm, 80)})")
    host = f"[{hostname}]" if ":" in hostname else hostname
    if port is not None:
        host = f"{host}:{port}"
    if "@" in parts.netloc:
        raise RegistryError(
            f"{registry_host} names a token realm with user info (it would go to "
            f"{clean(host, 80)}): refused"
        )
    send = parts.scheme == "https" or is_loopback_host(host) or host == registry_host
    return RealmTarget(realm, host, send)


def registry_error_text(body: bytes) -> str:
    """The registry's own error code and message, if its body has one (untrusted: the
    core cleans it).

    >>> registry_error_text(b'{"errors": [{"code": "UNSUPPORTED", "message": "nope"}]}')
    'UNSUPPORTED: nope'
    >>> registry_error_text(b"<html>")
    ''
    """
    try:
        first = json.loads(body)["errors"][0]
        code, message = str(first.get("code", "")), str(first.get("message", ""))
    except Exception:  # anything unexpected: fall back to the status alone
        return ""
    return f"{code}: {message}" if message else code


def registry_service(host: str) -> Service:
    """The registry API's additions to the core's status table (distribution spec error
    codes): Distribution 2.8 answers a DELETE by tag with 400 ``DIGEST_INVALID`` and some
    registries a DELETE they do not do with 400 ``UNSUPPORTED``."""
    return Service(
        detail=registry_error_text,
        rules=(
            # A write of an existing tag that the registry keeps immutable: exit 3.
            *REGISTRY_RULES,
            StatusRule(400, Unsupported, "UNSUPPORTED"),
            StatusRule(400, Unsupported, "DIGEST_INVALID"),
            StatusRule(
                401,
                AuthenticationError,
                hint=f"check them (docker login {host}, DOCKER_CONFIG)",
            ),
        ),
    )


@dataclass
class _Token:
    value: str
    expires_at: float


class Transport:
    """Requests to one registry host, authenticated and retried.

    ``credentials`` is called at most once, on the first challenge: anonymous registries
    never make imgtag run a credential helper. Retries wait with ``sleep``; cached tokens
    expire by ``clock`` (monotonic seconds); tests pass fakes of both.
    """

    def __init__(
        self,
        host: str,
        credentials: Callable[[], Credentials | None] | None = None,
        *,
        insecure: bool = False,
        ca_file: str | None = None,
        retry: RetryPolicy | None = None,
        budget: RetryBudget | None = None,
        timeout: float | None = None,
        pool_size: int = 16,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host = host
        self._get_credentials = credentials or (lambda: None)
        self._credentials: Credentials | None = None
        self._credentials_loaded = False
        self._allow_http = insecure or is_loopback_host(host)
        self.retry = retry or (budget.policy if budget else RetryPolicy())
        self.timeout = timeout if timeout is not None else self.retry.timeout
        self._clock = clock  # token expiry is measured on it (tests pass a fake one)
        self._scheme: str | None = None
        self._challenge: Challenge | None = None
        self._tokens: dict[str, _Token] = {}
        self._lock = threading.Lock()
        self.service = registry_service(host)
        certs_d = _CERTS_D / host / "ca.crt"
        verify: str | bool = True
        if ca_file:
            verify = ca_file
        elif certs_d.is_file():
            verify = str(certs_d)
        # One command on one registry: its retry budget (shared with the registry's
        # management API, when a provider has one: see tagger.registry.connect).
        self.core = HttpCore(
            retry=self.retry,
            budget=budget or RetryBudget(self.retry),
            pool_size=pool_size,
            verify=verify,
            sleep=sleep,
        )
        self.session = self.core.session
        self.token_fetches = 0  # observable for tests: re-authentication happened

    @property
    def budget(self) -> RetryBudget:
        return self.core.budget

    # -- public --------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        scope: str,
        headers: Mapping[str, str] | None = None,
        data: bytes | OneShotBody | None = None,
        params: Mapping[str, str] | None = None,
        doing: str,
        ok: Iterable[int] = (),
        url: str | None = None,
        max_bytes: int = MAX_ANSWER_BYTES,
        what: str = "an answer",
        stream: bool = False,
    ) -> requests.Response:
        """Send a request; return the response, or raise the typed error for its status.

        ``path`` is relative to the registry root (``/v2/...``); ``url`` (absolute, same
        host) wins when given, e.g. an upload ``Location``. Statuses in ``ok`` are
        returned instead of raised (a HEAD that expects 404).

        The body is read here, streamed against ``max_bytes`` (a :class:`RegistryError`
        naming the cap and ``what`` when it is more) and against the policy's deadline
        for one body. With ``stream`` a successful response is returned unread: the
        caller reads it with bounds of its own (a layer).
        """
        target = url or f"{self._base()}{path}"
        resp = self._send_authenticated(method, target, scope, headers, data, params, doing)
        wanted = resp.status_code < 400 or resp.status_code in set(ok)
        if not (stream and wanted):
            cap = max_bytes if wanted else MAX_ERROR_BYTES
            self.core.load(resp, cap, what, doing, cut=not wanted)
        if not wanted:
            raise_for_status(
                resp.status_code, resp.content, resp.url, doing, self.service, resp.headers
            )
        return resp

    def base_url(self) -> str:
        return self._base()

    def close(self) -> None:
        self.core.close()

    def _send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        data: bytes | Mapping[str, str] | OneShotBody | None,
        params: Mapping[str, str] | list[tuple[str, str]] | None,
        doing: str,
    ) -> requests.Response:
        return self.core.send(
            method, url, doing=doing, service=self.service, headers=headers, data=data,
            params=params,
        )  # fmt: skip

    # -- scheme --------------------------------------------------------------------------

    def _base(self) -> str:
        if self._scheme is None:
            self._scheme = self._probe_scheme()
        return f"{self._scheme}://{self.host}"

    def _probe_scheme(self) -> str:
        if not self._allow_http:
            return "https"
        # dockerd's rule for insecure registries: HTTPS first, then plain HTTP. Only the
        # handshake matters, so it is a bare TLS handshake with nothing sent after it and no
        # certificate check (loading the CA bundle costs more than the handshake): a TLS
        # server with a certificate we cannot verify stays on HTTPS, where the first real
        # request says so, instead of getting plain HTTP.
        wait = min(self.timeout, 10.0)
        try:
            return "https" if _speaks_tls(self.host, wait) else "http"
        except TimeoutError:
            # Connected, and then nothing: plain HTTP would meet the same silence.
            raise RegistryUnreachable(
                f"{self.host} accepted the connection but did not answer within "
                f"{wait:g} s: check that the registry is up"
            ) from None

    # -- auth ----------------------------------------------------------------------------

    def _creds(self) -> Credentials | None:
        with self._lock:
            if not self._credentials_loaded:
                self._credentials = self._get_credentials()
                self._credentials_loaded = True
            return self._credentials

    def _auth_headers(self, scope: str) -> dict[str, str]:
        challenge = self._challenge
        if challenge is None:
            return {}
        if challenge.scheme == "basic":
            creds = self._creds()
            basic = creds.basic_header() if creds else None
            if basic is None:
                return {}
            return {"Authorization": basic}
        if challenge.scheme == "bearer":
            token = self._token(scope, refresh=False)
            return {"Authorization": f"Bearer {token}"} if token else {}
        return {}

    def _token(self, scope: str, *, refresh: bool) -> str | None:
        creds = self._creds()
        if creds is not None and creds.registry_token:
            return creds.registry_token
        with self._lock:
            cached = self._tokens.get(scope)
            # A token within 5 s of its end is as good as expired: the request would race it.
            if cached is not None and not refresh and cached.expires_at - 5 > self._clock():
                return cached.value
        token = self._fetch_token(scope, creds)
        with self._lock:
            self._tokens[scope] = token
        return token.value

    def _fetch_token(self, scope: str, creds: Credentials | None) -> _Token:
        assert self._challenge is not None
        target = realm_target(self._challenge.params.get("realm", ""), self.host)
        send_creds = target.send_credentials
        params: list[tuple[str, str]] = []
        if service := self._challenge.params.get("service"):
            params.append(("service", service))
        params.extend(("scope", s) for s in scope.split(" ") if s)
        doing = f"getting a token from {target.host}"
        headers: dict[str, str] = {}
        if creds is not None and send_creds and (basic := creds.basic_header()):
            headers["Authorization"] = basic
        if creds is not None and creds.identity_token and send_creds:
            # OAuth2 refresh-token grant, as the docker CLI does with an identity token.
            form = dict(params[:1])
            form.update(
                grant_type="refresh_token",
                refresh_token=creds.identity_token,
                client_id=USER_AGENT,
                scope=" ".join(s for _, s in params if _ == "scope"),
            )
            resp = self._send("POST", target.url, {}, form, None, doing)
        else:
            resp = self._send("GET", target.url, headers, None, params, doing)
        if resp.status_code in (401, 403):
            resp.close()
            if creds is None:
                raise AuthenticationError(
                    f"{self.host} needs credentials and none were found: docker login "
                    f"{self.host} (or point DOCKER_CONFIG at a config.json that has them)"
                )
            raise AuthenticationError(
                f"the token service of {self.host} rejected the credentials: check them "
                f"(docker login {self.host}, DOCKER_CONFIG)"
            )
        ok = resp.status_code < 400
        what = "a token answer"
        body = self.core.load(
            resp, MAX_TOKEN_BYTES if ok else MAX_ERROR_BYTES, what, doing, cut=not ok
        )
        raise_for_status(resp.status_code, body, resp.url, doing, self.service, resp.headers)
        value, expires_in = parse_token_answer(resp.content, self.host)
        self.token_fetches += 1
        # Spec: at least 60 s when expires_in is missing; trust a shorter one if given.
        return _Token(value, self._clock() + max(1.0, expires_in))

    def _learn_challenge(self, resp: requests.Response) -> bool:
        challenge = parse_challenge(resp.headers.get("WWW-Authenticate", ""))
        if challenge is None or challenge.scheme not in ("basic", "bearer"):
            return False
        self._challenge = challenge
        return True

    def _send_authenticated(
        self,
        method: str,
        url: str,
        scope: str,
        headers: Mapping[str, str] | None,
        data: bytes | OneShotBody | None,
        params: Mapping[str, str] | None,
        doing: str,
    ) -> requests.Response:
        hdrs = dict(headers or {})
        hdrs.update(self._auth_headers(scope))
        resp = self._send(method, url, hdrs, data, params, doing)
        if resp.status_code != 401 or isinstance(data, OneShotBody):
            # (A streamed body is gone: its caller starts the upload over, token and all.)
            return resp
        had_auth = "Authorization" in hdrs
        # First 401: learn the challenge; later 401s with a token: it may have expired,
        # or the registry wants a wider scope. Either way one fresh attempt, no more.
        if not self._learn_challenge(resp):
            return resp
        resp.close()  # a 401's body is of no use: the next request says what happened
        if self._challenge is not None and self._challenge.scheme == "bearer":
            wanted = self._challenge.params.get("scope")
            request_scope = scope if not wanted or wanted in scope else f"{scope} {wanted}"
            hdrs = dict(headers or {})
            token = self._token(request_scope, refresh=had_auth)
            if token:
                hdrs["Authorization"] = f"Bearer {token}"
        else:
            hdrs = dict(headers or {})
            hdrs.update(self._auth_headers(scope))
            if "Authorization" not in hdrs:
                raise AuthenticationError(
                    f"{self.host} needs credentials and none were found while {doing}: "
                    f"docker login {self.host} (or point DOCKER_CONFIG at a config.json "
                    "that has them)"
                )
            if had_auth:
                return resp  # they were just refused: raise_for_status says so
        resp = self._send(method, url, hdrs, data, params, doing)
        bearer = self._challenge is not None and self._challenge.scheme == "bearer"
        if resp.status_code == 401 and bearer and self._creds() is not None:
            resp.close()
            raise AccessDenied(
                f"{self.host} refused access while {doing}: the credentials lack "
                f"the permission ({clean(scope, 120)})"
            )
        return resp


def parse_token_answer(body: bytes, registry_host: str) -> tuple[str, float]:
    """The token and its lifetime in seconds from a token service's JSON answer.

    The token goes into an HTTP header as it is: visible ASCII only. ``expires_in``
    must be a positive number when given (60 s when missing).

    >>> parse_token_answer(b'{"token": "abc.def", "expires_in": 300}', "r")
    ('abc.def', 300.0)
    >>> parse_token_answer(b'{"token": "abc.def", "expires_in": [1]}', "r")
    Traceback (most recent call last):
    ...
    tagger.errors.RegistryError: the token service of r answered an expires_in that \
is not a number of seconds
    """
    try:
        doc = json.loads(body)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        raise RegistryError(f"the token service of {registry_host} answered no token")
    value = doc.get("token") or doc.get("access_token")
    if not isinstance(value, str) or not value:
        raise RegistryError(f"the token service of {registry_host} answered no token")
    register_secret(value)
    if _TOKEN_RE.match(value) is None:
        raise RegistryError(
            f"the token service of {registry_host} answered a token with characters a "
            "token cannot have (white space, control characters or non-ASCII)"
        )
    expires_in = doc.get("expires_in")
    if expires_in is None:
        return value, 60.0
    if (
        isinstance(expires_in, bool)
        or not isinstance(expires_in, int | float)
        or not math.isfinite(expires_in)
        or expires_in <= 0
    ):
        raise RegistryError(
            f"the token service of {registry_host} answered an expires_in that is not a "
            "number of seconds"
        )
    return value, min(float(expires_in), 365 * 86400.0)


def request_json(resp: requests.Response, doing: str) -> Any:
    """The JSON body of a response, or a RegistryError saying it was not JSON."""
    try:
        return resp.json()
    except ValueError as exc:
        raise RegistryError(
            f"{urlsplit(resp.url).netloc} answered something that is not JSON while {doing}"
        ) from exc


def _speaks_tls(host: str, timeout: float) -> bool:
    """Whether the server at ``host`` (``name[:port]``, 443 by default) completes a TLS
    handshake. ``False`` when it refuses the connection or answers something else (plain
    HTTP); :class:`TimeoutError` when it accepts and then stays silent."""
    import socket
    import ssl

    parts = urlsplit(f"//{host}")
    name, port = parts.hostname or host, parts.port or 443
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # only "does it speak TLS": nothing is sent
    try:
        with (
            socket.create_connection((name, port), timeout=timeout) as sock,
            context.wrap_socket(sock, server_hostname=name),
        ):
            return True
    except TimeoutError:
        raise TimeoutError(host) from None
    except (ssl.SSLError, ConnectionError, OSError):
        return False
