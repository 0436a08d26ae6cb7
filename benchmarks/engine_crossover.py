"""Micro-benchmark behind the engine's crossover constants (convcli/engine/choose.py).

Times every method of ``correlate2d`` on the issue-4 workloads (4096x4096 RGB float32 by
default) and OpenCV's ``filter2D`` / ``sepFilter2D`` in the same run when cv2 is
installed, and prints medians and ratios. Not a test; the full suite is benchmarks/run.py.

    python benchmarks/engine_crossover.py [--size 4096] [--repeat 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

from convcli.engine import METHODS, choose_method, conv2d, correlate2d, gradient_magnitude

try:
    import cv2
except ImportError:  # pragma: no cover - optional
    cv2 = None


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    """Median wall time of ``fn`` in ms after one warm-up call."""
    return paired_ms(fn, None, repeat)[0]


def paired_ms(fn: Callable[[], object], ref: Callable[[], object] | None, repeat: int) -> tuple[float, float]:
    """Medians of ``fn`` and ``ref`` timed alternately, so a shared machine's load hits both alike."""
    fn()
    if ref is not None:
        ref()
    ours, theirs = [], []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        ours.append((time.perf_counter() - t) * 1000)
        if ref is not None:
            t = time.perf_counter()
            ref()
            theirs.append((time.perf_counter() - t) * 1000)
    return statistics.median(ours), (statistics.median(theirs) if theirs else float("nan"))


def gaussian(n: int, sigma: float) -> np.ndarray:
    """A normalised 1-D Gaussian of ``n`` taps."""
    r = np.arange(n) - (n - 1) / 2
    g = np.exp(-(r**2) / (2 * sigma**2))
    return g / g.sum()


def main() -> None:
    """Run the workloads and print a table."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", default="")
    ap.add_argument("--all-methods", action="store_true")
    ap.add_argument("--methods", default="", help="comma-separated methods to time (default: auto)")
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    img8 = rng.integers(0, 256, size=(a.size, a.size, 3), dtype=np.uint8)
    x = img8.astype(np.float32)
    grey = x.mean(axis=2, dtype=np.float32)
    sharpen = np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], dtype=np.float64)
    box5 = np.full((5, 5), 1 / 25)
    g15 = np.outer(gaussian(15, 2.6), gaussian(15, 2.6))
    sobel_x = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64)
    g3 = np.outer([1, 2, 1], [1, 2, 1]) / 16
    r7 = rng.normal(size=(7, 7))
    r3, r5, r9, r15 = (rng.normal(size=(n, n)) for n in (3, 5, 9, 15))
    i5 = rng.integers(-2, 3, size=(5, 5)).astype(np.float64)
    w38 = rng.uniform(-1, 1, size=(8, 3, 3, 3))
    t = a.threads
    if cv2 is not None:
        cv2.setNumThreads(t)

    def ours(img: np.ndarray, k: np.ndarray, method: str, stride: int = 1, **kw: object) -> np.ndarray:
        p = (k.shape[0] - 1) // 2, k.shape[0] // 2, (k.shape[1] - 1) // 2, k.shape[1] // 2
        return correlate2d(img, k, pad=p, mode="reflection", stride=(stride, stride), method=method,
                           threads=t, **kw)

    def sobel_mag(method: str) -> np.ndarray:
        return gradient_magnitude(grey, sobel_x, sobel_x.T, pad=(1, 1, 1, 1), mode="reflection",
                                  method=method, threads=t)

    def sobel_hypot(method: str) -> np.ndarray:
        gx = ours(grey, sobel_x, method)
        gy = ours(grey, sobel_x.T.copy(), method)
        return np.hypot(gx, gy, out=gx)

    def conv38() -> np.ndarray:
        o = conv2d(x, w38, pad=(1, 1, 1, 1), threads=t)
        return np.maximum(o, 0, out=o)

    cvb = getattr(cv2, "BORDER_REFLECT_101", 4)

    def cv_sobel() -> np.ndarray:
        return cv2.magnitude(cv2.Sobel(grey, cv2.CV_32F, 1, 0, borderType=cvb),
                             cv2.Sobel(grey, cv2.CV_32F, 0, 1, borderType=cvb))

    def cv_conv38() -> np.ndarray:
        planes = [x[:, :, c] for c in range(3)]
        outs = []
        for o in range(8):
            acc = sum(cv2.filter2D(planes[c], -1, w38[o, c].astype(np.float32),
                                   borderType=cv2.BORDER_CONSTANT) for c in range(3))
            outs.append(np.maximum(acc, 0))
        return np.stack(outs, axis=-1)
    work: dict[str, tuple[Callable[[str], object], Callable[[], object] | None, np.ndarray | None]] = {
        "sharpen3": (lambda m: ours(x, sharpen, m), lambda: cv2.filter2D(x, -1, sharpen, borderType=cvb),
                     sharpen),
        "sharpen3-int": (lambda m: ours(x, sharpen, m, integer_input=True),
                         lambda: cv2.filter2D(x, -1, sharpen, borderType=cvb), sharpen),
        "box5": (lambda m: ours(x, box5, m), lambda: cv2.blur(x, (5, 5), borderType=cvb), box5),
        "gauss15": (lambda m: ours(x, g15, m),
                    lambda: cv2.GaussianBlur(x, (15, 15), 2.6, borderType=cvb), g15),
        "sobelmag": (sobel_mag, cv_sobel, sobel_x),
        "sobel-hypot": (sobel_hypot, cv_sobel, sobel_x),
        "stride2": (lambda m: ours(x, g3, m, stride=2),
                    lambda: cv2.filter2D(x, -1, g3, borderType=cvb)[::2, ::2], g3),
        "rand7": (lambda m: ours(x, r7, m), lambda: cv2.filter2D(x, -1, r7, borderType=cvb), r7),
        "rand3": (lambda m: ours(x, r3, m), lambda: cv2.filter2D(x, -1, r3, borderType=cvb), r3),
        "rand5": (lambda m: ours(x, r5, m), lambda: cv2.filter2D(x, -1, r5, borderType=cvb), r5),
        "rand9": (lambda m: ours(x, r9, m), lambda: cv2.filter2D(x, -1, r9, borderType=cvb), r9),
        "rand15": (lambda m: ours(x, r15, m), lambda: cv2.filter2D(x, -1, r15, borderType=cvb), r15),
        "int5": (lambda m: ours(x, i5, m), lambda: cv2.filter2D(x, -1, i5, borderType=cvb), i5),
        "conv3to8": (lambda m: conv38(), cv_conv38, None),
        "sharpen3-u8": (lambda m: ours(img8, sharpen, m),
                        lambda: cv2.filter2D(img8, -1, sharpen, borderType=cvb), sharpen),
        "box5-u8": (lambda m: ours(img8, box5, m), lambda: cv2.blur(img8, (5, 5), borderType=cvb), box5),
        "gauss15-u8": (lambda m: ours(img8, g15, m),
                       lambda: cv2.GaussianBlur(img8, (15, 15), 2.6, borderType=cvb), g15),
        "stride2-u8": (lambda m: ours(img8, g3, m, stride=2),
                       lambda: cv2.filter2D(img8, -1, g3, borderType=cvb)[::2, ::2], g3),
    }
    print(f"size {a.size}x{a.size}x3 float32, threads {t}, cv2 {getattr(cv2, '__version__', 'absent')}")
    for name, (fn, ref, k) in work.items():
        if (a.only and name not in a.only.split(",")) or (not a.only and name in ("rand3", "rand5", "rand9",
                                                                                   "rand15", "int5")):
            continue
        cv_ref = ref if cv2 is not None else None
        auto = choose_method(k, x.shape) if k is not None else "im2col"
        methods = [m for m in METHODS if m != "auto"] if (a.all_methods and k is not None) else ["auto"]
        if a.methods and k is not None:
            methods = a.methods.split(",")
        for m in methods:
            try:
                ms, cv_ms = paired_ms(lambda m=m, fn=fn: fn(m), cv_ref, a.repeat)
            except ValueError:
                continue
            label = f"{m}({auto})" if m == "auto" else m
            print(f"{name:13s} {label:20s} {ms:8.1f} ms   cv2 {cv_ms:7.1f} ms   ratio {ms / cv_ms:5.2f}")


if __name__ == "__main__":
    main()
