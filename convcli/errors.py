"""Typed errors of convcli and the exit statuses they map to.

The numeric core and the I/O layer raise these; only the CLI edge
(:mod:`convcli.cli.errors`) turns them into one-line messages and exit statuses.
"""

from __future__ import annotations

import signal
from enum import IntEnum


class ExitStatus(IntEnum):
    """Process exit statuses, the one table (README, "Failure")."""

    OK = 0
    FAILURE = 1  # one or more inputs failed; the others are done
    USAGE = 2  # bad flag, bad kernel, impossible shape, a planned file that would overwrite an input
    HANGUP = 129  # SIGHUP (128 + SIGHUP): the terminal or ssh session it ran in was closed
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)
    TERMINATED = 143  # SIGTERM (128 + SIGTERM)


#: The signals that stop a run, each with the line convcli says and its exit status: the one table
#: (the start-up handler, the CLI's, the pool's deferral and its workers all take their signals from it).
STOP_SIGNALS: dict[int, tuple[str, ExitStatus]] = {
    signal.SIGINT: ("interrupted", ExitStatus.INTERRUPTED),
    signal.SIGTERM: ("terminated", ExitStatus.TERMINATED),
    # SIGHUP: not on Windows
    **({signal.SIGHUP: ("hung up", ExitStatus.HANGUP)} if hasattr(signal, "SIGHUP") else {}),
}


def handled_stop_signals() -> tuple[int, ...]:
    """The stop signals convcli handles: those not ignored now. One the process was started ignoring
    stays ignored (``nohup`` ignores SIGHUP, a script's background job SIGINT): convcli set its own
    handler over them and stopped where the user had asked it to keep going."""
    return tuple(s for s in STOP_SIGNALS if signal.getsignal(s) is not signal.SIG_IGN)


class ConvcliError(Exception):
    """Base class. ``exit_status`` says how the CLI ends when this escapes."""

    exit_status: ExitStatus = ExitStatus.FAILURE


class UsageError(ConvcliError, ValueError):
    """The request itself is wrong: a bad kernel, mode, size or shape."""

    exit_status = ExitStatus.USAGE


class InputError(ConvcliError):
    """One input could not be read or decoded (missing, corrupt, too large...)."""

    exit_status = ExitStatus.FAILURE


class OutputError(ConvcliError):
    """One output could not be written (read-only folder, full disk...)."""

    exit_status = ExitStatus.FAILURE


def quoted(value: object, limit: int = 24) -> str:
    """A value as an error message repeats it, its middle cut past ``limit`` characters (a 5000-digit
    size was echoed whole, a 5000-character error line)."""
    text = str(value)
    return text if len(text) <= limit else f"{text[: limit - 10]}...{text[-6:]}"
