"""README 'lecture' lecture facts 1, 2, 3, 4 and 6 at the core level (kernels, shapes, engine).

Fact 5 (a channel-mixing conv chain's NCHW shapes) belongs to the pipeline/CLI tests.
Where a real image helps, the bundled 224x224 photo is used, read with Pillow.
"""

from __future__ import annotations

from importlib import resources

import numpy as np
import pytest
from PIL import Image
from reference import PAD_MODES, ref_correlate_loop

from convcli.core.kernels import REGISTRY
from convcli.core.padding import ALL_NAMES
from convcli.core.shapes import Geometry, output_size, resolve_pad
from convcli.core.specs import parse_kernel
from convcli.engine import correlate2d

LECTURE_PATCH = np.array([[10, 20, 30], [40, 50, 60], [70, 80, 90]], dtype=np.float64)
LECTURE_GAUSSIAN = "0.111 0.222 0.111; 0.222 0.444 0.222; 0.111 0.222 0.111"


@pytest.fixture(scope="module")
def cat() -> np.ndarray:
    ref = resources.files("convcli") / "data" / "cat224.png"
    with resources.as_file(ref) as path, Image.open(path) as im:
        arr = np.asarray(im.convert("RGB"))
    assert arr.shape == (224, 224, 3)
    assert arr.dtype == np.uint8
    return arr


# --- fact 1 ------------------------------------------------------------------------------------


def test_fact1_sharpen_on_the_lecture_patch_is_50():
    """(0*10) + (-1*20) + (0*30) + (-1*40) + (5*50) + (-1*60) + (0*70) + (-1*80) + (0*90) = 50."""
    sharpen = REGISTRY["sharpen"].weights
    for dtype in (np.float32, np.float64):
        out = correlate2d(LECTURE_PATCH, sharpen, mode="valid", dtype=dtype)
        assert out.shape == (1, 1)
        assert out[0, 0] == 50.0  # exactly: every product and partial sum is an integer
    # the same from the lecture's literal, and unchanged by --flip (the kernel is symmetric)
    literal = parse_kernel("0 -1 0; -1 5 -1; 0 -1 0").weights
    assert correlate2d(LECTURE_PATCH, literal, mode="valid", flip=True)[0, 0] == 50.0
    assert correlate2d(LECTURE_PATCH.astype(np.uint8), literal, mode="valid")[0, 0] == 50.0


def test_fact1_is_correlation_not_convolution():
    """An asymmetric kernel tells the two apart: the product pairs as the lecture writes them."""
    k = np.array([[1, 0, 0], [0, 0, 0], [0, 0, 0]], dtype=np.float64)  # picks the top-left
    assert correlate2d(LECTURE_PATCH, k, mode="valid")[0, 0] == 10.0
    assert correlate2d(LECTURE_PATCH, k, mode="valid", flip=True)[0, 0] == 90.0


# --- fact 2 ------------------------------------------------------------------------------------


def test_fact2_valid_3x3_224_to_222(cat):
    out = correlate2d(cat, REGISTRY["sharpen"].weights, mode="valid")
    assert out.shape == (222, 222, 3)
    assert Geometry((3, 3)).out_hw(224, 224) == (222, 222)
    assert resolve_pad(None, (3, 3), (1, 1), "valid") == (0, 0, 0, 0)
    # a spot check of the values against the float64 loop on a corner of the photo
    corner = cat[:12, :12]
    np.testing.assert_allclose(
        correlate2d(corner, REGISTRY["sharpen"].weights, mode="valid"),
        ref_correlate_loop(corner, REGISTRY["sharpen"].weights, 1, 1, (0, 0, 0, 0), "valid"),
        rtol=1e-6, atol=1e-3,
    )


# --- fact 3 ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [n for n in ALL_NAMES if n not in ("valid", "none")])
def test_fact3_same_padding_keeps_224(cat, mode):
    pad = resolve_pad("same", (3, 3), (1, 1), mode)
    assert pad == (1, 1, 1, 1)
    out = correlate2d(cat, REGISTRY["gaussian3"].weights, pad=pad, mode=mode)
    assert out.shape == (224, 224, 3)
    # interior pixels do not depend on the mode: blur of the photo, checked by the loop
    window = cat[100:106, 50:56].astype(np.float64)
    inner = ref_correlate_loop(window, REGISTRY["gaussian3"].weights, 1, 1, (0, 0, 0, 0), "valid")
    np.testing.assert_allclose(out[101:105, 51:55], inner, rtol=1e-5, atol=1e-3)


# --- fact 4 ------------------------------------------------------------------------------------


def test_fact4_stride2_zeros_pad1_224_112_56(cat):
    k = REGISTRY["gaussian3"].weights
    g = Geometry((3, 3), (2, 2), (1, 1), (1, 1, 1, 1))
    assert output_size(224, 3, 2, 1, 1, 1) == 112
    assert g.out_hw(224, 224) == (112, 112)
    assert g.out_hw(112, 112) == (56, 56)
    once = correlate2d(cat, k, stride=(2, 2), pad=(1, 1, 1, 1), mode="zeros")
    assert once.shape == (112, 112, 3)
    twice = correlate2d(once, k, stride=(2, 2), pad=(1, 1, 1, 1), mode="zeros")
    assert twice.shape == (56, 56, 3)
    # output (y, x) is centred on input (2y, 2x): compare a few pixels with the loop
    patch = cat[:9, :9, 0]
    expected = ref_correlate_loop(patch, k, 2, 1, (1, 1, 1, 1), "zeros")
    np.testing.assert_allclose(once[:4, :4, 0], expected[:4, :4], rtol=1e-6, atol=1e-3)
    # zero padding darkens the frame: the top-left output only gets k[1:, 1:] = 9/16 of the weight
    assert once[0, 0, 0] == pytest.approx(float((k[1:, 1:] * cat[:2, :2, 0]).sum()), rel=1e-6)


# --- fact 6 ------------------------------------------------------------------------------------


def test_fact6_the_printed_gaussian_sums_to_1_78():
    k = parse_kernel(LECTURE_GAUSSIAN)
    assert k.shape == (3, 3)
    assert k.weights.sum() == pytest.approx(1.776, abs=1e-12)
    assert round(float(k.weights.sum()), 2) == 1.78


def test_fact6_the_printed_gaussian_brightens_a_constant_image():
    k = parse_kernel(LECTURE_GAUSSIAN).weights
    flat = np.full((8, 8), 100.0)
    for mode in PAD_MODES:
        out = correlate2d(flat, k, pad=(1, 1, 1, 1), mode=mode, dtype=np.float64)
        np.testing.assert_allclose(out[1:-1, 1:-1], 177.6, rtol=1e-12)  # interior: x 1.776
    # with reflection padding every pixel, the border included, is brightened by the same factor
    out = correlate2d(flat, k, pad=(1, 1, 1, 1), mode="reflection")
    np.testing.assert_allclose(out, 177.6, rtol=1e-6)


def test_fact6_normalize_fixes_it(cat):
    k = parse_kernel(LECTURE_GAUSSIAN).normalized()
    assert k.weights.sum() == pytest.approx(1.0, abs=1e-15)
    flat = np.full((8, 8), 100.0)
    out = correlate2d(flat, k.weights, pad=(1, 1, 1, 1), mode="zeros", dtype=np.float64)
    np.testing.assert_allclose(out[1:-1, 1:-1], 100.0, rtol=1e-12)
    # normalised, it is the registry's 1/16 Gaussian up to the lecture's rounding to 3 decimals
    np.testing.assert_allclose(k.weights, REGISTRY["gaussian3"].weights, atol=2e-4)
    # and on the photo the brightness is kept (reflection: no dark frame), not raised by 1.78
    photo = cat.astype(np.float64)
    blurred = correlate2d(cat, k.weights, pad=(1, 1, 1, 1), mode="reflection")
    assert blurred.mean() == pytest.approx(photo.mean(), rel=5e-3)
    bright = correlate2d(cat, parse_kernel(LECTURE_GAUSSIAN).weights, pad=(1, 1, 1, 1), mode="reflection")
    assert bright.mean() == pytest.approx(1.776 * photo.mean(), rel=5e-3)


def test_fact6_registry_gaussian3_is_the_normalised_one():
    g3 = REGISTRY["gaussian3"].weights
    np.testing.assert_array_equal(g3, np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16)
    assert g3.sum() == 1.0
