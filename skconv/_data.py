"""X as stored: validated in blocks, read and converted one batch at a time.

X stays as the user holds it (a numpy array or memory map, an h5py dataset, a
Zarr array, a Dask array) in its own dtype (uint8, uint16, float16, float32,
float64) until a batch needs its rows: the batch gather then casts, moves the
channels first, divides by ``input_scale`` and augments in one pass
(``skconv._augment.gather_images``). Memory grows with the batch, not with X.

Two kinds of X:

- random access (any numpy array, memory maps included): a batch's rows are
  read where they lie, so shuffling is exact and the bits of a fit are those
  of the same X in memory;
- chunked stores (h5py, Zarr, Dask): rows are read a chunk at a time. An
  epoch visits the chunks in a random order, ``shuffle_buffer`` rows' worth at
  a time, and shuffles the rows of each such group (:class:`ChunkPlan`).
"""

import functools
import math
import mmap
import os
import uuid
import weakref

import numpy as np
import scipy.sparse as sp
from sklearn.utils._set_output import _get_output_config

from ._augment import gather_images
from ._kernels import _boundary

STORED_DTYPES = tuple(np.dtype(t) for t in (np.uint8, np.uint16, np.float16, np.float32,
                                            np.float64))

# rows of X read at once by the checks of a fit and by prediction's reads of a
# chunked store: a few MiB, so a block stays cheap next to the model
BLOCK_BYTES = 8 << 20

# The pages of a memory map that have been read stay mapped, and count in the
# process's resident memory, until the kernel wants them back: a fit would seem
# to hold all of X. Blocks read in order are dropped from the mapping after
# this many bytes (they stay in the page cache, so a later read maps them
# again without touching the disk). Rows read here and there (a shuffled
# batch) are read from the file instead: a fault maps the whole large folio
# around the row (about 1 MB a row on ext4 with Linux 6.18: 200 rows mapped
# 190 MB).
RELEASE_BYTES = 4 << 20


def is_dask(X):
    """A Dask array (without importing Dask)."""
    return type(X).__module__.split(".")[0] == "dask" and hasattr(X, "map_blocks")


def check_known_chunks(X):
    """Refuse a Dask array whose row count is unknown (after a boolean mask):
    it could be neither read a chunk at a time nor split into blocks."""
    if is_dask(X) and any(math.isnan(s) for s in X.shape):
        raise ValueError(f"X has unknown chunk sizes {X.chunks}: call X.compute_chunk_sizes()")


def is_stored(X):
    """Whether X stays as stored: an array of a stored dtype with 2 to 4 axes,
    none empty, that slices rows (numpy arrays and memory maps, h5py datasets,
    Zarr and Dask arrays). Anything else (lists, DataFrames, sparse matrices,
    other dtypes, empty or 1-D X) goes through scikit-learn's validation whole,
    which also words the errors."""
    if (sp.issparse(X) or isinstance(X, np.matrix) or hasattr(X, "columns")
            or hasattr(X, "iloc") or not hasattr(X, "__getitem__")):
        return False
    try:
        dtype, shape = np.dtype(X.dtype), tuple(X.shape)
    except (AttributeError, TypeError):
        return False
    # either byte order: a big-endian store (FITS images, some HDF5 files) is
    # swapped a block at a time as it is read
    return (dtype.newbyteorder("=") in STORED_DTYPES and 2 <= len(shape) <= 4
            and all(isinstance(s, (int, np.integer)) and s > 0 for s in shape))


class Rows:
    """X's rows as stored, with X seen as 2-D ``(n, h * w * c)`` rows.

    Parameters
    ----------
    X : array of shape (n, n_features), (n, h, w) or (n, h, w, c)
        As accepted by :func:`is_stored`.

    Attributes
    ----------
    data : the X given
    shape : (n, n_features)
    image_shape : (h, w, c) for 3-D and 4-D X, else None
    random_access : bool
        A numpy array: any rows are read where they lie.
    bounds : ndarray of int or None
        Chunked stores: the first row of each chunk, then n.
    checked : bool
        Every value is known finite (integer X, or a fit's scan); prediction
        checks each block it reads otherwise.
    streamed : bool
        X is read from disk or a cluster (a memory map, a chunked store).
    """

    def __init__(self, X):
        self.data = X
        n = int(X.shape[0])
        self.shape = (n, math.prod(int(s) for s in X.shape[1:]))
        # rows are read in the native byte order (a block at a time), which
        # the gather kernel reads
        self.dtype = np.dtype(X.dtype).newbyteorder("=")
        native = np.dtype(X.dtype).isnative
        self.image_shape = (tuple(int(s) for s in X.shape[1:]) + (1,) * (4 - X.ndim)
                            if X.ndim > 2 else None)
        self.random_access = isinstance(X, np.ndarray)
        self.streamed = isinstance(X, np.memmap) or not self.random_access
        self.checked = self.dtype.kind != "f"  # integers are always finite
        # a C-contiguous array is read by the gather where it lies; other
        # layouts are copied a batch at a time
        self._flat = (X.reshape(self.shape)
                      if self.random_access and X.flags.c_contiguous and native else None)
        self.bounds = None if self.random_access else _chunk_bounds(X, self.row_bytes)
        self._mapping = _mapping(X)
        self._mapped = 0
        self._file = _file_of(X) if self._mapping is not None else None
        if self._file is not None:
            weakref.finalize(self, os.close, self._file[0])

    def touched(self, n_rows):
        """Note that ``n_rows`` rows of X were read in order; drop a memory map's
        read pages from the mapping now and then."""
        if self._mapping is None:
            return
        self._mapped += n_rows * self.row_bytes
        if self._mapped >= RELEASE_BYTES:
            self._mapping.madvise(mmap.MADV_DONTNEED)
            self._mapped = 0

    @property
    def gathers_in_place(self):
        """Whether a batch's gather reads X where it lies (an array in memory)."""
        return self._flat is not None and self._file is None

    @property
    def row_bytes(self):
        return self.shape[1] * self.dtype.itemsize

    def read(self, start, stop):
        """Rows ``start:stop`` as a C-contiguous 2-D array (a view when possible)."""
        if self._flat is not None:
            return self._flat[start:stop]
        return np.ascontiguousarray(np.asarray(self.data[start:stop]), dtype=self.dtype).reshape(
            stop - start, self.shape[1])

    def read_chunks(self, chunks):
        """The rows of chunks ``chunks`` (of a chunked store), one array each;
        a Dask array computes them together."""
        spans = [(int(self.bounds[c]), int(self.bounds[c + 1])) for c in chunks]
        if is_dask(self.data):
            import dask

            parts = dask.compute(*[self.data[a:b] for a, b in spans])
            return [np.ascontiguousarray(p, dtype=self.dtype).reshape(b - a, self.shape[1])
                    for p, (a, b) in zip(parts, spans)]
        return [self.read(a, b) for a, b in spans]

    def take(self, rows):
        """Rows ``rows`` (any order) of a random-access X, as a contiguous array;
        a memory map's are read from its file."""
        if self._file is not None:
            fd, offset = self._file
            out = np.empty((len(rows), self.shape[1]), dtype=self.data.dtype)
            size = self.row_bytes
            for i, row in enumerate(np.asarray(rows).tolist()):
                if os.preadv(fd, [out[i]], offset + row * size) != size:
                    raise OSError(f"row {row} of {self.data.filename} could not be read whole")
            return out.astype(self.dtype, copy=False)
        if self._flat is not None:
            return self._flat[rows]
        return np.ascontiguousarray(self.data[rows], dtype=self.dtype).reshape(
            len(rows), self.shape[1])

    def take_sorted(self, rows):
        """Rows ``rows`` (increasing) of any X: chunked stores read each chunk
        holding some of them once, one chunk at a time."""
        if self.bounds is None:
            return self.take(rows)
        out = np.empty((len(rows), self.shape[1]), dtype=self.dtype)
        chunk_of = np.searchsorted(self.bounds, rows, side="right") - 1
        chunks, first = np.unique(chunk_of, return_index=True)
        ends = list(first[1:]) + [len(rows)]
        for c, a, b in zip(chunks, first, ends):
            (block,) = self.read_chunks([c])
            out[a:b] = block[rows[a:b] - self.bounds[c]]
        return out

    def blocks(self, max_bytes=BLOCK_BYTES):
        """``(start, stop)`` spans covering X in order, of about ``max_bytes`` of
        X each; a chunked store's hold whole chunks (at least one)."""
        n = self.shape[0]
        per = max(1, max_bytes // max(1, self.row_bytes))
        if self.bounds is None:
            return [(a, min(a + per, n)) for a in range(0, n, per)]
        spans, start = [], 0
        for stop in self.bounds[1:]:
            # a Dask array's chunks may hold no rows: a span holds some
            if stop > start and (stop - start >= per or stop == n):
                spans.append((start, int(stop)))
                start = int(stop)
        return spans


def _mapping(X):
    """The ``mmap`` behind a numpy memory map whose pages may be dropped, else None.

    A copy-on-write map (``mode='c'``) is left alone: dropping its pages would
    drop the changes made to it. A shared map's written pages belong to the
    file's page cache, so they survive.
    """
    if not isinstance(X, np.memmap) or getattr(X, "mode", None) == "c":
        return None
    mapping = getattr(X, "_mmap", None)
    return mapping if isinstance(mapping, mmap.mmap) else None


def _file_of(X):
    """``(file descriptor, byte offset of row 0)`` of a C-contiguous memory map
    made by ``np.memmap`` (``np.load(mmap_mode=...)``), else None."""
    root = X
    while isinstance(root.base, np.ndarray):
        root = root.base
    if (not X.flags.c_contiguous or not isinstance(root, np.memmap)
            or not isinstance(root.base, mmap.mmap) or not getattr(root, "filename", None)):
        return None
    try:
        fd = os.open(root.filename, os.O_RDONLY)
    except OSError:
        return None
    return fd, root.offset + (X.ctypes.data - root.ctypes.data)


def _chunk_bounds(X, row_bytes):
    """First row of each chunk of a chunked store, then n: Dask's row chunks,
    h5py's and Zarr's chunk shape; a store without chunks (a contiguous HDF5
    dataset) is read in blocks of about 4 MiB."""
    n = int(X.shape[0])
    chunks = getattr(X, "chunks", None)
    if chunks and isinstance(chunks[0], tuple):  # Dask: the sizes of each axis's chunks
        return np.concatenate([[0], np.cumsum(chunks[0])]).astype(np.intp)
    step = int(chunks[0]) if chunks else max(1, (4 << 20) // max(1, row_bytes))
    return np.append(np.arange(0, n, step), n).astype(np.intp)


def as_rows(X):
    """X as :class:`Rows`: validated 2-D rows in memory, or X as stored."""
    return X if isinstance(X, Rows) else Rows(X)


class Subset:
    """Rows ``positions`` of X as stored, not read: early stopping's
    validation (or training) rows. ``np.asarray`` reads them."""

    def __init__(self, rows, positions):
        self.rows = rows
        self.positions = positions
        self.shape = (len(positions), rows.shape[1])

    def __len__(self):
        return self.shape[0]

    def __array__(self, dtype=None, copy=None):
        order = np.argsort(self.positions, kind="stable")
        out = np.empty(self.shape, dtype=self.rows.dtype)
        out[order] = self.rows.take_sorted(self.positions[order])
        return out if dtype is None else out.astype(dtype)


def subset(X, positions):
    """Rows ``positions`` of validated X: a :class:`Subset` of X as stored, a
    slice of sparse X; X itself for positions None."""
    if positions is None:
        return X
    if sp.issparse(X):
        return X[positions]
    return Subset(as_rows(X), positions)


def scan(rows, stats=True, dtype=None):
    """A fit's check of X in blocks: refuse NaN and infinity, naming the rows
    (and values beyond the range of ``dtype``, the model's, where it is narrower).

    Returns the root mean square, smallest and largest value of X (for the
    raw-value warning) when ``stats``, else None. Integer X needs no finite
    check; float16 blocks are widened to float32 (exactly) first.
    """
    total = 0.0
    lo, hi = np.inf, -np.inf
    for start, stop in rows.blocks():
        block = rows.read(start, stop)
        if stats or block.dtype.kind == "f":
            total += check_block(block, start, dtype=dtype)
        if stats:
            lo, hi = min(lo, float(block.min())), max(hi, float(block.max()))
        rows.touched(stop - start)
    rows.checked = True
    if stats:
        return math.sqrt(total / (rows.shape[0] * rows.shape[1])), lo, hi
    return None


def check_block(block, start=0, row_ids=None, dtype=None):
    """Raise ``ValueError`` naming the rows of ``block`` (rows ``start`` on of X,
    or rows ``row_ids``) that hold NaN or infinity, in scikit-learn's words
    ("Input X contains NaN"), or, with ``dtype`` (the model's) narrower than
    the block's, values beyond its range; else return the sum of the squares
    of its values (one pass over the block)."""
    if block.dtype == np.float16:
        block = block.astype(np.float32)
    bad = np.empty(len(block), dtype=np.uint8)
    total = _boundary.check_block(np.ascontiguousarray(block), bad)
    if not bad.any():
        if (dtype is not None and block.dtype.kind == "f"
                and np.dtype(dtype).itemsize < block.dtype.itemsize):
            limit = float(np.finfo(dtype).max)
            # a value past the limit makes the sum of squares pass its square
            if not total < limit * limit:
                _check_range(block, dtype, start, row_ids)
        return total
    where = np.flatnonzero(bad)
    what = "NaN" if np.isnan(block[where]).any() else "infinity"
    ids = start + where if row_ids is None else np.asarray(row_ids)[where]
    shown = ", ".join(str(i) for i in ids[:10])
    more = f" and {len(where) - 10} more" if len(where) > 10 else ""
    raise ValueError(
        f"Input X contains {what}: row(s) {shown}{more} of X hold NaN or infinity. "
        "Remove or impute them (e.g. sklearn.impute.SimpleImputer) before fitting or "
        "predicting."
    )


def _check_range(block, dtype, start=0, row_ids=None):
    """Refuse rows of ``block`` holding finite values that ``dtype`` cannot hold."""
    limit = np.finfo(dtype).max
    where = np.flatnonzero(np.abs(block).max(axis=1) > limit)
    if not len(where):
        return
    ids = start + where if row_ids is None else np.asarray(row_ids)[where]
    shown = ", ".join(str(i) for i in ids[:10])
    more = f" and {len(where) - 10} more" if len(where) > 10 else ""
    raise ValueError(
        f"row(s) {shown}{more} of X hold values beyond {np.dtype(dtype).name}'s range "
        f"(|x| up to {float(np.abs(block[where]).max()):.3g}, past {float(limit):.3g}), in "
        f"which the model computes: scale X (or fit with dtype='float64')."
    )


def images(rows, chunk, image_shape, dtype, scale=None, positions=None, fresh=False):
    """Yield ``(where, images)``: the images of X's rows, ``chunk`` at a time,
    for prediction; ``where`` says which rows of the answer they are (a slice,
    or the places in ``positions`` when only those rows of X are wanted).
    The images are written into one buffer, overwritten by the next, or with
    ``fresh`` into an array of their own (for passes that run at once).

    ``image_shape`` is ``(c, h, w)``. A chunked store reads the wanted rows in
    increasing order, whole chunks at a time; blocks not checked by a fit are
    checked for NaN and infinity as they are read.
    """
    n = rows.shape[0] if positions is None else len(positions)
    shared = None if fresh else np.empty((min(chunk, n),) + tuple(image_shape), dtype=dtype)

    def buffer(k):
        return np.empty((k,) + tuple(image_shape), dtype=dtype) if fresh else shared[:k]

    if positions is None:
        # a chunked store is read whole chunks at a time, about one pass's rows
        spans = (rows.blocks(chunk * rows.row_bytes) if rows.bounds is not None
                 else [(a, min(a + chunk, n)) for a in range(0, n, chunk)])
        for a, b in spans:
            block = rows.read(a, b)
            if not rows.checked:
                check_block(block, a, dtype=dtype)
            for start in range(a, b, chunk):
                stop = min(start + chunk, b)
                images = gather_images(block, np.arange(start - a, stop - a),
                                       buffer(stop - start), scale=scale)
                if stop == b:
                    rows.touched(b - a)
                yield slice(start, stop), images
        return
    order = np.argsort(positions, kind="stable")
    for start in range(0, n, chunk):
        where = order[start:start + chunk]
        wanted = positions[where]  # increasing
        raw = rows.take_sorted(wanted)
        if not rows.checked:
            check_block(raw, row_ids=wanted, dtype=dtype)
        yield where, gather_images(raw, np.arange(len(wanted)), buffer(len(where)),
                                   scale=scale)


class ChunkPlan:
    """An epoch's order over the chunks of a chunked store, and the rows it holds.

    Shuffled, an epoch draws a random order of the chunks, cuts it into groups
    of consecutive chunks holding at least ``buffer_rows`` training rows, and
    visits the groups in that order, each group's rows in a random order. So
    a row can land anywhere in its group's span of the epoch, and two rows of
    one chunk always share a group: the order is a uniform permutation when
    one group holds every row (``buffer_rows >= n``; it is then the very
    permutation a numpy X of the same rows gets, draw for draw), and otherwise
    a permutation within groups of random chunks. Without shuffling the
    groups follow the rows' order in X; one group keeps the order of the
    training rows, as an X in memory does.

    A batch reads the chunks it needs, a whole group at a time; a chunk is
    dropped once the epoch has taken all its rows. At most the group being
    read and the rest of the one before it are held: about ``buffer_rows``
    to ``2 * buffer_rows`` rows (and at least one chunk), in X's dtype.
    """

    def __init__(self, rows, train_rows, buffer_rows):
        self.rows = rows
        self.train_rows = train_rows
        self.buffer_rows = buffer_rows
        bounds = rows.bounds
        self.chunk_of = np.searchsorted(bounds, train_rows, side="right") - 1
        self.counts = np.bincount(self.chunk_of, minlength=len(bounds) - 1)
        self.idx = np.arange(len(train_rows))
        self._cache = {}

    def order(self, rng, shuffle):
        """The epoch's positions (into ``train_rows``), in the order of the epoch."""
        n = len(self.train_rows)
        chunks = np.flatnonzero(self.counts)
        if n <= self.buffer_rows:
            # one group: the in-memory order, draw for draw; unshuffled, that
            # is the order of train_rows (early stopping's split), as in memory
            if shuffle:
                rng.shuffle(self.idx)
            self.group_of = np.zeros(len(self.counts), dtype=np.intp)
            self._remaining = self.counts.copy()
            return self.idx
        if shuffle:
            chunks = rng.permutation(chunks)
        sizes = np.cumsum(self.counts[chunks])
        group = np.empty(len(self.counts), dtype=np.intp)
        group[chunks] = (sizes - self.counts[chunks]) // self.buffer_rows
        self.group_of = group
        self._remaining = self.counts.copy()
        if shuffle:
            idx = np.argsort(group[self.chunk_of], kind="stable")
            ends = np.cumsum(np.bincount(group[self.chunk_of]))
            for a, b in zip(np.concatenate([[0], ends[:-1]]), ends):
                rng.shuffle(idx[a:b])
            return idx
        return np.lexsort((self.train_rows, group[self.chunk_of]))

    def take(self, positions):
        """The rows of training ``positions`` (of the current epoch), as stored."""
        rows = self.train_rows[positions]
        chunk_of = self.chunk_of[positions]
        missing = np.setdiff1d(chunk_of, list(self._cache))
        if len(missing):
            groups = np.unique(self.group_of[missing])
            todo = [c for c in np.flatnonzero(np.isin(self.group_of, groups) & (self.counts > 0))
                    if c not in self._cache]
            self._cache.update(zip(todo, self.rows.read_chunks(todo)))
        out = np.empty((len(rows), self.rows.shape[1]), dtype=self.rows.dtype)
        for c in np.unique(chunk_of):
            mine = chunk_of == c
            out[mine] = self._cache[c][rows[mine] - self.rows.bounds[c]]
            self._remaining[c] -= int(mine.sum())
            if self._remaining[c] == 0:
                del self._cache[c]
        return out


class Batches:
    """A fit's training batches: ``order(rng, shuffle)`` gives an epoch's
    positions (into the training rows); calling it with a batch's positions
    (and the epoch's transforms) gives their images.

    Parameters
    ----------
    n : int
        Training rows.
    take : callable ``(positions, transforms) -> images``
    plan : ChunkPlan or None
        A chunked store's epoch order; None shuffles the positions exactly
        (numpy's ``shuffle`` of one array, epoch after epoch).
    """

    def __init__(self, n, take, plan=None):
        self.idx = np.arange(n)
        self.take = take
        self.plan = plan

    def order(self, rng, shuffle):
        if self.plan is not None:
            return self.plan.order(rng, shuffle)
        if shuffle:
            rng.shuffle(self.idx)
        return self.idx

    def __call__(self, positions, transforms=None):
        return self.take(positions, transforms)


def training_batches(rows, train_rows, batch_size, image_shape, dtype, scale, buffer_rows):
    """:class:`Batches` of X as stored, gathered into one reused buffer.

    ``train_rows`` are the rows of X that train (early stopping holds the
    others out), None for all of them in order; ``image_shape`` is
    ``(c, h, w)``; ``scale`` is ``input_scale``; ``buffer_rows`` is
    ``shuffle_buffer`` (chunked stores only).
    """
    n = rows.shape[0] if train_rows is None else len(train_rows)
    buffer = np.empty((batch_size,) + tuple(image_shape), dtype=dtype)
    if rows.bounds is not None:
        plan = ChunkPlan(rows, np.arange(n) if train_rows is None else train_rows, buffer_rows)

        def take_chunked(positions, transforms=None):
            batch = None if transforms is None else transforms.take(positions)
            return gather_images(plan.take(positions), np.arange(len(positions)),
                                 buffer[:len(positions)], batch, scale)
        return Batches(n, take_chunked, plan)

    def take(positions, transforms=None):
        batch = None if transforms is None else transforms.take(positions)
        where = positions if train_rows is None else train_rows[positions]
        if rows.gathers_in_place:
            src = rows._flat
        else:
            src, where = rows.take(where), np.arange(len(where))
        return gather_images(src, where, buffer[:len(positions)], batch, scale)
    return Batches(n, take)


# ---------------------------------------------------------------------------- Dask


def blockwise(method):
    """Decorate a prediction method: on a Dask array it returns a Dask array
    computed block by block where the array's blocks are (the cluster of the
    ``Client`` in use), the fitted model shipped once per worker. A transform
    whose output ``set_output`` makes a DataFrame returns the computed
    values, which the DataFrame then holds."""

    @functools.wraps(method)
    def wrapper(self, X, *args, **kwargs):
        if args or kwargs or not is_dask(X):
            return method(self, X, *args, **kwargs)
        answer = _map_blocks(self, method.__name__, X)
        if (method.__name__ == "transform"
                and _get_output_config("transform", self)["dense"] != "default"):
            return answer.compute()
        return answer
    return wrapper


def _apply(block, model, name, empty, block_info=None):
    if not len(block):  # a chunk of no rows (Dask allows them): no answers, not an error
        return empty
    try:
        # the values: under set_output, transform gives a DataFrame
        return np.asarray(getattr(model, name)(block))
    except ValueError:
        # the model numbers the block's rows from 0: name the rows of X instead
        if block.dtype.kind == "f" and block_info is not None:
            model._check_finite_block(block, block_info[0]["array-location"][0][0])
        raise


def _map_blocks(estimator, name, X):
    import dask

    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(estimator)
    # the shapes are refused now, in the caller's terms, not later in a worker
    if not 2 <= X.ndim <= 4:  # an array of one value says so as numpy X would
        getattr(estimator, name)(np.zeros((1,) * X.ndim, dtype=X.dtype))
    estimator._check_image_shape(estimator._sample_shape(X.shape, estimator._signal()), X.shape)
    check_known_chunks(X)
    X = X.rechunk({axis: -1 for axis in range(1, X.ndim)})
    # a numpy X of X's shape (of its rows, one at most): X of no rows is refused
    # as numpy X of no rows is, not answered with an empty array
    probe = np.asarray(getattr(estimator, name)(np.zeros((min(1, X.shape[0]),)
                                                         + tuple(X.shape[1:]), dtype=X.dtype)))
    # one task holds the model: each worker fetches it once, not once per block
    model = dask.delayed(estimator, name=f"skconv-{name}-model-{uuid.uuid4().hex}",
                         traverse=False)
    kwargs = dict(dtype=probe.dtype, meta=np.empty((0,) * probe.ndim, dtype=probe.dtype))
    if probe.ndim == 1:
        kwargs.update(drop_axis=list(range(1, X.ndim)), chunks=(X.chunks[0],))
    else:
        kwargs.update(chunks=(X.chunks[0], (probe.shape[1],)))
        if X.ndim > 2:
            kwargs["drop_axis"] = list(range(2, X.ndim))
    return X.map_blocks(_apply, model, name, probe[:0], **kwargs)
