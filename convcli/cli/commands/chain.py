"""``convcli chain``: several stages in one pass on float32, no re-encoding between them.

Chain options (-i, -o, --json, --montage...) come before the first stage; each
stage takes the same options as its standalone command (one definition, shared
with convcli/cli/image.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import numpy as np
from click.core import ParameterSource

from convcli.cli.commands.image import (
    blur_options,
    build_blur,
    build_downsample,
    build_edges,
    build_filter,
    build_sharpen,
    dispatch,
    downsample_options,
    edges_options,
    filter_options,
    sharpen_options,
)
from convcli.cli.options import PairType, geometry_options, geometry_spec, io_options, run_spec
from convcli.core.kernels import MAX_KERNEL_ABS_SUM, MAX_KERNEL_SIZE, check_kernel_size
from convcli.errors import UsageError
from convcli.io.userfiles import load_npy
from convcli.pipeline import ConvStage, FlattenStage, GrayStage, Pipeline, ReluStage, Stage
from convcli.run.spec import Command, RunSpec


@click.group("chain", chain=True, subcommand_metavar="STAGE [ARGS]... [STAGE [ARGS]...]...")
@click.option("-i", "--input", "images", multiple=True, metavar="IMAGE",
              help="Input image, file or directory (repeat -i for several; '-' = stdin).")
@io_options
def chain_cmd(**p: Any) -> None:
    """Run stages one after another in one pass (float32 between stages, no quantisation).

    \b
    Stages: filter, blur, edges, downsample, sharpen, gray, relu, conv, flatten.
    convcli chain -i cat.png blur --size 5 edges --direction vertical
    convcli chain -i cat.png conv --out-channels 3 --size 3 --seed 0 relu conv --out-channels 2 --size 1
    convcli chain -i cat.png --json conv --out-channels 8 -s 2 relu conv --out-channels 8 -s 2 relu

    A result with a channel count other than 1 or 3 is written as one grey image per
    channel ({stem}.chain.c0.png ...) plus a labelled grid at the output path; .npy
    keeps (H, W, C) floats.
    """


@chain_cmd.result_callback()
def run_chain(commands: list[Command], **p: Any) -> int:
    if not p.get("images"):
        msg = "chain needs at least one input: -i IMAGE before the first stage"
        raise UsageError(msg)
    if not commands:
        msg = ("chain needs at least one stage (filter, blur, edges, downsample, sharpen, gray, relu, conv, "
               "flatten)")
        raise UsageError(msg)
    stages: list[Stage] = []
    for c in commands:
        if c.gray:
            stages.append(GrayStage())
        stages.extend(c.pipeline.stages)
    cmd = Command(pipeline=Pipeline(tuple(stages)), op="chain", default_policy=commands[-1].default_policy,
                  reads=tuple(path for c in commands for path in c.reads))
    spec = run_spec(p)
    shown = [s for c in commands if c.show_weights for s in c.pipeline.stages]
    if shown:
        _show_weights(cmd.pipeline, shown, spec)
    return dispatch(cmd, spec)


def _show_weights(pipeline: Pipeline, shown: list[Stage], spec: RunSpec) -> None:
    """--show-weights: print those conv stages' weights (for the first input's channels) to stderr."""
    from convcli.io.decode import read_header

    first = spec.images[0]
    if first == "-" or Path(first).is_dir():
        msg = "--show-weights needs the first input to be an image file"
        raise UsageError(msg)
    header = read_header(first, gray=spec.gray, max_pixels=spec.max_pixels)
    plans = pipeline.plan((header.channels, header.height, header.width), max_pixels=spec.max_pixels)
    for i, plan in enumerate(plans, start=1):
        stage = plan.stage
        if not any(stage is s for s in shown) or not isinstance(stage, ConvStage):
            continue
        w = stage.weights_for(plan.in_shape[0])
        click.echo(f"stage {i} conv weights (seed {stage.seed}), shape {list(w.shape)}:", err=True)
        for o in range(w.shape[0]):
            for c in range(w.shape[1]):
                click.echo(f"  out {o} <- in {c}:", err=True)
                for row in w[o, c]:
                    click.echo("    [" + " ".join(f"{v:6.2f}" for v in row) + "]", err=True)


#: chain stages shared with a standalone command: (its options, its pipeline builder, help)
SHARED_STAGES: dict[str, tuple[Callable[[Any], Any], Callable[[dict[str, Any]], Command], str]] = {
    "filter": (filter_options, build_filter, "Any kernel (options as 'convcli filter')."),
    "blur": (blur_options, build_blur, "Gaussian or box blur (options as 'convcli blur')."),
    "edges": (edges_options, build_edges,
              "Edge detection (options as 'convcli edges'; luminance first unless --color)."),
    "downsample": (downsample_options, build_downsample,
                   "Strided convolution (options as 'convcli downsample'; --times N counts as N stages)."),
    "sharpen": (sharpen_options, build_sharpen, "Unsharp mask (options as 'convcli sharpen')."),
}


def _shared_stage(name: str) -> click.Command:
    options, build, help_text = SHARED_STAGES[name]

    def stage(**p: Any) -> Command:
        return build(p)

    return chain_cmd.command(name, help=help_text)(options(stage))


for _name in SHARED_STAGES:
    _shared_stage(_name)


@chain_cmd.command("gray")
def chain_gray() -> Command:
    """Luminance (ITU-R 601-2): 3 channels -> 1."""
    return Command(pipeline=Pipeline((GrayStage(),)), op="gray")


@chain_cmd.command("flatten")
def chain_flatten() -> Command:
    """[1, C, H, W] -> [1, C*H*W], as a classifier does before its linear layers (last stage; .npy out)."""
    return Command(pipeline=Pipeline((FlattenStage(),)), op="flatten")


@chain_cmd.command("relu")
def chain_relu() -> Command:
    """max(0, x), element-wise."""
    return Command(pipeline=Pipeline((ReluStage(),)), op="relu")


def _load_npy(path: str, what: str) -> np.ndarray:
    """--weights / --bias: a .npy of finite real numbers, no empty axis (read capped, never unpickled)."""
    arr = load_npy(path, what)
    if 0 in arr.shape:
        msg = f"{what} {path}: shape {arr.shape} has an empty axis"
        raise UsageError(msg)
    with np.errstate(over="ignore"):
        values = arr.astype(np.float32)
    if not np.all(np.isfinite(values)):
        msg = f"{what} {path}: must hold finite real numbers (within float32)"
        raise UsageError(msg)
    return values


#: Most output channels of a conv stage, given by --out-channels or by --weights' shape (each channel
#: is a map file: 100000 rows of weights wrote 56,688 files in a minute before this applied to both).
MAX_CONV_CHANNELS = 4096

#: ``Context.meta`` key: how many conv stages of this chain have been built so far.
_CONV_COUNT = "convcli.chain.conv_stages"


def _check_weights(weights: np.ndarray, what: str) -> None:
    """--weights within the limits --out-channels and kernels have: channels, kernel size, and each
    output channel's absolute sum (3e38 everywhere gave inf, written as if a result, exit 0)."""
    if weights.shape[0] > MAX_CONV_CHANNELS:
        msg = f"{what}: {weights.shape[0]} output channels, over the limit of {MAX_CONV_CHANNELS}"
        raise UsageError(msg)
    check_kernel_size(int(weights.shape[2]), int(weights.shape[3]), what)
    sums = np.abs(weights.astype(np.float64)).reshape(weights.shape[0], -1).sum(axis=1)
    if weights.size and not np.all(sums <= MAX_KERNEL_ABS_SUM):
        msg = (f"{what}: an output channel's weights must be finite and their absolute values sum to at "
               f"most {MAX_KERNEL_ABS_SUM:.0e} (results would overflow)")
        raise UsageError(msg)


@chain_cmd.command("conv")
@click.option("--out-channels", type=click.IntRange(1, MAX_CONV_CHANNELS), default=None,
              help="Output channels (with random weights; default 1).")
@click.option("-k", "--size", "ksize", type=PairType("--size", maximum=MAX_KERNEL_SIZE), default="3",
              show_default=True, metavar="N|Y,X",
              help=f"Kernel size N or KH,KW of the random weights (at most {MAX_KERNEL_SIZE}).")
@click.option("--seed", type=click.IntRange(0), default=None,
              show_default="n-1 for the chain's n-th conv stage",
              help="Seed of the random weights, uniform in [-1, 1]: same seed, same weights.")
@click.option("--weights", "weights_file", default=None, metavar="FILE.npy",
              help="Weights of shape (out, in, kh, kw) instead of random ones.")
@click.option("--bias", "bias_file", default=None, metavar="FILE.npy",
              help="Bias of shape (out,) (default: no bias).")
@click.option("--show-weights", is_flag=True, help="Print the weights on stderr.")
@geometry_options(default_padding="zeros")
def chain_conv(out_channels: int | None, ksize: tuple[int, int], seed: int | None, weights_file: str | None,
               bias_file: str | None, show_weights: bool, **p: Any) -> Command:
    """A conv layer mixing channels, as torch.nn.Conv2d (padding zeros by default, as PyTorch)."""
    # Without --seed the n-th conv stage of the chain draws with seed n-1, so that two layers are
    # initialised independently (as PyTorch's are), not identically. Click invokes a chain's stages
    # one after another, in order, and their contexts share ``meta``: it counts the conv stages.
    meta = click.get_current_context().meta
    position = meta.get(_CONV_COUNT, 0)
    meta[_CONV_COUNT] = position + 1
    weights = _load_npy(weights_file, "--weights") if weights_file else None
    if weights is not None and weights.ndim != 4:
        msg = f"--weights {weights_file}: expected shape (out, in, kh, kw), got {weights.shape}"
        raise UsageError(msg)
    if weights is not None:
        _check_weights(weights, f"--weights {weights_file}")
    if weights is not None and out_channels is not None and out_channels != weights.shape[0]:
        msg = f"--out-channels {out_channels} contradicts --weights with {weights.shape[0]} outputs"
        raise UsageError(msg)
    if weights is not None:  # the random weights' options, given with weights they would not draw
        given = click.get_current_context().get_parameter_source
        if given("ksize") == ParameterSource.COMMANDLINE and tuple(ksize) != tuple(weights.shape[2:]):
            msg = (f"--size {ksize[0]},{ksize[1]} contradicts --weights with {weights.shape[2]}x"
                   f"{weights.shape[3]} kernels")
            raise UsageError(msg)
        if given("seed") == ParameterSource.COMMANDLINE:
            msg = "--seed draws random weights; --weights gives them (use one or the other)"
            raise UsageError(msg)
    bias = _load_npy(bias_file, "--bias") if bias_file else None
    if bias is not None and not np.all(np.abs(bias) <= MAX_KERNEL_ABS_SUM):
        msg = (f"--bias {bias_file}: every bias must be finite and at most {MAX_KERNEL_ABS_SUM:.0e} in size "
               "(results would overflow)")
        raise UsageError(msg)
    size = (int(weights.shape[2]), int(weights.shape[3])) if weights is not None else ksize
    geo = geometry_spec(p)
    mode, pad4 = geo.resolve(size)
    stage = ConvStage(out_channels=out_channels or 1, kernel_size=size, weights=weights, bias=bias,
                      seed=position if seed is None else seed, stride=geo.stride, dilation=geo.dilation,
                      padding=mode, pad=pad4, source=weights_file or "")
    return Command(pipeline=Pipeline((stage,)), op="conv", show_weights=show_weights,
                   reads=tuple(f for f in (weights_file, bias_file) if f))
