"""Training and prediction on a machine that is busy with other work.

Starts ``--busy`` processes that each keep one core busy (a Python loop), then
times a LeNet-5 fit (``--epochs`` epochs, batch 64) and ``predict`` of 1000
images with 1 thread and with all threads, interleaved, and once more with
the machine idle. The question is whether more threads ever make skconv
slower: idle OpenMP threads that spin take the cores from the busy work, and
a static split of the batch waits for the thread that got the fewest cycles.

Usage::

    python benchmarks/bench_busy.py [--busy 1] [--epochs 2] [--repeats 3]
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


def measure(X, y, epochs, threads, repeats):
    fits, predicts = [], []
    with threadpool_limits(threads), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(repeats):
            est = ConvNetClassifier(**MODELS["lenet"][2], max_iter=epochs, batch_size=64,
                                    random_state=0)
            tic = time.perf_counter()
            est.fit(X, y)
            fits.append(time.perf_counter() - tic)
            tic = time.perf_counter()
            est.predict(X[:1000])
            predicts.append(time.perf_counter() - tic)
    return statistics.median(fits), statistics.median(predicts)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--busy", type=int, default=1, help="busy processes beside skconv")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n-images", type=int, default=2048)
    args = parser.parse_args()

    skconv.show_config()
    print(f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset: skconv asks for PASSIVE)')}")
    X, y = make_data(args.n_images)
    all_threads = skconv.effective_n_threads()
    print(f"\nLeNet-5, {args.n_images} images, {args.epochs} epochs; medians of {args.repeats}")
    print("| machine | threads | fit s | predict 1000 ms | fit time / 1 thread's |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for label, n_busy in (("idle", 0), (f"{args.busy} busy process(es)", args.busy)):
        stop = multiprocessing.Event()
        busy = [multiprocessing.Process(target=spin, args=(stop,)) for _ in range(n_busy)]
        for p in busy:
            p.start()
        try:
            one = measure(X, y, args.epochs, 1, args.repeats)
            many = measure(X, y, args.epochs, all_threads, args.repeats)
        finally:
            stop.set()
            for p in busy:
                p.join()
        for threads, (fit, pred) in ((1, one), (all_threads, many)):
            print(f"| {label} | {threads} | {fit:.2f} | {pred * 1e3:.0f} | {fit / one[0]:.2f} |")


if __name__ == "__main__":
    main()
