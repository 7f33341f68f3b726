"""ONNX export: onnxruntime runs the converted model and agrees with the estimator.

The oracle is the estimator itself: for random valid architectures (the fuzz
test's strides, paddings, dilations, pooling, batch norm, dropout, channels,
input layouts and class counts), onnxruntime's labels equal ``predict`` and
its probabilities match ``predict_proba`` to float32 tolerance (float64
models with float64 input: to float64 rounding). Skipped when skl2onnx or
onnxruntime is not installed.
"""

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sklearn.exceptions import ConvergenceWarning
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

import skconv
from skconv import ConvNetClassifier

onnx = pytest.importorskip("onnx")
skl2onnx = pytest.importorskip("skl2onnx")
ort = pytest.importorskip("onnxruntime")
import skconv.onnx  # noqa: E402,F401  (registers the converter)


ConvNetRegressor = getattr(skconv, "ConvNetRegressor", None)
needs_regressor = pytest.mark.skipif(
    ConvNetRegressor is None, reason="this skconv has no ConvNetRegressor or multilabel yet")


def run_onnx(model, X, zipmap=False, **kwargs):
    """Convert ``model`` for inputs like ``X``, run X through onnxruntime; return its outputs."""
    options = {} if zipmap is None else {"zipmap": zipmap}
    onx = skl2onnx.to_onnx(model, X[:1], options=options, **kwargs)
    onnx.checker.check_model(onx, full_check=True)
    sess = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: X})


def fit(X, y, estimator=ConvNetClassifier, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator(random_state=0, **params).fit(X, y)


def assert_matches(model, X, labels, proba, rtol=1e-4, atol=1e-5):
    """Probabilities allclose; labels equal wherever the top two probabilities are
    further apart than the tolerance (a float32 near-tie may go either way)."""
    expected = model.predict_proba(X)
    np.testing.assert_allclose(proba, expected, rtol=rtol, atol=atol)
    top2 = np.sort(expected, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 10 * atol
    np.testing.assert_array_equal(labels[clear], model.predict(X)[clear])


# the fuzz test's strategies (tests/test_fuzz_estimator.py), valid values only
kernel = st.one_of(st.integers(1, 4), st.tuples(st.integers(1, 4), st.integers(1, 4)))
block = st.one_of(
    st.integers(1, 4),
    st.tuples(st.integers(1, 4), kernel),
    st.fixed_dictionaries(
        {"filters": st.integers(1, 4)},
        optional={
            "kernel_size": kernel,
            "stride": st.integers(1, 3),
            "padding": st.sampled_from(["same", "same", "valid", 0, 1, 2]),
            "dilation": st.integers(1, 2),
            "pool": st.sampled_from(["max", "avg", None]),
            "pool_size": st.integers(1, 3),
            "batch_norm": st.booleans(),
        },
    ),
)
hyperparameters = st.fixed_dictionaries(
    {
        "conv_layers": st.lists(block, min_size=0, max_size=2).map(tuple),
        "hidden_layer_sizes": st.sampled_from([(), (3,), (4, 2)]),
    },
    optional={
        "activation": st.sampled_from(["relu", "tanh", "logistic", "identity"]),
        "dtype": st.sampled_from(["float32", "float64"]),
        "batch_norm": st.booleans(),
        "dropout": st.sampled_from([0.0, 0.3]),
        "padding": st.sampled_from(["same", "valid", 1]),
        "pool": st.sampled_from(["max", "avg", None]),
    },
)


@st.composite
def datasets(draw):
    h, w = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    c = draw(st.sampled_from([1, 3]))
    n = draw(st.integers(6, 24))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    X = rng.standard_normal((n, h, w, c))
    layout = draw(st.sampled_from(["2d", "3d", "4d"] if c == 1 else ["2d", "4d"]))
    if layout == "2d":
        X = X.reshape(n, -1)
    elif layout == "3d":
        X = X[..., 0]
    classes = draw(st.sampled_from([[0, 1], [3, 5, 7], ["cat", "dog"], ["a", "b", "c"]]))
    y = np.asarray(classes)[np.arange(n) % len(classes)]
    # 2D rows of a non-square image need the image shape
    input_shape = (h, w, c) if layout == "2d" else None
    return X, y, input_shape


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(params=hyperparameters, data=datasets(), input_dtype=st.sampled_from(["float32", "float64"]))
def test_random_architectures_in_onnxruntime_match_predict_and_predict_proba(
        params, data, input_dtype):
    X, y, input_shape = data
    X = X.astype(input_dtype)
    try:
        clf = fit(X, y, input_shape=input_shape, max_iter=2, **params)
    except ValueError:
        # a kernel that does not fit the image: refused by fit, nothing to convert
        event("refused by fit")
        return
    event(f"converted: {clf.dtype} model, {input_dtype} input")
    labels, proba = run_onnx(clf, X)
    exact = clf.dtype == "float64" and input_dtype == "float64"
    assert proba.dtype == np.dtype(input_dtype)
    assert_matches(clf, X, labels, proba, **({"rtol": 1e-10, "atol": 1e-12} if exact else {}))


@needs_regressor
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(params=hyperparameters, data=datasets(),
       task=st.sampled_from(["regressor, 1 target", "regressor, 2 targets", "multilabel"]))
def test_random_regressors_and_multilabel_classifiers_in_onnxruntime_match(params, data, task):
    X, _, input_shape = data
    X = X.astype(np.float32)
    rng = np.random.default_rng(len(X))
    if task == "multilabel":
        y = (rng.standard_normal((len(X), 3)) > 0).astype(int)
        estimator = ConvNetClassifier
    else:
        y = rng.standard_normal((len(X), 2) if task.endswith("2 targets") else len(X))
        estimator = ConvNetRegressor
    try:
        model = fit(X, y, estimator, input_shape=input_shape, max_iter=2, **params)
    except ValueError:
        event("refused by fit")
        return
    event(f"converted: {task}")
    if task == "multilabel":
        labels, proba = run_onnx(model, X)
        np.testing.assert_allclose(proba, model.predict_proba(X), rtol=1e-4, atol=1e-5)
        clear = np.abs(proba - 0.5) > 1e-4
        np.testing.assert_array_equal(labels[clear], model.predict(X)[clear])
    else:
        (outputs,) = run_onnx(model, X, zipmap=None)
        expected = model.predict(X).reshape(len(X), -1)
        np.testing.assert_allclose(outputs, expected, rtol=1e-4, atol=1e-5 * (1 + np.abs(
            expected).max()))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_same_padding_with_stride_dilation_and_clipped_pools_matches(dtype):
    """The cases that differ from ONNX's defaults: 'same' with an odd total
    padding (extra bottom/right row), windows clipped to a 1xN map."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((40, 5, 8))
    y = np.arange(40) % 3
    clf = fit(X, y, conv_layers=[
        {"filters": 3, "kernel_size": (2, 3), "stride": 2, "dilation": (1, 2), "batch_norm": True},
        {"filters": 2, "kernel_size": 2, "pool": "avg", "pool_size": 3},
        {"filters": 2, "kernel_size": 1, "pool": "max", "pool_size": 4},
    ], hidden_layer_sizes=(6,), batch_norm=True, dropout=0.2, dtype=dtype, max_iter=3)
    labels, proba = run_onnx(clf, X)
    assert_matches(clf, X, labels, proba, **({"rtol": 1e-10, "atol": 1e-12}
                                             if dtype == "float64" else {}))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_winograds_convolutions_match_onnxruntimes_direct_ones(dtype):
    # 32 filters on 8 x 8 maps, pooled and in a residual body with batch norm:
    # skconv runs them forward by Winograd's F(2x2, 3x3), onnxruntime by its Conv
    rng = np.random.default_rng(3)
    X = rng.standard_normal((40, 16, 16, 3))
    y = np.arange(40) % 3
    clf = fit(X, y, conv_layers=(32, {"residual": [32, 32]}, {"filters": 32, "pool": "avg"}),
              batch_norm=True, hidden_layer_sizes=(8,), dtype=dtype, max_iter=3)
    labels, proba = run_onnx(clf, X)
    assert_matches(clf, X, labels, proba, **({"rtol": 1e-10, "atol": 1e-12}
                                             if dtype == "float64" else {}))


@pytest.mark.parametrize("target_opset", [13, 17, 18])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_oldest_and_newer_opsets_convert_and_match(dtype, target_opset):
    """Opset 13 is the oldest written; ReduceMean (float64 avg pooling) takes its
    axes as an attribute up to 17 and as an input from 18."""
    X = np.random.default_rng(9).standard_normal((30, 6, 6))
    clf = fit(X, np.arange(30) % 3, conv_layers=[{"filters": 2, "pool": "avg", "pool_size": 4}],
              dtype=dtype, max_iter=2)
    labels, proba = run_onnx(clf, X, target_opset=target_opset)
    assert_matches(clf, X, labels, proba, **({"rtol": 1e-10, "atol": 1e-12}
                                             if dtype == "float64" else {}))


def test_integer_input_is_cast_as_predict_casts_it():
    X = np.random.default_rng(10).integers(0, 16, (30, 64))
    clf = fit(X / 16, np.arange(30) % 2, conv_layers=(2,), max_iter=2)
    labels, proba = run_onnx(clf, X)
    assert_matches(clf, X, labels, proba)


def test_pipeline_with_a_scaler_converts_whole_and_matches():
    rng = np.random.default_rng(2)
    X = rng.uniform(0, 255, (60, 64))
    y = np.where(X[:, :32].mean(axis=1) > X[:, 32:].mean(axis=1), "left", "right")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        pipe = make_pipeline(MinMaxScaler(), ConvNetClassifier((4,), (8,), max_iter=5,
                                                               random_state=0)).fit(X, y)
    labels, proba = run_onnx(pipe, X.astype(np.float32))
    assert_matches(pipe, X.astype(np.float32), labels, proba)
    assert labels.dtype == object and set(labels) <= {"left", "right"}


@needs_regressor
def test_regressor_pipeline_converts_whole_and_its_column_matches_predict():
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(8)
    X = rng.standard_normal((40, 16)).astype(np.float32)
    y = X[:, :8].sum(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        pipe = make_pipeline(StandardScaler(), ConvNetRegressor((3,), (4,), max_iter=5,
                                                               random_state=0)).fit(X, y)
    (outputs,) = run_onnx(pipe, X, zipmap=None)
    assert outputs.shape == (len(X), 1)
    np.testing.assert_allclose(outputs[:, 0], pipe.predict(X), rtol=1e-4, atol=1e-5)


@needs_regressor
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_poisson_regressor_exports_its_exponential_output(dtype):
    rng = np.random.default_rng(9)
    X = rng.uniform(size=(60, 6, 6, 2))
    y = rng.poisson(np.exp(1 + 2 * X[:, 1:4, 1:4, 0].mean(axis=(1, 2))), size=(2, 60)).T
    reg = fit(X.reshape(60, -1), y, ConvNetRegressor, conv_layers=(3,), hidden_layer_sizes=(4,),
              input_shape=(6, 6, 2), loss="poisson", max_iter=3, dtype=dtype)
    names = {node.op_type for node in skl2onnx.to_onnx(reg, X[:1].reshape(1, -1).astype(
        dtype)).graph.node}
    assert "Exp" in names
    (outputs,) = run_onnx(reg, X.reshape(60, -1).astype(dtype), zipmap=None)
    exact = dtype == "float64"
    np.testing.assert_allclose(outputs, reg.predict(X.reshape(60, -1)),
                               rtol=1e-12 if exact else 1e-5)


def test_zipmap_default_gives_one_dict_of_probabilities_per_row():
    X = np.random.default_rng(3).standard_normal((20, 16)).astype(np.float32)
    y = np.arange(20) % 2 + 10
    clf = fit(X, y, conv_layers=(2,), hidden_layer_sizes=(), max_iter=2)
    onx = skl2onnx.to_onnx(clf, X[:1])
    sess = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    labels, dicts = sess.run(None, {sess.get_inputs()[0].name: X})
    assert [sorted(d) for d in dicts] == [[10, 11]] * len(X)
    proba = np.array([[d[10], d[11]] for d in dicts])
    assert_matches(clf, X, labels, proba)


def test_zipmap_with_float64_input_raises_a_clear_error_and_columns_work():
    X = np.random.default_rng(3).standard_normal((20, 16))
    y = np.array(["x", "y"])[np.arange(20) % 2]
    clf = fit(X, y, conv_layers=(2,), hidden_layer_sizes=(), max_iter=2)
    with pytest.raises(ValueError, match="zipmap=True needs float32 probabilities"):
        skl2onnx.to_onnx(clf, X[:1])
    labels, *columns = run_onnx(clf, X, zipmap="columns")
    assert_matches(clf, X, labels, np.column_stack(columns))


def test_boolean_and_integral_float_labels_become_int64():
    X = np.random.default_rng(4).standard_normal((20, 9)).astype(np.float32)
    for y in (np.arange(20) % 2 == 0, (np.arange(20) % 3).astype(float)):
        clf = fit(X, y, conv_layers=(2,), hidden_layer_sizes=(), max_iter=2)
        labels, proba = run_onnx(clf, X)
        assert labels.dtype == np.int64
        assert_matches(clf, X, labels, proba)


def test_uint64_labels_beyond_int64_raise_rather_than_wrap():
    X = np.random.default_rng(4).standard_normal((20, 9)).astype(np.float32)
    y = np.array([1, 2**63 + 5], dtype=np.uint64)[np.arange(20) % 2]
    clf = fit(X, y, conv_layers=(2,), hidden_layer_sizes=(), max_iter=1)
    with pytest.raises(ValueError, match="integers within int64's range"):
        skl2onnx.to_onnx(clf, X[:1], options={"zipmap": False})
    # the largest int64 is still a label
    y = np.array([0, 2**63 - 1], dtype=np.uint64)[np.arange(20) % 2]
    clf = fit(X, y, conv_layers=(2,), hidden_layer_sizes=(), max_iter=1)
    labels, proba = run_onnx(clf, X)
    assert_matches(clf, X, labels.astype(np.uint64), proba)


@needs_regressor
def test_an_unfitted_regressor_raises_not_fitted_error():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError, match="ConvNetRegressor instance is not fitted yet"):
        skl2onnx.to_onnx(ConvNetRegressor(), np.zeros((1, 16), dtype=np.float32))


def test_opset_below_13_raises_a_clear_error():
    X = np.random.default_rng(6).standard_normal((20, 9)).astype(np.float32)
    clf = fit(X, np.arange(20) % 2, conv_layers=(2,), max_iter=1)
    with pytest.raises(RuntimeError, match="target_opset=12 .* opset 13 or newer"):
        skl2onnx.to_onnx(clf, X[:1], target_opset=12)


def test_unknown_layer_raises_a_clear_error():
    from skconv._layers import Layer

    class Mystery(Layer):
        pass

    X = np.random.default_rng(7).standard_normal((20, 9)).astype(np.float32)
    clf = fit(X, np.arange(20) % 2, conv_layers=(2,), max_iter=1)
    from skconv._network import Node

    clf._network.nodes.insert(1, Node("mystery", Mystery(), (clf._network.nodes[0].name,)))
    with pytest.raises(NotImplementedError, match="node 'mystery' .* Mystery, has no ONNX conv"):
        skl2onnx.to_onnx(clf, X[:1])


def test_importing_skconv_does_not_import_skl2onnx():
    code = "import sys, skconv; skconv.ConvNetClassifier(); print('skl2onnx' in sys.modules)"
    # the skconv these tests import, installed or built in place
    root = str(Path(skconv.__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get(
        "PYTHONPATH")])))
    out = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True,
                         check=True, env=env)
    assert out.stdout.strip() == "False"


def test_converting_for_samples_predict_refuses_raises_in_image_terms():
    """The graph reshapes its input to the fitted images, so an example of other
    samples would give a graph that fails when served or, channels-first, that
    silently misreads every image."""
    X = np.random.default_rng(11).standard_normal((20, 6, 6, 3)).astype(np.float32)
    clf = fit(X, np.arange(20) % 2, conv_layers=(2,), hidden_layer_sizes=(), max_iter=1)
    with pytest.raises(ValueError, match="looks channels-first .* X.transpose"):
        skl2onnx.to_onnx(clf, X[:1].transpose(0, 3, 1, 2), options={"zipmap": False})
    with pytest.raises(ValueError, match="X has 75 features, but .* expecting 108"):
        skl2onnx.to_onnx(clf, X[:1, :5, :5].reshape(1, -1), options={"zipmap": False})
    with pytest.raises(ValueError, match="got X.ndim=5"):
        skl2onnx.to_onnx(clf, X[:1, np.newaxis], options={"zipmap": False})
    labels, proba = run_onnx(clf, X.reshape(20, -1))  # rows of the fitted images convert
    assert_matches(clf, X.reshape(20, -1), labels, proba)
