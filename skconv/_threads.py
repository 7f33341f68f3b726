"""The one switch that keeps BLAS on one thread while skconv computes."""

from contextlib import nullcontext

from threadpoolctl import ThreadpoolController

_blas_controller = None


def blas_single_threaded():
    """Context in which BLAS (numpy's and scipy's) runs on one thread.

    skconv parallelises over the batch with its own OpenMP threads. BLAS
    threads next to them oversubscribe the cores (on 2 cores, BLAS threads
    spinning between batches made a LeNet-5 epoch ~5x slower), and a threaded
    GEMM's result bits depend on its thread count, which would break the
    kernels' promise of the same bits for any number of threads. Entering is
    nearly free when BLAS is already limited (e.g. inside a fit).
    """
    global _blas_controller
    if _blas_controller is None:
        _blas_controller = ThreadpoolController().select(user_api="blas")
    if all(lib.num_threads == 1 for lib in _blas_controller.lib_controllers):
        return nullcontext()
    return _blas_controller.limit(limits=1)
