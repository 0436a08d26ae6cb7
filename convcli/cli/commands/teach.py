"""Teaching commands (explain, demo) and the bridge from image commands to --emit."""

from __future__ import annotations

import os
from typing import Any

import click
import numpy as np
from click.core import ParameterSource

from convcli.cli.errors import read_named
from convcli.cli.kernelspec import parse_patch
from convcli.cli.options import FiniteFloat, geometry_options, geometry_spec, kernel_gain_options, parse_at
from convcli.core.kernels import MAX_KERNEL_ABS_SUM
from convcli.errors import UsageError
from convcli.pipeline import CompassStage, CorrelateStage, make_correlate_stage
from convcli.run.spec import Command, RunSpec


def _output_quality(spec: RunSpec, out: str) -> int | None:
    """The quality convcli writes ``out`` with, where its format has one (JPEG, WebP)."""
    from convcli.io.formats import FORMATS
    from convcli.run.plan import output_format

    default = FORMATS[output_format(spec, out)].quality  # the flags were checked: the format is known
    return None if default is None else spec.output.quality or default


def _emit_output(spec: RunSpec, op: str, given: str, src: str) -> str:
    """The file the program writes: the one convcli would write (``-o``, or ``--out-dir``/``--name``
    for this input), else (and for ``-o -``) ``output`` with the extension of ``--format`` (PNG without
    it). The format
    flags are checked as for a run (``--format jpeg -o x.png`` is refused)."""
    from convcli.io.formats import extension_for
    from convcli.run.inputs import expand_inputs
    from convcli.run.plan import check_format_flags, check_output_formats, main_outputs

    out = spec.output
    check_format_flags(spec)
    if out.output is not None and out.output != "-":  # stdout: a file name to change, as stdin's input.png
        return out.output
    if (out.out_dir is not None or out.name_template is not None) and given != "-":
        paths = main_outputs(spec, op, expand_inputs([src]))
        check_output_formats(spec, paths)
        if paths[0] not in (None, "-"):
            return str(paths[0])
    return "output" + extension_for(out.fmt or "png")


def emit_for(library: str, cmd: Command, spec: RunSpec) -> str:
    """The equivalent code in ``library`` for a one-kernel command (or the same kernel repeated).

    The programs read 8-bit colour or grey and write 8-bit pixels by the run's ``--range``; what
    they would not reproduce (``--linear-light``, 16-bit or float output, a 16-bit input) is
    refused, and an alpha channel (convcli filters colour premultiplied by it; the programs drop it)
    is a note.
    """
    from convcli.io.decode import read_header
    from convcli.teach.emit import EmitSpec, emit

    stages = cmd.pipeline.stages
    first = stages[0]
    if not isinstance(first, CorrelateStage) or any(s is not first for s in stages):
        if len({id(s) for s in stages}) > 1:  # a chain of several stages
            what = f"a chain of {len(stages)} stages ({', '.join(s.op for s in stages)})"
            hint = "emit one stage at a time (e.g. convcli filter ... --emit), or run convcli"
        elif isinstance(first, CompassStage):
            what = "the largest of 8 rotated kernels' responses (a compass operator), no single kernel"
            hint = ("emit one rotation with 'filter -k NAME@ANGLE' (e.g. kirsch@90), or use --operator "
                    "sobel|prewitt|scharr with --direction vertical|horizontal")
        elif first.op == "edges":
            what = "the edges magnitude, which combines two kernels"
            hint = "use --direction vertical|horizontal"
        else:
            what = f"'{first.op}', not a single kernel"
            hint = "use 'filter' with its kernel, or run convcli"
        msg = f"--emit {library}: the programs apply one kernel, and this is {what}; {hint}"
        raise UsageError(msg)
    unused = [flag for flag, given in (("--json", spec.report.as_json), ("--dry-run", spec.report.dry_run),
                                       ("--montage", spec.output.montage is not None),
                                       ("--dask", spec.batch.dask_address is not None)) if given]
    if unused:  # stdout is the program, and nothing is run: a flag about the run would be dropped in silence
        verb, it = ("has", "it") if len(unused) == 1 else ("have", "them")
        msg = (f"--emit {library} prints a program instead of running, so {', '.join(unused)} {verb} nothing "
               f"to act on: drop {it}, or run without --emit")
        raise UsageError(msg)
    if spec.linear_light:
        msg = (f"--emit {library}: the programs filter the stored sRGB values; --linear-light (decode to "
               "linear light, filter, encode) is not written: drop it, or run convcli")
        raise UsageError(msg)
    if spec.output.bit_depth in ("16", "float"):
        msg = f"--emit {library}: the programs write 8-bit pixels; drop --bit-depth {spec.output.bit_depth}"
        raise UsageError(msg)
    images = spec.images or ("input.png",)
    if len(images) > 1:
        msg = (f"--emit {library} writes a program for one input, got {len(images)}: give one image "
               "(the program's INPUT and OUTPUT are easy to change)")
        raise UsageError(msg)
    src = images[0] if images[0] != "-" else "input.png"
    out = _emit_output(spec, cmd.op, images[0], src)
    if images[0] != "-":  # the program would write its output over its input (-o a.png for a.png)
        from convcli.run.plan import check_paths

        check_paths([src, *cmd.reads], [("program's output", out)])
    for what, path in (("input", src), ("output", out)):
        if path.lower().endswith(".npy"):
            msg = (f"--emit {library}: the program reads and writes image files, and the {what} {path} is a "
                   ".npy array: emit for an image file (e.g. .png), or run convcli")
            raise UsageError(msg)
    if os.path.isdir(src):
        msg = f"--emit {library} writes a program for one image, and {src} is a folder: give one image"
        raise UsageError(msg)
    # The program is written for this input's channels and size: one convcli cannot read (missing,
    # corrupt) fails here as in a run (exit 1), not as a generic program and exit 0
    header = read_named(read_header, src, "input") if images[0] != "-" else None
    if header is not None and header.bit_depth == 16:
        msg = f"--emit {library}: {src} is a 16-bit image; the programs read 8-bit images"
        raise UsageError(msg)
    if header is not None and header.has_alpha and not spec.report.quiet:
        click.echo(f"convcli: note: {src} has an alpha channel: convcli filters colour premultiplied by it "
                   "and keeps it; the program filters the colour as stored and drops it, so pixels differ "
                   "where alpha < 255", err=True)
    gray = cmd.gray or spec.gray
    quality = _output_quality(spec, out)
    channels = 1 if gray else (header.channels if header is not None else 3)
    espec = EmitSpec(kernel=first.weights, stride=first.stride, dilation=first.dilation, pad=first.pad,
                     mode=first.padding.name, flip=first.flip, channels=channels,
                     input_path=src, output_path=out, bias=first.bias, gray=gray,
                     policy=spec.output.range_policy or cmd.default_policy, repeat=len(stages),
                     image_size=(header.height, header.width) if header is not None else None,
                     quality=quality)
    return emit(library, espec)  # type: ignore[arg-type]


# --- explain -----------------------------------------------------------------------------




@click.command("explain")
@click.argument("image", required=False)
@click.option("-k", "--kernel", "kernel_spec", default="sharpen", show_default=True, metavar="SPEC",
              help="Kernel: registry name, literal or @file.")
@click.option("--patch", default=None, metavar="MATRIX",
              help='The input patch as a literal, e.g. "10 20 30; 40 50 60; 70 80 90".')
@click.option("--at", "at", default=None, metavar="X,Y", help="Output pixel of IMAGE to explain.")
@click.option("--channel", type=click.IntRange(0), default=0, show_default=True,
              help="Channel of IMAGE (0 = red); --gray uses luminance.")
@click.option("--gray", is_flag=True, help="Use the luminance of IMAGE.")
@click.option("--unroll", is_flag=True,
              help="Show a tiny input (<= 8x8: IMAGE or --patch) convolved as im2col x kernel.")
@kernel_gain_options
@click.option("--flip", is_flag=True, help="Rotate the kernel 180° (true convolution).")
@click.option("--bias", type=FiniteFloat(-MAX_KERNEL_ABS_SUM, MAX_KERNEL_ABS_SUM), default=0.0,
              help="Add B after the sum.")
@geometry_options()
def explain_cmd(image: str | None, kernel_spec: str, patch: str | None, at: str | None, channel: int,
                gray: bool, unroll: bool, normalize: bool, scale: float | None, flip: bool, bias: float,
                **p: Any) -> int:
    """One output pixel computed step by step, as the lecture does it.

    \b
    convcli explain --kernel sharpen --patch "10 20 30; 40 50 60; 70 80 90"     -> ... = 50
    convcli explain sample_images/cat224.png --at 0,0 -k sharpen -p zeros   a corner: padded values in []
    convcli explain --patch "1 2 3; 4 5 6; 7 8 9" -k "1 0; 0 -1" --unroll -p valid
    """
    from convcli.cli.kernelspec import user_kernel
    from convcli.teach.explain import explain_at, explain_patch, explain_unroll

    kernel = user_kernel(kernel_spec, normalize, scale)
    spec = geometry_spec(p)
    pad4 = spec.resolve(kernel.shape)[1]

    def unrolled(values: np.ndarray) -> Any:
        return explain_unroll(values, kernel, flip=flip, stride=spec.stride, dilation=spec.dilation,
                              mode=spec.padding, pad4=pad4)

    if image is None and patch is None:
        msg = "give --patch MATRIX, or IMAGE with --at X,Y (or --unroll for a tiny image)"
        raise UsageError(msg)
    if image is not None and patch is not None:
        msg = "give either IMAGE or --patch, not both"
        raise UsageError(msg)
    if patch is not None:
        values = parse_patch(patch)
        if unroll:
            result = unrolled(values)
        else:
            if at is not None:
                msg = "--at takes an IMAGE; with --patch the patch is the window itself"
                raise UsageError(msg)
            ctx = click.get_current_context()
            given = [flag for flag, name in (("-s", "stride"), ("-d", "dilation"), ("-p", "padding"),
                                             ("--pad", "pad"))
                     if ctx.get_parameter_source(name) not in (ParameterSource.DEFAULT, None)]
            if given:
                msg = (f"{'/'.join(given)}: with --patch the patch is the window itself, so there is nothing "
                       "to slide or pad (add --unroll to slide the kernel over it, or explain an IMAGE)")
                raise UsageError(msg)
            k = kernel.flipped() if flip else kernel
            result = explain_patch(k, values, bias=bias, flipped=flip)
        click.echo(result.text)
        return 0
    assert image is not None
    from convcli.io.decode import read_image

    img = read_named(read_image, image, "IMAGE", gray=gray)
    if channel >= img.color.shape[2]:
        msg = f"--channel {channel}: the image has {img.color.shape[2]} channel(s)"
        raise UsageError(msg)
    plane = img.color[:, :, channel].astype(np.float64)
    if unroll:
        result = unrolled(plane)
    else:
        if at is None:
            msg = "give --at X,Y (the output pixel to explain) or --unroll"
            raise UsageError(msg)
        x, y = parse_at(at, "output pixel")
        result = explain_at(plane, kernel, x, y, flip=flip, bias=bias, stride=spec.stride,
                            dilation=spec.dilation, mode=spec.padding, pad4=pad4)
        n = img.color.shape[2]
        # a .npy's channels (2, 4 or more of them) have no colour names
        name = " (luminance)" if gray or n == 1 else f" ({'RGB'[channel]})" if n == 3 else ""
        click.echo(f"{image}: channel {channel}{name}, output pixel x={x}, y={y}")
        if img.alpha is not None:
            click.echo(result.text)
            stage = make_correlate_stage("filter", kernel, spec, flip=flip, bias=bias)
            click.echo(_with_alpha(img, stage, x, y, channel))
            return 0
    click.echo(result.text)
    return 0


def _with_alpha(img: Any, stage: CorrelateStage, x: int, y: int, channel: int) -> str:
    """What ``filter`` writes at (x, y) of an image with alpha, by running its very stage: the sum
    shown is of the stored colour, while filter premultiplies colour by alpha (README, "Alpha")."""
    from convcli.pipeline import Pipeline
    from convcli.teach.explain import fmt

    out, alpha = Pipeline((stage,)).run(img.color, alpha=img.alpha, maxval=float(img.header.maxval))
    how = ("colour composited onto black (premultiplied by alpha): the kernel sums to 0, and the alpha "
           "is dropped" if alpha is None else
           f"colour premultiplied by alpha, filtered, divided by the window's alpha ({fmt(alpha[y, x])})")
    return f"note: this image has alpha; filter writes {fmt(out[y, x, channel])} here\n  ({how})"


# --- demo --------------------------------------------------------------------------------


@click.command("demo")
@click.option("--out-dir", default="convcli-demo", show_default=True, metavar="DIR",
              help="Where the figures go (created).")
@click.option("--image", default=None, metavar="PATH",
              help="Your own photo instead of the bundled 224x224 cat.")
@click.option("--seed", type=click.IntRange(0), default=0, show_default=True,
              help="Seed of the random conv weights.")
@click.option("--json", "as_json", is_flag=True, help="One JSON line per figure on stdout.")
def demo_cmd(out_dir: str, image: str | None, seed: int, as_json: bool) -> int:
    """The lecture's tour: every figure as a labelled montage, plus an overview.

    \b
    convcli demo --out-dir tour/                  on the bundled cat
    convcli demo --image sample_images/chelsea.png --out-dir tour/   on your own photo
    """
    import json
    import os

    from convcli.io.decode import read_image
    from convcli.io.encode import encode_image
    from convcli.io.files import write_atomic
    from convcli.run.plan import check_paths, make_output_folders
    from convcli.teach.demo import FIGURE_FILES, build_figures, bundled_cat_path, shape_chain

    src = image or bundled_cat_path()
    paths = {name: os.path.join(out_dir, name) for name in FIGURE_FILES}
    planned = [("figure", path) for path in paths.values()]
    check_paths([src], planned)  # before the image is read
    img = read_named(read_image, src, "--image")
    h, w, c = img.color.shape
    if c not in (1, 3):  # a .npy of 2 or 5 channels: the panels draw grey or colour
        msg = f"--image {src}: {c} channels; the tour needs a grey or colour (RGB) image"
        raise UsageError(msg)
    if min(h, w) < 3:  # figure 05 runs a 3x3 kernel without padding
        msg = f"--image {src}: {w}x{h} (WxH) is too small for the tour, which needs at least 3x3 pixels"
        raise UsageError(msg)
    color = img.color * (255.0 / img.header.maxval) if img.header.maxval != 255 else img.color
    make_output_folders(planned)  # checked above; made once the image is known to make a tour
    for fig in build_figures(color, seed=seed):
        path = paths[fig.file_name]  # a figure not planned is a KeyError: a bug, never an unchecked write
        data = fig.animation or encode_image(fig.image, None, "png")[0]
        write_atomic(path, data)
        if as_json:
            click.echo(json.dumps({"figure": fig.name, "title": fig.title, "output": path,
                                   "pipelines": fig.records}))
            continue
        click.echo(f"{path}  {fig.title}")
        for rec in fig.records:
            ops = ", ".join(s["op"] + (f" {s['kernel']}" if s.get("kernel") else "") for s in rec["stages"])
            click.echo(f"    {ops}: {shape_chain(rec)}")
    return 0
