"""PNG decode and deflate/inflate candidates for convcli's PNG path, measured side by side.

For the issue asking that ``convcli blur IMG --size 15 -o out.png`` beat libvips and an OpenCV script:
how much of the PNG-in / PNG-out time could another decoder or another deflate library save?

    python benchmarks/codecs.py                 # all sections, medians of 5 runs
    python benchmarks/codecs.py --runs 3 --sizes 2048 512

Every candidate is optional and skipped (with a note) when it is not installed:

    pip install pyspng imagecodecs isal zlib-ng deflate opencv-python-headless

OpenCV is a reference only (it is not a candidate dependency). convcli's own threaded PNG encoder
(``convcli.imageio.png_zlib_stream``) is timed too when ``convcli`` imports.

Test images: sample_images/chelsea.png (or coffee.png) upscaled with LANCZOS to N x N, plus mild
seeded Gaussian noise (sigma 2) so that it filters and compresses like a photo, stored as a PNG by
Pillow's defaults (level 6, adaptive filters) as a typical input file would be. The deflate input
is the image's rows with PNG filter Up (row minus the row above, uint8 wrap, a filter byte 2 in front
of each row), exactly what convcli's encoder compresses.

Prints Markdown on stdout.
"""

from __future__ import annotations

import argparse
import importlib
import io
import os
import platform
import statistics
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
PHOTOS = ("chelsea.png", "coffee.png")
BAND_BYTES = 4 << 20  # uncompressed bytes per band in the banded (threaded) encoder below
DICT_BYTES = 32768


# --------------------------------------------------------------------------- optional imports


def _try(name: str):
    try:
        return importlib.import_module(name)
    except Exception as exc:  # noqa: BLE001 - any import failure means "skip"
        SKIPPED.append(f"`{name}`: {type(exc).__name__}: {exc}".splitlines()[0])
        return None


SKIPPED: list[str] = []
pyspng = _try("pyspng")
imagecodecs = _try("imagecodecs")
isal_zlib = _try("isal.isal_zlib")
zlib_ng = _try("zlib_ng.zlib_ng")
libdeflate = _try("deflate")
cv2 = _try("cv2")


def _convcli_stream():
    sys.path.insert(0, str(REPO))
    try:
        from convcli.imageio import png_zlib_stream  # noqa: PLC0415
    except Exception as exc:  # noqa: BLE001
        SKIPPED.append(f"convcli's encoder: {type(exc).__name__}: {exc}".splitlines()[0])
        return None
    finally:
        sys.path.pop(0)
    return png_zlib_stream


# --------------------------------------------------------------------------- helpers


def median_time(fn: Callable[[], object], runs: int) -> tuple[float, object]:
    """Median wall time of ``runs`` calls (after one warm-up call) and the last result."""
    out = fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def machine() -> list[str]:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    lines = [
        f"- load average at start: {load} (anything else running skews the thread columns most)",
        f"- CPU: {cpu}, {os.cpu_count()} logical CPUs; {platform.system()} {platform.machine()}",
        f"- Python {platform.python_version()}; numpy {np.__version__}; Pillow {Image.__version__}",
        f"- stdlib zlib {zlib.ZLIB_RUNTIME_VERSION}",
    ]
    try:
        from PIL import features  # noqa: PLC0415

        zng = features.version("zlib_ng") if features.check_feature("zlib_ng") else None
        lines.append(f"- Pillow's own zlib: {'zlib-ng ' + zng if zng else features.version('zlib')}")
    except Exception:  # noqa: BLE001
        pass
    vers = []
    for label, mod in (("pyspng", pyspng), ("imagecodecs", imagecodecs), ("isal", isal_zlib),
                       ("zlib-ng", zlib_ng), ("deflate (libdeflate)", libdeflate), ("opencv", cv2)):
        if mod is None:
            continue
        top = sys.modules[mod.__name__.split(".")[0]]
        v = getattr(top, "__version__", "?")
        if mod is zlib_ng:
            v += f" (zlib-ng {getattr(mod, 'ZLIBNG_VERSION', '?')})"
        if mod is imagecodecs:
            libs = imagecodecs.version(dict)
            names = [f"{k} {libs[k]}" for k in ("libspng", "libpng", "libdeflate") if k in libs]
            v += " (" + ", ".join(names) + ")"
        vers.append(f"{label} {v}")
    lines.append("- " + "; ".join(vers))
    return lines


def make_image(n: int) -> np.ndarray:
    for name in PHOTOS:
        path = REPO / "sample_images" / name
        if path.exists():
            with Image.open(path) as im:
                src = im.convert("RGB")
            break
    else:
        msg = f"none of {PHOTOS} in sample_images/"
        raise FileNotFoundError(msg)
    big = np.asarray(src.resize((n, n), Image.Resampling.LANCZOS), dtype=np.int16)
    noise = np.random.default_rng(n).normal(0.0, 2.0, big.shape).round().astype(np.int16)
    return np.clip(big + noise, 0, 255).astype(np.uint8)


def png_bytes_pillow(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")  # Pillow defaults: level 6, adaptive filters
    return buf.getvalue()


def filter_up(rows: np.ndarray) -> np.ndarray:
    out = np.empty((rows.shape[0], 1 + rows.shape[1]), dtype=np.uint8)
    out[:, 0] = 2
    out[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=out[1:, 1:])
    return out


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_from_zlib(width: int, height: int, stream: bytes) -> bytes:
    """An 8-bit RGB PNG around an already compressed zlib stream of Up-filtered rows."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", stream) + chunk(b"IEND", b"")


# --------------------------------------------------------------------------- deflate backends

ADLER_BASE = 65521


def adler32_combine(a1: int, a2: int, len2: int) -> int:
    rem = len2 % ADLER_BASE
    s1 = a1 & 0xFFFF
    s2 = (rem * s1) % ADLER_BASE
    s1 += (a2 & 0xFFFF) + ADLER_BASE - 1
    s2 += ((a1 >> 16) & 0xFFFF) + ((a2 >> 16) & 0xFFFF) + ADLER_BASE - rem
    return (s1 % ADLER_BASE) | ((s2 % ADLER_BASE) << 16)


def banded_zlib(mod, filtered: np.ndarray, level: int, threads: int) -> bytes:
    """convcli's scheme with any zlib-compatible module: bands of rows, each primed with the
    previous 32 KiB as a dictionary, raw deflate ending in a sync flush (the last one finished),
    one zlib header, Adler-32s combined. With threads > 1 the bands run on a thread pool."""
    flat = filtered.reshape(-1)
    row = filtered.shape[1]
    step = max(1, BAND_BYTES // row) * row
    spans = [(s, min(flat.size, s + step)) for s in range(0, flat.size, step)]

    def task(span: tuple[int, int]) -> tuple[bytes, int, int]:
        s, e = span
        zdict = flat[max(0, s - DICT_BYTES):s].tobytes()
        comp = mod.compressobj(level, mod.DEFLATED, -15, zdict=zdict) if zdict else \
            mod.compressobj(level, mod.DEFLATED, -15)
        body = flat[s:e]
        data = comp.compress(body) + comp.flush(mod.Z_FINISH if e == flat.size else mod.Z_SYNC_FLUSH)
        return data, mod.adler32(body), body.size

    if threads > 1:
        from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

        with ThreadPoolExecutor(threads) as pool:
            parts = list(pool.map(task, spans))
    else:
        parts = [task(s) for s in spans]
    adler = 1
    for _, a, n in parts:
        adler = adler32_combine(adler, a, n)
    return b"\x78\x01" + b"".join(p[0] for p in parts) + struct.pack(">I", adler)


def zlib_backends() -> list[tuple[str, object, list[int]]]:
    """(label, module with the zlib API, levels) for the stream-capable candidates."""
    out: list[tuple[str, object, list[int]]] = [
        (f"zlib {zlib.ZLIB_RUNTIME_VERSION} (stdlib)", zlib, [1, 2, 3, 6])
    ]
    if zlib_ng is not None:
        out.append(("zlib-ng", zlib_ng, [1, 2, 3, 6]))
    if isal_zlib is not None:
        out.append(("isal (ISA-L)", isal_zlib, [0, 1, 2, 3]))
    return out


# --------------------------------------------------------------------------- sections


def section_import(runs: int) -> list[str]:
    mods = ["zlib", "numpy", "PIL.Image", "pyspng", "imagecodecs", "isal.isal_zlib", "zlib_ng.zlib_ng",
            "deflate", "cv2"]
    base = "numpy, PIL.Image"  # convcli imports these anyway: count only what a module adds
    rows = ["| module | import ms, alone | import ms, after numpy + PIL.Image |", "| --- | ---: | ---: |"]
    for m in mods:
        cells = [_import_ms(m, "", runs)]
        cells.append(_import_ms(m, base, runs) if m not in ("numpy", "PIL.Image", "zlib") else None)
        if cells[0] is None:
            rows.append(f"| `{m}` | not installed | |")
        else:
            second = "" if cells[1] is None else f"{cells[1]:.1f}"
            rows.append(f"| `{m}` | {cells[0]:.1f} | " + second + " |")
    if imagecodecs is not None:
        # imagecodecs loads each codec's extension on first use: time the import plus those loads.
        r = subprocess.run([sys.executable, "-c",
                            f"import {base};import time;t=time.perf_counter();import imagecodecs;"
                            "imagecodecs.spng_decode;imagecodecs.zlibng_encode;"
                            "print((time.perf_counter()-t)*1000)"],
                           capture_output=True, text=True, check=False)
        if r.returncode == 0:
            rows.append(f"| `imagecodecs` + its spng and zlibng codecs loaded | | {float(r.stdout):.1f} |")
    return rows


def _import_ms(m: str, base: str, runs: int) -> float | None:
    """Median import time of ``m`` in ms (-X importtime: the cumulative times of every top-level
    import it causes), in a fresh interpreter that has already imported ``base``."""
    vals = []
    for _ in range(runs):
        # colorsys: a tiny stdlib module nothing else imports, marking where ``m``'s imports start.
        code = (f"import {base}; " if base else "") + f"import colorsys; import {m}"
        r = subprocess.run([sys.executable, "-X", "importtime", "-c", code],
                           capture_output=True, text=True, check=False)
        if r.returncode != 0:
            return None
        total, started = 0, False
        for line in r.stderr.splitlines():
            parts = line.split("|")
            if len(parts) != 3 or not parts[1].strip().isdigit():
                continue
            top = parts[2].startswith(" ") and not parts[2].startswith("  ")
            if top and started:
                total += int(parts[1])
            if top and parts[2].strip() == "colorsys":
                started = True
        vals.append(total / 1000)
    return statistics.median(vals)


def section_decode(images: dict[int, np.ndarray], runs: int, up_l1: bytes | None) -> list[str]:
    rows = ["| file | Pillow | pyspng | imagecodecs.spng_decode | imagecodecs.png_decode (libpng) | "
            "cv2.imdecode (reference) |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    files = [(f"{n}² RGB, Pillow default (level 6, adaptive filters)", png_bytes_pillow(img), img)
             for n, img in images.items()]
    if up_l1 is not None:
        n = max(images)
        files.append((f"{n}² RGB, Up filter + zlib level 1 (convcli-style output)", up_l1, images[n]))
    for label, data, ref in files:
        cells = []
        decoders = [
            ("pil", lambda d=data: np.asarray(Image.open(io.BytesIO(d)))),
            ("spng", (lambda d=data: pyspng.load(d)) if pyspng else None),
            ("ic-spng", (lambda d=data: imagecodecs.spng_decode(d)) if imagecodecs else None),
            ("ic-png", (lambda d=data: imagecodecs.png_decode(d)) if imagecodecs else None),
            ("cv2", (lambda d=data: cv2.imdecode(np.frombuffer(d, np.uint8), cv2.IMREAD_UNCHANGED))
             if cv2 else None),
        ]
        for name, fn in decoders:
            if fn is None:
                cells.append("—")
                continue
            t, arr = median_time(fn, runs)
            arr = arr[..., ::-1] if name == "cv2" else arr
            ok = np.array_equal(arr, ref)
            cells.append(f"{t * 1000:.0f} ms" + ("" if ok else " (MISMATCH)"))
        rows.append(f"| {label}, {len(data) / 1e6:.1f} MB | " + " | ".join(cells) + " |")
    return rows


def section_deflate(filtered: np.ndarray, runs: int) -> tuple[list[str], dict]:
    raw = filtered.tobytes()
    size = len(raw)
    rows = [f"Input: {size / 1e6:.1f} MB of Up-filtered rows. One thread, one call over the whole "
            "buffer (`compress`), then `decompress` of that output.", "",
            "| library | level | compress s | MB/s | ratio (in/out) | inflate s | inflate MB/s |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    streams: dict = {}
    for label, mod, levels in zlib_backends():
        for lv in levels:
            t, out = median_time(lambda m=mod, lv=lv: m.compress(raw, lv), runs)
            ti, back = median_time(lambda m=mod, o=out: m.decompress(o), runs)
            assert back == raw and zlib.decompress(out) == raw, label
            streams[(label, lv)] = out
            rows.append(f"| {label} | {lv} | {t:.3f} | {size / t / 1e6:.0f} | {size / len(out):.3f} | "
                        f"{ti:.3f} | {size / ti / 1e6:.0f} |")
    if libdeflate is not None:
        for lv in (1, 2, 3, 6):
            t, out = median_time(lambda lv=lv: libdeflate.zlib_compress(raw, lv), runs)
            ti, back = median_time(lambda o=out: libdeflate.zlib_decompress(o, size), runs)
            assert back == raw and zlib.decompress(out) == raw
            rows.append(f"| libdeflate (`deflate`) | {lv} | {t:.3f} | {size / t / 1e6:.0f} | "
                        f"{size / len(out):.3f} | {ti:.3f} | {size / ti / 1e6:.0f} |")
    # Inflate of one common stream (stdlib zlib level 1) by each inflater: what a PNG reader sees.
    ref = streams[(zlib_backends()[0][0], 1)]
    inf = [("zlib (stdlib)", lambda: zlib.decompress(ref))]
    if zlib_ng is not None:
        inf.append(("zlib-ng", lambda: zlib_ng.decompress(ref)))
    if isal_zlib is not None:
        inf.append(("isal", lambda: isal_zlib.decompress(ref)))
    if libdeflate is not None:
        inf.append(("libdeflate", lambda: libdeflate.zlib_decompress(ref, size)))
    rows += ["", "Inflate of the same stream (stdlib zlib level 1 output):", "",
             "| inflater | s | MB/s |", "| --- | ---: | ---: |"]
    for label, fn in inf:
        t, back = median_time(fn, runs)
        assert back == raw
        rows.append(f"| {label} | {t:.3f} | {size / t / 1e6:.0f} |")
    return rows, streams


def section_threads(filtered: np.ndarray, runs: int) -> list[str]:
    """Does compress release the GIL?

    Two measures: wall time of two independent halves on 2 threads vs one after the other (only
    meaningful on a quiet machine with 2 free cores), and a pure-Python counter thread running
    during one compress call of the whole buffer: if the call held the GIL the counter would stand
    still; its rate relative to an idle counter says how freely it ran (about 1 on >= 2 free cores).
    """
    raw = filtered.reshape(-1)
    half = raw.size // 2
    halves = [raw[:half].tobytes(), raw[half:].tobytes()]
    whole = raw.tobytes()
    cands = [(label, (lambda d, m=mod: m.compress(d, 1))) for label, mod, _ in zlib_backends()]
    if libdeflate is not None:
        cands.append(("libdeflate", lambda d: libdeflate.zlib_compress(d, 1)))
    idle = _spin_rate(lambda: time.sleep(0.3))
    rows = ["| library (level 1) | 2 halves, 1 thread s | 2 halves, 2 threads s | speed-up | "
            "Python thread's rate during compress |", "| --- | ---: | ---: | ---: | ---: |"]
    for label, fn in cands:
        def serial(f=fn):
            for h in halves:
                f(h)

        def parallel(f=fn):
            ts = [threading.Thread(target=f, args=(h,)) for h in halves]
            for t in ts:
                t.start()
            for t in ts:
                t.join()

        t1, _ = median_time(serial, runs)
        t2, _ = median_time(parallel, runs)
        rate = statistics.median(_spin_rate(lambda f=fn: f(whole)) for _ in range(3)) / idle
        rows.append(f"| {label} | {t1:.3f} | {t2:.3f} | {t1 / t2:.2f}x | {rate:.2f} |")
    return rows


def _spin_rate(fn: Callable[[], object]) -> float:
    """Iterations per second of a pure-Python loop on another thread while ``fn`` runs."""
    stop = threading.Event()
    count = [0]

    def spin() -> None:
        n = 0
        while not stop.is_set():
            n += 1
        count[0] = n

    t = threading.Thread(target=spin)
    t.start()
    t0 = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - t0
    stop.set()
    t.join()
    return count[0] / elapsed


def section_png_encode(img: np.ndarray, filtered: np.ndarray, runs: int,
                       threads: int) -> tuple[list[str], bytes]:
    """Whole PNG image-data stream as convcli builds it (banded, threaded), per backend, and the
    result decoded bit-exact by Pillow; plus Pillow's and OpenCV's own PNG writers for reference."""
    h, w = img.shape[:2]
    rows = ["| writer | level | threads | s | PNG MB | Pillow decodes bit-exact |",
            "| --- | ---: | ---: | ---: | ---: | --- |"]
    up_l1 = None

    def check(png: bytes) -> str:
        return "yes" if np.array_equal(np.asarray(Image.open(io.BytesIO(png))), img) else "NO"

    encoder = _convcli_stream()
    rows_bytes = img.reshape(h, -1)
    if encoder is not None:
        for th in sorted({1, threads}):
            t, stream = median_time(lambda th=th: encoder(rows_bytes, 1, th), runs)
            rows.append(f"| convcli `png_zlib_stream` (stdlib zlib) | 1 | {th} | {t:.3f} | "
                        f"{len(stream) / 1e6:.2f} | {check(png_from_zlib(w, h, stream))} |")
    for label, mod, levels in zlib_backends():
        for lv in [lv for lv in levels if lv in (1, 2) or (mod is isal_zlib and lv == 0)]:
            for th in sorted({1, threads}):
                t, stream = median_time(lambda m=mod, lv=lv, th=th: banded_zlib(m, filtered, lv, th), runs)
                png = png_from_zlib(w, h, stream)
                if mod is zlib and lv == 1:
                    up_l1 = png
                mb = len(stream) / 1e6
                rows.append(f"| banded {label} | {lv} | {th} | {t:.3f} | {mb:.2f} | {check(png)} |")
    if libdeflate is not None:
        raw = filtered.tobytes()
        for lv in (1, 2):
            t, stream = median_time(lambda lv=lv: libdeflate.zlib_compress(raw, lv), runs)
            rows.append(f"| libdeflate one-shot (cannot be banded) | {lv} | 1 | {t:.3f} | "
                        f"{len(stream) / 1e6:.2f} | {check(png_from_zlib(w, h, stream))} |")
    pil_img = Image.fromarray(img)

    def pil_save():
        buf = io.BytesIO()
        pil_img.save(buf, format="PNG", compress_level=1)
        return buf.getvalue()

    t, png = median_time(pil_save, runs)
    rows.append(f"| Pillow `save` (reference) | 1 | 1 | {t:.3f} | {len(png) / 1e6:.2f} | {check(png)} |")
    if cv2 is not None:
        bgr = np.ascontiguousarray(img[..., ::-1])
        t, (ok, enc) = median_time(lambda: cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 1]), runs)
        rows.append(f"| cv2.imencode (reference) | 1 | 1 | {t:.3f} | "
                    f"{enc.size / 1e6:.2f} | {check(enc.tobytes())} |")
    return rows, up_l1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--sizes", type=int, nargs="+", default=[4096, 2048, 512])
    ap.add_argument("--threads", type=int, default=min(os.cpu_count() or 1, 4),
                    help="threads for the banded encoders (default: CPUs, at most 4)")
    args = ap.parse_args()
    runs = args.runs

    images = {n: make_image(n) for n in args.sizes}
    big = images[max(images)]
    filtered = filter_up(big.reshape(big.shape[0], -1))

    out = ["# PNG codec candidates", "", *machine(), f"- medians of {runs} runs after one warm-up", ""]
    if SKIPPED:
        out += ["Skipped (not importable):", "", *(f"- {s}" for s in SKIPPED), ""]
    n = max(images)
    out += [f"## Encode: whole PNG image data for the {n}² image (Up filter)", ""]
    enc_rows, up_l1 = section_png_encode(big, filtered, runs, args.threads)
    out += [*enc_rows, ""]
    out += ["## Decode: PNG file -> numpy array (milliseconds; every result checked equal to the source)", ""]
    out += [*section_decode(images, runs, up_l1), ""]
    out += [f"## Deflate / inflate of the {n}² Up-filtered rows", ""]
    defl_rows, _ = section_deflate(filtered, runs)
    out += [*defl_rows, ""]
    out += ["## GIL: level-1 compress of two halves on one thread vs two", ""]
    out += [*section_threads(filtered, runs), ""]
    out += ["## Import time (`python -X importtime`, fresh interpreter each run)", ""]
    out += [*section_import(runs), ""]
    print("\n".join(out))


if __name__ == "__main__":
    main()
