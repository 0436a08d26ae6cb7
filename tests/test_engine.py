"""The engine against independent references (tests/reference.py), README 'numbers' "Numbers".

Every padding mode and alias, stride, dilation, pad amount and kernel shape is
compared with both the direct float64 loop and scipy.ndimage; float32 results
must be within 1e-4 relative of the float64 reference (README 'numbers' "Arithmetic").
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.ndimage as ndi
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from reference import (
    ALIASES,
    PAD_MODES,
    SCIPY_MODE,
    canonical_mode,
    out_len,
    pad4_from_spec,
    ref_conv2d_loop,
    ref_correlate_loop,
    ref_correlate_scipy,
)

from convcli.engine import METHODS, conv2d, correlate2d
from convcli.errors import UsageError

RTOL = 1e-4  # README 'numbers': float32 within 1e-4 relative of a float64 reference

STRIDES = [(1, 1), (2, 2), (2, 3)]
DILATIONS = [(1, 1), (2, 2), (1, 3)]
PAD_SPECS = ["same", "2", "1,3", "0,2,3,1"]  # same / N / Y,X / T,B,L,R
KSHAPES = [(1, 1), (3, 3), (2, 2), (1, 5), (5, 2), (7, 7)]
PAD_ALIASES = sorted(a for a, m in ALIASES.items() if m != "valid")


def _image(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Pixel-like values 0..255 (README 'numbers': values enter the arithmetic as stored)."""
    return rng.integers(0, 256, size=shape).astype(np.float64)


def _kernel(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    return rng.uniform(-1.0, 1.0, size=shape)


def assert_close(out: np.ndarray, ref: np.ndarray, x: np.ndarray, k: np.ndarray,
                 rtol: float = RTOL) -> None:
    """Within ``rtol`` relative, relative to the magnitude the sum can reach (sum|K| * max|x|).

    A plain elementwise rtol would fail on outputs near 0 from cancellation; a wrong
    pixel, tap or border value is off by a sizeable fraction of that magnitude.
    """
    assert out.shape == ref.shape
    scale = max(1.0, float(np.abs(k).sum()) * float(np.abs(x).max(initial=0.0)))
    np.testing.assert_allclose(out, ref, rtol=rtol, atol=rtol * scale)


def _expected_hw(x, kshape, stride, dilation, pad4):
    return (out_len(x.shape[0], kshape[0], stride[0], dilation[0], pad4[0], pad4[1]),
            out_len(x.shape[1], kshape[1], stride[1], dilation[1], pad4[2], pad4[3]))


# --- the references agree with each other (they share no code) -----------------------------


@pytest.mark.parametrize("mode", PAD_MODES)
def test_the_two_references_agree(mode, rng):
    """Including pads many times the image (where scipy's N-d correlate is unreliable)."""
    for xshape, kshape, stride, dilation, pad4 in [
        ((2, 3), (3, 3), 1, 1, (9, 9, 9, 9)),
        ((2, 2), (2, 5), (1, 2), (3, 1), (0, 13, 11, 0)),
        ((1, 4), (7, 7), 2, 1, (3, 3, 3, 3)),
        ((5, 6), (1, 4), (2, 3), (1, 3), (6, 0, 8, 2)),
        ((6, 5), (4, 2), 1, 2, (1, 2, 0, 1)),
    ]:
        x = _image(rng, xshape)
        k = _kernel(rng, kshape)
        a = ref_correlate_loop(x, k, stride, dilation, pad4, mode)
        b = ref_correlate_scipy(x, k, stride, dilation, pad4, mode)
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-9)


# --- the full grid: mode x stride x dilation x pad amount x kernel shape -------------------


@pytest.mark.parametrize("kshape", KSHAPES, ids=lambda s: f"k{s[0]}x{s[1]}")
@pytest.mark.parametrize("pad_spec", PAD_SPECS)
@pytest.mark.parametrize("dilation", DILATIONS, ids=lambda d: f"d{d[0]}{d[1]}")
@pytest.mark.parametrize("stride", STRIDES, ids=lambda s: f"s{s[0]}{s[1]}")
@pytest.mark.parametrize("mode", PAD_MODES)
def test_matches_references(mode, stride, dilation, pad_spec, kshape, rng):
    x = _image(rng, (7, 9, 2))
    k = _kernel(rng, kshape)
    pad4 = pad4_from_spec(pad_spec, kshape, dilation)
    oh, ow = _expected_hw(x, kshape, stride, dilation, pad4)
    if oh < 1 or ow < 1:  # e.g. a dilated 7x7 (13x13) on 7 rows with pad 2
        with pytest.raises(UsageError, match="output would be empty"):
            correlate2d(x, k, stride=stride, dilation=dilation, pad=pad4, mode=mode)
        return
    for xin in (x[:, :, 0], x):  # (H, W) and (H, W, C)
        out = correlate2d(xin, k, stride=stride, dilation=dilation, pad=pad4, mode=mode)
        assert out.dtype == np.float32
        assert out.shape == (oh, ow) + xin.shape[2:]
        assert_close(out, ref_correlate_loop(xin, k, stride, dilation, pad4, mode), xin, k)
        assert_close(out, ref_correlate_scipy(xin, k, stride, dilation, pad4, mode), xin, k)


@pytest.mark.parametrize("kshape", KSHAPES, ids=lambda s: f"k{s[0]}x{s[1]}")
@pytest.mark.parametrize("dilation", DILATIONS, ids=lambda d: f"d{d[0]}{d[1]}")
@pytest.mark.parametrize("stride", STRIDES, ids=lambda s: f"s{s[0]}{s[1]}")
@pytest.mark.parametrize("mode", ["valid", "none", "VALID"])
def test_valid_matches_references(mode, stride, dilation, kshape, rng):
    x = _image(rng, (13, 19, 2))  # a 7x7 kernel dilated by (2, 3) spans 13x19
    k = _kernel(rng, kshape)
    out = correlate2d(x, k, stride=stride, dilation=dilation, mode=mode)
    oh, ow = _expected_hw(x, kshape, stride, dilation, (0, 0, 0, 0))
    assert out.shape == (oh, ow, 2)
    assert_close(out, ref_correlate_loop(x, k, stride, dilation, (0, 0, 0, 0), "valid"), x, k)
    assert_close(out, ref_correlate_scipy(x, k, stride, dilation, (0, 0, 0, 0), "valid"), x, k)


def test_valid_with_pad_is_an_error(rng):
    with pytest.raises(UsageError, match="valid"):
        correlate2d(_image(rng, (5, 5)), np.ones((3, 3)), pad=(1, 1, 1, 1), mode="valid")


@pytest.mark.parametrize("alias", PAD_ALIASES)
@pytest.mark.parametrize(
    ("kshape", "stride", "dilation", "pad4"),
    [((3, 3), (1, 1), (1, 1), (1, 1, 1, 1)), ((2, 5), (2, 1), (1, 2), (3, 0, 6, 2))],
)
def test_every_alias_equals_its_canonical_mode(alias, kshape, stride, dilation, pad4, rng):
    x = _image(rng, (6, 7, 2))
    k = _kernel(rng, kshape)
    canon = canonical_mode(alias)
    args = {"stride": stride, "dilation": dilation, "pad": pad4}
    via_alias = correlate2d(x, k, mode=alias, **args)
    via_upper = correlate2d(x, k, mode=alias.upper(), **args)
    via_name = correlate2d(x, k, mode=canon, **args)
    np.testing.assert_array_equal(via_alias, via_name)
    np.testing.assert_array_equal(via_upper, via_name)
    assert_close(via_alias, ref_correlate_scipy(x, k, stride, dilation, pad4, canon), x, k)


def test_unknown_mode_is_a_usage_error(rng):
    with pytest.raises(UsageError, match="unknown padding mode"):
        correlate2d(_image(rng, (5, 5)), np.ones((3, 3)), pad=(1, 1, 1, 1), mode="mirrored")


# --- dtype ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", PAD_MODES)
@pytest.mark.parametrize("kshape", [(3, 3), (2, 2), (5, 2)])
def test_float64_path(mode, kshape, rng):
    x = rng.normal(size=(8, 6, 2)) * 1e3
    k = _kernel(rng, kshape)
    pad4 = pad4_from_spec("same", kshape)
    for dtype in (np.float64, "float64", np.dtype("float64")):
        out = correlate2d(x, k, pad=pad4, mode=mode, stride=(2, 1), dtype=dtype)
        assert out.dtype == np.float64
        assert_close(out, ref_correlate_loop(x, k, (2, 1), 1, pad4, mode), x, k, rtol=1e-12)


def test_default_dtype_is_float32_for_uint8_input(rng):
    x = rng.integers(0, 256, size=(6, 6, 3)).astype(np.uint8)
    k = np.full((3, 3), 1 / 9)
    out = correlate2d(x, k, pad=(1, 1, 1, 1), mode="reflection")
    assert out.dtype == np.float32
    assert_close(out, ref_correlate_scipy(x, k, 1, 1, (1, 1, 1, 1), "reflection"), x, k)


@pytest.mark.parametrize("dtype", [np.int32, np.float16, "uint8"])
def test_other_arithmetic_dtypes_are_refused(dtype, rng):
    with pytest.raises(UsageError, match="float32 or float64"):
        correlate2d(_image(rng, (5, 5)), np.ones((3, 3)), dtype=dtype)


# --- flip ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kshape", [(3, 3), (5, 5), (2, 2), (4, 3), (1, 5), (5, 2)])
@pytest.mark.parametrize("mode", PAD_MODES)
def test_flip_equals_scipy_convolve(mode, kshape, rng):
    """flip=True with same padding is true convolution: scipy.ndimage.convolve, same centring."""
    x = _image(rng, (9, 8))
    k = _kernel(rng, kshape)
    pad4 = pad4_from_spec("same", kshape)
    out = correlate2d(x, k, pad=pad4, mode=mode, flip=True, dtype=np.float64)
    ref = ndi.convolve(x, k, mode=SCIPY_MODE[mode], cval=0.0)
    assert_close(out, ref, x, k, rtol=1e-12)


def test_flip_is_correlation_with_the_rotated_kernel(rng):
    x = _image(rng, (7, 7, 3))
    k = _kernel(rng, (3, 4))
    a = correlate2d(x, k, pad=(2, 0, 1, 3), mode="symmetric", stride=(1, 2), flip=True)
    b = ref_correlate_loop(x, k[::-1, ::-1], (1, 2), 1, (2, 0, 1, 3), "symmetric")
    assert_close(a, b, x, k)


def test_no_flip_is_not_convolution():
    """Guards the direction: correlation of an asymmetric kernel differs from convolution."""
    x = np.zeros((5, 5))
    x[2, 2] = 1.0
    k = np.arange(1.0, 10.0).reshape(3, 3)
    out = correlate2d(x, k, pad=(1, 1, 1, 1), dtype=np.float64)
    # correlating an impulse draws the kernel rotated by 180 degrees
    np.testing.assert_array_equal(out[1:4, 1:4], k[::-1, ::-1])
    flipped = correlate2d(x, k, pad=(1, 1, 1, 1), dtype=np.float64, flip=True)
    np.testing.assert_array_equal(flipped[1:4, 1:4], k)


# --- hard cases: kernel larger than the image ------------------------------------------------


HARD_SHAPES = [(1, 1), (1, 5), (2, 2), (3, 4), (5, 1)]


@pytest.mark.parametrize("kshape", [(7, 7), (5, 2), (9, 3), (4, 6)])
@pytest.mark.parametrize("xshape", HARD_SHAPES, ids=lambda s: f"x{s[0]}x{s[1]}")
@pytest.mark.parametrize("mode", PAD_MODES)
def test_kernel_larger_than_image(mode, xshape, kshape, rng):
    """Like scipy's table of hard cases: the padding reaches past the far edge, even repeatedly."""
    x = _image(rng, xshape)
    k = _kernel(rng, kshape)
    pad4 = pad4_from_spec("same", kshape)
    out = correlate2d(x, k, pad=pad4, mode=mode)
    assert out.shape == xshape
    assert_close(out, ref_correlate_loop(x, k, 1, 1, pad4, mode), x, k)
    assert_close(out, ref_correlate_scipy(x, k, 1, 1, pad4, mode), x, k)
    if kshape[0] % 2 and kshape[1] % 2:  # scipy's own centring for odd kernels, no wrapper
        ref = ndi.correlate(x, k, mode=SCIPY_MODE[mode], cval=0.0)
        assert_close(out, ref, x, k)


@pytest.mark.parametrize("mode", PAD_MODES)
def test_pad_many_times_the_image(mode, rng):
    x = _image(rng, (2, 3))
    k = _kernel(rng, (3, 2))
    pad4 = (7, 5, 0, 11)
    out = correlate2d(x, k, pad=pad4, mode=mode, stride=(1, 2))
    assert_close(out, ref_correlate_loop(x, k, (1, 2), 1, pad4, mode), x, k)


# --- empty outputs ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("xshape", "kshape", "kwargs", "arithmetic"),
    [
        ((4, 4), (5, 5), {}, "(4 + 0 + 0 - 1*(5-1) - 1) // 1 + 1 = 0"),
        ((10, 3), (1, 5), {}, "(3 + 0 + 0 - 1*(5-1) - 1) // 1 + 1 = -1"),
        ((6, 6), (3, 3), {"dilation": (3, 3)}, "(6 + 0 + 0 - 3*(3-1) - 1) // 1 + 1 = 0"),
        ((2, 8), (7, 3), {"stride": (2, 2), "pad": (1, 2, 1, 1)},
         "(2 + 1 + 2 - 1*(7-1) - 1) // 2 + 1 = 0"),
    ],
)
def test_empty_output_raises_with_the_arithmetic(xshape, kshape, kwargs, arithmetic, rng):
    with pytest.raises(UsageError) as info:
        correlate2d(_image(rng, xshape), np.ones(kshape), mode="zeros", **kwargs)
    assert arithmetic in str(info.value)
    with pytest.raises(UsageError) as info:
        conv2d(_image(rng, xshape + (1,)), np.ones((2, 1) + kshape), **kwargs)
    assert arithmetic in str(info.value)


# --- bad arguments ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kernel",
    [np.ones(3), np.ones((1, 3, 3)), np.zeros((0, 3)), np.array([[1.0, np.nan]]),
     np.array([[np.inf]])],
    ids=["1d", "3d", "empty", "nan", "inf"],
)
def test_bad_kernels_are_usage_errors(kernel, rng):
    with pytest.raises(UsageError):
        correlate2d(_image(rng, (5, 5)), kernel)


@pytest.mark.parametrize("shape", [(5,), (2, 5, 5, 3)])
def test_bad_image_ndim_is_a_usage_error(shape):
    with pytest.raises(UsageError, match="H, W"):
        correlate2d(np.zeros(shape), np.ones((1, 1)))


@pytest.mark.parametrize(
    "kwargs", [{"stride": (0, 1)}, {"stride": (1, -2)}, {"dilation": (0, 0)}, {"dilation": (1, -1)}]
)
def test_stride_and_dilation_below_one_are_usage_errors(kwargs, rng):
    """README 'numbers': stride and dilation are integers >= 1 (not a ZeroDivisionError or garbage)."""
    with pytest.raises(UsageError, match=">= 1"):
        correlate2d(_image(rng, (6, 6)), np.ones((3, 3)), **kwargs)
    with pytest.raises(UsageError, match=">= 1"):
        conv2d(_image(rng, (6, 6, 1)), np.ones((1, 1, 3, 3)), **kwargs)


def test_unknown_method_is_a_usage_error(rng):
    with pytest.raises(UsageError, match="method"):
        correlate2d(_image(rng, (5, 5)), np.ones((3, 3)), method="magic")


def _kernel_for(method: str, rng: np.random.Generator, kshape: tuple[int, int],
                integer: bool = False) -> np.ndarray:
    """A random kernel; rank 1 (an outer product) when the method needs it."""
    if method == "separable":
        if integer:
            return np.outer(rng.integers(-3, 4, kshape[0]), rng.integers(-3, 4, kshape[1])).astype(float)
        return np.outer(rng.uniform(-1, 1, kshape[0]), rng.uniform(-1, 1, kshape[1]))
    if integer:
        return rng.integers(-9, 10, size=kshape).astype(float)
    return _kernel(rng, kshape)


METHOD_CASES = [
    ((3, 3), (1, 1), (1, 1), (1, 1, 1, 1), "reflection"),
    ((5, 2), (2, 3), (2, 1), (4, 1, 0, 2), "symmetric"),
    ((7, 7), (1, 1), (1, 1), (3, 3, 3, 3), "circular"),
    ((1, 9), (3, 1), (1, 2), (0, 0, 8, 8), "border"),
    ((4, 4), (2, 2), (1, 1), (0, 3, 3, 0), "zeros"),
]


@pytest.mark.parametrize("integer", [False, True], ids=["float-kernel", "integer-kernel"])
@pytest.mark.parametrize("method", METHODS)
def test_every_method_matches_the_reference(method, integer, rng):
    """Every engine method, on uint8 (the exact integer paths), uint16 and float images."""
    x8 = rng.integers(0, 256, size=(16, 13, 3)).astype(np.uint8)
    x16 = rng.integers(0, 65536, size=(16, 13, 3)).astype(np.uint16)  # must not take the 8-bit path
    for xin in (x8, x16, x8.astype(np.float64) + 0.25):
        for kshape, stride, dilation, pad4, mode in METHOD_CASES:
            k = _kernel_for(method, rng, kshape, integer)
            out = correlate2d(xin, k, stride=stride, dilation=dilation, pad=pad4, mode=mode, method=method)
            assert out.dtype == np.float32
            assert_close(out, ref_correlate_scipy(xin, k, stride, dilation, pad4, mode), xin, k)


@pytest.mark.parametrize("threads", [1, 2, 3, 5])
@pytest.mark.parametrize("method", METHODS)
def test_band_boundaries(method, threads, rng):
    """Several threads split the output rows into bands: no row may be lost or read wrongly there."""
    x = _image(rng, (29, 17, 2))
    for kshape, stride, dilation, pad4, mode in METHOD_CASES:
        k = _kernel_for(method, rng, kshape)
        out = correlate2d(x, k, stride=stride, dilation=dilation, pad=pad4, mode=mode, method=method,
                          threads=threads)
        assert_close(out, ref_correlate_scipy(x, k, stride, dilation, pad4, mode), x, k)
    wts = rng.uniform(-1, 1, size=(3, 2, 3, 4))
    out = conv2d(x, wts, stride=(2, 1), dilation=(1, 2), pad=(1, 2, 3, 0), mode="symmetric",
                 threads=threads)
    ref = ref_conv2d_loop(x, wts, None, (2, 1), (1, 2), (1, 2, 3, 0), "symmetric")
    np.testing.assert_allclose(out, ref, rtol=RTOL, atol=RTOL * 255 * 24)


def test_integer_kernel_at_the_int16_bound(rng):
    """sum|k| * 255 just under and over 2**15: the exact integer path must not overflow."""
    x8 = np.full((9, 9), 255, dtype=np.uint8)
    x8[::2, ::3] = 0
    for total in (128, 129, 200):  # 128 * 255 = 32640 < 32767 < 129 * 255
        k = np.zeros((3, 3))
        k[1, 1] = total - 8
        k[0, :] = 1
        k[2, :] = -1
        k[1, 0] = 1
        k[1, 2] = -1
        for method in METHODS:
            kk = k if method != "separable" else np.outer([1, total, 1], [1, 1, 1]).astype(float)
            out = correlate2d(x8, kk, pad=(1, 1, 1, 1), mode="reflection", method=method)
            ref = ref_correlate_loop(x8, kk, 1, 1, (1, 1, 1, 1), "reflection")
            assert_close(out, ref, x8, kk)


def test_separable_method_refuses_a_rank2_kernel(rng):
    with pytest.raises(UsageError, match="rank-1"):
        correlate2d(_image(rng, (6, 6)), np.eye(3), pad=(1, 1, 1, 1), method="separable")


def test_input_is_not_modified(rng):
    x = _image(rng, (6, 6, 3))
    before = x.copy()
    correlate2d(x, _kernel(rng, (3, 3)), pad=(1, 1, 1, 1), mode="reflection")
    conv2d(x, _kernel(rng, (3, 3)).reshape(1, 1, 3, 3).repeat(3, axis=1), pad=(1, 1, 1, 1))
    np.testing.assert_array_equal(x, before)


# --- Hypothesis properties -------------------------------------------------------------------

ALL_PAD_NAMES = list(PAD_MODES) + PAD_ALIASES


def _arrays(shape):
    return hnp.arrays(np.float64, shape, elements=st.floats(-1000, 1000, width=32))


@st.composite
def _image_strategy(draw, max_side: int = 8):
    h = draw(st.integers(1, max_side))
    w = draw(st.integers(1, max_side))
    c = draw(st.sampled_from([None, 1, 3]))
    return draw(_arrays((h, w) if c is None else (h, w, c)))


@given(x=_image_strategy(), mode=st.sampled_from(ALL_PAD_NAMES), half=st.integers(0, 3),
       d=st.integers(1, 3))
def test_identity_kernel_returns_the_input(x, mode, half, d):
    k = np.zeros((2 * half + 1, 2 * half + 1))
    k[half, half] = 1.0
    pad4 = pad4_from_spec("same", k.shape, (d, d))
    out = correlate2d(x, k, pad=pad4, mode=mode, dilation=(d, d))
    assert out.shape == x.shape
    np.testing.assert_allclose(out, x.astype(np.float32), rtol=1e-6, atol=1e-4)


@given(
    h=st.integers(1, 12), w=st.integers(1, 12), kh=st.integers(1, 6), kw=st.integers(1, 6),
    s=st.tuples(st.integers(1, 4), st.integers(1, 4)), d=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    pad4=st.tuples(*[st.integers(0, 6)] * 4), mode=st.sampled_from(PAD_MODES),
)
def test_output_shape_equals_the_formula(h, w, kh, kw, s, d, pad4, mode):
    x = np.zeros((h, w, 2))
    k = np.ones((kh, kw))
    oh = out_len(h, kh, s[0], d[0], pad4[0], pad4[1])
    ow = out_len(w, kw, s[1], d[1], pad4[2], pad4[3])
    if oh < 1 or ow < 1:
        with pytest.raises(UsageError, match="output would be empty"):
            correlate2d(x, k, stride=s, dilation=d, pad=pad4, mode=mode)
    else:
        out = correlate2d(x, k, stride=s, dilation=d, pad=pad4, mode=mode)
        assert out.shape == (oh, ow, 2)


@st.composite
def _geometry(draw, max_side: int = 7):
    """A random image shape, kernel, stride, dilation, pad and mode with a non-empty output."""
    h = draw(st.integers(1, max_side))
    w = draw(st.integers(1, max_side))
    kh = draw(st.integers(1, 4))
    kw = draw(st.integers(1, 4))
    s = draw(st.tuples(st.integers(1, 3), st.integers(1, 3)))
    d = draw(st.tuples(st.integers(1, 3), st.integers(1, 3)))
    mode = draw(st.sampled_from(list(PAD_MODES) + ["valid"]))
    if mode == "valid":
        pad4 = (0, 0, 0, 0)
    else:
        pad4 = draw(st.tuples(*[st.integers(0, 5)] * 4))
    oh = out_len(h, kh, s[0], d[0], pad4[0], pad4[1])
    ow = out_len(w, kw, s[1], d[1], pad4[2], pad4[3])
    if oh < 1 or ow < 1:  # grow the pad until the output is non-empty (valid: grow the image)
        if mode == "valid":
            h, w = h + max(0, 1 - oh) * s[0], w + max(0, 1 - ow) * s[1]
        else:
            pad4 = (pad4[0] + max(0, 1 - oh) * s[0], pad4[1], pad4[2] + max(0, 1 - ow) * s[1], pad4[3])
    return (h, w), (kh, kw), s, d, pad4, mode


@given(g=_geometry(), data=st.data(), a=st.floats(-3, 3), b=st.floats(-3, 3))
def test_linearity(g, data, a, b):
    (h, w), kshape, s, d, pad4, mode = g
    f = data.draw(_arrays((h, w)))
    gg = data.draw(_arrays((h, w)))
    k = data.draw(_arrays(kshape))
    args = {"stride": s, "dilation": d, "pad": pad4, "mode": mode, "dtype": np.float64}
    lhs = correlate2d(a * f + b * gg, k, **args)
    rhs = a * correlate2d(f, k, **args) + b * correlate2d(gg, k, **args)
    scale = max(1.0, float(np.abs(k).sum()) * 1000 * (abs(a) + abs(b)))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-9, atol=1e-9 * scale)


@given(x=_image_strategy(), data=st.data(), d=st.integers(1, 3), dy=st.integers(-9, 9),
       dx=st.integers(-9, 9))
def test_circular_mode_is_shift_equivariant(x, data, d, dy, dx):
    k = data.draw(_arrays((data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4)))))
    pad4 = pad4_from_spec("same", k.shape, (d, d))
    args = {"dilation": (d, d), "pad": pad4, "mode": "circular", "dtype": np.float64}
    shifted_then_filtered = correlate2d(np.roll(x, (dy, dx), axis=(0, 1)), k, **args)
    filtered_then_shifted = np.roll(correlate2d(x, k, **args), (dy, dx), axis=(0, 1))
    scale = max(1.0, float(np.abs(k).sum()) * 1000)
    np.testing.assert_allclose(shifted_then_filtered, filtered_then_shifted, rtol=1e-9, atol=1e-9 * scale)


@given(g=_geometry(), data=st.data(), method=st.sampled_from(METHODS), channels=st.sampled_from([0, 2]),
       threads=st.sampled_from([1, 2, 3]))
def test_correlate2d_equals_the_references(g, data, method, channels, threads):
    (h, w), kshape, s, d, pad4, mode = g
    x = data.draw(_arrays((h, w, channels) if channels else (h, w)))
    if method == "separable":  # rank 1 by construction (the method refuses rank 0: all zeros)
        k = np.outer(data.draw(_arrays((kshape[0],))), data.draw(_arrays((kshape[1],))))
        assume(np.any(k))
    else:
        k = data.draw(_arrays(kshape))
    out = correlate2d(x, k, stride=s, dilation=d, pad=pad4, mode=mode, method=method, threads=threads)
    assert_close(out, ref_correlate_loop(x, k, s, d, pad4, mode), x, k)
    assert_close(out, ref_correlate_scipy(x, k, s, d, pad4, mode), x, k)


# --- conv2d ------------------------------------------------------------------------------------


@given(g=_geometry(max_side=6), data=st.data(), cin=st.integers(1, 3), cout=st.integers(1, 3),
       with_bias=st.booleans())
def test_conv2d_equals_a_direct_loop(g, data, cin, cout, with_bias):
    (h, w), kshape, s, d, pad4, mode = g
    x = data.draw(_arrays((h, w, cin)))
    wts = data.draw(_arrays((cout, cin) + kshape))
    bias = data.draw(_arrays((cout,))) if with_bias else None
    out = conv2d(x, wts, bias, stride=s, dilation=d, pad=pad4, mode=mode)
    ref = ref_conv2d_loop(x, wts, bias, s, d, pad4, mode)
    assert out.dtype == np.float32
    assert out.shape == ref.shape
    scale = max(1.0, float(np.abs(wts).sum(axis=(1, 2, 3)).max()) * 1000 + 1000)
    np.testing.assert_allclose(out, ref, rtol=RTOL, atol=RTOL * scale)


@pytest.mark.parametrize(("stride", "dilation", "pad_spec", "mode"), list(itertools.product(
    [(1, 1), (2, 2)], [(1, 1), (2, 1)], ["same", "0,1,2,0"], ["zeros", "reflection", "circular"])))
def test_conv2d_grid(stride, dilation, pad_spec, mode, rng):
    x = _image(rng, (7, 8, 3))
    wts = rng.uniform(-1, 1, size=(4, 3, 3, 2))
    bias = rng.uniform(-10, 10, size=4)
    pad4 = pad4_from_spec(pad_spec, (3, 2), dilation)
    for dtype, rtol in ((np.float32, RTOL), (np.float64, 1e-12)):
        out = conv2d(x, wts, bias, stride=stride, dilation=dilation, pad=pad4, mode=mode, dtype=dtype)
        assert out.dtype == dtype
        ref = ref_conv2d_loop(x, wts, bias, stride, dilation, pad4, mode)
        np.testing.assert_allclose(out, ref, rtol=rtol, atol=rtol * 255 * 18)


def test_conv2d_of_one_channel_is_correlate2d(rng):
    x = _image(rng, (9, 9))
    k = _kernel(rng, (3, 3))
    a = conv2d(x, k[None, None], pad=(1, 1, 1, 1), mode="border", dtype=np.float64)
    b = correlate2d(x, k, pad=(1, 1, 1, 1), mode="border", dtype=np.float64)
    assert a.shape == (9, 9, 1)
    np.testing.assert_allclose(a[:, :, 0], b, rtol=1e-12, atol=1e-9)


def test_conv2d_bad_weights_and_bias(rng):
    x = _image(rng, (5, 5, 3))
    with pytest.raises(UsageError, match="in=3"):
        conv2d(x, np.ones((2, 2, 3, 3)))
    with pytest.raises(UsageError, match="in=3"):
        conv2d(x, np.ones((3, 3)))
    with pytest.raises(UsageError, match="bias"):
        conv2d(x, np.ones((2, 3, 3, 3)), np.ones(3))
    with pytest.raises(UsageError, match="NaN"):
        conv2d(x, np.full((2, 3, 1, 1), np.nan))
