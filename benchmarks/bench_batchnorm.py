"""What batch normalization costs: per layer against torch, and per LeNet-5 epoch.

First ``skconv.ops.batch_norm`` / ``batch_norm_backward`` (the kernels of
``_kernels/batchnorm.h``) against torch's ``F.batch_norm`` training-mode
forward and autograd backward on LeNet-5's first feature maps (64x6x24x24),
ResNet-20's first stage (128x16x32x32) and FCN's widest layer (16x256x512),
float32 (``ops.batch_norm`` also writes x_hat, which the layers do not); then LeNet-5 epochs on
28x28 digits with and without ``batch_norm=True``, interleaved, and the share
of a batch-norm epoch that batch norm takes.

Usage::

    python benchmarks/bench_batchnorm.py [--threads 1 2] [--n-images 2048]
"""

import argparse
import statistics

import numpy as np
from threadpoolctl import threadpool_limits

from bench_train import interleaved_medians, make_data, median_time
from skconv import ConvNetClassifier, ops


# LeNet-5's first feature maps, ResNet-20's first stage at its batch of 128, FCN's
# widest layer at a batch of 16
SHAPES = ((64, 6, 24, 24), (128, 16, 32, 32), (16, 256, 512))


def per_layer(threads):
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    for shape in SHAPES:
        c = shape[1]
        x = rng.standard_normal(shape).astype(np.float32)
        dy = rng.standard_normal(x.shape).astype(np.float32)
        scale, shift = np.ones(c, np.float32), np.zeros(c, np.float32)
        _, x_hat, _, var = ops.batch_norm(x, scale, shift)
        repeats = max(20, int(2e7 // x.size))
        xt = torch.from_numpy(x).requires_grad_()
        st, bt = torch.ones(c, requires_grad=True), torch.zeros(c, requires_grad=True)

        def theirs_forward():
            with torch.no_grad():
                F.batch_norm(xt, None, None, st, bt, training=True)

        yt = F.batch_norm(xt, None, None, st, bt, training=True)
        dyt = torch.from_numpy(dy)
        # taking turns: a slow moment of a shared machine slows both alike
        ours_f, theirs_f = interleaved_medians(
            [lambda: ops.batch_norm(x, scale, shift), theirs_forward], repeats)
        ours_b, theirs_b = interleaved_medians(
            [lambda: ops.batch_norm_backward(dy, x_hat, scale, var),
             lambda: torch.autograd.grad(yt, (xt, st, bt), dyt, retain_graph=True)], repeats)
        name = "x".join(map(str, shape))
        for way, a, b in (("forward", ours_f, theirs_f), ("backward", ours_b, theirs_b)):
            print(f"  batch norm {way:<8} {name:>14}: skconv {a * 1e6:7.0f} us, torch "
                  f"{b * 1e6:7.0f} us, ratio {a / b:.2f}")


def epochs(images, y, threads, repeats=3, n_epochs=5):
    times = {False: [], True: []}
    for _ in range(repeats):
        for batch_norm in (False, True):
            clf = ConvNetClassifier(conv_layers=((6, 5), (16, 5)), padding="valid",
                                    hidden_layer_sizes=(120, 84), batch_size=64,
                                    batch_norm=batch_norm, random_state=0)
            clf.partial_fit(images, y, classes=np.unique(y))
            times[batch_norm].append(median_time(lambda: clf.partial_fit(images, y), n_epochs))
    plain, with_bn = statistics.median(times[False]), statistics.median(times[True])
    print(f"  LeNet-5 epoch of {len(images)} images: plain {plain * 1e3:.1f} ms, batch_norm "
          f"{with_bn * 1e3:.1f} ms; batch norm is {100 * (with_bn - plain) / with_bn:.0f}% "
          "of a batch-norm epoch")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--n-images", type=int, default=2048)
    args = parser.parse_args()
    images, y = make_data(args.n_images)
    for threads in args.threads:
        print(f"{threads} thread(s):")
        with threadpool_limits(limits=threads):
            per_layer(threads)
            epochs(images, y, threads)


if __name__ == "__main__":
    main()
