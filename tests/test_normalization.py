"""Batch normalization and dropout: layer gradients, a whole net, and the estimator."""

import pickle
import warnings

import joblib
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from skconv import ConvNetClassifier
from skconv._layers import Activation, AvgPool2D, Conv2D, Dense, Flatten, MaxPool2D
from skconv._losses import softmax_cross_entropy
from skconv._network import Network, Sequential
from skconv._normalization import (
    BatchNorm1d,
    BatchNorm2d,
    Dropout,
)
from gradcheck import numerical_gradient


@pytest.mark.parametrize("layer, x_shape", [(BatchNorm2d(), (4, 3, 3, 2)),
                                            (BatchNorm1d(), (5, 4))])
def test_batch_norm_backward_matches_finite_differences_for_input_scale_and_shift(
        layer, x_shape):
    rng = np.random.RandomState(0)
    layer.build(x_shape[1:])
    c = x_shape[1]
    scale, shift = rng.uniform(0.5, 1.5, c), rng.standard_normal(c)
    dscale, dshift = np.zeros(c), np.zeros(c)
    layer.bind({"scale": scale, "shift": shift}, {"scale": dscale, "shift": dshift})
    layer.init_params(rng)
    scale[...], shift[...] = rng.uniform(0.5, 1.5, c), rng.standard_normal(c)
    x = 3 * rng.standard_normal(x_shape) + 1
    g = rng.standard_normal(x_shape)

    def loss():
        return float(np.sum(layer.forward(x.copy(), training=True) * g))

    loss()
    dx = layer.backward(g.copy())
    assert_allclose(dx, numerical_gradient(loss, x), rtol=1e-6, atol=1e-8)
    assert_allclose(dscale, numerical_gradient(loss, scale), rtol=1e-6, atol=1e-8)
    assert_allclose(dshift, numerical_gradient(loss, shift), rtol=1e-6, atol=1e-8)


def test_batch_norm_normalises_in_training_and_uses_running_statistics_in_eval():
    layer = BatchNorm2d(momentum=0.5)
    layer.build((2, 3, 3))
    layer.bind({"scale": np.ones(2), "shift": np.zeros(2)},
               {"scale": np.zeros(2), "shift": np.zeros(2)})
    layer.init_params(None)
    x = np.random.RandomState(0).standard_normal((6, 2, 3, 3)) * 2 + 5
    y = layer.forward(x, training=True)
    assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    assert_allclose(y.var(axis=(0, 2, 3)), 1, rtol=1e-4)
    m = 6 * 3 * 3
    assert_allclose(layer.running_mean, 0.5 * x.mean(axis=(0, 2, 3)))
    assert_allclose(layer.running_var, 0.5 + 0.5 * x.var(axis=(0, 2, 3)) * m / (m - 1))
    expected = (x - layer.running_mean[:, None, None]) / np.sqrt(
        layer.running_var[:, None, None] + layer.eps)
    assert_allclose(layer.forward_fast(x), expected)
    assert_allclose(layer.forward(x, training=False), expected)


def test_dropout_zeroes_at_the_rate_scales_the_rest_and_is_identity_in_eval():
    layer = Dropout(0.25)
    layer.build((1000,))
    layer.set_rng(np.random.default_rng(0))
    x = np.ones((20, 1000), dtype=np.float32)
    y = layer.forward(x, training=True)
    assert abs((y == 0).mean() - 0.25) < 0.01
    assert_allclose(y[y != 0], 1 / 0.75)
    assert_array_equal(x, 1)  # the input (an activation's cached output) is not touched
    dx = layer.backward(np.ones_like(x))
    assert_array_equal(dx, y)
    assert layer.forward_fast(x) is x


def _bn_dropout_net():
    layers = [
        Conv2D(3, 3, padding="same", bias=False), BatchNorm2d(), Activation("tanh"), MaxPool2D(2),
        Conv2D(4, 2, padding="valid", bias=False), BatchNorm2d(), Activation("relu"), AvgPool2D(2),
        Flatten(),
        Dense(6, bias=False), BatchNorm1d(), Activation("logistic"), Dropout(0.5),
        Dense(5), Activation("tanh"), Dropout(0.3),
        Dense(3),
    ]
    net = Sequential(layers, (2, 8, 9), np.float64)
    net.init_params(np.random.RandomState(0))
    # move scale, shift and the biases away from their init
    net.params[net.n_weights:] = np.random.RandomState(1).uniform(
        0.5, 1.5, net.n_params - net.n_weights)
    return net


def test_whole_network_with_batch_norm_and_dropout_matches_finite_differences():
    net = _bn_dropout_net()
    rng = np.random.RandomState(2)
    x = rng.standard_normal((5, 2, 8, 9))
    y = np.array([0, 2, 1, 2, 0])
    sw = np.array([1.0, 0.5, 2.0, 1.5, 1.0])
    alpha = 0.3

    def loss():
        net.set_rng(np.random.default_rng(7))  # the same dropout masks every pass
        z = net.forward(x.copy(), training=True)
        w = net.params[:net.n_weights]
        return (softmax_cross_entropy(z, y, sw, sw.sum())[0]
                + 0.5 * alpha * np.dot(w, w) / sw.sum())

    net.set_rng(np.random.default_rng(7))
    net.loss_and_grad(x.copy(), y, sw, alpha)
    analytic = net.grads.copy()
    numeric = numerical_gradient(loss, net.params)
    assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-7)


def test_running_statistics_are_not_parameters_and_snapshots_restore_them():
    net = _bn_dropout_net()
    bns = [layer for layer in net.layers if isinstance(layer, (BatchNorm1d, BatchNorm2d))]
    n_bn = sum(2 * layer.input_shape[0] for layer in bns)
    # conv/dense weights only: the biases dropped before batch norm, and no scale/shift
    assert net.n_weights == sum(v.size for _, n, v in net.param_arrays() if n == "w")
    assert net.n_params - net.n_weights == n_bn + 5 + 3
    snap = net.snapshot()
    net.set_rng(np.random.default_rng(0))
    net.forward(np.random.RandomState(0).standard_normal((4, 2, 8, 9)), training=True)
    assert not np.array_equal(bns[0].running_mean, snap[1][0])
    net.restore(snap)
    assert_array_equal(bns[0].running_mean, snap[1][0])
    assert_array_equal(bns[-1].running_var, snap[1][-1])


# ---------------------------------------------------------------------- the estimator


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X / 16, y, test_size=0.25, random_state=0)


def _fit_quiet(est, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(*args, **kwargs)


def _bn_clf(**params):
    return ConvNetClassifier(**{**dict(conv_layers=(4, {"filters": 6, "batch_norm": False}),
                                       hidden_layer_sizes=(16,), batch_norm=True, dropout=0.2,
                                       max_iter=2, random_state=0), **params})


def _running_stats(clf):
    return [value.copy() for _, _, value in clf._network._state_arrays()]


@pytest.fixture(scope="module")
def bn_fitted(digits):
    X_train, _, y_train, _ = digits
    return _fit_quiet(_bn_clf(), X_train[:300], y_train[:300])


def test_batch_norm_architecture_drops_the_bias_before_it_and_honours_block_overrides(
        bn_fitted):
    layers = bn_fitted._network.layers
    kinds = [type(layer).__name__ for layer in layers]
    # max pooling goes before the activation (they commute)
    assert kinds == ["Conv2D", "BatchNorm2d", "MaxPool2D", "Activation",
                     "Conv2D", "MaxPool2D", "Activation", "Flatten",
                     "Dense", "BatchNorm1d", "Activation", "Dropout", "Dense"]
    assert [getattr(layer, "bias", None) for layer in layers if hasattr(layer, "bias")] == [
        False, True, False, True]
    assert [c.shape for c in bn_fitted.intercepts_] == [(6,), (10,)]
    assert len(bn_fitted.coefs_) == 4 and bn_fitted.n_layers_ == 5


@pytest.mark.slow
def test_batch_norm_trains_where_the_plain_net_is_unstable_on_digits(digits):
    # SGD at learning_rate_init=0.3: the plain net diverges to a constant
    # prediction (about 0.10 test accuracy); with batch norm it trains
    X_train, X_test, y_train, y_test = digits
    params = dict(conv_layers=(8, 16), hidden_layer_sizes=(32,), solver="sgd",
                  learning_rate_init=0.3, max_iter=5, random_state=0)
    plain = _fit_quiet(ConvNetClassifier(**params), X_train, y_train).score(X_test, y_test)
    bn = _fit_quiet(ConvNetClassifier(batch_norm=True, **params), X_train, y_train)
    assert bn.score(X_test, y_test) >= max(plain, 0.95)
    assert plain < 0.5


def test_predictions_with_batch_norm_are_identical_in_one_call_and_row_by_row(
        bn_fitted, digits):
    X_test = digits[1][:40]
    proba = bn_fitted.predict_proba(X_test)
    rows = np.vstack([bn_fitted.predict_proba(X_test[i:i + 1]) for i in range(len(X_test))])
    assert_array_equal(proba, rows)


def test_prediction_leaves_running_statistics_alone(bn_fitted, digits):
    before = _running_stats(bn_fitted)
    bn_fitted.predict(digits[1])
    for a, b in zip(before, _running_stats(bn_fitted)):
        assert_array_equal(a, b)


def test_dropout_masks_come_from_random_state(digits):
    X, y = digits[0][:200], digits[2][:200]
    a = _fit_quiet(_bn_clf(), X, y)
    b = _fit_quiet(_bn_clf(), X, y)
    c = _fit_quiet(_bn_clf(random_state=1), X, y)
    assert_array_equal(a._network.params, b._network.params)
    assert not np.array_equal(a._network.params, c._network.params)


def test_pickle_and_clone_keep_running_statistics(bn_fitted, digits):
    X_train, X_test, y_train, _ = digits
    loaded = pickle.loads(pickle.dumps(bn_fitted))
    for a, b in zip(_running_stats(bn_fitted), _running_stats(loaded)):
        assert_array_equal(a, b)
    assert_array_equal(loaded.predict_proba(X_test), bn_fitted.predict_proba(X_test))
    cloned = _fit_quiet(clone(bn_fitted), X_train[:300], y_train[:300])
    for a, b in zip(_running_stats(bn_fitted), _running_stats(cloned)):
        assert_array_equal(a, b)


def test_warm_start_and_partial_fit_continue_updating_running_statistics(digits):
    X, y = digits[0][:300], digits[2][:300]
    clf = _fit_quiet(_bn_clf(warm_start=True, max_iter=1), X, y)
    net, before = clf._network, _running_stats(clf)
    _fit_quiet(clf, X, y)
    assert clf._network is net
    assert not np.array_equal(before[0], _running_stats(clf)[0])
    before = _running_stats(clf)
    clf.partial_fit(X, y)
    assert not np.array_equal(before[0], _running_stats(clf)[0])


def test_mmap_loaded_model_predicts_then_trains_on_with_its_running_statistics(
        bn_fitted, digits, tmp_path):
    X_train, X_test, y_train, _ = digits
    path = tmp_path / "model.joblib"
    joblib.dump(bn_fitted, path)
    loaded = joblib.load(path, mmap_mode="r")
    assert_array_equal(loaded.predict_proba(X_test), bn_fitted.predict_proba(X_test))
    before = _running_stats(loaded)
    loaded.partial_fit(X_train[:100], y_train[:100])
    after = _running_stats(loaded)
    assert not np.array_equal(before[0], after[0])
    # the file on disk is unchanged
    for a, b in zip(before, _running_stats(joblib.load(path))):
        assert_array_equal(a, b)


def test_early_stopping_with_batch_norm_restores_the_best_epochs_running_statistics(
        digits, monkeypatch):
    X, y = digits[0][:300], digits[2][:300]
    snapshots = []
    original = Network.snapshot

    def recording(self):
        snap = original(self)
        snapshots.append(snap)
        return snap

    monkeypatch.setattr(Network, "snapshot", recording)
    clf = _fit_quiet(_bn_clf(early_stopping=True, max_iter=6, learning_rate_init=0.2,
                             validation_fraction=0.2), X, y)
    best = int(np.argmax(clf.validation_scores_))
    assert best < len(clf.validation_scores_) - 1, "a later epoch's state must be undone"
    # snapshots: before training, then per epoch its start, and the best epochs' ends
    best_state = [s for s in snapshots if np.array_equal(s[0], clf._network.params)]
    assert best_state, "the restored weights are one of the snapshots"
    for a, b in zip(best_state[0][1], _running_stats(clf)):
        assert_array_equal(a, b)
    assert clf.best_validation_score_ == clf.validation_scores_[best]


@pytest.mark.parametrize("params, match", [
    (dict(dropout=1.0), "dropout"),
    (dict(batch_norm="yes"), "batch_norm"),
    (dict(conv_layers=({"filters": 2, "batch_norm": 1},)), "batch_norm=1 in conv block 1"),
])
def test_invalid_batch_norm_or_dropout_raises_naming_the_parameter(digits, params, match):
    with pytest.raises(ValueError, match=match):
        ConvNetClassifier(max_iter=1, **params).fit(digits[0][:20], digits[2][:20])


def _batch_rows(monkeypatch):
    """The rows of each training batch of the fits that follow."""
    seen, loss_and_grad = [], Network.loss_and_grad

    def spy(self, x, *args, **kwargs):
        seen.append(len(x))
        return loss_and_grad(self, x, *args, **kwargs)
    monkeypatch.setattr(Network, "loss_and_grad", spy)
    return seen


@pytest.mark.parametrize("batch_norm, block, rows", [
    (True, False, [4, 5, 4, 5]),  # dense1.bn: one value per feature in a row
    (False, True, [4, 4, 1, 4, 4, 1]),  # conv maps: 3 x 3 values per channel in a row
    (False, False, [4, 4, 1, 4, 4, 1]),
])
def test_a_last_batch_of_one_row_joins_the_one_before_where_a_batch_norm_sees_one_value(
        digits, monkeypatch, batch_norm, block, rows):
    X, y = digits[0][:9], digits[2][:9]
    seen = _batch_rows(monkeypatch)
    _fit_quiet(ConvNetClassifier(conv_layers=({"filters": 2, "batch_norm": block},),
                                 hidden_layer_sizes=(4,), batch_norm=batch_norm, batch_size=4,
                                 max_iter=2, random_state=0), X, y)
    assert seen == rows


def test_a_batch_of_one_row_no_longer_shrinks_the_running_variance(digits):
    # over one row the variance is 0: running_var moved 10% towards 0 an epoch
    X, y = digits[0][:201], digits[2][:201]
    stats = [_running_stats(_fit_quiet(_bn_clf(dropout=0.0, max_iter=3), X[:n], y[:n]))
             for n in (200, 201)]
    dense_var = [s[-1] for s in stats]  # dense1.bn's running_var
    assert_allclose(dense_var[1], dense_var[0], rtol=0.05)


@pytest.mark.parametrize("fit, match", [
    (lambda X, y: _bn_clf(batch_size=1).fit(X[:4], y[:4]), "batch_size=1 gives batches of one"),
    (lambda X, y: _bn_clf().partial_fit(X[:1], y[:1], classes=np.arange(10)),
     "1 sample to train on gives batches of one"),
])
def test_batches_of_one_row_through_a_batch_norm_of_one_value_are_refused(digits, fit, match):
    X, y = digits[0], digits[2]
    with pytest.raises(ValueError, match=match + ".*'dense1.bn'.*batch_norm=False"):
        fit(X, y)
