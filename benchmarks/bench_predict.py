"""Serving speed: skconv, its ONNX export in onnxruntime, and torch, same run, same threads.

Two models on 28x28 single-channel images (scikit-learn's digits upsampled,
as in ``bench_train.py``), each trained for one epoch (the weights do not
change the speed, but trained weights make the outputs worth comparing):

- ``lenet``: LeNet-5, ``ConvNetClassifier(conv_layers=((6, 5), (16, 5)),
  padding='valid', hidden_layer_sizes=(120, 84))``;
- ``default``: ``ConvNetClassifier()``: two 3x3 'same' conv blocks of 32 and 64
  filters with 2x2 max pooling, a dense layer of 128.

Four ways to serve each, the same weights in all of them:

- ``skconv``: the fitted estimator's ``predict`` / ``predict_proba`` (input
  validation included, as a user calls them);
- ``ort``: the estimator exported with ``skl2onnx.to_onnx`` (``import
  skconv.onnx``), run by onnxruntime; its input is the (n, 28, 28) array as the
  estimator takes it;
- ``torch``: the equivalent ``torch.nn.Sequential`` (built layer by layer from
  the estimator's network, weights copied), eval mode, ``torch.inference_mode``;
  its input is ``torch.from_numpy(X).unsqueeze(1)`` (no copy);
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

    python benchmarks/bench_predict.py [--threads 1 2] [--models lenet default]
                                       [--rounds 15] [--latency-calls 200]
"""

import argparse
import io
import platform
import statistics
import subprocess
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
from skconv._layers import Activation, AvgPool2D, Conv2D, Dense, Flatten, MaxPool2D
from skconv._normalization import BatchNorm1d, BatchNorm2d, Dropout

from bench_train import make_data  # the same images as the training benchmark

BATCH = 1000
SETTLE_S = 0.05  # pause before each timed batch and each way's hot calls
MODELS = {
    "lenet": dict(conv_layers=((6, 5), (16, 5)), padding="valid", hidden_layer_sizes=(120, 84)),
    "default": {},
}


def torch_sequential(clf, torch):
    """The estimator's inference network as ``torch.nn.Sequential``, its weights copied."""
    nn = torch.nn
    modules = []
    t = lambda a: torch.from_numpy(np.array(a, dtype=np.float32))  # noqa: E731
    for layer in clf._network.layers:
        if isinstance(layer, Conv2D):
            (ph, pw), (eh, ew) = layer.pad, layer.extra_pad
            if eh or ew:
                modules.append(nn.ZeroPad2d((pw, pw + ew, ph, ph + eh)))
                ph = pw = 0
            conv = nn.Conv2d(layer.input_shape[0], layer.filters, layer.kernel_size,
                             stride=layer.stride, padding=(ph, pw), dilation=layer.dilation,
                             bias=layer.bias)
            conv.weight.data = t(layer._w)
            if layer.bias:
                conv.bias.data = t(layer._b)
            modules.append(conv)
        elif isinstance(layer, (BatchNorm1d, BatchNorm2d)):
            cls = nn.BatchNorm2d if isinstance(layer, BatchNorm2d) else nn.BatchNorm1d
            bn = cls(len(layer._scale), eps=layer.eps)
            bn.weight.data, bn.bias.data = t(layer._scale), t(layer._shift)
            bn.running_mean.data, bn.running_var.data = (t(layer.running_mean),
                                                         t(layer.running_var))
            modules.append(bn)
        elif isinstance(layer, MaxPool2D):
            modules.append(nn.MaxPool2d(layer.window))
        elif isinstance(layer, AvgPool2D):
            modules.append(nn.AvgPool2d(layer.window))
        elif isinstance(layer, Activation):
            modules.append({"relu": nn.ReLU, "tanh": nn.Tanh, "logistic": nn.Sigmoid,
                            "identity": nn.Identity}[layer.kind]())
        elif isinstance(layer, Flatten):
            modules.append(nn.Flatten())
        elif isinstance(layer, Dense):
            linear = nn.Linear(layer.input_shape[0], layer.units, bias=layer.bias)
            linear.weight.data = t(layer._w.T)
            if layer.bias:
                linear.bias.data = t(layer._b)
            modules.append(linear)
        elif not isinstance(layer, Dropout):
            raise TypeError(f"no torch equivalent of {type(layer).__name__}")
    return nn.Sequential(*modules).eval()


def ort_session(model_bytes, threads):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def torch_onnx_bytes(net, torch):
    """The torch model exported by ``torch.onnx.export`` (dynamic batch), as bytes."""
    buffer = io.BytesIO()
    example = torch.zeros(1, 1, 28, 28)
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
    net = torch_sequential(clf, torch)
    sess = ort_session(skl2onnx.to_onnx(clf, X[:1], options={"zipmap": False})
                       .SerializeToString(), threads)
    tsess = ort_session(torch_onnx_bytes(net, torch), threads)
    name, tname = sess.get_inputs()[0].name, tsess.get_inputs()[0].name
    batch, row = X[:BATCH], X[:1]

    def torch_predict(x):
        with torch.inference_mode():
            return net(torch.from_numpy(x).unsqueeze(1)).argmax(1).numpy()

    def torch_proba(x):
        with torch.inference_mode():
            return torch.softmax(net(torch.from_numpy(x).unsqueeze(1)), 1).numpy()

    def tort_proba(x):
        logits = tsess.run(None, {tname: x[:, None]})[0]
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    ways = {
        "skconv": (lambda: clf.predict(batch), lambda: clf.predict_proba(row)),
        "ort": (lambda: sess.run(["label"], {name: batch}),
                lambda: sess.run(["probabilities"], {name: row})),
        "torch": (lambda: torch_predict(batch), lambda: torch_proba(row)),
        "ort(torch)": (lambda: tsess.run(None, {tname: batch[:, None]})[0].argmax(1),
                       lambda: tort_proba(row)),
    }
    # the four agree before they are timed
    expected = clf.predict_proba(batch)
    diffs = {
        "ort": np.abs(sess.run(["probabilities"], {name: batch})[0] - expected).max(),
        "torch": np.abs(torch_proba(batch) - expected).max(),
        "ort(torch)": np.abs(tort_proba(batch) - expected).max(),
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


def cpu_name():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines()
                    if line.startswith("Model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


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
    X, y = make_data(2 * BATCH)
    ways = ["skconv", "ort", "torch", "ort(torch)"]
    print(f"\npredict img/s at batch {BATCH} and one-row predict_proba latency (us), "
          f"medians; ratio = how many times faster skconv is (below 1: slower)")
    header = (f"{'model':>7} | {'thr':>3} | " + " ".join(f"{w:>10}" for w in ways)
              + f" | {'vs ort':>6} {'vs torch':>8} | "
              + " ".join(f"{w + ' us':>13}" for w in ways)
              + f" | {'vs ort':>6} {'vs torch':>8} | "
              + " ".join(f"{w + ' hot us':>17}" for w in ways) + f" | {'max |dp|':>8}")
    print(header)
    print("-" * len(header))
    for model in args.models:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf = ConvNetClassifier(**MODELS[model], max_iter=1, random_state=0).fit(X, y)
        for threads in args.threads:
            tput, lat, hot, diff = bench(clf, X, threads, args.rounds, args.latency_calls)
            print(f"{model:>7} | {threads:>3} | " + " ".join(f"{tput[w]:>10.0f}" for w in ways)
                  + f" | {tput['skconv'] / tput['ort']:>6.2f} "
                  f"{tput['skconv'] / tput['torch']:>8.2f} | "
                  + " ".join(f"{lat[w]:>13.1f}" for w in ways)
                  + f" | {lat['ort'] / lat['skconv']:>6.2f} "
                  f"{lat['torch'] / lat['skconv']:>8.2f} | "
                  + " ".join(f"{hot[w]:>17.1f}" for w in ways) + f" | {diff:>8.1e}", flush=True)


if __name__ == "__main__":
    main()
