"""The padding table (README 'numbers'): names, aliases, every library's name, pad_array vs numpy.pad,
the hand-written index mapping of tests/reference.py, and the pattern drawn on a row."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from reference import ALIASES, NUMPY_MODE, PAD_MODES, SCIPY_MODE, map_index, ref_pad_row

from convcli.core.padding import ALL_NAMES, MODES, pad_array, pattern_row, resolve_mode
from convcli.errors import UsageError

# README 'numbers' table, typed in by hand: mode -> (aliases, numpy.pad, scipy.ndimage, OpenCV, PyTorch)
SPEC_TABLE = {
    "zeros": ({"constant"}, "constant", "constant", "BORDER_CONSTANT", "zeros"),
    "border": ({"replicate", "edge", "nearest"}, "edge", "nearest", "BORDER_REPLICATE", "replicate"),
    "reflection": ({"reflect", "mirror", "reflect101"}, "reflect", "mirror", "BORDER_REFLECT_101",
                   "reflect"),
    "symmetric": (set(), "symmetric", "reflect", "BORDER_REFLECT", None),
    "circular": ({"wrap"}, "wrap", "wrap", "BORDER_WRAP", "circular"),
    "valid": ({"none"}, None, None, None, None),
}


@pytest.mark.parametrize("name", sorted(SPEC_TABLE))
def test_table_matches_spec(name):
    aliases, np_name, scipy_name, cv_name, torch_name = SPEC_TABLE[name]
    m = MODES[name]
    assert m.name == name
    assert set(m.aliases) == aliases
    assert (m.numpy, m.scipy, m.opencv, m.torch) == (np_name, scipy_name, cv_name, torch_name)


def test_table_has_exactly_the_spec_modes():
    assert list(MODES) == ["zeros", "border", "reflection", "symmetric", "circular", "valid"]


def test_all_names_lists_every_spelling_once_canonical_first():
    spellings = set(SPEC_TABLE) | {a for row in SPEC_TABLE.values() for a in row[0]}
    assert set(ALL_NAMES) == spellings
    assert len(ALL_NAMES) == len(spellings)
    assert ALL_NAMES[:6] == ("zeros", "border", "reflection", "symmetric", "circular", "valid")


def test_reference_tables_agree_with_spec():
    """The references' own copies of the table (tests/reference.py) are the SPEC's too."""
    for name, (aliases, np_name, scipy_name, _, _) in SPEC_TABLE.items():
        for a in aliases:
            assert ALIASES[a] == name
        if name != "valid":
            assert NUMPY_MODE[name] == np_name
            assert SCIPY_MODE[name] == scipy_name


@pytest.mark.parametrize(("spelling", "name"), [
    *[(n, n) for n in SPEC_TABLE],
    *[(a, n) for n, row in SPEC_TABLE.items() for a in sorted(row[0])],
    ("ZEROS", "zeros"), ("Reflect", "reflection"), (" WRAP ", "circular"), ("Edge", "border"),
    ("reflect_101", "reflection"), ("Reflect-101", "reflection"), ("NONE", "valid"),
])
def test_resolve_mode(spelling, name):
    assert resolve_mode(spelling) is MODES[name]


@pytest.mark.parametrize("bad", ["", "mirrored", "refl", "zero", "same", "periodic"])
def test_unknown_mode_lists_the_choices(bad):
    with pytest.raises(UsageError) as info:
        resolve_mode(bad)
    msg = str(info.value)
    assert "unknown padding mode" in msg
    for name in SPEC_TABLE:
        assert name in msg


def test_unknown_mode_is_a_value_error():
    """STYLE: a bad mode is a ValueError (UsageError is one), not a RuntimeError."""
    with pytest.raises(ValueError):
        resolve_mode("bogus")


# --- the reference's index mapping vs numpy.pad (the references must be right too) ------------


@pytest.mark.parametrize("mode", PAD_MODES)
@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7])
def test_reference_mapping_matches_numpy_pad(mode, n):
    row = np.arange(10, 10 + n)
    for before in range(0, 3 * n + 4):
        for after in (0, 1, n, 2 * n + 3):
            expected = np.pad(row, (before, after), mode=NUMPY_MODE[mode])
            np.testing.assert_array_equal(ref_pad_row(row, before, after, mode), expected)


def test_reference_mapping_by_hand():
    # a b c d = 0 1 2 3 read at -3..6
    got = {m: [map_index(i, 4, m) for i in range(-3, 7)] for m in PAD_MODES}
    assert got["zeros"] == [None, None, None, 0, 1, 2, 3, None, None, None]
    assert got["border"] == [0, 0, 0, 0, 1, 2, 3, 3, 3, 3]
    assert got["reflection"] == [3, 2, 1, 0, 1, 2, 3, 2, 1, 0]
    assert got["symmetric"] == [2, 1, 0, 0, 1, 2, 3, 3, 2, 1]
    assert got["circular"] == [1, 2, 3, 0, 1, 2, 3, 0, 1, 2]


# --- pad_array ------------------------------------------------------------------------------


PADS = [(0, 0, 0, 0), (1, 1, 1, 1), (2, 0, 0, 3), (0, 5, 4, 0), (7, 9, 11, 8)]


@pytest.mark.parametrize("pad", PADS, ids=str)
@pytest.mark.parametrize("mode", PAD_MODES)
@pytest.mark.parametrize("shape", [(4, 5), (4, 5, 3), (1, 3), (2, 1, 2), (3, 3)])
def test_pad_array_matches_numpy_pad(shape, mode, pad):
    """numpy.pad under the SPEC's name for the mode, on the first two axes only."""
    x = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape) + 1
    widths = [(pad[0], pad[1]), (pad[2], pad[3])] + [(0, 0)] * (len(shape) - 2)
    expected = np.pad(x, widths, mode=NUMPY_MODE[mode])
    got = pad_array(x, pad, mode)
    assert got.dtype == x.dtype
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("alias", sorted(a for a, m in ALIASES.items() if m != "valid"))
def test_pad_array_aliases(alias):
    x = np.arange(12.0).reshape(3, 4)
    pad = (2, 5, 6, 1)
    np.testing.assert_array_equal(pad_array(x, pad, alias), pad_array(x, pad, ALIASES[alias]))
    np.testing.assert_array_equal(pad_array(x, pad, alias.upper()), pad_array(x, pad, ALIASES[alias]))
    np.testing.assert_array_equal(pad_array(x, pad, resolve_mode(alias)), pad_array(x, pad, alias))


@given(h=st.integers(1, 6), w=st.integers(1, 6), pad=st.tuples(*[st.integers(0, 14)] * 4),
       mode=st.sampled_from(PAD_MODES))
def test_pad_array_matches_the_reference_mapping(h, w, pad, mode):
    x = np.arange(h * w).reshape(h, w) + 1
    got = pad_array(x, pad, mode)
    rows = [map_index(i, h, mode) for i in range(-pad[0], h + pad[1])]
    cols = [map_index(j, w, mode) for j in range(-pad[2], w + pad[3])]
    expected = np.array([[0 if r is None or c is None else x[r, c] for c in cols] for r in rows])
    np.testing.assert_array_equal(got, expected)


def test_pad_array_valid():
    x = np.ones((3, 3))
    np.testing.assert_array_equal(pad_array(x, (0, 0, 0, 0), "valid"), x)
    with pytest.raises(UsageError, match="valid"):
        pad_array(x, (1, 0, 0, 0), "none")


def test_pad_array_negative_pad():
    with pytest.raises(UsageError, match=">= 0"):
        pad_array(np.ones((3, 3)), (1, -1, 0, 0), "zeros")


def test_pad_array_does_not_modify_input():
    x = np.arange(9.0).reshape(3, 3)
    before = x.copy()
    out = pad_array(x, (1, 1, 1, 1), "border")
    out[:] = -1
    np.testing.assert_array_equal(x, before)


# --- the pattern row (convcli padding) ------------------------------------------------------


@pytest.mark.parametrize(("mode", "expected"), [
    ("zeros", "0 0 | 1 2 3 4 5 | 0 0"),
    ("border", "1 1 | 1 2 3 4 5 | 5 5"),
    ("reflection", "3 2 | 1 2 3 4 5 | 4 3"),
    ("symmetric", "2 1 | 1 2 3 4 5 | 5 4"),
    ("circular", "4 5 | 1 2 3 4 5 | 1 2"),
    ("valid", "| 1 2 3 4 5 |"),
    ("mirror", "3 2 | 1 2 3 4 5 | 4 3"),
    ("wrap", "4 5 | 1 2 3 4 5 | 1 2"),
])
def test_pattern_row(mode, expected):
    assert pattern_row(mode) == expected


def test_pattern_row_longer_pad_than_row():
    assert pattern_row("reflection", n=3, pad=4) == "1 2 3 2 | 1 2 3 | 2 1 2 3"
    assert pattern_row("symmetric", n=3, pad=4) == "3 3 2 1 | 1 2 3 | 3 2 1 1"
    assert pattern_row("circular", n=3, pad=4) == "3 1 2 3 | 1 2 3 | 1 2 3 1"


@pytest.mark.parametrize("mode", PAD_MODES)
def test_pattern_row_agrees_with_the_mapping(mode):
    n, pad = 4, 6
    values = [map_index(i, n, mode) for i in range(-pad, n + pad)]
    text = " ".join("0" if v is None else str(v + 1) for v in values)
    left, mid, right = text[: 2 * pad - 1], text[2 * pad : 2 * pad + 2 * n - 1], text[2 * pad + 2 * n :]
    assert pattern_row(mode, n=n, pad=pad) == f"{left} | {mid} | {right}"


def test_the_padding_listing_says_how_each_library_gets_valid() -> None:
    """0.3 listed 'torch — (not available)' for valid, which is torch's own default (padding=0)."""
    from click.testing import CliRunner

    from convcli.cli.app import cli

    out = CliRunner().invoke(cli, ["padding", "valid"]).stdout
    assert "not available" not in out
    assert "torch   padding=0 (the default) or padding='valid'" in out
    assert "torch   reflect" in CliRunner().invoke(cli, ["padding", "reflection"]).stdout
