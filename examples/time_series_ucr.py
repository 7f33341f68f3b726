"""Time series classification on the UCR/UEA archives: FCN and ResNet
==================================================================

What it shows: series in the estimators (``input_shape=(length, channels)``)
and the two deep baselines of Wang, Yan and Oates (2017), ``skconv.architectures.fcn()``
and ``resnet1d()``, on three data sets of the UCR/UEA archives with their official
train/test splits, each series z-normalised: GunPoint (150 steps, one channel),
ItalyPowerDemand (24 steps) and JapaneseVowels (the equal-length version: 25
steps, 12 channels). It prints each model's test accuracy and fit time beside
the figures Fawaz et al. (2019, "Deep learning for time series classification:
a review", mean of 5 runs) publish, and ``MLPClassifier`` on the same series.

The data is not downloaded by this script (CI does not run it on the real
files). The ``.ts`` files ship inside the ``aeon`` wheel on the package index;
get the wheel once (do not install it: this script only reads the files inside
it, with its own small reader)::

    pip download --no-deps aeon -d ~/.cache/skconv

then run::

    python examples/time_series_ucr.py [PATH]

PATH is the wheel, a folder holding it, or a folder holding the data sets'
folders (``GunPoint/GunPoint_TRAIN.ts``, ...); default: ``$SKCONV_UCR``, then
``~/.cache/skconv``.
"""

import glob
import io
import os
import sys
import time
import warnings
import zipfile

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.neural_network import MLPClassifier

from skconv import ConvNetClassifier
from skconv.architectures import fcn, resnet1d

# data set -> (training file, test file), as the aeon wheel names them
DATASETS = {
    "GunPoint": ("GunPoint/GunPoint_TRAIN.ts", "GunPoint/GunPoint_TEST.ts"),
    "ItalyPowerDemand": ("ItalyPowerDemand/ItalyPowerDemand_TRAIN.ts",
                         "ItalyPowerDemand/ItalyPowerDemand_TEST.ts"),
    "JapaneseVowels": ("JapaneseVowels/JapaneseVowels_eq_TRAIN.ts",
                       "JapaneseVowels/JapaneseVowels_eq_TEST.ts"),
}

# Fawaz et al. 2019, mean test accuracy of 5 runs: FCN, ResNet (and their plain CNN)
PUBLISHED = {
    "GunPoint": {"FCN": 1.000, "ResNet": 0.991, "CNN": 0.948},
    "ItalyPowerDemand": {"FCN": 0.963, "ResNet": 0.962, "CNN": 0.954},
    "JapaneseVowels": {"FCN": 0.993, "ResNet": 0.992, "CNN": 0.956},
}

FAST = bool(os.environ.get("SKCONV_EXAMPLES_FAST"))

# The recipes: the paper's networks with Adam at its rate, batches of 16 (or a tenth
# of the training set), halved rates on plateaus of the training loss as Fawaz et
# al. train them, and 300 epochs rather than their 1500-2000, so that a fit stays
# within two minutes on 2 cores.
RECIPES = {
    "FCN": dict(fcn(), max_iter=300),
    "ResNet": dict(resnet1d(), max_iter=300),
}
COMMON = dict(learning_rate="plateau", lr_gamma=0.5, n_iter_no_change=30, tol=1e-4,
              learning_rate_init=1e-3, random_state=0)


def read_ts(text):
    """A ``.ts`` file's series and labels: X of shape (n, length, channels), y of str.

    Header lines start with ``@`` (``@data`` ends them) and comments with
    ``#``; each data line is one series, its channels separated by ``:`` and
    the class label last, each channel's values separated by commas.
    """
    rows, labels, in_data = [], [], False
    for line in io.StringIO(text):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            in_data = line.lower().startswith("@data")
            continue
        *channels, label = line.split(":")
        rows.append([np.array(c.split(","), dtype=float) for c in channels])
        labels.append(label.strip())
    lengths = {len(c) for row in rows for c in row}
    if len(lengths) != 1:
        raise ValueError(f"series of unequal length {sorted(lengths)}: pad or resample them")
    return np.array(rows).transpose(0, 2, 1), np.array(labels)


def z_normalise(X):
    """Each series to mean 0 and standard deviation 1, over its steps and channels.

    One mean and deviation per series, not per channel: the channels' levels
    relative to each other are what tells JapaneseVowels' speakers apart (FCN
    scored 0.83 on it with each channel normalised on its own).
    """
    std = X.std(axis=(1, 2), keepdims=True)
    return (X - X.mean(axis=(1, 2), keepdims=True)) / np.where(std > 0, std, 1.0)


def reader(path):
    """A function ``name -> text`` over the wheel, or a folder of the data sets."""
    path = os.path.expanduser(path)
    wheels = sorted(glob.glob(os.path.join(path, "aeon-*.whl"))) if os.path.isdir(path) \
        else [path]
    if wheels and zipfile.is_zipfile(wheels[-1]):
        wheel = zipfile.ZipFile(wheels[-1])
        return lambda name: wheel.read("aeon/datasets/data/" + name).decode()
    if os.path.isdir(path) and all(os.path.exists(os.path.join(path, f))
                                   for files in DATASETS.values() for f in files):
        return lambda name: open(os.path.join(path, name), encoding="utf-8").read()
    sys.exit(f"No UCR/UEA data at {path!r}. Get the aeon wheel once with\n\n"
             "    pip download --no-deps aeon -d ~/.cache/skconv\n\n"
             "or pass the wheel, or a folder of the data sets' folders, as the argument.")


def main():
    default = os.environ.get("SKCONV_UCR", os.path.join("~", ".cache", "skconv"))
    read = reader(sys.argv[1] if len(sys.argv) > 1 else default)
    print(f"{'data set':<17} {'model':<14} {'accuracy':>8} {'published':>9} {'fit s':>6}")
    for name, (train, test) in DATASETS.items():
        X, y = read_ts(read(train))
        X_test, y_test = read_ts(read(test))
        X, X_test = z_normalise(X), z_normalise(X_test)
        length, channels = X.shape[1:]
        batch_size = int(min(16, max(1, len(X) // 10)))
        for model, recipe in RECIPES.items():
            params = {**recipe, **COMMON, "batch_size": batch_size}
            if FAST:
                params.update(max_iter=2)
            clf = ConvNetClassifier(**params, input_shape=(length, channels))
            tic = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                clf.fit(X, y)
            seconds = time.perf_counter() - tic
            print(f"{name:<17} {model:<14} {clf.score(X_test, y_test):>8.3f} "
                  f"{PUBLISHED[name][model]:>9.3f} {seconds:>6.1f}", flush=True)
        mlp = MLPClassifier(hidden_layer_sizes=(500, 500), max_iter=2 if FAST else 1000,
                            random_state=0)
        tic = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            mlp.fit(X.reshape(len(X), -1), y)
        seconds = time.perf_counter() - tic
        print(f"{name:<17} {'MLPClassifier':<14} "
              f"{mlp.score(X_test.reshape(len(X_test), -1), y_test):>8.3f} {'':>9} "
              f"{seconds:>6.1f}", flush=True)


if __name__ == "__main__":
    main()
