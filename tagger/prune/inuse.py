"""``imgtag prune --keep-from FILE|-``: the images something runs, kept whatever the policy
says. :func:`parse_in_use` is pure (text to entries); :func:`read_in_use` reads the file or
standard input; :func:`resolve_in_use` asks the registries for the digests of the entries
that name a tag (I/O, once, at planning).

The text is one reference or digest a line, or what
``kubectl get pods -A -o jsonpath='{..image}'`` prints (references separated by spaces):
every whitespace-separated word counts, blank lines and ``#`` comments are passed over.
A word is a bare digest (``sha256:…``) or an image reference as ``docker pull`` reads it
(``nginx`` is ``docker.io/library/nginx:latest``, as Kubernetes reads it). A word that is
neither is exit 2 naming its line: a list of what runs that is read wrong would delete
what runs.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from tagger.errors import ImgtagError, UsageError
from tagger.registry.http import clean
from tagger.registry.protocols import Registry
from tagger.registry.reference import Reference, is_digest

_DIGEST_LIKE = re.compile(r"(sha256|sha384|sha512):", re.IGNORECASE)
#: More than any cluster runs; a larger file is not a list of images.
MAX_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class InUse:
    """One word of the list: a digest, or a reference (with a digest or a tag)."""

    line: int
    digest: str | None = None
    reference: Reference | None = None


def parse_in_use(text: str, source: str) -> list[InUse]:
    """The entries of ``text``; ``source`` names it in errors. Pure.

    >>> [(e.line, e.digest) for e in parse_in_use("sha256:" + "a" * 64, "-")]
    [(1, 'sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa')]
    >>> str(parse_in_use("# running\\nnginx  app:1.0.0-1", "-")[0].reference)
    'docker.io/library/nginx:latest'
    >>> parse_in_use("Bad/Name", "pods.txt")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tagger.errors.UsageError: --keep-from pods.txt, line 1: 'Bad/Name' is not ...
    """
    out: list[InUse] = []
    for number, line in enumerate(text.splitlines(), start=1):
        for word in line.split("#", 1)[0].split():
            if is_digest(word):
                out.append(InUse(number, digest=word))
                continue
            if _DIGEST_LIKE.match(word):
                # "sha256:abc" would parse as the image sha256 tagged abc: a cut-off digest.
                raise UsageError(
                    f"--keep-from {source}, line {number}: {clean(word, 80)!r} is not a digest "
                    "(algorithm:hex, sha256 is 64 hex digits)"
                )
            try:
                ref = Reference.parse(word)
            except ImgtagError as exc:
                why = str(exc).split(": ", 1)[-1]
                raise UsageError(
                    f"--keep-from {source}, line {number}: {clean(word, 80)!r} is not an image "
                    f"reference or digest ({why})"
                ) from None
            if ref.digest is None and ref.tag is None:
                ref = ref.with_tag("latest")
            out.append(InUse(number, reference=ref))
    return out


def read_in_use(source: str, read_stdin: Callable[[], str] | None = None) -> list[InUse]:
    """The entries of the file ``source``, or of standard input for ``-``. Reads it."""
    try:
        if source == "-":
            text = (read_stdin or sys.stdin.read)()
        else:
            with open(source, encoding="utf-8") as handle:
                text = handle.read(MAX_BYTES + 1)
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8 text"
        raise UsageError(f"--keep-from {clean(source, 120)!r} cannot be read: {reason}") from None
    if len(text) > MAX_BYTES:
        raise UsageError(f"--keep-from {clean(source, 120)!r} is larger than 16 MiB")
    return parse_in_use(text, source)


def resolve_in_use(
    entries: Iterable[InUse],
    clients: Mapping[str, Registry],
    resolved: Callable[[Reference, str | None], None] = lambda _ref, _digest: None,
) -> frozenset[str]:
    """The digests in use: bare digests and references' own digests as they are, and the
    digest each tag reference points at now, asked once each of the registry it names.

    A reference to a registry no client is open for (a public image the cluster pulls)
    is passed over unless it carries a digest: none of its tags is in a repository being
    pruned, and asking a registry this run has no credentials for would fail the run. A
    tag the registry does not have runs nowhere it could be deleted from.
    """
    digests: set[str] = set()
    asked: dict[tuple[str, str, str], str | None] = {}
    for entry in entries:
        if entry.digest is not None:
            digests.add(entry.digest)
            continue
        ref = entry.reference
        assert ref is not None
        if ref.digest is not None:
            digests.add(ref.digest)
            continue
        client = clients.get(ref.registry)
        if client is None or ref.tag is None:
            continue
        key = (ref.registry, ref.repository, ref.tag)
        if key not in asked:
            info = client.head_manifest(ref.repository, ref.tag)
            asked[key] = info.digest if info is not None else None
            resolved(ref, asked[key])
        found = asked[key]
        if found is not None:
            digests.add(found)
    return frozenset(digests)
