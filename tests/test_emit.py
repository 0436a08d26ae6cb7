"""convcli.teach.emit: the emitted programs run and give convcli's numbers.

scipy always runs; OpenCV and PyTorch run where they are installed; the ImageMagick
command is checked as text and run where a real ImageMagick is on the machine.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from convcli.core.padding import MODES, resolve_mode
from convcli.engine import correlate2d
from convcli.errors import UsageError
from convcli.teach.emit import EmitSpec, emit

LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)

SHARPEN = np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], dtype=float)
EMBOSS = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], dtype=float)
EVEN = np.array([[1, -2, 0.5, 3], [0.25, 1, -1, 2]], dtype=float)  # 2×4, asymmetric
GAUSS = np.outer([1, 2, 1], [1, 2, 1]) / 16.0

#: (id, kernel, stride, dilation, pad (t, b, l, r), mode, flip, channels, gray, bias)
CASES = [
    ("sharpen-reflection-same", SHARPEN, (1, 1), (1, 1), (1, 1, 1, 1), "reflection", False, 3, False, 0.0),
    ("zeros-stride2", SHARPEN, (2, 2), (1, 1), (1, 1, 1, 1), "zeros", False, 3, False, 0.0),
    ("border-even-asymmetric-same", EVEN, (1, 1), (1, 1), (0, 1, 1, 2), "border", False, 3, False, 0.0),
    ("symmetric-dilated-flip-gray", EMBOSS, (1, 1), (2, 2), (2, 2, 2, 2), "symmetric", True, 3, True, 0.0),
    ("circular-stride-dilation-uneven", EVEN, (2, 3), (1, 2), (2, 0, 1, 3), "wrap", False, 3, False, 0.0),
    ("valid-L-bias", GAUSS, (1, 1), (1, 1), (0, 0, 0, 0), "valid", False, 1, False, 7.5),
    ("reflection-larger-pad", EMBOSS, (1, 2), (1, 1), (2, 2, 2, 1), "reflect", True, 3, False, 0.0),
    ("border-flip-even-L", EVEN, (2, 1), (2, 1), (1, 1, 2, 1), "edge", True, 1, False, -3.0),
    ("zeros-1x1", np.array([[2.0]]), (1, 1), (1, 1), (0, 0, 0, 0), "zeros", False, 3, False, 0.0),
    ("symmetric-valid-sized", SHARPEN, (1, 1), (1, 1), (0, 0, 0, 0), "symmetric", False, 3, False, 0.0),
]


@pytest.fixture
def images(tmp_path: Path, rng: np.random.Generator) -> dict[str, Path]:
    rgb = rng.integers(0, 256, size=(9, 11, 3), dtype=np.uint8)
    paths = {"RGB": tmp_path / "in_rgb.png", "L": tmp_path / "in_l.png"}
    Image.fromarray(rgb).save(paths["RGB"])
    Image.fromarray(rgb[:, :, 1]).save(paths["L"])
    return paths


def _spec(case: tuple, images: dict[str, Path], out: Path, policy: str = "clip") -> EmitSpec:
    _, k, stride, dilation, pad, mode, flip, channels, gray, bias = case
    src = images["L" if channels == 1 else "RGB"]
    return EmitSpec(kernel=k, stride=stride, dilation=dilation, pad=pad, mode=mode, flip=flip,
                    channels=channels, input_path=str(src), output_path=str(out), bias=bias, gray=gray,
                    policy=policy)


def _pixels(v: np.ndarray, policy: str) -> np.ndarray:
    """The README's --range policies, written out here: clip, abs, normalize (min..max onto 0..255)."""
    v = np.asarray(v, dtype=np.float64)
    if policy == "abs":
        v = np.abs(v)
    elif policy == "normalize":
        lo, hi = v.min(), v.max()
        v = (v - lo) / (hi - lo) * 255 if hi > lo else np.zeros_like(v)
    return np.clip(np.rint(v), 0, 255).astype(np.uint8)


def _reference(spec: EmitSpec) -> np.ndarray:
    """convcli's own numbers on the same float input."""
    im = Image.open(spec.input_path)
    if spec.gray:
        x = np.asarray(im.convert("RGB"), dtype=np.float32) @ LUMA
    else:
        x = np.asarray(im.convert("L" if spec.channels == 1 else "RGB"), dtype=np.float32)
    out = correlate2d(x, spec.kernel, stride=spec.stride, dilation=spec.dilation, pad=spec.pad,
                      mode=spec.mode, flip=spec.flip, dtype=np.float64)
    return out + spec.bias


def _run_python(code: str) -> dict:
    namespace: dict = {"__name__": "__main__"}
    exec(compile(code, "<emitted>", "exec"), namespace)  # noqa: S102 - running our own generated code
    return namespace


def _check(library: str, case: tuple, images: dict[str, Path], tmp_path: Path) -> None:
    out_png = tmp_path / f"out_{library}.png"
    spec = _spec(case, images, out_png)
    ns = _run_python(emit(library, spec))
    out = ns["out"]
    ref = _reference(spec)
    assert out.dtype == np.float32
    assert out.shape == ref.shape
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(ref).max())))
    saved = np.asarray(Image.open(out_png))
    np.testing.assert_array_equal(saved, np.clip(np.rint(out), 0, 255).astype(np.uint8))


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_scipy_program_gives_convcli_numbers(case: tuple, images: dict[str, Path], tmp_path: Path) -> None:
    pytest.importorskip("scipy")
    _check("scipy", case, images, tmp_path)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_opencv_program_gives_convcli_numbers(case: tuple, images: dict[str, Path], tmp_path: Path) -> None:
    pytest.importorskip("cv2")
    _check("opencv", case, images, tmp_path)


@pytest.mark.parametrize("policy", ["abs", "normalize"])
@pytest.mark.parametrize("library", ["scipy", "opencv", "torch"])
@pytest.mark.parametrize("case", CASES[:5], ids=[c[0] for c in CASES[:5]])
def test_programs_apply_the_range_policy(case: tuple, library: str, policy: str, images: dict[str, Path],
                                         tmp_path: Path) -> None:
    """--range abs and normalize reach the emitted program (it wrote clip whatever was asked, once)."""
    pytest.importorskip({"scipy": "scipy", "opencv": "cv2", "torch": "torch"}[library])
    out_png = tmp_path / "out.png"
    spec = _spec(case, images, out_png, policy)
    ns = _run_python(emit(library, spec))
    saved = np.asarray(Image.open(out_png)).astype(int)
    want = _pixels(_reference(spec), policy).astype(int)
    # float32 against float64 sums: a value on a rounding tie may land one level apart
    assert np.abs(saved - want).max() <= 1
    assert np.mean(saved != want) < 0.01
    np.testing.assert_array_equal(saved, _pixels(ns["out"], policy))


@pytest.mark.parametrize("policy", ["abs", "normalize"])
def test_magick_refuses_a_policy_it_cannot_reproduce(policy: str, images: dict[str, Path],
                                                      tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=f"--range {policy}"):
        emit("magick", _spec(CASES[0], images, tmp_path / "o.png", policy))


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_torch_program_gives_convcli_numbers(case: tuple, images: dict[str, Path], tmp_path: Path) -> None:
    pytest.importorskip("torch")
    _check("torch", case, images, tmp_path)


def test_programs_use_each_librarys_own_mode_names(tmp_path: Path) -> None:
    def spec(mode: str, pad=(1, 1, 1, 1)) -> EmitSpec:
        return EmitSpec(SHARPEN, (1, 1), (1, 1), pad, mode, False, 3, "in.png", "out.png")

    assert 'mode="mirror"' in emit("scipy", spec("reflection"))
    assert 'mode="reflect"' in emit("scipy", spec("symmetric"))
    assert 'mode="nearest"' in emit("scipy", spec("border"))
    assert "cv2.BORDER_REFLECT_101" in emit("opencv", spec("reflection"))
    assert "cv2.BORDER_REFLECT)" in emit("opencv", spec("symmetric"))
    assert "cv2.BORDER_REPLICATE" in emit("opencv", spec("replicate"))
    assert 'padding_mode="reflect"' in emit("torch", spec("reflection"))
    assert 'padding_mode="replicate"' in emit("torch", spec("border"))
    assert 'padding_mode="circular"' in emit("torch", spec("wrap"))
    sym = emit("torch", spec("symmetric"))
    assert "not expressible in torch" in sym
    assert 'np.pad(x, ((1, 1), (1, 1), (0, 0)), mode="symmetric")' in sym
    wrap_cv = emit("opencv", spec("circular"))
    assert "cv2.copyMakeBorder(x, 1, 1, 1, 1, cv2.BORDER_WRAP)" in wrap_cv
    assert "refuses BORDER_WRAP" in wrap_cv


def test_stride_and_dilation_are_explained_where_missing() -> None:
    s = EmitSpec(SHARPEN, (2, 3), (2, 1), (2, 2, 1, 1), "zeros", False, 3, "in.png", "out.png")
    scipy_code = emit("scipy", s)
    assert "scipy.ndimage has no stride" in scipy_code and "out = out[::2, ::3]" in scipy_code
    assert "scipy.ndimage has no dilation" in scipy_code and "Kd[::2, ::1] = K" in scipy_code
    assert "OpenCV has no stride" in emit("opencv", s)
    torch_code = emit("torch", s)
    assert "stride=(2, 3)" in torch_code and "dilation=(2, 1)" in torch_code and "no stride" not in torch_code


def test_flip_is_handled_in_every_library() -> None:
    s = EmitSpec(EMBOSS, (1, 1), (1, 1), (1, 1, 1, 1), "zeros", True, 3, "in.png", "out.png")
    for lib in ("scipy", "opencv", "torch"):
        assert "K[::-1, ::-1]" in emit(lib, s)  # type: ignore[arg-type]
    magick = emit("magick", s)
    assert "-morphology Convolve" in magick and "rotates it by 180°" in magick
    assert "-morphology Correlate" in emit("magick", EmitSpec(EMBOSS, (1, 1), (1, 1), (1, 1, 1, 1), "zeros",
                                                                  False, 3, "in.png", "out.png"))


# --- ImageMagick --------------------------------------------------------------------------------


def _magick_binary() -> str | None:
    """A real ImageMagick (the ``convert`` on some PATHs is a stand-in that is not)."""
    for name in ("magick", "convert", "/usr/bin/convert"):
        path = shutil.which(name)
        if not path:
            continue
        try:
            res = subprocess.run([path, "-version"], capture_output=True, text=True, timeout=20, check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if "ImageMagick" in res.stdout and res.stdout.startswith("Version"):
            return path
    return None


def test_magick_command_translates_names() -> None:
    def spec(mode: str, pad=(1, 1, 1, 1), **kw) -> EmitSpec:
        args = dict(kernel=SHARPEN, stride=(1, 1), dilation=(1, 1), pad=pad, mode=mode, flip=False,
                    channels=3, input_path="in.png", output_path="out.png")
        args.update(kw)
        return EmitSpec(**args)

    assert "-virtual-pixel Black" in emit("magick", spec("zeros"))
    assert "-virtual-pixel Edge" in emit("magick", spec("border"))
    assert "-virtual-pixel Tile" in emit("magick", spec("circular"))
    assert "-virtual-pixel Mirror" in emit("magick", spec("symmetric"))
    refl = emit("magick", spec("reflection"))
    command_lines = "\n".join(ln for ln in refl.splitlines() if not ln.startswith("#"))
    assert "not expressible as a -virtual-pixel" in refl and "-flop" in command_lines
    assert "-virtual-pixel" not in command_lines
    assert "'3x3+1+1: 0,-1,0 -1,5,-1 0,-1,0'" in emit("magick", spec("zeros"))
    even = emit("magick", spec("zeros", kernel=EVEN, pad=(0, 1, 1, 2)))
    assert "'4x2+1+0: " in even  # origin x = left pad, y = top pad
    valid = emit("magick", spec("valid", pad=(0, 0, 0, 0)))
    assert "-gravity SouthEast -chop 2x2" in valid
    assert "-define convolve:bias=" in emit("magick", spec("zeros", bias=25.5))
    assert "-grayscale Rec601Luma" in emit("magick", spec("zeros", gray=True))
    with pytest.raises(UsageError, match="not expressible in ImageMagick.*stride"):
        emit("magick", spec("zeros", stride=(2, 2)))


#: everything ImageMagick can express (stride 1), through each of its code paths
MAGICK_CASES = [c for c in CASES if c[2] == (1, 1) and not c[8]] + [  # gray: IM rounds the luma
    ("magick-reflection-asymmetric", SHARPEN, (1, 1), (1, 1), (2, 1, 0, 2), "reflection", False, 3, False, 0),
    ("magick-zeros-viewport", EMBOSS, (1, 1), (1, 1), (2, 2, 0, 3), "zeros", True, 3, False, 0.0),
    ("magick-wrap-dilated", EVEN, (1, 1), (2, 1), (1, 1, 1, 2), "circular", False, 1, False, 0.0),
    ("magick-symmetric-uneven", EVEN, (1, 1), (1, 2), (0, 3, 2, 2), "symmetric", True, 3, False, 0.0),
    ("magick-border-same", GAUSS, (1, 1), (1, 1), (1, 1, 1, 1), "border", False, 3, False, 20.0),
]


@pytest.mark.parametrize("case", MAGICK_CASES, ids=[c[0] for c in MAGICK_CASES])
def test_magick_command_runs_and_agrees(case: tuple, images: dict[str, Path], tmp_path: Path) -> None:
    binary = _magick_binary()
    if binary is None:
        pytest.skip("no real ImageMagick on this machine")
    out_png = tmp_path / "out_magick.png"
    spec = _spec(case, images, out_png)
    command = emit("magick", spec)
    lines = command.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("magick "))
    lines[start] = binary + lines[start][len("magick"):]  # ImageMagick 6 names it convert
    script = "\n".join(lines)
    res = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert res.returncode == 0, res.stderr
    got = np.asarray(Image.open(out_png).convert("L" if spec.channels == 1 else "RGB"), dtype=np.int16)
    want = np.clip(np.rint(_reference(spec)), 0, 255).astype(np.int16)
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= 1  # ImageMagick rounds in its 16-bit quantum


# --- random geometries ---------------------------------------------------------------------------

@pytest.mark.parametrize("library", ["scipy", "opencv", "torch"])
@settings(max_examples=40)
@given(
    kh=st.integers(1, 4), kw=st.integers(1, 4),
    sy=st.integers(1, 3), sx=st.integers(1, 3), dy=st.integers(1, 2), dx=st.integers(1, 2),
    pad=st.tuples(*[st.integers(0, 3)] * 4),
    mode=st.sampled_from(["zeros", "border", "reflection", "symmetric", "circular", "valid"]),
    flip=st.booleans(), gray=st.booleans(), seed=st.integers(0, 2**16),
)
def test_program_random_geometry(library, kh, kw, sy, sx, dy, dx, pad, mode, flip, gray, seed,
                                 tmp_path_factory) -> None:
    pytest.importorskip({"scipy": "scipy", "opencv": "cv2", "torch": "torch"}[library])
    rng = np.random.default_rng(seed)
    if mode == "valid":
        pad = (0, 0, 0, 0)
    h, w = 7, 8
    if dy * (kh - 1) + 1 > h + pad[0] + pad[1] or dx * (kw - 1) + 1 > w + pad[2] + pad[3]:
        return  # empty output: convcli refuses it before emitting anything
    if library == "opencv" and max(pad) >= min(h, w) - 1 and mode == "reflection":
        return  # cv2.copyMakeBorder's BORDER_REFLECT_101 needs pads smaller than the image
    d = tmp_path_factory.mktemp("emit")
    src = d / "in.png"
    Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)).save(src)
    k = np.round(rng.uniform(-2, 2, size=(kh, kw)), 3)
    spec = EmitSpec(k, (sy, sx), (dy, dx), pad, mode, flip, 3, str(src), str(d / "out.png"), gray=gray)
    out = _run_python(emit(library, spec))["out"]
    ref = _reference(spec)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4 * max(1.0, float(np.abs(ref).max())))


@pytest.mark.parametrize("mode", ["zeros", "border", "symmetric", "circular"])
def test_magick_virtual_pixel_names_pad_as_numpy_does(mode: str, tmp_path: Path) -> None:
    """The -virtual-pixel chosen for each mode really pads like numpy.pad (reflection has none)."""
    binary = _magick_binary()
    if binary is None:
        pytest.skip("no real ImageMagick on this machine")
    row = np.array([[10, 20, 30, 40, 50]] * 2, dtype=np.uint8)
    src, dst = tmp_path / "row.png", tmp_path / "padded.png"
    Image.fromarray(row).save(src)
    vp = MODES[mode].magick
    cmd = [binary, str(src), "-virtual-pixel", str(vp), "-set", "option:distort:viewport", "9x2-2+0",
           "-filter", "point", "-distort", "SRT", "0", "+repage", "-depth", "8", str(dst)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    got = np.asarray(Image.open(dst).convert("L"))[0]
    want = np.pad(row[0], 2, mode=resolve_mode(mode).numpy)  # type: ignore[call-overload]
    np.testing.assert_array_equal(got, want)


def test_emitted_python_is_clean(tmp_path: Path) -> None:
    """No undefined names or unused imports in what we hand to people (pyflakes rules), imports in
    isort's order and no line over 110 characters, as ours (a 120-character docstring line and an
    unsorted import block made `ruff check .` fail after the README's --emit example)."""
    beside = Path(sys.executable).parent / "ruff"  # the venv's own, when it is not on PATH
    ruff = shutil.which("ruff") or (str(beside) if beside.exists() else None)
    if ruff is None:
        pytest.skip("ruff is not installed")
    paths = {"RGB": Path("a.png"), "L": Path("b.png")}
    for i, case in enumerate(CASES):
        for lib in ("scipy", "opencv", "torch"):
            (tmp_path / f"{lib}_{i}.py").write_text(emit(lib, _spec(case, paths, Path("o.png"))))
    res = subprocess.run([ruff, "check", "--isolated", "--line-length", "110", "--select", "F,E,W,I",
                          str(tmp_path)],
                         capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stdout


# --- refusals ---------------------------------------------------------------------------------


def test_bad_requests_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="unknown --emit target"):
        emit("matlab", EmitSpec(SHARPEN, (1, 1), (1, 1), (1, 1, 1, 1), "zeros", False, 3, "a", "b"))  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="valid"):
        EmitSpec(SHARPEN, (1, 1), (1, 1), (1, 1, 1, 1), "valid", False, 3, "a", "b")
    with pytest.raises(UsageError, match="1 \\(L\\) or 3 \\(RGB\\)"):
        EmitSpec(SHARPEN, (1, 1), (1, 1), (1, 1, 1, 1), "zeros", False, 4, "a", "b")
    with pytest.raises(UsageError, match="unknown padding mode"):
        EmitSpec(SHARPEN, (1, 1), (1, 1), (1, 1, 1, 1), "bogus", False, 3, "a", "b")


@pytest.mark.parametrize("args", [
    ["edges", "--direction", "vertical"],  # the command's own default: --range abs
    ["filter", "-k", "sobel-x", "--range", "normalize"],
    ["filter", "-k", "sharpen", "--range", "abs"],
    ["blur", "--size", "5"],  # clip
], ids=["edges-default-abs", "normalize", "abs", "clip"])
def test_cli_emit_carries_the_runs_range(args: list[str], images: dict[str, Path], tmp_path: Path) -> None:
    """The emitted scipy program writes the pixels the same command writes (within a rounding tie)."""
    from click.testing import CliRunner

    from convcli.cli import cli

    src, ours, theirs = images["RGB"], tmp_path / "ours.png", tmp_path / "theirs.png"
    cmd = [args[0], str(src), *args[1:]]
    r = CliRunner().invoke(cli, [*cmd, "-o", str(ours), "-q"], catch_exceptions=False)
    assert r.exit_code == 0, r.stderr
    r = CliRunner().invoke(cli, [*cmd, "-o", str(theirs), "--emit", "scipy"], catch_exceptions=False)
    assert r.exit_code == 0, r.stderr
    _run_python(r.stdout)
    a = np.asarray(Image.open(ours)).astype(int)
    b = np.asarray(Image.open(theirs)).astype(int)
    assert a.shape == b.shape and np.abs(a - b).max() <= 1 and np.mean(a != b) < 0.01


@pytest.mark.parametrize("times", [2, 3])
def test_cli_emit_repeats_downsample_times(times: int, images: dict[str, Path], tmp_path: Path) -> None:
    """downsample --times N: the program applies the stage N times (it applied it once before)."""
    from click.testing import CliRunner

    from convcli.cli import cli

    src, ours, theirs = images["RGB"], tmp_path / "ours.png", tmp_path / "theirs.png"
    cmd = ["downsample", str(src), "--factor", "2", "--times", str(times)]
    assert CliRunner().invoke(cli, [*cmd, "-o", str(ours), "-q"]).exit_code == 0
    r = CliRunner().invoke(cli, [*cmd, "-o", str(theirs), "--emit", "scipy"], catch_exceptions=False)
    assert r.exit_code == 0, r.stderr
    _run_python(r.stdout)
    a, b = (np.asarray(Image.open(p)).astype(int) for p in (ours, theirs))
    assert a.shape == b.shape and np.abs(a - b).max() <= 1


@pytest.mark.parametrize(("extra", "phrase"), [
    (["--linear-light"], "--linear-light"),
    (["--bit-depth", "16"], "--bit-depth 16"),
    (["--bit-depth", "float", "-o", "x.npy"], "--bit-depth float"),
    # flags about the run, dropped in silence: stdout was Python source under --json
    (["--json"], "so --json has nothing to act on"),
    (["--montage", "m.png", "--dry-run"], "so --dry-run, --montage have nothing to act on"),
    (["--dask", "tcp://127.0.0.1:1"], "so --dask has"),
])
def test_cli_emit_refuses_what_the_program_would_not_do(extra: list[str], phrase: str,
                                                       images: dict[str, Path]) -> None:
    from click.testing import CliRunner

    from convcli.cli import cli

    r = CliRunner().invoke(cli, ["filter", str(images["RGB"]), "-k", "sharpen", *extra, "--emit", "scipy"])
    assert r.exit_code == 2 and phrase in r.stderr and r.stdout == ""


def test_cli_emit_refuses_a_16_bit_input_and_notes_alpha(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from convcli.cli import cli

    g16 = tmp_path / "g16.png"
    Image.fromarray(np.arange(48, dtype=np.uint16).reshape(6, 8) * 1000).save(g16)
    r = CliRunner().invoke(cli, ["filter", str(g16), "-k", "sharpen", "--emit", "scipy"])
    assert r.exit_code == 2 and "16-bit image" in r.stderr
    rgba = tmp_path / "rgba.png"
    Image.fromarray(np.full((6, 8, 4), 200, np.uint8), "RGBA").save(rgba)
    r = CliRunner().invoke(cli, ["filter", str(rgba), "-k", "sharpen", "--emit", "scipy"])
    assert r.exit_code == 0 and "alpha channel" in r.stderr and r.stdout.startswith("#!/usr/bin/env python3")
    quiet = CliRunner().invoke(cli, ["filter", str(rgba), "-k", "sharpen", "--emit", "scipy", "-q"])
    assert quiet.exit_code == 0 and quiet.stderr == "" and quiet.stdout == r.stdout  # -q: no note either


@pytest.mark.parametrize("problem", ["missing", "corrupt", "fifo"])
def test_cli_emit_fails_on_an_input_it_cannot_read(problem: str, tmp_path: Path) -> None:
    """The program is written for the input's channels and size: a missing or corrupt input was
    swallowed (a generic program, exit 0) where the run itself fails with exit 1."""
    import os

    from click.testing import CliRunner

    from convcli.cli import cli

    src = tmp_path / "in.png"
    if problem == "corrupt":
        src.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    elif problem == "fifo":
        os.mkfifo(src)
    r = CliRunner().invoke(cli, ["filter", str(src), "-k", "sharpen", "--emit", "scipy"])
    assert r.exit_code == 1 and r.stdout == ""
    assert f"input {src}:" in r.stderr and r.stderr.count("\n") == 1


@pytest.mark.parametrize(("pad", "size", "refused"), [
    ((5, 5, 4, 4), (6, 5), False),   # each pad at most the size less one: the crops are whole
    ((5, 5, 5, 5), (6, 5), True),    # left/right 5 on a width of 5
    ((6, 0, 0, 0), (6, 9), True),    # top 6 on a height of 6
])
def test_magick_refuses_mirrored_pads_too_large_for_the_image(pad: tuple[int, int, int, int],
                                                              size: tuple[int, int], refused: bool) -> None:
    """The mirrored crops of a reflection pad come out short when a pad is not smaller than the
    image, and the command printed would write a smaller image than convcli without a word."""
    k = np.ones((pad[0] + pad[1] + 1, pad[2] + pad[3] + 1))
    spec = EmitSpec(k, (1, 1), (1, 1), pad, "reflection", False, 3, "in.png", "out.png", image_size=size)
    if refused:
        with pytest.raises(UsageError, match="smaller than the image"):
            emit("magick", spec)
    else:
        assert "-crop 4x0+1+0" in emit("magick", spec)
    emit("scipy", spec)  # the library the refusal suggests writes it


@pytest.mark.parametrize(("args", "says"), [
    (("chain", "-i", "{cat}", "--emit", "scipy", "blur", "filter", "-k", "sharpen"),
     "a chain of 2 stages (blur, filter)"),
    (("edges", "{cat}", "--emit", "scipy"), "the edges magnitude, which combines two kernels"),
    (("sharpen", "{cat}", "--emit", "scipy"), "'sharpen', not a single kernel"),
])
def test_emit_says_why_a_command_is_not_one_kernel(args: tuple[str, ...], says: str) -> None:
    """0.3 told a blur+filter chain to 'use --direction vertical|horizontal'."""
    from click.testing import CliRunner

    from convcli.cli.app import cli

    cat = Path(__file__).parent.parent / "sample_images" / "cat224.png"
    r = CliRunner().invoke(cli, [a.format(cat=cat) for a in args])
    assert r.exit_code == 2
    assert says in r.stderr
    assert r.stderr.count("\n") == 1


@pytest.mark.parametrize("quality", [None, "60"])
def test_cli_emit_writes_jpeg_at_convclis_quality(quality: str | None, tmp_path: Path) -> None:
    """convcli writes JPEG at quality 90 (or --quality); the program saved with Pillow's default 75.
    On a photo the two files now decode to the same pixels."""
    from click.testing import CliRunner

    from convcli.cli import cli

    src = Path(__file__).parent.parent / "sample_images" / "chelsea.png"
    extra = ["-k", "sharpen", *(["--quality", quality] if quality else [])]
    ours, theirs = tmp_path / "ours.jpg", tmp_path / "theirs.jpg"
    r = CliRunner().invoke(cli, ["filter", str(src), "-o", str(ours), "-q", "--strip", *extra])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["filter", str(src), "-o", str(theirs), "--emit", "scipy", *extra])
    assert r.exit_code == 0, r.output
    assert f"quality={quality or 90}" in r.stdout
    _run_python(r.stdout)
    np.testing.assert_array_equal(np.asarray(Image.open(ours)), np.asarray(Image.open(theirs)))
    r = CliRunner().invoke(cli, ["filter", str(src), "-o", str(theirs), "--emit", "magick", *extra])
    assert f"-quality {quality or 90} " in r.stdout


@pytest.mark.parametrize(("args", "words"), [
    (["{d}/a.npy", "-o", "{d}/x.png"], ["input", "a.npy", ".npy array"]),
    (["{d}/a.png", "-o", "{d}/x.npy"], ["output", "x.npy", ".npy array"]),
    (["{d}/a.png", "{d}/a.png"], ["one input, got 2"]),
    (["{d}"], ["is a folder"]),
])
def test_cli_emit_refuses_inputs_and_outputs_the_program_cannot_take(args: list[str], words: list[str],
                                                                     tmp_path: Path) -> None:
    """A .npy input crashed the program (Image.open), a .npy output too (Image.save of floats), and
    a second input was dropped in silence: each is now one line, exit 2, before any code is printed."""
    from click.testing import CliRunner

    from convcli.cli import cli

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    np.save(tmp_path / "a.npy", np.zeros((8, 8, 3), np.float32))
    for lib in ("scipy", "magick"):
        r = CliRunner().invoke(cli, ["filter", *(a.format(d=tmp_path) for a in args), "-k", "sharpen",
                                     "--emit", lib])
        assert r.exit_code == 2 and r.stdout == ""
        for w in words:
            assert w in r.stderr


@pytest.mark.parametrize(("flags", "want"), [
    (["--format", "jpg"], "'output.jpg'"),
    (["--out-dir", "{d}/o"], "'{d}/o/a.sharpen.png'"),
    (["--out-dir", "{d}/o", "--name", "{{stem}}.jpg"], "'{d}/o/a.jpg'"),
    (["-o", "{d}/x.webp"], "'{d}/x.webp'"),
    (["-o", "-"], "'output.png'"),  # was OUTPUT = '-': Pillow's save('-') raises, no file name to change
    (["-o", "-", "--format", "jpg"], "'output.jpg'"),
])
def test_cli_emit_writes_the_file_convcli_would(flags: list[str], want: str, tmp_path: Path) -> None:
    """--format, --out-dir and --name were dropped: the program wrote output.png (with a JPEG quality
    under --format jpg). Expected names worked out from the README's naming rule."""
    from click.testing import CliRunner

    from convcli.cli import cli

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    args = [f.format(d=tmp_path) for f in flags]
    r = CliRunner().invoke(cli, ["filter", str(tmp_path / "a.png"), "-k", "sharpen", *args,
                                 "--emit", "scipy"])
    assert r.exit_code == 0, r.output
    assert f"OUTPUT = {want.format(d=tmp_path)}" in r.stdout
    assert not (tmp_path / "o").exists()  # emitting writes nothing


@pytest.mark.parametrize("flags", [["--format", "npy"], ["--format", "jpg", "-o", "x.png"]])
def test_cli_emit_refuses_format_flags_a_run_refuses(flags: list[str], tmp_path: Path) -> None:
    from click.testing import CliRunner

    from convcli.cli import cli

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    r = CliRunner().invoke(cli, ["filter", str(tmp_path / "a.png"), "-k", "sharpen", *flags,
                                 "--emit", "scipy"])
    assert r.exit_code == 2 and r.stdout == ""


@pytest.mark.parametrize(("mode", "pad", "fits"), [
    ("reflection", (8, 8, 10, 10), True),      # each pad smaller than the side (9 x 11): torch pads it
    ("reflection", (9, 9, 1, 1), False),       # a pad as tall as the image: torch refuses it
    ("circular", (9, 9, 11, 11), True),        # as wide as the image: still one wrap
    ("circular", (10, 10, 1, 1), False),       # wider: wraps around more than once
])
def test_torch_pads_wider_than_torch_takes_are_made_with_numpy(mode: str, pad: tuple[int, int, int, int],
                                                               fits: bool, images: dict[str, Path],
                                                               tmp_path: Path) -> None:
    """torch refuses a reflect pad not smaller than the input and a circular pad wider than it ("Padding
    size should be less than the corresponding input dimension", "wrapping around more than once"): the
    program pads with numpy first then, as it does for modes torch lacks."""
    k = np.ones((pad[0] + pad[1] + 1, pad[2] + pad[3] + 1)) / ((pad[0] + pad[1] + 1) * (pad[2] + pad[3] + 1))
    spec = EmitSpec(k, (1, 1), (1, 1), pad, mode, False, 3, str(images["RGB"]), str(tmp_path / "o.png"),
                    image_size=(9, 11))
    code = emit("torch", spec)
    assert ("np.pad(" not in code) == fits
    if importlib.util.find_spec("torch") is not None:
        out = _run_python(code)["out"]
        np.testing.assert_allclose(out, _reference(spec), rtol=1e-4, atol=1e-3)


def test_a_compass_operator_is_refused_with_advice_that_works(images: dict[str, Path],
                                                              tmp_path: Path) -> None:
    """--operator kirsch --emit said 'the edges magnitude, which combines two kernels; use --direction',
    and --direction then said 'kirsch takes the maximum over 8 directions; drop --direction'."""
    from click.testing import CliRunner

    from convcli.cli import cli

    src = str(images["RGB"])
    r = CliRunner().invoke(cli, ["edges", src, "--operator", "kirsch", "--emit", "scipy", "-o", "x.png"])
    assert r.exit_code == 2 and "8 rotated kernels" in r.stderr and "kirsch@90" in r.stderr
    r = CliRunner().invoke(cli, ["filter", src, "-k", "kirsch@90", "--emit", "scipy",
                                 "-o", str(tmp_path / "x.png")])
    assert r.exit_code == 0 and "scipy.ndimage" in r.stdout


@pytest.mark.parametrize("target", ["same", "link", "template"])
def test_cli_emit_refuses_a_program_that_writes_over_its_input(target: str, tmp_path: Path) -> None:
    """-o a.png for a.png is refused by a run (exit 2); --emit printed a program that overwrote a.png."""
    from click.testing import CliRunner

    from convcli.cli import cli

    src = tmp_path / "a.png"
    Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(src)
    (tmp_path / "lnk.png").symlink_to(src)
    flags = {"same": ["-o", str(src)], "link": ["-o", str(tmp_path / "lnk.png")],
             "template": ["--name", "{stem}{ext}"]}[target]
    r = CliRunner().invoke(cli, ["filter", str(src), "-k", "sharpen", *flags, "--emit", "scipy"])
    assert r.exit_code == 2 and "would overwrite the input" in r.stderr and r.stdout == ""
