"""``convcli animate``: the sliding window (or the im2col product) as a labelled GIF / APNG / WebP."""

from __future__ import annotations

import os
from typing import Any

import click
import numpy as np

from convcli.cli.errors import read_named
from convcli.cli.options import FiniteFloat, geometry_options, geometry_spec, parse_at
from convcli.errors import UsageError

#: -o extension -> animation format
_EXT = {".gif": "gif", ".png": "png", ".apng": "png", ".webp": "webp"}




def _photo_patch(image: str, at: str | None, crop: int
                 ) -> tuple[np.ndarray, np.ndarray, tuple[int, int], str]:
    """(the crop's values, the whole photo as uint8 grey, (x, y), a source line)."""

    from convcli.io.decode import read_image

    img = read_named(read_image, image, "IMAGE", gray=True)
    # luminance rounded half to even, as the grey image convcli would write
    lum = np.rint(img.color[:, :, 0].astype(np.float64))
    h, w = lum.shape
    if crop > min(h, w):
        msg = f"IMAGE {image}: --crop {crop} is larger than the image ({w}×{h}, W×H)"
        raise UsageError(msg)
    x, y = parse_at(at, "the crop's top-left pixel") if at is not None else ((w - crop) // 2, (h - crop) // 2)
    if x + crop > w or y + crop > h:
        msg = (f"IMAGE {image}: --at {x},{y} --crop {crop} reaches outside the image ({w}×{h}, W×H): "
               f"x must be 0..{w - crop} and y 0..{h - crop}")
        raise UsageError(msg)
    patch = lum[y:y + crop, x:x + crop]
    scale = 255.0 / img.header.maxval
    photo = np.clip(np.rint(lum * scale), 0, 255).astype(np.uint8)
    name = os.path.basename(image)
    return patch, photo, (x, y), f"{name}: {crop}×{crop} patch at x={x}, y={y} (luminance, rounded)"


@click.command("animate")
@click.argument("image", required=False)
@click.option("-k", "--kernel", "kernel_spec", default="sharpen", show_default=True, metavar="SPEC",
              help="Kernel: registry name, literal or @file (any size or shape).")
@click.option("-o", "--output", required=True, metavar="PATH",
              help="Animation file: .gif, .png (APNG) or .webp; with --frame, a .png still. "
                   "Missing folders are created.")
@click.option("--input-size", type=click.IntRange(1, 16), default=None, metavar="N",
              help="Side of the input grid (default 5).")
@click.option("--numbers", is_flag=True,
              help="Fill the input with small integers and show each sum of products.")
@click.option("--patch", default=None, metavar="MATRIX",
              help='The input values as a literal, e.g. "10 20 30; 40 50 60; 70 80 90" (implies --numbers).')
@click.option("--at", "at", default=None, metavar="X,Y",
              help="With IMAGE: top-left pixel of the crop (default: the centre crop).")
@click.option("--crop", type=click.IntRange(1, 16), default=None, metavar="N",
              help="With IMAGE: side of the crop animated (default 8).")
@click.option("--transposed", is_flag=True,
              help="Animate the transposed convolution (zeros inserted between inputs, flipped kernel).")
@click.option("--output-padding", type=click.IntRange(0), default=0, show_default=True, metavar="A",
              help="With --transposed: A extra rows and columns at the bottom and right (PyTorch's).")
@click.option("--unroll", is_flag=True,
              help="Animate im2col: the matrix row by row, then one matrix product.")
@click.option("--flip", is_flag=True, help="Rotate the kernel 180° (true convolution).")
@click.option("--fps", type=FiniteFloat(0.1, 50), default=2.0, show_default=True,
              help="Frames per second (the first and last frames last 3 frames).")
@click.option("--frame", "frame", type=int, default=None, metavar="N",
              help="Write frame N alone as a PNG (0 = before the first output, -1 = the last).")
@geometry_options(default_padding="zeros")
def animate_cmd(image: str | None, kernel_spec: str, output: str, input_size: int | None, numbers: bool,
                patch: str | None, at: str | None, crop: int | None, transposed: bool, output_padding: int,
                unroll: bool, flip: bool, fps: float, frame: int | None, **p: Any) -> int:
    """The sliding window drawn frame by frame, every grid labelled (Dumoulin & Visin's pictures).

    \b
    convcli animate -k sharpen -s 2 --pad 1 -o anim/conv.gif
    convcli animate --patch "10 20 30; 40 50 60; 70 80 90" -k sharpen -p valid -o anim/lecture.gif
    convcli animate sample_images/cat224.png --at 100,60 --crop 6 -k sobel-x -o anim/cat.png
    convcli animate --numbers --transposed -s 2 --pad 1 --input-size 3 -o anim/transposed.gif
    convcli animate --numbers --unroll --input-size 4 -p reflection -o anim/unroll.png --frame -1
    """
    from convcli.cli.kernelspec import cli_kernel, kernel_files, parse_patch
    from convcli.io.files import write_atomic
    from convcli.run.plan import prepare_paths
    from convcli.teach.animate import AnimateSettings, animate, encode_animation, encode_still, small_integers

    ext = os.path.splitext(output)[1].lower()
    if frame is not None:
        if ext != ".png":
            msg = f"--frame writes a PNG still: give -o NAME.png, not {output!r}"
            raise UsageError(msg)
        fmt = "still"
    elif ext in _EXT:
        fmt = _EXT[ext]
    else:
        msg = f"-o {output!r}: the animation format comes from the extension: .gif, .png (APNG) or .webp"
        raise UsageError(msg)
    if sum(x is not None for x in (image, patch, input_size)) > 1:
        msg = "give one input: IMAGE, --patch or --input-size"
        raise UsageError(msg)
    if image is None and (at is not None or crop is not None):
        msg = "--at and --crop take an IMAGE"
        raise UsageError(msg)
    kernel = cli_kernel(kernel_spec)
    prepare_paths([*([image] if image else []), *kernel_files(kernel_spec)], [("animation", output)])
    if flip:
        kernel = kernel.flipped()
    geo = geometry_spec(p)
    pad4 = geo.resolve(kernel.shape)[1]
    values = photo = box = None
    source = ""
    if patch is not None:
        values = parse_patch(patch)
    elif image is not None:
        side = crop or 8
        values, photo, (x, y), source = _photo_patch(image, at, side)
        box = (x, y, side, side)
    elif numbers:
        values = small_integers(input_size or 5)
    settings = AnimateSettings(kernel=kernel, stride=geo.stride, dilation=geo.dilation, pad=pad4,
                               mode=geo.padding, input_size=input_size or 5, values=values,
                               transposed=transposed, output_padding=output_padding, unroll=unroll, fps=fps,
                               source=source, photo=photo, photo_box=box)
    anim = animate(settings)
    n = len(anim.frames)
    if fmt == "still":
        assert frame is not None
        if not -n <= frame < n:
            msg = f"--frame {frame}: this animation has {n} frames (0..{n - 1}, or -1 for the last)"
            raise UsageError(msg)
        data = encode_still(anim.frames[frame])
    else:
        data = encode_animation(anim.frames, anim.durations, fmt)
    write_atomic(output, data)
    oh, ow = anim.plan.out_hw
    what = f"frame {frame % n} of {n}" if frame is not None else f"{n} frames"
    click.echo(f"{output}: {what}, {anim.plan.labels['output']}, {len(data) / 1024:.0f} KB")
    return 0
