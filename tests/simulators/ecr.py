"""An Amazon ECR simulator: the registry API of a real Distribution registry (DELETE
refused, immutable tags refused as ECR refuses them) and ECR's own API (the AWS JSON 1.1
protocol that botocore speaks) over that registry's state.

Standard library only; does I/O (threads on 127.0.0.1, the real registry's API and storage).

What it follows, from the Amazon ECR API reference
(https://docs.aws.amazon.com/AmazonECR/latest/APIReference/):

- the protocol: ``POST /`` with ``X-Amz-Target: AmazonEC2ContainerRegistry_V20150921.<Op>``,
  ``Content-Type: application/x-amz-json-1.1``, a SigV4 ``Authorization`` header; errors
  are HTTP 400 with ``{"__type": "<Exception>", "message": ...}``
  (CommonErrors.html: ``ThrottlingException``, ``UnrecognizedClientException``);
- ``DescribeRepositories`` (API_DescribeRepositories.html): ``repositories`` with
  ``repositoryName``, ``repositoryArn``, ``registryId``, ``repositoryUri``,
  ``imageTagMutability``; an unknown name is ``RepositoryNotFoundException``;
- ``ListImages`` (API_ListImages.html): ``imageIds`` (one per tag; an untagged image has
  no ``imageTag``), ``maxResults`` (1 to 1000), ``nextToken``;
- ``DescribeImages`` (API_DescribeImages.html): ``imageDetails`` (``imageDigest``,
  ``imageTags``, ``imagePushedAt`` in epoch seconds, ``imageManifestMediaType``,
  ``imageSizeInBytes``); ``imageIds`` at most 100, an id it does not have is
  ``ImageNotFoundException``;
- ``BatchDeleteImage`` (API_BatchDeleteImage.html): ``imageIds`` at most 100 (more is
  ``InvalidParameterException``); a digest deletes the image with all its tags, a tag
  removes that tag, and removing the last tag deletes the image; what it cannot do comes
  back in ``failures`` (``ImageNotFound``; ``ImageReferencedByManifestList`` for an image
  an index of the repository holds);
- immutable tags (https://docs.aws.amazon.com/AmazonECR/latest/userguide/image-tag-mutability.html):
  a push of an existing tag to an ``IMMUTABLE`` repository answers the registry API with
  ``TAG_INVALID`` "The image tag '…' already exists in the '…' repository and cannot be
  overwritten because the repository is immutable." (and the API's PutImage with
  ``ImageTagAlreadyExistsException``).

The model: ECR repository ``R`` is the registry repository ``R``; repositories exist only
once made (:meth:`EcrSimulator.create_repository`); images are the repository's manifests
(tagged or not), pushed at the mtime of their revision link; a tag removed alone points at
a unique placeholder that is deleted by digest (the real registry cannot delete a tag).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faultproxy import distribution_error
from simulators.common import JsonApi, RegistryState, Reply, Request, Simulator, registry_front

TARGET_PREFIX = "AmazonEC2ContainerRegistry_V20150921."
ACCOUNT = "123456789012"
MAX_IDS = 100
_MANIFEST_PUT = re.compile(r"/v2/(?P<repo>.+)/manifests/(?P<ref>[^/]+)")


def immutable_message(tag: str, repo: str) -> str:
    return (
        f"The image tag '{tag}' already exists in the '{repo}' repository and cannot be "
        "overwritten because the repository is immutable."
    )


@dataclass
class EcrSimulator(Simulator):
    """Start with :meth:`start`; ``registry_host`` goes in image names, ``api_url`` in
    ``IMGTAG_ECR_API_URL``; ``keys`` are the access key ids it accepts."""

    registry_target: str
    storage: Path
    keys: set[str] = field(default_factory=set)
    max_results: int = 1000  # ListImages' page size cap (small: pages at every turn)
    #: Every Nth API call answers ThrottlingException (0: never).
    throttle_every: int = 0

    def start(self) -> EcrSimulator:
        self.state = RegistryState(f"http://{self.registry_target}", self.storage)
        self.front = registry_front(self.registry_target)
        self.front.intercept(self._registry_answer)
        self.repositories: dict[str, str] = {}  # name -> imageTagMutability
        #: Called once when a manifest PUT of (repo, tag) arrives, before it is judged:
        #: a rival publisher that got there first.
        self.on_put: dict[tuple[str, str], Callable[[], object]] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.throttled = 0
        self._lock = threading.Lock()
        self._count = 0
        self.api = JsonApi([("POST", r"/", self._dispatch)])
        return self

    @property
    def api_url(self) -> str:
        return self.api.base

    def create_repository(self, name: str, *, immutable: bool = False) -> None:
        self.repositories[name] = "IMMUTABLE" if immutable else "MUTABLE"

    def batches(self, operation: str) -> list[int]:
        """How many ids each call of ``operation`` carried."""
        return [len(p.get("imageIds") or []) for op, p in self.calls if op == operation]

    # -- the registry front: ECR's immutable tags -------------------------------------------

    def _registry_answer(
        self, method: str, path: str, query: str
    ) -> tuple[int, dict[str, str], bytes] | None:
        m = _MANIFEST_PUT.fullmatch(path)
        if method != "PUT" or m is None or m["ref"].startswith("sha256:"):
            return None
        repo, tag = m["repo"], m["ref"]
        rival = self.on_put.pop((repo, tag), None)
        if rival is not None:
            rival()
        if self.repositories.get(repo) == "IMMUTABLE" and self.state.head(repo, tag) is not None:
            return distribution_error(400, "TAG_INVALID", immutable_message(tag, repo))
        return None

    # -- the API ----------------------------------------------------------------------------

    def _error(self, kind: str, message: str) -> Reply:
        return Reply(400, {"__type": kind, "message": message})

    def _dispatch(self, req: Request) -> Reply:
        target = str(req.headers.get("X-Amz-Target") or "")
        auth = str(req.headers.get("Authorization") or "")
        m = re.match(r"AWS4-HMAC-SHA256 Credential=([^/]+)/\d{8}/([^/]+)/ecr/aws4_request", auth)
        if m is None or m[1] not in self.keys:
            return self._error(
                "UnrecognizedClientException",
                "The security token included in the request is invalid.",
            )
        if not target.startswith(TARGET_PREFIX):
            return self._error("UnknownOperationException", "")
        op = target.removeprefix(TARGET_PREFIX)
        params = req.json() or {}
        with self._lock:
            self.calls.append((op, params))
            self._count += 1
            if self.throttle_every and self._count % self.throttle_every == 0:
                self.throttled += 1
                return self._error("ThrottlingException", "Rate exceeded")
        handler = {
            "DescribeRepositories": self._describe_repositories,
            "ListImages": self._list_images,
            "DescribeImages": self._describe_images,
            "BatchDeleteImage": self._batch_delete,
        }.get(op)
        if handler is None:
            return self._error("UnknownOperationException", f"no operation {op}")
        return handler(params)

    def _repo(self, params: dict[str, Any]) -> str | None:
        name = params.get("repositoryName")
        return name if isinstance(name, str) and name in self.repositories else None

    def _not_found(self, params: dict[str, Any]) -> Reply:
        return self._error(
            "RepositoryNotFoundException",
            f"The repository with name '{params.get('repositoryName')}' does not exist in "
            f"the registry with id '{ACCOUNT}'",
        )

    def _describe_repositories(self, params: dict[str, Any]) -> Reply:
        names = params.get("repositoryNames") or list(self.repositories)
        out = []
        for name in names:
            if name not in self.repositories:
                return self._not_found({"repositoryName": name})
            out.append(
                {
                    "repositoryArn": f"arn:aws:ecr:eu-west-1:{ACCOUNT}:repository/{name}",
                    "registryId": ACCOUNT,
                    "repositoryName": name,
                    "repositoryUri": f"{self.registry_host}/{name}",
                    "imageTagMutability": self.repositories[name],
                    "createdAt": 1764547200.0,
                }
            )
        return Reply(200, {"repositories": out})

    def _images(self, repo: str) -> list[tuple[str, tuple[str, ...], float]]:
        return [(m.digest, m.tags, m.updated) for m in self.state.manifests(repo)]

    def _page(self, params: dict[str, Any], items: list[Any], key: str) -> Reply:
        try:
            size = int(params.get("maxResults") or 100)
            start = int(params.get("nextToken") or 0)
        except ValueError:
            return self._error("InvalidParameterException", "Invalid parameter: nextToken")
        if not 1 <= size <= 1000:
            return self._error("InvalidParameterException", "maxResults must be 1 to 1000")
        size = min(size, self.max_results)
        doc: dict[str, Any] = {key: items[start : start + size]}
        if start + size < len(items):
            doc["nextToken"] = str(start + size)
        return Reply(200, doc)

    def _list_images(self, params: dict[str, Any]) -> Reply:
        repo = self._repo(params)
        if repo is None:
            return self._not_found(params)
        ids: list[dict[str, str]] = []
        for digest, tags, _ in self._images(repo):
            ids.extend({"imageDigest": digest, "imageTag": t} for t in tags)
            if not tags:
                ids.append({"imageDigest": digest})
        return self._page(params, ids, "imageIds")

    def _detail(
        self, repo: str, digest: str, tags: tuple[str, ...], pushed: float
    ) -> dict[str, Any]:
        detail: dict[str, Any] = {
            "registryId": ACCOUNT,
            "repositoryName": repo,
            "imageDigest": digest,
            "imagePushedAt": pushed,
            "imageSizeInBytes": 1,
        }
        if tags:
            detail["imageTags"] = list(tags)
        return detail

    def _describe_images(self, params: dict[str, Any]) -> Reply:
        repo = self._repo(params)
        if repo is None:
            return self._not_found(params)
        images = self._images(repo)
        ids = params.get("imageIds")
        if ids is None:
            return self._page(params, [self._detail(repo, *i) for i in images], "imageDetails")
        if len(ids) > MAX_IDS:
            return self._error(
                "InvalidParameterException",
                "1 validation error detected: Value at 'imageIds' failed to satisfy "
                "constraint: Member must have length less than or equal to 100",
            )
        out = []
        for image_id in ids:
            found = self._find(images, image_id)
            if found is None:
                return self._error(
                    "ImageNotFoundException",
                    f"The image with imageId {json.dumps(image_id)} does not exist within the "
                    f"repository with name '{repo}' in the registry with id '{ACCOUNT}'",
                )
            out.append(self._detail(repo, *found))
        return Reply(200, {"imageDetails": out})

    @staticmethod
    def _find(
        images: list[tuple[str, tuple[str, ...], float]], image_id: dict[str, Any]
    ) -> tuple[str, tuple[str, ...], float] | None:
        digest, tag = image_id.get("imageDigest"), image_id.get("imageTag")
        for image in images:
            if (digest is None or image[0] == digest) and (tag is None or tag in image[1]):
                return image
        return None

    def _children(self, repo: str) -> set[str]:
        """Every digest an index of ``repo`` holds."""
        held: set[str] = set()
        for digest, _tags, _ in self._images(repo):
            status, _, body = self.state._request(
                "GET",
                f"/v2/{repo}/manifests/{digest}",
                headers={"Accept": "application/vnd.oci.image.index.v1+json, "
                         "application/vnd.docker.distribution.manifest.list.v2+json, "
                         "application/vnd.oci.image.manifest.v1+json, "
                         "application/vnd.docker.distribution.manifest.v2+json"},
            )  # fmt: skip
            if status != 200:
                continue
            try:
                doc = json.loads(body)
            except ValueError:
                continue
            for entry in doc.get("manifests") or []:
                if isinstance(entry, dict) and isinstance(entry.get("digest"), str):
                    held.add(entry["digest"])
        return held

    def _batch_delete(self, params: dict[str, Any]) -> Reply:
        repo = self._repo(params)
        if repo is None:
            return self._not_found(params)
        ids = params.get("imageIds") or []
        if not 1 <= len(ids) <= MAX_IDS:
            return self._error(
                "InvalidParameterException",
                "1 validation error detected: Value at 'imageIds' failed to satisfy "
                "constraint: Member must have length less than or equal to 100",
            )
        deleted, failures = [], []
        for image_id in ids:
            images = self._images(repo)
            found = self._find(images, image_id)
            if found is None:
                failures.append(
                    {
                        "imageId": image_id,
                        "failureCode": "ImageNotFound",
                        "failureReason": "Requested image not found",
                    }
                )
                continue
            digest, tags, _ = found
            tag = image_id.get("imageTag")
            if tag is not None and len(tags) > 1:
                self.state.remove_tag(repo, tag)  # the image keeps its other tags
                deleted.append({"imageDigest": digest, "imageTag": tag})
                continue
            # A digest, or an image's last tag: the image goes, unless an index holds it.
            if digest in self._children(repo):
                failures.append(
                    {
                        "imageId": image_id,
                        "failureCode": "ImageReferencedByManifestList",
                        "failureReason": "Requested image is referenced by a manifest list",
                    }
                )
                continue
            self.state.delete_digest(repo, digest)
            deleted.extend({"imageDigest": digest, "imageTag": t} for t in tags)
            if not tags:
                deleted.append({"imageDigest": digest})
        return Reply(200, {"imageIds": deleted, "failures": failures})


__all__ = ["ACCOUNT", "EcrSimulator", "immutable_message"]
