"""The planned engine behind skconv.ops and the layers: geometry, plans, threads
and the calls into the kernels.

Arguments are checked by the callers: ``skconv.ops`` validates a user's, and the
layers' are right by construction (a one-row prediction would spend more time
in checks than in arithmetic). Nothing above this module imports the kernels
that compute convolutions, products, pooling or batch norm.
"""

import collections
import contextlib
import functools
import math
import numbers
import os
import threading
from collections import namedtuple
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction

import numpy as np

from ._kernels import (_batchnorm, _conv, _depthwise, _elementwise, _gemm, _global_pool, _im2col,
                       _pool)
from ._kernels import _openmp_helpers
from ._kernels._openmp_helpers import limit_this_thread


# The batch reductions of conv2d_backward (dw, db) are summed in at most this
# many chunks; chunk boundaries depend on the batch size only, so the sum is
# the same bits for any number of threads.
MAX_REDUCTION_CHUNKS = 16


# Rows of a product below which splitting it over threads costs more than it
# saves; and the columns of a block when the rows are too few to go round (a
# block repacks its rows of A, so it takes several tiles of columns).
MIN_ROWS_PER_THREAD = 16
MIN_COLUMNS_PER_BLOCK = 64


SIMD_PATHS = ("portable", "avx2", "avx512")


def select_simd_path():
    """Pick the GEMM's SIMD path once, at import: the widest this CPU runs.

    ``SKCONV_SIMD=portable|avx2|avx512`` forces one. Every path gives the same
    bits (each output is one fused multiply-add chain in a fixed order), so the
    choice changes speed only.
    """
    forced = os.environ.get("SKCONV_SIMD", "").strip().lower()
    if forced:
        if forced not in SIMD_PATHS:
            raise ImportError(f"SKCONV_SIMD={forced!r} is not one of {', '.join(SIMD_PATHS)}")
        if not _gemm.cpu_supports(forced):
            raise ImportError(
                f"SKCONV_SIMD={forced!r} but this CPU cannot run the {forced} path; "
                f"it runs: {', '.join(p for p in SIMD_PATHS if _gemm.cpu_supports(p))}"
            )
        _gemm.set_path(forced)
    else:
        _gemm.set_path(next(p for p in reversed(SIMD_PATHS) if _gemm.cpu_supports(p)))


# A parallel region gets one more thread per this much work (in flops) only:
# waking a sleeping OpenMP thread (skconv asks for passive waiting, see
# skconv._kernels) took ~130 us on the project's 2-core VMs, a 2-thread region
# of no work against 3 us for one thread. 2^24 flops is ~0.2 ms of a product,
# so the thread it pays for saves more than its wake-up: a prediction of a few
# rows runs its layers on one thread, where two were slower than one.
MIN_WORK_PER_THREAD = 2**24

# Within training (see :func:`training`) a region gets a thread per this
# fraction of MIN_WORK_PER_THREAD: its regions follow each other, each thread
# woken again soon after it sleeps. Measured at 2 threads, epochs alternating
# in one process, 2026-12-04: the default net at a batch of 64 7.6% faster,
# LeNet-5 at 128 8%, at 64 2% (its first convolution and the dense layers
# gain a thread); inference keeps the whole share (a 16-row LeNet-5
# prediction after a pause: 320 us with it, 465 us with a quarter).
TRAINING_SHARE = 4


# The work of a pass that moves memory rather than multiplies (pooling, im2col,
# batch norm), per element, in flops of about the same time.
WORK_PER_ELEMENT = 32


class _Forked(threading.local):
    """Whether this thread is the one that forked this process (see
    :func:`effective_n_threads`)."""

    here = False


_FORKED = _Forked()


def _after_fork_in_child():
    _FORKED.here = True


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def effective_n_threads():
    """Threads a parallel kernel called from this thread would use now.

    The OpenMP runtime's (what ``threadpoolctl`` and ``OMP_NUM_THREADS``
    set), except in a child process on the thread that forked it: GNU
    OpenMP keeps a thread's team of workers for its next parallel region,
    and the child has the forking thread's team but none of its threads, so
    a region of two threads there waits for them forever (``multiprocessing``
    with the fork start method, after the parent fitted or predicted). That
    thread runs its kernels on one thread, the same bits; threads the child
    starts have teams of their own.
    """
    return 1 if _FORKED.here else _openmp_helpers.effective_n_threads()


class _Training(threading.local):
    active = False


_TRAINING = _Training()


@contextlib.contextmanager
def training():
    """The parallel regions run in this thread are a fit's (see TRAINING_SHARE)."""
    previous, _TRAINING.active = _TRAINING.active, True
    try:
        yield
    finally:
        _TRAINING.active = previous


def min_work_per_thread():
    """The work a region needs for each thread it gets, here and now."""
    if _TRAINING.active:
        return max(1, MIN_WORK_PER_THREAD // TRAINING_SHARE)
    return MIN_WORK_PER_THREAD


def threads_for(n_tasks, work):
    """Threads for a parallel region of ``n_tasks`` independent tasks and ``work``
    flops (or ``WORK_PER_ELEMENT`` per element moved) in all."""
    return max(1, min(effective_n_threads(), n_tasks, int(work // min_work_per_thread())))


def run_passes(call, passes, threads):
    """``call(*item)`` for each item of the iterator ``passes``, on ``threads``
    worker threads at once, each running its kernels on one thread.

    Inference over many rows: a forward pass of a few rows per worker keeps its
    activations in that core's cache and runs every layer without a parallel
    region (one per layer and pass otherwise, and each waits for its slowest
    thread). The kernels release the GIL; the items are drawn one at a time
    under a lock, so ``passes`` may be a generator that reads from a file.
    The workers are the process's pool (:func:`_worker_pool`), one a CPU.
    The first error raised stops the other workers and is raised here.
    """
    if threads <= 1:
        for item in passes:
            call(*item)
        return
    lock = threading.Condition()
    failed = []
    busy = [0]  # passes being computed

    def worker():
        limit_this_thread(1)
        try:
            while True:
                with lock:
                    item = None if failed else next(passes, None)
                    if item is None:
                        return
                    busy[0] += 1
                try:
                    call(*item)
                finally:
                    with lock:
                        busy[0] -= 1
                        lock.notify_all()
        except BaseException as error:
            failed.append(error)

    pool = _worker_pool(threads)
    futures = []
    try:
        for _ in range(threads):
            futures.append(pool.submit(worker))
        for future in futures:
            future.result()  # every worker has stopped before anything is raised
    except BaseException as error:
        # Ctrl-C (a signal) reaches this thread only, wherever it is, a submit
        # included: the workers take no pass after it, and the call returns
        # once the passes begun are done, not going on without it
        with lock:
            failed.append(error)
            lock.wait_for(lambda: not busy[0])
        raise
    if failed:
        raise failed[0]


_POOL = {"pid": None, "size": 0, "executor": None}


def _worker_pool(threads):
    """The process's pool of at least ``threads`` worker threads (a child
    process after a fork starts a pool of its own: the parent's threads are
    not in it).

    Each worker is bound to a CPU of its own, of those the process may use,
    where there are enough. Unbound, a worker woken after a pause (a server
    between requests) starts on its waker's CPU, the scheduler's choice, and
    shares it for milliseconds: LeNet-5's 1,000 rows on 2 threads, each call
    after a 50 ms pause, ran at 113,000 rows/s unbound, 190,000-208,000 bound
    (back to back, 230,000 either way; a 2-core VM, measured 2026-12-04).
    """
    pool = _POOL
    executor = pool["executor"]
    if pool["pid"] != os.getpid() or pool["size"] < threads:
        # the pool replaced is not shut down: another thread's prediction may
        # hold it, about to submit its workers, which a shut-down pool refuses;
        # its threads leave when the last caller drops it
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        executor = ThreadPoolExecutor(
            threads, thread_name_prefix="skconv-pass", initializer=_bind_worker,
            initargs=(iter(cpus) if len(cpus) >= threads else iter(()),))
        pool.update(pid=os.getpid(), size=threads, executor=executor)
    return executor


def _bind_worker(cpus):
    """A new pool worker takes the next CPU of ``cpus``, if any is left."""
    cpu = next(cpus, None)
    if cpu is not None:
        try:
            os.sched_setaffinity(0, {cpu})  # 0: this thread
        except OSError:  # a sandbox that forbids it: the scheduler's choice, as before
            pass


def plan_context():
    """What the kernels' call plans depend on besides the shapes: the threads
    available now, the SIMD path (whose tile sizes some work layouts follow)
    and the work a thread needs (training's or inference's).

    A caller that keeps plans (``conv2d_plan``, ``matmul_plan``, ...) keys
    them on this, so a plan never outlives a change of any.
    """
    return effective_n_threads(), _gemm.get_path(), min_work_per_thread()


def as_pair(value, name, minimum):
    """Return ``value`` as a pair of ints, each at least ``minimum``."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        pair = (int(value), int(value))
    elif (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value)
    ):
        pair = (int(value[0]), int(value[1]))
    else:
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    if pair[0] < minimum or pair[1] < minimum:
        raise ValueError(f"{name}={value!r} must be >= {minimum}")
    return pair


def output_size(size, kernel_size, stride=1, padding=0, dilation=1, axis="height"):
    """Output length of a window sliding over ``size`` input positions.

    Raises ``ValueError`` naming the sizes when no window fits; ``axis``
    ("height", "width", or "length" for a series) names the axis there.
    """
    span = dilation * (kernel_size - 1) + 1
    out = (size + 2 * padding - span) // stride + 1
    if out < 1:
        # axis "length" is a series' (the 1-D functions'), "height"/"width" an image's
        what, padded = (("a series of length", "series") if axis == "length"
                        else (f"input of {axis}", "input"))
        raise ValueError(
            f"kernel_size={kernel_size} (dilation={dilation}, padding={padding}) does not "
            f"fit {what} {size}: the window spans {span} but the padded {padded} "
            f"is {size + 2 * padding}"
        )
    return out


def check_extents(size, kernel_size, stride=1, padding=0, dilation=1, axis="height"):
    """Refuse an axis whose padded size, window span or stride is 2**31 or more:
    the kernels index a padded input, its windows and strides in C ints.
    ``axis`` names it as in :func:`output_size`."""
    what = "the padded series" if axis == "length" else "the padded input"
    extents = {what: size + 2 * padding, "the kernel's span": dilation * (kernel_size - 1) + 1,
               "the stride": stride}
    for what, extent in extents.items():
        if extent >= 2**31:
            along = "" if axis == "length" else f" along its {axis}"
            raise ValueError(
                f"{what} ({extent}{along}; kernel_size={kernel_size}, stride={stride}, "
                f"padding={padding}, dilation={dilation}) must be under 2**31"
            )


def plain_ints(value):
    """Whether ``value`` is an int or a tuple of ints (not bools, not numpy scalars)."""
    return type(value) is int or (type(value) is tuple and all(type(v) is int for v in value))


# The bytes of index arrays (:func:`index_cache`) kept for reuse, and their
# number: such an array grows with the image, and 256 of them for each
# function, as lru_cache kept, held 700 MB after images of 400 sizes from
# 300x300 to 700x700.
INDEX_CACHE_BYTES = 64 << 20
INDEX_CACHE_ENTRIES = 1024


def _array_bytes(value):
    """Bytes of the arrays in ``value``: an array, or a tuple (a namedtuple) holding some."""
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, tuple):
        return sum(_array_bytes(v) for v in value)
    return 0


class _IndexCache:
    """A least-recently-used cache of the read-only index arrays that the
    kernels' layouts derive from a geometry, shared by the functions it
    decorates and bounded by ``INDEX_CACHE_BYTES`` and ``INDEX_CACHE_ENTRIES``."""

    def __init__(self):
        self.entries = collections.OrderedDict()  # key -> (value, bytes)
        self.held = 0
        self.lock = threading.Lock()

    def __call__(self, function):
        @functools.wraps(function)
        def cached(*args):
            key = (function.__name__,) + args
            with self.lock:
                hit = self.entries.get(key)
                if hit is not None:
                    self.entries.move_to_end(key)
                    return hit[0]
            value = function(*args)
            size = _array_bytes(value)
            with self.lock:
                if key not in self.entries:
                    self.entries[key] = (value, size)
                    self.held += size
                    while len(self.entries) > 1 and (self.held > INDEX_CACHE_BYTES or len(
                            self.entries) > INDEX_CACHE_ENTRIES):
                        self.held -= self.entries.popitem(last=False)[1][1]
            return value
        return cached


index_cache = _IndexCache()


GEOMETRY_CACHE = {}


def geometry(x_shape, kernel_size, stride, padding, dilation):
    """Resolve the sliding-window geometry of a 4-D input; the kernels take it as a struct.

    Resolved once per distinct set of arguments: a network calls this with the
    same few every batch, and a one-row prediction would otherwise spend a
    good part of its time here.
    """
    key = (x_shape, kernel_size, stride, padding, dilation)
    # only plain ints are cached: True == 1 and [1, 2] is unhashable, and
    # those must be refused (or accepted) by resolve_geometry every time
    if not all(map(plain_ints, key)):
        return resolve_geometry(*key)
    g = GEOMETRY_CACHE.get(key)
    if g is None:
        g = resolve_geometry(*key)
        if len(GEOMETRY_CACHE) > 1024:
            GEOMETRY_CACHE.clear()
        GEOMETRY_CACHE[key] = g
    return g


def resolve_geometry(x_shape, kernel_size, stride, padding, dilation):
    _, c, h, w = x_shape
    kh, kw = as_pair(kernel_size, "kernel_size", 1)
    sh, sw = as_pair(stride, "stride", 1)
    ph, pw = as_pair(padding, "padding", 0)
    dh, dw = as_pair(dilation, "dilation", 1)
    oh = output_size(h, kh, sh, ph, dh, "height")
    ow = output_size(w, kw, sw, pw, dw, "width")
    check_extents(h, kh, sh, ph, dh, "height")
    check_extents(w, kw, sw, pw, dw, "width")
    return dict(c=c, h=h, w=w, kh=kh, kw=kw, sh=sh, sw=sw, ph=ph, pw=pw, dh=dh, dw=dw, oh=oh, ow=ow)


def pool_geometry(x_shape, kernel_size, stride, padding):
    if stride is None:
        stride = kernel_size
    g = geometry(x_shape, kernel_size, stride, padding, 1)
    if g["ph"] > g["kh"] // 2 or g["pw"] > g["kw"] // 2:
        raise ValueError(
            f"padding={padding!r} must be at most half of kernel_size={kernel_size!r}, "
            "so that every pooling window overlaps the input"
        )
    return g


#: A convolution's windows read the rows i * s - p + ki * d of its input (and
#: the columns likewise) only, but its kernels lay out the whole zero-padded
#: input, split by stride phase: s * ceil((size + 2 * p) / s) rows, which a
#: stride, padding or dilation of thousands makes millions for an output of
#: a few rows. Where that extent is at least COMPACT_MIN_EXTENT and more than
#: COMPACT_WASTE times the input's rows and the rows the windows read
#: together, along either axis, the rows and columns the windows read are
#: gathered (:func:`compact_geometry`).
COMPACT_WASTE = 4
COMPACT_MIN_EXTENT = 256

#: A convolution's input gathered to the rows and columns its windows read
#: (see :func:`compact_geometry`): ``g`` the geometry over the gathered input;
#: ``rows`` and ``cols`` pairs ``(src, dst)`` of index arrays: the input's row
#: src[t] is the gathered input's row dst[t] (likewise the columns).
Compaction = namedtuple("Compaction", "g rows cols")


def _wastes(size, k, s, p, o):
    """Whether the padded extent of an axis is COMPACT_WASTE more than it needs."""
    extent = s * -(-(size + 2 * p) // s)
    return extent >= COMPACT_MIN_EXTENT and extent > COMPACT_WASTE * (size + o * k)


def _reads(size, k, s, p, d, o, step):
    """``(src, dst)``: the rows of the input that o windows of k taps read, and
    where they go when the windows are laid ``step`` rows apart (tap ki of
    window i at row i * step + ki); rows in the padding left out."""
    read = ((np.arange(o) * s - p)[:, None] + np.arange(k) * d).ravel()
    dst = np.flatnonzero((read >= 0) & (read < size))
    return read[dst], dst // k * step + dst % k


def compact_geometry(g, depthwise=False, dx=True):
    """A :class:`Compaction` of a convolution of geometry g, or None where its
    kernels' padded input is not much larger than what its windows read, or
    where gathering would change a bit of the results.

    Each tap of a window reads the same value in the gathered input (a zero
    where it read the padding) and the windows follow in the same order, over
    a stride of k, no padding and no dilation: every output is the same chain
    of products, so the same bits, and so is the weights' gradient, whose
    chains run over the same products. An element under two taps is then
    gathered twice; that is all a convolution without ``dx`` (the input's
    gradient) needs. An element under one tap at most has one term in its
    gradient, whatever path computes it: the same value too.

    Where an element is under two taps along one axis, only the other axis
    is gathered, its windows a row apart (a stride of k + 1), and only where
    the whole padded input's dx is folded from the columns (not by
    :func:`transposes_dx`, not a depthwise convolution's): the gathered
    input's is then too, each element's terms added in the same order. (With
    a stride of k, or another path, they would be summed in another.)
    """
    axes = [tuple(g[name + a] for name in ("", "k", "s", "p", "d", "o")) for a in "hw"]
    wastes = [_wastes(size, k, s, p, o) for size, k, s, p, d, o in axes]
    if not any(wastes):
        return None
    reads = [_reads(*axis, axis[1]) for axis in axes]
    (kh, oh), (kw, ow) = (g["kh"], g["oh"]), (g["kw"], g["ow"])
    if not dx or all(len(np.unique(src)) == len(src) for src, _ in reads):
        gc = resolve_geometry((1, g["c"], oh * kh, ow * kw), (kh, kw), (kh, kw), 0, 1)
        return Compaction(gc, *reads)
    if depthwise or transposes_dx(g):
        return None
    shape, kept, index = [1, g["c"]], [], []
    for (size, k, s, p, d, o), (src, _), gathered in zip(axes, reads, wastes):
        if gathered and len(np.unique(src)) < len(src):
            return None
        shape.append(o * (k + 1) if gathered else size)
        kept.append((k + 1, 0, 1) if gathered else (s, p, d))
        index.append(_reads(size, k, s, p, d, o, k + 1) if gathered else (np.arange(size),) * 2)
    (sh, ph, dh), (sw, pw, dw) = kept
    gc = resolve_geometry(tuple(shape), (kh, kw), (sh, sw), (ph, pw), (dh, dw))
    return Compaction(gc, *index)


def gather_windows(x, compaction):
    """x (n, c, h, w) gathered as ``compaction`` says, zeros where it read padding."""
    (r_src, r_dst), (c_src, c_dst), g = compaction.rows, compaction.cols, compaction.g
    out = np.zeros(x.shape[:2] + (g["h"], g["w"]), dtype=x.dtype)
    out[:, :, r_dst[:, None], c_dst] = x[:, :, r_src[:, None], c_src]
    return out


def scatter_windows(dx, x_shape, compaction):
    """The gradient of x (of ``x_shape``) from that of its gathered input ``dx``:
    zero where no window reads."""
    (r_src, r_dst), (c_src, c_dst) = compaction.rows, compaction.cols
    out = np.zeros(x_shape, dtype=dx.dtype)
    out[:, :, r_src[:, None], c_src] = dx[:, :, r_dst[:, None], c_dst]
    return out


def conv2d(x, w, b, g, cols=None, out=None, plan=None, pool2=None, relu=False, residual=None,
           filters=None):
    """:func:`conv2d` of checked arguments: x (n, c, h, w) C-contiguous, w (f, c * kh * kw)
    and b (f,) of x's dtype or None, g x's geometry, cols None or a checked workspace.
    Without ``cols``, x may lack the last rows and columns of g's input, which
    then read as zeros: 'same' padding's extra bottom row and right column.

    The layers' inference path calls this directly: their arguments are right
    by construction, and a one-row prediction would spend more time in the
    checks than in the arithmetic. ``out``, an array of the output's shape to
    write into (a training layer's buffer), or None. ``plan``: what
    :func:`conv2d_plan` returns for these shapes in the current
    :func:`plan_context`, or None to derive it here.

    ``pool2``: None, or ``(relu, argmax)`` for a stride of 1: the output is
    then the 2x2 max pooling of stride 2 of the convolution's, of shape
    (n, f, oh // 2, ow // 2), followed by ``max(., 0)`` with ``relu``, and
    ``argmax``, an array of that shape or None, gets each window's flat index
    in its plane: :func:`max_pool2d`'s values and indices, computed while
    each sample's output is in cache instead of from a written-out one.
    ``relu`` (without ``pool2``): the output is ``max(., 0)``, NaN and -0.0
    kept, as ``np.maximum``. ``residual`` (without ``pool2``): None, or a
    C-contiguous array of the output's shape added to it before the ReLU (a
    residual block's shortcut, at inference), with the bits of a separate add.
    ``filters``: None, or a :class:`WinogradFilters` that keeps a Winograd
    product's transformed filters for the next call with the same w.
    """
    if plan is None:
        plan = conv2d_plan(g, w.shape[0], x.dtype, x.shape[0])
    n_threads, implicit, work_shape, y_shape, out_shape = plan
    if isinstance(implicit, Winograd2dLayout):
        if cols is None:
            relu, argmax = pool2 if pool2 is not None else (relu, None)
            if pool2 is not None:
                out_shape = y_shape[:2] + (g["oh"] // 2, g["ow"] // 2)
                y_shape = y_shape[:2] + (out_shape[2] * out_shape[3],)
            y = np.empty(y_shape, dtype=x.dtype) if out is None else out.reshape(y_shape)
            panels = None if filters is None else filters.panels(w, implicit, n_threads)
            work = np.empty(work_shape if panels is None else implicit.kept_work, dtype=x.dtype)
            _conv.conv2d_forward_winograd2d(
                x, w, y, implicit, work, implicit.copy_geometry, n_threads, b=b, relu=relu,
                residual=None if residual is None else residual.reshape(y_shape),
                pool2=pool2 is not None, argmax=None if argmax is None else argmax.reshape(y_shape),
                panels=panels)
            return y.reshape(out_shape)
        plan = conv2d_plan(g, w.shape[0], x.dtype, x.shape[0], winograd=False)
        n_threads, implicit, work_shape, y_shape, out_shape = plan
    if isinstance(implicit, WinogradLayout):
        if pool2 is None and cols is None:
            y = np.empty(y_shape, dtype=x.dtype) if out is None else out.reshape(y_shape)
            _conv.conv1d_forward_winograd(
                x, w, implicit.g_matrix, y, implicit, np.empty(work_shape, dtype=x.dtype),
                n_threads, b=b, relu=relu,
                residual=None if residual is None else residual.reshape(y_shape),
                panels=None if filters is None else filters.panels(w, implicit, n_threads))
            return y.reshape(out_shape)
        plan = conv2d_plan(g, w.shape[0], x.dtype, x.shape[0], winograd=False)
        n_threads, implicit, work_shape, y_shape, out_shape = plan
    relu, argmax = pool2 if pool2 is not None else (relu, None)
    if pool2 is not None:
        if not g["sh"] == g["sw"] == 1:
            raise ValueError("a pooled convolution needs a stride of 1")
        out_shape = y_shape[:2] + (g["oh"] // 2, g["ow"] // 2)
        y_shape = y_shape[:2] + (out_shape[2] * out_shape[3],)
    y = np.empty(y_shape, dtype=x.dtype) if out is None else out.reshape(y_shape)
    # the implicit product reads the taps from the padded image itself: the
    # same bits without forming (or packing) the columns
    _conv.conv2d_forward_implicit(
        x, w, y, implicit, np.empty(work_shape, dtype=x.dtype), g, n_threads, b=b,
        pool2=pool2 is not None, argmax=None if argmax is None else argmax.reshape(y_shape),
        relu=relu, cols=cols, residual=None if residual is None else residual.reshape(y_shape))
    return y.reshape(out_shape)


class WinogradFilters:
    """A Winograd product's filters transformed and packed
    (_conv.winograd_filter_panels, or winograd2d_filter_panels for an
    image's), kept for the next call while w stays the
    same, bit for bit (a folded batch norm makes w anew at each call, so the
    values are compared, not the array): at inference the filters change only
    with the parameters, and a single series' prediction spent a quarter of
    its time transforming them (FCN's two Winograd convolutions on one
    thread). Threads may share one: each call reads the triple it found, and
    a new one replaces it whole."""

    def __init__(self):
        self._kept = None  # (SIMD path, bits of w, panels)

    def panels(self, w, layout, n_threads):
        bits = w.view(f"u{w.itemsize}")
        path = simd_path()
        kept = self._kept
        if kept is not None and kept[0] == path and np.array_equal(kept[1], bits):
            return kept[2]
        if isinstance(layout, Winograd2dLayout):
            f, c = w.shape[0], w.shape[1] // 9
            rows = _gemm.output_rows(f, w.dtype.char)
            panels = np.empty(16 * (rows + f) * c + 64, dtype=w.dtype)
            _conv.winograd2d_filter_panels(w, panels)
        else:
            f, c = w.shape[0], w.shape[1] // layout.g_matrix.shape[1]
            rows = _gemm.output_rows(f, w.dtype.char)
            panels = np.empty(layout.alpha * (rows + f) * c + 64, dtype=w.dtype)
            _conv.winograd_filter_panels(w, layout.g_matrix, panels, n_threads)
        self._kept = (path, bits.copy(), panels)
        return panels


#: What a convolution derives from the shapes alone (see :func:`conv2d_plan`).
ConvPlan = namedtuple("ConvPlan", "n_threads implicit work_shape y_shape out_shape")


#: Where a convolution's implicit product reads (see :func:`padded_image`).
#: ``by_position``: a :class:`PositionLayout`, or None.
ImplicitLayout = namedtuple("ImplicitLayout",
                            "offsets starts width tile_row channel_stride padded_size parts gap "
                            "by_position", defaults=(None,))

#: A convolution's product of output positions by filters (see
#: :func:`positions_first`): the positions' starts in the padded image,
#: the product's rows and row stride (the tile's whole tiles), the pooled rows'
#: (a whole block of the transpose's), the elements of a thread's work, and
#: whether an unpooled output takes it too (see :func:`positions_first`).
PositionLayout = namedtuple("PositionLayout", "positions rows ldc pooled_rows size unpooled")


#: How a product is cut into blocks for the threads (see :func:`matmul_plan`).
MatmulPlan = namedtuple("MatmulPlan", "row_blocks col_blocks work_shape")


def conv2d_plan(g, f, dtype, n, winograd=True):
    """What :func:`conv2d` derives from the shapes alone, for n samples through f
    filters in the current :func:`plan_context`.

    Returns a :class:`ConvPlan` ``(n_threads, implicit, work_shape, y_shape,
    out_shape)``: ``implicit`` is the :class:`Winograd2dLayout` of an image's
    Winograd product where :func:`takes_winograd2d`, or the
    :class:`WinogradLayout` of a series' where :func:`takes_winograd` (unless
    ``winograd`` is False), else the :class:`ImplicitLayout` of the implicit product (see
    :func:`padded_image`), whose ``parts``, above 1 when there are fewer
    samples than threads, cuts each sample's tiles into that many tasks;
    ``work_shape`` that of the kernel's scratch; the kernel's output is (n, f,
    oh * ow), returned as ``out_shape`` (n, f, oh, ow).
    """
    ckk = g["c"] * g["kh"] * g["kw"]
    ohw = g["oh"] * g["ow"]
    work = 2 * n * f * ckk * ohw
    shapes = (n, f, ohw), (n, f, g["oh"], g["ow"])
    if winograd and takes_winograd2d(g, f):
        layout = winograd2d_layout(g, dtype)
        # fewer images than a task's: buffers for those only (any split of
        # the images into tasks has the same bits)
        layout = layout._replace(samples=min(layout.samples, n))
        n_threads = threads_for(-(-n // layout.samples), work)
        char = np.dtype(dtype).char
        rows, width = _gemm.output_rows(f, char), _gemm.implicit_tile_widths(char)[0]
        # see _conv.conv2d_forward_winograd2d
        per_thread = (layout.samples * (layout.padded_size + 4 * layout.tiles * f)
                      + (g["c"] + rows) * (16 * width + 16))
        # (the threads' buffers hold U before the tasks), and a cache line's
        # slack, to align the buffers
        work_shape = (16 * rows * g["c"] + max(n_threads * per_thread, 16 * f * g["c"]) + 16,)
        # with the filters' panels kept (WinogradFilters), the threads' buffers only
        layout = layout._replace(kept_work=n_threads * per_thread + 16)
        return ConvPlan(n_threads, layout, work_shape, *shapes)
    if winograd and takes_winograd(g, f):
        layout = winograd_layout(g, dtype)
        threads = effective_n_threads()

        def columns(samples):  # the product's columns the busiest thread computes
            tasks = -(-n // samples)
            return -(-tasks // threads) * -(-samples * layout.j_len // layout.width)

        # as many series a task as the layout's at most, the fewest columns
        # on the busiest thread (16 series of FCN's 130 columns on 2 threads:
        # 2 a task, not 3, whose last task would hold one); any split has
        # the same bits
        samples = min(range(layout.samples, 0, -1), key=columns)
        # fewer tasks than threads (one long series): each task's blocks in
        # parts, so that the threads share them
        tasks = -(-n // samples)
        blocks = -(-min(n, samples) * layout.j_len // layout.width)
        parts = min(blocks, -(-threads // tasks)) if tasks < threads else 1
        n_threads = threads_for(tasks * parts, work)
        layout = layout._replace(samples=samples, parts=parts if n_threads > 1 else 1)
        rows, c, m = _gemm.output_rows(f, np.dtype(dtype).char), g["c"], layout.m
        # see _conv.conv1d_forward_winograd
        per_thread = (c * m * (layout.samples * layout.j_len + 16)
                      + layout.alpha * ((c + rows) * (layout.width + 16) + 32)
                      + 2 * m * layout.width)
        # (the threads' buffers hold U before the tasks), and a cache line's
        # slack, to align the buffers
        work_shape = (layout.alpha * rows * c + max(n_threads * per_thread, layout.alpha * f * c)
                      + 64,)
        return ConvPlan(n_threads, layout, work_shape, *shapes)
    layout, rows, columns = padded_image(g, f, dtype)
    # fewer samples than threads (one long series): each sample's tiles in
    # parts, so that the threads share its product
    threads = effective_n_threads()
    parts = min(len(layout.starts), -(-threads // n)) if n < threads else 1
    n_threads = threads_for(n * parts, work)
    if n_threads == 1:  # one thread would copy the sample once per part
        parts = 1
    per_thread = rows * columns
    by_position = position_layout(g, f, dtype, layout) if positions_first(g, f, dtype, layout) \
        else None
    if by_position is not None:
        per_thread = max(per_thread, by_position.size)
    # the weights' panels, or w^T packed for the product by positions
    packed = max(rows, by_position.ldc if by_position is not None else 0) * ckk
    work_shape = (packed + n_threads * (layout.padded_size + per_thread),)
    return ConvPlan(n_threads, layout._replace(parts=parts, by_position=by_position),
                    work_shape, *shapes)


#: How many more columns than a product of positions by filters the implicit
#: product must compute before a convolution takes the former (see
#: :func:`positions_first`).
POSITIONS_FIRST_WASTE = 1.05
#: The fewest taps (channels times the kernel's size) of an unpooled
#: convolution that takes the product by positions: with fewer, writing its
#: whole output transposed costs more than the columns saved (1 -> 32 filters
#: on 28 x 28: 1.23 of the implicit product's time; pooled, the output to
#: transpose is a quarter: 0.91).
POSITIONS_FIRST_MIN_TAPS = 64


def positions_first(g, f, dtype, layout):
    """Whether a convolution computes its product as positions by filters
    (_conv.conv2d_forward_implicit's ``by_position``: unpooled, or pooled
    without the windows' argmax, that is at inference) rather than by
    ``layout``'s implicit tiles.

    Where the implicit product computes the columns between a small map's
    rows (2 of 16 on 14 x 14 maps, 2 of 30 on 28 x 28) and the filters fill
    the tap-rows tile's two vectors (a narrow one, 16 filters, runs at a lower
    rate): POSITIONS_FIRST_WASTE more columns than the positions' rows rounded
    to the tile; unpooled, with POSITIONS_FIRST_MIN_TAPS taps or more
    (:class:`PositionLayout`'s ``unpooled``). Measured on a Zen 5 (1 thread,
    2026-12-05, the two ways alternating), in the implicit product's time:
    pooled (200 samples) 1 -> 32 filters on 28 x 28, 0.91; 32 -> 64 on 14 x
    14, 0.92; 16 -> 32 on 14 x 14, 0.83; 32 -> 32 on 28 x 28, 0.92; unpooled
    with bias and ReLU (128 samples) 32 -> 64 on 14 x 14, 0.91; 16 -> 32 and
    64 -> 32 on 14 x 14, 0.88 and 0.93; 64 -> 64 on 7 x 7, 0.93; and on the
    AVX2 path (``SKCONV_SIMD=avx2``) 0.80-0.87. Not taken, 1.06 to 2.4:
    16 filters, 8 x 8 and 16 x 16 maps (whose implicit tiles waste nothing),
    unpooled one-channel maps. The bits are the same either way.
    """
    if not (g["sh"] == g["sw"] == 1 and g["oh"] >= 2 and g["ow"] >= 2):
        return False
    char = np.dtype(dtype).char
    mr, nr = _gemm.tap_rows_tile(f, char)
    if nr != _gemm.tile_shape(char)[1]:
        return False
    ohw = g["oh"] * g["ow"]
    return len(layout.starts) * layout.width >= POSITIONS_FIRST_WASTE * (-(-ohw // mr) * mr)


def position_layout(g, f, dtype, layout):
    """The :class:`PositionLayout` of a convolution's product of positions by
    filters, its taps those of ``layout``."""
    char = np.dtype(dtype).char
    mr, nr = _gemm.tap_rows_tile(f, char)
    ohw = g["oh"] * g["ow"]
    # whole tiles of the product, and whole 8 x 8 blocks of the transposes
    rows, ldc = max(-(-ohw // mr) * mr, -(-ohw // 8) * 8), -(-f // nr) * nr
    pooled_rows = -(-(g["oh"] // 2) * (g["ow"] // 2) // 8) * 8
    size = (rows + pooled_rows) * ldc + _gemm.work_size(ohw, f, len(layout.offsets))
    return PositionLayout(output_positions(g), rows, ldc, pooled_rows, size,
                          len(layout.offsets) >= POSITIONS_FIRST_MIN_TAPS)


#: Where a series' convolution by Winograd's F(m, r) reads and writes (see
#: :func:`winograd_layout`).
WinogradLayout = namedtuple(
    "WinogradLayout",
    "m alpha g_matrix tiles j_len pad ow samples width ldv starts channel_offsets parts")

#: The series' kernels that Winograd's F(m, r) computes, and their tiles' m
#: outputs: alpha = m + r - 1 = 8 multiplications for m outputs of r taps
#: (2.25 and 2.5 times fewer than the direct product's m * r), at the points
#: 0, +-1, +-2, +-1/2 and infinity, whose transforms keep float32's rounding
#: errors within a few units of the direct product's (tested against float64).
WINOGRAD_TILES = {3: 6, 5: 4}
WINOGRAD_POINTS = (0, 1, -1, 2, -2, Fraction(1, 2), Fraction(-1, 2))

#: The fewest channels, and filters, for which a series' convolution takes
#: Winograd's product, by kernel: its transforms cost a few multiply-adds a
#: value per channel and per filter, which many channels and filters
#: amortise (measured, one thread, batch 16, 512 steps: 32 -> 64 of 5 taps
#: 1.46 times the direct product's speed, 32 -> 64 of 3 taps 0.98, 64 -> 64
#: of 3 taps 1.17).
WINOGRAD_MIN_CHANNELS = {3: 64, 5: 32}

#: The shortest output for which a series' convolution takes Winograd's
#: product: shorter ones have too few tiles to pay for the filters'
#: transforms (``resnet1d()`` on 25 steps, batch 16: 7% slower with it).
WINOGRAD_MIN_LENGTH = 32

#: The fewest channels, and filters, for which the weight gradient of a
#: convolution that :func:`takes_winograd` is Winograd's too (see
#: :func:`winograd_weight_gradient`), by kernel: its products over a series'
#: tiles are short (128 tiles in 512 steps for 5 taps, 86 for 3) and their
#: sums alpha times f x c, which pay for 3 taps only with many channels
#: (measured, one thread, batch 16, 512 steps: 256 -> 128 10.7-10.9 ms
#: against the direct product's 12.3-12.4, 128 -> 128 5.5 against 6.1, 64 ->
#: 64 1.9 against 1.6; 128 -> 256 of 5 taps 12.4 against 19.9).
WINOGRAD_GRADIENT_MIN_CHANNELS = {3: 128, 5: 32}

#: Chunks of a Winograd weight gradient's batch (see ``MAX_REDUCTION_CHUNKS``):
#: each sums alpha products of f x c (8 x 256 x 128 floats, 1 MB, for FCN's
#: second convolution), four times its weight gradient, so fewer of them.
WINOGRAD_REDUCTION_CHUNKS = 4

#: A Winograd task's series: at most this many, together at most
#: ``WINOGRAD_TASK_TILES`` tiles, as many as fill the product's tiles of
#: columns best.
WINOGRAD_MAX_SAMPLES = 8
WINOGRAD_TASK_TILES = 512


def takes_winograd(g, f):
    """Whether a convolution of geometry g and f filters runs by Winograd's F(m, r)
    (:func:`conv2d`): a series' (one row, kernels of one row) of a kernel in
    ``WINOGRAD_TILES``, stride 1 and no dilation, at least its
    ``WINOGRAD_MIN_CHANNELS`` channels in and out and ``WINOGRAD_MIN_LENGTH``
    outputs. A decision of the shapes
    alone: the same for every batch, thread count and SIMD path, so that a
    row's bits do not depend on them."""
    k = g["kw"]
    return (g["h"] == 1 and g["kh"] == 1 and g["oh"] == 1 and k in WINOGRAD_TILES
            and g["sh"] == g["sw"] == 1 and g["dh"] == g["dw"] == 1
            and min(g["c"], f) >= WINOGRAD_MIN_CHANNELS[k] and g["ow"] >= WINOGRAD_MIN_LENGTH)


@functools.lru_cache(maxsize=16)
def winograd_matrices(m, r):
    """``(A^T, G, B^T)`` of Winograd's F(m, r) at ``WINOGRAD_POINTS`` (the
    first m + r - 2 of them, and infinity), as lists of exact fractions:
    y = A^T [(G g) . (B^T d)] is the correlation y[j] = sum over k of g[k] *
    d[j + k] of r taps g over m + r - 1 inputs d.

    The Cook-Toom construction: the product of polynomials of degrees m - 1
    and r - 1 is known from its values at the points (infinity: the leading
    coefficient), each factor's values a Vandermonde matrix's product;
    the correlation is the transpose of that product. B^T's rows are scaled
    to coprime integers, G's by the inverse.
    """
    alpha = m + r - 1
    points = [Fraction(p) for p in WINOGRAD_POINTS[:alpha - 1]]

    def values(columns):  # at the points, then the leading coefficient
        return ([[p ** j for j in range(columns)] for p in points]
                + [[Fraction(int(j == columns - 1)) for j in range(columns)]])

    # C = V^-1 by Gauss-Jordan elimination over the fractions
    v = values(alpha)
    aug = [row + [Fraction(int(i == j)) for j in range(alpha)] for i, row in enumerate(v)]
    for col in range(alpha):
        pivot = next(i for i in range(col, alpha) if aug[i][col] != 0)
        aug[col], aug[pivot] = aug[pivot], aug[col]
        aug[col] = [e / aug[col][col] for e in aug[col]]
        for i in range(alpha):
            if i != col and aug[i][col] != 0:
                aug[i] = [a - aug[i][col] * b for a, b in zip(aug[i], aug[col])]
    inverse = [row[alpha:] for row in aug]
    bt = [[inverse[i][xi] for i in range(alpha)] for xi in range(alpha)]
    g = values(r)
    for xi in range(alpha):
        nonzero = [e for e in bt[xi] if e != 0]
        scale = Fraction(math.lcm(*(e.denominator for e in nonzero)),
                         math.gcd(*(e.numerator for e in nonzero)))
        bt[xi] = [e * scale for e in bt[xi]]
        g[xi] = [e / scale for e in g[xi]]
    at = [[row[j] for row in values(m)] for j in range(m)]
    return at, g, bt


def _task_samples(columns, tiles, width, max_samples, max_columns):
    """The samples of a Winograd task whose samples each put ``columns`` columns
    (``tiles`` of them its own) in the product's tiles of ``width``: of at most
    ``max_samples`` samples and ``max_columns`` columns (or one sample), the
    fewest within 2% of the least waste, so that the task's columns fill the
    product's tiles best. Any split gives the same bits."""
    def waste(samples):  # the product's columns per tile of the task's
        return -(-samples * columns // width) * width / (samples * tiles)

    fits = [s for s in range(1, max_samples + 1) if s == 1 or s * columns <= max_columns]
    best = min(waste(s) for s in fits)
    return min(s for s in fits if waste(s) <= best * 1.02)


@index_cache
def _winograd_layout(c, w, pw, ow, r, width):
    m = WINOGRAD_TILES[r]
    alpha = m + r - 1
    g = winograd_matrices(m, r)[1]
    tiles = -(-ow // m)
    j_len = tiles + -(-alpha // m)  # a tile reads alpha inputs from m * t on
    samples = _task_samples(j_len, tiles, width, WINOGRAD_MAX_SAMPLES, WINOGRAD_TASK_TILES)
    ldv = -(-tiles // 16) * 16  # the weight gradient's rows of a series' tiles
    starts = np.zeros(1, dtype=np.intp)
    offsets = np.arange(c, dtype=np.intp) * (width + 16)  # see _conv's ldr
    g_array = np.array([[float(e) for e in row] for row in g])
    for a in (starts, offsets, g_array):
        a.flags.writeable = False
    return WinogradLayout(m, alpha, g_array, tiles, j_len, pw, ow, samples, width, ldv, starts,
                          offsets, 1)


def winograd_layout(g, dtype):
    """The :class:`WinogradLayout` of a series' convolution of geometry g (see
    _conv.conv1d_forward_winograd, whose transforms are winograd.h's): the
    tile's outputs m and positions alpha; G in float64
    (:func:`winograd_matrices`); a series' tiles; the length of its phase
    rows (its tiles and those past them that a task's columns hold); the
    zeros before it; the output's length; the series of a task; the
    product's tile width (the SIMD path's) and the weight gradient's row
    length; the product's one tile's start and its channels' rows' offsets
    in a block of one tile's columns; the parts of a task (1 here: the plan
    sets them, see :func:`conv2d_plan`)."""
    width = _gemm.implicit_tile_widths(np.dtype(dtype).char)[0]  # the SIMD path's
    return _winograd_layout(g["c"], g["w"], g["pw"], g["ow"], g["kw"], width)


#: Where a 3x3 convolution of images by Winograd's F(2x2, 3x3) reads and
#: writes (see :func:`winograd2d_layout`).
Winograd2dLayout = namedtuple(
    "Winograd2dLayout", "copy_geometry channel_stride plane plane_width padded_size oh ow tiles "
    "samples starts channel_offsets kept_work", defaults=(None,))

#: The fewest channels, and filters, for which an image's 3x3 convolution
#: takes Winograd's F(2x2, 3x3): its product over the channels is 16 short
#: ones, whose transforms cost about what a direct product of a few channels
#: does (measured, one thread, batch 128, ResNet-20's layers, against the
#: implicit product: 32 channels on 16 x 16 1.42-1.50 times its speed held to
#: AVX2 and 1.13-1.18 with AVX-512, 64 on 8 x 8 1.39-1.45 and 1.04-1.11, but
#: 16 on 32 x 32 1.21 and 0.79; AMD EPYC Zen 5, 2026-12-06,
#: benchmarks/bench_winograd.py). A rule of the shapes alone, so that every
#: CPU computes the same bits.
WINOGRAD2D_MIN_CHANNELS = 32

#: The smallest output side that takes it: a tile is 2 x 2 outputs, and a
#: row of tiles one more than the output's half (the last past the output),
#: so small maps compute many tiles for nothing (64 channels on 4 x 4, batch
#: 128: 0.60 of the implicit product's speed with AVX-512).
WINOGRAD2D_MIN_SIDE = 8

#: A task's images: at most this many, together at most
#: ``WINOGRAD2D_TASK_TILES`` tiles (an 8 x 8 map has 20, a 16 x 16 one 72),
#: as many as fill the product's tiles of columns best.
WINOGRAD2D_MAX_SAMPLES = 8
WINOGRAD2D_TASK_TILES = 320


def takes_winograd2d(g, f):
    """Whether an image's convolution of geometry g and f filters runs by
    Winograd's F(2x2, 3x3) (:func:`conv2d`): a 3x3 kernel of stride 1 without
    dilation, at most 2 of padding, at least ``WINOGRAD2D_MIN_CHANNELS``
    channels in and out and outputs of ``WINOGRAD2D_MIN_SIDE`` a side. A
    decision of the shapes alone: the same for every batch, thread count and
    SIMD path, so that a row's bits do not depend on them."""
    return (g["kh"] == g["kw"] == 3 and g["sh"] == g["sw"] == 1 and g["dh"] == g["dw"] == 1
            and g["ph"] <= 2 and g["pw"] <= 2
            and min(g["c"], f) >= WINOGRAD2D_MIN_CHANNELS
            and min(g["oh"], g["ow"]) >= WINOGRAD2D_MIN_SIDE)


@index_cache
def _winograd2d_layout(c, h, w, ph, pw, oh, ow, width):
    # the copy splits rows and columns by parity: planes of hq x wq, one more
    # row and column than the tiles (a tile reads two of each)
    copy = dict(c=c, h=h, w=w, kh=3, kw=3, sh=2, sw=2, ph=ph, pw=pw, dh=1, dw=1, oh=oh, ow=ow)
    hq, wq = -(-(h + 2 * ph) // 2), -(-(w + 2 * pw) // 2)
    tiles = (hq - 1) * wq  # rows of tiles wq long: the last of each past the output
    samples = _task_samples(tiles, tiles, width, WINOGRAD2D_MAX_SAMPLES, WINOGRAD2D_TASK_TILES)
    starts = np.zeros(1, dtype=np.intp)
    offsets = np.arange(c, dtype=np.intp) * (16 * width + 16)  # see _conv's ldv
    starts.flags.writeable = offsets.flags.writeable = False
    channel_stride = 4 * hq * wq
    # the last tile of the last row reads one element past its plane
    padded_size = -(-(c * channel_stride + 1) // 16) * 16
    return Winograd2dLayout(copy, channel_stride, hq * wq, wq, padded_size, oh, ow, tiles,
                            samples, starts, offsets)


#: The fewest channels times filters for which an image's convolution that
#: :func:`takes_winograd2d` computes its gradients by it too
#: (:func:`takes_winograd2d_gradient`). The weights' gradient's 16 products
#: over the tiles are short, and its transforms and copies cost as the
#: channels plus the filters, its products as their product; the input
#: gradient is then a product of its own, not fused with the weights' (which
#: also forms a batch norm's gradient as it reads it). Both gradients
#: against the fused direct product, batch 128, one and two threads (AMD
#: EPYC Zen 4, 2026-12-06, ``benchmarks/bench_winograd.py --parts
#: gradients``): 64 channels on 16 x 16 1.42 and 1.35 times as fast with
#: AVX-512, 1.38 and 1.32 with AVX2; 128 on 8 x 8 1.23 and 1.34, 1.44 and
#: 1.37; 64 on 8 x 8 1.17 and 1.13, 1.19 and 1.13. For 32 on 16 x 16, 1.11
#: and 1.08 alone, but a ResNet-20 epoch 0.96-1.04 times as fast, where the
#: default net's 32 -> 64 on 16 x 16 (pooled) made its epoch 1.06-1.09.
WINOGRAD2D_GRADIENT_MIN_PRODUCT = 32 * 64


def takes_winograd2d_gradient(g, f):
    """Whether a convolution's weight and input gradients run by Winograd's
    F(2x2, 3x3) (:func:`conv2d_backward`): it :func:`takes_winograd2d`, and
    its channels times its filters are at least
    ``WINOGRAD2D_GRADIENT_MIN_PRODUCT``. A rule of the shapes alone, as the
    forward's."""
    return takes_winograd2d(g, f) and g["c"] * f >= WINOGRAD2D_GRADIENT_MIN_PRODUCT


def winograd2d_layout(g, dtype):
    """The :class:`Winograd2dLayout` of an image's convolution of geometry g (see
    _conv.conv2d_forward_winograd2d): the copy's geometry (rows and columns
    split by parity), its image's channel stride, a plane's elements and
    width, the image's elements; the output's size; an image's tiles (2 x 2
    outputs each, rows of them a plane wide); the images of a task; the
    product's one tile's start and its channels' rows' offsets in a block of
    one tile's columns."""
    width = _gemm.implicit_tile_widths(np.dtype(dtype).char)[0]  # the SIMD path's
    return _winograd2d_layout(g["c"], g["h"], g["w"], g["ph"], g["pw"], g["oh"], g["ow"], width)


#: What a narrow tile's column costs in a full tile's: the pair kernel keeps
#: the full tile's accumulators and loads; a little for its extra calls.
NARROW_TILE_COST = 1.05


def padded_image(g, f, dtype):
    """The layout of a convolution's implicit product.

    Returns ``(layout, rows, columns)``: an :class:`ImplicitLayout` of one
    part, with the taps' starts in the zero-padded image (:func:`tap_offsets`,
    whose planes a stride splits by phase), the product's tiles
    (:func:`tiles`) and the elements of one padded image, slack for the last
    tile's reads included and rounded up to a cache line; and the
    micro-kernel-padded shape of the product for ``f`` filters. A stride-1
    weight gradient reads the same image.
    """
    channel_stride, offsets = tap_offsets(g["c"], g["h"], g["w"], g["kh"], g["kw"],
                                           g["ph"], g["pw"], g["dh"], g["dw"], g["sh"], g["sw"])
    char = np.dtype(dtype).char
    width, narrow, split = _gemm.implicit_tile_widths(char)
    wq = phase_width(g)
    starts, tile_row = tiles(g["oh"], g["ow"], wq, width)
    gap = 0
    if split and 2 * g["ow"] == split and g["oh"] % 2 == 0:
        # two output rows a tile, one in each half of its vector: no column
        # computed and dropped (ResNet's 8 x 8 maps in floats: 64 columns)
        starts, tile_row, width, gap = split_tiles(g["oh"], wq), g["ow"], split, wq
    elif narrow:
        # tiles one vector wide where they compute enough fewer columns to pay
        # for their lower rate (8 x 8 maps in doubles: 80 columns, not 96)
        narrow_starts, narrow_row = tiles(g["oh"], g["ow"], wq, narrow)
        if len(narrow_starts) * narrow * NARROW_TILE_COST < len(starts) * width:
            starts, tile_row, width = narrow_starts, narrow_row, narrow
    rows, columns = _gemm.output_rows(f, char), len(starts) * width
    reach = starts[-1] + (gap + width // 2 if gap else width)  # the last tile's last read
    padded_size = -(-max(g["c"] * channel_stride, offsets[-1] + reach) // 16) * 16
    layout = ImplicitLayout(offsets, starts, width, tile_row, channel_stride, padded_size, 1,
                            gap)
    return layout, rows, columns


@index_cache
def split_tiles(oh, wq):
    """Where split tiles start (see :func:`padded_image`): output rows 2t and
    2t + 1 in tile t, from position 2t * wq of the image plane (of width wq)."""
    starts = np.arange(0, oh, 2, dtype=np.intp) * wq
    starts.flags.writeable = False
    return starts


def phase_width(g):
    """Width of one phase plane of the padded image (:func:`tap_offsets`)."""
    return -(-(g["w"] + 2 * g["pw"]) // g["sw"])


@index_cache
def tiles(oh, ow, wp, width):
    """Where the implicit product's tiles of ``width`` positions start, and the
    product's columns between two output rows: ``(starts, tile_row)``.

    Output (i, j) is position i * wp + j of a plane of the padded image. Tiles laid end to
    end over positions 0 ... (oh - 1) * wp + ow - 1 also compute the wp - ow
    positions between two rows; tiles that start at each row compute a row's
    last tile in part. Whichever needs fewer tiles: a 16-wide row of a 3x3
    'same' convolution is one tile of 16 (none wasted) rather than 18/16 of one.
    """
    nq = (oh - 1) * wp + ow
    per_row = -(-ow // width)
    if oh * per_row < -(-nq // width):
        starts = (np.arange(oh)[:, None] * wp + np.arange(per_row) * width).ravel()
        tile_row = per_row * width
    else:
        starts = np.arange(-(-nq // width)) * width
        tile_row = wp
    starts = starts.astype(np.intp)
    starts.flags.writeable = False
    return starts, tile_row


def output_positions(g):
    """Where each output (i, j) reads, from its taps' starts (:func:`tap_offsets`):
    ``i * wq + j``, wq the width of a phase plane of the padded image (the
    padded image's own for a stride of 1)."""
    return positions_of(g["oh"], g["ow"], phase_width(g))


@index_cache
def positions_of(oh, ow, wp):
    positions = (np.arange(oh)[:, None] * wp + np.arange(ow)).ravel().astype(np.intp)
    positions.flags.writeable = False
    return positions


@index_cache
def tap_offsets(c, h, w, kh, kw, ph, pw, dh, dw, sh=1, sw=1):
    """Where each tap (c, ki, kj) starts in the zero-padded image.

    Returns ``(channel_stride, offsets)``. A stride splits each padded plane
    by phase into sh * sw planes of (hq, wq) = (ceil(hp / sh), ceil(wp / sw)):
    plane (a, b) holds the padded rows a, a + sh, ... and columns b, b + sw,
    ...; so output (i, j)'s tap (ki, kj) reads plane (ki * dh % sh, kj * dw
    % sw) at row i + ki * dh // sh, column j + kj * dw // sw, and every tap
    is a window of positions i * wq + j, contiguous in j, as for a stride of 1
    (one plane, the padded image itself). The channel stride is the planes'
    size rounded up to a cache line, and off a multiple of 256 elements: taps
    a power of two apart share L1 sets and evict each other, and the product
    reads all of them for every tile.
    """
    hq, wq = -(-(h + 2 * ph) // sh), -(-(w + 2 * pw) // sw)
    channel_stride = -(-(sh * sw * hq * wq) // 16) * 16
    if channel_stride % 256 == 0:
        channel_stride += 16
    rows, cols = np.arange(kh) * dh, np.arange(kw) * dw
    plane = (rows[:, None] % sh * sw + cols % sw) * (hq * wq)
    offsets = (np.arange(c)[:, None, None] * channel_stride + plane
               + (rows // sh)[:, None] * wq + cols // sw).ravel().astype(np.intp)
    offsets.flags.writeable = False
    return channel_stride, offsets


class PhaseGradient(namedtuple("PhaseGradient", "values shape stride")):
    """An input gradient that is zero but on the phase of x that a 1x1 strided
    convolution without padding reads, ``x[:, :, ::sh, ::sw]``, whose values
    are ``values``: a residual block's projection shortcut's, three quarters
    zeros at a stride of 2. Kept so, it is added to the strided convolution's
    input gradient that reads x too as that one is put in place
    (:func:`phased_transposed_convolution`), instead of written out whole and
    read back: the sums of the whole array's, but that an exact -0.0 off the
    phase keeps its sign (the array's +0.0 would make it +0.0). ``shape``:
    x's, ``stride``: (sh, sw)."""

    __slots__ = ()

    def dense(self):
        """The gradient as an array of x's shape."""
        sh, sw = self.stride
        out = np.zeros(self.shape, dtype=self.values.dtype)
        out[:, :, ::sh, ::sw] = self.values
        return out


class BatchNormGradient:
    """A batch norm's input gradient not yet formed: :func:`batch_norm_backward`'s
    dx, of its output gradient ``g`` (masked by the ReLU after its addition
    where it had ``after``), its input ``x`` and the two factors a channel its
    first pass left in ``work``. The stride-1 convolution before the batch
    norm forms it a sample at a time as its backward reads it (``formed`` of
    _conv.conv2d_backward_implicit), never written out for the batch;
    :meth:`dense` writes it into ``out`` for any other reader. Both are
    batchnorm.h's second pass: the same bits as the batch norm's dx.
    ``shape``: the gradient's (the batch norm's input's), ``g`` and ``x``
    being (n, c, m) views."""

    def __init__(self, g, x, center, inv_std, coef, relu, scale, shift, work, out, shape):
        self.g, self.x, self.center, self.inv_std, self.coef = g, x, center, inv_std, coef
        self.relu, self.scale, self.shift, self.work, self.out = relu, scale, shift, work, out
        self.shape, self.dtype = shape, g.dtype
        self._dense = None

    def dense(self):
        """The gradient as an array of ``shape`` (``out``'s memory)."""
        if self._dense is None:
            group, threads = _batch_norm_tasks(self.g)
            _batchnorm.batch_norm_input_gradient(
                self.g, self.x, self.center, self.inv_std, self.coef, self.relu, self.scale,
                self.shift, self.work, self.out, group, threads)
            self._dense = self.out.reshape(self.shape)
        return self._dense


def dense(gradient):
    """``gradient`` as an array: a :class:`PhaseGradient`'s or a
    :class:`BatchNormGradient`'s ``dense()``."""
    if isinstance(gradient, (PhaseGradient, BatchNormGradient)):
        return gradient.dense()
    return gradient


def conv2d_backward(dy, x, w, g, need_dx, cols=None, dx=None, unpool=None, residual=None,
                    need_db=True, phase_dx=False):
    """:func:`conv2d_backward` of checked arguments: x (n, c, h, w) and dy (n, f, oh, ow)
    C-contiguous, w (f, c * kh * kw), g x's geometry, cols None or a checked workspace;
    ``dx`` an array of x's shape to write into (a layer's buffer), or None.
    Without ``cols``, x may lack the last rows and columns of g's input, which
    read as zeros (as :func:`conv2d`'s): 'same' padding's extra bottom row and
    right column, whose gradient is not formed. ``residual``: None, or a
    C-contiguous array of x's shape that dx is returned plus (the gradient of
    x from its other readers), with the bits of :func:`add` (residual + dx):
    added as the product writes dx where dx is a convolution of dy
    (:func:`transposed_convolution`), after it otherwise.

    ``unpool``: None, or ``(argmax, relu_y)`` of a :func:`conv2d` with
    ``pool2``, dy then being the gradient of its pooled output, (n, f, oh // 2,
    ow // 2): the 2x2 pooling's backward (:func:`max_pool2d_backward`, and
    the ReLU's with relu_y) gives the output's gradient, which the weights'
    gradient without dx forms sample by sample as it reads it, not for the
    batch.

    ``need_db``: False when no bias takes db (a convolution before a batch
    norm), which the weights' implicit product then leaves out.

    ``dy`` may be a :class:`BatchNormGradient` (that of the batch norm after
    the convolution): the implicit product forms each sample's as it reads
    it where it computes dx along the weights' gradient or no dx; the other
    ways take it made dense.

    ``phase_dx``: with a 1x1 kernel, a stride and no padding, dx is returned
    as a :class:`PhaseGradient`, its values the product of dy by the turned
    weights (:func:`transposed_convolution`, along the weights' gradient);
    ``residual`` may be one (:func:`phased_transposed_convolution` adds it).

    Where :func:`takes_winograd2d_gradient`, both gradients are Winograd's:
    dw by :func:`winograd2d_weight_gradient`, dx by :func:`transposed_convolution`
    taking the forward's Winograd product (dy made dense, and unpooled first).

    Returns ``(dx or None, dw of shape (f, c * kh * kw), db)``, db None where
    left out.
    """
    n = x.shape[0]
    f, ckk = w.shape
    ohw = g["oh"] * g["ow"]
    argmax, relu_y = unpool if unpool is not None else (None, None)
    if unpool is not None:
        dy = dense(dy)
    extra = (g["h"] - x.shape[2], g["w"] - x.shape[3])
    stride_1 = g["sh"] == g["sw"] == 1
    # a stride-1 input gradient is a convolution of dy (transposed_convolution),
    # unless the padding reaches past the kernel's span; a strided one (without
    # dilation), one such convolution per phase of x (phased_transposed_convolution)
    # where every phase has taps; a 1x1 shortcut's is mostly zeros, kept as its
    # one phase's with phase_dx, or written by col2im (about as fast as
    # transposed_phases: ResNet's 16 -> 32 and 32 -> 64 at batch 128, 2 threads:
    # 0.99 and 0.60 ms against 0.99 and 0.55; Zen 5, 2026-12-05)
    phased_dx = (need_dx and not stride_1 and g["dh"] == g["dw"] == 1
                 and g["kh"] >= g["sh"] and g["kw"] >= g["sw"])
    phase_dx = (phase_dx and need_dx and not stride_1 and unpool is None and residual is None
                and g["kh"] == g["kw"] == 1 and g["ph"] == g["pw"] == 0 and extra == (0, 0))
    if isinstance(residual, PhaseGradient) and not phased_dx:
        residual = residual.dense()
    if residual is not None and not isinstance(residual, PhaseGradient):
        residual = np.ascontiguousarray(residual)
    if (extra[0] or extra[1]) and not reads_short_input(g, f, x.dtype, need_dx, cols, unpool):
        # the ways below that read x's taps from a padded image of their own
        # read the missing rows as zeros; the others get them
        x = np.pad(x, ((0, 0), (0, 0), (0, extra[0]), (0, extra[1])))
        dx_full, dw, db = conv2d_backward(dy, x, w, g, need_dx, cols=cols, unpool=unpool,
                                          need_db=need_db)
        if dx_full is not None:
            dx_full = dx_full[:, :, :x.shape[2] - extra[0], :x.shape[3] - extra[1]]
            if dx is None:
                dx = dx_full.copy()
            else:
                dx[...] = dx_full
            if residual is not None:
                add(dense(residual), dx, dx)
        return dx, dw, db
    n_chunks = min(n, MAX_REDUCTION_CHUNKS)
    n_threads = threads_for(n_chunks, 2 * n * f * ckk * ohw)
    along = None
    # (with the padding past the kernel's span dx is not a convolution of dy:
    # the way below)
    series = (unpool is None and takes_winograd(g, f) and g["pw"] < g["kw"]
              and min(g["c"], f) >= WINOGRAD_GRADIENT_MIN_CHANNELS[g["kw"]])
    winograd_gradient = (winograd_weight_gradient if series
                         else winograd2d_weight_gradient if takes_winograd2d_gradient(g, f)
                         else None)
    if winograd_gradient is not None:
        if unpool is not None:
            dy = _unpooled(dy, argmax, relu_y, g)
        dy = dense(dy)
        n_chunks = min(n, WINOGRAD_REDUCTION_CHUNKS)
        dw, db = winograd_gradient(dy, x, g, f, n_chunks,
                                   threads_for(n_chunks, 2 * n * f * ckk * ohw))
        # dx by the forward's Winograd product too: of dy, by the turned kernel
        dx = (transposed_convolution(dy, w, g, dx, residual, winograd=True) if need_dx
              else None)
        return dx, dw, (db if need_db else None)
    transposed_dx = need_dx and transposes_dx(g)
    implicit = transposed_dx or phased_dx or phase_dx or not need_dx
    # dw's rows along the taps or along the filters (bits are the same either way)
    run = tap_run(g)
    dw_transposed = dw_is_transposed(f, ckk, x.dtype, implicit, run)
    implicit = implicit and (dw_transposed or ckk >= _gemm.tile_shape(x.dtype.char)[1])
    dw_shape = (ckk, f) if dw_transposed else (f, ckk)
    if implicit and dw_transposed:
        # room for the tap-rows product's whole tiles, whose padding is dropped
        # below: a few filters (LeNet-5's 6) would make every tile an edge tile
        mr, nr = _gemm.tap_rows_tile(f, x.dtype.char, run)
        dw_part = np.empty((n_chunks, -(-ckk // mr) * mr, -(-f // nr) * nr), dtype=x.dtype)
    else:
        dw_part = np.empty((n_chunks,) + dw_shape, dtype=x.dtype)
    db_part = np.empty((n_chunks, f), dtype=x.dtype)
    if unpool is not None and (need_dx or not implicit):
        dy = _unpooled(dy, argmax, relu_y, g)
        unpool = None
    if implicit:
        # the weights' gradient reads the taps from the padded input itself
        # (see _conv.conv2d_backward_implicit): no im2col. Along the columns,
        # fewer taps than a tile's would leave most of it empty; im2col's
        # product then puts them in its rows
        layout = padded_image(g, f, x.dtype)[0]
        images = np.empty((n_threads, layout.padded_size), dtype=x.dtype)
        # scratch of the product as oriented: transposed, its rows are the taps
        work = np.empty((n_threads, _gemm.work_size(*dw_shape, ohw)), dtype=x.dtype)
        if unpool is not None:
            argmax = argmax.reshape(n, f, -1)
            relu_y = None if relu_y is None else relu_y.reshape(n, f, -1)
            planes = np.empty((n_threads, f * ohw), dtype=x.dtype)
        if not need_db:
            db_part = None
        along = (input_gradient_along(dy, w, g, dx, residual, n_threads) if transposed_dx
                 else input_gradient_along(dy, w, g, None, None, n_threads) if phase_dx
                 else None)
        # a batch norm's gradient formed as read where dy is read in this loop only
        formed = (dy if isinstance(dy, BatchNormGradient)
                  and (not need_dx or transposed_dx and along is not None) else None)
        if formed is not None:
            planes = np.empty((n_threads, f * ohw), dtype=x.dtype)
        else:
            dy = dense(dy)
        _conv.conv2d_backward_implicit(
            dy.reshape(n, f, -1) if formed is None else formed.g, x, layout,
            output_positions(g), dw_part, db_part, images, work, g, n_threads,
            dw_transposed=dw_transposed, tap_run=run,
            argmax=None if unpool is None else argmax, relu_y=None if unpool is None else relu_y,
            planes=None if unpool is None and formed is None else planes, input_gradient=along,
            formed=formed)
    else:
        dy = dense(dy)
        # the kernel folds w^T @ dy by col2im into dx, unless dx is left to that
        if not need_dx or transposed_dx or phased_dx or phase_dx:
            folded_dx = None
        else:
            folded_dx = dx = np.empty(x.shape, dtype=x.dtype) if dx is None else dx
        have_cols = cols is not None
        if not have_cols:
            cols = np.empty((n_threads, ckk, ohw), dtype=x.dtype)
        work_size = max(_gemm.work_size(*shape)
                        for shape in ((ckk, f, ohw), (f, ckk, ohw), (ckk, ohw, f)))
        work = np.empty((n_threads, work_size), dtype=x.dtype)
        _conv.conv2d_backward(
            dy.reshape(n, f, ohw), x, w, dw_part, db_part, cols, work, g, n_threads,
            dx=folded_dx, have_cols=have_cols, dw_transposed=dw_transposed)
    dw = dw_part[:, :dw_shape[0], :dw_shape[1]].sum(axis=0)
    dw = np.ascontiguousarray(dw.T) if dw_transposed else dw
    db = None if db_part is None else db_part.sum(axis=0)
    if phase_dx:  # the phase's values: the transposed 1x1 product of dy, of stride 1
        values = along.dx if along is not None else transposed_convolution(dy, w, g)
        return PhaseGradient(values, x.shape, (g["sh"], g["sw"])), dw, db
    if along is not None:  # dx computed, its residual added, in the weights' loop
        return along.dx, dw, db
    if transposed_dx:
        return transposed_convolution(dy, w, g, dx, residual), dw, db
    if phased_dx:
        return phased_transposed_convolution(dy, w, g, dx, x.shape[2:], residual), dw, db
    if need_dx and residual is not None:
        add(residual, dx, dx)
    return (dx if need_dx else None), dw, db


def _unpooled(dy, argmax, relu_y, g):
    """The output gradient of a :func:`conv2d` with ``pool2`` from dy, its pooled
    output's (the 2x2 pooling's backward, and the ReLU's with relu_y)."""
    n, f = dy.shape[:2]
    pooled = pool_geometry((n, f, g["oh"], g["ow"]), 2, None, 0)
    return max_pool2d_backward(dy, argmax, (n, f, g["oh"], g["ow"]), relu_y=relu_y, g=pooled)


def transposes_dx(g):
    """Whether :func:`conv2d_backward` computes dx as a convolution of dy
    (:func:`transposed_convolution`): a stride of 1 and padding within the
    kernel's span."""
    return (g["sh"] == g["sw"] == 1 and g["ph"] <= g["dh"] * (g["kh"] - 1)
            and g["pw"] <= g["dw"] * (g["kw"] - 1))


def reads_short_input(g, f, dtype, need_dx, cols, unpool):
    """Whether :func:`conv2d_backward` reads an x that lacks the last rows and
    columns of g's input as it is: its weights' gradient reads the taps from
    a padded image (the implicit product), and its input gradient, if any,
    is the strided one of phases, which writes x's rows and columns only."""
    strided = not g["sh"] == g["sw"] == 1
    phased_dx = (need_dx and strided and g["dh"] == g["dw"] == 1
                 and g["kh"] >= g["sh"] and g["kw"] >= g["sw"])
    ckk = g["c"] * g["kh"] * g["kw"]
    implicit = (dw_is_transposed(f, ckk, dtype, True, tap_run(g))
                or ckk >= _gemm.tile_shape(np.dtype(dtype).char)[1])
    return (cols is None and unpool is None and not takes_winograd(g, f)
            and not takes_winograd2d_gradient(g, f) and implicit and (phased_dx or not need_dx))


def winograd_weight_gradient(dy, x, g, f, n_chunks, n_threads):
    """``(dw, db)`` of a series' convolution that :func:`takes_winograd`:
    _conv.conv1d_weight_gradient_winograd's dU summed over its chunks in
    order, then dw = G^T dU, term by term in float64, rounded once
    (_conv.winograd_filter_gradient)."""
    layout = winograd_layout(g, x.dtype)
    n, c = x.shape[:2]
    du_part = np.empty((n_chunks, layout.alpha, f, c), dtype=x.dtype)
    db_part = np.empty((n_chunks, f), dtype=x.dtype)
    ldr = layout.ldv + 16
    size = (layout.m * layout.j_len + layout.alpha * ((c + f) * ldr + 32)
            + _gemm.work_size(f, c, layout.tiles))
    work = np.empty((n_threads, size), dtype=x.dtype)
    _conv.conv1d_weight_gradient_winograd(dy.reshape(n, f, -1), x, layout, du_part, db_part,
                                          work, n_threads)
    dw = np.empty((f, c, layout.g_matrix.shape[1]))
    _conv.winograd_filter_gradient(du_part, layout.g_matrix, dw, n_threads)
    return dw.reshape(f, -1).astype(x.dtype), db_part.sum(axis=0)


#: The images of one product of the image Winograd weight gradient
#: (_conv.conv2d_weight_gradient_winograd2d): as many as give it about this
#: many columns (tiles), so that its 16 products are long enough to pay for
#: their packing while V and Z (16 positions of the channels' and filters'
#: rows) stay in the L2 cache: at batch 128, two threads, 128 columns took
#: 4.78 ms for 64 channels on 8 x 8 and 14.7 for 128, 64 columns 4.82 and
#: 14.6, 256 columns 5.74 and 16.6 (AMD EPYC Zen 4, AVX-512, 2026-12-06).
WINOGRAD2D_GRADIENT_COLUMNS = 128


def winograd2d_weight_gradient(dy, x, g, f, n_chunks, n_threads):
    """``(dw, db)`` of an image's convolution that :func:`takes_winograd2d`:
    _conv.conv2d_weight_gradient_winograd2d's dU, its chunks summed in order,
    then dw = G^T dU G in float64, rounded once
    (_conv.winograd2d_filter_gradient)."""
    layout = winograd2d_layout(g, x.dtype)
    n, c = x.shape[:2]
    group = max(1, WINOGRAD2D_GRADIENT_COLUMNS // layout.tiles)
    du_part = np.empty((n_chunks, 16, f, c), dtype=x.dtype)
    db_part = np.empty((n_chunks, f), dtype=x.dtype)
    work = np.empty((n_threads, _conv.winograd2d_gradient_work(c, f, layout, group)),
                    dtype=x.dtype)
    _conv.conv2d_weight_gradient_winograd2d(dy.reshape(n, f, -1), x, layout,
                                            layout.copy_geometry, du_part, db_part, work, group,
                                            n_threads)
    dw = np.empty((f, c, 9))
    _conv.winograd2d_filter_gradient(du_part, dw, n_threads)
    return dw.reshape(f, -1).astype(x.dtype), db_part.sum(axis=0)


def tap_run(g):
    """How many consecutive offsets of the padded image each kernel row's taps
    are (:func:`tap_offsets`): the kernel's width at a stride and dilation of
    1 along the rows, else 1 (a stride splits a row's taps between phase
    planes, a dilation spaces them). The weights' gradient has a product of
    its own for taps in runs of 3 (_gemm.tap_rows_tile)."""
    return g["kw"] if g["sw"] == 1 and g["dw"] == 1 else 1


def dw_is_transposed(f, ckk, dtype, implicit, run=1):
    """Whether a weight gradient of f filters by ckk taps computes dw^T, the taps
    along the micro-kernel's rows and the filters along its columns.

    Whichever costs less per output position: the tiles' multiply-adds, the
    padding to whole tiles included (a full tile's row of nr columns, two
    vectors, is about a cycle), plus the packing of the operands (about half a
    cycle an element, measured on the AVX2 path). Both orientations pack dy;
    the ``implicit`` product (see _conv.conv2d_backward_implicit) packs the
    taps too, unless they are its rows, which the micro-kernel reads in the
    image, in tiles one vector wide when that holds the filters
    (_gemm.tap_rows_tile, its taps in runs of ``run``: :func:`tap_run`).
    On LeNet-5's first convolution (6 filters, 25 taps)
    that moves both float32 and float64 to the taps' rows (measured 1.5x as
    fast as the filters' for float32). The bits are the same either way.
    """
    char = np.dtype(dtype).char
    full = _gemm.tile_shape(char)

    def cost(rows, columns, packed, tile):
        mr, nr = tile
        return -(-rows // mr) * mr * (-(-columns // nr) * nr) / full[1] + packed / 2

    tap_rows = _gemm.tap_rows_tile(f, char, run) if implicit else full
    return cost(ckk, f, f + (0 if implicit else ckk), tap_rows) <= cost(f, ckk, f + ckk, full)


#: A stride-1 convolution's input gradient computed sample by sample beside its
#: weights' (see :func:`input_gradient_along`): the turned weights (c, f * kh *
#: kw), the implicit layout and geometry of the transposed convolution, dx
#: and the residual added to it (or None), and the scratch (its weights'
#: panels, then per thread an image and a product).
InputGradient = namedtuple("InputGradient", "w layout geometry dx residual work")


def input_gradient_along(dy, w, g, dx, residual, n_threads):
    """The :class:`InputGradient` with which _conv.conv2d_backward_implicit
    computes :func:`transposed_convolution` (into ``dx``, or an array it
    makes) as it goes through the samples for the weights' gradient, or None
    where that convolution takes a way of its own (a product by positions,
    Winograd's, or its tiles in parts).

    Each sample's dy is then read from memory once for both gradients, the
    second time from cache, in one parallel region instead of two: the
    same products, so the same bits.
    """
    gt = _transposed_geometry(dy.shape, g)
    c = g["c"]
    if takes_winograd(gt, c):
        return None
    layout, rows, columns = padded_image(gt, c, dy.dtype)
    if positions_first(gt, c, dy.dtype, layout):
        return None
    if dx is None:
        dx = np.empty((dy.shape[0], c, gt["oh"], gt["ow"]), dtype=dy.dtype)
    turned = _turned(w.reshape(w.shape[0], c, g["kh"], g["kw"]))
    work = np.empty(rows * turned.shape[1] + n_threads * (layout.padded_size + rows * columns),
                    dtype=dy.dtype)
    return InputGradient(turned, layout, gt, dx,
                         None if residual is None else residual.reshape(dx.shape), work)


def _transposed_geometry(dy_shape, g):
    """The geometry of the convolution of dy that gives a stride-1
    convolution's input gradient (see :func:`transposed_convolution`)."""
    kh, kw = g["kh"], g["kw"]
    padding = (g["dh"] * (kh - 1) - g["ph"], g["dw"] * (kw - 1) - g["pw"])
    return geometry(dy_shape, (kh, kw), 1, padding, (g["dh"], g["dw"]))


def transposed_convolution(dy, w, g, dx=None, residual=None, winograd=False):
    """The input gradient of a stride-1 convolution, as a convolution of dy.

    dx[c, y, x] sums w[f, c, ki, kj] * dy[f, y + ph - ki * dh, x + pw - kj * dw]:
    the correlation of dy, zero-padded by the kernel's span less the padding,
    with the kernel turned by 180 degrees and its two channel axes swapped
    (the seeds' "rot180"). So it runs as the implicit forward product, with
    neither w^T @ dy's columns nor col2im's scattered adds. Each dx element is
    one FMA chain over (f, ki, kj), in the same order for every sample, batch,
    thread count and SIMD path. ``residual`` (None, or an array of dx's shape)
    is added as the product writes dx.

    By Winograd's F(2x2, 3x3) only with ``winograd`` (where the weights'
    gradient takes it too, :func:`takes_winograd2d_gradient`): elsewhere the
    separate product costs more than the fused one of both gradients
    (conv2d_backward_implicit) saves with AVX-512 (ResNet-20's 32 -> 32 on
    16 x 16 at batch 128, two threads: 3.3 against 3.0 ms for both).
    """
    gt = _transposed_geometry(dy.shape, g)
    plan = (conv2d_plan(gt, g["c"], dy.dtype, dy.shape[0], winograd=False)
            if not winograd and takes_winograd2d(gt, g["c"]) else None)
    return conv2d(dy, _turned(w.reshape(w.shape[0], g["c"], g["kh"], g["kw"])), None, gt,
                  out=dx, plan=plan, residual=residual)


def _turned(w4):
    """Weights w4 (f, c, kh, kw) turned by 180 degrees, their channel axes
    swapped: (c, f * kh * kw), the weights of the convolution of dy that
    gives dx."""
    return np.ascontiguousarray(w4[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)).reshape(
        w4.shape[1], -1)


#: Where a strided convolution's input gradient by phases reads and writes
#: (see :func:`phases_layout`). ``table``: one row a phase, its columns
#: _conv.PHASE_COLUMNS: where its turned weights start in their flat array and
#: its packed panels in the work, its taps (how many, and where in
#: ``offsets``), its tiles (where in ``starts``, how many, how wide, the
#: product's columns between two output rows), the rows and columns it gives
#: dx, and dx's first row and column of it. ``merged``: a row of phases is
#: computed at once, its two column phases interleaved into dx's rows.
PhasesLayout = namedtuple("PhasesLayout",
                          "image stride channel_stride padded_size offsets starts table covered "
                          "panels_size product_size merged")


@index_cache
def phases_layout(f, oh, ow, c, h, w, kh, kw, sh, sw, ph, pw, dtype_char, path):
    """The :class:`PhasesLayout` of :func:`phased_transposed_convolution` for a
    convolution of c channels by f filters, its kernel (kh, kw), stride (sh, sw)
    and padding (ph, pw), whose output is (oh, ow) and input gradient (h, w), in
    dtype_char's precision on SIMD path ``path``: dy's padded image (its
    geometry, channel stride and elements, slack for the last tile's reads
    included); the phases' taps in it and tiles (full or narrow, as
    :func:`padded_image` picks them); the table of the phases
    (_conv.PHASE_COLUMNS); whether the phases fill all of dx; the elements of the
    packed weights, and of the products held at once: one phase's at most, or
    twice that where a width stride of 2's phases fill dx, a row of phases then
    merged into dx's rows (``merged``; see _conv.transposed_phases).
    """
    full, narrow, _ = _gemm.implicit_tile_widths(dtype_char)
    # one image of dy padded by the largest phase kernel's span less one
    pad_h, pad_w = -(-kh // sh) - 1, -(-kw // sw) - 1
    image = geometry((1, f, oh, ow), (pad_h + 1, pad_w + 1), 1, (pad_h, pad_w), 1)
    channel_stride = tap_offsets(f, oh, ow, 1, 1, pad_h, pad_w, 1, 1)[0]
    wp = ow + 2 * pad_w
    table = np.zeros((sh * sw, len(_conv.PHASE_COLUMNS)), dtype=np.intp)
    offsets, starts = [], []
    weights_at = panels_at = 0
    covered, product_size, reach = True, 0, f * channel_stride
    rows_of = _gemm.output_rows(c, dtype_char)
    for a in range(sh):
        y0 = (a - ph) % sh  # dx's first row of phase a, the phase's row u0
        u0 = (y0 + ph) // sh
        kha = len(range(a, kh, sh))
        for b in range(sw):
            x0 = (b - pw) % sw
            v0 = (x0 + pw) // sw
            kwb = len(range(b, kw, sw))
            # the phase's product reads dy padded by (kha - 1, kwb - 1): in the
            # image, its tap (fi, ki, kj) for output (u0 + i, v0 + j) is a shift
            # of the padding's difference, u0 and v0 further
            need_rows, need_cols = len(range(y0, h, sh)), len(range(x0, w, sw))
            rows = max(0, min(need_rows, oh + kha - 1 - u0)) if kha else 0
            cols = max(0, min(need_cols, ow + kwb - 1 - v0)) if kwb else 0
            covered = covered and (rows, cols) == (need_rows, need_cols)
            taps = f * kha * kwb
            row = dict(weights_at=weights_at, panels_at=panels_at, taps=taps,
                       taps_at=sum(map(len, offsets)), tiles_at=sum(map(len, starts)),
                       rows=rows, cols=cols, y0=y0, x0=x0)
            weights_at += c * taps
            if rows and cols and taps:
                shift = (pad_h - (kha - 1) + u0) * wp + pad_w - (kwb - 1) + v0
                tap = (np.arange(f)[:, None, None] * channel_stride
                       + np.arange(kha)[:, None] * wp + np.arange(kwb) + shift).ravel()
                tile_starts, tile_row = tiles(rows, cols, wp, full)
                width = full
                if narrow:
                    narrow_starts, narrow_row = tiles(rows, cols, wp, narrow)
                    if len(narrow_starts) * narrow * NARROW_TILE_COST < len(tile_starts) * full:
                        tile_starts, tile_row, width = narrow_starts, narrow_row, narrow
                offsets.append(tap)
                starts.append(tile_starts)
                row.update(tiles=len(tile_starts), width=width, tile_row=tile_row)
                panels_at += rows_of * taps
                product_size = max(product_size, rows_of * len(tile_starts) * width)
                reach = max(reach, tap[-1] + tile_starts[-1] + width)
            table[a * sw + b] = [row.get(name, 0) for name in _conv.PHASE_COLUMNS]
    offsets = np.concatenate(offsets).astype(np.intp)
    starts = np.concatenate(starts).astype(np.intp)
    for array in (table, offsets, starts):
        array.flags.writeable = False
    merged = covered and sw == 2
    return PhasesLayout(image, (sh, sw), channel_stride, -(-reach // 16) * 16, offsets, starts,
                        table, covered, panels_at, product_size * (2 if merged else 1), merged)


def phased_transposed_convolution(dy, w, g, dx=None, size=None, residual=None):
    """The input gradient of a strided convolution without dilation, phase by phase.

    Padded row u = y + ph of x meets the kernel rows ki = a + q * sh, a = u %
    sh, at output rows i = u // sh - q: each phase (a, b) of x is the
    gradient of a stride-1 convolution by the kernel's taps of that phase,
    ``w[:, :, a::sh, b::sw]``, turned (:func:`transposed_convolution`'s
    product of dy, padded by the phase kernel's span less one: every phase
    position any output reads). Instead of the seeds' dy dilated by zeros, or
    w^T @ dy's columns and col2im's scattered adds: four implicit products
    for a stride of 2, one FMA chain per dx element over (f, q, r), in the
    same order for every sample, batch, thread count and SIMD path. All of
    them in one pass over the samples (_conv.transposed_phases): each
    sample's dy is copied once into an image padded for every phase, each
    phase's product put in its rows and columns of dx while in cache; rows
    and columns no tap reads get zeros. ``residual`` (None, or an array of
    dx's shape: x's gradient from its other readers) is added with the bits
    of :func:`add`; or a :class:`PhaseGradient`, added to its phase as that
    is put (where the phases are merged: see :func:`phases_layout`).
    ``size``: dx's (height, width), g's input's or less (an x
    without 'same' padding's extra bottom row and right column, whose
    gradient is not formed); None for g's.
    """
    n, f = dy.shape[:2]
    c, kh, kw = g["c"], g["kh"], g["kw"]
    h, wd = (g["h"], g["w"]) if size is None else size
    if dx is None:
        dx = np.empty((n, c, h, wd), dtype=dy.dtype)
    layout = phases_layout(f, g["oh"], g["ow"], c, h, wd, kh, kw, g["sh"], g["sw"], g["ph"],
                            g["pw"], dy.dtype.char, _gemm.get_path())
    w4 = w.reshape(f, c, kh, kw)
    turned = np.concatenate([_turned(w4[:, :, a::g["sh"], b::g["sw"]]).ravel()
                             for a in range(g["sh"]) for b in range(g["sw"])])
    n_threads = threads_for(n, 2 * n * f * c * kh * kw * g["oh"] * g["ow"])
    work = np.empty(layout.panels_size + n_threads * (layout.padded_size + layout.product_size),
                    dtype=dy.dtype)
    phase_residual = None
    if isinstance(residual, PhaseGradient):
        # merged phases fill dx: the one at row 0 and column 0 is the gradient's
        if layout.merged and residual.stride == (g["sh"], g["sw"]) and residual.shape == dx.shape:
            phase_residual, residual = np.ascontiguousarray(residual.values), None
        else:
            residual = residual.dense()
    _conv.transposed_phases(np.ascontiguousarray(dy), turned, layout, dx, work, n_threads,
                            residual=residual, phase_residual=phase_residual)
    return dx


def matmul(a, b, bias=None, out=None, relu=False, plan=None):
    """``a @ b (+ bias)`` by skconv's GEMM, in blocks on the OpenMP threads;
    then ``max(., 0)`` with ``relu``.

    Each output element is one chain of fused multiply-adds over the inner
    axis in order, so its bits do not depend on the other rows, the number of
    rows, the blocks, the threads or the SIMD path (unlike BLAS, whose kernels
    change with the CPU and the matrix shape). ``plan``: what
    :func:`matmul_plan` returns for these shapes in the current
    :func:`plan_context`, or None.
    """
    m, k = a.shape
    n = b.shape[1]
    if out is None:
        out = np.empty((m, n), dtype=a.dtype)
    row_blocks, col_blocks, work_shape = matmul_plan(m, n, k) if plan is None else plan
    work = np.empty(work_shape, dtype=a.dtype)
    _gemm.matmul(a, b, out, work, row_blocks, col_blocks, bias=bias, relu=relu)
    return out


def matmul_plan(m, n, k):
    """What :func:`matmul` derives from the shapes alone in the current
    :func:`plan_context`: a :class:`MatmulPlan` ``(row_blocks, col_blocks, work_shape)``.

    One block per thread: the rows are split first, in blocks of at least
    ``MIN_ROWS_PER_THREAD``; when they run out (a dense layer at a batch of
    64 has 4 such blocks) the columns are split too, in blocks of at least
    ``MIN_COLUMNS_PER_BLOCK``, so that more threads than row blocks still
    have a block each.
    """
    max_row_blocks = -(-m // MIN_ROWS_PER_THREAD)
    max_col_blocks = -(-n // MIN_COLUMNS_PER_BLOCK)
    n_threads = threads_for(max_row_blocks * max_col_blocks, 2 * m * n * k)
    row_blocks = min(max_row_blocks, n_threads)
    col_blocks = min(max_col_blocks, -(-n_threads // row_blocks))
    return MatmulPlan(row_blocks, col_blocks,
                      (n_threads, _gemm.work_size(-(-m // row_blocks), n, k)))


def pool_threads(x_shape):
    """:func:`threads_for` of a pooling, forward or backward, whose input has ``x_shape``."""
    # math.prod, not np.prod: a microsecond less of a one-row prediction
    return threads_for(x_shape[0], math.prod(x_shape) * WORK_PER_ELEMENT)


def max_pool2d(x, g, return_argmax, relu=False, out=None, n_threads=None):
    """:func:`max_pool2d` of a checked x (C-contiguous, 4-D) and its pooling geometry g;
    ``relu`` applies ``max(y, 0)``, the activation a block puts after pooling (the
    argmax stays the window's: :func:`max_pool2d_backward` takes the ReLU's mask from y).
    ``out``: None, or ``(y, argmax)`` arrays to write into (a training layer's buffers).
    ``n_threads``: ``pool_threads(x.shape)`` of the caller's plan, or None."""
    n, c = x.shape[:2]
    if out is not None:
        y, argmax = out
    else:
        y = np.empty((n, c, g["oh"], g["ow"]), dtype=x.dtype)
        argmax = np.empty(y.shape, dtype=np.intp) if return_argmax else None
    _pool.max_pool2d_forward(x, y, g, pool_threads(x.shape) if n_threads is None else n_threads,
                             argmax=argmax, relu=relu)
    return (y, argmax) if return_argmax else y


def max_pool2d_backward(dy, argmax, x_shape, dx=None, relu_y=None, g=None):
    """:func:`max_pool2d_backward` of a C-contiguous dy and an argmax from max_pool2d;
    ``dx`` an array of x_shape to write into (a training layer's buffer), or None.
    ``relu_y``: the output of ``max_pool2d(..., relu=True)``, whose ReLU's gradient
    (dy where y > 0, else 0) goes through too; None for a pooling without one.
    ``g``: the pooling geometry that gave argmax, or None (any windows)."""
    n, c, h, w = x_shape
    dx = np.empty((n, c, h * w), dtype=dy.dtype) if dx is None else dx.reshape(n, c, h * w)
    y = None if relu_y is None else relu_y.reshape(n, c, -1)
    dy, argmax = dy.reshape(n, c, -1), argmax.reshape(n, c, -1)
    if g is not None and (g["kh"], g["kw"], g["sh"], g["sw"], g["ph"], g["pw"]) == (
            2, 2, 2, 2, 0, 0):
        _pool.max_pool2d_2x2_backward(dy, argmax, dx, g, pool_threads(x_shape), y=y)
    else:
        _pool.max_pool2d_backward(dy, argmax, dx, pool_threads(x_shape), y=y)
    return dx.reshape(n, c, h, w)


def add(a, b, out, relu=False):
    """``out = a + b`` (then ``max(., 0)`` with ``relu``, as ``np.maximum``) for
    C-contiguous arrays of one shape and dtype, in one pass; returns ``out``."""
    _elementwise.add(a.reshape(-1), b.reshape(-1), out.reshape(-1), relu,
                     threads_for(1 + a.size // 65536, a.size * WORK_PER_ELEMENT))
    return out


def relu_backward(dy, y, copy=None):
    """``dy *= (y > 0)`` in place (y the ReLU's output), as ``np.multiply(dy, y > 0)``,
    in one pass; and into ``copy`` too unless None (C-contiguous, of dy's shape)."""
    if not (dy.flags.c_contiguous and y.flags.c_contiguous):
        # a flat view would be a copy, and dy must change in place
        np.multiply(dy, y > 0, out=dy)
        if copy is not None:
            copy[...] = dy
        return
    _elementwise.relu_backward(dy.reshape(-1), y.reshape(-1),
                               threads_for(1 + dy.size // 65536, dy.size * WORK_PER_ELEMENT),
                               copy=None if copy is None else copy.reshape(-1))


def batch_norm(x3, scale, shift, eps, y, x_hat=None, relu=False, residual=None):
    """:func:`batch_norm` of checked (n, c, m) arrays into ``y`` (and ``x_hat``
    unless None: :func:`batch_norm_backward` recomputes it from x); with
    ``relu``, ``y = max(., 0)``. With ``residual``, an (n, c, m) array, ``y``
    gets the batch norm plus it, then with ``relu`` :func:`add`'s ReLU: the
    bits of :func:`add` applied to the batch norm's output (a residual block's
    addition), in the pass that writes it. Returns ``(mean, var)``."""
    c = x3.shape[1]
    mean, var = np.empty(c), np.empty(c)
    _batchnorm.batch_norm_forward(x3, scale, shift, y, mean, var, _batch_norm_work(c), eps,
                                  relu, *_batch_norm_tasks(x3), x_hat=x_hat, residual=residual)
    return mean, var


def batch_norm_backward(dy3, x3, mean, var, scale, shift, eps, dx3, dscale, dshift,
                        relu=False, after=None, formed=False):
    """:func:`batch_norm_backward` of checked (n, c, m) arrays into ``dx3`` (or None:
    no dx), ``dscale`` and ``dshift``. ``x3``, ``mean`` and ``var``: the input and
    statistics of a :func:`batch_norm`, from which x_hat is recomputed with the
    forward's bits; or x_hat itself with ``mean`` None. ``relu``: dy is the
    gradient of the ReLU after the batch norm (``shift`` then needed).
    ``after`` (not with relu): None, or the output of a ReLU after the batch
    norm's addition of a residual (``residual`` of :func:`batch_norm`), of
    dy3's shape: dy3, the gradient of that output, is then masked in place
    as :func:`relu_backward` masks it, in the pass that reads it.

    With ``formed``, dx is not computed but returned as a
    :class:`BatchNormGradient` of dx3's shape, which writes it into dx3 if
    made dense; None otherwise."""
    dtype = dy3.dtype
    c = len(var)
    if mean is None:
        center, inv_std = np.zeros(c, dtype), np.ones(c, dtype)
    else:
        center, inv_std = mean.astype(dtype), (1 / np.sqrt(var + eps)).astype(dtype)
    coef = scale.astype(np.float64) / np.sqrt(var + eps)
    shift = np.zeros(c, dtype) if shift is None else shift
    work = _batch_norm_work(c)
    _batchnorm.batch_norm_backward(
        dy3, x3, center, inv_std, coef, relu, scale, shift, dscale, dshift, work,
        *_batch_norm_tasks(dy3), dx=None if formed else dx3, after=after,
        g_out=None if after is None else dy3)
    if formed:
        return BatchNormGradient(dy3, x3, center, inv_std, coef, relu, scale, shift, work,
                                 dx3.reshape(dy3.shape), dx3.shape)
    return None


def _batch_norm_work(c):
    return np.zeros((c, _batchnorm.WORK_PER_CHANNEL))


#: Bytes of the two arrays a batch norm's pass reads (x, or dy and x) that its
#: next pass finds in cache: half a core's L2.
BATCH_NORM_GROUP_BYTES = 1 << 20
#: The shortest run of an image's contiguous values worth a group: shorter
#: runs, far apart, cost the prefetchers more than the second pass's reads
#: from memory (128 x 32 channels of 28 x 28 maps, one channel a group: 10-20%
#: slower than all channels at once, measured).
BATCH_NORM_MIN_RUN_BYTES = 16 << 10


def _batch_norm_tasks(a3):
    """``(group, threads)``: the channels a batch norm task takes, both its
    passes over them sweeping the images in order, the second finding them in
    L2; or, where that group's runs would be short, a thread's share of the
    channels (one sweep of the whole batch a pass)."""
    n, c, m = a3.shape
    threads = threads_for(c, a3.size * WORK_PER_ELEMENT)
    group = max(1, BATCH_NORM_GROUP_BYTES // (2 * n * m * a3.itemsize))
    if group * m * a3.itemsize < BATCH_NORM_MIN_RUN_BYTES:
        group = c
    group = min(group, -(-c // threads))
    return group, min(threads, -(-c // group))


@index_cache
def depthwise_layout(h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
    """The padded, column-phase-split plane the depthwise kernels read (see
    _kernels/_depthwise.pyx): ``(layout, offsets, phases)``.

    Column q of a padded row goes to sub-row ``q % sw`` at ``q // sw``, so
    output (i, j)'s tap (ki, kj) reads ``i * row_step + offsets[t] + j``,
    contiguous in j. ``phases[p]`` is ``(first, stop, q0)``: sub-row p's
    entries first ... stop - 1 hold x's columns ``q0 + k * sw``. The plane has
    a vector's slack at its end, for the loads past a row's last output.
    """
    sub_row = -(-(w + 2 * pw) // sw)
    offsets = np.array([(ki * dh * sw + kj * dw % sw) * sub_row + kj * dw // sw
                        for ki in range(kh) for kj in range(kw)], dtype=np.intp)
    phases = np.empty((sw, 3), dtype=np.intp)
    for p in range(sw):
        first = max(0, -(-(pw - p) // sw))
        phases[p] = first, max(first, -(-(w + pw - p) // sw)), p - pw
    layout = dict(h=h, w=w, ph=ph, pw=pw, spread_h=1, spread_w=1, sw=sw, sub_row=sub_row, row_step=sh * sw * sub_row,
                  plane_size=(h + 2 * ph) * sw * sub_row + 16, oh=oh, ow=ow)
    for a in (offsets, phases):
        a.flags.writeable = False
    return layout, offsets, phases


def layout_of(g):
    return depthwise_layout(g["h"], g["w"], g["kh"], g["kw"], g["sh"], g["sw"], g["ph"],
                             g["pw"], g["dh"], g["dw"], g["oh"], g["ow"])


def plane_threads(n, size):
    """:func:`threads_for` of a pass over n samples of ``size`` elements in all
    (not pool_threads: np.prod of a shape costs microseconds, a one-row
    prediction's budget)."""
    return threads_for(n, size * WORK_PER_ELEMENT)


def grouped_conv2d(x, w, b, g, groups, out=None, relu=False):
    """:func:`conv2d` with ``groups`` of checked arguments: x (n, c, h, w)
    C-contiguous, w (f, c // groups * kh * kw) and b (f,) or None of x's dtype,
    g x's geometry; ``out`` an (n, f, oh, ow) C-contiguous array to write into,
    or None; ``relu`` applies ``max(., 0)``.

    Returns y of shape (n, f, oh, ow).
    """
    n, c = x.shape[:2]
    f = w.shape[0]
    y = np.empty((n, f, g["oh"], g["ow"]), dtype=x.dtype) if out is None else out
    if groups == c and groups > 1:
        n_threads = threads_for(n * c, 2 * n * f * w.shape[1] * g["oh"] * g["ow"])
        layout, offsets, _ = layout_of(g)
        planes = np.zeros((n_threads, layout["plane_size"]), dtype=x.dtype)
        _depthwise.depthwise_conv2d_forward(x, w, y, offsets, planes, layout, n_threads, b=b,
                                            relu=relu)
        return y
    if groups == 1:
        conv2d(x, w, b, g, out=y)
    else:
        cg, fg = c // groups, f // groups
        group_g = dict(g, c=cg)
        for k in range(groups):
            filters = slice(k * fg, (k + 1) * fg)
            y[:, filters] = conv2d(np.ascontiguousarray(x[:, k * cg:(k + 1) * cg]), w[filters],
                                    None if b is None else b[filters], group_g)
    if relu:
        np.maximum(y, 0, out=y)
    return y


def grouped_conv2d_backward(dy, x, w, g, groups, need_dx, dx=None):
    """:func:`conv2d_backward` with ``groups`` of checked arguments: dy (n, f,
    oh, ow) and x (n, c, h, w) C-contiguous, w (f, c // groups * kh * kw), g x's
    geometry; ``dx`` an (n, c, h, w) C-contiguous array to write into, or None.

    Returns ``(dx or None, dw of shape (f, c // groups * kh * kw), db of shape (f,))``;
    dw and db are summed over the batch in an order fixed by its size.
    """
    n, c = x.shape[:2]
    f, taps = w.shape
    if groups == c and groups > 1:
        return depthwise_conv2d_backward(dy, x, w, g, need_dx, dx)
    if groups == 1:
        return conv2d_backward(dy, x, w, g, need_dx, dx=dx)
    cg, fg = c // groups, f // groups
    group_g = dict(g, c=cg)
    if need_dx and dx is None:
        dx = np.empty(x.shape, dtype=x.dtype)
    dw = np.empty(w.shape, dtype=x.dtype)
    db = np.empty(f, dtype=x.dtype)
    for k in range(groups):
        channels, filters = slice(k * cg, (k + 1) * cg), slice(k * fg, (k + 1) * fg)
        dx_k, dw[filters], db[filters] = conv2d_backward(
            np.ascontiguousarray(dy[:, filters]), np.ascontiguousarray(x[:, channels]),
            w[filters], group_g, need_dx)
        if need_dx:
            dx[:, channels] = dx_k
    return (dx if need_dx else None), dw, db


def depthwise_conv2d_backward(dy, x, w, g, need_dx, dx):
    """:func:`grouped_conv2d_backward` of a depthwise convolution."""
    n, c = x.shape[:2]
    f, taps = w.shape
    work = 2 * n * f * taps * g["oh"] * g["ow"]
    layout, offsets, phases = layout_of(g)
    if need_dx:
        dx = np.empty(x.shape, dtype=x.dtype) if dx is None else dx
        if g["ph"] <= g["dh"] * (g["kh"] - 1) and g["pw"] <= g["dw"] * (g["kw"] - 1):
            depthwise_transposed(dy, w, g, dx)
        else:
            # padding past the kernel's span: scatter each dy row where its taps read
            n_threads = threads_for(n * c, work)
            planes = np.empty((n_threads, layout["plane_size"]), dtype=x.dtype)
            _depthwise.depthwise_conv2d_backward_input(dy, w, dx, offsets, phases, planes,
                                                       layout, n_threads)
    n_chunks = min(n, MAX_REDUCTION_CHUNKS)
    n_threads = threads_for(n_chunks * f, work)
    dw_part = np.empty((n_chunks, f, taps + 1), dtype=x.dtype)
    dw_db = np.empty((f, taps + 1), dtype=x.dtype)
    # each tap's lanes padded to whole vectors of the widest path
    lanes = np.empty((n_threads, taps + 1, -(-g["ow"] // 8) * 8), dtype=x.dtype)
    planes = np.zeros((n_threads, layout["plane_size"]), dtype=x.dtype)
    _depthwise.depthwise_conv2d_backward_weights(dy, x, dw_part, dw_db, lanes, offsets, planes,
                                                 layout, n_threads)
    return (dx if need_dx else None), np.ascontiguousarray(dw_db[:, :taps]), dw_db[:, taps].copy()


def depthwise_transposed(dy, w, g, dx):
    """The input gradient of a depthwise convolution as depthwise forward
    correlations (the fast kernel, whose sums stay in registers).

    dx[c] sums, over c's m filters, dy's plane with sh - 1 (sw - 1) zeros
    between its rows (columns) correlated with the filter's kernel turned by
    180 degrees (see transposed_convolution), with the kernel's span less the
    padding as padding, and zeros below (right of) the rows (columns) that no
    window read. The zeros add nothing but a product +-0, which leaves every
    sum as it is. Filters add up in order: a fixed order for every element.
    """
    n, f, oh, ow = dy.shape
    c, h, wd = dx.shape[1:]
    m = f // c
    kh, kw, dh, dw = g["kh"], g["kw"], g["dh"], g["dw"]
    padding = (dh * (kh - 1) - g["ph"], dw * (kw - 1) - g["pw"])
    size = (h - 2 * padding[0] + dh * (kh - 1), wd - 2 * padding[1] + dw * (kw - 1))
    gt = geometry((n, c) + size, (kh, kw), 1, padding, (dh, dw))
    layout, offsets, _ = layout_of(gt)
    if g["sh"] != 1 or g["sw"] != 1:
        # the zeros between dy's rows and columns are the padded plane's own
        layout = dict(layout, h=oh, w=ow, spread_h=g["sh"], spread_w=g["sw"])
    turned = np.ascontiguousarray(w[:, ::-1])
    n_threads = threads_for(n * c, 2 * n * f * w.shape[1] * h * wd)
    planes = np.zeros((n_threads, layout["plane_size"]), dtype=dy.dtype)
    if m == 1:
        _depthwise.depthwise_conv2d_forward(dy, turned, dx, offsets, planes, layout, n_threads)
        return dx
    dy = dy.reshape(n, c, m, oh, ow)
    term = np.empty_like(dx)
    for k in range(m):
        _depthwise.depthwise_conv2d_forward(
            np.ascontiguousarray(dy[:, :, k]), np.ascontiguousarray(turned[k::m]),
            dx if k == 0 else term, offsets, planes, layout, n_threads)
        if k:
            dx += term
    return dx


def global_avg_pool2d(x, out=None):
    """:func:`global_avg_pool2d` of a C-contiguous 4-D x; ``out`` an (n, c) array or None."""
    n, c = x.shape[:2]
    y = np.empty((n, c), dtype=x.dtype) if out is None else out
    _global_pool.global_avg_pool2d_forward(x.reshape(n, c, -1), y, plane_threads(n, x.size))
    return y


def global_avg_pool2d_backward(dy, x_shape, dx=None):
    """:func:`global_avg_pool2d_backward` of a C-contiguous dy; ``dx`` an array of
    x_shape to write into, or None."""
    n, c = x_shape[:2]
    dx = np.empty(x_shape, dtype=dy.dtype) if dx is None else dx
    _global_pool.global_avg_pool2d_backward(dy, dx.reshape(n, c, -1), plane_threads(n, dx.size))
    return dx


def global_max_pool2d(x, out=None, argmax=None):
    """:func:`global_max_pool2d` of a C-contiguous 4-D x: ``out`` an (n, c) array
    or None; ``argmax`` an (n, c) intp array to fill, or None for none.

    Returns ``(y, argmax or None)``.
    """
    n, c = x.shape[:2]
    y = np.empty((n, c), dtype=x.dtype) if out is None else out
    _global_pool.global_max_pool2d_forward(x.reshape(n, c, -1), y, plane_threads(n, x.size),
                                           argmax=argmax)
    return y, argmax


def global_max_pool2d_backward(dy, argmax, x_shape, dx=None):
    """:func:`global_max_pool2d_backward` of a C-contiguous dy and an intp argmax
    from global_max_pool2d; ``dx`` an array of x_shape to write into, or None."""
    n, c = x_shape[:2]
    dx = np.empty(x_shape, dtype=dy.dtype) if dx is None else dx
    _global_pool.global_max_pool2d_backward(dy, argmax, dx.reshape(n, c, -1),
                                            plane_threads(n, dx.size))
    return dx


def simd_path():
    """The SIMD path the products use (chosen once, at import)."""
    return _gemm.get_path()


def im2col(x, g):
    """The columns of x's windows, (n, c * kh * kw, oh * ow): a sample's taps in rows,
    as the kernels keep them (see _kernels/_im2col.pxd)."""
    n = x.shape[0]
    cols = np.empty((n, g["c"] * g["kh"] * g["kw"], g["oh"] * g["ow"]), dtype=x.dtype)
    _im2col.im2col(x, cols, g, threads_for(n, cols.size * WORK_PER_ELEMENT))
    return cols


def col2im(cols, x_shape, g):
    """The adjoint of :func:`im2col`: columns (n, c * kh * kw, oh * ow) summed into x."""
    x = np.empty(x_shape, dtype=cols.dtype)
    _im2col.col2im(cols, x, g, threads_for(x_shape[0], cols.size * WORK_PER_ELEMENT))
    return x


def avg_pool2d(x, g):
    n, c = x.shape[:2]
    y = np.empty((n, c, g["oh"], g["ow"]), dtype=x.dtype)
    _pool.avg_pool2d_forward(x, y, g, pool_threads(x.shape))
    return y


def avg_pool2d_backward(dy, x_shape, g):
    dx = np.empty(x_shape, dtype=dy.dtype)
    _pool.avg_pool2d_backward(dy, dx, g, pool_threads(x_shape))
    return dx


# the kernels' SIMD path, chosen once per process
select_simd_path()
