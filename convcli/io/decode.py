"""Image files in: headers and pixels.

Decoding turns any file Pillow reads (and .npy arrays) into float32 arrays on the file's
own scale (0..255 or 0..65535) plus a header that says what was done on the way (palette
expanded, EXIF orientation applied, frames...). Encoding is :mod:`convcli.io.encode`,
floats back to pixels :mod:`convcli.core.pixels`, writing :mod:`convcli.io.files`.

Untrusted files fail with :class:`~convcli.errors.InputError` carrying a one-line
reason without the path (the caller names the input).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import os
import re
import struct
import sys
import threading
import warnings
import zlib
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import field
from importlib import import_module
from typing import BinaryIO, Final, NamedTuple

import numpy as np
from PIL import Image, UnidentifiedImageError

from convcli.core.color import luminance
from convcli.core.records import record
from convcli.errors import InputError
from convcli.io.files import one_line, os_reason
from convcli.io.formats import icc_fits, icc_space
from convcli.io.metadata import PNG_INFO_KEYS, XMP_ORIENTATION, Metadata, read_metadata
from convcli.io.npy import NPY_MAGIC, NPY_MAX_HEADER, read_npy_header
from convcli.io.png import PNG_SIGNATURE, CheckedPng, decode_png, late_chunks, png_ihdr
from convcli.io.pngrows import SHORT_DATA, PngRows, can_read_rows
from convcli.io.structure import check_structure

Source = str | os.PathLike | bytes

#: Pillow's own decompression-bomb limit, read once at import (``--max-pixels`` default).
DEFAULT_MAX_PIXELS: int = Image.MAX_IMAGE_PIXELS or 89_478_485
#: zlib level for PNG: 1 is ~4x faster than Pillow's 6 for ~14% larger files.
# --------------------------------------------------------------------------- header


@record(frozen=True)
class ImageHeader:
    """What the file says, as the arithmetic will see it (after EXIF orientation and --gray)."""

    width: int
    height: int
    channels: int  # 1 or 3 colour channels
    has_alpha: bool
    bit_depth: int  # 8 or 16: the scale of the values entering the arithmetic
    mode: str  # Pillow mode as stored ("LA;16" for 16-bit grey+alpha PNG, which Pillow cannot hold)
    format: str
    n_frames: int
    notes: tuple[str, ...]
    #: a (H, W, 1) .npy array: a one-channel float result is written (H, W, 1) too, not (H, W)
    channel_axis: bool = False
    #: why the frames after the first cannot be counted (a cut animation), or None
    later_frames: str | None = None

    @property
    def maxval(self) -> int:
        """Largest stored value: 255 or 65535."""
        return (1 << self.bit_depth) - 1


@record
class DecodedImage:
    """Decoded pixels: float32 on the stored scale, colour (H, W, C) and alpha (H, W) apart."""

    header: ImageHeader
    color: np.ndarray
    alpha: np.ndarray | None
    icc_profile: bytes | None
    metadata: Metadata = field(default_factory=Metadata)  # EXIF (orientation 1), DPI, XMP, text, comment


@record(frozen=True)
class _Mode:
    """How one stored Pillow mode is decoded."""

    convert: str | None  # Pillow mode to convert to before reading the array, or None
    channels: int
    alpha: bool
    bit_depth: int
    note: str | None = None


# The one table of stored modes. Anything else (F, I;16S, I;32...) is refused.
_MODES: dict[str, _Mode] = {
    "1": _Mode("L", 1, False, 8, "1-bit expanded to 0/255"),
    "L": _Mode(None, 1, False, 8),
    "LA": _Mode(None, 1, True, 8),
    "La": _Mode("LA", 1, True, 8, "premultiplied grey+alpha un-premultiplied"),
    "RGB": _Mode(None, 3, False, 8),
    "RGBX": _Mode("RGB", 3, False, 8),
    "RGBA": _Mode(None, 3, True, 8),
    "RGBa": _Mode("RGBA", 3, True, 8, "premultiplied RGBA un-premultiplied"),
    "P": _Mode("RGB", 3, False, 8, "palette expanded to RGB"),
    "PA": _Mode("RGBA", 3, True, 8, "palette expanded to RGBA"),
    "CMYK": _Mode("RGB", 3, False, 8, "CMYK converted to RGB"),
    "YCbCr": _Mode("RGB", 3, False, 8, "YCbCr converted to RGB"),
    "LAB": _Mode("RGB", 3, False, 8, "LAB converted to RGB"),
    "HSV": _Mode("RGB", 3, False, 8, "HSV converted to RGB"),
    "I;16": _Mode(None, 1, False, 16),
    "I;16L": _Mode(None, 1, False, 16),
    "I;16B": _Mode(None, 1, False, 16),
    "I;16N": _Mode(None, 1, False, 16),
    "I": _Mode(None, 1, False, 16),  # 32-bit int: accepted when the values fit 16 bits
    # 16-bit PNGs Pillow opens as 8-bit RGB/RGBA; convcli decodes them itself.
    "LA;16": _Mode(None, 1, True, 16),
    "RGB;16": _Mode(None, 3, False, 16),
    "RGBA;16": _Mode(None, 3, True, 16),
}
_PNG16_MODES = {4: "LA;16", 2: "RGB;16", 6: "RGBA;16"}  # PNG colour type -> mode above


def mode_layout(mode: str) -> tuple[int, int] | None:
    """(colour channels, bit depth) convcli reads a stored Pillow mode as, from the table above;
    None for a mode it does not read."""
    m = _MODES.get(mode)
    return (m.channels, m.bit_depth) if m is not None else None
# Modes whose info["transparency"] is a colour key (a value that means transparent).
_KEYED_MODES = ("1", "L", "RGB", "RGB;16", "I;16", "I;16B", "I;16L", "I;16N", "I")
_MODE_WITH_KEY = {"P": _Mode("RGBA", 3, True, 8, "palette expanded to RGBA")}
_REFUSED_MODES = {
    "F": "32-bit float image (mode F) is not supported as input; use .npy for raw floats, or a 16-bit image",
}
_REFUSED_FORMATS = {"EPS": "EPS/PostScript is not read (decoding it would run Ghostscript)"}
_FRAME_KINDS = {
    "GIF": "animated GIF",
    "PNG": "animated PNG",
    "WEBP": "animated WebP",
    "TIFF": "multi-page TIFF",
    "MPO": "multi-picture JPEG",
}


@record(frozen=True)
class _Plan:
    """How to decode an opened image: the header plus the steps behind it."""

    header: ImageHeader
    stored: _Mode
    colour_key: tuple[int, ...] | None  # the stored value(s) an L/RGB/I;16 image marks transparent
    orientation: int  # the file's EXIF orientation (what the report says, what the DPI pair follows)
    png_decoder: str | None  # "la16" or "own" where convcli decodes a 16-bit PNG Pillow would reduce
    turn: int  # the orientation convcli applies to the decoded array: 1 where Pillow turns it itself


# ---------------------------------------------------------------- warnings and truncation

#: A warning whose text says the data ran out is an input error, not a note.
_TRUNCATION_WORDS = re.compile(r"truncat|premature|unexpected end", re.IGNORECASE)


class _Said(logging.Handler):
    """Pillow's log records of warning level and above, as lines (they become notes)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(one_line(record.getMessage()))


@contextmanager
def _c_messages(lines: list[str]) -> Iterator[None]:
    """What a C library prints on file descriptor 2 meanwhile (libtiff's handlers write there, past
    Python), into ``lines``: for the error, or a note, not the terminal. Python's own writes to
    stderr meanwhile (another thread's) are passed on afterwards."""
    import tempfile  # TIFF only: not every command's start-up

    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (AttributeError, OSError, ValueError):  # no stderr at all: nothing to keep it from
        yield
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(AttributeError, OSError, ValueError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read(1 << 16).decode("utf-8", "replace")
            others = []  # passed on byte for byte (a progress bar's carriage returns included)
            for line in text.splitlines(keepends=True):
                if _C_MESSAGE.match(line):
                    # Pillow hands libtiff its data as "tempfile.tif", a name the user never gave
                    lines.append(line.rstrip("\r\n").removeprefix("tempfile.tif: "))
                else:
                    others.append(line)
            if others:
                os.write(2, "".join(others).encode())


#: libtiff's messages: "Module: text" or "file: text" ("ZIPDecode: Decoding error at scanline 0, ...",
#: "tempfile.tif: Using code not yet in table.")
_C_MESSAGE: Final = re.compile(r"^[\w.-]+: \S")


@contextmanager
def _warnings_to_notes(notes: list[str]) -> Iterator[None]:
    """Pillow's (and NumPy's) warnings while opening or decoding: never printed.

    One saying the data ran out raises :class:`InputError`; any other becomes a note
    ("warning: ..."), once.
    """
    pillow = logging.getLogger("PIL")  # Pillow logs some refusals ("More samples per pixel than can be
    said = _Said()  # decoded") before raising: with no handler, Python printed them on stderr
    pillow.addHandler(said)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    finally:
        pillow.removeHandler(said)
    for text in [one_line(w.message) for w in caught] + said.lines:
        if _TRUNCATION_WORDS.search(text):
            raise InputError(f"truncated or corrupt data ({text})")
        note = f"warning: {text}"
        if note not in notes:
            notes.append(note)


def _with_notes(header: ImageHeader, notes: list[str]) -> ImageHeader:
    extra = tuple(n for n in notes if n not in header.notes)
    return dataclasses.replace(header, notes=header.notes + extra) if extra else header


#: A marker that ends entropy-coded data: 0xFF then anything but a stuffed 0x00, a restart
#: marker (RST0..7) or another fill 0xFF.
_JPEG_SCAN_END = re.compile(rb"\xff(?![\x00\xd0-\xd7\xff])")
_JPEG_SOF_HUFFMAN = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7}


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def check_jpeg_data(data: bytes) -> None:
    """Refuse a JPEG whose entropy-coded data cannot hold the image its header announces.

    libjpeg fills what is missing with grey and only warns, and Pillow drops the warning:
    a 5 KB file whose header claims 9000x9000 would decode as a grey 9000x9000 image. With
    Huffman coding every 8x8 block of every component costs at least one bit (its DC code,
    in the first scan that covers it), so fewer bits than blocks means data is missing.
    Arithmetic-coded files (rare) and files this parser cannot follow are left to the decoder.
    """
    pos, blocks, coded = 2, 0, 0
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return  # not where a marker should be: leave it to the decoder
        marker = data[pos + 1]
        if marker == 0xFF:
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        if marker == 0xD9:  # EOI
            break
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        segment = data[pos + 4:pos + 2 + length]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if marker not in _JPEG_SOF_HUFFMAN or len(segment) < 6:
                return
            height, width, n = struct.unpack(">HHB", segment[1:6])
            comps = [(segment[6 + 3 * i + 1] >> 4, segment[6 + 3 * i + 1] & 15) for i in range(n)
                     if 6 + 3 * i + 2 < len(segment)]
            if not comps or height == 0:
                return
            hmax, vmax = max(c[0] for c in comps) or 1, max(c[1] for c in comps) or 1
            blocks = sum(_ceil(_ceil(width * h, hmax), 8) * _ceil(_ceil(height * v, vmax), 8)
                         for h, v in comps)
        pos += 2 + length
        if marker == 0xDA:  # SOS: entropy-coded data up to the next real marker
            end = _JPEG_SCAN_END.search(data, pos)
            stop = end.start() if end else len(data)
            coded += stop - pos
            pos = stop
    if blocks and coded * 8 < blocks:
        msg = (f"truncated JPEG data: {coded} bytes of image data cannot hold the {blocks} blocks "
               "its header announces")
        raise InputError(msg)


# ---------------------------------------------------------------- opening, safely

_LIMIT_LOCK = threading.RLock()


@contextmanager
def _pillow_limit_lifted() -> Iterator[None]:
    """Switch Pillow's own bomb check off: convcli checks ``max_pixels`` itself, from the header."""
    with _LIMIT_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved




#: What Pillow raises on broken image data, beyond OSError: seen from cut multi-frame files
#: (IndexError from a GIF's n_frames, TypeError "Missing dimensions" from a TIFF's), bad EXIF
#: (KeyError) and corrupt chunks. Every read of an untrusted file's header, frames or pixels
#: turns these into one InputError line.
PILLOW_ERRORS: tuple[type[Exception], ...] = (
    OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, KeyError, struct.error, zlib.error,
)


def open_source(source: Source) -> BinaryIO:
    if isinstance(source, bytes | bytearray | memoryview):
        return io.BytesIO(bytes(source))
    try:
        return open(source, "rb")  # noqa: SIM115 - closed by the caller
    except OSError as exc:
        raise InputError(os_reason(exc)) from None



#: Leading bytes -> the Pillow format that reads them and its plugin. Image.open on a file object
#: first imports five plugins (BMP, GIF, JPEG, PPM and PNG, GIF's with subprocess); a PNG or a
#: JPEG is opened through its own plugin alone, anything else by Image.open.
_PLUGINS: tuple[tuple[bytes, str, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "PNG", "PIL.PngImagePlugin"),
    (b"\xff\xd8\xff", "JPEG", "PIL.JpegImagePlugin"),
)


def _pillow_open(fp: BinaryIO, head: bytes) -> Image.Image:
    """``Image.open(fp)``, through the one plugin ``head`` names where :data:`_PLUGINS` has it."""
    for magic, fmt, module in _PLUGINS:
        if head.startswith(magic):
            import_module(module)
            factory, _ = Image.OPEN[fmt]
            try:
                return factory(fp, "")
            except (SyntaxError, IndexError, TypeError, struct.error):
                fp.seek(0)  # what Image.open does then: every other format is tried, then it says so
            break
    return Image.open(fp)


@contextmanager
def _opened(source: Source) -> Iterator[tuple[Image.Image, BinaryIO, bytes]]:
    """Open ``source`` with Pillow (header only); yields the image, its file and the first bytes."""
    fp = open_source(source)
    try:
        try:
            head = fp.read(64)
            fp.seek(0)
        except OSError as exc:  # e.g. EISDIR on read on some systems
            raise InputError(os_reason(exc)) from None
        if not head:
            raise InputError("empty file")
        late = late_chunks(fp) if head.startswith(PNG_SIGNATURE) else []
        if head.startswith(PNG_SIGNATURE):
            fp = CheckedPng(fp)  # type: ignore[assignment]  # every chunk's CRC checked as it is read
        ihdr = png_ihdr(head)
        if ihdr is not None and (ihdr[0] == 0 or ihdr[1] == 0):
            raise InputError(f"zero-sized image ({ihdr[0]}x{ihdr[1]})")
        try:
            check_structure(fp, head)
        except OSError as exc:
            raise InputError(os_reason(exc)) from None
        try:
            with _pillow_limit_lifted():
                im = _pillow_open(fp, head)
        except UnidentifiedImageError:
            raise InputError("not an image file (Pillow cannot identify it)") from None
        except PILLOW_ERRORS as exc:
            raise InputError(f"unreadable image header ({one_line(exc)})") from None
        try:
            _with_late_chunks(im, late)
            yield im, fp, head
        finally:
            im.close()
    finally:
        fp.close()


#: Pillow's limits on a PNG's text (PngImagePlugin.MAX_TEXT_CHUNK for one chunk inflated,
#: MAX_TEXT_MEMORY for all of it): past them its load fails, so the header read fails the same way.
_TEXT_CHUNK_BYTES = 1 << 20
_TEXT_MEMORY_BYTES = 64 << 20


def _with_late_chunks(im: Image.Image, chunks: list[tuple[bytes, bytes]]) -> None:
    """Put a PNG's eXIf and text chunks found after its image data (:func:`late_chunks`) into
    ``im.info`` as Pillow would once the pixels are loaded, so the header knows the EXIF orientation
    and the metadata is carried; what the chunks before the data said is kept. InputError where
    Pillow's load would fail on them (too much text)."""
    budget = _TEXT_MEMORY_BYTES
    for kind, body in chunks:
        if not body:  # late_chunks stopped at its cap
            raise InputError("unreadable image header (too much text in the PNG's chunks, over 64 MiB)")
        if kind == b"eXIf":
            prefix = b"Exif\x00\x00"  # Pillow's own form of a PNG's EXIF (some writers put it in too)
            im.info.setdefault("exif", body if body.startswith(prefix) else prefix + body)
            continue
        key, sep, rest = body.partition(b"\0")
        name = key.decode("latin-1")
        if not sep or not name or name in im.info or name in PNG_INFO_KEYS:
            continue  # checked before inflating: 7,000 zTXt of one key were each inflated, then dropped
        raw = _late_text(kind, rest)
        if raw is None:
            continue  # as Pillow leaves out a chunk it cannot read
        budget -= len(raw)
        if budget < 0:
            raise InputError("unreadable image header (too much text in the PNG's chunks, over 64 MiB)")
        try:
            im.info[name] = raw.decode("utf-8" if kind == b"iTXt" else "latin-1")
        except UnicodeDecodeError:
            continue


def _late_text(kind: bytes, rest: bytes) -> bytes | None:
    """A text chunk's text after its keyword, inflated if compressed; None where Pillow skips it."""
    if kind == b"tEXt":
        return rest
    if kind == b"zTXt":  # compression method (0: zlib), then the stream
        return _inflated(rest[1:]) if rest[:1] == b"\0" else None
    # iTXt: compressed flag, method, language\0, translated keyword\0, text
    if len(rest) < 2 or rest[:1] not in (b"\0", b"\1") or rest[1:2] != b"\0":
        return None
    parts = rest[2:].split(b"\0", 2)
    if len(parts) < 3:
        return None
    return _inflated(parts[2]) if rest[:1] == b"\1" else parts[2]


def _inflated(data: bytes) -> bytes | None:
    """A text chunk's zlib stream, at most :data:`_TEXT_CHUNK_BYTES` of it (InputError past it, as
    Pillow's load fails there); None if it is no zlib stream."""
    stream = zlib.decompressobj()
    try:
        out = stream.decompress(data, _TEXT_CHUNK_BYTES)
    except zlib.error:
        return None
    if stream.unconsumed_tail:
        msg = f"unreadable image header (a text chunk inflates past {_TEXT_CHUNK_BYTES >> 20} MiB)"
        raise InputError(msg)
    return out


def _orientation(im: Image.Image) -> int:
    """EXIF orientation 1..8 (or, without one, XMP's ``tiff:Orientation``, as Pillow's ``getexif``
    reads it), read without decoding pixels (1 when absent or unreadable)."""
    if im.format == "PNG" and "exif" not in im.info:
        # PngImageFile.getexif() would decode the image to look for a late eXIf chunk (read already)
        xmp = im.info.get("XML:com.adobe.xmp")
        found = XMP_ORIENTATION.search(xmp.encode("utf-8", "replace")) if isinstance(xmp, str) else None
        return int(found[2]) if found and 1 <= int(found[2]) <= 8 else 1
    try:
        value = im.getexif().get(0x0112, 1)
    except PILLOW_ERRORS:
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _pillow_turns(im: Image.Image) -> bool:
    """Whether Pillow applies the EXIF orientation itself as it loads: TIFF in the Pillow releases
    that keep the stored size apart as ``_tile_size`` (13 here; its ``size`` is upright already).
    Turning it again gave an orientation-3 TIFF upside down, an orientation-6 one 180 degrees off."""
    return im.format == "TIFF" and hasattr(im, "_tile_size")


def _size_turned_on_load(im: Image.Image, orientation: int) -> bool:
    """Whether Pillow's ``size`` before loading is not yet the turned one: a TIFF whose orientation is
    in its XMP alone (Pillow turns the size by the Orientation tag when it opens the file, and the
    pixels by ``getexif``, which reads XMP too, when it loads them: 'decoded 64x48 but the header
    said 48x64')."""
    return _pillow_turns(im) and orientation >= 5 and 0x0112 not in getattr(im, "tag_v2", {})


#: A raw mode of 16- or 32-bit samples ("RGB;16B", "L;16B"), not a packed one ("BGR;16", 5-6-5).
_WIDE_RAWMODE = re.compile(r";(16|32)[BLN]$")


_TIFF_SAMPLE_FORMAT = 339  # 1 unsigned integer (the default), 2 signed integer, 3 IEEE float
_TIFF_SIGNED = 2


def _tag_values(im: Image.Image, tag: int) -> tuple[object, ...]:
    """A TIFF tag's values as a tuple (none when absent)."""
    value = getattr(im, "tag_v2", {}).get(tag)
    return value if isinstance(value, tuple) else () if value is None else (value,)


def stored_bits(im: Image.Image, fmt: str) -> int:
    """Bits per sample the file stores (8 when it does not say), for a note where Pillow's 8-bit
    mode holds fewer: TIFF's BitsPerSample, a PPM's maxval (65535 -> 16), SGI's 2-byte samples
    or a raw mode of 16-bit samples in the decoding tile."""
    if fmt == "TIFF":
        bits = [b for b in _tag_values(im, 258) if isinstance(b, int)]
        return max(bits) if bits else 8
    for tile in getattr(im, "tile", None) or ():
        codec, args = tile[0], tile[3]
        if codec in ("ppm", "ppm_plain") and isinstance(args, tuple) and isinstance(args[-1], int):
            return max(8, args[-1].bit_length())  # maxval
        if codec == "SGI16":
            return 16
        rawmode = args[0] if isinstance(args, tuple) and args else args
        match = _WIDE_RAWMODE.search(rawmode) if isinstance(rawmode, str) else None
        if match:
            return int(match[1])
    return 8


#: The fewest bytes an APNG frame takes in the file: its fcTL chunk (26 bytes of data, 12 of chunk).
_APNG_FRAME_BYTES: Final = 38


def _source_size(im: Image.Image) -> int | None:
    """The size in bytes of the file ``im`` was opened from, or None if it cannot be told."""
    fp = getattr(im, "fp", None)
    try:
        at = fp.tell()  # type: ignore[union-attr]
        size = fp.seek(0, os.SEEK_END)  # type: ignore[union-attr]
        fp.seek(at)  # type: ignore[union-attr]
    except (AttributeError, OSError, ValueError):
        return None
    return int(size)


def _inspect(im: Image.Image, head: bytes, gray: bool, max_pixels: int | None) -> _Plan:
    """Build the header and the decoding plan of an opened image, checking size limits."""
    fmt = im.format or "unknown"
    if fmt in _REFUSED_FORMATS:
        raise InputError(_REFUSED_FORMATS[fmt])
    mode_name = im.mode
    bits = stored_bits(im, fmt)
    if fmt == "TIFF" and _TIFF_SIGNED in _tag_values(im, _TIFF_SAMPLE_FORMAT) and bits <= 16:
        # Pillow reads 8-bit signed samples as unsigned (-100 came out as 156, exit 0) and 16-bit ones
        # as 32-bit integers; 32-bit ones it reads right (mode I, and Pillow writes every mode I image
        # so), and they are checked as any mode I image is (0..65535)
        raise InputError(f"signed {bits}-bit integer TIFF (SampleFormat 2) is not supported: convcli reads "
                         "unsigned integer and floating-point samples")
    notes: list[str] = []
    ihdr = png_ihdr(head) if fmt == "PNG" else None
    png_decoder = None
    if ihdr is not None and ihdr[2] == 16 and ihdr[3] in _PNG16_MODES:
        mode_name = _PNG16_MODES[ihdr[3]]
        png_decoder = "la16" if ihdr[3] == 4 else "own"
    elif mode_name in _MODES and _MODES[mode_name].bit_depth == 8:
        if bits > 8 and mode_name in ("RGB", "RGBA", "LA"):
            notes.append(f"{bits}-bit {mode_name} read as 8-bit (Pillow has no {bits}-bit {mode_name} mode)")
        elif bits > 8:
            notes.append(f"{bits}-bit {mode_name} read as 8-bit (as Pillow's {fmt} reader gives it)")
    if mode_name in _REFUSED_MODES:
        raise InputError(_REFUSED_MODES[mode_name])
    if mode_name not in _MODES:
        raise InputError(f"unsupported image mode {mode_name}")
    stored = _MODES[mode_name]
    colour_key = None
    has_key = "transparency" in im.info or (
        mode_name == "P" and im.palette is not None and im.palette.mode == "RGBA"
    )
    if has_key and mode_name in _MODE_WITH_KEY:
        stored = _MODE_WITH_KEY[mode_name]
    elif has_key and mode_name in _KEYED_MODES and isinstance(im.info["transparency"], int | tuple):
        key = im.info["transparency"]
        colour_key = tuple(key) if isinstance(key, tuple) else (key,)
        if mode_name == "1":
            colour_key = (255 if colour_key[0] else 0,)  # read as 0/255
        notes.append("transparent colour key turned into alpha")
    if stored.note:
        notes.insert(0, stored.note)

    width, height = im.size
    if width == 0 or height == 0:
        raise InputError(f"zero-sized image ({width}x{height})")
    if max_pixels is not None and width * height > max_pixels:
        msg = f"{width}x{height} = {width * height} pixels exceeds --max-pixels {max_pixels}"
        raise InputError(msg)
    orientation = _orientation(im)
    turn = 1 if _pillow_turns(im) else orientation
    if turn >= 5 or _size_turned_on_load(im, orientation):
        width, height = height, width
    if orientation != 1:
        notes.append(f"EXIF orientation {orientation} applied")
    later_frames = None
    try:
        with _pillow_limit_lifted():
            n_frames = int(getattr(im, "n_frames", 1))
    except PILLOW_ERRORS as exc:
        # a cut animation: its first frame can still be read on its own (--frames first says so)
        n_frames, why = 1, one_line(exc) or type(exc).__name__
        notes.append(f"later frames unreadable, first frame only ({why})")
        # a single-page TIFF with a broken next-page pointer reads the same: for a TIFF, the note alone
        later_frames = None if fmt == "TIFF" else why
        if im.tell() != 0:  # counting left a TIFF on the last page it reached: that was decoded as the first
            try:
                im.seek(0)
            except PILLOW_ERRORS as again:
                raise _corrupt(fmt, again) from None
    if fmt == "PNG" and n_frames > 1:
        # APNG says its frame count up front (acTL), and Pillow takes it as it is: each frame needs
        # its own fcTL chunk (38 bytes), so the file's size bounds the count it can hold
        size = _source_size(im)
        if size is not None and n_frames > size // _APNG_FRAME_BYTES:
            msg = (f"corrupt APNG: it claims {n_frames} frames, more than its {size} bytes can hold "
                   f"(at least {_APNG_FRAME_BYTES} a frame)")
            raise InputError(msg)
    if n_frames > 1:
        notes.append(f"first frame of {n_frames} ({_FRAME_KINDS.get(fmt, fmt)})")
    channels = stored.channels
    if gray and channels == 3:
        channels = 1
        notes.append("converted to luminance (ITU-R 601-2)")
    icc = _icc(im)
    if icc is not None and not icc_fits(icc, channels):  # read_image hands no such profile on
        space = icc_space(icc).decode("latin-1").strip() or "unknown"
        notes.append(f"ICC profile dropped (its {space} colour space does not fit {channels}-channel pixels)")
    header = ImageHeader(
        width=width,
        height=height,
        channels=channels,
        has_alpha=stored.alpha or colour_key is not None,
        bit_depth=stored.bit_depth,
        mode=mode_name,
        format=fmt,
        n_frames=n_frames,
        notes=tuple(notes),
        later_frames=later_frames,
    )
    return _Plan(header, stored, colour_key, orientation, png_decoder, turn)


def read_header(
    source: Source, *, gray: bool = False, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> ImageHeader:
    """The header of an image file (or of its bytes, e.g. from stdin); no pixels decoded."""
    npy = _npy_header(source, gray=gray, max_pixels=max_pixels)
    if npy is not None:
        return npy[0]
    notes: list[str] = []
    with _warnings_to_notes(notes), _opened(source) as (im, _fp, head):
        header = _inspect(im, head, gray, max_pixels).header
    return _with_notes(header, notes)


# --------------------------------------------------------------------------- decode


#: Two values for every channel of a marker row (see :func:`load_whole`): unlike at every sample,
#: so that no decoded row can equal both.
_MARKERS: Final = (173, 82)
_MARKERS_16: Final = (40961, 12345)


def load_whole(im: Image.Image, fp: BinaryIO) -> Image.Image:
    """``im.load()``, opened from ``fp``; for a PNG, also an :class:`InputError` if its image data
    ends before the last row. Returns the loaded image (for a PNG, possibly opened again from ``fp``).

    Pillow's PNG decoder stops where the compressed stream ends: a stream that ends early, its
    chunks whole and their CRCs right, leaves the rows after it black, in silence. So the last row
    is filled with a marker before decoding; still the marker afterwards, it was never written.
    Interlaced, the last two rows (the seventh pass writes the odd ones) are checked pixel by pixel
    (a row of height 1 ends with the sixth pass, which writes half of it). A decoded pixel that
    equals the marker is told apart by decoding again with a second marker, unlike the first at
    every sample. Frames after the first of an APNG are composed onto the ones before by Pillow:
    not checked.
    """
    if im.format != "PNG" or not getattr(im, "tile", None) or im.tell() != 0:
        im.load()
        return im
    width, height = im.size
    interlaced = bool(im.info.get("interlace"))
    rows = range(max(0, height - (2 if interlaced else 1)), height)
    # 0 first for bilevel images: scans end in white far more often than in black
    markers = (0, 255) if im.mode == "1" else _MARKERS_16 if im.mode.startswith("I") else _MARKERS
    unwritten: np.ndarray | None = None  # per pixel of ``rows``: still the marker at every attempt
    for attempt, value in enumerate(markers):
        if attempt:  # the first marker was decoded as a pixel: decode again, from the start
            fp.seek(0)
            im = Image.open(fp, formats=["PNG"])
        bands = len(im.getbands())
        marker_row = Image.new(im.mode, (width, 1), value if bands == 1 else (value,) * bands)
        im.im = Image.core.new(im.mode, im.size)
        for y in rows:  # an image, not a colour: a colour paste keeps only the low byte of I;16
            im.im.paste(marker_row.im, (0, y, width, y + 1))
        im.load()
        marker = np.asarray(marker_row)
        same = np.concatenate([np.asarray(im.crop((0, y, width, y + 1))) == marker for y in rows])
        if same.ndim == 3:
            same = same.all(axis=2)  # a pixel: every channel
        if not interlaced:  # rows are written whole: a row is the marker, or it was written
            same = np.broadcast_to(same.all(axis=1, keepdims=True), same.shape)
        unwritten = same if unwritten is None else unwritten & same
        if not unwritten.any():
            return im
    raise InputError(f"truncated or corrupt PNG data ({SHORT_DATA})")


def _decode_png_la16(data: bytes) -> np.ndarray:
    """16-bit grey+alpha PNG -> (H, W, 2) uint16.

    The filtered rows of 16-bit grey+alpha and 8-bit RGBA have the same layout (4 bytes a
    pixel), so the IHDR is relabelled and Pillow's own decoder unfilters the bytes.
    """
    ihdr = bytearray(data[16:29])
    ihdr[8], ihdr[9] = 8, 6
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr) & 0xFFFFFFFF)
    patched = data[:16] + bytes(ihdr) + crc + data[33:]
    fp = io.BytesIO(patched)
    with Image.open(fp) as opened:
        im = load_whole(opened, fp)
        rgba = np.asarray(im).astype(np.uint16)
    return (rgba[..., 0::2] << 8) | rgba[..., 1::2]

def _orient(a: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation to an (H, W, ...) array, as PIL.ImageOps.exif_transpose does."""
    if orientation == 2:
        return a[:, ::-1]
    if orientation == 3:
        return a[::-1, ::-1]
    if orientation == 4:
        return a[::-1]
    if orientation == 5:
        return a.swapaxes(0, 1)
    if orientation == 6:
        return np.rot90(a, -1)
    if orientation == 7:
        return a[::-1, ::-1].swapaxes(0, 1)
    if orientation == 8:
        return np.rot90(a, 1)
    return a


#: Images of at least this many pixels are copied out of Pillow in bands of rows. Banded
#: copying (crop + tobytes per band) is ~3.7x slower than one np.asarray (4096² RGB: 0.19 s
#: against 0.05 s) but keeps np.asarray's transient copies off the peak: worth it only where
#: memory is the limit (8000² RGB: 644 -> ~470 MiB peak), not at 4096² (~200 MiB either way).
BANDED_ARRAY_MIN_PIXELS = 1 << 25
_ARRAY_BAND_BYTES = 8 << 20


def _pil_array(im: Image.Image) -> np.ndarray:
    """``np.asarray(im)`` without its transient copies for large images.

    np.asarray goes through ``im.tobytes()``, which for an 8000x8000 RGB image holds Pillow's
    own 4-byte pixels (244 MiB), the encoder's chunks and their join (183 MiB each) at once:
    banded, the peak is Pillow's pixels + the array (measured 644 -> ~470 MiB peak RSS).
    """
    width, height = im.size
    if width * height < BANDED_ARRAY_MIN_PIXELS:
        return np.asarray(im)
    first = np.asarray(im.crop((0, 0, width, 1)))
    out = np.empty((height, *first.shape[1:]), dtype=first.dtype)
    step = max(1, _ARRAY_BAND_BYTES // max(1, first.nbytes))
    for y0 in range(0, height, step):
        y1 = min(height, y0 + step)
        out[y0:y1] = np.asarray(im.crop((0, y0, width, y1)))
    return out


def _decode_array(im: Image.Image, fp: BinaryIO, plan: _Plan, max_pixels: int | None) -> np.ndarray:
    """Decode the first frame into an (H, W, C[+alpha]) array on the stored scale."""
    if plan.png_decoder is not None:
        fp.seek(0)
        data = fp.read()
        arr = _decode_png_la16(data) if plan.png_decoder == "la16" else decode_png(data)
    else:
        if plan.header.format in ("JPEG", "MPO"):
            at = fp.tell()
            fp.seek(0)
            check_jpeg_data(fp.read())
            fp.seek(at)
        lift = max_pixels is None or max_pixels > (Image.MAX_IMAGE_PIXELS or 0)
        opened = im.mode
        with _pillow_limit_lifted() if lift else _nothing():
            im = load_whole(im, fp)
        if im.mode != opened:  # ICNS says RGBA at open and loads RGB: read as the header said
            try:
                im = im.convert(opened)
            except ValueError:
                msg = f"decoded as mode {im.mode}, not the {opened} its header said"
                raise InputError(msg) from None
        if im.mode == "P" and im.format == "PNG":
            check_palette(im)
        if plan.stored.convert is not None:
            im = im.convert(plan.stored.convert)
        arr = _pil_array(im)
    if plan.header.mode == "I" and arr.size and (arr.min() < 0 or arr.max() > 65535):
        msg = "32-bit integer image with values outside 0..65535 is not supported"
        raise InputError(msg)
    if arr.ndim == 2:
        arr = arr[..., None]
    if plan.colour_key is not None:
        key = np.asarray(plan.colour_key[: arr.shape[-1]])
        opaque = np.any(arr != key, axis=-1)
        alpha = np.where(opaque, plan.header.maxval, 0).astype(arr.dtype)
        arr = np.concatenate([arr, alpha[..., None]], axis=-1)
    return arr


def check_palette(im: Image.Image) -> None:
    """A PNG palette image has a PLTE chunk with an entry for every index it uses (the PNG spec; libpng
    refuses it). Pillow expanded a missing palette, or an index past its end, to black: exit 0."""
    entries = len(im.palette.palette) // len(im.palette.mode) if im.palette is not None else 0
    if entries == 0:
        raise InputError("corrupt PNG: a palette image without a palette (PLTE chunk)")
    used = int(np.asarray(im).max(initial=0))
    if used >= entries:
        msg = (f"corrupt PNG: palette index {used} used, past the palette's {entries} "
               f"entr{'y' if entries == 1 else 'ies'}")
        raise InputError(msg)


@contextmanager
def _nothing() -> Iterator[None]:
    yield



def _stored_integer(arr: np.ndarray, bit_depth: int) -> np.ndarray:
    """The decoded array as native uint8 (8-bit) or uint16 (16-bit), copied only if it is not."""
    want = np.dtype(np.uint16 if bit_depth == 16 else np.uint8)
    return arr if arr.dtype == want else arr.astype(want)


def _corrupt(fmt: str, exc: BaseException) -> InputError:
    """The one error for image data that does not decode."""
    return InputError(f"truncated or corrupt {fmt} data ({one_line(exc)})")


@contextmanager
def _decoding(fmt: str | None, failure: str) -> Iterator[None]:
    """Pillow decoding ``fmt`` data: its failure is ``InputError(f"{failure} ({reason})")``. For TIFF
    what libtiff prints itself (:func:`_c_messages`) ends the reason, or becomes notes (warnings,
    which :func:`_warnings_to_notes` collects) when the data decoded."""
    said: list[str] = []
    try:
        with _c_messages(said) if fmt == "TIFF" else _nothing():
            yield
    except PILLOW_ERRORS as exc:
        why = one_line(exc) + (f"; libtiff: {one_line(said[0])}" if said else "")
        if "out of memory" in why.lower():  # Pillow's decoder could not allocate: not the file's fault
            raise MemoryError(why) from None
        raise InputError(f"{failure} ({why})") from None
    for line in said:
        warnings.warn(f"libtiff: {line}", stacklevel=3)


def _decode_whole(im: Image.Image, fp: BinaryIO, plan: _Plan,
                  max_pixels: int | None) -> tuple[np.ndarray, bytes | None, Metadata]:
    """An opened image's pixels (as :func:`_decode_array`), ICC profile and metadata."""
    icc = _icc(im)
    metadata = read_metadata(im, plan.orientation)
    fmt = plan.header.format
    with _decoding(fmt, f"truncated or corrupt {fmt} data"):
        arr = _decode_array(im, fp, plan, max_pixels)
    return arr, icc, metadata


def _icc(im: Image.Image) -> bytes | None:
    """The opened image's embedded ICC profile, if any."""
    icc = im.info.get("icc_profile") or None
    return icc if isinstance(icc, bytes) else None


def _decoded(arr: np.ndarray, icc: bytes | None, metadata: Metadata, plan: _Plan, notes: list[str],
             keep_integer: bool) -> DecodedImage:
    """:func:`_decode_whole`'s array upright, split into colour and alpha, as ``keep_integer`` asks."""
    arr = _orient(arr, plan.turn)
    header = _with_notes(plan.header, notes)
    n_colour = plan.stored.channels
    if keep_integer:
        arr = _stored_integer(arr, header.bit_depth)
        color = arr[..., :n_colour]
        alpha = np.ascontiguousarray(arr[..., n_colour]) if header.has_alpha else None
    else:
        color = arr[..., :n_colour].astype(np.float32)
        alpha = arr[..., n_colour].astype(np.float32) if header.has_alpha else None
    del arr
    if header.channels == 1 and color.shape[-1] == 3:
        color = luminance(color.astype(np.float32, copy=False))
    if color.shape[:2] != (header.height, header.width):  # pragma: no cover - a Pillow surprise
        msg = f"decoded {color.shape[1]}x{color.shape[0]} but the header said {header.width}x{header.height}"
        raise InputError(msg)
    return DecodedImage(header, np.ascontiguousarray(color), alpha, _fitting(icc, header.channels), metadata)


def _fitting(icc: bytes | None, channels: int) -> bytes | None:
    """The ICC profile if it fits the pixels handed over (not a CMYK profile after conversion, nor an
    RGB one after --gray)."""
    return icc if icc is not None and icc_fits(icc, channels) else None


def read_image(
    source: Source, *, gray: bool = False, max_pixels: int | None = DEFAULT_MAX_PIXELS,
    keep_integer: bool = False,
) -> DecodedImage:
    """Decode the first frame of an image file (or bytes), upright, as float32 on the stored scale.

    ``keep_integer=True`` keeps colour and alpha as stored (uint8 or uint16, no float32 copy),
    except grey computed from colour (``--gray``), which is float32 as usual.
    A ``.npy`` array is always float32 (see :func:`_read_npy`).
    """
    npy = _read_npy(source, gray=gray, max_pixels=max_pixels)
    if npy is not None:
        return npy
    notes: list[str] = []
    with _warnings_to_notes(notes), _opened(source) as (im, fp, head):
        plan = _inspect(im, head, gray, max_pixels)
        whole = _decode_whole(im, fp, plan, max_pixels)
    return _decoded(*whole, plan, notes, keep_integer)


class RowsRead(NamedTuple):
    """What :func:`read_rows` yields: the image, ``wait(n)`` before reading rows ``0..n-1``, and
    whether the rows are still being decoded on a worker thread (which then takes a core)."""

    image: DecodedImage
    wait: Callable[[int], None]
    in_background: bool


def _all_rows(rows: int) -> None:
    """The ``wait`` of an image decoded whole: every row is already there."""


@contextmanager
def read_rows(
    source: Source, *, gray: bool = False, max_pixels: int | None = DEFAULT_MAX_PIXELS,
    background: bool = True,
) -> Iterator[RowsRead]:
    """:func:`read_image` with ``keep_integer=True``, whose rows may still be arriving.

    Yields a :class:`RowsRead`: call ``wait(n)`` before reading rows ``0..n-1`` of
    ``image.color``. A plain 8-bit RGB PNG (upright, no transparency, not interlaced or animated)
    is decoded on a worker thread (:mod:`convcli.io.pngrows`), so its first rows can be
    filtered while the rest inflates; anything else is decoded whole first, from the same
    opening of the file. A decoding error is an :class:`InputError` from ``wait``, or on leaving
    the block if no ``wait`` saw it: the whole file is checked either way. ``color`` is valid
    only inside the block. ``background=False`` starts no thread: every image is decoded whole.
    """
    if _npy_source(source):
        image = read_image(source, gray=gray, max_pixels=max_pixels, keep_integer=True)
        yield RowsRead(image, _all_rows, False)
        return
    notes: list[str] = []
    with ExitStack() as stack:
        with _warnings_to_notes(notes):
            im, fp, head = stack.enter_context(_opened(source))
            plan = _inspect(im, head, gray, max_pixels)
            rows = (background and plan.turn == 1 and plan.header.channels == 3
                    and not plan.header.has_alpha and plan.png_decoder is None and can_read_rows(im))
            if not rows:
                whole = _decode_whole(im, fp, plan, max_pixels)
        if rows:
            image_rows = PngRows(im)
            stack.callback(image_rows.close)
            image = DecodedImage(_with_notes(plan.header, notes), image_rows.color, None,
                                 _fitting(_icc(im), 3), read_metadata(im, 1))

            def wait(n: int) -> None:
                try:
                    image_rows.wait(n)
                except OSError as exc:
                    raise _corrupt("PNG", exc) from None

            yield RowsRead(image, wait, True)
            try:
                image_rows.finish()  # every row and the chunks after them: as a whole decode checks
            except OSError as exc:
                raise _corrupt("PNG", exc) from None
            return
    yield RowsRead(_decoded(*whole, plan, notes, True), _all_rows, False)


@contextmanager
def open_planned(
    source: Source, *, gray: bool = False, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> Iterator[tuple[Image.Image, ImageHeader, int, int]]:
    """The opened Pillow image, its header, the EXIF orientation convcli applies to each frame's
    array and the file's own (for frame by frame reading, :mod:`convcli.io.frames`); InputError as
    :func:`read_header`."""
    with _opened(source) as (im, _fp, head):
        plan = _inspect(im, head, gray, max_pixels)
        if plan.png_decoder is not None:
            msg = "16-bit animated PNG is read one frame only (--frames first)"
            raise InputError(msg)
        yield im, plan.header, plan.turn, plan.orientation


def unlike_first(index: int, frame: str, first: str) -> str:
    """Why frame ``index`` (its size or mode, ``frame``) cannot be filtered with the first frame's
    plan (``first``): every frame is planned from the first one's header, so only the first can be
    filtered alone."""
    return f"frame {index} is {frame}, not {first} like the first (--frames first filters the first alone)"


def seek_frame(im: Image.Image, index: int, size: tuple[int, int]) -> None:
    """Seek to frame ``index`` and decode it, with Pillow's own bomb check off (``max_pixels`` was
    checked from the header for the first frame's ``size``, (width, height) as stored); InputError
    for a truncated or corrupt frame, or one whose own header claims another size: refused before
    it is decoded (a 135-byte GIF whose second frame claims 40000x40000 took 1.6 GB to refuse)."""
    with _decoding(im.format, f"truncated or corrupt {im.format} frame {index}"), _pillow_limit_lifted():
        im.seek(index)
        w, h = im.size
        if (w, h) != size:
            raise InputError(unlike_first(index, f"{w}x{h}", f"{size[0]}x{size[1]}"))
        # A TIFF page turned by its Orientation tag (5-8) has its size turned by Pillow, its tiles not:
        # they must fit the frame either way round (a rotated multi-page TIFF was refused as
        # "frame 0 is 40x60, not 40x60 like the first").
        extents = [t[1] for t in getattr(im, "tile", None) or ()]
        if not (all(x1 <= w and y1 <= h for _, _, x1, y1 in extents)
                or all(x1 <= h and y1 <= w for _, _, x1, y1 in extents)):
            x1, y1 = max(e[2] for e in extents), max(e[3] for e in extents)
            raise InputError(f"frame {index} holds data for {x1}x{y1} pixels in a {w}x{h} frame")
        im.load()


def orient(a: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation to an (H, W, ...) array (see :func:`_orient`)."""
    return _orient(a, orientation)




# --------------------------------------------------------------------------- .npy arrays
#
# convcli writes raw float32 results as .npy, (H, W) or (H, W, C); it reads them back here so
# results chain through files without rounding. The values enter the arithmetic as they are,
# on the 0..255 scale (bit_depth 8): filtering a .npy that convcli wrote reproduces the float
# output of the first command, and a PNG written from it is clipped to 0..255 as usual.
# Every channel is a colour channel (convcli never writes alpha into a .npy).

#: Most channels a .npy input may have (a conv layer writes up to 4096).
NPY_MAX_CHANNELS = 4096


def _npy_source(source: Source) -> bool:
    """Whether ``source`` (a path or bytes) starts with the NPY magic."""
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source[: len(NPY_MAGIC)]) == NPY_MAGIC
    try:
        with open(source, "rb") as f:
            return f.read(len(NPY_MAGIC)) == NPY_MAGIC
    except OSError:
        return False  # _opened reports the error as for any image


def _npy_layout(fp: BinaryIO) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Shape, Fortran order and dtype from an opened .npy file's header (no data read)."""
    try:
        return read_npy_header(fp)
    except ValueError as e:
        raise InputError(f"unreadable .npy header ({e})") from None


def _npy_checked(shape: tuple[int, ...], dtype: np.dtype, gray: bool, max_pixels: int | None) -> ImageHeader:
    """The header of an array of ``shape`` and ``dtype``, or InputError saying why it is not an image."""
    if dtype.kind not in "fiub" or dtype.hasobject:
        raise InputError(f".npy array of dtype {dtype} is not an image (use float or integer values)")
    if len(shape) not in (2, 3):
        raise InputError(f".npy array of shape {list(shape)} is not an image: expected (H, W) or (H, W, C)")
    height, width = shape[0], shape[1]
    channels = shape[2] if len(shape) == 3 else 1
    if min(shape) < 0:
        raise InputError(f"corrupt .npy header: negative size in shape {list(shape)}")
    if height == 0 or width == 0 or channels == 0:
        raise InputError(f"zero-sized .npy array {list(shape)}")
    if channels > NPY_MAX_CHANNELS:
        raise InputError(f".npy array has {channels} channels, more than {NPY_MAX_CHANNELS}")
    if max_pixels is not None and width * height > max_pixels:
        msg = f"{width}x{height} = {width * height} pixels exceeds --max-pixels {max_pixels}"
        raise InputError(msg)
    if max_pixels is not None and width * height * channels > 4 * max_pixels:
        # an image file holds at most 4 samples a pixel: so many is what --max-pixels admits
        msg = (f"{width}x{height}x{channels} = {width * height * channels} values exceeds 4 values a pixel "
               f"at --max-pixels {max_pixels}")
        raise InputError(msg)
    notes = [f"{dtype} array {list(shape)}: values used as they are (0..255 scale)"]
    if gray:
        if channels != 3 and channels != 1:
            # --gray, or a command that works on luminance (edges): the user may not have asked
            msg = f"read as grey (luminance), which needs 1 or 3 channels; the .npy array has {channels}"
            raise InputError(msg)
        if channels == 3:
            channels = 1
            notes.append("converted to luminance (ITU-R 601-2)")
    return ImageHeader(width=width, height=height, channels=channels, has_alpha=False, bit_depth=8,
                       mode=f"npy {dtype}", format="NPY", n_frames=1, notes=tuple(notes),
                       channel_axis=len(shape) == 3 and shape[2] == 1)


def _npy_header(source: Source, *, gray: bool, max_pixels: int | None) -> tuple[ImageHeader, int] | None:
    """(header, data offset) of a .npy source, or None when ``source`` is not one."""
    if not _npy_source(source):
        return None
    fp = open_source(source)
    with fp:
        shape, _fortran, dtype = _npy_layout(fp)
        offset = fp.tell()
        header = _npy_checked(shape, dtype, gray, max_pixels)
        fp.seek(0, os.SEEK_END)
        have = fp.tell() - offset
    need = int(np.prod(shape)) * dtype.itemsize
    if have < need:
        raise InputError(f"truncated .npy data ({have} of {need} bytes)")
    return header, offset


def _read_npy(source: Source, *, gray: bool, max_pixels: int | None) -> DecodedImage | None:
    """Decode a .npy source as float32 (H, W, C), or None when ``source`` is not one."""
    found = _npy_header(source, gray=gray, max_pixels=max_pixels)
    if found is None:
        return None
    header, _offset = found
    fp = open_source(source)
    with fp:
        try:
            arr = np.lib.format.read_array(fp, allow_pickle=False, max_header_size=NPY_MAX_HEADER)
        except (ValueError, OSError, EOFError) as exc:
            raise InputError(f"truncated or corrupt .npy data ({one_line(exc)})") from None
    if arr.ndim == 2:
        arr = arr[:, :, None]
    color = np.ascontiguousarray(arr, dtype=np.float32)
    del arr
    if not np.all(np.isfinite(color)):
        raise InputError(".npy array holds NaN or infinite values")
    if gray and color.shape[2] == 3:
        color = np.ascontiguousarray(luminance(color))
    if color.ndim == 2:
        color = color[:, :, None]
    return DecodedImage(header, color, None, None)
