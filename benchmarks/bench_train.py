"""Training and prediction speed: skconv against torch CPU, same run, same threads.

Two models:

- ``lenet``: LeNet-5 with ReLU, max pooling and Adam on 28x28 digits::

      ConvNetClassifier(conv_layers=((6, 5), (16, 5)), padding='valid',
                        hidden_layer_sizes=(120, 84))

- ``wide``: ``ConvNetClassifier(conv_layers=(32, 64), hidden_layer_sizes=(128,))``
  (3x3 'same' convolutions, 2x2 max pooling) on 32x32x3 images.
- ``resnet20``: ``ConvNetClassifier(**skconv.architectures.resnet(20))``, He
  et al. 2016's CIFAR ResNet-20 (19 convolutions with batch norm, 9 residual
  blocks, global average pooling) on 32x32x3 images, at a batch of 128.
- ``fcn``: Wang et al. 2017's fully convolutional network for time series
  (three convolutions of 128, 256 and 128 filters, kernels of 8, 5 and 3,
  'same' padding, batch norm and ReLU, no pooling, global average pooling,
  softmax) on univariate series of 512 steps, at batches of 16 and 64; torch's
  is the same network of ``nn.Conv1d``, ``nn.BatchNorm1d`` and
  ``nn.AdaptiveAvgPool1d`` (``torch_module(..., series=True)``).

The series are noisy sines, one frequency per class (``make_series``). The digits are scikit-learn's 8x8 digits upsampled (bilinear,
scipy.ndimage.zoom) and replicated with a little noise to ``--n-images``
images; the 32x32x3 images are the same digits at 32x32, one colour channel
each plus noise. The torch models are the same networks. Training speed is the
median over ``--epochs`` epochs (after one warm-up epoch) of images per second,
skconv's and torch's epochs taking turns (so that a slow minute of a shared
machine slows both);
one skconv epoch is one ``partial_fit`` call, so it includes input validation,
as a user would see it. Prediction: skconv's ``predict`` on all images (it
works in chunks of its own) against torch's eval-mode forward at batch 1000,
median of five, in turns as well.

The last line runs the skconv LeNet-5 epochs inside a loky worker of a
two-worker pool, the way GridSearchCV(n_jobs=2) runs them (joblib limits each
worker to one thread), against the same epochs in this process under
``threadpool_limits(1)``.

Usage::

    python benchmarks/bench_train.py [--threads 1 2] [--models lenet wide resnet20 fcn]
                                     [--n-images 4096] [--epochs 5]
"""

import argparse
import statistics
import time

import joblib
import numpy as np
from scipy.ndimage import zoom
from sklearn.datasets import load_digits
from threadpoolctl import threadpool_limits

import skconv
from skconv import ConvNetClassifier
from skconv.architectures import fcn as fcn_params, lenet5, resnet
from machine import cpu_name
from torch_graph import torch_module

TORCH_PREDICT_BATCH = 1000
SERIES_LENGTH = 512


def fcn():
    """The ``fcn`` model's parameters: FCN (Wang et al. 2017, ``skconv.architectures.fcn()``)
    on univariate series of SERIES_LENGTH steps."""
    return dict(**fcn_params(), input_shape=(SERIES_LENGTH, 1))


MODELS = {
    # name: (image side, channels, skconv parameters); None, None for series
    "lenet": (28, 1, lenet5()),
    "wide": (32, 3, dict(conv_layers=(32, 64), hidden_layer_sizes=(128,))),
    "resnet20": (32, 3, resnet(20)),
    "fcn": (None, None, fcn()),
}
# batch sizes of a model when --batch-sizes is not given
BATCH_SIZES = {"lenet": [64, 128], "wide": [64], "resnet20": [128], "fcn": [16, 64]}


def make_series(n_series, length=SERIES_LENGTH, n_classes=4, seed=0):
    """Univariate series of ``length`` steps: a sine of 1 + class periods over the
    series, random phase and amplitude, plus noise. Returns X (n, length) float32, y."""
    rng = np.random.RandomState(seed)
    y = rng.randint(n_classes, size=n_series)
    t = np.arange(length) / length
    phase = rng.uniform(0, 2 * np.pi, size=(n_series, 1))
    amplitude = rng.uniform(0.5, 1.5, size=(n_series, 1))
    X = amplitude * np.sin(2 * np.pi * (y[:, None] + 1) * t + phase)
    X += rng.normal(scale=0.5, size=X.shape)
    return X.astype(np.float32), y


def model_data(model, n):
    """The benchmark's inputs of ``model``: n series or images, and their labels."""
    side, channels, _ = MODELS[model]
    return make_series(n) if side is None else make_data(n, side, channels)


def make_data(n_images, side=28, channels=1, seed=0):
    """Digits upsampled to side x side in [0, 1], replicated with noise to ``n_images``.

    Returns images of shape (n, side, side) for one channel, else (n, side, side, channels).
    """
    X, y = load_digits(return_X_y=True)
    big = np.stack([zoom(img, side / 8, order=1) for img in X.reshape(-1, 8, 8) / 16.0])
    rng = np.random.RandomState(seed)
    idx = rng.randint(len(big), size=n_images)
    shape = (n_images, side, side) + ((channels,) if channels > 1 else ())
    base = big[idx] if channels == 1 else big[idx][..., None]
    images = np.clip(base + rng.normal(scale=0.05, size=shape), 0, 1)
    return images.astype(np.float32), y[idx]


def median_time(fn, repeats):
    return interleaved_medians([fn], repeats)[0]


def interleaved_medians(fns, repeats):
    """Median seconds of each of ``fns``, timed in turns: ``repeats`` rounds in
    which each runs once, so that a slow minute of a shared machine slows all alike."""
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, seconds in zip(fns, times):
            tic = time.perf_counter()
            fn()
            seconds.append(time.perf_counter() - tic)
    return [statistics.median(seconds) for seconds in times]


def skconv_runs(model, images, y, batch_size):
    """``(epoch, predict, accuracy)`` of a skconv model after one warm-up epoch."""
    clf = ConvNetClassifier(**MODELS[model][2], batch_size=batch_size, random_state=0)
    X = images  # rows, (n, h, w) or channels-last (n, h, w, c): the shape says what an image is
    clf.partial_fit(X, y, classes=np.unique(y))  # warm-up epoch
    return (lambda: clf.partial_fit(X, y)), (lambda: clf.predict(X)), (lambda: clf.score(X, y))


def _torch_model(model, nn, images, y):
    if model == "fcn":
        # the same network as skconv's, of series: nn.Conv1d and nn.BatchNorm1d
        clf = ConvNetClassifier(**MODELS[model][2])
        clf.partial_fit(images[:2], y[:2], classes=np.unique(y))
        return torch_module(clf._network, copy_weights=False, series=True)
    if model == "resnet20":
        # the same graph as skconv's, built from it (torch's own initialisation)
        side, channels, params = MODELS[model]
        clf = ConvNetClassifier(**params)
        clf.input_shape_ = (side, side, channels)
        return torch_module(clf._build_network(10), copy_weights=False)
    if model == "lenet":
        return nn.Sequential(
            nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(16 * 4 * 4, 120), nn.ReLU(),
            nn.Linear(120, 84), nn.ReLU(),
            nn.Linear(84, 10),
        )
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 8 * 8, 128), nn.ReLU(),
        nn.Linear(128, 10),
    )


def torch_runs(model, images, y, batch_size, threads):
    """``(epoch, predict, accuracy)`` of the same network in torch after one warm-up epoch."""
    import torch
    from torch import nn

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = _torch_model(model, nn, images, y)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    # series (n, length) as (n, 1, length); one-channel images as (n, 1, h, w)
    nchw = images[:, None] if images.ndim in (2, 3) else images.transpose(0, 3, 1, 2)
    X = torch.from_numpy(np.ascontiguousarray(nchw))
    target = torch.from_numpy(y.astype(np.int64))

    def epoch():
        net.train()
        order = torch.randperm(len(X))
        for start in range(0, len(X), batch_size):
            rows = order[start:start + batch_size]
            optimizer.zero_grad()
            loss = loss_fn(net(X[rows]), target[rows])
            loss.backward()
            optimizer.step()

    def predict():
        net.eval()
        with torch.no_grad():
            return torch.cat([net(X[s:s + TORCH_PREDICT_BATCH]).argmax(1)
                              for s in range(0, len(X), TORCH_PREDICT_BATCH)])

    epoch()  # warm-up epoch
    return epoch, predict, lambda: float((predict() == target).float().mean())


def _epoch_in_worker(images, y, batch_size, epochs):
    epoch, _, _ = skconv_runs("lenet", images, y, batch_size)
    return len(images) / median_time(epoch, epochs), skconv.effective_n_threads()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--n-images", type=int, default=4096)
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs (>= 5)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=None,
                        help="default: 64 and 128 for lenet, 64 for wide, 128 for resnet20, "
                        "16 and 64 for fcn")
    parser.add_argument("--no-worker", action="store_true",
                        help="skip the GridSearchCV-worker comparison")
    args = parser.parse_args()
    if args.epochs < 5:
        parser.error("--epochs must be >= 5")

    skconv.show_config()
    print(f"CPU: {cpu_name()}")
    header = (f"{'model':>8} | {'threads':>7} | {'batch':>5} | {'train img/s skconv':>18} "
              f"{'torch':>7} {'ratio':>5} | {'predict img/s skconv':>20} {'torch':>7} "
              f"{'ratio':>5} | {'train acc skconv':>16} {'torch':>5}")
    print(f"\n{args.n_images} images, median of {args.epochs} epochs; "
          "ratio = skconv / torch (above 1: skconv faster)")
    print(header)
    print("-" * len(header))
    for model in args.models:
        images, y = model_data(model, args.n_images)
        batch_sizes = args.batch_sizes or BATCH_SIZES[model]
        for threads in args.threads:
            with threadpool_limits(limits=threads):
                for batch_size in batch_sizes:
                    ours = skconv_runs(model, images, y, batch_size)
                    theirs = torch_runs(model, images, y, batch_size, threads)
                    n = len(images)
                    tr, ttr = (n / t for t in interleaved_medians([ours[0], theirs[0]],
                                                                  args.epochs))
                    pr, tpr = (n / t for t in interleaved_medians([ours[1], theirs[1]], 5))
                    acc, tacc = ours[2](), theirs[2]()
                    print(f"{model:>8} | {threads:>7} | {batch_size:>5} | {tr:>18.0f} "
                          f"{ttr:>7.0f} {tr / ttr:>5.2f} | {pr:>20.0f} {tpr:>7.0f} "
                          f"{pr / tpr:>5.2f} | {acc:>16.3f} {tacc:>5.3f}", flush=True)

    if not args.no_worker:
        images, y = make_data(args.n_images)
        here, there = [], []
        # interleaved, so that load from elsewhere hits both alike; one task in a pool
        # of two gets GridSearchCV(n_jobs=2)'s thread limit with no second worker
        # competing for the cores. The first task in a fresh worker runs cold
        # (imports, first touch of the memory-mapped X) and is left out.
        for rep in range(4):
            with threadpool_limits(limits=1):
                epoch = skconv_runs("lenet", images, y, 64)[0]
                here.append(len(images) / median_time(epoch, args.epochs))
            ((worker, worker_threads),) = joblib.Parallel(n_jobs=2, backend="loky")(
                joblib.delayed(_epoch_in_worker)(images, y, 64, args.epochs) for _ in range(1)
            )
            if rep:
                there.append(worker)
        here, there = statistics.median(here), statistics.median(there)
        print(f"\nLeNet-5 batch 64 training, img/s (medians): this process under "
              f"threadpool_limits(1) {here:.0f}; in a warm loky worker of n_jobs=2 "
              f"({worker_threads} kernel thread) {there:.0f}; ratio {there / here:.2f}")


if __name__ == "__main__":
    main()
