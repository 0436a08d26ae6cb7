"""Output plans: every file a run will write, decided from the headers, checked as one set before any work.

For each input, :func:`plan_input` reads the header alone and decides the main output
(path, format, pixels or raw floats, bit depth, range policy), the per-channel maps of a
feature-map result, and the montage. :func:`check_files` then checks the union of all
plans: no planned file is an input, no two are the same file (symlinks, ``..`` and hard
links resolved), everything named by ``--name`` stays inside ``--out-dir``, names fit
the file system, and an existing target that is not a regular file is refused -- except a
character device (``/dev/null``), which is written in place, never renamed over.
Only then are folders created and pixels read.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Sequence
from pathlib import Path
from string import Formatter

from convcli.core.records import record
from convcli.errors import ConvcliError, ExitStatus, InputError, UsageError, quoted
from convcli.io.decode import ImageHeader, read_header
from convcli.io.encode import eight_bit_reason
from convcli.io.files import DANGLING_LINK, file_kind, make_dirs, os_reason
from convcli.io.formats import FORMATS, extension_for, format_for_path, format_info
from convcli.run.inputs import InputItem, dash_safe, output_extension
from convcli.run.job import Job, OutputKind
from convcli.run.machine import size_text
from convcli.run.spec import Command, OutputSpec, RunSpec

DEFAULT_TEMPLATE = "{stem}.{op}{ext}"
#: The fields a --name template may use; nothing else (no format specs, no attribute access).
TEMPLATE_FIELDS: tuple[str, ...] = ("stem", "ext", "op", "parent", "name")
#: Longest path the check lets through (Linux PATH_MAX).
PATH_MAX = 4096


@record(frozen=True)
class Refusal:
    """An input refused before any work: unreadable header, impossible shape, a directory with no images."""

    source: str
    error: str
    status: ExitStatus


Task = Job | Refusal


# --------------------------------------------------------------------------- names


def check_template(template: str) -> None:
    """Refuse a --name template that could build a name nobody asked for; UsageError names the problem."""
    where = f"--name {template!r}"
    try:
        parts = list(Formatter().parse(template))
    except ValueError as e:
        msg = f"{where}: {e} (write a literal brace as {{{{ or }}}})"
        raise UsageError(msg) from None
    for _literal, field, spec, conversion in parts:
        if field is None:
            continue
        if field not in TEMPLATE_FIELDS:
            known = ", ".join("{" + f + "}" for f in TEMPLATE_FIELDS)
            msg = f"{where}: unknown field {{{field}}} (use {known})"
            raise UsageError(msg)
        if spec or conversion:
            msg = f"{where}: format specs and conversions are not allowed in fields ({{{field}}} alone)"
            raise UsageError(msg)
    if os.path.isabs(template) or template.startswith("~"):
        msg = f"{where}: must be a relative name (it is placed beside the input or in --out-dir)"
        raise UsageError(msg)
    if ".." in Path(template).parts:
        msg = f"{where}: '..' is not allowed (the name stays beside the input or inside --out-dir)"
        raise UsageError(msg)


def render_name(template: str, item: InputItem, op: str, ext: str) -> str:
    """Fill ``{stem} {ext} {op} {parent} {name}`` for one input (the template already checked)."""
    if item.path is None:
        stem, parent, name = "stdin", "", "stdin"
    else:
        resolved = Path(os.path.normpath(os.path.abspath(item.path)))
        stem, parent, name = item.path.stem, resolved.parent.name, item.path.name
    rendered = template.format(stem=stem, ext=ext, op=op, parent=parent, name=name)
    if not rendered or rendered.endswith(("/", os.sep)) or Path(rendered).name in ("", ".", ".."):
        msg = f"--name {template!r} gives an empty file name for {item.name}"
        raise UsageError(msg)
    return rendered


def montage_path(template: str, source: str) -> str:
    """--montage PATH, with ``{stem}`` filled from the input for batches."""
    stem = "stdin" if source == "-" else Path(source).stem
    return template.replace("{stem}", stem)


def channel_path(output: str, i: int) -> str:
    """``out/cat.chain.png`` -> ``out/cat.chain.c0.png``."""
    p = Path(output)
    return str(p.with_name(f"{p.stem}.c{i}{p.suffix}"))


# --------------------------------------------------------------------------- one input


def main_outputs(spec: RunSpec, op: str, inputs: list[InputItem]) -> list[str | None]:
    """The main output of every input ("-" for stdout, None for an input refused already)."""
    out = spec.output
    if out.output is not None:
        if len(inputs) != 1:
            msg = f"-o/--output takes one input, got {len(inputs)}; use --out-dir for several"
            raise UsageError(msg)
        if out.out_dir is not None:
            msg = "give either -o/--output or --out-dir, not both"
            raise UsageError(msg)
        return [out.output]
    template = out.name_template or DEFAULT_TEMPLATE
    check_template(template)
    ext_for = extension_for(out.fmt) if out.fmt else None
    paths: list[str | None] = []
    for item in inputs:
        if item.error is not None:
            paths.append(None)
        elif item.is_stdin and out.out_dir is None and out.name_template is None:
            paths.append("-")
        else:
            name = render_name(template, item, op, ext_for or output_extension(item))
            folder = Path(out.out_dir) if out.out_dir is not None else (
                item.path.parent if item.path is not None else Path("."))
            paths.append(dash_safe(folder / name))  # ./-x.blur.png, as its input ./-x.png
    return paths


def without_earlier_outputs(inputs: list[InputItem], writes: Sequence[Sequence[str]],
                            outputs: Sequence[str | None]) -> list[bool]:
    """Which inputs to keep: not the images found in a folder that this run writes for another input.

    Run twice over a folder, ``convcli blur in/`` finds ``cat.blur.png`` beside ``cat.png``: it is
    the first run's output, which this run writes again, not an input to blur into
    ``cat.blur.blur.png`` (0.3 refused the whole run instead). ``writes`` holds every file each
    input writes (its output, montage, channel maps, direction map: a montage beside its input was
    refused on the second run as "would overwrite the input"). Files named on the command line are
    always inputs, and so is a found file whose own output (``outputs``, per input) is itself
    (``--format png --name '{stem}.png'`` over ``a.png`` and ``a.jpg``: ``a.png`` may be the last
    run's result for ``a.jpg`` or an original; kept as an input, the run is refused as overwriting
    it, where dropped it was overwritten by the blurred ``a.jpg``).
    """
    writers: dict[str, set[int]] = {}
    for i, paths in enumerate(writes):
        for path in paths:
            writers.setdefault(_named(path), set()).add(i)

    def others(i: int, item: InputItem) -> set[int]:
        """The other inputs that write this found input (a fixed --montage path: every input); none
        if it is this input's own output."""
        if not item.found or item.path is None:
            return set()
        path = _named(item.path)
        if outputs[i] not in (None, "-") and _named(str(outputs[i])) == path:
            return set()
        return writers.get(path, set()) - {i}

    keep = [not others(i, item) for i, item in enumerate(inputs)]
    # a file of an input that is itself dropped is not written: one of its producers must stay
    for i, item in enumerate(inputs):
        if not keep[i] and not any(keep[j] for j in others(i, item)):
            keep[i] = True
    return keep


def _named(path: str) -> str:
    """Where the name ``path`` is: its folder resolved, its last part as it is. A found file is a
    planned file of this run (the last run's output) only under that file's own name: the link
    ``b.blur.png -> a.png`` makes ``a.png`` no output of ``b.png``, but an input the write through
    the link would overwrite (refused by :func:`check_files`; dropped, it was overwritten)."""
    return os.path.join(os.path.realpath(os.path.dirname(path) or "."), os.path.basename(path))


def written_by_output(output: str, item: InputItem) -> bool:
    """Whether a found input is a file ``-o OUTPUT`` writes: the output itself or one of its channel
    maps (``maps.png``, ``maps.c3.png``), the last run's, found again in the folder read."""
    if not item.found or item.path is None:
        return False
    out = Path(_named(output))
    path = Path(_named(item.path))  # by name, as without_earlier_outputs: a link to the output is an input
    if path.parent != out.parent:
        return False
    return path.name == out.name or re.fullmatch(rf"{re.escape(out.stem)}\.c\d+{re.escape(out.suffix)}",
                                                  path.name) is not None


def output_format(spec: RunSpec, output: str | None) -> str:
    """--format, else the output's extension, else PNG (stdout, dry runs)."""
    if spec.output.fmt is not None:
        return spec.output.fmt
    if output in (None, "-"):
        return "png"
    return format_for_path(output)


def check_format_flags(spec: RunSpec) -> None:
    """Flag combinations wrong for every input (``-o``'s format): refused before any input is opened."""
    out = spec.output
    if out.output is not None:
        if out.output != "-" and out.fmt is None:
            format_for_path(out.output)  # an unknown extension is a usage error
        _check_format_of(spec, out.output)


def check_output_formats(spec: RunSpec, outputs: list[str | None]) -> None:
    """Format flags against the names ``--out-dir``/``--name`` made (``-o`` is checked above).

    ``--name '{stem}.png' --format npy`` wrote a .npy file named .png; ``--bit-depth float`` with
    PNG names was dropped in silence. Refused before any input is opened, as for ``-o``.
    """
    if spec.output.output is None:
        for path in outputs:
            if path is not None:
                _check_format_of(spec, path)


def _check_format_of(spec: RunSpec, path: str) -> None:
    """``--format`` against ``path``'s extension, and ``--bit-depth float`` against the format written
    there ("-" is stdout); the hint names the flag the path came from."""
    out = spec.output
    named = out.output is None  # from --out-dir/--name (or the default name), not -o
    known = "png" if path == "-" else _known_format(path)
    if out.fmt is not None and path != "-" and known not in (None, out.fmt):
        ext = extension_for(out.fmt)
        if named:
            msg = (f"--format {out.fmt} contradicts the extension of {path} (from --name "
                   f"{out.name_template!r}): end the name with {ext} or drop --format")
        else:
            msg = f"--format {out.fmt} contradicts the extension of -o {path} (use {Path(path).stem}{ext})"
        raise UsageError(msg)
    fmt = out.fmt or known
    if out.bit_depth == "float" and fmt is not None and not FORMATS[fmt].raw_float:
        shown = "stdout" if path == "-" else path
        fix = ("add --format npy (or tiff for a grey result)" if named or path == "-"
               else "write to a .npy file (or .tif for a grey result)")
        msg = f"--bit-depth float writes raw float32 values, which {fmt.upper()} cannot hold ({shown}): {fix}"
        raise UsageError(msg)


def output_bits(bit_depth: str | None, header: ImageHeader, fmt: str, channels: int,
                keeps_alpha: bool) -> tuple[int, str | None]:
    """The bit depth the output is written with, and the note when 16 became 8: ``--bit-depth`` or the
    input's, 8 where the format cannot hold 16 (JPEG, WebP, GIF, BMP...). Decided once, here, so
    the memory check, the quantising and the report all use the bits the file gets."""
    bits = int(bit_depth) if bit_depth in ("8", "16") else header.bit_depth
    if bits == 16:
        reason = eight_bit_reason(fmt, channels, header.has_alpha and keeps_alpha)
        if reason is not None:
            return 8, f"reduced to 8-bit ({reason})"
    return bits, None


def _known_format(path: str) -> str | None:
    try:
        return format_for_path(path)
    except UsageError:
        return None


def plan_input(spec: RunSpec, cmd: Command, item: InputItem, output: str | None, data: bytes | None,
               temp_tag: str, memory: int | None = None) -> Task:
    """The plan of one input from its header alone, or the reason it is refused. ``memory``: the bytes
    this process can hold (:func:`convcli.run.machine.memory_limit`), None to skip that check."""
    if item.error is not None:
        return Refusal(item.name, item.error, ExitStatus.FAILURE)
    gray = cmd.gray or spec.gray
    source: str | bytes = data if item.is_stdin and data is not None else str(item.path)
    try:
        header = read_header(source, gray=gray, max_pixels=spec.max_pixels)
        return _plan_from_header(spec, cmd, item, output, data, header, temp_tag, memory)
    except ConvcliError as e:
        return Refusal(item.name, str(e), e.exit_status)


def _plan_from_header(spec: RunSpec, cmd: Command, item: InputItem, output: str | None, data: bytes | None,
                      header: ImageHeader, temp_tag: str, memory: int | None) -> Job:
    out = spec.output
    dry = spec.report.dry_run
    fmt = output_format(spec, output)
    info = FORMATS[fmt]
    plans = cmd.pipeline.plan((header.channels, header.height, header.width), max_pixels=spec.max_pixels)
    channels = plans[-1].out_shape[0] if plans else header.channels
    if plans and plans[-1].stage.op == "flatten" and fmt != "npy":
        msg = "flatten gives a vector [1, C*H*W]: write it as .npy (-o x.npy or --format npy)"
        raise UsageError(msg)
    kind: OutputKind
    maps: tuple[str, ...] = ()
    bits: int | None = None
    bits_note: str | None = None
    if channels not in (1, 3) and fmt != "npy" and out.bit_depth != "float" and out.range_policy is None:
        kind, policy = "maps", "normalize"
        if output in (None, "-"):
            msg = f"the result has {channels} channels: give -o FILE (one image per channel) or -o x.npy"
            raise UsageError(msg)
        maps = tuple(channel_path(output, i) for i in range(channels))
        # each map is a grey image at the output's bit depth (--bit-depth, or the input's): 8-bit always,
        # a 16-bit input's or --bit-depth 16's maps lost 8 bits without a word
        bits, bits_note = output_bits(out.bit_depth, header, fmt, 1, False)
    elif info.raw_float and (fmt == "npy" or out.bit_depth == "float"):
        kind, policy = "float", "raw"
        if fmt != "npy" and channels != 1:  # refused here, not by the encoder after the work
            msg = f"float {fmt.upper()} holds one channel only (the result has {channels}); use .npy"
            raise UsageError(msg)
    else:
        kind = "pixels"
        policy = out.range_policy or ("normalize" if channels not in (1, 3) else cmd.default_policy)
        if channels not in (1, 3):
            msg = (f"the result has {channels} channels; write it as .npy, or end the chain with a "
                   "layer of 1 or 3 channels")
            raise UsageError(msg)
        bits, bits_note = output_bits(out.bit_depth, header, fmt, channels, cmd.pipeline.keeps_alpha)
    result = plans[-1].out_shape if plans else (header.channels, header.height, header.width)
    if max(result[1:]) > info.max_side:
        msg = (f"the result is {result[2]}x{result[1]}, and {fmt.upper()} holds at most {info.max_side} "
               "pixels a side: write .png or .tif")
        raise UsageError(msg)
    if memory is not None:
        check_fits(header, result, 4 if bits is None else -(-bits // 8), memory)
    first_only = "--montage" if out.montage else "--direction-out" if cmd.direction_out else None
    frames = plan_frames(out.frames, header, fmt, kind, first_only, spec.max_pixels)
    return Job(
        source=item.name, data=data if item.is_stdin else None, pipeline=cmd.pipeline,
        gray=cmd.gray or spec.gray, linear_light=spec.linear_light, dry_run=dry,
        max_pixels=spec.max_pixels, engine=spec.engine,
        output=output, fmt=fmt, kind=kind, policy=policy, bits=bits, bits_note=bits_note, channel_maps=maps,
        montage=montage_path(out.montage, item.name) if out.montage else None,
        direction_out=montage_path(cmd.direction_out, item.name) if cmd.direction_out else None,
        quality=out.quality, compress_level=out.compress_level, temp_tag=temp_tag,
        notes=ignored_options(out, fmt, kind) + tuple(
            f"stage {i}: {note}" for i, p in enumerate(plans, start=1) if (note := p.torch_note())),
        frames=frames, dither=out.dither, strip=out.strip,
        samples=header.width * header.height * header.channels * (len(frames) if frames else 1),
        header=header,
    )


def check_fits(header: ImageHeader, result: tuple[int, int, int], result_itemsize: int, memory: int) -> None:
    """Refuse (exit 2) an image whose decoded pixels and result alone exceed ``memory`` bytes: both
    are held at once whatever else the run saves, so no run of it can fit. Found from the header."""
    samples = header.width * header.height * (header.channels + header.has_alpha)
    decoded = samples * (2 if header.bit_depth > 8 else 1)
    out = result[0] * result[1] * result[2] * result_itemsize
    if decoded + out > memory:
        msg = (f"{header.width}x{header.height} needs at least {size_text(decoded + out)} for its pixels "
               f"alone ({size_text(decoded)} decoded, {size_text(out)} for the result), more than the "
               f"{size_text(memory)} this process can use")
        raise UsageError(msg)


#: The most pixels all the frames filtered may hold together, in --max-pixels: a 2.5 MB GIF of
#: 100000 one-pixel frames on a 9000x9000 canvas planned 8.1e12 pixels of work (days), each frame
#: within --max-pixels on its own. 100 of them (8.9e9 by default) is a 1000-frame 1920x1080 film
#: four times over.
FRAME_PIXELS_FACTOR = 100


def plan_frames(selected: tuple[int, ...] | None, header: ImageHeader, fmt: str, kind: OutputKind,
                first_only: str | None = None, max_pixels: int | None = None) -> tuple[int, ...] | None:
    """The frames filtered one by one, or None for the single-frame path (the first frame alone).

    Several frames need a format that holds them (GIF, PNG as APNG, WebP, TIFF); a JPEG, BMP
    or .npy output takes one frame, chosen with ``--frames first`` or ``--frames N``. ``first_only``
    names a flag whose file is drawn from the first frame alone (``--montage``, ``--direction-out``:
    the frame-by-frame path wrote neither, in silence).
    """
    n = header.n_frames
    if header.later_frames is not None and (selected is None or max(selected) > 0):
        msg = (f"truncated or corrupt {header.format}: the frames after the first cannot be read "
               f"({header.later_frames}); --frames first filters the first alone")
        raise InputError(msg)
    indices = tuple(range(n)) if selected is None else selected
    beyond = [i for i in indices if i >= n]
    if beyond:
        msg = f"--frames {quoted(beyond[0])}: the image has {n} frame{'s' if n > 1 else ''} (0..{n - 1})"
        raise UsageError(msg)
    if indices == (0,):
        return None
    info = FORMATS[fmt]
    if len(indices) > 1 and not info.multi_frame:
        msg = (f"{fmt.upper()} holds one frame but {len(indices)} of {n} frames are selected: give "
               "--frames first or --frames N, or write .gif, .png, .webp or .tif")
        raise UsageError(msg)
    if kind != "pixels" or first_only:
        what = first_only or ("raw floats" if kind == "float" else "one image per channel")
        msg = f"{what} takes the first frame only: give --frames first ({len(indices)} of {n} selected)"
        raise UsageError(msg)
    total = len(indices) * header.width * header.height  # after the advice on the format and flags
    if max_pixels is not None and total > FRAME_PIXELS_FACTOR * max_pixels:
        msg = (f"{len(indices)} frames of {header.width}x{header.height} = {total} pixels to filter, over "
               f"{FRAME_PIXELS_FACTOR} x --max-pixels {max_pixels}: give --frames to take some of them")
        raise InputError(msg)
    return indices


# --------------------------------------------------------------------------- the one safety check


@record(frozen=True)
class _Planned:
    path: str
    what: str  # "output", "channel map", "montage"
    source: str  # the input it belongs to
    named: bool  # named by --name under --out-dir (must stay inside it)


def planned_files(tasks: list[Task], named_in_out_dir: bool) -> list[_Planned]:
    """Every file the tasks will write (stdout excluded)."""
    return [_Planned(path, f.what, t.source, named_in_out_dir and f.named)
            for t in tasks if isinstance(t, Job) for f, path in t.planned()]


def ignored_options(out: OutputSpec, fmt: str, kind: OutputKind) -> tuple[str, ...]:
    """A note for each option the output has no use for (said in the report, not silently dropped)."""
    info = format_info(fmt)
    notes = []
    if out.quality is not None and info.quality is None:
        notes.append(f"--quality ignored: {info.name.upper()} has no quality setting (JPEG and WebP have)")
    if out.compress_level is not None and info.name != "png":
        notes.append(f"--compress-level ignored: it is PNG's zlib level ({info.name.upper()} has none)")
    if kind == "float" and out.range_policy not in (None, "raw"):
        notes.append(f"--range {out.range_policy} ignored: raw float32 values are written as they are")
    if kind == "float" and out.bit_depth in ("8", "16"):
        notes.append(f"--bit-depth {out.bit_depth} ignored: {fmt.upper()} output holds raw float32")
    return tuple(notes)


def _identity(path: str) -> tuple[set[object], os.stat_result | None]:
    """Keys that identify a file: its resolved path, and (device, inode) when it exists."""
    keys: set[object] = {os.path.realpath(path)}
    try:
        st = os.stat(path)
    except OSError:
        return keys, None
    keys.add((st.st_dev, st.st_ino))
    return keys, st


def _descriptor_keys(fd: int) -> set[object]:
    """The (device, inode) of the regular file open on ``fd`` (0: ``convcli filter - -o in.png < in.png``;
    1: ``-o - 1<>in.png``), if it is one."""
    try:
        st = os.fstat(fd)
    except OSError:
        return set()
    return {(st.st_dev, st.st_ino)} if stat.S_ISREG(st.st_mode) else set()


def writes_stdout(tasks: list[Task]) -> bool:
    """Whether a task's image goes to stdout: ``-o -``, or a path that is the regular file open on
    stdout (``-o /dev/stdout > f.png``: the report written there was renamed over, lost)."""
    jobs = [t for t in tasks if isinstance(t, Job)]
    if any(t.output == "-" for t in jobs):
        return True
    try:
        st = os.fstat(1)
    except OSError:
        return False
    if not stat.S_ISREG(st.st_mode):
        return False  # a device is written in place (-o /dev/null > /dev/null keeps its report)
    on_stdout = (st.st_dev, st.st_ino)
    return any(on_stdout in _identity(path)[0] for t in jobs for path in t.files())


def _name_max(path: str) -> int:
    """The longest file name the file system of ``path`` (or its nearest existing folder) takes."""
    folder = os.path.dirname(os.path.abspath(path))
    while folder and not os.path.isdir(folder):
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    try:
        return int(os.pathconf(folder or ".", "PC_NAME_MAX"))
    except (OSError, ValueError):
        return 255


def _target_problem(path: str, st: os.stat_result | None) -> str | None:
    """Why an existing target may not be written (the rest of a message), or None.

    A regular file is replaced by a rename and a character device written in place
    (``-o /dev/null``); a symbolic link is followed (io.files.write_atomic), so it is the
    file it names that counts, and a link to nothing is refused."""
    if st is None:
        return f"is {DANGLING_LINK}" if os.path.islink(path) else None
    if stat.S_ISREG(st.st_mode) or stat.S_ISCHR(st.st_mode):
        return None
    kind = file_kind(st.st_mode)
    hint = " (-o - writes to stdout)" if stat.S_ISFIFO(st.st_mode) else ""
    return f"exists and is {kind}; refusing to replace it{hint}"


def check_files(inputs: list[InputItem], tasks: list[Task], out_dir: str | None,
                reads: tuple[str, ...] = ()) -> None:
    """The one check over the union of all plans; UsageError (exit 2) naming both paths.

    ``reads``: the other files the command reads (kernel files, conv weights), inputs as the images are.
    """
    named = [(str(item.path), item.name) for item in inputs if item.path is not None]
    input_keys = _input_keys([*named, *((r, r) for r in reads)], any(item.is_stdin for item in inputs))
    found = frozenset(item.name for item in inputs if item.found)
    _check_planned(input_keys, planned_files(tasks, out_dir is not None), out_dir, found)


def _input_keys(files: Sequence[tuple[str, str]], stdin: bool) -> dict[object, str]:
    """Every key (:func:`_identity`) of the files read, to the name to show; stdin's file too."""
    input_keys: dict[object, str] = {}
    for path, name in files:
        for key in _identity(path)[0]:
            input_keys.setdefault(key, name)
    if stdin:
        input_keys.update(dict.fromkeys(_descriptor_keys(0), "- (stdin)"))
    return input_keys


def check_stdout_is_not(path: str) -> None:
    """UsageError if the regular file open on stdout is ``path``, a file the command reads."""
    _check_stdout(_input_keys([(path, path)], stdin=False))


def _check_stdout(input_keys: dict[object, str]) -> None:
    """Stdout may not be an input: ``convcli blur in.png -o - 1<>in.png`` wrote the image over it, and
    every command writes something there (a report, a program, an explanation)."""
    for key in _descriptor_keys(1):
        if key in input_keys:
            msg = (f"standard output is the input {input_keys[key]}: writing there would overwrite it "
                   "(send stdout elsewhere)")
            raise UsageError(msg)


def _check_planned(input_keys: dict[object, str], files: list[_Planned], out_dir: str | None = None,
                   found: frozenset[str] = frozenset()) -> None:
    """No planned file may be an input, another planned file, an existing non-regular file, outside
    --out-dir when --name put it there, or too long a name; and stdout may not be an input
    (:func:`_check_stdout`)."""
    _check_stdout(input_keys)
    root = os.path.realpath(out_dir) if out_dir is not None else None
    seen: dict[object, _Planned] = {}
    name_max: dict[str, int] = {}
    for f in files:
        prefix = f"{f.source}: " if f.source else ""
        keys, st = _identity(f.path)
        for key in keys:
            if key in input_keys:
                other = input_keys[key]
                hint = (" (found in the folder read, it may be an original; if it is an earlier run's "
                        "output, write to --out-dir instead of beside the inputs)"
                        if other in found and other != f.source else "")
                msg = f"{prefix}the {f.what} {f.path} would overwrite the input {other}{hint}"
                raise UsageError(msg)
        for key in keys:
            if key in seen:
                other = seen[key]
                of = f" of {other.source}" if other.source != f.source else ""
                msg = (f"{prefix}the {f.what} {f.path} collides with the {other.what} {other.path}{of}"
                       + _collision_hint(f, other))
                raise UsageError(msg)
        for key in keys:
            seen[key] = f
        problem = _target_problem(f.path, st)
        if problem:
            raise UsageError(f"{prefix}the {f.what} {f.path} {problem}")
        if root is not None and f.named:
            real = os.path.realpath(f.path)
            if not real.startswith(root.rstrip(os.sep) + os.sep):
                msg = f"{prefix}the {f.what} {f.path} would be outside --out-dir {out_dir}"
                raise UsageError(msg)
        _check_length(f.path, f.what, prefix, name_max)


def _collision_hint(a: _Planned, b: _Planned) -> str:
    if a.what != "output" or b.what != "output" or not (a.source and b.source):
        return ""
    if "-" in (a.source, b.source):  # stdin's fields are stem 'stdin', name 'stdin', parent ''
        return (" (the image on stdin takes the stem 'stdin' in output names, as this file does: run "
                "stdin on its own with -o, or rename the file)")
    pa, pb = Path(a.source), Path(b.source)
    if os.path.realpath(pa) == os.path.realpath(pb):
        return " (the same file is given twice)"
    if pa.name == pb.name:
        return (" (files of the same name in different folders: put {parent} in --name, "
                "e.g. --name '{parent}_{stem}.{op}{ext}')")
    if pa.stem == pb.stem:  # a.png and a.ppm: {stem} is in the default template already
        return (" (files of the same stem: put {name}, the whole file name, in --name, "
                "e.g. --name '{name}.{op}.png')")
    return " (give --name a template with {stem})"


def _check_length(path: str, what: str, prefix: str, cache: dict[str, int]) -> None:
    """A path and names the file system takes (``prefix`` begins the message: the input's name)."""
    absolute = os.path.abspath(path)
    if len(os.fsencode(absolute)) >= PATH_MAX:
        msg = f"{prefix}the {what} path is {len(absolute)} characters, over the limit of {PATH_MAX}"
        raise UsageError(msg)
    folder = os.path.dirname(absolute)
    limit = cache.get(folder)
    if limit is None:
        limit = cache[folder] = _name_max(absolute)
    for part in Path(path).parts:
        if len(os.fsencode(part)) > limit:
            shown = part if len(part) <= 60 else part[:40] + "..." + part[-12:]
            msg = (f"{prefix}the {what} name {shown!r} is {len(os.fsencode(part))} bytes, over the "
                   f"file system's limit of {limit}")
            raise UsageError(msg)


def make_folders(tasks: list[Task], *, create: bool = True) -> list[Task]:
    """Create the parent folders of every planned file; a task whose folder cannot be made fails alone.

    ``create=False`` (a dry run) makes nothing and fails the same tasks a run would: a file standing
    where a folder goes, or a nearest existing folder that cannot be written to."""
    failed: dict[str, str] = {}
    done: set[str] = set()
    out: list[Task] = []
    for task in tasks:
        if not isinstance(task, Job):
            out.append(task)
            continue
        error = None
        for path in task.files():
            folder = os.path.dirname(path) or "."
            if folder not in done and folder not in failed:
                problem = _make_folder(folder) if create else _folder_problem(folder)
                if problem is None:
                    done.add(folder)
                else:
                    failed[folder] = problem
            if folder in failed:
                error = f"cannot write {path}: {failed[folder]}"
                break
        out.append(Refusal(task.source, error, ExitStatus.FAILURE) if error else task)
    return out


def _make_folder(folder: str) -> str | None:
    """Create ``folder`` and its parents; why it could not be, or None."""
    try:
        make_dirs(folder)
    except FileExistsError:  # a file, or a link to nothing or in a loop, stands where a folder would go
        return _folder_problem(folder) or "not a directory"
    except OSError as e:
        return _folder_problem(folder) or os_reason(e)
    return None


def _folder_problem(folder: str) -> str | None:
    """What :func:`_make_folder` would meet, found without creating anything."""
    path = os.path.abspath(folder)
    while not os.path.lexists(path):
        parent = os.path.dirname(path)
        if parent == path:
            return None
        path = parent
    if os.path.islink(path):
        try:
            os.stat(path)
        except OSError as e:  # to nothing, or in a loop: said the same in a dry run and a run
            shown = path if os.path.isabs(folder) else os.path.relpath(path)
            return f"{shown} is a symbolic link that cannot be followed: {os_reason(e)}"
    if not os.path.isdir(path):
        return "not a directory"
    if not os.access(path, os.W_OK | os.X_OK):
        return os_reason(PermissionError(errno.EACCES, os.strerror(errno.EACCES)))
    return None


def prepare_paths(inputs: Sequence[str], outputs: list[tuple[str, str]]) -> None:
    """For a command that plans its files itself (animate, learn, demo, kernels --response):
    :func:`check_paths`, then the folders of the outputs created. UsageError (exit 2) either way."""
    check_paths(inputs, outputs)
    make_output_folders(outputs)


def make_output_folders(outputs: list[tuple[str, str]]) -> None:
    """The folders of ``outputs`` (what, path), created; UsageError if one cannot be (exit 2)."""
    for _what, path in outputs:
        folder = os.path.dirname(path)
        if not folder:
            continue
        try:
            make_dirs(folder)
        except FileExistsError:
            msg = f"cannot create the folder of {path}: not a directory"
            raise UsageError(msg) from None
        except OSError as e:
            msg = f"cannot create the folder of {path}: {os_reason(e)}"
            raise UsageError(msg) from None


def check_paths(inputs: Sequence[str], outputs: list[tuple[str, str]]) -> None:
    """:func:`check_files` for a command that plans its files itself: ``outputs`` are (what, path);
    none may be an input, two the same file, an existing non-regular file, or a path or name longer
    than the file system takes (an over-long -o failed after the work, exit 1)."""
    input_keys = _input_keys([(name, name) for name in inputs if name != "-"], "-" in inputs)
    _check_planned(input_keys, [_Planned(path, what, "", False) for what, path in outputs])
