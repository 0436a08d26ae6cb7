"""Shared test setup: a deterministic Hypothesis profile and seeded random data."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

# Make ``import reference`` work from every test module (tests/ is not a package).
sys.path.insert(0, str(Path(__file__).parent))

#: CI: derandomized (the same examples on every run), no example database, no deadline
#: (shared runners are noisy), modest example counts so the suite stays fast.
settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=50,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
#: For a deeper local search: HYPOTHESIS_PROFILE=dev pytest
settings.register_profile("dev", max_examples=500, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def rng() -> np.random.Generator:
    """A fixed-seed generator: every test sees the same data on every run."""
    return np.random.default_rng(20240601)


def pytest_configure(config: pytest.Config) -> None:
    # Hypothesis's failure report imports a module that imports mypy_extensions, whose
    # TypedDict DeprecationWarning (turned into an error by filterwarnings=error) would
    # otherwise replace the falsifying example with an INTERNALERROR.
    config.addinivalue_line(
        "filterwarnings", "ignore:mypy_extensions.TypedDict is deprecated:DeprecationWarning"
    )


@pytest.fixture(autouse=True)
def small_work_on_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests run small images on the threads they ask for, so threaded and one-thread results are
    compared at sizes a test can afford, and streamed commands overlap their steps on threads
    at any size (run/job.OVERLAP_PIXELS). A real run keeps small work on one thread (the size
    rules are tested in test_startup.py, in subprocesses this fixture does not reach)."""
    from convcli.core import pixels
    from convcli.engine import bands
    from convcli.run import job

    monkeypatch.setattr(bands, "MIN_THREADED_WORK", 0)
    monkeypatch.setattr(pixels, "MIN_THREADED_SAMPLES", 0)
    monkeypatch.setattr(job, "OVERLAP_PIXELS", 0)  # decode, filter and encode overlap at any size
