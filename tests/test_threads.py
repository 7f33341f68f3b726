"""How skconv's OpenMP threads behave next to other work."""

import os
import subprocess
import sys

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import skconv
from skconv import _engine


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


@pytest.mark.skipif(not skconv.openmp_enabled(), reason="built without OpenMP")
def test_a_fits_regions_get_a_thread_per_fraction_of_the_share(monkeypatch):
    # a fit's regions follow each other: a thread per TRAINING_SHARE-th of the
    # share there, in fit and partial_fit only, its plans keyed apart
    monkeypatch.undo()  # the suite's every_region_on_every_thread fixture
    work = _engine.MIN_WORK_PER_THREAD // 2
    with threadpool_limits(2):
        assert _engine.threads_for(64, work) == 1
        inference = _engine.plan_context()
        with _engine.training():
            assert _engine.threads_for(64, work) == 2
            assert _engine.plan_context() != inference
        assert _engine.threads_for(64, work) == 1
        assert _engine.plan_context() == inference
    seen = set()
    real = _engine.threads_for
    monkeypatch.setattr(_engine, "threads_for", lambda *args: (
        seen.add(_engine._TRAINING.active), real(*args))[1])
    X = np.random.default_rng(0).random((40, 8, 8))
    y = np.arange(40) % 2
    model = skconv.ConvNetClassifier(conv_layers=(4,), hidden_layer_sizes=(8,), max_iter=2,
                                     random_state=0)
    with pytest.warns(Warning):  # a two-epoch fit does not converge
        model.fit(X, y)
    assert seen == {True}
    seen.clear()
    model.predict(X)
    assert seen == {False}


@pytest.mark.skipif(not skconv.openmp_enabled(), reason="built without OpenMP")
def test_a_region_gets_one_more_thread_per_share_of_work_only(monkeypatch):
    # waking a sleeping thread costs more than a small region's work (~130 us
    # on a 2-core VM): LeNet-5's layers at a batch of 64 run on one thread
    monkeypatch.undo()  # the suite's every_region_on_every_thread fixture
    share = _engine.MIN_WORK_PER_THREAD
    with threadpool_limits(4):
        assert _engine.threads_for(64, share - 1) == 1
        assert _engine.threads_for(64, 2 * share) == 2
        assert _engine.threads_for(64, 100 * share) == 4
        assert _engine.threads_for(3, 100 * share) == 3
    with threadpool_limits(1):
        assert _engine.threads_for(64, 100 * share) == 1
    # LeNet-5's second convolution: 64 samples in one thread, 1,000 in all
    g = _engine.geometry((1, 6, 12, 12), (5, 5), 1, 0, 1)
    with threadpool_limits(2):
        assert _engine.conv2d_plan(g, 16, np.dtype(np.float32), 64)[0] == 1
        assert _engine.conv2d_plan(g, 16, np.dtype(np.float32), 1000)[0] == 2


@pytest.mark.skipif(not skconv.openmp_enabled(), reason="built without OpenMP")
def test_a_product_with_fewer_row_blocks_than_threads_splits_its_columns_too():
    # wide's dense layer at a batch of 64 (64 x 4096 @ 4096 x 128): 4 blocks of
    # 16 rows, then 4 blocks of 32 columns each would leave 12 of 16 threads idle
    with threadpool_limits(16):
        row_blocks, col_blocks, work_shape = _engine.matmul_plan(64, 128, 4096)
        assert (row_blocks, col_blocks, work_shape[0]) == (4, 2, 8)
        assert _engine.matmul_plan(64, 1024, 4096)[:2] == (4, 4)
        assert _engine.matmul_plan(1000, 128, 4096)[:2] == (16, 1)
        assert _engine.matmul_plan(1, 10, 4096)[:2] == (1, 1)  # one row: one block
    with threadpool_limits(1):
        assert _engine.matmul_plan(64, 1024, 4096)[:2] == (1, 1)


@pytest.mark.skipif(not skconv.openmp_enabled() or not hasattr(os, "fork"),
                    reason="built without OpenMP, or no fork")
def test_a_forked_child_runs_the_kernels_without_waiting_for_its_parents_threads():
    # multiprocessing's fork start method after the parent ran a region of two
    # threads: the child has the forking thread's OpenMP team, not its threads
    code = """if True:
        import os, signal, threading
        import numpy as np
        from skconv import _engine
        _engine.MIN_WORK_PER_THREAD = 1
        a = np.random.default_rng(0).standard_normal((512, 64)).astype(np.float32)
        b = np.ones((64, 64), np.float32)
        assert _engine.threads_for(16, 1e9) == 2
        expected = _engine.matmul(a, b)

        def others():
            status = []
            t = threading.Thread(target=lambda: status.append(
                (_engine.effective_n_threads(), _engine.matmul(a, b).tobytes())))
            t.start()
            t.join()
            return status[0]

        pid = os.fork()
        if pid == 0:
            signal.alarm(10)  # a hang ends the child, by this signal
            same = _engine.matmul(a, b).tobytes() == expected.tobytes()
            threads, bits = others()
            os._exit(0 if same and threads == 2 and bits == expected.tobytes() else 3)
        _, status = os.waitpid(pid, 0)
        print("child", "signal %d" % os.WTERMSIG(status) if os.WIFSIGNALED(status)
              else "exit %d" % os.WEXITSTATUS(status))
        print("parent threads", _engine.effective_n_threads())
    """
    here = os.path.dirname(os.path.dirname(skconv.__file__))
    out = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": here, "OMP_NUM_THREADS": "2"},
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["child exit 0", "parent threads 2"]
