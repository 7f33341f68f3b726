"""The sequential network (flat parameters, whole-net gradients) and the optimizers."""

import concurrent.futures
import pickle

import numpy as np
import pytest
from gradcheck import numerical_gradient
from numpy.testing import assert_allclose, assert_array_equal

from skconv import _plan
from skconv._layers import Activation, AvgPool2D, Conv2D, Dense, Flatten, MaxPool2D
from skconv._losses import softmax_cross_entropy
from skconv._network import Sequential
from skconv._normalization import BatchNorm1d, BatchNorm2d, Dropout
from skconv._optimizers import AdamOptimizer
from skconv import _engine


def _every_layer_kind_net(dtype=np.float64):
    """A small net with every layer kind, both paddings, stride, dilation and every activation."""
    layers = [
        Conv2D(3, 3, padding="same"), Activation("relu"), MaxPool2D(2),
        Conv2D(4, 2, padding="same", dilation=2), Activation("tanh"), AvgPool2D(2),
        Conv2D(3, (2, 1), stride=(1, 2), padding="valid"), Activation("identity"),
        Flatten(),
        Dense(5), Activation("logistic"),
        Dense(3),
    ]
    net = Sequential(layers, (2, 9, 10), dtype)
    net.init_params(np.random.RandomState(0))
    # non-zero biases so that their gradients are exercised away from the init
    net.params[net.n_weights:] = np.random.RandomState(1).uniform(-0.5, 0.5,
                                                                  net.n_params - net.n_weights)
    return net


def test_whole_network_gradient_matches_finite_differences_for_every_parameter():
    net = _every_layer_kind_net()
    rng = np.random.RandomState(2)
    x = rng.standard_normal((4, 2, 9, 10))
    y = np.array([0, 2, 1, 2])
    sw = np.array([1.0, 0.5, 2.0, 1.5])
    alpha = 0.3

    def loss():
        z = net.forward_fast(x.copy())
        w = net.params[:net.n_weights]
        return (softmax_cross_entropy(z, y, sw, sw.sum())[0]
                + 0.5 * alpha * np.dot(w, w) / sw.sum())

    net.loss_and_grad(x.copy(), y, sw, alpha)
    analytic = net.grads.copy()
    numeric = numerical_gradient(loss, net.params)
    assert net.n_params > 150
    assert_allclose(analytic, numeric, rtol=1e-5, atol=1e-8)
    # and the loss itself is what loss_and_grad reports
    assert_allclose(net.loss_and_grad(x.copy(), y, sw, alpha), loss(), rtol=1e-12)


def test_params_are_one_flat_array_with_weights_first_and_layer_views_into_it():
    net = _every_layer_kind_net()
    weights = [a for _, name, a in net.param_arrays() if name == "w"]
    biases = [a for _, name, a in net.param_arrays() if name == "b"]
    assert net.n_weights == sum(w.size for w in weights)
    for a in weights + biases:
        assert np.shares_memory(a, net.params)
    assert np.shares_memory(weights[-1], net.params[:net.n_weights])
    assert np.shares_memory(biases[0], net.params[net.n_weights:])
    net.params[:] = 7
    assert (net.layers[0]._w == 7).all() and (net.layers[-1]._b == 7).all()


def test_forward_fast_equals_training_forward():
    net = _every_layer_kind_net()
    x = np.random.RandomState(3).standard_normal((5, 2, 9, 10))
    assert_array_equal(net.forward_fast(x.copy()), net.forward(x.copy(), training=True))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_fused_into_pooling_and_dense_changes_no_bits(dtype):
    # the inference pass applies a ReLU inside the max pool or dense layer
    # before it; layer by layer, with the activation on its own, is the same
    layers = [
        Conv2D(4, 3, padding="same"), MaxPool2D(2), Activation("relu"),
        Conv2D(3, 3, padding="valid"), Activation("relu"),
        Flatten(), Dense(6), Activation("relu"), Dense(5), Activation("tanh"), Dense(3),
    ]
    net = Sequential(layers, (2, 10, 9), dtype)
    net.init_params(np.random.RandomState(0))
    x = np.random.RandomState(1).standard_normal((7, 2, 10, 9)).astype(dtype)
    x[0, 0, :4, :4] = -0.0
    x[1, 1, 2, 3] = np.nan
    y = x.copy()
    for layer in net.layers:
        y = layer.forward_fast(y)
    fused = net.forward_fast(x.copy())
    assert_array_equal(fused, y)
    assert_array_equal(np.signbit(fused[2:]), np.signbit(y[2:]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pooling_fused_into_the_convolution_changes_no_bits(monkeypatch, dtype):
    # a stride-1 convolution pools its output as it goes, in training and in
    # inference (skconv._plan.ConvPoolStep); the same net with every layer on
    # its own gives the same outputs, gradients and weights after Adam steps
    def make_net():
        layers = [
            Conv2D(5, 3, padding="same"), MaxPool2D(2), Activation("relu"),
            Conv2D(6, 3, padding="valid"), MaxPool2D(2),
            Conv2D(4, 2, stride=2), MaxPool2D(2), Activation("relu"),
            Flatten(), Dense(3),
        ]
        net = Sequential(layers, (2, 21, 23), dtype)
        net.init_params(np.random.RandomState(0))
        return net

    fused = make_net()
    assert [(s.first, s.last, s.rule) for s in fused.steps()] == [
        (0, 2, "conv_pool"), (3, 4, "conv_pool"), (5, 5, "layer"), (6, 7, "layer"),
        (8, 8, "layer"), (9, 9, "layer")]
    monkeypatch.setattr(_plan, "FUSION_RULES", tuple(
        rule for rule in _plan.FUSION_RULES if rule.step is not _plan.ConvPoolStep))
    apart = make_net()
    assert all(s.rule == "layer" for s in apart.steps())
    rng = np.random.RandomState(1)
    x = rng.randint(-1, 2, size=(6, 2, 21, 23)).astype(dtype)  # ties in the windows
    y = rng.randint(3, size=6)
    sw = np.ones(6, dtype=dtype)
    assert_array_equal(fused.forward_fast(x.copy()), apart.forward_fast(x.copy()))
    optimizers = [AdamOptimizer(net.params, 0.01) for net in (fused, apart)]
    for _ in range(3):
        losses = [net.loss_and_grad(x.copy(), y, sw, 1e-3) for net in (fused, apart)]
        assert losses[0] == losses[1]
        assert_array_equal(fused.grads, apart.grads)
        for net, optimizer in zip((fused, apart), optimizers):
            optimizer.update_params(net.params, net.grads)
    assert_array_equal(fused.params, apart.params)
    assert_array_equal(fused.forward_fast(x.copy()), apart.forward_fast(x.copy()))


def test_planned_inference_calls_follow_the_batch_size_and_the_current_weights():
    # forward_fast plans its layer calls once per input shape; the plans hold
    # no weights, so read-only weights serve and new weights show at once
    net = _every_layer_kind_net()
    x = np.random.RandomState(5).standard_normal((6, 2, 9, 10))

    def layer_by_layer(x):
        for layer in net.layers:
            x = layer.forward_fast(x)
        return x

    read_only = net.params.copy()
    read_only.flags.writeable = False
    net._bind(read_only)
    for rows in (slice(None), slice(0, 1), slice(2, 5), slice(None)):
        assert_array_equal(net.forward_fast(x[rows].copy()), layer_by_layer(x[rows].copy()))
    before = net.forward_fast(x.copy())
    net.set_params(read_only * 0.5)  # rebinds: the read-only array is copied
    after = net.forward_fast(x.copy())
    assert_array_equal(after, layer_by_layer(x.copy()))
    assert not np.array_equal(after, before)


def test_input_conv_is_asked_for_no_dx(monkeypatch):
    calls = []
    original = _engine.conv2d_backward

    def spy(dy, x, w, g, need_dx, *args, **kwargs):
        calls.append(need_dx)
        return original(dy, x, w, g, need_dx, *args, **kwargs)

    monkeypatch.setattr(_engine, "conv2d_backward", spy)
    net = _every_layer_kind_net()
    net.loss_and_grad(np.ones((2, 2, 9, 10)), np.array([0, 1]), np.ones(2), 0.0)
    # backward runs the convs last to first
    assert calls == [True, True, False]


def test_network_pickle_rebinds_layer_views_to_the_flat_parameters():
    net = _every_layer_kind_net()
    x = np.random.RandomState(4).standard_normal((3, 2, 9, 10))
    clone = pickle.loads(pickle.dumps(net))
    assert_array_equal(clone.forward_fast(x.copy()), net.forward_fast(x.copy()))
    clone.params[:] = 0
    assert (clone.layers[0]._w == 0).all()
    assert not np.shares_memory(clone.params, net.params)


def test_optimizer_pickles_without_its_scratch_array():
    opt = AdamOptimizer(np.zeros(1000))
    opt.update_params(np.zeros(1000), np.ones(1000))
    clone = pickle.loads(pickle.dumps(opt))
    assert clone.t == 1 and clone._tmp.shape == (1000,)
    assert len(pickle.dumps(opt)) < 3 * 8 * 1000


def test_ensure_writeable_copies_read_only_params_and_layer_state():
    net = _every_layer_kind_net()
    net.layers[1].running_mean = np.zeros(3)  # fitted state a future layer may keep
    net.layers[1].running_mean.flags.writeable = False
    net._bind(np.array(net.params))
    net.params.flags.writeable = False
    net.ensure_writeable()
    assert net.params.flags.writeable and net.layers[1].running_mean.flags.writeable
    assert np.shares_memory(net.layers[0]._w, net.params)


def test_network_of_only_flatten_and_dense_backpropagates():
    net = Sequential([Flatten(), Dense(2)], (1, 1, 3), np.float64)
    net.init_params(np.random.RandomState(0))
    x = np.arange(6.0).reshape(2, 1, 1, 3)
    net.loss_and_grad(x, np.array([0, 1]), np.ones(2), 0.0)
    assert np.abs(net.grads).sum() > 0


def _net_with_batch_norm_and_dropout():
    """Layers that differ between training and inference, with non-trivial running statistics."""
    layers = [
        Conv2D(3, 3, padding="same", bias=False), BatchNorm2d(), MaxPool2D(2), Activation("relu"),
        Conv2D(2, 2, padding="valid"), Activation("tanh"),
        Flatten(), Dense(4, bias=False), BatchNorm1d(), Activation("relu"), Dropout(0.5),
        Dense(3),
    ]
    net = Sequential(layers, (2, 8, 7), np.float64)
    net.init_params(np.random.RandomState(0))
    rng = np.random.RandomState(1)
    net.params[:] += rng.uniform(-0.3, 0.3, net.n_params)
    for bn in (net.layers[1], net.layers[8]):
        bn.running_mean = rng.uniform(-0.5, 0.5, bn.running_mean.shape)
        bn.running_var = rng.uniform(0.5, 2.0, bn.running_var.shape)
    net.set_rng(np.random.default_rng(0))
    return net


@pytest.mark.parametrize("make_net", [_every_layer_kind_net, _net_with_batch_norm_and_dropout])
def test_input_gradient_matches_finite_differences_of_the_inference_function(make_net):
    net = make_net()
    rng = np.random.RandomState(5)
    x = rng.standard_normal((3,) + net.input_shape)
    dy = rng.standard_normal((3,) + net.output_shape)
    numeric = numerical_gradient(lambda: float(np.sum(dy * net.forward_fast(x.copy()))), x)
    assert_allclose(net.input_gradient(x, dy), numeric, rtol=1e-6, atol=1e-9)


def test_input_gradient_from_many_threads_at_once_gives_the_bits_of_one_call():
    # the layers' training paths keep their inputs on the layer: calls at once
    # on one model (an explanation service's threads) must not share them
    net = _net_with_batch_norm_and_dropout()
    rng = np.random.RandomState(7)
    xs = rng.standard_normal((8, 2) + net.input_shape)
    dys = rng.standard_normal((8, 2) + net.output_shape)
    expected = [net.input_gradient(x, dy) for x, dy in zip(xs, dys)]
    net.grads[:] = rng.standard_normal(net.n_params)
    grads = net.grads.copy()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda k: net.input_gradient(xs[k % 8], dys[k % 8]), range(400)))
    for k, dx in enumerate(got):
        assert_array_equal(dx, expected[k % 8])
    assert_array_equal(net.grads, grads)


def test_input_gradient_from_an_inner_layer_is_the_gradient_wrt_its_feature_maps():
    net = _net_with_batch_norm_and_dropout()
    rng = np.random.RandomState(6)
    x = rng.standard_normal((2,) + net.input_shape)
    start = 4  # the second conv: its input are the first block's maps
    h = x
    for layer in net.layers[:start]:
        h = layer.forward_fast(h)
    dy = rng.standard_normal((2,) + net.output_shape)

    def tail():
        z = h.copy()
        for layer in net.layers[start:]:
            z = layer.forward_fast(z)
        return float(np.sum(dy * z))

    numeric = numerical_gradient(tail, h)
    assert_allclose(net.input_gradient(h, dy, start=start), numeric, rtol=1e-6, atol=1e-9)


def test_input_gradient_changes_neither_the_model_nor_its_arguments():
    net = _net_with_batch_norm_and_dropout()
    rng = np.random.RandomState(7)
    x = rng.standard_normal((4,) + net.input_shape)
    net.loss_and_grad(x.copy(), np.array([0, 1, 2, 0]), np.ones(4), 0.1)
    grads, snapshot = net.grads.copy(), net.snapshot()
    x_before, dy = x.copy(), np.ones((4,) + net.output_shape)
    net.input_gradient(x, dy)
    assert_array_equal(net.grads, grads)
    assert_array_equal(net.params, snapshot[0])
    for (_, _, value), before in zip(net._state_arrays(), snapshot[1]):
        assert_array_equal(value, before)
    assert_array_equal(x, x_before)
    assert_array_equal(dy, 1.0)


def test_a_prediction_pass_of_large_images_stays_within_the_pass_ceiling():
    # a wide dense layer over 128x128 images: using each weight a thousand times
    # would take 364 rows of 0.5 MB each, a pass per thread
    from skconv import _network

    net = Sequential([Conv2D(8, 3, padding="same"), Flatten(), Dense(64)], (3, 128, 128),
                     np.float32)
    row_bytes = net.largest_activation * net.params.itemsize
    rows = net.rows_per_pass(6 << 20)
    assert rows * row_bytes <= _network._MAX_PASS_BYTES < (rows + 1) * row_bytes
    assert net.rows_per_pass(1 << 30) == (1 << 30) // row_bytes  # a larger budget still counts


def test_the_l2_penalty_allocates_nothing_the_size_of_the_weights_after_the_first_batch():
    import tracemalloc

    net = Sequential([Flatten(), Dense(500)], (1, 40, 40), np.float32)
    net.init_params(np.random.RandomState(0))
    rng = np.random.RandomState(1)
    x = rng.rand(4, 1, 40, 40).astype(np.float32)
    y = np.arange(4)
    sw = np.ones(4)
    first = net.loss_and_grad(x, y, sw, alpha=0.1)
    grads = net.grads.copy()
    tracemalloc.start()
    try:
        again = net.loss_and_grad(x, y, sw, alpha=0.1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < net.params[:net.n_weights].nbytes
    assert again == first
    assert_array_equal(net.grads, grads)
    net.release_buffers()
    assert "_l2_work" not in vars(net)
    assert "_l2_work" not in pickle.loads(pickle.dumps(net)).__dict__


def test_inference_scratch_outgrown_by_a_larger_batch_is_released():
    # every input shape gets a plan; the later, larger ones grow the thread's
    # scratch buffers, and the plans for smaller ones must not keep the old
    import gc
    import tracemalloc

    from threadpoolctl import threadpool_limits

    net = Sequential([Conv2D(16, 3, padding="same"), Activation("relu"), MaxPool2D(2),
                      Conv2D(16, 3, padding="same"), Activation("relu"), Flatten(), Dense(3)],
                     (3, 24, 24), np.float32)
    net.init_params(np.random.RandomState(0))
    x = np.random.RandomState(1).rand(60, 3, 24, 24).astype(np.float32)
    tracemalloc.start()
    try:
        with threadpool_limits(1):
            for n in range(4, 61, 4):
                net.forward_fast(x[:n])
        gc.collect()
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    scratch = sum(b.nbytes for b in _plan._SCRATCH.buffers if b is not None)
    assert scratch > 0
    assert held < 1.5 * scratch


def test_index_arrays_kept_for_many_image_sizes_stay_within_their_byte_budget(monkeypatch):
    # each image size has index arrays of its size; a cache bounded by its
    # count alone grew with the images
    import gc
    import tracemalloc

    from skconv import ops

    monkeypatch.setattr(_engine, "INDEX_CACHE_BYTES", 4 << 20)
    w = np.ones((1, 1, 3, 3), dtype=np.float32)
    tracemalloc.start()
    try:
        for h in range(200, 240):
            x = np.ones((1, 1, h, h + 1), dtype=np.float32)
            ops.conv2d_backward(ops.conv2d(x, w, padding=1), x, w, padding=1)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert _engine.index_cache.held <= 4 << 20
    assert held < 8 << 20
