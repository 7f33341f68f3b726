"""Cython kernels. Private: use :mod:`skconv.ops`, which validates arguments first.

Before the first kernel loads the OpenMP runtime, this asks it to let idle
threads sleep (``OMP_WAIT_POLICY=PASSIVE``) rather than spin for a while after
every parallel region. Spinning threads take the cores from whatever else runs:
with one busy process beside it on 2 cores, a LeNet-5 fit with 2 spinning
threads ran 4x slower than with 1 thread. The runtime reads the setting once,
when it loads, so it is set for that moment only and the environment is put
back; a user who set ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` keeps their choice.
"""

import os

if "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ:
    from ._openmp_helpers import openmp_enabled  # noqa: F401
else:
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    try:
        from ._openmp_helpers import openmp_enabled  # noqa: F401  (loads the OpenMP runtime)
    finally:
        del os.environ["OMP_WAIT_POLICY"]
