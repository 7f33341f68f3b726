"""Random architectures, inputs and hyperparameters, valid or not, through the public estimator.

Every case, a classifier (one label per sample or multilabel) or a regressor,
either fits and predicts finite outputs (probabilities that sum to one for
single-label classification), or raises a clear ValueError or TypeError:
never a crash, a hang or another error.
"""

import warnings

import numpy as np
import scipy.sparse as sp
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sklearn.exceptions import ConvergenceWarning

from skconv import ConvNetClassifier, ConvNetRegressor

kernel = st.one_of(st.integers(-1, 6), st.tuples(st.integers(1, 4), st.integers(0, 4)))
block = st.one_of(
    st.integers(-1, 4),
    st.tuples(st.integers(1, 4), kernel),
    st.fixed_dictionaries(
        {"filters": st.integers(1, 4)},
        optional={
            "kernel_size": kernel,
            "stride": st.integers(-1, 3),
            "padding": st.sampled_from(["same", "valid", 0, 1, 2, -1, "bogus"]),
            "dilation": st.integers(0, 2),
            "pool": st.sampled_from(["max", "avg", None, "bogus"]),
            "pool_size": st.integers(0, 3),
            "batch_norm": st.sampled_from([True, False, "yes"]),
            "groups": st.sampled_from([1, 2, 0]),
            "separable": st.sampled_from([False, True, 1]),
        },
    ),
)
block = st.one_of(
    block,
    st.fixed_dictionaries(
        {"residual": st.one_of(st.lists(block, min_size=0, max_size=3), st.just(4))},
        optional={"pool": st.sampled_from(["max", None, "bogus"]),
                  "batch_norm": st.booleans(), "stride": st.just(2)},
    ),
)

hyperparameters = st.fixed_dictionaries(
    {
        "conv_layers": st.lists(block, min_size=0, max_size=2).map(tuple),
        "hidden_layer_sizes": st.sampled_from([(), (3,), (4, 2), (0,)]),
    },
    optional={
        "activation": st.sampled_from(["relu", "tanh", "logistic", "identity", "bogus"]),
        "solver": st.sampled_from(["adam", "sgd", "lbfgs"]),
        "learning_rate": st.sampled_from(["constant", "invscaling", "adaptive"]),
        "learning_rate_init": st.sampled_from([1e-3, 1e-2, 0.5, 0.0, -1.0]),
        "batch_size": st.sampled_from(["auto", 1, 3, 64, 0]),
        "alpha": st.sampled_from([0.0, 1e-4, 1.0, -1.0]),
        "momentum": st.sampled_from([0.0, 0.9, 1.5]),
        "dtype": st.sampled_from(["float32", "float64", "float16"]),
        "early_stopping": st.booleans(),
        "class_weight": st.sampled_from([None, "balanced", {0: 2.0}]),
        "shuffle": st.booleans(),
        "batch_norm": st.booleans(),
        "dropout": st.sampled_from([0.0, 0.3, 0.99, 1.0, -0.1]),
        "n_iter_no_change": st.sampled_from([1, 10, np.inf, 0]),
        "max_fun": st.sampled_from([None, 15000]),
        "global_pool": st.sampled_from([None, "avg", "max", "bogus"]),
        # image keys, series keys, a bad value
        "augment": st.sampled_from([None, {"shift": 1}, {"rotate": 5}, {"noise": 0.1},
                                    {"scale": 0.1, "noise": 0.05}, {"noise": -1}]),
    },
)


@st.composite
def inputs(draw):
    h, w, c = draw(st.integers(1, 9)), draw(st.integers(1, 9)), draw(st.integers(1, 3))
    n = draw(st.integers(4, 24))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    X = rng.standard_normal((n, h, w, c))
    layout = draw(st.sampled_from(["2d", "3d", "4d", "sparse", "series"]))
    if layout == "series":  # (n, length, channels), or rows of them
        X = X[:, 0]
        if draw(st.booleans()):
            X = X.reshape(n, -1)
    elif layout in ("2d", "sparse"):
        X = X.reshape(n, -1)
    elif layout == "3d":
        X = X[..., 0]
    X = X.astype(draw(st.sampled_from([np.float32, np.float64, np.int64])))
    if layout == "sparse":
        X = sp.csr_matrix(np.where(X > 0.5, X, 0))
    task = draw(st.sampled_from(["multiclass", "multilabel", "regression"]))
    if task == "multiclass":
        y = np.arange(n) % draw(st.integers(2, 3))
    elif task == "multilabel":
        y = np.c_[np.arange(n) % 2, np.arange(n) // 2 % 2, np.ones(n, int)]
    else:
        # 1-D y, a single column, or two targets
        y = rng.standard_normal((n, 2))[:, :draw(st.integers(1, 2))]
        y = y.ravel() if y.shape[1] == 1 and draw(st.booleans()) else y
    if layout == "series":
        input_shape = draw(st.sampled_from([(w, c), (None, c), (w + 1, c), None]))
    else:
        input_shape = draw(st.sampled_from([None, None, (h, w), (h, w, c), (h + 1, w)]))
    return X, y, input_shape, task


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(params=hyperparameters, data=inputs(), max_iter=st.integers(1, 2))
def test_random_configurations_fit_and_predict_or_raise_a_clear_error(params, data, max_iter):
    X, y, input_shape, task = data
    if task == "regression":
        params = {k: v for k, v in params.items() if k != "class_weight"}
        est = ConvNetRegressor(**params, input_shape=input_shape, max_iter=max_iter,
                               random_state=0)
    else:
        est = ConvNetClassifier(**params, input_shape=input_shape, max_iter=max_iter,
                                random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        try:
            est.fit(X, y)
        except (ValueError, TypeError) as exc:
            assert str(exc), "errors must say what is wrong"
            event(f"{task} refused: {type(exc).__name__}")
            return
    event(f"{task} fitted")
    if task == "regression":
        pred = est.predict(X)
        assert pred.shape == y.shape and np.all(np.isfinite(pred))
        return
    proba = est.predict_proba(X)
    assert np.all(np.isfinite(proba))
    if task == "multilabel":
        assert proba.shape == y.shape and est.predict(X).shape == y.shape
        return
    assert proba.shape == (X.shape[0], len(np.unique(y)))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert set(est.predict(X)) <= set(np.unique(y))
