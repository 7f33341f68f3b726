"""Batch norm against torch.nn.BatchNorm2d/1d: train and eval mode, gradients and
running statistics after several steps (torch is optional)."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

from skconv._normalization import BatchNorm1d, BatchNorm2d

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("ours, theirs, x_shape", [
    (BatchNorm2d, torch.nn.BatchNorm2d, (6, 3, 5, 4)),
    (BatchNorm1d, torch.nn.BatchNorm1d, (7, 5)),
])
@pytest.mark.parametrize("momentum", [0.1, 0.3])
def test_batch_norm_matches_torch_in_train_and_eval_mode_after_several_steps(
        ours, theirs, x_shape, momentum):
    rng = np.random.RandomState(0)
    c = x_shape[1]
    layer = ours(momentum=momentum, eps=1e-5)
    layer.build(x_shape[1:])
    scale, shift = rng.uniform(0.5, 1.5, c), rng.standard_normal(c)
    dscale, dshift = np.zeros(c), np.zeros(c)
    layer.bind({"scale": scale, "shift": shift}, {"scale": dscale, "shift": dshift})
    layer.init_params(rng)
    scale[...], shift[...] = rng.uniform(0.5, 1.5, c), rng.standard_normal(c)

    ref = theirs(c, eps=1e-5, momentum=momentum).double()
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(scale))
        ref.bias.copy_(torch.from_numpy(shift))
    ref.train()
    for step in range(4):
        # batches of different size, offset and spread, so the running statistics move
        x = rng.standard_normal(x_shape) * (1 + step) + step - 1
        dy = rng.standard_normal(x_shape)
        xt = torch.from_numpy(x.copy()).requires_grad_(True)
        ref.weight.grad = ref.bias.grad = None
        yt = ref(xt)
        yt.backward(torch.from_numpy(dy))
        y = layer.forward(x.copy(), training=True)
        assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-12)
        dx = layer.backward(dy.copy())
        assert_allclose(dx, xt.grad.numpy(), rtol=1e-9, atol=1e-12)
        assert_allclose(dscale, ref.weight.grad.numpy(), rtol=1e-10, atol=1e-12)
        assert_allclose(dshift, ref.bias.grad.numpy(), rtol=1e-10, atol=1e-12)
        assert_allclose(layer.running_mean, ref.running_mean.numpy(), rtol=1e-12)
        assert_allclose(layer.running_var, ref.running_var.numpy(), rtol=1e-12)

    ref.eval()
    x = rng.standard_normal(x_shape) * 2
    with torch.no_grad():
        expected = ref(torch.from_numpy(x)).numpy()
    assert_allclose(layer.forward_fast(x.copy()), expected, rtol=1e-10, atol=1e-12)
    assert_allclose(layer.forward(x.copy(), training=False), expected, rtol=1e-10, atol=1e-12)


def test_batch_norm_matches_torch_in_float32():
    rng = np.random.RandomState(1)
    x = (rng.standard_normal((16, 8, 6, 6)) * 3 + 2).astype(np.float32)
    layer = BatchNorm2d()
    layer.build(x.shape[1:])
    params = {"scale": np.ones(8, np.float32), "shift": np.zeros(8, np.float32)}
    layer.bind(params, {k: np.zeros_like(v) for k, v in params.items()})
    layer.init_params(rng)
    ref = torch.nn.BatchNorm2d(8).train()
    y = layer.forward(x.copy(), training=True)
    assert y.dtype == np.float32
    assert_allclose(y, ref(torch.from_numpy(x)).detach().numpy(), rtol=1e-4, atol=1e-5)
    assert_allclose(layer.running_var, ref.running_var.numpy(), rtol=1e-5)
