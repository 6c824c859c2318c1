"""Carrying a copy plan out: read an image's tree from the source, and put its blobs and
manifests into a destination. Does I/O: two registries, through the ``Registry`` seam.

Blobs first (skipped when the destination has them; mounted from the source repository
within one registry; else streamed from the source straight into the destination's
upload, a piece at a time, never a whole layer in memory or on disk), ``concurrency`` at a
time; then the manifests by digest, children first. Nothing here writes a tag but a
signature's (``copy_signature``): the final tag is the guard's (``tagger.promote.run``).
A stream cannot be re-sent, so a blob whose copy broke off is started over from a fresh
stream, a few times.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from tagger.errors import (
    AccessDenied,
    AuthenticationError,
    Interrupted,
    NotFound,
    RegistryError,
)
from tagger.lifecycle import Stop
from tagger.promote.plan import Blob, CopyPlan, Node, parse_node, plan_copy
from tagger.registry.protocols import ReadsBytes, Registry

BLOB_ATTEMPTS = 3


def read_tree(client: Registry, repository: str, ref: str) -> CopyPlan:
    """The whole image under ``ref`` (a tag or digest): the manifest, and for an index
    every child, read by digest (each checked against its bytes by the client)."""
    root = parse_node(client.get_manifest(repository, ref))
    nodes: dict[str, Node] = {}
    pending = list(root.children)
    while pending:
        digest = pending.pop()
        if digest in nodes or digest == root.digest:
            continue
        node = parse_node(client.get_manifest(repository, digest))
        nodes[digest] = node
        pending.extend(node.children)
        if len(nodes) > 1000:
            raise RegistryError(f"{ref} has more manifests than imgtag copies")
    return plan_copy(root, nodes)


@dataclass
class CopyStats:
    """What one destination got: blobs uploaded (and their bytes), mounted, already there."""

    blobs_copied: int = 0
    blobs_mounted: int = 0
    blobs_present: int = 0
    bytes_copied: int = 0
    manifests_written: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, kind: str, size: int = 0) -> None:
        with self._lock:
            setattr(self, kind, getattr(self, kind) + 1)
            self.bytes_copied += size


class _Stoppable:
    """A blob stream that ends the copy as soon as a stop is requested (a signal)."""

    def __init__(self, reader: ReadsBytes, stop: Stop) -> None:
        self._reader, self._stop = reader, stop

    def read(self, size: int = -1, /) -> bytes | None:
        if self._stop.requested:
            raise self._stop.interrupted()
        return self._reader.read(size)


class Copier:
    """Copies into ``dest:dest_repo`` from ``source:source_repo``. ``same_registry``: the
    two are one registry (one client), so blobs can be mounted."""

    def __init__(
        self,
        source: Registry,
        source_repo: str,
        dest: Registry,
        dest_repo: str,
        *,
        same_registry: bool,
        concurrency: int,
        stop: Stop,
        log: Callable[[str], None],
    ) -> None:
        self.source, self.source_repo = source, source_repo
        self.dest, self.dest_repo = dest, dest_repo
        self.same_registry = same_registry and source_repo != dest_repo
        self.concurrency = max(1, concurrency)
        self.stop, self.log = stop, log
        self.stats = CopyStats()

    def copy(self, plan: CopyPlan) -> None:
        """Every blob, then every manifest but the root, by digest, children first."""
        self.copy_blobs(plan.blobs)
        self.copy_manifests(plan.children)

    def copy_blobs(self, blobs: Iterable[Blob]) -> None:
        todo = list(blobs)
        if not todo:
            return
        pool = ThreadPoolExecutor(
            max_workers=min(self.concurrency, len(todo)), thread_name_prefix="imgtag-copy"
        )
        try:
            futures = [pool.submit(self._copy_blob, blob) for blob in todo]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            for future in done:
                if (error := future.exception()) is not None:
                    raise error
            for future in futures:
                future.result()
        finally:
            # A failure or a signal: no new blob starts; the ones in flight end at their
            # next read (the stop) or their own error.
            pool.shutdown(wait=True, cancel_futures=True)

    def _copy_blob(self, blob: Blob) -> None:
        self.stop.check()
        if self.dest.has_blob(self.dest_repo, blob.digest):
            self.stats.add("blobs_present")
            return
        if self.same_registry and self.dest.mount_blob(
            self.dest_repo, blob.digest, self.source_repo
        ):
            self.stats.add("blobs_mounted")
            return
        for attempt in range(1, BLOB_ATTEMPTS + 1):
            self.stop.check()
            try:
                with self.source.open_blob(self.source_repo, blob.digest, size=blob.size) as reader:
                    self.dest.push_blob(
                        self.dest_repo, blob.digest, blob.size, _Stoppable(reader, self.stop)
                    )
            except (Interrupted, NotFound, AuthenticationError, AccessDenied):
                raise
            except RegistryError as exc:
                if attempt == BLOB_ATTEMPTS:
                    raise
                self.log(f"copying {blob.digest} broke off ({exc}); starting it over")
                continue
            self.stats.add("blobs_copied", blob.size)
            return

    def copy_manifests(self, nodes: Iterable[Node]) -> None:
        """Put each manifest by its digest, exactly as read, unless it is there already."""
        for node in nodes:
            self.stop.check()
            if self.dest.head_manifest(self.dest_repo, node.digest) is not None:
                continue
            self.dest.put_manifest(self.dest_repo, node.digest, node.raw, node.media_type)
            self.stats.add("manifests_written")

    def copy_signature(self, tag: str, plan: CopyPlan) -> bool:
        """A signature, attestation or referrers index (``tag`` in the source) with all it
        references, then its tag; ``False`` when the destination has it already."""
        there = self.dest.head_manifest(self.dest_repo, tag)
        if there is not None and there.digest == plan.digest:
            return False
        self.copy(plan)
        self.dest.put_manifest(self.dest_repo, tag, plan.root.raw, plan.root.media_type)
        return True
