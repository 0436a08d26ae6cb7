"""The small files a user names on the command line (``-k @file``, ``--weights``, ``--bias``), read safely.

Every such file is read with a cap of :data:`MAX_USER_FILE_BYTES` (16 MiB). Anything that
is not a regular file (a FIFO, a device such as ``/dev/zero``, a directory, a socket) is
refused from ``stat`` before it is opened, and the open itself is non-blocking, so
nothing here can wait forever or read without end. ``.npy`` files are checked from
their header before NumPy reads them: pickles and object arrays are never loaded
(``allow_pickle=False``), a zip archive (``.npz``) or a header that promises more data
than the file holds is refused before any allocation.

Standard library and NumPy only; errors are :class:`~convcli.errors.UsageError` naming the file.
"""

from __future__ import annotations

import io
import math
import os
import stat
from pathlib import Path

import numpy as np

from convcli.errors import UsageError
from convcli.io.files import file_kind
from convcli.io.npy import NPY_MAGIC, read_npy_header

#: The largest kernel, weights or bias file read (README, "Kernels").
MAX_USER_FILE_BYTES = 16 * 1024 * 1024

def read_user_file(path: str | os.PathLike[str], what: str, cap: int = MAX_USER_FILE_BYTES) -> bytes:
    """The bytes of a regular file of at most ``cap`` bytes; UsageError ``"{what} {path}: ..."`` otherwise."""
    shown = os.fspath(path)
    try:
        st = os.stat(shown)
    except OSError as e:
        msg = f"cannot read {what} {shown}: {e.strerror or e}"
        raise UsageError(msg) from None
    if not stat.S_ISREG(st.st_mode):
        msg = f"{what} {shown} is {file_kind(st.st_mode)}, not a regular file"
        raise UsageError(msg)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(shown, flags)
    except OSError as e:
        msg = f"cannot read {what} {shown}: {e.strerror or e}"
        raise UsageError(msg) from None
    try:
        st = os.fstat(fd)  # what was opened, in case the name changed since the stat above
        if not stat.S_ISREG(st.st_mode):
            msg = f"{what} {shown} is {file_kind(st.st_mode)}, not a regular file"
            raise UsageError(msg)
        if st.st_size > cap:
            msg = f"{what} {shown} is {st.st_size} bytes, over the limit of {cap} ({cap >> 20} MiB)"
            raise UsageError(msg)
        chunks: list[bytes] = []
        total = 0
        while total <= cap:
            chunk = os.read(fd, min(1 << 20, cap + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except OSError as e:
        msg = f"cannot read {what} {shown}: {e.strerror or e}"
        raise UsageError(msg) from None
    finally:
        os.close(fd)
    if total > cap:  # the file grew while it was read
        msg = f"{what} {shown} is over the limit of {cap} bytes ({cap >> 20} MiB)"
        raise UsageError(msg)
    return b"".join(chunks)


def decode_text(data: bytes, what: str) -> str:
    """UTF-8 text (a BOM allowed); UsageError naming the first bad byte otherwise."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        msg = (f"{what}: not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}); "
               "save it as UTF-8 or plain ASCII")
        raise UsageError(msg) from None


_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")


def parse_npy(data: bytes, what: str) -> np.ndarray:
    """A real-valued array from the bytes of a ``.npy`` file, checked before NumPy allocates anything."""
    if not data:
        msg = f"{what}: the file is empty (expected a .npy array)"
        raise UsageError(msg)
    if data.startswith(_ZIP_MAGICS):
        msg = f"{what}: this is a .npz archive (zip), not a .npy array; save one array with numpy.save"
        raise UsageError(msg)
    if not data.startswith(NPY_MAGIC):
        msg = f"{what}: not a .npy file (it does not start with the NumPy header)"
        raise UsageError(msg)
    f = io.BytesIO(data)
    try:
        shape, _fortran, dtype = read_npy_header(f)
    except ValueError as e:
        msg = f"{what}: not a valid .npy header ({e})"
        raise UsageError(msg) from None
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
        msg = f"{what}: holds Python objects or records, not numbers (pickled data is never loaded)"
        raise UsageError(msg)
    if dtype.kind not in "iuf":
        msg = f"{what}: expected real numbers, got dtype {dtype}"
        raise UsageError(msg)
    count = math.prod(int(n) for n in shape)
    expected = count * dtype.itemsize
    held = len(data) - f.tell()
    if expected != held:
        msg = f"{what}: the header says shape {tuple(shape)} ({expected} bytes) but the file holds {held}"
        raise UsageError(msg)
    try:
        arr = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        msg = f"{what}: not a valid .npy array ({' '.join(str(e).split())[:120]})"
        raise UsageError(msg) from None
    if not isinstance(arr, np.ndarray):
        msg = f"{what}: not a single .npy array"
        raise UsageError(msg)
    return arr


def load_npy(path: str | os.PathLike[str], what: str) -> np.ndarray:
    """A ``.npy`` file the user named: capped read, checked header, no pickles."""
    shown = f"{what} {os.fspath(path)}" if what else os.fspath(path)
    return parse_npy(read_user_file(path, what or "file"), shown)


def suffix(path: str | os.PathLike[str]) -> str:
    return Path(path).suffix.lower()
