"""A hostile registry for tests: a stdlib HTTP server speaking just enough of the v2 API,
with scripted misbehaviour. The test bed's second fake (after ``faultproxy``): faults only.

This module does I/O: :class:`HostileRegistry` listens on a loopback address (127.0.0.1 by
default; 127.0.0.2 is loopback too on Linux, so a second instance there shows where
credentials go without leaving the machine) in a daemon thread, and records every request
it receives (method, path, headers) before answering it. Routes are scripted per test::

    reg.route("GET", r"/v2/app/manifests/1", body=manifest, headers={...})
    reg.route("GET", r"/v2/app/tags/list", endless=b'"aaaa",')   # a body that never ends
    reg.route("GET", r"/v2/app/manifests/1", drip=b"{...}")       # one byte at a time
    reg.route("GET", r"/v2/", status=429, headers={"Retry-After": "999999"})
    reg.route("GET", r"/v2/", echo_auth=True, status=403)         # the header in the body
    HostileRegistry(silent=True)                                   # accepts, never answers

Everything is bounded: an endless body stops after ``max_stream`` bytes, a drip after
``drip_seconds``, a silent connection when the server stops, and the server stops by
itself ``lifetime`` seconds after it started, whatever the test does.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from httpbase import Handler, LoopbackServer, Served

#: Longest an endless body runs: far above every cap of imgtag (16 MiB), far below a
#: machine's memory, so a client that does not stop shows up in its RSS, not as a hang.
DEFAULT_MAX_STREAM = 768 * 1024 * 1024
_CHUNK_REPEAT = 64 * 1024


@dataclass
class Route:
    method: str
    path: re.Pattern[str]
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    endless: bytes | None = None  # repeated after ``body`` until max_stream
    drip: bytes | None = None  # sent one byte per drip_interval
    echo_auth: bool = False  # the body is a registry error quoting Authorization
    times: int | None = None  # answer this many requests, then fall through


@dataclass(frozen=True)
class Seen:
    """One request as the server received it."""

    method: str
    path: str
    headers: Mapping[str, str]  # lower-case names
    server: str  # host:port of the server that received it


class HostileRegistry:
    """A scripted, misbehaving registry on a loopback address (see the module docstring)."""

    def __init__(
        self,
        address: str = "127.0.0.1",
        *,
        silent: bool = False,
        lifetime: float = 90.0,
        max_stream: int = DEFAULT_MAX_STREAM,
        drip_interval: float = 0.2,
        drip_seconds: float = 30.0,
    ) -> None:
        self.routes: list[Route] = []
        self.seen: list[Seen] = []
        self.silent = silent
        self.lifetime = lifetime
        self.max_stream = max_stream
        self.drip_interval = drip_interval
        self.drip_seconds = drip_seconds
        self.streamed = 0  # bytes of endless bodies sent, all requests together
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._served = Served(LoopbackServer(_handler(self), address), "hostile", 0.05)
        self.host = self._served.server.host

    # -- scripting ---------------------------------------------------------------------------

    def route(self, method: str, path: str, **kwargs: Any) -> Route:
        """Answer ``method`` on paths matching ``path`` (a regex, matched in full against the
        path without the query) as told; the first matching route wins."""
        r = Route(method, re.compile(path), **kwargs)
        with self._lock:
            self.routes.append(r)
        return r

    def requests_to(self, pattern: str) -> list[Seen]:
        return [s for s in self.seen if re.search(pattern, s.path)]

    # -- life --------------------------------------------------------------------------------

    def start(self) -> HostileRegistry:
        self._served.start()
        timer = threading.Timer(self.lifetime, self.stop)
        timer.daemon = True
        timer.start()
        return self

    def stop(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._served.stop()

    def __enter__(self) -> HostileRegistry:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- answering (handler threads) ---------------------------------------------------------

    def _find(self, method: str, path: str) -> Route | None:
        with self._lock:
            for r in self.routes:
                if r.method == method and r.path.fullmatch(path):
                    if r.times is not None:
                        if r.times <= 0:
                            continue
                        r.times -= 1
                    return r
        return None


def _handler(reg: HostileRegistry) -> type[Handler]:
    class HostileHandler(Handler):
        def handle(self) -> None:
            if reg.silent:
                # Accept, read nothing, answer nothing, until the server stops.
                reg._stop.wait(reg.lifetime)
                return
            super().handle()

        def _any(self) -> None:
            path = self.path.split("?", 1)[0]
            headers = {k.lower(): v for k, v in self.headers.items()}
            with reg._lock:
                reg.seen.append(Seen(self.command, self.path, headers, reg.host))
            self.read_body()
            r = reg._find(self.command, path)
            if r is None:
                self.send(404, {"Content-Type": "application/json"}, _error("NOT_FOUND", path))
                return
            body = r.body
            if r.echo_auth:
                body = _error("DENIED", f"bad header {headers.get('authorization', '')}")
            if r.endless is not None:
                self._endless(r, body)
            elif r.drip is not None:
                self._drip(r)
            else:
                self.send(r.status, dict(r.headers), body)

        do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = do_PATCH = _any

        def _endless(self, r: Route, head: bytes) -> None:
            # No length: the body ends when the connection does, and it does not.
            self.send_response(r.status)
            for k, v in r.headers.items():
                self.send_header(k, v)
            self.send_header("Connection", "close")
            self.end_headers()
            assert r.endless is not None
            chunk = r.endless * max(1, _CHUNK_REPEAT // max(1, len(r.endless)))
            try:
                self.wfile.write(head)
                sent = 0
                while sent < reg.max_stream and not reg._stop.is_set():
                    self.wfile.write(chunk)
                    sent += len(chunk)
                    with reg._lock:
                        reg.streamed += len(chunk)
            except OSError:
                pass  # the client stopped reading: what a bounded client does
            self.close_connection = True

        def _drip(self, r: Route) -> None:
            assert r.drip is not None
            self.send_response(r.status)
            for k, v in r.headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(r.drip)))
            self.end_headers()
            self.wfile.flush()
            until = time.monotonic() + reg.drip_seconds
            try:
                for byte in r.drip:
                    if reg._stop.is_set() or time.monotonic() > until:
                        break
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(reg.drip_interval)
            except OSError:
                pass
            self.close_connection = True

    return HostileHandler


def _error(code: str, message: str) -> bytes:
    return json.dumps({"errors": [{"code": code, "message": message}]}).encode()


def loopback_alias_works(address: str = "127.0.0.2") -> bool:
    """Whether this machine answers on ``address`` (Linux routes all of 127/8 to lo)."""
    try:
        with socket.socket() as s:
            s.bind((address, 0))
        return True
    except OSError:
        return False
