"""Shared helpers for the benchmark suite: timing, results, Markdown tables."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


@dataclass
class Timing:
    """The samples of one timed call, in seconds."""

    samples: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def n(self) -> int:
        return len(self.samples)


@dataclass
class Cell:
    """One tool on one workload: a timing, or the one-line reason it has none."""

    timing: Timing | None = None
    note: str = ""
    approx: bool = False
    error: float | None = None
    tolerance: float | None = None
    error_text: str = ""

    @property
    def ok(self) -> bool:
        return self.timing is not None


@dataclass
class Report:
    """Markdown lines collected while the suite runs; echoed to stdout as they come."""

    lines: list[str] = field(default_factory=list)

    def add(self, *lines: str) -> None:
        for line in lines:
            print(line, flush=True)
            self.lines.append(line)

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def repeat_timed(
    fn: Callable[[], object], repeats: int, budget: float, first: float | None = None
) -> Timing:
    """Median-ready samples of ``fn()``.

    ``first`` is the duration of a call already made (the verification call, which also warms
    caches). When ``repeats`` more calls fit in ``budget`` seconds they are all made and ``first``
    is dropped; otherwise as many as fit, and if none fits the first call is the only sample.
    """
    if first is None:
        first = _time_once(fn)
    n = repeats if first * repeats <= budget else int(budget // max(first, 1e-9))
    if n <= 0:
        return Timing([first])
    return Timing([_time_once(fn) for _ in range(n)])


def _time_once(fn: Callable[[], object]) -> float:
    gc.collect()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def timed_call(fn: Callable[[], object]) -> tuple[object, float]:
    """Run ``fn`` once; its result and its wall time."""
    gc.collect()
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]], right_from: int = 1) -> list[str]:
    """A Markdown table; columns from ``right_from`` on are right-aligned."""
    align = ["---" if i < right_from else "---:" for i in range(len(header))]
    out = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return out


def fmt_ms(seconds: float) -> str:
    ms = seconds * 1e3
    if ms >= 100:
        return f"{ms:.0f}"
    if ms >= 10:
        return f"{ms:.1f}"
    return f"{ms:.2f}"


def fmt_ratio(value: float, base: float | None) -> str:
    if base is None or base <= 0:
        return ""
    return f" (×{value / base:.2f})"
