"""Whole-process timings: `convcli` against a Python+OpenCV script, libvips and ImageMagick.

Each command runs as a child process; its wall time is measured around it and its peak resident
memory comes from the kernel's own accounting of that one child (``os.wait4`` → ``ru_maxrss``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from bench_common import md_table
from bench_env import find_exe, find_imagemagick, tool_version

SIGMA = 2.6  # OpenCV's default sigma for k = 15, what `convcli blur --size 15` uses
VIPS_MIN_AMPL = "0.025"  # makes vips's mask 15 taps wide at sigma 2.6 (its default 0.2 gives ~11)

OPENCV_ONE = """
import sys, cv2
im = cv2.imread(sys.argv[1], cv2.IMREAD_UNCHANGED)
cv2.imwrite(sys.argv[2], cv2.GaussianBlur(im, (15, 15), 2.6, borderType=cv2.BORDER_REFLECT_101))
"""

OPENCV_BATCH = """
import os, sys, cv2
src, dst = sys.argv[1], sys.argv[2]
for name in sorted(os.listdir(src)):
    im = cv2.imread(os.path.join(src, name), cv2.IMREAD_UNCHANGED)
    out = cv2.GaussianBlur(im, (15, 15), 2.6, borderType=cv2.BORDER_REFLECT_101)
    cv2.imwrite(os.path.join(dst, name), out)
"""


@dataclass
class Run:
    """One child process: wall seconds, peak RSS in MiB, exit code, last line of stderr."""

    wall: float
    rss_mib: float
    rc: int
    err: str = ""


@dataclass
class Row:
    """A tool's repeated runs of one command line, or the reason it was skipped."""

    name: str
    cmdline: str = ""
    runs: list[Run] = field(default_factory=list)
    note: str = ""
    output: Path | None = None

    @property
    def ok(self) -> bool:
        return bool(self.runs) and all(r.rc == 0 for r in self.runs)

    @property
    def median(self) -> float:
        return float(np.median([r.wall for r in self.runs]))

    @property
    def rss(self) -> float:
        return max(r.rss_mib for r in self.runs)


# A small launcher stands between this (large) process and each command: Linux seeds a child's
# ru_maxrss with the RSS of the process it was forked from, so forking the command straight from
# here would report this process's hundreds of MiB for every tool. The launcher is a few MiB.
LAUNCHER = """
import resource, subprocess, sys, time
t0 = time.perf_counter()
rc = subprocess.call(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
wall = time.perf_counter() - t0
kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
with open(sys.argv[1], "w") as f:
    f.write(f"{wall} {kib} {rc}")
"""


def run_child(cmd: Sequence[str], timeout: float = 900.0) -> Run:
    """Run ``cmd`` via the launcher: its wall time and peak RSS (ru_maxrss of the command's processes)."""
    with tempfile.TemporaryDirectory() as d:
        res, err_path = Path(d) / "result", Path(d) / "stderr"
        with open(err_path, "wb") as err:
            proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", LAUNCHER, str(res), *cmd],
                                    stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        tail = err_path.read_text(errors="replace").strip().splitlines()
        last = tail[-1][:160] if tail else ""
        if not res.exists():
            return Run(float(timeout), 0.0, -9, last or f"timed out after {timeout:.0f} s")
        wall, kib, rc = res.read_text().split()
    return Run(float(wall), int(kib) / 1024, int(rc), last)


def repeat_child(row: Row, cmd: Sequence[str], repeats: int, budget: float, before: object = None) -> Row:
    """Run ``cmd`` up to ``repeats`` times (fewer if over ``budget`` seconds); stop at the first failure."""
    row.cmdline = " ".join(_short(c) for c in cmd)
    spent = 0.0
    for _ in range(repeats):
        if callable(before):
            before()
        r = run_child(cmd)
        row.runs.append(r)
        spent += r.wall
        if r.rc != 0:
            row.note = f"exit {r.rc}: {r.err}"
            break
        if spent + r.wall > budget:
            break
    return row


def _short(arg: str) -> str:
    if "\n" in arg:
        return "'<script>'"
    tmp = tempfile.gettempdir()
    if arg.startswith(tmp):
        return arg.replace(tmp + os.sep, "$TMP/")
    prefix = sys.prefix + os.sep  # the virtual environment's own path says nothing about the run
    return "$VENV/" + arg[len(prefix):] if arg.startswith(prefix) else arg


def convcli_status() -> tuple[str | None, str]:
    """The convcli executable if `convcli --help` works, else (None, reason)."""
    exe = find_exe("convcli")
    if exe is None:
        return None, "convcli is not on PATH (pip install -e .)"
    r = run_child([exe, "--help"], timeout=60)
    if r.rc != 0:
        return None, f"`convcli --help` failed (exit {r.rc}: {r.err})"
    return exe, ""


# ---------------------------------------------------------------- single large image


def single_image(big: Path, out: Path, repeats: int, budget: float, cv2_ok: bool,
                 magick: bool = True) -> list[Row]:
    """PNG in -> Gaussian 15x15 sigma 2.6 -> PNG out, one process per run, per tool.

    The tools take turns (convcli, OpenCV, vips, ImageMagick, convcli, ...): a machine whose
    speed drifts during the section moves every tool's median alike, not only the last tool's.
    ``budget`` bounds each tool's own total seconds.
    """
    out.mkdir(parents=True, exist_ok=True)
    exe, why = convcli_status()
    vips = shutil.which("vips")
    plans: list[tuple[Row, list[str] | None | str, str, Path]] = [
        (Row("convcli blur --size 15"),
         exe and [exe, "blur", str(big), "--size", "15", "-o", str(out / "convcli.png"), "--quiet"],
         why, out / "convcli.png"),
        (Row("Python + OpenCV script"),
         [sys.executable, "-c", OPENCV_ONE, str(big), str(out / "opencv.png")] if cv2_ok else None,
         "cv2 not importable (pip install opencv-python-headless)", out / "opencv.png"),
        (Row("vips gaussblur"), vips and [vips, "gaussblur", str(big), str(out / "vips.png"), str(SIGMA),
                                          "--min-ampl", VIPS_MIN_AMPL],
         "vips not found (apt-get install libvips-tools)", out / "vips.png"),
    ]
    if magick:
        im, im_why = find_imagemagick()
        for flag, label in (("-gaussian-blur", "2-D"), ("-blur", "separable")):
            path = out / f"magick{flag}.png"
            plans.append((Row(f"ImageMagick {flag} 7x{SIGMA} ({label})"),
                          im and [*im, str(big), flag, f"7x{SIGMA}", str(path)], im_why, path))
    spent = {id(row): 0.0 for row, *_ in plans}
    for row, cmd, why_not, output in plans:
        if not cmd:
            row.note = why_not
        else:
            row.output = output
            row.cmdline = " ".join(_short(c) for c in cmd)
    for _ in range(repeats):
        for row, cmd, _why, _out in plans:
            if not cmd or row.note or (row.runs and spent[id(row)] + row.runs[-1].wall > budget):
                continue
            r = run_child(cmd)
            row.runs.append(r)
            spent[id(row)] += r.wall
            if r.rc != 0:
                row.note = f"exit {r.rc}: {r.err}"
    return [row for row, *_ in plans]


def compare_outputs(rows: list[Row], reference: str = "Python + OpenCV script") -> dict[str, str]:
    """Each output image against the OpenCV script's: max and mean absolute difference in levels."""
    from PIL import Image

    ref_row = next((r for r in rows if r.name == reference and r.ok and r.output and r.output.exists()), None)
    if ref_row is None:
        return {}
    ref = np.asarray(Image.open(ref_row.output).convert("RGB"), dtype=np.int16)
    diffs = {}
    for r in rows:
        if not (r.ok and r.output and r.output.exists()) or r is ref_row:
            continue
        img = np.asarray(Image.open(r.output).convert("RGB"), dtype=np.int16)
        if img.shape != ref.shape:
            diffs[r.name] = f"shape {img.shape}"
            continue
        d = np.abs(img - ref)
        inner = d[8:-8, 8:-8]
        diffs[r.name] = (f"max {int(d.max())}, mean {d.mean():.3f} / "
                         f"max {int(inner.max())}, mean {inner.mean():.3f}")
    return diffs


def single_table(rows: list[Row], diffs: dict[str, str]) -> list[str]:
    base = next((r.median for r in rows if r.name == "Python + OpenCV script" and r.ok), None)
    table = []
    for r in rows:
        if not r.ok:
            table.append([r.name, "—", "", "", "", "", f"skipped: {r.note}" if not r.runs else r.note])
            continue
        ratio = f"×{r.median / base:.2f}" if base else ""
        size = f"{r.output.stat().st_size / 2**20:.1f}" if r.output and r.output.exists() else ""
        diff = diffs.get(r.name, "reference" if r.name.startswith("Python") else "")
        table.append([r.name, f"{r.median:.2f}", ratio, f"{r.rss:.0f}", size, diff, f"n={len(r.runs)}"])
    header = ["command", "median s", "vs OpenCV script", "peak RSS MiB", "output MiB",
              "diff vs OpenCV: all / interior (levels)", "notes"]
    return md_table(header, table)


def _median_of(rows: list[Row], prefix: str) -> float | None:
    meds = [r.median for r in rows if r.name.startswith(prefix) and r.ok]
    return min(meds) if meds else None


def _verdict(name: str, ours: float | None, theirs: float | None, limit: float, strict: bool = False) -> str:
    if ours is None or theirs is None:
        return f"convcli ÷ {name}: not measured"
    r = ours / theirs
    ok = r < limit if strict else r <= limit
    return f"convcli ÷ {name} = {r:.2f} ({'<' if strict else '≤'} {limit:g} {'✓' if ok else '✗'})"


def single_targets(rows: list[Row], vips_limit: float = 0.7, opencv_limit: float = 0.7) -> str:
    """The whole-command targets (README, Speed): at 4096² 0.7x vips and the OpenCV script, at 2048²
    1.3x vips and 1.0x the OpenCV script; faster than ImageMagick where it ran."""
    ours = _median_of(rows, "convcli")
    parts = [_verdict("OpenCV script", ours, _median_of(rows, "Python + OpenCV"), opencv_limit),
             _verdict("vips", ours, _median_of(rows, "vips"), vips_limit)]
    if _median_of(rows, "ImageMagick") is not None:
        parts.append(_verdict("fastest ImageMagick", ours, _median_of(rows, "ImageMagick"), 1.0, strict=True))
    return "Targets: " + "; ".join(parts) + "."


def batch_targets(rows: list[Row]) -> str:
    """The batch target: at least 2x faster than `parallel vips`."""
    ours, theirs = _median_of(rows, "convcli"), _median_of(rows, "parallel")
    return "Target: " + _verdict("parallel vips", ours, theirs, 0.5) + "."


# ---------------------------------------------------------------- batch of small images


def batch(src: Path, work: Path, repeats: int, budget: float, cv2_ok: bool) -> tuple[list[Row], int]:
    """The same blur over every PNG in ``src``, each tool writing a fresh output directory."""
    files = sorted(str(p) for p in src.glob("*.png"))
    rows: list[Row] = []
    exe, why = convcli_status()

    def fresh(name: str) -> tuple[Path, object]:
        d = work / name

        def reset() -> None:
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir(parents=True)

        return d, reset

    d, reset = fresh("convcli")
    cmd = exe and [exe, "blur", str(src), "--out-dir", str(d), "-j", "2", "--size", "15", "--quiet"]
    rows.append(_batch_row(Row("convcli blur DIR --size 15 -j 2"), cmd, why, d, repeats, budget, reset))
    par, vips = shutil.which("parallel"), shutil.which("vips")
    d, reset = fresh("vips")
    cmd = (par and vips) and [par, "--will-cite", "-j", "2", vips, "gaussblur", "{}", f"{d}/{{/}}",
                              str(SIGMA), "--min-ampl", VIPS_MIN_AMPL, ":::", *files]
    rows.append(_batch_row(Row("parallel -j 2 vips gaussblur"), cmd,
                           "GNU parallel or vips not found (apt-get install parallel libvips-tools)",
                           d, repeats, budget, reset))
    d, reset = fresh("opencv")
    cmd = cv2_ok and [sys.executable, "-c", OPENCV_BATCH, str(src), str(d)]
    rows.append(_batch_row(Row("Python + OpenCV loop (1 process)"), cmd, "cv2 not importable", d, repeats,
                           budget, reset))
    return rows, len(files)


def _batch_row(row: Row, cmd: list[str] | None | bool | str, why: str, out: Path, repeats: int, budget: float,
               reset: object) -> Row:
    if not cmd:
        row.note = why
        return row
    row.output = out
    repeat_child(row, cmd, repeats, budget, before=reset)  # type: ignore[arg-type]
    return row


def batch_table(rows: list[Row], count: int) -> list[str]:
    base = next((r.median for r in rows if r.name.startswith("parallel") and r.ok), None)
    table = []
    for r in rows:
        if not r.ok:
            table.append([r.name, "—", "", "", "", f"skipped: {r.note}" if not r.runs else r.note])
            continue
        n_out = len(list(r.output.glob("*"))) if r.output else 0
        ratio = f"×{r.median / base:.2f}" if base else ""
        note = f"n={len(r.runs)}" + ("" if n_out == count else f"; WRONG: {n_out} outputs for {count} inputs")
        per = f"{r.median / count * 1e3:.1f}"
        table.append([r.name, f"{r.median:.2f}", ratio, per, f"{r.rss:.0f}", note])
    header = ["command", "median s", "vs parallel vips", "ms per image", "peak RSS MiB (largest process)",
              "notes"]
    return md_table(header, table)


# ---------------------------------------------------------------- start-up and memory


def startup(cat: Path, chelsea: Path, work: Path, repeats: int) -> list[str]:
    """Wall time of `convcli --help` and of filters of 224x224 and 451x300 PNGs, against the bare
    interpreter and the interpreter importing the libraries a filter cannot do without."""
    exe, why = convcli_status()
    bare = _median_wall([sys.executable, "-c", "pass"], repeats)
    libs = _median_wall([sys.executable, "-c", "import numpy, PIL.Image, PIL.PngImagePlugin, click"], repeats)
    rows = [["python -c pass (interpreter alone)", bare, "—"],
            ["python -c 'import numpy, PIL.Image, PIL.PngImagePlugin, click' (the floor)", libs, "—"]]
    if exe is None:
        return [f"Skipped: {why}", "", *md_table(["command", "median s", "target"], rows)]
    out = work / "cat.sharpen.png"
    rows.append(["convcli --help", _median_wall([exe, "--help"], repeats), "≤ 0.1 s"])
    filt = [exe, "filter", str(cat), "--kernel", "sharpen", "-o", str(out), "--quiet"]
    rows.append(["convcli filter cat224.png --kernel sharpen", _median_wall(filt, repeats), "≤ 0.15 s"])
    filt = [exe, "filter", str(chelsea), "--kernel", "sharpen", "-o", str(work / "chelsea.sharpen.png")]
    rows.append(["convcli filter chelsea.png (451×300) --kernel sharpen", _median_wall(filt, repeats),
                 "≤ 0.15 s"])
    for r, limit in zip(rows[2:], (0.1, 0.15, 0.15), strict=True):
        try:
            r[2] += " ✓" if float(r[1]) <= limit else " ✗ missed"
        except ValueError:
            pass
    return md_table(["command", "median s", "target"], rows)


def _median_wall(cmd: list[str], repeats: int) -> str:
    runs = [run_child(cmd, timeout=120) for _ in range(repeats)]
    bad = [r for r in runs if r.rc != 0]
    if bad:
        return f"failed (exit {bad[0].rc}: {bad[0].err})"
    return f"{float(np.median([r.wall for r in runs])):.3f}"


def memory(big: Path, shape: tuple[int, int, int], work: Path) -> list[str]:
    """Peak RSS of one `convcli blur --size 15` of ``big`` against the target 3x decoded uint8 + 200 MiB."""
    exe, why = convcli_status()
    if exe is None:
        return [f"Skipped: {why}"]
    decoded = int(np.prod(shape)) / 2**20
    target = 3 * decoded + 200
    r = run_child([exe, "blur", str(big), "--size", "15", "-o", str(work / "mem.png"), "--quiet"],
                  timeout=1800)
    if r.rc != 0:
        return [f"`convcli blur` of {shape[1]}×{shape[0]} failed (exit {r.rc}: {r.err})"]
    verdict = "✓ met" if r.rss_mib <= target else f"✗ missed by {r.rss_mib - target:.0f} MiB"
    rows = [[f"convcli blur --size 15, {shape[1]}×{shape[0]} RGB PNG", f"{r.rss_mib:.0f}", f"{decoded:.0f}",
             f"≤ {target:.0f}", verdict, f"{r.wall:.1f}"]]
    return md_table(["command", "peak RSS MiB", "decoded uint8 MiB", "target MiB", "verdict", "wall s"], rows)


def tool_versions() -> dict[str, str]:
    im, im_desc = find_imagemagick()
    vips = shutil.which("vips")
    par = shutil.which("parallel")
    exe, why = convcli_status()
    return {
        "convcli CLI": _short(exe) if exe else why,
        "libvips": tool_version([vips, "--version"]) if vips else "not found (apt-get install libvips-tools)",
        "ImageMagick": f"{im_desc} ({im[0]})" if im else im_desc,
        "GNU parallel": tool_version([par, "--version"]) if par else "not found (apt-get install parallel)",
    }
