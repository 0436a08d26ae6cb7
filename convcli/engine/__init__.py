"""The convolution engine: pure NumPy, no I/O.

``correlate2d`` is the one entry point for depthwise filtering and ``conv2d`` for
channel-mixing layers. Both compute PyTorch's cross-correlation
``out[y, x] = sum_ij K[i, j] * in[y*s + i*d - pad_top, x*s + j*d - pad_left]``
and pick a method behind one signature (``method="auto"``), so fast paths plug in
without touching callers.
"""

from __future__ import annotations

from .core import METHODS, conv2d, correlate2d, im2col

__all__ = ["METHODS", "conv2d", "correlate2d", "im2col"]
