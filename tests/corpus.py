"""Odd and hostile images, made by code at test time (no binary blobs in the repository).

``build_corpus(folder)`` writes every case into ``folder`` and returns
``{name: Case(path, expect)}``. ``expect.error`` is a phrase the one-line
``InputError`` message must contain, or None when the file must decode; then
``expect`` says the upright size, channels, alpha, bit depth, notes and, where they
are known independently of convcli, the exact values (float32 on the stored scale).

Other test files run commands over the corpus::

    for name, (path, expect) in build_corpus(tmp_path).items(): ...

The case ``directory`` is a folder named ``directory.png``: ``read_image`` refuses it
("is a directory"), while the CLI may expand it as a folder of inputs (it is empty).
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHELSEA = Path(__file__).resolve().parents[1] / "sample_images" / "chelsea.png"


@dataclass(frozen=True)
class Expectation:
    """What reading a corpus file must give: an error phrase, or the decoded image."""

    error: str | None = None  # phrase of the InputError message; None = decodes
    size: tuple[int, int] | None = None  # (width, height), upright
    channels: int = 3
    has_alpha: bool = False
    bit_depth: int = 8
    n_frames: int = 1
    color: np.ndarray | None = field(default=None, repr=False)  # (H, W, C) float32, or None = unchecked
    alpha: np.ndarray | None = field(default=None, repr=False)  # (H, W) float32
    atol: float = 0.0
    notes: tuple[str, ...] = ()  # phrases that must appear among the header's notes
    icc: bool = False  # an ICC profile must come through

    @property
    def ok(self) -> bool:
        """True when the file must decode."""
        return self.error is None


class Case(NamedTuple):
    """One corpus file and what reading it must give."""

    path: Path
    expect: Expectation


# ----------------------------------------------------------------------------- helpers


def png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk with its length and CRC."""
    return (
        struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def raw_png(width: int, height: int, bit_depth: int, colour_type: int, rows: bytes | None = None) -> bytes:
    """A PNG built by hand: ``rows`` are the unfiltered scanlines (no filter bytes), or None for none."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    data = b""
    if rows is not None and height:
        line = len(rows) // height
        data = b"".join(b"\x00" + rows[i * line : (i + 1) * line] for i in range(height))
    return (
        PNG_SIGNATURE
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(data))
        + png_chunk(b"IEND", b"")
    )


def png16(samples: np.ndarray) -> bytes:
    """A 16-bit PNG of an (H, W, n) uint16 array, n = 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA (filter 0)."""
    height, width, n = samples.shape
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[n]
    return raw_png(width, height, 16, colour_type, samples.astype(">u2").tobytes())


def tiff16_rgb(samples: np.ndarray) -> bytes:
    """A minimal uncompressed little-endian TIFF of an (H, W, 3) uint16 array (one strip)."""
    height, width, _ = samples.shape
    pixels = samples.astype("<u2").tobytes()
    n_tags = 10
    bits_at = 8 + 2 + 12 * n_tags + 4
    data_at = bits_at + 6
    tags = [  # tag, type (3 SHORT, 4 LONG), count, value or offset
        (256, 3, 1, width), (257, 3, 1, height), (258, 3, 3, bits_at), (259, 3, 1, 1), (262, 3, 1, 2),
        (273, 4, 1, data_at), (277, 3, 1, 3), (278, 3, 1, height), (279, 4, 1, len(pixels)), (284, 3, 1, 1),
    ]  # fmt: skip
    ifd = struct.pack("<H", n_tags)
    for tag, kind, count, value in tags:
        if kind == 3 and count == 1:
            ifd += struct.pack("<HHIHH", tag, kind, count, value, 0)
        else:
            ifd += struct.pack("<HHII", tag, kind, count, value)
    return (
        b"II*\x00"
        + struct.pack("<I", 8)
        + ifd
        + struct.pack("<I", 0)
        + struct.pack("<3H", 16, 16, 16)
        + pixels
    )


def buf_png(pixels: np.ndarray, **params: object) -> bytes:
    """``pixels`` (uint8 or uint16 grey) as a PNG written by Pillow."""
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "PNG", **params)
    return buf.getvalue()


def ppm16_rgb(samples: np.ndarray) -> bytes:
    """A binary P6 PPM of an (H, W, 3) uint16 array, maxval 65535 (big-endian samples)."""
    height, width, _ = samples.shape
    return b"P6\n%d %d\n65535\n" % (width, height) + samples.astype(">u2").tobytes()


def pgm16(samples: np.ndarray) -> bytes:
    """A binary P5 PGM of an (H, W) uint16 array, maxval 65535."""
    height, width = samples.shape
    return b"P5\n%d %d\n65535\n" % (width, height) + samples.astype(">u2").tobytes()


def sgi16_rgb(samples: np.ndarray) -> bytes:
    """An uncompressed SGI image of an (H, W, 3) uint16 array: 2 bytes a sample, planes of rows
    stored bottom to top (the SGI format's 512-byte header, then channel after channel)."""
    height, width, channels = samples.shape
    header = struct.pack(">hBBHHHHii4s80si", 474, 0, 2, 3, width, height, channels, 0, 65535,
                         b"", b"convcli test", 0)
    planes = b"".join(samples[::-1, :, c].astype(">u2").tobytes() for c in range(channels))
    return header.ljust(512, b"\0") + planes


def png_chunks(data: bytes) -> list[tuple[bytes, int, int]]:
    """(type, offset, data length) of each chunk of a PNG."""
    out, pos = [], len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        out.append((data[pos + 4 : pos + 8], pos, length))
        pos += 12 + length
    return out


def crc_broken(data: bytes, kind: bytes = b"IDAT", which: int = -1) -> bytes:
    """``data`` with one byte of a ``kind`` chunk (the ``which``-th) flipped and its CRC left as
    it was, at the last place in the chunk where Pillow still decodes the whole file without a
    word (for IDAT: to other pixels). Most flips in image data break the deflate stream or its
    Adler-32, which the decoder reports; some near the end of the stream do not, and there only
    the chunk's CRC tells."""
    _, pos, length = [c for c in png_chunks(data) if c[0] == kind][which]
    with Image.open(io.BytesIO(data)) as im:
        good = np.asarray(im)
    for at in range(pos + 8 + length - 1, pos + 7, -1):
        bad = bytearray(data)
        bad[at] ^= 0x55
        try:
            with Image.open(io.BytesIO(bytes(bad))) as im:
                pixels = np.asarray(im)
        except (OSError, SyntaxError, ValueError, EOFError, zlib.error):
            continue
        if kind != b"IDAT" or not np.array_equal(pixels, good):
            return bytes(bad)
    msg = f"no silent flip found in {kind!r}"  # pragma: no cover
    raise AssertionError(msg)


def with_chunk_before_iend(data: bytes, kind: bytes, body: bytes) -> bytes:
    """``data`` with one more chunk just before its IEND (after the image data)."""
    return data[:-12] + png_chunk(kind, body) + data[-12:]


def _pattern(height: int, width: int, channels: int, seed: int, high: int = 256) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, high, (height, width, channels)).astype(np.uint16 if high > 256 else np.uint8)


def _save(im: Image.Image, path: Path, **params: object) -> Path:
    im.save(path, **params)
    return path


def _f32(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float32)
    return a[..., None] if a.ndim == 2 else a


# ----------------------------------------------------------------------------- cases


def hostile_cases(folder: Path) -> dict[str, Case]:
    """Files that must be refused with a clear one-line InputError."""
    rgb = _pattern(64, 64, 3, seed=1)
    cases: dict[str, Case] = {}

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    p = folder / "truncated.png"
    p.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    cases["truncated_png"] = Case(p, Expectation(error="truncated"))

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=90)
    p = folder / "truncated.jpg"
    p.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    cases["truncated_jpeg"] = Case(p, Expectation(error="truncated"))

    data = png16(_pattern(64, 64, 3, seed=2, high=65536))
    p = folder / "truncated16.png"
    p.write_bytes(data[: len(data) // 2])
    cases["truncated_png16"] = Case(p, Expectation(error="truncated"))

    p = folder / "not_an_image.png"
    p.write_text("this is a text file, not an image\n")
    cases["not_an_image"] = Case(p, Expectation(error="not an image"))

    p = folder / "empty.png"
    p.write_bytes(b"")
    cases["empty"] = Case(p, Expectation(error="empty file"))

    p = folder / "directory.png"
    p.mkdir()
    cases["directory"] = Case(p, Expectation(error="is a directory"))

    p = folder / "zero_width.png"
    p.write_bytes(raw_png(0, 5, 8, 0))
    cases["zero_width"] = Case(p, Expectation(error="zero-sized"))

    # A 200-byte file claiming 30000 x 30000: refused from the header, before any decoding.
    p = folder / "bomb.png"
    p.write_bytes(raw_png(30000, 30000, 8, 0, bytes(30000 * 2)))
    cases["bomb"] = Case(p, Expectation(error="exceeds --max-pixels"))

    # One byte of the image data flipped where the decoder cannot tell: only the IDAT's CRC can.
    p = folder / "idat_crc.png"
    with Image.open(CHELSEA) as im:
        photo = np.asarray(im.convert("RGB").resize((40, 30)))
    p.write_bytes(crc_broken(buf_png(photo)))
    cases["idat_crc_png"] = Case(p, Expectation(error="IDAT checksum error"))

    p = folder / "float.tif"
    Image.fromarray(np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)).save(p)
    cases["float_tiff"] = Case(p, Expectation(error="float"))
    return cases


def odd_cases(folder: Path) -> dict[str, Case]:
    """Unusual files that must decode, with the values they must give."""
    cases: dict[str, Case] = {}

    # Palette with a transparent entry -> RGBA.
    palette = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]], dtype=np.uint8)
    index = (np.arange(12).reshape(3, 4) % 4).astype(np.uint8)
    im = Image.new("P", (4, 3))
    im.putpalette(palette.ravel().tolist())
    im.putdata(index.ravel().tolist())
    p = _save(im, folder / "palette_trns.png", transparency=3)
    alpha = np.where(index == 3, 0, 255).astype(np.float32)
    cases["palette_transparency"] = Case(
        p,
        Expectation(
            size=(4, 3),
            has_alpha=True,
            color=_f32(palette[index]),
            alpha=alpha,
            notes=("palette expanded to RGBA",),
        ),
    )

    # 1-bit -> 0/255.
    bits = (np.indices((5, 9)).sum(axis=0) % 2).astype(bool)
    p = _save(Image.fromarray(bits), folder / "bilevel.png")
    cases["bilevel"] = Case(
        p,
        Expectation(
            size=(9, 5),
            channels=1,
            color=_f32(bits * 255.0),
            notes=("1-bit expanded to 0/255",),
        ),
    )

    la = _pattern(6, 5, 2, seed=2)
    p = _save(Image.fromarray(la), folder / "gray_alpha.png")
    cases["gray_alpha"] = Case(
        p,
        Expectation(
            size=(5, 6),
            channels=1,
            has_alpha=True,
            color=_f32(la[..., 0]),
            alpha=la[..., 1].astype(np.float32),
        ),
    )

    # CMYK JPEG: the expected values are Pillow's own CMYK -> RGB conversion of the same file.
    cmyk = _pattern(16, 16, 4, seed=3)
    p = _save(Image.frombytes("CMYK", (16, 16), cmyk.tobytes()), folder / "cmyk.jpg", quality=95)
    with Image.open(p) as stored:
        expected = np.asarray(stored.convert("RGB"))
    cases["cmyk_jpeg"] = Case(
        p, Expectation(size=(16, 16), color=_f32(expected), notes=("CMYK converted to RGB",))
    )

    gray16 = _pattern(7, 9, 1, seed=4, high=65536)
    gray16[0, 0, 0], gray16[0, 1, 0] = 0, 65535
    p = folder / "gray16.png"
    p.write_bytes(png16(gray16))
    cases["gray16"] = Case(p, Expectation(size=(9, 7), channels=1, bit_depth=16, color=_f32(gray16[..., 0])))

    la16 = _pattern(5, 8, 2, seed=5, high=65536)
    p = folder / "gray_alpha16.png"
    p.write_bytes(png16(la16))
    cases["gray_alpha16"] = Case(
        p,
        Expectation(
            size=(8, 5),
            channels=1,
            has_alpha=True,
            bit_depth=16,
            color=_f32(la16[..., 0]),
            alpha=la16[..., 1].astype(np.float32),
        ),
    )

    # 16-bit RGB(A): Pillow would keep the high byte only; convcli decodes all 16 bits.
    rgb16 = _pattern(4, 6, 3, seed=6, high=65536)
    p = folder / "rgb16.png"
    p.write_bytes(png16(rgb16))
    cases["rgb16"] = Case(p, Expectation(size=(6, 4), bit_depth=16, color=_f32(rgb16)))
    rgba16 = _pattern(5, 3, 4, seed=9, high=65536)
    p = folder / "rgba16.png"
    p.write_bytes(png16(rgba16))
    cases["rgba16"] = Case(
        p,
        Expectation(
            size=(3, 5), has_alpha=True, bit_depth=16, color=_f32(rgba16[..., :3]),
            alpha=rgba16[..., 3].astype(np.float32),
        ),
    )  # fmt: skip

    # 16-bit RGB TIFF: Pillow keeps the high byte; the report must say so.
    tif16 = _pattern(3, 5, 3, seed=10, high=65536)
    p = folder / "rgb16.tif"
    p.write_bytes(tiff16_rgb(tif16))
    cases["rgb16_tiff"] = Case(
        p, Expectation(size=(5, 3), color=_f32(tif16 >> 8), notes=("16-bit RGB read as 8-bit",))
    )

    # 16-bit RGB PPM and SGI: Pillow reads them as 8-bit RGB (PPM rounds v / 257, SGI keeps the
    # high byte); the report must say so. A 16-bit PGM (grey) keeps its 16 bits.
    ppm16 = _pattern(4, 7, 3, seed=11, high=65536)
    p = folder / "rgb16_ppm.ppm"
    p.write_bytes(ppm16_rgb(ppm16))
    cases["rgb16_ppm"] = Case(
        p, Expectation(size=(7, 4), color=_f32(np.round(ppm16 / 257)), notes=("16-bit RGB read as 8-bit",))
    )
    sgi16 = _pattern(5, 6, 3, seed=12, high=65536)
    p = folder / "rgb16_sgi.sgi"
    p.write_bytes(sgi16_rgb(sgi16))
    cases["rgb16_sgi"] = Case(
        p, Expectation(size=(6, 5), color=_f32(sgi16 >> 8), notes=("16-bit RGB read as 8-bit",))
    )
    grey16 = _pattern(3, 5, 1, seed=13, high=65536)[..., 0]
    p = folder / "gray16_pgm.pgm"
    p.write_bytes(pgm16(grey16))
    cases["gray16_pgm"] = Case(p, Expectation(size=(5, 3), channels=1, bit_depth=16, color=_f32(grey16)))

    # Animated GIF, 3 frames of flat grey levels: the first frame is read.
    frames = [Image.new("L", (8, 6), v) for v in (30, 130, 230)]
    p = folder / "animated.gif"
    frames[0].save(p, save_all=True, append_images=frames[1:], duration=100, loop=0)
    cases["animated_gif"] = Case(
        p,
        Expectation(
            size=(8, 6),
            n_frames=3,
            color=np.full((6, 8, 3), 30, np.float32),
            notes=("first frame of 3",),
        ),
    )

    # EXIF orientation 6 (stored 8 wide x 4 high, shown 4 wide x 8 high): rotate 90 degrees clockwise.
    stored_rgb = np.zeros((4, 8, 3), np.uint8)
    stored_rgb[:2, :4] = (250, 0, 0)  # top-left block red, so a wrong rotation shows
    stored_rgb[2:, 4:] = (0, 0, 250)
    exif = Image.Exif()
    exif[0x0112] = 6
    p = _save(Image.fromarray(stored_rgb), folder / "exif6.jpg", exif=exif, quality=95)
    with Image.open(p) as stored:
        decoded = np.asarray(stored.convert("RGB"))
    cases["exif_rotated"] = Case(
        p,
        Expectation(
            size=(4, 8),
            color=_f32(np.rot90(decoded, k=-1)),
            notes=("EXIF orientation 6 applied",),
        ),
    )

    try:
        from PIL import ImageCms
    except ImportError:  # pragma: no cover - Pillow without littlecms
        ImageCms = None  # noqa: N806
    if ImageCms is not None:
        profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
        rgb = _pattern(3, 5, 3, seed=7)
        p = _save(Image.fromarray(rgb), folder / "icc.png", icc_profile=profile)
        cases["icc_png"] = Case(p, Expectation(size=(5, 3), color=_f32(rgb), icc=True))

    # RGBA whose fully transparent pixels carry arbitrary colour: kept as stored.
    rgba = _pattern(6, 6, 4, seed=8)
    rgba[::2, ::2, 3] = 0
    p = _save(Image.fromarray(rgba), folder / "rgba_transparent.png")
    cases["rgba_transparent"] = Case(
        p,
        Expectation(
            size=(6, 6),
            has_alpha=True,
            color=_f32(rgba[..., :3]),
            alpha=rgba[..., 3].astype(np.float32),
        ),
    )
    return cases


def build_corpus(folder: Path) -> dict[str, Case]:
    """Write every hostile and odd case into ``folder``; name -> Case(path, expectation)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return {**hostile_cases(folder), **odd_cases(folder)}
