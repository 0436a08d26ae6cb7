"""Files on disk: one-line reasons for OS errors, the atomic write and the cleanup of its temporary files.

Every temporary file carries the run's tag (``.NAME.tmp-TAG-XXXXXXXX``), so an
interrupted run removes its own temporary files and never another run's.
"""

from __future__ import annotations

import errno
import functools
import os
import stat
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from convcli.errors import OutputError

#: Bytes of the destination's name kept in a temporary name (NAME_MAX counts bytes, not characters:
#: 100 characters of a non-Latin name are up to 400 bytes).
_TMP_NAME_BYTES = 100

#: Why a symbolic link to no file (missing target, or a loop) is not written through (as GNU cp refuses to).
DANGLING_LINK = ("a symbolic link that leads to no file (its target is missing, or links loop); refusing to "
                 "write through it")


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
    errno.EBADF: "it is closed",
}


def os_reason(exc: OSError) -> str:
    """One short lower-case reason for an OSError, without the path."""
    if exc.errno in _ERRNO_REASONS:
        return _ERRNO_REASONS[exc.errno]
    return one_line(exc.strerror or str(exc) or type(exc).__name__).lower()


#: What a path that is not a regular file is, in messages: the one table (three modules had their own
#: words for the same kinds).
FILE_KINDS: dict[int, str] = {stat.S_IFDIR: "a directory", stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket",
                              stat.S_IFBLK: "a block device", stat.S_IFCHR: "a character device"}


def file_kind(mode: int) -> str:
    """``"a FIFO"``, ``"a directory"``... for a stat mode; ``"not a regular file"`` for another kind."""
    return FILE_KINDS.get(stat.S_IFMT(mode), "not a regular file")


def one_line(text: object) -> str:
    return " ".join(str(text).split())


# --------------------------------------------------------------------------- atomic write

_UMASK_LOCK = threading.Lock()


@functools.cache
def _umask() -> int:
    """The process umask, read once, without changing it where /proc allows (os.umask is racy)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _UMASK_LOCK:  # os.umask sets as it reads: two threads at once could leave 0o022 set
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def make_dirs(folder: str) -> None:
    """``os.makedirs(folder, exist_ok=True)`` without recursion: a 1,000-level path is a loop of
    ``mkdir`` calls, not a RecursionError. Raises what ``mkdir`` raises (FileExistsError where a
    file, or a link to nothing, stands in the way)."""
    # Walked up as os.makedirs does, on the path as given: the system resolves each "..", after any link
    # before it (abspath would drop "lnk/.." as text and make another folder than the run writes to).
    missing: list[str] = []
    path = folder
    while path and not os.path.isdir(path):
        missing.append(path)
        head, tail = os.path.split(path)
        if not tail:  # "a/b/": the folder is "a/b"
            head = os.path.dirname(head)
        if head == path:
            break
        path = head
    for path in reversed(missing):
        try:
            os.mkdir(path)
        except FileExistsError:
            if not os.path.isdir(path):  # made by another process meanwhile, as makedirs allows
                raise


def write_atomic(path: str | os.PathLike, data: bytes | bytearray | memoryview | Iterable[bytes], *,
                 tag: str = "") -> None:
    """Write ``data`` (bytes, or an iterable of chunks) to ``path`` atomically.

    A hidden temporary file beside the destination (``.NAME.tmp-TAG-XXXXXXXX``) is written,
    flushed, fsynced and renamed over it; on any exception (Ctrl-C included) it is removed
    and the exception re-raised, an OSError as :class:`OutputError` ("cannot write out/x.png:
    permission denied"). An existing character device (``/dev/null``) is written in place,
    never renamed over; any other existing target that is not a regular file is refused. A file
    written over keeps its permission bits (set-user/group-ID dropped).
    A symbolic link is followed, never replaced: the file it names is written atomically in
    its own folder (``-o /dev/stdout > f.png`` writes f.png); a link to nothing is refused.
    """
    path = Path(path)
    shown = os.fspath(path)
    chunks = [data] if isinstance(data, bytes | bytearray | memoryview) else data
    try:
        st = os.stat(path)
    except OSError:
        st = None
    if os.path.islink(path):
        if st is None:
            raise OutputError(f"cannot write {shown}: {DANGLING_LINK}")
        if stat.S_ISREG(st.st_mode):
            path = Path(os.path.realpath(path))
    directory = path.parent
    if st is not None and stat.S_ISCHR(st.st_mode):
        _write_in_place(path, chunks, shown)
        return
    if st is not None and not stat.S_ISREG(st.st_mode):
        kind = "is a directory" if stat.S_ISDIR(st.st_mode) else "exists and is not a regular file"
        raise OutputError(f"cannot write {shown}: {kind}")
    try:
        fd, tmp = _make_temporary(directory, f".{_shortened(path.name)}.tmp-{tag}-")
    except OSError as exc:
        reason = "no such directory" if exc.errno == errno.ENOENT else os_reason(exc)
        raise OutputError(f"cannot write {shown}: {reason}") from None
    # A file written over keeps its permissions, as `cp` onto it would; a new one gets 0644 less the umask.
    mode = stat.S_IMODE(st.st_mode) & ~(stat.S_ISUID | stat.S_ISGID) if st is not None else 0o644 & ~_umask()
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
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


def _shortened(name: str) -> str:
    """The first :data:`_TMP_NAME_BYTES` bytes of a file name, cut between characters."""
    return os.fsencode(name)[:_TMP_NAME_BYTES].decode("utf-8", "ignore")


#: os.open flags of a new temporary file: created here or failing, never following a link.
_TMP_FLAGS = (os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
              | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOINHERIT", 0))


def _make_temporary(directory: Path, prefix: str) -> tuple[int, str]:
    """A new file ``PREFIX`` + 8 random characters in ``directory``, mode 0600: its descriptor and path.

    tempfile.mkstemp's contract with the flags above; written here because importing tempfile
    (with random, shutil, bz2, lzma) costs a few milliseconds of every run's start-up.
    """
    for _ in range(100):
        name = os.path.join(directory, prefix + os.urandom(4).hex())
        try:
            return os.open(name, _TMP_FLAGS, 0o600), name
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name")


def _write_in_place(path: Path, chunks: Iterable[bytes | bytearray | memoryview], shown: str) -> None:
    """A character device named on purpose (``-o /dev/null``): written to, not replaced."""
    try:
        with open(path, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
    except OSError as exc:
        raise OutputError(f"cannot write {shown}: {os_reason(exc)}") from None


def remove_temporaries(outputs: Iterable[str | None], tag: str) -> None:
    """Remove the temporary files of this run's tag left beside these outputs by interrupted writes.

    Each folder is listed once, however many outputs it holds; other runs' temporary
    files (another tag) are left alone.
    """
    if not tag:
        return
    named = [out for out in outputs if out is not None and out != "-"]
    # a symlinked output is written beside the file it names (write_atomic)
    folders = {str(Path(out).parent) for out in named}
    folders |= {os.path.dirname(os.path.realpath(out)) for out in named}
    for folder in folders:
        for tmp in _temporaries(folder, f".tmp-{tag}-"):
            try:
                os.unlink(tmp)
            except OSError:
                pass


def _temporaries(folder: str, marker: str) -> Iterator[str]:
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith(".") and marker in entry.name:
            yield entry.path


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
