"""Peak memory of ``fit`` on 60,000 28x28 images, against the size of X plus the model.

X is float32 (what ``dtype='float32'`` trains on), LeNet-5, one epoch.
tracemalloc follows numpy's allocations, so the peak it reports during
``fit`` is what fitting adds on top of X; the process's peak RSS (which also
holds the interpreter and the libraries) is printed beside it.

Usage::

    python benchmarks/bench_memory.py [--n-images 60000] [--dtype float32]
"""

import argparse
import resource
import tracemalloc
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from skconv import ConvNetClassifier


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-images", type=int, default=60000)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    X = rng.random((args.n_images, 28 * 28), dtype=np.float32).astype(args.dtype)
    y = rng.integers(0, 10, size=args.n_images)
    clf = ConvNetClassifier(conv_layers=((6, 5), (16, 5)), padding="valid",
                            hidden_layer_sizes=(120, 84), max_iter=1, random_state=0)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tracemalloc.start()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    model = clf._network.params.nbytes
    mib = 2.0 ** 20
    print(f"X: {X.shape} {X.dtype}, {X.nbytes / mib:.1f} MiB; model parameters "
          f"{model / mib:.2f} MiB (optimizer state: {2 * model / mib:.2f} MiB more for Adam)")
    print(f"fit allocates at its peak {peak / mib:.1f} MiB on top of X")
    total = X.nbytes + peak
    print(f"peak = X + that = {total / mib:.1f} MiB = {total / (X.nbytes + model):.2f}x "
          "(X + model)   [target: <= 2x]")
    print(f"process peak RSS: {rss_before:.0f} MiB before fit, {rss_after:.0f} MiB after")


if __name__ == "__main__":
    main()
