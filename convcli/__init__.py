"""convcli: convolution filters for images, with PyTorch-style shape reports.

The pure numeric API (NumPy only, no I/O)::

    from convcli import correlate2d, conv2d, output_size, get_kernel, parse_kernel
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .engine import conv2d, correlate2d
from .kernels import REGISTRY, Kernel, gaussian_kernel, get_kernel, parse_kernel
from .padding import MODES, pad_array, resolve_mode
from .shapes import Geometry, output_size, receptive_field, resolve_pad

try:
    __version__ = version("convcli")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "MODES",
    "REGISTRY",
    "Geometry",
    "Kernel",
    "__version__",
    "conv2d",
    "correlate2d",
    "gaussian_kernel",
    "get_kernel",
    "output_size",
    "pad_array",
    "parse_kernel",
    "receptive_field",
    "resolve_mode",
    "resolve_pad",
]
