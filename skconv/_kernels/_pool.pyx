from cython cimport floating
from libc.string cimport memset
from cython.parallel cimport prange

from ._gemm cimport simd_path
from ._im2col cimport Geometry

# Pooling ignores Geometry.dh / dw (no dilation). Windows always overlap the
# input (skconv.ops keeps padding <= kernel // 2), so padding never wins a max.


def max_pool2d_forward(
    const floating[:, :, :, ::1] x,     # IN  (n, c, h, w)
    floating[:, :, :, ::1] y,           # OUT (n, c, oh, ow)
    Geometry g,
    int n_threads,
    *,
    argmax=None,                        # OUT intp (n, c, oh, ow): flat index into x[n, c], or None
    bint relu=False,
):
    """y = the maximum of each window; argmax its flat index, unless argmax is None.

    Inference needs no argmax, and without it the 2x2 kernel has no integer
    work left and vectorises. ``relu`` then applies max(y, 0) (NaN stays, as
    in np.maximum), the activation that follows pooling in skconv's blocks:
    one call less for a one-row prediction.
    """
    cdef Py_ssize_t[:, :, :, ::1] argmax_v
    cdef bint need_argmax = argmax is not None
    cdef Py_ssize_t i, size = y.shape[0] * y.shape[1] * y.shape[2] * y.shape[3]
    cdef floating *out = &y[0, 0, 0, 0]
    if need_argmax:
        argmax_v = argmax
    if g.kh == 2 and g.kw == 2 and g.sh == 2 and g.sw == 2 and g.ph == 0 and g.pw == 0:
        if need_argmax:
            _max_pool_2x2_argmax(x, y, argmax_v, g, n_threads)
        else:
            _max_pool_2x2(x, y, g, n_threads)
    else:
        _max_pool_general(x, y, &argmax_v[0, 0, 0, 0] if need_argmax else NULL, g, n_threads)
    if relu:
        with nogil:
            for i in range(size):
                out[i] = 0 if out[i] < 0 else out[i]


cdef void _max_pool_general(
    const floating[:, :, :, ::1] x,     # IN  (n, c, h, w)
    floating[:, :, :, ::1] y,           # OUT (n, c, oh, ow)
    Py_ssize_t *argmax,                 # OUT (n, c, oh, ow), or NULL
    Geometry g,
    int n_threads,
) noexcept:
    # One branch-free pass per window: the maximum as a select and its index
    # updated arithmetically. An 'if' on each tap is ~3x slower: on real data
    # it is mispredicted about half the time.
    cdef Py_ssize_t n, c, i, j, r, q, r0, q0, r_stop, q_stop, idx
    cdef floating v, best
    cdef bint wins
    with nogil:
        for n in prange(x.shape[0], schedule='dynamic', num_threads=n_threads):
            for c in range(g.c):
                for i in range(g.oh):
                    # the window clipped to the input: padding never wins, as if -inf
                    r0 = max(i * g.sh - g.ph, 0)
                    r_stop = min(i * g.sh - g.ph + g.kh, g.h)
                    for j in range(g.ow):
                        q0 = max(j * g.sw - g.pw, 0)
                        q_stop = min(j * g.sw - g.pw + g.kw, g.w)
                        best = x[n, c, r0, q0]
                        idx = r0 * g.w + q0
                        for r in range(r0, r_stop):
                            for q in range(q0, q_stop):
                                v = x[n, c, r, q]
                                wins = _replaces(best, v)
                                idx = idx + wins * (r * g.w + q - idx)
                                best = v if wins else best
                        y[n, c, i, j] = best
                        if argmax != NULL:
                            argmax[((n * g.c + c) * g.oh + i) * g.ow + j] = idx


cdef void _max_pool_2x2(
    const floating[:, :, :, ::1] x,     # IN  (n, c, h, w)
    floating[:, :, :, ::1] y,           # OUT (n, c, oh, ow)
    Geometry g,
    int n_threads,
) noexcept:
    # The 2x2 window of stride 2 of nearly every network, values only
    cdef Py_ssize_t n, c, i
    with nogil:
        for n in prange(x.shape[0], schedule='dynamic', num_threads=n_threads):
            for c in range(g.c):
                for i in range(g.oh):
                    max_pool_2x2_row_values(&x[n, c, 2 * i, 0], &x[n, c, 2 * i + 1, 0], g.ow,
                                            &y[n, c, i, 0])


cdef void _max_pool_2x2_argmax(
    const floating[:, :, :, ::1] x,     # IN  (n, c, h, w)
    floating[:, :, :, ::1] y,           # OUT (n, c, oh, ow)
    Py_ssize_t[:, :, :, ::1] argmax,    # OUT (n, c, oh, ow)
    Geometry g,
    int n_threads,
) noexcept:
    # The same windows carrying the winner's index
    cdef Py_ssize_t n, c, i, w = g.w
    cdef bint vector = simd_path() > 0
    cdef const floating *plane
    with nogil:
        for n in prange(x.shape[0], schedule='dynamic', num_threads=n_threads):
            for c in range(g.c):
                plane = &x[n, c, 0, 0]
                for i in range(g.oh):
                    max_pool_2x2_row(plane + 2 * i * w, plane + (2 * i + 1) * w, g.ow, 2 * i * w, w,
                                     NULL, False, &y[n, c, i, 0], &argmax[n, c, i, 0], vector)


def max_pool2d_backward(
    const floating[:, :, ::1] dy,           # IN  (n, c, oh * ow)
    const Py_ssize_t[:, :, ::1] argmax,     # IN  (n, c, oh * ow), each in [0, h * w)
    floating[:, :, ::1] dx,                 # OUT (n, c, h * w)
    int n_threads,
    *,
    y=None,                                 # IN  (n, c, oh * ow) of dy's dtype after a ReLU, or None
):
    """dx = each dy added at its window's argmax; with ``y``, the outputs of
    pooling and the ReLU after it, only where y > 0 (the ReLU's gradient)."""
    cdef Py_ssize_t n, c, p
    cdef const floating[:, :, ::1] y_v
    cdef bint relu = y is not None
    cdef floating d
    if relu:
        y_v = y
    with nogil:
        for n in prange(dy.shape[0], schedule='dynamic', num_threads=n_threads):
            memset(&dx[n, 0, 0], 0, dx.shape[1] * dx.shape[2] * sizeof(floating))
            for c in range(dy.shape[1]):
                for p in range(dy.shape[2]):
                    d = dy[n, c, p]
                    if relu:
                        # adding 0 leaves dx as it was: it starts at +0.0 and a
                        # sum from there is never -0.0
                        d = d if y_v[n, c, p] > 0 else 0
                    dx[n, c, argmax[n, c, p]] += d


def max_pool2d_2x2_backward(
    const floating[:, :, ::1] dy,           # IN  (n, c, oh * ow)
    const Py_ssize_t[:, :, ::1] argmax,     # IN  (n, c, oh * ow), each in its window
    floating[:, :, ::1] dx,                 # OUT (n, c, h * w)
    Geometry g,                             # 2x2 windows of stride 2, no padding
    int n_threads,
    *,
    y=None,                                 # IN  (n, c, oh * ow) of dy's dtype after a ReLU, or None
):
    """max_pool2d_backward's dx for windows that tile the input: each written
    whole, with no zeroing first and no scattered adds (max_pool_2x2_backward_plane).

    The values of the adds into zeros: 0 + d is d, except that -0.0 becomes
    +0.0, so d + 0 is what a window's maximum gets.
    """
    cdef Py_ssize_t n, c
    cdef const floating[:, :, ::1] y_v
    cdef bint relu = y is not None, vector = simd_path() > 0
    if relu:
        y_v = y
    with nogil:
        for n in prange(dy.shape[0], schedule='dynamic', num_threads=n_threads):
            for c in range(g.c):
                max_pool_2x2_backward_plane(&dy[n, c, 0], &argmax[n, c, 0],
                                            &y_v[n, c, 0] if relu else NULL, g.oh, g.ow, g.h, g.w,
                                            &dx[n, c, 0], vector)


def avg_pool2d_forward(
    const floating[:, :, :, ::1] x,     # IN  (n, c, h, w)
    floating[:, :, :, ::1] y,           # OUT (n, c, oh, ow)
    Geometry g,
    int n_threads,
):
    # Padding counts as zeros and stays in the divisor (count_include_pad=True);
    # the sum runs over the window clipped to the input, whose positions it
    # adds in row-major order, as the whole window's would (padding adds nothing):
    # a window of 2**30 costs what it overlaps.
    cdef Py_ssize_t n, c, i, j, r, q, r0, q0, r_stop, q_stop
    cdef floating s, inv_area = 1.0 / (g.kh * g.kw)
    with nogil:
        for n in prange(x.shape[0], schedule='dynamic', num_threads=n_threads):
            for c in range(g.c):
                for i in range(g.oh):
                    r0 = max(i * g.sh - g.ph, 0)
                    r_stop = min(i * g.sh - g.ph + g.kh, g.h)
                    for j in range(g.ow):
                        q0 = max(j * g.sw - g.pw, 0)
                        q_stop = min(j * g.sw - g.pw + g.kw, g.w)
                        s = 0
                        for r in range(r0, r_stop):
                            for q in range(q0, q_stop):
                                s = s + x[n, c, r, q]
                        y[n, c, i, j] = s * inv_area


def avg_pool2d_backward(
    const floating[:, :, :, ::1] dy,    # IN  (n, c, oh, ow)
    floating[:, :, :, ::1] dx,          # OUT (n, c, h, w)
    Geometry g,
    int n_threads,
):
    # Each dy spread over its window clipped to the input (as the forward's sum)
    cdef Py_ssize_t n, c, i, j, r, q, r0, q0, r_stop, q_stop
    cdef floating d, inv_area = 1.0 / (g.kh * g.kw)
    with nogil:
        for n in prange(dy.shape[0], schedule='dynamic', num_threads=n_threads):
            memset(&dx[n, 0, 0, 0], 0, g.c * g.h * g.w * sizeof(floating))
            for c in range(g.c):
                for i in range(g.oh):
                    r0 = max(i * g.sh - g.ph, 0)
                    r_stop = min(i * g.sh - g.ph + g.kh, g.h)
                    for j in range(g.ow):
                        q0 = max(j * g.sw - g.pw, 0)
                        q_stop = min(j * g.sw - g.pw + g.kw, g.w)
                        d = dy[n, c, i, j] * inv_area
                        for r in range(r0, r_stop):
                            for q in range(q0, q_stop):
                                dx[n, c, r, q] += d
