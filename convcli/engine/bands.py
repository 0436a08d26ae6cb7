"""Threads and bands: split the output into full-width horizontal bands, one task per band.

Every fast path works band by band: it asks a :class:`BandGather` for the padded input
rows one band of output needs (padding is applied per band, never to a copy of the whole
image), computes the band with NumPy ufuncs or BLAS (both release the GIL) and writes it
into its slice of the preallocated output. Bands of about :data:`DEFAULT_BAND_BYTES` per
array were measured fastest. Every NumPy call releases the GIL and takes it back, and on two
threads taking it back often means waiting for the other thread and being woken: with 1.5 MB
bands two threads ran a 3x3 sharpen of a 4096x4096 RGB image slower than one (~1,200 context
switches a call). Bigger bands make fewer calls; above ~6 MB a band's temporaries no longer
stay in the shared cache (benchmarks/ENGINE.md).

Settings arrive as arguments (``threads``, ``band_bytes``); nothing here is a mutable
module-level setting. ``threads=None`` means the cores this process may use, looked up at
the call (:func:`usable_cores`). What the module does keep is resources, never results: the
thread pools (one per size, made on first use and reused: starting one per call cost more than
a small band), each thread's scratch buffers (below), and the count of bands running while BLAS
is held to one thread (OpenBLAS's thread count is process-wide, so its save and restore are too).
The same inputs give the same outputs whatever these hold.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Final

import numpy as np

from convcli.core.padding import PadMode, source_rows
from convcli.errors import UsageError

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

#: Default target size in bytes of one band of the output (the ``band_bytes=`` argument).
DEFAULT_BAND_BYTES: Final[int] = 4_500_000

_pools: dict[tuple[str, int], ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()
_local = threading.local()


def scratch(name: str, shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
    """A reusable per-thread buffer of ``shape`` and ``dtype`` (contents undefined).

    Band temporaries come from here instead of fresh allocations: glibc returns freed
    multi-MB blocks to the OS and every new band then pays page faults again (measured:
    a 5x5 box on 4096x4096 RGB took 1.3 ms per band with fresh arrays, 0.35 ms reused).
    Each name is one buffer per thread; a caller must not hold two buffers of one name.
    """
    cache: dict[str, np.ndarray] | None = getattr(_local, "bufs", None)
    if cache is None:
        cache = _local.bufs = {}
    dt = np.dtype(dtype)
    need = math.prod(shape) * dt.itemsize  # (np.prod costs ~10 µs a call: 8 calls a band)
    raw = cache.get(name)
    if raw is None or raw.nbytes < need:
        raw = np.empty(max(need, 64), dtype=np.uint8)
        cache[name] = raw
    return raw[:need].view(dt).reshape(shape)


def pixels(a: np.ndarray) -> np.ndarray:
    """View (..., W, C) with contiguous channels as (..., W) items of C samples each.

    NumPy copies a strided (…, n, C) array one C-sample inner loop at a time; as whole
    pixels the inner loop runs over n (a stride-2 column split of RGB float32 measured
    0.41 ms per band as samples, 0.21 ms as pixels).
    """
    if a.shape[-1] == 1:
        return a[..., 0]
    return a.view(np.dtype((np.void, a.shape[-1] * a.itemsize)))[..., 0]


def split_phase(src: np.ndarray, name: str, p: int, step: int) -> np.ndarray:
    """Contiguous copy of columns p, p + step, ... of ``src`` (rows, W, C), in a scratch buffer."""
    view = src[:, p::step]
    dst = scratch(name, view.shape, src.dtype)
    pixels(dst)[...] = pixels(src)[:, p::step]
    return dst


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask where the platform has one)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def resolve_threads(threads: int | None) -> int:
    """Validate a ``threads=`` argument; None means :func:`usable_cores`, computed now."""
    if threads is None:
        return usable_cores()
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        msg = f"threads must be an integer >= 1, got {threads!r}"
        raise UsageError(msg)
    return threads


def shared_pool(threads: int, name: str = "band") -> ThreadPoolExecutor:
    """The pool of ``threads`` threads for ``name``'s tasks, made on first use and reused (starting one
    a call cost more than a small band). Each name has its own: the PNG writer ("png") compresses on
    its pool while the bands of the next rows run on theirs."""
    from concurrent.futures import ThreadPoolExecutor  # imported with the first pool: ~5 ms with logging

    with _pools_lock:
        pool = _pools.get((name, threads))
        if pool is None:
            pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=f"convcli-{name}")
            _pools[name, threads] = pool
        return pool


#: Calls with fewer multiply-adds than this run on one thread, whatever ``threads`` says: the
#: bands' results do not depend on it, and starting a pool costs more than it saves there (a 3x3
#: kernel on a 451x300 RGB image, 3.7 M multiply-adds, takes ~5 ms on one thread).
MIN_THREADED_WORK = 1 << 24


def worth_threads(threads: int, work: int) -> int:
    """``threads``, or 1 when ``work`` (multiply-adds, or samples touched) is below MIN_THREADED_WORK."""
    return threads if work >= MIN_THREADED_WORK else 1


#: Small images are still cut into this many bands, so that they use several threads.
MIN_BANDS = 4
#: Bands are at least HALO_FACTOR times the kernel's extra input rows (see core._Banded.band_height).
HALO_FACTOR = 3


def band_rows(out_h: int, row_bytes: int, band_bytes: int = DEFAULT_BAND_BYTES) -> int:
    """Output rows per band: about ``band_bytes`` per band, and at least MIN_BANDS bands.

    The split never depends on the thread count: every band is computed the same way
    whatever the number of threads, so one and several threads give bit-identical results.
    """
    if band_bytes < 1:
        msg = f"band_bytes must be >= 1, got {band_bytes}"
        raise UsageError(msg)
    rows = max(1, band_bytes // max(1, row_bytes))
    rows = min(rows, -(-out_h // MIN_BANDS))
    return max(1, min(rows, out_h))


def even_bands(out_h: int, rows: int) -> int:
    """``rows``, or fewer rows per band that cut ``out_h`` rows into an even number of bands.

    The next even count up (at most twice as many bands), with bands as equal as it allows.

    Threads take bands as they come free, so with few bands an odd count leaves one thread idle
    for the last band: 5 bands on 2 threads take 3 band-times instead of 2.5, 9 take 5 instead of
    4.5. Evening the count depends on the output's height only, never on the thread count.
    """
    n = -(-out_h // rows)
    if n <= 1 or n % 2 == 0:
        return rows
    for m in range(n + 1, 2 * n + 1):  # ceil(out_h / m): the shortest height giving <= m bands
        r = -(-out_h // m)
        if -(-out_h // r) % 2 == 0:
            return r
    return rows  # (a few rows only: 9 rows make 3, 5 or 9 bands, never an even count)


def spans(y0: int, y1: int, rows: int) -> list[tuple[int, int]]:
    """The bands of ``rows`` rows that cover [y0, y1), cut on the absolute grid 0, rows, 2*rows...

    A range that starts and ends on the grid is made of exactly the bands the whole
    output is made of, so its values are the whole output's, bit for bit.
    """
    first = y0 - y0 % rows
    return [(max(y, y0), min(y + rows, y1)) for y in range(first, y1, rows)]


def run_bands(fn: Callable[[int, int], None], parts: Sequence[tuple[int, int]], threads: int) -> None:
    """Call ``fn(y0, y1)`` for every band [y0, y1) of ``parts``, on ``threads`` threads.

    The calling thread is one of them: it takes bands from the same list as ``threads - 1``
    pool workers, instead of sleeping until each band's future is done and waking for the next
    (a third thread wanting the GIL between every pair of bands). Measured, two threads,
    interleaved medians: sharpen 4096² RGB 80.0 → 62.6 ms, Gaussian 15×15 232 → 197 ms;
    at 1024² box 6.2 → 4.7 ms, Gaussian 22.3 → 16.1 ms (benchmarks/ENGINE.md).

    Every band has finished (or, after a failure, been given up before it started) when this
    returns or raises: callers' output and scratch buffers stay in use until then. The first
    exception raised by any band is re-raised here.
    """
    if threads <= 1 or len(parts) <= 1:
        for y0, y1 in parts:
            fn(y0, y1)
        return
    todo = iter(parts)
    lock = threading.Lock()
    failed: list[BaseException] = []

    def take() -> tuple[int, int] | None:
        with lock:
            return None if failed else next(todo, None)

    def work() -> None:
        try:
            while (part := take()) is not None:
                fn(*part)
        except BaseException as exc:
            with lock:
                failed.append(exc)
            raise

    helpers = [shared_pool(threads - 1).submit(work) for _ in range(min(threads, len(parts)) - 1)]
    try:
        work()
    finally:
        for helper in helpers:
            helper.exception()  # waits for it; what it raised is in ``failed``
    if failed:
        raise failed[0]


def _copy(dst: np.ndarray, src: np.ndarray) -> None:
    """``dst[...] = src`` for (n, w, C) arrays, one channel at a time where ``src``'s pixels are not
    packed (e.g. the RGB of an RGBX buffer): NumPy would otherwise loop over runs of C samples
    (4096x4096 RGB of RGBX to float32: 89 ms whole, 23 ms channel by channel)."""
    channels = src.shape[2]
    if channels > 1 and src.strides[1] != channels * src.strides[2]:
        for c in range(channels):
            dst[:, :, c] = src[:, :, c]
    else:
        dst[...] = src


ColumnRun = tuple[slice, slice]


def column_runs(dst: np.ndarray, src: np.ndarray) -> list[ColumnRun]:
    """``a[:, dst] = a[:, src]`` as a few slice copies: runs of consecutive ``dst`` columns whose
    ``src`` columns step by a constant (mirrored padding steps by -1, circular by +1, border by 0).

    Fancy indexing copies a band's few padding columns through a gathered temporary, one item
    at a time (18 µs for 4 columns of a 126 x 1028 x 3 int16 band); slices copy in place.
    """
    runs: list[ColumnRun] = []
    i, n = 0, len(dst)
    while i < n:
        j = i + 1
        step = int(src[j] - src[i]) if j < n and dst[j] == dst[i] + 1 else 0
        while j < n and dst[j] == dst[j - 1] + 1 and src[j] - src[j - 1] == step:
            j += 1
        d0, s0, s1 = int(dst[i]), int(src[i]), int(src[j - 1])
        if step == 0:
            ss = slice(s0, s0 + 1)
        else:
            stop = s1 + (1 if step > 0 else -1)
            ss = slice(s0, None if stop < 0 else stop, step)
        runs.append((slice(d0, d0 + j - i), ss))
        i = j
    return runs


def copy_columns(a: np.ndarray, runs: list[ColumnRun]) -> None:
    """Apply :func:`column_runs` to ``a`` (rows, columns, ...)."""
    for d, s in runs:
        a[:, d] = a[:, s]


class BandGather:
    """Gathers padded bands of one image: the index work is done once per call, not per band.

    ``band(r0, r1)`` returns rows [r0, r1) and columns [0, width) of ``x`` (H, W, C)
    padded by ``mode`` as ``dtype``, in padded coordinates (row ``pad_top`` is the first
    real row). Only the band is materialised; the conversion to ``dtype`` happens in the
    copy. Per band this is a handful of NumPy calls, which matters because Python between
    calls holds the GIL that the other bands' threads are waiting for.
    """

    def __init__(self, x: np.ndarray, pad_top: int, pad_left: int, width: int, mode: PadMode,
                 dtype: np.dtype) -> None:
        h, w, _ = x.shape
        self.x, self.pad_top, self.width, self.dtype, self.mode = x, pad_top, width, np.dtype(dtype), mode
        csrc, cvalid = source_rows(np.arange(-pad_left, width - pad_left), w, mode)
        self.col_index = (csrc, cvalid)
        c0, c1 = max(0, pad_left), min(width, pad_left + w)
        if c0 >= c1:
            c0 = c1 = 0
        self.c0, self.c1, self.s0 = c0, c1, c0 - pad_left
        self.edge_cols = np.r_[0:c0, c1:width].astype(np.intp)
        self.edge_src = csrc[self.edge_cols]
        bsrc = self.edge_src + pad_left  # where the source columns sit in a band
        self.from_band = bool(c0 < c1 and (bsrc.size == 0 or (bsrc.min() >= c0 and bsrc.max() < c1)))
        self.edge_bsrc = bsrc
        self.zero_cols = None if cvalid is None else self.edge_cols[~cvalid[self.edge_cols]]
        copied = np.ones(self.edge_cols.size, bool) if cvalid is None else cvalid[self.edge_cols]
        self.edge_runs = column_runs(self.edge_cols[copied], bsrc[copied]) if self.from_band else []
        zero = self.zero_cols if self.zero_cols is not None else self.edge_cols[:0]
        self.zero_runs = [d for d, _ in column_runs(zero, zero)]
        self.h = h

    def band(self, r0: int, r1: int) -> np.ndarray:
        """The padded band of rows [r0, r1) (a per-thread scratch buffer)."""
        x, c0, c1, s0 = self.x, self.c0, self.c1, self.s0
        n = r1 - r0
        out = scratch("band", (n, self.width, x.shape[2]), self.dtype)
        first = r0 - self.pad_top  # image row of the band's first row
        lo = min(n, max(0, -first))
        hi = max(lo, min(n, self.h - first))
        # Where the band's rows read from, and which are zeros: only for a band that reaches into
        # the padding rows or gathers its padding columns from the image (the whole image's, for
        # a 1-pixel-wide image of 80 million rows, held 640 MB of indices).
        rsrc = rvalid = None
        if lo > 0 or hi < n or (self.edge_cols.size and not self.from_band):
            rsrc, rvalid = source_rows(np.arange(first, first + n), self.h, self.mode)
        if c0 < c1:
            if lo < hi:
                _copy(out[lo:hi, c0:c1], x[first + lo : first + hi, s0 : s0 + (c1 - c0)])
            if lo > 0:
                _copy(out[:lo, c0:c1], x[rsrc[:lo], s0 : s0 + (c1 - c0)])
            if hi < n:
                _copy(out[hi:, c0:c1], x[rsrc[hi:], s0 : s0 + (c1 - c0)])
        if self.edge_cols.size:
            if self.from_band:
                copy_columns(out, self.edge_runs)  # mirrored/wrapped from the band
            else:
                out[:, self.edge_cols] = x[rsrc[:, None], self.edge_src[None, :]]
            for d in self.zero_runs:
                out[:, d] = 0
        if rvalid is not None:
            out[~rvalid] = 0
        return out


# ---------------------------------------------------------------- BLAS threads
# OpenBLAS threads every sgemm by default; the per-band products here are small, and
# several bands call it at once, so its own threads only oversubscribe the cores
# (measured: a 32x46 @ 46x12330 band product 0.34 ms single-threaded, 5.3 ms threaded).
# While bands run, BLAS is set to one thread per call through its C API, then restored.

_blas_lock = threading.Lock()
_blas_depth = 0
_blas_saved = 1
_blas_api: tuple[Callable[[int], None], Callable[[], int]] | None | bool = False


def _find_blas() -> tuple[Callable[[int], None], Callable[[], int]] | None:
    import ctypes

    try:
        with open("/proc/self/maps") as f:
            paths = sorted({ln.split()[-1] for ln in f if "openblas" in ln.lower() and "/" in ln})
    except OSError:
        return None
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix in (("scipy_openblas_", "64_"), ("scipy_openblas_", ""), ("openblas_", "64_"),
                               ("openblas_", "")):
            setter = getattr(lib, f"{prefix}set_num_threads{suffix}", None)
            getter = getattr(lib, f"{prefix}get_num_threads{suffix}", None)
            if setter is not None and getter is not None:
                setter.argtypes, setter.restype = [ctypes.c_int], None
                getter.argtypes, getter.restype = [], ctypes.c_int
                return setter, getter
    return None


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Run the body with OpenBLAS limited to one thread per call (no-op if it cannot be found)."""

    global _blas_depth, _blas_saved, _blas_api
    with _blas_lock:
        if _blas_api is False:
            _blas_api = _find_blas()
        api = _blas_api if isinstance(_blas_api, tuple) else None
        if api is not None and _blas_depth == 0:
            _blas_saved = api[1]()
            api[0](1)
        _blas_depth += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_depth -= 1
            if api is not None and _blas_depth == 0:
                api[0](_blas_saved)
