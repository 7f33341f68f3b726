"""What sphinx-gallery calls while it runs the examples (named in conf.py)."""

import os

OUTPUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_build", "example_output")


def example_argv(gallery_conf, script_vars):
    """Each example's OUTPUT_DIR argument: its files go under docs/_build, not examples/."""
    name = os.path.splitext(os.path.basename(script_vars["src_file"]))[0]
    out_dir = os.path.join(OUTPUT, name)
    os.makedirs(out_dir, exist_ok=True)
    return [out_dir]
