"""The cost of augmenting a LeNet-5 epoch's batches, against the epoch itself.

For each thread count and batch size, in the same run:

- ``epoch``: one LeNet-5 training epoch (``ConvNetClassifier.partial_fit``, the
  configuration of ``bench_train.py``), median over ``--epochs`` after a warm-up;
- ``gather``: the plain batch gather of one epoch (``np.take`` into a preallocated
  batch, what the training loop does without augmentation);
- for each augmentation setting, one epoch of augmented batches: the draws of
  the epoch (``draw_transforms``) plus ``augment_batch`` for every batch, which
  replaces the gather. ``% epoch`` is that time over the epoch's; the target
  is below 10%. ``extra`` is what augmenting adds over the plain gather.
  ``% CPU`` is the same ratio in CPU time (all threads of the process), which
  load from other processes on a shared machine disturbs less than wall time.

Each timing is repeated ``--epochs`` times, interleaved with the others (so
that load from elsewhere hits all alike), and the medians are compared.

The images are MNIST's training set when ``--mnist`` is given and the data is
found (see ``mnist_data.py``), else the upsampled 28x28 digits of
``bench_train.py``. The ratio does not depend on the number of images.

Usage::

    python benchmarks/bench_augment.py [--threads 1 2] [--batch-sizes 64 128]
                                       [--n-images 8192] [--epochs 5] [--mnist]
"""

import argparse
import os
import statistics
import sys
import time

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_train import MODELS, make_data  # noqa: E402

import skconv  # noqa: E402
from skconv import ConvNetClassifier  # noqa: E402
from skconv._augment import augment_batch, check_augment, draw_transforms  # noqa: E402

SETTINGS = {
    "shift 2": {"shift": 2},
    "shift 2 + flip": {"shift": 2, "flip": True},
    "rotate 15 + scale 0.1": {"rotate": 15, "scale": 0.1},
    "all four": {"shift": 2, "rotate": 15, "scale": 0.1, "flip": True},
}


def timed(fn):
    """(wall, CPU) seconds of one call; CPU counts every thread of this process."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def load_images(n_images, mnist):
    if mnist:
        from mnist_data import MnistNotFoundError, load_mnist
        try:
            X, y, _, _ = load_mnist()
            return (X[:n_images] / np.float32(255)).astype(np.float32), y[:n_images], "MNIST"
        except MnistNotFoundError as exc:
            print(f"{exc}\nUsing the upsampled digits instead.\n")
    X, y = make_data(n_images)
    return X, y, "upsampled digits"


def epoch_of_batches(x, batch_size, rng, spec):
    """One epoch's batches as the training loop would make them: shuffled rows,
    this epoch's draws, every batch written into one preallocated buffer."""
    n = len(x)
    rows_all = rng.permutation(n)
    out = np.empty((batch_size,) + x.shape[1:], dtype=x.dtype)
    if spec is None:
        for start in range(0, n, batch_size):
            rows = rows_all[start:start + batch_size]
            np.take(x, rows, axis=0, out=out[:len(rows)])
        return
    transforms = draw_transforms(spec, n, x.shape[1:], rng)
    for start in range(0, n, batch_size):
        rows = rows_all[start:start + batch_size]
        augment_batch(x, rows, transforms, out[:len(rows)])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--n-images", type=int, default=8192)
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs (median)")
    parser.add_argument("--mnist", action="store_true", help="use MNIST's training images")
    args = parser.parse_args()

    skconv.show_config()
    X, y, source = load_images(args.n_images, args.mnist)
    x = np.ascontiguousarray(X[:, None])  # NCHW, as the estimator holds it
    print(f"\n{len(X)} images of 28x28 ({source}); median of {args.epochs} epochs; "
          "% epoch = augmenting one epoch's batches / one LeNet-5 training epoch")
    header = (f"{'threads':>7} | {'batch':>5} | {'epoch s':>7} | {'gather s':>8} | "
              f"{'augmentation':>22} | {'aug s':>6} | {'% epoch':>7} | {'extra %':>7} | "
              f"{'% CPU':>7}")
    print(header)
    print("-" * len(header))
    for threads in args.threads:
        with threadpool_limits(limits=threads):
            for batch_size in args.batch_sizes:
                clf = ConvNetClassifier(**MODELS["lenet"][2], batch_size=batch_size,
                                        random_state=0)
                clf.partial_fit(X, y, classes=np.unique(y))  # warm-up epoch
                rng = np.random.RandomState(0)
                specs = {name: check_augment(a, x.shape[1:]) for name, a in SETTINGS.items()}
                jobs = {"epoch": lambda: clf.partial_fit(X, y)}
                jobs["gather"] = lambda: epoch_of_batches(x, batch_size, rng, None)
                for name, spec in specs.items():
                    jobs[name] = (lambda spec=spec:
                                  epoch_of_batches(x, batch_size, rng, spec))
                # interleaved, so that load from elsewhere hits all alike
                times = {name: [] for name in jobs}
                for _ in range(args.epochs):
                    for name, job in jobs.items():
                        times[name].append(timed(job))
                wall = {name: statistics.median(t[0] for t in ts) for name, ts in times.items()}
                cpu = {name: statistics.median(t[1] for t in ts) for name, ts in times.items()}
                epoch, gather = wall["epoch"], wall["gather"]
                for name in specs:
                    aug = wall[name]
                    print(f"{threads:>7} | {batch_size:>5} | {epoch:>7.3f} | {gather:>8.4f} | "
                          f"{name:>22} | {aug:>6.4f} | {100 * aug / epoch:>6.2f}% | "
                          f"{100 * (aug - gather) / epoch:>6.2f}% | "
                          f"{100 * cpu[name] / cpu['epoch']:>6.2f}%", flush=True)


if __name__ == "__main__":
    main()
