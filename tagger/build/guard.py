"""The never-overwrite guard of one destination tag, shared by build-push and promote.
Does I/O: the registry, through the :class:`~tagger.registry.protocols.Registry` it is handed.

Whoever writes a tag (``tagger.build.publish``'s ``Publisher`` after a build,
``tagger.promote`` after a copy) goes through the same steps here:

1. :meth:`TagGuard.existing`: the tag is absent (every manifest type in ``Accept``).
2. :meth:`TagGuard.claim`: put this run's claim under the claim tag (a
   :class:`~tagger.build.lease.ClaimHold`, renewed while the run lives), taking over a
   stale one, refusing a live one (exit 3). Where the registry cannot delete, no claim:
   ``hold`` stays ``None`` and the fallback below applies. Where the registry keeps the
   repository's tags immutable (``immutable_tags``), no claim either: its refusal guards.
3. The work (a build, a copy) runs meanwhile; the claim's settle time overlaps it.
4. :meth:`TagGuard.confirm`: the claim is still ours after at least
   ``CLAIM_SETTLE_SECONDS`` (else exit 3, nothing written); without a claim, runs of this
   tag on this machine take turns (:func:`host_lock`). Then :meth:`TagGuard.recheck`: the
   tag is still absent right before the final write.
5. The final write (the caller's), then :meth:`TagGuard.verify`: the tag holds the digest
   just written, else exit 3 "overwrite detected"; without a claim, verified again after
   a settle as long as the write took (:meth:`TagGuard.settle`).
6. :meth:`TagGuard.release`: the claim deleted by its own digest.
7. :meth:`TagGuard.move_aliases`: floating tags, only after the verify, by the rules of
   ``tagger.build.aliases``.

Time is read through the callables it is handed (``now``, ``monotonic``, ``sleep``), so
the unit tests run it on a clock that moves only when told.
"""

from __future__ import annotations

import contextlib
import math
import os
import secrets
import tempfile
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime

from tagger.build.aliases import moving_aliases
from tagger.build.lease import ClaimHold
from tagger.errors import (
    AccessDenied,
    AuthenticationError,
    ImmutableTag,
    NotFound,
    OverwriteDetected,
    RefusedError,
    RegistryError,
    RegistryUnreachable,
    TagExistsError,
)
from tagger.registry.manifests import ManifestInfo
from tagger.registry.markers import CLAIM_SETTLE_SECONDS, claim_age, claim_tag
from tagger.registry.protocols import Registry
from tagger.registry.reference import Reference
from tagger.version.grammar import ImageVersion


class TagGuard:
    """The guard of ``ref:tag`` for one run (``run`` names its claim)."""

    def __init__(
        self,
        client: Registry,
        ref: Reference,
        tag: str,
        *,
        lease: float,
        run: str,
        now: Callable[[], datetime],
        monotonic: Callable[[], float],
        sleep: Callable[[float], None],
        log: Callable[[str], None],
    ) -> None:
        self.client, self.ref, self.tag = client, ref, tag
        self.repository = ref.repository
        self.lease, self.run = lease, run
        self.now, self.monotonic, self.sleep, self.log = now, monotonic, sleep, log
        self.hold: ClaimHold | None = None
        # The registry's word that the repository's tags are immutable server-side (ECR,
        # Artifact Registry): then no claim, and the registry's refusal is the guard.
        self.immutable: str | None = None
        self.claimed = False  # claim() ran (with or without a hold)
        self.claimed_at = 0.0

    @property
    def where(self) -> str:
        return f"{self.ref}:{self.tag}"

    # -- 1. the existence check ----------------------------------------------------------

    def existing(self) -> ManifestInfo | None:
        return self.client.head_manifest(self.repository, self.tag)

    # -- 2. the claim --------------------------------------------------------------------

    def claim(self) -> ClaimHold | None:
        """Put our claim under the claim tag; ``None`` where claims cannot be cleaned up.
        The caller shields the call from signals (a half-written claim nobody releases)."""
        self.hold = self._claim()
        self.claimed = True
        self.claimed_at = self.monotonic()
        return self.hold

    def _claim(self) -> ClaimHold | None:
        repo, tag = self.repository, self.tag
        ctag = claim_tag(tag)
        immutable = self.immutable = self.client.immutable_tags(repo)
        if immutable is not None:
            self.log(f"claim: none, {immutable}: the registry's refusal guards the tag")
            return None
        if not self.client.can_delete(repo):
            self.log("claim: this registry cannot delete manifests; re-verifying after the push")
            return None
        lease = self.lease
        current = self.client.head_manifest(repo, ctag)
        if current is not None:
            try:
                held = self.client.get_manifest(repo, current.digest).raw
            except NotFound:  # released between the HEAD and the GET: no claim now
                held = b""
            age = claim_age(held, self.now()) if held else None
            if age is not None and age < lease:
                raise RefusedError(
                    f"another imgtag run is publishing {self.ref}:{tag} (its claim {ctag} was "
                    f"renewed {max(0, int(age))} s ago); if that run died, its claim expires "
                    f"in {math.ceil(lease - age)} s: run again then"
                )
            if age is not None:
                self.log(
                    f"claim: taking over {ctag}, not renewed for {int(age)} s (lease {lease:g} s)"
                )
        hold = ClaimHold(
            self.client, repo, ctag, tag, lease=lease, now=self.now, log=self.log, run=self.run
        )
        for attempt in range(3):
            try:
                hold.write()
                hold.start_renewing()
                return hold
            except (RegistryUnreachable, AuthenticationError, AccessDenied):
                raise
            except RegistryError:
                # Distribution answers 500 or DIGEST_INVALID when several clients write one
                # tag (and its blobs) at once. A claim that stands there now settles it:
                # ours (the write took effect after all) or another run's (a lost race).
                other = self.client.head_manifest(repo, ctag)
                if other is not None and other.digest == hold.digest:
                    hold.start_renewing()
                    return hold
                if other is not None:
                    raise RefusedError(
                        f"another imgtag run claimed {self.ref}:{tag} at the same time: "
                        "nothing was pushed"
                    ) from None
                if attempt == 2:
                    raise
                self.sleep(0.1 + secrets.randbelow(200) / 1000)
        raise AssertionError("unreachable")

    # -- 4. before the final write -------------------------------------------------------

    def confirm(self, nothing: str = "nothing was pushed") -> None:
        """Wait out what is left of the settle time (the work since :meth:`claim` counts),
        then check the claim is still ours. Only with a hold."""
        assert self.hold is not None
        waited = self.monotonic() - self.claimed_at
        if waited < CLAIM_SETTLE_SECONDS:
            self.sleep(CLAIM_SETTLE_SECONDS - waited)
        if not self.hold.confirm():
            raise RefusedError(
                f"another imgtag run claimed {self.ref}:{self.tag} at the same time and won: "
                f"{nothing}"
            )

    def turns(self) -> contextlib.AbstractContextManager[None]:
        """Without a claim: publishers of this tag on this machine take turns from the
        last check to the verify (the claim does this across machines where the registry
        can delete)."""
        return host_lock(self.where)

    def recheck(
        self, meanwhile: str = "while building", nothing: str = "nothing was pushed"
    ) -> None:
        """Right before the final write: whoever got here first published meanwhile."""
        again = self.client.head_manifest(self.repository, self.tag)
        if again is not None:
            raise TagExistsError(
                f"{self.where} appeared {meanwhile} (digest {again.digest}): another "
                f"run published it; {nothing}"
            )

    # -- 5. after it ---------------------------------------------------------------------

    def verify(self, digest: str, *, what: str = "just pushed") -> None:
        now = self.client.head_manifest(self.repository, self.tag)
        if now is None or now.digest != digest:
            found = now.digest if now is not None else "nothing"
            raise OverwriteDetected(
                f"overwrite detected: {self.where} should hold {digest} {what}, but "
                f"holds {found}: another run published the same tag"
            )

    def settle(self, digest: str, wrote_for: float, *, what: str = "just pushed") -> None:
        """Without a claim, a contender may still be writing: give it as long as we took,
        then verify again."""
        if self.hold is None and self.immutable is None:
            self.sleep(min(30.0, max(1.0, wrote_for)))
            self.verify(digest, what=what)

    # -- 6. and 7. -----------------------------------------------------------------------

    def release(self) -> None:
        if self.hold is not None:
            self.hold.release()

    def move_aliases(
        self, aliases: Sequence[str], version: ImageVersion | None, digest: str
    ) -> list[str]:
        """Point each alias that may move at ``digest`` (the manifest's own bytes);
        ``version`` ``None`` (a tag outside the grammar) moves only non-release aliases."""
        if not aliases:
            return []
        repo = self.repository
        if version is None:
            from tagger.build.aliases import is_version_alias

            move = [a for a in aliases if not is_version_alias(a)]
            hold = [a for a in aliases if is_version_alias(a)]
            for alias in hold:
                self.log(f"alias {alias}: not moved, {self.tag} is not a release version")
        else:
            move, hold = moving_aliases(aliases, version, self.client.list_tags(repo))
            for alias in hold:
                self.log(f"alias {alias}: not moved, {version} is not the highest release")
        if not move:
            return []
        manifest = self.client.get_manifest(repo, digest)
        moved = []
        for alias in move:
            try:
                self.client.put_manifest(repo, alias, manifest.raw, manifest.media_type)
            except ImmutableTag as exc:
                # The version is published; an alias the registry will not move stays.
                self.log(f"alias {alias}: not moved ({exc})")
                continue
            moved.append(alias)
            self.log(f"alias {alias} -> {digest}")
        return moved


@contextlib.contextmanager
def host_lock(name: str) -> Iterator[None]:
    """An exclusive lock on this machine for ``name`` (a file lock in the temp directory,
    released when the block ends or the process dies)."""
    import fcntl
    import hashlib

    path = os.path.join(
        tempfile.gettempdir(), f"imgtag-{hashlib.sha256(name.encode()).hexdigest()[:16]}.lock"
    )
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:  # another user's lock file: no turns to take with that user's runs
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
