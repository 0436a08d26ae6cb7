"""One input through one pipeline: header -> plan -> pixels -> pixels out -> record.

``process(job)`` is a plain function of a picklable ``Job``, so the same work runs
in this process, in a process pool (``--jobs``) or as a Dask task. It raises
:class:`convcli.errors.ConvcliError` subclasses; the batch layer turns them into
error records and exit statuses.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from convcli import streaming
from convcli.core.pixels import to_pixels
from convcli.engine import resolve_threads
from convcli.errors import UsageError
from convcli.io.decode import DEFAULT_MAX_PIXELS, ImageHeader, read_header, read_image
from convcli.io.encode import encode_float, encode_image
from convcli.io.files import write_atomic
from convcli.io.formats import FORMATS, format_for_path
from convcli.pipeline import EngineOptions, Pipeline, nchw


@dataclass(frozen=True)
class OutputOptions:
    """How float results become a file."""

    range_policy: str | None = None  # None: the command's default (see choose_policy)
    default_policy: str = "clip"  # the command's default when range_policy is None
    bit_depth: str | None = None  # "8", "16", "float" or None (= as the input)
    fmt: str | None = None  # None: from the output's extension
    quality: int | None = None
    compress_level: int | None = None


@dataclass(frozen=True)
class Job:
    """Everything needed to process one input, picklable."""

    source: str  # display name: a path or "-"
    output: str | None  # a path, "-" for stdout, None for a dry run
    pipeline: Pipeline
    data: bytes | None = None  # the image bytes when read from stdin
    gray: bool = False
    linear_light: bool = False
    dry_run: bool = False
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    engine: EngineOptions = field(default_factory=EngineOptions)
    out: OutputOptions = field(default_factory=OutputOptions)
    montage: str | None = None


@dataclass
class Result:
    """A finished job: its report record and, for ``-o -``, the bytes for stdout."""

    record: dict[str, Any]
    stdout_bytes: bytes | None = None


def choose_policy(out: OutputOptions, channels: int) -> str:
    """The --range policy: as given, else normalize for feature maps, else the command's default."""
    if out.range_policy is not None:
        return out.range_policy
    if channels not in (1, 3):
        return "normalize"
    return out.default_policy


def output_format(job: Job) -> str:
    if job.out.fmt is not None:
        return job.out.fmt
    if job.output in (None, "-"):
        return "png"
    return format_for_path(job.output)


def process(job: Job) -> Result:
    """Run one job; returns its record (status ok). Raises ConvcliError on failure."""
    t0 = time.perf_counter()
    src: str | Path | bytes = job.data if job.data is not None else Path(job.source)
    if job.out.bit_depth == "float" and job.output is not None and \
            not FORMATS[output_format(job)].raw_float:
        msg = (f"--bit-depth float writes raw float32 values: use a .npy or .tif output, "
               f"not {output_format(job)}")
        raise UsageError(msg)
    header = read_header(src, gray=job.gray, max_pixels=job.max_pixels)
    plans = job.pipeline.plan((header.channels, header.height, header.width))
    record: dict[str, Any] = {
        "input": job.source,
        "output": job.output,
        "status": "ok",
        "input_shape": nchw((header.channels, header.height, header.width)),
        "output_shape": nchw(plans[-1].out_shape) if plans else None,
        "stages": [p.record() for p in plans],
    }
    notes = list(header.notes)
    if header.has_alpha:
        notes.append("alpha premultiplied and filtered with the same kernel" if job.pipeline.keeps_alpha
                     else "alpha dropped: a stage mixes or replaces channels")
    if job.dry_run:
        record["dry_run"] = True
        record["notes"] = notes
        record["seconds"] = round(time.perf_counter() - t0, 4)
        return Result(record)

    threads = resolve_threads(job.engine.threads)  # one count for the engine, to_pixels and the PNG writer
    if _streams(job, header):
        return _process_streaming(job, src, record, notes, t0, threads)
    img = read_image(src, gray=job.gray, max_pixels=job.max_pixels)
    maxval = float(img.header.maxval)
    panels: list[Any] = []
    on_stage = None
    if job.montage:
        from convcli import views

        panels.extend(views.stage_panels(None, img.color, maxval, 0))
        index = itertools.count(1)

        def on_stage(plan: Any, x: np.ndarray) -> None:
            panels.extend(views.stage_panels(plan, x, maxval, next(index)))

    values, alpha = job.pipeline.run(img.color, dataclasses.replace(job.engine, threads=threads),
                                     alpha=img.alpha, maxval=maxval,
                                     linear_light=job.linear_light, on_stage=on_stage)
    img.color, img.alpha = np.empty((0, 0, 1), dtype=np.float32), None  # free the input before quantising
    if job.montage:
        from convcli import views

        montage_path = views.montage_path(job.montage, job.source)
        write_atomic(montage_path, views.montage_png(panels, title=Path(job.source).name, threads=threads))
        record["montage"] = montage_path
    fmt = output_format(job)
    channels = values.shape[2]
    info = FORMATS[fmt]
    feature_maps = channels not in (1, 3) and not info.raw_float and job.out.range_policy is None
    if feature_maps:
        if job.output in (None, "-"):
            msg = f"the result has {channels} channels: give -o FILE (one image per channel) or -o x.npy"
            raise UsageError(msg)
        from convcli import views

        files = views.feature_map_files(values, job.output, fmt, job.pipeline.stages[-1].op, threads=threads)
        for path, data in files:
            write_atomic(path, data)
        record["outputs"] = [path for path, _ in files[:-1]]
        record["range"] = _range_record("normalize", values)
        record["notes"] = notes + [f"{channels} channels: one normalised grey image each, grid at output"]
        record["seconds"] = round(time.perf_counter() - t0, 4)
        return Result(record)
    if not _integer_output(job):
        data = encode_float(values[:, :, 0] if channels == 1 else values, fmt)
        record["range"] = _range_record("raw", values)
    else:
        policy = choose_policy(job.out, channels)
        if channels not in (1, 3):
            msg = (f"the result has {channels} channels; write it as .npy, or end the chain with a "
                   "layer of 1 or 3 channels")
            raise UsageError(msg)
        bits, rescale = _output_bits(job, img.header)
        if rescale != 1.0:
            values = values * rescale
        pixels, stats = to_pixels(values[:, :, 0] if channels == 1 else values, policy, bits, threads=threads)
        apix = None
        if alpha is not None:
            apix, _ = to_pixels(alpha * rescale, "clip", bits, threads=threads)
        data, enc_notes = encode_image(pixels, apix, fmt, icc_profile=img.icc_profile,
                                               quality=job.out.quality,
                                               compress_level=job.out.compress_level, threads=threads)
        notes.extend(enc_notes)
        record["range"] = dataclasses.asdict(stats)
    return _finish(job, record, notes, data, t0)


def _output_bits(job: Job, header: ImageHeader) -> tuple[int, float]:
    """The output's bit depth and the factor from the input's scale to it.

    --bit-depth other than the input's rescales (65535 -> 255, 255 -> 65535) before quantising,
    colour and alpha alike; the range statistics are then on the output's scale.
    """
    bits = int(job.out.bit_depth) if job.out.bit_depth in ("8", "16") else header.bit_depth
    return bits, (2**bits - 1) / float(header.maxval)


def _range_record(policy: str, values: np.ndarray) -> dict[str, Any]:
    """The report's range block for values written without clipping (raw floats, normalised maps)."""
    return {"policy": policy, "min": float(np.min(values)), "max": float(np.max(values)),
            "clipped_fraction": 0.0}


def _integer_output(job: Job) -> bool:
    """Whether the output holds 8/16-bit pixels (not raw float values)."""
    fmt = output_format(job)
    return not (FORMATS[fmt].raw_float and (fmt == "npy" or job.out.bit_depth == "float"))


def _streams(job: Job, header: ImageHeader) -> bool:
    """Whether the job runs band by band (streaming.stream_stage) with the same numbers."""
    if header.has_alpha or job.montage or job.linear_light or not _integer_output(job):
        return False
    shape = (header.height, header.width, header.channels)
    return streaming.can_stream(streaming.window_stage(job.pipeline), shape,
                                choose_policy(job.out, header.channels))


def _process_streaming(job: Job, src: str | Path | bytes, record: dict[str, Any], notes: list[str],
                       t0: float, threads: int) -> Result:
    """The rest of :func:`process` for a single window stage, 8/16-bit in and out, computed in bands."""
    img = read_image(src, gray=job.gray, max_pixels=job.max_pixels, keep_integer=True)
    stage = streaming.window_stage(job.pipeline)
    assert stage is not None
    policy = choose_policy(job.out, img.header.channels)
    bits, rescale = _output_bits(job, img.header)
    pixels, stats = streaming.stream_stage(img.color, stage, job.engine, policy=policy, bits=bits,
                                           threads=threads, rescale=rescale)
    img.color = np.empty((0, 0, 1))  # the input is no longer needed while encoding
    data, enc_notes = encode_image(pixels, None, output_format(job), icc_profile=img.icc_profile,
                                           quality=job.out.quality, compress_level=job.out.compress_level,
                                           threads=threads)
    del pixels
    notes.extend(enc_notes)
    record["range"] = dataclasses.asdict(stats)
    return _finish(job, record, notes, data, t0)


def _finish(job: Job, record: dict[str, Any], notes: list[str], data: bytes, t0: float) -> Result:
    """Write (or hand back for stdout) the encoded bytes; complete the record."""
    stdout_bytes = None
    if job.output == "-":
        stdout_bytes = data
    elif job.output is not None:
        write_atomic(job.output, data)
    record["notes"] = notes
    record["seconds"] = round(time.perf_counter() - t0, 4)
    return Result(record, stdout_bytes)
