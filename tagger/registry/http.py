"""The one HTTP core: every request imgtag sends, to a registry or to a registry's own
management API, goes through an :class:`HttpCore`. Does I/O (network).

What every request needs, once:

- **One session kind**: :class:`HttpCore` makes the project's only ``requests.Session``
  (pooled connections, no ``~/.netrc`` or proxy variables by surprise, ``User-Agent``).
- **One retry policy and budget**: :class:`RetryPolicy` (``IMGTAG_RETRIES``,
  ``IMGTAG_RETRY_BACKOFF``, ``IMGTAG_TIMEOUT``) says what is retried and how long a request
  may take; a :class:`RetryBudget` bounds all waiting of one command on one registry, its
  management API included (they share it).
- **One rate-limit reader**: :func:`rate_limit_wait` reads ``Retry-After`` (seconds or a
  date, RFC 9110 §10.2.3) and GitHub's ``x-ratelimit-remaining``/``x-ratelimit-reset``
  (https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api); a wait
  that does not fit in what is left of the budget gives up at once (exit 5, naming it).
- **One capped reader**: :meth:`HttpCore.load` streams a body against a cap and a deadline,
  never reading it whole first.
- **One pager**: :func:`next_link` follows ``Link: <…>; rel="next"`` (relative URLs too,
  RFC 8288), and never to another host.
- **One cleaner of untrusted text**: :func:`clean`.
- **One status → typed error map**: :func:`raise_for_status` with the base table, which
  each service (the registry API, the GitHub API, …) extends with a small
  :class:`Service` of its own: its name, where its error text is, its extra statuses.
"""

from __future__ import annotations

import email.utils
import json
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from tagger.errors import (
    AccessDenied,
    AuthenticationError,
    ImgtagError,
    ImmutableTag,
    NotFound,
    RateLimited,
    RegistryError,
    RegistryUnreachable,
    Unsupported,
    UsageError,
    redact,
)

# Body caps (docs/registries.md, "Untrusted answers"): manifests and configs 4 MiB (the OCI
# distribution spec's manifest limit), token answers 1 MiB, a page of tags or of an API's
# list 16 MiB; error bodies are read for their message only, and cut.
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_CONFIG_BYTES = 4 * 1024 * 1024
MAX_TOKEN_BYTES = 1024 * 1024
MAX_PAGE_BYTES = 16 * 1024 * 1024
MAX_ANSWER_BYTES = 1024 * 1024  # anything else: upload answers, HEADs, DELETEs
MAX_ERROR_BYTES = 64 * 1024
MAX_PAGES = 10_000
_READ_CHUNK = 64 * 1024
USER_AGENT = "imgtag"

#: Answered by a gateway or a registry that is busy: worth another try.
RETRY_STATUSES = frozenset({429, 502, 503, 504})
# Reads are also retried on 500: Distribution answers 500 to a HEAD of a tag that another
# client is rewriting at that moment (seen in the concurrent-publish test), and
# go-containerregistry retries 500 too. Writes are not: a 500 there may have taken effect.
_READS = frozenset({"GET", "HEAD"})


class OneShotBody:
    """A request body of known length streamed from a reader, in pieces of ``chunk`` bytes:
    memory stays at one piece whatever the size. It can be sent once (a second iteration
    is a :class:`RegistryError`), so the core does not retry a request that carries one.

    >>> import io
    >>> body = OneShotBody(io.BytesIO(b"abc"), 3, chunk=2)
    >>> len(body), list(body), body.sent
    (3, [b'ab', b'c'], 3)
    """

    def __init__(self, reader: Any, size: int, *, chunk: int = 1 << 20) -> None:
        self._reader, self.size, self._chunk = reader, size, chunk
        self.sent = 0
        self._used = False

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[bytes]:
        if self._used:
            raise RegistryError("a streamed upload cannot be sent twice")
        self._used = True
        while self.sent < self.size:
            data = self._reader.read(min(self._chunk, self.size - self.sent))
            if not data:
                raise RegistryError(f"the source ended after {self.sent} of {self.size} bytes")
            self.sent += len(data)
            yield data
        # One more read: the end of the stream, where a digest-checking reader checks.
        if self._reader.read(1):
            raise RegistryError(f"the source sent more than {self.size} bytes")


def size_text(n: int) -> str:
    """A cap as people read it.

    >>> size_text(4 * 1024 * 1024), size_text(1000)
    ('4 MiB', '1000 bytes')
    """
    return f"{n // (1024 * 1024)} MiB" if n % (1024 * 1024) == 0 else f"{n} bytes"


def clean(text: str, limit: int = 200) -> str:
    """Untrusted text from a server, fit for a message: no control characters (terminal
    escapes), at most ``limit`` characters, every known secret masked.

    >>> clean("bad\\x1b[31m thing" + "x" * 300, 12)
    'bad [31m th…'
    """
    text = "".join(ch if ch.isprintable() else " " for ch in text).strip()
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return redact(text)


# -- retries and rate limits --------------------------------------------------------------


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds a ``Retry-After`` (or ``x-ratelimit-reset``-like) value asks for: whole
    seconds or an HTTP date; ``None`` when absent or unreadable.

    >>> parse_retry_after("3", 0.0), parse_retry_after(None, 0.0), parse_retry_after("soon", 0.0)
    (3.0, None, None)
    >>> parse_retry_after("Thu, 01 Jan 1970 00:01:40 GMT", 90.0)
    10.0
    """
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value) if len(value) < 12 else float("inf")
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def rate_limit_wait(
    status: int, headers: Mapping[str, str], now: float, *, bare_429: float | None = None
) -> float | None:
    """Seconds an answer that is a rate limit asks to wait; ``None`` when it asks nothing.

    ``Retry-After`` first; else, with ``x-ratelimit-remaining: 0``, until
    ``x-ratelimit-reset`` (epoch seconds) and one second more (the reset is rounded down);
    else ``bare_429`` for a 429 (GitHub asks for a minute on its secondary limits; a
    registry leaves it to the backoff). A 403 without these headers is a real denial.
    ``headers`` must look names up case-insensitively (requests' headers do).

    >>> rate_limit_wait(429, {"retry-after": "3"}, 0.0)
    3.0
    >>> rate_limit_wait(403, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "100"}, 90.0)
    11.0
    >>> rate_limit_wait(403, {"x-ratelimit-remaining": "12"}, 0.0) is None
    True
    >>> rate_limit_wait(429, {}, 0.0), rate_limit_wait(429, {}, 0.0, bare_429=60.0)
    (None, 60.0)
    """
    if status not in (403, 429):
        return None
    hinted = parse_retry_after(headers.get("retry-after"), now)
    if hinted is not None:
        return hinted
    if (headers.get("x-ratelimit-remaining") or "").strip() == "0":
        reset = (headers.get("x-ratelimit-reset") or "").strip()
        if reset.isdigit() and len(reset) < 12:
            return max(0.0, float(reset) - now) + 1.0
        return 60.0
    return bare_429 if status == 429 else None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to retry, and how long one request may take.

    ``attempts`` counts the first try. ``timeout`` bounds connecting and each read;
    ``body_seconds`` bounds reading one whole answer (a server that drips one byte at a
    time never trips a read timeout). ``budget_seconds`` and ``budget_retries`` bound all
    the waiting and retrying of one :class:`RetryBudget`, that is of one command on one
    registry: a server that asks for more (``Retry-After: 999999``) is given up at once.
    """

    attempts: int = 5
    backoff: float = 0.5  # seconds before the first retry; doubles each time
    max_backoff: float = 8.0
    timeout: float = 30.0
    body_seconds: float = 120.0
    budget_seconds: float = 120.0
    budget_retries: int = 40

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> RetryPolicy:
        """``IMGTAG_RETRIES`` (attempts, first try included), ``IMGTAG_RETRY_BACKOFF``
        (seconds before the first retry) and ``IMGTAG_TIMEOUT`` (seconds to connect and
        for each read; one answer may take four times as long) tune the defaults.

        >>> RetryPolicy.from_env({"IMGTAG_RETRIES": "2"}).attempts
        2
        """
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

    def retryable(self, method: str, status: int) -> bool:
        """Whether an answer is worth another try by its status alone.

        >>> RetryPolicy().retryable("GET", 500), RetryPolicy().retryable("PUT", 500)
        (True, False)
        """
        return status in RETRY_STATUSES or (status == 500 and method in _READS)

    def backoff_delay(self, attempt: int) -> float:
        """Seconds before retry number ``attempt`` (1-based) when the server named none.

        >>> 0.5 <= RetryPolicy(backoff=0.5).backoff_delay(1) <= 0.75
        True
        """
        base: float = min(self.max_backoff, self.backoff * 2.0 ** (attempt - 1))
        return base * (1 + random.random() / 2)  # jitter: contenders do not retry in step


@dataclass
class RetryBudget:
    """What one command may still spend on retries against one registry (and its API).

    Shared by every :class:`HttpCore` of that registry, across threads.
    """

    policy: RetryPolicy
    waited: float = 0.0
    retries: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def left(self) -> float:
        with self._lock:
            return self.policy.budget_seconds - self.waited

    def spend(self, delay: float) -> bool:
        """Take one retry and ``delay`` seconds, if both are left.

        >>> b = RetryBudget(RetryPolicy(budget_seconds=3, budget_retries=1))
        >>> b.spend(2.0), b.spend(0.5)
        (True, False)
        """
        with self._lock:
            if (
                self.retries >= self.policy.budget_retries
                or self.waited + delay > self.policy.budget_seconds
            ):
                return False
            self.retries += 1
            self.waited += delay
            return True

    def describe(self) -> str:
        return f"{self.policy.budget_seconds:g} s of waiting, {self.policy.budget_retries} retries"


# -- statuses to typed errors --------------------------------------------------------------


def _no_detail(_body: bytes) -> str:
    return ""


@dataclass(frozen=True, slots=True)
class StatusRule:
    """One line of a service's own status table: ``status`` (and, when given, an error
    text that contains ``contains``) is raised as ``error``, with ``hint`` appended."""

    status: int
    error: type[ImgtagError]
    contains: str = ""
    hint: str = ""
    #: A finer test of the error text than ``contains`` (``tagger.registry.immutable``).
    match: Callable[[str], bool] | None = None

    def matches(self, status: int, detail: str) -> bool:
        return (
            status == self.status
            and (not self.contains or self.contains in detail)
            and (self.match is None or self.match(detail))
        )


@dataclass(frozen=True, slots=True)
class Service:
    """How the core names a service in messages and reads its error answers.

    ``name`` completes sentences ("the GitHub API denied access while …"); ``None`` names
    the host. ``detail`` pulls the service's own error text out of a body (untrusted: the
    core cleans it). ``rules`` extend the base table, first match wins. ``bare_429`` is
    the wait of a 429 that names none (see :func:`rate_limit_wait`).
    """

    name: str | None = None
    detail: Callable[[bytes], str] = _no_detail
    rules: tuple[StatusRule, ...] = ()
    bare_429: float | None = None

    def who(self, url: str) -> str:
        return self.name or urlsplit(url).netloc


#: The base table: what a status means wherever it comes from.
_BASE: Mapping[int, type[ImgtagError]] = {
    401: AuthenticationError,
    403: AccessDenied,
    404: NotFound,
    405: Unsupported,
    429: RateLimited,
}


def raise_for_status(
    status: int,
    body: bytes,
    url: str,
    doing: str,
    service: Service,
    headers: Mapping[str, str] | None = None,
) -> None:
    """The one place that maps an HTTP status to a typed error of ``tagger.errors``.

    ``doing`` completes "while ...", e.g. ``"checking 127.0.0.1:5000/app:1.0.0-1"``. A
    403 that is a rate limit (its headers say so) is :class:`RateLimited`, not a denial.

    >>> raise_for_status(404, b"", "https://r.io/v2/", "checking r.io/a:1", Service())
    Traceback (most recent call last):
    ...
    tagger.errors.NotFound: r.io has no such thing while checking r.io/a:1
    """
    if status < 400:
        return
    detail = clean(service.detail(body)) if body else ""
    suffix = f" ({detail})" if detail else ""
    who = service.who(url)
    limited = status == 403 and rate_limit_wait(status, headers or {}, time.time()) is not None
    for rule in () if limited else service.rules:
        if rule.matches(status, detail):
            error, hint = rule.error, rule.hint
            break
    else:
        error, hint = (RateLimited if limited else _BASE.get(status, RegistryError)), ""
    tail = f": {hint}" if hint else ""
    if error is AuthenticationError:
        raise error(f"{who} rejected the credentials while {doing}{suffix}{tail}")
    if error is AccessDenied:
        raise error(f"{who} denied access while {doing}{suffix}{tail}")
    if error is NotFound:
        raise error(f"{who} has no such thing while {doing}{suffix}{tail}")
    if error is Unsupported:
        raise error(f"{who} does not support this while {doing}{suffix}{tail}")
    if error is RateLimited:
        raise error(f"{who} is still rate limiting after retries while {doing}: try again later")
    if issubclass(error, ImmutableTag):
        raise error(
            f"refused to publish: {who} keeps its tags immutable and answered while {doing}"
            f"{suffix}{tail}"
        )
    raise error(f"{who} answered HTTP {status} while {doing}{suffix}{tail}")


# -- paging ------------------------------------------------------------------------------


def next_link(header: str | None, current: str) -> str | None:
    """The ``rel="next"`` target of a ``Link`` header, resolved against ``current``, on
    the same host only (a page link elsewhere is refused: it would carry credentials).

    >>> next_link('<https://a.io/x?page=2>; rel="next", <https://a.io/x?page=9>; rel="last"',
    ...           "https://a.io/x")
    'https://a.io/x?page=2'
    >>> next_link('</v2/a/tags/list?n=2&last=b>; rel="next"', "https://r.io/v2/a/tags/list")
    'https://r.io/v2/a/tags/list?n=2&last=b'
    >>> next_link('<https://a.io/x?page=1>; rel="prev"', "https://a.io/x") is None
    True
    >>> next_link('<https://evil.example/x>; rel="next"', "https://r.io/v2/")
    Traceback (most recent call last):
    ...
    tagger.errors.RegistryError: r.io sent a page link to another host (evil.example)
    """
    if not header:
        return None
    for part in header.split(","):
        target, _, params = part.partition(";")
        rels = params.replace(" ", "").lower()
        if 'rel="next"' in rels or "rel=next" in rels:
            url = urljoin(current, target.strip().strip("<>"))
            return same_host(url, current, "a page link")
    return None


def same_host(url: str, current: str, what: str) -> str:
    """``url`` when it is on ``current``'s host; a :class:`RegistryError` otherwise."""
    here, there = urlsplit(current).netloc, urlsplit(url).netloc
    if here != there:
        raise RegistryError(f"{here} sent {what} to another host ({clean(there, 80)})")
    return url


# -- the core ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Answer:
    """A response whose body was read (against a cap) and whose status was judged."""

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


class HttpCore:
    """Requests to one host, retried within a :class:`RetryBudget`.

    ``verify`` is requests' (a CA file, or ``True``); ``headers`` go with every request
    (a provider API's token: registered for redaction by whoever read it). Retries wait
    with ``sleep``; rate-limit resets are read against ``clock`` (epoch seconds).
    """

    def __init__(
        self,
        *,
        retry: RetryPolicy | None = None,
        budget: RetryBudget | None = None,
        pool_size: int = 16,
        verify: str | bool = True,
        headers: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.retry = retry or (budget.policy if budget else RetryPolicy())
        self.budget = budget or RetryBudget(self.retry)
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        self.session.headers.update(headers or {})
        self.session.trust_env = False  # no ~/.netrc credentials or proxies by surprise
        self.session.verify = verify
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=pool_size)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self._sleep = sleep
        self._clock = clock
        self._count_lock = threading.Lock()
        self.requests = 0  # observable for tests

    def close(self) -> None:
        self.session.close()

    # -- sending -------------------------------------------------------------------------

    def send(
        self,
        method: str,
        url: str,
        *,
        doing: str,
        service: Service,
        headers: Mapping[str, str] | None = None,
        data: bytes | Mapping[str, str] | OneShotBody | None = None,
        json_body: Any = None,
        params: Mapping[str, str] | list[tuple[str, str]] | None = None,
        allow_redirects: bool | None = None,
    ) -> requests.Response:
        """Send with retries; the response comes back unread (``stream``): its body is
        read by :meth:`load`, against a cap, or not at all.

        Dropped connections and retryable statuses (:meth:`RetryPolicy.retryable`, and
        rate limits :func:`rate_limit_wait` recognises) are tried again up to
        ``attempts`` times while the budget lasts; a wait the server asks for that does
        not fit in the budget is given up at once."""
        netloc = urlsplit(url).netloc
        redirects = method in _READS if allow_redirects is None else allow_redirects
        # A streamed body (a layer read from another registry) is read once: it cannot be
        # sent again, so such a request is tried once and its caller starts over.
        attempts = 1 if isinstance(data, OneShotBody) else self.retry.attempts
        last_error: Exception | None = None
        attempt = 0
        while True:
            attempt += 1
            with self._count_lock:
                self.requests += 1
            try:
                resp = self.session.request(
                    method,
                    url,
                    headers=dict(headers or {}),
                    data=data,
                    json=json_body,
                    params=params,
                    timeout=(min(self.retry.timeout, 10.0), self.retry.timeout),
                    allow_redirects=redirects,
                    stream=True,
                )
            except requests.exceptions.SSLError as exc:
                raise RegistryUnreachable(
                    f"TLS with {netloc} failed while {doing}: "
                    f"{clean(str(exc.__context__ or exc), 160)} (a private CA needs "
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
                delay = self.retry.backoff_delay(attempt)
                if attempt >= attempts or not self.budget.spend(delay):
                    break
                self._sleep(delay)
                continue
            except (requests.exceptions.InvalidURL, requests.exceptions.InvalidHeader) as exc:
                # A URL or header built from what a server sent (a Location, a token): its
                # text may quote a secret, so only the kind is named.
                raise RegistryError(
                    f"{netloc} sent something imgtag cannot put in a request while {doing} "
                    f"({type(exc).__name__})"
                ) from None
            status = resp.status_code
            hinted = rate_limit_wait(status, resp.headers, self._clock(), bare_429=service.bare_429)
            if hinted is None and not self.retry.retryable(method, status):
                return resp
            if attempt >= attempts:
                return resp
            delay = hinted if hinted is not None else self.retry.backoff_delay(attempt)
            resp.close()
            if hinted is not None and hinted > self.budget.left():
                self._give_up(status, service.who(url), doing, f"asked to wait {hinted:.0f} s")
            if not self.budget.spend(delay):
                self._give_up(status, service.who(url), doing, "kept answering")
            self._sleep(delay)
        raise RegistryUnreachable(
            f"{netloc} did not answer while {doing} "
            f"({type(last_error).__name__} after {attempt} attempts): check "
            "the address and that the registry is up"
        ) from None

    def _give_up(self, status: int, who: str, doing: str, why: str) -> None:
        limited = status in (403, 429)
        sentence = (
            f"{who} {why} (HTTP {status}{', a rate limit' if limited else ''}) while {doing}, "
            f"beyond imgtag's retry budget ({self.budget.describe()}): try again later"
        )
        if limited:
            raise RateLimited(sentence)
        raise RegistryError(sentence)

    def request(
        self,
        method: str,
        url: str,
        *,
        doing: str,
        service: Service,
        ok: Iterable[int] = (),
        max_bytes: int = MAX_ANSWER_BYTES,
        what: str = "an answer",
        **send: Any,
    ) -> Answer:
        """Send, read the body against ``max_bytes``, and return it when it is a success
        or its status is in ``ok``; raise the typed error for its status otherwise."""
        resp = self.send(method, url, doing=doing, service=service, **send)
        wanted = resp.status_code < 400 or resp.status_code in set(ok)
        cap = max_bytes if wanted else MAX_ERROR_BYTES
        body = self.load(resp, cap, what, doing, cut=not wanted)
        if not wanted:
            raise_for_status(resp.status_code, body, resp.url, doing, service, resp.headers)
        return Answer(resp.status_code, resp.headers, body, resp.url)

    # -- bodies --------------------------------------------------------------------------

    def load(
        self, resp: requests.Response, cap: int, what: str, doing: str, *, cut: bool = False
    ) -> bytes:
        """Read the body (also kept as ``resp.content``), at most ``cap`` bytes and within
        ``body_seconds``. ``cut``: keep the first ``cap`` bytes and stop (an error body is
        only read for its message) instead of refusing."""
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
                    resp.close()
                    if cut:
                        chunks.append(chunk[: cap - (total - len(chunk))])
                        break
                    raise RegistryError(
                        f"{host} sent more than {size_text(cap)} for {what} while {doing}; "
                        f"imgtag refuses {what} above {size_text(cap)}"
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
        body = b"".join(chunks)
        resp._content = body
        resp._content_consumed = True  # type: ignore[attr-defined]
        resp.raw.release_conn()
        return body
