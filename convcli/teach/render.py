"""Labelled figures for learners: panels side by side, each with its operation and NCHW shape.

Pillow is used here for drawing only (resizing, text); files are encoded and
written by the run layer. Everything returns uint8 arrays.

- :func:`make_montage` lays panels out in a grid of square cells, scales each to
  fit (nearest-neighbour by a whole factor when enlarging, so a 56×56 feature map
  shows its pixels as equal blocks; Lanczos when shrinking) and writes the
  label and shape under it, dark on white.
- :func:`feature_maps_to_panels` turns a (H, W, C) float stack into one panel per
  channel, each stretched min..max on its own ("channel i/C").
- :func:`kernel_panel` draws a kernel's weights in a diverging palette
  (blue negative, white zero, red positive), values written in the cells up to 5×5.
- :func:`padded_frame_panel` shows an image padded by a mode with the original
  region outlined (the lecture's zeros / border / reflection figure).
"""

from __future__ import annotations

import math
import re
from dataclasses import replace
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from convcli.core.padding import pad_array, resolve_mode
from convcli.core.pixels import to_pixels
from convcli.core.records import record
from convcli.errors import UsageError
from convcli.pipeline import ConvStage, StagePlan, nchw
from convcli.report import shape_text

BACKGROUND = (255, 255, 255)
TEXT = (20, 20, 20)
#: the hairline around each panel's picture
FRAME = (200, 200, 200)
SUBTEXT = (90, 90, 90)
OUTLINE = (255, 40, 40)
CHECKER = ((204, 204, 204), (255, 255, 255))
NEGATIVE = np.array([33, 102, 172], dtype=np.float64)  # blue
POSITIVE = np.array([178, 24, 43], dtype=np.float64)  # red
#: columns of the grid when the caller does not say
DEFAULT_COLUMNS = 4


@record
class Panel:
    """One picture of a montage: ``image`` is uint8 (H, W), (H, W, 3) or (H, W, 4)."""

    label: str
    shape: str
    image: np.ndarray
    #: drawn at the one scale of every such panel of its montage (the stages of a pipeline: a
    #: downsampled stage looks smaller), not fitted to its cell on its own
    true_scale: bool = False
    #: an empty cell keeping a grid's columns aligned: nothing drawn, not even the hairline frame
    blank: bool = False

    def __post_init__(self) -> None:
        a = np.asarray(self.image)
        if a.dtype != np.uint8 or not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (1, 3, 4))):
            msg = f"panel image must be uint8 (H, W), (H, W, 3) or (H, W, 4), got {a.dtype} {a.shape}"
            raise UsageError(msg)
        if a.shape[0] == 0 or a.shape[1] == 0:
            msg = f"panel {self.label!r} has an empty image {a.shape}"
            raise UsageError(msg)
        if a.ndim == 3 and a.shape[2] == 1:
            a = a[:, :, 0]
        self.image = a


@record(frozen=True)
class Layout:
    """Pixel geometry of a montage, computed from the cell size alone."""

    count: int
    columns: int
    rows: int
    cell: int
    margin: int
    label_height: int
    title_height: int
    font_size: int
    small_font_size: int
    title_font_size: int

    @property
    def width(self) -> int:
        return self.columns * self.cell + (self.columns + 1) * self.margin

    @property
    def height(self) -> int:
        return self.title_height + self.rows * (self.cell + self.label_height) + (self.rows + 1) * self.margin

    def cell_box(self, i: int) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) of panel ``i``'s picture cell."""
        r, c = divmod(i, self.columns)
        left = self.margin + c * (self.cell + self.margin)
        top = self.title_height + self.margin + r * (self.cell + self.label_height + self.margin)
        return left, top, left + self.cell, top + self.cell

    def label_box(self, i: int) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) of the text under panel ``i``."""
        left, _, right, bottom = self.cell_box(i)
        return left, bottom, right, bottom + self.label_height


def layout(count: int, *, cell: int = 224, columns: int | None = None, title: bool | int = False,
           label_lines: int = 1) -> Layout:
    """The grid for ``count`` panels: ``columns`` (default up to 4) across, rows as needed; room under
    each for ``label_lines`` lines of label and its shape."""
    if count < 1:
        msg = "a montage needs at least one panel"
        raise UsageError(msg)
    if cell < 16:
        msg = f"montage cell must be >= 16 pixels, got {cell}"
        raise UsageError(msg)
    cols = min(count, DEFAULT_COLUMNS) if columns is None else columns
    if cols < 1:
        msg = f"montage columns must be >= 1, got {columns}"
        raise UsageError(msg)
    cols = min(cols, count)
    rows = math.ceil(count / cols)
    font = max(11, round(cell * 0.075))
    small = max(10, round(cell * 0.063))
    title_font = max(13, round(cell * 0.095))
    margin = max(6, cell // 14)
    label_h = label_lines * font + small + 3 * max(2, font // 4)
    lines = int(title)  # True = one line
    title_h = lines * (title_font + 4) + margin if lines else 0
    return Layout(count, cols, rows, cell, margin, label_h, title_h, font, small, title_font)


@lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's bundled scalable font (Pillow >= 10.1 with FreeType); a bitmap font otherwise."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # old Pillow or no FreeType: fixed-size bitmap font
        return ImageFont.load_default()


Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


def _text_width(draw: ImageDraw.ImageDraw, text: str, font: Font) -> float:
    return draw.textlength(text, font=font)


def _drawable(text: str) -> str:
    """Pillow's bundled font lacks "−" (U+2212) and "×" (U+00D7): draw "-" and "x" instead."""
    return text.replace("\u2212", "-").replace("\u00d7", "x")


def _fit_text(draw: ImageDraw.ImageDraw, text: str, font: Font, width: int) -> str:
    """``text`` shortened with an ellipsis until it fits ``width`` pixels."""
    text = _drawable(text)
    if _text_width(draw, text, font) <= width:
        return text
    while len(text) > 1 and _text_width(draw, text + "…", font) > width:
        text = text[:-1]
    return text + "…"


def label_lines(draw: ImageDraw.ImageDraw, text: str, font: Font, width: int, most: int = 3) -> list[str]:
    """A panel's label at its one font size: one line if it fits ``width``, else broken after spaces
    and commas into up to ``most`` lines, the last shortened with an ellipsis if still too long
    (a label was shrunk, then cut: "2. filter gabor:sigma=4,theta=30,lamb...")."""
    text = _drawable(text)
    if _text_width(draw, text, font) <= width:
        return [text]
    pieces = [p for p in re.split(r"(?<=[ ,])", text) if p]
    lines: list[str] = [""]
    for piece in pieces:
        if lines[-1] and _text_width(draw, (lines[-1] + piece).rstrip(), font) > width and len(lines) < most:
            lines.append("")
        lines[-1] += piece
    return [_fit_text(draw, line.strip(), font, width) for line in lines]


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: Font, width: int) -> list[str]:
    """``text`` split at spaces into lines no wider than ``width`` (a single long word stays whole;
    ``a -> b`` stays together: a title ending "224" above "-> 112" read as two sizes)."""
    words: list[str] = []
    for word in _drawable(text).split(" "):
        if words and (word.startswith("->") or words[-1].endswith("->")):
            words[-1] += " " + word
        else:
            words.append(word)
    lines: list[str] = []
    for word in words:
        if lines and _text_width(draw, lines[-1] + " " + word, font) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines or [""]


def blank_panel() -> Panel:
    """An empty cell (nothing drawn, no label), to keep a grid's columns aligned."""
    return Panel("", "", np.full((8, 8), 255, dtype=np.uint8), blank=True)


def weights_panel(weights: np.ndarray, label: str, in_names: list[str], *, size: int = 224) -> Panel:
    """All (C_in, kh, kw) weights of one output channel: one small kernel per input channel, each
    captioned with its input (blue negative, red positive, one scale for all), in a near-square grid
    (three 3x3 kernels in a row left each tap 24 px and its number about 6 px high)."""
    w = np.asarray(weights, dtype=np.float64)
    cin, kh, kw = w.shape
    gap, caption = 6, 16
    cols = math.ceil(math.sqrt(cin))
    rows = math.ceil(cin / cols)
    px = max(4, min((size - gap * (cols - 1)) // cols // kw,
                    (size - rows * caption - gap * (rows - 1)) // rows // kh))
    scale = float(np.max(np.abs(w))) or 1.0
    step_x, step_y = kw * px + gap, caption + kh * px + gap
    canvas = Image.new("RGB", (cols * step_x - gap, rows * step_y - gap), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    font = _font(12)
    for c in range(cin):
        r, q = divmod(c, cols)
        x0, y0 = q * step_x, r * step_y
        colours = _diverging(np.concatenate([w[c], [[scale] * kw, [-scale] * kw]]))[:kh]
        img = np.repeat(np.repeat(colours, px, axis=0), px, axis=1)
        canvas.paste(Image.fromarray(np.clip(np.rint(img), 0, 255).astype(np.uint8), "RGB"),
                     (x0, y0 + caption))
        draw.text((x0 + kw * px / 2, y0 + 1), f"in {in_names[c]}", fill=TEXT, font=font, anchor="mt")
        if px >= 18:
            for i in range(kh):
                for j in range(kw):
                    strong = abs(w[c, i, j]) / scale > 0.6
                    text = _weight_text(w[c, i, j])
                    draw.text((x0 + (j + 0.5) * px, y0 + caption + (i + 0.5) * px), text,
                              fill=(255, 255, 255) if strong else TEXT,
                              font=_fit_font(draw, text, max(9, px // 3), 8, px - 2), anchor="mm")
    return Panel(label, f"[{cin}, {kh}, {kw}]", np.asarray(canvas))


def relu_map_panel(values: np.ndarray, label: str, shape: str, *, nearly: float = 0.01) -> Panel:
    """A ReLU output; one that is (almost) all zero says so in words instead of a black square."""
    v = np.asarray(values, dtype=np.float64)
    positive = float(np.mean(v > 0))
    if positive >= nearly:
        return Panel(label, shape, normalize_to_uint8(v))
    canvas = Image.new("RGB", (224, 224), (235, 235, 235))
    draw = ImageDraw.Draw(canvas)
    lines = (["all zero:", "every response"] if positive == 0
             else [f"{(1 - positive) * 100:.1f}% zero:", "almost every response"])
    lines += ["of this channel", "was zero or below", "and ReLU cut it"]
    for n, line in enumerate(lines):
        draw.text((112, 60 + n * 24), line, fill=TEXT, font=_font(17), anchor="mt")
    return Panel(f"{label} (" + ("all 0" if positive == 0 else f"{positive * 100:.1f}% > 0") + ")", shape,
                 np.asarray(canvas))


def _fit_font(draw: ImageDraw.ImageDraw, text: str, size: int, smallest: int, width: int) -> Font:
    """The largest font from ``size`` down to ``smallest`` in which ``text`` fits ``width`` pixels."""
    text = _drawable(text)
    for s in range(size, smallest - 1, -1):
        font = _font(s)
        if _text_width(draw, text, font) <= width:
            return font
    return _font(smallest)


def checkerboard(h: int, w: int, square: int = 8) -> np.ndarray:
    """A light grey/white checkerboard (H, W, 3) uint8, the usual backdrop for transparency."""
    yy, xx = np.mgrid[0:h, 0:w]
    on = ((yy // square + xx // square) % 2).astype(bool)
    out = np.empty((h, w, 3), dtype=np.uint8)
    out[~on] = CHECKER[0]
    out[on] = CHECKER[1]
    return out


def scale_to_cell(image: np.ndarray, cell: int, factor: float | None = None) -> np.ndarray:
    """Fit ``image`` into a ``cell``×``cell`` square, keeping its aspect ratio (or scale it by
    ``factor``, which must keep it within the cell).

    Enlarging uses nearest neighbour by a whole factor (every source pixel becomes
    an equal block); shrinking uses Lanczos. Returns uint8 with the same channels.
    """
    h, w = image.shape[:2]
    f = min(cell / h, cell / w) if factor is None else factor
    pil = Image.fromarray(image)
    if f >= 1:
        n = int(f)
        if n == 1:
            return image
        return np.asarray(pil.resize((w * n, h * n), Image.Resampling.NEAREST))
    size = (max(1, round(w * f)), max(1, round(h * f)))
    return np.asarray(pil.resize(size, Image.Resampling.LANCZOS))


def _to_rgb(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W), (H, W, 3) or (H, W, 4) -> (H, W, 3); alpha composited on a checkerboard."""
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    if image.shape[2] == 3:
        return image
    back = Image.fromarray(checkerboard(*image.shape[:2]), "RGB").convert("RGBA")
    return np.asarray(Image.alpha_composite(back, Image.fromarray(image, "RGBA")).convert("RGB"))


def make_montage(
    panels: list[Panel],
    *,
    title: str | None = None,
    cell: int = 224,
    columns: int | None = None,
) -> np.ndarray:
    """Panels side by side (wrapping into rows), each labelled; uint8 RGB (H, W, 3).

    Each picture is scaled into a ``cell``×``cell`` square (see :func:`scale_to_cell`)
    and centred; under it the panel's label and, smaller, its shape. Panels marked
    ``true_scale`` share one factor, the one that fits the largest of them.
    """
    sized = [p.image.shape[:2] for p in panels if p.true_scale]
    common = min(min(cell / h, cell / w) for h, w in sized) if sized else None
    probe = layout(len(panels), cell=cell, columns=columns, title=bool(title))
    big = _font(probe.title_font_size)
    lines = _wrap(ImageDraw.Draw(Image.new("RGB", (1, 1))), title, big, probe.width - 2 * probe.margin) \
        if title else []
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    label_font = _font(probe.font_size)
    labels = [label_lines(measure, p.label, label_font, cell) for p in panels]
    lay = layout(len(panels), cell=cell, columns=columns, title=len(lines),
                 label_lines=max(len(lbl) for lbl in labels))
    canvas = Image.new("RGB", (lay.width, lay.height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    small = _font(lay.small_font_size)
    for n, line in enumerate(lines):
        text = _fit_text(draw, line, big, lay.width - 2 * lay.margin)
        y = lay.margin + lay.title_font_size / 2 + n * (lay.title_font_size + 4)
        draw.text((lay.width / 2, y), text, fill=TEXT, font=big, anchor="mm")
    pad = max(2, lay.font_size // 4)
    for i, p in enumerate(panels):
        if p.blank:  # framed, an empty cell looked like a missing picture
            continue
        pic = _to_rgb(scale_to_cell(p.image, cell, common if p.true_scale else None))
        left, top, right, bottom = lay.cell_box(i)
        ph, pw = pic.shape[:2]
        x0, y0 = left + (cell - pw) // 2, top + (cell - ph) // 2
        canvas.paste(Image.fromarray(pic, "RGB"), (x0, y0))
        # A hairline around every picture: an all-white result is a white square, not an empty cell.
        draw.rectangle((x0 - 1, y0 - 1, x0 + pw, y0 + ph), outline=FRAME)
        lx0, ly0, lx1, _ = lay.label_box(i)
        cx = (lx0 + lx1) / 2
        for n, line in enumerate(labels[i]):
            draw.text((cx, ly0 + pad + n * lay.font_size), line, fill=TEXT, font=label_font, anchor="mt")
        shape = _fit_text(draw, p.shape, small, cell)
        draw.text((cx, ly0 + 2 * pad + len(labels[i]) * lay.font_size), shape, fill=SUBTEXT, font=small,
                  anchor="mt")
    return np.asarray(canvas)


# --- panels for learners ------------------------------------------------------------------


def normalize_to_uint8(values: np.ndarray) -> np.ndarray:
    """Stretch min..max to 0..255 (a flat map, which carries no contrast, becomes black)."""
    v = np.asarray(values, dtype=np.float64)
    finite = v[np.isfinite(v)]
    if finite.size == 0:
        return np.zeros(v.shape, dtype=np.uint8)
    lo, hi = float(finite.min()), float(finite.max())
    if hi - lo <= 1e-12 * max(1.0, abs(hi)):
        return np.zeros(v.shape, dtype=np.uint8)
    scaled = (np.nan_to_num(v, nan=lo, posinf=hi, neginf=lo) - lo) * (255.0 / (hi - lo))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def feature_maps_to_panels(maps: np.ndarray, prefix: str, shape: str,
                           limit: int | None = None) -> list[Panel]:
    """One grey panel per channel of a (H, W, C) float stack, each normalised min..max on its own
    (of the first ``limit`` channels, if given).

    Labels read ``"{prefix} (channel i/C)"`` (1-based, as the lecture's "Channel 1/3"),
    or ``"channel i/C"`` without a prefix; every panel carries ``shape`` and the channel's own range,
    black to white (``0..345``; ``all 0`` for a flat one): stretched each on its own, a map's brightness
    said nothing of its values, and a flat map was a black square like any dark one.
    """
    m = np.asarray(maps)
    if m.ndim == 2:
        m = m[:, :, None]
    if m.ndim != 3:
        msg = f"feature maps must be (H, W, C), got shape {m.shape}"
        raise UsageError(msg)
    c = m.shape[2]
    panels = []
    for i in range(c if limit is None else min(c, limit)):
        name = f"channel {i + 1}/{c}"
        label = f"{prefix} ({name})" if prefix else name
        finite = m[:, :, i][np.isfinite(m[:, :, i])]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
        values = f"all {_nice_value(lo)}" if normalize_to_uint8(np.array([lo, hi])).max() == 0 else \
            f"{_nice_value(lo)}..{_nice_value(hi)}"
        panels.append(Panel(label, f"{shape} {values}", normalize_to_uint8(m[:, :, i])))
    return panels


def _nice_value(v: float) -> str:
    """A range end for a label: 4 significant digits, 3 past 1e4 (a 224-px panel cut '4.525e+05'), -0 as 0."""
    return f"{v + 0.0:.4g}" if abs(v) < 1e4 else f"{v + 0.0:.3g}"


def _diverging(weights: np.ndarray, scale: float | None = None) -> np.ndarray:
    """Blue (negative) - white (0) - red (positive), full colour at ``scale`` (default: the largest
    |weight|); (kh, kw, 3) float."""
    scale = scale or float(np.max(np.abs(weights))) or 1.0
    t = np.clip(weights / scale, -1, 1)[:, :, None]
    white = np.array([255.0, 255.0, 255.0])
    return np.where(t >= 0, white + t * (POSITIVE - white), white + (-t) * (NEGATIVE - white))


def _weight_text(v: float) -> str:
    """Short text for a weight: integers bare, small values to 2 significant digits, else 2 decimals."""
    if float(v).is_integer():
        return str(int(v))
    if abs(v) < 0.0095:  # 0.00027 would not fit a cell: 3e-4 (0.0099 is 0.01, not 1e-2)
        if abs(v) >= 0.00095:
            return f"{v:.1g}"  # 0.003
        mantissa, exponent = f"{v:.0e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    if abs(v) < 0.1:
        return f"{v:.2g}"
    return f"{v:.2f}"


def kernel_panel(weights: np.ndarray, label: str, *, size: int = 200, scale: float | None = None) -> Panel:
    """A kernel drawn as coloured cells (blue negative, red positive), values written up to 5×5.

    ``scale``: the |weight| drawn at full colour, one for every kernel a figure compares (the steps of
    a descent: -0.11 at step 0 was as dark as -1.00 at step 60, each on its own scale); default the
    kernel's own largest."""
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 2 or w.size == 0 or not np.all(np.isfinite(w)):
        msg = f"kernel panel needs a finite 2-D kernel, got shape {w.shape}"
        raise UsageError(msg)
    kh, kw = w.shape
    px = max(4, size // max(kh, kw))
    colours = _diverging(w, scale)
    img = np.repeat(np.repeat(colours, px, axis=0), px, axis=1)
    canvas = Image.fromarray(np.clip(np.rint(img), 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(canvas)
    grid = (160, 160, 160)
    for i in range(1, kh):
        draw.line([(0, i * px), (kw * px, i * px)], fill=grid, width=1)
    for j in range(1, kw):
        draw.line([(j * px, 0), (j * px, kh * px)], fill=grid, width=1)
    if kh <= 5 and kw <= 5:
        full = scale or float(np.max(np.abs(w))) or 1.0
        font = _font(max(10, px // 4))
        for i in range(kh):
            for j in range(kw):
                strong = abs(w[i, j]) / full > 0.6
                draw.text(((j + 0.5) * px, (i + 0.5) * px), _weight_text(w[i, j]),
                          fill=(255, 255, 255) if strong else TEXT, font=font, anchor="mm")
    return Panel(label, f"[{kh}, {kw}]", np.asarray(canvas))


def padded_frame_panel(image: np.ndarray, pad: int, mode: str) -> Panel:
    """``image`` padded by ``pad`` pixels with ``mode``, the original region outlined in red."""
    m = resolve_mode(mode)
    if m.numpy is None:
        msg = f"padding mode {m.name!r} adds no border to show; choose zeros, border, reflection, ..."
        raise UsageError(msg)
    if pad < 1:
        msg = f"pad must be >= 1 to show a frame, got {pad}"
        raise UsageError(msg)
    a = np.asarray(image)
    if a.dtype != np.uint8 or a.ndim not in (2, 3):
        msg = f"image must be uint8 (H, W) or (H, W, C), got {a.dtype} {a.shape}"
        raise UsageError(msg)
    h, w = a.shape[:2]
    padded = pad_array(a, (pad, pad, pad, pad), m)
    rgb = _to_rgb(padded if padded.ndim == 2 or padded.shape[2] != 1 else padded[:, :, 0]).copy()
    canvas = Image.fromarray(rgb, "RGB")
    draw = ImageDraw.Draw(canvas)
    line = max(1, round(max(h, w) / 112))
    # just outside the original pixels, so none of them is covered
    draw.rectangle([pad - line, pad - line, pad + w - 1 + line, pad + h - 1 + line], outline=OUTLINE,
                   width=line)
    c = 1 if a.ndim == 2 else a.shape[2]
    return Panel(f"{m.name} padding ({pad} px)", f"[1, {c}, {h + 2 * pad}, {w + 2 * pad}]",
                 np.asarray(canvas))


# --------------------------------------------------------------------------- results as panels

#: stages whose outputs are feature maps: shown channel by channel, each normalised
FEATURE_OPS = frozenset({"conv", "relu"})


def display_pixels(values: np.ndarray, op: str, maxval: float, policy: str | None = None) -> np.ndarray:
    """A stage's float output as uint8 for looking at: ``policy`` (a --range), else colour ops
    clipped and edges by |x|."""
    scaled = values * (255.0 / maxval)
    policy = policy or ("abs" if op == "edges" else "clip")
    pixels, _ = to_pixels(scaled[:, :, 0] if scaled.shape[2] == 1 else scaled, policy, 8)
    return pixels


def stage_panels(plan: StagePlan | None, values: np.ndarray, maxval: float, index: int,
                 policy: str | None = None) -> list[Panel]:
    """Panels for one stage's output (or the input when ``plan`` is None); ``policy``: the --range
    its picture is drawn with (the output's, for the last stage), else the op's own."""
    shape = shape_text(nchw((values.shape[2], values.shape[0], values.shape[1])))
    if plan is None:
        if values.shape[2] not in (1, 3):  # a .npy of 2, 4 or more channels: no picture, one map each
            maps = feature_maps_to_panels(values, "input", shape, limit=GRID_CHANNELS)
            return [replace(p, true_scale=True) for p in maps]
        return [Panel("input", shape, display_pixels(values, "input", maxval), true_scale=True)]
    if plan.stage.op == "flatten":
        return []  # a vector: nothing to draw as a picture
    rec = plan.stage.describe()
    label = f"{index}. {plan.stage.op}" + (f" {rec['kernel']}" if rec.get("kernel") else "")
    if plan.stage.op in FEATURE_OPS or values.shape[2] not in (1, 3):
        drawn = feature_maps_to_panels(values, label, shape, limit=GRID_CHANNELS)
        maps = [replace(p, true_scale=True) for p in drawn]
        return conv_kernel_panels(plan, index) + maps
    if policy is None and plan.stage.op != "edges" and float(np.mean(values < 0)) > SIGNED_SHARE:
        # a blur or a downsample of an edge response is signed too: clipped, it was half black where
        # the edges stage before it was drawn bright
        policy, label = "abs", f"{label} |x|"
    return [Panel(label, shape, display_pixels(values, plan.stage.op, maxval, policy), true_scale=True)]


#: Most channels drawn of one image (an output's grid, a montage's input or stage): each channel map
#: of the output has its own file whatever the count, but 4096 panels made a 976x289808 grid, 2.8 GB
#: and 47 s, that no viewer opens.
GRID_CHANNELS = 64

#: The share of negative samples from which a stage's picture (not the output's) is drawn as |x|.
SIGNED_SHARE = 0.10


def conv_kernel_panels(plan: StagePlan, index: int, most: int = 8) -> list[Panel]:
    """For a conv stage, every weight that makes each output channel (the first ``most`` outputs):
    one panel per output with a small kernel per input channel, as the demo's figure 7 draws them;
    a 1x1 layer as one (out, in) matrix."""
    if not isinstance(plan.stage, ConvStage):
        return []
    cin = plan.in_shape[0]
    w = plan.stage.weights_for(cin)
    cout = w.shape[0]
    if w.shape[2:] == (1, 1):
        return [kernel_panel(w[:, :, 0, 0], f"{index}. conv 1x1: row = out, column = in")]
    names = ["R", "G", "B"] if cin == 3 and index == 1 else [str(c + 1) for c in range(cin)]
    shown = [weights_panel(w[o], f"{index}. conv out {o + 1} <- in {', '.join(names)}", names)
             for o in range(min(most, cout))]
    if cout > most:
        shown[-1] = Panel(f"{shown[-1].label} (first {most} of {cout} outputs)", shown[-1].shape,
                          shown[-1].image)
    return shown
