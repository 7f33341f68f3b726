"""Every Python block of README.md and of the docs' pages runs, so they cannot rot.

The blocks are README.md's ```python fences and the ``.. code-block:: python``
directives of ``docs/*.rst`` and ``docs/user_guide/*.rst``. A directive that
follows a ``.. skip-test`` comment is shown but not run (a block that needs a
newer scikit-learn, say); use it sparingly.

Each block runs on its own, as a reader who pastes that one block into a file
runs it: ``python block.py`` in a fresh process, with the working directory in
a temporary folder (the persistence section writes a file). A fresh process
shows what ``exec`` hides: a block that starts worker processes without an
``if __name__ == "__main__":`` guard fails there as it fails for the reader.
A block must print no warning: a reader copies what it does. The script is
padded so that its line numbers in a traceback are its file's. The block that
starts a local Dask cluster is marked ``slow`` (``pytest -m slow`` runs it; CI
does).
"""

import ast
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import skconv

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
SKCONV_ROOT = str(Path(skconv.__file__).resolve().parent.parent)

_FENCE = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)
# a code-block directive, its options, a blank line, then its indented body
_DIRECTIVE = re.compile(
    r"^(?P<skip>\.\. skip-test\n\n)?\.\. code-block:: python\n(?:[ \t]+:.*\n)*\n"
    r"(?P<body>(?:(?:[ \t]+.*)?\n)+)",
    re.MULTILINE,
)


def documents():
    """README.md and the docs' hand-written pages, as paths relative to the root."""
    pages = sorted(DOCS.glob("*.rst")) + sorted((DOCS / "user_guide").glob("*.rst"))
    return [README] + pages


def python_blocks(path):
    """(first line number, source, run) of each Python block of one document, in order."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".md":
        return [(text.count("\n", 0, m.start(1)) + 1, m.group(1), True)
                for m in _FENCE.finditer(text)]
    blocks = []
    for m in _DIRECTIVE.finditer(text):
        body = m.group("body")
        # the body ends at its last indented line; the blank lines after it are not part
        body = body[:len(body.rstrip()) + 1]
        blocks.append((text.count("\n", 0, m.start("body")) + 1, textwrap.dedent(body),
                       m.group("skip") is None))
    return blocks


def all_blocks():
    """{(document name, first line): source} of every block that runs."""
    return {(path.relative_to(ROOT).as_posix(), line): source
            for path in documents() for line, source, run in python_blocks(path) if run}


def run_block(name, line, source, cwd):
    """Run one block as a script in a fresh interpreter; return its stdout."""
    script = cwd / f"{name.replace('/', '_').replace('.', '_')}_line_{line}.py"
    script.write_text("\n" * (line - 1) + source, encoding="utf-8")
    # the block imports the skconv these tests import, installed or built in place
    path = os.pathsep.join(filter(None, [SKCONV_ROOT, os.environ.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, script.name], cwd=cwd,
        env=dict(os.environ, PYTHONPATH=path, MPLBACKEND="Agg"),
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, (
        f"the {name} block at line {line} failed as a script (its line numbers are "
        f"{name}'s):\n{result.stdout}\n{result.stderr}"
    )
    assert "Warning" not in result.stderr, (
        f"the {name} block at line {line} printed a warning:\n{result.stderr}"
    )
    return result.stdout


@pytest.fixture(scope="module")
def block_output(tmp_path_factory):
    """Run a block (by document and first line) once per test session; return its stdout."""
    outputs = {}
    sources = all_blocks()

    def output(name, line):
        if (name, line) not in outputs:
            cwd = tmp_path_factory.mktemp(f"{Path(name).stem}_line_{line}")
            outputs[name, line] = run_block(name, line, sources[name, line], cwd)
        return outputs[name, line]

    return output


def test_readme_and_user_guide_have_python_blocks():
    assert len(python_blocks(README)) >= 1
    guide = [b for p in (DOCS / "user_guide").glob("*.rst") for b in python_blocks(p)]
    assert len(guide) >= 10


def test_rst_blocks_are_found_with_their_lines_and_skip_marks(tmp_path):
    page = tmp_path / "page.rst"
    page.write_text(
        "Title\n=====\n\n.. code-block:: python\n   :caption: one\n\n   a = 1\n\n   b = a\n"
        "\ntext\n\n.. skip-test\n\n.. code-block:: python\n\n   c = 3\n\n"
        ".. code-block:: bash\n\n   ls\n",
        encoding="utf-8",
    )
    assert python_blocks(page) == [(7, "a = 1\n\nb = a\n", True), (17, "c = 3\n", False)]


@pytest.mark.parametrize(("name", "line"), list(all_blocks()))
def test_every_estimator_of_a_block_is_seeded(name, line):
    """Two runs of a block print the same: each estimator gets a random_state (or **kwargs)."""
    for call in ast.walk(ast.parse(all_blocks()[name, line])):
        called = getattr(call, "func", None)
        if getattr(called, "id", getattr(called, "attr", None)) in ("ConvNetClassifier",
                                                                     "ConvNetRegressor"):
            keywords = {k.arg for k in call.keywords}
            assert "random_state" in keywords or None in keywords, (
                f"{name}:{line + call.lineno - 1}: the estimator has no random_state"
            )


def block_params():
    """One pytest param per block; the one that starts a Dask cluster is ``slow``."""
    return [
        pytest.param(name, line, id=f"{name}:{line}",
                     marks=[pytest.mark.slow] if "LocalCluster" in source else [])
        for (name, line), source in all_blocks().items()
    ]


@pytest.mark.parametrize(("name", "line"), block_params())
def test_python_block_runs_as_a_script_without_warnings(name, line, block_output):
    block_output(name, line)


def test_grid_search_block_prints_a_good_best_score(block_output):
    ((name, line),) = [key for key, source in all_blocks().items()
                       if "GridSearchCV(pipe" in source]
    best_score = float(block_output(name, line).split()[-1])
    assert best_score > 0.9
