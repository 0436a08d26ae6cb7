"""Metadata carried from input to output: EXIF, DPI, XMP, PNG text chunks, the JPEG/GIF comment.

:func:`read_metadata` takes them from an opened Pillow image (EXIF with its orientation reset
to 1, since the pixels are turned upright on reading); :func:`save_params` says how a
format writes them through Pillow and which it cannot hold; :func:`png_chunks` builds the
PNG chunks for convcli's own PNG writer (and for Pillow's, through ``PngInfo``), so both
write the same bytes. The ICC profile travels beside this record (``icc_profile``), as
before. The table of what each output format keeps is in the README ("Animations, pages
and metadata").
"""

from __future__ import annotations

import numbers
import re
import struct
from typing import Any

from PIL import Image

from convcli.core.records import record

#: Pillow writes XMP into JPEG from version 11 on (``xmp=``); before, it is dropped with a note.
PILLOW_JPEG_XMP = int(Image.__version__.split(".")[0]) >= 11
_EXIF_PREFIX = b"Exif\x00\x00"
_XMP_KEY = "XML:com.adobe.xmp"
#: TIFF's XResolution and YResolution tags
_RESOLUTION_TAGS = frozenset({282, 283})
#: PNG ``info`` keys Pillow fills from chunks that are not text, some read to decode (``interlace``): a
#: text keyword of one of these names is no text chunk to carry (Pillow took a tEXt "interlace" for
#: the Adam7 flag and could not decode the file).
PNG_INFO_KEYS = frozenset({"interlace", "dpi", "icc_profile", "exif", "xmp", "gamma", "transparency",
                           "aspect", "srgb", "chromaticity", "duration", "loop", "disposal", "blend",
                           "default_image", "background", "bbox"})
_NOT_TEXT = PNG_INFO_KEYS | {"comment", _XMP_KEY}


@record(frozen=True)
class Metadata:
    """What an image file says besides its pixels (ICC apart)."""

    exif: bytes | None = None  # a TIFF-structured EXIF block, without the "Exif\0\0" prefix
    dpi: tuple[float, float] | None = None
    xmp: bytes | None = None
    text: tuple[tuple[str, str], ...] = ()  # PNG tEXt/zTXt/iTXt chunks, key and value
    comment: bytes | None = None  # JPEG COM / GIF comment extension
    gamma: float | None = None  # a PNG's gAMA: the exponent viewers decode its samples with
    unreadable: tuple[str, ...] = ()  # kinds the file holds that could not be read (not carried)

    def names(self) -> list[str]:
        """The kinds present, in report order."""
        have = [("EXIF", self.exif), ("DPI", self.dpi), ("XMP", self.xmp), ("text chunks", self.text),
                ("comment", self.comment), ("gamma", self.gamma)]
        return [name for name, value in have if value]


# --------------------------------------------------------------------------- reading


#: tiff:Orientation in an XMP packet, as an attribute or an element (the forms ImageOps.exif_transpose edits).
XMP_ORIENTATION = re.compile(rb'(tiff:Orientation="|<tiff:Orientation>)([0-9])("|</tiff:Orientation>)')


def reset_orientation(exif: bytes) -> bytes:
    """The EXIF block with its IFD0 Orientation tag (0x0112) set to 1, every other byte as it was."""
    if len(exif) < 8 or exif[:2] not in (b"II", b"MM"):
        return exif
    end = "<" if exif[:2] == b"II" else ">"
    (ifd,) = struct.unpack(end + "I", exif[4:8])
    if ifd + 2 > len(exif):
        return exif
    (count,) = struct.unpack(end + "H", exif[ifd : ifd + 2])
    for i in range(count):
        pos = ifd + 2 + 12 * i
        if pos + 12 > len(exif):
            break
        tag, kind = struct.unpack(end + "HH", exif[pos : pos + 4])
        if tag == 0x0112 and kind == 3:  # SHORT, its value in the first two bytes of the field
            return exif[: pos + 8] + struct.pack(end + "H", 1) + exif[pos + 10 :]
    return exif


def read_metadata(im: Image.Image, orientation: int) -> Metadata:
    """The metadata of an opened image (header only, no pixels decoded).

    ``orientation``: the EXIF orientation applied to the pixels; axes 5..8 swap the DPI pair.
    """
    info = im.info
    exif = info.get("exif")
    exif_bytes = None
    unreadable: tuple[str, ...] = ()
    if isinstance(exif, bytes) and exif:
        exif_bytes = reset_orientation(exif.removeprefix(_EXIF_PREFIX))
        if not _readable_exif(exif_bytes):
            exif_bytes, unreadable = None, ("EXIF",)
    dpi = info.get("dpi")
    if im.format == "TIFF" and not _RESOLUTION_TAGS <= set(getattr(im, "tag_v2", {})):
        dpi = None  # Pillow puts 1 for a missing XResolution or YResolution: not a real 1 dpi
    dpi_pair = None
    # a TIFF's resolution is an IFDRational, a number but no int or float
    if isinstance(dpi, tuple) and len(dpi) == 2 and all(isinstance(v, numbers.Real) and v > 0 for v in dpi):
        dpi_pair = (float(dpi[1]), float(dpi[0])) if orientation >= 5 else (float(dpi[0]), float(dpi[1]))
    xmp = info.get("xmp") or info.get(_XMP_KEY)
    xmp_bytes = xmp.encode("utf-8") if isinstance(xmp, str) else xmp if isinstance(xmp, bytes) else None
    if xmp_bytes:  # the output is upright, its EXIF says 1: an orientation kept in XMP turned it again
        xmp_bytes = XMP_ORIENTATION.sub(lambda m: m[1] + b"1" + m[3], xmp_bytes)
    text: tuple[tuple[str, str], ...] = ()
    if im.format == "PNG":
        text = tuple((k, str(v)) for k, v in info.items()
                     if isinstance(k, str) and isinstance(v, str) and k not in _NOT_TEXT)
    comment = info.get("comment")
    if im.format == "PNG" and comment is None and isinstance(info.get("Comment"), str):
        # PNG's registered "Comment" keyword is the file's comment: it goes to a JPEG COM
        # segment or a GIF comment extension as the comment, and back to PNG as one chunk
        comment = info["Comment"]
        text = tuple((k, v) for k, v in text if k != "Comment")
    comment_bytes = comment.encode("utf-8") if isinstance(comment, str) else comment or None
    gamma = info.get("gamma") if im.format == "PNG" else None  # it was dropped without a word
    return Metadata(exif=exif_bytes, dpi=dpi_pair, xmp=xmp_bytes or None, text=text,
                    comment=comment_bytes if isinstance(comment_bytes, bytes) else None,
                    gamma=float(gamma) if isinstance(gamma, numbers.Real) and gamma > 0 else None,
                    unreadable=unreadable)


def _readable_exif(exif: bytes) -> bool:
    """Whether an EXIF block is the TIFF structure it should be, as Pillow's TIFF writer reads it
    (junk bytes under an EXIF marker made a TIFF output an internal error)."""
    try:
        Image.Exif().load(exif)
    except Exception:  # noqa: BLE001 - Pillow raises SyntaxError, struct.error, ValueError...
        return False
    return exif[:4] in (b"II*\0", b"MM\0*")


# --------------------------------------------------------------------------- writing

#: What each output format holds (the README's table): format -> kinds kept.
HOLDS: dict[str, frozenset[str]] = {
    "png": frozenset({"EXIF", "DPI", "XMP", "text chunks", "comment", "gamma"}),
    "jpeg": frozenset({"EXIF", "DPI", "XMP", "comment"} if PILLOW_JPEG_XMP else {"EXIF", "DPI", "comment"}),
    "tiff": frozenset({"EXIF", "DPI", "XMP"}),
    "webp": frozenset({"EXIF", "XMP"}),
    "gif": frozenset({"comment"}),
    "bmp": frozenset({"DPI"}),
    "npy": frozenset(),
}
_SHOWN = {"png": "PNG", "jpeg": "JPEG", "tiff": "TIFF", "webp": "WebP", "gif": "GIF", "bmp": "BMP",
          "npy": ".npy"}


def metadata_notes(meta: Metadata | None, fmt: str, icc: str | None = None) -> list[str]:
    """The report's notes: what was kept, and what was dropped because ``fmt`` cannot hold it.

    ``icc``: "kept" or "dropped" when the input had an ICC profile (it is listed with the rest).
    """
    names = meta.names() if meta is not None else []
    holds = HOLDS.get(fmt, frozenset())
    kept = [n for n in names if n in holds] + (["ICC"] if icc == "kept" else [])
    lost = [n for n in names if n not in holds]
    notes = []
    if kept:
        notes.append("metadata kept: " + ", ".join(kept))
    if lost:
        them = "them" if len(lost) > 1 or lost[0] == "text chunks" else "it"
        notes.append(f"metadata dropped: {', '.join(lost)} ({_SHOWN.get(fmt, fmt)} cannot hold {them})")
    if meta is not None and meta.unreadable:
        notes.append(f"metadata dropped: {', '.join(meta.unreadable)} (unreadable in the input)")
    return notes


def save_params(meta: Metadata, fmt: str) -> dict[str, Any]:
    """Pillow ``save`` keywords writing what ``fmt`` holds (PNG: see :func:`png_chunks`)."""
    holds = HOLDS.get(fmt, frozenset())
    params: dict[str, Any] = {}
    if meta.exif and "EXIF" in holds:
        params["exif"] = _EXIF_PREFIX + meta.exif if fmt == "jpeg" else meta.exif
    if meta.dpi and "DPI" in holds:
        params["dpi"] = meta.dpi
    if meta.xmp and "XMP" in holds:
        if fmt == "tiff":  # Pillow's TIFF writer takes XMP as tag 700 of the tags it is given
            exif = Image.Exif()
            if meta.exif:
                exif.load(meta.exif)
            exif[700] = meta.xmp
            params["exif"] = exif
        else:
            params["xmp"] = meta.xmp
    if meta.comment and "comment" in holds:
        params["comment"] = meta.comment
    return params


def _text_chunk(key: str, value: str) -> tuple[bytes, bytes]:
    """tEXt when key and value are Latin-1, else iTXt (UTF-8, uncompressed)."""
    k = key.encode("latin-1", errors="replace")[:79]
    try:
        return b"tEXt", k + b"\0" + value.encode("latin-1")
    except UnicodeEncodeError:
        return b"iTXt", k + b"\0\0\0\0\0" + value.encode("utf-8")


def png_chunks(meta: Metadata) -> list[tuple[bytes, bytes]]:
    """(chunk type, data) of the metadata, to go before the image data: gAMA, pHYs, eXIf, tEXt/iTXt."""
    chunks: list[tuple[bytes, bytes]] = []
    if meta.gamma:  # gAMA stores the gamma times 100000 (Pillow's info["gamma"] is that / 100000)
        chunks.append((b"gAMA", struct.pack(">I", round(meta.gamma * 100000))))
    if meta.dpi:
        per_metre = [max(1, round(v / 0.0254)) for v in meta.dpi]
        chunks.append((b"pHYs", struct.pack(">IIB", per_metre[0], per_metre[1], 1)))
    if meta.exif:
        chunks.append((b"eXIf", meta.exif))
    if meta.xmp:
        chunks.append((b"iTXt", _XMP_KEY.encode() + b"\0\0\0\0\0" + meta.xmp))
    chunks.extend(_text_chunk(k, v) for k, v in meta.text)
    if meta.comment:
        try:  # JPEG and GIF say nothing of a comment's encoding: UTF-8 where it decodes, as most write
            comment = meta.comment.decode("utf-8")
        except UnicodeDecodeError:
            comment = meta.comment.decode("latin-1")
        chunks.append(_text_chunk("Comment", comment))
    return chunks

