"""Grouped and depthwise convolution and global pooling in skconv.ops.

Plain-loop references first (each next to the fast version's test), then
gradients by finite differences, the bits of a row whatever batch or thread
count computes it, and bad arguments. torch as a second oracle lives in
test_ops_grouped_torch.py.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from threadpoolctl import threadpool_limits

from gradcheck import numerical_gradient
from skconv import ops
from skconv._kernels import _gemm
from skconv import _engine

AVAILABLE_PATHS = [p for p in ops.SIMD_PATHS if _gemm.cpu_supports(p)]

# (n, c, h, w, f, groups, kernel_size, stride, padding, dilation)
GROUPED = {
    "depthwise 3x3": (2, 4, 7, 6, 4, 4, 3, 1, 1, 1),
    "depthwise stride 2": (2, 3, 8, 7, 3, 3, 3, 2, 1, 1),
    "depthwise multiplier 2": (2, 3, 6, 6, 6, 3, (3, 2), 1, (1, 0), 1),
    "depthwise dilation, stride not dividing": (1, 2, 9, 8, 4, 2, (2, 3), (3, 2), (2, 1), (2, 2)),
    "depthwise padding past the kernel": (2, 2, 4, 5, 2, 2, 3, 1, 3, 1),
    "depthwise 1x1": (3, 5, 4, 4, 5, 5, 1, 1, 0, 1),
    "groups 2": (2, 4, 6, 7, 6, 2, 3, 1, 1, 1),
    "groups 4 stride 2": (2, 8, 7, 7, 4, 4, 3, 2, 1, 1),
    "groups 2 dilation": (1, 4, 8, 8, 2, 2, (3, 2), 1, (2, 0), (2, 3)),
}


def _case(geometry, dtype, seed=0):
    n, c, h, w, f, groups, k, s, p, d = geometry
    kh, kw = (k, k) if isinstance(k, int) else k
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((f, c // groups, kh, kw)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype)
    return x, wt, b, dict(stride=s, padding=p, dilation=d, groups=groups)


def _padded(x, kernel_shape, stride, padding, dilation, dtype=np.float64):
    """x zero-padded, and the geometry: ``(xp, (sh, sw), (dh, dw), (oh, ow))``."""
    (sh, sw), (ph, pw), (dh, dw) = (v if isinstance(v, tuple) else (v, v)
                                    for v in (stride, padding, dilation))
    n, c, h, wd = x.shape
    kh, kw = kernel_shape
    xp = np.zeros((n, c, h + 2 * ph, wd + 2 * pw), dtype=dtype)
    xp[:, :, ph:ph + h, pw:pw + wd] = x
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    return xp, (sh, sw), (dh, dw), (oh, ow)


def reference_grouped_conv2d(x, w, b, stride, padding, dilation, groups):
    """The oracle: each output as the plain sum over its group's channels and taps."""
    n = x.shape[0]
    f, cg, kh, kw = w.shape
    fg = f // groups
    xp, (sh, sw), (dh, dw), (oh, ow) = _padded(x, (kh, kw), stride, padding, dilation)
    y = np.zeros((n, f, oh, ow))
    for s in range(n):
        for o in range(f):
            for ch in range(cg):
                for i in range(oh):
                    for j in range(ow):
                        for ki in range(kh):
                            for kj in range(kw):
                                y[s, o, i, j] += (w[o, ch, ki, kj]
                                                  * xp[s, o // fg * cg + ch, i * sh + ki * dh,
                                                       j * sw + kj * dw])
            y[s, o] += 0 if b is None else b[o]
    return y


def depthwise_same_order(x, w, b, stride, padding, dilation):
    """The depthwise kernel's own order in x's dtype, a whole plane at a time:
    0, then each tap in (ki, kj) order, then the bias. A tap on the zero padding
    adds +0, which leaves a sum that started at +0 unchanged, so this has the
    kernel's bits exactly."""
    n, c = x.shape[:2]
    f, _, kh, kw = w.shape
    m = f // c
    xp, (sh, sw), (dh, dw), (oh, ow) = _padded(x, (kh, kw), stride, padding, dilation, x.dtype)
    xm = np.repeat(xp, m, axis=1)
    y = np.zeros((n, f, oh, ow), dtype=x.dtype)
    for ki in range(kh):
        for kj in range(kw):
            window = xm[:, :, ki * dh:ki * dh + sh * (oh - 1) + 1:sh,
                        kj * dw:kj * dw + sw * (ow - 1) + 1:sw]
            y = y + window * w[:, 0, ki, kj][None, :, None, None]
    return y if b is None else y + b[None, :, None, None]


def reference_grouped_conv2d_backward(dy, x, w, stride, padding, dilation, groups):
    """The oracle: dx, dw, db of reference_grouped_conv2d by its loops' adjoint."""
    n, c, h, wd = x.shape
    f, cg, kh, kw = w.shape
    fg = f // groups
    xp, (sh, sw), (dh, dw), (oh, ow) = _padded(x, (kh, kw), stride, padding, dilation)
    ph, pw = (xp.shape[2] - h) // 2, (xp.shape[3] - wd) // 2
    dxp = np.zeros_like(xp)
    dwt = np.zeros(w.shape)
    for s in range(n):
        for o in range(f):
            for ch in range(cg):
                channel = o // fg * cg + ch
                for ki in range(kh):
                    for kj in range(kw):
                        rows = slice(ki * dh, ki * dh + sh * (oh - 1) + 1, sh)
                        cols = slice(kj * dw, kj * dw + sw * (ow - 1) + 1, sw)
                        dwt[o, ch, ki, kj] += (dy[s, o] * xp[s, channel, rows, cols]).sum()
                        dxp[s, channel, rows, cols] += dy[s, o] * w[o, ch, ki, kj]
    return dxp[:, :, ph:ph + h, pw:pw + wd], dwt, dy.sum(axis=(0, 2, 3))


# ---------------------------------------------------------------------------- forward


def test_reference_grouped_conv2d_is_a_dense_conv_with_zero_blocks():
    # the oracle against a second construction: groups as a block-diagonal weight
    x, w, b, kwargs = _case(GROUPED["groups 2"], np.float64)
    f, cg, kh, kw = w.shape
    dense = np.zeros((f, cg * 2, kh, kw))
    dense[:f // 2, :cg], dense[f // 2:, cg:] = w[:f // 2], w[f // 2:]
    groups = kwargs.pop("groups")
    assert_allclose(reference_grouped_conv2d(x, w, b, groups=groups, **kwargs),
                    ops.conv2d(x, dense, b, **kwargs), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 2e-5)])
@pytest.mark.parametrize("geometry", GROUPED.values(), ids=GROUPED.keys())
def test_grouped_conv2d_matches_reference(geometry, dtype, rtol):
    x, w, b, kwargs = _case(geometry, dtype)
    y = ops.conv2d(x, w, b, **kwargs)
    expected = reference_grouped_conv2d(x.astype(np.float64), w, b, **kwargs)
    assert y.dtype == dtype and y.shape == expected.shape
    assert_allclose(y, expected, rtol=rtol, atol=rtol * np.abs(expected).max())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", [k for k in GROUPED if k.startswith("depthwise")])
def test_depthwise_conv2d_has_the_bits_of_its_documented_order(name, dtype):
    x, w, b, kwargs = _case(GROUPED[name], dtype)
    groups = kwargs.pop("groups")
    assert_array_equal(ops.conv2d(x, w, b, groups=groups, **kwargs),
                       depthwise_same_order(x, w, b, **kwargs))
    assert_array_equal(ops.conv2d(x, w, None, groups=groups, **kwargs),
                       depthwise_same_order(x, w, None, **kwargs))


@pytest.mark.parametrize("path", AVAILABLE_PATHS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_depthwise_has_its_documented_bits_on_every_row_width_and_path(simd_path, path, dtype):
    # widths and heights through every block of rows by vectors of the SIMD
    # kernel (depthwise.h), with their masked last vectors, and strides 1 to 3
    simd_path(path)
    rng = np.random.default_rng(7)
    for h, wd, stride, padding, m in [(1, 1, 1, 1, 1), (3, 5, 1, 1, 2), (9, 8, 1, 1, 1),
                                      (10, 9, 1, 1, 1), (4, 17, 1, 1, 1), (3, 33, 1, 1, 1),
                                      (3, 40, 1, 0, 1), (12, 65, 1, 1, 1), (9, 31, 2, 1, 1),
                                      (11, 70, 3, 2, 1), (8, 8, 2, 0, 2),
                                      (4, 13, 2, 3, 2), (5, 9, 1, 3, 1)]:  # padding > span: scatter
        x = rng.standard_normal((2, 3, h, wd)).astype(dtype)
        w = rng.standard_normal((3 * m, 1, 3, 3)).astype(dtype)
        b = rng.standard_normal(3 * m).astype(dtype)
        kwargs = dict(stride=stride, padding=padding, dilation=1)
        y = ops.conv2d(x, w, b, groups=3, **kwargs)
        assert_array_equal(y, depthwise_same_order(x, w, b, **kwargs))
        dy = rng.standard_normal(y.shape).astype(dtype)
        dx, dw, db = ops.conv2d_backward(dy, x, w, groups=3, **kwargs)
        expected = reference_grouped_conv2d_backward(dy.astype(np.float64), x, w, groups=3,
                                                     **kwargs)
        rtol = 1e-12 if dtype == np.float64 else 5e-5
        for got, want in zip((dx, dw, db), expected):
            assert_allclose(got, want, rtol=rtol, atol=rtol * np.abs(want).max())


@settings(max_examples=50)
@given(n=st.integers(1, 3), c=st.integers(2, 4), m=st.integers(1, 2), h=st.integers(1, 11),
       wd=st.integers(1, 19), k=st.tuples(st.integers(1, 4), st.integers(1, 4)),
       stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       padding=st.tuples(st.integers(0, 3), st.integers(0, 3)),
       dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_depthwise_on_random_geometry_matches_the_references(n, c, m, h, wd, k, stride, padding,
                                                           dilation, dtype):
    # c >= 2: groups == c == 1 is the dense convolution, whose order is the GEMM's
    spans = [d * (kk - 1) + 1 for d, kk in zip(dilation, k)]
    if h + 2 * padding[0] < spans[0] or wd + 2 * padding[1] < spans[1]:
        with pytest.raises(ValueError, match="does not fit input"):
            ops.conv2d(np.zeros((n, c, h, wd), dtype), np.zeros((c * m, 1) + k, dtype), groups=c,
                       stride=stride, padding=padding, dilation=dilation)
        return
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, h, wd)).astype(dtype)
    w = rng.standard_normal((c * m, 1) + k).astype(dtype)
    b = rng.standard_normal(c * m).astype(dtype)
    kwargs = dict(stride=stride, padding=padding, dilation=dilation)
    y = ops.conv2d(x, w, b, groups=c, **kwargs)
    assert_array_equal(y, depthwise_same_order(x, w, b, **kwargs))
    dy = rng.standard_normal(y.shape).astype(dtype)
    expected = reference_grouped_conv2d_backward(dy.astype(np.float64), x, w, groups=c, **kwargs)
    rtol = 1e-12 if dtype == np.float64 else 5e-5
    for got, want in zip(ops.conv2d_backward(dy, x, w, groups=c, **kwargs), expected):
        assert_allclose(got, want, rtol=rtol, atol=rtol * max(np.abs(want).max(), 1))


def test_groups_1_is_the_dense_convolution_bit_for_bit():
    x, _, b, kwargs = _case(GROUPED["depthwise 3x3"], np.float32)
    w = np.random.default_rng(1).standard_normal((4, 4, 3, 3)).astype(np.float32)
    kwargs.pop("groups")
    y = ops.conv2d(x, w, b, **kwargs)
    assert_array_equal(ops.conv2d(x, w, b, groups=1, **kwargs), y)
    dy = np.cos(np.arange(y.size, dtype=np.float32)).reshape(y.shape)
    for a, c in zip(ops.conv2d_backward(dy, x, w, groups=1, **kwargs),
                    ops.conv2d_backward(dy, x, w, **kwargs)):
        assert_array_equal(a, c)


@pytest.mark.parametrize("name", ["depthwise multiplier 2", "groups 4 stride 2"])
def test_private_grouped_conv2d_applies_relu_and_writes_out(name):
    x, w, b, kwargs = _case(GROUPED[name], np.float64)
    groups = kwargs["groups"]
    y = ops.conv2d(x, w, b, **kwargs)
    g = _engine.geometry(x.shape, w.shape[2:], kwargs["stride"], kwargs["padding"],
                      kwargs["dilation"])
    out = np.full(y.shape, np.nan)
    got = _engine.grouped_conv2d(x, w.reshape(len(w), -1), b, g, groups, out=out, relu=True)
    assert got is out
    assert_array_equal(out, np.maximum(y, 0))


# ---------------------------------------------------------------------------- backward


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 5e-5)])
@pytest.mark.parametrize("geometry", GROUPED.values(), ids=GROUPED.keys())
def test_grouped_conv2d_backward_matches_reference(geometry, dtype, rtol):
    x, w, b, kwargs = _case(geometry, dtype)
    y = ops.conv2d(x, w, b, **kwargs)
    dy = np.random.default_rng(2).standard_normal(y.shape).astype(dtype)
    dx, dw, db = ops.conv2d_backward(dy, x, w, **kwargs)
    expected = reference_grouped_conv2d_backward(dy.astype(np.float64), x, w, **kwargs)
    for got, want in zip((dx, dw, db), expected):
        assert got.dtype == dtype and got.shape == want.shape
        assert_allclose(got, want, rtol=rtol, atol=rtol * np.abs(want).max())
    none, dw2, db2 = ops.conv2d_backward(dy, x, w, need_dx=False, **kwargs)
    assert none is None
    assert_array_equal(dw2, dw)
    assert_array_equal(db2, db)


def test_private_grouped_conv2d_backward_writes_dx_in_place():
    for name in ("depthwise stride 2", "groups 2"):
        x, w, b, kwargs = _case(GROUPED[name], np.float64)
        dy = np.ones(ops.conv2d(x, w, b, **kwargs).shape)
        g = _engine.geometry(x.shape, w.shape[2:], kwargs["stride"], kwargs["padding"],
                          kwargs["dilation"])
        dx = np.full(x.shape, np.nan)
        got, dw, db = _engine.grouped_conv2d_backward(dy, x, w.reshape(len(w), -1), g,
                                                   kwargs["groups"], True, dx=dx)
        assert got is dx
        assert dw.shape == (len(w), w[0].size) and db.shape == (len(w),)
        assert_array_equal(dx, ops.conv2d_backward(dy, x, w, **kwargs)[0])


@pytest.mark.parametrize("name", ["depthwise 3x3", "depthwise multiplier 2",
                                  "depthwise dilation, stride not dividing", "groups 2"])
def test_grouped_conv2d_gradients_match_finite_differences(name):
    x, w, b, kwargs = _case(GROUPED[name], np.float64)
    x, w, b = x[:1], w.copy(), b.copy()
    dy = np.random.default_rng(3).standard_normal(ops.conv2d(x, w, b, **kwargs).shape)

    def loss():
        return float((ops.conv2d(x, w, b, **kwargs) * dy).sum())

    dx, dw, db = ops.conv2d_backward(dy, x, w, **kwargs)
    for analytic, a in ((dx, x), (dw, w), (db, b)):
        assert_allclose(analytic, numerical_gradient(loss, a), rtol=1e-6, atol=1e-8)


# ---------------------------------------------------------------------------- global pooling


def reference_global_pool(x, reduce):
    n, c = x.shape[:2]
    y = np.empty((n, c), dtype=x.dtype)
    argmax = np.empty((n, c), dtype=np.intp)
    for s in range(n):
        for ch in range(c):
            plane = x[s, ch].ravel().tolist()
            if reduce == "avg":
                y[s, ch] = sum(plane) / len(plane)
            else:
                best = 0
                for k, v in enumerate(plane):
                    if v > plane[best] or v != v:  # first max on ties, last NaN wins
                        best = k
                y[s, ch], argmax[s, ch] = plane[best], best
    return y, argmax


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (1, 1, 1, 1), (3, 2, 8, 8), (2, 4, 1, 17)])
def test_global_pools_match_reference(shape, dtype):
    x = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    y_ref, _ = reference_global_pool(x.astype(np.float64), "avg")
    y = ops.global_avg_pool2d(x)
    assert y.dtype == dtype and y.shape == shape[:2]
    assert_allclose(y, y_ref, rtol=1e-6 if dtype == np.float32 else 1e-14, atol=1e-7)
    y_ref, argmax_ref = reference_global_pool(x, "max")
    y, argmax = ops.global_max_pool2d(x)
    assert_array_equal(y, y_ref)
    assert_array_equal(argmax, argmax_ref)
    assert_array_equal(ops.global_max_pool2d(x, return_argmax=False), y_ref)


def test_global_avg_pool_sums_in_its_documented_order():
    # eight interleaved partial sums, a fixed tree, then the tail in order
    x = np.random.default_rng(1).standard_normal((2, 3, 5, 5)).astype(np.float32)
    v = x.reshape(2, 3, 25)
    lanes = np.zeros((2, 3, 8), np.float32)
    for i in range(0, 24, 8):
        lanes = lanes + v[..., i:i + 8]
    total = (((lanes[..., 0] + lanes[..., 1]) + (lanes[..., 2] + lanes[..., 3]))
             + ((lanes[..., 4] + lanes[..., 5]) + (lanes[..., 6] + lanes[..., 7])))
    total = total + v[..., 24]
    assert_array_equal(ops.global_avg_pool2d(x), total / np.float32(25))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_global_max_pool_matches_one_scan_on_ties_nans_and_signed_zeros(dtype):
    # the kernel scans in interleaved lanes; the answer must be one scan's
    rng = np.random.default_rng(8)
    values = np.array([0.0, -0.0, 1.0, -1.0, np.nan, 2.0, 2.0, -np.inf], dtype=dtype)
    for size in (1, 2, 3, 4, 5, 7, 8, 9, 13, 16, 17):
        x = rng.choice(values, size=(40, 1, 1, size), p=[.2, .2, .15, .15, .05, .1, .1, .05])
        y, argmax = ops.global_max_pool2d(x)
        y_ref, argmax_ref = reference_global_pool(x, "max")
        assert_array_equal(argmax, argmax_ref)
        assert_array_equal(y.view(np.uint8), y_ref.view(np.uint8))  # -0.0 and NaN bits too


def test_global_max_pool_first_max_on_ties_and_nan_propagates():
    x = np.zeros((1, 3, 2, 3))
    x[0, 0] = [[1, 5, 2], [5, 0, 5]]
    x[0, 1] = [[np.nan, 1, 2], [np.nan, 9, 0]]
    x[0, 2] = -1.0
    y, argmax = ops.global_max_pool2d(x)
    assert_array_equal(argmax, [[1, 3, 0]])
    assert y[0, 0] == 5 and np.isnan(y[0, 1]) and y[0, 2] == -1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_global_pool_backward_matches_reference(dtype):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 2, 4, 5)).astype(dtype)
    dy = rng.standard_normal((3, 2)).astype(dtype)
    dx = ops.global_avg_pool2d_backward(dy, x.shape)
    assert dx.dtype == dtype
    assert_array_equal(dx, np.broadcast_to((dy / dtype(20))[:, :, None, None], x.shape))
    _, argmax = ops.global_max_pool2d(x)
    dx = ops.global_max_pool2d_backward(dy, argmax, x.shape)
    expected = np.zeros((3, 2, 20), dtype)
    for s in range(3):
        for ch in range(2):
            expected[s, ch, argmax[s, ch]] = dy[s, ch]
    assert_array_equal(dx, expected.reshape(x.shape))


def test_global_pool_gradients_match_finite_differences():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 3, 4))
    dy = rng.standard_normal((2, 3))
    assert_allclose(ops.global_avg_pool2d_backward(dy, x.shape),
                    numerical_gradient(lambda: float((ops.global_avg_pool2d(x) * dy).sum()), x),
                    rtol=1e-7, atol=1e-9)
    _, argmax = ops.global_max_pool2d(x)
    assert_allclose(
        ops.global_max_pool2d_backward(dy, argmax, x.shape),
        numerical_gradient(lambda: float((ops.global_max_pool2d(x)[0] * dy).sum()), x),
        rtol=1e-7, atol=1e-9)


def test_private_global_pools_write_into_buffers():
    x = np.random.default_rng(6).standard_normal((2, 3, 4, 4)).astype(np.float32)
    out, argmax = np.empty((2, 3), np.float32), np.empty((2, 3), np.intp)
    assert _engine.global_avg_pool2d(x, out=out) is out
    assert_array_equal(out, ops.global_avg_pool2d(x))
    y, got = _engine.global_max_pool2d(x, out=out, argmax=argmax)
    assert y is out and got is argmax
    assert _engine.global_max_pool2d(x)[1] is None
    dx = np.empty(x.shape, np.float32)
    assert _engine.global_avg_pool2d_backward(out, x.shape, dx=dx) is dx
    assert _engine.global_max_pool2d_backward(out, argmax, x.shape, dx=dx) is dx


# ---------------------------------------------------------------------------- determinism


def _all_outputs(x, w, b, kwargs):
    y = ops.conv2d(x, w, b, **kwargs)
    dy = np.cos(np.arange(y.size, dtype=x.dtype)).reshape(y.shape)
    pooled = ops.global_avg_pool2d(x), *ops.global_max_pool2d(x)
    return (y, *ops.conv2d_backward(dy, x, w, **kwargs), *pooled,
            ops.global_avg_pool2d_backward(pooled[0], x.shape),
            ops.global_max_pool2d_backward(pooled[1], pooled[2], x.shape))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["depthwise 3x3", "depthwise multiplier 2", "depthwise stride 2",
                                  "groups 2"])
def test_same_bits_for_any_thread_count(name, dtype):
    n, *rest = GROUPED[name]
    x, w, b, kwargs = _case((37, *rest), dtype)
    with threadpool_limits(1):
        one = _all_outputs(x, w, b, kwargs)
    for threads in (2, 4):
        with threadpool_limits(threads):
            for a, c in zip(one, _all_outputs(x, w, b, kwargs)):
                assert_array_equal(a, c)


@pytest.mark.parametrize("name", ["depthwise 3x3", "depthwise stride 2", "groups 4 stride 2"])
def test_a_row_has_the_same_bits_alone_anywhere_in_any_batch(name):
    n, *rest = GROUPED[name]
    x, w, b, kwargs = _case((11, *rest), np.float32)
    batch = ops.conv2d(x, w, b, **kwargs)
    avg, (mx, _) = ops.global_avg_pool2d(x), ops.global_max_pool2d(x)
    for i in (0, 5, 10):
        assert_array_equal(ops.conv2d(x[i:i + 1], w, b, **kwargs)[0], batch[i])
        assert_array_equal(ops.conv2d(x[::-1], w, b, **kwargs)[10 - i], batch[i])
        assert_array_equal(ops.global_avg_pool2d(x[i:i + 1])[0], avg[i])
        assert_array_equal(ops.global_max_pool2d(x[i:i + 1])[0][0], mx[i])


@pytest.mark.parametrize("path", AVAILABLE_PATHS)
def test_same_bits_on_every_simd_path(simd_path, path):
    expected = {}
    for name in ("depthwise 3x3", "groups 2"):
        x, w, b, kwargs = _case(GROUPED[name], np.float32)
        simd_path("portable")
        expected[name] = _all_outputs(x, w, b, kwargs)
        simd_path(path)
        for a, c in zip(expected[name], _all_outputs(x, w, b, kwargs)):
            assert_array_equal(a, c)


# ---------------------------------------------------------------------------- inputs


def test_read_only_and_memory_mapped_inputs(tmp_path):
    x, w, b, kwargs = _case(GROUPED["depthwise multiplier 2"], np.float64)
    expected = _all_outputs(x, w, b, kwargs)
    arrays = []
    for name, a in (("x", x), ("w", w), ("b", b)):
        np.save(tmp_path / f"{name}.npy", a)
        arrays.append(np.load(tmp_path / f"{name}.npy", mmap_mode="r"))
    assert not arrays[0].flags.writeable
    for a, c in zip(expected, _all_outputs(*arrays, kwargs)):
        assert_array_equal(a, c)
    x.flags.writeable = False
    assert_array_equal(ops.conv2d(x, w, b, **kwargs), expected[0])


def test_non_contiguous_inputs_give_the_contiguous_bits():
    x, w, b, kwargs = _case(GROUPED["groups 2"], np.float32)
    wide = np.zeros(x.shape[:3] + (2 * x.shape[3],), np.float32)
    wide[..., ::2] = x
    assert_array_equal(ops.conv2d(wide[..., ::2], w, b, **kwargs), ops.conv2d(x, w, b, **kwargs))
    assert_array_equal(ops.global_avg_pool2d(wide[..., ::2]), ops.global_avg_pool2d(x))


@pytest.mark.parametrize("groups, w_shape, message", [
    (0, (4, 4, 3, 3), "groups must be a positive int, got 0"),
    (1.0, (4, 4, 3, 3), "groups must be a positive int"),
    (True, (4, 4, 3, 3), "groups must be a positive int"),
    (3, (3, 1, 3, 3), "groups=3 does not divide the 4 input channels of x"),
    (2, (3, 2, 3, 3), "groups=2 does not divide the 3 filters of w"),
    (2, (4, 4, 3, 3), "w has 4 input channels per filter .* groups=2 need 2"),
    (4, (4, 4, 3, 3), "w has 4 input channels per filter .* groups=4 need 1"),
])
def test_bad_groups_are_refused_naming_the_argument(groups, w_shape, message):
    x = np.zeros((1, 4, 5, 5))
    w = np.zeros(w_shape)
    with pytest.raises(ValueError, match=message):
        ops.conv2d(x, w, groups=groups)
    with pytest.raises(ValueError, match=message):
        ops.conv2d_backward(np.zeros((1, w_shape[0], 3, 3)), x, w, groups=groups)


def test_grouped_conv2d_refuses_a_cols_workspace_and_bad_shapes():
    x, w = np.zeros((1, 4, 5, 5)), np.zeros((4, 1, 3, 3))
    with pytest.raises(ValueError, match="cols is a workspace of groups=1 only"):
        ops.conv2d(x, w, groups=4, cols=np.zeros((1, 36, 9)))
    with pytest.raises(ValueError, match="dy must have shape"):
        ops.conv2d_backward(np.zeros((1, 4, 4, 4)), x, w, groups=4)
    with pytest.raises(ValueError, match="does not fit input of height 5"):
        ops.conv2d(x, np.zeros((4, 1, 7, 3)), groups=4)
    with pytest.raises(ValueError, match="b must have shape"):
        ops.conv2d(x, w, np.zeros(3), groups=4)


def test_global_pools_refuse_bad_arguments():
    with pytest.raises(ValueError, match="x must be 4-D"):
        ops.global_avg_pool2d(np.zeros((2, 3)))
    with pytest.raises(TypeError, match="x must be float32 or float64"):
        ops.global_max_pool2d(np.zeros((1, 1, 2, 2), dtype=int))
    with pytest.raises(ValueError, match="x must not have an empty axis"):
        ops.global_avg_pool2d(np.zeros((1, 0, 2, 2)))
    with pytest.raises(ValueError, match="dy must have shape"):
        ops.global_avg_pool2d_backward(np.zeros((2, 3)), (2, 4, 5, 5))
    with pytest.raises(ValueError, match="x_shape must be 4 positive ints"):
        ops.global_avg_pool2d_backward(np.zeros((2, 3)), (2, 3, 5))
    with pytest.raises(ValueError, match=r"argmax holds indices in \[0, 25\], outside the 5x5"):
        ops.global_max_pool2d_backward(np.zeros((1, 2)), [[0, 25]], (1, 2, 5, 5))
    with pytest.raises(TypeError, match="argmax must hold integers"):
        ops.global_max_pool2d_backward(np.zeros((1, 2)), np.zeros((1, 2)), (1, 2, 5, 5))
    with pytest.raises(ValueError, match="argmax must have shape"):
        ops.global_max_pool2d_backward(np.zeros((1, 2)), np.zeros((2, 1), int), (1, 2, 5, 5))
