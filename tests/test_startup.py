"""Import discipline of a run: a command imports only what it uses, and small work starts no thread.

Each case runs the CLI in a fresh interpreter (``sys.modules`` of this test process is full of
everything the suite imported) and reads back the modules it ended with and the threads it
started. No timing: the lists are what keep start-up short (README, "Speed").
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
CHELSEA = ROOT / "sample_images" / "chelsea.png"
ROCKET = ROOT / "sample_images" / "rocket.jpg"

#: Runs the CLI with ARGV, then writes {"modules": [...], "threads": [...]} to the file named first.
PROBE = """
import sys, threading
started = []
_start = threading.Thread.start
def counted(self):
    started.append(self.name)
    _start(self)
threading.Thread.start = counted
report, sys.argv = sys.argv[1], ["convcli", *sys.argv[2:]]
from convcli.cli import main
code = 0
try:
    main()
except SystemExit as e:
    code = e.code
modules = sorted(sys.modules)
import json
with open(report, "w") as f:
    json.dump({"modules": modules, "threads": started, "code": code}, f)
"""

#: Never imported by --help, nor by a filter on a small PNG.
NOT_FOR_SMALL_FILTER = [
    "rich", "concurrent.futures", "multiprocessing", "tempfile", "json", "numpy.fft", "scipy", "dask",
    "distributed", "importlib.metadata", "convcli.teach", "convcli.io.frames", "convcli.run.lifeline",
    "PIL.GifImagePlugin", "PIL.BmpImagePlugin", "PIL.JpegImagePlugin", "PIL.PpmImagePlugin",
    "PIL.TiffImagePlugin", "subprocess",
]
#: Besides those, --help needs neither NumPy nor Pillow.
NOT_FOR_HELP = [*NOT_FOR_SMALL_FILTER, "numpy", "PIL", "PIL.Image", "convcli.pipeline", "convcli.run"]


def probe(tmp_path: Path, *argv: str) -> dict:
    report = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, "-c", PROBE, str(report), *argv], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120, check=False)
    assert report.exists(), proc.stderr
    data = json.loads(report.read_text())
    assert data["code"] in (0, None), proc.stderr
    return data


def imported(data: dict, names: list[str]) -> list[str]:
    mods = set(data["modules"])
    return [n for n in names if n in mods]


def test_help_imports_no_numpy_pillow_or_rich(tmp_path: Path) -> None:
    data = probe(tmp_path, "--help")
    assert imported(data, NOT_FOR_HELP) == []
    assert "click" in data["modules"]  # the control: the probe does see imports
    assert data["threads"] == []


def test_small_png_filter_imports_only_what_it_uses(tmp_path: Path) -> None:
    data = probe(tmp_path, "filter", str(CHELSEA), "--kernel", "sharpen", "-o", str(tmp_path / "out.png"))
    assert imported(data, NOT_FOR_SMALL_FILTER) == []
    assert data["threads"] == []  # 451x300: a pool would cost more than it saves
    assert {"numpy", "PIL.PngImagePlugin", "convcli.pipeline"} <= set(data["modules"])
    out = np.asarray(Image.open(tmp_path / "out.png"))
    assert out.shape == (300, 451, 3)


def test_jpeg_input_imports_the_jpeg_plugin_alone(tmp_path: Path) -> None:
    data = probe(tmp_path, "filter", str(ROCKET), "--kernel", "sharpen", "-o", str(tmp_path / "out.png"))
    assert "PIL.JpegImagePlugin" in data["modules"]
    assert imported(data, ["PIL.GifImagePlugin", "PIL.BmpImagePlugin", "PIL.PpmImagePlugin"]) == []


@pytest.mark.parametrize("command", [["filter", "--kernel", "sharpen"], ["blur", "--size", "15"]],
                         ids=lambda c: c[0])
def test_large_work_does_use_threads(command: list[str], tmp_path: Path, rng: np.random.Generator) -> None:
    """The other side of the size rule: big work on --threads 3 runs on threads. The PNG is decoded on
    a thread of its own (run/job), the filter's bands run on the pool with the two others."""
    src = tmp_path / "big.png"
    Image.fromarray(rng.integers(0, 256, (1400, 1400, 3), dtype=np.uint8)).save(src)
    out = str(tmp_path / "o.png")
    data = probe(tmp_path, command[0], str(src), *command[1:], "--threads", "3", "-o", out)
    assert "concurrent.futures" in data["modules"]
    assert any(name.startswith("convcli-band") for name in data["threads"]), data["threads"]
    assert "convcli-png-rows" in data["threads"]


def test_a_text_kernel_file_is_parsed_with_json_imported_then(tmp_path: Path) -> None:
    """json is imported where a .json kernel file is read, not before: the same run still works."""
    (tmp_path / "k.json").write_text("[[0, -1, 0], [-1, 5, -1], [0, -1, 0]]")
    data = probe(tmp_path, "filter", str(CHELSEA), "--kernel", "@k.json", "-o", str(tmp_path / "j.png"))
    assert "json" in data["modules"]
    ref = probe(tmp_path, "filter", str(CHELSEA), "--kernel", "sharpen", "-o", str(tmp_path / "s.png"))
    assert ref["threads"] == []
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "j.png")),
                                  np.asarray(Image.open(tmp_path / "s.png")))
