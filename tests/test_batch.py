"""Batch jobs: inputs and outputs, failure isolation, --jobs, --ordered, --fail-fast, Dask, signals, pipes.

In-process tests use CliRunner (stdout, stderr and exit status asserted apart);
signals, closed pipes and terminals need a real process and use subprocess.
"""

from __future__ import annotations

import errno
import io
import json
import os
import pty
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result
from PIL import Image

from convcli.cli import cli

TIMEOUT = 60


def run(*args: str, input: bytes | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def records(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def save_rgb(path: Path, height: int = 24, width: int = 32, seed: int = 0, **params: Any) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path, **params)
    return path


def decode(path: Path | bytes) -> Image.Image:
    """Decode fully (a truncated file raises here)."""
    im = Image.open(io.BytesIO(path) if isinstance(path, bytes) else path)
    im.load()
    return im


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("convcli: error: ")]


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """Three good images and a truncated one, plus a hidden image and a text file (both skipped)."""
    d = tmp_path / "photos"
    d.mkdir()
    for i in range(3):
        save_rgb(d / f"good{i}.png", seed=i)
    data = (d / "good0.png").read_bytes()
    (d / "broken.png").write_bytes(data[: len(data) // 2])
    save_rgb(d / ".hidden.png")
    (d / "notes.png").write_text("not an image\n")
    return d


@pytest.fixture(scope="module")
def heavy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Enough work to take a few seconds on two cores: 24 images of 400 x 400."""
    d = tmp_path_factory.mktemp("heavy")
    for i in range(24):
        save_rgb(d / f"img{i:02d}.png", 400, 400, seed=i, compress_level=1)
    return d


# --------------------------------------------------------------------------- failure isolation


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_good_and_bad_inputs_mixed(photos: Path, tmp_path: Path, jobs: str) -> None:
    out = tmp_path / "out"
    missing = str(photos / "missing.png")
    r = run("blur", str(photos), missing, "--out-dir", str(out), "--json", "-j", jobs)
    assert r.exit_code == 1
    recs = {rec["input"]: rec for rec in records(r.stdout)}
    assert len(recs) == 5  # 3 good + broken + missing; hidden and text files skipped
    for i in range(3):
        rec = recs[str(photos / f"good{i}.png")]
        assert rec["status"] == "ok"
        assert decode(Path(rec["output"])).size == (32, 24)
    assert "truncated" in recs[str(photos / "broken.png")]["error"]
    assert recs[missing] == {"input": missing, "status": "error", "error": "no such file"}
    assert sorted(error_lines(r.stderr)) == sorted(
        f"convcli: error: {name}: {rec['error']}" for name, rec in recs.items() if rec["status"] == "error")
    assert r.stderr.splitlines()[-1].startswith("convcli: 3 done, 2 failed in ")
    assert "Traceback" not in r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["good0.blur.png", "good1.blur.png", "good2.blur.png"]


def test_image_too_small_is_a_usage_error_for_that_input(tmp_path: Path) -> None:
    big, tiny = save_rgb(tmp_path / "big.png"), save_rgb(tmp_path / "tiny.png", 2, 2)
    r = run("blur", str(big), str(tiny), "--size", "5", "-p", "valid", "--json", "--ordered", "-j", "1")
    assert r.exit_code == 2
    ok, bad = records(r.stdout)
    assert ok["status"] == "ok" and bad["status"] == "error"
    assert Path(ok["output"]).exists() and not (tmp_path / "tiny.blur.png").exists()


def test_unexpected_exception_becomes_a_record(photos: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import convcli.run.scale as scaleout

    real = scaleout.process

    def buggy(job: Any) -> Any:
        if job.source.endswith("good1.png"):
            return 1 / 0
        return real(job)

    monkeypatch.setattr(scaleout, "process", buggy)
    args = ["blur", str(photos / "good0.png"), str(photos / "good1.png"), "--out-dir", str(tmp_path / "o"),
            "--json", "-j", "1"]
    r = run(*args)
    assert r.exit_code == 1
    rec = records(r.stdout)[1]
    assert rec["status"] == "error" and "ZeroDivisionError" in rec["error"]
    assert "Traceback" not in r.stderr
    r = run("--debug", *args)
    assert r.exit_code == 1 and "Traceback" in r.stderr and "ZeroDivisionError" in r.stderr


def test_debug_shows_the_traceback_of_an_input_that_failed_in_decoding(tmp_path: Path) -> None:
    """README: ``--debug`` shows the traceback; 0.3 showed it only for bugs, not for an input whose
    pixels failed to decode (its header read fine, so the plan let it through)."""
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "whole.png")
    data = (tmp_path / "whole.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    args = ["blur", str(tmp_path / "cut.png"), "-o", str(tmp_path / "o.png")]
    quiet, loud = run(*args), run("--debug", *args)
    assert quiet.exit_code == loud.exit_code == 1
    assert "Traceback" not in quiet.stderr
    assert "Traceback" in loud.stderr
    assert quiet.stderr.splitlines()[0] in loud.stderr
    assert not (tmp_path / "o.png").exists()


def test_fail_fast_stops_at_the_first_failure(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = run("blur", str(photos / "broken.png"), str(photos / "good0.png"), str(photos / "good1.png"),
            "--out-dir", str(out), "--json", "-j", "1", "--fail-fast")
    assert r.exit_code == 1
    recs = records(r.stdout)
    assert [rec["status"] for rec in recs] == ["error", "skipped", "skipped"]  # one record per input
    assert [rec["input"] for rec in recs[1:]] == [str(photos / "good0.png"), str(photos / "good1.png")]
    assert recs[1]["reason"].startswith("not run: --fail-fast")
    assert list(out.iterdir()) == []
    assert "stopped at the first failure (--fail-fast), 2 not run" in r.stderr
    assert len(error_lines(r.stderr)) == 1  # the skipped inputs are no failures


def test_fail_fast_with_a_pool(heavy: Path, tmp_path: Path) -> None:
    broken = tmp_path / "a_broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    r = run("blur", str(broken), str(heavy), "--out-dir", str(tmp_path / "out"), "--json", "-j", "2",
            "--fail-fast", "--ordered")
    assert r.exit_code == 1
    recs = records(r.stdout)
    run_ = [rec for rec in recs if rec["status"] != "skipped"]
    # one image per worker was in flight: none starts once the failure is known (0.3 handed a
    # second image to each worker ahead of time, and the one waiting behind the failure started)
    assert recs[0]["status"] == "error" and len(run_) <= 2
    assert len(recs) == 1 + len(list(heavy.iterdir()))  # and a record for each input not started


def test_ordered_keeps_input_order(photos: Path, tmp_path: Path) -> None:
    names = [str(photos / n) for n in ("good2.png", "broken.png", "good0.png", "good1.png")]
    r = run("edges", *names, "--out-dir", str(tmp_path / "out"), "--json", "-j", "2", "--ordered")
    assert r.exit_code == 1
    assert [rec["input"] for rec in records(r.stdout)] == names


class KillerPipeline:
    """Stands in for a Pipeline; planning ends the worker process, as the OOM killer would."""

    def plan(self, shape: tuple[int, int, int]) -> list[Any]:
        os._exit(9)


def test_a_worker_that_dies_fails_only_its_input(photos: Path, tmp_path: Path) -> None:
    import threading

    from convcli.core.kernels import get_kernel
    from convcli.pipeline import Pipeline, make_correlate_stage
    from convcli.run.job import Job
    from convcli.run.scale import run_local

    out = tmp_path / "out"
    out.mkdir()
    blur = Pipeline((make_correlate_stage("blur", get_kernel("gaussian3")),))
    # a run's tag, as the CLI gives every job: a worker killed mid-write (the pool breaks) leaves a
    # temporary that only a tagged clean-up removes (untagged, this test left '.1.png.tmp--XXXX' when
    # the other worker was writing 1.png as the pool broke)
    good = [Job(source=str(photos / f"good{i}.png"), output=str(out / f"{i}.png"), pipeline=blur,
                temp_tag="t0") for i in range(3)]
    killer = Job(source=str(photos / "good0.png"), output=str(out / "k.png"),
                 pipeline=KillerPipeline(), temp_tag="t0")  # type: ignore[arg-type]
    outcomes = list(run_local([good[0], killer, good[1], good[2]], 2, threading.Event()))
    by_index = {o.index: o.result.record for o in outcomes}
    assert sorted(by_index) == [0, 1, 2, 3]
    assert by_index[1]["error"] == "the worker process died on this input (killed, or out of memory?)"
    assert [by_index[i]["status"] for i in (0, 2, 3)] == ["ok", "ok", "ok"]
    assert sorted(p.name for p in out.iterdir()) == ["0.png", "1.png", "2.png"]


# --------------------------------------------------------------------------- outputs and names


def test_jobs_1_and_2_give_identical_outputs(photos: Path, tmp_path: Path) -> None:
    for jobs in ("1", "2"):
        for command in (["blur", "--size", "5"], ["edges"], ["downsample"], ["filter", "-k", "sharpen"]):
            r = run(*command, str(photos), "--out-dir", str(tmp_path / f"j{jobs}"), "-q", "-j", jobs)
            assert r.exit_code == 1  # broken.png
    one, two = sorted((tmp_path / "j1").iterdir()), sorted((tmp_path / "j2").iterdir())
    assert [p.name for p in one] == [p.name for p in two] and len(one) == 12
    for a, b in zip(one, two, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name


def test_collisions_refused_before_any_work(tmp_path: Path) -> None:
    for sub in ("a", "b"):
        (tmp_path / "in" / sub).mkdir(parents=True)
        save_rgb(tmp_path / "in" / sub / "x.png")
    out = tmp_path / "out"
    r = run("blur", str(tmp_path / "in"), "--recursive", "--out-dir", str(out), "--json")
    assert r.exit_code == 2
    assert r.stdout == ""
    assert "collides" in r.stderr and "{parent}" in r.stderr
    assert not out.exists()
    r = run("blur", str(tmp_path / "in"), "--recursive", "--out-dir", str(out), "--json",
            "--name", "{parent}_{stem}.{op}{ext}")
    assert r.exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == ["a_x.blur.png", "b_x.blur.png"]


def test_a_second_run_over_a_folder_rewrites_its_outputs_instead_of_reading_them(tmp_path: Path) -> None:
    """0.3 refused the rerun (exit 2): cat.blur.png, found beside cat.png, was both an input and the
    output of cat.png. An image a run writes is not also read by it; a file named on the command line is."""
    d = tmp_path / "photos"
    d.mkdir()
    save_rgb(d / "a.png", seed=1)
    save_rgb(d / "b.png", seed=2)
    for _ in range(2):
        r = run("blur", str(d), "--json", "-j", "1")
        assert r.exit_code == 0, r.stderr
        assert sorted(rec["input"] for rec in records(r.stdout)) == [str(d / "a.png"), str(d / "b.png")]
        assert sorted(p.name for p in d.iterdir()) == ["a.blur.png", "a.png", "b.blur.png", "b.png"]
    alone = tmp_path / "alone.png"
    assert run("blur", str(d / "a.png"), "-o", str(alone)).exit_code == 0
    np.testing.assert_array_equal(np.asarray(decode(d / "a.blur.png")), np.asarray(decode(alone)))
    r = run("blur", str(d / "a.png"), str(d / "a.blur.png"))  # named: an input, so refused
    assert r.exit_code == 2 and "would overwrite the input" in r.stderr


@pytest.mark.parametrize("recursive", [False, True])
def test_a_link_named_like_an_output_to_another_input_is_refused_not_written_through(
        tmp_path: Path, recursive: bool) -> None:
    """b.blur.png -> a.png in the folder read: a.png was dropped as if it were b.png's earlier output
    (its path resolved through the link), and b.png's blur was written through the link over the
    original a.png, exit 0. The link makes a.png an input the output would overwrite: refused, exit 2,
    as when both are named."""
    d = tmp_path / "photos"
    (d / "x").mkdir(parents=True)
    (d / "y").mkdir()
    a = save_rgb(d / "x" / "a.png", seed=1)
    b = save_rgb((d / "y" if recursive else d / "x") / "b.png", seed=2)
    b.with_name("b.blur.png").symlink_to(os.path.relpath(a, b.parent))
    before = a.read_bytes()
    for dry in ([], ["--dry-run"]):
        r = run("blur", str(d if recursive else d / "x"), *(["--recursive"] if recursive else []), "--json",
                *dry)
        assert r.exit_code == 2, r.stdout
        assert f"the output {b.with_name('b.blur.png')} would overwrite the input {a}" in r.stderr
        assert a.read_bytes() == before


@pytest.mark.parametrize(("argv", "written"), [
    (["blur", "{d}", "--montage", "{d}/{{stem}}.montage.png"],
     ["a.blur.png", "a.montage.png", "a.png", "b.blur.png", "b.montage.png", "b.png"]),
    (["edges", "{d}", "--operator", "kirsch", "--direction-out", "{d}/{{stem}}.dir.npy"],
     ["a.dir.npy", "a.edges.png", "a.png", "b.dir.npy", "b.edges.png", "b.png"]),
    (["chain", "-i", "{d}", "--json", "conv", "--out-channels", "2", "relu"],
     ["a.chain.c0.png", "a.chain.c1.png", "a.chain.png", "a.png",
      "b.chain.c0.png", "b.chain.c1.png", "b.chain.png", "b.png"]),
], ids=["montage", "direction map", "channel maps"])
def test_a_second_run_rewrites_the_montages_and_maps_it_wrote_beside_its_inputs(
        tmp_path: Path, argv: list[str], written: list[str]) -> None:
    """The rerun rule held for main outputs only: a montage, channel map or direction map the first run
    wrote beside its input was found as an input by the second, which was refused (exit 2)."""
    d = tmp_path / "photos"
    d.mkdir()
    save_rgb(d / "a.png", seed=1)
    save_rgb(d / "b.png", seed=2)
    for _ in range(2):
        r = run(*[a.format(d=d) for a in argv], *([] if "--json" in argv else ["--json"]))
        assert r.exit_code == 0, r.stderr
        assert sorted(rec["input"] for rec in records(r.stdout)) == [str(d / "a.png"), str(d / "b.png")]
        assert sorted(p.name for p in d.iterdir()) == written


@pytest.mark.parametrize(("argv", "written"), [
    (["blur", "{d}", "--montage", "{d}/m.png"], ["m.png", "x.blur.png", "x.png"]),
    (["edges", "{d}", "--operator", "kirsch", "--direction-out", "{d}/dir.npy"],
     ["dir.npy", "x.edges.png", "x.png"]),
    (["chain", "-i", "{d}", "-o", "{d}/maps.png", "--json", "conv", "--out-channels", "3", "--size", "1"],
     ["maps.png", "x.png"]),
    (["chain", "-i", "{d}", "-o", "{d}/maps.png", "--json", "conv", "--out-channels", "4"],
     ["maps.c0.png", "maps.c1.png", "maps.c2.png", "maps.c3.png", "maps.png", "x.png"]),
], ids=["fixed montage", "fixed direction map", "-o", "-o with channel maps"])
def test_a_second_run_rewrites_fixed_paths_it_wrote_beside_its_one_input(
        tmp_path: Path, argv: list[str], written: list[str]) -> None:
    """Fixed (untemplated) paths: the second run found m.png as a second input sharing the montage,
    dir.npy as an input its own task overwrote, and -o's channel maps as five more inputs for one -o."""
    d = tmp_path / "photos"
    d.mkdir()
    save_rgb(d / "x.png", seed=1)  # after dir.npy, m.png and maps.png in the listing
    for _ in range(2):
        r = run(*[a.format(d=d) for a in argv], *([] if "--json" in argv else ["--json"]))
        assert r.exit_code == 0, r.stderr
        assert [rec["input"] for rec in records(r.stdout)] == [str(d / "x.png")]
        assert sorted(p.name for p in d.iterdir()) == written


@pytest.mark.parametrize("template", ["{stem}{ext}", "{stem}.png"])
def test_an_original_whose_own_output_is_itself_is_not_taken_for_a_last_runs_result(
        tmp_path: Path, template: str) -> None:
    """``--format png --name '{stem}{ext}'`` over a.png and a.jpg: a.png was dropped as the output
    a.jpg writes (the rerun rule) and overwritten by the blurred a.jpg, exit 0. It is its own
    output, so it may be an original: the run is refused and nothing is written."""
    d = tmp_path / "photos"
    d.mkdir()
    save_rgb(d / "a.png", seed=1)
    Image.open(d / "a.png").save(d / "a.jpg")
    before = (d / "a.png").read_bytes()
    r = run("blur", str(d), "--format", "png", "--name", template, "--json")
    assert r.exit_code == 2, r.stderr
    assert f"would overwrite the input {d / 'a.png'} (found in the folder read, it may be an" in r.stderr
    assert (d / "a.png").read_bytes() == before
    assert sorted(p.name for p in d.iterdir()) == ["a.jpg", "a.png"]


def test_a_folder_finds_every_format_with_a_signature(tmp_path: Path) -> None:
    """SGI, PCX, DDS, ICNS, MSP and ASCII PPM were read when named but skipped in a folder, without a
    line: the README says folders recognise images by content. TGA and XBM have no signature."""
    d = tmp_path / "mixed"
    d.mkdir()
    rgb = Image.fromarray(np.random.default_rng(4).integers(0, 256, (32, 48, 3), dtype=np.uint8))
    for ext in ("png", "sgi", "pcx", "dds", "icns", "tga"):
        rgb.save(d / f"x{ext}.{ext}")
    rgb.convert("L").save(d / "grey.sgi")
    rgb.convert("1").save(d / "mono.msp")
    rgb.convert("1").save(d / "mono.xbm")
    (d / "ascii.ppm").write_text("P3\n2 2\n255\n" + " ".join(["10 20 30"] * 4) + "\n")
    (d / "header.h").write_text("#define WIDTH 4\n")  # starts as XBM does: not an image
    (d / "todo.txt").write_text("P1 fix the login bug\n")  # starts as a PNM does, and is words
    (d / "bmi.csv").write_text("BMI,weight\n22,70\n")  # starts as a BMP does ("BM"), and is a table
    (d / "cars.txt").write_text("BMW log\n")
    rgb.save(d / "xbmp.bmp")
    rgb.convert("P").save(d / "xbmp8.bmp")
    (d / "notes.md").write_text("P3\tnotes\n")
    (d / "commented.pgm").write_text("P2\n# made by hand, with a comment line first\n2 1\n255\n0 255\n")
    rgb.quantize(16).save(d / "xblp.blp")  # Pillow writes BLP from palette images
    (d / "notes.txt").write_bytes(b"\x0a\x05\x01\x08 looks like PCX for 4 bytes, and is text")
    r = run("blur", str(d), "--out-dir", str(tmp_path / "o"), "--name", "{name}.png", "--json", "-j", "1")
    found = {Path(rec["input"]).name: rec["status"] for rec in records(r.stdout)}
    assert sorted(found) == ["ascii.ppm", "commented.pgm", "grey.sgi", "mono.msp", "notes.txt", "xblp.blp",
                             "xbmp.bmp", "xbmp8.bmp", "xdds.dds", "xicns.icns", "xpcx.pcx", "xpng.png",
                             "xsgi.sgi"]
    assert {k: v for k, v in found.items() if v != "ok"} == {"notes.txt": "error"}  # read, and refused
    for named in ("xtga.tga", "mono.xbm"):
        assert run("blur", str(d / named), "-o", str(tmp_path / f"{named}.png")).exit_code == 0


def test_a_recursive_walk_skips_the_out_dir_inside_it(tmp_path: Path) -> None:
    d = tmp_path / "in"
    (d / "sub").mkdir(parents=True)
    save_rgb(d / "x.png", seed=1)
    save_rgb(d / "sub" / "y.png", seed=2)
    (d / "out").mkdir()
    save_rgb(d / "out" / "x.sharpen.png", seed=3)  # an earlier run's output of another command
    for _ in range(2):
        r = run("blur", str(d), "--recursive", "--out-dir", str(d / "out"), "--json", "-j", "1")
        assert r.exit_code == 0, r.stderr
        found = sorted(rec["input"] for rec in records(r.stdout))
        assert found == [str(d / "sub" / "y.png"), str(d / "x.png")]
    assert sorted(p.name for p in (d / "out").iterdir()) == ["x.blur.png", "x.sharpen.png", "y.blur.png"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_named_like_an_image_in_a_folder_is_a_failed_input(tmp_path: Path) -> None:
    d = tmp_path / "photos"
    d.mkdir()
    save_rgb(d / "a.png")
    os.mkfifo(d / "pipe.png")
    os.mkfifo(d / "notes")  # not named like an image: not one of the folder's images
    r = run("blur", str(d), "--json", "-j", "1")
    assert r.exit_code == 1
    by_input = {Path(rec["input"]).name: rec for rec in records(r.stdout)}
    assert sorted(by_input) == ["a.png", "pipe.png"]
    assert by_input["pipe.png"]["error"] == "is a FIFO, not an image file"
    assert (d / "a.blur.png").exists()


def test_a_broken_symlink_named_like_an_image_in_a_folder_is_a_failed_input(tmp_path: Path) -> None:
    """Dangling and looping links named like images were skipped in silence; the README says a file
    named like an image that cannot be read is a failed input, never skipped."""
    d = tmp_path / "photos"
    d.mkdir()
    save_rgb(d / "a.png")
    os.symlink(tmp_path / "gone.png", d / "dangling.png")
    os.symlink(d / "loop2.png", d / "loop1.png")
    os.symlink(d / "loop1.png", d / "loop2.png")
    os.symlink(tmp_path / "gone.txt", d / "notes")  # not named like an image: not one of the folder's images
    save_rgb(tmp_path / "real.png")
    os.symlink(tmp_path / "real.png", d / "link.png")  # a link to an image is an image
    (tmp_path / "sub").mkdir()
    os.symlink(tmp_path / "sub", d / "dir.png")  # a link to a folder, named like an image
    r = run("blur", str(d), "--json", "-j", "1")
    assert r.exit_code == 1
    by_input = {Path(rec["input"]).name: rec for rec in records(r.stdout)}
    assert sorted(by_input) == ["a.png", "dangling.png", "dir.png", "link.png", "loop1.png", "loop2.png"]
    assert by_input["dir.png"]["error"] == "is a folder (through a symbolic link), not an image file"
    assert by_input["dangling.png"]["error"].startswith(f"is a symbolic link to {tmp_path / 'gone.png'}")
    assert "no such file" in by_input["dangling.png"]["error"]
    assert "too many levels of symbolic links" in by_input["loop1.png"]["error"]
    assert by_input["link.png"]["status"] == "ok" and (d / "link.blur.png").exists()
    assert (d / "a.blur.png").exists()


def test_same_input_twice_refused(tmp_path: Path) -> None:
    src = save_rgb(tmp_path / "x.png")
    r = run("blur", str(src), str(src))
    assert r.exit_code == 2 and "the same file is given twice" in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.png"]


def test_output_over_an_input_refused(tmp_path: Path) -> None:
    src = save_rgb(tmp_path / "x.png")
    before = src.read_bytes()
    r = run("blur", str(src), "--name", "{stem}{ext}")
    assert r.exit_code == 2 and "would overwrite the input" in r.stderr
    assert src.read_bytes() == before


def test_directories_by_content(tmp_path: Path) -> None:
    d = tmp_path / "d"
    (d / "sub").mkdir(parents=True)
    save_rgb(d / "no_extension", format="PNG")  # a PNG without .png
    save_rgb(d / "anim.gif")
    save_rgb(d / "w.webp", format="WEBP", lossless=True)
    save_rgb(d / "t.tif")
    save_rgb(d / "sub" / "deep.png")
    save_rgb(d / ".hidden.png")
    (d / "readme.png").write_text("text\n")
    r = run("blur", str(d), "--json", "--out-dir", str(tmp_path / "o"))
    assert r.exit_code == 0, r.stderr
    got = sorted(Path(rec["input"]).name for rec in records(r.stdout))
    assert got == ["anim.gif", "no_extension", "t.tif", "w.webp"]
    names = sorted(p.name for p in (tmp_path / "o").iterdir())
    assert names == ["anim.blur.gif", "no_extension.blur.png", "t.blur.tif", "w.blur.webp"]
    r = run("blur", str(d), "--json", "--out-dir", str(tmp_path / "o2"), "--recursive")
    assert "deep.png" in {Path(rec["input"]).name for rec in records(r.stdout)}


def unreadable_tree(tmp_path: Path) -> tuple[Path, Path]:
    """d/{a.png, b.png (unreadable), notes.txt (unreadable), sub/c.png (sub unlistable)}, and x.png."""
    d = tmp_path / "d"
    (d / "sub").mkdir(parents=True)
    for name in ("a.png", "b.png", "sub/c.png"):
        save_rgb(d / name)
    (d / "notes.txt").write_text("not an image\n")
    return d, save_rgb(tmp_path / "x.png")


def check_unreadable_batch(r: Result, d: Path, x: Path, out: Path) -> None:
    assert r.exit_code == 1, r.stderr
    recs = {rec["input"]: rec for rec in records(r.stdout)}
    assert set(recs) == {str(d / "a.png"), str(d / "b.png"), str(d / "sub"), str(x)}
    assert recs[str(d / "b.png")]["error"] == "permission denied"
    assert recs[str(d / "sub")]["error"] == "cannot list directory: permission denied"
    assert sorted(p.name for p in out.iterdir()) == ["a.blur.png", "x.blur.png"]
    assert error_lines(r.stderr) == [f"convcli: error: {d / 'b.png'}: permission denied",
                                     f"convcli: error: {d / 'sub'}: cannot list directory: permission denied"]


def test_unreadable_images_and_folders_fail_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """0.2 skipped an unreadable image of a folder without a word (exit 0), and an unlistable
    subfolder stopped the whole batch with exit 2. Each is now one failed input (exit 1); an
    unreadable file not named like an image is still just not an image. Simulated, as tests
    run as root here (real modes: the next test)."""
    from convcli.run import inputs

    d, x = unreadable_tree(tmp_path)
    denied = {str(d / "b.png"), str(d / "notes.txt"), str(d / "sub")}

    def deny(path: object) -> None:
        if os.fspath(path) in denied:  # type: ignore[arg-type]
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))  # type: ignore[arg-type]

    real_open, real_scandir = open, os.scandir
    monkeypatch.setattr(inputs, "open", lambda p, *a, **k: deny(p) or real_open(p, *a, **k), raising=False)
    monkeypatch.setattr(inputs.os, "scandir", lambda p=".": deny(p) or real_scandir(p))
    r = run("blur", str(d), str(x), "--recursive", "--out-dir", str(tmp_path / "o"), "--json", "-j", "1")
    check_unreadable_batch(r, d, x, tmp_path / "o")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_images_and_folders_fail_alone_with_real_modes(tmp_path: Path) -> None:
    d, x = unreadable_tree(tmp_path)
    for p in (d / "b.png", d / "notes.txt", d / "sub"):
        p.chmod(0)
    try:
        r = run("blur", str(d), str(x), "--recursive", "--out-dir", str(tmp_path / "o"), "--json", "-j", "1")
    finally:
        for p in (d / "b.png", d / "notes.txt", d / "sub"):
            p.chmod(0o755)
    check_unreadable_batch(r, d, x, tmp_path / "o")


def test_empty_directory_is_an_error_for_that_input(tmp_path: Path) -> None:
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    good = save_rgb(tmp_path / "g.png")
    r = run("blur", str(tmp_path / "empty"), str(good), "--json", "--ordered")
    assert r.exit_code == 1
    bad, ok = records(r.stdout)
    assert bad["error"].startswith("is a directory with no images in it") and "--recursive" in bad["error"]
    assert ok["status"] == "ok"


def test_unwritable_output_folder_fails_that_input_only(tmp_path: Path) -> None:
    # As root, chmod does not stop writes; a path through a regular file fails for everyone.
    a, b = save_rgb(tmp_path / "a.png"), save_rgb(tmp_path / "b.png", seed=1)
    out = tmp_path / "out"
    out.mkdir()
    (out / "a").write_text("a regular file where a folder should be")
    (out / "b").mkdir()
    r = run("blur", str(a), str(b), "--out-dir", str(out), "--name", "{stem}/{stem}.{op}{ext}", "--json",
            "--ordered", "-j", "1")
    assert r.exit_code == 1
    bad, ok = records(r.stdout)
    assert bad["error"] == f"cannot write {out / 'a' / 'a.blur.png'}: not a directory"
    assert ok["status"] == "ok" and decode(out / "b" / "b.blur.png").size == (32, 24)
    r = run("blur", str(a), "-o", str(out / "a" / "x.png"))
    assert r.exit_code == 1 and r.stderr.startswith(f"convcli: error: {a}: cannot write ")


def test_dry_run_predicts_a_folder_that_cannot_be_made(tmp_path: Path) -> None:
    """A file where a folder goes: the dry run said ok and exit 0, the run failed that input (exit 1)."""
    a, b = save_rgb(tmp_path / "a.png"), save_rgb(tmp_path / "b.png", seed=1)
    (tmp_path / "file").write_text("a regular file where a folder should be")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a").write_text("a file where a's folder goes")
    cases = [(["--out-dir", str(tmp_path / "file")], ["error", "error"]),
             (["--out-dir", str(out), "--name", "{stem}/{stem}.{op}{ext}"], ["error", "ok"])]
    for flags, statuses in cases:
        for dry in (["--dry-run"], []):
            r = run("blur", str(a), str(b), *flags, "--json", "--ordered", "-j", "1", *dry)
            recs = records(r.stdout)
            assert r.exit_code == 1 and [x["status"] for x in recs] == statuses, (flags, dry)
            error = recs[0]["error"]
            assert error.startswith("cannot write ") and error.endswith(": not a directory")
    r = run("blur", str(a), "-o", str(tmp_path / "new" / "deep" / "x.png"), "--dry-run")
    assert r.exit_code == 0 and not (tmp_path / "new").exists()
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")  # the same reason as the run's
    (tmp_path / "loop1").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop1")
    for out_dir, why in (("dangling/sub", "no such file"), ("dangling", "no such file"),
                         ("loop1", "too many levels of symbolic links")):
        errors = [records(run("blur", str(a), "--out-dir", str(tmp_path / out_dir), "--json",
                              *dry).stdout)[0]["error"] for dry in (["--dry-run"], [])]
        assert errors[0] == errors[1], errors
        assert errors[0].endswith(f"is a symbolic link that cannot be followed: {why}"), errors


def test_full_disk_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from convcli.io import files as iofiles

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(iofiles.os, "fsync", full)
    src = save_rgb(tmp_path / "a.png")
    out = tmp_path / "out"
    r = run("blur", str(src), "--out-dir", str(out), "--json")
    assert r.exit_code == 1
    assert records(r.stdout)[0]["error"].endswith("no space left on device")
    assert list(out.iterdir()) == []  # no temporary file either


# --------------------------------------------------------------------------- stdin, stdout, report streams


def test_stdin_to_stdout(tmp_path: Path) -> None:
    data = save_rgb(tmp_path / "a.png", 10, 12).read_bytes()
    r = run("blur", "-", "-o", "-", "--json", input=data)
    assert r.exit_code == 0
    assert decode(r.stdout_bytes).size == (12, 10)
    rec = json.loads(r.stderr)  # the report goes to stderr when the image is on stdout
    assert rec["input"] == "-" and rec["output"] == "-"


def test_stdin_with_files_and_out_dir(tmp_path: Path) -> None:
    data = save_rgb(tmp_path / "a.png", 10, 12).read_bytes()
    r = run("blur", "-", str(tmp_path / "a.png"), "--out-dir", str(tmp_path / "o"), "--json", "--ordered",
            input=data)
    assert r.exit_code == 0
    assert [rec["output"] for rec in records(r.stdout)] == [str(tmp_path / "o" / n)
                                                            for n in ("stdin.blur.png", "a.blur.png")]


def test_summary_only_for_batches_and_not_quiet(photos: Path, tmp_path: Path) -> None:
    good = str(photos / "good0.png")
    r = run("blur", good, "--out-dir", str(tmp_path / "o1"), "--json")
    assert r.stderr == ""
    r = run("blur", good, str(photos / "good1.png"), "--out-dir", str(tmp_path / "o2"), "--json", "-j", "1")
    assert r.stderr.startswith("convcli: 2 done, 0 failed in ")
    r = run("blur", good, str(photos / "good1.png"), "--out-dir", str(tmp_path / "o3"), "-q")
    assert r.stdout == "" and r.stderr == ""


def test_help_states_the_order() -> None:
    r = run("blur", "--help")
    assert "--ordered" in r.stdout and "order inputs finish" in r.stdout


# --------------------------------------------------------------------------- Dask


@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore:.*:DeprecationWarning:tornado")
def test_dask_gives_the_same_outputs_as_jobs(photos: Path, tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    args = ["blur", str(photos), "--json", "--ordered", "--size", "5"]
    local = run(*args, "--out-dir", str(tmp_path / "jobs"), "-j", "2")
    with distributed.LocalCluster(n_workers=2, processes=False, threads_per_worker=1, protocol="tcp",
                                  host="127.0.0.1", dashboard_address=None) as cluster:
        remote = run(*args, "--out-dir", str(tmp_path / "dask"), "--dask", cluster.scheduler_address)
    assert remote.exit_code == local.exit_code == 1

    def strip(text: str, folder: str) -> list[dict[str, Any]]:
        out = []
        for rec in records(text):
            rec.pop("seconds", None)
            if "output" in rec:
                rec["output"] = Path(rec["output"]).name
            out.append(rec)
        return out

    assert strip(remote.stdout, "dask") == strip(local.stdout, "jobs")
    assert error_lines(remote.stderr) == error_lines(local.stderr)
    one, two = sorted((tmp_path / "jobs").iterdir()), sorted((tmp_path / "dask").iterdir())
    assert [p.name for p in one] == [p.name for p in two] and len(one) == 3
    for a, b in zip(one, two, strict=True):
        assert a.read_bytes() == b.read_bytes()


def test_dask_missing_says_how_to_install(photos: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    r = run("blur", str(photos / "good0.png"), "--dask", "tcp://127.0.0.1:8786", "--json")
    assert r.exit_code == 1
    assert r.stdout == ""
    assert r.stderr == "convcli: error: --dask needs the optional Dask extra: pip install 'convcli[dask]'\n"


# --------------------------------------------------------------------------- real processes


def convcli(*args: str) -> list[str]:
    return [sys.executable, "-m", "convcli", *args]


def wait_for_output(folder: Path, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline and proc.poll() is None:
        if folder.exists() and any(not p.name.startswith(".") for p in folder.iterdir()):
            return
        time.sleep(0.02)
    pytest.fail("no output appeared")


def assert_only_whole_images(folder: Path) -> None:
    for p in folder.iterdir():
        assert not p.name.startswith("."), f"temporary file left: {p.name}"
        assert decode(p).size == (400, 400)


@pytest.mark.parametrize(("sig", "jobs", "status", "message"), [
    (signal.SIGINT, "2", 130, "interrupted"),
    (signal.SIGINT, "1", 130, "interrupted"),
    (signal.SIGTERM, "2", 143, "terminated"),
    (signal.SIGHUP, "1", 129, "hung up"),  # the terminal or ssh session closed: it left temporary files
    (signal.SIGHUP, "2", 129, "hung up"),
])
def test_signal_mid_batch_stops_cleanly(heavy: Path, tmp_path: Path, sig: int, jobs: str, status: int,
                                        message: str) -> None:
    out = tmp_path / "out"
    args = convcli("blur", str(heavy), "--out-dir", str(out), "-j", jobs, "--size", "15", "--json")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for_output(out, proc)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == status
    assert stderr.decode() == f"convcli: {message}\n"
    done = records(stdout.decode())
    assert len(done) < 24 and len(list(out.iterdir())) < 24
    assert_only_whole_images(out)
    # every image written has its record: one renamed into place just as the stop came (by a worker
    # killed after it, or before the record went out) was left with none in 3 of 60 runs
    assert {Path(r["output"]).name for r in done} == {p.name for p in out.iterdir()}
    assert all(r["status"] == "ok" for r in done)


def _stop_after(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Ctrl-C right after the file ``name`` is renamed into place (in-process runs, -j 1)."""
    import convcli.run.job as job_module

    real = job_module._write

    def write_then_interrupt(job: Any, path: str, data: Any) -> None:
        real(job, path, data)
        if path.endswith(name):
            raise KeyboardInterrupt

    monkeypatch.setattr(job_module, "_write", write_then_interrupt)


def test_an_output_written_just_before_ctrl_c_still_gets_its_record(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C between an output's rename and its record: the file stayed, no line said so, and a script
    keeping the JSON as its log never knew. Its record (as planned) goes out with a note."""
    d = tmp_path / "in"
    d.mkdir()
    for name in ("a", "b", "c"):
        save_rgb(d / f"{name}.png", seed=ord(name))
    _stop_after(monkeypatch, "b.blur.png")
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["blur", str(d), "--out-dir", str(out), "--json", "--ordered", "-j", "1"])
    assert r.exit_code == 130
    recs = records(r.stdout)
    assert [Path(x["output"]).name for x in recs] == ["a.blur.png", "b.blur.png"]
    assert sorted(p.name for p in out.iterdir()) == ["a.blur.png", "b.blur.png"]
    assert recs[1]["status"] == "ok" and recs[1]["output_shape"] == [1, 3, 24, 32]
    assert recs[1]["notes"][-1] == "written as the run was stopped: its range was not reported"
    assert "range" in recs[0] and not {"dry_run", "seconds", "range"} & set(recs[1])


def test_a_stop_between_a_montage_and_its_output_is_reported_as_such(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The montage is written before the output: stopped between them, the input had no record (the
    montage on disk, unsaid); stopped after the output, its record lacked the montage."""
    d = tmp_path / "in"
    d.mkdir()
    for name in ("a", "b"):
        save_rgb(d / f"{name}.png", seed=ord(name))
    out = tmp_path / "out"
    args = ["blur", str(d), "--out-dir", str(out), "--montage", str(out / "{stem}.m.png"), "--json",
            "--ordered", "-j", "1"]
    _stop_after(monkeypatch, "b.m.png")
    r = CliRunner().invoke(cli, args)
    recs = records(r.stdout)
    assert r.exit_code == 130 and [x["status"] for x in recs] == ["ok", "error"]
    assert recs[1]["error"] == (f"stopped before its output {out / 'b.blur.png'} was written "
                                f"({out / 'b.m.png'} was written)")
    monkeypatch.undo()
    _stop_after(monkeypatch, "b.blur.png")  # a re-run: its files exist before, each is written anew
    r = CliRunner().invoke(cli, args)
    recs = records(r.stdout)
    assert r.exit_code == 130 and [x["status"] for x in recs] == ["ok", "ok"]
    assert recs[1]["montage"] == str(out / "b.m.png") and recs[1]["output"] == str(out / "b.blur.png")


def test_a_stop_after_channel_maps_names_the_maps_written(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "a.npy"
    np.save(src, np.random.default_rng(0).random((6, 7, 4)).astype(np.float32) * 255)
    out = tmp_path / "a.png"
    _stop_after(monkeypatch, "a.png")
    r = CliRunner().invoke(cli, ["blur", str(src), "-o", str(out), "--json"])
    assert r.exit_code == 130
    (rec,) = records(r.stdout)
    assert rec["status"] == "ok" and rec["output"] == str(out)
    assert rec["outputs"] == [str(tmp_path / f"a.c{i}.png") for i in range(4)]



def test_ctrl_c_with_ordered_still_reports_the_images_already_written(tmp_path: Path) -> None:
    """--ordered holds a record until those before it are out: with a slow first input, Ctrl-C left
    stdout empty though later images were written. Their records now go out, in input order."""
    d = tmp_path / "in"
    d.mkdir()
    save_rgb(d / "a_slow.png", 2000, 2000, seed=1, compress_level=1)
    for i in range(4):
        save_rgb(d / f"b{i}.png", 64, 64, seed=i + 2)
    out = tmp_path / "out"
    args = convcli("blur", str(d), "--out-dir", str(out), "-j", "2", "--size", "61", "--json", "--ordered",
                   "--method", "direct")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline and proc.poll() is None:
        if out.exists() and len([p for p in out.iterdir() if p.name.startswith("b")]) == 4:
            break
        time.sleep(0.02)
    assert proc.poll() is None and not (out / "a_slow.blur.png").exists(), "the slow input ended first"
    time.sleep(1.0)  # the last small image's outcome reaches the parent (the slow one takes seconds more)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 130 and stderr.decode() == "convcli: interrupted\n"
    done = [Path(r["output"]).name for r in records(stdout.decode())]
    assert done == [f"b{i}.blur.png" for i in range(4)]  # in input order, the slow one not among them


def test_closed_pipe_ends_quietly(heavy: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = convcli("blur", str(heavy), "--out-dir", str(out), "-j", "2", "--size", "15", "--json")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    json.loads(proc.stdout.readline())
    proc.stdout.close()  # like `| head -1`
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=TIMEOUT) == 1  # the batch stopped before every input was done
    assert stderr == ""
    assert_only_whole_images(out)


def test_progress_bar_stays_off_stdout(photos: Path, tmp_path: Path) -> None:
    master, slave = pty.openpty()  # stderr is a terminal: the bar is drawn there
    try:
        args = convcli("blur", str(photos), "--out-dir", str(tmp_path / "o"), "--json", "-j", "2")
        proc = subprocess.run(args, stdout=subprocess.PIPE, stderr=slave, timeout=TIMEOUT, check=False)
    finally:
        os.close(slave)
        os.close(master)
    assert proc.returncode == 1
    assert len(records(proc.stdout.decode())) == 4


def _on_a_terminal(*args: str) -> tuple[int, bytes]:
    """Run convcli with stderr on a pseudo-terminal: its exit status and what the terminal received."""
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(convcli(*args), stdout=subprocess.DEVNULL, stderr=slave)
        os.close(slave)
        shown = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every writer of the terminal is gone
                break
            if not chunk:
                break
            shown += chunk
        return proc.wait(timeout=TIMEOUT), shown
    finally:
        os.close(master)


def test_quiet_draws_no_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    """-q drew the bar anyway when stderr was a terminal (erased at the end, but drawn)."""
    d = tmp_path / "in"
    d.mkdir()
    for i in range(6):
        save_rgb(d / f"p{i}.png", seed=i)
    code, shown = _on_a_terminal("blur", str(d), "--out-dir", str(tmp_path / "q"), "-q", "-j", "1")
    assert code == 0 and shown == b""
    code, shown = _on_a_terminal("blur", str(d), "--out-dir", str(tmp_path / "v"), "-j", "1")
    assert code == 0 and b"6 done, 0 failed" in shown


def test_binary_image_refused_on_a_terminal(photos: Path) -> None:
    master, slave = pty.openpty()
    try:
        proc = subprocess.run(convcli("blur", str(photos / "good0.png"), "-o", "-"), stdout=slave,
                              stderr=subprocess.PIPE, timeout=TIMEOUT, check=False)
    finally:
        os.close(slave)
        os.close(master)
    assert proc.returncode == 2
    assert b"refusing to write a binary image to a terminal" in proc.stderr


@pytest.mark.skipif(shutil.which("parallel") is None, reason="GNU parallel is not installed")
def test_gnu_parallel_recipe(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    files = sorted(str(p) for p in photos.glob("*.png") if not p.name.startswith("."))
    recipe = convcli("blur", "{}", "--json", "--quiet", "--out-dir", str(out))
    cmd = ["parallel", "--will-cite", "-j", "2", *recipe, ":::", *files]
    proc = subprocess.run(cmd, capture_output=True, timeout=TIMEOUT, check=False)
    assert proc.returncode == 2  # parallel: the number of jobs that failed (broken.png, notes.png)
    recs = records(proc.stdout.decode())
    assert sorted(r["input"] for r in recs) == files
    assert sorted(r["status"] for r in recs) == ["error", "error", "ok", "ok", "ok"]
    assert sorted(p.name for p in out.iterdir()) == ["good0.blur.png", "good1.blur.png", "good2.blur.png"]


def test_a_broken_pipe_that_is_not_stdouts_is_said(tmp_path: Path) -> None:
    """A BrokenPipeError from a pipe of the run's own (a worker's) while stdout is healthy was
    taken for '| head' leaving: exit 1 and not a word. Now one line; stdout's own reader leaving
    stays quiet (tested with a real pipe below)."""
    import subprocess
    import sys

    src = save_rgb(tmp_path / "x.png")
    code = ("import sys, convcli.cli.execute as ex\n"
            "def broken(*a, **k):\n"
            "    raise BrokenPipeError(32, 'Broken pipe')\n"
            "ex.plan_run = broken\n"
            "from convcli.__main__ import run\n"
            f"sys.argv = ['convcli', 'blur', {str(src)!r}, '-o', {str(tmp_path / 'o.png')!r}]\n"
            "run()\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == ["convcli: error: a pipe to a worker process broke: broken pipe"]
    # stdout's reader leaving: quiet, exit 1
    big = Path(__file__).parent.parent / "sample_images" / "chelsea.png"  # 400 kB raw: more than a pipe holds
    p = subprocess.Popen([sys.executable, "-m", "convcli", "blur", str(big), "-o", "-",
                          "--compress-level", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout is not None and p.stderr is not None
    p.stdout.read(1)
    p.stdout.close()
    err = p.stderr.read()
    assert p.wait(timeout=60) == 1 and err == b""


def test_a_write_error_keeps_a_newline_of_its_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The output path in a write error had its newline collapsed to a space ('a b.blur.png'), in the
    stderr line and in the JSON record, where the input's name was escaped ('a\\nb.png') and kept."""
    import convcli.io.files as files

    d = tmp_path / "in"
    d.mkdir()
    save_rgb(d / "a\nb.png", seed=1)

    def refuse(src: str, dst: str) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(files.os, "replace", refuse)
    r = run("blur", str(d), "--out-dir", str(tmp_path / "o"), "--json", "-j", "1")
    assert r.exit_code == 1
    out = tmp_path / "o" / "a\nb.blur.png"
    (rec,) = records(r.stdout)
    assert rec["error"] == f"cannot write {out}: permission denied"
    assert r.stderr.splitlines()[0] == (f"convcli: error: {d}/a\\nb.png: cannot write "
                                        f"{tmp_path}/o/a\\nb.blur.png: permission denied")


def test_dask_tasks_name_every_file_by_its_absolute_path(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A Dask worker runs in its own folder: every file a task reads or writes is sent absolute
    (--direction-out was sent as written, relative to the worker's folder), and the record names
    them as the user wrote them again."""
    from convcli.pipeline import Pipeline
    from convcli.run.job import Job, Result
    from convcli.run.scale import _absolute, _relative

    monkeypatch.chdir(tmp_path)
    save_rgb(tmp_path / "a.png", seed=1)
    job = Job(pipeline=Pipeline(()), source="a.png", output="o/a.edges.png", montage="m/a.png",
              direction_out="d/a.npy", channel_maps=("o/a.c0.png",))
    sent = _absolute(job)
    assert isinstance(sent, Job)
    assert all(os.path.isabs(p) for p in [sent.source, *sent.files()]) and len(sent.files()) == 4
    assert sent.files() == [str(tmp_path / p) for p in job.files()]
    record = {"input": sent.source, "output": sent.output, "montage": sent.montage,
              "direction": sent.direction_out}
    back = _relative(Result(record), job).record
    assert back == {"input": "a.png", "output": "o/a.edges.png", "montage": "m/a.png", "direction": "d/a.npy"}


@pytest.mark.parametrize(("head", "words"), [
    (b"\x89PNG\r\n\x1a\n", "not a PNG image (stdin has the signature but no valid IHDR after it)"),
    (b"\xff\xd8\xff", "corrupt JPEG data (no marker)"),
    (b"GIF89a\x10\x00\x10\x00\x00\x00\x00", "corrupt GIF data (no block)"),
])
def test_stdin_with_a_signature_then_junk_is_refused_early(tmp_path: Path, head: bytes, words: str) -> None:
    """A signature, then zeros, on stdin: read up to the 732 MB an image within --max-pixels can take
    (1.5 GB of memory) before it was refused. Now after 2 MiB: the rest is never read."""
    r = run("blur", "-", "-o", str(tmp_path / "o.png"), "--max-pixels", "100000",
            input=head + bytes(24 << 20))
    assert r.exit_code == 1 and words in r.stderr, r.stderr  # not "more than 17576960 bytes on stdin"


def test_a_large_jpeg_on_stdin_passes_the_early_check(tmp_path: Path) -> None:
    """The early check walks the first 2 MiB of a larger image without mistaking its end for junk."""
    noise = np.random.default_rng(2).integers(0, 256, (1100, 1100, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noise).save(buf, "JPEG", quality=100)
    assert len(buf.getvalue()) > 2 << 20
    r = run("blur", "-", "-o", str(tmp_path / "o.png"), input=buf.getvalue())
    assert r.exit_code == 0, r.stderr
    assert Image.open(tmp_path / "o.png").size == (1100, 1100)


def test_a_pnm_whose_comment_outruns_the_sniff_is_found_in_a_folder(tmp_path: Path) -> None:
    """A PGM whose first comment is longer than the 64 bytes looked at was skipped in a folder without
    a line (and refused on stdin), though it reads when named: a comment after the magic marks it."""
    d = tmp_path / "in"
    d.mkdir()
    grey = np.random.default_rng(0).integers(0, 256, (4, 5), dtype=np.uint8)
    (d / "long.pgm").write_bytes(b"P5\n# " + b"c" * 70 + b"\n5 4\n255\n" + grey.tobytes())
    (d / "note.txt").write_text("P5 is the plan for next week\n")
    (d / "notes.md").write_text("P1\n# Plan for the week: fix the bug in the parser, then write the tests "
                                "for it\nmore text\n")  # a comment past 64 bytes, then words: no image
    r = run("blur", str(d), "--out-dir", str(tmp_path / "o"), "--json", "-j", "1")
    assert r.exit_code == 0, r.stderr
    assert [Path(rec["input"]).name for rec in records(r.stdout)] == ["long.pgm"]
    r = run("blur", "-", "-o", str(tmp_path / "s.png"), input=(d / "long.pgm").read_bytes() + bytes(70_000))
    assert r.exit_code == 0, r.stderr


def test_files_found_in_dot_named_like_stdin_or_an_option_are_shown_as_dot_slash(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file named ``-`` found in ``.`` was reported as ``-`` (stdin's name) and ``--x.png`` bare: the
    README's rerun recipe (feed failed .input back) then read stdin or parsed an option."""
    save_rgb(tmp_path / "dash.png").rename(tmp_path / "-")
    save_rgb(tmp_path / "--version.png", seed=1)
    save_rgb(tmp_path / "plain.png", seed=2)
    monkeypatch.chdir(tmp_path)
    r = run("blur", ".", "--out-dir", "o", "--json", "--ordered", "-q")
    assert r.exit_code == 0, r.stderr
    assert [x["input"] for x in records(r.stdout)] == ["./-", "./--version.png", "plain.png"]
    beside = run("blur", ".", "--json", "--ordered", "-q")  # outputs beside them: ./ too
    assert [x["output"] for x in records(beside.stdout)] == ["./-.blur.png", "./--version.blur.png",
                                                             "plain.blur.png"]
    again = run("blur", *[x["input"] for x in records(r.stdout)], "--out-dir", "o2", "-q")
    assert again.exit_code == 0, again.stderr
    assert sorted(p.name for p in (tmp_path / "o2").iterdir()) == ["--version.blur.png", "-.blur.png",
                                                                    "plain.blur.png"]


@pytest.mark.skipif(sys.platform != "linux", reason="a pseudo-terminal closed under the run: Linux")
@pytest.mark.parametrize("extra", [["-j", "1"], ["-j", "2"], ["-j", "1", "--json"]])
def test_closing_the_terminal_stops_the_run_with_status_129(heavy: Path, tmp_path: Path,
                                                           extra: list[str]) -> None:
    """The terminal (or ssh session) closes mid-batch: SIGHUP, and stderr gone with it (EIO). The run
    ended with exit 1 and a traceback nobody saw (the stop line's own write failed, and a progress
    bar's EIO was reported as stdout's); it stops as on SIGTERM now, status 129, temporaries removed."""
    import pty
    import select

    out = tmp_path / "out"
    pid, master = pty.fork()
    if pid == 0:  # the child: convcli on the terminal, as its session leader
        try:
            os.execv(sys.executable, convcli("blur", str(heavy), "--out-dir", str(out), "--size", "31",
                                             "--method", "direct", *extra))
        finally:
            os._exit(127)
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline and not (out.exists() and any(out.iterdir())):
        if select.select([master], [], [], 0.05)[0]:
            try:
                os.read(master, 65536)
            except OSError:
                break
    os.close(master)  # the terminal hangs up
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 129
    assert_only_whole_images(out)


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
@pytest.mark.parametrize(("sig", "jobs"), [(signal.SIGHUP, "2"), (signal.SIGHUP, "1"), (signal.SIGINT, "2")])
def test_a_signal_ignored_at_start_stays_ignored(heavy: Path, tmp_path: Path, sig: int, jobs: str) -> None:
    """nohup ignores SIGHUP (a script's background job, SIGINT): convcli set its own handler over it
    and stopped with 129 (130) where the user had asked it to keep going. It finishes now."""
    out = tmp_path / "out"
    args = convcli("blur", str(heavy), "--out-dir", str(out), "-j", jobs, "--size", "15", "-q")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(sig, signal.SIG_IGN))  # noqa: PLW1509
    wait_for_output(out, proc)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0 and stderr == b""
    assert len(list(out.iterdir())) == 24
    assert_only_whole_images(out)


def test_a_thousand_levels_of_new_folders_are_made_without_a_traceback(tmp_path: Path) -> None:
    """os.makedirs recurses once per missing level: -o with 1,000 new folders (2 kB, far under PATH_MAX)
    ended in a RecursionError traceback, through -o, --out-dir/--name and --montage alike."""
    a = save_rgb(tmp_path / "a.png")
    deep = "/".join(["d"] * 1000)
    cases = [(["-o", str(tmp_path / "o1" / deep / "x.png")], tmp_path / "o1" / deep / "x.png"),
             (["--out-dir", str(tmp_path / "o2"), "--name", deep + "/{stem}.png"],
              tmp_path / "o2" / deep / "a.png"),
             (["-o", str(tmp_path / "x.png"), "--montage", str(tmp_path / "o3" / deep / "m.png")],
              tmp_path / "o3" / deep / "m.png")]
    try:
        for flags, made in cases:
            r = run("blur", str(a), *flags, "-q")
            assert r.exit_code == 0, r.stderr
            decode(made)
    finally:  # removed level by level: shutil.rmtree (pytest's clean-up of old tmp_paths) recurses too
        for top in ("o1", "o2", "o3"):
            _remove_chain(tmp_path / top)


def _remove_chain(folder: Path) -> None:
    """Remove a tree of one folder per level (and the files in them) without recursion."""
    chain = []
    while folder.is_dir():
        chain.append(folder)
        subfolders = [p for p in folder.iterdir() if p.is_dir()]
        for p in folder.iterdir():
            if not p.is_dir():
                p.unlink()
        folder = subfolders[0] if subfolders else folder / "-none-"
    for f in reversed(chain):
        f.rmdir()


@pytest.mark.parametrize("replacement", ["grey16", "rgba", "bigger"])
def test_an_image_replaced_after_planning_fails_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      replacement: str) -> None:
    """A file replaced between the plan (its header) and its decoding was filtered as planned: a 16-bit
    grey image written 8-bit and reported [1, 3, H, W], an RGBA one's alpha lost, no note. It fails alone
    now (exit 1), nothing written for it; the other input is done."""
    import convcli.run.job as job_module

    d = tmp_path / "in"
    d.mkdir()
    save_rgb(d / "a.png", seed=1)
    save_rgb(d / "b.png", seed=2)
    rng = np.random.default_rng(3)
    new = {"grey16": Image.fromarray(rng.integers(0, 65536, (24, 32), dtype=np.uint16)),
           "rgba": Image.fromarray(rng.integers(0, 256, (24, 32, 4), dtype=np.uint8), "RGBA"),
           "bigger": Image.fromarray(rng.integers(0, 256, (30, 32, 3), dtype=np.uint8))}[replacement]
    real = job_module._process

    def replaced_first(job: Any) -> Any:
        if job.source.endswith("b.png"):
            new.save(d / "b.png")
        return real(job)

    monkeypatch.setattr(job_module, "_process", replaced_first)
    out = tmp_path / "out"
    r = run("blur", str(d), "--out-dir", str(out), "--json", "--ordered", "-j", "1")
    recs = records(r.stdout)
    assert r.exit_code == 1
    assert [x["status"] for x in recs] == ["ok", "error"]
    assert recs[1]["error"].startswith("the file changed while the run was on (read as a ")
    assert sorted(p.name for p in out.iterdir()) == ["a.blur.png"]


def test_new_folders_after_a_link_and_dotdot_are_made_where_the_system_resolves_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """lnk -> deep/real: lnk/../new is deep/new for the system (".." after the link). Folders made with
    the '..' dropped as text created ./new, and the write into deep/new then failed (exit 1)."""
    (tmp_path / "deep" / "real").mkdir(parents=True)
    (tmp_path / "lnk").symlink_to(Path("deep") / "real")
    a = save_rgb(tmp_path / "a.png")
    monkeypatch.chdir(tmp_path)
    r = run("blur", str(a), "-o", "lnk/../new/x.png", "-q")
    assert r.exit_code == 0, r.stderr
    decode(tmp_path / "deep" / "new" / "x.png")
    assert not (tmp_path / "new").exists()


def test_a_link_in_the_folder_to_the_o_output_is_an_input_not_the_output_found_again(
        tmp_path: Path) -> None:
    """photos/link.png -> ../elsewhere/out.png with -o elsewhere/out.png: the link was dropped as 'the
    output found again' (resolved) and out.png, an original, overwritten with a's blur, exit 0."""
    (tmp_path / "photos").mkdir()
    (tmp_path / "elsewhere").mkdir()
    save_rgb(tmp_path / "photos" / "a.png", seed=1)
    original = save_rgb(tmp_path / "elsewhere" / "out.png", seed=2)
    before = original.read_bytes()
    (tmp_path / "photos" / "link.png").symlink_to(Path("..") / "elsewhere" / "out.png")
    r = run("blur", str(tmp_path / "photos"), "-o", str(original))
    assert r.exit_code == 2 and "-o/--output takes one input, got 2" in r.stderr
    assert original.read_bytes() == before
    (tmp_path / "photos" / "link.png").unlink()  # the output itself found again on a re-run: rewritten
    again = tmp_path / "photos" / "out.png"
    for _ in range(2):
        assert run("blur", str(tmp_path / "photos"), "-o", str(again)).exit_code == 0


@pytest.mark.parametrize("case", ["fewer_frames", "npy_channels"])
def test_a_replaced_animation_or_array_is_said_to_have_changed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    """A 3-frame GIF replaced by a still was refused as 'truncated or corrupt GIF frame 1' (a valid file);
    a .npy of 3 channels replaced by one of 5 was described as 'RGB' and '8-bit' on both sides."""
    import convcli.run.job as job_module

    rng = np.random.default_rng(0)
    if case == "fewer_frames":
        src = tmp_path / "anim.gif"
        frames = [Image.fromarray(rng.integers(0, 256, (8, 9), dtype=np.uint8)) for _ in range(3)]
        frames[0].save(src, save_all=True, append_images=frames[1:])

        def replace() -> None:
            frames[0].save(src)

        want = "(read as a 9x8 8-bit RGB GIF, planned as a 9x8 8-bit RGB GIF, 3 frames)"  # a palette: RGB
    else:
        src = tmp_path / "a.npy"
        np.save(src, rng.random((8, 9, 3)))

        def replace() -> None:
            np.save(src, rng.random((8, 9, 5)).astype(np.float32))

        want = ("(read as a 9x8 float32 .npy array of 5 channels, planned as a 9x8 float64 .npy array of "
                "3 channels)")
    real = job_module._process

    def replaced_first(job: Any) -> Any:
        replace()
        return real(job)

    monkeypatch.setattr(job_module, "_process", replaced_first)
    r = run("blur", str(src), "-o", str(tmp_path / ("out" + src.suffix)), "--json")
    assert r.exit_code == 1
    assert records(r.stdout)[0]["error"] == f"the file changed while the run was on {want}: run it again"


def test_recursive_does_not_follow_links_to_folders_but_reads_one_named(tmp_path: Path) -> None:
    """README: --recursive descends into real subfolders, not links to folders (a link back up would
    never end); a linked folder given on the command line is read."""
    (tmp_path / "in" / "sub").mkdir(parents=True)
    (tmp_path / "other").mkdir()
    save_rgb(tmp_path / "in" / "sub" / "a.png", seed=1)
    save_rgb(tmp_path / "other" / "b.png", seed=2)
    (tmp_path / "in" / "link").symlink_to(Path("..") / "other")
    (tmp_path / "in" / "sub" / "up").symlink_to(Path(".."))  # a loop, were links followed
    r = run("blur", str(tmp_path / "in"), "--recursive", "--dry-run", "--json")
    assert r.exit_code == 0, r.stderr
    assert [x["input"] for x in records(r.stdout)] == [str(tmp_path / "in" / "sub" / "a.png")]
    r = run("blur", str(tmp_path / "in" / "link"), "--dry-run", "--json")
    assert [x["input"] for x in records(r.stdout)] == [str(tmp_path / "in" / "link" / "b.png")]
