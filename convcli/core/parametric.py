"""Parametric kernels: ``name:key=value,...`` specs, rotations ``NAME@ANGLE``, kernel images.

One syntax for all (see the README, "Kernels"):

- ``gaussian:sigma=2`` -- keys and values separated by ``=``, pairs by ``,``;
- ``laplacian:5``, ``gaussian:2`` -- one bare value sets the first parameter;
- ``gabor`` -- the bare name takes every default;
- ``kirsch@45``, ``sobel-x@90``, ``laplacian:2@45`` -- any 3x3 kernel turned in 45° steps as
  ImageMagick does (the outer ring of 8 cells moves one cell clockwise per 45°); other
  square kernels in 90° steps.

Matrices are written as ImageMagick prints them (``-define morphology:showkernel=1``) and
applied, like every convcli kernel, by cross-correlation: ``convcli filter -k kirsch`` is
``convert -morphology Correlate Kirsch``; ``--flip`` gives ``-morphology Convolve``.

NumPy and the standard library only: a kernel *image* (``@psf.png``) is decoded by the
caller and handed in as an array (:func:`kernel_from_image`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from convcli.core.kernels import (
    MAX_KERNEL_SIZE,
    MIN_SIGMA,
    Kernel,
    box_kernel,
    gaussian_1d,
    gaussian_kernel,
    get_kernel,
    size_for_sigma,
    size_text,
)
from convcli.core.records import record
from convcli.errors import UsageError, quoted

#: Largest kernel side a spec may build: the limit of every kernel (core.kernels.MAX_KERNEL_SIZE).
MAX_SIZE = MAX_KERNEL_SIZE


@record(frozen=True)
class Param:
    """One parameter of a parametric kernel."""

    name: str
    default: float | None  # None: derived from the others (e.g. a size from sigma)
    kind: str  # "float", "int", "angle"
    help: str
    minimum: float | None = None  # values must be > minimum (strictly), if given
    least: float | None = None  # values must be >= least, if given
    odd: bool = False

    def text(self) -> str:
        if self.default is None:
            return f"{self.name}=auto"
        d = int(self.default) if self.kind == "int" or float(self.default).is_integer() else self.default
        return f"{self.name}={d}"


@record(frozen=True)
class Builder:
    """A parametric kernel family: its parameters (in positional order) and the function building it."""

    name: str
    params: tuple[Param, ...]
    build: Callable[[dict[str, float | None]], np.ndarray]
    description: str

    def signature(self) -> str:
        return f"{self.name}:" + ",".join(p.text() for p in self.params) if self.params else self.name


# --------------------------------------------------------------------------- parsing


def _number(builder: str, key: str, text: str, param: Param) -> float:
    where = f"kernel {builder}: {key}"
    shown = quoted(text)
    try:
        v = float(text)
    except ValueError:
        msg = f"{where}={quoted(repr(text))} is not a number"
        raise UsageError(msg) from None
    if not math.isfinite(v):
        msg = f"{where}={shown} must be finite"
        raise UsageError(msg)
    if param.kind == "int":
        if v != int(v):
            msg = f"{where}={shown} must be a whole number"
            raise UsageError(msg)
        if param.odd and int(v) % 2 == 0:
            msg = f"{where}={shown} must be odd (the kernel has a centre)"
            raise UsageError(msg)
        if v > MAX_SIZE and param.name in ("size", "n", "length", "width"):
            msg = f"{where}={shown} is over the limit of {MAX_SIZE}"
            raise UsageError(msg)
    if param.minimum is not None and v <= param.minimum:
        msg = f"{where}={shown} must be > {param.minimum:g}"
        raise UsageError(msg)
    if param.least is not None and v < param.least:
        msg = f"{where}={shown} must be at least {param.least:g}"
        raise UsageError(msg)
    return v


def parse_params(b: Builder, text: str) -> dict[str, float | None]:
    """``sigma=2,size=7`` (or one bare value for the first parameter) -> values, defaults filled."""
    values: dict[str, float | None] = {p.name: p.default for p in b.params}
    given: set[str] = set()
    by_name = {p.name: p for p in b.params}
    accepted = ", ".join(p.name for p in b.params) or "none"
    items = [t.strip() for t in text.split(",")] if text.strip() else []
    for i, item in enumerate(items):
        if not item:
            msg = f"kernel {b.name}: empty parameter in {text!r}"
            raise UsageError(msg)
        if "=" in item:
            key, _, val = item.partition("=")
            key = key.strip().lower()
        elif i == 0 and b.params:
            key, val = b.params[0].name, item
        else:
            msg = f"kernel {b.name}: {item!r} needs a key (key=value; accepted: {accepted})"
            raise UsageError(msg)
        if key not in by_name:
            msg = f"kernel {b.name}: unknown parameter {key!r} (accepted: {accepted})"
            raise UsageError(msg)
        if key in given:
            msg = f"kernel {b.name}: parameter {key!r} given twice"
            raise UsageError(msg)
        given.add(key)
        values[key] = _number(b.name, key, val.strip(), by_name[key])
    return values


def _size(values: dict[str, float | None], builder: str, auto: int) -> int:
    """``size`` if given, else ``auto``; odd and at most MAX_SIZE."""
    size = int(values["size"]) if values.get("size") is not None else auto  # type: ignore[arg-type]
    if size > MAX_SIZE:
        msg = (f"kernel {builder}: size {size_text(size)} is over the limit of {MAX_SIZE} "
               "(give a smaller sigma or size=)")
        raise UsageError(msg)
    return size


def _f(values: dict[str, float | None], key: str) -> float:
    v = values[key]
    assert v is not None
    return float(v)


# --------------------------------------------------------------------------- builders


def gaussian(values: dict[str, float | None]) -> np.ndarray:
    """Sampled Gaussian exp(-x²/2σ²), normalised; size 2*ceil(3σ)+1 unless given."""
    sigma = _f(values, "sigma")
    k = _size(values, "gaussian", size_for_sigma(sigma))
    return gaussian_kernel(k, sigma).weights


def box(values: dict[str, float | None]) -> np.ndarray:
    return box_kernel(int(_f(values, "size"))).weights.copy()


def binomial(values: dict[str, float | None]) -> np.ndarray:
    """Row n-1 of Pascal's triangle, outer product, divided by 4^(n-1): [1 2 1]/4 for n=3."""
    n = int(_f(values, "n"))
    row = np.array([math.comb(n - 1, i) for i in range(n)], dtype=np.float64)
    row /= row.sum()
    return np.outer(row, row)


def _grid(k: int) -> tuple[np.ndarray, np.ndarray]:
    r = (k - 1) / 2
    ax = np.arange(k, dtype=np.float64) - r
    y, x = np.meshgrid(ax, ax, indexing="ij")
    return y, x


def log(values: dict[str, float | None]) -> np.ndarray:
    """Laplacian of Gaussian ∇²G = G·((x²+y²)/σ⁴ − 2/σ²) with G the normalised sampled Gaussian.

    The sign of the true Laplacian (negative centre, as the registry's ``laplacian`` and
    scipy.ndimage.gaussian_laplace). Sampled and truncated, it does not sum to exactly 0.
    """
    sigma = _f(values, "sigma")
    k = _size(values, "log", size_for_sigma(sigma))
    g = gaussian_1d(k, sigma)
    y, x = _grid(k)
    s2 = sigma * sigma
    return np.outer(g, g) * ((x * x + y * y) / (s2 * s2) - 2.0 / s2)


def dog(values: dict[str, float | None]) -> np.ndarray:
    """Difference of two normalised Gaussians G(σ1) − G(σ2) on one grid (size from the larger σ)."""
    s1, s2 = _f(values, "sigma1"), _f(values, "sigma2")
    if s1 == s2:
        msg = f"kernel dog: sigma1 and sigma2 must differ (both {s1:g})"
        raise UsageError(msg)
    k = _size(values, "dog", size_for_sigma(max(s1, s2)))
    g1, g2 = gaussian_1d(k, s1), gaussian_1d(k, s2)
    return np.outer(g1, g1) - np.outer(g2, g2)


def gabor(values: dict[str, float | None]) -> np.ndarray:
    """OpenCV's getGaborKernel(ksize, sigma, theta, lambd, gamma, psi) with theta and psi in degrees.

    exp(−(x'² + γ²y'²)/2σ²)·cos(2π x'/λ + ψ), x' = x cosθ + y sinθ, y' = −x sinθ + y cosθ,
    entry (ymax − y, xmax − x) as OpenCV stores it. Size: ``size`` if given, else OpenCV's
    for ksize <= 0: half-widths round(max(|3σx cosθ|, |3σy sinθ|)) and round(max(|3σx sinθ|, |3σy cosθ|)).
    """
    sigma, lam, gamma = _f(values, "sigma"), _f(values, "lambda"), _f(values, "gamma")
    theta, psi = math.radians(_f(values, "theta")), math.radians(_f(values, "psi"))
    sx, sy = sigma, sigma / gamma
    if sy < MIN_SIGMA:
        msg = f"kernel gabor: sigma/gamma = {sy:.3g} must be at least {MIN_SIGMA:g} (give a smaller gamma)"
        raise UsageError(msg)
    c, s = math.cos(theta), math.sin(theta)
    if values.get("size") is not None:
        xmax = ymax = int(_f(values, "size")) // 2
    else:
        hx, hy = max(abs(3 * sx * c), abs(3 * sy * s)), max(abs(3 * sx * s), abs(3 * sy * c))
        if not max(hx, hy) < MAX_SIZE:  # (inf too: sigma/gamma beyond float range)
            msg = f"kernel gabor: size {size_text(2 * max(hx, hy) + 1)} is over the limit of {MAX_SIZE}"
            raise UsageError(msg)
        xmax, ymax = round(hx), round(hy)
    if 2 * max(xmax, ymax) + 1 > MAX_SIZE:
        msg = f"kernel gabor: size {size_text(2 * max(xmax, ymax) + 1)} is over the limit of {MAX_SIZE}"
        raise UsageError(msg)
    ys = np.arange(ymax, -ymax - 1, -1, dtype=np.float64)[:, None]  # row i holds y = ymax - i
    xs = np.arange(xmax, -xmax - 1, -1, dtype=np.float64)[None, :]
    xr = xs * c + ys * s
    yr = -xs * s + ys * c
    return np.exp(-0.5 * (xr * xr / (sx * sx) + yr * yr / (sy * sy))) * np.cos(2 * math.pi * xr / lam + psi)


def _crop_zero_border(w: np.ndarray) -> np.ndarray:
    """Drop all-zero outer rows/columns in symmetric pairs, so the centre stays the centre."""
    while w.shape[0] > 1 and not w[0].any() and not w[-1].any():
        w = w[1:-1]
    while w.shape[1] > 1 and not w[:, 0].any() and not w[:, -1].any():
        w = w[:, 1:-1]
    return w


def motion(values: dict[str, float | None]) -> np.ndarray:
    """A centred line ``length`` taps long at ``angle`` degrees (counter-clockwise from +x, y up on
    screen), one pixel wide, anti-aliased by distance: weight max(0, 1 − d) with d the distance from
    the cell centre to the segment; normalised to sum 1."""
    length, angle = _f(values, "length"), math.radians(_f(values, "angle"))
    half = (length - 1) / 2
    k = 2 * math.ceil(half + 1) + 1
    if k > MAX_SIZE:
        msg = f"kernel motion: length {length:g} is over the limit of {MAX_SIZE - 4}"
        raise UsageError(msg)
    y, x = _grid(k)
    dx, dy = math.cos(angle), -math.sin(angle)  # rows grow downwards: up on screen is -y
    t = np.clip(x * dx + y * dy, -half, half)
    d = np.hypot(x - t * dx, y - t * dy)
    w = np.clip(1.0 - d, 0.0, None)
    w[np.abs(w) < 1e-12] = 0.0
    w = _crop_zero_border(w)
    return w / w.sum()


#: Sub-samples per cell side for disk's area coverage (16x16 = 256 per cell).
DISK_SUBSAMPLES = 16


def disk(values: dict[str, float | None]) -> np.ndarray:
    """A normalised disc of ``radius`` pixels (lens blur). ``aa=1``: each cell weighs the fraction of
    its area inside the circle (16x16 sub-samples per cell); ``aa=0``: cells whose centre is within
    the radius weigh 1, as ImageMagick's Disk."""
    radius, aa = _f(values, "radius"), _f(values, "aa")
    if aa not in (0.0, 1.0):
        msg = f"kernel disk: aa={aa:g} must be 0 or 1"
        raise UsageError(msg)
    half = math.ceil(radius + 0.5)
    k = 2 * half + 1
    if k > MAX_SIZE:
        msg = f"kernel disk: radius {radius:g} is over the limit of {(MAX_SIZE - 3) // 2}"
        raise UsageError(msg)
    y, x = _grid(k)
    if aa:
        n = DISK_SUBSAMPLES
        sub = (np.arange(n) + 0.5) / n - 0.5
        yy = y[:, :, None, None] + sub[None, None, :, None]
        xx = x[:, :, None, None] + sub[None, None, None, :]
        w = (yy * yy + xx * xx <= radius * radius).mean(axis=(2, 3))
    else:
        w = (y * y + x * x <= radius * radius).astype(np.float64)
    if not w.any():  # a disc smaller than every sub-sample: its limit, the unit impulse
        w[half, half] = 1.0
    w = _crop_zero_border(w)
    return w / w.sum()


def im_optimal_width(sigma: float, quantum_scale: float = 1.0 / 65535.0) -> int:
    """ImageMagick's GetOptimalKernelWidth1D(0, sigma) for Q16: the widest odd 1-D Gaussian whose
    edge tap, relative to the sum, is still >= 1/65535."""
    alpha = 1.0 / (2.0 * sigma * sigma)
    width = 5
    while True:
        j = (width - 1) // 2
        i = np.arange(-j, j + 1, dtype=np.float64)
        g = np.exp(-(i * i) * alpha)
        if g[-1] / g.sum() < quantum_scale or width > MAX_SIZE + 2:
            return width - 2
        width += 2


def comet(values: dict[str, float | None]) -> np.ndarray:
    """ImageMagick's Comet: half a 1-D Gaussian, 3 sub-samples per tap, normalised, its origin at the
    first tap (placed here at the centre of a 1 x (2w−1) row). Width w: ``width``, else the half
    (w = (n+1)/2) of ImageMagick's optimal 1-D Gaussian width n for sigma (Q16; 9 for sigma 2).
    ``angle`` in 90° steps."""
    sigma, angle = _f(values, "sigma"), _f(values, "angle")
    w = int(_f(values, "width")) if values.get("width") is not None else (im_optimal_width(sigma) + 1) // 2
    if 2 * w - 1 > MAX_SIZE:
        msg = f"kernel comet: width {w} is over the limit of {(MAX_SIZE + 1) // 2}"
        raise UsageError(msg)
    rank = 3
    u = np.arange(w * rank, dtype=np.float64)
    spread = sigma * rank  # (a product, not ** 2: Python's float power raises on overflow; inf is fine here)
    taps = np.exp(-(u * u) / (2.0 * spread * spread)).reshape(w, rank).sum(axis=1)
    row = np.zeros((1, 2 * w - 1))
    row[0, w - 1:] = taps / taps.sum()
    return rotate_weights(row, angle, f"kernel comet: angle={angle:g}")


#: ImageMagick's Laplacian:N kernels, as ``-define morphology:showkernel=1`` prints them.
IM_LAPLACIANS: dict[int, list[list[float]]] = {
    0: [[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]],
    1: [[0, -1, 0], [-1, 4, -1], [0, -1, 0]],
    2: [[-2, 1, -2], [1, 4, 1], [-2, 1, -2]],
    3: [[1, -2, 1], [-2, 4, -2], [1, -2, 1]],
    5: [[-4, -1, 0, -1, -4], [-1, 2, 3, 2, -1], [0, 3, 4, 3, 0], [-1, 2, 3, 2, -1],
        [-4, -1, 0, -1, -4]],
    7: [[-10, -5, -2, -1, -2, -5, -10], [-5, 0, 3, 4, 3, 0, -5], [-2, 3, 6, 7, 6, 3, -2],
        [-1, 4, 7, 8, 7, 4, -1], [-2, 3, 6, 7, 6, 3, -2], [-5, 0, 3, 4, 3, 0, -5],
        [-10, -5, -2, -1, -2, -5, -10]],
    15: [[0, 0, -1, 0, 0], [0, -1, -2, -1, 0], [-1, -2, 16, -2, -1], [0, -1, -2, -1, 0],
         [0, 0, -1, 0, 0]],
    19: [[0, -1, -1, -2, -2, -2, -1, -1, 0], [-1, -2, -4, -5, -5, -5, -4, -2, -1],
         [-1, -4, -5, -3, 0, -3, -5, -4, -1], [-2, -5, -3, 12, 24, 12, -3, -5, -2],
         [-2, -5, 0, 24, 40, 24, 0, -5, -2], [-2, -5, -3, 12, 24, 12, -3, -5, -2],
         [-1, -4, -5, -3, 0, -3, -5, -4, -1], [-1, -2, -4, -5, -5, -5, -4, -2, -1],
         [0, -1, -1, -2, -2, -2, -1, -1, 0]],
}


def laplacian(values: dict[str, float | None]) -> np.ndarray:
    n = int(_f(values, "n"))
    if n not in IM_LAPLACIANS:
        msg = f"kernel laplacian:{n}: ImageMagick's variants are {', '.join(map(str, IM_LAPLACIANS))}"
        raise UsageError(msg)
    return np.array(IM_LAPLACIANS[n], dtype=np.float64)


def _sigma(default: float | None = 1.0, name: str = "sigma") -> Param:
    return Param(name, default, "float", "Gaussian standard deviation in pixels", least=MIN_SIGMA)


_SIZE = Param("size", None, "int", "odd side; default 2*ceil(3*sigma)+1", minimum=0.0, odd=True)

BUILDERS: dict[str, Builder] = {b.name: b for b in [
    Builder("gaussian", (_sigma(), _SIZE), gaussian, "Gaussian blur, normalised"),
    Builder("box", (Param("size", 3, "int", "side", minimum=0.0),), box, "mean filter, size x size"),
    Builder("binomial", (Param("n", 5, "int", "side", minimum=0.0, odd=True),), binomial,
            "binomial (Pascal row n-1) blur, normalised"),
    Builder("log", (_sigma(1.4), _SIZE), log, "Laplacian of Gaussian (negative centre)"),
    Builder("dog", (_sigma(1.0, "sigma1"), _sigma(1.6, "sigma2"), _SIZE), dog,
            "difference of Gaussians G(sigma1) - G(sigma2)"),
    Builder("gabor", (_sigma(4.0), Param("theta", 0, "angle", "orientation, degrees"),
                      Param("lambda", 10, "float", "wavelength, pixels", least=MIN_SIGMA),
                      Param("gamma", 0.5, "float", "aspect ratio", minimum=0.0),
                      Param("psi", 0, "angle", "phase, degrees"),
                      Param("size", None, "int", "odd side; default OpenCV's 3-sigma box", minimum=0.0,
                            odd=True)),
            gabor, "Gabor filter, OpenCV's getGaborKernel (angles in degrees)"),
    Builder("motion", (Param("length", 9, "float", "line length, pixels", least=1.0),
                       Param("angle", 0, "angle", "degrees counter-clockwise from +x")),
            motion, "motion blur: a normalised anti-aliased line"),
    Builder("disk", (Param("radius", 3, "float", "pixels", minimum=0.0),
                     Param("aa", 1, "int", "1: area coverage, 0: ImageMagick's hard disc")),
            disk, "lens blur: a normalised disc"),
    Builder("comet", (_sigma(2.0), Param("width", None, "int", "taps; default ImageMagick's", minimum=0.0),
                      Param("angle", 0, "angle", "0, 90, 180 or 270")),
            comet, "ImageMagick's Comet: half a Gaussian, one-sided blur"),
    Builder("laplacian", (Param("n", 0, "int", "ImageMagick's variant 0-3, 5, 7, 15, 19", minimum=-1.0),),
            laplacian, "ImageMagick's Laplacian:N (bare 'laplacian' is the registry's 4-neighbour one)"),
]}


def _canonical(b: Builder, values: dict[str, float | None]) -> str:
    parts = []
    for p in b.params:
        v = values[p.name]
        if v is not None:
            parts.append(f"{p.name}={int(v) if float(v).is_integer() else v:g}" if p.kind != "int"
                         else f"{p.name}={int(v)}")
    return f"{b.name}:" + ",".join(parts)


def build(name: str, params: str) -> Kernel:
    """A parametric kernel from its family name and parameter text (no rotation)."""
    b = BUILDERS[name]
    values = parse_params(b, params)
    w = b.build(values)
    if max(w.shape) > MAX_SIZE:
        msg = f"kernel {name}: {w.shape[0]}x{w.shape[1]} is over the limit of {MAX_SIZE}"
        raise UsageError(msg)
    label = f"laplacian:{int(_f(values, 'n'))}" if name == "laplacian" else _canonical(b, values)
    return Kernel(label, w, b.description)


# --------------------------------------------------------------------------- rotation

#: The outer ring of a 3x3 kernel, clockwise from the top-left cell.
_RING = ((0, 0), (0, 1), (0, 2), (1, 2), (2, 2), (2, 1), (2, 0), (1, 0))


def rotate_weights(w: np.ndarray, angle: float, what: str) -> np.ndarray:
    """ImageMagick's kernel rotation, clockwise: a 3x3 kernel's ring of 8 cells moves one cell per 45°;
    other kernels turn in 90° steps (np.rot90). Any other angle is a usage error, which starts with
    ``what``: the rotation as the user typed it (``kernel comet@45``, ``kernel comet: angle=45``)."""
    if w.shape != (3, 3) and angle % 90 != 0:
        msg = (f"{what}: a {w.shape[0]}x{w.shape[1]} kernel turns in 90° steps only "
               "(angle 0, 90, 180 or 270)")
        raise UsageError(msg)
    if angle % 45 != 0:
        msg = f"{what}: a 3x3 kernel turns in steps of 45°"
        raise UsageError(msg)
    steps = int(angle // 45) % 8
    if steps == 0:
        return np.array(w, dtype=np.float64)
    if w.shape == (3, 3):
        out = np.array(w, dtype=np.float64)
        ring = [w[r, c] for r, c in _RING]
        for i, (r, c) in enumerate(_RING):
            out[r, c] = ring[(i - steps) % 8]
        return out
    return np.rot90(w, -(steps // 2)).copy()


def rotated(k: Kernel, angle_text: str, typed: str | None = None) -> Kernel:
    """``k`` turned by ``angle_text`` degrees (see :func:`rotate_weights`); errors name ``typed``
    (the base as the user wrote it, ``comet``) when given, else ``k.name``."""
    name = k.name if typed is None else typed
    try:
        angle = float(angle_text)
    except ValueError:
        msg = f"kernel {name}@{angle_text}: the angle must be a number of degrees"
        raise UsageError(msg) from None
    if not math.isfinite(angle):
        msg = f"kernel {name}@{angle_text}: the angle must be finite"
        raise UsageError(msg)
    w = rotate_weights(k.weights, angle, f"kernel {name}@{angle:g}")
    a = int(angle) % 360
    display = _turned_display(k, w, a)
    if a == 0:
        return Kernel(k.name, w, k.description, display=display)
    return Kernel(f"{k.name}@{a}", w, f"{k.description}, turned {a}° clockwise" if k.description else "",
                  display=display)


def _turned_display(k: Kernel, w: np.ndarray, degrees: int) -> tuple[tuple[str, ...], ...] | None:
    """The exact entry texts ("1/25") of ``k`` moved as its weights were, for a quarter turn (the
    weights then merely move, clockwise); None otherwise."""
    if k.display is None or degrees % 90:
        return None
    quarters = -(degrees // 90)
    if not np.array_equal(w, np.rot90(k.weights, quarters)):
        return None
    return tuple(tuple(str(v) for v in row) for row in np.rot90(np.array(k.display, dtype=object), quarters))


# --------------------------------------------------------------------------- dispatch


def handles(spec: str) -> bool:
    """Whether ``spec`` is this module's: ``name:params``, ``NAME@ANGLE`` or a bare family name."""
    s = spec.strip()
    if s.startswith("@"):
        return False
    if "@" in s or ":" in s:
        return True
    head = s.split(":", 1)[0].strip().lower()
    return ":" in s and head in BUILDERS or (":" not in s and head in BUILDERS)


def parse(spec: str, resolve: Callable[[str], Kernel]) -> Kernel:
    """``name:params``, a bare family name, or ``BASE@ANGLE``; ``resolve`` reads a base that is not
    parametric (a registry name or a literal)."""
    s = spec.strip()
    if "@" in s:
        base, _, angle = s.rpartition("@")
        base = base.strip()
        if not base:
            msg = f"kernel {spec!r}: nothing before '@'"
            raise UsageError(msg)
        if handles(base):  # a parametric base is named as typed (comet@45, not comet:sigma=2,angle=0@45)
            return rotated(parse(base, resolve), angle.strip(), base)
        return rotated(resolve(base), angle.strip())
    head, colon, params = s.partition(":")
    key = head.strip().lower()
    if not colon:  # a bare name: the registry first (laplacian, gaussian and box are registry names)
        try:
            return get_kernel(s)
        except UsageError:
            if key not in BUILDERS:
                raise
    if key in BUILDERS:
        return build(key, params)
    if colon:
        known = ", ".join(BUILDERS)
        msg = f"unknown parametric kernel {head.strip()!r} (parametric: {known})"
        raise UsageError(msg)
    return resolve(s)


def kernel_from_image(luminance: np.ndarray, name: str) -> Kernel:
    """A kernel image (PSF): its luminance normalised to sum 1; an all-black image is refused."""
    w = np.asarray(luminance, dtype=np.float64)
    if w.ndim != 2 or max(w.shape) > MAX_SIZE:
        msg = f"kernel image {name}: {'x'.join(map(str, w.shape))} is over the limit of {MAX_SIZE}"
        raise UsageError(msg)
    s = float(w.sum())
    if s <= 0:
        msg = f"kernel image {name} is black: a PSF needs some light to normalise"
        raise UsageError(msg)
    return Kernel(name, w / s, "kernel image (luminance / its sum)")
