"""Training features of the estimators: augmentation, learning-rate schedules,
embeddings (``transform``), scikit-learn callbacks and where fit's warnings point.

Oracles: the unaugmented gather (``augment=None`` keeps its bits), the mirror
image for ``flip`` (each augmented image is the original or its mirror), the
closed forms of ``scheduled_learning_rate`` for the schedules, and the
network's own layers run by hand for ``transform``.
"""

import re

import numpy as np
import pytest
import scipy.sparse as sp
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV

from skconv import ConvNetClassifier, ConvNetRegressor
from skconv._optimizers import scheduled_learning_rate


@pytest.fixture(scope="module")
def digits200():
    X, y = load_digits(return_X_y=True)
    return X[:200] / 16.0, y[:200]


def _small(**params):
    """A tiny, fast classifier on 8x8 digits."""
    params = {"conv_layers": (4,), "hidden_layer_sizes": (16,), "max_iter": 3,
              "random_state": 0, **params}
    return ConvNetClassifier(**params)


def _spy_batches(monkeypatch, est):
    """Record every training batch that reaches the network's ``loss_and_grad``."""
    from skconv._network import Network

    batches = []
    original = Network.loss_and_grad

    def spy(self, x, *args, **kwargs):
        batches.append(np.array(x))
        return original(self, x, *args, **kwargs)

    monkeypatch.setattr(Network, "loss_and_grad", spy)
    return batches


# ---------------------------------------------------------------------- early stopping

@pytest.mark.parametrize("Estimator", [ConvNetClassifier, ConvNetRegressor])
@pytest.mark.parametrize("fraction, match", [
    (0.0, r"validation_fraction=0.0 leaves 0 validation sample\(s\)"),
    (0.05, r"validation_fraction=0.05 leaves 1 validation sample\(s\)"),
    (0.99, r"validation_fraction=0.99 holds out all 20 samples for validation, leaving none"),
])
def test_early_stopping_refuses_a_split_with_an_empty_side_naming_validation_fraction(
        digits200, Estimator, fraction, match):
    # train_test_split's errors named its test_size, which the user never set
    X, y = digits200[0][:20], digits200[1][:20]
    est = Estimator(conv_layers=(4,), hidden_layer_sizes=(16,), max_iter=3, random_state=0,
                    early_stopping=True, validation_fraction=fraction)
    with pytest.raises(ValueError, match=match):
        est.fit(X, y)
    assert not hasattr(est, "n_iter_")


@pytest.mark.parametrize("Estimator", [ConvNetClassifier, ConvNetRegressor])
def test_early_stopping_refuses_validation_samples_that_all_weigh_zero(digits200, Estimator):
    # the weighted score divided by their total weight: numpy's ZeroDivisionError
    # for the classifier, an R^2 of 0 every epoch for the regressor
    X, y = digits200[0][:20], digits200[1][:20] % 2
    weights = np.r_[np.ones(3), np.zeros(17)]  # none of the three drawn for validation
    est = Estimator(conv_layers=(4,), hidden_layer_sizes=(16,), max_iter=3, random_state=0,
                    early_stopping=True, validation_fraction=0.2)
    with pytest.raises(ValueError, match=r"The 4 validation samples .*validation_fraction=0.2"
                                         r"\) all have a sample_weight of 0"):
        est.fit(X, y, sample_weight=weights)
    assert not hasattr(est, "n_iter_")


@pytest.mark.parametrize("scale, dtype", [(1e39, "float32"), (1e-39, "float32"),
                                          (1e-309, "float64")])
def test_input_scale_beyond_the_model_dtype_is_refused_naming_it(digits200, scale, dtype):
    # cast to float32, 1e39 was infinite: every image divided to 0, a silent
    # fit on blank images; 1e-39 made them infinite and blamed learning_rate_init
    with pytest.raises(ValueError, match=re.escape(f"input_scale={scale!r} is beyond {dtype}'s")):
        _small(input_scale=scale, dtype=dtype).fit(*digits200)
    assert _small(input_scale=1e39, dtype="float64").fit(*digits200).n_iter_ == 3


def test_an_adam_epsilon_that_is_0_in_the_model_dtype_is_refused_naming_it(digits200):
    # cast to float32, epsilon=1e-300 was 0: a dead unit's 0 / 0 made the
    # weights NaN in the first epoch, and the error blamed learning_rate_init
    with pytest.raises(ValueError, match="epsilon=1e-300 is 0 in float32"):
        _small(epsilon=1e-300).fit(*digits200)
    assert _small(epsilon=1e-300, dtype="float64").fit(*digits200).n_iter_ == 3
    assert _small(epsilon=1e-300, solver="sgd").fit(*digits200).n_iter_ == 3


# ---------------------------------------------------------------------- augmentation

@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_augment_none_empty_and_zero_give_the_same_bits(digits200):
    X, y = digits200
    ref = _small().fit(X, y)._network.params
    for augment in ({}, {"shift": 0, "flip": False}):
        assert_array_equal(_small(augment=augment).fit(X, y)._network.params, ref)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_augmented_fit_is_reproducible_bit_for_bit_and_differs_from_plain(digits200):
    X, y = digits200
    augment = {"shift": 1, "rotate": 10, "scale": 0.1}
    a = _small(augment=augment).fit(X, y)
    b = _small(augment=augment).fit(X, y)
    assert_array_equal(a._network.params, b._network.params)
    assert a.loss_curve_ == b.loss_curve_
    assert not np.array_equal(a._network.params, _small().fit(X, y)._network.params)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_flip_batches_hold_each_image_or_its_mirror_and_validation_rows_untouched(
        digits200, monkeypatch):
    X, y = digits200
    est = _small(augment={"flip": True}, early_stopping=True, max_iter=2, batch_size=50)
    batches = _spy_batches(monkeypatch, est)
    validation = []
    original_score = type(est)._validation_score

    def spy_score(self, X_val, *args):
        validation.append(np.array(X_val))
        return original_score(self, X_val, *args)

    monkeypatch.setattr(type(est), "_validation_score", spy_score)
    est.fit(X, y)
    images = X.reshape(-1, 8, 8)
    originals = {img.tobytes() for img in images.astype(np.float32)}
    mirrors = {img[:, ::-1].copy().tobytes() for img in images.astype(np.float32)}
    seen = np.concatenate(batches)[:, 0]
    is_original = np.array([img.tobytes() in originals for img in seen])
    is_mirror = np.array([img.tobytes() in mirrors for img in seen])
    assert (is_original | is_mirror).all()
    # about half mirrored (symmetric digits can count as both)
    assert 0.3 < np.mean(is_mirror & ~is_original) < 0.7
    # the validation rows are rows of X, as given
    rows = {r.tobytes() for r in X.astype(np.float32)}
    assert validation and all(r.astype(np.float32).tobytes() in rows
                              for v in validation for r in v)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_augment_gives_the_same_bits_on_sparse_and_dense_x(digits200):
    X, y = digits200
    augment = {"shift": 2, "rotate": 15}
    dense = _small(augment=augment).fit(X, y)
    sparse = _small(augment=augment).fit(sp.csr_matrix(X), y)
    assert_array_equal(dense._network.params, sparse._network.params)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_augment_does_not_change_predict(digits200):
    X, y = digits200
    est = _small(augment={"shift": 2}).fit(X, y)
    assert_array_equal(est.predict_proba(X), est.predict_proba(X))
    logits = est._network.forward_fast(est._to_nchw(X.astype(np.float32)))
    assert_array_equal(est.predict(X), np.argmax(logits, axis=1))


@pytest.mark.parametrize("augment, match", [
    ({"shear": 3}, "unknown key 'shear'"),
    ({"shift": -1}, r"augment\['shift'\]=-1"),
    ({"shift": 8}, r"augment\['shift'\]=8 can move a 8x8 image out of view"),
    ({"rotate": 200}, r"augment\['rotate'\]=200"),
    ({"flip": "yes"}, r"augment\['flip'\]='yes'"),
])
def test_bad_augment_raises_naming_key_and_value(digits200, augment, match):
    X, y = digits200
    with pytest.raises(ValueError, match=match):
        _small(augment=augment).fit(X, y)


def test_augment_that_is_not_a_dict_is_refused_by_parameter_validation(digits200):
    X, y = digits200
    with pytest.raises(ValueError, match="'augment' parameter"):
        _small(augment="shift").fit(X, y)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_grid_search_tunes_augment(digits200):
    X, y = digits200
    search = GridSearchCV(_small(max_iter=2), {"augment": [None, {"shift": 1}]}, cv=2)
    search.fit(X, y)
    assert len(search.cv_results_["params"]) == 2


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_regressor_trains_with_augment(digits200):
    X, y = digits200
    est = ConvNetRegressor((4,), (8,), max_iter=2, random_state=0, augment={"shift": 1})
    assert np.isfinite(est.fit(X, y.astype(float) / 9).loss_curve_).all()


# ---------------------------------------------------------------------- schedules

@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("solver", ["adam", "sgd"])
@pytest.mark.parametrize("schedule, extra", [
    ("cosine", {"lr_warmup_epochs": 2}),
    ("cosine", {}),
    ("step", {"lr_step_size": 2, "lr_gamma": 0.5, "lr_warmup_epochs": 1}),
])
def test_learning_rate_curve_follows_the_closed_form(digits200, solver, schedule, extra):
    X, y = digits200
    est = _small(solver=solver, learning_rate=schedule, learning_rate_init=0.01, max_iter=6,
                 n_iter_no_change=np.inf, **extra).fit(X, y)
    expected = [scheduled_learning_rate(
        schedule, e, 0.01, n_epochs=6, warmup_epochs=extra.get("lr_warmup_epochs", 0),
        step_size=extra.get("lr_step_size", 10), gamma=extra.get("lr_gamma", 0.1))
        for e in range(6)]
    assert_allclose(est.learning_rate_curve_, expected, rtol=1e-12)
    assert len(est.learning_rate_curve_) == len(est.loss_curve_) == est.n_iter_


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_constant_schedule_records_the_initial_rate_every_epoch(digits200):
    X, y = digits200
    est = _small(learning_rate_init=0.002).fit(X, y)
    assert est.learning_rate_curve_ == [0.002] * 3


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_plateau_lowers_the_rate_by_gamma_when_the_loss_stalls(digits200):
    X, y = digits200
    # tol so large that no epoch after the first counts as an improvement: the
    # count exceeds n_iter_no_change=1 at the ends of epochs 3 and 5
    est = _small(learning_rate="plateau", lr_gamma=0.5, tol=1e3, n_iter_no_change=1,
                 max_iter=6).fit(X, y)
    assert est.n_iter_ == 6
    assert_allclose(est.learning_rate_curve_, [1e-3, 1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4])


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_schedules_continue_across_partial_fit_calls(digits200):
    X, y = digits200
    est = _small(learning_rate="step", lr_step_size=1, lr_gamma=0.5)
    est.partial_fit(X, y, classes=np.arange(10))
    est.partial_fit(X, y)
    est.partial_fit(X, y)
    assert_allclose(est.learning_rate_curve_, [1e-3, 5e-4, 2.5e-4])


def test_cosine_warmup_not_shorter_than_max_iter_raises(digits200):
    X, y = digits200
    with pytest.raises(ValueError, match="lr_warmup_epochs=3 must be < max_iter=3"):
        _small(learning_rate="cosine", lr_warmup_epochs=3).fit(X, y)


@pytest.mark.parametrize("params, match", [
    ({"lr_gamma": 1.0}, "'lr_gamma' parameter"),
    ({"lr_step_size": 0}, "'lr_step_size' parameter"),
    ({"lr_warmup_epochs": -1}, "'lr_warmup_epochs' parameter"),
    ({"learning_rate": "linear"}, "'learning_rate' parameter"),
])
def test_bad_schedule_parameters_are_refused(digits200, params, match):
    X, y = digits200
    with pytest.raises(ValueError, match=match):
        _small(**params).fit(X, y)


# ---------------------------------------------------------------------- transform

@pytest.fixture(scope="module")
def fitted_two_hidden(digits200):
    X, y = digits200
    with pytest.warns(Warning):
        return _small(hidden_layer_sizes=(16, 8)).fit(X, y)


def test_transform_layers_chain_to_the_logits_through_coefs(digits200, fitted_two_hidden):
    X, _ = digits200
    est = fitted_two_hidden
    conv = est.set_params(embedding_layer=0).transform(X).astype(np.float64)
    h1 = est.set_params(embedding_layer=1).transform(X)
    h2 = est.set_params(embedding_layer=-1).transform(X)
    w, b = est.coefs_[1:], est.intercepts_[1:]
    assert_allclose(h1, np.maximum(conv @ w[0] + b[0], 0), rtol=1e-4, atol=1e-5)
    assert_allclose(h2, np.maximum(h1 @ w[1] + b[1], 0), rtol=1e-4, atol=1e-5)
    assert_allclose(h2 @ w[2] + b[2], est._forward_fast(X.astype(np.float32)),
                    rtol=1e-4, atol=1e-5)
    assert conv.shape == (len(X), 4 * 4 * 4) and h2.shape == (len(X), 8)
    assert h2.dtype == np.float32
    assert_array_equal(est.set_params(embedding_layer=-2).transform(X), h1)


def test_transform_of_a_plain_mlp_layer_0_is_the_input(digits200):
    X, y = digits200
    with pytest.warns(Warning):
        est = _small(conv_layers=(), embedding_layer=0).fit(X, y)
    assert_array_equal(est.transform(X), X.astype(np.float32))


@pytest.mark.parametrize("layer", [3, -4, 1.0, "dense1", None])
def test_embedding_layer_out_of_range_names_value_and_range(digits200, fitted_two_hidden,
                                                            layer):
    # transform reads embedding_layer, so a value set after fit is checked there
    X, _ = digits200
    est = fitted_two_hidden.set_params(embedding_layer=layer)
    message = rf"embedding_layer={re.escape(repr(layer))} must be an int in \[-3, 2\]"
    with pytest.raises(ValueError, match=message):
        est.transform(X)
    with pytest.raises(ValueError, match=message):
        est.get_feature_names_out()
    est.set_params(embedding_layer=-1)


def test_embedding_layer_out_of_range_without_hidden_layers_says_there_are_none(digits200):
    X, y = digits200
    with pytest.warns(Warning):
        est = _small(hidden_layer_sizes=(), embedding_layer=1).fit(X, y)
    with pytest.raises(ValueError, match=r"in \[-1, 0\]: .* and no hidden dense layer"):
        est.transform(X)


def test_transform_before_fit_raises_not_fitted(digits200):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        _small().transform(digits200[0])
    with pytest.raises(NotFittedError):
        _small().get_feature_names_out()


def test_feature_names_and_pandas_output(digits200, fitted_two_hidden):
    X, _ = digits200
    est = fitted_two_hidden
    names = est.get_feature_names_out()
    assert_array_equal(names, [f"convnetclassifier{i}" for i in range(8)])
    try:
        est.set_output(transform="pandas")
        frame = est.transform(X)
    finally:
        est.set_output(transform="default")
    assert list(frame.columns) == list(names)
    assert_array_equal(frame.to_numpy(), est.transform(X))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_fit_transform_is_fit_then_transform(digits200):
    X, y = digits200
    assert_array_equal(_small().fit_transform(X, y), _small().fit(X, y).transform(X))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("final", ["logistic", "svc"])
def test_pipeline_feeds_embeddings_to_another_classifier(final):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import SVC

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    net = _small(conv_layers=(8,), hidden_layer_sizes=(32,), max_iter=10,
                 learning_rate_init=0.01)
    head = LogisticRegression(max_iter=500) if final == "logistic" else SVC()
    pipe = make_pipeline(net, head).set_output(transform="pandas")
    pipe.fit(X[:1200], y[:1200])
    assert pipe.score(X[1200:], y[1200:]) > 0.9


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_regressor_transform_returns_last_hidden_layer(digits200):
    X, y = digits200
    est = ConvNetRegressor((4,), (8,), max_iter=2, random_state=0).fit(X, y / 9.0)
    assert est.transform(X).shape == (len(X), 8)
    assert_array_equal(est.get_feature_names_out(),
                       [f"convnetregressor{i}" for i in range(8)])


# ---------------------------------------------------------------------- callbacks

class _Recorder:
    """A FitCallback recording each task it hears of; may stop at an epoch."""

    def __init__(self, stop_at_epoch=None):
        self.tasks = []
        self.stop_at_epoch = stop_at_epoch

    def setup(self, estimator, context):
        self.tasks.append(("setup", context.task_name))

    def teardown(self, estimator, context):
        self.tasks.append(("teardown", context.task_name))

    def on_fit_task_begin(self, estimator, context):
        self.tasks.append(("begin", context.task_name))

    def on_fit_task_end(self, estimator, context):
        self.tasks.append(("end", context.task_name))
        epochs = sum(1 for kind, name in self.tasks if (kind, name) == ("end", "epoch"))
        return context.task_name == "epoch" and epochs == self.stop_at_epoch


@pytest.fixture
def callback_api():
    return pytest.importorskip("sklearn.callback")


def test_scoring_monitor_records_the_score_of_each_epoch(digits200, callback_api):
    X, y = digits200
    monitor = callback_api.ScoringMonitor(scoring="accuracy")
    with pytest.warns(Warning):
        est = _small().set_callbacks(monitor).fit(X, y)
    rows = [row for row in monitor.get_logs().data if row["task_name"] == "epoch"]
    # the model after epoch k is the model of a fit of k epochs (same seed, same bits)
    expected = []
    for k in (1, 2, 3):
        with pytest.warns(Warning):
            expected.append(_small(max_iter=k).fit(X, y).score(X, y))
    assert [row["accuracy"] for row in rows] == expected
    assert expected[-1] == est.score(X, y)


def test_a_callback_stops_training_after_an_epoch(digits200, callback_api):
    import warnings

    X, y = digits200
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ConvergenceWarning: the callback stopped it
        est = _small(max_iter=5).set_callbacks(_Recorder(stop_at_epoch=2)).fit(X, y)
    assert est.n_iter_ == 2 and len(est.loss_curve_) == 2
    with pytest.warns(Warning):
        assert_array_equal(est._network.params, _small(max_iter=2).fit(X, y)._network.params)


def test_callbacks_hear_fit_epochs_and_batches_of_long_epochs(digits200, callback_api):
    X, y = digits200
    recorder = _Recorder()
    with pytest.warns(Warning):
        _small(max_iter=2).set_callbacks(recorder).fit(X, y)
    assert recorder.tasks[:3] == [("setup", "fit"), ("begin", "fit"), ("begin", "epoch")]
    assert recorder.tasks[-2:] == [("end", "fit"), ("teardown", "fit")]
    assert recorder.tasks.count(("end", "epoch")) == 2
    assert ("begin", "batch") not in recorder.tasks  # one batch per epoch: too short
    recorder = _Recorder()
    with pytest.warns(Warning):
        est = _small(max_iter=2, batch_size=4).set_callbacks(recorder).fit(X, y)
    assert recorder.tasks.count(("end", "batch")) == 2 * 50
    # the callback machinery leaves nothing behind on the estimator
    assert not [k for k in vars(est) if "callback_fit_ctx" in k or "teardown" in k]


def test_partial_fit_is_one_epoch_task(digits200, callback_api):
    X, y = digits200
    recorder = _Recorder()
    est = _small().set_callbacks(recorder)
    est.partial_fit(X, y, classes=np.arange(10))
    assert recorder.tasks.count(("end", "epoch")) == 1 and est.n_iter_ == 1


def test_progress_bar_runs_through_a_fit(digits200, callback_api):
    pytest.importorskip("rich")
    X, y = digits200
    with pytest.warns(Warning):
        est = _small(batch_size=4).set_callbacks(callback_api.ProgressBar()).fit(X, y)
    assert est.n_iter_ == 3


def test_verbose_prints_mlpclassifier_lines(digits200, capsys):
    X, y = digits200
    with pytest.warns(Warning):
        _small(verbose=True).fit(X, y)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(",")[0] for line in lines] == [f"Iteration {i}" for i in (1, 2, 3)]
    assert all(", loss = " in line for line in lines)


# ---------------------------------------------------------------------- warnings

def test_fit_warnings_point_at_the_callers_line(digits200):
    X, y = digits200
    with pytest.warns(Warning) as record:
        _small(batch_size=500).fit(X, y)
    categories = {w.category.__name__ for w in record}
    assert {"ConvergenceWarning", "UserWarning"} <= categories
    assert all(w.filename == __file__ for w in record), [(w.filename, w.message)
                                                         for w in record]


def test_divergence_warning_points_at_the_callers_line():
    import warnings

    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    # SGD at rate 1 with the identity activation diverges after a few epochs
    est = ConvNetClassifier(conv_layers=(32, 64), solver="sgd", learning_rate_init=1.0,
                            activation="identity", random_state=0, max_iter=50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy's overflow on the way
        with pytest.warns(Warning, match="diverged in epoch") as record:
            est.fit(X, y)
    ours = [w for w in record if not issubclass(w.category, RuntimeWarning)]
    assert ours and all(w.filename == __file__ for w in ours)


def test_without_sklearn_callback_fit_runs_and_set_callbacks_is_absent():
    """scikit-learn 1.6-1.8 have no sklearn.callback: the import guard falls back."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import skconv

    code = """
import sys, warnings
warnings.simplefilter("ignore")
import sklearn.base, sklearn.model_selection, sklearn.metrics, sklearn.utils  # they import it
from sklearn.datasets import load_digits
sys.modules["sklearn.callback"] = None  # what an older scikit-learn has: nothing
from skconv import ConvNetClassifier
X, y = load_digits(return_X_y=True)
clf = ConvNetClassifier((4,), (8,), max_iter=2, random_state=0).fit(X[:100] / 16, y[:100])
print(clf.n_iter_, hasattr(clf, "set_callbacks"))
"""
    root = str(Path(skconv.__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [
        root, os.environ.get("PYTHONPATH")])))
    result = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True,
                            env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["2", "False"]


def test_partial_fit_keeps_its_training_scratch_and_fit_drops_it(digits200):
    import pickle

    X, y = digits200

    def scratch(model):
        return {(node.name, name): id(getattr(node.layer, name))
                for node in model._network.nodes
                for name in node.layer.__dict__.get("_buffer_names", ())}

    model = _small(batch_norm=True, batch_size=50)
    model.partial_fit(X, y, classes=np.unique(y))
    kept = scratch(model)
    assert kept  # held for the next call ...
    model.partial_fit(X, y)
    assert scratch(model) == kept  # ... which writes into the same arrays
    assert not scratch(pickle.loads(pickle.dumps(model)))
    # the same bits as a model whose scratch is made anew for each call
    fresh = _small(batch_norm=True, batch_size=50)
    for first in (True, False):
        fresh.partial_fit(X, y, classes=np.unique(y) if first else None)
        fresh._network.release_buffers()
    assert_array_equal(fresh._network.params, model._network.params)
    model.fit(X, y)
    assert not scratch(model)


@pytest.mark.parametrize("weight", [1e308, 1e-320])
def test_sample_weights_whose_sum_float64_cannot_hold_are_refused_naming_them(weight):
    X = np.random.RandomState(0).rand(20, 8, 8)
    y = np.arange(20) % 2
    with pytest.raises(ValueError, match=r"sample_weight holds values up to .* rescale them"):
        ConvNetClassifier(conv_layers=(2,), hidden_layer_sizes=(4,), max_iter=2).fit(
            X, y, sample_weight=np.full(20, weight))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("solver", ["adam", "sgd"])
def test_a_batch_whose_rows_all_weigh_zero_trains_nothing(solver):
    # rows of weight 0 do not train the model, in a batch of their own too: its
    # loss has no sum of weights to be normalised by, and its L2 step alone (a
    # full step for Adam) moved the weights
    rng = np.random.RandomState(0)
    X, y = rng.rand(48, 6, 6), np.arange(48) % 3
    params = dict(conv_layers=(2,), hidden_layer_sizes=(4,), batch_size=8, shuffle=False,
                  max_iter=3, solver=solver, alpha=0.1, random_state=0)
    weights = np.ones(48)
    weights[8:16] = 0  # the second batch, whole
    weighted = ConvNetClassifier(**params).fit(X, y, sample_weight=weights)
    kept = np.r_[0:8, 16:48]
    left_out = ConvNetClassifier(**params).fit(X[kept], y[kept])
    np.testing.assert_array_equal(weighted._network.params, left_out._network.params)
    np.testing.assert_array_equal(weighted.loss_curve_, left_out.loss_curve_)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_early_stopping_whose_training_samples_all_weigh_zero_is_refused():
    X, y = np.random.RandomState(0).rand(40, 6, 6), np.arange(40) % 2
    weights = np.zeros(40)
    weights[:2] = 1
    messages = set()
    for seed in range(20):  # splits leaving both weighted rows on one side or the other
        try:
            ConvNetClassifier((2,), (4,), early_stopping=True, validation_fraction=0.5,
                              max_iter=2, random_state=seed).fit(X, y, sample_weight=weights)
        except ValueError as error:
            messages.add(str(error))
    assert any("training samples left by early stopping's split" in m for m in messages)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("params", [dict(dropout=0.5),
                                    dict(input_shape=(64, 1), augment={"noise": 0.1})])
def test_a_float64_fit_with_random_draws_follows_the_float32_fit(digits200, params):
    # the same initial weights, batches, dropout masks and noise: the two fits
    # differ by float32's rounding only, so float64 can stand in for float32 to check it
    X, y = digits200
    fits = {dtype: _small(**params, dtype=dtype).fit(X, y) for dtype in ("float32", "float64")}
    assert_allclose(fits["float32"].loss_curve_, fits["float64"].loss_curve_, rtol=1e-5)
    assert_allclose(fits["float32"]._network.params, fits["float64"]._network.params,
                    atol=1e-4)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_fit_keeps_two_snapshots_of_the_parameters_not_three(monkeypatch):
    # the weights at the ends of the last two epochs are kept to fall back to:
    # the oldest must go before the next is taken
    import tracemalloc

    from skconv import _network

    held = []
    snapshot = _network.Network.snapshot

    def spy(self):
        held.append(tracemalloc.get_traced_memory()[0])
        return snapshot(self)

    monkeypatch.setattr(_network.Network, "snapshot", spy)
    rng = np.random.RandomState(0)
    X, y = rng.rand(32, 40, 40, 1).astype(np.float32), rng.randint(0, 3, 32)
    clf = ConvNetClassifier(conv_layers=(), hidden_layer_sizes=(500,), batch_size=16, max_iter=4,
                            random_state=0)
    tracemalloc.start()
    try:
        clf.fit(X, y)
    finally:
        tracemalloc.stop()
    assert len(held) == 4
    assert held[-1] - held[1] < clf._network.params.nbytes / 2
