"""Every command reads the .npy arrays convcli writes: results chain through files without rounding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import ndimage

from convcli.cli.app import cli
from convcli.errors import InputError
from convcli.io.decode import read_header, read_image
from convcli.io.npy import NPY_MAGIC

ROOT = Path(__file__).resolve().parent.parent
CAT = ROOT / "sample_images" / "cat224.png"


def _run(args: list[str], **kw: object) -> object:
    return CliRunner().invoke(cli, args, catch_exceptions=False, **kw)


def test_npy_round_trip_is_identical(tmp_path: Path) -> None:
    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    assert _run(["filter", str(CAT), "-k", "sharpen", "-o", str(a), "-q"]).exit_code == 0
    r = _run(["filter", str(a), "-k", "identity", "-o", str(b), "--json"])
    assert r.exit_code == 0 and r.stderr == ""
    x, y = np.load(a), np.load(b)
    assert x.shape == (224, 224, 3) and x.min() < 0 and x.max() > 255  # floats, not pixels
    assert np.array_equal(x, y)


@pytest.mark.parametrize("shape", [(4, 5), (4, 5, 1), (6, 3, 2)])
def test_npy_round_trip_keeps_the_arrays_shape(tmp_path: Path, shape: tuple[int, ...]) -> None:
    """README: ``filter a.npy -k identity -o b.npy`` gives identical arrays, a (H, W, 1) one included
    (0.3 wrote it back as (H, W)); a grey image file's float result stays (H, W)."""
    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    x = np.random.default_rng(len(shape)).uniform(-50, 300, shape).astype(np.float32)
    np.save(a, x)
    r = _run(["filter", str(a), "-k", "identity", "-o", str(b), "-q"])
    assert r.exit_code == 0, r.stderr
    y = np.load(b)
    assert y.shape == x.shape and np.array_equal(x, y)
    grey = tmp_path / "g.npy"
    assert _run(["filter", str(CAT), "-k", "identity", "--gray", "-o", str(grey), "-q"]).exit_code == 0
    assert np.load(grey).shape == (224, 224)


def test_filter_of_npy_matches_scipy(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    arr = rng.uniform(-50, 300, (20, 17)).astype(np.float64)
    src, out = tmp_path / "x.npy", tmp_path / "y.npy"
    np.save(src, arr)
    assert _run(["filter", str(src), "-k", "box3", "-p", "zeros", "-o", str(out), "-q"]).exit_code == 0
    np.testing.assert_allclose(np.load(out), ndimage.correlate(arr, np.full((3, 3), 1 / 9), mode="constant"),
                               rtol=1e-5, atol=1e-3)


def test_npy_from_stdin_and_in_folders(tmp_path: Path) -> None:
    arr = np.arange(30, dtype=np.float32).reshape(5, 6)
    src = tmp_path / "d" / "x.npy"
    src.parent.mkdir()
    np.save(src, arr)
    out = tmp_path / "s.npy"
    r = _run(["filter", "-", "-k", "identity", "-o", str(out), "-q"], input=src.read_bytes())
    assert r.exit_code == 0
    assert np.array_equal(np.load(out), arr)
    r = _run(["filter", str(src.parent), "-k", "identity", "--out-dir", str(tmp_path / "o"), "-q"])
    assert r.exit_code == 0
    assert np.array_equal(np.load(tmp_path / "o" / "x.identity.npy"), arr)


def test_header_and_channels() -> None:
    import io

    buf = io.BytesIO()
    np.save(buf, np.zeros((4, 7, 5), dtype=np.int16))
    h = read_header(buf.getvalue())
    assert (h.width, h.height, h.channels, h.has_alpha, h.format) == (7, 4, 5, False, "NPY")
    img = read_image(buf.getvalue())
    assert img.color.dtype == np.float32 and img.color.shape == (4, 7, 5)


@pytest.mark.parametrize(("array", "reason"), [
    (np.zeros((3,)), r"expected \(H, W\) or \(H, W, C\)"),
    (np.zeros((2, 3), dtype=complex), "dtype"),
    (np.array([[1.0, np.nan]]), "NaN"),
    (np.zeros((0, 3)), "zero-sized"),
])
def test_bad_arrays_are_refused(array: np.ndarray, reason: str) -> None:
    import io

    buf = io.BytesIO()
    np.save(buf, array)
    with pytest.raises(InputError, match=reason):
        read_image(buf.getvalue())


def test_truncated_and_too_large_npy(tmp_path: Path) -> None:
    import io

    buf = io.BytesIO()
    np.save(buf, np.zeros((100, 100), dtype=np.float32))
    with pytest.raises(InputError, match="truncated"):
        read_header(buf.getvalue()[:-10])
    with pytest.raises(InputError, match="max-pixels"):
        read_header(buf.getvalue(), max_pixels=100)
    bad = tmp_path / "bad.npy"
    bad.write_bytes(buf.getvalue()[:-10])
    r = _run(["filter", str(bad), "-k", "box3", "-o", str(tmp_path / "o.png")])
    assert r.exit_code == 1 and "truncated" in r.stderr and not (tmp_path / "o.png").exists()


def test_flatten_reports_and_writes_the_vector(tmp_path: Path) -> None:
    out = tmp_path / "f.npy"
    r = _run(["chain", "-i", str(CAT), "-o", str(out), "--json", "conv", "--out-channels", "4", "-s", "2",
              "--seed", "3", "relu", "flatten"])
    assert r.exit_code == 0, r.stderr
    import json

    rec = json.loads(r.stdout)
    assert rec["output_shape"] == [1, 4 * 112 * 112]
    assert rec["stages"][-1]["input_shape"] == [1, 4, 112, 112]
    assert rec["stages"][-1]["output_shape"] == [1, 50176]
    maps = tmp_path / "m.npy"
    assert _run(["chain", "-i", str(CAT), "-o", str(maps), "-q", "conv", "--out-channels", "4", "-s", "2",
                 "--seed", "3", "relu"]).exit_code == 0
    m = np.load(maps)  # (H, W, C); flatten is channel-major, as torch.flatten on NCHW
    np.testing.assert_array_equal(np.load(out), m.transpose(2, 0, 1).reshape(-1))
    r = _run(["chain", "-i", str(CAT), "-o", str(tmp_path / "f.png"), "flatten"])
    assert r.exit_code == 2 and ".npy" in r.stderr


def _npy_with_shape(path: Path, shape: str) -> None:
    """A .npy file whose header claims ``shape`` (written by hand: NumPy refuses to write it)."""
    hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }"
    hdr += " " * (118 - 10 - len(hdr) - 1) + "\n"
    path.write_bytes(b"\x93NUMPY\x01\x00" + len(hdr).to_bytes(2, "little") + hdr.encode() + bytes(400))


def test_negative_size_in_the_header_is_a_corrupt_file(tmp_path: Path) -> None:
    _npy_with_shape(tmp_path / "neg.npy", "(-3, 4, 3)")
    with pytest.raises(InputError, match="corrupt .npy header: negative size"):
        read_header(str(tmp_path / "neg.npy"))
    r = CliRunner().invoke(cli, ["filter", str(tmp_path / "neg.npy"), "-k", "sharpen",
                                 "-o", str(tmp_path / "o.npy")])
    assert r.exit_code == 1 and "negative size" in r.output


def test_channels_count_against_max_pixels(tmp_path: Path) -> None:
    """--max-pixels admits 4 values a pixel (an RGBA file): 100x100x64 is 16 times what 10000 admits."""
    np.save(tmp_path / "deep.npy", np.zeros((100, 100, 64), np.float32))
    with pytest.raises(InputError, match="640000 values exceeds"):
        read_header(str(tmp_path / "deep.npy"), max_pixels=10_000)
    assert read_header(str(tmp_path / "deep.npy"), max_pixels=160_000).channels == 64


@pytest.mark.parametrize(("major", "refused"), [(1, False), (2, False), (3, False), (4, True), (9, True)])
def test_npy_versions_are_read_one_way_as_image_and_as_kernel(tmp_path: Path, major: int,
                                                              refused: bool) -> None:
    """Image inputs read any version after 1.0 with the 2.0 reader, kernel files refused all but
    1.0-3.0: one header reader now, for both. Version 3.0 is 2.0's layout with a UTF-8 header."""
    header = b"{'descr': '<f8', 'fortran_order': False, 'shape': (3, 3), }"
    size = 2 if major == 1 else 4
    pad = -(len(NPY_MAGIC) + 2 + size + len(header) + 1) % 64
    text = header + b" " * pad + b"\n"
    data = NPY_MAGIC + bytes([major, 0]) + len(text).to_bytes(size, "little") + text
    data += np.arange(9, dtype="<f8").tobytes()
    path = tmp_path / "a.npy"
    path.write_bytes(data)
    runner = CliRunner()
    image = runner.invoke(cli, ["blur", str(path), "-o", str(tmp_path / "o.npy"), "-q"])
    kernel = runner.invoke(cli, ["filter", str(path), "-k", f"@{path}", "-o", str(tmp_path / "k.npy"), "-q"])
    if refused:
        assert image.exit_code == 1 and f"unsupported .npy version {major}.0" in image.stderr
        assert kernel.exit_code == 2 and f"unsupported .npy version {major}.0" in kernel.stderr
    else:
        assert image.exit_code == 0 and kernel.exit_code == 0, (image.stderr, kernel.stderr)
        want = ndimage.correlate(np.arange(9.0).reshape(3, 3), np.arange(9.0).reshape(3, 3), mode="mirror")
        np.testing.assert_allclose(np.load(tmp_path / "k.npy"), want, rtol=1e-6)


def test_a_float32_overflow_is_reported_not_shown_as_a_range_of_zero(tmp_path: Path) -> None:
    """3e38 everywhere: the exact sharpen result (3e38) fits float32, but the float32 sums overflow
    (inf - inf = NaN), written as 0. The report said min 0, max 0; its range is null now, with a
    note naming --float64, which gets it right (white)."""
    import json

    src = tmp_path / "big.npy"
    np.save(src, np.full((3, 3), 3e38, np.float32))
    base = ["filter", str(src), "-k", "sharpen", "-o"]
    r = CliRunner().invoke(cli, [*base, str(tmp_path / "s.png"), "--json"])
    rec = json.loads(r.stdout)
    assert r.exit_code == 0 and rec["range"]["min"] is None and rec["range"]["max"] is None
    assert any("--float64" in n and "NaN is written as 0" in n for n in rec["notes"])
    r = CliRunner().invoke(cli, [*base, str(tmp_path / "s.npy"), "--json"])  # raw floats keep the NaN
    note = next(n for n in json.loads(r.stdout)["notes"] if "overflow" in n)
    assert "written as 0" not in note and np.isnan(np.load(tmp_path / "s.npy")).all()
    r = CliRunner().invoke(cli, [*base, str(tmp_path / "w.png"), "--float64", "-q"])
    from PIL import Image

    assert r.exit_code == 0 and np.asarray(Image.open(tmp_path / "w.png")).min() == 255


def test_a_header_that_is_no_dict_literal_is_said_plainly(tmp_path: Path) -> None:
    """The reason showed Python's internals: "malformed node or string ... <ast.Name object at 0x7ef...>"
    (a new address every run)."""
    bad = tmp_path / "bad.npy"
    bad.write_bytes(NPY_MAGIC + b"\x01\x00\x10\x00{garbage}      \n")
    runner = CliRunner()
    for args, status in ((["blur", str(bad)], 1), (["filter", str(bad), "-k", f"@{bad}"], 2)):
        r = runner.invoke(cli, [*args, "-o", str(tmp_path / "o.png")])
        assert r.exit_code == status
        assert "is not a Python dict literal" in r.stderr and "0x" not in r.stderr, r.stderr


@pytest.mark.parametrize("args", [["edges"], ["blur", "--gray"]])
def test_a_npy_of_5_channels_read_as_grey_says_why_without_blaming_a_flag(tmp_path: Path,
                                                                           args: list[str]) -> None:
    """edges reads luminance: on a 5-channel .npy it said '--gray needs 1 or 3 channels' to a user who
    gave no --gray."""
    src = tmp_path / "a.npy"
    np.save(src, np.zeros((6, 7, 5), np.float32))
    r = CliRunner().invoke(cli, [args[0], str(src), *args[1:], "-o", str(tmp_path / "o.npy")])
    assert r.exit_code == 1
    assert r.stderr == (f"convcli: error: {src}: read as grey (luminance), which needs 1 or 3 channels; "
                        "the .npy array has 5\n")
