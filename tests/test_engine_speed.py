"""The engine's fast paths against independent references (benchmarks/ENGINE.md measures them).

- box factors summed by doubling (``separable.run_sum``): against a plain running sum written
  here, and whole box filters against ``scipy.ndimage`` (tests/reference.py), exactly on the
  int16 path for 8-bit input;
- ``out=`` buffers (``gradient_magnitude``, ``to_pixels``) and the streamed chunk buffer;
- which method ``choose_method`` picks for the benchmark's kernels on 8-bit input.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from reference import PAD_MODES, ref_correlate_scipy

from convcli.core.pixels import to_pixels
from convcli.engine import choose_method, correlate2d, gradient_magnitude, separable
from convcli.errors import UsageError

SHARPEN = np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], dtype=np.float64)
SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64)


def _gaussian(n: int, sigma: float) -> np.ndarray:
    x = np.arange(n) - (n - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def _running_sum(x: np.ndarray, n: int, axis: int, length: int) -> np.ndarray:
    """out[i] = x[i] + ... + x[i + n - 1] along ``axis``, one tap at a time in float64."""
    xs = np.moveaxis(x.astype(np.float64), axis, 0)
    out = np.zeros((length,) + xs.shape[1:])
    for t in range(n):
        out += xs[t : t + length]
    return np.moveaxis(out, 0, axis)


@given(
    n=st.integers(1, 40),
    extra=st.integers(0, 6),
    other=st.integers(1, 5),
    axis=st.sampled_from([0, 1]),
    dtype=st.sampled_from([np.int16, np.float32, np.float64]),
    seed=st.integers(0, 2**32 - 1),
)
def test_run_sum_is_the_running_sum(n: int, extra: int, other: int, axis: int, dtype: type,
                                    seed: int) -> None:
    """Every n: the doubling picks the right partial sums (no copy pass, powers of two included)."""
    length = 1 + extra
    shape = [other, other, 3]
    shape[axis] = length + n - 1
    x = np.random.default_rng(seed).integers(0, 256, shape).astype(dtype)
    out_shape = list(shape)
    out_shape[axis] = length
    out = np.full(out_shape, -1, dtype=dtype)
    separable.run_sum(x, n, axis, out)
    # whole numbers below 2**24: exact in every dtype here, so equal, not close
    np.testing.assert_array_equal(out, _running_sum(x, n, axis, length).astype(dtype))


@given(
    kh=st.integers(1, 9),
    kw=st.integers(1, 9),
    scaled=st.booleans(),
    mode=st.sampled_from(PAD_MODES),
    stride=st.sampled_from([(1, 1), (2, 1), (1, 3)]),
    dilation=st.sampled_from([(1, 1), (2, 1)]),
    threads=st.sampled_from([1, 2]),
    seed=st.integers(0, 2**32 - 1),
)
def test_box_filters_match_scipy(kh: int, kw: int, scaled: bool, mode: str, stride: tuple[int, int],
                                 dilation: tuple[int, int], threads: int, seed: int) -> None:
    """Boxes (all taps equal) on uint8 and float32 input, every method that takes them."""
    rng = np.random.default_rng(seed)
    x8 = rng.integers(0, 256, (int(rng.integers(9, 30)), int(rng.integers(9, 30)), 3), dtype=np.uint8)
    k = np.full((kh, kw), 1.0 / (kh * kw) if scaled else 1.0)
    eh, ew = (kh - 1) * dilation[0], (kw - 1) * dilation[1]
    pad = (eh // 2, eh - eh // 2, ew // 2, ew - ew // 2)
    ref = ref_correlate_scipy(x8.astype(np.float64), k, stride, dilation, pad, mode)
    exact = ref_correlate_scipy(x8.astype(np.float64), np.ones((kh, kw)), stride, dilation, pad, mode)
    for method in ("auto", "separable", "direct"):
        got8 = correlate2d(x8, k, stride=stride, dilation=dilation, pad=pad, mode=mode, method=method,
                           threads=threads, band_bytes=64)
        # 8-bit input: the exact integer sum, scaled once in float32
        want = exact.astype(np.float32) * np.float32(k[0, 0]) if scaled else exact.astype(np.float32)
        np.testing.assert_array_equal(got8, want)
        got32 = correlate2d(x8.astype(np.float32), k, stride=stride, dilation=dilation, pad=pad, mode=mode,
                            method=method, threads=threads, band_bytes=64)
        np.testing.assert_allclose(got32, ref, rtol=1e-5, atol=1e-4 * max(1.0, float(np.abs(ref).max())))


@pytest.mark.parametrize(
    ("kernel", "expected"),
    [
        (SHARPEN, "direct"),  # exact int16, 5 passes
        (np.full((5, 5), 1 / 25), "separable"),  # exact int16 box sums by doubling
        (np.outer([1, 2, 1], [1, 2, 1]) / 16, "separable"),
        (np.outer(_gaussian(15, 2.6), _gaussian(15, 2.6)), "separable"),  # float32 GEMM + GEMV
        (SOBEL_X, "separable"),
        (np.random.default_rng(7).uniform(-1, 1, (7, 7)), "im2col"),
        (np.random.default_rng(7).uniform(-1, 1, (25, 25)), "fft"),
    ],
)
def test_choose_method_on_8bit_input(kernel: np.ndarray, expected: str) -> None:
    """The benchmark's kernels on uint8 input take the paths benchmarks/ENGINE.md measures."""
    assert choose_method(kernel, (1024, 1024, 3), integer_input=True) == expected
    assert choose_method(kernel, (4096, 4096, 3), integer_input=True) == expected


def test_gradient_magnitude_writes_into_out() -> None:
    x = np.random.default_rng(3).integers(0, 256, (19, 23), dtype=np.uint8)
    pad = (1, 1, 1, 1)
    gx = ref_correlate_scipy(x.astype(np.float64), SOBEL_X, (1, 1), (1, 1), pad, "reflection")
    gy = ref_correlate_scipy(x.astype(np.float64), SOBEL_X.T, (1, 1), (1, 1), pad, "reflection")
    buf = np.full((19, 23), np.nan, dtype=np.float32)
    got = gradient_magnitude(x, SOBEL_X, SOBEL_X.T, pad=pad, mode="reflection", out=buf)
    assert got is buf
    np.testing.assert_allclose(buf, np.hypot(gx, gy), rtol=1e-6)
    with pytest.raises(UsageError, match="out must be"):
        gradient_magnitude(x, SOBEL_X, SOBEL_X.T, pad=pad, mode="reflection",
                           out=np.empty((19, 22), np.float32))


@pytest.mark.parametrize("policy", ["clip", "abs"])
def test_to_pixels_into_a_view(policy: str) -> None:
    """``out=`` may be a strided view (a chunk's rows of one channel); values as the definition."""
    v = np.random.default_rng(5).uniform(-40, 300, (6, 7)).astype(np.float32)
    v[0, 0] = np.nan
    image = np.zeros((10, 7, 2), dtype=np.uint8)
    pix, stats = to_pixels(v, policy, 8, out=image[2:8, :, 1])
    src = np.abs(v.astype(np.float64)) if policy == "abs" else v.astype(np.float64)
    r = np.rint(src)
    want = np.clip(np.where(np.isnan(r), 0, r), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(image[2:8, :, 1], want)
    assert pix.base is image or pix is image[2:8, :, 1] or np.shares_memory(pix, image)
    assert not image[:2].any() and not image[8:].any() and not image[:, :, 0].any()
    clipped = np.isnan(r) | (r < 0) | (r > 255)
    assert stats.clipped_fraction == pytest.approx(clipped.sum() / v.size)
    with pytest.raises(ValueError, match="out must be"):
        to_pixels(v, policy, 8, out=np.empty((6, 7), np.uint16))


@given(out_h=st.integers(1, 5000), rows=st.integers(1, 5000))
def test_even_bands_evens_the_count_with_balanced_bands(out_h: int, rows: int) -> None:
    """Against a plain search written here: the smallest even band count above the current one
    (and at most twice it) that some height <= ``rows`` gives, cut by the shortest height that
    gives it (the most equal bands); ``rows`` itself when there is none."""
    from convcli.engine.bands import even_bands

    rows = min(rows, out_h)
    got = even_bands(out_h, rows)
    n = -(-out_h // rows)
    counts = {-(-out_h // r) for r in range(1, rows + 1)}
    even = sorted(c for c in counts if n < c <= 2 * n and c % 2 == 0)
    if n <= 1 or n % 2 == 0 or not even:
        assert got == rows
    else:
        assert got == -(-out_h // even[0])
        assert -(-out_h // got) == even[0]


@pytest.mark.parametrize("threads", [1, 2, 3, 8])
def test_a_chunk_gives_every_thread_two_bands(threads: int) -> None:
    from convcli.streaming import chunk_rows

    f32 = np.dtype(np.float32)
    for band in (1, 7, 91):
        rows = chunk_rows(band, 4096, 3, f32, 8 << 20, threads)
        assert rows % band == 0
        assert rows >= band * (2 * threads if threads > 1 else 1)
        assert rows >= band * ((8 << 20) // (4096 * 3 * 4) // band)


@pytest.mark.parametrize("threads", [1, 2, 3, 8])
@pytest.mark.parametrize("n", [0, 1, 2, 5, 17])
def test_run_bands_runs_every_band_once(threads: int, n: int) -> None:
    import threading
    import time

    from convcli.engine.bands import run_bands

    parts = [(i, i + 1) for i in range(n)]
    seen: list[tuple[int, int]] = []
    who: set[int] = set()
    lock = threading.Lock()
    caller = threading.get_ident()
    caller_took_one = threading.Event()

    def fn(y0: int, y1: int) -> None:
        if threading.get_ident() == caller:
            caller_took_one.set()
        else:  # a worker holds its band until the caller has one (or 2 s): then the caller must
            caller_took_one.wait(2.0)  # take one, whatever the scheduler does, when n >= threads
        time.sleep(0.001)
        with lock:
            seen.append((y0, y1))
            who.add(threading.get_ident())

    run_bands(fn, parts, threads)
    assert sorted(seen) == parts
    if n and (n >= threads or threads == 1):
        assert caller in who  # the calling thread takes bands too (it used to sleep in pool.map)


@pytest.mark.parametrize("threads", [2, 3])
def test_run_bands_raises_the_first_error_after_every_band_stopped(threads: int) -> None:
    import threading
    import time

    from convcli.engine.bands import run_bands

    running = [0]
    started: list[int] = []
    lock = threading.Lock()

    def fn(y0: int, y1: int) -> None:
        with lock:
            running[0] += 1
            started.append(y0)
        try:
            time.sleep(0.005)
            if y0 == 3:
                msg = "band 3 failed"
                raise ValueError(msg)
        finally:
            with lock:
                running[0] -= 1

    with pytest.raises(ValueError, match="band 3 failed"):
        run_bands(fn, [(i, i + 1) for i in range(40)], threads)
    assert running[0] == 0  # nothing still writes into the caller's buffers
    assert len(started) < 40  # the bands after the failure were given up


@given(
    dtype=st.sampled_from([np.int16, np.int32, np.uint16]),
    maxval=st.sampled_from([1, 255, 1023, 32767, 65535]),
    policy=st.sampled_from(["clip", "abs"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_integer_pixels_band_against_float64(dtype: type, maxval: int, policy: str, seed: int) -> None:
    """The integer band's pixels and stats against the same values clipped in float64, over the
    type's whole range but its least value (the int16 path's sums lie in [-32767, 32767])."""
    from convcli.core.pixels import integer_pixels_band

    info = np.iinfo(dtype)
    rng = np.random.default_rng(seed)
    acc = rng.integers(max(info.min, -70000), min(info.max, 70000), (7, 11, 3), dtype=dtype, endpoint=True)
    acc.flat[:2] = (info.min + (info.min < 0), info.max)
    out = np.empty(acc.shape, np.uint16 if maxval > 255 else np.uint8)
    lo, hi, changed = integer_pixels_band(acc, out, policy, maxval)
    v = acc.astype(np.float64)
    v = np.abs(v) if policy == "abs" else v
    want = np.clip(v, 0, maxval)
    assert (lo, hi) == (float(acc.min()), float(acc.max()))
    assert changed == int(np.count_nonzero((v < 0) | (v > maxval)))
    np.testing.assert_array_equal(out, want.astype(out.dtype))
