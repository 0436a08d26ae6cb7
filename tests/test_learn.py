"""convcli learn: gradient checks, the lecture's kernels recovered, lstsq against an independent im2col."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from scipy import ndimage

from convcli.cli.app import cli
from convcli.core.shapes import GeometrySpec
from convcli.errors import UsageError
from convcli.io.kernelfile import load_kernel_file
from convcli.teach.learn import LearnSettings, Weights, descend, make_problem, solve_lstsq

ROOT = Path(__file__).resolve().parent.parent
CAT = ROOT / "sample_images" / "cat224.png"
SHARPEN = np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], dtype=np.float64)
K_V = np.array([[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]], dtype=np.float64)


def _cat(gray: bool = False) -> np.ndarray:
    from PIL import Image

    im = Image.open(CAT).convert("L" if gray else "RGB")
    a = np.asarray(im, dtype=np.float64)
    return a if not gray else a[:, :, None]


def _scipy_target(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Reference: scipy.ndimage.correlate per channel, 'mirror' = convcli's reflection."""
    return np.stack([ndimage.correlate(x[:, :, c], k, mode="mirror") for c in range(x.shape[2])], axis=2)


@pytest.mark.parametrize("channels", ["shared", "depthwise", "mixing"])
@pytest.mark.parametrize(("stride", "dilation", "padding"), [((1, 1), (1, 1), "zeros"),
                                                              ((2, 1), (1, 2), "reflection"),
                                                              ((1, 3), (2, 1), "valid")])
def test_gradient_matches_finite_differences(channels: str, stride: tuple[int, int],
                                             dilation: tuple[int, int], padding: str) -> None:
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (11, 13, 2))
    s = LearnSettings(ksize=(3, 2), channels=channels,  # type: ignore[arg-type]
                      spec=GeometrySpec(stride=stride, dilation=dilation, padding=padding))
    oh, ow = s.geometry().out_hw(11, 13)
    t = rng.uniform(-1, 1, (oh, ow, 3 if channels == "mixing" else 2))
    p = make_problem(x, t, s)
    w = p.initial()
    if w.bias is not None:
        w = Weights(w.kernel, rng.uniform(-1, 1, w.bias.shape))
    g = p.gradient(p.forward(w))
    eps = 1e-6
    for idx in np.ndindex(w.kernel.shape):
        up, down = w.kernel.copy(), w.kernel.copy()
        up[idx] += eps
        down[idx] -= eps
        num = (p.loss(p.forward(Weights(up, w.bias))) - p.loss(p.forward(Weights(down, w.bias)))) / (2 * eps)
        assert g.kernel[idx] == pytest.approx(num, abs=1e-7)
    if w.bias is not None:
        for o in range(w.bias.shape[0]):
            up, down = w.bias.copy(), w.bias.copy()
            up[o] += eps
            down[o] -= eps
            num = (p.loss(p.forward(Weights(w.kernel, up)))
                   - p.loss(p.forward(Weights(w.kernel, down)))) / (2 * eps)
            assert g.bias[o] == pytest.approx(num, abs=1e-7)


def _independent_im2col(xp: np.ndarray, kh: int, kw: int, s: int, d: int) -> np.ndarray:
    """Rows = output positions, columns = taps (i, j): built with plain loops."""
    oh = (xp.shape[0] - d * (kh - 1) - 1) // s + 1
    ow = (xp.shape[1] - d * (kw - 1) - 1) // s + 1
    rows = []
    for y in range(oh):
        for x in range(ow):
            rows.append([xp[y * s + i * d, x * s + j * d] for i in range(kh) for j in range(kw)])
    return np.array(rows)


def test_lstsq_matches_numpy_on_an_independent_im2col() -> None:
    rng = np.random.default_rng(5)
    x = rng.uniform(0, 255, (12, 10, 1))
    t = rng.uniform(0, 255, (5, 4, 1))  # 3x3, stride 2, dilation 1, zeros pad 1: 12 -> 6? use valid
    s = LearnSettings(ksize=(3, 3), spec=GeometrySpec(stride=(2, 2), padding="valid"))
    got = solve_lstsq(make_problem(x, t, s)).weights.kernel
    a = _independent_im2col(x[:, :, 0], 3, 3, 2, 1)
    want = np.linalg.lstsq(a, t[:, :, 0].reshape(-1), rcond=None)[0].reshape(3, 3)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


def test_lstsq_mixing_recovers_a_layer_with_bias() -> None:
    rng = np.random.default_rng(8)
    x = rng.uniform(0, 255, (16, 15, 2))
    w = rng.uniform(-1, 1, (3, 2, 3, 3))
    b = np.array([5.0, -7.0, 0.5])
    xp = np.pad(x, ((1, 1), (1, 1), (0, 0)))
    t = np.empty((16, 15, 3))
    for o in range(3):  # direct float64 loop, the reference
        for y in range(16):
            for c in range(15):
                t[y, c, o] = np.sum(xp[y : y + 3, c : c + 3, :].transpose(2, 0, 1) * w[o]) + b[o]
    s = LearnSettings(channels="mixing", spec=GeometrySpec(padding="zeros"))
    got = solve_lstsq(make_problem(x, t, s)).weights
    np.testing.assert_allclose(got.kernel, w, atol=1e-8)
    np.testing.assert_allclose(got.bias, b, atol=1e-6)
    # descent reaches the same layer
    settings = LearnSettings(channels="mixing", spec=GeometrySpec(padding="zeros"), steps=400)
    final = list(descend(make_problem(x, t, settings)))[-1]
    np.testing.assert_allclose(final.weights.kernel, w, atol=1e-3)
    np.testing.assert_allclose(final.weights.bias, b, atol=1e-2)


def test_descent_recovers_k_v_from_the_cat_luminance() -> None:
    x = _cat(gray=True)
    t = _scipy_target(x, K_V)
    final = list(descend(make_problem(x, t, LearnSettings(steps=80))))[-1]
    np.testing.assert_allclose(final.weights.kernel, K_V, atol=1e-3)
    assert final.loss < 1e-6


def test_five_by_five_fit_to_a_three_by_three_target_is_zero_around_it() -> None:
    x = _cat(gray=True)
    t = _scipy_target(x, SHARPEN)
    k = solve_lstsq(make_problem(x, t, LearnSettings(ksize=(5, 5)))).weights.kernel
    want = np.zeros((5, 5))
    want[1:4, 1:4] = SHARPEN
    np.testing.assert_allclose(k, want, atol=1e-6)
    final = list(descend(make_problem(x, t, LearnSettings(ksize=(5, 5), steps=150))))[-1]
    np.testing.assert_allclose(final.weights.kernel, want, atol=1e-3)


def test_a_clipped_8bit_target_comes_close_but_not_exact_and_ignore_clipped_fixes_it() -> None:
    x = _cat(gray=True)
    t = np.clip(np.rint(_scipy_target(x, SHARPEN)), 0, 255)
    k = solve_lstsq(make_problem(x, t, LearnSettings())).weights.kernel
    err = np.abs(k - SHARPEN).max()
    assert 1e-3 < err < 1.0  # close, but clipping biases it
    k2 = solve_lstsq(make_problem(x, t, LearnSettings(), ignore=(0.0, 255.0))).weights.kernel
    np.testing.assert_allclose(k2, SHARPEN, atol=1e-6)


def test_target_shape_must_match_the_arithmetic() -> None:
    with pytest.raises(UsageError, match=r"// 1 \+ 1 = 222"):
        valid = LearnSettings(spec=GeometrySpec(padding="valid"))
        make_problem(np.zeros((224, 224)), np.zeros((224, 224)), valid)


# --------------------------------------------------------------------------- the command


def _run(args: list[str]) -> object:
    return CliRunner().invoke(cli, args, catch_exceptions=False)


def test_cli_recovers_sharpen_from_the_float_output(tmp_path: Path) -> None:
    target = tmp_path / "cat.sharpen.npy"
    np.save(target, _scipy_target(_cat(), SHARPEN).astype(np.float32))
    out = tmp_path / "learned" / "sharpen.txt"
    r = _run(["learn", str(CAT), str(target), "--size", "3", "--steps", "120", "-o", str(out), "--json"])
    assert r.exit_code == 0, r.stderr
    lines = [json.loads(ln) for ln in r.stdout.splitlines()]
    steps = [ln for ln in lines if "step" in ln]
    assert steps[0]["step"] == 0 and steps[-1]["step"] == 120
    assert steps[-1]["loss"] < steps[0]["loss"] * 1e-6
    final = lines[-1]
    assert final["status"] == "ok" and final["output_shape"] == [1, 3, 224, 224]
    assert final["stages"][0]["arithmetic"] == "(224 + 1 + 1 - 1*(3-1) - 1) // 1 + 1 = 224"
    np.testing.assert_allclose(load_kernel_file(out).weights, SHARPEN, atol=1e-3)
    for name in ("sharpen.loss.png", "sharpen.steps.png"):
        assert (tmp_path / "learned" / name).stat().st_size > 1000
    assert r.stderr == ""


def test_cli_lstsq_and_k_reads_it_back(tmp_path: Path) -> None:
    target = tmp_path / "t.npy"
    np.save(target, _scipy_target(_cat(), K_V).astype(np.float32))
    out = tmp_path / "kv.json"
    r = _run(["learn", str(CAT), str(target), "--solver", "lstsq", "-o", str(out), "--no-figures", "-q"])
    assert r.exit_code == 0 and r.stdout == "" and r.stderr == ""
    np.testing.assert_allclose(load_kernel_file(out).weights, K_V, atol=1e-3)
    again = tmp_path / "again.npy"
    r = _run(["filter", str(CAT), "-k", f"@{out}", "-o", str(again), "-q"])
    assert r.exit_code == 0
    np.testing.assert_allclose(np.load(again), np.load(target), atol=1e-2)


@pytest.mark.parametrize("flags", [["--curve", "c.png"], ["--steps", "10", "--lr", "0.1"], ["--every", "5"],
                                   ["--seed", "3"], ["--show-steps", "0"]])
def test_cli_lstsq_refuses_the_descents_options(tmp_path: Path, flags: list[str]) -> None:
    """--solver lstsq --curve c.png (or --steps, --lr, --every...) took the flags and did nothing with
    them, without a word."""
    out = tmp_path / "k.txt"
    r = CliRunner().invoke(cli, ["learn", str(CAT), str(CAT), "--solver", "lstsq", "-o", str(out), *flags])
    given = ", ".join(f for f in flags if f.startswith("--"))
    assert r.exit_code == 2
    assert r.stderr == (f"convcli: error: {given}: options of the descent, and --solver lstsq solves in one "
                        "step (drop them, or use --solver descent)\n")
    assert list(tmp_path.iterdir()) == []


def test_cli_depthwise_prints_each_channels_kernel(tmp_path: Path) -> None:
    """0.3 printed "weights [3, 3, 3]" for a file of shape (3, 3, 3, 3) and no kernel at all."""
    x = _cat()
    kernels = [SHARPEN, K_V, np.full((3, 3), 1 / 9)]
    target = tmp_path / "t.npy"
    np.save(target, np.stack([ndimage.correlate(x[:, :, c], kernels[c], mode="mirror") for c in range(3)],
                             axis=2).astype(np.float32))
    out = tmp_path / "dw.npy"
    r = _run(["learn", str(CAT), str(target), "--channels", "depthwise", "--solver", "lstsq", "-o", str(out),
              "--no-figures"])
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    for c, k in enumerate(kernels):
        at = lines.index(f"  kernel of channel {c}:")
        printed = np.array([[float(v) for v in ln.strip(" []").split()] for ln in lines[at + 1:at + 4]])
        np.testing.assert_allclose(printed, k, atol=2e-4)
    assert "  written as conv weights (out, in, kh, kw) [3, 3, 3, 3], zero between channels" in lines
    assert np.load(out).shape == (3, 3, 3, 3)


@pytest.mark.parametrize("which", ["input", "target", "curve"])
def test_cli_refuses_to_overwrite_inputs_or_its_own_files(tmp_path: Path, which: str) -> None:
    target = tmp_path / "t.npy"
    np.save(target, np.zeros((224, 224, 3), dtype=np.float32))
    out = tmp_path / "k.npy"
    args = ["learn", str(CAT), str(target), "-o", str(out)]
    if which == "target":
        args[-1] = str(target)
    elif which == "input":
        args += ["--montage", str(CAT)]
    else:
        args += ["--curve", str(out)]
    before = target.read_bytes()
    r = _run(args)
    assert r.exit_code == 2
    assert r.stdout == ""
    assert len(r.stderr.strip().splitlines()) == 1
    assert ("overwrite" in r.stderr) or ("collides" in r.stderr)
    assert target.read_bytes() == before and not out.exists()


def test_cli_shape_mismatch_is_a_usage_error(tmp_path: Path) -> None:
    target = tmp_path / "t.npy"
    np.save(target, np.zeros((10, 10), dtype=np.float32))
    r = _run(["learn", str(CAT), str(target), "-o", str(tmp_path / "k.txt"), "--gray"])
    assert r.exit_code == 2 and "224 + 1 + 1" in r.stderr and r.stdout == ""


@pytest.mark.parametrize(("lr", "why"), [("1e308", "the weights overflowed"), ("1e30", "loss inf"),
                                         ("1", "the loss rose from")])
def test_cli_a_diverging_descent_is_one_line_and_writes_nothing(tmp_path: Path, lr: str, why: str) -> None:
    """A step size far too large: one error line naming the step (no NumPy overflow warnings first).
    With --lr 1 the loss is ~1e60 after 10 steps, finite: 0.3 wrote that kernel and said nothing."""
    target = tmp_path / "t.npy"
    np.save(target, _scipy_target(_cat(gray=True), SHARPEN).astype(np.float32))
    out = tmp_path / "k.txt"
    r = _run(["learn", str(CAT), str(target), "--gray", "--lr", lr, "--steps", "10", "-q", "-o", str(out)])
    assert r.exit_code == 2, r.stderr
    assert r.stderr.splitlines() == [r.stderr.strip()] and "the descent diverged" in r.stderr
    assert why in r.stderr and "warning" not in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.npy"]


def _strict_json(line: str) -> dict:
    def refuse(name: str) -> None:
        raise ValueError(f"not strict JSON: {name}")

    return json.loads(line, parse_constant=refuse)


@pytest.mark.parametrize("lr", ["1e308", "10", "1"])  # the weights overflow, the loss is inf, it rose
def test_cli_a_diverging_descent_names_the_default_lr_and_it_descends(tmp_path: Path, lr: str) -> None:
    """README: the one line gives "the default step size to try". It said only "use a smaller --lr".
    The value it names must be the default: the same descent as no --lr at all, step by step."""
    target = tmp_path / "t.npy"
    np.save(target, _scipy_target(_cat(gray=True), SHARPEN).astype(np.float32))
    base = ["learn", str(CAT), str(target), "--gray", "--steps", "20", "--every", "1", "--no-figures"]
    r = _run([*base, "--lr", lr, "-q", "-o", str(tmp_path / "k.txt")])
    assert r.exit_code == 2 and "the descent diverged" in r.stderr
    named = re.findall(r"the default here: --lr (\S+)\)", r.stderr)
    assert len(named) == 1, r.stderr
    assert float(named[0]) < float(lr)

    def losses(extra: list[str], name: str) -> list[float]:
        res = _run([*base, *extra, "--json", "-o", str(tmp_path / name)])
        assert res.exit_code == 0, res.stderr
        return [ln["loss"] for ln in map(_strict_json, res.stdout.splitlines()) if "step" in ln]

    default, named_run = losses([], "default.txt"), losses(["--lr", named[0]], "named.txt")
    assert len(default) == len(named_run) == 21
    np.testing.assert_allclose(named_run, default, rtol=0.05)
    assert default[-1] < default[0] * 1e-3


@pytest.mark.parametrize("lr", ["1e308", "10", "1"])
def test_cli_json_a_diverging_descent_ends_with_the_error_record(tmp_path: Path, lr: str) -> None:
    """With --json the stream ended on a step record: nothing said the run failed. It ends now with a
    failed input's record as every command writes it (README, "The shape report"); stdout is JSON only,
    the one error line stays on stderr, exit 2, nothing written."""
    target = tmp_path / "t.npy"
    np.save(target, _scipy_target(_cat(gray=True), SHARPEN).astype(np.float32))
    out = tmp_path / "k.txt"
    r = _run(["learn", str(CAT), str(target), "--gray", "--lr", lr, "--steps", "10", "--json",
              "-o", str(out)])
    assert r.exit_code == 2, r.stderr
    lines = [_strict_json(ln) for ln in r.stdout.splitlines()]
    assert len(lines) >= 2 and all(set(ln) == {"step", "loss"} for ln in lines[:-1])
    stderr = r.stderr.splitlines()
    assert len(stderr) == 1 and stderr[0].startswith("convcli: error: the descent diverged")
    assert lines[-1] == {"input": str(CAT), "status": "error",
                         "error": stderr[0].removeprefix("convcli: error: ")}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.npy"]


@pytest.mark.parametrize("which", ["input", "target"])
def test_a_file_that_cannot_be_read_is_named(tmp_path: Path, which: str) -> None:
    """SPEC 5: every error names its input. 0.3 said 'convcli: error: no such file' for either file."""
    missing = tmp_path / "nope.png"
    files = [str(missing), str(CAT)] if which == "input" else [str(CAT), str(missing)]
    r = _run(["learn", *files, "--size", "3", "-o", str(tmp_path / "k.txt")])
    assert r.exit_code == 1  # type: ignore[attr-defined]
    label = "INPUT" if which == "input" else "TARGET"
    assert r.stderr == f"convcli: error: {label} {missing}: no such file\n"  # type: ignore[attr-defined]
    assert not (tmp_path / "k.txt").exists()
    r = _run(["learn", *files, "--size", "3", "-o", str(tmp_path / "k.txt"), "--json"])
    (rec,) = [json.loads(line) for line in r.stdout.splitlines()]  # type: ignore[attr-defined]
    assert rec["status"] == "error" and rec["error"] == f"{label} {missing}: no such file"


def test_an_input_the_same_everywhere_is_refused(tmp_path: Path) -> None:
    """An all-black input printed the descent's random start as the learnt kernel (loss unchanged in
    200 steps), exit 0; a flat grey one diverged and advised --lr 1e+299. Every window is the same, so
    nothing but (for a non-zero value) the kernel's sum is in the data: refused, exit 2. With zeros
    padding a flat grey input's border windows differ, and it runs."""
    black, grey = tmp_path / "black.png", tmp_path / "grey.png"
    Image.fromarray(np.zeros((30, 30, 3), np.uint8)).save(black)
    Image.fromarray(np.full((30, 30), 100, np.uint8)).save(grey)
    target = tmp_path / "t.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 30, 3), dtype=np.uint8)).save(target)
    r = CliRunner().invoke(cli, ["learn", str(black), str(target), "-o", str(tmp_path / "k.txt")])
    assert r.exit_code == 2 and "the input is 0, 0, 0 everywhere" in r.stderr
    assert "every kernel gives 0" in r.stderr
    r = CliRunner().invoke(cli, ["learn", str(grey), str(grey), "-o", str(tmp_path / "k.txt")])
    assert r.exit_code == 2 and "the input is 100 everywhere" in r.stderr and "same sum" in r.stderr
    assert not (tmp_path / "k.txt").exists()
    r = CliRunner().invoke(cli, ["learn", str(grey), str(grey), "-o", str(tmp_path / "k.txt"), "-p", "zeros"])
    assert r.exit_code == 0, r.stderr


def test_a_channel_the_same_everywhere_is_refused_when_it_has_its_own_kernel(tmp_path: Path) -> None:
    """An image whose G and B are 0 everywhere, learnt --channels depthwise: G's and B's kernels were
    the descent's random start, printed as learnt (exit 0). Refused, naming the channel; a shared
    kernel learns from R and runs."""
    a = np.zeros((30, 30, 3), np.uint8)
    a[..., 0] = np.random.default_rng(0).integers(0, 256, (30, 30))
    src, tgt = tmp_path / "red.png", tmp_path / "t.png"
    Image.fromarray(a).save(src)
    Image.fromarray(a).save(tgt)
    r = CliRunner().invoke(cli, ["learn", str(src), str(tgt), "--channels", "depthwise",
                                 "-o", str(tmp_path / "k.npy")])
    assert r.exit_code == 2 and "input channel 1 (of 3, from 0) is 0 everywhere" in r.stderr
    r = CliRunner().invoke(cli, ["learn", str(src), str(tgt), "-o", str(tmp_path / "k.txt")])
    assert r.exit_code == 0, r.stderr


def test_mixing_on_channels_that_are_copies_is_refused(tmp_path: Path) -> None:
    """A grey photo saved as RGB, learnt --channels mixing: different --seed gave different weights at
    the same loss (only their sum over the copies is in the data), each printed as learnt."""
    grey = np.random.default_rng(0).integers(0, 256, (30, 30), dtype=np.uint8)
    src = tmp_path / "g.png"
    Image.fromarray(np.dstack([grey] * 3)).save(src)
    r = CliRunner().invoke(cli, ["learn", str(src), str(src), "--channels", "mixing",
                                 "-o", str(tmp_path / "w.npy")])
    assert r.exit_code == 2 and "3 channels hold 1 independent one(s)" in r.stderr, r.stderr
    colour = np.random.default_rng(1).integers(0, 256, (30, 30, 3), dtype=np.uint8)
    Image.fromarray(colour).save(src)
    r = CliRunner().invoke(cli, ["learn", str(src), str(src), "--channels", "mixing", "--steps", "5",
                                 "-o", str(tmp_path / "w.npy")])
    assert r.exit_code == 0, r.stderr


def test_lstsq_still_answers_where_descent_is_refused(tmp_path: Path) -> None:
    """The refusals for weights the data cannot move are for gradient descent, which prints its random
    start there; --solver lstsq gives its one minimum-norm answer (a grey photo saved as RGB, mixed:
    loss ~1e-26 before the refusal came in, and again now)."""
    grey = np.random.default_rng(0).integers(0, 256, (24, 24), dtype=np.uint8)
    src = tmp_path / "g.png"
    Image.fromarray(np.dstack([grey] * 3)).save(src)
    target = tmp_path / "t.npy"
    r = CliRunner().invoke(cli, ["filter", str(src), "-k", "sharpen", "-o", str(target), "-q"])
    assert r.exit_code == 0, r.stderr
    r = CliRunner().invoke(cli, ["learn", str(src), str(target), "--channels", "mixing", "--solver", "lstsq",
                                 "-o", str(tmp_path / "w.npy"), "--json", "--no-figures"])
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout.splitlines()[-1])["loss"] < 1e-12


def test_a_colour_stripe_keeps_the_channels_independent(tmp_path: Path) -> None:
    """The copies test looked at every k-th pixel (every 2nd of a 400x400 image): a grey texture
    with colour in odd columns only (rank 3) was refused as a grey image saved as RGB."""
    rng = np.random.default_rng(0)
    g = rng.integers(0, 256, (400, 400), dtype=np.uint8)
    rgb = np.dstack([g] * 3)
    rgb[:, 1:15:2] = rng.integers(0, 256, (400, 7, 3), dtype=np.uint8)
    src = tmp_path / "s.png"
    Image.fromarray(rgb).save(src)
    r = CliRunner().invoke(cli, ["learn", str(src), str(src), "--channels", "mixing", "--steps", "1",
                                 "-o", str(tmp_path / "w.npy"), "--no-figures", "-q"])
    assert r.exit_code == 0, r.stderr
