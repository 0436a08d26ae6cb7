"""Every engine method against scipy.ndimage (an independent float64 reference) and each other.

The reference is ``scipy.ndimage.correlate`` with the README's padding table (zeros -> constant,
border -> nearest, reflection -> mirror, symmetric -> reflect, circular -> wrap); asymmetric
and even kernels are placed with ``origin``, a stride is the stride-1 result sampled and a
dilation is the kernel with zeros between taps. Bands are shrunk to a few rows (an explicit
``band_bytes``) so that band seams fall inside these small images, and one and two threads
must give identical arrays.
The automatic choice is tested for which method it picks, never for time.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi

from convcli.core.padding import MODES, pad_array
from convcli.engine import (
    METHODS,
    band_height,
    bands,
    choose_method,
    conv2d,
    correlate2d,
    direct,
    gemm,
    gradient_magnitude,
    intpath,
    separable,
    usable_cores,
)
from convcli.errors import UsageError

SCIPY_MODE = {
    "zeros": "constant",
    "valid": "constant",
    "border": "nearest",
    "reflection": "mirror",
    "symmetric": "reflect",
    "circular": "wrap",
}
PAD_MODES = ("zeros", "border", "reflection", "symmetric", "circular")
FORCEABLE = ("direct", "separable", "fft", "im2col")


# ---------------------------------------------------------------- the scipy reference


def _scipy_plane(x2d: np.ndarray, kd: np.ndarray, pad: tuple[int, int, int, int], mode: str) -> np.ndarray:
    """Stride-1 correlation of one plane with an (already dilated) kernel, any pads.

    ndi.correlate gives ``out[y'] = sum_i w[i] in[y' + i - K//2 - origin]`` for y' < n. To
    reach every output ``out[y] = sum_i kd[i] in[y + i - pad_top]`` (there may be more than
    n of them, and pads beyond scipy's origin range), the kernel is surrounded by Z zeros
    (the sum is unchanged, any origin becomes legal) and the output is taken in n-row tiles.
    """
    h, w = x2d.shape
    kh, kw = kd.shape
    lh, lw = h + pad[0] + pad[1] - kh + 1, w + pad[2] + pad[3] - kw + 1
    zy, zx = h + kh + pad[0] + pad[1], w + kw + pad[2] + pad[3]
    big = np.zeros((kh + 2 * zy, kw + 2 * zx))
    big[zy : zy + kh, zx : zx + kw] = kd
    out = np.empty((lh, lw))
    for ty in range(0, lh, h):
        for tx in range(0, lw, w):
            origin = (pad[0] - kh // 2 - ty, pad[2] - kw // 2 - tx)
            res = ndi.correlate(x2d, big, mode=SCIPY_MODE[mode], cval=0.0, origin=origin)
            ny, nx = min(h, lh - ty), min(w, lw - tx)
            out[ty : ty + ny, tx : tx + nx] = res[:ny, :nx]
    return out


def scipy_ref(
    x: np.ndarray, k: np.ndarray, stride: tuple[int, int], dilation: tuple[int, int],
    pad: tuple[int, int, int, int], mode: str,
) -> np.ndarray:
    """The engine's correlation (convcli.engine docstring) of (H, W[, C]) through scipy.ndimage, float64."""
    x64 = np.asarray(x, dtype=np.float64)
    if x64.ndim == 3:
        return np.stack([scipy_ref(x64[:, :, c], k, stride, dilation, pad, mode)
                         for c in range(x64.shape[2])], axis=2)
    (sy, sx), (dy, dx) = stride, dilation
    kd = np.zeros((dy * (k.shape[0] - 1) + 1, dx * (k.shape[1] - 1) + 1))
    kd[::dy, ::dx] = k
    return _scipy_plane(x64, kd, pad, mode)[::sy, ::sx]


# ---------------------------------------------------------------- strategies


@st.composite
def cases(draw: st.DrawFn, integer: bool = False) -> dict:
    """A random image, kernel (rank 1, rank 2 or full), geometry and padding mode."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    h, w = draw(st.integers(1, 23)), draw(st.integers(1, 23))
    c = draw(st.sampled_from([None, 1, 3]))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    rank = draw(st.sampled_from(["rank1", "rank2", "random", "sparse"]))
    lo, hi = (-3, 4) if integer else (None, None)

    def vec(n: int) -> np.ndarray:
        return rng.integers(lo, hi, n).astype(np.float64) if integer else rng.normal(size=n)

    if rank == "rank1":
        k = np.outer(vec(kh), vec(kw))
    elif rank == "rank2":
        k = np.outer(vec(kh), vec(kw)) + np.outer(vec(kh), vec(kw))
    else:
        k = (rng.integers(lo, hi, (kh, kw)).astype(np.float64) if integer
             else rng.normal(size=(kh, kw)))
        if rank == "sparse":
            k[rng.random((kh, kw)) < 0.5] = 0
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    mode = draw(st.sampled_from(PAD_MODES + ("valid",)))
    if mode == "valid":
        pad = (0, 0, 0, 0)
    else:
        pad = tuple(draw(st.integers(0, 6)) for _ in range(4))
    oh = (h + pad[0] + pad[1] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (w + pad[2] + pad[3] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    if oh < 1 or ow < 1:
        pad = (dilation[0] * (kh - 1), 0, dilation[1] * (kw - 1), 0)
        mode = "zeros" if mode == "valid" else mode
    shape = (h, w) if c is None else (h, w, c)
    x = (rng.integers(0, 256, shape).astype(np.float32) if integer
         else rng.uniform(-1, 1, shape).astype(np.float32))
    return {"x": x, "k": k, "stride": stride, "dilation": dilation, "pad": pad, "mode": mode}


#: A band size of one to a few rows, so seams fall inside small test images.
TINY = 64


def methods_for(k: np.ndarray) -> list[str]:
    """Every forceable method that accepts ``k``."""
    return [m for m in FORCEABLE if m != "separable" or separable.rank1_factors(k) is not None]


def run(case: dict, method: str, threads: int, dtype: type = np.float64, **kw: object) -> np.ndarray:
    return correlate2d(case["x"], case["k"], stride=case["stride"], dilation=case["dilation"],
                       pad=case["pad"], mode=case["mode"], method=method, threads=threads,
                       dtype=dtype, **kw)  # type: ignore[arg-type]


# ---------------------------------------------------------------- every method vs the reference


@given(case=cases())
def test_every_method_matches_scipy_float64(case: dict) -> None:
    ref = scipy_ref(case["x"], case["k"], case["stride"], case["dilation"], case["pad"], case["mode"])
    for method in methods_for(case["k"]) + ["auto"]:
        got = run(case, method, threads=1)
        assert got.shape == ref.shape, method
        np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-9, err_msg=method)


@settings(max_examples=25)
@given(case=cases())
def test_every_method_float32_within_1e4_of_float64(case: dict) -> None:
    ref = scipy_ref(case["x"], case["k"], case["stride"], case["dilation"], case["pad"], case["mode"])
    scale = np.abs(case["k"]).sum() * max(1.0, float(np.abs(case["x"]).max(initial=0)))
    for method in methods_for(case["k"]):
        got = run(case, method, threads=2, dtype=np.float32)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5 * scale, err_msg=method)


@settings(max_examples=30)
@given(case=cases())
def test_band_seams_and_threads(case: dict) -> None:
    """Tiny bands: every seam is inside the image; one and two threads give identical arrays."""
    ref = scipy_ref(case["x"], case["k"], case["stride"], case["dilation"], case["pad"], case["mode"])
    direct1 = run(case, "direct", threads=1, dtype=np.float32, band_bytes=TINY)
    for method in methods_for(case["k"]):
        one = run(case, method, threads=1, dtype=np.float32, band_bytes=TINY)
        two = run(case, method, threads=2, dtype=np.float32, band_bytes=TINY)
        np.testing.assert_array_equal(one, two, err_msg=method)
        scale = np.abs(case["k"]).sum()
        np.testing.assert_allclose(one, ref, rtol=1e-4, atol=1e-5 * scale, err_msg=method)
        np.testing.assert_allclose(one, direct1, rtol=1e-4, atol=1e-5 * scale, err_msg=method)


@pytest.mark.parametrize("method", FORCEABLE)
@pytest.mark.parametrize("h", [37, 41])
def test_heights_not_a_multiple_of_the_band(method: str, h: int) -> None:
    rng = np.random.default_rng(h)
    x = rng.uniform(0, 255, (h, 29, 3)).astype(np.float32)
    k = np.outer([1.0, 4, 6, 4, 1], [1.0, 2, 1]) / 48 if method == "separable" else rng.normal(size=(5, 3))
    # ~3 rows per band: 37 and 41 leave a short last band.
    for stride in [(1, 1), (2, 3)]:
        ref = scipy_ref(x, k, stride, (1, 1), (2, 2, 1, 1), "reflection")
        for threads in (1, 2):
            got = correlate2d(x, k, stride=stride, pad=(2, 2, 1, 1), mode="reflection",
                              method=method, threads=threads, band_bytes=29 * 3 * 4 * 3)
            np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("method", FORCEABLE)
def test_flip_is_true_convolution(method: str) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(19, 17)).astype(np.float32)
    k = np.outer([1.0, 2, 3], [1.0, -1]) if method == "separable" else rng.normal(size=(3, 2))
    got = correlate2d(x, k, pad=(1, 1, 0, 1), mode="symmetric", flip=True, method=method,
                      dtype=np.float64)
    # convolution with k == correlation with k rotated 180°, placed by its own same-pad split
    ref = scipy_ref(x, k[::-1, ::-1], (1, 1), (1, 1), (1, 1, 0, 1), "symmetric")
    np.testing.assert_allclose(got, ref, atol=1e-9)


# ---------------------------------------------------------------- the exact integer path


@given(case=cases(integer=True))
def test_integer_path_exactly_equals_float64(case: dict) -> None:
    ref = scipy_ref(case["x"], case["k"], case["stride"], case["dilation"], case["pad"], case["mode"])
    for method in ("auto", "direct") + (("separable",) if separable.rank1_factors(case["k"]) is not None
                                        else ()):
        got = run(case, method, threads=2, dtype=np.float32, integer_input=True)
        np.testing.assert_array_equal(got, ref.astype(np.float32), err_msg=method)
        got8 = correlate2d(case["x"].astype(np.uint8), case["k"], stride=case["stride"],
                           dilation=case["dilation"], pad=case["pad"], mode=case["mode"],
                           method=method, threads=1)
        np.testing.assert_array_equal(got8, ref.astype(np.float32), err_msg=method)


def test_integer_path_rounds_the_exact_sum_once() -> None:
    """The int16 path (convcli.engine.intpath) is observable in its numbers: the exact integer sum
    times the scale, rounded once. float32 taps round at every step and land elsewhere."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (48, 40, 3)).astype(np.float32)
    kint = np.array([[1.0, -2, 3], [4, 9, 4], [3, -2, 1]])  # sum |k| * 255 fits int16
    pad = (1, 1, 1, 1)
    exact = scipy_ref(x, kint, (1, 1), (1, 1), pad, "reflection")  # whole numbers: exact in float64
    once = exact.astype(np.float32) * np.float32(0.1)
    for method in ("auto", "direct"):
        promised = correlate2d(x, kint * 0.1, pad=pad, mode="reflection", method=method, integer_input=True)
        np.testing.assert_array_equal(promised, once, err_msg=method)
        as_uint8 = correlate2d(x.astype(np.uint8), kint * 0.1, pad=pad, mode="reflection", method=method)
        np.testing.assert_array_equal(as_uint8, once, err_msg=method)  # uint8 implies the promise
        plain = correlate2d(x, kint * 0.1, pad=pad, mode="reflection", method=method)  # no promise
        assert not np.array_equal(plain, once), method  # float32 taps: not the single rounding
        np.testing.assert_allclose(plain, exact * 0.1, rtol=1e-5, atol=1e-3, err_msg=method)
    irregular = np.array([[0.1, 0.3, 0.2], [0.7, 1 / 3, 0], [0, 0, 0]])  # no integer form
    assert intpath.integer_form(irregular) is None
    got = correlate2d(x, irregular, pad=pad, mode="reflection", integer_input=True)
    np.testing.assert_allclose(got, scipy_ref(x, irregular, (1, 1), (1, 1), pad, "reflection"),
                               rtol=1e-5, atol=1e-4)


def test_integer_bound() -> None:
    assert intpath.int_work_dtype(np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]])) == np.int16
    assert intpath.int_work_dtype(np.full((11, 11), 1.0)) == np.int16  # 121 * 255 = 30855
    assert intpath.int_work_dtype(np.full((12, 12), 1.0)) is None  # 144 * 255 > 32767
    assert intpath.int_work_dtype(np.array([[0.5, 1.0]])) is None
    x = np.full((20, 20), 255, dtype=np.uint8)
    k = np.full((12, 12), 1.0)  # beyond int16: the float path, still exact
    got = correlate2d(x, k, pad=(6, 5, 6, 5), mode="border")
    assert np.all(got == 144 * 255)


# ---------------------------------------------------------------- conv2d


@settings(max_examples=20)
@given(seed=st.integers(0, 2**32 - 1), cin=st.integers(1, 3), cout=st.integers(1, 4),
       kh=st.integers(1, 4), kw=st.integers(1, 4), s=st.integers(1, 3), d=st.integers(1, 2),
       mode=st.sampled_from(PAD_MODES))
def test_conv2d_matches_scipy(seed: int, cin: int, cout: int, kh: int, kw: int, s: int, d: int,
                              mode: str) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(int(rng.integers(1, 15)), int(rng.integers(1, 15)), cin)).astype(np.float32)
    w = rng.normal(size=(cout, cin, kh, kw))
    b = rng.normal(size=cout)
    pad = (d * (kh - 1), d * (kh - 1) // 2, d * (kw - 1) // 2 + 1, d * (kw - 1))
    ref = np.stack([sum(scipy_ref(x[:, :, c], w[o, c], (s, s), (d, d), pad, mode) for c in range(cin))
                    + b[o] for o in range(cout)], axis=-1)
    one = conv2d(x, w, b, stride=(s, s), dilation=(d, d), pad=pad, mode=mode, threads=1, band_bytes=TINY)
    two = conv2d(x, w, b, stride=(s, s), dilation=(d, d), pad=pad, mode=mode, threads=2, band_bytes=TINY)
    np.testing.assert_array_equal(one, two)
    np.testing.assert_allclose(one, ref, rtol=1e-4, atol=1e-4 * np.abs(w).sum())
    got64 = conv2d(x, w, b, stride=(s, s), dilation=(d, d), pad=pad, mode=mode, dtype=np.float64)
    np.testing.assert_allclose(got64, ref, atol=1e-9)


# ---------------------------------------------------------------- per-band padding


@given(n=st.integers(1, 9), w=st.integers(1, 9), before=st.integers(0, 20), after=st.integers(0, 20),
       left=st.integers(0, 20), right=st.integers(0, 20), mode=st.sampled_from(PAD_MODES),
       r0=st.integers(0, 30), rows=st.integers(1, 12))
def test_padded_band_is_a_slice_of_numpy_pad(n: int, w: int, before: int, after: int, left: int,
                                             right: int, mode: str, r0: int, rows: int) -> None:
    x = np.arange(n * w * 2, dtype=np.float32).reshape(n, w, 2) + 1
    if mode == "reflection" and (n < 2 or w < 2):
        return  # numpy.pad cannot reflect one sample; the engine repeats it (scipy's mirror)
    full = pad_array(x, (before, after, left, right), mode)
    r0 = min(r0, full.shape[0] - 1)
    r1 = min(full.shape[0], r0 + rows)
    width = full.shape[1] - right // 2  # a band may need fewer columns than the padded width
    got = bands.BandGather(x, before, left, width, MODES[mode], np.dtype(np.float64)).band(r0, r1)
    np.testing.assert_array_equal(got, full[r0:r1, :width])


# ---------------------------------------------------------------- choose_method and the API


def gaussian(n: int, sigma: float) -> np.ndarray:
    r = np.arange(n) - (n - 1) / 2
    g = np.exp(-(r**2) / (2 * sigma**2))
    return g / g.sum()


SHARPEN = np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], dtype=np.float64)
LAPLACIAN = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.float64)
SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64)


@pytest.mark.parametrize(
    ("kernel", "expected"),
    [
        (np.outer(gaussian(15, 2.6), gaussian(15, 2.6)), "separable"),
        (np.outer(gaussian(3, 0.8), gaussian(3, 0.8)), "separable"),
        (np.full((5, 5), 1 / 25), "separable"),
        (SOBEL_X, "separable"),
        (SOBEL_X.T, "separable"),
        (np.outer(gaussian(9, 2), gaussian(9, 2)) + 1e-12, "separable"),  # tolerance: still rank 1
        (SHARPEN, "direct"),
        (LAPLACIAN, "direct"),
        (np.array([[1.0, 2, 1]]), "direct"),  # 1-D already
        (np.ones((7, 1)), "direct"),
        (np.array([[5.0]]), "direct"),
        (np.random.default_rng(0).normal(size=(3, 3)), "direct"),
        (np.random.default_rng(0).normal(size=(7, 7)), "im2col"),
        (np.random.default_rng(0).normal(size=(15, 15)), "im2col"),
        (np.random.default_rng(0).normal(size=(41, 41)), "fft"),
    ],
)
def test_choose_method_picks(kernel: np.ndarray, expected: str) -> None:
    assert choose_method(kernel, (4096, 4096, 3)) == expected


def test_choose_method_rank_tolerance_is_relative() -> None:
    g = np.outer(gaussian(9, 2), gaussian(9, 2))
    noisy = g + 1e-3 * g.max() * np.random.default_rng(1).normal(size=g.shape)
    assert choose_method(g * 1e6, (512, 512)) == "separable"
    assert choose_method(g * 1e-6, (512, 512)) == "separable"
    assert choose_method(noisy, (512, 512)) != "separable"


def test_choose_method_no_fft_for_strides() -> None:
    k = np.random.default_rng(0).normal(size=(41, 41))
    assert choose_method(k, (4096, 4096), stride=(2, 2)) != "fft"


def test_rank1_factors_are_exact_for_integer_kernels() -> None:
    u, v = separable.rank1_factors(SOBEL_X)  # type: ignore[misc]
    np.testing.assert_array_equal(np.outer(u, v), SOBEL_X)
    assert np.all(u == np.round(u)) and np.all(v == np.round(v))
    assert separable.rank1_factors(SHARPEN) is None
    assert separable.rank1_factors(np.zeros((3, 3))) is None


def test_methods_and_errors() -> None:
    assert METHODS == ("auto", "direct", "separable", "fft", "im2col")
    x = np.zeros((8, 8), dtype=np.float32)
    with pytest.raises(UsageError, match="rank-1"):
        correlate2d(x, SHARPEN, pad=(1, 1, 1, 1), method="separable")
    with pytest.raises(UsageError, match="unknown method"):
        correlate2d(x, SHARPEN, method="winograd")
    with pytest.raises(UsageError, match="threads"):
        correlate2d(x, SHARPEN, threads=0)
    with pytest.raises(UsageError, match="valid"):
        correlate2d(x, SHARPEN, pad=(1, 1, 1, 1), mode="valid")
    with pytest.raises(UsageError, match="threads"):
        conv2d(x, np.ones((1, 1, 3, 3)), threads=-1)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_separable_takes_an_all_zero_kernel(dtype: type) -> None:
    """Zeros are the outer product of two zero vectors (0.3 refused them: "rank 0")."""
    x = np.random.default_rng(3).integers(0, 256, (9, 11, 3)).astype(dtype)
    y = correlate2d(x, np.zeros((3, 5)), pad=(1, 1, 2, 2), method="separable")
    ref = ndi.correlate(x.astype(np.float64), np.zeros((3, 5, 1)), mode="mirror")
    assert y.shape == x.shape
    np.testing.assert_array_equal(y, ref)


def test_threads_none_is_the_usable_cores_at_each_call(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from convcli import engine

    assert not hasattr(engine, "set_default_threads") and not hasattr(bands, "BAND_BYTES")  # no settings
    assert usable_cores() == len(os.sched_getaffinity(0))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2})
    assert usable_cores() == 3  # looked up at the call, never cached
    x = np.random.default_rng(0).normal(size=(30, 30)).astype(np.float32)
    a = correlate2d(x, SHARPEN, pad=(1, 1, 1, 1))
    np.testing.assert_array_equal(a, correlate2d(x, SHARPEN, pad=(1, 1, 1, 1), threads=1))
    with pytest.raises(UsageError, match="threads"):
        correlate2d(x, SHARPEN, threads=True)  # type: ignore[arg-type]


def test_direct_groups_taps_by_coefficient() -> None:
    groups = direct.group_taps(SHARPEN)
    assert groups == [(5.0, [(1, 1)]), (-1.0, [(0, 1), (1, 0), (1, 2), (2, 1)])]
    assert direct.count_passes(SHARPEN) == 5  # 5 * centre, sum of 4 (3 adds), one subtraction
    assert direct.count_passes(np.array([[-1.0, 0, 1]])) == 1  # one subtraction


def test_gemm_toeplitz_rows() -> None:
    t = gemm.toeplitz_rows(np.array([1.0, 2, 3]), 2, 7, 2, 2, np.dtype(np.float64))
    np.testing.assert_array_equal(t, [[1, 0, 2, 0, 3, 0, 0], [0, 0, 1, 0, 2, 0, 3]])


def test_uint8_and_float64_inputs_need_no_caller_conversion() -> None:
    x8 = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    a = correlate2d(x8, SOBEL_X, pad=(1, 1, 1, 1), mode="border")
    b = correlate2d(x8.astype(np.float64), SOBEL_X, pad=(1, 1, 1, 1), mode="border")
    assert a.dtype == b.dtype == np.float32
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("n", [4, 5, 7, 15, 16])
@pytest.mark.parametrize("mode", PAD_MODES)
def test_box_by_doubling(n: int, mode: str) -> None:
    """Box factors are summed by doubling (run_sum); exact on integer data."""
    rng = np.random.default_rng(n)
    x = rng.integers(0, 256, (23, 31, 3)).astype(np.float32)
    pad = (n - 1, 0, n // 2, n - 1 - n // 2)
    for k in (np.ones((n, 3)), np.ones((3, n)), np.full((n, n), 1.0 / n**2)):
        ref = scipy_ref(x, k, (1, 1), (1, 1), pad, mode)
        for threads in (1, 2):
            got = correlate2d(x, k, pad=pad, mode=mode, method="separable", threads=threads, band_bytes=TINY)
            if np.all(k == 1):
                np.testing.assert_array_equal(got, ref.astype(np.float32))
            else:
                np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("method", ["auto", "direct", "separable"])
@pytest.mark.parametrize(
    "kernel",
    [np.full((5, 5), 1 / 25), np.outer([1, 2, 1], [1, 2, 1]) / 16, np.outer([1, 4, 6, 4, 1], [1, 2, 1]) / 48],
)
def test_scaled_integer_kernels_on_uint8(method: str, kernel: np.ndarray) -> None:
    """Integer kernel times a scale on 8-bit data: int16 sums, one float rounding at the end."""
    form = intpath.integer_form(kernel)
    assert form is not None
    kint, scale = form
    x8 = np.random.default_rng(1).integers(0, 256, (21, 26, 3), dtype=np.uint8)
    for stride in [(1, 1), (2, 2)]:
        pad = (kernel.shape[0] // 2,) * 2 + (kernel.shape[1] // 2,) * 2
        ref = scipy_ref(x8, kernel, stride, (1, 1), pad, "reflection")
        exact = scipy_ref(x8, kint, stride, (1, 1), pad, "reflection")  # whole numbers, exact
        for dtype in (np.float32, np.float64):
            got = correlate2d(x8, kernel, stride=stride, pad=pad, mode="reflection", method=method,
                              dtype=dtype)
            np.testing.assert_allclose(got, ref, rtol=1e-6 if dtype == np.float32 else 1e-12, atol=1e-5)
            # the int16 path: the exact sum, rounded once by the scale
            np.testing.assert_array_equal(got, exact.astype(dtype) * np.dtype(dtype).type(scale))
    assert intpath.integer_form(np.array([[0.1, 0.3], [0.7, 1 / 3]])) is None


@pytest.mark.parametrize("method", ["auto", "direct", "separable", "im2col"])
@pytest.mark.parametrize("as_uint8", [False, True])
def test_gradient_magnitude_is_hypot_of_both(method: str, as_uint8: bool) -> None:
    rng = np.random.default_rng(11)
    x = rng.integers(0, 256, (27, 22)).astype(np.uint8 if as_uint8 else np.float32)
    pad = (1, 1, 1, 1)
    ref = np.hypot(scipy_ref(x, SOBEL_X, (1, 1), (1, 1), pad, "reflection"),
                   scipy_ref(x, SOBEL_X.T, (1, 1), (1, 1), pad, "reflection"))
    one = gradient_magnitude(x, SOBEL_X, SOBEL_X.T, pad=pad, mode="reflection", method=method, threads=1,
                             band_bytes=TINY)
    two = gradient_magnitude(x, SOBEL_X, SOBEL_X.T, pad=pad, mode="reflection", method=method, threads=2,
                             band_bytes=TINY)
    np.testing.assert_array_equal(one, two)
    np.testing.assert_allclose(one, ref, rtol=1e-6, atol=1e-4)
    rgb = rng.uniform(0, 1, (9, 8, 3)).astype(np.float32)
    prewitt = np.array([[-1, 0, 1]] * 3, dtype=np.float64)
    got = gradient_magnitude(rgb, prewitt, prewitt.T, stride=(2, 1), pad=pad, mode="zeros")
    ref = np.hypot(scipy_ref(rgb, prewitt, (2, 1), (1, 1), pad, "zeros"),
                   scipy_ref(rgb, prewitt.T, (2, 1), (1, 1), pad, "zeros"))
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
    with pytest.raises(UsageError, match="one shape"):
        gradient_magnitude(x, SOBEL_X, np.ones((3, 2)))


def test_out_parameter() -> None:
    rng = np.random.default_rng(4)
    for shape in [(13, 11), (13, 11, 3)]:
        x = rng.normal(size=shape).astype(np.float32)
        ref = correlate2d(x, SHARPEN, pad=(1, 1, 1, 1), mode="border")
        buf = np.full_like(ref, np.nan)
        got = correlate2d(x, SHARPEN, pad=(1, 1, 1, 1), mode="border", out=buf)
        assert got is buf
        np.testing.assert_array_equal(buf, ref)
    with pytest.raises(UsageError, match="out must be"):
        correlate2d(x, SHARPEN, pad=(1, 1, 1, 1), out=np.empty((13, 11, 3), np.float64))
    with pytest.raises(UsageError, match="out must be"):
        correlate2d(x, SHARPEN, out=np.empty((13, 11, 3), np.float32))


def test_choose_method_integer_path_prefers_direct() -> None:
    k = np.random.default_rng(0).integers(-2, 3, size=(7, 7)).astype(np.float64)
    assert direct.count_passes(k) > 20
    assert choose_method(k, (4096, 4096, 3)) == "im2col"
    assert choose_method(k, (4096, 4096, 3), integer_input=True) == "direct"
    assert choose_method(k + 0.3, (4096, 4096, 3), integer_input=True) == "im2col"  # no integer form


@pytest.mark.parametrize("mode", PAD_MODES)
@pytest.mark.parametrize("stride", [(1, 1), (2, 3)])
def test_separable_in_place_rows_path(mode: str, stride: tuple[int, int]) -> None:
    """Bands inside the image skip the gathered copy when the input is already in the arithmetic
    dtype; the numbers are the reference's, and bit for bit those of a gathered (converted) input."""
    rng = np.random.default_rng(5)
    x = rng.uniform(0, 1, (40, 33, 3)).astype(np.float32)
    g = np.exp(-((np.arange(9) - 4) ** 2) / 6.0)
    for k in (np.outer(g, g[:7]), np.full((5, 5), 1 / 25), np.outer([1.0, 2, 1], [1.0, 0, -1])):
        pad = (k.shape[0] // 2, k.shape[0] - 1 - k.shape[0] // 2, 8, 8)
        ref = scipy_ref(x, k, stride, (1, 1), pad, mode)
        got = correlate2d(x, k, stride=stride, pad=pad, mode=mode, method="separable", threads=2,
                          band_bytes=TINY)
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)
        gathered = correlate2d(x.astype(np.float64), k, stride=stride, pad=pad, mode=mode,
                               method="separable", threads=2, band_bytes=TINY)
        np.testing.assert_array_equal(gathered, got)


# ---------------------------------------------------------------- row ranges (rows=)


@pytest.mark.parametrize("method", FORCEABLE)
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_row_ranges_on_the_band_grid_are_the_whole_output(method: str, dtype: type) -> None:
    """rows=(y0, y1) at multiples of band_height: the whole output's rows bit for bit, any
    thread count; any other range: the reference's numbers within the usual rounding."""
    rng = np.random.default_rng(7)
    x = rng.integers(0, 256, (301 if method == "fft" else 61, 23, 3)).astype(dtype)
    k = np.outer(gaussian(7, 1.5), gaussian(5, 1.2)) if method == "separable" else rng.normal(size=(7, 5))
    kw = {"stride": (2, 1), "pad": (3, 3, 2, 2), "mode": "reflection", "method": method, "band_bytes": 300}
    whole = correlate2d(x, k, threads=1, **kw)  # type: ignore[arg-type]
    ref = scipy_ref(x, k, (2, 1), (1, 1), (3, 3, 2, 2), "reflection")
    band = band_height(x, k, **kw)  # type: ignore[arg-type]
    oh = whole.shape[0]
    assert 1 <= band < oh  # several bands: the grid matters
    for step in (band, 2 * band, 3 * band):
        parts = [correlate2d(x, k, threads=2, rows=(y, min(oh, y + step)), **kw)  # type: ignore[arg-type]
                 for y in range(0, oh, step)]
        np.testing.assert_array_equal(np.concatenate(parts), whole)
    odd = [correlate2d(x, k, rows=(y, min(oh, y + 5)), **kw) for y in range(0, oh, 5)]  # type: ignore[arg-type]
    np.testing.assert_allclose(np.concatenate(odd), ref, rtol=1e-4, atol=1e-3 * np.abs(k).sum())
    grad = gradient_magnitude(x, SOBEL_X, SOBEL_X.T, pad=(1, 1, 1, 1), band_bytes=300, method=method)
    gband = band_height(x, SOBEL_X, SOBEL_X.T, pad=(1, 1, 1, 1), band_bytes=300, method=method)
    gparts = [gradient_magnitude(x, SOBEL_X, SOBEL_X.T, pad=(1, 1, 1, 1), band_bytes=300, method=method,
                                 rows=(y, min(x.shape[0], y + gband))) for y in range(0, x.shape[0], gband)]
    np.testing.assert_array_equal(np.concatenate(gparts), grad)


def test_row_range_errors() -> None:
    x = np.zeros((10, 8), dtype=np.float32)
    for rows in [(0, 0), (-1, 3), (5, 11), (6, 4)]:
        with pytest.raises(UsageError, match="rows must be"):
            correlate2d(x, SHARPEN, pad=(1, 1, 1, 1), rows=rows)
    assert correlate2d(x, SHARPEN, pad=(1, 1, 1, 1), rows=(3, 7)).shape == (4, 8)
    with pytest.raises(UsageError, match="band_bytes"):
        correlate2d(x, SHARPEN, band_bytes=0)


@settings(max_examples=60, deadline=None)
@given(big=st.floats(1e5, 1e9), seed=st.integers(0, 2**31 - 1))
def test_float64_auto_is_exact_on_kernels_near_rank_1(big: float, seed: int) -> None:
    """[[big, 1], [1, 1]] is within 1e-6 of rank 1 relative to its norm: auto ran it as two 1-D passes
    and float64 results came out several units off (333333338 for an exact 333333342), which explain
    --unroll and animate caught as a bug. float64 now takes rank 1 only within 1e-13."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (9, 11)).astype(np.float64)
    k = np.array([[big, 1.0], [1.0, 1.0]])
    want = ndi.correlate(x, k, mode="constant", origin=(-1, -1))[:-1, :-1]  # valid, float64
    got = correlate2d(x, k, mode="valid", dtype=np.float64)
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=0)


def test_teaching_checks_hold_for_large_kernel_values(tmp_path) -> None:  # noqa: ANN001
    from click.testing import CliRunner

    from convcli.cli import cli

    run = CliRunner().invoke
    r = run(cli, ["explain", "--patch", "1 2; 3 4", "-k", "333333333 1; 1 1", "-p", "valid", "--unroll"])
    assert r.exit_code == 0 and "[ 333333342 ]" in r.stdout, r.stderr
    r = run(cli, ["animate", "--patch", "1 2; 3 4", "-k", "333333333 1; 1 1", "-p", "valid",
                  "-o", str(tmp_path / "a.gif")])
    assert r.exit_code == 0, r.stderr
