"""``imgtag promote``'s decisions: what SRC and each DEST mean, which manifests and blobs a
copy takes and in what order, which signature tags follow, and the result. Pure, no I/O.

A copy is verbatim: every manifest keeps its exact bytes and media type, so every digest
(the image's, an index's, each child's) is the same at the destination. An index goes
with all its children (platform images and attestation manifests alike), children first,
so a registry never holds an index whose children it lacks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tagger.errors import RegistryError, UsageError
from tagger.registry.client import url_digest
from tagger.registry.manifests import Manifest
from tagger.registry.mediatypes import FOREIGN_LAYER_MARKERS, MANIFEST_TYPES, is_index
from tagger.registry.reference import Reference

#: More manifests than this under one tag is no image anyone built: refused.
MAX_MANIFESTS = 1000
#: A blob's size as a manifest declares it: above 1 TiB it is no layer.
MAX_BLOB_SIZE = 1 << 40
#: cosign's tags for what belongs to a digest (``sha256-<hex>.sig`` ...), and the OCI
#: referrers tag schema's ``sha256-<hex>`` index (distribution-spec 1.1, the fallback).
SIGNATURE_SUFFIXES = (".sig", ".att", ".sbom", "")

STATUSES = ("copied", "exists", "refused")


# -- SRC and DEST ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    """One destination: a repository and the tag it gets."""

    ref: Reference
    tag: str

    @property
    def image(self) -> str:
        return self.ref.name

    def __str__(self) -> str:
        return f"{self.ref.name}:{self.tag}"


def parse_source(text: str) -> Reference:
    """SRC: ``IMAGE:TAG`` or ``IMAGE@DIGEST`` (with both, the digest is what is copied).

    >>> str(parse_source("127.0.0.1:5000/team/app:1.4.2-17"))
    '127.0.0.1:5000/team/app:1.4.2-17'
    >>> parse_source("127.0.0.1:5000/team/app")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tagger.errors.UsageError: SRC 127.0.0.1:5000/team/app names no tag or digest: ...
    """
    ref = Reference.parse(text)
    if ref.tag is None and ref.digest is None:
        raise UsageError(f"SRC {text} names no tag or digest: give IMAGE:TAG or IMAGE@DIGEST")
    return ref


def parse_destination(text: str, source: Reference) -> Target:
    """DEST: ``IMAGE:TAG``; without a tag, the source's tag. A digest is refused (the
    digest is the source's: a destination can only name where it goes).

    >>> src = parse_source("127.0.0.1:5000/staging/app:1.4.2-17")
    >>> str(parse_destination("127.0.0.1:5000/release/app", src))
    '127.0.0.1:5000/release/app:1.4.2-17'
    >>> parse_destination("r.example/app@sha256:" + "0" * 64, src)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tagger.errors.UsageError: DEST r.example/app@sha256:000...000 names a digest: ...
    """
    ref = Reference.parse(text)
    if ref.digest is not None:
        raise UsageError(
            f"DEST {text} names a digest: a destination is IMAGE:TAG (the digest is the source's)"
        )
    tag = ref.tag or source.tag
    if tag is None:
        raise UsageError(
            f"DEST {text} names no tag and the source is a digest: give DEST as IMAGE:TAG"
        )
    ref.with_tag(tag)  # a tag's grammar, or exit 2
    return Target(Reference(ref.registry, ref.repository), tag)


def same_place(source: Reference, target: Target) -> bool:
    """Whether DEST is SRC itself (the same registry, repository and tag)."""
    return (
        source.registry == target.ref.registry
        and source.repository == target.ref.repository
        and source.tag == target.tag
    )


# -- the tree of one image ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Blob:
    """A blob a manifest references: a config or a layer."""

    digest: str
    size: int


@dataclass(frozen=True, slots=True)
class Node:
    """One manifest: its exact bytes, and the manifests and blobs it references."""

    digest: str
    media_type: str
    raw: bytes = field(repr=False)
    children: tuple[str, ...] = ()
    blobs: tuple[Blob, ...] = ()


def _size(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_BLOB_SIZE:
        raise RegistryError(f"the registry sent {what} with a size that is not one: refused")
    return value


def parse_node(manifest: Manifest) -> Node:
    """What a manifest references, every digest and size checked before it is used.

    An index's entries must be manifests of a known type; a manifest's config and layers
    are its blobs, except layers a registry need not hold (foreign, non-distributable)."""
    doc = manifest.json()
    where = f"the manifest {manifest.digest}"
    if is_index(manifest.media_type) or (
        manifest.media_type not in MANIFEST_TYPES and isinstance(doc.get("manifests"), list)
    ):
        entries = doc.get("manifests")
        if not isinstance(entries, list):
            raise RegistryError(f"{where} is an index without a list of manifests")
        children = []
        for entry in entries:
            if not isinstance(entry, dict):
                raise RegistryError(f"{where} has an entry that is not an object")
            media_type = entry.get("mediaType")
            if media_type not in MANIFEST_TYPES:
                raise RegistryError(
                    f"{where} lists a child of a media type imgtag does not copy: refused"
                )
            children.append(url_digest(entry.get("digest"), f"an entry of {where}"))
        return Node(manifest.digest, manifest.media_type, manifest.raw, tuple(children))
    blobs = []
    config = doc.get("config")
    if not isinstance(config, dict):
        raise RegistryError(f"{where} has no config")
    what = f"the config of {where}"
    blobs.append(Blob(url_digest(config.get("digest"), what), _size(config.get("size"), what)))
    layers = doc.get("layers")
    if not isinstance(layers, list):
        raise RegistryError(f"{where} has no list of layers")
    for layer in layers:
        if not isinstance(layer, dict):
            raise RegistryError(f"{where} has a layer that is not an object")
        kind = layer.get("mediaType")
        if isinstance(kind, str) and any(m in kind for m in FOREIGN_LAYER_MARKERS):
            continue  # the registry need not hold it: it stays where its urls say
        what = f"a layer of {where}"
        blobs.append(Blob(url_digest(layer.get("digest"), what), _size(layer.get("size"), what)))
    return Node(manifest.digest, manifest.media_type, manifest.raw, (), tuple(blobs))


@dataclass(frozen=True, slots=True)
class CopyPlan:
    """A whole image: its manifests children first (the root last), its blobs once each."""

    root: Node
    manifests: tuple[Node, ...]
    blobs: tuple[Blob, ...]

    @property
    def digest(self) -> str:
        return self.root.digest

    @property
    def children(self) -> tuple[Node, ...]:
        """Every manifest but the root: written by digest before it."""
        return self.manifests[:-1]

    @property
    def digests(self) -> tuple[str, ...]:
        return tuple(n.digest for n in self.manifests)

    @property
    def size(self) -> int:
        return sum(b.size for b in self.blobs)


def plan_copy(root: Node, nodes: Mapping[str, Node]) -> CopyPlan:
    """Order a tree read from the source: each manifest after all it references (depth
    first, children in their index order), each blob once, in first use.

    >>> leaf = Node("sha256:" + "1" * 64, "m", b"", (), (Blob("sha256:" + "a" * 64, 3),))
    >>> top = Node("sha256:" + "2" * 64, "i", b"", (leaf.digest, leaf.digest))
    >>> plan = plan_copy(top, {leaf.digest: leaf})
    >>> [n.digest[7] for n in plan.manifests], len(plan.blobs), plan.size
    (['1', '2'], 1, 3)
    """
    ordered: list[Node] = []
    seen: set[str] = set()
    blobs: dict[str, Blob] = {}

    def visit(node: Node, depth: int) -> None:
        if node.digest in seen:
            return
        if depth > 4:
            raise RegistryError(f"the index {root.digest} nests deeper than imgtag copies")
        seen.add(node.digest)
        for child in node.children:
            found = nodes.get(child)
            if found is None:
                raise RegistryError(f"the index {node.digest} lists {child}, which was not read")
            visit(found, depth + 1)
        for blob in node.blobs:
            blobs.setdefault(blob.digest, blob)
        ordered.append(node)
        if len(ordered) > MAX_MANIFESTS:
            raise RegistryError(f"{root.digest} has more than {MAX_MANIFESTS} manifests")

    visit(root, 0)
    return CopyPlan(root, tuple(ordered), tuple(blobs.values()))


def signature_tags(digests: Sequence[str], source_tags: Sequence[str]) -> list[str]:
    """The tags of ``source_tags`` that belong to one of ``digests``: cosign's
    ``sha256-<hex>.sig``, ``.att`` and ``.sbom``, and the referrers tag ``sha256-<hex>``.

    >>> d = "sha256:" + "ab" * 32
    >>> signature_tags([d], ["1.0.0-1", "sha256-" + "ab" * 32 + ".sig", "sha256-" + "cd" * 32])
    ['sha256-abababababababababababababababababababababababababababababababab.sig']
    """
    present = set(source_tags)
    out: list[str] = []
    for digest in digests:
        algorithm, _, hexpart = digest.partition(":")
        for suffix in SIGNATURE_SUFFIXES:
            tag = f"{algorithm}-{hexpart}{suffix}"
            if tag in present and tag not in out:
                out.append(tag)
    return out


# -- the result --------------------------------------------------------------------------


@dataclass
class DestinationResult:
    """What happened at one destination."""

    image: str
    tag: str
    status: str  # one of STATUSES
    blobs_copied: int = 0
    blobs_mounted: int = 0
    bytes_copied: int = 0
    aliases: list[str] = field(default_factory=list)
    signatures: list[str] = field(default_factory=list)
    found: str | None = None  # the other digest a refused destination holds

    def as_dict(self) -> dict[str, object]:
        return {
            "image": self.image,
            "tag": self.tag,
            "status": self.status,
            "blobs_copied": self.blobs_copied,
            "blobs_mounted": self.blobs_mounted,
            "bytes_copied": self.bytes_copied,
        }


@dataclass
class PromoteResult:
    """The whole run: the source, its digest, each destination."""

    source: str
    digest: str
    destinations: list[DestinationResult] = field(default_factory=list)
    dry_run: bool = False

    @property
    def refused(self) -> list[DestinationResult]:
        return [d for d in self.destinations if d.status == "refused"]

    def as_dict(self) -> dict[str, object]:
        doc: dict[str, object] = {
            "source": self.source,
            "digest": self.digest,
            "destinations": [d.as_dict() for d in self.destinations],
        }
        if self.dry_run:
            doc["dry_run"] = True
        return doc

    def text_lines(self) -> list[str]:
        """One line per destination: ``image:tag@digest status (...)``."""
        lines = []
        for d in self.destinations:
            where = f"{d.image}:{d.tag}"
            if d.status == "refused":
                lines.append(f"{where} refused: holds {d.found}, not {self.digest}")
                continue
            verb = d.status
            if d.status == "copied" and self.dry_run:
                verb = "would be copied"
            detail = ""
            if d.status == "copied":
                detail = (
                    f" ({d.blobs_copied} blobs copied, {d.blobs_mounted} mounted, "
                    f"{d.bytes_copied} bytes)"
                )
            extra = "".join(f", alias {a}" for a in d.aliases)
            lines.append(f"{where}@{self.digest} {verb}{detail}{extra}")
        return lines
