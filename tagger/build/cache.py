"""Build cache specs (``--cache-from``/``--cache-to``) and provenance modes. Pure.

The syntax is buildx's: ``type=registry,ref=R[,mode=max]``, ``type=inline``,
``type=local,src=DIR`` (from) or ``type=local,dest=DIR`` (to), other ``key=value``
attributes passed on as given (``ignore-error=true``, ``compression=zstd``...); a plain
reference ``R`` means ``type=registry,ref=R``. Parsing happens at the boundary (a
malformed spec is exit 2 before anything is claimed); each builder says which types it
can honour (``tagger.build.builders.base.Capabilities``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tagger.errors import UsageError

#: The cache types imgtag knows; buildx has more backends (gha, s3, azblob) that need
#: services of their own.
CACHE_TYPES = ("registry", "inline", "local")
#: ``--provenance`` values: BuildKit's provenance attestation modes, or none.
PROVENANCE_MODES = ("false", "min", "max")


@dataclass(frozen=True, slots=True)
class CacheSpec:
    """One ``--cache-from`` or ``--cache-to`` value: its type and its other attributes."""

    type: str
    attrs: tuple[tuple[str, str], ...] = ()

    def get(self, key: str) -> str | None:
        return next((v for k, v in self.attrs if k == key), None)

    @property
    def ref(self) -> str | None:
        return self.get("ref")

    def buildx(self) -> str:
        """The spec as buildx takes it.

        >>> parse_cache("r/app:buildcache", "--cache-from").buildx()
        'type=registry,ref=r/app:buildcache'
        """
        return ",".join([f"type={self.type}", *(f"{k}={v}" for k, v in self.attrs)])

    def with_attr(self, key: str, value: str) -> CacheSpec:
        """The spec with ``key=value`` added, unless ``key`` is already given."""
        if self.get(key) is not None:
            return self
        return CacheSpec(self.type, (*self.attrs, (key, value)))


def parse_cache(text: str, option: str) -> CacheSpec:
    """One ``--cache-from``/``--cache-to`` value (``option`` names which, for messages).

    >>> parse_cache("type=registry,ref=r/app:c,mode=max", "--cache-to")
    CacheSpec(type='registry', attrs=(('ref', 'r/app:c'), ('mode', 'max')))
    >>> parse_cache("r/app:buildcache", "--cache-from").ref
    'r/app:buildcache'
    >>> parse_cache("type=local,dest=/tmp/c", "--cache-to").type
    'local'
    >>> parse_cache("type=registry", "--cache-from")
    Traceback (most recent call last):
    ...
    tagger.errors.UsageError: --cache-from 'type=registry' needs ref=REFERENCE
    >>> parse_cache("type=s3,bucket=b", "--cache-to")
    Traceback (most recent call last):
    ...
    tagger.errors.UsageError: --cache-to 'type=s3,bucket=b': unknown cache type s3 (registry, ...)
    >>> parse_cache("ref=a,,b", "--cache-from")
    Traceback (most recent call last):
    ...
    tagger.errors.UsageError: --cache-from 'ref=a,,b' is not KEY=VALUE,... (e.g. ...)
    """
    text = text.strip()
    example = "(e.g. type=registry,ref=REG/app:buildcache)"
    if not text:
        raise UsageError(f"{option} is empty {example}")
    if "=" not in text:
        if "," in text or any(ch.isspace() for ch in text):
            raise UsageError(f"{option} {text!r} is neither a reference nor KEY=VALUE,...")
        return CacheSpec("registry", (("ref", text),))
    fields: list[tuple[str, str]] = []
    kind: str | None = None
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        if not sep or not key or not value:
            raise UsageError(f"{option} {text!r} is not KEY=VALUE,... {example}")
        if key == "type":
            if kind is not None:
                raise UsageError(f"{option} {text!r} gives type= twice")
            kind = value.strip().lower()
            continue
        if any(k == key for k, _ in fields):
            raise UsageError(f"{option} {text!r} gives {key}= twice")
        fields.append((key, value))
    kind = kind or "registry"
    if kind not in CACHE_TYPES:
        raise UsageError(f"{option} {text!r}: unknown cache type {kind} ({', '.join(CACHE_TYPES)})")
    spec = CacheSpec(kind, tuple(fields))
    if kind == "registry" and not spec.ref:
        raise UsageError(f"{option} {text!r} needs ref=REFERENCE")
    if kind == "local":
        need = "src" if option == "--cache-from" else "dest"
        if not spec.get(need):
            raise UsageError(f"{option} {text!r} needs {need}=DIRECTORY")
    if spec.get("mode") not in (None, "min", "max"):
        raise UsageError(f"{option} {text!r}: mode is min or max")
    return spec


def parse_caches(values: Iterable[str], option: str) -> tuple[CacheSpec, ...]:
    """Every value of a repeatable cache option, parsed."""
    return tuple(parse_cache(v, option) for v in values)


def parse_provenance(value: object) -> str | None:
    """``--provenance`` (``false``, ``min``, ``max``; TOML's ``false`` too), or None.

    >>> parse_provenance("MAX"), parse_provenance(False), parse_provenance(None)
    ('max', 'false', None)
    >>> parse_provenance("mode=max")
    Traceback (most recent call last):
    ...
    tagger.errors.UsageError: --provenance mode=max: give false, min or max
    """
    if value is None:
        return None
    text = ("false" if value is False else str(value)).strip().lower()
    if text not in PROVENANCE_MODES:
        raise UsageError(f"--provenance {value}: give false, min or max")
    return text


class UnreadCaches:
    """Finds the ``--cache-from`` references BuildKit could not import (it warns and builds
    without them) in its plain progress output, fed line by line as it streams. Pure.

    >>> watch = UnreadCaches()
    >>> for line in ["#3 importing cache manifest from r/app:c",
    ...              "#3 ERROR: failed to configure registry cache importer: not found",
    ...              "#4 importing cache manifest from r/app:ok", "#4 DONE 0.1s"]:
    ...     watch.feed(line)
    >>> watch.refs
    ['r/app:c']
    """

    def __init__(self) -> None:
        self._step_ref: dict[str, str] = {}
        self.refs: list[str] = []

    def feed(self, line: str) -> None:
        step, _, rest = line.strip().partition(" ")
        if not step.startswith("#"):
            return
        if rest.startswith("importing cache manifest from "):
            self._step_ref[step] = rest.removeprefix("importing cache manifest from ").strip()
        elif rest.startswith("ERROR") and step in self._step_ref:
            ref = self._step_ref.pop(step)
            if ref not in self.refs:
                self.refs.append(ref)
