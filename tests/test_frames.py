"""Every frame: animated GIF/APNG/WebP and multi-page TIFF filtered frame by frame.

The expected frames are Pillow's own composed frames of the input (what a viewer shows),
each filtered alone by the float64 reference (scipy.ndimage.correlate, tests/reference.py),
rounded half to even and clipped, as convcli's default ``--range clip`` does. Gaussian3's
weights are sixteenths, so float32 sums are exact and lossless outputs must match exactly.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from reference import ref_correlate_scipy

from convcli.cli.app import cli

K = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], dtype=np.float64) / 16
FILTER = ["filter", "-k", "gaussian3", "-p", "reflection"]
DURATIONS = [80, 160, 240]


def ref_filter(frame: np.ndarray) -> np.ndarray:
    """One frame (H, W, C) uint8 filtered by the float64 reference, as 8-bit pixels."""
    out = ref_correlate_scipy(frame.astype(np.float64), K, 1, 1, (1, 1, 1, 1), "reflection")
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def colour_frames(n: int = 3, h: int = 40, w: int = 52) -> list[np.ndarray]:
    """Different smooth colour content per frame (a moving pattern and a square)."""
    yy, xx = np.mgrid[0:h, 0:w]
    out = []
    for t in range(n):
        f = np.stack([(xx * 5 + t * 40) % 256, (yy * 6) % 256, ((xx + yy) * 3 + t * 70) % 256], -1)
        f[5 + 3 * t : 15 + 3 * t, 8 + 4 * t : 20 + 4 * t] = (250, 20 * t, 10)
        out.append(f.astype(np.uint8))
    return out


def grey_frames(n: int = 3, h: int = 36, w: int = 44) -> list[np.ndarray]:
    """Grey content (R = G = B): filtered, each frame keeps at most 256 colours, so GIF is exact."""
    yy, xx = np.mgrid[0:h, 0:w]
    out = []
    for t in range(n):
        g = ((xx * 7 + yy * 3 + t * 50) % 256).astype(np.uint8)
        g[4 + 4 * t : 14 + 4 * t, 6:18] = 255 - 60 * t
        out.append(np.repeat(g[..., None], 3, axis=2))
    return out


def shown_frames(path: Path, mode: str = "RGB") -> list[np.ndarray]:
    """The frames as Pillow composes them (disposal and blending applied)."""
    with Image.open(path) as im:
        frames = []
        for i in range(getattr(im, "n_frames", 1)):
            im.seek(i)
            frames.append(np.asarray(im.convert(mode)))
    return frames


def frame_facts(path: Path) -> tuple[int, list[int], object, list[object]]:
    """(n_frames, durations, loop, disposals) as Pillow reads them back."""
    with Image.open(path) as im:
        durations, disposals = [], []
        for i in range(im.n_frames):
            im.seek(i)
            im.load()
            durations.append(im.info.get("duration"))
            disposals.append(getattr(im, "disposal_method", im.info.get("disposal")))
        return im.n_frames, durations, im.info.get("loop"), disposals


def run(*args: object) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def report(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def save_animation(path: Path, frames: list[np.ndarray], **params: object) -> None:
    ims = [Image.fromarray(f) for f in frames]
    ims[0].save(path, save_all=True, append_images=ims[1:], **params)


# ----------------------------------------------------------------------------- per format


def test_gif_grey_frames_exact_with_durations_loop_disposal(tmp_path: Path) -> None:
    src, out = tmp_path / "anim.gif", tmp_path / "out.gif"
    save_animation(src, grey_frames(), duration=DURATIONS, loop=3, disposal=[1, 2, 1])
    code, stdout, stderr = run(*FILTER, src, "-o", out, "--json", "--no-dither")
    assert code == 0, stderr
    rec = report(stdout)
    assert rec["input_shape"] == [3, 3, 36, 44] and rec["output_shape"] == [3, 3, 36, 44]
    assert rec["stages"][0]["input_shape"] == [3, 3, 36, 44]
    assert "3 of 3 frames (animated GIF)" in rec["notes"]
    assert frame_facts(out) == (3, DURATIONS, 3, [1, 2, 1])
    # Every filtered grey frame has at most 256 colours: the palette holds them exactly.
    for want_in, got in zip(shown_frames(src), shown_frames(out), strict=True):
        np.testing.assert_array_equal(got, ref_filter(want_in))


@pytest.mark.parametrize("dither", ["--no-dither", "--dither"])
def test_gif_colour_frames_within_palette_tolerance(tmp_path: Path, dither: str) -> None:
    """More than 256 colours a frame: median cut, then each pixel mapped to a palette colour.

    Without dithering, Pillow maps a pixel to the palette colour nearest to the centre of its
    cell in a 5-6-5 bit colour cache (cells 8 x 4 x 8 levels), so the colour chosen is at most
    one cell diagonal, sqrt(8² + 4² + 8²) = 12, farther than the truly nearest palette colour
    (triangle inequality). Dithering spreads errors instead: only the mean error is bounded.
    """
    src, out = tmp_path / "anim.gif", tmp_path / "out.gif"
    save_animation(src, colour_frames(), duration=DURATIONS, loop=0)
    code, _, stderr = run(*FILTER, src, "-o", out, dither, "-q")
    assert code == 0, stderr
    assert frame_facts(out)[:3] == (3, DURATIONS, 0)
    with Image.open(out) as im:
        for i, want_in in enumerate(shown_frames(src)):
            im.seek(i)
            want = ref_filter(want_in).astype(np.float64)
            got = np.asarray(im.convert("RGB")).astype(np.float64)
            assert np.abs(got - want).mean() < 8
            if dither == "--no-dither":  # the colours the frame uses: a subset of its palette
                used = np.unique(got.reshape(-1, 3), axis=0)
                assert len(used) <= 256
                nearest = np.sqrt(((want[..., None, :] - used) ** 2).sum(-1)).min(-1)
                chosen = np.sqrt(((want - got) ** 2).sum(-1))
                assert (chosen <= nearest + 12).all()


def test_apng_partial_frames_composed_exact(tmp_path: Path) -> None:
    """Pillow stores later APNG frames as changed rectangles; convcli filters the composed canvas."""
    frames = colour_frames()
    frames[1] = frames[0].copy()
    frames[1][10:20, 10:30] = (0, 200, 90)  # a partial change: Pillow writes only that rectangle
    rgba = [np.dstack([f, np.full(f.shape[:2], 255, np.uint8)]) for f in frames]
    src, out = tmp_path / "anim.png", tmp_path / "out.png"
    save_animation(src, rgba, duration=DURATIONS, loop=2, disposal=[0, 1, 0], blend=[0, 1, 0])
    code, stdout, stderr = run(*FILTER, src, "-o", out, "--json")
    assert code == 0, stderr
    assert report(stdout)["output_shape"] == [3, 3, 40, 52]
    assert frame_facts(out) == (3, DURATIONS, 2, [0, 1, 0])
    for want_in, got in zip(shown_frames(src, "RGBA"), shown_frames(out, "RGBA"), strict=True):
        np.testing.assert_array_equal(got[..., :3], ref_filter(want_in[..., :3]))
        assert (got[..., 3] == 255).all()


def test_webp_lossless_at_quality_100_exact(tmp_path: Path) -> None:
    src, out = tmp_path / "anim.webp", tmp_path / "out.webp"
    save_animation(src, colour_frames(), duration=DURATIONS, loop=4, lossless=True)
    code, _, stderr = run(*FILTER, src, "-o", out, "--quality", "100", "-q")
    assert code == 0, stderr
    n, durations, loop, _ = frame_facts(out)
    assert (n, durations, loop) == (3, DURATIONS, 4)
    for want_in, got in zip(shown_frames(src), shown_frames(out), strict=True):
        np.testing.assert_array_equal(got, ref_filter(want_in))


def test_multipage_tiff_exact(tmp_path: Path) -> None:
    src, out = tmp_path / "pages.tif", tmp_path / "out.tif"
    save_animation(src, colour_frames(4))
    code, stdout, stderr = run(*FILTER, src, "-o", out, "--json")
    assert code == 0, stderr
    assert report(stdout)["input_shape"] == [4, 3, 40, 52]
    assert "4 of 4 frames (multi-page TIFF)" in report(stdout)["notes"]
    for want_in, got in zip(shown_frames(src), shown_frames(out), strict=True):
        np.testing.assert_array_equal(got, ref_filter(want_in))


@pytest.mark.parametrize("first_mode", ["RGB", "L", "P"])
def test_a_16_bit_page_after_an_8_bit_one_is_refused_not_clipped(tmp_path: Path, first_mode: str) -> None:
    """Pillow's I;16 -> RGB conversion clips at 255: the gradient page would come out 0/255 with
    the report saying nothing was clipped. Refused as the other order is (16-bit first, 8-bit after)."""
    src, out = tmp_path / "pages.tif", tmp_path / "out.tif"
    gradient = np.linspace(0, 65535, 30).astype(np.uint16).reshape(5, 6)
    Image.new(first_mode, (6, 5), 7).save(src, save_all=True, append_images=[Image.fromarray(gradient)])
    code, _, stderr = run(*FILTER, src, "-o", out)
    assert code == 1
    assert stderr.strip().endswith(f"frame 1 is mode I;16, not {first_mode} like the first (--frames first "
                                   "filters the first alone)")
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["pages.tif"]


@pytest.mark.parametrize("orientation", [6, 8, 3])
def test_a_multipage_tiff_turned_by_its_orientation_tag_is_filtered_upright(tmp_path: Path,
                                                                           orientation: int) -> None:
    """Pillow turns a TIFF page's size by its Orientation tag (5-8), not its tiles: every page of a
    rotated multi-page TIFF was refused as 'frame 0 is 40x60, not 40x60 like the first'."""
    src, out = tmp_path / "pages.tif", tmp_path / "out.tif"
    pages = colour_frames(3)
    exif = Image.Exif()
    exif[274] = orientation
    ims = [Image.fromarray(p) for p in pages]
    ims[0].save(src, save_all=True, append_images=ims[1:], exif=exif)
    code, stdout, stderr = run(*FILTER, src, "-o", out, "--json")
    assert code == 0, stderr
    quarter_turns = {6: -1, 8: 1, 3: 2}[orientation]  # counter-clockwise, as np.rot90 counts them
    for page, got in zip(pages, shown_frames(out), strict=True):
        np.testing.assert_array_equal(got, ref_filter(np.rot90(page, quarter_turns)))


def _tiff_rgb_pages(pages: list[np.ndarray]) -> bytes:
    """An uncompressed little-endian TIFF of (H, W, 3) uint8 or uint16 pages, one strip each (Pillow
    writes no 16-bit RGB)."""
    import struct

    out = bytearray(b"II*\x00" + struct.pack("<I", 0))
    link = 4  # where the offset of the next IFD goes
    for page in pages:
        height, width, _ = page.shape
        bits = page.dtype.itemsize * 8
        pixels = page.astype(f"<u{page.dtype.itemsize}").tobytes()
        bits_at = len(out)
        out += struct.pack("<3H", bits, bits, bits)
        data_at = len(out)
        out += pixels
        if len(out) % 2:
            out += b"\x00"
        struct.pack_into("<I", out, link, len(out))
        tags = [(256, 3, 1, width), (257, 3, 1, height), (258, 3, 3, bits_at), (259, 3, 1, 1), (262, 3, 1, 2),
                (273, 4, 1, data_at), (277, 3, 1, 3), (278, 3, 1, height), (279, 4, 1, len(pixels)),
                (284, 3, 1, 1)]
        out += struct.pack("<H", len(tags))
        for tag, kind, count, value in tags:
            out += (struct.pack("<HHIHH", tag, kind, count, value, 0) if kind == 3 and count == 1
                    else struct.pack("<HHII", tag, kind, count, value))
        link = len(out)
        out += struct.pack("<I", 0)
    return bytes(out)


def test_a_16_bit_rgb_page_after_an_8_bit_one_is_refused(tmp_path: Path) -> None:
    """Pillow reads a 16-bit RGB TIFF page as 8-bit RGB, the same mode as an 8-bit page: after an 8-bit
    first page it was cut to 8 bits with no note (a single 16-bit page gets '16-bit RGB read as 8-bit')."""
    rng = np.random.default_rng(0)
    p8 = rng.integers(0, 256, (5, 6, 3), dtype=np.uint8)
    p16 = rng.integers(0, 65536, (5, 6, 3), dtype=np.uint16)
    src, out = tmp_path / "pages.tif", tmp_path / "out.tif"
    src.write_bytes(_tiff_rgb_pages([p8, p16]))
    with Image.open(src) as im:  # the file is what it says: Pillow reads both pages
        im.seek(1)
        assert im.size == (6, 5)
    code, _, stderr = run(*FILTER, src, "-o", out)
    assert code == 1 and stderr.strip().endswith("frame 1 is 16-bit, not 8-bit like the first "
                                                 "(--frames first filters the first alone)")
    assert not out.exists()
    src.write_bytes(_tiff_rgb_pages([p16, p8]))  # 16-bit first: read as 8-bit, and the report says so
    code, stdout, stderr = run(*FILTER, src, "-o", out, "--json")
    assert code == 0, stderr
    assert any(note.startswith("16-bit RGB read as 8-bit") for note in report(stdout)["notes"])


def test_8_bit_pages_of_other_modes_are_converted_to_the_first_pages_mode(tmp_path: Path) -> None:
    src, out = tmp_path / "pages.tif", tmp_path / "out.tif"
    pages = [Image.new("L", (52, 40), 9), Image.new("CMYK", (52, 40), (0, 0, 0, 0))]
    Image.fromarray(colour_frames(1)[0]).save(src, save_all=True, append_images=pages)
    code, stdout, stderr = run(*FILTER, src, "-o", out, "--json")
    assert code == 0, stderr
    assert report(stdout)["input_shape"] == [3, 3, 40, 52]
    shown = [np.asarray(Image.open(src).convert("RGB"))]
    for i in (1, 2):
        with Image.open(src) as im:
            im.seek(i)
            shown.append(np.asarray(im.convert("RGB")))
    for want_in, got in zip(shown, shown_frames(out), strict=True):
        np.testing.assert_array_equal(got, ref_filter(want_in))


def test_gif_to_apng_and_transparency_kept_as_one_bit(tmp_path: Path) -> None:
    frames = grey_frames()
    rgba = []
    for t, f in enumerate(frames):
        a = np.full(f.shape[:2], 255, np.uint8)
        a[:, : 8 + 4 * t] = 0  # a transparent band that grows
        rgba.append(np.dstack([f, a]))
    src = tmp_path / "t.png"
    save_animation(src, rgba, duration=DURATIONS, loop=0, disposal=1, blend=0)
    gif = tmp_path / "t.gif"
    code, _, stderr = run(*FILTER, src, "-o", gif, "-q")
    assert code == 0, stderr
    for want_in, got in zip(shown_frames(src, "RGBA"), shown_frames(gif, "RGBA"), strict=True):
        alpha = ref_correlate_scipy(want_in[..., 3].astype(np.float64), K, 1, 1, (1, 1, 1, 1), "reflection")
        np.testing.assert_array_equal(got[..., 3] == 0, np.rint(alpha) < 128)


# ----------------------------------------------------------------------------- selection and plan


def test_frames_first_is_todays_single_frame_report(tmp_path: Path) -> None:
    src = tmp_path / "anim.gif"
    save_animation(src, grey_frames(), duration=DURATIONS)
    code, stdout, stderr = run(*FILTER, src, "-o", tmp_path / "o.png", "--frames", "first", "--json")
    assert code == 0, stderr
    rec = report(stdout)
    assert rec["input_shape"] == [1, 3, 36, 44]
    assert "first frame of 3 (animated GIF)" in rec["notes"]
    with Image.open(tmp_path / "o.png") as im:
        assert getattr(im, "n_frames", 1) == 1


def test_frames_n_writes_that_frame_as_a_still(tmp_path: Path) -> None:
    src = tmp_path / "anim.gif"
    save_animation(src, grey_frames(), duration=DURATIONS)
    out = tmp_path / "f2.png"
    code, stdout, stderr = run(*FILTER, src, "-o", out, "--frames", "2", "--json")
    assert code == 0, stderr
    assert report(stdout)["output_shape"] == [1, 3, 36, 44]
    with Image.open(out) as im:
        assert getattr(im, "n_frames", 1) == 1
        np.testing.assert_array_equal(np.asarray(im.convert("RGB")), ref_filter(shown_frames(src)[2]))


def test_frames_list_selects_in_order(tmp_path: Path) -> None:
    src, out = tmp_path / "anim.gif", tmp_path / "o.gif"
    save_animation(src, grey_frames(4), duration=[10, 20, 30, 40])
    code, _, stderr = run(*FILTER, src, "-o", out, "--frames", "3,1", "-q")
    assert code == 0, stderr
    shown = shown_frames(src)
    got = shown_frames(out)
    assert frame_facts(out)[1] == [40, 20]
    np.testing.assert_array_equal(got[0], ref_filter(shown[3]))
    np.testing.assert_array_equal(got[1], ref_filter(shown[1]))


def test_single_frame_format_with_several_frames_is_a_usage_error(tmp_path: Path) -> None:
    src = tmp_path / "anim.gif"
    save_animation(src, grey_frames(), duration=DURATIONS)
    out = tmp_path / "o.jpg"
    code, stdout, stderr = run(*FILTER, src, "-o", out)
    assert code == 2
    assert stdout == ""
    assert "JPEG holds one frame but 3 of 3 frames are selected" in stderr and "--frames first" in stderr
    assert not out.exists()


@pytest.mark.parametrize(("frames", "message"), [("5", "--frames 5: the image has 3 frames (0..2)"),
                                                 ("x", "give all, first or frame numbers")])
def test_bad_frames_refused(tmp_path: Path, frames: str, message: str) -> None:
    src = tmp_path / "anim.gif"
    save_animation(src, grey_frames(), duration=DURATIONS)
    code, _, stderr = run(*FILTER, src, "-o", tmp_path / "o.gif", "--frames", frames)
    assert code == 2
    assert message in stderr
    assert not (tmp_path / "o.gif").exists()


def test_dry_run_reports_t_from_the_header(tmp_path: Path) -> None:
    src = tmp_path / "pages.tif"
    save_animation(src, colour_frames(5))
    code, stdout, stderr = run(*FILTER, src, "--dry-run", "--json", "-o", tmp_path / "o.tif")
    assert code == 0, stderr
    rec = report(stdout)
    assert rec["input_shape"] == [5, 3, 40, 52] and rec["output_shape"] == [5, 3, 40, 52]
    assert not (tmp_path / "o.tif").exists()


def test_default_name_keeps_gif(tmp_path: Path) -> None:
    src = tmp_path / "anim.gif"
    save_animation(src, grey_frames(), duration=DURATIONS, loop=0)
    code, _, stderr = run("blur", src, "-q")
    assert code == 0, stderr
    assert frame_facts(tmp_path / "anim.blur.gif")[:3] == (3, DURATIONS, 0)


def test_single_frame_report_unchanged(tmp_path: Path) -> None:
    src = tmp_path / "one.png"
    Image.fromarray(colour_frames(1)[0]).save(src)
    code, stdout, _ = run(*FILTER, src, "-o", tmp_path / "o.png", "--json")
    assert code == 0
    rec = report(stdout)
    assert rec["input_shape"] == [1, 3, 40, 52] and rec["stages"][0]["output_shape"] == [1, 3, 40, 52]
    assert not any("frame" in n for n in rec["notes"])


@pytest.mark.skipif(shutil.which("identify") is None, reason="ImageMagick identify not installed")
def test_imagemagick_reads_the_gif(tmp_path: Path) -> None:
    src, out = tmp_path / "anim.gif", tmp_path / "o.gif"
    save_animation(src, colour_frames(), duration=DURATIONS, loop=0)
    assert run(*FILTER, src, "-o", out, "-q")[0] == 0
    lines = subprocess.run(["identify", "-format", "%T %wx%h\n", str(out)], capture_output=True, text=True,
                           check=True).stdout.split()
    assert lines == ["8", "52x40", "16", "52x40", "24", "52x40"]  # delays in 1/100 s


# ----------------------------------------------------------------------------- memory


def test_frames_are_streamed_memory_bounded(tmp_path: Path) -> None:
    """200 frames of 256x256 RGB: peak RSS grows far less than the frames would take.

    One frame is 192 KiB as 8-bit pixels and 768 KiB as float32; 200 of them 38 MiB and
    150 MiB. A warm-up run on a 2-frame GIF of the same size loads every module and pool
    first, so the growth measured is what the 200 frames add.
    """
    yy, xx = np.mgrid[0:256, 0:256]
    ims = [Image.fromarray(((xx + yy + t * 3) % 256).astype(np.uint8)) for t in range(200)]  # grey: fast
    ims[0].save(tmp_path / "long.gif", save_all=True, append_images=ims[1:], duration=40, loop=0)
    ims[0].save(tmp_path / "short.gif", save_all=True, append_images=ims[1:2], duration=40, loop=0)
    del ims
    script = textwrap.dedent(f"""
        import resource, sys
        from click.testing import CliRunner
        from convcli.cli.app import cli
        def peak():
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        args = ["filter", "-k", "gaussian3", "-j", "1", "--threads", "1", "-q"]
        r = CliRunner().invoke(cli, [*args, "{tmp_path / 'short.gif'}", "-o", "{tmp_path / 's.gif'}"])
        assert r.exit_code == 0, r.output
        before = peak()
        r = CliRunner().invoke(cli, [*args, "{tmp_path / 'long.gif'}", "-o", "{tmp_path / 'l.gif'}"])
        assert r.exit_code == 0, r.output
        print(peak() - before)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    growth_mib = float(done.stdout.strip())
    print(f"peak RSS growth over 200 frames: {growth_mib:.1f} MiB")
    assert growth_mib < 15, f"peak RSS grew {growth_mib:.1f} MiB"
    with Image.open(tmp_path / "l.gif") as im:
        assert im.n_frames == 200


def _netscape(path: Path) -> int | None:
    """A GIF's NETSCAPE2.0 loop count as stored, None without the block (the GIF plays once)."""
    data = path.read_bytes()
    at = data.find(b"NETSCAPE2.0")
    return None if at < 0 else int.from_bytes(data[at + 13 : at + 15], "little")


def _plays_stored(path: Path) -> int | None:
    """APNG's acTL num_plays or WebP's loop count as Pillow reads them (both: plays in all, 0 = for ever)."""
    with Image.open(path) as im:
        return im.info.get("loop")


@pytest.mark.parametrize(("gif_count", "plays"), [(None, 1), (0, 0), (1, 2), (3, 4)])
@pytest.mark.parametrize("other", ["png", "webp"])
def test_the_loop_count_means_the_same_plays_in_every_format(
        tmp_path: Path, gif_count: int | None, plays: int, other: str) -> None:
    """A GIF's NETSCAPE count is the repeats after the first play (none: plays once; 0: for ever), an
    APNG's num_plays and a WebP's loop count are the plays in all. 0.3 copied the number across: a
    play-once APNG became a GIF with a count of 1, which plays twice."""
    src = tmp_path / "in.gif"
    loop = {} if gif_count is None else {"loop": gif_count}
    save_animation(src, colour_frames(), duration=DURATIONS, **loop)
    assert _netscape(src) == gif_count  # the premise, as Pillow wrote it
    mid, back = tmp_path / f"mid.{other}", tmp_path / "back.gif"
    assert run("blur", src, "-o", mid, "-q")[0] == 0
    assert _plays_stored(mid) == plays
    assert run("blur", mid, "-o", back, "-q")[0] == 0
    assert _netscape(back) == gif_count


def test_the_largest_gif_loop_count_still_writes_a_webp(tmp_path: Path) -> None:
    """A GIF's count 65535 is 65536 plays, more than WebP's 16-bit count holds: 'ERROR assembling
    WebP', reported as an internal error. The most WebP can say is written instead."""
    src = tmp_path / "in.gif"
    save_animation(src, colour_frames(), duration=DURATIONS, loop=65535)
    out = tmp_path / "out.webp"
    assert run("blur", src, "-o", out, "-q")[0] == 0
    assert _plays_stored(out) == 65535


def test_a_webp_encoder_failure_on_an_animation_is_one_line(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """libwebp's animation encoder fails on some large frames ('WebPEncodingError: 6', its first
    partition overflowing), which Pillow raises as RuntimeError: it was an internal error."""
    from PIL import WebPImagePlugin

    def failing(*args: object, **kwargs: object) -> None:
        raise RuntimeError("ERROR adding frame. WebPEncodingError: 6.")

    monkeypatch.setattr(WebPImagePlugin, "_save_all", failing)
    monkeypatch.setitem(Image.SAVE_ALL, "WEBP", failing)
    src = tmp_path / "in.gif"
    save_animation(src, colour_frames(), duration=DURATIONS)
    code, _, err = run("blur", src, "-o", tmp_path / "out.webp")
    assert code == 1
    assert err == ("convcli: error: " + str(src) + ": cannot encode the frames as WEBP: "
                   "ERROR adding frame. WebPEncodingError: 6.\n")
    assert not (tmp_path / "out.webp").exists()


@pytest.mark.parametrize("frames", [[], ["--frames", "1"], ["--frames", "0,1"]])
def test_direction_out_with_several_frames_is_refused_not_skipped(tmp_path: Path, frames: list[str]) -> None:
    """The frame-by-frame path wrote no --direction-out file and said nothing (exit 0), as --montage
    would have; both are drawn from the first frame alone."""
    src = tmp_path / "in.gif"
    save_animation(src, colour_frames(), duration=DURATIONS)
    code, _, err = run("edges", src, "--operator", "kirsch", "--direction-out", tmp_path / "d.npy",
                       "-o", tmp_path / "o.gif", *frames)
    assert code == 2 and "--direction-out takes the first frame only" in err
    assert not (tmp_path / "o.gif").exists() and not (tmp_path / "d.npy").exists()
    code, _, _ = run("edges", src, "--operator", "kirsch", "--direction-out", tmp_path / "d.npy",
                     "-o", tmp_path / "o.png", "--frames", "first")
    assert code == 0 and (tmp_path / "d.npy").exists()


def test_a_later_page_with_alpha_is_composited_onto_black_with_a_note(tmp_path: Path) -> None:
    """A TIFF whose first page is RGB and second RGBA: every page is read in the first's mode, and
    the second's transparent pixels came out as the colour stored under them, without a note. They
    count as black now (premultiplied, as a stage dropping alpha sees them), and the note says so."""
    rng = np.random.default_rng(3)
    first = colour_frames(1)[0]
    rgba = rng.integers(0, 256, first.shape[:2] + (4,), dtype=np.uint8)
    rgba[..., 3] = np.where(rng.random(first.shape[:2]) < 0.4, 0, rgba[..., 3])
    src = tmp_path / "pages.tif"
    Image.fromarray(first).save(src, save_all=True, append_images=[Image.fromarray(rgba, "RGBA")])
    code, stdout, stderr = run(*FILTER, src, "-o", tmp_path / "out.tif", "--json")
    assert code == 0, stderr
    notes = json.loads(stdout)["notes"]
    assert "alpha of frame 1 dropped: the first frame has none, so transparent pixels count as black" in notes
    got = shown_frames(tmp_path / "out.tif")
    np.testing.assert_array_equal(got[0], ref_filter(first))
    black = rgba[..., :3] * (rgba[..., 3:] / 255.0)
    want = ref_correlate_scipy(black, K, 1, 1, (1, 1, 1, 1), "reflection")
    near_tie = np.abs(want - np.floor(want) - 0.5) < 1e-3
    diff = np.abs(got[1].astype(int) - np.clip(np.rint(want), 0, 255))
    assert np.all(diff[~near_tie] == 0) and np.all(diff <= 1)
    # an opaque later page (alpha all 255) has nothing dropped: no note
    rgba[..., 3] = 255
    Image.fromarray(first).save(src, save_all=True, append_images=[Image.fromarray(rgba, "RGBA")])
    code, stdout, stderr = run(*FILTER, src, "-o", tmp_path / "out.tif", "--json")
    assert code == 0 and not any("alpha" in n for n in json.loads(stdout)["notes"])
    np.testing.assert_array_equal(shown_frames(tmp_path / "out.tif")[1], ref_filter(rgba[..., :3]))


def test_frames_holding_more_than_100_max_pixels_together_are_refused(tmp_path: Path) -> None:
    """Each frame within --max-pixels, all of them far beyond: a 2.5 MB GIF of 100000 one-pixel
    frames on a 9000x9000 canvas planned days of work, --dry-run included. Refused from the header
    (exit 1, one line) past 100 x --max-pixels; --frames takes some of them."""
    frames = []
    for i in range(120):
        f = np.zeros((60, 60), dtype=np.uint8)
        f[i // 60, i % 60] = 255
        frames.append(Image.fromarray(f, "L"))
    src = tmp_path / "many.gif"
    frames[0].save(src, save_all=True, append_images=frames[1:], duration=20)
    with Image.open(src) as im:
        assert im.n_frames == 120
    for extra in ([], ["--dry-run"]):
        code, _, stderr = run(*FILTER, src, "-o", tmp_path / "o.gif", "--max-pixels", "4000", *extra)
        assert code == 1 and stderr.count("\n") == 1, stderr
        assert "120 frames of 60x60 = 432000 pixels to filter, over 100 x --max-pixels 4000" in stderr
    assert not (tmp_path / "o.gif").exists()
    code, _, stderr = run(*FILTER, src, "-o", tmp_path / "o.gif", "--max-pixels", "4000", "--frames", "0,1,2")
    assert code == 0, stderr
    # a format that holds one frame gets its own advice first (exit 2), not the pixel count
    code, _, stderr = run(*FILTER, src, "-o", tmp_path / "o.jpg", "--max-pixels", "4000")
    assert code == 2 and "JPEG holds one frame" in stderr, stderr


def test_a_frame_given_twice_is_refused(tmp_path: Path) -> None:
    """--frames 0,0,0 wrote frame 0 three times, noted as '3 of 3 frames'."""
    src = tmp_path / "a.gif"
    ims = [Image.fromarray(f) for f in grey_frames()]
    ims[0].save(src, save_all=True, append_images=ims[1:], duration=DURATIONS)
    code, _, stderr = run(*FILTER, src, "-o", tmp_path / "o.gif", "--frames", "0,2,0")
    assert code == 2 and "frame 0 is given twice in '0,2,0'" in stderr and stderr.count("\n") == 1
    assert not (tmp_path / "o.gif").exists()


@pytest.mark.parametrize("shown", [255, 200])
def test_a_gif_frame_of_255_shown_colours_and_transparency_is_exact(shown: int) -> None:
    """gif_frame counted the colours hidden under transparent pixels with the shown ones: 249 shown
    colours and a transparent area holding others went through median cut, inexact, though the
    palette had room for them all (the CLI premultiplies, which blackens them; gif_frame's contract
    is its own)."""
    from convcli.io.encode import gif_frame

    rng = np.random.default_rng(shown)
    palette = rng.choice(1 << 24, size=shown, replace=False)
    keys = np.concatenate([palette, rng.choice(palette, 32 * 32 - shown)]).reshape(32, 32)
    rgb = np.stack([(keys >> s) & 255 for s in (16, 8, 0)], -1).astype(np.uint8)
    clear = np.zeros((32, 32), bool)
    clear[:, 24:] = True
    clear[:8, :8] = False
    rgb[clear] = rng.integers(0, 256, (int(clear.sum()), 3))  # other colours, hidden
    im, transparent = gif_frame(rgb, np.where(clear, 0, 255).astype(np.uint8), dither=False)
    index = np.asarray(im)
    assert transparent is not None and (index[clear] == transparent).all()
    np.testing.assert_array_equal(np.asarray(im.convert("RGB"))[~clear], rgb[~clear])
