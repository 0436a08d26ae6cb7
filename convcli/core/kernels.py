"""Kernels as small frozen records: the registry, the Gaussian/box builders and the literal parser.

A kernel spec on the command line (resolved by :func:`convcli.core.specs.parse_kernel`) is one of
- a registry name (``sharpen``, ``gaussian5``, ``sobel-x`` ...),
- a literal: rows split by ``;``, values by spaces or commas, fractions allowed
  (``"0 -1 0; -1 5 -1; 0 -1 0"``, ``"1/9 1/9 1/9; ..."``),
- a nested list, Python or JSON style (``"[[0,-1,0],[-1,5,-1],[0,-1,0]]"``): always 2-D,
- a file: ``@path`` with .txt/.csv rows, .json (list of lists, or one list: a row) or .npy, at most 16 MiB
  (:data:`convcli.io.userfiles.MAX_USER_FILE_BYTES`).

A minus sign may be typed as ``-`` or as U+2212 (``−``, as printed by ``explain`` and the README).
Every kernel is at most :data:`MAX_KERNEL_SIZE` (1001) on a side, and the sum of its
absolute entries at most :data:`MAX_KERNEL_ABS_SUM` (1e9), so results stay finite in float32.
"""

from __future__ import annotations

import math
from dataclasses import field

import numpy as np

from convcli.core.records import record
from convcli.errors import UsageError

#: The largest kernel side (rows or columns) convcli builds or accepts: README, "Kernels".
MAX_KERNEL_SIZE = 1001
#: The largest sum of |entries| of a kernel: 65535 * 1e9 stays far inside float32.
MAX_KERNEL_ABS_SUM = 1e9
#: The smallest Gaussian sigma taken (blur --sigma, sharpen --sigma, gaussian/log/dog/gabor/comet).
#: A sampled Gaussian is already a unit impulse to double precision from sigma ~0.03 down
#: (exp(-1 / (2 * 0.03**2)) < 1e-240); far below, its square and quotients leave float range.
MIN_SIGMA = 1e-3
#: Characters read as a minus sign in kernel literals and --patch (U+2212 MINUS SIGN).
MINUS_SIGNS = "\u2212"


def check_kernel_size(rows: int, cols: int, what: str = "kernel") -> None:
    """UsageError if a rows x cols kernel would exceed :data:`MAX_KERNEL_SIZE` (checked before building)."""
    if max(rows, cols) > MAX_KERNEL_SIZE:
        msg = (f"{what} would be {rows}x{cols}; kernels are at most {MAX_KERNEL_SIZE}x{MAX_KERNEL_SIZE}")
        raise UsageError(msg)


@record(frozen=True)
class Kernel:
    """A named 2-D kernel. ``weights`` is a read-only float64 array."""

    name: str
    weights: np.ndarray = field(repr=False)
    description: str = ""
    #: exact text of the entries for display (e.g. "1/16"), same shape as weights; optional
    display: tuple[tuple[str, ...], ...] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        w = np.array(self.weights, dtype=np.float64)
        if w.ndim != 2 or w.size == 0:
            msg = f"kernel {self.name!r} must be a non-empty 2-D matrix, got shape {w.shape}"
            raise UsageError(msg)
        check_kernel_size(w.shape[0], w.shape[1], f"kernel {self.name!r}")
        if not np.all(np.isfinite(w)):
            msg = f"kernel {self.name!r} contains NaN or infinite values"
            raise UsageError(msg)
        with np.errstate(over="ignore"):
            total = float(np.abs(w).sum())
        if not total <= MAX_KERNEL_ABS_SUM:
            shown = f"{total:.3g}" if f"{total:.3g}" != f"{MAX_KERNEL_ABS_SUM:.3g}" else f"{total:.12g}"
            msg = (f"kernel {self.name!r} is too large: its entries' absolute values sum to {shown}, "
                   f"over {MAX_KERNEL_ABS_SUM:.0e} (results would overflow)")
            raise UsageError(msg)
        w.setflags(write=False)
        object.__setattr__(self, "weights", w)

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.weights.shape[0]), int(self.weights.shape[1]))

    @property
    def is_integer(self) -> bool:
        return bool(np.all(self.weights == np.round(self.weights)))

    def normalized(self) -> Kernel:
        """Divided by its sum (``--normalize``); an error if the sum is 0."""
        s = float(self.weights.sum())
        if abs(s) <= 1e-12 * float(np.abs(self.weights).sum()):  # zero up to rounding, at any scale
            msg = f"cannot --normalize kernel {self.name!r}: its entries sum to 0"
            raise UsageError(msg)
        return Kernel(f"{self.name} / {format_number(s)}", self.weights / s, self.description)

    def scaled(self, factor: float) -> Kernel:
        """Multiplied by ``factor`` (``--scale``)."""
        if not math.isfinite(factor):
            msg = f"--scale must be finite, got {factor}"
            raise UsageError(msg)
        total = abs(factor) * float(np.abs(self.weights).sum())  # Python floats: inf, not a NumPy warning
        if not total <= MAX_KERNEL_ABS_SUM:
            msg = (f"--scale {factor:g} makes kernel {self.name!r} too large: its entries' absolute values "
                   f"would sum to {total:.3g}, over {MAX_KERNEL_ABS_SUM:.0e} (results would overflow)")
            raise UsageError(msg)
        return Kernel(f"{format_number(factor)} * {self.name}", self.weights * factor, self.description)

    def flipped(self) -> Kernel:
        """Rotated by 180° (``--flip``: true convolution instead of correlation)."""
        disp = None if self.display is None else tuple(tuple(r[::-1]) for r in self.display[::-1])
        return Kernel(self.name, rotate180(self.weights), self.description, disp)

    def entries(self) -> list[list[str]]:
        """The entries as text, exact fractions where given."""
        if self.display is not None:
            return [list(r) for r in self.display]
        return [[format_number(v) for v in row] for row in self.weights]


#: A kernel summing to at most this fraction of its taps' total responds to change, as a derivative
#: does: its response has no alpha, and alpha through the kernel scaled to sum 1 would be blown up
#: (``1 -0.999``: weights x1000, alpha edges clipped to 0 or 255).
ZERO_SUM = 1e-3


def sums_to_zero(weights: np.ndarray) -> bool:
    """Whether ``weights`` sum to (about) 0 against the sum of their magnitudes (:data:`ZERO_SUM`)."""
    w = np.asarray(weights, dtype=np.float64)
    return abs(float(w.sum())) <= ZERO_SUM * float(np.abs(w).sum())


def rotate180(weights: np.ndarray) -> np.ndarray:
    """``weights`` rotated by 180° (a view): correlating with it is convolving with ``weights``.

    The one place the kernel flip is written; ``--flip``, the engine's ``flip=`` and the
    FFT method's convolution all use it.
    """
    return np.asarray(weights)[::-1, ::-1]


def format_number(v: float) -> str:
    """Short text for a kernel entry: integers bare, others with up to 4 significant digits."""
    if not math.isfinite(v) or abs(v) >= 1e15:
        return f"{v:.4g}"
    if v == int(v):
        return str(int(v))
    return f"{v:.4g}"


# --- builders --------------------------------------------------------------------------

# OpenCV's getGaussianKernel uses these fixed taps for odd k <= 7 when sigma <= 0.
_OPENCV_SMALL_GAUSSIAN = {
    1: [1.0],
    3: [0.25, 0.5, 0.25],
    5: [0.0625, 0.25, 0.375, 0.25, 0.0625],
    7: [0.03125, 0.109375, 0.21875, 0.28125, 0.21875, 0.109375, 0.03125],
}


def opencv_default_sigma(k: int) -> float:
    """OpenCV's sigma for ``getGaussianKernel(k, 0)``: 0.3*((k-1)*0.5 - 1) + 0.8."""
    return 0.3 * ((k - 1) * 0.5 - 1) + 0.8


def check_sigma(sigma: float, what: str) -> None:
    """UsageError unless ``sigma`` is finite and at least :data:`MIN_SIGMA`."""
    if not math.isfinite(sigma):  # "must be at least 0.001, got inf" read wrong
        msg = f"{what} must be a finite number, got {sigma:g}"
        raise UsageError(msg)
    if sigma < MIN_SIGMA:
        msg = (f"{what} must be at least {MIN_SIGMA:g} (a smaller Gaussian is the identity kernel), "
               f"got {sigma:g}")
        raise UsageError(msg)


def size_text(n: float) -> str:
    """A kernel size for a message: digits while they are readable, else 3 significant figures."""
    return str(int(n)) if abs(n) < 1e9 else f"{float(n):.3g}"


def size_for_sigma(sigma: float, truncate: float = 3.0) -> int:
    """Kernel size covering ``truncate`` sigmas each side: 2*ceil(truncate*sigma) + 1."""
    reach = truncate * sigma
    if not math.isfinite(reach):
        msg = (f"sigma {sigma:g} (x {truncate:g}) is beyond any kernel: kernels are at most "
               f"{MAX_KERNEL_SIZE}x{MAX_KERNEL_SIZE}")
        raise UsageError(msg)
    return 2 * math.ceil(reach) + 1


def gaussian_1d(k: int, sigma: float | None = None) -> np.ndarray:
    """A normalised 1-D Gaussian of odd size ``k``, exactly as OpenCV's getGaussianKernel.

    ``sigma`` None or <= 0 uses OpenCV's default: its fixed taps for k <= 7 (binomial for 3 and 5, not 7),
    else sigma = 0.3*((k-1)*0.5 - 1) + 0.8.
    """
    if k < 1 or k % 2 == 0:
        msg = f"Gaussian size must be odd and >= 1, got {k}"
        raise UsageError(msg)
    check_kernel_size(k, k, "Gaussian kernel")
    if sigma is not None and not (sigma <= 0):  # (NaN included: checked, not defaulted)
        check_sigma(sigma, "Gaussian sigma")
    if (sigma is None or sigma <= 0) and k in _OPENCV_SMALL_GAUSSIAN:
        return np.array(_OPENCV_SMALL_GAUSSIAN[k])
    s = opencv_default_sigma(k) if sigma is None or sigma <= 0 else sigma
    x = np.arange(k) - (k - 1) / 2
    g = np.exp(-(x**2) / (2 * s * s))
    return g / g.sum()


def _sides(k: int | tuple[int, int]) -> tuple[int, int, str]:
    """(ky, kx) and the name's size part: ``5`` for a square, ``5x3`` otherwise."""
    ky, kx = (k, k) if isinstance(k, int) else k
    return ky, kx, str(ky) if ky == kx else f"{ky}x{kx}"


def gaussian_kernel(k: int | tuple[int, int], sigma: float | None = None) -> Kernel:
    """The k x k (or ky x kx) Gaussian, the outer product of :func:`gaussian_1d` per side: the one
    builder (blur, parametric ``gaussian:``, sharpen's unsharp mask) and its one name rule."""
    ky, kx, size = _sides(k)
    weights = np.outer(gaussian_1d(ky, sigma), gaussian_1d(kx, sigma))
    label = f"gaussian{size}" if sigma is None or sigma <= 0 else f"gaussian{size}(sigma={sigma:g})"
    return Kernel(label, weights, f"{ky}x{kx} Gaussian blur")


def box_kernel(k: int | tuple[int, int]) -> Kernel:
    """The k x k (or ky x kx) mean filter, every entry 1/(ky*kx)."""
    ky, kx, size = _sides(k)
    if min(ky, kx) < 1:
        msg = f"box size must be >= 1, got {size}"
        raise UsageError(msg)
    check_kernel_size(ky, kx, "box kernel")
    disp = tuple(tuple(f"1/{ky * kx}" for _ in range(kx)) for _ in range(ky))
    return Kernel(f"box{size}", np.full((ky, kx), 1.0 / (ky * kx)), f"{ky}x{kx} mean (box) blur", disp)


# --- the registry ----------------------------------------------------------------------

_SMOOTH3 = np.array([1.0, 2.0, 1.0])
_DIFF3 = np.array([-1.0, 0.0, 1.0])
_SCHARR_SMOOTH = np.array([3.0, 10.0, 3.0])


def _k(name: str, rows: list[list[float]] | np.ndarray, description: str,
       display: tuple[tuple[str, ...], ...] | None = None) -> Kernel:
    return Kernel(name, np.asarray(rows, dtype=np.float64), description, display)


def _fraction_display(weights: np.ndarray, denom: int) -> tuple[tuple[str, ...], ...]:
    return tuple(
        tuple("0" if v == 0 else f"{int(round(v * denom))}/{denom}" for v in row) for row in weights
    )


def _build_registry() -> dict[str, Kernel]:
    g3 = np.outer(_SMOOTH3, _SMOOTH3) / 16.0
    g5_1d = np.array([1.0, 4.0, 6.0, 4.0, 1.0])
    g5 = np.outer(g5_1d, g5_1d) / 256.0
    kernels = [
        _k("identity", [[0, 0, 0], [0, 1, 0], [0, 0, 0]], "returns the input unchanged"),
        _k("sharpen", [[0, -1, 0], [-1, 5, -1], [0, -1, 0]], "the lecture's sharpening kernel"),
        Kernel("gaussian3", g3, "3x3 Gaussian blur, 1/16 [1 2 1; 2 4 2; 1 2 1]",
               _fraction_display(g3, 16)),
        Kernel("gaussian5", g5, "5x5 Gaussian blur, 1/256 outer([1 4 6 4 1])",
               _fraction_display(g5, 256)),
        box_kernel(3),
        box_kernel(5),
        # The lecture's K_v and K_h (Prewitt): smoothing along the edge, difference across it.
        _k("edge-vertical", np.outer(np.ones(3), _DIFF3), "lecture K_v (Prewitt x): vertical edges"),
        _k("edge-horizontal", np.outer(_DIFF3, np.ones(3)), "lecture K_h (Prewitt y): horizontal edges"),
        _k("sobel-x", np.outer(_SMOOTH3, _DIFF3), "Sobel x-derivative: vertical edges"),
        _k("sobel-y", np.outer(_DIFF3, _SMOOTH3), "Sobel y-derivative: horizontal edges"),
        _k("scharr-x", np.outer(_SCHARR_SMOOTH, _DIFF3), "Scharr x-derivative: vertical edges"),
        _k("scharr-y", np.outer(_DIFF3, _SCHARR_SMOOTH), "Scharr y-derivative: horizontal edges"),
        _k("laplacian", [[0, 1, 0], [1, -4, 1], [0, 1, 0]], "4-neighbour Laplacian: second derivative"),
        _k("emboss", [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]], "emboss (relief lit from the top left)"),
        _k("outline", [[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]], "8-neighbour outline (edge) kernel"),
        # Compass kernels at direction 0, as ImageMagick prints them; NAME@45 ... NAME@315 turn them.
        _k("kirsch", [[5, -3, -3], [5, 0, -3], [5, -3, -3]], "Kirsch compass, direction 0 (ImageMagick's)"),
        _k("robinson", [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], "Robinson compass (5-level), north mask"),
        _k("compass", [[1, 1, -1], [1, -2, -1], [1, 1, -1]], "Prewitt compass, ImageMagick's Compass"),
        _k("roberts", [[0, 0, 0], [1, -1, 0], [0, 0, 0]], "Roberts as ImageMagick's 3x3 (@45: the cross)"),
        _k("freichen", [[1, 0, -1], [math.sqrt(2), 0, -math.sqrt(2)], [1, 0, -1]],
           "Frei-Chen, ImageMagick's FreiChen:0"),
    ]
    return {k.name: k for k in kernels}


REGISTRY: dict[str, Kernel] = _build_registry()

#: Other names people type for registry kernels.
ALIASES: dict[str, str] = {
    "prewitt-x": "edge-vertical",
    "prewitt-y": "edge-horizontal",
    "kv": "edge-vertical",
    "kh": "edge-horizontal",
    "gaussian": "gaussian3",
    "blur": "gaussian3",
    "box": "box3",
    "mean": "box3",
    "edge": "outline",
}


def get_kernel(name: str) -> Kernel:
    """A registry kernel by name or alias; unknown names get a did-you-mean list."""
    key = name.strip().lower().replace("_", "-")
    key = ALIASES.get(key, key)
    if key in REGISTRY:
        return REGISTRY[key]
    choices = list(REGISTRY) + list(ALIASES)
    import difflib  # only for the error message

    close = difflib.get_close_matches(key, choices, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    msg = f"unknown kernel {name!r}{hint} (see 'convcli kernels')"
    raise UsageError(msg)


# --- the parser --------------------------------------------------------------------------


def normalize_minus(text: str) -> str:
    """U+2212 (as printed by ``explain`` and the README) read as an ASCII minus."""
    for ch in MINUS_SIGNS:
        text = text.replace(ch, "-")
    return text


def _parse_value(token: str, row: int) -> float:
    """One entry: a decimal number or a fraction ``a/b`` (no ``Fraction``: ``1e999999999`` stays cheap)."""
    try:
        if "/" in token:
            num, _, den = token.partition("/")
            if "/" in den:  # "1/2/3" is ambiguous
                raise ValueError(token)
            value = float(num) / float(den)
        else:
            value = float(token)
    except (ValueError, ZeroDivisionError, OverflowError):
        shown = token if len(token) <= 40 else token[:30] + "..."
        msg = f"kernel row {row}: {shown!r} is not a number"
        raise UsageError(msg) from None
    if not math.isfinite(value):
        shown = token if len(token) <= 40 else token[:30] + "..."
        msg = f"kernel row {row}: {shown!r} is not finite"
        raise UsageError(msg)
    return value


def parse_rows(rows: list[list[str]] | list[list[float]], name: str) -> Kernel:
    """Check rows for raggedness, emptiness and non-finite values; build a Kernel."""
    if not rows or all(len(r) == 0 for r in rows):
        msg = f"kernel {name!r} is empty"
        raise UsageError(msg)
    check_kernel_size(len(rows), max(len(r) for r in rows), f"kernel {name!r}")
    values: list[list[float]] = []
    for i, row in enumerate(rows, start=1):
        if len(row) == 0:
            msg = f"kernel row {i} is empty"
            raise UsageError(msg)
        values.append([
            _parse_value(v, i) if isinstance(v, str) else _check_float(v, i) for v in row
        ])
    width = len(values[0])
    for i, row in enumerate(values, start=1):
        if len(row) != width:
            has = f"{len(row)} value" + ("" if len(row) == 1 else "s")
            msg = f"kernel row {i} has {has}, row 1 has {width} (ragged kernel)"
            raise UsageError(msg)
    return Kernel(name, np.array(values), "user kernel")


def _check_float(v: object, row: int) -> float:
    if isinstance(v, list):
        msg = f"kernel row {row}: a nested list, but a kernel is a list of rows of numbers (2-D)"
        raise UsageError(msg)
    if isinstance(v, bool) or not isinstance(v, int | float):
        msg = f"kernel row {row}: {str(v)[:40]!r} is not a number"
        raise UsageError(msg)
    try:
        f = float(v)
    except OverflowError:
        f = math.inf
    if not math.isfinite(f):
        msg = f"kernel row {row}: {f} is not finite"
        raise UsageError(msg)
    return f


def _nesting_depth(text: str) -> int:
    """The deepest ``[`` nesting in ``text`` (counted without recursion)."""
    depth = deepest = 0
    for ch in text:
        if ch == "[":
            depth += 1
            deepest = max(deepest, depth)
        elif ch == "]":
            depth -= 1
    return deepest


def _parse_nested(text: str, what: str) -> list[list[str]]:
    """``[[a, b], [c, d]]`` (Python or JSON style, commas or spaces) -> rows of tokens, never flattened."""
    depth = _nesting_depth(text)
    if depth > 2:
        msg = f"{what}: lists nested {depth} deep; a kernel is a list of rows (2 levels: [[...], [...]])"
        raise UsageError(msg)
    body = text.strip()
    if not (body.startswith("[") and body.endswith("]")):
        msg = f"{what}: a nested list must be written [[...], [...]]"
        raise UsageError(msg)
    rows: list[list[str]] = []
    level = 0
    current: list[str] | None = None
    token = ""

    def end_token() -> None:
        nonlocal token
        if token:
            if current is None:
                msg = f"{what}: {token!r} stands outside a row; write every row in brackets [...]"
                raise UsageError(msg)
            current.append(token)
            token = ""

    for ch in body:
        if ch == "[":
            if token:
                msg = f"{what}: missing ',' before '['"
                raise UsageError(msg)
            level += 1
            if level == 2:
                current = []
        elif ch == "]":
            end_token()
            level -= 1
            if level < 0:
                msg = f"{what}: unbalanced ']'"
                raise UsageError(msg)
            if level == 1 and current is not None:
                rows.append(current)
                current = None
        elif ch in ",; \t\r\n":
            end_token()
        else:
            if level != 2:  # a bare value between rows or after the list
                msg = f"{what}: {ch!r} stands outside a row; write every row in brackets [...]"
                raise UsageError(msg)
            token += ch
    if level != 0:
        msg = f"{what}: unbalanced '['"
        raise UsageError(msg)
    return rows


def parse_literal(text: str, name: str | None = None) -> Kernel:
    """``"0 -1 0; -1 5 -1; 0 -1 0"`` -> Kernel. Rows by ``;`` or newlines, values by spaces/commas.

    ``[[0, -1, 0], [-1, 5, -1], [0, -1, 0]]`` (a nested list, Python or JSON style) is read
    row by row; a single pair of outer brackets (``[1 2; 3 4]``, as MATLAB) is allowed too.
    """
    text = normalize_minus(text)
    what = name or "kernel literal"
    if _nesting_depth(text) >= 2:
        rows = _parse_nested(text, what)
    else:
        body = text.strip()
        if body.startswith("[") and body.endswith("]"):
            body = body[1:-1]
        if "[" in body or "]" in body:
            msg = f"{what}: unbalanced brackets (write [[...], [...]] or rows separated by ';')"
            raise UsageError(msg)
        lines = [ln for ln in body.replace("\n", ";").split(";")]
        if lines and lines[-1].strip() == "":
            lines = lines[:-1]  # a trailing ';'
        rows = [ln.replace(",", " ").split() for ln in lines]
    k = parse_rows(rows, name or "literal")
    if name is None:  # name a literal by its sum: the report prints its size beside the name
        k = Kernel(f"literal (sum {format_number(float(k.weights.sum()))})", k.weights, "user kernel")
    return k


def kernel_from_text(text: str, name: str, what: str, json_lists: bool) -> Kernel:
    """A kernel file's text (already decoded): rows of numbers (.txt/.csv; ``#`` comments, commas or
    semicolons between numbers) or, with ``json_lists``, a JSON list of lists (a flat list is one
    row, as the literal ``[1, 2, 3]``). Errors begin with ``what`` (the file)."""
    text = normalize_minus(text)
    if json_lists:
        depth = _nesting_depth(text)
        if depth > 2:
            msg = f"{what}: lists nested {depth} deep; expected a list of lists of numbers"
            raise UsageError(msg)
        try:
            import json

            data = json.loads(text, parse_int=float)  # float('9' * 5000) is inf, refused below
        except json.JSONDecodeError as e:
            msg = f"{what}: invalid JSON ({e.msg} at line {e.lineno})"
            raise UsageError(msg) from None
        except (ValueError, RecursionError, OverflowError) as e:
            msg = f"{what}: invalid JSON ({' '.join(str(e).split())[:80]})"
            raise UsageError(msg) from None
        if isinstance(data, list) and data and not any(isinstance(r, list) for r in data):
            data = [data]  # [1, 2, 3]: one row, as the literal reads it
        if not isinstance(data, list) or not all(isinstance(r, list) for r in data):
            msg = f"{what}: expected a list of lists of numbers (or one list of numbers: a row)"
            raise UsageError(msg)
        return parse_rows(data, name)
    lines = [ln.split("#", 1)[0].strip() for ln in text.splitlines()]
    rows = [ln.replace(",", " ").replace(";", " ").split() for ln in lines if ln]
    return parse_rows(rows, name)


def kernel_from_array(arr: np.ndarray, name: str, what: str) -> Kernel:
    """A kernel file's 2-D array (.npy); errors begin with ``what`` (the file)."""
    if arr.ndim != 2:
        msg = f"{what}: expected a 2-D array, got shape {arr.shape}"
        raise UsageError(msg)
    check_kernel_size(arr.shape[0], arr.shape[1], what)
    return parse_rows(arr.astype(np.float64).tolist(), name)
