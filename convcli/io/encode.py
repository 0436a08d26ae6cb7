"""Pixels -> file bytes: uint8/uint16 through Pillow or convcli's PNG writer, raw floats as .npy/TIFF."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from convcli.errors import OutputError, UsageError
from convcli.io.files import one_line
from convcli.io.formats import format_info, icc_fits
from convcli.io.metadata import Metadata, metadata_notes, png_chunks, save_params
from convcli.io.png import DEFAULT_PNG_COMPRESS_LEVEL, PNG_TASK_BYTES, THREADED_PNG_MIN_PIXELS, encode_png

if TYPE_CHECKING:
    pass


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



def _pil_image(color: np.ndarray, alpha: np.ndarray | None) -> Image.Image:
    """uint8 (or 16-bit grey without alpha) arrays -> a Pillow image (L, LA, RGB, RGBA or I;16)."""
    if alpha is None:
        return Image.fromarray(np.ascontiguousarray(color))
    stacked = np.concatenate([color.reshape(*color.shape[:2], -1), alpha[..., None]], axis=-1)
    return Image.fromarray(np.ascontiguousarray(stacked))


def eight_bit_reason(fmt: str, channels: int, alpha: bool) -> str | None:
    """Why ``fmt`` cannot hold 16-bit pixels of ``channels`` colour channels (with ``alpha``), or None."""
    info = format_info(fmt)
    if not info.sixteen_bit:
        return f"{info.pil} has no 16-bit"
    if info.name == "tiff" and (alpha or channels == 3):
        kind = ("RGBA" if alpha else "RGB") if channels == 3 else "grey+alpha"
        return f"Pillow cannot write 16-bit {kind} TIFF"
    return None


def prepare_pixels(
    pixels: np.ndarray, alpha: np.ndarray | None, fmt: str
) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """Pixels as ``fmt`` can hold them: alpha flattened onto white where it has none, 16 bits reduced
    to 8 where it has no 16-bit; returns colour (H, W) or (H, W, 3), alpha and the notes of what gave."""
    info = format_info(fmt)
    color, alpha = _check_pixels(pixels, alpha)
    notes: list[str] = []
    maxval = 65535 if color.dtype == np.uint16 else 255
    if alpha is not None and not info.alpha:
        if np.any(alpha != maxval):
            notes.append(f"alpha flattened onto white ({info.pil} has no alpha)")
        color = _flatten_on_white(color, alpha, maxval)
        alpha = None
    if color.dtype == np.uint16:
        why = eight_bit_reason(info.name, 3 if color.ndim == 3 else 1, alpha is not None)
        if why is not None:
            notes.append(f"reduced to 8-bit ({why})")
            color = _to_8bit(color)
            alpha = _to_8bit(alpha) if alpha is not None else None
    if info.palette and alpha is not None and np.any((alpha != 0) & (alpha != 255)):
        notes.append("alpha reduced to 1 bit (GIF: transparent below 128)")
    return color, alpha, notes


def gif_frame(color: np.ndarray, alpha: np.ndarray | None, dither: bool) -> tuple[Image.Image, int | None]:
    """8-bit pixels -> a palette image for GIF and its transparent index (None: opaque).

    Up to 256 colours (255 with transparency) are kept exactly; more are reduced by median cut
    and mapped to the nearest palette colour, Floyd-Steinberg dithered when ``dither``.
    Transparency is 1-bit: alpha below 128 is transparent.
    """
    clear = alpha < 128 if alpha is not None else None
    if clear is not None and not clear.any():
        clear = None
    if color.ndim == 2 and clear is None:
        return Image.fromarray(color).convert("P"), None  # 256 greys: the palette holds them all
    rgb3 = color if color.ndim == 3 else np.repeat(color[..., None], 3, axis=2)
    if clear is not None:  # the colours under transparent pixels take no palette entry (they made a
        rgb3 = rgb3.copy()  # frame of 255 shown colours inexact): they take an opaque pixel's
        rgb3[clear] = rgb3[~clear][0] if not clear.all() else 0
    rgb = Image.fromarray(rgb3)
    n = 256 if clear is None else 255
    colours = rgb.getcolors(n)
    if colours is not None:  # exact: each pixel's own colour (Pillow's mapping goes through a coarse cache)
        keys = (rgb3[..., 0].astype(np.int32) << 16) | (rgb3[..., 1].astype(np.int32) << 8) | rgb3[..., 2]
        table = np.unique(keys)
        im = Image.fromarray(np.searchsorted(table, keys).astype(np.uint8), "P")
        im.putpalette(np.stack([table >> 16, (table >> 8) & 255, table & 255], -1).astype(np.uint8).tobytes())
    else:
        palette = rgb.quantize(colors=n, method=Image.Quantize.MEDIANCUT)
        how = Image.Dither.FLOYDSTEINBERG if dither else Image.Dither.NONE
        im = rgb.quantize(palette=palette, dither=how)
    if clear is None:
        return im, None
    index = np.array(im)
    index[clear] = 255
    out = Image.fromarray(index, "P")
    entries = list(im.getpalette() or [])[: 3 * 255]
    out.putpalette(entries + [0] * (3 * 256 - len(entries)))
    return out, 255


def encode_image(
    pixels: np.ndarray,
    alpha: np.ndarray | None,
    fmt: str,
    *,
    icc_profile: bytes | None = None,
    quality: int | None = None,
    compress_level: int | None = None,
    threads: int = 1,
    task_bytes: int = PNG_TASK_BYTES,
    metadata: Metadata | None = None,
    dither: bool = True,
    ready: Callable[[int], None] | None = None,
) -> tuple[bytes, tuple[str, ...]]:
    """uint8/uint16 pixels (and alpha) -> file bytes in ``fmt``, plus notes of what had to give.

    ``threads`` and ``task_bytes`` go to convcli's PNG writer (:func:`convcli.io.png.encode_png`).
    ``metadata`` is written where ``fmt`` holds it (the notes say what was kept and dropped);
    ``dither``: Floyd-Steinberg when a GIF needs fewer colours than the image has.
    WebP at ``quality`` 100 is lossless, as in ImageMagick.
    ``ready(n)``, if given, returns once rows ``0..n-1`` of ``pixels`` (still being computed
    on another thread) are final: the PNG writer compresses rows as they come, every other
    writer waits for the whole image.
    """
    info = format_info(fmt)
    if info.pil is None:
        msg = f"{info.name} holds raw float values: use encode_float"
        raise UsageError(msg)
    rows_as_they_come = (info.name == "png" and pixels.dtype == np.uint8 and alpha is None
                         and pixels.shape[0] * pixels.shape[1] >= THREADED_PNG_MIN_PIXELS)
    if ready is not None and not rows_as_they_come:  # every other writer takes the whole image
        ready(pixels.shape[0])
        ready = None
    color, alpha, notes = prepare_pixels(pixels, alpha, fmt)
    channels = 1 if color.ndim == 2 else 3
    icc_profile, icc_notes = fit_icc(icc_profile, channels, info.name)
    notes.extend(icc_notes)
    if metadata is not None:
        notes.extend(metadata_notes(metadata, info.name, "kept" if icc_profile is not None else None))
    meta = metadata or Metadata()

    threaded = color.dtype == np.uint16 or color.shape[0] * color.shape[1] >= THREADED_PNG_MIN_PIXELS
    if info.name == "png" and threaded:
        level = DEFAULT_PNG_COMPRESS_LEVEL if compress_level is None else compress_level
        png = encode_png(color, alpha, icc_profile=icc_profile, compress_level=level, threads=threads,
                         task_bytes=task_bytes, chunks=png_chunks(meta), ready=ready)
        return png, tuple(notes)

    params: dict[str, object] = {}
    if info.name == "gif":
        im, transparency = gif_frame(color, alpha, dither)
        if transparency is not None:
            params["transparency"] = transparency
    else:
        im = _pil_image(color, alpha)
    params.update(pillow_params(info.name, meta, icc_profile, quality, compress_level))
    buf = io.BytesIO()
    try:
        im.save(buf, format=info.pil, **params)
    except (OSError, ValueError) as exc:
        msg = f"cannot encode {im.mode} as {info.pil}: {one_line(exc)}"
        raise OutputError(msg) from None
    return buf.getvalue(), tuple(notes)


def fit_icc(icc_profile: bytes | None, channels: int, fmt: str) -> tuple[bytes | None, list[str]]:
    """The ICC profile if it still describes the output and ``fmt`` holds it, and a note if not."""
    if icc_profile is not None and channels == 1 and not format_info(fmt).grey and icc_fits(icc_profile, 1):
        return None, [f"ICC profile dropped (a grey profile; {fmt.upper()} stores grey as RGB)"]
    if icc_profile is not None and not icc_fits(icc_profile, channels):
        return None, ["ICC profile dropped (its colour space does not match the image)"]
    if icc_profile is not None and fmt in ("bmp", "gif"):
        return None, [f"ICC profile dropped ({fmt.upper()} cannot hold it)"]
    return icc_profile, []


def pillow_params(fmt: str, meta: Metadata, icc_profile: bytes | None, quality: int | None,
                  compress_level: int | None) -> dict[str, object]:
    """Pillow ``save`` keywords for ``fmt``: ICC, metadata, quality, PNG level."""
    info = format_info(fmt)
    params: dict[str, object] = {}
    if icc_profile is not None:
        params["icc_profile"] = icc_profile
    if info.name == "png":
        params["compress_level"] = DEFAULT_PNG_COMPRESS_LEVEL if compress_level is None else compress_level
        # Pillow writes pHYs and eXIf itself (it skips them in pnginfo); gAMA (written before PLTE)
        # and the text chunks go as built.
        if meta.dpi:
            params["dpi"] = meta.dpi
        if meta.exif:
            params["exif"] = meta.exif
        chunks = [(kind, data) for kind, data in png_chunks(meta) if kind in (b"gAMA", b"tEXt", b"iTXt")]
        if chunks:
            pnginfo = PngInfo()
            for kind, data in chunks:
                pnginfo.add(kind, data)
            params["pnginfo"] = pnginfo
    else:
        params.update(save_params(meta, info.name))
    if info.quality is not None:
        params["quality"] = info.quality if quality is None else quality
        if info.name == "webp" and params["quality"] == 100:
            params["lossless"] = True
    return params


def encode_float(values: np.ndarray, fmt: str) -> bytes:
    """Raw float32 values, no mapping: ``npy`` of the array's own shape ((H, W), (H, W, C), or a
    flattened vector), or single-channel float TIFF (a trailing channel axis of 1 dropped).
    """
    info = format_info(fmt)
    arr = np.asarray(values, dtype=np.float32)
    if arr.ndim == 3 and arr.shape[2] == 1 and info.name != "npy":
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) and not (arr.ndim == 1 and info.name == "npy"):  # 1-D: a flattened vector
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


