"""The inputs of a batch: files as given, directories expanded, ``-`` for stdin.

Directories are expanded to the images in them (recognised by content, hidden
files skipped, ``recursive`` to descend). An entry that cannot be read (a looping
symlink, a FIFO, a device), a file named like an image that cannot be opened, and a
folder that cannot be listed are each one failed input; the rest of the batch runs.
"""

from __future__ import annotations

import io
import os
import re
import stat
import sys
from pathlib import Path

from convcli.core.records import record
from convcli.errors import InputError, UsageError
from convcli.io.files import file_kind, os_reason
from convcli.io.formats import IMAGE_EXTENSIONS, WRITABLE_EXTENSIONS
from convcli.io.npy import NPY_MAGIC
from convcli.io.png import PNG_SIGNATURE, png_ihdr
from convcli.io.structure import MAX_JUNK, check_structure

#: Magic numbers of the formats Pillow reads that convcli accepts from directories: PNG, JPEG, GIF,
#: TIFF (little/big-endian, BigTIFF), JPEG 2000, ICO, QOI, DDS (its 124-byte header size after the
#: magic), MSP, BLP. WebP (RIFF....WEBP), ICNS, BMP ("BM", then a header size Pillow reads), PNM
#: (P1..P6, whitespace, then the width's digits), SGI and PCX (a magic byte or two, and header
#: fields of known values) are checked in looks_like_bytes.
#: TGA and XBM have no signature: name them on the command line.
_MAGIC: tuple[bytes, ...] = (
    b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"II*\x00", b"MM\x00*",
    b"II+\x00", b"MM\x00+", b"\x00\x00\x00\x0cjP  \r\n\x87\n", b"\xffO\xffQ", b"\x00\x00\x01\x00", b"qoif",
    b"DDS |\x00\x00\x00", b"DanM", b"LinS", b"BLP1", b"BLP2",
    NPY_MAGIC,  # .npy arrays (H, W) or (H, W, C), as convcli writes them
)

#: Bytes looked at to tell an image by its content: signatures need 64; a PNM's comments before its
#: width need more (one of 70 characters was skipped in folders).
SNIFF_BYTES = 4096

@record(frozen=True)
class InputItem:
    """One input: ``name`` as the user wrote it (or as found in a directory), ``path`` None for stdin."""

    name: str
    path: Path | None
    error: str | None = None  # refused before any work (a directory with no images in it)
    found: bool = False  # found in a folder, not named on the command line

    @property
    def is_stdin(self) -> bool:
        return self.path is None


def looks_like_image(path: Path) -> bool:
    """True if the file starts with the magic number of a supported format (RIFF....WEBP included)."""
    try:
        with open(path, "rb") as f:
            head = f.read(SNIFF_BYTES)
    except OSError:
        return False
    return looks_like_bytes(head)


def _unreadable_image(path: Path) -> str | None:
    """Why a file named like an image cannot be opened (permission denied...), or None."""
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        return None
    try:
        with open(path, "rb"):
            return None
    except FileNotFoundError:
        return None  # vanished while listed: not part of the batch
    except OSError as e:
        return os_reason(e)


def dash_safe(path: str | Path) -> str:
    """A path as convcli reports it: ``./-`` and ``./--x.png`` for names found in ``.`` and outputs
    written beside them, as ``find .`` prints them; bare, ``-`` read as stdin and ``--x.png`` as an
    option when a record's path was handed to a command again."""
    text = str(path)
    return os.path.join(".", text) if text.startswith("-") else text


def _walk(folder: Path, recursive: bool, skip: str | None) -> list[InputItem]:
    """The images under ``folder``; an unlistable folder or unreadable image file is a failed item.

    ``skip``: the resolved path of a folder not descended into (--out-dir: what it holds is output).
    """
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as e:
        return [InputItem(str(folder), folder, f"cannot list directory: {os_reason(e)}")]
    found: list[InputItem] = []
    for entry in entries:
        if entry.name.startswith("."):
            continue
        p = Path(entry.path)
        name = dash_safe(p)
        named = p.suffix.lower() in IMAGE_EXTENSIONS
        try:
            broken = _broken_link_reason(p) if named and entry.is_symlink() else None
            if broken is not None:
                # named like an image, pointing nowhere (or in a loop): a failed input, not a silent skip
                found.append(InputItem(name, p, broken, found=True))
            elif entry.is_dir(follow_symlinks=False):
                if recursive and os.path.realpath(p) != skip:
                    found.extend(_walk(p, recursive, skip))
            elif entry.is_file():
                if looks_like_image(p):
                    found.append(InputItem(name, p, found=True))
                else:
                    reason = _unreadable_image(p)
                    if reason:
                        found.append(InputItem(name, p, reason, found=True))
            elif named:
                # a FIFO, socket or device named like an image: reading it could block, so it fails
                found.append(InputItem(name, p, _not_regular_reason(p), found=True))
        except OSError:  # a vanished entry: not an image of this folder
            continue
    return found


def expand_inputs(items: list[str] | tuple[str, ...], recursive: bool = False,
                  out_dir: str | None = None) -> list[InputItem]:
    """Files as given (missing ones too: they fail later, one by one), directories expanded, ``-`` once.

    A recursive walk does not descend into ``out_dir`` (``convcli blur in/ --recursive --out-dir
    in/out``): the outputs of an earlier run are not inputs of the next.
    """
    skip = os.path.realpath(out_dir) if out_dir is not None else None
    out: list[InputItem] = []
    stdin_seen = False
    for raw in items:
        if raw == "-":
            if stdin_seen:
                msg = "'-' (stdin) can be given only once"
                raise UsageError(msg)
            stdin_seen = True
            out.append(InputItem("-", None))
            continue
        p = Path(raw)
        try:
            is_dir = p.is_dir()
        except OSError:
            is_dir = False
        if is_dir:
            found = _walk(p, recursive, skip)
            out.extend(found or [InputItem(raw, p, _empty_dir_reason(p, recursive))])
        else:
            out.append(InputItem(raw, p, _not_regular_reason(p)))
    return out


def _not_regular_reason(path: Path) -> str | None:
    """Why a path given as an input cannot be read as an image file without blocking, or None."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None  # missing or unreadable: the decoder says why, for this input alone
    if stat.S_ISREG(mode):
        return None
    kind = "a folder (through a symbolic link)" if stat.S_ISDIR(mode) else file_kind(mode)
    return f"is {kind}, not an image file"


def _broken_link_reason(path: Path) -> str | None:
    """Why a symlink whose target cannot be reached (gone, or a loop) is not read; None if it can be."""
    try:
        os.stat(path)
    except OSError as e:
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        return f"is a symbolic link to {target}, which cannot be opened: {os_reason(e)}"
    return None


def _empty_dir_reason(folder: Path, recursive: bool) -> str:
    try:
        has_subdirs = any(e.is_dir() and not e.name.startswith(".") for e in os.scandir(folder))
    except OSError:
        has_subdirs = False
    hint = " (it has subfolders: --recursive descends into them)" if has_subdirs and not recursive else ""
    return f"is a directory with no images in it{hint}"


def output_extension(item: InputItem) -> str:
    """The input's extension when convcli can write that format (lower-cased), else ``.png`` (GIF, ICO...)."""
    suffix = item.path.suffix.lower() if item.path is not None else ""
    return suffix if suffix in WRITABLE_EXTENSIONS else ".png"


#: Bytes read from stdin before its first bytes must look like an image.
_STDIN_PROBE = 1 << 16


def stdin_limit(max_pixels: int) -> int:
    """The most bytes an image of ``max_pixels`` can take in any format convcli reads: 16-bit RGBA
    stored raw (8 bytes a pixel), plus room for metadata."""
    return max_pixels * 8 + (16 << 20)


def read_stdin(max_pixels: int) -> tuple[bytes | None, str | None]:
    """The image bytes on stdin, read with a bound; (data, None) or (None, the reason it is refused)."""
    if sys.stdin is None:  # started with stdin closed (``<&-``): Python made it None
        return None, "standard input is closed"
    stream = sys.stdin.buffer
    limit = stdin_limit(max_pixels)
    chunks: list[bytes] = []
    size = 0
    checked = False
    while True:
        try:
            chunk = stream.read(min(1 << 20, limit + 1 - size))
        except OSError as e:  # stdin is a folder (``< dir``), or the device failed
            return None, f"cannot read standard input: {os_reason(e)}"
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if size >= _STDIN_PROBE and len(chunks) == 1 or size > limit:
            head = b"".join(chunks)[:SNIFF_BYTES]
            if not looks_like_bytes(head):
                return None, "not an image file (stdin does not start with a known image signature)"
            if head.startswith(PNG_SIGNATURE) and png_ihdr(head) is None:
                return None, "not a PNG image (stdin has the signature but no valid IHDR after it)"
        if size >= 2 * MAX_JUNK and not checked:  # junk where markers belong: refused now, not at the limit
            checked = True
            try:
                check_structure(io.BytesIO(b"".join(chunks)), chunks[0][:64])
            except InputError as e:
                return None, str(e)
        if size > limit:
            return None, (f"more than {limit} bytes on stdin, more than any image within --max-pixels "
                          f"{max_pixels} can take")
    data = b"".join(chunks)
    if not data:
        return None, "empty input on stdin"
    return data, None


#: The sizes of the BMP info headers Pillow reads (OS/2 1.x and 2.x, Windows 3 to 5: its _accept).
_BMP_HEADERS: frozenset[int] = frozenset({12, 40, 52, 56, 64, 108, 124})

_PNM_WIDTH = re.compile(rb"\s+(#[^\n]*\n\s*)*\d")


def looks_like_bytes(head: bytes) -> bool:
    """True if ``head`` starts with the signature of a format convcli reads."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return True
    if head[:2] in (b"P1", b"P2", b"P3", b"P4", b"P5", b"P6") and _PNM_WIDTH.match(head, 2):
        return True  # PNM: the magic, then (past any comment) the width's digits, not a note's words
    if head[:2] == b"BM" and len(head) >= 18 and int.from_bytes(head[14:18], "little") in _BMP_HEADERS:
        return True  # BMP: its info header's size at 14 (a note starting "BMI,weight" is not one)
    if head[:4] == b"icns" and len(head) >= 8 and int.from_bytes(head[4:8], "big") >= 8:
        return True  # ICNS: its whole length after the magic
    if len(head) >= 4 and head[:2] == b"\x01\xda" and head[2] in (0, 1) and head[3] in (1, 2):
        return True  # SGI: magic 474, then storage (verbatim, RLE) and bytes per channel
    if len(head) >= 4 and head[0] == 10 and head[1] in (0, 2, 3, 4, 5) and head[2] == 1 \
            and head[3] in (1, 2, 4, 8):
        return True  # PCX: manufacturer 10, version, RLE encoding, bits per pixel
    return any(head.startswith(m) for m in _MAGIC)
