"""Learning a kernel from an input and a target: gradient descent, or least squares on im2col.

The model is the correlation every convcli command computes,
``y[y0, x0] = sum_ij K[i, j] * xp[y0*s + i*d, x0*s + j*d]`` on the padded input ``xp``
(``s`` the stride, ``d`` the dilation), and the loss is the mean squared error
``L = mean((y - t)**2)`` against the target ``t``. Its error signal is
``e = dL/dy = 2 (y - t) / N`` (N = the number of output samples), and

    dL/dK[i, j] = sum_{y0, x0} e[y0, x0] * xp[i*d + y0*s, j*d + x0*s]

which is again a correlation: **the padded input correlated with the error**, the
error playing the kernel, with stride and dilation swapping roles (stride ``d``,
dilation ``s``) and the result cropped to the kernel's size. So the backward pass of a
convolution layer is made of the same operation as its forward pass; both go through
:func:`convcli.engine.correlate2d` here.

Three shapes, as the ``conv`` stage and ``filter`` know them:

- ``shared``: one 2-D kernel applied to every channel (what ``filter`` does); its
  gradient sums the per-channel correlations;
- ``depthwise``: one kernel per channel, each learnt from its own channel;
- ``mixing``: weights (C_out, C_in, kh, kw) and a bias (C_out,), as ``torch.nn.Conv2d``:
  ``dL/dW[o, c] = corr(xp_c, e_o)``, ``dL/db[o] = sum e_o``.

The loss is quadratic in the weights, so it also has a closed-form minimum:
unroll the windows (im2col) into a matrix ``A`` with one row per output sample, and
``min ||A k - t||`` is a linear least-squares problem (:func:`solve_lstsq`).

Descent uses Nesterov momentum with a step of ``lr`` (default ``1/L``, ``L`` the
largest curvature of the (preconditioned) loss, estimated by power iteration on the
same two correlations) and restarts the momentum when the loss rises (O'Donoghue &
Candès). The step along each kernel's sum is rescaled (:class:`Preconditioner`).

NumPy and convcli.engine/core only: no I/O, no Pillow, no click.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import numpy as np

from convcli.core.padding import PadMode, pad_array
from convcli.core.records import record
from convcli.core.shapes import Geometry, GeometrySpec, Pad4, Pair
from convcli.engine import conv2d, correlate2d, im2col
from convcli.errors import UsageError

Channels = Literal["shared", "depthwise", "mixing"]
CHANNELS: tuple[str, ...] = ("shared", "depthwise", "mixing")
#: Largest im2col matrix ``solve_lstsq`` builds (float64 bytes).
LSTSQ_MAX_BYTES = 1 << 30


@record(frozen=True)
class LearnSettings:
    """What to learn and how: kernel size, channel shape, geometry, descent parameters."""

    ksize: Pair = (3, 3)
    channels: Channels = "shared"
    spec: GeometrySpec = GeometrySpec()  # -s, -d, -p, --pad as given (reflection, same: as filter's)
    steps: int = 500
    lr: float | None = None  # None: 1 / (largest curvature of the loss)
    momentum: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.channels not in CHANNELS:
            msg = f"channels must be one of {', '.join(CHANNELS)}, got {self.channels!r}"
            raise UsageError(msg)
        if self.steps < 0:
            msg = f"steps must be >= 0, got {self.steps}"
            raise UsageError(msg)
        if self.lr is not None and not (self.lr > 0 and np.isfinite(self.lr)):
            msg = f"--lr must be a positive number, got {self.lr}"
            raise UsageError(msg)

    def resolve(self) -> tuple[PadMode, Pad4]:
        """The padding mode and (top, bottom, left, right) for this kernel size."""
        return self.spec.resolve(self.ksize)

    def geometry(self) -> Geometry:
        return Geometry(self.ksize, self.spec.stride, self.spec.dilation, self.resolve()[1])


@record(frozen=True)
class Weights:
    """Learnt parameters: ``kernel`` (kh, kw) shared, (C, kh, kw) depthwise or (C_out, C_in, kh, kw)
    mixing, and ``bias`` (C_out,) for mixing (None otherwise)."""

    kernel: np.ndarray
    bias: np.ndarray | None = None

    def as_conv(self, in_channels: int) -> tuple[np.ndarray, np.ndarray | None]:
        """The same layer as conv weights (out, in, kh, kw): shared and depthwise become diagonal."""
        k = self.kernel
        if k.ndim == 4:
            return k, self.bias
        per = np.broadcast_to(k, (in_channels, *k.shape[-2:])) if k.ndim == 2 else k
        w = np.zeros((in_channels, in_channels, *k.shape[-2:]), dtype=k.dtype)
        for c in range(in_channels):
            w[c, c] = per[c]
        return w, None


@record(frozen=True)
class Step:
    """One step of the descent: its number, the loss *before* the update, and the weights then."""

    step: int
    loss: float
    weights: Weights


# --------------------------------------------------------------------------- the problem


@record(frozen=True)
class Problem:
    """An input padded once, a target, and the geometry: the forward pass and its gradient.

    For ``mixing`` the padded input is centred per channel (``offset`` holds the means):
    the bias absorbs the means exactly (:meth:`export` converts back), and the descent no
    longer crawls along the one direction the bright mean of a photo dominates.
    """

    xp: np.ndarray  # padded input (Hp, Wp, C_in), float64 (centred for mixing)
    target: np.ndarray  # (oh, ow, C_out), float64
    settings: LearnSettings
    offset: np.ndarray | None = None  # mixing: per-channel means taken out of xp
    mask: np.ndarray | None = None  # (oh, ow, C_out) 1 = sample counted in the loss, 0 = left out

    @property
    def n(self) -> int:
        return int(self.target.size if self.mask is None else max(1, int(self.mask.sum())))

    def residual(self, prediction: np.ndarray) -> np.ndarray:
        r = prediction - self.target
        return r if self.mask is None else r * self.mask

    def forward(self, w: Weights) -> np.ndarray:
        """The prediction (oh, ow, C_out) for weights ``w`` (internal coordinates)."""
        s, g = self.settings, self.settings.spec
        if s.channels == "mixing":
            return conv2d(self.xp, w.kernel, w.bias, stride=g.stride, dilation=g.dilation, dtype=np.float64)
        if s.channels == "shared":
            return correlate2d(self.xp, w.kernel, stride=g.stride, dilation=g.dilation, dtype=np.float64)
        outs = [correlate2d(self.xp[:, :, c], w.kernel[c], stride=g.stride, dilation=g.dilation,
                            dtype=np.float64) for c in range(self.xp.shape[2])]
        return np.stack(outs, axis=2)

    def loss(self, prediction: np.ndarray) -> float:
        return float(np.sum(self.residual(prediction) ** 2) / self.n)

    def _kernel_grad(self, channel: int, error: np.ndarray) -> np.ndarray:
        """``dL/dK`` for one input channel and one error map: the input correlated with the error."""
        s = self.settings
        g = correlate2d(self.xp[:, :, channel], error, stride=s.spec.dilation, dilation=s.spec.stride,
                        dtype=np.float64, method="direct" if error.size <= 64 else "fft")
        return g[: s.ksize[0], : s.ksize[1]]

    def gradient(self, prediction: np.ndarray) -> Weights:
        """``dL/dweights`` at ``prediction``; every kernel gradient is a correlation (module docstring)."""
        e = (2.0 / self.n) * self.residual(prediction)
        cin = self.xp.shape[2]
        s = self.settings
        if s.channels == "shared":
            return Weights(sum(self._kernel_grad(c, e[:, :, c]) for c in range(cin)))  # type: ignore[arg-type]
        if s.channels == "depthwise":
            return Weights(np.stack([self._kernel_grad(c, e[:, :, c]) for c in range(cin)]))
        cout = self.target.shape[2]
        g = np.empty((cout, cin, *s.ksize))
        for o in range(cout):
            for c in range(cin):
                g[o, c] = self._kernel_grad(c, e[:, :, o])
        return Weights(g, e.sum(axis=(0, 1)))

    def zero(self) -> Weights:
        k = self.initial()
        return Weights(np.zeros_like(k.kernel), None if k.bias is None else np.zeros_like(k.bias))

    def initial(self) -> Weights:
        """Small seeded random weights (uniform in ±1/(kh*kw)), zero bias."""
        s = self.settings
        rng = np.random.default_rng(s.seed)
        taps = s.ksize[0] * s.ksize[1]
        cin, cout = self.xp.shape[2], self.target.shape[2]
        shape = {"shared": s.ksize, "depthwise": (cin, *s.ksize), "mixing": (cout, cin, *s.ksize)}[s.channels]
        k = rng.uniform(-1.0, 1.0, size=shape) / taps
        return Weights(k, np.zeros(cout) if s.channels == "mixing" else None)

    def export(self, w: Weights) -> Weights:
        """Internal weights -> the layer on the user's (uncentred) input."""
        if self.offset is None or w.bias is None:
            return w
        return Weights(w.kernel, w.bias - np.einsum("c,ocij->o", self.offset, w.kernel))


def _axpy(a: float, x: Weights, y: Weights) -> Weights:
    """``a*x + y`` on weights."""
    bias = None if x.bias is None or y.bias is None else a * x.bias + y.bias
    return Weights(a * x.kernel + y.kernel, bias)


def _dot(x: Weights, y: Weights) -> float:
    d = float(np.sum(x.kernel * y.kernel))
    return d + (float(np.sum(x.bias * y.bias)) if x.bias is not None and y.bias is not None else 0.0)


def _check_identifiable(x3: np.ndarray, settings: LearnSettings, padded: bool) -> None:
    """Refuse an input the data of which cannot move some weights: a channel the same everywhere
    (all of them, or one with its own kernel), or mixing over channels that are copies."""
    cin = x3.shape[2]
    values = x3.reshape(-1, cin)
    zero_border = settings.resolve()[0].name == "zeros" and padded
    flat = [c for c in range(cin) if np.all(values[:, c] == values[0, c])
            and (not zero_border or values[0, c] == 0)]
    # every window the same: the kernel's sum is all the data holds (a zero input, not even that); the
    # descent then wandered from its start or diverged, and printed a kernel as learnt. A shared kernel
    # learns from the other channels; a channel's own kernel (depthwise) or weights (mixing) cannot
    if len(flat) == cin or (flat and settings.channels != "shared"):
        which = ("the input" if len(flat) == cin else f"input channel {flat[0]} (of {cin}, from 0)")
        shown = ", ".join(f"{values[0, c]:g}" for c in (range(cin) if len(flat) == cin else flat[:1]))
        zero = not any(values[0, c] for c in flat)
        msg = (f"{which} is {shown} everywhere: every window is the same, so the data cannot tell one "
               "kernel from another" + (" (every kernel gives 0)" if zero else " with the same sum")
               + ("; learn from an image with detail" if len(flat) == cin else
                  "; use --channels shared, --gray, or an image with detail in every channel"))
        raise UsageError(msg)
    if settings.channels == "mixing" and cin > 1:
        # mixing weights act on the channels together: channels that are copies (a grey photo saved as
        # RGB) leave them free along the copies, and the descent printed its start there as learnt
        rank = int(np.linalg.matrix_rank(values - values.mean(axis=0)))  # every pixel: a stripe counts
        if rank < cin:
            msg = (f"the input's {cin} channels hold {rank} independent one(s) (a grey image saved as "
                   "RGB?): mixing weights on them cannot be told apart; use --gray or --channels shared")
            raise UsageError(msg)


def make_problem(x: np.ndarray, target: np.ndarray, settings: LearnSettings, *,
                 ignore: tuple[float, float] | None = None, descent: bool = True) -> Problem:
    """Check the shapes (the target must be the correlation's output shape) and pad the input once.

    ``ignore=(lo, hi)`` leaves target samples equal to ``lo`` or ``hi`` out of the loss: in an
    8-bit target they were most likely clipped, and their true value is unknown.
    ``descent``: the problem is for gradient descent, which starts from random weights and would
    print them as learnt where the data cannot move them (refused here); lstsq gives its one
    minimum-norm answer there, and runs.
    """
    x3 = np.asarray(x, dtype=np.float64)
    t3 = np.asarray(target, dtype=np.float64)
    x3 = x3[:, :, None] if x3.ndim == 2 else x3
    t3 = t3[:, :, None] if t3.ndim == 2 else t3
    mode = settings.resolve()[0]
    geom = settings.geometry()
    oh, ow = geom.out_hw(x3.shape[0], x3.shape[1])
    if t3.shape[:2] != (oh, ow):
        arith = geom.arithmetic(x3.shape[0], x3.shape[1])
        msg = (f"the target is {t3.shape[1]}x{t3.shape[0]} (WxH) but this kernel, stride and padding give "
               f"{ow}x{oh} from the input: {arith}")
        raise UsageError(msg)
    cin, cout = x3.shape[2], t3.shape[2]
    if settings.channels != "mixing" and cin != cout:
        msg = (f"--channels {settings.channels} needs as many target channels as input channels "
               f"({cout} vs {cin}); use --channels mixing (C_in -> C_out) or --gray")
        raise UsageError(msg)
    if descent:
        _check_identifiable(x3, settings, bool(any(geom.pad)))
    xp = pad_array(x3, geom.pad, mode)
    offset = None
    if settings.channels == "mixing":
        offset = xp.mean(axis=(0, 1))
        xp = xp - offset
    mask = None
    if ignore is not None:
        mask = ((t3 != ignore[0]) & (t3 != ignore[1])).astype(np.float64)
        if not mask.any():
            msg = "every target sample is at the clipping limits: nothing left to learn from"
            raise UsageError(msg)
    return Problem(np.ascontiguousarray(xp), np.ascontiguousarray(t3), settings, offset, mask)


# --------------------------------------------------------------------------- descent


@record(frozen=True)
class Preconditioner:
    """Rescales the gradient along a few known directions so that one step size suits them all.

    A photo's pixels are large and alike, so the loss is very steep along "change every
    tap of a kernel together" (the kernel's sum) and flat elsewhere; plain descent would
    crawl. The step along each kernel's sum (``dc``) and each bias (``bias``) is scaled by
    ``1 / its curvature``, everything else by ``1 / rest``. The gradient itself is unchanged.
    """

    dc: np.ndarray  # one factor per 2-D kernel slice
    bias: float
    taps: int

    def apply(self, g: Weights) -> Weights:
        k = g.kernel
        slices = k.reshape(-1, self.taps)
        mean = slices.mean(axis=1, keepdims=True)
        out = (slices - mean) + mean * self.dc[:, None]
        bias = None if g.bias is None else g.bias * self.bias
        return Weights(out.reshape(k.shape), bias)


def _hessian_times(problem: Problem, g0: Weights, v: Weights) -> Weights:
    """H v: the loss is quadratic, so the gradient is affine in the weights."""
    return _axpy(-1.0, g0, problem.gradient(problem.forward(v)))


def preconditioner(problem: Problem, iterations: int = 20) -> tuple[Preconditioner, float]:
    """The preconditioner and the step size (1 / the largest preconditioned curvature)."""
    s = problem.settings
    taps = s.ksize[0] * s.ksize[1]
    zero = problem.zero()
    g0 = problem.gradient(problem.forward(zero))
    n_slices = zero.kernel.size // taps
    # curvature along each slice's sum direction (u = ones / sqrt(taps) in that slice)
    curv = np.empty(n_slices)
    for i in range(n_slices):
        u = np.zeros(zero.kernel.size)
        u[i * taps : (i + 1) * taps] = 1.0 / np.sqrt(taps)
        v = Weights(u.reshape(zero.kernel.shape), zero.bias)
        curv[i] = _dot(v, _hessian_times(problem, g0, v))
    # the largest curvature among zero-sum directions (power iteration with the sums projected out)
    flat = Preconditioner(np.zeros(n_slices), 0.0, taps)
    rest = max(_largest_curvature(problem, g0, flat, flat.apply(problem.initial()), iterations), 1e-300)
    counted = problem.target.size if problem.mask is None else problem.mask.sum()
    bias_curv = 2.0 * counted / problem.target.shape[2] / problem.n
    pre = Preconditioner(rest / np.maximum(curv, 1e-300), rest / bias_curv, taps)
    # the largest curvature of the preconditioned loss: the safe step is 1 / it
    lam = _largest_curvature(problem, g0, pre, problem.initial(), iterations)
    return pre, 1.0 / max(lam, 1e-300)


def _largest_curvature(problem: Problem, g0: Weights, pre: Preconditioner, v: Weights,
                       iterations: int) -> float:
    """The largest eigenvalue of ``pre`` applied to the loss's Hessian, by power iteration from ``v``."""
    lam = 0.0
    for _ in range(iterations):
        norm = np.sqrt(_dot(v, v)) or 1.0
        v = Weights(v.kernel / norm, None if v.bias is None else v.bias / norm)
        hv = pre.apply(_hessian_times(problem, g0, v))
        lam = _dot(v, hv)
        v = hv
    return lam


def descend(problem: Problem) -> Iterator[Step]:
    """Gradient descent, one :class:`Step` per iteration (``settings.steps + 1`` in all: 0..steps).

    Step 0 is the seeded start; every step carries the weights after its update and
    their loss, so the last step is the result.
    """
    s = problem.settings
    pre, auto_lr = preconditioner(problem)
    lr = s.lr if s.lr is not None else auto_lr
    w = problem.initial()
    look = w  # Nesterov's look-ahead point
    t = 1.0
    pred = problem.forward(w)
    loss = first_loss = problem.loss(pred)
    yield Step(0, loss, problem.export(w))
    for k in range(1, s.steps + 1):
        # A step too long overflows: that is the descent diverging, said once below, not NumPy warnings.
        with np.errstate(over="ignore", invalid="ignore"):
            pred_look = problem.forward(look) if look is not w else pred
            new = _axpy(-lr, pre.apply(problem.gradient(pred_look)), look)
            finite = all(np.all(np.isfinite(a)) for a in (new.kernel, new.bias) if a is not None)
            if finite:
                pred = problem.forward(new)
                new_loss = problem.loss(pred)
        if not finite or not np.isfinite(new_loss):
            what = f"loss {new_loss}" if finite else "the weights overflowed"
            msg = f"the descent diverged at step {k} ({what}); {_smaller_step(s.lr, auto_lr)}"
            raise UsageError(msg)
        if s.momentum and new_loss <= loss:
            t_next = (1.0 + np.sqrt(1.0 + 4.0 * t * t)) / 2.0
            look = _axpy((t - 1.0) / t_next, _axpy(-1.0, w, new), new)
            t = t_next
        else:  # plain descent, or a restart of the momentum when the loss rose
            look, t = new, 1.0
        w, loss = new, new_loss
        yield Step(k, loss, problem.export(w))
    if loss > first_loss:  # a step too long that has not overflowed yet
        msg = (f"the descent diverged: the loss rose from {first_loss:.6g} at step 0 to {loss:.6g} at "
               f"step {s.steps}; {_smaller_step(s.lr, auto_lr)}")
        raise UsageError(msg)


def _smaller_step(lr: float | None, auto_lr: float) -> str:
    """What a diverged descent says to try: the default step size (``auto_lr``, what no ``--lr``
    uses) after a larger ``--lr`` of the user's, else a tenth of the step that diverged."""
    if lr is not None and lr > auto_lr:
        return f"use a smaller --lr (the default here: --lr {auto_lr:.3g})"
    return f"try --lr {(auto_lr if lr is None else lr) / 10:.3g}"


def solve_lstsq(problem: Problem) -> Step:
    """The closed-form minimum: ``numpy.linalg.lstsq`` on the unrolled (im2col) matrix."""
    s = problem.settings
    xp, t = problem.xp, problem.target
    oh, ow, cout = t.shape
    cin = xp.shape[2]
    taps = s.ksize[0] * s.ksize[1]
    cols = taps * (cin if s.channels == "mixing" else 1) + (1 if s.channels == "mixing" else 0)
    rows = oh * ow * (cin if s.channels == "shared" else 1)
    if rows * cols * 8 > LSTSQ_MAX_BYTES:
        msg = (f"--solver lstsq would build a {rows}x{cols} matrix ({rows * cols * 8 / 2**30:.1f} GiB); "
               "use gradient descent on an image this large")
        raise UsageError(msg)

    def unrolled(x: np.ndarray) -> np.ndarray:
        return im2col(x, s.ksize, s.spec.stride, s.spec.dilation, (oh, ow))

    keep = np.ones(t.shape, dtype=bool) if problem.mask is None else problem.mask > 0

    def solve(a: np.ndarray, b: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return np.linalg.lstsq(a[rows], b[rows], rcond=None)[0]

    if s.channels == "shared":
        a = np.concatenate([unrolled(xp[:, :, c : c + 1]) for c in range(cin)])
        b = np.concatenate([t[:, :, c].reshape(-1) for c in range(cin)])
        rows = np.concatenate([keep[:, :, c].reshape(-1) for c in range(cin)])
        w = Weights(solve(a, b, rows).reshape(s.ksize))
    elif s.channels == "depthwise":
        ks = [solve(unrolled(xp[:, :, c : c + 1]), t[:, :, c].reshape(-1), keep[:, :, c].reshape(-1))
              for c in range(cin)]
        w = Weights(np.stack(ks).reshape(cin, *s.ksize))
    else:
        a = np.concatenate([unrolled(xp), np.ones((oh * ow, 1))], axis=1)
        cols_out = []
        for o in range(cout):  # each output channel keeps its own rows
            cols_out.append(solve(a, t[:, :, o].reshape(-1), keep[:, :, o].reshape(-1)))
        sol = np.stack(cols_out, axis=1)  # (cin*taps + 1, cout)
        w = Weights(sol[:-1].T.reshape(cout, cin, *s.ksize), sol[-1].copy())
    return Step(0, problem.loss(problem.forward(w)), problem.export(w))


def chosen_steps(total: int, count: int = 5) -> list[int]:
    """``count`` steps spread on a log scale over 0..total, always with 0 and ``total``."""
    if total <= 0:
        return [0]
    picks = {0, total}
    for v in np.geomspace(1, total, num=max(2, count - 1)):
        picks.add(int(round(v)))
    return sorted(picks)
