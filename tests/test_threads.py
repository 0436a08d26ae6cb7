"""--threads reaches every threaded stage: with ``--threads 1 -j 1`` a run starts no thread at all.

Counted from outside the code under test: every ``threading.Thread.start`` and every task handed
to a ``concurrent.futures.ThreadPoolExecutor`` (engine bands, to_pixels, the PNG writer) during
an in-process CLI run. ``--threads 2`` on the same run is the control: the counters do see work.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from convcli.cli import cli

COMMANDS = [
    ["blur", "--size", "15"],  # one window stage: streamed
    ["filter", "-k", "sharpen", "--linear-light"],  # the whole-image path
    ["edges", "--direction", "both"],
]


def _count_thread_use(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    start, submit = threading.Thread.start, ThreadPoolExecutor.submit

    def counted_start(self: threading.Thread) -> None:
        seen.append(f"thread {self.name}")
        start(self)

    def counted_submit(self: ThreadPoolExecutor, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        seen.append(f"task in {getattr(self, '_thread_name_prefix', '?')}")
        return submit(self, fn, *args, **kwargs)

    monkeypatch.setattr(threading.Thread, "start", counted_start)
    monkeypatch.setattr(ThreadPoolExecutor, "submit", counted_submit)
    return seen


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_threads_1_jobs_1_starts_no_thread(command: list[str], tmp_path: Path, rng: np.random.Generator,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "in.png"
    Image.fromarray(rng.integers(0, 256, (600, 400, 3), dtype=np.uint8)).save(src)  # PNG writer: threaded
    seen = _count_thread_use(monkeypatch)
    before = {t.ident for t in threading.enumerate()}
    for threads, out in (("1", "one.png"), ("2", "two.png")):
        seen.clear()
        result = CliRunner().invoke(cli, [command[0], str(src), *command[1:], "-o", str(tmp_path / out),
                                          "--threads", threads, "-j", "1"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        if threads == "1":
            assert seen == []
            assert {t.ident for t in threading.enumerate()} <= before
        else:
            # the control: a pool task, or a thread of its own (the PNG decoder, the writer)
            assert any(s.startswith(("task in convcli-", "thread convcli-")) for s in seen), seen
    one = np.asarray(Image.open(tmp_path / "one.png"))
    np.testing.assert_array_equal(one, np.asarray(Image.open(tmp_path / "two.png")))
