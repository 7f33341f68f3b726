"""Serving speed: skconv, its ONNX export in onnxruntime, and torch, same run, same threads.

Three models on scikit-learn's digits upsampled (as in ``bench_train.py``),
each trained for one epoch (the weights do not change the speed, but trained
weights make the outputs worth comparing):

- ``lenet``: LeNet-5, ``ConvNetClassifier(**skconv.architectures.lenet5())``,
  on 28x28 single-channel images;
- ``default``: ``ConvNetClassifier()``: two 3x3 'same' conv blocks of 32 and 64
  filters with 2x2 max pooling, a dense layer of 128, on 28x28 images;
- ``resnet20``: ``ConvNetClassifier(**skconv.architectures.resnet(20))`` on
  32x32x3 images (batch norm folded into the convolutions by skconv; onnxruntime
  fuses it too);
- ``fcn``: Wang et al. 2017's FCN (``bench_train.fcn()``) on univariate series
  of 512 steps (``bench_train.make_series``); its torch module is the network
  of series (``nn.Conv1d``, ``nn.BatchNorm1d``, ...) on (n, 1, 512).

Four ways to serve each, the same weights in all of them:

- ``skconv``: the fitted estimator's ``predict`` / ``predict_proba`` (input
  validation included, as a user calls them);
- ``ort``: the estimator exported with ``skl2onnx.to_onnx`` (``import
  skconv.onnx``), run by onnxruntime; its input is the (n, 28, 28) array as the
  estimator takes it;
- ``torch``: the equivalent torch module (built node by node from the
  estimator's network by ``benchmarks/torch_graph.py``, weights copied), eval
  mode, ``torch.inference_mode``; its input is the images already in NCHW
  (``unsqueeze(1)`` of the one-channel ones, no copy);
- ``ort(torch)``: that torch model exported with ``torch.onnx.export``, run by
  onnxruntime: a second reference for what onnxruntime does with the graph
  torch writes.

Measured: predict throughput (images/s) at a batch of 1000 (labels only), and
one-row ``predict_proba`` latency (microseconds), medians over rounds in
which the four take turns (so load from other processes hits all alike);
each timed batch starts after a 50 ms pause, because onnxruntime's and
torch's idle threads spin for a while after a run and on 2 cores would take
the cores from whichever way runs next.
Those one-row calls follow each other's batches, so their caches are cold;
``hot us`` is the median of ``--latency-calls`` one-row calls in a row, a
server answering one request after another.
Threads: ``threadpoolctl.threadpool_limits`` for skconv,
``torch.set_num_threads`` for torch, ``SessionOptions.intra_op_num_threads``
for onnxruntime (one session per thread count). Ratios are skconv / other for
throughput and other / skconv for latency: above 1, skconv is faster.

Usage::

    python benchmarks/bench_predict.py [--threads 1 2] [--models lenet default resnet20 fcn]
                                       [--rounds 15] [--latency-calls 200]
"""

import argparse
import io
import statistics
import time
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import skl2onnx
import sklearn
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

import skconv
import skconv.onnx  # noqa: F401  (registers the converter)
from skconv import ConvNetClassifier
from skconv.architectures import lenet5, resnet

from bench_train import fcn, make_data, make_series  # the training benchmark's inputs
from machine import cpu_name
from torch_graph import torch_module

BATCH = 1000
SETTLE_S = 0.05  # pause before each timed batch and each way's hot calls
MODELS = {
    # name: (image side, channels, skconv parameters)
    "lenet": (28, 1, lenet5()),
    "default": (28, 1, {}),
    "resnet20": (32, 3, resnet(20)),
    "fcn": (None, None, fcn()),  # series
}


def nchw(x):
    """The benchmark's images, (n, h, w) or channels-last, as NCHW; series (n, length)
    as (n, 1, length)."""
    return x[:, None] if x.ndim in (2, 3) else np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def ort_session(model_bytes, threads):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def torch_onnx_bytes(net, torch, shape):
    """The torch model exported by ``torch.onnx.export`` (dynamic batch), as bytes."""
    buffer = io.BytesIO()
    example = torch.zeros((1,) + shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (example,), buffer, input_names=["x"], output_names=["logits"],
                          dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}}, dynamo=False)
    return buffer.getvalue()


def timed(fn):
    tic = time.perf_counter()
    fn()
    return time.perf_counter() - tic


def bench(clf, X, threads, rounds, latency_calls):
    """Medians of predict-at-BATCH seconds and one-row predict_proba seconds, per way."""
    import torch

    torch.set_num_threads(threads)
    net = torch_module(clf._network, series=X.ndim == 2).eval()
    sess = ort_session(skl2onnx.to_onnx(clf, X[:1], options={"zipmap": False})
                       .SerializeToString(), threads)
    tsess = ort_session(torch_onnx_bytes(net, torch, nchw(X[:1]).shape[1:]), threads)
    name, tname = sess.get_inputs()[0].name, tsess.get_inputs()[0].name
    batch, row = X[:BATCH], X[:1]
    # torch and its export take NCHW images, made before the timing
    tbatch, trow = nchw(batch), nchw(row)

    def torch_predict(x):
        with torch.inference_mode():
            return net(torch.from_numpy(x)).argmax(1).numpy()

    def torch_proba(x):
        with torch.inference_mode():
            return torch.softmax(net(torch.from_numpy(x)), 1).numpy()

    def tort_proba(x):
        logits = tsess.run(None, {tname: x})[0]
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    ways = {
        "skconv": (lambda: clf.predict(batch), lambda: clf.predict_proba(row)),
        "ort": (lambda: sess.run(["label"], {name: batch}),
                lambda: sess.run(["probabilities"], {name: row})),
        "torch": (lambda: torch_predict(tbatch), lambda: torch_proba(trow)),
        "ort(torch)": (lambda: tsess.run(None, {tname: tbatch})[0].argmax(1),
                       lambda: tort_proba(trow)),
    }
    # the four agree before they are timed
    expected = clf.predict_proba(batch)
    diffs = {
        "ort": np.abs(sess.run(["probabilities"], {name: batch})[0] - expected).max(),
        "torch": np.abs(torch_proba(tbatch) - expected).max(),
        "ort(torch)": np.abs(tort_proba(tbatch) - expected).max(),
    }
    for what, diff in diffs.items():
        assert diff < 1e-4, f"{what} differs from predict_proba by {diff:.1e}"

    throughput = {w: [] for w in ways}
    latency = {w: [] for w in ways}
    with threadpool_limits(limits=threads):
        for w, (pred, proba) in ways.items():  # warm-up
            pred(), proba()
        for _ in range(rounds):
            for w, (pred, proba) in ways.items():
                # onnxruntime's and torch's idle threads spin for a while after a
                # run: on 2 cores they would take the cores from the next way
                time.sleep(SETTLE_S)
                throughput[w].append(BATCH / timed(pred))
                calls = [timed(proba) for _ in range(latency_calls // rounds or 1)]
                latency[w].extend(calls)
        hot = {}
        for w, (_, proba) in ways.items():
            time.sleep(SETTLE_S)
            hot[w] = statistics.median(timed(proba) for _ in range(latency_calls)) * 1e6
    return ({w: statistics.median(v) for w, v in throughput.items()},
            {w: statistics.median(v) * 1e6 for w, v in latency.items()},
            hot, max(diffs.values()))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--latency-calls", type=int, default=200,
                        help="one-row calls per way, spread over the rounds")
    args = parser.parse_args()

    import torch

    print(f"CPU: {cpu_name()}")
    print(f"skconv {skconv.__version__}, onnxruntime {ort.__version__}, skl2onnx "
          f"{skl2onnx.__version__}, onnx {onnx.__version__}, torch {torch.__version__}, "
          f"scikit-learn {sklearn.__version__}, numpy {np.__version__}")
    ways = ["skconv", "ort", "torch", "ort(torch)"]
    print(f"\npredict img/s at batch {BATCH} and one-row predict_proba latency (us), "
          f"medians; ratio = how many times faster skconv is (below 1: slower)")
    header = (f"{'model':>8} | {'thr':>3} | " + " ".join(f"{w:>10}" for w in ways)
              + f" | {'vs ort':>6} {'vs torch':>8} | "
              + " ".join(f"{w + ' us':>13}" for w in ways)
              + f" | {'vs ort':>6} {'vs torch':>8} | "
              + " ".join(f"{w + ' hot us':>17}" for w in ways) + f" | {'max |dp|':>8}")
    print(header)
    print("-" * len(header))
    for model in args.models:
        side, channels, params = MODELS[model]
        X, y = make_series(2 * BATCH) if side is None else make_data(2 * BATCH, side, channels)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf = ConvNetClassifier(**params, max_iter=1, random_state=0).fit(X, y)
        for threads in args.threads:
            tput, lat, hot, diff = bench(clf, X, threads, args.rounds, args.latency_calls)
            print(f"{model:>8} | {threads:>3} | " + " ".join(f"{tput[w]:>10.0f}" for w in ways)
                  + f" | {tput['skconv'] / tput['ort']:>6.2f} "
                  f"{tput['skconv'] / tput['torch']:>8.2f} | "
                  + " ".join(f"{lat[w]:>13.1f}" for w in ways)
                  + f" | {lat['ort'] / lat['skconv']:>6.2f} "
                  f"{lat['torch'] / lat['skconv']:>8.2f} | "
                  + " ".join(f"{hot[w]:>17.1f}" for w in ways) + f" | {diff:>8.1e}", flush=True)


if __name__ == "__main__":
    main()
