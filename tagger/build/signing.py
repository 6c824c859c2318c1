"""``build-push --sign``: the one module that drives the ``cosign`` binary.

Does I/O: runs cosign through :mod:`tagger.proc` (``cosign public-key`` to check a key
before anything is claimed, ``cosign sign`` on the digest the guard verified). The guard
(``tagger.build.publish``) decides *when* to sign; this module only knows how, and which
signature tags cosign's tag scheme gives a digest (:func:`signature_tag`, pure).

Secrets: ``COSIGN_PASSWORD`` reaches cosign through its environment only and is registered
for redaction as soon as it is read, and so is the key itself where imgtag can see it (an
``env://VAR`` key's value, a key file's lines); every line cosign prints passes through
:func:`tagger.errors.redact` before it reaches the progress log or an error message.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from tagger.build.builders.base import register_value
from tagger.errors import RegistryError, UsageError, redact, register_secret
from tagger.proc import ProgramNotFound, Runner

Progress = Callable[[str], None]

#: The environment variables cosign's ambient OIDC providers read (GitHub Actions with
#: ``id-token: write``, a GitLab ``id_tokens`` entry named SIGSTORE_ID_TOKEN, Buildkite,
#: SPIFFE, Google workload identity). Keyless signing with none of them set cannot get a
#: certificate: imgtag says so before it claims anything.
AMBIENT_OIDC = (
    "ACTIONS_ID_TOKEN_REQUEST_URL",
    "SIGSTORE_ID_TOKEN",
    "BUILDKITE_AGENT_ACCESS_TOKEN",
    "SPIFFE_ENDPOINT_SOCKET",
    "GOOGLE_SERVICE_ACCOUNT_NAME",
)
#: Longest a cosign call may take: a KMS or Fulcio round trip takes seconds; a hung one
#: must not hold the claim (and the final tag) forever.
COSIGN_TIMEOUT_S = 300.0


def signature_tag(digest: str) -> str:
    """The tag cosign writes a digest's signature under.

    >>> signature_tag("sha256:" + "ab" * 32)[:20], signature_tag("sha256:" + "ab" * 32)[-4:]
    ('sha256-ababababababa', '.sig')
    """
    algorithm, _, hex_ = digest.partition(":")
    return f"{algorithm}-{hex_}.sig"


class Signer(Protocol):
    """What the guard needs of a signer (:class:`Cosign`; the unit tests' fake)."""

    def check(self) -> None:
        """Exit 2 (a :class:`UsageError`) unless signing can work; writes nothing."""

    def sign(self, image: str, digest: str, *, recursive: bool, progress: Progress) -> None:
        """Sign ``image@digest``; a :class:`RegistryError` when it cannot be written."""


@dataclass(frozen=True, slots=True)
class SignSettings:
    """What ``--sign`` was given: the key reference (``None``: keyless) and whether the
    signature goes to the transparency log (cosign's default; offline keys turn it off)."""

    key: str | None = None
    tlog: bool = True


class Cosign:
    """Signs digests with the cosign binary.

    ``plain_http`` (the registry is loopback, reached over plain HTTP as imgtag itself
    does) adds ``--allow-http-registry``; ``ca_file`` (``--ca-file``) becomes
    ``--registry-cacert``. cosign finds registry credentials as the docker CLI does
    (``DOCKER_CONFIG``), like imgtag.
    """

    name = "cosign"

    def __init__(
        self,
        settings: SignSettings,
        env: Mapping[str, str],
        *,
        plain_http: bool = False,
        ca_file: str | None = None,
        runner: Runner | None = None,
    ) -> None:
        self.settings = settings
        self._env = dict(env)
        self._plain_http = plain_http
        self._ca_file = ca_file
        password = self._env.get("COSIGN_PASSWORD")
        if password:
            register_secret(password)
        self._register_key()
        self._runner = runner if runner is not None else Runner(env=self._env)
        self._program = self._env.get("IMGTAG_COSIGN") or "cosign"

    def _register_key(self) -> None:
        """Key material imgtag can see is masked in every output (cosign never prints it,
        but an error line may quote what it could not parse)."""
        key = self.settings.key
        if key is None:
            return
        if key.startswith("env://"):
            value = self._env.get(key[len("env://") :])
            if value:
                register_value(value.encode())
            return
        if "://" in key:  # a KMS URI (awskms://, gcpkms://, hashivault://, k8s://...)
            return
        try:
            with open(os.path.expanduser(key), "rb") as fh:
                register_value(fh.read(64 * 1024))
        except OSError:
            pass  # cosign public-key says what is wrong with it

    # -- before any claim ------------------------------------------------------------------

    def check(self) -> None:
        """Exit 2 unless signing can work: cosign is installed, and the key can be read
        and decrypted (``cosign public-key --key``), or, keyless, an OIDC token source
        is there."""
        key = self.settings.key
        if key is None:
            if (why := self._call(["version"])) is not None:
                raise UsageError(f"--sign: cosign does not run here: {why}")
            if not any(self._env.get(name) for name in AMBIENT_OIDC):
                raise UsageError(
                    "--sign without --sign-key signs keyless, which needs the CI's OIDC token "
                    "and none is here (GitHub: permissions id-token: write; GitLab: an "
                    "id_tokens entry SIGSTORE_ID_TOKEN with aud sigstore): grant it, or pass "
                    "--sign-key"
                )
            return
        if not key.strip():
            raise UsageError("--sign-key is empty: give a key file, env://VAR or a KMS URI")
        # public-key reads and decrypts the key as sign will, and writes nothing anywhere;
        # its output (the public key) is not shown.
        if (why := self._call(["public-key", "--key", key])) is not None:
            raise UsageError(
                f"--sign-key {key}: cosign cannot use this key ({why}): check the key "
                "reference and COSIGN_PASSWORD"
            )

    # -- after the verify, before the final tag --------------------------------------------

    def sign(self, image: str, digest: str, *, recursive: bool, progress: Progress) -> None:
        """Sign ``image@digest`` (``--recursive``: an index and each manifest in it).
        A signature that cannot be written is a :class:`RegistryError` (exit 5)."""
        argv = ["sign", "--yes"]
        if self.settings.key is not None:
            argv += ["--key", self.settings.key]
        if not self.settings.tlog:
            argv.append("--tlog-upload=false")
        if recursive:
            argv.append("--recursive")
        argv += self._registry_flags()
        argv.append(f"{image}@{digest}")
        if (why := self._call(argv, progress)) is not None:
            raise RegistryError(
                f"cosign could not sign {image}@{digest} ({why}): the final tag was not "
                "written; fix the registry's access and run again"
            )

    def _registry_flags(self) -> list[str]:
        flags = []
        if self._plain_http:
            flags.append("--allow-http-registry")
        if self._ca_file:
            flags += ["--registry-cacert", self._ca_file]
        return flags

    def _call(self, args: Sequence[str], progress: Progress | None = None) -> str | None:
        """Run cosign; ``None`` when it succeeded, else its error (redacted, one line)."""
        try:
            result = self._runner.run([self._program, *args], timeout=COSIGN_TIMEOUT_S)
        except ProgramNotFound:
            raise UsageError(
                "--sign needs cosign on PATH (GitHub: sigstore/cosign-installer; Debian: "
                "apt-get install cosign; or set IMGTAG_COSIGN to its path)"
            ) from None
        except subprocess.TimeoutExpired:
            return f"cosign did not finish within {COSIGN_TIMEOUT_S:g} s"
        lines = [line.strip() for line in (result.stderr + "\n" + result.stdout).splitlines()]
        lines = [line for line in lines if line]
        if progress is not None:
            for line in lines:
                progress(f"cosign: {redact(line)}")
        if result.ok:
            return None
        errors = [line for line in lines if line.lower().startswith("error")]
        first = (errors or lines or ["no output"])[0]
        first = first.removeprefix("Error: ").removeprefix("error during command execution: ")
        return redact(first)[:400]
