"""The ``.npy`` header, read one way for both .npy inputs: images (``convcli blur x.npy``,
convcli.io.decode) and arrays the user names (``-k @k.npy``, conv weights: convcli.io.userfiles)."""

from __future__ import annotations

from typing import BinaryIO

import numpy as np

NPY_MAGIC = b"\x93NUMPY"
#: Largest .npy header read (NumPy's own default limit).
NPY_MAX_HEADER = 10_000


def read_npy_header(fp: BinaryIO) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Shape, Fortran order and dtype from an opened .npy file's header, no data read.

    Versions 1.0, 2.0 and 3.0 (2.0's layout with a UTF-8 header); anything else, or a header NumPy
    cannot parse, is a ValueError whose text is the reason (one line).
    """
    try:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            return np.lib.format.read_array_header_1_0(fp, max_header_size=NPY_MAX_HEADER)
        if version in ((2, 0), (3, 0)):
            return np.lib.format.read_array_header_2_0(fp, max_header_size=NPY_MAX_HEADER)
    except Exception as exc:  # noqa: BLE001 - numpy parses untrusted bytes: any failure is a bad header
        # (ValueError, SyntaxError, tokenize.TokenError for "(24, 32, " cut short, ...)
        reason = " ".join(str(exc).split())
        if "malformed node" in reason or "object at 0x" in reason:  # ast.literal_eval's own words
            reason = "the header is not a Python dict literal of 'descr', 'fortran_order' and 'shape'"
        raise ValueError(reason[:120] or type(exc).__name__) from None
    msg = f"unsupported .npy version {version[0]}.{version[1]}"
    raise ValueError(msg)
