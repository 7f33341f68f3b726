# 2x2 max pooling of a row of windows and its backward over a plane, shared by
# _pool (a pooling layer's) and _conv (pooling a convolution's output while it
# is in cache, and its gradient while the convolution's backward reads it).
from cython cimport floating
from libc.string cimport memset

cdef extern from "pool.h":
    Py_ssize_t skc_max_pool_2x2_row_s(const float *top, const float *bottom, Py_ssize_t ow,
                                      Py_ssize_t k0, Py_ssize_t w, const float *bias, int relu,
                                      float *out, Py_ssize_t *index) noexcept nogil
    Py_ssize_t skc_max_pool_2x2_row_d(const double *top, const double *bottom, Py_ssize_t ow,
                                      Py_ssize_t k0, Py_ssize_t w, const double *bias, int relu,
                                      double *out, Py_ssize_t *index) noexcept nogil
    Py_ssize_t skc_max_pool_2x2_plane_rows_s(const float *top, Py_ssize_t ldt, Py_ssize_t ph,
                                             Py_ssize_t pw, const float *bias, int relu,
                                             float *out, int path) noexcept nogil
    Py_ssize_t skc_max_pool_2x2_plane_rows_d(const double *top, Py_ssize_t ldt, Py_ssize_t ph,
                                             Py_ssize_t pw, const double *bias, int relu,
                                             double *out, int path) noexcept nogil
    void skc_max_pool_2x2_positions_s(const float *c, Py_ssize_t ldc, Py_ssize_t ph,
                                      Py_ssize_t pw, Py_ssize_t ow, Py_ssize_t n,
                                      const float *bias, int relu, float *out, Py_ssize_t ldo,
                                      int path) noexcept nogil
    void skc_max_pool_2x2_positions_d(const double *c, Py_ssize_t ldc, Py_ssize_t ph,
                                      Py_ssize_t pw, Py_ssize_t ow, Py_ssize_t n,
                                      const double *bias, int relu, double *out, Py_ssize_t ldo,
                                      int path) noexcept nogil
    Py_ssize_t skc_max_pool_2x2_backward_row_s(const float *dy, const Py_ssize_t *index,
                                               const float *y, Py_ssize_t ow, Py_ssize_t k0,
                                               Py_ssize_t w, float *top) noexcept nogil
    Py_ssize_t skc_max_pool_2x2_backward_row_d(const double *dy, const Py_ssize_t *index,
                                               const double *y, Py_ssize_t ow, Py_ssize_t k0,
                                               Py_ssize_t w, double *top) noexcept nogil


cdef inline bint _replaces(floating best, floating v) noexcept nogil:
    # v replaces the running maximum if it is larger or NaN: on ties the first
    # maximum stays, and the last NaN wins (as in torch), so a diverged net shows
    return (v > best) | (v != v)


cdef inline void max_pool_2x2_row(
    const floating *top,                # IN  the windows' upper row (2i)
    const floating *bottom,             # IN  their lower row (2i + 1), anywhere
    Py_ssize_t ow,                      # windows in the row
    Py_ssize_t k0,                      # the flat index of top[0] in its plane
    Py_ssize_t w,                       # the plane's width: bottom[0]'s index is k0 + w
    const floating *bias,               # IN  added to every element first (a convolution's), or NULL
    bint relu,                          # then max(., 0) of each maximum (NaN and -0.0 stay)
    floating *out,                      # OUT (ow,) each window's maximum
    Py_ssize_t *index,                  # OUT (ow,) its flat index in the plane, or NULL
    bint vector,                        # a SIMD path is in use (pool.h's kernels)
) noexcept nogil:
    # Each row's pair, then the two rows. Every choice is integer arithmetic on
    # a 0/1 flag and the value is loaded from the winner: a float select here
    # compiles to a branch, mispredicted half the time. On the SIMD paths
    # pool.h does the same choices as vector blends, eight (four) windows at a
    # time, the last few masked; the loop is the portable path's.
    # (adding a zero shift changes no comparison: -0.0 + 0 == -0.0, NaN stays NaN)
    cdef Py_ssize_t j = 0, q_upper, q_lower, wins, below = bottom - top
    cdef floating best, shift = bias[0] if bias else 0
    if vector:
        if floating is float:
            j = skc_max_pool_2x2_row_s(top, bottom, ow, k0, w, bias, relu, out, index)
        else:
            j = skc_max_pool_2x2_row_d(top, bottom, ow, k0, w, bias, relu, out, index)
    while j < ow:
        q_upper = 2 * j + _replaces(top[2 * j] + shift, top[2 * j + 1] + shift)
        q_lower = 2 * j + _replaces(bottom[2 * j] + shift, bottom[2 * j + 1] + shift)
        wins = _replaces(top[q_upper] + shift, bottom[q_lower] + shift)
        best = top[q_upper + wins * (below + q_lower - q_upper)]
        if bias:
            best = best + shift
        out[j] = 0 if relu and best < 0 else best
        if index:
            index[j] = k0 + q_upper + wins * (w + q_lower - q_upper)
        j = j + 1


cdef inline void max_pool_2x2_plane(
    const floating *top,                # IN  window (i, j) reads top[2i * ldt + 2j] and the row below
    Py_ssize_t ldt,                     # a row of the windows' rows
    Py_ssize_t ph, Py_ssize_t pw,       # windows down and across
    const floating *bias,               # IN  added to every element first (a convolution's), or NULL
    bint relu,                          # then max(., 0) of each maximum (NaN and -0.0 stay)
    floating *out,                      # OUT (ph * pw,) each window's maximum
    int path,                           # the SIMD path in use (_gemm.simd_path())
) noexcept nogil:
    # max_pool_2x2_row's values for a plane's rows, the same bits: on the
    # avx512 path pool.h's plane kernel takes them all (several rows a step
    # where they are short), else the row kernel one row at a time
    cdef Py_ssize_t i = 0
    if floating is float:
        i = skc_max_pool_2x2_plane_rows_s(top, ldt, ph, pw, bias, relu, out, path)
    else:
        i = skc_max_pool_2x2_plane_rows_d(top, ldt, ph, pw, bias, relu, out, path)
    while i < ph:
        max_pool_2x2_row(top + 2 * i * ldt, top + (2 * i + 1) * ldt, pw, 0, 0, bias, relu,
                         out + i * pw, NULL, path > 0)
        i = i + 1


cdef inline void max_pool_2x2_positions(
    const floating *c,                  # IN  (oh * ow, n) row stride ldc: a product of
    Py_ssize_t ldc,                     #     positions by filters
    Py_ssize_t ph, Py_ssize_t pw,       # windows down and across
    Py_ssize_t ow,                      # positions in a row of the product's map
    Py_ssize_t n,                       # filters
    const floating *bias,               # IN  (n,) added to every element first, or NULL
    bint relu,                          # then max(., 0) of each maximum (NaN and -0.0 stay)
    floating *out,                      # OUT (ph * pw, n) row stride ldo
    Py_ssize_t ldo,
    int path,                           # the SIMD path in use (_gemm.simd_path())
) noexcept nogil:
    # max_pool_2x2_row's values, the same bits, each filter a lane (pool.h)
    if floating is float:
        skc_max_pool_2x2_positions_s(c, ldc, ph, pw, ow, n, bias, relu, out, ldo, path)
    else:
        skc_max_pool_2x2_positions_d(c, ldc, ph, pw, ow, n, bias, relu, out, ldo, path)


cdef inline void max_pool_2x2_row_values(
    const floating *top,                # IN  the windows' upper row (2i)
    const floating *bottom,             # IN  their lower row (2i + 1), anywhere
    Py_ssize_t ow,                      # windows in the row
    floating *out,                      # OUT (ow,) each window's maximum
) noexcept nogil:
    # The values of max_pool_2x2_row alone, written so that the compiler
    # vectorises them: plain selects (each row's pair, then the two rows; ties
    # keep the left operand, which comes first in the window, so the value is
    # the row-major first maximum's), then each NaN of the window in order
    # replaces it (the last NaN wins, as with the index).
    cdef Py_ssize_t j
    cdef floating a, b, d, e, upper, lower, best
    for j in range(ow):
        a = top[2 * j]
        b = top[2 * j + 1]
        d = bottom[2 * j]
        e = bottom[2 * j + 1]
        upper = b if b > a else a
        lower = e if e > d else d
        best = lower if lower > upper else upper
        best = a if a != a else best
        best = b if b != b else best
        best = d if d != d else best
        out[j] = e if e != e else best


cdef inline void max_pool_2x2_backward_plane(
    const floating *dy,                 # IN  (oh * ow,) the pooled plane's gradient
    const Py_ssize_t *index,            # IN  (oh * ow,) each window's argmax (max_pool_2x2_row)
    const floating *y,                  # IN  (oh * ow,) the pooled plane after a ReLU, or NULL
    Py_ssize_t oh, Py_ssize_t ow,       # windows
    Py_ssize_t h, Py_ssize_t w,         # the input plane: 2 * oh or 2 * oh + 1 rows, likewise w
    floating *dx,                       # OUT (h * w,) the input plane's gradient
    bint vector,                        # a SIMD path is in use (pool.h's kernels)
) noexcept nogil:
    # Each window written whole: d + 0 at its maximum (the value of adding d
    # into zeros: -0.0 becomes +0.0) and 0 at its other three places, with no
    # zeroing first and no scattered adds; with y, d only where y > 0 (the
    # ReLU's gradient). On the SIMD paths pool.h writes a row's windows eight
    # (four) at a time, the last few masked; the loop is the portable path's.
    cdef Py_ssize_t i, j, k, p
    cdef floating *top
    cdef floating d
    for i in range(oh):
        top = dx + 2 * i * w
        p = i * ow
        j = 0
        if vector:
            if floating is float:
                j = skc_max_pool_2x2_backward_row_s(dy + p, index + p, y + p if y else NULL,
                                                    ow, 2 * i * w, w, top)
            else:
                j = skc_max_pool_2x2_backward_row_d(dy + p, index + p, y + p if y else NULL,
                                                    ow, 2 * i * w, w, top)
        while j < ow:
            d = dy[p + j] + 0
            if y and not y[p + j] > 0:
                d = 0
            k = index[p + j] - 2 * i * w - 2 * j
            top[2 * j] = d if k == 0 else 0
            top[2 * j + 1] = d if k == 1 else 0
            top[w + 2 * j] = d if k == w else 0
            top[w + 2 * j + 1] = d if k == w + 1 else 0
            j = j + 1
        if w > 2 * ow:  # an odd width: the last column is in no window
            top[w - 1] = 0
            top[2 * w - 1] = 0
    if h > 2 * oh:  # likewise the last row of an odd height
        memset(dx + (h - 1) * w, 0, w * sizeof(floating))
