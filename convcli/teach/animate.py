"""The sliding window animated: frames of a convolution, as Dumoulin & Visin draw it, with labels.

Pure frame logic: :func:`animate` takes an :class:`AnimateSettings` and returns an
:class:`Animation` (uint8 RGB frames, durations in ms, and the numbers shown).
:func:`encode_animation` turns frames into GIF / APNG / WebP bytes and
:func:`encode_still` one frame into PNG bytes; writing files is the caller's job.

What is drawn:

- the input grid inside its padding; padding cells show what the padding mode
  puts there (the value, or in the unnumbered view the letter of the input cell
  the mode copies, ``0`` for zeros);
- the kernel's window (its taps outlined, dilation included) moving one output at a time;
- the kernel and the output grid filling in; with values, each output's sum of
  products (``out[0,0] = (0·10) + (−1·20) + ... = 50``);
- ``unroll``: the im2col matrix filling row by row, then one matrix product
  giving every output at once.

Frames: one intro frame (empty output), one frame per output (per im2col row with
``unroll``), one final frame (the finished output; with ``unroll`` the product).

The transposed convolution is drawn as the direct convolution it equals (Dumoulin &
Visin, relationships 8–13): ``s − 1`` zeros inserted between inputs, ``d·(k − 1) − p``
zeros of padding each side (plus ``a``, the output padding, bottom and right), the
kernel flipped, stride 1. Its output size is ``s·(i − 1) + a + d·(k − 1) + 1 − 2p``.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import field
from functools import cache, lru_cache
from typing import overload

import numpy as np
from PIL import Image, ImageDraw, ImageFont, features

from convcli.core.kernels import Kernel
from convcli.core.padding import pad_array, resolve_mode, source_rows
from convcli.core.records import record
from convcli.core.shapes import Geometry, Pad4, Pair, arithmetic
from convcli.engine import correlate2d
from convcli.errors import UsageError
from convcli.io.png import changed_pixels, encode_apng
from convcli.teach.explain import UNROLL_MAX_TAPS, fmt
from convcli.teach.render import _drawable
from convcli.teach.render import _font as _bundled_font

#: Largest input side drawn (cells stay readable; frames stay few).
MAX_INPUT = 16
#: Largest padded grid side drawn.
MAX_GRID = 40
#: Most outputs animated (one frame each).
MAX_STEPS = 400
#: Most im2col rows (outputs) and columns (kernel taps) drawn by ``unroll``.
MAX_UNROLL_ROWS = 64
MAX_UNROLL_COLS = UNROLL_MAX_TAPS
#: The intro and final frames last this many step durations.
HOLD = 3
#: Output formats of :func:`encode_animation`.
FORMATS = ("gif", "png", "webp")

TIMES = "\u00d7"
MINUS = "\u2212"
DOT = "\u00b7"

# palette: few colours, so a GIF's 256 keep every one of them and the text crisp
WHITE = (255, 255, 255)
TEXT = (20, 20, 20)
SUBTEXT = (95, 95, 95)
GRID_LINE = (150, 150, 150)
INPUT_FILL = (200, 222, 255)
PAD_FILL = (232, 232, 232)
PAD_TEXT = (105, 105, 105)
INSERTED_FILL = (246, 246, 246)
INSERTED_TEXT = (160, 160, 160)
INPUT_OUTLINE = (30, 60, 150)
WINDOW = (215, 30, 30)
WINDOW_TINT = (255, 196, 150)
KERNEL_FILL = (255, 228, 180)
OUTPUT_FILL = (196, 236, 200)


# --- settings and plan ---------------------------------------------------------------------


@record(frozen=True)
class AnimateSettings:
    """What to animate. ``values`` None draws lettered cells (no numbers)."""

    kernel: Kernel
    stride: Pair = (1, 1)
    dilation: Pair = (1, 1)
    #: (top, bottom, left, right); for ``transposed`` this is the ``p`` of the transposed convolution
    pad: Pad4 = (1, 1, 1, 1)
    mode: str = "zeros"
    input_size: int = 5
    #: the input's values (H, W), e.g. :func:`small_integers`, a patch or a crop of a photo
    values: np.ndarray | None = field(default=None, compare=False)
    transposed: bool = False
    #: ``a`` of the transposed convolution: extra rows / columns at the bottom / right
    output_padding: int = 0
    unroll: bool = False
    fps: float = 2.0
    #: a line saying where the values come from ("cat.png: 8×8 patch at x=10, y=20, luminance")
    source: str = ""
    #: a uint8 grey picture the values were cropped from, and the crop as (x, y, w, h)
    photo: np.ndarray | None = field(default=None, compare=False)
    photo_box: tuple[int, int, int, int] | None = None


@record(frozen=True)
class Step:
    """One output: where it is, the grid cells its window reads, and (with values) its sum."""

    out_yx: tuple[int, int]
    #: grid positions (row, column) of the taps, kernel reading order
    taps: tuple[tuple[int, int], ...]
    #: (weight, value, value is padding or an inserted zero) per tap; empty without values
    terms: tuple[tuple[float, float, bool], ...] = ()
    #: the sum of products (a float64 loop); None without values
    value: float | None = None
    #: the weights as the kernel writes them ("1/16"), for the equation; default: the numbers
    weight_texts: tuple[str, ...] = ()

    @property
    def equation(self) -> str:
        """``out[0,1] = (0·[0]) + (−1·20) + ... = 50`` (padded values bracketed)."""
        if self.value is None:
            return ""
        wt = self.weight_texts or tuple(fmt(w) for w, _, _ in self.terms)
        parts = [f"({t.replace('-', MINUS)}{DOT}{'[' + fmt(v) + ']' if padded else fmt(v)})"
                 for t, (_, v, padded) in zip(wt, self.terms, strict=True)]
        y, x = self.out_yx
        return f"out[{y},{x}] = " + " + ".join(parts) + f" = {fmt(self.value)}"


@record(frozen=True)
class Plan:
    """Everything the frames show, computed before any drawing."""

    in_hw: Pair
    #: the grid the window slides over: the padded input (transposed: stretched and padded)
    grid: np.ndarray = field(repr=False)
    #: per grid cell: 0 input, 1 padding, 2 zero inserted between inputs (transposed)
    kind: np.ndarray = field(repr=False)
    #: per grid cell: the input cell (row, col) whose value it holds; (-1, -1) for a zero
    source: np.ndarray = field(repr=False)
    #: the kernel as applied to the grid (flipped for the transposed convolution)
    weights: np.ndarray = field(repr=False)
    weight_text: tuple[tuple[str, ...], ...]
    stride: Pair  # the stride on the grid (1 for the transposed convolution)
    dilation: Pair
    out_hw: Pair
    #: the output values (float64, from convcli's engine); None without values
    output: np.ndarray | None = field(repr=False)
    steps: tuple[Step, ...]
    #: the input's region in the grid: top, left, bottom (exclusive), right (exclusive)
    input_box: tuple[int, int, int, int]
    labels: dict[str, str]


class Frames(Sequence[np.ndarray]):
    """An animation's frames (uint8 RGB, all the same size), each drawn when it is asked for.

    A 16×16 input makes 258 frames of 1683×807 pixels, 1 GB held at once: the encoder asks for them
    one after another instead, and ``--frame N`` draws frame N alone.
    """

    def __init__(self, draw: Callable[[int], np.ndarray], count: int) -> None:
        self._draw = draw
        self._count = count

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, i: int) -> np.ndarray: ...

    @overload
    def __getitem__(self, i: slice) -> list[np.ndarray]: ...

    def __getitem__(self, i: int | slice) -> np.ndarray | list[np.ndarray]:
        if isinstance(i, slice):
            return [self._draw(j) for j in range(*i.indices(self._count))]
        if not -self._count <= i < self._count:
            msg = f"frame {i} of {self._count}"
            raise IndexError(msg)
        return self._draw(i % self._count)


@record(frozen=True)
class Animation:
    """The frames, their durations in ms, and the plan drawn."""

    frames: Frames = field(repr=False)
    durations: list[int]
    plan: Plan

    @property
    def values(self) -> np.ndarray | None:
        """The output values shown (float64 (oh, ow)), or None without values."""
        return self.plan.output


def small_integers(n: int, seed: int = 0) -> np.ndarray:
    """An n×n input of small whole numbers 0..9 (seeded: the same every time)."""
    return np.random.default_rng(seed).integers(0, 10, size=(n, n)).astype(np.float64)


def transposed_size(i: int, k: int, s: int = 1, d: int = 1, p_before: int = 0, p_after: int = 0,
                    a: int = 0) -> int:
    """Output size of a transposed convolution: s·(i − 1) + a + d·(k − 1) + 1 − p_before − p_after.

    With d = 1 and equal pads p this is the guide's o' = s(i' − 1) + a + k − 2p.
    """
    return s * (i - 1) + a + d * (k - 1) + 1 - p_before - p_after


def cell_label(index: int) -> str:
    """a, b, ..., z, aa, ab, ...: the name of input cell ``index`` (reading order) without values."""
    s = ""
    index += 1
    while index > 0:
        index, r = divmod(index - 1, 26)
        s = chr(ord("a") + r) + s
    return s


def _hw(h: int, w: int) -> str:
    return f"{h}{TIMES}{w}" if h == w else f"{h}{TIMES}{w} (H{TIMES}W)"


def _compact(text: str) -> str:
    return text.replace(" ", "")


def _pad_text(pad: Sequence[int]) -> str:
    t, b, left, r = pad
    if t == b == left == r:
        return str(t)
    if t == b and left == r:
        return f"{t},{left} (Y,X)"
    return f"{t},{b},{left},{r} (T,B,L,R)"


def _check(settings: AnimateSettings) -> tuple[np.ndarray | None, Pair]:
    values = None if settings.values is None else np.asarray(settings.values, dtype=np.float64)
    if values is not None:
        if values.ndim != 2 or values.size == 0:
            msg = f"the input must be a non-empty 2-D matrix, got shape {values.shape}"
            raise UsageError(msg)
        if not np.all(np.isfinite(values)):
            msg = "the input contains NaN or infinite values"
            raise UsageError(msg)
        h, w = values.shape
    else:
        h = w = settings.input_size
    if not (1 <= h <= MAX_INPUT and 1 <= w <= MAX_INPUT):
        msg = f"the animated input must be 1..{MAX_INPUT} cells a side, got {h}{TIMES}{w}"
        raise UsageError(msg)
    if not settings.fps > 0 or not math.isfinite(settings.fps):
        msg = f"--fps must be > 0, got {settings.fps}"
        raise UsageError(msg)
    return values, (h, w)


def _direct_grid(values: np.ndarray | None, h: int, w: int, pad: Pad4, mode: str
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int, int, int]]:
    m = resolve_mode(mode)
    top, bottom, left, right = pad
    rows, vr = source_rows(np.arange(-top, h + bottom), h, m)
    cols, vc = source_rows(np.arange(-left, w + right), w, m)
    hp, wp = len(rows), len(cols)
    kind = np.ones((hp, wp), dtype=np.int8)
    kind[top:top + h, left:left + w] = 0
    source = np.stack(np.broadcast_arrays(rows[:, None], cols[None, :]), axis=-1).astype(np.int64)
    if vr is not None and vc is not None:  # zeros: cells outside the input copy nothing
        source[~(vr[:, None] & vc[None, :])] = -1
    grid = np.zeros((hp, wp)) if values is None else pad_array(values, pad, m).astype(np.float64)
    return grid, kind, source, (top, left, top + h, left + w)


def _transposed_grid(values: np.ndarray | None, h: int, w: int, s: Pair, q: Pad4
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int, int, int]]:
    hs, ws = (h - 1) * s[0] + 1, (w - 1) * s[1] + 1
    qt, qb, ql, qr = q
    hp, wp = hs + qt + qb, ws + ql + qr
    kind = np.ones((hp, wp), dtype=np.int8)
    kind[qt:qt + hs, ql:ql + ws] = 2
    kind[qt:qt + hs:s[0], ql:ql + ws:s[1]] = 0
    source = np.full((hp, wp, 2), -1, dtype=np.int64)
    yy, xx = np.mgrid[0:h, 0:w]
    source[qt:qt + hs:s[0], ql:ql + ws:s[1]] = np.stack([yy, xx], axis=-1)
    grid = np.zeros((hp, wp))
    if values is not None:
        grid[qt:qt + hs:s[0], ql:ql + ws:s[1]] = values
    return grid, kind, source, (qt, ql, qt + hs, ql + ws)


def _check_grid(hp: int, wp: int) -> None:
    """Refuse a grid too large to draw from its size alone, before any array of it exists
    (``--pad 1000000`` built a 3.6 TiB grid first: a MemoryError traceback)."""
    if max(hp, wp) > MAX_GRID:
        msg = (f"the padded grid would be {hp}{TIMES}{wp} cells; at most {MAX_GRID} a side can be drawn: "
               "use a smaller input, stride or padding")
        raise UsageError(msg)


def plan(settings: AnimateSettings) -> Plan:
    """The numbers and the geometry of the animation (no drawing); UsageError for what cannot be drawn."""
    values, (h, w) = _check(settings)
    k = settings.kernel
    kh, kw = k.shape
    (sy, sx), (dy, dx) = settings.stride, settings.dilation
    pad = tuple(settings.pad)
    mode = resolve_mode(settings.mode)
    a = settings.output_padding
    labels: dict[str, str] = {}
    if settings.transposed:
        if mode.name not in ("zeros", "valid"):
            msg = (f"--transposed pads with zeros (it inserts zeros and pads them, as the guide draws it); "
                   f"padding mode {mode.name!r} does not apply: use -p zeros")
            raise UsageError(msg)
        if not 0 <= a < max(sy, sx, dy, dx):
            msg = f"--output-padding must be 0..max(stride, dilation)-1 (as PyTorch), got {a}"
            raise UsageError(msg)
        reach = (dy * (kh - 1), dy * (kh - 1), dx * (kw - 1), dx * (kw - 1))
        q = tuple(r - p for r, p in zip(reach, pad, strict=True))
        if min(q) < 0:
            msg = (f"--transposed: --pad {_pad_text(pad)} is larger than d*(k-1) = "
                   f"{reach[0]},{reach[2]} (Y,X); the equivalent convolution would need negative padding")
            raise UsageError(msg)
        q4 = (q[0], q[1] + a, q[2], q[3] + a)
        _check_grid((h - 1) * sy + 1 + q4[0] + q4[1], (w - 1) * sx + 1 + q4[2] + q4[3])
        grid, kind, source, box = _transposed_grid(values, h, w, (sy, sx), q4)
        weights = np.asarray(k.weights[::-1, ::-1], dtype=np.float64)
        disp = k.entries()
        text = tuple(tuple(r[::-1]) for r in disp[::-1])
        gstride: Pair = (1, 1)
        oh = transposed_size(h, kh, sy, dy, pad[0], pad[1], a)
        ow = transposed_size(w, kw, sx, dx, pad[2], pad[3], a)
        fh = _transposed_text(h, kh, sy, dy, pad[0], pad[1], a)
        fw = _transposed_text(w, kw, sx, dx, pad[2], pad[3], a)
        if oh < 1 or ow < 1:
            msg = f"output would be empty: H = {fh} = {oh}; W = {fw} = {ow} (< 1)"
            raise UsageError(msg)
        if Geometry((kh, kw), gstride, (dy, dx), (0, 0, 0, 0)).out_hw(*grid.shape) != (oh, ow):
            msg = "the transposed convolution's size and its equivalent disagree: this is a bug in convcli"
            raise AssertionError(msg)
        zeros_between = f"{sy - 1}" if sy == sx else f"{sy - 1},{sx - 1} (Y,X)"
        labels["input"] = f"input {_hw(h, w)}, {zeros_between} zero(s) inserted between (s-1)"
        if q4[0] == q4[1] == q4[2] == q4[3] and dy == dx and kh == kw and len(set(pad)) == 1:
            labels["padding"] = f"padding zeros {q4[0]} = d*(k-1)-p = {dy}*({kh}-1)-{pad[0]}"
        else:
            labels["padding"] = f"padding zeros {_pad_text(q4)} = d*(k-1)-p (+a bottom, right)"
        labels["kernel"] = f"kernel {_hw(kh, kw)} {_short_name(k)}, flipped"
        labels["geometry"] = (f"stride 1 (transposed stride {_pair_text((sy, sx))}), "
                              f"dilation {_pair_text((dy, dx))}")
        labels["output"] = (f"output {oh}{TIMES}{ow} = {fh}" if fh == fw
                            else f"output {oh}{TIMES}{ow}: H = {fh}; W = {fw}")
        labels["title"] = (f"transposed convolution (stride {_pair_text((sy, sx))}, pad "
                           f"{_pad_text(pad)}, output padding {a}) = insert s-1 zeros, pad d*(k-1)-p, "
                           "flipped kernel, stride 1")
    else:
        if a:
            msg = "--output-padding applies to --transposed only"
            raise UsageError(msg)
        if mode.name == "valid" and any(pad):
            msg = "padding mode 'valid' takes no padding amount"
            raise UsageError(msg)
        oh, ow = Geometry((kh, kw), (sy, sx), (dy, dx), pad).out_hw(h, w)  # type: ignore[arg-type]
        _check_grid(h + pad[0] + pad[1], w + pad[2] + pad[3])
        grid, kind, source, box = _direct_grid(values, h, w, pad, mode.name)  # type: ignore[arg-type]
        weights = np.asarray(k.weights, dtype=np.float64)
        text = tuple(tuple(r) for r in k.entries())
        gstride = (sy, sx)
        labels["input"] = f"input {_hw(h, w)}"
        labels["padding"] = f"padding {mode.name} {_pad_text(pad)}"
        labels["kernel"] = f"kernel {_hw(kh, kw)} {_short_name(k)}".rstrip()
        labels["geometry"] = f"stride {_pair_text((sy, sx))}, dilation {_pair_text((dy, dx))}"
        fh = _compact(arithmetic(h, kh, sy, dy, pad[0], pad[1])).rsplit("=", 1)[0]
        fw = _compact(arithmetic(w, kw, sx, dx, pad[2], pad[3])).rsplit("=", 1)[0]
        labels["output"] = (f"output {oh}{TIMES}{ow} = {fh}" if fh == fw
                            else f"output {oh}{TIMES}{ow}: H = {fh}; W = {fw}")
        labels["title"] = ("convolution (cross-correlation, as PyTorch): "
                           "the window slides one output at a time")
    if oh * ow > MAX_STEPS:
        msg = (f"{oh * ow} outputs ({oh}{TIMES}{ow}) would make {oh * ow} frames; at most {MAX_STEPS}: "
               "use a smaller input or a larger stride")
        raise UsageError(msg)
    if settings.unroll and (oh * ow > MAX_UNROLL_ROWS or kh * kw > MAX_UNROLL_COLS):
        msg = (f"--unroll draws one matrix row per output and one column per kernel tap: at most "
               f"{MAX_UNROLL_ROWS} rows and {MAX_UNROLL_COLS} columns, got {oh * ow}{TIMES}{kh * kw}")
        raise UsageError(msg)
    labels["source"] = settings.source
    if settings.unroll:
        # F.unfold makes each window a column (9x16 for a 3x3 kernel on 4x4): drawn here one row a window
        labels["title"] = ("im2col (PyTorch's unfold, transposed): every window becomes one row of a "
                           "matrix; one matrix product gives every output")
        if settings.transposed:
            labels["title"] = "transposed convolution, unrolled: " + labels["title"]

    output = None
    if values is not None:
        if settings.transposed:
            hs, ws = (h - 1) * sy + 1, (w - 1) * sx + 1
            stretched = np.zeros((hs, ws))
            stretched[::sy, ::sx] = values
            t, left = box[0], box[1]
            q4 = (t, grid.shape[0] - t - hs, left, grid.shape[1] - left - ws)
            output = correlate2d(stretched, weights, stride=(1, 1), dilation=(dy, dx), pad=q4,
                                 mode="zeros", dtype=np.float64)
        else:
            output = correlate2d(values, weights, stride=(sy, sx), dilation=(dy, dx),
                                 pad=pad, mode=mode, dtype=np.float64)  # type: ignore[arg-type]
        output = np.asarray(output, dtype=np.float64).reshape(oh, ow)
    steps = []
    for y in range(oh):
        for x in range(ow):
            taps = tuple((y * gstride[0] + i * dy, x * gstride[1] + j * dx)
                         for i in range(kh) for j in range(kw))
            if values is None:
                steps.append(Step((y, x), taps))
                continue
            terms = tuple((float(weights[i, j]), float(grid[r, c]), bool(kind[r, c] != 0))
                          for (i, j), (r, c) in zip(np.ndindex(kh, kw), taps, strict=True))
            value = 0.0
            for wt, v, _ in terms:
                value += wt * v
            assert output is not None
            scale = max(1.0, sum(abs(wt * v) for wt, v, _ in terms))
            if abs(value - float(output[y, x])) > 1e-9 * scale:
                msg = (f"out[{y},{x}]: sum of products {value} != engine {output[y, x]}: "
                       "this is a bug in convcli")
                raise AssertionError(msg)
            steps.append(Step((y, x), taps, terms, value, tuple(t for row in text for t in row)))
    return Plan((h, w), grid, kind, source, weights, text, gstride, (dy, dx), (oh, ow), output,
                tuple(steps), box, labels)


def _pair_text(p: Pair) -> str:
    return str(p[0]) if p[0] == p[1] else f"{p[0]},{p[1]}"


def _short_name(k: Kernel) -> str:
    """The kernel's name for its panel, up to 28 characters ('literal (sum 1.776)', the lecture's point,
    and 'gaussian:sigma=1.5' were dropped at 16)."""
    return k.name if len(k.name) <= 28 and k.name != "literal" else ""


# --- drawing ---------------------------------------------------------------------------------


@lru_cache(maxsize=16)
def _font(size: int) -> tuple[ImageFont.FreeTypeFont | ImageFont.ImageFont, bool]:
    """DejaVu Sans where installed (it has ×, − and ·), else Pillow's bundled font; and which it is."""
    try:
        return ImageFont.truetype("DejaVuSans.ttf", size), True
    except OSError:
        return _bundled_font(size), False


class _Pen:
    """Text at one size, made drawable by the font in use."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.font, self.full = _font(size)
        self._probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
        #: (text, anchor, fractional x, fractional y) -> (the text's coverage, where it sits)
        self._masks: dict[tuple[str, str, float, float], tuple[Image.Image, int, int]] = {}

    def text(self, s: str) -> str:
        return s if self.full else _drawable(s).replace(DOT, "*")

    def width(self, s: str) -> int:
        return math.ceil(self._probe.textlength(self.text(s), font=self.font))

    def draw(self, d: ImageDraw.ImageDraw, xy: tuple[float, float], s: str, fill: tuple[int, int, int],
             anchor: str = "la") -> None:
        """``d.text(xy, s, fill, anchor)``, pixel for pixel, with each text rendered once.

        A 16×16 animation draws ~470 texts a frame, most of them the same cell values at the same
        places: rendering the glyphs was two thirds of its time. Pillow renders a text by its position's
        fractional part and blends the coverage at the integer part; the coverage is kept per text,
        anchor and fractional part and blended with the same ``draw_bitmap`` (``d.bitmap``).
        """
        x, y = xy
        fx, fy = math.modf(x)[0], math.modf(y)[0]
        key = (s, anchor, fx, fy)
        got = self._masks.get(key)
        if got is None:
            text = self.text(s)
            left, top, right, bottom = self._probe.textbbox((fx, fy), text, font=self.font, anchor=anchor)
            # the origin's place in the mask: whole pixels (Pillow truncates toward zero) that leave
            # room before the text; 2 more each side, as the fractional start can spill a pixel
            pad = 2
            ox, oy = pad + max(0, -math.floor(left)), pad + max(0, -math.floor(top))
            mask = Image.new("L", (ox + math.ceil(right) + pad, oy + math.ceil(bottom) + pad), 0)
            ImageDraw.Draw(mask).text((ox + fx, oy + fy), text, fill=255, font=self.font, anchor=anchor)
            got = self._masks[key] = (mask, ox, oy)
        mask, ox, oy = got
        d.bitmap((int(x) - ox, int(y) - oy), mask, fill=fill)

    def wrap(self, s: str, width: int, sep: str = " + ") -> list[str]:
        """``s`` broken after ``sep`` pieces so that every line fits ``width`` pixels."""
        pieces = s.split(sep)
        lines: list[str] = []
        line = pieces[0]
        for p in pieces[1:]:
            if self.width(line + sep + p) <= width:
                line += sep + p
            else:
                lines.append(line + sep.rstrip())
                line = "    " + p
        lines.append(line)
        return lines


def _cell_text(v: float) -> str:
    """A value short enough for a cell: integers bare, else 5 significant digits."""
    v = float(v)
    if v == 0:
        return "0"
    if v == round(v) and abs(v) < 1e6:
        return str(int(round(v))).replace("-", MINUS)
    return f"{v:.5g}".replace("-", MINUS)


def _grey(v: float) -> tuple[int, int, int]:
    g = int(np.clip(round(v), 0, 255))
    return (g, g, g)


@record
class _Box:
    x: int
    y: int
    cw: int
    ch: int
    rows: int
    cols: int

    @property
    def w(self) -> int:
        return self.cols * self.cw

    @property
    def h(self) -> int:
        return self.rows * self.ch

    def cell(self, r: int, c: int) -> tuple[int, int, int, int]:
        x, y = self.x + c * self.cw, self.y + r * self.ch
        return (x, y, x + self.cw, y + self.ch)


def _grid(d: ImageDraw.ImageDraw, box: _Box, texts: list[list[str]], fills: list[list[tuple[int, int, int]]],
          colours: list[list[tuple[int, int, int]]], pen: _Pen) -> None:
    for r in range(box.rows):
        for c in range(box.cols):
            x0, y0, x1, y1 = box.cell(r, c)
            d.rectangle([x0, y0, x1, y1], fill=fills[r][c], outline=GRID_LINE)
            if texts[r][c]:
                pen.draw(d, ((x0 + x1) / 2, (y0 + y1) / 2), texts[r][c], colours[r][c], anchor="mm")


def _outline(d: ImageDraw.ImageDraw, rect: tuple[int, int, int, int], colour: tuple[int, int, int],
             width: int) -> None:
    x0, y0, x1, y1 = rect
    d.rectangle([x0 + 1, y0 + 1, x1 - 1, y1 - 1], outline=colour, width=width)


class _Renderer:
    """Lays the panels out once, then draws any frame of the animation."""

    margin = 16
    gap = 34

    def __init__(self, p: Plan, settings: AnimateSettings) -> None:
        self.p = p
        self.s = settings
        self.numbers = p.output is not None
        self.photo = settings.photo is not None and settings.values is not None
        self.cell_pen = _Pen(13)
        self.small = _Pen(11)
        self.label_pen = _Pen(14)
        self.title_pen = _Pen(15)
        self.op_pen = _Pen(28)
        self.star_pen = _Pen(56)
        kh, kw = p.weights.shape
        oh, ow = p.out_hw
        self.in_text, self.in_fill, self.in_colour = self._input_cells()
        self.k_text = [list(r) for r in p.weight_text]
        self.k_text = [[t.replace("-", MINUS) for t in row] for row in self.k_text]
        self.out_text = ([[_cell_text(v) for v in row] for row in p.output] if p.output is not None
                         else [[""] * ow for _ in range(oh)])

        def side(texts: list[list[str]], least: int) -> int:
            return max(least, max(self.cell_pen.width(t) for row in texts for t in row) + 10)

        c_in = side(self.in_text, 30)
        c_k = side(self.k_text, 30)
        c_out = side(self.out_text, 30)
        hp, wp = p.grid.shape
        # the title and captions first, to know how high the panels start
        y = self.margin
        self.title_y = y
        y += self.title_pen.size + 8
        if p.labels.get("source"):
            self.source_y = y
            y += self.label_pen.size + 6
        self.caption_y = y
        y += self.label_pen.size + 14
        top = y
        x = self.margin
        self.panels: list[tuple[str, _Box | None, list[str]]] = []
        self.ops: list[tuple[float, str]] = []
        if self.photo:
            assert settings.photo is not None
            ph, pw = settings.photo.shape[:2]
            target = max(hp * c_in, 140)
            f = min(target / ph, 220 / pw)
            self.photo_size = (max(1, round(pw * f)), max(1, round(ph * f)))
            self.photo_f = f
            self.photo_xy = (x, top)
            name = "photo (the patch in red)"
            self.panels.append(("photo", _Box(x, top, self.photo_size[0], self.photo_size[1], 1, 1), [name]))
            x += self.photo_size[0] + self.gap
        self.in_box = _Box(x, top, c_in, c_in, hp, wp)
        in_labels = [p.labels["input"], p.labels["padding"]]
        if settings.unroll:
            in_labels.append(p.labels["geometry"])
        x = self._advance(x, self.in_box, in_labels)
        self.panels.append(("input", self.in_box, in_labels))
        if settings.unroll:
            n = oh * ow
            mat = [[self._tap_text(r, c) for (r, c) in st.taps] for st in p.steps]
            c_m = max(26, max(self.cell_pen.width(t) for row in mat for t in row) + 8)
            row_h = 20 if n <= 30 else 16
            self.row_pen = self.small if n > 30 else self.cell_pen
            self.row_labels = [f"{y_},{x_}" for y_, x_ in (st.out_yx for st in p.steps)]
            lab_w = max(self.small.width(t) for t in self.row_labels) + 6
            x += lab_w
            self.mat_box = _Box(x, top, c_m, row_h, n, kh * kw)
            mat_labels = [f"im2col {n}{TIMES}{kh * kw}", "one row per output window"]
            self.ops.append((x - self.gap / 2 - lab_w, "→"))
            x = self._advance(x, self.mat_box, mat_labels)
            self.panels.append(("matrix", self.mat_box, mat_labels))
            self.kcol_box = _Box(x, top, c_k, row_h, kh * kw, 1)
            kcol_labels = [f"kernel {kh * kw}{TIMES}1", p.labels["kernel"].replace("kernel ", "= ", 1),
                           "flattened"]
            self.ops.append((x - self.gap / 2, "@"))
            x = self._advance(x, self.kcol_box, kcol_labels)
            self.panels.append(("kcol", self.kcol_box, kcol_labels))
            self.prod_box = _Box(x, top, c_out, row_h, n, 1)
            prod_labels = [f"product {n}{TIMES}1", ""]
            self.ops.append((x - self.gap / 2, "="))
            x = self._advance(x, self.prod_box, prod_labels)
            self.panels.append(("prod", self.prod_box, prod_labels))
            self.out_box = _Box(x, top, c_out, c_out, oh, ow)
            self.ops.append((x - self.gap / 2, "→"))
            out_labels = [p.labels["output"], "the product, reshaped"]
            self.k_box: _Box | None = None
        else:
            self.k_box = _Box(x, top, c_k, c_k, kh, kw)
            k_labels = [p.labels["kernel"], p.labels["geometry"]]
            self.ops.append((x - self.gap / 2, "⋆" if self.op_pen.full else "*"))
            x = self._advance(x, self.k_box, k_labels)
            self.panels.append(("kernel", self.k_box, k_labels))
            self.out_box = _Box(x, top, c_out, c_out, oh, ow)
            self.ops.append((x - self.gap / 2, "="))
            out_labels = [p.labels["output"]]
        x = self._advance(x, self.out_box, out_labels)
        self.panels.append(("output", self.out_box, out_labels))
        boxes = [b for _, b, _ in self.panels if b is not None]
        grid_bottom = max(b.y + b.h for b in boxes)
        self.op_y = top + min(b.h for b in boxes if b is not self.in_box) / 2
        self.label_y = grid_bottom + 8
        n_labels = max(len(lab) for _, _, lab in self.panels)
        y = self.label_y + n_labels * (self.label_pen.size + 5) + 8
        self.width = max(x - self.gap + self.margin,
                         self.title_pen.width(p.labels["title"]) + 2 * self.margin,
                         self.label_pen.width(p.labels.get("source", "")) + 2 * self.margin, 360)
        self.eq_y = y
        self.eq_lines = 0
        if self.numbers and not settings.unroll:
            self.eq_lines = max(len(self.label_pen.wrap(st.equation, self.width - 2 * self.margin))
                                for st in p.steps)
            y += self.eq_lines * (self.label_pen.size + 6) + 6
        self.height = y + self.margin - 6

    def _advance(self, x: int, box: _Box, labels: list[str]) -> int:
        wide = max([box.w] + [self.label_pen.width(t) for t in labels])
        box.x = x + (wide - box.w) // 2
        return x + wide + self.gap

    # cells ------------------------------------------------------------------------------

    def _tap_text(self, r: int, c: int) -> str:
        return self.in_text[r][c]

    def _input_cells(self) -> tuple[list[list[str]], list[list[tuple[int, int, int]]],
                                    list[list[tuple[int, int, int]]]]:
        p = self.p
        hp, wp = p.grid.shape
        w_in = p.in_hw[1]
        texts, fills, colours = [], [], []
        photo = self.s.photo is not None and self.s.values is not None
        for r in range(hp):
            tr, fr, cr = [], [], []
            for c in range(wp):
                kind = int(p.kind[r, c])
                sr, sc = (int(v) for v in p.source[r, c])
                if self.numbers:
                    t = _cell_text(p.grid[r, c])
                else:
                    t = "0" if sr < 0 else cell_label(sr * w_in + sc)
                if kind == 0:
                    f, col = INPUT_FILL, TEXT
                    if photo:
                        f = _grey(p.grid[r, c])
                        col = TEXT if p.grid[r, c] >= 128 else WHITE
                elif kind == 1:
                    f, col = PAD_FILL, PAD_TEXT
                else:
                    f, col = INSERTED_FILL, INSERTED_TEXT
                tr.append(t)
                fr.append(f)
                cr.append(col)
            texts.append(tr)
            fills.append(fr)
            colours.append(cr)
        return texts, fills, colours

    # frames -----------------------------------------------------------------------------

    def frame(self, done: int, current: int | None, caption: str, product: bool = False) -> np.ndarray:
        """``done`` outputs (rows) finished; ``current`` the step whose window is shown (None: none)."""
        p = self.p
        img = Image.new("RGB", (self.width, self.height), WHITE)
        d = ImageDraw.Draw(img)
        self.title_pen.draw(d, (self.margin, self.title_y), p.labels["title"], TEXT)
        if p.labels.get("source"):
            self.label_pen.draw(d, (self.margin, self.source_y), p.labels["source"], SUBTEXT)
        colour = WINDOW if current is not None else TEXT
        self.label_pen.draw(d, (self.margin, self.caption_y), caption, colour)
        if self.photo:
            self._draw_photo(img, d)
        # input grid, the window's taps tinted
        fills = [list(r) for r in self.in_fill]
        step = p.steps[current] if current is not None else None
        if step is not None and not self.photo:
            for r, c in step.taps:
                fills[r][c] = _blend(fills[r][c], WINDOW_TINT)
        _grid(d, self.in_box, self.in_text, fills, self.in_colour, self.cell_pen)
        t, left, b, r_ = p.input_box
        x0, y0, _, _ = self.in_box.cell(t, left)
        _, _, x1, y1 = self.in_box.cell(b - 1, r_ - 1)
        d.rectangle([x0, y0, x1, y1], outline=INPUT_OUTLINE, width=2)
        if step is not None:
            for r, c in step.taps:
                _outline(d, self.in_box.cell(r, c), WINDOW, 3)
            (r0, c0), (r1, c1) = step.taps[0], step.taps[-1]
            ex0, ey0, _, _ = self.in_box.cell(r0, c0)
            _, _, ex1, ey1 = self.in_box.cell(r1, c1)
            d.rectangle([ex0 - 3, ey0 - 3, ex1 + 3, ey1 + 3], outline=WINDOW, width=1)
        oh, ow = p.out_hw
        kh, kw = p.weights.shape
        if self.k_box is not None:
            kf = [[KERNEL_FILL] * kw for _ in range(kh)]
            kc = [[TEXT] * kw for _ in range(kh)]
            _grid(d, self.k_box, self.k_text, kf, kc, self.cell_pen)
        else:
            self._draw_unroll(d, done, current, product)
        # output grid
        filled = 0 if self.s.unroll and not product else done
        texts = [[self.out_text[y][x] if y * ow + x < filled else "" for x in range(ow)] for y in range(oh)]
        ofill = [[OUTPUT_FILL if y * ow + x < filled else WHITE for x in range(ow)] for y in range(oh)]
        _grid(d, self.out_box, texts, ofill, [[TEXT] * ow for _ in range(oh)], self.cell_pen)
        if step is not None and not self.s.unroll:
            y, x = step.out_yx
            _outline(d, self.out_box.cell(y, x), WINDOW, 3)
        for ox, sym in self.ops:
            pen = self.star_pen if sym == "⋆" else self.op_pen
            pen.draw(d, (ox, self.op_y), sym, SUBTEXT, anchor="mm")
        for _, box, labels in self.panels:
            assert box is not None
            cx = box.x + box.w / 2
            for i, lab in enumerate(labels):
                if lab:
                    self.label_pen.draw(d, (cx, self.label_y + i * (self.label_pen.size + 5)), lab,
                                        TEXT if i == 0 else SUBTEXT, anchor="ma")
        if step is not None and self.eq_lines:
            lines = self.label_pen.wrap(step.equation, self.width - 2 * self.margin)
            for i, ln in enumerate(lines):
                self.label_pen.draw(d, (self.margin, self.eq_y + i * (self.label_pen.size + 6)), ln, TEXT)
        return np.asarray(img)

    @cache  # noqa: B019 -- one renderer per animation, alive as long as its frames
    def _photo_picture(self) -> Image.Image:
        """The photo at the size drawn (resized once, not once a frame)."""
        assert self.s.photo is not None
        pic = Image.fromarray(np.asarray(self.s.photo, dtype=np.uint8)).convert("RGB")
        return pic.resize(self.photo_size, Image.Resampling.LANCZOS)

    def _draw_photo(self, img: Image.Image, d: ImageDraw.ImageDraw) -> None:
        s = self.s
        img.paste(self._photo_picture(), self.photo_xy)
        if s.photo_box is not None:
            bx, by, bw, bh = s.photo_box
            f = self.photo_f
            x0, y0 = self.photo_xy
            d.rectangle([x0 + bx * f - 2, y0 + by * f - 2, x0 + (bx + bw) * f + 1, y0 + (by + bh) * f + 1],
                        outline=WINDOW, width=2)

    def _draw_unroll(self, d: ImageDraw.ImageDraw, done: int, current: int | None, product: bool) -> None:
        p = self.p
        n = len(p.steps)
        kh, kw = p.weights.shape
        cols = kh * kw
        texts, fills, colours = [], [], []
        for i, st in enumerate(p.steps):
            if i < done or (current is not None and i == current):
                texts.append([self.in_text[r][c] for r, c in st.taps])
                fills.append([self.in_fill[r][c] if not self.photo else _tap_fill(p, r, c)
                              for r, c in st.taps])
                colours.append([self.in_colour[r][c] if not self.photo else _tap_colour(p, r, c)
                                for r, c in st.taps])
            else:
                texts.append([""] * cols)
                fills.append([WHITE] * cols)
                colours.append([TEXT] * cols)
        _grid(d, self.mat_box, texts, fills, colours, self.row_pen)
        for i, lab in enumerate(self.row_labels):
            x0, y0, _, y1 = self.mat_box.cell(i, 0)
            self.small.draw(d, (x0 - 4, (y0 + y1) / 2), lab, SUBTEXT, anchor="rm")
        if current is not None:
            x0, y0, _, _ = self.mat_box.cell(current, 0)
            _, _, x1, y1 = self.mat_box.cell(current, cols - 1)
            d.rectangle([x0, y0, x1, y1], outline=WINDOW, width=3)
        ktext = [[t] for row in self.k_text for t in row]
        _grid(d, self.kcol_box, ktext, [[KERNEL_FILL]] * cols, [[TEXT]] * cols, self.row_pen)
        ptext = [[self.out_text[y][x] if product else ""] for y, x in (st.out_yx for st in p.steps)]
        pfill = [[OUTPUT_FILL if product else WHITE]] * n
        _grid(d, self.prod_box, ptext, pfill, [[TEXT]] * n, self.row_pen)


def _tap_fill(p: Plan, r: int, c: int) -> tuple[int, int, int]:
    return _grey(p.grid[r, c]) if p.kind[r, c] == 0 else (PAD_FILL if p.kind[r, c] == 1 else INSERTED_FILL)


def _tap_colour(p: Plan, r: int, c: int) -> tuple[int, int, int]:
    if p.kind[r, c] == 0:
        return TEXT if p.grid[r, c] >= 128 else WHITE
    return PAD_TEXT if p.kind[r, c] == 1 else INSERTED_TEXT


def _transposed_text(n: int, k: int, s: int, d: int, before: int, after: int, extra: int) -> str:
    """The transposed size as PyTorch's ConvTranspose2d documents it, (n-1)*s - 2*p + d*(k-1) + a + 1
    (both pads written out when they differ): ``+1-1-1`` read as unrelated terms."""
    pads = "" if before == after == 0 else f"-2*{before}" if before == after else f"-{before}-{after}"
    return f"({n}-1)*{s}{pads}+{d}*({k}-1)+{extra}+1"


def _blend(a: tuple[int, int, int], b: tuple[int, int, int]) -> tuple[int, int, int]:
    return (int((a[0] + b[0]) // 2), int((a[1] + b[1]) // 2), int((a[2] + b[2]) // 2))


def animate(settings: AnimateSettings) -> Animation:
    """Every frame of the animation, with durations (ms, whole hundredths: GIF's unit)."""
    p = plan(settings)
    r = _Renderer(p, settings)
    step_ms = max(20, int(round(1000.0 / settings.fps / 10.0)) * 10)
    n = len(p.steps)
    oh, ow = p.out_hw
    kh, kw = p.weights.shape
    # (outputs done, the step whose window is shown, caption, the product drawn) per frame
    shown: list[tuple[int, int | None, str, bool]] = []
    if settings.unroll:
        what = f"im2col: each output's window becomes one row of a {n}{TIMES}{kh * kw} matrix"
        shown.append((0, None, what, False))
        for i, st in enumerate(p.steps):
            y, x = st.out_yx
            shown.append((i, i, f"row {i + 1} of {n}: the window of out[{y},{x}]", False))
        shown.append((n, None, f"one matrix product ({n}{TIMES}{kh * kw}) @ ({kh * kw}{TIMES}1) = "
                               f"({n}{TIMES}1): every output at once, reshaped to {oh}{TIMES}{ow}", True))
    else:
        shown.append((0, None, f"{n} outputs to compute: the kernel's window visits one per frame", False))
        for i, st in enumerate(p.steps):
            y, x = st.out_yx
            shown.append((i + 1, i, f"output {i + 1} of {n}: out[{y},{x}]", False))
        shown.append((n, None, f"done: output {oh}{TIMES}{ow}", False))
    durations = [step_ms * HOLD] + [step_ms] * n + [step_ms * HOLD]
    return Animation(Frames(lambda i: r.frame(*shown[i]), len(shown)), durations, p)


# --- encoding --------------------------------------------------------------------------------


def _pack(rgb: np.ndarray) -> np.ndarray:
    return (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]


def _unpack(packed: np.ndarray) -> np.ndarray:
    """Packed colours (see :func:`_pack`) as (N, 3) int64 R, G, B."""
    return np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], axis=1).astype(np.int64)


def _shared_palette(frames: Sequence[np.ndarray]) -> np.ndarray:
    """One palette for every frame: the (up to) 255 colours the frames use most, packed, sorted.

    255, not 256: the GIF writer needs a free entry to make unchanged pixels transparent.
    """
    picks = sorted({0, len(frames) - 1, *range(0, len(frames), max(1, len(frames) // 8))})
    colours, counts = np.unique(np.concatenate([_pack(frames[i]).ravel() for i in picks]), return_counts=True)
    return np.sort(colours[np.argsort(counts, kind="stable")[::-1][:255]])


def _lookup(packed: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Palette positions of packed colours: exact where ``palette`` has the colour, else the nearest.

    (Pillow's own mapping to a given palette is approximate: it would turn white into 252.)
    """
    # every colour looked up in the sorted palette (no sort of the frame's own colours: np.unique of
    # each frame was the most of a 256-output animation's time); only the misses are sorted out
    pos = np.clip(np.searchsorted(palette, packed), 0, palette.size - 1)
    missing = palette[pos] != packed
    if missing.any():
        miss, inverse = np.unique(packed[missing], return_inverse=True)
        rgb, want = _unpack(palette), _unpack(miss)
        pos[missing] = np.argmin(((want[:, None, :] - rgb[None, :, :]) ** 2).sum(axis=2), axis=1)[inverse]
    return pos.astype(np.uint8)


def _palette_image(index: np.ndarray, palette: np.ndarray) -> Image.Image:
    img = Image.fromarray(index, "P")
    img.putpalette(_unpack(palette).astype(np.uint8).reshape(-1).tolist())
    return img


def _indexed_frames(frames: Iterable[np.ndarray], palette: np.ndarray) -> Iterator[Image.Image]:
    """Each frame in palette mode (exact where its colour is in ``palette``, else the nearest entry),
    looking up only the pixels that changed since the
    frame before (a frame redraws one window and one output: a few percent of its pixels)."""
    prev: np.ndarray | None = None
    index = np.empty(0, dtype=np.uint8)
    for frame in frames:
        if prev is None or prev.shape != frame.shape:
            index = _lookup(_pack(frame), palette)
        else:
            changed = changed_pixels(frame, prev)
            index = index.copy()
            index[changed] = _lookup(_pack(frame[changed]), palette)
        prev = frame
        yield _palette_image(index, palette)


def encode_animation(frames: Sequence[np.ndarray], durations: Sequence[int], fmt: str) -> bytes:
    """The frames as an animated ``gif``, ``png`` (APNG) or ``webp`` file, looping forever."""
    fmt = fmt.lower()
    if fmt not in FORMATS:
        msg = f"animation format must be one of {', '.join(FORMATS)}, got {fmt!r}"
        raise UsageError(msg)
    if not frames or len(frames) != len(durations):
        msg = "an animation needs frames and one duration per frame"
        raise UsageError(msg)
    buf = io.BytesIO()
    # the frames are drawn as they are encoded (a Frames sequence draws each when it is asked for):
    # a 16×16 animation's 258 frames are 1 GB as RGB
    if fmt == "gif":
        ims = _indexed_frames(frames, _shared_palette(frames))
        first = next(ims)
        first.save(buf, "GIF", save_all=True, append_images=ims, duration=list(durations), loop=0,
                   optimize=True, disposal=1)
    elif fmt == "png":
        buf.write(encode_apng(frames, len(frames), durations))
    else:
        if not features.check("webp"):
            msg = "this Pillow was built without WebP: write .gif or .png (APNG)"
            raise UsageError(msg)
        # Pillow's WebP writer takes a list (it holds every frame)
        webp = [Image.fromarray(f, "RGB") for f in frames]
        webp[0].save(buf, "WEBP", save_all=True, append_images=webp[1:], duration=list(durations), loop=0,
                     lossless=True, quality=80, method=4)
    return buf.getvalue()


def encode_still(frame: np.ndarray) -> bytes:
    """One frame as PNG bytes (for slides)."""
    buf = io.BytesIO()
    Image.fromarray(frame, "RGB").save(buf, "PNG", optimize=True)
    return buf.getvalue()


__all__ = [
    "FORMATS",
    "AnimateSettings",
    "Animation",
    "Plan",
    "Step",
    "animate",
    "cell_label",
    "encode_animation",
    "encode_still",
    "plan",
    "small_integers",
    "transposed_size",
]
