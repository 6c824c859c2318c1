"""Holding a claim while a run lives: take it, renew it, check it, give it back. Does I/O.

The claim's grammar (names, manifests, ages) is ``tagger.registry.markers``'s; this module
talks to the registry through the client. Renewal runs in a daemon thread every third of
a lease. Before each renewal the claim tag is read back: if another run's claim stands
there now (it took ours over as stale, or won a race), the hold is *lost* and is never
written again, so a run that stalled past its lease cannot steal the tag back; the
publisher checks :meth:`ClaimHold.confirm` right before it pushes.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from datetime import datetime

from tagger.errors import RegistryError
from tagger.registry.manifests import sha256_digest
from tagger.registry.markers import claim_manifest
from tagger.registry.mediatypes import EMPTY_CONFIG, OCI_MANIFEST
from tagger.registry.protocols import Registry


class ClaimHold:
    """A claim this run wrote under ``ctag``, with its renewal thread."""

    def __init__(
        self,
        client: Registry,
        repository: str,
        ctag: str,
        tag: str,
        *,
        lease: float,
        now: Callable[[], datetime],
        log: Callable[[str], None],
        run: str | None = None,
    ) -> None:
        self.client, self.repository, self.ctag, self.tag = client, repository, ctag, tag
        self.run = run
        self.lease, self._now, self._log = lease, now, log
        self.nonce = secrets.token_hex(16)
        self.created = now()
        self.raw = claim_manifest(tag, self.nonce, self.created, run=run)
        self.digest = sha256_digest(self.raw)
        self.lost = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- writing -------------------------------------------------------------------------

    def write(self) -> str:
        """PUT the claim (its config blob first); returns the digest the registry holds."""
        self.client.upload_blob(self.repository, EMPTY_CONFIG)
        return str(self.client.put_manifest(self.repository, self.ctag, self.raw, OCI_MANIFEST))

    def start_renewing(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._renew_loop, name="imgtag-claim-lease", daemon=True
            )
            self._thread.start()

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.lease / 3):
            try:
                self.renew()
            except RegistryError as exc:
                # A missed renewal is not fatal: the next one, a third of a lease later,
                # still lands inside the lease.
                self._log(f"claim: renewal of {self.ctag} failed ({exc}); retrying")
            if self.lost:
                return

    def renew(self) -> None:
        """Write the claim again with a new ``renewed`` time, unless it was lost."""
        with self._lock:
            if self.lost or self._stop.is_set():
                return
            current = self.client.head_manifest(self.repository, self.ctag)
            if current is None or current.digest != self.digest:
                self.lost = True
                self._log(f"claim: {self.ctag} is no longer ours; this run will not publish")
                return
            raw = claim_manifest(self.tag, self.nonce, self.created, self._now(), self.run)
            self.client.put_manifest(self.repository, self.ctag, raw, OCI_MANIFEST)
            self.raw, self.digest = raw, sha256_digest(raw)

    # -- checking and giving back --------------------------------------------------------

    def confirm(self) -> bool:
        """Whether the claim tag still holds this run's claim (read from the registry)."""
        with self._lock:
            if self.lost:
                return False
            current = self.client.head_manifest(self.repository, self.ctag)
            return current is not None and current.digest == self.digest

    def release(self) -> None:
        """Stop renewing and delete the claim by its own digest (never another tag).

        Nothing to delete when the hold was lost: the claim there is another run's."""
        self._stop.set()
        with self._lock:
            if self.lost:
                return
            digest = self.digest
        try:
            self.client.delete_manifest(self.repository, digest)
        except RegistryError as exc:
            self._log(f"claim: could not remove {self.ctag} ({exc}); it expires by itself")
