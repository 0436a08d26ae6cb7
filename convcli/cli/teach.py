"""Bridges from the image commands to the teaching modules (--emit)."""

from __future__ import annotations

from typing import Any

from ..errors import UsageError
from ..pipeline import CorrelateStage
from .execute import Command


def emit_for(library: str, cmd: Command, p: dict[str, Any]) -> str:
    """The equivalent code in ``library`` for a one-kernel command (or the same kernel repeated)."""
    from ..teach.emit import EmitSpec, emit

    stages = cmd.pipeline.stages
    first = stages[0]
    if not isinstance(first, CorrelateStage) or any(s != first for s in stages):
        msg = (f"--emit {library}: this command is not a single kernel (e.g. edges magnitude combines two); "
               "use --direction vertical|horizontal or 'filter'")
        raise UsageError(msg)
    images = p.get("images") or ("input.png",)
    src = images[0] if images[0] != "-" else "input.png"
    out = p.get("output") or "output.png"
    spec = EmitSpec(kernel=first.weights, stride=first.stride, dilation=first.dilation, pad=first.pad,
                    mode=first.padding.name, flip=first.flip, channels=1 if cmd.gray or p.get("gray") else 3,
                    input_path=src, output_path=out, bias=first.bias, gray=bool(cmd.gray or p.get("gray")))
    code = emit(library, spec)  # type: ignore[arg-type]
    if len(stages) > 1:
        code += f"\n# convcli applies this {len(stages)} times (--times {len(stages)}): repeat it on `out`.\n"
    return code
