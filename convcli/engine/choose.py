"""The automatic choice of method: a pure function of the kernel and the geometry.

Crossovers measured on 4096x4096 RGB float32, 2 cores (benchmarks/engine_crossover.py);
see the comments next to the thresholds.
"""

from __future__ import annotations

from typing import Final

import numpy as np

from convcli.core.records import record
from convcli.core.shapes import Pair
from convcli.engine import fft
from convcli.engine.direct import count_passes
from convcli.engine.intpath import integer_form
from convcli.engine.separable import rank1_factors, rank_tol
from convcli.errors import UsageError

#: Forceable methods of correlate2d ("im2col" is the per-band GEMM / Toeplitz formulation).
METHODS: tuple[str, ...] = ("auto", "direct", "separable", "fft", "im2col")

# Direct costs count_passes(k) memory passes over a band; the per-band GEMM one stacked
# sgemm + kw - 1 shifted additions. Measured (4096x4096 RGB float32, 2 threads, same run,
# direct / im2col ms): sharpen (5 passes) 175/315, random 3x3 (17) 318/327, integer 5x5
# with 4 distinct values (~24) 454/462, random 5x5 (49) 999/628, random 7x7 (97) 1740/604.
DIRECT_MAX_PASSES = 20
# With 4+ distinct coefficients the direct method sums each group and applies all of them
# in one GEMV; re-measured then (same order): random 3x3 92/92, integer 5x5 111/93,
# random 5x5 157/90, random 7x7 613/137 -- the crossover did not move.
#
# 8-bit input and an integer kernel (times a scale) run direct in exact int16, which
# im2col (float BLAS) cannot: uint8 4096x4096 RGB, 2 threads, direct(int16) / im2col ms:
# integer 3x3 (4 passes) 40/81, 5x5 (21) 100/124, 7x7 (37) 241/278.
DIRECT_MAX_PASSES_INT = 40

# FFT (per band, transform lengths rounded up to 2^a 3^b 5^c) against the per-band GEMM,
# random n x n kernels, 1024x1024 RGB float32, 2 threads, ms im2col / fft: n=9 20-47 / 94-130,
# n=15 39-56 / 47, n=21 83-92 / 80, n=31 145-156 / 86, n=41 206-376 / 87-303 (two runs on a
# shared machine). benchmarks/engine_crossover.py: FFT never wins up to 15x15; it does from about 19x19.
FFT_MIN_TAPS = 19 * 19


def choose_method(
    kernel: np.ndarray,
    image_shape: tuple[int, ...],
    stride: Pair = (1, 1),
    dilation: Pair = (1, 1),
    dtype: np.dtype | type | str = np.float32,
    integer_input: bool = False,
) -> str:
    """The method ``correlate2d(method="auto")`` uses: "direct", "separable", "im2col" or "fft".

    - a rank-1 kernel with at least 2 rows and 2 columns -> "separable" (kh + kw taps, not kh * kw);
    - few memory passes (sparse or few distinct coefficients: sharpen, Laplacian, 3x3) -> "direct";
    - dense kernels below ``FFT_MIN_TAPS`` taps -> "im2col" (one stacked GEMM per band);
    - larger dense kernels at stride 1 -> "fft".

    ``integer_input`` (8-bit data: the exact int16 path applies to integer kernels) raises
    the direct method's limit to ``DIRECT_MAX_PASSES_INT``. ``dtype`` sets how close to rank 1 a
    kernel must be (:func:`convcli.engine.separable.rank_tol`); ``image_shape`` is accepted so the
    choice can depend on it; with the current measurements it does not.
    """
    k = np.asarray(kernel, dtype=np.float64)
    kh, kw = k.shape
    if kh > 1 and kw > 1 and rank1_factors(k, rank_tol(dtype)) is not None:
        return "separable"
    limit = DIRECT_MAX_PASSES_INT if integer_input and integer_form(k) is not None else DIRECT_MAX_PASSES
    if count_passes(k) <= limit:
        return "direct"
    if k.size >= FFT_MIN_TAPS and tuple(stride) == (1, 1):
        return "fft"
    return "im2col"


#: conv2d's working memory (every band thread's temporaries, the kernel spectra and the output)
#: may be at most this many bytes: a larger call is refused before anything is allocated.
CONV_MAX_WORK_BYTES: Final[int] = 1 << 30
#: conv2d's FFT method keeps every kernel's spectrum for the whole call up to this many bytes
#: (beyond, each band transforms the kernels again, one at a time).
CONV_MAX_SPECTRA_BYTES: Final[int] = 1 << 27


@record(frozen=True)
class ConvChoice:
    """How conv2d computes one call: the method, its output rows per band and its working memory."""

    method: str  # "im2col" or "fft"
    rows: int  # output rows per band
    band_bytes: int  # temporaries of one band (per thread)
    shared_bytes: int  # memory of the call shared by every band: weights / spectra, and the output
    fft_shape: Pair = (0, 0)  # the FFT method's transform shape
    cached_spectra: bool = False  # the FFT method keeps the kernel spectra for the whole call

    def total_bytes(self, threads: int) -> int:
        """The call's working memory on ``threads`` band threads."""
        return self.shared_bytes + threads * self.band_bytes


def conv_choices(weights_shape: tuple[int, int, int, int], out_hw: Pair, stride: Pair,
                 dilation: Pair, dtype: np.dtype | type | str, band_bytes: int) -> dict[str, ConvChoice]:
    """Both methods of conv2d for one call, from the shapes alone (nothing is allocated).

    - "im2col": the windows of a band unrolled into a (rows * ow, kh * kw * C_in) matrix and one
      matrix product; bands hold about ``band_bytes`` of that matrix, and at least one row, whose
      matrix grows with the taps (a 301x301 kernel on 224 columns of RGB: 243 MB a row);
    - "fft": per-band overlap-save, whose working memory is a few transforms of the band.
    """
    cout, cin, kh, kw = weights_shape
    (oh, ow), (sy, sx), (dy, dx) = out_hw, stride, dilation
    isz = np.dtype(dtype).itemsize
    kdh = (kh - 1) * dy + 1
    width = (ow - 1) * sx + (kw - 1) * dx + 1
    out_bytes = oh * ow * cout * isz
    row_bytes = ow * kh * kw * cin * isz
    rows = max(1, min(oh, band_bytes // max(1, row_bytes)))
    gathered = ((rows - 1) * sy + kdh) * width * cin * isz
    im2col = ConvChoice("im2col", rows, rows * row_bytes + rows * ow * cout * isz + gathered,
                        out_bytes + kh * kw * cin * cout * isz)
    frows = min(oh, fft.conv_band_rows(kdh, sy))
    rows_in = (frows - 1) * sy + kdh
    shape = fft.conv_shape(rows_in, width)
    spectra = fft.spectra_bytes(cout, cin, shape, np.dtype(dtype))
    cached = spectra <= CONV_MAX_SPECTRA_BYTES
    fband = fft.band_work_bytes(rows_in, width, cin, shape, np.dtype(dtype), cached)
    shared = out_bytes + kh * kw * cin * cout * isz + (spectra if cached else 0)
    ffts = ConvChoice("fft", frows, fband, shared, shape, cached)
    return {"im2col": im2col, "fft": ffts}


def choose_conv(weights_shape: tuple[int, int, int, int], out_hw: Pair, stride: Pair,
                dilation: Pair, dtype: np.dtype | type | str, band_bytes: int, threads: int,
                max_bytes: int = CONV_MAX_WORK_BYTES) -> ConvChoice:
    """The method conv2d uses, or UsageError when no method fits in ``max_bytes`` on ``threads`` threads.

    im2col below ``FFT_MIN_TAPS`` taps (as :func:`choose_method`), FFT from there on; the other
    method when the preferred one would take more than ``max_bytes`` and the other does not.
    """
    choices = conv_choices(weights_shape, out_hw, stride, dilation, dtype, band_bytes)
    kh, kw = weights_shape[2:]
    order = ("fft", "im2col") if kh * kw >= FFT_MIN_TAPS else ("im2col", "fft")
    for name in order:
        if choices[name].total_bytes(threads) <= max_bytes:
            return choices[name]
    best = min(choices.values(), key=lambda c: c.total_bytes(threads))
    cout, cin = weights_shape[:2]
    msg = (f"conv {cout} out x {cin} in x {kh}x{kw} on a {out_hw[0]}x{out_hw[1]} output would need "
           f"{best.total_bytes(threads) / 2**20:,.0f} MiB of working memory ({best.method}, {threads} "
           f"thread{'s' if threads > 1 else ''}), over the limit of {max_bytes / 2**20:,.0f} MiB; "
           "use a smaller --size, fewer channels or a stride")
    raise UsageError(msg)
