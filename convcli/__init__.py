"""convcli: convolution filters for images, with PyTorch-style shape reports.

The pure numeric API (NumPy only, no I/O)::

    from convcli import correlate2d

    from convcli import conv2d

    from convcli import output_size

    from convcli import get_kernel

    from convcli import parse_kernel

Names are imported on first use, so ``convcli --help`` does not pay for NumPy.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

#: public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "conv2d": "convcli.engine",
    "correlate2d": "convcli.engine",
    "correlate_pixels": "convcli.engine",
    "PixelSpec": "convcli.core.pixels",
    "REGISTRY": "convcli.core.kernels",
    "Kernel": "convcli.core.kernels",
    "gaussian_kernel": "convcli.core.kernels",
    "get_kernel": "convcli.core.kernels",
    "parse_kernel": "convcli.core.specs",
    "MODES": "convcli.core.padding",
    "pad_array": "convcli.core.padding",
    "resolve_mode": "convcli.core.padding",
    "Geometry": "convcli.core.shapes",
    "output_size": "convcli.core.shapes",
    "receptive_field": "convcli.core.shapes",
    "resolve_pad": "convcli.core.shapes",
    "Pipeline": "convcli.pipeline",
}

__all__ = ["__version__", *_EXPORTS]


def _version() -> str:
    """The installed distribution's version (read on first use: importlib.metadata costs ~30 ms)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("convcli")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        value = globals()["__version__"] = _version()
        return value
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    msg = f"module 'convcli' has no attribute {name!r}"
    raise AttributeError(msg)
