"""Metadata kept unless --strip: EXIF (orientation 1 once applied), DPI, XMP, ICC, PNG text, comment.

Files are made with Pillow, filtered by the CLI and read back with Pillow (and ImageMagick's
identify where installed); nothing here reads them with convcli's own code.
"""

from __future__ import annotations

import io
import json
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageCms
from PIL.PngImagePlugin import PngInfo

from convcli.cli.app import cli
from convcli.io.metadata import Metadata, png_chunks, reset_orientation
from convcli.io.png import encode_png

XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><dc:title>convcli-test</dc:title></rdf:RDF></x:xmpmeta>'
MODEL = "TestCam 3000"


def run(*args: object) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def notes(stdout: str) -> list[str]:
    return json.loads(stdout.strip().splitlines()[-1])["notes"]


def _text(v: str | bytes) -> str:
    return v.decode() if isinstance(v, bytes) else v


def srgb_icc() -> bytes:
    return SRGB


SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def make_jpeg(path: Path, size: tuple[int, int] = (40, 24)) -> None:
    """A JPEG stored on its side (orientation 6), with a camera model, DPI 300x150, comment, XMP, ICC."""
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x0110] = MODEL
    rgb = np.zeros((size[1], size[0], 3), np.uint8)
    rgb[:, : size[0] // 2] = (200, 40, 40)
    Image.fromarray(rgb).save(path, exif=exif, dpi=(300, 150), comment=b"a comment", xmp=XMP,
                              icc_profile=srgb_icc(), quality=95)


def make_png(path: Path, size: tuple[int, int] = (40, 24)) -> None:
    info = PngInfo()
    info.add_text("Title", "a test")
    info.add_itxt("Description", "caf\u00e9 \u2615")
    info.add_itxt("XML:com.adobe.xmp", XMP.decode())
    Image.new("RGB", size, (10, 120, 200)).save(path, pnginfo=info, dpi=(72, 96))


def test_jpeg_to_jpeg_keeps_everything(tmp_path: Path) -> None:
    src, out = tmp_path / "photo.jpg", tmp_path / "out.jpg"
    make_jpeg(src)
    code, stdout, stderr = run("blur", src, "-o", out, "--json")
    assert code == 0, stderr
    assert "metadata kept: EXIF, DPI, XMP, comment, ICC" in notes(stdout)
    with Image.open(out) as im:
        assert im.size == (24, 40)  # turned upright
        exif = im.getexif()
        assert exif[0x0112] == 1
        assert exif[0x0110] == MODEL
        assert im.info["dpi"] == pytest.approx((150, 300))  # axes swapped with the pixels
        assert im.info["comment"] == b"a comment"
        assert b"convcli-test" in im.info["xmp"]
        assert im.info["icc_profile"] == srgb_icc()


@pytest.mark.parametrize("size", [(40, 24), (400, 240)], ids=["pillow-writer", "threaded-writer"])
def test_jpeg_to_png_both_writers(tmp_path: Path, size: tuple[int, int]) -> None:
    src, out = tmp_path / "photo.jpg", tmp_path / "out.png"
    make_jpeg(src, size)
    code, stdout, stderr = run("blur", src, "-o", out, "--json")
    assert code == 0, stderr
    assert "metadata kept: EXIF, DPI, XMP, comment, ICC" in notes(stdout)
    with Image.open(out) as im:
        im.load()
        assert im.getexif()[0x0112] == 1 and im.getexif()[0x0110] == MODEL
        assert im.info["dpi"] == pytest.approx((150, 300), abs=0.05)
        assert "convcli-test" in _text(im.info["xmp"])
        assert im.text["Comment"] == "a comment"
        assert im.info["icc_profile"] == srgb_icc()


def test_png_text_dpi_xmp_kept_and_dropped_for_bmp(tmp_path: Path) -> None:
    src = tmp_path / "in.png"
    make_png(src)
    out = tmp_path / "out.png"
    code, stdout, stderr = run("blur", src, "-o", out, "--json")
    assert code == 0, stderr
    assert "metadata kept: DPI, XMP, text chunks" in notes(stdout)
    with Image.open(out) as im:
        im.load()
        assert im.text["Title"] == "a test"
        assert im.text["Description"] == "caf\u00e9 \u2615"
        assert "convcli-test" in _text(im.info["xmp"])
        assert im.info["dpi"] == pytest.approx((72, 96), abs=0.05)
    bmp = tmp_path / "out.bmp"
    code, stdout, stderr = run("blur", src, "-o", bmp, "--json")
    assert code == 0, stderr
    assert "metadata kept: DPI" in notes(stdout)
    assert "metadata dropped: XMP, text chunks (BMP cannot hold them)" in notes(stdout)
    with Image.open(bmp) as im:
        assert im.info["dpi"] == pytest.approx((72, 96), abs=0.1)


def test_webp_and_tiff(tmp_path: Path) -> None:
    src = tmp_path / "photo.jpg"
    make_jpeg(src)
    for name in ("out.webp", "out.tif"):
        code, _, stderr = run("blur", src, "-o", tmp_path / name, "-q")
        assert code == 0, stderr
        with Image.open(tmp_path / name) as im:
            assert im.getexif()[0x0110] == MODEL
            assert im.getexif().get(0x0112, 1) == 1
            assert "convcli-test" in _text(im.info["xmp"])


@pytest.mark.parametrize("name", ["out.jpg", "out.png", "out.webp"])
def test_strip_removes_everything(tmp_path: Path, name: str) -> None:
    src = tmp_path / "photo.jpg"
    make_jpeg(src)
    out = tmp_path / name
    code, stdout, stderr = run("blur", src, "-o", out, "--strip", "--json")
    assert code == 0, stderr
    assert "metadata stripped (--strip): EXIF, DPI, XMP, comment, ICC" in notes(stdout)
    with Image.open(out) as im:
        im.load()
        assert im.size == (24, 40)  # still upright
        assert len(im.getexif()) == 0
        for key in ("xmp", "comment", "icc_profile", "exif"):
            assert key not in im.info
        assert im.info.get("dpi", (72, 72)) not in ((150, 300), (300, 150))
        assert "Comment" not in getattr(im, "text", {})


def test_gif_keeps_comment_and_animations_keep_metadata(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (20, 16), (40 * t, 100, 200)) for t in range(3)]
    src = tmp_path / "a.png"
    info = PngInfo()
    info.add_text("Title", "anim")
    frames[0].save(src, save_all=True, append_images=frames[1:], duration=50, pnginfo=info, dpi=(120, 120))
    out = tmp_path / "o.png"
    code, stdout, stderr = run("blur", src, "-o", out, "--json")
    assert code == 0, stderr
    assert "metadata kept: DPI, text chunks" in notes(stdout)
    with Image.open(out) as im:
        assert im.n_frames == 3
        assert im.info["dpi"] == pytest.approx((120, 120), abs=0.05)
        assert im.info["Title"] == "anim"
    jpg = tmp_path / "c.jpg"
    make_jpeg(jpg)
    gif = tmp_path / "c.gif"
    code, stdout, stderr = run("blur", jpg, "-o", gif, "--json")
    assert code == 0, stderr
    assert "metadata dropped: EXIF, DPI, XMP (GIF cannot hold them)" in notes(stdout)
    with Image.open(gif) as im:
        assert im.info["comment"] == b"a comment"


def test_png_chunks_written_by_the_threaded_writer_read_by_pillow() -> None:
    meta = Metadata(exif=reset_orientation(_exif_bytes("<", 8)), dpi=(300.0, 200.0), xmp=XMP,
                    text=(("Author", "me"), ("Note", "\u00fcber \u2603")), comment=b"hi")
    data = encode_png(np.full((5, 6, 3), 7, np.uint8), None, chunks=png_chunks(meta))
    with Image.open(io.BytesIO(data)) as im:
        im.load()
        assert im.info["dpi"] == pytest.approx((300, 200), abs=0.05)
        assert im.getexif()[0x0112] == 1
        assert im.text["Author"] == "me" and im.text["Comment"] == "hi"
        assert im.text["Note"] == "\u00fcber \u2603"
        assert _text(im.info["xmp"]) == XMP.decode()
        np.testing.assert_array_equal(np.asarray(im), np.full((5, 6, 3), 7, np.uint8))


def _exif_bytes(end: str, orientation: int) -> bytes:
    """A hand-made TIFF block: IFD0 with Orientation (SHORT) and ImageWidth (LONG)."""
    order = b"II" if end == "<" else b"MM"
    head = order + struct.pack(end + "HI", 42, 8)
    entries = struct.pack(end + "HHI", 0x0100, 4, 1) + struct.pack(end + "I", 640)
    entries += struct.pack(end + "HHI", 0x0112, 3, 1) + struct.pack(end + "HH", orientation, 0)
    return head + struct.pack(end + "H", 2) + entries + struct.pack(end + "I", 0)


@pytest.mark.parametrize("end", ["<", ">"])
def test_reset_orientation_changes_only_that_value(end: str) -> None:
    before = _exif_bytes(end, 6)
    after = reset_orientation(before)
    assert after == _exif_bytes(end, 1)
    assert reset_orientation(b"junk") == b"junk"


@pytest.mark.skipif(shutil.which("identify") is None, reason="ImageMagick identify not installed")
def test_imagemagick_sees_orientation_and_model(tmp_path: Path) -> None:
    src, out = tmp_path / "photo.jpg", tmp_path / "out.jpg"
    make_jpeg(src)
    assert run("blur", src, "-o", out, "-q")[0] == 0
    shown = subprocess.run(["identify", "-format", "%[EXIF:Orientation] %[EXIF:Model] %c %wx%h", str(out)],
                           capture_output=True, text=True, check=True).stdout
    assert shown == f"1 {MODEL} a comment 24x40"


@pytest.mark.parametrize(("suffix", "key"), [(".jpg", "comment"), (".gif", "comment"), (".png", "Comment")])
def test_a_png_comment_is_the_comment_of_a_jpeg_or_gif(tmp_path: Path, suffix: str, key: str) -> None:
    """PNG's registered "Comment" keyword went nowhere in a JPEG or GIF ("text chunks dropped"):
    it is the file's comment, and comes back to PNG as one Comment chunk, in UTF-8."""
    src = tmp_path / "a.png"
    info = PngInfo()
    info.add_itxt("Comment", "café Ω")
    info.add_text("Author", "me")
    Image.new("RGB", (12, 10), (90, 120, 30)).save(src, pnginfo=info)
    out = tmp_path / f"o{suffix}"
    code, stdout, stderr = run("blur", src, "-o", out, "--json")
    assert code == 0, stderr
    assert any(n.startswith("metadata kept: ") and "comment" in n for n in notes(stdout))
    with Image.open(out) as im:
        im.load()
        assert _text(im.info[key]) == "café Ω"
        if suffix == ".png":
            assert im.info["Author"] == "me"
    back = tmp_path / "back.png"
    assert run("blur", out, "-o", back)[0] == 0
    with Image.open(back) as im:
        im.load()
        assert im.info["Comment"] == "café Ω"


def _phys(path: Path) -> tuple[int, int, int] | None:
    """A PNG's pHYs chunk as stored (x, y per unit, unit), read chunk by chunk."""
    data = path.read_bytes()
    pos = 8
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if kind == b"pHYs":
            return struct.unpack(">IIB", data[pos + 8 : pos + 17])
        pos += 12 + n
    return None


@pytest.mark.parametrize("out", ["png", "jpg", "tif"])
def test_a_tiffs_resolution_is_kept_and_an_untagged_one_is_not_made_up(tmp_path: Path, out: str) -> None:
    """A TIFF's 200 dpi (an IFDRational in Pillow, not an int or float) was dropped without a note; a
    TIFF with no resolution tags, which Pillow reports as (1, 1), became a '1 dpi' PNG/JPEG/BMP with
    the note 'metadata kept: DPI'."""
    pixels = np.full((30, 40, 3), 50, np.uint8)
    Image.fromarray(pixels).save(tmp_path / "dpi.tif", dpi=(200, 200))
    Image.fromarray(pixels).save(tmp_path / "none.tif")
    for name, dpi in (("dpi", 200.0), ("none", None)):
        dst = tmp_path / f"{name}.out.{out}"
        code, stdout, _ = run("blur", tmp_path / f"{name}.tif", "-o", dst, "--json")
        assert code == 0
        kept = any("DPI" in n and "kept" in n for n in json.loads(stdout)["notes"])
        assert kept == (dpi is not None), name
        if out == "png":
            want = None if dpi is None else (round(dpi / 0.0254),) * 2 + (1,)
            assert _phys(dst) == want, name
        else:
            with Image.open(dst) as im:  # a TIFF's own tag: Pillow reads an untagged TIFF as (1, 1)
                got = im.info.get("dpi") if out == "jpg" else im.tag_v2.get(282)
            want_dpi = None if dpi is None else dpi if out == "tif" else (dpi, dpi)
            assert (got is None if want_dpi is None else got == pytest.approx(want_dpi)), (name, got)


def test_a_tiff_with_one_resolution_tag_has_no_dpi(tmp_path: Path) -> None:
    """XResolution alone: Pillow puts 1 for the missing YResolution, which made a '300 x 1 dpi' file."""
    from PIL import TiffImagePlugin

    tags = TiffImagePlugin.ImageFileDirectory_v2()
    tags[282], tags[296] = 300, 2  # XResolution, ResolutionUnit inch; no YResolution
    Image.fromarray(np.full((30, 40, 3), 50, np.uint8)).save(tmp_path / "x.tif", tiffinfo=tags)
    code, stdout, _ = run("blur", tmp_path / "x.tif", "-o", tmp_path / "x.png", "--json")
    assert code == 0 and not any("DPI" in n for n in json.loads(stdout)["notes"])
    assert _phys(tmp_path / "x.png") is None


@pytest.mark.parametrize("out", ["out.tif", "out.png", "out.jpg", "out.webp"])
@pytest.mark.parametrize("src_name", ["junk.png", "junk.jpg"])
def test_an_exif_block_that_is_not_a_tiff_structure_is_dropped_with_a_note(tmp_path: Path, out: str,
                                                                           src_name: str) -> None:
    """Junk bytes under an EXIF marker made a TIFF output an internal error (Pillow's TIFF writer
    parses them: 'not a TIFF file'), and were copied as 'EXIF kept' into the other formats."""
    src = tmp_path / src_name
    Image.new("RGB", (8, 8), (9, 9, 9)).save(src, exif=b"Exif\0\0" + b"\x01\x02garbage-not-tiff" * 4)
    with Image.open(src) as im:
        assert b"garbage-not-tiff" in im.info["exif"]  # the input holds it, as EXIF
    code, stdout, stderr = run("filter", src, "-k", "sharpen", "-o", tmp_path / out, "--json")
    assert code == 0, stderr
    assert "metadata dropped: EXIF (unreadable in the input)" in notes(stdout)
    assert not any(n.startswith("metadata kept") and "EXIF" in n for n in notes(stdout))
    assert b"garbage-not-tiff" not in (tmp_path / out).read_bytes()


_XMP6 = (b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
         b'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
         b'xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6"/></rdf:RDF></x:xmpmeta>'
         b'<?xpacket end="w"?>')


@pytest.mark.parametrize("fmt", ["JPEG", "TIFF"])
def test_an_orientation_in_xmp_alone_is_applied_and_reset_in_the_xmp_kept(tmp_path: Path, fmt: str) -> None:
    """An orientation given in XMP only (no EXIF): a JPEG's pixels were turned but its XMP, kept, still
    said 6, so readers honouring it turned the output again; a TIFF was refused, 'decoded 48x64 but
    the header said 64x48', where --dry-run said ok. Reference: Pillow's ImageOps.exif_transpose."""
    from PIL import ImageOps

    rgb = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    src, out = tmp_path / f"x.{fmt.lower()}", tmp_path / "out.png"
    if fmt == "TIFF":
        Image.fromarray(rgb).save(src, tiffinfo={700: _XMP6})
    else:
        Image.fromarray(rgb).save(src, quality=95, xmp=_XMP6)
    with Image.open(src) as im:
        want = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    assert want.shape == (64, 48, 3)
    for dry in (["--dry-run"], []):
        code, stdout, stderr = run("filter", src, "-k", "identity", "-o", out, "--json", *dry)
        assert code == 0, stderr
        assert json.loads(stdout)["input_shape"] == [1, 3, 64, 48]
    with Image.open(out) as im:
        np.testing.assert_array_equal(np.asarray(im.convert("RGB")), want)
        xmp = im.info.get("XML:com.adobe.xmp") or im.info.get("xmp")
        assert 'tiff:Orientation="1"' in _text(xmp) and im.getexif().get(0x0112, 1) == 1


@pytest.mark.parametrize("size", [(8, 9), (1100, 1000)])  # Pillow's writer, and convcli's threaded one
def test_a_pngs_gamma_is_kept_in_png_and_said_dropped_elsewhere(tmp_path: Path,
                                                                size: tuple[int, int]) -> None:
    """gAMA was dropped with no note: viewers honouring it showed the output brighter or darker."""
    info = PngInfo()
    info.add(b"gAMA", struct.pack(">I", 45455))
    src = tmp_path / "g.png"
    rgb = np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(src, pnginfo=info)
    code, stdout, stderr = run("filter", src, "-k", "identity", "-o", tmp_path / "o.png", "--json")
    assert code == 0, stderr
    assert "metadata kept: gamma" in notes(stdout)
    with Image.open(tmp_path / "o.png") as im:
        assert im.info["gamma"] == pytest.approx(0.45455)
    code, stdout, stderr = run("filter", src, "-k", "identity", "-o", tmp_path / "o.jpg", "--json")
    assert code == 0 and "metadata dropped: gamma (JPEG cannot hold it)" in notes(stdout)


def _png_with_late_chunks(rgb: np.ndarray, chunks: list[tuple[bytes, bytes]]) -> bytes:
    """A PNG with these chunks between its image data and IEND, where ImageMagick writes EXIF and text."""
    import zlib

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    data = buf.getvalue()
    iend = data.rindex(b"IEND") - 4
    late = b"".join(struct.pack(">I", len(body)) + kind + body
                    + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF) for kind, body in chunks)
    return data[:iend] + late + data[iend:]


@pytest.mark.parametrize("size", [(48, 64), (1000, 1100)])  # decoded whole, and row by row on a thread
def test_exif_and_text_after_the_image_data_are_read(tmp_path: Path, size: tuple[int, int]) -> None:
    """ImageMagick writes a PNG's eXIf and text after IDAT, which Pillow reads only as it loads the
    pixels: the orientation was ignored (the output on its side) and the EXIF and text dropped
    without a note. Reference: Pillow's ImageOps.exif_transpose on the loaded file."""
    import zlib

    from PIL import ImageOps

    rgb = np.random.default_rng(1).integers(0, 256, (*size, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6 if size == (48, 64) else 1
    exif[0x010F] = "LateCam"
    exif_body = exif.tobytes().removeprefix(b"Exif\x00\x00")
    src = tmp_path / "late.png"
    src.write_bytes(_png_with_late_chunks(rgb, [
        (b"tEXt", b"Comment\x00late words"), (b"eXIf", exif_body),
        (b"zTXt", b"Software\x00\x00" + zlib.compress(b"ImageMagick")),
        (b"iTXt", b"Title\x00\x00\x00\x00\x00caf\xc3\xa9")]))
    with Image.open(src) as im:
        want = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    out = tmp_path / "out.png"
    code, stdout, stderr = run("filter", src, "-k", "identity", "-o", out, "--json")
    assert code == 0, stderr
    assert "metadata kept: EXIF, text chunks, comment" in notes(stdout)
    with Image.open(out) as im:
        np.testing.assert_array_equal(np.asarray(im.convert("RGB")), want)
        assert im.getexif().get(0x0112, 1) == 1 and im.getexif().get(0x010F) == "LateCam"
        texts = (im.info["Comment"], im.info["Software"], im.info["Title"])
        assert texts == ("late words", "ImageMagick", "café")


def test_late_text_chunks_within_pillows_limits_only(tmp_path: Path) -> None:
    """The header read inflated every late zTXt and kept it: 1,500 chunks of 1 MiB of zeros (a 1.5 MB
    file) took 1.6 GB with --dry-run. Past Pillow's own limit on a PNG's text (64 MiB) the file is
    refused, as Pillow's load refuses it; within it, a large tEXt is kept whole."""
    import zlib

    rgb = np.zeros((6, 7, 3), np.uint8)
    zeros = zlib.compress(b"\0" * (1 << 20), 9)
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_with_late_chunks(rgb, [(b"zTXt", b"k%d\0\0" % i + zeros) for i in range(100)]))
    for dry in (["--dry-run"], []):
        code, _, stderr = run("filter", bomb, "-k", "identity", "-o", tmp_path / "o.png", *dry)
        assert code == 1 and "too much text in the PNG's chunks, over 64 MiB" in stderr
    big = tmp_path / "big.png"
    big.write_bytes(_png_with_late_chunks(rgb, [(b"tEXt", b"big\0" + b"a" * (2 << 20))]))
    code, stdout, stderr = run("filter", big, "-k", "identity", "-o", tmp_path / "o.png", "--json")
    assert code == 0, stderr
    with Image.open(tmp_path / "o.png") as im:
        assert im.info["big"] == "a" * (2 << 20)


def test_a_late_text_keyword_pillow_decodes_with_is_not_taken_for_it(tmp_path: Path) -> None:
    """A late tEXt 'interlace' went into Pillow's info before the decode, which read it as the Adam7
    flag: a valid PNG was refused as truncated."""
    rgb = np.random.default_rng(2).integers(0, 256, (6, 7, 3), dtype=np.uint8)
    src = tmp_path / "i.png"
    src.write_bytes(_png_with_late_chunks(rgb, [(b"tEXt", b"interlace\x001")]))
    code, _, stderr = run("filter", src, "-k", "identity", "-o", tmp_path / "o.png")
    assert code == 0, stderr
    with Image.open(tmp_path / "o.png") as im:
        np.testing.assert_array_equal(np.asarray(im), rgb)


def test_an_orientation_in_a_pngs_xmp_is_applied(tmp_path: Path) -> None:
    """README: an orientation given in XMP alone is applied, as exif_transpose does; a PNG's was not."""
    from PIL import ImageOps

    info = PngInfo()
    info.add_itxt("XML:com.adobe.xmp", _XMP6.decode())
    rgb = np.random.default_rng(3).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    src, out = tmp_path / "x.png", tmp_path / "o.png"
    Image.fromarray(rgb).save(src, pnginfo=info)
    with Image.open(src) as im:
        want = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    code, stdout, stderr = run("filter", src, "-k", "identity", "-o", out, "--json")
    assert code == 0, stderr
    with Image.open(out) as im:
        np.testing.assert_array_equal(np.asarray(im.convert("RGB")), want)
        assert 'tiff:Orientation="1"' in im.info["XML:com.adobe.xmp"]


def test_a_late_text_chunk_named_like_a_frame_field_is_no_crash(tmp_path: Path) -> None:
    """Pillow puts an APNG's late text in the last frame's info, beside its frame fields: a tEXt
    "disposal" = "x" ended in an internal error (int('x'))."""
    frames = [Image.fromarray(np.full((6, 7, 3), v, np.uint8)) for v in (10, 200)]
    buf = io.BytesIO()
    frames[0].save(buf, "PNG", save_all=True, append_images=frames[1:], duration=[100, 300])
    src = tmp_path / "a.png"
    data = buf.getvalue()
    iend = data.rindex(b"IEND") - 4
    import zlib

    body = b"tEXt" + b"disposal\x00x"
    src.write_bytes(data[:iend] + struct.pack(">I", len(body) - 4) + body
                    + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF) + data[iend:])
    code, stdout, stderr = run("filter", src, "-k", "identity", "-o", tmp_path / "o.png", "--json")
    assert code == 0, stderr
    with Image.open(tmp_path / "o.png") as im:
        assert im.n_frames == 2


def test_an_xmp_orientation_under_a_tiff_tag_of_1_is_reset_too(tmp_path: Path) -> None:
    """The TIFF's Orientation tag (1) wins over its XMP (6), as in Pillow: the output, upright with
    EXIF orientation 1, kept the XMP's 6 and showed on its side in readers honouring XMP."""
    from PIL import TiffImagePlugin

    tags = TiffImagePlugin.ImageFileDirectory_v2()
    tags[700] = _XMP6
    tags[274] = 1
    rgb = np.random.default_rng(4).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    src, out = tmp_path / "t.tif", tmp_path / "o.tif"
    Image.fromarray(rgb).save(src, tiffinfo=tags)
    code, stdout, stderr = run("filter", src, "-k", "identity", "-o", out, "--json")
    assert code == 0, stderr
    with Image.open(out) as im:
        np.testing.assert_array_equal(np.asarray(im), rgb)
        assert b'tiff:Orientation="1"' in im.tag_v2[700]
