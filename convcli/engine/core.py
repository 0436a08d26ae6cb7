"""Dispatch for the engine: argument checking, padding, then one method."""

from __future__ import annotations

import numpy as np

from ..errors import UsageError
from ..padding import PadMode, pad_array, resolve_mode
from ..shapes import Geometry, Pad4, Pair
from . import direct

METHODS: tuple[str, ...] = ("auto", "direct", "im2col")


def _check_kernel(kernel: np.ndarray) -> np.ndarray:
    k = np.asarray(kernel)
    if k.ndim != 2 or k.size == 0:
        msg = f"kernel must be a non-empty 2-D matrix, got shape {k.shape}"
        raise UsageError(msg)
    if not np.all(np.isfinite(k)):
        msg = "kernel contains NaN or infinite values"
        raise UsageError(msg)
    return k


def _working_dtype(dtype: np.dtype | type | str) -> np.dtype:
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        msg = f"arithmetic dtype must be float32 or float64, got {dt}"
        raise UsageError(msg)
    return dt


def correlate2d(
    x: np.ndarray,
    kernel: np.ndarray,
    *,
    stride: Pair = (1, 1),
    dilation: Pair = (1, 1),
    pad: Pad4 = (0, 0, 0, 0),
    mode: str | PadMode = "zeros",
    flip: bool = False,
    dtype: np.dtype | type | str = np.float32,
    method: str = "auto",
) -> np.ndarray:
    """Cross-correlate each channel of ``x`` (H, W) or (H, W, C) with a 2-D ``kernel``.

    ``pad`` is (top, bottom, left, right) filled by padding ``mode`` (any name or
    alias of :mod:`convcli.padding`). ``flip=True`` rotates the kernel by 180°,
    which turns the correlation into a true convolution. The result has dtype
    ``dtype`` (float32 or float64) and shape (out_h, out_w[, C]) with the sizes of
    :func:`convcli.shapes.output_size`.
    """
    k = _check_kernel(kernel)
    if flip:
        k = k[::-1, ::-1]
    dt = _working_dtype(dtype)
    m = resolve_mode(mode) if isinstance(mode, str) else mode
    if x.ndim not in (2, 3):
        msg = f"image must be (H, W) or (H, W, C), got shape {x.shape}"
        raise UsageError(msg)
    geom = Geometry(ksize=(k.shape[0], k.shape[1]), stride=stride, dilation=dilation, pad=pad)
    out_hw = geom.out_hw(x.shape[0], x.shape[1])
    if method not in METHODS:
        msg = f"unknown method {method!r}; choose from {', '.join(METHODS)}"
        raise UsageError(msg)
    xp = pad_array(np.asarray(x, dtype=dt), pad, m)
    squeeze = xp.ndim == 2
    if squeeze:
        xp = xp[:, :, None]
    out = direct.correlate_padded(xp, k.astype(dt), stride, dilation, out_hw)
    return out[:, :, 0] if squeeze else out


def im2col(xp: np.ndarray, ksize: Pair, stride: Pair, dilation: Pair, out_hw: Pair) -> np.ndarray:
    """Unroll a padded (H, W, C) array into (out_h*out_w, C*kh*kw) patches.

    Column order is (c, i, j), matching a PyTorch weight reshaped to (out, C*kh*kw).
    """
    kh, kw = ksize
    (sy, sx), (dy, dx), (oh, ow) = stride, dilation, out_hw
    c = xp.shape[2]
    cols = np.empty((oh, ow, c, kh, kw), dtype=xp.dtype)
    for i in range(kh):
        for j in range(kw):
            win = xp[i * dy : i * dy + (oh - 1) * sy + 1 : sy, j * dx : j * dx + (ow - 1) * sx + 1 : sx]
            cols[:, :, :, i, j] = win
    return cols.reshape(oh * ow, c * kh * kw)


def conv2d(
    x: np.ndarray,
    weights: np.ndarray,
    bias: np.ndarray | None = None,
    *,
    stride: Pair = (1, 1),
    dilation: Pair = (1, 1),
    pad: Pad4 = (0, 0, 0, 0),
    mode: str | PadMode = "zeros",
    dtype: np.dtype | type | str = np.float32,
) -> np.ndarray:
    """A conv layer: (H, W, C_in) x weights (C_out, C_in, kh, kw) [+ bias (C_out,)] -> (oh, ow, C_out).

    Computed as PyTorch does on the CPU: unroll the windows (im2col) and do one
    matrix product.
    """
    dt = _working_dtype(dtype)
    w = np.asarray(weights)
    if x.ndim == 2:
        x = x[:, :, None]
    if w.ndim != 4 or w.shape[1] != x.shape[2]:
        msg = (f"weights must have shape (out, in={x.shape[2]}, kh, kw), got {w.shape}")
        raise UsageError(msg)
    if not np.all(np.isfinite(w)):
        msg = "weights contain NaN or infinite values"
        raise UsageError(msg)
    cout, _, kh, kw = w.shape
    geom = Geometry(ksize=(kh, kw), stride=stride, dilation=dilation, pad=pad)
    oh, ow = geom.out_hw(x.shape[0], x.shape[1])
    m = resolve_mode(mode) if isinstance(mode, str) else mode
    xp = pad_array(np.asarray(x, dtype=dt), pad, m)
    cols = im2col(xp, (kh, kw), stride, dilation, (oh, ow))
    out = cols @ w.reshape(cout, -1).astype(dt).T
    if bias is not None:
        b = np.asarray(bias, dtype=dt)
        if b.shape != (cout,):
            msg = f"bias must have shape ({cout},), got {b.shape}"
            raise UsageError(msg)
        out += b
    return out.reshape(oh, ow, cout)
