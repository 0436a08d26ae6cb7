"""correlate_pixels / gradient_pixels: the engine writing uint8/uint16 pixels band by band.

Two kinds of checks:

- against the float engine followed by ``to_pixels`` (the definition the streamed command relied on):
  the pixels and the stats must be the same bit for bit, whatever the bands, threads, bias or rescale;
- against an independent float64 reference (scipy.ndimage, tests/reference.py) rounded half to even
  and clipped by hand: exactly where the engine's arithmetic is exact (8-bit input, integer kernels,
  boxes), elsewhere away from rounding ties (float32 sums may round a tie either way).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from reference import ref_correlate_loop, ref_correlate_scipy

from convcli.core.pixels import PixelSpec, merge_stats, to_pixels
from convcli.engine import correlate2d, correlate_pixels, gradient_magnitude, gradient_pixels
from convcli.errors import UsageError

MODES = ("zeros", "border", "reflection", "symmetric", "circular", "valid")
SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64)


@st.composite
def cases(draw: st.DrawFn) -> dict[str, Any]:
    """An image, a kernel and a geometry with a non-empty output."""
    kind = draw(st.sampled_from(["int", "box", "scaled", "float", "rank1"]))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if kind == "int":
        k = rng.integers(-3, 6, (kh, kw)).astype(np.float64)
    elif kind == "box":
        k = np.full((kh, kw), 1.0 / (kh * kw))
    elif kind == "scaled":
        k = rng.integers(0, 4, (kh, kw)).astype(np.float64) / draw(st.sampled_from([3.0, 8.0, 10.0, 16.0]))
    elif kind == "float":
        k = rng.normal(size=(kh, kw))
    else:
        k = np.outer(rng.normal(size=kh), rng.normal(size=kw))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    mode = draw(st.sampled_from(MODES))
    pad = (0, 0, 0, 0) if mode == "valid" else tuple(draw(st.integers(0, 3)) for _ in range(4))
    need_h = (kh - 1) * dilation[0] + 1 - pad[0] - pad[1]
    need_w = (kw - 1) * dilation[1] + 1 - pad[2] - pad[3]
    h = draw(st.integers(max(1, need_h), max(1, need_h) + 20))
    w = draw(st.integers(max(1, need_w), max(1, need_w) + 20))
    channels = draw(st.sampled_from([0, 1, 3]))
    dtype = draw(st.sampled_from([np.uint8, np.uint16]))
    top = 255 if dtype == np.uint8 else 65535
    shape = (h, w) if channels == 0 else (h, w, channels)
    x = rng.integers(0, top + 1, shape).astype(dtype)
    return {"x": x, "k": k, "kind": kind, "geo": {"stride": stride, "dilation": dilation, "pad": pad,
                                                  "mode": mode}}


def _float_then_pixels(x: np.ndarray, k: np.ndarray, geo: dict[str, Any], spec: PixelSpec, bias: float,
                       **kw: Any) -> tuple[np.ndarray, Any]:
    """The definition: the float engine, + bias and * rescale in float32 as a stage does, to_pixels."""
    v = correlate2d(x, k, **geo, **kw)
    if bias:
        v += np.float32(bias)
    if spec.rescale != 1.0:
        v *= np.float32(spec.rescale)
    return to_pixels(v, spec.policy, spec.bits)


@given(case=cases(), policy=st.sampled_from(["clip", "abs"]), bits=st.sampled_from([8, 16]),
       rescale=st.sampled_from([1.0, 257.0, 1 / 257]), bias=st.sampled_from([0.0, 0.0, -20.5, 3.25]),
       band_bytes=st.sampled_from([64, 700, 5000, 1_500_000]), threads=st.sampled_from([1, 2]))
def test_pixels_are_to_pixels_of_the_float_result_bit_for_bit(case: dict[str, Any], policy: str, bits: int,
                                                              rescale: float, bias: float, band_bytes: int,
                                                              threads: int) -> None:
    spec = PixelSpec(policy, bits, rescale)
    kw = {"band_bytes": band_bytes, "threads": threads}
    want, want_stats = _float_then_pixels(case["x"], case["k"], case["geo"], spec, bias, **kw)
    got, stats = correlate_pixels(case["x"], case["k"], spec, bias=bias, **case["geo"], **kw)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
    assert stats == want_stats


def _rounded(v: np.ndarray, policy: str, bits: int) -> np.ndarray:
    """The --range definition by hand: |v| for abs, round half to even, clip to 0..maxval."""
    r = np.rint(np.abs(v) if policy == "abs" else v)
    return np.clip(r, 0, (1 << bits) - 1)


def _reference(x: np.ndarray, k: np.ndarray, geo: dict[str, Any]) -> np.ndarray:
    return ref_correlate_scipy(x, k, geo["stride"], geo["dilation"], geo["pad"], geo["mode"])


@given(case=cases(), policy=st.sampled_from(["clip", "abs"]), bits=st.sampled_from([8, 16]),
       band_bytes=st.sampled_from([64, 5000, 1_500_000]))
def test_pixels_match_the_float64_reference(case: dict[str, Any], policy: str, bits: int,
                                            band_bytes: int) -> None:
    x, k, geo = case["x"], case["k"], case["geo"]
    ref = _reference(x, k, geo)
    got, stats = correlate_pixels(x, k, PixelSpec(policy, bits), **geo, band_bytes=band_bytes, threads=2)
    want = _rounded(ref, policy, bits)
    assert got.shape == ref.shape
    if x.dtype == np.uint8 and case["kind"] in ("int", "box"):
        # int16 sums are exact; a box's one scaling cannot move a sum across a rounding tie
        # (odd n: no ties; n a power of two: the scale is exact).
        np.testing.assert_array_equal(got, want)
        assert stats.min == pytest.approx(ref.min(), rel=1e-6, abs=1e-6)
        assert stats.max == pytest.approx(ref.max(), rel=1e-6, abs=1e-6)
        if case["kind"] == "int":
            r = np.rint(np.abs(ref) if policy == "abs" else ref)
            clipped = np.count_nonzero((r < 0) | (r > (1 << bits) - 1))
            assert stats.clipped_fraction == clipped / ref.size
        return
    # float32 arithmetic: within the engine's 1e-4 relative contract of the reference
    tol = 1e-4 * max(1.0, float(np.abs(ref).max()))
    v = np.abs(ref) if policy == "abs" else ref
    near = np.abs(v - np.floor(v) - 0.5) <= tol
    diff = np.abs(got.astype(np.float64) - want)
    assert diff[~near].max(initial=0) == 0
    assert diff.max(initial=0) <= 1 + 2 * tol
    assert stats.min == pytest.approx(ref.min(), abs=tol)
    assert stats.max == pytest.approx(ref.max(), abs=tol)


@pytest.mark.parametrize("n", [3, 4, 5, 7, 8])
@pytest.mark.parametrize("mode", ["reflection", "zeros", "circular"])
def test_box_pixels_are_the_correctly_rounded_mean(n: int, mode: str, rng: np.random.Generator) -> None:
    """A box on 8-bit input: exact int16 sums and one scaling give round-half-even(sum / n²), checked
    against a direct float64 loop."""
    x = rng.integers(0, 256, (23, 19, 3)).astype(np.uint8)
    k = np.full((n, n), 1.0 / (n * n))
    p = n // 2
    pad = (p, n - 1 - p, p, n - 1 - p)
    got, stats = correlate_pixels(x, k, PixelSpec("clip", 8), pad=pad, mode=mode, band_bytes=200)
    ref = ref_correlate_loop(x, k, 1, 1, pad, mode)
    np.testing.assert_array_equal(got, _rounded(ref, "clip", 8))
    assert stats.clipped_fraction == 0.0


@pytest.mark.parametrize("policy", ["clip", "abs"])
@pytest.mark.parametrize("bits", [8, 16])
def test_sharpen_int16_pixels_equal_the_loop_reference(policy: str, bits: int,
                                                       rng: np.random.Generator) -> None:
    """An integer kernel on 8-bit input goes int16 -> pixels with no float: exact, clipped counts too."""
    k = np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], dtype=np.float64)
    x = rng.integers(0, 256, (31, 17, 3)).astype(np.uint8)
    got, stats = correlate_pixels(x, k, PixelSpec(policy, bits), pad=(1, 1, 1, 1), mode="reflection",
                                  band_bytes=300)
    ref = ref_correlate_loop(x, k, 1, 1, (1, 1, 1, 1), "reflection")
    want = _rounded(ref, policy, bits)
    np.testing.assert_array_equal(got, want)
    r = np.abs(ref) if policy == "abs" else ref
    assert (stats.min, stats.max) == (ref.min(), ref.max())
    assert stats.clipped_fraction == np.count_nonzero((r < 0) | (r > (1 << bits) - 1)) / ref.size
    assert stats.clipped_fraction > 0 or bits == 16


@given(seed=st.integers(0, 2**32 - 1), gray=st.booleans(), dtype=st.sampled_from([np.uint8, np.uint16]),
       policy=st.sampled_from(["clip", "abs"]), bits=st.sampled_from([8, 16]),
       mode=st.sampled_from(MODES[:-1]), stride=st.integers(1, 2),
       band_bytes=st.sampled_from([64, 1_500_000]))
def test_gradient_pixels_are_to_pixels_of_the_magnitude(seed: int, gray: bool, dtype: type, policy: str,
                                                        bits: int, mode: str, stride: int,
                                                        band_bytes: int) -> None:
    rng = np.random.default_rng(seed)
    shape = (17, 13) if gray else (17, 13, 3)
    x = rng.integers(0, np.iinfo(dtype).max + 1, shape).astype(dtype)
    geo = {"pad": (1, 1, 1, 1), "mode": mode, "stride": (stride, stride), "band_bytes": band_bytes}
    want, want_stats = to_pixels(gradient_magnitude(x, SOBEL_X, SOBEL_X.T, **geo), policy, bits)
    got, stats = gradient_pixels(x, SOBEL_X, SOBEL_X.T, PixelSpec(policy, bits), **geo)
    np.testing.assert_array_equal(got, want)
    assert stats == want_stats


def test_row_ranges_with_band_stats_merge_to_the_whole(rng: np.random.Generator) -> None:
    """Calls on ranges of rows cut at the band grid give the whole call's pixels, and their band
    stats merge to its stats exactly."""
    from convcli.engine import band_height

    x = rng.integers(0, 256, (57, 21, 3)).astype(np.uint8)
    k = rng.normal(size=(5, 5))
    spec = PixelSpec("clip", 8)
    geo = {"pad": (2, 2, 2, 2), "mode": "symmetric", "band_bytes": 500}
    whole, whole_stats = correlate_pixels(x, k, spec, **geo)
    step = 2 * band_height(x, k, **geo)
    out = np.empty_like(whole)
    parts: list[Any] = []
    for y0 in range(0, 57, step):
        y1 = min(57, y0 + step)
        correlate_pixels(x, k, spec, **geo, rows=(y0, y1), out=out[y0:y1], band_stats=parts)
    np.testing.assert_array_equal(out, whole)
    assert merge_stats(parts, "clip", whole.size) == whole_stats
    assert len(parts) > 2


def test_float_input_with_nan_counts_it_as_clipped() -> None:
    x = np.arange(48, dtype=np.float32).reshape(8, 6)
    x[3, 2] = np.nan
    k = np.ones((3, 3))
    want, want_stats = to_pixels(correlate2d(x, k, pad=(1, 1, 1, 1), band_bytes=64), "clip", 8)
    got, stats = correlate_pixels(x, k, PixelSpec(), pad=(1, 1, 1, 1), band_bytes=64)
    np.testing.assert_array_equal(got, want)
    assert stats == want_stats
    assert stats.clipped_fraction >= 9 / 48  # the 3x3 block around the NaN


def test_bad_pixel_specs_and_outputs_are_usage_errors() -> None:
    x = np.zeros((4, 4), dtype=np.uint8)
    k = np.ones((3, 3))
    with pytest.raises(UsageError, match="normalize"):
        PixelSpec("normalize", 8)
    with pytest.raises(UsageError, match="bit depth"):
        PixelSpec("clip", 12)
    with pytest.raises(UsageError, match="out must be"):
        correlate_pixels(x, k, PixelSpec("clip", 16), out=np.empty((2, 2), dtype=np.uint8))
    with pytest.raises(UsageError, match="PixelSpec"):
        correlate_pixels(x, k, "clip")  # type: ignore[arg-type]
    got, stats = correlate_pixels(x, k, PixelSpec("clip", 16))
    assert got.dtype == np.uint16 and got.shape == (2, 2) and not got.any()
    assert (stats.min, stats.max, stats.clipped_fraction) == (0.0, 0.0, 0.0)
