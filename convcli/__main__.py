"""``python -m convcli``."""

import atexit
import os
import signal
import sys


def _stopped_early(signum: int, frame: object) -> None:
    """Ctrl-C or SIGTERM while Python imports the CLI: one line and the status, no traceback.

    Nothing has been read or written yet. The CLI's own handling (convcli.cli.errors)
    takes over once it is imported.
    """
    terminated = signum == signal.SIGTERM
    os.write(2, b"convcli: terminated\n" if terminated else b"convcli: interrupted\n")
    os._exit(143 if terminated else 130)


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


def run() -> None:
    """The `convcli` command (and `python -m convcli`): the CLI with signals handled from the first line."""
    signal.signal(signal.SIGINT, _stopped_early)
    signal.signal(signal.SIGTERM, _stopped_early)
    from convcli.cli import main

    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        main()
    except SystemExit as e:
        if e.code in (130, 143):
            # Stopped by a signal, its line printed, the pool gone: run the exit handlers
            # (multiprocessing's clean-up) and leave. The interpreter's own finalisation,
            # which resets the signal handlers first, occasionally died of SIGINT here.
            _end_children()
            atexit._run_exitfuncs()
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except (OSError, ValueError):
                    pass
            os._exit(e.code)
        raise


if __name__ == "__main__":
    run()
