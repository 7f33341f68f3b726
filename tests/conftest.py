"""Test configuration shared by every test module.

Hypothesis profiles: ``ci`` is derandomized (the same examples on every run, so
a red CI is reproducible) and is loaded whenever the ``CI`` environment
variable is set; ``dev`` explores new examples on each run. Neither has a
deadline: the debug build of the kernels (bounds checks on) is several times
slower, and speed is measured in ``benchmarks/``, not asserted here.
"""

import os

import pytest
from hypothesis import HealthCheck, settings

from skconv._kernels import _gemm
from skconv import _engine

settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=100,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture
def simd_path():
    """Set the kernels' SIMD path for one test, then put back the one chosen at import."""
    chosen = _gemm.get_path()
    yield _gemm.set_path
    _gemm.set_path(chosen)


@pytest.fixture(autouse=True)
def every_region_on_every_thread(monkeypatch):
    """Run each parallel region on all the threads available, however little its work.

    _engine.threads_for gives a region one more thread per ~0.2 ms of work only, so
    the tests' small inputs would all run on one thread, and tests of thread
    counts would compare one thread with itself. (The rule itself is tested
    in test_threads.py.)
    """
    monkeypatch.setattr(_engine, "MIN_WORK_PER_THREAD", 1)
