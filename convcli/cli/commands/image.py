"""The image commands: filter, blur, edges, downsample — each builds a pipeline and runs it."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import click

from convcli.cli.kernelspec import cli_kernel, kernel_files, user_kernel
from convcli.cli.options import (
    FiniteFloat,
    PaddingType,
    PairType,
    geometry_options,
    geometry_spec,
    images_argument,
    io_options,
    kernel_gain_options,
    run_spec,
    stack,
)
from convcli.core import parametric
from convcli.core.kernels import (
    MAX_KERNEL_ABS_SUM,
    MAX_KERNEL_SIZE,
    MIN_SIGMA,
    REGISTRY,
    Kernel,
    box_kernel,
    check_kernel_size,
    check_sigma,
    gaussian_kernel,
    get_kernel,
    opencv_default_sigma,
    size_for_sigma,
)
from convcli.core.shapes import MAX_GEOMETRY, GeometrySpec, Pair
from convcli.errors import UsageError
from convcli.pipeline import (
    CompassStage,
    GradientStage,
    Pipeline,
    Stage,
    UnsharpStage,
    make_correlate_stage,
)
from convcli.run.spec import Command, RunSpec

#: The most passes downsample --times takes: 2**32 > any image side.
MAX_TIMES = 32

#: edges --operator: (x kernel, y kernel) registry names; laplacian has no direction.
EDGE_OPERATORS: dict[str, tuple[str, str] | str] = {
    "prewitt": ("edge-vertical", "edge-horizontal"),
    "sobel": ("sobel-x", "sobel-y"),
    "scharr": ("scharr-x", "scharr-y"),
    "laplacian": "laplacian",
}
#: edges --operator: compass operators, the maximum over 8 rotations of a registry kernel
#: (robinson and sobel8 are the same masks: Robinson's 5-level masks are Sobel's).
COMPASS_OPERATORS: dict[str, str] = {
    "kirsch": "kirsch",
    "robinson": "robinson",
    "sobel8": "sobel-x",
    "compass": "compass",
}


def filter_op_name(spec: str, kernel: Kernel) -> str:
    """Registry and parametric kernels name their outputs (cat.sharpen.png, cat.gabor.png, cat.kirsch45.png);
    literals and files say 'filter'."""
    s = spec.strip()
    if parametric.handles(s):
        head, _, angle = kernel.name.split(":")[0].partition("@")
        if head not in parametric.BUILDERS and head not in REGISTRY:
            return "filter"  # a turned literal
        return head + angle
    try:
        return get_kernel(spec).name if not spec.strip().startswith("@") else "filter"
    except UsageError:
        return "filter"


def blur_kernel(kind: str, size: Pair | int | None, sigma: float | None,
                truncate: float | None = None) -> tuple[Kernel, str]:
    """The blur kernel and its report label, stating the size and sigma actually used.

    ``size`` is N or (Y, X); every size is checked against ``MAX_KERNEL_SIZE`` before anything is built.
    """
    if isinstance(size, int):
        size = (size, size)
    if kind == "box":
        if sigma is not None:
            msg = "--sigma applies to --type gaussian, not box"
            raise UsageError(msg)
        if truncate is not None:
            msg = "--truncate applies to --sigma (a Gaussian), not --type box"
            raise UsageError(msg)
        ky, kx = size or (3, 3)
        check_kernel_size(ky, kx, f"--size {ky},{kx}")
        k = box_kernel((ky, kx))
        return k, k.name
    if sigma is not None:
        check_sigma(sigma, "--sigma")
    if truncate is not None and (sigma is None or size is not None):
        msg = ("--truncate sets the size from --sigma; it needs --sigma and no --size"
               if sigma is None else "give --size or --truncate, not both (--truncate sets the size)")
        raise UsageError(msg)
    if size is None:
        if sigma is None:
            size = (3, 3)
        else:
            reach = (truncate or 3.0) * sigma
            if not reach <= MAX_KERNEL_SIZE or size_for_sigma(sigma, truncate or 3.0) > MAX_KERNEL_SIZE:
                msg = (f"--sigma {sigma:g} needs a kernel over {MAX_KERNEL_SIZE}x{MAX_KERNEL_SIZE} "
                       f"(2*ceil({truncate or 3.0:g}*sigma)+1); kernels are at most {MAX_KERNEL_SIZE} a side")
                raise UsageError(msg)
            n = size_for_sigma(sigma, truncate or 3.0)
            size = (n, n)
    ky, kx = size
    check_kernel_size(ky, kx, f"Gaussian --size {ky},{kx}")
    if min(ky, kx) < 1 or ky % 2 == 0 or kx % 2 == 0:
        shown = str(ky) if ky == kx else f"{ky},{kx}"
        msg = f"Gaussian --size must be odd and >= 1, got {shown}"
        raise UsageError(msg)
    if (ky, kx) == (3, 3) and sigma is None:
        return get_kernel("gaussian3"), "gaussian3"
    k = gaussian_kernel((ky, kx), sigma)
    name = k.name
    if sigma is not None:  # the builder's own name says the sigma
        return k, name
    if max(ky, kx) <= 7:
        label = f"{name}(OpenCV fixed taps)"  # binomial for 3 and 5, not for 7
    elif ky == kx:
        label = f"{name}(sigma={opencv_default_sigma(ky):.4g})"
    else:
        label = f"{name}(OpenCV default sigma per axis)"
    return Kernel(label, k.weights, k.description), label


# --- filter ------------------------------------------------------------------------------

KERNEL_HELP = ("A registry name (see 'convcli kernels'), a parametric kernel (gaussian:sigma=2, "
               "gabor:theta=30, motion:length=15,angle=30, disk:radius=5, laplacian:5, kirsch@45...), "
               "a literal like \"0 -1 0; -1 5 -1; 0 -1 0\" or [[0,-1,0],[-1,5,-1],[0,-1,0]] "
               "(fractions allowed), @file (.txt/.csv/.json/.npy, at most 16 MiB) or @image.png (a PSF: "
               f"luminance normalised to sum 1). Kernels are at most {MAX_KERNEL_SIZE}x{MAX_KERNEL_SIZE}.")

filter_options = stack(
    click.option("-k", "--kernel", "kernel_spec", required=True, metavar="SPEC", help=KERNEL_HELP),
    kernel_gain_options,
    click.option("--bias", type=FiniteFloat(-MAX_KERNEL_ABS_SUM, MAX_KERNEL_ABS_SUM), default=0.0,
                 help="Add B after the sum (ImageMagick's bias, OpenCV's delta)."),
    click.option("--flip", is_flag=True,
                 help="Rotate the kernel 180°: true convolution instead of correlation."),
    geometry_options(),
)


def build_filter(p: dict[str, Any]) -> Command:
    k = user_kernel(p["kernel_spec"], p["normalize"], p["scale"])
    stage = make_correlate_stage("filter", k, geometry_spec(p), flip=p["flip"], bias=p["bias"])
    return Command(pipeline=Pipeline((stage,)), op=filter_op_name(p["kernel_spec"], k),
                   reads=kernel_files(p["kernel_spec"]))


@click.command("filter")
@filter_options
@io_options
@images_argument
def filter_cmd(**p: Any) -> int:
    """Apply any kernel (cross-correlation, like PyTorch) to IMAGES.

    \b
    convcli filter cat.png --kernel sharpen            -> cat.sharpen.png
    convcli filter cat.png -k "1/9 1/9 1/9; 1/9 1/9 1/9; 1/9 1/9 1/9" -o box.png
    convcli filter photos/ -k emboss --out-dir out/ --json
    """
    return dispatch(build_filter(p), run_spec(p))


# --- blur --------------------------------------------------------------------------------

blur_options = stack(
    click.option("-k", "--kernel", "kernel_spec", default=None, metavar="SPEC",
                 help="Blur with this kernel instead of building one (a bare N or Y,X is the size, as "
                      "--size): " + KERNEL_HELP),
    click.option("--type", "kind", type=click.Choice(["gaussian", "box"]), default=None,
                 help="Kernel to build when -k is absent  [default: gaussian]"),
    click.option("--size", type=PairType("--size", maximum=MAX_KERNEL_SIZE), default=None, metavar="N|Y,X",
                 help="Kernel size (default 3; with --sigma alone: 2*ceil(truncate*sigma)+1), "
                      f"at most {MAX_KERNEL_SIZE}."),
    click.option("--sigma", type=FiniteFloat(minimum=MIN_SIGMA), default=None,
                 help="Gaussian sigma (default: OpenCV's getGaussianKernel(k, 0))."),
    click.option("--truncate", type=FiniteFloat(minimum=0.5), default=None,
                 help="With --sigma alone: how many sigmas the kernel covers each side  [default: 3]"),
    geometry_options(),
)


#: ``blur -k 15`` or ``-k 5,3``: a kernel size, as ``--size`` (a 1x1 or 1x2 blur means nothing).
_BARE_SIZE = re.compile(r"\s*\d+\s*(,\s*\d+\s*)?")


def build_blur(p: dict[str, Any]) -> Command:
    spec = p["kernel_spec"]
    if spec is not None and _BARE_SIZE.fullmatch(spec):
        if p["size"] is not None:
            size = "{}".format(p["size"][0]) if p["size"][0] == p["size"][1] else "{},{}".format(*p["size"])
            msg = f"-k {spec} and --size {size} both give the kernel size: give one"
            raise UsageError(msg)
        size = PairType("-k", maximum=MAX_KERNEL_SIZE).convert(spec, None, None)
        p = {**p, "kernel_spec": None, "size": size}
    if p["kernel_spec"] is not None:
        given = [flag for flag, key in (("--type", "kind"), ("--size", "size"), ("--sigma", "sigma"),
                                        ("--truncate", "truncate")) if p[key] is not None]
        if given:
            msg = (f"-k/--kernel gives the blur kernel; {', '.join(given)} would build another "
                   "(use one or the other)")
            raise UsageError(msg)
        k = cli_kernel(p["kernel_spec"])
        stage = make_correlate_stage("blur", k, geometry_spec(p))
        return Command(pipeline=Pipeline((stage,)), op="blur", reads=kernel_files(p["kernel_spec"]))
    k, label = blur_kernel(p["kind"] or "gaussian", p["size"], p["sigma"], p["truncate"])
    stage = make_correlate_stage("blur", k, geometry_spec(p), label=label)
    return Command(pipeline=Pipeline((stage,)), op="blur")


@click.command("blur")
@blur_options
@io_options
@images_argument
def blur_cmd(**p: Any) -> int:
    """Gaussian or box blur.

    \b
    convcli blur cat.png                 -> 3x3 Gaussian 1/16 [1 2 1; 2 4 2; 1 2 1]
    convcli blur cat.png --size 15       -> 15x15, sigma 2.6 (OpenCV's default)
    convcli blur cat.png --sigma 2       -> 13x13 (2*ceil(3*2)+1)
    convcli blur cat.png --type box --size 5
    convcli blur cat.png -k gaussian5    -> a registry (or literal, or @file) kernel
    """
    return dispatch(build_blur(p), run_spec(p))


# --- edges -------------------------------------------------------------------------------


def edge_stage(operator: str, direction: str, geo: GeometrySpec) -> Stage:
    if operator in COMPASS_OPERATORS:
        if direction != "both":
            msg = f"--operator {operator} takes the maximum over 8 directions; drop --direction {direction}"
            raise UsageError(msg)
        base = get_kernel(COMPASS_OPERATORS[operator])
        rotations = tuple(parametric.rotated(base, str(45 * i)) for i in range(8))
        mode, pad4 = geo.resolve(base.shape)
        return CompassStage(kernels=rotations, stride=geo.stride, dilation=geo.dilation,
                            padding=mode, pad=pad4, label=f"{operator} max over {base.name}@0..315")
    spec = EDGE_OPERATORS[operator]
    if isinstance(spec, str):
        if direction != "both":
            msg = f"--operator {operator} has no direction; drop --direction {direction}"
            raise UsageError(msg)
        return make_correlate_stage("edges", get_kernel(spec), geo, label=spec, carries_alpha=False)
    kx, ky = get_kernel(spec[0]), get_kernel(spec[1])
    if direction in ("vertical", "horizontal"):
        k = kx if direction == "vertical" else ky
        return make_correlate_stage("edges", k, geo, label=k.name, carries_alpha=False)
    mode, pad4 = geo.resolve(kx.shape)
    return GradientStage(op="edges", kx=kx, ky=ky, stride=geo.stride, dilation=geo.dilation,
                         padding=mode, pad=pad4, label=f"{operator} magnitude")


edges_options = stack(
    click.option("--operator", type=click.Choice([*EDGE_OPERATORS, *COMPASS_OPERATORS]), default="prewitt",
                 show_default=True,
                 help="prewitt = the lecture's K_v / K_h. kirsch, robinson, sobel8 (= robinson), compass: "
                      "the largest response over the kernel's 8 rotations (NAME@0 ... NAME@315)."),
    click.option("--direction", type=click.Choice(["both", "vertical", "horizontal"]), default="both",
                 show_default=True, help="both = gradient magnitude sqrt(gx² + gy²)."),
    click.option("--color", is_flag=True, help="Detect edges per colour channel (default: on luminance)."),
    geometry_options(),
)


def build_edges(p: dict[str, Any]) -> Command:
    stage = edge_stage(p["operator"], p["direction"], geometry_spec(p))
    direction_out = p.get("direction_out")
    if direction_out is not None:
        if not isinstance(stage, CompassStage):
            ops = ", ".join(COMPASS_OPERATORS)
            msg = f"--direction-out needs a compass operator ({ops}), not {p['operator']}"
            raise UsageError(msg)
        if not direction_out.lower().endswith(".npy"):
            msg = f"--direction-out {direction_out!r}: the angles are written as .npy (float32 degrees)"
            raise UsageError(msg)
    return Command(pipeline=Pipeline((stage,)), op="edges", default_policy="abs", gray=not p["color"],
                   direction_out=direction_out)


@click.command("edges")
@edges_options
@click.option("--direction-out", default=None, metavar="FILE.npy",
              help="With a compass operator: also write the winning rotation per pixel, float32 degrees "
                   "0, 45 ... 315 (clockwise, as NAME@ANGLE; the lowest on ties), shape (H, W) or "
                   "(H, W, C) with --color. {stem} is filled per input.")
@io_options
@images_argument
def edges_cmd(**p: Any) -> int:
    """Edge detection (grayscale unless --color); the output is |response| by default.

    \b
    convcli edges cat.png                          -> prewitt magnitude, cat.edges.png
    convcli edges cat.png --direction vertical     -> the lecture's K_v
    convcli edges cat.png --operator sobel --color
    convcli edges cat.png --operator kirsch --direction-out cat.dir.npy
    """
    return dispatch(build_edges(p), run_spec(p))


# --- downsample --------------------------------------------------------------------------

downsample_options = stack(
    click.option("--factor", type=click.IntRange(1, MAX_GEOMETRY), default=2, show_default=True,
                 help="Stride of each pass."),
    click.option("-k", "--kernel", "kernel_spec", default=None, metavar="SPEC",
                 help="Kernel (default: an anti-aliasing Gaussian of size 2*factor-1: gaussian3 for 2). "
                      + KERNEL_HELP),
    click.option("--times", type=click.IntRange(1, MAX_TIMES), default=1, show_default=True,
                 help=f"Repeat: 224 -> 112 -> 56 with --times 2 (at most {MAX_TIMES}; a 1x1 input "
                      "stays 1x1, as PyTorch's formula gives)."),
    click.option("--flip", is_flag=True, help="Rotate the kernel 180° (true convolution)."),
    geometry_options(stride=False),
)


def build_downsample(p: dict[str, Any]) -> Command:
    factor, times = p["factor"], p["times"]
    if p["kernel_spec"] is None:
        if 2 * factor - 1 > MAX_KERNEL_SIZE:
            side = 2 * factor - 1
            msg = (f"--factor {factor} needs a {side}x{side} anti-aliasing kernel; kernels "
                   f"are at most {MAX_KERNEL_SIZE} a side (--factor {(MAX_KERNEL_SIZE + 1) // 2} at most, "
                   "or give -k)")
            raise UsageError(msg)
        k, label = blur_kernel("gaussian", 2 * factor - 1, None)
    else:
        k, label = cli_kernel(p["kernel_spec"]), ""
    stage = make_correlate_stage("downsample", k, geometry_spec(p, stride=(factor, factor)), flip=p["flip"],
                                 label=label)
    total = factor**times
    op = f"down{total}" if total < 10**9 else f"down{factor}x{times}"
    return Command(pipeline=Pipeline((stage,) * times), op=op, reads=kernel_files(p["kernel_spec"]))


@click.command("downsample")
@downsample_options
@io_options
@images_argument
def downsample_cmd(**p: Any) -> int:
    """Strided convolution: blur and keep every FACTOR-th pixel, TIMES over.

    \b
    convcli downsample cat.png                     -> 224x224 -> 112x112, cat.down2.png
    convcli downsample cat.png --times 2           -> 224 -> 112 -> 56, cat.down4.png
    convcli downsample cat.png --factor 2 -k box3 -p zeros --pad 1
    """
    return dispatch(build_downsample(p), run_spec(p))


# --- sharpen -----------------------------------------------------------------------------

sharpen_options = stack(
    # the blur is (2R+1)x(2R+1): R up to 500 is the 1001-tap kernel limit (512 passed, then failed on it)
    click.option("--radius", type=click.IntRange(0, (MAX_KERNEL_SIZE - 1) // 2), default=0, show_default=True,
                 help="Blur radius R: a (2R+1)x(2R+1) Gaussian; 0: 2*ceil(3*sigma)+1."),
    click.option("--sigma", type=float, default=1.0, show_default=True, help="Blur sigma S (> 0)."),
    click.option("--amount", type=FiniteFloat(-MAX_KERNEL_ABS_SUM, MAX_KERNEL_ABS_SUM), default=1.0,
                 show_default=True,
                 help="Gain A: out = in + A*(in - blur). 1.0 = ImageMagick's +1 (Pillow's percent=100)."),
    click.option("--threshold", type=FiniteFloat(minimum=0.0), default=0.05, show_default=True,
                 help="T as a fraction of the full range (ImageMagick's QuantumRange): pixels with "
                      "2*|in - blur| < T*max stay as they are (0.05 = 12.75 of 255)."),
    click.option("-p", "--padding", type=PaddingType(), default="border", show_default=True,
                 help="Padding of the blur (border = ImageMagick's default -virtual-pixel Edge)."),
)


def build_sharpen(p: dict[str, Any]) -> Command:
    geo = geometry_spec(p)
    if geo.padding == "valid":
        msg = "--padding valid would shrink the blur: sharpen needs a padding mode"
        raise UsageError(msg)
    stage = UnsharpStage(radius=p["radius"], sigma=p["sigma"], amount=p["amount"], threshold=p["threshold"])
    mode, pad4 = geo.resolve(stage.ksize())  # sharpen takes -p alone: 'same', stride 1
    stage = dataclasses.replace(stage, padding=mode, pad=pad4)
    return Command(pipeline=Pipeline((stage,)), op="unsharp")


@click.command("sharpen")
@sharpen_options
@io_options
@images_argument
def sharpen_cmd(**p: Any) -> int:
    """Unsharp mask, as ImageMagick's -unsharp RxS+A+T (the lecture's 3x3 stays 'filter -k sharpen').

    \b
    out = in + amount*(in - gaussian_blur(in)), where 2*|in - blur| >= threshold*max; else in.
    The threshold is a fraction of the full range (ImageMagick's QuantumRange, 255 for 8-bit):
    --threshold 0.05 leaves differences under 6.375 levels alone (ImageMagick doubles the difference
    before comparing). Pillow's UnsharpMask(radius, percent, threshold) differs: its radius is the
    sigma, percent = 100*amount, and its threshold is in levels compared with |in - blur|.

    \b
    convcli sharpen cat.png                                    -> -unsharp 0x1+1+0.05, cat.unsharp.png
    convcli sharpen cat.png --radius 3 --sigma 1.5 --amount 2 --threshold 0
    """
    return dispatch(build_sharpen(p), run_spec(p))


def dispatch(cmd: Command, spec: RunSpec) -> int:
    """--emit prints code instead of running; otherwise plan, check and run the batch."""
    if spec.emit:
        from convcli.cli.commands.teach import emit_for

        click.echo(emit_for(spec.emit, cmd, spec))
        return 0
    from convcli.cli.execute import run_command

    return run_command(cmd, spec)
