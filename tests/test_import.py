"""Importing skconv from a source tree whose extensions are not built explains itself.

A user who runs Python from the root of a clone (after ``pip install .``)
imports the clone's uncompiled ``skconv/`` instead of the installed package.
The ImportError they get must say so and name the fixes, as numpy's and
scikit-learn's do. The check runs in a fresh interpreter on a copy of the
package without its compiled files.
"""

import importlib.machinery
import shutil
import subprocess
import sys
from pathlib import Path

import skconv

PACKAGE = Path(skconv.__file__).resolve().parent


def copy_sources(dest):
    """Copy the skconv package to ``dest``, leaving out every compiled extension."""
    compiled = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    shutil.copytree(
        PACKAGE, dest / "skconv",
        ignore=lambda _, names: [n for n in names if n.endswith(compiled) or n == "__pycache__"],
    )


def import_skconv_in(cwd):
    """Run ``import skconv`` in a fresh interpreter whose sys.path starts with ``cwd``."""
    return subprocess.run(
        [sys.executable, "-c", "import skconv"],
        cwd=cwd, capture_output=True, text=True, timeout=120,
    )


def test_importing_an_unbuilt_source_tree_says_why_and_what_to_do(tmp_path):
    copy_sources(tmp_path)
    result = import_skconv_in(tmp_path)
    assert result.returncode != 0
    # the last exception of the output (the cause's traceback comes first)
    message = result.stderr.rsplit("Traceback (most recent call last)", 1)[-1]
    assert "\nImportError: skconv's compiled kernels are missing from" in message
    assert str(tmp_path / "skconv") in message
    assert "source tree" in message and "not built" in message
    assert "shadows the installed package" in message
    assert "run from another directory" in message
    assert "pip install -e . --no-build-isolation" in message
    assert "python setup.py build_ext --inplace" in message
    # the original error stays attached as the cause
    assert "No module named 'skconv._kernels._openmp_helpers'" in result.stderr


def test_importing_a_built_tree_that_fails_to_load_keeps_the_original_error(tmp_path):
    copy_sources(tmp_path)
    # an extension file that exists but is not a loadable library
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    (tmp_path / "skconv" / "_kernels" / f"_openmp_helpers{suffix}").write_bytes(b"not a library")
    result = import_skconv_in(tmp_path)
    assert result.returncode != 0
    assert "ImportError" in result.stderr.strip().splitlines()[-1]
    assert "compiled kernels are missing" not in result.stderr
