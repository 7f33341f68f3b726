"""Winograd's F(2x2, 3x3) for images' 3x3 convolutions (_engine.takes_winograd2d,
_conv.conv2d_forward_winograd2d) and their gradients
(_engine.takes_winograd2d_gradient, _conv.conv2d_weight_gradient_winograd2d):
which convolutions take it, its values against torch and the implicit
product, and the same bits on every SIMD path, thread count, batch and row."""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

from skconv import ConvNetClassifier, ops
from skconv import _engine
from skconv._kernels import _conv, _gemm
from skconv.architectures import resnet

AVAILABLE_PATHS = [p for p in ops.SIMD_PATHS if _gemm.cpu_supports(p)]

# (channels, filters, height, width, padding): whole tiles and one more row
# or column, maps whose rows of tiles are past a vector and within one, every
# padding a 3x3 kernel takes
SHAPES = [(32, 32, 8, 8, 1), (32, 48, 11, 10, 0), (40, 32, 13, 17, 2), (64, 64, 9, 8, 1),
          (33, 35, 16, 16, 1), (32, 33, 10, 31, 1)]


def _case(rng, dtype, c, f, h, w, p, n=5):
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = (rng.standard_normal((f, c * 9)) / np.sqrt(c * 9)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype)
    g = _engine.geometry(x.shape, (3, 3), 1, p, 1)
    assert _engine.takes_winograd2d(g, f)
    return x, wt, b, g


def _direct(x, wt, b, g, **kwargs):
    plan = _engine.conv2d_plan(g, wt.shape[0], x.dtype, x.shape[0], winograd=False)
    assert isinstance(plan.implicit, _engine.ImplicitLayout)
    return _engine.conv2d(x, wt, b, g, plan=plan, **kwargs)


def test_3x3_stride_1_convolutions_of_32_channels_and_maps_of_8_take_it():
    g = _engine.geometry((2, 32, 16, 16), (3, 3), 1, 1, 1)
    assert _engine.takes_winograd2d(g, 32)
    assert not _engine.takes_winograd2d(g, 16)  # few filters
    assert not _engine.takes_winograd2d(dict(g, c=16), 32)  # few channels
    for other in [dict(kh=5, kw=5), dict(sh=2, sw=2), dict(dh=2, dw=2), dict(ph=3, pw=3),
                  dict(oh=7)]:
        assert not _engine.takes_winograd2d(dict(g, **other), 32), other
    # a series' 3-tap convolution is the series' Winograd's, not this one
    assert not _engine.takes_winograd2d(_engine.geometry((2, 64, 1, 64), (1, 3), 1, (0, 1), 1),
                                        64)
    # ResNet-20's stride-1 convolutions of its second and third stages take it
    # (32 and 64 channels on 16 x 16 and 8 x 8), its first stage's do not
    taken = [(c, side) for c, side in ((16, 32), (32, 16), (64, 8))
             if _engine.takes_winograd2d(_engine.geometry((1, c, side, side), (3, 3), 1, 1, 1), c)]
    assert taken == [(32, 16), (64, 8)]


def test_the_input_gradient_keeps_the_implicit_product(monkeypatch):
    # a stride-1 input gradient is a convolution of dy by the turned kernel,
    # whose geometry would take Winograd's; below 64 channels it keeps the
    # implicit one, bit for bit the gradient of before
    rng = np.random.default_rng(0)
    x, wt, b, g = _case(rng, np.float32, 32, 32, 8, 8, 1)
    dy = rng.standard_normal((5, 32, 8, 8)).astype(np.float32)
    called = []
    winograd = _conv.conv2d_forward_winograd2d
    monkeypatch.setattr(_conv, "conv2d_forward_winograd2d",
                        lambda *a, **k: called.append(1) or winograd(*a, **k))
    dx = _engine.transposed_convolution(dy, wt, g)
    assert not called
    monkeypatch.setattr(_engine, "WINOGRAD2D_MIN_CHANNELS", 10**9)
    assert_array_equal(_engine.transposed_convolution(dy, wt, g), dx)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
def test_values_are_torchs_convolution_to_rounding(dtype, shape):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(sum(shape))
    x, wt, b, g = _case(rng, dtype, *shape)
    c, f, p = shape[0], shape[1], shape[4]
    y = _engine.conv2d(x, wt, b, g)
    expected = torch.nn.functional.conv2d(
        torch.from_numpy(x).double(), torch.from_numpy(wt.reshape(f, c, 3, 3)).double(),
        torch.from_numpy(b).double(), padding=p).numpy()
    # float32's products of sums: a few units of the direct product's error
    tol = 2e-5 if dtype == np.float32 else 1e-13
    assert y.dtype == dtype and y.shape == expected.shape
    assert_allclose(y, expected, rtol=0, atol=tol * np.abs(expected).max())
    # and the direct product of the same inputs agrees as closely
    assert_allclose(y, _direct(x, wt, b, g), rtol=0, atol=tol * np.abs(expected).max())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bias_residual_relu_and_pooling_are_applied_as_the_direct_products(dtype):
    rng = np.random.default_rng(1)
    for shape in SHAPES:
        x, wt, b, g = _case(rng, dtype, *shape)
        y = _engine.conv2d(x, wt, b, g)
        res = rng.standard_normal(y.shape).astype(dtype)
        # the residual and the ReLU after the same sums: the bits of separate steps
        fused = _engine.conv2d(x, wt, b, g, relu=True, residual=res)
        assert_array_equal(fused, np.maximum(y + res, 0))
        assert_array_equal(_engine.conv2d(x, wt, None, g) + b[:, None, None], y)
        # the 2x2 max pooling: max_pool2d's values and indices of the output
        for relu in (False, True):
            argmax = np.empty((x.shape[0], shape[1], g["oh"] // 2, g["ow"] // 2), np.intp)
            pooled = _engine.conv2d(x, wt, b, g, pool2=(relu, argmax))
            expected, expected_argmax = _engine.max_pool2d(
                np.ascontiguousarray(y), _engine.pool_geometry(y.shape, 2, 2, 0), True, relu=relu)
            assert_array_equal(pooled, expected)
            assert_array_equal(argmax, expected_argmax.reshape(argmax.shape))
            assert_array_equal(_engine.conv2d(x, wt, b, g, pool2=(relu, None)), pooled)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_same_bits_on_every_path_thread_count_batch_and_row(simd_path, dtype):
    # the transforms are additions in a fixed order and the products skconv's
    # (one FMA chain over the channels each), each image's tiles its own
    rng = np.random.default_rng(2)
    cases = [_case(rng, dtype, *shape, n=11) for shape in SHAPES[:4]]
    expected = None
    for path in AVAILABLE_PATHS:
        simd_path(path)
        for threads in (1, 2, 3):
            with threadpool_limits(threads):
                got = []
                for x, wt, b, g in cases:
                    argmax = np.empty((x.shape[0], wt.shape[0], g["oh"] // 2, g["ow"] // 2),
                                      np.intp)
                    got += [_engine.conv2d(x, wt, b, g, relu=True),
                            _engine.conv2d(x, wt, b, g, pool2=(True, argmax)), argmax]
                    if threads == 1:
                        rows = np.concatenate([_engine.conv2d(x[i:i + 1], wt, b, g, relu=True)
                                               for i in range(len(x))])
                        assert_array_equal(rows, got[-3], err_msg=path)
                        backwards = _engine.conv2d(np.ascontiguousarray(x[::-1]), wt, b, g,
                                                   relu=True)
                        assert_array_equal(backwards[::-1], got[-3], err_msg=path)
            if expected is None:
                expected = got
            for a, e in zip(got, expected):
                assert_array_equal(a, e, err_msg=f"{path}, {threads} thread(s)")


@pytest.mark.parametrize("path", AVAILABLE_PATHS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_filters_kept_for_the_next_call_give_the_same_bits_and_follow_a_change(
        simd_path, path, dtype):
    # inference keeps the transformed filters (_engine.WinogradFilters) while w
    # stays the same bit for bit
    simd_path(path)
    rng = np.random.default_rng(3)
    x, wt, b, g = _case(rng, dtype, 32, 40, 10, 9, 1)
    kept = _engine.WinogradFilters()
    for change in (None, lambda v: v.__setitem__((5, 7), -0.0), lambda v: v.__imul__(1.5)):
        if change is not None:
            change(wt)
        expected = _engine.conv2d(x, wt, b, g, relu=True)
        for _ in range(2):
            assert_array_equal(_engine.conv2d(x, wt, b, g, relu=True, filters=kept), expected)
        assert_array_equal(kept._kept[1].view(dtype), wt)


def test_the_filter_transform_is_exact_in_float64_then_rounded_once():
    # U = G g G^T of integers (halves of them): exact, whatever the order
    rng = np.random.default_rng(4)
    f, c = 3, 2
    wt = rng.integers(-8, 9, (f, c * 9)).astype(np.float64)
    panels = np.empty(16 * (_gemm.output_rows(f, "d") + f) * c + 64)
    _conv.winograd2d_filter_panels(wt, panels)
    g_matrix = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])
    u = np.einsum("ai,fcij,bj->abfc", g_matrix, wt.reshape(f, c, 3, 3), g_matrix)
    # the transform of each position lies, packed, in panels' first 16 blocks:
    # their values are u's (the packing only orders them)
    start = (-panels.ctypes.data % 64) // 8
    size = _gemm.output_rows(f, "d") * c
    for a in range(4):
        for bb in range(4):
            block = panels[start + (4 * a + bb) * size:][:size]
            assert sorted(block[block != 0]) == sorted(u[a, bb][u[a, bb] != 0])


def test_the_kernel_refuses_scratch_and_filters_too_small():
    rng = np.random.default_rng(5)
    x, wt, b, g = _case(rng, np.float32, 32, 32, 8, 8, 1)
    plan = _engine.conv2d_plan(g, 32, x.dtype, x.shape[0])
    layout = plan.implicit
    y = np.empty(plan.y_shape, np.float32)
    with pytest.raises(ValueError, match="work is too small"):
        _conv.conv2d_forward_winograd2d(x, wt, y, layout, np.empty(plan.work_shape[0] // 2,
                                                                   np.float32),
                                        layout.copy_geometry, plan.n_threads)
    with pytest.raises(ValueError, match="panels is too small"):
        _conv.conv2d_forward_winograd2d(x, wt, y, layout, np.empty(plan.work_shape, np.float32),
                                        layout.copy_geometry, plan.n_threads,
                                        panels=np.empty(100, np.float32))
    with pytest.raises(ValueError, match="is not"):
        _conv.conv2d_forward_winograd2d(x, wt[:, :-9], y, layout,
                                        np.empty(plan.work_shape, np.float32),
                                        layout.copy_geometry, plan.n_threads)
    # images larger than the layout's, or an output, residual or argmax of
    # another size, would be written past their buffers
    work = np.empty(plan.work_shape, np.float32)
    bigger = np.zeros((5, 32, 9, 8), np.float32)
    with pytest.raises(ValueError, match="does not fit the copy"):
        _conv.conv2d_forward_winograd2d(bigger, wt, y, layout, work, layout.copy_geometry,
                                        plan.n_threads)
    with pytest.raises(ValueError, match="does not fit the layout's output"):
        _conv.conv2d_forward_winograd2d(x, wt, y[:, :, :-1].copy(), layout, work,
                                        layout.copy_geometry, plan.n_threads)
    with pytest.raises(ValueError, match="does not fit the layout's output"):
        _conv.conv2d_forward_winograd2d(x, wt, y, layout, work, layout.copy_geometry,
                                        plan.n_threads, pool2=True)
    with pytest.raises(ValueError, match="residual is not"):
        _conv.conv2d_forward_winograd2d(x, wt, y, layout, work, layout.copy_geometry,
                                        plan.n_threads, residual=y[:4].copy())
    with pytest.raises(ValueError, match="one for each of 32 filters"):
        _conv.conv2d_forward_winograd2d(x, wt, y, layout, work, layout.copy_geometry,
                                        plan.n_threads, b=b[:31].copy())
    pooled = np.empty((5, 32, 16), np.float32)
    with pytest.raises(ValueError, match="argmax is not"):
        _conv.conv2d_forward_winograd2d(x, wt, pooled, layout, work, layout.copy_geometry,
                                        plan.n_threads, pool2=True,
                                        argmax=np.empty((5, 32, 15), np.intp))


# (channels, filters, height, width, padding) whose gradients take Winograd's
GRADIENT_SHAPES = [(64, 64, 8, 8, 1), (32, 72, 11, 10, 0), (80, 33, 9, 13, 2),
                   (64, 64, 16, 17, 1)]


def test_gradients_of_2048_channels_times_filters_take_it():
    g = _engine.geometry((2, 64, 8, 8), (3, 3), 1, 1, 1)
    assert _engine.takes_winograd2d_gradient(g, 64)
    assert _engine.takes_winograd2d_gradient(g, 32)
    assert _engine.takes_winograd2d_gradient(dict(g, c=32), 64)
    assert not _engine.takes_winograd2d_gradient(dict(g, c=32), 32)
    assert not _engine.takes_winograd2d_gradient(dict(g, c=48), 40)
    # only where the forward takes it
    assert not _engine.takes_winograd2d_gradient(dict(g, c=16), 256)
    assert not _engine.takes_winograd2d_gradient(dict(g, oh=7), 64)
    assert not _engine.takes_winograd2d_gradient(dict(g, sh=2, sw=2), 64)
    # ResNet-20's third stage's stride-1 convolutions (64 on 8 x 8), not its
    # second's (32 on 16 x 16); the default net's second (32 -> 64)
    assert not _engine.takes_winograd2d_gradient(
        _engine.geometry((1, 32, 16, 16), (3, 3), 1, 1, 1), 32)
    assert _engine.takes_winograd2d_gradient(
        _engine.geometry((1, 32, 16, 16), (3, 3), 1, 1, 1), 64)


def _gradients(dy, x, wt, g, winograd, monkeypatch, **kwargs):
    """conv2d_backward's (dx, dw, db) with Winograd's gradients, checked to be
    called, or with the direct products."""
    called = []
    kernel = _conv.conv2d_weight_gradient_winograd2d
    with monkeypatch.context() as patch:
        patch.setattr(_conv, "conv2d_weight_gradient_winograd2d",
                      lambda *a, **k: called.append(1) or kernel(*a, **k))
        if not winograd:
            patch.setattr(_engine, "WINOGRAD2D_GRADIENT_MIN_PRODUCT", 10**9)
        got = _engine.conv2d_backward(dy, x, wt, g, True, **kwargs)
    assert bool(called) == winograd
    return got


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", GRADIENT_SHAPES)
def test_gradients_are_torchs_to_rounding(monkeypatch, dtype, shape):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(sum(shape) + 7)
    x, wt, b, g = _case(rng, dtype, *shape, n=6)
    c, f, p = shape[0], shape[1], shape[4]
    dy = rng.standard_normal((6, f, g["oh"], g["ow"])).astype(dtype)
    res = rng.standard_normal(x.shape).astype(dtype)
    xt = torch.from_numpy(x).double().requires_grad_()
    wtt = torch.from_numpy(wt.reshape(f, c, 3, 3)).double().requires_grad_()
    torch.nn.functional.conv2d(xt, wtt, padding=p).backward(torch.from_numpy(dy).double())
    expected = [xt.grad.numpy() + res, wtt.grad.numpy().reshape(f, -1), dy.sum(axis=(0, 2, 3))]
    direct = _gradients(dy, x, wt, g, False, monkeypatch, residual=res)
    got = _gradients(dy, x, wt, g, True, monkeypatch, residual=res)
    tol = 3e-5 if dtype == np.float32 else 1e-13
    for a, d, e, name in zip(got, direct, expected, ("dx", "dw", "db")):
        assert a.dtype == dtype and a.shape == e.shape, name
        assert_allclose(a, e, rtol=0, atol=tol * np.abs(e).max(), err_msg=name)
        assert_allclose(a, d, rtol=0, atol=tol * np.abs(e).max(), err_msg=name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gradients_of_a_pooled_convolution_and_without_db(monkeypatch, dtype):
    # the 2x2 pooling's (and the ReLU's) backward first, then Winograd's
    rng = np.random.default_rng(8)
    x, wt, b, g = _case(rng, dtype, 64, 64, 10, 12, 1)
    argmax = np.empty((5, 64, 5, 6), np.intp)
    pooled = _engine.conv2d(x, wt, b, g, pool2=(True, argmax))
    dy = rng.standard_normal(pooled.shape).astype(dtype)
    tol = 3e-5 if dtype == np.float32 else 1e-13
    direct = _gradients(dy, x, wt, g, False, monkeypatch, unpool=(argmax, pooled))
    got = _gradients(dy, x, wt, g, True, monkeypatch, unpool=(argmax, pooled))
    for a, d in zip(got, direct):
        assert_allclose(a, d, rtol=0, atol=tol * np.abs(d).max())
    dx, dw, db = _gradients(dy, x, wt, g, True, monkeypatch, unpool=(argmax, pooled),
                            need_db=False)
    assert db is None
    assert_array_equal(dx, got[0])
    assert_array_equal(dw, got[1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gradients_have_the_same_bits_on_every_path_and_thread_count(simd_path, dtype):
    # dU sums each chunk's images in order, one FMA chain each, the chunks
    # fixed by the batch size; dw = G^T dU G in double; dx a convolution of
    # its own image's dy: also the same bits row by row
    rng = np.random.default_rng(9)
    cases = []
    for shape in GRADIENT_SHAPES[:3]:
        x, wt, b, g = _case(rng, dtype, *shape, n=9)
        dy = rng.standard_normal((9, shape[1], g["oh"], g["ow"])).astype(dtype)
        cases.append((dy, x, wt, g))
    expected = None
    for path in AVAILABLE_PATHS:
        simd_path(path)
        for threads in (1, 2, 3):
            with threadpool_limits(threads):
                got = [a for dy, x, wt, g in cases
                       for a in _engine.conv2d_backward(dy, x, wt, g, True)]
            if threads == 1:
                dy, x, wt, g = cases[0]
                rows = np.concatenate([_engine.conv2d_backward(dy[i:i + 1], x[i:i + 1], wt, g,
                                                               True)[0] for i in range(9)])
                assert_array_equal(rows, got[0], err_msg=path)
            if expected is None:
                expected = got
            for a, e in zip(got, expected):
                assert_array_equal(a, e, err_msg=f"{path}, {threads} thread(s)")


def test_the_filter_gradient_transform_is_exact_in_float64():
    # dw = G^T dU G of integer dU: exact, whatever the order; the chunks summed
    rng = np.random.default_rng(10)
    du_part = rng.integers(-8, 9, (3, 16, 4, 5)).astype(np.float32)
    dw = np.empty((4, 5, 9))
    _conv.winograd2d_filter_gradient(du_part, dw, 2)
    g_matrix = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])
    du = du_part.sum(axis=0).astype(np.float64).reshape(4, 4, 4, 5)
    expected = np.einsum("ai,abfc,bj->fcij", g_matrix, du, g_matrix).reshape(4, 5, 9)
    assert_array_equal(dw, expected)


def test_the_gradient_kernel_refuses_scratch_and_shapes_that_do_not_fit():
    rng = np.random.default_rng(11)
    x, wt, b, g = _case(rng, np.float32, 64, 64, 8, 8, 1)
    dy = rng.standard_normal((5, 64, 64)).astype(np.float32)
    layout = _engine.winograd2d_layout(g, x.dtype)
    size = _conv.winograd2d_gradient_work(64, 64, layout, 2)
    du, db = np.empty((2, 16, 64, 64), np.float32), np.empty((2, 64), np.float32)

    def call(dy=dy, x=x, du=du, db=db, work=np.empty((2, size), np.float32), group=2):
        _conv.conv2d_weight_gradient_winograd2d(dy, x, layout, layout.copy_geometry, du, db,
                                                work, group, 2)

    call()
    with pytest.raises(ValueError, match="work of shape"):
        call(work=np.empty((2, size - 1), np.float32))
    with pytest.raises(ValueError, match="work of shape"):
        call(group=3)  # more images a product than the scratch holds
    with pytest.raises(ValueError, match="does not fit the copy"):
        call(x=np.zeros((5, 64, 9, 8), np.float32))
    with pytest.raises(ValueError, match="does not fit the layout's output"):
        call(dy=dy[:, :, :-1].copy())
    with pytest.raises(ValueError, match="does not match"):
        call(du=np.empty((2, 16, 64, 63), np.float32))
    with pytest.raises(ValueError, match="does not match"):
        call(du=np.empty((6, 16, 64, 64), np.float32), db=np.empty((6, 64), np.float32))


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(6)
    X = rng.random((96, 16, 16, 3), dtype=np.float32)
    y = (X[:, :8].mean(axis=(1, 2, 3)) > X[:, 8:].mean(axis=(1, 2, 3))).astype(int)
    return X, y


@pytest.mark.parametrize("net", ["resnet", "default"])
def test_networks_with_winograd_layers_fit_and_predict_the_same_bits_everywhere(
        simd_path, images, monkeypatch, net):
    # on 16 x 16 images, ResNet-8's second stage's stride-1 convolution (32
    # channels on 8 x 8) takes Winograd's product; the default net's second
    # (32 -> 64 on 8 x 8, pooled) its gradients too
    X, y = images
    called, gradients = [], []
    winograd = _conv.conv2d_forward_winograd2d
    monkeypatch.setattr(_conv, "conv2d_forward_winograd2d",
                        lambda *a, **k: called.append(1) or winograd(*a, **k))
    kernel = _conv.conv2d_weight_gradient_winograd2d
    monkeypatch.setattr(_conv, "conv2d_weight_gradient_winograd2d",
                        lambda *a, **k: gradients.append(1) or kernel(*a, **k))
    params = dict(resnet(8) if net == "resnet" else dict(hidden_layer_sizes=(16,)), max_iter=2,
                  batch_size=32, random_state=0)
    fits = []
    for path in AVAILABLE_PATHS:
        simd_path(path)
        for threads in (1, 2):
            est = ConvNetClassifier(**params)
            with threadpool_limits(threads), warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                est.fit(X, y)
            proba = est.predict_proba(X)
            rows = np.concatenate([est.predict_proba(X[i:i + 1]) for i in range(0, 96, 7)])
            assert_array_equal(rows, proba[::7])
            fits.append((f"{path}, {threads} thread(s)", est._network.params.copy(), proba))
    assert called
    assert bool(gradients) == (net == "default")
    for name, params_, proba in fits[1:]:
        assert_array_equal(params_, fits[0][1], err_msg=f"{name} vs {fits[0][0]}")
        assert_array_equal(proba, fits[0][2], err_msg=f"{name} vs {fits[0][0]}")
