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

import email.utils
import json
import math
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

# Body caps (docs/registries.md, "Untrusted answers"): manifests and configs 4 MiB (the OCI
# distribution spec's manifest limit), token answers 1 MiB, a tags page 16 MiB; error
# bodies are read for their message only, and cut.
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_CONFIG_BYTES = 4 * 1024 * 1024
MAX_TOKEN_BYTES = 1024 * 1024
MAX_TAGS_PAGE_BYTES = 16 * 1024 * 1024
MAX_ANSWER_BYTES = 1024 * 1024  # anything else: upload answers, HEADs, DELETEs
MAX_ERROR_BYTES = 64 * 1024
_READ_CHUNK = 64 * 1024
_TOKEN_RE = re.compile(r"[\x21-\x7e]+\Z")


def _size_text(n: int) -> str:
    """A cap as people read it.

    >>> _size_text(4 * 1024 * 1024), _size_text(1000)
    ('4 MiB', '1000 bytes')
    """
    return f"{n // (1024 * 1024)} MiB" if n % (1024 * 1024) == 0 else f"{n} bytes"


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
    """How often and how long to retry, and how long one request may take.

    ``attempts`` counts the first try. ``timeout`` bounds connecting and each read;
    ``body_seconds`` bounds reading one whole answer (a server that drips one byte at a
    time never trips a read timeout). ``budget_seconds`` and ``budget_retries`` bound all
    the waiting and retrying of one transport, that is of one command on one registry:
    a registry that asks for more (``Retry-After: 999999``) is given up at once.
    """

    attempts: int = 5
    backoff: float = 0.5  # seconds before the first retry; doubles each time
    max_backoff: float = 8.0
    max_retry_after: float = 60.0  # a registry asking for longer is not waited for
    timeout: float = 30.0
    body_seconds: float = 120.0
    budget_seconds: float = 120.0
    budget_retries: int = 40

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RetryPolicy:
        """``IMGTAG_RETRIES`` (attempts, first try included), ``IMGTAG_RETRY_BACKOFF``
        (seconds before the first retry) and ``IMGTAG_TIMEOUT`` (seconds to connect and
        for each read; one answer may take four times as long) tune the defaults."""
        policy = cls()
        try:
            if raw := env.get("IMGTAG_RETRIES"):
                policy = replace(policy, attempts=min(100, max(1, int(raw))))
            if raw := env.get("IMGTAG_RETRY_BACKOFF"):
                policy = replace(policy, backoff=min(60.0, max(0.0, float(raw))))
            if raw := env.get("IMGTAG_TIMEOUT"):
                seconds = float(raw)
                if not 0 < seconds <= 3600:
                    raise ValueError(raw)
                policy = replace(policy, timeout=seconds, body_seconds=4 * seconds)
        except ValueError:
            raise UsageError(
                "IMGTAG_RETRIES must be a whole number, IMGTAG_RETRY_BACKOFF a number of "
                "seconds and IMGTAG_TIMEOUT a number of seconds up to 3600"
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
        return float(value) if len(value) < 12 else float("inf")
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
        raise RegistryError(f"{registry_host} names no usable token realm ({_clean(realm, 80)})")
    host = f"[{hostname}]" if ":" in hostname else hostname
    if port is not None:
        host = f"{host}:{port}"
    if "@" in parts.netloc:
        raise RegistryError(
            f"{registry_host} names a token realm with user info (it would go to "
            f"{_clean(host, 80)}): refused"
        )
    send = parts.scheme == "https" or is_loopback_host(host) or host == registry_host
    return RealmTarget(realm, host, send)


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
        self.retry = retry or RetryPolicy()
        self.timeout = timeout if timeout is not None else self.retry.timeout
        # The retry budget of this transport (one command on one registry).
        self._waited = 0.0
        self._retries = 0
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
            self._load(resp, max_bytes if wanted else MAX_ERROR_BYTES, what, doing, cut=not wanted)
        if resp.status_code in set(ok):
            return resp
        raise_for_status(resp, doing)
        return resp

    def base_url(self) -> str:
        return self._base()

    def close(self) -> None:
        self.session.close()

    # -- bodies --------------------------------------------------------------------------

    def _load(
        self, resp: requests.Response, cap: int, what: str, doing: str, *, cut: bool = False
    ) -> None:
        """Read the body into ``resp`` (``.content``, ``.json()``), at most ``cap`` bytes
        and within ``body_seconds``. ``cut``: keep the first ``cap`` bytes and stop
        (an error body is only read for its message) instead of refusing."""
        host = urlsplit(resp.url).netloc
        deadline = time.monotonic() + self.retry.body_seconds
        chunks: list[bytes] = []
        total = 0
        try:
            while True:
                if time.monotonic() > deadline:
                    raise RegistryUnreachable(
                        f"{host} did not finish sending {what} within "
                        f"{self.retry.body_seconds:g} s while {doing}: check the registry "
                        "(IMGTAG_TIMEOUT sets the read timeout; an answer may take four times it)"
                    )
                # read1: whatever one read brings, so that a drip meets the deadline above.
                chunk = resp.raw.read1(_READ_CHUNK)
                if not chunk:
                    break
                total += len(chunk)
                if total > cap:
                    if cut:
                        chunks.append(chunk[: cap - (total - len(chunk))])
                        resp.close()
                        break
                    resp.close()
                    raise RegistryError(
                        f"{host} sent more than {_size_text(cap)} for {what} while {doing}; "
                        f"imgtag refuses {what} above {_size_text(cap)}"
                    )
                chunks.append(chunk)
        except RegistryError:
            raise
        except Exception as exc:  # urllib3's ReadTimeoutError, ProtocolError ...
            resp.close()
            raise RegistryUnreachable(
                f"{host} broke off {what} while {doing} ({type(exc).__name__}): check "
                "that the registry is up"
            ) from None
        resp._content = b"".join(chunks)
        resp._content_consumed = True  # type: ignore[attr-defined]
        resp.raw.release_conn()

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
                client_id=_USER_AGENT,
                scope=" ".join(s for _, s in params if _ == "scope"),
            )
            resp = self._send_retrying("POST", target.url, {}, None, None, doing, form=form)
        else:
            resp = self._send_retrying("GET", target.url, headers, None, params, doing)
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
        self._load(resp, MAX_TOKEN_BYTES if ok else MAX_ERROR_BYTES, what, doing, cut=not ok)
        raise_for_status(resp, doing)
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
        resp = self._send_retrying(method, url, hdrs, data, params, doing)
        bearer = self._challenge is not None and self._challenge.scheme == "bearer"
        if resp.status_code == 401 and bearer and self._creds() is not None:
            resp.close()
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
        form: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """Send with retries; the response comes back unread (``stream``): its body is
        read by :meth:`_load`, against a cap, or not at all."""
        last_error: Exception | None = None
        netloc = urlsplit(url).netloc
        attempt = 0
        while True:
            attempt += 1
            try:
                resp = self.session.request(
                    method,
                    url,
                    headers=dict(headers),
                    data=form if form is not None else data,
                    params=params,
                    timeout=(min(self.timeout, 10.0), self.timeout),
                    allow_redirects=method in ("GET", "HEAD"),
                    stream=True,
                )
            except requests.exceptions.SSLError as exc:
                raise RegistryUnreachable(
                    f"TLS with {netloc} failed while {doing}: "
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
                if "NameResolutionError" in repr(exc):
                    break
                delay = self.retry.delay(attempt, None)
                if attempt >= self.retry.attempts or not self._spend(delay):
                    break
                self._sleep(delay)
                continue
            except (requests.exceptions.InvalidURL, requests.exceptions.InvalidHeader) as exc:
                # A URL or header built from what a registry sent (a Location, a token):
                # its text may quote a secret, so only the kind is named.
                raise RegistryError(
                    f"{netloc} sent something imgtag cannot put in a request while {doing} "
                    f"({type(exc).__name__})"
                ) from None
            if not _retryable(method, resp.status_code) or attempt >= self.retry.attempts:
                return resp
            retry_after = resp.headers.get("Retry-After")
            hinted = _parse_retry_after(retry_after)
            delay = self.retry.delay(attempt, retry_after)
            if hinted is not None and hinted > self.retry.max_retry_after:
                resp.close()
                self._give_up(resp.status_code, netloc, doing, f"asked to wait {hinted:.0f} s")
            if not self._spend(delay):
                resp.close()
                self._give_up(resp.status_code, netloc, doing, "kept answering")
            resp.close()
            self._sleep(delay)
        raise RegistryUnreachable(
            f"{netloc} did not answer while {doing} "
            f"({type(last_error).__name__} after {attempt} attempts): check "
            "the address and that the registry is up"
        ) from None

    def _spend(self, delay: float) -> bool:
        """Take one retry and ``delay`` seconds from this transport's budget, if left."""
        with self._lock:
            if (
                self._retries >= self.retry.budget_retries
                or self._waited + delay > self.retry.budget_seconds
            ):
                return False
            self._retries += 1
            self._waited += delay
            return True

    def _give_up(self, status: int, netloc: str, doing: str, why: str) -> None:
        budget = f"{self.retry.max_retry_after:g} s a wait, {self.retry.budget_seconds:g} s in all"
        sentence = (
            f"{netloc} {why} (HTTP {status}) while {doing}, beyond imgtag's retry budget "
            f"({budget}): try again later"
        )
        if status == 429:
            raise RateLimited(sentence)
        raise RegistryError(sentence)


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
