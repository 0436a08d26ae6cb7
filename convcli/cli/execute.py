"""Running an image command over its inputs: jobs, records out, exit status.

Shared by filter, blur, edges, downsample and chain. stdout carries data (JSON
Lines or the image); the human report goes to stdout only when stdout carries
nothing else, otherwise to stderr.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any, BinaryIO, TextIO

import click

from .. import imageio
from ..batch import expand_inputs, plan_outputs
from ..errors import ConvcliError, ExitStatus, UsageError
from ..pipeline import EngineOptions, Pipeline
from ..report import json_line, write_plain, write_table
from ..runner import Job, OutputOptions, Result, process


@dataclass(frozen=True)
class Command:
    """What a command contributes: its pipeline, its name in output files, its defaults."""

    pipeline: Pipeline
    op: str  # for {op} in output names: "sharpen", "blur", "edges", "down2"
    default_policy: str = "clip"
    gray: bool = False
    show_weights: bool = False  # chain conv --show-weights


class Reporter:
    """Writes one record per input to the right stream in the right form."""

    def __init__(self, as_json: bool, quiet: bool, image_on_stdout: bool) -> None:
        self.as_json = as_json
        self.quiet = quiet
        self.stream: TextIO = sys.stderr if image_on_stdout else sys.stdout
        self.tty = self.stream.isatty()

    def emit(self, record: dict[str, Any]) -> None:
        if record.get("status") != "ok":
            click.echo(f"convcli: error: {record['input']}: {record['error']}", err=True)
        if self.as_json:
            self.stream.write(json_line(record) + "\n")
            self.stream.flush()
        elif not self.quiet and record.get("status") == "ok":
            (write_table if self.tty else write_plain)(record, self.stream)


def build_jobs(cmd: Command, params: dict[str, Any]) -> list[Job]:
    inputs = expand_inputs(params["images"], recursive=params.get("recursive", False))
    if not inputs:
        msg = "no images found in the inputs given"
        raise UsageError(msg)
    fmt = params.get("fmt")
    ext = imageio.extension_for(fmt) if fmt else None
    if params.get("output") not in (None, "-") and fmt is None:
        imageio.format_for_path(params["output"])  # an unknown extension is a usage error, before work
    outputs = plan_outputs(inputs, cmd.op, output=params.get("output"), out_dir=params.get("out_dir"),
                           template=params.get("name_template"), ext_for=ext)
    stdin_data: bytes | None = None
    if any(i.is_stdin for i in inputs):
        stdin_data = sys.stdin.buffer.read()
    eng = EngineOptions(dtype="float64" if params.get("float64") else "float32",
                        method=params.get("method", "auto"), threads=params.get("threads"))
    out = OutputOptions(range_policy=params.get("range_policy"), default_policy=cmd.default_policy,
                        bit_depth=params.get("bit_depth"), fmt=fmt, quality=params.get("quality"),
                        compress_level=params.get("compress_level"))
    max_pixels = params.get("max_pixels") or imageio.DEFAULT_MAX_PIXELS
    return [
        Job(source=item.name, output=o, pipeline=cmd.pipeline,
            data=stdin_data if item.is_stdin else None, gray=cmd.gray or params.get("gray", False),
            linear_light=params.get("linear_light", False), dry_run=params.get("dry_run", False),
            max_pixels=max_pixels, engine=eng, out=out, montage=params.get("montage"))
        for item, o in zip(inputs, outputs, strict=True)
    ]


def _stdout_binary() -> BinaryIO:
    return sys.stdout.buffer


def run_command(cmd: Command, params: dict[str, Any]) -> int:
    """Plan, run every job, report; returns the exit status."""
    jobs = build_jobs(cmd, params)
    to_stdout = any(j.output == "-" for j in jobs) and not params.get("dry_run")
    if to_stdout and sys.stdout.isatty():
        msg = "refusing to write a binary image to a terminal; redirect stdout or use -o FILE"
        raise UsageError(msg)
    if params.get("out_dir") and not params.get("dry_run"):
        try:
            os.makedirs(params["out_dir"], exist_ok=True)
        except OSError as e:
            msg = f"cannot create --out-dir {params['out_dir']}: {e.strerror}"
            raise UsageError(msg) from None
    reporter = Reporter(params.get("as_json", False), params.get("quiet", False), to_stdout)
    status = ExitStatus.OK
    for job in jobs:
        result, job_status = run_one(job)
        status = max(status, job_status)
        if result.stdout_bytes is not None:
            out = _stdout_binary()
            out.write(result.stdout_bytes)
            out.flush()
        reporter.emit(result.record)
    return status


def run_one(job: Job) -> tuple[Result, ExitStatus]:
    """process() with a failure of this input turned into an error record and its exit status.

    An image too small for the kernel is a usage error (2) for that input; the
    other inputs still run, and the batch ends with the worst status.
    """
    try:
        return process(job), ExitStatus.OK
    except ConvcliError as e:
        return Result({"input": job.source, "status": "error", "error": str(e)}), e.exit_status
