"""Conv features for another estimator: digit embeddings in 2-D and a net -> SVC pipeline
======================================================================================

What it shows: ``ConvNetClassifier.transform`` returns the activations of the
last hidden layer (``embedding_layer`` picks another one), so a fitted net
is a feature extractor:

* the test digits' embeddings, projected to 2-D with PCA, next to the PCA of
  their raw pixels: the classes that overlap in pixel space form separate
  clusters in the net's feature space (the silhouette score of the true
  classes, printed for both, says by how much);
* ``make_pipeline(ConvNetClassifier(...), SVC())``: the net is fitted on the
  labels, then the SVC on its embeddings, with the pipeline's usual
  ``fit``/``score``; ``set_output(transform="pandas")`` names the features
  ``convnetclassifier0``, ``convnetclassifier1``, ...

    python examples/plot_embeddings.py [OUTPUT_DIR]

The figure ``plot_embeddings.png`` goes to OUTPUT_DIR (default: next to this
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
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.metrics import silhouette_score  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.svm import SVC  # noqa: E402

from skconv import ConvNetClassifier  # noqa: E402

FAST = os.environ.get("SKCONV_EXAMPLES_FAST") == "1"
out_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent

X, y = load_digits(return_X_y=True)
X = X / 16.0
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y,
                                                    random_state=0)
params = dict(conv_layers=(16, 32), hidden_layer_sizes=(64,), max_iter=3 if FAST else 30,
              learning_rate_init=0.005, batch_size=64,
              augment={"shift": 1}, random_state=0)

with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    # 1. the net alone, and its embeddings of the test digits
    net = ConvNetClassifier(**params).fit(X_train, y_train)
    print(f"ConvNetClassifier test accuracy: {net.score(X_test, y_test):.3f}")
    embeddings = net.transform(X_test)
    print(f"embeddings: {embeddings.shape[1]} features per image, named "
          f"{list(net.get_feature_names_out()[:2])} ...")

    # 2. the same net feeding an SVC, in one pipeline
    pipe = make_pipeline(ConvNetClassifier(**params), SVC()).set_output(transform="pandas")
    pipe.fit(X_train, y_train)
    print(f"ConvNetClassifier -> SVC pipeline test accuracy: {pipe.score(X_test, y_test):.3f}")

# 3. both spaces in 2-D, and how well the true classes separate in each
spaces = {"raw pixels": X_test, "last hidden layer (transform)": embeddings}
fig, axes = plt.subplots(1, 2, figsize=(11, 5))
for ax, (name, features) in zip(axes, spaces.items()):
    points = PCA(n_components=2, random_state=0).fit_transform(features)
    print(f"silhouette of the classes, {name}: {silhouette_score(features, y_test):.3f}")
    for c in range(10):
        mask = y_test == c
        ax.scatter(points[mask, 0], points[mask, 1], s=8, label=str(c),
                   color=plt.cm.tab10(c))
    ax.set(title=f"PCA of the {name}", xlabel="PC 1", ylabel="PC 2")
axes[1].legend(markerscale=2, fontsize="small", title="digit")
fig.suptitle("Test digits: raw pixels against ConvNetClassifier embeddings")
fig.tight_layout()
path = out_dir / "plot_embeddings.png"
fig.savefig(path, dpi=100)
print(f"figure: {path}")
