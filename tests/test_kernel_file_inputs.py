"""Files a pipeline is built from (``-k @FILE``, ``conv --weights/--bias``) are inputs: no planned
output (``-o``, ``--montage``, a ``--name`` in ``--out-dir``) may overwrite them, exactly as the
images may not be overwritten. Each case is refused before the first pixel is read, exit 2, with
the kernel file byte for byte as it was and no other file written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from PIL import Image

from convcli.cli import cli


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    rng = np.random.default_rng(7)
    Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.full((5, 5), 200, np.uint8)).save(tmp_path / "k.png")  # a PSF kernel image
    (tmp_path / "k.txt").write_text("0 -1 0\n-1 5 -1\n0 -1 0\n")
    np.save(tmp_path / "w.npy", rng.uniform(-1, 1, (2, 3, 3, 3)).astype(np.float32))
    return tmp_path


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


CASES = {
    "filter -o": ["filter", "{d}/a.png", "-k", "@{d}/k.png", "-o", "{d}/k.png"],
    "filter, spec with a leading space": ["filter", "{d}/a.png", "-k", " @{d}/k.png", "-o", "{d}/k.png"],
    "filter, another spelling of the path": ["filter", "{d}/a.png", "-k", "@{d}/./k.png", "-o", "{d}/k.png"],
    "blur --montage": ["blur", "{d}/a.png", "-k", "@{d}/k.png", "-o", "{d}/out.png",
                       "--montage", "{d}/k.png"],
    "downsample --out-dir --name": ["downsample", "{d}/a.png", "-k", "@{d}/k.png", "--out-dir", "{d}",
                                    "--name", "k.png"],
    "chain filter": ["chain", "-i", "{d}/a.png", "-o", "{d}/k.png", "filter", "-k", "@{d}/k.png"],
    "chain conv --weights": ["chain", "-i", "{d}/a.png", "-o", "{d}/w.npy", "conv", "--weights", "{d}/w.npy"],
}


@pytest.mark.parametrize("case", CASES)
def test_an_output_over_a_kernel_file_is_refused(folder: Path, case: str) -> None:
    before = snapshot(folder)
    r = run(*(a.format(d=folder) for a in CASES[case]))
    assert r.exit_code == 2, r.stderr
    assert "would overwrite the input" in r.stderr
    assert r.stderr.count("\n") == 1  # one line
    assert snapshot(folder) == before


def test_an_output_through_a_symlink_to_the_kernel_file_is_refused(folder: Path) -> None:
    (folder / "link.png").symlink_to(folder / "k.png")
    before = snapshot(folder)
    r = run("filter", str(folder / "a.png"), "-k", f"@{folder / 'k.png'}", "-o", str(folder / "link.png"))
    assert r.exit_code == 2 and "would overwrite the input" in r.stderr
    assert snapshot(folder) == before


@pytest.mark.parametrize("spec", ["@{d}/k.png", "@{d}/k.txt"])
def test_a_kernel_file_beside_a_distinct_output_still_runs(folder: Path, spec: str) -> None:
    r = run("filter", str(folder / "a.png"), "-k", spec.format(d=folder), "-o", str(folder / "out.png"))
    assert r.exit_code == 0, r.stderr
    assert Image.open(folder / "out.png").size == (24, 20)


@pytest.mark.timeout(20)
def test_a_kernel_image_that_is_a_fifo_is_refused_without_blocking(folder: Path) -> None:
    """``-k @pipe.png`` on a FIFO: opening it to read would wait for a writer that never comes."""
    import os

    os.mkfifo(folder / "pipe.png")
    r = run("filter", str(folder / "a.png"), "-k", f"@{folder}/pipe.png", "-o", str(folder / "out.png"))
    assert r.exit_code == 2
    assert "FIFO" in r.output and "not a regular file" in r.output
    assert not (folder / "out.png").exists()


@pytest.mark.parametrize("ext", [".txt", ".csv", ".json", ".npy"])
def test_every_kernel_file_format_written_reads_back(ext: str, tmp_path: Path) -> None:
    """What learn -o writes (io.kernelfile.kernel_file_bytes) is what -k @FILE reads, to 9 digits."""
    from convcli.io.kernelfile import KERNEL_FILE_EXTENSIONS, kernel_file_bytes, load_kernel_file

    assert ext in KERNEL_FILE_EXTENSIONS
    k = np.random.default_rng(4).normal(size=(3, 5)) * np.array([1e-7, 1, 1e3, -2.5, 1 / 3])
    path = tmp_path / f"k{ext}"
    path.write_bytes(kernel_file_bytes(str(path), k))
    np.testing.assert_allclose(load_kernel_file(path).weights, k, rtol=1e-8 if ext != ".npy" else 0)
