"""Series models (``input_shape=(length, channels)``) exported to ONNX.

ONNX: the graph is a 1-D net (every Conv, pool and input Reshape works on
(n, channels, length)), and onnxruntime agrees with ``predict_proba`` /
``predict`` to float32 rounding (float64 models with float64 input: float64
rounding). Skipped without skl2onnx / onnxruntime.
"""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from skconv import ConvNetClassifier
from skconv.architectures import fcn

onnx = pytest.importorskip("onnx")
skl2onnx = pytest.importorskip("skl2onnx")
ort = pytest.importorskip("onnxruntime")
import skconv.onnx  # noqa: E402,F401  (registers the converter)


def fit(X, y, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return ConvNetClassifier(random_state=0, max_iter=3, **params).fit(X, y)


def run_onnx(model, X):
    onx = skl2onnx.to_onnx(model, X[:1], options={"zipmap": False})
    onnx.checker.check_model(onx, full_check=True)
    sess = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    return onx, sess.run(None, {sess.get_inputs()[0].name: X})


def series(n=12, length=23, channels=1, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, length, channels))
    y = np.arange(n) % 3
    return X, y


RESIDUAL = {"residual": [{"filters": 3, "kernel_size": 4}, {"filters": 5, "kernel_size": 3}]}
NETS = {
    "fcn": dict(fcn(2)),
    "stride, dilation, max pool": dict(conv_layers=(
        {"filters": 3, "kernel_size": 4, "stride": 2, "pool": "max", "pool_size": 2},
        {"filters": 2, "kernel_size": 3, "dilation": 2, "padding": "valid", "pool": None}),
        hidden_layer_sizes=(4,)),
    "even kernel same, avg pool": dict(conv_layers=(
        {"filters": 3, "kernel_size": 6, "padding": "same", "pool": "avg", "pool_size": 3},
        {"filters": 2, "kernel_size": 2, "pool": "avg", "pool_size": 2}),
        hidden_layer_sizes=()),
    "grouped and separable": dict(conv_layers=(
        {"filters": 4, "kernel_size": 3, "pool": None},
        {"filters": 4, "kernel_size": 3, "groups": 2, "pool": None},
        {"filters": 4, "kernel_size": 4, "separable": True, "stride": 2, "pool": None}),
        global_pool="avg", hidden_layer_sizes=()),
    "residual with projection, global max": dict(
        conv_layers=(RESIDUAL,), batch_norm=True, global_pool="max", hidden_layer_sizes=()),
    "residual, global avg": dict(
        conv_layers=({"filters": 2, "kernel_size": 3}, RESIDUAL), batch_norm=True,
        global_pool="avg", hidden_layer_sizes=()),
}


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("net", sorted(NETS))
def test_series_in_onnxruntime_match_predict_and_predict_proba(net, dtype, channels):
    X, y = series(channels=channels)
    clf = fit(X, y, input_shape=(23, channels), dtype=dtype, **NETS[net])
    assert clf.input_shape_ == (23, channels)
    for rows in (X, X.reshape(len(X), -1)):  # (n, length, channels) and flat rows
        rows = rows.astype(dtype)
        onx, (labels, proba) = run_onnx(clf, rows)
        exact = dtype == "float64"
        tol = {"rtol": 1e-10, "atol": 1e-12} if exact else {"rtol": 1e-4, "atol": 1e-5}
        expected = clf.predict_proba(rows)
        np.testing.assert_allclose(proba, expected, **tol)
        top2 = np.sort(expected, axis=1)[:, -2:]
        clear = top2[:, 1] - top2[:, 0] > 10 * tol["atol"]
        np.testing.assert_array_equal(labels[clear], clf.predict(rows)[clear])


def test_series_graph_is_one_dimensional():
    X, y = series(channels=2)
    clf = fit(X, y, input_shape=(23, 2), **NETS["even kernel same, avg pool"])
    onx, _ = run_onnx(clf, X.astype(np.float32))
    nodes = {n.op_type: n for n in onx.graph.node}
    attrs = {n.name: {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
             for n in onx.graph.node}
    convs = [n for n in onx.graph.node if n.op_type == "Conv"]
    assert len(convs) == 2
    first = attrs[convs[0].name]
    # kernel 6 'same': 5 padding samples, the odd one on the right
    assert first["kernel_shape"] == [6] and first["pads"] == [2, 3]
    weights = {t.name: t for t in onx.graph.initializer}
    assert list(weights[convs[0].input[1]].dims) == [3, 2, 6]
    assert attrs[nodes["AveragePool"].name]["kernel_shape"] == [2]
    transpose = next(n for n in onx.graph.node if n.op_type == "Transpose")
    assert attrs[transpose.name]["perm"] == [0, 2, 1]


def test_series_regressor_in_onnxruntime_matches_predict():
    from skconv import ConvNetRegressor

    X, _ = series(channels=2)
    target = X[:, 5:9, 0].sum(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg = ConvNetRegressor(**fcn(2), input_shape=(23, 2), max_iter=3,
                               random_state=0).fit(X, target)
    rows = X.reshape(len(X), -1).astype(np.float32)
    onx = skl2onnx.to_onnx(reg, rows[:1])
    sess = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    (out,) = sess.run(None, {sess.get_inputs()[0].name: rows})
    np.testing.assert_allclose(out[:, 0], reg.predict(rows), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_winograd_series_in_onnxruntime_match_predict_proba(dtype):
    # fcn(32)'s second convolution (32 -> 64 of 5 taps) on 40 steps takes
    # Winograd's product (skconv._engine.takes_winograd); onnxruntime's Conv
    # the direct one
    from skconv import _engine

    assert _engine.takes_winograd(_engine.geometry((1, 32, 1, 40), (1, 5), 1, (0, 2), 1), 64)
    X, y = series(length=40)
    clf = fit(X, y, input_shape=(40, 1), dtype=dtype, **fcn(32))
    rows = X.astype(dtype)
    _, (labels, proba) = run_onnx(clf, rows)
    tol = {"rtol": 1e-10, "atol": 1e-12} if dtype == "float64" else {"rtol": 1e-4, "atol": 1e-5}
    np.testing.assert_allclose(proba, clf.predict_proba(rows), **tol)
