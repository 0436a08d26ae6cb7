"""FFT method: per band, overlap-save with ``numpy.fft.rfft2`` in the working precision.

Measured slower than the direct, separable and GEMM paths for every kernel up to 15x15
at 4096x4096 (see :func:`convcli.engine.choose.choose_method`); kept for very large
kernels and as an independent method to cross-check the others. A stride is applied by
sampling the stride-1 band (FFT cannot skip outputs), so it is never chosen for strides.
"""

from __future__ import annotations

import numpy as np

from convcli.core.kernels import rotate180
from convcli.core.shapes import Pair

#: At least this many output rows per FFT band (small transforms are dominated by overhead).
FFT_BAND_ROWS = 64


def fast_len(n: int) -> int:
    """The smallest 2^a 3^b 5^c >= n (pocketfft is fastest on such lengths)."""
    best = 1 << max(0, (n - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


def band_rows(kernel_rows: int) -> int:
    """Output rows per band so that the band's input rows are a fast FFT length."""
    return fast_len(FFT_BAND_ROWS + kernel_rows - 1) - kernel_rows + 1


def dilated(k: np.ndarray, dilation: Pair) -> np.ndarray:
    """The kernel with ``d - 1`` zeros between taps."""
    dy, dx = dilation
    kh, kw = k.shape
    kd = np.zeros((dy * (kh - 1) + 1, dx * (kw - 1) + 1), dtype=k.dtype)
    kd[::dy, ::dx] = k
    return kd


def correlate_band(buf: np.ndarray, k: np.ndarray, stride: Pair, dilation: Pair, out: np.ndarray) -> None:
    """Write into ``out`` (bh, ow, C) the correlation of the padded band ``buf`` with ``k``."""
    (sy, sx) = stride
    bh, ow = out.shape[:2]
    kd = rotate180(dilated(k.astype(out.dtype), dilation))  # correlation = convolution with k flipped
    kh, kw = kd.shape
    shape = (fast_len(buf.shape[0]), fast_len(buf.shape[1]))  # zeros beyond the band: no wrap-around
    kf = np.fft.rfft2(kd, s=shape)
    xf = np.fft.rfft2(buf, s=shape, axes=(0, 1))
    xf *= kf[:, :, None]
    full = np.fft.irfft2(xf, s=shape, axes=(0, 1))
    out[...] = full[kh - 1 : kh - 1 + (bh - 1) * sy + 1 : sy, kw - 1 : kw - 1 + (ow - 1) * sx + 1 : sx]
