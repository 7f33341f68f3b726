"""What the network sees: one digit's feature maps, block by block
===============================================================

What it shows: a ConvNetClassifier with two conv blocks (3x3 convolution ->
ReLU -> 2x2 max-pool) is trained on the 8x8 digits; then one test digit is
pushed through the network by hand with the public NCHW functions of
``skconv.ops`` and the fitted ``coefs_`` / ``intercepts_``, which reproduces
``predict_proba`` to float32 rounding (the dense layers by numpy's ``@``, not
skconv's own GEMM). One figure shows

* the input digit,
* the max-pool routing of block 1 for its most active filter: which pixel of
  each 2x2 window won (the ``argmax`` that ``skconv.ops.max_pool2d`` returns;
  in training the gradient flows back through these pixels only), and the
  pooled map those winners make,
* every feature map before and after pooling, for both blocks, drawn by
  ``skconv.inspection.FeatureMapDisplay`` (checked against the maps by hand).

    python examples/plot_feature_maps.py [OUTPUT_DIR]

The figure ``plot_feature_maps.png`` goes to OUTPUT_DIR (default: next to this
script). With ``SKCONV_EXAMPLES_FAST=1`` training is shortened to a smoke test.
"""

import os
import sys
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # write files; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from skconv import ConvNetClassifier, ops  # noqa: E402
from skconv.inspection import FeatureMapDisplay  # noqa: E402

FAST = os.environ.get("SKCONV_EXAMPLES_FAST") == "1"
OUT_DIR = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent

X, y = load_digits(return_X_y=True)
X = X / 16.0
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.25, stratify=y, random_state=0
)
clf = ConvNetClassifier(conv_layers=(8, 16), hidden_layer_sizes=(64,), kernel_size=3,
                        padding="same", pool="max", pool_size=2, learning_rate_init=3e-3,
                        max_iter=2 if FAST else 15, random_state=0)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter is a time budget
    clf.fit(X_train, y_train)

# ---- the forward pass of one image, by hand, in NCHW
digit, label = X_test[0], y_test[0]
x = digit.reshape(1, 1, 8, 8).astype(clf.coefs_[0].dtype)  # (n, c, h, w)
blocks = []  # per block: (maps after conv + ReLU, maps after pooling, argmax)
for w, b in zip(clf.coefs_[:2], clf.intercepts_[:2]):
    # a 3x3 'same' convolution with stride 1 pads one pixel on every side
    a = np.maximum(ops.conv2d(x, w, b, padding=1), 0)
    x, argmax = ops.max_pool2d(a, kernel_size=2)
    blocks.append((a[0], x[0], argmax[0]))
h = x.reshape(1, -1)  # flatten in (c, h, w) order, as the network does
for w, b in zip(clf.coefs_[2:-1], clf.intercepts_[2:-1]):
    h = np.maximum(h @ w + b, 0)
logits = (h @ clf.coefs_[-1] + clf.intercepts_[-1]).astype(np.float64)
proba = np.exp(logits - logits.max())
proba /= proba.sum()
matches = np.allclose(proba, clf.predict_proba(digit[None]), atol=1e-5)
print(f"hand-made forward pass matches predict_proba: {matches}")
if not matches:
    sys.exit("the hand-made forward pass does not match the estimator")

# ---- one figure
fig = plt.figure(figsize=(14, 12), layout="constrained")
top, bottom = fig.subfigures(2, 1, height_ratios=[5, 7])

pred = clf.classes_[proba.argmax()]
ax_in, ax_route, ax_pooled = top.subplots(1, 3)
ax_in.imshow(digit.reshape(8, 8), cmap="gray_r")
ax_in.set_title(f"Input, 8x8\nlabel {label}, predicted {pred} (p = {proba.max():.2f})")

a, pooled, argmax = blocks[0]
k = int(a.sum(axis=(1, 2)).argmax())  # the most active filter of block 1
vmax = a[k].max()
ax_route.imshow(a[k], cmap="viridis", vmin=0, vmax=vmax)
for edge in np.arange(-0.5, 8, 2):  # the 2x2 pooling windows
    ax_route.axhline(edge, color="white", lw=2)
    ax_route.axvline(edge, color="white", lw=2)
rows, cols = np.divmod(argmax[k], a.shape[2])  # flat index row * w + col -> (row, col)
ax_route.scatter(cols.ravel(), rows.ravel(), s=120, facecolors="none", edgecolors="red", lw=2.5)
ax_route.set_title(f"Block 1, filter {k}, conv + ReLU (8x8)\n"
                   "circled: each 2x2 window's max (argmax)")
ax_pooled.imshow(pooled[k], cmap="viridis", vmin=0, vmax=vmax)
ax_pooled.set_title(f"Block 1, filter {k}, after max-pool (4x4)\n"
                    "each cell: its window's circled value")
for ax in (ax_in, ax_route, ax_pooled):
    ax.set_xticks([])
    ax.set_yticks([])

# every map of both blocks, before and after pooling: one display per panel
same = True
for (layer, pooled), ax in zip([(0, False), (0, True), (1, False), (1, True)],
                               bottom.subplots(2, 2).ravel()):
    display = FeatureMapDisplay.from_estimator(clf, digit, layer=layer, pooled=pooled, ax=ax)
    same &= np.allclose(display.feature_maps_, blocks[layer][1 if pooled else 0], atol=1e-5)
print(f"FeatureMapDisplay shows the hand-made feature maps: {same}")

OUT_DIR.mkdir(parents=True, exist_ok=True)
path = OUT_DIR / "plot_feature_maps.png"
fig.savefig(path, dpi=90)
print(f"figure written to {path}")
