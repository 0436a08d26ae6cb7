"""Convolution arithmetic (README 'numbers' output size and --pad, §4 arithmetic/receptive field/jump)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from reference import out_len, pad4_from_spec

from convcli.core.shapes import (
    Geometry,
    arithmetic,
    output_size,
    parse_pair,
    receptive_field,
    resolve_pad,
    same_pad,
)
from convcli.errors import UsageError

# --- parse_pair ------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [
    ("2", (2, 2)), ("2,3", (2, 3)), (" 4 , 1 ", (4, 1)), ("2x3", (2, 3)), (3, (3, 3)), ((1, 2), (1, 2)),
])
def test_parse_pair(value, expected):
    assert parse_pair(value, "--stride") == expected


@pytest.mark.parametrize("value", ["0", "1,0", "-1", (0, 1), 0])
def test_parse_pair_minimum(value):
    with pytest.raises(UsageError, match=r"--stride must be >= 1"):
        parse_pair(value, "--stride")


def test_parse_pair_custom_minimum():
    assert parse_pair("0,0", "--pad", minimum=0) == (0, 0)


@pytest.mark.parametrize("value", ["a", "1,2,3", "", "1.5", "1,,2"])
def test_parse_pair_garbage(value):
    with pytest.raises(UsageError, match="--dilation"):
        parse_pair(value, "--dilation")


# --- same_pad and resolve_pad ------------------------------------------------------------------


@pytest.mark.parametrize(("k", "d", "expected"), [
    (1, 1, (0, 0)), (3, 1, (1, 1)), (5, 1, (2, 2)), (7, 1, (3, 3)),
    (2, 1, (0, 1)), (4, 1, (1, 2)), (6, 1, (2, 3)),  # even: total k-1 odd, the extra after
    (3, 2, (2, 2)), (2, 2, (1, 1)), (4, 3, (4, 5)), (2, 3, (1, 2)), (5, 3, (6, 6)),
])
def test_same_pad(k, d, expected):
    assert same_pad(k, d) == expected
    before, after = expected
    assert before + after == d * (k - 1)
    assert before == (d * (k - 1)) // 2


@pytest.mark.parametrize(("ksize", "dilation", "expected"), [
    ((3, 3), (1, 1), (1, 1, 1, 1)),
    ((2, 2), (1, 1), (0, 1, 0, 1)),
    ((1, 5), (1, 1), (0, 0, 2, 2)),
    ((5, 2), (1, 1), (2, 2, 0, 1)),
    ((3, 3), (2, 2), (2, 2, 2, 2)),
    ((4, 2), (3, 2), (4, 5, 1, 1)),
    ((7, 7), (1, 2), (3, 3, 6, 6)),
])
def test_resolve_pad_same(ksize, dilation, expected):
    for spec in (None, "same", " SAME "):
        assert resolve_pad(spec, ksize, dilation, "zeros") == expected
    assert pad4_from_spec("same", ksize, dilation) == expected  # the tests' own helper agrees


@given(kh=st.integers(1, 9), kw=st.integers(1, 9), dy=st.integers(1, 4), dx=st.integers(1, 4),
       h=st.integers(1, 40), w=st.integers(1, 40))
def test_same_pad_keeps_the_size_at_stride_1(kh, kw, dy, dx, h, w):
    t, b, left, r = resolve_pad("same", (kh, kw), (dy, dx), "reflection")
    assert (t + b, left + r) == (dy * (kh - 1), dx * (kw - 1))
    assert (t, left) == ((dy * (kh - 1)) // 2, (dx * (kw - 1)) // 2)
    assert Geometry((kh, kw), (1, 1), (dy, dx), (t, b, left, r)).out_hw(h, w) == (h, w)


@pytest.mark.parametrize(("spec", "expected"), [
    ("0", (0, 0, 0, 0)), ("2", (2, 2, 2, 2)), ("1,3", (1, 1, 3, 3)), ("0,1,2,3", (0, 1, 2, 3)),
    (" 1, 2 ,3 ,4", (1, 2, 3, 4)), ("10", (10, 10, 10, 10)),
])
def test_resolve_pad_amounts(spec, expected):
    for mode in ("zeros", "reflection", "circular", "wrap"):
        assert resolve_pad(spec, (3, 3), (1, 1), mode) == expected
    assert pad4_from_spec(spec.replace(" ", ""), (3, 3)) == expected


@pytest.mark.parametrize("spec", ["1,2,3", "a", "1;2", "-1", "1,-2", "1,2,3,4,5", "", "1.5"])
def test_resolve_pad_garbage(spec):
    with pytest.raises(UsageError, match="--pad"):
        resolve_pad(spec, (3, 3), (1, 1), "zeros")


@pytest.mark.parametrize("mode", ["valid", "none", "VALID", "None"])
def test_valid_means_no_padding(mode):
    assert resolve_pad(None, (3, 3), (1, 1), mode) == (0, 0, 0, 0)
    assert resolve_pad("0", (5, 5), (2, 2), mode) == (0, 0, 0, 0)


@pytest.mark.parametrize("mode", ["valid", "none"])
@pytest.mark.parametrize("spec", ["1", "same", "1,1", "0,0,1,0"])
def test_valid_with_a_pad_is_an_error(mode, spec):
    with pytest.raises(UsageError, match="valid"):
        resolve_pad(spec, (3, 3), (1, 1), mode)


# --- output_size and arithmetic ------------------------------------------------------------------


@pytest.mark.parametrize(("args", "expected"), [
    ((224, 3), 222),  # lecture: valid 3x3
    ((224, 3, 1, 1, 1, 1), 224),  # same
    ((224, 3, 2, 1, 1, 1), 112),  # stride 2, pad 1
    ((112, 3, 2, 1, 1, 1), 56),
    ((224, 3, 2), 111),
    ((7, 3, 1, 2), 3),  # dilated 3x3 spans 5
    ((5, 1, 2), 3),
    ((4, 5), 0),
    ((3, 5), -1),
])
def test_output_size(args, expected):
    assert output_size(*args) == expected


@given(n=st.integers(1, 60), k=st.integers(1, 9), s=st.integers(1, 5), d=st.integers(1, 4),
       before=st.integers(0, 8), after=st.integers(0, 8))
def test_output_size_counts_the_window_positions(n, k, s, d, before, after):
    """The formula equals the number of strided positions whose window fits the padded row."""
    padded = n + before + after
    positions = [y for y in range(0, padded, s) if y + d * (k - 1) <= padded - 1]
    assert max(output_size(n, k, s, d, before, after), 0) == len(positions)
    assert output_size(n, k, s, d, before, after) == out_len(n, k, s, d, before, after)


def test_arithmetic_string_as_in_the_spec():
    assert arithmetic(224, 3, 2, 1, 1, 1) == "(224 + 1 + 1 - 1*(3-1) - 1) // 2 + 1 = 112"
    assert arithmetic(224, 3) == "(224 + 0 + 0 - 1*(3-1) - 1) // 1 + 1 = 222"
    assert arithmetic(10, 4, 3, 2, 0, 5) == "(10 + 0 + 5 - 2*(4-1) - 1) // 3 + 1 = 3"
    assert arithmetic(4, 5) == "(4 + 0 + 0 - 1*(5-1) - 1) // 1 + 1 = 0"


def test_geometry_arithmetic_one_string_when_axes_agree():
    g = Geometry((3, 3), (2, 2), (1, 1), (1, 1, 1, 1))
    assert g.arithmetic(224, 224) == "(224 + 1 + 1 - 1*(3-1) - 1) // 2 + 1 = 112"
    g2 = Geometry((3, 1), (1, 1), (1, 1), (0, 0, 0, 0))
    assert g2.arithmetic(10, 20) == (
        "H: (10 + 0 + 0 - 1*(3-1) - 1) // 1 + 1 = 8; W: (20 + 0 + 0 - 1*(1-1) - 1) // 1 + 1 = 20"
    )


# --- Geometry.out_hw ---------------------------------------------------------------------------


def test_out_hw():
    assert Geometry((3, 3)).out_hw(224, 224) == (222, 222)
    assert Geometry((3, 3), (2, 2), (1, 1), (1, 1, 1, 1)).out_hw(224, 224) == (112, 112)
    assert Geometry((5, 2), (2, 3), (2, 1), (0, 1, 2, 3)).out_hw(20, 11) == (
        out_len(20, 5, 2, 2, 0, 1), out_len(11, 2, 3, 1, 2, 3))


def test_out_hw_empty_height_shows_its_arithmetic():
    with pytest.raises(UsageError) as info:
        Geometry((5, 3)).out_hw(4, 10)
    msg = str(info.value)
    assert "height: (4 + 0 + 0 - 1*(5-1) - 1) // 1 + 1 = 0" in msg
    assert "width" not in msg


def test_out_hw_empty_both_axes_shows_both():
    with pytest.raises(UsageError) as info:
        Geometry((7, 9), (2, 2), (1, 1), (1, 1, 1, 1)).out_hw(4, 5)
    msg = str(info.value)
    assert "height: (4 + 1 + 1 - 1*(7-1) - 1) // 2 + 1 = 0" in msg
    assert "width: (5 + 1 + 1 - 1*(9-1) - 1) // 2 + 1 = 0" in msg


@pytest.mark.parametrize("kwargs", [
    {"ksize": (0, 3)}, {"ksize": (3, 3), "stride": (0, 1)}, {"ksize": (3, 3), "dilation": (1, 0)},
    {"ksize": (3, 3), "stride": (-1, 1)}, {"ksize": (3, 3), "pad": (0, -1, 0, 0)},
])
def test_geometry_rejects_impossible_parameters(kwargs):
    with pytest.raises(UsageError, match=">= "):
        Geometry(**kwargs)


# --- receptive field and jump --------------------------------------------------------------------


def test_three_stride2_3x3_stages():
    """README 'report': three 3x3 stride-2 stages -> receptive field 3/7/15, jump 2/4/8."""
    g = Geometry((3, 3), (2, 2), (1, 1), (1, 1, 1, 1))
    assert receptive_field([g, g, g]) == [((3, 3), (2, 2)), ((7, 7), (4, 4)), ((15, 15), (8, 8))]


def test_receptive_field_stride1_grows_by_k_minus_1():
    g = Geometry((3, 3))
    assert [rf for rf, _ in receptive_field([g] * 4)] == [(3, 3), (5, 5), (7, 7), (9, 9)]
    assert [j for _, j in receptive_field([g] * 4)] == [(1, 1)] * 4


def test_receptive_field_dilation_and_non_square():
    # a 3x3 dilated by 2 sees 5x5; then a 1x5 stride (1, 3)
    stages = [Geometry((3, 3), (1, 1), (2, 2)), Geometry((1, 5), (1, 3))]
    assert receptive_field(stages) == [((5, 5), (1, 1)), ((5, 9), (1, 3))]


def test_receptive_field_empty_and_1x1():
    assert receptive_field([]) == []
    assert receptive_field([Geometry((1, 1), (2, 2))]) == [((1, 1), (2, 2))]


@given(stages=st.lists(st.tuples(st.integers(1, 5), st.integers(1, 3), st.integers(1, 3)),
                       min_size=1, max_size=5))
def test_receptive_field_is_the_span_of_one_output_pixel(stages):
    """Brute force on one axis: the input positions one output pixel depends on, across stages."""
    geoms = [Geometry((k, 1), (s, 1), (d, 1)) for k, s, d in stages]
    # Walk backwards from output position 0: the set of positions each stage reads.
    positions = {0}
    for (k, s, d) in reversed(stages):
        positions = {p * s + i * d for p in positions for i in range(k)}
    span = max(positions) - min(positions) + 1
    jump = 1
    for _, s, _ in stages:
        jump *= s
    rf, jp = receptive_field(geoms)[-1]
    assert rf[0] == span
    assert jp[0] == jump
    assert rf[1] == 1 and jp[1] == 1


@pytest.mark.parametrize("padding", ["reflect", "zeros", "wrap", "valid"])
@pytest.mark.parametrize("spec", [None, "same", "2", "1,3", "0,1,2,3"])
def test_resolve_geometry_is_the_mode_and_the_pad(padding: str, spec: str | None) -> None:
    from reference import canonical_mode, pad4_from_spec

    from convcli.core.padding import resolve_mode
    from convcli.core.shapes import resolve_geometry

    if padding == "valid" and spec not in (None,):
        with pytest.raises(UsageError, match="valid"):
            resolve_geometry(padding, spec, (3, 5), (2, 1))
        return
    mode, pad4 = resolve_geometry(padding, spec, (3, 5), (2, 1))
    assert mode == resolve_mode(padding) and mode.name == canonical_mode(padding)
    assert pad4 == ((0, 0, 0, 0) if padding == "valid" else pad4_from_spec(spec or "same", (3, 5), (2, 1)))


@given(n=st.integers(1, 9), p=st.integers(0, 12), mode=st.sampled_from(["reflection", "circular", "border",
                                                                         "zeros", "symmetric"]))
def test_torch_pad_note_says_exactly_when_pytorch_refuses(n: int, p: int, mode: str) -> None:
    """PyTorch's F.pad: 'reflect' needs pad < the input's side ("Padding size should be less than the
    corresponding input dimension"), 'circular' pad <= it ("wrapping around more than once");
    replicate and zeros take any pad (and PyTorch has no symmetric mode to refuse anything)."""
    from convcli.core.padding import resolve_mode, torch_pad_note

    refuses = {"reflection": p >= n, "circular": p > n}.get(mode, False)
    note = torch_pad_note(resolve_mode(mode), (0, 0, p, 0), 20, n)  # the left pad on a width of n
    assert (note is not None) == refuses
    if note is not None:
        assert f"pad {p} on a side of {n}" in note and "refuses" in note


def test_shape_and_filter_reports_carry_the_torch_note(tmp_path) -> None:  # noqa: ANN001
    import json

    import numpy as np
    from click.testing import CliRunner

    from convcli.cli import cli

    r = CliRunner().invoke(cli, ["shape", "4x4", "--size", "3", "-p", "reflection", "--pad", "5", "--json"])
    assert r.exit_code == 0 and "reflection pad 5 on a side of 4" in json.loads(r.stdout)["notes"][0]
    r = CliRunner().invoke(cli, ["shape", "5", "--size", "3", "-s", "2"])
    assert r.exit_code == 0 and "padding='same' refuses strides > 1: there, write padding=1" in r.stdout
    for args in (["--pad", "3"], ["-s", "2", "--pad", "1"]):  # smaller than the side; an amount given
        r = CliRunner().invoke(cli, ["shape", "4x4", "--size", "3", "-p", "reflection", *args])
        assert r.exit_code == 0 and "note:" not in r.stdout, args
    for args, advice in (  # 'same' said or left default; PyTorch's spelling of the same pads and mode
        (["--pad", "same"], "write padding=1"),
        (["-p", "border"], "write padding=1, padding_mode='replicate'"),
        (["--size", "4", "-p", "reflection"], "F.pad(x, (1, 2, 1, 2), mode='reflect') first and padding=0"),
        (["--size", "4"], "F.pad(x, (1, 2, 1, 2), mode='constant') first"),
        (["-p", "symmetric"], "numpy.pad's mode='symmetric' (1, 1) rows and (1, 1) columns first"),
    ):
        r = CliRunner().invoke(cli, ["shape", "5", "--size", "3", "-s", "2", *args])
        assert r.exit_code == 0 and advice in r.stdout, (args, r.stdout)
    src = tmp_path / "a.npy"
    np.save(src, np.arange(16, dtype=np.float32).reshape(4, 4))
    r = CliRunner().invoke(cli, ["filter", str(src), "-k", "box3", "-p", "circular", "--pad", "5", "--json",
                                 "-o", str(tmp_path / "o.npy")])
    assert r.exit_code == 0
    assert any("stage 1: circular pad 5 on a side of 4" in n for n in json.loads(r.stdout)["notes"])
    want = np.pad(np.arange(16.0).reshape(4, 4), 5, mode="wrap")  # the numbers: numpy.pad's, wrapped again
    got = np.load(tmp_path / "o.npy")
    ref = sum(want[i:i + 12, j:j + 12] for i in range(3) for j in range(3)) / 9
    np.testing.assert_allclose(got, ref, rtol=1e-6)
