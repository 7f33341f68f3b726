"""X in the forms users hold their samples, read as an array of them.

Lists of samples, pandas and polars columns of arrays, nested and long
tables of series, mappings of arrays: each is read as its samples or refused
in the terms of images and series (shapes, lengths, channels, time steps),
where numpy and scikit-learn would speak of "features" or "an inhomogeneous
shape". The estimators (``_base``) call these before validation; decisions
only, no numerics.
"""

import contextlib
from numbers import Integral

import numpy as np

from . import _data


def check_equal_lengths(X, signal):
    """Refuse a list of samples of unequal lengths in those terms, not as numpy's
    "inhomogeneous shape": series of another length each are the usual case.
    Returns whether X is a sequence of samples (each a sequence itself)."""
    if not isinstance(X, (list, tuple)) or not X:
        return False
    present = [_is_sequence(row) or _is_image_object(row) for row in X]
    if not all(present):
        if not any(present):
            return False  # values, not samples: validation says what is wrong
        # a missing sample (None, NaN) among arrays, as a merge leaves in a
        # column of images: numpy would speak of setting an array element
        i = present.index(False)
        raise ValueError(
            f"sample {i} of X is {X[i]!r:.40}, not an array of values as sample "
            f"{present.index(True)} is: a network takes one array a sample. Drop the "
            "samples without one (e.g. df.dropna()) or fill them first."
        )
    if not all(map(_is_sequence, X)):
        return False  # images numpy reads (PIL's); unequal ones are named after it
    lengths = [len(row) for row in X]
    if len(set(lengths)) > 1:
        check_equal_shapes(X, signal)  # images are named by their shapes
    _refuse_unequal(lengths, "lengths", "has", signal)
    return True


def unnested(cell):
    """A sample with the object arrays in it as lists: a polars or pyarrow list
    column as numpy holds it (its ``to_numpy()``, a ``ColumnTransformer``'s
    output) nests object arrays in object arrays, which numpy neither stacks
    nor sees the shapes of."""
    if isinstance(cell, np.ndarray) and cell.dtype == object:
        return [unnested(c) for c in cell]
    return cell


def _is_sequence(row):
    """Whether a sample of a list is a sequence of values (not a value: a
    number, a string, None, a 0-D array)."""
    return (not isinstance(row, (str, bytes)) and hasattr(row, "__len__")
            and getattr(row, "ndim", 1) != 0)


def _is_image_object(row):
    """Whether a sample is an image that numpy reads as an array without being
    a sequence or an array (a PIL image): its type has an array interface (on
    the type: PIL computes an image's, a copy of it)."""
    return (not hasattr(row, "ndim") and not hasattr(row, "__len__")
            and hasattr(type(row), "__array_interface__"))


def refuse_mapping(X):
    """Refuse a mapping of arrays (an HDF5 file or group, a Zarr group, an
    ``.npz`` file, a dict) naming its entries: numpy reads it as its names
    ("could not convert string to float: 'X'"), when one of its arrays is meant."""
    if not hasattr(X, "keys") or hasattr(X, "shape") or hasattr(X, "columns"):
        return
    names = list(X.keys())
    shown = ", ".join(map(repr, names[:5])) + (", ..." if len(names) > 5 else "")
    raise ValueError(
        f"X is a {type(X).__name__} of {len(names)} named entries ({shown}), not an array "
        "of samples: pass the array itself"
        + (f", e.g. X[{names[0]!r}]." if names else ".")
    )


def column_of_samples(X, signal=False):
    """X whose cells hold the samples, as a 1-D sequence of them.

    A pandas or polars column of arrays or lists (``df["image"]``), and a
    table of that one column (``df[["image"]]``, or the ``(n, 1)`` object
    array a ``ColumnTransformer`` passes it through as): numpy makes none of
    them one array of the samples ("setting an array element with a
    sequence"), their sequence of samples it does. A table of more columns,
    one holding arrays, is refused in those terms; for a model of series
    (``signal``) it is most likely one column a channel, as sktime's nested
    frames hold multivariate series, and the error says how to stack them.
    Any other X is returned as it is.
    """
    library = type(X).__module__.split(".")[0]
    if library == "polars":
        return _polars_samples(X, signal)
    # pandas' own objects only: a Dask frame has iloc too, but no rows to look at
    # without computing them
    pandas = library == "pandas"
    if pandas:
        # object columns, and pyarrow-backed ones (a list column read from
        # Parquet), whose kind is object too
        table = X.to_frame() if X.ndim == 1 else X
        if 0 in table.shape or not any(dtype.kind == "O" for dtype in table.dtypes):
            return X
        columns = [table.iloc[:, j] for j in range(table.shape[1])]
    elif isinstance(X, np.ndarray) and X.dtype == object and X.ndim == 2 and X.size:
        columns = list(X.T)
    else:
        return X
    # each column's first cell that is there: a merge leaves None or NaN in a
    # column of images, the first row's included
    row = [next((cell for cell in column if not _is_missing(cell)), None) for column in columns]
    # sequences, arrays, and images numpy reads as arrays (PIL's)
    held = [j for j, cell in enumerate(row)
            if isinstance(cell, (list, tuple)) or getattr(cell, "ndim", 0) >= 1
            or _is_image_object(cell)]
    if not held:
        return X  # values (strings, dicts): validation says what is wrong
    if len(columns) > 1:
        # one column a channel: every column holds a channel's series
        channels = signal and len(held) == len(row) and all(np.ndim(row[j]) == 1 for j in held)
        _refuse_table_of_cells(len(columns), row[held[0]],
                               table.columns[held[0]] if pandas else held[0], signal, channels)
    if not pandas:
        return X[:, 0]
    # a pyarrow list column's to_numpy() nests object arrays in object arrays,
    # whose shapes numpy does not see: its cells as lists instead
    column = columns[0]
    return column.to_numpy() if column.dtype == object else column.tolist()


def _is_missing(cell):
    """Whether a cell holds no sample: None, NaN or pandas' NA."""
    return (cell is None or (isinstance(cell, float) and cell != cell)
            or type(cell).__name__ == "NAType")


def _polars_samples(X, signal=False):
    """:func:`column_of_samples` of a polars Series or DataFrame. A column of
    fixed-shape arrays is one ndarray already, and so is a column of lists
    of one shape, cast to arrays of it; other lists (ragged, or missing) are
    the cells as lists, for the checks to name them: their ``to_numpy()``
    nests object arrays in object arrays, whose shapes numpy does not see."""
    import polars as pl

    def nested(dtype):
        return isinstance(dtype, (pl.List, pl.Array))

    if isinstance(X, pl.LazyFrame):  # numpy would see no values in it
        raise ValueError("X is a polars LazyFrame, a query not yet run: pass X.collect().")
    if isinstance(X, pl.DataFrame):
        held = [j for j, dtype in enumerate(X.dtypes) if nested(dtype)]
        if not held or X.height == 0:
            return X
        if X.width > 1:
            name = X.columns[held[0]]
            cell = X.get_column(name).drop_nulls().head(1).to_list()
            _refuse_table_of_cells(X.width, cell[0] if cell else [], name, signal)
        X = X.to_series(0)
    if not isinstance(X, pl.Series) or not nested(X.dtype):
        return X
    if isinstance(X.dtype, pl.List) and len(X) and not X.null_count():
        leaf = X.dtype
        while nested(leaf):
            leaf = leaf.inner
        try:  # the cells as Python lists cost seconds and GiBs for a dataset
            X = X.cast(pl.Array(leaf, np.shape(X.head(1).to_list()[0])))
        except (ValueError, pl.exceptions.PolarsError):
            return X.to_list()
    return X.to_numpy() if isinstance(X.dtype, pl.Array) else X.to_list()


def _refuse_table_of_cells(n_columns, cell, name, signal=False, channels=False):
    """Refuse a table of ``n_columns`` columns whose column ``name`` holds
    arrays (``cell`` is one of them); ``channels``: a model of series sees one
    column a channel."""
    cell = (f"a sequence of {len(cell)} values" if isinstance(cell, (list, tuple))
            else f"one of shape {np.shape(cell)}")
    one = "series" if signal else "image"
    if channels:
        # a column per channel, each cell one channel's series (sktime's nested
        # frames): passing one column alone would drop the other channels
        fix = ("A table of one column a channel, each cell a channel's series (as sktime's "
               "nested frames hold multivariate series), stacks into series (n, length, "
               "channels) with np.stack([np.stack(df[c]) for c in columns], axis=-1).")
    else:
        fix = (f"Pass the {one} column alone, or stack the columns into samples first, "
               "e.g. np.stack([np.stack(df[c]) for c in columns], axis=-1) for one "
               "channel a column.")
    raise ValueError(
        f"X has {n_columns} columns and holds arrays in its cells ({cell} in column "
        f"{name!r}): a network takes one sample a row, one array each (a single column "
        f"of them, df[\"{one}\"], is read as its samples). " + fix
    )


def refuse_long_series(X, shape):
    """Refuse series in long format, a row per time step of each series, naming
    the reshape: read as rows, they were samples of one time step, counted
    against y as such. Such a table (sktime's ``pd-multiindex``) has a column
    a channel of the series' ``shape``, ``(length, channels)``, and an index
    (series, time) whose first level repeats; a table of one series a row
    indexed by (subject, trial) has a column a value of each series."""
    index = getattr(X, "index", None)
    length, channels = shape
    if (type(X).__module__.split(".")[0] != "pandas" or getattr(X, "ndim", 0) != 2
            or X.shape[1] != channels or length == 1
            or getattr(index, "nlevels", 1) < 2 or index.get_level_values(0).is_unique):
        return
    names = ", ".join(str(v) for v in index.names)
    raise ValueError(
        f"X holds series in long format: {X.shape[0]} rows of {X.shape[1]} columns indexed "
        f"by ({names}), a row per time step of each series as sktime's pd-multiindex holds "
        "them; a network takes one series a row. Stack each series' rows into series "
        "(n, length, channels), a column a channel: np.stack([s.to_numpy() for _, s in "
        "X.groupby(level=0)])."
    )


def refuse_channel_major_columns(X, shape):
    """Refuse a table of series whose columns are (channel, time) pairs a
    channel at a time, as ``DataFrame.unstack()`` makes them from series in
    long format: its rows hold each channel's steps in turn, where series rows
    hold each step's channels together ((length, channels) order), so they
    would train and predict, mixed up, without an error. The column level
    that changes slowest runs through the ``channels`` of the series'
    ``shape``, ``(length, channels)``; where length and channels are equal
    the order cannot be told, and the table is read as it is."""
    columns = getattr(X, "columns", None)
    length, channels = shape
    if (type(X).__module__.split(".")[0] != "pandas" or getattr(columns, "nlevels", 1) != 2
            or not isinstance(channels, Integral) or channels < 2
            or len(columns) % channels or len(columns) // channels == channels):
        return
    outer = columns.get_level_values(0)
    runs = 1 + int(np.count_nonzero(outer[1:] != outer[:-1]))
    if runs != channels:
        return
    steps = len(columns) // channels
    raise ValueError(
        f"X's columns are (channel, time) pairs, its {channels} channels of {steps} time "
        "steps each in turn (as DataFrame.unstack() makes them from series in long "
        "format); a row of series holds each time step's channels together, (length, "
        "channels) order, and these would be read mixed up. Pass X.to_numpy().reshape("
        f"len(X), {channels}, {steps}).transpose(0, 2, 1), series (n, length, channels)."
    )


def check_equal_shapes(X, signal):
    """Refuse samples of X whose shapes differ, naming them (their lengths, for
    1-D samples); aeon holds multivariate series of unequal lengths so, as a
    list of ``(channels, length)`` arrays."""
    try:
        shapes = [np.shape(row) for row in X]
    except ValueError:  # a sample ragged in itself: numpy's message stands
        return
    if all(len(v) == 1 for v in shapes):
        return _refuse_unequal([v[0] for v in shapes], "lengths", "has", signal)
    hint = ""
    if signal and all(len(v) == 2 and v[0] == shapes[0][0] < v[1] for v in shapes):
        hint = (" Samples of (channels, length), as aeon holds series of unequal lengths, "
                "are then stacked channels-first: pass X.transpose(0, 2, 1).")
    elif signal and all(len(v) == 2 and v[0] == shapes[0][0] for v in shapes):
        # (length, channels) samples of one length: padding along time cannot help
        _refuse_unequal(shapes, "sample shapes", "is", signal,
                        unequal="numbers of channels",
                        fix="a network takes series of one shape (length, channels). Give "
                            "every series the same channels, in the same order.")
    _refuse_unequal(shapes, "sample shapes", "is", signal, hint)


def _refuse_unequal(seen_per_sample, what, verb, signal, hint="", unequal="length", fix=None):
    """Raise the error of samples of unequal ``unequal`` (length, or numbers of channels),
    naming ``what`` was seen (each sample's entry of ``seen_per_sample``), if
    they are not all the same."""
    seen = sorted(set(seen_per_sample))
    if len(seen) < 2:
        return
    first = seen_per_sample[0]
    other = next(i for i, v in enumerate(seen_per_sample) if v != first)
    shown = ", ".join(map(str, seen[:6])) + (", ..." if len(seen) > 6 else "")
    said = (f"{what} seen: {shown}; sample 0 {verb} {first}, sample {other} {verb} "
            f"{seen_per_sample[other]}")
    # a model of images reads samples of two or three axes as images
    if not signal and all(isinstance(v, tuple) and len(v) >= 2 for v in seen):
        raise ValueError(
            f"X holds images of unequal shape ({said}): a network takes images of one "
            "shape. Resize, crop or pad them to one shape first (e.g. PIL's Image.resize)."
        )
    if fix is None:
        fix = ("a network takes samples of one length. Pad the series to one length (zeros "
               "at the end) or resample them (e.g. np.interp onto a common time grid) first.")
    raise ValueError(
        f"X holds {'series' if signal else 'rows'} of unequal {unequal} ({said}): {fix}{hint}"
    )


_NOT_FINITE = {"NaN": "missing values", "infinity": "infinite values"}


def check_finite_series(X, shape, offset=None):
    """Refuse NaN or infinity in series naming the series, the time step and the
    channel.

    ``shape`` is the series' ``(1, length, channels)`` (None in a first fit:
    X's own); X is a float array, 2D rows in (length, channels) order or 3D,
    or, given an ``offset``, a block of it: rows ``offset`` on of the X the
    user gave (the first block too, at 0, is counted as a block). It is read
    in blocks of rows, a memory map's pages let go as it goes (``_data.Rows``),
    so a check of X on disk does not load it.
    """
    if X.ndim not in (2, 3) or X.size == 0:
        return
    rows = _data.Rows(X)
    first = None  # (series, offset in its row) of the first NaN or infinity
    tail = None  # that series' NaN from the time step of its first one on
    n_bad = 0
    kinds = set()  # "NaN", "infinity": what the series hold
    for start, stop in rows.blocks():
        block = rows.read(start, stop)
        rows.touched(stop - start)
        if np.isfinite(np.sum(block, dtype=np.float64)):
            continue
        bad = ~np.isfinite(block)
        has_bad = bad.any(axis=1)
        n_bad += int(has_bad.sum())
        nan = np.isnan(block)
        kinds.update(k for k, seen in (("NaN", nan.any()), ("infinity", (bad & ~nan).any()))
                     if seen)
        if first is None and has_bad.any():
            i = int(np.argmax(has_bad))
            first = (start + i, int(np.argmax(bad[i])))
            tail = nan[i]
    if first is None:
        return  # a sum past float64's range of finite values: nothing to refuse
    i, j = first
    channels = X.shape[2] if X.ndim == 3 else (shape[2] if shape is not None else 1)
    if not isinstance(channels, Integral) or channels < 1 or (X.ndim == 2 and X.shape[1] % channels):
        channels = 1
    step, channel = divmod(j, channels)
    where = f"time step {step}" + (f", channel {channel}" if channels > 1 else "")
    among = (f"{X.shape[0]} series" if offset is None else
             f"series {offset} to {offset + X.shape[0] - 1}, a block of X,")
    i += offset or 0
    what = "NaN" if tail[j] else "infinity"
    fix = ("Fill them first (interpolate along time, e.g. pandas' DataFrame.interpolate, or "
           "impute) or drop those series.")
    if tail[step * channels:].all():
        # NaN from a step to the end, in every channel: the padding of series
        # of unequal length that tslearn's to_time_series_dataset writes
        fix = (f"Series {i} is NaN from time step {step} to its end, as padding of "
               "series of unequal length is (tslearn's to_time_series_dataset): pad with "
               "zeros instead (np.nan_to_num(X)) or resample the series to one length.")
    raise ValueError(
        f"X holds {what} in series {i} at {where} ({n_bad} of {among} hold "
        f"{' or '.join(sorted(kinds))}): a network cannot train on or predict "
        f"{' or '.join(_NOT_FINITE[k] for k in sorted(kinds))}. {fix}"
    )


@contextlib.contextmanager
def series_terms(X, shape):
    """Say a NaN or infinity found by validation in series terms, as
    :func:`check_finite_series` names it in a float array before: in series
    kept as stored (an HDF5, Zarr or Dask array, whose blocks are checked as
    they are read), or held by a DataFrame or a list (which numpy converts only
    at validation). X is read again, as floats, on that error only.
    ``shape`` is the series' ``(1, length, channels)``; None (images) leaves
    the error as it is."""
    try:
        yield
    except ValueError as error:
        if shape is not None and str(error).startswith(("Input X contains NaN",
                                                        "Input X contains infinity")):
            try:
                values = X if _data.is_stored(X) else np.asarray(X, dtype=np.float64)
            except (TypeError, ValueError):  # not an array of numbers: the error stands
                raise error from None
            try:
                check_finite_series(values, shape)
            except ValueError as series:
                raise series from None
        raise
