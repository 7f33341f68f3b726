"""Secure loading with skops: skconv's own types are trusted, with those skops trusts by
default, and nothing else."""

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

from skconv import ConvNetClassifier, ConvNetRegressor, persistence

sio = pytest.importorskip("skops.io")

CONFIGS = [
    dict(conv_layers=(4, {"filters": 2, "pool": "avg"}), hidden_layer_sizes=(8,), solver="sgd"),
    dict(conv_layers=((4, 3),), activation="tanh", solver="adam", early_stopping=True),
    dict(conv_layers=(4, {"filters": 2, "batch_norm": False}), hidden_layer_sizes=(8,),
         batch_norm=True, dropout=0.2),
    dict(estimator=ConvNetRegressor, conv_layers=(2,), hidden_layer_sizes=(4,)),
    dict(conv_layers=({"residual": [4, 4]},), global_pool="max", hidden_layer_sizes=()),
]


def _fitted(estimator=ConvNetClassifier, **params):
    X, y = load_digits(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator(max_iter=1, random_state=0, **params).fit(X[:120], y[:120]), X


def test_untrusted_types_of_saved_models_are_exactly_the_trusted_skconv_types(tmp_path):
    seen = set()
    for i, params in enumerate(CONFIGS):
        model, _ = _fitted(**params)
        path = tmp_path / f"m{i}.skops"
        persistence.dump(model, path)
        untrusted = set(sio.get_untrusted_types(file=path))
        assert all(t.startswith("skconv.") for t in untrusted), untrusted
        assert untrusted <= set(persistence.TRUSTED_TYPES)
        seen |= untrusted
    # and a model saved by skconv 0.1, whose network is a Sequential (its
    # round-trip: tests/test_graph.py)
    assert seen | {"skconv._network.Sequential"} == set(persistence.TRUSTED_TYPES)


def test_a_model_loaded_securely_predicts_identically(tmp_path):
    model, X = _fitted(**CONFIGS[0])
    path = tmp_path / "model.skops"
    persistence.dump(model, path)
    loaded = persistence.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


class Payload:
    """Stands for any type a malicious file could name."""


def test_a_file_naming_a_foreign_type_is_refused_before_anything_runs(tmp_path):
    model, _ = _fitted(**CONFIGS[0])
    path = tmp_path / "mixed.skops"
    sio.dump({"model": model, "payload": Payload()}, path)
    with pytest.raises(ValueError, match="Payload"):
        persistence.load(path)


def test_a_refused_scikit_learn_type_is_named_as_untrusted_by_skops_with_the_way_out(
        tmp_path):
    """A GridSearchCV names scikit-learn types that skops does not trust by default
    (its scorer, its splitter): the error says so, not only that they are not
    skconv's, and how to load a file one trusts."""
    from sklearn.model_selection import GridSearchCV

    X, y = load_digits(return_X_y=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search = GridSearchCV(ConvNetClassifier((2,), (), max_iter=1, random_state=0),
                              {"alpha": [1e-4]}, cv=2).fit(X[:60] / 16, y[:60])
    path = tmp_path / "search.skops"
    persistence.dump(search, path)
    with pytest.raises(ValueError, match=r"nor trusted by skops by default: .*StratifiedKFold"
                                         r".* skops.io.load\(file, trusted="):
        persistence.load(path)


def test_a_regressor_loaded_securely_predicts_identically(tmp_path):
    model, X = _fitted(**CONFIGS[-1])
    path = tmp_path / "regressor.skops"
    persistence.dump(model, path)
    np.testing.assert_array_equal(persistence.load(path).predict(X), model.predict(X))


def test_a_model_fitted_with_callbacks_is_saved_without_them_and_loads(tmp_path):
    callback = pytest.importorskip("sklearn.callback")
    from sklearn.pipeline import make_pipeline, make_union
    from sklearn.preprocessing import FunctionTransformer

    X, y = load_digits(return_X_y=True)
    monitor = callback.ScoringMonitor(scoring="accuracy")
    model = make_pipeline(FunctionTransformer(), ConvNetClassifier(
        (2,), (4,), max_iter=1, random_state=0).set_callbacks(monitor))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X[:60] / 16, y[:60])
    for saved in (model, model[-1]):
        path = tmp_path / "model.skops"
        persistence.dump(saved, path)
        loaded = persistence.load(path)
        np.testing.assert_array_equal(loaded.predict(X[:60] / 16), saved.predict(X[:60] / 16))
        assert not hasattr(loaded if saved is model[-1] else loaded[-1], "_skl_callbacks")
        assert model[-1]._skl_callbacks == [monitor]  # the saved model keeps its own
    # one estimator in two places of a meta-estimator
    path = tmp_path / "union.skops"
    persistence.dump(make_union(model[-1], model[-1]), path)
    assert not hasattr(persistence.load(path).transformer_list[0][1], "_skl_callbacks")
    assert model[-1]._skl_callbacks == [monitor]


@pytest.mark.parametrize("damage", ["params doubled", "params in float64", "layout transposed",
                                    "a conv's stride", "adam's m emptied", "sgd's velocity cut"])
def test_a_damaged_file_is_refused_at_load_before_a_kernel_writes_past_an_array(tmp_path,
                                                                               damage):
    """The kernels index the parameters and the optimizer's state by the layout,
    and the images by each layer's geometry, unchecked: such a file aborted or
    crashed the process in partial_fit, or predicted from memory past an array."""
    import pickle

    model, _ = _fitted(**CONFIGS[0 if damage.startswith("sgd") else 1])
    network, optimizer = model._network, model._optimizer
    if damage == "params doubled":
        network.params = np.concatenate([network.params, network.params])
    elif damage == "params in float64":
        network.params = network.params.astype(np.float64)
    elif damage == "layout transposed":  # the output layer's weights, as (units, inputs)
        k = max(k for k, spec in enumerate(network._layout) if spec[3])
        i, name, shape, is_w = network._layout[k]
        network._layout[k] = (i, name, shape[::-1], is_w)
    elif damage == "a conv's stride":  # the kernels read by it, past the image
        network.nodes[0].layer.stride = (1000, 1000)
    elif damage == "adam's m emptied":
        optimizer.m = optimizer.m[:0]
    else:
        optimizer.velocity = optimizer.velocity[:-1]
    path = tmp_path / "damaged.skops"
    persistence.dump(model, path)
    for load in (lambda: persistence.load(path), lambda: pickle.loads(pickle.dumps(model))):
        with pytest.raises(ValueError, match="(does not match|are not those its layers "
                                             "take).* the file is damaged"):
            load()
