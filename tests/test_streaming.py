"""The streaming path (convcli.streaming): pixels against the float64 reference, and bit-identity
with the whole-image path where the streaming docstring promises it."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from reference import ref_correlate_scipy

from convcli import streaming
from convcli.core.kernels import gaussian_kernel, get_kernel
from convcli.core.padding import MODES, pad_array, resolve_mode, source_rows
from convcli.core.shapes import GeometrySpec
from convcli.io import decode as iodecode
from convcli.io.png import decode_png
from convcli.pipeline import (
    CorrelateStage,
    EngineOptions,
    GradientStage,
    Pipeline,
    WindowStage,
    make_correlate_stage,
)
from convcli.run import job as runner
from convcli.run.job import Job

PAD_MODES = ("zeros", "border", "reflection", "symmetric", "circular")


# ------------------------------------------------------------------ source_rows vs pad_array


@pytest.mark.parametrize("mode", PAD_MODES)
@pytest.mark.parametrize("n", [1, 2, 3, 5, 8])
def test_source_rows_matches_pad_array(mode: str, n: int) -> None:
    x = np.arange(1, n + 1, dtype=np.float32)[:, None]
    for top in (0, 1, 2, 3, 7, 13, 41):
        for bottom in (0, 1, 4, 17, 50):
            want = pad_array(x, (top, bottom, 0, 0), mode)[:, 0]
            src, valid = source_rows(np.arange(-top, n + bottom), n, mode)
            got = x[src, 0].copy()
            if valid is not None:
                got[~valid] = 0
            np.testing.assert_array_equal(got, want, err_msg=f"{mode} n={n} pads={top},{bottom}")


@pytest.mark.parametrize("mode", PAD_MODES)
def test_source_rows_of_any_window_match_pad_array(mode: str) -> None:
    """The engine asks band by band (a window of the padded axis, often wholly inside the image),
    not for the whole axis at once."""
    rng = np.random.default_rng(3)
    for n in (1, 2, 7, 30):
        x = np.arange(1, n + 1, dtype=np.float32)[:, None]
        top, bottom = int(rng.integers(0, 70)), int(rng.integers(0, 70))
        want = pad_array(x, (top, bottom, 0, 0), mode)[:, 0]
        for _ in range(40):
            a = int(rng.integers(0, want.size))
            b = int(rng.integers(a + 1, want.size + 1))
            src, valid = source_rows(np.arange(a - top, b - top), n, mode)
            got = x[src, 0].copy()
            if valid is not None:
                got[~valid] = 0
            np.testing.assert_array_equal(got, want[a:b], err_msg=f"{mode} n={n} window {a}:{b}")


def test_source_rows_valid_takes_no_padding() -> None:
    src, valid = source_rows(np.arange(2, 5), 6, "valid")
    assert valid is None and src.tolist() == [2, 3, 4]
    with pytest.raises(Exception, match="no padding"):
        source_rows(np.arange(-1, 3), 6, "valid")


def test_source_rows_every_mode_is_covered() -> None:
    assert set(PAD_MODES) | {"valid"} == set(MODES)
    assert resolve_mode("reflect101").name == "reflection"


# ------------------------------------------------------------------ whole command, both paths


def _write(path: Path, arr: np.ndarray) -> Path:
    if arr.dtype == np.uint16 and arr.ndim == 3:
        from convcli.io.png import encode_png

        path.write_bytes(encode_png(arr, None))
    else:
        Image.fromarray(arr).save(path)
    return path


def _image(rng: np.random.Generator, h: int, w: int, channels: int, bits: int) -> np.ndarray:
    maxval = (1 << bits) - 1
    a = rng.integers(0, maxval + 1, size=(h, w, channels) if channels == 3 else (h, w))
    return a.astype(np.uint16 if bits == 16 else np.uint8)


def _run(job: Job, out: Path) -> tuple[dict[str, Any], np.ndarray]:
    record = runner.process(dataclasses.replace(job, output=str(out))).record
    record = {k: v for k, v in record.items() if k not in ("seconds", "output")}
    return record, decode_png(out.read_bytes())


def _stage(kind: str, padding: str, stride: tuple[int, int], dilation: tuple[int, int]) -> WindowStage:
    if kind == "sobel":
        kx, ky = get_kernel("sobel-x"), get_kernel("sobel-y")
        mode = resolve_mode(padding)
        from convcli.core.shapes import resolve_pad

        pad = resolve_pad(None, kx.shape, dilation, mode.name)
        return GradientStage(op="edges", kx=kx, ky=ky, stride=stride, dilation=dilation, padding=mode,
                             pad=pad)
    kernel = gaussian_kernel(int(kind[8:])) if kind.startswith("gaussian") else get_kernel(kind)
    geo = GeometrySpec(stride=stride, dilation=dilation, padding=padding)
    return make_correlate_stage("filter", kernel, geo)


def _reference(x: np.ndarray, stage: WindowStage) -> np.ndarray:
    """The stage's float64 values from tests/reference.py (scipy.ndimage), (H', W', C)."""
    x3 = x[:, :, None] if x.ndim == 2 else x
    geo: dict[str, Any] = {"stride": stage.stride, "dilation": stage.dilation, "pad4": stage.pad,
                           "mode": stage.padding.name}

    def plane(c: int, k: np.ndarray) -> np.ndarray:
        return ref_correlate_scipy(x3[:, :, c], k[::-1, ::-1] if stage.flip else k, **geo)

    if isinstance(stage, GradientStage):
        assert stage.kx is not None and stage.ky is not None
        return np.stack([np.hypot(plane(c, stage.kx.weights), plane(c, stage.ky.weights))
                         for c in range(x3.shape[2])], axis=2)
    assert isinstance(stage, CorrelateStage)
    return np.stack([plane(c, stage.weights) for c in range(x3.shape[2])], axis=2)


def _expected_pixels(ref: np.ndarray, policy: str, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixels by the --range definition from float64 values, and where a value is within 1e-3
    of a rounding tie (there float32 arithmetic may round the other way)."""
    v = np.abs(ref) if policy == "abs" else ref
    near_tie = np.abs(v - np.floor(v) - 0.5) < 1e-3 + 2e-6 * np.abs(v)  # float32: a few ulps
    pix = np.clip(np.rint(v), 0, (1 << bits) - 1).astype(np.uint16 if bits == 16 else np.uint8)
    return pix, near_tie


def _assert_pixels(got: np.ndarray, ref: np.ndarray, policy: str, bits: int) -> None:
    want, near_tie = _expected_pixels(ref, policy, bits)
    got3 = got.reshape(want.shape)
    np.testing.assert_array_equal(got3[~near_tie], want[~near_tie])
    assert np.abs(got3.astype(int) - want.astype(int)).max(initial=0) <= 1


CASES = [
    # kernel, padding, stride, dilation, channels, bits, (h, w), range policy
    ("sharpen", "reflection", (1, 1), (1, 1), 3, 8, (97, 61), None),
    ("sharpen", "zeros", (2, 2), (1, 1), 1, 8, (64, 33), None),
    ("laplacian", "border", (1, 1), (2, 2), 3, 16, (53, 40), "abs"),
    ("emboss", "symmetric", (3, 2), (1, 1), 3, 8, (71, 70), None),
    ("sobel", "circular", (1, 1), (1, 1), 1, 16, (45, 38), None),
    ("sobel", "reflection", (2, 1), (1, 3), 3, 8, (89, 57), None),
    ("sharpen", "valid", (1, 1), (1, 1), 3, 8, (31, 29), None),
    ("laplacian", "zeros", (1, 1), (1, 1), 1, 8, (1, 17), "abs"),
    ("sharpen", "reflection", (1, 1), (1, 1), 1, 16, (2, 5), None),
    ("gaussian15", "reflection", (1, 1), (1, 1), 3, 8, (67, 45), None),
    ("box5", "circular", (1, 1), (1, 1), 3, 8, (40, 31), None),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(map(str, c[:6])))
@pytest.mark.parametrize(("chunk_bytes", "band_bytes", "threads"),
                         [(64, 64, 1), (64, 300, 2), (1 << 20, None, 2)])
def test_stream_stage_matches_the_reference(case: tuple[Any, ...], chunk_bytes: int, band_bytes: int | None,
                                            threads: int, rng: np.random.Generator) -> None:
    """Chunks of one or two rows (64 bytes) and whole images, engine bands tiny or default."""
    kind, padding, stride, dilation, channels, bits, (h, w), policy = case
    x = _image(rng, h, w, channels, bits)
    stage = _stage(kind, padding, stride, dilation)
    policy = policy or "clip"
    pix, stats = streaming.stream_stage(x, stage, EngineOptions(band_bytes=band_bytes), policy=policy,
                                        bits=bits, threads=threads, chunk_bytes=chunk_bytes)
    ref = _reference(x, stage)
    _assert_pixels(pix, ref, policy, bits)
    v = np.abs(ref) if policy == "abs" else ref
    assert (stats.min, stats.max) == pytest.approx((float(ref.min()), float(ref.max())), rel=1e-6, abs=1e-3)
    clipped = np.count_nonzero((np.rint(v) < 0) | (np.rint(v) > (1 << bits) - 1)) / v.size
    assert stats.clipped_fraction == pytest.approx(clipped, abs=2 / v.size)


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(map(str, c[:6])))
def test_streamed_command_matches_the_reference(case: tuple[Any, ...], tmp_path: Path,
                                                rng: np.random.Generator) -> None:
    kind, padding, stride, dilation, channels, bits, (h, w), policy = case
    x = _image(rng, h, w, channels, bits)
    src = _write(tmp_path / "in.png", x)
    stage = _stage(kind, padding, stride, dilation)
    pipeline = Pipeline((stage,))
    assert streaming.can_stream(streaming.window_stage(pipeline), (h, w, channels), policy or "clip")
    job = Job(source=str(src), output=None, pipeline=pipeline, policy=policy or "clip")
    record, pix = _run(job, tmp_path / "out.png")
    ref = _reference(x, stage)
    _assert_pixels(pix, ref, policy or "clip", bits)
    assert record["status"] == "ok" and record["range"]["policy"] == (policy or "clip")
    assert record["output_shape"] == [1, channels, *ref.shape[:2]]
    assert record["range"]["max"] == pytest.approx(float(ref.max()), rel=1e-6, abs=1e-3)  # before abs


@pytest.mark.parametrize("kind", ["gaussian7", "gaussian15", "sobel"])
@pytest.mark.parametrize("bits", [8, 16])
def test_streamed_blur_is_bit_identical_to_the_whole_image(kind: str, bits: int, tmp_path: Path,
                                                           rng: np.random.Generator) -> None:
    """Float-path kernels (no exact int16 form): the streamed command writes the pixels the
    whole-image path computes, bit for bit (chunks fall on the engine's band grid). The
    whole-image values come from the same command writing raw floats (.npy), which never streams."""
    x = _image(rng, 150, 70, 3, bits)
    src = _write(tmp_path / "in.png", x)
    stage = _stage(kind, "reflection", (1, 1), (1, 1))
    job = Job(source=str(src), output=None, pipeline=Pipeline((stage,)))
    _, pix = _run(job, tmp_path / "out.png")
    raw = dataclasses.replace(job, output=str(tmp_path / "raw.npy"), fmt="npy",
                              kind="float")
    runner.process(raw)
    values = np.load(tmp_path / "raw.npy").astype(np.float64)
    whole = np.clip(np.rint(values), 0, (1 << bits) - 1)
    np.testing.assert_array_equal(pix.reshape(whole.shape), whole)
    for chunk_bytes in (64, 30_000):  # one engine band a chunk, several: same bits
        for threads in (1, 2):
            small, _ = streaming.stream_stage(x, stage, EngineOptions(), policy="clip", bits=bits,
                                              threads=threads, chunk_bytes=chunk_bytes)
            np.testing.assert_array_equal(small, whole)
    _assert_pixels(pix, _reference(x, stage), "clip", bits)


@pytest.mark.parametrize("bit_depth", ["8", "16"])
def test_streaming_with_another_output_depth(bit_depth: str, tmp_path: Path,
                                             rng: np.random.Generator) -> None:
    in_bits = 16 if bit_depth == "8" else 8
    x = _image(rng, 40, 23, 3, in_bits)
    src = _write(tmp_path / "in.png", x)
    stage = _stage("sharpen", "reflection", (1, 1), (1, 1))
    job = Job(source=str(src), output=None, pipeline=Pipeline((stage,)),
              bits=int(bit_depth))
    record, pix = _run(job, tmp_path / "b.png")
    bits = int(bit_depth)
    ref = _reference(x, stage) * (((1 << bits) - 1) / ((1 << in_bits) - 1))
    _assert_pixels(pix, ref, "clip", bits)
    assert record["range"]["max"] == pytest.approx(float(ref.max()), rel=1e-6)


def test_which_jobs_stream(tmp_path: Path, rng: np.random.Generator) -> None:
    from convcli.io.decode import read_header

    src = _write(tmp_path / "in.png", _image(rng, 20, 20, 3, 8))
    header = read_header(src)
    sharpen = Pipeline((_stage("sharpen", "reflection", (1, 1), (1, 1)),))
    blur = Pipeline((_stage("gaussian7", "reflection", (1, 1), (1, 1)),))

    def job(pipeline: Pipeline, **kw: Any) -> Job:
        return Job(source=str(src), output="x.png", pipeline=pipeline, **kw)

    assert runner._streams(job(sharpen), header)
    assert runner._streams(job(blur), header)  # every window stage streams (see the streaming docstring)
    assert not runner._streams(job(sharpen, linear_light=True), header)
    assert not runner._streams(job(sharpen, montage="m"), header)
    assert runner._streams(job(sharpen, gray=True), header)  # float luminance: the float path
    assert not runner._streams(job(sharpen, policy="normalize"), header)
    as_npy = dataclasses.replace(job(sharpen), output="x.npy", fmt="npy", kind="float")
    assert not runner._streams(as_npy, header)
    assert not runner._streams(job(Pipeline(sharpen.stages * 2)), header)


@pytest.mark.parametrize("policy", ["clip", "abs"])
@pytest.mark.parametrize("bits", [8, 16])
def test_to_pixels_local_policies_match_the_definition(
        policy: str, bits: int, monkeypatch: pytest.MonkeyPatch, rng: np.random.Generator) -> None:
    from convcli.core.pixels import to_pixels

    v = rng.normal(100, 300, size=(67, 31, 3)).astype(np.float32)
    v.flat[::97], v.flat[5::101], v.flat[7::103] = np.nan, np.inf, -np.inf
    v[10:20] = np.nan  # whole bands of NaN
    got, stats = to_pixels(v, policy, bits, band_bytes=4000, threads=3)  # many bands, on threads
    maxval = (1 << bits) - 1
    w = v.astype(np.float64)
    nan = np.isnan(w)
    r = np.rint(np.abs(w) if policy == "abs" else w)
    changed = np.count_nonzero(nan | (r < 0) | (r > maxval))
    r[nan] = 0
    np.testing.assert_array_equal(got, np.rint(np.clip(r, 0, maxval)).astype(got.dtype))
    assert (stats.min, stats.max) == (float(np.nanmin(w)), float(np.nanmax(w)))
    assert stats.clipped_fraction == changed / v.size


@pytest.mark.parametrize("kind", ["L", "RGB", "RGBA", "I;16", "RGB16", "P", "gray"])
def test_read_image_keep_integer(kind: str, tmp_path: Path, rng: np.random.Generator) -> None:
    from convcli.io.decode import read_image

    path = tmp_path / "x.png"
    if kind == "RGB16":
        _write(path, _image(rng, 9, 7, 3, 16))
    elif kind == "I;16":
        Image.fromarray(_image(rng, 9, 7, 1, 16)).save(path)
    elif kind == "P":
        Image.fromarray(_image(rng, 9, 7, 3, 8)).convert("P").save(path)
    else:
        arr = _image(rng, 9, 7, 3, 8)
        Image.fromarray(arr).convert("RGB" if kind == "gray" else kind).save(path)
    gray = kind == "gray"
    want = read_image(path, gray=gray)
    got = read_image(path, gray=gray, keep_integer=True)
    assert got.header == want.header
    expected = np.uint16 if want.header.bit_depth == 16 else np.uint8
    # --gray: Pillow's own L conversion stays integral; luminance computed here is float32
    assert got.color.dtype == expected or (gray and got.color.dtype == np.float32)
    np.testing.assert_array_equal(got.color.astype(np.float32), want.color)
    if want.alpha is None:
        assert got.alpha is None
    else:
        assert got.alpha is not None and got.alpha.dtype == expected
        np.testing.assert_array_equal(got.alpha.astype(np.float32), want.alpha)


def _pillow_image(mode: str, rng: np.random.Generator) -> Image.Image:
    if mode == "I":
        return Image.fromarray(rng.integers(0, 60000, size=(23, 11)).astype(np.int32))
    if mode == "I;16":
        return Image.fromarray(rng.integers(0, 65536, size=(23, 11), dtype=np.uint16))
    rgba = Image.fromarray(rng.integers(0, 256, size=(23, 11, 4), dtype=np.uint8))
    return rgba.convert(mode) if mode in ("LA", "RGBA") else rgba.convert("RGB").convert(mode)


@pytest.mark.parametrize("mode", ["1", "L", "LA", "RGB", "RGBA", "I;16", "I", "P", "CMYK"])
def test_pillow_array_copied_in_bands(mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      rng: np.random.Generator) -> None:
    from convcli.io.decode import read_image

    im = _pillow_image(mode, rng)
    path = tmp_path / ("x.tif" if mode in ("I", "CMYK") else "x.png")
    im.save(path)
    whole = read_image(path, keep_integer=True)
    monkeypatch.setattr(iodecode, "BANDED_ARRAY_MIN_PIXELS", 1)
    monkeypatch.setattr(iodecode, "_ARRAY_BAND_BYTES", 50)  # a row or two a band
    banded = read_image(path, keep_integer=True)
    np.testing.assert_array_equal(banded.color, whole.color)
    assert banded.color.dtype == whole.color.dtype
    if whole.alpha is not None:
        assert banded.alpha is not None
        np.testing.assert_array_equal(banded.alpha, whole.alpha)
