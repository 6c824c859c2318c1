"""What the provider simulators share: a registry front that refuses DELETE, the real
registry's state read back, a small JSON API server, and rate limiting on demand.

Standard library only (the fault proxy in front of the registry is ``tests/faultproxy.py``,
stdlib too). Does I/O: it starts threads listening on 127.0.0.1 and talks to a real
Distribution registry of the bed, whose storage directory it reads.

- The **registry front** forwards the registry API to the real registry, except that every
  DELETE answers 405 ``{"errors":[{"code":"UNSUPPORTED"}]}``, as ghcr.io and Docker Hub do.
- The **state** of a repository is read from the real registry: its manifests (tagged or
  not) from the registry's storage (the registry API cannot list untagged manifests; a
  deleted manifest loses its revision ``link``), each tag's digest through the registry API
  (tag list, then a HEAD with every manifest type in ``Accept``). A version's time is the
  mtime of its revision link (:meth:`RegistryState.age` moves it into the past).
- The state's **writes** (a tag taken off through a placeholder, a manifest deleted) run one
  at a time. The services delete a tag atomically; Distribution 2.8 does not, with writes
  in flight: a manifest DELETE reads every tag's ``current/link`` of the repository after
  it has removed the manifest, a link being written at that moment reads empty, and the
  DELETE answers 500 with the tag left pointing at nothing (listed, HEAD 404). Concurrent
  placeholder uploads of the same config blob answer ``DIGEST_INVALID`` besides. imgtag's
  requests to a simulator still arrive and are answered concurrently.
- **Rate limiting**: :meth:`JsonApi.rate_limit` makes every Nth API request answer 429 with
  ``Retry-After``, or 403 with ``x-ratelimit-remaining: 0`` and ``x-ratelimit-reset``.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

from faultproxy import FaultProxy
from httpbase import Handler, LoopbackServer, Served

MANIFEST_ACCEPT = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def registry_front(target_host: str) -> FaultProxy:
    """A started proxy in front of the real registry: everything passes, DELETE gets 405."""
    proxy = FaultProxy(target_host).start()
    proxy.fail(405, method="DELETE")
    return proxy


@dataclass(frozen=True)
class Manifest:
    digest: str
    tags: tuple[str, ...]
    updated: float  # epoch seconds


class RegistryState:
    """One real registry (plain HTTP, anonymous), read and changed through its API."""

    def __init__(self, url: str, storage: Path) -> None:
        self.url = url.rstrip("/")
        self.storage = storage
        self._writing = threading.RLock()  # see the module docstring: writes one at a time

    def _request(
        self, method: str, path: str, data: bytes | None = None, headers: Mapping[str, str] = {}
    ) -> tuple[int, Mapping[str, str], bytes]:
        url = path if "://" in path else f"{self.url}{path}"
        req = urllib.request.Request(url, data=data, method=method, headers=dict(headers))
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers, exc.read()

    def _revisions(self, repo: str) -> Path:
        return self.storage / "docker/registry/v2/repositories" / repo / "_manifests/revisions"

    def manifests(self, repo: str) -> list[Manifest]:
        """Every manifest ``repo`` holds, tagged or not, oldest first."""
        revisions = self._revisions(repo)
        if not revisions.is_dir():
            return []
        links = {
            f"{algo.name}:{rev.name}": (rev / "link").stat().st_mtime
            for algo in revisions.iterdir()
            for rev in algo.iterdir()
            if (rev / "link").is_file()
        }
        tags: dict[str, list[str]] = {}
        for tag, digest in self.tags(repo).items():
            tags.setdefault(digest, []).append(tag)
        return sorted(
            (Manifest(d, tuple(sorted(tags.get(d, []))), t) for d, t in links.items()),
            key=lambda m: (m.updated, m.digest),
        )

    def tags(self, repo: str) -> dict[str, str]:
        """Each tag of ``repo`` and its digest, through the registry API."""
        status, _, body = self._request("GET", f"/v2/{repo}/tags/list")
        if status == 404:
            return {}
        out = {}
        for tag in json.loads(body).get("tags") or []:
            digest = self.head(repo, tag)
            if digest is not None:
                out[tag] = digest
        return out

    def catalog(self, prefix: str = "") -> list[str]:
        """The repositories of the registry under ``prefix`` (``""``: all) that hold a tag,
        through its ``_catalog`` (which keeps listing a repository whose tags are gone)."""
        names: list[str] = []
        url: str | None = "/v2/_catalog?n=1000"  # Distribution refuses a larger page
        while url:
            status, headers, body = self._request("GET", url)
            if status != 200:
                raise RuntimeError(f"simulator: _catalog answered {status}: {body[:200]!r}")
            names += json.loads(body).get("repositories") or []
            link = re.match(r"<([^>]+)>", headers.get("Link") or "")
            url = urllib.parse.urljoin(f"{self.url}/", link[1]) if link else None
        return sorted(n for n in names if n.startswith(prefix) and self.tags_list(n))

    def tags_list(self, repo: str) -> list[str]:
        status, _, body = self._request("GET", f"/v2/{repo}/tags/list")
        return list(json.loads(body).get("tags") or []) if status == 200 else []

    def manifest(self, repo: str, ref: str) -> tuple[str, dict[str, Any]]:
        """The media type and document of a manifest."""
        status, headers, body = self._request(
            "GET", f"/v2/{repo}/manifests/{ref}", headers={"Accept": MANIFEST_ACCEPT}
        )
        if status != 200:
            return "", {}
        return headers.get("Content-Type", "").split(";")[0], json.loads(body)

    def head(self, repo: str, ref: str) -> str | None:
        status, headers, _ = self._request(
            "HEAD", f"/v2/{repo}/manifests/{ref}", headers={"Accept": MANIFEST_ACCEPT}
        )
        return headers.get("Docker-Content-Digest") if status == 200 else None

    def delete_digest(self, repo: str, digest: str) -> None:
        """Delete a manifest by digest (gone already is fine)."""
        with self._writing:
            status, _, body = self._request("DELETE", f"/v2/{repo}/manifests/{digest}")
        if status not in (202, 404):
            # The real registry failed half-way (the manifest may be gone and its tags not):
            # a simulator bug to see, not a state to model.
            raise RuntimeError(f"simulator: DELETE {digest} answered {status}: {body[:200]!r}")

    def remove_tag(self, repo: str, tag: str) -> None:
        """Take ``tag`` off its image and leave the image (Distribution cannot delete a tag:
        point it at a unique placeholder, then delete the placeholder by digest)."""
        with self._writing:
            config = b"{}"
            self._put_blob(repo, config)
            doc = {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": _sha256(config),
                    "size": len(config),
                },
                "layers": [],
                "annotations": {"simulator.tag-delete": f"{tag} {time.time_ns()}"},
            }
            raw = json.dumps(doc).encode()
            status, headers, body = self._request(
                "PUT", f"/v2/{repo}/manifests/{tag}", raw, {"Content-Type": OCI_MANIFEST}
            )
            if status != 201:
                raise RuntimeError(f"simulator: placeholder push answered {status}: {body!r}")
            self.delete_digest(repo, headers.get("Docker-Content-Digest") or _sha256(raw))

    def _put_blob(self, repo: str, data: bytes) -> None:
        digest = _sha256(data)
        status, _, _ = self._request("HEAD", f"/v2/{repo}/blobs/{digest}")
        if status == 200:
            return
        status, headers, _ = self._request("POST", f"/v2/{repo}/blobs/uploads/")
        location = urllib.parse.urljoin(f"{self.url}/", headers.get("Location", ""))
        sep = "&" if "?" in location else "?"
        self._request(
            "PUT",
            f"{location}{sep}digest={digest}",
            data,
            {"Content-Type": "application/octet-stream"},
        )

    def age(self, repo: str, seconds: float) -> None:
        """Make every manifest of ``repo`` look ``seconds`` older (revision link mtimes)."""
        revisions = self._revisions(repo)
        for algo in revisions.iterdir():
            for rev in algo.iterdir():
                link = rev / "link"
                if link.is_file():
                    st = link.stat()
                    os.utime(link, (st.st_atime - seconds, st.st_mtime - seconds))


def _sha256(data: bytes) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(data).hexdigest()


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] | None = None


Route = Callable[["Request"], Reply]


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # raw, still percent-encoded
    query: dict[str, str]
    headers: Mapping[str, str]
    body: bytes
    base: str  # http://127.0.0.1:PORT

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None

    @property
    def bearer(self) -> str | None:
        value = self.headers.get("Authorization") or ""
        scheme, _, token = value.partition(" ")
        return token.strip() if scheme.lower() in ("bearer", "token") and token else None


class JsonApi:
    """A JSON API on 127.0.0.1: routes are ``(method, regex of the raw path, handler)``."""

    def __init__(self, routes: list[tuple[str, str, Route]]) -> None:
        self.routes = [(m, re.compile(p), h) for m, p, h in routes]
        self.lock = threading.Lock()
        self.log: list[tuple[str, str, int]] = []
        self._limit_every = 0
        self._limit_kind = "429"
        self._limit_seconds = 1
        self._count = 0
        self.limited = 0
        server = LoopbackServer(self._handler())
        self.port = server.port
        self.base = server.url
        self._served = Served(server, f"simulator-api-{self.port}").start()

    def stop(self) -> None:
        self._served.stop()

    def rate_limit(self, every: int, kind: str = "429", seconds: int = 1) -> None:
        """Every ``every``-th request (0: never) is rate limited: ``"429"`` answers 429 with
        ``Retry-After: seconds``; ``"403"`` answers 403 with ``x-ratelimit-remaining: 0`` and
        ``x-ratelimit-reset`` ``seconds`` from now (epoch seconds, as GitHub sends it)."""
        with self.lock:
            self._limit_every, self._limit_kind, self._limit_seconds = every, kind, seconds
            self._count = 0

    def count(self, method: str | None = None, path: str | None = None) -> int:
        with self.lock:
            return sum(
                1
                for m, p, _ in self.log
                if (method is None or m == method) and (path is None or re.search(path, p))
            )

    def _limited(self) -> Reply | None:
        with self.lock:
            if not self._limit_every:
                return None
            self._count += 1
            if self._count % self._limit_every:
                return None
            self.limited += 1
            kind, seconds = self._limit_kind, self._limit_seconds
        if kind == "429":
            return Reply(429, {"message": "API rate limit exceeded"}, {"Retry-After": str(seconds)})
        return Reply(
            403,
            {"message": "API rate limit exceeded for user."},
            {
                "x-ratelimit-limit": "5000",
                "x-ratelimit-remaining": "0",
                "x-ratelimit-reset": str(int(time.time()) + seconds),
            },
        )

    def _handler(self) -> type[Handler]:
        api = self

        class ApiHandler(Handler):
            def do_GET(self) -> None:
                split = urllib.parse.urlsplit(self.path)
                body = self.read_body()
                req = Request(
                    self.command,
                    split.path,
                    dict(urllib.parse.parse_qsl(split.query)),
                    self.headers,
                    body,
                    api.base,
                )
                reply = api._limited() or api._route(req)
                with api.lock:
                    api.log.append((req.method, req.path, reply.status))
                headers = {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "4999"}
                headers.update(reply.headers or {})
                self.send_json(reply.status, reply.body, headers)

            do_POST = do_DELETE = do_PUT = do_PATCH = do_GET

        return ApiHandler

    def _route(self, req: Request) -> Reply:
        for method, pattern, handler in self.routes:
            if method == req.method and (m := pattern.fullmatch(req.path)) is not None:
                try:
                    return handler(req, **m.groupdict())  # type: ignore[call-arg]
                except Exception as exc:  # a bug of the simulator: say so, loudly
                    return Reply(500, {"message": f"simulator bug: {exc!r}"})
        return Reply(404, {"message": "Not Found"})


def page_link(base_url: str, query: Mapping[str, str], page: int, last: int) -> str:
    """A GitHub-style ``Link`` header for ``page`` of ``last``."""
    parts = []
    for rel, number in (("next", page + 1), ("last", last), ("prev", page - 1), ("first", 1)):
        if (rel == "next" and page >= last) or (rel == "prev" and page <= 1):
            continue
        q = urllib.parse.urlencode({**query, "page": str(number)})
        parts.append(f'<{base_url}?{q}>; rel="{rel}"')
    return ", ".join(parts)


class Simulator:
    """What every provider simulator shares: a registry front (the real registry, DELETE
    answered 405) and a JSON API server, both stopped together; a context manager."""

    front: FaultProxy
    api: JsonApi

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        self.api.stop()
        self.front.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def registry_host(self) -> str:
        return self.front.host
