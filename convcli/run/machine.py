"""What this machine can hold: the memory a process may use, for refusing an image before it is read.

An image whose pixels alone cannot fit (``200000x200000`` with ``--max-pixels`` raised: 149 GiB
for its decoded pixels) is a usage error found from its header (exit 2), not a ``MemoryError``
met half-way through decoding it. The limit is the smallest of the physical memory, the process's
address-space and data limits (``ulimit -v``, ``ulimit -d``) and a Linux cgroup's memory limit
(containers); where none of them can be read, nothing is refused here.
"""

from __future__ import annotations

import os
from pathlib import Path

#: A cgroup v2 memory limit (``max`` when unlimited), as a container sees its own.
_CGROUP_MAX = Path("/sys/fs/cgroup/memory.max")


def memory_limit() -> int | None:
    """Bytes this process can hold at most, or None if no limit can be read."""
    limits: list[int] = []
    try:
        limits.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, OSError, ValueError):  # not on Windows
        pass
    try:
        import resource  # POSIX only

        for which in (resource.RLIMIT_AS, resource.RLIMIT_DATA):
            soft = resource.getrlimit(which)[0]
            if soft != resource.RLIM_INFINITY and soft > 0:
                limits.append(soft)
    except (ImportError, AttributeError, OSError, ValueError):
        pass
    try:
        text = _CGROUP_MAX.read_text().strip()
        if text.isdigit():
            limits.append(int(text))
    except OSError:
        pass
    positive = [n for n in limits if n > 0]
    return min(positive) if positive else None


def size_text(n: int) -> str:
    """``n`` bytes for a message: ``224 GiB``, ``3.8 GiB``, ``17.2 MiB``."""
    for unit, shift in (("GiB", 30), ("MiB", 20)):
        v = n / (1 << shift)
        if v >= 1 or unit == "MiB":
            return f"{v:.0f} {unit}" if v >= 100 else f"{v:.1f} {unit}"
    raise AssertionError  # unreachable
