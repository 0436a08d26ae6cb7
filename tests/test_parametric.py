"""Parametric kernels, rotations, kernel images: checked against scipy.ndimage, OpenCV's Gabor formula
written out here, ImageMagick's printed kernels (hand-copied) and, where a real ImageMagick is
installed, ``convert -morphology``."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import scipy.ndimage as ndi
from hypothesis import given
from hypothesis import strategies as st

from convcli.core.parametric import kernel_from_image
from convcli.core.specs import parse_kernel
from convcli.errors import UsageError

ROOT = Path(__file__).resolve().parent.parent


def delta_response(k: np.ndarray) -> np.ndarray:
    """Correlating a unit impulse gives the kernel rotated by 180°; rotate back."""
    h, w = k.shape
    img = np.zeros((h + 10, w + 10))
    img[(h + 10) // 2, (w + 10) // 2] = 1.0
    out = ndi.correlate(img, k, mode="constant")
    cy, cx = (h + 10) // 2, (w + 10) // 2
    return out[cy - h // 2: cy + h // 2 + 1, cx - w // 2: cx + w // 2 + 1][::-1, ::-1]


def interior(a: np.ndarray, r: int) -> np.ndarray:
    return a[r:-r, r:-r]


# --------------------------------------------------------------------------- Gaussian family vs scipy


@given(sigma=st.floats(0.4, 4.0))
def test_gaussian_filters_like_scipy_gaussian_filter(sigma: float) -> None:
    k = parse_kernel(f"gaussian:sigma={sigma!r}").weights
    r = math.ceil(3 * sigma)
    assert k.shape == (2 * r + 1, 2 * r + 1)
    img = np.random.default_rng(1).random((40, 40))
    ours = ndi.correlate(img, k, mode="reflect")
    ref = ndi.gaussian_filter(img, sigma, truncate=r / sigma, mode="reflect")  # the same radius r
    np.testing.assert_allclose(interior(ours, r), interior(ref, r), atol=1e-12)


def test_gaussian_size_key_overrides_the_size() -> None:
    k = parse_kernel("gaussian:sigma=2,size=7").weights
    assert k.shape == (7, 7)
    x = np.arange(-3, 4)
    g = np.exp(-x * x / 8.0)
    np.testing.assert_allclose(k, np.outer(g, g) / g.sum() ** 2, atol=1e-15)


@given(sigma=st.floats(0.6, 3.0))
def test_log_is_scipy_gaussian_laplace(sigma: float) -> None:
    k = parse_kernel(f"log:sigma={sigma!r}").weights
    r = math.ceil(3 * sigma)
    img = np.random.default_rng(2).random((48, 48))
    ours = ndi.correlate(img, k, mode="reflect")
    ref = ndi.gaussian_laplace(img, sigma, truncate=r / sigma, mode="reflect")
    np.testing.assert_allclose(interior(ours, r), interior(ref, r), atol=1e-10)


def test_dog_is_the_difference_of_two_scipy_gaussians() -> None:
    k = parse_kernel("dog:sigma1=1,sigma2=1.6").weights
    r = math.ceil(3 * 1.6)
    assert k.shape == (2 * r + 1,) * 2
    img = np.random.default_rng(3).random((40, 40))
    ours = ndi.correlate(img, k, mode="reflect")
    ref = (ndi.gaussian_filter(img, 1.0, truncate=r / 1.0, mode="reflect")
           - ndi.gaussian_filter(img, 1.6, truncate=r / 1.6, mode="reflect"))
    np.testing.assert_allclose(interior(ours, r), interior(ref, r), atol=1e-12)


def test_binomial_and_box_by_hand() -> None:
    np.testing.assert_array_equal(parse_kernel("binomial:n=3").weights,
                                  np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16)
    row7 = np.array([1, 6, 15, 20, 15, 6, 1]) / 64
    np.testing.assert_allclose(parse_kernel("binomial:n=7").weights, np.outer(row7, row7), atol=1e-17)
    np.testing.assert_allclose(parse_kernel("box:size=7").weights, np.full((7, 7), 1 / 49))
    np.testing.assert_allclose(parse_kernel("box:7").weights, np.full((7, 7), 1 / 49))  # bare value


# --------------------------------------------------------------------------- Gabor: OpenCV's formula


def opencv_gabor(ksize: tuple[int, int] | None, sigma: float, theta: float, lambd: float, gamma: float,
                 psi: float) -> np.ndarray:
    """cv::getGaborKernel (imgproc/src/gabor.cpp), transcribed loop for loop; angles in radians."""
    sigma_x = sigma
    sigma_y = sigma / gamma
    nstds = 3
    c, s = math.cos(theta), math.sin(theta)
    if ksize is not None and ksize[1] > 0:
        xmax = ksize[1] // 2
    else:
        xmax = round(max(abs(nstds * sigma_x * c), abs(nstds * sigma_y * s)))
    if ksize is not None and ksize[0] > 0:
        ymax = ksize[0] // 2
    else:
        ymax = round(max(abs(nstds * sigma_x * s), abs(nstds * sigma_y * c)))
    xmin, ymin = -xmax, -ymax
    kernel = np.zeros((ymax - ymin + 1, xmax - xmin + 1))
    scale = 1.0
    ex = -0.5 / (sigma_x * sigma_x)
    ey = -0.5 / (sigma_y * sigma_y)
    cscale = math.pi * 2 / lambd
    for y in range(ymin, ymax + 1):
        for x in range(xmin, xmax + 1):
            xr = x * c + y * s
            yr = -x * s + y * c
            v = scale * math.exp(ex * xr * xr + ey * yr * yr) * math.cos(cscale * xr + psi)
            kernel[ymax - y, xmax - x] = v
    return kernel


@pytest.mark.parametrize(("sigma", "theta", "lambd", "gamma", "psi"), [
    (4, 30, 10, 0.5, 0), (2, 0, 6, 1, 90), (3, 135, 8, 0.7, 45), (1.5, 77, 5, 2.0, -30)])
def test_gabor_is_opencv_getgaborkernel(sigma: float, theta: float, lambd: float, gamma: float,
                                        psi: float) -> None:
    k = parse_kernel(f"gabor:sigma={sigma},theta={theta},lambda={lambd},gamma={gamma},psi={psi}").weights
    ref = opencv_gabor(None, sigma, math.radians(theta), lambd, gamma, math.radians(psi))
    assert k.shape == ref.shape
    np.testing.assert_allclose(k, ref, atol=1e-12)


def test_gabor_with_a_size() -> None:
    k = parse_kernel("gabor:sigma=4,theta=30,size=21").weights
    np.testing.assert_allclose(k, opencv_gabor((21, 21), 4, math.radians(30), 10, 0.5, 0), atol=1e-12)


# --------------------------------------------------------------------------- motion, disk, comet


@given(length=st.floats(1.0, 25.0), angle=st.floats(-360.0, 360.0))
def test_motion_is_centred_for_every_length_and_angle(length: float, angle: float) -> None:
    """A centred line is point-symmetric about the middle tap. 0.2 let lengths below 1 through, and
    its clip bounds crossed: motion:length=0.5 was [0.25 0.75 0], off centre by a quarter pixel."""
    w = parse_kernel(f"motion:length={length!r},angle={angle!r}").weights
    assert w.shape[0] % 2 == 1 and w.shape[1] % 2 == 1
    np.testing.assert_allclose(w, w[::-1, ::-1], atol=1e-12)


@pytest.mark.parametrize("length", ["0", "0.5", "0.999"])
def test_motion_shorter_than_one_tap_is_refused(length: str) -> None:
    with pytest.raises(UsageError, match="must be at least 1"):
        parse_kernel(f"motion:length={length}")


def test_motion_along_the_axes_is_a_plain_line() -> None:
    np.testing.assert_allclose(parse_kernel("motion:length=15").weights, np.full((1, 15), 1 / 15))
    np.testing.assert_allclose(parse_kernel("motion:length=5,angle=90").weights, np.full((5, 1), 1 / 5))
    np.testing.assert_allclose(parse_kernel("motion:length=5,angle=180").weights, np.full((1, 5), 1 / 5))


@given(length=st.integers(7, 41), angle=st.floats(0, 180, exclude_max=True))
def test_motion_points_along_its_angle(length: int, angle: float) -> None:
    w = parse_kernel(f"motion:length={length},angle={angle!r}").weights
    assert w.sum() == pytest.approx(1.0)
    assert (w >= 0).all()
    np.testing.assert_allclose(w, w[::-1, ::-1], atol=1e-15)  # centred: symmetric under 180°
    h, wd = w.shape
    y, x = np.mgrid[:h, :wd]
    y = (h - 1) / 2 - y  # up on screen is +y
    x = x - (wd - 1) / 2
    cxx, cyy, cxy = (w * x * x).sum(), (w * y * y).sum(), (w * x * y).sum()
    principal = math.degrees(0.5 * math.atan2(2 * cxy, cxx - cyy)) % 180
    diff = min(abs(principal - angle), 180 - abs(principal - angle))
    assert diff < 3.0


def test_disk_area_coverage() -> None:
    w = parse_kernel("disk:radius=5").weights
    assert w.shape == (11, 11)
    assert w.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(w, w.T, atol=1e-15)
    np.testing.assert_allclose(w, w[::-1], atol=1e-15)
    coverage = w / w.max()  # the centre cell is fully covered
    assert coverage.sum() == pytest.approx(math.pi * 25, rel=2e-3)
    # A cell straddling the circle is partly covered; one beyond it not at all.
    assert 0 < coverage[5, 0] < 1
    assert coverage[0, 0] == 0


def test_disk_without_antialiasing_is_imagemagick_hard_disc() -> None:
    w = parse_kernel("disk:radius=2,aa=0").weights
    expected = np.array([[0, 0, 1, 0, 0], [0, 1, 1, 1, 0], [1, 1, 1, 1, 1], [0, 1, 1, 1, 0],
                         [0, 0, 1, 0, 0]], dtype=float)  # x² + y² <= 4
    np.testing.assert_allclose(w, expected / 13)


#: ImageMagick 6.9.11 Q16, ``convert xc: -define morphology:showkernel=1 -morphology Convolve Comet:0x2
#: null:`` (copied from its output): origin at the first tap.
IM_COMET_0X2 = [0.365615, 0.297997, 0.190027, 0.0947996, 0.0369957, 0.0112927, 0.00269582, 0.00050322,
                7.34391e-05]


def test_comet_is_imagemagicks() -> None:
    w = parse_kernel("comet:sigma=2").weights
    assert w.shape == (1, 17)
    np.testing.assert_array_equal(w[0, :8], 0)  # the origin is the centre: the first 8 are padding
    np.testing.assert_allclose(w[0, 8:], IM_COMET_0X2, rtol=2e-6)
    down = parse_kernel("comet:sigma=2,angle=90").weights
    assert down.shape == (17, 1)
    np.testing.assert_allclose(down[8:, 0], IM_COMET_0X2, rtol=2e-6)


# --------------------------------------------------------------------------- ImageMagick's named kernels

#: ImageMagick's docs / showkernel output, typed by hand.
IM_NAMED = {
    "laplacian:0": [[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]],
    "laplacian:1": [[0, -1, 0], [-1, 4, -1], [0, -1, 0]],
    "laplacian:2": [[-2, 1, -2], [1, 4, 1], [-2, 1, -2]],
    "laplacian:3": [[1, -2, 1], [-2, 4, -2], [1, -2, 1]],
    "laplacian:15": [[0, 0, -1, 0, 0], [0, -1, -2, -1, 0], [-1, -2, 16, -2, -1], [0, -1, -2, -1, 0],
                     [0, 0, -1, 0, 0]],
    "kirsch": [[5, -3, -3], [5, 0, -3], [5, -3, -3]],
    "roberts": [[0, 0, 0], [1, -1, 0], [0, 0, 0]],
    "compass": [[1, 1, -1], [1, -2, -1], [1, 1, -1]],
    "robinson": [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],  # Robinson's north mask
    "freichen": [[1, 0, -1], [2 ** 0.5, 0, -(2 ** 0.5)], [1, 0, -1]],
}


@pytest.mark.parametrize("spec", sorted(IM_NAMED))
def test_named_kernels(spec: str) -> None:
    np.testing.assert_allclose(parse_kernel(spec).weights, IM_NAMED[spec], atol=1e-15)


def test_imagemagick_laplacians_5_7_19_are_zero_sum_and_symmetric() -> None:
    for n, size in ((5, 5), (7, 7), (19, 9)):
        w = parse_kernel(f"laplacian:{n}").weights
        assert w.shape == (size, size)
        assert w.sum() == 0
        np.testing.assert_array_equal(w, w.T)
        np.testing.assert_array_equal(w, w[::-1])


def test_bare_laplacian_stays_the_registry_one() -> None:
    np.testing.assert_array_equal(parse_kernel("laplacian").weights, [[0, 1, 0], [1, -4, 1], [0, 1, 0]])


# --------------------------------------------------------------------------- rotation


def test_rotation_by_hand() -> None:
    # ImageMagick's Kirsch:45 (showkernel): the ring moved one cell clockwise.
    np.testing.assert_array_equal(parse_kernel("kirsch@45").weights, [[5, 5, -3], [5, 0, -3], [-3, -3, -3]])
    np.testing.assert_array_equal(parse_kernel("kirsch@90").weights, [[5, 5, 5], [-3, 0, -3], [-3, -3, -3]])
    # Roberts@45 is the classic Roberts cross.
    np.testing.assert_array_equal(parse_kernel("roberts@45").weights, [[1, 0, 0], [0, -1, 0], [0, 0, 0]])
    # sobel-x [-1 0 1; -2 0 2; -1 0 1] turned 45° clockwise.
    np.testing.assert_array_equal(parse_kernel("sobel-x@45").weights, [[-2, -1, 0], [-1, 0, 1], [0, 1, 2]])
    np.testing.assert_array_equal(parse_kernel("kirsch@-45").weights, parse_kernel("kirsch@315").weights)
    np.testing.assert_array_equal(parse_kernel("kirsch@360").weights, parse_kernel("kirsch").weights)


@given(st.lists(st.integers(-9, 9), min_size=9, max_size=9), st.integers(0, 3))
def test_rotation_in_90_steps_is_rot90_clockwise(values: list[int], quarter: int) -> None:
    from convcli.core.parametric import rotate_weights

    k = np.array(values, dtype=float).reshape(3, 3)

    np.testing.assert_array_equal(rotate_weights(k, 90 * quarter, "k"), np.rot90(k, -quarter))
    # Eight 45° turns come back to the start; the centre never moves.
    r = k
    for _ in range(8):
        r = rotate_weights(r, 45, "k")
        assert r[1, 1] == k[1, 1]
    np.testing.assert_array_equal(r, k)


def test_larger_kernels_turn_in_90_steps_only() -> None:
    w = parse_kernel("laplacian:5@90").weights
    np.testing.assert_array_equal(w, parse_kernel("laplacian:5").weights)  # symmetric
    with pytest.raises(UsageError, match="90° steps"):
        parse_kernel("gaussian:sigma=2@45")


@pytest.mark.parametrize(("spec", "message"), [
    # the angle parameter: it said 'kernel comet@45', a form the user had not typed
    ("comet:angle=45",
     "kernel comet: angle=45: a 1x17 kernel turns in 90° steps only (angle 0, 90, 180 or 270)"),
    ("comet:sigma=2,angle=44", "kernel comet: angle=44: a 1x17 kernel turns in 90° steps only"),  # not "45°"
    # the @ form names the base as typed, not 'comet:sigma=2,angle=0@45'
    ("comet@45", "kernel comet@45: a 1x17 kernel turns in 90° steps only"),
    ("comet:angle=90@45", "kernel comet:angle=90@45: a 17x1 kernel turns in 90° steps only"),
    ("gaussian:sigma=1@x", "kernel gaussian:sigma=1@x: the angle must be a number of degrees"),
    ("box5@45", "kernel box5@45: a 5x5 kernel turns in 90° steps only"),
])
def test_a_refused_angle_is_named_as_the_user_wrote_it(spec: str, message: str) -> None:
    with pytest.raises(UsageError) as e:
        parse_kernel(spec)
    assert str(e.value).startswith(message)


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(("spec", "message"), [
    ("gaussian:sigma=-1", "sigma=-1 must be at least 0.001"),
    ("gaussian:sigma=0", "sigma=0 must be at least 0.001"),
    ("gaussian:sigma=nan", "must be finite"),
    ("gaussian:sigma=inf", "must be finite"),
    ("gaussian:sigma=abc", "not a number"),
    ("gaussian:sigma=1000", "over the limit of 1001"),
    ("gaussian:size=4", "must be odd"),
    ("gaussian:size=2001", "over the limit of 1001"),
    ("gaussian:sigma=1,sigma=2", "given twice"),
    ("gaussian:sigm=1", r"unknown parameter 'sigm' \(accepted: sigma, size\)"),
    ("gaussian:sigma=1,2", "needs a key"),
    ("box:size=2.5", "whole number"),
    ("motion:length=5000", "over the limit"),
    ("disk:radius=900", "over the limit"),
    ("disk:radius=3,aa=2", "must be 0 or 1"),
    ("dog:sigma1=2,sigma2=2", "must differ"),
    ("laplacian:4", "variants are 0, 1, 2, 3, 5, 7, 15, 19"),
    ("nosuch:x=1", "unknown parametric kernel 'nosuch'"),
    ("kirsch@30", "steps of 45"),
    ("kirsch@abc", "number of degrees"),
    ("@", "kernel"),
])
def test_bad_specs_are_one_line_usage_errors(spec: str, message: str) -> None:
    with pytest.raises(UsageError, match=message) as e:
        parse_kernel(spec)
    assert "\n" not in str(e.value)


def test_kernel_image_needs_a_loader_in_core() -> None:
    with pytest.raises(UsageError, match="reads no files"):
        parse_kernel("@psf.png")


def test_kernel_image_is_normalised_luminance() -> None:
    lum = np.array([[0, 0.5, 0], [0.5, 1, 0.5], [0, 0.5, 0]])
    k = kernel_from_image(lum, "psf.png")
    np.testing.assert_allclose(k.weights, lum / 3.0)
    with pytest.raises(UsageError, match="black"):
        kernel_from_image(np.zeros((3, 3)), "psf.png")


def test_core_stays_free_of_pillow() -> None:
    import ast

    for path in (ROOT / "convcli" / "core").glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module.split(".")[0] for n in ast.walk(tree)
                  if isinstance(n, ast.ImportFrom) and n.module}
        assert not names & {"PIL", "click", "scipy"}, path.name
        assert not {n for n in names if n == "convcli"} or all(
            m.startswith(("convcli.core", "convcli.errors")) for n in ast.walk(tree)
            if isinstance(n, ast.ImportFrom) and n.module and n.module.startswith("convcli")
            for m in [n.module]), path.name


# --------------------------------------------------------------------------- a real ImageMagick


def real_imagemagick() -> str | None:
    """The first ``magick`` or ``convert`` on PATH that is ImageMagick (not a stand-in), or None."""
    for name in ("magick", "convert"):
        for folder in os.environ.get("PATH", "").split(os.pathsep):
            exe = Path(folder) / name
            if not (exe.is_file() and os.access(exe, os.X_OK)):
                continue
            try:
                out = subprocess.run([str(exe), "-version"], capture_output=True, text=True, timeout=20)
            except (OSError, subprocess.TimeoutExpired):
                continue
            if out.stdout.startswith("Version: ImageMagick"):
                return str(exe)
    return None


IM = real_imagemagick() if shutil.which("convert") or shutil.which("magick") else None
needs_im = pytest.mark.skipif(IM is None, reason="no real ImageMagick installed")


def im_showkernel(spec: str) -> np.ndarray:
    """ImageMagick's own matrix for ``spec`` (from -define morphology:showkernel=1)."""
    assert IM is not None
    out = subprocess.run([IM, "xc:", "-define", "morphology:showkernel=1", "-morphology", "Convolve", spec,
                          "null:"], capture_output=True, text=True, timeout=60, check=True)
    rows = [ln.split(":", 1)[1].split() for ln in out.stderr.splitlines()
            if ln.strip()[:1].isdigit() and ":" in ln]
    return np.array([[float(v) for v in r] for r in rows])


@needs_im
@pytest.mark.parametrize(("ours", "theirs"), [
    ("laplacian:0", "Laplacian:0"), ("laplacian:1", "Laplacian:1"), ("laplacian:2", "Laplacian:2"),
    ("laplacian:3", "Laplacian:3"), ("laplacian:5", "Laplacian:5"), ("laplacian:7", "Laplacian:7"),
    ("laplacian:15", "Laplacian:15"), ("laplacian:19", "Laplacian:19"), ("kirsch", "Kirsch"),
    ("kirsch@45", "Kirsch:45"), ("kirsch@135", "Kirsch:135"), ("roberts", "Roberts"),
    ("roberts@45", "Roberts:45"), ("compass@270", "Compass:270"), ("freichen", "FreiChen"),
    ("sobel-x@180", "Sobel"), ("sobel-x@225", "Sobel:45"),
])
def test_matrices_match_imagemagicks(ours: str, theirs: str) -> None:
    np.testing.assert_allclose(parse_kernel(ours).weights, im_showkernel(theirs), atol=1e-5)


@needs_im
@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.0, 3.5])
def test_comet_matches_imagemagicks(sigma: float) -> None:
    theirs = im_showkernel(f"Comet:0x{sigma}")[0]
    w = parse_kernel(f"comet:sigma={sigma}").weights[0]
    np.testing.assert_allclose(w[len(w) // 2:], theirs, rtol=1e-5, atol=1e-9)


@needs_im
@pytest.mark.parametrize(("ours", "theirs"), [("kirsch", "Kirsch"), ("laplacian:5", "Laplacian:5"),
                                              ("comet:sigma=2", "Comet:0x2"), ("sobel-x@45", "Sobel:225")])
def test_filtering_matches_convert_morphology_correlate(tmp_path: Path, ours: str, theirs: str) -> None:
    from click.testing import CliRunner
    from PIL import Image

    from convcli.cli import cli

    src = tmp_path / "in.png"
    Image.open(ROOT / "sample_images" / "camera.png").convert("L").crop((100, 100, 228, 228)).save(src)
    mine, im_out = tmp_path / "mine.png", tmp_path / "im.png"
    r = CliRunner().invoke(cli, ["filter", str(src), "-k", ours, "-p", "border", "-o", str(mine), "-q"])
    assert r.exit_code == 0, r.stderr
    subprocess.run([IM, str(src), "-morphology", "Correlate", theirs, str(im_out)], check=True, timeout=60)
    a = np.asarray(Image.open(mine).convert("L"), dtype=float)
    b = np.asarray(Image.open(im_out).convert("L"), dtype=float)
    assert np.abs(a - b).max() <= 1  # rounding of the last level


def test_a_turned_kernel_says_it_is_turned() -> None:
    """0.3 described sobel-x@90, a y-derivative, as "Sobel x-derivative: vertical edges"."""
    k = parse_kernel("sobel-x@90")
    assert k.description.endswith("turned 90° clockwise")
    np.testing.assert_array_equal(k.weights, np.rot90(np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]), -1))
    assert parse_kernel("sobel-x@360").description == "Sobel x-derivative: vertical edges"


def test_a_quarter_turn_keeps_the_exact_entry_texts() -> None:
    """box5@90 printed 0.04 where box5 prints 1/25; a 45° turn moves values, so no texts are kept."""
    from fractions import Fraction

    for spec, quarters in (("box5@90", -1), ("gaussian3@270", -3), ("box3@180", -2)):
        k = parse_kernel(spec)
        base = parse_kernel(spec.split("@")[0])
        assert k.display == tuple(tuple(r) for r in np.rot90(np.array(base.display, dtype=object), quarters))
        as_values = np.array([[float(Fraction(t)) for t in row] for row in k.display])
        np.testing.assert_array_equal(as_values, k.weights)  # each text is its entry's value
    assert parse_kernel("gaussian3@45").display is None
