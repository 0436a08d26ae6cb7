"""The command line for parametric kernels, compass edges (--direction-out) and sharpen (unsharp mask).

References are computed here with float64 NumPy and scipy.ndimage; compass rotations are re-derived
by hand (the outer ring of a 3x3 kernel shifted clockwise); ImageMagick is run where installed.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import scipy.ndimage as ndi
from click.testing import CliRunner, Result
from PIL import Image
from test_parametric import IM, needs_im

from convcli.cli import cli

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_images"

KIRSCH = np.array([[5, -3, -3], [5, 0, -3], [5, -3, -3]], dtype=float)
ROBINSON = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=float)
COMPASS = np.array([[1, 1, -1], [1, -2, -1], [1, 1, -1]], dtype=float)
#: clockwise ring positions of a 3x3 kernel
RING = [(0, 0), (0, 1), (0, 2), (1, 2), (2, 2), (2, 1), (2, 0), (1, 0)]


def turn(k: np.ndarray, steps: int) -> np.ndarray:
    """Each ring value moves ``steps`` cells clockwise (ImageMagick's 45° rotation)."""
    out = k.copy()
    vals = [k[p] for p in RING]
    for i, p in enumerate(RING):
        out[p] = vals[(i - steps) % 8]
    return out


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def gray_crop(tmp_path: Path, size: int = 64) -> tuple[Path, np.ndarray]:
    src = tmp_path / "g.png"
    Image.open(SAMPLES / "camera.png").convert("L").crop((150, 80, 150 + size, 80 + size)).save(src)
    return src, np.asarray(Image.open(src), dtype=np.float64)


# --------------------------------------------------------------------------- kernels command


def test_kernels_lists_parametric_families_with_defaults() -> None:
    r = run("kernels")
    assert r.exit_code == 0
    assert r.stderr == ""
    for line in ("gaussian:sigma=1,size=auto", "gabor:sigma=4,theta=0,lambda=10,gamma=0.5,psi=0,size=auto",
                 "motion:length=9,angle=0", "disk:radius=3,aa=1", "laplacian:n=0"):
        assert line in r.stdout
    assert "kirsch  3x3" in r.stdout


def test_kernels_shows_one_spec() -> None:
    r = run("kernels", "kirsch@45")
    assert r.exit_code == 0
    assert r.stderr == ""
    assert r.stdout.splitlines()[1:] == ["    [ 5  5 -3]", "    [ 5  0 -3]", "    [-3 -3 -3]"]
    r = run("kernels", "gaussian:sigma=2", "--json")
    assert r.exit_code == 0
    rec = json.loads(r.stdout)
    assert rec["shape"] == [13, 13]
    assert rec["sum"] == pytest.approx(1.0)


def test_kernels_bad_spec_is_one_line_exit_2() -> None:
    r = run("kernels", "gaussian:sigma=2,sigma=3")
    assert r.exit_code == 2
    assert r.stdout == ""
    assert r.stderr.count("\n") == 1
    assert "given twice" in r.stderr


# --------------------------------------------------------------------------- filter with parametric kernels


def test_filter_with_a_parametric_kernel_names_the_output(tmp_path: Path) -> None:
    src, img = gray_crop(tmp_path)
    r = run("filter", str(src), "-k", "gaussian:sigma=1.5", "--out-dir", str(tmp_path / "o"), "-q")
    assert r.exit_code == 0, r.stderr
    out = tmp_path / "o" / "g.gaussian.png"
    got = np.asarray(Image.open(out), dtype=float)
    ref = ndi.gaussian_filter(img, 1.5, truncate=5 / 1.5, mode="mirror")  # radius ceil(4.5) = 5
    assert np.abs(got - ref).max() <= 0.5 + 1e-6


@pytest.mark.parametrize("name", ["psf.png", "psf.tga", "psf.PGM", "psf.pcx", "psf.jfif", "psf.tiff"])
def test_kernel_image_is_a_normalised_psf(tmp_path: Path, name: str) -> None:
    """Any image format convcli reads is a kernel image (psf.tga was read as text: "not UTF-8")."""
    src, img = gray_crop(tmp_path)
    psf = np.zeros((5, 5), dtype=np.uint8)
    psf[2, :] = 255  # a horizontal line: 1x5 motion blur
    psf[1, 2] = 51  # a dimmer tap above the centre (0.2 of white)
    fmt = {".jfif": "PNG"}.get(Path(name).suffix)  # lossless bytes under a JPEG name: sniffed, not named
    Image.fromarray(psf).save(tmp_path / name, format=fmt)
    r = run("filter", str(src), "-k", f"@{tmp_path / name}", "-o", str(tmp_path / "o.npy"), "-q")
    assert r.exit_code == 0, r.stderr
    w = psf / 255.0
    ref = ndi.correlate(img, w / w.sum(), mode="mirror")
    np.testing.assert_allclose(np.load(tmp_path / "o.npy"), ref, atol=1e-3)


def test_black_kernel_image_is_refused(tmp_path: Path) -> None:
    src, _ = gray_crop(tmp_path)
    Image.fromarray(np.zeros((3, 3), dtype=np.uint8)).save(tmp_path / "black.png")
    r = run("filter", str(src), "-k", f"@{tmp_path / 'black.png'}", "-o", str(tmp_path / "o.png"))
    assert r.exit_code == 2
    assert "black" in r.stderr
    assert not (tmp_path / "o.png").exists()


def test_downsample_takes_a_parametric_kernel(tmp_path: Path) -> None:
    src, img = gray_crop(tmp_path, 16)
    r = run("downsample", str(src), "-k", "binomial:n=3", "-o", str(tmp_path / "o.npy"), "-q")
    assert r.exit_code == 0, r.stderr
    ref = ndi.correlate(img, np.outer([1, 2, 1], [1, 2, 1]) / 16, mode="mirror")[::2, ::2]
    np.testing.assert_allclose(np.load(tmp_path / "o.npy"), ref, atol=1e-3)


def test_explain_takes_a_rotated_kernel() -> None:
    r = run("explain", "--patch", "1 2 3; 4 5 6; 7 8 9", "-k", "kirsch@45")
    assert r.exit_code == 0, r.stderr
    # kirsch@45 = [5 5 -3; 5 0 -3; -3 -3 -3] on 1..9: 5+10-9+20+0-18-21-24-27 = -64
    assert r.stdout.splitlines()[-1] == "Output = \u221264"


def test_chain_takes_parametric_kernels_and_sharpen(tmp_path: Path) -> None:
    src, _ = gray_crop(tmp_path)
    r = run("chain", "-i", str(src), "-o", str(tmp_path / "c.png"), "--json",
            "filter", "-k", "motion:length=7,angle=45", "sharpen", "--sigma", "1")
    assert r.exit_code == 0, r.stderr
    rec = json.loads(r.stdout)
    assert [s["op"] for s in rec["stages"]] == ["filter", "sharpen"]
    assert rec["stages"][1]["kernel"].startswith("unsharp 0x1+1+0.05")


# --------------------------------------------------------------------------- compass edges


@pytest.mark.parametrize(("operator", "base"), [("kirsch", KIRSCH), ("robinson", ROBINSON),
                                                ("sobel8", ROBINSON), ("compass", COMPASS)])
def test_compass_is_the_max_over_rotations(tmp_path: Path, operator: str, base: np.ndarray) -> None:
    src, img = gray_crop(tmp_path)
    out, dirs = tmp_path / "e.npy", tmp_path / "d.npy"
    r = run("edges", str(src), "--operator", operator, "-o", str(out), "--direction-out", str(dirs), "-q")
    assert r.exit_code == 0, r.stderr
    assert r.stdout == ""
    responses = np.stack([ndi.correlate(img, turn(base, i), mode="mirror") for i in range(8)])
    ref = responses.max(axis=0)
    np.testing.assert_allclose(np.load(out), ref, atol=2e-3)
    got_dir = np.load(dirs)
    assert got_dir.shape == img.shape
    assert got_dir.dtype == np.float32
    ordered = np.sort(responses, axis=0)
    clear = ordered[-1] - ordered[-2] > 1e-2  # no near-tie between the two best rotations
    assert clear.mean() > 0.5
    np.testing.assert_array_equal(got_dir[clear], 45.0 * responses.argmax(axis=0)[clear])


def test_direction_out_per_channel_with_color(tmp_path: Path) -> None:
    src = tmp_path / "c.png"
    Image.open(SAMPLES / "chelsea.png").convert("RGB").crop((100, 100, 140, 132)).save(src)
    r = run("edges", str(src), "--operator", "kirsch", "--color", "-o", str(tmp_path / "e.png"),
            "--direction-out", str(tmp_path / "d.npy"), "-q")
    assert r.exit_code == 0, r.stderr
    d = np.load(tmp_path / "d.npy")
    assert d.shape == (32, 40, 3)
    assert set(np.unique(d)) <= {45.0 * i for i in range(8)}


@pytest.mark.parametrize(("extra", "message"), [
    (["--operator", "sobel", "--direction-out", "d.npy"], "needs a compass operator"),
    (["--operator", "kirsch", "--direction-out", "d.png"], "written as .npy"),
    (["--operator", "kirsch", "--direction", "vertical"], "maximum over 8 directions"),
])
def test_compass_usage_errors(tmp_path: Path, extra: list[str], message: str) -> None:
    src, _ = gray_crop(tmp_path, 8)
    extra = [str(tmp_path / e) if e.startswith("d.") else e for e in extra]
    r = run("edges", str(src), *extra, "-o", str(tmp_path / "e.png"))
    assert r.exit_code == 2
    assert message in r.stderr
    assert r.stderr.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.png"]


def test_direction_out_is_a_planned_file(tmp_path: Path) -> None:
    src, _ = gray_crop(tmp_path, 8)
    before = src.read_bytes()
    # Colliding with the main output: refused before any pixel, nothing written.
    r = run("edges", str(src), "--operator", "kirsch", "-o", str(tmp_path / "x.npy"),
            "--direction-out", str(tmp_path / "x.npy"))
    assert r.exit_code == 2
    assert "direction map" in r.stderr and "collides" in r.stderr
    assert not (tmp_path / "x.npy").exists()
    # Over the input itself, through a symlink named .npy.
    (tmp_path / "link.npy").symlink_to(src)
    r = run("edges", str(src), "--operator", "kirsch", "-o", str(tmp_path / "e.png"),
            "--direction-out", str(tmp_path / "link.npy"))
    assert r.exit_code == 2
    assert "would overwrite the input" in r.stderr
    assert src.read_bytes() == before
    assert not (tmp_path / "e.png").exists()


def test_direction_out_batch_with_stem_and_dry_run(tmp_path: Path) -> None:
    for name in ("a", "b"):
        Image.open(SAMPLES / "camera.png").convert("L").crop((0, 0, 16, 16)).save(tmp_path / f"{name}.png")
    out = tmp_path / "out"
    args = ["edges", str(tmp_path / "a.png"), str(tmp_path / "b.png"), "--operator", "robinson",
            "--out-dir", str(out), "--direction-out", str(out / "{stem}.dir.npy"), "-j", "1", "--json"]
    r = run(*args, "--dry-run")
    assert r.exit_code == 0, r.stderr
    assert not out.exists() or not any(out.iterdir())
    r = run(*args)
    assert r.exit_code == 0, r.stderr
    records = [json.loads(line) for line in r.stdout.splitlines()]
    assert sorted(rec["direction"] for rec in records) == [str(out / "a.dir.npy"), str(out / "b.dir.npy")]
    assert np.load(out / "a.dir.npy").shape == (16, 16)
    # Without {stem} the two inputs would write one file: refused up front.
    bad = [a if "{stem}" not in a else str(out / "same.npy") for a in args]
    r = run(*bad)
    assert r.exit_code == 2
    assert "collides" in r.stderr


@needs_im
def test_kirsch_matches_imagemagick_lighten(tmp_path: Path) -> None:
    src, _ = gray_crop(tmp_path, 96)
    mine, theirs = tmp_path / "mine.png", tmp_path / "im.png"
    r = run("edges", str(src), "--operator", "kirsch", "-p", "border", "--range", "clip", "-o", str(mine),
            "-q")
    assert r.exit_code == 0, r.stderr
    assert IM is not None
    subprocess.run([IM, str(src), "-define", "morphology:compose=Lighten", "-morphology", "Convolve",
                    "Kirsch:@", str(theirs)], check=True, timeout=60)
    a = np.asarray(Image.open(mine).convert("L"), dtype=float)
    b = np.asarray(Image.open(theirs).convert("L"), dtype=float)
    assert np.abs(a - b).max() <= 1


# --------------------------------------------------------------------------- sharpen


def unsharp_reference(x: np.ndarray, radius: int, sigma: float, amount: float, threshold: float,
                      maxval: float = 255.0) -> tuple[np.ndarray, np.ndarray]:
    """ImageMagick's UnsharpMaskImage in float64: scipy blur (radius R, edge pixels repeated), then
    in + amount*(in - blur) unless 2*|in - blur| < threshold*maxval. Also returns the margin."""
    r = radius if radius > 0 else int(np.ceil(3 * sigma))
    sig = (sigma, sigma, 0) if x.ndim == 3 else sigma
    blur = ndi.gaussian_filter(x, sig, truncate=r / sigma, mode="nearest")
    diff = x - blur
    margin = np.abs(2 * np.abs(diff) - threshold * maxval)
    return np.where(2 * np.abs(diff) < threshold * maxval, x, x + amount * diff), margin


@pytest.mark.parametrize(("radius", "sigma", "amount", "threshold"), [
    (0, 1.0, 1.0, 0.05), (3, 1.5, 2.0, 0.0), (2, 0.8, 0.5, 0.02), (5, 2.0, 1.5, 0.1)])
def test_sharpen_is_imagemagicks_unsharp_formula(tmp_path: Path, radius: int, sigma: float, amount: float,
                                                 threshold: float) -> None:
    src = SAMPLES / "cat224.png"
    x = np.asarray(Image.open(src).convert("RGB"), dtype=np.float64)
    out = tmp_path / "s.npy"
    r = run("sharpen", str(src), "--radius", str(radius), "--sigma", str(sigma), "--amount", str(amount),
            "--threshold", str(threshold), "-o", str(out), "-q")
    assert r.exit_code == 0, r.stderr
    assert r.stdout == ""
    ref, margin = unsharp_reference(x, radius, sigma, amount, threshold)
    got = np.load(out)
    assert got.shape == x.shape
    clear = margin > 1e-2  # float32 may decide a sample sitting exactly on the threshold otherwise
    assert clear.mean() > 0.99
    np.testing.assert_allclose(got[clear], ref[clear], atol=2e-3)


def test_sharpen_threshold_keeps_flat_areas(tmp_path: Path) -> None:
    # A step of 10 levels: 2*|d| stays under 0.1*255 = 25.5 everywhere, so nothing changes ...
    img = np.full((9, 9), 100, dtype=np.uint8)
    img[:, 5:] = 110
    Image.fromarray(img).save(tmp_path / "step.png")
    r = run("sharpen", str(tmp_path / "step.png"), "--threshold", "0.1", "-o", str(tmp_path / "a.npy"), "-q")
    assert r.exit_code == 0, r.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), img)
    # ... and with threshold 0 the edge overshoots on both sides.
    r = run("sharpen", str(tmp_path / "step.png"), "--threshold", "0", "-o", str(tmp_path / "b.npy"), "-q")
    assert r.exit_code == 0, r.stderr
    b = np.load(tmp_path / "b.npy")
    assert b[4, 4] < 100 < 110 < b[4, 5]
    np.testing.assert_array_equal(b[:, 0], 100)  # far from the step


@pytest.mark.parametrize(("args", "message"), [
    (["--sigma", "0"], "--sigma must be at least 0.001"),
    (["--sigma", "nan"], "--sigma must be a finite number, got nan"),  # "at least 0.001, got nan" read wrong
    (["--sigma", "inf"], "--sigma must be a finite number, got inf"),
    (["--threshold", "-0.1"], "--threshold"),
    (["--threshold", "nan"], "'--threshold': must be a finite number"),  # it blamed --amount
    (["-p", "valid"], "padding"),
    (["--sigma", "400"], "over the limit of 1001"),
])
def test_sharpen_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    src, _ = gray_crop(tmp_path, 8)
    r = run("sharpen", str(src), *args, "-o", str(tmp_path / "o.png"))
    assert r.exit_code == 2
    assert message in r.stderr
    assert not (tmp_path / "o.png").exists()


def test_sharpen_help_states_the_threshold_scale() -> None:
    r = run("sharpen", "--help")
    assert r.exit_code == 0
    assert "QuantumRange" in r.stdout
    assert "Pillow" in r.stdout


@needs_im
@pytest.mark.parametrize(("radius", "sigma", "amount", "threshold"), [(2, 1.0, 0.8, 0.0), (3, 1.5, 2.0, 0.0),
                                                                      (3, 1.5, 2.0, 0.02)])
def test_sharpen_matches_imagemagick(tmp_path: Path, radius: int, sigma: float, amount: float,
                                     threshold: float) -> None:
    """ImageMagick's blur samples each tap 3 times (KernelRank 3) and keeps the blurred image in 16-bit
    integers, so pixels can differ by a level, and one sitting on the threshold may flip."""
    assert IM is not None
    src = SAMPLES / "chelsea.png"
    mine, theirs = tmp_path / "mine.png", tmp_path / "im.png"
    r = run("sharpen", str(src), "--radius", str(radius), "--sigma", str(sigma), "--amount", str(amount),
            "--threshold", str(threshold), "-o", str(mine), "-q")
    assert r.exit_code == 0, r.stderr
    subprocess.run([IM, str(src), "-unsharp", f"{radius}x{sigma}+{amount}+{threshold}", str(theirs)],
                   check=True, timeout=60)
    a = np.asarray(Image.open(mine).convert("RGB"), dtype=float)
    b = np.asarray(Image.open(theirs).convert("RGB"), dtype=float)
    d = np.abs(a - b)
    if threshold == 0:
        assert d.max() <= 2
        assert d.mean() < 0.6
    else:
        assert (d > 2).mean() < 0.01


@pytest.mark.parametrize("operator", ["kirsch", "robinson", "sobel8"])
def test_direction_ties_of_float_luminance_go_to_the_lowest_angle(tmp_path: Path, operator: str) -> None:
    """Luminance of a colour photo is not whole numbers, and two rotations that tie exactly (reflection
    makes rows -1 and +1 of the first row equal: 90 and 270 degrees) came out of float32 sums a rounding
    apart, so the higher angle won on 365 pixels of chelsea.png. The reference: float64 responses,
    ties within 1e-9, the lowest angle."""
    rng = np.random.default_rng(4)
    rgb = rng.integers(0, 256, (23, 31, 3), dtype=np.uint8)
    src = tmp_path / "rgb.png"
    Image.fromarray(rgb).save(src)
    out, direction = tmp_path / "m.npy", tmp_path / "d.npy"
    r = run("edges", str(src), "--operator", operator, "-o", str(out), "--direction-out", str(direction),
            "-q")
    assert r.exit_code == 0, r.stderr
    x = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    base = {"kirsch": "kirsch", "robinson": "robinson", "sobel8": "sobel-x"}[operator]
    from convcli.core.specs import parse_kernel

    resp = np.stack([ndi.correlate(x, parse_kernel(f"{base}@{45 * i}").weights, mode="mirror")
                     for i in range(8)])
    best = resp.max(0)
    want = 45.0 * np.argmax(resp >= best - 1e-9 * np.maximum(1, np.abs(best)), axis=0)
    ties = (np.sort(resp, axis=0)[-2] >= best - 1e-9 * np.maximum(1, np.abs(best)))
    assert ties[0].sum() > 5  # the premise: the first row has exact ties
    np.testing.assert_array_equal(np.load(direction), want)
    np.testing.assert_allclose(np.load(out), best, rtol=1e-5, atol=1e-3)


def test_direction_ties_are_judged_per_pixel_not_by_the_brightest_value(tmp_path: Path) -> None:
    """The tie tolerance scaled with the image's largest value: one 1e6 sample in a corner of a float
    .npy made differences of ~1 everywhere else ties, all won by the lowest angle."""
    rng = np.random.default_rng(9)
    x = rng.uniform(0, 4, (30, 30)).astype(np.float32)
    x[0, 0] = 1e6
    src = tmp_path / "x.npy"
    np.save(src, x)
    direction = tmp_path / "d.npy"
    r = run("edges", str(src), "--operator", "kirsch", "-o", str(tmp_path / "m.npy"),
            "--direction-out", str(direction), "-q")
    assert r.exit_code == 0, r.stderr
    from convcli.core.specs import parse_kernel

    resp = np.stack([ndi.correlate(x.astype(np.float64), parse_kernel(f"kirsch@{45 * i}").weights,
                                   mode="mirror") for i in range(8)])
    best = resp.max(0)
    want = 45.0 * np.argmax(resp >= best - 1e-9 * np.maximum(1, np.abs(best)), axis=0)
    far = np.zeros(x.shape, bool)
    far[5:, 5:] = True  # away from the bright sample's windows
    np.testing.assert_array_equal(np.load(direction)[far], want[far])


def test_a_kernel_image_over_the_size_limit_says_the_kernel_limit(tmp_path: Path) -> None:
    """It said "exceeds --max-pixels 1002001", a flag the user never gave (and with --max-pixels
    5000000 given, still that number)."""
    src, _ = gray_crop(tmp_path)
    Image.new("L", (1002, 1002), 100).save(tmp_path / "big.png")
    r = run("filter", str(src), "-k", f"@{tmp_path / 'big.png'}", "-o", str(tmp_path / "o.png"),
            "--max-pixels", "5000000")
    assert r.exit_code == 2
    assert "1002x1002 (WxH); a kernel is at most 1001 a side" in r.stderr and "--max-pixels" not in r.stderr


def test_sharpen_radius_is_refused_where_its_kernel_would_be_over_the_limit(tmp_path: Path) -> None:
    """--radius took up to 512, then 501..512 failed on the 1001-tap kernel limit with 'give a smaller
    --sigma' (the sigma was not the cause). The option's range is the limit: 2 * 500 + 1 = 1001."""
    src = tmp_path / "a.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(src)
    r = run("sharpen", str(src), "--radius", "501", "-o", str(tmp_path / "o.png"))
    assert r.exit_code == 2 and "'--radius': 501 is not in the range 0<=x<=500" in r.stderr
    assert run("sharpen", str(src), "--radius", "500", "-o", str(tmp_path / "o.png")).exit_code == 0
