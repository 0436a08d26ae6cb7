"""One planned input executed: decode -> pipeline -> pixels -> encode -> write, and its report record.

A :class:`Job` is the output plan of one input (made by :mod:`convcli.run.plan` from the
header, and checked with every other plan before any work): every file it writes and
how is already decided here; :func:`process` only carries it out. It is a plain
function of a picklable Job, so the same work runs in this process, in a process pool
or as a Dask task. It raises :class:`convcli.errors.ConvcliError` subclasses; the
batch layer turns them into error records and exit statuses.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from convcli import streaming
from convcli.core.color import premultiply
from convcli.core.pixels import RangeStats, to_pixels
from convcli.core.records import record
from convcli.engine import resolve_threads
from convcli.errors import InputError
from convcli.io.decode import (
    DEFAULT_MAX_PIXELS,
    DecodedImage,
    ImageHeader,
    read_header,
    read_image,
    read_rows,
)
from convcli.io.encode import encode_float, encode_image
from convcli.io.files import write_atomic
from convcli.io.metadata import Metadata, metadata_notes
from convcli.pipeline import EngineOptions, Pipeline, nchw
from convcli.report import shape_text
from convcli.run.overlap import Abandoned, Background, RowProgress

#: What the main output holds: 8/16-bit pixels, raw float32 values, or one grey map per channel + a grid.
OutputKind = Literal["pixels", "float", "maps"]
#: Pixels from which a streamed image overlaps its steps on threads (decode with filtering, filtering
#: with the PNG writer's compression). Below ~1 megapixel a whole PNG decodes in ~25 ms: the overlap
#: could save a few ms, and a small command starts no thread at all (tests/test_startup.py).
OVERLAP_PIXELS = 1 << 20


@record(frozen=True)
class FileField:
    """One kind of file a job writes: the one table (:data:`JOB_FILES`) that planning, the safety check,
    clean-up, ``--dask``'s absolute paths and the report's names all read."""

    what: str  # in messages: "the montage m.png would overwrite..."
    attr: str  # the Job field holding it: a path, "-" or None (output), or a tuple of paths
    record_key: str  # the report record's key for it
    named: bool  # placed by --name under --out-dir (so it must stay inside it)


JOB_FILES: tuple[FileField, ...] = (
    FileField("output", "output", "output", named=True),
    FileField("channel map", "channel_maps", "outputs", named=True),
    FileField("montage", "montage", "montage", named=False),
    FileField("direction map", "direction_out", "direction", named=False),
)


def _paths(value: str | tuple[str, ...] | None) -> tuple[str, ...]:
    """The files a JOB_FILES field names: none for None and "-" (stdout)."""
    if isinstance(value, tuple):
        return value
    return () if value in (None, "-") else (value,)  # type: ignore[return-value]


@record(frozen=True, kw_only=True)
class Job:
    """The plan of one input, picklable: what to compute and every file to write."""

    source: str  # display name: a path or "-"
    pipeline: Pipeline
    data: bytes | None = None  # the image bytes when read from stdin
    gray: bool = False
    linear_light: bool = False
    dry_run: bool = False
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    engine: EngineOptions = field(default_factory=EngineOptions)
    output: str | None = None  # a path, "-" for stdout, None: not written
    fmt: str = "png"
    kind: OutputKind = "pixels"
    policy: str = "clip"  # the --range policy ("raw" for floats, "normalize" for maps)
    bits: int | None = None  # 8 or 16 for pixels, as written (the plan decides); None: as the input
    bits_note: str | None = None  # why 16 bits became 8 ("reduced to 8-bit (JPEG has no 16-bit)")
    channel_maps: tuple[str, ...] = ()  # kind "maps": one grey image per channel; the grid goes to output
    montage: str | None = None
    direction_out: str | None = None  # edges with a compass operator: winning angles as .npy
    quality: int | None = None
    compress_level: int | None = None
    temp_tag: str = ""  # this run's tag in temporary file names (cleanup removes only its own)
    notes: tuple[str, ...] = ()  # the plan's: options the output has no use for, padding PyTorch refuses
    frames: tuple[int, ...] | None = None  # frames filtered one by one (_process_frames); None: the first
    samples: int = 0  # input samples to filter (H * W * C * frames), from the header: the work's size
    header: ImageHeader | None = None  # read when the run was planned: the job does not read it again
    dither: bool = True  # GIF output: Floyd-Steinberg when a frame needs a palette
    strip: bool = False  # write no metadata and no ICC profile

    def planned(self) -> list[tuple[FileField, str]]:
        """Every file this job writes (stdout excluded), with its kind."""
        return [(f, path) for f in JOB_FILES for path in _paths(getattr(self, f.attr))]

    def files(self) -> list[str]:
        """Every file this job writes (stdout excluded)."""
        return [path for _, path in self.planned()]

    def with_paths(self, change: Callable[[str], str]) -> Job:
        """This job with ``change`` applied to every file it reads or writes (stdin's data, stdout
        and absent files kept): ``--dask`` made the paths absolute by hand and left
        ``--direction-out`` relative to the worker's folder."""
        changed: dict[str, Any] = {}
        for f in JOB_FILES:
            value = getattr(self, f.attr)
            if isinstance(value, tuple):
                changed[f.attr] = tuple(change(p) for p in value)
            elif _paths(value):
                changed[f.attr] = change(value)
        source = self.source if self.data is not None else change(self.source)
        return dataclasses.replace(self, source=source, **changed)


@record
class Result:
    """A finished job: its report record and, for ``-o -``, the bytes for stdout."""

    record: dict[str, Any]
    stdout_bytes: bytes | None = None


def _source(job: Job) -> str | Path | bytes:
    return job.data if job.data is not None else Path(job.source)


def process(job: Job) -> Result:
    """Run one job; returns its record (status ok). Raises ConvcliError on failure.

    Warnings raised on the way (Pillow's, NumPy's overflow...) are never printed: each
    distinct one becomes a note of the record ("warning: ...").
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = _process(job)
    seen = set(result.record["notes"])
    for w in caught:
        note = "warning: " + " ".join(f"{w.category.__name__}: {w.message}".split())
        if note not in seen:
            seen.add(note)
            result.record["notes"].append(note)
    return result


def _process(job: Job) -> Result:
    t0 = time.perf_counter()
    src = _source(job)
    header = job.header or read_header(src, gray=job.gray, max_pixels=job.max_pixels)
    plans = job.pipeline.plan((header.channels, header.height, header.width))
    record: dict[str, Any] = {
        "input": job.source,
        "output": job.output,
        "status": "ok",
        "input_shape": nchw((header.channels, header.height, header.width)),
        "output_shape": plans[-1].stage.shown_shape(plans[-1].out_shape) if plans else None,
        "stages": [p.record() for p in plans],
    }
    notes = list(header.notes) + list(job.notes)
    if header.has_alpha:
        notes.append(job.pipeline.alpha_note())
    if job.linear_light:
        notes.append("filtered in linear light: sRGB decoded before the stages, re-encoded after")
    if job.frames is not None:  # frame by frame: shapes [T, C, H, W]
        _frames_record(job, header, record, notes)
    if job.dry_run:
        record["dry_run"] = True
        if job.bits_note:  # planned: the dry run says what the run will write
            notes.append(job.bits_note)
        return _finish(job, record, notes, None, t0)
    threads = resolve_threads(job.engine.threads)  # one count for the engine, to_pixels and the PNG writer
    if job.frames is not None:
        return _process_frames(job, src, header, record, notes, threads, t0)
    if _streams(job, header):
        data, stats = _streamed(job, src, notes, threads, header)
        record["range"] = dataclasses.asdict(stats)
        return _finish(job, record, notes, data, t0)
    return _process_whole(job, src, header, record, notes, threads, t0)


def as_planned(planned: ImageHeader, read: ImageHeader) -> None:
    """The image decoded is the one planned from its header: a file replaced in between (a batch over a
    folder that another job writes) fails alone, InputError, instead of being filtered and reported as
    the plan says (a 16-bit grey image that replaced an 8-bit RGB one was written 8-bit, its report
    saying [1, 3, 1200, 1200])."""
    keys = ("width", "height", "channels", "has_alpha", "bit_depth", "format", "n_frames")
    if any(getattr(planned, k) != getattr(read, k) for k in keys):
        msg = (f"the file changed while the run was on (read as {_described(read)}, planned as "
               f"{_described(planned)}): run it again")
        raise InputError(msg)


def _described(h: ImageHeader) -> str:
    frames = f", {h.n_frames} frames" if h.n_frames > 1 else ""
    if h.format == "NPY":  # values used as they are: no bit depth
        return f"a {h.width}x{h.height} {h.mode.removeprefix('npy ')} .npy array of {h.channels} channels"
    colour = {1: "grey", 3: "RGB"}.get(h.channels, f"{h.channels}-channel")
    colour += "+alpha" if h.has_alpha else ""
    return f"a {h.width}x{h.height} {h.bit_depth}-bit {colour} {h.format}{frames}"


def _process_whole(job: Job, src: str | Path | bytes, header: ImageHeader, record: dict[str, Any],
                   notes: list[str], threads: int, t0: float) -> Result:
    """The image decoded whole, run through the pipeline (every stage drawn for a montage), and
    written as the plan's kind says: channel maps, raw floats or pixels."""
    img = read_image(src, gray=job.gray, max_pixels=job.max_pixels)
    as_planned(header, img.header)
    notes.extend(n for n in img.header.notes if n not in notes)  # warnings while decoding
    maxval = float(img.header.maxval)
    panels: list[Any] = []
    side: dict[str, np.ndarray] | None = {} if job.direction_out else None
    values, alpha = job.pipeline.run(img.color, dataclasses.replace(job.engine, threads=threads),
                                     alpha=img.alpha, maxval=maxval, linear_light=job.linear_light,
                                     on_stage=_montage_hook(job, img.color, img.alpha, maxval, panels),
                                     side=side)
    img.color, img.alpha = np.empty((0, 0, 1), dtype=np.float32), None  # free the input before quantising
    if job.montage:
        _write(job, job.montage, _montage_png(panels, Path(job.source).name, threads))
        record["montage"] = job.montage
    if job.direction_out and side is not None and "direction" in side:
        d = side.pop("direction")
        _write(job, job.direction_out, encode_float(d[:, :, 0] if d.shape[2] == 1 else d, "npy"))
        record["direction"] = job.direction_out
    if job.kind == "maps":
        return _finish(job, record, notes, _maps_output(job, values, record, notes, threads), t0)
    if job.kind == "float":
        return _finish(job, record, notes, _float_output(job, img, values, alpha, record, notes), t0)
    return _finish(job, record, notes, _pixels_output(job, img, values, alpha, record, notes, threads), t0)


def _montage_hook(job: Job, color: np.ndarray, alpha: np.ndarray | None, maxval: float,
                  panels: list[Any]) -> Callable[[Any, np.ndarray], None] | None:
    """With --montage: the input's panel now, and the ``on_stage`` that adds each stage's (the last
    drawn as the output is, by its --range); None without. An image with alpha is drawn over black
    throughout, as the stages see it (premultiplied): its input was drawn without alpha, the stages
    over black, and a blur seemed to black out what was transparent."""
    if not job.montage:
        return None
    from convcli.teach.render import stage_panels

    shown_input = color if alpha is None else premultiply(color, alpha, maxval)
    panels.extend(stage_panels(None, shown_input, maxval, 0))
    index = itertools.count(1)
    last = len(job.pipeline.stages)
    shown = job.policy if job.kind == "pixels" else None  # maps and raw floats have their own

    def on_stage(plan: Any, x: np.ndarray) -> None:
        i = next(index)
        panels.extend(stage_panels(plan, x, maxval, i, shown if i == last else None))

    return on_stage


def _maps_output(job: Job, values: np.ndarray, record: dict[str, Any], notes: list[str],
                 threads: int) -> None:
    """One normalised grey image per channel and the grid at the output (written here: no bytes)."""
    from convcli.teach.render import GRID_CHANNELS

    assert job.output is not None
    _write_maps(job, values, threads)
    record["outputs"] = list(job.channel_maps)
    record["range"] = _range_record("normalize", values)
    c = values.shape[2]
    shown = f"the first {GRID_CHANNELS} in a grid" if c > GRID_CHANNELS else "grid"
    notes.append(f"{c} channels: one normalised {job.bits or 8}-bit grey image each, {shown} at output")
    if job.bits_note:
        notes.append(job.bits_note)


def _float_output(job: Job, img: DecodedImage, values: np.ndarray, alpha: np.ndarray | None,
                  record: dict[str, Any], notes: list[str]) -> bytes:
    """The result as raw floats (.npy, float TIFF): its bytes."""
    if job.pipeline.stages and job.pipeline.stages[-1].op == "flatten":
        values = values.reshape(-1)  # the vector [C*H*W], written as it is
    one = values.ndim == 3 and values.shape[2] == 1 and not img.header.channel_axis
    data = encode_float(values[:, :, 0] if one else values, job.fmt)
    if alpha is not None:
        notes.append(f"alpha not written: raw floats ({job.fmt}) hold the filtered colour channels only, "
                     "un-premultiplied")
    notes.extend(metadata_notes(None if job.strip else img.metadata, job.fmt))
    record["range"] = _range_record("raw", values)
    return data


def _pixels_output(job: Job, img: DecodedImage, values: np.ndarray, alpha: np.ndarray | None,
                   record: dict[str, Any], notes: list[str], threads: int) -> bytes:
    """The result quantised by the --range policy to the planned bits and encoded: its bytes."""
    bits, rescale = _output_bits(job, img.header, notes)
    if rescale != 1.0:
        values = values * rescale
    pixels, stats = to_pixels(values[:, :, 0] if values.shape[2] == 1 else values, job.policy, bits,
                              threads=threads)
    apix = None
    if alpha is not None:
        apix, _ = to_pixels(alpha * rescale, "clip", bits, threads=threads)
    icc, meta = _metadata_for(job, img.icc_profile, img.metadata, notes)
    data, enc_notes = encode_image(pixels, apix, job.fmt, icc_profile=icc, quality=job.quality,
                                   compress_level=job.compress_level, threads=threads, metadata=meta,
                                   dither=job.dither)
    notes.extend(enc_notes)
    record["range"] = dataclasses.asdict(stats)
    return data


def _output_bits(job: Job, header: ImageHeader, notes: list[str]) -> tuple[int, float]:
    """The output's bit depth, as planned (:func:`convcli.run.plan.output_bits`), and the factor from
    the input's scale to it: a bit depth other than the input's rescales (65535 -> 255, 255 -> 65535)
    before quantising, colour and alpha alike; the range statistics are then on the output's scale."""
    bits = job.bits or header.bit_depth
    if job.bits_note:
        notes.append(job.bits_note)
    return bits, (2**bits - 1) / float(header.maxval)


def _range_record(policy: str, values: np.ndarray) -> dict[str, Any]:
    """The report's range block for values written without clipping (raw floats, normalised maps)."""
    return {"policy": policy, "min": float(np.min(values)), "max": float(np.max(values)),
            "clipped_fraction": 0.0}


def _streams(job: Job, header: ImageHeader) -> bool:
    """Whether the job runs band by band (streaming.stream_stage) with the same numbers."""
    if header.has_alpha or job.montage or job.linear_light or job.kind != "pixels" or header.format == "NPY":
        return False
    shape = (header.height, header.width, header.channels)
    return streaming.can_stream(streaming.window_stage(job.pipeline), shape, job.policy)


def _streamed(job: Job, src: str | Path | bytes, notes: list[str], threads: int,
              header: ImageHeader) -> tuple[bytes, RangeStats]:
    """A single window stage, 8/16-bit in and out, computed in bands; returns the encoded file.

    With more than one thread and at least :data:`OVERLAP_PIXELS`, three steps overlap: a plain
    PNG input is still inflating (:func:`read_rows`) while its first rows are filtered, and a
    PNG output compresses the rows already final (:mod:`convcli.run.overlap`) while later
    ones are computed.
    """
    stage = streaming.window_stage(job.pipeline)
    assert stage is not None
    big = threads > 1 and header.width * header.height >= OVERLAP_PIXELS
    with read_rows(src, gray=job.gray, max_pixels=job.max_pixels, background=big) as (img, wait, decoding):
        as_planned(header, img.header)
        # The decoder is the slowest of the three steps (4096² RGB: 0.44 s of one core, against 0.27 s
        # for the Gaussian and 0.11 s for the PNG writer): it keeps a core of its own, the filter and the
        # writer share the others. On 2 cores, sharing all of them with it took x1.3 the wall time.
        work = max(1, threads - 1) if decoding else threads
        notes.extend(n for n in img.header.notes if n not in notes)  # warnings while decoding
        bits, rescale = _output_bits(job, img.header, notes)
        icc, meta = _metadata_for(job, img.icc_profile, img.metadata, notes)
        pixels = streaming.pixel_array(stage, img.color.shape, bits)

        def encode(ready: Callable[[int], None] | None = None,
                   cores: int = threads) -> tuple[bytes, tuple[str, ...]]:
            return encode_image(pixels, None, job.fmt, icc_profile=icc, quality=job.quality,
                                compress_level=job.compress_level, threads=cores, metadata=meta,
                                dither=job.dither, ready=ready)

        def stream(done: Callable[[int], None] | None = None) -> RangeStats:
            return streaming.stream_stage(img.color, stage, job.engine, policy=job.policy, bits=bits,
                                          threads=work, rescale=rescale, ready=wait, done=done,
                                          out=pixels)[1]

        out_pixels = pixels.shape[0] * pixels.shape[1]
        if threads > 1 and job.fmt == "png" and bits == 8 and out_pixels >= OVERLAP_PIXELS:
            progress = RowProgress()
            writer = Background(lambda: encode(progress.wait, work), "convcli-encode")
            try:
                stats = stream(progress.publish)
            except BaseException:
                progress.fail()
                with contextlib.suppress(Abandoned):
                    writer.result()
                raise
            data, enc_notes = writer.result()
        else:
            stats = stream()
            data, enc_notes = None, ()
    # the decoded input is released here (and the whole file checked), before any encoding left
    if data is None:
        data, enc_notes = encode()
    notes.extend(enc_notes)
    return data, stats


def _metadata_for(job: Job, icc: bytes | None, meta: Metadata,
                  notes: list[str]) -> tuple[bytes | None, Metadata | None]:
    """The ICC profile and metadata to write: none with --strip (the notes say what went)."""
    if not job.strip:
        return icc, meta
    gone = meta.names() + (["ICC"] if icc else [])
    if gone:
        notes.append("metadata stripped (--strip): " + ", ".join(gone))
    return None, None


# --------------------------------------------------------------------------- several frames


def _frames_record(job: Job, header: ImageHeader, record: dict[str, Any], notes: list[str]) -> None:
    """Shapes as [T, C, H, W] and the frames note in place of the header's "first frame of N"."""
    from convcli.io.frames import frames_note

    assert job.frames is not None
    t = len(job.frames)
    for shapes in (record, *record["stages"]):
        for key in ("input_shape", "output_shape"):
            if shapes.get(key):
                shapes[key] = [t, *shapes[key][1:]]
    first = [i for i, n in enumerate(notes) if n.startswith("first frame of")]
    note = frames_note(header, t)
    if first:
        notes[first[0]] = note
    else:
        notes.append(note)


def _process_frames(job: Job, src: str | Path | bytes, header: ImageHeader, record: dict[str, Any],
                    notes: list[str], threads: int, t0: float) -> Result:
    """Filter the planned frames one at a time and write them as one file (one frame: a still).

    Frames are read, filtered, quantised and encoded as the writer asks for them
    (:func:`convcli.io.frames.frame_chunks`), so one frame is held at a time.
    """
    from convcli.io.frames import Frame, FrameWriter, frame_chunks, open_frames

    assert job.frames is not None
    engine = dataclasses.replace(job.engine, threads=threads)
    stats: list[RangeStats] = []
    enc_notes: list[str] = []
    dropped: list[int] = []  # frames whose transparency the first frame's mode has no place for
    stdout_data = None
    with open_frames(src, gray=job.gray, max_pixels=job.max_pixels) as source:
        as_planned(header, source.header)
        maxval = float(source.header.maxval)
        bits, rescale = _output_bits(job, source.header, notes)
        icc, meta = _metadata_for(job, source.icc_profile, source.metadata, notes)

        def filtered() -> Iterator[Frame]:
            for index, color, alpha, info in source.frames(job.frames or ()):
                if info.alpha_dropped:
                    dropped.append(index)
                values, a = job.pipeline.run(color, engine, alpha=alpha, maxval=maxval,
                                             linear_light=job.linear_light)
                del color, alpha
                if rescale != 1.0:
                    values = values * rescale
                pixels, st = to_pixels(values[:, :, 0] if values.shape[2] == 1 else values, job.policy, bits,
                                       threads=threads)
                stats.append(st)
                apix = to_pixels(a * rescale, "clip", bits, threads=threads)[0] if a is not None else None
                yield pixels, apix, info

        chunks: Iterable[bytes]
        if len(job.frames) == 1:
            pixels, apix, _ = next(filtered())
            data, still_notes = encode_image(pixels, apix, job.fmt, icc_profile=icc, quality=job.quality,
                                             compress_level=job.compress_level, threads=threads,
                                             metadata=meta, dither=job.dither)
            enc_notes.extend(still_notes)
            chunks = [data]
        else:
            writer = FrameWriter(fmt=job.fmt, count=len(job.frames), plays=source.plays, icc_profile=icc,
                                 metadata=meta, quality=job.quality, compress_level=job.compress_level,
                                 dither=job.dither, threads=threads)
            chunks = frame_chunks(filtered(), writer, enc_notes)
        if job.output == "-":
            stdout_data = b"".join(chunks)
        elif job.output is not None:
            _write(job, job.output, chunks)
    notes.extend(enc_notes)
    if dropped:
        which = ", ".join(str(i) for i in dropped[:8]) + (", ..." if len(dropped) > 8 else "")
        notes.append(f"alpha of frame{'s' if len(dropped) > 1 else ''} {which} dropped: the first frame "
                     "has none, so transparent pixels count as black")
    record["range"] = {"policy": stats[0].policy, "min": min(s.min for s in stats),
                       "max": max(s.max for s in stats),
                       "clipped_fraction": sum(s.clipped_fraction for s in stats) / len(stats)}
    if job.policy == "normalize":
        notes.append("--range normalize maps each frame's own min..max")
    return _finish(job, record, notes, stdout_data, t0)


def _montage_png(panels: list[Any], title: str, threads: int) -> bytes:
    """The panels side by side as PNG bytes."""
    from convcli.teach.render import make_montage

    data, _ = encode_image(make_montage(panels, title=title), None, "png", threads=threads)
    return data


def _write_maps(job: Job, values: np.ndarray, threads: int) -> None:
    """One normalised grey image per channel at the planned paths, and a labelled grid at the output
    (of the first :data:`GRID_CHANNELS` channels)."""
    from convcli.teach.render import GRID_CHANNELS, feature_maps_to_panels, make_montage

    for i, path in enumerate(job.channel_maps):
        pixels, _ = to_pixels(values[:, :, i], "normalize", job.bits or 8, threads=threads)
        data, _ = encode_image(pixels, None, job.fmt, threads=threads)
        _write(job, path, data)
    c = values.shape[2]
    shape = shape_text(nchw((c, values.shape[0], values.shape[1])))
    panels = feature_maps_to_panels(values, job.pipeline.stages[-1].op, shape, limit=GRID_CHANNELS)
    grid = make_montage(panels, title=f"channels 1-{GRID_CHANNELS} of {c}" if c > GRID_CHANNELS else None)
    data, _ = encode_image(grid, None, job.fmt, threads=threads)
    assert job.output is not None
    _write(job, job.output, data)


def _write(job: Job, path: str, data: bytes | Iterable[bytes]) -> None:
    write_atomic(path, data, tag=job.temp_tag)


def _finish(job: Job, record: dict[str, Any], notes: list[str], data: bytes | None, t0: float) -> Result:
    """Write (or hand back for stdout) the encoded bytes; complete the record."""
    stdout_bytes = None
    if data is not None and job.output == "-":
        stdout_bytes = data
    elif data is not None and job.output is not None:
        _write(job, job.output, data)
    r = record.get("range")
    hint = job.pipeline.range_note(r["policy"], r["clipped_fraction"], r["min"]) if r else None
    if hint:
        notes.append(hint)
    if r and any(isinstance(r.get(k), float) and not math.isfinite(r[k]) for k in ("min", "max")):
        written = "; NaN is written as 0" if job.kind != "float" else ""
        double = " (--float64 computes in double precision)" if job.engine.dtype != "float64" else ""
        notes.append(f"the float result holds inf or NaN (overflow): its range is null in JSON{written}"
                     f"{double}")
    record["notes"] = notes
    record["seconds"] = round(time.perf_counter() - t0, 4)
    return Result(record, stdout_bytes)
