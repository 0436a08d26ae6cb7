"""The ``convcli`` group and the registration of every command."""

from __future__ import annotations

import click

from .. import __version__
from .image import IMAGE_COMMANDS
from .info import INFO_COMMANDS


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="convcli")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
def cli(debug: bool) -> None:
    """Apply convolution filters to images, with PyTorch-style shape reports.

    \b
    convcli filter cat.png --kernel sharpen     sharpen, write cat.sharpen.png, print the report
    convcli shape 224x224 -k 3 -s 2 --pad 1     the shape arithmetic alone
    convcli kernels                             the kernel registry

    Exit status: 0 all inputs done; 1 one or more inputs failed (the others are
    done); 2 usage error (bad flag, bad kernel, impossible shape); 130 interrupted.
    """


for _cmd in IMAGE_COMMANDS + INFO_COMMANDS:
    cli.add_command(_cmd)
