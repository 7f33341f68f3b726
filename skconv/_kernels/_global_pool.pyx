# Global average and max pooling: one value per (sample, channel) plane.
from cython cimport floating
from cython.parallel cimport prange
from libc.string cimport memset

from ._pool cimport _replaces
from ._reduce cimport fixed_order_sum


def global_avg_pool2d_forward(
    const floating[:, :, ::1] x,        # IN  (n, c, h * w)
    floating[:, ::1] y,                 # OUT (n, c)
    int n_threads,
):
    """y[n, c] = the plane's sum (fixed_order_sum) / (h * w)."""
    cdef Py_ssize_t n, c, hw = x.shape[2]
    with nogil:
        for n in prange(x.shape[0], schedule='static', num_threads=n_threads):
            for c in range(x.shape[1]):
                y[n, c] = fixed_order_sum(&x[n, c, 0], hw) / hw


def global_avg_pool2d_backward(
    const floating[:, ::1] dy,          # IN  (n, c)
    floating[:, :, ::1] dx,             # OUT (n, c, h * w)
    int n_threads,
):
    """dx[n, c, :] = dy[n, c] / (h * w)."""
    cdef Py_ssize_t n, c, k, hw = dx.shape[2]
    cdef floating v
    with nogil:
        for n in prange(dx.shape[0], schedule='static', num_threads=n_threads):
            for c in range(dx.shape[1]):
                v = dy[n, c] / hw
                for k in range(hw):
                    dx[n, c, k] = v


def global_max_pool2d_forward(
    const floating[:, :, ::1] x,        # IN  (n, c, h * w)
    floating[:, ::1] y,                 # OUT (n, c)
    Py_ssize_t[:, ::1] argmax,          # OUT (n, c) flat index in the plane, or (0, 0)
    int n_threads,
):
    """y[n, c] = the plane's maximum: the first on ties, the last NaN if any
    (max_pool2d's rule, _pool._replaces); argmax its index unless empty."""
    cdef bint need_argmax = argmax.shape[0] > 0
    cdef Py_ssize_t n, c, k, idx, hw = x.shape[2]
    cdef const floating *plane
    cdef floating v, best
    cdef bint wins
    with nogil:
        for n in prange(x.shape[0], schedule='static', num_threads=n_threads):
            for c in range(x.shape[1]):
                plane = &x[n, c, 0]
                best = plane[0]
                idx = 0
                # branch-free, as _pool's windows: a branch per element would
                # be mispredicted about half the time on real data
                for k in range(1, hw):
                    v = plane[k]
                    wins = _replaces(best, v)
                    idx = idx + wins * (k - idx)
                    best = v if wins else best
                y[n, c] = best
                if need_argmax:
                    argmax[n, c] = idx


def global_max_pool2d_backward(
    const floating[:, ::1] dy,          # IN  (n, c)
    const Py_ssize_t[:, ::1] argmax,    # IN  (n, c), each in [0, h * w)
    floating[:, :, ::1] dx,             # OUT (n, c, h * w)
    int n_threads,
):
    """dx = 0 but for dx[n, c, argmax[n, c]] = dy[n, c]."""
    cdef Py_ssize_t n, c, hw = dx.shape[2]
    with nogil:
        for n in prange(dx.shape[0], schedule='static', num_threads=n_threads):
            memset(&dx[n, 0, 0], 0, dx.shape[1] * hw * sizeof(floating))
            for c in range(dx.shape[1]):
                dx[n, c, argmax[n, c]] = dy[n, c]
