"""Save a trained ConvNetClassifier with joblib and serve it from another process
==============================================================================

What it shows: a fitted model holds only numpy arrays and plain Python values,
so ``joblib.dump`` writes it in one file: the weights plus, as
``MLPClassifier`` does, the optimizer's state (Adam's two moment arrays, so
``partial_fit`` can go on training after loading), about three times the size
of the weights alone. A fresh Python interpreter (started with ``subprocess``, as a web service or a
batch job would be) loads it, memory-mapping the weights read-only
(``mmap_mode="r"``), and predicts; the predictions are identical, bit for bit
in the probabilities, to those of the model that was trained.

Only load model files you trust: unpickling runs whatever code the file names,
so a file from an untrusted source can execute arbitrary code on your machine.

    python examples/deploy_pickle.py [OUTPUT_DIR]

The model is written to OUTPUT_DIR/digits_convnet.joblib and kept there; with
no OUTPUT_DIR it goes to a temporary folder that is removed at the end. With
``SKCONV_EXAMPLES_FAST=1`` training is shortened to a smoke test.
"""

import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import joblib
import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split

from skconv import ConvNetClassifier

FAST = os.environ.get("SKCONV_EXAMPLES_FAST") == "1"

# What the serving process runs: load the model and the inputs, predict, save.
SERVE = """
import sys
import joblib
import numpy as np

model_path, x_path, out_path = sys.argv[1:]
clf = joblib.load(model_path, mmap_mode="r")  # weights memory-mapped, read-only
X = np.load(x_path)
np.savez(out_path, labels=clf.predict(X), proba=clf.predict_proba(X))
print(f"  [serving process {__import__('os').getpid()}] loaded {type(clf).__name__}, "
      f"predicted {len(X)} images")
"""


def main(out_dir):
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=0
    )
    clf = ConvNetClassifier(conv_layers=(16, 32), hidden_layer_sizes=(64,),
                            learning_rate_init=3e-3, max_iter=2 if FAST else 15,
                            random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter is a time budget
        clf.fit(X_train, y_train)
    labels = clf.predict(X_test)
    proba = clf.predict_proba(X_test)
    print(f"trained in process {os.getpid()}: test accuracy {np.mean(labels == y_test):.4f}")

    model_path = out_dir / "digits_convnet.joblib"
    joblib.dump(clf, model_path)
    params = clf.coefs_ + clf.intercepts_
    print(f"saved {model_path.name}: {model_path.stat().st_size / 1024:.1f} KiB on disk; "
          f"the weights alone are {sum(a.size for a in params)} {params[0].dtype} values, "
          f"{sum(a.nbytes for a in params) / 1024:.1f} KiB")

    x_path, out_path = out_dir / "X_test.npy", out_dir / "served.npz"
    np.save(x_path, X_test)
    # -P: keep the working directory off the child's sys.path, so that run from the root of
    # a source checkout it imports the installed skconv, not the checkout's unbuilt skconv/
    subprocess.run([sys.executable, "-P", "-c", SERVE, str(model_path), str(x_path),
                    str(out_path)], check=True)
    served = np.load(out_path)
    x_path.unlink()
    out_path.unlink()

    same_labels = np.array_equal(served["labels"], labels)
    same_proba = np.array_equal(served["proba"], proba)
    print(f"labels identical: {same_labels}; probabilities identical: {same_proba} "
          f"(largest difference {np.abs(served['proba'] - proba).max():.1e})")
    if not (same_labels and same_proba):
        sys.exit("the served model does not predict like the trained one")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        out_dir = Path(sys.argv[1])
        out_dir.mkdir(parents=True, exist_ok=True)
        main(out_dir)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp))
