"""Every ```python block of README.md runs, so the README cannot rot.

Each block runs on its own, in a fresh namespace, as a reader who copies that
one block would run it, with the working directory in a temporary folder (the
persistence section writes a file). Tracebacks point at README.md's lines.
``bash`` and other blocks are not run.
"""

import re
import warnings
from pathlib import Path

import pytest
from sklearn.exceptions import ConvergenceWarning

README = Path(__file__).resolve().parent.parent / "README.md"

_FENCE = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def python_blocks():
    """(first line number, source) of each ```python block, in order."""
    text = README.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start(1)) + 1, m.group(1)) for m in _FENCE.finditer(text)]


def test_readme_has_python_blocks():
    assert len(python_blocks()) >= 5


@pytest.mark.parametrize(
    "line, source", python_blocks(), ids=[f"README.md:{line}" for line, _ in python_blocks()]
)
def test_readme_python_block_runs(line, source, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # line numbers in tracebacks are README.md's: pad the block down to where it starts
    code = compile("\n" * (line - 1) + source, str(README), "exec")
    with warnings.catch_warnings():
        # the blocks train for a couple of epochs on purpose, to stay fast
        warnings.simplefilter("ignore", ConvergenceWarning)
        exec(code, {"__name__": "__readme__"})
