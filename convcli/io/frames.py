"""Every frame of an animation (GIF, APNG, WebP) or every page of a TIFF, one at a time.

Reading: :func:`open_frames` gives a :class:`FrameSource` whose :meth:`FrameSource.frames`
yields ``(index, color, alpha, FrameInfo)`` one frame at a time. Pillow's seek composes
GIF and APNG partial frames onto the canvas (disposal and blending applied), so every
frame is the whole picture as a viewer shows it; only the current frame is held.

Writing: :func:`frame_chunks` turns an iterator of frames (8/16-bit pixels) into the
bytes of one multi-frame file, as an iterator of chunks, consuming one frame at a time.
Pillow's own ``save_all`` collects every GIF and APNG frame before writing, so GIF
(a palette per frame, quantised by :func:`convcli.io.encode.gif_frame`) and APNG are
written here; WebP and multi-page TIFF go through Pillow with a frame sequence that
makes each frame only when Pillow asks for it (:class:`_StreamedFrames`).
"""

from __future__ import annotations

import dataclasses
import io
import struct
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import numpy as np
from PIL import Image

from convcli.core.color import luminance, premultiply
from convcli.core.records import record
from convcli.errors import InputError, OutputError
from convcli.io.decode import (
    _FRAME_KINDS,
    DEFAULT_MAX_PIXELS,
    ImageHeader,
    Source,
    check_palette,
    mode_layout,
    open_planned,
    open_source,
    orient,
    seek_frame,
    stored_bits,
    unlike_first,
)
from convcli.io.encode import fit_icc, gif_frame, pillow_params, prepare_pixels
from convcli.io.files import one_line
from convcli.io.metadata import Metadata, metadata_notes, png_chunks, read_metadata
from convcli.io.png import PNG_SIGNATURE, _png_chunk, _png_samples, apng_short_frames, png_zlib_stream
from convcli.io.pngrows import SHORT_DATA

#: Disposal as GIF numbers it (0 unspecified, 1 keep, 2 restore background, 3 restore previous).
DISPOSALS: tuple[str, ...] = ("unspecified", "none", "background", "previous")
_APNG_DISPOSAL = {"unspecified": 0, "none": 0, "background": 1, "previous": 2}  # APNG dispose_op


@record(frozen=True)
class FrameInfo:
    """How one frame is shown: milliseconds, what happens to it after, how it was drawn."""

    duration: int = 0  # ms
    disposal: str = "unspecified"  # one of DISPOSALS
    blend: str = "source"  # "source" or "over" (APNG); frames come out composed either way
    offset: tuple[int, int] = (0, 0)  # top-left of the rectangle the file stored for it
    #: the frame had transparent pixels the first frame's mode has no place for: composited onto black
    alpha_dropped: bool = False


Frame = tuple[np.ndarray, np.ndarray | None, FrameInfo]  # 8/16-bit colour, alpha, how it is shown


# --------------------------------------------------------------------------- reading

#: Pillow modes that carry alpha (a palette's transparency is in ``info``)
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})


@record
class FrameSource:
    """An opened multi-frame image: what holds for every frame, and the frames one by one."""

    im: Image.Image
    header: ImageHeader
    turn: int  # the EXIF orientation convcli applies to each frame (1 where Pillow turns it itself)
    icc_profile: bytes | None
    metadata: Metadata
    plays: int  # how many times the animation plays in all; 0: for ever (see :func:`plays_of`)
    short: frozenset[int] = frozenset()  # APNG frames whose data ends before their last row
    first_bits: int = 8  # bits per sample the first frame stores (16-bit RGB TIFF: read as 8, noted)

    def frames(self, indices: Iterable[int]) -> Iterator[tuple[int, np.ndarray, np.ndarray | None,
                                                                FrameInfo]]:
        """(index, colour float32 (H, W, C), alpha float32 (H, W) or None, FrameInfo), one at a time."""
        h = self.header
        stored = (h.width, h.height) if self.turn < 5 else (h.height, h.width)
        for index in indices:
            if index in self.short:
                raise InputError(f"truncated or corrupt PNG frame {index} ({SHORT_DATA})")
            seek_frame(self.im, index, stored)
            info = _frame_info(self.im)
            arr, dropped = self._array(index)
            arr = orient(arr, self.turn)
            if dropped:
                info = dataclasses.replace(info, alpha_dropped=True)
            if arr.shape[:2] != (h.height, h.width):
                msg = unlike_first(index, f"{arr.shape[1]}x{arr.shape[0]}", f"{h.width}x{h.height}")
                raise InputError(msg)
            n_colour = arr.shape[2] - (1 if h.has_alpha else 0)
            color = arr[..., :n_colour].astype(np.float32)
            alpha = arr[..., n_colour].astype(np.float32) if h.has_alpha else None
            del arr
            if h.channels == 1 and color.shape[2] == 3:
                color = luminance(color)
            yield index, np.ascontiguousarray(color), alpha, info

    def _array(self, index: int) -> tuple[np.ndarray, bool]:
        """The current frame as (H, W, C[+alpha]) on the header's scale, and whether transparent
        pixels were composited onto black: a later page with alpha where the first has none (converted
        to the first's mode, the colour hidden under them came out)."""
        im, h = self.im, self.header
        if h.bit_depth == 16:
            if im.mode != h.mode:
                raise InputError(unlike_first(index, f"mode {im.mode}", h.mode))
            arr = np.asarray(im)
            if arr.dtype != np.uint16:
                if arr.size and (arr.min() < 0 or arr.max() > 65535):
                    msg = "32-bit integer image with values outside 0..65535 is not supported"
                    raise InputError(msg)
                arr = arr.astype(np.uint16)
        else:
            layout = mode_layout(im.mode)
            if layout is None or layout[1] != 8:  # a 16-bit page after an 8-bit one: converting clips it
                raise InputError(unlike_first(index, f"mode {im.mode}", h.mode))
            bits = stored_bits(im, im.format or "")
            if bits > 8 >= self.first_bits:  # 16-bit RGB, which Pillow reads as 8-bit: the first page's note
                raise InputError(unlike_first(index, f"{bits}-bit", f"{self.first_bits}-bit"))
            if im.mode == "P" and im.format == "PNG":  # an APNG frame: as the first frame is checked
                check_palette(im)
            grey = mode_layout(h.mode) == (1, 8)
            target = ("LA" if grey else "RGBA") if h.has_alpha else ("L" if grey else "RGB")
            if not h.has_alpha and (im.mode in _ALPHA_MODES or "transparency" in im.info):
                arr = np.asarray(im.convert("LA" if grey else "RGBA"))
                a = arr[..., -1]
                if a.min() < 255:  # premultiplied: what a stage dropping alpha sees (README, Alpha)
                    return premultiply(arr[..., :-1].astype(np.float32), a.astype(np.float32), 255.0), True
                arr = arr[..., :-1]
            else:
                arr = np.asarray(im.convert(target) if im.mode != target else im)
        return (arr[..., None] if arr.ndim == 2 else arr), False


def _whole(value: object, default: int = 0) -> int:
    """A frame field Pillow read as a number; ``default`` for anything else (a late tEXt chunk named
    "disposal", which Pillow puts in the same ``info``, ended in an internal error)."""
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) and value == value \
        and abs(value) < 1 << 31 else default


def _frame_info(im: Image.Image) -> FrameInfo:
    info = im.info
    duration = _whole(info.get("duration", 0))
    offset = (0, 0)
    if im.format == "GIF":
        disposal = DISPOSALS[min(3, max(0, int(getattr(im, "disposal_method", 0))))]
        extent = getattr(im, "dispose_extent", None)
        if extent:
            offset = (int(extent[0]), int(extent[1]))
        blend = "over"
    elif im.format == "PNG":
        disposal = ("none", "background", "previous")[min(2, max(0, _whole(info.get("disposal", 0))))]
        blend = "over" if info.get("blend", 0) == 1 else "source"
        bbox = info.get("bbox")
        if bbox:
            offset = (int(bbox[0]), int(bbox[1]))
    else:
        disposal, blend = "unspecified", "source"
    return FrameInfo(duration, disposal, blend, offset)


@contextmanager
def open_frames(source: Source, *, gray: bool = False,
                max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Iterator[FrameSource]:
    """Open an image for reading frame by frame; InputError as :func:`convcli.io.decode.read_image`."""
    with open_planned(source, gray=gray, max_pixels=max_pixels) as (im, header, turn, orientation):
        icc = im.info.get("icc_profile") or None
        yield FrameSource(im, header, turn, icc if isinstance(icc, bytes) else None,
                          read_metadata(im, orientation), plays_of(im.format, im.info.get("loop")),
                          _short_frames(source, im), stored_bits(im, im.format or ""))


def _short_frames(source: Source, im: Image.Image) -> frozenset[int]:
    """:func:`convcli.io.png.apng_short_frames` of an animated PNG, read on a file of its own."""
    if im.format != "PNG" or getattr(im, "n_frames", 1) < 2:
        return frozenset()
    with open_source(source) as fp:
        return apng_short_frames(fp)


def plays_of(fmt: str | None, loop: object) -> int:
    """How many times an animation plays in all (0: for ever), from Pillow's ``info["loop"]``.

    The formats count differently: APNG's ``num_plays`` and WebP's loop count are the plays in all,
    a GIF's NETSCAPE count is the repeats after the first play, and a GIF without one plays once.
    So a GIF's 1 is two plays, and an APNG's 1 is a GIF with no loop block (0.3 copied the numbers
    across: a play-once APNG became a GIF that played twice).
    """
    if not isinstance(loop, int) or loop < 0:
        return 1
    if loop == 0:
        return 0
    return loop + 1 if fmt == "GIF" else loop


def frames_note(header: ImageHeader, count: int) -> str:
    """The report's note on the frames filtered, e.g. "3 of 3 frames (animated GIF)"."""
    return f"{count} of {header.n_frames} frames ({_FRAME_KINDS.get(header.format, header.format)})"


# --------------------------------------------------------------------------- writing


@record(frozen=True, kw_only=True)
class FrameWriter:
    """How a multi-frame file is written."""

    fmt: str  # gif, png (APNG), webp, tiff
    count: int  # frames that will come (APNG says it up front)
    plays: int = 1  # in all; 0: for ever (:func:`plays_of`)
    icc_profile: bytes | None = None
    metadata: Metadata | None = None
    quality: int | None = None
    compress_level: int | None = None
    dither: bool = True
    threads: int = 1


def frame_chunks(frames: Iterable[Frame], w: FrameWriter, notes: list[str]) -> Iterator[bytes]:
    """The bytes of one multi-frame file, chunk by chunk, taking one frame at a time.

    ``notes`` receives what had to give (alpha flattened, 16 bits reduced, metadata dropped), once.
    """
    held: list[str] = []

    def prepared() -> Iterator[Frame]:
        for color, alpha, info in frames:
            c, a, why = prepare_pixels(color, alpha, w.fmt)
            held.extend(n for n in why if n not in held)
            yield c, a, info

    it = prepared()
    first = next(it, None)
    if first is None:
        return
    channels = 1 if first[0].ndim == 2 else 3
    icc, icc_notes = fit_icc(w.icc_profile, channels, w.fmt)
    meta = w.metadata or Metadata()
    if w.metadata is not None:
        icc_notes += metadata_notes(w.metadata, w.fmt, "kept" if icc is not None else None)
    rest = _chain(first, it)
    if w.fmt == "gif":
        yield from _gif_chunks(rest, first[0].shape[1], first[0].shape[0], w.plays, meta.comment, w.dither)
    elif w.fmt == "png":
        yield from _apng_chunks(rest, w, icc, meta)
    else:
        yield _pillow_animation(rest, w, icc, meta)
    notes.extend(held + icc_notes)


def _chain(first: Frame, rest: Iterator[Frame]) -> Iterator[Frame]:
    yield first
    yield from rest


def _sub_blocks(data: bytes) -> bytes:
    """GIF data sub-blocks (up to 255 bytes each) and the terminator."""
    return b"".join(bytes([len(data[i:i + 255])]) + data[i:i + 255] for i in range(0, len(data), 255)) + b"\0"


def _gif_image(im: Image.Image) -> tuple[bytes, int, bytes]:
    """(colour table, its size bits, LZW data) of a palette image, encoded by Pillow as one GIF."""
    buf = io.BytesIO()
    im.save(buf, format="GIF", optimize=False, interlace=False)
    data = buf.getvalue()
    packed, pos = data[10], 13
    table, bits = b"", 0
    if packed & 0x80:
        bits = packed & 7
        table = data[pos : pos + (3 << (bits + 1))]
        pos += len(table)
    while pos < len(data) and data[pos] == 0x21:  # extensions: skip their sub-blocks
        pos += 2
        while data[pos]:
            pos += data[pos] + 1
        pos += 1
    if pos >= len(data) or data[pos] != 0x2C:  # pragma: no cover - Pillow always writes an image
        msg = "cannot encode a GIF frame (no image in Pillow's output)"
        raise OutputError(msg)
    local = data[pos + 9]
    pos += 10
    if local & 0x80:
        bits = local & 7
        table = data[pos : pos + (3 << (bits + 1))]
        pos += len(table)
    start = pos
    pos += 1  # LZW minimum code size
    while data[pos]:
        pos += data[pos] + 1
    return table, bits, data[start : pos + 1]


def _gif_chunks(frames: Iterable[Frame], width: int, height: int, plays: int,
                comment: bytes | None, dither: bool) -> Iterator[bytes]:
    """GIF89a: no global palette, a local palette per frame, each frame whole (offset 0, 0).

    Disposal is kept as the input said, except with transparency (see below).
    """
    yield b"GIF89a" + struct.pack("<HHBBB", width, height, 0, 0, 0)
    if plays != 1:  # the NETSCAPE block counts the repeats after the first play (0: for ever)
        yield b"!\xff\x0bNETSCAPE2.0\x03\x01" + struct.pack("<H", min(max(plays - 1, 0), 65535)) + b"\0"
    if comment:
        yield b"!\xfe" + _sub_blocks(comment)
    for color, alpha, info in frames:
        im, transparent = gif_frame(color, alpha, dither)
        table, bits, lzw = _gif_image(im)
        # Frames are written whole and composed: where one is transparent, what lay under it in the
        # input is already in it, so a transparent animation restores the background after each frame.
        disposal = 2 if alpha is not None else DISPOSALS.index(info.disposal)
        packed = (disposal << 2) | (1 if transparent is not None else 0)
        delay = min(65535, round(info.duration / 10))
        yield b"!\xf9\x04" + struct.pack("<BHB", packed, delay, transparent or 0) + b"\0"
        yield b"," + struct.pack("<HHHHB", 0, 0, width, height, 0x80 | bits) + table + lzw
    yield b";"


def _apng_chunks(frames: Iterable[Frame], w: FrameWriter, icc: bytes | None,
                 meta: Metadata) -> Iterator[bytes]:
    """APNG with convcli's PNG compressor: each frame whole, drawn with blend SOURCE.

    Frames are already composed, so blending them OVER the previous one would show through
    where they are transparent; disposal is kept as the input said.
    """
    from convcli.io.png import DEFAULT_PNG_COMPRESS_LEVEL

    level = DEFAULT_PNG_COMPRESS_LEVEL if w.compress_level is None else w.compress_level
    seq = 0
    for i, (color, alpha, info) in enumerate(frames):
        rows, depth, colour_type = _png_samples(color, alpha)
        height, width = color.shape[:2]
        if i == 0:
            head = [PNG_SIGNATURE,
                    _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0)),
                    _png_chunk(b"acTL", struct.pack(">II", w.count, w.plays))]
            if icc:
                head.append(_png_chunk(b"iCCP", b"ICC Profile\0\0" + zlib.compress(icc)))
            head.extend(_png_chunk(kind, body) for kind, body in png_chunks(meta))
            yield b"".join(head)
        num, den = (info.duration, 1000)
        if num > 65535:
            num, den = min(65535, round(info.duration / 10)), 100
        yield _png_chunk(b"fcTL", struct.pack(">IIIIIHHBB", seq, width, height, 0, 0, num, den,
                                              _APNG_DISPOSAL[info.disposal], 0))
        seq += 1
        data = png_zlib_stream(rows, level, w.threads)
        del rows
        step = 1 << 20
        for k in range(0, max(len(data), 1), step):
            if i == 0:
                yield _png_chunk(b"IDAT", data[k : k + step])
            else:
                yield _png_chunk(b"fdAT", struct.pack(">I", seq) + data[k : k + step])
                seq += 1
    yield _png_chunk(b"IEND", b"")


class _StreamedFrames(Image.Image):
    """A multi-frame Pillow image whose frames are made one at a time, when Pillow seeks to them.

    Pillow's WebP and TIFF writers walk a sequence with ``seek(0), seek(1)...`` and encode each
    frame before the next seek, so only one frame is held. Seeking back (which they do once,
    at the end, to restore the position) keeps the current pixels.
    """

    def __init__(self, frames: Iterator[Frame], count: int) -> None:
        super().__init__()
        self._frames = frames
        self.n_frames = count
        self.is_animated = count > 1
        self._index = -1
        self.durations: list[int] = []
        self.seek(0)

    def seek(self, frame: int) -> None:
        if frame <= self._index:
            return
        if frame != self._index + 1:
            msg = "streamed frames are read in order"
            raise EOFError(msg)
        try:
            color, alpha, info = next(self._frames)
        except StopIteration:
            msg = f"no frame {frame}"
            raise EOFError(msg) from None
        stacked = color if alpha is None else np.dstack([color.reshape(*color.shape[:2], -1), alpha])
        im = Image.fromarray(np.ascontiguousarray(stacked))
        self.im = im.im
        self._mode, self._size = im.mode, im.size  # where Pillow (>= 10.1) keeps mode and size
        self.durations.append(info.duration)
        self._index = frame

    def tell(self) -> int:
        return max(0, self._index)


def _pillow_animation(frames: Iterator[Frame], w: FrameWriter, icc: bytes | None, meta: Metadata) -> bytes:
    """WebP or multi-page TIFF through Pillow's ``save_all``, one frame made at a time."""
    durations: list[int] = []

    def timed() -> Iterator[Frame]:
        for f in frames:
            durations.append(f[2].duration)
            yield f

    seq = _StreamedFrames(timed(), w.count)
    params = pillow_params(w.fmt, meta, icc, w.quality, w.compress_level)
    if w.fmt == "webp":
        params["loop"] = min(w.plays, 65535)  # WebP's 0 is "for ever"; its count is 16 bits
        params["duration"] = _LazyDurations(durations)
    buf = io.BytesIO()
    try:
        seq.save(buf, format="WEBP" if w.fmt == "webp" else "TIFF", save_all=True, **params)
    except (OSError, ValueError, RuntimeError) as exc:  # WebP: "ERROR adding frame. WebPEncodingError: 6."
        msg = f"cannot encode the frames as {w.fmt.upper()}: {one_line(exc)}"
        raise OutputError(msg) from None
    return buf.getvalue()


class _LazyDurations(list):  # type: ignore[type-arg]
    """The per-frame durations, filled as frames are made (Pillow reads entry i after making frame i)."""

    def __init__(self, made: list[int]) -> None:
        super().__init__()
        self._made = made

    def __getitem__(self, i: int) -> int:  # type: ignore[override]
        return self._made[i]
