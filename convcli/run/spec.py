"""The run spec: everything a command was asked to do, as frozen typed values built once at the CLI edge.

``convcli.cli.options.run_spec`` builds a :class:`RunSpec` from the parsed flags; from
there on nothing reads a flag by name. Adding an option means one click decorator, one
field here, and the one place that uses it.
"""

from __future__ import annotations

from dataclasses import field

from convcli.core.records import record
from convcli.io.decode import DEFAULT_MAX_PIXELS
from convcli.pipeline import EngineOptions, Pipeline


@record(frozen=True, kw_only=True)
class Command:
    """What a command contributes: its pipeline, its name in output files, its defaults."""

    pipeline: Pipeline
    op: str  # for {op} in output names: "sharpen", "blur", "edges", "down2"
    default_policy: str = "clip"
    gray: bool = False
    show_weights: bool = False  # chain conv --show-weights
    direction_out: str | None = None  # edges --direction-out FILE.npy ({stem} filled per input)
    #: files the pipeline was built from (-k @FILE, conv --weights/--bias): inputs that no planned
    #: output may overwrite, as the images may not be
    reads: tuple[str, ...] = ()


@record(frozen=True, kw_only=True)
class OutputSpec:
    """Where results go and how floats become a file."""

    output: str | None = None  # -o PATH ("-" = stdout)
    out_dir: str | None = None
    name_template: str | None = None  # --name; None: DEFAULT_TEMPLATE beside the input or in out_dir
    fmt: str | None = None  # --format; None: from the output's extension
    range_policy: str | None = None  # --range; None: the command's default
    bit_depth: str | None = None  # "8", "16", "float" or None (as the input)
    quality: int | None = None
    compress_level: int | None = None
    montage: str | None = None  # --montage PATH (with {stem} for batches)
    frames: tuple[int, ...] | None = None  # --frames: None all, (0,) first, or the indices given
    dither: bool = True  # --dither/--no-dither: Floyd-Steinberg when a GIF frame needs a palette
    strip: bool = False  # --strip: write no metadata and no ICC profile


@record(frozen=True, kw_only=True)
class BatchOptions:
    """How the inputs are spread: in this process, a pool of ``jobs`` workers, or Dask."""

    jobs: int | None = None  # None: the usable cores
    ordered: bool = False
    fail_fast: bool = False
    dask_address: str | None = None


@record(frozen=True, kw_only=True)
class ReportOptions:
    """What is printed."""

    as_json: bool = False
    quiet: bool = False
    dry_run: bool = False
    debug: bool = False


@record(frozen=True, kw_only=True)
class RunSpec:
    """One invocation of an image command (or chain)."""

    images: tuple[str, ...]
    recursive: bool = False
    gray: bool = False
    linear_light: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS
    output: OutputSpec = field(default_factory=OutputSpec)
    engine: EngineOptions = field(default_factory=EngineOptions)
    batch: BatchOptions = field(default_factory=BatchOptions)
    report: ReportOptions = field(default_factory=ReportOptions)
    emit: str | None = None  # --emit LIBRARY: print code instead of running
