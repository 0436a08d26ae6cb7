"""convcli.imageio: decoding odd and hostile files, encoding, floats -> pixels, atomic writes."""

from __future__ import annotations

import errno
import io
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from corpus import PNG_SIGNATURE, Case, build_corpus, png16, png_chunk, raw_png
from PIL import Image, ImageFile, ImageOps

from convcli.core.pixels import RANGE_POLICIES, to_pixels
from convcli.errors import InputError, OutputError, UsageError
from convcli.io import files as iofiles
from convcli.io import png as iopng
from convcli.io.decode import DEFAULT_MAX_PIXELS, read_header, read_image
from convcli.io.encode import encode_float, encode_image
from convcli.io.files import write_atomic
from convcli.io.formats import FORMATS, extension_for, format_for_path
from convcli.io.png import DEFAULT_PNG_COMPRESS_LEVEL, decode_png

# ----------------------------------------------------------------------------- helpers


def decode_png_reference(data: bytes) -> tuple[int, int, np.ndarray]:
    """An independent, slow PNG decoder (non-interlaced, all five filters): bit depth, colour type, samples.

    Used to check the 16-bit RGB(A) files convcli writes, which Pillow reads as 8-bit.
    """
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    pos, idat, ihdr = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF, kind
        if kind == b"IHDR":
            ihdr = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", ihdr)
    assert interlace == 0
    n = {0: 1, 2: 3, 4: 2, 6: 4}[colour_type]
    bpp = n * depth // 8
    stride = width * bpp
    raw = zlib.decompress(idat)
    prev = [0] * stride
    rows = []
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = list(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 0xFF
        rows.append(bytes(line))
        prev = line
    dtype = ">u2" if depth == 16 else np.uint8
    samples = np.frombuffer(b"".join(rows), dtype=dtype).reshape(height, width, n)
    return depth, colour_type, samples


def pattern(shape: tuple[int, ...], bits: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    dtype = np.uint16 if bits == 16 else np.uint8
    return rng.integers(0, 1 << bits, shape).astype(dtype)


def smooth_rgb(height: int = 32, width: int = 48) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 5, y * 7, (x + y) * 3], axis=-1).clip(0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Case]:
    return build_corpus(tmp_path_factory.mktemp("corpus"))


#: Every corpus case (a test checks the list is complete, since parametrize needs names before the fixture).
CASE_NAMES = [
    "truncated_png", "truncated_jpeg", "not_an_image", "empty", "directory", "zero_width", "bomb",
    "float_tiff",
    "palette_transparency", "bilevel", "gray_alpha", "cmyk_jpeg", "gray16", "gray_alpha16", "rgb16",
    "animated_gif", "exif_rotated", "icc_png", "rgba_transparent", "rgba16", "truncated_png16",
    "rgb16_tiff", "rgb16_ppm", "rgb16_sgi", "gray16_pgm", "idat_crc_png",
]  # fmt: skip


# ----------------------------------------------------------------------------- the corpus


def test_corpus_names_are_all_tested(corpus: dict[str, Case]) -> None:
    assert set(corpus) <= set(CASE_NAMES)


@pytest.mark.parametrize("name", CASE_NAMES)
def test_corpus_case(corpus: dict[str, Case], name: str) -> None:
    if name not in corpus:
        pytest.skip(f"{name} not built here (optional dependency missing)")
    path, expect = corpus[name]
    if not expect.ok:
        with pytest.raises(InputError) as info:
            read_image(path)
        message = str(info.value)
        assert expect.error in message
        assert "\n" not in message and str(path) not in message and path.name not in message
        try:  # the header alone may already refuse it, with the same kind of message
            read_header(path)
        except InputError as exc:
            assert "\n" not in str(exc)
        return
    header = read_header(path)
    img = read_image(path)
    assert img.header == header
    assert (header.width, header.height) == expect.size
    assert img.color.shape == (header.height, header.width, header.channels)
    assert img.color.dtype == np.float32
    assert header.channels == expect.channels
    assert header.has_alpha == expect.has_alpha == (img.alpha is not None)
    assert header.bit_depth == expect.bit_depth
    assert header.maxval == (1 << expect.bit_depth) - 1
    assert header.n_frames == expect.n_frames
    for phrase in expect.notes:
        assert any(phrase in note for note in header.notes), (phrase, header.notes)
    if expect.color is not None:
        np.testing.assert_allclose(img.color, expect.color, atol=expect.atol, rtol=0)
    if expect.alpha is not None:
        assert img.alpha is not None and img.alpha.shape == (header.height, header.width)
        np.testing.assert_array_equal(img.alpha, expect.alpha)
    assert (img.icc_profile is not None) == expect.icc


@pytest.mark.parametrize(
    "name", ["palette_transparency", "cmyk_jpeg", "exif_rotated", "gray_alpha16", "bilevel"]
)
def test_corpus_gray_header_matches_decode(corpus: dict[str, Case], name: str) -> None:
    path, expect = corpus[name]
    header = read_header(path, gray=True)
    img = read_image(path, gray=True)
    assert header.channels == 1
    assert img.color.shape == (header.height, header.width, 1)
    assert (img.alpha is not None) == header.has_alpha == expect.has_alpha
    if expect.color is not None and expect.color.shape[-1] == 3:
        luma = expect.color @ np.array([0.299, 0.587, 0.114], np.float32)
        np.testing.assert_allclose(img.color[..., 0], luma, atol=1e-3)


def test_gray_matches_pillow_luminance_within_rounding() -> None:
    rgb = pattern((9, 11, 3), 8, seed=11)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    img = read_image(buf.getvalue(), gray=True)
    pillow_l = np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.float32)
    assert np.abs(img.color[..., 0] - pillow_l).max() <= 0.51


def test_bytes_source_equals_path(corpus: dict[str, Case]) -> None:
    path = corpus["gray_alpha16"].path
    a, b = read_image(path), read_image(path.read_bytes())
    assert a.header == b.header
    np.testing.assert_array_equal(a.color, b.color)


def test_truncated_images_stay_refused() -> None:
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="^no such file$"):
        read_image(tmp_path / "nope.png")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file(tmp_path: Path) -> None:
    p = tmp_path / "secret.png"
    Image.new("L", (2, 2)).save(p)
    p.chmod(0)
    with pytest.raises(InputError, match="^permission denied$"):
        read_header(p)


def test_max_pixels_checked_from_header(tmp_path: Path) -> None:
    p = tmp_path / "big.png"
    Image.new("L", (20, 10)).save(p)
    with pytest.raises(InputError, match=r"20x10 = 200 pixels exceeds --max-pixels 199"):
        read_image(p, max_pixels=199)
    assert read_image(p, max_pixels=200).color.shape == (10, 20, 1)
    assert read_image(p, max_pixels=None).color.shape == (10, 20, 1)


def test_huge_header_below_user_limit_raises_no_pillow_warning(tmp_path: Path) -> None:
    # 10000 x 10000 is above Pillow's own limit: Pillow would warn (an error under pytest's filterwarnings).
    p = tmp_path / "huge.png"
    p.write_bytes(raw_png(10000, 10000, 8, 0, bytes(10001)))
    header = read_header(p, max_pixels=None)
    assert (header.width, header.height) == (10000, 10000)
    with pytest.raises(InputError, match="exceeds --max-pixels"):
        read_header(p)
    assert Image.MAX_IMAGE_PIXELS == DEFAULT_MAX_PIXELS  # restored


def test_colour_key_becomes_alpha(tmp_path: Path) -> None:
    grey = np.array([[0, 7, 9], [7, 255, 7]], np.uint8)
    p = tmp_path / "key.png"
    Image.fromarray(grey).save(p, transparency=7)
    img = read_image(p)
    assert img.header.has_alpha and img.header.channels == 1
    np.testing.assert_array_equal(img.alpha, np.where(grey == 7, 0, 255))
    np.testing.assert_array_equal(img.color[..., 0], grey)


def test_colour_key_of_bilevel_image(tmp_path: Path) -> None:
    bits = np.array([[True, False, True]])
    p = tmp_path / "key1.png"
    Image.fromarray(bits).save(p, transparency=0)
    img = read_image(p)
    np.testing.assert_array_equal(img.color[..., 0], [[255, 0, 255]])
    np.testing.assert_array_equal(img.alpha, [[255, 0, 255]])


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillow(tmp_path: Path, orientation: int) -> None:
    stored = smooth_rgb(6, 10)
    exif = Image.Exif()
    exif[0x0112] = orientation
    p = tmp_path / f"o{orientation}.jpg"
    Image.fromarray(stored).save(p, exif=exif, quality=95)
    with Image.open(p) as im:
        upright = np.asarray(ImageOps.exif_transpose(im).convert("RGB"), dtype=np.float32)
    header = read_header(p)
    img = read_image(p)
    assert (header.height, header.width) == upright.shape[:2] == img.color.shape[:2]
    np.testing.assert_array_equal(img.color, upright)


#: EXIF orientation -> the stored array turned upright, from the EXIF definitions (not Pillow's).
UPRIGHT = {1: lambda a: a, 2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
           5: lambda a: a.transpose(1, 0, 2), 6: lambda a: np.rot90(a, -1),
           7: lambda a: a[::-1, ::-1].transpose(1, 0, 2), 8: lambda a: np.rot90(a, 1)}


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("ext", ["png", "tif"])
def test_exif_orientation_of_lossless_files_by_the_definition(tmp_path: Path, orientation: int, ext: str
                                                             ) -> None:
    """Pillow 13 turns a TIFF upright itself as it loads; 0.2 turned it a second time (an
    orientation-3 TIFF came out as stored, an orientation-6 one 180 degrees off)."""
    stored = np.random.default_rng(orientation).integers(0, 256, (6, 10, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    p = tmp_path / f"o{orientation}.{ext}"
    Image.fromarray(stored).save(p, exif=exif)
    upright = UPRIGHT[orientation](stored)
    header = read_header(p)
    img = read_image(p)
    assert (header.height, header.width) == upright.shape[:2]
    np.testing.assert_array_equal(img.color, upright.astype(np.float32))
    assert (f"EXIF orientation {orientation} applied" in header.notes) == (orientation != 1)


# ----------------------------------------------------------------------------- formats


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("a.png", "png"), ("a.JPG", "jpeg"), ("a.jpeg", "jpeg"), ("a.tif", "tiff"), ("b/a.TIFF", "tiff"),
     ("a.webp", "webp"), ("a.bmp", "bmp"), ("a.npy", "npy")],
)  # fmt: skip
def test_format_for_path(name: str, fmt: str) -> None:
    assert format_for_path(name) == fmt
    assert format_for_path(Path(name)) == fmt


@pytest.mark.parametrize("name", ["a", "a.png.txt", "a.xyz"])
def test_format_for_path_unknown(name: str) -> None:
    with pytest.raises(UsageError, match="output format"):
        format_for_path(name)


def test_format_for_path_read_only_ico_suggests_png() -> None:
    hint = r"e\.g\. out/a\.png \(-o, or --name '\{stem\}\.png'\)"
    with pytest.raises(UsageError, match=r"reads ICO but cannot write it.*" + hint):
        format_for_path("out/a.ico")
    assert format_for_path("out/a.gif") == "gif"  # GIF is written (frame by frame)


def test_extension_for() -> None:
    assert [extension_for(f) for f in FORMATS] == [
        ".png",
        ".jpg",
        ".tif",
        ".webp",
        ".bmp",
        ".npy",
        ".gif",
    ]
    assert all(format_for_path("x" + extension_for(f)) == f for f in FORMATS)


# ----------------------------------------------------------------------------- round trips

LAYOUTS = {
    "grey": ((5, 7), False),
    "grey+alpha": ((5, 7), True),
    "rgb": ((5, 7, 3), False),
    "rgba": ((5, 7, 3), True),
}


def _make(layout: str, bits: int) -> tuple[np.ndarray, np.ndarray | None]:
    shape, has_alpha = LAYOUTS[layout]
    color = pattern(shape, bits, seed=3)
    color.flat[0], color.flat[1] = 0, (1 << bits) - 1
    return color, (pattern(shape[:2], bits, seed=4) if has_alpha else None)


def _as3(a: np.ndarray) -> np.ndarray:
    return a[..., None] if a.ndim == 2 else a


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("task_bytes", [iopng.PNG_TASK_BYTES, 50])
def test_png_round_trip(layout: str, bits: int, task_bytes: int) -> None:
    color, alpha = _make(layout, bits)
    data, notes = encode_image(color, alpha, "png", task_bytes=task_bytes)  # 50: 1-2 rows a task
    assert notes == ()
    with Image.open(io.BytesIO(data)) as im:
        im.load()  # Pillow reads every file convcli writes
    depth, _, samples = decode_png_reference(data)
    assert depth == bits
    expected = np.concatenate([_as3(color), alpha[..., None]], axis=-1) if alpha is not None else _as3(color)
    np.testing.assert_array_equal(samples, expected)
    img = read_image(data)
    assert img.header.bit_depth == bits
    np.testing.assert_array_equal(img.color, _as3(color))
    if alpha is None:
        assert img.alpha is None
    else:
        np.testing.assert_array_equal(img.alpha, alpha)


def encode_png_reference(
    samples: np.ndarray, depth: int, filters: list[int], interlace: bool = False
) -> bytes:
    """An independent, slow PNG encoder using the given filter type for each row (cycled)."""
    height, width, n = samples.shape
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[n]
    bpp = n * depth // 8
    data = samples.astype(">u2" if depth == 16 else np.uint8)
    passes = [(0, 0, 1, 1)]
    if interlace:
        passes = [
            (0, 0, 8, 8),
            (4, 0, 8, 8),
            (0, 4, 4, 8),
            (2, 0, 4, 4),
            (0, 2, 2, 4),
            (1, 0, 2, 2),
            (0, 1, 1, 2),
        ]
    out = bytearray()
    k = 0
    for x0, y0, dx, dy in passes:
        sub = data[y0::dy, x0::dx]
        if sub.size == 0:
            continue
        prev = [0] * (sub.shape[1] * bpp)
        for row in sub:
            line = list(row.tobytes())
            kind = filters[k % len(filters)]
            k += 1
            enc = []
            for i, v in enumerate(line):
                a = line[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                paeth = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                pred = [0, a, b, (a + b) // 2, paeth][kind]
                enc.append((v - pred) & 0xFF)
            out += bytes([kind]) + bytes(enc)
            prev = line
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, int(interlace))
    return (
        PNG_SIGNATURE
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(bytes(out)))
        + png_chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("interlace", [False, True])
@pytest.mark.parametrize("n", [1, 2, 3, 4])
@pytest.mark.parametrize("depth", [8, 16])
def test_own_png_decoder_all_filters(depth: int, n: int, interlace: bool) -> None:
    samples = pattern((11, 9, n), depth, seed=depth + n)
    samples[::3] //= 7  # some smooth rows, so predictors matter
    data = encode_png_reference(samples, depth, [4, 3, 0, 1, 2, 4, 3], interlace)
    np.testing.assert_array_equal(decode_png(data), samples)
    if not interlace:  # the slow reference decoder (non-interlaced only) agrees
        np.testing.assert_array_equal(decode_png_reference(data)[2], samples)


@pytest.mark.parametrize("options", [{}, {"optimize": True}, {"interlace": 1}])
@pytest.mark.parametrize("shape", [(23, 31), (23, 31, 2), (23, 31, 3), (23, 31, 4)])
def test_own_png_decoder_matches_pillow(options: dict[str, object], shape: tuple[int, ...]) -> None:
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    planes = [x * 7 + y, (x * y) % 256, y * 9, 255 - x][: shape[2] if len(shape) == 3 else 1]
    arr = np.stack(planes, axis=-1).astype(np.uint8).reshape(shape)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG", **options)  # zlib's adaptive filters, Paeth included
    decoded = decode_png(buf.getvalue())
    np.testing.assert_array_equal(decoded, arr.reshape(*shape[:2], -1))


def test_rgb16_colour_key_becomes_alpha() -> None:
    rgb = np.array([[[1, 2, 3], [4, 5, 6]]], np.uint16) * 1000
    data = encode_png_reference(rgb, 16, [0])
    trns = png_chunk(b"tRNS", struct.pack(">HHH", 4000, 5000, 6000))
    data = data[:33] + trns + data[33:]
    img = read_image(data)
    assert img.header.bit_depth == 16 and img.header.has_alpha
    np.testing.assert_array_equal(img.alpha, [[65535, 0]])
    np.testing.assert_array_equal(img.color, rgb)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("bits", [8, 16])
def test_tiff_round_trip(layout: str, bits: int) -> None:
    color, alpha = _make(layout, bits)
    data, notes = encode_image(color, alpha, "tiff")
    img = read_image(data)
    if bits == 16 and layout != "grey":
        assert notes and notes[0].startswith("reduced to 8-bit (Pillow cannot write 16-bit")
        color = ((color.astype(np.int64) + 128) // 257).astype(np.uint8)
        alpha = None if alpha is None else ((alpha.astype(np.int64) + 128) // 257).astype(np.uint8)
        bits = 8
    else:
        assert notes == ()
    assert img.header.bit_depth == bits
    np.testing.assert_array_equal(img.color, _as3(color))
    if alpha is not None:
        np.testing.assert_array_equal(img.alpha, alpha)


@pytest.mark.parametrize("layout", ["grey", "rgb"])
def test_bmp_round_trip(layout: str) -> None:
    color, _ = _make(layout, 8)
    data, notes = encode_image(color, None, "bmp")
    assert notes == ()
    np.testing.assert_array_equal(read_image(data).color, _as3(color))


@pytest.mark.parametrize(("fmt", "tolerance"), [("jpeg", 3.0), ("webp", 3.0)])
def test_lossy_round_trip(fmt: str, tolerance: float) -> None:
    rgb = smooth_rgb()
    data, notes = encode_image(rgb, None, fmt)
    assert notes == ()
    img = read_image(data)
    assert img.color.shape == rgb.shape
    assert np.abs(img.color - rgb).mean() < tolerance


def test_lossy_quality_is_used() -> None:
    rgb = pattern((32, 32, 3), 8, seed=5)
    low = encode_image(rgb, None, "jpeg", quality=20)[0]
    high = encode_image(rgb, None, "jpeg")[0]
    assert len(low) < len(high)


def test_alpha_flattened_onto_white() -> None:
    color = np.array([[[10, 20, 30], [0, 0, 0], [200, 100, 50]]], np.uint8)
    alpha = np.array([[255, 128, 0]], np.uint8)
    data, notes = encode_image(color, alpha, "bmp")
    assert notes == ("alpha flattened onto white (BMP has no alpha)",)
    # 0 * 128/255 + 255 * 127/255 = 127; a transparent pixel is white whatever its colour.
    expected = np.array([[[10, 20, 30], [127, 127, 127], [255, 255, 255]]], np.float32)
    np.testing.assert_array_equal(read_image(data).color, expected)


def test_opaque_alpha_dropped_without_note() -> None:
    color, _ = _make("rgb", 8)
    data, notes = encode_image(color, np.full(color.shape[:2], 255, np.uint8), "jpeg")
    assert notes == ()


def test_sixteen_bit_reduced_for_8bit_formats() -> None:
    color = np.array([[0, 128, 32767, 65535]], np.uint16)
    data, notes = encode_image(color, None, "bmp")
    assert notes == ("reduced to 8-bit (BMP has no 16-bit)",)
    np.testing.assert_array_equal(read_image(data).color[..., 0], [[0, 0, 127, 255]])


def test_icc_profile_kept() -> None:
    cms = pytest.importorskip("PIL.ImageCms")
    profile = cms.ImageCmsProfile(cms.createProfile("sRGB")).tobytes()
    rgb = smooth_rgb(8, 8)
    for fmt in ("png", "jpeg", "tiff", "webp"):
        data, notes = encode_image(rgb, None, fmt, icc_profile=profile)
        assert notes == ()
        assert read_image(data).icc_profile == profile, fmt
    data, _ = encode_image(rgb.astype(np.uint16) * 257, None, "png", icc_profile=profile)
    assert read_image(data).icc_profile == profile
    _, notes = encode_image(rgb[..., 0], None, "png", icc_profile=profile)
    assert notes == ("ICC profile dropped (its colour space does not match the image)",)


def gray_icc() -> bytes:
    """An sRGB profile relabelled GRAY: what icc_fits reads is the data colour space at bytes 16..20."""
    cms = pytest.importorskip("PIL.ImageCms")
    profile = bytearray(cms.ImageCmsProfile(cms.createProfile("sRGB")).tobytes())
    profile[16:20] = b"GRAY"
    return bytes(profile)


def test_a_grey_profile_is_dropped_where_the_format_stores_grey_as_rgb() -> None:
    """0.2 kept a GRAY profile on a WebP that Pillow writes as RGB (the profile then lied)."""
    grey = smooth_rgb(8, 8)[..., 0]
    data, notes = encode_image(grey, None, "webp", icc_profile=gray_icc())
    assert notes == ("ICC profile dropped (a grey profile; WEBP stores grey as RGB)",)
    with Image.open(io.BytesIO(data)) as im:
        assert im.mode == "RGB" and "icc_profile" not in im.info
    data, notes = encode_image(grey, None, "png", icc_profile=gray_icc())  # PNG holds grey: kept
    assert notes == () and read_image(data).icc_profile == gray_icc()


def test_a_profile_that_no_longer_fits_the_pixels_is_said_at_decode(tmp_path: Path) -> None:
    """--gray on an RGB image with an RGB profile: 0.2 dropped the profile with no note."""
    cms = pytest.importorskip("PIL.ImageCms")
    profile = cms.ImageCmsProfile(cms.createProfile("sRGB")).tobytes()
    p = tmp_path / "rgb.png"
    Image.fromarray(smooth_rgb(8, 8)).save(p, icc_profile=profile)
    note = "ICC profile dropped (its RGB colour space does not fit 1-channel pixels)"
    assert note in read_header(p, gray=True).notes
    assert note not in read_header(p).notes
    assert read_image(p, gray=True).icc_profile is None


def test_png_compress_level() -> None:
    assert DEFAULT_PNG_COMPRESS_LEVEL == 1
    rgb = np.tile(smooth_rgb(), (4, 4, 1))
    fast = encode_image(rgb, None, "png")[0]
    small = encode_image(rgb, None, "png", compress_level=9)[0]
    assert len(small) < len(fast)


def test_encode_image_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="uint8 or uint16"):
        encode_image(np.zeros((2, 2), np.float32), None, "png")
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        encode_image(np.zeros((2, 2, 2), np.uint8), None, "png")
    with pytest.raises(ValueError, match="alpha"):
        encode_image(np.zeros((2, 2), np.uint8), np.zeros((2, 2), np.uint16), "png")
    with pytest.raises(UsageError, match="encode_float"):
        encode_image(np.zeros((2, 2), np.uint8), None, "npy")
    with pytest.raises(UsageError, match="unknown output format"):
        encode_image(np.zeros((2, 2), np.uint8), None, "ico")


def test_encode_float_npy() -> None:
    values = np.linspace(-3.5, 700.25, 2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    for arr in (values, values[..., 0], values[..., :1]):
        loaded = np.load(io.BytesIO(encode_float(arr, "npy")), allow_pickle=False)
        assert loaded.dtype == np.float32
        np.testing.assert_array_equal(loaded, arr, strict=True)  # the array's own shape, (2, 3, 1) too


def test_encode_float_tiff() -> None:
    values = np.linspace(-3.5, 700.25, 12, dtype=np.float32).reshape(3, 4)
    with Image.open(io.BytesIO(encode_float(values, "tiff"))) as im:
        assert im.mode == "F"
        np.testing.assert_array_equal(np.asarray(im), values)
    with pytest.raises(UsageError, match=r"\.npy"):
        encode_float(np.zeros((3, 4, 3), np.float32), "tiff")
    with pytest.raises(UsageError, match=r"\.npy"):
        encode_float(values, "png")


# ----------------------------------------------------------------------------- to_pixels


def test_clip_rounds_half_to_even_and_counts() -> None:
    values = np.array([[0.5, 1.5, 2.5, -0.4, 254.5, 255.4, 255.6, -3.0, 300.0, np.nan]])
    pixels, stats = to_pixels(values, "clip", 8)
    assert pixels.dtype == np.uint8
    np.testing.assert_array_equal(pixels, [[0, 2, 2, 0, 254, 255, 255, 0, 255, 0]])
    assert (stats.policy, stats.min, stats.max) == ("clip", -3.0, 300.0)
    assert stats.clipped_fraction == pytest.approx(4 / 10)  # 255.6, -3, 300, NaN


def test_abs() -> None:
    values = np.array([[-2.5, -3.5, 2.5, -300.0]], np.float32)
    pixels, stats = to_pixels(values, "abs", 8)
    np.testing.assert_array_equal(pixels, [[2, 4, 2, 255]])
    assert (stats.min, stats.max, stats.clipped_fraction) == (-300.0, 2.5, 0.25)


def test_normalize() -> None:
    pixels, stats = to_pixels(np.array([[-1.0, 0.0, 1.0]]), "normalize", 8)
    np.testing.assert_array_equal(pixels, [[0, 128, 255]])  # 127.5 -> 128 (half to even)
    assert (stats.min, stats.max, stats.clipped_fraction) == (-1.0, 1.0, 0.0)
    pixels, _ = to_pixels(np.array([[-1.0, 0.0, 1.0]]), "normalize", 16)
    assert pixels.dtype == np.uint16
    np.testing.assert_array_equal(pixels, [[0, 32768, 65535]])


def test_normalize_constant_image_is_zero() -> None:
    pixels, stats = to_pixels(np.full((3, 4, 3), 42.0, np.float32), "normalize", 8)
    assert not pixels.any() and (stats.min, stats.max) == (42.0, 42.0)


def test_to_pixels_16bit_clip() -> None:
    pixels, stats = to_pixels(np.array([[70000.0, 65534.5, -1.0]]), "clip", 16)
    np.testing.assert_array_equal(pixels, [[65535, 65534, 0]])
    assert stats.clipped_fraction == pytest.approx(2 / 3)


@pytest.mark.parametrize("policy", RANGE_POLICIES)
def test_bands_give_the_one_shot_answer(monkeypatch: pytest.MonkeyPatch, policy: str) -> None:
    rng = np.random.default_rng(7)
    values = rng.normal(100, 120, (37, 13, 3)).astype(np.float32)
    values[5, 5, 1] = np.nan
    original = values.copy()
    pixels, stats = to_pixels(values, policy, 8, band_bytes=200, threads=2)  # bands of ~1 row
    np.testing.assert_array_equal(values, original)  # input not modified
    v = np.nan_to_num(values.astype(np.float64), nan=0.0)
    finite = values[~np.isnan(values)].astype(np.float64)
    if policy == "normalize":
        ref = np.rint((v - finite.min()) * (255 / (finite.max() - finite.min())))
        ref[np.isnan(values)] = 0
        expected_clipped = 1
    else:
        ref = np.rint(np.abs(v) if policy == "abs" else v)
        expected_clipped = np.count_nonzero((ref < 0) | (ref > 255)) + 1
    np.testing.assert_array_equal(pixels, np.clip(ref, 0, 255).astype(np.uint8))
    assert stats.min == finite.min() and stats.max == finite.max()
    assert stats.clipped_fraction == pytest.approx(expected_clipped / values.size)


def test_to_pixels_rejects_bad_arguments() -> None:
    with pytest.raises(UsageError, match="range policy"):
        to_pixels(np.zeros((2, 2)), "wrap", 8)
    with pytest.raises(UsageError, match="bit depth"):
        to_pixels(np.zeros((2, 2)), "clip", 12)


# ----------------------------------------------------------------------------- write_atomic


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_write_atomic_writes_with_sane_mode(tmp_path: Path) -> None:
    p = tmp_path / "out.png"
    write_atomic(p, b"new data")
    assert p.read_bytes() == b"new data"
    assert p.stat().st_mode & 0o777 == 0o644 & ~_umask()
    write_atomic(p, iter([b"chunk1", b"chunk2"]))
    assert p.read_bytes() == b"chunk1chunk2"
    assert sorted(os.listdir(tmp_path)) == ["out.png"]


def test_write_atomic_keeps_the_permissions_of_a_file_it_writes_over(tmp_path: Path) -> None:
    """Like `cp` onto an existing file: 0.3 reset a private 0600 output to 0644 on every run."""
    p = tmp_path / "private.png"
    p.write_bytes(b"old")
    p.chmod(0o600)
    write_atomic(p, b"new")
    assert (p.read_bytes(), p.stat().st_mode & 0o7777) == (b"new", 0o600)
    p.chmod(0o4750)  # set-user-ID is not carried onto new contents
    write_atomic(p, b"newer")
    assert p.stat().st_mode & 0o7777 == 0o750


@pytest.mark.parametrize("char", ["é", "猫", "😺"])
def test_write_atomic_long_non_latin_name(tmp_path: Path, char: str) -> None:
    """NAME_MAX counts bytes: a 250-byte name of 2-, 3- or 4-byte characters is writable, and its
    temporary name (cut to 100 bytes, between characters) is too."""
    name = char * ((250 - 4) // len(char.encode())) + ".png"
    try:
        (tmp_path / name).write_bytes(b"probe")
    except OSError:
        pytest.skip("this file system does not take such a name")
    seen: list[str] = []
    real_replace = os.replace

    def replace(src: str, dst: object) -> None:
        seen.append(os.path.basename(src))
        real_replace(src, dst)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(iofiles.os, "replace", replace)
        write_atomic(tmp_path / name, b"data", tag="t")
    assert (tmp_path / name).read_bytes() == b"data" and os.listdir(tmp_path) == [name]
    assert seen[0].startswith("." + char) and len(seen[0].encode()) <= 255
    seen[0].encode("utf-8")  # whole characters only


def test_write_atomic_failed_rename_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "cat.sharpen.png"
    p.write_bytes(b"old")
    seen: list[str] = []

    def full_disk(src: str, dst: object) -> None:
        seen.append(os.path.basename(src))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(iofiles.os, "replace", full_disk)
    with pytest.raises(OutputError, match=r"^cannot write .*cat\.sharpen\.png: no space left on device$"):
        write_atomic(p, b"new")
    assert seen and seen[0].startswith(".cat.sharpen.png.tmp-")
    assert p.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["cat.sharpen.png"]


def test_write_atomic_interrupted_leaves_nothing(tmp_path: Path) -> None:
    def interrupted() -> Iterator[bytes]:
        yield b"half an image"
        raise KeyboardInterrupt

    p = tmp_path / "x.png"
    with pytest.raises(KeyboardInterrupt):
        write_atomic(p, interrupted())
    assert os.listdir(tmp_path) == []
    p.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt):
        write_atomic(p, interrupted())
    assert p.read_bytes() == b"old" and os.listdir(tmp_path) == ["x.png"]


def test_write_atomic_parent_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="not a directory$"):
        write_atomic(tmp_path / "file" / "x.png", b"data")


def test_write_atomic_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="no such directory$"):
        write_atomic(tmp_path / "missing" / "x.png", b"data")


def test_write_atomic_onto_directory(tmp_path: Path) -> None:
    (tmp_path / "x.png").mkdir()
    with pytest.raises(OutputError, match="is a directory$"):
        write_atomic(tmp_path / "x.png", b"data")
    assert os.listdir(tmp_path) == ["x.png"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_write_atomic_read_only_folder(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(OutputError, match="permission denied$"):
            write_atomic(folder / "x.png", b"data")
    finally:
        folder.chmod(0o755)


def test_png16_writer_matches_reference_decoder() -> None:
    samples = pattern((6, 5, 4), 16, seed=9)
    data = png16(samples)  # corpus's own filter-0 writer...
    _, colour_type, decoded = decode_png_reference(data)  # ...and the reference decoder agree
    assert colour_type == 6
    np.testing.assert_array_equal(decoded, samples)


def test_every_format_read_from_a_folder_is_named_when_refused_as_an_output(tmp_path: Path) -> None:
    """A folder batch reads QOI, JPEG 2000, SGI, DDS, ICNS...; ``-o x.qoi`` said it could not tell the
    output format, where ``-o x.tga`` said convcli reads TGA but cannot write it. Every format read
    by extension is in the one table."""
    from convcli.io.formats import READ_ONLY_EXTENSIONS

    for ext in (".qoi", ".jp2", ".sgi", ".dds", ".icns", ".msp", ".blp", ".pcx", ".tga", ".ico"):
        assert ext in READ_ONLY_EXTENSIONS
        with pytest.raises(UsageError, match=f"reads {READ_ONLY_EXTENSIONS[ext]} but cannot write it"):
            format_for_path(f"x{ext}")


@pytest.mark.parametrize(("dtype", "refused"), [(np.int8, True), (np.int16, True), (np.uint8, False),
                                                 (np.uint16, False), (np.int32, False)])
def test_signed_integer_tiff_is_refused_from_its_header(dtype: type, refused: bool, tmp_path: Path) -> None:
    """SampleFormat 2: Pillow read signed 8-bit samples as unsigned (-100 came out as 156, exit 0) and
    called signed 16-bit ones "32-bit". Refused from the header (dry runs too); unsigned read as stored."""
    from PIL import TiffImagePlugin

    values = np.array([[-100, -50], [0, 100]]) if refused else np.array([[1, 2], [3, 200]])
    path = tmp_path / "s.tif"
    if dtype is np.int32:  # Pillow writes mode I as signed 32-bit (SampleFormat 2) and reads it right
        Image.fromarray(values.astype(np.int32) * 300).save(path)
        np.testing.assert_array_equal(read_image(str(path)).color[:, :, 0], values * 300)
        return
    stored = values.astype(dtype).view(np.dtype(f"u{np.dtype(dtype).itemsize}"))
    ifd = TiffImagePlugin.ImageFileDirectory_v2()
    ifd[339] = 2 if refused else 1
    Image.fromarray(stored).save(path, tiffinfo=ifd)
    if refused:
        bits = 8 * np.dtype(dtype).itemsize
        with pytest.raises(InputError, match=f"signed {bits}-bit integer TIFF"):
            read_header(str(path))
    else:
        np.testing.assert_array_equal(read_image(str(path)).color[:, :, 0], values)


def test_the_umask_read_without_proc_is_not_changed_by_two_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where /proc is missing (macOS, BSD) the umask is read by setting it and back; two threads doing
    that at once (Dask workers write from threads) could leave 0o022 set for good."""
    import builtins
    import threading
    import time

    real_open, real_umask = builtins.open, os.umask

    def no_proc(path: object, *a: object, **k: object) -> object:
        if str(path) == "/proc/self/status":
            raise OSError("no /proc")
        return real_open(path, *a, **k)  # type: ignore[call-overload]

    def slow_umask(mask: int) -> int:  # widen the window between the set and the set back
        old = real_umask(mask)
        time.sleep(0.05)
        return old

    before = real_umask(0o077)
    try:
        monkeypatch.setattr(builtins, "open", no_proc)
        monkeypatch.setattr(iofiles.os, "umask", slow_umask)
        iofiles._umask.cache_clear()
        seen: list[int] = []
        threads = [threading.Thread(target=lambda: seen.append(iofiles._umask())) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        monkeypatch.undo()
        now = real_umask(0o077)
        assert seen == [0o077, 0o077] and now == 0o077
    finally:
        real_umask(before)
        iofiles._umask.cache_clear()
