"""Time skconv's depthwise and grouped convolutions and global pooling against
torch CPU on MobileNet-like layers, in the same run.

For each layer and pass: microseconds per call (median, the two contenders
timed alternately, see bench_ops.median_us) for skconv.ops and
torch.nn.functional at the same thread count, the ratio skconv / torch (below
1: skconv is faster) and each one's GFLOP/s (a multiply and an add per tap and
output; backward counts dx and dw, twice the forward). torch's forward runs
under ``torch.no_grad()``; its backward is ``torch.autograd.grad`` of the
output with respect to the input, weights and bias on a graph built outside
the timer.

Usage::

    python benchmarks/bench_depthwise.py                 # 1 and 2 threads, batch 64
    python benchmarks/bench_depthwise.py --threads 1 --batch 128 --dtype float64
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from threadpoolctl import threadpool_limits

from bench_ops import median_us

try:
    import skconv
except ImportError:  # not installed: use the checkout this script sits in (built in place)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import skconv
from skconv import ops
from machine import cpu_name

# name, input (c, h, w), filters, groups, kernel, stride, padding
LAYERS = [
    ("depthwise 3x3 s1, 64x32x32", (64, 32, 32), 64, 64, 3, 1, 1),
    ("depthwise 3x3 s2, 64x32x32", (64, 32, 32), 64, 64, 3, 2, 1),
    ("depthwise 3x3 s1, 64x16x16", (64, 16, 16), 64, 64, 3, 1, 1),
    ("depthwise 3x3 s2, 64x16x16", (64, 16, 16), 64, 64, 3, 2, 1),
    ("depthwise 3x3 s1, 256x8x8", (256, 8, 8), 256, 256, 3, 1, 1),
    ("depthwise 3x3 s1, 512x7x7", (512, 7, 7), 512, 512, 3, 1, 1),
    ("grouped 3x3 g4, 64->64 16x16", (64, 16, 16), 64, 4, 3, 1, 1),
]
POOLS = [("global avg pool, 256x8x8", (256, 8, 8), "avg"),
         ("global max pool, 256x8x8", (256, 8, 8), "max")]


def conv_cases(x, f, groups, k, stride, padding, rng):
    """(pass, flops, skconv call, torch call) for a convolution layer."""
    dtype = x.dtype
    w = (rng.standard_normal((f, x.shape[1] // groups, k, k)) * 0.1).astype(dtype)
    b = rng.standard_normal(f).astype(dtype)
    kw = dict(stride=stride, padding=padding, groups=groups)
    y = ops.conv2d(x, w, b, **kw)
    dy = rng.standard_normal(y.shape).astype(dtype)
    flops = 2 * y.size * w[0].size
    xt, wt, bt, dyt = (torch.from_numpy(a) for a in (x, w, b, dy))
    xg, wg, bg = (t.clone().requires_grad_(True) for t in (xt, wt, bt))
    yt = F.conv2d(xg, wg, bg, **kw)

    def torch_forward():
        with torch.no_grad():
            F.conv2d(xt, wt, bt, **kw)

    return [
        ("forward", flops, lambda: ops.conv2d(x, w, b, **kw), torch_forward),
        ("backward", 2 * flops, lambda: ops.conv2d_backward(dy, x, w, **kw),
         lambda: torch.autograd.grad(yt, (xg, wg, bg), dyt, retain_graph=True)),
    ]


def pool_cases(x, kind, rng):
    dy = rng.standard_normal(x.shape[:2]).astype(x.dtype)
    xt, dyt = torch.from_numpy(x), torch.from_numpy(dy)
    xg = xt.clone().requires_grad_(True)
    if kind == "avg":
        ours, ours_back = ops.global_avg_pool2d, lambda: ops.global_avg_pool2d_backward(dy, x.shape)
        theirs = lambda t: F.adaptive_avg_pool2d(t, 1).flatten(1)  # noqa: E731
    else:
        argmax = ops.global_max_pool2d(x)[1]
        ours = ops.global_max_pool2d
        ours_back = lambda: ops.global_max_pool2d_backward(dy, argmax, x.shape)  # noqa: E731
        theirs = lambda t: F.adaptive_max_pool2d(t, 1).flatten(1)  # noqa: E731
    yt = theirs(xg)

    def torch_forward():
        with torch.no_grad():
            theirs(xt)

    return [("forward", x.size, lambda: ours(x), torch_forward),
            ("backward", x.size, ours_back,
             lambda: torch.autograd.grad(yt, xg, dyt, retain_graph=True))]


def run(n_threads, batch, dtype, warmup, repeats, min_seconds):
    rng = np.random.default_rng(0)
    rows = []
    torch.set_num_threads(n_threads)
    with threadpool_limits(n_threads):
        layers = [(name, shape, conv_cases(rng.standard_normal((batch, *shape)).astype(dtype),
                                           *geometry, rng))
                  for name, shape, *geometry in LAYERS]
        layers += [(name, shape, pool_cases(rng.standard_normal((batch, *shape)).astype(dtype),
                                            kind, rng))
                   for name, shape, kind in POOLS]
        for name, _, cases in layers:
            for pass_, flops, ours, theirs in cases:
                us_ours, us_torch = median_us([ours, theirs], warmup, repeats, min_seconds)
                rows.append((name, pass_, n_threads, flops, us_ours, us_torch))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--min-seconds", type=float, default=0.3)
    args = parser.parse_args()
    print(f"skconv {skconv.__version__} (SIMD path {ops.simd_path()}) vs torch {torch.__version__}, "
          f"batch {args.batch}, {args.dtype}, {cpu_name()}; medians of >= {args.repeats} "
          "alternating calls\n")
    print("| layer | pass | threads | skconv (µs) | torch (µs) | skconv/torch "
          "| skconv GFLOP/s | torch GFLOP/s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for n_threads in args.threads:
        for name, pass_, n_threads, flops, ours, theirs in run(
                n_threads, args.batch, np.dtype(args.dtype), args.warmup, args.repeats,
                args.min_seconds):
            gflops = ("", "") if "pool" in name else (
                f"{flops / ours / 1e3:.1f}", f"{flops / theirs / 1e3:.1f}")
            print(f"| {name} | {pass_} | {n_threads} | {ours:,.0f} | {theirs:,.0f} "
                  f"| {ours / theirs:.2f} | {gflops[0]} | {gflops[1]} |", flush=True)


if __name__ == "__main__":
    main()
