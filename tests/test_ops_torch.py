"""skconv.ops against torch.nn.functional, forward and backward (autograd).

A second, independent oracle next to the plain-loop references of
test_ops.py. Skipped when torch is not installed.
"""

import numpy as np
import pytest

from skconv import ops

torch = pytest.importorskip("torch")
F = torch.nn.functional

# (n, c, h, w, f, kernel_size, stride, padding, dilation)
CONV_GEOMETRIES = {
    "plain 3x3": (2, 3, 7, 6, 4, (3, 3), 1, 0, 1),
    "stride 2 padding 1": (3, 2, 8, 7, 3, (3, 3), 2, 1, 1),
    "non-square, stride not dividing": (1, 2, 9, 7, 2, (2, 4), (3, 2), (1, 0), 1),
    "dilation": (2, 1, 9, 8, 3, (3, 2), 1, (2, 1), (2, 3)),
    "1x1": (3, 4, 4, 5, 2, (1, 1), 1, 0, 1),
    "LeNet conv2 shape, small batch": (2, 6, 12, 12, 16, (5, 5), 1, 0, 1),
    "batch 19": (19, 2, 6, 5, 3, (3, 3), 1, 1, 1),
}

# (n, c, h, w, kernel_size, stride, padding); stride None means kernel_size
POOL_GEOMETRIES = {
    "2x2": (2, 3, 6, 6, (2, 2), None, 0),
    "3x3 stride 2 padding 1": (2, 2, 7, 5, (3, 3), (2, 2), 1),
    "non-square padded": (1, 1, 5, 7, (2, 3), (1, 2), (1, 1)),
    "overlapping 3x3 stride 1": (2, 2, 6, 6, (3, 3), (1, 1), 1),
    "window drops the last row": (3, 1, 7, 7, (2, 2), None, 0),
}

DTYPES = {np.float64: 1e-12, np.float32: 1e-5}  # dtype -> rtol


def assert_close(actual, expected, rtol):
    """``rtol`` relative to the largest entry of ``expected`` (sums cancel to near zero in places)."""
    expected = expected.detach().numpy() if isinstance(expected, torch.Tensor) else expected
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * max(np.abs(expected).max(), 1.0))


def _tensor(a, requires_grad=False):
    return torch.tensor(a, requires_grad=requires_grad)


@pytest.fixture(params=DTYPES, ids=lambda d: d.__name__)
def dtype(request):
    return request.param


def _conv_case(geometry, dtype):
    n, c, h, w, f, k, s, p, d = geometry
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((f, c, *k)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype)
    return x, wt, b, dict(stride=s, padding=p, dilation=d)


@pytest.mark.parametrize("geometry", CONV_GEOMETRIES.values(), ids=CONV_GEOMETRIES)
def test_conv2d_forward_and_backward_match_torch(geometry, dtype):
    x, w, b, kw = _conv_case(geometry, dtype)
    rtol = DTYPES[dtype]
    xt, wt, bt = _tensor(x, True), _tensor(w, True), _tensor(b, True)
    yt = F.conv2d(xt, wt, bt, **kw)
    y = ops.conv2d(x, w, b, **kw)
    assert_close(y, yt, rtol)

    dy = np.random.default_rng(1).standard_normal(y.shape).astype(dtype)
    dx_t, dw_t, db_t = torch.autograd.grad(yt, (xt, wt, bt), _tensor(dy))
    dx, dw, db = ops.conv2d_backward(dy, x, w, **kw)
    for got, want in [(dx, dx_t), (dw, dw_t), (db, db_t)]:
        assert_close(got, want, rtol)

    yt = F.conv2d(_tensor(x), wt, bt, **kw)  # x needs no gradient, as in a first layer
    dw_t, db_t = torch.autograd.grad(yt, (wt, bt), _tensor(dy))
    none, dw, db = ops.conv2d_backward(dy, x, w, need_dx=False, **kw)
    assert none is None
    assert_close(dw, dw_t, rtol)
    assert_close(db, db_t, rtol)


@pytest.mark.parametrize("geometry", CONV_GEOMETRIES.values(), ids=CONV_GEOMETRIES)
def test_im2col_matches_unfold_and_col2im_matches_fold(geometry, dtype):
    x, w, _, kw = _conv_case(geometry, dtype)
    n, c, h, wd = x.shape
    k = w.shape[2:]
    ckk = c * k[0] * k[1]
    rtol = DTYPES[dtype]
    unfolded = F.unfold(_tensor(x), k, **kw)  # (n, ckk, oh * ow)
    cols = ops.im2col(x, k, **kw)
    assert_close(cols, unfolded.transpose(1, 2).reshape(-1, ckk), rtol)

    c_ = np.random.default_rng(2).standard_normal(cols.shape).astype(dtype)
    folded = F.fold(_tensor(c_).reshape(n, -1, ckk).transpose(1, 2), (h, wd), k, **kw)
    assert_close(ops.col2im(c_, x.shape, k, **kw), folded, rtol)


def _pool_case(geometry, dtype):
    n, c, h, w, k, s, p = geometry
    x = np.random.default_rng(3).standard_normal((n, c, h, w)).astype(dtype)
    return x, dict(kernel_size=k, stride=s, padding=p)


def _torch_pool_kw(kw):
    # torch spells "stride = kernel_size" as stride=None too, but wants ints or pairs
    return dict(kernel_size=kw["kernel_size"], stride=kw["stride"] or kw["kernel_size"], padding=kw["padding"])


@pytest.mark.parametrize("geometry", POOL_GEOMETRIES.values(), ids=POOL_GEOMETRIES)
def test_max_pool2d_forward_indices_and_backward_match_torch(geometry, dtype):
    x, kw = _pool_case(geometry, dtype)
    rtol = DTYPES[dtype]
    xt = _tensor(x, True)
    yt, indices = F.max_pool2d(xt, return_indices=True, **_torch_pool_kw(kw))
    y, argmax = ops.max_pool2d(x, **kw)
    assert_close(y, yt, rtol)
    np.testing.assert_array_equal(argmax, indices.numpy())

    dy = np.random.default_rng(4).standard_normal(y.shape).astype(dtype)
    (dx_t,) = torch.autograd.grad(yt, xt, _tensor(dy))
    assert_close(ops.max_pool2d_backward(dy, argmax, x.shape), dx_t, rtol)


@pytest.mark.parametrize("geometry", POOL_GEOMETRIES.values(), ids=POOL_GEOMETRIES)
def test_avg_pool2d_forward_and_backward_match_torch_with_count_include_pad(geometry, dtype):
    x, kw = _pool_case(geometry, dtype)
    rtol = DTYPES[dtype]
    xt = _tensor(x, True)
    yt = F.avg_pool2d(xt, count_include_pad=True, **_torch_pool_kw(kw))
    y = ops.avg_pool2d(x, **kw)
    assert_close(y, yt, rtol)

    dy = np.random.default_rng(5).standard_normal(y.shape).astype(dtype)
    (dx_t,) = torch.autograd.grad(yt, xt, _tensor(dy))
    assert_close(ops.avg_pool2d_backward(dy, x.shape, **kw), dx_t, rtol)


def test_max_pool2d_breaks_ties_and_propagates_nan_like_torch():
    x = np.random.default_rng(6).integers(0, 3, size=(2, 2, 7, 6)).astype(np.float64)
    x[0, 0, 1, 1] = np.nan
    for kw in [dict(kernel_size=3, stride=1, padding=1), dict(kernel_size=(2, 3), stride=(2, 1), padding=0)]:
        yt, indices = F.max_pool2d(_tensor(x), return_indices=True, **kw)
        y, argmax = ops.max_pool2d(x, **kw)
        np.testing.assert_array_equal(y, yt.numpy())
        np.testing.assert_array_equal(argmax, indices.numpy())
