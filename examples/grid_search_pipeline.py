"""Tune a ConvNetClassifier inside a Pipeline with GridSearchCV
============================================================

What it shows: ConvNetClassifier is an ordinary scikit-learn estimator. It
sits in a ``Pipeline`` after a scaler, its constructor parameters are reached
as ``cnn__<name>``, ``GridSearchCV`` clones and fits it in two worker
processes (``n_jobs=2``), and ``cv_results_`` is printed sorted by rank. The
grid crosses two architectures with two learning rates; the refitted best
pipeline is then scored on held-out digits.

    python examples/grid_search_pipeline.py

With ``SKCONV_EXAMPLES_FAST=1`` the data and the epochs are shrunk to a smoke
test. Nothing is written.
"""

import os
import time
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler

from skconv import ConvNetClassifier

FAST = os.environ.get("SKCONV_EXAMPLES_FAST") == "1"

X, y = load_digits(return_X_y=True)
if FAST:
    X, y = X[:300], y[:300]
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.25, stratify=y, random_state=0
)

pipe = Pipeline([
    ("scale", MinMaxScaler()),  # each pixel to [0, 1]; the 64 columns stay an 8x8 image
    ("cnn", ConvNetClassifier(max_iter=2 if FAST else 15, random_state=0)),
])
param_grid = {
    "cnn__conv_layers": [(8,), (16, 32)],  # one small block, or two wider ones
    "cnn__learning_rate_init": [1e-3, 3e-3],
}
search = GridSearchCV(pipe, param_grid, cv=3, n_jobs=2)

tic = time.perf_counter()
with warnings.catch_warnings():
    # max_iter is a time budget here; scikit-learn hands this filter to the workers
    warnings.simplefilter("ignore", ConvergenceWarning)
    search.fit(X_train, y_train)
print(f"{len(search.cv_results_['params'])} candidates x 3 folds in "
      f"{time.perf_counter() - tic:.1f} s\n")

# cv_results_ sorted by rank, as a plain-text table
results = search.cv_results_
header = f"{'rank':>4}  {'mean acc':>8}  {'std':>6}  {'fit s':>6}  {'conv_layers':<12}  lr"
print(header)
print("-" * len(header))
for i in np.argsort(results["rank_test_score"], kind="stable"):
    params = results["params"][i]
    print(f"{results['rank_test_score'][i]:>4}  {results['mean_test_score'][i]:>8.4f}  "
          f"{results['std_test_score'][i]:>6.4f}  {results['mean_fit_time'][i]:>6.2f}  "
          f"{str(params['cnn__conv_layers']):<12}  {params['cnn__learning_rate_init']:g}")

print(f"\nbest parameters: {search.best_params_}")
print(f"held-out accuracy of the refitted best pipeline: {search.score(X_test, y_test):.4f}")
