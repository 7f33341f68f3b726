"""What a new user trips over: errors in image terms, warnings that say the fix
and point at the user's line, and docstring examples that run (issue 15)."""

import re
import warnings

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

from skconv import ConvNetClassifier, ConvNetRegressor

TINY = dict(conv_layers=(2,), hidden_layer_sizes=(4,), max_iter=1, random_state=0)
ESTIMATORS = [ConvNetClassifier, ConvNetRegressor]


def _fit_quiet(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y)


def _images(shape, n=10, seed=0):
    rng = np.random.RandomState(seed)
    return rng.uniform(size=(n,) + shape), np.arange(n) % 2


@pytest.fixture(scope="module", params=ESTIMATORS, ids=lambda e: e.__name__)
def fitted_28(request):
    """A model fitted on 28x28 gray images (3D X)."""
    return _fit_quiet(request.param(**TINY), *_images((28, 28)))


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X / 16, y


# ---------------------------------------------------------------- shape errors


@pytest.mark.parametrize("method", ["predict", "score"])
def test_one_image_without_batch_axis_names_the_fitted_shape_and_x_newaxis(fitted_28, method):
    image = np.zeros((28, 28))
    args = (image, [0] * 28) if method == "score" else (image,)
    with pytest.raises(ValueError, match=r"(?s)\(28, 28, 1\).*pass X\[np.newaxis\] to predict "
                                         r"one image"):
        getattr(fitted_28, method)(*args)
    # a 3D (28, 28, 1) image is read as 28 images of (28, 1, 1)
    with pytest.raises(ValueError, match=r"X holds images of shape \(28, 1, 1\); the model was "
                                         r"fitted on \(28, 28, 1\).*X\[np.newaxis\]"):
        getattr(fitted_28, method)(*((image[..., None],) + args[1:]))
    # a flattened image (1D) says so, and keeps scikit-learn's "Reshape your data"
    with pytest.raises(ValueError, match=r"X is 1D.*784 values.*Reshape your data: pass "
                                         r"X\[np.newaxis\]"):
        getattr(fitted_28, method)(*((image.ravel(),) + args[1:]))


def test_images_of_another_size_name_both_shapes(fitted_28):
    with pytest.raises(ValueError, match=r"^X holds images of shape \(32, 32, 1\); the model "
                                         r"was fitted on \(28, 28, 1\)"):
        fitted_28.predict(np.zeros((5, 32, 32)))


@pytest.mark.parametrize("shapes", [[(6, 6), (7, 6)], [(6, 6), (6, 7)], [(6, 6, 3), (6, 6, 4)]])
def test_a_list_of_images_of_unequal_size_names_their_shapes_not_series_lengths(shapes):
    # a list of decoded photos of several sizes: it was told of rows of unequal
    # length (or numpy's "inhomogeneous shape"), and to pad series along time
    rng = np.random.RandomState(0)
    X = [rng.uniform(size=shapes[0]) for _ in range(3)] + [rng.uniform(size=shapes[1])]
    shown = re.escape(f"(sample shapes seen: {min(shapes)}, {max(shapes)}; sample 0 is "
                      f"{shapes[0]}, sample 3 is {shapes[1]})")
    for fit_or_predict in (lambda X: ConvNetClassifier(**TINY).fit(X, [0, 1, 0, 1]),
                           _fit_quiet(ConvNetClassifier(**TINY), *_images(shapes[0])).predict):
        with pytest.raises(ValueError, match=rf"^X holds images of unequal shape {shown}: .*"
                                             r"Resize, crop or pad them to one shape"):
            fit_or_predict(X)


@pytest.mark.parametrize("shape, what", [((10, 6, 0), r"images of shape \(6, 0, 1\)"),
                                         ((10, 6, 6, 0), r"images of shape \(6, 6, 0\)")])
def test_images_of_no_values_are_named_by_their_shape_not_as_rows_of_0_features(shape, what):
    # they were told "Found array with 0 feature(s) (shape=(10, 0))", X flattened
    X = np.zeros(shape)
    with pytest.raises(ValueError, match=rf"^X of shape {re.escape(str(shape))} holds {what}, "
                                         r"which hold no values"):
        ConvNetClassifier(**TINY).fit(X, np.arange(10) % 2)


@pytest.mark.parametrize("missing", [None, np.nan])
@pytest.mark.parametrize("container", ["list", "pandas", "pandas table"])
def test_a_missing_image_among_images_is_named_by_its_sample(missing, container):
    # a column of images with a hole (a merge's NaN, a None): numpy said
    # "setting an array element with a sequence", or the images were told to
    # be series of unequal length
    images, y = _images((5, 5), n=6)
    for where, first in ((4, 0), (0, 1)):
        X = list(images[:where]) + [missing] + list(images[where + 1:])
        if container == "pandas":
            X = pytest.importorskip("pandas").Series(X)
        elif container == "pandas table":  # df[["image"]]
            X = pytest.importorskip("pandas").DataFrame({"image": X})
        with pytest.raises(ValueError, match=rf"^sample {where} of X is {missing}, not an array "
                                             rf"of values as sample {first} is"):
            ConvNetClassifier(**TINY).fit(X, y)


def test_a_file_or_group_of_arrays_given_as_x_names_its_arrays(tmp_path, fitted_28):
    # an .npz file, an HDF5 file or a dict instead of the array in it: numpy
    # read the names, "could not convert string to float: 'images'"
    images, y = _images((28, 28))
    np.savez(tmp_path / "data.npz", images=images, labels=y)
    with np.load(tmp_path / "data.npz") as npz:
        for X in (npz, {"images": images, "labels": y}):
            with pytest.raises(ValueError, match=r"^X is a \w+ of 2 named entries \('images', "
                                                 r"'labels'\), not an array of samples: pass "
                                                 r"the array itself, e.g. X\['images'\]"):
                ConvNetClassifier(**TINY).fit(X, y)
            with pytest.raises(ValueError, match=r"^X is a \w+ of 2 named entries"):
                fitted_28.predict(X)


@pytest.mark.parametrize("shape, input_shape, seen", [((28, 28, 3), (28, 28, 1), "(28, 28, 3)"),
                                                      ((28, 28), (28, 28, 3), "(28, 28, 1)")])
def test_an_input_shape_unlike_the_images_of_x_names_their_shape(shape, input_shape, seen):
    # RGB images against a grayscale input_shape were told only that 784 values
    # per sample are not n_features=2352
    X, y = _images(shape, n=4)
    with pytest.raises(ValueError, match=rf"^input_shape={re.escape(str(input_shape))} does not "
                                         rf"match the images of X, of shape {re.escape(seen)}"):
        ConvNetClassifier(**TINY, input_shape=input_shape).fit(X, y)
    # flat rows have no shape of their own: their count of values is named
    with pytest.raises(ValueError, match=r"values per sample but X has n_features="):
        ConvNetClassifier(**TINY, input_shape=input_shape).fit(X.reshape(4, -1)[:, :-1], y)


def test_a_column_of_pil_images_is_read_as_their_array():
    # a list of them was; a pandas column (or an object array) of them was
    # refused with "float() argument must be ... not 'Image'"
    Image = pytest.importorskip("PIL.Image")
    pd = pytest.importorskip("pandas")
    X = np.random.RandomState(0).randint(0, 256, size=(6, 5, 5, 3)).astype(np.uint8)
    y = np.arange(6) % 2
    images = [Image.fromarray(x) for x in X]
    expected = _fit_quiet(ConvNetClassifier(**TINY, input_scale=255), X, y).predict_proba(X)
    for column in (pd.Series(images), pd.DataFrame({"image": images})):
        model = _fit_quiet(ConvNetClassifier(**TINY, input_scale=255), column, y)
        assert_array_equal(model.predict_proba(column), expected)
    with pytest.raises(ValueError, match=r"^sample 0 of X is None, not an array of values"):
        ConvNetClassifier(**TINY).fit(pd.Series([None] + images[1:]), y)
    with pytest.raises(ValueError, match=r"holds arrays in its cells \(one of shape \(5, 5, 3\) "
                                         r"in column 'image'\)"):
        ConvNetClassifier(**TINY).fit(pd.DataFrame({"image": images, "label": y}), y)


def test_sparse_x_beyond_float32_at_predict_is_named_as_dense_x_is():
    # validated as float64, it overflowed in the float32 network: NaN probabilities
    import scipy.sparse as sp

    X, y = _images((6, 6), n=20)
    model = _fit_quiet(ConvNetClassifier(**TINY), X, y)
    X[7, 2, 3] = 1e39
    for rows in (X.reshape(20, -1), sp.csr_matrix(X.reshape(20, -1))):
        with pytest.raises(ValueError, match=r"^row\(s\) 7 of X hold values beyond float32's"):
            model.predict_proba(rows)


def test_a_sparse_array_of_images_says_to_flatten_them():
    # scipy's n-D COO array: "Cannot convert. CSR must be 1D or 2D. Got 3D"
    sp = pytest.importorskip("scipy.sparse")
    X, y = _images((4, 4))
    try:
        images = sp.coo_array(X)
    except (AttributeError, TypeError, ValueError):
        pytest.skip("this scipy has no n-D sparse arrays")
    with pytest.raises(ValueError, match=r"^X is a sparse array of shape \(10, 4, 4\): sparse X "
                                         r"must be 2D.*X.reshape\(\(10, 16\)\)"):
        ConvNetClassifier(**TINY).fit(images, y)


def test_rows_of_another_length_keep_sklearns_phrase_and_add_the_image_shape(fitted_28):
    with pytest.raises(ValueError, match=r"X has 1024 features, but Conv\w+ is expecting 784 "
                                         r"features as input.*images of shape \(28, 28, 1\)"):
        fitted_28.predict(np.zeros((5, 1024)))


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_partial_fit_refuses_another_image_shape_in_image_terms(Estimator):
    X, y = _images((28, 28))
    kw = {"classes": [0, 1]} if Estimator is ConvNetClassifier else {}
    est = Estimator(**TINY).partial_fit(X, y, **kw)
    with pytest.raises(ValueError, match=r"images of shape \(32, 32, 1\); the model was fitted "
                                         r"on \(28, 28, 1\)"):
        est.partial_fit(np.zeros((4, 32, 32)), [0, 1, 0, 1])


def test_channels_first_images_at_predict_name_the_transpose(fitted_28):
    with pytest.raises(ValueError, match=r"channels-first.*X.transpose\(0, 2, 3, 1\)"):
        fitted_28.predict(np.zeros((5, 1, 28, 28)))


# ---------------------------------------------------------------- warnings in fit


@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_channels_first_x_warns_naming_the_transpose(Estimator, shape):
    X, y = _images(shape)
    with pytest.warns(UserWarning, match=r"looks channels-first.*X.transpose\(0, 2, 3, 1\)"):
        _fit_quiet(Estimator(**TINY), X, y)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize("shape", [(28, 28, 1), (28, 28, 3), (4, 28, 28)])
def test_channels_last_x_or_explicit_input_shape_does_not_warn(Estimator, shape):
    X, y = _images(shape)
    params = dict(TINY, input_shape=shape) if shape[0] == 4 else TINY
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", ConvergenceWarning)
        Estimator(**params).fit(X, y)


@pytest.mark.parametrize("Estimator", ESTIMATORS)
@pytest.mark.parametrize("dtype", [np.uint8, np.float32, "csr"])
def test_raw_pixel_values_warn_naming_the_range_and_the_scaling(Estimator, digits, dtype):
    import scipy.sparse as sp

    X, y = digits
    raw = np.round(X[:50] * 255)
    raw = sp.csr_matrix(raw) if dtype == "csr" else raw.astype(dtype)
    with pytest.warns(UserWarning, match=r"X ranges from 0 to 255 .*X / 255.*MinMaxScaler"):
        _fit_quiet(Estimator(**TINY), raw, y[:50])


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_scaled_or_standardized_x_does_not_warn_about_its_range(Estimator, digits):
    from sklearn.preprocessing import StandardScaler

    X, y = digits
    # standardized digits hold values of 40 in nearly constant columns: not raw input
    for scaled in (X[:50], StandardScaler().fit_transform(X[:50])):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            warnings.simplefilter("ignore", ConvergenceWarning)
            Estimator(**TINY).fit(scaled, y[:50])


def test_raw_pixels_scaled_as_the_warning_says_train_a_good_model(digits):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler

    X, y = digits
    raw = np.round(X * 255).astype(np.uint8)
    net = ConvNetClassifier(conv_layers=(16,), max_iter=20, random_state=0)
    scaled = make_pipeline(MinMaxScaler(), net)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        scaled.fit(raw[:1000], y[:1000])
    with pytest.warns(UserWarning, match="ranges from"):
        unscaled = _fit_quiet(clone(net), raw[:1000], y[:1000])
    score = scaled.score(raw[1000:], y[1000:])
    assert score > 0.9 and score > unscaled.score(raw[1000:], y[1000:]) + 0.05  # 0.918, 0.833


# ---------------------------------------------------------------- stacklevel


def _recorded(call):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    return caught


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_warnings_of_fit_and_partial_fit_point_at_the_callers_line(Estimator, digits):
    X, y = digits
    raw = X[:40].reshape(-1, 1, 8, 8) * 255  # channels-first and raw: two warnings
    caught = _recorded(lambda: Estimator(**dict(TINY, batch_size=100)).fit(raw, y[:40]))
    kw = {"classes": np.unique(y)} if Estimator is ConvNetClassifier else {}
    caught += _recorded(lambda: Estimator(**TINY).partial_fit(X[:40] * 255, y[:40], **kw))
    expected = ["channels-first", "ranges from", "clipped", "Maximum iterations"]
    if Estimator is ConvNetClassifier:
        caught += _recorded(lambda: Estimator(**TINY).fit(X[:40], y[:40, np.newaxis]))
        expected.append("column-vector y")
    messages = " | ".join(str(w.message) for w in caught)
    for phrase in expected:
        assert phrase in messages
    assert [w.filename for w in caught] == [__file__] * len(caught), messages


def test_divergence_warns_once_pointing_at_the_callers_line(digits):
    X, y = digits
    clf = ConvNetClassifier(conv_layers=(4,), solver="sgd", learning_rate_init=1e6,
                            max_iter=5, random_state=0)
    with np.errstate(all="ignore"):
        caught = _recorded(lambda: clf.fit(X[:300], y[:300]))
    diverged = [w for w in caught if "diverged" in str(w.message)]
    assert diverged and all(w.filename == __file__ for w in diverged)
    # the loss curve diagnosis does not repeat it
    assert not any("likely too large" in str(w.message) for w in caught)


# ---------------------------------------------------------------- learning rate too large


def _convergence_messages(est, X, y):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est.fit(X, y)
    return [str(w.message) for w in caught if w.category is ConvergenceWarning]


def test_adam_at_learning_rate_10_warns_naming_learning_rate_init(digits):
    X, y = digits
    clf = ConvNetClassifier(conv_layers=(8,), learning_rate_init=10, max_iter=5,
                            random_state=0)
    messages = _convergence_messages(clf, X[:600], y[:600])
    assert clf.score(X[600:], y[600:]) < 0.3  # chance level, as in the issue
    assert any("learning_rate_init=10 is likely too large for solver='adam'" in m
               and "the default is 0.001" in m for m in messages), messages


def test_default_learning_rate_gives_no_learning_rate_diagnosis(digits):
    X, y = digits
    messages = _convergence_messages(ConvNetClassifier(conv_layers=(8,), max_iter=5,
                                                       random_state=0), X[:600], y[:600])
    assert not any("learning_rate_init" in m for m in messages), messages


@pytest.mark.parametrize(
    "curve, constant, expected",
    [
        ([2.3, 2.4, 2.3], 2.3, "never fell below its first epoch's value"),
        ([3.3e8, 4993.0, 27.1], 2.3, "started at 3.3e\\+08, over 10 times .* no better"),
        ([2.2, 0.5, 0.3, 80.0], 2.3, "rose from 0.3 to 80"),
        ([2.2, 0.5, 0.3], 2.3, None),
        ([0.01, 0.001, 0.02], 2.3, None),  # fluctuating near zero: not an explosion
        ([900.0, 30.0, 1.0], 2.3, None),  # a bad start it recovered from
    ],
)
@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_loss_curve_diagnosis_on_worked_curves(Estimator, monkeypatch, curve, constant,
                                               expected):
    est = Estimator(learning_rate_init=0.5)
    est.loss_curve_, est.n_iter_ = list(curve), len(curve)
    monkeypatch.setattr(Estimator, "_constant_loss", lambda self, y, sw: constant)
    monkeypatch.setattr(Estimator, "_untrained_loss", lambda self, y, sw: None)
    caught = _recorded(lambda: est._diagnose_loss_curve(None, None))
    if expected is None:
        assert caught == []
    else:
        assert len(caught) == 1 and caught[0].category is ConvergenceWarning
        assert re.search(expected + ".*learning_rate_init=0.5", str(caught[0].message))


def test_a_regressors_loss_from_targets_far_from_zero_is_not_blamed_on_the_rate():
    # targets about 5 with a spread of 0.1: the loss starts where predicting 0
    # does and falls slowly; the steps are not too large, y wants scaling
    rng = np.random.RandomState(0)
    X, y = rng.rand(30, 8, 8), 5 + 0.1 * rng.randn(30)
    for rate in (1e-4, 1e-3, 1e-2):
        caught = _recorded(lambda: ConvNetRegressor(conv_layers=(4,), max_iter=5, random_state=0,
                                                    learning_rate_init=rate).fit(X, y))
        messages = [str(w.message) for w in caught]
        assert not any("likely too large" in m for m in messages), messages
        assert any("about what predicting 0 gives" in m and "Scale y" in m for m in messages)
    # two epochs whose loss rose by noise are not diagnosed
    est = ConvNetRegressor(learning_rate_init=0.5)
    est.loss_curve_, est.n_iter_, est.out_activation_ = [2.3, 2.4], 2, "identity"
    assert _recorded(lambda: est._diagnose_loss_curve(rng.randn(30), np.ones(30))) == []


@pytest.mark.parametrize("make_y, warned", [
    (lambda rng: 3e5 + 1e5 * rng.randn(60), True),  # prices: mean 3 spreads from 0
    (lambda rng: 1e6 * rng.rand(60), True),  # uniform on [0, 1e6]: mean 1.7 spreads from 0
    (lambda rng: 1e10 * (rng.rand(60) > 0.5), True),  # the loss does not move in float32
    (lambda rng: (rng.rand(60) > 0.5).astype(float), False),  # unit scale, a short fit
    (lambda rng: rng.rand(60), False),
])
def test_a_regressor_left_near_its_first_outputs_by_unscaled_targets_warns_to_scale_y(
        make_y, warned):
    # the fit ends no better than predicting y's mean, about where predicting 0
    # left it: a useless model, which said nothing (or blamed the rate) where
    # y's mean is not over 3 times its spread
    rng = np.random.RandomState(0)
    X, y = rng.rand(60, 8, 8), make_y(rng)
    reg = ConvNetRegressor(conv_layers=(4,), hidden_layer_sizes=(8,), max_iter=5,
                           random_state=0)
    messages = [str(w.message) for w in _recorded(lambda: reg.fit(X, y))]
    assert not any("likely too large" in m for m in messages), messages
    assert warned == any("about what predicting 0 gives" in m and "Scale y" in m
                         for m in messages), messages
    if warned:
        assert reg.score(X, y) < 0


def test_constant_loss_is_that_of_the_class_frequencies_or_the_mean():
    clf = ConvNetClassifier()
    clf.n_outputs_, clf.out_activation_ = 3, "softmax"
    y, sw = np.array([0, 0, 1, 2]), np.array([1.0, 1.0, 2.0, 0.0])
    # weighted frequencies 1/2, 1/2, 0
    assert clf._constant_loss(y, sw) == pytest.approx(np.log(2))
    clf.out_activation_ = "logistic"
    Y = np.array([[1, 0], [0, 0], [1, 1], [0, 1]], dtype=float)
    assert clf._constant_loss(Y, np.ones(4)) == pytest.approx(2 * np.log(2))
    Y = np.array([[0.0, 1.0], [2.0, 5.0]])
    reg = ConvNetRegressor()
    reg.out_activation_ = "identity"
    assert reg._constant_loss(Y, np.ones(2)) == pytest.approx(0.5 * (1 + 4) / 2)
    # Poisson: MLPRegressor's loss of predicting each target's mean (a target of
    # zeros has the mean 0 and no deviance from it)
    from sklearn.neural_network._base import poisson_loss
    reg.out_activation_ = "exp"
    Y = np.array([[0.0, 1.0, 0.0], [2.0, 5.0, 0.0], [1.0, 0.0, 0.0]])
    sw = np.array([1.0, 2.0, 0.5])
    mean = np.average(Y, axis=0, weights=sw)
    assert reg._constant_loss(Y, sw) == pytest.approx(
        poisson_loss(Y[:, :2], np.broadcast_to(mean[:2], (3, 2)), sample_weight=sw))
    assert reg._untrained_loss(Y, sw) is None


# ---------------------------------------------------------------- docstring examples


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_class_docstring_examples_run(Estimator):
    import doctest
    import io

    (test,) = doctest.DocTestFinder(recurse=False).find(Estimator, globs={})
    assert test.examples, "no Examples in the class docstring"
    out = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        runner.run(test, out=out.write)
    assert runner.failures == 0, out.getvalue()
    assert "Examples\n    --------" in Estimator.__doc__


@pytest.mark.parametrize("Estimator", ESTIMATORS)
def test_html_repr_renders_without_a_documentation_link(Estimator):
    # skconv has no hosted documentation: no "?" link rather than one into
    # scikit-learn's site (the docstring, with its Examples, is the reference)
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler
    from sklearn.utils import estimator_html_repr

    html = estimator_html_repr(make_pipeline(MinMaxScaler(), Estimator()))
    assert Estimator.__name__ in html and Estimator()._get_doc_link() == ""
    assert not re.search(r'href="[^"]*(skconv|ConvNet)', html)
