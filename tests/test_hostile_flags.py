"""Hostile flags and user files: every bad value is one line naming the flag or file, exit 2, nothing written.

Classes (the issue "Hostile input, wave 2", parser half): non-finite floats, sizes past the
limits, hostile kernel/weights files, unbounded reads, the output guard, one meaning for -k,
suggestions, report wording. Expected values are worked by hand here, never taken from convcli.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.ndimage as ndi
from click.testing import CliRunner, Result
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from convcli.cli import cli
from convcli.cli.kernelspec import cli_kernel
from convcli.core.kernels import MAX_KERNEL_SIZE
from convcli.core.specs import parse_kernel
from convcli.io.userfiles import MAX_USER_FILE_BYTES

SOBEL_X = [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]


def run(*args: Any) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def small(tmp_path: Path) -> Path:
    """A 64x80 (H x W) RGB image with some texture."""
    rng = np.random.default_rng(7)
    path = tmp_path / "small.png"
    Image.fromarray(rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)).save(path)
    return path


def refused(r: Result, *phrases: str, status: int = 2) -> str:
    """Exit ``status``, nothing on stdout, one error line on stderr holding every phrase, no traceback."""
    assert r.exit_code == status, (r.exit_code, r.stdout, r.stderr)
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr
    for phrase in phrases:
        assert phrase in lines[0], (phrase, lines[0])
    return lines[0]


def no_outputs(folder: Path, keep: set[str]) -> None:
    assert {p.name for p in folder.iterdir()} <= keep


# --------------------------------------------------------------------------- 1. non-finite and huge numbers


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN", "Infinity"])
@pytest.mark.parametrize("flag", ["--sigma", "--truncate"])
def test_blur_float_flags_refuse_non_finite(small: Path, tmp_path: Path, flag: str, value: str) -> None:
    extra = ["--sigma", "2"] if flag == "--truncate" else []
    r = run("blur", small, *extra, flag, value, "-o", tmp_path / "o.png")
    refused(r, flag, "finite")
    no_outputs(tmp_path, {"small.png"})


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
@pytest.mark.parametrize("flag", ["--bias", "--scale"])
def test_filter_float_flags_refuse_non_finite(small: Path, tmp_path: Path, flag: str, value: str) -> None:
    r = run("filter", small, "-k", "sharpen", flag, value, "-o", tmp_path / "o.png")
    refused(r, flag, "finite")
    no_outputs(tmp_path, {"small.png"})


@pytest.mark.parametrize(("command", "flag", "value"), [
    (["explain", "--patch", "1 2 3; 4 5 6; 7 8 9"], "--bias", "nan"),
    (["animate", "--input-size", "4", "-o", "x.gif"], "--fps", "nan"),
])
def test_teaching_float_flags_refuse_non_finite(command: list[str], flag: str, value: str) -> None:
    refused(run(*command, flag, value), flag, "finite")


def test_overflowing_literal_is_a_usage_error(small: Path, tmp_path: Path) -> None:
    r = run("filter", small, "-k", "1e308 1e308 1e308; 1e308 1e308 1e308; 1e308 1e308 1e308",
            "-o", tmp_path / "o.png")
    refused(r, "too large")
    no_outputs(tmp_path, {"small.png"})


@pytest.mark.parametrize(("args", "phrase"), [
    (["blur", "--size", "100001"], "--size"),
    (["blur", "--sigma", "1e6"], "--sigma"),
    (["blur", "--sigma", "1e300"], "--sigma"),
    (["downsample", "--factor", "100000"], "--factor"),
    (["downsample", "--times", "1000000"], "--times"),
    (["filter", "-k", "sharpen", "-d", "100000"], "--dilation"),
    (["filter", "-k", "sharpen", "--pad", "1e20"], "--pad"),
    (["filter", "-k", "sharpen", "--pad", "100000000000000000000"], "--pad"),
    (["filter", "-k", "sharpen", "-s", "9" * 5000], "--stride"),
    (["chain", "conv", "--size", "5000"], "--size"),
    (["blur", "--sigma", "1e-300"], "--sigma"),  # a NumPy warning and a NaN kernel once
    (["sharpen", "--sigma", "1e-300"], "--sigma"),
    (["sharpen", "--sigma", "1e300"], "6e+300x6e+300"),  # the size in 3 figures, not 301 digits
    (["filter", "-k", "log:sigma=1e-300"], "sigma=1e-300 must be at least 0.001"),  # a traceback once
    (["filter", "-k", "comet:sigma=1e-300"], "sigma=1e-300 must be at least 0.001"),  # a traceback once
    (["filter", "-k", "gabor:gamma=1e-300"], "size 2.4e+301 is over the limit"),
])
def test_sizes_past_the_limits_are_usage_errors(small: Path, tmp_path: Path, args: list[str],
                                               phrase: str) -> None:
    if args[0] == "chain":
        full = ["chain", "-i", small, "-o", tmp_path / "o.png", *args[1:]]
    else:
        full = [args[0], small, *args[1:], "-o", tmp_path / "o.png"]
    refused(run(*full), phrase)
    no_outputs(tmp_path, {"small.png"})


def test_downsample_past_one_pixel_keeps_one_pixel(small: Path, tmp_path: Path) -> None:
    # 64x80 halves: 32x40, 16x20, 8x10, 4x5, 2x3, 1x2, 1x1 after 7 passes; an 8th gives 1x1 by the
    # formula, as PyTorch does ((1 + 1 + 1 - 2 - 1) // 2 + 1 = 1), and a normalised kernel over a
    # reflected 1x1 image is that pixel (0.3 refused the 8th pass).
    ok = run("downsample", small, "--times", "7", "-o", tmp_path / "ok.png", "--json")
    assert ok.exit_code == 0, ok.stderr
    assert json.loads(ok.stdout)["output_shape"] == [1, 3, 1, 1]
    r = run("downsample", small, "--times", "8", "-o", tmp_path / "o.png", "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["output_shape"] == [1, 3, 1, 1]
    seven, eight = (np.asarray(Image.open(tmp_path / n)) for n in ("ok.png", "o.png"))
    np.testing.assert_array_equal(eight, seven)


def test_kernel_size_limit_is_stated_and_exact(small: Path, tmp_path: Path) -> None:
    assert MAX_KERNEL_SIZE == 1001
    assert str(MAX_KERNEL_SIZE) in run("blur", "--help").stdout
    r = run("blur", small, "--size", str(MAX_KERNEL_SIZE + 2), "-o", tmp_path / "o.png")
    refused(r, "--size", "1001")
    # 2*ceil(3*sigma)+1 <= 1001 <=> sigma <= 166.67: 166.5 gives 2*500+1 = 1001, 166.7 gives 1003.
    dry = run("blur", small, "--sigma", "166.5", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.stderr
    assert json.loads(dry.stdout)["stages"][0]["kernel_size"] == [1001, 1001]
    refused(run("blur", small, "--sigma", "166.7", "--dry-run"), "--sigma", "1001")


# --------------------------------------------------------------------------- 1+3. hostile kernel files


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def npz_as_npy(tmp_path: Path) -> Path:
    np.savez(tmp_path / "k.npz", a=np.ones((3, 3)))
    os.replace(tmp_path / "k.npz", tmp_path / "k.npy")
    return tmp_path / "k.npy"


def object_npy(tmp_path: Path) -> Path:
    np.save(tmp_path / "obj.npy", np.array([[1, None], [2, 3]], dtype=object), allow_pickle=True)
    return tmp_path / "obj.npy"


def lying_npy(tmp_path: Path) -> Path:
    """A header that promises 10^12 float64 values over a few bytes (NumPy would allocate them first)."""
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000, 1000000), }"
    header += " " * (118 - len(header)) + "\n"
    return write(tmp_path / "lie.npy", b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little")
                 + header.encode() + b"\x00" * 16)


HOSTILE_FILES = {
    "non-utf8.txt": (lambda d: write(d / "k.txt", b"1 2 \xff\xfe 3\n4 5 6 7\n"), "UTF-8"),
    "deep.json": (lambda d: write(d / "deep.json", b"[" * 100_000 + b"]" * 100_000), "nested"),
    "digits.json": (lambda d: write(d / "big.json", b"[[" + b"9" * 5000 + b"]]"), "finite"),
    "npz.npy": (npz_as_npy, ".npz"),
    "empty.npy": (lambda d: write(d / "e.npy", b""), "empty"),
    "object.npy": (object_npy, "objects"),
    "lying.npy": (lying_npy, "header says"),
    "text.npy": (lambda d: write(d / "t.npy", b"1 2; 3 4"), "not a .npy"),
    "3d.json": (lambda d: write(d / "c.json", b"[[[1]]]"), "nested"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_FILES))
def test_hostile_kernel_files_are_refused_naming_the_file(small: Path, tmp_path: Path, case: str) -> None:
    make, phrase = HOSTILE_FILES[case]
    path = make(tmp_path)
    r = run("filter", small, "-k", f"@{path}", "-o", tmp_path / "o.png")
    refused(r, path.name, phrase)
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("case", ["npz.npy", "empty.npy", "object.npy", "lying.npy"])
@pytest.mark.parametrize("flag", ["--weights", "--bias"])
def test_hostile_weight_files_are_refused_naming_the_flag(small: Path, tmp_path: Path, case: str,
                                                          flag: str) -> None:
    path = HOSTILE_FILES[case][0](tmp_path)
    r = run("chain", "-i", small, "-o", tmp_path / "o.png", "conv", flag, path)
    refused(r, flag, path.name, HOSTILE_FILES[case][1])


def test_zero_output_weights_are_a_usage_error(small: Path, tmp_path: Path) -> None:
    np.save(tmp_path / "w.npy", np.zeros((0, 3, 3, 3), dtype=np.float32))
    r = run("chain", "-i", small, "-o", tmp_path / "o.png", "conv", "--weights", tmp_path / "w.npy")
    refused(r, "--weights", "empty axis")


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom", "/dev/null"])
def test_devices_are_refused_without_reading(small: Path, tmp_path: Path, device: str) -> None:
    if not os.path.exists(device):
        pytest.skip(f"{device} missing")
    refused(run("filter", small, "-k", f"@{device}", "-o", tmp_path / "o.png"), device, "character device")


def test_fifo_is_refused_without_blocking(small: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "k.txt"
    os.mkfifo(fifo)  # nobody writes: a blocking open would hang here (pytest-timeout would fail it)
    refused(run("filter", small, "-k", f"@{fifo}", "-o", tmp_path / "o.png"), "FIFO")
    refused(run("chain", "-i", small, "-o", tmp_path / "o.png", "conv", "--weights", fifo), "FIFO")


def test_directory_is_refused(small: Path, tmp_path: Path) -> None:
    refused(run("filter", small, "-k", f"@{tmp_path}", "-o", tmp_path / "o.png"), "directory")


def test_files_over_the_cap_are_refused(small: Path, tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    with open(big, "wb") as f:
        f.truncate(MAX_USER_FILE_BYTES + 1)  # sparse: no 16 MiB written
    refused(run("filter", small, "-k", f"@{big}", "-o", tmp_path / "o.png"), "big.txt", "16 MiB")
    assert "16 MiB" in run("filter", "--help").stdout


def test_a_file_at_the_cap_is_read(tmp_path: Path) -> None:
    path = tmp_path / "k.txt"
    body = b"1 2 1\n2 4 2\n1 2 1\n"
    path.write_bytes(body + b"#" * (MAX_USER_FILE_BYTES - len(body)))
    np.testing.assert_array_equal(cli_kernel(f"@{path}").weights, [[1, 2, 1], [2, 4, 2], [1, 2, 1]])


# --------------------------------------------------------------------------- 2. nested literals, U+2212


@pytest.mark.parametrize("text", [
    "[[0,-1,0],[-1,5,-1],[0,-1,0]]",
    "[[0, -1, 0], [-1, 5, -1], [0, -1, 0]]",
    "[[ 0 -1  0]\n [-1  5 -1]\n [ 0 -1  0]]",
    "[[0,-1,0],[-1,5,-1],[0,-1,0],]",
    "0 \u22121 0; \u22121 5 \u22121; 0 \u22121 0",
    "[[0, \u22121, 0], [\u22121, 5, \u22121], [0, \u22121, 0]]",
])
def test_nested_and_unicode_minus_literals_are_2d(text: str) -> None:
    np.testing.assert_array_equal(parse_kernel(text).weights, [[0, -1, 0], [-1, 5, -1], [0, -1, 0]])


@pytest.mark.parametrize(("text", "phrase"), [
    ("[[1,2],[3]]", "ragged"),
    ("[[[1,2]],[[3,4]]]", "nested 3 deep"),
    ("[[1,2],3]", "outside a row"),
    ("[1,2],[3,4]", "brackets"),
    ("[[1,2],[3,4]", "unbalanced"),
    ("[[]]", "empty"),
])
def test_bad_nested_literals_are_refused_never_flattened(small: Path, tmp_path: Path, text: str,
                                                        phrase: str) -> None:
    refused(run("filter", small, "-k", text, "-o", tmp_path / "o.png"), phrase)


@given(st.lists(st.lists(st.integers(-99, 99), min_size=1, max_size=6), min_size=1, max_size=6)
       .filter(lambda rows: len({len(r) for r in rows}) == 1),
       st.sampled_from(["json", "python", "spaces", "minus"]))
def test_nested_literal_round_trip(rows: list[list[int]], style: str) -> None:
    """Any rectangular integer matrix written as a nested list reads back with its own shape."""
    if style == "json":
        text = json.dumps(rows)
    elif style == "python":
        text = repr(rows)
    elif style == "spaces":
        text = "[" + " ".join("[" + " ".join(map(str, r)) + "]" for r in rows) + "]"
    else:
        text = json.dumps(rows).replace("-", "\u2212")
    k = parse_kernel(text)
    assert k.shape == (len(rows), len(rows[0]))
    np.testing.assert_array_equal(k.weights, np.array(rows, dtype=float))


def test_patch_accepts_unicode_minus() -> None:
    r = run("explain", "-k", "1 0; 0 1", "--patch", "\u22122 5; 7 \u22123")
    assert r.exit_code == 0, r.stderr
    assert "Output = \u22125" in r.stdout  # -2*1 + (-3)*1, by hand (explain prints U+2212)


def test_nested_literal_filters_like_the_registry_kernel(small: Path, tmp_path: Path) -> None:
    a = run("filter", small, "-k", "[[0,-1,0],[-1,5,-1],[0,-1,0]]", "-o", tmp_path / "a.png", "--json")
    b = run("filter", small, "-k", "sharpen", "-o", tmp_path / "b.png")
    assert a.exit_code == 0 and b.exit_code == 0, (a.stderr, b.stderr)
    assert json.loads(a.stdout)["stages"][0]["kernel_size"] == [3, 3]
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "a.png")),
                                  np.asarray(Image.open(tmp_path / "b.png")))


# --------------------------------------------------------------------------- 4. the output guard


def test_pad_planning_a_huge_output_is_refused_before_any_pixel(small: Path, tmp_path: Path) -> None:
    r = run("filter", small, "-k", "sharpen", "--pad", "20000", "-o", tmp_path / "o.png")
    # (64 + 40000 - 2) x (80 + 40000 - 2), by hand
    refused(r, "--max-pixels", "40062x40078")
    no_outputs(tmp_path, {"small.png"})


def test_max_pixels_bounds_stage_outputs(small: Path, tmp_path: Path) -> None:
    # --pad 8, 3x3 on 64x80: (64 + 16 - 2) x (80 + 16 - 2) = 78x94 = 7332 pixels; the input is 5120.
    over = run("filter", small, "-k", "sharpen", "--pad", "8", "--max-pixels", "7331",
               "-o", tmp_path / "o.png")
    refused(over, "--max-pixels", "78x94")
    ok = run("filter", small, "-k", "sharpen", "--pad", "8", "--max-pixels", "7332", "--dry-run", "--json")
    assert ok.exit_code == 0, ok.stderr
    assert json.loads(ok.stdout)["output_shape"] == [1, 3, 78, 94]


def test_chain_stage_output_guard_names_the_stage(small: Path, tmp_path: Path) -> None:
    r = run("chain", "-i", small, "-o", tmp_path / "o.png", "--max-pixels", "6000",
            "blur", "filter", "-k", "sharpen", "--pad", "4")
    refused(r, "stage 2 (filter)", "--max-pixels")


# --------------------------------------------------------------------------- 5. one flag, one meaning


def test_blur_takes_a_kernel_spec(small: Path, tmp_path: Path) -> None:
    a = run("blur", small, "-k", "gaussian5", "-o", tmp_path / "a.png", "--json")
    b = run("filter", small, "-k", "gaussian5", "-o", tmp_path / "b.png")
    assert a.exit_code == 0 and b.exit_code == 0, (a.stderr, b.stderr)
    assert json.loads(a.stdout)["stages"][0]["kernel"] == "gaussian5"
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "a.png")),
                                  np.asarray(Image.open(tmp_path / "b.png")))


@pytest.mark.parametrize("extra", [["--sigma", "2"], ["--size", "5"], ["--type", "box"],
                                   ["--truncate", "2"]])
def test_blur_kernel_and_builder_flags_contradict(small: Path, extra: list[str]) -> None:
    refused(run("blur", small, "-k", "gaussian5", *extra), "-k", extra[0])


@pytest.mark.parametrize(("args", "phrase"), [
    (["--size", "5", "--truncate", "2", "--sigma", "1"], "--truncate"),
    (["--truncate", "2"], "--sigma"),
    (["--type", "box", "--truncate", "2"], "--truncate"),
])
def test_blur_truncate_only_with_sigma_alone(small: Path, args: list[str], phrase: str) -> None:
    refused(run("blur", small, *args), phrase)


def test_bare_number_after_k_points_to_size(small: Path) -> None:
    """filter has no kernel size: ``-k 5`` there is refused with the way to say either."""
    refused(run("filter", small, "-k", "5"), "--size 5", "[[5]]")


@pytest.mark.parametrize(("k", "taps"), [("5", ([1, 4, 6, 4, 1], [1, 4, 6, 4, 1])),
                                          ("3,5", ([1, 2, 1], [1, 4, 6, 4, 1]))])
def test_blur_k_with_a_bare_size_is_the_size(small: Path, tmp_path: Path, k: str,
                                             taps: tuple[list[int], list[int]]) -> None:
    """SPEC: ``blur -k/--size N``. A bare N or Y,X after ``-k`` is the size (a 1x1 or 1x2 blur kernel
    means nothing); OpenCV's fixed Gaussian taps for 3 and 5, checked against scipy."""
    out = tmp_path / "b.npy"
    r = run("blur", small, "-k", k, "-o", out, "--json")
    assert r.exit_code == 0, r.stderr
    size = [int(v) for v in k.split(",")]
    assert json.loads(r.stdout)["stages"][0]["kernel_size"] == (size * 2)[-2:]
    with Image.open(small) as im:
        x = np.asarray(im.convert("RGB"), dtype=np.float64)
    ky, kx = (np.asarray(t, float) / sum(t) for t in taps)
    want = ndi.correlate(x, np.outer(ky, kx)[:, :, None], mode="mirror")
    np.testing.assert_allclose(np.load(out), want, rtol=1e-5, atol=1e-3)
    refused(run("blur", small, "-k", k, "--size", "3"), "both give the kernel size")


def test_k_is_the_size_on_shape_and_conv(small: Path) -> None:
    """SPEC's own example, ``convcli shape 224x224 -k 3 -s 2 --pad 1 --times 2`` -> 56x56, and the conv
    stage's ``-k`` (neither takes a kernel spec)."""
    r = run("shape", "224x224", "-k", "3", "-s", "2", "--pad", "1", "--times", "2", "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["output_shape"] == [1, 1, 56, 56]
    r = run("chain", "-i", small, "--dry-run", "--json", "conv", "--out-channels", "2", "-k", "1")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["stages"][0]["kernel_size"] == [1, 1]


def test_blur_rectangular_size(small: Path, tmp_path: Path) -> None:
    r = run("blur", small, "--size", "3,5", "--type", "box", "--dry-run", "--json")
    assert r.exit_code == 0, r.stderr
    st_ = json.loads(r.stdout)["stages"][0]
    assert st_["kernel_size"] == [3, 5] and st_["pad"] == [1, 1, 2, 2]


def test_size_is_the_size_flag_everywhere() -> None:
    for command in (["blur"], ["chain", "conv"], ["shape"]):
        text = run(*command, "--help").stdout
        assert "--size" in text, command
        assert "--kernel-size" not in text
    shape = run("shape", "224x224", "--size", "3", "-s", "2", "--pad", "1", "--times", "2")
    assert shape.exit_code == 0, shape.stderr
    assert shape.stdout.splitlines()[0] == "224x224 -> 112x112 -> 56x56"
    assert run("shape", "224", "--kernel-size", "3").exit_code == 2


# --------------------------------------------------------------------------- 6. suggestions and names


def test_padding_typo_suggests_names(small: Path) -> None:
    line = refused(run("filter", small, "-k", "sharpen", "-p", "reflective"), "-p", "did you mean")
    assert "reflect" in line.split("did you mean", 1)[1]


@pytest.mark.parametrize(("ext", "name"), [(".ico", "ICO"), (".ppm", "PPM"), (".psd", "PSD")])
def test_read_only_output_formats_say_so_and_suggest_png(small: Path, tmp_path: Path, ext: str,
                                                         name: str) -> None:
    refused(run("filter", small, "-k", "sharpen", "-o", tmp_path / f"out{ext}"), f"reads {name}", "out.png")


def test_explain_and_demo_name_the_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nothere.png"
    refused(run("explain", missing, "--at", "0,0"), str(missing), status=1)
    refused(run("demo", "--image", missing, "--out-dir", tmp_path / "d"), "--image", str(missing), status=1)


# --------------------------------------------------------------------------- 7. report wording


def test_report_wording(tmp_path: Path) -> None:
    cat = Path(__file__).parent.parent / "sample_images" / "cat224.png"
    lit = run("filter", cat, "-k", "0 -1 0; -1 5 -1; 0 -1 0", "-o", tmp_path / "l.png")
    assert lit.exit_code == 0, lit.stderr
    assert "literal (sum 1) 3x3" in lit.stdout and "3x3 (sum 1) 3x3" not in lit.stdout
    chain = run("chain", "-i", cat, "-o", tmp_path / "c.png", "--linear-light", "--json", "gray", "relu")
    rec = json.loads(chain.stdout)
    for st_ in rec["stages"]:
        assert st_["kernel_size"] is None and st_["arithmetic"] is None and st_["stride"] is None
    assert any("linear light" in n for n in rec["notes"])
    plain = run("chain", "-i", cat, "-o", tmp_path / "c.png", "gray", "relu").stdout
    assert "dilation" not in plain and "1x1" not in plain and "//" not in plain
    npy = run("filter", cat, "-k", "sharpen", "-o", tmp_path / "o.npy").stdout
    assert "raw float32, no clipping" in npy and "clipped" not in npy
    assert "SPEC" not in run("shape", "--help").stdout


def test_zero_sum_clip_hint(tmp_path: Path) -> None:
    cat = Path(__file__).parent.parent / "sample_images" / "cat224.png"
    r = run("filter", cat, "-k", "sobel-x", "-o", tmp_path / "s.png", "--json")
    rec = json.loads(r.stdout)
    # Sobel-x on a photo: about half the responses are negative, all cut by clip.
    assert rec["range"]["clipped_fraction"] > 0.1 and rec["range"]["min"] < 0
    assert any("--range abs" in n and "normalize" in n for n in rec["notes"])
    for args in (["-k", "sobel-x", "--range", "abs"], ["-k", "sharpen"]):
        other = json.loads(run("filter", cat, *args, "-o", tmp_path / "t.png", "--json").stdout)
        assert not any("--range abs" in n for n in other["notes"])


def test_no_spec_citations_in_the_package() -> None:
    root = Path(__file__).parent.parent / "convcli"
    for path in root.rglob("*.py"):
        assert "SPEC §" not in path.read_text(encoding="utf-8"), path


@pytest.mark.parametrize("value", ["0", "-1", "1e400"])
def test_sigma_must_be_positive_and_finite(small: Path, value: str) -> None:
    refused(run("blur", small, "--sigma", value), "--sigma")


def test_readme_uses_the_new_spellings_and_real_files() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    assert "--kernel-size" not in readme
    commands = [ln.removeprefix("$ ") for ln in readme.splitlines()
                if ln.startswith(("convcli ", "$ convcli "))]
    for line in commands:
        words = line.split("#", 1)[0].split()
        for flag, value in zip(words, words[1:], strict=False):
            assert not (flag == "-k" and value.isdigit()), line  # a size is --size N
        for name in ("cat.png", "me.jpg", "photo.jpg"):
            assert name not in words, line


@pytest.mark.parametrize(("patch", "phrase"), [
    ("1e30 1 1; 1 1 1; 1 1 1", "--patch is too large"),
    ("nan 1 1; 1 1 1; 1 1 1", "--patch row 1: 'nan' is not finite"),
    ("1 2; 3", "--patch row 2"),
])
@pytest.mark.parametrize("command", ["explain", "animate"])
def test_a_bad_patch_is_named_as_the_patch(tmp_path: Path, command: str, patch: str, phrase: str) -> None:
    """0.2 said "kernel '--patch' is too large" and "kernel row 1" of the input patch."""
    out = ["-o", tmp_path / "a.gif"] if command == "animate" else []
    line = refused(run(command, "--patch", patch, *out), phrase)
    assert "kernel" not in line


@pytest.mark.parametrize("flags", [["-s", "2"], ["-p", "zeros"], ["--pad", "5"], ["-d", "2"]])
def test_explain_patch_refuses_geometry_it_would_ignore(flags: list[str]) -> None:
    """With --patch (no --unroll) the patch is the window: 0.2 ignored -s/-p/--pad in silence."""
    refused(run("explain", "--patch", "1 2 3; 4 5 6; 7 8 9", *flags), flags[0], "--unroll")
    r = run("explain", "--patch", "1 2 3; 4 5 6; 7 8 9", "--unroll", "-p", "valid", *flags)
    assert "nothing to slide" not in r.stderr


def test_small_messages_say_what_is_true(tmp_path: Path) -> None:
    """A size hint that is itself valid, a sum that is visibly over the limit, no 'high-pass' of nothing."""
    line = refused(run("kernels", "0"), "--size N (N >= 1)")
    assert "--size 0" not in line
    refused(run("kernels", "1e9 1"), "sum to 1000000001, over 1e+09")
    r = run("kernels", "0 0 0", "--response", "-o", tmp_path / "r.png")
    assert r.exit_code == 0, r.stderr
    assert "zero: passes nothing" in r.stdout and "pass:" not in r.stdout


def test_chain_conv_refuses_random_weight_options_beside_weights(tmp_path: Path, small: Path) -> None:
    """0.2 ignored --size and --seed in silence when --weights gave the weights."""
    np.save(tmp_path / "w.npy", np.ones((2, 3, 3, 3)) / 27)
    base = ["chain", "-i", small, "-o", tmp_path / "o.npy", "conv", "--weights", tmp_path / "w.npy"]
    refused(run(*base, "--size", "5"), "--size 5,5 contradicts --weights with 3x3 kernels")
    refused(run(*base, "--seed", "3"), "--seed draws random weights")
    r = run(*base, "--size", "3")  # agreeing with the weights is fine
    assert r.exit_code == 0, r.stderr


@pytest.mark.parametrize(("flags", "words"), [
    (["--name", "{stem}.png", "--format", "npy"], ["--format npy contradicts", "small.png", ".npy"]),
    (["--name", "{stem}.jpg", "--format", "png"], ["--format png contradicts", "small.jpg"]),
    (["--bit-depth", "float"], ["--bit-depth float", "PNG cannot hold", "small.sharpen.png"]),
    (["--name", "{stem}.webp", "--bit-depth", "float"], ["--bit-depth float", "WEBP cannot hold"]),
])
def test_format_flags_are_checked_against_the_names_out_dir_makes(
        small: Path, tmp_path: Path, flags: list[str], words: list[str]) -> None:
    """-o was checked; names made by --out-dir/--name were not: a .npy file named .png was written,
    and --bit-depth float was dropped in silence."""
    out = tmp_path / "out"
    r = run("filter", small, "-k", "sharpen", "--out-dir", out, *flags)
    assert r.exit_code == 2, r.output
    line = r.output.strip()
    assert len(line.splitlines()) == 1
    for w in words:
        assert w in line
    assert not out.exists() or not any(out.iterdir())


def test_bit_depth_float_to_stdout_needs_a_float_format(small: Path) -> None:
    r = CliRunner().invoke(cli, ["filter", "-", "-k", "sharpen", "--bit-depth", "float"],
                           input=small.read_bytes())
    assert r.exit_code == 2
    assert "(stdout)" in r.output and "--format npy" in r.output
    r = CliRunner().invoke(cli, ["filter", "-", "-k", "sharpen", "--bit-depth", "float",
                                 "--format", "npy", "-q"], input=small.read_bytes())
    assert r.exit_code == 0
    import io

    got = np.load(io.BytesIO(r.stdout_bytes))
    assert got.shape == (64, 80, 3) and got.dtype == np.float32


@pytest.mark.parametrize("scale", ["1e308", "-1e308", "1e200", "2e8"])
def test_a_scale_that_overflows_the_kernel_is_one_line(small: Path, tmp_path: Path, scale: str) -> None:
    """sharpen's |entries| sum to 9: any scale past 1e9/9 is refused by the kernel limit, in one line
    (1e308 printed NumPy's 'overflow encountered in multiply' warning first)."""
    r = run("filter", small, "-k", "sharpen", "--scale", scale, "-o", tmp_path / "o.png")
    assert r.exit_code == 2
    assert r.output.count("\n") == 1 and "warning" not in r.output
    assert f"--scale {float(scale):g}" in r.output and "too large" in r.output
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("flag", ["-o", "--out-dir", "--name", "--montage"])
def test_an_empty_path_flag_is_refused(small: Path, tmp_path: Path, flag: str,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """``--out-dir "$OUT"`` with OUT unset: '' wrote into the current folder (--out-dir, --name) or
    dropped the montage in silence; now one line naming the flag, exit 2, nothing written."""
    monkeypatch.chdir(tmp_path)  # where '' as a folder wrote
    before = sorted(p.name for p in small.parent.iterdir())
    r = run("filter", small, "-k", "sharpen", flag, "")
    assert r.exit_code == 2
    assert r.output.count("\n") == 1 and f"{flag}" in r.output and "is empty" in r.output
    assert sorted(p.name for p in small.parent.iterdir()) == before


def test_valid_takes_no_padding_but_pad_0_which_says_the_same(small: Path) -> None:
    """README's padding table: with -p valid, --pad must not be given, but --pad 0 (no padding) is
    taken; anything else is refused."""
    r = run("filter", small, "-k", "sharpen", "-p", "valid", "--pad", "0", "--dry-run", "--json")
    assert r.exit_code == 0, r.stderr
    assert json.loads(r.stdout)["output_shape"] == [1, 3, 62, 78]  # 64x80 less 2 each way
    for pad in ("1", "same", "0,0,0,1"):
        refused(run("filter", small, "-k", "sharpen", "-p", "valid", "--pad", pad), "valid")


@pytest.mark.parametrize("argv", [
    ["filter", "{small}", "-o", "{tmp}/o.png", "-k", "{digits}"],
    ["explain", "--patch", "1", "-k", "{digits}"],
    ["animate", "-o", "{tmp}/a.gif", "-k", "{digits}"],
    ["chain", "-i", "{small}", "-o", "{tmp}/o.png", "filter", "-k", "{digits}"],
], ids=["filter", "explain", "animate", "chain"])
def test_a_kernel_of_thousands_of_digits_is_one_line(small: Path, tmp_path: Path, argv: list[str]) -> None:
    """int() of a 5000-digit kernel raised Python's digit-limit ValueError: a traceback."""
    digits = "1" * 5000
    line = refused(run(*[a.format(small=small, tmp=tmp_path, digits=digits) for a in argv]),
                   "-k takes a kernel", "5000-digit number")
    assert len(line) < 200


@pytest.mark.parametrize("argv", [["chain", "-i", "{small}", "-o", "{tmp}/o.png", "conv", "--seed", "-1"],
                                  ["demo", "{tmp}/demo", "--seed", "-1"],
                                  ["learn", "{small}", "{small}", "-o", "{tmp}/k.txt", "--seed", "-1"]],
                         ids=["chain conv", "demo", "learn"])
def test_a_negative_seed_is_a_usage_error(small: Path, tmp_path: Path, argv: list[str]) -> None:
    """NumPy's generators take seeds >= 0: --seed -1 was a traceback from numpy.random."""
    refused(run(*[a.format(small=small, tmp=tmp_path) for a in argv]), "--seed", "-1")
    assert not (tmp_path / "o.png").exists() and not (tmp_path / "demo").exists()


@pytest.mark.parametrize(("ext", "side"), [(".jpg", 65500), (".gif", 65535), (".webp", 16383)])
def test_a_result_wider_than_its_format_holds_is_refused_from_the_header(tmp_path: Path, ext: str,
                                                                          side: int) -> None:
    """A 70000-pixel-wide JPEG printed libjpeg's own line and then a vague error; a GIF was an internal
    error (OverflowError); --dry-run said ok. Found from the header now, before a pixel is read."""
    src = tmp_path / "wide.png"
    Image.new("RGB", (side + 1, 2)).save(src)
    for extra in ([], ["--dry-run"]):
        r = run("blur", src, "-o", tmp_path / f"o{ext}", *extra)
        refused(r, f"the result is {side + 1}x2", f"at most {side} pixels a side", "write .png")
    assert not (tmp_path / f"o{ext}").exists()
    edge = tmp_path / "edge.png"
    Image.new("RGB", (side, 2)).save(edge)  # the largest each holds is written
    assert run("blur", edge, "-o", tmp_path / f"ok{ext}", "-q").exit_code == 0
    with Image.open(tmp_path / f"ok{ext}") as im:
        assert im.size == (side, 2)


def test_a_montage_to_stdout_is_refused_not_a_file_named_dash(small: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """``--montage -`` wrote a file named '-' in the current folder (beside ``-o -`` too); so did
    learn's ``--montage -``, ``--curve -`` and ``-o -``."""
    monkeypatch.chdir(tmp_path)
    refused(run("filter", small, "-k", "sharpen", "-o", tmp_path / "o.png", "--montage", "-"),
            "--montage", "not to stdout")
    for flag in ("--montage", "--curve", "-o"):
        others = [] if flag == "-o" else ["-o", tmp_path / "k.txt"]
        refused(run("learn", small, small, "--steps", "3", *others, flag, "-"), f"{flag} -", "not stdout")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.png"]


def test_a_float_tiff_convcli_wrote_is_refused_as_input_pointing_to_npy(small: Path, tmp_path: Path) -> None:
    """convcli writes float TIFF (--bit-depth float) for other tools; read back, the refusal names the
    format that does round-trip raw floats."""
    assert run("blur", small, "--gray", "--bit-depth", "float", "-o", tmp_path / "f.tif", "-q").exit_code == 0
    line = refused(run("blur", tmp_path / "f.tif", "-o", tmp_path / "o.png"), "mode F", "use .npy", status=1)
    assert str(tmp_path / "f.tif") in line


@pytest.mark.parametrize(("argv", "phrase"), [
    (["kernels", "box:size=" + "1" * 300], "is over the limit of 1001"),
    (["kernels", "box:size=" + "x" * 300], "is not a number"),
    (["blur", "{small}", "-o", "{tmp}/o.png", "--frames", "1" * 300], "the image has 1 frame"),
], ids=["huge size", "not a number", "frames"])
def test_a_huge_value_is_cut_in_the_error_line(small: Path, tmp_path: Path, argv: list[str],
                                               phrase: str) -> None:
    """A 300-character value was repeated whole: a 370-character error line."""
    line = refused(run(*[a.format(small=small, tmp=tmp_path) for a in argv]), phrase)
    assert len(line) < 140 + len(str(small)) and "..." in line


@pytest.mark.parametrize("argv", [
    ["blur", "{src}", "-o", "{d}/o.png", "--montage", "{d}/m.jpg"],
    ["blur", "{src}", "-o", "{d}/o.png", "--montage", "{d}/m"],
    ["learn", "{src}", "{src}", "-o", "{d}/k.txt", "--curve", "{d}/c.jpg"],
    ["learn", "{src}", "{src}", "-o", "{d}/k.txt", "--montage", "{d}/m.webp"],
], ids=["montage .jpg", "montage without extension", "learn curve .jpg", "learn montage .webp"])
def test_a_picture_written_as_png_needs_a_png_name(small: Path, tmp_path: Path, argv: list[str]) -> None:
    """--montage m.jpg (and learn's --curve, --montage) wrote PNG data under a .jpg or .webp name,
    exit 0, where channel maps follow their extension and --direction-out refuses one it cannot write."""
    d = tmp_path / "out"
    d.mkdir()
    r = run(*[a.format(src=small, d=d) for a in argv])
    assert r.exit_code == 2, r.output
    assert r.output.count("\n") == 1 and "PNG" in r.output and ".png" in r.output
    assert not list(d.iterdir())


@pytest.mark.parametrize("argv", [
    ["animate", "-o", "{d}/{long}.gif"],
    ["learn", "{src}", "{src}", "-o", "{d}/k.txt", "--curve", "{d}/{long}.png"],
    ["kernels", "sharpen", "--response", "-o", "{d}/{long}.png"],
], ids=["animate", "learn curve", "kernels response"])
def test_a_name_longer_than_the_file_system_takes_is_refused_first(small: Path, tmp_path: Path,
                                                                   argv: list[str]) -> None:
    """The commands that plan their own files checked inputs and collisions but not lengths: a
    300-byte name failed when written, after the work, exit 1 ('cannot write ...: file name too
    long'), where the image commands refuse it from the plan (exit 2)."""
    d = tmp_path / "out"
    d.mkdir()
    r = run(*[a.format(src=small, d=d, long="a" * 300) for a in argv])
    assert r.exit_code == 2, r.output
    assert r.output.count("\n") == 1 and "over the file system's limit" in r.output
    assert not list(d.iterdir())


def test_conv_weights_and_biases_within_the_limits_flags_have(small: Path, tmp_path: Path) -> None:
    """--out-channels stops at 4096, but --weights of 100000 rows wrote 56,688 channel maps in a
    minute; weights of 3e38 (finite in float32) gave inf written as a result, exit 0; so did --bias
    1e300 on filter and --amount 1e308 on sharpen. Each is refused now, exit 2, nothing written."""
    d = tmp_path / "out"
    d.mkdir()
    many, huge, bias = tmp_path / "many.npy", tmp_path / "huge.npy", tmp_path / "bias.npy"
    np.save(many, np.zeros((4097, 3, 1, 1), np.float32))
    np.save(huge, np.full((2, 3, 1, 1), 3e38, np.float32))
    np.save(bias, np.array([1e30, 0.0], np.float32))
    conv = ["chain", "-i", small, "-o", d / "c.png", "conv"]
    for argv, words in (([*conv, "--weights", many], "4097 output channels"),
                        ([*conv, "--weights", huge], "overflow"),
                        ([*conv, "--out-channels", "2", "-k", "1", "--bias", bias], "overflow"),
                        (["filter", small, "-k", "sharpen", "--bias", "1e300", "-o", d / "f.png"], "1e+09"),
                        (["sharpen", small, "--amount", "1e308", "-o", d / "s.png"], "1e+09")):
        r = run(*argv)
        assert r.exit_code == 2, (argv, r.output)
        assert r.output.count("\n") == 1 and words in r.output, r.output
    assert not list(d.iterdir())


def test_a_fifo_is_called_the_same_as_input_output_and_kernel_file(small: Path, tmp_path: Path) -> None:
    """Three modules had their own words for a path that is not a regular file ('a FIFO', 'a FIFO
    (named pipe)', 'a folder (through a symbolic link)'...): one table now names each kind."""
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    as_input = run("blur", fifo, "-o", tmp_path / "o.png")
    as_output = run("blur", small, "-o", fifo)
    as_kernel = run("filter", small, "-k", f"@{fifo}", "-o", tmp_path / "o.png")
    for r in (as_input, as_output, as_kernel):
        assert "is a FIFO" in r.output and "named pipe" not in r.output, r.output


@pytest.mark.parametrize("argv", [["learn", "{fifo}", "{small}", "-o", "{d}/k.txt"],
                                  ["explain", "{fifo}", "--at", "0,0", "-k", "sharpen"],
                                  ["demo", "--image", "{fifo}", "--out-dir", "{d}/tour"]])
def test_a_fifo_named_as_an_image_by_learn_explain_or_demo_is_refused(small: Path, tmp_path: Path,
                                                                      argv: list[str]) -> None:
    """The image commands refuse a FIFO as an input; learn, explain and demo opened it and waited for
    a writer that never comes."""
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    d = tmp_path / "out"
    r = run(*[a.format(fifo=fifo, small=small, d=d) for a in argv])
    assert r.exit_code == 1 and "is a FIFO, not an image file" in r.output, r.output
