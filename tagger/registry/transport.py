"""HTTP transport to one registry: pooled session, auth challenges, retries. Does I/O.

One :class:`Transport` per registry host owns one ``requests.Session`` (connection
pooling for concurrent HEADs and DELETEs) and does what every request needs:

- **Scheme**: HTTPS with verification (a custom CA from ``ca_file``, or docker's
  ``/etc/docker/certs.d/HOST/ca.crt``). Plain HTTP only for loopback registries and for
  hosts the caller names insecure, and then only after HTTPS failed, as dockerd does.
- **Auth** (https://distribution.github.io/distribution/spec/auth/token/): on a 401 the
  ``WWW-Authenticate`` challenge says Basic or Bearer; Bearer tokens are fetched from the
  realm per scope, cached until they expire, and fetched again when a request answers 401
  with a token that was good a moment ago (tokens can expire mid-run).
- **Retries**: 429, 502, 503 and 504 (and 500 on reads) and dropped connections, with
  exponential backoff honouring ``Retry-After``, a bounded number of times.
- **Errors**: :func:`raise_for_status` is the one place that turns HTTP statuses into the
  typed errors of ``tagger.errors``.

Everything a registry answers is untrusted: error texts are cut short, stripped of
control characters and redacted; a token realm on plain HTTP gets no credentials unless
it is on loopback or the registry's own host.
"""

from __future__ import annotations

import contextlib
import email.utils
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from tagger.errors import (
    AccessDenied,
    AuthenticationError,
    NotFound,
    RateLimited,
    RegistryError,
    RegistryUnreachable,
    Unsupported,
    UsageError,
    redact,
    register_secret,
)
from tagger.registry.auth import Credentials
from tagger.registry.reference import is_loopback_host

RETRY_STATUSES = frozenset({429, 502, 503, 504})
# Reads are also retried on 500: Distribution answers 500 to a HEAD of a tag that another
# client is rewriting at that moment (seen in the concurrent-publish test), and
# go-containerregistry retries 500 too. Writes are not: a 500 there may have taken effect.
_READS = frozenset({"GET", "HEAD"})


def _retryable(method: str, status: int) -> bool:
    return status in RETRY_STATUSES or (status == 500 and method in _READS)


_USER_AGENT = "imgtag"
_CERTS_D = Path("/etc/docker/certs.d")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to retry. ``attempts`` counts the first try."""

    attempts: int = 5
    backoff: float = 0.5  # seconds before the first retry; doubles each time
    max_backoff: float = 8.0
    max_retry_after: float = 60.0  # a registry asking for longer is not waited for

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RetryPolicy:
        """``IMGTAG_RETRIES`` (attempts, first try included) and ``IMGTAG_RETRY_BACKOFF``
        (seconds before the first retry) tune the defaults, e.g. for a flaky mirror."""
        policy = cls()
        try:
            if raw := env.get("IMGTAG_RETRIES"):
                policy = replace(policy, attempts=max(1, int(raw)))
            if raw := env.get("IMGTAG_RETRY_BACKOFF"):
                policy = replace(policy, backoff=max(0.0, float(raw)))
        except ValueError:
            raise UsageError(
                "IMGTAG_RETRIES must be a whole number and IMGTAG_RETRY_BACKOFF a number of seconds"
            ) from None
        return policy

    def delay(self, attempt: int, retry_after: str | None) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based).

        >>> RetryPolicy(backoff=0.5).delay(1, "3")
        3.0
        >>> 0.5 <= RetryPolicy(backoff=0.5).delay(1, None) <= 0.75
        True
        """
        hinted = _parse_retry_after(retry_after)
        if hinted is not None:
            return min(hinted, self.max_retry_after)
        base: float = min(self.max_backoff, self.backoff * 2.0 ** (attempt - 1))
        return base * (1 + random.random() / 2)  # jitter: contenders do not retry in step


def _parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


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


def _clean(text: str, limit: int = 200) -> str:
    # Untrusted text from a registry: no control characters (terminal escapes), short.
    text = "".join(ch if ch.isprintable() else " " for ch in text).strip()
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return redact(text)


def registry_error_text(resp: requests.Response) -> str:
    """The registry's own error code and message, if its body has one (untrusted)."""
    try:
        body = resp.json()
        first = body["errors"][0]
        code, message = str(first.get("code", "")), str(first.get("message", ""))
    except Exception:  # anything unexpected: fall back to the status alone
        return ""
    return _clean(f"{code}: {message}" if message else code)


def raise_for_status(resp: requests.Response, doing: str) -> None:
    """The one place that maps a registry's HTTP status to a typed error.

    ``doing`` completes "while ...", e.g. ``"checking 127.0.0.1:5000/app:1.0.0-1"``.
    """
    status = resp.status_code
    if status < 400:
        return
    detail = registry_error_text(resp)
    suffix = f" ({detail})" if detail else ""
    host = urlsplit(resp.url).netloc
    if status == 401:
        raise AuthenticationError(
            f"{host} rejected the credentials while {doing}{suffix}: check them "
            f"(docker login {host}, DOCKER_CONFIG)"
        )
    if status == 403:
        raise AccessDenied(f"{host} denied access while {doing}{suffix}")
    if status == 404:
        raise NotFound(f"{host} has no such thing while {doing}{suffix}")
    if status == 405 or (status == 400 and ("UNSUPPORTED" in detail or "DIGEST_INVALID" in detail)):
        raise Unsupported(f"{host} does not support this while {doing}{suffix}")
    if status == 429:
        raise RateLimited(
            f"{host} is still rate limiting after retries while {doing}: try again later"
        )
    raise RegistryError(f"{host} answered HTTP {status} while {doing}{suffix}")


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
        timeout: float = 60.0,
        pool_size: int = 16,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host = host
        self._get_credentials = credentials or (lambda: None)
        self._credentials: Credentials | None = None
        self._credentials_loaded = False
        self._allow_http = insecure or is_loopback_host(host)
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self._sleep = sleep
        self._clock = clock  # token expiry is measured on it (tests pass a fake one)
        self._scheme: str | None = None
        self._challenge: Challenge | None = None
        self._tokens: dict[str, _Token] = {}
        self._lock = threading.Lock()
        self.session = requests.Session()
        self.session.headers["User-Agent"] = _USER_AGENT
        self.session.trust_env = False  # no ~/.netrc credentials or proxies by surprise
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=pool_size)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        certs_d = _CERTS_D / host / "ca.crt"
        if ca_file:
            self.session.verify = ca_file
        elif certs_d.is_file():
            self.session.verify = str(certs_d)
        self.token_fetches = 0  # observable for tests: re-authentication happened

    # -- public --------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        scope: str,
        headers: Mapping[str, str] | None = None,
        data: bytes | None = None,
        params: Mapping[str, str] | None = None,
        doing: str,
        ok: Iterable[int] = (),
        url: str | None = None,
    ) -> requests.Response:
        """Send a request; return the response, or raise the typed error for its status.

        ``path`` is relative to the registry root (``/v2/...``); ``url`` (absolute, same
        host) wins when given, e.g. an upload ``Location``. Statuses in ``ok`` are
        returned instead of raised (a HEAD that expects 404).
        """
        target = url or f"{self._base()}{path}"
        resp = self._send_authenticated(method, target, scope, headers, data, params, doing)
        if resp.status_code in set(ok):
            return resp
        raise_for_status(resp, doing)
        return resp

    def base_url(self) -> str:
        return self._base()

    def close(self) -> None:
        self.session.close()

    # -- scheme --------------------------------------------------------------------------

    def _base(self) -> str:
        if self._scheme is None:
            self._scheme = self._probe_scheme()
        return f"{self._scheme}://{self.host}"

    def _probe_scheme(self) -> str:
        if not self._allow_http:
            return "https"
        # dockerd's rule for insecure registries: HTTPS first, then plain HTTP.
        try:
            self.session.get(f"https://{self.host}/v2/", timeout=min(self.timeout, 10.0))
        except requests.exceptions.SSLError as exc:
            # A TLS server with a certificate we cannot verify is still a TLS server:
            # stay on HTTPS so the next request says so, instead of sending plain HTTP.
            if "certificate verify failed" in str(exc).lower():
                return "https"
            return "http"
        except requests.exceptions.ConnectionError:
            return "http"
        return "https"

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
            basic = creds.basic_auth() if creds else None
            if basic is None:
                return {}
            return {"Authorization": requests.auth._basic_auth_str(*basic)}
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
        realm = self._challenge.params.get("realm", "")
        parts = urlsplit(realm)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise RegistryError(f"{self.host} names no usable token realm ({_clean(realm, 80)})")
        send_creds = (
            parts.scheme == "https" or is_loopback_host(parts.netloc) or (parts.netloc == self.host)
        )
        params: list[tuple[str, str]] = []
        if service := self._challenge.params.get("service"):
            params.append(("service", service))
        params.extend(("scope", s) for s in scope.split(" ") if s)
        auth = creds.basic_auth() if creds and send_creds else None
        doing = f"getting a token from {parts.netloc}"
        if creds is not None and creds.identity_token and send_creds:
            # OAuth2 refresh-token grant, as the docker CLI does with an identity token.
            form = dict(params[:1])
            form.update(
                grant_type="refresh_token",
                refresh_token=creds.identity_token,
                client_id=_USER_AGENT,
                scope=" ".join(s for _, s in params if _ == "scope"),
            )
            resp = self._send_retrying("POST", realm, {}, None, None, doing, form=form)
        else:
            resp = self._send_retrying("GET", realm, {}, None, params, doing, auth=auth)
        if resp.status_code in (401, 403):
            if creds is None:
                raise AuthenticationError(
                    f"{self.host} needs credentials and none were found: docker login "
                    f"{self.host} (or point DOCKER_CONFIG at a config.json that has them)"
                )
            raise AuthenticationError(
                f"the token service of {self.host} rejected the credentials: check them "
                f"(docker login {self.host}, DOCKER_CONFIG)"
            )
        raise_for_status(resp, doing)
        try:
            body = resp.json()
            value = str(body.get("token") or body.get("access_token") or "")
            expires_in = float(body.get("expires_in") or 60)
        except (ValueError, AttributeError) as exc:
            raise RegistryError(f"the token service of {self.host} answered no token") from exc
        if not value:
            raise RegistryError(f"the token service of {self.host} answered no token")
        register_secret(value)
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
        data: bytes | None,
        params: Mapping[str, str] | None,
        doing: str,
    ) -> requests.Response:
        hdrs = dict(headers or {})
        hdrs.update(self._auth_headers(scope))
        resp = self._send_retrying(method, url, hdrs, data, params, doing)
        if resp.status_code != 401:
            return resp
        had_auth = "Authorization" in hdrs
        # First 401: learn the challenge; later 401s with a token: it may have expired,
        # or the registry wants a wider scope. Either way one fresh attempt, no more.
        if not self._learn_challenge(resp):
            return resp
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
        resp = self._send_retrying(method, url, hdrs, data, params, doing)
        bearer = self._challenge is not None and self._challenge.scheme == "bearer"
        if resp.status_code == 401 and bearer and self._creds() is not None:
            raise AccessDenied(
                f"{self.host} refused access while {doing}: the credentials lack "
                f"the permission ({_clean(scope, 120)})"
            )
        return resp

    # -- retries -------------------------------------------------------------------------

    def _send_retrying(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        data: bytes | None,
        params: Mapping[str, str] | list[tuple[str, str]] | None,
        doing: str,
        *,
        auth: tuple[str, str] | None = None,
        form: Mapping[str, str] | None = None,
    ) -> requests.Response:
        last_error: Exception | None = None
        for attempt in range(1, self.retry.attempts + 1):
            try:
                resp = self.session.request(
                    method,
                    url,
                    headers=dict(headers),
                    data=form if form is not None else data,
                    params=params,
                    auth=auth,
                    timeout=self.timeout,
                    allow_redirects=method in ("GET", "HEAD"),
                )
            except requests.exceptions.SSLError as exc:
                raise RegistryUnreachable(
                    f"TLS with {urlsplit(url).netloc} failed while {doing}: "
                    f"{_clean(str(exc.__context__ or exc), 160)} (a private CA needs "
                    "--ca-file or /etc/docker/certs.d/HOST/ca.crt)"
                ) from None
            except (
                requests.exceptions.ConnectionError,
                requests.exceptions.Timeout,
                requests.exceptions.ChunkedEncodingError,
            ) as exc:
                last_error = exc
                # A name that does not resolve will not resolve in a second either.
                if attempt == self.retry.attempts or "NameResolutionError" in repr(exc):
                    break
                self._sleep(self.retry.delay(attempt, None))
                continue
            if not _retryable(method, resp.status_code) or attempt == self.retry.attempts:
                return resp
            retry_after = resp.headers.get("Retry-After")
            with contextlib.suppress(Exception):
                resp.close()
            self._sleep(self.retry.delay(attempt, retry_after))
        raise RegistryUnreachable(
            f"{urlsplit(url).netloc} did not answer while {doing} "
            f"({type(last_error).__name__} after {self.retry.attempts} attempts): check "
            "the address and that the registry is up"
        ) from None


def request_json(resp: requests.Response, doing: str) -> Any:
    """The JSON body of a response, or a RegistryError saying it was not JSON."""
    try:
        return resp.json()
    except ValueError as exc:
        raise RegistryError(
            f"{urlsplit(resp.url).netloc} answered something that is not JSON while {doing}"
        ) from exc
