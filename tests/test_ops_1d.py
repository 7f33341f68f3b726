"""1-D convolution and pooling along time (ops.conv1d, max_pool1d, ...): plain-loop
references, finite differences, and the bit-identity guarantees of the 2-D path
(row by row, thread count, SIMD path). Against torch: test_ops_1d_torch.py.
"""

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from threadpoolctl import threadpool_limits

from gradcheck import numerical_gradient
from skconv import _engine, ops
from skconv._kernels import _gemm

AVAILABLE_PATHS = [p for p in ops.SIMD_PATHS if _gemm.cpu_supports(p)]

# (n, c, length, f, k, stride, padding, dilation, groups)
CONVS = {
    "k3 same": (2, 3, 17, 4, 3, 1, 1, 1, 1),
    "k8 no padding": (2, 2, 20, 3, 8, 1, 0, 1, 1),
    "one channel, long": (2, 1, 700, 5, 8, 1, 3, 1, 1),
    "stride 2": (2, 3, 19, 4, 5, 2, 2, 1, 1),
    "dilation 2": (2, 2, 21, 3, 3, 1, 2, 2, 1),
    "stride 3 dilation 2": (1, 2, 30, 2, 4, 3, 1, 2, 1),
    "padding past the span": (2, 2, 9, 3, 2, 1, 2, 1, 1),
    "groups 2": (2, 4, 15, 6, 3, 1, 1, 1, 2),
    "depthwise": (2, 3, 16, 6, 5, 1, 2, 1, 3),
    # channels and filters enough for Winograd's product (_engine.takes_winograd)
    "winograd k5": (1, 32, 34, 32, 5, 1, 2, 1, 1),
    "winograd k3": (1, 64, 37, 64, 3, 1, 1, 1, 1),
}
WINOGRAD = ("winograd k5", "winograd k3")
# (n, c, length, kernel_size, stride, padding)
POOLS = {
    "2": (2, 3, 16, 2, None, 0),
    "3 stride 2 padding 1": (2, 2, 15, 3, 2, 1),
    "4 stride 1": (1, 2, 11, 4, 1, 2),
    "odd length": (2, 1, 13, 2, None, 0),
}


def _out(length, k, s, p, d):
    return (length + 2 * p - d * (k - 1) - 1) // s + 1


def ref_conv1d(x, w, b, s, p, d, groups):
    """y[n, f, t] = b[f] + sum over the group's channels and the taps, in plain loops."""
    n, c, length = x.shape
    f, cg, k = w.shape
    fg = f // groups
    xp = np.pad(x, ((0, 0), (0, 0), (p, p)))
    y = np.zeros((n, f, _out(length, k, s, p, d)), dtype=np.float64)
    for i in range(n):
        for o in range(f):
            first = o // fg * cg
            for t in range(y.shape[2]):
                acc = 0.0 if b is None else float(b[o])
                for ci in range(cg):
                    for kj in range(k):
                        acc += float(w[o, ci, kj]) * float(xp[i, first + ci, t * s + kj * d])
                y[i, o, t] = acc
    return y


def ref_conv1d_backward(dy, x, w, s, p, d, groups):
    n, c, length = x.shape
    f, cg, k = w.shape
    fg = f // groups
    dxp = np.zeros((n, c, length + 2 * p))
    xp = np.pad(x, ((0, 0), (0, 0), (p, p))).astype(np.float64)
    dw = np.zeros(w.shape)
    for i in range(n):
        for o in range(f):
            first = o // fg * cg
            for t in range(dy.shape[2]):
                for ci in range(cg):
                    for kj in range(k):
                        dxp[i, first + ci, t * s + kj * d] += w[o, ci, kj] * dy[i, o, t]
                        dw[o, ci, kj] += xp[i, first + ci, t * s + kj * d] * dy[i, o, t]
    return dxp[:, :, p:p + length], dw, dy.sum(axis=(0, 2), dtype=np.float64)


def ref_pool1d(x, k, s, p, kind):
    """(y, argmax) of max pooling (padding never wins) or y of average pooling
    (padding counts in the divisor)."""
    s = k if s is None else s
    n, c, length = x.shape
    o = _out(length, k, s, p, 1)
    y = np.zeros((n, c, o), dtype=np.float64)
    argmax = np.zeros((n, c, o), dtype=np.intp)
    for i in range(n):
        for ch in range(c):
            for t in range(o):
                steps = [t * s - p + j for j in range(k)]
                inside = [q for q in steps if 0 <= q < length]
                if kind == "avg":
                    y[i, ch, t] = sum(float(x[i, ch, q]) for q in inside) / k
                else:
                    best = max(inside, key=lambda q: (x[i, ch, q], -q))
                    y[i, ch, t], argmax[i, ch, t] = x[i, ch, best], best
    return y, argmax


def ref_pool1d_backward(dy, x_shape, k, s, p, kind, argmax=None):
    s = k if s is None else s
    dx = np.zeros(x_shape)
    n, c, o = dy.shape
    for i in range(n):
        for ch in range(c):
            for t in range(o):
                if kind == "max":
                    dx[i, ch, argmax[i, ch, t]] += dy[i, ch, t]
                    continue
                for j in range(k):
                    q = t * s - p + j
                    if 0 <= q < x_shape[2]:
                        dx[i, ch, q] += dy[i, ch, t] / k
    return dx


def _conv_case(name, dtype, n=None, seed=0):
    n0, c, length, f, k, s, p, d, groups = CONVS[name]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n or n0, c, length)).astype(dtype)
    w = rng.standard_normal((f, c // groups, k)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype)
    return x, w, b, dict(stride=s, padding=p, dilation=d, groups=groups)


def _rtol(dtype):
    return 1e-12 if dtype == np.float64 else 1e-5


def _close(actual, expected, dtype):
    np.testing.assert_allclose(actual, expected, rtol=_rtol(dtype),
                               atol=_rtol(dtype) * max(np.abs(expected).max(), 1.0))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", CONVS)
def test_conv1d_forward_and_backward_match_loop_reference(name, dtype):
    x, w, b, kw = _conv_case(name, dtype)
    y = ops.conv1d(x, w, b, **kw)
    assert y.dtype == dtype
    _close(y, ref_conv1d(x, w, b, kw["stride"], kw["padding"], kw["dilation"], kw["groups"]),
           dtype)
    dy = np.random.default_rng(1).standard_normal(y.shape).astype(dtype)
    dx, dw, db = ops.conv1d_backward(dy, x, w, **kw)
    rdx, rdw, rdb = ref_conv1d_backward(dy, x, w, kw["stride"], kw["padding"], kw["dilation"],
                                        kw["groups"])
    for actual, expected in ((dx, rdx), (dw, rdw), (db, rdb)):
        assert actual.dtype == dtype and actual.shape == expected.shape
        _close(actual, expected, dtype)
    none, dw2, db2 = ops.conv1d_backward(dy, x, w, need_dx=False, **kw)
    assert none is None
    assert_array_equal(dw2, dw)
    assert_array_equal(db2, db)


@pytest.mark.parametrize("name", ["k3 same", "stride 2", "groups 2", "depthwise"])
def test_conv1d_has_the_bits_of_conv2d_on_images_of_height_1(name):
    x, w, b, kw = _conv_case(name, np.float32)
    s, p, d, groups = kw["stride"], kw["padding"], kw["dilation"], kw["groups"]
    kw2 = dict(stride=(1, s), padding=(0, p), dilation=(1, d), groups=groups)
    y = ops.conv1d(x, w, b, **kw)
    assert_array_equal(y, ops.conv2d(x[:, :, None], w[:, :, None], b, **kw2)[:, :, 0])
    dy = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
    dx, dw, db = ops.conv1d_backward(dy, x, w, **kw)
    dx2, dw2, db2 = ops.conv2d_backward(dy[:, :, None], x[:, :, None], w[:, :, None], **kw2)
    assert_array_equal(dx, dx2[:, :, 0])
    assert_array_equal(dw, dw2[:, :, 0])
    assert_array_equal(db, db2)


@pytest.mark.parametrize("name", ["k3 same", "stride 3 dilation 2", "padding past the span",
                                  "groups 2", "depthwise", "winograd k5"])
def test_conv1d_gradients_match_finite_differences(name):
    x, w, b, kw = _conv_case(name, np.float64, n=1)
    if name not in WINOGRAD:  # whose series are as long as it needs
        x = x[:, :, :12]
    rng = np.random.default_rng(2)
    dy = rng.standard_normal(ops.conv1d(x, w, b, **kw).shape)

    def loss():
        return float(np.sum(ops.conv1d(x, w, b, **kw) * dy))

    dx, dw, db = ops.conv1d_backward(dy, x, w, **kw)
    for analytic, a in ((dx, x), (dw, w), (db, b)):
        np.testing.assert_allclose(analytic, numerical_gradient(loss, a), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", POOLS)
def test_pool1d_forward_and_backward_match_loop_reference(name, dtype):
    n, c, length, k, s, p = POOLS[name]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, length)).astype(dtype)
    x[0, 0, :4] = 1.5  # a tie: the first maximum wins
    y, argmax = ops.max_pool1d(x, k, s, p)
    ry, rarg = ref_pool1d(x, k, s, p, "max")
    assert_array_equal(y, ry.astype(dtype))
    assert_array_equal(argmax, rarg)
    assert_array_equal(ops.max_pool1d(x, k, s, p, return_argmax=False), y)
    dy = rng.standard_normal(y.shape).astype(dtype)
    _close(ops.max_pool1d_backward(dy, argmax, x.shape),
           ref_pool1d_backward(dy, x.shape, k, s, p, "max", argmax), dtype)
    a = ops.avg_pool1d(x, k, s, p)
    _close(a, ref_pool1d(x, k, s, p, "avg")[0], dtype)
    _close(ops.avg_pool1d_backward(dy, x.shape, k, s, p),
           ref_pool1d_backward(dy, x.shape, k, s, p, "avg"), dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_global_pools_1d_match_reference(dtype):
    x = np.random.default_rng(0).standard_normal((3, 4, 37)).astype(dtype)
    _close(ops.global_avg_pool1d(x), x.astype(np.float64).mean(axis=2), dtype)
    y, argmax = ops.global_max_pool1d(x)
    assert_array_equal(y, x.max(axis=2))
    assert_array_equal(argmax, x.argmax(axis=2))
    dy = np.ones((3, 4), dtype=dtype)
    _close(ops.global_avg_pool1d_backward(dy, x.shape), np.full(x.shape, 1 / 37), dtype)
    dx = ops.global_max_pool1d_backward(dy, argmax, x.shape)
    assert dx.shape == x.shape and dx.sum() == 12 and (dx.argmax(axis=2) == argmax).all()


def _all_outputs(x, w, b, kw):
    y = ops.conv1d(x, w, b, **kw)
    dy = np.cos(np.arange(y.size, dtype=x.dtype)).reshape(y.shape)
    pooled, argmax = ops.max_pool1d(y, 3, 2, 1)
    return (y, *ops.conv1d_backward(dy, x, w, **kw), pooled, argmax,
            ops.max_pool1d_backward(pooled, argmax, y.shape), ops.avg_pool1d(y, 2),
            ops.global_avg_pool1d(y))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["k3 same", "one channel, long", "stride 2", "groups 2",
                                  *WINOGRAD])
def test_same_bits_for_any_thread_count(name, dtype):
    x, w, b, kw = _conv_case(name, dtype, n=37)
    with threadpool_limits(1):
        one = _all_outputs(x, w, b, kw)
    for threads in (2, 4):
        with threadpool_limits(threads):
            for a, c in zip(one, _all_outputs(x, w, b, kw)):
                assert_array_equal(a, c)


@pytest.mark.parametrize("name", ["k8 no padding", "one channel, long", "stride 2", "depthwise",
                                  *WINOGRAD])
def test_a_series_has_the_same_bits_alone_anywhere_in_any_batch(name):
    x, w, b, kw = _conv_case(name, np.float32, n=11)
    batch = ops.conv1d(x, w, b, **kw)
    for i in (0, 5, 10):
        assert_array_equal(ops.conv1d(x[i:i + 1], w, b, **kw)[0], batch[i])
        assert_array_equal(ops.conv1d(x[::-1], w, b, **kw)[10 - i], batch[i])


@pytest.mark.parametrize("path", AVAILABLE_PATHS)
def test_same_bits_on_every_simd_path(simd_path, path):
    for name in ("k3 same", "one channel, long", "stride 2", *WINOGRAD):
        x, w, b, kw = _conv_case(name, np.float32, n=5)
        simd_path("portable")
        expected = _all_outputs(x, w, b, kw)
        simd_path(path)
        for a, c in zip(expected, _all_outputs(x, w, b, kw)):
            assert_array_equal(a, c)


def test_errors_speak_of_series():
    x = np.zeros((2, 3, 5), dtype=np.float32)
    with pytest.raises(ValueError, match="kernel_size=9 .* does not fit a series of length 5"):
        ops.conv1d(x, np.zeros((4, 3, 9), dtype=np.float32))
    with pytest.raises(ValueError, match="does not fit a series of length 5"):
        ops.max_pool1d(x, 6)
    with pytest.raises(ValueError, match="stride must be an int"):
        ops.conv1d(x, np.zeros((4, 3, 3), dtype=np.float32), stride=(1, 2))
    with pytest.raises(ValueError, match="padding=2 must be at most half"):
        ops.avg_pool1d(x, 3, padding=2)
    with pytest.raises(ValueError, match="x must be 3-D"):
        ops.conv1d(x[:, :, :, None], np.zeros((4, 3, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="w has 2 input channels"):
        ops.conv1d(x, np.zeros((4, 2, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="dy must have shape"):
        ops.conv1d_backward(np.zeros((2, 4, 4), np.float32), x, np.zeros((4, 3, 3), np.float32))
    with pytest.raises(ValueError, match="outside the series of length 5"):
        ops.max_pool1d_backward(np.zeros((2, 3, 2), np.float32), np.full((2, 3, 2), 5),
                                x.shape)
    with pytest.raises(ValueError, match=r"x_shape must be 3 positive ints \(N, C, length\)"):
        ops.avg_pool1d_backward(np.zeros((2, 3, 2), np.float32), (2, 3, 1, 5), 2)
    with pytest.raises(ValueError, match=r"outside the series of length 5 of x_shape=\(2, 3, 5\)"):
        ops.global_max_pool1d_backward(np.zeros((2, 3), np.float32), np.full((2, 3), 5), x.shape)
    with pytest.raises(ValueError, match=r"the padded series \(4294967301; kernel_size=3, stride=1, "
                                         r"padding=2147483648, dilation=1\) must be under 2\*\*31"):
        ops.conv1d(x, np.zeros((4, 3, 3), dtype=np.float32), padding=2**31)
    with pytest.raises(ValueError, match=r"the stride \(2147483648; kernel_size=2,"):
        ops.max_pool1d(x, 2, 2**31)


@pytest.mark.parametrize("path", AVAILABLE_PATHS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("c, f", [(40, 16), (70, 16), (70, 10)])
def test_many_taps_give_the_product_of_the_unfolded_series_bit_for_bit(simd_path, path, dtype,
                                                                        c, f):
    # 320 and 560 taps: the implicit product goes over them in blocks (and in one
    # with 10 filters, whose last rows a pair kernel takes); each output is still
    # the one chain over the taps in order that linear's product of im2col has
    simd_path(path)
    rng = np.random.default_rng(c + f)
    x = rng.standard_normal((2, c, 150)).astype(dtype)
    w = rng.standard_normal((f, c, 8)).astype(dtype)
    y = ops.conv1d(x, w, padding=3)
    cols = ops.im2col(x[:, :, None], (1, 8), padding=(0, 3))
    expected = ops.linear(cols, np.ascontiguousarray(w.reshape(f, -1).T))
    assert_array_equal(y.transpose(0, 2, 1).reshape(-1, f), expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize("c, f, k", [(6, 10, 8), (32, 40, 5), (64, 64, 3)])
def test_fewer_series_than_threads_share_each_product_with_the_same_bits(dtype, n, c, f, k):
    # with fewer samples than threads each sample's tiles (Winograd's product:
    # its blocks of tiles) are cut into parts, one task each
    # (_engine.conv2d_plan); every output is still the same chain
    rng = np.random.default_rng(n)
    length = 1000 if c < 32 else 300
    x = rng.standard_normal((n, c, length)).astype(dtype)
    w = rng.standard_normal((f, c, k)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype)
    p = (k - 1) // 2
    with threadpool_limits(1):
        one = ops.conv1d(x, w, b, padding=p)
        one_dx = ops.conv1d_backward(one, x, w, padding=p)[0]
    for threads in (2, 4, 7):
        with threadpool_limits(threads):
            assert_array_equal(ops.conv1d(x, w, b, padding=p), one)
            assert_array_equal(ops.conv1d_backward(one, x, w, padding=p)[0], one_dx)
    if c >= 32:
        return
    # a 2-D map whose tiles start at each row, and one laid end to end
    for h, wd in ((9, 16), (5, 33)):
        x2 = rng.standard_normal((n, 3, h, wd)).astype(dtype)
        w2 = rng.standard_normal((4, 3, 3, 3)).astype(dtype)
        with threadpool_limits(1):
            one = ops.conv2d(x2, w2, b[:4], padding=1)
        with threadpool_limits(4):
            assert_array_equal(ops.conv2d(x2, w2, b[:4], padding=1), one)


@pytest.mark.parametrize("name", WINOGRAD)
def test_winograd_cases_run_winograds_product_forward_and_for_dx(name):
    # the cases above that are meant to test it do: the forward's geometry and
    # the input gradient's (a convolution of dy by the turned kernel)
    n, c, length, f, k, s, p, d, groups = CONVS[name]
    g = _engine.geometry((n, c, 1, length), (1, k), s, (0, p), d)
    assert _engine.takes_winograd(g, f)
    gt = _engine.geometry((n, f, 1, g["ow"]), (1, k), 1, (0, k - 1 - p), d)
    assert _engine.takes_winograd(gt, c)
    # and a few channels fewer, or a shorter series, do not
    assert not _engine.takes_winograd(dict(g, c=c // 2), f)
    assert not _engine.takes_winograd(dict(g, ow=_engine.WINOGRAD_MIN_LENGTH - 1), f)


@pytest.mark.parametrize("m, r", [(4, 5), (6, 3)])
def test_winograd_matrices_compute_the_correlation_exactly(m, r):
    # y = A^T [(G g) . (B^T d)] over exact fractions: the correlation of r taps
    # over m + r - 1 inputs; B^T the same for both tiles (winograd.h has one)
    from fractions import Fraction

    at, g_matrix, bt = _engine.winograd_matrices(m, r)
    alpha = m + r - 1
    assert alpha == 8 and bt == _engine.winograd_matrices(4, 5)[2]
    rng = np.random.default_rng(m)
    d = [Fraction(int(v)) for v in rng.integers(-9, 10, alpha)]
    taps = [Fraction(int(v)) for v in rng.integers(-9, 10, r)]
    u = [sum(g_matrix[xi][k] * taps[k] for k in range(r)) for xi in range(alpha)]
    v = [sum(bt[xi][i] * d[i] for i in range(alpha)) for xi in range(alpha)]
    y = [sum(at[j][xi] * u[xi] * v[xi] for xi in range(alpha)) for j in range(m)]
    assert y == [sum(taps[k] * d[j + k] for k in range(r)) for j in range(m)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("length", [32, 33, 36, 37, 40, 301])
def test_winograd_handles_every_length_and_residual_and_relu(dtype, length):
    # lengths of whole tiles (of 4 and of 6) and one more, and tiles past a
    # vector; with a bias, a residual and the ReLU as the layers call it
    rng = np.random.default_rng(length)
    n, c, f = 3, 64, 64
    for k in (3, 5):
        p = (k - 1) // 2
        x = rng.standard_normal((n, c, 1, length)).astype(dtype)
        w = (rng.standard_normal((f, c * k)) / np.sqrt(c * k)).astype(dtype)
        b = rng.standard_normal(f).astype(dtype)
        res = rng.standard_normal((n, f, 1, length)).astype(dtype)
        g = _engine.geometry(x.shape, (1, k), 1, (0, p), 1)
        assert _engine.takes_winograd(g, f)
        y = _engine.conv2d(x, w, b, g, relu=True, residual=res)
        direct = _engine.conv2d(x, w, b, g, relu=True, residual=res,
                                plan=_engine.conv2d_plan(g, f, x.dtype, n, winograd=False))
        _close(y, direct, dtype)
        assert (y >= 0).all() and y.dtype == dtype


@pytest.mark.parametrize("path", AVAILABLE_PATHS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_winograd_filters_kept_for_the_next_call_give_the_same_bits_and_follow_a_change(
        simd_path, path, dtype):
    # inference keeps the transformed filters (_engine.WinogradFilters) while
    # w stays the same bit for bit: the outputs are those of a call that
    # transforms them itself, before and after a change of w in place
    simd_path(path)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 32, 1, 45)).astype(dtype)
    w = rng.standard_normal((48, 32 * 5)).astype(dtype)
    b = rng.standard_normal(48).astype(dtype)
    g = _engine.geometry(x.shape, (1, 5), 1, (0, 2), 1)
    assert _engine.takes_winograd(g, 48)
    kept = _engine.WinogradFilters()
    w[5, 7] = 0.0
    for change in (None, lambda v: v.__setitem__((5, 7), -0.0), lambda v: v.__imul__(1.5)):
        if change is not None:
            change(w)
        expected = _engine.conv2d(x, w, b, g, relu=True)
        for _ in range(2):
            assert_array_equal(_engine.conv2d(x, w, b, g, relu=True, filters=kept), expected)
        # a zero's sign is a change too: the filters kept are w's bits
        assert_array_equal(kept._kept[1].view(dtype), w)
        assert np.signbit(kept._kept[1].view(dtype)[5, 7]) == np.signbit(w[5, 7])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("c, f, k", [(32, 48, 5), (128, 128, 3)])
def test_winograd_weight_gradient_matches_the_direct_product_with_any_threads(monkeypatch, dtype,
                                                                             c, f, k):
    rng = np.random.default_rng(k)
    n, length, p = 5, 61, (k - 1) // 2
    x = rng.standard_normal((n, c, 1, length)).astype(dtype)
    w = (rng.standard_normal((f, c * k)) / np.sqrt(c * k)).astype(dtype)
    dy = rng.standard_normal((n, f, 1, length)).astype(dtype)
    g = _engine.geometry(x.shape, (1, k), 1, (0, p), 1)
    assert min(c, f) >= _engine.WINOGRAD_GRADIENT_MIN_CHANNELS[k] and _engine.takes_winograd(g, f)
    with threadpool_limits(1):
        one = _engine.conv2d_backward(dy, x, w, g, True)
    for threads in (2, 3):
        with threadpool_limits(threads):
            for a, b in zip(one, _engine.conv2d_backward(dy, x, w, g, True)):
                assert_array_equal(a, b)
    monkeypatch.setattr(_engine, "WINOGRAD_MIN_CHANNELS", {3: 10**9, 5: 10**9})
    direct = _engine.conv2d_backward(dy, x, w, g, True)
    for a, b in zip(one, direct):
        _close(a, b, dtype)
