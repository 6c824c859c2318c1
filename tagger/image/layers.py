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

:func:`open_tar` is the one way a layer's tar headers are read (``analyze`` streams them,
``squash`` seeks over them): Python's :mod:`tarfile` with every header bounded before it
is read, since tarfile reads a GNU long name or a PAX header whole, whatever size it
declares (docs/registries.md, "Untrusted answers"):

- a path or link name is at most :data:`MAX_NAME` bytes (64 KiB), whether from a GNU
  ``././@LongLink`` header or a PAX record: a format error otherwise, refused from the
  header's size field before its data is read;
- a PAX header (so any record in it) is at most :data:`MAX_PAX` (1 MiB), as Go's
  ``archive/tar``, which the engine applies layers with, allows; a GNU sparse map too;
- at most :data:`MAX_CHAIN` extension headers precede one entry (tarfile recurses on
  each);
- PAX *global* headers are skipped unread, as the engine (moby ``UnpackLayer``) ignores
  them: tarfile would merge them into every later entry;
- a size that is negative or beyond any disk is refused, and a streamed layer that ends
  inside a member stops at once (a size that lies would otherwise be skipped over a block
  at a time, forever).

These raise :class:`HeaderBoundError` (a :class:`tarfile.TarError`); :func:`layer_error`
turns it, or any other read error, into one sentence naming the layer.
"""

from __future__ import annotations

import contextlib
import io
import tarfile
import zlib
from collections.abc import Callable, Iterator
from typing import IO, Any, Literal, cast

from tagger.errors import ImageFormatError

_inflater: Any
try:
    # zlib-ng inflates several times faster than the zlib CPython links (stored blocks,
    # as a registry's gzip of incompressible data is: 870 MiB/s against 9.7 GiB/s here;
    # benchmarks/README.md). Same interface; plain zlib where it is missing.
    from zlib_ng import zlib_ng as _inflater
except ImportError:  # pragma: no cover (a dependency; kept working without it)
    _inflater = zlib

#: What inflating a damaged gzip stream raises, whichever zlib does it.
INFLATE_ERRORS: tuple[type[Exception], ...] = (zlib.error, cast(type[Exception], _inflater.error))
_OPEN_ERRORS: tuple[type[Exception], ...] = (
    tarfile.TarError,
    *INFLATE_ERRORS,
    EOFError,
    ValueError,
)

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
#: The bytes :func:`compression` needs to see.
HEAD_BYTES = 4
_CHUNK = 1 << 20  # read size for layer streams
_KEEP = 4096  # how far back a Forward stream can still seek

#: The longest path or link name a layer's tar header may give, in bytes.
MAX_NAME = 64 << 10
#: The largest PAX extended header (all its records) or GNU sparse map, in bytes.
MAX_PAX = 1 << 20
#: The most extension headers (GNU long name/link, PAX) before one entry.
MAX_CHAIN = 8
# A member size no disk holds (2**60 bytes is 1 EiB): above it, the size is a lie, and a
# seek that far would overflow off_t.
_MAX_SIZE = 1 << 60

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
        self._inflate = _inflater.decompressobj(16 + zlib.MAX_WBITS)
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
                except INFLATE_ERRORS as exc:
                    raise ImageFormatError(f"{self._what} is not valid gzip ({exc})") from None
                self._pending = self._inflate.unconsumed_tail
                if self._inflate.eof:
                    # What follows the member is in unused_data (with an output limit,
                    # CPython leaves a copy of it in unconsumed_tail too: not both).
                    rest = self._inflate.unused_data
                    # Another member may follow; NUL padding after the last one is allowed.
                    self._pending = rest if rest.strip(b"\0") else b""
                    self._inflate = _inflater.decompressobj(16 + zlib.MAX_WBITS)
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


# --- reading tar headers within bounds -------------------------------------------------


class HeaderBoundError(tarfile.TarError):
    """A tar header beyond the bounds above (the message says which, without the layer)."""


def layer_error(exc: BaseException, what: str) -> ImageFormatError:
    """One sentence for a layer whose tar cannot be read: ``exc`` from :func:`open_tar`
    or from iterating it."""
    if isinstance(exc, HeaderBoundError):
        return ImageFormatError(f"{what} {exc}")
    return ImageFormatError(f"{what} is damaged ({exc})")


@contextlib.contextmanager
def open_tar(stream: IO[bytes], what: str, *, seekable: bool) -> Iterator[tarfile.TarFile | None]:
    """``stream`` (a plain layer tar) as a tar reader whose headers are bounded, or
    ``None`` for a layer of 0 bytes (no entries). ``seekable``: file data is skipped with
    seeks (a plain tar in a file); otherwise the stream is read through once.

    An error while opening is an ImageFormatError naming ``what``; errors while
    iterating are :mod:`tarfile`'s (and :class:`HeaderBoundError`): see
    :func:`layer_error`.
    """
    try:
        if seekable:
            tar = _LayerTar.open(fileobj=stream, mode="r:")
        else:
            # 1 MiB reads: with tarfile's default 10 KiB, skipping data is a Python call
            # per block.
            guarded = cast(IO[bytes], _EndGuard(stream))
            tar = _LayerTar.open(fileobj=guarded, mode="r|", bufsize=_CHUNK)
    except HeaderBoundError as exc:
        raise layer_error(exc, what) from None
    except tarfile.ReadError as exc:
        if str(exc) == "empty file":  # a layer of 0 bytes: no entries
            yield None
            return
        raise ImageFormatError(f"{what} is not a tar archive ({exc})") from None
    except _OPEN_ERRORS as exc:
        raise ImageFormatError(f"{what} cannot be read ({exc})") from None
    with tar:
        yield tar


class _EndGuard(io.RawIOBase):
    """A stream that refuses to be read again once it has ended. tarfile's stream mode
    skips a member's data by reading it a buffer at a time, and goes on at the end of
    the stream: a size that lies (``1e30`` in a PAX record) would never finish. tarfile
    itself reads past the end once at most (a tar without its end blocks)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._ended = False

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        data = self._raw.read(-1 if size is None else size)
        if data:
            return data
        if self._ended:
            raise tarfile.ReadError("unexpected end of data: a member's size runs past it")
        self._ended = True
        return b""

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(memoryview(buffer)))
        memoryview(buffer).cast("B")[: len(data)] = data
        return len(data)


_EXTENSIONS = frozenset(
    {
        tarfile.GNUTYPE_LONGNAME,
        tarfile.GNUTYPE_LONGLINK,
        tarfile.XHDTYPE,
        tarfile.XGLTYPE,
        tarfile.SOLARIS_XHDTYPE,
    }
)


class _BoundedInfo(tarfile.TarInfo):
    """A TarInfo whose header is checked before its data is read. ``_proc_member`` is
    tarfile's extension point ("can be overridden in a subclass", its comment says); the
    sparse map readers are tarfile's with a bound and a check of their end."""

    def _proc_member(self, tar: Any) -> tarfile.TarInfo:
        kind, size = self.type, self.size
        if size < 0 or size > _MAX_SIZE:
            raise HeaderBoundError(f"has a tar header declaring a size of {size} bytes")
        if kind not in _EXTENSIONS:
            return _checked(super()._proc_member(tar))  # type: ignore[misc]
        long_name = kind in (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)
        limit = MAX_NAME + 1 if long_name else MAX_PAX  # +1: a long name ends with NUL
        if size > limit:
            what = "GNU long name" if long_name else "PAX header"
            raise HeaderBoundError(f"has a {what} of {size} bytes; imgtag reads {limit} at most")
        if tar.chain >= MAX_CHAIN:
            raise HeaderBoundError(
                f"has more than {MAX_CHAIN} extension headers in a row before one entry"
            )
        tar.chain += 1
        try:
            if kind == tarfile.XGLTYPE:
                # Skipped unread, as the engine ignores it: the entry after it is the one.
                tar.fileobj.seek(tar.fileobj.tell() + self._block(size))  # type: ignore[attr-defined]
                return self.fromtarfile(tar)
            return _checked(super()._proc_member(tar))  # type: ignore[misc]
        finally:
            tar.chain -= 1

    def _proc_sparse(self, tar: Any) -> tarfile.TarInfo:
        """An old-GNU sparse entry: its map goes on in extension blocks after the header."""
        structs, extended, original_size = self._sparse_structs  # type: ignore[attr-defined]
        del self._sparse_structs  # type: ignore[attr-defined]
        read = 0
        while extended:
            read += tarfile.BLOCKSIZE
            if read > MAX_PAX:
                raise HeaderBoundError(f"has a GNU sparse map above {MAX_PAX} bytes")
            buf = tar.fileobj.read(tarfile.BLOCKSIZE)
            if len(buf) < tarfile.BLOCKSIZE:
                raise tarfile.ReadError("unexpected end of data in a GNU sparse map")
            for pos in range(0, 21 * 24, 24):
                try:
                    offset = tarfile.nti(buf[pos : pos + 12])  # type: ignore[attr-defined]
                    numbytes = tarfile.nti(buf[pos + 12 : pos + 24])  # type: ignore[attr-defined]
                except ValueError:
                    break
                if offset and numbytes:
                    structs.append((offset, numbytes))
            extended = bool(buf[504])
        self.sparse = structs
        self.offset_data = tar.fileobj.tell()
        tar.offset = self.offset_data + self._block(self.size)  # type: ignore[attr-defined]
        self.size = original_size
        return self

    def _proc_gnusparse_10(self, next: Any, pax_headers: Any, tar: Any) -> None:
        """A PAX sparse 1.0 entry: its map is decimal lines before the data."""
        buf = bytearray()
        lines = 0
        fields = -1
        while fields < 0 or lines < 1 + 2 * fields:
            if len(buf) >= MAX_PAX:
                raise HeaderBoundError(f"has a GNU sparse map above {MAX_PAX} bytes")
            block = tar.fileobj.read(tarfile.BLOCKSIZE)
            if len(block) < tarfile.BLOCKSIZE:
                raise tarfile.ReadError("unexpected end of data in a GNU sparse map")
            buf += block
            lines += block.count(b"\n")
            if fields < 0 and lines:
                fields = int(buf[: buf.index(b"\n")])  # junk: ValueError, a read error
        numbers = [int(n) for n in bytes(buf).split(b"\n")[1 : 1 + 2 * fields]]
        next.offset_data = tar.fileobj.tell()
        next.sparse = list(zip(numbers[::2], numbers[1::2], strict=True))


def _checked(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """``info``, whose path and link name are within :data:`MAX_NAME` bytes."""
    for field, value in (("path", info.name), ("link name", info.linkname)):
        # A str of at most MAX_NAME // 4 characters is at most MAX_NAME bytes in UTF-8.
        if len(value) > MAX_NAME // 4:
            size = len(value.encode("utf-8", "surrogateescape"))
            if size > MAX_NAME:
                raise HeaderBoundError(
                    f"has a {field} of {size} bytes in a tar header; "
                    f"imgtag reads {MAX_NAME} at most"
                )
    if info.size < 0 or info.size > _MAX_SIZE:
        raise HeaderBoundError(f"has a tar header declaring a size of {info.size} bytes")
    return info


class _LayerTar(tarfile.TarFile):
    """tarfile's reader with :class:`_BoundedInfo` headers; ``chain`` counts the extension
    headers being read before one entry."""

    tarinfo = _BoundedInfo
    chain = 0


# --- reading a stream that arrives once ------------------------------------------------


class Forward(io.RawIOBase):
    """A stream read once (an engine's ``docker save`` as it arrives) that tarfile's
    seeking reader can walk: :meth:`seek` goes forward, or back by :data:`_KEEP` bytes
    at most (tarfile looks at the byte before a header, and peeks at a block). The
    stream is read in 1 MiB blocks into one buffer, from which headers are served and
    over which file data is skipped: tarfile's own stream mode copies every skipped byte
    through its buffer several times (0.9 s against 5 ms for a 200 MiB save,
    benchmarks/README.md), and reading each 512-byte header from a socket costs a system
    call each (30,000 files: 40,000 calls). A seek past the end stops at the end; the
    read after it finds nothing, which tarfile reports as a truncated archive."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._buf = bytearray(_CHUNK)
        self._view = memoryview(self._buf)
        self._at = 0  # next byte to serve in the buffer
        self._end = 0  # bytes in the buffer
        self._base = 0  # stream position of the buffer's first byte

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._base + self._at

    def _fill(self) -> bool:
        """Read more, keeping the buffer's last :data:`_KEEP` bytes; ``False`` at the end."""
        keep = min(_KEEP, self._end)
        if keep:
            self._view[:keep] = self._view[self._end - keep : self._end]
        self._base += self._end - keep
        self._at -= self._end - keep
        self._end = keep
        n = self._raw.readinto(self._view[keep:])  # type: ignore[attr-defined]
        self._end += n or 0
        return bool(n)

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        want = len(view)
        filled = 0
        while filled < want:  # a short read is the end, for tarfile
            if self._at == self._end and not self._fill():
                break
            n = min(want - filled, self._end - self._at)
            view[filled : filled + n] = self._view[self._at : self._at + n]
            self._at += n
            filled += n
        return filled

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            raise io.UnsupportedOperation("a forward stream is read in bounded pieces")
        at = self._at
        if self._end - at >= size:  # the usual case: a header within the buffer
            self._at = at + size
            return bytes(self._view[at : at + size])
        buffer = bytearray(size)
        n = self.readinto(buffer)
        del buffer[n:]
        return bytes(buffer)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        target = offset + (self.tell() if whence == io.SEEK_CUR else 0)
        if whence == io.SEEK_END or target < self._base:
            raise io.UnsupportedOperation("a forward stream cannot seek that far back")
        while target - self._base > self._end:
            self._at = self._end
            if not self._fill():
                return self.tell()
        self._at = target - self._base
        return target


class Window(io.RawIOBase):
    """``size`` bytes of a :class:`Forward` from where it stands (one member of an
    archive as it arrives), positions counted from 0; never past the end."""

    def __init__(self, forward: Forward, size: int) -> None:
        self._forward = forward
        self._start = forward.tell()
        self._size = max(0, size)
        self._end = self._start + self._size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._forward.tell() - self._start

    def peek(self, size: int) -> bytes:
        """The next ``size`` bytes (fewer at the end), left to be read."""
        here = self._forward.tell()
        data = self.read(size)
        self._forward.seek(here)
        return data

    def readinto(self, buffer: Any) -> int:
        room = self._end - self._forward.tell()
        if room <= 0:
            return 0
        view = memoryview(buffer).cast("B")
        return self._forward.readinto(view[:room] if len(view) > room else view)

    def read(self, size: int | None = -1) -> bytes:
        room = max(0, self._end - self._forward.tell())
        return self._forward.read(room if size is None or size < 0 else min(size, room))

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.tell(), io.SEEK_END: self._size}[whence]
        target = min(max(0, base + offset), self._size)
        return self._forward.seek(self._start + target) - self._start


# --- the common headers without tarfile ---------------------------------------------------

_BLOCK = 512
_ZERO_BLOCK = bytes(_BLOCK)
# The types read here; anything else (extension headers, sparse files, unknown types) is
# left to tarfile from that header on.
_SIMPLE_TYPES = frozenset(b"0\x00712345" + b"6")
_REGULAR = frozenset(b"0\x007")
_OCTAL_FIELDS = ((100, 108), (108, 116), (116, 124), (136, 148), (329, 337), (337, 345))


def simple_headers(stream: Window) -> Iterator[tuple[bytes, str, int, str]]:
    """``(type, name, size, link name)`` of the plain ustar/GNU/v7 headers at the start
    of a plain tar window, read as :mod:`tarfile` reads them (same names, types and
    sizes), skipping file data; stops before the first header it does not handle (a
    PAX or GNU extension, a sparse file, a base-256 number, a bad checksum, the end
    blocks), leaving the window there for :func:`open_tar` to go on with.

    Why: a layer of 30,000 small files spent 40 µs a header in tarfile and this module's
    views, slower than the engine sends them (benchmarks/README.md); these take ~8 µs."""
    while True:
        block = stream.peek(_BLOCK)
        if len(block) < _BLOCK or block == _ZERO_BLOCK:
            return
        try:
            chksum = int(block[148:156].split(b"\0", 1)[0].strip() or b"0", 8)
            if chksum != 256 + sum(block) - sum(block[148:156]):
                return  # perhaps a signed checksum: tarfile decides
            kind = block[156:157]
            if kind[0] not in _SIMPLE_TYPES or block[124] in (0o200, 0o377):
                return
            size = int(block[124:136].split(b"\0", 1)[0].strip() or b"0", 8)
            for low, high in _OCTAL_FIELDS:  # tarfile refuses junk in any of them
                if block[low] in (0o200, 0o377):
                    return
                int(block[low:high].split(b"\0", 1)[0].strip() or b"0", 8)
        except ValueError:
            return
        if size < 0 or size > _MAX_SIZE:
            return  # tarfile refuses it, in its words
        name = block[:100].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        link = block[157:257].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        # tarfile joins this field to the name whatever the magic says: so does this.
        prefix = block[345:500].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        if kind == b"\x00" and name.endswith("/"):
            kind = b"5"
        if kind == b"5":
            name = name.rstrip("/")
        if prefix:
            name = prefix + "/" + name
        data = -(-size // _BLOCK) * _BLOCK if kind[0] in _REGULAR else 0
        end = stream.tell() + _BLOCK + data
        yield kind, name, size, link
        # After the entry, as tarfile finds a member cut short: when it looks for the next.
        stream.seek(end)
        if stream.tell() < end:
            raise tarfile.ReadError("unexpected end of data")
