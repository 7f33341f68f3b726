"""Series in the estimators: ``input_shape=(length, channels)``.

A series is an image of one row whose width is time; these tests hold the
estimator to that mapping (the same network, the same bits), to the input
conventions and to errors in series terms. The kernels' own oracle tests are
in tests/test_ops_1d.py.
"""

import pickle
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.estimator_checks import parametrize_with_checks
from threadpoolctl import threadpool_limits

from skconv import ConvNetClassifier, ConvNetRegressor
from skconv.architectures import fcn, resnet1d

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _series(n=48, length=40, channels=2, seed=0):
    """Noisy series whose class is the sign of a bump placed in the first half."""
    rng = np.random.RandomState(seed)
    X = 0.3 * rng.randn(n, length, channels).astype(np.float32)
    y = np.arange(n) % 2
    X[:, 5:12, 0] += np.where(y == 1, 1.0, -1.0)[:, None]
    return X, y


SMALL = dict(conv_layers=({"filters": 4, "kernel_size": 5}, {"filters": 6, "kernel_size": 4,
                                                             "stride": 2}),
             batch_norm=True, hidden_layer_sizes=(), global_pool="avg", max_iter=3,
             random_state=0)


def test_series_are_images_of_one_row_bit_for_bit():
    # kernel 5 and 4 along time, pooling 2: the same network as 1 x length images
    # with (1, k) kernels, hence the same bits
    X, y = _series()
    series = ConvNetClassifier(**SMALL, input_shape=(40, 2)).fit(X, y)
    image = {**SMALL, "conv_layers": ({"filters": 4, "kernel_size": (1, 5)},
                                      {"filters": 6, "kernel_size": (1, 4), "stride": (1, 2)}),
             "pool_size": (1, 2)}
    images = ConvNetClassifier(**image, input_shape=(1, 40, 2)).fit(X.reshape(48, 1, 40, 2), y)
    assert series.input_shape_ == (40, 2)
    assert series.coefs_[0].shape == (4, 2, 1, 5)
    assert_array_equal(series._network.params, images._network.params)
    assert_array_equal(series.predict_proba(X), images.predict_proba(X.reshape(48, 1, 40, 2)))


def test_every_input_form_of_a_series_gives_the_same_predictions():
    X, y = _series(channels=1)
    clf = ConvNetClassifier(**SMALL, input_shape=(40, 1)).fit(X[:, :, 0], y)
    expected = clf.predict_proba(X[:, :, 0])
    assert_array_equal(clf.predict_proba(X), expected)
    X2, y2 = _series(channels=3)
    clf = ConvNetClassifier(**SMALL, input_shape=(40, 3)).fit(X2, y2)
    assert_array_equal(clf.predict_proba(X2.reshape(48, -1)), clf.predict_proba(X2))
    # each row alone gives the bits of the batch
    for i in (0, 7, 47):
        assert_array_equal(clf.predict_proba(X2[i:i + 1]), clf.predict_proba(X2)[i:i + 1])


def test_length_none_takes_the_length_of_the_series_of_x():
    X, y = _series(length=33, channels=2)
    clf = ConvNetClassifier(**SMALL, input_shape=(None, 2)).fit(X.reshape(48, -1), y)
    assert clf.input_shape_ == (33, 2)
    assert clf.get_params()["input_shape"] == (None, 2)  # the parameter stays as given
    with pytest.raises(ValueError, match=r"n_features=65 values are not series of 2 channels"):
        clone(clf).fit(np.zeros((4, 65)), [0, 1, 0, 1])


def test_same_padding_of_an_even_kernel_puts_the_extra_step_at_the_end():
    # kernel 4 at stride 1: PyTorch's and Keras' 'same' pads 1 step before and 2 after
    rng = np.random.RandomState(0)
    X = rng.randn(6, 10).astype(np.float64)
    clf = ConvNetRegressor(conv_layers=({"filters": 1, "kernel_size": 4, "pool": None},),
                           hidden_layer_sizes=(), global_pool="avg", activation="identity",
                           input_shape=(10, 1), dtype="float64", max_iter=1,
                           random_state=0).fit(X, rng.randn(6))
    w = clf.coefs_[0][0, 0, 0]
    b = clf.intercepts_[0][0]
    padded = np.pad(X, ((0, 0), (1, 2)))
    expected = np.stack([padded[:, t:t + 4] @ w for t in range(10)], axis=1) + b
    conv = clf._network.forward_fast(X[:, None, None, :], stop="block1.conv")
    assert_allclose(conv[:, 0, 0], expected, rtol=1e-12)


def test_fcn_and_resnet1d_learn_a_bump_on_series():
    X, y = _series(n=64, length=48)
    for arch in (fcn(8), resnet1d(4)):
        clf = ConvNetClassifier(**arch, input_shape=(48, 2), max_iter=15, batch_size=16,
                                learning_rate_init=0.01, random_state=0).fit(X, y)
        assert clf.score(X, y) >= 0.9, arch
    assert [c.shape[-1] for c in clf.coefs_[:3]] == [8, 5, 3]


def test_architectures_for_series_follow_wang_et_al():
    params = fcn()
    assert [b["filters"] for b in params["conv_layers"]] == [128, 256, 128]
    assert [b["kernel_size"] for b in params["conv_layers"]] == [8, 5, 3]
    assert params["global_pool"] == "avg" and params["batch_norm"]
    blocks = resnet1d()["conv_layers"]
    assert [[c["filters"] for c in b["residual"]] for b in blocks] == [[64] * 3, [128] * 3,
                                                                      [128] * 3]
    with pytest.raises(ValueError, match="width=0 must be a positive int"):
        fcn(0)


@pytest.mark.parametrize("key, value, match", [
    ("kernel_size", (3, 3), r"kernel_size=\(3, 3\) in conv block 1 must be an int for series"),
    ("stride", (1, 2), r"stride=\(1, 2\) in conv block 1 must be an int for series"),
    # not 'an int or a pair of them': a pair is refused too
    ("kernel_size", [3], r"kernel_size=\[3\] in conv block 1 must be an int for series"),
    ("pool_size", (2,), r"pool_size=\(2,\) in conv block 1 must be an int for series"),
    ("dilation", 0, r"dilation=0 in conv block 1 must be an int >= 1 \(time steps\)$"),
])
def test_pairs_for_series_are_refused_naming_time_steps(key, value, match):
    X, y = _series()
    clf = ConvNetClassifier(conv_layers=({"filters": 2, key: value},), input_shape=(40, 2))
    with pytest.raises(ValueError, match=match):
        clf.fit(X, y)


def test_a_kernel_longer_than_the_series_is_refused_naming_lengths():
    X, y = _series(length=6)
    with pytest.raises(ValueError, match=r"kernel_size=8 \(dilation=1\) in conv block 1 is "
                                         r"longer than the series it reads, of length 6: .*"
                                         r"\(X holds series of length 6, n_features=12 in 2 "
                                         r"channels\)"):
        ConvNetClassifier(**fcn(2), input_shape=(6, 2)).fit(X, y)
    # deeper in: the series the conv reads is shorter than the input
    clf = ConvNetClassifier(conv_layers=({"filters": 2, "kernel_size": 3, "pool_size": 4},
                                         {"filters": 2, "kernel_size": 11}),
                            input_shape=(40, 2))
    with pytest.raises(ValueError, match=r"kernel_size=11 .* in conv block 2 is longer than "
                                         r"the series it reads, of length 10"):
        clf.fit(*_series())


def test_series_of_unequal_length_name_the_lengths_and_the_fix():
    X = [np.zeros(30), np.zeros(30), np.zeros(28)]
    with pytest.raises(ValueError, match=r"series of unequal length \(lengths seen: 28, 30; "
                                         r"sample 0 has 30, sample 2 has 28\).*[Pp]ad"):
        ConvNetClassifier(input_shape=(30, 1)).fit(X, [0, 1, 0])


def test_nan_in_a_series_names_the_series_the_step_and_the_channel():
    X, y = _series()
    X[5, 17, 1] = np.nan
    with pytest.raises(ValueError, match=r"NaN in series 5 at time step 17, channel 1 "
                                         r"\(1 of 48 series"):
        ConvNetClassifier(**SMALL, input_shape=(40, 2)).fit(X, y)
    clf = ConvNetClassifier(**SMALL, input_shape=(40, 2)).fit(*_series())
    with pytest.raises(ValueError, match=r"NaN in series 5 at time step 17, channel 1"):
        clf.predict(X.reshape(48, -1))


def test_nan_padding_at_the_end_of_a_series_says_to_pad_with_zeros():
    # tslearn's to_time_series_dataset pads series of unequal length with NaN
    X, y = _series()
    X[7, 31:] = np.nan
    with pytest.raises(ValueError, match=r"NaN in series 7 at time step 31, channel 0 .*"
                                         r"Series 7 is NaN from time step 31 to its end.*"
                                         r"pad with zeros instead \(np.nan_to_num\(X\)\)"):
        ConvNetClassifier(**SMALL, input_shape=(None, 2)).fit(X, y)
    X[7, 31:, 0] = 0.0  # one channel goes on: a gap, not padding
    with pytest.raises(ValueError, match=r"channel 1 .*interpolate along time"):
        ConvNetClassifier(**SMALL, input_shape=(None, 2)).fit(X, y)


def test_infinity_in_a_series_names_the_series_the_step_and_the_channel(tmp_path):
    # as a NaN is named; scikit-learn's "Input X contains infinity or a value
    # too large for dtype('float64')" said neither where nor in series terms
    X, y = _series()
    X[5, 17, 1] = -np.inf
    np.save(tmp_path / "x.npy", X)
    clf = ConvNetClassifier(**SMALL, input_shape=(40, 2)).fit(*_series())
    calls = (lambda: clone(clf).fit(X, y), lambda: clone(clf).fit(X.astype(np.float32), y),
             lambda: clone(clf).fit(np.load(tmp_path / "x.npy", mmap_mode="r"), y),
             lambda: clf.predict(X), lambda: clf.predict(X.reshape(48, -1)))
    for call in calls:
        with pytest.raises(ValueError, match=r"X holds infinity in series 5 at time step 17, "
                                             r"channel 1 \(1 of 48 series hold infinity\): "
                                             r"a network cannot train on or predict infinite"):
            call()
    X[9, 3, 0] = np.nan  # the first series holding either is named, and both are counted
    with pytest.raises(ValueError, match=r"infinity in series 5 .* \(2 of 48 series hold NaN "
                                         r"or infinity\)"):
        clone(clf).fit(X, y)


def test_nan_in_series_is_named_whatever_holds_them(tmp_path):
    # float16, a list, an object array of series (a pandas column of arrays),
    # and a memory map read in blocks (its pages let go, so the check does not
    # load it): the same series, step and channel, counted over every block
    X, y = _series()
    X[5, 17, 1] = np.nan
    clf = ConvNetClassifier(**SMALL, input_shape=(40, 2))
    for given in (X.astype(np.float16), list(X.reshape(48, -1))):
        with pytest.raises(ValueError, match=r"NaN in series 5 at time step 17, channel 1 "
                                             r"\(1 of 48 series"):
            clf.fit(given, y)
    n, length = 300, 4000  # 9.6 MB of float64: two blocks
    mapped = np.lib.format.open_memmap(tmp_path / "X.npy", mode="w+", dtype=np.float64,
                                       shape=(n, length))
    mapped[:] = 0.0
    mapped[3, 123] = mapped[290, 7] = np.nan
    with pytest.raises(ValueError, match=r"NaN in series 3 at time step 123 \(2 of 300 series"):
        ConvNetClassifier(**SMALL, input_shape=(length, 1)).fit(mapped, np.arange(n) % 2)


def test_nan_in_series_held_by_a_dataframe_or_a_list_with_none_is_named_in_series_terms():
    # pd.DataFrame(list of unequal lists) pads with NaN, a list may hold None:
    # numpy meets them only in validation, which said "Input X contains NaN"
    pd = pytest.importorskip("pandas")
    X, y = _series()
    clf = ConvNetClassifier(**SMALL, input_shape=(40, 2)).fit(X, y)
    X[7, 31:] = np.nan
    rows = [list(r) for r in X.reshape(48, -1)]
    rows[7] = [None if np.isnan(v) else v for v in rows[7]]
    for given in (pd.DataFrame(X.reshape(48, -1)), rows):
        for call in (lambda: clone(clf).fit(given, y), lambda: clf.predict(given)):
            with pytest.raises(ValueError, match=r"X holds NaN in series 7 at time step 31, "
                                                 r"channel 0 \(1 of 48 series hold NaN\).*"
                                                 r"pad with zeros instead"):
                call()


def test_nan_in_series_in_an_hdf5_or_zarr_store_is_named_in_series_terms(tmp_path):
    # a chunked store is checked a chunk at a time as it is read, by fit and
    # by prediction: the NaN is still named by series, step and channel
    h5py = pytest.importorskip("h5py")
    zarr = pytest.importorskip("zarr")
    X, y = _series()
    clf = ConvNetClassifier(**SMALL, input_shape=(None, 2)).fit(X, y)
    X[29, 38, 1] = np.nan
    z = zarr.create_array(str(tmp_path / "X.zarr"), shape=X.shape, dtype=X.dtype,
                          chunks=(10, 40, 2))
    z[:] = X
    with h5py.File(tmp_path / "X.h5", "w") as f:
        stores = (f.create_dataset("X", data=X, chunks=(10, 40, 2)), z)
        for store in stores:
            calls = (lambda: clone(clf).fit(store, y), lambda: clf.predict(store),
                     lambda: clf.transform(store))
            for call in calls:
                with pytest.raises(ValueError, match=r"NaN in series 29 at time step 38, "
                                                     r"channel 1 \(1 of 48 series"):
                    call()


def test_nan_in_series_in_a_later_dask_block_is_named_by_its_series_of_x_at_predict():
    da = pytest.importorskip("dask.array")
    X, y = _series()
    clf = ConvNetClassifier(**SMALL, input_shape=(None, 2)).fit(X, y)
    X[29, 38, 1] = np.nan
    for given in (X, X.reshape(48, -1)):
        Xd = da.from_array(given, chunks=((20, 20, 8),) + given.shape[1:])
        for name in ("predict", "transform"):
            with pytest.raises(ValueError, match=r"NaN in series 29 at time step 38, channel 1 "
                                                 r"\(1 of series 20 to 39, a block of X,"):
                getattr(clf, name)(Xd).compute(scheduler="synchronous")
    # the first block is a block too: its 20 series were counted as if X held no more
    X, _ = _series()
    X[3, 5, 0] = np.nan
    with pytest.raises(ValueError, match=r"NaN in series 3 at time step 5, channel 0 "
                                         r"\(1 of series 0 to 19, a block of X,"):
        clf.predict(da.from_array(X, chunks=(20, 40, 2))).compute(scheduler="synchronous")


def test_an_object_array_of_series_is_read_as_their_array():
    X, y = _series()
    rows = X.reshape(48, -1)
    column = np.empty(48, dtype=object)
    column[:] = list(rows)
    clf = ConvNetClassifier(**SMALL, input_shape=(40, 2))
    expected = clone(clf).fit(rows, y).predict_proba(rows)
    assert_array_equal(clf.fit(column, y).predict_proba(column), expected)


def test_a_length_left_to_x_is_fixed_by_fit_even_with_global_pooling():
    X, y = _series()
    clf = ConvNetClassifier(**SMALL, input_shape=(None, 2)).fit(X, y)  # global_pool="avg"
    assert clf.input_shape_ == (40, 2)
    longer, _ = _series(length=56)
    with pytest.raises(ValueError, match=r"X holds series of length 56 with 2 channels; the "
                                         r"model was fitted on series of length 40"):
        clf.predict(longer)


def test_series_of_another_length_at_predict_are_named_and_told_to_pad_or_resample():
    # as rows, the length of X's series was left to the reader's arithmetic
    X, y = _series()
    clf = ConvNetClassifier(**SMALL, input_shape=(None, 2)).fit(X, y)
    longer, _ = _series(length=56)
    with pytest.raises(ValueError, match=r"X has 112 features, but ConvNetClassifier is "
                                         r"expecting 80 features as input: X holds rows of 112 "
                                         r"values \(series of length 56 if of 2 channels\).* "
                                         r"Resample or crop the series to length 40, or fit on "
                                         r"series padded to the longest length\.$"):
        clf.predict(longer.reshape(48, -1))
    shorter, _ = _series(length=33)
    with pytest.raises(ValueError, match=r"series of length 33 with 2 channels; .* Pad \(zeros "
                                         r"at the end\) or resample the series to length 40"):
        clf.predict(shorter)
    with pytest.raises(ValueError, match=r"\(series of length 33 if of 2 channels\).* Pad"):
        clf.predict(shorter.reshape(48, -1))
    with pytest.raises(ValueError, match=r"X holds rows of 2 values, .*looks like one series"):
        clf.predict(X[0])  # one series: no length to pad to


def test_channels_first_series_get_the_transpose_in_fit_and_predict():
    X, y = _series()
    with pytest.raises(ValueError, match=r"channels-first .* X\.transpose\(0, 2, 1\)"):
        ConvNetClassifier(**SMALL, input_shape=(40, 2)).fit(X.transpose(0, 2, 1), y)
    clf = ConvNetClassifier(**SMALL, input_shape=(40, 2)).fit(X, y)
    with pytest.raises(ValueError, match=r"series of length 2 with 40 channels; the model was "
                                         r"fitted on series of length 40 with 2 channels.*"
                                         r"X\.transpose\(0, 2, 1\)"):
        clf.predict(X.transpose(0, 2, 1))
    # a length left to X: the channels are where the length should be
    with pytest.raises(ValueError, match=r"of 40 channel\(s\); it looks channels-first.*"
                                         r"X\.transpose\(0, 2, 1\)"):
        ConvNetClassifier(**SMALL, input_shape=(None, 2)).fit(X.transpose(0, 2, 1), y)
    # without input_shape, 3D X is images: channels-first series get a warning
    with pytest.warns(UserWarning, match=r"looks like series held channels-first .* "
                                         r"X\.transpose\(0, 2, 1\) with input_shape=\(40, 2\)"):
        ConvNetClassifier(conv_layers=(2,), max_iter=1).fit(X.transpose(0, 2, 1), y)


def test_a_swapped_input_shape_is_told_first_when_x_holds_series_channels_last():
    # X of 40 steps of 2 channels with input_shape=(2, 40): the transpose alone
    # made it fit as series of 2 steps of 40 channels
    X, y = _series()
    with pytest.raises(ValueError, match=r"input_shape=\(2, 40\) does not match the series of "
                                         r"X, of shape \(40, 2\)\. For series of length 40 "
                                         r"with 2 channels, .* pass input_shape=\(40, 2\); if "
                                         r"X is channels-first .* X\.transpose\(0, 2, 1\)"):
        ConvNetClassifier(**SMALL, input_shape=(2, 40)).fit(X, y)


def test_series_held_as_3d_x_without_input_shape_get_a_warning():
    X, y = _series(length=25, channels=12)
    with pytest.warns(UserWarning, match=r"X of shape \(48, 25, 12\) may hold series .* "
                                         r"input_shape=\(25, 12\)"):
        ConvNetClassifier(conv_layers=(2,), max_iter=1).fit(X, y)


def test_a_ragged_object_array_names_the_lengths():
    X = np.array([np.zeros(6), np.zeros(5)] * 5, dtype=object)
    with pytest.raises(ValueError, match=r"series of unequal length \(lengths seen: 5, 6"):
        ConvNetClassifier(input_shape=(6, 1)).fit(X, np.arange(10) % 2)


def test_multivariate_series_of_unequal_length_name_their_shapes():
    # aeon holds multivariate series of unequal lengths as a list of
    # (channels, length) arrays: each sample has 2 entries, so the lengths
    # differ one level down
    X = [np.zeros((2, 30)), np.zeros((2, 30)), np.zeros((2, 28))]
    column = np.empty(3, dtype=object)  # a pandas column of arrays
    column[:] = X
    for given in (X, [x.tolist() for x in X], column):
        with pytest.raises(ValueError, match=r"series of unequal length \(sample shapes seen: "
                                             r"\(2, 28\), \(2, 30\); sample 0 is \(2, 30\), "
                                             r"sample 2 is \(2, 28\)\).*[Pp]ad.*"
                                             r"X.transpose\(0, 2, 1\)"):
            ConvNetClassifier(input_shape=(None, 2)).fit(given, [0, 1, 0])


def test_a_nested_frame_of_one_column_a_channel_is_told_how_to_stack_its_series():
    # sktime's nested frames hold multivariate series as one column a channel,
    # each cell a pd.Series: passing one column alone, as for a table holding
    # an image column, would drop the other channels
    pd = pytest.importorskip("pandas")
    X, y = _series()
    nested = pd.DataFrame({f"dim_{c}": [pd.Series(x[:, c]) for x in X] for c in range(2)})
    with pytest.raises(ValueError, match=r"X has 2 columns .* one column a channel.*"
                                         r"\(n, length, channels\)") as error:
        ConvNetClassifier(**SMALL, input_shape=(40, 2)).fit(nested, y)
    assert "image" not in str(error.value)
    stacked = np.stack([np.stack(nested[c]) for c in nested.columns], axis=-1)
    assert_array_equal(stacked, X)
    # a column of whole series beside a label: that column alone
    table = pd.DataFrame({"series": list(X), "label": y})
    clf = ConvNetClassifier(**SMALL, input_shape=(40, 2))
    with pytest.raises(ValueError, match=r"X has 2 columns .*Pass the series column alone") as e:
        clf.fit(table, y)
    assert "a channel" not in str(e.value)


def test_series_in_long_format_are_told_how_to_stack_and_wide_ones_fit():
    # sktime's pd-multiindex: a row per time step, indexed by (series, time);
    # read as rows they were 1920 samples against y's 48
    pd = pytest.importorskip("pandas")
    X, y = _series()
    index = pd.MultiIndex.from_product([range(48), range(40)], names=["instance", "timepoint"])
    long = pd.DataFrame(X.reshape(-1, 2), index=index, columns=["a", "b"])
    clf = ConvNetClassifier(**SMALL, input_shape=(None, 2))
    fitted = clone(clf).fit(X, y)
    for call in (lambda: clone(clf).fit(long, y), lambda: fitted.predict(long)):
        with pytest.raises(ValueError, match=r"X holds series in long format: 1920 rows of 2 "
                                             r"columns indexed by \(instance, timepoint\).*"
                                             r"X\.groupby\(level=0\)"):
            call()
    assert_array_equal(np.stack([s.to_numpy() for _, s in long.groupby(level=0)]), X)
    # one series a row, indexed by (subject, trial): the first level repeats too
    index = pd.MultiIndex.from_product([range(24), range(2)], names=["subject", "trial"])
    wide = pd.DataFrame(X.reshape(48, -1), index=index)
    assert_array_equal(clone(clf).fit(wide, y).predict_proba(wide), fitted.predict_proba(X))


def test_columns_of_channel_then_time_are_refused_and_of_time_then_channel_read():
    # unstack() of series in long format puts a channel's steps together: read
    # as rows in (length, channels) order they trained without an error, mixed up
    pd = pytest.importorskip("pandas")
    X, y = _series()
    index = pd.MultiIndex.from_product([range(48), range(40)], names=["instance", "timepoint"])
    wide = pd.DataFrame(X.reshape(-1, 2), index=index, columns=["a", "b"]).unstack()
    clf = ConvNetClassifier(**SMALL, input_shape=(None, 2))
    fitted = clone(clf).fit(X, y)
    for call in (lambda: clone(clf).fit(wide, y), lambda: fitted.predict(wide)):
        with pytest.raises(ValueError, match=r"X's columns are \(channel, time\) pairs, its 2 "
                                             r"channels of 40 time steps each in turn .*"
                                             r"reshape\(len\(X\), 2, 40\)\.transpose\(0, 2, "
                                             r"1\)"):
            call()
    assert_array_equal(wide.to_numpy().reshape(len(wide), 2, 40).transpose(0, 2, 1), X)
    time_major = wide.swaplevel(axis=1).sort_index(axis=1)
    assert_array_equal(clone(clf).fit(time_major, y).predict_proba(time_major),
                       fitted.predict_proba(X))


def test_series_of_one_length_and_unequal_channels_are_not_told_to_pad():
    X = [np.zeros((30, 2)), np.zeros((30, 2)), np.zeros((30, 3))]
    with pytest.raises(ValueError, match=r"X holds series of unequal numbers of channels "
                                         r"\(sample shapes seen: \(30, 2\), \(30, 3\); sample 0 "
                                         r"is \(30, 2\), sample 2 is \(30, 3\)\): .*same "
                                         r"channels") as error:
        ConvNetClassifier(input_shape=(30, 2)).fit(X, [0, 1, 0])
    assert "Pad" not in str(error.value)


def test_a_square_pair_warns_that_it_reads_series():
    X = np.random.RandomState(0).rand(4, 64)
    with pytest.warns(UserWarning, match=r"series of length 8 with 8 channels .* "
                                         r"input_shape=\(8, 8, 1\)"):
        ConvNetClassifier(conv_layers=(2,), max_iter=1, input_shape=(8, 8)).fit(X, [0, 1] * 2)


def test_raw_series_are_told_to_be_z_normalised_not_scaled_as_pixels():
    X, y = _series()
    with pytest.warns(UserWarning, match=r"raw values such as a sensor's counts .* Z-normalise "
                                         r"each series") as record:
        ConvNetClassifier(**SMALL, input_shape=(40, 2)).fit(X * 3000, y)
    assert not any("pixel" in str(w.message) or "image" in str(w.message) for w in record)


def test_four_dimensional_x_is_not_series():
    X, y = _series()
    with pytest.raises(ValueError, match=r"is not series: .* \(n, length, channels\)"):
        ConvNetClassifier(**SMALL, input_shape=(40, 2)).fit(X[:, None], y)


def test_series_augmentation_is_reproducible_and_changes_training():
    X, y = _series()
    aug = {"shift": 3, "scale": 0.2, "noise": 0.1}
    a = ConvNetClassifier(**SMALL, input_shape=(40, 2), augment=aug).fit(X, y)
    with threadpool_limits(1):
        b = ConvNetClassifier(**SMALL, input_shape=(40, 2), augment=aug).fit(X, y)
    plain = ConvNetClassifier(**SMALL, input_shape=(40, 2)).fit(X, y)
    assert_array_equal(a._network.params, b._network.params)
    for key, value in aug.items():  # each key on its own changes the fit
        one = ConvNetClassifier(**SMALL, input_shape=(40, 2), augment={key: value}).fit(X, y)
        assert not np.array_equal(one._network.params, plain._network.params), key


def test_series_augmentation_draws_shift_amplitude_and_relative_noise():
    from skconv._augment import augment_batch, check_augment, draw_transforms

    rng = np.random.RandomState(0)
    x = rng.randn(200, 2, 1, 50)
    spec = check_augment({"shift": 4, "scale": 0.5}, x.shape[1:], series=True)
    t = draw_transforms(spec, 200, x.shape[1:], np.random.RandomState(1))
    out = augment_batch(x, np.arange(200), t, np.empty_like(x))
    assert (t.shift[:, 0] == 0).all() and np.abs(t.shift[:, 1]).max() == 4
    for k in (0, 1, 2):  # shifted along time with zero fill, then scaled
        d = t.shift[k, 1]
        src = np.zeros_like(x[k])
        if d >= 0:
            src[..., d:] = x[k][..., :50 - d]
        else:
            src[..., :d] = x[k][..., -d:]
        assert_allclose(out[k], t.amplitude[k] * src)
    assert 0.5 <= t.amplitude.min() and t.amplitude.max() <= 1.5
    spec = check_augment({"noise": 0.5}, x.shape[1:], series=True)
    t = draw_transforms(spec, 200, x.shape[1:], np.random.RandomState(1))
    noise = augment_batch(x, np.arange(200), t, np.empty_like(x)) - x
    ratio = noise.std(axis=(2, 3)) / x.std(axis=(2, 3))
    assert 0.4 < np.median(ratio) < 0.6


@pytest.mark.parametrize("augment, match", [
    ({"rotate": 10}, r"unknown key 'rotate' .* for series; the keys are \['shift', 'scale', "
                     r"'noise'\] \('rotate' is for images\)"),
    ({"noise": -1}, r"augment\['noise'\]=-1 must be a number >= 0"),
    ({"shift": 40}, r"augment\['shift'\]=40 can move a series of length 40 out of view"),
    # infinite in float32: every series NaN, and the learning rate was blamed
    ({"noise": 1e39}, r"augment\['noise'\]=1e\+39 is beyond float32's range"),
])
def test_series_augmentation_refuses_image_keys_and_bad_values(augment, match):
    X, y = _series()
    with pytest.raises(ValueError, match=match):
        ConvNetClassifier(**SMALL, input_shape=(40, 2), augment=augment).fit(X, y)


def test_noise_is_refused_for_images():
    X = np.random.RandomState(0).rand(4, 64)
    with pytest.raises(ValueError, match=r"'noise' is for series"):
        ConvNetClassifier(conv_layers=(2,), augment={"noise": 0.1}).fit(X, [0, 1] * 2)


def test_transform_and_grid_search_work_on_series():
    from sklearn.model_selection import GridSearchCV

    X, y = _series()
    clf = ConvNetClassifier(**SMALL, input_shape=(40, 2)).fit(X, y)
    assert clf.transform(X).shape == (48, 6)
    grid = GridSearchCV(ConvNetClassifier(**SMALL, input_shape=(40, 2)),
                        {"conv_layers": [fcn(2)["conv_layers"], resnet1d(2)["conv_layers"]]},
                        cv=2).fit(X.reshape(48, -1), y)
    assert len(grid.cv_results_["mean_test_score"]) == 2


def _expected_failed_checks(estimator):
    reason = ("mini-batch training: a sample weighted by 2 is not the same sample twice "
              "(see tests/test_common.py)")
    return {"check_sample_weight_equivalence_on_dense_data": reason,
            "check_sample_weight_equivalence_on_sparse_data": reason}


# a 1-D network on series whose length is that of the checks' rows: a convolution of
# 1 step, a residual block of 2-step convolutions ('same' padding), global average pooling
_SERIES_NET = dict(conv_layers=({"filters": 4, "kernel_size": 1, "pool": None},
                               {"residual": [{"filters": 4, "kernel_size": 2}] * 2}),
                  global_pool="avg", hidden_layer_sizes=(), input_shape=(None, 1),
                  learning_rate_init=0.01, random_state=0)


@parametrize_with_checks(
    [ConvNetClassifier(**_SERIES_NET, max_iter=60),
     # the checks' regression rows are features, not a series: flattened, not averaged
     ConvNetRegressor(**{**_SERIES_NET, "global_pool": None, "hidden_layer_sizes": (16,)},
                      max_iter=100)],
    expected_failed_checks=_expected_failed_checks,
    xfail_strict=True,
)
def test_sklearn_compatible_series_estimator(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


def test_series_stored_on_disk_or_in_dask_train_and_predict_as_in_memory(tmp_path):
    X, y = _series()
    np.save(tmp_path / "x.npy", X)
    mapped = np.load(tmp_path / "x.npy", mmap_mode="r")
    a = ConvNetClassifier(**SMALL, input_shape=(40, 2)).fit(mapped, y)
    b = ConvNetClassifier(**SMALL, input_shape=(40, 2)).fit(X, y)
    assert_array_equal(a._network.params, b._network.params)
    assert_array_equal(a.predict_proba(mapped), b.predict_proba(X))
    da = pytest.importorskip("dask.array")
    assert_array_equal(a.predict_proba(da.from_array(X, chunks=16)).compute(),
                       a.predict_proba(X))
    with pytest.raises(ValueError, match=r"X\.transpose\(0, 2, 1\)"):
        a.predict(da.from_array(X.transpose(0, 2, 1), chunks=16))


def test_a_winograd_series_model_predicts_with_its_current_parameters():
    # fcn(32)'s second convolution (32 -> 64 of 5 taps) on 40 steps takes
    # Winograd's product, whose transformed filters a prediction keeps for the
    # next (skconv._engine.WinogradFilters): a change of the parameters in
    # place must reach the next prediction, as a copy of the model that never
    # predicted sees them
    X, y = _series(length=40, channels=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = ConvNetClassifier(**fcn(32), input_shape=(40, 1), max_iter=2,
                                random_state=0).fit(X, y)
    row = X[:1]
    before = clf.predict_proba(row)
    assert_array_equal(clf.predict_proba(row), before)
    clf._network.params *= 1.25
    after = clf.predict_proba(row)
    assert not np.array_equal(after, before)
    assert_array_equal(after, pickle.loads(pickle.dumps(clf)).predict_proba(row))
