from cython cimport floating
from libc.string cimport memset
from cython.parallel cimport prange

from ._im2col cimport Geometry

# Pooling ignores Geometry.dh / dw (no dilation). Windows always overlap the
# input (skconv.ops keeps padding <= kernel // 2), so padding never wins a max.


def max_pool2d_forward(
    const floating[:, :, :, ::1] x,     # IN  (n, c, h, w)
    floating[:, :, :, ::1] y,           # OUT (n, c, oh, ow)
    Py_ssize_t[:, :, :, ::1] argmax,    # OUT (n, c, oh, ow): flat index into x[n, c]
    Geometry g,
    int n_threads,
):
    # One branch-free pass per window: the maximum as a select (a max
    # instruction) and its index updated arithmetically. An 'if' on each tap
    # is ~3x slower: on real data it is mispredicted about half the time.
    cdef Py_ssize_t n, c, i, j, r, q, r0, q0, r_stop, q_stop, idx
    cdef floating v, best
    cdef bint has_nan
    if g.kh == 2 and g.kw == 2 and g.sh == 2 and g.sw == 2 and g.ph == 0 and g.pw == 0:
        _max_pool_2x2(x, y, argmax, g, n_threads)
        return
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
                        has_nan = False
                        for r in range(r0, r_stop):
                            for q in range(q0, q_stop):
                                v = x[n, c, r, q]
                                # strict '>': on ties the first maximum wins
                                idx = idx + (v > best) * (r * g.w + q - idx)
                                best = v if v > best else best
                                has_nan = has_nan | (v != v)
                        if has_nan:
                            # NaN wins, the last one as in torch: a diverged net shows
                            for r in range(r0, r_stop):
                                for q in range(q0, q_stop):
                                    v = x[n, c, r, q]
                                    idx = idx + (v != v) * (r * g.w + q - idx)
                            best = x[n, c, idx // g.w, idx % g.w]
                        y[n, c, i, j] = best
                        argmax[n, c, i, j] = idx


cdef void _max_pool_2x2(
    const floating[:, :, :, ::1] x,     # IN  (n, c, h, w)
    floating[:, :, :, ::1] y,           # OUT (n, c, oh, ow)
    Py_ssize_t[:, :, :, ::1] argmax,    # OUT (n, c, oh, ow)
    Geometry g,
    int n_threads,
) noexcept:
    # The 2x2 window of stride 2 of nearly every network, unrolled: the same
    # answers as the general loop (first maximum on ties, the last NaN wins),
    # about 4x faster, which matters since pooling a batch costs as much as a
    # convolution's GEMM.
    cdef Py_ssize_t n, c, i, j, r, q, k, kn
    cdef floating v0, v1, v2, v3, best
    cdef bint gt
    with nogil:
        for n in prange(x.shape[0], schedule='dynamic', num_threads=n_threads):
            for c in range(g.c):
                for i in range(g.oh):
                    r = 2 * i
                    for j in range(g.ow):
                        q = 2 * j
                        v0 = x[n, c, r, q]
                        v1 = x[n, c, r, q + 1]
                        v2 = x[n, c, r + 1, q]
                        v3 = x[n, c, r + 1, q + 1]
                        best = v0
                        k = 0
                        gt = v1 > best
                        k = 1 if gt else k
                        best = v1 if gt else best
                        gt = v2 > best
                        k = 2 if gt else k
                        best = v2 if gt else best
                        gt = v3 > best
                        k = 3 if gt else k
                        best = v3 if gt else best
                        if (v0 != v0) | (v1 != v1) | (v2 != v2) | (v3 != v3):
                            kn = 3 if v3 != v3 else (2 if v2 != v2 else (1 if v1 != v1 else 0))
                            k = kn
                            best = v3 if kn == 3 else (v2 if kn == 2 else (v1 if kn == 1 else v0))
                        y[n, c, i, j] = best
                        argmax[n, c, i, j] = (r + k // 2) * g.w + q + k % 2


def max_pool2d_backward(
    const floating[:, :, ::1] dy,           # IN  (n, c, oh * ow)
    const Py_ssize_t[:, :, ::1] argmax,     # IN  (n, c, oh * ow), each in [0, h * w)
    floating[:, :, ::1] dx,                 # OUT (n, c, h * w)
    int n_threads,
):
    cdef Py_ssize_t n, c, p
    with nogil:
        for n in prange(dy.shape[0], schedule='dynamic', num_threads=n_threads):
            memset(&dx[n, 0, 0], 0, dx.shape[1] * dx.shape[2] * sizeof(floating))
            for c in range(dy.shape[1]):
                for p in range(dy.shape[2]):
                    dx[n, c, argmax[n, c, p]] += dy[n, c, p]


def avg_pool2d_forward(
    const floating[:, :, :, ::1] x,     # IN  (n, c, h, w)
    floating[:, :, :, ::1] y,           # OUT (n, c, oh, ow)
    Geometry g,
    int n_threads,
):
    # Padding counts as zeros and stays in the divisor (count_include_pad=True).
    cdef Py_ssize_t n, c, i, j, ki, kj, r, q
    cdef floating s, inv_area = 1.0 / (g.kh * g.kw)
    with nogil:
        for n in prange(x.shape[0], schedule='dynamic', num_threads=n_threads):
            for c in range(g.c):
                for i in range(g.oh):
                    for j in range(g.ow):
                        s = 0
                        for ki in range(g.kh):
                            r = i * g.sh - g.ph + ki
                            if r < 0 or r >= g.h:
                                continue
                            for kj in range(g.kw):
                                q = j * g.sw - g.pw + kj
                                if 0 <= q < g.w:
                                    s = s + x[n, c, r, q]
                        y[n, c, i, j] = s * inv_area


def avg_pool2d_backward(
    const floating[:, :, :, ::1] dy,    # IN  (n, c, oh, ow)
    floating[:, :, :, ::1] dx,          # OUT (n, c, h, w)
    Geometry g,
    int n_threads,
):
    cdef Py_ssize_t n, c, i, j, ki, kj, r, q
    cdef floating d, inv_area = 1.0 / (g.kh * g.kw)
    with nogil:
        for n in prange(dy.shape[0], schedule='dynamic', num_threads=n_threads):
            memset(&dx[n, 0, 0, 0], 0, g.c * g.h * g.w * sizeof(floating))
            for c in range(g.c):
                for i in range(g.oh):
                    for j in range(g.ow):
                        d = dy[n, c, i, j] * inv_area
                        for ki in range(g.kh):
                            r = i * g.sh - g.ph + ki
                            if r < 0 or r >= g.h:
                                continue
                            for kj in range(g.kw):
                                q = j * g.sw - g.pw + kj
                                if 0 <= q < g.w:
                                    dx[n, c, r, q] += d
