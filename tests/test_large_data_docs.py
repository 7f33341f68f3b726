"""The Python blocks of docs/user_guide/large_data.rst run, each as a script of its own.

As a reader runs a block pasted into a file: ``python block.py`` in a fresh
process, in a temporary folder, printing no warning. The block that starts a
local Dask cluster of processes is ``slow`` (``pytest -m slow``; CI runs it).
The docs' own test (tests/test_readme.py, where the docs are built) runs every
page's blocks the same way; this one keeps this page checked where it is written.
"""

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import skconv

PAGE = Path(__file__).resolve().parent.parent / "docs" / "user_guide" / "large_data.rst"
SKCONV_ROOT = str(Path(skconv.__file__).resolve().parent.parent)
_DIRECTIVE = re.compile(r"^\.\. code-block:: python\n(?:[ \t]+:.*\n)*\n"
                        r"(?P<body>(?:(?:[ \t]+.*)?\n)+)", re.MULTILINE)
NEEDS = ("h5py", "zarr", "dask", "distributed", "dask_ml")


def blocks():
    text = PAGE.read_text(encoding="utf-8")
    found = []
    for m in _DIRECTIVE.finditer(text):
        body = m.group("body")
        body = body[:len(body.rstrip()) + 1]
        found.append((text.count("\n", 0, m.start("body")) + 1, textwrap.dedent(body)))
    return found


def test_the_page_has_its_blocks():
    assert len(blocks()) >= 5


@pytest.mark.parametrize("line, source", [
    pytest.param(line, source, id=f"large_data.rst:{line}",
                 marks=[pytest.mark.slow] if "LocalCluster" in source else [])
    for line, source in blocks()])
def test_block_runs_as_a_script_without_warnings(line, source, tmp_path):
    for module in NEEDS:
        if re.search(rf"^\s*(import|from) {module}\b", source, re.MULTILINE):
            pytest.importorskip(module)
    script = tmp_path / f"large_data_rst_line_{line}.py"
    script.write_text("\n" * (line - 1) + source, encoding="utf-8")
    path = os.pathsep.join(filter(None, [SKCONV_ROOT, os.environ.get("PYTHONPATH")]))
    result = subprocess.run([sys.executable, script.name], cwd=tmp_path,
                            env=dict(os.environ, PYTHONPATH=path), capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, (f"the block at line {line} failed:\n{result.stdout}\n"
                                    f"{result.stderr}")
    assert "Warning" not in result.stderr, f"the block at line {line} warned:\n{result.stderr}"
