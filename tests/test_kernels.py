"""Kernels: the registry (README 'Kernels'), immutability, the literal/file parser and its errors,
--normalize/--scale, and the Gaussian builder against OpenCV's getGaussianKernel."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from convcli.cli import cli
from convcli.cli.kernelspec import cli_kernel
from convcli.core.kernels import (
    REGISTRY,
    Kernel,
    box_kernel,
    gaussian_1d,
    gaussian_kernel,
    get_kernel,
    parse_literal,
)
from convcli.core.specs import parse_kernel
from convcli.errors import UsageError
from convcli.io.kernelfile import load_kernel_file

# Hand-written from README 'Kernels', the lecture and the operators' textbook definitions.
EXPECTED = {
    "identity": [[0, 0, 0], [0, 1, 0], [0, 0, 0]],
    "sharpen": [[0, -1, 0], [-1, 5, -1], [0, -1, 0]],  # the lecture's
    "gaussian3": np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16,
    "gaussian5": np.array([
        [1, 4, 6, 4, 1],
        [4, 16, 24, 16, 4],
        [6, 24, 36, 24, 6],
        [4, 16, 24, 16, 4],
        [1, 4, 6, 4, 1],
    ]) / 256,  # OpenCV's fixed 5-tap [1 4 6 4 1]/16, outer product
    "box3": np.ones((3, 3)) / 9,
    "box5": np.ones((5, 5)) / 25,
    "edge-vertical": [[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]],  # lecture K_v
    "edge-horizontal": [[-1, -1, -1], [0, 0, 0], [1, 1, 1]],  # lecture K_h
    "sobel-x": [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],
    "sobel-y": [[-1, -2, -1], [0, 0, 0], [1, 2, 1]],
    "scharr-x": [[-3, 0, 3], [-10, 0, 10], [-3, 0, 3]],
    "scharr-y": [[-3, -10, -3], [0, 0, 0], [3, 10, 3]],
    "laplacian": [[0, 1, 0], [1, -4, 1], [0, 1, 0]],
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_registry_matrices(name):
    k = REGISTRY[name]
    assert k.name == name
    assert k.weights.dtype == np.float64
    np.testing.assert_array_equal(k.weights, np.asarray(EXPECTED[name], dtype=np.float64))


def test_registry_has_every_required_name():
    required = set(EXPECTED) | {"emboss", "outline"}
    assert required <= set(REGISTRY)


def test_emboss_and_outline_are_what_their_names_promise():
    """SPEC names them without matrices: check the defining properties instead."""
    emboss = REGISTRY["emboss"].weights
    outline = REGISTRY["outline"].weights
    assert emboss.shape == outline.shape == (3, 3)
    # emboss: antisymmetric about the centre except the centre itself, sums to 1 (keeps flat areas)
    np.testing.assert_array_equal(emboss + emboss[::-1, ::-1] - 2 * np.diag([0, emboss[1, 1], 0]), 0)
    assert emboss.sum() == pytest.approx(1.0)
    assert emboss[0, 0] < 0 < emboss[2, 2]
    # outline: a high-pass, zero on flat areas, positive centre surrounded by negatives
    assert outline.sum() == 0
    assert outline[1, 1] > 0
    assert np.all(np.delete(outline.ravel(), 4) < 0)


@pytest.mark.parametrize("name", ["gaussian3", "gaussian5", "box3", "box5"])
def test_blurs_sum_to_one(name):
    assert REGISTRY[name].weights.sum() == pytest.approx(1.0, abs=1e-15)


@pytest.mark.parametrize("name", ["edge-vertical", "edge-horizontal", "sobel-x", "sobel-y", "scharr-x",
                                  "scharr-y", "laplacian", "outline"])
def test_derivatives_sum_to_zero(name):
    assert REGISTRY[name].weights.sum() == 0


@pytest.mark.parametrize(("spelling", "name"), [
    ("sharpen", "sharpen"), ("SHARPEN", "sharpen"), (" sobel-x ", "sobel-x"), ("sobel_x", "sobel-x"),
    ("Scharr_Y", "scharr-y"), ("prewitt-x", "edge-vertical"), ("prewitt-y", "edge-horizontal"),
])
def test_get_kernel_spellings(spelling, name):
    assert get_kernel(spelling) is REGISTRY[name]
    assert parse_kernel(spelling) is REGISTRY[name]


@pytest.mark.parametrize(("typo", "suggestion"), [
    ("sharpn", "sharpen"), ("sobelx", "sobel-x"), ("gausian3", "gaussian3"), ("laplace", "laplacian"),
])
def test_unknown_name_suggests(typo, suggestion):
    with pytest.raises(UsageError) as info:
        parse_kernel(typo)
    msg = str(info.value)
    assert repr(typo) in msg
    assert "did you mean" in msg
    assert suggestion in msg


def test_unknown_name_without_a_close_match():
    with pytest.raises(UsageError, match="unknown kernel 'zzzzzz'") as info:
        get_kernel("zzzzzz")
    assert "did you mean" not in str(info.value)


# --- immutability --------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_registry_kernels_are_read_only(name):
    k = REGISTRY[name]
    before = k.weights.copy()
    with pytest.raises(ValueError, match="read-only"):
        k.weights[0, 0] = 42.0
    with pytest.raises(ValueError, match="read-only"):
        k.weights *= 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        k.weights = np.zeros((3, 3))  # type: ignore[misc]
    np.testing.assert_array_equal(REGISTRY[name].weights, before)


def test_kernel_copies_its_input():
    src = np.array([[1.0, 2.0], [3.0, 4.0]])
    k = Kernel("mine", src)
    src[0, 0] = 99.0
    assert k.weights[0, 0] == 1.0
    assert not k.weights.flags.writeable


def test_derived_kernels_are_new_and_read_only():
    base = REGISTRY["sharpen"]
    for derived in (base.scaled(2.0), base.flipped(), REGISTRY["box3"].normalized()):
        assert derived is not base
        assert not derived.weights.flags.writeable
    np.testing.assert_array_equal(base.weights, EXPECTED["sharpen"])


# --- literals ------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("0 -1 0; -1 5 -1; 0 -1 0", [[0, -1, 0], [-1, 5, -1], [0, -1, 0]]),
    ("1,2,3;4,5,6", [[1, 2, 3], [4, 5, 6]]),
    ("  1 , 2 ,3 ;  4   5, 6 ; ", [[1, 2, 3], [4, 5, 6]]),
    ("1 2\n3 4", [[1, 2], [3, 4]]),
    ("[1 2; 3 4]", [[1, 2], [3, 4]]),
    ("1 2 3 4 5", [[1, 2, 3, 4, 5]]),  # non-square
    ("1; 2; 3", [[1], [2], [3]]),
    ("1 2; 3 4", [[1, 2], [3, 4]]),  # even
    ("1e-1 -2.5 +3", [[0.1, -2.5, 3.0]]),
    ("-1/2 1/4; 3/8 0", [[-0.5, 0.25], [0.375, 0.0]]),
    ("1.5/3 2/-4", [[0.5, -0.5]]),
])
def test_literals(text, expected):
    for parse in (parse_literal, parse_kernel):
        k = parse(text)
        np.testing.assert_array_equal(k.weights, np.asarray(expected, dtype=np.float64))


def test_literal_fractions_are_exact_ninths():
    k = parse_kernel("1/9 1/9 1/9; 1/9 1/9 1/9; 1/9 1/9 1/9")
    np.testing.assert_array_equal(k.weights, np.full((3, 3), 1 / 9))
    assert k.weights.sum() == pytest.approx(1.0, abs=1e-15)


@pytest.mark.parametrize(("text", "fragment"), [
    ("1 2 3; 4 5; 6 7 8", "row 2"),  # ragged: names the row
    ("1 2; 3 4; 5", "row 3"),
    ("1 2; 3 x", "row 2"),  # non-numeric: names the row and the token
    ("1 2; 3 4; 5 1/0", "row 3"),  # division by zero
    ("nan 1", "row 1"),
    ("1 2; 3 inf", "row 2"),
    ("1 2; -Infinity 1", "row 2"),
    ("1 2;; 3 4", "row 2"),  # an empty row
    ("1 1; 1/2/3 1", "row 2"),  # ambiguous: neither 1/6 nor 3/2 silently
])
def test_bad_literals_name_the_row(text, fragment):
    with pytest.raises(UsageError) as info:
        parse_kernel(text)
    assert fragment in str(info.value)


def test_bad_literal_messages_say_what_is_wrong():
    with pytest.raises(UsageError, match="ragged"):
        parse_kernel("1 2 3; 4 5")
    with pytest.raises(UsageError, match=r"^kernel row 3 has 1 value, row 1 has 2 \(ragged kernel\)$"):
        parse_kernel("1 2; 3 4; 5")
    for spec in ("@", "@ ", " @"):  # not "kernel file . is a directory"
        with pytest.raises(UsageError, match=r"^'@' needs a file name after it"):
            parse_kernel(spec)
    with pytest.raises(UsageError, match="'x' is not a number"):
        parse_kernel("1 2; 3 x")
    with pytest.raises(UsageError, match="not finite"):
        parse_kernel("1 2; 3 inf")


@pytest.mark.parametrize("text", ["", "   "])
def test_empty_kernel_spec(text):
    with pytest.raises(UsageError, match="empty"):
        parse_kernel(text)


@pytest.mark.parametrize("text", [";", " ; ", "[]", "\n"])
def test_empty_literals(text):
    with pytest.raises(UsageError, match="empty"):
        parse_literal(text)
    with pytest.raises(UsageError):
        parse_kernel(text)


# --- files ---------------------------------------------------------------------------------

SOBEL_X = np.array(EXPECTED["sobel-x"], dtype=np.float64)


def test_file_txt(tmp_path):
    p = tmp_path / "k.txt"
    p.write_text("# sobel x\n-1 0 1\n-2 0 2   # middle row\n\n-1 0 1\n", encoding="utf-8")
    np.testing.assert_array_equal(cli_kernel(f"@{p}").weights, SOBEL_X)
    np.testing.assert_array_equal(load_kernel_file(p).weights, SOBEL_X)


def test_file_csv(tmp_path):
    p = tmp_path / "k.csv"
    p.write_text("-1,0,1\n-2, 0, 2\n-1,0,1\n", encoding="utf-8")
    np.testing.assert_array_equal(cli_kernel(f"@{p}").weights, SOBEL_X)


def test_file_csv_with_fractions(tmp_path):
    p = tmp_path / "k.csv"
    p.write_text("1/4,1/4\n1/4,1/4\n", encoding="utf-8")
    np.testing.assert_array_equal(cli_kernel(f"@{p}").weights, np.full((2, 2), 0.25))


def test_file_json(tmp_path):
    p = tmp_path / "k.json"
    p.write_text(json.dumps(SOBEL_X.astype(int).tolist()), encoding="utf-8")
    np.testing.assert_array_equal(cli_kernel(f"@{p}").weights, SOBEL_X)


def test_file_json_flat_list_is_one_row_as_the_literal(tmp_path):
    """``-k "[1,2,3]"`` is a 1x3 kernel; ``@k1.json`` holding [1,2,3] said "expected a list of lists"."""
    p = tmp_path / "k1.json"
    p.write_text("[1, 2, 3.5]", encoding="utf-8")
    np.testing.assert_array_equal(cli_kernel(f"@{p}").weights, [[1.0, 2.0, 3.5]])
    wide = tmp_path / "wide.json"  # the same side limit as a literal row
    wide.write_text(json.dumps([1] * 1002), encoding="utf-8")
    with pytest.raises(UsageError, match="would be 1x1002; kernels are at most 1001x1001"):
        cli_kernel(f"@{wide}")


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int16])
def test_file_npy(tmp_path, dtype):
    p = tmp_path / "k.npy"
    np.save(p, SOBEL_X.astype(dtype))
    k = cli_kernel(f"@{p}")
    assert k.weights.dtype == np.float64
    np.testing.assert_array_equal(k.weights, SOBEL_X)


def test_file_non_square_npy(tmp_path):
    p = tmp_path / "k.npy"
    w = np.arange(10.0).reshape(2, 5) / 7
    np.save(p, w)
    np.testing.assert_array_equal(cli_kernel(f"@{p}").weights, w)


@pytest.mark.parametrize(("name", "content", "fragment"), [
    ("ragged.txt", "1 2 3\n4 5\n", "row 2"),
    ("ragged.csv", "1,2\n3,4\n5,6,7\n", "row 3"),
    ("ragged.json", "[[1, 2], [3]]", "row 2"),
    ("word.txt", "1 2\n3 four\n", "row 2"),
    ("word.json", '[[1, 2], [3, "four"]]', "row 2"),
    ("bool.json", "[[1, true]]", "row 1"),
    ("nan.json", "[[1, 2], [NaN, 3]]", "row 2"),
    ("inf.csv", "1,2\n3,inf\n", "row 2"),
    ("empty.txt", "\n# nothing\n", "empty"),
    ("empty.json", "[]", "empty"),
    ("emptyrow.json", "[[1], []]", "row 2"),
    ("mixed.json", "[1, [2, 3]]", "list of lists"),
    ("number.json", "5", "list of lists"),
    ("flatword.json", '[1, "two", 3]', "row 1: 'two' is not a number"),
    ("flatnan.json", "[1, NaN]", "row 1"),
    ("broken.json", "[[1, 2]", "invalid JSON"),
])
def test_bad_files(tmp_path, name, content, fragment):
    p = tmp_path / name
    p.write_text(content, encoding="utf-8")
    with pytest.raises(UsageError) as info:
        cli_kernel(f"@{p}")
    assert fragment in str(info.value)


@pytest.mark.parametrize(("array", "fragment"), [
    (np.array([[1.0, 2.0], [np.inf, 0.0]]), "row 2"),
    (np.array([[np.nan]]), "row 1"),
    (np.ones(3), "2-D"),
    (np.ones((2, 2, 2)), "2-D"),
    (np.array([["a", "b"]]), "real numbers"),
    (np.ones((2, 2), dtype=complex), "real numbers"),
    (np.zeros((0, 3)), "empty"),
])
def test_bad_npy(tmp_path, array, fragment):
    p = tmp_path / "k.npy"
    np.save(p, array)
    with pytest.raises(UsageError) as info:
        cli_kernel(f"@{p}")
    assert fragment in str(info.value)


def test_corrupt_npy(tmp_path):
    p = tmp_path / "k.npy"
    p.write_bytes(b"not a numpy file")
    with pytest.raises(UsageError, match=r"k\.npy"):
        cli_kernel(f"@{p}")


def test_missing_file(tmp_path):
    p = tmp_path / "nope.txt"
    with pytest.raises(UsageError, match="cannot read kernel file") as info:
        cli_kernel(f"@{p}")
    assert "nope.txt" in str(info.value)


# --- --normalize and --scale -----------------------------------------------------------------


def test_normalize_divides_by_the_sum():
    k = parse_kernel("1 2 1; 2 4 2; 1 2 1").normalized()
    np.testing.assert_array_equal(k.weights, np.asarray(EXPECTED["gaussian3"]))
    neg = parse_kernel("-1 -3").normalized()  # a negative sum keeps the kernel's direction
    np.testing.assert_array_equal(neg.weights, [[0.25, 0.75]])


@pytest.mark.parametrize("name", ["sobel-x", "laplacian", "outline", "edge-horizontal"])
def test_normalize_a_zero_sum_kernel_is_a_usage_error(name):
    with pytest.raises(UsageError, match="sum to 0"):
        REGISTRY[name].normalized()


def test_normalize_zero_sum_literal():
    with pytest.raises(UsageError, match="sum to 0"):
        parse_kernel("1 -1").normalized()
    with pytest.raises(UsageError, match="sum to 0"):  # 0.1 + 0.2 - 0.3 is 5.6e-17 in floats
        parse_kernel("0.1 0.2 -0.3").normalized()


def test_normalize_a_tiny_kernel():
    """Zero is judged relative to the entries: a kernel of tiny weights still normalizes."""
    np.testing.assert_allclose(parse_kernel("1e-13 3e-13").normalized().weights, [[0.25, 0.75]])


def test_scale_multiplies():
    k = REGISTRY["sharpen"].scaled(0.5)
    np.testing.assert_array_equal(k.weights, np.asarray(EXPECTED["sharpen"]) * 0.5)
    np.testing.assert_array_equal(REGISTRY["box3"].scaled(-9.0).weights, -np.ones((3, 3)))


@pytest.mark.parametrize("factor", [math.inf, -math.inf, math.nan])
def test_scale_must_be_finite(factor):
    with pytest.raises(UsageError, match="finite"):
        REGISTRY["sharpen"].scaled(factor)


def test_flipped_rotates_by_180():
    k = parse_kernel("1 2 3; 4 5 6")
    np.testing.assert_array_equal(k.flipped().weights, [[6, 5, 4], [3, 2, 1]])


# --- Gaussian and box builders: OpenCV's getGaussianKernel --------------------------------------

# OpenCV's small_gaussian_tab (imgproc/src/smooth.dispatch.cpp), used when sigma <= 0 and k <= 7.
# Note the 7-tap row is [2 7 14 18 14 7 2]/64, not the binomial [1 6 15 20 15 6 1]/64.
OPENCV_FIXED = {
    1: [1.0],
    3: [0.25, 0.5, 0.25],
    5: [0.0625, 0.25, 0.375, 0.25, 0.0625],
    7: [0.03125, 0.109375, 0.21875, 0.28125, 0.21875, 0.109375, 0.03125],
}


@pytest.mark.parametrize("k", sorted(OPENCV_FIXED))
@pytest.mark.parametrize("sigma", [None, 0.0, -1.0])
def test_gaussian_fixed_taps(k, sigma):
    np.testing.assert_array_equal(gaussian_1d(k, sigma), OPENCV_FIXED[k])


def test_gaussian3_and_5_are_the_registry_kernels():
    np.testing.assert_array_equal(gaussian_kernel(3).weights, REGISTRY["gaussian3"].weights)
    np.testing.assert_array_equal(gaussian_kernel(5).weights, REGISTRY["gaussian5"].weights)


def test_gaussian_explicit_sigma_by_hand():
    # k=3, sigma=1: taps e^-1/2, 1, e^-1/2 over 1 + 2 e^-1/2 = 2.2130613...
    np.testing.assert_allclose(gaussian_1d(3, 1.0), [0.2740686191, 0.4518627619, 0.2740686191],
                               rtol=1e-9)
    # k=5, sigma=2: taps e^(-x^2/8) for x = -2..2, sum = 1 + 2(e^-1/8 + e^-1/2) = 3.9780026...
    np.testing.assert_allclose(gaussian_1d(5, 2.0),
                               [0.1524691440, 0.2218412955, 0.2513791209, 0.2218412955, 0.1524691440],
                               rtol=1e-9)
    # an explicit sigma is used even for k <= 7 (the fixed table is only for sigma <= 0)
    assert gaussian_1d(3, 0.5)[1] == pytest.approx(1 / (1 + 2 * math.exp(-2)))


def test_gaussian_default_sigma_above_7():
    # k=9: sigma = 0.3*((9-1)*0.5 - 1) + 0.8 = 1.7, 2 sigma^2 = 5.78
    g = gaussian_1d(9)
    centre = 1 / (1 + 2 * sum(math.exp(-(x * x) / 5.78) for x in (1, 2, 3, 4)))
    assert g[4] == pytest.approx(centre, rel=1e-12)
    assert g[4] == pytest.approx(0.2363835085, rel=1e-9)
    assert g[0] == pytest.approx(0.0148394538, rel=1e-8)
    np.testing.assert_allclose(gaussian_1d(9, 0), g)
    np.testing.assert_allclose(gaussian_1d(9, 1.7), g, rtol=1e-12)


@pytest.mark.parametrize("k", [9, 11, 15, 21])
def test_gaussian_formula(k):
    for sigma in (None, 0.7, 3.0):
        s = 0.3 * ((k - 1) * 0.5 - 1) + 0.8 if sigma is None else sigma
        taps = [math.exp(-((i - (k - 1) / 2) ** 2) / (2 * s * s)) for i in range(k)]
        total = sum(taps)
        g = gaussian_1d(k, sigma)
        np.testing.assert_allclose(g, [t / total for t in taps], rtol=1e-12)
        assert g.sum() == pytest.approx(1.0, abs=1e-12)
        np.testing.assert_array_equal(g, g[::-1])


@pytest.mark.parametrize("k", [0, 2, 4, -3])
def test_gaussian_size_must_be_odd_positive(k):
    with pytest.raises(UsageError, match="odd"):
        gaussian_1d(k)


def test_gaussian_kernel_is_the_outer_product():
    g = gaussian_1d(7, 1.3)
    np.testing.assert_allclose(gaussian_kernel(7, 1.3).weights, np.outer(g, g), rtol=1e-15)


@pytest.mark.parametrize("k", [1, 2, 3, 4, 7])
def test_box_kernel(k):
    b = box_kernel(k)
    np.testing.assert_array_equal(b.weights, np.full((k, k), 1.0 / (k * k)))
    assert b.shape == (k, k)


def test_box_kernel_size_must_be_positive():
    with pytest.raises(UsageError):
        box_kernel(0)


@pytest.mark.parametrize("args", [["-1 2 -1"], ["-1 2 -1", "--json"], ["--json", "-1 2 -1"],
                                  ["--", "-1 2 -1"]])
def test_kernels_takes_a_literal_that_starts_with_a_minus(args: list[str]) -> None:
    """``convcli kernels "-1 2 -1"`` said "No such option '-1'" (it needed ``--`` first)."""
    r = CliRunner().invoke(cli, ["kernels", *args], catch_exceptions=False)
    assert r.exit_code == 0, r.stderr
    assert "[-1  2 -1]" in r.stdout or json.loads(r.stdout)["weights"] == [[-1.0, 2.0, -1.0]]
    bad = CliRunner().invoke(cli, ["kernels", "sharpen", "--dft-size", "-5", "--response"])
    assert bad.exit_code == 2 and "--dft-size" in bad.stderr  # a value of an option stays that option's


@pytest.mark.parametrize("spec", ["-3", "+3", "2.5", "-0.5", ".5", "1e2", "1/9", "−3", "1_000"])
def test_one_number_alone_is_not_taken_for_a_1x1_kernel(spec: str) -> None:
    """``-k 5`` was refused as a likely size, but ``-k -3``, ``+3`` and ``2.5`` became 1x1 kernels (a
    black image, exit 0): one number alone is refused with the way to write a 1x1 kernel, which works."""
    with pytest.raises(UsageError, match=r"one number alone is not taken as one; for a 1x1 kernel write"):
        parse_kernel(spec)
    if "_" in spec:  # float() reads it; the literal parser does not
        return
    top, _, bottom = spec.replace("−", "-").partition("/")
    value = float(top) / float(bottom or 1)
    assert parse_kernel(f"[[{spec}]]").weights.tolist() == [[pytest.approx(value)]]


@pytest.mark.parametrize("spec", ["nan", "NaN", "inf", "-inf", "+Infinity"])
def test_a_non_finite_number_is_not_looked_up_as_a_name(spec: str) -> None:
    """``-k nan`` said 'unknown kernel 'nan'; did you mean mean?'."""
    with pytest.raises(UsageError, match="not a finite number"):
        parse_kernel(spec)


def test_one_long_or_infinite_number_is_refused_too() -> None:
    """A number of 45 characters passed the refusal's length guard (a black image, exit 0), and
    ``1e400``'s advice was ``[[1e400]]``, itself refused."""
    with pytest.raises(UsageError, match=r"for a 1x1 kernel write \[\[-3\]\]"):
        parse_kernel("-3." + "0" * 42)
    with pytest.raises(UsageError, match="not a finite number either"):
        parse_kernel("1e400")
    with pytest.raises(UsageError, match=r"for a 1x1 kernel write \[\[1/3{28}\]\]"):  # a TypeError once
        parse_kernel("1/" + "3" * 28)
