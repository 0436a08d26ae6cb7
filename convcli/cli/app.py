"""The ``convcli`` group and the registration of every command."""

from __future__ import annotations

from typing import Any

import click

from .. import __version__
from .chain import chain_cmd
from .image import IMAGE_COMMANDS
from .info import INFO_COMMANDS
from .teach import explain_cmd


class ConvcliGroup(click.Group):
    """A group whose standalone ``main()`` is convcli's entry point.

    Typed errors become one line and an exit status, and a command's returned
    status becomes the exit status, whether the group runs as the ``convcli``
    script, as ``python -m convcli`` or under ``click.testing.CliRunner``.
    """

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        from . import main

        main(list(args) if args is not None else None, prog_name=prog_name or "convcli")


@click.group(cls=ConvcliGroup,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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


for _cmd in [*IMAGE_COMMANDS, chain_cmd, *INFO_COMMANDS, explain_cmd]:
    cli.add_command(_cmd)
