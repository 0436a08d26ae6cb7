"""Where the per-input work runs: in this process, in a process pool (``--jobs``) or on Dask (``--dask``).

Every route runs the same :func:`work` on the same picklable tasks and yields the
same :class:`Outcome` objects, so the caller reports them the same way. Nothing
here writes to stdout or stderr.

- :func:`run_local` — in this process when one worker or one task is enough (no
  pool start-up cost), else a ``ProcessPoolExecutor`` (forkserver where the
  platform has it, spawn elsewhere; workers ignore SIGINT so the parent alone
  decides what Ctrl-C does, and end when the convcli process is gone, even after
  ``kill -9``: :mod:`convcli.run.lifeline`). SIGINT and SIGTERM are held back while
  processes and threads start, so a signal during start-up ends the run the same
  way as later (one line, no child's traceback). At most ``2 * workers`` tasks are in flight
  (``workers`` under ``--fail-fast``, so none starts after the failure), so Ctrl-C has little
  to cancel. A worker that dies (killed, out of memory) fails the inputs it held and the pool is restarted for
  the rest.
- :func:`run_dask` — ``client.map(work, ...)`` on a ``dask.distributed`` cluster,
  results taken ``as_completed``. Dask is imported only here. Its protocol unpickles
  what the scheduler sends: the scheduler and workers must be trusted (README,
  "Failure"); :func:`check_dask_address` checks the address's form first.
"""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from convcli.core.records import record
from convcli.engine import usable_cores
from convcli.errors import STOP_SIGNALS, ConvcliError, ExitStatus, UsageError, handled_stop_signals
from convcli.io.files import one_line, remove_temporaries
from convcli.run.job import JOB_FILES, Job, Result, process
from convcli.run.plan import Refusal, Task

if TYPE_CHECKING:  # a pool's modules (multiprocessing, ~10 ms) are imported where a pool starts
    import multiprocessing.context
    from concurrent.futures import Future, ProcessPoolExecutor


@record
class Outcome:
    """One finished task: its position among the inputs, its result and exit status.

    ``traceback`` is set for a failed input (an unexpected exception, a bug, or convcli's own
    error), to be shown with ``--debug``.
    """

    index: int
    result: Result
    status: ExitStatus
    traceback: str | None = None


class ScaleOutError(ConvcliError):
    """The machinery, not an input, failed: Dask missing, scheduler unreachable."""

    exit_status = ExitStatus.FAILURE


def error_record(source: str, error: str) -> dict[str, Any]:
    """The report record of a failed input. The error is kept as written (a path in it holds its
    newline: collapsed to a space, ``a\nb.png`` read ``a b.png``); the stderr line escapes it."""
    return {"input": source, "status": "error", "error": error.strip()}


def work(index: int, task: Task) -> Outcome:
    """Run one task anywhere (this process, a pool worker, a Dask worker); never raises for an input."""
    if isinstance(task, Refusal):
        return Outcome(index, Result(error_record(task.source, task.error)), task.status)
    try:
        return Outcome(index, process(task), ExitStatus.OK)
    except ConvcliError as e:  # the input's own failure; its traceback is for --debug
        import traceback

        record = error_record(task.source, str(e))
        return Outcome(index, Result(record), e.exit_status, traceback.format_exc())
    except MemoryError as e:  # not a bug: this input's arrays do not fit; the rest of the batch may
        import traceback

        reason = (f"not enough memory for this image's arrays ({one_line(e) or 'MemoryError'}); "
                  "a smaller --max-pixels refuses such sizes before any work")
        return Outcome(index, Result(error_record(task.source, reason)), ExitStatus.FAILURE,
                       traceback.format_exc())
    except Exception as e:  # noqa: BLE001 - one input's bug must not end the batch; reported with its type
        import traceback

        return _internal_error(index, task.source, e, traceback.format_exc())


Stamps = dict[str, tuple[int, int] | None]


def file_stamps(task: Task) -> Stamps:
    """(device, inode) of the regular file at each path a job writes, now (None: none there); empty for a
    dry run or no job. Every write renames a new file into place, so a stamp that changed during a run
    says the run wrote that file."""
    if not isinstance(task, Job) or task.dry_run:
        return {}
    return {path: _stamp(path) for path in task.files()}


def _stamp(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISREG(st.st_mode) else None


def written_when_stopped(index: int, task: Task, before: Stamps) -> Outcome | None:
    """The outcome of a job whose files a stop cut off from their report (Ctrl-C between a rename and
    the record; a worker killed after it), from the files that changed since ``before``; None if it
    wrote none. Its record is the planned one (as ``--dry-run`` gives it) naming the files written;
    the range statistics went with the stop. A job stopped before its output (its montage written,
    say) is an error: to run again."""
    if not isinstance(task, Job):
        return None
    written = [(f, path) for f, path in task.planned() if _stamp(path) not in (None, before.get(path))]
    if not written:
        return None
    try:
        record = process(dataclasses.replace(task, dry_run=True)).record
    except Exception:  # noqa: BLE001 - the input changed or went since: what is known is the files written
        record = {"input": task.source, "notes": []}
    for key in ("dry_run", "seconds", "output", *(f.record_key for f in JOB_FILES)):
        record.pop(key, None)
    for f, path in written:
        if f.attr == "channel_maps":
            record.setdefault(f.record_key, []).append(path)
        else:
            record[f.record_key] = path
    if "output" not in record and task.output is not None:
        names = ", ".join(path for _, path in written)
        where = "went to standard output" if task.output == "-" else f"{task.output} was written"
        error = f"stopped before its output {where} ({names} was written)"
        return Outcome(index, Result(error_record(task.source, error)), ExitStatus.FAILURE)
    record.update(status="ok", notes=[*record.get("notes", []),
                                      "written as the run was stopped: its range was not reported"])
    return Outcome(index, Result(record), ExitStatus.OK)


def _internal_error(index: int, source: str, exc: BaseException, tb: str | None) -> Outcome:
    reason = f"internal error, please report it (--debug shows the traceback): {type(exc).__name__}: {exc}"
    return Outcome(index, Result(error_record(source, reason)), ExitStatus.FAILURE, tb)


# --------------------------------------------------------------------------- local: in process or a pool


#: A process pool pays for its start-up (~0.3 s here, importing convcli in each worker) once the
#: work would take about 1 s in one process. Measured on 2 cores, 8-bit RGB, blur 3x3: 20 images
#: of 451x300 (8M samples) -j 1 0.57 s, -j 2 0.81 s; 40 of 512x512 (31M) 1.01 s either way;
#: 200 of 512x512 (157M) 3.44 s against 2.28 s. Below this many input samples, -j defaults to 1.
POOL_MIN_SAMPLES = 40_000_000


def choose_workers(tasks: list[Task], requested: int | None) -> int:
    """Worker processes for these tasks: ``-j`` as given, else as many as pay for themselves."""
    jobs = [t for t in tasks if isinstance(t, Job) and not t.dry_run]
    if requested is not None:
        return max(1, min(requested, len(jobs) or 1))
    if len(jobs) <= 1 or sum(t.samples for t in jobs) < POOL_MIN_SAMPLES:
        return 1
    return max(1, min(usable_cores(), len(jobs)))


def run_local(tasks: list[Task], workers: int, stop: threading.Event, *,
              queue_ahead: bool = True) -> Iterator[Outcome]:
    """Outcomes in completion order; no new task starts once ``stop`` is set.

    ``queue_ahead``: a second task waits at each worker (no worker idles between two); off
    for ``--fail-fast``, where a task handed over cannot be taken back and would start after
    the failure that stops the run.
    """
    if workers <= 1 or len(tasks) <= 1:
        yield from _sequential(tasks, stop)
    else:
        # Jobs planned by the CLI carry their thread share already; others get it here
        n = min(workers, len(tasks))
        yield from _pooled(share_cores(tasks, n), n, stop, 2 * n if queue_ahead else n)


def _sequential(tasks: list[Task], stop: threading.Event) -> Iterator[Outcome]:
    for i, task in enumerate(tasks):
        if stop.is_set():
            return
        yield work(i, task)


def _mp_context() -> multiprocessing.context.BaseContext:
    """forkserver (workers fork from a server that has imported convcli once), else spawn; never fork.

    multiprocessing is imported here, where a pool starts: a run in this process never pays for it.
    """
    import multiprocessing

    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        # lifeline first: the server dies with convcli and ignores SIGINT before the long imports
        ctx.set_forkserver_preload(["convcli.run.lifeline", "convcli.run.scale"])
        return ctx
    return multiprocessing.get_context("spawn")


def share_cores(tasks: list[Task], workers: int) -> list[Task]:
    """Jobs without a thread count get their worker's share of the cores (no oversubscription).

    Resolved here, in the parent: each Job then carries its count in its EngineOptions to
    the worker process (engine bands, to_pixels and the PNG writer all use it).
    """
    threads = max(1, usable_cores() // max(1, workers))
    return [dataclasses.replace(t, engine=dataclasses.replace(t.engine, threads=threads))
            if isinstance(t, Job) and t.engine.threads is None else t for t in tasks]


def _worker_init() -> None:
    # Ctrl-C reaches the whole process group, and so does SIGHUP when the terminal closes; the
    # parent alone decides what they mean. SIGTERM sent to a worker itself ends it.
    for s in STOP_SIGNALS:
        signal.signal(s, signal.SIG_DFL if s == signal.SIGTERM else signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):  # the mask the start-up held them back with (spawn)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, set(STOP_SIGNALS))
    # The convcli process may die without stopping the pool (kill -9): follow it.
    from convcli.run.lifeline import die_with_parent, watch_parent

    die_with_parent()
    watch_parent()


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP back while the pool starts processes and threads (and while
    a record is written: a stop mid-record left an image written and no line for it).

    Two levels. Python's handlers are swapped for one that only records the signal (the
    signal may reach the process through any thread, e.g. a BLAS thread, and the handler
    would then raise in the main thread mid-start, leaving a forked worker unknown to the
    pool); a recorded signal is raised again when the block ends, after the pool's state
    is whole. And the signal mask blocks them, because children (the forkserver, spawned
    workers) and threads inherit it: the forkserver unblocks once it ignores SIGINT
    (:mod:`convcli.run.lifeline`), the workers in their initializer, and the pool's own
    threads keep them blocked.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    signals = handled_stop_signals()
    previous = {s: signal.signal(s, lambda signum, frame: caught.append(signum)) for s in signals}
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, signals) if hasattr(signal, "pthread_sigmask") else None
    try:
        yield
    finally:
        if mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        for s, handler in previous.items():
            signal.signal(s, handler)
        if caught:
            signal.raise_signal(caught[0])  # now the usual handler: KeyboardInterrupt, Terminated...


def _new_pool(workers: int) -> ProcessPoolExecutor:
    """A process pool, made with SIGHUP blocked: it starts multiprocessing's resource tracker, a process
    of convcli's group that ignores SIGINT and SIGTERM but not SIGHUP; a closed terminal killed it
    mid-stop and its replacement printed tracebacks. Started with SIGHUP blocked, it keeps it so."""
    from concurrent.futures import ProcessPoolExecutor

    hup = {signal.SIGHUP} if hasattr(signal, "SIGHUP") and hasattr(signal, "pthread_sigmask") else None
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, hup) if hup else None
    try:
        return ProcessPoolExecutor(max_workers=workers, mp_context=_mp_context(), initializer=_worker_init)
    finally:
        if mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _pooled(tasks: list[Task], workers: int, stop: threading.Event, window: int) -> Iterator[Outcome]:
    """A process pool over the tasks; inputs held by a pool whose worker died are retried one by one."""
    from concurrent.futures import FIRST_COMPLETED, wait

    queue = iter(enumerate(tasks))
    pending: dict[Future[Outcome], int] = {}
    suspects: list[int] = []
    pool = _new_pool(workers)
    finished = False
    try:
        _fill(pool, queue, pending, window, stop)
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            died: list[int] = []
            for fut in done:
                index = pending.pop(fut)
                if fut.cancelled():  # --fail-fast: never started, not reported
                    continue
                outcome = _collect(fut, index, tasks[index])
                if outcome is None:
                    died.append(index)
                else:
                    yield outcome
            if died:  # the pool is broken: everything it held is suspect; a new pool for the rest
                died.extend(pending.values())
                pending.clear()
                _kill(pool)
                _remove_temporaries([tasks[i] for i in died])
                suspects.extend(died)
                pool = _new_pool(workers)
            _fill(pool, queue, pending, window, stop)
            if stop.is_set():
                for fut in pending:
                    fut.cancel()  # those not yet handed to a worker; the others finish and are reported
        finished = True
    finally:
        if finished:
            pool.shutdown(wait=True)
        else:  # Ctrl-C, SIGTERM, a closed pipe...: stop the workers now, mid-image if need be
            with signals_deferred():  # a second Ctrl-C waits until the workers are gone
                _kill(pool)
    for index in sorted(suspects):  # alone in a pool of one: only an input that kills its worker fails
        if stop.is_set():
            return
        yield _isolated(index, tasks[index])


def _remove_temporaries(tasks: list[Task]) -> None:
    """The temporary files that these tasks' interrupted writes left (their run's tag only)."""
    for task in tasks:
        if isinstance(task, Job):
            remove_temporaries(task.files(), task.temp_tag)


def _isolated(index: int, task: Task) -> Outcome:
    pool = _new_pool(1)
    try:
        with signals_deferred():
            fut = pool.submit(work, index, task)
        outcome = _collect(fut, index, task)
    finally:
        _kill(pool)
    if outcome is None:
        _remove_temporaries([task])
        msg = "the worker process died on this input (killed, or out of memory?)"
        outcome = Outcome(index, Result(error_record(task.source, msg)), ExitStatus.FAILURE)
    return outcome


def _fill(pool: ProcessPoolExecutor, queue: Iterator[tuple[int, Task]], pending: dict[Future[Outcome], int],
          window: int, stop: threading.Event) -> None:
    """Submit tasks up to ``window`` in flight (a submit may start a worker: signals deferred)."""
    with signals_deferred():
        while len(pending) < window and not stop.is_set():
            item = next(queue, None)
            if item is None:
                return
            pending[pool.submit(work, *item)] = item[0]


def _collect(fut: Future[Outcome], index: int, task: Task) -> Outcome | None:
    """The outcome of a finished future; None if its worker process died."""
    from concurrent.futures.process import BrokenProcessPool

    try:
        return fut.result()
    except BrokenProcessPool:
        return None
    except Exception as e:  # noqa: BLE001 - e.g. a task that cannot be pickled: a bug, reported with its type
        import traceback

        return _internal_error(index, task.source, e, "".join(traceback.format_exception(e)))


def _kill(pool: ProcessPoolExecutor) -> None:
    """Terminate the workers, drop queued work, wait for them to be gone."""
    # No public way to reach the workers before Python 3.14 (terminate_workers); _processes is stable.
    procs = list((getattr(pool, "_processes", None) or {}).values())
    for p in procs:
        if p.is_alive():
            p.terminate()
    for p in procs:
        p.join(timeout=5)
        if p.is_alive():
            p.kill()
            p.join()
    # Wait for the pool's manager thread too: left running, it races the interpreter's exit
    # (CPython's _python_exit then writes to a closed pipe and prints "Exception ignored").
    pool.shutdown(wait=True, cancel_futures=True)


# --------------------------------------------------------------------------- Dask


#: tcp://HOST:PORT, tls://HOST:PORT or HOST:PORT (HOST a name, IPv4 or [IPv6]); inproc://NAME apart.
#: Patterns, compiled (by re's cache) when a --dask address is checked, not at import.
_DASK_ADDRESS = (r"(?:(?:tcp|tls)://)?(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)"
                 r":(?P<port>[0-9]{1,5})")
_DASK_INPROC = r"inproc://[^\s/][^\s]*"


def check_dask_address(address: str) -> None:
    """Refuse a --dask value that is not a scheduler address, before Dask is imported (exit 2)."""
    m = re.fullmatch(_DASK_ADDRESS, address)
    if (m and 1 <= int(m["port"]) <= 65535) or re.fullmatch(_DASK_INPROC, address):
        return
    msg = (f"--dask {address!r} is not a scheduler address: use tcp://HOST:PORT, tls://HOST:PORT, "
           "HOST:PORT or inproc://NAME")
    raise UsageError(msg)


_DASK_MISSING = "--dask needs the optional Dask extra: pip install 'convcli[dask]'"


def run_dask(
    tasks: list[Task], address: str, stop: threading.Event, timeout: str = "10s"
) -> Iterator[Outcome]:
    """The same ``work`` as tasks on a dask.distributed cluster; outcomes as they complete.

    Paths are made absolute for the workers (which must see the same files, e.g. on a
    shared file system) and the records carry the names as the user gave them.
    """
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise ScaleOutError(_DASK_MISSING) from None
    try:
        client = Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as e:
        msg = f"cannot connect to the Dask scheduler at {address}: {' '.join(str(e).split())}"
        raise ScaleOutError(msg) from None
    futures: list[Any] = []
    try:
        futures = client.map(work, range(len(tasks)), [_absolute(t) for t in tasks], pure=False)
        index_of = {f.key: i for i, f in enumerate(futures)}
        for fut in as_completed(futures, loop=client.loop):
            if stop.is_set():
                client.cancel(futures)
                break
            index = index_of[fut.key]
            yield _dask_outcome(fut, index, tasks[index])
    finally:
        if futures:
            client.cancel([f for f in futures if not f.done()])
        client.close()


def _absolute(task: Task) -> Task:
    if isinstance(task, Refusal):
        return task
    return task.with_paths(os.path.abspath)


def _dask_outcome(fut: Any, index: int, task: Task) -> Outcome:
    try:
        outcome: Outcome = fut.result()
    except Exception as e:  # noqa: BLE001 - KilledWorker, CancelledError...: this input failed, say why
        reason = f"Dask task failed: {type(e).__name__}: {e}"
        return Outcome(index, Result(error_record(task.source, reason)), ExitStatus.FAILURE)
    return dataclasses.replace(outcome, result=_relative(outcome.result, task))


def _relative(result: Result, task: Task) -> Result:
    """Put the user's own names back into a record made with absolute paths."""
    if isinstance(task, Refusal):
        return result
    record = dict(result.record)
    record["input"] = task.source
    for f in JOB_FILES:
        if f.record_key in record:
            value = getattr(task, f.attr)
            record[f.record_key] = list(value) if isinstance(value, tuple) else value
    if "error" in record:
        for name in (task.output, task.source):
            if name not in (None, "-"):
                record["error"] = record["error"].replace(os.path.abspath(name), name)
    return Result(record, result.stdout_bytes)
