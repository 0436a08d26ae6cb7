"""Output formats: one table of what each format holds, and names <-> formats."""

from __future__ import annotations

import os
from pathlib import Path

from convcli.core.records import record
from convcli.errors import UsageError

# --------------------------------------------------------------------------- formats


@record(frozen=True)
class FormatInfo:
    """An output format: its Pillow name and what it can hold."""

    name: str
    pil: str | None
    extensions: tuple[str, ...]
    alpha: bool
    sixteen_bit: bool
    raw_float: bool
    quality: int | None = None  # default quality of lossy formats
    multi_frame: bool = False  # holds every frame of an animation or every page
    palette: bool = False  # 256 colours a frame, 1-bit transparency (GIF)
    grey: bool = True  # holds a one-channel image as grey (WebP stores it as RGB)
    max_side: int = 2**31 - 1  # the widest or tallest image it holds


FORMATS: dict[str, FormatInfo] = {
    "png": FormatInfo("png", "PNG", (".png",), alpha=True, sixteen_bit=True, raw_float=False,
                      multi_frame=True),
    "jpeg": FormatInfo(
        "jpeg",
        "JPEG",
        (".jpg", ".jpeg", ".jpe", ".jfif"),
        alpha=False,
        sixteen_bit=False,
        raw_float=False,
        quality=90,
        max_side=65500,  # libjpeg's JPEG_MAX_DIMENSION
    ),
    "tiff": FormatInfo("tiff", "TIFF", (".tif", ".tiff"), alpha=True, sixteen_bit=True, raw_float=True,
                       multi_frame=True),
    "webp": FormatInfo(
        "webp", "WEBP", (".webp",), alpha=True, sixteen_bit=False, raw_float=False, quality=90,
        multi_frame=True, grey=False, max_side=16383,
    ),
    "bmp": FormatInfo("bmp", "BMP", (".bmp",), alpha=False, sixteen_bit=False, raw_float=False),
    "npy": FormatInfo("npy", None, (".npy",), alpha=True, sixteen_bit=True, raw_float=True),
    # 8-bit palette of 256 colours per frame, alpha kept as 1-bit transparency.
    "gif": FormatInfo("gif", "GIF", (".gif",), alpha=True, sixteen_bit=False, raw_float=False,
                      multi_frame=True, palette=True, max_side=65535),
}


#: Other names of the formats above (``--format jpg``), as their extensions spell them.
FORMAT_ALIASES: dict[str, str] = {"jpg": "jpeg", "tif": "tiff"}


#: Input formats convcli decodes but does not write: the one table of their extensions (folders
#: count a file so named as an image; ``-o`` with one says to write PNG instead).
READ_ONLY_EXTENSIONS: dict[str, str] = {
    ".ico": "ICO", ".ppm": "PPM", ".pgm": "PGM", ".pbm": "PBM", ".pnm": "PNM",
    ".tga": "TGA", ".psd": "PSD", ".pcx": "PCX", ".apng": "APNG", ".qoi": "QOI",
    ".jp2": "JPEG 2000", ".j2k": "JPEG 2000", ".sgi": "SGI", ".rgb": "SGI", ".bw": "SGI", ".dds": "DDS",
    ".icns": "ICNS", ".msp": "MSP", ".blp": "BLP", ".xbm": "XBM",
}


#: Every extension that names an image convcli reads (written or read-only): folders count a file so
#: named as an image, and ``-k @name`` with one is a kernel image, not a file of numbers.
WRITABLE_EXTENSIONS: frozenset[str] = frozenset(e for f in FORMATS.values() for e in f.extensions)
IMAGE_EXTENSIONS: frozenset[str] = WRITABLE_EXTENSIONS | frozenset(READ_ONLY_EXTENSIONS)


def format_info(fmt: str) -> FormatInfo:
    key = fmt.lower().lstrip(".")
    key = FORMAT_ALIASES.get(key, key)
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
    if suffix in READ_ONLY_EXTENSIONS:
        better = Path(path).with_suffix(".png")
        msg = (f"convcli reads {READ_ONLY_EXTENSIONS[suffix]} but cannot write it ({os.fspath(path)!r}); "
               f"write PNG instead, e.g. {better} (-o, or --name '{{stem}}.png')")
        raise UsageError(msg)
    known = ", ".join(ext for info in FORMATS.values() for ext in info.extensions)
    shown = suffix or "no extension"
    msg = f"cannot tell the output format from {shown!r} in {os.fspath(path)!r} (known: {known}; or --format)"
    raise UsageError(msg)


def extension_for(fmt: str) -> str:
    """The usual extension of a format, with its dot: ``"jpeg"`` -> ``".jpg"``."""
    return format_info(fmt).extensions[0]




def icc_space(profile: bytes) -> bytes:
    """The ICC profile's data colour space signature, e.g. b"RGB " or b"GRAY"."""
    return profile[16:20] if len(profile) >= 20 else b""


def icc_fits(profile: bytes, channels: int) -> bool:
    return icc_space(profile) == (b"GRAY" if channels == 1 else b"RGB ")

