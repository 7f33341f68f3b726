"""Winograd's F(2x2, 3x3) for images' 3x3 convolutions against the implicit product.

Three tables, the ways compared taking turns in one process (so that a slow
minute of a shared machine slows them all), medians:

- ``layers``: each convolution forward at ``--batch`` images (ResNet-20's
  stride-1 layers among them), the implicit product's time over Winograd's;
  a convolution that ``_engine.takes_winograd2d`` refuses is marked ``(not taken)``.
- ``gradients``: each convolution's backward at ``--batch`` images, both
  gradients and the weights' alone, the direct products' time (the fused one
  of both) over Winograd's, whichever ``_engine.takes_winograd2d_gradient``
  chooses (marked ``*``);
- ``networks``: the default net (``conv_layers=(32, 64)``, batch 64),
  ResNet-20 and ResNet-20 of width 32 (batch 128) on 32x32x3 images, training
  epochs (``partial_fit`` on 512 images) and ``predict`` on 1000, each model
  as built, with Winograd's gradients off (training:
  ``WINOGRAD2D_GRADIENT_MIN_PRODUCT`` raised at each epoch) and with
  ``takes_winograd2d`` patched off while it plans its kernel calls (its
  copies made from one pickle, so all start from the same weights).

The SIMD path is the one skconv chose; force another with ``SKCONV_SIMD``::

    python benchmarks/bench_winograd.py [--threads 1 2] [--parts layers gradients networks]
    SKCONV_SIMD=avx2 python benchmarks/bench_winograd.py
"""

import argparse
import pickle
import warnings

import numpy as np
from threadpoolctl import threadpool_limits

from skconv import ConvNetClassifier, _engine, ops
from skconv.architectures import resnet
from bench_train import interleaved_medians
from machine import cpu_name

LAYERS = [(32, 32), (32, 16), (64, 8), (128, 8), (64, 16), (64, 4)]  # (channels, side)


def layers(threads, batch, rounds):
    rng = np.random.default_rng(0)
    print(f"\nlayers, forward, batch {batch}, {threads} thread(s): implicit / Winograd")
    print(f"{'convolution':28s} {'implicit ms':>12s} {'Winograd ms':>12s} {'ratio':>7s}")
    for c, side in LAYERS:
        x = rng.standard_normal((batch, c, side, side)).astype(np.float32)
        w = (rng.standard_normal((c, c * 9)) / np.sqrt(9 * c)).astype(np.float32)
        b = np.zeros(c, np.float32)
        g = _engine.geometry(x.shape, (3, 3), 1, 1, 1)
        name = f"{c}->{c} on {side}x{side}"
        with threadpool_limits(threads):
            direct = _engine.conv2d_plan(g, c, x.dtype, batch, winograd=False)
            if not _engine.takes_winograd2d(g, c):
                t, = interleaved_medians([lambda: _engine.conv2d(x, w, b, g, plan=direct)], rounds)
                print(f"{name:28s} {t * 1e3:12.2f} {'(not taken)':>12s}")
                continue
            plan = _engine.conv2d_plan(g, c, x.dtype, batch)
            t_direct, t_winograd = interleaved_medians([lambda: _engine.conv2d(x, w, b, g, plan=direct),
                                           lambda: _engine.conv2d(x, w, b, g, plan=plan)], rounds)
        print(f"{name:28s} {t_direct * 1e3:12.2f} {t_winograd * 1e3:12.2f} "
              f"{t_direct / t_winograd:7.2f}")


def gradients(threads, batch, rounds):
    rng = np.random.default_rng(0)
    print(f"\ngradients, batch {batch}, {threads} thread(s): direct / Winograd "
          "(* where skconv takes Winograd's)")
    print(f"{'convolution':28s} {'both direct':>12s} {'Winograd':>9s} {'ratio':>7s} "
          f"{'dw direct':>10s} {'Winograd':>9s} {'ratio':>7s}")
    rule = _engine.takes_winograd2d_gradient

    def backward(x, w, g, dy, need_dx, on):
        def call():
            _engine.takes_winograd2d_gradient = _engine.takes_winograd2d if on else (
                lambda g, f: False)
            try:
                _engine.conv2d_backward(dy, x, w, g, need_dx)
            finally:
                _engine.takes_winograd2d_gradient = rule
        return call

    for c, side in LAYERS + [(128, 16)]:
        x = rng.standard_normal((batch, c, side, side)).astype(np.float32)
        w = (rng.standard_normal((c, c * 9)) / np.sqrt(9 * c)).astype(np.float32)
        g = _engine.geometry(x.shape, (3, 3), 1, 1, 1)
        dy = rng.standard_normal((batch, c, side, side)).astype(np.float32)
        name = f"{c}->{c} on {side}x{side}" + (" *" if rule(g, c) else "")
        if not _engine.takes_winograd2d(g, c):
            print(f"{name:28s} {'(Winograd not possible: map or channels too small)':>40s}")
            continue
        with threadpool_limits(threads):
            times = interleaved_medians([backward(x, w, g, dy, need_dx, on)
                                         for need_dx in (True, False) for on in (False, True)],
                                        rounds)
        both, alone = times[:2], times[2:]
        print(f"{name:28s} {both[0] * 1e3:12.2f} {both[1] * 1e3:9.2f} {both[0] / both[1]:7.2f} "
              f"{alone[0] * 1e3:10.2f} {alone[1] * 1e3:9.2f} {alone[0] / alone[1]:7.2f}")


def _pair(estimator, X, y):
    """The estimator after one partial_fit, three times from one pickle:
    planned with Winograd's product, again (to train with its gradients
    off), and without it."""
    estimator.partial_fit(X[:128], y[:128], classes=np.arange(10))
    blob = pickle.dumps(estimator)
    taken = _engine.takes_winograd2d
    models = []
    for on in (True, True, False):
        _engine.takes_winograd2d = taken if on else (lambda g, f: False)
        try:
            model = pickle.loads(blob)
            model.partial_fit(X[:128], y[:128])  # plans the training batches
            model.predict(X)  # and the inference passes
        finally:
            _engine.takes_winograd2d = taken
        models.append(model)
    return models


def _direct_gradients(model, X, y):
    """A training epoch of model with the gradients' Winograd product off
    (conv2d_backward asks takes_winograd2d_gradient at each call)."""
    def epoch():
        product = _engine.WINOGRAD2D_GRADIENT_MIN_PRODUCT
        _engine.WINOGRAD2D_GRADIENT_MIN_PRODUCT = float("inf")
        try:
            model.partial_fit(X, y)
        finally:
            _engine.WINOGRAD2D_GRADIENT_MIN_PRODUCT = product
    return epoch


def networks(threads, rounds):
    rng = np.random.default_rng(0)
    X = rng.random((1000, 32, 32, 3), dtype=np.float32)
    y = rng.integers(0, 10, 1000)
    models = {"default net": ConvNetClassifier(conv_layers=(32, 64), hidden_layer_sizes=(128,),
                                               batch_size=64, random_state=0),
              "ResNet-20": ConvNetClassifier(**resnet(20), batch_size=128, random_state=0),
              "ResNet-20, width 32": ConvNetClassifier(**resnet(20, width=32), batch_size=128,
                                                       random_state=0)}
    print(f"\nnetworks, {threads} thread(s): images/s with Winograd's product, with it forward "
          "only (training), and without; ratios: with over each")
    print(f"{'':28s} {'with':>9s} {'forward':>9s} {'without':>9s} {'ratio':>7s} {'ratio':>7s}")
    for name, estimator in models.items():
        with threadpool_limits(threads), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            on, forward, off = _pair(estimator, X, y)
            fit = interleaved_medians([lambda: on.partial_fit(X[:512], y[:512]),
                                       _direct_gradients(forward, X[:512], y[:512]),
                                       lambda: off.partial_fit(X[:512], y[:512])], rounds)
            predict = interleaved_medians([lambda: on.predict(X), lambda: off.predict(X)], rounds)
        t_on, t_forward, t_off = fit
        print(f"{name + ' training':28s} {512 / t_on:9.0f} {512 / t_forward:9.0f} "
              f"{512 / t_off:9.0f} {t_forward / t_on:7.3f} {t_off / t_on:7.3f}")
        t_on, t_off = predict
        print(f"{name + ' predict':28s} {1000 / t_on:9.0f} {'':9s} {1000 / t_off:9.0f} "
              f"{'':7s} {t_off / t_on:7.3f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--parts", nargs="+", choices=["layers", "gradients", "networks"],
                        default=["layers", "gradients", "networks"])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    print(f"CPU: {cpu_name()}; SIMD path: {ops.simd_path()}")
    for threads in args.threads:
        if "layers" in args.parts:
            layers(threads, args.batch, args.rounds)
        if "gradients" in args.parts:
            gradients(threads, args.batch, args.rounds)
        if "networks" in args.parts:
            networks(threads, args.rounds)


if __name__ == "__main__":
    main()
