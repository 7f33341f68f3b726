"""X larger than memory: memory maps, HDF5, Zarr and Dask arrays, kept as stored.

The rules: a fit reads X a batch at a time (memory O(batch), not O(n)); a
random-access X (numpy, memory maps) and a chunked store whose shuffle buffer
holds every row give the bits of the in-memory fit; bad values are found and
named before training; prediction streams, and on a Dask array returns a Dask
array with numpy's bits.
"""

import gc
import os
import re
import subprocess
import sys
import textwrap
import tracemalloc
import warnings

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from sklearn.exceptions import ConvergenceWarning

import skconv
from skconv import ConvNetClassifier, ConvNetRegressor
from skconv import _data
from skconv._samples import column_of_samples
from skconv._augment import augment_batch, check_augment, draw_transforms, gather_images

SMALL = dict(conv_layers=(3,), hidden_layer_sizes=(8,), max_iter=2, random_state=0,
             batch_size=32)


def _images(n=240, shape=(8, 8, 3), dtype=np.uint8, seed=0):
    """Images whose label is which third of the image is brightest, as uint8."""
    rng = np.random.RandomState(seed)
    X = rng.randint(0, 200, size=(n,) + shape)
    y = rng.randint(0, 3, size=n)
    for k in range(3):
        X[y == k, :, k * shape[1] // 3:(k + 1) * shape[1] // 3] += 55
    return X.astype(dtype), y


def _fit(model, X, y, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.filterwarnings("ignore", "X ranges from")  # raw pixels, on purpose
        return model.fit(X, y, **kwargs)


def _assert_same_model(a, b):
    for wa, wb in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        assert_array_equal(wa, wb)
    assert a.loss_curve_ == b.loss_curve_


@pytest.fixture
def memmap(tmp_path):
    def make(X):
        np.save(tmp_path / "X.npy", X)
        return np.load(tmp_path / "X.npy", mmap_mode="r")
    return make


@pytest.fixture
def h5(tmp_path):
    h5py = pytest.importorskip("h5py")
    files = []

    def make(X, rows_per_chunk=50):
        f = h5py.File(tmp_path / f"X{len(files)}.h5", "w")
        files.append(f)
        return f.create_dataset("X", data=X, chunks=(rows_per_chunk,) + X.shape[1:])
    yield make
    for f in files:
        f.close()


@pytest.fixture
def zarr_array(tmp_path):
    zarr = pytest.importorskip("zarr")

    def make(X, rows_per_chunk=64):
        z = zarr.create_array(str(tmp_path / "X.zarr"), shape=X.shape, dtype=X.dtype,
                              chunks=(rows_per_chunk,) + X.shape[1:])
        z[:] = X
        return z
    return make


# ------------------------------------------------------------------------- the gather kernel

@pytest.mark.parametrize("x_dtype", [np.uint8, np.uint16, np.float16, np.float32, np.float64])
@pytest.mark.parametrize("model_dtype", [np.float32, np.float64])
@pytest.mark.parametrize("augment", [None, {"shift": 2, "flip": True},
                                     {"rotate": 25, "scale": 0.2, "shift": 1, "flip": True}])
def test_gather_from_stored_rows_has_the_bits_of_augmenting_the_cast_images(
        x_dtype, model_dtype, augment):
    # oracle: cast the whole of X, move the channels first, then augment_batch
    # (itself tested against scipy.ndimage in test_augment.py)
    rng = np.random.RandomState(0)
    X = (rng.rand(20, 7, 9, 3) * 250).astype(x_dtype)
    rows = rng.randint(0, 20, size=11)
    spec = check_augment(augment, (3, 7, 9))
    transforms = draw_transforms(spec, 20, (3, 7, 9), np.random.RandomState(1))
    for scale in (None, 255):
        x_all = X.astype(model_dtype).transpose(0, 3, 1, 2)
        if scale is not None:
            x_all = x_all / model_dtype(scale)
        expected = augment_batch(np.ascontiguousarray(x_all), rows, transforms,
                                 np.empty((11, 3, 7, 9), model_dtype))
        got = gather_images(X.reshape(20, -1), rows, np.empty((11, 3, 7, 9), model_dtype),
                            None if transforms is None else transforms.take(rows), scale)
        assert_array_equal(got, expected)


def test_input_scale_255_has_the_bits_of_x_over_255_for_every_8_and_16_bit_value():
    # input_scale=255 divides in the model dtype; X / 255 divides in float64 and
    # rounds again: the two agree on every uint8 and uint16 value, so the docs
    # may say input_scale=255 trains as (X / 255).astype(dtype) does
    for dtype in (np.uint8, np.uint16):
        values = np.arange(np.iinfo(dtype).max + 1, dtype=dtype)
        for model in (np.float32, np.float64):
            out = np.empty((len(values), 1, 1, 1), model)
            gather_images(values[:, None], np.arange(len(values)), out, scale=255)
            assert_array_equal(out.ravel(), (values / 255).astype(model))


# ------------------------------------------------------------------------- same bits as in memory

@pytest.mark.parametrize("params", [
    {},
    {"early_stopping": True, "validation_fraction": 0.2, "max_iter": 3},
    {"augment": {"shift": 1, "rotate": 10, "flip": True}},
    {"shuffle": False},
])
def test_fits_on_a_memmap_hdf5_zarr_and_dask_array_equal_the_in_memory_fit(
        params, memmap, h5, zarr_array):
    X, y = _images()
    reference = _fit(ConvNetClassifier(**{**SMALL, "input_scale": 255, **params}), X, y)
    # the same data as floats scaled in memory, as before X stayed as stored
    floats = X.astype(np.float32) / np.float32(255)
    _assert_same_model(_fit(ConvNetClassifier(**{**SMALL, **params}), floats, y), reference)
    stores = {"memmap": memmap(X), "h5py": h5(X), "zarr": zarr_array(X)}
    try:
        import dask.array as da
        stores["dask"] = da.from_array(X, chunks=(50, 8, 8, 3))
    except ImportError:
        pass
    proba = reference.predict_proba(X)
    for name, store in stores.items():
        model = _fit(ConvNetClassifier(**{**SMALL, "input_scale": 255, **params}), store, y)
        _assert_same_model(model, reference)
        got = model.predict_proba(store)
        got = got.compute() if hasattr(got, "compute") else got
        assert_array_equal(got, proba, err_msg=name)


@pytest.mark.parametrize("x_dtype", [np.uint16, np.float16, np.float64])
def test_every_stored_dtype_fits_as_its_cast_to_the_model_dtype(x_dtype, memmap):
    X, y = _images()
    X = X.astype(x_dtype)
    model = _fit(ConvNetRegressor(**SMALL, input_scale=255), memmap(X), y.astype(float))
    reference = _fit(ConvNetRegressor(**SMALL),
                     X.astype(np.float32) / np.float32(255), y.astype(float))
    _assert_same_model(model, reference)
    assert_array_equal(model.predict(memmap(X)), reference.predict(X / np.float32(255)))
    assert_array_equal(model.transform(X), reference.transform(X / np.float32(255)))


def test_flat_and_channels_last_rows_and_non_contiguous_arrays_stay_as_stored(memmap):
    X, y = _images()
    reference = _fit(ConvNetClassifier(**SMALL), X, y)
    flat = _fit(ConvNetClassifier(**SMALL, input_shape=(8, 8, 3)), X.reshape(len(X), -1), y)
    _assert_same_model(flat, reference)
    strided = np.asfortranarray(X)
    _assert_same_model(_fit(ConvNetClassifier(**SMALL), strided, y), reference)
    assert_array_equal(reference.predict_proba(strided), reference.predict_proba(X))


@pytest.mark.parametrize("x_dtype", [">u2", ">f4", ">f8"])
def test_a_big_endian_store_stays_as_stored_and_fits_as_its_native_twin(x_dtype, memmap, h5):
    # FITS images and some HDF5 files are big-endian: each block is swapped as
    # it is read, not the whole of X loaded by scikit-learn's conversion
    X, y = _images()
    native = X.astype(np.dtype(x_dtype).newbyteorder("="))
    reference = _fit(ConvNetClassifier(**SMALL, input_scale=255), native, y)
    for stored in (X.astype(x_dtype), memmap(X.astype(x_dtype)), h5(X.astype(x_dtype))):
        assert _data.is_stored(stored)
        model = _fit(ConvNetClassifier(**SMALL, input_scale=255, shuffle_buffer=len(X)),
                     stored, y)
        _assert_same_model(model, reference)
        assert_array_equal(reference.predict_proba(stored), reference.predict_proba(native))


# ------------------------------------------------------------------------- chunked shuffle

def test_chunk_shuffle_is_a_permutation_within_groups_of_the_buffer_and_holds_two_at_most(h5):
    X, _ = _images(n=500)
    rows = _data.Rows(h5(X, rows_per_chunk=20))
    plan = _data.ChunkPlan(rows, np.arange(500), buffer_rows=100)
    rng = np.random.RandomState(0)
    held = []
    read = rows.read_chunks

    def spy(chunks):
        out = read(chunks)
        return out
    rows.read_chunks = spy
    orders = []
    for _ in range(2):
        order = plan.order(rng, shuffle=True)
        orders.append(order.copy())
        assert_array_equal(np.sort(order), np.arange(500))
        # each run of 100 positions holds the rows of 5 whole chunks
        for a in range(0, 500, 100):
            chunks = np.unique(order[a:a + 100] // 20)
            assert len(chunks) == 5
        for a in range(0, 500, 32):
            batch = order[a:a + 32]
            assert_array_equal(plan.take(batch), X.reshape(500, -1)[batch])
            held.append(sum(len(v) for v in plan._cache.values()))
        assert not plan._cache  # every chunk dropped once read through
    assert max(held) <= 2 * 100
    assert not np.array_equal(orders[0], orders[1])
    # not shuffled: the order of X, chunk after chunk
    assert_array_equal(plan.order(rng, shuffle=False), np.arange(500))


def test_a_small_shuffle_buffer_fit_is_reproducible_and_learns(h5):
    X, y = _images(n=480)
    store = h5(X, rows_per_chunk=40)
    params = dict(SMALL, input_scale=255, shuffle_buffer=100, max_iter=8)
    a = _fit(ConvNetClassifier(**params), store, y)
    b = _fit(ConvNetClassifier(**params), store, y)
    _assert_same_model(a, b)
    exact = _fit(ConvNetClassifier(**dict(params, shuffle_buffer=480)), store, y)
    assert a.loss_curve_ != exact.loss_curve_  # another order of rows
    assert a.score(store, y) > 0.6


# ------------------------------------------------------------------------- bad input, memory

def test_an_unshuffled_early_stopping_fit_of_a_store_in_one_buffer_is_the_in_memory_fit(h5):
    # early stopping's training rows come in the split's (random) order; a
    # buffer holding them all trains in that order too, as in memory
    X, y = _images(n=200)
    params = dict(SMALL, input_scale=255, shuffle=False, early_stopping=True)
    reference = _fit(ConvNetClassifier(**params), X, y)
    model = _fit(ConvNetClassifier(**params, shuffle_buffer=len(X)), h5(X, 30), y)
    _assert_same_model(model, reference)


def test_a_nan_in_the_last_chunk_of_a_memmap_is_named_before_training(memmap, h5, monkeypatch):
    X, y = _images(n=300)
    X = X.astype(np.float32)
    X[297, 3, 4, 1] = np.nan
    X[299, 0, 0, 0] = np.inf
    trained = []
    monkeypatch.setattr(_data, "BLOCK_BYTES", 20 * X[0].nbytes)  # 15 blocks
    for store in (memmap(X), h5(X)):
        model = ConvNetClassifier(**SMALL)
        monkeypatch.setattr(type(model), "_fit_epochs", lambda *a: trained.append(1))
        with pytest.raises(ValueError, match=r"Input X contains NaN: row\(s\) 297, 299 of X"):
            model.fit(store, y)
        assert not trained and not hasattr(model, "coefs_")
    monkeypatch.undo()
    model = _fit(ConvNetClassifier(**SMALL), X[:290], y[:290])
    with pytest.raises(ValueError, match=r"Input X contains NaN: row\(s\) 7, 9 of X"):
        model.predict(memmap(X[290:]))


@pytest.mark.parametrize("shape", [(8, 8, 3), (192,)])
def test_a_nan_in_the_first_row_is_named_with_the_others_by_fit_and_predict(memmap, shape):
    # scikit-learn's look at the first row raised its own message, naming no row
    X, y = _images(n=60)
    X = X.astype(np.float32).reshape((60,) + shape) / 255
    model = _fit(ConvNetClassifier(**SMALL), X, y)
    X[0].flat[5] = X[9].flat[0] = np.nan
    for Z in (X, memmap(X)):
        for fit_or_predict in (lambda Z: ConvNetClassifier(**SMALL).fit(Z, y), model.predict):
            with pytest.raises(ValueError, match=r"Input X contains NaN: row\(s\) 0, 9 of X"):
                fit_or_predict(Z)


def _peak_fit_bytes(X, y):
    model = ConvNetClassifier(conv_layers=(2,), hidden_layer_sizes=(4,), max_iter=1,
                              random_state=0, batch_size=50, input_scale=255)
    gc.collect()
    tracemalloc.start()
    try:
        _fit(model, X, y)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("flat", [False, True])
def test_a_fit_on_series_in_memory_reads_x_once_and_names_a_nan_in_series_terms(
        monkeypatch, flat):
    # a pass looking for NaN, then the fit's scan, read X twice
    rng = np.random.RandomState(0)
    X = rng.uniform(size=(300, 40, 2)).astype(np.float32)
    X = X.reshape(300, -1) if flat else X
    y = rng.uniform(size=300)
    read = []
    rows_read = _data.Rows.read
    monkeypatch.setattr(_data.Rows, "read",
                        lambda self, a, b: read.append(b - a) or rows_read(self, a, b))
    model = _fit(ConvNetRegressor(**SMALL, input_shape=(40, 2)), X, y)
    assert sum(read) == 300 + 1  # the scan, and scikit-learn's look at the first row
    X = X.copy()
    X.reshape(300, 40, 2)[5, 17, 1] = np.nan
    for fit_or_predict in (lambda X: _fit(ConvNetRegressor(**SMALL, input_shape=(40, 2)), X, y),
                           model.predict):
        with pytest.raises(ValueError, match=r"X holds NaN in series 5 at time step 17, "
                                             r"channel 1 \(1 of 300 series hold NaN\)"):
            fit_or_predict(X)


def test_fitting_on_a_uint8_memmap_allocates_per_batch_not_per_row(tmp_path):
    # 4,000 and 16,000 images of 32x32x3: a float32 copy of X would be 49 and
    # 197 MB. What grows with n is y, the weights and the row order (tens of
    # bytes per row), not the 12 KB of a row's image.
    peaks = {}
    for n in (4000, 16000):
        path = tmp_path / f"X{n}.npy"
        X = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(n, 32, 32, 3))
        X[:] = np.random.RandomState(0).randint(0, 256, size=(1, 32, 32, 3), dtype=np.uint8)
        X.flush()
        del X
        X = np.load(path, mmap_mode="r")
        y = np.arange(n) % 3
        peaks[n] = _peak_fit_bytes(X, y)
    per_row = (peaks[16000] - peaks[4000]) / 12000
    assert per_row < 200, peaks
    float_copy = 4000 * 32 * 32 * 3 * 4
    assert peaks[4000] < float_copy / 4, peaks


# ------------------------------------------------------------------------- Dask

def test_a_dask_dataframe_predicts_as_the_pandas_frame_it_holds():
    # converted as a whole, as any frame scikit-learn's validation reads; its row
    # count is lazy, which the shape checks of predict compared and crashed on
    dd = pytest.importorskip("dask.dataframe")
    pd = pytest.importorskip("pandas")
    X, y = _images(n=60, shape=(8, 8, 1))
    frame = pd.DataFrame(X.reshape(60, -1) / 255.0, columns=[f"px{i}" for i in range(64)])
    lazy = dd.from_pandas(frame, npartitions=2)
    model = _fit(ConvNetClassifier(**SMALL), lazy, y)
    reference = _fit(ConvNetClassifier(**SMALL), frame, y)
    for name in ("predict", "predict_proba", "transform"):
        assert_array_equal(getattr(model, name)(lazy), getattr(reference, name)(frame))
    assert model.score(lazy, y) == reference.score(frame, y)
    with pytest.raises(ValueError, match="X has 4 features"):
        model.predict(lazy[list(frame.columns[:4])])


def test_predict_on_a_dask_array_is_a_dask_array_with_numpy_bits_on_two_workers():
    da = pytest.importorskip("dask.array")
    distributed = pytest.importorskip("distributed")
    X, y = _images(n=300)
    Xd = da.from_array(X, chunks=(70, 8, 8, 3))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster):
        model = _fit(ConvNetClassifier(**SMALL, input_scale=255), Xd, y)
        reference = _fit(ConvNetClassifier(**SMALL, input_scale=255), X, y)
        _assert_same_model(model, reference)
        for name in ("predict", "predict_proba", "predict_log_proba", "transform"):
            lazy = getattr(model, name)(Xd)
            assert isinstance(lazy, da.Array)
            # the model is one task of the graph, fetched once by each worker
            assert sum("model" in str(key) for key in dict(lazy.__dask_graph__())) == 1
            assert_array_equal(lazy.compute(), getattr(reference, name)(X), err_msg=name)
        assert model.score(Xd, y) == reference.score(X, y)
        # flat rows in Dask blocks, and a regressor
        flat = da.from_array(X.reshape(300, -1), chunks=(128, 192))
        reg = _fit(ConvNetRegressor(**SMALL, input_scale=255, input_shape=(8, 8, 3)), X, y)
        assert_array_equal(reg.predict(flat).compute(), reg.predict(X.reshape(300, -1)))
        with pytest.raises(ValueError, match="images of shape"):
            model.predict(Xd[:, :4])


def test_a_nan_in_a_later_dask_block_is_named_by_its_row_of_x_at_predict():
    da = pytest.importorskip("dask.array")
    X, y = _images(n=120)
    X = X.astype(np.float32) / 255
    model = _fit(ConvNetClassifier(**SMALL), X, y)
    X[97, 3, 4, 1] = np.nan
    Xd = da.from_array(X, chunks=((13, 80, 27), 8, 8, 3))
    for name in ("predict", "predict_proba", "transform"):
        with pytest.raises(ValueError, match=r"row\(s\) 97 of X"):
            getattr(model, name)(Xd).compute(scheduler="synchronous")


def test_a_value_beyond_float32_in_a_later_dask_block_is_named_by_its_row_of_x():
    # the block's own row number was given: row 17 of the block from row 80
    da = pytest.importorskip("dask.array")
    X, y = _images(n=120)
    X = X.astype(np.float64) / 255
    model = _fit(ConvNetClassifier(**SMALL), X, y)
    X[97, 3, 4, 1] = 1e39
    with pytest.raises(ValueError, match=r"^row\(s\) 97 of X hold values beyond float32's"):
        model.predict(X)
    with pytest.raises(ValueError, match=r"^row\(s\) 97 of X hold values beyond float32's"):
        model.predict(da.from_array(X, chunks=(40, 8, 8, 3))).compute(scheduler="synchronous")


def test_a_dask_array_of_too_many_or_too_few_axes_is_refused_as_numpy_x_is():
    da = pytest.importorskip("dask.array")
    X, y = _images(n=60)
    model = _fit(ConvNetClassifier(**SMALL), X, y)
    with pytest.raises(ValueError, match="got X.ndim=5"):
        model.predict(da.from_array(X[..., None]))
    with pytest.raises(ValueError, match="Expected 2D array, got 1D array"):
        model.predict_proba(da.from_array(X[:, 0, 0, 0]))


def test_a_dask_array_of_no_rows_is_refused_at_predict_as_numpy_x_is():
    # it was answered with an empty lazy array where numpy X of no rows raises
    da = pytest.importorskip("dask.array")
    X, y = _images(n=60)
    model = _fit(ConvNetClassifier(**SMALL), X, y)
    for empty in (X[:0], X[:0].reshape(0, 8 * 8 * 3)):
        lazy = da.from_array(empty)
        for name in ("predict", "predict_proba", "predict_log_proba", "transform", "score"):
            args = (y[:0],) if name == "score" else ()
            with pytest.raises(ValueError, match=r"Found array with 0 sample\(s\)") as numpy:
                getattr(model, name)(empty, *args)
            with pytest.raises(ValueError, match=re.escape(str(numpy.value))):
                getattr(model, name)(lazy, *args)


def test_a_dask_array_with_chunks_of_no_rows_fits_and_predicts_as_numpy_x():
    # a mask or a concatenation leaves chunks of no rows: each was predicted
    # alone and refused ("Found array with 0 sample(s)"), and a last such chunk
    # failed the fit's scan
    da = pytest.importorskip("dask.array")
    X, y = _images(n=60)
    params = dict(SMALL, input_scale=255, shuffle_buffer=60)
    reference = _fit(ConvNetClassifier(**params), X, y)
    for chunks in ((0, 30, 0, 30), (30, 30, 0)):
        Xd = da.from_array(X, chunks=(chunks, 8, 8, 3))
        model = _fit(ConvNetClassifier(**params), Xd, y)
        _assert_same_model(model, reference)
        for name in ("predict", "predict_proba", "transform"):
            lazy = getattr(model, name)(Xd)
            assert lazy.chunks[0] == chunks
            assert_array_equal(lazy.compute(scheduler="synchronous"),
                               getattr(reference, name)(X), err_msg=name)
        assert model.score(Xd, y) == reference.score(X, y)


@pytest.mark.parametrize("output", ["pandas", "polars"])
def test_transform_of_a_dask_array_under_set_output_is_the_dataframe_asked_for(output):
    # each block's DataFrame was taken for an array (AttributeError: 'DataFrame'
    # object has no attribute 'dtype'), and polars could not hold a Dask array
    da = pytest.importorskip("dask.array")
    lib = pytest.importorskip(output)
    X, y = _images(n=60)
    model = _fit(ConvNetClassifier(**SMALL, input_scale=255), X, y)
    expected = model.transform(X)
    model.set_output(transform=output)
    frame = model.transform(da.from_array(X, chunks=(25, 8, 8, 3)))
    assert isinstance(frame, lib.DataFrame)
    assert list(frame.columns) == list(model.get_feature_names_out())
    assert_array_equal(np.asarray(frame), expected)


def test_a_dask_array_of_unknown_length_is_refused_by_fit_as_by_predict():
    # computed whole by scikit-learn's validation, it would not be read a chunk
    # at a time: both say how to make its chunks known
    da = pytest.importorskip("dask.array")
    X, y = _images(n=60)
    Xd = da.from_array(X, chunks=20)
    masked = Xd[da.from_array(np.ones(60, dtype=bool), chunks=20)]
    with pytest.raises(ValueError, match=r"unknown chunk sizes .*compute_chunk_sizes"):
        ConvNetClassifier(**SMALL).fit(masked, y)
    model = _fit(ConvNetClassifier(**SMALL), Xd, y)
    with pytest.raises(ValueError, match=r"unknown chunk sizes .*compute_chunk_sizes"):
        model.predict(masked)
    masked.compute_chunk_sizes()
    _assert_same_model(_fit(ConvNetClassifier(**SMALL), masked, y), model)


def test_partial_fit_over_dask_blocks_with_dask_ml_incremental():
    da = pytest.importorskip("dask.array")
    wrappers = pytest.importorskip("dask_ml.wrappers")
    X, y = _images(n=300)
    flat = X.reshape(300, -1)
    Xd = da.from_array(flat, chunks=(100, 192))
    yd = da.from_array(y, chunks=100)
    params = dict(SMALL, input_shape=(8, 8, 3), input_scale=255)
    inc = wrappers.Incremental(ConvNetClassifier(**params), shuffle_blocks=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        inc.fit(Xd, yd, classes=np.arange(3))
    # the plain loop over the blocks, as the docs show it
    loop = ConvNetClassifier(**params)
    for xb, yb in zip(Xd.blocks, yd.blocks):
        loop.partial_fit(xb.compute(), yb.compute(), classes=np.arange(3))
    _assert_same_model(inc.estimator_, loop)
    assert_array_equal(inc.predict(Xd).compute(), loop.predict(flat))


def test_a_model_pickled_before_input_scale_existed_loads_and_predicts_the_same():
    X, y = _images(n=120)
    model = _fit(ConvNetClassifier(**SMALL), X.astype(np.float32) / 255, y)
    state = model.__getstate__()
    del state["input_scale"], state["shuffle_buffer"]  # what skconv 0.1 pickled
    loaded = ConvNetClassifier.__new__(ConvNetClassifier)
    loaded.__setstate__(state)
    assert loaded.get_params()["input_scale"] is None
    assert_array_equal(loaded.predict_proba(X / 255), model.predict_proba(X / 255))
    assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_onnx_export_divides_by_input_scale_as_predict_does():
    skl2onnx = pytest.importorskip("skl2onnx")
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("skconv.onnx")
    X, y = _images(n=120)
    for model in (_fit(ConvNetClassifier(**SMALL, input_scale=255), X, y),
                  _fit(ConvNetClassifier(**SMALL, input_scale=255, dtype="float64"), X, y)):
        onx = skl2onnx.to_onnx(model, X[:1].astype(np.float32), options={"zipmap": False})
        session = ort.InferenceSession(onx.SerializeToString(),
                                       providers=["CPUExecutionProvider"])
        _, proba = session.run(None, {session.get_inputs()[0].name: X.astype(np.float32)})
        # onnxruntime's own kernels: close to predict's bits, not equal to them
        np.testing.assert_allclose(proba, model.predict_proba(X), rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------- DataFrames, callbacks

@pytest.mark.parametrize("library", ["pandas", "polars"])
def test_dataframe_column_names_are_kept_and_their_order_checked(library):
    lib = pytest.importorskip(library)
    X, y = _images(n=120, shape=(4, 4, 1))
    X = X.reshape(120, -1).astype(np.float32) / 255
    columns = [f"px{i}" for i in range(16)]
    frame = lib.DataFrame({c: X[:, i] for i, c in enumerate(columns)})
    model = _fit(ConvNetClassifier(**SMALL), frame, y)
    assert list(model.feature_names_in_) == columns
    assert_array_equal(model.predict(frame), _fit(ConvNetClassifier(**SMALL), X, y).predict(X))
    reversed_frame = frame[columns[::-1]]
    with pytest.raises(ValueError, match="feature names"):
        model.predict(reversed_frame)


def test_a_polars_column_of_images_is_read_as_their_array():
    # a column of lists (or of fixed-shape arrays) and the table of that one
    # column, as the pandas column is; numpy said "setting an array element
    # with a sequence" of each, and of images of unequal size
    pl = pytest.importorskip("polars")
    X, y = _images(n=60, shape=(4, 4))
    X = X.astype(np.float32) / 255
    reference = _fit(ConvNetClassifier(**SMALL), X, y)
    expected = reference.predict_proba(X)
    lists = pl.Series("image", X.tolist())
    for column in (lists, pl.DataFrame({"image": lists}), pl.DataFrame({"image": X})):
        model = _fit(ConvNetClassifier(**SMALL), column, y)
        assert model.input_shape_ == (4, 4, 1)
        assert_array_equal(model.predict_proba(column), expected)
        assert_array_equal(reference.predict_proba(column), expected)
    with pytest.raises(ValueError, match=r"X has 2 columns and holds arrays in its cells "
                                         r"\(a sequence of 4 values in column 'image'\)"):
        _fit(ConvNetClassifier(**SMALL), pl.DataFrame({"image": lists, "label": y}), y)
    with pytest.raises(ValueError, match=r"X has 2 columns and holds arrays in its cells"):
        _fit(ConvNetClassifier(**SMALL), pl.DataFrame({"image": [None] + X.tolist()[1:],
                                                       "label": y}), y)
    # lists of one shape are read as one array of their dtype (uint8 stays as
    # stored), not through Python lists, which cost seconds and GiBs for a dataset
    raw = pl.Series("image", (X * 255).astype(np.uint8).tolist(),
                    dtype=pl.List(pl.List(pl.UInt8)))
    samples = column_of_samples(pl.DataFrame({"image": raw}))
    assert isinstance(samples, np.ndarray) and samples.dtype == np.uint8
    assert_array_equal(samples, (X * 255).astype(np.uint8))
    # as numpy holds it (object arrays in object arrays), by its to_numpy() or
    # passed through by a ColumnTransformer, whose default output is numpy's
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import make_pipeline

    table = pl.DataFrame({"image": lists, "label": y})
    pipe = make_pipeline(ColumnTransformer([("image", "passthrough", ["image"])]),
                         ConvNetClassifier(**SMALL))
    assert_array_equal(_fit(pipe, table, y).predict_proba(table), expected)
    assert_array_equal(reference.predict_proba(lists.to_numpy()), expected)
    # a query not yet run: numpy said "setting an array element with a sequence"
    with pytest.raises(ValueError, match=r"X is a polars LazyFrame, .*X.collect\(\)"):
        _fit(ConvNetClassifier(**SMALL), pl.DataFrame({"image": lists}).lazy(), y)
    ragged = pl.Series("image", X[:3].tolist() + [X[3, :, :3].tolist()])
    with pytest.raises(ValueError, match=r"sample shapes seen: \(4, 3\), \(4, 4\)"):
        _fit(ConvNetClassifier(**SMALL), ragged, y[:4])


def test_a_pyarrow_backed_pandas_column_of_images_is_read_as_their_array():
    # pd.read_parquet(..., dtype_backend="pyarrow") gives a list column, whose
    # cells numpy did not stack ("setting an array element with a sequence")
    pd = pytest.importorskip("pandas")
    pa = pytest.importorskip("pyarrow")
    X, y = _images(n=60, shape=(4, 4))
    X = X.astype(np.float32) / 255
    expected = _fit(ConvNetClassifier(**SMALL), X, y).predict_proba(X)
    lists = pd.ArrowDtype(pa.list_(pa.list_(pa.float64())))
    column = pd.Series(X.tolist(), dtype=lists)
    for images in (column, column.to_frame("image")):
        assert_array_equal(_fit(ConvNetClassifier(**SMALL), images, y).predict_proba(images),
                           expected)
    with pytest.raises(ValueError, match=r"^sample 0 of X is <NA>, not an array of values"):
        _fit(ConvNetClassifier(**SMALL), pd.Series([None] + X.tolist()[1:], dtype=lists), y)


class _BatchCounter:
    def __init__(self):
        self.batches = 0

    def setup(self, estimator, context):
        pass

    def teardown(self, estimator, context):
        pass

    def on_fit_task_begin(self, estimator, context):
        pass

    def on_fit_task_end(self, estimator, context):
        self.batches += context.task_name == "batch"


def test_streamed_epochs_report_their_batches_to_callbacks(memmap):
    pytest.importorskip("sklearn.callback")
    X, y = _images()
    counter = _BatchCounter()
    _fit(ConvNetClassifier(**SMALL).set_callbacks(counter), memmap(X), y)
    assert counter.batches == 2 * 8  # 240 rows in batches of 32, two epochs
    counter = _BatchCounter()
    _fit(ConvNetClassifier(**SMALL).set_callbacks(counter), X, y)
    assert counter.batches == 0  # in memory, 8 batches: too short an epoch to report


def test_raw_pixels_warn_and_input_scale_silences_the_warning(memmap):
    X, y = _images()
    with pytest.warns(UserWarning, match="input_scale=255"), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ConvNetClassifier(**SMALL).fit(memmap(X), y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", ConvergenceWarning)
        ConvNetClassifier(**SMALL, input_scale=255).fit(memmap(X), y)


def _run_on_a_small_machine(code):
    """Run ``code`` in a fresh interpreter whose address space ``limit(extra)``
    caps at what it has mapped plus ``extra`` bytes: a machine short of memory.
    Returns the last line it prints."""
    here = os.path.dirname(os.path.dirname(skconv.__file__))
    setup = textwrap.dedent("""
        import resource, warnings
        import numpy as np
        warnings.simplefilter("ignore")

        def limit(extra):
            mapped = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
            resource.setrlimit(resource.RLIMIT_AS, (mapped + extra, mapped + extra))
    """)
    result = subprocess.run([sys.executable, "-P", "-c", setup + textwrap.dedent(code)],
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": here})
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_a_network_too_large_to_allocate_names_its_largest_layer():
    out = _run_on_a_small_machine("""
        from skconv._layers import Dense, Flatten
        from skconv._network import Sequential
        limit(1 << 30)
        try:
            Sequential([Flatten(), Dense(100_000)], (1, 100, 100), "float32")
        except MemoryError as error:
            print(error)
    """)
    assert re.match(r"\S+ would hold 1e\+09 parameters \(w of shape \(10000, 100000\)\): "
                    r"the network's 1e\+09 parameters take 3.73 GiB", out)


@pytest.mark.parametrize("solver, limit", [("adam", 600), ("sgd", 600), ("adam", 900)])
def test_a_fit_whose_parameters_or_solver_state_do_not_fit_names_the_largest_layer(
        solver, limit):
    # 200 MB of parameters and as much of gradients fit, but not the initial
    # draws, in float64 (600 MiB more), or Adam's two moments and work array
    # (900 MiB more)
    out = _run_on_a_small_machine(f"""
        from skconv import ConvNetClassifier
        X = np.zeros((4, 100, 100), dtype=np.float32)
        limit({limit} << 20)
        try:
            ConvNetClassifier(conv_layers=(), hidden_layer_sizes=(5_000,), solver={solver!r},
                              max_iter=1).fit(X, [0, 1, 0, 1])
        except MemoryError as error:
            print(error)
    """)
    assert re.match(r"\S+ would hold 5e\+07 parameters \(w of shape \(10000, 5000\)\): "
                    r"the network's 5e\+07 parameters take 0.186 GiB, and training keeps", out)


def test_a_fit_out_of_memory_names_the_batch_and_the_images():
    out = _run_on_a_small_machine("""
        from skconv import ConvNetClassifier
        X = np.zeros((8, 800, 800, 3), dtype=np.uint8)
        limit(512 << 20)
        try:
            ConvNetClassifier(conv_layers=(64,), global_pool="avg", hidden_layer_sizes=(),
                              batch_size=8, max_iter=1).fit(X, np.arange(8) % 2)
        except MemoryError as error:
            print(error)
    """)
    assert out.startswith("Out of memory training on images of shape (800, 800, 3) in batches "
                          "of 8 (batch_size=8): a batch's activations alone take ")
    assert out.endswith("Lower batch_size, or use a smaller network.")


def test_a_prediction_out_of_memory_names_the_images_and_the_passes():
    out = _run_on_a_small_machine("""
        from skconv import ConvNetClassifier
        X = np.zeros((4, 500, 500, 3), dtype=np.uint8)
        clf = ConvNetClassifier(conv_layers=(64,), global_pool="avg", hidden_layer_sizes=(),
                                batch_size=1, max_iter=1).fit(X[:2], [0, 1])
        limit(64 << 20)
        try:
            clf.predict(X)
        except MemoryError as error:
            print(error)
    """)
    assert re.match(r"Out of memory predicting images of shape \(500, 500, 3\): \d pass\(es\) "
                    r"of \d rows at once, each holding [\d.]+ MiB of activations at most", out)
