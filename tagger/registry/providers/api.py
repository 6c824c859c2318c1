"""HTTP to a registry's own management API (GitHub REST, Docker Hub). Does I/O.

What every provider request needs, in one place:

- **Where**: the API base comes from a variable (``GITHUB_API_URL``,
  ``IMGTAG_DOCKERHUB_API_URL``); its path is kept (GitHub Enterprise's ``/api/v3``), and a
  plain ``http://`` base is accepted only on loopback (the test bed), since the token goes
  along with every request.
- **Deadlines and sizes**: connect and read timeouts per request, a total deadline for one
  body, and bodies streamed against a cap (16 MiB, the bound of a page of tags), never read
  whole first.
- **Pagination**: ``Link: <...>; rel="next"`` (GitHub,
  https://docs.github.com/en/rest/using-the-rest-api/using-pagination-in-the-rest-api) or a
  ``next`` URL in the body (Docker Hub), followed to the end, never to another host.
- **Rate limits**: 429, or 403 with ``x-ratelimit-remaining: 0``, is waited out by
  ``Retry-After`` or else until ``x-ratelimit-reset`` (epoch seconds), as GitHub documents
  (https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api) and
  Docker Hub too (https://docs.docker.com/reference/api/hub/latest/, "Rate Limiting"), within
  a budget of waiting per run (two minutes); a limit that would outlast the budget is
  :class:`~tagger.errors.RateLimited` (exit 5) at once, naming the limit.
- **Secrets**: the token is registered for redaction by the provider that reads it; error
  texts from the API are cut short, stripped of control characters and redacted.
"""

from __future__ import annotations

import email.utils
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from tagger.errors import (
    AccessDenied,
    AuthenticationError,
    NotFound,
    RateLimited,
    RegistryError,
    RegistryUnreachable,
    UsageError,
    redact,
)
from tagger.registry.reference import is_loopback_host

MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_PAGES = 10_000
#: Seconds of rate-limit waiting one run accepts in all: about two minutes (docs/providers.md).
RATE_LIMIT_BUDGET = 120.0
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
#: Total seconds for one answer's body, however slowly it trickles in.
BODY_DEADLINE = 120.0
#: Answers with no rate-limit header retried: gateways failing, not the API deciding.
_TRANSIENT = frozenset({502, 503, 504})
_TRANSIENT_ATTEMPTS = 4


def check_base_url(value: str, variable: str) -> str:
    """An API base URL without its trailing ``/``: ``https://``, or ``http://`` on loopback.

    >>> check_base_url("https://ghe.example/api/v3/", "GITHUB_API_URL")
    'https://ghe.example/api/v3'
    >>> check_base_url("http://127.0.0.1:8080", "X")
    'http://127.0.0.1:8080'
    >>> check_base_url("http://api.example", "GITHUB_API_URL")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tagger.errors.UsageError: GITHUB_API_URL must be an https:// URL ... not 'http://api.example'
    """
    parts = urlsplit(value.strip())
    ok = parts.scheme == "https" or (parts.scheme == "http" and is_loopback_host(parts.netloc))
    if not ok or not parts.netloc or parts.username or parts.password or parts.query:
        raise UsageError(
            f"{variable} must be an https:// URL (plain http:// only to loopback), "
            f"not {_clean(value, 80)!r}"
        )
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def _clean(text: str, limit: int = 200) -> str:
    # Untrusted text from an API: no control characters (terminal escapes), short, redacted.
    text = "".join(ch if ch.isprintable() else " " for ch in text).strip()
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return redact(text)


def rate_limit_wait(status: int, headers: Mapping[str, str], now: float) -> float | None:
    """Seconds to wait before retrying an answer that is a rate limit, ``None`` otherwise.

    ``Retry-After`` first; else, with ``x-ratelimit-remaining: 0``, until
    ``x-ratelimit-reset`` (epoch seconds) and one second more (the reset is rounded down);
    else a 429 waits a minute, as GitHub asks for secondary limits. A 403 without any of
    these headers is a real denial. ``headers`` must look names up case-insensitively.

    >>> rate_limit_wait(429, {"retry-after": "3"}, 0.0)
    3.0
    >>> rate_limit_wait(403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "100"}, 90.0)
    11.0
    >>> rate_limit_wait(403, {"x-ratelimit-remaining": "12"}, 0.0) is None
    True
    """
    if status not in (403, 429):
        return None
    retry_after = _seconds(headers.get("retry-after"), now)
    if retry_after is not None:
        return retry_after
    if (headers.get("x-ratelimit-remaining") or "").strip() == "0":
        reset = (headers.get("x-ratelimit-reset") or "").strip()
        if reset.isdigit():
            return max(0.0, float(reset) - now) + 1.0
        return 60.0
    return 60.0 if status == 429 else None


def _seconds(value: str | None, now: float) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


@dataclass(frozen=True, slots=True)
class ApiResponse:
    status: int
    headers: Mapping[str, str]  # case-insensitive (requests' CaseInsensitiveDict)
    body: bytes
    url: str

    def json(self, doing: str) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            raise RegistryError(
                f"{urlsplit(self.url).netloc} answered something that is not JSON while {doing}"
            ) from None

    def message(self) -> str:
        """The API's own error text (GitHub ``message``, Docker Hub ``detail``/``message``)."""
        try:
            doc = json.loads(self.body)
        except ValueError:
            return ""
        if not isinstance(doc, dict):
            return ""
        text = doc.get("message") or doc.get("detail") or ""
        return _clean(str(text)) if text else ""


class Api:
    """Requests to one management API: ``what`` names it in messages ("the GitHub API")."""

    def __init__(
        self,
        base_url: str,
        *,
        variable: str,
        what: str,
        headers: Mapping[str, str] | None = None,
        budget: float = RATE_LIMIT_BUDGET,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.base = check_base_url(base_url, variable)
        self.host = urlsplit(self.base).netloc
        self.what = what
        self.session = requests.Session()
        self.session.trust_env = False  # no ~/.netrc credentials or proxies by surprise
        self.session.headers["User-Agent"] = "imgtag"
        self.session.headers.update(headers or {})
        self._budget = budget
        self._waited = 0.0
        self._lock = threading.Lock()
        self._sleep = sleep
        self._clock = clock
        self.requests = 0  # observable for tests

    def set_header(self, name: str, value: str) -> None:
        self.session.headers[name] = value

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        doing: str,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        ok: tuple[int, ...] = (),
    ) -> ApiResponse:
        """Send; wait out rate limits within the budget; return the answer when it is a
        success or in ``ok``, else raise the typed error for its status."""
        url = path_or_url if "://" in path_or_url else self.url(path_or_url)
        if urlsplit(url).netloc != self.host:
            raise RegistryError(f"{self.what} sent a link to another host while {doing}")
        transient = 0
        while True:
            resp = self._send(method, url, doing, params, json_body)
            wait = rate_limit_wait(resp.status, resp.headers, self._clock())
            if wait is not None:
                self._wait(wait, doing)
                continue
            if resp.status in _TRANSIENT and transient < _TRANSIENT_ATTEMPTS:
                transient += 1
                self._sleep(0.5 * 2**transient)
                continue
            if resp.status < 400 or resp.status in ok:
                return resp
            self.raise_for_status(resp, doing)

    def raise_for_status(self, resp: ApiResponse, doing: str) -> None:
        detail = resp.message()
        suffix = f" ({detail})" if detail else ""
        if resp.status == 401:
            raise AuthenticationError(f"{self.what} rejected the token while {doing}{suffix}")
        if resp.status == 403:
            raise AccessDenied(f"{self.what} denied access while {doing}{suffix}")
        if resp.status == 404:
            raise NotFound(f"{self.what} has no such thing while {doing}{suffix}")
        raise RegistryError(f"{self.what} answered HTTP {resp.status} while {doing}{suffix}")

    def pages(
        self, path: str, *, doing: str, params: Mapping[str, str] | None = None, body_next: bool
    ) -> Iterator[Any]:
        """Each page's JSON, following ``Link`` ``rel="next"`` (or the body's ``next``
        when ``body_next``) to the end, on this host only."""
        url: str | None = self.url(path)
        first = True
        for _ in range(MAX_PAGES):
            if url is None:
                return
            resp = self.request("GET", url, doing=doing, params=params if first else None)
            first = False
            doc = resp.json(doing)
            yield doc
            if body_next:
                nxt = doc.get("next") if isinstance(doc, dict) else None
                url = urljoin(resp.url, nxt) if isinstance(nxt, str) and nxt else None
            else:
                url = next_link(resp.headers.get("link"), resp.url)
            if url is not None and urlsplit(url).netloc != self.host:
                there = _clean(urlsplit(url).netloc, 80)
                raise RegistryError(f"{self.what} sent a page link to another host ({there})")
        raise RegistryError(f"{self.what} sent more than {MAX_PAGES} pages while {doing}")

    def _wait(self, seconds: float, doing: str) -> None:
        with self._lock:
            left = self._budget - self._waited
            if seconds > left:
                raise RateLimited(
                    f"{self.what} is rate limiting imgtag (the limit lifts in {seconds:.0f} s, "
                    f"more than the {self._budget:.0f} s a run waits) while {doing}: run "
                    "again later"
                )
            self._waited += seconds
        self._sleep(seconds)

    def _send(
        self,
        method: str,
        url: str,
        doing: str,
        params: Mapping[str, str] | None,
        json_body: Any,
    ) -> ApiResponse:
        with self._lock:
            self.requests += 1
        try:
            resp = self.session.request(
                method,
                url,
                params=params,
                json=json_body,
                timeout=(CONNECT_TIMEOUT, READ_TIMEOUT),
                stream=True,
                allow_redirects=False,
            )
        except requests.exceptions.SSLError:
            raise RegistryUnreachable(
                f"TLS with {self.host} failed while {doing}: check the API URL"
            ) from None
        except requests.exceptions.RequestException as exc:
            raise RegistryUnreachable(
                f"{self.what} ({self.host}) did not answer while {doing} "
                f"({type(exc).__name__}): check the API URL and the network"
            ) from None
        try:
            body = self._read(resp, doing)
        finally:
            resp.close()
        return ApiResponse(resp.status_code, resp.headers, body, resp.url)

    def _read(self, resp: requests.Response, doing: str) -> bytes:
        deadline = time.monotonic() + BODY_DEADLINE
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in resp.iter_content(64 * 1024):
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise RegistryError(
                        f"{self.what} sent more than {MAX_BODY_BYTES} bytes while {doing}"
                    )
                if time.monotonic() > deadline:
                    raise RegistryUnreachable(
                        f"{self.what} took longer than {BODY_DEADLINE:.0f} s to answer "
                        f"while {doing}"
                    )
                chunks.append(chunk)
        except requests.exceptions.RequestException as exc:
            raise RegistryUnreachable(
                f"the connection to {self.host} broke while {doing} ({type(exc).__name__})"
            ) from None
        return b"".join(chunks)


def next_link(header: str | None, current: str) -> str | None:
    """The ``rel="next"`` target of a ``Link`` header, resolved against ``current``.

    >>> next_link('<https://a.io/x?page=2>; rel="next", <https://a.io/x?page=9>; rel="last"',
    ...           "https://a.io/x")
    'https://a.io/x?page=2'
    >>> next_link('<https://a.io/x?page=1>; rel="prev"', "https://a.io/x") is None
    True
    """
    if not header:
        return None
    for part in header.split(","):
        target, _, params = part.partition(";")
        rels = params.replace(" ", "").lower()
        if 'rel="next"' in rels or "rel=next" in rels:
            return urljoin(current, target.strip().strip("<>"))
    return None
