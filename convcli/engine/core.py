"""Dispatch for the engine: argument checking, then one method run band by band.

Every method computes full-width bands of output rows (:mod:`.bands`): the padded input
rows a band reads are gathered and converted per band, so no padded or converted copy of
the whole image is ever made and temporaries stay at band size whatever the image size.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import numpy as np

from convcli.core.kernels import rotate180
from convcli.core.padding import PadMode, resolve_mode
from convcli.core.pixels import (
    BandStats,
    PixelSpec,
    RangeStats,
    integer_pixels_band,
    merge_stats,
    pixels_band,
)
from convcli.core.records import record
from convcli.core.shapes import Geometry, Pad4, Pair
from convcli.engine import bands, direct, fft, gemm, separable
from convcli.engine.choose import (
    CONV_MAX_SPECTRA_BYTES,
    CONV_MAX_WORK_BYTES,
    METHODS,
    ConvChoice,
    choose_conv,
    choose_method,
)
from convcli.engine.intpath import integer_form, is_integer_image, quotient_form, sum_range
from convcli.errors import UsageError

BandFn = Callable[[np.ndarray, np.ndarray], None]
RowsFn = Callable[[np.ndarray, np.ndarray, int, int, np.ndarray, "np.ndarray | None"], None]
FinishFn = Callable[[np.ndarray, np.ndarray], None]


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


@record(frozen=True)
class _Banded:
    """One call's band work: the function every band runs and the geometry of the bands."""

    x3: np.ndarray  # (H, W, C) input
    out_hw: Pair  # the whole output's (oh, ow)
    band_fn: BandFn
    ksize: Pair
    stride: Pair
    dilation: Pair
    pad: Pad4
    mode: PadMode
    buf_dtype: np.dtype
    out_row_bytes: int  # bytes of one output row
    min_rows: int = 1
    max_rows: int | None = None
    rows_fn: RowsFn | None = None
    row_bytes: int | None = None  # the row size bands are cut by (default: output or input row)
    int_scale: float | None = None  # the plan's int_scale (see _Plan)
    int_range: tuple[int, int] | None = None  # the plan's int_range (see _Plan)
    cap_rows: int | None = None  # at most this many rows per band (conv2d's im2col matrix)

    def band_height(self, band_bytes: int) -> int:
        """Output rows per band of the whole output (every band but the last has this many)."""
        (kh, kw), (sy, sx), (dy, dx) = self.ksize, self.stride, self.dilation
        oh, ow = self.out_hw
        width = (ow - 1) * sx + (kw - 1) * dx + 1
        in_row = width * self.x3.shape[2] * self.buf_dtype.itemsize * sy
        rb = self.row_bytes if self.row_bytes is not None else max(self.out_row_bytes, in_row)
        rows = bands.band_rows(oh, rb, band_bytes)
        # Each band re-reads the kernel's halo of (kh - 1) * dy input rows: keep that re-read
        # at most 1 / HALO_FACTOR of the band (15-tap Gaussian: 16-row bands read 2.9x the
        # image from memory, and two threads then scaled 1.3x instead of ~1.9x).
        halo_rows = -(-bands.HALO_FACTOR * (kh - 1) * dy // sy)
        rows = max(rows, min(halo_rows, -(-oh // bands.MIN_BANDS)))
        if self.cap_rows is not None:
            rows = max(1, min(rows, self.cap_rows))
        if self.max_rows is not None:  # the FFT's bands: rows fixed by its transform sizes
            return max(self.min_rows, min(rows, self.max_rows))
        return max(self.min_rows, bands.even_bands(oh, rows))

    def run(self, out: np.ndarray, y0: int, y1: int, threads: int, band_bytes: int,
            finish: FinishFn | None = None, band_dtype: np.dtype | None = None) -> None:
        """Fill ``out`` ((y1 - y0), ow, C') with output rows [y0, y1), band by band.

        With ``finish``, each band is computed into a per-thread scratch of ``band_dtype`` and
        ``finish(band, rows of out)`` writes it (pixels: converted while the band is in cache).

        Bands are cut on the whole output's grid (:func:`bands.spans`), so rows of a range
        that starts and ends on it are bit-identical to the same rows of the whole output.
        With ``rows_fn`` (the separable method), bands that need no row padding and no dtype
        conversion skip the gathered copy: ``rows_fn`` reads the image rows in place.
        """
        x3, pad = self.x3, self.pad
        (kh, kw), (sy, sx), (dy, dx) = self.ksize, self.stride, self.dilation
        oh, ow = self.out_hw
        width = (ow - 1) * sx + (kw - 1) * dx + 1
        gather = bands.BandGather(x3, pad[0], pad[2], width, self.mode, self.buf_dtype)
        h, w = x3.shape[:2]
        csrc, cvalid = gather.col_index
        n_real = min(w, width - pad[2])  # the real columns [0, n_real) a band reads
        edge = np.r_[0 : pad[2], pad[2] + n_real : width].astype(np.intp) if n_real > 0 else None
        rows_fn = self.rows_fn
        by_rows = (rows_fn is not None and edge is not None
                   and (edge.size == 0 or int(csrc[edge].max()) < n_real))
        in_place = by_rows and x3.dtype == self.buf_dtype and separable.pixel_rows(x3)
        band_fn = self.band_fn

        def one_band(ya: int, yb: int) -> None:
            r0, r1 = ya * sy, (yb - 1) * sy + (kh - 1) * dy + 1
            dst = out[ya - y0 : yb - y0]
            if finish is not None:
                target, dst = dst, bands.scratch("pixvals", dst.shape, band_dtype or dst.dtype)
            if rows_fn is not None and in_place and r0 >= pad[0] and r1 - pad[0] <= h:
                rows_fn(x3[r0 - pad[0] : r1 - pad[0], :n_real], dst, pad[2], width, csrc, cvalid)
            elif rows_fn is not None and by_rows and self.int_scale is None:
                # The same arithmetic on the gathered band's real columns: a band's values then do
                # not depend on whether its rows were read in place (same-dtype input) or gathered.
                # (Exact integer sums do not depend on it either: they take the padded band, whose
                # padding columns the gather fills while converting, and skip a second fill.)
                rows_fn(gather.band(r0, r1)[:, pad[2] : pad[2] + n_real], dst, pad[2], width, csrc, cvalid)
            else:
                band_fn(gather.band(r0, r1), dst)
            if finish is not None:
                finish(dst, target)

        threads = bands.worth_threads(threads, out.size * kh * kw)  # window taps over the output
        with bands.single_threaded_blas():
            bands.run_bands(one_band, bands.spans(y0, y1, self.band_height(band_bytes)), threads)


@record(frozen=True)
class _Plan:
    """One kernel's band function and the band geometry it wants."""

    method: str
    band_fn: BandFn
    buf_dtype: np.dtype
    min_rows: int = 1
    max_rows: int | None = None
    rows_fn: RowsFn | None = None
    #: on the exact int16 path: the kernel's scale (a band written into an int16 array holds
    #: the integer sums, to be multiplied by it); None on float paths
    int_scale: float | None = None
    #: on the exact int16 path: the least and greatest integer sum any 8-bit input can give
    int_range: tuple[int, int] | None = None


def _plan(k: np.ndarray, method: str, image_shape: tuple[int, ...], dt: np.dtype, stride: Pair,
          dilation: Pair, integer: bool) -> _Plan:
    """Resolve ``method`` ("auto" included) for ``k`` and prepare its per-band function."""
    if method == "auto":
        method = choose_method(k, image_shape, stride, dilation, dt, integer)
    # Exact int16 sums for 8-bit data and integer kernels (or integer kernels times a scale).
    form = integer_form(k) if integer else None
    kint, scale = form if form is not None else (k, 1.0)
    wd = np.dtype(np.int16) if form is not None else None
    span = sum_range(kint) if form is not None else None
    if method == "separable":
        f = separable.integer_factors(kint) if wd is not None else None
        if f is None:
            wd, scale = None, 1.0
            f = separable.rank1_factors(k, separable.rank_tol(dt))
        if f is None and not np.any(k):  # all zeros: the outer product of two zero vectors
            f = np.zeros(k.shape[0], k.dtype), np.zeros(k.shape[1], k.dtype)
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
        return _Plan(method, plan.correlate_band, buf, rows_fn=plan.correlate_rows,
                     int_scale=scale if wd is not None else None, int_range=span if wd is not None else None)
    if method == "direct":
        return _Plan(method, direct.DirectPlan(kint, stride, dilation, dt, wd, scale).correlate_band,
                     np.dtype(wd or dt), int_scale=scale if wd is not None else None, int_range=span)
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


Rows = tuple[int, int]


def _correlate_work(x: np.ndarray, kernel: np.ndarray, stride: Pair, dilation: Pair, pad: Pad4,
                    mode: str | PadMode, flip: bool, dtype: np.dtype | type | str, method: str,
                    integer_input: bool) -> tuple[_Banded, tuple[int, ...]]:
    """The band work of :func:`correlate2d` and the result's shape (2-D input: no channel axis)."""
    k = _check_kernel(kernel)
    if flip:
        k = rotate180(k)
    x, m, dt, (oh, ow), stride, dilation = _checked_call(x, k.shape, stride, dilation, pad, mode, dtype,
                                                         method)
    x3 = x[:, :, None] if x.ndim == 2 else x
    plan = _plan(k, method, x.shape, dt, stride, dilation, integer_input or is_integer_image(x))
    work = _Banded(x3, (oh, ow), plan.band_fn, k.shape, stride, dilation, pad, m, plan.buf_dtype,
                   ow * x3.shape[2] * dt.itemsize, plan.min_rows, plan.max_rows, plan.rows_fn,
                   int_scale=plan.int_scale, int_range=plan.int_range)
    return work, (oh, ow) + x.shape[2:]


def _gradient_work(x: np.ndarray, kernel_x: np.ndarray, kernel_y: np.ndarray, stride: Pair, dilation: Pair,
                   pad: Pad4, mode: str | PadMode, dtype: np.dtype | type | str, method: str,
                   integer_input: bool) -> tuple[_Banded, tuple[int, ...]]:
    """The band work of :func:`gradient_magnitude` and the result's shape."""
    kx, ky = _check_kernel(kernel_x), _check_kernel(kernel_y)
    if kx.shape != ky.shape:
        msg = f"both gradient kernels must have one shape, got {kx.shape} and {ky.shape}"
        raise UsageError(msg)
    x, m, dt, (oh, ow), stride, dilation = _checked_call(x, kx.shape, stride, dilation, pad, mode, dtype,
                                                         method)
    integer = integer_input or is_integer_image(x)
    px = _plan(kx, method, x.shape, dt, stride, dilation, integer)
    py = _plan(ky, method, x.shape, dt, stride, dilation, integer)
    if px.buf_dtype != py.buf_dtype:  # one kernel has no exact integer form: both in float
        px = _plan(kx, method, x.shape, dt, stride, dilation, False)
        py = _plan(ky, method, x.shape, dt, stride, dilation, False)
    x3 = x[:, :, None] if x.ndim == 2 else x

    def band(buf: np.ndarray, o: np.ndarray) -> None:
        gy = bands.scratch("gy", o.shape, dt)
        px.band_fn(buf, o)
        py.band_fn(buf, gy)
        np.multiply(o, o, out=o)
        np.multiply(gy, gy, out=gy)
        np.add(o, gy, out=o)
        np.sqrt(o, out=o)

    caps = [r for r in (px.max_rows, py.max_rows) if r is not None]
    work = _Banded(x3, (oh, ow), band, kx.shape, stride, dilation, pad, m, px.buf_dtype,
                   ow * x3.shape[2] * dt.itemsize, max(px.min_rows, py.min_rows),
                   min(caps) if caps else None)
    return work, (oh, ow) + x.shape[2:]


def _row_range(rows: Rows | None, oh: int) -> Rows:
    if rows is None:
        return 0, oh
    y0, y1 = int(rows[0]), int(rows[1])
    if not 0 <= y0 < y1 <= oh:
        msg = f"rows must be (y0, y1) with 0 <= y0 < y1 <= {oh} (the output height), got {tuple(rows)}"
        raise UsageError(msg)
    return y0, y1


def _band_bytes(band_bytes: int | None, default: int = bands.DEFAULT_BAND_BYTES) -> int:
    """A call's ``band_bytes``: None is the function's default (``bands.DEFAULT_BAND_BYTES``;
    :data:`CONV_BAND_BYTES` for conv layers)."""
    return default if band_bytes is None else band_bytes


def _run_rows(work: _Banded, shape: tuple[int, ...], rows: Rows | None, out: np.ndarray | None,
              dtype: np.dtype | type | str, threads: int | None, band_bytes: int | None) -> np.ndarray:
    """Run a planned correlation over output rows ``rows`` (all: None) into ``out`` or a new array."""
    nthreads = bands.resolve_threads(threads)
    y0, y1 = _row_range(rows, shape[0])
    result = _output(out, (y1 - y0,) + shape[1:], np.dtype(dtype))
    work.run(result.reshape(y1 - y0, shape[1], -1), y0, y1, nthreads, _band_bytes(band_bytes))
    return result


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
    rows: Rows | None = None,
    band_bytes: int | None = None,
) -> np.ndarray:
    """Cross-correlate each channel of ``x`` (H, W) or (H, W, C) with a 2-D ``kernel``.

    ``pad`` is (top, bottom, left, right) filled by padding ``mode`` (any name or
    alias of :mod:`convcli.core.padding`). ``flip=True`` rotates the kernel by 180°,
    which turns the correlation into a true convolution. The result has dtype
    ``dtype`` (float32 or float64) and shape (out_h, out_w[, C]) with the sizes of
    :func:`convcli.core.shapes.output_size`.

    ``method`` is one of :data:`METHODS`: "auto" (:func:`choose_method`), "direct",
    "separable" (rank-1 kernels only), "fft" or "im2col" (GEMM per band). ``threads``
    bands run at once (None: every core this process may use). ``band_bytes`` is the
    target size of one band (None: ``bands.DEFAULT_BAND_BYTES``). ``integer_input=True``
    promises that ``x`` holds whole numbers 0..255 (uint8 input implies it): integer
    kernels then run in exact int16 arithmetic where the bound ``sum(|k|) * 255`` fits.
    ``out``, if given, is a
    C-contiguous array of the result's shape and dtype to write into (a reused buffer
    saves the page faults of a new one).

    ``rows=(y0, y1)`` computes only output rows [y0, y1) (result (y1 - y0, out_w[, C])),
    reading just the input rows they need. Bands are cut on the whole output's grid of
    :func:`band_height` rows: a range whose ends are multiples of it (or ``out_h``) gives
    the whole output's rows bit for bit; other ranges agree within the usual rounding.
    """
    work, shape = _correlate_work(x, kernel, stride, dilation, pad, mode, flip, dtype, method, integer_input)
    return _run_rows(work, shape, rows, out, dtype, threads, band_bytes)


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
    out: np.ndarray | None = None,
    rows: Rows | None = None,
    band_bytes: int | None = None,
) -> np.ndarray:
    """``sqrt(correlate2d(x, kernel_x)**2 + correlate2d(x, kernel_y)**2)``, fused per band.

    The two gradients of a band are computed from one gathered band and combined while
    they are in cache, so neither full-size gradient image is ever written (Sobel, Scharr,
    Prewitt magnitude). Arguments as :func:`correlate2d` (``rows`` and ``out`` too); both
    kernels must have one shape. Squares are taken in ``dtype`` (float32 overflows only above ~1e19).
    """
    work, shape = _gradient_work(x, kernel_x, kernel_y, stride, dilation, pad, mode, dtype, method,
                                 integer_input)
    return _run_rows(work, shape, rows, out, dtype, threads, band_bytes)


def _quotient_finish(spec: PixelSpec, dt: np.dtype, int_scale: float, int_range: tuple[int, int],
                     bias: float, parts: list[BandStats]) -> FinishFn | None:
    """The finish of integer sums whose pixels are a rounded quotient ``(s + a) // d``, else None.

    Every sum ``s`` in ``int_range`` is taken once through the float path's operations (scale,
    bias, rescale, then :func:`pixels_band`): if none clips and the pixels are ``(s + a) // d``
    (:func:`intpath.quotient_form`; a box over an odd number of taps), each band's pixels are one
    integer addition and one division of its sums, written straight into the output, and its
    stats are the table's float values at the band's least and greatest sum (the float values
    rise with ``s``). Bit for bit the float path's pixels and stats, at a third of its passes.
    """
    lo, hi = int_range
    if lo < 0 or hi >= 1 << 15 or not (int_scale > 0 and spec.rescale > 0):
        return None  # (a positive scale: the values rise with the sums, rounding being monotonic)
    sums = np.arange(lo, hi + 1, dtype=np.int16)
    vals = np.empty(sums.shape, dt)
    direct.to_output(sums, vals, int_scale)
    if bias:
        np.add(vals, dt.type(bias), out=vals)
    if spec.rescale != 1.0:
        np.multiply(vals, dt.type(spec.rescale), out=vals)
    table = np.empty(sums.shape, spec.dtype)
    _, _, clipped = pixels_band(vals, table, spec.policy, spec.maxval)  # (vals is left as it is)
    form = quotient_form(table, lo) if clipped == 0 else None
    if form is None or hi + form[0] > np.iinfo(np.uint16).max:
        return None
    a, d = np.uint16(form[0]), np.uint16(form[1])

    def finish(acc: np.ndarray, pix: np.ndarray) -> None:
        smin, smax = int(acc.min()), int(acc.max())
        u = acc.view(np.uint16)  # the sums are >= 0
        if a:
            np.add(u, a, out=u)
        # Into uint16, then cast: the division writing uint8 itself casts through a buffer
        # (72 µs per 400 K sums, against 42 + 24 µs apart).
        np.floor_divide(u, d, out=u)
        np.copyto(pix, u, casting="unsafe")
        parts.append((float(vals[smin - lo]), float(vals[smax - lo]), 0))

    return finish


def _pixel_finish(spec: PixelSpec, dt: np.dtype, int_scale: float | None, int_range: tuple[int, int] | None,
                  bias: float, parts: list[BandStats]) -> tuple[FinishFn, np.dtype]:
    """The per-band conversion to pixels and the dtype bands are computed in.

    Each band's values are exactly those :func:`correlate2d` writes into the same rows (then
    ``+ bias`` and ``* rescale`` in ``dt``, as a stage does), converted by the one local-policy
    band code of :mod:`convcli.core.pixels`: so the pixels and merged stats are bit for bit
    those of ``to_pixels`` on the float result. On the exact int16 path with nothing to add or
    scale, the band stays int16 and is clipped and cast with no float pass at all (rounding an
    integer is the identity); a scale whose pixels are a rounded quotient of the sums (a box)
    is one integer division (:func:`_quotient_finish`).
    """
    policy, maxval, rescale = spec.policy, spec.maxval, spec.rescale
    integer = int_scale is not None
    raw_int = integer and int_scale == 1.0 and bias == 0.0 and rescale == 1.0
    if integer and not raw_int and int_range is not None:
        quotient = _quotient_finish(spec, dt, int_scale, int_range, bias, parts)
        if quotient is not None:
            return quotient, np.dtype(np.int16)

    def finish(vals: np.ndarray, pix: np.ndarray) -> None:
        if raw_int:
            work = bands.scratch("pixwork", vals.shape, vals.dtype)
            parts.append(integer_pixels_band(vals, pix, policy, maxval, work))
            return
        if vals.dtype != dt:  # integer sums: to float as correlate2d converts them
            f = bands.scratch("pixfloat", vals.shape, dt)
            direct.to_output(vals, f, int_scale if int_scale is not None else 1.0)
            vals = f
        if bias:
            np.add(vals, dt.type(bias), out=vals)
        if rescale != 1.0:
            np.multiply(vals, dt.type(rescale), out=vals)
        parts.append(pixels_band(vals, pix, policy, maxval, work=vals))

    return finish, np.dtype(np.int16) if integer else dt


def _run_pixels(work: _Banded, shape: tuple[int, ...], spec: PixelSpec, bias: float, rows: Rows | None,
                out: np.ndarray | None, dtype: np.dtype | type | str, threads: int | None,
                band_bytes: int | None, band_stats: list[BandStats] | None) -> tuple[np.ndarray, RangeStats]:
    if not isinstance(spec, PixelSpec):
        msg = f"pixels must be a PixelSpec, got {type(spec).__name__}"
        raise UsageError(msg)
    nthreads = bands.resolve_threads(threads)
    y0, y1 = _row_range(rows, shape[0])
    result = _output(out, (y1 - y0,) + shape[1:], spec.dtype)
    parts: list[BandStats] = []  # appended by the bands' threads (list.append is atomic)
    finish, band_dt = _pixel_finish(spec, np.dtype(dtype), work.int_scale, work.int_range, float(bias), parts)
    work.run(result.reshape(y1 - y0, shape[1], -1), y0, y1, nthreads, _band_bytes(band_bytes), finish,
             band_dt)
    if band_stats is not None:
        band_stats.extend(parts)
    return result, merge_stats(parts, spec.policy, result.size)


def correlate_pixels(
    x: np.ndarray,
    kernel: np.ndarray,
    pixels: PixelSpec,
    *,
    bias: float = 0.0,
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
    rows: Rows | None = None,
    band_bytes: int | None = None,
    band_stats: list[BandStats] | None = None,
) -> tuple[np.ndarray, RangeStats]:
    """:func:`correlate2d` straight to pixels: ``to_pixels((correlate2d(x, kernel, ...) + bias)
    * pixels.rescale, pixels.policy, pixels.bits)``, bit for bit, stats included.

    Each band is converted by the range policy (``clip`` or ``abs``) inside its worker, while
    its values are in cache, into a uint8/uint16 result: no float image is written and walked
    again. ``bias`` and ``rescale`` are applied in ``dtype`` as a stage applies them. Other
    arguments as :func:`correlate2d`; ``out`` is a C-contiguous array of the pixel dtype.
    Returns the pixels and the :class:`~convcli.core.pixels.RangeStats` merged over bands;
    ``band_stats``, if given, gets each band's (min, max, clipped count) appended, so calls on
    ranges of ``rows`` merge exactly (:func:`convcli.core.pixels.merge_stats`).
    """
    work, shape = _correlate_work(x, kernel, stride, dilation, pad, mode, flip, dtype, method, integer_input)
    return _run_pixels(work, shape, pixels, bias, rows, out, dtype, threads, band_bytes, band_stats)


def gradient_pixels(
    x: np.ndarray,
    kernel_x: np.ndarray,
    kernel_y: np.ndarray,
    pixels: PixelSpec,
    *,
    stride: Pair = (1, 1),
    dilation: Pair = (1, 1),
    pad: Pad4 = (0, 0, 0, 0),
    mode: str | PadMode = "zeros",
    dtype: np.dtype | type | str = np.float32,
    method: str = "auto",
    threads: int | None = None,
    integer_input: bool = False,
    out: np.ndarray | None = None,
    rows: Rows | None = None,
    band_bytes: int | None = None,
    band_stats: list[BandStats] | None = None,
) -> tuple[np.ndarray, RangeStats]:
    """:func:`gradient_magnitude` straight to pixels, as :func:`correlate_pixels` (no bias)."""
    work, shape = _gradient_work(x, kernel_x, kernel_y, stride, dilation, pad, mode, dtype, method,
                                 integer_input)
    return _run_pixels(work, shape, pixels, 0.0, rows, out, dtype, threads, band_bytes, band_stats)


def band_height(
    x: np.ndarray,
    kernel: np.ndarray,
    kernel_y: np.ndarray | None = None,
    *,
    stride: Pair = (1, 1),
    dilation: Pair = (1, 1),
    pad: Pad4 = (0, 0, 0, 0),
    mode: str | PadMode = "zeros",
    flip: bool = False,
    dtype: np.dtype | type | str = np.float32,
    method: str = "auto",
    integer_input: bool = False,
    band_bytes: int | None = None,
) -> int:
    """Output rows per band of :func:`correlate2d` (or, with ``kernel_y``, :func:`gradient_magnitude`)
    called with these arguments: ranges ``rows=`` cut at its multiples are bit-identical to the
    whole output's rows. Nothing is computed."""
    if kernel_y is None:
        work, _ = _correlate_work(x, kernel, stride, dilation, pad, mode, flip, dtype, method, integer_input)
    else:
        kx, ky = (rotate180(kernel), rotate180(kernel_y)) if flip else (kernel, kernel_y)
        work, _ = _gradient_work(x, kx, ky, stride, dilation, pad, mode, dtype, method, integer_input)
    return work.band_height(_band_bytes(band_bytes))


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


#: Default target bytes of one band's im2col matrix in conv2d (its ``band_bytes``).
CONV_BAND_BYTES: Final[int] = 4_000_000


def _conv_shapes(x_shape: tuple[int, ...], weights_shape: tuple[int, ...], stride: Pair, dilation: Pair,
                 pad: Pad4) -> tuple[tuple[int, int, int, int], Pair]:
    """The checked (C_out, C_in, kh, kw) and (oh, ow) of a conv2d call on an (H, W[, C]) input."""
    cin = x_shape[2] if len(x_shape) == 3 else 1
    if len(weights_shape) != 4 or weights_shape[1] != cin:
        msg = f"weights must have shape (out, in={cin}, kh, kw), got {tuple(weights_shape)}"
        raise UsageError(msg)
    cout, _, kh, kw = (int(n) for n in weights_shape)
    geom = Geometry(ksize=(kh, kw), stride=stride, dilation=dilation, pad=pad)
    oh, ow = geom.out_hw(x_shape[0], x_shape[1])
    return (cout, cin, kh, kw), (oh, ow)


def conv2d_plan(
    x_shape: tuple[int, ...],
    weights_shape: tuple[int, ...],
    *,
    stride: Pair = (1, 1),
    dilation: Pair = (1, 1),
    pad: Pad4 = (0, 0, 0, 0),
    dtype: np.dtype | type | str = np.float32,
    threads: int | None = None,
    band_bytes: int | None = None,
    max_bytes: int = CONV_MAX_WORK_BYTES,
) -> ConvChoice:
    """How :func:`conv2d` would compute a call with these shapes, from the shapes alone.

    Raises UsageError when no method fits its working memory in ``max_bytes`` (the check
    conv2d makes before allocating anything; a pipeline makes it when it plans its stages).
    """
    dt = _working_dtype(dtype)
    wshape, out_hw = _conv_shapes(tuple(x_shape), tuple(weights_shape), stride, dilation, pad)
    s = (int(stride[0]), int(stride[1]))
    d = (int(dilation[0]), int(dilation[1]))
    return choose_conv(wshape, out_hw, s, d, dt, _band_bytes(band_bytes, CONV_BAND_BYTES),
                       bands.resolve_threads(threads), max_bytes)


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
    band_bytes: int | None = None,
) -> np.ndarray:
    """A conv layer: (H, W, C_in) x weights (C_out, C_in, kh, kw) [+ bias (C_out,)] -> (oh, ow, C_out).

    Below ``FFT_MIN_TAPS`` taps, computed as PyTorch does on the CPU: unroll the windows (im2col)
    and do one matrix product -- per band of output rows, so the unrolled matrix stays about
    ``band_bytes``. From there on (or when one row's unrolled matrix would not fit), per band by
    FFT with the channels mixed in the spectrum, whose memory does not grow with the taps
    (:func:`convcli.engine.choose.choose_conv`). A call whose working memory would exceed
    ``CONV_MAX_WORK_BYTES`` is refused (UsageError) before anything is allocated.
    ``threads`` None: every core this process may use.
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
    m = resolve_mode(mode) if isinstance(mode, str) else mode
    _check_pad(pad, m)
    b = None
    if bias is not None:
        b = np.asarray(bias, dtype=dt)
        if b.shape != (cout,):
            msg = f"bias must have shape ({cout},), got {b.shape}"
            raise UsageError(msg)
    nthreads = bands.resolve_threads(threads)
    band_bytes = _band_bytes(band_bytes, CONV_BAND_BYTES)
    stride, dilation = (int(stride[0]), int(stride[1])), (int(dilation[0]), int(dilation[1]))
    choice = conv2d_plan(x.shape, w.shape, stride=stride, dilation=dilation, pad=pad, dtype=dt,
                         threads=nthreads, band_bytes=band_bytes)
    oh, ow = _conv_shapes(x.shape, w.shape, stride, dilation, pad)[1]
    out = np.empty((oh, ow, cout), dtype=dt)

    if choice.method == "fft":
        plan = fft.ConvPlan(w, b, stride, dilation, choice.fft_shape, dt,
                            CONV_MAX_SPECTRA_BYTES if choice.cached_spectra else 0)
        work = _Banded(x, (oh, ow), plan.correlate_band, (kh, kw), stride, dilation, pad, m, dt,
                       ow * cout * dt.itemsize, choice.rows, choice.rows)
        work.run(out, 0, oh, nthreads, band_bytes)
        return out

    # (Cout, Cin, kh, kw) -> (kh*kw*Cin, Cout) to match the band's (i, j, c) column order.
    wmat = np.ascontiguousarray(w.transpose(2, 3, 1, 0).reshape(kh * kw * cin, cout).astype(dt))

    def band(buf: np.ndarray, o: np.ndarray) -> None:
        cols = _im2col_band(buf, (kh, kw), stride, dilation, o.shape[:2])
        o2 = o.reshape(-1, cout)
        np.matmul(cols, wmat, out=o2)
        if b is not None:
            o2 += b

    # Bands are cut by the size of their im2col matrix (band_bytes of it, rows of ow windows), and
    # never taller: the halo that other methods' bands grow to amortise would multiply the matrix.
    work = _Banded(x, (oh, ow), band, (kh, kw), stride, dilation, pad, m, dt, ow * cout * dt.itemsize,
                   row_bytes=ow * kh * kw * cin * dt.itemsize, cap_rows=choice.rows)
    work.run(out, 0, oh, nthreads, band_bytes)
    return out


__all__ = ["METHODS", "band_height", "choose_method", "conv2d", "conv2d_plan", "correlate2d",
           "correlate_pixels", "gradient_magnitude", "gradient_pixels", "im2col"]
