"""Training and prediction speed of LeNet-5: skconv against torch, same run, same threads.

The data are scikit-learn's 8x8 digits upsampled to 28x28 (bilinear,
scipy.ndimage.zoom) and replicated with a little noise to ``--n-images``
images. The model is LeNet-5 with ReLU and max pooling, trained with Adam at
batch sizes 64 and 128:

    ConvNetClassifier(conv_layers=((6, 5), (16, 5)), padding='valid',
                      hidden_layer_sizes=(120, 84))

and the same network in torch (CPU). Training speed is the median over
``--epochs`` epochs (after one warm-up epoch) of images per second; one skconv
epoch is one ``partial_fit`` call, so it includes input validation, as a user
would see it. Prediction speed is the median of five ``predict`` calls over all
images (skconv predicts in chunks of 256 rows; torch gets the same chunks).

Usage::

    python benchmarks/bench_train.py [--threads N] [--n-images 4096] [--epochs 5]
"""

import argparse
import statistics
import time

import numpy as np
from scipy.ndimage import zoom
from sklearn.datasets import load_digits
from threadpoolctl import threadpool_limits

import skconv
from skconv import ConvNetClassifier

CHUNK = 256


def make_data(n_images, seed=0):
    """Digits upsampled to 28x28 in [0, 1], replicated with noise to ``n_images``."""
    X, y = load_digits(return_X_y=True)
    big = np.stack([zoom(img, 3.5, order=1) for img in X.reshape(-1, 8, 8) / 16.0])
    rng = np.random.RandomState(seed)
    idx = rng.randint(len(big), size=n_images)
    images = np.clip(big[idx] + rng.normal(scale=0.05, size=(n_images, 28, 28)), 0, 1)
    return images.astype(np.float32), y[idx]


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        tic = time.perf_counter()
        fn()
        times.append(time.perf_counter() - tic)
    return statistics.median(times)


def bench_skconv(images, y, batch_size, epochs):
    clf = ConvNetClassifier(conv_layers=((6, 5), (16, 5)), padding="valid",
                            hidden_layer_sizes=(120, 84), batch_size=batch_size,
                            random_state=0)
    X = images.reshape(len(images), -1)
    classes = np.unique(y)
    clf.partial_fit(X, y, classes=classes)  # warm-up epoch
    train = median_time(lambda: clf.partial_fit(X, y), epochs)
    predict = median_time(lambda: clf.predict(X), 5)
    return len(X) / train, len(X) / predict, clf.score(X, y)


def bench_torch(images, y, batch_size, epochs, threads):
    import torch
    from torch import nn

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 4 * 4, 120), nn.ReLU(),
        nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, 10),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    X = torch.from_numpy(images[:, None])
    target = torch.from_numpy(y.astype(np.int64))

    def epoch():
        model.train()
        order = torch.randperm(len(X))
        for start in range(0, len(X), batch_size):
            rows = order[start:start + batch_size]
            optimizer.zero_grad()
            loss = loss_fn(model(X[rows]), target[rows])
            loss.backward()
            optimizer.step()

    def predict():
        model.eval()
        with torch.no_grad():
            return torch.cat([model(X[s:s + CHUNK]).argmax(1) for s in range(0, len(X), CHUNK)])

    epoch()  # warm-up epoch
    train = median_time(epoch, epochs)
    pred = median_time(predict, 5)
    accuracy = float((predict() == target).float().mean())
    return len(X) / train, len(X) / pred, accuracy


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=skconv.effective_n_threads())
    parser.add_argument("--n-images", type=int, default=4096)
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs (>= 5)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 128])
    args = parser.parse_args()
    if args.epochs < 5:
        parser.error("--epochs must be >= 5")

    images, y = make_data(args.n_images)
    print(f"LeNet-5 on {args.n_images} 28x28 digit images, {args.threads} thread(s), "
          f"median of {args.epochs} epochs")
    rows = []
    with threadpool_limits(limits=args.threads):
        skconv.show_config()
        for batch_size in args.batch_sizes:
            ours = bench_skconv(images, y, batch_size, args.epochs)
            theirs = bench_torch(images, y, batch_size, args.epochs, args.threads)
            rows.append((batch_size, ours, theirs))

    header = (f"{'batch':>5} | {'train img/s skconv':>18} {'torch':>9} {'ratio':>6} | "
              f"{'predict img/s skconv':>20} {'torch':>9} {'ratio':>6} | "
              f"{'train acc skconv':>16} {'torch':>6}")
    print(header)
    print("-" * len(header))
    for batch_size, (tr, pr, acc), (ttr, tpr, tacc) in rows:
        print(f"{batch_size:>5} | {tr:>18.0f} {ttr:>9.0f} {tr / ttr:>6.2f} | "
              f"{pr:>20.0f} {tpr:>9.0f} {pr / tpr:>6.2f} | {acc:>16.3f} {tacc:>6.3f}")
    print("ratio = skconv / torch (above 1: skconv faster)")


if __name__ == "__main__":
    main()
