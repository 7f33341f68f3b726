"""Look inside a digits model: how it trained, its filters, its feature maps, what it looked at
============================================================================================

What it shows: the four displays of ``skconv.inspection`` for one
ConvNetClassifier trained on the 8x8 digits, in one figure:

* ``TrainingHistoryDisplay``: the training loss, validation accuracy and learning rate per epoch,
* ``FilterDisplay``: the 8 learned 3x3 filters of the first conv layer,
* ``FeatureMapDisplay``: one test digit's 16 feature maps of the second block, before its pooling,
* ``SaliencyDisplay``: for four test digits, the SmoothGrad saliency map (which
  pixels move the predicted class's score, averaged over noisy copies) and the Grad-CAM of the last conv block (where
  that block found the evidence), over the digit.

    python examples/plot_inspection.py [OUTPUT_DIR]

The figure ``plot_inspection.png`` goes to OUTPUT_DIR (default: next to this
script). With ``SKCONV_EXAMPLES_FAST=1`` training is shortened to a smoke test.
"""

import os
import sys
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # write files; no display needed
import matplotlib.pyplot as plt  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from skconv import ConvNetClassifier  # noqa: E402
from skconv.inspection import (  # noqa: E402
    FeatureMapDisplay,
    FilterDisplay,
    SaliencyDisplay,
    TrainingHistoryDisplay,
)

FAST = os.environ.get("SKCONV_EXAMPLES_FAST") == "1"
OUT_DIR = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    X / 16.0, y, test_size=0.25, stratify=y, random_state=0
)
clf = ConvNetClassifier(conv_layers=(8, 16), hidden_layer_sizes=(64,), learning_rate_init=3e-3,
                        early_stopping=True, max_iter=3 if FAST else 30, random_state=0)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter is a time budget
    clf.fit(X_train, y_train)
print(f"test accuracy: {clf.score(X_test, y_test):.3f} after {clf.n_iter_} epochs")

fig = plt.figure(figsize=(13, 10), layout="constrained")
(ax_history, ax_filters), (ax_maps, ax_saliency) = fig.subplots(
    2, 2, gridspec_kw={"height_ratios": [2, 3]})
TrainingHistoryDisplay.from_estimator(clf, ax=ax_history)
FilterDisplay.from_estimator(clf, layer=0, ax=ax_filters)
maps = FeatureMapDisplay.from_estimator(clf, X_test[0], layer=1, pooled=False, ax=ax_maps)
# SmoothGrad: the gradient averaged over noisy copies, less speckled than the plain one;
# the true labels put "explains 7 (true 7)" beside each digit
saliency = SaliencyDisplay.from_estimator(clf, X_test[:4], y_test[:4], method="smoothgrad",
                                          random_state=0, ax=ax_saliency)
print(f"explained classes: {saliency.target_.tolist()} (true: {y_test[:4].tolist()}); "
      f"feature maps of digit {y_test[0]}: {maps.feature_maps_.shape}")

OUT_DIR.mkdir(parents=True, exist_ok=True)
path = OUT_DIR / "plot_inspection.png"
fig.savefig(path, dpi=90)
print(f"figure written to {path}")
