"""The streaming path (convcli.streaming) against the whole-image path: same records, same pixels."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from convcli import streaming
from convcli.core.kernels import gaussian_kernel, get_kernel
from convcli.core.padding import MODES, pad_array, resolve_mode, source_rows
from convcli.io import decode as iodecode
from convcli.io.png import decode_png
from convcli.pipeline import GradientStage, Pipeline, WindowStage, make_correlate_stage
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
        from convcli.io.png import encode_png16

        path.write_bytes(encode_png16(arr, None))
    else:
        Image.fromarray(arr).save(path)
    return path


def _image(rng: np.random.Generator, h: int, w: int, channels: int, bits: int) -> np.ndarray:
    maxval = (1 << bits) - 1
    a = rng.integers(0, maxval + 1, size=(h, w, channels) if channels == 3 else (h, w))
    return a.astype(np.uint16 if bits == 16 else np.uint8)


def _run(job: Job, out: Path, *, stream: bool,
         monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, Any], np.ndarray]:
    with monkeypatch.context() as m:
        if not stream:
            m.setattr(runner, "_streams", lambda job, header: False)
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
    kernel = gaussian_kernel(7) if kind == "gaussian7" else get_kernel(kind)
    return make_correlate_stage("filter", kernel, stride=stride, dilation=dilation, padding=padding)


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
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(map(str, c[:6])))
@pytest.mark.parametrize("band_bytes", [64, 1 << 20])
def test_streaming_matches_whole_image(case: tuple[Any, ...], band_bytes: int, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch,
                                       rng: np.random.Generator) -> None:
    kind, padding, stride, dilation, channels, bits, (h, w), policy = case
    monkeypatch.setattr(streaming, "BAND_BYTES", band_bytes)  # 64: one or two rows a band
    src = _write(tmp_path / "in.png", _image(rng, h, w, channels, bits))
    stage = _stage(kind, padding, stride, dilation)
    job = Job(source=str(src), output=None, pipeline=Pipeline((stage,)),
              policy=policy or "clip")
    from convcli.io.decode import read_header

    assert runner._streams(job, read_header(src))
    rec_a, pix_a = _run(job, tmp_path / "a.png", stream=False, monkeypatch=monkeypatch)
    rec_b, pix_b = _run(job, tmp_path / "b.png", stream=True, monkeypatch=monkeypatch)
    assert rec_b == rec_a
    np.testing.assert_array_equal(pix_b, pix_a)


@pytest.mark.parametrize("bit_depth", ["8", "16"])
def test_streaming_with_another_output_depth(bit_depth: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             rng: np.random.Generator) -> None:
    monkeypatch.setattr(streaming, "BAND_BYTES", 500)
    src = _write(tmp_path / "in.png", _image(rng, 40, 23, 3, 16 if bit_depth == "8" else 8))
    stage = _stage("sharpen", "reflection", (1, 1), (1, 1))
    job = Job(source=str(src), output=None, pipeline=Pipeline((stage,)),
              bits=int(bit_depth))
    rec_a, pix_a = _run(job, tmp_path / "a.png", stream=False, monkeypatch=monkeypatch)
    rec_b, pix_b = _run(job, tmp_path / "b.png", stream=True, monkeypatch=monkeypatch)
    assert rec_b == rec_a
    np.testing.assert_array_equal(pix_b, pix_a)


def test_which_jobs_stream(tmp_path: Path, rng: np.random.Generator) -> None:
    from convcli.io.decode import read_header

    src = _write(tmp_path / "in.png", _image(rng, 20, 20, 3, 8))
    header = read_header(src)
    sharpen = Pipeline((_stage("sharpen", "reflection", (1, 1), (1, 1)),))
    blur = Pipeline((_stage("gaussian7", "reflection", (1, 1), (1, 1)),))

    def job(pipeline: Pipeline, **kw: Any) -> Job:
        return Job(source=str(src), output="x.png", pipeline=pipeline, **kw)

    assert runner._streams(job(sharpen), header)
    assert runner._streams(job(blur), header) is streaming.STREAM_INEXACT  # inexact sums: see streaming
    assert not runner._streams(job(sharpen, linear_light=True), header)
    assert not runner._streams(job(sharpen, montage="m"), header)
    assert runner._streams(job(sharpen, gray=True), header) is streaming.STREAM_INEXACT  # float luminance
    assert not runner._streams(job(sharpen, policy="normalize"), header)
    as_npy = dataclasses.replace(job(sharpen), output="x.npy", fmt="npy", kind="float")
    assert not runner._streams(as_npy, header)
    assert not runner._streams(job(Pipeline(sharpen.stages * 2)), header)


def test_inexact_kernels_when_allowed_differ_by_at_most_one_level(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rng: np.random.Generator) -> None:
    monkeypatch.setattr(streaming, "BAND_BYTES", 3000)
    src = _write(tmp_path / "in.png", _image(rng, 70, 50, 3, 8))
    stage = _stage("gaussian7", "reflection", (1, 1), (1, 1))
    job = Job(source=str(src), output=None, pipeline=Pipeline((stage,)))
    rec_a, pix_a = _run(job, tmp_path / "a.png", stream=False, monkeypatch=monkeypatch)
    monkeypatch.setattr(streaming, "STREAM_INEXACT", True)
    rec_b, pix_b = _run(job, tmp_path / "b.png", stream=True, monkeypatch=monkeypatch)
    assert rec_b.keys() == rec_a.keys()
    for key in ("min", "max"):
        assert rec_b["range"][key] == pytest.approx(rec_a["range"][key], rel=1e-6)
    assert np.abs(pix_b.astype(int) - pix_a.astype(int)).max() <= 1


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
