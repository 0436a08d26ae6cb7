"""Structure checks run before Pillow opens a JPEG, a GIF or a PNM: refuse junk Pillow would crawl.

Pillow steps over bytes it does not expect one at a time, in Python: junk between JPEG markers,
between GIF blocks, and a PNM header comment that never ends. At ~10 MB/s a file of zeros after a
valid signature (2 GB, sparse on disk) kept convcli busy for minutes, in a batch as well. These
walks follow the same structure by its lengths and look for the next marker with a regular
expression, at the speed of C: a run of more than :data:`MAX_JUNK` bytes where a marker or a block
should be, a PNM header longer than that, a JPEG segment of length 0 or 1, or more than
:data:`MAX_PARTS` segments (sub-blocks of one GIF extension) is an
:class:`~convcli.errors.InputError` at once. Anything else (truncation, a wrong length) is left to
Pillow, which says what it finds.
"""

from __future__ import annotations

import re
from typing import BinaryIO

from convcli.errors import InputError

#: The longest run of unexpected bytes (and the longest PNM header) taken: no encoder writes more
#: than a few stray bytes, and the longest header segment of a JPEG or GIF is 64 KiB.
MAX_JUNK = 1 << 20

_CHUNK = 1 << 16


def check_structure(fp: BinaryIO, head: bytes) -> None:
    """Walk a JPEG's markers up to its scan, a GIF's blocks to the trailer, a PNM's header; ``fp`` is
    left at 0. Other formats pass unread."""
    try:
        if head.startswith(b"\xff\xd8\xff"):
            _jpeg(fp)
        elif head[:6] in (b"GIF87a", b"GIF89a"):
            _gif(fp)
        elif head[:1] == b"P" and head[1:2] in b"123456" and len(head) > 2 and head[2:3].isspace():
            _pnm(fp)
    finally:
        fp.seek(0)


def _skip_junk(fp: BinaryIO, pattern: re.Pattern[bytes], what: str) -> bytes:
    """From the current position to the first byte ``pattern`` matches (returned, ``fp`` after it);
    b"" at the end of the file; InputError after more than MAX_JUNK bytes of anything else."""
    start = fp.tell()
    size = 256  # a few stray bytes are the usual case: a 64 KiB read for each was a crawl of its own
    while True:
        pos = fp.tell()
        block = fp.read(size)
        size = _CHUNK
        if not block:
            return b""
        m = pattern.search(block)
        if m is not None and m.start() + pos - start <= MAX_JUNK:
            fp.seek(pos + m.start() + 1)
            return block[m.start():m.start() + 1]
        if pos + len(block) - start > MAX_JUNK:
            msg = f"corrupt {what}: more than {MAX_JUNK // (1 << 20)} MiB of stray bytes at offset {start}"
            raise InputError(msg)


_FF = re.compile(rb"\xff")
_NOT_FF = re.compile(rb"[^\xff]")


#: The most segments before a JPEG's scan, or sub-blocks in one GIF extension: real files have tens
#: (an XMP packet in a GIF, one byte a sub-block, some hundred thousand); 5 million empty APP1
#: segments took 27 s and 754 MB in Pillow, a 32 MB comment of 1-byte sub-blocks 1.5 GB.
MAX_PARTS = 1 << 20


def _jpeg(fp: BinaryIO) -> None:
    fp.seek(2)
    parts = 0
    while True:
        b = fp.read(1)
        if not b:
            return
        if b != b"\xff" and not _skip_junk(fp, _FF, "JPEG data (no marker)"):
            return
        marker = fp.read(1)
        if marker == b"\xff":  # fill bytes: any number, but not a megabyte of them
            marker = _skip_junk(fp, _NOT_FF, "JPEG data (fill bytes)")
        if not marker:
            return
        m = marker[0]
        if m in (0xDA, 0xD9):  # start of scan (libjpeg decodes the rest) or end of image
            return
        if m == 0x01 or 0xD0 <= m <= 0xD8 or m == 0x00:  # no length
            continue
        size = fp.read(2)
        if len(size) < 2:
            return
        length = int.from_bytes(size, "big")
        if length < 2:  # the length counts its own two bytes: 0 or 1 is no segment (and crawled)
            msg = f"corrupt JPEG data: a segment of length {length} at offset {fp.tell() - 4}"
            raise InputError(msg)
        parts += 1
        if parts > MAX_PARTS:
            msg = f"corrupt JPEG data: more than {MAX_PARTS} segments before the image data"
            raise InputError(msg)
        fp.seek(length - 2, 1)


_GIF_BLOCK = re.compile(rb"[!,;]")


def _sub_blocks(fp: BinaryIO, most: int | None = None) -> bool:
    """Skip a chain of data sub-blocks; False at the end of the file. ``most``: how many it may hold."""
    count = 0
    while True:
        n = fp.read(1)
        if not n:
            return False
        if n[0] == 0:
            return True
        count += 1
        if most is not None and count > most:
            msg = f"corrupt GIF data: an extension of more than {most} sub-blocks at offset {fp.tell()}"
            raise InputError(msg)
        fp.seek(n[0], 1)


def _gif(fp: BinaryIO) -> None:
    fp.seek(10)
    flags = fp.read(3)
    if len(flags) < 3:
        return
    if flags[0] & 0x80:
        fp.seek(3 << ((flags[0] & 7) + 1), 1)
    while True:
        b = fp.read(1)
        if b not in (b"!", b",", b";"):
            if not b:
                return
            b = _skip_junk(fp, _GIF_BLOCK, "GIF data (no block)")
        if b in (b";", b""):
            return
        most: int | None = None
        if b == b"!":
            fp.seek(1, 1)  # the extension's label
            most = MAX_PARTS  # an image's data is bounded by its size; a comment only by this
        else:
            desc = fp.read(9)
            if len(desc) < 9:
                return
            if desc[8] & 0x80:
                fp.seek(3 << ((desc[8] & 7) + 1), 1)
            fp.seek(1, 1)  # LZW minimum code size
        if not _sub_blocks(fp, most):
            return


# one whitespace byte a repetition: (?:\s+|...)+ backtracked exponentially on a header that does not
# match ("P5 1", 40 spaces, "x": seconds, then minutes)
_PNM_HEADER = re.compile(rb"P[1-6](?:\s|#[^\n\r]*[\n\r])+\d+(?:\s|#[^\n\r]*[\n\r])+\d+")


def _pnm(fp: BinaryIO) -> None:
    data = fp.read(MAX_JUNK + 1)
    if len(data) > MAX_JUNK and _PNM_HEADER.match(data) is None:
        msg = f"corrupt PNM header: no width and height in its first {MAX_JUNK // (1 << 20)} MiB"
        raise InputError(msg)
