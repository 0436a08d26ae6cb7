"""-j by default: a process pool only where the work pays for its start-up (the size from the headers)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from click.testing import CliRunner
from PIL import Image

from convcli.cli import cli
from convcli.errors import ExitStatus
from convcli.pipeline import Pipeline
from convcli.run.job import Job
from convcli.run.plan import Refusal
from convcli.run.scale import POOL_MIN_SAMPLES, choose_workers, usable_cores


def _job(samples: int, dry_run: bool = False) -> Job:
    return Job(source="x.png", pipeline=Pipeline(()), output="y.png", samples=samples, dry_run=dry_run)


def test_small_batches_run_in_this_process() -> None:
    tasks = [_job(451 * 300 * 3) for _ in range(20)]
    assert choose_workers(tasks, None) == 1


def test_large_batches_get_a_pool_of_the_usable_cores() -> None:
    tasks = [_job(512 * 512 * 3) for _ in range(200)]
    assert sum(t.samples for t in tasks) >= POOL_MIN_SAMPLES
    assert choose_workers(tasks, None) == min(usable_cores(), 200)


def test_j_as_given_is_honoured_but_never_more_workers_than_jobs() -> None:
    tasks: list[Job | Refusal] = [_job(10), _job(10), Refusal("z.png", "unreadable", ExitStatus.FAILURE)]
    assert choose_workers(tasks, 1) == 1
    assert choose_workers(tasks, 8) == 2
    assert choose_workers([_job(10**9)], None) == 1  # one image: never a pool
    assert choose_workers([_job(10**9, dry_run=True)] * 4, None) == 1  # dry runs decode nothing


def test_the_summary_says_one_worker_for_a_small_batch(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    r = CliRunner().invoke(cli, ["blur", str(tmp_path), "--out-dir", str(tmp_path / "o")],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.stderr
    assert "(1 worker)" in r.stderr.splitlines()[-1]
