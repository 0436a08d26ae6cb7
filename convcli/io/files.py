"""Files on disk: one-line reasons for OS errors, and the atomic write (temporary file, fsync, rename)."""

from __future__ import annotations

import errno
import os
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from convcli.errors import OutputError

if TYPE_CHECKING:
    pass


_ERRNO_REASONS = {
    errno.ENOENT: "no such file",
    errno.EISDIR: "is a directory",
    errno.ENOTDIR: "not a directory",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EFBIG: "file too large",
    errno.ENAMETOOLONG: "file name too long",
    errno.EIO: "input/output error",
}


def os_reason(exc: OSError) -> str:
    """One short lower-case reason for an OSError, without the path."""
    if exc.errno in _ERRNO_REASONS:
        return _ERRNO_REASONS[exc.errno]
    return one_line(exc.strerror or str(exc) or type(exc).__name__).lower()


def one_line(text: object) -> str:
    return " ".join(str(text).split())


# --------------------------------------------------------------------------- atomic write

_UMASK_LOCK = threading.Lock()
_umask_cache: list[int] = []  # read once: the umask of this process


def _umask() -> int:
    """The process umask, read without changing it where /proc allows (os.umask is racy)."""
    if not _umask_cache:
        try:
            with open("/proc/self/status", encoding="ascii") as status:
                for line in status:
                    if line.startswith("Umask:"):
                        _umask_cache.append(int(line.split()[1], 8))
                        break
        except (OSError, ValueError):
            pass
        if not _umask_cache:
            with _UMASK_LOCK:
                mask = os.umask(0o022)
                os.umask(mask)
            _umask_cache.append(mask)
    return _umask_cache[0]


def write_atomic(path: str | os.PathLike, data: bytes | bytearray | memoryview | Iterable[bytes]) -> None:
    """Write ``data`` (bytes, or an iterable of chunks) to ``path`` atomically.

    A hidden temporary file beside the destination is written, flushed, fsynced and
    renamed over it; on any exception (Ctrl-C included) it is removed and the exception
    re-raised, an OSError as :class:`OutputError` ("cannot write out/x.png: permission denied").
    """
    path = Path(path)
    directory = path.parent
    shown = os.fspath(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=directory)
    except OSError as exc:
        reason = "no such directory" if exc.errno == errno.ENOENT else os_reason(exc)
        raise OutputError(f"cannot write {shown}: {reason}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o644 & ~_umask())
            chunks = [data] if isinstance(data, bytes | bytearray | memoryview) else data
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise OutputError(f"cannot write {shown}: {os_reason(exc)}") from None
        raise
    _fsync_dir(directory)


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable; best effort (not every platform opens directories)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
