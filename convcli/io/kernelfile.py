"""Kernel images (``-k @psf.png``): decoded here, in io, so convcli.core never imports Pillow."""

from __future__ import annotations

import numpy as np

from convcli.core.kernels import MAX_KERNEL_SIZE
from convcli.core.userfiles import read_user_file
from convcli.errors import ConvcliError, UsageError
from convcli.io.decode import read_image

#: A kernel image larger than this many pixels is refused before decoding (the kernel side limit, squared).
MAX_KERNEL_PIXELS = MAX_KERNEL_SIZE * MAX_KERNEL_SIZE


def load_kernel_image(path: str) -> np.ndarray:
    """The image's luminance (ITU-R 601-2, as --gray) in 0..1, float64, (H, W); alpha is ignored.

    Any read problem is a usage error naming the file: the kernel is a flag's value, not an input.
    The bytes are read first, from a regular file only (a FIFO or a device named like an image
    would block the read or never end).
    """
    data = read_user_file(path, "kernel image")
    try:
        img = read_image(data, gray=True, max_pixels=MAX_KERNEL_PIXELS)
    except ConvcliError as e:
        msg = f"kernel image {path}: {e}"
        raise UsageError(msg) from None
    except OSError as e:
        msg = f"cannot read kernel image {path}: {e.strerror or e}"
        raise UsageError(msg) from None
    return img.color[:, :, 0].astype(np.float64) / float(img.header.maxval)
