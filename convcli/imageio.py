"""Image files in and out: the only module of convcli that imports Pillow.

Decoding turns any file Pillow reads into float32 arrays on the file's own scale
(0..255 or 0..65535) plus a header that says what was done on the way (palette
expanded, EXIF orientation applied, first frame of an animation...). Encoding turns
uint8/uint16 pixels back into file bytes; :func:`to_pixels` is the one place that
maps floats to pixels, and :func:`write_atomic` the one place that writes files.

Untrusted files fail with :class:`~convcli.errors.InputError` carrying a one-line
reason without the path (the caller names the input).
"""

from __future__ import annotations

import errno
import io
import os
import struct
import tempfile
import threading
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from convcli.color import luminance
from convcli.errors import InputError, OutputError, UsageError

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

Source = str | os.PathLike | bytes

#: Pillow's own decompression-bomb limit, read once at import (``--max-pixels`` default).
DEFAULT_MAX_PIXELS: int = Image.MAX_IMAGE_PIXELS or 89_478_485
#: zlib level for PNG: 1 is ~4x faster than Pillow's 6 for ~14% larger files.
DEFAULT_PNG_COMPRESS_LEVEL = 1
#: Bytes of float64 rows :func:`to_pixels` handles at a time.
BAND_BYTES = 3 << 19  # 1.5 MiB

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- formats


@dataclass(frozen=True)
class FormatInfo:
    """An output format: its Pillow name and what it can hold."""

    name: str
    pil: str | None
    extensions: tuple[str, ...]
    alpha: bool
    sixteen_bit: bool
    raw_float: bool
    quality: int | None = None  # default quality of lossy formats


FORMATS: dict[str, FormatInfo] = {
    "png": FormatInfo("png", "PNG", (".png",), alpha=True, sixteen_bit=True, raw_float=False),
    "jpeg": FormatInfo(
        "jpeg",
        "JPEG",
        (".jpg", ".jpeg", ".jpe", ".jfif"),
        alpha=False,
        sixteen_bit=False,
        raw_float=False,
        quality=90,
    ),
    "tiff": FormatInfo("tiff", "TIFF", (".tif", ".tiff"), alpha=True, sixteen_bit=True, raw_float=True),
    "webp": FormatInfo(
        "webp", "WEBP", (".webp",), alpha=True, sixteen_bit=False, raw_float=False, quality=90
    ),
    "bmp": FormatInfo("bmp", "BMP", (".bmp",), alpha=False, sixteen_bit=False, raw_float=False),
    "npy": FormatInfo("npy", None, (".npy",), alpha=True, sixteen_bit=True, raw_float=True),
}


def _format(fmt: str) -> FormatInfo:
    key = fmt.lower().lstrip(".")
    key = {"jpg": "jpeg", "tif": "tiff"}.get(key, key)
    try:
        return FORMATS[key]
    except KeyError:
        msg = f"unknown output format {fmt!r} (choose from {', '.join(FORMATS)})"
        raise UsageError(msg) from None


def format_for_path(path: str | os.PathLike) -> str:
    """The output format named by a path's extension, e.g. ``x.JPG`` -> ``"jpeg"``."""
    suffix = Path(path).suffix.lower()
    for info in FORMATS.values():
        if suffix in info.extensions:
            return info.name
    known = ", ".join(ext for info in FORMATS.values() for ext in info.extensions)
    shown = suffix or "no extension"
    msg = f"cannot tell the output format from {shown!r} in {os.fspath(path)!r} (known: {known}; or --format)"
    raise UsageError(msg)


def extension_for(fmt: str) -> str:
    """The usual extension of a format, with its dot: ``"jpeg"`` -> ``".jpg"``."""
    return _format(fmt).extensions[0]


# --------------------------------------------------------------------------- header


@dataclass(frozen=True)
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

    @property
    def maxval(self) -> int:
        """Largest stored value: 255 or 65535."""
        return (1 << self.bit_depth) - 1


@dataclass
class DecodedImage:
    """Decoded pixels: float32 on the stored scale, colour (H, W, C) and alpha (H, W) apart."""

    header: ImageHeader
    color: np.ndarray
    alpha: np.ndarray | None
    icc_profile: bytes | None


@dataclass(frozen=True)
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
# Modes whose info["transparency"] is a colour key (a value that means transparent).
_KEYED_MODES = ("1", "L", "RGB", "RGB;16", "I;16", "I;16B", "I;16L", "I;16N", "I")
_MODE_WITH_KEY = {"P": _Mode("RGBA", 3, True, 8, "palette expanded to RGBA")}
_REFUSED_MODES = {
    "F": "32-bit float image (mode F) is not supported as input; use a 16-bit image",
}
_REFUSED_FORMATS = {"EPS": "EPS/PostScript is not read (decoding it would run Ghostscript)"}
_FRAME_KINDS = {
    "GIF": "animated GIF",
    "PNG": "animated PNG",
    "WEBP": "animated WebP",
    "TIFF": "multi-page TIFF",
    "MPO": "multi-picture JPEG",
}


@dataclass(frozen=True)
class _Plan:
    """How to decode an opened image: the header plus the steps behind it."""

    header: ImageHeader
    stored: _Mode
    colour_key: tuple[int, ...] | None  # the stored value(s) an L/RGB/I;16 image marks transparent
    orientation: int
    png_decoder: str | None  # "la16" or "own" where convcli decodes a 16-bit PNG Pillow would reduce


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


_ERRNO_REASONS = {
    errno.ENOENT: "no such file",
    errno.EISDIR: "is a directory",
    errno.ENOTDIR: "not a directory",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EFBIG: "file too large",
    errno.ENAMETOOLONG: "file name too long",
    errno.EIO: "input/output error",
}


def _reason(exc: OSError) -> str:
    """One short lower-case reason for an OSError, without the path."""
    if exc.errno in _ERRNO_REASONS:
        return _ERRNO_REASONS[exc.errno]
    return _one_line(exc.strerror or str(exc) or type(exc).__name__).lower()


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _open_source(source: Source) -> BinaryIO:
    if isinstance(source, bytes | bytearray | memoryview):
        return io.BytesIO(bytes(source))
    try:
        return open(source, "rb")  # noqa: SIM115 - closed by the caller
    except OSError as exc:
        raise InputError(_reason(exc)) from None


def _png_ihdr(head: bytes) -> tuple[int, int, int, int] | None:
    """(width, height, bit depth, colour type) from a PNG's first bytes, or None if not a PNG."""
    if len(head) < 29 or not head.startswith(_PNG_SIGNATURE) or head[12:16] != b"IHDR":
        return None
    width, height, depth, colour_type = struct.unpack(">IIBB", head[16:26])
    return width, height, depth, colour_type


@contextmanager
def _opened(source: Source) -> Iterator[tuple[Image.Image, BinaryIO, bytes]]:
    """Open ``source`` with Pillow (header only); yields the image, its file and the first bytes."""
    fp = _open_source(source)
    try:
        try:
            head = fp.read(64)
            fp.seek(0)
        except OSError as exc:  # e.g. EISDIR on read on some systems
            raise InputError(_reason(exc)) from None
        if not head:
            raise InputError("empty file")
        ihdr = _png_ihdr(head)
        if ihdr is not None and (ihdr[0] == 0 or ihdr[1] == 0):
            raise InputError(f"zero-sized image ({ihdr[0]}x{ihdr[1]})")
        try:
            with _pillow_limit_lifted():
                im = Image.open(fp)
        except UnidentifiedImageError:
            raise InputError("not an image file (Pillow cannot identify it)") from None
        except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
            raise InputError(f"unreadable image header ({_one_line(exc)})") from None
        try:
            yield im, fp, head
        finally:
            im.close()
    finally:
        fp.close()


def _orientation(im: Image.Image) -> int:
    """EXIF orientation 1..8, read without decoding pixels (1 when absent or unreadable)."""
    if im.format == "PNG" and "exif" not in im.info:
        return 1  # PngImageFile.getexif() would decode the image to look for a late eXIf chunk
    try:
        value = im.getexif().get(0x0112, 1)
    except (OSError, SyntaxError, ValueError, KeyError, TypeError, struct.error):
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _inspect(im: Image.Image, head: bytes, gray: bool, max_pixels: int | None) -> _Plan:
    """Build the header and the decoding plan of an opened image, checking size limits."""
    fmt = im.format or "unknown"
    if fmt in _REFUSED_FORMATS:
        raise InputError(_REFUSED_FORMATS[fmt])
    mode_name = im.mode
    notes: list[str] = []
    ihdr = _png_ihdr(head) if fmt == "PNG" else None
    png_decoder = None
    if ihdr is not None and ihdr[2] == 16 and ihdr[3] in _PNG16_MODES:
        mode_name = _PNG16_MODES[ihdr[3]]
        png_decoder = "la16" if ihdr[3] == 4 else "own"
    elif fmt == "TIFF" and mode_name in ("RGB", "RGBA", "LA"):
        bits = getattr(im, "tag_v2", {}).get(258)
        top = max(bits) if isinstance(bits, tuple) and bits else bits
        if isinstance(top, int) and top > 8:
            notes.append(f"{top}-bit {mode_name} read as 8-bit (Pillow has no {top}-bit {mode_name} mode)")
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
    if orientation >= 5:
        width, height = height, width
    if orientation != 1:
        notes.append(f"EXIF orientation {orientation} applied")
    try:
        with _pillow_limit_lifted():
            n_frames = int(getattr(im, "n_frames", 1))
    except (OSError, SyntaxError, ValueError, EOFError, struct.error):
        n_frames = 1  # a broken later frame: the first one is all we read
    if n_frames > 1:
        notes.append(f"first frame of {n_frames} ({_FRAME_KINDS.get(fmt, fmt)})")
    channels = stored.channels
    if gray and channels == 3:
        channels = 1
        notes.append("converted to luminance (ITU-R 601-2)")
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
    )
    return _Plan(header, stored, colour_key, orientation, png_decoder)


def read_header(
    source: Source, *, gray: bool = False, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> ImageHeader:
    """The header of an image file (or of its bytes, e.g. from stdin); no pixels decoded."""
    with _opened(source) as (im, _fp, head):
        return _inspect(im, head, gray, max_pixels).header


# --------------------------------------------------------------------------- decode


def _decode_png_la16(data: bytes) -> np.ndarray:
    """16-bit grey+alpha PNG -> (H, W, 2) uint16.

    The filtered rows of 16-bit grey+alpha and 8-bit RGBA have the same layout (4 bytes a
    pixel), so the IHDR is relabelled and Pillow's own decoder unfilters the bytes.
    """
    ihdr = bytearray(data[16:29])
    ihdr[8], ihdr[9] = 8, 6
    crc = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr) & 0xFFFFFFFF)
    patched = data[:16] + bytes(ihdr) + crc + data[33:]
    with Image.open(io.BytesIO(patched)) as im:
        im.load()
        rgba = np.asarray(im).astype(np.uint16)
    return (rgba[..., 0::2] << 8) | rgba[..., 1::2]


_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def decode_png(data: bytes) -> np.ndarray:
    """Decode a PNG of bit depth 8 or 16, colour type 0, 2, 4 or 6 -> (H, W, n) uint8/uint16.

    convcli's own decoder, for the 16-bit RGB(A) PNGs that Pillow reduces to 8 bits.
    Raises ValueError (or zlib.error) on corrupt or truncated data.
    """
    ihdr = _png_ihdr(data)
    if ihdr is None:
        msg = "not a PNG file"
        raise ValueError(msg)
    width, height, depth, colour_type = ihdr
    interlace = data[28]
    n = {0: 1, 2: 3, 4: 2, 6: 4}.get(colour_type)
    if n is None or depth not in (8, 16) or interlace > 1:
        msg = f"unsupported PNG layout (bit depth {depth}, colour type {colour_type}, interlace {interlace})"
        raise ValueError(msg)
    idat = []
    pos = 8
    while pos + 12 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        if pos + 12 + length > len(data):
            break
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IDAT":
            (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
            if crc != zlib.crc32(kind + body) & 0xFFFFFFFF:
                msg = "broken PNG file (IDAT checksum error)"
                raise ValueError(msg)
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    raw = np.frombuffer(zlib.decompressobj().decompress(b"".join(idat)), dtype=np.uint8)
    bpp = n * depth // 8
    passes = [(0, 0, 1, 1)] if interlace == 0 else _ADAM7
    out = np.zeros((height, width, bpp), dtype=np.uint8)
    offset = 0
    for x0, y0, dx, dy in passes:
        w, h = -(-(width - x0) // dx), -(-(height - y0) // dy)
        if w <= 0 or h <= 0:
            continue
        size = h * (1 + w * bpp)
        if offset + size > raw.size:
            msg = "image file is truncated"
            raise ValueError(msg)
        out[y0::dy, x0::dx] = _unfilter(raw[offset : offset + size].reshape(h, 1 + w * bpp), bpp)
        offset += size
    if depth == 8:
        return out
    return out.view(">u2").astype(np.uint16)  # big-endian sample pairs -> native uint16


def _unfilter(rows: np.ndarray, bpp: int) -> np.ndarray:
    """Undo PNG row filters: (h, 1 + w*bpp) bytes -> (h, w, bpp) uint8.

    Rows filtered none/sub/up go row by row in uint8 (whose wrap-around is PNG's modulo
    256); average and Paeth depend on the left and upper neighbours, so images using
    them go by anti-diagonals, all rows at once.
    """
    h = rows.shape[0]
    types = rows[:, 0]
    if types.max(initial=0) > 4:
        msg = f"broken PNG file (filter type {int(types.max())})"
        raise ValueError(msg)
    f = rows[:, 1:].reshape(h, -1, bpp)
    w = f.shape[1]
    x = np.zeros((h + 1, w + 1, bpp), dtype=np.uint8)  # a zero row above and a zero column on the left
    if types.max(initial=0) <= 2:
        for r in range(h):
            if types[r] == 0:
                x[r + 1, 1:] = f[r]
            elif types[r] == 1:
                np.cumsum(f[r], axis=0, dtype=np.uint8, out=x[r + 1, 1:])
            else:
                np.add(f[r], x[r, 1:], out=x[r + 1, 1:])
        return x[1:, 1:]
    for d in range(h + w - 1):
        r = np.arange(max(0, d - w + 1), min(h - 1, d) + 1)
        c = d - r
        a = x[r + 1, c].astype(np.int16)
        b = x[r, c + 1].astype(np.int16)
        ul = x[r, c].astype(np.int16)
        p = a + b - ul
        pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - ul)
        paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, ul))
        t = types[r][:, None]
        pred = np.select([t == 1, t == 2, t == 3, t == 4], [a, b, (a + b) >> 1, paeth], 0)
        x[r + 1, c + 1] = (f[r, c] + pred) & 0xFF
    return x[1:, 1:]


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
        lift = max_pixels is None or max_pixels > (Image.MAX_IMAGE_PIXELS or 0)
        with _pillow_limit_lifted() if lift else _nothing():
            im.load()
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


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def _icc_space(profile: bytes) -> bytes:
    """The ICC profile's data colour space signature, e.g. b"RGB " or b"GRAY"."""
    return profile[16:20] if len(profile) >= 20 else b""


def _icc_fits(profile: bytes, channels: int) -> bool:
    return _icc_space(profile) == (b"GRAY" if channels == 1 else b"RGB ")


def _stored_integer(arr: np.ndarray, bit_depth: int) -> np.ndarray:
    """The decoded array as native uint8 (8-bit) or uint16 (16-bit), copied only if it is not."""
    want = np.dtype(np.uint16 if bit_depth == 16 else np.uint8)
    return arr if arr.dtype == want else arr.astype(want)


def read_image(
    source: Source, *, gray: bool = False, max_pixels: int | None = DEFAULT_MAX_PIXELS,
    keep_integer: bool = False,
) -> DecodedImage:
    """Decode the first frame of an image file (or bytes), upright, as float32 on the stored scale.

    ``keep_integer=True`` keeps colour and alpha as stored (uint8 or uint16, no float32 copy),
    except grey computed from colour (``--gray``), which is float32 as usual.
    """
    with _opened(source) as (im, fp, head):
        plan = _inspect(im, head, gray, max_pixels)
        icc = im.info.get("icc_profile") or None
        try:
            arr = _decode_array(im, fp, plan, max_pixels)
        except (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error) as exc:
            msg = f"truncated or corrupt {plan.header.format} data ({_one_line(exc)})"
            raise InputError(msg) from None
    arr = _orient(arr, plan.orientation)
    header = plan.header
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
    if isinstance(icc, bytes) and not _icc_fits(icc, header.channels):
        icc = None  # e.g. a CMYK profile after conversion, or an RGB one after --gray
    if color.shape[:2] != (header.height, header.width):  # pragma: no cover - a Pillow surprise
        msg = f"decoded {color.shape[1]}x{color.shape[0]} but the header said {header.width}x{header.height}"
        raise InputError(msg)
    return DecodedImage(header, np.ascontiguousarray(color), alpha, icc if isinstance(icc, bytes) else None)


# --------------------------------------------------------------------------- floats -> pixels


@dataclass(frozen=True)
class RangeStats:
    """What quantisation did: the policy, float min/max before it, fraction of samples clipped."""

    policy: str
    min: float
    max: float
    clipped_fraction: float


RANGE_POLICIES: tuple[str, ...] = ("clip", "abs", "normalize")
_PIXEL_DTYPES = {8: np.uint8, 16: np.uint16}


def _maxval(bit_depth: int) -> int:
    if bit_depth not in _PIXEL_DTYPES:
        msg = f"bit depth must be 8 or 16, not {bit_depth}"
        raise UsageError(msg)
    return (1 << bit_depth) - 1


def _bands(values: np.ndarray) -> Iterator[slice]:
    """Slices of the first axis holding about BAND_BYTES of float64 each."""
    rows = values.shape[0]
    step = max(1, BAND_BYTES // max(1, values[0].size * 8))
    for start in range(0, rows, step):
        yield slice(start, min(rows, start + step))


def to_pixels(values: np.ndarray, policy: str, bit_depth: int) -> tuple[np.ndarray, RangeStats]:
    """Float array (H, W) or (H, W, C) -> uint8/uint16 by a --range policy, band by band.

    ``clip``: round half to even, clip to [0, maxval]. ``abs``: |x|, then the same.
    ``normalize``: finite min..max mapped onto 0..maxval (a constant image gives 0).
    NaN becomes 0 and counts as clipped; ±inf clips to the ends.
    """
    if policy not in RANGE_POLICIES:
        msg = f"unknown range policy {policy!r} (choose from {', '.join(RANGE_POLICIES)})"
        raise UsageError(msg)
    maxval = _maxval(bit_depth)
    values = np.asarray(values)
    if values.ndim < 2:
        msg = f"to_pixels needs an (H, W) or (H, W, C) array, not {values.shape}"
        raise ValueError(msg)
    out = np.empty(values.shape, dtype=_PIXEL_DTYPES[bit_depth])
    if values.size == 0:
        return out, RangeStats(policy, 0.0, 0.0, 0.0)

    if policy != "normalize":
        return out, _to_pixels_local(values, out, policy, maxval)

    lo = hi = None  # over non-NaN values (reported)
    flo = fhi = None  # over finite values (normalize)
    for band in _bands(values):
        v = np.asarray(values[band], dtype=np.float64)
        notnan = v[~np.isnan(v)]
        if notnan.size:
            lo = min(lo, notnan.min()) if lo is not None else notnan.min()
            hi = max(hi, notnan.max()) if hi is not None else notnan.max()
        if policy == "normalize":
            fin = notnan[np.isfinite(notnan)]
            if fin.size:
                flo = min(flo, fin.min()) if flo is not None else fin.min()
                fhi = max(fhi, fin.max()) if fhi is not None else fin.max()

    changed = 0
    for band in _bands(values):
        v = np.asarray(values[band], dtype=np.float64)
        nan = np.isnan(v)
        if policy == "normalize":
            if flo is None or fhi is None or fhi == flo:
                v = np.zeros_like(v)
            else:
                with np.errstate(invalid="ignore", over="ignore"):
                    v = (v - flo) * (maxval / (fhi - flo))
            changed += int(np.count_nonzero(nan | np.isinf(v)))
        else:
            if policy == "abs":
                v = np.abs(v)
            v = np.rint(v)
            changed += int(np.count_nonzero(nan | (v < 0) | (v > maxval)))
        v[nan] = 0.0
        np.clip(v, 0, maxval, out=v)
        out[band] = np.rint(v)
    stats = RangeStats(
        policy,
        float(lo) if lo is not None else 0.0,
        float(hi) if hi is not None else 0.0,
        changed / values.size,
    )
    return out, stats


def _local_band(values: np.ndarray, out: np.ndarray, policy: str,
                maxval: int) -> tuple[float | None, float | None, int]:
    """clip/abs of one band into ``out``; returns the band's non-NaN min, max and clipped count."""
    v = np.asarray(values, dtype=np.float64)
    nan = np.isnan(v)
    any_nan = bool(nan.any())
    notnan = v[~nan] if any_nan else v
    lo, hi = (notnan.min(), notnan.max()) if notnan.size else (None, None)
    if policy == "abs":
        v = np.abs(v)
    v = np.rint(v)
    clipped = (v < 0) | (v > maxval)
    changed = int(np.count_nonzero(nan | clipped if any_nan else clipped))
    if any_nan:
        v[nan] = 0.0
    np.clip(v, 0, maxval, out=v)
    out[...] = np.rint(v)
    return lo, hi, changed


def _to_pixels_local(values: np.ndarray, out: np.ndarray, policy: str, maxval: int) -> RangeStats:
    """The clip and abs policies (each sample on its own): one pass per band, bands on the
    engine's default threads (NumPy releases the GIL); the same numbers as one thread."""
    from convcli.engine import get_default_threads

    spans = list(_bands(values))
    threads = min(get_default_threads(), len(spans))
    if threads > 1:
        parts = list(_png_pool(threads).map(lambda b: _local_band(values[b], out[b], policy, maxval), spans))
    else:
        parts = [_local_band(values[b], out[b], policy, maxval) for b in spans]
    los = [p[0] for p in parts if p[0] is not None]
    his = [p[1] for p in parts if p[1] is not None]
    return RangeStats(
        policy,
        float(min(los)) if los else 0.0,
        float(max(his)) if his else 0.0,
        sum(p[2] for p in parts) / values.size,
    )


# --------------------------------------------------------------------------- encode


def _check_pixels(pixels: np.ndarray, alpha: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Validate encoder input; returns colour as (H, W) or (H, W, 3)."""
    if pixels.dtype not in (np.uint8, np.uint16):
        msg = f"pixels must be uint8 or uint16, not {pixels.dtype}"
        raise ValueError(msg)
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[..., 0]
    if not (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] == 3)):
        msg = f"pixels must be (H, W), (H, W, 1) or (H, W, 3), not {pixels.shape}"
        raise ValueError(msg)
    if pixels.shape[0] == 0 or pixels.shape[1] == 0:
        msg = f"cannot encode an empty image {pixels.shape}"
        raise ValueError(msg)
    if alpha is not None:
        if alpha.ndim == 3 and alpha.shape[2] == 1:
            alpha = alpha[..., 0]
        if alpha.shape != pixels.shape[:2] or alpha.dtype != pixels.dtype:
            msg = f"alpha {alpha.shape} {alpha.dtype} does not match pixels {pixels.shape} {pixels.dtype}"
            raise ValueError(msg)
    return pixels, alpha


def _flatten_on_white(color: np.ndarray, alpha: np.ndarray, maxval: int) -> np.ndarray:
    a = alpha.astype(np.float64) / maxval
    if color.ndim == 3:
        a = a[..., None]
    flat = color * a + maxval * (1.0 - a)
    return np.rint(flat).astype(color.dtype)


def _to_8bit(a: np.ndarray) -> np.ndarray:
    """uint16 -> uint8, rounded (65535 -> 255)."""
    return ((a.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def encode_png16(
    color: np.ndarray,
    alpha: np.ndarray | None,
    *,
    icc_profile: bytes | None = None,
    compress_level: int = DEFAULT_PNG_COMPRESS_LEVEL,
) -> bytes:
    """A 16-bit PNG (colour type 0, 2, 4 or 6) written by convcli, since Pillow cannot."""
    return encode_png(color, alpha, icc_profile=icc_profile, compress_level=compress_level)


# ------------------------------------------------------------- threaded PNG writer
#
# Pillow's PNG encoder runs zlib on one thread. This writer filters every row with PNG's
# "Up" filter (vectorised: one subtraction per band) and compresses bands of rows on
# several threads (zlib releases the GIL) into ONE zlib stream, as pigz does: a raw
# deflate stream per band, ended with Z_SYNC_FLUSH (byte-aligned, not final) except the
# last, primed with the previous 32 KiB as dictionary, behind one zlib header, with the
# Adler-32 of the whole filtered data combined from the bands' own.
#
# Filter choice, measured on a 4096x4096 RGB photo mosaic after a 15x15 Gaussian, zlib
# level 1, one thread (size MiB, filter s, zlib s): Pillow (adaptive filters) 11.58 MiB in
# 0.68 s all told; none 22.69 / 0 / 0.50; Up 11.71 / 0.11 / 0.33; Sub 13.42 / 0.11 / 0.35;
# Paeth 11.58 / 2.15 (vectorised NumPy) / 0.33. Up it is: files 1% larger than Pillow's on
# that smooth output, 4% on the unfiltered photo (17.00 -> 17.73 MiB; 512² crop 455 -> 477 KiB).
# Whole encode of the 4096² blur on 2 threads: 0.68 s (Pillow) -> 0.18 s.

#: Images of at least this many pixels use the threaded writer; smaller ones Pillow (8-bit).
THREADED_PNG_MIN_PIXELS = 1 << 16
#: Bytes of filtered rows one task compresses (4096x4096 RGB: 12 tasks).
PNG_TASK_BYTES = 4 << 20
_DICT_BYTES = 32768  # deflate's window
_ADLER_BASE = 65521
_png_pools: dict[int, ThreadPoolExecutor] = {}  # threads -> pool, made on first use
_png_pools_lock = threading.Lock()


def adler32_combine(adler1: int, adler2: int, len2: int) -> int:
    """Adler-32 of A + B from Adler-32 of A, of B and B's length (zlib's adler32_combine)."""
    rem = len2 % _ADLER_BASE
    sum1 = adler1 & 0xFFFF
    sum2 = (rem * sum1) % _ADLER_BASE
    sum1 += (adler2 & 0xFFFF) + _ADLER_BASE - 1
    sum2 += ((adler1 >> 16) & 0xFFFF) + ((adler2 >> 16) & 0xFFFF) + _ADLER_BASE - rem
    sum1 %= _ADLER_BASE
    sum2 %= _ADLER_BASE
    return sum1 | (sum2 << 16)


def _zlib_header(level: int) -> bytes:
    """The 2-byte zlib header (deflate, 32 KiB window) with the FLEVEL zlib itself writes."""
    flevel = 0 if level < 2 else 1 if level < 6 else 2 if level == 6 else 3
    flg = flevel << 6
    flg += (31 - (0x7800 + flg) % 31) % 31
    return bytes((0x78, flg))


def _png_samples(color: np.ndarray, alpha: np.ndarray | None) -> tuple[np.ndarray, int, int]:
    """(H, W * bytes per pixel) big-endian sample bytes, the bit depth and the PNG colour type."""
    planes = color.reshape(*color.shape[:2], -1)
    if alpha is not None:
        planes = np.concatenate([planes, alpha[..., None]], axis=-1)
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[planes.shape[2]]
    depth = 16 if planes.dtype == np.uint16 else 8
    if depth == 16:
        planes = planes.astype(">u2")
    else:
        planes = np.ascontiguousarray(planes)
    return planes.reshape(planes.shape[0], -1).view(np.uint8), depth, colour_type


def _filter_up(rows: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Rows [start, stop) with PNG filter 2 (Up): each byte minus the byte above, mod 256."""
    out = np.empty((stop - start, 1 + rows.shape[1]), dtype=np.uint8)
    out[:, 0] = 2
    if start == 0:
        out[0, 1:] = rows[0]
        np.subtract(rows[1:stop], rows[: stop - 1], out=out[1:, 1:])
    else:
        np.subtract(rows[start:stop], rows[start - 1 : stop - 1], out=out[:, 1:])
    return out


def _deflate_task(rows: np.ndarray, start: int, stop: int, level: int, last: bool) -> tuple[bytes, int, int]:
    """One band of filtered rows as raw deflate data; returns (data, adler32, length)."""
    row_len = 1 + rows.shape[1]
    back = min(start, -(-_DICT_BYTES // row_len))  # rows before the band whose bytes prime the window
    filtered = _filter_up(rows, start - back, stop).reshape(-1)
    body = filtered[back * row_len :]
    zdict = filtered[max(0, back * row_len - _DICT_BYTES) : back * row_len].tobytes()
    comp = (zlib.compressobj(level, zlib.DEFLATED, -15, zdict=zdict) if zdict
            else zlib.compressobj(level, zlib.DEFLATED, -15))
    data = comp.compress(body) + comp.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)
    return data, zlib.adler32(body), body.size


def _png_pool(threads: int) -> ThreadPoolExecutor:
    from concurrent.futures import ThreadPoolExecutor

    with _png_pools_lock:
        pool = _png_pools.get(threads)
        if pool is None:
            pool = _png_pools[threads] = ThreadPoolExecutor(threads, thread_name_prefix="convcli-png")
        return pool


def png_zlib_stream(rows: np.ndarray, level: int, threads: int | None = None) -> bytes:
    """PNG image data: ``rows`` (H, row bytes) filtered (Up) and compressed as one zlib stream."""
    if threads is None:
        from convcli.engine import get_default_threads

        threads = get_default_threads()
    height = rows.shape[0]
    step = max(1, PNG_TASK_BYTES // (1 + rows.shape[1]))
    spans = [(y, min(height, y + step)) for y in range(0, height, step)]
    tasks = [(rows, y0, y1, level, y1 == height) for y0, y1 in spans]
    if threads <= 1 or len(tasks) <= 1:
        parts = [_deflate_task(*t) for t in tasks]
    else:
        parts = list(_png_pool(threads).map(lambda t: _deflate_task(*t), tasks))
    adler = 1
    for _, a, n in parts:
        adler = adler32_combine(adler, a, n)
    return b"".join([_zlib_header(level), *(p[0] for p in parts), struct.pack(">I", adler)])


def encode_png(
    color: np.ndarray,
    alpha: np.ndarray | None,
    *,
    icc_profile: bytes | None = None,
    compress_level: int = DEFAULT_PNG_COMPRESS_LEVEL,
    threads: int | None = None,
) -> bytes:
    """An 8- or 16-bit PNG (grey, grey+alpha, RGB, RGBA) by the threaded writer above.

    ``color`` (H, W) or (H, W, 3), ``alpha`` (H, W) or None, both uint8 or both uint16.
    ``threads`` None: the engine's default (:func:`convcli.engine.set_default_threads`).
    """
    rows, depth, colour_type = _png_samples(color, alpha)
    height, width = color.shape[:2]
    data = png_zlib_stream(rows, compress_level, threads)
    del rows
    out = [
        _PNG_SIGNATURE,
        _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)),
    ]
    if icc_profile:
        out.append(_png_chunk(b"iCCP", b"ICC Profile\0\0" + zlib.compress(icc_profile)))
    chunk = 1 << 20
    out.extend(_png_chunk(b"IDAT", data[i : i + chunk]) for i in range(0, max(len(data), 1), chunk))
    out.append(_png_chunk(b"IEND", b""))
    return b"".join(out)


def _pil_image(color: np.ndarray, alpha: np.ndarray | None) -> Image.Image:
    """uint8 (or 16-bit grey without alpha) arrays -> a Pillow image (L, LA, RGB, RGBA or I;16)."""
    if alpha is None:
        return Image.fromarray(np.ascontiguousarray(color))
    stacked = np.concatenate([color.reshape(*color.shape[:2], -1), alpha[..., None]], axis=-1)
    return Image.fromarray(np.ascontiguousarray(stacked))


def encode_image(
    pixels: np.ndarray,
    alpha: np.ndarray | None,
    fmt: str,
    *,
    icc_profile: bytes | None = None,
    quality: int | None = None,
    compress_level: int | None = None,
) -> tuple[bytes, tuple[str, ...]]:
    """uint8/uint16 pixels (and alpha) -> file bytes in ``fmt``, plus notes of what had to give."""
    info = _format(fmt)
    if info.pil is None:
        msg = f"{info.name} holds raw float values: use encode_float"
        raise UsageError(msg)
    color, alpha = _check_pixels(pixels, alpha)
    notes: list[str] = []
    maxval = 65535 if color.dtype == np.uint16 else 255
    if alpha is not None and not info.alpha:
        if np.any(alpha != maxval):
            notes.append(f"alpha flattened onto white ({info.pil} has no alpha)")
        color = _flatten_on_white(color, alpha, maxval)
        alpha = None
    if color.dtype == np.uint16:
        why = None
        if not info.sixteen_bit:
            why = f"{info.pil} has no 16-bit"
        elif info.name == "tiff" and (alpha is not None or color.ndim == 3):
            kind = ("RGBA" if alpha is not None else "RGB") if color.ndim == 3 else "grey+alpha"
            why = f"Pillow cannot write 16-bit {kind} TIFF"
        if why is not None:
            notes.append(f"reduced to 8-bit ({why})")
            color = _to_8bit(color)
            alpha = _to_8bit(alpha) if alpha is not None else None
    channels = 1 if color.ndim == 2 else 3
    if icc_profile is not None and not _icc_fits(icc_profile, channels):
        notes.append("ICC profile dropped (its colour space does not match the image)")
        icc_profile = None
    if icc_profile is not None and info.name == "bmp":
        notes.append("ICC profile dropped (BMP cannot hold it)")
        icc_profile = None

    threaded = color.dtype == np.uint16 or color.shape[0] * color.shape[1] >= THREADED_PNG_MIN_PIXELS
    if info.name == "png" and threaded:
        level = DEFAULT_PNG_COMPRESS_LEVEL if compress_level is None else compress_level
        return encode_png(color, alpha, icc_profile=icc_profile, compress_level=level), tuple(notes)

    im = _pil_image(color, alpha)
    params: dict[str, object] = {}
    if icc_profile is not None:
        params["icc_profile"] = icc_profile
    if info.name == "png":
        params["compress_level"] = DEFAULT_PNG_COMPRESS_LEVEL if compress_level is None else compress_level
    if info.quality is not None:
        params["quality"] = info.quality if quality is None else quality
    buf = io.BytesIO()
    try:
        im.save(buf, format=info.pil, **params)
    except (OSError, ValueError) as exc:
        msg = f"cannot encode {im.mode} as {info.pil}: {_one_line(exc)}"
        raise OutputError(msg) from None
    return buf.getvalue(), tuple(notes)


def encode_float(values: np.ndarray, fmt: str) -> bytes:
    """Raw float32 values, no mapping: ``npy`` (H, W) or (H, W, C), or single-channel float TIFF.

    A trailing channel axis of 1 is dropped, so a grey result is (H, W).
    """
    info = _format(fmt)
    arr = np.asarray(values, dtype=np.float32)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3):
        msg = f"float output must be (H, W) or (H, W, C), not {arr.shape}"
        raise ValueError(msg)
    if info.name == "npy":
        buf = io.BytesIO()
        np.save(buf, arr, allow_pickle=False)
        return buf.getvalue()
    if info.name == "tiff":
        if arr.ndim == 3:
            msg = f"float TIFF holds one channel only (Pillow cannot write {arr.shape[2]}); use .npy"
            raise UsageError(msg)
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(arr)).save(buf, format="TIFF")
        return buf.getvalue()
    msg = f"{info.name} cannot hold raw float values; use .npy or .tiff"
    raise UsageError(msg)


# --------------------------------------------------------------------------- atomic write

_umask_cache: list[int] = []


def _umask() -> int:
    """The process umask, read without changing it where /proc allows (os.umask is racy)."""
    if not _umask_cache:
        try:
            with open("/proc/self/status", encoding="ascii") as status:
                for line in status:
                    if line.startswith("Umask:"):
                        _umask_cache.append(int(line.split()[1], 8))
                        break
        except (OSError, ValueError):
            pass
        if not _umask_cache:
            with _LIMIT_LOCK:
                mask = os.umask(0o022)
                os.umask(mask)
            _umask_cache.append(mask)
    return _umask_cache[0]


def write_atomic(path: str | os.PathLike, data: bytes | bytearray | memoryview | Iterable[bytes]) -> None:
    """Write ``data`` (bytes, or an iterable of chunks) to ``path`` atomically.

    A hidden temporary file beside the destination is written, flushed, fsynced and
    renamed over it; on any exception (Ctrl-C included) it is removed and the exception
    re-raised, an OSError as :class:`OutputError` ("cannot write out/x.png: permission denied").
    """
    path = Path(path)
    directory = path.parent
    shown = os.fspath(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=directory)
    except OSError as exc:
        reason = "no such directory" if exc.errno == errno.ENOENT else _reason(exc)
        raise OutputError(f"cannot write {shown}: {reason}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o644 & ~_umask())
            chunks = [data] if isinstance(data, bytes | bytearray | memoryview) else data
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise OutputError(f"cannot write {shown}: {_reason(exc)}") from None
        raise
    _fsync_dir(directory)


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable; best effort (not every platform opens directories)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
