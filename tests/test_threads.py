"""How skconv's OpenMP threads behave next to other work."""

import os
import subprocess
import sys

import pytest

import skconv


def _runtime_env(**settings):
    """The OpenMP runtime's settings as it reports them when skconv loads it."""
    here = os.path.dirname(os.path.dirname(skconv.__file__))
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(PYTHONPATH=here, OMP_DISPLAY_ENV="true", **settings)
    code = "import os, skconv; print('left in environ:', 'OMP_WAIT_POLICY' in os.environ)"
    out = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True,
                         env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout + out.stderr


@pytest.mark.skipif(not skconv.openmp_enabled(), reason="built without OpenMP")
def test_idle_threads_sleep_instead_of_spinning_and_the_environment_is_left_alone():
    report = _runtime_env()
    if "OMP_WAIT_POLICY" not in report:
        pytest.skip("this OpenMP runtime does not display its settings")
    assert "OMP_WAIT_POLICY = 'PASSIVE'" in report
    assert "left in environ: False" in report


@pytest.mark.skipif(not skconv.openmp_enabled(), reason="built without OpenMP")
def test_a_users_wait_policy_wins():
    report = _runtime_env(OMP_WAIT_POLICY="active")
    if "OMP_WAIT_POLICY" not in report:
        pytest.skip("this OpenMP runtime does not display its settings")
    assert "OMP_WAIT_POLICY = 'ACTIVE'" in report
