"""The command line as a user drives it: CliRunner on tmp_path, checked against independent references.

Every number here is computed in the test with float64 NumPy and ``scipy.ndimage`` (padding modes
mapped by the README 'numbers' table, written out below), never by convcli. Reports are read with
``json.loads`` from ``result.stdout``; ``result.stderr`` and ``result.exit_code`` are asserted
separately (Click >= 8.2 keeps the two streams apart).
"""

from __future__ import annotations

import importlib.metadata
import io
import json
import math
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any

import click
import numpy as np
import pytest
import scipy.ndimage as ndi
from click.testing import CliRunner, Result
from PIL import Image

from convcli.cli import cli

ROOT = Path(__file__).resolve().parent.parent
CAT = ROOT / "sample_images" / "cat224.png"
README = ROOT / "README.md"

#: README 'numbers': convcli mode -> scipy.ndimage mode.
SCIPY_MODE = {"zeros": "constant", "border": "nearest", "reflection": "mirror", "symmetric": "reflect",
              "circular": "wrap"}
#: README 'numbers': convcli mode -> numpy.pad mode.
NUMPY_MODE = {"zeros": "constant", "border": "edge", "reflection": "reflect", "symmetric": "symmetric",
              "circular": "wrap"}
#: README 'numbers' aliases.
ALIASES = {"constant": "zeros", "replicate": "border", "edge": "border", "nearest": "border",
           "reflect": "reflection", "mirror": "reflection", "reflect101": "reflection", "wrap": "circular"}
#: README 'numbers' table, column by column: numpy.pad, scipy.ndimage, OpenCV, PyTorch (None: no such mode).
SPEC_TABLE = {
    "zeros": ("constant", "constant", "BORDER_CONSTANT", "zeros"),
    "border": ("edge", "nearest", "BORDER_REPLICATE", "replicate"),
    "reflection": ("reflect", "mirror", "BORDER_REFLECT_101", "reflect"),
    "symmetric": ("symmetric", "reflect", "BORDER_REFLECT", None),
    "circular": ("wrap", "wrap", "BORDER_WRAP", "circular"),
}
#: README 'Kernels': the registry must hold at least these.
SPEC_KERNELS = ["identity", "sharpen", "gaussian3", "gaussian5", "box3", "box5", "edge-vertical",
                "edge-horizontal", "sobel-x", "sobel-y", "scharr-x", "scharr-y", "laplacian", "emboss",
                "outline"]

SHARPEN = np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], dtype=np.float64)
GAUSS3 = np.outer([1, 2, 1], [1, 2, 1]) / 16.0
K_V = np.array([[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]], dtype=np.float64)  # the lecture's K_v (Prewitt x)
K_H = K_V.T.copy()  # K_h (Prewitt y)
LUMA = np.array([0.299, 0.587, 0.114])  # ITU-R 601-2


# --------------------------------------------------------------------------- helpers


def run(*args: Any) -> Result:
    """Invoke ``convcli ARGS``; never lets an exception escape unnoticed."""
    result = CliRunner().invoke(cli, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"convcli {args} raised {result.exception!r}\n{result.stderr}")
    return result


def ok(*args: Any) -> Result:
    result = run(*args)
    assert result.exit_code == 0, result.stderr
    return result


def records(result: Result) -> list[dict[str, Any]]:
    """The JSON Lines report on stdout, one object per line."""
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def one_error_line(result: Result) -> str:
    """stderr holds exactly one line (besides a batch summary such as "convcli: 1 done, 1 failed ...")
    and no traceback; that line says error. Returns it."""
    assert "Traceback" not in result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip() and not re.match(r"convcli: \d+ done", ln)]
    assert len(lines) == 1, result.stderr
    assert "error" in lines[0].lower()
    return lines[0]


def save(arr: np.ndarray, path: Path, **params: Any) -> Path:
    Image.fromarray(arr).save(path, **params)
    return path


def load(path: Path | str) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im)


def cat_crop(h: int = 40, w: int = 52) -> np.ndarray:
    """A real photo, non-square so that H and W cannot be confused."""
    return load(CAT)[70:70 + h, 90:90 + w].copy()


@pytest.fixture
def cat(tmp_path: Path) -> Path:
    return save(cat_crop(), tmp_path / "cat.png")


def corr(x: np.ndarray, k: np.ndarray, mode: str = "reflection", flip: bool = False) -> np.ndarray:
    """Float64 per-channel cross-correlation (or convolution) with scipy, 'same' size."""
    f = ndi.convolve if flip else ndi.correlate
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 2:
        return f(x, k, mode=SCIPY_MODE[mode])
    return np.stack([f(x[..., c], k, mode=SCIPY_MODE[mode]) for c in range(x.shape[2])], axis=-1)


def corr_geometry(x: np.ndarray, k: np.ndarray, mode: str, pad4: tuple[int, int, int, int],
                  stride: tuple[int, int], dilation: tuple[int, int]) -> np.ndarray:
    """README 'numbers' formula via scipy: pad by (T, B, L, R), dilate the kernel, correlate, keep the valid
    part, sample every stride-th pixel. Odd kernels only (their centre is unambiguous)."""
    t, b, lft, r = pad4
    kd = np.zeros((dilation[0] * (k.shape[0] - 1) + 1, dilation[1] * (k.shape[1] - 1) + 1))
    kd[::dilation[0], ::dilation[1]] = k
    cy, cx = kd.shape[0] // 2, kd.shape[1] // 2
    x = np.asarray(x, dtype=np.float64)
    chans = []
    for c in range(x.shape[2]):
        p = np.pad(x[..., c], ((t, b), (lft, r)), mode=NUMPY_MODE[mode])
        full = ndi.correlate(p, kd, mode="constant")
        valid = full[cy:p.shape[0] - (kd.shape[0] - 1 - cy), cx:p.shape[1] - (kd.shape[1] - 1 - cx)]
        chans.append(valid[::stride[0], ::stride[1]])
    return np.stack(chans, axis=-1)


def quantize(v: np.ndarray, maxval: int = 255) -> np.ndarray:
    """README 'numbers' clip: round half to even, clip to the output range."""
    return np.clip(np.rint(v), 0, maxval).astype(np.uint8 if maxval == 255 else np.uint16)


def assert_quantized(out: np.ndarray, ref: np.ndarray, maxval: int = 255) -> None:
    """``out`` equals the quantised float64 ``ref`` exactly, except within 1e-3 of a rounding tie,
    where float32 arithmetic may legitimately land on the other side (then by at most 1)."""
    ref = np.asarray(ref, dtype=np.float64)
    assert out.shape == ref.shape
    expected = quantize(ref, maxval).astype(np.int64)
    diff = np.abs(out.astype(np.int64) - expected)
    near_tie = np.abs(ref - np.floor(ref) - 0.5) < 1e-3
    assert np.all(diff[~near_tie] == 0), f"{np.count_nonzero(diff[~near_tie])} pixels differ"
    assert np.all(diff <= 1)


def axis_arithmetic(n: int, k: int, s: int, d: int, before: int, after: int) -> str:
    """The README 'report' arithmetic string, computed here from the formula of README 'numbers'."""
    out = (n + before + after - d * (k - 1) - 1) // s + 1
    return f"({n} + {before} + {after} - {d}*({k}-1) - 1) // {s} + 1 = {out}"


def pair(v: Any) -> list[int]:
    """A report value that is N for equal axes or [Y, X] otherwise, as [Y, X]."""
    return list(v) if isinstance(v, list) else [v, v]


# ------------------------------------------------------------------ the JSON report (README 'report')


def test_json_report_schema_and_arithmetic_for_three_downsamples(tmp_path: Path) -> None:
    src = save(load(CAT)[:64, :64].copy(), tmp_path / "cat.png")
    result = ok("downsample", src, "--times", 3, "--json")
    assert result.stderr == ""
    (rec,) = records(result)
    keys = {"input", "output", "status", "input_shape", "output_shape", "stages", "seconds", "range"}
    assert keys <= set(rec)
    assert rec["status"] == "ok"
    assert rec["input"] == str(src)
    assert rec["output"] == str(tmp_path / "cat.down8.png")
    assert rec["input_shape"] == [1, 3, 64, 64]
    assert rec["output_shape"] == [1, 3, 8, 8]
    assert isinstance(rec["seconds"], float) and rec["seconds"] >= 0
    assert set(rec["range"]) == {"policy", "min", "max", "clipped_fraction"}
    assert all(isinstance(rec["range"][key], float) for key in ("min", "max", "clipped_fraction"))
    assert len(rec["stages"]) == 3
    n = 64
    for i, (st, rf, jump) in enumerate(zip(rec["stages"], (3, 7, 15), (2, 4, 8), strict=True)):
        assert {"op", "kernel", "kernel_size", "stride", "dilation", "padding", "pad", "input_shape",
                "output_shape", "arithmetic", "receptive_field", "jump"} <= set(st), i
        assert st["op"] == "downsample"
        assert st["kernel"] == "gaussian3"
        assert st["kernel_size"] == [3, 3]
        assert st["stride"] == [2, 2]
        assert st["dilation"] == [1, 1]
        assert st["padding"] == "reflection"
        assert st["pad"] == [1, 1, 1, 1]
        assert all(isinstance(v, int) for key in ("kernel_size", "stride", "dilation", "pad", "input_shape",
                                                   "output_shape") for v in st[key])
        out = (n + 1 + 1 - 1 * (3 - 1) - 1) // 2 + 1
        assert st["input_shape"] == [1, 3, n, n]
        assert st["output_shape"] == [1, 3, out, out]
        assert st["arithmetic"] == axis_arithmetic(n, 3, 2, 1, 1, 1)
        assert pair(st["receptive_field"]) == [rf, rf]
        assert pair(st["jump"]) == [jump, jump]
        n = out
    assert (tmp_path / "cat.down8.png").exists()
    assert load(tmp_path / "cat.down8.png").shape == (8, 8, 3)


def test_json_arithmetic_names_both_axes_of_a_non_square_image(cat: Path) -> None:
    (rec,) = records(ok("filter", cat, "-k", "box5", "-s", "2,3", "-d", "1,2", "--json", "--dry-run"))
    (st,) = rec["stages"]
    # box5, dilation (1, 2): same padding totals 4 and 8
    assert st["pad"] == [2, 2, 4, 4]
    assert axis_arithmetic(40, 5, 2, 1, 2, 2) in st["arithmetic"]
    assert axis_arithmetic(52, 5, 3, 2, 4, 4) in st["arithmetic"]
    assert rec["output_shape"] == [1, 3, (40 + 4 - 4 - 1) // 2 + 1, (52 + 8 - 8 - 1) // 3 + 1]
    assert pair(st["receptive_field"]) == [5, 9]
    assert pair(st["jump"]) == [2, 3]


def test_json_range_block_matches_float64_scipy(cat: Path) -> None:
    (rec,) = records(ok("filter", cat, "-k", "sharpen", "--json"))
    ref = corr(cat_crop(), SHARPEN)
    r = rec["range"]
    assert r["policy"] == "clip"
    assert r["min"] == pytest.approx(ref.min(), rel=1e-4, abs=1e-3)
    assert r["max"] == pytest.approx(ref.max(), rel=1e-4, abs=1e-3)
    rounded = np.rint(ref)
    clipped = np.count_nonzero((rounded < 0) | (rounded > 255)) / ref.size
    assert clipped > 0  # sharpen on a photo overshoots: the check below is not vacuous
    assert r["clipped_fraction"] == pytest.approx(clipped, abs=1e-12)


def test_json_range_block_for_abs_and_normalize(cat: Path, tmp_path: Path) -> None:
    ref = corr(cat_crop(), K_V)
    (rec,) = records(ok("filter", cat, "-k", "edge-vertical", "--range", "abs", "--json", "-o",
                        tmp_path / "a.png"))
    assert rec["range"]["policy"] == "abs"
    assert rec["range"]["min"] == pytest.approx(ref.min(), abs=1e-3)  # float min before quantisation
    assert rec["range"]["max"] == pytest.approx(ref.max(), abs=1e-3)
    over = np.count_nonzero(np.rint(np.abs(ref)) > 255) / ref.size
    assert rec["range"]["clipped_fraction"] == pytest.approx(over, abs=1e-12)
    (rec,) = records(ok("filter", cat, "-k", "edge-vertical", "--range", "normalize", "--json", "-o",
                        tmp_path / "n.png"))
    assert rec["range"]["policy"] == "normalize"
    assert rec["range"]["clipped_fraction"] == 0


def test_dry_run_reports_from_the_header_and_decodes_nothing(tmp_path: Path) -> None:
    good = save(cat_crop(30, 20), tmp_path / "c.png")
    data = bytearray(good.read_bytes())
    idat = data.index(b"IDAT")
    data[idat + 4: idat + 40] = bytes(36)  # header intact, compressed pixel data destroyed
    bad = tmp_path / "corrupt.png"
    bad.write_bytes(bytes(data))
    # without --dry-run the file really is unreadable ...
    result = run("filter", bad, "-k", "sharpen", "-o", tmp_path / "x.png")
    assert result.exit_code == 1
    assert "corrupt.png" in one_error_line(result)
    assert not (tmp_path / "x.png").exists()
    # ... and --dry-run reports its shapes all the same, because it never decodes the pixels
    result = ok("downsample", bad, "--dry-run", "--json")
    (rec,) = records(result)
    assert rec["status"] == "ok"
    assert rec["input_shape"] == [1, 3, 30, 20]
    assert rec["output_shape"] == [1, 3, 15, 10]
    assert "range" not in rec
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.png", "corrupt.png"]


def test_quiet_prints_nothing_and_plain_report_without_json(cat: Path) -> None:
    assert ok("filter", cat, "-k", "sharpen", "--quiet").stdout == ""
    text = ok("filter", cat, "-k", "sharpen").stdout
    assert "[1, 3, 40, 52]" in text
    assert axis_arithmetic(40, 3, 1, 1, 1, 1) in text


# --------------------------------------------------------------------------- exit statuses and errors


def test_missing_input_exits_1_and_the_good_one_is_still_written(cat: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nope.png"
    result = run("filter", missing, cat, "-k", "sharpen", "--json")
    assert result.exit_code == 1
    line = one_error_line(result)
    assert "nope.png" in line
    recs = records(result)
    assert len(recs) == 2
    (err,) = [r for r in recs if r["status"] != "ok"]
    (good,) = [r for r in recs if r["status"] == "ok"]
    assert set(err) == {"input", "status", "error"}
    assert err["status"] == "error" and err["input"] == str(missing) and "\n" not in err["error"]
    assert good["input"] == str(cat)
    assert load(tmp_path / "cat.sharpen.png").shape == (40, 52, 3)


@pytest.mark.parametrize(
    ("args", "phrases"),
    [
        (["-k", "sharpx"], ["sharpx", "did you mean", "sharpen"]),
        (["-k", "1 2 3; 4 5"], ["row 2"]),
        (["-k", "1 2; 3 x"], ["row 2"]),
        (["-k", "1 nan; 1 1"], ["row 1"]),
        (["-k", "0 1; 1 -2", "--normalize"], ["sum"]),
        (["-k", "sharpen", "-p", "bogus"], ["bogus"]),
        (["-k", "sharpen", "-s", "0"], ["stride"]),
        (["-k", "sharpen", "-d", "0"], ["dilation"]),
        (["-k", "sharpen", "-p", "valid", "--pad", "1"], ["valid"]),
        (["-k", "sharpen", "--pad", "1,2,3"], ["--pad"]),
        (["-k", "sharpen", "-o", "out.png", "EXTRA"], ["one input"]),
    ],
)
def test_usage_errors_exit_2_with_one_line(cat: Path, tmp_path: Path, args: list[str],
                                          phrases: list[str]) -> None:
    argv = ["filter", cat, *[str(cat) if a == "EXTRA" else a for a in args]]
    result = run(*argv)
    assert result.exit_code == 2, result.stderr
    line = one_error_line(result)
    for phrase in phrases:
        assert phrase in line
    assert result.stdout == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cat.png"]


def test_impossible_shape_exits_2_showing_the_users_numbers(tmp_path: Path) -> None:
    src = save(np.full((4, 9), 50, np.uint8), tmp_path / "tiny.png")
    result = run("filter", src, "-k", "box5", "-p", "valid")
    assert result.exit_code == 2
    line = one_error_line(result)
    assert "tiny.png" in line
    assert axis_arithmetic(4, 5, 1, 1, 0, 0) in line  # "(4 + 0 + 0 - 1*(5-1) - 1) // 1 + 1 = 0"
    assert axis_arithmetic(4, 5, 1, 1, 0, 0).endswith("= 0")
    assert not (tmp_path / "tiny.box5.png").exists()
    # the same with dilation and stride: the numbers shown are the user's
    result = run("filter", src, "-k", "sharpen", "-p", "zeros", "--pad", "0,1", "-d", "3,1", "-s", "2")
    assert result.exit_code == 2
    assert axis_arithmetic(4, 3, 2, 3, 0, 0) in one_error_line(result)
    # a later stage of --times: 8 -> 3 -> 1 -> empty, and the message says which stage
    src = save(np.full((8, 8), 50, np.uint8), tmp_path / "eight.png")
    result = run("downsample", src, "-p", "valid", "--times", 3)
    assert result.exit_code == 2
    line = one_error_line(result)
    assert "3" in line.split("downsample")[0] and axis_arithmetic(1, 3, 2, 1, 0, 0) in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eight.png", "tiny.png"]


def test_unknown_output_extension_is_a_usage_error(cat: Path, tmp_path: Path) -> None:
    result = run("filter", cat, "-k", "sharpen", "-o", tmp_path / "out.xyz")
    assert result.exit_code == 2
    assert ".xyz" in one_error_line(result)


# --------------------------------------------------------------------------- output names


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (["filter", "-k", "sharpen"], "cat.sharpen.png"),
        (["filter", "-k", "emboss"], "cat.emboss.png"),
        (["blur"], "cat.blur.png"),
        (["edges"], "cat.edges.png"),
        (["downsample"], "cat.down2.png"),
        (["downsample", "--times", "2"], "cat.down4.png"),
    ],
)
def test_default_output_names_beside_the_input(cat: Path, tmp_path: Path, args: list[str], name: str) -> None:
    (rec,) = records(ok(*args[:1], cat, *args[1:], "--json"))
    assert rec["output"] == str(tmp_path / name)
    assert (tmp_path / name).is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["cat.png", name])


def test_output_option_out_dir_name_template_and_format(cat: Path, tmp_path: Path) -> None:
    ok("filter", cat, "-k", "sharpen", "-o", tmp_path / "explicit.png")
    assert load(tmp_path / "explicit.png").shape == (40, 52, 3)

    out_dir = tmp_path / "new" / "deeper"
    (rec,) = records(ok("blur", cat, "--out-dir", out_dir, "--json"))
    assert rec["output"] == str(out_dir / "cat.blur.png")
    assert (out_dir / "cat.blur.png").is_file()

    ok("filter", cat, "-k", "sharpen", "--name", "{op}-of-{stem}{ext}")
    assert (tmp_path / "sharpen-of-cat.png").is_file()

    ok("filter", cat, "-k", "sharpen", "--format", "jpeg")
    with Image.open(tmp_path / "cat.sharpen.jpg") as im:
        assert im.format == "JPEG" and im.size == (52, 40)
    assert not (tmp_path / "cat.sharpen.png").exists()


def test_two_inputs_with_out_dir(tmp_path: Path) -> None:
    a = save(cat_crop(20, 20), tmp_path / "a.png")
    b = save(cat_crop(24, 16), tmp_path / "b.png")
    result = ok("edges", a, b, "--out-dir", tmp_path / "out", "--json")
    # one record per input; with parallel jobs they may come in completion order
    assert sorted(r["output"] for r in records(result)) == [str(tmp_path / "out" / "a.edges.png"),
                                                           str(tmp_path / "out" / "b.edges.png")]
    assert load(tmp_path / "out" / "b.edges.png").shape == (24, 16)


def test_npy_output_holds_the_raw_float_values(cat: Path, tmp_path: Path) -> None:
    ok("filter", cat, "-k", "sharpen", "-o", tmp_path / "raw.npy")
    arr = np.load(tmp_path / "raw.npy")
    assert arr.dtype == np.float32 and arr.shape == (40, 52, 3)
    np.testing.assert_allclose(arr, corr(cat_crop(), SHARPEN), rtol=1e-5, atol=1e-3)
    assert arr.min() < 0 and arr.max() > 255  # not mapped to pixels


def test_stdin_to_stdout_with_the_report_on_stderr(tmp_path: Path) -> None:
    x = cat_crop(20, 24)
    src = save(x, tmp_path / "in.png")
    result = CliRunner().invoke(cli, ["filter", "-", "-k", "sharpen", "-o", "-", "--json"],
                                input=src.read_bytes())
    assert result.exit_code == 0, result.stderr
    assert result.stdout_bytes.startswith(b"\x89PNG\r\n\x1a\n")  # only the image on stdout
    out = np.asarray(Image.open(io.BytesIO(result.stdout_bytes)))
    np.testing.assert_array_equal(out, quantize(corr(x, SHARPEN)))
    (rec,) = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert rec["input"] == "-" and rec["output_shape"] == [1, 3, 20, 24]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png"]


def test_unwritable_output_exits_1_and_the_input_is_never_overwritten(cat: Path, tmp_path: Path) -> None:
    before = cat.read_bytes()
    result = run("filter", cat, "-k", "sharpen", "-o", cat / "x.png")  # a folder path through a file
    assert result.exit_code == 1
    assert "cat.png" in one_error_line(result) and "not a directory" in one_error_line(result)
    for args in (["-o", cat], ["--name", "{stem}{ext}"]):
        result = run("filter", cat, "-k", "sharpen", *args)
        assert result.exit_code == 2
        assert "overwrite" in one_error_line(result)
    assert cat.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cat.png"]
    # a missing folder of -o is created, as --out-dir is
    ok("filter", cat, "-k", "sharpen", "-o", tmp_path / "new" / "deeper" / "x.png", "-q")
    assert (tmp_path / "new" / "deeper" / "x.png").is_file() and cat.read_bytes() == before


# --------------------------------------------------------------------------- numbers: filter


@pytest.mark.parametrize("mode", [*SCIPY_MODE, *ALIASES])
def test_sharpen_equals_scipy_for_every_padding_mode_and_alias(tmp_path: Path, mode: str) -> None:
    x = cat_crop(24, 30)
    src = save(x, tmp_path / "in.png")
    ok("filter", src, "-k", "sharpen", "-p", mode, "-o", tmp_path / "out.png", "-q")
    expected = quantize(corr(x, SHARPEN, ALIASES.get(mode, mode)))
    np.testing.assert_array_equal(load(tmp_path / "out.png"), expected)


def test_sharpen_default_padding_is_reflection(cat: Path, tmp_path: Path) -> None:
    ok("filter", cat, "-k", "sharpen", "-q")
    out = load(tmp_path / "cat.sharpen.png")
    np.testing.assert_array_equal(out, quantize(corr(cat_crop(), SHARPEN, "reflection")))
    assert not np.array_equal(out, quantize(corr(cat_crop(), SHARPEN, "zeros")))  # the test can tell


def test_valid_padding_shrinks_and_matches_scipy(cat: Path, tmp_path: Path) -> None:
    ok("filter", cat, "-k", "sharpen", "-p", "valid", "-o", tmp_path / "v.png")
    out = load(tmp_path / "v.png")
    assert out.shape == (38, 50, 3)
    np.testing.assert_array_equal(out, quantize(corr(cat_crop(), SHARPEN)[1:-1, 1:-1]))


@pytest.mark.parametrize(
    ("mode", "stride", "dilation", "pad"),
    [
        ("reflection", "2", "1", None),
        ("zeros", "2,3", "1", "1"),
        ("border", "1", "2", None),
        ("symmetric", "3", "2,1", "2,0,1,3"),
        ("circular", "2", "1,2", "0,2,3,1"),
        ("zeros", "1", "3", "1,2"),
    ],
)
def test_stride_dilation_and_pad_against_scipy(tmp_path: Path, mode: str, stride: str, dilation: str,
                                               pad: str | None) -> None:
    x = cat_crop(26, 33)
    src = save(x, tmp_path / "in.png")
    k_literal = "1 2 0; -1 4 1; 0 -2 1"  # asymmetric and integer: exact in float32
    k = np.array([[1, 2, 0], [-1, 4, 1], [0, -2, 1]], dtype=np.float64)
    s = tuple(int(v) for v in (stride.split(",") * 2)[:2])
    d = tuple(int(v) for v in (dilation.split(",") * 2)[:2])
    if pad is None:
        ty, tx = d[0] * 2, d[1] * 2
        pad4 = (ty // 2, ty - ty // 2, tx // 2, tx - tx // 2)
    else:
        p = [int(v) for v in pad.split(",")]
        pad4 = (p[0],) * 4 if len(p) == 1 else (p[0], p[0], p[1], p[1]) if len(p) == 2 else tuple(p)
    args = ["filter", src, "-k", k_literal, "-p", mode, "-s", stride, "-d", dilation,
            "-o", tmp_path / "o.png", "--json"]
    if pad is not None:
        args += ["--pad", pad]
    (rec,) = records(ok(*args))
    expected = quantize(corr_geometry(x, k, mode, pad4, s, d))  # type: ignore[arg-type]
    out = load(tmp_path / "o.png")
    assert rec["output_shape"] == [1, 3, *expected.shape[:2]]
    assert rec["stages"][0]["pad"] == list(pad4)
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("mode", list(NUMPY_MODE))
def test_kernel_larger_than_the_image(tmp_path: Path, mode: str) -> None:
    """scipy's hard case: a 9x9 kernel on a 5x6 image pads by more than the image on each side."""
    x = cat_crop(5, 6)
    src = save(x, tmp_path / "tiny.png")
    k = np.random.default_rng(3).integers(-2, 3, size=(9, 9)).astype(np.float64)
    literal = "; ".join(" ".join(str(int(v)) for v in row) for row in k)
    ok("filter", src, "-k", literal, "-p", mode, "-o", tmp_path / "o.png")
    expected = quantize(corr_geometry(x, k, mode, (4, 4, 4, 4), (1, 1), (1, 1)))
    np.testing.assert_array_equal(load(tmp_path / "o.png"), expected)


@pytest.mark.parametrize("method", ["auto", "direct", "separable", "fft", "im2col"])
def test_every_engine_method_gives_the_reference(tmp_path: Path, method: str) -> None:
    x = cat_crop(30, 41)
    src = save(x, tmp_path / "in.png")
    g5 = np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1]) / 256.0
    ok("filter", src, "-k", "gaussian5", "-s", 2, "--method", method, "-o", tmp_path / "o.png")
    assert_quantized(load(tmp_path / "o.png"), corr(x, g5)[::2, ::2])
    if method != "separable":
        ok("filter", src, "-k", "sharpen", "--method", method, "--float64", "-o", tmp_path / "s.png")
        np.testing.assert_array_equal(load(tmp_path / "s.png"), quantize(corr(x, SHARPEN)))


def test_separable_method_refuses_a_non_separable_kernel(cat: Path) -> None:
    result = run("filter", cat, "-k", "sharpen", "--method", "separable")
    assert result.exit_code == 2
    assert "rank" in one_error_line(result)


@pytest.mark.parametrize(("literal", "k"), [("1 2; 3 -1", [[1, 2], [3, -1]]), ("1 -2 0 3", [[1, -2, 0, 3]])])
def test_even_and_non_square_kernels_pad_after_more(tmp_path: Path, literal: str, k: list[list[int]]) -> None:
    """README 'numbers' same padding: total k-1, before = total // 2 (so 0 before and 1 after for k = 2)."""
    x = cat_crop(21, 26).astype(np.float64)
    src = save(cat_crop(21, 26), tmp_path / "in.png")
    kk = np.array(k, dtype=np.float64)
    (rec,) = records(ok("filter", src, "-k", literal, "-o", tmp_path / "o.png", "--json"))
    (ty, tx) = kk.shape[0] - 1, kk.shape[1] - 1
    pad4 = (ty // 2, ty - ty // 2, tx // 2, tx - tx // 2)
    assert rec["stages"][0]["pad"] == list(pad4)
    p = np.pad(x, ((pad4[0], pad4[1]), (pad4[2], pad4[3]), (0, 0)), mode="reflect")
    ref = sum(kk[i, j] * p[i:i + 21, j:j + 26] for i in range(kk.shape[0]) for j in range(kk.shape[1]))
    np.testing.assert_array_equal(load(tmp_path / "o.png"), quantize(ref))


def test_flip_equals_scipy_convolve(cat: Path, tmp_path: Path) -> None:
    ok("filter", cat, "-k", "emboss", "--flip", "-o", tmp_path / "f.png")
    emboss = np.array([[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], dtype=np.float64)
    expected = quantize(corr(cat_crop(), emboss, flip=True))
    np.testing.assert_array_equal(load(tmp_path / "f.png"), expected)
    assert not np.array_equal(expected, quantize(corr(cat_crop(), emboss)))  # flipping matters here


def test_normalize_scale_and_bias(cat: Path, tmp_path: Path) -> None:
    x = cat_crop()
    ok("filter", cat, "-k", "1 2 1; 2 4 2; 1 2 1", "--normalize", "-o", tmp_path / "n.png")
    np.testing.assert_array_equal(load(tmp_path / "n.png"), quantize(corr(x, GAUSS3)))
    ok("filter", cat, "-k", "sharpen", "--scale", "0.5", "-o", tmp_path / "s.png")
    np.testing.assert_array_equal(load(tmp_path / "s.png"), quantize(corr(x, SHARPEN * 0.5)))
    # x + 10.5 lands on ties everywhere: round half to even, as README 'numbers' says
    ok("filter", cat, "-k", "identity", "--bias", "10.5", "-o", tmp_path / "b.png")
    expected = quantize(x.astype(np.float64) + 10.5)
    assert not np.array_equal(expected, np.clip(np.floor(x + 11.0), 0, 255))  # half-even != half-up
    np.testing.assert_array_equal(load(tmp_path / "b.png"), expected)
    ok("filter", cat, "-k", "sharpen", "--scale", "0.25", "--bias", "-3", "-o", tmp_path / "sb.png")
    np.testing.assert_array_equal(load(tmp_path / "sb.png"), quantize(corr(x, SHARPEN * 0.25) - 3))


def test_the_report_names_every_change_to_the_kernel(cat: Path, tmp_path: Path) -> None:
    """0.3 reported ``-k identity --scale 2 --bias 10`` (pixels 2x+10) as plain "identity": --scale
    was in neither report, --flip and --bias only in the JSON."""
    args = ("filter", cat, "-k", "sobel-x", "--scale", "2", "--flip", "--bias", "3", "-o", tmp_path / "o.png")
    stage = json.loads(ok(*args, "--json").stdout)["stages"][0]
    assert (stage["kernel"], stage["flip"], stage["bias"]) == ("2 * sobel-x", True, 3.0)
    line = ok(*args).stdout.splitlines()[1]
    assert "2 * sobel-x 3x3  flipped  bias +3  stride 1" in line
    normal = json.loads(ok("filter", cat, "-k", "1 2 1", "--normalize", "--scale", "0.5", "-o",
                           tmp_path / "n.png", "--json").stdout)["stages"][0]
    assert normal["kernel"] == "0.5 * literal (sum 4) / 4"


def test_kernel_from_files(cat: Path, tmp_path: Path) -> None:
    k = np.array([[0, 1, 0], [1, 2, -1], [0, -1, 2]], dtype=np.float64)
    expected = quantize(corr(cat_crop(), k))
    (tmp_path / "k.txt").write_text("0 1 0\n1 2 -1\n0 -1 2\n")
    (tmp_path / "k.json").write_text(json.dumps(k.tolist()))
    np.save(tmp_path / "k.npy", k)
    for f in ("k.txt", "k.json", "k.npy"):
        ok("filter", cat, "-k", f"@{tmp_path / f}", "-o", tmp_path / f"{f}.png")
        np.testing.assert_array_equal(load(tmp_path / f"{f}.png"), expected, err_msg=f)


def test_gray_uses_itu_601_luminance(cat: Path, tmp_path: Path) -> None:
    ok("filter", cat, "-k", "identity", "--gray", "-o", tmp_path / "g.png")
    out = load(tmp_path / "g.png")
    assert out.ndim == 2
    assert_quantized(out, cat_crop().astype(np.float64) @ LUMA)


# --------------------------------------------------------------------------- numbers: blur, edges, downsample


def gaussian_1d(k: int, sigma: float) -> np.ndarray:
    x = np.arange(k) - (k - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def test_blur_default_is_gaussian3(cat: Path, tmp_path: Path) -> None:
    (rec,) = records(ok("blur", cat, "--json"))
    assert rec["stages"][0]["kernel_size"] == [3, 3]
    np.testing.assert_array_equal(load(tmp_path / "cat.blur.png"), quantize(corr(cat_crop(), GAUSS3)))


def test_blur_size_15_uses_opencv_default_sigma(tmp_path: Path) -> None:
    x = cat_crop(32, 36)
    src = save(x, tmp_path / "in.png")
    (rec,) = records(ok("blur", src, "--size", 15, "-o", tmp_path / "b.png", "--json"))
    sigma = 0.3 * ((15 - 1) * 0.5 - 1) + 0.8
    assert sigma == pytest.approx(2.6)
    assert rec["stages"][0]["kernel_size"] == [15, 15]
    assert "2.6" in rec["stages"][0]["kernel"]  # the report says which sigma was used
    g = gaussian_1d(15, sigma)
    ref = corr(x, np.outer(g, g))
    assert_quantized(load(tmp_path / "b.png"), ref)
    # a different sigma gives a visibly different image: the comparison can fail
    g2 = gaussian_1d(15, 3.5)
    assert np.abs(quantize(corr(x, np.outer(g2, g2))).astype(int) - quantize(ref)).max() > 1


def test_blur_size_7_is_opencvs_fixed_taps_and_says_so(tmp_path: Path) -> None:
    """getGaussianKernel(7, 0) is [1 3.5 7 9 7 3.5 1]/32, not the binomial row [1 6 15 20 15 6 1]/64
    (0.3's report called it "binomial taps")."""
    x = cat_crop(20, 22)
    src = save(x, tmp_path / "in.png")
    (rec,) = records(ok("blur", src, "--size", 7, "-o", tmp_path / "b.png", "--json"))
    assert rec["stages"][0]["kernel"] == "gaussian7(OpenCV fixed taps)"
    row = np.array([1, 3.5, 7, 9, 7, 3.5, 1]) / 32
    assert_quantized(load(tmp_path / "b.png"), corr(x, np.outer(row, row)))


def test_blur_sigma_alone_sets_the_size(tmp_path: Path) -> None:
    x = cat_crop(30, 30)
    src = save(x, tmp_path / "in.png")
    (rec,) = records(ok("blur", src, "--sigma", 2, "-o", tmp_path / "b.png", "--json"))
    k = 2 * math.ceil(3 * 2) + 1
    assert k == 13
    assert rec["stages"][0]["kernel_size"] == [k, k]
    assert "2" in rec["stages"][0]["kernel"]  # the report says which sigma was used
    g = gaussian_1d(k, 2.0)
    assert_quantized(load(tmp_path / "b.png"), corr(x, np.outer(g, g)))


def test_blur_box(cat: Path, tmp_path: Path) -> None:
    (rec,) = records(ok("blur", cat, "--type", "box", "--size", 5, "-o", tmp_path / "b.png", "--json"))
    assert rec["stages"][0]["kernel_size"] == [5, 5]
    assert_quantized(load(tmp_path / "b.png"), corr(cat_crop(), np.full((5, 5), 1 / 25)))


def test_edges_prewitt_magnitude_on_luminance(cat: Path, tmp_path: Path) -> None:
    (rec,) = records(ok("edges", cat, "--json"))
    lum = cat_crop().astype(np.float64) @ LUMA
    mag = np.hypot(corr(lum, K_V), corr(lum, K_H))
    out = load(tmp_path / "cat.edges.png")
    assert out.shape == (40, 52)
    assert rec["output_shape"] == [1, 1, 40, 52]
    assert rec["range"]["policy"] == "abs"
    assert_quantized(out, mag)


def test_edges_vertical_is_abs_of_kv(cat: Path, tmp_path: Path) -> None:
    ok("edges", cat, "--direction", "vertical", "-o", tmp_path / "v.png")
    lum = cat_crop().astype(np.float64) @ LUMA
    resp = corr(lum, K_V)
    assert resp.min() < -20  # negative responses exist: abs is what is tested
    assert_quantized(load(tmp_path / "v.png"), np.abs(resp))
    ok("edges", cat, "--direction", "horizontal", "-o", tmp_path / "h.png")
    assert_quantized(load(tmp_path / "h.png"), np.abs(corr(lum, K_H)))


def test_edges_sobel_color_gives_three_channels(cat: Path, tmp_path: Path) -> None:
    ok("edges", cat, "--operator", "sobel", "--color", "-o", tmp_path / "c.png")
    sx = np.outer([1, 2, 1], [-1, 0, 1]).astype(np.float64)
    x = cat_crop().astype(np.float64)
    out = load(tmp_path / "c.png")
    assert out.shape == (40, 52, 3)
    assert_quantized(out, np.hypot(corr(x, sx), corr(x, sx.T)))


def test_downsample_default_is_gaussian3_stride_2(tmp_path: Path) -> None:
    x = cat_crop(40, 51)
    src = save(x, tmp_path / "in.png")
    (rec,) = records(ok("downsample", src, "--json"))
    st = rec["stages"][0]
    assert (st["kernel"], st["stride"], st["padding"]) == ("gaussian3", [2, 2], "reflection")
    out = load(tmp_path / "in.down2.png")
    assert out.shape == (20, 26, 3)
    np.testing.assert_array_equal(out, quantize(corr(x, GAUSS3)[::2, ::2]))


def test_downsample_factor_3_uses_a_5_tap_gaussian(tmp_path: Path) -> None:
    x = cat_crop(31, 35)
    src = save(x, tmp_path / "in.png")
    (rec,) = records(ok("downsample", src, "--factor", 3, "--json"))
    st = rec["stages"][0]
    assert st["kernel_size"] == [5, 5] and st["stride"] == [3, 3] and st["pad"] == [2, 2, 2, 2]
    assert rec["output"] == str(tmp_path / "in.down3.png")
    g5 = np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1]) / 256.0  # OpenCV's getGaussianKernel(5, 0)
    np.testing.assert_array_equal(load(tmp_path / "in.down3.png"), quantize(corr(x, g5)[::3, ::3]))


@pytest.mark.parametrize(("args", "phrase"), [(["--size", 4], "odd"),
                                              (["--type", "box", "--sigma", 1], "sigma"),
                                              (["--sigma", 0], "sigma"), (["--sigma", -1], "sigma")])
def test_blur_usage_errors(cat: Path, args: list[Any], phrase: str) -> None:
    result = run("blur", cat, *args)
    assert result.exit_code == 2
    assert phrase in one_error_line(result)


def test_downsample_times_2_applies_the_filter_twice(tmp_path: Path) -> None:
    x = cat_crop(40, 48)
    src = save(x, tmp_path / "in.png")
    ok("downsample", src, "--times", 2, "-q")
    once = corr(x, GAUSS3)[::2, ::2]  # no rounding between stages: one pass, no re-encoding
    twice = corr(once, GAUSS3)[::2, ::2]
    np.testing.assert_array_equal(load(tmp_path / "in.down4.png"), quantize(twice))


def test_downsample_past_1x1_follows_the_formula_as_pytorch_does(tmp_path: Path) -> None:
    """(1 + 2*1 - 3) // 2 + 1 = 1: a strided stage on a 1x1 input gives 1x1 (0.3 refused the run)."""
    x = cat_crop(5, 6)
    src = save(x, tmp_path / "in.png")
    (rec,) = records(ok("downsample", src, "--times", 5, "-o", tmp_path / "d.png", "--json"))
    assert [s["output_shape"][2:] for s in rec["stages"]] == [[3, 3], [2, 2], [1, 1], [1, 1], [1, 1]]
    y = x.astype(np.float64)
    for _ in range(5):
        y = corr(y, GAUSS3)[::2, ::2]  # reflection of a 1x1 image is that pixel: it stays
    np.testing.assert_array_equal(load(tmp_path / "d.png"), quantize(y))
    (rec,) = records(ok("shape", "4x4", "--size", 3, "-s", 2, "--times", 4, "--json"))
    assert rec["output_shape"] == [1, 1, 1, 1]


def test_blur_linear_light(cat: Path, tmp_path: Path) -> None:
    ok("blur", cat, "--linear-light", "-o", tmp_path / "lin.png")
    v = cat_crop() / 255.0
    lin = np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)  # IEC 61966-2-1
    b = np.clip(corr(lin, GAUSS3), 0, None)
    enc = np.where(b <= 0.0031308, b * 12.92, 1.055 * b ** (1 / 2.4) - 0.055) * 255
    out = load(tmp_path / "lin.png")
    assert_quantized(out, enc)
    plain = quantize(corr(cat_crop(), GAUSS3))
    assert out.astype(int).sum() > plain.astype(int).sum()  # linear-light blurs come out brighter


# --------------------------------------------------------------------------- bit depths


def gray16(h: int = 30, w: int = 34) -> np.ndarray:
    rng = np.random.default_rng(7)
    a = rng.integers(0, 65536, size=(h, w), dtype=np.uint16)
    a[0, 0], a[0, 1] = 0, 65535
    return a


def test_16bit_gray_identity_round_trip_is_bit_identical(tmp_path: Path) -> None:
    a = gray16()
    src = save(a, tmp_path / "g16.png")
    (rec,) = records(ok("filter", src, "-k", "identity", "-o", tmp_path / "o.png", "--json"))
    assert rec["input_shape"] == [1, 1, 30, 34]
    with Image.open(tmp_path / "o.png") as im:
        assert im.mode.startswith("I")
        out = np.asarray(im)
    assert out.dtype.itemsize >= 2
    np.testing.assert_array_equal(out.astype(np.int64), a.astype(np.int64))


def test_16bit_sharpen_clips_to_65535(tmp_path: Path) -> None:
    a = (np.add.outer(np.arange(24), np.arange(28)) * 2000 % 60000).astype(np.uint16)
    src = save(a, tmp_path / "g16.png")
    ok("filter", src, "-k", "sharpen", "-o", tmp_path / "o.png")
    ref = corr(a, SHARPEN)
    assert ref.max() > 65535 and ref.min() < 0
    np.testing.assert_array_equal(load(tmp_path / "o.png").astype(np.int64),
                                  quantize(ref, 65535).astype(np.int64))


def test_bit_depth_8_on_16bit_input_rescales(tmp_path: Path) -> None:
    a = gray16()
    src = save(a, tmp_path / "g16.png")
    ok("filter", src, "-k", "identity", "--bit-depth", "8", "-o", tmp_path / "o8.png")
    with Image.open(tmp_path / "o8.png") as im:
        assert im.mode == "L"
        out = np.asarray(im)
    np.testing.assert_array_equal(out, quantize(a.astype(np.float64) * 255 / 65535))


@pytest.mark.parametrize("ext", [".jpg", ".bmp", ".webp", ".gif"])
def test_16bit_input_to_an_8bit_format_reports_the_file_it_writes(tmp_path: Path, ext: str) -> None:
    """0.2 quantised to 16 bits, reported that (min, max, clipped fraction on 0..65535), then reduced
    the pixels to 8 bits: the report described another image than the file."""
    a = (np.add.outer(np.arange(24), np.arange(28)) * 2000 % 60000).astype(np.uint16)
    src = save(a, tmp_path / "g16.png")
    (rec,) = records(ok("filter", src, "-k", "sharpen", "-o", tmp_path / f"o{ext}", "--json"))
    ref = corr(a, SHARPEN) * 255 / 65535  # the result on the file's 0..255 scale
    assert rec["range"]["min"] == pytest.approx(ref.min(), rel=1e-4)
    assert rec["range"]["max"] == pytest.approx(ref.max(), rel=1e-4)
    assert rec["range"]["clipped_fraction"] == pytest.approx(((ref < 0) | (ref > 255)).mean(), abs=1e-9)
    assert any(n.startswith("reduced to 8-bit") for n in rec["notes"]), rec["notes"]
    if ext in (".bmp", ".gif"):  # lossless: the pixels are the 8-bit quantisation of the float result
        with Image.open(tmp_path / f"o{ext}") as im:
            out = np.asarray(im.convert("L")).astype(int)
        np.testing.assert_allclose(out, quantize(ref), atol=1)


def test_raw_float_output_says_which_options_it_ignores(tmp_path: Path) -> None:
    src = save(np.arange(48, dtype=np.uint8).reshape(6, 8), tmp_path / "g.png")
    (rec,) = records(ok("filter", src, "-k", "sobel-x", "--range", "normalize", "--bit-depth", "8",
                        "-o", tmp_path / "x.npy", "--json"))
    assert "--range normalize ignored: raw float32 values are written as they are" in rec["notes"]
    assert "--bit-depth 8 ignored: NPY output holds raw float32" in rec["notes"]
    sobel_x = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64)
    np.testing.assert_allclose(np.load(tmp_path / "x.npy"), corr(np.arange(48.0).reshape(6, 8), sobel_x),
                               atol=1e-4)


def test_bit_depth_16_on_8bit_input_rescales(cat: Path, tmp_path: Path) -> None:
    ok("filter", cat, "-k", "identity", "--gray", "--bit-depth", "16", "-o", tmp_path / "o16.png")
    ok("filter", cat, "-k", "identity", "--gray", "-o", tmp_path / "o8.png")
    with Image.open(tmp_path / "o16.png") as im:
        assert im.mode.startswith("I")
        out16 = np.asarray(im).astype(np.int64)
    lum = cat_crop().astype(np.float64) @ LUMA
    assert np.abs(out16 - np.rint(lum * 65535 / 255)).max() <= 1
    assert out16.max() > 255


def png16_la(samples: np.ndarray) -> bytes:
    """A 16-bit grey+alpha PNG (colour type 4) of an (H, W, 2) uint16 array, written by hand."""
    h, w, _ = samples.shape

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + samples[y].astype(">u2").tobytes() for y in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 4, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def read_png16(data: bytes) -> tuple[int, np.ndarray]:
    """(colour type, (H, W, n) uint16) of a non-interlaced 16-bit PNG: all five row filters undone."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, ihdr = 8, b"", b""
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        ihdr = body if kind == b"IHDR" else ihdr
        idat += body if kind == b"IDAT" else b""
        pos += 12 + n
    w, h, depth, ctype = struct.unpack(">IIBB", ihdr[:10])
    assert depth == 16 and ihdr[12] == 0
    n = {0: 1, 2: 3, 4: 2, 6: 4}[ctype]
    bpp, stride = 2 * n, 2 * n * w
    raw = zlib.decompress(idat)
    out = np.zeros((h, stride), np.uint8)
    prev = np.zeros(stride, np.int64)
    for y in range(h):
        start = y * (stride + 1)
        f, line = raw[start], np.frombuffer(raw, np.uint8, stride, start + 1).astype(np.int64)
        cur = np.zeros(stride, np.int64)
        for i in range(stride):
            left = cur[i - bpp] if i >= bpp else 0
            upleft = prev[i - bpp] if i >= bpp else 0
            if f == 4:
                p = left + prev[i] - upleft
                pa, pb, pc = abs(p - left), abs(p - prev[i]), abs(p - upleft)
                pred = left if pa <= pb and pa <= pc else prev[i] if pb <= pc else upleft
            else:
                pred = (0, left, prev[i], (left + prev[i]) // 2, 0)[f]
            cur[i] = (line[i] + pred) & 0xFF
        out[y], prev = cur, cur
    return ctype, out.view(">u2").reshape(h, w, n).astype(np.uint16)


def test_16bit_gray_alpha_round_trip_and_blur(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    la = rng.integers(0, 65536, size=(12, 14, 2), dtype=np.uint16)
    la[..., 1] = np.where(rng.random((12, 14)) < 0.25, 0, np.maximum(la[..., 1], 4096))
    src = tmp_path / "la16.png"
    src.write_bytes(png16_la(la))
    (rec,) = records(ok("filter", src, "-k", "identity", "-o", tmp_path / "id.png", "--json"))
    assert rec["input_shape"] == [1, 1, 12, 14]
    ctype, out = read_png16((tmp_path / "id.png").read_bytes())
    assert ctype == 4
    np.testing.assert_array_equal(out[..., 1], la[..., 1])
    seen = la[..., 1] > 0
    assert np.abs(out[..., 0][seen].astype(int) - la[..., 0][seen]).max() <= 1  # colour where visible
    ok("blur", src, "-o", tmp_path / "b.png")
    ctype, out = read_png16((tmp_path / "b.png").read_bytes())
    np.testing.assert_array_equal(out[..., 1], quantize(corr(la[..., 1], GAUSS3), 65535))


def test_8bit_identity_round_trip(cat: Path, tmp_path: Path) -> None:
    ok("filter", cat, "-k", "identity", "-o", tmp_path / "o.png")
    with Image.open(tmp_path / "o.png") as im:
        assert im.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(im), cat_crop())


# --------------------------------------------------------------------------- --range policies


def test_range_clip_abs_normalize_on_negative_responses(cat: Path, tmp_path: Path) -> None:
    ref = corr(cat_crop(), K_V)
    assert ref.min() < -50 and ref.max() > 50
    for policy in ("clip", "abs", "normalize"):
        ok("filter", cat, "-k", "edge-vertical", "--range", policy, "-o", tmp_path / f"{policy}.png")
    clip, absv, norm = (load(tmp_path / f"{p}.png") for p in ("clip", "abs", "normalize"))
    np.testing.assert_array_equal(clip, quantize(ref))
    np.testing.assert_array_equal(absv, quantize(np.abs(ref)))
    assert np.any(clip != absv)
    assert_quantized(norm, (ref - ref.min()) * 255 / (ref.max() - ref.min()))
    assert norm.min() == 0 and norm.max() == 255


def test_filter_default_range_is_clip(cat: Path, tmp_path: Path) -> None:
    ok("filter", cat, "-k", "edge-vertical", "-o", tmp_path / "d.png")
    np.testing.assert_array_equal(load(tmp_path / "d.png"), quantize(corr(cat_crop(), K_V)))


# --------------------------------------------------------------------------- EXIF orientation


def quadrants() -> np.ndarray:
    """16 rows x 32 columns: red | green over blue | white."""
    a = np.zeros((16, 32, 3), np.uint8)
    a[:8, :16] = (255, 0, 0)
    a[:8, 16:] = (0, 255, 0)
    a[8:, :16] = (0, 0, 255)
    a[8:, 16:] = (255, 255, 255)
    return a


@pytest.mark.parametrize("fmt", ["png", "jpeg", "tiff"])
def test_exif_orientation_6_is_rotated_upright(tmp_path: Path, fmt: str) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored image must be turned 90° clockwise to display
    src = tmp_path / f"rot.{ {'jpeg': 'jpg', 'png': 'png', 'tiff': 'tif'}[fmt] }"
    Image.fromarray(quadrants()).save(src, exif=exif, **({"quality": 98} if fmt == "jpeg" else {}))
    (rec,) = records(ok("filter", src, "-k", "identity", "-o", tmp_path / "up.png", "--json"))
    assert rec["input_shape"] == [1, 3, 32, 16]
    (dry,) = records(ok("downsample", src, "--dry-run", "--json"))  # upright from the header alone
    assert (dry["input_shape"], dry["output_shape"]) == ([1, 3, 32, 16], [1, 3, 16, 8])
    out = load(tmp_path / "up.png").astype(int)
    assert out.shape == (32, 16, 3)
    # 90° clockwise: blue top-left, red top-right, white bottom-left, green bottom-right
    corners = {(4, 4): (0, 0, 255), (4, 11): (255, 0, 0), (27, 4): (255, 255, 255), (27, 11): (0, 255, 0)}
    for (y, x), rgb in corners.items():
        assert np.abs(out[y, x] - rgb).max() <= 8, (y, x, out[y, x])
    if fmt != "jpeg":
        np.testing.assert_array_equal(out, np.rot90(quadrants(), -1))
    with Image.open(tmp_path / "up.png") as im:
        assert im.getexif().get(0x0112, 1) == 1  # not rotated twice by a viewer


# --------------------------------------------------------------------------- alpha without halos


def test_alpha_blur_has_no_halo(tmp_path: Path) -> None:
    rgba = np.zeros((24, 28, 4), np.uint8)
    rgba[..., 1] = 255  # transparent pixels are GREEN
    rgba[8:16, 9:19] = (255, 0, 0, 255)  # an opaque red rectangle
    src = save(rgba, tmp_path / "sq.png")
    ok("blur", src, "--size", 5, "-q")
    with Image.open(tmp_path / "sq.blur.png") as im:
        assert im.mode == "RGBA"
        out = np.asarray(im).astype(int)
    g5 = np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1]) / 256.0
    alpha_ref = corr(rgba[..., 3], g5)
    np.testing.assert_array_equal(out[..., 3], quantize(alpha_ref))
    seen = out[..., 3] > 0
    assert seen.sum() > 80  # the blur spread alpha beyond the 8x10 square
    assert np.all(out[seen, 0] >= 254), "dark fringe"
    assert np.all(out[seen, 1] <= 1), "green fringe"
    assert np.all(out[seen, 2] <= 1)
    # a naive (non-premultiplied) blur would have shown green in the fringe: the test can fail
    naive = quantize(corr(rgba[..., :3], g5))
    assert naive[seen & (alpha_ref < 255), 1].max() > 100


def test_rgba_to_npy_says_the_alpha_is_not_written(tmp_path: Path) -> None:
    """0.2 wrote the colour of an RGBA input to .npy and said nothing of the alpha it left out."""
    rgba = np.zeros((12, 14, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[3:9, 4:10, 3] = 255
    src = save(rgba, tmp_path / "a.png")
    (rec,) = records(ok("blur", src, "-o", tmp_path / "a.npy", "--json"))
    assert any(n.startswith("alpha not written") for n in rec["notes"]), rec["notes"]
    out = np.load(tmp_path / "a.npy")
    assert out.shape == (12, 14, 3)
    seen = corr(rgba[..., 3], GAUSS3) > 0
    np.testing.assert_allclose(out[seen, 0], 200, atol=1e-3)  # un-premultiplied: the colour, not its fade


def test_alpha_premultiplied_filter_with_bias_against_a_reference(tmp_path: Path) -> None:
    """README 'numbers': premultiply, filter colour and alpha with the same kernel, divide back. The bias is a
    colour offset: a half-transparent pixel gets +7 like an opaque one (not +14)."""
    rng = np.random.default_rng(11)
    rgba = rng.integers(0, 256, size=(18, 21, 4), dtype=np.uint8)
    rgba[..., 3] = np.where(rng.random((18, 21)) < 0.2, 0, rgba[..., 3])
    src = save(rgba, tmp_path / "in.png")
    ok("filter", src, "-k", "gaussian5", "--bias", 7, "-o", tmp_path / "o.png")
    with Image.open(tmp_path / "o.png") as im:
        assert im.mode == "RGBA"
        out = np.asarray(im)
    g5 = np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1]) / 256.0
    a = rgba[..., 3].astype(np.float64)
    a_out = corr(a, g5)
    colour = corr(rgba[..., :3] * (a[..., None] / 255), g5) / (a_out[..., None] / 255) + 7
    np.testing.assert_array_equal(out[..., 3], quantize(a_out))
    solid = a_out >= 16  # away from near-zero alpha, where float32 division amplifies rounding
    assert solid.mean() > 0.9
    assert_quantized(out[..., :3][solid], colour[solid])
    # uniform colour under any alpha: exactly +7 everywhere alpha survives
    flat = rgba.copy()
    flat[..., :3] = 100
    src = save(flat, tmp_path / "flat.png")
    ok("filter", src, "-k", "identity", "--bias", 7, "-o", tmp_path / "f.png")
    f = load(tmp_path / "f.png")
    assert np.all(f[..., :3][f[..., 3] > 0] == 107)


@pytest.mark.parametrize("gain", [0.5, 1.78, -1.0, 3.0])
def test_alpha_does_not_take_a_kernels_gain(tmp_path: Path, gain: float) -> None:
    """A kernel whose sum is not 1 (``--scale``, the lecture's 1.78 "Gaussian") scales the colour of
    an image with alpha as it does without: alpha, a coverage, goes through the kernel scaled to sum
    1. 0.3 filtered alpha with the kernel itself, and dividing by it took the gain back out of the
    colour: an opaque RGBA image with --scale 0.5 came out half transparent, its colour unchanged."""
    rng = np.random.default_rng(int(gain * 100) % 97)
    rgba = rng.integers(0, 256, size=(19, 23, 4), dtype=np.uint8)
    rgba[..., 3] = np.where(rng.random((19, 23)) < 0.5, 255, rgba[..., 3])
    rgba[:4, :5, 3] = 0
    k = rng.uniform(0.1, 1.0, (3, 3))
    k *= gain / k.sum()
    literal = "; ".join(" ".join(repr(float(v)) for v in row) for row in k)
    a = rgba[..., 3].astype(np.float64)
    a_out = corr(a, k / k.sum())
    colour = corr(rgba[..., :3] * (a[..., None] / 255), k) / np.maximum(a_out[..., None] / 255, 1e-300)
    opaque = rgba.copy()
    opaque[..., 3] = 255
    for name, image, want_alpha in (("some", rgba, a_out), ("opaque", opaque, np.full(a.shape, 255.0))):
        ok("filter", save(image, tmp_path / f"{name}.png"), "-k", literal, "-o", tmp_path / f"{name}.out.png")
        out = load(tmp_path / f"{name}.out.png")
        assert out.shape[2] == 4, name
        np.testing.assert_array_equal(out[..., 3], quantize(want_alpha), err_msg=name)
        want = corr(image[..., :3].astype(np.float64), k) if name == "opaque" else colour
        solid = want_alpha >= 16
        assert_quantized(out[..., :3][solid], want[solid])


def _padded_valid(x: np.ndarray, k: np.ndarray, mode: str, pad4: tuple[int, int, int, int],
                  stride: tuple[int, int], outside: float) -> np.ndarray:
    """(H, W) padded by numpy (zeros: the constant ``outside``), correlated over the valid part by
    scipy, every stride-th pixel: a float64 reference independent of convcli's engine."""
    t, b, lft, r = pad4
    extra = {"constant_values": outside} if mode == "zeros" else {}
    p = np.pad(np.asarray(x, dtype=np.float64), ((t, b), (lft, r)), mode=NUMPY_MODE[mode], **extra)
    cy, cx = k.shape[0] // 2, k.shape[1] // 2
    full = ndi.correlate(p, k, mode="constant")
    valid = full[cy:p.shape[0] - (k.shape[0] - 1 - cy), cx:p.shape[1] - (k.shape[1] - 1 - cx)]
    return valid[::stride[0], ::stride[1]]


@pytest.mark.parametrize("mode", ["zeros", "border", "reflection", "circular"])
@pytest.mark.parametrize(("kernel", "stride", "pad"), [("box3", 1, "same"), ("gaussian5", 2, "3"),
                                                        ("1 2 0; 0 3 1; 2 0 1", 1, "2")])
def test_zeros_padding_is_black_as_opaque_as_the_images_edge(tmp_path: Path, mode: str, kernel: str,
                                                              stride: int, pad: str) -> None:
    """Zeros padding pads premultiplied colour with 0 and alpha as border padding does (the image's
    edge repeated): black, as opaque as the edge. It padded alpha with 0, so an opaque RGBA image came
    out transparent along its border (alpha 113 in a 3x3 box's corners) and its colour not darkened
    there, unlike the RGB image (torch's zero-padded result). Opaque: alpha stays 255 and the colour is
    the RGB image's, to the float; with alpha: against a float64 reference."""
    rng = np.random.default_rng(len(kernel) * 7 + stride + len(mode))
    rgb = rng.integers(0, 256, (13, 16, 3), dtype=np.uint8)
    k = {"box3": np.full((3, 3), 1 / 9), "gaussian5": np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1]) / 256.0}.get(
        kernel, np.array([[1, 2, 0], [0, 3, 1], [2, 0, 1]], dtype=np.float64))
    n = int(pad) if pad != "same" else 1
    pad4 = (n, n, n, n)
    flags = ["-k", kernel, "-p", mode, "-s", str(stride), "--pad", pad, "-q"]
    ok("filter", save(rgb, tmp_path / "rgb.png"), *flags, "-o", tmp_path / "rgb.npy")
    opaque = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    ok("filter", save(opaque, tmp_path / "opaque.png"), *flags, "-o", tmp_path / "opaque.npy")
    ok("filter", tmp_path / "opaque.png", *flags, "-o", tmp_path / "opaque.out.png")
    np.testing.assert_array_equal(np.load(tmp_path / "opaque.npy"), np.load(tmp_path / "rgb.npy"))
    assert np.all(load(tmp_path / "opaque.out.png")[..., 3] == 255)

    rgba = opaque.copy()
    rgba[..., 3] = np.where(rng.random(rgb.shape[:2]) < 0.3, rng.integers(0, 256, rgb.shape[:2]), 255)
    rgba[:3, :4, 3] = 0
    ok("filter", save(rgba, tmp_path / "rgba.png"), *flags, "-o", tmp_path / "rgba.out.png")
    out = load(tmp_path / "rgba.out.png")
    a = rgba[..., 3].astype(np.float64)
    a_out = _padded_valid(a, k / k.sum(), "border" if mode == "zeros" else mode, pad4, (stride, stride), 0.0)
    colour = np.stack([_padded_valid(rgba[..., c] * a / 255, k, mode, pad4, (stride, stride), 0.0)
                       for c in range(3)], axis=-1) / np.maximum(a_out[..., None] / 255, 1e-300)
    assert_quantized(out[..., 3], a_out)
    solid = a_out >= 16
    assert solid.mean() > 0.8
    assert_quantized(out[..., :3][solid], colour[solid])


def test_zeros_padding_gives_a_logo_on_transparency_no_frame(tmp_path: Path) -> None:
    """A red square on a transparent 24x24 canvas, blurred with zeros padding: with alpha padded
    opaque the canvas' border took a black frame (alpha 85 on the edges, 142 in the corners); the
    image's edge is transparent, so its padding is too, and the border stays transparent."""
    rgba = np.zeros((24, 24, 4), np.uint8)
    rgba[8:16, 8:16] = (255, 0, 0, 255)
    ok("filter", save(rgba, tmp_path / "logo.png"), "-k", "box3", "-p", "zeros", "-o", tmp_path / "o.png")
    out = load(tmp_path / "o.png")
    assert np.all(out[:6, :, 3] == 0) and np.all(out[:, :6, 3] == 0)
    assert np.all(out[10:14, 10:14] == (255, 0, 0, 255))


def test_edges_on_rgba_drop_alpha_for_every_direction(tmp_path: Path) -> None:
    """An edge response has no alpha: the image is composited onto black and the alpha dropped, whatever
    the direction (filtering alpha with K_v, whose sum is 0, made the result transparent almost everywhere).
    """
    rgba = np.zeros((20, 22, 4), np.uint8)
    rgba[..., 1] = 255
    rgba[6:14, 7:15] = (255, 0, 0, 255)
    src = save(rgba, tmp_path / "sq.png")
    # as 'edges' (both) sees it: luminance composited onto black (premultiplied), alpha dropped
    lum = (rgba[..., :3].astype(np.float64) @ LUMA) * (rgba[..., 3] / 255.0)
    ok("edges", src, "-o", tmp_path / "both.png")
    assert_quantized(load(tmp_path / "both.png"), np.hypot(corr(lum, K_V), corr(lum, K_H)))
    ok("edges", src, "--direction", "vertical", "-o", tmp_path / "v.png")
    with Image.open(tmp_path / "v.png") as im:
        assert im.mode == "L"  # like --direction both
        assert_quantized(np.asarray(im), np.abs(corr(lum, K_V)))


# ---------------------------------------------------------------- the lecture facts (README 'lecture')


def test_fact1_sharpen_on_the_lecture_patch_gives_50() -> None:
    patch = np.array([[10, 20, 30], [40, 50, 60], [70, 80, 90]], dtype=np.float64)
    assert (SHARPEN * patch).sum() == 50
    result = ok("explain", "--kernel", "sharpen", "--patch", "10 20 30; 40 50 60; 70 80 90")
    last = [line for line in result.stdout.splitlines() if line.strip()][-1]
    assert last.replace(" ", "").endswith("=50")


def test_fact2_valid_3x3_gives_222(tmp_path: Path) -> None:
    (rec,) = records(ok("filter", CAT, "-k", "sharpen", "-p", "valid", "-o", tmp_path / "v.png", "--json"))
    assert rec["output_shape"] == [1, 3, 222, 222]
    assert load(tmp_path / "v.png").shape == (222, 222, 3)


@pytest.mark.parametrize("mode", list(SCIPY_MODE))
def test_fact3_same_padding_keeps_224_for_every_mode(tmp_path: Path, mode: str) -> None:
    (rec,) = records(ok("filter", CAT, "-k", "gaussian3", "-p", mode, "--pad", "same", "-o",
                        tmp_path / "s.png", "--json"))
    assert rec["output_shape"] == [1, 3, 224, 224]
    assert load(tmp_path / "s.png").shape == (224, 224, 3)


def test_fact4_stride_2_zeros_pad_1_gives_112_then_56(tmp_path: Path) -> None:
    (rec,) = records(ok("downsample", CAT, "-p", "zeros", "--pad", 1, "--times", 2, "-o", tmp_path / "d.png",
                        "--json"))
    assert [s["output_shape"][2:] for s in rec["stages"]] == [[112, 112], [56, 56]]
    assert load(tmp_path / "d.png").shape == (56, 56, 3)
    result = ok("shape", "224x224", "--size", 3, "-s", 2, "--pad", 1, "--times", 2)
    assert "224x224 -> 112x112 -> 56x56" in result.stdout
    (rec,) = records(ok("shape", "224x224", "--size", 3, "-s", 2, "--pad", 1, "--times", 2, "--json"))
    assert rec["output_shape"] == [1, 1, 56, 56]


def test_fact6_lecture_gaussian_brightens_and_normalize_fixes_it(tmp_path: Path) -> None:
    src = save(np.full((12, 14, 3), 100, np.uint8), tmp_path / "grey.png")
    lecture = "0.111 0.222 0.111; 0.222 0.444 0.222; 0.111 0.222 0.111"
    ok("filter", src, "-k", lecture, "-o", tmp_path / "bright.png")
    ok("filter", src, "-k", lecture, "--normalize", "-o", tmp_path / "fixed.png")
    total = 4 * 0.111 + 4 * 0.222 + 0.444
    assert total == pytest.approx(1.776)
    np.testing.assert_array_equal(load(tmp_path / "bright.png"), np.full((12, 14, 3), round(100 * total)))
    np.testing.assert_array_equal(load(tmp_path / "fixed.png"), np.full((12, 14, 3), 100))
    (rec,) = records(ok("kernels", "gaussian3", "--json"))
    assert np.asarray(rec["weights"]) == pytest.approx(GAUSS3)


# --------------------------------------------------------------------------- kernels, shape, padding


def test_kernels_lists_every_spec_name() -> None:
    text = ok("kernels").stdout
    listed = {line.split()[0] for line in text.splitlines() if line and not line[0].isspace()}
    assert set(SPEC_KERNELS) <= listed
    recs = records(ok("kernels", "--json"))
    assert set(SPEC_KERNELS) <= {r["name"] for r in recs}


@pytest.mark.parametrize(
    ("name", "weights"),
    [
        ("sharpen", SHARPEN),
        ("gaussian3", GAUSS3),
        ("edge-vertical", K_V),
        ("edge-horizontal", K_H),
        ("sobel-x", np.outer([1, 2, 1], [-1, 0, 1])),
        ("box3", np.full((3, 3), 1 / 9)),
        ("gaussian5", np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1]) / 256),
    ],
)
def test_kernels_name_json(name: str, weights: np.ndarray) -> None:
    (rec,) = records(ok("kernels", name, "--json"))
    assert rec["name"] == name
    assert rec["shape"] == list(weights.shape)
    np.testing.assert_allclose(np.asarray(rec["weights"]), weights, rtol=1e-12)


def test_kernels_name_prints_the_matrix() -> None:
    lines = ok("kernels", "sharpen").stdout.splitlines()
    assert lines[0].startswith("sharpen")
    rows = [[float(v) for v in line.strip(" []").split()] for line in lines[1:4]]
    np.testing.assert_array_equal(rows, SHARPEN)


def test_kernels_unknown_name_suggests() -> None:
    result = run("kernels", "gausian3")
    assert result.exit_code == 2
    line = one_error_line(result)
    assert "did you mean" in line and "gaussian3" in line
    assert result.stdout == ""


def test_shape_json_record(tmp_path: Path) -> None:
    (rec,) = records(ok("shape", "100x60", "--size", 5, "-s", 2, "-d", 2, "--channels", 3, "--json"))
    assert "input" not in rec and "output" not in rec
    assert rec["input_shape"] == [1, 3, 100, 60]
    (st,) = rec["stages"]
    # same padding for k=5, d=2: total 8, 4 each side
    oh, ow = (100 + 8 - 2 * 4 - 1) // 2 + 1, (60 + 8 - 2 * 4 - 1) // 2 + 1
    assert rec["output_shape"] == st["output_shape"] == [1, 3, oh, ow]
    assert st["pad"] == [4, 4, 4, 4]
    assert axis_arithmetic(100, 5, 2, 2, 4, 4) in st["arithmetic"]
    assert axis_arithmetic(60, 5, 2, 2, 4, 4) in st["arithmetic"]
    assert pair(st["receptive_field"]) == [9, 9] and pair(st["jump"]) == [2, 2]
    (rec,) = records(ok("shape", "224", "--size", 3, "-p", "valid", "--json"))
    assert rec["output_shape"] == [1, 1, 222, 222]


def test_shape_impossible_is_a_usage_error() -> None:
    result = run("shape", "4x4", "--size", 7, "-p", "valid")
    assert result.exit_code == 2
    assert axis_arithmetic(4, 7, 1, 1, 0, 0) in one_error_line(result)


@pytest.mark.parametrize("size", ["224x", "x224", "2x3x4", "x", "0x5", "a"])
def test_shape_refuses_a_size_that_is_not_n_or_hxw(size: str) -> None:
    result = run("shape", size)  # 0.3 read "224x" and "x224" as 224x224
    assert result.exit_code == 2 and "HxW must be N or HxW" in one_error_line(result)


@pytest.mark.parametrize(("size", "hw"), [("224", "224x224"), ("224x100", "224x100"), ("224,100", "224x100"),
                                          (" 3 x 5 ", "3x5"), ("3×5", "3x5")])
def test_shape_reads_n_and_hxw(size: str, hw: str) -> None:
    assert ok("shape", size).stdout.startswith(f"{hw} -> {hw}")


def test_kernels_of_an_empty_spec_is_an_error_not_the_whole_list() -> None:
    result = run("kernels", "")
    assert result.exit_code == 2 and "kernel is empty" in one_error_line(result) and result.stdout == ""


def pattern(mode: str) -> str:
    row = np.arange(1, 6)
    if mode == "valid":
        return "| 1 2 3 4 5 |"
    p = np.pad(row, 2, mode=NUMPY_MODE[mode])
    return " ".join(map(str, p[:2])) + " | 1 2 3 4 5 | " + " ".join(map(str, p[-2:]))


def test_padding_reflection_draws_the_row() -> None:
    assert ok("padding", "reflection").stdout.splitlines()[0] == "reflection: 3 2 | 1 2 3 4 5 | 4 3"
    assert pattern("reflection") == "3 2 | 1 2 3 4 5 | 4 3"


@pytest.mark.parametrize("mode", [*SCIPY_MODE, "valid"])
def test_padding_every_mode_with_every_library_name(mode: str) -> None:
    text = ok("padding", mode).stdout
    assert text.splitlines()[0] == f"{mode}: {pattern(mode)}"
    for name in SPEC_TABLE.get(mode, ()):
        if name is not None:
            assert name in text, name
    for alias, canonical in ALIASES.items():
        if canonical == mode:
            assert alias in text
            # an alias resolves to the same mode
            assert ok("padding", alias).stdout.splitlines()[0] == f"{mode}: {pattern(mode)}"
    listing = ok("padding").stdout
    assert f"{mode}: {pattern(mode)}" in listing


def test_padding_json_is_the_spec_table() -> None:
    recs = {r["mode"]: r for r in records(ok("padding", "--json"))}
    assert set(SPEC_TABLE) | {"valid"} == set(recs)
    for mode, names in SPEC_TABLE.items():
        r = recs[mode]
        assert (r["numpy"], r["scipy"], r["opencv"], r["torch"]) == names, mode
        assert sorted(r["aliases"]) == sorted(a for a, m in ALIASES.items() if m == mode)
        assert r["pattern"] == pattern(mode)
    assert recs["valid"]["aliases"] == ["none"]


def test_padding_unknown_mode_exits_2() -> None:
    result = run("padding", "bogus")
    assert result.exit_code == 2
    assert "bogus" in one_error_line(result)


# --------------------------------------------------------------------------- docs, version, python -m


def all_commands() -> dict[str, click.Command]:
    """Every command of the group (it may load them lazily, so ``cli.commands`` can be empty)."""
    ctx = click.Context(cli)
    found = {name: cli.get_command(ctx, name) for name in cli.list_commands(ctx)}
    assert all(cmd is not None for cmd in found.values())
    return found  # type: ignore[return-value]


def test_every_command_has_help_text() -> None:
    commands = all_commands()
    assert {"filter", "blur", "edges", "downsample", "kernels", "shape", "padding"} <= set(commands)
    for name, command in sorted(commands.items()):
        assert (command.help or "").strip(), name
        result = ok(name, "--help")
        assert "Usage" in result.stdout, name
        assert result.stderr == ""
    listing = ok("--help").stdout
    assert all(name in listing for name in commands)


@pytest.mark.skipif(not README.exists(), reason="README.md is not written yet (the lead is writing it)")
def test_every_command_is_in_the_readme() -> None:
    text = README.read_text(encoding="utf-8")
    missing = [name for name in sorted(all_commands()) if f"convcli {name}" not in text]
    assert not missing, f"commands missing from README.md: {missing}"


def test_version_is_the_package_metadata_version() -> None:
    result = ok("--version")
    assert importlib.metadata.version("convcli") in result.stdout


def test_python_dash_m_convcli() -> None:
    proc = subprocess.run([sys.executable, "-m", "convcli", "--help"], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "Usage" in proc.stdout and "filter" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "convcli", "kernels", "nope-nope"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_format_must_agree_with_the_output_extension(tmp_path: Path) -> None:
    src = tmp_path / "cat.png"
    src.write_bytes(CAT.read_bytes())
    bad = CliRunner().invoke(cli, ["blur", str(src), "-o", str(tmp_path / "x.png"), "--format", "jpeg"])
    assert bad.exit_code == 2
    assert "--format jpeg contradicts" in bad.stderr and not (tmp_path / "x.png").exists()
    ok = CliRunner().invoke(cli, ["blur", str(src), "-o", str(tmp_path / "x.bin"), "--format", "jpeg", "-q"])
    assert ok.exit_code == 0
    assert Image.open(tmp_path / "x.bin").format == "JPEG"


def test_bit_depth_float_needs_a_raw_float_format(tmp_path: Path) -> None:
    src = tmp_path / "cat.png"
    src.write_bytes(CAT.read_bytes())
    bad = CliRunner().invoke(cli, ["filter", str(src), "-k", "sharpen", "--bit-depth", "float",
                                   "-o", str(tmp_path / "f.png")])
    assert bad.exit_code == 2 and "--bit-depth float" in bad.stderr
    assert not (tmp_path / "f.png").exists()
    good = CliRunner().invoke(cli, ["filter", str(src), "-k", "sharpen", "--bit-depth", "float", "--gray",
                                    "-o", str(tmp_path / "f.tif"), "-q"])
    assert good.exit_code == 0
    values = np.asarray(Image.open(tmp_path / "f.tif"))
    luma = np.asarray(Image.open(CAT).convert("RGB"), dtype=np.float64) @ np.array([0.299, 0.587, 0.114])
    ref = ndi.correlate(luma, np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], float), mode="mirror")
    np.testing.assert_allclose(values, ref, rtol=1e-4, atol=1e-3)


def test_luminance_keeps_alpha_in_a_chain_as_gray_does(tmp_path: Path) -> None:
    """``chain gray filter`` dropped the alpha that ``filter --gray`` keeps; the luminance of
    premultiplied colour is the premultiplied luminance, so alpha passes the gray stage."""
    rng = np.random.default_rng(5)
    rgba = rng.integers(0, 256, size=(16, 19, 4), dtype=np.uint8)
    rgba[:5, :, 3] = 0
    src = save(rgba, tmp_path / "in.png")
    box = np.full((3, 3), 1 / 9)
    a = rgba[..., 3].astype(np.float64)
    a_out = corr(a, box)
    lum = corr((rgba[..., :3].astype(np.float64) @ LUMA) * (a / 255), box) / np.maximum(a_out / 255, 1e-12)
    solid = a_out >= 16
    for args in (("filter", src, "-k", "box3", "--gray", "-o", tmp_path / "f.png", "--json"),
                 ("chain", "-i", src, "-o", tmp_path / "c.png", "--json", "gray", "filter", "-k", "box3")):
        (rec,) = records(ok(*args))
        assert "alpha premultiplied and filtered with the same kernel" in rec["notes"]
        out = load(Path(str(args[args.index("-o") + 1])))
        assert out.shape == (16, 19, 2)
        np.testing.assert_array_equal(out[..., 1], quantize(a_out))
        assert_quantized(out[..., 0][solid], lum[solid])


@pytest.mark.parametrize(("args", "reason"), [
    (("filter", "-k", "sobel-x"), "filter measures change"),
    (("edges",), "edges measures change"),
])
def test_the_alpha_note_names_the_stage_that_dropped_it(tmp_path: Path, args: tuple[str, ...],
                                                         reason: str) -> None:
    rgba = np.zeros((8, 9, 4), np.uint8)
    rgba[..., 3] = 128
    src = save(rgba, tmp_path / "in.png")
    (rec,) = records(ok(args[0], src, *args[1:], "-o", tmp_path / "o.png", "--json"))
    assert any(n.startswith(f"alpha dropped: {reason}") for n in rec["notes"])
    assert load(tmp_path / "o.png").ndim == 2 or load(tmp_path / "o.png").shape[2] == 3


def test_a_kernel_summing_to_almost_zero_drops_alpha_as_a_derivative_does(tmp_path: Path) -> None:
    """``1 -0.999`` sums to 0.001: scaled to sum 1 for alpha its weights were 1000 and -999, alpha edges
    came out clipped to 0 or 255 and colour there divided by ~1000. It responds to change, as a
    derivative: alpha is dropped, colour composited onto black (scipy on colour x alpha)."""
    rng = np.random.default_rng(12)
    rgba = rng.integers(0, 256, size=(15, 17, 4), dtype=np.uint8)
    src = save(rgba, tmp_path / "in.png")
    r = ok("filter", src, "-k", "0 0 0; 0 1 -0.999; 0 0 0", "-o", tmp_path / "o.npy", "--json")
    assert any(n.startswith("alpha dropped") for n in json.loads(r.stdout)["notes"])
    a = rgba[..., 3:].astype(np.float64) / 255
    want = corr(rgba[..., :3] * a, np.array([[0, 0, 0], [0, 1, -0.999], [0, 0, 0]]))
    np.testing.assert_allclose(np.load(tmp_path / "o.npy"), want, rtol=1e-4, atol=1e-3)
