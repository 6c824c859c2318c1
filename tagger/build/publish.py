"""``imgtag build-push``'s guard: derive, check, lint, claim, build, push, verify, alias.

Does I/O (git, registry, a builder) through the collaborators it is handed
(``tagger.build.wiring`` builds the real ones); the decisions are small pure functions
elsewhere in this package (``labels``, ``aliases``, ``claim``, ``index``), the option
values are ``options``'. The build itself is a
:class:`~tagger.build.builders.base.Builder`'s (docker, buildkit or buildah): the guard
below is the same whichever builds.

**Never overwrite.** The guard is ``tagger.build.guard``'s :class:`TagGuard` (promote uses
the same one). Before building, a run puts a claim (``tagger.registry.markers``) under a
claim tag derived from the tag, and after the build (which takes longer than the claim's
settle time) it checks the claim is still its own; whoever wrote last owns the tag, every
other run exits 3. The claim is deleted by its own unique digest afterwards (never
touching another tag). On a registry that cannot delete (Distribution
without ``storage.delete.enabled``, Docker Hub, ...) claims would pile up, so there
imgtag falls back to re-checking right before the push and re-verifying after a settle
time as long as the push itself took. Either way, step 6 (verify) checks the tag holds
the digest just pushed, else exit 3 "overwrite detected".

**Several platforms.** Each platform's image is pushed under a temporary tag of this run
(``imgtag-tmp-RUN-OS-ARCH``, ``tagger.registry.markers``), checked to be exactly the image
built, then the tag gets one manifest PUT: the OCI image index of those manifests
(``tagger.build.index``). The temporary tags are removed afterwards through unique
placeholders (deleting by digest would delete the index's children), so the final tag is
still written once, and only with what was built.

**Signed tags** (``--sign``, ``tagger.build.signing``). The image (or the index) is pushed
under a temporary tag of this run (``imgtag-tmp-RUN-signing``; a builder that pushes
itself, buildx, has already pushed under its own ``imgtag-tmp-RUN-build``), verified
there, signed by digest (``--recursive`` for an index), and only then written under the
final tag (the same bytes, one manifest PUT) and verified again: the final tag never
stands unsigned. A
signature that cannot be written stops the run before the final tag exists (exit 5).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tagger.build import index
from tagger.build.builders.base import (
    Builder,
    BuildRequest,
    Built,
    Secret,
    check_request,
    load_secrets,
)
from tagger.build.guard import TagGuard
from tagger.build.labels import REVISION_LABEL, oci_labels, public_url
from tagger.build.options import BuildPushOptions, BuildPushResult, parse_key_values
from tagger.build.secret_files import secret_files
from tagger.build.signing import Signer, signature_tag
from tagger.errors import (
    DirtyTreeError,
    EngineError,
    OverwriteDetected,
    PolicyError,
    RegistryError,
    TagExistsError,
    UsageError,
)
from tagger.lifecycle import Stop
from tagger.registry.immutable import immutable_words, refusal
from tagger.registry.markers import (
    run_id,
    stage_tag,
    temp_tag,
    untag,
)
from tagger.registry.mediatypes import OCI_INDEX, is_index
from tagger.registry.protocols import Registry
from tagger.registry.reference import Reference
from tagger.version.bump import Derivation


class Publisher:
    """Runs build-push's steps against a registry client and a builder.

    1. derive the tag, refusing a dirty tree; 2. check the tag is absent; 3. lint;
    4. claim, then build (and squash); 5. confirm the claim and push; 6. verify the
    digest; 7. move the aliases.

    ``builder`` is a :class:`Builder` or a function that picks one (called once, after
    lint, before the claim: ``auto`` probes what works here). Without one, builds go
    through the classic ``docker`` builder on ``engine`` (its ``build``, ``tag``, ``push``
    and ``untag``, and ``tagger.image.squash``'s calls for ``--squash``). A test's fake
    builder implements :class:`~tagger.build.builders.base.Builder`'s five methods.
    """

    def __init__(
        self,
        options: BuildPushOptions,
        *,
        derive: Callable[[], Derivation],
        client: Registry,
        engine: Any = None,
        builder: Builder | Callable[[], Builder] | None = None,
        auth_config: Callable[[], Mapping[str, str] | None],
        remote_url: Callable[[], str | None],
        log: Callable[[str], None],
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
        env: Mapping[str, str] | None = None,
        stop: Stop | None = None,
        signer: Signer | None = None,
        client_for: Callable[[Reference], Registry] | None = None,
        check: Callable[[Builder, list[Built], BuildPushResult], None] | None = None,
    ) -> None:
        self.o = options
        self.ref = Reference.parse_repository(options.image)
        self._derive = derive
        self.client = client
        self.engine = engine
        self._builder = builder
        self._auth_config = auth_config
        self._remote_url = remote_url
        self.log = log
        self.now = now
        self.sleep = sleep
        self._env = dict(os.environ if env is None else env)
        # The run's cancellation token (tagger.lifecycle): a signal raises Interrupted
        # wherever the run is, except inside the shielded claim write and publish tail.
        self.stop = stop if stop is not None else Stop(raising=False)
        self._active: Builder | None = None  # the builder of the current run, to close
        # --sign: signs the verified digest before the final tag is written (None: unsigned).
        self._signer = signer
        # ``build-push IMAGE IMAGE...``: the other repositories, and their registries' clients.
        self.also = tuple(Reference.parse_repository(image) for image in options.also)
        self._client_for = client_for
        # Names the run's claim and temporary tags, so prune tells a live run's from leftovers.
        self.run_id = run_id(now(), secrets.token_hex(6))
        # build-push --check (tagger.check.gate): raises PolicyError before the push.
        self._check = check

    def _choose_builder(self) -> Builder:
        if isinstance(self._builder, Builder):
            return self._builder
        if self._builder is not None:
            return self._builder()
        from tagger.build.builders.docker import DockerBuilder

        return DockerBuilder(self.engine, self._auth_config)

    def run(self) -> BuildPushResult:
        o = self.o
        # Bad input is exit 2 before anything else: a secret that cannot be read, or an
        # option the named builder cannot honour (auto's choice is checked after lint).
        secret_values = load_secrets(o.secrets, self._env)
        if o.builder != "auto":
            from tagger.build.builders import capabilities_of

            check_request(o.builder, capabilities_of(o.builder), self._request_shape())
        # A key that cannot be read or decrypted is exit 2 now, before any claim or build.
        if self._signer is not None:
            self._signer.check()
        self._active = None
        # Files only this user can read, gone when the run ends (env= secrets too: every
        # builder then takes the same src= form); the builder is closed before they go.
        with secret_files(secret_values) as files:
            try:
                return self._run(files)
            finally:
                if self._active is not None:
                    self._active.close()

    def _run(self, secret_paths: tuple[Secret, ...]) -> BuildPushResult:
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
            result = self._exists(result, existing.digest, d)
            if self.also and result.digest is not None:
                result.also = self._promote_also(d.tag, result.digest)
            return result
        # Every other repository too, before anything is built: a refusal anywhere stops here.
        self._check_also(d.tag)
        # 3. lint: findings at the bar (error by default) stop here, before any claim.
        if o.lint:
            self._lint(result)
        builder = self._active = self._choose_builder()
        result.builder = builder.name
        local = f"{ref.registry}/{ref.repository}"
        # A name of this run's own: another job on the same engine building the same
        # tag must not be able to swap the image between our build and our push.
        request = BuildRequest(
            context=o.context,
            dockerfile=self._dockerfile(),
            name=f"{local}:imgtag-build-{secrets.token_hex(6)}",
            build_args=build_args,
            target=o.target,
            labels={},
            secrets=secret_paths,
            platforms=o.platforms,
            network=o.network,
            **self._build_extras(),
        )
        builder.check(request)
        direct = builder.pushes_by_building(squash=o.squash)
        if o.dry_run:
            signed = " and sign it" if self._signer is not None else ""
            self.log(f"dry run: would build {ref}:{d.tag} with the {builder.name} builder{signed}")
            return result
        # 4. claim (None where the registry cannot delete: see the module docstring). The
        # write is shielded: a signal in the middle must not leave a claim nobody releases.
        guard = self._guard(d.tag)
        with self.stop.shielded():
            claim = guard.claim()
        if guard.immutable is not None and len(o.platforms) > 1:
            raise UsageError(
                f"{guard.immutable}: imgtag writes no temporary tag there, and a "
                "multi-platform build needs one per platform: build one platform per "
                "repository, or make its tags mutable"
            )
        images: list[Built] = []
        temp_tags: list[tuple[str, str]] = []
        # From the push on, a signal waits: the final write is finished, verified, the
        # aliases moved and the result printed, then the run exits 143 (tagger.cli).
        tail = contextlib.ExitStack()
        try:
            try:
                self.stop.check()
                # 4, continued: build with the OCI labels (the user's --label wins on
                # purpose), and squash.
                labels = {
                    **oci_labels(d, ref, public_url(self._remote_url()), self.now()),
                    **extra_labels,
                }
                self.log(f"building {local}:{d.tag} with the {builder.name} builder")
                labelled = _with_labels(request, labels)
                with self.stop.on_stop(builder.cancel):
                    if direct:
                        # buildx pushes its own result under a temporary tag of this run
                        # (recorded first: a build stopped mid-push leaves none behind).
                        temp = temp_tag(self.run_id, None)
                        temp_tags.append((temp, ""))
                        images = [builder.build_and_push(labelled, f"{local}:{temp}", self.log)]
                    else:
                        images = builder.build(labelled, self.log)
                if o.squash:
                    images = self._squash(result, builder, images, build_args)
                # --check: the image as it will be pushed; a failure is exit 1 before the
                # push, and the finally below releases the claim and discards the images.
                if self._check is not None and o.check != "off":
                    self._check(builder, images, result)
                # 5. confirm the claim, then push.
                if claim is not None:
                    guard.confirm()
                else:
                    # No claim to settle a race: publishers of this tag on this machine take
                    # turns from the last check to the verify, so they cannot push each
                    # other's images under the engine's one name for the tag (the claim
                    # does this across machines where the registry can delete).
                    tail.enter_context(guard.turns())
                # Right before the push: whoever got here first published while we built.
                guard.recheck("while building")
                # The push, with progress; errors inside the stream are errors.
                self.stop.check()
                tail.enter_context(self.stop.shielded())
                started = time.monotonic()
                if self._signer is not None:
                    digest = self._push_signed(
                        builder, images, local, d.tag, temp_tags, result, guard, direct=direct
                    )
                elif direct:
                    digest = self._publish_pushed(images[0], d.tag)
                else:
                    digest = self._push_to(builder, images, local, d.tag, temp_tags)
                pushed_for = time.monotonic() - started
                # 6. verify: the tag holds what we pushed, else someone overwrote it; with
                # no claim, a contender may still be pushing: again after as long as we took.
                guard.verify(digest)
                guard.settle(digest, pushed_for)
            finally:
                for image in images:
                    builder.discard(image)
                # Immutable tags (no claim) may still be deletable one by one (ECR).
                deletable = claim is not None or (
                    bool(temp_tags)
                    and guard.immutable is not None
                    and self.client.can_delete(ref.repository)
                )
                self._remove_temp_tags(temp_tags, can_delete=deletable)
                guard.release()
            result.digest, result.pushed = digest, True
            # 7. aliases, only now.
            result.aliases = guard.move_aliases(o.aliases, version, digest)
        finally:
            tail.close()
        if self.also:
            # The same image, digest for digest, under the same tag in the other
            # repositories: each a promote under the same guard.
            result.also = self._promote_also(d.tag, digest)
        return result

    def _request_shape(self, secrets_: tuple[Secret, ...] | None = None) -> BuildRequest:
        """The options' part of a build request (for checking what a builder honours)."""
        shape = tuple(Secret(s.id, "") for s in self.o.secrets)
        return BuildRequest(
            self.o.context,
            None,
            "",
            secrets=shape if secrets_ is None else secrets_,
            platforms=self.o.platforms,
            network=self.o.network,
            **self._build_extras(),
        )

    def _build_extras(self) -> dict[str, Any]:
        """The cache, provenance and annotation fields of a build request."""
        o = self.o
        return {
            "cache_from": o.cache_from,
            "cache_to": o.cache_to,
            "no_cache": o.no_cache,
            "pull": o.pull,
            "provenance": o.provenance,
            "annotations": parse_key_values(o.annotations, "--annotation"),
        }

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

    def _squash(
        self,
        result: BuildPushResult,
        builder: Builder,
        images: list[Built],
        build_args: Mapping[str, str],
    ) -> list[Built]:
        """Squash each image's own layers above the Dockerfile's FROM image (the builder
        knows how to find that image's layers; else the shared-prefix rule of
        ``tagger.image.base``)."""
        known_base = self._known_base(build_args)
        squashed: list[Built] = []
        docs: list[dict[str, Any]] = []
        for image in images:
            done, doc = builder.squash(image, known_base, self.log)
            squashed.append(done)
            docs.append(doc)
        result.squashed = docs[0] if len(docs) == 1 else {"platforms": docs}
        return squashed

    def _known_base(self, build_args: Mapping[str, str]) -> str | None:
        from tagger.lint import final_base_image

        try:
            return final_base_image(self._dockerfile_path(), build_args, self.o.target)
        except UsageError:
            return None  # the build read it fine; fall back to the shared-prefix rule

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

    def _client_of(self, ref: Reference) -> Registry:
        if ref.registry == self.ref.registry:
            return self.client
        if self._client_for is None:
            raise UsageError(f"{ref}: no client for another registry was wired in")
        return self._client_for(ref)

    def _check_also(self, tag: str) -> None:
        for ref in self.also:
            existing = self._client_of(ref).head_manifest(ref.repository, tag)
            if existing is not None:
                raise TagExistsError(
                    f"{ref}:{tag} already exists ({existing.digest}): imgtag never overwrites "
                    "a tag; nothing was built"
                )

    def _promote_also(self, tag: str, digest: str) -> list[dict[str, Any]]:
        """Promote ``self.ref@digest`` to ``tag`` in every other repository."""
        from tagger.promote.run import PromoteOptions, Promoter

        options = PromoteOptions(
            source=f"{self.ref}@{digest}",
            destinations=tuple(f"{ref}:{tag}" for ref in self.also),
            aliases=tuple(self.o.aliases),
            claim_lease=self.o.claim_lease,
        )
        promoted = Promoter(
            options,
            client_for=self._client_of,
            log=self.log,
            now=self.now,
            sleep=self.sleep,
            monotonic=lambda: time.monotonic(),
            stop=self.stop,
        ).run()
        return [{**row.as_dict(), "aliases": row.aliases} for row in promoted.destinations]

    def _guard(self, tag: str) -> TagGuard:
        """The never-overwrite guard of ``tag`` (``tagger.build.guard``, shared with promote).

        Time goes through this module's ``time`` and the publisher's ``now``/``sleep``."""
        return TagGuard(
            self.client,
            self.ref,
            tag,
            lease=self.o.claim_lease,
            run=self.run_id,
            now=self.now,
            monotonic=lambda: time.monotonic(),
            sleep=self.sleep,
            log=self.log,
        )

    def _push(self, builder: Builder, image: Built, local: str, tag: str) -> str:
        """Push the image we built to ``local:tag``; check the registry got *that* image,
        once more if another job on the same engine re-tagged the name in the moment
        between. An image's ID is its config's digest in the classic image store, and the
        digest of its manifest (or index) in the containerd image store (Engine 26): either
        names exactly one content."""
        for _attempt in range(2):
            try:
                digest = builder.push(image, local, tag, self.log)
            except EngineError as exc:
                # The registry's own "this tag is immutable" (ECR TAG_INVALID, Harbor 412,
                # ...) is a refusal to publish, in its words, not an engine failure.
                words = immutable_words(str(exc))
                if words is not None:
                    raise refusal(f"{self.ref}:{tag}", words) from None
                raise
            if digest == image.image_id or self._config_digest(digest) == image.image_id:
                return digest
            self.log(f"{local}:{tag} was re-tagged on the engine during the push; pushing again")
        raise EngineError(
            f"another job on this Docker engine keeps re-tagging {local}:{tag} while imgtag "
            "pushes it: run one build of a tag at a time per engine"
        )

    def _push_to(
        self,
        builder: Builder,
        images: list[Built],
        local: str,
        tag: str,
        temp_tags: list[tuple[str, str]],
    ) -> str:
        """Push what was built to ``tag``: the image, or the index of several platforms."""
        if len(self.o.platforms) > 1:
            return self._push_index(builder, images, local, tag, temp_tags)
        return self._push(builder, images[0], local, tag)

    def _push_signed(
        self,
        builder: Builder,
        images: list[Built],
        local: str,
        tag: str,
        temp_tags: list[tuple[str, str]],
        result: BuildPushResult,
        guard: TagGuard,
        *,
        direct: bool,
    ) -> str:
        """The one owner of "sign, then write the final tag": the image (or index) stands
        under a temporary tag of this run, verified there, its digest is signed, and only
        then are the same bytes written under ``tag``: the final tag never stands unsigned.

        Every builder pushes by tag (buildx's docker driver cannot push by digest): a
        builder that pushes itself (``direct``, buildx) already wrote its result under
        ``temp_tag(run, None)``; the others push to this run's staging tag here."""
        assert self._signer is not None
        repo = self.ref.repository
        if direct:
            staged, digest = temp_tags[-1][0], images[0].image_id
        else:
            staged = stage_tag(self.run_id)
            digest = self._push_to(builder, images, local, staged, temp_tags)
            temp_tags.append((staged, digest))
            if len(self.o.platforms) <= 1:
                builder.forget(local, staged)  # the engine keeps no name of the run's own
        self._verify_staged(staged, digest)
        manifest = self.client.get_manifest(repo, digest)
        signed = [digest]
        recursive = is_index(manifest.media_type)
        if recursive:
            children = manifest.json().get("manifests")
            signed += [
                str(m["digest"])
                for m in (children if isinstance(children, list) else [])
                if isinstance(m, dict) and isinstance(m.get("digest"), str)
            ]
        self.log(f"signing {self.ref}@{digest}" + (" and its manifests" if recursive else ""))
        self._signer.sign(str(self.ref), digest, recursive=recursive, progress=self.log)
        result.signatures = [signature_tag(d) for d in signed]
        if not self._env.get("COSIGN_REPOSITORY"):
            # cosign said it wrote them; the registry must agree before the tag appears.
            missing = [t for t in result.signatures if self.client.head_manifest(repo, t) is None]
            if missing:
                raise RegistryError(
                    f"cosign reported success but {self.ref}:{missing[0]} is not in the "
                    "registry: the final tag was not written"
                )
        result.signed = True
        # Right before the final write: nobody published the tag while we signed.
        guard.recheck("while signing", "it was not overwritten")
        return self._write_from(digest, tag, f"{local}:{staged}")

    def _verify_staged(self, staged: str, digest: str) -> None:
        """The run's own temporary tag holds what was pushed (nobody else writes it)."""
        now = self.client.head_manifest(self.ref.repository, staged)
        if now is None or now.digest != digest:
            found = now.digest if now is not None else "nothing"
            raise OverwriteDetected(
                f"overwrite detected: {self.ref}:{staged} should hold {digest} just pushed, "
                f"but holds {found}: another run wrote this run's temporary tag"
            )

    def _publish_pushed(self, image: Built, tag: str) -> str:
        """Write ``tag`` with exactly what the builder pushed under its temporary tag."""
        return self._write_from(image.image_id, tag, image.name)

    def _write_from(self, pushed: str, tag: str, origin: str) -> str:
        """Write ``tag`` with exactly what stands under ``pushed`` (a digest, pushed under
        ``origin``): the same bytes, read back by their digest (so the same digest, and an
        index keeps its attestation manifests)."""
        repo = self.ref.repository
        manifest = self.client.get_manifest(repo, pushed)
        self.log(f"writing {self.ref}:{tag} from {origin} ({pushed})")
        digest = str(self.client.put_manifest(repo, tag, manifest.raw, manifest.media_type))
        if digest != pushed:
            raise EngineError(
                f"the registry stored {digest} under {self.ref}:{tag} for the build's "
                f"{pushed}: it rewrote the manifest"
            )
        return digest

    def _push_index(
        self,
        builder: Builder,
        images: list[Built],
        local: str,
        tag: str,
        temp_tags: list[tuple[str, str]],
    ) -> str:
        """Push each platform's image under a temporary tag, then the index under ``tag``
        (one manifest PUT). ``temp_tags`` collects (tag, digest) for removal."""
        repo = self.ref.repository
        entries = []
        for image in images:
            temp = temp_tag(self.run_id, image.platform)
            digest = self._push(builder, image, local, temp)
            temp_tags.append((temp, digest))
            builder.forget(local, temp)  # the engine keeps no name of the run's own
            manifest = self.client.get_manifest(repo, digest)
            config = self.client.get_blob(repo, self._config_digest(digest) or "")
            platform = index.config_platform(config)
            if image.platform is not None and not image.platform.matches(platform):
                raise EngineError(
                    f"the {builder.name} builder made a {index.platform_text(platform)} image "
                    f"when asked for {image.platform}: nothing was published"
                )
            entries.append(
                index.index_entry(manifest.media_type, digest, len(manifest.raw), platform)
            )
        self.log(f"pushing the index of {len(entries)} platforms to {local}:{tag}")
        return str(self.client.put_manifest(repo, tag, index.index_document(entries), OCI_INDEX))

    def _remove_temp_tags(self, temp_tags: list[tuple[str, str]], *, can_delete: bool) -> None:
        """Remove each temporary tag alone (a DELETE of the platform manifest's digest
        would break the index); prune removes what a killed run leaves."""
        repo = self.ref.repository
        if temp_tags and not can_delete:
            names = ", ".join(t for t, _ in temp_tags)
            self.log(f"this registry cannot delete: the temporary tags {names} stay")
            return
        for temp, _digest in temp_tags:
            try:
                untag(self.client, repo, temp, lambda: secrets.token_hex(16))
            except RegistryError as exc:
                self.log(f"could not remove the temporary tag {temp} ({exc}): remove it by hand")

    def _config_digest(self, digest: str) -> str | None:
        config = self.client.get_manifest(self.ref.repository, digest).json().get("config")
        value = config.get("digest") if isinstance(config, dict) else None
        return value if isinstance(value, str) else None


def _with_labels(request: BuildRequest, labels: Mapping[str, str]) -> BuildRequest:
    from dataclasses import replace

    return replace(request, labels=dict(labels))
