"""The network graph: residual blocks, global pooling, grouped, depthwise and separable
convolutions, as the estimators build them, against torch; fusion rules; cut points;
batch-norm folding; models saved by skconv 0.1."""

import pickle
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import ConvergenceWarning

from skconv import ConvNetClassifier, ConvNetRegressor
from skconv._layers import Activation, Add, Conv2D, Dense, Flatten, GlobalPool2D, MaxPool2D
from skconv._network import Network, Node, Sequential
from skconv._normalization import BatchNorm2d
from skconv import _plan
from skconv._plan import FUSION_RULES, INPUT, assign_slots


# architectures the estimators build, each exercising a new node kind
GRAPHS = {
    "identity shortcut": dict(conv_layers=(4, {"residual": [4, 4]}), batch_norm=True),
    # 16 x 16 maps through 8 filters: the product written straight into the output
    "identity shortcut, 16x16": dict(conv_layers=({"filters": 8, "pool": None},
                                                  {"residual": [8, 8]}),
                                     batch_norm=True, input_shape=(16, 16, 2)),
    # 32 filters on 8 x 8 maps: the residual body's convolutions, and the
    # pooled one after a pooled block, run forward by Winograd's F(2x2, 3x3)
    "identity shortcut, Winograd's": dict(conv_layers=({"filters": 32, "pool": None},
                                                       {"residual": [32, 32]}),
                                          batch_norm=True, input_shape=(8, 8, 2)),
    "pooled convolutions, Winograd's": dict(conv_layers=(32, 32), input_shape=(16, 16, 2)),
    "projection shortcut, stride 2": dict(
        conv_layers=({"residual": [{"filters": 6, "stride": 2}, 6]},), batch_norm=True),
    "projection without batch norm": dict(conv_layers=({"residual": [3, (5, 1)]},)),
    "global average pooling": dict(conv_layers=(4, 6), global_pool="avg",
                                   hidden_layer_sizes=()),
    "global max pooling": dict(conv_layers=(4,), global_pool="max"),
    "grouped": dict(conv_layers=(4, {"filters": 6, "groups": 2}), batch_norm=True),
    "depthwise": dict(conv_layers=(4, {"filters": 4, "groups": 4, "stride": 2})),
    "separable": dict(conv_layers=(4, {"filters": 8, "separable": True}), batch_norm=True,
                      global_pool="avg"),
    "separable in a residual body": dict(
        conv_layers=({"residual": [{"filters": 4, "separable": True}, 4]},), pool="avg",
        activation="tanh"),
    # series (input_shape=(length, channels)): torch's 1-D ops are the oracle
    "series, fcn": dict(
        conv_layers=tuple({"filters": f, "kernel_size": k, "pool": None}
                          for f, k in ((4, 8), (6, 5), (4, 3))),
        batch_norm=True, global_pool="avg", hidden_layer_sizes=(), input_shape=(16, 2)),
    "series, residual with stride 2 and dilation": dict(
        conv_layers=({"residual": [{"filters": 4, "kernel_size": 8, "stride": 2},
                                   {"filters": 4, "kernel_size": 5, "dilation": 2}]},
                     {"filters": 3, "kernel_size": 4, "pool": "avg"}),
        batch_norm=True, input_shape=(24, 2)),
    "series, valid and int padding, max pooling": dict(
        conv_layers=({"filters": 3, "kernel_size": 4, "padding": "valid"},
                     {"filters": 3, "kernel_size": 3, "padding": 1, "groups": 3}),
        global_pool="max", input_shape=(16, 2)),
}


# skconv against torch: float32 rounding, or float64's. The absolute part scales with the
# array's largest entry: a small gradient entry that sums terms as large as the largest
# carries their rounding, which differs between torch's kernels on different CPUs.
TOLERANCE = {"float32": dict(rtol=2e-4, atol=2e-5), "float64": dict(rtol=1e-9, atol=1e-11)}


def _assert_matches_torch(actual, desired, dtype, err_msg=""):
    tol = TOLERANCE[dtype]
    atol = tol["atol"] * max(1.0, float(np.abs(desired).max()))
    assert_allclose(actual, desired, rtol=tol["rtol"], atol=atol, err_msg=err_msg)


def _network(params, dtype, input_shape=(9, 8, 2), n_outputs=3, seed=0):
    est = ConvNetClassifier(**params, dtype=dtype)
    est.input_shape_ = params.get("input_shape", input_shape)
    net = est._build_network(n_outputs)
    rng = np.random.RandomState(seed)
    net.init_params(rng)
    # every parameter away from its init (batch norm's 1 and 0, the zero biases)
    net.params[net.n_weights:] = rng.uniform(0.5, 1.5, net.n_params - net.n_weights)
    return net


def _torch_forward(net, x, params, training):
    """The network's function written with torch ops, node by node."""
    import torch

    F = torch.nn.functional
    # a network of series computes on images of one row: torch's 1-D ops on (n, c, length)
    series = any(getattr(layer, "series", 0) for layer in net.layers)
    values = {INPUT: x[:, :, 0] if series else x}
    for node in net.nodes:
        layer, xs = node.layer, [values[name] for name in node.inputs]
        p = {name: params[f"{node.name}.{name}"] for name, _, _ in layer.param_specs()}
        op = layer.op
        if series and op in ("conv", "max_pool", "avg_pool", "global_pool"):
            if op == "conv":
                pw, ew = layer.pad[1], layer.extra_pad[1]
                y = F.conv1d(F.pad(xs[0], (pw, pw + ew)), p["w"][:, :, 0], p.get("b"),
                             layer.stride[1], 0, layer.dilation[1], layer.groups)
            elif op == "max_pool":
                y = F.max_pool1d(xs[0], layer.window[1])
            elif op == "avg_pool":
                y = F.avg_pool1d(xs[0], layer.window[1])
            else:
                y = (F.adaptive_avg_pool1d(xs[0], 1) if layer.kind == "avg"
                     else F.adaptive_max_pool1d(xs[0], 1))[:, :, 0]
        elif op == "conv":
            (ph, pw), (eh, ew) = layer.pad, layer.extra_pad
            y = F.conv2d(F.pad(xs[0], (pw, pw + ew, ph, ph + eh)), p["w"], p.get("b"),
                         layer.stride, 0, layer.dilation, layer.groups)
        elif op == "batch_norm":
            mean = torch.as_tensor(layer.running_mean)
            var = torch.as_tensor(layer.running_var)
            y = F.batch_norm(xs[0], None if training else mean, None if training else var,
                             p["scale"], p["shift"], training=training, eps=layer.eps)
        elif op == "max_pool":
            y = F.max_pool2d(xs[0], layer.window)
        elif op == "avg_pool":
            y = F.avg_pool2d(xs[0], layer.window)
        elif op in ("relu", "tanh", "logistic", "identity"):
            y = {"relu": torch.relu, "tanh": torch.tanh, "logistic": torch.sigmoid,
                 "identity": lambda t: t}[op](xs[0])
        elif op == "flatten":
            y = xs[0].reshape(xs[0].shape[0], -1)
        elif op == "dense":
            y = xs[0] @ p["w"] + (p["b"] if "b" in p else 0)
        elif op == "add":
            y = xs[0] + xs[1]
        elif op == "global_pool":
            y = xs[0].mean(dim=(2, 3)) if layer.kind == "avg" else xs[0].amax(dim=(2, 3))
        else:  # pragma: no cover - a new op needs its torch form here
            raise AssertionError(f"no torch form for {op}")
        values[node.name] = y
    return values[net.output]


def _torch_params(net):
    torch = pytest.importorskip("torch")
    return {name: torch.tensor(view.copy(), requires_grad=True)
            for name, view in net.named_params().items()}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_training_forward_and_backward_match_torch(name, dtype):
    torch = pytest.importorskip("torch")
    net = _network(GRAPHS[name], dtype)
    rng = np.random.RandomState(1)
    x = rng.standard_normal((5,) + net.input_shape).astype(dtype)
    dz = rng.standard_normal((5, 3)).astype(dtype)
    params = _torch_params(net)
    z_torch = _torch_forward(net, torch.tensor(x), params, training=True)
    (z_torch * torch.tensor(dz)).sum().backward()
    z = net.forward(x.copy(), training=True)
    net.backward(dz.copy())
    _assert_matches_torch(z, z_torch.detach().numpy(), dtype)
    grads = dict(zip(net.named_params(), _grad_views(net)))
    for key, tensor in params.items():
        _assert_matches_torch(grads[key], tensor.grad.numpy(), dtype, err_msg=key)


def _grad_views(net):
    """The gradient views in ``named_params`` order."""
    offsets, offset = {}, 0
    for i, pname, shape, _ in net._layout:
        size = int(np.prod(shape))
        offsets[(i, pname)] = net.grads[offset:offset + size].reshape(shape)
        offset += size
    return [offsets[(i, pname)] for i, pname, _ in net.param_arrays()]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_inference_and_its_input_gradient_match_torch(name, dtype):
    torch = pytest.importorskip("torch")
    # inference: batch norm's running statistics (set away from 0 and 1), folded into the
    # convolution or dense layer before it: equal to the unfolded torch net to rounding
    net = _network(GRAPHS[name], dtype)
    rng = np.random.RandomState(2)
    for layer in net.layers:
        if layer.op == "batch_norm":
            layer.running_mean = rng.uniform(-1, 1, layer.running_mean.shape).astype(dtype)
            layer.running_var = rng.uniform(0.5, 2, layer.running_var.shape).astype(dtype)
    x = rng.standard_normal((4,) + net.input_shape).astype(dtype)
    dz = rng.standard_normal((4, 3)).astype(dtype)
    xt = torch.tensor(x, requires_grad=True)
    z_torch = _torch_forward(net, xt, _torch_params(net), training=False)
    (z_torch * torch.tensor(dz)).sum().backward()
    _assert_matches_torch(net.forward_fast(x), z_torch.detach().numpy(), dtype)
    _assert_matches_torch(net.input_gradient(x, dz), xt.grad.numpy(), dtype)


def test_batch_norm_folds_into_the_weights_at_inference_only():
    net = _network(GRAPHS["identity shortcut"], "float64")
    folded = [s.rule for s in net.steps(training=False)]
    assert "folded" in folded and "folded" not in [s.rule for s in net.steps(training=True)]
    # a residual body's second convolution, its batch norm, the addition and its
    # ReLU: one call, which takes the shortcut as a second input
    steps = {s.output: s for s in net.steps(training=False)}
    assert "block2.bn2" not in steps and steps["block2.act"].rule == "residual"
    assert steps["block2.act"].inputs == ("block2.act1", "block1.act")
    assert [s.rule for s in net.steps(training=True)].count("residual") == 0


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ["identity shortcut", "identity shortcut, 16x16",
                                  "projection shortcut, stride 2",
                                  "projection without batch norm", "separable in a residual body",
                                  "series, residual with stride 2 and dilation"])
def test_the_residual_added_as_the_convolution_writes_changes_no_bits(monkeypatch, name, dtype):
    # a residual body's last convolution adds the shortcut (then the ReLU) as
    # its output leaves the tiles (_plan.ResidualStep): the bits of the
    # convolution written out and the addition after
    net = _network(GRAPHS[name], dtype)
    shape = (7,) + net.input_shape
    x = np.random.RandomState(2).standard_normal(shape).astype(dtype)
    fused = net.forward_fast(x)
    residual = [s for s in net.steps(training=False) if s.rule == "residual"]
    assert residual
    monkeypatch.setattr(_plan, "FUSION_RULES", tuple(
        rule for rule in FUSION_RULES if rule.step is not _plan.ResidualStep))
    apart = _network(GRAPHS[name], dtype)
    assert not [s for s in apart.steps(training=False) if s.rule == "residual"]
    assert_array_equal(fused, apart.forward_fast(x))
    for rows in (slice(0, 1), slice(2, 5)):  # and alone or with other rows
        assert_array_equal(net.forward_fast(x[rows]), fused[rows])


def test_scratch_slots_hold_one_live_value_each_and_never_the_result():
    mb = 1 << 20
    assert _plan.SMALL_VALUE <= mb
    # a chain: each value lives until the next call has read it
    calls = [(("input",), "a", 4 * mb, True, ("input",)), (("a",), "b", 2 * mb, True, ("a",)),
             (("b",), "c", 4 * mb, True, ("b",)), (("c",), "out", mb, True, ("c",))]
    slots, copy = assign_slots(calls, "input", "out")
    assert slots == [0, 1, 0, None] and not copy
    # a residual block: the shortcut "a" stays live across the body, so the
    # body's values take other slots; the add may not write into its inputs'
    calls = [(("input",), "a", mb, True, ("input",)), (("a",), "b", mb, True, ()),
             (("b",), "c", mb, True, ("b",)), (("c", "a"), "d", mb, True, ("a", "c")),
             (("d",), "out", mb, True, ("d",))]
    slots, copy = assign_slots(calls, "input", "out")
    assert slots[:3] == [0, 1, 2] and slots[3] == 1 and slots[4] is None and not copy
    # a view (a flatten) keeps its input's slot busy while it lives, and a
    # result that may be a view of scratch is copied
    calls = [(("input",), "a", mb, True, ("input",)), (("a",), "flat", mb, False, ("a",)),
             (("flat",), "b", mb, True, ())]
    slots, copy = assign_slots(calls, "input", "flat")
    assert slots == [0, None, 1] and copy
    # small values are left to their calls
    calls = [(("input",), "a", 1024, True, ("input",)), (("a",), "out", 1024, True, ("a",))]
    assert assign_slots(calls, "input", "out") == ([None, None], False)


def test_planned_inference_reuses_its_scratch_without_changing_what_it_returned(monkeypatch):
    monkeypatch.setattr(_plan, "SMALL_VALUE", 0)  # scratch for every value of a small net
    net = _network(GRAPHS["identity shortcut"], "float64")
    rng = np.random.RandomState(4)
    x1, x2 = rng.standard_normal((2, 5) + net.input_shape)
    cut = next(name for name in net.cut_points() if name.startswith("block1"))
    first, inner = net.forward_fast(x1), net.forward_fast(x1, stop=cut)
    kept = first.copy(), inner.copy()
    net.forward_fast(x2)
    net.forward_fast(x2, stop=cut)
    assert_array_equal(first, kept[0])
    assert_array_equal(inner, kept[1])
    assert_array_equal(net.forward_fast(x1), first)
    whole = [plan for key, plan in net._fast_plans.items() if key[3] is None]
    assert whole and all(plan.slot_sizes for plan in whole)


def test_threads_running_one_plan_at_once_each_get_their_own_scratch(monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setattr(_plan, "SMALL_VALUE", 0)
    net = _network(GRAPHS["identity shortcut"], "float64")
    xs = np.random.RandomState(6).standard_normal((8, 16) + net.input_shape)
    expected = [net.forward_fast(x) for x in xs]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(3):
            got = list(pool.map(net.forward_fast, xs))
            for g, e in zip(got, expected):
                assert_array_equal(g, e)
    assert all(plan.slot_sizes for plan in net._fast_plans.values())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("name", ["identity shortcut", "identity shortcut, 16x16",
                                  "projection shortcut, stride 2"])
def test_the_batch_norm_adding_the_shortcut_as_it_writes_changes_no_training_bits(
        monkeypatch, name, activation, dtype):
    # in training, a residual body's last batch norm adds the shortcut (then the
    # ReLU) in the pass that writes its output (_plan.BatchNormAddStep), and the
    # shortcut's gradient is the masked gradient itself: the bits of the batch
    # norm written out, the addition after, and the addition's backward
    params = dict(GRAPHS[name], activation=activation)
    rng = np.random.RandomState(4)
    net = _network(params, dtype)
    x = rng.standard_normal((6,) + net.input_shape).astype(dtype)
    dz = rng.standard_normal((6, 3)).astype(dtype)
    assert [s.rule for s in net.steps(training=True)].count("batch_norm_add") == 1
    monkeypatch.setattr(_plan, "FUSION_RULES", tuple(
        rule for rule in FUSION_RULES if rule.step is not _plan.BatchNormAddStep))
    apart = _network(params, dtype)
    assert not [s for s in apart.steps(training=True) if s.rule == "batch_norm_add"]
    for _ in range(2):  # the layers' buffers reused
        z, z_apart = net.forward(x.copy()), apart.forward(x.copy())
        net.backward(dz.copy())
        apart.backward(dz.copy())
        bits = "u8" if dtype == "float64" else "u4"
        assert_array_equal(z.view(bits), z_apart.view(bits))
        assert_array_equal(net.grads.view(bits), apart.grads.view(bits))
    for a, b in zip(net.nodes, apart.nodes):
        if a.layer.op == "batch_norm":
            assert_array_equal(a.layer.running_mean, b.layer.running_mean)
            assert_array_equal(a.layer.running_var, b.layer.running_var)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("name", ["identity shortcut", "identity shortcut, 16x16",
                                  "projection shortcut, stride 2", "separable",
                                  "series, residual with stride 2 and dilation"])
def test_the_batch_norm_gradient_formed_as_the_convolution_reads_it_changes_no_bits(
        simd_path, monkeypatch, name, activation, dtype):
    # a batch norm's input gradient handed to the convolution before it as an
    # _engine.BatchNormGradient, which a stride-1 product forms a sample at a
    # time as it reads it and any other way makes dense: the bits of the batch
    # norm's dx written out, on every path
    from skconv import ops
    from skconv._kernels import _conv, _gemm

    params = dict(GRAPHS[name], activation=activation)
    rng = np.random.RandomState(5)
    calls = []

    def counted(*args, formed=None, **kwargs):
        calls.append(formed is not None)
        return implicit(*args, formed=formed, **kwargs)

    implicit = _conv.conv2d_backward_implicit
    monkeypatch.setattr(_conv, "conv2d_backward_implicit", counted)
    bits = "u8" if dtype == "float64" else "u4"
    for path in [p for p in ops.SIMD_PATHS if _gemm.cpu_supports(p)]:
        simd_path(path)
        net, apart = _network(params, dtype), _network(params, dtype)
        for step in apart.steps(training=True):
            step.kernel.takes_formed_gradient = False
        x = rng.standard_normal((6,) + net.input_shape).astype(dtype)
        dz = rng.standard_normal((6, 3)).astype(dtype)
        for _ in range(2):  # the layers' buffers reused
            del calls[:]
            net.forward(x.copy())
            net.backward(dz.copy())
            formed = sum(calls)
            del calls[:]
            apart.forward(x.copy())
            apart.backward(dz.copy())
            assert not any(calls)
            assert_array_equal(net.grads.view(bits), apart.grads.view(bits), err_msg=path)
        if name != "separable":  # (its batch norms follow grouped convolutions)
            assert formed, "no convolution formed its batch norm's gradient"


def test_the_batch_norm_adding_the_shortcut_at_inference_is_the_two_in_turn():
    # at inference the batch norm folds into the convolution before it, so the
    # step runs only where it cannot: its call is the two layers' own
    net = _network(GRAPHS["identity shortcut"], "float64")
    step = next(s for s in net.steps(training=True) if s.rule == "batch_norm_add")
    bn, add = step.kernel.batch_norm, step.kernel.add
    rng = np.random.RandomState(9)
    x = rng.standard_normal((3,) + bn.input_shape)
    shortcut = rng.standard_normal(x.shape)
    want = add.forward_fast(bn.forward_fast(x), shortcut, relu=True)
    assert_array_equal(step.kernel.fast(3, np.float64)(x, shortcut), want)
    out = np.empty_like(x)
    assert step.kernel.fast(3, np.float64)(x, shortcut, out=out) is out
    assert_array_equal(out, want)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", ["identity shortcut", "identity shortcut, 16x16",
                                  "projection shortcut, stride 2", "grouped",
                                  "series, residual with stride 2 and dilation"])
def test_a_convolution_adding_its_inputs_other_gradient_changes_no_bits(monkeypatch, name,
                                                                        dtype):
    # where a convolution's input is read by others too (a residual block's
    # input), its backward adds their gradient as the product writes its own
    # (the stride-1 input gradient, a convolution of dy), after it otherwise:
    # the bits of the network's sum of the two
    from skconv._layers import Conv2D
    params = dict(GRAPHS[name])
    if name == "grouped":  # a grouped convolution reading a block's input
        params["conv_layers"] = (4, {"residual": [{"filters": 4, "groups": 2}, 4]})
    elif isinstance(params["conv_layers"][0], dict) and "residual" in params["conv_layers"][0]:
        # a convolution first: the block's input then has a gradient
        params["conv_layers"] = ({"filters": 4, "pool": None},) + params["conv_layers"]
    rng = np.random.RandomState(6)
    net = _network(params, dtype)
    x = rng.standard_normal((5,) + net.input_shape).astype(dtype)
    dz = rng.standard_normal((5, 3)).astype(dtype)
    calls = []
    backward = Conv2D.backward

    def spy(self, dy, need_dx=True, unpool=None, add_to=None, **kwargs):
        calls.append(add_to is not None)
        return backward(self, dy, need_dx, unpool, add_to, **kwargs)

    monkeypatch.setattr(Conv2D, "backward", spy)
    net.forward(x.copy())
    net.backward(dz.copy())
    assert any(calls)
    monkeypatch.setattr(Conv2D, "adds_gradient", False)
    apart = _network(params, dtype)
    apart.forward(x.copy())
    apart.backward(dz.copy())
    bits = "u8" if dtype == "float64" else "u4"
    assert_array_equal(net.grads.view(bits), apart.grads.view(bits))


def test_every_fusion_rule_is_used_by_some_network():
    nets = [_network(params, "float32") for params in GRAPHS.values()]
    for activation in ("relu", "tanh"):
        for batch_norm in (False, True):
            nets.append(_network(dict(conv_layers=(4, 4), batch_norm=batch_norm,
                                      activation=activation), "float32"))
            nets.append(_network(dict(conv_layers=(4, {"residual": [4, 4]}),
                                      batch_norm=batch_norm, activation=activation), "float32"))
    nets.append(_network(dict(conv_layers=(4, 4), hidden_layer_sizes=(5,), batch_norm=True),
                         "float32"))
    used = {s.fusion for net in nets for training in (True, False) for s in net.steps(training)}
    assert {rule.name for rule in FUSION_RULES} <= used


def test_a_residual_block_adds_its_input_or_its_projection():
    net = _network(GRAPHS["identity shortcut"], "float32")
    add = next(node for node in net.nodes if node.layer.op == "add")
    assert add.inputs == ("block2.bn2", "block1.act")
    net = _network(GRAPHS["projection shortcut, stride 2"], "float32")
    add = next(node for node in net.nodes if node.layer.op == "add")
    assert add.inputs == ("block1.bn2", "block1.shortcut_bn")
    shortcut = net.nodes[net.index("block1.shortcut")]
    assert shortcut.inputs == (INPUT,) and shortcut.layer.stride == (2, 2)
    assert shortcut.layer.kernel_size == (1, 1)
    assert net.nodes[net.index("block1.conv1")].inputs == (INPUT,)


def test_parameters_are_named_by_node():
    net = _network(GRAPHS["separable"], "float32")
    names = list(net.named_params())
    assert "block2.depthwise.w" in names and "block2.pointwise.w" in names
    assert "block2.bn.scale" in names and "output.b" in names
    assert net.named_params()["block2.depthwise.w"].shape == (4, 1, 3, 3)


def test_cut_points_exclude_nodes_a_branch_straddles():
    net = _network(GRAPHS["identity shortcut"], "float32")
    cuts = net.cut_points()
    assert "block1.act" in cuts and "block2.act" in cuts
    assert "block2.conv1" not in cuts and "block2.bn2" not in cuts
    with pytest.raises(ValueError, match="a branch of the network straddles it"):
        net.forward_fast(np.zeros((1, 2, 9, 8), np.float32), stop="block2.conv1")


def test_forward_fast_between_cut_points_composes():
    net = _network(GRAPHS["identity shortcut"], "float64")
    x = np.random.RandomState(3).standard_normal((3, 2, 9, 8))
    mid = net.forward_fast(x, stop="block1.act")
    assert_array_equal(net.forward_fast(mid, start="block1.act"), net.forward_fast(x))
    with pytest.raises(ValueError, match=r"node 'block1.act' gives .* got \(2, 9, 8\)"):
        net.forward_fast(x, start="block1.act")


def test_the_graph_refuses_what_it_cannot_compute():
    with pytest.raises(ValueError, match="takes \\['nowhere'\\], which no earlier node"):
        Network([Node("a", Flatten(), ("nowhere",))], (1, 2, 2), "float32")
    with pytest.raises(ValueError, match="two nodes of the network are named 'a'"):
        Network([Node("a", Flatten()), Node("a", Dense(2))], (1, 2, 2), "float32")
    with pytest.raises(ValueError, match="works in place on 'conv', which other nodes read"):
        Network([Node("conv", Conv2D(2, 3)), Node("act", Activation("relu")),
                 Node("add", Add(), ("act", "conv"))], (1, 4, 4), "float32")


def test_residual_branches_of_other_sizes_are_refused_in_image_terms():
    X = np.random.RandomState(0).standard_normal((10, 8, 8))
    clf = ConvNetClassifier(conv_layers=({"residual": [{"filters": 2, "padding": "valid"}]},),
                            max_iter=1)
    with pytest.raises(ValueError, match=r"the body of residual block 1 gives 6x6 maps of 2 "
                                         r"channels and its shortcut 8x8 maps of 2 channels"):
        clf.fit(X, np.arange(10) % 2)
    # series in their own terms: lengths, not maps one row high
    clf.set_params(input_shape=(32, 1))
    with pytest.raises(ValueError, match=r"the body of residual block 1 gives series of length "
                                         r"30 in 2 channels and its shortcut series of length 32"):
        clf.fit(np.random.RandomState(0).standard_normal((10, 32)), np.arange(10) % 2)


@pytest.mark.parametrize("entry, message", [
    ({"residual": []}, "must be a non-empty list"),
    ({"residual": [4], "stride": 2}, "only keys from"),
    ({"residual": [{"filters": 2, "pool": "max"}]}, "only keys from"),
    ({"residual": [4], "pool_size": 4}, "pool_size=4 in residual block 1 sizes no pooling"),
    ({"filters": 4, "groups": 0}, "groups=0 in conv block 1 must be a positive int"),
    ({"filters": 4, "groups": 3}, "groups=3 must divide the 1 input channels and the 4"),
    ({"filters": 4, "separable": True, "groups": 2}, "cannot be combined"),
    ({"filters": 4, "separable": "yes"}, "separable='yes' in conv block 1 must be True"),
])
def test_bad_block_specs_are_refused_naming_the_block(entry, message):
    X = np.random.RandomState(0).standard_normal((10, 8, 8))
    with pytest.raises(ValueError, match=message):
        ConvNetClassifier(conv_layers=(entry,), max_iter=1).fit(X, np.arange(10) % 2)


@pytest.mark.parametrize("params, message", [
    # 4 x 1 x 2**31 x 2**31 weights: np.prod's int64 wrapped to 0
    (dict(conv_layers=({"filters": 4, "kernel_size": 2**31},)),
     r"conv block 1 would hold 1.84e\+19 parameters \(w of shape \(4, 1, 2147483648, "),
    (dict(conv_layers=(), hidden_layer_sizes=(2**62,)),
     r"dense1 would hold 2.95e\+20 parameters \(w of shape \(64, 4611686018427387904\)"),
])
def test_a_layer_too_large_for_any_memory_is_refused_naming_it(params, message):
    X = np.random.RandomState(0).standard_normal((10, 8, 8))
    with pytest.raises(ValueError, match=message):
        ConvNetClassifier(max_iter=1, **params).fit(X, np.arange(10) % 2)


def test_global_pool_is_validated_and_allows_no_hidden_layer():
    X = np.random.RandomState(0).standard_normal((12, 8, 8))
    y = np.arange(12) % 2
    with pytest.raises(ValueError, match="global_pool"):
        ConvNetClassifier(global_pool="sum").fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = ConvNetClassifier(conv_layers=(3, 5), global_pool="max", hidden_layer_sizes=(),
                                max_iter=2, random_state=0).fit(X, y)
    assert [c.shape for c in clf.coefs_] == [(3, 1, 3, 3), (5, 3, 3, 3), (5, 2)]
    assert clf.transform(X).shape == (12, 5) and clf.n_layers_ == 4


@pytest.mark.parametrize("Estimator", [ConvNetClassifier, ConvNetRegressor])
def test_a_residual_net_predicts_each_row_with_the_same_bits_alone_or_in_a_batch(Estimator):
    rng = np.random.RandomState(0)
    X = rng.standard_normal((40, 10, 10, 2)).astype(np.float32)
    y = np.arange(40) % 3 if Estimator is ConvNetClassifier else rng.standard_normal(40)
    params = dict(conv_layers=(4, {"residual": [{"filters": 6, "stride": 2}, 6], "pool": "max"},
                               {"filters": 6, "separable": True}),
                  batch_norm=True, global_pool="avg", hidden_layer_sizes=(), max_iter=2,
                  random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = Estimator(**params).fit(X, y)
    batch = est.predict(X)
    rows = np.concatenate([est.predict(X[i:i + 1]) for i in range(len(X))])
    assert_array_equal(rows, batch)
    assert_array_equal(est.predict(X[::-1])[::-1], batch)


def test_a_model_saved_by_skconv_0_1_loads_and_predicts_the_same(tmp_path):
    import skconv
    from skconv import persistence
    from skconv.exceptions import InconsistentVersionWarning

    X = np.random.RandomState(0).standard_normal((30, 8, 8)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = ConvNetClassifier(conv_layers=(3, {"filters": 4, "batch_norm": True}),
                                  max_iter=2, random_state=0).fit(X, np.arange(30) % 2)
    expected = model.predict_proba(X)
    # the state skconv 0.1 pickled: no global_pool, the network a list of layers
    # (named by position) whose flat parameters are laid out as the graph's
    state = model.__getstate__()
    assert state.pop("_skconv_version") == skconv.__version__
    for added in ("global_pool", "input_scale", "shuffle_buffer"):
        del state[added]
    network_state = state["_network"].__getstate__()
    network_state["layers"] = [node.layer for node in network_state.pop("nodes")]
    legacy = Sequential.__new__(Sequential)
    legacy.__setstate__(network_state)
    state.update(_network=legacy, _skconv_version="0.1.0")
    loaded = ConvNetClassifier.__new__(ConvNetClassifier)
    with pytest.warns(InconsistentVersionWarning, match="0.1.0"):
        loaded.__setstate__(state)
    assert [node.name for node in loaded._network.nodes][:2] == ["0", "1"]
    assert_array_equal(loaded.predict_proba(X), expected)
    assert loaded.get_params()["global_pool"] is None
    assert loaded.get_params()["input_scale"] is None
    assert_array_equal(pickle.loads(pickle.dumps(loaded)).predict_proba(X), expected)
    # and through skops, trusting skconv's types only: a 0.1 model's Sequential too
    pytest.importorskip("skops")
    persistence.dump(loaded, tmp_path / "legacy.skops")
    again = persistence.load(tmp_path / "legacy.skops")
    assert type(again._network) is Sequential
    assert_array_equal(again.predict_proba(X), expected)


def test_hand_built_graphs_train_like_the_estimators_nets():
    # a graph need not come from the estimator: a global-max-pooled conv and an add
    nodes = [Node("conv", Conv2D(3, 3, bias=False)), Node("bn", BatchNorm2d()),
             Node("pool", MaxPool2D(2)), Node("act", Activation("relu")),
             Node("conv2", Conv2D(3, 3), ("act",)), Node("add", Add(), ("conv2", "act")),
             Node("gp", GlobalPool2D("max")), Node("out", Dense(2))]
    net = Network(nodes, (1, 6, 6), "float64")
    net.init_params(np.random.RandomState(0))
    x = np.random.RandomState(1).standard_normal((4, 1, 6, 6))
    rules = [s.rule for s in net.steps(False)]
    assert rules == ["folded", "residual", "layer", "layer"]
    loss = net.loss_and_grad(x, np.array([0, 1, 1, 0]), np.ones(4), 0.0)
    assert np.isfinite(loss) and np.abs(net.grads).sum() > 0


# ---------------------------------------------------------------------- random graphs

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

conv_spec = st.one_of(
    st.integers(1, 4),
    st.fixed_dictionaries({"filters": st.integers(1, 4)},
                          optional={"kernel_size": st.integers(1, 3), "stride": st.integers(1, 2),
                                    "dilation": st.integers(1, 2),
                                    "separable": st.booleans()}),
)
graph_block = st.one_of(
    conv_spec,
    st.fixed_dictionaries({"filters": st.sampled_from([2, 4]), "groups": st.sampled_from([1, 2])}),
    st.fixed_dictionaries({"residual": st.lists(conv_spec, min_size=1, max_size=3)},
                          optional={"pool": st.sampled_from([None, "max", "avg"])}),
)
graph_params = st.fixed_dictionaries(
    {"conv_layers": st.lists(graph_block, min_size=1, max_size=3).map(tuple),
     "hidden_layer_sizes": st.sampled_from([(), (3,)])},
    optional={"global_pool": st.sampled_from([None, "avg", "max"]),
              "batch_norm": st.booleans(),
              "activation": st.sampled_from(["relu", "tanh"]),
              "pool": st.sampled_from([None, "max", "avg"])},
)


# what a random spec may be refused for: groups not dividing the channels, residual
# branches of other sizes, a kernel longer than the series it reads
_UNBUILDABLE = ("groups=", "branches of", "longer than the series")


def _random_graph(params, dtype, seed, series=False):
    """The estimators' network for params on 7x6 images or series of length 13 (channels
    2 = the first grouped block's divisor), or None where the spec cannot be built."""
    try:
        return _network(params, dtype, input_shape=(13, 2) if series else (7, 6, 2), seed=seed)
    except ValueError as exc:
        assert any(reason in str(exc) for reason in _UNBUILDABLE), exc
        return None


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(params=graph_params, seed=st.integers(0, 2**16), series=st.booleans())
def test_random_graphs_have_finite_difference_gradients_and_row_by_row_bits(params, seed,
                                                                             series):
    from gradcheck import numerical_gradient
    from skconv._losses import squared_error

    net = _random_graph(params, "float64", seed, series)
    if net is None:
        return
    rng = np.random.RandomState(seed)
    x = rng.standard_normal((3,) + net.input_shape)
    y = rng.standard_normal((3, 3))
    sw = np.ones(3)

    # the network's function with batch norm in training mode, as loss_and_grad uses it;
    # running statistics move on each call, so snapshot and restore around each
    snapshot = net.snapshot()

    def loss():
        state = net.snapshot()
        z = net.forward(x.copy(), training=True)
        net.restore(state)
        return squared_error(z, y, sw, 3.0)[0]

    net.loss_and_grad(x.copy(), y, sw, 0.0, loss=squared_error)
    analytic = net.grads.copy()
    net.restore(snapshot)
    numeric = numerical_gradient(loss, net.params)
    assert_allclose(analytic, numeric, rtol=1e-4, atol=1e-6)

    # inference: each row alone gives the batch's bits, in float32 too
    net32 = _random_graph(params, "float32", seed, series)
    x32 = rng.standard_normal((5,) + net.input_shape).astype(np.float32)
    batch = net32.forward_fast(x32)
    for i in range(5):
        assert_array_equal(net32.forward_fast(x32[i:i + 1]), batch[i:i + 1])


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(params=graph_params, seed=st.integers(0, 2**16), series=st.booleans())
def test_random_graphs_export_to_onnx_that_onnxruntime_agrees_with(params, seed, series):
    pytest.importorskip("skl2onnx")
    ort = pytest.importorskip("onnxruntime")
    import skl2onnx

    import skconv.onnx  # noqa: F401

    rng = np.random.RandomState(seed)
    X = rng.standard_normal((20, 13, 2) if series else (20, 7, 6, 2)).astype(np.float32)
    y = np.arange(20) % 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        try:
            clf = ConvNetClassifier(**params, max_iter=1, random_state=0,
                                    input_shape=(13, 2) if series else None).fit(X, y)
        except ValueError as exc:
            assert any(reason in str(exc) for reason in _UNBUILDABLE), exc
            return
    onx = skl2onnx.to_onnx(clf, X[:1], options={"zipmap": False})
    sess = ort.InferenceSession(onx.SerializeToString(), providers=["CPUExecutionProvider"])
    _, proba = sess.run(None, {sess.get_inputs()[0].name: X})
    assert_allclose(proba, clf.predict_proba(X), rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------- inspection


def test_inspection_walks_the_blocks_of_a_graph():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from skconv.inspection import FeatureMapDisplay, FilterDisplay, SaliencyDisplay

    rng = np.random.RandomState(0)
    X = rng.standard_normal((24, 8, 8, 2)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = ConvNetClassifier(
            conv_layers=(3, {"residual": [4, 4], "pool": "max"}, {"filters": 5, "separable": True}),
            batch_norm=True, global_pool="avg", hidden_layer_sizes=(), max_iter=1,
            random_state=0).fit(X, np.arange(24) % 2)
    net = clf._network
    x = np.ascontiguousarray(X[:1].transpose(0, 3, 1, 2))
    # block 2 (residual): its maps are the output of its activation after the pooling ...
    maps = FeatureMapDisplay.from_estimator(clf, X[0], layer=1).feature_maps_
    assert_array_equal(maps, net.forward_fast(x, stop="block2.act")[0])
    # ... and, unpooled, the activation of the addition at the convolutions' resolution
    unpooled = FeatureMapDisplay.from_estimator(clf, X[0], layer=1, pooled=False).feature_maps_
    added = net.forward_fast(x, stop="block2.add")[0]
    assert unpooled.shape == (4, 4, 4)  # block 1 pooled 8x8 to 4x4
    assert_array_equal(unpooled, np.maximum(added, 0))
    # the depthwise filters of the separable block: one input channel each
    assert FilterDisplay.from_estimator(clf, layer=2).weights_.shape == (4, 1, 3, 3)
    display = SaliencyDisplay.from_estimator(clf, X[:2])
    assert display.gradcam_.shape == (2, 8, 8) and np.isfinite(display.saliency_).all()
    plt.close("all")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("conv", [dict(), dict(stride=2), dict(groups=2), dict(groups=4)],
                         ids=["implicit", "strided", "grouped", "depthwise"])
def test_relu_fused_into_the_convolution_changes_no_bits(conv, dtype):
    # the ReLU after a convolution runs in its kernel (training and inference);
    # with each layer on its own the values, -0.0 and NaN included, are the same
    nodes = [Node("conv", Conv2D(4, 3, bias=True, **conv)), Node("act", Activation("relu")),
             Node("flatten", Flatten()), Node("out", Dense(3))]
    net = Network(nodes, (4, 7, 6), dtype)
    net.init_params(np.random.RandomState(0))
    assert [s.fusion for s in net.steps(False)][0] == "ReLU inside the layer before"
    x = np.random.RandomState(1).standard_normal((5, 4, 7, 6)).astype(dtype)
    x[1, :, 2, 3] = np.nan
    net.params[:net.n_weights][:4] = 0  # a few exact zeros of either sign
    apart = x.copy()
    for node in nodes[:2]:
        apart = node.layer.forward_fast(apart)
    fused = net.forward_fast(x, stop="act")
    assert_array_equal(fused, apart)
    assert_array_equal(np.signbit(fused), np.signbit(apart))
    assert_array_equal(net.forward(x.copy(), training=True), net.forward_fast(x))
