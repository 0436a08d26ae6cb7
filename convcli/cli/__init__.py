"""The command-line edge: the ``convcli`` group, its commands, and errors -> exit statuses.

Errors are typed (:mod:`convcli.errors`) everywhere below; only ``main`` turns
them into one line on stderr and an exit status. ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import os
import sys

import click

from convcli.cli.app import cli
from convcli.errors import ConvcliError, ExitStatus

__all__ = ["cli", "main"]


def _quiet_broken_pipe() -> None:
    # The reader went away (``convcli ... | head``): stop writing, say nothing.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass


#: Click >= 8.2 raises this for a bare group invocation; its show() prints the help.
_NO_ARGS_IS_HELP: type[BaseException] = getattr(click.exceptions, "NoArgsIsHelpError", ())  # type: ignore[assignment]


def main(argv: list[str] | None = None, prog_name: str = "convcli") -> None:
    """Entry point of the ``convcli`` script and ``python -m convcli``."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        status = cli.main(args=argv, prog_name=prog_name, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("convcli: interrupted", err=True)
        status = ExitStatus.INTERRUPTED
    except KeyboardInterrupt:
        if debug:
            raise
        click.echo("convcli: interrupted", err=True)
        status = ExitStatus.INTERRUPTED
    except click.exceptions.Exit as e:
        status = e.exit_code
    except click.UsageError as e:
        if isinstance(e, _NO_ARGS_IS_HELP):  # bare ``convcli``: Click prints the help
            e.show()
        else:  # one line, as every other error (SPEC §5), with where to look
            where = e.ctx.command_path if e.ctx is not None else prog_name
            message = " ".join(e.format_message().split())
            click.echo(f"convcli: error: {message} (see '{where} --help')", err=True)
        status = e.exit_code
    except click.ClickException as e:
        e.show()
        status = e.exit_code
    except BrokenPipeError:
        _quiet_broken_pipe()
        status = ExitStatus.OK
    except ConvcliError as e:
        if debug:
            raise
        click.echo(f"convcli: error: {e}", err=True)
        status = e.exit_status
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_broken_pipe()
    sys.exit(int(status or 0))
