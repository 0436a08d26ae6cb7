"""Integer sums to pixels by one integer division (boxes and other non-negative integer kernels
times a scale, on 8-bit input), and the slice copies of padding columns.

Checked against the definition (the float engine, then ``to_pixels``: pixels and stats bit for bit)
and against an independent float64 loop (tests/reference.py) rounded half to even by hand.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from reference import ref_correlate_loop

from convcli.core.pixels import PixelSpec, to_pixels
from convcli.engine import correlate2d, correlate_pixels
from convcli.engine.bands import column_runs, copy_columns
from convcli.engine.intpath import quotient_form

MODES = ("zeros", "border", "reflection", "symmetric", "circular", "valid")


@st.composite
def box_cases(draw: st.DrawFn) -> dict[str, Any]:
    """A uint8 image, a box or a non-negative integer kernel over a divisor, and a geometry."""
    kh, kw = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if draw(st.booleans()):
        k = np.full((kh, kw), 1.0 / (kh * kw))  # odd and even boxes (even: ties to even)
    else:
        k = rng.integers(0, 4, (kh, kw)).astype(np.float64)
        k[0, 0] = max(k[0, 0], 1.0)
        k /= draw(st.sampled_from([3.0, 9.0, 10.0, 16.0, 25.0, float(k.sum())]))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    mode = draw(st.sampled_from(MODES))
    pad = (0, 0, 0, 0) if mode == "valid" else tuple(draw(st.integers(0, kh + 1)) for _ in range(2)) + tuple(
        draw(st.integers(0, kw + 1)) for _ in range(2))
    need_h = (kh - 1) * dilation[0] + 1 - pad[0] - pad[1]
    need_w = (kw - 1) * dilation[1] + 1 - pad[2] - pad[3]
    h = draw(st.integers(max(1, need_h, pad[0], pad[1]), max(1, need_h, pad[0], pad[1]) + 30))
    w = draw(st.integers(max(1, need_w, pad[2], pad[3]), max(1, need_w, pad[2], pad[3]) + 30))
    channels = draw(st.sampled_from([0, 1, 3]))
    shape = (h, w) if channels == 0 else (h, w, channels)
    x = rng.integers(0, 256, shape).astype(np.uint8)
    return {"x": x, "k": k, "geo": {"stride": stride, "dilation": dilation, "pad": pad, "mode": mode}}


@given(case=box_cases(), policy=st.sampled_from(["clip", "abs"]), bits=st.sampled_from([8, 16]),
       band_bytes=st.sampled_from([64, 900, 20_000, 1_500_000]), threads=st.sampled_from([1, 2]))
def test_integer_kernel_pixels_are_the_float_path_and_the_rounded_reference(
        case: dict[str, Any], policy: str, bits: int, band_bytes: int, threads: int) -> None:
    x, k, geo = case["x"], case["k"], case["geo"]
    spec = PixelSpec(policy, bits)
    got, stats = correlate_pixels(x, k, spec, **geo, band_bytes=band_bytes, threads=threads)
    want, want_stats = to_pixels(correlate2d(x, k, **geo, band_bytes=band_bytes), policy, bits)
    np.testing.assert_array_equal(got, want)
    assert stats == want_stats
    # The float64 loop, rounded half to even by hand: exact away from ties (a sum over an even
    # divisor, or one whose scale is inexact in binary, may sit on a tie either path rounds its way).
    ref = ref_correlate_loop(x, k, geo["stride"], geo["dilation"], geo["pad"], geo["mode"])
    ref = ref.reshape(got.shape)
    tie = np.abs(ref - np.floor(ref) - 0.5) <= 1e-9 * max(1.0, float(ref.max()))
    diff = np.abs(got.astype(np.float64) - np.clip(np.rint(ref), 0, spec.maxval))
    assert diff[~tie].max(initial=0) == 0
    assert diff.max(initial=0) <= 1
    if k.sum() * 255 < spec.maxval:
        assert stats.clipped_fraction == 0.0
    assert stats.min == pytest.approx(ref.min(), abs=1e-4 * 255)
    assert stats.max == pytest.approx(ref.max(), abs=1e-4 * 255)


@pytest.mark.parametrize("n", [3, 4, 5, 6, 7, 9])
@pytest.mark.parametrize("threads", [1, 2])
def test_box_pixels_across_band_edges_equal_the_rounded_mean(n: int, threads: int,
                                                           rng: np.random.Generator) -> None:
    """Many small bands (every row a band edge somewhere): round-half-even of the exact mean."""
    x = rng.integers(0, 256, (41, 37, 3)).astype(np.uint8)
    k = np.full((n, n), 1.0 / (n * n))
    p = n // 2
    pad = (p, n - 1 - p, p, n - 1 - p)
    got, stats = correlate_pixels(x, k, PixelSpec(), pad=pad, mode="symmetric", band_bytes=300,
                                  threads=threads)
    ref = ref_correlate_loop(x, np.ones((n, n)), 1, 1, pad, "symmetric")  # the integer sums
    want = np.rint(ref / (n * n))  # exact: integer sums over an integer divisor, ties to even
    np.testing.assert_array_equal(got, want)
    assert stats.clipped_fraction == 0.0


def test_quotient_form_of_hand_worked_tables() -> None:
    s = np.arange(0, 25 * 255 + 1)
    # round(s / 25), no ties: (s + 12) // 25
    assert quotient_form((2 * s + 25) // 50, 0) == (12, 25)
    # round(s / 9) from s = 40 on: (s + 4) // 9
    assert quotient_form((2 * s[40:] + 9) // 18, 40) == (4, 9)
    # round half to even of s / 16 (a 4x4 box): ties alternate, not one quotient
    assert quotient_form(np.rint(s / 16).astype(np.int64), 0) is None
    # a step of 2 is not a rounded quotient
    assert quotient_form(2 * (s // 25), 0) is None
    # negative sums are not handled
    assert quotient_form(s // 25, -1) is None


@given(data=st.data())
def test_column_runs_copy_what_fancy_indexing_copies(data: st.DataObject) -> None:
    width = data.draw(st.integers(2, 40))
    dst = sorted(data.draw(st.sets(st.integers(0, width - 1), min_size=1, max_size=width - 1)))
    rest = [c for c in range(width) if c not in dst]
    src = [data.draw(st.sampled_from(rest)) for _ in dst]
    if data.draw(st.booleans()):  # mirrored runs, as reflection padding makes them
        src = sorted(src, reverse=True)
    a = np.random.default_rng(len(dst)).integers(0, 1000, (5, width, 3))
    want = a.copy()
    want[:, dst] = want[:, src]
    copy_columns(a, column_runs(np.array(dst), np.array(src)))
    np.testing.assert_array_equal(a, want)
