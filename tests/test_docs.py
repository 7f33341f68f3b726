"""The documentation's sources hold together: what the Sphinx build needs from the tree.

The build itself (``python -m sphinx -W -b html docs docs/_build/html``) runs in
CI, with the examples' training cut short; these tests check, without Sphinx,
what would make it fail or run the wrong examples.
"""

import ast
import os
import re
import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
EXAMPLES = ROOT / "examples"


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.py")))
def test_every_example_opens_with_a_title_the_gallery_can_read(example):
    docstring = ast.get_docstring(ast.parse((EXAMPLES / example).read_text(encoding="utf-8")))
    title, underline = docstring.splitlines()[:2]
    assert re.fullmatch(r"=+", underline) and len(underline) == len(title), (
        f"{example}: the docstring must open with a title underlined by '=' of its length"
    )


def test_user_guide_lists_new_pages_without_an_edit():
    index = (DOCS / "user_guide" / "index.rst").read_text(encoding="utf-8")
    assert ":glob:" in index and re.search(r"^   \*$", index, re.MULTILINE)


def test_every_page_is_in_a_table_of_contents():
    listed = set()
    for page in DOCS.rglob("*.rst"):
        if "_build" in page.parts or "generated" in page.parts or "auto_examples" in page.parts:
            continue
        for block in re.findall(r"\.\. toctree::\n((?:   .*\n|\n)+)", page.read_text()):
            folder = page.parent.relative_to(DOCS)
            listed |= {(folder / line.strip()).as_posix() for line in block.splitlines()
                       if line.strip() and not line.strip().startswith(":")}
    pages = {p.relative_to(DOCS).with_suffix("").as_posix() for p in DOCS.glob("*.rst")
             if p.name != "sg_execution_times.rst"}  # sphinx-gallery writes it
    assert pages - {"index"} <= listed, pages - listed


@pytest.mark.parametrize(("mode", "runs", "shown"), [
    ("all", ["quickstart_digits", "plot_inspection", "regression_count_digits"], ["mnist"]),
    ("fast", ["quickstart_digits", "grid_search_pipeline"], ["mnist"]),
    ("none", [], ["quickstart_digits", "mnist"]),
])
def test_docs_build_runs_the_examples_the_mode_asks_for(mode, runs, shown, monkeypatch):
    monkeypatch.setenv("SKCONV_DOCS_EXAMPLES", mode)
    monkeypatch.delenv("SKCONV_EXAMPLES_FAST", raising=False)
    monkeypatch.syspath_prepend(str(DOCS))
    conf = runpy.run_path(str(DOCS / "conf.py"))
    pattern = conf["sphinx_gallery_conf"]["filename_pattern"]
    for name in runs:
        assert re.search(pattern, str(EXAMPLES / f"{name}.py")), (mode, name)
    for name in shown:
        assert not re.search(pattern, str(EXAMPLES / f"{name}.py")), (mode, name)
    assert (os.environ.get("SKCONV_EXAMPLES_FAST") == "1") == (mode == "fast")


def test_docs_build_refuses_an_unknown_examples_mode(monkeypatch):
    monkeypatch.setenv("SKCONV_DOCS_EXAMPLES", "some")
    with pytest.raises(ValueError, match=r"SKCONV_DOCS_EXAMPLES='some' must be 'all', 'fast'"):
        runpy.run_path(str(DOCS / "conf.py"))


def test_api_page_lists_every_public_name_of_ops_and_nothing_else():
    # ``from skconv.ops import *`` gives what the API page documents
    from skconv import ops

    api = (DOCS / "api.rst").read_text(encoding="utf-8")
    section = api.split(".. currentmodule:: skconv.ops", 1)[1]
    listed = re.search(r"\.\. autosummary::\n(?:   :.*\n)*\n((?:   \w+\n)+)", section).group(1)
    assert sorted(listed.split()) == sorted(ops.__all__)
