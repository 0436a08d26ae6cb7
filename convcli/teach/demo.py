"""The lecture's tour on the bundled 224x224 cat: one labelled montage per lecture figure.

Every figure is computed by the same pipelines the commands use; ``run_demo``
returns the figures (pictures as uint8 arrays, plus report records) and the CLI
writes them.
"""

from __future__ import annotations

from dataclasses import field
from importlib.resources import files
from typing import Any

import numpy as np

from convcli.core.kernels import Kernel, get_kernel, parse_literal
from convcli.core.records import record
from convcli.core.shapes import GeometrySpec, resolve_geometry
from convcli.errors import UsageError
from convcli.pipeline import (
    DEFAULT_GEOMETRY,
    ConvStage,
    GrayStage,
    Pipeline,
    ReluStage,
    Stage,
    StagePlan,
    make_correlate_stage,
    nchw,
    random_conv_weights,
)
from convcli.report import shape_text
from convcli.teach.render import (
    Panel,
    blank_panel,
    display_pixels,
    kernel_panel,
    normalize_to_uint8,
    relu_map_panel,
    stage_panels,
    weights_panel,
)

#: The lecture's printed "Gaussian" (rounded to 3 decimals): it sums to 1.776, not 1.
LECTURE_GAUSSIAN = "0.111 0.222 0.111; 0.222 0.444 0.222; 0.111 0.222 0.111"


def bundled_cat_path() -> str:
    """Path of the bundled 224x224 cat (CC0, a crop of scikit-image's chelsea)."""
    return str(files("convcli") / "data" / "cat224.png")


@record
class Figure:
    """One lecture figure: a file name, a title, its montage and the pipelines' report records."""

    name: str
    title: str
    image: np.ndarray
    records: list[dict[str, Any]] = field(default_factory=list)
    #: an animated figure: the GIF bytes (``image`` is its last frame, for the overview)
    animation: bytes | None = None
    #: the labels of its panels, in order (what a learner reads under each picture)
    labels: tuple[str, ...] = ()

    @property
    def file_name(self) -> str:
        """Its file in the demo's folder: one of :data:`FIGURE_FILES`."""
        return f"{self.name}.{'gif' if self.animation else 'png'}"


#: Every file :func:`build_figures` may return, known before the image is read: the command checks them
#: all first (``12-loss-curve`` is left out when there is nothing to learn from the image).
FIGURE_FILES: tuple[str, ...] = (
    "01-sharpen.png", "02-gaussian-blur.png", "03-edges.png", "04-box-3x3-vs-5x5.png", "05-valid-vs-same.png",
    "06-padding-modes.png", "07-random-conv-relu.png", "08-stride-2.png", "09-stacked-conv-relu.png",
    "10-sliding-window.gif", "11-learned-kernel.png", "12-loss-curve.png", "00-overview.png",
)


def _conv(out_channels: int, k: int, seed: int, stride: int = 1, pad: str | None = None) -> ConvStage:
    mode, pad4 = resolve_geometry("zeros", pad, (k, k), (1, 1))
    return ConvStage(out_channels=out_channels, kernel_size=(k, k), seed=seed, stride=(stride, stride),
                     padding=mode, pad=pad4)


def _filt(kernel: Kernel, label: str = "", geometry: GeometrySpec = DEFAULT_GEOMETRY) -> Stage:
    return make_correlate_stage("filter", kernel, geometry, label=label or kernel.name)


class Tour:
    """Runs pipelines on one image and collects panels and records."""

    def __init__(self, color: np.ndarray, maxval: float = 255.0) -> None:
        self.color = color.astype(np.float32)
        self.maxval = maxval

    def input_panel(self, x: np.ndarray | None = None) -> list[Any]:
        return stage_panels(None, self.color if x is None else x, self.maxval, 0)

    def run(self, stages: list[Stage], *, every_stage: bool = False,
            x: np.ndarray | None = None) -> tuple[list[Any], dict[str, Any], np.ndarray]:
        """Panels of the final (or every) stage, the report record, and the float result."""
        pipe = Pipeline(tuple(stages))
        src = self.color if x is None else x
        panels: list[Any] = []
        seen: list[StagePlan] = []

        def on_stage(plan: StagePlan, values: np.ndarray) -> None:
            seen.append(plan)
            if every_stage or len(seen) == len(stages):
                panels.extend(stage_panels(plan, values, self.maxval, len(seen)))

        out, _ = pipe.run(src, on_stage=on_stage)
        plans = pipe.plan((src.shape[2], src.shape[0], src.shape[1]))
        record = {"input_shape": nchw(plans[0].in_shape), "output_shape": nchw(plans[-1].out_shape),
                  "stages": [p.record() for p in plans]}
        return panels, record, out


def build_figures(color: np.ndarray, seed: int = 0) -> list[Figure]:
    """Every figure of the lecture, in the lecture's order."""
    from convcli.teach.render import make_montage, padded_frame_panel

    tour = Tour(color)
    figs: list[Figure] = []

    def figure(name: str, title: str, panels: list[Any], records: list[dict[str, Any]],
               columns: int | None = None) -> None:
        figs.append(Figure(name, title, make_montage(panels, title=title, columns=columns), records,
                           labels=tuple(p.label for p in panels if not p.blank)))

    # 1. Convolution filters create new images: the sharpening kernel.
    sharpen = get_kernel("sharpen")
    p1, r1, _ = tour.run([_filt(sharpen)])
    figure("01-sharpen", "Sharpening kernel [0 -1 0; -1 5 -1; 0 -1 0]",
           tour.input_panel() + [kernel_panel(sharpen.weights, "sharpen kernel")] + p1, [r1])

    # 2. The Gaussian blur, as printed (sums to 1.78: brightens) and normalised (gaussian3).
    printed = parse_literal(LECTURE_GAUSSIAN, "lecture's printed kernel")
    p2a, r2a, _ = tour.run([_filt(printed, "printed, sum 1.78")])
    p2b, r2b, _ = tour.run([_filt(printed.normalized(), "printed --normalize")])
    p2c, r2c, _ = tour.run([_filt(get_kernel("gaussian3"))])
    figure("02-gaussian-blur", "Gaussian blur: the printed kernel sums to 1.78 and brightens; "
           "normalised, it keeps the brightness",
           tour.input_panel() + p2a + p2b + p2c, [r2a, r2b, r2c])

    # 3. Handcrafted edge kernels K_v and K_h on luminance (every stage shown: gray, then edges; the
    # edges panels were numbered 2 with no stage 1 in sight).
    gray = [GrayStage()]
    kv, kh = get_kernel("edge-vertical"), get_kernel("edge-horizontal")
    p3a, r3a, _ = tour.run(gray + [make_correlate_stage("edges", kv, label="K_v")], every_stage=True)
    p3b, r3b, _ = tour.run(gray + [make_correlate_stage("edges", kh, label="K_h")])
    figure("03-edges", "Vertical (K_v) and horizontal (K_h) edge kernels on luminance, |response|",
           tour.input_panel() + p3a[:1] + [kernel_panel(kv.weights, "K_v")] + p3a[1:]
           + [blank_panel(), blank_panel(), kernel_panel(kh.weights, "K_h")] + p3b, [r3a, r3b], columns=4)

    # 4. Receptive field: 3x3 vs 5x5 uniform blur.
    p4a, r4a, _ = tour.run([_filt(get_kernel("box3"))])
    p4b, r4b, _ = tour.run([_filt(get_kernel("box5"))])
    figure("04-box-3x3-vs-5x5", "Receptive field: 3x3 vs 5x5 uniform blur", tour.input_panel() + p4a + p4b,
           [r4a, r4b])

    # 5. Padding and stride: valid (222) vs same (224).
    p5a, r5a, _ = tour.run([_filt(get_kernel("box3"), "box3 valid", GeometrySpec(padding="valid"))])
    p5b, r5b, _ = tour.run([_filt(get_kernel("box3"), "box3 same (zeros)", GeometrySpec(padding="zeros"))])
    figure("05-valid-vs-same", f"3x3, stride 1: valid loses a pixel each side ({_hw(r5a)}), "
           f"same keeps {_hw(r5b)}",
           tour.input_panel() + p5a + p5b, [r5a, r5b])

    # 6. Border padding: zeros / border / reflection, the padded frame shown.
    u8 = display_pixels(tour.color, "input", tour.maxval)
    frames = [padded_frame_panel(u8, 40, m) for m in ("zeros", "border", "reflection")]
    figure("06-padding-modes", "Padding modes, 40 px each side: zeros, border, reflection", frames, [])

    # 7. Automatic feature learning: random 3x3 conv to 3 channels, ReLU, 1x1 conv to 2 channels.
    # One row per channel: the weights that make it (all input channels), its conv map, its ReLU map;
    # the last row: the 1x1 conv's weights and its two outputs.
    c1, c2 = _conv(3, 3, seed), _conv(2, 1, seed + 1)
    _, r7, _ = tour.run([c1, ReluStage(), c2])
    cin = tour.color.shape[2]
    names = ["R", "G", "B"] if cin == 3 else [str(c + 1) for c in range(cin)]  # 1-based, as "out 1"
    w1, w2 = c1.weights_for(cin), c2.weights_for(3)
    maps1 = Pipeline((c1,)).run(tour.color)[0]
    relu1 = np.maximum(maps1, 0)
    maps2 = Pipeline((c2,)).run(relu1)[0]
    s1, s2 = shape_text(nchw((3, *maps1.shape[:2]))), shape_text(nchw((2, *maps2.shape[:2])))
    p7: list[Any] = []
    for k in range(3):
        p7 += [tour.input_panel()[0] if k == 0 else blank_panel(),
               weights_panel(w1[k], f"conv1 out {k + 1} <- in {', '.join(names)}", names),
               Panel(f"conv1 channel {k + 1}/3", s1, normalize_to_uint8(maps1[:, :, k])),
               relu_map_panel(relu1[:, :, k], f"ReLU channel {k + 1}/3", s1)]
    p7 += [blank_panel(), kernel_panel(w2[:, :, 0, 0], "conv2 1x1: row = out k, column = in c")]
    p7 += [Panel(f"conv2 channel {k + 1}/2", s2, normalize_to_uint8(maps2[:, :, k])) for k in range(2)]
    figure("07-random-conv-relu", f"Random 3x3 conv -> 3 channels (seed {seed}), ReLU, "
           f"1x1 conv -> 2 channels (seed {seed + 1})", p7, [r7], columns=4)

    # 8. Downsampling with a stride-2 convolution: 224 -> 112.
    p8, r8, _ = tour.run([_filt(get_kernel("gaussian3"), "gaussian3 stride 2",
                                GeometrySpec(stride=(2, 2), padding="zeros", pad="1"))])
    figure("08-stride-2", "3x3 convolution, stride 2, zero padding 1: "
           + " -> ".join(_sizes((r8, "input_shape"), (r8, "output_shape"))),
           tour.input_panel() + p8,
           [r8])

    # 9. Convolutions are concatenated: conv + ReLU (stride 2) twice on luminance, 224 -> 112 -> 56.
    # A random kernel whose weights sum below 0 turns a bright photo negative and ReLU blacks it
    # out; for a picture worth looking at, each layer takes the first seed (from --seed + 2 on)
    # whose kernel sums above 0.
    g = tour.run(gray)[2]
    s1 = visible_seed(seed + 2, (3, 3))
    s2 = visible_seed(s1 + 1, (3, 3))
    p9, r9, _ = tour.run([_conv(1, 3, s1, 2, "1"), ReluStage(), _conv(1, 3, s2, 2, "1"),
                          ReluStage()], every_stage=True, x=g)
    sizes = " -> ".join(_sizes(*((st, "input_shape") for st in r9["stages"][::2]), (r9, "output_shape")))
    figure("09-stacked-conv-relu", f"Conv + ReLU (stride 2) twice: {sizes}",
           stage_panels(None, g, 255.0, 0) + p9, [r9], columns=4)

    figs.extend(_sliding_window(seed))
    figs.extend(_learned_kernel(tour))

    # The overview: every figure stacked, scaled to one width (each figure carries its own title).
    figs.append(Figure("00-overview", "overview", stack_figures([f.image for f in figs]), []))
    return figs


def _hw(record: dict[str, Any], key: str = "output_shape") -> str:
    """``224`` or ``5x7`` (HxW) from a record's NCHW shape: titles say the sizes the image really has."""
    return _sizes((record, key))[0]


def _sizes(*shapes: tuple[dict[str, Any], str]) -> list[str]:
    """The sizes of (record, key) pairs, each as one number if every one is square, else all as HxW
    (``5x7 -> 3x4 -> 2x2``: a lone ``2`` after sizes written HxW read as a 1-D size)."""
    hw = [(r[k][2], r[k][3]) for r, k in shapes]
    if all(h == w for h, w in hw):
        return [str(h) for h, _ in hw]
    return [f"{h}x{w}" for h, w in hw]


def _sliding_window(seed: int) -> list[Figure]:
    """The lecture's sharpen kernel sliding over a 5x5 input (zeros padding 1): an animation."""
    from convcli.teach.animate import AnimateSettings, animate, encode_animation, small_integers

    settings = AnimateSettings(kernel=get_kernel("sharpen"), values=small_integers(5, seed))
    anim = animate(settings)
    data = encode_animation(anim.frames, anim.durations, "gif")
    return [Figure("10-sliding-window", "The sharpen kernel sliding over a 5x5 input, zeros padding 1",
                   anim.frames[-1], [], animation=data)]


def _learned_kernel(tour: Tour, steps: int = 60) -> list[Figure]:
    """The sharpen kernel found again from the image and its sharpened output (``convcli learn``)."""
    from convcli.teach.learn import LearnSettings, chosen_steps, descend, make_problem
    from convcli.teach.plots import loss_curve
    from convcli.teach.render import kernel_panel, make_montage

    g = Pipeline((GrayStage(),)).run(tour.color)[0]
    h, w = g.shape[:2]
    side = min(224, h, w)
    y0, x0 = (h - side) // 2, (w - side) // 2
    crop = np.ascontiguousarray(g[y0 : y0 + side, x0 : x0 + side])
    sharpen = get_kernel("sharpen")
    target = Pipeline((_filt(sharpen),)).run(crop)[0]
    shape = shape_text(nchw((1, side, side)))
    panels = [Panel("input (luminance)", shape, display_pixels(crop, "input", 255.0)),
              Panel("target: sharpen", shape, display_pixels(target, "filter", 255.0))]
    try:
        problem = make_problem(crop, target, LearnSettings(steps=steps))
    except UsageError as e:  # an image one value everywhere: nothing to learn from (learn refuses it)
        title = f"Learning a 3x3 kernel from input and target: nothing to learn, {e}"
        return [Figure("11-learned-kernel", title, make_montage(panels, title=title, columns=4), [])]
    picks = chosen_steps(steps, 4)
    losses: list[float] = []
    found = sharpen.weights
    for st in descend(problem):
        losses.append(st.loss)
        found = st.weights.kernel
        if st.step in picks:
            pred = problem.forward(st.weights)
            # one colour scale for every step, the kernel sought's: colours compare across steps
            panels += [kernel_panel(st.weights.kernel, f"step {st.step} kernel",
                                    scale=float(np.abs(sharpen.weights).max())),
                       Panel(f"step {st.step}, loss {st.loss:.3g}", shape,
                             display_pixels(pred, "filter", 255.0))]
    # What the descent did, not what it should do: on a tiny or flat image the sharpen kernel is not
    # the only one that maps the input to the target, and the descent stops elsewhere.
    off = float(np.abs(np.asarray(found, np.float64) - sharpen.weights).max())
    outcome = ("finds the sharpen kernel" if off < 0.05 else
               f"stops at a kernel up to {off:.2g} off sharpen's taps (this image does not pin it down)")
    title = (f"Learning a 3x3 kernel from input and target ({side}x{side} centre crop): gradient descent "
             + outcome)
    montage = make_montage(panels, title=title, columns=4)
    curve = loss_curve(losses, title="convcli learn: loss (mean squared error) by step", marks=picks)
    return [Figure("11-learned-kernel", title, montage, []),
            Figure("12-loss-curve", "The loss falls as the kernel is learnt", curve, [])]


def stack_figures(images: list[np.ndarray], width: int = 1100, gap: int = 16) -> np.ndarray:
    """Figures one under another, centred, at one scale (the widest fills ``width``), on white.

    One scale for all: a figure of two panels is not blown up to the width of one of five
    (its title and panels twice the size of the others').
    """
    from PIL import Image

    f = width / max(im.shape[1] for im in images)
    scaled = []
    for im in images:
        h, w = im.shape[:2]
        size = (max(1, round(w * f)), max(1, round(h * f)))
        scaled.append(np.asarray(Image.fromarray(im).resize(size, Image.Resampling.LANCZOS))
                      if size != (w, h) else im)
    total = sum(a.shape[0] for a in scaled) + gap * (len(scaled) + 1)
    canvas = np.full((total, width + 2 * gap, 3), 255, dtype=np.uint8)
    y = gap
    for a in scaled:
        x = gap + (width - a.shape[1]) // 2
        canvas[y : y + a.shape[0], x : x + a.shape[1]] = a[:, :, :3]
        y += a.shape[0] + gap
    return canvas


def visible_seed(start: int, ksize: tuple[int, int], limit: int = 1000) -> int:
    """The first seed from ``start`` whose random 1->1 kernel sums above 0 (ReLU keeps an image)."""
    for s in range(start, start + limit):
        if float(random_conv_weights(1, 1, ksize, s).sum()) > 0:
            return s
    return start


def shape_chain(record: dict[str, Any]) -> str:
    """``[1, 3, 224, 224] -> [1, 3, 112, 112]`` for a record's stages."""
    shapes = [record["input_shape"]] + [s["output_shape"] for s in record["stages"]]
    return " -> ".join(shape_text(s) for s in shapes)
