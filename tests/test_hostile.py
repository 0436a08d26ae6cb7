"""Every image command over the hostile and odd corpus (tests/corpus.py), as a user would run it.

Each file is either processed correctly (the output decodes fully, with the size,
channels, bit depth, alpha, ICC profile and notes it should have) or refused with
one clear line on stderr and a JSON error record — never a traceback. A batch with
refusals in it exits 1.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from corpus import Case, build_corpus
from PIL import Image

from convcli.cli import cli
from convcli.io.decode import read_header

COMMANDS: dict[str, list[str]] = {
    "filter": ["filter", "-k", "sharpen"],
    "blur": ["blur", "--size", "5"],
    "edges": ["edges"],
    "downsample": ["downsample"],
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Case]:
    return build_corpus(tmp_path_factory.mktemp("corpus"))


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def records(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def expected_size(command: str, size: tuple[int, int]) -> tuple[int, int]:
    if command == "downsample":  # stride 2, same padding
        return math.ceil(size[0] / 2), math.ceil(size[1] / 2)
    return size


def check_refused(rec: dict[str, Any], case: Case, stderr_lines: list[str]) -> None:
    assert rec["status"] == "error", rec
    assert set(rec) == {"input", "status", "error"}
    assert case.expect.error is not None and case.expect.error.lower() in rec["error"].lower(), rec["error"]
    assert "\n" not in rec["error"]
    assert f"convcli: error: {case.path}: {rec['error']}" in stderr_lines


def check_done(rec: dict[str, Any], case: Case, command: str) -> None:
    expect = case.expect
    assert rec["status"] == "ok", rec
    out = Path(rec["output"])
    with Image.open(out) as im:
        im.load()  # fully decodable: nothing half-written
        size, info, bands = im.size, dict(im.info), im.getbands()
    _, channels, height, width = rec["output_shape"]
    assert size == (width, height) == expected_size(command, expect.size)
    assert channels == (1 if command == "edges" else expect.channels)
    notes = " | ".join(rec["notes"])
    for phrase in expect.notes:
        if phrase.startswith("first frame of"):  # the CLI filters every frame (--frames all)
            phrase = f"{expect.n_frames} of {expect.n_frames} frames"
        assert phrase in notes, (phrase, notes)
    header = read_header(out)
    assert header.bit_depth == expect.bit_depth or "8-bit" in notes, (header, notes)
    if expect.has_alpha and command != "edges":
        assert "A" in bands or header.has_alpha, bands
    if expect.icc and channels == 3:
        assert info.get("icc_profile"), "ICC profile lost"
    if expect.n_frames > 1:
        with Image.open(out) as im:
            assert im.n_frames == expect.n_frames
        assert rec["output_shape"][0] == expect.n_frames


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_over_the_corpus(command: str, corpus: dict[str, Case], tmp_path: Path) -> None:
    paths = [str(case.path) for case in corpus.values()]
    r = run(*COMMANDS[command], *paths, "--out-dir", str(tmp_path), "--json", "--ordered", "-j", "1")
    assert r.exit_code == 1  # the hostile files fail, the others are done
    assert "Traceback" not in r.stderr
    recs = records(r.stdout)
    assert [rec["input"] for rec in recs] == paths
    stderr_lines = r.stderr.splitlines()
    for case, rec in zip(corpus.values(), recs, strict=True):
        if case.expect.ok:
            check_done(rec, case, command)
        else:
            check_refused(rec, case, stderr_lines)
    refused = sum(not case.expect.ok for case in corpus.values())
    assert stderr_lines[-1].startswith(f"convcli: {len(corpus) - refused} done, {refused} failed in ")
    assert len(stderr_lines) == refused + 1  # one line per refusal, then the summary


def test_corpus_in_a_process_pool(corpus: dict[str, Case], tmp_path: Path) -> None:
    paths = [str(case.path) for case in corpus.values()]
    r = run("blur", *paths, "--out-dir", str(tmp_path), "--json", "-j", "2")
    assert r.exit_code == 1 and "Traceback" not in r.stderr
    by_input = {rec["input"]: rec for rec in records(r.stdout)}
    assert len(by_input) == len(corpus)
    for case in corpus.values():
        rec = by_input[str(case.path)]
        assert rec["status"] == ("ok" if case.expect.ok else "error"), rec


@pytest.mark.parametrize("command", list(COMMANDS))
def test_jpeg_output_of_an_image_with_alpha_is_flattened(command: str, corpus: dict[str, Case],
                                                         tmp_path: Path) -> None:
    case = corpus["rgba_transparent"]
    r = run(*COMMANDS[command], str(case.path), "-o", str(tmp_path / "x.jpg"), "--json")
    assert r.exit_code == 0, r.stderr
    rec = records(r.stdout)[0]
    with Image.open(tmp_path / "x.jpg") as im:
        im.load()
        assert im.format == "JPEG" and "A" not in im.getbands()
    notes = " | ".join(rec["notes"])
    if command == "edges":  # luminance only: alpha is dropped before any encoding
        assert "alpha dropped" in notes
    else:
        assert "alpha flattened onto white" in notes


def test_max_pixels_refuses_from_the_header(corpus: dict[str, Case], tmp_path: Path) -> None:
    case = corpus["icc_png"]
    r = run("blur", str(case.path), "--max-pixels", "10", "--out-dir", str(tmp_path), "--json")
    assert r.exit_code == 1
    assert "exceeds --max-pixels 10" in records(r.stdout)[0]["error"]
    assert list(tmp_path.iterdir()) == []


def test_dry_run_over_the_corpus_decodes_nothing(corpus: dict[str, Case], tmp_path: Path) -> None:
    paths = [str(case.path) for case in corpus.values()]
    r = run("blur", *paths, "--out-dir", str(tmp_path / "o"), "--json", "--ordered", "--dry-run")
    assert "Traceback" not in r.stderr
    assert len(records(r.stdout)) == len(corpus)
    assert not (tmp_path / "o").exists()


@pytest.mark.skipif(not Path("/proc/self").exists(), reason="RLIMIT_AS as Linux keeps it")
def test_an_image_too_big_for_memory_is_the_inputs_failure_in_one_line(tmp_path: Path) -> None:
    """A dilation of 30000 on a zero-padded 224² image asks for a 60224² output (20 GiB), which
    --max-pixels 1e11 admits: under a 3 GiB address-space limit the allocation fails. That is the
    input's failure (exit 1, one line, nothing written), not 'internal error, please report it'."""
    import resource
    import subprocess
    import sys

    import numpy as np

    rng = np.random.default_rng(3)
    for name in ("a.png", "b.png"):
        Image.fromarray(rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)).save(tmp_path / name)

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))

    r = subprocess.run([sys.executable, "-m", "convcli", "filter", str(tmp_path / "a.png"), "-k", "box3",
                        "--dilation", "30000", "--padding", "zeros", "--max-pixels", "100000000000",
                        "-o", str(tmp_path / "big.png")],
                       capture_output=True, text=True, preexec_fn=limit, timeout=120)
    assert r.returncode == 1, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "not enough memory" in lines[0] and "internal error" not in lines[0]
    assert not (tmp_path / "big.png").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png"]
