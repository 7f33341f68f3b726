"""Tests of skconv.ops against plain-loop float64 references written here.

Each reference is the obviously-right slow version of one op: Python loops over
every output position and every kernel tap, no im2col, no BLAS. The fast ops
are checked against them on fixed geometries and on random ones (hypothesis),
then for the properties the kernels promise: adjointness, finite-difference
gradients, float32/float64 agreement, any memory layout, and the same bits for
any thread count.
"""

import os
import subprocess
import sys
import threading
import tracemalloc
from unittest import mock

import numpy as np
import pytest
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st
from threadpoolctl import threadpool_limits

from gradcheck import numerical_gradient
from skconv import ops
from skconv._kernels import _gemm
from skconv._kernels._openmp_helpers import effective_n_threads, openmp_enabled
from skconv import _engine


# --------------------------------------------------------------------------
# Plain-loop references (float64)
# --------------------------------------------------------------------------


def _pair(v):
    return (v, v) if np.isscalar(v) else tuple(v)


def _out(size, k, s, p, d):
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def _taps(x_shape, kernel_size, stride, padding, dilation=1):
    """Output shape ``(oh, ow)``, and every (n, c, i, j, ki, kj, r, q) in row-major order.

    ``r, q`` is the input position under kernel tap ``ki, kj`` of output ``i, j``.
    Taps that land in the padding are left out: zero padding adds nothing to a
    sum, and -inf padding never wins a max.
    """
    n, c, h, w = x_shape
    (kh, kw), (sh, sw) = _pair(kernel_size), _pair(stride)
    (ph, pw), (dh, dw) = _pair(padding), _pair(dilation)
    oh, ow = _out(h, kh, sh, ph, dh), _out(w, kw, sw, pw, dw)
    taps = [
        (n_, c_, i, j, ki, kj, i * sh - ph + ki * dh, j * sw - pw + kj * dw)
        for n_, c_, i, j, ki, kj in np.ndindex(n, c, oh, ow, kh, kw)
    ]
    return (oh, ow), [t for t in taps if 0 <= t[6] < h and 0 <= t[7] < w]


def ref_im2col(x, kernel_size, stride=1, padding=0, dilation=1):
    (n, c), (kh, kw) = x.shape[:2], _pair(kernel_size)
    (oh, ow), taps = _taps(x.shape, kernel_size, stride, padding, dilation)
    cols = np.zeros((n, oh, ow, c, kh, kw))
    for n_, c_, i, j, ki, kj, r, q in taps:
        cols[n_, i, j, c_, ki, kj] = x[n_, c_, r, q]
    return cols.reshape(n * oh * ow, c * kh * kw)


def ref_col2im(cols, x_shape, kernel_size, stride=1, padding=0, dilation=1):
    (oh, ow), taps = _taps(x_shape, kernel_size, stride, padding, dilation)
    cols = cols.reshape(x_shape[0], oh, ow, x_shape[1], *_pair(kernel_size))
    x = np.zeros(x_shape)
    for n_, c_, i, j, ki, kj, r, q in taps:
        x[n_, c_, r, q] += cols[n_, i, j, c_, ki, kj]
    return x


def ref_conv2d(x, w, b=None, stride=1, padding=0, dilation=1):
    (oh, ow), taps = _taps(x.shape, w.shape[2:], stride, padding, dilation)
    y = np.zeros((x.shape[0], w.shape[0], oh, ow))
    for n_, c_, i, j, ki, kj, r, q in taps:
        for f_ in range(w.shape[0]):
            y[n_, f_, i, j] += w[f_, c_, ki, kj] * x[n_, c_, r, q]
    return y if b is None else y + b[:, None, None]


def ref_conv2d_backward(dy, x, w, stride=1, padding=0, dilation=1):
    _, taps = _taps(x.shape, w.shape[2:], stride, padding, dilation)
    dx, dw, db = np.zeros(x.shape), np.zeros(w.shape), dy.sum(axis=(0, 2, 3))
    for n_, c_, i, j, ki, kj, r, q in taps:
        for f_ in range(w.shape[0]):
            dw[f_, c_, ki, kj] += dy[n_, f_, i, j] * x[n_, c_, r, q]
            dx[n_, c_, r, q] += dy[n_, f_, i, j] * w[f_, c_, ki, kj]
    return dx, dw, db


def ref_max_pool2d(x, kernel_size, stride=None, padding=0):
    """The first maximum in row-major window order wins; padding never does."""
    stride = kernel_size if stride is None else stride
    (oh, ow), taps = _taps(x.shape, kernel_size, stride, padding)
    y = np.full((*x.shape[:2], oh, ow), -np.inf)
    argmax = np.full(y.shape, -1, dtype=np.intp)
    for n_, c_, i, j, _, _, r, q in taps:
        if argmax[n_, c_, i, j] < 0 or x[n_, c_, r, q] > y[n_, c_, i, j]:
            y[n_, c_, i, j] = x[n_, c_, r, q]
            argmax[n_, c_, i, j] = r * x.shape[3] + q
    return y, argmax


def ref_max_pool2d_backward(dy, argmax, x_shape):
    n, c, h, w = x_shape
    dx = np.zeros((n, c, h * w))
    for n_, c_, i, j in np.ndindex(dy.shape):
        dx[n_, c_, argmax[n_, c_, i, j]] += dy[n_, c_, i, j]
    return dx.reshape(x_shape)


def ref_avg_pool2d(x, kernel_size, stride=None, padding=0):
    """Padding is zeros and counts in the divisor (count_include_pad=True)."""
    stride = kernel_size if stride is None else stride
    (oh, ow), taps = _taps(x.shape, kernel_size, stride, padding)
    area = np.prod(_pair(kernel_size))
    y = np.zeros((*x.shape[:2], oh, ow))
    for n_, c_, i, j, _, _, r, q in taps:
        y[n_, c_, i, j] += x[n_, c_, r, q] / area
    return y


def ref_avg_pool2d_backward(dy, x_shape, kernel_size, stride=None, padding=0):
    stride = kernel_size if stride is None else stride
    _, taps = _taps(x_shape, kernel_size, stride, padding)
    area = np.prod(_pair(kernel_size))
    dx = np.zeros(x_shape)
    for n_, c_, i, j, _, _, r, q in taps:
        dx[n_, c_, r, q] += dy[n_, c_, i, j] / area
    return dx


def assert_close(actual, expected, rtol=1e-12):
    """``rtol`` relative to the largest entry of ``expected``.

    Entries that are sums of products cancel to near zero in places, where an
    elementwise relative tolerance would judge summation order, not correctness.
    """
    expected = np.asarray(expected)
    assert actual.shape == expected.shape
    scale = max(np.abs(expected).max(), 1.0) if expected.size else 1.0
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale)


# --------------------------------------------------------------------------
# Fixed geometries against the references
# --------------------------------------------------------------------------

# (n, c, h, w, f, kernel_size, stride, padding, dilation)
CONV_GEOMETRIES = {
    "plain 3x3": (2, 3, 7, 6, 4, 3, 1, 0, 1),
    "stride 2 padding 1": (2, 2, 8, 7, 3, 3, 2, 1, 1),
    "non-square, stride not dividing": (1, 2, 9, 7, 2, (2, 4), (3, 2), (1, 0), 1),
    "dilation": (2, 1, 9, 8, 3, (3, 2), 1, (2, 1), (2, 3)),
    "C=1 N=1, kernel as large as input": (1, 1, 5, 5, 1, 5, 1, 0, 1),
    "1x1": (3, 4, 4, 5, 2, 1, 1, 0, 1),
    "padding wider than kernel": (2, 2, 3, 3, 2, 2, 1, 2, 1),
    "stride wider than kernel": (2, 2, 9, 9, 2, 2, 3, 0, 1),
    "1x1 stride 2": (2, 3, 6, 7, 2, 1, 2, 0, 1),
    "stride 2, padding wider than kernel": (2, 2, 5, 6, 3, 2, 2, 2, 1),
    "stride 2, dilation 2": (2, 2, 9, 8, 3, 3, 2, 1, 2),
    "batch 19, uneven reduction chunks": (19, 1, 5, 4, 2, 3, 1, 1, 1),
}

# (n, c, h, w, kernel_size, stride, padding)
POOL_GEOMETRIES = {
    "2x2 default stride": (2, 3, 6, 6, 2, None, 0),
    "3x3 stride 2 padding 1, stride not dividing": (2, 2, 7, 5, 3, 2, 1),
    "non-square padded": (1, 1, 5, 7, (2, 3), (1, 2), (1, 1)),
    "overlapping 3x3 stride 1": (2, 2, 6, 6, 3, 1, 1),
    "non-square kernel, stride, padding": (1, 2, 9, 6, (3, 2), (2, 1), (0, 1)),
    "window drops the last row": (3, 1, 7, 7, 2, None, 0),
}


def _conv_case(geometry, seed=0):
    n, c, h, w, f, k, s, p, d = geometry
    kh, kw = _pair(k)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w))
    wt = rng.standard_normal((f, c, kh, kw))
    b = rng.standard_normal(f)
    oh = _out(h, kh, _pair(s)[0], _pair(p)[0], _pair(d)[0])
    ow = _out(w, kw, _pair(s)[1], _pair(p)[1], _pair(d)[1])
    dy = rng.standard_normal((n, f, oh, ow))
    return x, wt, b, dy, dict(stride=s, padding=p, dilation=d)


def _pool_case(geometry, seed=0):
    n, c, h, w, k, s, p = geometry
    (kh, kw), (sh, sw) = _pair(k), _pair(k if s is None else s)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w))
    oh, ow = _out(h, kh, sh, _pair(p)[0], 1), _out(w, kw, sw, _pair(p)[1], 1)
    dy = rng.standard_normal((n, c, oh, ow))
    return x, dy, dict(kernel_size=k, stride=s, padding=p)


@pytest.mark.parametrize("geometry", CONV_GEOMETRIES.values(), ids=CONV_GEOMETRIES)
def test_im2col_and_col2im_match_loop_reference(geometry):
    x, wt, _, _, kw = _conv_case(geometry)
    k = wt.shape[2:]
    cols = ops.im2col(x, k, **kw)
    assert_close(cols, ref_im2col(x, k, **kw))
    c = np.random.default_rng(1).standard_normal(cols.shape)
    assert_close(ops.col2im(c, x.shape, k, **kw), ref_col2im(c, x.shape, k, **kw))


@pytest.mark.parametrize("geometry", CONV_GEOMETRIES.values(), ids=CONV_GEOMETRIES)
def test_conv2d_forward_and_backward_match_loop_reference(geometry):
    x, wt, b, dy, kw = _conv_case(geometry)
    assert_close(ops.conv2d(x, wt, b, **kw), ref_conv2d(x, wt, b, **kw))
    assert_close(ops.conv2d(x, wt, **kw), ref_conv2d(x, wt, None, **kw))
    for got, want in zip(ops.conv2d_backward(dy, x, wt, **kw), ref_conv2d_backward(dy, x, wt, **kw)):
        assert_close(got, want)


@pytest.mark.parametrize("geometry", POOL_GEOMETRIES.values(), ids=POOL_GEOMETRIES)
def test_max_pool2d_forward_and_backward_match_loop_reference(geometry):
    x, dy, kw = _pool_case(geometry)
    y, argmax = ops.max_pool2d(x, **kw)
    y_ref, argmax_ref = ref_max_pool2d(x, **kw)
    assert_close(y, y_ref)
    assert argmax.dtype == np.intp
    np.testing.assert_array_equal(argmax, argmax_ref)
    assert_close(ops.max_pool2d_backward(dy, argmax, x.shape), ref_max_pool2d_backward(dy, argmax_ref, x.shape))


@pytest.mark.parametrize("geometry", POOL_GEOMETRIES.values(), ids=POOL_GEOMETRIES)
def test_avg_pool2d_forward_and_backward_match_loop_reference(geometry):
    x, dy, kw = _pool_case(geometry)
    assert_close(ops.avg_pool2d(x, **kw), ref_avg_pool2d(x, **kw))
    assert_close(ops.avg_pool2d_backward(dy, x.shape, **kw), ref_avg_pool2d_backward(dy, x.shape, **kw))


def test_conv2d_backward_reproduces_the_worked_example_from_the_seeds():
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    w = np.array([[0.0, 1.0], [2.0, 3.0]]).reshape(1, 1, 2, 2)
    dy = np.array([[0.0, 1.0], [2.0, 3.0]]).reshape(1, 1, 2, 2)
    dx, dw, db = ops.conv2d_backward(dy, x, w)
    np.testing.assert_array_equal(dw, [[[[19, 25], [37, 43]]]])
    np.testing.assert_array_equal(db, [6])
    np.testing.assert_array_equal(dx, [[[[0, 0, 1], [0, 4, 6], [4, 12, 9]]]])
    np.testing.assert_array_equal(ops.conv2d(x, w), [[[[19, 25], [37, 43]]]])


@pytest.mark.parametrize("geometry", CONV_GEOMETRIES.values(), ids=CONV_GEOMETRIES)
def test_col2im_is_the_adjoint_of_im2col(geometry):
    x, wt, _, _, kw = _conv_case(geometry)
    k = wt.shape[2:]
    cols = ops.im2col(x, k, **kw)
    c = np.random.default_rng(2).standard_normal(cols.shape)
    lhs, rhs = np.vdot(cols, c), np.vdot(x, ops.col2im(c, x.shape, k, **kw))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-12, atol=1e-12 * np.abs(cols).sum())


def test_output_size_follows_the_floor_formula_and_drops_windows_that_do_not_fit():
    assert ops.output_size(7, 2, stride=2) == 3
    assert ops.output_size(8, 3, stride=2, padding=1) == 4
    assert ops.output_size(9, 3, dilation=3) == 3
    assert ops.output_size(1, 3, padding=1) == 1
    with pytest.raises(ValueError, match="kernel_size=4.*height 2"):
        ops.output_size(2, 4)
    for args, message in (((8, 3, 0), "stride=0 must be >= 1"), ((8, 0), "kernel_size=0"),
                          ((8, 3, 1, -1), "padding=-1 must be >= 0"),
                          ((8, 3, 1, 0, 0), "dilation=0"), ((8.5, 3), "size must be an int"),
                          ((2, 4, 1, 0, 1, "depth"), "axis must be 'height', 'width' or 'length', "
                                                     "got 'depth'")):
        with pytest.raises(ValueError, match=message):
            ops.output_size(*args)


def test_sizes_past_the_kernels_c_ints_are_refused_naming_them():
    x, w = np.zeros((1, 1, 4, 4)), np.zeros((1, 1, 3, 3))
    with pytest.raises(ValueError, match=r"the stride \(1099511627776.*must be under 2\*\*31"):
        ops.conv2d(x, w, stride=2**40)
    with pytest.raises(ValueError, match=r"the padded input .* must be under 2\*\*31"):
        ops.conv2d(x, w, padding=2**30)


@pytest.mark.parametrize("which", ["x", "w", "b"])
def test_linear_into_an_out_that_is_one_of_its_operands_gives_the_product(which):
    # as numpy's matmul(out=): the operands as they were, not as out overwrites them
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal((300, 300)), rng.standard_normal((300, 300)), None
    b = rng.standard_normal(300)
    expected = ops.linear(x, w, b)
    if which == "b":
        b2 = np.tile(b, (300, 1))  # out must be (n, units): b's row broadcast in a copy
        out = b2
        result = ops.linear(x, w, b2[0], out=out)
        np.testing.assert_array_equal(result, expected)
        return
    out = {"x": x, "w": w}[which]
    result = ops.linear(x, w, b, out=out)
    assert result is out
    np.testing.assert_array_equal(result, expected)
    with pytest.raises(ValueError, match=r"out must be an ndarray of shape \(300, 300\)"):
        ops.linear(x[:, :5], w[:5], out=np.zeros((300, 299)))


# --------------------------------------------------------------------------
# Max pooling: ties, padding, overlap, NaN
# --------------------------------------------------------------------------


def test_maxpool_argmax_is_first_max_in_row_major_window_order_on_ties():
    x = np.array([[0.0, 5.0, 5.0, 1.0], [5.0, 5.0, 2.0, 2.0], [3.0, 3.0, 7.0, 7.0], [3.0, 3.0, 7.0, 7.0]])
    y, argmax = ops.max_pool2d(x.reshape(1, 1, 4, 4), 2)
    np.testing.assert_array_equal(y[0, 0], [[5, 5], [3, 7]])
    np.testing.assert_array_equal(argmax[0, 0], [[1, 2], [8, 10]])


def test_maxpool_backward_routes_to_first_max_on_ties():
    x = np.zeros((2, 2, 4, 4))
    dy = np.arange(1.0, 17.0).reshape(2, 2, 2, 2)
    y, argmax = ops.max_pool2d(x, 2)
    dx = ops.max_pool2d_backward(dy, argmax, x.shape)
    expected = np.zeros_like(x)
    expected[:, :, ::2, ::2] = dy  # each window's top-left element is its first maximum
    np.testing.assert_array_equal(dx, expected)


def test_maxpool_random_ties_match_reference():
    x = np.random.default_rng(3).integers(0, 3, size=(2, 3, 7, 6)).astype(float)
    for kw in [dict(kernel_size=3, stride=1, padding=1), dict(kernel_size=(2, 3), stride=(2, 1))]:
        y, argmax = ops.max_pool2d(x, **kw)
        y_ref, argmax_ref = ref_max_pool2d(x, **kw)
        np.testing.assert_array_equal(y, y_ref)
        np.testing.assert_array_equal(argmax, argmax_ref)


def test_maxpool_padding_counts_as_minus_infinity():
    x = -1.0 - np.random.default_rng(4).random((1, 2, 4, 5))
    y, argmax = ops.max_pool2d(x, 3, stride=2, padding=1)
    assert (y < -1).all()
    y_ref, argmax_ref = ref_max_pool2d(x, 3, 2, 1)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(argmax, argmax_ref)


def test_maxpool_backward_accumulates_where_windows_overlap_on_one_maximum():
    x = np.zeros((1, 1, 5, 5))
    x[0, 0, 2, 2] = 1.0  # the maximum of all nine 3x3 windows of stride 1
    y, argmax = ops.max_pool2d(x, 3, stride=1)
    assert (argmax == 12).all()
    dy = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    dx = ops.max_pool2d_backward(dy, argmax, x.shape)
    expected = np.zeros_like(x)
    expected[0, 0, 2, 2] = dy.sum()
    np.testing.assert_array_equal(dx, expected)


def test_maxpool_propagates_nan_and_points_argmax_at_it():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    x[0, 0, 0, 1] = np.nan
    y, argmax = ops.max_pool2d(x, 2)
    assert np.isnan(y[0, 0, 0, 0]) and argmax[0, 0, 0, 0] == 1
    np.testing.assert_array_equal(y[0, 0].ravel()[1:], [7, 13, 15])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=3, stride=1, padding=1)])
def test_maxpool_values_alone_are_the_values_with_argmax(dtype, kw):
    # inference skips the indices (and the 2x2 kernel then vectorises): the
    # same values, ties between -0.0 and 0.0 and NaN windows included
    rng = np.random.default_rng(5)
    x = rng.integers(-2, 3, size=(3, 4, 9, 10)).astype(dtype)
    x[rng.random(x.shape) < 0.2] = -0.0
    x[rng.random(x.shape) < 0.03] = np.nan
    x[0, 0, :2, :2] = [[np.inf, -np.inf], [1.0, -np.inf]]
    y, argmax = ops.max_pool2d(x, **kw)
    values = ops.max_pool2d(x, **kw, return_argmax=False)
    assert isinstance(values, np.ndarray) and values.dtype == dtype
    np.testing.assert_array_equal(np.isnan(values), np.isnan(y))
    finite = ~np.isnan(y)
    np.testing.assert_array_equal(np.signbit(values[finite]), np.signbit(y[finite]))
    np.testing.assert_array_equal(values, y)
    np.testing.assert_array_equal(y.reshape(3, 4, -1), np.take_along_axis(
        x.reshape(3, 4, -1), argmax.reshape(3, 4, -1), axis=2))


def _first_max_last_nan(windows):
    """Plain-loop oracle of a window's winner over its values in row-major order:
    the first maximum, unless some value is NaN, when the last NaN wins."""
    best = 0
    for k, v in enumerate(windows):
        if v > windows[best] or np.isnan(v):
            best = k
    return best


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("path", [p for p in ops.SIMD_PATHS if _gemm.cpu_supports(p)])
def test_maxpool_2x2_with_argmax_matches_loop_reference_on_every_simd_path(simd_path, path, dtype):
    # the SIMD paths pool eight (four) windows a step with vector blends and
    # the scalar loop does a row's last few: widths of 19 windows (and an odd
    # input column left over) reach both, on ties, -0.0 against 0.0, NaN, +-inf
    simd_path(path)
    rng = np.random.default_rng(8)
    x = rng.integers(-2, 3, size=(2, 3, 8, 39)).astype(dtype)
    x[rng.random(x.shape) < 0.25] = -0.0
    x[rng.random(x.shape) < 0.05] = np.nan
    x[rng.random(x.shape) < 0.05] = np.inf
    x[rng.random(x.shape) < 0.05] = -np.inf
    x[0, 0, 0, :8] = [np.nan, 1.0, 2.0, np.nan, -np.inf, -np.inf, 0.0, -0.0]
    x[0, 0, 1, :8] = [np.nan, 3.0, np.nan, 1.0, -np.inf, -np.inf, -0.0, 0.0]
    y, argmax = ops.max_pool2d(x, 2)
    assert y.shape == argmax.shape == (2, 3, 4, 19)
    expected = np.empty(y.shape, dtype=np.intp)
    for n, c, i, j in np.ndindex(y.shape):
        window = [x[n, c, 2 * i + r, 2 * j + q] for r in (0, 1) for q in (0, 1)]
        k = _first_max_last_nan(window)
        expected[n, c, i, j] = (2 * i + k // 2) * x.shape[3] + 2 * j + k % 2
    np.testing.assert_array_equal(argmax, expected)
    chosen = np.take_along_axis(x.reshape(2, 3, -1), argmax.reshape(2, 3, -1), axis=2)
    np.testing.assert_array_equal(y.reshape(2, 3, -1).view(f"u{x.itemsize}"),
                                  chosen.view(f"u{x.itemsize}"))  # the very bits
    assert argmax[0, 0, 0, 0] == 39 and argmax[0, 0, 0, 1] == 41  # the last NaN
    assert argmax[0, 0, 0, 2] == 4 and argmax[0, 0, 0, 3] == 6  # ties: the first


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("path", [p for p in ops.SIMD_PATHS if _gemm.cpu_supports(p)])
@pytest.mark.parametrize("shape", [(2, 3, 8, 39), (2, 2, 7, 33), (1, 2, 5, 2)])
def test_maxpool_2x2_backward_writes_the_windows_whole_as_the_scattered_adds(
        simd_path, path, dtype, shape):
    # training's 2x2 backward writes each window whole (eight or four at a
    # time on the SIMD paths, the rest of a row in a loop): the bits of adding
    # dy into zeros at the argmax (-0.0 becomes +0.0), zeros in an odd
    # height's last row and an odd width's last column, with and without the
    # ReLU after the pooling, whose gradient is dy where y > 0 (not on 0, -0.0, NaN)
    simd_path(path)
    rng = np.random.default_rng(9)
    x = rng.integers(-2, 3, size=shape).astype(dtype)
    x[rng.random(x.shape) < 0.1] = np.nan
    g = _engine.pool_geometry(x.shape, 2, None, 0)
    dy = rng.standard_normal((shape[0], shape[1], g["oh"], g["ow"])).astype(dtype)
    dy[rng.random(dy.shape) < 0.2] = -0.0
    for relu in (False, True):
        y, argmax = _engine.max_pool2d(x, g, True, relu=relu)
        assert not relu or (y[~np.isnan(y)] >= 0).all()
        masked = dy * (y > 0) if relu else dy
        expected = ops.max_pool2d_backward(masked, argmax, x.shape)  # the scattered adds
        dx = np.full(x.shape, 7.0, dtype=dtype)  # stale values must all be overwritten
        _engine.max_pool2d_backward(dy, argmax, x.shape, dx, relu_y=y if relu else None, g=g)
        np.testing.assert_array_equal(dx.view(f"u{x.itemsize}"), expected.view(f"u{x.itemsize}"))
        general = _engine.max_pool2d_backward(dy, argmax, x.shape, relu_y=y if relu else None)
        np.testing.assert_array_equal(general.view(f"u{x.itemsize}"),
                                      expected.view(f"u{x.itemsize}"))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("path", [p for p in ops.SIMD_PATHS if _gemm.cpu_supports(p)])
@pytest.mark.parametrize("shape, kernel, padding", [
    ((3, 3, 32, 32), (32, 3, 3), 1),    # wide's first block: 16 windows a row, 32 filters
    ((2, 2, 9, 35), (7, 3, 3), 1),      # odd height and width: a row and a column in no window
    ((2, 3, 12, 12), (5, 5, 5), 0),     # 'valid': 8x8 outputs, windows in part tiles
    ((2, 3, 14, 14), (4, 3, 3), 1),     # 7 rows of 7 windows: two rows a step, the last alone
    ((2, 2, 16, 10), (3, 3, 3), 1),     # rows of 5 windows: two a step in floats, one in doubles
])
def test_convolution_pooled_as_it_goes_has_the_bits_of_pooling_its_output_both_ways(
        simd_path, path, dtype, shape, kernel, padding):
    # a stride-1 convolution can max-pool each sample's output while it is in
    # cache (_engine.conv2d's pool2): the bits and the argmax of pooling the
    # written-out output, bias added first, with and without the ReLU after;
    # small integers make ties in the windows, and NaN inputs NaN outputs.
    # Backward (unpool), the weights' gradient forms the output's gradient
    # sample by sample: the bits of the pooling's backward, then the conv's
    simd_path(path)
    rng = np.random.default_rng(11)
    x = rng.integers(-1, 2, size=shape).astype(dtype)
    x[0, 0, 3, 4] = np.nan
    w = rng.integers(-1, 2, size=(kernel[0], shape[1] * kernel[1] * kernel[2])).astype(dtype)
    b = rng.integers(-2, 3, size=kernel[0]).astype(dtype) / 4
    g = _engine.geometry(x.shape, kernel[1:], 1, padding, 1)
    y = _engine.conv2d(x, w, b, g)
    pg = _engine.pool_geometry(y.shape, 2, None, 0)
    for relu in (False, True):
        expected, expected_argmax = _engine.max_pool2d(y, pg, True, relu=relu)
        assert np.isnan(expected).any() and (expected_argmax[..., :1] % 2 == 0).any()
        argmax = np.empty(expected.shape, dtype=np.intp)
        pooled = _engine.conv2d(x, w, b, g, pool2=(relu, argmax))
        inference = _engine.conv2d(x, w, b, g, pool2=(relu, None))
        bits = f"u{x.itemsize}"
        np.testing.assert_array_equal(pooled.view(bits), expected.view(bits))
        np.testing.assert_array_equal(argmax, expected_argmax)
        np.testing.assert_array_equal(inference.view(bits), expected.view(bits))
        dy = rng.standard_normal(pooled.shape).astype(dtype)
        dy[rng.random(dy.shape) < 0.2] = -0.0
        relu_y = pooled if relu else None
        dy_full = _engine.max_pool2d_backward(dy, argmax, y.shape, relu_y=relu_y, g=pg)
        for need_dx in (False, True):
            x_finite = np.nan_to_num(x)  # NaN would leave no bits to compare in dw
            expected = _engine.conv2d_backward(dy_full, x_finite, w, g, need_dx)
            got = _engine.conv2d_backward(dy, x_finite, w, g, need_dx, unpool=(argmax, relu_y))
            for a, e in zip(got, expected):
                assert (a is None) == (e is None)
                if a is not None:
                    np.testing.assert_array_equal(a.view(bits), e.view(bits))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("path", [p for p in ops.SIMD_PATHS if _gemm.cpu_supports(p)])
@pytest.mark.parametrize("shape, kernel, padding", [
    ((3, 1, 28, 28), (32, 3, 3), 1),    # the default net's first block: one channel, 9 taps
    ((2, 8, 14, 14), (40, 3, 3), 1),    # 14 x 14: 196 positions, tiles of 8 leave 4; 72 taps
    ((2, 3, 9, 11), (19, 3, 3), 1),     # odd sides (a row and a column in no window), odd filters
    ((1, 2, 12, 12), (17, 5, 5), 0),    # 'valid' 8 x 8, 17 filters: a part vector of them
])
def test_convolution_by_positions_has_the_bits_of_the_implicit_product(
        simd_path, path, dtype, shape, kernel, padding, monkeypatch):
    # a convolution may compute its product positions by filters
    # (_engine.positions_first; pooled only without the argmax, at inference):
    # the same chains, sums and choices, so the bits of the implicit product's
    # output, pooled or not, with and without bias, residual and ReLU, ties,
    # -0.0 and NaN included; forced here on shapes it takes and not
    simd_path(path)
    monkeypatch.setattr(_engine, "POSITIONS_FIRST_MIN_TAPS", 0)  # unpooled too, any taps
    rng = np.random.default_rng(5)
    x = rng.integers(-1, 2, size=shape).astype(dtype)
    x[0, 0, 2, 3] = np.nan
    x[-1, -1, 1, 1] = -0.0
    w = rng.integers(-1, 2, size=(kernel[0], shape[1] * kernel[1] * kernel[2])).astype(dtype)
    g = _engine.geometry(x.shape, kernel[1:], 1, padding, 1)
    bits = f"u{x.itemsize}"
    for b in (None, rng.integers(-2, 3, size=kernel[0]).astype(dtype) / 4):
        y = _engine.conv2d(x, w, b, g)
        pg = _engine.pool_geometry(y.shape, 2, None, 0)
        for relu in (False, True):
            expected = _engine.max_pool2d(y, pg, False, relu=relu)
            monkeypatch.setattr(_engine, "positions_first", lambda *args: False)
            implicit = _engine.conv2d(x, w, b, g, pool2=(relu, None))
            monkeypatch.setattr(_engine, "positions_first", lambda *args: True)
            plan = _engine.conv2d_plan(g, kernel[0], x.dtype, x.shape[0])
            assert plan.implicit.by_position is not None and plan.implicit.by_position.unpooled
            by_positions = _engine.conv2d(x, w, b, g, pool2=(relu, None), plan=plan)
            np.testing.assert_array_equal(implicit.view(bits), expected.view(bits))
            np.testing.assert_array_equal(by_positions.view(bits), expected.view(bits))
            # training's pooling keeps its argmax: the implicit product, the same values
            argmax = np.empty(expected.shape, dtype=np.intp)
            pooled = _engine.conv2d(x, w, b, g, pool2=(relu, argmax), plan=plan)
            np.testing.assert_array_equal(pooled.view(bits), expected.view(bits))
            # unpooled, with a residual (a block's shortcut) and without: the bias,
            # the residual and the ReLU in rows_out's order, a sample's planes whole
            for residual in (None, rng.integers(-2, 3, size=y.shape).astype(dtype) / 2):
                monkeypatch.setattr(_engine, "positions_first", lambda *args: False)
                want = _engine.conv2d(x, w, b, g, relu=relu, residual=residual)
                monkeypatch.setattr(_engine, "positions_first", lambda *args: True)
                got = _engine.conv2d(x, w, b, g, relu=relu, residual=residual, plan=plan)
                np.testing.assert_array_equal(got.view(bits), want.view(bits))
        # the input gradient of a stride-1 convolution is one too (of dy)
        dy = rng.integers(-2, 3, size=y.shape).astype(dtype)
        monkeypatch.setattr(_engine, "positions_first", lambda *args: False)
        want = _engine.conv2d_backward(dy, np.nan_to_num(x), w, g, True)[0]
        monkeypatch.setattr(_engine, "positions_first", lambda *args: True)
        got = _engine.conv2d_backward(dy, np.nan_to_num(x), w, g, True)[0]
        np.testing.assert_array_equal(got.view(bits), want.view(bits))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("path", [p for p in ops.SIMD_PATHS if _gemm.cpu_supports(p)])
@pytest.mark.parametrize("shape, filters, kernel, stride", [
    ((3, 4, 9, 8), 5, (3, 3), 2),    # ResNet's stride-2 'same': read as it is
    ((2, 3, 7, 7), 4, (2, 3), 2),    # a phase of one tap row
    ((2, 3, 6, 5), 4, (2, 2), 1),    # stride 1, even kernel: padded for the ways it takes
    ((2, 1, 7, 7), 40, (3, 3), 2),   # 9 taps by 40 filters: im2col's product (float64), padded
])
def test_convolution_backward_of_an_input_without_same_paddings_last_rows(
        simd_path, path, dtype, shape, filters, kernel, stride):
    # 'same' padding at a stride adds a bottom row and a right column; training
    # leaves them out of x (the kernels read them as zeros): the gradients have
    # the bits of the padded x's, dx without the extra row and column
    simd_path(path)
    rng = np.random.default_rng(3)
    n, c, h, w = shape
    x = rng.standard_normal(shape).astype(dtype)
    x[0, 0, 1, 1] = np.nan
    padded = np.pad(x, ((0, 0), (0, 0), (0, 1), (0, 1)))
    g = _engine.geometry(padded.shape, kernel, stride, ((kernel[0] - 1) // 2,
                                                         (kernel[1] - 1) // 2), 1)
    wt = rng.standard_normal((filters, c * kernel[0] * kernel[1])).astype(dtype)
    dy = rng.standard_normal((n, filters, g["oh"], g["ow"])).astype(dtype)
    bits = f"u{x.itemsize}"
    np.testing.assert_array_equal(_engine.conv2d(x, wt, None, g).view(bits),
                                  _engine.conv2d(padded, wt, None, g).view(bits))
    for need_dx in (False, True):
        want_dx, want_dw, want_db = _engine.conv2d_backward(dy, padded, wt, g, need_dx)
        buffer = np.full(x.shape, 7, dtype) if need_dx else None
        dx, dw, db = _engine.conv2d_backward(dy, x, wt, g, need_dx, dx=buffer)
        np.testing.assert_array_equal(dw.view(bits), want_dw.view(bits))
        np.testing.assert_array_equal(db.view(bits), want_db.view(bits))
        if need_dx:
            assert dx is buffer
            np.testing.assert_array_equal(dx.view(bits), want_dx[:, :, :h, :w].view(bits))
        else:
            assert dx is None


def _phases_assigned(dy, w, g, size):
    """A strided convolution's dx from its phases' products, each assigned to its
    strided slice by numpy: what _conv.transposed_phases must equal."""
    f, c, kh, kw = w.shape[0], g["c"], g["kh"], g["kw"]
    sh, sw, ph, pw = g["sh"], g["sw"], g["ph"], g["pw"]
    dx = np.full((dy.shape[0], c) + size, np.nan, dtype=dy.dtype)
    w4 = w.reshape(f, c, kh, kw)
    for a in range(sh):
        y0 = (a - ph) % sh
        for b in range(sw):
            x0 = (b - pw) % sw
            target = dx[:, :, y0::sh, x0::sw]
            taps = w4[:, :, a::sh, b::sw]
            gt = _engine.geometry(dy.shape, taps.shape[2:], 1,
                                  (taps.shape[2] - 1, taps.shape[3] - 1), 1)
            phase = _engine.conv2d(dy, _engine._turned(taps), None, gt)
            phase = phase[:, :, (y0 + ph) // sh:, (x0 + pw) // sw:]
            rows, cols = min(target.shape[2], phase.shape[2]), min(target.shape[3], phase.shape[3])
            target[...] = 0
            target[:, :, :rows, :cols] = phase[:, :, :rows, :cols]
    return dx


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("path", [p for p in ops.SIMD_PATHS if _gemm.cpu_supports(p)])
@pytest.mark.parametrize("shape, filters, kernel, stride, padding, size", [
    ((3, 4, 9, 9), 5, (3, 3), (2, 2), (1, 1), (8, 8)),  # ResNet's 'same': x short
    ((2, 3, 9, 8), 4, (3, 3), (3, 2), (1, 0), (9, 8)),  # phases of 1 and 2 taps
    ((2, 3, 8, 9), 4, (2, 3), (2, 2), (0, 1), (8, 9)),  # rows past the phases' reach
    ((2, 2, 11, 7), 3, (5, 3), (2, 2), (2, 1), (11, 7)),
    ((2, 3, 10, 11), 4, (3, 3), (2, 3), (1, 1), (10, 11)),  # not merged: a width stride of 3
])
def test_strided_input_gradient_puts_its_phases_in_place_and_adds_the_residual(
        simd_path, path, dtype, shape, filters, kernel, stride, padding, size):
    # _conv.transposed_phases: each phase's product put in its rows and columns, zeros
    # where none reaches, then residual + dx: the bits of numpy's strided
    # assignments and _engine.add, on every SIMD path (its copies are per path)
    simd_path(path)
    rng = np.random.default_rng(5)
    g = _engine.geometry(shape, kernel, stride, padding, 1)
    x = rng.standard_normal((shape[0], shape[1]) + size).astype(dtype)
    w = rng.standard_normal((filters, shape[1] * kernel[0] * kernel[1])).astype(dtype)
    dy = rng.standard_normal((shape[0], filters, g["oh"], g["ow"])).astype(dtype)
    residual = rng.standard_normal(x.shape).astype(dtype)
    residual[0, 0, 0, :3] = np.nan, -0.0, np.inf
    bits = f"u{x.itemsize}"
    want = _phases_assigned(dy, w, g, size)
    dx = _engine.conv2d_backward(dy, x, w, g, True, dx=np.full(x.shape, 7, dtype))[0]
    np.testing.assert_array_equal(dx.view(bits), want.view(bits))
    summed = _engine.conv2d_backward(dy, x, w, g, True, residual=residual)[0]
    np.testing.assert_array_equal(summed.view(bits),
                                  _engine.add(residual, want, want.copy()).view(bits))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("path", [p for p in ops.SIMD_PATHS if _gemm.cpu_supports(p)])
@pytest.mark.parametrize("shape, size, stride, merged", [
    ((3, 4, 9, 9), (8, 8), 2, True),      # ResNet's: 'same' makes the body's x short
    ((2, 3, 9, 7), (9, 7), 2, True),      # odd sizes: one more even row and column
    ((2, 3, 10, 11), (10, 11), 3, False),  # a stride of 3: added as an array
])
def test_a_shortcuts_phase_gradient_is_added_to_its_phase_with_the_arrays_bits(
        simd_path, path, dtype, shape, size, stride, merged):
    # a residual block's 1x1 strided shortcut returns its dx as the one phase it
    # reads (_engine.PhaseGradient), which the strided body's input gradient
    # adds as it puts that phase (_conv.transposed_phases' phase_residual): the
    # bits of the shortcut's dx written out whole, then added
    simd_path(path)
    rng = np.random.default_rng(8)
    n, c = shape[:2]
    x = rng.standard_normal((n, c) + size).astype(dtype)
    g = _engine.geometry(shape, (3, 3), stride, 1, 1)
    w = rng.standard_normal((5, c * 9)).astype(dtype)
    dy = rng.standard_normal((n, 5, g["oh"], g["ow"])).astype(dtype)
    g_short = _engine.geometry(x.shape, (1, 1), stride, 0, 1)
    w_short = rng.standard_normal((6, c)).astype(dtype)
    dy_short = rng.standard_normal((n, 6, g_short["oh"], g_short["ow"])).astype(dtype)
    bits = f"u{x.itemsize}"
    whole = _engine.conv2d_backward(dy_short, x, w_short, g_short, True)[0]
    phase, dw, _ = _engine.conv2d_backward(dy_short, x, w_short, g_short, True, phase_dx=True)
    assert isinstance(phase, _engine.PhaseGradient)
    assert phase.values.shape == (n, c, g_short["oh"], g_short["ow"])
    np.testing.assert_array_equal(phase.dense().view(bits), whole.view(bits))
    np.testing.assert_array_equal(
        dw.view(bits), _engine.conv2d_backward(dy_short, x, w_short, g_short, False)[1].view(bits))
    layout = _engine.phases_layout(5, g["oh"], g["ow"], c, *size, 3, 3, stride, stride, 1, 1,
                                   x.dtype.char, _gemm.get_path())
    assert layout.merged == merged
    want = _engine.conv2d_backward(dy, x, w, g, True, residual=whole)[0]
    got = _engine.conv2d_backward(dy, x, w, g, True, residual=phase)[0]
    np.testing.assert_array_equal(got.view(bits), want.view(bits))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("path", [p for p in ops.SIMD_PATHS if _gemm.cpu_supports(p)])
@pytest.mark.parametrize("shape, filters, along", [
    ((3, 16, 16, 16), 16, True),   # tiles of a row each: straight into dx
    ((3, 8, 10, 10), 16, True),    # tiles across rows: through the product
    ((2, 64, 8, 8), 64, True),     # ResNet's 8 x 8 maps (split tiles in float32)
    ((2, 32, 14, 14), 32, False),  # a product by positions: a convolution of its own
])
def test_input_gradient_computed_along_the_weights_has_the_convolutions_bits(
        simd_path, monkeypatch, path, dtype, shape, filters, along):
    # _conv.conv2d_backward_implicit computes a stride-1 dx sample by sample
    # beside dw (_engine.input_gradient_along): the bits of the convolution of
    # dy, transposed_convolution, and of add(residual, dx) after it (64
    # channels would take Winograd's gradients: test_winograd2d.py)
    monkeypatch.setattr(_engine, "WINOGRAD2D_GRADIENT_MIN_PRODUCT", 10**9)
    simd_path(path)
    rng = np.random.default_rng(6)
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal((filters, shape[1] * 9)).astype(dtype)
    g = _engine.geometry(x.shape, (3, 3), 1, 1, 1)
    dy = rng.standard_normal((shape[0], filters, g["oh"], g["ow"])).astype(dtype)
    dy[0, 0, 0, :2] = np.nan, -0.0
    residual = rng.standard_normal(shape).astype(dtype)
    residual[0, 1, 1, :2] = -0.0, np.inf
    if path == "avx512":  # which shapes take a product by positions depends on the tiles
        assert (_engine.input_gradient_along(dy, w, g, None, None, 2) is not None) == along
    bits = f"u{x.itemsize}"
    want = _engine.transposed_convolution(dy, w, g)
    dx = _engine.conv2d_backward(dy, x, w, g, True, dx=np.full(shape, 7, dtype))[0]
    np.testing.assert_array_equal(dx.view(bits), want.view(bits))
    summed = _engine.conv2d_backward(dy, x, w, g, True, residual=residual)[0]
    np.testing.assert_array_equal(summed.view(bits), _engine.add(residual, want, want).view(bits))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_convolution_backward_without_the_bias_gradient_has_the_weights_bits(dtype):
    # a convolution without a bias (before a batch norm) has no use for db: the
    # weights' implicit product leaves it out, dw and dx unchanged
    rng = np.random.default_rng(8)
    x = rng.standard_normal((5, 3, 8, 8)).astype(dtype)
    w = rng.standard_normal((6, 27)).astype(dtype)
    g = _engine.geometry(x.shape, (3, 3), 1, 1, 1)
    dy = rng.standard_normal((5, 6, 8, 8)).astype(dtype)
    for need_dx in (False, True):
        dx, dw, db = _engine.conv2d_backward(dy, x, w, g, need_dx)
        dx_alone, dw_alone, none = _engine.conv2d_backward(dy, x, w, g, need_dx, need_db=False)
        assert none is None and db is not None
        np.testing.assert_array_equal(dw_alone, dw)
        if need_dx:
            np.testing.assert_array_equal(dx_alone, dx)


def test_positions_first_where_the_implicit_product_computes_columns_it_drops():
    # the choice is by shape: 14 x 14 and 28 x 28 maps (columns between rows
    # in the implicit tiles) go by positions, 16 x 16 and 32 x 32 (none) not,
    # nor strides; either way the same bits (the test above)
    def takes(c, f, side, stride=1):
        g = _engine.geometry((4, c, side, side), (3, 3), stride, 1, 1)
        layout = _engine.padded_image(g, f, np.float32)[0]
        return _engine.positions_first(g, f, np.float32, layout)

    assert takes(32, 64, 14) and takes(1, 32, 28)
    assert not takes(32, 64, 16) and not takes(16, 32, 32) and not takes(32, 64, 14, stride=2)
    # unpooled, only with enough taps to pay for writing the output transposed
    for c, unpooled in ((1, False), (32, True)):
        g = _engine.geometry((4, c, 28, 28), (3, 3), 1, 1, 1)
        plan = _engine.conv2d_plan(g, 32, np.float32, 4, winograd=False)  # 32 channels'd take it
        assert plan.implicit.by_position.unpooled == unpooled


def test_avgpool_counts_padding_in_the_divisor():
    y = ops.avg_pool2d(np.ones((1, 1, 3, 3)), 3, stride=1, padding=1)
    np.testing.assert_allclose(y[0, 0], [[4 / 9, 6 / 9, 4 / 9], [6 / 9, 1, 6 / 9], [4 / 9, 6 / 9, 4 / 9]], rtol=1e-15)


def _finished(call, seconds=30):
    """call()'s result, failing if it still runs after ``seconds``: the geometries
    below cost microseconds but ran for hours when a window's every position
    was visited. (A liveness check, not a timing: speed lives in benchmarks/.)"""
    result = []

    def run():
        try:
            result.append((call(), None))
        except Exception as error:  # raised below, in the test's thread
            result.append((None, error))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert result, f"still running after {seconds} s"
    value, error = result[0]
    if error is not None:
        raise error
    return value


def ref_avg_pool2d_clipped(x, dy, kernel_size, stride, padding):
    """Average pooling's y and dx with the kernels' bits: each window's sum from +0.0
    over the input it overlaps in row-major order, times 1 / area rounded to x's
    dtype; each dy times that, added to dx in the outputs' order. Windows of any size."""
    (kh, kw), (sh, sw), (ph, pw) = _pair(kernel_size), _pair(stride), _pair(padding)
    n, c, h, w = x.shape
    t = x.dtype.type
    inv_area = t(1.0 / (kh * kw))
    y = np.empty(dy.shape, dtype=x.dtype)
    dx = np.zeros(x.shape, dtype=x.dtype)
    for n_, c_, i, j in np.ndindex(dy.shape):
        rows = range(max(i * sh - ph, 0), min(i * sh - ph + kh, h))
        cols = range(max(j * sw - pw, 0), min(j * sw - pw + kw, w))
        s, d = t(0), dy[n_, c_, i, j] * inv_area
        for r in rows:
            for q in cols:
                s = s + x[n_, c_, r, q]
                dx[n_, c_, r, q] += d
        y[n_, c_, i, j] = s * inv_area
    return y, dx


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kernel_size, stride, padding", [
    (2**30, 1, 2**29),                    # 4 x 5 windows of 2**60 positions, 3 x 4 inside
    ((2**30, 3), (2**29, 2), (2**29, 1)),
    ((2, 2**30), 1, (1, 2**29 - 1)),  # 3 columns of windows, one past the input
])
def test_avgpool_sums_the_window_clipped_to_the_input_with_the_same_bits(
        dtype, kernel_size, stride, padding):
    # padding counts in the divisor as zeros and adds nothing to the sum: the
    # window clipped to the input, in the same order (-0.0 included: the sum
    # starts at +0.0 either way)
    rng = np.random.default_rng(17)
    x = rng.standard_normal((2, 2, 3, 4)).astype(dtype)
    x[0, 0] = -0.0
    y = _finished(lambda: ops.avg_pool2d(x, kernel_size, stride, padding))
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = _finished(lambda: ops.avg_pool2d_backward(dy, x.shape, kernel_size, stride, padding))
    y_ref, dx_ref = ref_avg_pool2d_clipped(x, dy, kernel_size, stride, padding)
    bits = f"u{x.itemsize}"
    np.testing.assert_array_equal(y.view(bits), y_ref.view(bits))
    np.testing.assert_array_equal(dx.view(bits), dx_ref.view(bits))


@pytest.mark.parametrize("kernel_size, stride, padding", [
    (3, 1, 1), (2, 2, 0), ((3, 2), (1, 3), (1, 0)), (5, 2, 2), (3, None, 1)])
def test_avgpool_clipped_windows_have_the_bits_of_the_loop_reference(kernel_size, stride, padding):
    for dtype in (np.float32, np.float64):
        rng = np.random.default_rng(3)
        x = rng.standard_normal((2, 3, 7, 6)).astype(dtype)
        x[1, 2] = -0.0
        y = ops.avg_pool2d(x, kernel_size, stride, padding)
        dy = rng.standard_normal(y.shape).astype(dtype)
        dx = ops.avg_pool2d_backward(dy, x.shape, kernel_size, stride, padding)
        y_ref, dx_ref = ref_avg_pool2d_clipped(x, dy, kernel_size,
                                               kernel_size if stride is None else stride, padding)
        bits = f"u{x.itemsize}"
        np.testing.assert_array_equal(y.view(bits), y_ref.view(bits))
        np.testing.assert_array_equal(dx.view(bits), dx_ref.view(bits))
        assert_close(y.astype(float), ref_avg_pool2d(x.astype(float), kernel_size, stride, padding),
                     rtol=1e-5)


#: (x shape, w shape, groups, stride, padding, dilation) that read a few rows
#: and columns of an input padded to thousands
ABSURD_CONVOLUTIONS = {
    "stride and padding 1000": ((2, 2, 5, 6), (3, 2, 3, 2), 1, 1000, 1000, 1),
    "depthwise": ((2, 2, 5, 6), (4, 1, 3, 3), 2, 1000, 1000, 1),
    "grouped": ((1, 4, 5, 5), (4, 2, 2, 3), 2, 1000, (1000, 999), 1),
    "dilation and padding 1024": ((2, 3, 5, 5), (2, 3, 3, 3), 1, 1, 1024, 1024),
    "stride only, 1x1": ((1, 3, 3, 4), (2, 3, 1, 1), 1, 3000, 0, 1),
    "overlapping along the width": ((1, 3, 5, 9), (2, 3, 3, 3), 1, (1000, 1), (1000, 1), 1),
}


def _with_peak(call):
    """``(call(), the peak bytes that numpy and Python held during it)``."""
    tracemalloc.start()
    try:
        result = call()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("name", ABSURD_CONVOLUTIONS)
def test_conv_workspace_follows_the_output_not_the_stride_padding_or_dilation(name):
    # the implicit product and the depthwise kernels lay out the padded input,
    # split by stride phase: 3000 x 3000 per channel and thread for the first
    # geometry (144 MB) for 3 x 3 outputs; they get the rows and columns the
    # windows read (_engine.compact_geometry)
    x_shape, w_shape, groups, stride, padding, dilation = ABSURD_CONVOLUTIONS[name]
    rng = np.random.default_rng(7)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[0])
    args = (stride, padding, dilation)
    g = _engine.geometry(x_shape, w_shape[2:], *args)
    dy = rng.standard_normal((x_shape[0], w_shape[0], g["oh"], g["ow"]))
    (y, (dx, dw, db)), peak = _with_peak(lambda: (
        ops.conv2d(x, w, b, *args, groups=groups),
        ops.conv2d_backward(dy, x, w, *args, groups=groups)))
    assert peak < 2**20
    if groups == 1:
        assert_close(y, ref_conv2d(x, w, b, *args))
        for got, want in zip((dx, dw, db), ref_conv2d_backward(dy, x, w, *args)):
            assert_close(got, want)
    else:  # each group is a convolution of its channels
        cg, fg = x_shape[1] // groups, w_shape[0] // groups
        for k in range(groups):
            xs, fs = slice(k * cg, (k + 1) * cg), slice(k * fg, (k + 1) * fg)
            assert_close(y[:, fs], ref_conv2d(x[:, xs], w[fs], b[fs], *args))
            want = ref_conv2d_backward(dy[:, fs], x[:, xs], w[fs], *args)
            for got, want_k in zip((dx[:, xs], dw[fs], db[fs]), want):
                assert_close(got, want_k)


def test_conv1d_workspace_follows_the_output_not_the_stride_and_padding():
    rng = np.random.default_rng(8)
    x, w = rng.standard_normal((2, 3, 5)), rng.standard_normal((4, 3, 3))
    dy = rng.standard_normal((2, 4, 3))
    (y, (dx, dw, db)), peak = _with_peak(lambda: (
        ops.conv1d(x, w, None, 10**6, 10**6), ops.conv1d_backward(dy, x, w, 10**6, 10**6)))
    assert peak < 2**20
    x4, w4 = x[:, :, None], w[:, :, None]
    args = ((1, 10**6), (0, 10**6), 1)
    assert_close(y, ref_conv2d(x4, w4, None, *args)[:, :, 0])
    for got, want in zip((dx, dw, db), ref_conv2d_backward(dy[:, :, None], x4, w4, *args)):
        assert_close(got, want.reshape(got.shape))


#: (x shape, w shape, groups, stride, padding, dilation) that compact_geometry
#: gathers, whose whole padded input is small enough to compute too
GATHERED_CONVOLUTIONS = [
    ((2, 2, 5, 6), (3, 2, 3, 2), 1, 100, 100, 1),
    ((3, 20, 5, 7), (17, 20, 3, 3), 1, (100, 3), (100, 1), 1),  # one axis wastes
    ((2, 3, 5, 7), (4, 3, 1, 1), 1, 300, 0, 1),
    ((2, 2, 5, 6), (4, 1, 3, 3), 2, 100, 100, 1),
    ((2, 4, 5, 5), (4, 2, 2, 3), 2, (100, 3), (100, 1), 1),
    ((2, 3, 5, 5), (2, 3, 3, 3), 1, 1, 128, 128),
    ((2, 2, 7, 7), (3, 2, 2, 2), 1, 300, 299, 1),
    # the windows overlap along the width: the height alone, a row between windows
    ((2, 3, 5, 9), (4, 3, 3, 3), 1, (100, 1), (100, 1), 1),
    ((2, 4, 5, 9), (4, 2, 3, 2), 2, (100, 1), (100, 0), 1),
    ((2, 3, 5, 9), (2, 3, 3, 3), 1, (1, 2), (128, 1), (128, 1)),
]


@pytest.mark.parametrize("path", [p for p in ops.SIMD_PATHS if _gemm.cpu_supports(p)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("values", ["integers", "normal"])
def test_gathered_convolution_has_the_bits_of_the_whole_padded_input(
        simd_path, path, dtype, values, monkeypatch):
    # computed both ways: the same products in the same chains; integers and
    # zeros make -0.0 products, normal values sums whose bits depend on their order
    simd_path(path)
    rng = np.random.default_rng(11)
    bits = f"u{np.dtype(dtype).itemsize}"
    gathering = _engine.COMPACT_MIN_EXTENT
    for x_shape, w_shape, groups, stride, padding, dilation in GATHERED_CONVOLUTIONS:
        args = (stride, padding, dilation)
        monkeypatch.setattr(_engine, "COMPACT_MIN_EXTENT", gathering)
        g = _engine.geometry(x_shape, w_shape[2:], stride, padding, dilation)
        assert _engine.compact_geometry(g) is not None
        x = rng.integers(-1, 2, size=x_shape).astype(dtype)
        w = rng.integers(-1, 2, size=w_shape).astype(dtype)
        if values == "normal":
            x = (x * rng.standard_normal(x_shape)).astype(dtype)
            w = (w * rng.standard_normal(w_shape)).astype(dtype)
        x[0, 0, 0, 0] = -0.0
        b = rng.integers(-2, 3, size=w_shape[0]).astype(dtype) / 4
        y_shape = (x_shape[0], w_shape[0], g["oh"], g["ow"])
        dy = (np.ones(y_shape) if values == "integers" else rng.standard_normal(y_shape))
        dy = dy.astype(dtype)
        dy.flat[::2] = -0.0
        runs = []
        for extent in (gathering, 2**62):  # gathered, then not
            monkeypatch.setattr(_engine, "COMPACT_MIN_EXTENT", extent)
            y = ops.conv2d(x, w, b, *args, groups=groups)
            run = [y, ops.conv2d(x, -w, None, *args, groups=groups),
                   *ops.conv2d_backward(dy, x, w, *args, groups=groups)]
            if groups == 1:
                cols = np.empty((x_shape[0], x_shape[1] * w_shape[2] * w_shape[3],
                                 y.shape[2] * y.shape[3]), dtype)
                run += [ops.conv2d(x, w, b, *args, cols=cols),
                        *ops.conv2d_backward(dy, x, w, *args, cols=cols)]
            runs.append(run)
        for gathered, whole in zip(*runs):
            np.testing.assert_array_equal(gathered.view(bits), whole.view(bits))


def test_ordinary_convolutions_are_not_gathered():
    # a network's geometries read most of their padded input: computed as they were
    for n, c, h, w, f, k, s, p, d in CONV_GEOMETRIES.values():
        assert _engine.compact_geometry(_engine.geometry((n, c, h, w), k, s, p, d)) is None
    for h, k, s, p in [(224, 7, 2, 3), (224, 11, 4, 2), (32, 1, 2, 0), (8, 3, 1, 1), (1, 3, 1, 1),
                       (1, 1, 8, 0), (28, 5, 1, 2), (512, 5, 1, 2), (4, 1, 16, 0)]:
        g = _engine.geometry((1, 3, h, h), k, s, p, 1)
        assert _engine.compact_geometry(g) is None
    # nor those with an element under two taps whose dx is not folded from
    # the columns: its terms might be summed in another order (the windows
    # overlap along the width here)
    g = _engine.geometry((1, 3, 5, 9), 3, (1000, 1), (1000, 1), 1)
    assert _engine.compact_geometry(g) is not None
    assert _engine.compact_geometry(g, depthwise=True) is None
    g = _engine.geometry((1, 3, 5, 9), 3, 1, (1000, 1), (1000, 1))
    assert _engine.compact_geometry(g) is None  # a stride of 1: dx transposed


#: (x shape, w shape, groups) of convolutions of a stride, padding and
#: dilation far beyond their input: windows 0 and 1 share row 0 and column 0
SHARED_ELEMENT_CONVOLUTIONS = {
    "dense": ((2, 2, 5, 6), (3, 2, 2, 2), 1),
    "grouped": ((2, 4, 5, 6), (4, 2, 2, 2), 2),
    "depthwise": ((2, 2, 5, 6), (4, 1, 2, 2), 2),
}


@pytest.mark.parametrize("name", SHARED_ELEMENT_CONVOLUTIONS)
@pytest.mark.parametrize("far", [100, 1000])
def test_convolution_whose_windows_share_elements_costs_its_output_without_dx(
        name, far, monkeypatch):
    # the forward and the weights' gradient read each tap's value, wherever it
    # is gathered: the padded input (4000 x 4000 per channel for 2 x 2
    # outputs at 1000) need not be laid out, and the bits are those of the
    # whole padded input's
    x_shape, w_shape, groups = SHARED_ELEMENT_CONVOLUTIONS[name]
    rng = np.random.default_rng(12)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[0])
    dy = rng.standard_normal((x_shape[0], w_shape[0], 2, 2))

    def run():
        return (ops.conv2d(x, w, b, far, far, far, groups=groups),
                *ops.conv2d_backward(dy, x, w, far, far, far, False, groups=groups)[1:])

    gathered, peak = _with_peak(run)
    if groups == 1:
        want = ref_conv2d(x, w, b, far, far, far), *ref_conv2d_backward(dy, x, w, far, far, far)[1:]
        for got, want_ in zip(gathered, want):
            assert_close(got, want_)
    if far == 1000:
        assert peak < 2**20
        return
    monkeypatch.setattr(_engine, "COMPACT_MIN_EXTENT", 2**62)  # the whole padded input
    for got, whole in zip(gathered, run()):
        np.testing.assert_array_equal(got.view(np.uint64), whole.view(np.uint64))


# --------------------------------------------------------------------------
# Finite-difference gradients (float64)
# --------------------------------------------------------------------------


FD_CONV = ["stride 2 padding 1", "non-square, stride not dividing", "dilation"]


@pytest.mark.parametrize("name", FD_CONV)
def test_conv2d_backward_matches_finite_differences(name):
    x, wt, b, dy, kw = _conv_case(CONV_GEOMETRIES[name], seed=5)

    def loss():
        return np.vdot(dy, ops.conv2d(x, wt, b, **kw))

    dx, dw, db = ops.conv2d_backward(dy, x, wt, **kw)
    for analytic, param in [(dx, x), (dw, wt), (db, b)]:
        np.testing.assert_allclose(analytic, numerical_gradient(loss, param), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "name", ["3x3 stride 2 padding 1, stride not dividing", "overlapping 3x3 stride 1", "non-square padded"]
)
def test_pool_backward_matches_finite_differences(name):
    x, dy, kw = _pool_case(POOL_GEOMETRIES[name], seed=6)
    # distinct values 0.5 apart: no tie or kink of max within the step
    x = np.random.default_rng(7).permutation(x.size).reshape(x.shape) * 0.5

    _, argmax = ops.max_pool2d(x, **kw)
    dx = ops.max_pool2d_backward(dy, argmax, x.shape)
    numeric = numerical_gradient(lambda: np.vdot(dy, ops.max_pool2d(x, **kw)[0]), x)
    np.testing.assert_allclose(dx, numeric, rtol=1e-6, atol=1e-7)

    dx = ops.avg_pool2d_backward(dy, x.shape, **kw)
    numeric = numerical_gradient(lambda: np.vdot(dy, ops.avg_pool2d(x, **kw)), x)
    np.testing.assert_allclose(dx, numeric, rtol=1e-6, atol=1e-7)


# --------------------------------------------------------------------------
# Random geometries (hypothesis), valid or not
# --------------------------------------------------------------------------


def _invalid_axes(h, w, k, s, p, d):
    return [axis for axis, size, i in [("height", h, 0), ("width", w, 1)] if _out(size, k[i], s[i], p[i], d[i]) < 1]


pairs = st.tuples


@given(
    n=st.integers(1, 2),
    c=st.integers(1, 3),
    f=st.integers(1, 3),
    h=st.integers(1, 8),
    w=st.integers(1, 8),
    k=pairs(st.integers(1, 4), st.integers(1, 4)),
    s=pairs(st.integers(1, 3), st.integers(1, 3)),
    p=pairs(st.integers(0, 2), st.integers(0, 2)),
    d=pairs(st.integers(1, 3), st.integers(1, 3)),
    seed=st.integers(0, 2**32 - 1),
)
def test_conv_ops_match_reference_or_raise_on_random_geometry(n, c, f, h, w, k, s, p, d, seed):
    rng = np.random.default_rng(seed)
    x, wt, b = rng.standard_normal((n, c, h, w)), rng.standard_normal((f, c, *k)), rng.standard_normal(f)
    kw = dict(stride=s, padding=p, dilation=d)
    bad = _invalid_axes(h, w, k, s, p, d)
    event("invalid geometry" if bad else "valid geometry")
    if bad:
        match = f"kernel_size.*{bad[0]}"
        for call in [
            lambda: ops.im2col(x, k, **kw),
            lambda: ops.col2im(np.zeros((1, c * k[0] * k[1])), x.shape, k, **kw),
            lambda: ops.conv2d(x, wt, b, **kw),
            lambda: ops.conv2d_backward(np.zeros((n, f, 1, 1)), x, wt, **kw),
        ]:
            with pytest.raises(ValueError, match=match):
                call()
        return
    cols = ops.im2col(x, k, **kw)
    assert_close(cols, ref_im2col(x, k, **kw))
    c_ = rng.standard_normal(cols.shape)
    assert_close(ops.col2im(c_, x.shape, k, **kw), ref_col2im(c_, x.shape, k, **kw))
    y = ops.conv2d(x, wt, b, **kw)
    assert_close(y, ref_conv2d(x, wt, b, **kw))
    dy = rng.standard_normal(y.shape)
    for got, want in zip(ops.conv2d_backward(dy, x, wt, **kw), ref_conv2d_backward(dy, x, wt, **kw)):
        assert_close(got, want)


@st.composite
def pool_axis(draw):
    """(kernel, padding) along one axis; the padding exceeds half the kernel one time in four."""
    k = draw(st.integers(1, 4))
    too_wide = draw(st.integers(0, 3)) == 0
    return k, (k // 2 + 1 if too_wide else draw(st.integers(0, k // 2)))


@given(
    n=st.integers(1, 2),
    c=st.integers(1, 2),
    h=st.integers(1, 8),
    w=st.integers(1, 8),
    kp=pairs(pool_axis(), pool_axis()),
    s=st.none() | pairs(st.integers(1, 3), st.integers(1, 3)),
    seed=st.integers(0, 2**32 - 1),
)
def test_pool_ops_match_reference_or_raise_on_random_geometry(n, c, h, w, kp, s, seed):
    k, p = (kp[0][0], kp[1][0]), (kp[0][1], kp[1][1])
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w))
    kw = dict(kernel_size=k, stride=s, padding=p)
    bad = _invalid_axes(h, w, k, k if s is None else s, p, (1, 1))
    invalid = bad or p[0] > k[0] // 2 or p[1] > k[1] // 2
    event("invalid geometry" if invalid else "valid geometry")
    if invalid:
        # output < 1 names kernel_size and the axis; padding past half the kernel names padding
        match = "kernel_size" if bad else "padding"
        for call in [
            lambda: ops.max_pool2d(x, **kw),
            lambda: ops.avg_pool2d(x, **kw),
            lambda: ops.avg_pool2d_backward(np.zeros((n, c, 1, 1)), x.shape, **kw),
        ]:
            with pytest.raises(ValueError, match=match):
                call()
        return
    y, argmax = ops.max_pool2d(x, **kw)
    y_ref, argmax_ref = ref_max_pool2d(x, **kw)
    assert_close(y, y_ref)
    np.testing.assert_array_equal(argmax, argmax_ref)
    dy = rng.standard_normal(y.shape)
    assert_close(ops.max_pool2d_backward(dy, argmax, x.shape), ref_max_pool2d_backward(dy, argmax_ref, x.shape))
    assert_close(ops.avg_pool2d(x, **kw), ref_avg_pool2d(x, **kw))
    assert_close(ops.avg_pool2d_backward(dy, x.shape, **kw), ref_avg_pool2d_backward(dy, x.shape, **kw))


@given(
    name=st.sampled_from(["kernel_size", "stride", "padding", "dilation"]),
    value=st.sampled_from([0, -1, -3, (1, 0), (0, 2), (-1, 1), 1.5, "2", (1, 2, 3), True, None]),
    op=st.sampled_from(["im2col", "conv2d", "conv2d_backward", "max_pool2d", "avg_pool2d"]),
)
def test_invalid_geometry_arguments_raise_value_error_naming_the_argument(name, value, op):
    minimum = 0 if name == "padding" else 1
    values = value if isinstance(value, tuple) and len(value) == 2 else (value,)
    assume(not all(isinstance(v, int) and not isinstance(v, bool) and v >= minimum for v in values))
    assume(not (name == "dilation" and op.endswith("pool2d")))  # pooling has no dilation
    assume(not (name == "kernel_size" and op.startswith("conv2d")))  # conv2d reads it from w
    assume(not (name == "stride" and value is None and op.endswith("pool2d")))  # None: the kernel size
    x, w = np.zeros((2, 2, 6, 6)), np.zeros((3, 2, 3, 3))
    kw = {name: value}
    window = {"kernel_size": 3, **kw}
    calls = {
        "im2col": lambda: ops.im2col(x, **window),
        "conv2d": lambda: ops.conv2d(x, w, **kw),
        "conv2d_backward": lambda: ops.conv2d_backward(np.zeros((2, 3, 4, 4)), x, w, **kw),
        "max_pool2d": lambda: ops.max_pool2d(x, **window),
        "avg_pool2d": lambda: ops.avg_pool2d(x, **window),
    }
    with pytest.raises(ValueError, match=name):
        calls[op]()


# --------------------------------------------------------------------------
# Dtypes, memory layouts, thread counts: every op
# --------------------------------------------------------------------------

_rng = np.random.default_rng(8)
X = _rng.standard_normal((8, 3, 9, 8))
W = _rng.standard_normal((5, 3, 3, 2))
KERNEL = W.shape[2:]
CONV_KW = dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2))
POOL_KW = dict(kernel_size=3, stride=2, padding=1)
INPUTS = {
    "x": X,
    "w": W,
    "b": _rng.standard_normal(5),
    "cols": _rng.standard_normal(ops.im2col(X, KERNEL, **CONV_KW).shape),
    "dy_conv": _rng.standard_normal(ops.conv2d(X, W, **CONV_KW).shape),
    "dy_pool": _rng.standard_normal(ops.avg_pool2d(X, **POOL_KW).shape),
    "argmax": ops.max_pool2d(X, **POOL_KW)[1],
}

# name -> (the inputs it takes, the call returning a tuple of outputs)
OPS = {
    "im2col": (("x",), lambda x: (ops.im2col(x, KERNEL, **CONV_KW),)),
    "col2im": (("cols",), lambda cols: (ops.col2im(cols, X.shape, KERNEL, **CONV_KW),)),
    "conv2d": (("x", "w", "b"), lambda x, w, b: (ops.conv2d(x, w, b, **CONV_KW),)),
    "conv2d_backward": (("dy_conv", "x", "w"), lambda dy, x, w: ops.conv2d_backward(dy, x, w, **CONV_KW)),
    "max_pool2d": (("x",), lambda x: ops.max_pool2d(x, **POOL_KW)),
    "max_pool2d_backward": (("dy_pool", "argmax"), lambda dy, a: (ops.max_pool2d_backward(dy, a, X.shape),)),
    "avg_pool2d": (("x",), lambda x: (ops.avg_pool2d(x, **POOL_KW),)),
    "avg_pool2d_backward": (("dy_pool",), lambda dy: (ops.avg_pool2d_backward(dy, X.shape, **POOL_KW),)),
}


def _run(op, transform=lambda a: a.copy()):
    names, call = OPS[op]
    return call(*(transform(INPUTS[name]) for name in names))


@pytest.mark.parametrize("op", OPS)
def test_float32_agrees_with_float64(op):
    out64 = _run(op)
    out32 = _run(op, lambda a: a.astype(np.float32) if a.dtype == np.float64 else a.copy())
    for a32, a64 in zip(out32, out64):
        if a64.dtype == np.float64:
            assert a32.dtype == np.float32
            assert_close(a32, a64, rtol=1e-5)
        else:
            np.testing.assert_array_equal(a32, a64)


def _read_only(a):
    a = a.copy()
    a.setflags(write=False)
    return a


def _fortran_read_only(a):
    return _read_only(np.asfortranarray(a))


def _strided(a):
    """A non-contiguous view with the same values."""
    big = np.zeros(a.shape + (2,), dtype=a.dtype)
    big[..., 0] = a
    return big[..., 0]


def _byte_swapped(a):
    """The same values stored in the other byte order (a file written on another machine)."""
    return a.astype(a.dtype.newbyteorder("S"))


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("layout", [_read_only, np.asfortranarray, _fortran_read_only, _strided,
                                    _byte_swapped])
def test_read_only_fortran_and_strided_inputs_give_the_same_result(op, layout):
    for got, want in zip(_run(op, layout), _run(op)):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("op", OPS)
def test_results_are_bit_identical_with_1_and_2_threads(op):
    with threadpool_limits(1):
        assert effective_n_threads() == 1
        one = _run(op)
    with threadpool_limits(2):
        assert effective_n_threads() == (2 if openmp_enabled() else 1)
        two = _run(op)
    assert len(one) == len(two)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


def test_conv_of_a_single_sample_is_bit_identical_with_1_and_2_blas_threads():
    # one sample runs on one of our threads, so BLAS itself may use both
    rng = np.random.default_rng(9)
    x, w = rng.standard_normal((1, 16, 20, 20)), rng.standard_normal((32, 16, 3, 3))
    dy = rng.standard_normal((1, 32, 20, 20))
    results = []
    for n_threads in (1, 2):
        with threadpool_limits(n_threads):
            results.append((ops.conv2d(x, w, padding=1), *ops.conv2d_backward(dy, x, w, padding=1)))
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


#: Weight gradients of more filters than taps, which the kernels compute as
#: dw^T, the taps along the product's rows: (x shape, filters, kernel size)
MANY_FILTERS_FEW_TAPS = [((8, 1, 28, 28), 256, 3), ((1, 1, 1, 1), 500, 1),
                         ((2, 1, 2, 2), 2000, 1), ((2, 3, 6, 6), 700, 2)]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_weight_gradient_of_many_filters_by_few_taps_stays_in_its_scratch(dtype):
    # the product's scratch must be sized for the product as oriented (taps by
    # filters), not for dw's (filters by taps): a block holds more columns than
    # rows, and hundreds of filters overran it. The heap corruption that made
    # shows at once with MALLOC_CHECK_, in a process of its own
    code = f"""if True:
        import numpy as np
        from skconv import ops
        rng = np.random.default_rng(0)
        for x_shape, f, k in {MANY_FILTERS_FEW_TAPS!r}:
            x = rng.standard_normal(x_shape).astype("{dtype}")
            w = rng.standard_normal((f, x_shape[1], k, k)).astype("{dtype}")
            oh, ow = x_shape[2] - k + 1, x_shape[3] - k + 1
            dy = rng.standard_normal((x_shape[0], f, oh, ow)).astype("{dtype}")
            cols = ops.im2col(x.astype(np.float64), k)
            want = dy.transpose(0, 2, 3, 1).reshape(-1, f).T.astype(np.float64) @ cols
            for need_dx in (False, True):
                dw = ops.conv2d_backward(dy, x, w, need_dx=need_dx)[1]
                np.testing.assert_allclose(dw.reshape(f, -1), want, rtol=1e-4, atol=1e-3)
        """
    root = os.path.dirname(os.path.dirname(ops.__file__))
    env = dict(os.environ, MALLOC_CHECK_="3",
               PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run([sys.executable, "-P", "-c", code], env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]


class _ScratchTooSmall:
    """_gemm with work_size answering 1 element: scratch sized wrongly."""

    def __getattr__(self, name):
        return getattr(_gemm, name)

    @staticmethod
    def work_size(m, n, k):
        return 1


@pytest.mark.parametrize("x_shape, f, k, stride, padding", [
    ((2, 3, 9, 9), 8, 3, 1, 1), ((2, 3, 9, 9), 8, 3, 2, 1), ((2, 1, 12, 12), 256, 3, 1, 0),
    ((2, 3, 9, 9), 8, 5, 3, 0)])
def test_the_weight_gradient_refuses_scratch_too_small_for_its_products(
        monkeypatch, x_shape, f, k, stride, padding):
    # the kernels check the scratch they are handed against the products they
    # run: a sizing mistake in Python is a ValueError, not a heap overrun
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal((f, x_shape[1], k, k)).astype(np.float32)
    dy = np.ones_like(ops.conv2d(x, w, stride=stride, padding=padding))
    monkeypatch.setattr(_engine, "_gemm", _ScratchTooSmall())
    with pytest.raises(ValueError, match="work of shape"):
        ops.conv2d_backward(dy, x, w, stride=stride, padding=padding)


def test_the_dense_product_refuses_scratch_too_small_for_its_blocks(monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 70)).astype(np.float32)
    w = rng.standard_normal((70, 40)).astype(np.float32)
    monkeypatch.setattr(_engine, "_gemm", _ScratchTooSmall())
    with pytest.raises(ValueError, match="work of shape"):
        ops.linear(x, w)


def _conv2d_by_taps(x, w, stride, padding):
    """conv2d and its gradients' operands in float64, one einsum per tap: a
    reference fast enough for hundreds of channels."""
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    f, _, kh, kw = w.shape
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    oh, ow = (xp.shape[2] - kh) // sh + 1, (xp.shape[3] - kw) // sw + 1
    return xp, [((ki, kj), (slice(ki, ki + sh * (oh - 1) + 1, sh),
                            slice(kj, kj + sw * (ow - 1) + 1, sw)))
                for ki in range(kh) for kj in range(kw)]


# the counts at which the products' panels, tiles and blocks begin and end
EDGE_COUNTS = [1, 2, 3, 7, 8, 9, 16, 17, 31, 33, 64, 65, 129, 256, 257, 600]


@settings(max_examples=40, deadline=None)
@given(
    c=st.sampled_from(EDGE_COUNTS), f=st.sampled_from(EDGE_COUNTS), n=st.integers(1, 3),
    hw=st.sampled_from([(1, 1), (1, 40), (2, 9), (5, 5), (9, 7)]), k=pairs(st.integers(1, 5), st.integers(1, 5)),
    stride=st.integers(1, 3), padding=st.integers(0, 2), dtype=st.sampled_from([np.float32, np.float64]),
    need_dx=st.booleans(), seed=st.integers(0, 2**16),
)
def test_conv2d_and_its_gradients_match_a_reference_for_many_channels_or_filters(
        c, f, n, hw, k, stride, padding, dtype, need_dx, seed):
    # the kernels' panels, tiles and scratch are sized by the channel and
    # filter counts on either side of a product; shapes at their edges, on two
    # threads (tools/asan.sh runs this under AddressSanitizer)
    assume(c * f <= 8 * 600 and all(s + 2 * padding >= kk for s, kk in zip(hw, k)))
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c) + hw).astype(dtype)
    w = rng.standard_normal((f, c) + k).astype(dtype)
    dy_shape = (n, f) + tuple((s + 2 * padding - kk) // stride + 1 for s, kk in zip(hw, k))
    dy = rng.standard_normal(dy_shape).astype(dtype)
    xp, taps = _conv2d_by_taps(x, w, stride, padding)
    y_ref, dxp, dw_ref = np.zeros(dy_shape), np.zeros_like(xp), np.zeros(w.shape)
    for (ki, kj), (rows, cols) in taps:
        y_ref += np.einsum("fc,ncij->nfij", w[:, :, ki, kj], xp[:, :, rows, cols])
        dw_ref[:, :, ki, kj] = np.einsum("nfij,ncij->fc", dy, xp[:, :, rows, cols])
        dxp[:, :, rows, cols] += np.einsum("fc,nfij->ncij", w[:, :, ki, kj], dy)
    rtol = 1e-4 if dtype == np.float32 else 1e-10
    with threadpool_limits(2), mock.patch.object(_engine, "MIN_WORK_PER_THREAD", 1):
        y = ops.conv2d(x, w, stride=stride, padding=padding)
        dx, dw, db = ops.conv2d_backward(dy, x, w, stride=stride, padding=padding,
                                         need_dx=need_dx)
    assert_close(y, y_ref, rtol)
    assert_close(dw, dw_ref, rtol)
    assert_close(db, dy.sum(axis=(0, 2, 3)), rtol)
    if need_dx:
        assert_close(dx, dxp[:, :, padding:padding + hw[0], padding:padding + hw[1]], rtol)
    else:
        assert dx is None


def test_conv2d_backward_without_dx_returns_none_and_the_same_dw_db():
    x, w, dy = INPUTS["x"], INPUTS["w"], INPUTS["dy_conv"]
    dx, dw, db = ops.conv2d_backward(dy, x, w, **CONV_KW)
    none, dw_only, db_only = ops.conv2d_backward(dy, x, w, need_dx=False, **CONV_KW)
    assert none is None
    np.testing.assert_array_equal(dw_only, dw)
    np.testing.assert_array_equal(db_only, db)


def test_conv_training_path_with_kept_columns_matches_the_plain_ops():
    # the Conv2D layer keeps im2col from forward for backward: same bits as recomputing
    x, w, b, dy = INPUTS["x"], INPUTS["w"], INPUTS["b"], INPUTS["dy_conv"]
    y = ops.conv2d(x, w, b, **CONV_KW)
    n, f, oh, ow = y.shape
    cols = np.empty((n, w[0].size, oh * ow), dtype=x.dtype)
    np.testing.assert_array_equal(ops.conv2d(x, w, b, cols=cols, **CONV_KW), y)
    np.testing.assert_array_equal(
        cols.transpose(0, 2, 1).reshape(n * oh * ow, -1), ops.im2col(x, KERNEL, **CONV_KW)
    )
    for need_dx in (True, False):
        ops.conv2d(x, w, b, cols=cols, **CONV_KW)
        kept = ops.conv2d_backward(dy, x, w, need_dx=need_dx, cols=cols, **CONV_KW)
        plain = ops.conv2d_backward(dy, x, w, need_dx=need_dx, **CONV_KW)
        for got, want in zip(kept, plain):
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("cols", [np.empty(3), np.empty((2, 2, 2), dtype=np.float32), "cols"])
def test_conv_workspace_of_the_wrong_shape_or_dtype_is_refused(cols):
    with pytest.raises(ValueError, match="cols must be"):
        ops.conv2d(INPUTS["x"], INPUTS["w"], cols=cols, **CONV_KW)


# --------------------------------------------------------------------------
# Bad input: a clear error, never a crash
# --------------------------------------------------------------------------

_x, _w = np.zeros((2, 3, 6, 6)), np.zeros((4, 3, 3, 3))
_dy = np.zeros((2, 4, 4, 4))
_pool_dy = np.zeros((2, 3, 3, 3))
_argmax = np.zeros((2, 3, 3, 3), dtype=np.intp)

BAD_INPUTS = {
    "x not 4-D": (lambda: ops.conv2d(_x[0], _w), ValueError, "x must be 4-D"),
    "w not 4-D": (lambda: ops.conv2d(_x, _w[0]), ValueError, "w must be 4-D"),
    "x not 4-D in im2col": (lambda: ops.im2col(_x[None], 3), ValueError, "x must be 4-D"),
    "x not 4-D in pooling": (lambda: ops.max_pool2d(_x[0], 2), ValueError, "x must be 4-D"),
    "cols not 2-D": (lambda: ops.col2im(_x, _x.shape, 3), ValueError, "cols must be 2-D"),
    "w dtype differs from x": (lambda: ops.conv2d(_x, _w.astype(np.float32)), ValueError, "w has dtype float32"),
    "b dtype differs from x": (lambda: ops.conv2d(_x, _w, np.zeros(4, np.float32)), ValueError, "b has dtype"),
    "dy dtype differs from x": (
        lambda: ops.conv2d_backward(_dy.astype(np.float32), _x, _w),
        ValueError,
        "dy has dtype",
    ),
    "channel mismatch": (lambda: ops.conv2d(_x, np.zeros((4, 2, 3, 3))), ValueError, "input channels"),
    "channel mismatch in backward": (
        lambda: ops.conv2d_backward(_dy, _x, np.zeros((4, 2, 3, 3))),
        ValueError,
        "input channels",
    ),
    "b of wrong length": (lambda: ops.conv2d(_x, _w, np.zeros(3)), ValueError, r"b must have shape \(4,\)"),
    "conv dy of wrong shape": (
        lambda: ops.conv2d_backward(np.zeros((2, 4, 3, 4)), _x, _w),
        ValueError,
        r"dy must have shape \(2, 4, 4, 4\)",
    ),
    "avg pool dy of wrong shape": (
        lambda: ops.avg_pool2d_backward(np.zeros((2, 3, 2, 3)), _x.shape, 2),
        ValueError,
        r"dy must have shape \(2, 3, 3, 3\)",
    ),
    "max pool dy not matching x_shape": (
        lambda: ops.max_pool2d_backward(np.zeros((2, 2, 3, 3)), _argmax[:, :2], _x.shape),
        ValueError,
        "dy",
    ),
    "cols of wrong shape": (lambda: ops.col2im(np.zeros((31, 27)), _x.shape, 3), ValueError, "cols must have shape"),
    "x_shape not 4 ints": (lambda: ops.col2im(np.zeros((32, 27)), (3, 6, 6), 3), ValueError, "x_shape"),
    "x_shape with a zero": (lambda: ops.avg_pool2d_backward(_pool_dy, (2, 3, 0, 6), 2), ValueError, "x_shape"),
    "argmax past the end of the plane": (
        lambda: ops.max_pool2d_backward(_pool_dy, np.full_like(_argmax, 36), _x.shape),
        ValueError,
        "argmax",
    ),
    "negative argmax": (
        lambda: ops.max_pool2d_backward(_pool_dy, np.full_like(_argmax, -1), _x.shape),
        ValueError,
        "argmax",
    ),
    "argmax of wrong shape": (
        lambda: ops.max_pool2d_backward(_pool_dy, _argmax[..., :2], _x.shape),
        ValueError,
        "argmax must have shape",
    ),
    "dy of another shape than argmax": (
        lambda: ops.max_pool2d_backward(_pool_dy[..., :1], _argmax, _x.shape),
        ValueError,
        r"argmax must have shape \(\d+, \d+, \d+, 1\), dy's \(both are the pooling's output\), "
        r"got \(\d+, \d+, \d+, [2-9]\)",
    ),
    "float argmax": (
        lambda: ops.max_pool2d_backward(_pool_dy, _argmax.astype(float), _x.shape),
        TypeError,
        "argmax",
    ),
    "int x": (lambda: ops.conv2d(_x.astype(int), _w), TypeError, "x must be float32 or float64"),
    "int w": (lambda: ops.conv2d(_x, _w.astype(np.int32)), TypeError, "w must be float32 or float64"),
    "float16 x": (lambda: ops.im2col(_x.astype(np.float16), 3), TypeError, "x must be float32 or float64"),
    "complex x": (lambda: ops.max_pool2d(_x.astype(complex), 2), TypeError, "x must be float32 or float64"),
    "int dy": (lambda: ops.avg_pool2d_backward(_pool_dy.astype(int), _x.shape, 2), TypeError, "dy must be float"),
    "int cols": (lambda: ops.col2im(np.zeros((32, 27), dtype=int), _x.shape, 3), TypeError, "cols must be float"),
    "empty batch": (lambda: ops.conv2d(np.zeros((0, 3, 6, 6)), _w), ValueError, "x must not have an empty axis"),
    "empty height": (lambda: ops.max_pool2d(np.zeros((2, 3, 0, 6)), 2), ValueError, "x must not have an empty axis"),
    "no filters": (lambda: ops.conv2d(_x, np.zeros((0, 3, 3, 3))), ValueError, "w must not have an empty axis"),
    "empty dy": (
        lambda: ops.max_pool2d_backward(np.zeros((2, 3, 0, 3)), _argmax[:, :, :0], _x.shape),
        ValueError,
        "dy must not have an empty axis",
    ),
    "negative padding": (lambda: ops.conv2d(_x, _w, padding=-1), ValueError, "padding=-1"),
    "negative padding on one axis": (lambda: ops.im2col(_x, 3, padding=(0, -2)), ValueError, "padding"),
    "zero stride": (lambda: ops.conv2d(_x, _w, stride=0), ValueError, "stride=0"),
    "zero stride in pooling": (lambda: ops.avg_pool2d(_x, 2, stride=(2, 0)), ValueError, "stride"),
    "zero dilation": (lambda: ops.conv2d(_x, _w, dilation=0), ValueError, "dilation=0"),
    "zero kernel_size": (lambda: ops.im2col(_x, 0), ValueError, "kernel_size=0"),
    "float stride": (lambda: ops.conv2d(_x, _w, stride=1.0), ValueError, "stride"),
    "kernel larger than input": (lambda: ops.conv2d(_x[:, :, :2], _w), ValueError, "kernel_size=3.*height 2"),
    "kernel wider than input": (lambda: ops.im2col(_x, (1, 7)), ValueError, "kernel_size=7.*width 6"),
    "max pool padding past half the kernel": (lambda: ops.max_pool2d(_x, 2, padding=2), ValueError, "padding=2"),
    "avg pool padding past half the kernel": (
        lambda: ops.avg_pool2d(_x, (3, 2), padding=(1, 2)),
        ValueError,
        "padding",
    ),
    "avg pool backward padding past half the kernel": (
        lambda: ops.avg_pool2d_backward(_pool_dy, _x.shape, 2, padding=(0, 2)),
        ValueError,
        "padding",
    ),
}


@pytest.mark.parametrize("call, error, match", BAD_INPUTS.values(), ids=BAD_INPUTS)
def test_bad_input_raises_a_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()


# --------------------------------------------------------------------------
# Batch normalization (training mode)
# --------------------------------------------------------------------------


def batch_norm_reference(x, scale, shift, eps):
    """Per channel, in plain loops: mean, biased variance, then normalise."""
    n, c = x.shape[:2]
    flat = x.reshape(n, c, -1)
    y, x_hat = np.empty_like(flat), np.empty_like(flat)
    mean, var = np.empty(c), np.empty(c)
    for ch in range(c):
        values = [flat[i, ch, k] for i in range(n) for k in range(flat.shape[2])]
        mean[ch] = sum(values) / len(values)
        var[ch] = sum((v - mean[ch]) ** 2 for v in values) / len(values)
        for i in range(n):
            for k in range(flat.shape[2]):
                x_hat[i, ch, k] = (flat[i, ch, k] - mean[ch]) / np.sqrt(var[ch] + eps)
                y[i, ch, k] = scale[ch] * x_hat[i, ch, k] + shift[ch]
    return y.reshape(x.shape), x_hat.reshape(x.shape), mean, var


@pytest.mark.parametrize("shape", [(5, 3, 4, 3), (7, 4), (1, 2, 3, 3)])
def test_batch_norm_matches_the_plain_loop_reference(shape):
    rng = np.random.default_rng(11)
    x = rng.standard_normal(shape) * 3 + 2
    scale, shift = rng.standard_normal(shape[1]), rng.standard_normal(shape[1])
    got = ops.batch_norm(x, scale, shift, eps=1e-3)
    for a, b in zip(got, batch_norm_reference(x, scale, shift, 1e-3)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", [(4, 3, 3, 2), (6, 5)])
def test_batch_norm_backward_matches_finite_differences(shape):
    rng = np.random.default_rng(12)
    x = rng.standard_normal(shape)
    scale, shift = rng.standard_normal(shape[1]), rng.standard_normal(shape[1])
    dy = rng.standard_normal(shape)
    _, x_hat, _, var = ops.batch_norm(x, scale, shift)
    dx, dscale, dshift = ops.batch_norm_backward(dy, x_hat, scale, var)

    def loss():
        return float(np.sum(ops.batch_norm(x, scale, shift)[0] * dy))

    # numerical_gradient perturbs each array in place and calls loss()
    for analytic, array in ((dx, x), (dscale, scale), (dshift, shift)):
        np.testing.assert_allclose(analytic, numerical_gradient(loss, array),
                                   rtol=1e-5, atol=1e-7)
    assert ops.batch_norm_backward(dy, x_hat, scale, var, need_dx=False)[0] is None


def test_batch_norm_backward_refuses_a_var_that_holds_no_variances():
    rng = np.random.default_rng(14)
    x, dy, scale = rng.standard_normal((4, 3, 2, 2)), rng.standard_normal((4, 3, 2, 2)), np.ones(3)
    _, x_hat, _, var = ops.batch_norm(x, scale, np.zeros(3))
    with pytest.raises(ValueError, match=r"var must hold variances \(>= 0\), got -1.0 in channel 1"):
        ops.batch_norm_backward(dy, x_hat, scale, np.array([1.0, -1.0, 1.0]))
    with pytest.raises(TypeError, match="var must hold the variances batch_norm returns"):
        ops.batch_norm_backward(dy, x_hat, scale, np.array(["1", "1", "1"]))
    var[1] = np.nan  # as from a NaN in x: propagated, not refused
    dx, dscale, _ = ops.batch_norm_backward(dy, x_hat, scale, var)
    assert np.isnan(dx[:, 1]).all() and not np.isnan(dx[:, [0, 2]]).any()


def test_batch_norm_is_bit_identical_with_1_and_2_threads():
    rng = np.random.default_rng(13)
    x, dy = rng.standard_normal((16, 6, 5, 5)), rng.standard_normal((16, 6, 5, 5))
    scale, shift = rng.standard_normal(6), rng.standard_normal(6)
    runs = []
    for n_threads in (1, 2):
        with threadpool_limits(n_threads):
            fwd = ops.batch_norm(x, scale, shift)
            runs.append(fwd + ops.batch_norm_backward(dy, fwd[1], scale, fwd[3]))
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(x=np.ones(4)), "at least 2-D"),
        (dict(scale=np.ones(4)), "scale must have shape"),
        (dict(shift=np.ones((3,), dtype=np.float32)), "shift has dtype"),
        (dict(eps=0.0), "eps=0.0"),
        (dict(eps="1e-5"), "eps must be a float, got '1e-5'"),
        (dict(eps=np.full(3, 1e-5)), "eps must be a float"),
        (dict(eps=float("nan")), "eps=nan must be a finite number > 0"),
    ],
)
def test_batch_norm_bad_input_raises_a_clear_error(kwargs, match):
    args = dict(x=np.ones((2, 3, 2, 2)), scale=np.ones(3), shift=np.zeros(3), eps=1e-5)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        ops.batch_norm(**args)
