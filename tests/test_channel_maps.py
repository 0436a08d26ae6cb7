"""A result of other than 1 or 3 channels written as images: one normalised grey map per channel
(checked against a min..max stretch done here) and a labelled grid at the output, of the first 64."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from convcli.cli import cli


def run(*args: object) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli, [str(a) for a in args])
    return r.exit_code, r.stdout, r.stderr


def maps_of(tmp_path: Path, channels: int) -> tuple[np.ndarray, Path, dict]:
    values = np.random.default_rng(channels).random((6, 9, channels)).astype(np.float32) * 255
    src = tmp_path / f"in{channels}.npy"
    np.save(src, values)
    out = tmp_path / f"m{channels}" / "grid.png"
    code, stdout, stderr = run("filter", src, "-k", "identity", "-o", out, "--json")
    assert code == 0, stderr
    return values, out, json.loads(stdout)


def test_every_channel_has_its_map_and_the_grid_draws_the_first_64(tmp_path: Path) -> None:
    """4096 channels made a 976x289808 grid (2.8 GB, 47 s) that no viewer opens."""
    values, out, rec = maps_of(tmp_path, 100)
    assert len(rec["outputs"]) == 100
    note = "100 channels: one normalised 8-bit grey image each, the first 64 in a grid at output"
    assert note in rec["notes"]
    for i in (0, 63, 64, 99):
        v = values[:, :, i].astype(np.float64)
        expected = np.rint((v - v.min()) * (255.0 / (v.max() - v.min())))
        with Image.open(out.parent / f"grid.c{i}.png") as im:
            assert np.array_equal(np.asarray(im), expected.astype(np.uint8)), i
    heights = {}
    for c in (64, 70, 100):
        _, grid, _ = maps_of(tmp_path, c)
        with Image.open(grid) as im:
            heights[c] = im.size[1]
    assert heights[70] == heights[100]  # both draw 64 panels under a one-line title
    assert heights[64] < heights[100] < heights[64] + 120


def test_a_tiff_output_gets_its_channel_maps_as_png_does(tmp_path: Path) -> None:
    """A result of 5 channels written to .tif was refused ("write it as .npy"), where .png, .jpg, .bmp
    and .webp write one normalised grey map per channel and the grid: TIFF holds raw floats of one
    channel only, so it takes maps too (a folder of TIFFs failed input by input)."""
    values = np.random.default_rng(5).random((6, 9, 5)).astype(np.float32) * 255
    src = tmp_path / "in5.npy"
    np.save(src, values)
    code, stdout, stderr = run("filter", src, "-k", "identity", "-o", tmp_path / "grid.tif", "--json")
    assert code == 0, stderr
    assert len(json.loads(stdout)["outputs"]) == 5
    for i in range(5):
        v = values[:, :, i].astype(np.float64)
        expected = np.rint((v - v.min()) * (255.0 / (v.max() - v.min())))
        with Image.open(tmp_path / f"grid.c{i}.tif") as im:
            assert im.format == "TIFF" and np.array_equal(np.asarray(im), expected.astype(np.uint8)), i


def test_a_dry_run_refuses_what_the_run_refuses(tmp_path: Path) -> None:
    """--dry-run said ok (exit 0) for a flatten to .png and a 5-channel float TIFF, which the run then
    refused (exit 2): README, refusals from the header are made with --dry-run too."""
    src = tmp_path / "in.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (8, 10, 3), dtype=np.uint8)).save(src)
    five = ["conv", "--out-channels", "5"]
    for out, extra, stages in ((tmp_path / "f.png", [], ["conv", "--out-channels", "2", "flatten"]),
                               (tmp_path / "m.tif", ["--bit-depth", "float"], five), ("-", [], five)):
        real = run("chain", "-i", src, "-o", out, *extra, *stages)
        dry = run("chain", "-i", src, "-o", out, *extra, "--dry-run", *stages)
        assert real[0] == dry[0] == 2, (real, dry)
        assert dry[2] == real[2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png"]


@pytest.mark.parametrize(("src_bits", "flag", "ext", "want_bits"), [
    (16, [], ".png", 16), (8, ["--bit-depth", "16"], ".tif", 16), (16, ["--bit-depth", "8"], ".png", 8),
    (16, [], ".jpg", 8)])
def test_channel_maps_have_the_outputs_bit_depth(tmp_path: Path, src_bits: int, flag: list[str],
                                                 ext: str, want_bits: int) -> None:
    """Every map was 8-bit: a 16-bit input's (and --bit-depth 16's) maps lost 8 bits without a note."""
    rng = np.random.default_rng(0)
    src = tmp_path / "g.png"
    grey = rng.integers(0, 1 << src_bits, (13, 11)).astype(np.uint16 if src_bits == 16 else np.uint8)
    Image.fromarray(grey).save(src)
    w = tmp_path / "w.npy"
    np.save(w, rng.uniform(-1, 1, (4, 1, 3, 3)).astype(np.float32))
    out = tmp_path / f"maps{ext}"
    code, stdout, stderr = run("chain", "-i", src, "-o", out, *flag, "--json", "conv", "--weights", w)
    assert code == 0, stderr
    rec = json.loads(stdout)
    code, _, stderr = run("chain", "-i", src, "-o", tmp_path / "v.npy", "-q", "conv", "--weights", w)
    assert code == 0, stderr
    floats = np.load(tmp_path / "v.npy").astype(np.float64)
    top = (1 << want_bits) - 1
    for c in range(4):
        v = floats[..., c]
        want = np.rint((v - v.min()) * (top / (v.max() - v.min())))
        with Image.open(tmp_path / f"maps.c{c}{ext}") as im:
            got = np.asarray(im).astype(np.float64)
        if ext == ".jpg":
            assert np.abs(got - want).mean() < 8  # lossy on noise: the bit depth is the point here
        else:
            np.testing.assert_array_equal(got, want)
    assert f"4 channels: one normalised {want_bits}-bit grey image each, grid at output" in rec["notes"]
    if ext == ".jpg":
        assert any(n.startswith("reduced to 8-bit") for n in rec["notes"])
