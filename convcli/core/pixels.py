"""Floats back to pixels: the one place that maps float results to uint8/uint16 by a --range policy."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from convcli.core.records import record
from convcli.errors import UsageError

#: Bytes of float64 rows :func:`to_pixels` handles at a time (the default of its ``band_bytes``).
BAND_BYTES = 3 << 19  # 1.5 MiB
#: Arrays of fewer samples are converted on one thread: a pool costs more than it saves
#: there (451x300 RGB, 0.4 M samples: ~1.5 ms on one thread).
MIN_THREADED_SAMPLES = 1 << 21


@record(frozen=True)
class RangeStats:
    """What quantisation did: the policy, float min/max before it, fraction of samples clipped."""

    policy: str
    min: float
    max: float
    clipped_fraction: float


RANGE_POLICIES: tuple[str, ...] = ("clip", "abs", "normalize")
_PIXEL_DTYPES = {8: np.uint8, 16: np.uint16}


def _maxval(bit_depth: int) -> int:
    if bit_depth not in _PIXEL_DTYPES:
        msg = f"bit depth must be 8 or 16, not {bit_depth}"
        raise UsageError(msg)
    return (1 << bit_depth) - 1


def _bands(values: np.ndarray, band_bytes: int) -> Iterator[slice]:
    """Slices of the first axis holding about ``band_bytes`` of float64 each."""
    rows = values.shape[0]
    step = max(1, band_bytes // max(1, values[0].size * 8))
    for start in range(0, rows, step):
        yield slice(start, min(rows, start + step))


def check_policy(policy: str) -> None:
    """UsageError unless ``policy`` is one of :data:`RANGE_POLICIES`."""
    if policy not in RANGE_POLICIES:
        msg = f"unknown range policy {policy!r} (choose from {', '.join(RANGE_POLICIES)})"
        raise UsageError(msg)


def to_pixels(values: np.ndarray, policy: str, bit_depth: int, *, threads: int = 1,
              band_bytes: int = BAND_BYTES, out: np.ndarray | None = None) -> tuple[np.ndarray, RangeStats]:
    """Float array (H, W) or (H, W, C) -> uint8/uint16 by a --range policy, band by band.

    ``clip`` and ``abs`` run their bands on ``threads`` threads (NumPy releases the GIL;
    the numbers do not depend on the count). ``out``, if given, is an array (or view) of
    ``values``' shape and the pixel dtype to write into (streaming writes each chunk
    straight into its rows of the whole image); it is returned.

    ``clip``: round half to even, clip to [0, maxval]. ``abs``: |x|, then the same.
    ``normalize``: finite min..max mapped onto 0..maxval (a constant image gives 0).
    NaN becomes 0 and counts as clipped; ±inf clips to the ends.
    """
    check_policy(policy)
    maxval = _maxval(bit_depth)
    values = np.asarray(values)
    if values.ndim < 2:
        msg = f"to_pixels needs an (H, W) or (H, W, C) array, not {values.shape}"
        raise ValueError(msg)
    if out is None:
        out = np.empty(values.shape, dtype=_PIXEL_DTYPES[bit_depth])
    elif out.shape != values.shape or out.dtype != _PIXEL_DTYPES[bit_depth]:
        want = np.dtype(_PIXEL_DTYPES[bit_depth])
        msg = f"out must be {want} of shape {values.shape}, got {out.dtype} {out.shape}"
        raise ValueError(msg)
    if values.size == 0:
        return out, RangeStats(policy, 0.0, 0.0, 0.0)

    if policy != "normalize":
        return out, _to_pixels_local(values, out, policy, maxval, threads, band_bytes)

    lo = hi = None  # over non-NaN values (reported)
    flo = fhi = None  # over finite values (normalize)
    for band in _bands(values, band_bytes):
        v = np.asarray(values[band], dtype=np.float64)
        notnan = v[~np.isnan(v)]
        if notnan.size:
            lo = min(lo, notnan.min()) if lo is not None else notnan.min()
            hi = max(hi, notnan.max()) if hi is not None else notnan.max()
        if policy == "normalize":
            fin = notnan[np.isfinite(notnan)]
            if fin.size:
                flo = min(flo, fin.min()) if flo is not None else fin.min()
                fhi = max(fhi, fin.max()) if fhi is not None else fin.max()

    changed = 0
    for band in _bands(values, band_bytes):
        v = np.asarray(values[band], dtype=np.float64)
        nan = np.isnan(v)
        if policy == "normalize":
            if flo is None or fhi is None or fhi == flo:
                v = np.zeros_like(v)
            else:
                with np.errstate(invalid="ignore", over="ignore"):
                    v = (v - flo) * (maxval / (fhi - flo))
            changed += int(np.count_nonzero(nan | np.isinf(v)))
        else:
            if policy == "abs":
                v = np.abs(v)
            v = np.rint(v)
            changed += int(np.count_nonzero(nan | (v < 0) | (v > maxval)))
        v[nan] = 0.0
        np.clip(v, 0, maxval, out=v)
        out[band] = np.rint(v)
    stats = RangeStats(
        policy,
        float(lo) if lo is not None else math.nan,
        float(hi) if hi is not None else math.nan,
        changed / values.size,
    )
    return out, stats


#: The policies that map each sample on its own (``normalize`` needs the whole image's range).
LOCAL_POLICIES: tuple[str, ...] = ("clip", "abs")


@record(frozen=True)
class PixelSpec:
    """What an engine call that writes pixels writes: a local --range policy (``clip`` or ``abs``),
    a bit depth (8 or 16) and a factor applied to the float values first (another output depth)."""

    policy: str = "clip"
    bits: int = 8
    rescale: float = 1.0

    def __post_init__(self) -> None:
        if self.policy not in LOCAL_POLICIES:
            msg = (f"range policy {self.policy!r} cannot be applied band by band "
                   f"(choose from {', '.join(LOCAL_POLICIES)})")
            raise UsageError(msg)
        _maxval(self.bits)

    @property
    def maxval(self) -> int:
        return (1 << self.bits) - 1

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(_PIXEL_DTYPES[self.bits])


#: One band's share of RangeStats: non-NaN min and max (None: the band is all NaN) and clipped count.
BandStats = tuple[float | None, float | None, int]


def pixels_band(values: np.ndarray, out: np.ndarray, policy: str, maxval: int,
                work: np.ndarray | None = None) -> BandStats:
    """clip/abs of one band into ``out``; returns the band's non-NaN min, max and clipped count.

    Works in the band's own float type: rounding a float32 to the nearest integer in float32
    gives the integer float64 gives (every float32 of magnitude >= 2**23 is an integer already),
    so the numbers are the definition's. A band with no NaN whose rounded range fits is written
    in two passes (min/max, then round-and-cast); others take the counting path. ``work``, if
    given, is a buffer of the band's shape and float dtype for the rounded values (``values``
    itself may be passed: it is then overwritten); else one is allocated.
    """
    v = np.asarray(values)
    if v.dtype != np.float32 and v.dtype != np.float64:
        v = v.astype(np.float64)
    lo, hi = v.min(), v.max()
    if np.isnan(lo) or np.isnan(hi):
        return _local_band_nan(v, out, policy, maxval)
    if work is None or work.dtype != v.dtype or work.shape != v.shape:
        work = np.empty_like(v)
    if policy == "abs":
        np.abs(v, out=work)
        v = work
        top = max(abs(lo), abs(hi))
        bottom = 0.0 if lo <= 0.0 <= hi else min(abs(lo), abs(hi))
    else:
        top, bottom = hi, lo
    r = np.rint(v, out=work)
    changed = 0
    if np.rint(bottom) < 0 or np.rint(top) > maxval:
        changed = int(np.count_nonzero(r < 0)) + int(np.count_nonzero(r > maxval))
        np.clip(r, 0, maxval, out=r)
    out[...] = r
    return float(lo), float(hi), changed


def integer_pixels_band(acc: np.ndarray, out: np.ndarray, policy: str, maxval: int,
                        work: np.ndarray | None = None) -> BandStats:
    """:func:`pixels_band` of the float values of an integer array ``acc`` (exact integers, as the
    engine's int16 path sums them), without converting to float: the same pixels and stats,
    since rounding an integer is the identity. ``work``: a scratch of ``acc``'s shape and dtype."""
    lo, hi = int(acc.min()), int(acc.max())
    if work is None or work.shape != acc.shape or work.dtype != acc.dtype:
        work = np.empty_like(acc)
    v = acc
    if policy == "abs":
        if lo < 0:
            v = np.abs(acc, out=work)
        top = max(abs(lo), abs(hi))
        bottom = 0 if lo <= 0 <= hi else min(abs(lo), abs(hi))
    else:
        top, bottom = hi, lo
    changed = 0
    if bottom < 0 or top > maxval:
        changed = _outside(v, maxval)
        v = np.clip(v, 0, min(maxval, np.iinfo(acc.dtype).max), out=work)
    out[...] = v
    return float(lo), float(hi), changed


def _outside(v: np.ndarray, maxval: int) -> int:
    """How many integers of ``v`` lie outside [0, maxval].

    For a signed type holding maxval, one comparison of the unsigned view counts both sides
    (a negative value reads as 2**bits - |value| > maxval): 102 µs against 208-290 µs for two
    comparisons and two counts, per band of 91 rows of a 4096-pixel RGB image.
    """
    if v.dtype.kind == "i" and maxval <= np.iinfo(v.dtype).max:
        return int(np.count_nonzero(v.view(np.dtype(f"u{v.dtype.itemsize}")) > maxval))
    return int(np.count_nonzero(v < 0)) + int(np.count_nonzero(v > maxval))


def merge_stats(parts: list[BandStats], policy: str, size: int) -> RangeStats:
    """The RangeStats of a whole array from its bands' :data:`BandStats` (exact: min, max, counts)."""
    los = [p[0] for p in parts if p[0] is not None]
    his = [p[1] for p in parts if p[1] is not None]
    return RangeStats(
        policy,
        float(min(los)) if los else math.nan,  # every value NaN: no range (null in JSON), not 0..0
        float(max(his)) if his else math.nan,
        sum(p[2] for p in parts) / size if size else 0.0,
    )


def _local_band_nan(v: np.ndarray, out: np.ndarray, policy: str, maxval: int) -> BandStats:
    """The band has NaN: they become 0 and count as clipped; min/max are over the rest."""
    nan = np.isnan(v)
    notnan = v[~nan]
    lo, hi = (float(notnan.min()), float(notnan.max())) if notnan.size else (None, None)
    r = np.rint(np.abs(v) if policy == "abs" else v)
    changed = int(np.count_nonzero(nan | (r < 0) | (r > maxval)))
    r[nan] = 0.0
    np.clip(r, 0, maxval, out=r)
    out[...] = r
    return lo, hi, changed


def _to_pixels_local(values: np.ndarray, out: np.ndarray, policy: str, maxval: int, threads: int,
                     band_bytes: int) -> RangeStats:
    """The clip and abs policies (each sample on its own): one pass per band, bands on
    ``threads`` threads; the same numbers as one thread."""
    spans = list(_bands(values, band_bytes))
    threads = min(threads, len(spans)) if values.size >= MIN_THREADED_SAMPLES else 1
    if threads > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(threads, thread_name_prefix="convcli-pixels") as pool:
            parts = list(pool.map(lambda b: pixels_band(values[b], out[b], policy, maxval), spans))
    else:
        parts = [pixels_band(values[b], out[b], policy, maxval) for b in spans]
    return merge_stats(parts, policy, values.size)
