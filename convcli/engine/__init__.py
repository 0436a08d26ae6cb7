"""The convolution engine: pure NumPy, no I/O.

``correlate2d`` is the one entry point for depthwise filtering and ``conv2d`` for
channel-mixing layers. Both compute PyTorch's cross-correlation
``out[y, x] = sum_ij K[i, j] * in[y*s + i*d - pad_top, x*s + j*d - pad_left]``
and pick a method behind one signature (``method="auto"``, see :func:`choose_method`),
so fast paths plug in without touching callers. Work is split into full-width bands run
on ``threads`` threads; :func:`set_default_threads` sets the default (the CLI's ``--threads``).
"""

from __future__ import annotations

from .bands import get_default_threads, set_default_threads
from .choose import METHODS, choose_method
from .core import conv2d, correlate2d, gradient_magnitude, im2col

__all__ = [
    "METHODS",
    "choose_method",
    "conv2d",
    "correlate2d",
    "get_default_threads",
    "gradient_magnitude",
    "im2col",
    "set_default_threads",
]
