"""Count the digits in a collage: ConvNetRegressors with and without global pooling
================================================================================

What it shows: a regression task where convolution matters, and where global
pooling does; MLPRegressor for comparison. Each sample is a 32x32 collage
with 0 to 6 handwritten digits from scikit-learn's bundled ``load_digits`` pasted at random places, each at a random brightness, and 0
to 3 decoys: digits whose 64 pixels were shuffled, with the same ink but no
strokes. The target is the number of real digits. The total ink says little
(decoys have as much), and a digit can be anywhere, so a model must find
stroke shapes at every position: what a convolution does with one set of
weights. And the count is a sum of local terms, one per digit, wherever it
is: a fully convolutional net that averages its last feature maps over the
image (``global_pool='avg'``) computes exactly such a sum, where a net that
flattens its maps must learn each position's weights apart. The three models
train on the same split; the script prints each test R² and writes one figure:
example collages, and predicted against true counts.

    python examples/regression_count_digits.py [OUTPUT_DIR]

The figure ``regression_count_digits.png`` goes to OUTPUT_DIR (default: next
to this script). With ``SKCONV_EXAMPLES_FAST=1`` the run is shortened to a
smoke test.
"""

import os
import sys
import time
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # write files; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.metrics import mean_absolute_error  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.neural_network import MLPRegressor  # noqa: E402

from skconv import ConvNetRegressor  # noqa: E402

FAST = os.environ.get("SKCONV_EXAMPLES_FAST") == "1"
OUT_DIR = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent
SIZE, MAX_DIGITS, MAX_DECOYS = 32, 6, 3


def make_collages(n, rng):
    """``n`` collages of shape (SIZE, SIZE) with values in [0, 1], and their digit counts."""
    digits = load_digits().images / 16.0
    X = np.zeros((n, SIZE, SIZE))
    counts = rng.randint(0, MAX_DIGITS + 1, size=n)
    for image, count in zip(X, counts):
        patches = [digits[i] for i in rng.randint(len(digits), size=count)]
        # a decoy: a digit's pixels shuffled, same ink, no strokes
        patches += [rng.permutation(digits[i].ravel()).reshape(8, 8)
                    for i in rng.randint(len(digits), size=rng.randint(0, MAX_DECOYS + 1))]
        while True:  # random places without overlap; start again if the patches get stuck
            taken = np.zeros((SIZE, SIZE), dtype=bool)
            places = []
            for _ in range(200 * len(patches)):
                r, c = rng.randint(0, SIZE - 8 + 1, size=2)
                if not taken[r:r + 8, c:c + 8].any():
                    taken[r:r + 8, c:c + 8] = True
                    places.append((r, c))
                    if len(places) == len(patches):
                        break
            if len(places) == len(patches):
                break
        for patch, (r, c) in zip(patches, places):
            image[r:r + 8, c:c + 8] = patch * rng.uniform(0.3, 1.0)
    return X, counts.astype(float)


rng = np.random.RandomState(0)
X, y = make_collages(400 if FAST else 3000, rng)
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)
print(f"{len(X)} collages of {SIZE}x{SIZE}, 0 to {MAX_DIGITS} digits and 0 to {MAX_DECOYS} "
      f"decoys each; {len(X_train)} to train, {len(X_test)} to test")

models = {
    # the 3-D images go in as they are: 32x32, one channel
    "ConvNetRegressor": ConvNetRegressor(
        conv_layers=(16, 32), hidden_layer_sizes=(64,), learning_rate_init=3e-3,
        max_iter=2 if FAST else 25, random_state=0),
    # the same blocks, then the mean of each of the last maps over the image
    "ConvNetRegressor, global pooling": ConvNetRegressor(
        conv_layers=(16, 32, {"filters": 32, "pool": None}), global_pool="avg",
        hidden_layer_sizes=(64,), learning_rate_init=3e-3, max_iter=2 if FAST else 25,
        random_state=0),
    # MLPRegressor takes flat rows; it stops on its own (early stopping)
    "MLPRegressor": MLPRegressor(
        hidden_layer_sizes=(256,), early_stopping=True, max_iter=5 if FAST else 200,
        random_state=0),
}
predictions, scores = {}, {}
for name, model in models.items():
    tic = time.perf_counter()
    with warnings.catch_warnings():
        # max_iter is this script's time budget, not a convergence criterion
        warnings.simplefilter("ignore", ConvergenceWarning)
        if name == "MLPRegressor":
            model.fit(X_train.reshape(len(X_train), -1), y_train)
        else:
            model.fit(X_train, y_train)
    seconds = time.perf_counter() - tic
    X_eval = X_test.reshape(len(X_test), -1) if name == "MLPRegressor" else X_test
    predictions[name] = model.predict(X_eval)
    scores[name] = model.score(X_eval, y_test)
    print(f"{name:>32}: test R^2 = {scores[name]:.3f}, mean absolute error "
          f"= {mean_absolute_error(y_test, predictions[name]):.2f} digits, "
          f"{model.n_iter_} epochs in {seconds:.1f} s")

# ---- one figure: six test collages | predicted vs true, one panel per model
fig = plt.figure(figsize=(18, 5), layout="constrained")
left, right = fig.subfigures(1, 2, width_ratios=[1, 1.6])
for ax, i in zip(left.subplots(2, 3).ravel(), range(6)):
    ax.imshow(X_test[i], cmap="gray_r", vmin=0, vmax=1)
    ax.set_title(f"{y_test[i]:.0f} digits; CNN says "
                 f"{predictions['ConvNetRegressor'][i]:.1f}", fontsize=9)
    ax.set_axis_off()
left.suptitle("Test collages (decoys: shuffled digits)")
jitter = rng.uniform(-0.15, 0.15, size=len(y_test))
for ax, (name, pred) in zip(right.subplots(1, 3, sharey=True), predictions.items()):
    ax.scatter(y_test + jitter, pred, s=6, alpha=0.4)
    ax.plot([0, MAX_DIGITS], [0, MAX_DIGITS], color="black", lw=1)
    ax.set(title=f"{name}: test R² {scores[name]:.3f}", xlabel="true number of digits (jittered)",
           ylabel="predicted")
    ax.grid(alpha=0.3)

OUT_DIR.mkdir(parents=True, exist_ok=True)
path = OUT_DIR / "regression_count_digits.png"
fig.savefig(path, dpi=100)
print(f"figure written to {path}")
