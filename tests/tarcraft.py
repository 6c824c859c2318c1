"""Hand-built tar layers for hostile-input tests: raw 512-byte headers (GNU long names, PAX
records, GNU sparse maps, sizes that lie), so that a test says exactly which bytes imgtag
is handed, whatever Python's ``tarfile`` would write. No I/O.

Big layers are built as gzip streams piece by piece (:class:`GzipLayer`): a header of
256 MiB of ``a`` is a few hundred KiB of gzip, and never 256 MiB in the test's memory.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterable

BLOCK = 512


def _octal(value: int, width: int) -> bytes:
    """A numeric field: octal digits and a NUL, or GNU base-256 when it does not fit."""
    digits = b"%0*o" % (width - 1, value)
    if len(digits) <= width - 1:
        return digits + b"\0"
    return bytes([0x80]) + value.to_bytes(width - 1, "big")


def header(
    name: bytes | str,
    *,
    type_: bytes = b"0",
    size: int = 0,
    linkname: bytes | str = b"",
    mode: int = 0o644,
    extended: bool = False,
    sparse: Iterable[tuple[int, int]] = (),
    realsize: int = 0,
) -> bytes:
    """One 512-byte header, GNU format (``ustar  ``), checksum included. Names are cut to
    the field (100 bytes): longer ones need :func:`gnu_long_name` or :func:`pax` first."""
    name = name.encode() if isinstance(name, str) else name
    linkname = linkname.encode() if isinstance(linkname, str) else linkname
    buf = bytearray(BLOCK)
    buf[0:100] = name[:100].ljust(100, b"\0")
    buf[100:108] = _octal(mode, 8)
    buf[108:116] = _octal(0, 8)
    buf[116:124] = _octal(0, 8)
    buf[124:136] = _octal(size, 12)
    buf[136:148] = _octal(0, 12)
    buf[156:157] = type_
    buf[157:257] = linkname[:100].ljust(100, b"\0")
    buf[257:265] = b"ustar  \0"
    if type_ == b"S":  # old GNU sparse: 4 map entries in the header, more in extensions
        pos = 386
        for offset, numbytes in list(sparse)[:4]:
            buf[pos : pos + 12] = _octal(offset, 12)
            buf[pos + 12 : pos + 24] = _octal(numbytes, 12)
            pos += 24
        buf[482] = 1 if extended else 0
        buf[483:495] = _octal(realsize, 12)
    buf[148:156] = b"        "
    buf[148:156] = b"%06o\0 " % sum(buf)
    return bytes(buf)


def pad(size: int) -> bytes:
    return bytes(-size % BLOCK)


def entry(name: str, data: bytes = b"", *, type_: bytes = b"0", linkname: str = "") -> bytes:
    """A plain entry (short name) with its data."""
    size = len(data) if type_ == b"0" else 0
    return header(name, type_=type_, size=size, linkname=linkname) + data + pad(len(data))


def gnu_long_name(name: bytes, *, type_: bytes = b"L", declared: int | None = None) -> bytes:
    """A ``././@LongLink`` header (``L``: the next entry's name, ``K``: its link target)
    and its data; ``declared`` lies about the data's size."""
    data = name + b"\0"
    size = len(data) if declared is None else declared
    return header("././@LongLink", type_=type_, size=size) + data + pad(len(data))


def pax_record(key: str, value: bytes) -> bytes:
    """One PAX record, ``"%d %s=%s\\n"`` with the length counting itself."""
    body = b" " + key.encode() + b"=" + value + b"\n"
    length = len(body) + 1
    while len(str(length)) + len(body) != length:
        length += 1
    return str(length).encode() + body


def pax(records: bytes, *, type_: bytes = b"x", declared: int | None = None) -> bytes:
    """A PAX extended (``x``) or global (``g``) header and its records."""
    size = len(records) if declared is None else declared
    return header("././@PaxHeader", type_=type_, size=size) + records + pad(len(records))


def end() -> bytes:
    return bytes(2 * BLOCK)


class GzipLayer:
    """A gzip layer built from pieces, with the sha256 of the plain tar (its diff_id):
    ``add`` bytes, ``repeat`` one piece many times (a huge header, deep paths), then
    ``blob()``."""

    def __init__(self) -> None:
        self._deflate = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        self._out: list[bytes] = []
        self._plain = hashlib.sha256()
        self.plain_size = 0

    def add(self, data: bytes) -> GzipLayer:
        self._out.append(self._deflate.compress(data))
        self._plain.update(data)
        self.plain_size += len(data)
        return self

    def repeat(self, piece: bytes, times: int) -> GzipLayer:
        for _ in range(times):
            self.add(piece)
        return self

    def blob(self) -> tuple[bytes, str]:
        """The gzip blob and the diff_id."""
        data = b"".join(self._out) + self._deflate.flush()
        return data, "sha256:" + self._plain.hexdigest()
