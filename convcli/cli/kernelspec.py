"""``--kernel SPEC`` as the command line reads it: every spec parse_kernel takes, plus kernel images."""

from __future__ import annotations

import numpy as np

from convcli.core.kernels import Kernel, parse_literal
from convcli.core.specs import parse_kernel, spec_file
from convcli.errors import UsageError


def kernel_files(spec: str | None) -> tuple[str, ...]:
    """The file a ``@file`` spec reads (none for any other spec, or no spec): an input of the
    command, for the one safety check of its outputs (:func:`convcli.run.plan.check_paths`)."""
    path = spec_file(spec) if spec is not None else None
    return (path,) if path is not None else ()


def cli_kernel(spec: str) -> Kernel:
    """parse_kernel with ``@file`` kernels read and ``@image.png`` kernels decoded by convcli.io (core
    stays NumPy-only)."""
    from convcli.io.kernelfile import load_kernel_file

    path = spec_file(spec)
    if path:  # explain, kernels, --emit write to stdout with no plan of their own: k.txt >> k.txt
        from convcli.run.plan import check_stdout_is_not

        check_stdout_is_not(path)
    return parse_kernel(spec, file_loader=load_kernel_file)


def user_kernel(spec: str, normalize: bool, scale: float | None) -> Kernel:
    """``-k SPEC`` with ``--normalize`` (divided by its sum) and ``--scale F`` applied, in that order."""
    k = cli_kernel(spec)
    if normalize:
        k = k.normalized()
    if scale is not None:
        k = k.scaled(scale)
    return k


def parse_patch(text: str) -> np.ndarray:
    """An input patch given as a literal (``explain``/``animate --patch``); its errors name --patch
    where the kernel parser's say "kernel"."""
    try:
        return parse_literal(text, "--patch").weights
    except UsageError as e:
        msg = str(e).replace("kernel '--patch' ", "--patch ").replace("kernel row", "--patch row")
        for kernel_words, patch_words in ((" (results would overflow)", ""), ("(ragged kernel)", "(ragged)")):
            msg = msg.replace(kernel_words, patch_words)
        raise UsageError(msg) from None
