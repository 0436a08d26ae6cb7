"""Convolution arithmetic: output sizes, padding amounts, receptive field and jump.

Integer arithmetic only (Dumoulin & Visin, "A guide to convolution arithmetic").
Nothing here touches pixels, so the shape report and ``--dry-run`` can be made
from an image header alone.
"""

from __future__ import annotations

from convcli.core.padding import PadMode, resolve_mode
from convcli.core.records import record
from convcli.errors import UsageError

#: The largest stride, dilation or padding amount accepted (README, "Shapes"): far past any image
#: side; the output and padded sizes are then checked against --max-pixels from the header.
MAX_GEOMETRY = 1_000_000

Pair = tuple[int, int]
Pad4 = tuple[int, int, int, int]  # top, bottom, left, right


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:30] + "...'"


def parse_pair(value: str | int | tuple[int, int], what: str, minimum: int = 1,
               maximum: int = MAX_GEOMETRY) -> Pair:
    """``"2"`` -> (2, 2); ``"2,3"`` -> (2, 3) as (Y, X). Every value must be in ``minimum..maximum``."""
    if isinstance(value, tuple):
        parts = list(value)
    elif isinstance(value, int):
        parts = [value, value]
    else:
        text = value.strip().lower().replace("x", ",").replace("\u00d7", ",")
        try:
            parts = [int(p) for p in text.split(",")] if len(text) <= 40 else []
        except ValueError:
            parts = []
        if not parts:
            msg = f"{what} must be an integer N or a pair Y,X, got {_shown(value)}"
            raise UsageError(msg) from None
        if len(parts) == 1:
            parts = parts * 2
    if len(parts) != 2:
        msg = f"{what} must be N or Y,X, got {value!r}"
        raise UsageError(msg)
    if min(parts) < minimum:
        msg = f"{what} must be >= {minimum}, got {_shown(value)}"
        raise UsageError(msg)
    if max(parts) > maximum:
        msg = f"{what} must be <= {maximum}, got {_shown(value)}"
        raise UsageError(msg)
    return parts[0], parts[1]


def same_pad(k: int, d: int = 1) -> tuple[int, int]:
    """PyTorch's ``padding='same'`` split: total d*(k-1), before = total // 2."""
    total = d * (k - 1)
    return total // 2, total - total // 2


@record(frozen=True)
class GeometrySpec:
    """``-s``, ``-d``, ``-p`` and ``--pad`` as given, before a kernel size makes them a geometry: the
    one typed value the command line hands to the stages it builds (it was a dict of four keys)."""

    stride: Pair = (1, 1)
    dilation: Pair = (1, 1)
    padding: str = "reflection"
    pad: str | None = None  # the --pad spec; None: same

    def resolve(self, ksize: Pair) -> tuple[PadMode, Pad4]:
        """The padding mode and (top, bottom, left, right) for a kernel of ``ksize``."""
        return resolve_geometry(self.padding, self.pad, ksize, self.dilation)


def resolve_geometry(padding: str | PadMode, pad_spec: str | None, ksize: Pair,
                     dilation: Pair) -> tuple[PadMode, Pad4]:
    """``-p/--padding`` and ``--pad`` together: the padding mode and (top, bottom, left, right).

    The one place a command turns both options into a stage's geometry (:func:`resolve_pad`
    for the amounts, so ``valid`` always pads 0 and rejects a ``--pad``).
    """
    mode = resolve_mode(padding) if isinstance(padding, str) else padding
    return mode, resolve_pad(pad_spec, ksize, dilation, mode.name)


def resolve_pad(spec: str | None, ksize: Pair, dilation: Pair, mode: str) -> Pad4:
    """Turn ``--pad`` (``same`` | N | Y,X | T,B,L,R; None = same) into (top, bottom, left, right).

    With mode ``valid`` the amount is always 0 and giving ``--pad`` is an error.
    """
    if resolve_mode(mode).name == "valid":  # any spelling: valid, none, VALID
        if spec is not None and spec.strip().lower() not in ("0", "valid"):
            msg = "--pad cannot be combined with padding mode 'valid' (valid means no padding)"
            raise UsageError(msg)
        return 0, 0, 0, 0
    text = "same" if spec is None else spec.strip().lower()
    if text == "same":
        t, b = same_pad(ksize[0], dilation[0])
        left, r = same_pad(ksize[1], dilation[1])
        return t, b, left, r
    try:
        parts = [int(p) for p in text.replace(" ", "").split(",")] if len(text) <= 80 else []
    except ValueError:
        parts = []
    if not parts:
        msg = f"--pad must be 'same', N, Y,X or T,B,L,R, got {_shown(spec)}"
        raise UsageError(msg) from None
    if any(p < 0 for p in parts):
        msg = f"--pad amounts must be >= 0, got {_shown(spec)}"
        raise UsageError(msg)
    if any(p > MAX_GEOMETRY for p in parts):
        msg = f"--pad amounts must be <= {MAX_GEOMETRY}, got {_shown(spec)}"
        raise UsageError(msg)
    if len(parts) == 1:
        return parts[0], parts[0], parts[0], parts[0]
    if len(parts) == 2:
        return parts[0], parts[0], parts[1], parts[1]
    if len(parts) == 4:
        return parts[0], parts[1], parts[2], parts[3]
    msg = f"--pad must be 'same', N, Y,X or T,B,L,R, got {_shown(spec)}"
    raise UsageError(msg)


def output_size(n: int, k: int, stride: int = 1, dilation: int = 1, before: int = 0,
                after: int = 0) -> int:
    """floor((n + before + after - d*(k-1) - 1) / s) + 1; may be < 1 (the caller decides)."""
    return (n + before + after - dilation * (k - 1) - 1) // stride + 1


def arithmetic(n: int, k: int, stride: int = 1, dilation: int = 1, before: int = 0,
               after: int = 0) -> str:
    """The output-size formula with the numbers filled in, as the report prints it."""
    out = output_size(n, k, stride, dilation, before, after)
    return f"({n} + {before} + {after} - {dilation}*({k}-1) - 1) // {stride} + 1 = {out}"


@record(frozen=True)
class Geometry:
    """Where a kernel of ``ksize`` moves: stride, dilation and the pad on each side."""

    ksize: Pair
    stride: Pair = (1, 1)
    dilation: Pair = (1, 1)
    pad: Pad4 = (0, 0, 0, 0)

    def __post_init__(self) -> None:
        for what, values, minimum in (("kernel size", self.ksize, 1), ("stride", self.stride, 1),
                                      ("dilation", self.dilation, 1), ("padding amount", self.pad, 0)):
            if min(values) < minimum:
                msg = f"{what} must be >= {minimum}, got {tuple(values)}"
                raise UsageError(msg)

    def out_hw(self, h: int, w: int) -> Pair:
        """Output (H, W) for an (h, w) input; raises UsageError if either is < 1."""
        oh = output_size(h, self.ksize[0], self.stride[0], self.dilation[0], *self.pad[:2])
        ow = output_size(w, self.ksize[1], self.stride[1], self.dilation[1], *self.pad[2:])
        if oh < 1 or ow < 1:
            bad = [
                f"{axis}: {arithmetic(n, k, s, d, b, a)}"
                for axis, n, k, s, d, b, a, o in (
                    ("height", h, self.ksize[0], self.stride[0], self.dilation[0],
                     self.pad[0], self.pad[1], oh),
                    ("width", w, self.ksize[1], self.stride[1], self.dilation[1],
                     self.pad[2], self.pad[3], ow),
                )
                if o < 1
            ]
            msg = "output would be empty: " + "; ".join(bad) + " (< 1)"
            raise UsageError(msg)
        return oh, ow

    def arithmetic(self, h: int, w: int) -> str:
        """Both axes' arithmetic; one string when they are equal."""
        ah = arithmetic(h, self.ksize[0], self.stride[0], self.dilation[0], *self.pad[:2])
        aw = arithmetic(w, self.ksize[1], self.stride[1], self.dilation[1], *self.pad[2:])
        return ah if ah == aw else f"H: {ah}; W: {aw}"


def receptive_field(stages: list[Geometry]) -> list[tuple[Pair, Pair]]:
    """Cumulative (receptive field, jump) after each stage, per axis (Y, X).

    rf_l = rf_{l-1} + (k_eff - 1) * jump_{l-1}, jump_l = jump_{l-1} * s, with
    k_eff = d*(k-1) + 1. Three 3x3 stride-2 stages give rf 3, 7, 15 and jump 2, 4, 8.
    """
    rf = [1, 1]
    jump = [1, 1]
    out: list[tuple[Pair, Pair]] = []
    for g in stages:
        for a in (0, 1):
            keff = g.dilation[a] * (g.ksize[a] - 1) + 1
            rf[a] = rf[a] + (keff - 1) * jump[a]
            jump[a] = jump[a] * g.stride[a]
        out.append(((rf[0], rf[1]), (jump[0], jump[1])))
    return out
