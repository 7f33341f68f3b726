"""What a newcomer trips over first: a y of one class, and a source tree without its kernels."""

import tomllib
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from skconv import ConvNetClassifier, _build_check

ROOT = Path(__file__).resolve().parent.parent


def test_one_class_y_warns_naming_the_class_and_what_every_prediction_will_be():
    X = np.random.RandomState(0).rand(20, 16)
    clf = ConvNetClassifier((2,), (4,), max_iter=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with pytest.warns(UserWarning, match=r"y has one class only, 'cat': the model learns "
                                             r"nothing and every prediction will be 'cat'"):
            clf.fit(X, ["cat"] * 20)
    assert clf.classes_.tolist() == ["cat"]
    assert set(clf.predict(X)) == {"cat"}


def test_two_classes_and_multilabel_y_fit_without_the_one_class_warning():
    X = np.random.RandomState(0).rand(20, 16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", ConvergenceWarning)
        ConvNetClassifier((2,), (4,), max_iter=1, random_state=0).fit(X, np.arange(20) % 2)
        # a label column that is always 1 is one label of several, not one class
        y = np.c_[np.arange(20) % 2, np.ones(20, int)]
        ConvNetClassifier((2,), (4,), max_iter=1, random_state=0).fit(X, y)


def test_unbuilt_source_tree_error_gives_the_pinned_build_requirements(monkeypatch):
    monkeypatch.setattr(_build_check, "built_kernels", lambda: [])
    with pytest.raises(ImportError) as info:
        _build_check.raise_not_built(ImportError("no module named _openmp_helpers"))
    message = str(info.value)
    with open(ROOT / "pyproject.toml", "rb") as f:
        pins = tomllib.load(f)["build-system"]["requires"]
    assert f"pip install {' '.join(f'{chr(34)}{p}{chr(34)}' for p in pins)}" in message
    assert "pip install -e . --no-build-isolation" in message
    assert "Cython>=" in message


def test_build_requirements_fall_back_to_the_pins_without_a_pyproject(tmp_path):
    assert _build_check.build_requires(tmp_path) == _build_check.BUILD_REQUIRES
    with open(ROOT / "pyproject.toml", "rb") as f:
        assert _build_check.BUILD_REQUIRES == tomllib.load(f)["build-system"]["requires"]
