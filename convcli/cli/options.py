"""Options shared by the image commands, defined once as decorator stacks."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import click

from convcli.core.padding import ALL_NAMES
from convcli.core.pixels import RANGE_POLICIES
from convcli.core.shapes import MAX_GEOMETRY, GeometrySpec, Pair, parse_pair
from convcli.errors import UsageError
from convcli.io.formats import FORMAT_ALIASES, FORMATS

if TYPE_CHECKING:
    from convcli.run.spec import RunSpec

F = TypeVar("F", bound=Callable[..., Any])


class PairType(click.ParamType):
    """``N`` or ``Y,X`` integers >= minimum."""

    name = "N|Y,X"

    def __init__(self, what: str, minimum: int = 1, maximum: int = MAX_GEOMETRY) -> None:
        self.what = what
        self.minimum = minimum
        self.maximum = maximum

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Pair:
        if isinstance(value, tuple):
            return value  # type: ignore[return-value]
        try:
            return parse_pair(str(value), self.what, self.minimum, self.maximum)
        except UsageError as e:
            self.fail(str(e), param, ctx)


class FiniteFloat(click.ParamType):
    """A finite float (NaN and infinities refused), optionally within [minimum, maximum]."""

    name = "float"

    def __init__(self, minimum: float | None = None, maximum: float | None = None,
                 min_open: bool = False) -> None:
        self.minimum = minimum
        self.maximum = maximum
        self.min_open = min_open

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float) and math.isfinite(value):
            number = value
        else:
            try:
                number = float(str(value).replace("\u2212", "-"))
            except ValueError:
                self.fail(f"{str(value)[:40]!r} is not a number", param, ctx)
            if not math.isfinite(number):
                self.fail(f"must be a finite number, got {value!r}", param, ctx)
        if self.minimum is not None and (number < self.minimum or (self.min_open and number == self.minimum)):
            self.fail(f"must be {'>' if self.min_open else '>='} {self.minimum:g}, got {value}", param, ctx)
        if self.maximum is not None and number > self.maximum:
            self.fail(f"must be <= {self.maximum:g}, got {value}", param, ctx)
        return number


class FramesType(click.ParamType):
    """``all``, ``first`` or frame indices from 0, ``N,M,...`` -> None, (0,) or the indices."""

    name = "all|first|N,M"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value is None or isinstance(value, tuple):
            return value
        text = str(value).strip().lower()
        if text == "all":
            return None
        if text == "first":
            return (0,)
        try:
            indices = tuple(int(v) for v in text.split(","))
        except ValueError:
            indices = ()
        if not indices or min(indices) < 0:
            self.fail(f"give all, first or frame numbers from 0 joined by commas, not {value!r}", param, ctx)
        twice = next((i for n, i in enumerate(indices) if i in indices[:n]), None)
        if twice is not None:  # 0,0,0 wrote frame 0 three times, as "3 of 3 frames"
            self.fail(f"frame {twice} is given twice in {value!r}", param, ctx)
        return indices


class PaddingType(click.Choice):
    """A padding mode or alias, case-insensitive; returns the canonical name."""

    def __init__(self) -> None:
        super().__init__(list(ALL_NAMES), case_sensitive=False)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from convcli.core.padding import resolve_mode

        try:
            v = super().convert(value, param, ctx)
        except click.BadParameter:
            import difflib

            key = str(value).strip().lower()
            close = difflib.get_close_matches(key, ALL_NAMES, n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            self.fail(f"unknown padding mode {str(value)[:40]!r}{hint} (choose from: {', '.join(ALL_NAMES)})",
                      param, ctx)
        return resolve_mode(v).name


def stack(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    """One decorator of several, applied as if written one above the other (the first on top)."""

    def deco(fn: F) -> F:
        for d in reversed(decorators):
            fn = d(fn)
        return fn

    return deco


#: ``--normalize`` and ``--scale F``: the kernel's gain, as filter and explain take it
#: (:func:`convcli.cli.kernelspec.user_kernel`).
kernel_gain_options = stack(
    click.option("--normalize", is_flag=True, help="Divide the kernel by its sum."),
    click.option("--scale", type=FiniteFloat(), default=None, help="Multiply the kernel by F."),
)


def geometry_options(default_padding: str = "reflection", stride: bool = True) -> Callable[[F], F]:
    """-s/--stride, -d/--dilation, -p/--padding, --pad."""

    def deco(fn: F) -> F:
        opts: list[Callable[[F], F]] = []
        if stride:
            opts.append(click.option("-s", "--stride", type=PairType("--stride"), default="1",
                                     show_default=True, help="Step of the kernel: N or Y,X."))
        opts += [
            click.option("-d", "--dilation", type=PairType("--dilation"), default="1", show_default=True,
                         help="Spacing between kernel taps: N or Y,X."),
            click.option("-p", "--padding", type=PaddingType(), default=default_padding, show_default=True,
                         help="Padding mode: zeros, border, reflection, symmetric, circular, valid "
                              "(aliases: constant, replicate/edge/nearest, reflect/mirror/reflect101, "
                              "wrap, none). See 'convcli padding'."),
            click.option("--pad", "pad", default=None, metavar="same|N|Y,X|T,B,L,R",
                         help="Padding amount. Default 'same': total d*(k-1), before = total//2. "
                              f"Stride, dilation and pad values are at most {MAX_GEOMETRY}."),
        ]
        return stack(*opts)(fn)

    return deco


def check_png_name(flag: str, path: str | None) -> None:
    """A picture convcli writes as PNG (--montage, learn's --curve, kernels --response -o) needs a
    name ending in .png: m.jpg was PNG data under a .jpg name."""
    if path is not None and not path.lower().endswith(".png"):
        msg = f"{flag} {path!r}: the picture is written as PNG; give a path ending in .png"
        raise UsageError(msg)


def geometry_spec(p: Mapping[str, Any], stride: Pair | None = None) -> GeometrySpec:
    """The one place that reads :func:`geometry_options`' four flags: a frozen GeometrySpec
    (``stride`` for a command without -s: downsample's --factor, sharpen's 1)."""
    return GeometrySpec(stride=stride or p.get("stride") or (1, 1), dilation=p.get("dilation") or (1, 1),
                        padding=p["padding"], pad=p.get("pad"))


def images_argument(fn: F) -> F:
    """The IMAGES... argument of the standalone image commands (chain takes -i instead)."""
    return click.argument("images", nargs=-1, required=True, metavar="IMAGES...")(fn)


def _canonical_format(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """``--format jpg`` is ``jpeg``: one name for each format past the parser."""
    return None if value is None else FORMAT_ALIASES.get(value.lower(), value.lower())


def io_options(fn: F) -> F:
    """Output, report and engine options common to every image command and to chain."""
    opts: list[Callable[[F], F]] = [
        click.option("--gray", is_flag=True, help="Convert to luminance (ITU-R 601-2, as Pillow's L) first."),
        click.option("--linear-light", is_flag=True,
                     help="Filter in linear light: decode sRGB first, re-encode after (blurs stay bright)."),
        click.option("-o", "--output", default=None, metavar="PATH",
                     help="Output file for a single input; '-' writes the image to stdout."),
        click.option("--out-dir", default=None, metavar="DIR", help="Write outputs into DIR (created)."),
        click.option("--name", "name_template", default=None, metavar="TEMPLATE",
                     help="Output name template, default '{stem}.{op}{ext}' beside the input. "
                          "Fields: {stem} {ext} {op} {parent} {name} (the input's file name)."),
        click.option("--format", "fmt", type=click.Choice([*FORMATS, *FORMAT_ALIASES], case_sensitive=False),
                     default=None, callback=_canonical_format,
                     help="Output format (default: from the output name's extension); jpg and tif "
                          "are jpeg and tiff."),
        click.option("--range", "range_policy", type=click.Choice(list(RANGE_POLICIES)),
                     default=None,
                     help="Floats back to pixels: clip (round half to even, clip), abs (|x| then clip), "
                          "normalize (min..max to full range). Default: the command's."),
        click.option("--bit-depth", type=click.Choice(["8", "16", "float"]), default=None,
                     help="Output bit depth (default: the input's). 'float': raw float32 (TIFF/.npy)."),
        click.option("--quality", type=click.IntRange(1, 100), default=None,
                     help="JPEG/WebP quality (default 90)."),
        click.option("--compress-level", type=click.IntRange(0, 9), default=None,
                     help="PNG zlib level 0-9 (default 1: fast; 6: ~25% smaller, ~2x slower overall)."),
        click.option("--frames", type=FramesType(), default="all", show_default=True,
                     help="Frames of an animation (GIF, APNG, WebP) or pages of a TIFF to filter: all, "
                          "first, or numbers from 0 (2,5). Several need a GIF, PNG, WebP or TIFF output."),
        click.option("--dither/--no-dither", default=True, show_default=True,
                     help="Floyd-Steinberg dithering when a GIF frame has more than 256 colours."),
        click.option("--strip", is_flag=True,
                     help="Write no metadata: EXIF, DPI, XMP, text, comment and the ICC profile dropped."),
        click.option("--float64", is_flag=True, help="Do the arithmetic in float64 (default float32)."),
        click.option("--method", type=click.Choice(["auto", "direct", "separable", "fft", "im2col"]),
                     default="auto", show_default=True, help="Force an engine method."),
        click.option("--threads", type=click.IntRange(1, 256), default=None,
                     help="Threads per image (default: all cores)."),
        click.option("--json", "as_json", is_flag=True,
                     help="Print the shape report as JSON Lines on stdout, one object per input (errors "
                          "too), flushed per line, in the order inputs finish (--ordered: input order)."),
        click.option("-q", "--quiet", is_flag=True,
                     help="No report and no summary line (errors still go to stderr)."),
        click.option("--dry-run", is_flag=True,
                     help="Report shapes from the image header alone; decode and write nothing."),
        click.option("--montage", default=None, metavar="PATH",
                     help="Also write the input and every stage's output side by side, labelled."),
        click.option("--emit", type=click.Choice(["torch", "opencv", "scipy", "magick"]), default=None,
                     help="Print the equivalent code in that library instead of running."),
        click.option("--recursive", is_flag=True, help="Descend into directories given as inputs."),
        click.option("-j", "--jobs", type=click.IntRange(1, 1024), default=None,
                     help="Worker processes for batches (default: all cores; 1 = in this process). "
                          "Results are reported as inputs finish, so their order may vary; see --ordered."),
        click.option("--ordered", is_flag=True,
                     help="Report results (JSON lines included) in input order, not as they finish."),
        click.option("--fail-fast", is_flag=True,
                     help="Stop at the first failed input: start no more, exit 1 (2 for a usage error)."),
        click.option("--dask", "dask_address", default=None, metavar="ADDRESS",
                     help="Run the inputs as tasks on a dask.distributed scheduler, e.g. tcp://host:8786 "
                          "(pip install 'convcli[dask]'); the workers must see the same files. Dask's "
                          "protocol unpickles: use only a scheduler and workers you trust."),
        click.option("--max-pixels", type=click.IntRange(1), default=None,
                     help="Refuse images with more pixels, and any stage output above it (default: "
                          "Pillow's limit, 89478485)."),
    ]
    return stack(*opts)(fn)


def run_spec(p: Mapping[str, Any]) -> RunSpec:
    """The one place that reads the shared flags: click's parsed values -> a frozen :class:`RunSpec`."""
    from convcli.cli.app import CliState
    from convcli.io.decode import DEFAULT_MAX_PIXELS
    from convcli.pipeline import EngineOptions
    from convcli.run.spec import BatchOptions, OutputSpec, ReportOptions, RunSpec

    for key, flag, what in (("output", "-o/--output", "a file"), ("out_dir", "--out-dir", "a folder"),
                            ("name_template", "--name", "a template such as '{stem}.{op}{ext}'"),
                            ("montage", "--montage", "a .png file")):
        if p.get(key) is not None and not str(p[key]).strip():  # '' was read as "not given", or as "."
            msg = f"{flag} is empty (an unset shell variable?): give {what}"
            raise UsageError(msg)
    if p.get("montage") == "-":  # it made a file named '-' in the current folder
        msg = "--montage - : a montage is written to a file, not to stdout; give a .png file"
        raise UsageError(msg)
    check_png_name("--montage", p.get("montage"))
    ctx = click.get_current_context(silent=True)
    state = ctx.find_object(CliState) if ctx is not None else None
    return RunSpec(
        images=tuple(p["images"]),
        recursive=p["recursive"],
        gray=p["gray"],
        linear_light=p["linear_light"],
        max_pixels=p["max_pixels"] or DEFAULT_MAX_PIXELS,
        output=OutputSpec(output=p["output"], out_dir=p["out_dir"], name_template=p["name_template"],
                          fmt=p["fmt"], range_policy=p["range_policy"], bit_depth=p["bit_depth"],
                          quality=p["quality"], compress_level=p["compress_level"], montage=p["montage"],
                          frames=p["frames"], dither=p["dither"], strip=p["strip"]),
        engine=EngineOptions(dtype="float64" if p["float64"] else "float32", method=p["method"],
                             threads=p["threads"]),
        batch=BatchOptions(jobs=p["jobs"], ordered=p["ordered"], fail_fast=p["fail_fast"],
                           dask_address=p["dask_address"]),
        report=ReportOptions(as_json=p["as_json"], quiet=p["quiet"], dry_run=p["dry_run"],
                             debug=bool(state and state.debug)),
        emit=p["emit"],
    )


def parse_at(text: str, meaning: str) -> tuple[int, int]:
    """``--at X,Y``: two integers >= 0, column then row; ``meaning`` says what the pixel is."""
    try:
        xs = [int(v) for v in text.replace(" ", "").split(",")]
    except ValueError:
        xs = []
    if len(xs) != 2 or min(xs) < 0:
        msg = f"--at must be X,Y ({meaning}, column then row, from 0), got {text!r}"
        raise UsageError(msg)
    return xs[0], xs[1]
