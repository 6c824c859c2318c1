"""A Google Artifact Registry simulator: the registry API of a real Distribution registry
(a manifest DELETE refused while tags reference it, immutable tags refused) and the
Artifact Registry REST API (v1) over that registry's state.

Standard library only; does I/O (threads on 127.0.0.1, the real registry's API and storage).

What it follows, from the Artifact Registry documentation:

- REST v1 (https://cloud.google.com/artifact-registry/docs/reference/rest):
  ``projects.locations.repositories.get`` (``name``, ``format: DOCKER``,
  ``dockerConfig.immutableTags``); ``…packages.versions.list`` (``view=FULL`` adds
  ``relatedTags``; ``createTime``, ``updateTime``; ``pageSize``, ``pageToken``,
  ``nextPageToken``); ``…packages.versions.delete`` (``force`` deletes its tags too; a
  version with tags without ``force`` is ``FAILED_PRECONDITION``; answers an Operation);
  ``projects.locations.operations.get`` (``done``); ``…packages.tags.list`` and
  ``…packages.tags.delete`` (the tag alone);
- errors (https://cloud.google.com/apis/design/errors): ``{"error": {"code", "message",
  "status"}}``; 401 ``UNAUTHENTICATED``, 404 ``NOT_FOUND``, 429 ``RESOURCE_EXHAUSTED``;
- immutable tags (https://cloud.google.com/artifact-registry/docs/docker/manage-images,
  "immutable tags"): a repository with ``immutableTags`` refuses to move a tag (a push of
  an existing tag) or to delete one (``FAILED_PRECONDITION``). The registry API's wording
  of the push refusal is not in the public documentation: this simulator answers 400 with
  a message that says the tag is immutable, and the word is what imgtag recognises;
- the registry API answers a manifest DELETE while tags reference the manifest with
  ``GOOGLE_MANIFEST_DANGLING_TAG`` (https://cloud.google.com/artifact-registry/docs/docker/manage-images,
  "Deleting images"; gcrane and crane users meet it).

The model: repository ``projects/P/locations/L/repositories/R`` holds the registry
repositories ``P/R/IMAGE`` (package ``IMAGE``, ``/`` sent as ``%2F``); versions are the
manifests (tagged or not), their times the mtimes of their revision links; a tag deleted
alone points at a unique placeholder that is deleted by digest.
"""

from __future__ import annotations

import itertools
import re
import threading
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faultproxy import FaultProxy, distribution_error
from simulators.common import JsonApi, RegistryState, Reply, Request, Simulator, iso

_MANIFEST = re.compile(r"/v2/(?P<repo>.+)/manifests/(?P<ref>[^/]+)")


def google_error(code: int, status: str, message: str) -> Reply:
    return Reply(code, {"error": {"code": code, "status": status, "message": message}})


@dataclass
class GarSimulator(Simulator):
    """Start with :meth:`start`; ``registry_host`` goes in image names, ``api_url`` in
    ``IMGTAG_GAR_API_URL``; ``tokens`` are the access tokens it accepts."""

    registry_target: str
    storage: Path
    tokens: set[str] = field(default_factory=set)
    location: str = "europe-west4"
    max_page: int = 100

    def start(self) -> GarSimulator:
        self.state = RegistryState(f"http://{self.registry_target}", self.storage)
        self.front = FaultProxy(self.registry_target).start()
        self.front.intercept(self._registry_answer)
        self.repositories: dict[str, bool] = {}  # "P/R" -> immutableTags
        self._operations: dict[str, int] = {}  # pending operation -> polls left
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        loc = r"projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
        repo = rf"/v1/{loc}/repositories/(?P<repo>[^/]+)"
        pkg = rf"{repo}/packages/(?P<package>[^/]+)"
        digest = r"(?P<digest>sha256:[0-9a-f]{64})"
        self.api = JsonApi(
            [
                ("GET", repo, self._repository),
                ("GET", rf"{pkg}/versions", self._versions),
                ("DELETE", rf"{pkg}/versions/{digest}", self._delete_version),
                ("GET", rf"{pkg}/tags", self._tags),
                ("DELETE", rf"{pkg}/tags/(?P<tag>[^/]+)", self._delete_tag),
                ("GET", rf"/v1/{loc}/operations/(?P<op>[^/]+)", self._operation),
            ]
        )  # fmt: skip
        return self

    @property
    def api_url(self) -> str:
        return self.api.base

    def create_repository(self, project: str, name: str, *, immutable: bool = False) -> None:
        self.repositories[f"{project}/{name}"] = immutable

    def _immutable(self, image: str) -> bool:
        project, repo, _ = image.split("/", 2)
        return self.repositories.get(f"{project}/{repo}", False)

    # -- the registry front ------------------------------------------------------------------

    def _registry_answer(
        self, method: str, path: str, query: str
    ) -> tuple[int, dict[str, str], bytes] | None:
        m = _MANIFEST.fullmatch(path)
        if m is None or m["repo"].count("/") < 2:
            return None
        image, ref = m["repo"], m["ref"]
        moving = method == "PUT" and not ref.startswith("sha256:") and self._immutable(image)
        if moving and self.state.head(image, ref) is not None:
            return distribution_error(
                400,
                "FAILED_PRECONDITION",
                f"Failed to update tag {ref}: the repository has immutable tags enabled, "
                "so an existing tag cannot be moved to a new image",
            )
        if method == "DELETE" and ref.startswith("sha256:"):
            tags = [t for t, d in self.state.tags(image).items() if d == ref]
            if tags:
                return distribution_error(
                    400,
                    "GOOGLE_MANIFEST_DANGLING_TAG",
                    f"Manifest is still referenced by tag: {tags[0]}",
                )
        return None

    # -- the API ----------------------------------------------------------------------------

    def _auth(self, req: Request) -> Reply | None:
        if req.bearer not in self.tokens:
            return google_error(
                401, "UNAUTHENTICATED", "Request had invalid authentication credentials."
            )
        return None

    def _image(self, project: str, location: str, repo: str, package: str = "") -> str | Reply:
        if location != self.location or f"{project}/{repo}" not in self.repositories:
            return google_error(404, "NOT_FOUND", f'Repository "{repo}" not found')
        return f"{project}/{repo}/{urllib.parse.unquote(package)}" if package else ""

    def _repository(self, req: Request, project: str, location: str, repo: str) -> Reply:
        if (denied := self._auth(req)) is not None:
            return denied
        if isinstance(found := self._image(project, location, repo), Reply):
            return found
        return Reply(
            200,
            {
                "name": f"projects/{project}/locations/{location}/repositories/{repo}",
                "format": "DOCKER",
                "dockerConfig": {"immutableTags": self.repositories[f"{project}/{repo}"]},
            },
        )

    def _page(self, req: Request, items: list[dict[str, Any]], key: str) -> Reply:
        try:
            size = max(1, min(int(req.query.get("pageSize", "100")), 1000, self.max_page))
            start = int(req.query.get("pageToken") or 0)
        except ValueError:
            return google_error(400, "INVALID_ARGUMENT", "Invalid page token")
        doc: dict[str, Any] = {key: items[start : start + size]}
        if start + size < len(items):
            doc["nextPageToken"] = str(start + size)
        return Reply(200, doc)

    def _versions(
        self, req: Request, project: str, location: str, repo: str, package: str
    ) -> Reply:
        if (denied := self._auth(req)) is not None:
            return denied
        if isinstance(image := self._image(project, location, repo, package), Reply):
            return image
        base = req.path.removeprefix("/v1/").removesuffix("/versions")
        rows = []
        for m in self.state.manifests(image):
            row: dict[str, Any] = {
                "name": f"{base}/versions/{m.digest}",
                "createTime": iso(m.updated).replace("Z", ".123456789Z"),
                "updateTime": iso(m.updated).replace("Z", ".123456789Z"),
            }
            if req.query.get("view") == "FULL":
                row["relatedTags"] = [
                    {"name": f"{base}/tags/{t}", "version": row["name"]} for t in m.tags
                ]
            rows.append(row)
        if not rows:
            return google_error(404, "NOT_FOUND", f'Package "{package}" not found')
        return self._page(req, rows, "versions")

    def _tags(self, req: Request, project: str, location: str, repo: str, package: str) -> Reply:
        if (denied := self._auth(req)) is not None:
            return denied
        if isinstance(image := self._image(project, location, repo, package), Reply):
            return image
        base = req.path.removeprefix("/v1/").removesuffix("/tags")
        rows = [
            {"name": f"{base}/tags/{t}", "version": f"{base}/versions/{d}"}
            for t, d in sorted(self.state.tags(image).items())
        ]
        return self._page(req, rows, "tags")

    def _operation_reply(self, project: str, location: str) -> Reply:
        op = f"projects/{project}/locations/{location}/operations/op-{next(self._ids)}"
        with self._lock:
            self._operations[op] = 1  # done at the first poll
        return Reply(200, {"name": op, "done": False})

    def _operation(self, req: Request, project: str, location: str, op: str) -> Reply:
        if (denied := self._auth(req)) is not None:
            return denied
        name = f"projects/{project}/locations/{location}/operations/{op}"
        with self._lock:
            if name not in self._operations:
                return google_error(404, "NOT_FOUND", "operation not found")
            left = self._operations[name] = self._operations[name] - 1
        return Reply(
            200, {"name": name, "done": left <= 0, **({"response": {}} if left <= 0 else {})}
        )

    def _delete_version(
        self, req: Request, project: str, location: str, repo: str, package: str, digest: str
    ) -> Reply:
        if (denied := self._auth(req)) is not None:
            return denied
        if isinstance(image := self._image(project, location, repo, package), Reply):
            return image
        tags = [t for t, d in self.state.tags(image).items() if d == digest]
        if all(m.digest != digest for m in self.state.manifests(image)):
            return google_error(404, "NOT_FOUND", f'Version "{digest}" not found')
        if tags and req.query.get("force") != "true":
            return google_error(
                400, "FAILED_PRECONDITION", "Version has tags; delete them or use force"
            )
        if tags and self._immutable(image):
            return google_error(
                400,
                "FAILED_PRECONDITION",
                f"Cannot delete tag {tags[0]}: the repository has immutable tags enabled",
            )
        for tag in tags:
            self.state.remove_tag(image, tag)
        self.state.delete_digest(image, digest)
        return self._operation_reply(project, location)

    def _delete_tag(
        self, req: Request, project: str, location: str, repo: str, package: str, tag: str
    ) -> Reply:
        if (denied := self._auth(req)) is not None:
            return denied
        if isinstance(image := self._image(project, location, repo, package), Reply):
            return image
        tag = urllib.parse.unquote(tag)
        if self.state.head(image, tag) is None:
            return google_error(404, "NOT_FOUND", f'Tag "{tag}" not found')
        if self._immutable(image):
            return google_error(
                400,
                "FAILED_PRECONDITION",
                f"Cannot delete tag {tag}: the repository has immutable tags enabled",
            )
        self.state.remove_tag(image, tag)
        return Reply(200, {})
