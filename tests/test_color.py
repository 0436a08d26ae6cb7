"""Colour helpers (README 'numbers' Channels): ITU-R 601-2 luma, the sRGB transfer, premultiplied alpha."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from scipy import ndimage

from convcli.cli import cli
from convcli.core.color import linear_to_srgb, luminance, premultiply, srgb_to_linear, unpremultiply


def test_luminance_weights_by_hand():
    px = np.array([[[255.0, 0.0, 0.0], [0.0, 255.0, 0.0], [0.0, 0.0, 255.0], [10.0, 20.0, 30.0]]],
                  dtype=np.float32)
    out = luminance(px)
    assert out.shape == (1, 4, 1)
    np.testing.assert_allclose(out[0, :, 0], [0.299 * 255, 0.587 * 255, 0.114 * 255,
                                              0.299 * 10 + 0.587 * 20 + 0.114 * 30], rtol=1e-6)


def test_luminance_matches_pillow_L_within_rounding():
    ref = resources.files("convcli") / "data" / "cat224.png"
    with resources.as_file(ref) as path, Image.open(path) as im:
        rgb = np.asarray(im.convert("RGB")).astype(np.float32)
        gray = np.asarray(im.convert("L")).astype(np.float32)
    ours = luminance(rgb)[:, :, 0]
    assert np.abs(ours - gray).max() <= 1.0  # Pillow rounds (fixed point); we do not


def test_luminance_passes_one_channel_through_and_refuses_others():
    one = np.arange(6.0).reshape(2, 3, 1)
    assert luminance(one) is one
    with pytest.raises(ValueError, match="1 or 3 channels"):
        luminance(np.zeros((2, 2, 2)))


@pytest.mark.parametrize("maxval", [255.0, 65535.0])
def test_srgb_transfer_by_hand(maxval):
    # IEC 61966-2-1: 0.5 encoded is ((0.5 + 0.055) / 1.055) ** 2.4 = 0.21404 linear; the toe is linear
    x = np.array([0.0, 0.04045, 0.5, 1.0]) * maxval
    lin = srgb_to_linear(x, maxval)
    np.testing.assert_allclose(lin / maxval, [0.0, 0.04045 / 12.92, 0.214041140, 1.0], rtol=1e-6)
    # the standard's two thresholds (0.04045 and 0.0031308 = 0.04045/12.92 rounded) disagree
    # by 5e-9, so the round trip at the toe is only good to ~1e-6 of the range
    np.testing.assert_allclose(linear_to_srgb(lin, maxval), x, rtol=1e-9, atol=1e-5 * maxval)


def test_srgb_round_trip_keeps_dtype():
    x = np.linspace(0, 255, 256, dtype=np.float32)
    lin = srgb_to_linear(x, 255.0)
    assert lin.dtype == np.float32
    assert np.all(np.diff(lin) > 0)
    np.testing.assert_allclose(linear_to_srgb(lin, 255.0), x, atol=1e-3)


def test_premultiply_round_trip_and_transparent_pixels():
    color = np.array([[[200.0, 100.0, 50.0], [10.0, 20.0, 30.0]]])
    alpha = np.array([[255.0, 0.0]])
    pm = premultiply(color, alpha, 255.0)
    np.testing.assert_array_equal(pm[0, 1], 0.0)  # transparent: no colour
    np.testing.assert_array_equal(pm[0, 0], color[0, 0])
    back = unpremultiply(pm, alpha, 255.0)
    np.testing.assert_array_equal(back[0, 0], color[0, 0])
    np.testing.assert_array_equal(back[0, 1], 0.0)
    half = premultiply(color, np.array([[127.5, 127.5]]), 255.0)
    np.testing.assert_allclose(half, color / 2)
    np.testing.assert_allclose(unpremultiply(half, np.array([[127.5, 127.5]]), 255.0), color)


@pytest.mark.parametrize("maxval", [255.0, 65535.0])
def test_linear_to_srgb_is_odd_so_negative_responses_survive(maxval):
    """0.2 clipped negatives to 0 before encoding: an edge filter in linear light with --range abs
    lost every negative response (half the edges)."""
    lin = np.array([-1.0, -0.5, -0.002, 0.0, 0.002, 0.5, 1.0]) * maxval
    enc = linear_to_srgb(lin, maxval) / maxval
    # IEC 61966-2-1 by hand: 0.5 -> 1.055 * 0.5 ** (1/2.4) - 0.055 = 0.735357; the toe is x 12.92
    np.testing.assert_allclose(enc, [-1.0, -0.735357, -0.02584, 0.0, 0.02584, 0.735357, 1.0], rtol=1e-5)


def test_edges_in_linear_light_keep_both_signs_with_range_abs(tmp_path):
    img = np.zeros((8, 12), np.uint8)
    img[:, 6:] = 200  # a rising step (sobel-x > 0), then its mirror image, a falling one (< 0)
    img = np.concatenate([img, img[:, ::-1]], axis=1)
    Image.fromarray(img).save(tmp_path / "steps.png")
    args = ["filter", str(tmp_path / "steps.png"), "-k", "sobel-x", "--linear-light", "--range", "abs",
            "-o", str(tmp_path / "o.png"), "-q"]
    r = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert r.exit_code == 0, r.stderr
    out = np.asarray(Image.open(tmp_path / "o.png"), dtype=float)
    # reference: decode by the standard's formula, sobel-x by scipy (reflect-101), encode |x|
    v = img.astype(float) / 255
    lin = np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)
    a = np.abs(ndimage.correlate(lin, np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], float), mode="mirror"))
    want = np.clip(np.rint(255 * np.where(a <= 0.0031308, a * 12.92, 1.055 * a ** (1 / 2.4) - 0.055)), 0, 255)
    np.testing.assert_allclose(out, want, atol=1)
    assert (out[:, :12] > 0).sum() == (out[:, 12:] > 0).sum() > 0  # the rising and the falling step alike


@pytest.mark.parametrize("method", ["direct", "fft", "im2col", "auto"])
def test_transparent_region_gets_no_colour_from_rounding_noise(tmp_path, method):
    """Every engine leaves alpha ~1e-7 (not 0) where a far-reaching blur meets full transparency;
    dividing the premultiplied colour by that noise wrote colours of +-900 on a 0..255 image.
    Reference: premultiply, blur and divide in float64 with scipy, where the alpha is clearly not 0
    (zeros padding: black outside, alpha padded as border padding does)."""
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (64, 64, 4), dtype=np.uint8)
    a[:, :32] = 0  # transparent left half, no colour
    Image.fromarray(a, "RGBA").save(tmp_path / "in.png")
    r = CliRunner().invoke(cli, ["filter", str(tmp_path / "in.png"), "-k", "box:15", "--method", method,
                                 "--padding", "zeros", "-o", str(tmp_path / "out.npy"), "-q"])
    assert r.exit_code == 0, r.output
    got = np.load(tmp_path / "out.npy").astype(np.float64)
    assert np.isfinite(got).all()
    assert got.min() >= -0.01 and got.max() <= 255.01  # a blur of colours in 0..255 stays in 0..255
    k = np.full((15, 15), 1 / 225)
    alpha = ndimage.correlate(a[..., 3] / 255.0, k, mode="nearest")
    col = np.stack([ndimage.correlate(a[..., c] * (a[..., 3] / 255.0), k, mode="constant")
                    for c in range(3)], -1)
    sure = alpha > 1e-3
    want = col[sure] / alpha[sure][:, None]
    np.testing.assert_allclose(got[sure], want, atol=0.05 if method == "fft" else 2e-3)


@pytest.mark.parametrize("method", ["direct", "fft"])
def test_faint_alpha_survives_a_chain_of_sharpens(tmp_path, method):
    """A uniform image of colour 200 and alpha 1/255, sharpened three times: every sum of the kernel
    is 1, so by hand the result is the same uniform [200, 200, 200, 1]. A noise floor scaled by the
    kernels' abs-sums (9**3) once took that alpha for rounding noise and wrote transparent black."""
    a = np.zeros((20, 20, 4), np.uint8)
    a[..., :3] = 200
    a[..., 3] = 1
    Image.fromarray(a, "RGBA").save(tmp_path / "in.png")
    r = CliRunner().invoke(cli, ["chain", "-i", str(tmp_path / "in.png"), "--method", method,
                                 "-o", str(tmp_path / "out.png"), "-q",
                                 *["filter", "-k", "sharpen"] * 3])
    assert r.exit_code == 0, r.output
    got = np.asarray(Image.open(tmp_path / "out.png"))
    assert got.shape == (20, 20, 4)
    assert (got == np.array([200, 200, 200, 1], np.uint8)).all()
