"""Rank-1 kernels (Gaussian, box, Sobel, Prewitt...) as two 1-D passes.

``K = outer(u, v)`` is detected with an SVD (second singular value below
:data:`RANK_TOL` times the first). The vertical pass runs first over the band's padded
rows and computes only the kept output rows (a row stride just skips input rows); the
horizontal pass then reads the intermediate polyphase, so only the kept columns are
computed. Each pass groups taps that share a coefficient (symmetric kernels: half the
multiplications).
"""

from __future__ import annotations

import math

import numpy as np

from convcli.core.shapes import Pair
from convcli.engine.bands import ColumnRun, column_runs, copy_columns, scratch
from convcli.engine.direct import accumulate, count_passes, group_taps, phase_windows, to_output
from convcli.engine.gemm import toeplitz_rows

#: A kernel is rank 1 when sigma_2 <= RANK_TOL * sigma_1 (relative to the kernel's norm), for float32
#: arithmetic: the rank-1 error is then a few float32 roundings of the largest term.
RANK_TOL = 1e-6
#: The same for float64 (``--float64``, explain, learn, animate): 1e-6 let [[333333333, 1], [1, 1]] run as
#: rank 1 and come out 4 off an exact 333333342.
RANK_TOL_FLOAT64 = 1e-13


def rank_tol(dtype: np.dtype | type | str) -> float:
    """The rank-1 tolerance for arithmetic in ``dtype``."""
    return RANK_TOL_FLOAT64 if np.dtype(dtype) == np.float64 else RANK_TOL

# Vertical pass as one sgemm per band (Toeplitz matrix @ the band's rows) when the taps
# would need more memory passes than this. Measured per 32-row band of 4096x3 float32,
# one thread: taps/gemm ms -- 3 taps 0.10/0.26, 5 random 0.29/0.28, 7 symmetric
# 0.34/0.35, 9 symmetric 0.37/0.32, 15 symmetric 0.69/0.37, 15 random 0.94/0.37.
VERTICAL_GEMM_MIN_PASSES = 9
#: Output rows per vertical GEMM (a band is cut into such chunks; the band itself is
#: larger so that its halo is re-read from cache, not memory). 15 taps over 4096x3
#: columns, one thread, per image: 8 rows 30 ms, 16 rows 36 ms, 32 rows 44 ms, 64 rows 79 ms.
GEMM_CHUNK_ROWS = 16


def rank1_factors(k: np.ndarray, tol: float = RANK_TOL) -> tuple[np.ndarray, np.ndarray] | None:
    """(u, v) with ``outer(u, v) == k`` (within ``tol`` of the norm) if ``k`` is rank 1, else None.

    Factors are taken from a pivot row and column of ``k`` itself when they reproduce it,
    so integer kernels get integer factors (Sobel: [1, 2, 1] x [1, 0, -1]) and box or
    binomial kernels get exact taps; otherwise from the SVD.
    """
    kk = np.asarray(k, dtype=np.float64)
    if kk.ndim != 2 or not np.any(kk):
        return None
    i0, j0 = np.unravel_index(np.argmax(np.abs(kk)), kk.shape)
    u = kk[:, j0].copy()
    if np.all(u == np.round(u)):
        g = math.gcd(*(int(a) for a in u)) or 1
        u = u / g
    v = kk[i0, :] / u[i0]
    err = np.abs(np.outer(u, v) - kk).max()
    if err == 0:  # an exact outer product (boxes, integer kernels): rank 1 without an SVD
        return u, v
    s = np.linalg.svd(kk, compute_uv=False)
    if s.size > 1 and s[1] > tol * s[0]:
        return None
    if err <= tol * s[0]:
        return u, v
    uu, ss, vt = np.linalg.svd(kk)
    r = math.sqrt(ss[0])
    return uu[:, 0] * r, vt[0] * r


def integer_factors(k: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Rank-1 factors that are both integral (for the exact int16 path), else None."""
    f = rank1_factors(k)
    if f is None or not all(np.all(a == np.round(a)) for a in f):
        return None
    return f


def run_sum(x: np.ndarray, n: int, axis: int, out: np.ndarray) -> None:
    """out = sum of ``n`` consecutive slices of ``x`` along ``axis`` (0 or 1), by doubling.

    A box of n equal taps costs floor(log2 n) + popcount(n) - 1 passes instead of n - 1
    (5 taps: 3 passes, 15 taps: 6): partial sums of 2, 4, 8... neighbours are built once
    and the binary digits of n pick which to add (running sums without a cumulative sum,
    so float32 rounding stays that of a short sum). No pass is a plain copy: the first two
    parts are added straight into ``out``, and for n a power of two the last doubling
    writes ``out`` (5 taps: x01 = x0 + x1, x0123 = x01 + x23, out = x0123 + x4).
    """
    length = out.shape[axis]

    def sl(a: np.ndarray, start: int, size: int) -> np.ndarray:
        return a[start : start + size] if axis == 0 else a[:, start : start + size]

    if n == 1:
        np.copyto(out, sl(x, 0, length))
        return
    top = n.bit_length() - 1  # the largest power of two in n
    power, p, offset = x, 1, 0
    first: np.ndarray | None = None  # the first part, not yet added
    have = False
    for level in range(top + 1):
        if n >> level & 1:
            part = sl(power, offset, length)
            if first is None and not have:
                first = part
            elif first is not None:
                np.add(first, part, out=out)
                first, have = None, True
            else:
                np.add(out, part, out=out)
            offset += p
        if level < top:
            size = power.shape[axis] - p
            if level + 1 == top and n == 1 << top:
                np.add(sl(power, 0, length), sl(power, p, length), out=out)
                return
            # One buffer per level: the first part may still be an earlier level's sums.
            nxt = scratch(f"run{level}", sl(power, 0, size).shape, x.dtype)
            np.add(sl(power, 0, size), sl(power, p, size), out=nxt)
            power, p = nxt, 2 * p


def _box(groups: list[tuple[float, list[tuple[int, int]]]], n: int) -> float | None:
    """The common coefficient if the 1-D factor is a box of n >= 4 equal taps, else None."""
    if n >= 4 and len(groups) == 1 and len(groups[0][1]) == n:
        return groups[0][0]
    return None


def pixel_rows(a: np.ndarray) -> bool:
    """True if each row of (rows, n, C) ``a`` is n * C contiguous samples."""
    if a.shape[2] == 1:
        return a.shape[1] == 1 or a.strides[1] == a.itemsize
    return a.strides[2] == a.itemsize and a.strides[1] == a.shape[2] * a.itemsize


def _as_2d(a: np.ndarray) -> np.ndarray:
    """(rows, n, C) with contiguous rows of pixels as a (rows, n * C) view (row stride kept)."""
    if not pixel_rows(a):
        msg = "rows of pixels must be contiguous"
        raise ValueError(msg)
    shape, strides = (a.shape[0], a.shape[1] * a.shape[2]), (a.strides[0], a.itemsize)
    return np.lib.stride_tricks.as_strided(a, shape, strides)


class SeparablePlan:
    """Both 1-D passes of one rank-1 kernel, prepared once per call and shared by every band."""

    def __init__(self, u: np.ndarray, v: np.ndarray, stride: Pair, dilation: Pair,
                 out_dtype: np.dtype, work_dtype: np.dtype | None = None, scale: float = 1.0) -> None:
        self.stride, self.dilation, self.scale = stride, dilation, scale
        self.wd = np.dtype(work_dtype) if work_dtype is not None else np.dtype(out_dtype)
        self.u = np.asarray(u).astype(self.wd)
        self.ugroups = group_taps(self.u.reshape(-1, 1))
        self.vgroups = group_taps(np.asarray(v).astype(self.wd).reshape(1, -1))
        self.gemm = self.wd.kind == "f" and count_passes(self.u.reshape(-1, 1)) >= VERTICAL_GEMM_MIN_PASSES
        # Box factors (all taps equal) at stride 1, dilation 1: summed by doubling.
        self.ubox = _box(self.ugroups, len(self.u)) if (stride[0], dilation[0]) == (1, 1) else None
        self.vbox = _box(self.vgroups, np.size(v)) if (stride[1], dilation[1]) == (1, 1) else None
        if self.ubox is not None:
            self.gemm = False
        self._toeplitz: dict[tuple[int, int], np.ndarray] = {}
        self._edges: dict[tuple[int, int, int], tuple[list[ColumnRun], list[slice]]] = {}

    def correlate_rows(self, rows: np.ndarray, out: np.ndarray, pad_left: int, width: int,
                       col_src: np.ndarray, col_valid: np.ndarray | None) -> None:
        """As :meth:`correlate_band`, from unpadded image rows: no gathered copy of the band.

        Padding columns commutes with the vertical pass (a padded column is a copy of a real
        column, or zeros), so the vertical pass runs on the real columns straight from the
        image and the padding columns are filled in the narrow intermediate afterwards.
        ``rows`` (rows_in, n, C) holds the real columns the band needs, n <= W; the caller
        guarantees every padding column's source ``col_src`` lies among them.
        """
        n, c = rows.shape[1], rows.shape[2]
        mid = scratch("mid", (out.shape[0], width, c), self.wd)
        self._vertical(rows, mid[:, pad_left : pad_left + n])
        edges = self._edges.get((pad_left, n, width))
        if edges is None:  # the same for every band of a call: built once
            edge = np.concatenate((np.arange(pad_left), np.arange(pad_left + n, width))).astype(np.intp)
            valid = col_valid[edge] if col_valid is not None else np.ones(edge.size, bool)
            zero = edge[~valid]
            copies = column_runs(edge[valid], col_src[edge[valid]] + pad_left)
            edges = self._edges[(pad_left, n, width)] = (copies, [d for d, _ in column_runs(zero, zero)])
        copy_columns(mid, edges[0])
        for d in edges[1]:
            mid[:, d] = 0
        self._horizontal(mid, out)

    def correlate_band(self, buf: np.ndarray, out: np.ndarray) -> None:
        """Write into ``out`` (bh, ow, C) the correlation of the padded band ``buf``."""
        mid = scratch("mid", (out.shape[0], buf.shape[1], buf.shape[2]), self.wd)
        self._vertical(buf, mid)
        self._horizontal(mid, out)

    def _vertical(self, buf: np.ndarray, mid: np.ndarray) -> None:
        """Vertical pass: only the kept output rows, over every column of ``buf``."""
        sy, dy = self.stride[0], self.dilation[0]
        bh, width = mid.shape[:2]
        if self.gemm:
            flat = _as_2d(buf)
            mid2 = _as_2d(mid)
            for c0 in range(0, bh, GEMM_CHUNK_ROWS):
                ch = min(GEMM_CHUNK_ROWS, bh - c0)
                rin = (ch - 1) * sy + (len(self.u) - 1) * dy + 1
                t = self._toeplitz.get((ch, rin))
                if t is None:
                    t = self._toeplitz[(ch, rin)] = toeplitz_rows(self.u, ch, rin, sy, dy, self.wd)
                np.matmul(t, flat[c0 * sy : c0 * sy + rin], out=mid2[c0 : c0 + ch])
        elif self.ubox is not None:
            run_sum(buf, len(self.u), 0, mid)
            if self.ubox != 1:
                np.multiply(mid, self.wd.type(self.ubox), out=mid)
        else:
            accumulate(self.ugroups, phase_windows(buf, (sy, 1), (dy, 1), (bh, width)), mid)

    def _horizontal(self, mid: np.ndarray, out: np.ndarray) -> None:
        """Horizontal pass: polyphase, only the kept output columns."""
        sx, dx = self.stride[1], self.dilation[1]
        bh, ow = out.shape[:2]
        acc = out if self.wd == out.dtype else scratch("acc", out.shape, self.wd)
        if self.vbox is not None:
            run_sum(mid, len(self.vgroups[0][1]), 1, acc)
            if self.vbox != 1:
                np.multiply(acc, self.wd.type(self.vbox), out=acc)
        else:
            accumulate(self.vgroups, phase_windows(mid, (1, sx), (1, dx), (bh, ow)), acc)
        if acc is not out:
            to_output(acc, out, self.scale)


def correlate_band(
    buf: np.ndarray,
    u: np.ndarray,
    v: np.ndarray,
    stride: Pair,
    dilation: Pair,
    out: np.ndarray,
    work_dtype: np.dtype | None = None,
) -> None:
    """Write into ``out`` (bh, ow, C) the correlation of the padded band ``buf`` with outer(u, v)."""
    SeparablePlan(u, v, stride, dilation, out.dtype, work_dtype).correlate_band(buf, out)
