"""1-D convolution and pooling against torch (Conv1d, MaxPool1d, AvgPool1d,
AdaptiveAvgPool1d(1)), forward and backward by autograd: a second, independent
oracle next to the plain-loop references of test_ops_1d.py. Skipped when torch
is not installed.
"""

import numpy as np
import pytest

from skconv import ops

# the tolerances, dtype fixture and comparison of the 2-D tests against torch
from test_ops_grouped_torch import DTYPES, assert_close, dtype  # noqa: F401

torch = pytest.importorskip("torch")
F = torch.nn.functional

# (n, c, length, f, k, stride, padding, dilation, groups)
CONVS = {
    "fcn block 1": (2, 1, 512, 8, 8, 1, 3, 1, 1),
    "fcn block 2": (2, 8, 128, 16, 5, 1, 2, 1, 1),
    # enough channels and filters for Winograd's product (_engine.takes_winograd)
    "fcn block 2, 64 to 128": (2, 64, 100, 128, 5, 1, 2, 1, 1),
    "fcn block 3, 256 to 128": (2, 256, 90, 128, 3, 1, 1, 1, 1),
    "5 taps, 32 to 40, padding past the span": (2, 32, 40, 40, 5, 1, 6, 1, 1),
    "stride 2": (3, 3, 41, 5, 4, 2, 1, 1, 1),
    "dilation 3": (2, 4, 50, 3, 3, 1, 3, 3, 1),
    "groups 2 stride 3": (2, 4, 33, 6, 5, 3, 2, 1, 2),
    "depthwise": (2, 5, 64, 10, 7, 1, 3, 1, 5),
}
# (n, c, length, kernel_size, stride, padding)
POOLS = {
    "2": (2, 3, 64, 2, None, 0),
    "3 stride 2 padding 1": (2, 4, 33, 3, 2, 1),
    "5 stride 1 padding 2": (1, 2, 40, 5, 1, 2),
}
@pytest.mark.parametrize("geometry", CONVS.values(), ids=CONVS.keys())
def test_conv1d_forward_and_backward_match_torch(geometry, dtype):
    n, c, length, f, k, s, p, d, groups = geometry
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, length)).astype(dtype)
    w = rng.standard_normal((f, c // groups, k)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype)
    kwargs = dict(stride=s, padding=p, dilation=d, groups=groups)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    yt = F.conv1d(xt, wt, bt, **kwargs)
    y = ops.conv1d(x, w, b, **kwargs)
    assert_close(y, yt, DTYPES[dtype])
    dy = rng.standard_normal(y.shape).astype(dtype)
    yt.backward(torch.tensor(dy))
    dx, dw, db = ops.conv1d_backward(dy, x, w, **kwargs)
    rtol = DTYPES[dtype] * 10  # sums over the batch and the steps
    assert_close(dx, xt.grad, rtol)
    assert_close(dw, wt.grad, rtol)
    assert_close(db, bt.grad, rtol)


@pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel")
def test_same_padding_of_an_even_kernel_puts_the_extra_step_at_the_end():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 30))
    w = rng.standard_normal((4, 3, 8))
    expected = F.conv1d(torch.tensor(x), torch.tensor(w), padding="same").numpy()
    # the 7 steps of padding: 3 at each end by conv1d, the seventh at the end first
    y = ops.conv1d(np.pad(x, ((0, 0), (0, 0), (0, 1))), w, padding=3)
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("geometry", POOLS.values(), ids=POOLS.keys())
def test_pool1d_forward_and_backward_match_torch(geometry, dtype):
    n, c, length, k, s, p = geometry
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, length)).astype(dtype)
    dy_shape = ops.avg_pool1d(x, k, s, p).shape
    dy = rng.standard_normal(dy_shape).astype(dtype)
    for torch_pool, ours in ((F.max_pool1d, ops.max_pool1d), (F.avg_pool1d, ops.avg_pool1d)):
        xt = torch.tensor(x, requires_grad=True)
        yt = torch_pool(xt, k, k if s is None else s, p)
        yt.backward(torch.tensor(dy))
        if ours is ops.max_pool1d:
            y, argmax = ours(x, k, s, p)
            _, targmax = F.max_pool1d(torch.tensor(x), k, k if s is None else s, p,
                                      return_indices=True)
            np.testing.assert_array_equal(argmax, targmax.numpy())
            dx = ops.max_pool1d_backward(dy, argmax, x.shape)
        else:
            y = ours(x, k, s, p)
            dx = ops.avg_pool1d_backward(dy, x.shape, k, s, p)
        assert_close(y, yt, DTYPES[dtype])
        assert_close(dx, xt.grad, DTYPES[dtype])


def test_global_avg_pool1d_is_adaptive_avg_pool1d_of_1(dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4, 513)).astype(dtype)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.nn.AdaptiveAvgPool1d(1)(xt)[:, :, 0]
    assert_close(ops.global_avg_pool1d(x), yt, DTYPES[dtype])
    dy = rng.standard_normal((3, 4)).astype(dtype)
    yt.backward(torch.tensor(dy))
    assert_close(ops.global_avg_pool1d_backward(dy, x.shape), xt.grad, DTYPES[dtype])
