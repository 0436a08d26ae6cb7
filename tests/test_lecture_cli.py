"""The lecture issue through the CLI: chain, conv layers, feature maps, montages, explain, demo.

References are independent: scipy.ndimage and the float64 loops of tests/reference.py,
NumPy's own generator for the seeded weights, Pillow for the luminance weights.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.ndimage as ndi
from click.testing import CliRunner, Result
from PIL import Image
from reference import ref_conv2d_loop, ref_correlate_scipy

from convcli.cli import cli

ROOT = Path(__file__).resolve().parents[1]
CAT = ROOT / "sample_images" / "cat224.png"


def run(*args: Any) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


def ok(*args: Any) -> Result:
    res = run(*args)
    assert res.exit_code == 0, res.stderr
    return res


@pytest.fixture
def small(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """A 40x52 crop of the cat, as a PNG and as float64 values."""
    arr = np.asarray(Image.open(CAT).convert("RGB"))[60:100, 80:132]
    path = tmp_path / "small.png"
    Image.fromarray(arr).save(path)
    return path, arr.astype(np.float64)


def seeded_uniform_weights(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    """What --seed promises: NumPy's default generator, uniform in [-1, 1)."""
    return np.random.default_rng(seed).uniform(-1.0, 1.0, size=shape).astype(np.float32)


def test_fact5_conv3_then_conv1x1_shapes(tmp_path: Path) -> None:
    res = ok("chain", "-i", CAT, "-o", tmp_path / "maps.npy", "--json",
             "conv", "--out-channels", "3", "--size", "3", "conv", "--out-channels", "2", "--size", "1")
    rec = json.loads(res.stdout)
    shapes = [rec["input_shape"]] + [s["output_shape"] for s in rec["stages"]]
    assert shapes == [[1, 3, 224, 224], [1, 3, 224, 224], [1, 2, 224, 224]]
    assert np.load(tmp_path / "maps.npy").shape == (224, 224, 2)


def test_chain_equals_its_stages_on_floats(small: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    path, x = small
    ok("chain", "-i", path, "-o", tmp_path / "c.npy", "-q", "blur", "--size", "5", "edges", "--direction",
       "vertical")
    got = np.load(tmp_path / "c.npy")
    g1 = np.array([1, 4, 6, 4, 1], float) / 16
    blurred = np.stack([ndi.correlate(x[..., c], np.outer(g1, g1), mode="mirror") for c in range(3)], -1)
    luma = blurred @ np.array([0.299, 0.587, 0.114])
    kv = np.array([[-1, 0, 1]] * 3, float)
    ref = ndi.correlate(luma, kv, mode="mirror")
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-3)


def test_conv_with_weight_and_bias_files_equals_a_direct_loop(small: tuple[Path, np.ndarray],
                                                               tmp_path: Path) -> None:
    path, x = small
    rng = np.random.default_rng(7)
    w = rng.normal(size=(4, 3, 3, 2)).astype(np.float32)
    b = rng.normal(size=(4,)).astype(np.float32)
    np.save(tmp_path / "w.npy", w)
    np.save(tmp_path / "b.npy", b)
    ok("chain", "-i", path, "-o", tmp_path / "o.npy", "-q", "conv", "--weights", tmp_path / "w.npy",
       "--bias", tmp_path / "b.npy", "-s", "2", "-d", "2", "-p", "border", "--pad", "1,2,0,3")
    ref = ref_conv2d_loop(x, w.astype(np.float64), b.astype(np.float64), stride=2, dilation=2,
                          pad4=(1, 2, 0, 3), mode="border")
    got = np.load(tmp_path / "o.npy")
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-2)


def test_seeded_weights_are_numpy_uniform_and_reproducible(small: tuple[Path, np.ndarray],
                                                           tmp_path: Path) -> None:
    path, x = small
    a = ok("chain", "-i", path, "-o", tmp_path / "a.npy", "-q", "conv", "--out-channels", "2", "--seed", "5",
           "--show-weights")
    ok("chain", "-i", path, "-o", tmp_path / "b.npy", "-q", "conv", "--out-channels", "2", "--seed", "5")
    ok("chain", "-i", path, "-o", tmp_path / "c.npy", "-q", "conv", "--out-channels", "2", "--seed", "6")
    wa, wc = np.load(tmp_path / "a.npy"), np.load(tmp_path / "c.npy")
    assert np.array_equal(wa, np.load(tmp_path / "b.npy"))
    assert not np.allclose(wa, wc)
    w = seeded_uniform_weights(5, (2, 3, 3, 3))
    ref = ref_conv2d_loop(x, w.astype(np.float64), None, pad4=(1, 1, 1, 1), mode="zeros")
    np.testing.assert_allclose(wa, ref, rtol=1e-4, atol=1e-2)
    printed = [float(v) for line in a.stderr.splitlines() if line.strip().startswith("[")
               for v in line.strip(" []").split()]
    np.testing.assert_allclose(printed, w.ravel(), atol=0.006)


def test_conv_stages_without_seed_draw_seed_n_minus_1(small: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    """Two conv stages without --seed both drew seed 0: identical layers, where PyTorch initialises
    each independently. The n-th conv stage now draws with seed n-1; the report and --show-weights
    say the seed used, and the result is the two layers of those seeds computed from the formula."""
    path, x = small
    res = ok("chain", "-i", path, "-o", tmp_path / "o.npy", "--json", "conv", "--out-channels", "3",
             "--show-weights", "relu", "conv", "--out-channels", "2", "--size", "1", "--show-weights")
    w0, w1 = seeded_uniform_weights(0, (3, 3, 3, 3)), seeded_uniform_weights(1, (2, 3, 1, 1))
    rec = json.loads(res.stdout)
    assert [s.get("kernel") for s in rec["stages"]] == ["seed 0", None, "seed 1"]
    headers = [ln for ln in res.stderr.splitlines() if ln.startswith("stage ")]
    assert headers == ["stage 1 conv weights (seed 0), shape [3, 3, 3, 3]:",
                       "stage 3 conv weights (seed 1), shape [2, 3, 1, 1]:"]
    printed = [float(v) for line in res.stderr.splitlines() if line.strip().startswith("[")
               for v in line.strip(" []").split()]
    np.testing.assert_allclose(printed, np.concatenate([w0.ravel(), w1.ravel()]), atol=0.006)
    hidden = np.maximum(ref_conv2d_loop(x, w0.astype(np.float64), None, pad4=(1, 1, 1, 1), mode="zeros"), 0)
    ref = ref_conv2d_loop(hidden, w1.astype(np.float64), None, mode="zeros")
    np.testing.assert_allclose(np.load(tmp_path / "o.npy"), ref, rtol=1e-4, atol=1e-2)


def test_an_explicit_seed_wins_over_the_position(small: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    path, x = small
    res = ok("chain", "-i", path, "-o", tmp_path / "o.npy", "--json", "conv", "--out-channels", "2",
             "--size", "1", "--seed", "7", "conv", "--out-channels", "2", "--size", "1", "conv",
             "--out-channels", "1", "--size", "1", "--seed", "0")
    assert [s["kernel"] for s in json.loads(res.stdout)["stages"]] == ["seed 7", "seed 1", "seed 0"]
    ref = x
    for seed, shape in ((7, (2, 3, 1, 1)), (1, (2, 2, 1, 1)), (0, (1, 2, 1, 1))):
        ref = ref_conv2d_loop(ref, seeded_uniform_weights(seed, shape).astype(np.float64), None, mode="zeros")
    np.testing.assert_allclose(np.load(tmp_path / "o.npy").reshape(ref.shape), ref, rtol=1e-4, atol=1e-2)


def test_relu_zeroes_negatives(small: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    path, x = small
    ok("chain", "-i", path, "-o", tmp_path / "r.npy", "-q", "filter", "-k", "edge-vertical", "relu")
    ref = np.stack([ndi.correlate(x[..., c], np.array([[-1, 0, 1]] * 3, float), mode="mirror")
                    for c in range(3)], -1)
    np.testing.assert_allclose(np.load(tmp_path / "r.npy"), np.maximum(ref, 0), atol=1e-3)


def test_feature_maps_become_one_grey_image_per_channel_and_a_grid(small: tuple[Path, np.ndarray],
                                                                   tmp_path: Path) -> None:
    path, _ = small
    res = ok("chain", "-i", path, "-o", tmp_path / "maps.png", "--json", "conv", "--out-channels", "5",
             "-s", "2")
    rec = json.loads(res.stdout)
    chans = [tmp_path / f"maps.c{i}.png" for i in range(5)]
    assert rec["outputs"] == [str(c) for c in chans]
    ok("chain", "-i", path, "-o", tmp_path / "maps.npy", "-q", "conv", "--out-channels", "5", "-s", "2")
    floats = np.load(tmp_path / "maps.npy")
    for i, c in enumerate(chans):
        img = np.asarray(Image.open(c))
        assert img.shape == (20, 26) and img.min() == 0 and img.max() == 255
        f = floats[..., i]
        np.testing.assert_allclose(img, np.rint((f - f.min()) / (f.max() - f.min()) * 255), atol=1)
    grid = Image.open(tmp_path / "maps.png")
    assert grid.mode == "RGB" and grid.width > 2 * 26


def test_montage_has_a_panel_per_stage(small: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    from convcli.teach.render import layout

    path, _ = small
    ok("filter", path, "-k", "sharpen", "-o", tmp_path / "s.png", "-q", "--montage", tmp_path / "m1.png")
    ok("chain", "-i", path, "-o", tmp_path / "c.png", "-q", "--montage", tmp_path / "m3.png", "blur",
       "downsample", "filter", "-k", "emboss")
    m1, m3 = Image.open(tmp_path / "m1.png"), Image.open(tmp_path / "m3.png")
    assert m1.size == (layout(2, title=True).width, layout(2, title=True).height)
    assert m3.size == (layout(4, title=True).width, layout(4, title=True).height)


def test_explain_at_a_border_pixel_matches_scipy(small: tuple[Path, np.ndarray]) -> None:
    path, x = small
    for mode in ("zeros", "border", "reflection", "symmetric", "circular"):
        res = ok("explain", path, "--at", "0,0", "-k", "sharpen", "-p", mode, "--channel", "1")
        value = float(res.stdout.strip().splitlines()[-1].split("=")[-1].replace("\u2212", "-"))
        ref = ref_correlate_scipy(x[..., 1], np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], float),
                                  pad4=(1, 1, 1, 1), mode=mode)
        assert value == pytest.approx(ref[0, 0]), mode


def test_explain_patch_is_fifty_and_unroll_checks_itself() -> None:
    res = ok("explain", "--kernel", "sharpen", "--patch", "10 20 30; 40 50 60; 70 80 90")
    assert res.stdout.strip().splitlines()[-1] == "Output = 50"
    un = ok("explain", "--patch", "1 2 3; 4 5 6; 7 8 9", "-k", "1 0; 0 -1", "-p", "valid", "--unroll")
    assert "max difference 0" in un.stdout
    assert run("explain", "--patch", "1 2; 3 4").exit_code == 2  # 2x2 patch, 3x3 kernel


def test_demo_writes_every_figure(tmp_path: Path) -> None:
    res = ok("demo", "--out-dir", tmp_path / "tour", "--json")
    figs = [json.loads(line) for line in res.stdout.splitlines()]
    names = {f["figure"] for f in figs}
    assert names == {"00-overview", "01-sharpen", "02-gaussian-blur", "03-edges", "04-box-3x3-vs-5x5",
                     "05-valid-vs-same", "06-padding-modes", "07-random-conv-relu", "08-stride-2",
                     "09-stacked-conv-relu", "10-sliding-window", "11-learned-kernel", "12-loss-curve"}
    for f in figs:
        assert Image.open(f["output"]).size[0] > 200
    by_name = {f["figure"]: f for f in figs}
    valid_same = [p["output_shape"] for p in by_name["05-valid-vs-same"]["pipelines"]]
    assert valid_same == [[1, 3, 222, 222], [1, 3, 224, 224]]
    stacked = by_name["09-stacked-conv-relu"]["pipelines"][0]["stages"]
    assert [s["output_shape"][2] for s in stacked] == [112, 112, 56, 56]
    conv = by_name["07-random-conv-relu"]["pipelines"][0]["stages"]
    assert [s["output_shape"] for s in conv] == [[1, 3, 224, 224], [1, 3, 224, 224], [1, 2, 224, 224]]
    assert by_name["10-sliding-window"]["output"].endswith(".gif")
    with Image.open(by_name["10-sliding-window"]["output"]) as gif:
        assert gif.n_frames > 10
    # the README's recipe for figure 7 runs the demo's very layers (same seeds)
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    recipe = next(line for line in readme.splitlines() if "--montage learned/fig7.png" in line)
    root = Path(__file__).resolve().parent.parent
    args = [str(root / a) if a.startswith("sample_images/") else
            str(tmp_path / a) if a.startswith("learned/") else a for a in recipe.split()[1:]]
    dry = ok(*args[:1], *args[1:3], "--dry-run", "--json", *args[3:])
    assert [s["kernel"] for s in json.loads(dry.stdout)["stages"]] == [s["kernel"] for s in conv]


def test_demo_titles_follow_the_photo(tmp_path: Path) -> None:
    photo = Path(__file__).resolve().parent.parent / "sample_images" / "rocket.jpg"  # 640x427
    res = ok("demo", "--image", photo, "--out-dir", tmp_path / "tour", "--json")
    titles = {f["figure"]: f["title"] for f in map(json.loads, res.stdout.splitlines())}
    assert titles["05-valid-vs-same"].endswith("(425x638), same keeps 427x640")
    assert titles["08-stride-2"].endswith("427x640 -> 214x320")
    assert titles["09-stacked-conv-relu"].endswith("427x640 -> 214x320 -> 107x160")
    assert "224" not in titles["05-valid-vs-same"] + titles["08-stride-2"]
    assert titles["11-learned-kernel"].endswith("gradient descent finds the sharpen kernel")


def test_demo_titles_keep_hxw_to_the_end_when_the_last_size_is_square(tmp_path: Path) -> None:
    """5x7 -> 3x4 -> 2x2 was titled '5x7 -> 3x4 -> 2': a square size was written as one number
    among sizes written HxW. The sizes by PyTorch's formula, (n + 2 - 2 - 1) // 2 + 1."""
    tiny = tmp_path / "t57.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (5, 7, 3)).astype(np.uint8)).save(tiny)
    res = ok("demo", "--image", tiny, "--out-dir", tmp_path / "tour", "--json")
    titles = {f["figure"]: f["title"] for f in map(json.loads, res.stdout.splitlines())}
    down = [(5, 7)]
    for _ in range(2):
        down.append(tuple((n + 2 - 2 - 1) // 2 + 1 for n in down[-1]))
    assert down == [(5, 7), (3, 4), (2, 2)]
    assert titles["09-stacked-conv-relu"].endswith(" -> ".join(f"{h}x{w}" for h, w in down))
    assert titles["08-stride-2"].endswith("5x7 -> 3x4")
    square = tmp_path / "sq.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(square)
    res = ok("demo", "--image", square, "--out-dir", tmp_path / "sq", "--json")
    titles = {f["figure"]: f["title"] for f in map(json.loads, res.stdout.splitlines())}
    assert titles["09-stacked-conv-relu"].endswith("8 -> 4 -> 2")
    # an image one value everywhere has nothing to learn from: the figure says so (learn refuses it)
    assert "nothing to learn, the input is 0 everywhere" in titles["11-learned-kernel"]
    assert "12-loss-curve" not in titles


def test_demo_learning_title_says_what_the_descent_did(tmp_path: Path) -> None:
    """Figure 11's title claimed "finds the sharpen kernel" whatever happened: on a 3x3 gradient the
    descent fits the target exactly with another kernel (sharpen is not the only one that maps it)."""
    tiny = tmp_path / "t3.png"
    Image.fromarray(np.arange(9, dtype=np.uint8).reshape(3, 3) * 25).save(tiny)
    res = ok("demo", "--image", tiny, "--out-dir", tmp_path / "tour", "--json")
    titles = {f["figure"]: f["title"] for f in map(json.loads, res.stdout.splitlines())}
    assert "finds the sharpen kernel" not in titles["11-learned-kernel"]
    assert "off sharpen's taps" in titles["11-learned-kernel"]


def test_montage_of_a_batch_needs_a_stem_in_its_path(small: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    path, _ = small
    other = tmp_path / "other.png"
    other.write_bytes(path.read_bytes())
    shared = run("blur", path, other, "--out-dir", tmp_path / "o", "--montage", tmp_path / "m.png")
    assert shared.exit_code == 2 and "{stem}" in shared.stderr and not (tmp_path / "o").exists()
    ok("blur", path, other, "--out-dir", tmp_path / "o", "-q", "--montage", str(tmp_path / "{stem}.m.png"))
    assert (tmp_path / "small.m.png").is_file() and (tmp_path / "other.m.png").is_file()


def test_demo_overview_draws_every_figure_at_one_scale() -> None:
    """A narrow figure is not blown up to the width of a wide one: one factor for all, centred."""
    from convcli.teach.demo import stack_figures

    wide = np.zeros((100, 1000, 3), dtype=np.uint8)
    narrow = np.zeros((50, 500, 3), dtype=np.uint8)
    canvas = stack_figures([wide, narrow], width=1100, gap=16)
    white = (canvas == 255).all(axis=2)
    # the wide one fills the width: 1000 -> 1100 (factor 1.1), so 100 rows -> 110
    rows_wide = np.flatnonzero(~white[:, 16 + 550])
    assert rows_wide[0] == 16
    # the narrow one, at the same factor: 500 -> 550 wide, 50 -> 55 high, centred in 1100
    y = 16 + 110 + 16
    dark_cols = np.flatnonzero(~white[y + 27])
    assert dark_cols[0] == 16 + (1100 - 550) // 2
    assert dark_cols[-1] - dark_cols[0] + 1 == 550
    dark_rows = np.flatnonzero(~white[:, 16 + 550])
    assert (dark_rows >= y).sum() == 55


def test_shape_writes_rf_and_jump_as_the_report_does(tmp_path: Path) -> None:
    """shape printed 'rf [3, 4] jump [3, 2]' where every other report writes 'rf 3x4 jump 3x2'. For one
    layer the receptive field is the kernel (3, 4) and the jump the stride (3, 2); two layers:
    rf = k + (k - 1) * stride, jump = stride²."""
    one = ok("shape", "5x7", "-k", "3,4", "-s", "3,2").stdout
    assert "rf 3x4 jump 3x2" in one and "[3, 4]" not in one
    two = ok("shape", "50x70", "-k", "3,4", "-s", "3,2", "--times", "2").stdout.splitlines()
    assert f"rf {3 + 2 * 3}x{4 + 3 * 2} jump {3 * 3}x{2 * 2}" in two[3]
    assert "rf 3 jump 1" in ok("shape", "5x7", "-k", "3").stdout


@pytest.mark.parametrize("size", [(1, 1), (2, 9), (9, 2)])
def test_demo_on_an_image_too_small_for_the_tour_names_the_image(tmp_path: Path,
                                                                 size: tuple[int, int]) -> None:
    """A 1x1 --image stopped the tour at figure 05 with 'stage 1 (filter): output would be empty',
    naming neither the image nor what size the tour needs; nothing is written now."""
    tiny = tmp_path / "tiny.png"
    Image.new("L", size, 100).save(tiny)
    r = run("demo", "--image", tiny, "--out-dir", tmp_path / "tour")
    assert r.exit_code == 2
    assert r.stderr == (f"convcli: error: --image {tiny}: {size[0]}x{size[1]} (WxH) is too small for the "
                        "tour, which needs at least 3x3 pixels\n")
    assert not (tmp_path / "tour").exists()


def test_demo_checks_its_files_before_reading_the_image(tmp_path: Path) -> None:
    """The figures' files are known before the image is read: --image tour/01-sharpen.png refused
    at once (it was decoded and every figure built first; a corrupt one failed as unreadable, exit 1)."""
    tour = tmp_path / "tour"
    tour.mkdir()
    (tour / "01-sharpen.png").write_bytes(b"\x89PNG\r\n\x1a\n not a whole PNG")
    r = run("demo", "--image", tour / "01-sharpen.png", "--out-dir", tour)
    assert r.exit_code == 2
    assert "would overwrite the input" in r.stderr and r.stderr.count("\n") == 1
    assert sorted(p.name for p in tour.iterdir()) == ["01-sharpen.png"]


@pytest.mark.parametrize("channels", [2, 5])
def test_demo_names_an_image_of_channels_it_cannot_draw(channels: int, tmp_path: Path) -> None:
    """A 5-channel .npy stopped the tour with the panel renderer's own words ("panel image must be
    uint8 ... got uint8 (16, 16, 5)"), naming neither the image nor what the tour takes."""
    src = tmp_path / "c.npy"
    np.save(src, np.zeros((16, 16, channels), np.float32))
    r = run("demo", "--image", src, "--out-dir", tmp_path / "tour")
    assert r.exit_code == 2
    assert r.stderr == (f"convcli: error: --image {src}: {channels} channels; the tour needs a grey or "
                        "colour (RGB) image\n")
    assert not (tmp_path / "tour").exists()


def test_demo_numbers_the_stages_it_shows_without_gaps() -> None:
    """Figure 3 showed "2. edges K_v" with its stage 1 (gray) nowhere, figure 9 "2. relu" and
    "4. relu" without the conv layers: a numbered panel's stages before it are all shown."""
    import re

    from convcli.teach.demo import build_figures, bundled_cat_path

    color = np.asarray(Image.open(bundled_cat_path()).convert("RGB"), dtype=np.float32)
    for fig in build_figures(color):
        numbers = sorted({int(m[1]) for lbl in fig.labels if (m := re.match(r"(\d+)\. ", lbl))})
        assert numbers == list(range(1, len(numbers) + 1)), (fig.name, fig.labels)
