"""Dense kernels as BLAS matrix products per band (a Toeplitz formulation of im2col).

For kernel column ``j``, the band's output is ``T_j @ R_j``: ``T_j`` (bh x rows_in) is
the banded Toeplitz matrix holding column ``j`` of the kernel on the rows each output row
reads (row stride and dilation are in the matrix), and ``R_j`` is the padded band seen
from column offset ``j * dx`` as a 2-D (rows_in, ow * C) matrix -- a strided view, no
copy. ``kw`` sgemm calls and ``kw - 1`` additions replace ``kh * kw`` tap passes.
"""

from __future__ import annotations

import numpy as np

from ..shapes import Pair
from .bands import scratch, split_phase


def toeplitz_rows(col: np.ndarray, bh: int, rows_in: int, sy: int, dy: int, dtype: np.dtype) -> np.ndarray:
    """T (bh, rows_in) with ``T[y, y*sy + i*dy] = col[i]``."""
    t = np.zeros((bh, rows_in), dtype=dtype)
    ys = np.arange(bh)
    for i, c in enumerate(col):
        if c != 0:
            t[ys, ys * sy + i * dy] = c
    return t


def correlate_band(buf: np.ndarray, k: np.ndarray, stride: Pair, dilation: Pair, out: np.ndarray) -> None:
    """Write into ``out`` (bh, ow, C) the correlation of the padded band ``buf`` with ``k``."""
    (sy, sx), (dy, dx) = stride, dilation
    bh, ow, c = out.shape
    rows_in = buf.shape[0]
    out2 = out.reshape(bh, ow * c)
    tmp: np.ndarray | None = None
    phases: dict[int, np.ndarray] = {}
    first = True
    for j in range(k.shape[1]):
        col = k[:, j]
        if not np.any(col):
            continue
        p, off = (j * dx) % sx, (j * dx) // sx
        if p not in phases:
            src = buf if sx == 1 else split_phase(buf, f"gphase{p}", p, sx)
            phases[p] = src.reshape(rows_in, -1)
        r = phases[p][:, off * c : (off + ow) * c]
        t = toeplitz_rows(col, bh, rows_in, sy, dy, out.dtype)
        if first:
            np.matmul(t, r, out=out2)
            first = False
        else:
            if tmp is None:
                tmp = scratch("gtmp", out2.shape, out2.dtype)
            np.matmul(t, r, out=tmp)
            np.add(out2, tmp, out=out2)
    if first:
        out[...] = 0
