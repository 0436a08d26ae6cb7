"""Truncated images and warnings: an input error or a note in the report, never raw text on stderr."""

from __future__ import annotations

import io
import json
import re
import struct
import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from corpus import CHELSEA, crc_broken, with_chunk_before_iend
from PIL import Image, ImageFile

from convcli.cli import cli
from convcli.errors import InputError
from convcli.io import decode
from convcli.io.decode import check_jpeg_data, read_header, read_image
from convcli.io.png import CheckedPng, raw_size

FORMATS = [("PNG", {}), ("JPEG", {}), ("JPEG", {"progressive": True}), ("WEBP", {}),
           ("WEBP", {"lossless": True}), ("TIFF", {}), ("TIFF", {"compression": "tiff_deflate"}), ("GIF", {})]


def encoded(fmt: str, size: tuple[int, int] = (48, 64), **params: Any) -> bytes:
    rng = np.random.default_rng(11)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(buf, fmt, **params)
    return buf.getvalue()


def run(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.mark.parametrize(("fmt", "params"), FORMATS, ids=lambda v: str(v))
@pytest.mark.parametrize("fraction", [0.2, 0.5, 0.8, 0.95])
def test_truncated_file_is_an_input_error(tmp_path: Path, fmt: str, params: dict[str, Any],
                                          fraction: float) -> None:
    data = encoded(fmt, **params)
    src = tmp_path / f"cut.{fmt.lower()}"
    src.write_bytes(data[: int(len(data) * fraction)])
    out = tmp_path / "out.png"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing may leak as a warning either
        r = run("blur", str(src), "-o", str(out), "--json")
    assert r.exit_code == 1
    (rec,) = [json.loads(line) for line in r.stdout.splitlines()]
    assert rec["status"] == "error"
    assert len(r.stderr.splitlines()) == 1 and r.stderr.startswith(f"convcli: error: {src}: ")
    assert not out.exists()


@pytest.mark.parametrize(("fmt", "params"), FORMATS, ids=lambda v: str(v))
def test_whole_files_still_decode(tmp_path: Path, fmt: str, params: dict[str, Any]) -> None:
    img = read_image(encoded(fmt, **params))
    assert img.color.shape[:2] == (48, 64)
    assert not [n for n in img.header.notes if n.startswith("warning")]


def jpeg_claiming(width: int, height: int, **params: Any) -> bytes:
    """A valid small JPEG whose frame header is rewritten to announce width x height."""
    data = bytearray(encoded("JPEG", (40, 40), **params))
    sof = data.find(b"\xff\xc2" if params.get("progressive") else b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


@pytest.mark.parametrize("progressive", [False, True])
def test_small_jpeg_claiming_9000_squared_is_refused(tmp_path: Path, progressive: bool) -> None:
    data = jpeg_claiming(9000, 9000, progressive=progressive)
    assert len(data) < 5000
    # Pillow alone decodes it, grey where the data is missing, without a word: the case to catch.
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        assert im.size == (9000, 9000)
    with pytest.raises(InputError, match="truncated JPEG data"):
        read_image(data)
    src = tmp_path / "claims.jpg"
    src.write_bytes(data)
    r = run("blur", str(src), "-o", str(tmp_path / "o.png"))
    assert r.exit_code == 1
    assert r.stdout == ""
    assert r.stderr.startswith(f"convcli: error: {src}: truncated JPEG data: ")
    assert len(r.stderr.splitlines()) == 1


CHEAP = [{}, {"progressive": True}, {"quality": 1, "optimize": True}, {"subsampling": 0},
         {"quality": 1, "progressive": True, "optimize": True}]


@pytest.mark.parametrize("params", CHEAP)
@pytest.mark.parametrize("kind", ["flat", "flat-grey", "noise"])
def test_jpeg_data_check_accepts_valid_files(params: dict[str, Any], kind: str) -> None:
    """The cheapest JPEGs there are (flat, optimised Huffman tables) still pass the check."""
    rng = np.random.default_rng(5)
    arr = {"flat": np.full((1200, 900, 3), 90, np.uint8), "flat-grey": np.full((1000, 1000), 7, np.uint8),
           "noise": rng.integers(0, 256, (300, 200, 3), dtype=np.uint8)}[kind]
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", **params)
    check_jpeg_data(buf.getvalue())


def test_bundled_jpeg_passes() -> None:
    check_jpeg_data((Path(__file__).parent.parent / "sample_images" / "rocket.jpg").read_bytes())


# --------------------------------------------------------------------------- warnings


@pytest.mark.parametrize(("step", "threads"), [("_decode_array", "1"), ("_inspect", "1"), ("_inspect", "2")])
def test_decoder_warnings_become_notes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, step: str,
                                       threads: str) -> None:
    """A warning while decoding or opening (here one Pillow could raise) is a note of the record, once,
    not stderr text: on both read paths (on one thread the whole image is decoded by _decode_array;
    with more, a plain PNG's rows are read as they inflate, past _inspect only)."""
    real = getattr(decode, step)

    def warn_then_run(*args: Any, **kwargs: Any) -> Any:
        warnings.warn("Possibly corrupt EXIF data. Skipping tag 270", UserWarning, stacklevel=1)
        return real(*args, **kwargs)

    monkeypatch.setattr(decode, step, warn_then_run)
    src = tmp_path / "a.png"
    src.write_bytes(encoded("PNG"))
    r = run("blur", str(src), "-o", str(tmp_path / "o.png"), "--json", "--threads", threads)
    assert r.exit_code == 0
    assert r.stderr == ""
    (rec,) = [json.loads(line) for line in r.stdout.splitlines()]
    assert rec["notes"].count("warning: Possibly corrupt EXIF data. Skipping tag 270") == 1


def test_a_warning_that_says_truncated_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real = decode._decode_array

    def warn_then_decode(*args: Any, **kwargs: Any) -> Any:
        warnings.warn("Truncated File Read", UserWarning, stacklevel=1)
        return real(*args, **kwargs)

    monkeypatch.setattr(decode, "_decode_array", warn_then_decode)
    with pytest.raises(InputError, match=r"truncated or corrupt data \(Truncated File Read\)"):
        read_image(encoded("PNG"))
    assert read_header(encoded("PNG")).width == 64  # the header alone is fine


def animated(fmt: str, frames: int = 3) -> bytes:
    rng = np.random.default_rng(5)
    ims = [Image.fromarray(rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)) for _ in range(frames)]
    buf = io.BytesIO()
    ims[0].save(buf, fmt, save_all=True, append_images=ims[1:])
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["GIF", "TIFF", "WEBP", "PNG"])
@pytest.mark.parametrize("frames", ["first", "all"])
def test_cut_multi_frame_files_fail_alone_or_say_what_was_read(tmp_path: Path, fmt: str, frames: str) -> None:
    """0.2 crashed in the plan (IndexError from a cut GIF's frame count, TypeError from a cut
    TIFF's), a traceback that lost the whole batch. Every cut point: the file is done (saying
    when frames could not be counted) or fails alone with one line; the good file is always done."""
    data = animated(fmt)
    (tmp_path / "in").mkdir()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "in" / "good.png")
    cuts = sorted({int(len(data) * f) for f in np.linspace(0.05, 0.98, 24)})
    for i, cut in enumerate(cuts):
        (tmp_path / "in" / f"cut{i:02d}.{fmt.lower()}").write_bytes(data[:cut])
    r = run("blur", str(tmp_path / "in"), "--out-dir", str(tmp_path / "out"), "--json", "--frames", frames,
            "-j", "1")
    assert r.exit_code in (0, 1), r.stderr
    recs = {Path(rec["input"]).name: rec for rec in map(json.loads, r.stdout.splitlines())}
    assert len(recs) == len(cuts) + 1
    assert recs["good.png"]["status"] == "ok"
    errors = [line for line in r.stderr.splitlines() if line.startswith("convcli: error: ")]
    assert len(errors) == sum(rec["status"] == "error" for rec in recs.values())
    assert "Traceback" not in r.stderr


def _frames_uncountable(data: bytes) -> bool:
    """Pillow opens the file and decodes its first frame, but counting its frames fails."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
    except Exception:  # noqa: BLE001 - not the case wanted here
        return False
    try:
        with Image.open(io.BytesIO(data)) as im:
            _ = im.n_frames
    except Exception:  # noqa: BLE001
        return True
    return False


@pytest.mark.parametrize("fmt", ["GIF", "TIFF"])
def test_an_animation_cut_after_its_first_frame_fails_unless_the_first_alone_is_asked(tmp_path: Path,
                                                                                      fmt: str) -> None:
    """A cut GIF whose later frames cannot be counted wrote its first frame alone as the whole
    animation, exit 0 (a note the only trace): the data ends early, an input error. ``--frames first``
    asks for the first frame alone, which is whole: that is still done. A TIFF reads its first page
    with a note either way (a single-page TIFF with a broken next-page pointer looks the same), and
    that page, not the last one reached while counting."""
    data = animated(fmt, frames=4)
    step = max(1, len(data) // 200)
    cuts = [c for c in range(len(data) // 2, len(data), step) if _frames_uncountable(data[:c])]
    assert cuts, "no cut point of this kind: the test would check nothing"
    whole = tmp_path / f"whole.{fmt.lower()}"
    whole.write_bytes(data)
    assert run("blur", str(whole), "-o", str(tmp_path / "first.png"), "--frames", "first").exit_code == 0
    first = np.asarray(Image.open(tmp_path / "first.png"))
    for cut in cuts[:: max(1, len(cuts) // 6)]:
        src = tmp_path / f"cut.{fmt.lower()}"
        src.write_bytes(data[:cut])
        out = tmp_path / f"out.{fmt.lower()}"
        r = run("blur", str(src), "-o", str(out))
        if fmt == "TIFF":  # as a single-page TIFF whose next-page pointer is broken: its page, a note
            assert r.exit_code == 0, (cut, r.stderr)
            out.unlink()
        else:
            assert r.exit_code == 1, (cut, r.stdout)
            assert r.stderr.startswith(f"convcli: error: {src}: truncated or corrupt {fmt}: the frames after "
                                       "the first cannot be read") and r.stderr.count("\n") == 1
            assert not out.exists()
            r = run("blur", str(src), "-o", str(out), "--frames", "1,2")  # was "the image has 1 frame"
            assert r.exit_code == 1 and "the frames after the first cannot be read" in r.stderr
        r = run("blur", str(src), "-o", str(tmp_path / "cut_first.png"), "--frames", "first", "--json")
        assert r.exit_code == 0, r.stderr
        assert any(n.startswith("later frames unreadable") for n in json.loads(r.stdout)["notes"])
        with Image.open(tmp_path / "cut_first.png") as im:  # counting had left a TIFF on a later page
            assert np.array_equal(np.asarray(im), first), cut


@pytest.mark.parametrize("frames", ["all", "0,1"])
def test_a_later_gif_frame_claiming_a_huge_size_is_refused_before_it_is_decoded(tmp_path: Path,
                                                                                  frames: str) -> None:
    """--max-pixels is checked on the first frame's header; 0.2 then decoded a 135-byte GIF's second
    frame, whose descriptor claims 40000x40000, into 1.6 GB before refusing it."""
    a = Image.new("P", (10, 10), 0)
    b = Image.new("P", (10, 10), 1)
    for im in (a, b):
        im.putpalette([0, 0, 0, 255, 255, 255] + [0] * 762)
    buf = io.BytesIO()
    a.save(buf, "GIF", save_all=True, append_images=[b], duration=100, loop=0)
    data = bytearray(buf.getvalue())
    ten = struct.pack("<HH", 10, 10)
    at = [j for j in range(len(data) - 9) if data[j] == 0x2C and data[j + 5:j + 9] == ten]  # descriptors
    data[at[-1] + 5:at[-1] + 9] = struct.pack("<HH", 40000, 40000)
    src = tmp_path / "bomb.gif"
    src.write_bytes(bytes(data))
    calls: list[tuple[int, int]] = []
    real_load = ImageFile.ImageFile.load

    def load(self: ImageFile.ImageFile) -> Any:
        calls.append(self.size)
        return real_load(self)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ImageFile.ImageFile, "load", load)
        r = run("filter", str(src), "-k", "sharpen", "--frames", frames, "-o", str(tmp_path / "o.gif"))
    assert r.exit_code == 1
    assert r.stderr == "convcli: error: " + str(src) + ": frame 1 is 40000x40000, not 10x10 like the first " \
        "(--frames first filters the first alone)\n"
    assert calls and (40000, 40000) not in calls  # frame 0 was loaded, frame 1 never
    assert not (tmp_path / "o.gif").exists()


# ------------------------------------------------------------------ PNG chunk checksums
#
# Pillow checks the CRC of the chunks before the image data only: a byte flipped in an IDAT
# (where the decoder cannot tell) or in a chunk after it decoded to other pixels, exit 0.


def _photo_png(kind: str) -> bytes:
    """A PNG of the sample photo with a tEXt chunk after the image data: 8-bit RGB (40x30, or
    1024x1024 for the streaming path), 8-bit grey, palette or 16-bit grey."""
    with Image.open(CHELSEA) as im:
        rgb = im.convert("RGB")
    size = (1024, 1024) if kind == "rgb-1mp" else (40, 30)
    small = rgb.resize(size)
    grey16 = np.asarray(small.convert("L")).astype(np.uint16) * 257 + 3
    im = {"grey": small.convert("L"), "palette": small.convert("P"),
          "grey16": Image.fromarray(grey16)}.get(kind, small)
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return with_chunk_before_iend(buf.getvalue(), b"tEXt", b"Comment\0after the image data")


PNG_KINDS = ["rgb", "rgb-1mp", "grey", "palette", "grey16"]


@pytest.fixture(scope="module")
def photo_pngs() -> dict[str, bytes]:
    return {kind: _photo_png(kind) for kind in PNG_KINDS}


@pytest.mark.parametrize("chunk", [b"IDAT", b"tEXt"], ids=lambda c: c.decode())
@pytest.mark.parametrize("kind", PNG_KINDS)
def test_png_chunk_with_a_wrong_crc_is_refused(tmp_path: Path, photo_pngs: dict[str, bytes], kind: str,
                                               chunk: bytes) -> None:
    data = photo_pngs[kind]
    bad = crc_broken(data, chunk)  # Pillow alone decodes it without a word
    src = tmp_path / "bad.png"
    src.write_bytes(bad)
    out = tmp_path / "out.png"
    # --threads 2: a 1024x1024 RGB PNG is decoded on a worker thread (convcli.io.pngrows)
    r = run("filter", str(src), "-k", "identity", "-o", str(out), "--threads", "2")
    assert r.exit_code == 1
    reason = f"truncated or corrupt PNG data (broken PNG file ({chunk.decode()} checksum error))"
    assert r.stderr.splitlines() == [f"convcli: error: {src}: {reason}"]
    assert not out.exists()
    with pytest.raises(InputError, match="checksum error"):
        read_image(bad)


def test_png_crc_error_on_the_streaming_path(photo_pngs: dict[str, bytes]) -> None:
    bad = crc_broken(photo_pngs["rgb-1mp"])
    with pytest.raises(InputError, match="IDAT checksum error"), decode.read_rows(bad) as (img, wait, bg):
        assert bg  # the case PngRows decodes
        wait(img.header.height)


def test_png_crc_error_in_a_header_chunk_is_one_line(tmp_path: Path, photo_pngs: dict[str, bytes]) -> None:
    data = bytearray(photo_pngs["rgb"])
    data[20] ^= 0x01  # in IHDR (Pillow checks it too)
    src = tmp_path / "bad.png"
    src.write_bytes(bytes(data))
    r = run("filter", str(src), "-k", "identity", "-o", str(tmp_path / "out.png"))
    assert r.exit_code == 1
    assert r.stderr.splitlines() == [f"convcli: error: {src}: unreadable image header (broken PNG file "
                                     "(IHDR checksum error))"]


def test_png_crc_error_fails_alone_in_a_batch(tmp_path: Path, photo_pngs: dict[str, bytes]) -> None:
    (tmp_path / "bad.png").write_bytes(crc_broken(photo_pngs["rgb"]))
    (tmp_path / "good.png").write_bytes(photo_pngs["rgb"])
    r = run("filter", str(tmp_path / "bad.png"), str(tmp_path / "good.png"), "-k", "identity",
            "--out-dir", str(tmp_path / "o"), "--json", "--ordered")
    assert r.exit_code == 1
    recs = [json.loads(line) for line in r.stdout.splitlines()]
    assert [rec["status"] for rec in recs] == ["error", "ok"]
    assert "IDAT checksum error" in recs[0]["error"]
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["good.identity.png"]


@pytest.mark.parametrize("kind", PNG_KINDS)
def test_whole_pngs_still_decode_exactly(photo_pngs: dict[str, bytes], kind: str) -> None:
    data = photo_pngs[kind]
    with Image.open(io.BytesIO(data)) as im:
        expected = np.asarray(im.convert("RGB") if im.mode == "P" else im)
    img = read_image(data, keep_integer=True)
    np.testing.assert_array_equal(img.color.reshape(expected.shape), expected)
    with decode.read_rows(data) as (rows, wait, background):
        assert background == kind.startswith("rgb")  # a plain RGB PNG: decoded by PngRows
        wait(rows.header.height)
        np.testing.assert_array_equal(rows.color.reshape(expected.shape), expected)


def test_checked_png_reads_as_the_file_does(photo_pngs: dict[str, bytes]) -> None:
    """CheckedPng hands over the file's bytes unchanged, whatever the reads and seeks."""
    data = photo_pngs["rgb"]
    f = CheckedPng(io.BytesIO(data))
    assert f.read(5) + f.read(20) == data[:25]
    f.seek(3000)  # a skip ahead: the bytes skipped are checked before this read
    assert f.read(100) == data[3000:3100]
    f.seek(0)
    assert f.read() == data
    bad = CheckedPng(io.BytesIO(crc_broken(data)))
    bad.seek(len(data) - 1)
    with pytest.raises(OSError, match="IDAT checksum error"):
        bad.read(1)
    with pytest.raises(OSError, match="IDAT checksum error"):  # and every read after
        bad.read(1)


# ------------------------------------------------- PNG image data that ends before the last row

ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_by_hand(pixels: np.ndarray, colour_type: int, *, keep: float = 1.0, interlace: bool = False,
                palette: bytes = b"", depth: int = 8) -> bytes:
    """A PNG written here (filter 0 rows, one IDAT; 8-bit, 16-bit big-endian, or 1-bit packed), its
    compressed stream whole and its CRCs right, holding the first ``keep`` of the filtered rows (Adam7
    passes in order when ``interlace``)."""
    h, w = pixels.shape[:2]

    def packed(row: np.ndarray) -> bytes:
        if depth == 16:
            return row.astype(">u2").tobytes()
        return np.packbits(row > 0).tobytes() if depth == 1 else row.tobytes()

    rows = []
    for x0, y0, dx, dy in ADAM7 if interlace else ((0, 0, 1, 1),):
        if x0 < w:
            rows += [b"\0" + packed(pixels[y, x0::dx]) for y in range(y0, h, dy)]
    raw = b"".join(rows[: max(1, int(len(rows) * keep))])
    ihdr = struct.pack(">IIBBBBB", w, h, depth, colour_type, 0, 0, int(interlace))
    plte = _png_chunk(b"PLTE", palette) if palette else b""
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + plte
            + _png_chunk(b"IDAT", zlib.compress(raw)) + _png_chunk(b"IEND", b""))


def _short_cases() -> list[Any]:
    rng = np.random.default_rng(5)
    rgb = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    cases = [
        ("grey", rgb[..., 0], 0, {}),
        ("grey+alpha", rgb[..., :2], 4, {}),
        ("rgb", rgb, 2, {}),
        ("rgba", np.dstack([rgb, rgb[..., :1]]), 6, {}),
        ("palette", rgb[..., 0] % 4, 3, {"palette": bytes(range(12))}),
        ("rgb interlaced", rgb, 2, {"interlace": True}),
        ("rgb 1000x1100, decoded on a worker thread",
         rng.integers(0, 256, (1100, 1000, 3), dtype=np.uint8), 2, {}),
        ("grey 16-bit", rng.integers(0, 65536, (40, 50), dtype=np.uint16), 0, {"depth": 16}),
        ("grey+alpha 16-bit", rng.integers(0, 65536, (40, 50, 2), dtype=np.uint16), 4, {"depth": 16}),
        ("bilevel", rgb[..., 0] > 127, 0, {"depth": 1}),
        ("rgb interlaced, one row", rgb[:1], 2, {"interlace": True}),
    ]
    return [pytest.param(*case, id=case[0]) for case in cases]


@pytest.mark.parametrize("keep", [0.5, 0.97])
@pytest.mark.parametrize(("name", "pixels", "colour_type", "extra"), _short_cases())
def test_png_whose_image_data_ends_early_is_an_input_error(tmp_path: Path, name: str, pixels: np.ndarray,
                                                           colour_type: int, extra: dict[str, Any],
                                                           keep: float) -> None:
    """Every chunk whole and every CRC right, but the compressed rows stop early: Pillow decodes the
    rest as black without a word, and 0.3 wrote that out as a filtered image with exit status 0."""
    src = tmp_path / "short.png"
    src.write_bytes(png_by_hand(pixels, colour_type, keep=keep, **extra))
    out = tmp_path / "out.png"
    r = run("blur", str(src), "-o", str(out), "--json")
    assert r.exit_code == 1, r.stdout
    (rec,) = [json.loads(line) for line in r.stdout.splitlines()]
    assert rec["status"] == "error" and "end before the last row" in rec["error"]
    assert r.stderr.splitlines() == [f"convcli: error: {src}: {rec['error']}"]
    assert not out.exists()


@pytest.mark.parametrize(("name", "pixels", "colour_type", "extra"), _short_cases())
def test_png_whose_last_rows_look_like_the_marker_still_decodes(
        name: str, pixels: np.ndarray, colour_type: int, extra: dict[str, Any]) -> None:
    """A whole file whose last rows hold exactly the values the check fills them with (173 or 82 in
    every sample; 40961 or 12345 at 16 bits; black or white) is decoded as it is: they are told apart
    by the other fill."""
    depth = extra.get("depth", 8)
    for value in (173, 82) if depth == 8 else (40961, 12345) if depth == 16 else (0, 1):
        p = pixels.copy()
        p[-2:] = value if colour_type != 3 else value % 4
        data = png_by_hand(p, colour_type, **extra)
        # what the file holds, from the pixels written: a palette looked up, bilevel as 0/255
        expected = (np.frombuffer(extra["palette"], np.uint8).reshape(-1, 3)[p] if colour_type == 3 else
                    p.astype(np.uint8) * 255 if depth == 1 else p)
        got = read_image(data, keep_integer=True)
        stored = got.color if got.alpha is None else np.dstack([got.color, got.alpha])
        assert np.array_equal(stored.reshape(expected.shape), expected), name


def test_an_apng_claiming_more_frames_than_its_bytes_can_hold_is_refused(tmp_path: Path) -> None:
    """acTL's frame count is taken as it is by Pillow: a 101-byte file claiming 2**31 - 1 frames
    made convcli plan every one (24 GB, killed). Each frame needs a 38-byte fcTL chunk (Pillow counts
    the default image too: 1000001)."""
    buf = io.BytesIO()
    Image.fromarray(np.zeros((24, 32, 3), np.uint8)).save(buf, "PNG")
    png = buf.getvalue()
    src = tmp_path / "claims.png"
    src.write_bytes(png[:33] + _png_chunk(b"acTL", struct.pack(">II", 10**6, 0)) + png[33:])
    r = run("blur", str(src), "-o", str(tmp_path / "o.png"))
    assert r.exit_code == 1
    assert r.stderr.startswith(f"convcli: error: {src}: corrupt APNG: it claims 1000001 frames")
    assert r.stderr.count("\n") == 1


def test_a_npy_header_numpy_cannot_parse_is_one_line(tmp_path: Path) -> None:
    """numpy's header parser raised tokenize.TokenError on a shape cut short: a traceback."""
    head = b"{'descr': '<f4', 'fortran_order': False, 'shape': (24, 32, }"
    head += b" " * (63 - len(head) % 64) + b"\n"
    src = tmp_path / "bad.npy"
    src.write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(head)) + head + b"\0" * 3072)
    r = run("blur", str(src), "-o", str(tmp_path / "o.png"))
    assert r.exit_code == 1
    assert r.stderr.startswith(f"convcli: error: {src}: unreadable .npy header") and r.stderr.count("\n") == 1


def _tiff_with(edit: str) -> bytes:
    """A small RGB TIFF broken one way: ``deflate`` (its compressed strip garbled: libtiff prints
    'ZIPDecode: ...' on file descriptor 2 itself) or ``samples`` (SamplesPerPixel 40000: Pillow logs
    'More samples per pixel than can be decoded' before refusing it)."""
    buf = io.BytesIO()
    pixels = np.zeros((24, 32, 3), np.uint8)
    options = {"compression": "tiff_deflate"} if edit == "deflate" else {}
    Image.fromarray(pixels).save(buf, "TIFF", **options)
    data = bytearray(buf.getvalue())
    if edit == "deflate":
        with Image.open(io.BytesIO(bytes(data))) as im:
            strip = im.tag_v2[273][0]
        data[strip + 2 : strip + 10] = b"\xff" * 8
    else:
        ifd = struct.unpack("<I", data[4:8])[0]
        for k in range(struct.unpack("<H", data[ifd : ifd + 2])[0]):
            entry = ifd + 2 + 12 * k
            if struct.unpack("<H", data[entry : entry + 2])[0] == 277:
                data[entry + 8 : entry + 10] = struct.pack("<H", 40000)
    return bytes(data)


@pytest.mark.parametrize("edit", ["deflate", "samples"])
def test_a_broken_tiff_is_one_line_on_stderr(tmp_path: Path, edit: str) -> None:
    """libtiff's C handlers and Pillow's logger wrote their own lines to stderr before convcli's; in a
    real process (fd 2), not CliRunner's Python-level capture."""
    import subprocess
    import sys

    src = tmp_path / "broken.tif"
    src.write_bytes(_tiff_with(edit))
    r = subprocess.run([sys.executable, "-m", "convcli", "blur", str(src), "-o", str(tmp_path / "o.png")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert r.stderr.count("\n") == 1 and r.stderr.startswith(f"convcli: error: {src}: "), r.stderr
    if edit == "deflate":
        assert "libtiff: ZIPDecode" in r.stderr  # libtiff's reason, in the one line


def test_a_tiff_libtiff_names_by_a_file_of_its_own_is_one_line(tmp_path: Path) -> None:
    """libtiff says 'tempfile.tif: Using code not yet in table.' of a garbled LZW strip (Pillow hands it
    the data under that name): a second stderr line, naming a file the user never gave."""
    import subprocess
    import sys

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(
        buf, "TIFF", compression="tiff_lzw")
    data = bytearray(buf.getvalue())
    data[8] ^= 0xFF
    src = tmp_path / "lzw.tif"
    src.write_bytes(bytes(data))
    r = subprocess.run([sys.executable, "-m", "convcli", "blur", str(src), "-o", str(tmp_path / "o.png")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
    assert "libtiff: Using code not yet in table" in r.stderr and "tempfile" not in r.stderr


@pytest.mark.parametrize(("name", "pixels", "colour_type", "extra"), _short_cases())
def test_raw_size_is_what_the_rows_inflate_to(name: str, pixels: np.ndarray, colour_type: int,
                                              extra: dict[str, Any]) -> None:
    """raw_size against the rows png_by_hand wrote (a filter byte and the packed samples per row, per
    Adam7 pass), for every layout the short-data check meets."""
    data = png_by_hand(pixels, colour_type, **extra)
    h, w = pixels.shape[:2]
    samples = 1 if pixels.ndim == 2 else pixels.shape[2]
    at = data.index(b"IDAT") - 4
    (length,) = struct.unpack(">I", data[at:at + 4])
    inflated = zlib.decompress(data[at + 8:at + 8 + length])
    bits = samples * extra.get("depth", 8)
    assert raw_size(w, h, bits, int(extra.get("interlace", False))) == len(inflated)


def _apng_frames() -> list[Image.Image]:
    """Four frames that differ in a corner only after the first: Pillow stores frames 1.. as the
    rectangle that changed (an fcTL smaller than the canvas)."""
    rng = np.random.default_rng(9)
    base = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    frames = [base]
    for i in range(1, 4):
        f = frames[-1].copy()
        f[5 + i:25 + i, 10:30 + i] = rng.integers(0, 256, (20, 20 + i, 3), dtype=np.uint8)
        frames.append(f)
    return [Image.fromarray(f) for f in frames]


def _cut_frame(png: bytes, frame: int, keep: float) -> bytes:
    """``png`` with the image data of ``frame`` (Pillow's numbering) holding only the first ``keep``
    of its inflated rows, recompressed whole: every chunk and CRC right, the stream ends early."""
    chunks, pos = [], 8
    while pos < len(png):
        (n,) = struct.unpack(">I", png[pos:pos + 4])
        chunks.append([png[pos + 4:pos + 8], png[pos + 8:pos + 8 + n]])
        pos += 12 + n
    groups: list[list[int]] = []  # chunk indices of each frame's data
    default = next(i for i, c in enumerate(chunks) if c[0] in (b"fcTL", b"IDAT"))
    for i, (kind, _) in enumerate(chunks):
        if kind == b"IDAT":
            if not groups:
                groups.append([])
            groups[0].append(i)
        elif kind == b"fdAT":
            groups[-1].append(i)
        elif kind == b"fcTL" and i > default:
            groups.append([])
    idx = groups[frame]
    skip = 0 if chunks[idx[0]][0] == b"IDAT" else 4
    raw = zlib.decompress(b"".join(chunks[i][1][skip:] for i in idx))
    chunks[idx[0]][1] = chunks[idx[0]][1][:skip] + zlib.compress(raw[:int(len(raw) * keep)])
    chunks = [c for i, c in enumerate(chunks) if i not in idx[1:]]
    return png[:8] + b"".join(_png_chunk(kind, body) for kind, body in chunks)


@pytest.mark.parametrize("default_image", [False, True])
def test_an_apng_frame_whose_data_ends_early_is_refused(tmp_path: Path, default_image: bool) -> None:
    """Pillow keeps the previous frame's rows below where a frame's fdAT data ends, without a word:
    0.3 wrote such an animation, a frame half stale, with exit status 0."""
    frames = _apng_frames()
    buf = io.BytesIO()
    frames[0].save(buf, "PNG", save_all=True, append_images=frames[1:], duration=50,
                   default_image=default_image)  # True: the first image is shown by viewers without APNG
    whole = buf.getvalue()
    with Image.open(io.BytesIO(whole)) as im:
        count = im.n_frames
        assert count == 4 and im.info.get("default_image", False) == default_image
    out = tmp_path / "out.png"
    src = tmp_path / "anim.png"
    src.write_bytes(whole)
    r = run("blur", str(src), "-o", str(out), "--json")
    assert r.exit_code == 0, r.stderr
    for frame in range(count):
        for keep in (0.4, 0.95):
            src.write_bytes(_cut_frame(whole, frame, keep))
            r = run("blur", str(src), "-o", str(out), "--json")
            assert r.exit_code == 1, (frame, keep)
            (rec,) = [json.loads(line) for line in r.stdout.splitlines()]
            assert "end before the last row" in rec["error"], rec["error"]
            assert r.stderr.count("\n") == 1
    assert read_image(out).color.shape == (40, 50, 3)  # the whole file's output, never replaced


# --------------------------------------------------------------------------- junk Pillow would crawl


def _structured_files() -> dict[str, bytes]:
    """JPEG, GIF and PNM files as encoders write them, with the parts the walks step over: EXIF and a
    large ICC profile (APP segments), comments, an animation's extensions, a local colour table."""
    rng = np.random.default_rng(8)
    rgb = Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8))
    out: dict[str, bytes] = {}
    for name, params in (("baseline", {}), ("progressive", {"progressive": True}),
                         ("icc", {"icc_profile": bytes(200_000), "exif": Image.Exif().tobytes()}),
                         ("comment", {"comment": b"made by hand"})):
        buf = io.BytesIO()
        rgb.save(buf, "JPEG", **params)
        out[f"jpeg-{name}"] = buf.getvalue()
    frames = [rgb.quantize(32 + i) for i in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0, comment=b"hi")
    out["gif-animated"] = buf.getvalue()
    buf = io.BytesIO()
    rgb.convert("L").save(buf, "PPM")
    out["pgm"] = buf.getvalue()
    out["pgm-comments"] = b"P5\n# one\n# two\n 56 40\n255\n" + rgb.convert("L").tobytes()
    out["ppm-ascii"] = b"P3\n2 1\n255\n1 2 3 4 5 6\n"
    return out


@pytest.mark.parametrize("name", list(_structured_files()))
def test_the_structure_walks_pass_what_encoders_write(name: str) -> None:
    """check_structure steps through every marker, block and header Pillow's encoders write (and a
    hand-written commented PGM), and the file then reads as Pillow reads it."""
    from convcli.io.structure import check_structure

    data = _structured_files()[name]
    fp = io.BytesIO(data)
    check_structure(fp, data[:64])
    assert fp.tell() == 0
    img = read_image(data)
    with Image.open(io.BytesIO(data)) as im:
        want = np.asarray(im.convert("RGB" if img.header.channels == 3 else "L"), dtype=np.float32)
    np.testing.assert_array_equal(img.color[..., 0] if want.ndim == 2 else img.color, want)


@pytest.mark.parametrize(("head", "words"), [
    (b"\xff\xd8\xff", "corrupt JPEG data (no marker)"),
    (b"\xff\xd8\xff\xff", "corrupt JPEG data (fill bytes)"),  # then 0xFF, not zeros: see below
    (b"P5 1" + b" " * 40 + b"x", "corrupt PNM header"),  # a regex that backtracked for minutes
    (b"GIF89a\x10\x00\x10\x00\x00\x00\x00", "corrupt GIF data (no block)"),
    (b"P5\n#", "corrupt PNM header"),
])
def test_a_signature_before_megabytes_of_zeros_is_refused_at_once(tmp_path: Path, head: bytes,
                                                                  words: str) -> None:
    """A valid signature, then zeros: Pillow stepped over them one byte at a time in Python (~10 MB/s;
    a 2 GB sparse file hung convcli for minutes). Refused after 1 MiB, one line, exit 1."""
    src = tmp_path / "zeros.img"
    filler = b"\xff" if words.endswith("(fill bytes)") else b"\x00"
    src.write_bytes(head + filler * (3 << 20))
    with pytest.raises(InputError, match=re.escape(words)):
        read_header(str(src))
    r = run("blur", str(src), "-o", str(tmp_path / "o.png"))
    assert r.exit_code == 1 and words in r.stderr and r.stderr.count("\n") == 1


def test_a_few_stray_bytes_between_jpeg_markers_are_left_to_pillow() -> None:
    """libjpeg and Pillow step over stray bytes before a marker ('extraneous bytes'); so does the walk,
    up to its 1 MiB: such a file still reads."""
    data = encoded("JPEG")
    at = data.index(b"\xff\xdb")  # before the quantisation table
    damaged = data[:at] + b"\x00\x17junk" + data[at:]
    img = read_image(damaged)
    assert img.color.shape[:2] == (48, 64)
    filled = data[:at] + b"\xff" * 1000 + data[at:]  # fill bytes before a marker: allowed, any few
    assert read_image(filled).color.shape[:2] == (48, 64)


def test_a_decoder_out_of_memory_is_not_called_a_corrupt_file() -> None:
    """Under ulimit -v an 80,000,000x1 PNG failed as 'truncated or corrupt PNG data (out of memory when
    reading image file)', blaming a good file: Pillow's allocation failure is a MemoryError, which a
    batch reports as 'not enough memory' (exit 1) with the way to refuse such sizes up front."""
    failure = "truncated or corrupt PNG data"
    with pytest.raises(MemoryError, match="out of memory"), decode._decoding("PNG", failure):
        raise OSError("out of memory when reading image file")
    with pytest.raises(InputError, match=failure), decode._decoding("PNG", failure):
        raise OSError("image file is truncated")


def _palette_png(plte: bytes | None, index: int) -> bytes:
    w = h = 4
    raw = b"".join(b"\x00" + bytes([index] * w) for _ in range(h))
    chunks = [(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0))]
    if plte is not None:
        chunks.append((b"PLTE", plte))
    chunks += [(b"IDAT", zlib.compress(raw)), (b"IEND", b"")]
    body = [struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
            for t, d in chunks]
    return b"\x89PNG\r\n\x1a\n" + b"".join(body)


@pytest.mark.parametrize(("plte", "index", "words"), [
    (None, 128, "a palette image without a palette (PLTE chunk)"),
    (b"\xff\x00\x00", 128, "palette index 128 used, past the palette's 1 entry"),
    (b"\xff\x00\x00\x00\xff\x00", 2, "palette index 2 used, past the palette's 2 entries"),
])
def test_a_png_palette_missing_or_too_short_is_refused(plte: bytes | None, index: int, words: str) -> None:
    """A palette PNG without PLTE, or using an index past its end, came out black, exit 0 (libpng
    refuses both; so does the PNG spec)."""
    with pytest.raises(InputError, match=re.escape(words)):
        read_image(_palette_png(plte, index))


def test_a_png_palette_used_within_its_entries_reads_as_pillow_reads_it() -> None:
    data = _palette_png(b"\xff\x00\x00\x00\xff\x00\x00\x00\xff", 2)
    got = read_image(data).color
    assert got.shape == (4, 4, 3) and np.all(got == np.array([0, 0, 255], np.float32))


def test_jpeg_segments_of_length_0_or_too_many_are_refused_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Segments of length 0 made the walk read 64 KiB at each (a 20 MB file: 68 s, 768 MB); empty
    APP1 segments by the million took Pillow 27 s and 754 MB. A length under 2 is no segment, and
    more segments than any encoder writes (MAX_PARTS, lowered here) are refused."""
    from convcli.io import structure

    data = encoded("JPEG")
    zero = data[:2] + b"\xff\xe1\x00\x00" * 1000 + data[2:]
    with pytest.raises(InputError, match="a segment of length 0 at offset 2"):
        read_image(zero)
    monkeypatch.setattr(structure, "MAX_PARTS", 100)
    many = data[:2] + b"\xff\xe1\x00\x02" * 101 + data[2:]
    with pytest.raises(InputError, match="more than 100 segments"):
        read_image(many)
    assert read_image(data[:2] + b"\xff\xe1\x00\x02" * 50 + data[2:]).color.shape[:2] == (48, 64)


def test_a_gif_extension_of_too_many_sub_blocks_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 32 MB comment in 1-byte sub-blocks took Pillow 1.5 GB; the walk bounds an extension's
    sub-blocks (MAX_PARTS, lowered here), not an image's (bounded by its size)."""
    from convcli.io import structure

    monkeypatch.setattr(structure, "MAX_PARTS", 100)
    frame = Image.fromarray(np.zeros((8, 8), np.uint8)).convert("P")
    buf = io.BytesIO()
    frame.save(buf, "GIF")
    plain = buf.getvalue()
    comment = b"!\xfe" + b"\x01x" * 101 + b"\x00"
    with pytest.raises(InputError, match="an extension of more than 100 sub-blocks"):
        read_image(plain[:-1] + comment + b";")
    assert read_image(plain[:-1] + b"!\xfe" + b"\x01x" * 50 + b"\x00;").color.shape[:2] == (8, 8)


def test_every_frame_of_a_palette_apng_is_checked_against_its_palette(tmp_path: Path) -> None:
    """The palette check ran on the one-frame path only: an APNG whose second frame uses index 9 of
    a 2-entry palette was written with black pixels, exit 0."""
    w = h = 4

    def idat(ix: int) -> bytes:
        return zlib.compress(b"".join(b"\x00" + bytes([ix] * w) for _ in range(h)))

    def fctl(seq: int) -> bytes:
        return struct.pack(">IIIIIHHBB", seq, w, h, 0, 0, 1, 10, 0, 0)

    chunks = [(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0)), (b"acTL", struct.pack(">II", 2, 0)),
              (b"PLTE", b"\xff\x00\x00\x00\xff\x00"), (b"fcTL", fctl(0)), (b"IDAT", idat(1)),
              (b"fcTL", fctl(1)), (b"fdAT", struct.pack(">I", 2) + idat(9)), (b"IEND", b"")]
    body = [struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
            for t, d in chunks]
    src = tmp_path / "bad.png"
    src.write_bytes(b"\x89PNG\r\n\x1a\n" + b"".join(body))
    r = run("blur", str(src), "-o", str(tmp_path / "o.png"))
    assert r.exit_code == 1 and "palette index 9 used, past the palette's 2 entries" in r.stderr
    assert not (tmp_path / "o.png").exists()
