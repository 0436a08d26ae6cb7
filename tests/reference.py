"""Independent references for the convolution core, written from README 'numbers', not from convcli.

Nothing here imports convcli. Two references that share no code with each other:

- :func:`ref_correlate_loop`: a direct float64 loop over output pixels and kernel taps,
  ``out[y, x] = sum_ij K[i, j] * in[y*s + i*d - pad_top, x*s + j*d - pad_left]``,
  with out-of-range indices mapped by :func:`map_index` (hand-written per mode,
  matching ``numpy.pad`` also for pads larger than the image).
- :func:`ref_correlate_scipy`: ``scipy.ndimage.correlate`` with the README 'numbers' mode
  table, asymmetric pads and even kernels placed with ``origin``, dilation as a
  kernel with zeros between the taps and stride as the stride-1 result sampled
  (pads beyond scipy's origin range: ``ndi.correlate1d`` row by row, see
  :func:`_scipy_stride1`).

Both take ``(x, k, stride, dilation, pad4, mode)``: ``x`` is (H, W) or (H, W, C)
(channels are filtered independently), ``k`` a 2-D kernel, ``stride`` and
``dilation`` an int or a (Y, X) pair, ``pad4`` (top, bottom, left, right), ``mode``
a padding-mode name or alias from README 'numbers' (``valid`` requires a zero pad). They
return float64 arrays and raise ``ValueError`` when the output would be empty.
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage as ndi

#: The canonical padding modes that actually pad (README 'numbers'), in the table's order.
PAD_MODES: tuple[str, ...] = ("zeros", "border", "reflection", "symmetric", "circular")

#: README 'numbers' aliases, written out here by hand (independent of convcli.core.padding).
ALIASES: dict[str, str] = {
    "constant": "zeros",
    "replicate": "border",
    "edge": "border",
    "nearest": "border",
    "reflect": "reflection",
    "mirror": "reflection",
    "reflect101": "reflection",
    "wrap": "circular",
    "none": "valid",
}

#: README 'numbers' table, numpy.pad column.
NUMPY_MODE: dict[str, str] = {
    "zeros": "constant",
    "border": "edge",
    "reflection": "reflect",
    "symmetric": "symmetric",
    "circular": "wrap",
}

#: README 'numbers' table, scipy.ndimage column.
SCIPY_MODE: dict[str, str] = {
    "zeros": "constant",
    "border": "nearest",
    "reflection": "mirror",
    "symmetric": "reflect",
    "circular": "wrap",
}

Pad4 = tuple[int, int, int, int]


def canonical_mode(name: str) -> str:
    """README 'numbers' canonical name for a mode name or alias (case-insensitive)."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in PAD_MODES and key != "valid":
        raise ValueError(f"unknown padding mode {name!r}")
    return key


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(v, int | np.integer):
        return int(v), int(v)
    a, b = v
    return int(a), int(b)


def out_len(n: int, k: int, s: int = 1, d: int = 1, before: int = 0, after: int = 0) -> int:
    """README 'numbers' output size: floor((n + before + after - d*(k-1) - 1) / s) + 1 (may be < 1)."""
    return (n + before + after - d * (k - 1) - 1) // s + 1


def same_pad(k: int, d: int = 1) -> tuple[int, int]:
    """README 'numbers' ``--pad same``: total d*(k-1), before = total // 2, after = the rest."""
    total = d * (k - 1)
    return total // 2, total - total // 2


def pad4_from_spec(spec: str, ksize: tuple[int, int], dilation: tuple[int, int] = (1, 1)) -> Pad4:
    """``same`` | ``N`` | ``Y,X`` | ``T,B,L,R`` -> (top, bottom, left, right), per README 'numbers'."""
    if spec == "same":
        t, b = same_pad(ksize[0], dilation[0])
        left, r = same_pad(ksize[1], dilation[1])
        return t, b, left, r
    parts = [int(p) for p in spec.split(",")]
    if len(parts) == 1:
        return parts[0], parts[0], parts[0], parts[0]
    if len(parts) == 2:
        return parts[0], parts[0], parts[1], parts[1]
    t, b, left, r = parts
    return t, b, left, r


def map_index(i: int, n: int, mode: str) -> int | None:
    """Where index ``i`` (possibly outside 0..n-1) reads from in a row of length ``n``.

    ``None`` means "outside, value 0" (zeros). Far-out indices follow the periodic
    extension numpy.pad produces for pads larger than the row:

    - border:     a a | a b c d | d d
    - reflection: c b | a b c d | c b   (period 2(n-1); a single sample repeats)
    - symmetric:  b a | a b c d | d c   (period 2n)
    - circular:   c d | a b c d | a b   (period n)
    """
    if 0 <= i < n:
        return i
    if mode == "zeros":
        return None
    if mode == "border":
        return 0 if i < 0 else n - 1
    if mode == "reflection":
        if n == 1:
            return 0
        period = 2 * (n - 1)
        r = i % period
        return r if r < n else period - r
    if mode == "symmetric":
        period = 2 * n
        r = i % period
        return r if r < n else period - 1 - r
    if mode == "circular":
        return i % n
    raise ValueError(f"mode {mode!r} has no index mapping")


def ref_pad_row(row: np.ndarray, before: int, after: int, mode: str) -> np.ndarray:
    """Pad a 1-D row with :func:`map_index` (to check it against numpy.pad)."""
    m = canonical_mode(mode)
    n = len(row)
    out = []
    for i in range(-before, n + after):
        j = map_index(i, n, m)
        out.append(0 if j is None else row[j])
    return np.array(out, dtype=np.asarray(row).dtype)


def _check_args(x: np.ndarray, k: np.ndarray, pad4: Pad4, mode: str) -> str:
    if x.ndim not in (2, 3):
        raise ValueError(f"x must be (H, W) or (H, W, C), got {x.shape}")
    if k.ndim != 2 or k.size == 0:
        raise ValueError(f"kernel must be a non-empty 2-D array, got {k.shape}")
    m = canonical_mode(mode)
    if m == "valid":
        if any(pad4):
            raise ValueError("valid takes no padding")
        m = "zeros"  # nothing is ever read outside
    return m


def _out_hw(x: np.ndarray, k: np.ndarray, s: tuple[int, int], d: tuple[int, int],
            pad4: Pad4) -> tuple[int, int]:
    oh = out_len(x.shape[0], k.shape[0], s[0], d[0], pad4[0], pad4[1])
    ow = out_len(x.shape[1], k.shape[1], s[1], d[1], pad4[2], pad4[3])
    if oh < 1 or ow < 1:
        raise ValueError(f"empty output {oh}x{ow}")
    return oh, ow


def ref_correlate_loop(
    x2d: np.ndarray,
    k: np.ndarray,
    stride: int | tuple[int, int] = 1,
    dilation: int | tuple[int, int] = 1,
    pad4: Pad4 = (0, 0, 0, 0),
    mode: str = "zeros",
) -> np.ndarray:
    """The README 'numbers' formula as a direct float64 loop (slow: keep arrays small)."""
    x = np.asarray(x2d, dtype=np.float64)
    kk = np.asarray(k, dtype=np.float64)
    m = _check_args(x, kk, pad4, mode)
    if x.ndim == 3:
        return np.stack(
            [ref_correlate_loop(x[:, :, c], kk, stride, dilation, pad4, m) for c in range(x.shape[2])],
            axis=2,
        )
    (sy, sx), (dy, dx) = _pair(stride), _pair(dilation)
    h, w = x.shape
    kh, kw = kk.shape
    oh, ow = _out_hw(x, kk, (sy, sx), (dy, dx), pad4)
    top, left = pad4[0], pad4[2]
    out = np.zeros((oh, ow), dtype=np.float64)
    for y in range(oh):
        for xo in range(ow):
            acc = 0.0
            for i in range(kh):
                r = map_index(y * sy + i * dy - top, h, m)
                if r is None:
                    continue
                for j in range(kw):
                    c = map_index(xo * sx + j * dx - left, w, m)
                    if c is None:
                        continue
                    acc += kk[i, j] * x[r, c]
            out[y, xo] = acc
    return out


def dilate_kernel(k: np.ndarray, dilation: int | tuple[int, int]) -> np.ndarray:
    """The kernel with d-1 zeros between taps: shape (d*(kh-1)+1, d*(kw-1)+1)."""
    dy, dx = _pair(dilation)
    kh, kw = k.shape
    kd = np.zeros((dy * (kh - 1) + 1, dx * (kw - 1) + 1), dtype=np.float64)
    kd[::dy, ::dx] = k
    return kd


def _corr1d(a: np.ndarray, w1: np.ndarray, axis: int, before: int, length: int, mode: str) -> np.ndarray:
    """``out[y] = sum_i w1[i] * a_ext[y + i - before]`` for y in 0..length-1 along ``axis``.

    scipy computes ``out[y'] = sum_i w[i] * a[y' + i - K//2 - origin]`` for y' in 0..n-1,
    with ``-(K//2) <= origin <= (K-1)//2``. So: take the output in chunks of n starting
    at y = t (y' = y - t, origin = before - K//2 - t) and surround w1 with just enough
    zeros (which change no sum) to make that origin legal.
    """
    n = a.shape[axis]
    k = len(w1)
    chunks = []
    for t in range(0, length, n):
        origin = before - k // 2 - t
        z = max(0, -origin - k // 2, origin - (k - 1) // 2)
        wz = np.concatenate([np.zeros(z), w1, np.zeros(z)])
        res = ndi.correlate1d(a, wz, axis=axis, mode=SCIPY_MODE[mode], cval=0.0, origin=origin,
                              output=np.float64)
        chunks.append(np.take(res, np.arange(min(n, length - t)), axis=axis))
    return np.concatenate(chunks, axis=axis)


def _scipy_stride1(x2d: np.ndarray, kd: np.ndarray, pad4: Pad4, mode: str) -> np.ndarray:
    """Stride-1 correlation with an already dilated kernel ``kd``, for any pads.

    When the pads fit scipy's ``origin`` range (pad_before + pad_after <= K-1 per axis:
    ``same``, ``valid`` and every pad up to the kernel's size) and scipy extends the image by
    at most its own size on each side, this is one ``ndi.correlate`` call with
    ``origin = pad_before - K//2``. Otherwise it goes through ``ndi.correlate1d`` one kernel
    row at a time (every mode is a per-axis index map, so shifting the rows with a one-tap
    filter along axis 0, correlating each with the kernel row along axis 1 and summing is the
    same correlation). Why: scipy 1.17's N-d ``correlate`` with ``mode='reflect'`` reads
    uninitialised memory once it extends a line by 4n or more (a 2-sample line, a 21-tap
    kernel, origin 8); ``correlate1d`` matches numpy.pad for every extension we tried.
    """
    h, w = x2d.shape
    kh, kw = kd.shape
    lh = h + pad4[0] + pad4[1] - kh + 1
    lw = w + pad4[2] + pad4[3] - kw + 1
    fits = pad4[0] + pad4[1] <= kh - 1 and pad4[2] + pad4[3] <= kw - 1
    # scipy extends by pad_before on the left and K-1-pad_before on the right
    near = max(pad4[0], kh - 1 - pad4[0]) <= h and max(pad4[2], kw - 1 - pad4[2]) <= w
    if fits and near:
        origin = (pad4[0] - kh // 2, pad4[2] - kw // 2)
        res = ndi.correlate(x2d, kd, mode=SCIPY_MODE[mode], cval=0.0, origin=origin, output=np.float64)
        return res[:lh, :lw]
    out = np.zeros((lh, lw), dtype=np.float64)
    for i in range(kh):
        if not np.any(kd[i]):
            continue
        rows = _corr1d(x2d, np.ones(1), 0, pad4[0] - i, lh, mode)  # rows[y] = x_ext[y + i - top]
        out += _corr1d(rows, kd[i], 1, pad4[2], lw, mode)
    return out


def ref_correlate_scipy(
    x2d: np.ndarray,
    k: np.ndarray,
    stride: int | tuple[int, int] = 1,
    dilation: int | tuple[int, int] = 1,
    pad4: Pad4 = (0, 0, 0, 0),
    mode: str = "zeros",
) -> np.ndarray:
    """The README 'numbers' correlation through scipy.ndimage.correlate (mode names per the §1 table)."""
    x = np.asarray(x2d, dtype=np.float64)
    kk = np.asarray(k, dtype=np.float64)
    m = _check_args(x, kk, pad4, mode)
    if x.ndim == 3:
        return np.stack(
            [ref_correlate_scipy(x[:, :, c], kk, stride, dilation, pad4, m) for c in range(x.shape[2])],
            axis=2,
        )
    (sy, sx), d = _pair(stride), _pair(dilation)
    oh, ow = _out_hw(x, kk, (sy, sx), d, pad4)
    full = _scipy_stride1(x, dilate_kernel(kk, d), pad4, m)
    out = full[::sy, ::sx]
    assert out.shape == (oh, ow), (out.shape, (oh, ow))
    return out


def ref_conv2d_loop(
    x: np.ndarray,
    weights: np.ndarray,
    bias: np.ndarray | None = None,
    stride: int | tuple[int, int] = 1,
    dilation: int | tuple[int, int] = 1,
    pad4: Pad4 = (0, 0, 0, 0),
    mode: str = "zeros",
) -> np.ndarray:
    """A conv layer from the formula: out[..., o] = sum_c corr(x[..., c], W[o, c]) + b[o].

    ``x`` (H, W, Cin) or (H, W); ``weights`` (Cout, Cin, kh, kw); returns (oh, ow, Cout) float64.
    """
    xx = np.asarray(x, dtype=np.float64)
    if xx.ndim == 2:
        xx = xx[:, :, None]
    w = np.asarray(weights, dtype=np.float64)
    cout, cin = w.shape[:2]
    if cin != xx.shape[2]:
        raise ValueError(f"weights want {cin} input channels, x has {xx.shape[2]}")
    maps = []
    for o in range(cout):
        acc = sum(ref_correlate_loop(xx[:, :, c], w[o, c], stride, dilation, pad4, mode)
                  for c in range(cin))
        if bias is not None:
            acc = acc + float(bias[o])
        maps.append(acc)
    return np.stack(maps, axis=2)
