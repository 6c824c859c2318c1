"""In-memory fakes of a registry client and a Docker engine, for the guards' unit tests.

Fakes are for faults (the quality bar: real components elsewhere). :class:`FakeRegistry`
satisfies ``tagger.registry.protocols.Registry`` (mypy checks it: see the end of this
file), the seam build-push's guard and prune call, with Distribution 2.8's semantics (a
DELETE by digest removes every tag on that digest; a DELETE by tag is refused unless
``tag_delete`` says the registry speaks OCI distribution 1.1), and raises the real typed
errors of ``tagger.errors``. Hooks (:meth:`FakeRegistry.on`) make a contender act, or a
request fail, at a precise moment. :class:`FakeEngine` builds images whose ID is their
config's digest and "pushes" them into the fake registry, as ``docker push`` does. No I/O:
everything lives in dicts.
"""

from __future__ import annotations

import contextlib
import io
import json
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tagger.engine import BuildResult
from tagger.errors import EngineError, NotFound, RegistryError, Unsupported, UsageError
from tagger.registry.manifests import Manifest, ManifestInfo, sha256_digest
from tagger.registry.mediatypes import DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST, is_index
from tagger.registry.platform import Platform
from tagger.registry.protocols import Version
from tagger.registry.reference import is_digest

if TYPE_CHECKING:
    from collections.abc import Sequence

    from tagger.registry.protocols import ReadsBytes, Registry


@dataclass(frozen=True)
class Call:
    """One request the code under test made: the client method, repository and ref."""

    method: str
    repository: str
    ref: str | None = None


#: What a hook does: gets the registry and the call; may change state or raise.
Action = Callable[["FakeRegistry", Call], None]


@dataclass
class Hook:
    method: str
    ref: str | None
    action: Action
    after: bool  # run once the call took effect (else before it)
    skip: int  # matching calls to let through first
    times: int | None  # how often to fire; None: every time from then on
    fired: int = 0


@dataclass
class _Repo:
    tags: dict[str, str] = field(default_factory=dict)
    manifests: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)


class FakeRegistry:
    """A registry in dicts, with the ``RegistryClient`` methods the guards call."""

    def __init__(
        self,
        *,
        deletes: bool = True,
        tag_delete: bool = False,
        referrers_api: bool = False,
        mounts: bool = True,
    ) -> None:
        self.deletes = deletes  # storage.delete.enabled
        self.mounts = mounts  # cross-repository blob mounts (else 202: upload)
        self.tag_delete = tag_delete  # OCI distribution 1.1 DELETE /manifests/<tag>
        self.referrers_api = referrers_api  # OCI distribution 1.1 GET /referrers/<digest>
        #: The registry's word that tags are immutable server-side (ECR IMMUTABLE): a
        #: write of an existing tag is then refused as ECR refuses it.
        self.immutable: str | None = None
        self.calls: list[Call] = []
        self.hooks: list[Hook] = []
        self._repos: dict[str, _Repo] = {}
        self._lock = threading.RLock()  # prune's executor calls from a thread pool

    # -- hooks -----------------------------------------------------------------------------

    def on(
        self,
        method: str,
        ref: str | None = None,
        *,
        do: Action,
        after: bool = False,
        skip: int = 0,
        times: int | None = 1,
    ) -> Hook:
        """Run ``do`` on the ``skip + 1``-th call of ``method`` (on ``ref``, if given),
        before the call takes effect or, with ``after``, once it has (``do`` may then
        raise: the call happened, but the caller sees an error, as after a lost answer)."""
        hook = Hook(method, ref, do, after, skip, times)
        self.hooks.append(hook)
        return hook

    def fail(
        self,
        method: str,
        ref: str | None = None,
        error: Exception | None = None,
        *,
        skip: int = 0,
        times: int | None = 1,
    ) -> Hook:
        """Make a call raise ``error`` (a 500 ``RegistryError`` by default) without effect."""
        exc = error or RegistryError(f"{method} {ref or ''}: the registry answered 500")

        def raise_it(_reg: FakeRegistry, _call: Call) -> None:
            raise exc

        return self.on(method, ref, do=raise_it, skip=skip, times=times)

    def _run_hooks(self, call: Call, after: bool) -> None:
        for hook in list(self.hooks):
            if hook.after != after or hook.method != call.method:
                continue
            if hook.ref is not None and hook.ref != call.ref:
                continue
            if hook.skip > 0:
                hook.skip -= 1
                continue
            if hook.times is not None and hook.fired >= hook.times:
                continue
            hook.fired += 1
            hook.action(self, call)

    def _call(self, method: str, repository: str, ref: str | None = None) -> Call:
        call = Call(method, repository, ref)
        with self._lock:
            self.calls.append(call)
        self._run_hooks(call, after=False)
        return call

    def called(self, method: str, ref: str | None = None) -> list[Call]:
        return [c for c in self.calls if c.method == method and (ref is None or c.ref == ref)]

    # -- state, for arranging and asserting --------------------------------------------------

    def repo(self, repository: str) -> _Repo:
        with self._lock:
            return self._repos.setdefault(repository, _Repo())

    def tags(self, repository: str) -> dict[str, str]:
        """Every tag and the digest it holds: the state a user would see."""
        with self._lock:
            return dict(self.repo(repository).tags)

    def has_manifest(self, repository: str, digest: str) -> bool:
        with self._lock:
            return digest in self.repo(repository).manifests

    def store(self, repository: str, tag: str | None, raw: bytes, media_type: str) -> str:
        """Put a manifest (and a tag on it) without going through hooks or the call log."""
        digest = sha256_digest(raw)
        with self._lock:
            r = self.repo(repository)
            r.manifests[digest] = (raw, media_type)
            if tag is not None:
                r.tags[tag] = digest
        return digest

    def tag(self, repository: str, tag: str, digest: str) -> None:
        """Point ``tag`` at a stored manifest, without hooks (a contender's PUT)."""
        with self._lock:
            r = self.repo(repository)
            assert digest in r.manifests, digest
            r.tags[tag] = digest

    def drop(self, repository: str, digest: str) -> None:
        """A contender's DELETE by digest: the manifest and its tags, without hooks."""
        with self._lock:
            r = self.repo(repository)
            r.manifests.pop(digest, None)
            for tag in [t for t, d in r.tags.items() if d == digest]:
                del r.tags[tag]

    def add_image(
        self,
        repository: str,
        tag: str | None,
        labels: Mapping[str, str] | None = None,
        *,
        created: str | None = None,
        salt: str = "",
    ) -> str:
        """A single-platform image (config blob + Docker v2 manifest) under ``tag``."""
        config = image_config_bytes(labels or {}, created=created, salt=salt)
        with self._lock:
            self.repo(repository).blobs[sha256_digest(config)] = config
        return self.store(repository, tag, image_manifest(config), DOCKER_MANIFEST)

    def add_index(self, repository: str, tag: str, children: list[tuple[str, str]]) -> str:
        """An OCI index of ``(digest, media type)`` children already in the repository."""
        doc = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    "mediaType": mt,
                    "digest": d,
                    "size": 1,
                    "platform": {"os": "linux", "architecture": "amd64"},
                }
                for d, mt in children
            ],
        }
        return self.store(repository, tag, json.dumps(doc).encode(), OCI_INDEX)

    # -- the Registry protocol ---------------------------------------------------------------

    host = "fake.registry"
    provider_name = "oci"

    def head_manifest(
        self, repository: str, ref: str, *, actions: tuple[str, ...] = ("pull",)
    ) -> ManifestInfo | None:
        call = self._call("head_manifest", repository, ref)
        with self._lock:
            r = self.repo(repository)
            digest = ref if is_digest(ref) else r.tags.get(ref)
            found = r.manifests.get(digest) if digest else None
            info = (
                None
                if found is None or digest is None
                else (ManifestInfo(digest, found[1], len(found[0])))
            )
        self._run_hooks(call, after=True)
        return info

    def get_manifest(self, repository: str, ref: str) -> Manifest:
        call = self._call("get_manifest", repository, ref)
        with self._lock:
            r = self.repo(repository)
            digest = ref if is_digest(ref) else r.tags.get(ref)
            found = r.manifests.get(digest) if digest else None
            if found is None or digest is None:
                raise NotFound(f"{repository}:{ref}: manifest unknown")
            manifest = Manifest(digest, found[1], found[0])
        self._run_hooks(call, after=True)
        return manifest

    def put_manifest(self, repository: str, ref: str, raw: bytes, media_type: str) -> str:
        call = self._call("put_manifest", repository, ref)
        digest = sha256_digest(raw)
        if is_digest(ref) and ref != digest:
            raise RegistryError(f"{repository}@{ref}: DIGEST_INVALID")
        if self.immutable and not is_digest(ref) and ref in self.repo(repository).tags:
            from tagger.registry.immutable import refusal

            raise refusal(
                f"{self.host}/{repository}:{ref}",
                f"TAG_INVALID: The image tag '{ref}' already exists in the '{repository}' "
                "repository and cannot be overwritten because the repository is immutable.",
            )
        self.store(repository, None if is_digest(ref) else ref, raw, media_type)
        self._run_hooks(call, after=True)
        return digest

    def delete_manifest(self, repository: str, ref: str) -> None:
        """By digest: the manifest and every tag on it (Distribution 2.8). By tag: the tag
        alone where ``tag_delete``, else ``Unsupported`` as Distribution answers."""
        call = self._call("delete_manifest", repository, ref)
        with self._lock:
            if not self.deletes:
                raise Unsupported(f"{repository}: the registry answered 405 to a DELETE")
            r = self.repo(repository)
            if not is_digest(ref):
                if not self.tag_delete:
                    raise Unsupported(f"{repository}:{ref}: 400 UNSUPPORTED (DELETE by tag)")
                if ref not in r.tags:
                    raise NotFound(f"{repository}:{ref}: manifest unknown")
                del r.tags[ref]
            else:
                if ref not in r.manifests:
                    raise NotFound(f"{repository}@{ref}: manifest unknown")
                del r.manifests[ref]
                for tag in [t for t, d in r.tags.items() if d == ref]:
                    del r.tags[tag]
        self._run_hooks(call, after=True)

    def delete_refusal(self, repository: str) -> str | None:
        """As the real client words it (the call is logged as ``can_delete``)."""
        call = self._call("can_delete", repository)
        self._run_hooks(call, after=True)
        if self.deletes:
            return None
        return (
            f"{self.host} does not delete through the registry API (it answered DELETE with "
            "405 UNSUPPORTED): for a hosted registry at this address set --provider (ghcr, "
            "dockerhub); for Distribution, enable storage.delete.enabled"
        )

    def can_delete(self, repository: str) -> bool:
        return self.delete_refusal(repository) is None

    def check_access(self, repository: str, *, delete: bool, untagged: bool) -> None:
        if untagged:
            raise UsageError(f"--untagged needs a registry that lists versions: {self.host}")

    def versions(self, repository: str) -> Sequence[Version]:
        raise UsageError(f"{self.host} lists no versions without tags")

    def refused_as_last(self) -> frozenset[str]:
        return frozenset()

    def immutable_tags(self, repository: str) -> str | None:
        self._call("immutable_tags", repository)
        return self.immutable

    def get_blob(self, repository: str, digest: str, *, max_bytes: int = 4 << 20) -> bytes:
        call = self._call("get_blob", repository, digest)
        with self._lock:
            blob = self.repo(repository).blobs.get(digest)
        if blob is None:
            raise NotFound(f"{repository}: blob {digest} unknown")
        self._run_hooks(call, after=True)
        return blob

    def has_blob(
        self, repository: str, digest: str, *, actions: tuple[str, ...] = ("pull", "push")
    ) -> bool:
        call = self._call("has_blob", repository, digest)
        with self._lock:
            found = digest in self.repo(repository).blobs
        self._run_hooks(call, after=True)
        return found

    def upload_blob(self, repository: str, data: bytes) -> str:
        call = self._call("upload_blob", repository)
        digest = sha256_digest(data)
        with self._lock:
            self.repo(repository).blobs[digest] = data
        self._run_hooks(call, after=True)
        return digest

    def add_referrer(self, repository: str, subject: str, artifact: str) -> str:
        """An untagged OCI artifact manifest whose ``subject`` is ``subject`` (as
        ``oras attach`` pushes to a registry with the referrers API)."""
        doc = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                       "digest": sha256_digest(b"{}"), "size": 2},
            "layers": [],
            "subject": {"mediaType": DOCKER_MANIFEST, "digest": subject, "size": 1},
        }  # fmt: skip
        return self.store(repository, None, json.dumps(doc).encode(), OCI_MANIFEST)

    def referrers(self, repository: str, digest: str) -> list[str] | None:
        self._call("referrers", repository, digest)
        if not self.referrers_api:
            return None
        with self._lock:
            held = list(self.repo(repository).manifests.items())
        found = []
        for d, (raw, _mt) in held:
            subject = json.loads(raw).get("subject") if raw.startswith(b"{") else None
            if isinstance(subject, dict) and subject.get("digest") == digest:
                found.append(d)
        return sorted(found)

    @contextlib.contextmanager
    def open_blob(
        self, repository: str, digest: str, *, size: int | None = None
    ) -> Iterator[io.BytesIO]:
        call = self._call("open_blob", repository, digest)
        with self._lock:
            blob = self.repo(repository).blobs.get(digest)
        if blob is None:
            raise NotFound(f"{repository}: blob {digest} unknown")
        self._run_hooks(call, after=True)
        yield io.BytesIO(blob)

    def mount_blob(self, repository: str, digest: str, from_repository: str) -> bool:
        """201 when ``from_repository`` holds the blob (and ``mounts`` is on), else not."""
        call = self._call("mount_blob", repository, digest)
        with self._lock:
            blob = self.repo(from_repository).blobs.get(digest) if self.mounts else None
            if blob is not None:
                self.repo(repository).blobs[digest] = blob
        self._run_hooks(call, after=True)
        return blob is not None

    def push_blob(self, repository: str, digest: str, size: int, source: ReadsBytes) -> None:
        call = self._call("push_blob", repository, digest)
        parts = []
        while data := source.read(1 << 16):
            parts.append(data)
        blob = b"".join(parts)
        if len(blob) != size or sha256_digest(blob) != digest:
            raise RegistryError(f"{repository}: blob upload {digest}: DIGEST_INVALID")
        with self._lock:
            self.repo(repository).blobs[digest] = blob
        self._run_hooks(call, after=True)

    def list_tags(self, repository: str) -> list[str]:
        call = self._call("list_tags", repository)
        tags = sorted(self.tags(repository))
        self._run_hooks(call, after=True)
        return tags

    def list_repositories(self, prefix: str) -> list[str]:
        under = f"{prefix}/" if prefix else ""
        with self._lock:
            return sorted(r for r, repo in self._repos.items() if r.startswith(under) and repo.tags)

    def image_config(
        self, repository: str, ref: str, platform: Platform | None = None
    ) -> dict[str, Any]:
        manifest = self.get_manifest(repository, ref)
        doc = manifest.json()
        if is_index(manifest.media_type):
            manifest = self.get_manifest(repository, doc["manifests"][0]["digest"])
            doc = manifest.json()
        digest = doc["config"]["digest"]
        with self._lock:
            blob = self.repo(repository).blobs.get(digest)
        if blob is None:
            raise NotFound(f"{repository}: blob {digest} unknown")
        parsed: dict[str, Any] = json.loads(blob)
        return parsed


def image_config_bytes(labels: Mapping[str, str], *, created: str | None, salt: str) -> bytes:
    """An image config; its sha256 is the image ID, as on a Docker engine."""
    doc = {
        "architecture": "amd64",
        "os": "linux",
        "created": created or "2026-05-01T12:00:00Z",
        "config": {"Labels": dict(labels), "Env": [f"SALT={salt}"]},
        "rootfs": {"type": "layers", "diff_ids": []},
    }
    return json.dumps(doc, sort_keys=True).encode()


def image_manifest(config: bytes) -> bytes:
    doc = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "digest": sha256_digest(config),
            "size": len(config),
        },
        "layers": [],
    }
    return json.dumps(doc, sort_keys=True).encode()


class FakeEngine:
    """A Docker engine in dicts: ``build`` makes an image whose ID is its config's digest,
    ``push`` puts it into the :class:`FakeRegistry` under ``repository:tag`` (the
    registry's host is dropped) and returns the manifest digest.

    Faults: ``build_error`` / ``push_error`` raise; ``retag_during_push`` pushes that many
    times another job's image (the name was re-tagged on the engine in the meantime);
    ``during_build`` / ``after_push`` let a contender act at those moments.
    """

    def __init__(self, registry: FakeRegistry) -> None:
        self.registry = registry
        self.names: dict[str, str] = {}  # "repository:tag" -> image ID
        self.configs: dict[str, bytes] = {}  # image ID -> config
        self.builds: list[dict[str, Any]] = []
        self.pushes: list[str] = []  # "repository:tag" per push
        self.untagged: list[str] = []
        self.build_error: EngineError | None = None
        self.push_error: EngineError | None = None
        self.retag_during_push = 0
        self.during_build: Callable[[], None] | None = None
        self.after_push: Callable[[], None] | None = None

    def _image(self, labels: Mapping[str, str], salt: str) -> str:
        config = image_config_bytes(labels, created=None, salt=salt)
        image_id = sha256_digest(config)
        self.configs[image_id] = config
        return image_id

    def build(
        self,
        *,
        context: str,
        dockerfile: str | None,
        tag: str,
        buildargs: Mapping[str, str],
        target: str | None,
        labels: Mapping[str, str],
        progress: Callable[[str], None] = print,
    ) -> BuildResult:
        self.builds.append(
            {
                "context": context,
                "dockerfile": dockerfile,
                "tag": tag,
                "buildargs": dict(buildargs),
                "target": target,
                "labels": dict(labels),
            }
        )
        if self.during_build is not None:
            self.during_build()
        if self.build_error is not None:
            raise self.build_error
        image_id = self._image(labels, salt=f"build-{len(self.builds)}")
        self.names[tag] = image_id
        return BuildResult(image_id)

    def tag(self, image: str, repository: str, tag: str) -> None:
        image_id = self.names.get(image, image)
        if image_id not in self.configs:
            raise EngineError(f"cannot tag {image}: no such image")
        self.names[f"{repository}:{tag}"] = image_id

    def untag(self, name: str) -> None:
        self.untagged.append(name)
        self.names.pop(name, None)

    def push(
        self,
        repository: str,
        tag: str,
        auth_config: Mapping[str, str] | None,
        progress: Callable[[str], None] = print,
    ) -> str:
        name = f"{repository}:{tag}"
        self.pushes.append(name)
        if self.push_error is not None:
            raise self.push_error
        if self.retag_during_push > 0:
            # Another job on this engine names its own image the same in the meantime.
            self.retag_during_push -= 1
            self.names[name] = self._image({}, salt=f"other-job-{len(self.pushes)}")
        image_id = self.names[name]
        config = self.configs[image_id]
        repo = repository.split("/", 1)[1]  # drop the registry host, as the daemon does
        self.registry.upload_blob(repo, config)
        digest = self.registry.put_manifest(repo, tag, image_manifest(config), DOCKER_MANIFEST)
        if self.after_push is not None:
            self.after_push()
        return digest


if TYPE_CHECKING:
    # mypy checks the fake against the seam it stands in for (pyproject's [tool.mypy]).
    def _is_a_registry(fake: FakeRegistry) -> Registry:
        return fake
