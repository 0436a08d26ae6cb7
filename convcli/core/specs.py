"""A ``--kernel`` spec resolved to a kernel: a file, a parametric spec, a literal or a registry name.

The one reading of a spec, above both kinds of kernel it can name: :mod:`convcli.core.kernels`
(the registry, literals, the builders) and :mod:`convcli.core.parametric` (``gaussian:sigma=2``,
``kirsch@45``, kernel images), which builds on the first. Core reads no files: ``@file`` specs go
to the caller's ``file_loader``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

from convcli.core import parametric
from convcli.core.kernels import ALIASES, REGISTRY, Kernel, get_kernel, normalize_minus, parse_literal
from convcli.errors import UsageError, quoted


def spec_file(spec: str) -> str | None:
    """The file a ``--kernel`` spec reads (``@file``, ``@image.png``), else None: the one reading of
    it, shared by :func:`parse_kernel` and the commands' check that no output overwrites an input."""
    s = normalize_minus(spec).strip()
    return s[1:] if s.startswith("@") else None


def parse_kernel(spec: str, file_loader: Callable[[str], Kernel] | None = None) -> Kernel:
    """Resolve a ``--kernel`` spec: ``@file``, a parametric spec (``gaussian:sigma=2``, ``kirsch@45``;
    convcli.core.parametric), a literal (contains digits), or a registry name.

    Core reads no files: ``file_loader`` reads ``@kernel.txt/.csv/.json/.npy`` and ``@image.png``
    kernels (:func:`convcli.io.kernelfile.load_kernel_file`, as
    :func:`convcli.cli.kernelspec.cli_kernel` passes it; which names are images is io's table).
    """
    s = normalize_minus(spec).strip()
    if not s:
        msg = "kernel is empty"
        raise UsageError(msg)
    path = spec_file(s)
    if path is not None and not path.strip():
        msg = "'@' needs a file name after it: -k @kernel.txt, -k @kernel.npy, -k @image.png"
        raise UsageError(msg)
    if parametric.handles(s):
        return parametric.parse(s, lambda base: parse_kernel(base, file_loader))
    if path is not None:
        if file_loader is None:
            msg = (f"kernel file {path}: parse_kernel reads no files; pass file_loader="
                   "convcli.io.kernelfile.load_kernel_file")
            raise UsageError(msg)
        return file_loader(path)
    if s.isdigit():  # "-k 5" is easily meant as a size: say so instead of running a 1x1 kernel of 5
        if len(s) > 9:  # no kernel size; and int() of 5000 digits raises (Python's 4300-digit limit)
            msg = (f"kernel {quoted(s)}: -k takes a kernel (a name, a literal or @file), not a "
                   f"{len(s)}-digit number")
            raise UsageError(msg)
        size = f"blur --size {s}" if int(s) >= 1 else "blur --size N (N >= 1)"
        msg = (f"kernel {s!r}: -k takes a kernel (a name, a literal or @file); for a blur of that size use "
               f"{size}, for a 1x1 kernel write [[{s}]]")
        raise UsageError(msg)
    # -k -3, 2.5, 1_000: a 1x1 kernel by accident; nan and inf (float reads them) were looked up as
    # names: "did you mean mean?"
    if _ONE_NUMBER.fullmatch(s) or _is_float(s):
        value = float(s) if _is_float(s) else None
        if value is not None and not math.isfinite(value):
            way = "it is not a finite number either"
        else:
            shown = s if value is None or (len(s) <= 24 and "_" not in s) else f"{value:g}"
            way = f"for a 1x1 kernel write [[{shown}]]"
        msg = (f"kernel {quoted(s)}: -k takes a kernel (a name, a literal or @file), and one number alone "
               f"is not taken as one; {way}")
        raise UsageError(msg)
    if s.startswith("[") or (any(ch.isdigit() for ch in s) and not _looks_like_name(s)):
        return parse_literal(s)
    return get_kernel(s)


#: A spec that is one number, signed or with a fraction (a bare whole number has its own message).
_ONE_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?\d+/\d+")


def _is_float(s: str) -> bool:
    """What Python's float reads (underscores, other scripts' digits) as one number."""
    try:
        float(s)
    except ValueError:
        return False
    return True


def _looks_like_name(s: str) -> bool:
    key = s.lower().replace("_", "-")
    return key in REGISTRY or key in ALIASES or (s[0].isalpha() and " " not in s and ";" not in s
                                                  and "/" not in s and "," not in s)
