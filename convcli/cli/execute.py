"""Running an image command over its inputs: tasks, where they run, records out, exit status.

Shared by filter, blur, edges, downsample and chain. stdout carries data (JSON
Lines or the image); the human report goes to stdout only when stdout carries
nothing else, otherwise to stderr. Errors, the progress bar and the summary line
always go to stderr.

Exit status: the worst of the inputs' (0 done, 1 failed, 2 usage error such as an
image too small for the kernel); Ctrl-C stops the workers, removes temporary
files and exits 130 (via ``main``); SIGTERM does the same and exits 143.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import click

from convcli.errors import ExitStatus, UsageError
from convcli.io.decode import DEFAULT_MAX_PIXELS
from convcli.io.formats import extension_for, format_for_path
from convcli.pipeline import EngineOptions, Pipeline
from convcli.report import json_line, write_plain, write_table
from convcli.run.inputs import expand_inputs, plan_outputs
from convcli.run.job import Job, OutputOptions
from convcli.run.scale import Outcome, Refusal, Task, remove_temporaries, run_dask, run_local, usable_cores

#: Exit status after SIGTERM (128 + 15, what a shell reports for a process that SIGTERM ended).
EXIT_TERMINATED = 143


@dataclass(frozen=True)
class Command:
    """What a command contributes: its pipeline, its name in output files, its defaults."""

    pipeline: Pipeline
    op: str  # for {op} in output names: "sharpen", "blur", "edges", "down2"
    default_policy: str = "clip"
    gray: bool = False
    show_weights: bool = False  # chain conv --show-weights


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

    def emit(self, record: dict[str, Any], tb: str | None = None) -> None:
        if record.get("status") != "ok":
            sys.stderr.write(f"convcli: error: {record['input']}: {record['error']}\n")
            if tb and self.debug:
                sys.stderr.write(tb)
            sys.stderr.flush()
        stream = self.stream
        if self.as_json:
            stream.write(json_line(record) + "\n")
            stream.flush()
        elif not self.quiet and record.get("status") == "ok":
            (write_table if stream.isatty() else write_plain)(record, stream)


def _known_format(path: str) -> str | None:
    """The format an output's extension names, None for an extension convcli doesn't know."""
    try:
        return format_for_path(path)
    except UsageError:
        return None


def build_jobs(cmd: Command, params: dict[str, Any]) -> list[Task]:
    """One task per input, in input order: a Job, or a Refusal for an input refused before any work."""
    inputs = expand_inputs(params["images"], recursive=params.get("recursive", False))
    if not inputs:
        msg = "no images found in the inputs given"
        raise UsageError(msg)
    fmt = params.get("fmt")
    ext = extension_for(fmt) if fmt else None
    if params.get("output") not in (None, "-") and fmt is None:
        format_for_path(params["output"])  # an unknown extension is a usage error, before work
    elif params.get("output") not in (None, "-") and _known_format(params["output"]) not in (None, fmt):
        msg = (f"--format {fmt} contradicts the extension of -o {params['output']} "
               f"(use {Path(params['output']).stem}{extension_for(fmt)})")
        raise UsageError(msg)
    outputs = plan_outputs(inputs, cmd.op, output=params.get("output"), out_dir=params.get("out_dir"),
                           template=params.get("name_template"), ext_for=ext)
    montage = params.get("montage")
    if montage and len(inputs) > 1 and "{stem}" not in montage:
        msg = (f"{len(inputs)} inputs would share --montage {montage}: put {{stem}} in the path, "
               "e.g. 'm/{stem}.png'")
        raise UsageError(msg)
    stdin_data: bytes | None = None
    if any(i.is_stdin for i in inputs):
        stdin_data = sys.stdin.buffer.read()
    eng = EngineOptions(dtype="float64" if params.get("float64") else "float32",
                        method=params.get("method", "auto"), threads=params.get("threads"))
    out = OutputOptions(range_policy=params.get("range_policy"), default_policy=cmd.default_policy,
                        bit_depth=params.get("bit_depth"), fmt=fmt, quality=params.get("quality"),
                        compress_level=params.get("compress_level"))
    max_pixels = params.get("max_pixels") or DEFAULT_MAX_PIXELS
    return [
        Refusal(item.name, item.error) if item.error is not None else
        Job(source=item.name, output=o, pipeline=cmd.pipeline,
            data=stdin_data if item.is_stdin else None, gray=cmd.gray or params.get("gray", False),
            linear_light=params.get("linear_light", False), dry_run=params.get("dry_run", False),
            max_pixels=max_pixels, engine=eng, out=out, montage=params.get("montage"))
        for item, o in zip(inputs, outputs, strict=True)
    ]


def _stdout_binary() -> BinaryIO:
    return sys.stdout.buffer


def run_command(cmd: Command, params: dict[str, Any]) -> int:
    """Plan, run every task, report each as it finishes; returns the exit status."""
    tasks = build_jobs(cmd, params)
    to_stdout = any(isinstance(t, Job) and t.output == "-" for t in tasks) and not params.get("dry_run")
    if to_stdout and sys.stdout.isatty():
        msg = "refusing to write a binary image to a terminal; redirect stdout or use -o FILE"
        raise UsageError(msg)
    if params.get("out_dir") and not params.get("dry_run"):
        _make_out_dir(params["out_dir"])
    batch = Batch.from_params(tasks, params, to_stdout)
    try:
        return batch.run()
    except KeyboardInterrupt as e:  # workers and temporary files are gone by now (Batch.run)
        if batch.reporter.debug:
            raise
        # Said here, not by click (which would add an empty line): one line, then the exit status.
        if isinstance(e, Terminated):
            click.echo("convcli: terminated", err=True)
            return EXIT_TERMINATED
        click.echo("convcli: interrupted", err=True)
        return ExitStatus.INTERRUPTED


def _make_out_dir(folder: str) -> None:
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        msg = f"cannot create --out-dir {folder}: {e.strerror}"
        raise UsageError(msg) from None


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so the batch stops as on Ctrl-C (temporary files removed)."""


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """While the batch runs, SIGTERM raises :class:`Terminated` (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@dataclass
class Batch:
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
    def from_params(cls, tasks: list[Task], params: dict[str, Any], to_stdout: bool) -> Batch:
        workers = params.get("jobs") or usable_cores()
        quiet = params.get("quiet", False)
        many = len(tasks) > 1
        if params.get("threads") is None and workers > 1 and many and not params.get("dask_address"):
            tasks = share_cores(tasks, min(workers, len(tasks)))
        return cls(
            tasks=tasks,
            reporter=Reporter(params.get("as_json", False), quiet, to_stdout, debug=_debug()),
            workers=workers,
            dask_address=params.get("dask_address"),
            ordered=params.get("ordered", False),
            fail_fast=params.get("fail_fast", False),
            summary=many and not quiet,
            progress=many and sys.stderr.isatty(),
        )

    def run(self) -> int:
        stop = threading.Event()
        counts = {"ok": 0, "error": 0}
        status = ExitStatus.OK
        t0 = time.perf_counter()
        try:
            with sigterm_raises(), progress_bar(len(self.tasks), self.progress) as advance, \
                    closing(self._outcomes(stop)) as outcomes:
                for outcome in in_order(outcomes) if self.ordered else outcomes:
                    status = max(status, outcome.status)
                    counts["ok" if outcome.status == ExitStatus.OK else "error"] += 1
                    self._report(outcome)
                    advance()
                    if self.fail_fast and outcome.status != ExitStatus.OK:
                        stop.set()
        except BaseException:
            remove_temporaries(t.output for t in self.tasks if isinstance(t, Job))
            raise
        if self.summary:
            click.echo(self._summary_line(counts, time.perf_counter() - t0, stop.is_set()), err=True)
        return status

    def _outcomes(self, stop: threading.Event) -> Iterator[Outcome]:
        if self.dask_address is not None:
            return run_dask(self.tasks, self.dask_address, stop)
        return run_local(self.tasks, self.workers, stop)

    def _report(self, outcome: Outcome) -> None:
        result = outcome.result
        if result.stdout_bytes is not None:
            out = _stdout_binary()
            out.write(result.stdout_bytes)
            out.flush()
        self.reporter.emit(result.record, outcome.traceback)

    def _summary_line(self, counts: dict[str, int], seconds: float, stopped: bool) -> str:
        where = f"Dask at {self.dask_address}" if self.dask_address else (
            f"{min(self.workers, len(self.tasks))} workers" if self.workers > 1 else "1 worker")
        line = f"convcli: {counts['ok']} done, {counts['error']} failed in {seconds:.2f} s ({where})"
        not_run = len(self.tasks) - counts["ok"] - counts["error"]
        if stopped and not_run:
            line += f"; stopped at the first failure (--fail-fast), {not_run} not run"
        return line


def share_cores(tasks: list[Task], workers: int) -> list[Task]:
    """Give each worker process its share of the cores for the engine's threads (no oversubscription)."""
    threads = max(1, usable_cores() // workers)
    return [dataclasses.replace(t, engine=dataclasses.replace(t.engine, threads=threads))
            if isinstance(t, Job) else t for t in tasks]


def in_order(outcomes: Iterator[Outcome]) -> Iterator[Outcome]:
    """Outcomes in input order: each is held until those before it are out (leftovers at the end)."""
    held: dict[int, Outcome] = {}
    expected = 0
    for outcome in outcomes:
        held[outcome.index] = outcome
        while expected in held:
            yield held.pop(expected)
            expected += 1
    for index in sorted(held):  # after --fail-fast some inputs never ran
        yield held[index]


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


def _debug() -> bool:
    ctx = click.get_current_context(silent=True)
    return bool(ctx and ctx.find_root().params.get("debug"))
