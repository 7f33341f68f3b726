"""Every ```python block of README.md runs, so the README cannot rot.

Each block runs on its own, as a reader who pastes that one block into a file
runs it: ``python block.py`` in a fresh process, with the working directory in
a temporary folder (the persistence section writes a file). A fresh process
shows what ``exec`` hides: a block that starts worker processes without an
``if __name__ == "__main__":`` guard fails there as it fails for the reader.
The script is padded so that its line numbers in a traceback are README.md's.
``bash`` and other blocks are not run. The block that starts a local Dask
cluster is marked ``slow`` (``pytest -m slow`` runs it; CI does).
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import skconv

README = Path(__file__).resolve().parent.parent / "README.md"
SKCONV_ROOT = str(Path(skconv.__file__).resolve().parent.parent)

_FENCE = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def python_blocks():
    """(first line number, source) of each ```python block, in order."""
    text = README.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start(1)) + 1, m.group(1)) for m in _FENCE.finditer(text)]


def run_block(line, source, cwd):
    """Run one block as a script in a fresh interpreter; return its stdout."""
    script = cwd / f"README_md_line_{line}.py"
    script.write_text("\n" * (line - 1) + source, encoding="utf-8")
    # the block imports the skconv these tests import, installed or built in place
    path = os.pathsep.join(filter(None, [SKCONV_ROOT, os.environ.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, script.name], cwd=cwd, env=dict(os.environ, PYTHONPATH=path),
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, (
        f"the README.md block at line {line} failed as a script (its line numbers are "
        f"README.md's):\n{result.stdout}\n{result.stderr}"
    )
    return result.stdout


@pytest.fixture(scope="module")
def block_output(tmp_path_factory):
    """Run a block (by first line) once per test session; return its stdout."""
    outputs = {}
    sources = dict(python_blocks())

    def output(line):
        if line not in outputs:
            cwd = tmp_path_factory.mktemp(f"README_md_line_{line}")
            outputs[line] = run_block(line, sources[line], cwd)
        return outputs[line]

    return output


def test_readme_has_python_blocks():
    assert len(python_blocks()) >= 5


def block_params():
    """One pytest param per block; the one that starts a Dask cluster is ``slow``."""
    return [
        pytest.param(line, id=f"README.md:{line}",
                     marks=[pytest.mark.slow] if "LocalCluster" in source else [])
        for line, source in python_blocks()
    ]


@pytest.mark.parametrize("line", block_params())
def test_readme_python_block_runs_as_a_script(line, block_output):
    block_output(line)


def test_readme_grid_search_block_prints_a_good_best_score(block_output):
    (line,) = [line for line, source in python_blocks() if "GridSearchCV(pipe" in source]
    best_score = float(block_output(line).split()[-1])
    assert best_score > 0.9
