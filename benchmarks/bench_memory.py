"""Memory and speed of fit and predict on X larger than memory.

Makes a uint8 memory map of N 32x32x3 images on disk (in a temporary folder,
removed at the end; 614 MB for N = 200,000), then:

1. Peak RSS of ``fit`` on the first n images of the map (n = 50k, 100k, 200k
   by default), each in a fresh process, against
   ``1.2 x (model + one batch + 100 MB)``: the model is its parameters, their
   gradients and Adam's two moments; one batch is what fitting on one batch
   of images held in memory allocates (tracemalloc: the batch, the
   activations, the buffers). The process's RSS after its imports (Python,
   numpy, scipy, scikit-learn and what it imports) is shown beside it: with
   pandas and pyarrow installed, scikit-learn 1.9's import alone is ~170 MB.
2. Throughput of ``fit`` on the memory map against the same images in memory,
   as uint8 (``input_scale=255``) and as the float32 ``X / 255`` that
   fitting used to need; contenders alternate, medians of ``--repeats``.
3. ``predict_proba`` of a Dask array of the images (blocks read from the file
   by the workers) on a 2-worker local cluster against an in-process
   ``predict_proba`` of the memory map; the answers are compared bit for bit.

Usage::

    python benchmarks/bench_memory.py [--sizes 50000 100000 200000] [--epochs 1]
        [--repeats 3] [--throughput-n 50000] [--predict-n 200000]
"""

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import warnings

import numpy as np
from machine import cpu_name

SHAPE = (32, 32, 3)
PARAMS = dict(conv_layers=((8, 5), (16, 5)), hidden_layer_sizes=(64,), batch_size=200,
              random_state=0, input_scale=255)
MB = 1e6


def make_images(path, n, seed=0):
    """n images whose class (0..9) sets a bright square's place, written in parts."""
    X = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(n,) + SHAPE)
    y = np.empty(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    for start in range(0, n, 10000):
        part = slice(start, min(start + 10000, n))
        m = part.stop - part.start
        images = rng.integers(0, 128, size=(m,) + SHAPE, dtype=np.uint8)
        labels = rng.integers(0, 10, size=m)
        for k in range(10):
            i, j = divmod(k, 5)
            images[labels == k, 4 + 12 * i:12 + 12 * i, 2 + 6 * j:8 + 6 * j] += 120
        X[part], y[part] = images, labels
    X.flush()
    del X
    return y


def peak_rss_mb():
    """This process's peak RSS: VmHWM, not ru_maxrss, which keeps the peak of
    the parent that wrote the memory map across the child's exec."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / MB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB  # not Linux


def child(args):
    """One measurement in this fresh process; prints a JSON line."""
    from sklearn.exceptions import ConvergenceWarning

    from skconv import ConvNetClassifier

    warnings.simplefilter("ignore", ConvergenceWarning)
    X = np.load(args.path, mmap_mode="r")[:args.n]
    y = np.load(args.labels)[:args.n]
    result = {"kind": args.child, "n": args.n}
    if args.child == "float32":
        X = np.asarray(X, dtype=np.float32) / np.float32(255)
        params = dict(PARAMS, input_scale=None)
    else:
        params = PARAMS
        if args.child == "memory":
            X = np.array(X)
    result["rss_imports"] = peak_rss_mb()
    clf = ConvNetClassifier(**params, max_iter=args.epochs, shuffle=True)
    tic = time.perf_counter()
    clf.fit(X, y)
    result["seconds"] = time.perf_counter() - tic
    result["rss_peak"] = peak_rss_mb()
    result["img_per_s"] = args.n * args.epochs / result["seconds"]
    params_bytes = clf._network.params.nbytes
    result["model"] = 4 * params_bytes / MB  # parameters, gradients, Adam's m and v
    # what fitting one batch in memory allocates on top of the model
    one = np.array(X[:PARAMS["batch_size"]])
    tracemalloc.start()
    ConvNetClassifier(**params, max_iter=1).fit(one, y[:PARAMS["batch_size"]])
    result["batch"] = tracemalloc.get_traced_memory()[1] / MB - result["model"]
    tracemalloc.stop()
    print(json.dumps(result))


def run_child(kind, n, args, path, labels):
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, "--n", str(n), "--path", path,
         "--labels", labels, "--epochs", str(args.epochs)],
        capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _block(path, start, stop):
    return np.array(np.load(path, mmap_mode="r")[start:stop])


def predict_on_cluster(path, labels, n):
    import dask
    import dask.array as da
    from distributed import Client, LocalCluster
    from sklearn.exceptions import ConvergenceWarning

    from skconv import ConvNetClassifier

    warnings.simplefilter("ignore", ConvergenceWarning)
    X = np.load(path, mmap_mode="r")[:n]
    y = np.load(labels)[:n]
    clf = ConvNetClassifier(**PARAMS, max_iter=1).fit(X[:20000], y[:20000])
    step = 10000
    # each block is read from the file by the worker that computes it
    Xd = da.concatenate([
        da.from_delayed(dask.delayed(_block)(path, a, min(a + step, n)),
                        shape=(min(a + step, n) - a,) + SHAPE, dtype=np.uint8)
        for a in range(0, n, step)])
    rows = []
    with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster):
        clf.predict_proba(Xd[:step]).compute()  # workers warm: imports, the model
        for _ in range(2):
            tic = time.perf_counter()
            local = clf.predict_proba(X)
            rows.append(("in process (memory map)", n / (time.perf_counter() - tic)))
            tic = time.perf_counter()
            remote = clf.predict_proba(Xd).compute()
            rows.append(("2-worker LocalCluster (Dask array)", n / (time.perf_counter() - tic)))
    assert (local == remote).all(), "the cluster's predictions differ from numpy's"
    return rows


def table_memory(args, path, labels):
    print("1. peak RSS of fit on a uint8 memory map (MB; each n in a fresh process)")
    print(f"{'n':>8} {'X on disk':>10} {'imports':>8} {'model':>6} {'batch':>6} "
          f"{'bound':>6} {'peak':>6} {'peak/bound':>10} {'fit':>5} {'fit/bound':>9}")
    for n in args.sizes:
        r = run_child("memmap", n, args, path, labels)
        bound = 1.2 * (r["model"] + r["batch"] + 100)
        grown = r["rss_peak"] - r["rss_imports"]
        print(f"{n:>8} {n * np.prod(SHAPE) / MB:>10.0f} {r['rss_imports']:>8.0f} "
              f"{r['model']:>6.1f} {r['batch']:>6.1f} {bound:>6.0f} {r['rss_peak']:>6.0f} "
              f"{r['rss_peak'] / bound:>10.2f} {grown:>5.0f} {grown / bound:>9.2f}")
    print("   bound = 1.2 x (model + batch + 100 MB); peak = the fit process's VmHWM;\n"
          "   fit = peak - RSS after the imports (what fitting adds)\n")


def table_throughput(args, path, labels):
    n = args.throughput_n
    print(f"2. fit throughput on {n} images (img/s, median of {args.repeats}, alternating)")
    times = {"memmap": [], "memory": [], "float32": []}
    peaks = {k: [] for k in times}
    for _ in range(args.repeats):
        for kind in times:
            r = run_child(kind, n, args, path, labels)
            times[kind].append(r["img_per_s"])
            peaks[kind].append(r["rss_peak"])
    ref = statistics.median(times["float32"])
    names = {"memmap": "uint8 memory map, input_scale=255",
             "memory": "uint8 in memory, input_scale=255",
             "float32": "float32 X / 255 in memory (before)"}
    for kind, name in names.items():
        med = statistics.median(times[kind])
        print(f"   {name:<38} {med:>8.0f} img/s  {med / ref:>5.2f}x   "
              f"peak RSS {statistics.median(peaks[kind]):>6.0f} MB")
    print()


def table_predict(args, path, labels):
    print(f"3. predict_proba on {args.predict_n} images (img/s; two rounds, alternating)")
    try:
        for name, speed in predict_on_cluster(path, labels, args.predict_n):
            print(f"   {name:<38} {speed:>8.0f} img/s")
        print("   the cluster's probabilities equal the in-process ones bit for bit")
    except ImportError as exc:
        print(f"   skipped: {exc}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50000, 100000, 200000])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--throughput-n", type=int, default=50000)
    parser.add_argument("--predict-n", type=int, default=200000)
    parser.add_argument("--sections", default="123", help="which of the tables to print")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    parser.add_argument("--labels", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)

    print(f"CPU: {cpu_name()}, {os.cpu_count()} logical CPUs")
    n_max = max(args.sizes + [args.throughput_n, args.predict_n])
    folder = tempfile.mkdtemp(prefix="skconv-bench-memory-")
    try:
        path = os.path.join(folder, "X.npy")
        labels = os.path.join(folder, "y.npy")
        np.save(labels, make_images(path, n_max))
        print(f"X: uint8 memory map of {n_max} x {SHAPE} ({os.path.getsize(path) / MB:.0f} MB) "
              f"in {folder}; net {PARAMS['conv_layers']}, hidden {PARAMS['hidden_layer_sizes']},"
              f" batch {PARAMS['batch_size']}, {args.epochs} epoch(s)\n")

        if "1" in args.sections:
            table_memory(args, path, labels)
        if "2" in args.sections:
            table_throughput(args, path, labels)
        if "3" in args.sections:
            table_predict(args, path, labels)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
