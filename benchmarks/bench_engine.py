"""Engine workloads: convcli's correlate2d/conv2d against OpenCV, scipy.ndimage, Pillow and torch.

Every tool's result is checked against a float64 scipy reference computed on the same pixel values
with the same padding before it is timed. A tool that fails the check is reported, not timed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from bench_common import Cell, Timing, repeat_timed, timed_call

TOOLS = ("convcli", "convcli → pixels", "convcli f32", "OpenCV", "OpenCV f32", "scipy.ndimage", "Pillow",
         "torch")
BASELINE = "OpenCV"
#: convcli's engine writing uint8 pixels (clip policy), what OpenCV's uint8 calls return: the targets' column
PIXELS = "convcli → pixels"
FLOAT_TOL = 1e-4  # relative to max(1, max|ref|): the spec's float32-vs-float64 contract


@dataclass
class Impl:
    """One tool's way of computing a workload.

    ``run`` is what is timed; ``post`` turns its result into an (H, W[, C]) ndarray for the check.
    ``kind`` "float" compares with a relative tolerance, "u8" compares 8-bit output with the
    reference rounded and clipped to 0..255, in levels. ``margin`` crops the border before comparing
    (for tools whose edge handling differs); ``approx`` says why the comparison is approximate.
    """

    run: Callable[[], object]
    kind: str = "float"
    tol: float = FLOAT_TOL
    margin: int = 0
    approx: str = ""
    mean_tol: float | None = None
    post: Callable[[object], np.ndarray] = np.asarray


@dataclass
class Inputs:
    """The same picture in every form the tools take, built once per size."""

    rgb_u8: np.ndarray
    gray_u8: np.ndarray
    rgb_f32: np.ndarray = field(init=False)
    gray_f32: np.ndarray = field(init=False)
    _torch: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rgb_f32 = self.rgb_u8.astype(np.float32)
        self.gray_f32 = self.gray_u8.astype(np.float32)

    def torch(self, name: str) -> object:
        if name not in self._torch:
            import torch

            if name == "rgb":
                self._torch[name] = torch.from_numpy(self.rgb_f32).permute(2, 0, 1)[None].contiguous()
            else:
                self._torch[name] = torch.from_numpy(self.gray_f32)[None, None].contiguous()
        return self._torch[name]


# ---------------------------------------------------------------- kernels


def gaussian_1d(k: int, sigma: float) -> np.ndarray:
    """OpenCV's getGaussianKernel(k, sigma) for k > 7: sampled, normalised."""
    x = np.arange(k) - (k - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


SHARPEN = np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], dtype=np.float64)
BOX5 = np.full((5, 5), 1 / 25)
G15_1D = gaussian_1d(15, 2.6)
G15 = np.outer(G15_1D, G15_1D)
SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64)
SOBEL_Y = SOBEL_X.T.copy()
G3_1D = np.array([1, 2, 1]) / 4
G3 = np.outer(G3_1D, G3_1D)
RAND7 = np.random.default_rng(7).uniform(-1, 1, (7, 7)).astype(np.float32).astype(np.float64)
CONV_W = np.random.default_rng(8).uniform(-1, 1, (8, 3, 3, 3)).astype(np.float32)
CONV_B = np.random.default_rng(9).uniform(-1, 1, 8).astype(np.float32)


@dataclass(frozen=True)
class Workload:
    key: str
    title: str
    target: float  # convcli's ratio to OpenCV must be at most this at 4096² (README, Speed)
    depthwise: bool  # counted in the ">= 5x scipy.ndimage and torch" target
    target_small: float = 0.0  # at 1024² (per-call overhead shows); 0: the same as ``target``

    def target_at(self, size: int) -> float:
        return self.target_small if size < 4096 and self.target_small else self.target


WORKLOADS = (
    Workload("sharpen", "3×3 sharpen, reflect-101", 2.0, True, 3.0),
    Workload("box5", "5×5 box", 2.0, True, 3.0),
    Workload("gauss15", "Gaussian 15×15, σ 2.6", 2.0, True, 3.0),
    Workload("sobel", "Sobel magnitude, grey", 1.0, True),
    Workload("stride2", "3×3 stride 2 (n→n/2)", 1.3, True),
    Workload("rand7", "random 7×7, non-separable", 2.0, True, 3.0),
    Workload("conv", "3×3 conv 3→8 channels + ReLU (zeros pad)", 1.0, False),
)
KERNEL = {"sharpen": SHARPEN, "box5": BOX5, "gauss15": G15, "stride2": G3, "rand7": RAND7}


# ---------------------------------------------------------------- float64 reference (scipy)


def reference(key: str, inp: Inputs) -> np.ndarray:
    from scipy import ndimage as ndi

    x = inp.rgb_u8.astype(np.float64)
    if key == "gauss15":  # separable: two exact 1-D passes (mirror padding commutes per axis)
        return _sep_ref(x, G15_1D)
    if key == "box5":
        return _sep_ref(x, np.full(5, 1 / 5))
    if key == "sobel":
        g = inp.gray_u8.astype(np.float64)
        return np.hypot(ndi.correlate(g, SOBEL_X, mode="mirror"), ndi.correlate(g, SOBEL_Y, mode="mirror"))
    if key == "stride2":
        return ndi.correlate(x, G3[:, :, None], mode="mirror")[::2, ::2]
    if key == "conv":
        w64 = CONV_W.astype(np.float64)
        out = np.stack(
            [
                sum(ndi.correlate(x[:, :, c], w64[o, c], mode="constant") for c in range(3))
                + float(CONV_B[o])
                for o in range(8)
            ],
            axis=-1,
        )
        return np.maximum(out, 0)
    return ndi.correlate(x, KERNEL[key][:, :, None], mode="mirror")


def _sep_ref(x: np.ndarray, k1: np.ndarray) -> np.ndarray:
    from scipy import ndimage as ndi

    return ndi.correlate1d(ndi.correlate1d(x, k1, axis=0, mode="mirror"), k1, axis=1, mode="mirror")


# ---------------------------------------------------------------- convcli


def convcli_impl(key: str, inp: Inputs, threads: int | None, u8: bool) -> Impl | str:
    """convcli's engine on the 8-bit image as decoded (``u8``), as the CLI calls it, or on float32."""
    from bench_env import engine_accepts

    from convcli.engine import conv2d, correlate2d

    extra: dict[str, object] = {}
    if threads is not None:
        if not engine_accepts("threads"):
            return "correlate2d has no threads= parameter yet"
        extra["threads"] = threads

    def corr(x: np.ndarray, k: np.ndarray, stride: tuple[int, int] = (1, 1)) -> np.ndarray:
        p = k.shape[0] // 2
        return correlate2d(x, k, stride=stride, pad=(p, p, p, p), mode="reflection", **extra)

    x, g = (inp.rgb_u8, inp.gray_u8) if u8 else (inp.rgb_f32, inp.gray_f32)
    if key == "sobel":  # as `convcli edges --operator sobel` runs it: both gradients fused per band
        from convcli.engine import gradient_magnitude

        return Impl(lambda: gradient_magnitude(g, SOBEL_X, SOBEL_Y, pad=(1, 1, 1, 1), mode="reflection",
                                               **extra))
    if key == "stride2":
        return Impl(lambda: corr(x, G3, (2, 2)))
    if key == "conv":
        conv_extra = extra if "threads" in extra and _accepts(conv2d, "threads") else {}

        def run() -> np.ndarray:
            out = conv2d(x, CONV_W, CONV_B, pad=(1, 1, 1, 1), mode="zeros", **conv_extra)
            return np.maximum(out, 0, out=out)

        return Impl(run)
    return Impl(lambda: corr(x, KERNEL[key]))


def convcli_pixels_impl(key: str, inp: Inputs, threads: int | None) -> Impl | str:
    """convcli's engine on the 8-bit image straight to uint8 pixels (``--range clip``), as the
    streamed command runs it: correlate_pixels / gradient_pixels."""
    try:
        from convcli.core.pixels import PixelSpec
        from convcli.engine import correlate_pixels, gradient_pixels
    except ImportError:
        return "this convcli has no correlate_pixels"
    extra: dict[str, object] = {} if threads is None else {"threads": threads}
    spec = PixelSpec("clip", 8)

    def first(result: object) -> np.ndarray:
        return np.asarray(result[0])  # type: ignore[index]

    if key == "sobel":
        return Impl(lambda: gradient_pixels(inp.gray_u8, SOBEL_X, SOBEL_Y, spec, pad=(1, 1, 1, 1),
                                            mode="reflection", **extra), "u8", 1.0, post=first)
    if key == "conv":
        return "a conv layer's output is float (no pixels)"
    k = G3 if key == "stride2" else KERNEL[key]
    p = k.shape[0] // 2
    stride = (2, 2) if key == "stride2" else (1, 1)
    return Impl(lambda: correlate_pixels(inp.rgb_u8, k, spec, stride=stride, pad=(p, p, p, p),
                                         mode="reflection", **extra), "u8", 1.0, post=first)


def _accepts(fn: Callable[..., object], param: str) -> bool:
    import inspect

    return param in inspect.signature(fn).parameters


# ---------------------------------------------------------------- OpenCV


def opencv_impl(key: str, inp: Inputs, f32: bool) -> Impl | str:
    import cv2

    r101 = cv2.BORDER_REFLECT_101
    x = inp.rgb_f32 if f32 else inp.rgb_u8
    kind, tol = ("float", FLOAT_TOL) if f32 else ("u8", 1.0)
    if key == "sharpen" or key == "rand7":
        k = KERNEL[key].astype(np.float32)
        return Impl(lambda: cv2.filter2D(x, -1, k, borderType=r101), kind, tol)
    if key == "box5":
        return Impl(lambda: cv2.blur(x, (5, 5), borderType=r101), kind, tol)
    if key == "gauss15":
        return Impl(lambda: cv2.GaussianBlur(x, (15, 15), 2.6, borderType=r101), kind, tol)
    if key == "stride2":
        k3 = G3.astype(np.float32)
        return Impl(lambda: cv2.filter2D(x, -1, k3, borderType=r101)[::2, ::2], kind, tol)
    if key == "sobel":
        g = inp.gray_f32 if f32 else inp.gray_u8

        def sobel() -> np.ndarray:
            dx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3, borderType=r101)
            dy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3, borderType=r101)
            return cv2.magnitude(dx, dy)

        return Impl(sobel)
    if key == "conv":
        return Impl(lambda: _opencv_conv(x))
    return f"no OpenCV equivalent for {key}"


def _opencv_conv(x: np.ndarray) -> np.ndarray:
    """A conv layer the OpenCV way: one filter2D per (out, in) pair, summed, then ReLU."""
    import cv2

    chans = cv2.split(x)
    maps = []
    for o in range(CONV_W.shape[0]):
        acc = cv2.filter2D(chans[0], cv2.CV_32F, CONV_W[o, 0], borderType=cv2.BORDER_CONSTANT)
        for c in range(1, len(chans)):
            acc += cv2.filter2D(chans[c], cv2.CV_32F, CONV_W[o, c], borderType=cv2.BORDER_CONSTANT)
        acc += float(CONV_B[o])
        maps.append(cv2.max(acc, 0.0))
    return cv2.merge(maps)


# ---------------------------------------------------------------- scipy.ndimage (float32 input)


def scipy_impl(key: str, inp: Inputs) -> Impl | str:
    from scipy import ndimage as ndi

    x = inp.rgb_f32
    if key == "box5":
        return Impl(lambda: ndi.uniform_filter(x, size=(5, 5, 1), mode="mirror"))
    if key == "gauss15":
        return Impl(lambda: ndi.gaussian_filter(x, sigma=(2.6, 2.6, 0), mode="mirror", truncate=7 / 2.6))
    if key == "sobel":
        g = inp.gray_f32
        return Impl(lambda: _scipy_sobel(g))
    if key == "stride2":
        return Impl(lambda: ndi.correlate(x, G3[:, :, None], mode="mirror")[::2, ::2])
    if key == "conv":
        return Impl(lambda: _scipy_conv(x))
    return Impl(lambda: ndi.correlate(x, KERNEL[key][:, :, None], mode="mirror"))


def _scipy_sobel(g: np.ndarray) -> np.ndarray:
    from scipy import ndimage as ndi

    return np.hypot(ndi.sobel(g, axis=1, mode="mirror"), ndi.sobel(g, axis=0, mode="mirror"))


def _scipy_conv(x: np.ndarray) -> np.ndarray:
    from scipy import ndimage as ndi

    maps = []
    for o in range(CONV_W.shape[0]):
        acc = sum(ndi.correlate(x[:, :, c], CONV_W[o, c], mode="constant") for c in range(x.shape[2]))
        maps.append(np.maximum(acc + CONV_B[o], 0))
    return np.stack(maps, axis=-1)


# ---------------------------------------------------------------- Pillow (8-bit in, 8-bit out)


def pillow_impl(key: str, inp: Inputs, im: object) -> Impl | str:
    from PIL import ImageFilter

    if key == "sharpen":
        kern = ImageFilter.Kernel((3, 3), SHARPEN.ravel().tolist(), scale=1, offset=0)
        return Impl(lambda: im.filter(kern), "u8", 1.0, margin=1,
                    approx="Pillow leaves the 1-pixel border unfiltered: interior compared")
    if key == "box5":
        return Impl(lambda: im.filter(ImageFilter.BoxBlur(2)), "u8", 1.0, margin=2,
                    approx="Pillow pads by edge replication: interior compared")
    if key == "gauss15":
        return Impl(lambda: im.filter(ImageFilter.GaussianBlur(2.6)), "u8", 6.0, margin=8, mean_tol=0.5,
                    approx="Pillow's GaussianBlur is 3 extended box passes, 8-bit between passes: "
                    "max error ≤ 6 levels, mean ≤ 0.5, interior compared")
    return "Pillow has no comparable filter (ImageFilter.Kernel is 3×3 or 5×5 only, no stride, no layer)"


# ---------------------------------------------------------------- torch CPU (float32, NCHW)


def torch_impl(key: str, inp: Inputs) -> Impl | str:
    import torch
    import torch.nn.functional as F  # noqa: N812 - torch's own convention

    def to_hwc(t: object) -> np.ndarray:
        a = t[0].permute(1, 2, 0).numpy()
        return a[:, :, 0] if a.shape[2] == 1 else a

    x = inp.torch("rgb")

    def depthwise(k: np.ndarray, stride: int = 1) -> Callable[[], object]:
        w = torch.from_numpy(k.astype(np.float32))[None, None].repeat(3, 1, 1, 1)
        p = k.shape[0] // 2

        def run() -> object:
            with torch.no_grad():
                return F.conv2d(F.pad(x, (p, p, p, p), mode="reflect"), w, stride=stride, groups=3)

        return run

    if key == "box5":

        def box() -> object:
            with torch.no_grad():
                return F.avg_pool2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), 5, stride=1)

        return Impl(box, post=to_hwc)
    if key == "stride2":
        return Impl(depthwise(G3, 2), post=to_hwc)
    if key == "sobel":
        g = inp.torch("gray")
        w = torch.from_numpy(np.stack([SOBEL_X, SOBEL_Y]).astype(np.float32))[:, None]

        def sobel() -> object:
            with torch.no_grad():
                d = F.conv2d(F.pad(g, (1, 1, 1, 1), mode="reflect"), w)
                return torch.hypot(d[:, 0], d[:, 1])

        return Impl(sobel, post=lambda t: t[0].numpy())
    if key == "conv":
        w, b = torch.from_numpy(CONV_W), torch.from_numpy(CONV_B)

        def conv() -> object:
            with torch.no_grad():
                return F.relu(F.conv2d(x, w, b, padding=1))

        return Impl(conv, post=to_hwc)
    return Impl(depthwise(KERNEL[key]), post=to_hwc)


# ---------------------------------------------------------------- checking and running


def check(out: np.ndarray, ref: np.ndarray, impl: Impl) -> tuple[bool, float, str]:
    """Compare ``out`` with the float64 reference: (passed, max error, one-line description)."""
    out = np.asarray(out, dtype=np.float64)
    if out.shape != ref.shape:
        return False, float("inf"), f"shape {out.shape} != reference {ref.shape}"
    if impl.margin:
        m = impl.margin
        out, ref = out[m:-m, m:-m], ref[m:-m, m:-m]
    if impl.kind == "u8":
        diff = np.abs(out - np.clip(np.rint(ref), 0, 255))
        err, mean = float(diff.max()), float(diff.mean())
        ok = err <= impl.tol and (impl.mean_tol is None or mean <= impl.mean_tol)
        return ok, err, f"max {err:g} levels (≤ {impl.tol:g}), mean {mean:.3f}"
    scale = max(1.0, float(np.abs(ref).max()))
    err = float(np.abs(out - ref).max()) / scale
    return err <= impl.tol, err, f"max rel {err:.1e} (≤ {impl.tol:.0e})"


def build_impl(tool: str, key: str, inp: Inputs, ctx: dict[str, object]) -> Impl | str:
    """The tool's Impl, or a one-line reason to skip it."""
    if ctx.get(f"missing:{tool}"):
        return str(ctx[f"missing:{tool}"])
    if tool == PIXELS:
        return convcli_pixels_impl(key, inp, ctx.get("threads"))  # type: ignore[arg-type]
    if tool in ("convcli", "convcli f32"):
        return convcli_impl(key, inp, ctx.get("threads"), tool == "convcli")  # type: ignore[arg-type]
    if tool in ("OpenCV", "OpenCV f32"):
        return opencv_impl(key, inp, tool == "OpenCV f32")
    if tool == "scipy.ndimage":
        return scipy_impl(key, inp)
    if tool == "Pillow":
        if "pil_image" not in ctx:
            from PIL import Image

            ctx["pil_image"] = Image.fromarray(inp.rgb_u8)
        return pillow_impl(key, inp, ctx["pil_image"])
    return torch_impl(key, inp)


def measure(impl: Impl, ref: np.ndarray, repeats: int, budget: float) -> Cell:
    """Verify once (that call also warms up), then time; a wrong result is not timed."""
    try:
        raw, first = timed_call(impl.run)
        ok, err, text = check(impl.post(raw), ref, impl)
    except Exception as exc:  # noqa: BLE001 - a failing tool is a result, not a crash
        return Cell(note=f"error: {type(exc).__name__}: {str(exc).splitlines()[0][:100]}")
    del raw
    cell = Cell(approx=bool(impl.approx), error=err, tolerance=impl.tol, error_text=text, note=impl.approx)
    if not ok:
        cell.note = f"WRONG, not timed: {text}"
        return cell
    cell.timing = repeat_timed(impl.run, repeats, budget, first)
    return cell


def run_size(
    size: int, rgb: np.ndarray, gray: np.ndarray, repeats: int, budget: float, ctx: dict[str, object],
    progress: Callable[[str], None],
) -> dict[str, dict[str, Cell]]:
    """All workloads at one size: {workload key: {tool: Cell}}."""
    inp = Inputs(rgb, gray)
    ctx.pop("pil_image", None)
    results: dict[str, dict[str, Cell]] = {}
    for wl in WORKLOADS:
        ref, t_ref = timed_call(lambda wl=wl: reference(wl.key, inp))
        progress(f"  {size}² {wl.title}: reference {t_ref:.1f} s")
        row: dict[str, Cell] = {}
        for tool in TOOLS:
            impl = build_impl(tool, wl.key, inp, ctx)
            row[tool] = Cell(note=impl) if isinstance(impl, str) else measure(impl, ref, repeats, budget)
            progress(f"    {tool:14s} {_cell_progress(row[tool])}")
        results[wl.key] = row
        del ref
    return results


def _cell_progress(cell: Cell) -> str:
    if cell.timing is None:
        return f"skipped: {cell.note}"
    t: Timing = cell.timing
    return f"{t.median * 1e3:9.1f} ms median of {t.n}   [{cell.error_text}]"
