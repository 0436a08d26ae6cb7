"""The command-line edge: the ``convcli`` group, its commands, and errors -> exit statuses.

Errors are typed (:mod:`convcli.errors`) everywhere below; :mod:`convcli.cli.errors`
is the one place that turns them into one line on stderr and an exit status.
"""

from __future__ import annotations

from convcli.cli.app import cli

__all__ = ["cli", "main"]


def main(argv: list[str] | None = None, prog_name: str = "convcli") -> None:
    """Entry point of the ``convcli`` script and ``python -m convcli``."""
    cli.main(args=argv, prog_name=prog_name)
