def openmp_enabled():
    """Whether the kernels were compiled with OpenMP."""
    return bool(SKCONV_OPENMP_ENABLED)


def effective_n_threads():
    """Threads a parallel kernel would use now.

    Read at every call, so that ``threadpoolctl.threadpool_limits`` (which sets
    the OpenMP runtime's maximum) and ``OMP_NUM_THREADS`` are honoured.
    """
    if not SKCONV_OPENMP_ENABLED:
        return 1
    return max(1, omp_get_max_threads())


def limit_this_thread(int n_threads):
    """Let the kernels called from this thread use at most ``n_threads``.

    OpenMP keeps the limit per thread: a worker thread that runs forward passes
    of its own (``_engine.run_passes``) sets 1, leaving the caller's limit (what
    ``threadpoolctl`` set) as it was.
    """
    omp_set_num_threads(max(1, n_threads))
