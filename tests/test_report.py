"""The shape report's renderings: JSON Lines for programs, plain lines for pipes, a Rich table for people.

The records are written here by hand, in the README 'report' form, so the renderers are tested on their own.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from convcli.cli import cli
from convcli.report import json_line, plain_lines, write_plain, write_table

CAT = Path(__file__).resolve().parent.parent / "sample_images" / "cat224.png"


def stage(n: int, out: int, rf: int, jump: int) -> dict[str, object]:
    return {"op": "downsample", "kernel": "gaussian3", "kernel_size": [3, 3], "stride": [2, 2],
            "dilation": [1, 1], "padding": "reflection", "pad": [1, 1, 1, 1],
            "input_shape": [1, 3, n, n], "output_shape": [1, 3, out, out],
            "arithmetic": f"({n} + 1 + 1 - 1*(3-1) - 1) // 2 + 1 = {out}",
            "receptive_field": rf, "jump": jump}


RECORD = {
    "input": "cat.png", "output": "cat.down4.png", "status": "ok",
    "input_shape": [1, 3, 224, 224], "output_shape": [1, 3, 56, 56],
    "stages": [stage(224, 112, 3, 2), stage(112, 56, 7, 4)],
    "range": {"policy": "clip", "min": -12.5, "max": 300.25, "clipped_fraction": 0.0125},
    "notes": ["EXIF orientation 6 applied"], "seconds": 0.004,
}
ERROR = {"input": "x.png", "status": "error", "error": "no such file"}


def test_json_line_is_one_line_that_round_trips() -> None:
    line = json_line(RECORD)
    assert "\n" not in line
    assert json.loads(line) == RECORD


def test_json_line_turns_numpy_values_into_json() -> None:
    rec = {"input_shape": np.array([1, 3, 4, 4]), "min": np.float32(1.5)}
    assert json.loads(json_line(rec)) == {"input_shape": [1, 3, 4, 4], "min": 1.5}


def test_json_line_writes_nan_as_null() -> None:
    # JSON has no NaN: a strict reader would choke on the token, so it is null (README, "The shape report")
    assert json_line({"min": float("nan"), "max": float("-inf")}) == '{"min": null, "max": null}'


def test_plain_lines_show_every_stage_and_the_range() -> None:
    text = "\n".join(plain_lines(RECORD))
    assert "cat.png -> cat.down4.png" in text
    assert "[1, 3, 224, 224] -> [1, 3, 112, 112]" in text
    assert "[1, 3, 112, 112] -> [1, 3, 56, 56]" in text
    assert "(224 + 1 + 1 - 1*(3-1) - 1) // 2 + 1 = 112" in text
    assert "(112 + 1 + 1 - 1*(3-1) - 1) // 2 + 1 = 56" in text
    assert "rf 7 jump 4" in text
    assert "clip" in text and "-12.5" in text and "300.25" in text and "1.25%" in text
    assert "EXIF orientation 6 applied" in text


def test_plain_lines_of_an_error() -> None:
    (line,) = plain_lines(ERROR)
    assert "x.png" in line and "no such file" in line


def test_write_plain_ends_with_a_newline() -> None:
    buf = io.StringIO()
    write_plain(RECORD, buf)
    assert buf.getvalue().endswith("\n")
    assert buf.getvalue().count("\n") == len(plain_lines(RECORD))


TABLE_FACTS = ("cat.png", "cat.down4.png", "downsample", "gaussian3", "reflection", "[1, 3, 224, 224]",
               "[1, 3, 56, 56]", "(224 + 1 + 1 - 1*(3-1) - 1) // 2 + 1 = 112",
               "(112 + 1 + 1 - 1*(3-1) - 1) // 2 + 1 = 56", "300.25", "EXIF orientation 6 applied")


@pytest.mark.parametrize("columns", [200, 120, 80, 60])
def test_write_table_holds_every_fact_at_any_width(monkeypatch: pytest.MonkeyPatch, columns: int) -> None:
    """Wide terminals get a table; narrow ones must not see "downsample" cut to "downs…"."""
    monkeypatch.setenv("COLUMNS", str(columns))
    buf = io.StringIO()
    write_table(RECORD, buf)
    text = buf.getvalue()
    for fact in TABLE_FACTS:
        assert fact in text, fact
    assert "…" not in text
    if columns >= 120:
        assert "┃ op" in text  # a real table when it fits


def test_write_table_of_an_error() -> None:
    buf = io.StringIO()
    write_table(ERROR, buf)
    assert "x.png" in buf.getvalue() and "no such file" in buf.getvalue()


def test_non_square_values_are_shown_per_axis() -> None:
    rec = json.loads(json.dumps(RECORD))
    st = rec["stages"][0]
    st.update(stride=[2, 3], kernel_size=[3, 5], pad=[1, 1, 2, 2], receptive_field=[3, 5], jump=[2, 3])
    text = "\n".join(plain_lines(rec))
    assert "3x5" in text and "2x3" in text and "1,1,2,2" in text


def test_flatten_is_a_reshape_not_a_point_wise_stage(tmp_path) -> None:
    """relu is point-wise (each value on its own); flatten moves every value into one row, in
    PyTorch's order: the report called both '(point-wise)'."""
    from click.testing import CliRunner
    from PIL import Image

    from convcli.cli import cli

    Image.fromarray(np.zeros((6, 5, 3), np.uint8)).save(tmp_path / "a.png")
    r = CliRunner().invoke(cli, ["chain", "-i", str(tmp_path / "a.png"), "-o", str(tmp_path / "v.npy"),
                                 "relu", "flatten"])
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    relu = next(ln for ln in lines if ". relu" in ln)
    flat = next(ln for ln in lines if ". flatten" in ln)
    assert "(point-wise)" in relu
    assert "point-wise" not in flat and "reshape" in flat and "[1, 3, 6, 5] -> [1, 90]" in flat


@pytest.mark.parametrize(("argv", "hint"), [
    (["filter", "{cat}", "-k", "sobel-x"], "the kernel sums to 0"),
    (["chain", "-i", "{cat}", "blur", "--size", "5", "edges", "--direction", "vertical", "downsample"],
     "the edges kernel (edge-vertical) sums to 0"),
    (["chain", "-i", "{cat}", "filter", "-k", "sobel-x", "gray", "blur"],
     "the filter kernel (sobel-x) sums to 0"),
    (["chain", "-i", "{cat}", "filter", "-k", "sobel-x", "filter", "-k", "sharpen"], None),
    (["chain", "-i", "{cat}", "filter", "-k", "sobel-x", "relu"], None),
], ids=["last", "before a blur and a downsample", "before gray and blur", "before a sharpen", "before relu"])
def test_the_clipping_hint_finds_a_zero_sum_kernel_before_stages_that_keep_negatives(
        tmp_path: Path, argv: list[str], hint: str | None) -> None:
    """The hint ('--range abs keeps their magnitude') came only when the zero-sum kernel was the last
    stage: ``blur edges downsample`` clipped 47% of its samples without a word. Blurs, downsamples and
    luminance after it keep its negatives negative; a sharpen or a ReLU after it is not this case."""
    out = tmp_path / "o.png"
    r = CliRunner().invoke(cli, [a.format(cat=CAT) for a in argv] + ["-o", str(out), "--json"]
                           if argv[0] != "chain" else
                           [argv[0], *[a.format(cat=CAT) for a in argv[1:3]], "-o", str(out), "--json",
                            *argv[3:]])
    assert r.exit_code == 0, r.output
    notes = [n for n in json.loads(r.stdout)["notes"] if "samples clipped" in n]
    if hint is None:
        assert notes == []
    else:
        assert len(notes) == 1 and hint in notes[0] and "--range abs" in notes[0], notes
