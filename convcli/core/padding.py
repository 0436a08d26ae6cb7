"""The one table of padding modes: canonical names, aliases, and every library's name.

Everything in convcli that needs a padding mode resolves it here: the CLI's
``-p/--padding`` choice, the engine's per-band gather (:func:`source_rows`), ``--emit``
and the ``convcli padding`` translator.
"""

from __future__ import annotations

import numpy as np

from convcli.core.records import record
from convcli.errors import UsageError


@record(frozen=True)
class PadMode:
    """One padding mode and what each library calls it (None: the library lacks it)."""

    name: str
    aliases: tuple[str, ...]
    numpy: str | None
    scipy: str | None
    opencv: str | None
    torch: str | None
    magick: str | None  # ImageMagick -virtual-pixel
    pattern: str  # scipy-style picture of the edge behaviour
    description: str


MODES: dict[str, PadMode] = {
    m.name: m
    for m in (
        PadMode(
            "zeros", ("constant",), "constant", "constant", "BORDER_CONSTANT", "zeros",
            "Black", "0 0 | a b c d | 0 0", "pixels outside the image are 0",
        ),
        PadMode(
            "border", ("replicate", "edge", "nearest"), "edge", "nearest", "BORDER_REPLICATE",
            "replicate", "Edge", "a a | a b c d | d d", "the edge pixel is repeated",
        ),
        PadMode(
            "reflection", ("reflect", "mirror", "reflect101"), "reflect", "mirror",
            "BORDER_REFLECT_101", "reflect", None, "c b | a b c d | c b",
            "mirrored about the edge pixel, which is not repeated",
        ),
        PadMode(
            "symmetric", (), "symmetric", "reflect", "BORDER_REFLECT", None, "Mirror",
            "b a | a b c d | d c", "mirrored about the edge, which is repeated",
        ),
        PadMode(
            "circular", ("wrap",), "wrap", "wrap", "BORDER_WRAP", "circular", "Tile",
            "c d | a b c d | a b", "the image tiles the plane",
        ),
        PadMode(
            "valid", ("none",), None, None, None, None, None, "| a b c d |",
            "no padding: the output shrinks by d*(k-1)",
        ),
    )
}

#: 'valid' is no padding mode in any library, but each has its way to it (the `padding` listing).
VALID_BY_LIBRARY: dict[str, str] = {
    "numpy": "no np.pad",
    "scipy": "no mode: slice ndimage.correlate's same-size output",
    "opencv": "no border type: crop filter2D's same-size output",
    "torch": "padding=0 (the default) or padding='valid'",
    "magick": "no -virtual-pixel: -chop the overhang of -morphology's same-size output",
}

#: PyTorch's limit on a pad's size, by mode: F.pad's 'reflect' takes pads smaller than the input's side
#: and 'circular' pads up to it (it wraps once); (slack, words). convcli pads as numpy.pad does, which
#: reflects and wraps again, so it takes any pad.
TORCH_PAD_LIMITS: dict[str, tuple[int, str]] = {"reflection": (1, "smaller than"), "circular": (0, "up to")}


def torch_pad_note(mode: PadMode, pad: tuple[int, int, int, int], height: int, width: int) -> str | None:
    """Why PyTorch would refuse this pad for this input (the widest offending side), or None."""
    limit = TORCH_PAD_LIMITS.get(mode.name)
    if limit is None:
        return None
    slack, words = limit
    over = [(p, n) for p, n in zip(pad, (height, height, width, width), strict=True) if p > n - slack]
    if not over:
        return None
    p, n = max(over)
    again = "reflects again" if mode.name == "reflection" else "wraps around again"
    return (f"{mode.name} pad {p} on a side of {n}: PyTorch's '{mode.torch}' takes pads {words} the input's "
            f"side and refuses this; convcli {again}, as numpy.pad does")


_LOOKUP: dict[str, str] = {}
for _m in MODES.values():
    _LOOKUP[_m.name] = _m.name
    for _a in _m.aliases:
        _LOOKUP[_a] = _m.name

#: Every accepted spelling, canonical names first (for click.Choice and help texts).
ALL_NAMES: tuple[str, ...] = tuple(MODES) + tuple(a for m in MODES.values() for a in m.aliases)


def resolve_mode(name: str) -> PadMode:
    """The PadMode for a canonical name or any alias (case-insensitive)."""
    key = name.strip().lower().replace("_", "").replace("-", "")
    if key not in _LOOKUP:
        import difflib

        close = difflib.get_close_matches(key, ALL_NAMES, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        msg = f"unknown padding mode {name[:40]!r}{hint} (choose from: {', '.join(ALL_NAMES)})"
        raise UsageError(msg)
    return MODES[_LOOKUP[key]]


def pad_array(
    x: np.ndarray, pad: tuple[int, int, int, int], mode: str | PadMode
) -> np.ndarray:
    """Pad the first two axes of ``x`` by (top, bottom, left, right) with ``mode``.

    Works for pads larger than the image (the pattern repeats, as numpy.pad does).
    ``valid`` takes no padding: a non-zero pad is an error.
    """
    m = resolve_mode(mode) if isinstance(mode, str) else mode
    top, bottom, left, right = pad
    if min(pad) < 0:
        msg = f"padding amounts must be >= 0, got {pad}"
        raise UsageError(msg)
    if m.numpy is None:
        if any(pad):
            msg = "padding mode 'valid' takes no padding amount"
            raise UsageError(msg)
        return x
    if not any(pad):
        return x
    # A single row or column has nothing to mirror: numpy.pad's reflect repeats it, per axis
    # (an image one pixel tall still reflects along its width).
    widths = [(top, bottom), (left, right)] + [(0, 0)] * (x.ndim - 2)
    if m.numpy == "constant":
        return np.pad(x, widths, mode="constant", constant_values=0)
    return np.pad(x, widths, mode=m.numpy)  # type: ignore[call-overload]


def pattern_row(mode: str | PadMode, n: int = 5, pad: int = 2) -> str:
    """The mode drawn on the row 1..n with ``pad`` values each side: ``3 2 | 1 2 3 4 5 | 4 3``."""
    m = resolve_mode(mode) if isinstance(mode, str) else mode
    row = np.arange(1, n + 1)
    if m.numpy is None:
        return "| " + " ".join(map(str, row)) + " |"
    padded = pad_array(row[:, None], (pad, pad, 0, 0), m)[:, 0]
    left = " ".join(map(str, padded[:pad]))
    mid = " ".join(map(str, padded[pad : pad + n]))
    right = " ".join(map(str, padded[pad + n :]))
    return f"{left} | {mid} | {right}"


def source_rows(
    idx: np.ndarray, n: int, mode: str | PadMode
) -> tuple[np.ndarray, np.ndarray | None]:
    """Where positions ``idx`` of a padded axis read from an axis of ``n`` samples.

    ``idx`` are positions relative to the first real sample (negative: in the leading
    pad, ``>= n``: in the trailing one). Returns ``(src, valid)``: ``src`` indexes the
    real axis (always in ``0..n-1``), and ``valid`` is None, or for ``zeros`` when some
    position is outside the axis, a mask that is False where the padded value is 0.
    ``x[src]`` (zeroed where not ``valid``) equals the same positions of :func:`pad_array`,
    pads larger than the image included (the engine gathers every band's rows with it).
    ``valid`` takes no padding: every position must be inside ``0..n-1``.
    """
    m = resolve_mode(mode) if isinstance(mode, str) else mode
    i = np.asarray(idx, dtype=np.intp)
    if n < 1:
        msg = f"cannot pad an axis of {n} samples"
        raise UsageError(msg)
    inside = (i >= 0) & (i < n)
    if m.numpy is None:
        if not np.all(inside):
            msg = "padding mode 'valid' takes no padding amount"
            raise UsageError(msg)
        return i, None
    if m.numpy == "constant":
        return np.clip(i, 0, n - 1), (None if inside.all() else inside)
    outside = np.flatnonzero(~inside)  # only these need the mode's arithmetic (np.mod is slow)
    if not outside.size:
        return i, None
    src = i.copy()
    src[outside] = _mapped(i[outside], n, m.numpy)
    return src, None


def _mapped(i: np.ndarray, n: int, mode: str) -> np.ndarray:
    """:func:`source_rows` for positions outside ``0..n-1``, by numpy.pad's ``mode``."""
    if mode == "edge" or (mode == "reflect" and n == 1):
        return np.clip(i, 0, n - 1)
    if mode == "wrap":
        return np.mod(i, n)
    if mode == "symmetric":
        j = np.mod(i, 2 * n)
        return np.where(j < n, j, 2 * n - 1 - j)
    j = np.mod(i, 2 * n - 2)  # reflect: period 2n - 2 (the edge sample is not repeated)
    return np.where(j < n, j, 2 * n - 2 - j)
