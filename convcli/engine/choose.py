"""The automatic choice of method: a pure function of the kernel and the geometry.

Crossovers measured on 4096x4096 RGB float32, 2 cores (benchmarks/engine_crossover.py);
see the comments next to the thresholds.
"""

from __future__ import annotations

import numpy as np

from convcli.core.shapes import Pair
from convcli.engine.direct import count_passes
from convcli.engine.intpath import integer_form
from convcli.engine.separable import rank1_factors

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
    the direct method's limit to ``DIRECT_MAX_PASSES_INT``. ``image_shape`` and ``dtype``
    are accepted so the choice can depend on them; with the current measurements it does not.
    """
    k = np.asarray(kernel, dtype=np.float64)
    kh, kw = k.shape
    if kh > 1 and kw > 1 and rank1_factors(k) is not None:
        return "separable"
    limit = DIRECT_MAX_PASSES_INT if integer_input and integer_form(k) is not None else DIRECT_MAX_PASSES
    if count_passes(k) <= limit:
        return "direct"
    if k.size >= FFT_MIN_TAPS and tuple(stride) == (1, 1):
        return "fft"
    return "im2col"
