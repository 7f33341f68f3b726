"""Layers and the loss, each against a plain reference or finite differences (float64)."""

import math
import pickle

import numpy as np
import pytest
from gradcheck import numerical_gradient
from numpy.testing import assert_allclose

from skconv._layers import Activation, AvgPool2D, Conv2D, Dense, Flatten, MaxPool2D
from skconv._losses import (exponential, log_logistic, log_softmax, logistic, softmax,
                            softmax_cross_entropy)


def _bound(layer, input_shape, seed=0):
    """Build ``layer`` and give it random float64 parameters and zeroed gradients."""
    layer.build(input_shape)
    rng = np.random.RandomState(seed)
    params = {name: rng.standard_normal(shape) for name, shape, _ in layer.param_specs()}
    grads = {name: np.zeros(shape) for name, shape, _ in layer.param_specs()}
    layer.bind(params, grads)
    return layer, params, grads


def _check_layer_gradients(layer, input_shape, seed=0):
    """Backprop of ``sum(r * layer(x))`` against finite differences, for x and every parameter."""
    layer, params, grads = _bound(layer, input_shape, seed)
    rng = np.random.RandomState(seed + 1)
    # spread values so that no max-pool tie or relu kink sits within the step
    x = rng.permutation(np.prod((2,) + input_shape)).reshape((2,) + input_shape) / 7.0 - 3.05
    r = rng.standard_normal((2,) + layer.output_shape)

    def f():
        return float(np.sum(r * layer.forward(x.copy(), training=False)))

    layer.forward(x.copy(), training=True)
    dx = layer.backward(r.copy(), need_dx=True)
    assert_allclose(dx, numerical_gradient(f, x), rtol=1e-6, atol=1e-8)
    for name in params:
        assert_allclose(grads[name], numerical_gradient(f, params[name]), rtol=1e-6, atol=1e-8)


def _conv_reference(x, w, b, stride, pads, dilation):
    """Plain-loop convolution with explicit (top, bottom, left, right) zero padding."""
    (sh, sw), (dh, dw) = stride, dilation
    xp = np.pad(x, ((0, 0), (0, 0), pads[:2], pads[2:]))
    n, _, h, wd = xp.shape
    f, _, kh, kw = w.shape
    oh, ow = (h - dh * (kh - 1) - 1) // sh + 1, (wd - dw * (kw - 1) - 1) // sw + 1
    y = np.zeros((n, f, oh, ow))
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, :, i * sh:i * sh + dh * (kh - 1) + 1:dh, j * sw:j * sw + dw * (kw - 1) + 1:dw]
            y[:, :, i, j] = np.einsum("nckl,fckl->nf", patch, w) + b
    return y


@pytest.mark.parametrize(
    "kernel_size, stride, dilation, input_hw, pads",
    [
        (3, 1, 1, (5, 6), (1, 1, 1, 1)),
        (4, 1, 1, (5, 6), (1, 2, 1, 2)),      # even kernel: the extra row/column goes last
        ((2, 3), 2, 1, (7, 5), (0, 1, 1, 1)),
        (3, 1, 2, (6, 6), (2, 2, 2, 2)),
        (3, 3, 1, (7, 8), (1, 1, 0, 1)),
    ],
)
def test_conv_same_padding_keeps_ceil_size_and_matches_reference(
    kernel_size, stride, dilation, input_hw, pads
):
    layer, params, _ = _bound(Conv2D(3, kernel_size, stride, "same", dilation), (2,) + input_hw)
    h, w = input_hw
    assert layer.output_shape == (3, -(-h // stride), -(-w // stride))
    x = np.random.RandomState(0).standard_normal((2, 2) + input_hw)
    y = layer.forward(x, training=False)
    ref = _conv_reference(x, params["w"], params["b"], (stride, stride), pads,
                          (dilation, dilation))
    assert_allclose(y, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("padding", ["valid", 1, (0, 2)])
def test_conv_explicit_padding_matches_reference(padding):
    layer, params, _ = _bound(Conv2D(2, (3, 2), 1, padding), (2, 5, 6))
    ph, pw = (0, 0) if padding == "valid" else np.broadcast_to(padding, 2)
    x = np.random.RandomState(0).standard_normal((3, 2, 5, 6))
    ref = _conv_reference(x, params["w"], params["b"], (1, 1), (ph, ph, pw, pw), (1, 1))
    assert_allclose(layer.forward(x, training=False), ref, rtol=1e-12, atol=1e-12)


def test_conv_valid_kernel_larger_than_input_names_block_and_sizes():
    with pytest.raises(ValueError, match=r"kernel_size=7 .* height 5 in conv block 2"):
        Conv2D(4, 7, padding="valid", name="conv block 2").build((1, 5, 9))


@pytest.mark.parametrize(
    "layer, input_shape",
    [
        (Conv2D(3, 3, 1, "same"), (2, 5, 4)),
        (Conv2D(2, 4, 1, "same"), (2, 5, 5)),         # asymmetric 'same'
        (Conv2D(3, 3, 2, "same"), (2, 6, 6)),         # at a stride: x read short (training)
        (Conv2D(2, (2, 3), 2, "valid", 2), (1, 7, 8)),
        (Conv2D(2, 3, (2, 1), 1), (2, 4, 5)),
        (MaxPool2D(2), (2, 5, 4)),
        (MaxPool2D(3), (1, 2, 7)),                    # window clipped to the map
        (AvgPool2D(2), (2, 4, 5)),
        (AvgPool2D((3, 2)), (1, 2, 4)),
        (Dense(4), (6,)),
        (Flatten(), (2, 3, 2)),
        (Activation("relu"), (3, 4)),
        (Activation("tanh"), (3, 4)),
        (Activation("logistic"), (3, 4)),
        (Activation("identity"), (3, 4)),
    ],
    ids=repr,
)
def test_layer_backward_matches_finite_differences(layer, input_shape):
    _check_layer_gradients(layer, input_shape)


def test_pool_window_larger_than_map_is_clipped():
    x = np.arange(10.0).reshape(1, 2, 1, 5)
    maxpool = MaxPool2D(2)
    assert maxpool.build((2, 1, 5)) == (2, 1, 2)
    assert_allclose(maxpool.forward(x)[0, :, 0], [[1, 3], [6, 8]])
    avgpool = AvgPool2D(4)
    assert avgpool.build((2, 1, 5)) == (2, 1, 1)
    assert_allclose(avgpool.forward(x)[0, :, 0, 0], [1.5, 6.5])
    # a 1x1 map passes through
    assert MaxPool2D(2).build((3, 1, 1)) == (3, 1, 1)


def test_maxpool_backward_routes_to_first_max_on_ties():
    layer = MaxPool2D(2)
    layer.build((1, 2, 2))
    layer.forward(np.ones((1, 1, 2, 2)))
    assert_allclose(layer.backward(np.full((1, 1, 1, 1), 5.0))[0, 0], [[5, 0], [0, 0]])


def test_flatten_orders_features_channel_then_row_then_column():
    x = np.arange(12.0).reshape(1, 3, 2, 2)
    layer = Flatten()
    assert layer.build((3, 2, 2)) == (12,)
    assert_allclose(layer.forward(x)[0], np.arange(12.0))


def test_dense_forward_is_x_times_w_plus_b():
    layer, params, _ = _bound(Dense(3), (4,))
    x = np.random.RandomState(1).standard_normal((5, 4))
    assert_allclose(layer.forward(x), x @ params["w"] + params["b"])
    assert_allclose(layer.forward_fast(x), x @ params["w"] + params["b"])


@pytest.mark.parametrize(
    "kind, ref",
    [("relu", lambda z: np.maximum(z, 0)), ("tanh", np.tanh),
     ("logistic", lambda z: 1 / (1 + np.exp(-z))), ("identity", lambda z: z)],
)
def test_activation_forward_matches_formula(kind, ref):
    z = np.linspace(-5, 5, 21).reshape(3, 7)
    assert_allclose(Activation(kind).forward(z.copy()), ref(z), rtol=1e-12)


@pytest.mark.parametrize("init, bound", [("he", np.sqrt(6 / 18)), ("glorot", np.sqrt(6 / 54))])
def test_conv_init_is_he_for_relu_and_glorot_otherwise(init, bound):
    layer, params, _ = _bound(Conv2D(4, 3, init=init), (2, 5, 5))
    layer.init_params(np.random.RandomState(0))
    w = params["w"]
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.8 * bound
    assert_allclose(params["b"], 0)


def _ce_reference(z, y, sw):
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    loss = -np.sum(sw * np.log(p[np.arange(len(y)), y])) / sw.sum()
    onehot = np.eye(z.shape[1])[y]
    return loss, (p - onehot) * sw[:, None] / sw.sum()


def test_softmax_cross_entropy_matches_reference_and_finite_differences():
    rng = np.random.RandomState(0)
    z, y, sw = rng.standard_normal((6, 4)), rng.randint(4, size=6), rng.uniform(0.5, 2, 6)
    loss, dz = softmax_cross_entropy(z.copy(), y, sw, sw.sum())
    ref_loss, ref_dz = _ce_reference(z, y, sw)
    assert_allclose(loss, ref_loss, rtol=1e-12)
    assert_allclose(dz, ref_dz, rtol=1e-12, atol=1e-15)
    numeric = numerical_gradient(lambda: softmax_cross_entropy(z.copy(), y, sw, sw.sum())[0], z)
    assert_allclose(dz, numeric, rtol=1e-6, atol=1e-9)


def _softmax_reference(z):
    """Row by row in Python floats (doubles): max, exp(z - max) by skconv's exp (one
    value at a time), their sum in order, then each divided by it."""
    out = np.empty(z.shape)
    for i, row in enumerate(z.tolist()):
        top = max(row)
        e = [float(exponential(np.array([[v - top]]))[0, 0]) for v in row]
        total = 0.0
        for v in e:
            total += v
        out[i] = [v / total for v in e]
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [1, 2, 10, 37])
def test_softmax_equals_a_plain_loop_bit_for_bit_and_leaves_the_logits(dtype, k):
    z = (np.random.RandomState(k).standard_normal((50, k)) * 8).astype(dtype)
    before = z.copy()
    p = softmax(z)
    assert p.dtype == np.float64
    np.testing.assert_array_equal(p, _softmax_reference(z))
    np.testing.assert_array_equal(z, before)
    # a row's probabilities depend on that row only
    np.testing.assert_array_equal(np.vstack([softmax(z[i:i + 1]) for i in range(len(z))]), p)
    shifted = z.astype(np.float64) - z.max(1, keepdims=True)
    assert_allclose(p, np.exp(shifted) / np.exp(shifted).sum(1, keepdims=True), rtol=1e-14)


def test_exp_and_log_of_the_output_activations_are_within_ulps_of_the_c_librarys():
    # skconv's own exp and log (_kernels/elementary.h), which the output activations
    # use so that no CPU gives other bits: as accurate as the C library's to an ulp
    # or two, and its special values
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(-745, 709.7, 20000), rng.uniform(-1, 1, 20000),
                        rng.uniform(-1e-8, 1e-8, 1000), [0.0, -0.0, 709.78, -700.0, 1e-300]])
    e = exponential(x[None, :])[0]
    ref = np.array([math.exp(v) for v in x])
    normal = ref > np.finfo(np.float64).tiny
    np.testing.assert_array_max_ulp(e[normal], ref[normal], maxulp=1)
    assert_allclose(e[~normal], ref[~normal], rtol=1e-12, atol=1e-320)
    special = exponential(np.array([[np.inf, -np.inf, np.nan, 710.0, -746.0]]))[0]
    np.testing.assert_array_equal(special, [np.inf, 0.0, np.nan, np.inf, 0.0])
    # log through log-softmax: k equal logits give -log(k) in every column
    for k in [1, 2, 3, 7, 10, 255, 1000, 4097]:
        np.testing.assert_array_max_ulp(log_softmax(np.zeros((1, k)))[0, 0], -math.log(k),
                                        maxulp=2)
    # log1p through the log-logistic of negative logits: z - log1p(exp(z))
    z = np.concatenate([-np.geomspace(1e-12, 700, 5000), np.geomspace(1e-12, 700, 5000)])
    got = log_logistic(z[None, :])[0]
    want = np.array([-math.log1p(math.exp(-v)) if v >= 0 else v - math.log1p(math.exp(v))
                     for v in z])
    np.testing.assert_array_max_ulp(got, want, maxulp=6)
    assert_allclose(logistic(z[None, :])[0], 1 / (1 + np.exp(-z)), rtol=1e-15)
    np.testing.assert_array_equal(
        log_logistic(np.array([[np.inf, -np.inf, np.nan, 800.0, -800.0]]))[0],
        [0.0, -np.inf, np.nan, 0.0, -800.0])
    np.testing.assert_array_equal(
        logistic(np.array([[np.inf, -np.inf, np.nan, 800.0, -800.0]]))[0],
        [1.0, 0.0, np.nan, 1.0, 0.0])


def test_softmax_of_huge_logits_is_finite_and_of_non_finite_rows_is_nan():
    z = np.array([[1e300, -1e300, 0.0], [np.nan, 1.0, 2.0], [np.inf, 1.0, 2.0],
                  [-np.inf, -np.inf, -np.inf], [1.0, -np.inf, 2.0]])
    p = softmax(z)
    np.testing.assert_array_equal(p[0], [1.0, 0.0, 0.0])
    assert np.isnan(p[1:4]).all()
    np.testing.assert_array_equal(p[4], _softmax_reference(z[4:]).ravel())
    assert p[4, 1] == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_cross_entropy_is_finite_for_huge_logits(dtype):
    z = np.array([[1e4, -1e4, 0.0], [-3e4, 3e4, 2e4]], dtype=dtype)
    loss, dz = softmax_cross_entropy(z.copy(), np.array([1, 1]), np.ones(2), 2.0)
    # the first row is wrong by 2e4 nats, the second right with certainty
    assert_allclose(loss, 2e4 / 2, rtol=1e-6)
    assert np.isfinite(dz).all()
    log_p = log_softmax(z.astype(np.float64))
    assert np.isfinite(log_p).all()
    assert_allclose(np.exp(log_p).sum(1), 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threads", [1, 2])
def test_one_pass_add_and_relu_gradient_have_numpys_bits(dtype, threads):
    # the residual add and every ReLU's gradient run as one pass (_kernels/_elementwise):
    # element for element numpy's arithmetic, NaN, infinities and -0.0 included
    from numpy.testing import assert_array_equal
    from threadpoolctl import threadpool_limits

    from skconv import _engine

    rng = np.random.default_rng(0)
    shape = (3, 5, 70, 70)  # above one thread's share of work
    a, b, dy = (rng.standard_normal(shape).astype(dtype) for _ in range(3))
    a.flat[:6] = [np.nan, -0.0, np.inf, -np.inf, 0.0, -1.0]
    b.flat[:6] = [1.0, 0.0, -np.inf, 1.0, -0.0, 1.0]
    dy.flat[:4] = [np.nan, -2.0, np.inf, -0.0]
    with threadpool_limits(limits=threads), np.errstate(invalid="ignore"):
        for relu in (False, True):
            expected = a + b
            if relu:
                expected = np.maximum(expected, 0)
            assert_array_equal(_engine.add(a, b, np.empty_like(a), relu=relu), expected)
        y = np.maximum(a + b, 0)
        expected = np.multiply(dy, y > 0)
        got, copy = dy.copy(), np.empty_like(dy)
        _engine.relu_backward(got, y, copy)
        assert_array_equal(got, expected)
        assert_array_equal(copy, expected)
        alone = dy.copy()
        _engine.relu_backward(alone, y)
        assert_array_equal(alone, expected)
        # a strided dy still changes in place
        wide = np.zeros(shape[:3] + (140,), dtype)
        strided = wide[..., ::2]
        strided[...] = dy
        _engine.relu_backward(strided, y)
        assert_array_equal(wide[..., ::2], expected)


def test_a_layer_pickles_while_another_thread_sets_its_caches():
    # a model saved while another thread runs its first prediction: that sets
    # the layers' caches (_g, _plans) as pickling reads their attributes. A
    # key that sets one when read stands in for the other thread.
    layer = Dense(3)
    layer.build((4,))

    class SetsACache(str):
        def startswith(self, prefix, *args):
            layer._plans = {}
            return str.startswith(self, prefix, *args)

    layer.__dict__[SetsACache("_cache")] = None
    restored = pickle.loads(pickle.dumps(layer))
    assert vars(restored) == layer.__getstate__() and restored.units == 3
