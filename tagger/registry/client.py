"""The registry API imgtag uses, over one :class:`Transport`. Does I/O.

Manifest HEAD/GET with every manifest media type in ``Accept`` (Distribution answers 404
for an OCI image otherwise: an existence check without them would overwrite), tag lists
that follow ``Link`` pages on the same host, config blobs, blob upload, manifest PUT and
DELETE by digest (https://github.com/opencontainers/distribution-spec/blob/main/spec.md).

Every answer is untrusted: digests are checked against the bytes, JSON is validated
where it is used, sizes are bounded.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import queue
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from tagger.errors import (
    AccessDenied,
    AuthenticationError,
    Interrupted,
    NotFound,
    RegistryError,
    RegistryUnreachable,
    Unsupported,
)
from tagger.registry.http import (
    MAX_CONFIG_BYTES,
    MAX_MANIFEST_BYTES,
    MAX_PAGE_BYTES,
    OneShotBody,
    clean,
    next_link,
)
from tagger.registry.manifests import Manifest, ManifestInfo, sha256_digest
from tagger.registry.mediatypes import (
    ACCEPT,
    MANIFEST_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    is_index,
)
from tagger.registry.platform import Platform, pick
from tagger.registry.protocols import ListsRepositories
from tagger.registry.reference import is_digest, is_repository, is_tag
from tagger.registry.transport import Transport, request_json

if TYPE_CHECKING:
    from tagger.registry.protocols import Provider, ReadsBytes, Version

__all__ = ["BlobReader", "Manifest", "ManifestInfo", "RegistryClient", "scope", "url_digest"]

MAX_TAG_PAGES = 10_000
CATALOG_PAGE = 1000  # names a catalog page asks for (Distribution's default is 100)
#: Blobs below this are read whole and sent as one body (a config, a signature).
SMALL_BLOB = 1 << 20
POOL_SIZE = 16  # connections kept per host: Transport's default


def _shown(value: str, limit: int = 80) -> str:
    """A value a registry sent, fit for a message (the core's cleaner of untrusted text)."""
    return clean(value, limit)


def url_digest(value: object, what: str) -> str:
    """``value`` if it is a digest (``algorithm:hex`` of the algorithm's length) fit to go
    into a URL; a :class:`RegistryError` otherwise (``sha256:../../x`` in a manifest).

    >>> url_digest("sha256:" + "a" * 64, "the config").startswith("sha256:")
    True
    >>> url_digest("sha256:../../x", "the config")
    Traceback (most recent call last):
    ...
    tagger.errors.RegistryError: the registry sent the config "sha256:../../x", which is \
not a digest (algorithm:hex): refused
    """
    if not isinstance(value, str) or not is_digest(value):
        shown = _shown(value) if isinstance(value, str) else type(value).__name__
        raise RegistryError(
            f'the registry sent {what} "{shown}", which is not a digest (algorithm:hex): refused'
        )
    return value


def _url_ref(ref: str) -> str:
    # Tags come from the user (parsed) or from a tags list (filtered); digests may come
    # from a manifest: either way nothing else goes into a URL path.
    if is_tag(ref):
        return ref
    return url_digest(ref, "the reference")


def _media_type(declared: str, doc: Mapping[str, Any] | None, where: str) -> str:
    """A manifest's media type: the one declared (Content-Type, else the document's
    ``mediaType``) when it is known, inferred for an OCI document that declares none;
    anything else is refused."""
    if declared in MANIFEST_TYPES:
        return declared
    inner = doc.get("mediaType") if doc is not None else None
    if isinstance(inner, str) and inner in MANIFEST_TYPES:
        return inner
    if inner is None and doc is not None:
        # OCI makes mediaType optional; the shape says which of the two it is.
        if isinstance(doc.get("manifests"), list):
            return OCI_INDEX
        if isinstance(doc.get("layers"), list):
            return OCI_MANIFEST
    shown = inner if isinstance(inner, str) else declared
    raise RegistryError(
        f'{where} has the media type "{_shown(shown)}", which imgtag does not know '
        f"(it reads {', '.join(MANIFEST_TYPES)})"
    )


def _check_digest(expected: str, data: bytes, what: str) -> None:
    if not is_digest(expected):
        raise RegistryError(f"{what}: {_shown(expected)} is not a digest imgtag can check")
    algo = expected.partition(":")[0]
    actual = algo + ":" + hashlib.new(algo, data).hexdigest()
    if actual != expected:
        raise RegistryError(f"{what}: the registry sent bytes that do not match {expected}")


def scope(repository: str, *actions: str) -> str:
    """A token scope.

    >>> scope("team/app", "pull", "push")
    'repository:team/app:pull,push'
    """
    return f"repository:{repository}:{','.join(actions)}"


class RegistryClient:
    """Registry operations on one host; deletes go through its provider.

    ``provider`` is the registry's way of deleting (``tagger.registry.providers``); by
    default the distribution API's own DELETE. It is handed this client's registry API
    with each call: :meth:`registry_delete` and :meth:`registry_delete_refusal`.
    """

    def __init__(self, transport: Transport, provider: Provider | None = None) -> None:
        if provider is None:
            from tagger.registry.providers.oci import OciProvider

            provider = OciProvider()
        self.transport = transport
        self.provider = provider

    @property
    def host(self) -> str:
        return self.transport.host

    @property
    def provider_name(self) -> str:
        return self.provider.name

    def _where(self, repository: str, ref: str) -> str:
        sep = "@" if ":" in ref else ":"
        return f"{self.host}/{repository}{sep}{ref}"

    # -- manifests -----------------------------------------------------------------------

    def head_manifest(
        self, repository: str, ref: str, *, actions: tuple[str, ...] = ("pull",)
    ) -> ManifestInfo | None:
        """The digest ``ref`` (a tag or digest) points at, or ``None`` if there is none."""
        doing = f"checking {self._where(repository, ref)}"
        resp = self.transport.request(
            "HEAD",
            f"/v2/{repository}/manifests/{_url_ref(ref)}",
            scope=scope(repository, *actions),
            headers={"Accept": ACCEPT},
            doing=doing,
            ok=(404,),
        )
        if resp.status_code == 404:
            return None
        digest = resp.headers.get("Docker-Content-Digest", "")
        media_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
        if not digest:
            # Some registries omit the digest on HEAD; GET gives the bytes to hash.
            manifest = self.get_manifest(repository, ref)
            return ManifestInfo(manifest.digest, manifest.media_type, len(manifest.raw))
        url_digest(digest, f"a Docker-Content-Digest for {self._where(repository, ref)}")
        if media_type not in MANIFEST_TYPES:
            # A HEAD has no body to infer from: GET says what it is, or refuses it.
            manifest = self.get_manifest(repository, ref)
            return ManifestInfo(manifest.digest, manifest.media_type, len(manifest.raw))
        length = resp.headers.get("Content-Length") or "0"
        size = int(length) if length.isdigit() and len(length) < 19 else 0
        return ManifestInfo(digest, media_type, size)

    def get_manifest(self, repository: str, ref: str) -> Manifest:
        doing = f"reading {self._where(repository, ref)}"
        resp = self.transport.request(
            "GET",
            f"/v2/{repository}/manifests/{_url_ref(ref)}",
            scope=scope(repository, "pull"),
            headers={"Accept": ACCEPT},
            doing=doing,
            max_bytes=MAX_MANIFEST_BYTES,
            what="a manifest",
        )
        raw = resp.content
        media_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
        if is_digest(ref):
            _check_digest(ref, raw, f"reading {self._where(repository, ref)}")
            digest = ref
        else:
            digest = resp.headers.get("Docker-Content-Digest") or sha256_digest(raw)
            _check_digest(digest, raw, f"reading {self._where(repository, ref)}")
        if media_type not in MANIFEST_TYPES:
            doc = Manifest(digest, "", raw).json()
            media_type = _media_type(
                media_type, doc, f"the manifest of {self._where(repository, ref)}"
            )
        return Manifest(digest, media_type, raw)

    def put_manifest(self, repository: str, ref: str, raw: bytes, media_type: str) -> str:
        """Upload a manifest under ``ref``; return its digest."""
        doing = f"pushing the manifest {self._where(repository, ref)}"
        resp = self.transport.request(
            "PUT",
            f"/v2/{repository}/manifests/{_url_ref(ref)}",
            scope=scope(repository, "pull", "push"),
            headers={"Content-Type": media_type},
            data=raw,
            doing=doing,
        )
        digest = resp.headers.get("Docker-Content-Digest") or sha256_digest(raw)
        return digest

    # -- deleting ------------------------------------------------------------------------

    def delete_manifest(self, repository: str, ref: str) -> None:
        """Delete by digest (the image, with every tag on it) or by tag, through the
        provider (:class:`~tagger.errors.Unsupported` where a tag cannot go alone)."""
        self.provider.delete(self, repository, ref)

    def delete_refusal(self, repository: str) -> str | None:
        """``None`` when deleting works here; else the sentence that says why not."""
        return self.provider.delete_refusal(self, repository)

    def can_delete(self, repository: str) -> bool:
        return self.delete_refusal(repository) is None

    def check_access(self, repository: str, *, delete: bool, untagged: bool) -> None:
        """The provider's checks before planning (a token, an owner, ``--untagged``)."""
        self.provider.check(self, repository, delete=delete, untagged=untagged)

    def versions(self, repository: str) -> Sequence[Version]:
        return self.provider.versions(self, repository)

    def refused_as_last(self) -> frozenset[str]:
        return self.provider.refused_as_last()

    def immutable_tags(self, repository: str) -> str | None:
        return self.provider.immutable_tags(self, repository)

    def registry_delete(self, repository: str, ref: str) -> None:
        """The distribution API's DELETE: by digest (on Distribution this removes every
        tag on that digest), or by tag where a registry supports it (OCI distribution
        spec 1.1)."""
        self.transport.request(
            "DELETE",
            f"/v2/{repository}/manifests/{_url_ref(ref)}",
            scope=scope(repository, "delete"),
            doing=f"deleting {self._where(repository, ref)}",
            ok=(202, 200),
        )

    def registry_delete_refusal(self, repository: str) -> str | None:
        """Whether the distribution API's DELETE works here: a digest that cannot exist
        answers 404 where it does, 405 (or 400 UNSUPPORTED) where deletes are off,
        401/403 where we may not. Anything else (5xx, 429, no answer) is a failure of its
        own, not an answer: it is raised."""
        try:
            self.registry_delete(repository, "sha256:" + "0" * 64)
        except NotFound:
            return None
        except Unsupported:
            # ghcr.io answers 405 UNSUPPORTED; so does Distribution with deletes off.
            return (
                f"{self.host} does not delete through the registry API (it answered DELETE "
                "with 405 UNSUPPORTED): for a hosted registry at this address set --provider "
                "(ghcr, dockerhub, gitlab, harbor); for Distribution, enable "
                "storage.delete.enabled"
            )
        except (AuthenticationError, AccessDenied):
            return f"{self.host} does not let these credentials delete in {repository}"
        return None

    # -- tags ----------------------------------------------------------------------------

    def list_tags(self, repository: str) -> list[str]:
        """Every tag of ``repository``; an unknown repository has none."""
        return list(self._iter_tags(repository))

    def _iter_tags(self, repository: str) -> Iterator[str]:
        base = self.transport.base_url()
        url: str | None = f"{base}/v2/{repository}/tags/list"
        seen: set[str] = set()
        for _ in range(MAX_TAG_PAGES):
            if url is None:
                return
            doing = f"listing the tags of {self.host}/{repository}"
            resp = self.transport.request(
                "GET",
                "",
                url=url,
                scope=scope(repository, "pull"),
                doing=doing,
                ok=(404,),
                max_bytes=MAX_PAGE_BYTES,
                what="a page of tags",
            )
            if resp.status_code == 404:
                return
            body = request_json(resp, doing)
            # Distribution answers "tags": null for a repository whose tags are all gone.
            tags = body.get("tags") if isinstance(body, dict) else None
            for tag in tags if isinstance(tags, list) else []:
                # A name that is no tag can be neither asked for nor deleted, and its text
                # (escapes, "../") must not reach a URL or a screen: it is passed over.
                if isinstance(tag, str) and is_tag(tag) and tag not in seen:
                    seen.add(tag)
                    yield tag
            url = next_link(resp.headers.get("Link"), resp.url)
        raise RegistryError(f"{self.host} sent more than {MAX_TAG_PAGES} pages of tags")

    # -- referrers (OCI distribution 1.1) ------------------------------------------------

    def referrers(self, repository: str, digest: str) -> list[str] | None:
        """The digests of the manifests whose ``subject`` is ``digest``, from the
        referrers API (``GET /v2/<name>/referrers/<digest>``, pages followed); ``None``
        where the registry has no such API (Distribution 2.8 answers 404): there the
        referrers tag schema's ``sha256-<hex>`` index holds them, as a tag."""
        url_digest(digest, "a referrers subject")
        base = self.transport.base_url()
        url: str | None = f"{base}/v2/{repository}/referrers/{digest}"
        found: list[str] = []
        for _ in range(MAX_TAG_PAGES):
            if url is None:
                return found
            doing = f"listing the referrers of {self._where(repository, digest)}"
            resp = self.transport.request(
                "GET",
                "",
                url=url,
                scope=scope(repository, "pull"),
                headers={"Accept": OCI_INDEX},
                doing=doing,
                # No API: 404 (Distribution 2.8, no route), 400/405/501 elsewhere.
                ok=(400, 404, 405, 501),
                max_bytes=MAX_MANIFEST_BYTES,
                what="a list of referrers",
            )
            if resp.status_code != 200:
                return None
            try:
                body = json.loads(resp.content)
            except ValueError:
                return None  # a page that is no index is no referrers API either
            manifests = body.get("manifests") if isinstance(body, dict) else None
            if not isinstance(manifests, list):
                return None
            for entry in manifests:
                ref = entry.get("digest") if isinstance(entry, dict) else None
                if isinstance(ref, str) and is_digest(ref) and ref not in found:
                    found.append(ref)
            url = next_link(resp.headers.get("Link"), resp.url)
        raise RegistryError(f"{self.host} sent more than {MAX_TAG_PAGES} pages of referrers")

    def list_repositories(self, prefix: str) -> list[str]:
        """Every repository under ``prefix/`` (``""``: all): the provider's own listing
        where it has one, else the registry API's ``_catalog``, paged with ``Link``."""
        if isinstance(self.provider, ListsRepositories):
            names = self.provider.repositories(self, prefix)
        else:
            names = list(self._catalog())
        under = f"{prefix}/" if prefix else ""
        # Names come from the registry: only valid repository paths reach a URL.
        return sorted({n for n in names if n.startswith(under) and is_repository(n)})

    def _catalog(self) -> Iterator[str]:
        base = self.transport.base_url()
        url: str | None = f"{base}/v2/_catalog?n={CATALOG_PAGE}"
        for _ in range(MAX_TAG_PAGES):
            if url is None:
                return
            doing = f"listing the repositories of {self.host}"
            resp = self.transport.request(
                "GET",
                "",
                url=url,
                scope="registry:catalog:*",
                doing=doing,
                max_bytes=MAX_PAGE_BYTES,
                what="a page of the catalog",
            )
            body = request_json(resp, doing)
            names = body.get("repositories") if isinstance(body, dict) else None
            for name in names if isinstance(names, list) else []:
                if isinstance(name, str):
                    yield name
            url = next_link(resp.headers.get("Link"), resp.url)
        raise RegistryError(f"{self.host} sent more than {MAX_TAG_PAGES} pages of its catalog")

    # -- blobs ---------------------------------------------------------------------------

    def get_blob(self, repository: str, digest: str, *, max_bytes: int = MAX_CONFIG_BYTES) -> bytes:
        url_digest(digest, "a blob digest")
        doing = f"reading the blob {self._where(repository, digest)}"
        resp = self.transport.request(
            "GET",
            f"/v2/{repository}/blobs/{digest}",
            scope=scope(repository, "pull"),
            doing=doing,
            max_bytes=max_bytes,
            what="a config",
        )
        data = resp.content
        _check_digest(digest, data, doing)
        return data

    @contextlib.contextmanager
    def open_blob(
        self, repository: str, digest: str, *, size: int | None = None
    ) -> Iterator[BlobReader]:
        """Stream a blob (a layer of any size): a :class:`BlobReader` whose digest (and
        ``size``, when given) is checked as it is read; :meth:`BlobReader.finish` reads what
        is left and checks it all. Memory stays at one read, whatever the blob's size."""
        url_digest(digest, "a layer digest")
        doing = f"reading the blob {self._where(repository, digest)}"
        resp = self.transport.request(
            "GET",
            f"/v2/{repository}/blobs/{digest}",
            scope=scope(repository, "pull"),
            doing=doing,
            stream=True,
        )
        try:
            resp.raw.decode_content = True  # a proxy's Content-Encoding, never the layer's gzip
            reader = BlobReader(resp.raw, digest, size, doing)
            try:
                yield reader
            finally:
                reader.close()
        finally:
            resp.close()

    def has_blob(
        self, repository: str, digest: str, *, actions: tuple[str, ...] = ("pull", "push")
    ) -> bool:
        """Whether the blob is there (``actions``: the token scope; the default is an
        upload's, ``("pull",)`` a reader's)."""
        resp = self.transport.request(
            "HEAD",
            f"/v2/{repository}/blobs/{url_digest(digest, 'a blob digest')}",
            scope=scope(repository, *actions),
            doing=f"checking the blob {self._where(repository, digest)}",
            ok=(404,),
        )
        return resp.status_code != 404

    def upload_blob(self, repository: str, data: bytes) -> str:
        """Upload a small blob monolithically (POST, then PUT with the digest), unless the
        registry has it already."""
        digest = sha256_digest(data)
        if not self.has_blob(repository, digest):
            self.push_blob(repository, digest, len(data), io.BytesIO(data))
        return digest

    def mount_blob(self, repository: str, digest: str, from_repository: str) -> bool:
        """Cross-repository blob mount within this registry (``POST
        .../blobs/uploads/?mount=D&from=REPO``): ``True`` when the registry answered 201
        (mounted, no byte sent); ``False`` when it did not mount (202: it opened an upload
        instead, which is cancelled; or any error: no access to the other repository, a
        registry without mounts), and the caller uploads."""
        url_digest(digest, "a blob digest")
        doing = f"mounting {digest} from {from_repository} into {self.host}/{repository}"
        try:
            resp = self.transport.request(
                "POST",
                f"/v2/{repository}/blobs/uploads/",
                params={"mount": digest, "from": from_repository},
                scope=f"{scope(repository, 'pull', 'push')} {scope(from_repository, 'pull')}",
                doing=doing,
                ok=(201, 202),
            )
        except (RegistryUnreachable, Interrupted):
            raise
        except RegistryError:
            return False
        if resp.status_code == 201:
            return True
        self._cancel_upload(resp, repository)
        return False

    def _cancel_upload(self, started: Any, repository: str) -> None:
        """Cancel an upload the registry opened (best effort: it expires by itself)."""
        location = started.headers.get("Location", "")
        upload = urljoin(started.url, location)
        if not location or urlsplit(upload).netloc != urlsplit(started.url).netloc:
            return
        with contextlib.suppress(RegistryError):
            self.transport.request(
                "DELETE",
                "",
                url=upload,
                scope=scope(repository, "pull", "push"),
                doing=f"cancelling an upload to {self.host}/{repository}",
                ok=(204, 404, 405),
            )

    def push_blob(self, repository: str, digest: str, size: int, source: ReadsBytes) -> None:
        """Upload a blob of any size from ``source`` (a stream, read once, a piece at a
        time: memory stays bounded whatever the size): POST, then one PUT with the digest
        and a streamed body of ``size`` bytes. A stream cannot be re-sent, so a failure is
        raised for the caller to start over from a fresh stream."""
        url_digest(digest, "a blob digest")
        doing = f"uploading {digest} to {self.host}/{repository}"
        start = self.transport.request(
            "POST",
            f"/v2/{repository}/blobs/uploads/",
            scope=scope(repository, "pull", "push"),
            doing=doing,
            ok=(202,),
        )
        upload = self._upload_url(start)
        sep = "&" if "?" in upload else "?"
        body: bytes | OneShotBody
        if size < SMALL_BLOB:
            body = _read_small(source, size, doing)
            _check_digest(digest, body, doing)
        else:
            body = OneShotBody(source, size)
        self.transport.request(
            "PUT",
            "",
            url=f"{upload}{sep}digest={digest}",
            scope=scope(repository, "pull", "push"),
            headers={"Content-Type": "application/octet-stream"},
            data=body,
            doing=doing,
            ok=(201,),
        )

    def _upload_url(self, start: Any) -> str:
        location = start.headers.get("Location", "")
        upload = urljoin(start.url, location)
        if not location or urlsplit(upload).netloc != urlsplit(start.url).netloc:
            raise RegistryError(f"{self.host} sent an upload location on another host")
        return str(upload)

    # -- images --------------------------------------------------------------------------

    def image_config(
        self, repository: str, ref: str, platform: Platform | None = None
    ) -> dict[str, Any]:
        """The image config JSON of ``ref``; for an index, of ``platform``'s image (by
        default linux/amd64 or the first: ``tagger.registry.platform.pick``). Used for
        labels (``org.opencontainers.image.revision``), ``created`` and ``analyze --base``."""
        manifest = self.get_manifest(repository, ref)
        doc = manifest.json()
        if is_index(manifest.media_type) or "manifests" in doc:
            child = pick(doc.get("manifests"), platform)
            if child is None:
                raise NotFound(f"{self._where(repository, ref)} is an index without images")
            manifest = self.get_manifest(repository, url_digest(child, "an index entry"))
            doc = manifest.json()
        config = doc.get("config")
        digest = config.get("digest") if isinstance(config, dict) else None
        if not isinstance(digest, str):
            raise RegistryError(f"the manifest of {self._where(repository, ref)} has no config")
        url_digest(digest, "a config digest")
        try:
            parsed = json.loads(self.get_blob(repository, digest))
        except ValueError as exc:
            raise RegistryError(
                f"the config of {self._where(repository, ref)} is not JSON"
            ) from exc
        if not isinstance(parsed, dict):
            raise RegistryError(f"the config of {self._where(repository, ref)} is not an object")
        return parsed


def _read_small(source: ReadsBytes, size: int, doing: str) -> bytes:
    """All of a small blob, and not a byte more than ``size``."""
    parts: list[bytes] = []
    got = 0
    while got <= size:
        data = source.read(size + 1 - got)
        if not data:
            break
        parts.append(data)
        got += len(data)
    if got != size:
        raise RegistryError(f"{doing}: the source sent {got} bytes, not {size}")
    return b"".join(parts)


class BlobReader(io.RawIOBase):
    """A blob's bytes as they arrive, hashed on the way; a mismatch of digest or size is a
    :class:`RegistryError` at the end of the stream, and a dropped connection one at once."""

    def __init__(self, raw: Any, digest: str, size: int | None, doing: str) -> None:
        algo = digest.partition(":")[0]
        if not is_digest(digest):
            raise RegistryError(f"{doing}: unsupported digest algorithm {_shown(algo)!r}")
        self._raw = raw
        self._hash = hashlib.new(algo)
        self._digest = digest
        self._size = size
        self._doing = doing
        self._read = 0
        self._done = False
        # sha256 is about as slow as inflating the layer (benchmarks/README.md): hashing in
        # a thread of its own (hashlib releases the GIL) hides it on two cores.
        self._chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=16)
        self._hasher = threading.Thread(target=self._hash_all, name="imgtag-digest", daemon=True)
        self._hasher.start()

    def _hash_all(self) -> None:
        while (chunk := self._chunks.get()) is not None:
            self._hash.update(chunk)

    def _stop_hashing(self) -> None:
        if self._hasher.is_alive():
            self._chunks.put(None)
            self._hasher.join()

    def close(self) -> None:
        self._stop_hashing()
        super().close()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._done:
            return 0
        view = memoryview(buffer).cast("B")
        try:
            data = self._raw.read(len(view))
        except Exception as exc:  # urllib3's ProtocolError, ReadTimeoutError ...
            raise RegistryError(
                f"the connection broke while {self._doing} ({type(exc).__name__})"
            ) from None
        if not data:
            self._check()
            return 0
        n = len(data)
        view[:n] = data
        self._chunks.put(data)
        self._read += n
        if self._size is not None and self._read > self._size:
            raise RegistryError(f"{self._doing}: the registry sent more than {self._size} bytes")
        return n

    def finish(self) -> None:
        """Read to the end (a tar reader stops at its end marker) and check the digest."""
        while self.readinto(bytearray(1 << 16)):
            pass

    def _check(self) -> None:
        self._done = True
        self._stop_hashing()
        actual = f"{self._hash.name}:{self._hash.hexdigest()}"
        if actual != self._digest or (self._size is not None and self._read != self._size):
            raise RegistryError(
                f"{self._doing}: the registry sent bytes that do not match {self._digest}"
            )
