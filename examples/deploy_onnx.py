"""Export a whole Pipeline (scaler + ConvNetClassifier) to ONNX and serve it with onnxruntime
==========================================================================================

What it shows: ``import skconv.onnx`` registers skconv's converter with
skl2onnx, so ``skl2onnx.to_onnx`` turns the fitted pipeline, preprocessing
included, into one ONNX graph. A fresh Python interpreter (started with
``subprocess``, as a web service or a batch job would be) that imports
neither skconv nor scikit-learn, only onnxruntime and numpy, loads that file
and predicts: the same labels (strings, as trained) and the same
probabilities to float32 rounding. The same file serves from C++, C#, Java
or a browser through their onnxruntime bindings.

    pip install "skconv[onnx]" onnxruntime
    python examples/deploy_onnx.py [OUTPUT_DIR]

The model is written to OUTPUT_DIR/digits_convnet.onnx and kept there; with no
OUTPUT_DIR it goes to a temporary folder that is removed at the end. With
``SKCONV_EXAMPLES_FAST=1`` training is shortened to a smoke test.
"""

import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import skl2onnx
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

import skconv.onnx  # noqa: F401  (registers the ConvNetClassifier converter)
from skconv import ConvNetClassifier

FAST = os.environ.get("SKCONV_EXAMPLES_FAST") == "1"
NAMES = np.array(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight",
                  "nine"])

# What the serving process runs: onnxruntime and numpy only, no skconv, no scikit-learn.
SERVE = """
import sys
import numpy as np
import onnxruntime as ort

model_path, x_path, out_path = sys.argv[1:]
sess = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
X = np.load(x_path)
labels, proba = sess.run(None, {sess.get_inputs()[0].name: X})
np.savez(out_path, labels=labels, proba=proba)
loaded = sorted(m for m in ("skconv", "sklearn") if m in sys.modules)
print(f"  [serving process {__import__('os').getpid()}] onnxruntime {ort.__version__}, "
      f"predicted {len(X)} images; skconv/sklearn imported: {loaded or 'none'}")
"""


def main(out_dir):
    X, y = load_digits(return_X_y=True)
    X = X.astype(np.float32)  # raw 0..16 intensities: the scaler is part of the model
    y = NAMES[y]
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=0
    )
    pipe = make_pipeline(
        MinMaxScaler(),
        ConvNetClassifier(conv_layers=(16, 32), hidden_layer_sizes=(64,),
                          learning_rate_init=3e-3, max_iter=2 if FAST else 15,
                          random_state=0),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter is a time budget
        pipe.fit(X_train, y_train)
    labels = pipe.predict(X_test)
    proba = pipe.predict_proba(X_test)
    print(f"trained in process {os.getpid()}: test accuracy {np.mean(labels == y_test):.4f}")

    # zipmap=False: probabilities as an (n, n_classes) array, not a list of dicts
    onx = skl2onnx.to_onnx(pipe, X_test[:1], options={"zipmap": False})
    model_path = out_dir / "digits_convnet.onnx"
    model_path.write_bytes(onx.SerializeToString())
    ops = sorted({node.op_type for node in onx.graph.node})
    print(f"saved {model_path.name}: {model_path.stat().st_size / 1024:.1f} KiB, "
          f"opset {onx.opset_import[0].version}, ops: {', '.join(ops)}")

    x_path, out_path = out_dir / "X_test.npy", out_dir / "served.npz"
    np.save(x_path, X_test)
    subprocess.run([sys.executable, "-c", SERVE, str(model_path), str(x_path), str(out_path)],
                   check=True)
    served = np.load(out_path, allow_pickle=True)  # string labels are an object array
    x_path.unlink()
    out_path.unlink()

    same_labels = np.array_equal(served["labels"], labels)
    diff = np.abs(served["proba"] - proba).max()
    print(f"labels identical: {same_labels}; probabilities match to float32 rounding: "
          f"{diff < 1e-5} (largest difference {diff:.1e})")
    if not (same_labels and diff < 1e-5):
        sys.exit("the ONNX model does not predict like the trained pipeline")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        out_dir = Path(sys.argv[1])
        out_dir.mkdir(parents=True, exist_ok=True)
        main(out_dir)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp))
