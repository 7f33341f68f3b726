"""Time skconv.ops against torch CPU on LeNet-5's layer shapes, in the same run.

For each layer: microseconds per forward and per backward call (median of many
repeats after a warm-up) for skconv and for torch.nn.functional with the same
number of threads, and the ratio skconv / torch (below 1: skconv is faster).

- torch forward runs under ``torch.no_grad()``: the fastest forward torch has.
- torch backward times ``torch.autograd.grad`` of the output with respect to
  the input and the weights (and bias), given dy, on a graph built once outside
  the timer; skconv's backward is the call to ``conv2d_backward`` (or the pool's
  backward). "backward, no dx" is skconv's ``need_dx=False`` against torch's
  gradient with respect to the weights only, as for a network's first layer.

Usage::

    python benchmarks/bench_ops.py                 # 1 and 2 threads
    python benchmarks/bench_ops.py --threads 4 --batch 128
"""

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from threadpoolctl import threadpool_limits

try:
    import skconv
except ImportError:  # not installed: use the checkout this script sits in (built in place)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import skconv
from skconv import ops

# name, kind, input shape (c, h, w), and the op's geometry
LAYERS = [
    ("conv1 1->6 5x5, 28x28", "conv", (1, 28, 28), dict(f=6, k=5, stride=1, padding=0)),
    ("maxpool 2x2, 6x24x24", "maxpool", (6, 24, 24), dict(k=2)),
    ("avgpool 2x2, 6x24x24", "avgpool", (6, 24, 24), dict(k=2)),
    ("conv2 6->16 5x5, 12x12", "conv", (6, 12, 12), dict(f=16, k=5, stride=1, padding=0)),
    ("maxpool 2x2, 16x8x8", "maxpool", (16, 8, 8), dict(k=2)),
    ("conv 32->64 3x3 s2 p1, 16x16", "conv", (32, 16, 16), dict(f=64, k=3, stride=2, padding=1)),
]
# layers whose forward + backward the summary adds up: LeNet's convolutions
LENET_CONVS = ("conv1 1->6 5x5, 28x28", "conv2 6->16 5x5, 12x12")


def median_us(pairs, warmup, repeats, min_seconds):
    """Median microseconds per call of each function in ``pairs``, timed alternately.

    Alternating the contenders spreads any noise of a shared machine evenly.
    """
    for fn in pairs:
        for _ in range(warmup):
            fn()
    times = [[] for _ in pairs]
    start = time.perf_counter()
    while len(times[0]) < repeats or time.perf_counter() - start < min_seconds:
        for fn, t in zip(pairs, times):
            t0 = time.perf_counter()
            fn()
            t.append(time.perf_counter() - t0)
        if len(times[0]) >= 20 * repeats:
            break
    return [statistics.median(t) * 1e6 for t in times]


def conv_cases(x, g, dtype, rng):
    """(pass, skconv call, torch call) for a convolution layer."""
    c = x.shape[1]
    w = rng.standard_normal((g["f"], c, g["k"], g["k"])).astype(dtype) * 0.1
    b = rng.standard_normal(g["f"]).astype(dtype)
    kw = dict(stride=g["stride"], padding=g["padding"])
    y = ops.conv2d(x, w, b, **kw)
    dy = rng.standard_normal(y.shape).astype(dtype)

    xt, wt, bt, dyt = (torch.from_numpy(a) for a in (x, w, b, dy))
    xg, wg, bg = (t.clone().requires_grad_(True) for t in (xt, wt, bt))
    yt = F.conv2d(xg, wg, bg, **kw)
    yt_no_dx = F.conv2d(xt, wg, bg, **kw)

    def torch_forward():
        with torch.no_grad():
            F.conv2d(xt, wt, bt, **kw)

    cases = [
        ("forward", lambda: ops.conv2d(x, w, b, **kw), torch_forward),
        (
            "backward",
            lambda: ops.conv2d_backward(dy, x, w, **kw),
            lambda: torch.autograd.grad(yt, (xg, wg, bg), dyt, retain_graph=True),
        ),
    ]
    if c == 1:  # a first layer: nothing below it wants dx
        cases.append(
            (
                "backward, no dx",
                lambda: ops.conv2d_backward(dy, x, w, need_dx=False, **kw),
                lambda: torch.autograd.grad(yt_no_dx, (wg, bg), dyt, retain_graph=True),
            )
        )
    return cases


# kind -> (skconv forward, skconv backward given (dy, forward's output, x), torch forward)
POOLS = {
    "maxpool": (
        lambda x, k: ops.max_pool2d(x, k),
        lambda dy, out, x, k: ops.max_pool2d_backward(dy, out[1], x.shape),
        lambda xt, k: F.max_pool2d(xt, k, return_indices=True)[0],
    ),
    "avgpool": (
        lambda x, k: ops.avg_pool2d(x, k),
        lambda dy, out, x, k: ops.avg_pool2d_backward(dy, x.shape, k),
        lambda xt, k: F.avg_pool2d(xt, k, count_include_pad=True),
    ),
}


def pool_cases(x, g, kind, dtype, rng):
    """(pass, skconv call, torch call) for a pooling layer."""
    forward, backward, torch_op = POOLS[kind]
    k = g["k"]
    out = forward(x, k)
    dy = rng.standard_normal((out[0] if isinstance(out, tuple) else out).shape).astype(dtype)
    xt, dyt = torch.from_numpy(x), torch.from_numpy(dy)
    xg = xt.clone().requires_grad_(True)
    yt = torch_op(xg, k)

    def torch_forward():
        with torch.no_grad():
            torch_op(xt, k)

    return [
        ("forward", lambda: forward(x, k), torch_forward),
        ("backward", lambda: backward(dy, out, x, k), lambda: torch.autograd.grad(yt, xg, dyt, retain_graph=True)),
    ]


def run(n_threads, batch, dtype, warmup, repeats, min_seconds):
    """Rows (layer, pass, threads, skconv us, torch us) at ``n_threads`` threads."""
    rng = np.random.default_rng(0)
    rows = []
    torch.set_num_threads(n_threads)
    with threadpool_limits(n_threads):
        for name, kind, shape, g in LAYERS:
            x = rng.standard_normal((batch, *shape)).astype(dtype)
            cases = conv_cases(x, g, dtype, rng) if kind == "conv" else pool_cases(x, g, kind, dtype, rng)
            for pass_, ours, theirs in cases:
                us_ours, us_torch = median_us([ours, theirs], warmup, repeats, min_seconds)
                rows.append((name, pass_, n_threads, us_ours, us_torch))
    return rows


def print_table(rows):
    print("| layer | pass | threads | skconv (µs) | torch (µs) | skconv/torch |")
    print("|---|---|---:|---:|---:|---:|")
    for name, pass_, n_threads, ours, theirs in rows:
        print(f"| {name} | {pass_} | {n_threads} | {ours:,.0f} | {theirs:,.0f} | {ours / theirs:.2f} |")


def print_summary(rows):
    """The issue's targets: every op within 1.5x torch, LeNet's conv forward+backward within 1.0x."""
    print()
    for n_threads in sorted({r[2] for r in rows}):
        mine = [r for r in rows if r[2] == n_threads]
        worst = max(mine, key=lambda r: r[3] / r[4])
        lenet = [r for r in mine if r[0] in LENET_CONVS and r[1] in ("forward", "backward")]
        ours, theirs = sum(r[3] for r in lenet), sum(r[4] for r in lenet)
        print(
            f"- {n_threads} thread(s): LeNet conv forward+backward {ours:,.0f} µs vs torch "
            f"{theirs:,.0f} µs = {ours / theirs:.2f}x (target <= 1.0); slowest op relative to "
            f"torch: {worst[0]} {worst[1]} {worst[3] / worst[4]:.2f}x (target <= 1.5)"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts (default: 1 2)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--warmup", type=int, default=5, help="untimed calls before timing")
    parser.add_argument("--repeats", type=int, default=50, help="at least this many timed calls")
    parser.add_argument("--min-seconds", type=float, default=0.3, help="keep timing at least this long per row")
    args = parser.parse_args()

    print(
        f"skconv {skconv.__version__} vs torch {torch.__version__}, batch {args.batch}, {args.dtype}, "
        f"{platform.processor() or platform.machine()} with {os.cpu_count()} CPUs; "
        f"median of >= {args.repeats} calls after {args.warmup} warm-up calls\n"
    )
    load = os.getloadavg()[0]
    if load > 0.5:
        print(f"warning: load average {load:.1f} before starting; other processes skew the timings\n")
    rows = []
    for n_threads in args.threads:
        rows += run(n_threads, args.batch, np.dtype(args.dtype), args.warmup, args.repeats, args.min_seconds)
    print_table(rows)
    print_summary(rows)


if __name__ == "__main__":
    main()
