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


def conv_band_rows(kernel_rows: int, sy: int) -> int:
    """Output rows per band of :class:`ConvPlan`: about FFT_BAND_ROWS input rows besides the kernel's."""
    return band_rows(kernel_rows) if sy == 1 else max(1, -(-FFT_BAND_ROWS // sy))


def conv_shape(rows_in: int, width: int) -> Pair:
    """The transform shape of a band of ``rows_in`` x ``width`` padded input samples."""
    return fast_len(rows_in), fast_len(width)


def spectra_bytes(cout: int, cin: int, shape: Pair, dtype: np.dtype) -> int:
    """Bytes of the ``cout * cin`` kernel spectra of transform ``shape`` in ``dtype``'s complex type."""
    return cout * cin * shape[0] * (shape[1] // 2 + 1) * 2 * np.dtype(dtype).itemsize


def band_work_bytes(rows_in: int, width: int, cin: int, shape: Pair, dtype: np.dtype, cached: bool) -> int:
    """Working memory of one :meth:`ConvPlan.correlate_band` call (one thread), in bytes.

    The gathered band, its ``cin`` spectra (and pocketfft's temporary of the same size), the
    per-output-channel product and sum, the inverse transform (and its temporary); without cached
    kernel spectra, one kernel's spectrum per step as well.
    """
    isz = np.dtype(dtype).itemsize
    spec = shape[0] * (shape[1] // 2 + 1) * 2 * isz
    real = shape[0] * shape[1] * isz
    return rows_in * width * cin * isz + 2 * cin * spec + (2 if cached else 4) * spec + 2 * real


class ConvPlan:
    """A conv layer (C_out, C_in, kh, kw) as per-band overlap-save FFTs, channels mixed in the spectrum.

    Each band's ``C_in`` channels are transformed once; every output channel is the inverse
    transform of ``sum_c X_c * K_oc``. The working memory is a few transforms of the band
    (:func:`band_work_bytes`), independent of the number of taps; the kernel spectra are computed
    once per call when they take at most ``max_spectra`` bytes, else per band, one at a time.
    """

    def __init__(self, weights: np.ndarray, bias: np.ndarray | None, stride: Pair, dilation: Pair,
                 shape: Pair, dtype: np.dtype, max_spectra: int) -> None:
        self.w = np.asarray(weights, dtype=dtype)
        self.bias, self.stride, self.dilation, self.shape = bias, stride, dilation, shape
        self.dtype = np.dtype(dtype)
        cout, cin = self.w.shape[:2]
        self.spectra: np.ndarray | None = None
        if spectra_bytes(cout, cin, shape, self.dtype) <= max_spectra:
            self.spectra = np.stack([np.stack([self._spectrum(o, c) for c in range(cin)])
                                     for o in range(cout)])

    def _spectrum(self, o: int, c: int) -> np.ndarray:
        # correlation = convolution with the kernel rotated by 180 degrees
        return np.fft.rfft2(rotate180(dilated(self.w[o, c], self.dilation)), s=self.shape)

    def correlate_band(self, buf: np.ndarray, out: np.ndarray) -> None:
        """Write into ``out`` (bh, ow, C_out) the conv of the padded band ``buf`` (rows_in, width, C_in)."""
        (sy, sx), (dy, dx) = self.stride, self.dilation
        cout, cin, kh, kw = self.w.shape
        kdh, kdw = (kh - 1) * dy + 1, (kw - 1) * dx + 1
        bh, ow = out.shape[:2]
        # Zeros beyond the band: the wrapped-around part of the circular result lands in the
        # first kdh - 1 rows and kdw - 1 columns, which are not kept (overlap-save).
        xf = np.fft.rfft2(buf, s=self.shape, axes=(0, 1))  # (L1, L2 // 2 + 1, C_in)
        acc = np.empty(xf.shape[:2], xf.dtype)
        term = np.empty_like(acc)
        for o in range(cout):
            for c in range(cin):
                k = self.spectra[o, c] if self.spectra is not None else self._spectrum(o, c)
                np.multiply(xf[:, :, c], k, out=acc if c == 0 else term)
                if c:
                    np.add(acc, term, out=acc)
            full = np.fft.irfft2(acc, s=self.shape)
            out[:, :, o] = full[kdh - 1 : kdh + (bh - 1) * sy : sy, kdw - 1 : kdw + (ow - 1) * sx : sx]
        if self.bias is not None:
            out += self.bias
