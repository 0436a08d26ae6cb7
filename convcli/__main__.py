"""``python -m convcli``."""

import atexit
import os
import signal
import sys

from convcli.errors import STOP_SIGNALS, handled_stop_signals


def _stopped_early(signum: int, frame: object) -> None:
    """Ctrl-C, SIGTERM or SIGHUP while Python imports the CLI: one line and the status, no traceback.

    Nothing has been read or written yet. The CLI's own handling (convcli.cli.errors)
    takes over once it is imported.
    """
    line, status = STOP_SIGNALS[signum]
    try:
        os.write(2, f"convcli: {line}\n".encode())
    except OSError:  # a hung-up terminal takes nothing (EIO): the status says it
        pass
    os._exit(status)


def _end_children() -> None:
    """Workers a cleanup could not reach (a second signal mid-cleanup) are killed, so that
    multiprocessing's exit handler, which joins every child, cannot wait forever."""
    mp = sys.modules.get("multiprocessing")
    if mp is None:
        return
    for child in mp.active_children():
        try:
            child.kill()
        except (OSError, ValueError):
            pass


def _leave(code: int) -> None:
    """Exit now with ``code``: exit handlers run and output is flushed, the interpreter's own
    finalisation is skipped.

    Everything convcli writes is closed by then (each file renamed into place, each temporary
    removed in a ``finally``), and the handlers registered with ``atexit`` (multiprocessing's
    and Dask's clean-up, ``weakref.finalize``) still run. What is skipped is tearing down every
    module and object one by one -- ~50 ms at the end of a 2048² blur, a tenth of the command --
    and, on the signal path, a finalisation that occasionally died of SIGINT after resetting
    the signal handlers.
    """
    def now(signum: int, frame: object) -> None:  # a signal now would only cut the exit short
        os._exit(code or STOP_SIGNALS[signum][1])

    for s in handled_stop_signals():
        signal.signal(s, now)
    _end_children()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        if stream is None:  # started with it closed (``>&-``)
            continue
        try:
            stream.flush()
        except (OSError, ValueError):
            if code == 0:
                code = 1  # stdout could not take the data
    os._exit(code)


def run() -> None:
    """The `convcli` command (and `python -m convcli`): the CLI with signals handled from the first line."""
    for s in handled_stop_signals():
        signal.signal(s, _stopped_early)
    # convcli's parallelism is its own bands (the engine keeps BLAS on one thread inside them:
    # engine/bands.single_threaded_blas). OpenBLAS, as NumPy's wheels ship it, starts its worker
    # threads when NumPy loads, and they spin on the cores the command needs: a 451x300 filter
    # took x0.78 the CPU time and x0.83 the wall time without them. A value the user set is kept.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from convcli.cli import main

    if signal.SIGINT in handled_stop_signals():  # Python's own, unless the user ignored it
        signal.signal(signal.SIGINT, signal.default_int_handler)
    code = 0
    try:
        try:
            main()
        except SystemExit as e:
            if isinstance(e.code, str):
                sys.stderr.write(e.code + "\n")
            code = e.code if isinstance(e.code, int) else 0 if e.code is None else 1
    except KeyboardInterrupt:  # Ctrl-C again as the run ended: the run already said how it stopped
        code = code or 130
    _leave(code)


if __name__ == "__main__":
    run()
