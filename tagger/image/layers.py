"""Layer streams: how a stored layer is compressed, and opening it as a plain tar stream.
No I/O of its own: it reads the streams it is handed (a member of a saved archive, a blob
arriving from a registry).

The one place that knows the compressions: a layer is a plain tar, gzip (the magic
``1f 8b``, possibly several concatenated members) or zstd (``28 b5 2f fd``), which imgtag
cannot read yet: an :class:`~tagger.errors.ImageFormatError`, whoever asks. The media type
may say otherwise (``docker save`` calls gzip layers ``tar``); the bytes decide.

:func:`opened` is what every image source's ``open_layer`` goes through: the compression
is detected once, gzip is inflated by :class:`_Gunzip` (1 MiB reads), and a ``finish``
callback (a blob's digest check) runs when the reader is done, so the digest covers the
bytes after the tar's end marker too.
"""

from __future__ import annotations

import contextlib
import io
import zlib
from collections.abc import Callable, Iterator
from typing import IO, Any, Literal, cast

from tagger.errors import ImageFormatError

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
#: The bytes :func:`compression` needs to see.
HEAD_BYTES = 4
_CHUNK = 1 << 20  # read size for layer streams

Compression = Literal["plain", "gzip"]


def compression(head: bytes, what: str) -> Compression:
    """How a layer whose first bytes are ``head`` is stored: ``"gzip"`` or ``"plain"``.

    >>> compression(b"\\x1f\\x8b\\x08\\x00", "layer 0"), compression(b"etc/", "layer 0")
    ('gzip', 'plain')
    >>> compression(ZSTD_MAGIC, "layer 2")
    Traceback (most recent call last):
    ...
    tagger.errors.ImageFormatError: layer 2 is zstd-compressed, which imgtag cannot read yet
    """
    if head.startswith(ZSTD_MAGIC):
        raise ImageFormatError(f"{what} is zstd-compressed, which imgtag cannot read yet")
    return "gzip" if head.startswith(GZIP_MAGIC) else "plain"


@contextlib.contextmanager
def decompressed(raw: IO[bytes], what: str) -> Iterator[IO[bytes]]:
    """``raw`` as a plain tar stream: gzip is decompressed, plain tar passes through."""
    head = raw.read(HEAD_BYTES)
    if not isinstance(head, bytes):
        raise ImageFormatError(f"{what} cannot be read")
    if compression(head, what) == "gzip":
        yield cast(IO[bytes], io.BufferedReader(_Gunzip(head, raw, what), buffer_size=_CHUNK))
    else:
        yield cast(IO[bytes], io.BufferedReader(_Prefixed(head, raw), buffer_size=_CHUNK))


@contextlib.contextmanager
def opened(
    stored: IO[bytes], what: str, *, finish: Callable[[], None] | None = None
) -> Iterator[IO[bytes]]:
    """The plain tar stream of a stored layer; ``finish`` runs after the reader is done
    (without an error): a streamed blob reads its rest there and checks its digest."""
    with decompressed(stored, what) as plain:
        yield plain
    if finish is not None:
        finish()


class _Prefixed(io.RawIOBase):
    """A read-only raw stream: ``head`` (already read from ``raw``), then the rest of it."""

    def __init__(self, head: bytes, raw: IO[bytes]) -> None:
        self._head = head
        self._raw = raw

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._head:
            n = min(len(view), len(self._head))
            view[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._raw.read(len(view))
        view[: len(data)] = data
        return len(data)


class _Gunzip(io.RawIOBase):
    """A gzip stream inflated with 1 MiB reads. Python 3.11's :mod:`gzip` hands zlib 8 KiB
    at a time, a Python call per piece: several times slower on a layer of incompressible
    data. zlib still checks each member's CRC; concatenated members are read in turn."""

    def __init__(self, head: bytes, raw: IO[bytes], what: str) -> None:
        self._raw = raw
        self._what = what
        self._pending = head
        self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._in_member = False  # input went into the current member, which has not ended
        self._raw_eof = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while True:
            if self._pending:
                self._in_member = True
                try:
                    out = self._inflate.decompress(self._pending, len(view))
                except zlib.error as exc:
                    raise ImageFormatError(f"{self._what} is not valid gzip ({exc})") from None
                self._pending = self._inflate.unconsumed_tail
                if self._inflate.eof:
                    # What follows the member is in unused_data (with an output limit,
                    # CPython leaves a copy of it in unconsumed_tail too: not both).
                    rest = self._inflate.unused_data
                    # Another member may follow; NUL padding after the last one is allowed.
                    self._pending = rest if rest.strip(b"\0") else b""
                    self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
                    self._in_member = False
                if out:
                    view[: len(out)] = out
                    return len(out)
                if self._pending:
                    continue
            if self._raw_eof:
                return 0
            chunk = self._raw.read(_CHUNK)
            if not chunk:
                self._raw_eof = True
                if self._in_member:
                    raise ImageFormatError(f"{self._what} is truncated: its gzip stream ends early")
                return 0
            self._pending = chunk
