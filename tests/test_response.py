"""kernels --response: the frequency response against numpy.fft of a zero-padded kernel, and known values."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from convcli.cli.app import cli


def _response(spec: str, *extra: str) -> dict:
    r = CliRunner().invoke(cli, ["kernels", spec, "--response", "--json", *extra], catch_exceptions=False)
    assert r.exit_code == 0 and r.stderr == ""
    return json.loads(r.stdout)


def _reference(k: np.ndarray, n: int) -> np.ndarray:
    padded = np.zeros((n, n))
    padded[: k.shape[0], : k.shape[1]] = k
    return np.fft.fftshift(np.abs(np.fft.fft2(padded)))


@pytest.mark.parametrize(("spec", "k"), [
    ("sharpen", np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], float)),
    ("edge-vertical", np.array([[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]], float)),
    ("1 2; 3 4; 5 6", np.array([[1, 2], [3, 4], [5, 6]], float)),
])
def test_matches_numpy_fft_of_the_zero_padded_kernel(spec: str, k: np.ndarray) -> None:
    rec = _response(spec, "--dft-size", "32")
    np.testing.assert_allclose(np.array(rec["magnitude"]), _reference(k, 32), atol=1e-9)
    assert rec["freqs"][0] == -0.5 and rec["freqs"][16] == 0.0


def test_known_values() -> None:
    box = _response("box5")
    assert box["dc_gain"] == pytest.approx(1.0)  # DC gain = sum of the weights
    assert _response("5 5; 5 5")["dc_gain"] == pytest.approx(20.0)
    sh = _response("sharpen")
    # at Nyquist along one axis: 5 - (-1 * -1) ... worked by hand: 5 + 2*1*cos(pi)*(-1) + 2*(-1) = 5
    assert sh["nyquist_gain"]["fx"] == pytest.approx(5.0)
    assert sh["nyquist_gain"]["both"] == pytest.approx(9.0)  # 5 + 4 (every -1 times -1)
    kv = _response("edge-vertical")
    assert max(kv["cut_fy"]) == pytest.approx(0.0, abs=1e-12)  # K_v: zero along the fy axis (fx = 0)
    assert max(kv["cut_fx"]) == pytest.approx(6.0)  # |3 * 2i sin(2 pi f)| at f = 1/4
    kh = _response("edge-horizontal")
    assert max(kh["cut_fx"]) == pytest.approx(0.0, abs=1e-12)


def test_picture_and_text(tmp_path: Path) -> None:
    out = tmp_path / "r" / "kv.png"
    r = CliRunner().invoke(cli, ["kernels", "edge-vertical", "--response", "-o", str(out)])
    assert r.exit_code == 0 and "vertical edges" in r.stdout and r.stderr == ""
    from PIL import Image

    with Image.open(out) as im:
        assert im.format == "PNG" and im.size[0] > 500
    r = CliRunner().invoke(cli, ["kernels", "--response"])
    assert r.exit_code == 2 and "needs a kernel" in r.stderr


@pytest.mark.parametrize(("spec", "words"), [
    ("motion:length=9,angle=0", "directional low-pass: smooths along x"),  # 0.3: "mixed"
    ("motion:length=9,angle=90", "directional low-pass: smooths along y"),
    ("1 2 1", "directional low-pass: smooths along x"),  # [1 2 1] at Nyquist: 1 - 2 + 1 = 0
    ("gaussian3", "low-pass (keeps slow changes"),
    ("sharpen", "high-pass boost"),
])
def test_the_kind_of_filter_in_words(spec: str, words: str) -> None:
    r = CliRunner().invoke(cli, ["kernels", spec, "--response"], catch_exceptions=False)
    assert r.exit_code == 0
    assert r.stdout.splitlines()[0].split(": ", 1)[1].startswith(words)


def test_a_kernel_wider_than_half_the_grid_gets_a_grid_twice_its_size() -> None:
    """box:65 on the default 64 grid was drawn on a 65 grid: samples at multiples of 1/65, which are
    exactly the box's zeros (a lone spike at DC). The grid grows to a power of two >= 2 x 65, even, so
    its edge is Nyquist; the cut is the Dirichlet kernel |sin(65 pi f) / (65 sin(pi f))|."""
    rec = _response("box:65")
    assert rec["dft_size"] == 256 and "under twice the kernel's 65 taps" in rec["note"]
    f = np.array(rec["freqs"])
    assert f[0] == -0.5 and len(f) == 256
    with np.errstate(invalid="ignore", divide="ignore"):
        dirichlet = np.abs(np.sin(65 * np.pi * f) / (65 * np.sin(np.pi * f)))
    dirichlet[f == 0] = 1.0
    np.testing.assert_allclose(rec["cut_fx"], dirichlet, atol=1e-9)
    assert rec["nyquist_gain"]["fx"] == pytest.approx(1 / 65)
    assert sorted(rec["cut_fx"])[-2] > 0.2  # the first side lobe (~0.217) shows


def test_an_odd_grid_is_made_even_so_its_edge_is_nyquist() -> None:
    rec = _response("box3", "--dft-size", "9")
    assert rec["dft_size"] == 10 and rec["freqs"][0] == -0.5 and "odd" in rec["note"]
    assert rec["nyquist_gain"]["fx"] == pytest.approx(1 / 3)  # (1 - 1 + 1) / 3 at f = 0.5
    assert "note" not in _response("box3", "--dft-size", "16")


def test_json_to_a_reader_that_leaves_is_exit_1_quietly() -> None:
    """24 MB of JSON to a reader that leaves after 20 bytes: a TextIOWrapper handed it to a buffered
    write that returned short and dropped the rest in silence (exit 0). Now exit 1, nothing said."""
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-m", "convcli", "kernels", "box:257", "--response", "--json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout is not None and p.stderr is not None
    assert len(p.stdout.read(20)) == 20
    p.stdout.close()
    err = p.stderr.read()
    assert p.wait(timeout=60) == 1 and err == b""


def _kind_line(spec: str) -> str:
    r = CliRunner().invoke(cli, ["kernels", "--response", "--", spec], catch_exceptions=False)  # "-1 ..."
    assert r.exit_code == 0
    return r.stdout.splitlines()[0].split(": ", 1)[1]


@pytest.mark.parametrize(("sigma1", "sigma2"), [(1.0, 1.6), (2.0, 3.0)])
def test_a_difference_of_gaussians_is_band_pass_with_its_peak_where_numpy_puts_it(sigma1: float,
                                                                                  sigma2: float) -> None:
    """A DoG built here (zero sum): numpy's FFT says DC ~0, ~0 past 0.4 cycles/pixel, a ring between.
    It was 'high-pass: removes flat areas' (and a LoG 'high-pass boost: keeps flat areas')."""
    y, x = np.mgrid[-8:9, -8:9].astype(float)
    g1, g2 = np.exp(-(x**2 + y**2) / (2 * sigma1**2)), np.exp(-(x**2 + y**2) / (2 * sigma2**2))
    k = g1 / g1.sum() - g2 / g2.sum()
    mag = _reference(k, 64)
    f = np.fft.fftshift(np.fft.fftfreq(64))
    radius = np.hypot(f[None, :], f[:, None])
    top = mag.max()
    assert mag[32, 32] < 1e-12 * top and mag[radius >= 0.4].max() < 0.2 * top  # the reference is band-pass
    peak = radius.flat[int(np.argmax(mag))]
    literal = "; ".join(" ".join(repr(float(v)) for v in row) for row in k)
    words = _kind_line(literal)
    assert words.startswith("band-pass: removes flat areas and fine detail")
    assert float(words.split("around ")[1].split()[0]) == pytest.approx(peak, abs=0.005)


@pytest.mark.parametrize(("spec", "peak"), [
    # continuous LoG ~ f^2 exp(-2 pi^2 sigma^2 f^2): peak at f = 1 / (pi sigma sqrt 2) = 0.161
    ("log:sigma=1.4", 1 / (np.pi * 1.4 * np.sqrt(2))),
    # DoG: peak where f^2 = ln(s2^2 / s1^2) / (2 pi^2 (s2^2 - s1^2)), 0.175 for 1 and 1.6
    ("dog", np.sqrt(np.log(1.6**2) / (2 * np.pi**2 * (1.6**2 - 1)))),
])
def test_log_and_dog_are_band_pass_around_their_continuous_peak(spec: str, peak: float) -> None:
    words = _kind_line(spec)
    assert words.startswith("band-pass")
    assert float(words.split("around ")[1].split()[0]) == pytest.approx(peak, abs=1 / 64)


def test_a_log_whose_dc_is_a_rounding_of_zero_does_not_keep_flat_areas() -> None:
    """log:sigma=0.8 (7x7): DC 0.0008 against a largest gain of 1.18, yet 'keeps flat areas'."""
    words = _kind_line("log:sigma=0.8")
    assert words.startswith("high-pass: removes flat areas (DC gain 0.1% of the largest)")


@pytest.mark.parametrize(("spec", "words"), [
    ("sobel-x", "high-pass: removes flat areas (DC gain 0); zero along the fy axis"),  # ~0.59 of it at 0.4
    ("laplacian", "high-pass: removes flat areas (DC gain 0)"),
    ("box3", "low-pass"),
    ("gaussian5", "low-pass"),
    ("sharpen", "high-pass boost: keeps flat areas"),  # DC 1, a ninth of its 9 at Nyquist
])
def test_the_other_kinds_keep_their_words(spec: str, words: str) -> None:
    assert _kind_line(spec).startswith(words)


@pytest.mark.parametrize(("literal", "gain"), [("0 0 0; 0 1 0; 0 0 0", 1), ("0 0 0; 0 0 2; 0 0 0", 2),
                                               ("0 0 0.5", 0.5)])
def test_an_impulse_is_all_pass(literal: str, gain: float) -> None:
    """The identity (or a shifted, scaled impulse) has the same gain at every frequency, which numpy's
    FFT shows: it was called "mixed: neither low- nor high-pass"."""
    k = np.array([[float(v) for v in row.split()] for row in literal.split(";")])
    mag = np.abs(np.fft.fft2(k, (64, 64)))
    assert np.ptp(mag) < 1e-12 and mag.max() == pytest.approx(gain)
    assert _kind_line(literal).startswith(f"all-pass: every frequency at gain {gain:g}")


def test_a_small_gaussian_is_a_mild_low_pass_not_a_directional_one() -> None:
    """gaussian:sigma=0.5 is isotropic: numpy's FFT gives it about the same gain along a ring of fine
    detail in every direction; it was called "directional ... in some directions only"."""
    x = np.arange(-2, 3)
    g = np.exp(-(x[:, None] ** 2 + x[None, :] ** 2) / (2 * 0.5**2))
    mag = np.fft.fftshift(np.abs(np.fft.fft2(g / g.sum(), (64, 64))))
    f = np.fft.fftshift(np.fft.fftfreq(64))
    r = np.hypot(f[:, None], f[None, :])
    ring = mag[(r >= 0.4) & (r <= 0.5)]
    assert ring.max() < 2 * ring.min()  # the premise: no direction is favoured
    assert _kind_line("gaussian:sigma=0.5").startswith("mild low-pass")


@pytest.mark.parametrize(("spec", "total"),
                         [("-1 -2 -1", -4.0), ("1 2 1", 4.0), ("0 0 0; 0 -1 0; 0 0 0", -1.0)])
def test_the_dc_line_names_a_negative_sum_as_such(spec: str, total: float) -> None:
    """'gain at DC: 4 (the sum of the weights)' for weights summing to -4: the gain is the sum's size."""
    r = CliRunner().invoke(cli, ["kernels", spec, "--response"], catch_exceptions=False)
    assert r.exit_code == 0, r.stderr
    (line,) = [ln for ln in r.stdout.splitlines() if "gain at DC" in ln]
    assert f"gain at DC (fx = fy = 0): {abs(total):.4g} (" in line
    assert ("the sum of the weights" in line) == (total >= 0)
    assert (f"{total:.4g}: flat areas come out negated" in line) == (total < 0)


def test_a_negative_lone_tap_is_called_a_negated_identity() -> None:
    """-1 at the centre was 'an identity or a shift: no detail changes': the image comes out negated."""
    def first(spec: str) -> str:
        r = CliRunner().invoke(cli, ["kernels", spec, "--response"], catch_exceptions=False)
        return r.stdout.splitlines()[0]

    assert "all-pass" in first("0 0 0; 0 -1 0; 0 0 0") and "negated identity" in first("0 0 0; 0 -1 0; 0 0 0")
    assert "negated" not in first("identity") and "negated" not in first("0 0; 0 2")


def test_the_map_has_fy_growing_downward_as_image_rows_do() -> None:
    """With +fy drawn up the map was the kernel's mirror image: a motion streak rising to the right
    had a ridge rising too, where a line's spectrum is perpendicular to it. Sampled where (fx, fy) =
    (0.2, -0.2) and (0.2, +0.2) fall with fy downward (the figure's layout: map at x 80, y 50, 5 px a
    DFT cell), the brighter is the one NumPy's |DFT| says is larger."""
    from convcli.cli.kernelspec import cli_kernel
    from convcli.teach.plots import frequency_response, response_figure

    k = cli_kernel("motion:length=9,angle=30")
    r = frequency_response(k.weights)
    fig = response_figure(r, "t").astype(np.int64)
    n = r.magnitude.shape[0]
    half = float(r.freqs[1] - r.freqs[0]) / 2
    lo, hi = float(r.freqs[0]) - half, float(r.freqs[-1]) + half

    def pixel(fx: float, fy: float) -> int:
        x = 80 + (fx - lo) / (hi - lo) * n * 5
        y = 50 + (fy - lo) / (hi - lo) * n * 5
        return int(fig[int(y), int(x)].sum())

    spectrum = np.abs(np.fft.fft2(k.weights, s=(n, n)))
    at = int(round(0.2 * n))
    up, down = spectrum[-at % n, at], spectrum[at, at]  # (fy, fx) = (-0.2, 0.2) and (0.2, 0.2)
    assert abs(up - down) > 0.1
    assert (pixel(0.2, -0.2) > pixel(0.2, 0.2)) == (up > down)
