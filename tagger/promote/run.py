"""``imgtag promote``'s executor: read the source once, then for each destination the
guard of build-push (``tagger.build.guard``) around a verbatim copy. Does I/O: the
registries, through the clients it is handed (``promote()`` opens the real ones).

Per destination: the tag there already holds the source's digest → ``exists`` (what a
killed run may have left undone, signatures and aliases, is finished); another digest →
``refused`` (exit 3 naming both, the other destinations still done); else claim, copy
(blobs, children, signatures: the claim's settle time runs meanwhile), confirm the claim,
check the tag is still absent, write the tag (shielded from signals: once begun it is
finished and verified), verify, release the claim, move the aliases. A failure midway
(exit 5) leaves the tag unwritten: every blob and manifest copied so far is addressed by
digest only, and a run again skips them and finishes.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from tagger.build.aliases import tag_version
from tagger.build.guard import TagGuard
from tagger.errors import NotFound, RefusedError, UsageError
from tagger.lifecycle import Stop
from tagger.promote.copy import Copier, read_tree
from tagger.promote.plan import (
    CopyPlan,
    DestinationResult,
    PromoteResult,
    Target,
    parse_destination,
    parse_source,
    same_place,
    signature_tags,
)
from tagger.registry.markers import DEFAULT_LEASE_SECONDS, run_id
from tagger.registry.protocols import Registry
from tagger.registry.reference import Reference


@dataclass(frozen=True, slots=True)
class PromoteOptions:
    source: str
    destinations: tuple[str, ...]
    aliases: tuple[str, ...] = ()
    with_signatures: bool = True
    platforms: tuple[str, ...] = ()
    dry_run: bool = False
    concurrency: int = 4
    claim_lease: float = DEFAULT_LEASE_SECONDS


class PromoteRefused(RefusedError):
    """Exit 3: a destination holds another digest (or another run won it); ``result``
    says what happened at every destination."""

    def __init__(self, message: str, result: PromoteResult) -> None:
        super().__init__(message)
        self.result = result


def check_options(o: PromoteOptions) -> None:
    """Bad input, before any registry is asked (exit 2)."""
    if o.platforms:
        raise UsageError(
            f"--platform {','.join(o.platforms)}: promote copies the whole image, digest for "
            "digest; a subset of its platforms is another image with another digest (build "
            "it, or promote the whole index)"
        )
    if not o.destinations:
        raise UsageError("promote needs at least one DEST (IMAGE:TAG)")
    if not 1 <= o.concurrency <= 64:
        raise UsageError(f"--concurrency {o.concurrency}: give a number from 1 to 64")


class Promoter:
    """Runs one promote: ``client_for`` gives the registry of a reference (one per host)."""

    def __init__(
        self,
        options: PromoteOptions,
        *,
        client_for: Callable[[Reference], Registry],
        log: Callable[[str], None],
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        stop: Stop | None = None,
    ) -> None:
        self.o = options
        self.client_for = client_for
        self.log, self.now, self.sleep, self.monotonic = log, now, sleep, monotonic
        self.stop = stop if stop is not None else Stop(raising=False)
        self.run_id = run_id(now(), secrets.token_hex(6))

    def run(self) -> PromoteResult:
        o = self.o
        check_options(o)
        source = parse_source(o.source)
        targets = [parse_destination(text, source) for text in o.destinations]
        for alias in o.aliases:
            Reference.parse(f"{source.name}:{alias}")  # a tag's grammar, or exit 2
        src = self.client_for(source)
        ref = source.digest or source.tag
        assert ref is not None
        # The digest first (one HEAD): each destination's claim is taken before the tree
        # is read, so the claim's settle time runs while the source is read and copied.
        info = src.head_manifest(source.repository, ref)
        if info is None:
            raise NotFound(
                f"the source {source} does not exist: check the name and the tag or digest"
            )
        self._source, self._src, self._digest = source, src, info.digest
        self._plan: CopyPlan | None = None
        self._sigs: list[tuple[str, CopyPlan]] | None = None
        result = PromoteResult(str(source), info.digest, dry_run=o.dry_run)
        for target in targets:
            result.destinations.append(self._one(source, src, target))
        refused = result.refused
        if refused:
            first = refused[0]
            raise PromoteRefused(
                f"{first.image}:{first.tag} already holds {first.found}, not {info.digest} "
                f"from {source}: imgtag never overwrites a tag"
                + (f" ({len(refused)} destinations refused)" if len(refused) > 1 else ""),
                result,
            )
        return result

    def plan(self) -> CopyPlan:
        """The source's whole tree, read once (by its digest: the tag may move meanwhile)."""
        if self._plan is None:
            try:
                plan = read_tree(self._src, self._source.repository, self._digest)
            except NotFound:
                raise NotFound(
                    f"the source {self._source} is gone ({self._digest} was removed while "
                    "imgtag read it)"
                ) from None
            self._plan = plan
        return self._plan

    def signatures(self) -> list[tuple[str, CopyPlan]]:
        if self._sigs is None:
            self._sigs = (
                self._signatures(self._src, self._source, self.plan())
                if self.o.with_signatures
                else []
            )
        return self._sigs

    def _signatures(
        self, src: Registry, source: Reference, plan: CopyPlan
    ) -> list[tuple[str, CopyPlan]]:
        """Every signature, attestation and referrers index of the copied digests, as
        trees of their own (their digests unchanged)."""
        tags = signature_tags(plan.digests, src.list_tags(source.repository))
        out = []
        for tag in tags:
            try:
                out.append((tag, read_tree(src, source.repository, tag)))
            except NotFound:
                continue  # removed since the listing
        return out

    def _one(self, source: Reference, src: Registry, target: Target) -> DestinationResult:
        row = DestinationResult(target.image, target.tag, "copied")
        digest = self._digest
        if same_place(source, target):
            self.log(f"{target} is the source itself: nothing to do")
            row.status = "exists"
            return row
        dest = self.client_for(target.ref)
        guard = TagGuard(
            dest,
            target.ref,
            target.tag,
            lease=self.o.claim_lease,
            run=self.run_id,
            now=self.now,
            monotonic=self.monotonic,
            sleep=self.sleep,
            log=self.log,
        )
        copier = Copier(
            src,
            source.repository,
            dest,
            target.ref.repository,
            same_registry=source.registry == target.ref.registry,
            concurrency=self.o.concurrency,
            stop=self.stop,
            log=self.log,
        )
        existing = guard.existing()
        if existing is not None and existing.digest != digest:
            self.log(f"{target} holds {existing.digest}, not {digest}: refused")
            row.status, row.found = "refused", existing.digest
            return row
        if self.o.dry_run:
            if existing is not None:
                row.status = "exists"
            else:
                blobs = self.plan().blobs
                missing = [b for b in blobs if not dest.has_blob(copier.dest_repo, b.digest)]
                row.blobs_copied = len(missing)
                row.bytes_copied = sum(b.size for b in missing)
                self.log(f"dry run: would copy {digest} to {target}")
            return row
        if existing is not None:
            # There already: finish what a run that stopped after its final write left.
            row.status = "exists"
            row.signatures = self._copy_signatures(copier, self.signatures())
            row.aliases = guard.move_aliases(self.o.aliases, tag_version(target.tag), digest)
            return row
        self._copy_under_guard(guard, copier, row)
        row.aliases = guard.move_aliases(self.o.aliases, tag_version(target.tag), digest)
        return row

    def _copy_signatures(
        self, copier: Copier, signatures: Sequence[tuple[str, CopyPlan]]
    ) -> list[str]:
        written = []
        for tag, sig in signatures:
            if copier.copy_signature(tag, sig):
                written.append(tag)
        return written

    def _copy_under_guard(self, guard: TagGuard, copier: Copier, row: DestinationResult) -> None:
        with self.stop.shielded():
            hold = guard.claim()
        tail = contextlib.ExitStack()
        try:
            try:
                self.stop.check()
                # The claim's settle time runs while the source is read and copied.
                plan = self.plan()
                self.log(f"copying {plan.digest} to {guard.where}")
                copier.copy(plan)
                # Signatures before the tag: the tag never stands unsigned.
                row.signatures = self._copy_signatures(copier, self.signatures())
                if hold is not None:
                    guard.confirm("nothing was tagged")
                else:
                    tail.enter_context(guard.turns())
                guard.recheck("while copying", "nothing was tagged")
                self.stop.check()
                # The final write: once begun, finished, verified and reported.
                tail.enter_context(self.stop.shielded())
                started = self.monotonic()
                guard.client.put_manifest(
                    guard.repository, guard.tag, plan.root.raw, plan.root.media_type
                )
                guard.verify(plan.digest, what="just copied")
                guard.settle(plan.digest, self.monotonic() - started, what="just copied")
            finally:
                guard.release()
        finally:
            tail.close()
        stats = copier.stats
        row.blobs_copied, row.blobs_mounted = stats.blobs_copied, stats.blobs_mounted
        row.bytes_copied = stats.bytes_copied
        self.log(
            f"{guard.where}: {stats.blobs_copied} blobs copied ({stats.bytes_copied} bytes), "
            f"{stats.blobs_mounted} mounted, {stats.blobs_present} there already"
        )


def promote(
    options: PromoteOptions,
    env: Mapping[str, str],
    *,
    insecure: Sequence[str] = (),
    ca_file: str | None = None,
    provider: str | None = None,
    stop: Stop | None = None,
    log: Callable[[str], None] | None = None,
) -> PromoteResult:
    """Open a client per registry (credentials as the docker CLI finds them, the provider
    by host or ``--provider``) and run a :class:`Promoter`."""
    from tagger.progress import log as stderr_log
    from tagger.registry.connect import open_client

    clients: dict[str, Registry] = {}

    def client_for(ref: Reference) -> Registry:
        if ref.registry not in clients:
            clients[ref.registry], _ = open_client(
                ref,
                env,
                insecure=insecure,
                ca_file=ca_file,
                provider=provider,
                concurrency=options.concurrency * 2,
            )
        return clients[ref.registry]

    return Promoter(options, client_for=client_for, log=log or stderr_log, stop=stop).run()
