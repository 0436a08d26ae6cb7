"""Inputs and outputs of a batch: expanding paths, naming outputs, refusing collisions.

Files, directories (images recognised by content, hidden files skipped,
``recursive`` to descend) and ``-`` for stdin. Output names come from one
template; collisions between outputs, or with an input, are refused before any
work starts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from convcli.errors import UsageError
from convcli.io.formats import FORMATS

#: Magic numbers of the formats Pillow reads that convcli accepts from directories: PNG, JPEG, GIF,
#: BMP, TIFF (little/big-endian, BigTIFF), JPEG 2000, ICO, QOI. WebP (RIFF....WEBP) and binary
#: PNM (P4/P5/P6 + whitespace) are checked in looks_like_image.
_MAGIC: tuple[bytes, ...] = (
    b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*",
    b"II+\x00", b"MM\x00+", b"\x00\x00\x00\x0cjP  \r\n\x87\n", b"\xffO\xffQ", b"\x00\x00\x01\x00", b"qoif",
)

DEFAULT_TEMPLATE = "{stem}.{op}{ext}"

#: Extensions of the formats convcli writes; other inputs (GIF, ICO, PNM...) get a .png output.
_WRITABLE: frozenset[str] = frozenset(e for f in FORMATS.values() for e in f.extensions)


@dataclass(frozen=True)
class InputItem:
    """One input: ``name`` as the user wrote it (or as found in a directory), ``path`` None for stdin."""

    name: str
    path: Path | None
    error: str | None = None  # refused before any work (a directory with no images in it)

    @property
    def is_stdin(self) -> bool:
        return self.path is None


def looks_like_image(path: Path) -> bool:
    """True if the file starts with the magic number of a supported format (RIFF....WEBP included)."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return False
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return True
    if head[:2] in (b"P4", b"P5", b"P6") and head[2:3].isspace():
        return True
    return any(head.startswith(m) for m in _MAGIC)


def _walk(folder: Path, recursive: bool) -> list[Path]:
    found: list[Path] = []
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as e:
        msg = f"{folder}: cannot list directory: {e.strerror}"
        raise UsageError(msg) from None
    for entry in entries:
        if entry.name.startswith("."):
            continue
        p = Path(entry.path)
        if entry.is_dir(follow_symlinks=False):
            if recursive:
                found.extend(_walk(p, recursive))
        elif entry.is_file() and looks_like_image(p):
            found.append(p)
    return found


def expand_inputs(items: list[str] | tuple[str, ...], recursive: bool = False) -> list[InputItem]:
    """Files as given (missing ones too: they fail later, one by one), directories expanded, ``-`` once."""
    out: list[InputItem] = []
    stdin_seen = False
    for raw in items:
        if raw == "-":
            if stdin_seen:
                msg = "'-' (stdin) can be given only once"
                raise UsageError(msg)
            stdin_seen = True
            out.append(InputItem("-", None))
            continue
        p = Path(raw)
        if p.is_dir():
            found = [InputItem(str(f), f) for f in _walk(p, recursive)]
            out.extend(found or [InputItem(raw, p, _empty_dir_reason(p, recursive))])
        else:
            out.append(InputItem(raw, p))
    return out


def _empty_dir_reason(folder: Path, recursive: bool) -> str:
    try:
        has_subdirs = any(e.is_dir() and not e.name.startswith(".") for e in os.scandir(folder))
    except OSError:
        has_subdirs = False
    hint = " (it has subfolders: --recursive descends into them)" if has_subdirs and not recursive else ""
    return f"is a directory with no images in it{hint}"


def render_name(template: str, item: InputItem, op: str, ext: str) -> str:
    """Fill ``{stem} {ext} {op} {parent} {name}`` for one input."""
    stem = "stdin" if item.path is None else item.path.stem
    parent = "" if item.path is None else item.path.parent.name
    try:
        return template.format(stem=stem, ext=ext, op=op, parent=parent,
                               name=item.path.name if item.path else "stdin")
    except (KeyError, IndexError, ValueError) as e:
        msg = f"--name template {template!r}: unknown field {e} (use {{stem}} {{ext}} {{op}} {{parent}})"
        raise UsageError(msg) from None


def plan_outputs(
    inputs: list[InputItem],
    op: str,
    *,
    output: str | None,
    out_dir: str | None,
    template: str | None,
    ext_for: str | None,
) -> list[str | None]:
    """The output path of every input ("-" for stdout). Raises UsageError on any collision.

    ``ext_for`` is the extension of ``--format`` (None: keep the input's extension,
    .png for stdin or inputs without one).
    """
    if output is not None:
        if len(inputs) != 1:
            msg = f"-o/--output takes one input, got {len(inputs)}; use --out-dir for several"
            raise UsageError(msg)
        if out_dir is not None:
            msg = "give either -o/--output or --out-dir, not both"
            raise UsageError(msg)
        outs: list[str | None] = [output]
    else:
        tmpl = template or DEFAULT_TEMPLATE
        outs = []
        for item in inputs:
            if item.error is not None:
                outs.append(None)
                continue
            if item.is_stdin and out_dir is None and template is None:
                outs.append("-")
                continue
            ext = ext_for or output_extension(item)
            name = render_name(tmpl, item, op, ext)
            folder = Path(out_dir) if out_dir is not None else (item.path.parent if item.path else Path("."))
            outs.append(str(folder / name))
    check_collisions(inputs, outs)
    return outs


def output_extension(item: InputItem) -> str:
    """The input's extension when convcli can write that format (lower-cased), else ``.png`` (GIF, ICO...)."""
    suffix = item.path.suffix.lower() if item.path is not None else ""
    return suffix if suffix in _WRITABLE else ".png"


def _collision_hint(a: InputItem, b: InputItem, out: str) -> str:
    if a.path is not None and b.path is not None and os.path.realpath(a.path) == os.path.realpath(b.path):
        return "the same file is given twice"
    same_name = a.path is not None and b.path is not None and a.path.name == b.path.name
    if same_name and a.path.parent != b.path.parent:  # type: ignore[union-attr]
        return (f"files of the same name in different folders get the same name in {Path(out).parent}: "
                "put {parent} in --name, e.g. --name '{parent}_{stem}.{op}{ext}'")
    return "give --name a template with {stem}"


def check_collisions(inputs: list[InputItem], outputs: list[str | None]) -> None:
    """No two outputs may be the same file, and no output may be an input."""
    seen: dict[str, InputItem] = {}
    input_paths = {os.path.realpath(i.path): i.name for i in inputs if i.path is not None}
    for item, out in zip(inputs, outputs, strict=True):
        if out is None or out == "-":
            continue
        real = os.path.realpath(out)
        if real in input_paths:
            msg = f"{item.name}: output {out} would overwrite the input {input_paths[real]}"
            raise UsageError(msg)
        if real in seen:
            other = seen[real]
            msg = (f"{item.name}: output {out} collides with the output of {other.name} "
                   f"({_collision_hint(other, item, out)})")
            raise UsageError(msg)
        seen[real] = item
