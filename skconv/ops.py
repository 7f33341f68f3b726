"""Convolution and pooling on NCHW arrays: the public functional API.

Every function validates its arguments (shapes, dtypes, geometry) and raises
``ValueError`` or ``TypeError`` naming the argument before any compiled code
runs, then calls the planned engine (``skconv._engine``), which calls the
kernels. Arrays are float32 or float64; outputs take
the input's dtype. ``kernel_size``, ``stride``, ``padding`` and ``dilation``
accept an int or a pair ``(height, width)``.

The ``*1d`` functions take series of shape ``(n, c, length)`` (as
``torch.nn.Conv1d``) and int arguments; they run the same kernels, a series
being an image of height 1.

Output size along an axis is ``floor((h + 2 * p - d * (k - 1) - 1) / s) + 1``:
windows that do not fit are dropped. A convolution whose stride, padding or
dilation dwarfs its input, and a pooling window far larger than it, cost
what the windows read of the input, not what they span; but for the input
gradient of a depthwise convolution, or one of stride 1, whose windows read
an element twice: that one is computed over the whole padded input.
"""

import numbers

import numpy as np

from . import _engine
from ._engine import SIMD_PATHS  # noqa: F401 - a public name of ops

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
    "simd_path",
]



def simd_path():
    """Name of the SIMD path the products use: ``'portable'``, ``'avx2'`` or ``'avx512'``."""
    return _engine.simd_path()


def _float_array(a, name, ndim, dtype=None):
    """C-contiguous float32/float64 view or copy of ``a`` with ``ndim`` non-empty axes."""
    a = np.asarray(a)
    if a.dtype.kind == "f" and not a.dtype.isnative:
        # the same floats in the other byte order (read from another machine's
        # file): the kernels read the machine's
        a = a.astype(a.dtype.newbyteorder("="))
    if a.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} must be float32 or float64, got dtype {a.dtype}")
    if dtype is not None and a.dtype != dtype:
        raise ValueError(f"{name} has dtype {a.dtype} but the input x has dtype {dtype}")
    if a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {a.shape}")
    if 0 in a.shape:
        raise ValueError(f"{name} must not have an empty axis, got shape {a.shape}")
    return np.ascontiguousarray(a)


def _shape_of(x_shape, axes):
    """``x_shape`` as a tuple of positive ints, one per name of ``axes`` ('N, C, H, W')."""
    n_axes = len(axes.split(", "))
    if (
        not isinstance(x_shape, (tuple, list))
        or len(x_shape) != n_axes
        or not all(isinstance(v, numbers.Integral) and v >= 1 for v in x_shape)
    ):
        raise ValueError(f"x_shape must be {n_axes} positive ints ({axes}), got {x_shape!r}")
    return tuple(int(v) for v in x_shape)


def _workspace(cols, shape, dtype, name="cols"):
    """Check a caller's buffer (a conv workspace, an output): the kernels write into it
    directly."""
    if not isinstance(cols, np.ndarray) or cols.dtype != dtype or cols.shape != shape:
        raise ValueError(
            f"{name} must be an ndarray of shape {shape} and dtype {np.dtype(dtype)}, got "
            f"{getattr(cols, 'shape', type(cols).__name__)} {getattr(cols, 'dtype', '')}"
        )
    if not (cols.flags.c_contiguous and cols.flags.writeable):
        raise ValueError(f"{name} must be a writeable C-contiguous array")
    return cols


def _gathered(x, g, groups, dx=False):
    """``(x, g, compaction)``: x and its geometry g, or where a stride, padding or
    dilation makes the kernels' padded input far larger than what the windows
    read, x gathered to those rows and columns and their geometry (see
    ``_engine.compact_geometry``: the same bits); ``compaction`` None or what
    maps a gradient back (``_engine.scatter_windows``), which ``dx`` asks for."""
    compaction = _engine.compact_geometry(g, depthwise=groups == x.shape[1] > 1, dx=dx)
    if compaction is None:
        return x, g, None
    return _engine.gather_windows(x, compaction), compaction.g, compaction


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
    g = _engine.geometry(x.shape, (kh, kw), stride, padding, dilation)
    if cols is not None:
        if groups > 1:
            raise ValueError(f"cols is a workspace of groups=1 only, got groups={groups}")
        _workspace(cols, (n, c * kh * kw, g["oh"] * g["ow"]), x.dtype)
    x, g, _ = _gathered(x, g, groups)
    if groups > 1:
        return _engine.grouped_conv2d(x, w.reshape(f, -1), b, g, groups)
    return _engine.conv2d(x, w.reshape(f, -1), b, g, cols)


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
    g = _engine.geometry(x.shape, (kh, kw), stride, padding, dilation)
    _check_shape(dy, (n, f, g["oh"], g["ow"]), "dy")
    if cols is not None:
        if groups > 1:
            raise ValueError(f"cols is a workspace of groups=1 only, got groups={groups}")
        _workspace(cols, (n, c * kh * kw, g["oh"] * g["ow"]), x.dtype)
    x_shape = x.shape
    x, g, compaction = _gathered(x, g, groups, need_dx)
    if groups > 1:
        dx, dw, db = _engine.grouped_conv2d_backward(dy, x, w.reshape(f, -1), g, groups, need_dx)
    else:
        dx, dw, db = _engine.conv2d_backward(dy, x, w.reshape(f, -1), g, need_dx, cols)
    if dx is not None and compaction is not None:
        dx = _engine.scatter_windows(dx, x_shape, compaction)
    return dx, dw.reshape(w.shape), db


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
        _workspace(out, (x.shape[0], w.shape[1]), x.dtype, "out")
        if any(np.may_share_memory(out, a) for a in (x, w, b) if a is not None):
            # the product reads its operands as it writes out: as numpy does,
            # compute it aside first
            out[...] = _engine.matmul(x, w, b, None)
            return out
    return _engine.matmul(x, w, b, out)


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
    dw = _engine.matmul(x.T, dy)
    db = dy.sum(axis=0)
    dx = _engine.matmul(dy, w.T) if need_dx else None
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
    g = _engine.geometry(x.shape, kernel_size, stride, padding, dilation)
    n = x.shape[0]
    ohw, ckk = g["oh"] * g["ow"], g["c"] * g["kh"] * g["kw"]
    # the kernels keep a sample's taps in rows (see _kernels/_im2col.pxd);
    # the public layout is its transpose
    return _engine.im2col(x, g).transpose(0, 2, 1).reshape(n * ohw, ckk)


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
    x_shape = _shape_of(x_shape, "N, C, H, W")
    g = _engine.geometry(x_shape, kernel_size, stride, padding, dilation)
    n = x_shape[0]
    ohw, ckk = g["oh"] * g["ow"], g["c"] * g["kh"] * g["kw"]
    _check_shape(cols, (n * ohw, ckk), "cols")
    cols = np.ascontiguousarray(cols.reshape(n, ohw, ckk).transpose(0, 2, 1))
    return _engine.col2im(cols, x_shape, g)


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
    g = _engine.pool_geometry(x.shape, kernel_size, stride, padding)
    return _engine.max_pool2d(x, g, return_argmax)


def _checked_argmax(argmax, shape, size, where):
    """``argmax`` as a C-contiguous intp array of ``shape``, every index in [0, size);
    ``where`` names those positions in the error."""
    argmax = np.asarray(argmax)
    if argmax.dtype.kind not in "iu":
        raise TypeError(f"argmax must hold integers, got dtype {argmax.dtype}")
    if argmax.shape != tuple(shape):
        # either may be the wrong one: name both
        raise ValueError(f"argmax must have shape {tuple(shape)}, dy's (both are the pooling's "
                         f"output), got {argmax.shape}")
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
    n, c, h, w = _shape_of(x_shape, "N, C, H, W")
    if dy.shape[:2] != (n, c):
        raise ValueError(f"dy has shape {dy.shape} but x_shape is {tuple(x_shape)}")
    argmax = _checked_argmax(argmax, dy.shape, h * w,
                             f"the {h}x{w} input planes of x_shape={tuple(x_shape)}")
    return _engine.max_pool2d_backward(dy, argmax, (n, c, h, w))


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
    g = _engine.pool_geometry(x.shape, kernel_size, stride, padding)
    return _engine.avg_pool2d(x, g)


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
    x_shape = _shape_of(x_shape, "N, C, H, W")
    g = _engine.pool_geometry(x_shape, kernel_size, stride, padding)
    _check_shape(dy, (x_shape[0], x_shape[1], g["oh"], g["ow"]), "dy")
    return _engine.avg_pool2d_backward(dy, x_shape, g)


def _channels_view(a, name, dtype=None):
    """(n, c, m) view of an (n, c, ...) array: batch norm's statistics run over n and m."""
    a = np.asarray(a)
    if a.ndim < 2:
        raise ValueError(f"{name} must be at least 2-D (n, c, ...), got shape {a.shape}")
    a = _float_array(a, name, a.ndim, dtype)
    return a.reshape(a.shape[0], a.shape[1], -1)


def _eps(eps):
    """``eps`` as a float, refused unless a finite number > 0."""
    if not isinstance(eps, numbers.Real) or isinstance(eps, bool):
        raise ValueError(f"eps must be a float, got {eps!r}")
    if not 0 < eps < float("inf"):
        raise ValueError(f"eps={eps!r} must be a finite number > 0")
    return float(eps)


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
    eps = _eps(eps)
    y, x_hat = np.empty_like(x3), np.empty_like(x3)
    mean, var = _engine.batch_norm(x3, scale, shift, eps, y, x_hat)
    shape = np.shape(x)
    return y.reshape(shape), x_hat.reshape(shape), mean, var


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
    var = np.asarray(var)
    if var.dtype.kind not in "fiu":
        raise TypeError(f"var must hold the variances batch_norm returns, got dtype {var.dtype}")
    var = np.ascontiguousarray(var, dtype=np.float64)
    _check_shape(var, (c,), "var")
    if (var < 0).any():  # NaN passes: it propagates, as it came from x
        raise ValueError(f"var must hold variances (>= 0), got {var.min()} in channel "
                         f"{int(np.argmin(var))}")
    eps = _eps(eps)
    dx = np.empty(dy3.shape, dtype=dy3.dtype) if need_dx else None
    dscale, dshift = np.empty(c, dtype=dy3.dtype), np.empty(c, dtype=dy3.dtype)
    _engine.batch_norm_backward(dy3, x_hat3, None, var, scale, None, eps, dx, dscale,
                                dshift)
    return (dx.reshape(np.shape(dy)) if need_dx else None), dscale, dshift


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
    return _engine.global_avg_pool2d(x)


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
    x_shape = _shape_of(x_shape, "N, C, H, W")
    _check_shape(dy, x_shape[:2], "dy")
    return _engine.global_avg_pool2d_backward(dy, x_shape)


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
    y, argmax = _engine.global_max_pool2d(
        x, argmax=np.empty(x.shape[:2], dtype=np.intp) if return_argmax else None)
    return (y, argmax) if return_argmax else y


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
    x_shape = _shape_of(x_shape, "N, C, H, W")
    _check_shape(dy, x_shape[:2], "dy")
    argmax = _checked_argmax(argmax, dy.shape, x_shape[2] * x_shape[3],
                             f"the {x_shape[2]}x{x_shape[3]} input planes of x_shape={x_shape}")
    return _engine.global_max_pool2d_backward(dy, argmax, x_shape)


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


def output_size(size, kernel_size, stride=1, padding=0, dilation=1, axis="height"):
    """Output length of a window sliding over ``size`` input positions:
    ``(size + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1``.

    Raises ``ValueError`` naming the argument for a value that is not an int
    (padding >= 0, the others >= 1), or naming the sizes when no
    window fits; ``axis`` ("height", "width", or "length" for a series) names
    the axis there.
    """
    values = [_int(value, name, minimum) for value, name, minimum in (
        (size, "size", 1), (kernel_size, "kernel_size", 1), (stride, "stride", 1),
        (padding, "padding", 0), (dilation, "dilation", 1))]
    if axis not in ("height", "width", "length"):
        raise ValueError(f"axis must be 'height', 'width' or 'length', got {axis!r}")
    return _engine.output_size(*values, axis)


def _int(value, name, minimum):
    """``value`` as an int of at least ``minimum``: a series has one axis, so one int."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise ValueError(f"{name} must be an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name}={value!r} must be >= {minimum}")
    return int(value)


def _series_geometry(x_shape, kernel_size, stride, padding, dilation):
    """The 2-D geometry of series of ``x_shape`` (n, c, length) as images of height 1."""
    n, c, length = x_shape
    k = _int(kernel_size, "kernel_size", 1)
    s = _int(stride, "stride", 1)
    p = _int(padding, "padding", 0)
    d = _int(dilation, "dilation", 1)
    output_size(length, k, s, p, d, "length")
    _engine.check_extents(length, k, s, p, d, "length")
    return _engine.geometry((n, c, 1, length), (1, k), (1, s), (0, p), (1, d))


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
    x4, g, _ = _gathered(_as_image(x), g, groups)
    if groups > 1:
        y = _engine.grouped_conv2d(x4, w.reshape(f, -1), b, g, groups)
    else:
        y = _engine.conv2d(x4, w.reshape(f, -1), b, g)
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
    x4, g, compaction = _gathered(_as_image(x), g, groups, need_dx)
    if groups > 1:
        dx, dw, db = _engine.grouped_conv2d_backward(_as_image(dy), x4, w2, g, groups, need_dx)
    else:
        dx, dw, db = _engine.conv2d_backward(_as_image(dy), x4, w2, g, need_dx)
    if dx is not None and compaction is not None:
        dx = _engine.scatter_windows(dx, _as_image(x).shape, compaction)
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
    out = _engine.max_pool2d(_as_image(x), g, return_argmax)
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
    n, c, length = _shape_of(x_shape, "N, C, length")
    if dy.shape[:2] != (n, c):
        raise ValueError(f"dy has shape {dy.shape} but x_shape is {tuple(x_shape)}")
    argmax = _checked_argmax(argmax, dy.shape, length,
                             f"the series of length {length} of x_shape={tuple(x_shape)}")
    dx = _engine.max_pool2d_backward(_as_image(dy), _as_image(argmax), (n, c, 1, length))
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
    return _as_series(_engine.avg_pool2d(_as_image(x), g))


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
    x_shape = _shape_of(x_shape, "N, C, length")
    g = _series_pool_geometry(x_shape, kernel_size, stride, padding)
    _check_shape(dy, (x_shape[0], x_shape[1], g["ow"]), "dy")
    n, c, length = x_shape
    return _as_series(_engine.avg_pool2d_backward(_as_image(dy), (n, c, 1, length), g))


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
    return _engine.global_avg_pool2d(_as_image(x))


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
    n, c, length = _shape_of(x_shape, "N, C, length")
    _check_shape(dy, (n, c), "dy")
    return _as_series(_engine.global_avg_pool2d_backward(dy, (n, c, 1, length)))


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
    dy = _float_array(dy, "dy", 2)
    n, c, length = _shape_of(x_shape, "N, C, length")
    _check_shape(dy, (n, c), "dy")
    argmax = _checked_argmax(argmax, dy.shape, length,
                             f"the series of length {length} of x_shape={tuple(x_shape)}")
    return _as_series(_engine.global_max_pool2d_backward(dy, argmax, (n, c, 1, length)))

