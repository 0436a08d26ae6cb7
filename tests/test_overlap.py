"""The streamed command's three overlapping steps: rows read as they inflate, filtered, compressed.

Every test here fills the rows a step has not been told about with garbage, so a step that
reads a row before it was handed over gives different numbers, and compares with an
independent result: Pillow's own whole-image decode, NumPy's ``np.pad`` for which rows a
window reads, the final pixels as Pillow decodes the written PNG.
"""

from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from convcli import streaming
from convcli.cli import cli
from convcli.core.kernels import Kernel
from convcli.core.padding import MODES, resolve_mode
from convcli.errors import InputError
from convcli.io import pngrows
from convcli.io.decode import read_image, read_rows
from convcli.io.encode import encode_image
from convcli.io.png import encode_png
from convcli.pipeline import CorrelateStage, EngineOptions
from convcli.run.overlap import Abandoned, Background, RowProgress

pytestmark = pytest.mark.timeout(120)


def png_bytes(a: np.ndarray, **params: Any) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG", **params)
    return buf.getvalue()


def photo(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Smooth gradients plus noise: every PNG filter type gets used by Pillow's adaptive choice."""
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([(xx * 3 + yy) % 256, (yy * 2) % 256, (xx ^ yy) % 256], axis=-1)
    return (base + rng.integers(0, 24, (h, w, 3))).clip(0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- io/pngrows


@pytest.mark.parametrize("shape", [(1, 1), (1, 37), (41, 1), (64, 300), (257, 129)])
@pytest.mark.parametrize("params", [{}, {"compress_level": 0}, {"compress_level": 9}, {"optimize": True}],
                         ids=str)
def test_rows_equal_pillows_decode(shape: tuple[int, int], params: dict[str, Any], rng: np.random.Generator,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Each ``wait(n)`` hands over rows 0..n-1 exactly as Pillow decodes them (checked at that moment)."""
    monkeypatch.setattr(pngrows, "BLOCK_BYTES", 97)  # many small steps
    a = photo(rng, *shape)
    data = png_bytes(a, **params)
    ref = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    assert pngrows.can_read_rows(Image.open(io.BytesIO(data)))
    with read_rows(data) as (img, wait, _):
        assert img.color.shape == a.shape
        for n in [*range(0, shape[0], max(1, shape[0] // 7)), shape[0]]:
            wait(n)
            np.testing.assert_array_equal(img.color[:n], ref[:n])
    np.testing.assert_array_equal(ref, a)


def test_rows_of_convclis_own_png_with_many_idat_chunks(rng: np.random.Generator) -> None:
    a = photo(rng, 300, 700)
    data = encode_png(a, None, threads=2, task_bytes=20_000)
    assert data.count(b"IDAT") >= 1
    with read_rows(data) as (img, wait, _):
        wait(300)
        np.testing.assert_array_equal(img.color, a)


@pytest.mark.parametrize("case", ["RGBA", "L", "P", "16-bit", "tRNS"])
def test_other_pngs_are_decoded_whole_and_the_same(case: str, rng: np.random.Generator) -> None:
    a = photo(rng, 40, 50)
    params: dict[str, Any] = {}
    im = Image.fromarray(a)
    if case == "RGBA":
        im = im.convert("RGBA")
    elif case == "L":
        im = im.convert("L")
    elif case == "P":
        im = im.convert("P")
    elif case == "16-bit":
        im = Image.fromarray(a[:, :, 0].astype(np.uint16) * 257)
    elif case == "tRNS":
        params["transparency"] = (1, 2, 3)
    buf = io.BytesIO()
    im.save(buf, "PNG", **params)
    data = buf.getvalue()
    assert not pngrows.can_read_rows(Image.open(io.BytesIO(data)))
    with read_rows(data) as (img, _, _):
        got = img.color
        want = read_image(data, keep_integer=True).color
        np.testing.assert_array_equal(got, want)


def test_interlaced_png_is_not_read_by_rows() -> None:
    # Pillow writes no Adam7 PNG: an RGB one whose header is made to say so
    im = Image.new("RGB", (8, 8), (10, 20, 30))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    opened = Image.open(io.BytesIO(buf.getvalue()))
    opened.info["interlace"] = 1
    assert not pngrows.can_read_rows(opened)


def _plain_outcome(data: bytes) -> tuple[str, np.ndarray | None]:
    try:
        return "ok", read_image(data, keep_integer=True).color
    except InputError as exc:
        return str(exc), None


def _rows_outcome(data: bytes) -> tuple[str, np.ndarray | None]:
    try:
        with read_rows(data) as (img, wait, _):
            wait(img.header.height)
            return "ok", np.array(img.color)
    except InputError as exc:
        return str(exc), None


@given(cut=st.floats(0.05, 0.999), flip=st.integers(0, 10**9), xor=st.integers(1, 255),
       mode=st.sampled_from(["cut", "flip"]))
def test_broken_data_fails_as_the_whole_image_decode_does(cut: float, flip: int, xor: int, mode: str) -> None:
    """Cut short or with a byte changed: the same error text, or the same pixels, on both read paths."""
    a = photo(np.random.default_rng(5), 90, 120)
    good = png_bytes(a)
    if mode == "cut":
        data = good[: max(60, int(len(good) * cut))]
    else:
        b = bytearray(good)
        i = 60 + flip % (len(b) - 72)  # inside the image data (after IHDR, before IEND)
        b[i] ^= xor
        data = bytes(b)
    plain, rows = _plain_outcome(data), _rows_outcome(data)
    assert plain[0] == rows[0]
    if plain[1] is not None:
        assert rows[1] is not None
        np.testing.assert_array_equal(plain[1], rows[1])


def test_a_truncated_png_is_an_input_error_from_wait() -> None:
    a = photo(np.random.default_rng(6), 200, 200)
    data = png_bytes(a)[:-4000]
    with pytest.raises(InputError, match="truncated or corrupt PNG data"), read_rows(data) as (img, wait, _):
        wait(img.header.height)


def test_leaving_the_block_early_stops_the_worker() -> None:
    a = photo(np.random.default_rng(7), 400, 400)
    data = png_bytes(a)
    before = threading.active_count()
    with pytest.raises(RuntimeError, match="stop here"), read_rows(data) as (_img, wait, _):
        wait(1)
        raise RuntimeError("stop here")
    deadline = time.monotonic() + 10
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() == before


# --------------------------------------------------------------------------- which rows a window reads


@given(h=st.integers(1, 40), k=st.integers(1, 9), s=st.integers(1, 4), d=st.integers(1, 3),
       top=st.integers(0, 12), bottom=st.integers(0, 12), mode=st.sampled_from(sorted(MODES)), data=st.data())
def test_input_rows_covers_every_row_the_window_reads(h: int, k: int, s: int, d: int, top: int, bottom: int,
                                                      mode: str, data: st.DataObject) -> None:
    m = resolve_mode(mode)
    if m.numpy is None:
        top = bottom = 0
    if m.numpy == "reflect" and h == 1:
        m = resolve_mode("replicate")
    span = (k - 1) * d + 1
    oh = (h + top + bottom - span) // s + 1
    if oh < 1:
        return
    stage = CorrelateStage(op="filter", kernel=Kernel("k", np.ones((k, 1))), stride=(s, 1), dilation=(d, 1),
                           padding=m, pad=(top, bottom, 0, 0))
    y0 = data.draw(st.integers(0, oh - 1))
    y1 = data.draw(st.integers(y0 + 1, oh))
    # reference: pad a column of row numbers with NumPy's own mode and look at what the windows cover
    rows = np.arange(h)
    if m.numpy is None:
        padded = rows
    elif m.numpy == "constant":
        padded = np.pad(rows, (top, bottom), mode="constant", constant_values=-1)
    else:
        padded = np.pad(rows, (top, bottom), mode=m.numpy)
    read = {int(padded[y * s + j * d]) for y in range(y0, y1) for j in range(k)}
    read.discard(-1)
    need = stage.input_rows(y0, y1, h)
    assert need >= (max(read) + 1 if read else 0)
    assert need <= h
    if read:  # and no more than needed, short of the rows a zero pad reads nothing from
        assert need == max(read) + 1 or m.numpy == "constant"


# --------------------------------------------------------------------------- stream_stage(ready=, done=)


@pytest.mark.parametrize("mode", ["reflect", "circular", "zeros", "replicate"])
@pytest.mark.parametrize(("k", "stride"), [(3, 1), (7, 2), (15, 1)])
def test_streaming_reads_only_rows_it_was_handed(mode: str, k: int, stride: int,
                                                 rng: np.random.Generator) -> None:
    """Rows not yet handed over hold garbage: the pixels still equal those from the whole image."""
    x = photo(rng, 333, 97)
    w = rng.normal(size=(k, k))
    stage = CorrelateStage(op="filter", kernel=Kernel("k", w / np.abs(w).sum()), stride=(stride, stride),
                           padding=resolve_mode(mode), pad=(k // 2,) * 4)
    eng = EngineOptions()
    want, _ = streaming.stream_stage(x, stage, eng, policy="clip", bits=8, threads=2, chunk_bytes=20_000)
    live = 255 - x  # garbage until handed over
    handed = [0]

    def ready(n: int) -> None:
        assert 0 <= n <= x.shape[0]
        if n > handed[0]:
            live[handed[0]:n] = x[handed[0]:n]
            handed[0] = n

    finals: list[int] = []
    got, _ = streaming.stream_stage(live, stage, eng, policy="clip", bits=8, threads=2, chunk_bytes=20_000,
                                    ready=ready, done=finals.append)
    np.testing.assert_array_equal(got, want)
    assert finals == sorted(finals) and finals[-1] == want.shape[0]


# --------------------------------------------------------------------------- PNG writer (ready=)


@pytest.mark.parametrize("channels", [1, 3])
def test_png_writer_compresses_only_final_rows(channels: int, rng: np.random.Generator) -> None:
    final = photo(rng, 700, 300)
    final = final[:, :, :1] if channels == 1 else final
    pixels = 255 - final  # garbage until published
    progress = RowProgress()
    writer = Background(lambda: encode_image(pixels, None, "png", threads=2, task_bytes=30_000,
                                             ready=progress.wait), "test-encode")
    for y in range(0, 700, 50):
        time.sleep(0.002)
        pixels[y:y + 50] = final[y:y + 50]
        progress.publish(y + 50)
    data, _ = writer.result()
    got = np.asarray(Image.open(io.BytesIO(data)))
    np.testing.assert_array_equal(got, final[:, :, 0] if channels == 1 else final)


@pytest.mark.parametrize("fmt", ["jpeg", "tiff", "png"])
def test_other_writers_wait_for_the_whole_image(fmt: str, rng: np.random.Generator) -> None:
    final = photo(rng, 60, 50)  # small: Pillow's PNG writer, not the threaded one
    pixels = 255 - final
    progress = RowProgress()
    writer = Background(lambda: encode_image(pixels, None, fmt, ready=progress.wait, quality=95),
                        "test-encode")
    time.sleep(0.05)
    pixels[:] = final
    progress.publish(60)
    data, _ = writer.result()
    want, _ = encode_image(final, None, fmt, quality=95)
    assert data == want


def test_a_failed_producer_releases_the_writer() -> None:
    pixels = np.zeros((2000, 300, 3), np.uint8)
    progress = RowProgress()
    writer = Background(lambda: encode_image(pixels, None, "png", threads=2, task_bytes=30_000,
                                             ready=progress.wait), "test-encode")
    progress.publish(100)
    progress.fail()
    with pytest.raises(Abandoned):
        writer.result()


# --------------------------------------------------------------------------- the command


def run(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_command_on_both_paths_gives_the_same_file_contents(tmp_path: Path, rng: np.random.Generator,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[str] = []
    real_rows, real_background = pngrows.PngRows.__init__, Background.__init__

    def rows_spy(self: Any, *a: Any) -> None:
        started.append("rows")
        real_rows(self, *a)

    def background_spy(self: Any, *a: Any) -> None:
        started.append("encode")
        real_background(self, *a)

    monkeypatch.setattr(pngrows.PngRows, "__init__", rows_spy)
    monkeypatch.setattr(Background, "__init__", background_spy)
    src = tmp_path / "in.png"
    src.write_bytes(png_bytes(photo(rng, 420, 390)))
    outs = []
    for threads in ("1", "2"):
        out = tmp_path / f"out{threads}.png"
        r = run("blur", str(src), "--size", "9", "-o", str(out), "--threads", threads, "--json")
        assert r.exit_code == 0, r.stderr
        rec = json.loads(r.stdout)
        outs.append((np.asarray(Image.open(out)), rec["range"]))
    np.testing.assert_array_equal(outs[0][0], outs[1][0])
    assert outs[0][1] == outs[1][1]
    assert started == ["rows", "encode"]  # only the two-thread run overlapped its steps


def test_truncated_input_fails_alone_and_leaves_nothing(tmp_path: Path, rng: np.random.Generator) -> None:
    src = tmp_path / "in"
    src.mkdir()
    good = png_bytes(photo(rng, 400, 400))
    (src / "a.png").write_bytes(good)
    (src / "b.png").write_bytes(good[: len(good) // 2])
    (src / "c.png").write_bytes(good)
    out = tmp_path / "out"
    r = run("blur", str(src), "--out-dir", str(out), "--threads", "2", "-j", "1", "--json")
    assert r.exit_code == 1
    recs = {Path(rec["input"]).name: rec for rec in map(json.loads, r.stdout.splitlines())}
    assert recs["b.png"]["status"] == "error"
    assert "truncated or corrupt PNG data" in recs["b.png"]["error"]
    assert sorted(p.name for p in out.iterdir()) == ["a.blur.png", "c.blur.png"]



def test_rows_not_marked_by_pillow_are_refused_not_filled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Should a Pillow stop writing 255 into the fourth byte, no row is seen early, and the image is
    refused as short once the decoder says it is done (loud, and caught by every test here), never
    handed on with rows the check could not see: the mark is also how a stream that ends before
    the last row is told from a whole one."""
    monkeypatch.setattr(pngrows.PngRows, "_rows_done", lambda self, start: start)
    a = photo(np.random.default_rng(8), 120, 90)
    with pytest.raises(InputError, match="end before the last row"):  # noqa: PT012
        with read_rows(png_bytes(a)) as (_, wait, decoding):
            assert decoding
            wait(1)


def _chunk(kind: bytes, body: bytes) -> bytes:
    import struct
    import zlib

    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def _crafted(case: str) -> bytes:
    """PNGs whose trouble is in the chunks around the image data, not in it."""
    a = photo(np.random.default_rng(9), 150, 120)
    good = encode_png(a, None, threads=2, task_bytes=10_000)  # several IDAT chunks
    iend = good.rindex(b"IEND") - 4
    first_idat = good.index(b"IDAT") - 4
    second_idat = good.index(b"IDAT", first_idat + 8) - 4
    if case == "bad zTXt after the image data":
        return good[:iend] + _chunk(b"zTXt", b"Comment\0\x05xyz") + good[iend:]
    if case == "tEXt after the image data, cut short":
        return good[:iend] + _chunk(b"tEXt", b"Comment\0" + b"x" * 400)[:-200]
    if case == "a chunk between IDATs":
        return good[:second_idat] + _chunk(b"tEXt", b"k\0v") + good[second_idat:]
    if case == "good tEXt after the image data":
        return good[:iend] + _chunk(b"tEXt", b"Comment\0fine") + good[iend:]
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["bad zTXt after the image data", "tEXt after the image data, cut short",
                                  "a chunk between IDATs", "good tEXt after the image data"])
def test_chunks_around_the_image_data_are_checked_as_a_whole_decode_checks_them(case: str) -> None:
    data = _crafted(case)
    assert pngrows.can_read_rows(Image.open(io.BytesIO(data)))
    plain, rows = _plain_outcome(data), _rows_outcome(data)
    assert plain[0] == rows[0]
    assert (plain[0] == "ok") == (case == "good tEXt after the image data")
    if plain[1] is not None:
        np.testing.assert_array_equal(plain[1], rows[1])
