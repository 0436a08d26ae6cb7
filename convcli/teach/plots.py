"""Plots drawn with Pillow alone (no matplotlib): the loss curve of ``learn`` and a kernel's
frequency response for ``kernels --response``. Everything returns uint8 RGB arrays.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from convcli.core.records import record
from convcli.teach.render import BACKGROUND, SUBTEXT, TEXT, _font

AXIS = (60, 60, 60)
GRID = (225, 225, 225)
LINE = (33, 102, 172)
LINE2 = (178, 24, 43)


@record(frozen=True)
class Frame:
    """A plot area inside an image, with data ranges mapped to pixels."""

    left: int
    top: int
    right: int
    bottom: int
    x0: float
    x1: float
    y0: float
    y1: float

    def px(self, x: float, y: float) -> tuple[float, float]:
        fx = (x - self.x0) / ((self.x1 - self.x0) or 1.0)
        fy = (y - self.y0) / ((self.y1 - self.y0) or 1.0)
        return self.left + fx * (self.right - self.left), self.bottom - fy * (self.bottom - self.top)


def _nice(v: float) -> str:
    return f"{v:.3g}"


def _axes(d: ImageDraw.ImageDraw, f: Frame, xticks: Sequence[tuple[float, str]],
          yticks: Sequence[tuple[float, str]], xlabel: str, ylabel: str, size: int) -> None:
    font = _font(size)
    _axes_only(d, f, xticks, yticks, size=size, gap=4)
    d.text(((f.left + f.right) / 2, f.bottom + size + 10), xlabel, fill=TEXT, font=font, anchor="mt")
    # the y label, written vertically
    w = int(d.textlength(ylabel, font=font)) + 4
    tmp = Image.new("RGB", (w, size + 6), BACKGROUND)
    ImageDraw.Draw(tmp).text((2, 2), ylabel, fill=TEXT, font=font)
    rot = tmp.rotate(90, expand=True)
    img = d._image  # type: ignore[attr-defined]
    img.paste(rot, (4, int((f.top + f.bottom) / 2 - rot.height / 2)))


def loss_curve(losses: Sequence[float], *, title: str, marks: Sequence[int] = (),
               width: int = 720, height: int = 420) -> np.ndarray:
    """Loss against step on a log scale (base 10), with ``marks`` (steps) dotted."""
    vals = np.asarray(losses, dtype=np.float64)
    floor = max(float(np.min(vals[vals > 0])) if np.any(vals > 0) else 1e-30, 1e-30)
    logs = np.log10(np.maximum(vals, floor))
    lo, hi = math.floor(float(logs.min())), math.ceil(float(logs.max()))
    if hi == lo:
        hi = lo + 1
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    d = ImageDraw.Draw(canvas)
    size = 13
    d.text((width / 2, 8), title, fill=TEXT, font=_font(15), anchor="mt")
    steps = max(1, len(vals) - 1)
    f = Frame(78, 34, width - 20, height - 46, 0.0, float(steps), float(lo), float(hi))
    every = max(1, math.ceil((hi - lo) / 8))
    yticks = [(float(e), f"1e{e}") for e in range(lo, hi + 1, every)]
    if hi - lo <= 2:  # a decade or two: 2e and 5e ticks too (a plateau at 211 was read off 1e2..1e3)
        yticks += [(e + math.log10(m), f"{m}e{e}") for e in range(lo, hi) for m in (2, 5)]
    xs = np.linspace(0, steps, num=min(6, steps + 1))
    xticks = [(float(x), str(int(round(x)))) for x in xs]
    _axes(d, f, xticks, yticks, "step", "loss (mean squared error, log scale)", size)
    pts = [f.px(float(i), float(v)) for i, v in enumerate(logs)]
    if len(pts) > 1:
        d.line(pts, fill=LINE, width=2)
    for m in marks:
        if 0 <= m < len(pts):
            x, y = pts[m]
            d.ellipse([x - 4, y - 4, x + 4, y + 4], fill=LINE2)
            label, font = f"{m}", _font(11)
            if x + 6 + d.textlength(label, font=font) > width - 2:  # the last step's "200" read "20"
                d.text((x - 6, y - 6), label, fill=LINE2, font=font, anchor="rb")
            else:
                d.text((x + 6, y - 6), label, fill=LINE2, font=font, anchor="lb")
    return np.asarray(canvas)


# --------------------------------------------------------------------------- frequency response


@record(frozen=True)
class Response:
    """|DFT| of a kernel zero-padded to ``n``×``n``, centred (fftshift): frequencies in cycles/pixel."""

    magnitude: np.ndarray  # (n, n), row = vertical frequency, column = horizontal frequency
    freqs: np.ndarray  # (n,) cycles per pixel, -0.5 .. <0.5

    @property
    def centre(self) -> int:
        return int(np.argmin(np.abs(self.freqs)))


def response_grid(n: int, taps: int) -> int:
    """The DFT grid for a kernel of ``taps`` (its larger side) asked on an ``n``×``n`` grid.

    ``n`` when it is at least twice the kernel; else the power of two that is. Exactly ``taps``
    samples the response only at multiples of 1/taps, which for a box are all its zeros (a
    65x65 box then shows a lone spike at DC); twice as many show the lobes between them. Always
    even, so the grid's edge is Nyquist (0.5 cycles/pixel) itself.
    """
    if n >= 2 * taps:
        return n + n % 2
    size = 8
    while size < max(n, 2 * taps):
        size *= 2
    return size


def frequency_response(weights: np.ndarray, n: int = 64) -> Response:
    """The magnitude of the kernel's 2-D DFT on an ``n``×``n`` grid (the kernel zero-padded).

    Correlation with K multiplies the image's spectrum by conj(DFT(K)); the magnitude is the
    same, so |DFT(K)| is how much each frequency is kept (1 = unchanged, 0 = removed).
    """
    w = np.asarray(weights, dtype=np.float64)
    size = response_grid(n, max(w.shape))
    spectrum = np.fft.fftshift(np.abs(np.fft.fft2(w, s=(size, size))))
    return Response(spectrum, np.fft.fftshift(np.fft.fftfreq(size)))


def _colour(t: np.ndarray) -> np.ndarray:
    """A perceptual-ish dark-blue -> yellow ramp for 0..1 (viridis-like, 5 stops)."""
    stops = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], float)
    x = np.clip(t, 0, 1) * (len(stops) - 1)
    i = np.minimum(x.astype(int), len(stops) - 2)
    frac = (x - i)[..., None]
    return stops[i] * (1 - frac) + stops[i + 1] * frac


def response_figure(r: Response, title: str) -> np.ndarray:
    """The magnitude as a colour map with labelled axes and a colour bar, and cuts along both axes."""
    mag = r.magnitude
    top = float(mag.max()) or 1.0
    n = mag.shape[0]
    cell = max(1, 320 // n)
    side = n * cell
    width, height = 80 + side + 90 + 360 + 30, 70 + side + 60
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    d = ImageDraw.Draw(canvas)
    d.text((width / 2, 10), title, fill=TEXT, font=_font(15), anchor="mt")
    # the map as the image is drawn: row 0 at the top is the most negative vertical frequency, and fy
    # grows downward as image rows do (with +fy up the map was the kernel's mirror image: a streak
    # rising to the right had a ridge rising too, where the two are perpendicular)
    rgb = _colour(mag / top)
    pic = Image.fromarray(np.clip(np.rint(rgb), 0, 255).astype(np.uint8), "RGB").resize(
        (side, side), Image.Resampling.NEAREST)
    left, ptop = 80, 50  # room for the fy label above the -0.5 tick
    canvas.paste(pic, (left, ptop))
    # each cell is centred on its frequency: the frame spans half a step beyond the first and last
    half = float(r.freqs[1] - r.freqs[0]) / 2
    lo, hi = float(r.freqs[0]) - half, float(r.freqs[-1]) + half
    f = Frame(left, ptop, left + side, ptop + side, lo, hi, lo, hi)
    ticks = [(-0.5, "-0.5"), (-0.25, "-0.25"), (0.0, "0"), (0.25, "0.25")]
    font = _font(12)
    for v, text in ticks:
        x, _ = f.px(v, 0)
        y = f.top + (v - lo) / (hi - lo) * (f.bottom - f.top)  # fy downward
        d.line([(x, f.bottom), (x, f.bottom + 4)], fill=AXIS)
        d.text((x, f.bottom + 6), text, fill=SUBTEXT, font=font, anchor="mt")
        d.line([(f.left - 4, y), (f.left, y)], fill=AXIS)
        d.text((f.left - 6, y), text, fill=SUBTEXT, font=font, anchor="rm")
    d.rectangle([f.left, f.top, f.right, f.bottom], outline=AXIS)
    d.text(((f.left + f.right) / 2, f.bottom + 22), "horizontal frequency fx (cycles/pixel)", fill=TEXT,
           font=font, anchor="mt")
    d.text((8, f.top - 16), "vertical frequency fy (cycles/pixel, down as rows)", fill=TEXT, font=font)
    # colour bar
    bx = f.right + 16
    bar = _colour(np.linspace(1, 0, side))[:, None, :].repeat(16, axis=1)
    canvas.paste(Image.fromarray(np.clip(np.rint(bar), 0, 255).astype(np.uint8), "RGB"), (bx, ptop))
    d.rectangle([bx, ptop, bx + 16, ptop + side], outline=AXIS)
    for frac in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = ptop + side * (1 - frac)
        d.text((bx + 20, y), _nice(frac * top), fill=SUBTEXT, font=font, anchor="lm")
    d.text((bx, ptop + side + 8), "|H|", fill=TEXT, font=font)
    # the cuts along both axes
    c = r.centre
    cx0 = bx + 80
    # an even DFT size samples -0.5 but not +0.5, the same frequency (the spectrum is periodic): the cut
    # gets it at both ends, symmetric about 0 as the response is (it stopped at +0.484)
    freqs, cut_x, cut_y = r.freqs, mag[c, :], mag[:, c]
    if len(freqs) % 2 == 0:
        freqs = np.append(freqs, -freqs[0])
        cut_x, cut_y = np.append(cut_x, cut_x[0]), np.append(cut_y, cut_y[0])
    g = Frame(cx0 + 40, ptop, width - 20, ptop + side, float(freqs[0]), float(freqs[-1]), 0.0, top * 1.05)
    yt = [(top * k / 4, _nice(top * k / 4)) for k in range(5)]
    _axes_only(d, g, [(v, t) for v, t in ticks], yt)
    row = [g.px(float(fx), float(v)) for fx, v in zip(freqs, cut_x, strict=True)]
    col = [g.px(float(fy), float(v)) for fy, v in zip(freqs, cut_y, strict=True)]
    d.line(row, fill=LINE, width=4)  # wider than the red drawn over it: where the cuts agree (sharpen,
    d.line(col, fill=LINE2, width=2)  # any kernel symmetric under a quarter turn) the blue still shows
    # the legend above the frame, where no curve can run under it
    blue = "blue: along fx (fy = 0)"
    d.text((g.left, g.top - 16), blue, fill=LINE, font=font)
    d.text((g.left + d.textlength(blue, font=font) + 16, g.top - 16), "red: along fy (fx = 0)", fill=LINE2,
           font=font)
    d.text(((g.left + g.right) / 2, g.bottom + 22), "frequency (cycles/pixel)", fill=TEXT, font=font,
           anchor="mt")
    return np.asarray(canvas)


def _axes_only(d: ImageDraw.ImageDraw, f: Frame, xticks: Sequence[tuple[float, str]],
               yticks: Sequence[tuple[float, str]], size: int = 12, gap: int = 6) -> None:
    """Grid lines with tick labels and the frame, no axis titles."""
    font = _font(size)
    for x, text in xticks:
        px, _ = f.px(x, f.y0)
        d.line([(px, f.top), (px, f.bottom)], fill=GRID)
        d.text((px, f.bottom + gap), text, fill=SUBTEXT, font=font, anchor="mt")
    for y, text in yticks:
        _, py = f.px(f.x0, y)
        d.line([(f.left, py), (f.right, py)], fill=GRID)
        d.text((f.left - 5, py), text, fill=SUBTEXT, font=font, anchor="rm")
    d.rectangle([f.left, f.top, f.right, f.bottom], outline=AXIS)
