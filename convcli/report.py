"""The shape report: records (plain dicts) to JSON Lines for programs, tables or lines for people.

A record holds (README, "The shape report"): input, output, status, input_shape,
output_shape, stages (each with arithmetic, receptive_field, jump), range,
notes, seconds — or, for a failed input, input, status "error" and error.
Rich is imported only when a table is drawn for a terminal.

Every line is strict JSON in valid UTF-8, whatever the record holds (README, "The shape
report"): a non-finite number (NaN, ±inf: a kernel of 3e38, a huge --scale) becomes
``null``, and a file name that is not valid UTF-8 (its undecodable bytes held as lone
surrogates by Python's ``surrogateescape``) shows them as ``\\xNN``, as Python's
``backslashreplace`` does. The plain and table forms print names the same way.
"""

from __future__ import annotations

import math
import os
import re
from typing import IO, Any

#: Lone surrogates: undecodable bytes of a file name (U+DC80..U+DCFF) or stray halves.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _escape_surrogate(m: re.Match[str]) -> str:
    code = ord(m.group())
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"


def clean_text(text: str) -> str:
    """``text`` as valid Unicode: each undecodable byte of a name shown as ``\\xNN``."""
    return _SURROGATE.sub(_escape_surrogate, text)


#: Characters that would break a line of text (a newline in a file name): shown escaped.
_CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")
_CONTROL_NAMES = {"\n": r"\n", "\r": r"\r", "\t": r"\t"}


def _escape_control(m: re.Match[str]) -> str:
    ch = m.group()
    return _CONTROL_NAMES.get(ch) or (f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")


def line_text(text: str) -> str:
    """``text`` for one line of a terminal or log: :func:`clean_text`, and control characters
    escaped (``bad\\nname.png``), so an error stays one line whatever the file is called."""
    return _CONTROL.sub(_escape_control, clean_text(text))


def strict(v: Any, *, finite: bool = True) -> Any:
    """A copy of ``v`` that strict JSON can hold: non-finite floats -> None, text made valid Unicode.
    ``finite=False`` is the copy for text lines: non-finite floats kept, control characters escaped."""
    if v is None or isinstance(v, bool):
        return v
    if isinstance(v, str):
        return clean_text(v) if finite else line_text(v)
    if isinstance(v, int):
        return int(v)
    if isinstance(v, float):
        return float(v) if math.isfinite(v) or not finite else None
    if isinstance(v, dict):
        return {clean_text(str(k)): strict(x, finite=finite) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [strict(x, finite=finite) for x in v]
    if isinstance(v, bytes):
        return clean_text(os.fsdecode(v))
    if isinstance(v, os.PathLike):
        return strict(os.fspath(v), finite=finite)
    if hasattr(v, "tolist"):  # NumPy scalars and arrays
        return strict(v.tolist(), finite=finite)
    msg = f"not JSON serialisable: {type(v).__name__}"
    raise TypeError(msg)


def json_line(record: dict[str, Any]) -> str:
    """One record as one line of strict JSON (no NaN/Infinity, valid UTF-8; no trailing newline)."""
    import json  # only --json pays for it

    return json.dumps(strict(record), ensure_ascii=False, allow_nan=False)


def shape_text(shape: list[int] | None) -> str:
    return "?" if shape is None else "[" + ", ".join(str(s) for s in shape) + "]"


def pair_text(v: Any) -> str:
    """A per-axis pair as the report writes it: ``3`` when both are 3, else ``3x5`` (H x W)."""
    if isinstance(v, list):
        return str(v[0]) if len(set(v)) == 1 else "x".join(str(i) for i in v)
    return str(v)


def _ksize(v: list[int]) -> str:
    return "x".join(str(i) for i in v)


def _pad(v: list[int]) -> str:
    return str(v[0]) if len(set(v)) == 1 else ",".join(str(i) for i in v)


def _number(v: Any) -> str:
    return "?" if v is None else f"{v:.6g}"


def range_text(r: dict[str, Any]) -> str:
    lo, hi = _number(r.get("min")), _number(r.get("max"))
    if r["policy"] == "raw":  # .npy / float TIFF: the floats are written as they are
        return f"range: raw float32, no clipping; float min {lo}, max {hi}"
    frac = r.get("clipped_fraction") or 0.0
    return (f"range {r['policy']}: float min {lo}, max {hi}; "
            f"{frac * 100:.2f}% of samples clipped")


def _modifiers(st: dict[str, Any]) -> list[str]:
    """What is done to the kernel besides its weights: ``flipped``, ``bias +3`` (--flip, --bias)."""
    mods = ["flipped"] if st.get("flip") else []
    if st.get("bias"):
        mods.append(f"bias {st['bias']:+.6g}")
    return mods


def _window(st: dict[str, Any]) -> str:
    """``kernel 3x3  stride 1  dilation 1  reflection pad 1`` (``flipped``, ``bias +B`` after the size when
    set); only the kernel name for point-wise stages."""
    kernel = st.get("kernel") or "-"
    if st.get("op") == "flatten":  # no window and not point-wise: every value moves into one row
        return "(reshape, channel then row then column)"
    if st.get("kernel_size") is None:  # gray, relu: no window
        return "(point-wise)" if kernel == "-" else kernel
    pad = f" pad {_pad(st['pad'])}" if st.get("padding") else ""
    mods = "".join("  " + m for m in _modifiers(st))
    return (f"{kernel} {_ksize(st['kernel_size'])}{mods}  stride {pair_text(st['stride'])}  "
            f"dilation {pair_text(st['dilation'])}  {st.get('padding') or ''}{pad}")


def plain_lines(record: dict[str, Any]) -> list[str]:
    """The report of one input as plain text lines (for pipes and logs)."""
    record = strict(record, finite=False)
    if record.get("status") != "ok":
        return [f"{record.get('input')}: error: {record.get('error')}"]
    head = f"{record['input']} -> {record.get('output') or '(not written)'}"
    head += f"  {shape_text(record.get('input_shape'))} -> {shape_text(record.get('output_shape'))}"
    if record.get("seconds") is not None:
        head += f"  {record['seconds']:.3f} s"
    if record.get("dry_run"):
        head += "  (dry run: nothing decoded or written)"
    lines = [head]
    for i, st in enumerate(record.get("stages", []), start=1):
        lines.append(
            f"  {i}. {st['op']:<10} {_window(st)}"
            f"  {shape_text(st['input_shape'])} -> {shape_text(st['output_shape'])}"
            f"  rf {pair_text(st['receptive_field'])} jump {pair_text(st['jump'])}"
        )
        if st.get("arithmetic"):
            lines.append(f"     {st['arithmetic']}")
    if record.get("range"):
        lines.append("  " + range_text(record["range"]))
    for note in record.get("notes", []):
        lines.append(f"  note: {note}")
    return lines


def write_plain(record: dict[str, Any], stream: IO[str]) -> None:
    stream.write("\n".join(plain_lines(record)) + "\n")
    stream.flush()


def write_table(record: dict[str, Any], stream: IO[str]) -> None:
    """The report of one input as a Rich table (for a terminal)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(file=stream, highlight=False)
    record = strict(record, finite=False)
    if record.get("status") != "ok":
        console.print(f"[bold red]{escape(str(record.get('input')))}[/]: error: "
                      f"{escape(str(record.get('error')))}", markup=True)
        return
    title = escape(f"{record['input']} → {record.get('output') or '(not written)'}")
    if record.get("seconds") is not None:
        title += f"  ({record['seconds']:.3f} s)"
    if record.get("dry_run"):
        title += "  (dry run: nothing decoded or written)"
    table = Table(title=title, title_justify="left", show_lines=False)
    for col, just in (("#", "right"), ("op", "left"), ("kernel", "left"), ("k", "right"),
                      ("stride", "right"), ("dil.", "right"), ("padding", "left"), ("pad", "right"),
                      ("input → output (NCHW)", "left"), ("rf/jump", "right")):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for i, st in enumerate(record.get("stages", []), start=1):
        window = st.get("kernel_size") is not None
        table.add_row(
            str(i), st["op"], " ".join([str(st.get("kernel") or "-"), *_modifiers(st)]),
            _ksize(st["kernel_size"]) if window else "-",
            pair_text(st["stride"]) if window else "-", pair_text(st["dilation"]) if window else "-",
            st.get("padding") or "-", _pad(st["pad"]) if st.get("padding") else "-",
            f"{shape_text(st['input_shape'])} → {shape_text(st['output_shape'])}",
            f"{pair_text(st['receptive_field'])}/{pair_text(st['jump'])}",
        )
    if console.measure(table, options=console.options.update_width(10_000)).maximum > console.width:
        # Too narrow for the table (an 80-column terminal): Rich would cut "downsample" to "downs…".
        # The plain lines lose nothing; the terminal wraps them.
        write_plain(record, stream)
        return
    console.print(table)
    for i, st in enumerate(record.get("stages", []), start=1):
        if st.get("arithmetic"):
            console.print(f"  {i}. out = {st['arithmetic']}", markup=False)
    if record.get("range"):
        console.print("  " + range_text(record["range"]), markup=False)
    for note in record.get("notes", []):
        console.print(f"  note: {note}", markup=False)
