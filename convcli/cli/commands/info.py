"""Commands that need no image: kernels, shape, padding."""

from __future__ import annotations

import json
import re
import sys
from typing import Any

import click

from convcli.cli.options import PaddingType, PairType, check_png_name
from convcli.core.kernels import MAX_KERNEL_SIZE, REGISTRY, Kernel
from convcli.core.padding import MODES, VALID_BY_LIBRARY, PadMode, pattern_row, resolve_mode
from convcli.core.shapes import Geometry, Pair, resolve_geometry
from convcli.errors import UsageError
from convcli.pipeline import CorrelateStage, Pipeline


def kernel_matrix_lines(k: Kernel) -> list[str]:
    rows = k.entries()
    width = max(len(v) for r in rows for v in r)
    return ["[" + " ".join(v.rjust(width) for v in r) + "]" for r in rows]


def kernel_record(k: Kernel) -> dict[str, Any]:
    return {"name": k.name, "shape": list(k.shape), "description": k.description,
            "sum": float(k.weights.sum()), "weights": k.weights.tolist(), "entries": k.entries()}


class _SpecFirst(click.Command):
    """``convcli kernels "-1 2 -1"``: a literal starting with a minus is the SPEC, not an unknown option
    (it needed ``--`` before it; ``filter -k "-1 2 -1"`` takes it as it is)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" not in args:
            valued = {o for p in self.params if isinstance(p, click.Option) and not p.is_flag for o in p.opts}
            literals = [i for i, a in enumerate(args)
                        if re.match(r"-[\d.]", a) and (i == 0 or args[i - 1] not in valued)]
            if len(literals) == 1:
                i = literals[0]
                args = [*args[:i], *args[i + 1:], "--", args[i]]
        return super().parse_args(ctx, args)


@click.command("kernels", cls=_SpecFirst)
@click.argument("spec", required=False, metavar="[SPEC]")
@click.option("--json", "as_json", is_flag=True, help="JSON: one object per kernel (JSON Lines).")
@click.option("--response", is_flag=True,
              help="The kernel's frequency response: |DFT| of the kernel zero-padded (needs a kernel SPEC; "
                   "-o PNG draws it).")
@click.option("--dft-size", type=click.IntRange(8, 512), default=64, show_default=True, metavar="N",
              help="With --response: the DFT grid, N x N (made even; grown to a power of two at least twice "
                   "the kernel's size, up to 2048 for the largest kernels).")
@click.option("-o", "--output", default=None, metavar="PNG", help="With --response: the picture.")
def kernels_cmd(spec: str | None, as_json: bool, response: bool, dft_size: int, output: str | None) -> int:
    """List the kernel registry with matrices and the parametric kernels with their parameters and
    defaults, or show one kernel SPEC (matrix, sum, size): a name, gaussian:sigma=2, kirsch@45, @psf.png...

    \b
    convcli kernels                          everything
    convcli kernels gabor:theta=30           one parametric kernel, built
    convcli kernels sobel-x@45 --json        one kernel as JSON
    convcli kernels sharpen --response -o sharpen-response.png
    """
    from convcli.cli.kernelspec import cli_kernel
    from convcli.core.parametric import BUILDERS

    if response or output:
        if not spec:
            msg = "--response needs a kernel SPEC: a name, a parametric spec, a literal or @FILE"
            raise UsageError(msg)
        return _response(cli_kernel(spec), as_json, dft_size, output, spec)
    ks = [cli_kernel(spec)] if spec is not None else list(REGISTRY.values())
    for k in ks:
        if as_json:
            click.echo(json.dumps(kernel_record(k)))
            continue
        click.echo(f"{k.name}  {k.shape[0]}x{k.shape[1]}  sum {k.weights.sum():.4g}  {k.description}")
        for line in kernel_matrix_lines(k):
            click.echo("    " + line)
    if spec is not None:
        return 0
    for b in BUILDERS.values():
        if as_json:
            params = [{"name": p.name, "default": p.default, "help": p.help} for p in b.params]
            click.echo(json.dumps({"name": b.name, "parametric": True, "description": b.description,
                                   "signature": b.signature(), "parameters": params}))
            continue
        click.echo(f"{b.signature()}  {b.description}")
        for p in b.params:
            click.echo(f"    {p.name:<8} {p.text().split('=', 1)[1]:<6} {p.help}")
    if not as_json:
        click.echo("NAME@ANGLE turns any 3x3 kernel in 45° steps (others in 90°), as ImageMagick: kirsch@45.")
    return 0


def _response(k: Kernel, as_json: bool, n: int, output: str | None, spec: str) -> int:
    """``kernels SPEC --response``: the magnitude of the 2-D DFT, as numbers and as a picture."""
    from convcli.teach.plots import frequency_response

    check_png_name("-o", output)
    r = frequency_response(k.weights, n)
    grid = int(r.magnitude.shape[0])
    note = (f"DFT grid {grid}x{grid}: --dft-size {n} is "
            + ("odd (an even grid reaches Nyquist)" if n % 2 and n >= 2 * max(k.shape)
               else f"under twice the kernel's {max(k.shape)} taps")) if grid != n else None
    c = r.centre
    nyq = 0  # index of -0.5 cycles/pixel after fftshift: the Nyquist frequency
    rec = {"name": k.name, "shape": list(k.shape), "dft_size": grid,
           "freqs": [float(v) for v in r.freqs], "dc_gain": float(r.magnitude[c, c]),
           "nyquist_gain": {"fx": float(r.magnitude[c, nyq]), "fy": float(r.magnitude[nyq, c]),
                            "both": float(r.magnitude[nyq, nyq])},
           "max_gain": float(r.magnitude.max()),
           "cut_fx": [float(v) for v in r.magnitude[c, :]], "cut_fy": [float(v) for v in r.magnitude[:, c]],
           "magnitude": r.magnitude.tolist()}
    if note is not None:
        rec["note"] = note
    if output is not None:
        from convcli.cli.kernelspec import kernel_files
        from convcli.io.encode import encode_image
        from convcli.io.files import write_atomic
        from convcli.run.plan import prepare_paths
        from convcli.teach.plots import response_figure

        prepare_paths(kernel_files(spec), [("response picture", output)])
        img = response_figure(r, f"{k.name} {k.shape[0]}x{k.shape[1]}: |frequency response| "
                                 f"(DFT {r.magnitude.shape[0]}x{r.magnitude.shape[0]})")
        write_atomic(output, encode_image(img, None, "png")[0])
        rec["output"] = output
    if as_json:
        import sys

        from convcli.cli.execute import write_text

        write_text(sys.stdout, json.dumps(rec) + "\n")
        return 0
    total = float(k.weights.sum())
    kind = _kind(rec, total)
    click.echo(f"{k.name}  {k.shape[0]}x{k.shape[1]}: {kind}")
    what = ("the sum of the weights" if total >= 0
            else f"the size of the weights' sum, {total:.4g}: flat areas come out negated")
    click.echo(f"  gain at DC (fx = fy = 0): {rec['dc_gain']:.4g} ({what})")
    ng = rec["nyquist_gain"]
    click.echo(f"  gain at Nyquist (0.5 cycles/pixel): along fx {ng['fx']:.4g}, along fy {ng['fy']:.4g}, "
               f"diagonal {ng['both']:.4g}")
    click.echo(f"  largest gain: {rec['max_gain']:.4g}")
    if note is not None:
        click.echo(f"  note: {note}")
    if output is not None:
        click.echo(f"  -> {output}")
    return 0


#: Fine detail: frequencies at least this far from DC (cycles/pixel), a period under 2.5 pixels.
FINE = 0.4


def _kind(rec: dict[str, Any], total: float) -> str:
    """low-pass / high-pass / band-pass, from the gains at DC, at the edges and past ``FINE``, in words.

    Band-pass: DC under a tenth of the largest gain and every frequency past ``FINE`` under a
    quarter (a LoG, a DoG); a derivative such as Sobel still passes ~0.6 at 0.4 cycles/pixel.
    """
    import numpy as np

    if not rec["max_gain"]:
        return "zero: passes nothing (every weight is 0)"
    dc, top = rec["dc_gain"], rec["max_gain"]
    ng = rec["nyquist_gain"]
    high = max(ng["fx"], ng["fy"], ng["both"])
    mag, f = np.asarray(rec["magnitude"]), np.asarray(rec["freqs"])
    if mag.max() - mag.min() <= 1e-6 * top:
        what = "a negated identity or shift" if total < 0 else "an identity or a shift"
        return f"all-pass: every frequency at gain {top:.4g} ({what}: no detail changes)"
    if dc >= 0.99 * top and high < 0.5 * dc:
        return "low-pass (keeps slow changes, removes fine detail)"
    radius = np.hypot(f[None, :], f[:, None])  # |f| of each cell, cycles/pixel
    if dc < 0.1 * top and mag[radius >= FINE].max() < 0.25 * top:
        peak = radius.flat[int(np.argmax(mag))]
        return (f"band-pass: removes flat areas and fine detail, keeps a band around {peak:.2f} "
                "cycles/pixel (the peak)")
    if dc < 1e-9 * top:
        zero_fy = max(rec["cut_fy"]) < 1e-9 * top  # nothing passes along fx = 0
        zero_fx = max(rec["cut_fx"]) < 1e-9 * top
        cuts = ("; zero along the fy axis (fx = 0): it sees changes along x only, i.e. vertical edges"
                if zero_fy and not zero_fx else
                "; zero along the fx axis (fy = 0): it sees changes along y only, i.e. horizontal edges"
                if zero_fx and not zero_fy else "")
        return "high-pass: removes flat areas (DC gain 0)" + cuts
    if high > dc:
        return ("high-pass boost: keeps flat areas, amplifies fine detail" if dc >= 0.02 * top else
                f"high-pass: removes flat areas (DC gain {dc / top:.1%} of the largest)")
    if dc >= 0.99 * top and min(ng["fx"], ng["fy"], ng["both"]) < 0.5 * dc:
        if ng["fx"] < 0.5 * dc <= ng["fy"]:
            return "directional low-pass: smooths along x, keeps detail along y (a horizontal blur)"
        if ng["fy"] < 0.5 * dc <= ng["fx"]:
            return "directional low-pass: smooths along y, keeps detail along x (a vertical blur)"
        ring = mag[(radius >= FINE) & (radius <= 0.5)]  # fine detail in every direction
        if ring.max() > 2 * ring.min() + 0.05 * top:
            return "directional low-pass: removes fine detail in some directions only (the gains below)"
        return "mild low-pass: keeps most detail, damps only the finest, in every direction"
    return "mixed: neither low- nor high-pass (the gains below)"


def parse_size(text: str) -> tuple[int, int]:
    """``224``, ``224x224`` or ``H,W`` -> (H, W)."""
    parts = text.lower().replace(",", "x").replace("×", "x").split("x")
    try:  # every part a number: "224x" and "x224" are not sizes
        nums = [int(p) for p in parts] if len(text) <= 40 and len(parts) <= 2 else []
    except ValueError:
        nums = []
    if len(nums) == 1:
        nums = nums * 2
    if len(nums) != 2 or min(nums) < 1:
        msg = f"HxW must be N or HxW with positive integers, got {text[:40]!r}"
        raise UsageError(msg)
    return nums[0], nums[1]


@click.command("shape")
@click.argument("image_size", metavar="HxW")
@click.option("-k", "--size", "ksize", type=PairType("--size", maximum=MAX_KERNEL_SIZE), default="3",
              show_default=True, metavar="N|Y,X", help=f"Kernel size N or KH,KW (at most {MAX_KERNEL_SIZE}).")
@click.option("-s", "--stride", type=PairType("--stride"), default="1", show_default=True)
@click.option("-d", "--dilation", type=PairType("--dilation"), default="1", show_default=True)
@click.option("-p", "--padding", type=PaddingType(), default="zeros", show_default=True,
              help="Only 'valid' changes the arithmetic (no padding).")
@click.option("--pad", default=None, metavar="same|N|Y,X|T,B,L,R", help="Padding amount (default same).")
@click.option("--times", type=click.IntRange(1, 1000), default=1, show_default=True,
              help="Repeat the layer (at most 1000).")
@click.option("--channels", type=click.IntRange(1), default=1, show_default=True)
@click.option("--json", "as_json", is_flag=True,
              help="One report record (as the image commands' --json) without input/output.")
def shape_cmd(image_size: str, ksize: Pair, stride: Pair, dilation: Pair, padding: str, pad: str | None,
              times: int, channels: int, as_json: bool) -> int:
    """The output-size arithmetic alone, no image.

    \b
    convcli shape 224x224 --size 3 -s 2 --pad 1 --times 2
    224x224 -> 112x112 -> 56x56
    """
    h, w = parse_size(image_size)
    mode, pad4 = resolve_geometry(padding, pad, ksize, dilation)
    kernel = Kernel(f"{ksize[0]}x{ksize[1]}", [[1.0] * ksize[1]] * ksize[0])
    stage = CorrelateStage(op="conv", kernel=kernel, stride=stride, dilation=dilation, padding=mode, pad=pad4)
    plans = Pipeline((stage,) * times).plan((channels, h, w))
    stages = [p.record() for p in plans]
    for s in stages:
        s["kernel"] = None
    notes = [f"stage {i}: {note}" for i, p in enumerate(plans, start=1) if (note := p.torch_note())]
    if (pad is None or pad.strip().lower() == "same") and stride != (1, 1) and mode.name != "valid":
        notes.append(f"'same' pads {','.join(map(str, pad4))}, the amount that keeps the size at stride 1; "
                     "PyTorch's padding='same' refuses strides > 1: there, write "
                     + _torch_padding(mode, pad4))
    if as_json:
        rec = {"status": "ok", "input_shape": [1, channels, h, w], "output_shape": stages[-1]["output_shape"],
               "stages": stages, **({"notes": notes} if notes else {})}
        click.echo(json.dumps(rec))
        return 0
    from convcli.report import pair_text

    chain = [f"{h}x{w}"] + [f"{p.out_shape[1]}x{p.out_shape[2]}" for p in plans]
    click.echo(" -> ".join(chain))
    for i, (p, s) in enumerate(zip(plans, stages, strict=True), start=1):
        g: Geometry = p.stage.geometry()
        click.echo(f"  {i}. k {g.ksize[0]}x{g.ksize[1]} stride {g.stride[0]},{g.stride[1]} "
                   f"dilation {g.dilation[0]},{g.dilation[1]} pad {','.join(map(str, g.pad))} ({mode.name}): "
                   f"{s['input_shape']} -> {s['output_shape']}  rf {pair_text(s['receptive_field'])} "
                   f"jump {pair_text(s['jump'])}")
        click.echo(f"     {s['arithmetic']}")
    for note in notes:
        click.echo(f"  note: {note}")
    return 0


def _torch_padding(mode: PadMode, pad4: tuple[int, int, int, int]) -> str:
    """What PyTorch takes for these pads in this mode: Conv2d's padding= (and padding_mode=) when top
    equals bottom and left right, else F.pad first; numpy.pad for a mode PyTorch lacks (symmetric)."""
    t, b, left, right = pad4
    if mode.torch is None:
        return (f"numpy.pad's mode='{mode.numpy}' ({t}, {b}) rows and ({left}, {right}) columns first, then "
                "padding=0")
    if (t, left) == (b, right):
        arg = f"padding={t}" if t == left else f"padding=({t}, {left})"
        return arg + (f", padding_mode='{mode.torch}'" if mode.torch != "zeros" else "")
    pad_mode = "constant" if mode.torch == "zeros" else mode.torch
    return f"F.pad(x, ({left}, {right}, {t}, {b}), mode='{pad_mode}') first and padding=0"


LIBRARY_COLUMNS = ("numpy", "scipy", "opencv", "torch", "magick")


def padding_record(m: PadMode) -> dict[str, Any]:
    return {"mode": m.name, "aliases": list(m.aliases), **{lib: getattr(m, lib) for lib in LIBRARY_COLUMNS},
            "pattern": pattern_row(m), "description": m.description}


def _in_library(m: PadMode, lib: str) -> str | None:
    """How ``lib`` spells mode ``m``: its mode name, or for 'valid' how it gets no padding."""
    return getattr(m, lib) or (VALID_BY_LIBRARY[lib] if m.name == "valid" else None)


@click.command("padding")
@click.argument("mode", required=False)
@click.option("--json", "as_json", is_flag=True, help="JSON Lines, one object per mode.")
def padding_cmd(mode: str | None, as_json: bool) -> int:
    """The padding-name translator: each mode's name in every library, drawn on a row.

    \b
    convcli padding reflection
    reflection: 3 2 | 1 2 3 4 5 | 4 3
    """
    modes = [resolve_mode(mode)] if mode else list(MODES.values())
    if as_json:
        for m in modes:
            click.echo(json.dumps(padding_record(m)))
        return 0
    if sys.stdout.isatty() and not mode:
        from rich.console import Console
        from rich.table import Table

        t = Table(title="padding modes (convcli name first; — = the library has no such mode)")
        for col in ("convcli", "aliases", *LIBRARY_COLUMNS, "row 1..5 padded by 2"):
            t.add_column(col)
        for m in modes:
            t.add_row(m.name, ", ".join(m.aliases) or "—",
                      *[_in_library(m, lib) or "—" for lib in LIBRARY_COLUMNS], pattern_row(m))
        Console().print(t)
        return 0
    for m in modes:
        click.echo(f"{m.name}: {pattern_row(m)}")
        click.echo(f"  {m.description}")
        # quoted: 'valid' has the alias none, which unquoted read as "no aliases"
        click.echo(f"  aliases: {', '.join(repr(a) for a in m.aliases) or '—'}")
        for lib in LIBRARY_COLUMNS:
            click.echo(f"  {lib:<7} {_in_library(m, lib) or '— (not available)'}")
    return 0
