"""Grouped and depthwise convolution and global pooling against torch, forward
and backward (autograd): a second, independent oracle next to the plain-loop
references of test_ops_grouped.py. Skipped when torch is not installed.
"""

import numpy as np
import pytest

from skconv import ops

torch = pytest.importorskip("torch")
F = torch.nn.functional

# (n, c, h, w, f, groups, kernel_size, stride, padding, dilation)
GEOMETRIES = {
    "depthwise 3x3": (3, 8, 9, 9, 8, 8, 3, 1, 1, 1),
    "depthwise 3x3 stride 2": (2, 6, 8, 9, 6, 6, 3, 2, 1, 1),
    "depthwise m=2": (2, 4, 7, 6, 8, 4, 3, 1, 1, 1),
    "depthwise m=2 stride 2 dilation 2": (2, 3, 11, 10, 6, 3, 3, 2, 2, 2),
    "depthwise 5x5 no padding": (2, 5, 8, 8, 5, 5, 5, 1, 0, 1),
    "depthwise non-square": (1, 2, 7, 9, 2, 2, (1, 3), (2, 1), (0, 1), (1, 2)),
    "groups 2": (2, 4, 7, 7, 6, 2, 3, 1, 1, 1),
    "groups 2 stride 2": (2, 6, 9, 8, 4, 2, 3, 2, 1, 1),
    "groups 4": (2, 8, 6, 6, 8, 4, 3, 1, 1, 1),
    "groups 4 dilation": (1, 8, 9, 9, 12, 4, 3, 1, 2, 2),
}

DTYPES = {np.float64: 1e-12, np.float32: 1e-5}  # dtype -> rtol


@pytest.fixture(params=DTYPES, ids=lambda d: d.__name__)
def dtype(request):
    return request.param


def assert_close(actual, expected, rtol):
    """``rtol`` relative to the largest entry of ``expected`` (sums cancel to near zero)."""
    expected = expected.detach().numpy()
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=rtol,
                               atol=rtol * max(np.abs(expected).max(), 1.0))


@pytest.mark.parametrize("geometry", GEOMETRIES.values(), ids=GEOMETRIES.keys())
def test_grouped_conv2d_forward_and_backward_match_torch(geometry, dtype):
    n, c, h, w, f, groups, k, s, p, d = geometry
    k = (k, k) if isinstance(k, int) else k
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((f, c // groups, *k)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype)
    kwargs = dict(stride=s, padding=p, dilation=d, groups=groups)
    xt, wtt, bt = (torch.tensor(a, requires_grad=True) for a in (x, wt, b))
    yt = F.conv2d(xt, wtt, bt, **kwargs)
    y = ops.conv2d(x, wt, b, **kwargs)
    assert_close(y, yt, DTYPES[dtype])
    dy = rng.standard_normal(y.shape).astype(dtype)
    yt.backward(torch.tensor(dy))
    dx, dw, db = ops.conv2d_backward(dy, x, wt, **kwargs)
    rtol = DTYPES[dtype] * 10  # sums over the batch and positions
    assert_close(dx, xt.grad, rtol)
    assert_close(dw, wtt.grad, rtol)
    assert_close(db, bt.grad, rtol)


@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (4, 16, 8, 8), (1, 2, 1, 1), (2, 5, 32, 32)])
def test_global_pools_forward_and_backward_match_torch(shape, dtype):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape).astype(dtype)
    dy = rng.standard_normal(shape[:2]).astype(dtype)
    xt = torch.tensor(x, requires_grad=True)
    yt = F.adaptive_avg_pool2d(xt, 1).flatten(1)
    assert_close(ops.global_avg_pool2d(x), yt, DTYPES[dtype])
    yt.backward(torch.tensor(dy))
    assert_close(ops.global_avg_pool2d_backward(dy, shape), xt.grad, DTYPES[dtype])

    xt = torch.tensor(x, requires_grad=True)
    yt, indices = F.adaptive_max_pool2d(xt, 1, return_indices=True)
    y, argmax = ops.global_max_pool2d(x)
    assert_close(y, yt.flatten(1), 0)
    np.testing.assert_array_equal(argmax, indices.flatten(1).numpy())
    yt.flatten(1).backward(torch.tensor(dy))
    assert_close(ops.global_max_pool2d_backward(dy, argmax, shape), xt.grad, 0)
