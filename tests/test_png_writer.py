"""The threaded PNG writer (encode_png): valid zlib, bit-exact round trips, ICC, levels."""

from __future__ import annotations

import io
import zlib

import numpy as np
import pytest
from PIL import Image

from convcli.io import encode as ioencode
from convcli.io.encode import encode_image
from convcli.io.png import adler32_combine, decode_png, encode_png

SHAPES = [(1, 1), (1, 37), (29, 1), (7, 5), (33, 41), (64, 3)]


def _pixels(rng: np.random.Generator, h: int, w: int, channels: int, bits: int) -> np.ndarray:
    dt = np.uint16 if bits == 16 else np.uint8
    shape = (h, w) if channels == 1 else (h, w, channels)
    smooth = np.cumsum(rng.integers(0, 3, size=shape), axis=1)  # compressible and random
    return (smooth * (257 if bits == 16 else 1) % (1 << bits)).astype(dt)


def _chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    out, pos = [], 8
    while pos < len(png):
        (n,) = np.frombuffer(png[pos : pos + 4], dtype=">u4")
        out.append((png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + int(n)]))
        pos += 12 + int(n)
    return out


def _idat(png: bytes) -> bytes:
    return b"".join(body for kind, body in _chunks(png) if kind == b"IDAT")


@pytest.fixture(params=[64, 1 << 20], ids=["many-tasks", "one-task"])
def task_bytes(request: pytest.FixtureRequest) -> int:
    return int(request.param)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("channels,with_alpha", [(1, False), (1, True), (3, False), (3, True)])
@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize("deflate", ["zlib", "isal"])
def test_round_trip(shape: tuple[int, int], channels: int, with_alpha: bool, bits: int, threads: int,
                    deflate: str, task_bytes: int, rng: np.random.Generator) -> None:
    if deflate == "isal":
        pytest.importorskip("isal")
    color = _pixels(rng, *shape, channels, bits)
    alpha = _pixels(rng, *shape, 1, bits) if with_alpha else None
    png = encode_png(color, alpha, threads=threads, task_bytes=task_bytes, deflate=deflate)
    want = color.reshape(*shape, -1)
    if alpha is not None:
        want = np.concatenate([want, alpha[..., None]], axis=-1)
    got = decode_png(png)  # convcli's own decoder reads every layout at full depth
    np.testing.assert_array_equal(got, want)
    zlib.decompress(_idat(png))  # one valid zlib stream: header, deflate, Adler-32 checked
    with Image.open(io.BytesIO(png)) as im:
        im.load()
        pil = np.asarray(im)
    if bits == 8 or (channels == 1 and not with_alpha):
        np.testing.assert_array_equal(pil.reshape(want.shape), want)
    elif not with_alpha or channels == 3:
        np.testing.assert_array_equal(pil.reshape(want.shape), want >> 8)  # Pillow keeps the high byte


@pytest.mark.parametrize("level", range(10))
@pytest.mark.parametrize("deflate", ["zlib", "auto"])
def test_every_compress_level(level: int, deflate: str, task_bytes: int, rng: np.random.Generator) -> None:
    color = _pixels(rng, 50, 70, 3, 8)
    png = encode_png(color, None, compress_level=level, threads=2, task_bytes=task_bytes, deflate=deflate)
    with Image.open(io.BytesIO(png)) as im:
        np.testing.assert_array_equal(np.asarray(im), color)
    header = _idat(png)[:2]
    assert (header[0] * 256 + header[1]) % 31 == 0 and header[0] == 0x78


def test_levels_trade_size(rng: np.random.Generator) -> None:
    color = np.tile(_pixels(rng, 64, 64, 3, 8), (8, 8, 1))
    sizes = [len(encode_png(color, None, compress_level=lv, deflate="zlib")) for lv in (0, 1, 9)]
    assert sizes[0] > sizes[1] > sizes[2]
    # ISA-L on incompressible noise may come out a little larger than stored blocks, at any level
    auto = [len(encode_png(color, None, compress_level=lv)) for lv in (1, 9)]
    assert max(auto) <= sizes[0] * 1.02


def test_icc_profile_kept(rng: np.random.Generator) -> None:
    from PIL import ImageCms

    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    color = _pixels(rng, 300, 300, 3, 8)
    png, _ = encode_image(color, None, "png", icc_profile=profile)
    assert any(kind == b"iCCP" for kind, _ in _chunks(png))
    with Image.open(io.BytesIO(png)) as im:
        assert im.info["icc_profile"] == profile
        np.testing.assert_array_equal(np.asarray(im), color)


def test_adler32_combine(rng: np.random.Generator) -> None:
    for n1, n2 in [(0, 0), (0, 5), (7, 0), (1, 65521), (100_000, 70_000), (65520, 65522)]:
        a = rng.integers(0, 256, n1, dtype=np.uint8).tobytes()
        b = rng.integers(0, 256, n2, dtype=np.uint8).tobytes()
        assert adler32_combine(zlib.adler32(a), zlib.adler32(b), len(b)) == zlib.adler32(a + b)


def test_encode_image_uses_the_threaded_writer_for_large_images(rng: np.random.Generator,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = encode_png
    monkeypatch.setattr(ioencode, "encode_png", lambda *a, **k: calls.append(1) or real(*a, **k))
    big = _pixels(rng, 256, 256, 3, 8)
    png, _ = encode_image(big, None, "png", compress_level=3)
    assert calls and decode_png(png).tolist() == big.tolist()
    encode_image(big[:8, :8], None, "png")  # small 8-bit: Pillow
    assert len(calls) == 1
    encode_image(big[:8, :8].astype(np.uint16), None, "png")  # 16-bit: always convcli's
    assert len(calls) == 2


def test_pool_workers_jobs_carry_their_thread_share() -> None:
    """A pool of N workers: every Job without --threads carries usable_cores() // N, resolved in
    the parent, so the worker's engine, to_pixels and PNG writer never oversubscribe the cores."""
    from convcli.pipeline import EngineOptions, Pipeline
    from convcli.run import scale as scaleout
    from convcli.run.job import Job

    jobs = [Job(source=f"{i}.png", output=None, pipeline=Pipeline(()), engine=EngineOptions(threads=t))
            for i, t in enumerate([None, None, 3])]
    shared = [j for j in scaleout.share_cores(list(jobs), 2) if isinstance(j, Job)]
    assert [j.engine.threads for j in shared] == [max(1, scaleout.usable_cores() // 2)] * 2 + [3]
    many = [j for j in scaleout.share_cores(list(jobs), 10_000) if isinstance(j, Job)]
    assert [j.engine.threads for j in many] == [1, 1, 3]
    assert jobs[0].engine.threads is None  # frozen Jobs: the caller's list is untouched


def test_isal_is_the_default_deflate_where_installed() -> None:
    """The measured choice (benchmarks/CODECS.md) is what runs; without isal, zlib is the fallback."""
    import importlib.util

    from convcli.io.png import deflate_codec

    codec, level = deflate_codec("auto", 1)
    expected = "isal.isal_zlib" if importlib.util.find_spec("isal") else "zlib"
    assert codec.__name__ == expected and level == 1
    assert deflate_codec("auto", 0)[0] is zlib  # level 0: stored blocks, zlib's
    assert deflate_codec("zlib", 6) == (zlib, 6)
    with pytest.raises(ValueError, match="backend"):
        deflate_codec("gzip", 1)
    with pytest.raises(ValueError, match="0..9"):
        deflate_codec("auto", 10)


def test_isal_files_are_no_larger_than_zlib_level_1(rng: np.random.Generator) -> None:
    pytest.importorskip("isal")
    y, x = np.mgrid[0:300, 0:400]
    smooth = np.stack([(x * 0.5 + y * 0.2) % 256, (x * y / 300) % 256, (y * 0.7) % 256], axis=-1)
    color = (smooth + rng.normal(0, 2, smooth.shape)).clip(0, 255).astype(np.uint8)
    a = encode_png(color, None, compress_level=1, deflate="zlib")
    b = encode_png(color, None, compress_level=1, deflate="isal")
    assert decode_png(b).tolist() == decode_png(a).tolist() == color.tolist()
    assert len(b) <= len(a) * 1.05


def strict_png(data: bytes) -> tuple[dict[str, int], bytes]:
    """A PNG read as strictly as libpng: every chunk's CRC, IHDR first, IEND last, the IDATs
    consecutive, their zlib stream whole (Adler-32 checked by zlib) and exactly the rows' bytes."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, kinds, idat = 8, [], []
    while pos < len(data):
        n = int.from_bytes(data[pos : pos + 4], "big")
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        crc = int.from_bytes(data[pos + 8 + n : pos + 12 + n], "big")
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, f"bad CRC in {kind!r}"
        kinds.append(kind)
        if kind == b"IDAT":
            idat.append(body)
        pos += 12 + n
    assert pos == len(data) and kinds[0] == b"IHDR" and kinds[-1] == b"IEND"
    first, last = kinds.index(b"IDAT"), len(kinds) - 1 - kinds[::-1].index(b"IDAT")
    assert set(kinds[first : last + 1]) == {b"IDAT"}, "IDAT chunks must be consecutive"
    ihdr = data[16:29]
    w, h, depth, ctype = int.from_bytes(ihdr[:4], "big"), int.from_bytes(ihdr[4:8], "big"), ihdr[8], ihdr[9]
    d = zlib.decompressobj()
    raw = d.decompress(b"".join(idat)) + d.flush()
    assert d.eof and not d.unused_data, "the zlib stream must end exactly at the last IDAT"
    bpp = {0: 1, 2: 3, 4: 2, 6: 4}[ctype] * depth // 8
    assert len(raw) == h * (1 + w * bpp)
    assert set(raw[:: 1 + w * bpp]) <= {0, 1, 2, 3, 4}
    return {"width": w, "height": h, "depth": depth, "colour_type": ctype}, raw


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("task_bytes", [1, 5_000, 4 << 20])
def test_output_is_a_strictly_valid_png(threads: int, task_bytes: int, rng: np.random.Generator) -> None:
    a = rng.integers(0, 256, (130, 170, 3), dtype=np.uint8)
    data = encode_png(a, None, threads=threads, task_bytes=task_bytes, icc_profile=b"\0" * 200,
                      chunks=[(b"tEXt", b"k\0v")])
    info, _ = strict_png(data)
    assert info == {"width": 170, "height": 130, "depth": 8, "colour_type": 2}
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(data))), a)


def test_libpng_reads_the_output(rng: np.random.Generator) -> None:
    cv2 = pytest.importorskip("cv2")  # OpenCV decodes PNG with libpng
    a = rng.integers(0, 256, (300, 257, 3), dtype=np.uint8)
    data = encode_png(a, None, threads=2, task_bytes=10_000)
    got = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(got[:, :, ::-1], a)
