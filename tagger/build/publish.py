"""``imgtag build-push``'s guard: derive, check, lint, claim, build, push, verify, alias.

Does I/O (git, registry, engine) through the modules that own each; the decisions are
small pure functions elsewhere in this package (``labels``, ``aliases``, ``claim``).

**Never overwrite.** Before building, a run puts a claim (``tagger.build.claim``) under a
claim tag derived from the tag, and after the build (which takes longer than the claim's
settle time) it checks the claim is still its own; whoever wrote last owns the tag, every
other run exits 3. The claim is deleted by its own unique digest afterwards (never
touching another tag). On a registry that cannot delete (Distribution
without ``storage.delete.enabled``, Docker Hub, ...) claims would pile up, so there
imgtag falls back to re-checking right before the push and re-verifying after a settle
time as long as the push itself took. Either way, step 6 verifies the tag holds the
digest just pushed, else exit 3 "overwrite detected".
"""

from __future__ import annotations

import contextlib
import math
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tagger.build.aliases import moving_aliases
from tagger.build.claim import (
    CLAIM_SETTLE_SECONDS,
    DEFAULT_LEASE_SECONDS,
    claim_age,
    claim_tag,
    lease_seconds,
)
from tagger.build.labels import REVISION_LABEL, github_source, oci_labels, public_url
from tagger.build.lease import ClaimHold
from tagger.errors import (
    AccessDenied,
    AuthenticationError,
    DirtyTreeError,
    EngineError,
    NotFound,
    OverwriteDetected,
    PolicyError,
    RefusedError,
    RegistryError,
    RegistryUnreachable,
    TagExistsError,
    UsageError,
)
from tagger.lint.settings import LintSettings
from tagger.registry.reference import Reference
from tagger.version.bump import Derivation
from tagger.version.grammar import ImageVersion
from tagger.version.next import NEXT_DEFAULTS, NextOptions


@dataclass(frozen=True)
class BuildPushOptions:
    image: str
    next: NextOptions
    context: str = "."
    file: str | None = None
    build_args: Sequence[str] = ()
    target: str | None = None
    labels: Sequence[str] = ()
    aliases: Sequence[str] = ()
    squash: bool = False
    lint: bool = True
    lint_policy: LintSettings = field(default_factory=LintSettings)
    on_exists: str = "fail"
    allow_dirty: bool = False
    dry_run: bool = False
    claim_lease: float = DEFAULT_LEASE_SECONDS

    @classmethod
    def resolve(
        cls,
        image: str,
        given: Mapping[str, Any],
        *,
        dry_run: bool = False,
        env: Mapping[str, str] | None = None,
    ) -> BuildPushOptions:
        """Option > ``IMGTAG_*`` variable > config file > default, for every option.

        ``given`` maps option names (``next``'s included) to the values given, ``None``
        for not given. ``[tool.imgtag.lint]`` applies to the lint step as to ``imgtag lint``.
        """
        import os

        from tagger import config

        nopts = NextOptions.resolve(
            {**{k: given.get(k) for k in NEXT_DEFAULTS if k != "image"}, "image": image}
        )
        own = {k: given.get(k) for k in BUILD_PUSH_DEFAULTS}
        project = config.load(nopts.repo)
        values = project.resolve("", own, dict(BUILD_PUSH_DEFAULTS))
        lease = lease_seconds(
            os.environ if env is None else env, project.sections.get("", {}).get("claim_lease")
        )
        return cls(
            image=image,
            next=nopts,
            context=values["context"],
            file=values["file"],
            build_args=tuple(values["build_arg"]),
            target=values["target"],
            labels=tuple(values["label"]),
            aliases=tuple(values["alias"]),
            squash=bool(values["squash"]),
            lint=bool(values["lint"]),
            lint_policy=LintSettings.resolve({}, nopts.repo),
            on_exists=str(values["on_exists"]),
            allow_dirty=bool(values["allow_dirty"]),
            dry_run=dry_run,
            claim_lease=lease,
        )


#: build-push's own defaults, by option name (config keys are the same).
BUILD_PUSH_DEFAULTS: Mapping[str, Any] = {
    "context": ".",
    "file": None,
    "build_arg": [],
    "target": None,
    "label": [],
    "alias": [],
    "squash": False,
    "lint": True,
    "on_exists": "fail",
    "allow_dirty": False,
}


@dataclass
class BuildPushResult:
    image: str
    tag: str
    digest: str | None
    aliases: list[str] = field(default_factory=list)
    pushed: bool = False
    lint: str = "skipped"
    lint_findings: dict[str, int] = field(default_factory=dict)
    squashed: dict[str, Any] | None = None
    derivation: Derivation | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "tag": self.tag,
            "digest": self.digest,
            "aliases": self.aliases,
            "pushed": self.pushed,
            "lint": self.lint,
            "lint_findings": self.lint_findings,
            "squash": self.squashed,
        }


def parse_key_values(items: Sequence[str], what: str) -> dict[str, str]:
    """``K=V`` strings to a dict; a missing ``=`` is a usage error.

    >>> parse_key_values(["A=1", "B=x=y"], "--build-arg")
    {'A': '1', 'B': 'x=y'}
    """
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"{what} {item!r} is not KEY=VALUE")
        out[key] = value
    return out


# -- the executor -----------------------------------------------------------------------


class Publisher:
    """Runs build-push's steps against a registry client and an engine.

    1. derive the tag, refusing a dirty tree; 2. check the tag is absent; 3. lint;
    4. claim, then build (and squash); 5. confirm the claim and push; 6. verify the
    digest; 7. move the aliases.
    """

    def __init__(
        self,
        options: BuildPushOptions,
        *,
        derive: Callable[[], Derivation],
        client: Any,
        engine: Any,
        auth_config: Callable[[], Mapping[str, str] | None],
        remote_url: Callable[[], str | None],
        log: Callable[[str], None],
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.o = options
        self.ref = Reference.parse_repository(options.image)
        self._derive = derive
        self.client = client
        self.engine = engine
        self._auth_config = auth_config
        self._remote_url = remote_url
        self.log = log
        self.now = now
        self.sleep = sleep

    def run(self) -> BuildPushResult:
        o, ref = self.o, self.ref
        build_args = parse_key_values(o.build_args, "--build-arg")
        extra_labels = parse_key_values(o.labels, "--label")
        # 1. derive; a dirty tree would make the revision label lie.
        d = self._derive()
        result = BuildPushResult(str(ref), d.tag, None, derivation=d)
        if d.dirty and not o.allow_dirty:
            raise DirtyTreeError(
                f"the work tree has uncommitted changes, so {ref}:{d.tag} would be labelled "
                f"with commit {d.short_commit} without being it: commit them, or pass "
                "--allow-dirty"
            )
        version = d.image_version
        # 2. existence check (every manifest type in Accept: see registry facts).
        existing = self.client.head_manifest(ref.repository, d.tag)
        if existing is not None:
            return self._exists(result, existing.digest, d)
        # 3. lint: findings at the bar (error by default) stop here, before any claim.
        if o.lint:
            self._lint(result)
        if o.dry_run:
            self.log(f"dry run: would build and push {ref}:{d.tag}")
            return result
        claim = self._claim(d.tag)
        claimed_at = time.monotonic()
        local = f"{ref.registry}/{ref.repository}"
        try:
            # 4. build with the OCI labels (the user's --label wins on purpose).
            labels = {
                **oci_labels(d, ref, public_url(self._remote_url()), self.now()),
                **extra_labels,
            }
            self.log(f"building {local}:{d.tag}")
            dockerfile = self._dockerfile()
            # A name of this run's own: another job on the same engine building the same
            # tag must not be able to swap the image between our build and our push.
            build_name = f"imgtag-build-{secrets.token_hex(6)}"
            built = self.engine.build(
                context=o.context,
                dockerfile=dockerfile,
                tag=f"{local}:{build_name}",
                buildargs=build_args,
                target=o.target,
                labels=labels,
                progress=self.log,
            )
            if o.squash:
                built = self._squash(result, f"{local}:{build_name}", build_args)
            if claim is not None:
                self._confirm_claim(d.tag, claim, claimed_at)
            # Right before the push: whoever got here first published while we built.
            again = self.client.head_manifest(ref.repository, d.tag)
            if again is not None:
                raise TagExistsError(
                    f"{ref}:{d.tag} appeared while building (digest {again.digest}): another "
                    "run published it; nothing was pushed"
                )
            # 5. push, with progress; errors inside the stream are errors.
            started = time.monotonic()
            digest = self._push(local, d.tag, built.image_id)
            self.engine.untag(f"{local}:{build_name}")
            pushed_for = time.monotonic() - started
            # 6. verify: the tag holds what we pushed, else someone overwrote it.
            self._verify(d.tag, digest)
            if claim is None:
                # No claim: a contender may still be pushing. Give it as long as we took.
                self.sleep(min(30.0, max(1.0, pushed_for)))
                self._verify(d.tag, digest)
        finally:
            if claim is not None:
                self._release(claim)
        result.digest, result.pushed = digest, True
        # 7. aliases, only now.
        result.aliases = self._move_aliases(version, digest)
        return result

    # -- steps ---------------------------------------------------------------------------

    def _dockerfile(self) -> str | None:
        if self.o.file is None:
            return None
        path = Path(self.o.file)
        if not path.is_file():
            raise UsageError(f"--file {self.o.file}: no such Dockerfile")
        return str(path.resolve())

    def _dockerfile_path(self) -> Path:
        return Path(self.o.file) if self.o.file else Path(self.o.context) / "Dockerfile"

    def _lint(self, result: BuildPushResult) -> None:
        from tagger.lint import lint_paths

        path = self._dockerfile_path()
        policy = self.o.lint_policy
        report = lint_paths([path], ignore=policy.ignore, hadolint=policy.hadolint)
        for finding in report.findings:
            self.log(
                f"lint: {finding.file}:{finding.line}: {finding.severity.value} "
                f"{finding.rule} {finding.message}"
            )
        result.lint_findings = report.counts()
        stopping = report.at_or_above(policy.bar)
        if stopping:
            result.lint = "failed"
            first = stopping[0]
            raise PolicyError(
                f"lint found {len(stopping)} finding(s) at or above {policy.fail_on} in "
                f"{path} (first: {first.rule} at line {first.line}: {first.message}); "
                "nothing was built: fix them, ignore them with '# imgtag ignore=ID', "
                "or pass --no-lint"
            )
        result.lint = "passed"

    def _squash(self, result: BuildPushResult, name: str, build_args: Mapping[str, str]) -> Any:
        """Squash the image's own layers above the Dockerfile's FROM image (if the engine
        has it; else the shared-prefix rule of ``tagger.image.base``)."""
        from tagger.engine import BuildResult
        from tagger.image.squash import squash_image
        from tagger.lint import final_base_image

        try:
            known_base = final_base_image(self._dockerfile_path(), build_args, self.o.target)
        except UsageError:
            known_base = None  # the build read it fine; fall back to the shared-prefix rule
        squashed = squash_image(self.engine, name, known_base=known_base, progress=self.log)
        if squashed.changed and squashed.old_id:
            self.engine.untag(squashed.old_id)  # the unsquashed image, now nameless
        result.squashed = squashed.as_dict()
        return BuildResult(squashed.id)

    def _exists(self, result: BuildPushResult, digest: str, d: Derivation) -> BuildPushResult:
        where = f"{self.ref}:{d.tag}"
        if self.o.on_exists == "skip":
            config = self.client.image_config(self.ref.repository, d.tag)
            labels = (config.get("config") or {}).get("Labels") or {}
            revision = labels.get(REVISION_LABEL) if isinstance(labels, dict) else None
            if revision == d.commit:
                self.log(f"{where} exists ({digest}) and was built from {d.short_commit}: skipped")
                result.digest = digest
                return result
            shown = revision[:12] if isinstance(revision, str) else "no revision label"
            raise TagExistsError(
                f"{where} exists ({digest}) but was built from {shown}, not "
                f"{d.short_commit}: imgtag never overwrites a tag"
            )
        raise TagExistsError(
            f"{where} already exists ({digest}): imgtag never overwrites a tag; bump the "
            "build number, or pass --on-exists skip to accept the same commit's image"
        )

    def _claim(self, tag: str) -> ClaimHold | None:
        """Put our claim under the claim tag; ``None`` where claims cannot be cleaned up."""
        repo = self.ref.repository
        ctag = claim_tag(tag)
        if not self.client.can_delete(repo):
            self.log("claim: this registry cannot delete manifests; re-verifying after the push")
            return None
        lease = self.o.claim_lease
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
        hold = ClaimHold(self.client, repo, ctag, tag, lease=lease, now=self.now, log=self.log)
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

    def _confirm_claim(self, tag: str, hold: ClaimHold, claimed_at: float) -> None:
        waited = time.monotonic() - claimed_at
        if waited < CLAIM_SETTLE_SECONDS:
            self.sleep(CLAIM_SETTLE_SECONDS - waited)
        if not hold.confirm():
            raise RefusedError(
                f"another imgtag run claimed {self.ref}:{tag} at the same time and won: "
                "nothing was pushed"
            )

    def _release(self, hold: ClaimHold) -> None:
        hold.release()

    def _push(self, local: str, tag: str, image_id: str) -> str:
        """Name the image we built ``local:tag`` and push it; check the registry got *that*
        image (its config digest is the engine's image ID), once more if another job on the
        engine re-tagged the name in the moment between."""
        for _attempt in range(2):
            self.engine.tag(image_id, local, tag)
            digest: str = self.engine.push(local, tag, self._auth_config(), progress=self.log)
            if self._config_digest(digest) == image_id:
                return digest
            self.log(f"{local}:{tag} was re-tagged on the engine during the push; pushing again")
        raise EngineError(
            f"another job on this Docker engine keeps re-tagging {local}:{tag} while imgtag "
            "pushes it: run one build of a tag at a time per engine"
        )

    def _config_digest(self, digest: str) -> str | None:
        config = self.client.get_manifest(self.ref.repository, digest).json().get("config")
        value = config.get("digest") if isinstance(config, dict) else None
        return value if isinstance(value, str) else None

    def _verify(self, tag: str, digest: str) -> None:
        now = self.client.head_manifest(self.ref.repository, tag)
        if now is None or now.digest != digest:
            found = now.digest if now is not None else "nothing"
            raise OverwriteDetected(
                f"overwrite detected: {self.ref}:{tag} should hold {digest} just pushed, but "
                f"holds {found}: another run published the same tag"
            )

    def _move_aliases(self, version: ImageVersion, digest: str) -> list[str]:
        if not self.o.aliases:
            return []
        repo = self.ref.repository
        move, hold = moving_aliases(self.o.aliases, version, self.client.list_tags(repo))
        for alias in hold:
            self.log(f"alias {alias}: not moved, {version} is not the highest release")
        if not move:
            return []
        manifest = self.client.get_manifest(repo, digest)
        for alias in move:
            self.client.put_manifest(repo, alias, manifest.raw, manifest.media_type)
            self.log(f"alias {alias} -> {digest}")
        return move


def write_outputs(result: BuildPushResult, env_file: str | None, env: Mapping[str, str]) -> None:
    """``$GITHUB_OUTPUT`` (``image=``, ``tag=``, ``digest=``) and ``--env-file`` dotenv."""
    from tagger.output import to_dotenv

    data = {k: v for k, v in result.as_dict().items() if k in ("image", "tag", "digest")}
    if gh := env.get("GITHUB_OUTPUT"):
        with open(gh, "a", encoding="utf-8") as fh:
            for key, value in data.items():
                fh.write(f"{key}={value or ''}\n")
    if env_file:
        payload = {**data, "aliases": ",".join(result.aliases), "pushed": result.pushed}
        Path(env_file).write_text(to_dotenv(payload), encoding="utf-8")


# -- wiring -----------------------------------------------------------------------------


def publish(
    options: BuildPushOptions,
    env: Mapping[str, str],
    *,
    insecure: Sequence[str] = (),
    ca_file: str | None = None,
) -> BuildPushResult:
    """Build the real collaborators (registry client, engine) and run the publisher."""
    if not options.dry_run:
        # The docker SDK takes ~0.2-0.3 s to import; git, the existence check and the claim
        # mostly wait on I/O, so let the import run beside them instead of after them.
        import threading

        threading.Thread(target=_preload_docker, name="imgtag-preload", daemon=True).start()
    from tagger.engine import Engine, stderr_progress
    from tagger.registry.client import open_client
    from tagger.version.git import remote_url
    from tagger.version.next import derive

    ref = Reference.parse_repository(options.image)
    from tagger import config

    # Claims delete through the registry's provider (ghcr: the GitHub API; Hub: its API).
    configured = config.load(options.next.repo).sections.get("", {}).get("provider")
    client, credentials = open_client(
        ref, env, insecure=insecure, ca_file=ca_file, configured_provider=configured
    )

    def auth_config() -> Mapping[str, str] | None:
        creds = credentials()
        if creds is None:
            return None
        return {**creds.auth_config(), "serveraddress": ref.registry}

    def source() -> str | None:
        return github_source(env) or remote_url(options.next.repo)

    publisher = Publisher(
        options,
        derive=lambda: derive(
            options.next,
            env,
            datetime.now(UTC),
            registry_tags=lambda _: client.list_tags(ref.repository),
        ),
        client=client,
        engine=Engine(env),
        auth_config=auth_config,
        remote_url=source,
        log=stderr_progress,
    )
    return publisher.run()


def _preload_docker() -> None:
    with contextlib.suppress(Exception):  # the real import later reports any problem
        import docker  # noqa: F401
