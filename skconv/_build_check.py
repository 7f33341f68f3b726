"""Explain a failed import of the compiled kernels (as scikit-learn's ``__check_build`` does).

The usual cause is Python importing skconv from a source checkout whose Cython
extensions were never built: running from the repository's root puts the
checkout's ``skconv/`` first on ``sys.path``, ahead of the installed package.
"""

import importlib.machinery
import tomllib
from pathlib import Path

KERNELS_DIR = Path(__file__).resolve().parent / "_kernels"

# pyproject.toml's [build-system] requires, for a tree whose pyproject.toml cannot be read
BUILD_REQUIRES = ["setuptools>=77", "Cython>=3.0.10", "numpy>=1.26", "scipy>=1.11"]


def build_requires(root=KERNELS_DIR.parent.parent):
    """The build requirements with their version pins, from the source tree's pyproject.toml."""
    try:
        with open(root / "pyproject.toml", "rb") as f:
            return list(tomllib.load(f)["build-system"]["requires"])
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        return BUILD_REQUIRES


def built_kernels(kernels_dir=KERNELS_DIR):
    """Names of the compiled extension files in ``kernels_dir`` that this Python can load."""
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    return sorted(p.name for p in kernels_dir.iterdir() if p.name.endswith(suffixes))


def raise_not_built(exc):
    """Raise an ImportError saying why the kernels did not import and what to do.

    Parameters
    ----------
    exc : ImportError
        The error raised by importing a kernel module; chained as the cause.

    Raises
    ------
    ImportError
        Always: a message naming the source tree when its kernels are not built,
        otherwise ``exc`` itself (the extensions exist but fail to load).
    """
    if built_kernels():
        raise exc  # built, yet not loadable: the original error says why
    package = KERNELS_DIR.parent
    requires = " ".join(f'"{r}"' for r in build_requires())
    raise ImportError(
        f"skconv's compiled kernels are missing from {package}: this looks like skconv's "
        f"source tree, with its Cython extensions not built ({exc}).\n"
        f"If you installed skconv (pip install .) and are running Python from the "
        f"repository's root, this uncompiled copy shadows the installed package: run from "
        f"another directory (or with `python -P`, which leaves the current directory off "
        f"sys.path).\n"
        f"To work on skconv itself, build the extensions in the tree: "
        f"`pip install {requires}`, then `pip install -e . --no-build-isolation` (or "
        f"`python setup.py build_ext --inplace`)."
    ) from exc
