"""The ``convcli`` group and the registration of every command."""

from __future__ import annotations

import sys
from importlib import import_module
from typing import Any, NamedTuple

import click

from convcli.cli.errors import run_main, split_debug, stops_carried

#: command -> (module, attribute, one-line help). Commands are imported when used,
#: so ``convcli --help`` and ``convcli shape`` don't pay for NumPy, Pillow or Rich.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "filter": ("image", "filter_cmd", "Apply any kernel (cross-correlation, like PyTorch)."),
    "blur": ("image", "blur_cmd", "Gaussian or box blur."),
    "edges": ("image", "edges_cmd", "Edge detection: prewitt (the lecture's K_v/K_h), sobel, scharr..."),
    "downsample": ("image", "downsample_cmd", "Strided convolution: 224 -> 112 -> 56."),
    "sharpen": ("image", "sharpen_cmd", "Unsharp mask, as ImageMagick's -unsharp RxS+A+T."),
    "chain": ("chain", "chain_cmd", "Several stages (incl. conv layers, ReLU) in one float32 pass."),
    "kernels": ("info", "kernels_cmd", "The kernel registry with matrices."),
    "shape": ("info", "shape_cmd", "The output-size arithmetic alone, no image."),
    "padding": ("info", "padding_cmd", "Padding modes: every library's name, drawn on a row."),
    "explain": ("teach", "explain_cmd", "One output pixel computed step by step, as the lecture does."),
    "demo": ("teach", "demo_cmd", "The lecture's tour: every figure as a labelled montage."),
    "learn": ("learn", "learn_cmd", "Find the kernel that turns an input into a target (descent or lstsq)."),
    "animate": ("animate", "animate_cmd", "The sliding window (or im2col) animated: GIF, APNG, WebP."),
}


class CliState(NamedTuple):
    """What the group passes to every command (``ctx.obj``); immutable."""

    debug: bool = False


class ConvcliGroup(click.Group):
    """A group whose standalone ``main()`` is convcli's entry point.

    Typed errors become one line and an exit status, and a command's returned
    status becomes the exit status, whether the group runs as the ``convcli``
    script, as ``python -m convcli`` or under ``click.testing.CliRunner``.
    """

    def invoke(self, ctx: click.Context) -> Any:
        with stops_carried():
            return super().invoke(ctx)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[cmd_name]
        cmd: click.Command = getattr(import_module(f"convcli.cli.commands.{module}"), attr)
        return cmd

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, COMMANDS[name][2]) for name in self.list_commands(ctx)])

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        argv, debug = split_debug(list(args) if args is not None else sys.argv[1:])
        extra.pop("obj", None)
        name = prog_name or "convcli"

        def call() -> Any:
            return super(ConvcliGroup, self).main(argv, name, complete_var, standalone_mode=False,
                                                  obj=CliState(debug=debug), **extra)

        sys.exit(run_main(call, debug=debug, prog_name=name))


@click.group(cls=ConvcliGroup,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(None, "--version", package_name="convcli", prog_name="convcli")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors (accepted anywhere on the line).")
def cli(debug: bool) -> None:
    """Apply convolution filters to images, with PyTorch-style shape reports.

    \b
    convcli filter cat.png --kernel sharpen     sharpen, write cat.sharpen.png, print the report
    convcli shape 224x224 --size 3 -s 2 --pad 1  the shape arithmetic alone
    convcli kernels                             the kernel registry

    Exit status: 0 all inputs done; 1 one or more inputs failed (the others are
    done); 2 usage error (bad flag, bad kernel, impossible shape); 130 interrupted
    (Ctrl-C); 143 terminated (SIGTERM); 129 hung up (SIGHUP).
    """
