"""Worker processes that end with the convcli process that started them.

``kill -9`` of the convcli process gives it no chance to stop its pool. Without help,
the workers would wait for work forever and keep the forkserver and Python's resource
tracker alive with them. Two mechanisms make them follow their parent:

- :func:`die_with_parent` (Linux): ``prctl(PR_SET_PDEATHSIG, SIGKILL)``, the kernel kills
  this process when its parent exits. Used by the forkserver (whose parent is convcli)
  and by each pool worker (whose parent is the forkserver).
- :func:`watch_parent` (any platform): a daemon thread of the worker waits on the
  sentinel that multiprocessing gives every child (a pipe whose write end the convcli
  process holds) and ends the worker when it reads end-of-file.

Imported as the forkserver's first preload module (``convcli.run.scale``), this module
also prepares the forkserver itself: it dies with its parent and ignores SIGINT from
then on, and its children inherit that (the forkserver hands its own handlers down),
so a Ctrl-C during pool start-up cannot print a child's ``KeyboardInterrupt`` traceback.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading

from convcli.errors import STOP_SIGNALS

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(sig: int = signal.SIGKILL) -> bool:
    """Ask the kernel to send ``sig`` to this process when its parent exits (Linux only).

    Returns whether the request is in place. The parent is the *thread* that forked this
    process: the pool and the forkserver are started from convcli's main thread.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)) == 0
    except (OSError, AttributeError, ValueError):
        return False


def watch_parent() -> bool:
    """In a multiprocessing child: end this process as soon as its parent process is gone.

    Portable: waits (in a daemon thread) on the parent's sentinel, which reads end-of-file
    when the parent exits, however it exits. Returns False outside a multiprocessing child.
    """
    parent = multiprocessing.parent_process()
    if parent is None:
        return False

    def wait_then_exit() -> None:
        parent.join()  # returns when the sentinel is readable: the parent has exited
        os._exit(1)

    threading.Thread(target=wait_then_exit, name="convcli-parent-watch", daemon=True).start()
    return True


def _in_forkserver() -> bool:
    """Whether this import runs as a preload of multiprocessing's forkserver (its ``main``)."""
    forkserver = sys.modules.get("multiprocessing.forkserver")
    if forkserver is None:
        return False
    frame = sys._getframe()
    while frame is not None:
        if frame.f_code is forkserver.main.__code__:
            return True
        frame = frame.f_back
    return False


def _prepare_forkserver() -> None:
    die_with_parent()
    # The convcli process had SIGINT, SIGTERM and SIGHUP blocked while it started this server
    # (convcli.run.scale), so none arrived during its imports. Ignore SIGINT from now on
    # (the forkserver would itself a little later), then let all three through again: a
    # pending SIGTERM ends the server without a traceback (default action).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, set(STOP_SIGNALS))


if _in_forkserver():
    _prepare_forkserver()
