"""Stages and pipelines: shapes predicted from a header, then pixels pushed through on float32.

A ``Pipeline`` is a tuple of frozen stages. ``plan()`` predicts every stage's
NCHW shapes, arithmetic, receptive field and jump from (C, H, W) alone, which is
what ``--dry-run`` and the report use; ``run()`` then computes the pixels and
checks that each stage produced the shape that was predicted.

Pure NumPy: no I/O, no click.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import field
from typing import Any

import numpy as np

from convcli.core import color
from convcli.core.kernels import (
    MAX_KERNEL_SIZE,
    Kernel,
    check_sigma,
    gaussian_kernel,
    rotate180,
    size_for_sigma,
    size_text,
    sums_to_zero,
)
from convcli.core.padding import MODES, PadMode, resolve_mode, source_rows, torch_pad_note
from convcli.core.pixels import BandStats, PixelSpec
from convcli.core.records import record
from convcli.core.shapes import Geometry, GeometrySpec, Pad4, Pair, receptive_field
from convcli.engine import (
    band_height,
    conv2d,
    conv2d_plan,
    correlate2d,
    correlate_pixels,
    gradient_magnitude,
    gradient_pixels,
)
from convcli.errors import UsageError

Shape3 = tuple[int, int, int]  # C, H, W

#: Random conv weights are drawn for at most this many values (out x in x kh x kw; 512 MiB of float32).
MAX_CONV_WEIGHTS = 1 << 27
#: A stage's padded input may hold at most this many times --max-pixels (the engine pads a copy).
PADDED_FACTOR = 4
#: A clip that cuts more than this fraction of a zero-sum kernel's samples gets a note.
CLIP_HINT_FRACTION = 0.10


@record(frozen=True)
class EngineOptions:
    """How the engine computes: arithmetic dtype, method, threads, band size.

    ``threads`` None: every core this process may use (looked up by the engine at each
    call). ``band_bytes`` None: each engine function's own default band size.
    """

    dtype: str = "float32"
    method: str = "auto"
    threads: int | None = None
    band_bytes: int | None = None

    @property
    def np_dtype(self) -> np.dtype:
        return np.dtype(self.dtype)


@record(frozen=True)
class Stage:
    """Base of all stages. Subclasses set ``op`` and implement the three methods below."""

    op: str

    #: whether the alpha channel goes through this stage with the colour (depthwise filters)
    carries_alpha: bool = field(default=False, init=False)

    def geometry(self) -> Geometry:
        """Where the stage's kernel moves (1x1, stride 1 for point-wise stages)."""
        return Geometry(ksize=(1, 1))

    def out_shape(self, shape: Shape3) -> Shape3:
        c, h, w = shape
        return c, h, w

    def run(self, x: np.ndarray, eng: EngineOptions) -> np.ndarray:  # (H, W, C) -> (H', W', C')
        raise NotImplementedError

    #: a point-wise stage (gray, relu) has no kernel window: no size, stride, dilation or arithmetic
    pointwise: bool = field(default=True, init=False)

    def shown_shape(self, shape: Shape3) -> list[int]:
        """The output shape as the report prints it: NCHW (``flatten`` prints [1, C*H*W])."""
        return nchw(shape)

    def describe(self) -> dict[str, Any]:
        """The stage's fields for the report (without shapes); None where a point-wise stage has none."""
        if self.pointwise:
            return {"op": self.op, "kernel": None, "kernel_size": None, "stride": None, "dilation": None,
                    "padding": None, "pad": None}
        g = self.geometry()
        return {
            "op": self.op,
            "kernel": None,
            "kernel_size": list(g.ksize),
            "stride": list(g.stride),
            "dilation": list(g.dilation),
            "padding": None,
            "pad": list(g.pad),
        }


@record(frozen=True)
class WindowStage(Stage):
    """A stage whose kernel slides over the image: stride, dilation, padding mode and amounts."""

    stride: Pair = (1, 1)
    dilation: Pair = (1, 1)
    padding: PadMode = field(default_factory=lambda: resolve_mode("reflection"))
    pad: Pad4 = (0, 0, 0, 0)
    flip: bool = False
    pointwise: bool = field(default=False, init=False)

    def ksize(self) -> Pair:
        raise NotImplementedError

    def geometry(self) -> Geometry:
        return Geometry(self.ksize(), self.stride, self.dilation, self.pad)

    def out_shape(self, shape: Shape3) -> Shape3:
        c, h, w = shape
        oh, ow = self.geometry().out_hw(h, w)
        return c, oh, ow

    def correlate(self, x: np.ndarray, weights: np.ndarray, eng: EngineOptions,
                  rows: tuple[int, int] | None = None, out: np.ndarray | None = None) -> np.ndarray:
        """``x`` correlated with ``weights`` in this stage's geometry (output ``rows`` only, if given;
        into ``out``, a reused buffer of the result's shape and dtype, if given)."""
        return correlate2d(x, weights, stride=self.stride, dilation=self.dilation, pad=self.pad,
                           mode=self.padding, flip=self.flip, rows=rows, out=out, dtype=eng.np_dtype,
                           method=eng.method, threads=eng.threads, band_bytes=eng.band_bytes)

    def input_rows(self, y0: int, y1: int, height: int) -> int:
        """How many leading input rows (of ``height``) output rows [y0, y1) read: every row they
        read is above the returned count (with wrap-around padding, a top row may need the last)."""
        g = self.geometry()
        first = y0 * g.stride[0] - g.pad[0]
        last = (y1 - 1) * g.stride[0] + (g.ksize[0] - 1) * g.dilation[0] - g.pad[0]
        src, _ = source_rows(np.arange(first, last + 1), height, self.padding)
        return int(src.max()) + 1

    def band_height(self, x: np.ndarray, eng: EngineOptions) -> int:
        """The engine's rows per band for :meth:`run` on ``x``: ``rows=`` ranges cut at its
        multiples give the whole output's rows bit for bit (:func:`convcli.engine.band_height`)."""
        raise NotImplementedError

    def run_pixels(self, x: np.ndarray, eng: EngineOptions, spec: PixelSpec, *, rows: tuple[int, int],
                   out: np.ndarray, band_stats: list[BandStats]) -> None:
        """``to_pixels(self.run(x, eng, rows=rows) * spec.rescale, ...)`` into ``out`` (uint8/uint16
        rows of the output), bit for bit, each band's stats appended to ``band_stats``."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d["padding"] = self.padding.name
        if self.flip:
            d["flip"] = True
        return d


@record(frozen=True)
class CorrelateStage(WindowStage):
    """Depthwise cross-correlation with one kernel (filter, blur, downsample, one-way edges)."""

    kernel: Kernel | None = None
    bias: float = 0.0
    label: str = ""  # e.g. "gaussian15(sigma=2.6)"
    #: smoothing and sharpening filter alpha with the colour; edge responses have no alpha
    carries_alpha: bool = True

    def __post_init__(self) -> None:
        if self.kernel is None:
            msg = f"stage {self.op!r} needs a kernel"
            raise UsageError(msg)

    @property
    def weights(self) -> np.ndarray:
        assert self.kernel is not None
        return self.kernel.weights

    def ksize(self) -> Pair:
        assert self.kernel is not None
        return self.kernel.shape

    def run(self, x: np.ndarray, eng: EngineOptions, *, bias_weight: np.ndarray | None = None,
            rows: tuple[int, int] | None = None, out: np.ndarray | None = None) -> np.ndarray:
        """``bias_weight`` (H', W'): alpha/maxval of this stage's output when ``x`` is premultiplied
        colour, so the bias is premultiplied too and comes out as +bias after the division.
        ``rows=(y0, y1)``: output rows [y0, y1) only (``bias_weight`` then of those rows).
        ``out``: a buffer of the result's shape and dtype to write into (streaming reuses one)."""
        out = self.correlate(x, self.weights, eng, rows, out)
        if self.bias:
            b = np.asarray(self.bias, dtype=out.dtype)
            out += b if bias_weight is None else (b * bias_weight[..., None]).astype(out.dtype, copy=False)
        return out

    def band_height(self, x: np.ndarray, eng: EngineOptions) -> int:
        return band_height(x, self.weights, stride=self.stride, dilation=self.dilation, pad=self.pad,
                           mode=self.padding, flip=self.flip, dtype=eng.np_dtype, method=eng.method,
                           band_bytes=eng.band_bytes)

    def run_pixels(self, x: np.ndarray, eng: EngineOptions, spec: PixelSpec, *, rows: tuple[int, int],
                   out: np.ndarray, band_stats: list[BandStats]) -> None:
        correlate_pixels(x, self.weights, spec, bias=self.bias, stride=self.stride, dilation=self.dilation,
                         pad=self.pad, mode=self.padding, flip=self.flip, rows=rows, out=out,
                         band_stats=band_stats, dtype=eng.np_dtype, method=eng.method, threads=eng.threads,
                         band_bytes=eng.band_bytes)

    def run_alpha(self, alpha: np.ndarray, eng: EngineOptions, maxval: float) -> np.ndarray:
        """Alpha goes through the same kernel and geometry scaled to sum 1, without the bias.

        Alpha is coverage: the kernel's gain (``--scale 0.5``, the lecture's "Gaussian" summing to
        1.78) is the colour's, as on the same image without alpha. With the kernel as it is, the
        division by the filtered alpha took the gain back out of the colour and put it into the
        opacity: an opaque RGBA image came out half transparent, its colour unchanged.

        Zeros padding is black outside the image, as opaque as the image's own edge: premultiplied
        colour pads with 0 already, and alpha pads as ``border`` does (its edge repeated). An opaque
        image is then padded with opaque black, as the same image without alpha is (alpha padded
        with 0 made its border transparent and left its colour undarkened), and a logo on a
        transparent background with transparent black: no frame. Where no alpha is under the window
        the result is exactly 0, not an FFT's rounding noise.
        """
        w = self.weights
        unit = w / w.sum(dtype=np.float64)
        taps = (w != 0).astype(np.float64)
        stage = dataclasses.replace(self, padding=MODES["border"]) if self.padding.name == "zeros" else self
        auto = dataclasses.replace(eng, method="auto")  # --method separable may not fit the taps' shape
        covered = (alpha != 0).astype(np.dtype(eng.dtype))
        # correlate(alpha) = correlate(alpha - maxval) + maxval, the unit kernel summing to 1: an opaque
        # image's alpha comes out exactly maxval (Σ 255/9 is not 255 in float32, and a colour on a
        # rounding tie came out one level off the image without alpha)
        out = stage.correlate(alpha - np.asarray(maxval, dtype=alpha.dtype), unit, eng) + maxval
        counts = stage.correlate(covered, taps, auto)
        out[counts <= 0.5] = 0  # a count of taps: any method's rounding stays far from 0.5
        return out

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        assert self.kernel is not None
        d["kernel"] = self.label or self.kernel.name
        if self.bias:
            d["bias"] = self.bias
        return d


@record(frozen=True)
class GradientStage(WindowStage):
    """Gradient magnitude sqrt(gx² + gy²) from a pair of kernels (``edges --direction both``)."""

    kx: Kernel | None = None
    ky: Kernel | None = None
    label: str = ""

    def ksize(self) -> Pair:
        assert self.kx is not None
        return self.kx.shape

    def _kernels(self) -> tuple[np.ndarray, np.ndarray]:
        assert self.kx is not None and self.ky is not None
        kx, ky = self.kx.weights, self.ky.weights
        return (rotate180(kx), rotate180(ky)) if self.flip else (kx, ky)

    def run(self, x: np.ndarray, eng: EngineOptions, *, rows: tuple[int, int] | None = None,
            out: np.ndarray | None = None) -> np.ndarray:
        """The magnitude (output ``rows`` [y0, y1) only, if given; into ``out``, if given)."""
        kx, ky = self._kernels()
        return gradient_magnitude(x, kx, ky, stride=self.stride, dilation=self.dilation, pad=self.pad,
                                  mode=self.padding, rows=rows, out=out, dtype=eng.np_dtype,
                                  method=eng.method, threads=eng.threads, band_bytes=eng.band_bytes)

    def band_height(self, x: np.ndarray, eng: EngineOptions) -> int:
        kx, ky = self._kernels()
        return band_height(x, kx, ky, stride=self.stride, dilation=self.dilation, pad=self.pad,
                           mode=self.padding, dtype=eng.np_dtype, method=eng.method,
                           band_bytes=eng.band_bytes)

    def run_pixels(self, x: np.ndarray, eng: EngineOptions, spec: PixelSpec, *, rows: tuple[int, int],
                   out: np.ndarray, band_stats: list[BandStats]) -> None:
        kx, ky = self._kernels()
        gradient_pixels(x, kx, ky, spec, stride=self.stride, dilation=self.dilation, pad=self.pad,
                        mode=self.padding, rows=rows, out=out, band_stats=band_stats, dtype=eng.np_dtype,
                        method=eng.method, threads=eng.threads, band_bytes=eng.band_bytes)

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        assert self.kx is not None and self.ky is not None
        d["kernel"] = self.label or f"|{self.kx.name}, {self.ky.name}|"
        return d


@record(frozen=True)
class CompassStage(WindowStage):
    """The largest response over a kernel's 8 rotations (``edges --operator kirsch|robinson|sobel8``).

    ImageMagick's ``-define morphology:compose=Lighten -morphology Convolve 'Kirsch:@'``: the
    maximum of the signed responses, per pixel and channel. :meth:`run_with_direction` also returns
    the winning rotation in degrees (0, 45, ... 315, clockwise as ``NAME@ANGLE``; the lowest angle on ties,
    ties being within a few roundings of each pixel's float sums, and the response then the lowest
    angle's).
    """

    op: str = "edges"
    kernels: tuple[Kernel, ...] = ()  # the rotations, kernels[i] turned by 45*i degrees
    label: str = ""

    def __post_init__(self) -> None:
        if len(self.kernels) != 8:
            msg = f"a compass stage needs 8 rotations, got {len(self.kernels)}"
            raise UsageError(msg)

    def ksize(self) -> Pair:
        return self.kernels[0].shape

    def run(self, x: np.ndarray, eng: EngineOptions) -> np.ndarray:
        return self.run_with_direction(x, eng)[0]

    def run_with_direction(self, x: np.ndarray, eng: EngineOptions) -> tuple[np.ndarray, np.ndarray]:
        best = self.correlate(x, self.kernels[0].weights, eng)
        direction = np.zeros(best.shape, dtype=np.float32)
        # A tie in exact arithmetic (reflection padding makes rows -1 and +1 of the first row equal) comes
        # out of float sums a few roundings apart: a later rotation wins only by more than they can be,
        # at each pixel (its window's sum of |x| times the largest |weight| bounds every term sum there).
        w0 = self.kernels[0].weights
        terms = self.correlate(np.abs(x), np.ones_like(w0), eng) * float(np.abs(w0).max())
        tie = terms * (16 * float(np.finfo(best.dtype).eps))
        for i, k in enumerate(self.kernels[1:], start=1):
            r = self.correlate(x, k.weights, eng)
            wins = r > best + tie
            best = np.where(wins, r, best)
            direction[wins] = 45.0 * i
        return best, direction

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d["kernel"] = self.label or f"max over {self.kernels[0].name}@0..315"
        return d


@record(frozen=True)
class UnsharpStage(WindowStage):
    """Unsharp mask as ImageMagick's ``-unsharp RxS+A+T``: blur with a Gaussian (sigma S, side 2R+1,
    or 2*ceil(3S)+1 for R = 0), then out = in + A*(in - blur) where 2*|in - blur| >= T*maxval,
    else in (ImageMagick's UnsharpMaskImage compares twice the difference with T*QuantumRange)."""

    op: str = "sharpen"
    radius: int = 0
    sigma: float = 1.0
    amount: float = 1.0
    threshold: float = 0.05
    carries_alpha: bool = True  # alpha passes unchanged; colour is sharpened premultiplied

    def __post_init__(self) -> None:
        check_sigma(self.sigma, "--sigma")
        if not math.isfinite(self.amount):
            msg = f"--amount must be a finite number, got {self.amount:g}"
            raise UsageError(msg)
        if not (math.isfinite(self.threshold) and self.threshold >= 0):  # a NaN threshold blamed --amount
            msg = f"--threshold must be a finite number >= 0, got {self.threshold:g}"
            raise UsageError(msg)
        if self.size() > MAX_KERNEL_SIZE:
            n = size_text(self.size())
            msg = (f"the unsharp blur would be {n}x{n}, over the limit of {MAX_KERNEL_SIZE} "
                   "(give a smaller --sigma)")
            raise UsageError(msg)

    def size(self) -> int:
        return 2 * self.radius + 1 if self.radius > 0 else size_for_sigma(self.sigma)

    def ksize(self) -> Pair:
        return self.size(), self.size()

    def blur_kernel(self) -> Kernel:
        return gaussian_kernel(self.size(), self.sigma)

    def run(self, x: np.ndarray, eng: EngineOptions, *, maxval: float = 255.0) -> np.ndarray:
        blur = self.correlate(x, self.blur_kernel().weights, eng)
        diff = x - blur
        keep = 2.0 * np.abs(diff) < self.threshold * maxval
        sharpened = x + np.asarray(self.amount, dtype=x.dtype) * diff
        return np.where(keep, x, sharpened).astype(x.dtype, copy=False)

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        d["kernel"] = (f"unsharp {self.radius}x{self.sigma:g}+{self.amount:g}+{self.threshold:g} "
                       f"({self.blur_kernel().name})")
        return d


@record(frozen=True)
class GrayStage(Stage):
    """ITU-R 601-2 luminance: C=3 -> C=1 (C=1 passes)."""

    op: str = "gray"
    #: luminance of premultiplied colour is premultiplied luminance: alpha passes, as --gray keeps it
    carries_alpha: bool = True

    def out_shape(self, shape: Shape3) -> Shape3:
        c, h, w = shape
        if c not in (1, 3):
            msg = f"gray needs 1 or 3 channels, got {c}"
            raise UsageError(msg)
        return 1, h, w

    def run(self, x: np.ndarray, eng: EngineOptions) -> np.ndarray:
        return color.luminance(x)


@record(frozen=True)
class ReluStage(Stage):
    """max(0, x), element-wise."""

    op: str = "relu"

    def run(self, x: np.ndarray, eng: EngineOptions) -> np.ndarray:
        return np.maximum(x, 0, out=x)


@record(frozen=True)
class FlattenStage(Stage):
    """[1, C, H, W] -> [1, C*H*W], in PyTorch's order (channel, then row, then column), as
    ``torch.flatten(x, 1)`` before a classifier's linear layers. Held as (C*H*W, 1, 1)."""

    op: str = "flatten"

    def out_shape(self, shape: Shape3) -> Shape3:
        c, h, w = shape
        return c * h * w, 1, 1

    def run(self, x: np.ndarray, eng: EngineOptions) -> np.ndarray:
        return np.ascontiguousarray(x.transpose(2, 0, 1)).reshape(1, 1, -1)

    def shown_shape(self, shape: Shape3) -> list[int]:
        return [1, shape[0] * shape[1] * shape[2]]


@record(frozen=True)
class ConvStage(WindowStage):
    """A conv layer mixing channels, as PyTorch's Conv2d (no bias unless given).

    Either explicit ``weights`` of shape (out, in, kh, kw), or ``out_channels``,
    ``kernel_size`` and ``seed``: weights uniform in [-1, 1] drawn for the input's channel
    count when the shapes are planned (the same seed gives the same weights).
    """

    op: str = "conv"
    out_channels: int = 1
    kernel_size: Pair = (3, 3)
    seed: int = 0
    weights: np.ndarray | None = field(default=None, repr=False, compare=False)
    bias: np.ndarray | None = field(default=None, repr=False, compare=False)
    padding: PadMode = field(default_factory=lambda: resolve_mode("zeros"))  # as torch.nn.Conv2d
    source: str = ""  # the weights file, if any

    def __post_init__(self) -> None:
        if self.weights is not None:
            w = np.asarray(self.weights)
            if w.ndim != 4:
                msg = f"conv weights must have shape (out, in, kh, kw), got {w.shape}"
                raise UsageError(msg)
            object.__setattr__(self, "out_channels", int(w.shape[0]))
            object.__setattr__(self, "kernel_size", (int(w.shape[2]), int(w.shape[3])))
        if self.bias is not None and np.asarray(self.bias).shape != (self.out_channels,):
            msg = f"conv bias must have shape ({self.out_channels},), got {np.asarray(self.bias).shape}"
            raise UsageError(msg)

    def weights_for(self, in_channels: int) -> np.ndarray:
        """The (out, in, kh, kw) weights for ``in_channels`` inputs."""
        if self.weights is not None:
            if self.weights.shape[1] != in_channels:
                msg = (f"conv weights expect {self.weights.shape[1]} input channels, "
                       f"the image has {in_channels}")
                raise UsageError(msg)
            return np.asarray(self.weights, dtype=np.float32)
        return random_conv_weights(self.out_channels, in_channels, self.kernel_size, self.seed)

    def ksize(self) -> Pair:
        return self.kernel_size

    def out_shape(self, shape: Shape3) -> Shape3:
        c, h, w = shape
        if self.weights is None:
            count = self.out_channels * c * self.kernel_size[0] * self.kernel_size[1]
            if count > MAX_CONV_WEIGHTS:
                msg = (f"conv weights would hold {count} values ({self.out_channels} out x {c} in x "
                       f"{self.kernel_size[0]}x{self.kernel_size[1]}), over the limit of {MAX_CONV_WEIGHTS}")
                raise UsageError(msg)
        if self.weights is not None:
            self.weights_for(c)  # (checks the file's input channels)
        oh, ow = self.geometry().out_hw(h, w)
        # The engine's working memory from the shapes alone, before any pixel is read or random
        # weights drawn: a layer that cannot fit is a usage error here (float64, as --float64 may
        # ask; every core).
        conv2d_plan((h, w, c), (self.out_channels, c, *self.kernel_size), stride=self.stride,
                    dilation=self.dilation, pad=self.pad, dtype=np.float64)
        if self.weights is None:
            self.weights_for(c)
        return self.out_channels, oh, ow

    def run(self, x: np.ndarray, eng: EngineOptions) -> np.ndarray:
        return conv2d(x, self.weights_for(x.shape[2]), self.bias, stride=self.stride,
                      dilation=self.dilation, pad=self.pad, mode=self.padding, dtype=eng.np_dtype,
                      threads=eng.threads, band_bytes=eng.band_bytes)

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        origin = self.source or f"seed {self.seed}"
        d.update(kernel=origin, out_channels=self.out_channels)
        return d


def random_conv_weights(out_channels: int, in_channels: int, ksize: Pair, seed: int) -> np.ndarray:
    """Weights uniform in [-1, 1) from a seeded generator: the same seed gives the same weights."""
    rng = np.random.default_rng(seed)
    shape = (out_channels, in_channels, ksize[0], ksize[1])
    return rng.uniform(-1.0, 1.0, size=shape).astype(np.float32)


#: Stride 1, dilation 1, reflection padding, 'same' amounts: what no flag gives.
DEFAULT_GEOMETRY = GeometrySpec()


def make_correlate_stage(op: str, kernel: Kernel, geometry: GeometrySpec = DEFAULT_GEOMETRY, *,
                         flip: bool = False, bias: float = 0.0, label: str = "",
                         carries_alpha: bool | None = None) -> CorrelateStage:
    """Build a CorrelateStage, resolving the padding mode and the ``--pad`` spec for this kernel.

    ``carries_alpha`` None: alpha is filtered with the colour unless the kernel sums to 0.
    """
    mode, pad4 = geometry.resolve(kernel.shape)
    stride, dilation = geometry.stride, geometry.dilation
    if carries_alpha is None:
        # A kernel summing to 0 (a derivative: edges, laplacian) would turn alpha into an edge
        # map and make the picture transparent; such a response has no alpha.
        carries_alpha = not sums_to_zero(kernel.weights)
    return CorrelateStage(op=op, kernel=kernel, stride=stride, dilation=dilation, padding=mode, pad=pad4,
                          flip=flip, bias=bias, label=label, carries_alpha=carries_alpha)


# --- planning and running ----------------------------------------------------------------


@record(frozen=True)
class StagePlan:
    stage: Stage
    in_shape: Shape3
    out_shape: Shape3
    arithmetic: str | None  # None for a point-wise stage (gray, relu): no window, no arithmetic
    receptive_field: Pair
    jump: Pair

    def torch_note(self) -> str | None:
        """Why PyTorch would refuse this stage's padding of its input (a reflection pad as wide as the
        image), or None: convcli pads it as numpy.pad does."""
        if not isinstance(self.stage, WindowStage):
            return None
        return torch_pad_note(self.stage.padding, self.stage.pad, self.in_shape[1], self.in_shape[2])

    def record(self) -> dict[str, Any]:
        d = self.stage.describe()
        d["input_shape"] = nchw(self.in_shape)
        d["output_shape"] = self.stage.shown_shape(self.out_shape)
        d["arithmetic"] = self.arithmetic
        rf, jump = self.receptive_field, self.jump
        d["receptive_field"] = rf[0] if rf[0] == rf[1] else list(rf)
        d["jump"] = jump[0] if jump[0] == jump[1] else list(jump)
        return d


def _check_pixels(where: str, stage: Stage, cur: Shape3, nxt: Shape3, max_pixels: int) -> None:
    """The output guard: a stage's output (and padded input) from the arithmetic, against --max-pixels."""
    oh, ow = nxt[1], nxt[2]
    if oh * ow > max_pixels:
        msg = (f"{where}: the output would be {oh}x{ow} = {oh * ow:,} pixels, over --max-pixels "
               f"{max_pixels:,} (check --pad, or raise --max-pixels)")
        raise UsageError(msg)
    if stage.pointwise:
        return
    g = stage.geometry()
    ph, pw = cur[1] + g.pad[0] + g.pad[1], cur[2] + g.pad[2] + g.pad[3]
    if ph * pw > PADDED_FACTOR * max(max_pixels, cur[1] * cur[2]):
        msg = (f"{where}: padding by {','.join(map(str, g.pad))} (kernel {g.ksize[0]}x{g.ksize[1]}, dilation "
               f"{g.dilation[0]},{g.dilation[1]}) makes a {ph}x{pw} = {ph * pw:,} pixel copy, over "
               f"{PADDED_FACTOR} x --max-pixels {max_pixels:,}; use a smaller --pad or --dilation")
        raise UsageError(msg)


def nchw(shape: Shape3) -> list[int]:
    """(C, H, W) -> [1, C, H, W], as PyTorch prints a batch of one."""
    return [1, *shape]


@record(frozen=True)
class Pipeline:
    stages: tuple[Stage, ...]

    def plan(self, shape: Shape3, max_pixels: int | None = None) -> list[StagePlan]:
        """Every stage's shapes and arithmetic from (C, H, W) alone; UsageError if a shape is empty.

        With ``max_pixels`` (``--max-pixels``), a stage whose output has more pixels (H x W), or
        whose padded input has more than :data:`PADDED_FACTOR` times as many, is refused here,
        from the arithmetic, before anything is allocated. A strided stage on a 1x1 input gives
        1x1, as PyTorch's formula does (``downsample --times`` past the end).
        """
        plans: list[StagePlan] = []
        rfs = receptive_field([s.geometry() for s in self.stages])
        cur = shape
        for stage, (rf, jump) in zip(self.stages, rfs, strict=True):
            where = f"stage {len(plans) + 1} ({stage.op})"
            if plans and plans[-1].stage.op == "flatten":
                msg = f"{where}: nothing can follow flatten (it ends the chain)"
                raise UsageError(msg)
            try:
                nxt = stage.out_shape(cur)
            except UsageError as e:
                msg = f"{where}: {e}"
                raise UsageError(msg) from None
            g = stage.geometry()
            if max_pixels is not None:
                _check_pixels(where, stage, cur, nxt, max_pixels)
            if stage.op == "flatten":
                arithmetic: str | None = f"{cur[0]}*{cur[1]}*{cur[2]} = {nxt[0]}"
            else:
                arithmetic = None if stage.pointwise else g.arithmetic(cur[1], cur[2])
            plans.append(StagePlan(stage, cur, nxt, arithmetic, rf, jump))
            cur = nxt
        return plans

    def range_note(self, policy: str, clipped_fraction: float, minimum: float) -> str | None:
        """A hint when ``clip`` cut many negative responses of a kernel summing to 0 (sobel-x...): the
        last stage's, or one followed only by blurs, downsamples and luminance, which keep negatives
        negative (``blur edges downsample`` clipped 47% without a word)."""
        if policy != "clip" or clipped_fraction <= CLIP_HINT_FRACTION or minimum >= 0:
            return None
        for n, stage in enumerate(reversed(self.stages)):
            if isinstance(stage, GrayStage):
                continue
            if not isinstance(stage, CorrelateStage) or stage.kernel is None:
                return None
            w = stage.kernel.weights
            if sums_to_zero(w):
                name = stage.label or stage.kernel.name
                which = "the kernel" if n == 0 else f"the {stage.op} kernel ({name})"
                return (f"{clipped_fraction * 100:.0f}% of samples clipped: {which} sums to 0, so its "
                        "negative responses became 0; --range abs keeps their magnitude, --range normalize "
                        "maps min..max")
            if np.any(w < 0):
                return None
        return None

    @property
    def keeps_alpha(self) -> bool:
        """Alpha survives only when every stage filters it along with the colour."""
        return all(s.carries_alpha for s in self.stages)

    def alpha_note(self) -> str:
        """The report's note for an input with alpha: filtered with the colour, or why it was dropped."""
        dropping = next((s for s in self.stages if not s.carries_alpha), None)
        if dropping is None:
            return "alpha premultiplied and filtered with the same kernel"
        if isinstance(dropping, CorrelateStage | GradientStage | CompassStage):  # kernels summing to 0
            return (f"alpha dropped: {dropping.op} measures change (its kernel sums to 0), and a change "
                    "has no alpha")
        return f"alpha dropped: {dropping.op} mixes or replaces channels"

    def run(self, x: np.ndarray, eng: EngineOptions | None = None, *, alpha: np.ndarray | None = None,
            maxval: float = 255.0, linear_light: bool = False,
            on_stage: Callable[[StagePlan, np.ndarray], None] | None = None,
            side: dict[str, np.ndarray] | None = None,
            ) -> tuple[np.ndarray, np.ndarray | None]:
        """Push (H, W, C) float pixels through every stage; returns (result, alpha or None).

        With ``alpha``, colour is premultiplied, colour and alpha go through the same
        kernels, and colour is divided back at the end (no dark halos). Stages that
        mix or replace channels (edges magnitude, conv) or respond to change (a kernel summing
        to 0) drop the alpha; gray passes it unchanged.
        ``linear_light`` decodes sRGB before the stages and re-encodes after.
        ``on_stage(plan, values)`` sees every stage's float output (for montages).
        ``side``: filled with a compass stage's winning directions as ``side["direction"]``.
        """
        eng = eng or EngineOptions()
        dt = np.dtype(eng.dtype)
        x = np.asarray(x, dtype=dt)
        if x.ndim == 2:
            x = x[:, :, None]
        if linear_light:
            x = color.srgb_to_linear(x, maxval)
        keep_alpha = alpha is not None and self.keeps_alpha
        a = np.asarray(alpha, dtype=dt) if alpha is not None else None
        if a is not None:
            x = color.premultiply(x, a, maxval)
        expected = self.plan((x.shape[2], x.shape[0], x.shape[1]))
        for p in expected:
            if keep_alpha and isinstance(p.stage, CorrelateStage):
                assert a is not None
                a = p.stage.run_alpha(a, eng, maxval)
                x = p.stage.run(x, eng, bias_weight=a / maxval)
            elif side is not None and isinstance(p.stage, CompassStage):
                x, side["direction"] = p.stage.run_with_direction(x, eng)
            elif isinstance(p.stage, UnsharpStage):
                x = p.stage.run(x, eng, maxval=maxval)
            else:
                x = p.stage.run(x, eng)
            got = (x.shape[2], x.shape[0], x.shape[1])
            if got != p.out_shape:  # an engine bug, never a user error
                msg = f"stage {p.stage.op} produced {nchw(got)}, predicted {nchw(p.out_shape)}"
                raise AssertionError(msg)
            if on_stage is not None:
                on_stage(p, x)
        if keep_alpha:
            assert a is not None
            x = color.unpremultiply(x, a, maxval)
        if linear_light:
            x = color.linear_to_srgb(x, maxval)
        return x, (a if keep_alpha else None)
