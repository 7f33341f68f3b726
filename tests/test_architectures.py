"""skconv.architectures: published networks as estimator parameters."""

import re
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV

from skconv import ConvNetClassifier, ConvNetRegressor
from skconv.architectures import lenet5, mobilenet, resnet


def _network(params, input_shape, n_outputs=10):
    est = ConvNetClassifier(**params)
    est.input_shape_ = input_shape
    return est._build_network(n_outputs)


def test_resnet20_has_the_papers_layers_and_parameter_count():
    net = _network(resnet(20), (32, 32, 3))
    convs = [node for node in net.nodes if node.layer.op == "conv"]
    shortcuts = [node for node in convs if node.name.endswith("shortcut")]
    # 1 + 3 stages x 3 blocks x 2 convolutions, and a projection where a stage begins
    assert len(convs) - len(shortcuts) == 19 and len(shortcuts) == 2
    assert sum(node.layer.op == "add" for node in net.nodes) == 9
    assert net.nodes[-2].layer.op == "global_pool" and net.output_shape == (10,)
    # He et al. 2016, table 6: 0.27 M (with the two 1x1 projections: a few thousand more)
    assert 0.27e6 <= net.n_params <= 0.28e6
    sizes = [node.layer.output_shape for node in net.nodes if node.layer.op == "add"]
    assert sizes[0] == (16, 32, 32) and sizes[3] == (32, 16, 16) and sizes[6] == (64, 8, 8)


@pytest.mark.parametrize("depth", [8, 14, 32])
def test_resnet_depth_is_6n_plus_2(depth):
    net = _network(resnet(depth, width=4), (8, 8, 1))
    convs = [n for n in net.nodes if n.layer.op == "conv" and "shortcut" not in n.name]
    assert len(convs) == depth - 1  # and the output layer


@pytest.mark.parametrize("call, message", [
    (lambda: resnet(21), "depth=21 must be 6n \\+ 2"),
    (lambda: resnet(2), "depth=2 must be 6n \\+ 2"),
    (lambda: resnet(20, width=0), "width=0 must be a positive int"),
    (lambda: mobilenet(width=0), "width=0 must be a float in \\(0, 1\\]"),
    (lambda: mobilenet(n_layers=14), "n_layers=14 must be at most 13"),
])
def test_bad_arguments_are_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_mobilenet_is_separable_convolutions_with_a_width_multiplier():
    net = _network(mobilenet(width=0.25), (32, 32, 3))
    depthwise = [n.layer for n in net.nodes if n.name.split(".")[-1] == "depthwise"]
    assert len(depthwise) == 13
    assert all(layer.groups == layer.filters == layer.input_shape[0] for layer in depthwise)
    assert net.nodes[net.index("block14.pointwise")].layer.filters == 256
    assert net.nodes[net.index("global_pool")].layer.input_shape == (256, 2, 2)


def test_lenet5_on_28x28_digits():
    net = _network(lenet5(), (28, 28, 1))
    assert [node.layer.output_shape for node in net.nodes if node.layer.op == "max_pool"] == [
        (6, 12, 12), (16, 4, 4)]


@pytest.mark.parametrize("architecture", [lambda: resnet(8, width=4), lambda: mobilenet(
    width=0.125, n_layers=3), lenet5])
@pytest.mark.parametrize("Estimator", [ConvNetClassifier, ConvNetRegressor])
def test_each_architecture_fits_both_estimators(architecture, Estimator):
    rng = np.random.RandomState(0)
    X = rng.standard_normal((16, 28, 28)).astype(np.float32)
    y = np.arange(16) % 2 if Estimator is ConvNetClassifier else rng.standard_normal(16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = Estimator(**architecture(), max_iter=1, random_state=0).fit(X, y)
    assert np.isfinite(est.predict(X).astype(float)).all()
    clone(est)  # the parameters survive scikit-learn's clone


def test_grid_search_over_architectures_conv_layers():
    rng = np.random.RandomState(0)
    X = rng.standard_normal((30, 8, 8)).astype(np.float32)
    y = np.arange(30) % 2
    grid = {"conv_layers": [resnet(8, width=2)["conv_layers"], resnet(14, width=2)["conv_layers"]]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search = GridSearchCV(ConvNetClassifier(**resnet(8, width=2), max_iter=1, random_state=0),
                              grid, cv=2).fit(X, y)
    assert len(search.cv_results_["params"]) == 2
    # 7 or 13 convolutions, 2 shortcuts and the output layer, plus one (the input)
    assert search.best_estimator_.n_layers_ in (11, 17)


@pytest.mark.parametrize("X, block, height, shape", [
    (np.zeros((4, 8, 8)), 2, 2, (8, 8, 1)),  # the first pooling leaves 2x2 maps
    (np.zeros((4, 30)), 1, 1, (1, 30, 1)),  # rows that are not a square: images of one row
])
def test_lenet5_on_too_small_images_names_the_images_of_x(X, block, height, shape):
    with pytest.raises(ValueError, match=(
            rf"kernel_size=5 .* does not fit input of height {height} in conv block {block}: "
            rf"use a smaller kernel .* \(X holds images of shape {re.escape(str(shape))}, "
            rf"n_features={X[0].size}\)")):
        ConvNetClassifier(**lenet5()).fit(X, np.arange(4) % 2)
