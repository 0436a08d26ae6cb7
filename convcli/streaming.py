"""One window stage straight to pixels, chunk by chunk: no whole-image float arrays.

The common command -- one depthwise filter (``filter``, ``blur``, ``edges``,
``downsample``) from an 8/16-bit image to an 8/16-bit image with ``--range clip`` or
``abs`` -- needs no float copy of the whole image: the engine computes one chunk of
output rows at a time from the integer input (``correlate_pixels``/``gradient_pixels``
with ``rows=``, its own per-band gather and padding), and each band is converted to pixels
by the range policy inside its worker (:func:`convcli.core.pixels.pixels_band`, the code
``to_pixels`` runs) straight into the preallocated output. Peak memory is then the integer
input, the integer output and one band's temporaries per thread.

What is bit-identical, and what is not:

- Chunks are cut at multiples of the engine's band height (:meth:`WindowStage.band_height`),
  so every chunk is made of exactly the bands a whole-image call on the same input array
  computes: the streamed pixels equal ``to_pixels(stage.run(x) * rescale)`` on that array
  bit for bit, for every kernel, method (``fft`` included), chunk size and thread count.
- The whole-image command path (:meth:`Pipeline.run`) converts the pixels to float first.
  Streaming hands the engine the decoded uint8 array, so for 8-bit input (not ``--gray``)
  the engine takes its exact int16 path (:mod:`convcli.engine.intpath`) where the kernel is
  an integer kernel, or one times a scale, with ``sum(|k|) * 255 <= 32767``. Integer
  kernels (sharpen, Laplacian, Sobel...) are exact on both paths: the same pixels. Scaled
  ones (box, 3x3 binomial) are exact here and summed in float32 on the whole-image path:
  values may differ in the last bit there, and a pixel on a rounding tie by one level;
  streaming gives the correctly rounded one. Every other case (16-bit input, ``--gray``,
  kernels without such an integer form, such as the Gaussians of ``blur``) runs the same
  float arithmetic on the same bands: the same pixels.

Pure NumPy: no I/O.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Final

import numpy as np

from convcli.core.pixels import LOCAL_POLICIES, BandStats, PixelSpec, RangeStats, merge_stats
from convcli.pipeline import CorrelateStage, EngineOptions, GradientStage, Pipeline, WindowStage

#: Default target bytes of one chunk's float output; the engine's bands and to_pixels'
#: temporaries within it are smaller (4096x4096 RGB, 15x15 Gaussian: see stream_stage).
DEFAULT_CHUNK_BYTES: Final[int] = 8 << 20


def window_stage(pipeline: Pipeline) -> WindowStage | None:
    """The pipeline's only stage if it is a depthwise CorrelateStage or GradientStage, else None."""
    if len(pipeline.stages) != 1:
        return None
    stage = pipeline.stages[0]
    return stage if isinstance(stage, CorrelateStage | GradientStage) else None


def can_stream(stage: WindowStage | None, shape: tuple[int, int, int], policy: str) -> bool:
    """Whether :func:`stream_stage` can compute this stage on an (H, W, C) image with this policy."""
    return stage is not None and policy in LOCAL_POLICIES and shape[2] in (1, 3)


def chunk_rows(band: int, out_w: int, channels: int, dtype: np.dtype, chunk_bytes: int,
               threads: int = 1) -> int:
    """Output rows per chunk: a multiple of the engine's ``band`` rows, about ``chunk_bytes`` of
    floats, and at least two bands per thread when there are several (the threads wait for each
    other at the end of every chunk: one band a chunk would leave all but one idle)."""
    target = max(1, chunk_bytes // max(1, out_w * channels * dtype.itemsize))
    return max(1, target // band, 2 * threads if threads > 1 else 1) * band


def pixel_array(stage: WindowStage, shape: tuple[int, ...], bits: int) -> np.ndarray:
    """The (H', W', C) pixel array :func:`stream_stage` fills for an (H, W[, C]) input."""
    h, w, c = (*shape[:2], shape[2] if len(shape) == 3 else 1)
    _, oh, ow = stage.out_shape((c, h, w))
    return np.empty((oh, ow, c), dtype=np.uint16 if bits == 16 else np.uint8)


def stream_stage(x: np.ndarray, stage: WindowStage, eng: EngineOptions, *, policy: str, bits: int,
                 threads: int, rescale: float = 1.0,
                 chunk_bytes: int = DEFAULT_CHUNK_BYTES,
                 ready: Callable[[int], None] | None = None, done: Callable[[int], None] | None = None,
                 out: np.ndarray | None = None) -> tuple[np.ndarray, RangeStats]:
    """``to_pixels(stage.run(x) * rescale, policy, bits)`` computed chunk by chunk.

    ``x`` is (H, W) or (H, W, C) on the stored scale, any numeric dtype (uint8/uint16 as
    decoded: the engine converts each band as it gathers it). ``threads`` is the thread
    count of the engine (it replaces ``eng.threads``); ``chunk_bytes`` the size of one chunk's
    output as floats (chunks are the units the input must be ready for; no chunk of floats
    is written: the bands go straight to pixels). ``ready(n)``, if given, is called before
    each chunk with the number of leading input rows the chunk reads, and returns once they
    are there (rows of an image still being decoded: :func:`convcli.io.decode.read_rows`);
    ``done(n)``, if given, is called after each chunk with the number of output rows now
    final (for a writer compressing them on another thread). ``out``, if given, is the
    pixel array to fill (from :func:`pixel_array`), so that such a writer can hold it first.
    Returns the pixels ((H', W') for one channel, else (H', W', C)) and the stats merged
    over every band (exactly: min, max and clipped counts).
    """
    if x.ndim == 2:
        x = x[:, :, None]
    h, w, c = x.shape
    if not can_stream(stage, (h, w, c), policy):
        msg = f"stage {stage.op} with --range {policy} on {c} channels cannot be streamed"
        raise ValueError(msg)
    band_eng = dataclasses.replace(eng, threads=threads)
    _, oh, ow = stage.out_shape((c, h, w))
    rows = chunk_rows(stage.band_height(x, band_eng), ow, c, np.dtype(eng.dtype), chunk_bytes, threads)
    pixels = pixel_array(stage, (h, w, c), bits) if out is None else out.reshape(oh, ow, c)
    spec = PixelSpec(policy, bits, rescale)
    parts: list[BandStats] = []
    for y0 in range(0, oh, rows):
        y1 = min(oh, y0 + rows)
        if ready is not None:
            ready(stage.input_rows(y0, y1, h))
        # The engine converts each band to pixels in its worker, into these rows of the image.
        stage.run_pixels(x, band_eng, spec, rows=(y0, y1), out=pixels[y0:y1], band_stats=parts)
        if done is not None:
            done(y1)
    return (pixels[:, :, 0] if c == 1 else pixels), merge_stats(parts, policy, pixels.size)
