"""ConvNetClassifier behaviour: accuracy, API, persistence, input handling, errors."""

import pickle
import re
import warnings

import joblib
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.datasets import load_digits, load_iris, make_multilabel_classification
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.neural_network._base import binary_log_loss
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.class_weight import compute_class_weight, compute_sample_weight
from sklearn.utils.estimator_checks import check_fit2d_1sample
from threadpoolctl import threadpool_limits

import skconv
from gradcheck import numerical_gradient
from skconv import ConvNetClassifier
from skconv import _base as skconv_base
from skconv import _network as skconv_network
from skconv._losses import sigmoid_binary_cross_entropy
from skconv._network import Network
from skconv.exceptions import InconsistentVersionWarning

# a small fast configuration for behaviour tests (not accuracy)
SMALL = dict(conv_layers=(4, 8), hidden_layer_sizes=(16,), max_iter=3, random_state=0)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


@pytest.fixture(scope="module")
def small_digits(digits):
    X, y = digits
    return X[:300], y[:300]


@pytest.fixture(scope="module")
def fitted(small_digits):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return ConvNetClassifier(**SMALL).fit(*small_digits)


def _fit_quiet(est, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(*args, **kwargs)


@pytest.mark.slow
def test_default_estimator_reaches_98_percent_on_digits(digits):
    X, y = digits
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
    clf = _fit_quiet(ConvNetClassifier(random_state=0), X_train, y_train)
    assert clf.score(X_test, y_test) >= 0.98


def test_lenet5_is_expressible_and_has_the_lenet_weight_shapes():
    X = np.random.RandomState(0).uniform(size=(20, 28 * 28))
    y = np.arange(20) % 10
    clf = ConvNetClassifier(conv_layers=((6, 5), (16, 5)), padding="valid",
                            hidden_layer_sizes=(120, 84), max_iter=1)
    _fit_quiet(clf, X, y)
    assert [c.shape for c in clf.coefs_] == [
        (6, 1, 5, 5), (16, 6, 5, 5), (16 * 4 * 4, 120), (120, 84), (84, 10)]
    assert [b.shape for b in clf.intercepts_] == [(6,), (16,), (120,), (84,), (10,)]
    assert clf.input_shape_ == (28, 28, 1)
    assert clf.n_layers_ == 6 and clf.n_outputs_ == 10


def test_fitted_attributes_follow_mlpclassifier(fitted):
    assert fitted.n_iter_ == 3 and len(fitted.loss_curve_) == 3
    assert fitted.t_ == 3 * 300
    assert fitted.loss_ == fitted.loss_curve_[-1]
    assert fitted.best_loss_ == min(fitted.loss_curve_)
    assert fitted.validation_scores_ is None and fitted.best_validation_score_ is None
    assert fitted.n_features_in_ == 64 and fitted.input_shape_ == (8, 8, 1)
    assert_array_equal(fitted.classes_, np.arange(10))
    assert fitted.out_activation_ == "softmax"
    assert [c.shape for c in fitted.coefs_] == [(4, 1, 3, 3), (8, 4, 3, 3), (32, 16), (16, 10)]
    assert all(c.dtype == np.float32 for c in fitted.coefs_ + fitted.intercepts_)


def test_float64_dtype_trains_in_float64(small_digits):
    clf = _fit_quiet(ConvNetClassifier(**{**SMALL, "max_iter": 1}, dtype="float64"),
                     *small_digits)
    assert all(c.dtype == np.float64 for c in clf.coefs_)


def test_a_dtype_set_after_fit_applies_from_the_next_fit(small_digits):
    # predict feeds the fitted network its own dtype (the kernels take one
    # dtype for images and weights), not the one the parameter says now
    X, y = small_digits
    clf = _fit_quiet(ConvNetClassifier(**{**SMALL, "max_iter": 1}), X, y)
    proba, embedding = clf.predict_proba(X), clf.transform(X)
    clf.set_params(dtype="float64")
    assert_array_equal(clf.predict_proba(X), proba)
    assert_array_equal(clf.predict_proba(X[:1]), proba[:1])
    assert_array_equal(clf.transform(X), embedding)
    assert clf.transform(X).dtype == np.float32
    assert clf.fit(X, y).coefs_[0].dtype == np.float64


def test_pipeline_and_grid_search_with_two_jobs_pick_a_model(small_digits):
    pipe = Pipeline([("scale", FunctionTransformer(lambda X: X * 2.0 - 1.0)),
                     ("net", ConvNetClassifier(hidden_layer_sizes=(16,), max_iter=4,
                                               batch_size=16, random_state=0))])
    grid = {"net__conv_layers": [(2,), (6,)], "net__learning_rate_init": [1e-4, 1e-2]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search = GridSearchCV(pipe, grid, cv=2, n_jobs=2).fit(*small_digits)
    assert search.best_params_["net__learning_rate_init"] == 1e-2
    assert search.best_score_ > 0.5
    assert search.predict(small_digits[0][:5]).shape == (5,)


def test_clone_pickle_and_joblib_round_trips_predict_identically(fitted, small_digits, tmp_path):
    X, y = small_digits
    expected = fitted.predict_proba(X)
    assert_array_equal(pickle.loads(pickle.dumps(fitted)).predict_proba(X), expected)
    path = tmp_path / "model.joblib"
    joblib.dump(fitted, path)
    assert_array_equal(joblib.load(path).predict_proba(X), expected)
    mapped = joblib.load(path, mmap_mode="r")
    assert not mapped.coefs_[0].flags.writeable
    assert_array_equal(mapped.predict_proba(X), expected)
    # a read-only model still trains on: its arrays are copied first
    mapped.partial_fit(X, y)
    assert mapped.coefs_[0].flags.writeable and mapped.n_iter_ == 4
    refit = _fit_quiet(clone(fitted), X, y)
    assert_array_equal(refit.predict_proba(X), expected)


def test_pickle_stamps_version_and_loading_under_another_warns(fitted):
    state = fitted.__getstate__()
    assert state["_skconv_version"] == skconv.__version__
    state["_skconv_version"] = "0.0.1"
    with pytest.warns(InconsistentVersionWarning, match="0.0.1"):
        ConvNetClassifier.__new__(ConvNetClassifier).__setstate__(state)
    with warnings.catch_warnings():
        warnings.simplefilter("error", InconsistentVersionWarning)
        pickle.loads(pickle.dumps(fitted))


def test_string_labels_round_trip(small_digits):
    X, y = small_digits
    # names that sort like the digits, so both models map labels to the same outputs
    names = np.array([f"digit {i}" for i in range(10)], dtype=object)
    by_name = _fit_quiet(ConvNetClassifier(**SMALL), X, names[y])
    by_int = _fit_quiet(ConvNetClassifier(**SMALL), X, y)
    assert_array_equal(by_name.classes_, names)
    pred = by_name.predict(X)
    assert isinstance(pred[0], str)
    assert_array_equal(pred, names[by_int.predict(X)])
    assert by_name.score(X, names[y]) == by_int.score(X, y)


def test_2d_3d_and_4d_inputs_of_the_same_images_give_identical_predictions(small_digits):
    X, y = small_digits
    X3, X4 = X.reshape(-1, 8, 8), X.reshape(-1, 8, 8, 1)
    models = [_fit_quiet(ConvNetClassifier(**SMALL), Xi, y) for Xi in (X, X3, X4)]
    for model in models:
        assert model.input_shape_ == (8, 8, 1) and model.n_features_in_ == 64
        assert_array_equal(model.coefs_[0], models[0].coefs_[0])
    expected = models[0].predict_proba(X)
    for model in models:
        for Xi in (X, X3, X4):
            assert_array_equal(model.predict_proba(Xi), expected)


def test_channels_last_images_equal_flat_rows_with_input_shape():
    rng = np.random.RandomState(0)
    X4 = rng.uniform(size=(40, 6, 5, 3))
    y = np.arange(40) % 3
    a = _fit_quiet(ConvNetClassifier(**SMALL), X4, y)
    b = _fit_quiet(ConvNetClassifier(**SMALL, input_shape=(6, 5, 3)), X4.reshape(40, -1), y)
    assert a.input_shape_ == b.input_shape_ == (6, 5, 3)
    assert a.coefs_[0].shape == (4, 3, 3, 3)
    assert_array_equal(a.predict_proba(X4), b.predict_proba(X4.reshape(40, -1)))


@pytest.mark.parametrize(
    "n_features, input_shape, expected",
    [(64, None, (8, 8, 1)), (10, None, (1, 10, 1)), (1, None, (1, 1, 1)),
     (12, (3, 4), (3, 4)), (12, (3, 4, 1), (3, 4, 1)), (12, (2, 2, 3), (2, 2, 3))],
)
def test_input_shape_is_inferred_or_taken_from_the_parameter(n_features, input_shape, expected):
    X = np.random.RandomState(0).uniform(size=(6, n_features))
    clf = ConvNetClassifier(conv_layers=(2,), hidden_layer_sizes=(3,), max_iter=1,
                            input_shape=input_shape)
    assert _fit_quiet(clf, X, [0, 1, 0, 1, 0, 1]).input_shape_ == expected


@pytest.mark.parametrize("shape", [(2, 2), (1, 7), (3, 1), (1, 1)])
def test_tiny_images_never_break_the_default_architecture(shape):
    X = np.random.RandomState(0).uniform(size=(8,) + shape)
    clf = _fit_quiet(ConvNetClassifier(max_iter=1), X, np.arange(8) % 2)
    assert clf.predict(X).shape == (8,)


def test_same_random_state_gives_identical_weights_under_any_thread_count(small_digits):
    first = _fit_quiet(ConvNetClassifier(**SMALL), *small_digits)
    with threadpool_limits(1):
        single = _fit_quiet(ConvNetClassifier(**SMALL), *small_digits)
    for a, b in zip(first.coefs_ + first.intercepts_, single.coefs_ + single.intercepts_):
        assert_array_equal(a, b)
    other = _fit_quiet(ConvNetClassifier(**{**SMALL, "random_state": 1}), *small_digits)
    assert not np.array_equal(first.coefs_[0], other.coefs_[0])


def test_predictions_are_identical_in_one_call_and_row_by_row(fitted, digits):
    X = digits[0][:300]  # more rows than one prediction chunk
    proba = fitted.predict_proba(X)
    rows = np.vstack([fitted.predict_proba(X[i:i + 1]) for i in range(len(X))])
    assert_array_equal(proba, rows)
    assert_array_equal(fitted.predict(X), fitted.classes_[proba.argmax(1)])


def test_predict_log_proba_is_log_of_predict_proba(fitted, small_digits):
    X = small_digits[0]
    proba = fitted.predict_proba(X)
    np.testing.assert_allclose(proba.sum(1), 1, rtol=1e-12)
    np.testing.assert_allclose(fitted.predict_log_proba(X), np.log(proba), rtol=1e-10)


def test_early_stopping_restores_the_weights_of_the_best_validation_epoch(
        small_digits, monkeypatch):
    snapshots = []
    original = ConvNetClassifier._validation_score

    def spy(self, X, y, sample_weight):
        score = original(self, X, y, sample_weight)
        snapshots.append((score, self._network.params.copy()))
        return score

    monkeypatch.setattr(ConvNetClassifier, "_validation_score", spy)
    clf = ConvNetClassifier(**{**SMALL, "max_iter": 30}, early_stopping=True,
                            n_iter_no_change=2, learning_rate_init=0.05, tol=0.0)
    _fit_quiet(clf, *small_digits)
    scores = [s for s, _ in snapshots]
    assert clf.validation_scores_ == scores and clf.best_validation_score_ == max(scores)
    assert clf.best_loss_ is None
    best = snapshots[int(np.argmax(scores))][1]
    assert not np.array_equal(best, snapshots[-1][1])
    assert_array_equal(clf._network.params, best)


def test_max_iter_reached_warns_convergence(small_digits):
    with pytest.warns(ConvergenceWarning, match="Maximum iterations \\(1\\)"):
        ConvNetClassifier(**{**SMALL, "max_iter": 1}).fit(*small_digits)


def test_training_loss_plateau_stops_before_max_iter(small_digits):
    clf = ConvNetClassifier(**{**SMALL, "max_iter": 50}, tol=10.0, n_iter_no_change=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf.fit(*small_digits)
    # every epoch after the first fails to improve by tol; the third such one stops
    assert clf.n_iter_ == 4


def test_verbose_prints_mlp_style_lines_with_validation_score_and_time(small_digits, capsys):
    _fit_quiet(ConvNetClassifier(**SMALL, verbose=True, early_stopping=True), *small_digits)
    lines = capsys.readouterr().out.strip().splitlines()
    pattern = r"Iteration \d+, loss = \d+\.\d{8}, validation score = [\d.]+, time = [\d.]+s"
    assert len(lines) == 3 and all(re.fullmatch(pattern, line) for line in lines)
    assert lines[0].startswith("Iteration 1, loss = ")


def test_keyboard_interrupt_stops_cleanly_and_leaves_a_usable_model(small_digits, monkeypatch):
    original = Network.loss_and_grad
    calls = []

    def interrupt_on_third_batch(self, *args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(self, *args)

    monkeypatch.setattr(Network, "loss_and_grad", interrupt_on_third_batch)
    clf = ConvNetClassifier(**{**SMALL, "max_iter": 5}, batch_size=100)
    with pytest.warns(UserWarning, match="interrupted"):
        clf.fit(*small_digits)
    assert clf.predict(small_digits[0]).shape == (300,)
    assert clf.n_iter_ == 0


def test_balanced_class_weight_equals_balanced_sample_weight(small_digits):
    X, y = small_digits[0][:120], small_digits[1][:120] % 3
    a = _fit_quiet(ConvNetClassifier(**SMALL, class_weight="balanced"), X, y)
    b = _fit_quiet(ConvNetClassifier(**SMALL), X, y,
                   sample_weight=compute_sample_weight("balanced", y))
    assert_array_equal(a.coefs_[0], b.coefs_[0])


def test_balanced_class_weight_under_warm_start_balances_the_classes_y_holds(small_digits):
    # classes_ are the first fit's; a warm start on y without one of them made
    # compute_class_weight refuse: "classes should have valid labels that are in y"
    X, y = small_digits[0][:120], small_digits[1][:120] % 3
    kept = y != 2
    a = _fit_quiet(ConvNetClassifier(**SMALL, class_weight="balanced", warm_start=True), X, y)
    b = _fit_quiet(ConvNetClassifier(**SMALL, warm_start=True), X, y,
                   sample_weight=compute_sample_weight("balanced", y))
    _fit_quiet(a, X[kept], y[kept])
    _fit_quiet(b, X[kept], y[kept], sample_weight=compute_sample_weight("balanced", y[kept]))
    assert_array_equal(a.classes_, [0, 1, 2])
    assert_array_equal(a.coefs_[0], b.coefs_[0])
    # a dict weighs every class of classes_, held by y or not
    c = _fit_quiet(ConvNetClassifier(**SMALL, class_weight={0: 1, 1: 2, 2: 3}, warm_start=True),
                   X, y)
    assert _fit_quiet(c, X[kept], y[kept]).n_iter_ == SMALL["max_iter"]


def test_balanced_class_weight_balances_the_sample_weights_of_the_classes(small_digits):
    # as LogisticRegression's: every class the same share of the sample weights,
    # counted over the rows that weigh more than 0, a class of such rows only left out
    X, y = small_digits[0][:120], small_digits[1][:120] % 3
    sample_weight = np.random.RandomState(0).choice([0.0, 1.0, 3.0], len(y))
    for weights in (sample_weight, np.where(y == 2, 0.0, sample_weight)):
        held = np.unique(y[weights > 0])
        balanced = np.zeros(3)
        balanced[held] = compute_class_weight("balanced", classes=held, y=y[weights > 0],
                                              sample_weight=weights[weights > 0])
        a = _fit_quiet(ConvNetClassifier(**SMALL, class_weight="balanced"), X, y,
                       sample_weight=weights)
        b = _fit_quiet(ConvNetClassifier(**SMALL), X, y, sample_weight=weights * balanced[y])
        assert_array_equal(a.coefs_[0], b.coefs_[0])


def test_class_weight_dict_favours_the_heavy_class(small_digits):
    X, y = small_digits[0][:200], small_digits[1][:200] % 2
    clf = _fit_quiet(ConvNetClassifier(**SMALL, class_weight={1: 50.0}), X, y)
    assert (clf.predict(X) == 1).mean() > 0.9


def test_sample_weight_of_ones_equals_no_sample_weight(small_digits):
    a = _fit_quiet(ConvNetClassifier(**SMALL), *small_digits)
    b = _fit_quiet(ConvNetClassifier(**SMALL), *small_digits, sample_weight=np.ones(300))
    assert_array_equal(a.coefs_[0], b.coefs_[0])


def test_partial_fit_runs_one_epoch_per_call_and_keeps_the_classes(small_digits):
    X, y = small_digits
    clf = ConvNetClassifier(**SMALL)
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X, y)
    with pytest.raises(ValueError, match="not in classes_"):
        ConvNetClassifier(**SMALL).partial_fit(X, y, classes=np.arange(5))
    clf.partial_fit(X[:100], y[:100], classes=np.arange(10))
    clf.partial_fit(X[100:], y[100:])
    assert clf.n_iter_ == 2 and clf.t_ == 300 and len(clf.loss_curve_) == 2
    with pytest.raises(ValueError, match="not in classes_"):
        clf.partial_fit(X[:5], np.full(5, 11))
    with pytest.raises(ValueError, match="early_stopping"):
        ConvNetClassifier(early_stopping=True).partial_fit(X, y, classes=np.arange(10))
    with pytest.raises(ValueError, match="balanced"):
        ConvNetClassifier(class_weight="balanced").partial_fit(X, y, classes=np.arange(10))


def test_partial_fit_after_fit_names_the_classes_of_the_fit_not_a_first_partial_fit(
        fitted, small_digits):
    X, y = small_digits
    # classes_ came from fit: no earlier partial_fit call to point at
    with pytest.raises(ValueError, match=r"fitted with \(by fit or the first partial_fit\), "
                                         r"classes_=array\(\[0, 1, .*fit a clone"):
        fitted.partial_fit(X, y, classes=np.arange(11))


def test_warm_start_continues_from_the_previous_weights(small_digits):
    clf = _fit_quiet(ConvNetClassifier(**SMALL, warm_start=True), *small_digits)
    first_curve = list(clf.loss_curve_)
    _fit_quiet(clf, *small_digits)
    assert clf.loss_curve_[:3] == first_curve and len(clf.loss_curve_) == 6
    assert clf.loss_curve_[3] < first_curve[0]
    clf.set_params(early_stopping=True)
    _fit_quiet(clf, *small_digits)
    assert len(clf.validation_scores_) == clf.n_iter_ == 3


def test_a_warm_start_that_switches_early_stopping_keeps_no_record_of_the_other_mode(
        small_digits):
    X, y = small_digits
    clf = _fit_quiet(ConvNetClassifier(**SMALL, warm_start=True, early_stopping=True), X, y)
    assert clf.best_loss_ is None
    _fit_quiet(clf.set_params(early_stopping=False), X, y)
    assert clf.validation_scores_ is None and clf.best_validation_score_ is None
    assert clf.best_loss_ == min(clf.loss_curve_[3:])
    # a best validation score of the weights before the fit without early stopping
    # would outrank this fit's epochs and restore the weights it started from
    before = clf._network.params.copy()
    _fit_quiet(clf.set_params(early_stopping=True), X, y)
    assert clf.best_loss_ is None and len(clf.validation_scores_) == clf.n_iter_ == 3
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    assert not np.array_equal(clf._network.params, before)


def test_a_continued_fit_refused_before_an_epoch_changes_nothing(small_digits):
    X, y = small_digits
    clf = _fit_quiet(ConvNetClassifier(**SMALL, warm_start=True), X, y)
    same = _fit_quiet(ConvNetClassifier(**SMALL, warm_start=True), X, y)
    with pytest.raises(ValueError, match="not in classes_"):
        clf.fit(X, y + 10)
    with pytest.raises(ValueError, match="validation_fraction"):
        clf.set_params(early_stopping=True).fit(X[:10], y[:10])
    clf.set_params(early_stopping=False)
    assert clf.n_iter_ == 3 and clf.validation_scores_ is None and clf.best_loss_ is not None
    # the next call continues as if the refused ones had not been made (its
    # shuffle is seeded by n_iter_, its steps are Adam's moments so far)
    assert_array_equal(clf.partial_fit(X, y).predict_proba(X),
                       same.partial_fit(X, y).predict_proba(X))


@pytest.mark.parametrize("change", [
    dict(conv_layers=({"residual": [4, 4]}, 8)), dict(global_pool="avg"),
    dict(hidden_layer_sizes=()), dict(activation="tanh"), dict(batch_norm=True),
    dict(kernel_size=5), dict(pool="avg"), dict(dropout=0.5), dict(dtype="float64"),
    dict(input_shape=(64, 1)), dict(input_shape=(2, 32, 1)),
])
def test_a_continued_fit_refuses_parameters_that_build_another_network(small_digits, change):
    # warm_start and partial_fit continue the network the last fit built: one
    # that the parameters no longer describe is refused, not trained silently
    clf = _fit_quiet(ConvNetClassifier(**SMALL, warm_start=True), *small_digits)
    params = clf._network.params.copy()
    clf.set_params(**change)
    name = next(iter(change))
    with pytest.raises(ValueError, match=f"fit with warm_start=True continues the fitted "
                                         f"network, built with {name}="):
        clf.fit(*small_digits)
    with pytest.raises(ValueError, match=f"partial_fit continues the fitted network, built "
                                         f"with {name}=.*now say {name}="):
        clf.partial_fit(*small_digits)
    assert_array_equal(clf._network.params, params)
    # without warm_start, fit builds the network the parameters describe
    _fit_quiet(clf.set_params(warm_start=False), *small_digits)
    assert_array_equal(clf.predict(small_digits[0][:5]),
                       _fit_quiet(clone(clf), *small_digits).predict(small_digits[0][:5]))


def test_a_continued_fit_takes_the_same_architecture_spelled_otherwise(small_digits):
    clf = _fit_quiet(ConvNetClassifier(**SMALL, warm_start=True), *small_digits)
    clf.set_params(conv_layers=[np.int64(4), {"filters": 8}],
                   hidden_layer_sizes=np.array([16]), dtype=np.float32, max_iter=1,
                   learning_rate_init=1e-4, input_shape=(8, 8, 1))
    _fit_quiet(clf, *small_digits)
    clf.partial_fit(*small_digits)
    assert len(clf.loss_curve_) == 5
    # what did change is named, not the other parameters spelled otherwise
    clf.set_params(conv_layers=(5, 8))
    with pytest.raises(ValueError, match=r"built with conv_layers=\(4, 8\); the parameters now "
                                         r"say conv_layers=\(5, 8\)\."):
        clf.partial_fit(*small_digits)


@pytest.mark.parametrize("make, message", [
    (lambda: ConvNetClassifier(**SMALL, augment={"shift": 50}), "shift"),
    (lambda: ConvNetClassifier(**SMALL, class_weight={k: -1.0 for k in range(10)}),
     "class weights must be finite and >= 0"),
    (lambda: ConvNetClassifier(**{**SMALL, "conv_layers": ({"filters": 4, "kernel_size": 20},)},
                               input_shape=(16, 4)), "longer than the series"),
])
def test_a_fit_that_fails_before_an_epoch_leaves_no_model(small_digits, make, message):
    # not the untrained network it built, nor the model of the fit before
    X, y = small_digits
    clf = make()
    with pytest.raises(ValueError, match=message):
        clf.fit(X, y)
    with pytest.raises(NotFittedError):
        clf.predict(X[:3])
    assert not hasattr(clf, "coefs_") and not hasattr(clf, "classes_")
    good = _fit_quiet(ConvNetClassifier(**SMALL), X, y)
    with pytest.raises(ValueError, match=message):
        good.set_params(**{k: v for k, v in make().get_params().items()
                           if k in ("augment", "class_weight", "input_shape", "conv_layers")}
                        ).fit(X, y)
    with pytest.raises(NotFittedError):
        good.predict(X[:3])


def test_unfitted_weights_are_missing_attributes_named_as_such():
    with pytest.raises(AttributeError, match="object has no attribute 'coefs_'"):
        ConvNetClassifier().coefs_
    assert not hasattr(ConvNetClassifier(), "intercepts_")


def test_class_weights_leaving_no_weight_are_refused(small_digits):
    with pytest.raises(ValueError, match="leaves every sample a weight of 0"):
        ConvNetClassifier(**SMALL, class_weight={k: 0 for k in range(10)}).fit(*small_digits)
    # the class as y holds it, not as numpy's scalar repr (np.int64(3))
    with pytest.raises(ValueError, match=r"gives class 3 the weight -1\.0: class weights"):
        ConvNetClassifier(**SMALL, class_weight={3: -1}).fit(*small_digits)


def test_early_stopping_on_one_sample_says_n_samples_as_scikit_learn_checks(small_digits):
    # the phrase scikit-learn's check_fit2d_1sample looks for, as MLPClassifier's
    # split error has it
    check_fit2d_1sample("ConvNetClassifier", ConvNetClassifier(**SMALL, early_stopping=True))
    with pytest.raises(ValueError, match=r"leaves 1 validation sample\(s\) of n_samples=9"):
        ConvNetClassifier(**SMALL, early_stopping=True).fit(*(v[:9] for v in small_digits))


def test_early_stopping_splits_unstratified_where_a_class_cannot_be_in_both_parts(digits):
    # MLPClassifier fits these; a stratified split cannot be made of them
    X, y = digits[0][:100], digits[1][:100].copy()
    y[0] = 10  # a class of one image
    for Xs, ys, fraction in ((X, y, 0.2), (X, digits[1][:100], 0.05)):
        clf = _fit_quiet(ConvNetClassifier(**SMALL, early_stopping=True,
                                           validation_fraction=fraction), Xs, ys)
        assert len(clf.validation_scores_) == clf.n_iter_ >= 1


def test_values_past_the_models_float_range_are_refused_not_predicted_as_nan(small_digits):
    X, y = small_digits
    with pytest.raises(ValueError, match=r"row\(s\) 0 of X hold values beyond float32's range"):
        ConvNetClassifier(**SMALL).fit(np.where(np.arange(len(X))[:, None] == 0, 1e39, X), y)
    clf = _fit_quiet(ConvNetClassifier(**SMALL), X, y)
    big = X[:4] * 1e39
    for given in (big, big.reshape(4, 8, 8)):
        with pytest.raises(ValueError, match=r"row\(s\) 0, 1, 2, 3 of X hold values beyond"):
            clf.predict(given)


@pytest.mark.parametrize("schedule", ["constant", "invscaling", "adaptive"])
def test_sgd_schedules_train(small_digits, schedule):
    clf = ConvNetClassifier(**SMALL, solver="sgd", learning_rate=schedule,
                            learning_rate_init=0.1)
    _fit_quiet(clf, *small_digits)
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]


def test_dataframe_input_sets_feature_names(small_digits):
    pd = pytest.importorskip("pandas")
    X, y = small_digits
    df = pd.DataFrame(X, columns=[f"px{i}" for i in range(64)])
    clf = _fit_quiet(ConvNetClassifier(**SMALL), df, y)
    assert_array_equal(clf.feature_names_in_, df.columns)
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        from_array = clf.predict(X)
    assert_array_equal(clf.predict(df), from_array)


def test_a_pandas_column_of_images_is_read_as_their_array(small_digits):
    # df["image"], one 8x8 array a cell: what its .to_numpy() (an object array
    # of images) and a list of them give, not numpy's "setting an array element
    # with a sequence"
    pd = pytest.importorskip("pandas")
    X, y = small_digits
    images = X[:60].reshape(-1, 8, 8)
    column = pd.DataFrame({"image": list(images), "label": y[:60]})["image"]
    clf = ConvNetClassifier(**SMALL)
    expected = _fit_quiet(clone(clf), images, y[:60]).predict_proba(images)
    assert_array_equal(_fit_quiet(clf, column, y[:60]).predict_proba(column), expected)
    assert not hasattr(clf, "feature_names_in_")


def test_one_column_of_images_is_read_as_its_samples_and_a_wider_table_refused(small_digits):
    # df[["image"]] and a ColumnTransformer passing it through give an (n, 1)
    # table of images: the column's images, as df["image"]; numpy said only
    # "setting an array element with a sequence"
    pd = pytest.importorskip("pandas")
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import make_pipeline

    X, y = small_digits
    images = X[:60].reshape(-1, 8, 8)
    df = pd.DataFrame({"image": list(images), "depth": list(images), "label": y[:60]})
    expected = _fit_quiet(ConvNetClassifier(**SMALL), images, y[:60]).predict_proba(images)
    clf = _fit_quiet(ConvNetClassifier(**SMALL), df[["image"]], y[:60])
    assert_array_equal(clf.predict_proba(df[["image"]]), expected)
    assert_array_equal(clf.predict_proba(df[["image"]].to_numpy()), expected)
    pipe = make_pipeline(ColumnTransformer([("image", "passthrough", ["image"])]),
                         ConvNetClassifier(**SMALL))
    assert_array_equal(_fit_quiet(pipe, df, y[:60]).predict_proba(df), expected)
    for table, column in ((df[["image", "depth"]], "image"), (df[["label", "depth"]], "depth")):
        with pytest.raises(ValueError, match=rf"X has 2 columns and holds arrays in its cells "
                                             rf"\(one of shape \(8, 8\) in column '{column}'\)"):
            ConvNetClassifier(**SMALL).fit(table, y[:60])


# ---------------------------------------------------------------------- bad input

def test_predict_before_fit_raises_not_fitted():
    with pytest.raises(NotFittedError):
        ConvNetClassifier().predict(np.zeros((2, 4)))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_in_x_raises(small_digits, bad):
    X = small_digits[0][:20].copy()
    X[3, 5] = bad
    with pytest.raises(ValueError, match="NaN|infinity"):
        ConvNetClassifier().fit(X, small_digits[1][:20])


@pytest.mark.parametrize("model_dtype", ["float32", "float64"])
@pytest.mark.parametrize("x_dtype", [np.float32, np.float64])
def test_plain_arrays_take_a_fast_path_to_the_same_images_with_the_same_refusals(
        small_digits, model_dtype, x_dtype):
    # a prediction's plain float rows skip scikit-learn's validation: their
    # images must be those of the validated path, and non-finite values refused
    X, y = small_digits
    rgb = np.random.RandomState(0).uniform(size=(30, 6, 5, 3))
    for X_fit, y_fit in ((X, y), (rgb, np.arange(30) % 3)):
        clf = _fit_quiet(ConvNetClassifier(**SMALL, dtype=model_dtype), X_fit, y_fit)
        part = X_fit[:7].astype(x_dtype)
        for Xp in (part, part[::2], part.reshape(len(part), -1)):
            rows = clf._plain_rows(Xp)
            images = clf._row_images(rows)
            assert images.dtype == model_dtype and images.flags.c_contiguous
            assert_array_equal(images, clf._to_nchw(Xp.reshape(len(Xp), -1)))
        for bad in (np.nan, np.inf, -np.inf):
            Xb = part.copy()
            Xb.flat[11] = bad
            assert clf._row_images(clf._plain_rows(Xb)) is None
            with pytest.raises(ValueError, match="NaN|infinity"):
                clf.predict_proba(Xb)
        # other shapes, dtypes and containers go the validated way
        assert clf._plain_rows(part[:, :-1]) is None
        assert clf._plain_rows(part.astype(np.float16)) is None
        assert clf._plain_rows(part.tolist()) is None


def test_complex_x_raises(small_digits):
    with pytest.raises(ValueError, match="[Cc]omplex"):
        ConvNetClassifier().fit(small_digits[0][:20] + 1j, small_digits[1][:20])


def test_wrong_number_of_features_at_predict_raises(fitted):
    with pytest.raises(ValueError, match="X has 10 features.*expecting 64"):
        fitted.predict(np.zeros((2, 10)))
    with pytest.raises(ValueError, match=r"images of shape \(4, 16, 1\).*\(8, 8, 1\)"):
        fitted.predict(np.zeros((2, 4, 16)))


def test_input_shape_mismatch_names_both_numbers(small_digits):
    with pytest.raises(ValueError, match=r"input_shape=\(7, 7, 1\) has 49 .* n_features=64"):
        ConvNetClassifier(input_shape=(7, 7, 1)).fit(*small_digits)


def test_kernel_larger_than_the_image_names_block_and_sizes(small_digits):
    clf = ConvNetClassifier(conv_layers=(4, (8, 5)), padding="valid")
    with pytest.raises(ValueError, match=r"kernel_size=5 .* height 3 in conv block 2"):
        clf.fit(*small_digits)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"conv_layers": ({"filters": 4, "stride": -1},)}, r"stride=-1 in conv block 1"),
        ({"conv_layers": (0,)}, r"filters=0 in conv block 1"),
        ({"conv_layers": ({"filters": 4, "strides": 2},)}, r"only keys"),
        ({"conv_layers": ({"filters": 4, "padding": "full"},)}, r"padding='full'"),
        ({"conv_layers": ({"filters": 4, "pool": "min"},)}, r"pool='min'"),
        ({"solver": "lbfgs"}, r"'solver' parameter"),
        ({"activation": "gelu"}, r"'activation' parameter"),
        ({"dtype": "float16"}, r"'dtype' parameter"),
        ({"input_shape": (8, 0)}, r"input_shape=\(8, 0\)"),
        ({"hidden_layer_sizes": (8, 0)}, r"hidden_layer_sizes=\(8, 0\)"),
    ],
)
def test_invalid_parameters_raise_value_error_naming_them(small_digits, params, match):
    with pytest.raises(ValueError, match=match):
        ConvNetClassifier(**params).fit(*small_digits)


def test_five_dimensional_x_raises(small_digits):
    with pytest.raises(ValueError, match="X.ndim=5"):
        ConvNetClassifier().fit(np.zeros((4, 2, 2, 2, 2)), [0, 1, 0, 1])


def test_diverging_training_warns_with_epoch_and_learning_rate_and_keeps_finite_weights():
    X, y = load_digits(return_X_y=True)
    clf = ConvNetClassifier(conv_layers=(4,), solver="sgd", learning_rate_init=1e6,
                            max_iter=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy's overflow on the way
        with pytest.warns(ConvergenceWarning, match=r"diverged in epoch \d+.*learning_rate_init=1000000"):
            clf.fit(X[:200], y[:200])
    assert clf.n_iter_ < 5
    assert all(np.isfinite(w).all() for w in clf.coefs_ + clf.intercepts_)
    proba = clf.predict_proba(X)
    assert np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


# ---------------------------------------------------------------------- multilabel

def test_sigmoid_binary_cross_entropy_is_mlp_binary_log_loss_and_its_gradient_the_derivative():
    rng = np.random.RandomState(0)
    z = rng.normal(scale=3, size=(6, 4))
    y = (rng.uniform(size=(6, 4)) > 0.5).astype(float)
    sw = rng.uniform(size=6)
    loss, _ = sigmoid_binary_cross_entropy(z.copy(), y, np.ones(6), 6.0)
    assert_allclose(loss, binary_log_loss(y, 1 / (1 + np.exp(-z))))
    expected = numerical_gradient(
        lambda: sigmoid_binary_cross_entropy(z.copy(), y, sw, sw.sum())[0], z)
    _, dz = sigmoid_binary_cross_entropy(z.copy(), y, sw, sw.sum())
    assert_allclose(dz, expected, rtol=1e-6, atol=1e-9)
    # no overflow for logits far out on either side
    big, _ = sigmoid_binary_cross_entropy(np.array([[800.0, -800.0]]), np.array([[0.0, 1.0]]),
                                          np.ones(1), 1.0)
    assert big == pytest.approx(1600.0)


def test_multilabel_classification():
    # ported from scikit-learn's neural_network/tests/test_mlp.py (lbfgs -> adam, no conv)
    X, y = make_multilabel_classification(n_samples=50, random_state=0, return_indicator=True)
    mlp = ConvNetClassifier(conv_layers=(), hidden_layer_sizes=50, alpha=1e-5, max_iter=150,
                            random_state=0, activation="logistic", learning_rate_init=0.02)
    _fit_quiet(mlp, X, y)
    assert mlp.score(X, y) > 0.97
    assert mlp.out_activation_ == "logistic" and mlp.n_outputs_ == 5
    assert_array_equal(mlp.classes_, np.arange(5))
    assert mlp.predict(X).shape == y.shape and set(np.unique(mlp.predict(X))) <= {0, 1}

    # test partial fit method
    mlp = ConvNetClassifier(conv_layers=(), solver="sgd", hidden_layer_sizes=50, max_iter=150,
                            random_state=0, activation="logistic", alpha=1e-5,
                            learning_rate_init=0.2)
    for i in range(100):
        mlp.partial_fit(X, y, classes=[0, 1, 2, 3, 4])
    assert mlp.score(X, y) > 0.9

    # Make sure early stopping still works now that splitting is stratified by
    # default (it is disabled for multilabel classification)
    mlp = ConvNetClassifier(early_stopping=True, max_iter=3)
    _fit_quiet(mlp, X, y).predict(X)
    assert len(mlp.validation_scores_) == 3


def test_predict_proba_multilabel():
    # ported from scikit-learn: multilabel does not use softmax, whose
    # probabilities sum to 1 (lbfgs -> adam, no conv)
    X, Y = make_multilabel_classification(n_samples=50, random_state=0, return_indicator=True)
    n_samples, n_classes = Y.shape

    clf = ConvNetClassifier(conv_layers=(), hidden_layer_sizes=30, random_state=0,
                            max_iter=300, learning_rate_init=0.01)
    _fit_quiet(clf, X, Y)
    y_proba = clf.predict_proba(X)

    assert y_proba.shape == (n_samples, n_classes)
    assert_array_equal(y_proba > 0.5, Y)

    y_log_proba = clf.predict_log_proba(X)
    proba_max = y_proba.argmax(axis=1)
    proba_log_max = y_log_proba.argmax(axis=1)

    assert (y_proba.sum(1) - 1).dot(y_proba.sum(1) - 1) > 1e-10
    assert_array_equal(proba_max, proba_log_max)
    # atol: log(p) of a p within 1e-13 of 1 has lost digits that the log-sigmoid keeps
    assert_allclose(y_log_proba, np.log(y_proba), atol=1e-12)


def test_a_sparse_multilabel_indicator_y_fits_as_its_dense_matrix():
    # MultiLabelBinarizer(sparse_output=True)'s y, which MLPClassifier takes,
    # failed with numpy's "setting an array element with a sequence"
    sp = pytest.importorskip("scipy.sparse")
    X, Y = make_multilabel_classification(n_samples=30, random_state=0, return_indicator=True)
    params = dict(conv_layers=(), hidden_layer_sizes=8, max_iter=3, random_state=0)
    dense = _fit_quiet(ConvNetClassifier(**params), X, Y)
    sparse = _fit_quiet(ConvNetClassifier(**params), X, sp.csr_matrix(Y))
    assert_array_equal(sparse.coefs_[0], dense.coefs_[0])
    assert_array_equal(sparse.predict(X), dense.predict(X))
    assert sparse.score(X, sp.csr_matrix(Y)) == dense.score(X, Y)
    sparse.partial_fit(X, sp.csr_matrix(Y))
    dense.partial_fit(X, Y)
    assert_array_equal(sparse.coefs_[0], dense.coefs_[0])


def test_multilabel_y_refuses_class_weight_other_label_shapes_and_multiclass_multioutput():
    X, Y = make_multilabel_classification(n_samples=30, random_state=0, return_indicator=True)
    with pytest.raises(ValueError, match="multilabel"):
        ConvNetClassifier(conv_layers=(), class_weight={0: 2.0}).fit(X, Y)
    clf = ConvNetClassifier(conv_layers=(), max_iter=1)
    clf.partial_fit(X, Y, classes=np.arange(5))
    with pytest.raises(ValueError, match="5 columns"):
        clf.partial_fit(X, Y[:, :3])
    with pytest.raises(ValueError, match="one label per sample"):
        ConvNetClassifier(conv_layers=(), max_iter=1).partial_fit(X, Y[:, 0], classes=[0, 1]) \
            .partial_fit(X, Y)
    with pytest.raises(ValueError, match="label indices 0 .. 4"):
        ConvNetClassifier(conv_layers=()).partial_fit(X, Y, classes=["a", "b"])
    with pytest.raises(ValueError, match="multiclass-multioutput"):
        ConvNetClassifier(conv_layers=()).fit(X, Y * np.arange(5))


# ---------------------------------------------------------------------- MLPClassifier parity

def test_n_iter_no_change_inf_never_stops_on_a_plateau(small_digits):
    clf = ConvNetClassifier(**{**SMALL, "max_iter": 5}, tol=10.0, n_iter_no_change=np.inf)
    with pytest.warns(ConvergenceWarning, match="Maximum iterations"):
        clf.fit(*small_digits)
    assert clf.n_iter_ == 5


def _diverging_iris(**params):
    """SGD at learning rate 1 with the identity activation: diverges after a few epochs."""
    X, y = load_iris(return_X_y=True)
    clf = ConvNetClassifier(conv_layers=(32, 64), solver="sgd", learning_rate_init=1.0,
                            activation="identity", random_state=0, max_iter=50, **params)
    return clf, X, y


def test_divergence_with_early_stopping_restores_the_best_validation_weights(monkeypatch):
    clf, X, y = _diverging_iris(early_stopping=True)
    scored = []
    original = ConvNetClassifier._validation_score

    def spy(self, *args):
        score = original(self, *args)
        scored.append((score, self._network.params.copy()))
        return score

    monkeypatch.setattr(ConvNetClassifier, "_validation_score", spy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy's overflow on the way
        with pytest.warns(ConvergenceWarning, match="diverged in epoch .* best validation"):
            clf.fit(X, y)
    finite = [(s, p) for s, p in scored if s is not None]
    assert clf.validation_scores_ == [s for s, _ in finite] and clf.n_iter_ == len(finite)
    assert clf.best_validation_score_ == max(clf.validation_scores_)
    assert_array_equal(clf._network.params, finite[int(np.argmax(clf.validation_scores_))][1])
    assert np.isfinite(clf.predict_proba(X)).all()


def test_divergence_without_early_stopping_keeps_the_last_weights_with_finite_outputs():
    clf, X, y = _diverging_iris()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.warns(ConvergenceWarning, match=r"diverged in epoch \d+.*end of epoch \d+"):
            clf.fit(X, y)
    assert 1 <= clf.n_iter_ == len(clf.loss_curve_) < 50
    proba = clf.predict_proba(X)
    assert np.isfinite(proba).all()
    assert_allclose(proba.sum(axis=1), 1.0)


def test_a_last_epoch_whose_updates_overflow_the_outputs_is_divergence_not_a_nan_model():
    # _diverging_iris's loss is NaN in epoch 5: epoch 4's updates already take
    # the outputs past float32. With max_iter=4 no later epoch sees it, and the
    # model returned predicted NaN probabilities.
    clf, X, y = _diverging_iris()
    clf.set_params(max_iter=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.warns(ConvergenceWarning, match=r"diverged in epoch 4.*end of epoch 3"):
            clf.fit(X, y)
    proba = clf.predict_proba(X)
    assert np.isfinite(proba).all()
    assert_allclose(proba.sum(axis=1), 1.0)
    # epoch 4 is off the record, its stall too: epochs 2 and 3 missed tol, not 2 to 4
    assert len(clf.loss_curve_) == clf.n_iter_ == 3
    assert clf.best_loss_ == min(clf.loss_curve_)
    assert clf._no_improvement_count == 2


def test_a_partial_fit_whose_updates_overflow_the_outputs_keeps_the_weights_before_it():
    X = np.random.RandomState(0).rand(20, 8, 8) * 100
    y = [0, 1] * 10
    clf = ConvNetClassifier(conv_layers=(4,), hidden_layer_sizes=(8,), solver="sgd",
                            learning_rate_init=1e8, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # raw pixel values, on purpose
        clf.partial_fit(X, y, classes=[0, 1])
        before = clf.predict_proba(X)
        assert np.isfinite(before).all()
        # this call's updates send the outputs past float32: it predicted NaN
        with pytest.warns(ConvergenceWarning, match=r"diverged in epoch 2.*end of epoch 1"):
            clf.partial_fit(X, y)
    assert_array_equal(clf.predict_proba(X), before)
    # the forgotten epoch leaves no stall behind for the next call to count
    assert clf.loss_curve_ == [clf.best_loss_]
    assert clf._no_improvement_count == 0


@pytest.mark.parametrize("early_stopping", [False, True])
def test_divergence_in_the_first_epoch_raises_like_mlpclassifier_and_leaves_no_model(
        early_stopping):
    X, y = load_iris(return_X_y=True)
    clf = ConvNetClassifier(conv_layers=(4,), hidden_layer_sizes=(8,), solver="sgd",
                            learning_rate_init=1e6, batch_size=10, early_stopping=early_stopping,
                            random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(ValueError, match="Solver produced non-finite parameter weights"):
            clf.fit(X * 100, y)
    assert not hasattr(clf, "validation_scores_")
    assert not hasattr(clf, "best_validation_score_")
    with pytest.raises(NotFittedError):
        clf.predict(X)


def test_sparse_csr_x_fits_as_dense_and_is_densified_one_batch_at_a_time(small_digits,
                                                                        monkeypatch):
    sp = pytest.importorskip("scipy.sparse")
    X, y = small_digits
    dense = _fit_quiet(ConvNetClassifier(**SMALL, batch_size=64), X, y)
    rows = []
    original = ConvNetClassifier._to_nchw

    def spy(self, X_part):
        rows.append(X_part.shape[0])
        return original(self, X_part)

    monkeypatch.setattr(ConvNetClassifier, "_to_nchw", spy)
    sparse = _fit_quiet(ConvNetClassifier(**SMALL, batch_size=64), sp.csr_matrix(X), y)
    assert max(rows) == 64
    assert_array_equal(sparse.coefs_[0], dense.coefs_[0])
    rows.clear()
    # a budget of 100 rows per forward pass, so prediction goes in chunks (as
    # many for each thread)
    network = sparse._network
    monkeypatch.setattr(skconv_base, "_PASS_BYTES",
                        100 * network.largest_activation * network.params.itemsize)
    monkeypatch.setattr(skconv_network, "_MIN_USES_PER_WEIGHT", 0)
    network.__dict__.pop("_weight_rows", None)
    proba = sparse.predict_proba(sp.csr_matrix(X))
    assert len(rows) >= 2 and max(rows) <= 100 and sum(rows) == len(X)
    assert_array_equal(proba, dense.predict_proba(X))
    # other sparse formats are converted to CSR
    assert_array_equal(sparse.predict_proba(sp.csc_matrix(X)), proba)


def test_a_prediction_pass_uses_each_weight_many_times(small_digits):
    # a pass packs every layer's weights anew: where the weights outweigh the
    # activations (a wide dense layer), passes hold more rows than the
    # activation budget alone gives
    X, y = small_digits
    clf = _fit_quiet(ConvNetClassifier(conv_layers=(2,), hidden_layer_sizes=(512,), max_iter=1,
                                       random_state=0), X[:50], y[:50])
    network = clf._network
    uses = sum(view.size * max(1, int(np.prod(network.nodes[i].layer.output_shape[1:])))
               for i, _, view in network.param_arrays())
    rows = network.rows_per_pass(1)
    assert rows * uses >= skconv_network._MIN_USES_PER_WEIGHT * network.params.size
    assert (rows - 1) * uses < skconv_network._MIN_USES_PER_WEIGHT * network.params.size
    assert network.rows_per_pass(10**9) > rows  # a larger activation budget still counts


def test_every_mlp_classifier_parameter_exists_or_is_refused_naming_what_to_use(small_digits):
    ours = set(ConvNetClassifier().get_params())
    assert set(MLPClassifier().get_params()) <= ours
    with pytest.raises(ValueError, match="solver='adam'"):
        ConvNetClassifier(solver="lbfgs").fit(*small_digits)
    with pytest.raises(ValueError, match="max_fun=15000.* max_iter"):
        ConvNetClassifier(max_fun=15000).fit(*small_digits)
