"""``imgtag prune --validate``: every kept tag still resolves fully. Does I/O (through a
``Registry``): a HEAD of each kept tag as it stands now, the manifest, every child of an
index (nested ones too), and a HEAD of each config and layer blob. Each manifest and blob
is checked once per repository, however many tags share it.

What it finds is a list of :class:`Broken`: the tag, and the first thing of it that does
not resolve (a manifest, a child, a config or a layer), in the registry's own words.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from tagger.errors import RegistryError
from tagger.registry.mediatypes import is_index
from tagger.registry.protocols import Registry
from tagger.registry.reference import is_digest

_MAX_DEPTH = 8  # as deep as gathering follows indexes


@dataclass(frozen=True, slots=True)
class Broken:
    image: str
    tag: str
    what: str


class _Checker:
    """One repository's checks, remembered by digest (threads share it)."""

    def __init__(self, client: Registry, repository: str) -> None:
        self.client = client
        self.repository = repository
        self._lock = threading.Lock()
        self._manifests: dict[str, str | None] = {}
        self._blobs: dict[str, bool] = {}

    def blob(self, digest: str) -> bool:
        with self._lock:
            if digest in self._blobs:
                return self._blobs[digest]
        ok = self.client.has_blob(self.repository, digest, actions=("pull",))
        with self._lock:
            self._blobs[digest] = ok
        return ok

    def manifest(self, digest: str, depth: int = 0) -> str | None:
        """``None`` when ``digest`` resolves fully; else what does not."""
        with self._lock:
            if digest in self._manifests:
                return self._manifests[digest]
        problem = self._check(digest, depth)
        with self._lock:
            self._manifests[digest] = problem
        return problem

    def _check(self, digest: str, depth: int) -> str | None:
        short = digest[:19]
        try:
            manifest = self.client.get_manifest(self.repository, digest)
        except RegistryError as exc:
            return f"the manifest {short} does not resolve: {exc}"
        doc: Any = manifest.json()
        if is_index(manifest.media_type) or "manifests" in doc:
            if depth >= _MAX_DEPTH:
                return f"the index {short} nests deeper than {_MAX_DEPTH} levels"
            for child in _digests(doc.get("manifests")):
                problem = self.manifest(child, depth + 1)
                if problem is not None:
                    return f"a child of the index {short}: {problem}"
            return None
        config = doc.get("config")
        blobs = [config] if isinstance(config, dict) else []
        layers = doc.get("layers")
        blobs += [
            lay for lay in (layers if isinstance(layers, list) else []) if isinstance(lay, dict)
        ]
        if not blobs:
            return f"the manifest {short} names no config"
        for n, item in enumerate(blobs):
            blob = item.get("digest")
            what = "config" if n == 0 else f"layer {n}"
            if not isinstance(blob, str) or not is_digest(blob):
                return f"the {what} of {short} has no valid digest"
            if item.get("mediaType") == "application/vnd.oci.image.layer.nondistributable.v1.tar":
                continue  # a foreign layer is fetched from elsewhere by design
            try:
                ok = self.blob(blob)
            except RegistryError as exc:
                return f"the {what} {blob[:19]} of {short} does not resolve: {exc}"
            if not ok:
                return f"the {what} {blob[:19]} of {short} is missing"
        return None


def _digests(entries: object) -> list[str]:
    return [
        str(e["digest"])
        for e in (entries if isinstance(entries, list) else [])
        if isinstance(e, dict) and isinstance(e.get("digest"), str) and is_digest(e["digest"])
    ]


def validate(
    client: Registry, image: str, repository: str, tags: Iterable[str], pool: Executor
) -> tuple[int, list[Broken]]:
    """How many of ``tags`` were checked, and those that do not resolve fully. A tag gone
    since planning is not kept any more: it is not counted."""
    checker = _Checker(client, repository)

    def one(tag: str) -> tuple[bool, Broken | None]:
        try:
            info = client.head_manifest(repository, tag)
        except RegistryError as exc:
            return True, Broken(image, tag, f"does not resolve: {exc}")
        if info is None:
            return False, None
        problem = checker.manifest(info.digest)
        return True, (Broken(image, tag, problem) if problem is not None else None)

    checked, broken = 0, []
    for counted, found in pool.map(one, sorted(set(tags))):
        checked += counted
        if found is not None:
            broken.append(found)
    return checked, broken
