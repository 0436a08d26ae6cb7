"""Dispatch for the engine: argument checking, then one method run band by band.

Every method computes full-width bands of output rows (:mod:`.bands`): the padded input
rows a band reads are gathered and converted per band, so no padded or converted copy of
the whole image is ever made and temporaries stay at band size whatever the image size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from convcli.core.padding import PadMode, resolve_mode
from convcli.core.shapes import Geometry, Pad4, Pair
from convcli.engine import bands, direct, fft, gemm, separable
from convcli.engine.choose import METHODS, choose_method
from convcli.engine.intpath import integer_form, is_integer_image
from convcli.errors import UsageError

BandFn = Callable[[np.ndarray, np.ndarray], None]
RowsFn = Callable[[np.ndarray, np.ndarray, int, int, np.ndarray, "np.ndarray | None"], None]


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


def _check_pad(pad: Pad4, m: PadMode) -> None:
    if min(pad) < 0:
        msg = f"padding amounts must be >= 0, got {pad}"
        raise UsageError(msg)
    if m.numpy is None and any(pad):
        msg = "padding mode 'valid' takes no padding amount"
        raise UsageError(msg)


def _run_banded(
    x3: np.ndarray,
    out: np.ndarray,
    band_fn: BandFn,
    ksize: Pair,
    stride: Pair,
    dilation: Pair,
    pad: Pad4,
    m: PadMode,
    buf_dtype: np.dtype,
    threads: int,
    min_rows: int = 1,
    row_bytes: int | None = None,
    max_rows: int | None = None,
    rows_fn: RowsFn | None = None,
) -> None:
    """Fill ``out`` (oh, ow, C') band by band: gather each band's padded rows, call ``band_fn``.

    With ``rows_fn`` (the separable method), bands that need no row padding and no dtype
    conversion skip the gathered copy: ``rows_fn`` reads the image rows in place.
    """
    (kh, kw), (sy, sx), (dy, dx) = ksize, stride, dilation
    oh, ow = out.shape[:2]
    width = (ow - 1) * sx + (kw - 1) * dx + 1
    gather = bands.BandGather(x3, (oh - 1) * sy + (kh - 1) * dy + 1, pad[0], pad[2], width, m, buf_dtype)
    col_index = gather.col_index
    in_row = width * x3.shape[2] * buf_dtype.itemsize * sy
    rb = row_bytes if row_bytes is not None else max(out[0].nbytes, in_row)
    rows = bands.band_rows(oh, rb, threads)
    # Each band re-reads the kernel's halo of (kh - 1) * dy input rows: keep that re-read
    # at most 1 / HALO_FACTOR of the band (15-tap Gaussian: 16-row bands read 2.9x the
    # image from memory, and two threads then scaled 1.3x instead of ~1.9x).
    halo_rows = -(-bands.HALO_FACTOR * (kh - 1) * dy // sy)
    rows = max(rows, min(halo_rows, -(-oh // bands.MIN_BANDS)))
    rows = max(min_rows, rows if max_rows is None else min(rows, max_rows))

    h, w = x3.shape[:2]
    csrc, cvalid = col_index
    n_real = min(w, width - pad[2])  # the real columns [0, n_real) a band reads
    edge = np.r_[0 : pad[2], pad[2] + n_real : width].astype(np.intp) if n_real > 0 else None
    in_place = (
        rows_fn is not None and edge is not None and x3.dtype == buf_dtype and separable.pixel_rows(x3)
        and (edge.size == 0 or int(csrc[edge].max()) < n_real)
    )

    def one_band(y0: int, y1: int) -> None:
        r0, r1 = y0 * sy, (y1 - 1) * sy + (kh - 1) * dy + 1
        if in_place and rows_fn is not None and r0 >= pad[0] and r1 - pad[0] <= h:
            rows_fn(x3[r0 - pad[0] : r1 - pad[0], :n_real], out[y0:y1], pad[2], width, csrc, cvalid)
            return
        band_fn(gather.band(r0, r1), out[y0:y1])

    with bands.single_threaded_blas():
        bands.run_bands(one_band, oh, rows, threads)


@dataclass(frozen=True)
class _Plan:
    """One kernel's band function and the band geometry it wants."""

    method: str
    band_fn: BandFn
    buf_dtype: np.dtype
    min_rows: int = 1
    max_rows: int | None = None
    rows_fn: RowsFn | None = None


def _plan(k: np.ndarray, method: str, image_shape: tuple[int, ...], dt: np.dtype, stride: Pair,
          dilation: Pair, integer: bool) -> _Plan:
    """Resolve ``method`` ("auto" included) for ``k`` and prepare its per-band function."""
    if method == "auto":
        method = choose_method(k, image_shape, stride, dilation, dt, integer)
    # Exact int16 sums for 8-bit data and integer kernels (or integer kernels times a scale).
    form = integer_form(k) if integer else None
    kint, scale = form if form is not None else (k, 1.0)
    wd = np.dtype(np.int16) if form is not None else None
    if method == "separable":
        f = separable.integer_factors(kint) if wd is not None else None
        if f is None:
            wd, scale = None, 1.0
            f = separable.rank1_factors(k)
        if f is None:
            msg = (
                f"method 'separable' needs a rank-1 kernel (an outer product of a column and a row); "
                f"this {k.shape[0]}x{k.shape[1]} kernel has rank {np.linalg.matrix_rank(k)}: "
                "use method 'auto', 'direct', 'im2col' or 'fft'"
            )
            raise UsageError(msg)
        u, v = f
        buf = np.dtype(wd or dt)
        plan = separable.SeparablePlan(u, v, stride, dilation, dt, wd, scale)
        return _Plan(method, plan.correlate_band, buf, rows_fn=plan.correlate_rows)
    if method == "direct":
        return _Plan(method, direct.DirectPlan(kint, stride, dilation, dt, wd, scale).correlate_band,
                     np.dtype(wd or dt))
    if method == "im2col":
        return _Plan(method, gemm.GemmPlan(k, stride, dilation, dt).correlate_band, dt)
    kf = k.astype(dt)
    kdh = (k.shape[0] - 1) * dilation[0] + 1
    rows = max(fft.band_rows(kdh), kdh) if stride[0] == 1 else max(fft.FFT_BAND_ROWS, kdh)

    def fft_band(buf: np.ndarray, o: np.ndarray) -> None:
        fft.correlate_band(buf, kf, stride, dilation, o)

    return _Plan(method, fft_band, dt, rows, rows)


def _output(out: np.ndarray | None, shape: tuple[int, ...], dt: np.dtype) -> np.ndarray:
    """A new result array, or the caller's ``out`` after checking it fits."""
    if out is None:
        return np.empty(shape, dtype=dt)
    if out.shape != shape or out.dtype != dt or not out.flags.c_contiguous:
        msg = f"out must be a C-contiguous {dt} array of shape {shape}, got {out.dtype} {out.shape}"
        raise UsageError(msg)
    return out


def _checked_call(
    x: np.ndarray, ksize: tuple[int, ...], stride: Pair, dilation: Pair, pad: Pad4, mode: str | PadMode,
    dtype: np.dtype | type | str, method: str,
) -> tuple[np.ndarray, PadMode, np.dtype, Pair, Pair, Pair]:
    """The checks every entry point makes; returns x, the mode, the dtype, (oh, ow), stride, dilation."""
    dt = _working_dtype(dtype)
    m = resolve_mode(mode) if isinstance(mode, str) else mode
    x = np.asarray(x)
    if x.ndim not in (2, 3):
        msg = f"image must be (H, W) or (H, W, C), got shape {x.shape}"
        raise UsageError(msg)
    geom = Geometry(ksize=(int(ksize[0]), int(ksize[1])), stride=stride, dilation=dilation, pad=pad)
    out_hw = geom.out_hw(x.shape[0], x.shape[1])
    if method not in METHODS:
        msg = f"unknown method {method!r}; choose from {', '.join(METHODS)}"
        raise UsageError(msg)
    _check_pad(pad, m)
    s = (int(stride[0]), int(stride[1]))
    d = (int(dilation[0]), int(dilation[1]))
    return x, m, dt, out_hw, s, d


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
    threads: int | None = None,
    integer_input: bool = False,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Cross-correlate each channel of ``x`` (H, W) or (H, W, C) with a 2-D ``kernel``.

    ``pad`` is (top, bottom, left, right) filled by padding ``mode`` (any name or
    alias of :mod:`convcli.core.padding`). ``flip=True`` rotates the kernel by 180°,
    which turns the correlation into a true convolution. The result has dtype
    ``dtype`` (float32 or float64) and shape (out_h, out_w[, C]) with the sizes of
    :func:`convcli.core.shapes.output_size`.

    ``method`` is one of :data:`METHODS`: "auto" (:func:`choose_method`), "direct",
    "separable" (rank-1 kernels only), "fft" or "im2col" (GEMM per band). ``threads``
    bands run at once (None: :func:`convcli.engine.set_default_threads`, else all cores).
    ``integer_input=True`` promises that ``x`` holds whole numbers 0..255 (uint8 input
    implies it): integer kernels then run in exact int16 arithmetic where the bound
    ``sum(|k|) * 255`` fits. ``out``, if given, is a C-contiguous array of the result's
    shape and dtype to write into (a reused buffer saves the page faults of a new one).
    """
    k = _check_kernel(kernel)
    if flip:
        k = k[::-1, ::-1]
    x, m, dt, (oh, ow), stride, dilation = _checked_call(x, k.shape, stride, dilation, pad, mode, dtype,
                                                         method)
    nthreads = bands.resolve_threads(threads)
    x3 = x[:, :, None] if x.ndim == 2 else x
    result = _output(out, (oh, ow) + x.shape[2:], dt)
    out3 = result[:, :, None] if x.ndim == 2 else result
    plan = _plan(k, method, x.shape, dt, stride, dilation, integer_input or is_integer_image(x))
    _run_banded(x3, out3, plan.band_fn, k.shape, stride, dilation, pad, m, plan.buf_dtype, nthreads,
                plan.min_rows, max_rows=plan.max_rows, rows_fn=plan.rows_fn)
    return result


def gradient_magnitude(
    x: np.ndarray,
    kernel_x: np.ndarray,
    kernel_y: np.ndarray,
    *,
    stride: Pair = (1, 1),
    dilation: Pair = (1, 1),
    pad: Pad4 = (0, 0, 0, 0),
    mode: str | PadMode = "zeros",
    dtype: np.dtype | type | str = np.float32,
    method: str = "auto",
    threads: int | None = None,
    integer_input: bool = False,
) -> np.ndarray:
    """``sqrt(correlate2d(x, kernel_x)**2 + correlate2d(x, kernel_y)**2)``, fused per band.

    The two gradients of a band are computed from one gathered band and combined while
    they are in cache, so neither full-size gradient image is ever written (Sobel, Scharr,
    Prewitt magnitude). Arguments as :func:`correlate2d`; both kernels must have one shape.
    Squares are taken in ``dtype`` (float32 overflows only above ~1e19).
    """
    kx, ky = _check_kernel(kernel_x), _check_kernel(kernel_y)
    if kx.shape != ky.shape:
        msg = f"both gradient kernels must have one shape, got {kx.shape} and {ky.shape}"
        raise UsageError(msg)
    x, m, dt, (oh, ow), stride, dilation = _checked_call(x, kx.shape, stride, dilation, pad, mode, dtype,
                                                         method)
    nthreads = bands.resolve_threads(threads)
    integer = integer_input or is_integer_image(x)
    px = _plan(kx, method, x.shape, dt, stride, dilation, integer)
    py = _plan(ky, method, x.shape, dt, stride, dilation, integer)
    if px.buf_dtype != py.buf_dtype:  # one kernel has no exact integer form: both in float
        px = _plan(kx, method, x.shape, dt, stride, dilation, False)
        py = _plan(ky, method, x.shape, dt, stride, dilation, False)
    x3 = x[:, :, None] if x.ndim == 2 else x
    out = np.empty((oh, ow, x3.shape[2]), dtype=dt)

    def band(buf: np.ndarray, o: np.ndarray) -> None:
        gy = bands.scratch("gy", o.shape, dt)
        px.band_fn(buf, o)
        py.band_fn(buf, gy)
        np.multiply(o, o, out=o)
        np.multiply(gy, gy, out=gy)
        np.add(o, gy, out=o)
        np.sqrt(o, out=o)

    caps = [r for r in (px.max_rows, py.max_rows) if r is not None]
    _run_banded(x3, out, band, kx.shape, stride, dilation, pad, m, px.buf_dtype, nthreads,
                max(px.min_rows, py.min_rows), max_rows=min(caps) if caps else None)
    return out[:, :, 0] if x.ndim == 2 else out


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


def _im2col_band(buf: np.ndarray, ksize: Pair, stride: Pair, dilation: Pair, out_hw: Pair) -> np.ndarray:
    """Patches of one padded band as (bh*ow, kh*kw*C), column order (i, j, c)."""
    (kh, kw), (sy, sx), (dy, dx), (oh, ow) = ksize, stride, dilation, out_hw
    c = buf.shape[2]
    cols = bands.scratch("cols", (oh, ow, kh, kw, c), buf.dtype)
    if dx == 1 and buf.flags.c_contiguous:
        # For one kernel row i, the kw pixels a window reads are kw*C contiguous samples:
        # copy them as one item (kh copies of (oh, ow) items instead of kh*kw*C-sample loops).
        item = np.dtype((np.void, kw * c * buf.itemsize))
        row_bytes = buf.strides[0]
        for i in range(kh):
            src = np.ndarray(
                shape=(oh, ow), dtype=item, buffer=buf, offset=i * dy * row_bytes,
                strides=(sy * row_bytes, sx * buf.strides[1]),
            )
            dst_i = np.ndarray(
                shape=(oh, ow), dtype=item, buffer=cols, offset=i * kw * c * buf.itemsize,
                strides=(cols.strides[0], cols.strides[1]),
            )
            dst_i[...] = src
    else:
        window = direct.phase_windows(buf, (sy, sx), (dy, dx), (oh, ow))
        for i in range(kh):
            for j in range(kw):
                bands.pixels(cols[:, :, i, j, :])[...] = bands.pixels(window(i, j))
    return cols.reshape(oh * ow, kh * kw * c)


#: Target bytes of one band's im2col matrix in conv2d.
CONV_BAND_BYTES = 4_000_000


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
    threads: int | None = None,
) -> np.ndarray:
    """A conv layer: (H, W, C_in) x weights (C_out, C_in, kh, kw) [+ bias (C_out,)] -> (oh, ow, C_out).

    Computed as PyTorch does on the CPU: unroll the windows (im2col) and do one matrix
    product -- per band of output rows, so the unrolled matrix stays a few MB.
    """
    dt = _working_dtype(dtype)
    w = np.asarray(weights)
    x = np.asarray(x)
    if x.ndim == 2:
        x = x[:, :, None]
    if w.ndim != 4 or w.shape[1] != x.shape[2]:
        msg = f"weights must have shape (out, in={x.shape[2]}, kh, kw), got {w.shape}"
        raise UsageError(msg)
    if not np.all(np.isfinite(w)):
        msg = "weights contain NaN or infinite values"
        raise UsageError(msg)
    cout, cin, kh, kw = w.shape
    geom = Geometry(ksize=(kh, kw), stride=stride, dilation=dilation, pad=pad)
    oh, ow = geom.out_hw(x.shape[0], x.shape[1])
    m = resolve_mode(mode) if isinstance(mode, str) else mode
    _check_pad(pad, m)
    b = None
    if bias is not None:
        b = np.asarray(bias, dtype=dt)
        if b.shape != (cout,):
            msg = f"bias must have shape ({cout},), got {b.shape}"
            raise UsageError(msg)
    nthreads = bands.resolve_threads(threads)
    stride, dilation = (int(stride[0]), int(stride[1])), (int(dilation[0]), int(dilation[1]))
    # (Cout, Cin, kh, kw) -> (kh*kw*Cin, Cout) to match the band's (i, j, c) column order.
    wmat = np.ascontiguousarray(w.transpose(2, 3, 1, 0).reshape(kh * kw * cin, cout).astype(dt))
    out = np.empty((oh, ow, cout), dtype=dt)

    def band(buf: np.ndarray, o: np.ndarray) -> None:
        cols = _im2col_band(buf, (kh, kw), stride, dilation, o.shape[:2])
        o2 = o.reshape(-1, cout)
        np.matmul(cols, wmat, out=o2)
        if b is not None:
            o2 += b

    row_bytes = ow * kh * kw * cin * dt.itemsize * bands.BAND_BYTES // CONV_BAND_BYTES
    _run_banded(x, out, band, (kh, kw), stride, dilation, pad, m, dt, nthreads, 1, row_bytes)
    return out


__all__ = ["METHODS", "choose_method", "conv2d", "correlate2d", "gradient_magnitude", "im2col"]
