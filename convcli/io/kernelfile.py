"""Kernel files (``-k @k.txt/.csv/.json/.npy``) and kernel images (``-k @psf.png``), read here, in io:
convcli.core parses what they hold and never opens a file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from convcli.core.kernels import MAX_KERNEL_SIZE, Kernel, kernel_from_array, kernel_from_text
from convcli.core.parametric import kernel_from_image
from convcli.errors import ConvcliError, UsageError
from convcli.io.decode import read_header, read_image
from convcli.io.formats import IMAGE_EXTENSIONS
from convcli.io.userfiles import decode_text, load_npy, read_user_file

#: The kernel file formats: -k @FILE reads them all, learn -o writes them (the suffix chooses).
KERNEL_FILE_EXTENSIONS: tuple[str, ...] = (".txt", ".csv", ".json", ".npy")

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
        header = read_header(data, gray=True, max_pixels=None)  # the header only: nothing decoded yet
        # said as a kernel's limit: "exceeds --max-pixels 1002001" named a flag the user never gave
        too_big = max(header.width, header.height) > MAX_KERNEL_SIZE
        img = None if too_big else read_image(data, gray=True, max_pixels=MAX_KERNEL_PIXELS)
    except ConvcliError as e:
        msg = f"kernel image {path}: {e}"
        raise UsageError(msg) from None
    except OSError as e:
        msg = f"cannot read kernel image {path}: {e.strerror or e}"
        raise UsageError(msg) from None
    if img is None:
        msg = (f"kernel image {path}: {header.width}x{header.height} (WxH); a kernel is at most "
               f"{MAX_KERNEL_SIZE} a side")
        raise UsageError(msg)
    return img.color[:, :, 0].astype(np.float64) / float(img.header.maxval)


def load_kernel_file(path: str | Path) -> Kernel:
    """``@path``: .npy (2-D), .json (list of lists; a flat list is one row, as the literal ``[1, 2, 3]``),
    an image (any extension of :data:`convcli.io.formats.IMAGE_EXTENSIONS`: a PSF, normalised to sum
    1), anything else rows of text (.txt/.csv).

    Read with the cap and checks of :func:`convcli.io.userfiles.read_user_file`; every
    error names the file.
    """
    p = Path(path)
    what = f"kernel file {p}"
    suffix = p.suffix.lower()
    if suffix in IMAGE_EXTENSIONS and suffix != ".npy":  # .npy: an array of weights, not a picture
        return kernel_from_image(load_kernel_image(str(path)), str(path))
    try:
        if suffix == ".npy":
            return kernel_from_array(load_npy(p, "kernel file"), p.name, what)
        text = decode_text(read_user_file(p, "kernel file"), what)
        return kernel_from_text(text, p.name, what, json_lists=suffix == ".json")
    except UsageError as e:
        text = str(e)
        if text.startswith(("kernel file ", "cannot read kernel file ")):
            raise
        msg = f"{what}: {text}"
        raise UsageError(msg) from None


def kernel_file_bytes(path: str, k: np.ndarray) -> bytes:
    """A 2-D kernel as :func:`load_kernel_file` reads it back for ``path``'s suffix (one of
    :data:`KERNEL_FILE_EXTENSIONS`): .npy, a JSON list of rows, CSV rows, or text rows; 9 significant
    digits in the text forms."""
    import io  # here, not at the top: every filter reads this module, and only learn writes kernels
    import json

    ext = Path(path).suffix.lower()
    if ext == ".npy":
        buf = io.BytesIO()
        np.save(buf, k, allow_pickle=False)
        return buf.getvalue()
    rows = [[f"{v:.9g}" for v in row] for row in k]
    if ext == ".json":
        return (json.dumps([[float(v) for v in row] for row in rows]) + "\n").encode()
    sep = "," if ext == ".csv" else " "
    return ("\n".join(sep.join(row) for row in rows) + "\n").encode()
