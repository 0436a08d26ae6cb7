"""Colour arithmetic on float arrays: luminance, sRGB transfer, alpha premultiplication.

Pure NumPy. Values are on the image's own scale (0..maxval, e.g. 255 or 65535).
"""

from __future__ import annotations

import numpy as np

#: ITU-R 601-2 luma weights, as Pillow's ``convert("L")``.
LUMA_601 = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def luminance(color: np.ndarray) -> np.ndarray:
    """(H, W, 3) -> (H, W, 1) ITU-R 601-2 luma, unrounded; (H, W, 1) passes through."""
    if color.shape[-1] == 1:
        return color
    if color.shape[-1] != 3:
        msg = f"luminance needs 1 or 3 channels, got {color.shape[-1]}"
        raise ValueError(msg)
    w = LUMA_601.astype(color.dtype)
    return (color @ w)[..., None]


def srgb_to_linear(x: np.ndarray, maxval: float) -> np.ndarray:
    """sRGB-encoded values on 0..maxval -> linear light on 0..maxval (IEC 61966-2-1)."""
    v = np.clip(x / maxval, 0.0, None)
    lin = np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
    return (lin * maxval).astype(x.dtype, copy=False)


def linear_to_srgb(x: np.ndarray, maxval: float) -> np.ndarray:
    """Linear light on 0..maxval -> sRGB-encoded values on 0..maxval.

    Odd about 0, as extended sRGB (IEC 61966-2-2) is: a negative filter response (an edge
    kernel's) is encoded as -f(|x|), so ``--range abs`` and ``normalize`` see it, and ``clip``
    still cuts it to 0. Clipping before encoding had thrown half of every edge away.
    """
    v = x / maxval
    a = np.abs(v)
    enc = np.where(a <= 0.0031308, a * 12.92, 1.055 * a ** (1 / 2.4) - 0.055)
    return (np.copysign(enc, v) * maxval).astype(x.dtype, copy=False)


def premultiply(color: np.ndarray, alpha: np.ndarray, maxval: float) -> np.ndarray:
    """Colour times alpha/maxval, so transparent pixels carry no colour into a filter."""
    return color * (alpha[..., None] / maxval)


def unpremultiply(color: np.ndarray, alpha: np.ndarray, maxval: float) -> np.ndarray:
    """Divide premultiplied colour back by alpha/maxval; 0 where alpha is 0."""
    a = alpha[..., None] / maxval
    out = np.zeros_like(color)
    np.divide(color, a, out=out, where=a > 1e-12)
    return out
