"""A fault-injecting HTTP reverse proxy for registry tests: the bed's only fake.

This module does I/O: ``FaultProxy`` listens on 127.0.0.1 (a ``ThreadingHTTPServer`` in a
daemon thread) and forwards every request (method, path, query, headers, body) to one
plain-HTTP target such as the bed's ``plain`` registry, then the answer back. ``Location``
and ``Link`` headers that point at the target are rewritten to the proxy, so a client that
follows an upload URL stays on the proxy. Request bodies are buffered (chunked ones too,
as the Docker engine sends blob uploads), response bodies streamed when their length is
known; both are capped at ``max_body`` bytes.

Faults are set at run time and apply to the requests whose method and path match::

    proxy.fail(429, times=2, retry_after=1)            # the next two requests: 429 + Retry-After
    proxy.fail(503, probability=0.3)                   # 30 % of requests (seeded: repeatable)
    proxy.reset_connection(times=1, method="DELETE")   # close with a TCP RST, no answer
    proxy.delay(0.5, path=r"/manifests/")              # wait, then forward as usual
    proxy.clear()                                      # no more faults
    proxy.bytes_in("PUT|PATCH", r"/blobs/uploads/")    # blob bytes clients uploaded

A simulator that answers some requests itself (a hosted registry's own rules: an immutable
tag, a refused DELETE) calls ``proxy.intercept(hook)``: ``hook(method, path, query)``
returns ``(status, headers, body)`` to answer with (``distribution_error()`` makes a
Distribution-style error), or ``None`` to go on; it runs after the faults, before
forwarding.

Faults are checked in the order they were added; delays add up and the request goes on to
the next fault, the first ``fail``/``reset_connection`` that fires answers it. Every request
is counted (``count()``, ``seen``) before any fault applies. Random decisions come from
``random.Random(seed)``: the same sequence of requests meets the same faults.

Only loopback: the proxy binds 127.0.0.1 and refuses a target elsewhere.
"""

from __future__ import annotations

import collections
import contextlib
import http.client
import json
import random
import re
import socket
import struct
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from httpbase import Handler, LoopbackServer, Served

#: Headers that describe one connection, not the message (RFC 9110, section 7.6.1), plus
#: the framing headers the proxy sets itself.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "host",
        # The proxy answers 100-continue itself (BaseHTTPRequestHandler does) and then
        # forwards the whole body; http.client could not wait for the target's 100.
        "expect",
    }
)
DEFAULT_MAX_BODY = 256 * 1024 * 1024
#: Longest single delay: a typo of 500 for 0.5 must not hang a test run.
MAX_DELAY_S = 60.0
#: Upper bound on chunks of one chunked request body (each at least 1 byte anyway).
_MAX_CHUNKS = 1 << 20
_COPY_CHUNK = 256 * 1024
#: A simulator's answer instead of forwarding: (status, headers, body), or None to forward.
Hook = Callable[[str, str, str], "tuple[int, dict[str, str], bytes] | None"]


def distribution_error(status: int, code: str, message: str) -> tuple[int, dict[str, str], bytes]:
    """An error answer as Distribution gives one, for a :data:`Hook` to return.

    >>> distribution_error(405, "UNSUPPORTED", "no")[2]
    b'{"errors": [{"code": "UNSUPPORTED", "message": "no"}]}'
    """
    data = json.dumps({"errors": [{"code": code, "message": message}]}).encode()
    return status, {"Content-Type": "application/json; charset=utf-8"}, data


_ERROR_CODES = {
    405: "UNSUPPORTED",  # ghcr.io's answer to a DELETE (tests/simulators)
    429: "TOOMANYREQUESTS",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "UNAVAILABLE",
}


@dataclass
class Fault:
    """One configured fault. ``times`` counts down as it fires (None: no limit);
    ``hits`` counts how often it fired."""

    kind: Literal["status", "reset", "delay"]
    status: int = 0
    retry_after: float | None = None
    seconds: float = 0.0
    times: int | None = None
    probability: float | None = None
    method: re.Pattern[str] | None = None
    path: re.Pattern[str] | None = None
    hits: int = 0
    skip: int = 0  # matching requests let through before it fires

    def matches(self, method: str, path: str) -> bool:
        if self.times is not None and self.times <= 0:
            return False
        if self.method is not None and not self.method.fullmatch(method):
            return False
        return self.path is None or self.path.search(path) is not None


@dataclass(frozen=True)
class Seen:
    """One request as the proxy saw it; ``outcome`` is the status answered, ``"reset"``,
    or ``"error"`` when the target could not be reached; ``fault`` names the fault."""

    method: str
    path: str
    query: str
    outcome: int | str
    fault: str | None
    at: float = field(default_factory=time.monotonic)


class _BodyTooLarge(Exception):
    pass


class FaultProxy:
    """A reverse proxy on 127.0.0.1 in front of ``target`` (``host:port``, plain HTTP).

    Use as a context manager or call ``start()``/``stop()``. ``url``, ``host`` and
    ``image()`` mirror the bed's ``Registry`` so a test can swap one for the other.
    """

    def __init__(self, target: str, *, seed: int = 0, max_body: int = DEFAULT_MAX_BODY) -> None:
        host, _, port = target.rpartition(":")
        if host not in ("127.0.0.1", "localhost") or not port.isdigit():
            raise ValueError(f"fault proxy: target must be 127.0.0.1:PORT, got {target!r}")
        self.target = target
        self.target_url = f"http://{target}"
        self.max_body = max_body
        self._seed = seed
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._counts: collections.Counter[tuple[str, str]] = collections.Counter()
        # Request body bytes received, by (method, path): what a client uploaded.
        self._bytes_in: collections.Counter[tuple[str, str]] = collections.Counter()
        # Bounded: a long test keeps the last 100,000 requests.
        self._seen: collections.deque[Seen] = collections.deque(maxlen=100_000)
        self._served: Served | None = None
        # Kept after stop(): a handler still finishing an answer rewrites headers with it.
        self._port: int | None = None
        self._hook: Hook | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FaultProxy:
        if self._served is not None:
            return self
        server = _ProxyServer(self)
        self._port = server.port
        self._served = Served(server, f"faultproxy-{self.port}").start()
        return self

    def stop(self) -> None:
        """Stop listening and cut every open connection, so no handler thread outlives
        the proxy for longer than its current read."""
        served, self._served = self._served, None
        if served is not None:
            served.stop()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("fault proxy is not started")
        return self._port

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``, what goes in an image reference."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def image(self, repository: str, tag: str | None = None) -> str:
        ref = f"{self.host}/{repository}"
        return f"{ref}:{tag}" if tag else ref

    # ------------------------------------------------------------------ faults

    def intercept(self, hook: Hook | None) -> None:
        """Let ``hook(method, path, query)`` answer a request itself (a simulator's own
        rules in front of the real registry): it returns ``(status, headers, body)``, or
        ``None`` to forward the request as usual. Faults come first."""
        with self._lock:
            self._hook = hook

    @property
    def interceptor(self) -> Hook | None:
        """The hook :meth:`intercept` set (a test wraps a simulator's own with it)."""
        with self._lock:
            return self._hook

    def fail(
        self,
        status: int = 503,
        *,
        times: int | None = None,
        probability: float | None = None,
        retry_after: float | None = None,
        method: str | None = None,
        path: str | None = None,
        skip: int = 0,
    ) -> Fault:
        """Answer ``status`` (e.g. 429, 502, 503, 504) instead of forwarding, with a
        Distribution-style JSON error body and ``Retry-After`` when given; the first
        ``skip`` matching requests go through (a registry that fails midway)."""
        if not 400 <= status <= 599:
            raise ValueError(f"fault proxy: a fault status is 4xx/5xx, got {status}")
        return self._add(
            Fault("status", status=status, retry_after=retry_after, skip=skip),
            times, probability, method, path,
        )  # fmt: skip

    def throttle(
        self,
        times: int | None = 1,
        *,
        retry_after: float = 1,
        probability: float | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> Fault:
        """429 Too Many Requests with ``Retry-After``."""
        return self.fail(
            429, times=times, probability=probability, retry_after=retry_after,
            method=method, path=path,
        )  # fmt: skip

    def reset_connection(
        self,
        *,
        times: int | None = None,
        probability: float | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> Fault:
        """Close the client's connection without an answer, with a TCP RST (the client
        sees ``ECONNRESET``: ``requests.ConnectionError``)."""
        return self._add(Fault("reset"), times, probability, method, path)

    def delay(
        self,
        seconds: float,
        *,
        times: int | None = None,
        probability: float | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> Fault:
        """Wait ``seconds`` before forwarding (or before a later fault answers)."""
        if not 0 <= seconds <= MAX_DELAY_S:
            raise ValueError(f"fault proxy: delay must be within 0..{MAX_DELAY_S:.0f} s")
        return self._add(Fault("delay", seconds=seconds), times, probability, method, path)

    def remove(self, fault: Fault) -> None:
        with self._lock:
            self._faults = [f for f in self._faults if f is not fault]

    def clear(self) -> None:
        """No more faults; counters stay."""
        with self._lock:
            self._faults.clear()

    def reset(self, seed: int | None = None) -> None:
        """No faults, no counters, the random sequence from its start (or a new seed)."""
        with self._lock:
            self._faults.clear()
            self._counts.clear()
            self._bytes_in.clear()
            self._seen.clear()
            self._seed = self._seed if seed is None else seed
            self._rng = random.Random(self._seed)

    @property
    def faults(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def _add(
        self,
        fault: Fault,
        times: int | None,
        probability: float | None,
        method: str | None,
        path: str | None,
    ) -> Fault:
        if times is not None and times < 0:
            raise ValueError("fault proxy: times must be >= 0")
        if probability is not None and not 0.0 <= probability <= 1.0:
            raise ValueError("fault proxy: probability must be within 0..1")
        fault.times = times
        fault.probability = probability
        fault.method = re.compile(method, re.IGNORECASE) if method is not None else None
        fault.path = re.compile(path) if path is not None else None
        with self._lock:
            self._faults.append(fault)
        return fault

    def _decide(self, method: str, path: str) -> tuple[float, Fault | None]:
        """Total delay and the terminal fault (or None: forward) for one request."""
        delay = 0.0
        with self._lock:
            self._counts[(method, path)] += 1
            for fault in self._faults:
                if not fault.matches(method, path):
                    continue
                if fault.skip > 0:
                    fault.skip -= 1
                    continue
                # Draw only for matching faults, so that adding a fault for DELETE does
                # not change which GETs another probabilistic fault hits.
                if fault.probability is not None and self._rng.random() >= fault.probability:
                    continue
                fault.hits += 1
                if fault.times is not None:
                    fault.times -= 1
                if fault.kind == "delay":
                    delay += fault.seconds
                    continue
                return delay, fault
        return delay, None

    # ------------------------------------------------------------------ observations

    def count(self, method: str | None = None, path: str | None = None) -> int:
        """Requests seen whose method matches ``method`` (a regex, case-insensitive, whole)
        and whose path contains a match of ``path`` (a regex); None matches all."""
        method_re = re.compile(method, re.IGNORECASE) if method is not None else None
        path_re = re.compile(path) if path is not None else None
        with self._lock:
            return sum(
                n
                for (m, p), n in self._counts.items()
                if (method_re is None or method_re.fullmatch(m))
                and (path_re is None or path_re.search(p))
            )

    def bytes_in(self, method: str | None = None, path: str | None = None) -> int:
        """Request body bytes received (what clients uploaded) for the requests ``count``
        would match; counted as the body arrives, before any fault answers."""
        method_re = re.compile(method, re.IGNORECASE) if method is not None else None
        path_re = re.compile(path) if path is not None else None
        with self._lock:
            return sum(
                n
                for (m, p), n in self._bytes_in.items()
                if (method_re is None or method_re.fullmatch(m))
                and (path_re is None or path_re.search(p))
            )

    def _count_bytes(self, method: str, path: str, n: int) -> None:
        with self._lock:
            self._bytes_in[(method, path)] += n

    @property
    def counts(self) -> dict[tuple[str, str], int]:
        """Requests seen by ``(method, path)``."""
        with self._lock:
            return dict(self._counts)

    @property
    def seen(self) -> list[Seen]:
        """Every request seen, oldest first: a copy, since handler threads keep appending."""
        with self._lock:
            return list(self._seen)

    def _record(self, seen: Seen) -> None:
        with self._lock:
            self._seen.append(seen)

    def _rewrite(self, value: str) -> str:
        # Distribution builds absolute upload URLs from the Host it was sent (the target):
        # pointing them back at the proxy keeps the whole upload on the proxy.
        return value.replace(self.target_url, self.url)


class _ProxyServer(LoopbackServer):
    def __init__(self, proxy: FaultProxy) -> None:
        self.proxy = proxy
        super().__init__(_Handler)


#: What Go's net/http answers to a TLS hello on a plain port (and what Go clients take as
#: "this registry speaks plain HTTP").
_TLS_TO_PLAIN_ANSWER = (
    b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"
)


class _Handler(Handler):
    server: _ProxyServer
    server_version = "imgtag-faultproxy/1"

    def handle_one_request(self) -> None:
        # dockerd 26 and BuildKit try TLS first on a registry address and fall back to
        # plain HTTP only when the server answers the TLS hello as Go's HTTP server does.
        with contextlib.suppress(OSError):
            if self.connection.recv(1, socket.MSG_PEEK) == b"\x16":  # a TLS record
                self.wfile.write(_TLS_TO_PLAIN_ANSWER)
                self.close_connection = True
                return
        super().handle_one_request()

    def do_GET(self) -> None:
        self._handle()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

    def _handle(self) -> None:
        proxy = self.server.proxy
        split = urllib.parse.urlsplit(self.path)
        method, path, query = self.command, split.path, split.query

        # Every outcome is recorded *before* the client can see it: a test that reads
        # `seen` right after its response must find the request there.
        def record(outcome: int | str, fault_name: str | None = None) -> None:
            proxy._record(Seen(method, path, query, outcome, fault_name))

        delay, fault = proxy._decide(method, path)
        if delay:
            time.sleep(delay)
        if fault is not None and fault.kind == "reset":
            record("reset", "reset")
            self._reset()
            return
        try:
            body = self._read_body()
        except _BodyTooLarge:
            record(413)
            self._answer_error(413, "SIZE_INVALID", f"body over {proxy.max_body} bytes")
            return
        except (ValueError, OSError):
            record("error")
            self.close_connection = True
            return
        proxy._count_bytes(method, path, len(body or b""))
        if fault is not None:
            headers = {}
            if fault.retry_after is not None:
                # Retry-After is whole seconds (RFC 9110); round up so it is never 0 early.
                headers["Retry-After"] = str(max(0, int(-(-fault.retry_after // 1))))
            code = _ERROR_CODES.get(fault.status, "UNKNOWN")
            record(fault.status, f"status {fault.status}")
            self._answer_error(fault.status, code, "injected by the test bed", headers)
            return
        with proxy._lock:
            hook = proxy._hook
        answer = hook(method, path, query) if hook is not None else None
        if answer is not None:
            status, extra, data = answer
            record(status, "intercepted")
            self.send(status, extra, data)
            return
        self._forward(method, body, record)

    # ------------------------------------------------------------------ pieces

    def _reset(self) -> None:
        # SO_LINGER with a zero timeout makes close() send RST instead of FIN: the
        # client gets "connection reset by peer", the rudest failure a server can produce.
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass
        self.close_connection = True

    def _read_body(self) -> bytes | None:
        limit = self.server.proxy.max_body
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked(limit)
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            return None
        length = int(length_header)
        if length > limit:
            raise _BodyTooLarge
        data = self.rfile.read(length)
        if len(data) != length:
            raise ValueError("client closed the connection mid-body")
        return data

    def _read_chunked(self, limit: int) -> bytes:
        body = bytearray()
        for _ in range(_MAX_CHUNKS):
            size_line = self.rfile.readline(1024)
            if not size_line:
                raise ValueError("client closed the connection mid-body")
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                for _ in range(100):  # trailer fields, ended by an empty line
                    if self.rfile.readline(8192) in (b"\r\n", b"\n", b""):
                        break
                return bytes(body)
            if len(body) + size > limit:
                raise _BodyTooLarge
            chunk = self.rfile.read(size)
            if len(chunk) != size:
                raise ValueError("client closed the connection mid-body")
            body += chunk
            self.rfile.readline(8)  # the CRLF after the chunk
        raise ValueError("too many chunks")

    def _answer_error(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        status, base, data = distribution_error(status, code, message)
        self.send(status, {**base, **(headers or {})}, data)

    def _forward(
        self, method: str, body: bytes | None, record: Callable[[int | str], None]
    ) -> None:
        proxy = self.server.proxy
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        upstream = http.client.HTTPConnection(proxy.target, timeout=120)
        try:
            try:
                upstream.request(method, self.path, body=body, headers=headers)
                resp = upstream.getresponse()
            except (OSError, http.client.HTTPException) as exc:
                record("error")
                self._answer_error(502, "UNAVAILABLE", f"fault proxy: target unreachable: {exc}")
                return
            length = resp.getheader("Content-Length")
            no_body = method == "HEAD" or resp.status in (204, 304) or resp.status < 200
            buffered = b""
            if not no_body and length is None:
                # Chunked or close-delimited: buffer it, so the client gets a length.
                buffered = resp.read(proxy.max_body + 1)
                if len(buffered) > proxy.max_body:
                    record("error")
                    self._answer_error(502, "UNAVAILABLE", "fault proxy: answer too large")
                    return
                length = str(len(buffered))
            record(resp.status)
            # send_response() would add a second Server and Date: pass the target's through.
            self.log_request(resp.status)
            self.send_response_only(resp.status, resp.reason)
            for name, value in resp.getheaders():
                lower = name.lower()
                if lower in _HOP_BY_HOP:
                    continue
                if lower in ("location", "link"):
                    value = proxy._rewrite(value)
                self.send_header(name, value)
            if length is not None:
                # Also for HEAD: a manifest HEAD tells the size in Content-Length.
                self.send_header("Content-Length", length)
            self.end_headers()
            if no_body:
                return
            if buffered or length == "0":
                self.wfile.write(buffered)
                return
            remaining = int(length) if length is not None else 0
            while remaining > 0:
                chunk = resp.read(min(_COPY_CHUNK, remaining))
                if not chunk:
                    # The target broke off: so must we, or the client waits for bytes.
                    self.close_connection = True
                    break
                self.wfile.write(chunk)
                remaining -= len(chunk)
        finally:
            upstream.close()


__all__ = ["Fault", "FaultProxy", "Seen"]
