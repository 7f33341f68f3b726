"""Convolution and pooling on NCHW arrays: the public functional API.

Every function validates its arguments (shapes, dtypes, geometry) and raises
``ValueError`` or ``TypeError`` naming the argument before any compiled code
runs, then calls a Cython kernel. Arrays are float32 or float64; outputs take
the input's dtype. ``kernel_size``, ``stride``, ``padding`` and ``dilation``
accept an int or a pair ``(height, width)``.

The ``*1d`` functions take series of shape ``(n, c, length)`` (as
``torch.nn.Conv1d``) and int arguments; they run the same kernels, a series
being an image of height 1.

Output size along an axis is ``floor((h + 2 * p - d * (k - 1) - 1) / s) + 1``:
windows that do not fit are dropped.
"""

import functools
import math
import numbers
import os
from collections import namedtuple

import numpy as np

from ._kernels import _batchnorm, _conv, _gemm, _im2col, _pool
from ._kernels._openmp_helpers import effective_n_threads

__all__ = [
    "conv2d",
    "conv2d_backward",
    "linear",
    "linear_backward",
    "im2col",
    "col2im",
    "max_pool2d",
    "max_pool2d_backward",
    "avg_pool2d",
    "avg_pool2d_backward",
    "batch_norm",
    "batch_norm_backward",
    "output_size",
]

# The batch reductions of conv2d_backward (dw, db) are summed in at most this
# many chunks; chunk boundaries depend on the batch size only, so the sum is
# the same bits for any number of threads.
_MAX_REDUCTION_CHUNKS = 16

# Rows of a product below which splitting it over threads costs more than it
# saves; and the columns of a block when the rows are too few to go round (a
# block repacks its rows of A, so it takes several tiles of columns).
_MIN_ROWS_PER_THREAD = 16
_MIN_COLUMNS_PER_BLOCK = 64

SIMD_PATHS = ("portable", "avx2", "avx512")


def _select_simd_path():
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


_select_simd_path()


def simd_path():
    """Name of the SIMD path the products use: ``'portable'``, ``'avx2'`` or ``'avx512'``."""
    return _gemm.get_path()


# A parallel region gets one more thread per this much work (in flops) only:
# waking a sleeping OpenMP thread (skconv asks for passive waiting, see
# skconv._kernels) took ~130 us on the project's 2-core VMs, a 2-thread region
# of no work against 3 us for one thread. 2^24 flops is ~0.2 ms of a product,
# so the thread it pays for saves more than its wake-up. LeNet-5's layers at a
# batch of 64 then run on one thread, where two were slower than one.
_MIN_WORK_PER_THREAD = 2**24
# The work of a pass that moves memory rather than multiplies (pooling, im2col,
# batch norm), per element, in flops of about the same time.
_WORK_PER_ELEMENT = 32


def _n_threads(n_tasks, work):
    """Threads for a parallel region of ``n_tasks`` independent tasks and ``work``
    flops (or ``_WORK_PER_ELEMENT`` per element moved) in all."""
    return max(1, min(effective_n_threads(), n_tasks, int(work // _MIN_WORK_PER_THREAD)))


def _plan_context():
    """What the kernels' call plans depend on besides the shapes: the threads
    available now and the SIMD path (whose tile sizes some work layouts follow).

    A caller that keeps plans (``_conv2d_plan``, ``_matmul_plan``, ...) keys
    them on this, so a plan never outlives a change of either.
    """
    return effective_n_threads(), _gemm.get_path()


# Empty arrays that stand for "none" in a kernel's arguments ("no bias", "no
# columns kept"): nothing is ever written to them, so they are shared.
_NONE_1D = {np.dtype(t).char: np.empty(0, dtype=t) for t in (np.float32, np.float64)}
_NONE_2D = {np.dtype(t).char: np.empty((0, 0), dtype=t) for t in (np.float32, np.float64)}
_NONE_3D = {np.dtype(t).char: np.empty((0, 0, 0), dtype=t) for t in (np.float32, np.float64)}
# no argmax for a pooled convolution (inference)
_NO_INDICES = np.empty((0, 0, 0), dtype=np.intp)


def _pair(value, name, minimum):
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


def _float_array(a, name, ndim, dtype=None):
    """C-contiguous float32/float64 view or copy of ``a`` with ``ndim`` non-empty axes."""
    a = np.asarray(a)
    if a.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} must be float32 or float64, got dtype {a.dtype}")
    if dtype is not None and a.dtype != dtype:
        raise ValueError(f"{name} has dtype {a.dtype} but the input x has dtype {dtype}")
    if a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {a.shape}")
    if 0 in a.shape:
        raise ValueError(f"{name} must not have an empty axis, got shape {a.shape}")
    return np.ascontiguousarray(a)


def _shape4(x_shape):
    if (
        not isinstance(x_shape, (tuple, list))
        or len(x_shape) != 4
        or not all(isinstance(v, numbers.Integral) and v >= 1 for v in x_shape)
    ):
        raise ValueError(f"x_shape must be 4 positive ints (N, C, H, W), got {x_shape!r}")
    return tuple(int(v) for v in x_shape)


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


def _plain_ints(value):
    """Whether ``value`` is an int or a tuple of ints (not bools, not numpy scalars)."""
    return type(value) is int or (type(value) is tuple and all(type(v) is int for v in value))


_GEOMETRY_CACHE = {}


def _geometry(x_shape, kernel_size, stride, padding, dilation):
    """Resolve the sliding-window geometry of a 4-D input; the kernels take it as a struct.

    Resolved once per distinct set of arguments: a network calls this with the
    same few every batch, and a one-row prediction would otherwise spend a
    good part of its time here.
    """
    key = (x_shape, kernel_size, stride, padding, dilation)
    # only plain ints are cached: True == 1 and [1, 2] is unhashable, and
    # those must be refused (or accepted) by _resolve_geometry every time
    if not all(map(_plain_ints, key)):
        return _resolve_geometry(*key)
    g = _GEOMETRY_CACHE.get(key)
    if g is None:
        g = _resolve_geometry(*key)
        if len(_GEOMETRY_CACHE) > 1024:
            _GEOMETRY_CACHE.clear()
        _GEOMETRY_CACHE[key] = g
    return g


def _resolve_geometry(x_shape, kernel_size, stride, padding, dilation):
    _, c, h, w = x_shape
    kh, kw = _pair(kernel_size, "kernel_size", 1)
    sh, sw = _pair(stride, "stride", 1)
    ph, pw = _pair(padding, "padding", 0)
    dh, dw = _pair(dilation, "dilation", 1)
    oh = output_size(h, kh, sh, ph, dh, "height")
    ow = output_size(w, kw, sw, pw, dw, "width")
    return dict(c=c, h=h, w=w, kh=kh, kw=kw, sh=sh, sw=sw, ph=ph, pw=pw, dh=dh, dw=dw, oh=oh, ow=ow)


def _pool_geometry(x_shape, kernel_size, stride, padding):
    if stride is None:
        stride = kernel_size
    g = _geometry(x_shape, kernel_size, stride, padding, 1)
    if g["ph"] > g["kh"] // 2 or g["pw"] > g["kw"] // 2:
        raise ValueError(
            f"padding={padding!r} must be at most half of kernel_size={kernel_size!r}, "
            "so that every pooling window overlaps the input"
        )
    return g


def _workspace(cols, shape, dtype):
    """Check a caller's conv workspace: the kernels write into it directly."""
    if not isinstance(cols, np.ndarray) or cols.dtype != dtype or cols.shape != shape:
        raise ValueError(
            f"cols must be an ndarray of shape {shape} and dtype {np.dtype(dtype)}, got "
            f"{getattr(cols, 'shape', type(cols).__name__)} {getattr(cols, 'dtype', '')}"
        )
    if not (cols.flags.c_contiguous and cols.flags.writeable):
        raise ValueError("cols must be a writeable C-contiguous array")
    return cols


def _check_shape(a, expected, name):
    if a.shape != tuple(expected):
        raise ValueError(f"{name} must have shape {tuple(expected)}, got {a.shape}")


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, *, groups=1, cols=None):
    """2-D convolution (cross-correlation, as in every deep-learning framework).

    Parameters
    ----------
    x : ndarray of shape (n, c, h, w)
    w : ndarray of shape (f, c // groups, kh, kw), same dtype as x
        As ``torch.nn.Conv2d.weight``: filters ``k * f // groups`` to
        ``(k + 1) * f // groups - 1`` see channels ``k * c // groups`` to
        ``(k + 1) * c // groups - 1`` only.
    b : ndarray of shape (f,) or None
    stride, padding, dilation : int or pair of ints
        Zero padding on each side.
    groups : int, default=1
        Divides both c and f. ``groups == c`` is a depthwise convolution
        (``f // c`` filters per channel), which has a direct kernel of its own.
    cols : ndarray of shape (n, c * kh * kw, oh * ow), optional
        Workspace of x's dtype, with ``groups=1`` only. When given, every
        sample's unfolded input is kept there, so that
        ``conv2d_backward(..., cols=cols)`` does not unfold it again (training
        keeps it between the two passes).

    Returns
    -------
    y : ndarray of shape (n, f, oh, ow)
        Each element one chain in a fixed order: a row's bits do not depend on
        the batch, the threads or the SIMD path.
    """
    x = _float_array(x, "x", 4)
    w = _float_array(w, "w", 4, x.dtype)
    n, c = x.shape[:2]
    f, wc, kh, kw = w.shape
    groups = _groups(groups, c, f)
    if groups > 1:
        _check_grouped_weights(w, c, groups)
    elif wc != c:
        raise ValueError(f"w has {wc} input channels (w.shape[1]) but x has {c} (x.shape[1])")
    if b is not None:
        b = _float_array(b, "b", 1, x.dtype)
        _check_shape(b, (f,), "b")
    g = _geometry(x.shape, (kh, kw), stride, padding, dilation)
    if cols is not None:
        if groups > 1:
            raise ValueError(f"cols is a workspace of groups=1 only, got groups={groups}")
        _workspace(cols, (n, c * kh * kw, g["oh"] * g["ow"]), x.dtype)
    if groups > 1:
        return _grouped_conv2d(x, w.reshape(f, -1), b, g, groups)
    return _conv2d(x, w.reshape(f, -1), b, g, cols)


def _conv2d(x, w, b, g, cols=None, out=None, plan=None, pool2=None, relu=False):
    """:func:`conv2d` of checked arguments: x (n, c, h, w) C-contiguous, w (f, c * kh * kw)
    and b (f,) of x's dtype or None, g x's geometry, cols None or a checked workspace.

    The layers' inference path calls this directly: their arguments are right
    by construction, and a one-row prediction would spend more time in the
    checks than in the arithmetic. ``out``, an array of the output's shape to
    write into (a training layer's buffer), or None. ``plan``: what
    :func:`_conv2d_plan` returns for these shapes in the current
    :func:`_plan_context`, or None to derive it here.

    ``pool2``: None, or ``(relu, argmax)`` for a stride of 1: the output is
    then the 2x2 max pooling of stride 2 of the convolution's, of shape
    (n, f, oh // 2, ow // 2), followed by ``max(., 0)`` with ``relu``, and
    ``argmax``, an array of that shape or None, gets each window's flat index
    in its plane: :func:`_max_pool2d`'s values and indices, computed while
    each sample's output is in cache instead of from a written-out one.
    ``relu`` (without ``pool2``): the output is ``max(., 0)``, NaN and -0.0
    kept, as ``np.maximum``.
    """
    if plan is None:
        plan = _conv2d_plan(g, w.shape[0], x.dtype, x.shape[0])
    n_threads, implicit, work_shape, y_shape, out_shape = plan
    relu, argmax = pool2 if pool2 is not None else (relu, None)
    if pool2 is not None:
        out_shape = y_shape[:2] + (g["oh"] // 2, g["ow"] // 2)
        y_shape = y_shape[:2] + (out_shape[2] * out_shape[3],)
    y = np.empty(y_shape, dtype=x.dtype) if out is None else out.reshape(y_shape)
    work = np.empty(work_shape, dtype=x.dtype)
    if b is None:
        b = _NONE_1D[x.dtype.char]
    keep_cols = cols is not None
    if implicit is not None:
        # the implicit product reads the taps from the padded image itself:
        # the same bits without forming (or packing) the columns
        offsets, starts, tile_row, channel_stride, padded_size, parts = implicit
        _conv.conv2d_forward_implicit(
            x, w, b, offsets, starts, tile_row, channel_stride, padded_size, y,
            pool2 is not None, _NO_INDICES if argmax is None else argmax.reshape(y_shape), relu,
            cols if keep_cols else _NONE_3D[x.dtype.char], keep_cols, work, g, n_threads,
            1 if pool2 is not None or keep_cols else parts)
    else:
        if pool2 is not None:
            raise ValueError("a pooled convolution needs a stride of 1")
        if not keep_cols:
            cols = np.empty((n_threads, w.shape[1], y_shape[2]), dtype=x.dtype)
        _conv.conv2d_forward(x, w, b, y, cols, keep_cols, work, g, n_threads)
        if relu:
            np.maximum(y, 0, out=y)
    return y.reshape(out_shape)


#: What a convolution derives from the shapes alone (see :func:`_conv2d_plan`).
ConvPlan = namedtuple("ConvPlan", "n_threads implicit work_shape y_shape out_shape")
#: Where a stride-1 convolution's implicit product reads (see :func:`_padded_image`).
ImplicitLayout = namedtuple("ImplicitLayout",
                            "offsets starts tile_row channel_stride padded_size parts")
#: How a product is cut into blocks for the threads (see :func:`_matmul_plan`).
MatmulPlan = namedtuple("MatmulPlan", "row_blocks col_blocks work_shape")


def _conv2d_plan(g, f, dtype, n):
    """What :func:`_conv2d` derives from the shapes alone, for n samples through f
    filters in the current :func:`_plan_context`.

    Returns a :class:`ConvPlan` ``(n_threads, implicit, work_shape, y_shape, out_shape)``:
    ``implicit`` is an :class:`ImplicitLayout` for a stride of 1 (the implicit product; see :func:`_padded_image`), else
    None (im2col and a GEMM per sample); its ``parts``, above 1 when there are
    fewer samples than threads, cuts each sample's tiles into that many tasks; ``work_shape`` that of the kernel's
    scratch; the kernel's output is (n, f, oh * ow), returned as ``out_shape``
    (n, f, oh, ow).
    """
    ckk = g["c"] * g["kh"] * g["kw"]
    ohw = g["oh"] * g["ow"]
    work = 2 * n * f * ckk * ohw
    n_threads = _n_threads(n, work)
    shapes = (n, f, ohw), (n, f, g["oh"], g["ow"])
    if g["sh"] == g["sw"] == 1:
        channel_stride, offsets, starts, tile_row, rows, columns, padded_size = _padded_image(
            g, f, dtype)
        # fewer samples than threads (one long series): each sample's tiles in
        # parts, so that the threads share its product
        threads = effective_n_threads()
        parts = min(len(starts), -(-threads // n)) if n < threads else 1
        n_threads = _n_threads(n * parts, work)
        if n_threads == 1:  # one thread would copy the sample once per part
            parts = 1
        work_shape = (rows * ckk + n_threads * (padded_size + rows * columns),)
        implicit = ImplicitLayout(offsets, starts, tile_row, channel_stride, padded_size, parts)
        return ConvPlan(n_threads, implicit, work_shape, *shapes)
    return ConvPlan(n_threads, None, (n_threads, _gemm.work_size(f, ohw, ckk)), *shapes)


def _padded_image(g, f, dtype):
    """The layout of the implicit products of a stride-1 convolution.

    Returns ``(channel_stride, offsets, starts, tile_row, rows, columns,
    padded_size)``: the taps' starts in the zero-padded image
    (:func:`_tap_offsets`), the product's tiles (:func:`_tiles`), the
    micro-kernel-padded shape of the product for ``f`` filters, and the
    elements of one padded image, slack for the last tile's reads included and
    rounded up to a cache line. The weight gradient reads the same image.
    """
    channel_stride, offsets = _tap_offsets(g["c"], g["h"], g["w"], g["kh"], g["kw"],
                                           g["ph"], g["pw"], g["dh"], g["dw"])
    char = np.dtype(dtype).char
    width = _gemm.tile_shape(char)[1]
    starts, tile_row = _tiles(g["oh"], g["ow"], g["w"] + 2 * g["pw"], width)
    rows, columns = _gemm.output_rows(f, char), len(starts) * width
    padded_size = -(-max(g["c"] * channel_stride, offsets[-1] + starts[-1] + width) // 16) * 16
    return channel_stride, offsets, starts, tile_row, rows, columns, padded_size


@functools.lru_cache(maxsize=256)
def _tiles(oh, ow, wp, width):
    """Where the implicit product's tiles of ``width`` positions start, and the
    product's columns between two output rows: ``(starts, tile_row)``.

    Output (i, j) is position i * wp + j of the padded image. Tiles laid end to
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


def _output_positions(g):
    """Where each output (i, j) of a stride-1 window reads, from its taps' starts
    (:func:`_tap_offsets`): ``i * wp + j``, wp the padded image's width."""
    return _positions(g["oh"], g["ow"], g["w"] + 2 * g["pw"])


@functools.lru_cache(maxsize=256)
def _positions(oh, ow, wp):
    positions = (np.arange(oh)[:, None] * wp + np.arange(ow)).ravel().astype(np.intp)
    positions.flags.writeable = False
    return positions


@functools.lru_cache(maxsize=256)
def _tap_offsets(c, h, w, kh, kw, ph, pw, dh, dw):
    """Where each tap (c, ki, kj) of a stride-1 window starts in the zero-padded image.

    Returns ``(channel_stride, offsets)``. The channel stride is the padded
    plane's size rounded up to a cache line, and off a multiple of 256
    elements: taps a power of two apart share L1 sets and evict each other,
    and the product reads all of them for every tile.
    """
    plane = (h + 2 * ph) * (w + 2 * pw)
    channel_stride = -(-plane // 16) * 16
    if channel_stride % 256 == 0:
        channel_stride += 16
    wp = w + 2 * pw
    offsets = (np.arange(c)[:, None, None] * channel_stride + np.arange(kh)[:, None] * (dh * wp)
               + np.arange(kw) * dw).ravel().astype(np.intp)
    offsets.flags.writeable = False
    return channel_stride, offsets


def conv2d_backward(dy, x, w, stride=1, padding=0, dilation=1, need_dx=True, *, groups=1,
                    cols=None):
    """Gradients of :func:`conv2d` with respect to its input, weights and bias.

    Parameters
    ----------
    dy : ndarray of shape (n, f, oh, ow)
        Gradient of the loss with respect to conv2d's output.
    x : ndarray of shape (n, c, h, w)
    w : ndarray of shape (f, c // groups, kh, kw)
    stride, padding, dilation : int or pair of ints
        As given to :func:`conv2d`.
    need_dx : bool, default=True
        When False, ``dx`` is not computed (the first layer of a network has
        no use for it) and None is returned in its place.
    groups : int, default=1
        As given to :func:`conv2d`.
    cols : ndarray, optional
        With ``groups=1`` only: the workspace that ``conv2d(x, w, ...,
        cols=cols)`` filled: the input is then not unfolded again. It is
        overwritten (used as scratch).

    Returns
    -------
    dx : ndarray of shape (n, c, h, w), or None
    dw : ndarray of shape (f, c // groups, kh, kw)
    db : ndarray of shape (f,)
        ``dw`` and ``db`` are summed over the batch in a fixed order: the same
        bits for any number of threads.
    """
    x = _float_array(x, "x", 4)
    w = _float_array(w, "w", 4, x.dtype)
    dy = _float_array(dy, "dy", 4, x.dtype)
    n, c = x.shape[:2]
    f, wc, kh, kw = w.shape
    groups = _groups(groups, c, f)
    if groups > 1:
        _check_grouped_weights(w, c, groups)
    elif wc != c:
        raise ValueError(f"w has {wc} input channels (w.shape[1]) but x has {c} (x.shape[1])")
    g = _geometry(x.shape, (kh, kw), stride, padding, dilation)
    _check_shape(dy, (n, f, g["oh"], g["ow"]), "dy")
    if cols is not None:
        if groups > 1:
            raise ValueError(f"cols is a workspace of groups=1 only, got groups={groups}")
        _workspace(cols, (n, c * kh * kw, g["oh"] * g["ow"]), x.dtype)
    if groups > 1:
        dx, dw, db = _grouped_conv2d_backward(dy, x, w.reshape(f, -1), g, groups, need_dx)
    else:
        dx, dw, db = _conv2d_backward(dy, x, w.reshape(f, -1), g, need_dx, cols)
    return dx, dw.reshape(w.shape), db


def _conv2d_backward(dy, x, w, g, need_dx, cols=None, dx=None, unpool=None):
    """:func:`conv2d_backward` of checked arguments: x (n, c, h, w) and dy (n, f, oh, ow)
    C-contiguous, w (f, c * kh * kw), g x's geometry, cols None or a checked workspace;
    ``dx`` an (n, c, h, w) array to write into (a layer's buffer), or None.

    ``unpool``: None, or ``(argmax, relu_y)`` of a :func:`_conv2d` with
    ``pool2``, dy then being the gradient of its pooled output, (n, f, oh // 2,
    ow // 2): the 2x2 pooling's backward (:func:`_max_pool2d_backward`, and
    the ReLU's with relu_y) gives the output's gradient, which the weights'
    gradient without dx forms sample by sample as it reads it, not for the
    batch.

    Returns ``(dx or None, dw of shape (f, c * kh * kw), db)``.
    """
    n = x.shape[0]
    f, ckk = w.shape
    ohw = g["oh"] * g["ow"]
    argmax, relu_y = unpool if unpool is not None else (None, None)
    n_chunks = min(n, _MAX_REDUCTION_CHUNKS)
    n_threads = _n_threads(n_chunks, 2 * n * f * ckk * ohw)
    stride_1 = g["sh"] == g["sw"] == 1
    # a stride-1 input gradient is a convolution of dy (_transposed_convolution),
    # unless the padding reaches past the kernel's span
    transposed_dx = (need_dx and stride_1 and g["ph"] <= g["dh"] * (g["kh"] - 1)
                     and g["pw"] <= g["dw"] * (g["kw"] - 1))
    implicit = stride_1 and (transposed_dx or not need_dx)
    # dw's rows along the taps or along the filters (bits are the same either way)
    dw_transposed = _dw_transposed(f, ckk, x.dtype, implicit)
    implicit = implicit and (dw_transposed or ckk >= _gemm.tile_shape(x.dtype.char)[1])
    dw_shape = (ckk, f) if dw_transposed else (f, ckk)
    if implicit and dw_transposed:
        # room for the tap-rows product's whole tiles, whose padding is dropped
        # below: a few filters (LeNet-5's 6) would make every tile an edge tile
        mr, nr = _gemm.tap_rows_tile(f, x.dtype.char)
        dw_part = np.empty((n_chunks, -(-ckk // mr) * mr, -(-f // nr) * nr), dtype=x.dtype)
    else:
        dw_part = np.empty((n_chunks,) + dw_shape, dtype=x.dtype)
    db_part = np.empty((n_chunks, f), dtype=x.dtype)
    if unpool is not None and (need_dx or not implicit):
        pooled = _pool_geometry((n, f, g["oh"], g["ow"]), 2, None, 0)
        dy = _max_pool2d_backward(dy, argmax, (n, f, g["oh"], g["ow"]), relu_y=relu_y, g=pooled)
        unpool = None
    if implicit:
        # the weights' gradient reads the taps from the padded input itself
        # (see _conv.conv2d_backward_implicit): no im2col. Along the columns,
        # fewer taps than a tile's would leave most of it empty; im2col's
        # product then puts them in its rows
        channel_stride, offsets, *_, padded_size = _padded_image(g, f, x.dtype)
        images = np.empty((n_threads, padded_size), dtype=x.dtype)
        work = np.empty((n_threads, _gemm.work_size(f, ckk, ohw)), dtype=x.dtype)
        no_relu = _NONE_3D[x.dtype.char]
        if unpool is None:
            argmax, relu_y, planes = _NO_INDICES, no_relu, _NONE_2D[x.dtype.char]
        else:
            argmax = argmax.reshape(n, f, -1)
            relu_y = no_relu if relu_y is None else relu_y.reshape(n, f, -1)
            planes = np.empty((n_threads, f * ohw), dtype=x.dtype)
        _conv.conv2d_backward_implicit(
            dy.reshape(n, f, -1), x, offsets, _output_positions(g), channel_stride, dw_part,
            db_part, images, work, dw_transposed, unpool is not None, argmax, relu_y, planes,
            g, n_threads,
        )
    else:
        # the kernel folds w^T @ dy by col2im into dx, unless dx is left to that
        if not need_dx or transposed_dx:
            folded_dx = np.empty((0, 0, 0, 0), dtype=x.dtype)
        else:
            folded_dx = dx = np.empty(x.shape, dtype=x.dtype) if dx is None else dx
        have_cols = cols is not None
        if not have_cols:
            cols = np.empty((n_threads, ckk, ohw), dtype=x.dtype)
        work_size = max(_gemm.work_size(*shape)
                        for shape in ((ckk, f, ohw), (f, ckk, ohw), (ckk, ohw, f)))
        work = np.empty((n_threads, work_size), dtype=x.dtype)
        _conv.conv2d_backward(
            dy.reshape(n, f, ohw), x, w, folded_dx, dw_part, db_part, cols, have_cols,
            dw_transposed, work, g, n_threads,
        )
    dw = dw_part[:, :dw_shape[0], :dw_shape[1]].sum(axis=0)
    dw = np.ascontiguousarray(dw.T) if dw_transposed else dw
    db = db_part.sum(axis=0)
    if transposed_dx:
        dx = _transposed_convolution(dy, w, g, dx)
    return (dx if need_dx else None), dw, db


def _dw_transposed(f, ckk, dtype, implicit):
    """Whether a weight gradient of f filters by ckk taps computes dw^T, the taps
    along the micro-kernel's rows and the filters along its columns.

    Whichever costs less per output position: the tiles' multiply-adds, the
    padding to whole tiles included (a full tile's row of nr columns, two
    vectors, is about a cycle), plus the packing of the operands (about half a
    cycle an element, measured on the AVX2 path). Both orientations pack dy;
    the ``implicit`` product (see _conv.conv2d_backward_implicit) packs the
    taps too, unless they are its rows, which the micro-kernel reads in the
    image, in tiles one vector wide when that holds the filters
    (_gemm.tap_rows_tile). On LeNet-5's first convolution (6 filters, 25 taps)
    that moves both float32 and float64 to the taps' rows (measured 1.5x as
    fast as the filters' for float32). The bits are the same either way.
    """
    char = np.dtype(dtype).char
    full = _gemm.tile_shape(char)

    def cost(rows, columns, packed, tile):
        mr, nr = tile
        return -(-rows // mr) * mr * (-(-columns // nr) * nr) / full[1] + packed / 2

    tap_rows = _gemm.tap_rows_tile(f, char) if implicit else full
    return cost(ckk, f, f + (0 if implicit else ckk), tap_rows) <= cost(f, ckk, f + ckk, full)


def _transposed_convolution(dy, w, g, dx=None):
    """The input gradient of a stride-1 convolution, as a convolution of dy.

    dx[c, y, x] sums w[f, c, ki, kj] * dy[f, y + ph - ki * dh, x + pw - kj * dw]:
    the correlation of dy, zero-padded by the kernel's span less the padding,
    with the kernel turned by 180 degrees and its two channel axes swapped
    (the seeds' "rot180"). So it runs as the implicit forward product, with
    neither w^T @ dy's columns nor col2im's scattered adds. Each dx element is
    one FMA chain over (f, ki, kj), in the same order for every sample, batch,
    thread count and SIMD path.
    """
    f = w.shape[0]
    c, kh, kw = g["c"], g["kh"], g["kw"]
    turned = np.ascontiguousarray(
        w.reshape(f, c, kh, kw)[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)).reshape(c, -1)
    padding = (g["dh"] * (kh - 1) - g["ph"], g["dw"] * (kw - 1) - g["pw"])
    gt = _geometry(dy.shape, (kh, kw), 1, padding, (g["dh"], g["dw"]))
    return _conv2d(dy, turned, None, gt, out=dx)


def _matmul(a, b, bias=None, out=None, relu=False, plan=None):
    """``a @ b (+ bias)`` by skconv's GEMM, in blocks on the OpenMP threads;
    then ``max(., 0)`` with ``relu``.

    Each output element is one chain of fused multiply-adds over the inner
    axis in order, so its bits do not depend on the other rows, the number of
    rows, the blocks, the threads or the SIMD path (unlike BLAS, whose kernels
    change with the CPU and the matrix shape). ``plan``: what
    :func:`_matmul_plan` returns for these shapes in the current
    :func:`_plan_context`, or None.
    """
    m, k = a.shape
    n = b.shape[1]
    if out is None:
        out = np.empty((m, n), dtype=a.dtype)
    if bias is None:
        bias = _NONE_1D[a.dtype.char]
    row_blocks, col_blocks, work_shape = _matmul_plan(m, n, k) if plan is None else plan
    work = np.empty(work_shape, dtype=a.dtype)
    _gemm.matmul(a, b, bias, out, False, relu, row_blocks, col_blocks, work)
    return out


def _matmul_plan(m, n, k):
    """What :func:`_matmul` derives from the shapes alone in the current
    :func:`_plan_context`: a :class:`MatmulPlan` ``(row_blocks, col_blocks, work_shape)``.

    One block per thread: the rows are split first, in blocks of at least
    ``_MIN_ROWS_PER_THREAD``; when they run out (a dense layer at a batch of
    64 has 4 such blocks) the columns are split too, in blocks of at least
    ``_MIN_COLUMNS_PER_BLOCK``, so that more threads than row blocks still
    have a block each.
    """
    max_row_blocks = -(-m // _MIN_ROWS_PER_THREAD)
    max_col_blocks = -(-n // _MIN_COLUMNS_PER_BLOCK)
    n_threads = _n_threads(max_row_blocks * max_col_blocks, 2 * m * n * k)
    row_blocks = min(max_row_blocks, n_threads)
    col_blocks = min(max_col_blocks, -(-n_threads // row_blocks))
    return MatmulPlan(row_blocks, col_blocks,
                      (n_threads, _gemm.work_size(-(-m // row_blocks), n, k)))


def linear(x, w, b=None, *, out=None):
    """Fully connected layer: ``x @ w + b``.

    Parameters
    ----------
    x : ndarray of shape (n, n_in)
    w : ndarray of shape (n_in, units), same dtype as x
        The layout of ``MLPClassifier.coefs_``.
    b : ndarray of shape (units,) or None
    out : ndarray of shape (n, units), optional
        Written in place when given (x's dtype, C-contiguous).

    Returns
    -------
    y : ndarray of shape (n, units)
        Row ``i`` has the same bits whatever the other rows are.
    """
    x = _float_array(x, "x", 2)
    w = _float_array(w, "w", 2, x.dtype)
    if w.shape[0] != x.shape[1]:
        raise ValueError(f"w has {w.shape[0]} inputs (w.shape[0]) but x has {x.shape[1]} (x.shape[1])")
    if b is not None:
        b = _float_array(b, "b", 1, x.dtype)
        _check_shape(b, (w.shape[1],), "b")
    if out is not None:
        _workspace(out, (x.shape[0], w.shape[1]), x.dtype)
    return _matmul(x, w, b, out)


def linear_backward(dy, x, w, need_dx=True):
    """Gradients of :func:`linear` with respect to its input, weights and bias.

    Parameters
    ----------
    dy : ndarray of shape (n, units)
    x : ndarray of shape (n, n_in)
    w : ndarray of shape (n_in, units)
    need_dx : bool, default=True
        When False, ``dx`` is None.

    Returns
    -------
    dx : ndarray of shape (n, n_in), or None
    dw : ndarray of shape (n_in, units)
        Each element one chain over the batch in sample order: the same bits
        for any number of threads.
    db : ndarray of shape (units,)
    """
    x = _float_array(x, "x", 2)
    w = _float_array(w, "w", 2, x.dtype)
    dy = _float_array(dy, "dy", 2, x.dtype)
    _check_shape(w, (x.shape[1], dy.shape[1]), "w")
    _check_shape(dy, (x.shape[0], w.shape[1]), "dy")
    dw = _matmul(x.T, dy)
    db = dy.sum(axis=0)
    dx = _matmul(dy, w.T) if need_dx else None
    return dx, dw, db


def im2col(x, kernel_size, stride=1, padding=0, dilation=1):
    """Unfold every sliding window of ``x`` into a row.

    Parameters
    ----------
    x : ndarray of shape (n, c, h, w)
    kernel_size, stride, padding, dilation : int or pair of ints

    Returns
    -------
    cols : ndarray of shape (n * oh * ow, c * kh * kw)
        Rows ordered (n, oh, ow), columns (c, kh, kw), both row-major; out-of-image
        positions are zeros. Equals ``torch.nn.functional.unfold(x, ...)
        .transpose(1, 2).reshape(-1, c * kh * kw)``.
    """
    x = _float_array(x, "x", 4)
    g = _geometry(x.shape, kernel_size, stride, padding, dilation)
    n = x.shape[0]
    ohw, ckk = g["oh"] * g["ow"], g["c"] * g["kh"] * g["kw"]
    # the kernels keep a sample's taps in rows (see _kernels/_im2col.pxd);
    # the public layout is its transpose
    cols = np.empty((n, ckk, ohw), dtype=x.dtype)
    _im2col.im2col(x, cols, g, _n_threads(n, cols.size * _WORK_PER_ELEMENT))
    return cols.transpose(0, 2, 1).reshape(n * ohw, ckk)


def col2im(cols, x_shape, kernel_size, stride=1, padding=0, dilation=1):
    """Fold rows of windows back into an image, summing where windows overlap.

    The exact adjoint of :func:`im2col`: ``<im2col(x), c> == <x, col2im(c)>``.

    Parameters
    ----------
    cols : ndarray of shape (n * oh * ow, c * kh * kw)
    x_shape : tuple (n, c, h, w)
    kernel_size, stride, padding, dilation : int or pair of ints

    Returns
    -------
    x : ndarray of shape x_shape
    """
    cols = _float_array(cols, "cols", 2)
    x_shape = _shape4(x_shape)
    g = _geometry(x_shape, kernel_size, stride, padding, dilation)
    n = x_shape[0]
    ohw, ckk = g["oh"] * g["ow"], g["c"] * g["kh"] * g["kw"]
    _check_shape(cols, (n * ohw, ckk), "cols")
    cols = np.ascontiguousarray(cols.reshape(n, ohw, ckk).transpose(0, 2, 1))
    x = np.empty(x_shape, dtype=cols.dtype)
    _im2col.col2im(cols, x, g, _n_threads(n, cols.size * _WORK_PER_ELEMENT))
    return x


def max_pool2d(x, kernel_size, stride=None, padding=0, *, return_argmax=True):
    """Max pooling that also returns where each maximum came from.

    Parameters
    ----------
    x : ndarray of shape (n, c, h, w)
    kernel_size : int or pair of ints
    stride : int, pair of ints or None
        None means ``stride = kernel_size``.
    padding : int or pair of ints
        At most half the kernel; padded positions never win (they count as -inf).
    return_argmax : bool, default=True
        False returns ``y`` alone, which is faster (inference has no use for
        the indices).

    Returns
    -------
    y : ndarray of shape (n, c, oh, ow)
    argmax : ndarray of intp, shape (n, c, oh, ow)
        Flat index ``row * w + col`` into ``x[n, c]`` of each window's maximum;
        on ties the first in row-major window order wins. NaN propagates (the
        last NaN of a window wins). Only with ``return_argmax``.
    """
    x = _float_array(x, "x", 4)
    g = _pool_geometry(x.shape, kernel_size, stride, padding)
    return _max_pool2d(x, g, return_argmax)


# the kernels' "no argmax wanted": empty, so never written
_NO_ARGMAX = np.empty((0, 0, 0, 0), dtype=np.intp)
# no ReLU after a pooling, for _max_pool2d_backward's kernel
_NO_VALUES = {np.dtype(t).char: np.empty((0, 0, 0), dtype=t) for t in (np.float32, np.float64)}


def _pool_threads(x_shape):
    """:func:`_n_threads` of a pooling, forward or backward, whose input has ``x_shape``."""
    # math.prod, not np.prod: a microsecond less of a one-row prediction
    return _n_threads(x_shape[0], math.prod(x_shape) * _WORK_PER_ELEMENT)


def _max_pool2d(x, g, return_argmax, relu=False, out=None, n_threads=None):
    """:func:`max_pool2d` of a checked x (C-contiguous, 4-D) and its pooling geometry g;
    ``relu`` applies ``max(y, 0)``, the activation a block puts after pooling (the
    argmax stays the window's: :func:`_max_pool2d_backward` takes the ReLU's mask from y).
    ``out``: None, or ``(y, argmax)`` arrays to write into (a training layer's buffers).
    ``n_threads``: ``_pool_threads(x.shape)`` of the caller's plan, or None."""
    n, c = x.shape[:2]
    if out is not None:
        y, argmax = out
    else:
        y = np.empty((n, c, g["oh"], g["ow"]), dtype=x.dtype)
        argmax = np.empty(y.shape, dtype=np.intp) if return_argmax else _NO_ARGMAX
    _pool.max_pool2d_forward(x, y, argmax, relu, g,
                             _pool_threads(x.shape) if n_threads is None else n_threads)
    return (y, argmax) if return_argmax else y


def _checked_argmax(argmax, shape, size, where):
    """``argmax`` as a C-contiguous intp array of ``shape``, every index in [0, size);
    ``where`` names those positions in the error."""
    argmax = np.asarray(argmax)
    if argmax.dtype.kind not in "iu":
        raise TypeError(f"argmax must hold integers, got dtype {argmax.dtype}")
    _check_shape(argmax, shape, "argmax")
    if argmax.min() < 0 or argmax.max() >= size:
        raise ValueError(
            f"argmax holds indices in [{argmax.min()}, {argmax.max()}], outside {where}")
    return np.ascontiguousarray(argmax, dtype=np.intp)


def max_pool2d_backward(dy, argmax, x_shape):
    """Route each output gradient of :func:`max_pool2d` to its window's maximum.

    Parameters
    ----------
    dy : ndarray of shape (n, c, oh, ow)
    argmax : ndarray of ints, shape (n, c, oh, ow)
        As returned by :func:`max_pool2d`.
    x_shape : tuple (n, c, h, w)

    Returns
    -------
    dx : ndarray of shape x_shape
        Gradients accumulate where windows overlap on one maximum.
    """
    dy = _float_array(dy, "dy", 4)
    n, c, h, w = _shape4(x_shape)
    if dy.shape[:2] != (n, c):
        raise ValueError(f"dy has shape {dy.shape} but x_shape is {tuple(x_shape)}")
    argmax = _checked_argmax(argmax, dy.shape, h * w,
                             f"the {h}x{w} input planes of x_shape={tuple(x_shape)}")
    return _max_pool2d_backward(dy, argmax, (n, c, h, w))


def _max_pool2d_backward(dy, argmax, x_shape, dx=None, relu_y=None, g=None):
    """:func:`max_pool2d_backward` of a C-contiguous dy and an argmax from max_pool2d;
    ``dx`` an array of x_shape to write into (a training layer's buffer), or None.
    ``relu_y``: the output of ``_max_pool2d(..., relu=True)``, whose ReLU's gradient
    (dy where y > 0, else 0) goes through too; None for a pooling without one.
    ``g``: the pooling geometry that gave argmax, or None (any windows)."""
    n, c, h, w = x_shape
    dx = np.empty((n, c, h * w), dtype=dy.dtype) if dx is None else dx.reshape(n, c, h * w)
    y = _NO_VALUES[dy.dtype.char] if relu_y is None else relu_y.reshape(n, c, -1)
    dy, argmax = dy.reshape(n, c, -1), argmax.reshape(n, c, -1)
    if g is not None and (g["kh"], g["kw"], g["sh"], g["sw"], g["ph"], g["pw"]) == (
            2, 2, 2, 2, 0, 0):
        _pool.max_pool2d_2x2_backward(dy, argmax, y, dx, g, _pool_threads(x_shape))
    else:
        _pool.max_pool2d_backward(dy, argmax, y, dx, _pool_threads(x_shape))
    return dx.reshape(n, c, h, w)


def avg_pool2d(x, kernel_size, stride=None, padding=0):
    """Average pooling; zero padding counts in the divisor (``count_include_pad=True``).

    Parameters
    ----------
    x : ndarray of shape (n, c, h, w)
    kernel_size : int or pair of ints
    stride : int, pair of ints or None
        None means ``stride = kernel_size``.
    padding : int or pair of ints
        At most half the kernel.

    Returns
    -------
    y : ndarray of shape (n, c, oh, ow)
    """
    x = _float_array(x, "x", 4)
    g = _pool_geometry(x.shape, kernel_size, stride, padding)
    n, c = x.shape[:2]
    y = np.empty((n, c, g["oh"], g["ow"]), dtype=x.dtype)
    _pool.avg_pool2d_forward(x, y, g, _pool_threads(x.shape))
    return y


def avg_pool2d_backward(dy, x_shape, kernel_size, stride=None, padding=0):
    """Gradient of :func:`avg_pool2d`: each output gradient spread evenly over its window.

    Parameters
    ----------
    dy : ndarray of shape (n, c, oh, ow)
    x_shape : tuple (n, c, h, w)
    kernel_size, stride, padding : as given to :func:`avg_pool2d`

    Returns
    -------
    dx : ndarray of shape x_shape
    """
    dy = _float_array(dy, "dy", 4)
    x_shape = _shape4(x_shape)
    g = _pool_geometry(x_shape, kernel_size, stride, padding)
    _check_shape(dy, (x_shape[0], x_shape[1], g["oh"], g["ow"]), "dy")
    dx = np.empty(x_shape, dtype=dy.dtype)
    _pool.avg_pool2d_backward(dy, dx, g, _pool_threads(x_shape))
    return dx


def _channels_view(a, name, dtype=None):
    """(n, c, m) view of an (n, c, ...) array: batch norm's statistics run over n and m."""
    a = np.asarray(a)
    if a.ndim < 2:
        raise ValueError(f"{name} must be at least 2-D (n, c, ...), got shape {a.shape}")
    a = _float_array(a, name, a.ndim, dtype)
    return a.reshape(a.shape[0], a.shape[1], -1)


def batch_norm(x, scale, shift, eps=1e-5):
    """Batch normalization in training mode: statistics of the batch, per channel.

    Parameters
    ----------
    x : ndarray of shape (n, c) or (n, c, h, w)
        Statistics are taken per channel (axis 1) over every other axis.
    scale, shift : ndarray of shape (c,)
    eps : float
        Added to the variance before the square root.

    Returns
    -------
    y : ndarray of x's shape
        ``scale * x_hat + shift``.
    x_hat : ndarray of x's shape
        ``(x - mean) / sqrt(var + eps)``, what :func:`batch_norm_backward` needs.
    mean, var : ndarray of shape (c,), float64
        The batch mean and biased variance of each channel.
    """
    x3 = _channels_view(x, "x")
    c = x3.shape[1]
    scale = _float_array(scale, "scale", 1, x3.dtype)
    shift = _float_array(shift, "shift", 1, x3.dtype)
    _check_shape(scale, (c,), "scale")
    _check_shape(shift, (c,), "shift")
    if not eps > 0:
        raise ValueError(f"eps={eps!r} must be > 0")
    y, x_hat = np.empty_like(x3), np.empty_like(x3)
    mean, var = _batch_norm(x3, scale, shift, float(eps), y, x_hat)
    shape = np.shape(x)
    return y.reshape(shape), x_hat.reshape(shape), mean, var


def _batch_norm(x3, scale, shift, eps, y, x_hat, relu=False):
    """:func:`batch_norm` of checked (n, c, m) arrays into ``y`` and ``x_hat`` (a
    layer's buffers); with ``relu``, ``y = max(., 0)``. Returns ``(mean, var)``."""
    c = x3.shape[1]
    mean, var = np.empty(c), np.empty(c)
    _batchnorm.batch_norm_forward(x3, scale, shift, y, x_hat, mean, var, eps, relu,
                                  _n_threads(c, x3.size * _WORK_PER_ELEMENT))
    return mean, var


def batch_norm_backward(dy, x_hat, scale, var, eps=1e-5, need_dx=True):
    """Gradients of :func:`batch_norm` (training mode), in the closed form per channel.

    Parameters
    ----------
    dy : ndarray of shape (n, c) or (n, c, h, w)
    x_hat, var : as returned by :func:`batch_norm`
    scale : ndarray of shape (c,)
    eps : float
        As given to :func:`batch_norm`.
    need_dx : bool, default=True
        When False, ``dx`` is None.

    Returns
    -------
    dx : ndarray of dy's shape, or None
    dscale, dshift : ndarray of shape (c,)
    """
    dy3 = _channels_view(dy, "dy")
    x_hat3 = _channels_view(x_hat, "x_hat", dy3.dtype)
    _check_shape(x_hat3, dy3.shape, "x_hat (viewed as (n, c, m))")
    c = dy3.shape[1]
    scale = _float_array(scale, "scale", 1, dy3.dtype)
    _check_shape(scale, (c,), "scale")
    var = np.ascontiguousarray(var, dtype=np.float64)
    _check_shape(var, (c,), "var")
    if not eps > 0:
        raise ValueError(f"eps={eps!r} must be > 0")
    dx = np.empty(dy3.shape, dtype=dy3.dtype) if need_dx else None
    dscale, dshift = np.empty(c, dtype=dy3.dtype), np.empty(c, dtype=dy3.dtype)
    _batch_norm_backward(dy3, x_hat3, None, scale, var, float(eps), dx, dscale, dshift)
    return (dx.reshape(np.shape(dy)) if need_dx else None), dscale, dshift


def _batch_norm_backward(dy3, x_hat3, relu_y3, scale, var, eps, dx3, dscale, dshift):
    """:func:`batch_norm_backward` of checked (n, c, m) arrays into ``dx3`` (or None:
    no dx), ``dscale`` and ``dshift``; ``relu_y3``, the output of a
    :func:`_batch_norm` with ``relu`` (dy is then the ReLU's output gradient), or None."""
    none = _NONE_3D[dy3.dtype.char]
    # the ReLU's gradient needs a pass of its own, into dx when there is one (each
    # element of dx is written after its own g is read)
    work = none if relu_y3 is None else (np.empty_like(dy3) if dx3 is None else dx3)
    _batchnorm.batch_norm_backward(
        dy3, x_hat3, none if relu_y3 is None else relu_y3, scale, var, eps,
        none if dx3 is None else dx3, dscale, dshift, work,
        _n_threads(dy3.shape[1], dy3.size * _WORK_PER_ELEMENT))


# ---------------------------------------------------------------------------
# Grouped and depthwise convolution, global pooling.
#
# A grouped convolution splits the channels into ``groups`` independent
# convolutions. Depthwise (one group per input channel) has a direct kernel of
# its own (_kernels/_depthwise.pyx); 1 < groups < c runs each group's channel
# slice through _conv2d, the product of a dense convolution: no GEMM over the
# zero blocks of a block-diagonal weight matrix.
# ---------------------------------------------------------------------------

from ._kernels import _depthwise, _global_pool  # noqa: E402

__all__ += [
    "global_avg_pool2d",
    "global_avg_pool2d_backward",
    "global_max_pool2d",
    "global_max_pool2d_backward",
]


def _groups(groups, c, f):
    """Check ``groups`` against x's ``c`` channels and w's ``f`` filters."""
    if not isinstance(groups, numbers.Integral) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"groups must be a positive int, got {groups!r}")
    groups = int(groups)
    if c % groups:
        raise ValueError(f"groups={groups} does not divide the {c} input channels of x")
    if f % groups:
        raise ValueError(f"groups={groups} does not divide the {f} filters of w (w.shape[0])")
    return groups


def _check_grouped_weights(w, c, groups):
    wc = w.shape[1]
    if wc != c // groups:
        raise ValueError(
            f"w has {wc} input channels per filter (w.shape[1]) but x's {c} channels "
            f"(x.shape[1]) in groups={groups} need {c // groups}"
        )


@functools.lru_cache(maxsize=256)
def _depthwise_layout(h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow):
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


def _layout_of(g):
    return _depthwise_layout(g["h"], g["w"], g["kh"], g["kw"], g["sh"], g["sw"], g["ph"],
                             g["pw"], g["dh"], g["dw"], g["oh"], g["ow"])


def _plane_threads(n, size):
    """:func:`_n_threads` of a pass over n samples of ``size`` elements in all
    (not _pool_threads: np.prod of a shape costs microseconds, a one-row
    prediction's budget)."""
    return _n_threads(n, size * _WORK_PER_ELEMENT)


def _grouped_conv2d(x, w, b, g, groups, out=None, relu=False):
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
        n_threads = _n_threads(n * c, 2 * n * f * w.shape[1] * g["oh"] * g["ow"])
        layout, offsets, _ = _layout_of(g)
        planes = np.zeros((n_threads, layout["plane_size"]), dtype=x.dtype)
        _depthwise.depthwise_conv2d_forward(x, w, _NONE_1D[x.dtype.char] if b is None else b,
                                            y, relu, offsets, planes, layout, n_threads)
        return y
    if groups == 1:
        _conv2d(x, w, b, g, out=y)
    else:
        cg, fg = c // groups, f // groups
        group_g = dict(g, c=cg)
        for k in range(groups):
            filters = slice(k * fg, (k + 1) * fg)
            y[:, filters] = _conv2d(np.ascontiguousarray(x[:, k * cg:(k + 1) * cg]), w[filters],
                                    None if b is None else b[filters], group_g)
    if relu:
        np.maximum(y, 0, out=y)
    return y


def _grouped_conv2d_backward(dy, x, w, g, groups, need_dx, dx=None):
    """:func:`conv2d_backward` with ``groups`` of checked arguments: dy (n, f,
    oh, ow) and x (n, c, h, w) C-contiguous, w (f, c // groups * kh * kw), g x's
    geometry; ``dx`` an (n, c, h, w) C-contiguous array to write into, or None.

    Returns ``(dx or None, dw of shape (f, c // groups * kh * kw), db of shape (f,))``;
    dw and db are summed over the batch in an order fixed by its size.
    """
    n, c = x.shape[:2]
    f, taps = w.shape
    if groups == c and groups > 1:
        return _depthwise_conv2d_backward(dy, x, w, g, need_dx, dx)
    if groups == 1:
        return _conv2d_backward(dy, x, w, g, need_dx, dx=dx)
    cg, fg = c // groups, f // groups
    group_g = dict(g, c=cg)
    if need_dx and dx is None:
        dx = np.empty(x.shape, dtype=x.dtype)
    dw = np.empty(w.shape, dtype=x.dtype)
    db = np.empty(f, dtype=x.dtype)
    for k in range(groups):
        channels, filters = slice(k * cg, (k + 1) * cg), slice(k * fg, (k + 1) * fg)
        dx_k, dw[filters], db[filters] = _conv2d_backward(
            np.ascontiguousarray(dy[:, filters]), np.ascontiguousarray(x[:, channels]),
            w[filters], group_g, need_dx)
        if need_dx:
            dx[:, channels] = dx_k
    return (dx if need_dx else None), dw, db


def _depthwise_conv2d_backward(dy, x, w, g, need_dx, dx):
    """:func:`_grouped_conv2d_backward` of a depthwise convolution."""
    n, c = x.shape[:2]
    f, taps = w.shape
    work = 2 * n * f * taps * g["oh"] * g["ow"]
    layout, offsets, phases = _layout_of(g)
    if need_dx:
        dx = np.empty(x.shape, dtype=x.dtype) if dx is None else dx
        if g["ph"] <= g["dh"] * (g["kh"] - 1) and g["pw"] <= g["dw"] * (g["kw"] - 1):
            _depthwise_transposed(dy, w, g, dx)
        else:
            # padding past the kernel's span: scatter each dy row where its taps read
            n_threads = _n_threads(n * c, work)
            planes = np.empty((n_threads, layout["plane_size"]), dtype=x.dtype)
            _depthwise.depthwise_conv2d_backward_input(dy, w, dx, offsets, phases, planes,
                                                       layout, n_threads)
    n_chunks = min(n, _MAX_REDUCTION_CHUNKS)
    n_threads = _n_threads(n_chunks * f, work)
    dw_part = np.empty((n_chunks, f, taps + 1), dtype=x.dtype)
    dw_db = np.empty((f, taps + 1), dtype=x.dtype)
    # each tap's lanes padded to whole vectors of the widest path
    lanes = np.empty((n_threads, taps + 1, -(-g["ow"] // 8) * 8), dtype=x.dtype)
    planes = np.zeros((n_threads, layout["plane_size"]), dtype=x.dtype)
    _depthwise.depthwise_conv2d_backward_weights(dy, x, dw_part, dw_db, lanes, offsets, planes,
                                                 layout, n_threads)
    return (dx if need_dx else None), np.ascontiguousarray(dw_db[:, :taps]), dw_db[:, taps].copy()


def _depthwise_transposed(dy, w, g, dx):
    """The input gradient of a depthwise convolution as depthwise forward
    correlations (the fast kernel, whose sums stay in registers).

    dx[c] sums, over c's m filters, dy's plane with sh - 1 (sw - 1) zeros
    between its rows (columns) correlated with the filter's kernel turned by
    180 degrees (see _transposed_convolution), with the kernel's span less the
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
    gt = _geometry((n, c) + size, (kh, kw), 1, padding, (dh, dw))
    layout, offsets, _ = _layout_of(gt)
    if g["sh"] != 1 or g["sw"] != 1:
        # the zeros between dy's rows and columns are the padded plane's own
        layout = dict(layout, h=oh, w=ow, spread_h=g["sh"], spread_w=g["sw"])
    turned = np.ascontiguousarray(w[:, ::-1])
    n_threads = _n_threads(n * c, 2 * n * f * w.shape[1] * h * wd)
    planes = np.zeros((n_threads, layout["plane_size"]), dtype=dy.dtype)
    if m == 1:
        _depthwise.depthwise_conv2d_forward(dy, turned, _NONE_1D[dy.dtype.char], dx, False,
                                            offsets, planes, layout, n_threads)
        return dx
    dy = dy.reshape(n, c, m, oh, ow)
    term = np.empty_like(dx)
    for k in range(m):
        _depthwise.depthwise_conv2d_forward(
            np.ascontiguousarray(dy[:, :, k]), np.ascontiguousarray(turned[k::m]),
            _NONE_1D[dx.dtype.char], dx if k == 0 else term, False, offsets, planes, layout,
            n_threads)
        if k:
            dx += term
    return dx


def global_avg_pool2d(x):
    """Mean of each channel's plane (ONNX's GlobalAveragePool, flattened).

    Parameters
    ----------
    x : ndarray of shape (n, c, h, w)

    Returns
    -------
    y : ndarray of shape (n, c)
        Each plane summed in an order fixed by h * w alone, then divided by
        h * w: a row's bits do not depend on the batch or the threads.
    """
    x = _float_array(x, "x", 4)
    return _global_avg_pool2d(x)


def _global_avg_pool2d(x, out=None):
    """:func:`global_avg_pool2d` of a C-contiguous 4-D x; ``out`` an (n, c) array or None."""
    n, c = x.shape[:2]
    y = np.empty((n, c), dtype=x.dtype) if out is None else out
    _global_pool.global_avg_pool2d_forward(x.reshape(n, c, -1), y, _plane_threads(n, x.size))
    return y


def global_avg_pool2d_backward(dy, x_shape):
    """Gradient of :func:`global_avg_pool2d`: each dy spread evenly over its plane.

    Parameters
    ----------
    dy : ndarray of shape (n, c)
    x_shape : tuple (n, c, h, w)

    Returns
    -------
    dx : ndarray of shape x_shape
    """
    dy = _float_array(dy, "dy", 2)
    x_shape = _shape4(x_shape)
    _check_shape(dy, x_shape[:2], "dy")
    return _global_avg_pool2d_backward(dy, x_shape)


def _global_avg_pool2d_backward(dy, x_shape, dx=None):
    """:func:`global_avg_pool2d_backward` of a C-contiguous dy; ``dx`` an array of
    x_shape to write into, or None."""
    n, c = x_shape[:2]
    dx = np.empty(x_shape, dtype=dy.dtype) if dx is None else dx
    _global_pool.global_avg_pool2d_backward(dy, dx.reshape(n, c, -1), _plane_threads(n, dx.size))
    return dx


def global_max_pool2d(x, *, return_argmax=True):
    """Maximum of each channel's plane (ONNX's GlobalMaxPool, flattened).

    Parameters
    ----------
    x : ndarray of shape (n, c, h, w)
    return_argmax : bool, default=True
        False returns ``y`` alone.

    Returns
    -------
    y : ndarray of shape (n, c)
    argmax : ndarray of intp, shape (n, c)
        Flat index ``row * w + col`` into ``x[n, c]`` of the maximum; on ties
        the first in row-major order wins, and NaN propagates (the last NaN
        wins), as in :func:`max_pool2d`. Only with ``return_argmax``.
    """
    x = _float_array(x, "x", 4)
    y, argmax = _global_max_pool2d(
        x, argmax=np.empty(x.shape[:2], dtype=np.intp) if return_argmax else None)
    return (y, argmax) if return_argmax else y


# the global max pooling kernel's "no argmax wanted"
_NO_ARGMAX_2D = np.empty((0, 0), dtype=np.intp)


def _global_max_pool2d(x, out=None, argmax=None):
    """:func:`global_max_pool2d` of a C-contiguous 4-D x: ``out`` an (n, c) array
    or None; ``argmax`` an (n, c) intp array to fill, or None for none.

    Returns ``(y, argmax or None)``.
    """
    n, c = x.shape[:2]
    y = np.empty((n, c), dtype=x.dtype) if out is None else out
    _global_pool.global_max_pool2d_forward(
        x.reshape(n, c, -1), y, _NO_ARGMAX_2D if argmax is None else argmax,
        _plane_threads(n, x.size))
    return y, argmax


def global_max_pool2d_backward(dy, argmax, x_shape):
    """Route each gradient of :func:`global_max_pool2d` to its plane's maximum.

    Parameters
    ----------
    dy : ndarray of shape (n, c)
    argmax : ndarray of ints, shape (n, c)
        As returned by :func:`global_max_pool2d`.
    x_shape : tuple (n, c, h, w)

    Returns
    -------
    dx : ndarray of shape x_shape
        Zero but at each plane's maximum.
    """
    dy = _float_array(dy, "dy", 2)
    x_shape = _shape4(x_shape)
    _check_shape(dy, x_shape[:2], "dy")
    argmax = _checked_argmax(argmax, dy.shape, x_shape[2] * x_shape[3],
                             f"the {x_shape[2]}x{x_shape[3]} input planes of x_shape={x_shape}")
    return _global_max_pool2d_backward(dy, argmax, x_shape)


def _global_max_pool2d_backward(dy, argmax, x_shape, dx=None):
    """:func:`global_max_pool2d_backward` of a C-contiguous dy and an intp argmax
    from global_max_pool2d; ``dx`` an array of x_shape to write into, or None."""
    n, c = x_shape[:2]
    dx = np.empty(x_shape, dtype=dy.dtype) if dx is None else dx
    _global_pool.global_max_pool2d_backward(dy, argmax, dx.reshape(n, c, -1),
                                            _plane_threads(n, dx.size))
    return dx


# ---------------------------------------------------------------------------
# Series: 1-D convolution and pooling along time.
#
# A series of shape (n, c, length) is an image of height 1, (n, c, 1, length),
# and a kernel of k taps one of shape (1, k): a view, no copy. So the 1-D
# functions run the 2-D kernels, whose stride-1 products read a series' taps as
# shifted windows of one padded row (_conv2d's implicit product), and have
# their bits on every path: each output one FMA chain in a fixed order, batch
# reductions in chunks fixed by the batch size. What is 1-D here is the
# checking: int arguments only, and errors that speak of series.
# ---------------------------------------------------------------------------

__all__ += [
    "conv1d",
    "conv1d_backward",
    "max_pool1d",
    "max_pool1d_backward",
    "avg_pool1d",
    "avg_pool1d_backward",
    "global_avg_pool1d",
    "global_avg_pool1d_backward",
    "global_max_pool1d",
    "global_max_pool1d_backward",
]


def _int(value, name, minimum):
    """``value`` as an int of at least ``minimum``: a series has one axis, so one int."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise ValueError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name}={value!r} must be >= {minimum}")
    return int(value)


def _series_shape(x_shape):
    if (
        not isinstance(x_shape, (tuple, list))
        or len(x_shape) != 3
        or not all(isinstance(v, numbers.Integral) and v >= 1 for v in x_shape)
    ):
        raise ValueError(f"x_shape must be 3 positive ints (N, C, length), got {x_shape!r}")
    return tuple(int(v) for v in x_shape)


def _series_geometry(x_shape, kernel_size, stride, padding, dilation):
    """The 2-D geometry of series of ``x_shape`` (n, c, length) as images of height 1."""
    n, c, length = x_shape
    k = _int(kernel_size, "kernel_size", 1)
    s = _int(stride, "stride", 1)
    p = _int(padding, "padding", 0)
    d = _int(dilation, "dilation", 1)
    output_size(length, k, s, p, d, "length")
    return _geometry((n, c, 1, length), (1, k), (1, s), (0, p), (1, d))


def _series_pool_geometry(x_shape, kernel_size, stride, padding):
    k = _int(kernel_size, "kernel_size", 1)
    s = k if stride is None else _int(stride, "stride", 1)
    p = _int(padding, "padding", 0)
    if p > k // 2:
        raise ValueError(
            f"padding={padding!r} must be at most half of kernel_size={kernel_size!r}, "
            "so that every pooling window overlaps the series"
        )
    return _series_geometry(x_shape, k, s, p, 1)


def _as_image(a):
    """(n, c, length) -> (n, c, 1, length), a view."""
    return a.reshape(a.shape[0], a.shape[1], 1, a.shape[2])


def _as_series(a):
    return a.reshape(a.shape[0], a.shape[1], a.shape[3])


def _series_conv_args(x, w, groups):
    """Checked x (n, c, length), w (f, c // groups, k) and groups, as conv2d checks them."""
    x = _float_array(x, "x", 3)
    w = _float_array(w, "w", 3, x.dtype)
    c, (f, wc, _) = x.shape[1], w.shape
    groups = _groups(groups, c, f)
    if groups > 1:
        _check_grouped_weights(w, c, groups)
    elif wc != c:
        raise ValueError(f"w has {wc} input channels (w.shape[1]) but x has {c} (x.shape[1])")
    return x, w, groups


def conv1d(x, w, b=None, stride=1, padding=0, dilation=1, *, groups=1):
    """1-D convolution (cross-correlation) along time, as ``torch.nn.Conv1d``.

    Parameters
    ----------
    x : ndarray of shape (n, c, length)
    w : ndarray of shape (f, c // groups, k), same dtype as x
        As ``torch.nn.Conv1d.weight``.
    b : ndarray of shape (f,) or None
    stride, padding, dilation : int
        Zero padding of ``padding`` steps at each end. ('same' padding of an
        even kernel puts the extra step at the end: pad the series by one
        there first, as PyTorch and Keras do.)
    groups : int, default=1
        Divides both c and f; ``groups == c`` is a depthwise convolution.

    Returns
    -------
    y : ndarray of shape (n, f, out_length)
        ``out_length = (length + 2 * padding - dilation * (k - 1) - 1) // stride + 1``.
        Each element one chain in a fixed order: a row's bits do not depend on
        the batch, the threads or the SIMD path, and equal those of
        :func:`conv2d` on the series as images of height 1.
    """
    x, w, groups = _series_conv_args(x, w, groups)
    f, _, k = w.shape
    if b is not None:
        b = _float_array(b, "b", 1, x.dtype)
        _check_shape(b, (f,), "b")
    g = _series_geometry(x.shape, k, stride, padding, dilation)
    x4 = _as_image(x)
    if groups > 1:
        y = _grouped_conv2d(x4, w.reshape(f, -1), b, g, groups)
    else:
        y = _conv2d(x4, w.reshape(f, -1), b, g)
    return _as_series(y)


def conv1d_backward(dy, x, w, stride=1, padding=0, dilation=1, need_dx=True, *, groups=1):
    """Gradients of :func:`conv1d` with respect to its input, weights and bias.

    Parameters
    ----------
    dy : ndarray of shape (n, f, out_length)
        Gradient of the loss with respect to conv1d's output.
    x : ndarray of shape (n, c, length)
    w : ndarray of shape (f, c // groups, k)
    stride, padding, dilation : int
        As given to :func:`conv1d`.
    need_dx : bool, default=True
        When False, ``dx`` is not computed and None is returned in its place.
    groups : int, default=1
        As given to :func:`conv1d`.

    Returns
    -------
    dx : ndarray of shape (n, c, length), or None
    dw : ndarray of shape (f, c // groups, k)
    db : ndarray of shape (f,)
        ``dw`` and ``db`` are summed over the batch in a fixed order: the same
        bits for any number of threads.
    """
    x, w, groups = _series_conv_args(x, w, groups)
    dy = _float_array(dy, "dy", 3, x.dtype)
    n, f, k = x.shape[0], w.shape[0], w.shape[2]
    g = _series_geometry(x.shape, k, stride, padding, dilation)
    _check_shape(dy, (n, f, g["ow"]), "dy")
    w2 = w.reshape(f, -1)
    if groups > 1:
        dx, dw, db = _grouped_conv2d_backward(_as_image(dy), _as_image(x), w2, g, groups, need_dx)
    else:
        dx, dw, db = _conv2d_backward(_as_image(dy), _as_image(x), w2, g, need_dx)
    return (_as_series(dx) if need_dx else None), dw.reshape(w.shape), db


def max_pool1d(x, kernel_size, stride=None, padding=0, *, return_argmax=True):
    """Max pooling along time that also returns where each maximum came from.

    Parameters
    ----------
    x : ndarray of shape (n, c, length)
    kernel_size : int
    stride : int or None
        None means ``stride = kernel_size``.
    padding : int
        At most half the kernel; padded steps never win (they count as -inf).
    return_argmax : bool, default=True
        False returns ``y`` alone, which is faster.

    Returns
    -------
    y : ndarray of shape (n, c, out_length)
    argmax : ndarray of intp, shape (n, c, out_length)
        Index into ``x[n, c]`` of each window's maximum; on ties the first
        wins, and NaN propagates (the last NaN of a window wins). Only with
        ``return_argmax``.
    """
    x = _float_array(x, "x", 3)
    g = _series_pool_geometry(x.shape, kernel_size, stride, padding)
    out = _max_pool2d(_as_image(x), g, return_argmax)
    if return_argmax:
        return _as_series(out[0]), _as_series(out[1])
    return _as_series(out)


def max_pool1d_backward(dy, argmax, x_shape):
    """Route each output gradient of :func:`max_pool1d` to its window's maximum.

    Parameters
    ----------
    dy : ndarray of shape (n, c, out_length)
    argmax : ndarray of ints, shape (n, c, out_length)
        As returned by :func:`max_pool1d`.
    x_shape : tuple (n, c, length)

    Returns
    -------
    dx : ndarray of shape x_shape
        Gradients accumulate where windows overlap on one maximum.
    """
    dy = _float_array(dy, "dy", 3)
    n, c, length = _series_shape(x_shape)
    if dy.shape[:2] != (n, c):
        raise ValueError(f"dy has shape {dy.shape} but x_shape is {tuple(x_shape)}")
    argmax = _checked_argmax(argmax, dy.shape, length,
                             f"the series of length {length} of x_shape={tuple(x_shape)}")
    dx = _max_pool2d_backward(_as_image(dy), _as_image(argmax), (n, c, 1, length))
    return _as_series(dx)


def avg_pool1d(x, kernel_size, stride=None, padding=0):
    """Average pooling along time; zero padding counts in the divisor
    (``count_include_pad=True``, as ``torch.nn.AvgPool1d``).

    Parameters
    ----------
    x : ndarray of shape (n, c, length)
    kernel_size : int
    stride : int or None
        None means ``stride = kernel_size``.
    padding : int
        At most half the kernel.

    Returns
    -------
    y : ndarray of shape (n, c, out_length)
    """
    x = _float_array(x, "x", 3)
    g = _series_pool_geometry(x.shape, kernel_size, stride, padding)
    n, c = x.shape[:2]
    y = np.empty((n, c, 1, g["ow"]), dtype=x.dtype)
    _pool.avg_pool2d_forward(_as_image(x), y, g, _pool_threads(x.shape))
    return _as_series(y)


def avg_pool1d_backward(dy, x_shape, kernel_size, stride=None, padding=0):
    """Gradient of :func:`avg_pool1d`: each output gradient spread evenly over its window.

    Parameters
    ----------
    dy : ndarray of shape (n, c, out_length)
    x_shape : tuple (n, c, length)
    kernel_size, stride, padding : as given to :func:`avg_pool1d`

    Returns
    -------
    dx : ndarray of shape x_shape
    """
    dy = _float_array(dy, "dy", 3)
    x_shape = _series_shape(x_shape)
    g = _series_pool_geometry(x_shape, kernel_size, stride, padding)
    _check_shape(dy, (x_shape[0], x_shape[1], g["ow"]), "dy")
    n, c, length = x_shape
    dx = np.empty((n, c, 1, length), dtype=dy.dtype)
    _pool.avg_pool2d_backward(_as_image(dy), dx, g, _pool_threads(x_shape))
    return _as_series(dx)


def global_avg_pool1d(x):
    """Mean of each channel's series (``torch.nn.AdaptiveAvgPool1d(1)``, flattened).

    Parameters
    ----------
    x : ndarray of shape (n, c, length)

    Returns
    -------
    y : ndarray of shape (n, c)
        Each series summed in an order fixed by its length alone, then divided
        by it: a row's bits do not depend on the batch or the threads.
    """
    x = _float_array(x, "x", 3)
    return _global_avg_pool2d(_as_image(x))


def global_avg_pool1d_backward(dy, x_shape):
    """Gradient of :func:`global_avg_pool1d`: each dy spread evenly over its series.

    Parameters
    ----------
    dy : ndarray of shape (n, c)
    x_shape : tuple (n, c, length)

    Returns
    -------
    dx : ndarray of shape x_shape
    """
    dy = _float_array(dy, "dy", 2)
    n, c, length = _series_shape(x_shape)
    _check_shape(dy, (n, c), "dy")
    return _as_series(_global_avg_pool2d_backward(dy, (n, c, 1, length)))


def global_max_pool1d(x, *, return_argmax=True):
    """Maximum of each channel's series (``torch.nn.AdaptiveMaxPool1d(1)``, flattened).

    Parameters
    ----------
    x : ndarray of shape (n, c, length)
    return_argmax : bool, default=True
        False returns ``y`` alone.

    Returns
    -------
    y : ndarray of shape (n, c)
    argmax : ndarray of intp, shape (n, c)
        Index into ``x[n, c]`` of the maximum; on ties the first wins, and NaN
        propagates (the last NaN wins). Only with ``return_argmax``.
    """
    x = _float_array(x, "x", 3)
    return global_max_pool2d(_as_image(x), return_argmax=return_argmax)


def global_max_pool1d_backward(dy, argmax, x_shape):
    """Route each gradient of :func:`global_max_pool1d` to its series' maximum.

    Parameters
    ----------
    dy : ndarray of shape (n, c)
    argmax : ndarray of ints, shape (n, c)
        As returned by :func:`global_max_pool1d`.
    x_shape : tuple (n, c, length)

    Returns
    -------
    dx : ndarray of shape x_shape
        Zero but at each series' maximum.
    """
    n, c, length = _series_shape(x_shape)
    return _as_series(global_max_pool2d_backward(dy, argmax, (n, c, 1, length)))
