"""convcli.teach.explain: the lecture's worked example, border pixels in every mode, im2col."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from convcli.core.kernels import Kernel, get_kernel, parse_literal
from convcli.engine import correlate2d
from convcli.errors import UsageError
from convcli.teach.explain import MINUS, explain_at, explain_patch, explain_unroll

LECTURE_PATCH = np.array([[10, 20, 30], [40, 50, 60], [70, 80, 90]])
PAD_MODES = ("zeros", "border", "reflection", "symmetric", "circular")


def hand_index(i: int, n: int, mode: str) -> int | None:
    """Where index ``i`` of a padded axis of length ``n`` reads from (None: a zero), by the SPEC table."""
    if 0 <= i < n:
        return i
    if mode == "zeros":
        return None
    if mode == "border":
        return min(max(i, 0), n - 1)
    if mode == "circular":
        return i % n
    if mode == "reflection":  # c b | a b c d | c b, period 2n-2
        if n == 1:
            return 0
        p = 2 * n - 2
        j = i % p
        return j if j < n else p - j
    if mode == "symmetric":  # b a | a b c d | d c, period 2n
        p = 2 * n
        j = i % p
        return j if j < n else p - 1 - j
    raise AssertionError(mode)


def hand_pixel(img: np.ndarray, k: np.ndarray, x: int, y: int, stride, dilation, pad4, mode) -> float:
    """The README 'numbers' formula for one output pixel, written out with a double loop."""
    top, _, left, _ = pad4
    total = 0.0
    for i in range(k.shape[0]):
        for j in range(k.shape[1]):
            r = hand_index(y * stride[0] + i * dilation[0] - top, img.shape[0], mode)
            c = hand_index(x * stride[1] + j * dilation[1] - left, img.shape[1], mode)
            v = 0.0 if r is None or c is None else float(img[r, c])
            total += float(k[i, j]) * v
    return total


# --- explain_patch -----------------------------------------------------------------------


def test_lecture_sharpen_gives_exactly_50() -> None:
    e = explain_patch(get_kernel("sharpen"), LECTURE_PATCH)
    assert e.value == 50
    lines = e.text.splitlines()
    assert lines[-1] == "Output = 50"
    assert lines[-2] == (
        f"Output = (0·10) + ({MINUS}1·20) + (0·30) + ({MINUS}1·40) + (5·50) + ({MINUS}1·60) "
        f"+ (0·70) + ({MINUS}1·80) + (0·90)"
    )
    assert "(−1·20)" in e.text  # the lecture's minus sign and middle dot
    assert [t.product for t in e.terms] == [0, -20, 0, -40, 250, -60, 0, -80, 0]


def test_patch_matrices_are_shown_aligned_above_the_sum() -> None:
    text = explain_patch(get_kernel("sharpen"), LECTURE_PATCH).text
    lines = text.splitlines()
    assert lines[1].startswith(f"[  0 {MINUS}1  0 ]")
    assert lines[1].rstrip().endswith("[ 10 20 30 ]")
    # the patch matrix starts in the same column on every row
    starts = {ln.index("[ ", 5) for ln in lines[1:4]}
    assert len(starts) == 1


def test_fractions_and_non_integer_results() -> None:
    e = explain_patch(get_kernel("gaussian3"), LECTURE_PATCH)
    assert "(1/16·10)" in e.text and "(4/16·50)" in e.text
    assert e.value == pytest.approx(50.0)
    assert e.text.splitlines()[-1] == "Output = 50"
    e2 = explain_patch(parse_literal("0.5 0.25"), np.array([[1, 3]]))
    assert e2.value == 1.25
    assert e2.text.splitlines()[-1] == "Output = 1.25"


def test_integers_print_without_decimal_point() -> None:
    e = explain_patch(Kernel("k", np.array([[2.0, -1.0]])), np.array([[3.0, 4.0]]))
    assert "(2·3)" in e.text and f"({MINUS}1·4)" in e.text and ".0" not in e.text


def test_bias_is_added_and_shown() -> None:
    e = explain_patch(get_kernel("sharpen"), LECTURE_PATCH, bias=5)
    assert e.value == 55
    assert "+ 5 (bias)" in e.text


def test_patch_shape_mismatch_names_both_shapes() -> None:
    with pytest.raises(UsageError, match=r"\(2, 3\).*\(3, 3\)"):
        explain_patch(get_kernel("sharpen"), np.ones((2, 3)))


def test_long_sums_wrap() -> None:
    e = explain_patch(get_kernel("box5"), np.arange(25).reshape(5, 5))
    assert e.value == pytest.approx(12.0)
    assert all(len(ln) <= 110 for ln in e.text.splitlines())


# --- explain_at ----------------------------------------------------------------------------


@pytest.fixture
def image(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, size=(5, 7)).astype(np.float32)


CORNERS_AND_EDGES = [(0, 0), (6, 0), (0, 4), (6, 4), (3, 0), (0, 2), (6, 2), (3, 4), (3, 2)]


@pytest.mark.parametrize("mode", PAD_MODES)
@pytest.mark.parametrize(("x", "y"), CORNERS_AND_EDGES)
def test_at_borders_equals_engine_and_hand(image: np.ndarray, mode: str, x: int, y: int) -> None:
    k = get_kernel("sharpen")
    pad = (1, 1, 1, 1)
    e = explain_at(image, k, x, y, pad4=pad, mode=mode)
    engine = correlate2d(image, k.weights, pad=pad, mode=mode, dtype=np.float64)
    assert e.value == pytest.approx(engine[y, x], rel=1e-9, abs=1e-9)
    assert e.value == pytest.approx(hand_pixel(image, k.weights, x, y, (1, 1), (1, 1), pad, mode))


@pytest.mark.parametrize("mode", PAD_MODES)
def test_at_every_pixel_with_stride_dilation_asymmetric_pad_even_kernel(image: np.ndarray, mode: str) -> None:
    k = parse_literal("1 -2 3 0; 4 5 -6 7")  # 2×4, even width
    stride, dilation, pad = (2, 1), (1, 2), (2, 0, 3, 4)
    engine = correlate2d(image, k.weights, stride=stride, dilation=dilation, pad=pad, mode=mode)
    for y in range(engine.shape[0]):
        for x in range(engine.shape[1]):
            e = explain_at(image, k, x, y, stride=stride, dilation=dilation, pad4=pad, mode=mode)
            assert e.value == pytest.approx(float(engine[y, x]), rel=1e-5, abs=1e-3)
            assert e.value == pytest.approx(hand_pixel(image, k.weights, x, y, stride, dilation, pad, mode))


def test_at_marks_padding_and_names_the_copied_pixel(image: np.ndarray) -> None:
    e = explain_at(image, get_kernel("sharpen"), 0, 0, pad4=(1, 1, 1, 1), mode="reflect")
    padded = [t for t in e.terms if t.padded]
    assert len(padded) == 5  # the top row and the left column of the window
    assert "from reflection padding" in e.text
    corner = next(t for t in padded if t.position == (-1, -1))
    assert corner.source == (1, 1) and corner.value == image[1, 1]
    assert "[v] = outside the input" in e.text
    inside = explain_at(image, get_kernel("sharpen"), 3, 2, pad4=(1, 1, 1, 1), mode="zeros")
    assert not any(t.padded for t in inside.terms)
    assert "[v]" not in inside.text


def test_at_default_pad_is_same_and_valid_has_none(image: np.ndarray) -> None:
    k = get_kernel("sharpen")
    assert explain_at(image, k, 0, 0, mode="border").value == pytest.approx(
        correlate2d(image, k.weights, pad=(1, 1, 1, 1), mode="border")[0, 0])
    e = explain_at(image, k, 0, 0, mode="valid")
    assert e.value == pytest.approx(correlate2d(image, k.weights, mode="valid")[0, 0])
    assert not any(t.padded for t in e.terms)


def test_at_flip_is_true_convolution(image: np.ndarray) -> None:
    k = get_kernel("emboss")
    e = explain_at(image, k, 1, 1, pad4=(1, 1, 1, 1), mode="zeros", flip=True)
    assert e.value == pytest.approx(
        float(correlate2d(image, k.weights, pad=(1, 1, 1, 1), mode="zeros", flip=True)[1, 1]))


def test_at_outside_the_output_shows_its_size(image: np.ndarray) -> None:
    with pytest.raises(UsageError, match="5×7 \\(H×W\\)"):
        explain_at(image, get_kernel("sharpen"), 7, 0, pad4=(1, 1, 1, 1))
    with pytest.raises(UsageError, match="3×5 \\(H×W\\)"):
        explain_at(image, get_kernel("sharpen"), 0, 3, mode="valid")


# --- explain_unroll --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", PAD_MODES)
def test_unroll_equals_sliding_window(mode: str, rng: np.random.Generator) -> None:
    x = rng.integers(0, 10, size=(5, 6)).astype(float)
    k = get_kernel("sharpen")
    e = explain_unroll(x, k, stride=(2, 1), dilation=(1, 2), pad4=(1, 2, 2, 1), mode=mode)
    ref = np.array([[hand_pixel(x, k.weights, c, r, (2, 1), (1, 2), (1, 2, 2, 1), mode)
                     for c in range(e.output.shape[1])] for r in range(e.output.shape[0])])
    np.testing.assert_allclose(e.output, ref, atol=1e-9)
    assert e.value <= 1e-6
    assert "max difference 0" in e.text.splitlines()[-1]
    assert "equals the sliding-window result" in e.text


def test_unroll_text_has_every_part(rng: np.random.Generator) -> None:
    x = np.arange(16, dtype=float).reshape(4, 4)
    e = explain_unroll(x, get_kernel("sharpen"), mode="zeros")
    assert e.output.shape == (4, 4)
    for part in ("Padded input", "im2col", "(y=3, x=3)", "flattened to a column", "(16×9) @ (9×1)",
                 "Reshaped to (oh, ow) = (4, 4)"):
        assert part in e.text


def test_unroll_refuses_large_inputs() -> None:
    with pytest.raises(UsageError, match="8×8.*8×9 \\(H×W\\)"):
        explain_unroll(np.zeros((8, 9)), get_kernel("sharpen"))


@pytest.mark.parametrize("mode", PAD_MODES)
def test_at_with_pads_larger_than_the_image(mode: str, rng: np.random.Generator) -> None:
    img = rng.integers(0, 256, size=(3, 4)).astype(np.float32)
    k = parse_literal("1 2 3; 4 5 6; 7 8 9")
    pad = (7, 6, 9, 5)
    engine = correlate2d(img, k.weights, dilation=(3, 2), pad=pad, mode=mode, dtype=np.float64)
    for y, x in [(0, 0), (0, engine.shape[1] - 1), (engine.shape[0] - 1, 0), (4, 5)]:
        e = explain_at(img, k, x, y, dilation=(3, 2), pad4=pad, mode=mode)
        assert e.value == pytest.approx(engine[y, x])
        assert e.value == pytest.approx(hand_pixel(img, k.weights, x, y, (1, 1), (3, 2), pad, mode))


@pytest.mark.parametrize(("spec", "at"), [("box3", (1, 1)), ("sharpen", (0, 2)), ("sobel-x", (2, 1)),
                                          ("gaussian5", (3, 0))])
def test_explain_on_an_image_with_alpha_gives_what_filter_writes(tmp_path: Path, spec: str,
                                                                 at: tuple[int, int]) -> None:
    """explain IMAGE --at summed the stored colour, while filter premultiplies it by alpha (README,
    "Alpha"): 90.67 against the 70.94 filter wrote, and no word about it. The reference: scipy on
    colour x alpha, divided by alpha filtered with the kernel scaled to sum 1 (zero-sum: not divided)."""
    import re

    import scipy.ndimage as ndi
    from click.testing import CliRunner
    from PIL import Image

    from convcli.cli import cli

    rgba = np.random.default_rng(0).integers(0, 256, (4, 5, 4)).astype(np.uint8)
    rgba[..., 3] = [[0, 128, 255, 255, 9], [255, 0, 10, 255, 40], [255, 255, 255, 0, 200], [3, 90, 0, 255, 7]]
    src = tmp_path / "rgba.png"
    Image.fromarray(rgba, "RGBA").save(src)
    w = get_kernel(spec).weights
    a = rgba[..., 3].astype(np.float64)
    num = ndi.correlate(rgba[..., 0] * a / 255, w, mode="mirror")
    want = num if abs(w.sum()) < 1e-12 else num / (ndi.correlate(a, w / w.sum(), mode="mirror") / 255)
    x, y = at
    r = CliRunner().invoke(cli, ["explain", str(src), "--at", f"{x},{y}", "-k", spec, "--channel", "0",
                                 "-p", "reflection"], catch_exceptions=False)
    assert r.exit_code == 0, r.stderr
    note = r.stdout.strip().splitlines()[-2]
    got = float(re.search(r"writes (\S+) here", note).group(1).replace(MINUS, "-"))
    assert got == pytest.approx(want[y, x], rel=1e-5, abs=1e-4)


def test_a_flipped_patch_explanation_says_its_kernel_was_flipped() -> None:
    """explain --patch --flip printed the turned matrix under the user's kernel name, no word of the turn;
    the sum is the flipped kernel's (9·1 + 8·2 + ... + 1·9 = 165)."""
    from click.testing import CliRunner

    from convcli.cli import cli

    args = ["explain", "--patch", "1 2 3; 4 5 6; 7 8 9", "-k", "1 2 3; 4 5 6; 7 8 9"]
    plain = CliRunner().invoke(cli, args, catch_exceptions=False).stdout
    flipped = CliRunner().invoke(cli, [*args, "--flip"], catch_exceptions=False).stdout
    assert "flipped 180°" in flipped.splitlines()[0] and "flipped" not in plain
    k = np.arange(1, 10).reshape(3, 3)
    assert f"Output = {int((k[::-1, ::-1] * k).sum())}" in flipped
    assert f"Output = {int((k * k).sum())}" in plain


def test_unroll_writes_sizes_height_first_as_its_matrices() -> None:
    """explain printed the input 2 rows x 3 columns as "3×2 (W×H)" beside a kernel, matrices and a
    reshape all written rows x columns: every size is H×W now."""
    e = explain_unroll(np.arange(6.0).reshape(2, 3), parse_literal("1 0; 0 -1"), mode="valid")
    assert e.output.shape == (1, 2)
    text = e.text
    assert "Input 2×3 (H×W)" in text and "-> 1×2 (H×W)" in text and "Padded input (2×3 (H×W)" in text
    assert "W×H" not in text


@pytest.mark.parametrize(("spec", "pad4", "phrase"), [
    ("box:size=1001", None, "1001×1001 = 1002001 taps"),  # printed 143 MB (1.7 GB held) before
    ("box3", (20, 20, 20, 20), "41×41 = 1681 outputs"),
])
def test_unroll_refuses_a_matrix_too_large_to_print(spec: str, pad4: tuple | None, phrase: str) -> None:
    from convcli.cli.kernelspec import cli_kernel

    with pytest.raises(UsageError, match=phrase):
        explain_unroll(np.arange(9.0).reshape(3, 3), cli_kernel(spec), pad4=pad4, mode="zeros")
    ok = explain_unroll(np.arange(9.0).reshape(3, 3), cli_kernel("box:size=7"), mode="zeros")  # 49 taps
    assert ok.output.shape == (3, 3)


def test_a_long_sum_breaks_at_the_kernel_rows(image: np.ndarray) -> None:
    """The sum wrapped after whichever term reached 100 characters: row 3 ran into row 4. A sum too
    long for one line now takes one kernel row a line (the lecture's 3x3 example stays on one)."""
    e = explain_at(image, get_kernel("gaussian5"), 2, 2, pad4=(2, 2, 2, 2), mode="border")
    lines = [ln for ln in e.text.splitlines() if ln.startswith(("Output = ", "       + "))]
    assert len(lines) == 5
    assert all(ln.count("·") == 5 for ln in lines)
    small = explain_patch(get_kernel("sharpen"), np.arange(10.0, 100.0, 10).reshape(3, 3))
    assert sum(ln.startswith("Output = ") for ln in small.text.splitlines()) == 2  # the sum, then = 50


@pytest.mark.parametrize(("channels", "channel", "name"),
                         [(4, 3, ""), (5, 4, ""), (2, 1, ""), (3, 2, " (B)")])
def test_explain_any_channel_of_a_npy_image(tmp_path: Path, channels: int, channel: int, name: str) -> None:
    """A .npy of 4 or more channels and --channel 3 ended in a traceback ("RGB"[3]), and a 2-channel
    one's channel 1 was called G: only three channels have colour names. The sum printed is checked
    against scipy's correlation of that plane."""
    import re

    import scipy.ndimage as ndi
    from click.testing import CliRunner

    from convcli.cli import cli

    img = np.random.default_rng(channels).random((7, 9, channels)) * 255
    src = tmp_path / "img.npy"
    np.save(src, img)
    r = CliRunner().invoke(cli, ["explain", str(src), "--at", "2,3", "-k", "sharpen",
                                 "--channel", str(channel), "-p", "reflection"], catch_exceptions=False)
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0] == f"{src}: channel {channel}{name}, output pixel x=2, y=3"
    want = ndi.correlate(img[..., channel], get_kernel("sharpen").weights, mode="mirror")[3, 2]
    got = float(re.search(r"Output ≈ (\S+)", r.stdout).group(1).replace(MINUS, "-"))
    assert got == pytest.approx(want, rel=1e-5)


def test_explain_normalizes_and_scales_the_kernel_as_filter_does() -> None:
    """The lecture's fact 6 step by step: its 'Gaussian' sums to 1.776 and brightens the flat patch
    (0.111·200 + 0.222·200 + 0.444·50 = 88.8); divided by its sum it gives 50 back. explain had no
    --normalize (nor --scale) to show it."""
    from click.testing import CliRunner

    from convcli.cli import cli

    gauss = "0.111 0.222 0.111; 0.222 0.444 0.222; 0.111 0.222 0.111"
    patch = "10 20 30; 40 50 60; 70 80 90"
    runs = {flags: CliRunner().invoke(cli, ["explain", "-k", gauss, "--patch", patch, *flags],
                                      catch_exceptions=False)
            for flags in ((), ("--normalize",), ("--scale", "2"), ("--normalize", "--scale", "2"))}
    assert all(r.exit_code == 0 for r in runs.values())
    assert "Output = 88.8" in runs[()].stdout
    assert "Output = 50" in runs[("--normalize",)].stdout
    assert "Output = 177.6" in runs[("--scale", "2")].stdout
    assert "Output = 100" in runs[("--normalize", "--scale", "2")].stdout
