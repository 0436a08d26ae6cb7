"""The convolution engine: pure NumPy, no I/O.

``correlate2d`` is the one entry point for depthwise filtering and ``conv2d`` for
channel-mixing layers. Both compute PyTorch's cross-correlation
``out[y, x] = sum_ij K[i, j] * in[y*s + i*d - pad_top, x*s + j*d - pad_left]``
and pick a method behind one signature (``method="auto"``, see :func:`choose_method`),
so fast paths plug in without touching callers. Work is split into full-width bands of
about ``band_bytes`` run on ``threads`` threads; both are arguments of every call (threads
None: the cores this process may use, looked up at the call), never module settings.
``rows=(y0, y1)`` computes a range of output rows only (:func:`band_height` gives the grid
on which such ranges are bit-identical to the whole output).

Methods (:data:`METHODS`, forced with ``method=``; :func:`choose_method` picks for "auto"):

- ``direct``: tap accumulation per band; zero taps skipped, taps sharing a coefficient
  summed first, 4+ distinct coefficients applied in one GEMV; exact int16 arithmetic for
  8-bit input (uint8 arrays, or ``integer_input=True``) and integer kernels (times a scale).
- ``separable``: rank-1 kernels (SVD) as a vertical pass (GEMM for long kernels, doubling
  sums for boxes) and a horizontal pass; strides computed polyphase.
- ``im2col``: dense kernels as one stacked Toeplitz sgemm per chunk of a band.
- ``fft``: per-band overlap-save with ``numpy.fft.rfft2`` (large dense kernels).

``conv2d`` runs im2col per band below 19x19 taps and per-band FFT (channels mixed in the
spectrum) from there on; its working memory is computed from the shapes first
(:func:`conv2d_plan`) and a call that would need more than ``CONV_MAX_WORK_BYTES`` is refused.

Also :func:`gradient_magnitude` (two gradients and sqrt(gx² + gy²) fused per band) and
``out=`` on :func:`correlate2d` to write into a reused buffer; :func:`correlate_pixels` and
:func:`gradient_pixels` write uint8/uint16 pixels by a local range policy (clip/abs) band by
band instead of a float image. Results equal a float64
reference within 1e-4 relative (exactly, on the integer path), whatever the method, band
size or thread count; one and several threads give bit-identical arrays.
"""

from __future__ import annotations

from convcli.engine.bands import DEFAULT_BAND_BYTES, resolve_threads, usable_cores
from convcli.engine.choose import METHODS, choose_method
from convcli.engine.core import (
    band_height,
    conv2d,
    conv2d_plan,
    correlate2d,
    correlate_pixels,
    gradient_magnitude,
    gradient_pixels,
    im2col,
)

__all__ = [
    "DEFAULT_BAND_BYTES",
    "METHODS",
    "band_height",
    "choose_method",
    "conv2d",
    "conv2d_plan",
    "correlate2d",
    "correlate_pixels",
    "gradient_magnitude",
    "gradient_pixels",
    "im2col",
    "resolve_threads",
    "usable_cores",
]
