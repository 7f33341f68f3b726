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


cdef inline Py_ssize_t _plane_argmax(const floating *plane, Py_ssize_t hw) noexcept nogil:
    """The first maximum's position, or the last NaN's (_pool._replaces's rule).

    Two passes, each simple enough to vectorise: the maximum M in eight lanes
    (``v > m ? v : m`` is a vector max instruction's own rule) and whether
    there is a NaN; then the last NaN, or else the first v == M (a -0.0 tied
    with a +0.0 included), which is where one scan with _replaces stops
    changing its answer. The maximum of any lanes is M: the answer does not
    depend on the lanes.
    """
    cdef floating lanes[8]
    cdef floating v, m
    cdef bint nan = False
    cdef Py_ssize_t k, lane, n8 = hw - hw % 8
    m = plane[0]
    for lane in range(8):
        lanes[lane] = m
    for k in range(0, n8, 8):
        for lane in range(8):
            v = plane[k + lane]
            nan = nan | (v != v)
            lanes[lane] = v if v > lanes[lane] else lanes[lane]
    for k in range(n8, hw):
        v = plane[k]
        nan = nan | (v != v)
        m = v if v > m else m
    for lane in range(8):
        m = lanes[lane] if lanes[lane] > m else m
    if nan:
        k = hw - 1
        while plane[k] == plane[k]:
            k -= 1
        return k
    k = 0
    while plane[k] != m:
        k += 1
    return k


def global_max_pool2d_forward(
    const floating[:, :, ::1] x,        # IN  (n, c, h * w)
    floating[:, ::1] y,                 # OUT (n, c)
    int n_threads,
    *,
    argmax=None,                        # OUT intp (n, c): flat index in the plane, or None
):
    """y[n, c] = the plane's maximum: the first on ties, the last NaN if any
    (max_pool2d's rule, _pool._replaces); argmax its index unless None."""
    cdef Py_ssize_t[:, ::1] argmax_v
    cdef bint need_argmax = argmax is not None
    if need_argmax:
        argmax_v = argmax
    cdef Py_ssize_t n, c, idx, hw = x.shape[2]
    with nogil:
        for n in prange(x.shape[0], schedule='static', num_threads=n_threads):
            for c in range(x.shape[1]):
                idx = _plane_argmax(&x[n, c, 0], hw)
                y[n, c] = x[n, c, idx]
                if need_argmax:
                    argmax_v[n, c] = idx


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
