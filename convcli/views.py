"""Pictures of float results: stage outputs for montages, feature maps as grey images and a grid.

The drawing itself (labels, layout) is convcli.teach.render; this module
decides how each kind of result is shown and hands back encoded files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from convcli.core.pixels import to_pixels
from convcli.io.encode import encode_image
from convcli.pipeline import StagePlan, nchw
from convcli.report import shape_text

#: stages whose outputs are feature maps: shown channel by channel, each normalised
FEATURE_OPS = frozenset({"conv", "relu"})


def display_pixels(values: np.ndarray, op: str, maxval: float) -> np.ndarray:
    """A stage's float output as uint8 for looking at: colour ops clipped, edges by |x|."""
    scaled = values * (255.0 / maxval)
    policy = "abs" if op == "edges" else "clip"
    pixels, _ = to_pixels(scaled[:, :, 0] if scaled.shape[2] == 1 else scaled, policy, 8)
    return pixels


def stage_panels(plan: StagePlan | None, values: np.ndarray, maxval: float, index: int) -> list:
    """Panels for one stage's output (or the input when ``plan`` is None)."""
    from convcli.teach.render import Panel, feature_maps_to_panels

    shape = shape_text(nchw((values.shape[2], values.shape[0], values.shape[1])))
    if plan is None:
        return [Panel("input", shape, display_pixels(values, "input", maxval))]
    rec = plan.stage.describe()
    label = f"{index}. {plan.stage.op}" + (f" {rec['kernel']}" if rec.get("kernel") else "")
    if plan.stage.op in FEATURE_OPS or values.shape[2] not in (1, 3):
        return conv_kernel_panels(plan, index) + list(feature_maps_to_panels(values, label, shape))
    return [Panel(label, shape, display_pixels(values, plan.stage.op, maxval))]


def conv_kernel_panels(plan: StagePlan, index: int, most: int = 8) -> list:
    """For a conv stage, the weights each output channel applies to input channel 0 (up to ``most``)."""
    from convcli.pipeline import ConvStage
    from convcli.teach.render import kernel_panel

    if not isinstance(plan.stage, ConvStage):
        return []
    w = plan.stage.weights_for(plan.in_shape[0])
    return [kernel_panel(w[o, 0], f"{index}. conv w[{o},0]") for o in range(min(most, w.shape[0]))]


def montage_png(panels: list, title: str | None = None, threads: int = 1) -> bytes:
    """The panels side by side as PNG bytes (written on ``threads`` threads)."""
    from convcli.teach.render import make_montage

    image = make_montage(panels, title=title)
    data, _ = encode_image(image, None, "png", threads=threads)
    return data


def montage_path(template: str, source: str) -> str:
    """--montage PATH, with ``{stem}`` filled from the input for batches."""
    if "{" not in template:
        return template
    stem = "stdin" if source == "-" else Path(source).stem
    return template.replace("{stem}", stem)


def channel_path(output: str, i: int) -> str:
    """``out/cat.chain.png`` -> ``out/cat.chain.c0.png``."""
    p = Path(output)
    return str(p.with_name(f"{p.stem}.c{i}{p.suffix}"))


def feature_map_files(values: np.ndarray, output: str, fmt: str, label: str,
                      threads: int = 1) -> list[tuple[str, bytes]]:
    """One normalised grey image per channel, plus a labelled grid at ``output`` (on ``threads`` threads)."""
    from convcli.teach.render import feature_maps_to_panels

    files: list[tuple[str, bytes]] = []
    for i in range(values.shape[2]):
        pixels, _ = to_pixels(values[:, :, i], "normalize", 8, threads=threads)
        data, _ = encode_image(pixels, None, fmt, threads=threads)
        files.append((channel_path(output, i), data))
    shape = shape_text(nchw((values.shape[2], values.shape[0], values.shape[1])))
    files.append((output, montage_png(list(feature_maps_to_panels(values, label, shape)), threads=threads)))
    return files
