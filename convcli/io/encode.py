"""Pixels -> file bytes: uint8/uint16 through Pillow or convcli's PNG writer, raw floats as .npy/TIFF."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from convcli.errors import OutputError, UsageError
from convcli.io.files import one_line
from convcli.io.formats import format_info, icc_fits
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
) -> tuple[bytes, tuple[str, ...]]:
    """uint8/uint16 pixels (and alpha) -> file bytes in ``fmt``, plus notes of what had to give.

    ``threads`` and ``task_bytes`` go to convcli's PNG writer (:func:`convcli.io.png.encode_png`).
    """
    info = format_info(fmt)
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
    if icc_profile is not None and not icc_fits(icc_profile, channels):
        notes.append("ICC profile dropped (its colour space does not match the image)")
        icc_profile = None
    if icc_profile is not None and info.name == "bmp":
        notes.append("ICC profile dropped (BMP cannot hold it)")
        icc_profile = None

    threaded = color.dtype == np.uint16 or color.shape[0] * color.shape[1] >= THREADED_PNG_MIN_PIXELS
    if info.name == "png" and threaded:
        level = DEFAULT_PNG_COMPRESS_LEVEL if compress_level is None else compress_level
        png = encode_png(color, alpha, icc_profile=icc_profile, compress_level=level, threads=threads,
                         task_bytes=task_bytes)
        return png, tuple(notes)

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
        msg = f"cannot encode {im.mode} as {info.pil}: {one_line(exc)}"
        raise OutputError(msg) from None
    return buf.getvalue(), tuple(notes)


def encode_float(values: np.ndarray, fmt: str) -> bytes:
    """Raw float32 values, no mapping: ``npy`` (H, W) or (H, W, C), or single-channel float TIFF.

    A trailing channel axis of 1 is dropped, so a grey result is (H, W).
    """
    info = format_info(fmt)
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


