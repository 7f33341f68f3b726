"""ConvNetRegressor behaviour: its loss, shapes of y, R², early stopping,
partial_fit, sample weights, and the scikit-learn tools it must work in."""

import pickle
import warnings

import joblib
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.compose import TransformedTargetRegressor
from sklearn.ensemble import BaggingRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import r2_score
from sklearn.model_selection import cross_val_score
from sklearn.neural_network import MLPRegressor
from sklearn.neural_network._base import poisson_loss, squared_loss
from sklearn.preprocessing import StandardScaler
from sklearn.utils import get_tags

from gradcheck import numerical_gradient
from skconv import ConvNetRegressor
from skconv._losses import half_poisson_deviance, squared_error

# a small fast configuration for behaviour tests (not accuracy)
SMALL = dict(conv_layers=(4,), hidden_layer_sizes=(16,), max_iter=3, random_state=0)


def _fit_quiet(est, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(*args, **kwargs)


@pytest.fixture(scope="module")
def bright():
    """8x8 images whose target is the mean brightness of their brightest 2x2 patch:
    a local feature, as convolution and max pooling find it."""
    rng = np.random.RandomState(0)
    X = rng.uniform(size=(300, 8, 8)) * rng.uniform(size=(300, 1, 1))
    patches = X.reshape(300, 4, 2, 4, 2).mean(axis=(2, 4)).reshape(300, -1)
    return X.reshape(300, 64), patches.max(axis=1) * 4 - 1


def test_squared_error_is_mlp_regressors_loss_and_its_gradient_the_derivative():
    rng = np.random.RandomState(0)
    z, y = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    sw = rng.uniform(size=6)
    loss, _ = squared_error(z.copy(), y, np.ones(6), 6.0)
    # MLPRegressor's loss: half the mean over samples and outputs
    assert_allclose(loss, squared_loss(y, z))
    weighted, dz = squared_error(z.copy(), y, sw, sw.sum())
    assert_allclose(weighted, 0.5 * np.average(((z - y) ** 2).mean(1), weights=sw))
    expected = numerical_gradient(lambda: squared_error(z.copy(), y, sw, sw.sum())[0], z)
    assert_allclose(dz, expected, rtol=1e-6, atol=1e-9)


def test_learns_a_local_image_feature_with_r2_above_0_9(bright):
    X, y = bright
    reg = _fit_quiet(ConvNetRegressor(conv_layers=(8,), hidden_layer_sizes=(32,),
                                      max_iter=100, learning_rate_init=0.01, random_state=0),
                     X[:200], y[:200])
    assert reg.score(X[200:], y[200:]) > 0.9
    assert reg.out_activation_ == "identity" and reg.n_outputs_ == 1


@pytest.mark.parametrize("shape", [(), (1,), (3,)])
def test_predict_returns_the_shape_y_had_in_fit(bright, shape):
    X, y = bright
    Y = y if shape == () else np.tile(y[:, None], shape) * np.arange(1, shape[0] + 1)
    reg = _fit_quiet(ConvNetRegressor(**SMALL), X, Y)
    assert reg.predict(X[:5]).shape == (5,) + shape
    assert reg.predict(X[:5]).dtype == np.float64
    assert reg.n_outputs_ == (shape or (1,))[0]


def test_score_is_r2_of_predict(bright):
    X, y = bright
    reg = _fit_quiet(ConvNetRegressor(**SMALL), X, y)
    assert reg.score(X, y) == pytest.approx(r2_score(y, reg.predict(X)))


def test_early_stopping_scores_the_validation_r2_and_restores_the_best(bright, monkeypatch):
    X, y = bright
    seen = []
    original = ConvNetRegressor._validation_score

    def spy(self, X_val, y_val, sw_val):
        score = original(self, X_val, y_val, sw_val)
        seen.append((X_val, y_val))
        return score

    monkeypatch.setattr(ConvNetRegressor, "_validation_score", spy)
    reg = _fit_quiet(ConvNetRegressor(**{**SMALL, "max_iter": 15}, early_stopping=True,
                                      learning_rate_init=0.01), X, y)
    X_val, y_val = seen[0]
    assert len(X_val) == 30 and len(reg.validation_scores_) == reg.n_iter_ == len(seen)
    assert reg.best_validation_score_ == max(reg.validation_scores_)
    # the restored weights are the ones that scored best on the validation rows
    assert reg.score(X_val, y_val.ravel()) == pytest.approx(reg.best_validation_score_,
                                                            rel=1e-5)


def test_partial_fit_takes_no_classes_and_keeps_the_number_of_outputs(bright):
    X, y = bright
    reg = ConvNetRegressor(**SMALL)
    reg.partial_fit(X[:100], y[:100])
    reg.partial_fit(X[100:], y[100:])
    assert reg.n_iter_ == 2 and reg.t_ == 300 and len(reg.loss_curve_) == 2
    with pytest.raises(ValueError, match=r"2 output\(s\) .* n_outputs_=1"):
        reg.partial_fit(X, np.c_[y, y])
    with pytest.raises(ValueError, match="early_stopping"):
        ConvNetRegressor(early_stopping=True).partial_fit(X, y)


def test_zero_sample_weight_equals_leaving_the_rows_out_in_full_batch_float64(bright):
    X, y = bright
    X, y = X[:60], y[:60]
    params = dict(SMALL, dtype="float64", shuffle=False)
    keep = np.arange(60) % 3 != 0
    weighted = _fit_quiet(ConvNetRegressor(**params), X, y, sample_weight=keep * 1.0)
    dropped = _fit_quiet(ConvNetRegressor(**params), X[keep], y[keep])
    assert_allclose(weighted.predict(X), dropped.predict(X), rtol=1e-10)
    ones = _fit_quiet(ConvNetRegressor(**SMALL), X, y, sample_weight=np.ones(60))
    assert_array_equal(ones.predict(X), _fit_quiet(ConvNetRegressor(**SMALL), X, y).predict(X))


def test_integer_targets_train_as_floats(bright):
    X, y = bright
    y_int = np.round(y * 3).astype(int)
    a = _fit_quiet(ConvNetRegressor(**SMALL), X, y_int)
    b = _fit_quiet(ConvNetRegressor(**SMALL), X, y_int.astype(float))
    assert_array_equal(a.predict(X), b.predict(X))


def test_works_inside_transformed_target_bagging_and_cross_val_score(bright):
    X, y = bright
    wrapped = TransformedTargetRegressor(ConvNetRegressor(**SMALL), transformer=StandardScaler())
    assert _fit_quiet(wrapped, X, y * 1000 + 5).predict(X[:4]).shape == (4,)
    bag = BaggingRegressor(ConvNetRegressor(**SMALL), n_estimators=2, random_state=0)
    assert _fit_quiet(bag, X, y).predict(X[:4]).shape == (4,)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        scores = cross_val_score(ConvNetRegressor(**SMALL), X, y, cv=3)
    assert scores.shape == (3,) and np.isfinite(scores).all()


def test_pickle_and_joblib_round_trips_predict_identically(bright, tmp_path):
    X, y = bright
    reg = _fit_quiet(ConvNetRegressor(**SMALL), X, np.c_[y, -y])
    expected = reg.predict(X)
    assert_array_equal(pickle.loads(pickle.dumps(reg)).predict(X), expected)
    joblib.dump(reg, tmp_path / "reg.joblib")
    mapped = joblib.load(tmp_path / "reg.joblib", mmap_mode="r")
    assert_array_equal(mapped.predict(X), expected)
    mapped.partial_fit(X, np.c_[y, -y])
    assert mapped.n_iter_ == 4


def test_sparse_x_gives_the_dense_fit(bright):
    sp = pytest.importorskip("scipy.sparse")
    X, y = bright
    X = np.where(X > 0.3, X, 0.0)
    dense = _fit_quiet(ConvNetRegressor(**SMALL), X, y)
    sparse = _fit_quiet(ConvNetRegressor(**SMALL), sp.csr_matrix(X), y)
    assert_array_equal(sparse.predict(sp.csr_matrix(X)), dense.predict(X))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_in_y_raises(bright, bad):
    X, y = bright
    y = y.copy()
    y[3] = bad
    with pytest.raises(ValueError, match="NaN|infinity"):
        ConvNetRegressor(**SMALL).fit(X, y)


def test_targets_past_the_models_float_range_are_refused_naming_y(bright):
    # finite in float64, infinite once cast to float32: the first epoch's loss
    # was not finite and the error blamed learning_rate_init
    X, y = bright
    y = y.copy()
    y[[3, 7]] = [1e39, -2e39]
    for fit in (ConvNetRegressor(**SMALL).fit, ConvNetRegressor(**SMALL).partial_fit):
        with pytest.raises(ValueError, match=r"y holds values beyond float32's range \(2 "
                                             r"samples, \|y\| up to 2e\+39"):
            fit(X, y)
    assert np.isfinite(_fit_quiet(ConvNetRegressor(**SMALL, dtype="float64"), X, y)
                       .predict(X)).all()


def test_sparse_targets_fit_as_their_dense_matrix(bright):
    # scikit-learn's validation passes a sparse y through: the fit failed with
    # scipy's "sparse array length is ambiguous"
    sp = pytest.importorskip("scipy.sparse")
    X, y = bright
    Y = np.c_[y, np.where(y > np.median(y), y, 0.0)]
    dense = _fit_quiet(ConvNetRegressor(**SMALL), X, Y)
    sparse = _fit_quiet(ConvNetRegressor(**SMALL), X, sp.csr_matrix(Y))
    assert_array_equal(sparse.predict(X), dense.predict(X))


def test_every_mlp_regressor_parameter_exists_or_is_refused_with_advice():
    ours = set(ConvNetRegressor().get_params())
    assert set(MLPRegressor().get_params()) <= ours
    assert ConvNetRegressor().loss == MLPRegressor().loss == "squared_error"
    with pytest.raises(TypeError, match=r"ConvNetRegressor\.__init__\(\) got an unexpected"):
        ConvNetRegressor(hiden_layer_sizes=(3,))
    with pytest.raises(ValueError, match="max_iter"):
        ConvNetRegressor(max_fun=15000).fit(np.zeros((4, 4)), np.zeros(4))


# ---------------------------------------------------------------------------- Poisson


@pytest.fixture(scope="module")
def counts():
    """Counts whose log-mean is the brightness of a 3x3 patch: a log link's task."""
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(900, 8, 8)) * rng.uniform(size=(900, 1, 1))
    mean = np.exp(1.0 + 3 * X[:, 2:5, 2:5].mean(axis=(1, 2)))
    return X, rng.poisson(mean).astype(float), mean


def test_half_poisson_deviance_is_mlp_regressors_loss_and_its_gradient_the_derivative():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(6, 3))
    y = rng.poisson(3, size=(6, 3)).astype(float)
    sw = rng.uniform(size=6)
    loss, _ = half_poisson_deviance(z.copy(), y, np.ones(6), 6.0)
    # MLPRegressor's: averaged over samples, summed over outputs, of exp(z)
    assert_allclose(loss, poisson_loss(y, np.exp(z)))
    weighted, dz = half_poisson_deviance(z.copy(), y, sw, sw.sum())
    assert_allclose(weighted, poisson_loss(y, np.exp(z), sample_weight=sw))
    expected = numerical_gradient(lambda: half_poisson_deviance(z.copy(), y, sw, sw.sum())[0], z)
    assert_allclose(dz, expected, rtol=1e-6, atol=1e-9)
    # zero where the prediction is the target
    assert abs(half_poisson_deviance(np.log(y + 1), y + 1, sw, sw.sum())[0]) < 1e-12


@pytest.mark.parametrize("scale", [1e6, 1e9])
def test_half_poisson_deviance_of_float32_large_counts_is_the_float64_deviance(scale):
    # y z and y log y, each about y log y, cancel to a deviance of about 1/2 a
    # row: summed in float32 their rounding outweighed it (32 for 0.44 at 1e9)
    rng = np.random.default_rng(1)
    mean = scale * rng.uniform(0.5, 2, size=(256, 2))
    y = np.round(mean + np.sqrt(mean) * rng.standard_normal(mean.shape)).astype(np.float32)
    z = np.log(mean).astype(np.float32)
    sw = rng.uniform(size=256)
    loss, dz = half_poisson_deviance(z.copy(), y, sw, sw.sum())
    y64, mu = y.astype(np.float64), np.exp(z.astype(np.float64))
    assert_allclose(loss, poisson_loss(y64, mu, sample_weight=sw), rtol=1e-6)
    assert dz.dtype == np.float32
    assert_allclose(dz, (mu - y64) * (sw / sw.sum())[:, None], rtol=1e-3, atol=1e-3)
    # exp overflowing the model's dtype still makes the loss inf (the batch is not applied)
    with np.errstate(over="ignore"):
        overflow = half_poisson_deviance(np.full((1, 1), 89, np.float32),
                                         np.ones((1, 1), np.float32), np.ones(1), 1.0)
    assert overflow[0] == np.inf


def test_poisson_fits_counts_with_an_exponential_output(counts):
    from sklearn.metrics import mean_poisson_deviance
    X, y, mean = counts
    reg = _fit_quiet(ConvNetRegressor(loss="poisson", conv_layers=(8,),
                                      hidden_layer_sizes=(16,), max_iter=30, random_state=0),
                     X[:600], y[:600])
    assert reg.out_activation_ == "exp"
    pred = reg.predict(X[600:])
    assert pred.shape == (300,) and (pred > 0).all()
    # held out: most of the way from a constant's deviance (2.45) to the true
    # means' (0.93)
    constant = mean_poisson_deviance(y[600:], np.full(300, y[:600].mean()))
    assert mean_poisson_deviance(y[600:], pred) < 0.75 * constant
    assert mean_poisson_deviance(y[600:], mean[600:]) < 0.4 * constant
    # the loss reported is the training objective: half the deviance plus the L2 term
    half_deviance = 0.5 * mean_poisson_deviance(y[:600], reg.predict(X[:600]))
    l2 = 0.5 * reg.alpha * sum((w ** 2).sum() for w in reg.coefs_) / 600
    assert reg.loss_curve_[-1] < reg.loss_curve_[0]
    assert_allclose(reg.loss_curve_[-1], half_deviance + l2, rtol=0.2)


def test_poisson_starts_from_the_mean_of_each_target(counts):
    # the output biases start at log(mean): the untrained net predicts about the
    # mean, not exp(0) = 1 (counts near 30 would need many epochs to climb there)
    X, y, _ = counts
    y2 = np.column_stack([y, 100 * y, np.zeros_like(y)])
    y2[0, 2] = 5  # a third target almost always 0
    reg = _fit_quiet(ConvNetRegressor(loss="poisson", learning_rate_init=1e-9, max_iter=1,
                                      **{k: v for k, v in SMALL.items() if k != "max_iter"}),
                     X, y2)
    bias = reg.intercepts_[-1]
    assert_allclose(bias, np.log(y2.mean(axis=0)), rtol=1e-5)
    ratio = np.median(reg.predict(X), axis=0) / y2.mean(axis=0)
    assert ((ratio > 0.5) & (ratio < 2)).all(), ratio
    weights = np.r_[np.zeros(450), np.ones(450)]
    reg = _fit_quiet(ConvNetRegressor(loss="poisson", learning_rate_init=1e-9, max_iter=1,
                                      **{k: v for k, v in SMALL.items() if k != "max_iter"}),
                     X, y, sample_weight=weights)
    assert_allclose(reg.intercepts_[-1], [np.log(y[450:].mean())], rtol=1e-5)
    # early stopping: from the training rows only, not those that score the epochs
    seen = []
    original = ConvNetRegressor._init_output

    def spy(self, y, sample_weight, incremental):
        seen.append(y.copy())
        return original(self, y, sample_weight, incremental)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ConvNetRegressor, "_init_output", spy)
        reg = _fit_quiet(ConvNetRegressor(loss="poisson", max_iter=1, early_stopping=True,
                                          learning_rate_init=1e-9,
                                          validation_fraction=0.2,
                                          **{k: v for k, v in SMALL.items() if k != "max_iter"}),
                         X, y)
    (trained,) = seen
    assert len(trained) == 720
    assert_allclose(reg.intercepts_[-1], np.log(trained.mean(axis=0)), rtol=1e-5)


def test_poisson_untrained_model_predicts_the_mean_on_every_row():
    # with the biases at log(mean), the output weights' random start still
    # spread the log predictions by about 1 (0.17 to 0.67 times a mean of 50):
    # a deviance 60 times a constant's to start from, and the loss-curve check
    # then called the steady descent from it a too large learning_rate_init
    rng = np.random.RandomState(0)
    X = rng.rand(200, 6, 6).astype(np.float32)
    y = rng.poisson(50, size=200).astype(float)
    small = dict(loss="poisson", conv_layers=(4,), hidden_layer_sizes=(8,))
    reg = _fit_quiet(ConvNetRegressor(max_iter=1, learning_rate_init=1e-12, random_state=0,
                                      **small), X, y)
    assert_allclose(reg.predict(X), y.mean(), rtol=1e-5)
    for seed in (0, 1, 3):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ConvNetRegressor(max_iter=8, random_state=seed, **small).fit(X, y)
        assert not [w for w in caught if "learning_rate_init" in str(w.message)]


def test_poisson_starts_a_target_that_is_0_in_every_row_near_0_not_at_1():
    # its mean has no log: at the random bias's exp(about 0) = 1 it took the
    # loss over 10 times a constant prediction's, and the loss-curve check
    # blamed learning_rate_init for the slow descent from there
    rng = np.random.RandomState(0)
    X = rng.rand(300, 6, 6).astype(np.float32)
    y = np.c_[1e-6 * np.exp(X.reshape(300, -1)[:, :5].sum(axis=1) - 2.5), np.zeros(300)]
    reg = ConvNetRegressor(loss="poisson", conv_layers=(4,), hidden_layer_sizes=(8,),
                           max_iter=5, random_state=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reg.fit(X, y)
    assert not [w for w in caught if "learning_rate_init" in str(w.message)]
    # as if one row held y's smallest positive value
    assert_allclose(reg.intercepts_[-1][1], np.log(y[:, 0].min() / 300), rtol=0.1)
    assert reg.predict(X)[:, 1].max() < 1e-6
    # or a count of 1 where that is less: beside counts of a million, not 3,000
    y[:, 0] = np.round(1e6 * np.exp(X.reshape(300, -1)[:, 0]))
    reg = _fit_quiet(ConvNetRegressor(loss="poisson", conv_layers=(4,), hidden_layer_sizes=(8,),
                                      max_iter=1, learning_rate_init=1e-12, random_state=2),
                     X, y)
    assert_allclose(reg.predict(X)[:, 1], 1 / 300, rtol=1e-5)


def test_poisson_refuses_negative_or_all_zero_targets_in_the_users_terms(counts):
    X, y, _ = counts
    bad = y[:20].copy()
    bad[7] = -1
    with pytest.raises(ValueError,
                       match=r"targets >= 0 .* 1 row\(s\), the first at row 7: -1\.0\. "):
        ConvNetRegressor(loss="poisson", **SMALL).fit(X[:20], bad)
    with pytest.raises(ValueError, match="not all 0"):
        ConvNetRegressor(loss="poisson", **SMALL).fit(X[:20], np.zeros(20))
    # a later batch of zeros is a valid batch of counts
    reg = ConvNetRegressor(loss="poisson", **SMALL).partial_fit(X[:20], y[:20])
    reg.partial_fit(X[20:40], np.zeros(20))
    assert np.isfinite(reg.predict(X[:5])).all()
    # and so is a first one: a stream of rare counts may well start with one
    # (its mean has no log: the biases keep their random start)
    reg = ConvNetRegressor(loss="poisson", **SMALL).partial_fit(X[20:40], np.zeros(20))
    reg.partial_fit(X[:20], y[:20])
    assert np.isfinite(reg.predict(X[:5])).all()
    with pytest.raises(ValueError, match="targets >= 0"):
        reg.partial_fit(X[:20], bad)


def test_a_continuing_fit_refuses_another_loss(counts):
    X, y, _ = counts
    reg = _fit_quiet(ConvNetRegressor(loss="poisson", warm_start=True, **SMALL), X[:50], y[:50])
    reg.set_params(loss="squared_error")
    with pytest.raises(ValueError, match=r"trained with loss='poisson' .* now say "
                                         r"loss='squared_error'"):
        reg.fit(X[:50], y[:50])
    with pytest.raises(ValueError, match="trained with loss='poisson'"):
        reg.partial_fit(X[:50], y[:50])
    assert reg.set_params(loss="poisson").partial_fit(X[:50], y[:50]).out_activation_ == "exp"
    reg.set_params(warm_start=False, loss="squared_error")
    assert _fit_quiet(reg, X[:50], y[:50]).out_activation_ == "identity"


def test_poisson_round_trips_and_predicts_row_by_row_the_same_bits(counts, tmp_path):
    X, y, _ = counts
    reg = _fit_quiet(ConvNetRegressor(loss="poisson", **SMALL), X[:100], y[:100])
    pred = reg.predict(X[:40])
    assert_array_equal(np.concatenate([reg.predict(X[i:i + 1]) for i in range(40)]), pred)
    assert_array_equal(pickle.loads(pickle.dumps(reg)).predict(X[:40]), pred)


def test_targets_whose_squared_errors_overflow_are_refused_naming_y(bright):
    X, y = bright
    with pytest.raises(ValueError, match=r"y holds values up to 2\.\d+e\+25 in magnitude, whose "
                                         r"squared errors pass float32's range"):
        ConvNetRegressor(**SMALL).fit(X, y * 1e25)
    # float64 computes them
    reg = _fit_quiet(ConvNetRegressor(**SMALL, dtype="float64"), X, y * 1e25)
    assert np.isfinite(reg.predict(X[:3])).all()


@pytest.mark.parametrize("solver, lr, seed, early_stopping", [
    ("sgd", 5.0, 0, False),    # fell back to an epoch whose log predictions pass 709.78
    ("adam", 2.0, 1, True),    # scored exp(log predictions) = inf: r2_score raised
])
def test_poisson_divergence_judges_the_predictions_not_the_log_predictions(
        solver, lr, seed, early_stopping):
    # a diverging epoch can end with finite outputs whose exp overflows: the
    # fallback weights and the validation score must see the predictions
    rng = np.random.RandomState(0)
    X = rng.rand(120, 6, 6).astype(np.float32)
    y = rng.poisson(3 * np.exp(X.reshape(120, -1)[:, :5].sum(axis=1) - 2.5)).astype(float)
    reg = ConvNetRegressor(loss="poisson", conv_layers=(4,), hidden_layer_sizes=(8,),
                           max_iter=6, solver=solver, learning_rate_init=lr,
                           random_state=seed, early_stopping=early_stopping)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            reg.fit(X, y)
        except ValueError as exc:  # no epoch with finite predictions: left unfitted
            assert "Training diverged" in str(exc)
            assert not hasattr(reg, "out_activation_")
            return
    assert any("Training diverged" in str(w.message) for w in caught)
    assert np.isfinite(reg.predict(X)).all()


@pytest.mark.parametrize("solver, lr, seed, max_iter", [
    ("adam", 2.0, 1, 2),     # the second epoch's last step: back to the first epoch
    ("sgd", 20.0, 2, 3),     # the third epoch's last step: back to the second
])
def test_poisson_fit_never_ends_on_weights_that_predict_inf(solver, lr, seed, max_iter):
    # the last update of the last epoch has no later batch to see its loss: the
    # log predictions it leaves can pass exp's overflow while staying finite
    rng = np.random.RandomState(0)
    X = rng.rand(120, 6, 6).astype(np.float32)
    y = rng.poisson(3 * np.exp(X.reshape(120, -1)[:, :5].sum(axis=1) - 2.5)).astype(float)
    reg = ConvNetRegressor(loss="poisson", conv_layers=(4,), hidden_layer_sizes=(8,),
                           max_iter=max_iter, solver=solver, learning_rate_init=lr,
                           random_state=seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            reg.fit(X, y)
        except ValueError as exc:
            assert f"Training diverged in epoch {max_iter}" in str(exc)
            assert not hasattr(reg, "out_activation_")
            return
    assert any(f"Training diverged in epoch {max_iter}" in str(w.message) for w in caught)
    assert reg.n_iter_ == len(reg.loss_curve_) == max_iter - 1
    assert np.isfinite(reg.predict(X)).all()


def test_poisson_tags_y_as_positive_only_as_poisson_regressor_does():
    # scikit-learn's checks and meta-tools give such an estimator y >= 0 only
    assert get_tags(ConvNetRegressor(loss="poisson")).target_tags.positive_only
    assert not get_tags(ConvNetRegressor()).target_tags.positive_only
