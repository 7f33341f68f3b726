"""Training and prediction on a machine that is busy with other work.

Starts ``--busy`` processes that each keep one core busy (a Python loop), then
times a fit of ``--model`` (bench_train's LeNet-5 or wide; ``--epochs`` epochs,
batch 64) and ``predict`` of 1000 images with 1 thread and with all threads,
taking turns, and once more with the machine idle. The question is whether
more threads ever make skconv slower: idle OpenMP threads that spin take the
cores from the busy work, a static split of the batch waits for the thread
that got the fewest cycles, and waking a sleeping thread for a small step
costs more than the step.

Usage::

    python benchmarks/bench_busy.py [--model lenet] [--busy 1] [--epochs 2] [--repeats 7]
"""

import argparse
import multiprocessing
import os
import statistics
import time
import warnings

from threadpoolctl import threadpool_limits

import skconv
from bench_train import MODELS, make_data
from skconv import ConvNetClassifier


def spin(stop):
    while not stop.is_set():
        sum(range(10_000))


def measure(model, X, y, epochs, thread_counts, repeats):
    """``{threads: (median fit s, median predict s)}``, the thread counts taking
    turns in each repeat, so that a slow minute of a shared machine slows all alike."""
    fits = {threads: [] for threads in thread_counts}
    predicts = {threads: [] for threads in thread_counts}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(repeats):
            for threads in thread_counts:
                with threadpool_limits(threads):
                    est = ConvNetClassifier(**MODELS[model][2], max_iter=epochs, batch_size=64,
                                            random_state=0)
                    tic = time.perf_counter()
                    est.fit(X, y)
                    fits[threads].append(time.perf_counter() - tic)
                    tic = time.perf_counter()
                    est.predict(X[:1000])
                    predicts[threads].append(time.perf_counter() - tic)
    return {threads: (statistics.median(fits[threads]), statistics.median(predicts[threads]))
            for threads in thread_counts}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="lenet")
    parser.add_argument("--busy", type=int, default=1, help="busy processes beside skconv")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--n-images", type=int, default=2048)
    args = parser.parse_args()

    skconv.show_config()
    print(f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset: skconv asks for PASSIVE)')}")
    side, channels, _ = MODELS[args.model]
    X, y = make_data(args.n_images, side, channels)
    all_threads = skconv.effective_n_threads()
    print(f"\n{args.model}, {args.n_images} images, {args.epochs} epochs; medians of {args.repeats}")
    print("| machine | threads | fit s | predict 1000 ms | fit time / 1 thread's |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for label, n_busy in (("idle", 0), (f"{args.busy} busy process(es)", args.busy)):
        stop = multiprocessing.Event()
        busy = [multiprocessing.Process(target=spin, args=(stop,)) for _ in range(n_busy)]
        for p in busy:
            p.start()
        try:
            times = measure(args.model, X, y, args.epochs, (1, all_threads), args.repeats)
        finally:
            stop.set()
            for p in busy:
                p.join()
        for threads in (1, all_threads):
            fit, pred = times[threads]
            print(f"| {label} | {threads} | {fit:.2f} | {pred * 1e3:.0f} | "
                  f"{fit / times[1][0]:.2f} |")


if __name__ == "__main__":
    main()
