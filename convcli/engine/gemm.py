"""Dense kernels as one BLAS matrix product per band (a Toeplitz formulation of im2col).

For kernel column ``j``, the band's output is ``T_j @ R_j``: ``T_j`` (bh x rows_in) is
the banded Toeplitz matrix holding column ``j`` of the kernel on the rows each output row
reads (row stride and dilation are in the matrix), and ``R_j`` is the padded band seen
as a 2-D (rows_in, width * C) matrix -- no copy. The ``kw`` matrices are stacked, so a
band is one sgemm ``[T_0; ...; T_kw-1] @ R`` followed by ``kw - 1`` shifted additions.

Band height matters more than anything else here (random 7x7, 4096x4096 RGB float32,
one thread, per image): 8 rows 165 ms, 16 rows 199 ms, 32 rows 1337 ms -- above ~16
rows the product leaves the cache and OpenBLAS falls off a cliff. Hence GEMM_BAND_ROWS.
"""

from __future__ import annotations

import numpy as np

from convcli.core.shapes import Pair
from convcli.engine.bands import scratch, split_phase

#: Output rows per GEMM (chunks of a band; see the module docstring).
GEMM_BAND_ROWS = 8


def toeplitz_rows(col: np.ndarray, bh: int, rows_in: int, sy: int, dy: int, dtype: np.dtype) -> np.ndarray:
    """T (bh, rows_in) with ``T[y, y*sy + i*dy] = col[i]``."""
    t = np.zeros((bh, rows_in), dtype=dtype)
    ys = np.arange(bh)
    for i, c in enumerate(col):
        if c != 0:
            t[ys, ys * sy + i * dy] = c
    return t


class GemmPlan:
    """The stacked Toeplitz matrices of one kernel, cached per band shape."""

    def __init__(self, k: np.ndarray, stride: Pair, dilation: Pair, dtype: np.dtype) -> None:
        self.k = np.asarray(k, dtype=dtype)
        self.stride, self.dilation, self.dtype = stride, dilation, np.dtype(dtype)
        self.cols = [j for j in range(self.k.shape[1]) if np.any(self.k[:, j])]
        self._cache: dict[tuple[int, int], np.ndarray] = {}

    def stacked(self, bh: int, rows_in: int) -> np.ndarray:
        """[T_j for the non-zero kernel columns j] stacked: (len(cols) * bh, rows_in)."""
        key = (bh, rows_in)
        t = self._cache.get(key)
        if t is None:
            sy, dy = self.stride[0], self.dilation[0]
            parts = [toeplitz_rows(self.k[:, j], bh, rows_in, sy, dy, self.dtype) for j in self.cols]
            t = np.concatenate(parts, axis=0) if parts else np.zeros((0, rows_in), self.dtype)
            self._cache[key] = t  # benign race: every thread computes the same matrix
        return t

    def correlate_band(self, buf: np.ndarray, out: np.ndarray) -> None:
        """Write into ``out`` (bh, ow, C) the correlation of the padded band ``buf``.

        The band is computed in chunks of GEMM_BAND_ROWS output rows: the band itself is
        larger, so its halo rows are re-read from cache rather than from memory.
        """
        sy, kdh = self.stride[0], (self.k.shape[0] - 1) * self.dilation[0] + 1
        bh = out.shape[0]
        for c0 in range(0, bh, GEMM_BAND_ROWS):
            ch = min(GEMM_BAND_ROWS, bh - c0)
            self._chunk(buf[c0 * sy : c0 * sy + (ch - 1) * sy + kdh], out[c0 : c0 + ch])

    def _chunk(self, buf: np.ndarray, out: np.ndarray) -> None:
        sx, dx = self.stride[1], self.dilation[1]
        bh, ow, c = out.shape
        rows_in = buf.shape[0]
        out2 = out.reshape(bh, ow * c)
        if not self.cols:
            out[...] = 0
            return
        t = self.stacked(bh, rows_in)
        n = len(self.cols)
        phase_of = {j: (j * dx) % sx for j in self.cols}
        first = True
        for p in sorted(set(phase_of.values())):
            js = [j for j in self.cols if phase_of[j] == p]
            src = buf if sx == 1 else split_phase(buf, "gphase", p, sx)
            r2 = src.reshape(rows_in, -1)
            idx = [self.cols.index(j) for j in js]
            tp = t if len(js) == n else np.concatenate([t[q * bh : (q + 1) * bh] for q in idx], axis=0)
            prod = scratch("gprod", (len(js) * bh, r2.shape[1]), out.dtype)
            np.matmul(tp, r2, out=prod)
            for q, j in enumerate(js):
                off = (j * dx) // sx
                part = prod[q * bh : (q + 1) * bh, off * c : (off + ow) * c]
                if first:
                    np.copyto(out2, part)
                    first = False
                else:
                    np.add(out2, part, out=out2)
