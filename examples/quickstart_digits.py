"""Train a ConvNetClassifier on scikit-learn's bundled 8x8 digits
==============================================================

What it shows: the whole first-five-minutes path of a scikit-learn user. The
flat 64-pixel rows of ``load_digits`` go in as they are (the estimator infers
8x8 one-channel images), training prints one line per epoch, then the test
accuracy and a classification report are printed, and one figure is written:
the training loss per epoch, the test confusion matrix, and the learned
first-layer filters.

    python examples/quickstart_digits.py [OUTPUT_DIR]

The figure ``quickstart_digits.png`` goes to OUTPUT_DIR (default: next to this
script). With ``SKCONV_EXAMPLES_FAST=1`` the run is shortened to a smoke test.
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
from matplotlib.ticker import MaxNLocator  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay, classification_report  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from skconv import ConvNetClassifier  # noqa: E402

FAST = os.environ.get("SKCONV_EXAMPLES_FAST") == "1"
OUT_DIR = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent

X, y = load_digits(return_X_y=True)
X = X / 16.0  # pixels are 0..16; the network trains best on 0..1
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.25, stratify=y, random_state=0
)

clf = ConvNetClassifier(
    conv_layers=((32, 5), 64),  # 32 5x5 filters, then 64 3x3; each block ends in a 2x2 max-pool
    learning_rate_init=3e-3,
    max_iter=2 if FAST else 20,
    random_state=0,
    verbose=True,
)
tic = time.perf_counter()
with warnings.catch_warnings():
    # max_iter is this script's time budget, not a convergence criterion
    warnings.simplefilter("ignore", ConvergenceWarning)
    clf.fit(X_train, y_train)
print(f"trained {clf.n_iter_} epochs in {time.perf_counter() - tic:.1f} s "
      f"on images of shape {clf.input_shape_} (height, width, channels)")

y_pred = clf.predict(X_test)
print(f"\ntest accuracy: {clf.score(X_test, y_test):.4f}\n")
print(classification_report(y_test, y_pred, digits=3))

# ---- one figure: loss curve | confusion matrix | first-layer filters
fig = plt.figure(figsize=(15, 4.8), layout="constrained")
left, middle, right = fig.subfigures(1, 3, width_ratios=[1, 1.1, 1.2])

ax = left.subplots()
ax.plot(range(1, clf.n_iter_ + 1), clf.loss_curve_, marker="o")
ax.set(title="Training loss", xlabel="epoch", ylabel="cross-entropy + L2")
ax.xaxis.set_major_locator(MaxNLocator(integer=True))
ax.grid(alpha=0.3)

ax = middle.subplots()
ConfusionMatrixDisplay.from_predictions(y_test, y_pred, ax=ax, colorbar=False)
ax.set_title(f"Test confusion matrix (accuracy {clf.score(X_test, y_test):.3f})")

# first conv layer, its only input channel: (32, 5, 5), each scaled to [-1, 1]
filters = clf.coefs_[0][:, 0]
filters = filters / abs(filters).max(axis=(1, 2), keepdims=True)
# tile them 4 x 8 with a one-pixel gap (NaN, drawn as background) between filters
mosaic = np.full((4 * 6 - 1, 8 * 6 - 1), np.nan)
for k, f in enumerate(filters):
    i, j = divmod(k, 8)
    mosaic[6 * i:6 * i + 5, 6 * j:6 * j + 5] = f
ax = right.subplots()
ax.imshow(mosaic, cmap="RdBu_r", vmin=-1, vmax=1)
ax.set_title(f"First-layer filters: {len(filters)} of 5x5\n(red > 0, blue < 0, each scaled to its max)")
ax.set_axis_off()

OUT_DIR.mkdir(parents=True, exist_ok=True)
path = OUT_DIR / "quickstart_digits.png"
fig.savefig(path, dpi=100)
print(f"figure written to {path}")
