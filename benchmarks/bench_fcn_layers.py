"""Where an FCN training epoch goes: skconv's time per step and per convolution pass.

The FCN of ``bench_train.py`` (Wang et al. 2017, series of 512 steps): one
``partial_fit`` epoch over ``--n-series`` series with every training step's
forward and backward timed (a step is a layer, or the layers the planner runs
as one call: a batch norm and the ReLU after it), then each convolution's
three products on their own (forward, input gradient, weight and bias
gradients) at the epoch's batch size, in GFLOP/s, medians of ``--repeats``.
Peak: the ``1024^3`` product of skconv's GEMM in the same run, the most this
machine gave its kernel then (the machines are shared).

``--model resnet20`` times the steps of bench_train's ResNet-20 instead
(``--n-series`` 32x32x3 images; its convolutions' GFLOP/s are
``bench_peak.py``'s table), with the steps' times summed by kind at the end;
``--model wide`` the default net's (bench_train's ``wide``, 32x32x3 images).

Usage::

    python benchmarks/bench_fcn_layers.py [--threads 1] [--batch-size 16] [--n-series 1024]
    python benchmarks/bench_fcn_layers.py --model resnet20 --threads 2 --batch-size 128
    python benchmarks/bench_fcn_layers.py --model wide --batch-size 64 --n-series 4096
"""

import argparse
import collections
import statistics
import time

import numpy as np
from threadpoolctl import threadpool_limits

from skconv import ConvNetClassifier, ops
from bench_train import MODELS, SERIES_LENGTH, fcn, model_data
from machine import cpu_name


def median_seconds(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        fn()
        times.append(time.perf_counter() - tic)
    return statistics.median(times)


def epoch_profile(X, y, batch_size, params):
    """Seconds of one epoch of ``ConvNetClassifier(**params)``, of each step's
    forward and backward in it, and each step's kind (its rule and its first
    layer's op)."""
    clf = ConvNetClassifier(**params, batch_size=batch_size, random_state=0)
    clf.partial_fit(X, y, classes=np.unique(y))  # warm-up: buffers, plans
    seconds = collections.defaultdict(float)
    kinds = {}
    for step in clf._network.steps(True):
        nodes = clf._network.nodes[step.first:step.last + 1]
        name = f"{step.rule:<6} {'+'.join(n.name for n in nodes)}"
        kinds[name] = f"{step.rule} {nodes[0].layer.op}"
        forward, backward = step.forward, step.backward

        def timed_forward(xs, forward=forward, name=name):
            tic = time.perf_counter()
            out = forward(xs)
            seconds[name, "forward"] += time.perf_counter() - tic
            return out

        def timed_backward(*args, backward=backward, name=name, **kwargs):
            tic = time.perf_counter()
            out = backward(*args, **kwargs)
            seconds[name, "backward"] += time.perf_counter() - tic
            return out

        step.forward, step.backward = timed_forward, timed_backward
    tic = time.perf_counter()
    clf.partial_fit(X, y)
    return time.perf_counter() - tic, seconds, kinds


def conv_passes(n, repeats):
    """GFLOP/s of each FCN convolution's forward, dx and dw + db at a batch of n."""
    rng = np.random.default_rng(0)
    rows = []
    c = 1
    for spec in fcn()["conv_layers"]:
        # a series' kernel: its length, or (1, length)
        f, k = spec["filters"], int(np.atleast_1d(spec["kernel_size"])[-1])
        # 'same': (k - 1) // 2 steps at each end, the odd one at the end first
        x = rng.standard_normal((n, c, SERIES_LENGTH + (k - 1) % 2), dtype=np.float32)
        w = rng.standard_normal((f, c, k), dtype=np.float32)
        dy = rng.standard_normal((n, f, SERIES_LENGTH), dtype=np.float32)
        kwargs = dict(padding=(k - 1) // 2)
        flops = 2 * n * f * c * k * SERIES_LENGTH
        forward = median_seconds(lambda: ops.conv1d(x, w, **kwargs), repeats)
        weights = median_seconds(lambda: ops.conv1d_backward(dy, x, w, need_dx=False, **kwargs),
                                 repeats)
        both = median_seconds(lambda: ops.conv1d_backward(dy, x, w, **kwargs), repeats)
        rows.append((f"{c}->{f}, k={k}", flops / forward, flops / max(both - weights, 1e-9),
                     flops / weights))
        c = f
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--n-series", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--model", choices=["fcn", "resnet20", "wide"], default="fcn")
    args = parser.parse_args()

    print(f"CPU: {cpu_name()}; {args.threads} thread(s), batch {args.batch_size}, "
          f"simd path {ops.simd_path()}")
    X, y = model_data(args.model, args.n_series)
    params = fcn() if args.model == "fcn" else MODELS[args.model][2]
    with threadpool_limits(limits=args.threads):
        total, seconds, kinds = epoch_profile(X, y, args.batch_size, params)
        if args.model == "fcn":
            a = np.random.default_rng(0).standard_normal((1024, 1024), dtype=np.float32)
            peak = 2 * 1024**3 / median_seconds(lambda: ops.linear(a, a), args.repeats)
            rows = conv_passes(args.batch_size, args.repeats)
    what = "series" if args.model == "fcn" else "images"
    print(f"\none epoch of {args.n_series} {what}: {total:.2f} s ({args.n_series / total:.0f} "
          f"{what}/s)")
    for (name, way), s in seconds.items():
        print(f"  {way:<8} {name:<48} {s * 1e3:8.1f} ms {100 * s / total:5.1f} %")
    rest = total - sum(seconds.values())
    print(f"  {'rest':<8} {'(loss, optimizer, input checks, shuffling)':<48} {rest * 1e3:8.1f} ms "
          f"{100 * rest / total:5.1f} %")
    by_kind = collections.defaultdict(float)
    for (name, way), s in seconds.items():
        by_kind[f"{way} {kinds[name]}"] += s
    print("\nby kind of step (its rule, its first layer's op)")
    for kind, s in sorted(by_kind.items(), key=lambda item: -item[1]):
        print(f"  {kind:<56} {s * 1e3:8.1f} ms {100 * s / total:5.1f} %")
    if args.model != "fcn":
        return
    print(f"\nconvolutions at a batch of {args.batch_size}, GFLOP/s (1024^3 product: "
          f"{peak / 1e9:.0f})")
    print(f"  {'conv':<16} {'forward':>8} {'dx':>8} {'dw+db':>8}")
    for name, fwd, dx, dw in rows:
        print(f"  {name:<16} {fwd / 1e9:>8.0f} {dx / 1e9:>8.0f} {dw / 1e9:>8.0f}")


if __name__ == "__main__":
    main()
