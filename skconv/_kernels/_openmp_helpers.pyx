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
