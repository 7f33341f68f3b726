"""skconv.inspection: the displays draw what they computed, and what they compute is right.

The drawings are checked through their artists (tiles, image shapes, colour
limits), never pixels; the numbers against finite differences and a model
whose evidence is known to sit in one image corner.
"""

import warnings

import numpy as np
import pytest
from gradcheck import numerical_gradient
from numpy.testing import assert_allclose, assert_array_equal
from scipy.ndimage import zoom
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from skconv import ConvNetClassifier
from skconv._layers import Activation, Conv2D, Dense, Flatten, MaxPool2D
from skconv._network import Sequential

pytest.importorskip("matplotlib")
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from skconv.inspection import (  # noqa: E402
    FeatureMapDisplay,
    FilterDisplay,
    SaliencyDisplay,
    TrainingHistoryDisplay,
)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _fit(clf, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a few epochs on purpose
        return clf.fit(X, y)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:300] / 16.0, y[:300]


@pytest.fixture(scope="module")
def digits_model(digits):
    clf = ConvNetClassifier((4, 6), (16,), max_iter=3, early_stopping=True,
                            validation_fraction=0.2, random_state=0)
    return _fit(clf, *digits)


# ---------------------------------------------------------------------- training history

def test_training_history_draws_one_panel_per_recorded_curve(digits_model):
    display = TrainingHistoryDisplay.from_estimator(digits_model)
    # loss, validation score and the learning rate the estimator records per epoch
    assert display.axes_.shape == (3,) and display.ax_ is display.axes_[0]
    loss, score, rate = (line.get_ydata() for line in display.lines_)
    assert_allclose(loss, digits_model.loss_curve_)
    assert_allclose(score, digits_model.validation_scores_)
    assert_allclose(rate, digits_model.learning_rate_curve_)
    assert_array_equal(display.lines_[0].get_xdata(), np.arange(1, digits_model.n_iter_ + 1))


def test_training_history_without_validation_has_one_panel_and_learning_rate_a_log_panel():
    assert TrainingHistoryDisplay([1.0, 0.5]).plot().axes_.shape == (1,)
    display = TrainingHistoryDisplay([1.0, 0.5], [], [1e-3, 1e-4]).plot()
    assert display.validation_scores_ is None
    assert display.axes_.shape == (2,) and display.axes_[1].get_yscale() == "log"


def test_training_history_with_no_curve_says_so():
    for empty in ([], None):
        with pytest.raises(ValueError, match="TrainingHistoryDisplay has no curve to draw"):
            TrainingHistoryDisplay(empty).plot()


# ---------------------------------------------------------------------- filters

def test_filter_display_draws_one_tile_per_filter_of_a_one_channel_layer(digits_model):
    display = FilterDisplay.from_estimator(digits_model, layer=0)
    w = digits_model.coefs_[0]
    assert display.tiles_.shape == (4, 1) and display.axes_.shape == (2, 2)
    assert_array_equal(display.weights_, w)
    for f, tile in enumerate(display.tiles_[:, 0]):
        assert_array_equal(tile.get_array(), w[f, 0])
    m = np.abs(w).max()
    assert_allclose(display.tiles_[0, 0].get_clim(), (-m, m))


def test_filter_display_switches_off_the_grid_cells_left_blank(digits_model):
    display = FilterDisplay.from_estimator(digits_model, filters=[0, 1, 2])
    assert display.tiles_.shape == (3, 1) and display.axes_.shape == (2, 2)
    assert [ax.axison for ax in display.axes_.flat] == [True, True, True, False]


def test_filter_display_of_a_deeper_layer_has_a_row_per_filter_and_a_column_per_channel(
        digits_model):
    display = FilterDisplay.from_estimator(digits_model, layer=-1, filters=[5, 0])
    assert display.layer_ == 1
    assert display.tiles_.shape == (2, 4) and display.axes_.shape == (2, 4)
    assert_array_equal(display.tiles_[0, 3].get_array(), digits_model.coefs_[1][5, 3])


def test_filter_display_draws_rgb_tiles_for_three_input_channels():
    rng = np.random.RandomState(0)
    X, y = rng.uniform(size=(20, 6, 6, 3)), np.arange(20) % 2
    clf = _fit(ConvNetClassifier((5,), (4,), max_iter=1, random_state=0), X, y)
    display = FilterDisplay.from_estimator(clf)
    assert display.rgb_ and display.tiles_.shape == (5, 1)
    rgb = display.tiles_[0, 0].get_array()
    assert rgb.shape == (3, 3, 3) and rgb.min() == 0 and rgb.max() == 1


# ---------------------------------------------------------------------- feature maps

def test_feature_maps_are_those_of_the_prediction_pass(digits_model, digits):
    x = digits[0][7]
    net = digits_model._network
    expected = x.reshape(1, 1, 8, 8).astype(net.dtype)
    for layer in net.layers[:3]:  # the first block: conv, max-pool, relu
        expected = layer.forward_fast(expected)
    display = FeatureMapDisplay.from_estimator(digits_model, x.reshape(8, 8), layer=0)
    assert_array_equal(display.feature_maps_, expected[0])
    assert display.feature_maps_.shape == (4, 4, 4)
    assert display.tiles_.shape == (4,) and display.axes_.shape == (2, 2)
    assert display.tiles_[0].get_array().shape == (4, 4)
    assert_allclose(display.tiles_[3].get_clim(), (expected.min(), expected.max()))


def test_feature_maps_before_pooling_keep_the_convolution_resolution(digits_model, digits):
    display = FeatureMapDisplay.from_estimator(digits_model, digits[0][:1], layer=1,
                                               pooled=False)
    assert display.feature_maps_.shape == (6, 4, 4) and not display.pooled_
    assert display.tiles_.shape == (6,) and display.axes_.shape == (2, 3)


def test_maps_and_filters_of_one_row_of_an_image_model_are_drawn_as_images(digits):
    # three poolings take 8x8 digits to 1x1 maps; a (1, 3) kernel is one row
    X, y = digits
    clf = _fit(ConvNetClassifier((2, 2, {"filters": 4, "kernel_size": (1, 3)}), (4,),
                                 max_iter=1, random_state=0), X, y)
    maps = FeatureMapDisplay.from_estimator(clf, X[0], layer=2)
    assert maps.feature_maps_.shape == (4, 1, 1) and maps.tiles_.shape == (4,)
    assert "time" not in maps.figure_._suptitle.get_text()
    filters = FilterDisplay.from_estimator(clf, layer=2)
    assert filters.tiles_.shape == (4, 2)
    assert filters.tiles_[0, 0].get_array().shape == (1, 3)


def test_feature_map_display_refuses_more_than_one_image(digits_model, digits):
    with pytest.raises(ValueError, match=r"x must be one image of input_shape_=\(8, 8, 1\)"):
        FeatureMapDisplay.from_estimator(digits_model, digits[0][:2])


# ---------------------------------------------------------------------- errors

@pytest.mark.parametrize("show", [
    lambda est, X: FilterDisplay.from_estimator(est, layer=2),
    lambda est, X: FeatureMapDisplay.from_estimator(est, X[0], layer=-3),
    lambda est, X: SaliencyDisplay.from_estimator(est, X[:2], layer=5),
])
def test_layer_out_of_range_names_the_layer_and_the_conv_layer_count(show, digits_model,
                                                                     digits):
    with pytest.raises(ValueError, match=r"layer=-?\d is out of range: the network has 2 "
                                         r"conv layer\(s\), numbered 0 to 1"):
        show(digits_model, digits[0])


@pytest.mark.parametrize("show", [
    lambda est, X: TrainingHistoryDisplay.from_estimator(est),
    lambda est, X: FilterDisplay.from_estimator(est),
    lambda est, X: FeatureMapDisplay.from_estimator(est, X[0]),
    lambda est, X: SaliencyDisplay.from_estimator(est, X[:2]),
])
def test_unfitted_estimator_raises_not_fitted_error(show, digits):
    with pytest.raises(NotFittedError):
        show(ConvNetClassifier(), digits[0])


def test_layer_must_be_an_int_and_a_network_without_conv_layers_has_none(digits):
    mlp = _fit(ConvNetClassifier((), (8,), max_iter=1, random_state=0), *digits)
    with pytest.raises(ValueError, match="layer=0 cannot be shown: the network has no conv"):
        FilterDisplay.from_estimator(mlp)
    with pytest.raises(TypeError, match="layer=1.5 must be an int"):
        FilterDisplay.from_estimator(mlp, layer=1.5)
    # saliency needs no conv layer; Grad-CAM does, so it is left out
    display = SaliencyDisplay.from_estimator(mlp, digits[0][:2])
    assert display.gradcam_ is None and display.axes_.shape == (2, 2)


def test_without_matplotlib_the_error_names_the_extra_that_installs_it(digits_model,
                                                                      monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)  # import fails
    with pytest.raises(ImportError, match=r"FilterDisplay needs matplotlib: pip install "
                                          r"matplotlib \(or skconv\[examples\]\)"):
        FilterDisplay.from_estimator(digits_model)
    # said before any work: before X is even read
    with pytest.raises(ImportError, match=r"SaliencyDisplay needs matplotlib"):
        SaliencyDisplay.from_estimator(digits_model, "not images", method="smoothgrad")


def test_an_estimator_that_is_not_skconv_is_refused(digits):
    from sklearn.linear_model import LogisticRegression

    with pytest.raises(TypeError, match="estimator=LogisticRegression is not a fitted skconv"):
        FilterDisplay.from_estimator(LogisticRegression().fit(*digits))


# ---------------------------------------------------------------------- saliency

@pytest.fixture(scope="module")
def float64_model(digits):
    clf = ConvNetClassifier((3, 4), (8,), batch_norm=True, dtype="float64", max_iter=2,
                            random_state=0)
    return _fit(clf, *digits)


def test_saliency_is_the_input_gradient_of_the_target_logit_by_finite_differences(
        float64_model, digits):
    # noise breaks the ties of blank regions (max-pool windows, ReLU at 0), where the
    # gradient is one-sided and central differences average the two sides
    X = digits[0][:2] + np.random.RandomState(0).uniform(0, 0.1, (2, 64))
    display = SaliencyDisplay.from_estimator(float64_model, X, target=3)
    net = float64_model._network
    col = 3  # classes_ are 0..9
    for i in range(2):
        x = X[i].copy()

        def logit():
            return float(net.forward_fast(x.reshape(1, 1, 8, 8).copy())[0, col])

        numeric = numerical_gradient(logit, x).reshape(8, 8, 1)
        assert_allclose(display.input_gradient_[i], numeric, rtol=1e-5, atol=1e-8)
        assert_allclose(display.saliency_[i], np.abs(numeric[:, :, 0]), rtol=1e-5, atol=1e-8)
    assert_array_equal(display.target_, [3, 3])


def test_smoothgrad_is_the_gradient_of_the_score_averaged_over_the_noisy_copies(
        float64_model, digits):
    """By finite differences of mean_k F(x + sigma * noise_k), with the noise drawn as
    documented: one standard_normal array of shape (n_samples, n, c, h, w)."""
    X = digits[0][:2] + np.random.RandomState(0).uniform(0, 0.1, (2, 64))
    display = SaliencyDisplay.from_estimator(float64_model, X, target=3, method="smoothgrad",
                                             n_samples=3, noise_level=0.1, random_state=7)
    noise = np.random.RandomState(7).standard_normal((3, 2, 1, 8, 8))
    net = float64_model._network
    for i in range(2):
        x = X[i].copy()
        sigma = 0.1 * (x.max() - x.min())

        def smoothed():
            copies = x.reshape(1, 1, 8, 8) + sigma * noise[:, i]
            return float(net.forward_fast(np.ascontiguousarray(copies))[:, 3].mean())

        numeric = numerical_gradient(smoothed, x).reshape(8, 8, 1)
        assert_allclose(display.attributions_[i], numeric, rtol=1e-5, atol=1e-8)
        assert_allclose(display.saliency_[i], np.abs(numeric[:, :, 0]), rtol=1e-5, atol=1e-8)
    # the plain gradient is kept beside the attributions, and differs from them
    assert not np.allclose(display.input_gradient_, display.attributions_)


def test_integrated_gradients_are_the_path_mean_gradient_times_the_image_minus_baseline(
        float64_model, digits):
    X = digits[0][:2] + np.random.RandomState(0).uniform(0, 0.1, (2, 64))
    baseline = np.full(64, 0.25)
    display = SaliencyDisplay.from_estimator(float64_model, X, target=3,
                                             method="integrated_gradients", baseline=baseline,
                                             steps=3)
    net = float64_model._network
    for i in range(2):
        mean_gradient = np.zeros(64)
        for alpha in (1 / 6, 3 / 6, 5 / 6):  # the midpoints of three segments
            point = baseline + alpha * (X[i] - baseline)

            def logit():
                return float(net.forward_fast(point.reshape(1, 1, 8, 8).copy())[0, 3])

            mean_gradient += numerical_gradient(logit, point) / 3
        expected = ((X[i] - baseline) * mean_gradient).reshape(8, 8, 1)
        assert_allclose(display.attributions_[i], expected, rtol=1e-5, atol=1e-8)


def test_integrated_gradients_add_up_to_the_score_of_the_image_minus_the_baseline(
        float64_model, digits):
    # completeness (Sundararajan et al.'s axiom), up to the path's discretisation
    X = digits[0][:3]
    display = SaliencyDisplay.from_estimator(float64_model, X, target=5,
                                             method="integrated_gradients", steps=400)
    net = float64_model._network
    scores = net.forward_fast(X.reshape(3, 1, 8, 8).copy())[:, 5]
    blank = net.forward_fast(np.zeros((1, 1, 8, 8)))[0, 5]
    assert_allclose(display.attributions_.sum(axis=(1, 2, 3)), scores - blank,
                    atol=0.02 * np.abs(scores - blank).max())
    # an image equal to the baseline is credited with nothing
    same = SaliencyDisplay.from_estimator(float64_model, X[:1], target=5,
                                          method="integrated_gradients", baseline=X[0])
    assert_array_equal(same.attributions_, 0)


def test_integrated_gradients_take_their_default_baseline_for_one_pixel_images():
    # the default baseline, 0.0, is one value, as is the whole 1x1 image
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((12, 1, 1, 1)), np.arange(12) % 3
    clf = ConvNetClassifier((4,), (5,), kernel_size=1, pool=None, input_shape=(1, 1, 1),
                            max_iter=1, random_state=0).fit(X, y)
    display = SaliencyDisplay.from_estimator(clf, X[:2], target=1,
                                             method="integrated_gradients")
    assert display.attributions_.shape == (2, 1, 1, 1)
    assert np.all(np.isfinite(display.attributions_))


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"method": "lime"}, r"method='lime' must be one of 'gradient', 'smoothgrad', "
                         r"'integrated_gradients'"),
    ({"steps": 10}, r"steps=10 applies to method='integrated_gradients' only, not to "
                    r"method='gradient'"),
    ({"method": "smoothgrad", "baseline": 0.5}, r"baseline=0.5 applies to "
                                                r"method='integrated_gradients' only"),
    ({"method": "integrated_gradients", "random_state": 0},
     r"random_state=0 applies to method='smoothgrad' only"),
    ({"method": "smoothgrad", "n_samples": 0}, r"n_samples=0 must be a positive int"),
    ({"method": "smoothgrad", "n_samples": 2.5}, r"n_samples=2.5 must be a positive int"),
    ({"method": "smoothgrad", "noise_level": -0.1}, r"noise_level=-0.1 must be a positive"),
    ({"method": "smoothgrad", "noise_level": np.nan}, r"noise_level=nan must be a positive"),
    ({"method": "integrated_gradients", "steps": 0}, r"steps=0 must be a positive int"),
    ({"method": "integrated_gradients", "baseline": np.zeros(63)},
     r"baseline of shape \(63,\) must be a number or one image of input_shape_=\(8, 8, 1\)"),
    ({"method": "integrated_gradients", "baseline": np.inf}, r"baseline must be finite"),
    ({"y": [1, 2, 3]}, r"y must hold one true label per image, or one row of targets: 2 "
                       r"images, so y of shape \(2,\); got \(3,\)"),
    ({"y": np.zeros((2, 10))}, r"so y of shape \(2,\); got \(2, 10\)"),
])
def test_saliency_method_parameters_are_checked_with_errors_naming_them(
        kwargs, message, digits_model, digits):
    with pytest.raises(ValueError, match=message):
        SaliencyDisplay.from_estimator(digits_model, digits[0][:2], **kwargs)


def test_saliency_rows_say_which_class_is_explained_and_the_true_label_when_given(
        digits_model, digits):
    X, y = digits[0][:2], digits[1][:2]
    display = SaliencyDisplay.from_estimator(digits_model, X, y, target=5)
    assert [a.get_ylabel() for a in display.axes_[:, 0]] == [
        f"explains 5 (true {y[0]})", f"explains 5 (true {y[1]})"]
    assert display.axes_[0, 1].get_title() == "saliency (gradient)"
    display = SaliencyDisplay.from_estimator(digits_model, X, method="integrated_gradients")
    predicted = digits_model.predict(X)
    assert [a.get_ylabel() for a in display.axes_[:, 0]] == [f"explains {c}" for c in predicted]
    assert display.axes_[0, 1].get_title() == "Integrated Gradients"


def test_saliency_explains_the_predicted_class_by_default(digits_model, digits):
    X = digits[0][:5]
    display = SaliencyDisplay.from_estimator(digits_model, X)
    assert_array_equal(display.target_, digits_model.predict(X))
    with pytest.raises(ValueError, match=r"target=11 must be a class label"):
        SaliencyDisplay.from_estimator(digits_model, X, target=11)
    # a target is looked up as given, not cast to the classes' dtype first
    for target in (1.7, "2", [1, 2.5, 1, 1, 1]):
        with pytest.raises(ValueError, match="must be a class label"):
            SaliencyDisplay.from_estimator(digits_model, X, target=target)
    named = _fit(ConvNetClassifier((2,), (4,), max_iter=1, random_state=0),
                 X, np.array(["no", "yes"] * 2 + ["no"]))
    assert_array_equal(SaliencyDisplay.from_estimator(named, X, target="yes").target_,
                       ["yes"] * 5)
    with pytest.raises(ValueError, match="target='yesss' must be a class label"):
        SaliencyDisplay.from_estimator(named, X, target="yesss")


def test_inspection_sees_what_predict_feeds_the_network_with_input_scale(digits):
    # a model fitted on X with input_scale explains and shows what the same
    # weights fitted on X / input_scale do: the network reads X / input_scale
    X, y = digits
    raw = np.rint(X[:60] * 240).astype(np.uint8)
    scaled = _fit(ConvNetClassifier((3,), (8,), max_iter=2, random_state=0,
                                    input_scale=240.0), raw, y[:60])
    plain = _fit(ConvNetClassifier((3,), (8,), max_iter=2, random_state=0),
                 raw / np.float32(240.0), y[:60])
    plain._network.params[:] = scaled._network.params
    for method in ("gradient", "integrated_gradients"):
        a = SaliencyDisplay.from_estimator(scaled, raw[:4], method=method, baseline=0.0
                                           if method != "gradient" else None)
        b = SaliencyDisplay.from_estimator(plain, raw[:4] / np.float32(240.0), method=method,
                                           baseline=0.0 if method != "gradient" else None)
        assert_array_equal(a.target_, scaled.predict(raw[:4]))
        assert_array_equal(a.gradcam_, b.gradcam_)
        # the gradient with respect to X, in X's units; attributions of a path the same
        assert_allclose(a.input_gradient_ * 240, b.input_gradient_, rtol=1e-5, atol=1e-8)
        assert_allclose(a.attributions_ * (240 if method == "gradient" else 1),
                        b.attributions_, rtol=1e-5, atol=1e-8)
    maps = FeatureMapDisplay.from_estimator(scaled, raw[0], layer=0)
    assert_array_equal(maps.feature_maps_, FeatureMapDisplay.from_estimator(
        plain, raw[0] / np.float32(240.0), layer=0).feature_maps_)


def test_inspection_with_input_scale_leaves_the_callers_x_as_it_was(digits):
    # one channel in the model's dtype: the network's images are a view of X
    X, y = digits
    clf = _fit(ConvNetClassifier((2,), (4,), max_iter=1, random_state=0, dtype="float64",
                                 input_scale=16.0), X[:60] * 16, y[:60])
    images = X[:3].reshape(3, 8, 8, 1) * 16
    given = images.copy()
    SaliencyDisplay.from_estimator(clf, images)
    FeatureMapDisplay.from_estimator(clf, images[:1])
    assert_array_equal(images, given)


def test_inspection_refuses_samples_laid_out_otherwise_as_predict_does(digits):
    X, y = digits
    clf = _fit(ConvNetClassifier((2,), (4,), max_iter=1, random_state=0), X.reshape(-1, 8, 8),
               y)
    with pytest.raises(ValueError, match="the model was fitted on"):
        SaliencyDisplay.from_estimator(clf, X[:2].reshape(2, 8, 8)[:, :, :4].repeat(2, 1)
                                       .reshape(2, 16, 4))


def test_saliency_refuses_bad_x_with_the_error_predict_gives(digits_model, digits):
    X, _ = digits
    beyond_float32 = X[:2].copy()
    beyond_float32[1, 5] = 1e39
    for bad in (X[0], X[0].reshape(8, 8), beyond_float32):
        with pytest.raises(ValueError) as predicted:
            digits_model.predict(bad)
        with pytest.raises(ValueError) as explained:
            SaliencyDisplay.from_estimator(digits_model, bad)
        assert str(explained.value) == str(predicted.value)


def test_training_history_of_a_fit_with_no_finished_epoch_says_so(digits_model):
    import copy
    interrupted = copy.deepcopy(digits_model)
    interrupted.loss_curve_ = []
    with pytest.raises(ValueError, match="no training history to show: no epoch"):
        TrainingHistoryDisplay.from_estimator(interrupted)


def test_saliency_of_a_network_without_conv_layers_has_no_grad_cam_and_says_so(digits):
    X, y = digits
    mlp = _fit(ConvNetClassifier((), (8,), max_iter=1, random_state=0), X, y)
    display = SaliencyDisplay.from_estimator(mlp, X[:2])
    assert display.gradcam_ is None and np.isfinite(display.saliency_).all()
    with pytest.raises(ValueError, match="layer=0 cannot be shown: the network has no conv"):
        SaliencyDisplay.from_estimator(mlp, X[:2], layer=0)
    with pytest.raises(TypeError, match="layer='last' must be an int"):
        SaliencyDisplay.from_estimator(mlp, X[:2], layer="last")


def test_saliency_display_draws_three_tiles_per_image_with_their_colour_limits(
        digits_model, digits):
    display = SaliencyDisplay.from_estimator(digits_model, digits[0][:3])
    assert display.axes_.shape == (3, 3)
    assert display.saliency_.shape == display.gradcam_.shape == (3, 8, 8)
    for i in range(3):
        assert display.image_tiles_[i].get_array().shape == (8, 8)
        assert_allclose(display.saliency_tiles_[i].get_clim(), (0, display.saliency_[i].max()))
        assert display.gradcam_tiles_[i].get_clim() == (0, 1)
        assert display.gradcam_tiles_[i].get_array().shape == (8, 8)
    assert display.gradcam_.min() >= 0 and display.gradcam_.max() == 1


def _corner_data(n, rng, h=12, w=16):
    """Noise with a bright 3x3 blob in one corner (a pixel of jitter); the class is the corner.

    0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right. The images are not
    square, so a map with height and width swapped would be caught.
    """
    X = rng.uniform(0, 0.3, size=(n, h, w))
    y = np.arange(n) % 4
    for i in range(n):
        r, c = rng.randint(0, 2, size=2)
        r = r if y[i] < 2 else h - 3 - r
        c = c if y[i] % 2 == 0 else w - 3 - c
        X[i, r:r + 3, c:c + 3] = 1.0
    return X, y


@pytest.fixture(scope="module")
def corner_model():
    """A model that classifies by the corner of a bright blob, and held-out images it gets right.

    One class per corner: with two classes only the difference of the logits is
    learned, and the logit of one class alone need not point at its evidence.
    """
    rng = np.random.RandomState(0)
    clf = _fit(ConvNetClassifier((6, 12), (16,), max_iter=15, learning_rate_init=3e-3,
                                 random_state=0), *_corner_data(320, rng))
    X_test, y_test = _corner_data(12, rng)
    assert clf.score(X_test, y_test) == 1.0
    return clf, X_test, y_test


def _corner_mass(saliency, y):
    """Per image, the share of the saliency in the quarter of the image that decides its class."""
    h, w = saliency.shape[1:]
    inside = np.zeros_like(saliency, dtype=bool)
    for i, corner in enumerate(y):
        rows = slice(0, h // 2) if corner < 2 else slice(h // 2, None)
        cols = slice(0, w // 2) if corner % 2 == 0 else slice(w // 2, None)
        inside[i, rows, cols] = True
    return (saliency * inside).sum(axis=(1, 2)) / saliency.sum(axis=(1, 2))


def test_gradcam_of_a_model_looking_at_corners_peaks_in_the_corner_of_its_target(corner_model):
    clf, X_test, y_test = corner_model
    cam = SaliencyDisplay.from_estimator(clf, X_test, target=y_test).gradcam_
    assert cam.shape == (12, 12, 16)
    rows, cols = np.unravel_index(cam.reshape(12, -1).argmax(axis=1), (12, 16))
    assert_array_equal((rows >= 6) * 2 + (cols >= 8), y_test)


def test_integrated_gradients_put_most_of_the_mass_on_the_deciding_quarter(corner_model):
    # the model's logits depend on the background noise too, so the plain gradient
    # spreads over it (about a third of the mass in the deciding quarter)
    clf, X_test, y_test = corner_model
    plain = _corner_mass(SaliencyDisplay.from_estimator(clf, X_test, target=y_test).saliency_,
                         y_test)
    display = SaliencyDisplay.from_estimator(clf, X_test, target=y_test,
                                             method="integrated_gradients")
    mass = _corner_mass(display.saliency_, y_test)
    assert mass.min() > 0.5 and plain.max() < 0.5, (mass, plain)


def test_smoothgrad_puts_more_of_the_mass_on_the_deciding_quarter_than_the_gradient(
        corner_model):
    # SmoothGrad averages the gradient's pixel-to-pixel jumps away, but keeps the model's
    # real sensitivity to the noise: on this task it moves the deciding quarter's share
    # from about 0.34 to about 0.43, short of a majority (see SaliencyDisplay's notes)
    clf, X_test, y_test = corner_model
    plain = _corner_mass(SaliencyDisplay.from_estimator(clf, X_test, target=y_test).saliency_,
                         y_test)
    display = SaliencyDisplay.from_estimator(clf, X_test, target=y_test, method="smoothgrad",
                                             random_state=0)
    mass = _corner_mass(display.saliency_, y_test)
    assert mass.mean() > plain.mean() + 0.05 and (mass > plain).mean() >= 0.75, (mass, plain)


@pytest.fixture(scope="module")
def corner_model_without_dense_head():
    """The corner task for a fully convolutional net with global max pooling: each
    class's score is the largest response of its map, which the zero padding
    lets tell the corners apart, so nothing but the blob decides it."""
    rng = np.random.RandomState(0)
    clf = _fit(ConvNetClassifier((8, 16), (), global_pool="max", max_iter=30,
                                 learning_rate_init=3e-3, random_state=0),
               *_corner_data(320, rng))
    X_test, y_test = _corner_data(12, rng)
    assert clf.score(X_test, y_test) == 1.0
    return clf, X_test, y_test


@pytest.mark.parametrize("method", ["smoothgrad", "integrated_gradients"])
def test_saliency_puts_most_of_the_mass_on_the_blob_where_only_the_blob_decides(
        corner_model_without_dense_head, method):
    # where the model reads the background too (the dense head above), SmoothGrad
    # shows that; where only the blob decides, both methods point at it
    clf, X_test, y_test = corner_model_without_dense_head
    display = SaliencyDisplay.from_estimator(clf, X_test, target=y_test, method=method,
                                             **({"random_state": 0} if method == "smoothgrad"
                                                else {}))
    mass = _corner_mass(display.saliency_, y_test)
    assert mass.min() > 0.5, mass


def test_gradcam_weights_the_block_maps_by_the_mean_gradient_of_the_score_wrt_them(
        digits):
    """Grad-CAM by its definition, with the gradient by finite differences: the maps A are
    the last block's before pooling (after batch norm and tanh); the score is a function of
    A through the pooling and the layers after the block."""
    clf = _fit(ConvNetClassifier((3, 4), (8,), batch_norm=True, activation="tanh",
                                 dtype="float64", max_iter=2, random_state=0), *digits)
    net = clf._network
    assert [type(layer).__name__ for layer in net.layers[4:9]] == [
        "Conv2D", "BatchNorm2d", "MaxPool2D", "Activation", "Flatten"]
    X = digits[0][:2] + np.random.RandomState(0).uniform(0, 0.1, (2, 64))
    display = SaliencyDisplay.from_estimator(clf, X, target=7)
    for i in range(2):
        a = X[i].reshape(1, 1, 8, 8)
        for layer in net.layers[:6]:
            a = layer.forward_fast(a)
        a = np.tanh(a)

        def score():
            z = net.layers[6].forward_fast(a.copy())  # the pooling; tanh is already in A
            for layer in net.layers[8:]:
                z = layer.forward_fast(z)
            return z[0, 7]

        weights = numerical_gradient(score, a).mean(axis=(2, 3))
        cam = np.maximum(np.einsum("nk,nkhw->nhw", weights, a), 0)
        cam = zoom(cam, (1, 2, 2), order=1, mode="nearest", grid_mode=True)[0]
        assert_allclose(display.gradcam_[i], cam / cam.max(), atol=1e-7)


# ---------------------------------------------------------------------- axes, pipelines, regressors

def test_a_given_axes_is_split_into_the_tiles_in_its_place(digits_model):
    fig, (left, right) = plt.subplots(1, 2)
    display = FilterDisplay.from_estimator(digits_model, ax=right)
    assert display.bounding_ax_ is right and display.figure_ is fig
    assert not right.axison
    assert display.axes_[0, 0].figure.get_suptitle().startswith("conv layer 0")
    fig.canvas.draw()
    # the tiles take the right Axes' slot of the grid: right of the left Axes, inside the figure
    for ax in display.axes_.flat:
        tile = ax.get_window_extent()
        assert left.get_window_extent().x1 < tile.x0 and tile.x1 <= fig.bbox.x1


def test_the_figure_of_axes_given_is_found_without_matplotlib_3_10s_get_figure_root(
        digits_model, monkeypatch):
    # get_figure(root=True) is matplotlib 3.10's; the extras ask for matplotlib>=3.7
    fig = plt.figure()
    inner = fig.subfigures(1, 2)[1].subplots(1, 2)
    for ax in inner:  # the Axes given refuse it, as matplotlib 3.9's do

        def get_figure(root=False, ax=ax):
            if root:
                raise TypeError("get_figure() got an unexpected keyword argument 'root'")
            return ax.figure

        monkeypatch.setattr(ax, "get_figure", get_figure)
    assert FilterDisplay.from_estimator(digits_model, ax=inner[0]).figure_ is fig
    assert TrainingHistoryDisplay([1.0, 0.5], [0.5, 0.6]).plot(ax=inner).figure_ is fig


def test_an_array_of_axes_gets_one_tile_each_and_the_wrong_count_is_refused(digits_model):
    _, axes = plt.subplots(2, 2)
    display = FilterDisplay.from_estimator(digits_model, ax=axes)
    assert display.axes_[1, 1] is axes[1, 1] and display.bounding_ax_ is None
    _, axes = plt.subplots(1, 3)
    with pytest.raises(ValueError, match=r"ax holds 3 Axes but FilterDisplay draws 2 x 2"):
        FilterDisplay.from_estimator(digits_model, ax=axes)


def test_an_axes_outside_a_grid_is_refused_saying_what_to_pass(digits_model):
    ax = plt.figure().add_axes([0.1, 0.1, 0.5, 0.5])
    with pytest.raises(ValueError, match=r"ax is an Axes placed outside a grid .* "
                                         r"FilterDisplay splits .* into its 2 x 2 tiles"):
        FilterDisplay.from_estimator(digits_model, ax=ax)


def test_a_pipeline_ending_in_the_network_is_inspected_on_transformed_images(digits):
    X, y = digits
    pipe = _fit(make_pipeline(FunctionTransformer(lambda X: X * 2.0),
                              ConvNetClassifier((3,), (8,), max_iter=1, random_state=0)), X, y)
    display = SaliencyDisplay.from_estimator(pipe, X[:2])
    assert_allclose(display.images_[..., 0], X[:2].reshape(2, 8, 8) * 2.0)
    assert FeatureMapDisplay.from_estimator(pipe, X[0]).feature_maps_.shape == (3, 4, 4)
    assert_array_equal(FilterDisplay.from_estimator(pipe).weights_, pipe[-1].coefs_[0])


def test_feature_maps_of_a_dataframe_row_keep_its_column_names(digits):
    pd = pytest.importorskip("pandas")
    from sklearn.compose import ColumnTransformer

    X, y = digits
    X = pd.DataFrame(X, columns=[f"pixel{i}" for i in range(64)])
    pipe = _fit(make_pipeline(ColumnTransformer([("all", "passthrough", list(X.columns))]),
                              ConvNetClassifier((3,), (8,), input_shape=(8, 8, 1), max_iter=1,
                                                random_state=0)), X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "X does not have valid feature names"
        for row in (X.iloc[0], X.iloc[[0]]):
            maps = FeatureMapDisplay.from_estimator(pipe, row).feature_maps_
            assert_array_equal(maps, FeatureMapDisplay.from_estimator(
                pipe[-1], X.to_numpy()[0]).feature_maps_)
    with pytest.raises(ValueError, match=r"x must be one image .* got an array of shape "
                                         r"\(2, 64\)"):
        FeatureMapDisplay.from_estimator(pipe, X.iloc[:2])


class _TinyRegressor(RegressorMixin, BaseEstimator):
    """Anything with a fitted ``_network`` and ``input_shape_``, as ConvNetRegressor will be."""

    def fit(self, X=None, y=None):
        self.input_shape_ = (6, 5, 2)
        self._network = Sequential([Conv2D(3, 3), MaxPool2D(2), Activation("tanh"), Flatten(),
                                    Dense(2)], (2, 6, 5), "float64")
        self._network.init_params(np.random.RandomState(0))
        return self


def test_a_regressor_output_is_explained_by_its_index():
    reg = _TinyRegressor().fit()
    X = np.random.RandomState(1).standard_normal((3, 60))
    display = SaliencyDisplay.from_estimator(reg, X, target=1)
    assert_array_equal(display.target_, [1, 1, 1])
    x = X[0].copy()
    net = reg._network

    def output():
        return float(net.forward_fast(
            x.reshape(1, 6, 5, 2).transpose(0, 3, 1, 2).copy())[0, 1])

    assert_allclose(display.input_gradient_[0], numerical_gradient(output, x).reshape(6, 5, 2),
                    rtol=1e-6, atol=1e-9)
    assert_array_equal(SaliencyDisplay.from_estimator(reg, X).target_, [0, 0, 0])
    labelled = SaliencyDisplay.from_estimator(reg, X[:1], [2.5], target=1)
    assert labelled.axes_[0, 0].get_ylabel() == "explains output 1 (true 2.5)"
    with pytest.raises(ValueError, match=r"target=2 must be an output index from 0 to 1"):
        SaliencyDisplay.from_estimator(reg, X, target=2)
    for wrong_count in ([], [0, 1], [[0], [1], [0]]):
        with pytest.raises(ValueError, match=r"must be an output index .* \(or one per image, "
                                             r"3 of them\)"):
            SaliencyDisplay.from_estimator(reg, X, target=wrong_count)
    # a multi-output regressor's rows of targets, whole: each image shows its
    # explained output's
    Y = np.array([[0.5, 2.5], [1.5, -3.0], [7.0, 8.0]])
    display = SaliencyDisplay.from_estimator(reg, X, Y, target=[1, 0, 1])
    assert [a.get_ylabel() for a in display.axes_[:, 0]] == [
        "explains output 1 (true 2.5)", "explains output 0 (true 1.5)",
        "explains output 1 (true 8)"]
    with pytest.raises(ValueError, match=r"so y of shape \(3,\) or \(3, 2\); got \(3, 3\)"):
        SaliencyDisplay.from_estimator(reg, X, np.zeros((3, 3)))


def test_a_multilabel_indicator_row_shows_the_explained_labels_truth():
    rng = np.random.RandomState(0)
    X = rng.uniform(size=(40, 8, 8))
    Y = (rng.uniform(size=(40, 3)) > 0.5).astype(int)
    clf = _fit(ConvNetClassifier((2,), (4,), max_iter=2, random_state=0), X, Y)
    display = SaliencyDisplay.from_estimator(clf, X[:3], Y[:3], target=2)
    assert [a.get_ylabel() for a in display.axes_[:, 0]] == [
        f"explains 2 (true {Y[i, 2]})" for i in range(3)]


# ---------------------------------------------------------------------- series


@pytest.fixture(scope="module")
def bump_series():
    """Series whose class is whether a bump sits somewhere in channel 0, and an FCN
    (global average pooling, no hidden layer) that learned it; the bumps' starts."""
    from skconv.architectures import fcn

    rng = np.random.RandomState(0)
    n, length = 200, 60
    X = 0.3 * rng.randn(n, length, 2).astype(np.float32)
    y = np.arange(n) % 2
    start = rng.randint(5, 48, n)
    for i in np.flatnonzero(y):
        X[i, start[i]:start[i] + 6, 0] += 2.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = ConvNetClassifier(**fcn(8), input_shape=(length, 2), max_iter=30, batch_size=32,
                                learning_rate_init=0.01, random_state=0).fit(X, y)
    assert clf.score(X, y) > 0.95
    return clf, X, y, start


@pytest.mark.parametrize("method", ["gradient", "integrated_gradients"])
def test_saliency_and_cam_of_series_sit_on_the_bump_that_decides(bump_series, method):
    clf, X, y, start = bump_series
    rows = np.flatnonzero(y)[:6]
    display = SaliencyDisplay.from_estimator(clf, X[rows], y[rows], method=method)
    assert display.series_
    assert display.images_.shape == (6, 60, 2) and display.attributions_.shape == (6, 60, 2)
    assert display.saliency_.shape == display.gradcam_.shape == (6, 60)
    for k, i in enumerate(rows):
        near = np.zeros(60, dtype=bool)
        near[max(start[i] - 3, 0):start[i] + 9] = True  # the bump and 3 steps around it
        # 12 of 60 steps hold most of the class activation map and of the saliency
        assert display.gradcam_[k][near].sum() > 0.5 * display.gradcam_[k].sum()
        assert display.saliency_[k][near].sum() > 0.3 * display.saliency_[k].sum()
        centre = np.average(np.arange(60), weights=display.gradcam_[k])
        assert near[int(round(centre))]
    # drawn over time: one line per channel, the steps coloured by the CAM
    assert len(display.image_tiles_[0]) == 2 and len(display.saliency_tiles_[0]) == 2
    assert_allclose(display.gradcam_tiles_[0].get_array(), np.repeat(display.gradcam_[0], 2))
    assert display.axes_.shape == (6, 2)


def test_saliency_of_a_univariate_series_from_flat_rows(bump_series):
    clf, X, y, _ = bump_series
    from skconv.architectures import fcn

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        uni = ConvNetClassifier(**fcn(4), input_shape=(60, 1), max_iter=2,
                                random_state=0).fit(X[:, :, 0], y)
    display = SaliencyDisplay.from_estimator(uni, X[:3, :, 0])
    assert display.images_.shape == (3, 60, 1) and display.saliency_.shape == (3, 60)
    with pytest.raises(ValueError, match=r"series of length 60 with 1 channel"):
        SaliencyDisplay.from_estimator(uni, X[:3, :50, 0])


def test_filters_and_feature_maps_of_series_are_drawn_over_time(bump_series):
    clf = bump_series[0]
    filters = FilterDisplay.from_estimator(clf, 0)
    image = filters.tiles_[0, 0].get_array()
    assert image.shape == (8, 2 * 8)  # a row per filter, two channels of 8 steps
    assert_allclose(image[:, 8:], clf.coefs_[0][:, 1, 0])
    maps = FeatureMapDisplay.from_estimator(clf, bump_series[1][0], layer=1)
    assert maps.feature_maps_.shape == (16, 1, 60) and maps.tiles_[0].get_array().shape == (16, 60)
    with pytest.raises(ValueError, match=r"x must be one series of input_shape_=\(60, 2\)"):
        FeatureMapDisplay.from_estimator(clf, np.zeros(50), layer=1)
