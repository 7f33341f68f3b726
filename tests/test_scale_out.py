"""Threads, processes and clusters: the same answers however the work is spread."""

import concurrent.futures
import time

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV
from threadpoolctl import threadpool_limits

from skconv import ConvNetClassifier, ConvNetRegressor


def _small_digits(n=240):
    X, y = load_digits(return_X_y=True)
    return (X[:n] / 16.0).astype(np.float32), y[:n]


def _small_net(**params):
    defaults = dict(conv_layers=(4,), hidden_layer_sizes=(16,), max_iter=3, random_state=0)
    defaults.update(params)
    return ConvNetClassifier(**defaults)


def _fit_and_dump(params, X, y):
    model = _small_net(**params).fit(X, y)
    return model.predict_proba(X), [w.copy() for w in model.coefs_]


def test_same_random_state_gives_identical_weights_with_1_and_2_threads_and_in_a_joblib_worker():
    X, y = _small_digits()
    with threadpool_limits(1):
        one = _fit_and_dump({}, X, y)
    with threadpool_limits(2):
        two = _fit_and_dump({}, X, y)
    (worker,) = joblib.Parallel(n_jobs=2, backend="loky")(
        joblib.delayed(_fit_and_dump)({}, X, y) for _ in range(1)
    )
    for other in (two, worker):
        np.testing.assert_array_equal(one[0], other[0])
        for a, b in zip(one[1], other[1]):
            np.testing.assert_array_equal(a, b)


def test_predicting_from_four_threads_at_once_matches_sequential_calls():
    X, y = _small_digits()
    model = _small_net().fit(X, y)
    chunks = np.array_split(X, 8)
    expected = [model.predict_proba(c) for c in chunks]
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        for _ in range(3):
            got = list(pool.map(model.predict_proba, chunks))
            for a, b in zip(expected, got):
                np.testing.assert_array_equal(a, b)


def _grid(estimator=None):
    return GridSearchCV(
        _small_net(max_iter=2) if estimator is None else estimator,
        {"conv_layers": [(2,), (4,)], "learning_rate_init": [1e-3, 3e-3]},
        cv=2,
    )


def _regressor_grid():
    """The digit's value as a continuous target, scored by R²."""
    return _grid(ConvNetRegressor(conv_layers=(4,), hidden_layer_sizes=(16,), max_iter=2,
                                  random_state=0))


def test_grid_search_with_loky_after_a_fit_in_the_parent_completes():
    X, y = _small_digits(160)
    # this process has run OpenMP and BLAS thread pools before loky starts workers
    _small_net(max_iter=1).fit(X, y)
    search = _grid()
    search.n_jobs = 2

    def run():
        with joblib.parallel_config(backend="loky"):
            return search.fit(X, y).cv_results_["mean_test_score"]

    # a deadlocked worker must fail the test, not hang CI
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as watchdog:
        scores = watchdog.submit(run).result(timeout=240)
    assert np.all(np.isfinite(scores))


@pytest.mark.slow
def test_grid_searches_on_a_dask_cluster_match_the_sequential_scores():
    distributed = pytest.importorskip("distributed")
    X, y = _small_digits(160)
    sequential = _grid().fit(X, y).cv_results_["mean_test_score"]
    sequential_r2 = _regressor_grid().fit(X, y / 9.0).cv_results_["mean_test_score"]
    start = time.perf_counter()
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster, distributed.Client(cluster):
        search, regressor_search = _grid(), _regressor_grid()
        search.n_jobs = regressor_search.n_jobs = -1
        with joblib.parallel_config(backend="dask"):
            search.fit(X, y)
            regressor_search.fit(X, y / 9.0)
    assert time.perf_counter() - start < 300
    np.testing.assert_array_equal(search.cv_results_["mean_test_score"], sequential)
    np.testing.assert_array_equal(regressor_search.cv_results_["mean_test_score"], sequential_r2)
