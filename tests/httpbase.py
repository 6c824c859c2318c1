"""The one base of the test bed's stdlib HTTP servers: the fault proxy (``faultproxy``), the
scripted hostile registry (``hostile``), the provider simulators' APIs (``simulators``) and
the token issuer (``tokenissuer``, which runs it in a process of its own). Standard library
only. Does I/O: listens on loopback, in daemon threads.

- :class:`LoopbackServer`: a threading HTTP server bound to 127.0.0.1 (never anything
  else: these servers answer anyone who connects), with a deep accept backlog (an engine
  uploads many layers at once), its open connections tracked so that :meth:`stop` can cut
  them, and clients that hang up treated as routine rather than tracebacks.
- :class:`Handler`: HTTP/1.1, quiet unless told otherwise, a bounded body reader and one
  way to send an answer (no body on HEAD).
- :class:`Served`: a server run from a daemon thread; ``start``/``stop`` and a context
  manager.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

LOOPBACK = "127.0.0.1"
MAX_REQUEST_BODY = 1 << 20


class LoopbackServer(ThreadingHTTPServer):
    """A threading HTTP server on a loopback address (port 0: any free one)."""

    daemon_threads = True
    # Many parallel layer uploads from the engine must not overflow the default backlog of 5.
    request_queue_size = 64

    def __init__(
        self, handler: type[BaseHTTPRequestHandler], address: str = LOOPBACK, port: int = 0
    ) -> None:
        if not address.startswith("127."):
            raise ValueError(f"test servers listen on loopback only, not {address!r}")
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__((address, port), handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    @property
    def host(self) -> str:
        return f"{self.server_address[0]}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up (or a connection we cut) is routine here; anything else
        # is a bug of the server and gets the default traceback on stderr.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)

    def track(self, sock: socket.socket, alive: bool) -> None:
        with self._connections_lock:
            if alive:
                self._connections.add(sock)
            else:
                self._connections.discard(sock)

    def close_all_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
            self._connections.clear()
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class Handler(BaseHTTPRequestHandler):
    """A request handler of a :class:`LoopbackServer`."""

    server: LoopbackServer
    protocol_version = "HTTP/1.1"
    # An idle keep-alive connection ends after this; bounds every read of a request, too.
    timeout = 60

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, alive=True)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass  # the connection was reset on purpose, or by the client
        finally:
            self.server.track(self.connection, alive=False)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: tests read what a server saw from its own records

    def read_body(self, limit: int = MAX_REQUEST_BODY) -> bytes:
        """The request body (``Content-Length``), at most ``limit`` bytes read."""
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(min(length, limit)) if length > 0 else b""

    def send(self, status: int, headers: dict[str, str] | None = None, body: bytes = b"") -> None:
        """Answer ``status`` with ``headers`` and ``body`` (``Content-Length`` added unless
        given; no body on HEAD)."""
        self.send_response(status)
        given = {k.lower() for k in headers or {}}
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if "content-length" not in given:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            with contextlib.suppress(OSError):
                self.wfile.write(body)

    def send_json(self, status: int, doc: Any, headers: dict[str, str] | None = None) -> None:
        data = b"" if doc is None else json.dumps(doc).encode()
        extra = {"Content-Type": "application/json; charset=utf-8"} if data else {}
        self.send(status, {**extra, **(headers or {})}, data)


class Served:
    """``server`` served from a daemon thread named ``name`` once started."""

    def __init__(self, server: LoopbackServer, name: str, poll_interval: float = 0.1) -> None:
        self.server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": poll_interval},
            name=name,
            daemon=True,
        )
        self._stopped = False
        self._lock = threading.Lock()

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and cut every open connection, so no handler thread outlives the
        server for longer than its current read."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        if self._thread.is_alive():  # shutdown() waits for a serve_forever() that runs
            self.server.shutdown()
        self.server.server_close()
        self.server.close_all_connections()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
