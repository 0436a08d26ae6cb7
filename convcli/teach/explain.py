"""One output pixel computed by hand, as the lecture does it.

``explain_patch`` multiplies a kernel with a patch term by term::

    Output = (0·10) + (−1·20) + (0·30) + (−1·40) + (5·50) + (−1·60) + (0·70) + (−1·80) + (0·90)
    Output = 50

``explain_at`` takes the window of one output pixel from an image, with stride,
dilation and padding (positions that fall in the padding are shown in brackets
with the input pixel the padding mode copies), and ``explain_unroll`` shows the
same computation as PyTorch does it: the im2col matrix times the flattened kernel.

Negative numbers are written with the minus sign "−" (U+2212) and products with
the middle dot "·", as the lecture prints them.
"""

from __future__ import annotations

from dataclasses import field

import numpy as np

from convcli.core.kernels import Kernel
from convcli.core.padding import PadMode, pad_array
from convcli.core.records import record
from convcli.core.shapes import Geometry, Pad4, Pair, resolve_geometry
from convcli.engine import correlate2d, im2col
from convcli.errors import UsageError

MINUS = "\u2212"
DOT = "\u00b7"
#: Largest input ``explain_unroll`` prints (the im2col matrix has one row per output pixel).
UNROLL_MAX = 8
#: Most kernel taps (im2col columns) --unroll prints, and animate --unroll draws: a 7x7 kernel.
UNROLL_MAX_TAPS = 49
#: Most outputs (im2col rows) --unroll prints: a 16x16 output (an 8x8 input padded well beyond same).
UNROLL_MAX_ROWS = 256
#: Output lines longer than this wrap after a term.
WRAP = 100


@record(frozen=True)
class Term:
    """One product of the sum: ``weight · value``."""

    row: int  # kernel row i
    col: int  # kernel column j
    weight: float
    weight_text: str
    value: float
    value_text: str
    #: input position (y, x) the value sits at; None for a free-standing patch
    position: tuple[int, int] | None = None
    #: True when the position is outside the input and the value comes from padding
    padded: bool = False
    #: the input pixel (y, x) the padding copies; None inside the input or for zeros padding
    source: tuple[int, int] | None = None

    @property
    def product(self) -> float:
        return self.weight * self.value

    @property
    def text(self) -> str:
        """``(−1·20)``; a value from padding is bracketed: ``(−1·[20])``."""
        v = f"[{self.value_text}]" if self.padded else self.value_text
        return f"({self.weight_text}{DOT}{v})"


@record(frozen=True)
class Explanation:
    """The result of an explanation.

    ``value`` is the number the explanation arrives at (the output pixel); for
    :func:`explain_unroll` it is the largest absolute difference between the
    unrolled product and the sliding window, and ``output`` holds the (oh, ow) result.
    """

    value: float
    text: str
    terms: tuple[Term, ...] = ()
    output: np.ndarray | None = field(default=None, repr=False, compare=False)


# --- formatting ------------------------------------------------------------------------


def fmt(v: float) -> str:
    """A number as the lecture prints it: integers bare, else up to 6 significant digits, "−" for minus."""
    v = float(v)
    if v == 0:
        return "0"  # also turns -0.0 into 0
    if v == round(v) and abs(v) < 1e15:
        s = str(int(round(v)))
    else:
        s = f"{v:.6g}"
    return s.replace("-", MINUS)


def _entry(text: str) -> str:
    return text.strip().replace("-", MINUS)


def _result_line(value: float) -> str:
    s = fmt(value)
    exact = value == 0 or float(s.replace(MINUS, "-")) == value
    return f"Output {'=' if exact else '≈'} {s}"


def matrix_lines(cells: list[list[str]]) -> list[str]:
    """Rows of right-aligned cells in brackets: ``[  0  −1   0 ]``."""
    width = max(len(c) for row in cells for c in row)
    return ["[ " + " ".join(c.rjust(width) for c in row) + " ]" for row in cells]


def side_by_side(blocks: list[tuple[str, list[str]]], gap: int = 6) -> list[str]:
    """Titled blocks of lines next to each other, each padded to its widest line."""
    widths = [max(len(title), *(len(ln) for ln in lines)) for title, lines in blocks]
    height = max(len(lines) for _, lines in blocks)
    out = ["".join(t.ljust(w + gap) for (t, _), w in zip(blocks, widths, strict=True)).rstrip()]
    for r in range(height):
        parts = [(lines[r] if r < len(lines) else "").ljust(w + gap)
                 for (_, lines), w in zip(blocks, widths, strict=True)]
        out.append("".join(parts).rstrip())
    return out


def _sum_lines(terms: list[Term], bias: float, row_length: int) -> list[str]:
    """``Output = t1 + t2 + ...`` on one line when it fits :data:`WRAP`, else one kernel row a line
    (``row_length`` terms; a row itself longer than WRAP wraps after a term): row 3 ran into row 4."""
    items = [t.text for t in terms]
    head = "Output = "
    cont = " " * (len(head) - 2) + "+ "
    one = head + " + ".join(items + ([f"{fmt(bias)} (bias)"] if bias else []))
    if len(one) <= WRAP:
        return [one]
    rows = [items[i:i + row_length] for i in range(0, len(items), row_length)]
    if bias:
        rows.append([f"{fmt(bias)} (bias)"])
    lines: list[str] = []
    for r, row in enumerate(rows):
        line = head if r == 0 else cont
        for k, item in enumerate(row):
            piece = item if k == 0 else f" + {item}"
            if k > 0 and len(line) + len(piece) > WRAP:
                lines.append(line)
                line = cont + item
            else:
                line += piece
        lines.append(line)
    return lines


def _kernel_title(kernel: Kernel, flipped: bool = False) -> str:
    kh, kw = kernel.shape
    turned = ", flipped 180°" if flipped else ""
    return (f"Kernel ({kernel.name}, {kh}×{kw}{turned})" if len(kernel.name) <= 24
            else f"Kernel ({kh}×{kw}{turned})")


# --- explain_patch ---------------------------------------------------------------------


def explain_patch(kernel: Kernel, patch: np.ndarray, *, bias: float = 0.0,
                  flipped: bool = False) -> Explanation:
    """The lecture's worked example: every product of kernel and patch, then their sum.

    ``patch`` must have the kernel's shape. The kernel's own display entries are
    used (``1/16`` stays a fraction). ``flipped``: ``kernel`` is the user's turned by ``--flip``
    (the title says so).
    """
    p = np.asarray(patch, dtype=np.float64)
    if p.shape != kernel.shape:
        msg = f"patch shape {p.shape} does not match kernel shape {kernel.shape} (rows, columns)"
        raise UsageError(msg)
    if not np.all(np.isfinite(p)):
        msg = "patch contains NaN or infinite values"
        raise UsageError(msg)
    entries = kernel.entries()
    terms = [
        Term(i, j, float(kernel.weights[i, j]), _entry(entries[i][j]), float(p[i, j]), fmt(p[i, j]))
        for i in range(kernel.shape[0])
        for j in range(kernel.shape[1])
    ]
    value = float(sum(t.product for t in terms)) + float(bias)
    lines = side_by_side([
        (_kernel_title(kernel, flipped), matrix_lines([[_entry(e) for e in row] for row in entries])),
        ("Image patch (input)", matrix_lines([[fmt(v) for v in row] for row in p])),
    ])
    lines.append("")
    lines += _sum_lines(terms, bias, kernel.shape[1])
    lines.append(_result_line(value))
    return Explanation(value=value, text="\n".join(lines), terms=tuple(terms))


# --- explain_at ------------------------------------------------------------------------


def _source_index(n: int, before: int, after: int, mode: PadMode) -> np.ndarray:
    """For each padded position along one axis, the input index the mode copies (-1: zeros)."""
    idx = np.arange(n)[:, None]
    if mode.name == "zeros":
        return np.concatenate([np.full(before, -1), np.arange(n), np.full(after, -1)])
    return pad_array(idx, (before, after, 0, 0), mode)[:, 0]


def explain_at(
    channel: np.ndarray,
    kernel: Kernel,
    x: int,
    y: int,
    *,
    stride: Pair = (1, 1),
    dilation: Pair = (1, 1),
    pad4: Pad4 | None = None,
    mode: str = "zeros",
    flip: bool = False,
    bias: float = 0.0,
) -> Explanation:
    """Output pixel (x, y) of one image channel (H, W), computed term by term.

    (x, y) are the OUTPUT pixel's column and row. The window starts at input
    (y*sy - pad_top, x*sx - pad_left) and steps by the dilation; positions outside
    the input take the value the padding ``mode`` gives them and are shown in
    brackets. ``pad4`` None means ``same`` padding (none for mode ``valid``).
    ``value`` equals ``correlate2d(...)[y, x]`` with the same arguments.
    """
    img = np.asarray(channel)
    if img.ndim != 2:
        msg = f"explain --at needs one channel (H, W), got shape {img.shape}"
        raise UsageError(msg)
    k = kernel.flipped() if flip else kernel
    kh, kw = k.shape
    m, same = resolve_geometry(mode, None, (kh, kw), dilation)
    pad = same if pad4 is None else tuple(pad4)
    if m.name == "valid" and any(pad):
        msg = "padding mode 'valid' takes no padding amount"
        raise UsageError(msg)
    top, bottom, left, right = pad
    h, w = img.shape
    oh, ow = Geometry((kh, kw), stride, dilation, (top, bottom, left, right)).out_hw(h, w)
    if not (0 <= x < ow and 0 <= y < oh):
        msg = (f"--at {x},{y} is outside the output, which is {oh}×{ow} (H×W): "
               f"x must be in 0..{ow - 1} and y in 0..{oh - 1}")
        raise UsageError(msg)
    src_rows = _source_index(h, top, bottom, m)
    src_cols = _source_index(w, left, right, m)
    entries = k.entries()
    terms: list[Term] = []
    for i in range(kh):
        for j in range(kw):
            r = y * stride[0] + i * dilation[0] - top
            c = x * stride[1] + j * dilation[1] - left
            inside = 0 <= r < h and 0 <= c < w
            sr, sc = int(src_rows[r + top]), int(src_cols[c + left])
            value = float(img[sr, sc]) if sr >= 0 and sc >= 0 else 0.0
            source = None if inside or sr < 0 or sc < 0 else (sr, sc)
            terms.append(Term(i, j, float(k.weights[i, j]), _entry(entries[i][j]), value, fmt(value),
                              position=(r, c), padded=not inside, source=source))
    value = float(sum(t.product for t in terms)) + float(bias)

    rows = [y * stride[0] + i * dilation[0] - top for i in range(kh)]
    cols = [x * stride[1] + j * dilation[1] - left for j in range(kw)]
    header = [
        f"Output pixel x={fmt(x)}, y={fmt(y)} of a {oh}×{ow} output (H×W) from a {h}×{w} input",
        (f"stride {stride[0]},{stride[1]}  dilation {dilation[0]},{dilation[1]}  padding {m.name} "
         f"(top {top}, bottom {bottom}, left {left}, right {right})" + ("  flipped kernel" if flip else "")),
        (f"window: input rows {fmt(rows[0])}..{fmt(rows[-1])}, columns {fmt(cols[0])}..{fmt(cols[-1])}"
         + (f" (every {dilation[0]},{dilation[1]})" if dilation != (1, 1) else "")),
        "",
    ]
    window = [[f"[{t.value_text}]" if t.padded else f" {t.value_text} " for t in terms[i * kw:(i + 1) * kw]]
              for i in range(kh)]
    lines = header + side_by_side([
        (_kernel_title(k), matrix_lines([[_entry(e) for e in row] for row in entries])),
        ("Input window", matrix_lines(window)),
    ])
    padded_terms = [t for t in terms if t.padded]
    if padded_terms:
        lines.append("")
        lines.append(f"[v] = outside the input, from {m.name} padding ({m.description}):")
        for t in padded_terms:
            r, c = t.position or (0, 0)
            where = f"  (x={fmt(c)}, y={fmt(r)})"
            if t.source is None:
                lines.append(f"{where} -> 0")
            else:
                lines.append(f"{where} -> copies (x={t.source[1]}, y={t.source[0]}) = {t.value_text}")
    lines.append("")
    lines += _sum_lines(terms, bias, kernel.shape[1])
    lines.append(_result_line(value))
    return Explanation(value=value, text="\n".join(lines), terms=tuple(terms))


# --- explain_unroll ----------------------------------------------------------------------


def explain_unroll(
    x: np.ndarray,
    kernel: Kernel,
    *,
    stride: Pair = (1, 1),
    dilation: Pair = (1, 1),
    pad4: Pad4 | None = None,
    mode: str = "zeros",
    flip: bool = False,
) -> Explanation:
    """The whole convolution of a tiny input (≤ 8×8) as one matrix product (im2col).

    Prints the padded input, the im2col matrix (one labelled row per output pixel),
    the kernel flattened to a column, the product, the result reshaped to
    (oh, ow), and checks it against the sliding window (``correlate2d``).
    """
    img = np.asarray(x, dtype=np.float64)
    if img.ndim != 2:
        msg = f"--unroll needs one channel (H, W), got shape {img.shape}"
        raise UsageError(msg)
    h, w = img.shape
    if h > UNROLL_MAX or w > UNROLL_MAX:
        msg = (f"--unroll prints one matrix row per output pixel, so it takes inputs up to "
               f"{UNROLL_MAX}×{UNROLL_MAX}; got {h}×{w} (H×W): crop a small patch first")
        raise UsageError(msg)
    k = kernel.flipped() if flip else kernel
    kh, kw = k.shape
    m, same = resolve_geometry(mode, None, (kh, kw), dilation)
    pad = same if pad4 is None else tuple(pad4)
    top, bottom, left, right = pad
    geom = Geometry((kh, kw), stride, dilation, (top, bottom, left, right))
    oh, ow = geom.out_hw(h, w)
    if kh * kw > UNROLL_MAX_TAPS or oh * ow > UNROLL_MAX_ROWS:
        # a 1001x1001 box printed 143 MB of matrix (1.7 GB held to print it)
        msg = (f"--unroll prints one matrix column per kernel tap and one row per output: at most "
               f"{UNROLL_MAX_TAPS} taps and {UNROLL_MAX_ROWS} outputs, got {kh}×{kw} = {kh * kw} taps and "
               f"{oh}×{ow} = {oh * ow} outputs (H×W)")
        raise UsageError(msg)
    xp = pad_array(img, (top, bottom, left, right), m)
    cols = im2col(xp[:, :, None], (kh, kw), stride, dilation, (oh, ow))
    kvec = k.weights.reshape(-1, 1)
    prod = cols @ kvec
    result = prod.reshape(oh, ow)
    sliding = correlate2d(img, k.weights, stride=stride, dilation=dilation, pad=(top, bottom, left, right),
                          mode=m, dtype=np.float64)
    diff = float(np.max(np.abs(result - sliding))) if result.size else 0.0
    if diff > 1e-6:
        msg = f"im2col and the sliding window disagree by {diff:g}: this is a bug in convcli"
        raise AssertionError(msg)

    lines = [
        (f"Input {h}×{w} (H×W), kernel {k.name} {kh}×{kw}, stride {stride[0]},{stride[1]}, "
         f"dilation {dilation[0]},{dilation[1]}, padding {m.name} ({top}, {bottom}, {left}, {right})"),
        f"Output size: {geom.arithmetic(h, w)} -> {oh}×{ow} (H×W)",
        "",
        f"1. Padded input ({xp.shape[0]}×{xp.shape[1]} (H×W); values from padding in brackets):",
    ]
    inside = np.zeros(xp.shape, dtype=bool)
    inside[top:top + h, left:left + w] = True
    lines += ["   " + ln for ln in matrix_lines([
        [f" {fmt(v)} " if inside[r, c] else f"[{fmt(v)}]" for c, v in enumerate(row)]
        for r, row in enumerate(xp)
    ])]
    lines.append("")
    lines.append(f"2. im2col: one row per output pixel ({oh * ow} rows), one column per kernel tap "
                 f"({kh * kw} columns, K[i,j] in reading order):")
    labels = [f"(y={r}, x={c})" for r in range(oh) for c in range(ow)]
    lw = max(len(s) for s in labels)
    col_cells = [[fmt(v) for v in row] for row in cols]
    taps = [f"K{i}{j}" if kh < 10 and kw < 10 else f"K{i},{j}" for i in range(kh) for j in range(kw)]
    width = max(max(len(c) for row in col_cells for c in row), max(len(t) for t in taps))
    lines.append("   " + " " * (lw + 1) + "  " + " ".join(t.rjust(width) for t in taps))
    for label, row in zip(labels, col_cells, strict=True):
        lines.append(f"   {label.rjust(lw)} [ " + " ".join(c.rjust(width) for c in row) + " ]")
    lines.append("")
    lines.append(f"3. The kernel flattened to a column ({kh * kw}×1):")
    kcells = [[_entry(e)] for row in k.entries() for e in row]
    kl = matrix_lines(kcells)
    tw = max(len(t) for t in taps)
    lines += [f"   {t.rjust(tw)} {ln}" for t, ln in zip(taps, kl, strict=True)]
    lines.append("")
    lines.append(f"4. The matrix product ({oh * ow}×{kh * kw}) @ ({kh * kw}×1) = ({oh * ow}×1), "
                 "every output pixel at once:")
    lines += [f"   {label.rjust(lw)} = {fmt(v)}" for label, v in zip(labels, prod[:, 0], strict=True)]
    lines.append("")
    lines.append(f"5. Reshaped to (oh, ow) = ({oh}, {ow}):")
    lines += ["   " + ln for ln in matrix_lines([[fmt(v) for v in row] for row in result])]
    lines.append("")
    lines.append(f"This equals the sliding-window result (correlate2d): max difference {diff:g}.")
    return Explanation(value=diff, text="\n".join(lines), output=result)
