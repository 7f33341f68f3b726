"""Every script in examples/ runs, in fast mode, and writes what it promises.

Each example is run as a user runs it, ``python examples/<name>.py OUTPUT_DIR``,
in a fresh process with ``SKCONV_EXAMPLES_FAST=1`` (a couple of epochs), and
with its output directory in pytest's temporary directory, so CI leaves no
file in the tree. Speed is not asserted; the examples' full runs are timed by
hand (see the docs). The runs take a while on 2 cores, so they are marked
``slow``: ``pytest -m slow`` runs them (CI does).
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import skconv

pytest.importorskip("matplotlib")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SKCONV_ROOT = str(Path(skconv.__file__).resolve().parent.parent)

# example -> files it must write to its output directory
WRITES = {
    "quickstart_digits.py": ["quickstart_digits.png"],
    "grid_search_pipeline.py": [],
    "deploy_pickle.py": ["digits_convnet.joblib"],
    "deploy_onnx.py": ["digits_convnet.onnx"],
    "plot_feature_maps.py": ["plot_feature_maps.png"],
    "plot_inspection.py": ["plot_inspection.png"],
    "regression_count_digits.py": ["regression_count_digits.png"],
    "plot_embeddings.py": ["plot_embeddings.png"],
}

# examples that CI does not run, and why
NOT_RUN = {"mnist.py": "needs the MNIST files (a 65 MB download) and minutes of training",
           "time_series_ucr.py": "needs the aeon wheel's .ts files: "
                                 "test_time_series_ucr_reads_ts_files_and_prints_its_table "
                                 "runs it on small files of the same format"}

# example -> optional packages it needs beyond matplotlib (skipped without them)
NEEDS = {"deploy_onnx.py": ["skl2onnx", "onnxruntime"]}


def test_every_example_is_tested():
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted({**WRITES, **NOT_RUN})


@pytest.fixture(scope="module")
def run_example(tmp_path_factory):
    """Run an example once per test session; return (its stdout, its output dir)."""
    runs = {}

    def run(name):
        for module in NEEDS.get(name, []):
            pytest.importorskip(module)
        if name not in runs:
            out_dir = tmp_path_factory.mktemp(name.removesuffix(".py"))
            # the example imports the skconv these tests import, installed or built in place
            path = os.pathsep.join(filter(None, [SKCONV_ROOT, os.environ.get("PYTHONPATH")]))
            env = dict(os.environ, SKCONV_EXAMPLES_FAST="1", MPLBACKEND="Agg", PYTHONPATH=path)
            result = subprocess.run(
                [sys.executable, str(EXAMPLES / name), str(out_dir)],
                env=env, cwd=out_dir, capture_output=True, text=True, timeout=300,
            )
            assert result.returncode == 0, (
                f"{name} failed:\n{result.stdout}\n{result.stderr}"
            )
            runs[name] = result.stdout, out_dir
        return runs[name]

    return run


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(WRITES))
def test_example_runs_in_fast_mode_and_writes_its_files(name, run_example):
    out, out_dir = run_example(name)
    assert out.strip(), f"{name} printed nothing"
    written = sorted(p.name for p in out_dir.iterdir())
    assert written == sorted(WRITES[name])
    for file in written:
        assert (out_dir / file).stat().st_size > 1000


@pytest.mark.slow
def test_quickstart_prints_progress_accuracy_and_report(run_example):
    out, _ = run_example("quickstart_digits.py")
    assert "Iteration 1, loss = " in out
    assert "test accuracy: " in out
    assert "macro avg" in out  # the classification report


@pytest.mark.slow
def test_grid_search_prints_every_candidate_by_rank(run_example):
    out, _ = run_example("grid_search_pipeline.py")
    ranks = [line.split()[0] for line in out.splitlines() if line[:4].strip().isdigit()]
    assert ranks == ["1", "2", "3", "4"]


@pytest.mark.slow
def test_deployed_model_predicts_identically_in_a_fresh_process(run_example):
    out, _ = run_example("deploy_pickle.py")
    assert "labels identical: True; probabilities identical: True" in out
    assert "serving process" in out


@pytest.mark.slow
def test_onnx_model_predicts_like_the_pipeline_in_a_process_without_skconv(run_example):
    out, _ = run_example("deploy_onnx.py")
    assert "labels identical: True; probabilities match to float32 rounding: True" in out
    assert "skconv/sklearn imported: none" in out


@pytest.mark.slow
def test_feature_maps_forward_pass_by_hand_matches_the_estimator(run_example):
    out, _ = run_example("plot_feature_maps.py")
    assert "hand-made forward pass matches predict_proba: True" in out
    assert "FeatureMapDisplay shows the hand-made feature maps: True" in out


@pytest.mark.slow
def test_inspection_example_explains_four_digits(run_example):
    out, _ = run_example("plot_inspection.py")
    assert "explained classes: [" in out and "(16, 4, 4)" in out


@pytest.mark.slow
def test_regression_example_prints_the_r2_of_each_model(run_example):
    out, _ = run_example("regression_count_digits.py")
    assert " ConvNetRegressor: test R^2 = " in out
    assert "ConvNetRegressor, global pooling: test R^2 = " in out
    assert "MLPRegressor: test R^2 = " in out


@pytest.mark.slow
def test_embeddings_example_runs_a_pipeline_and_compares_class_separation(run_example):
    out, _ = run_example("plot_embeddings.py")
    assert "ConvNetClassifier -> SVC pipeline test accuracy: " in out
    assert "named ['convnetclassifier0', 'convnetclassifier1']" in out
    assert "silhouette of the classes, last hidden layer (transform): " in out


def _ts_file(rng, n, length, channels, classes):
    """A small .ts file as the aeon wheel's: a header, then one series a line."""
    lines = ["# a comment", "@problemName Fake", "@univariate " + str(channels == 1).lower(),
             "@equalLength true", f"@seriesLength {length}",
             "@classLabel true " + " ".join(classes), "@data"]
    for i in range(n):
        label = classes[i % len(classes)]
        values = rng.standard_normal((channels, length)) + (i % len(classes))
        lines.append(":".join(",".join(f"{v:.6f}" for v in c) for c in values) + ":" + label)
    return "\n".join(lines) + "\n"


@pytest.mark.slow
def test_time_series_ucr_reads_ts_files_and_prints_its_table(tmp_path):
    rng = np.random.default_rng(0)
    shapes = {"GunPoint": (150, 1, ["1", "2"]), "ItalyPowerDemand": (24, 1, ["1", "2"]),
              "JapaneseVowels": (25, 12, [str(k) for k in range(1, 10)])}
    for name, (length, channels, classes) in shapes.items():
        prefix = "JapaneseVowels_eq" if name == "JapaneseVowels" else name
        (tmp_path / name).mkdir()
        for split, n in (("TRAIN", 30), ("TEST", 20)):
            (tmp_path / name / f"{prefix}_{split}.ts").write_text(
                _ts_file(rng, n, length, channels, classes))
    path = os.pathsep.join(filter(None, [SKCONV_ROOT, os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, SKCONV_EXAMPLES_FAST="1", PYTHONPATH=path)
    result = subprocess.run([sys.executable, str(EXAMPLES / "time_series_ucr.py"),
                             str(tmp_path)], env=env, cwd=tmp_path, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [line.split() for line in result.stdout.splitlines()[1:]]
    assert [(r[0], r[1]) for r in rows] == [(name, model) for name in shapes
                                            for model in ("FCN", "ResNet", "MLPClassifier")]
    assert all(0 <= float(r[2]) <= 1 for r in rows)
    # the published figures beside ours
    assert [float(r[3]) for r in rows if r[1] == "FCN"] == [1.0, 0.963, 0.993]
    missing = subprocess.run([sys.executable, str(EXAMPLES / "time_series_ucr.py"),
                              str(tmp_path / "nowhere")], env=env, capture_output=True,
                             text=True, timeout=60)
    assert missing.returncode != 0 and "pip download --no-deps aeon" in missing.stderr
