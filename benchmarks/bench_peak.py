"""GFLOP/s of skconv's GEMM against numpy's BLAS and the machine's FMA peak.

For each product: skconv's GEMM (``skconv.ops.linear``, which runs the
micro-kernel of the SIMD path chosen at import), numpy's ``@`` (OpenBLAS), and,
for the convolutions, the whole ``skconv.ops.conv2d`` (for these stride-1
layers the implicit product: the taps read from the padded image, no im2col,
padding and copy-out included; for a 3x3 one of 32 channels and filters or
more, Winograd's F(2x2, 3x3)), each as GFLOP/s (2 * m * n * k per product,
median of ``--repeats``) and as a fraction of the peak. Winograd's rate counts
the direct product's flops, 2.25 times those it makes: an effective rate, which
may pass the peak.

The peak is cores x 2 FMA units x lanes x 2 flops x clock: lanes from the SIMD
path (8 float32 lanes for AVX2, 16 for AVX-512), the clock from
``/proc/cpuinfo`` (the nominal one; turbo can exceed it, so a fraction over
1.0 is possible) and 2 FMA units per core (Zen 3-5, Skylake-X and later Xeons;
``--fma-units`` to change it: Zen 4's two units are 256 bits wide and run an
AVX-512 instruction in two halves, so on the avx512 path its peak is
``--fma-units 1``'s). The shapes are LeNet-5's and the default
``wide`` net's layers at batch 64, plus a 1024^3 square.

Then each distinct convolution of ResNet-20 (``skconv.architectures.resnet(20)``
on 32x32x3 images, batch ``--resnet-batch``, 128 by default): the layer's
inference call (``forward_fast``: the 'same' padding of a stride of 2 included)
(forward by Winograd's product for the 3x3 stride-1 layers of 32 and 64
channels: an effective rate, as above) and its training backward (weights' and
input's gradients, by the direct products), as GFLOP/s
(``2 * n * f * c * kh * kw * oh * ow`` for the forward, twice that for the
backward) and as a fraction of the peak.

Usage::

    python benchmarks/bench_peak.py [--threads 1 2] [--repeats 7] [--resnet-batch 128]
"""

import argparse

import numpy as np
from threadpoolctl import threadpool_limits

import skconv
from bench_train import median_time
from skconv import ConvNetClassifier, ops
from skconv.architectures import resnet
from machine import cpu_name

LANES = {"portable": 1, "avx2": 8, "avx512": 16}  # float32 lanes per FMA

# name: (m, k, n) of the product, and the conv it comes from (c, h, w, f, kernel, padding)
SHAPES = {
    "square 1024^3": ((1024, 1024, 1024), None),
    "lenet conv1 (batch 64)": ((6, 25, 64 * 576), (1, 28, 28, 6, 5, 0)),
    "lenet conv2 (batch 64)": ((16, 150, 64 * 64), (6, 12, 12, 16, 5, 0)),
    "lenet dense 256->120": ((64, 256, 120), None),
    "wide conv1 (batch 64)": ((32, 27, 64 * 1024), (3, 32, 32, 32, 3, 1)),
    "wide conv2 (batch 64)": ((64, 288, 64 * 256), (32, 16, 16, 64, 3, 1)),
    "wide dense 4096->128": ((64, 4096, 128), None),
}


def clock_ghz():
    mhz = [float(line.split(":")[1]) for line in open("/proc/cpuinfo") if line.startswith("cpu MHz")]
    return max(mhz) / 1000 if mhz else float("nan")


def resnet20_convolutions():
    """The distinct convolution layers of ResNet-20 on 32x32x3 images: ``{description: layer}``."""
    clf = ConvNetClassifier(**resnet(20))
    clf.input_shape_ = (32, 32, 3)
    net = clf._build_network(10)
    net.init_params(np.random.RandomState(0))
    layers = {}
    for node in net.nodes:
        layer = node.layer
        if layer.op == "conv":
            c, h, w = layer.input_shape
            key = (f"{c}->{layer.filters} {layer.kernel_size[0]}x{layer.kernel_size[1]} "
                   f"stride {layer.stride[0]} on {h}x{w}")
            layers.setdefault(key, [layer, 0])[1] += 1
    return layers


def resnet20_table(args, peak, rng):
    print(f"\nResNet-20's convolutions at batch {args.resnet_batch}, float32 "
          "(count: how many of the net's layers have that shape)")
    print("| convolution | count | forward GFLOP/s | forward / peak | backward GFLOP/s "
          "| backward / peak |")
    print("| --- | --- | --- | --- | --- | --- |")
    n = args.resnet_batch
    for name, (layer, count) in resnet20_convolutions().items():
        x = rng.standard_normal((n,) + layer.input_shape).astype(np.float32)
        dy = rng.standard_normal((n,) + layer.output_shape).astype(np.float32)
        f, c, kh, kw = layer._w.shape
        flops = 2 * n * f * c * kh * kw * layer.output_shape[1] * layer.output_shape[2]
        forward = flops / median_seconds(lambda: layer.forward_fast(x), args.repeats) / 1e9

        def backward():
            layer.forward(x)
            layer.backward(dy, need_dx=True)
        t_fwd = flops / forward / 1e9
        # the backward's time: a training forward and backward, less the forward's
        t = median_seconds(backward, args.repeats) - t_fwd
        back = 2 * flops / t / 1e9
        print(f"| {name} | {count} | {forward:.0f} | {forward / peak:.2f} | {back:.0f} "
              f"| {back / peak:.2f} |")
        layer.release_buffers()


def median_seconds(fn, repeats):
    """Median time of ``fn`` after one warm-up call (first-touch of its buffers)."""
    fn()
    return median_time(fn, repeats)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--fma-units", type=int, default=2)
    parser.add_argument("--resnet-batch", type=int, default=128)
    args = parser.parse_args()

    path = ops.simd_path()
    print(f"CPU: {cpu_name()}, clock {clock_ghz():.2f} GHz; skconv {skconv.__version__} "
          f"SIMD path {path}; numpy {np.__version__}")
    rng = np.random.default_rng(0)
    for n_threads in args.threads:
        peak = n_threads * args.fma_units * LANES[path] * 2 * clock_ghz()
        print(f"\n{n_threads} thread(s): float32 FMA peak {peak:.0f} GFLOP/s")
        print("| product | m x k x n | skconv GEMM | numpy (BLAS) | skconv / numpy "
              "| skconv / peak | conv2d | conv2d / peak |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        with threadpool_limits(n_threads):
            for name, ((m, k, n), conv) in SHAPES.items():
                a = rng.standard_normal((m, k)).astype(np.float32)
                b = rng.standard_normal((k, n)).astype(np.float32)
                flops = 2 * m * n * k
                ours = flops / median_seconds(lambda: ops.linear(a, b), args.repeats) / 1e9
                theirs = flops / median_seconds(lambda: a @ b, args.repeats) / 1e9
                conv_cell = " |"
                if conv is not None:
                    c, h, w, f, kernel, pad = conv
                    x = rng.standard_normal((64, c, h, w)).astype(np.float32)
                    wt = rng.standard_normal((f, c, kernel, kernel)).astype(np.float32)
                    t = median_seconds(lambda: ops.conv2d(x, wt, padding=pad), args.repeats)
                    conv_cell = f"{flops / t / 1e9:.0f} GFLOP/s | {flops / t / 1e9 / peak:.2f}"
                print(f"| {name} | {m} x {k} x {n} | {ours:.0f} GFLOP/s | {theirs:.0f} GFLOP/s "
                      f"| {ours / theirs:.2f} | {ours / peak:.2f} | {conv_cell} |")
            resnet20_table(args, peak, rng)


if __name__ == "__main__":
    main()
