"""An 8-bit RGB PNG decoded on a worker thread, its rows usable as soon as they are inflated.

Pillow decodes a whole image before handing any of it over, on one thread: at 4096x4096 that
is about 0.4 s during which nothing else can start. Its PNG decoder is a C loop that releases
the GIL while it inflates and unfilters a block of data, and it writes each row into image
memory as soon as the row is complete. :class:`PngRows` drives that decoder itself: it feeds
the IDAT data block by block on a worker thread, into an RGBX image whose memory is a NumPy
array, so the rows are there to be filtered while the rest of the file is still inflating
(``wait(n)`` blocks until rows ``0..n-1`` are in).

How a finished row is told from one not yet written: the buffer starts zeroed and Pillow's
RGB -> RGBX unpacker writes 255 into every pixel's fourth byte, so a row whose last pixel has
that byte set is complete (rows are written top to bottom, each left to right). The worker
thread checks this after each call into the decoder has returned, then publishes the count
under a lock, so the reader never depends on the order in which another core sees the stores.

It uses Pillow's decoder protocol (``Image._getdecoder``, ``setimage``, ``decode``) and the
PNG plugin's ``load_prepare``/``load_read``, the calls ``ImageFile.load`` makes itself.
:func:`can_read_rows` says whether an opened image is a case it handles (a plain 8-bit RGB
PNG, not interlaced, not animated, no transparency key); the caller decodes anything else
the usual way.
"""

from __future__ import annotations

import struct
import threading
from typing import Final

import numpy as np
from PIL import Image, ImageFile

#: Compressed bytes handed to the decoder per call: rows become visible at this granularity
#: (256 KiB of a photo's PNG is ~60 rows of 4096 RGB pixels); a smaller block costs more
#: lock round trips for no earlier start.
BLOCK_BYTES: Final[int] = 256 << 10

#: Why a PNG whose compressed stream ends before its last row is refused (Pillow's decoder stops
#: there without an error and leaves the rest black).
SHORT_DATA: Final[str] = "the compressed pixels end before the last row"


def can_read_rows(im: Image.Image) -> bool:
    """Whether :class:`PngRows` can decode this opened (not yet loaded) image."""
    tile = getattr(im, "tile", None)
    if im.format != "PNG" or im.mode != "RGB" or not tile or len(tile) != 1:
        return False
    codec, extents, _, args = tile[0]
    return (codec == "zip" and args == "RGB" and tuple(extents) == (0, 0, *im.size)
            and not im.info.get("interlace") and "transparency" not in im.info
            and getattr(im, "n_frames", 1) == 1
            and all(hasattr(im, a) for a in ("load_prepare", "load_read", "fp"))
            and hasattr(Image, "_getdecoder"))


def _decoder_error(code: int) -> str:
    """The text ``ImageFile.load`` raises for a decoder's error code (so both read paths say the same)."""
    get = getattr(ImageFile, "_get_oserror", None)
    if get is not None:
        return str(get(code, encoder=False))
    return f"{ImageFile.ERRORS.get(code) or f'decoder error {code}'} when reading image file"


class PngRows:
    """Decode ``im`` (see :func:`can_read_rows`) on a worker thread; ``color`` fills top to bottom.

    ``color`` is an (H, W, 3) uint8 view of the RGBX buffer. Call :meth:`wait` before reading
    rows, :meth:`finish` after the last one (it raises the decoder's error, if any), and
    :meth:`close` always (it stops the worker and waits for it; the file stays the caller's).
    """

    def __init__(self, im: Image.Image) -> None:
        width, height = im.size
        self._im = im
        self._height = height
        self._buffer = np.zeros((height, width, 4), dtype=np.uint8)
        self.color = self._buffer[:, :, :3]
        self._ready = 0
        self._error: str | None = None
        self._done = False
        self._stop = False
        self._lock = threading.Condition()
        target = Image.frombuffer("RGBX", (width, height), self._buffer, "raw", "RGBX", 0, 1)
        im.load_prepare()  # type: ignore[attr-defined]  # the PNG plugin's own set-up for load_read
        tile = im.tile[0]
        assert im.fp is not None
        im.fp.seek(tile[2])
        self._decoder = Image._getdecoder("RGBX", "zip", tile[3], getattr(im, "decoderconfig", ()))
        self._decoder.setimage(target.im, tile[1])
        self._thread = threading.Thread(target=self._work, name="convcli-png-rows", daemon=True)
        self._thread.start()

    def _rows_done(self, start: int) -> int:
        """Rows ``0..n-1`` complete, ``n >= start``: the decoder writes rows in order, so the set fourth
        bytes are a prefix, found by bisection (a scan of every row left after each block was quadratic
        for a tall image: 4.5 s of a 1x8,000,000 PNG's 5.3)."""
        last = self._buffer[:, -1, 3]
        lo, hi = start, self._height
        while lo < hi:
            mid = (lo + hi) // 2
            if last[mid] == 255:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def _publish(self, rows: int, error: str | None = None, done: bool = False) -> None:
        with self._lock:
            self._ready = rows
            self._error = error
            self._done = done
            self._lock.notify_all()

    def _work(self) -> None:
        pending = b""
        rows = 0
        error: str | None = None
        try:
            while not self._stop:
                try:
                    block = self._im.load_read(BLOCK_BYTES)  # type: ignore[attr-defined]
                except (IndexError, struct.error):  # a chunk header cut short: as ImageFile.load says it
                    error = "image file is truncated"
                    break
                if not block:
                    error = f"image file is truncated ({len(pending)} bytes not processed)"
                    break
                pending = pending + block if pending else block
                used, code = self._decoder.decode(pending)
                rows = self._rows_done(rows)
                if used < 0:  # the decoder has every row, or failed
                    if code < 0:
                        # As ImageFile.load: the chunks after the data are read before the decoder's
                        # error is raised, and an error there (a chunk's CRC) is the one reported.
                        error = _decoder_error(code)
                        self._im.load_end()  # type: ignore[attr-defined]
                        break
                    if rows < self._height:
                        error = SHORT_DATA
                        self._im.load_end()  # type: ignore[attr-defined]
                        break
                    self._publish(rows)
                    # The chunks after the image data, read (and checked) as ImageFile.load reads them.
                    self._im.load_end()  # type: ignore[attr-defined]
                    break
                pending = pending[used:]
                self._publish(rows)
        except Exception as exc:  # noqa: BLE001 - any failure of the decoder is handed to the reader
            error = " ".join(str(exc).split()) or type(exc).__name__
        finally:
            self._decoder.cleanup()
        self._publish(rows, error, done=True)

    def wait(self, rows: int) -> None:
        """Block until rows ``0..rows-1`` are decoded; raise ``OSError`` if decoding failed first."""
        need = min(rows, self._height)
        with self._lock:
            while self._ready < need and not self._done:
                self._lock.wait()
            if self._ready < need:
                raise OSError(self._error or "image data ended early")

    def finish(self) -> None:
        """Wait for the whole file (the image and the chunks after it); raise ``OSError`` with the
        decoder's reason if it failed, even after every row arrived."""
        self.wait(self._height)
        self._thread.join()
        if self._error is not None:
            raise OSError(self._error)

    def close(self) -> None:
        """Stop the worker (after its current block) and wait for it."""
        self._stop = True
        self._thread.join()
