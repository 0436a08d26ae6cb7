"""Running an image command over its inputs: plan every file, check them as one set, run, report.

Shared by filter, blur, edges, downsample and chain. The order is fixed: inputs
expanded -> every input's output plan from its header -> the one safety check over all
plans (exit 2, nothing written) -> folders created -> pixels. stdout carries data (JSON
Lines or the image); the human report goes to stdout only when stdout carries nothing
else, otherwise to stderr. Errors, the progress bar and the summary line always go to
stderr.

Exit status: the worst of the inputs' (0 done, 1 failed, 2 usage error such as an
image too small for the kernel); Ctrl-C stops the workers, removes this run's
temporary files and exits 130; SIGTERM and SIGHUP do the same and exit 143 and 129.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing, contextmanager
from typing import Any, BinaryIO, TextIO, TypeVar

import click

from convcli.cli.errors import Stopped, stop_signals_raise
from convcli.core.records import record
from convcli.errors import ExitStatus, OutputError, UsageError
from convcli.io.files import os_reason, remove_temporaries
from convcli.report import json_line, line_text, write_plain, write_table
from convcli.run.inputs import expand_inputs, read_stdin
from convcli.run.job import Job
from convcli.run.machine import memory_limit
from convcli.run.plan import (
    Task,
    check_files,
    check_format_flags,
    check_output_formats,
    main_outputs,
    make_folders,
    plan_input,
    without_earlier_outputs,
    writes_stdout,
    written_by_output,
)
from convcli.run.scale import (
    Outcome,
    check_dask_address,
    choose_workers,
    file_stamps,
    run_dask,
    run_local,
    share_cores,
    signals_deferred,
    written_when_stopped,
)
from convcli.run.spec import Command, RunSpec

#: The JSON record of an input --fail-fast left unstarted says why.
NOT_RUN_REASON = "not run: --fail-fast stopped the batch at the first failure"

T = TypeVar("T")


class Reporter:
    """Writes one record per input to the right stream in the right form, flushed at once.

    Streams are looked up at each write: while a progress bar is live, Rich has
    replaced them with proxies that print above the bar.
    """

    def __init__(self, as_json: bool, quiet: bool, image_on_stdout: bool, debug: bool = False) -> None:
        self.as_json = as_json
        self.quiet = quiet
        self.image_on_stdout = image_on_stdout
        self.debug = debug

    @property
    def stream(self) -> Any:
        return sys.stderr if self.image_on_stdout else sys.stdout

    def not_run(self, sources: Iterable[str]) -> None:
        """With --json, one record for each input --fail-fast left unstarted (one per input, always)."""
        if not self.as_json:
            return  # the summary line counts them
        for source in sources:
            self.emit({"input": source, "status": "skipped", "reason": NOT_RUN_REASON})

    def emit(self, record: dict[str, Any], tb: str | None = None) -> None:
        if record.get("status") == "error":
            line = line_text(f"{record['input']}: {record['error']}")
            sys.stderr.write(f"convcli: error: {line}\n")
            if tb and self.debug:
                sys.stderr.write(tb)
            sys.stderr.flush()
        stream = self.stream
        due = self.as_json or (not self.quiet and record.get("status") == "ok")
        if self.as_json:
            write_text(stream, json_line(record) + "\n")
        elif due:
            (write_table if stream.isatty() else write_plain)(record, stream)


@record(frozen=True)
class RunPlan:
    """Every task in input order, and how many worker processes run them."""

    tasks: list[Task]
    workers: int


def plan_run(cmd: Command, spec: RunSpec) -> RunPlan:
    """Every input's plan, in input order, checked as one set; folders made; workers chosen from the
    work's size (a pool only where it pays) and each job's thread share set. Raises UsageError."""
    check_format_flags(spec)
    if spec.batch.dask_address is not None:
        check_dask_address(spec.batch.dask_address)
    inputs = expand_inputs(spec.images, recursive=spec.recursive, out_dir=spec.output.out_dir)
    if not inputs:
        msg = "no images found in the inputs given"
        raise UsageError(msg)
    if spec.output.output is not None:  # -o's file and channel maps, found again in the folder read
        produced = [i for i in inputs if not written_by_output(spec.output.output, i)]
        inputs = produced or inputs
    outputs = main_outputs(spec, cmd.op, inputs)
    keep = without_earlier_outputs(inputs, [[o] if o not in (None, "-") else [] for o in outputs], outputs)
    inputs, outputs = _kept(inputs, keep), _kept(outputs, keep)
    check_output_formats(spec, outputs)
    if "-" in outputs and not spec.report.dry_run and sys.stdout.isatty():
        msg = "refusing to write a binary image to a terminal; redirect stdout or use -o FILE"
        raise UsageError(msg)
    stdin_data, stdin_error = (read_stdin(spec.max_pixels) if any(i.is_stdin for i in inputs)
                               else (None, None))
    if stdin_error is not None:
        inputs = [dataclasses.replace(i, error=stdin_error) if i.is_stdin else i for i in inputs]
    tag = os.urandom(4).hex()  # this run's temporary files carry it
    memory = None if spec.batch.dask_address is not None else memory_limit()  # Dask: other machines
    tasks = [plan_input(spec, cmd, item, out, stdin_data, tag, memory)
             for item, out in zip(inputs, outputs, strict=True)]
    keep = without_earlier_outputs(inputs, [t.files() if isinstance(t, Job) else [] for t in tasks],
                                   outputs)  # montages, maps
    inputs, tasks = _kept(inputs, keep), _kept(tasks, keep)
    montage = spec.output.montage
    if montage and len(inputs) > 1 and "{stem}" not in montage:
        msg = (f"{len(inputs)} inputs would share --montage {montage}: put {{stem}} in the path, "
               "e.g. 'm/{stem}.png'")
        raise UsageError(msg)
    check_files(inputs, tasks, spec.output.out_dir, cmd.reads)
    if spec.batch.dask_address is not None:
        workers = 1  # Dask's workers decide their own threads (threads None: their cores)
    else:
        workers = choose_workers(tasks, spec.batch.jobs)
        tasks = share_cores(tasks, workers)  # --threads as given, else each worker's share
    return RunPlan(make_folders(tasks, create=not spec.report.dry_run), workers)


def _kept(items: list[T], keep: list[bool]) -> list[T]:
    return [item for item, k in zip(items, keep, strict=True) if k]


def _stdout_binary() -> BinaryIO:
    return sys.stdout.buffer


def write_all(out: BinaryIO, data: bytes) -> None:
    """Write every byte and flush; a reader that leaves mid-image raises BrokenPipeError.

    A buffered write to a pipe may return after a short write when the reader closes
    its end (the rest silently dropped): the loop writes the rest, which then fails.
    """
    view = memoryview(data)
    while view:
        n = out.write(view)
        if n is None:  # a non-blocking stdout that is full: flush waits for room
            out.flush()
            continue
        view = view[n:]
    out.flush()


def write_text(stream: TextIO, text: str) -> None:
    """``text`` to a text stream, every byte or BrokenPipeError: over 8 KiB, a TextIOWrapper hands
    its bytes to a buffered write that may return short when the reader leaves, and drops the rest
    in silence (``kernels --response --json | head`` exited 0 with 69 kB of 24 MB written)."""
    binary = getattr(stream, "buffer", None)
    if binary is None:
        stream.write(text)
        stream.flush()
        return
    stream.flush()
    write_all(binary, text.encode(stream.encoding or "utf-8", errors=stream.errors or "strict"))


def run_command(cmd: Command, spec: RunSpec) -> int:
    """Plan, check, run every task, report each as it finishes; returns the exit status."""
    plan = plan_run(cmd, spec)
    to_stdout = writes_stdout(plan.tasks) and not spec.report.dry_run
    return BatchRun.from_spec(plan, spec, to_stdout).run()


@record
class BatchRun:
    """The run of a list of tasks: where they run, how they are reported, the exit status."""

    tasks: list[Task]
    reporter: Reporter
    workers: int
    dask_address: str | None = None
    ordered: bool = False
    fail_fast: bool = False
    summary: bool = True
    progress: bool = False

    @classmethod
    def from_spec(cls, plan: RunPlan, spec: RunSpec, to_stdout: bool) -> BatchRun:
        tasks = plan.tasks
        many = len(tasks) > 1
        quiet = spec.report.quiet
        return cls(
            tasks=tasks,
            reporter=Reporter(spec.report.as_json, quiet, to_stdout, debug=spec.report.debug),
            workers=plan.workers,
            dask_address=spec.batch.dask_address,
            ordered=spec.batch.ordered,
            fail_fast=spec.batch.fail_fast,
            summary=many and not quiet,
            progress=many and not quiet and sys.stderr.isatty(),
        )

    def run(self) -> int:
        stop = threading.Event()
        counts = {"ok": 0, "error": 0}
        status = ExitStatus.OK
        t0 = time.perf_counter()
        reported: set[int] = set()
        ordered: InOrder | None = None
        before = [file_stamps(t) for t in self.tasks]
        try:
            with stop_signals_raise(), progress_bar(len(self.tasks), self.progress) as advance, \
                    closing(self._outcomes(stop)) as outcomes:
                ordered = InOrder(outcomes) if self.ordered else None
                for outcome in ordered if ordered is not None else outcomes:
                    status = max(status, outcome.status)
                    counts["ok" if outcome.status == ExitStatus.OK else "error"] += 1
                    with signals_deferred():  # a stop now comes after the whole line, not mid-record
                        self._report(outcome)
                        reported.add(outcome.index)
                    advance()
                    if self.fail_fast and outcome.status != ExitStatus.OK:
                        stop.set()
        except BaseException as exc:
            for t in self.tasks:
                if isinstance(t, Job):
                    remove_temporaries(t.files(), t.temp_tag)
            if isinstance(exc, Stopped | KeyboardInterrupt):
                # done, their files in place: say so, in input order (--ordered's held ones, and those
                # whose files were written but whose record the stop cut off)
                late = ordered.leftovers() if ordered is not None else []
                done = reported | {o.index for o in late}
                late += [o for i, t in enumerate(self.tasks)
                         if i not in done and (o := written_when_stopped(i, t, before[i])) is not None]
                with contextlib.suppress(OSError):  # a reader already gone changes nothing
                    for outcome in sorted(late, key=lambda o: o.index):
                        self._report(outcome)
            raise
        if stop.is_set():
            self.reporter.not_run(t.source for i, t in enumerate(self.tasks) if i not in reported)
        if self.summary:
            click.echo(self._summary_line(counts, time.perf_counter() - t0, stop.is_set()), err=True)
        return status

    def _outcomes(self, stop: threading.Event) -> Iterator[Outcome]:
        if self.dask_address is not None:
            return run_dask(self.tasks, self.dask_address, stop)
        return run_local(self.tasks, self.workers, stop, queue_ahead=not self.fail_fast)

    def _report(self, outcome: Outcome) -> None:
        result = outcome.result
        if result.stdout_bytes is not None:
            try:
                write_all(_stdout_binary(), result.stdout_bytes)
            except BrokenPipeError:
                raise  # the reader left: handled quietly by cli/errors
            except OSError as exc:  # e.g. a full disk behind `-o - > file`
                raise OutputError(f"cannot write the image to standard output: {os_reason(exc)}") from None
        self.reporter.emit(result.record, outcome.traceback)

    def _summary_line(self, counts: dict[str, int], seconds: float, stopped: bool) -> str:
        where = f"Dask at {self.dask_address}" if self.dask_address else (
            f"{min(self.workers, len(self.tasks))} workers" if self.workers > 1 else "1 worker")
        line = f"convcli: {counts['ok']} done, {counts['error']} failed in {seconds:.2f} s ({where})"
        not_run = len(self.tasks) - counts["ok"] - counts["error"]
        if stopped and not_run:
            line += f"; stopped at the first failure (--fail-fast), {not_run} not run"
        return line


class InOrder:
    """Outcomes in input order: each is held until those before it are out (leftovers at the end).

    ``held`` are the outcomes done but not yet out: on Ctrl-C their records still go out, in input
    order (with a slow first input, ``--ordered --json`` printed nothing for the images already
    written)."""

    def __init__(self, outcomes: Iterator[Outcome]) -> None:
        self._outcomes = outcomes
        self.held: dict[int, Outcome] = {}

    def __iter__(self) -> Iterator[Outcome]:
        held, expected = self.held, 0
        for outcome in self._outcomes:
            held[outcome.index] = outcome
            while expected in held:
                yield held.pop(expected)
                expected += 1
        yield from self.leftovers()  # after --fail-fast some inputs never ran

    def leftovers(self) -> list[Outcome]:
        return [self.held.pop(i) for i in sorted(self.held)]


@contextmanager
def progress_bar(total: int, enabled: bool) -> Iterator[Callable[[], None]]:
    """A transient Rich progress bar on stderr; yields the function that advances it by one."""
    if not enabled:
        yield lambda: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    progress = Progress(TextColumn("convcli"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        TimeRemainingColumn(), console=Console(stderr=True), transient=True,
                        redirect_stdout=sys.stdout.isatty(), redirect_stderr=True)
    task = progress.add_task("images", total=total)
    with progress:
        yield lambda: progress.advance(task)
