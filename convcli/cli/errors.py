"""The CLI's one error handler: typed errors, Ctrl-C, SIGTERM and closed pipes -> one line and an exit status.

Everything below the CLI raises typed errors (:mod:`convcli.errors`); :func:`run_main`
is the only place that turns them into a line on stderr and an :class:`ExitStatus`.
``--debug`` (accepted anywhere on the command line) lets tracebacks through instead.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import signal
import stat
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import click

from convcli.errors import (
    STOP_SIGNALS,
    ConvcliError,
    ExitStatus,
    InputError,
    OutputError,
    handled_stop_signals,
)
from convcli.io.files import file_kind, os_reason
from convcli.report import line_text

#: Click >= 8.2 raises this for a bare group invocation; its show() prints the help.
_NO_ARGS_IS_HELP: type[BaseException] = getattr(click.exceptions, "NoArgsIsHelpError", ())  # type: ignore[assignment]


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised in the main thread so a batch stops as on Ctrl-C (its temporary files
    removed)."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__(signum)
        self.signum = signum


#: errno values of a write to stdout that failed for a reason the user can act on.
_STREAM_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EBADF, errno.EROFS})


class ReaderGone(Exception):  # noqa: N818 - how a run ended: the reader of stdout left
    """stdout was closed by its reader (``| head``), carried past click (which would exit 1 itself
    and leave the closed stream to fail again at exit)."""


class Stopped(BaseException):  # noqa: N818 - it is how a run ended, not an error
    """Ctrl-C, SIGTERM or SIGHUP (``signum``), carried past click (which would print a blank line and
    say "Aborted!")."""

    def __init__(self, signum: int) -> None:
        super().__init__(STOP_SIGNALS[signum][0])
        self.signum = signum


def _signum(exc: BaseException | None) -> int:
    """The signal a stop came from: Stopped's and Terminated's own, SIGINT for a KeyboardInterrupt."""
    return exc.signum if isinstance(exc, Stopped | Terminated) else signal.SIGINT


@contextmanager
def stops_carried() -> Iterator[None]:
    """Around a command's invocation: Ctrl-C, SIGTERM and SIGHUP leave as :class:`Stopped`; an EOFError
    that a library let escape is an error of its own, not click's "Aborted!"."""
    try:
        yield
    except KeyboardInterrupt as e:
        raise Stopped(_signum(e)) from e
    except BrokenPipeError as e:
        if not stdout_reader_gone():  # a pipe of the run's own (a worker's) broke, not stdout's reader
            msg = f"a pipe to a worker process broke: {os_reason(e)}"
            raise ConvcliError(msg) from e
        raise ReaderGone from e
    except OSError as e:
        stop = _signal_in(e)
        if stop is not None:  # a hung-up terminal: the write that failed (EIO) came after the stop
            raise Stopped(_signum(stop)) from e
        if e.errno not in _STREAM_ERRNOS:
            raise
        # files are written by io.files (OutputError) and read by io.decode (InputError): an OSError
        # this far up is a write to stdout (the report, JSON Lines, a listing) that failed
        raise OutputError(f"cannot write to standard output: {os_reason(e)}") from e
    except EOFError as e:
        msg = f"unexpected end of data ({' '.join(str(e).split()) or 'EOFError'})"
        raise ConvcliError(msg) from e


@contextmanager
def stop_signals_raise() -> Iterator[None]:
    """While a batch runs, SIGTERM and SIGHUP raise :class:`Terminated` (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise Terminated(signum)

    previous = {s: signal.signal(s, handler) for s in handled_stop_signals() if s != signal.SIGINT}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _stopped_now(signum: int) -> None:
    """Leave at once, with the stop's line and status (a third Ctrl-C during clean-up)."""
    line, status = STOP_SIGNALS[signum]
    with contextlib.suppress(OSError):  # after SIGHUP the terminal is gone (EIO): the status says it
        os.write(2, f"convcli: {line}\n".encode())
    os._exit(status)


@contextmanager
def signals_stop() -> Iterator[None]:
    """While the command line runs, Ctrl-C, SIGTERM and SIGHUP raise :class:`Stopped` (main thread only).

    Not KeyboardInterrupt: click, while it parses, would catch that and print a blank line.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    signals = 0

    def handler(signum: int, frame: Any) -> None:
        # The first signal stops the run. A second one (Ctrl-C pressed again as the run winds down)
        # must not cut the clean-up short -- workers ended, temporary files removed -- nor end in a
        # traceback: it is ignored. A third leaves at once.
        nonlocal signals
        signals += 1
        if signals == 1:
            raise Stopped(signum)
        if signals >= 3:
            _stopped_now(signum)

    previous_hook = sys.unraisablehook

    def unraisable(info: Any) -> None:
        # The signal landed in code whose exceptions Python drops (a weakref callback during an
        # import, a __del__): deliver it again, from a moment later, instead of losing it.
        nonlocal signals
        exc = info.exc_value
        if isinstance(exc, Stopped | KeyboardInterrupt):
            signals = 0  # it stopped nothing: the redelivered signal is a first one
            threading.Timer(0.005, os.kill, (os.getpid(), _signum(exc))).start()
            return
        previous_hook(info)

    previous = {s: signal.signal(s, handler) for s in handled_stop_signals()}
    sys.unraisablehook = unraisable
    try:
        yield
    finally:
        sys.unraisablehook = previous_hook
        for s, h in previous.items():
            # After a stop, the process only says so and leaves: a further Ctrl-C would cut that
            # short with a traceback, so it is ignored (the exit itself leaves at once on one).
            signal.signal(s, signal.SIG_IGN if signals else h)


def read_named(read: Callable[..., Any], path: str, label: str, **kw: Any) -> Any:
    """``read(path, **kw)``; an input error names the file and the argument it came from
    (``TARGET t.png: no such file``), as a batch names its inputs."""
    try:
        st = os.stat(path) if path != "-" else None
    except OSError:
        st = None  # missing or unreadable: read() says why
    if st is not None and not stat.S_ISREG(st.st_mode):  # a FIFO blocked learn, explain and demo
        msg = f"{label} {path}: is {file_kind(st.st_mode)}, not an image file"
        raise InputError(msg)
    if st is not None:
        from convcli.run.plan import check_stdout_is_not

        check_stdout_is_not(path)
    try:
        return read(path, **kw)
    except InputError as e:
        msg = f"{label} {path}: {e}"
        raise InputError(msg) from None


def split_debug(argv: list[str]) -> tuple[list[str], bool]:
    """``--debug`` anywhere before a ``--`` separator: removed from argv, and reported."""
    end = argv.index("--") if "--" in argv else len(argv)
    debug = "--debug" in argv[:end]
    if not debug:
        return argv, False
    return [a for a in argv[:end] if a != "--debug"] + argv[end:], True


def stdout_reader_gone() -> bool:
    """Whether stdout's reader has left: a pipe or socket that polls as broken (POLLERR/POLLHUP).

    Where that cannot be asked (no poll, no descriptor), a BrokenPipeError is taken as stdout's,
    the likeliest place for it.
    """
    import select

    try:
        fd = sys.stdout.fileno()
        poller = select.poll()
    except (AttributeError, OSError, ValueError):
        return True
    poller.register(fd, select.POLLOUT)
    try:
        events = poller.poll(0)
    except OSError:
        return True
    return any(ev & (select.POLLERR | select.POLLHUP) for _, ev in events)


def quiet_broken_pipe() -> None:
    """The reader went away (``convcli ... | head``): stop writing to stdout, say nothing."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass


def _one_line_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                      file: Any = None, line: str | None = None) -> None:
    """A warning no lower layer turned into a note: one line, without the library's path."""
    text = " ".join(str(message).split())
    sys.stderr.write(f"convcli: warning: {text}\n")


def _stopped(signum: int) -> ExitStatus:
    """The one line and the status of a run stopped by a signal (Ctrl-C, SIGTERM, SIGHUP)."""
    line, status = STOP_SIGNALS[signum]
    with contextlib.suppress(OSError, ValueError):  # a hung-up terminal takes nothing (EIO)
        click.echo(f"convcli: {line}", err=True)
    return status


def _signal_in(exc: BaseException) -> Stopped | KeyboardInterrupt | None:
    """The Stopped or KeyboardInterrupt an exception was raised from (its cause or context chain)."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, Stopped | KeyboardInterrupt):
            return cur
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return None


class ClosedStdout(io.TextIOBase):
    """Stands in for a stdout the command was started without (``>&-``), where Python puts None.

    Every write fails as a write to a closed descriptor does (EBADF), so the command's data --
    a listing, a report, an image with ``-o -`` -- ends in one error line and exit 1, where
    click would drop it in silence and ``sys.stdout.isatty()`` would raise AttributeError. A
    command with nothing to write still succeeds.
    """

    def write(self, s: str) -> int:
        raise OSError(errno.EBADF, "it is closed")

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        raise OSError(errno.EBADF, "it is closed")

    @property
    def buffer(self) -> ClosedStdout:
        return self


def stand_in_for_closed_streams() -> None:
    """A command started with stdin, stdout or stderr closed (``<&-``, ``>&-``, ``2>&-``).

    Each closed descriptor is held open on /dev/null, so that no file convcli opens later takes
    its number (an output opened as descriptor 1 would receive whatever a library writes to
    stdout). A closed stdout still fails every write (:class:`ClosedStdout`: the data had nowhere
    to go); a closed stderr takes people's text and drops it, so a failed input cannot end the
    batch; a closed stdin stays None, and reading an image from it is that input's failure.
    """
    for fd, mode in ((0, os.O_RDONLY), (1, os.O_WRONLY), (2, os.O_WRONLY)):
        try:
            os.fstat(fd)
        except OSError:
            held = os.open(os.devnull, mode)
            if held != fd:  # a lower descriptor was free after all: leave things as they were
                os.close(held)
    if sys.stdout is None:
        sys.stdout = ClosedStdout()
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - lives as long as the process


def run_main(call: Callable[[], Any], *, debug: bool, prog_name: str) -> int:
    """Run the parsed command line; every way it can end becomes one exit status."""
    stand_in_for_closed_streams()
    try:
        # From start-up on, SIGTERM and SIGHUP end the run as Ctrl-C does (exit 143, 129).
        with signals_stop(), warnings.catch_warnings():
            if not debug:
                warnings.showwarning = _one_line_warning
            status = call()
    except (Stopped, KeyboardInterrupt, click.exceptions.Abort) as e:
        if debug:
            raise
        cause = e.__cause__ if isinstance(e, click.exceptions.Abort) else e  # click wraps it in Abort
        status = _stopped(_signum(e if isinstance(e, Stopped) else cause))
    except click.exceptions.Exit as e:
        status = e.exit_code
    except click.UsageError as e:
        if isinstance(e, _NO_ARGS_IS_HELP):  # bare ``convcli``: Click prints the help
            e.show()
        else:  # one line, as every other error, with where to look
            where = e.ctx.command_path if e.ctx is not None else prog_name
            message = " ".join(e.format_message().split())
            click.echo(f"convcli: error: {message} (see '{where} --help')", err=True)
        status = e.exit_code
    except click.ClickException as e:
        e.show()
        status = e.exit_code
    except (BrokenPipeError, ReaderGone):  # not every input's data reached the reader: exit 1, quietly
        if debug:
            raise
        quiet_broken_pipe()
        status = ExitStatus.FAILURE
    except ConvcliError as e:
        if debug:
            raise
        click.echo(f"convcli: error: {line_text(str(e))}", err=True)
        status = e.exit_status
    except OSError as e:  # click's own output (--help) to a closed or full stdout
        if debug or e.errno not in _STREAM_ERRNOS:
            raise
        click.echo(f"convcli: error: cannot write to standard output: {os_reason(e)}", err=True)
        status = ExitStatus.FAILURE
    except Exception as e:
        # The signal landed where Python wraps what is raised (a class body's __set_name__ during a
        # lazy import: RuntimeError from Stopped): still the stop, not a crash.
        stop = _signal_in(e)
        if stop is None or debug:
            raise
        status = _stopped(_signum(stop))
    try:
        if sys.stdout is not None:  # None: started with stdout closed (``>&-``)
            sys.stdout.flush()
    except BrokenPipeError:  # the last data never reached the reader
        quiet_broken_pipe()
        status = status or ExitStatus.FAILURE
    except OSError as e:  # the last data stayed in the buffer: a full disk behind ``> file``
        with contextlib.suppress(OSError, ValueError):  # (a hung-up terminal takes no message either)
            click.echo(f"convcli: error: cannot write to standard output: {os_reason(e)}", err=True)
        quiet_broken_pipe()  # and Python's own flush at exit would fail again
        status = status or ExitStatus.FAILURE
    return int(status or 0)
