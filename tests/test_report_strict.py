"""JSON Lines stay strict JSON in valid UTF-8, one record per input, whatever the numbers and names."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from convcli.cli import cli
from convcli.report import clean_text, json_line, plain_lines


def reject_constant(name: str) -> Any:
    raise AssertionError(f"non-standard JSON token {name}")


def parse_strict(line: str) -> Any:
    """Parse as a strict JSON reader would: UTF-8 encodable, no NaN/Infinity tokens."""
    line.encode("utf-8")  # a lone surrogate raises here
    assert "\n" not in line
    return json.loads(line, parse_constant=reject_constant)


names = st.binary(min_size=1, max_size=20).map(os.fsdecode)  # arbitrary bytes, as the OS hands them over
numbers = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(2**70), 2**70)
values = st.recursive(st.none() | st.booleans() | numbers | st.text() | names,
                      lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=5) | names, inner, max_size=4),
                      max_leaves=20)


@given(name=names, extra=st.dictionaries(st.text(max_size=8), values, max_size=6),
       lo=numbers, hi=numbers)
def test_every_record_is_one_line_of_strict_json(name: str, extra: dict[str, Any], lo: float,
                                                 hi: float) -> None:
    record = {**extra, "input": name, "status": "ok", "range": {"policy": "clip", "min": lo, "max": hi}}
    line = json_line(record)
    parsed = parse_strict(line)
    assert parsed["input"] == clean_text(name)
    for key, v in (("min", lo), ("max", hi)):
        if isinstance(v, float) and not math.isfinite(v):
            assert parsed["range"][key] is None
        else:
            assert parsed["range"][key] == v
    for text in plain_lines(record):
        text.encode("utf-8")


@given(raw=st.binary(max_size=30))
def test_names_keep_their_valid_parts_and_show_undecodable_bytes(raw: bytes) -> None:
    shown = clean_text(os.fsdecode(raw))
    shown.encode("utf-8")
    # Reference, worked independently: decode what is UTF-8, write each other byte as \xNN.
    expected = raw.decode("utf-8", errors="backslashreplace")
    assert shown == expected


def test_non_utf8_name_by_hand() -> None:
    line = json_line({"input": os.fsdecode(b"caf\xe9.png"), "status": "ok"})
    assert line == '{"input": "caf\\\\xe9.png", "status": "ok"}'
    assert parse_strict(line)["input"] == "caf\\xe9.png"


# --------------------------------------------------------------------------- the CLI


def save(path: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).save(path)
    return path


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_overflow_gives_null_and_every_input_runs(tmp_path: Path, jobs: str) -> None:
    """Five stages of a kernel summing to 4e8 (each within the kernel limit) overflow float32 (max 3.4e38)."""
    paths = [str(save(tmp_path / f"in{i}.png", i)) for i in range(3)]
    big = ["filter", "-k", "1e8 1e8; 1e8 1e8"]
    r = CliRunner().invoke(cli, ["chain", *[a for p in paths for a in ("-i", p)], "--json", "-j", jobs,
                                 "--out-dir", str(tmp_path / "out"), "--ordered", *big * 5],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.stderr
    recs = [parse_strict(line) for line in r.stdout.splitlines()]
    assert [rec["input"] for rec in recs] == paths
    for rec in recs:
        assert rec["status"] == "ok"
        assert rec["range"]["max"] is None
        assert any(n.startswith("the float result holds inf or NaN") for n in rec["notes"])
        assert any("overflow" in n for n in rec["notes"] if n.startswith("warning: "))
    assert "Warning" not in r.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["in0.chain.png", "in1.chain.png",
                                                                     "in2.chain.png"]


@pytest.mark.skipif(sys.platform != "linux", reason="needs a file system that takes any bytes as a name")
def test_non_utf8_file_name_in_json(tmp_path: Path) -> None:
    folder = os.fsencode(tmp_path)
    raw = os.path.join(folder, b"caf\xe9-\xff.png")
    save(Path(os.fsdecode(raw)), 1)
    r = CliRunner().invoke(cli, ["blur", os.fsdecode(raw), "--json", "--out-dir", str(tmp_path / "out")],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.stderr
    (line,) = r.stdout.splitlines()
    rec = parse_strict(line)
    assert rec["input"] == str(tmp_path) + "/caf\\xe9-\\xff.png"
    assert rec["output"] == str(tmp_path / "out") + "/caf\\xe9-\\xff.blur.png"
    assert os.listdir(os.fsencode(tmp_path / "out")) == [b"caf\xe9-\xff.blur.png"]


# --------------------------------------------------------------------------- names that would break a line


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=12))
def test_line_text_is_one_line_and_keeps_printable_text(name: str) -> None:
    from convcli.report import line_text

    shown = line_text(name)
    assert len(shown.splitlines()) <= 1 and "\r" not in shown and "\x00" not in shown
    if name.isprintable():
        assert shown == name


def test_a_newline_in_a_file_name_keeps_every_error_and_report_one_line(tmp_path: Path) -> None:
    """0.2 split `convcli: error: bad` / `name.png: ...` over two lines (and the text report too)."""
    bad = tmp_path / "bad\nname.png"
    bad.write_text("junk\n")
    good = save(tmp_path / "ok\nname.png", 1)
    r = CliRunner().invoke(cli, ["blur", str(bad), str(good), "--out-dir", str(tmp_path / "o\tx")],
                           catch_exceptions=False)
    assert r.exit_code == 1
    err = [line for line in r.stderr.splitlines() if line.startswith("convcli: error")]
    assert err == [f"convcli: error: {tmp_path}/bad\\nname.png: not an image file (Pillow cannot identify it)"
                   ]
    head = f"{tmp_path}/ok\\nname.png -> {tmp_path}/o\\tx/ok\\nname.blur.png"
    assert r.stdout.splitlines()[0].startswith(head)
    assert (tmp_path / "o\tx" / "ok\nname.blur.png").is_file()
    # JSON keeps the name exactly (JSON escapes it itself)
    r = CliRunner().invoke(cli, ["blur", str(good), "--out-dir", str(tmp_path / "j"), "--json"],
                           catch_exceptions=False)
    assert parse_strict(r.stdout.strip())["input"] == str(good)


def test_a_refusal_naming_a_newline_file_is_one_line(tmp_path: Path) -> None:
    good = save(tmp_path / "a\nb.png", 2)
    r = CliRunner().invoke(cli, ["blur", str(good), "-o", str(good)], catch_exceptions=False)
    assert r.exit_code == 2
    assert len(r.stderr.splitlines()) == 1 and "a\\nb.png" in r.stderr


def test_the_rich_table_shows_brackets_in_names_as_they_are() -> None:
    import io

    from convcli.report import write_table

    buf = io.StringIO()
    write_table({"input": "cat[red].png", "status": "error", "error": "bad [bold]x[/bold]"}, buf)
    assert buf.getvalue().strip() == "cat[red].png: error: bad [bold]x[/bold]"
