"""One window stage straight to pixels, band by band: no whole-image float arrays.

The common command -- one depthwise filter (``filter``, ``blur``, ``edges``,
``downsample``) from an 8/16-bit image to an 8/16-bit image with ``--range clip`` or
``abs`` -- needs no float copy of the whole image: each horizontal band of output rows
is computed from the input rows it reads (padded rows gathered with
:func:`convcli.core.padding.source_rows`), converted to pixels with
:func:`convcli.to_pixels` and written into the preallocated output. Peak memory
is then the integer input, the integer output and one band's temporaries.

The numbers are the ones :meth:`Pipeline.run` + ``to_pixels`` give, bit for bit, only
where the engine's float sums are exact: integer kernels whose partial sums stay below
2**24 in float32 (sharpen, Laplacian, Sobel/Prewitt/Scharr edges...), any method but
``fft``. Other kernels (Gaussian, box) are not streamed by default: the engine's float32
results depend in the last bit on where its internal bands and GEMM chunks start, so a
banded run differs from the whole-image run by 1 ulp in many samples, and by one level in
the rare pixel that sits on a rounding tie (4096x4096 RGB, Gaussian 15x15: 38 of 50M
samples). :data:`STREAM_INEXACT` turns streaming on for them too.

Pure NumPy: no I/O.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np

from convcli.core.padding import source_rows
from convcli.core.pixels import RangeStats, to_pixels
from convcli.engine import choose_method
from convcli.pipeline import CorrelateStage, EngineOptions, GradientStage, Pipeline, WindowStage

#: Range policies that map each sample on its own (normalize needs the whole image's range).
LOCAL_POLICIES: tuple[str, ...] = ("clip", "abs")
#: Stream kernels whose sums are not exact too (last-bit float32 differences, see above).
STREAM_INEXACT: bool = True
#: Largest integer float32 holds exactly: integer sums below it are the same in any order.
EXACT_SUM_LIMIT = float(1 << 24)
#: Target bytes of one band's float output; the input band and to_pixels' temporaries are
#: of the same order (4096x4096 RGB, 15x15 Gaussian: see stream_stage's docstring).
BAND_BYTES: int = 8 << 20


def window_stage(pipeline: Pipeline) -> WindowStage | None:
    """The pipeline's only stage if it is a depthwise CorrelateStage or GradientStage, else None."""
    if len(pipeline.stages) != 1:
        return None
    stage = pipeline.stages[0]
    return stage if isinstance(stage, CorrelateStage | GradientStage) else None


def _kernels(stage: WindowStage) -> list[np.ndarray]:
    if isinstance(stage, CorrelateStage):
        return [stage.weights]
    assert isinstance(stage, GradientStage) and stage.kx is not None and stage.ky is not None
    return [stage.kx.weights, stage.ky.weights]


def band_method(stage: WindowStage, shape: tuple[int, int, int], eng: EngineOptions, maxval: float,
                integer_input: bool = True) -> str | None:
    """The engine method to force on every band (the one the whole image gets), or None when
    banding could change the numbers (see the module docstring). ``integer_input``: the
    samples are whole numbers 0..maxval (not grey computed from colour)."""
    h, w, c = shape
    kernels = [k[::-1, ::-1] if stage.flip else k for k in _kernels(stage)]
    chosen = {eng.method if eng.method != "auto" else
              choose_method(k, (h, w, c), stage.stride, stage.dilation, np.dtype(eng.dtype), False)
              for k in kernels}
    if len(chosen) != 1:
        return None
    method = chosen.pop()
    if method == "fft":
        return None
    if STREAM_INEXACT or (integer_input and all(exact_sums(k, maxval) for k in kernels)):
        return method
    return None


def exact_sums(kernel: np.ndarray, maxval: float) -> bool:
    """True if every partial sum of ``kernel`` over samples 0..maxval is an integer float32 holds
    exactly (so any summation order, band split or method gives the same float32 result)."""
    k = np.asarray(kernel, dtype=np.float64)
    return bool(np.all(k == np.round(k)) and float(np.abs(k).sum()) * maxval < EXACT_SUM_LIMIT)


def can_stream(stage: WindowStage | None, shape: tuple[int, int, int], eng: EngineOptions,
               policy: str, maxval: float, integer_input: bool = True) -> bool:
    """Whether :func:`stream_stage` reproduces the whole-image path for this stage and policy."""
    return (stage is not None and policy in LOCAL_POLICIES and shape[2] in (1, 3)
            and band_method(stage, shape, eng, maxval, integer_input) is not None)


def band_rows(stage: WindowStage, out_w: int, channels: int, dtype: np.dtype) -> int:
    """Output rows per band: about BAND_BYTES of float output, at least one row."""
    return max(1, BAND_BYTES // max(1, out_w * channels * dtype.itemsize))


def _spans(out_h: int, rows: int) -> Iterator[tuple[int, int]]:
    for y0 in range(0, out_h, rows):
        yield y0, min(out_h, y0 + rows)


def input_band(x: np.ndarray, stage: WindowStage, y0: int, y1: int, dtype: np.dtype) -> np.ndarray:
    """The (row-padded) input rows output rows [y0, y1) read, as ``dtype``, all columns."""
    (kh, _), (sy, _), (dy, _) = stage.ksize(), stage.stride, stage.dilation
    top = stage.pad[0]
    r0, r1 = y0 * sy - top, (y1 - 1) * sy + (kh - 1) * dy + 1 - top
    if r0 >= 0 and r1 <= x.shape[0]:
        return x[r0:r1].astype(dtype)
    src, valid = source_rows(np.arange(r0, r1), x.shape[0], stage.padding)
    band = x[src].astype(dtype)
    if valid is not None:
        band[~valid] = 0
    return band


@dataclasses.dataclass
class _Stats:
    """RangeStats merged over bands: min, max, and the clipped count over all samples."""

    lo: float | None = None
    hi: float | None = None
    changed: int = 0
    size: int = 0

    def add(self, s: RangeStats, size: int, has_values: bool) -> None:
        if has_values:
            self.lo = s.min if self.lo is None else min(self.lo, s.min)
            self.hi = s.max if self.hi is None else max(self.hi, s.max)
        self.changed += round(s.clipped_fraction * size)
        self.size += size

    def result(self, policy: str) -> RangeStats:
        frac = self.changed / self.size if self.size else 0.0
        return RangeStats(policy, self.lo if self.lo is not None else 0.0,
                          self.hi if self.hi is not None else 0.0, frac)


def stream_stage(x: np.ndarray, stage: WindowStage, eng: EngineOptions, *, policy: str, bits: int,
                 maxval: float, rescale: float = 1.0) -> tuple[np.ndarray, RangeStats]:
    """``to_pixels(stage.run(x) * rescale, policy, bits)`` computed band by band.

    ``x`` is (H, W, C) on the stored scale (largest value ``maxval``), any numeric dtype
    (uint8/uint16 as decoded).
    Returns the pixels ((H', W') for one channel, else (H', W', C)) and the merged stats.
    Bands of BAND_BYTES = 8 MiB float32 output measured as fast as 4 or 16 MiB on 4096²
    RGB (within noise) while keeping a band's temporaries around 40 MB.
    """
    if x.ndim == 2:
        x = x[:, :, None]
    h, w, c = x.shape
    method = band_method(stage, (h, w, c), eng, maxval, x.dtype.kind in "ub")
    if method is None:
        msg = f"stage {stage.op} cannot be computed in bands with method {eng.method!r}"
        raise ValueError(msg)
    dt = np.dtype(eng.dtype)
    band_eng = dataclasses.replace(eng, method=method)
    band_stage = dataclasses.replace(stage, pad=(0, 0, stage.pad[2], stage.pad[3]))
    _, oh, ow = stage.out_shape((c, h, w))
    pixels = np.empty((oh, ow, c), dtype=np.uint16 if bits == 16 else np.uint8)
    stats = _Stats()
    for y0, y1 in _spans(oh, band_rows(stage, ow, c, dt)):
        values = band_stage.run(input_band(x, stage, y0, y1, dt), band_eng)
        if values.shape != (y1 - y0, ow, c):  # an engine bug, never a user error
            msg = f"band of stage {stage.op} came out {values.shape}, expected {(y1 - y0, ow, c)}"
            raise AssertionError(msg)
        if rescale != 1.0:
            values = values * rescale
        pix, s = to_pixels(values[:, :, 0] if c == 1 else values, policy, bits)
        pixels[y0:y1] = pix.reshape(y1 - y0, ow, c)
        empty = s.min == s.max == 0.0 and bool(np.isnan(values).all())  # to_pixels' all-NaN answer
        stats.add(s, values.size, not empty)
    return (pixels[:, :, 0] if c == 1 else pixels), stats.result(policy)
