# Depthwise convolution (groups == channels, m filters per channel) by direct
# loops: each filter's kh * kw weights over one input plane. im2col + GEMM would
# multiply a 1-row matrix per channel, all packing and no reuse; here every tap
# is a multiply-add over a row of outputs (depthwise.h), vectorised along the
# output columns.
#
# Each task first copies its input plane into a zero-padded buffer whose rows
# are split by column phase (column q of a padded row goes to sub-row q % sw,
# at q // sw), so that output (i, j)'s tap t reads
#     plane[i * row_step + offsets[t] + j]
# contiguous in j for any stride, and no tap needs a bounds test. skconv.ops
# (_depthwise_layout) computes the layout.
#
# Every output element is one chain in a fixed order: 0, then x * w for each
# tap in (ki, kj) order, then the bias. So its bits do not depend on the batch,
# the sample's place in it, the threads or the SIMD path.
from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.string cimport memcpy, memset

from ._gemm cimport simd_path
from ._reduce cimport fixed_order_sum

cdef extern from "depthwise.h":
    void skc_dw_plane_s(const float *src, const Py_ssize_t *offsets, Py_ssize_t taps,
                        Py_ssize_t row_step, const float *w, float bias, int has_bias, int relu,
                        float *out, Py_ssize_t oh, Py_ssize_t ow, int path) noexcept nogil
    void skc_dw_plane_d(const double *src, const Py_ssize_t *offsets, Py_ssize_t taps,
                        Py_ssize_t row_step, const double *w, double bias, int has_bias, int relu,
                        double *out, Py_ssize_t oh, Py_ssize_t ow, int path) noexcept nogil
    void skc_dw_fill_s(const float *x, Py_ssize_t h, Py_ssize_t w, float *plane, Py_ssize_t ph,
                       Py_ssize_t pw, Py_ssize_t sw, Py_ssize_t sub_row, int vector) noexcept nogil
    void skc_dw_fill_d(const double *x, Py_ssize_t h, Py_ssize_t w, double *plane, Py_ssize_t ph,
                       Py_ssize_t pw, Py_ssize_t sw, Py_ssize_t sub_row, int vector) noexcept nogil
    void skc_dw_scatter_s(float *dst, const float *dy, const Py_ssize_t *offsets, Py_ssize_t taps,
                          Py_ssize_t row_step, const float *w, Py_ssize_t oh, Py_ssize_t ow,
                          int vector) noexcept nogil
    void skc_dw_scatter_d(double *dst, const double *dy, const Py_ssize_t *offsets,
                          Py_ssize_t taps, Py_ssize_t row_step, const double *w, Py_ssize_t oh,
                          Py_ssize_t ow, int vector) noexcept nogil
    void skc_dw_weights_s(float *acc, Py_ssize_t stride, const float *dy, const float *src,
                          const Py_ssize_t *offsets, Py_ssize_t taps, Py_ssize_t row_step,
                          Py_ssize_t oh, Py_ssize_t ow, int vector) noexcept nogil
    void skc_dw_weights_d(double *acc, Py_ssize_t stride, const double *dy, const double *src,
                          const Py_ssize_t *offsets, Py_ssize_t taps, Py_ssize_t row_step,
                          Py_ssize_t oh, Py_ssize_t ow, int vector) noexcept nogil


ctypedef struct Layout:
    Py_ssize_t h, w             # the source plane
    Py_ssize_t ph, pw           # where its (0, 0) goes in the padded plane
    Py_ssize_t spread_h, spread_w  # its rows' (columns') spacing there: 1 but for
                                # a strided convolution's dy spread out for dx
    Py_ssize_t sw               # the column stride: the padded rows' sub-rows
    Py_ssize_t sub_row          # elements of one sub-row
    Py_ssize_t row_step         # elements between two output rows' reads
    Py_ssize_t plane_size       # elements of the padded plane, slack included
    Py_ssize_t oh, ow           # output


cdef inline void _fill(
    const floating *x,                  # IN  (h, w)
    floating *plane,                    # OUT the interior of the padded plane
    const Layout *lay,
    bint vector,
) noexcept nogil:
    """Copy x into the padded plane's interior; its padding stays as it is (zero)."""
    cdef Py_ssize_t r, q, h = lay.h, w = lay.w, spread_w = lay.spread_w
    cdef floating *dst
    if lay.spread_h != 1 or spread_w != 1:
        # a spread dy (skconv.ops._depthwise_transposed): stride 1, so one sub-row
        for r in range(h):
            dst = plane + (r * lay.spread_h + lay.ph) * lay.sub_row + lay.pw
            for q in range(w):
                dst[q * spread_w] = x[r * w + q]
    elif floating is float:
        skc_dw_fill_s(x, h, w, plane, lay.ph, lay.pw, lay.sw, lay.sub_row, vector)
    else:
        skc_dw_fill_d(x, h, w, plane, lay.ph, lay.pw, lay.sw, lay.sub_row, vector)


cdef inline void _unfill(
    const floating *plane,              # IN  the padded plane
    const Py_ssize_t *phases,           # IN  (sw, 3): first, stop, q0 of each sub-row
    floating *x,                        # OUT (h, w) its interior
    const Layout *lay,
) noexcept nogil:
    cdef Py_ssize_t h = lay.h, w = lay.w, sw = lay.sw, sub_row = lay.sub_row, ph = lay.ph
    cdef Py_ssize_t r, p, k, first, stop, q0
    cdef const floating *src
    cdef floating *dst
    for r in range(h):
        dst = x + r * w
        for p in range(sw):
            first, stop, q0 = phases[3 * p], phases[3 * p + 1], phases[3 * p + 2]
            src = plane + ((r + ph) * sw + p) * sub_row
            if sw == 2:
                for k in range(first, stop):
                    dst[q0 + 2 * k] = src[k]
            else:
                for k in range(first, stop):
                    dst[q0 + k * sw] = src[k]


def depthwise_conv2d_forward(
    const floating[:, :, :, ::1] x,     # IN  (n, c, h, w)
    const floating[:, ::1] w,           # IN  (c * m, kh * kw)
    floating[:, :, :, ::1] y,           # OUT (n, c * m, oh, ow)
    const Py_ssize_t[::1] offsets,      # IN  (kh * kw,) each tap's start in the padded plane
    floating[:, ::1] planes,            # scratch (n_threads, plane_size), zero on entry
    Layout lay,
    int n_threads,
    *,
    b=None,                             # IN  (c * m,) of x's dtype, or None: no bias
    bint relu=False,                    # then max(., 0) (NaN stays)
):
    """y[n, f] = the correlation of x[n, f // m] with w[f], + b[f]: one input
    plane (and its m filters) per task."""
    cdef Py_ssize_t task, n, c, f, k, nc = x.shape[1], m = w.shape[0] // x.shape[1]
    cdef Py_ssize_t taps = w.shape[1]
    cdef const floating[::1] bias
    cdef bint has_bias = b is not None, vector = simd_path() > 0
    if has_bias:
        bias = b
    cdef int path = simd_path()
    cdef floating *plane
    with nogil:
        for task in prange(x.shape[0] * nc, schedule='static', num_threads=n_threads):
            n = task // nc
            c = task % nc
            plane = &planes[threadid(), 0]
            _fill(&x[n, c, 0, 0], plane, &lay, vector)
            for k in range(m):
                f = c * m + k
                if floating is float:
                    skc_dw_plane_s(plane, &offsets[0], taps, lay.row_step, &w[f, 0],
                                   bias[f] if has_bias else 0, has_bias, relu, &y[n, f, 0, 0],
                                   lay.oh, lay.ow, path)
                else:
                    skc_dw_plane_d(plane, &offsets[0], taps, lay.row_step, &w[f, 0],
                                   bias[f] if has_bias else 0, has_bias, relu, &y[n, f, 0, 0],
                                   lay.oh, lay.ow, path)


def depthwise_conv2d_backward_input(
    const floating[:, :, :, ::1] dy,    # IN  (n, c * m, oh, ow)
    const floating[:, ::1] w,           # IN  (c * m, kh * kw)
    floating[:, :, :, ::1] dx,          # OUT (n, c, h, w)
    const Py_ssize_t[::1] offsets,      # IN  (kh * kw,), as for the forward pass
    const Py_ssize_t[:, ::1] phases,    # IN  (sw, 3)
    floating[:, ::1] planes,            # scratch (n_threads, plane_size)
    Layout lay,
    int n_threads,
):
    """dx = the adjoint of the forward correlation: each output row's gradient
    times each tap, added where the tap read, in a padded plane whose interior
    is dx[n, c]. One input plane per task, its m filters, the output rows and
    the taps in order: every dx element is one chain in an order fixed by the
    geometry."""
    cdef Py_ssize_t task, n, c, f, k, nc = dx.shape[1], m = w.shape[0] // dx.shape[1]
    cdef Py_ssize_t taps = w.shape[1]
    cdef bint vector = simd_path() > 0
    cdef floating *plane
    with nogil:
        for task in prange(dx.shape[0] * nc, schedule='static', num_threads=n_threads):
            n = task // nc
            c = task % nc
            plane = &planes[threadid(), 0]
            memset(plane, 0, lay.plane_size * sizeof(floating))
            for k in range(m):
                f = c * m + k
                if floating is float:
                    skc_dw_scatter_s(plane, &dy[n, f, 0, 0], &offsets[0], taps, lay.row_step,
                                     &w[f, 0], lay.oh, lay.ow, vector)
                else:
                    skc_dw_scatter_d(plane, &dy[n, f, 0, 0], &offsets[0], taps, lay.row_step,
                                     &w[f, 0], lay.oh, lay.ow, vector)
            _unfill(plane, &phases[0, 0], &dx[n, c, 0, 0], &lay)


def depthwise_conv2d_backward_weights(
    const floating[:, :, :, ::1] dy,    # IN  (n, c * m, oh, ow)
    const floating[:, :, :, ::1] x,     # IN  (n, c, h, w)
    floating[:, :, ::1] dw_part,        # OUT (n_chunks, c * m, kh * kw + 1): per chunk dw, then db
    floating[:, ::1] dw,                # OUT (c * m, kh * kw + 1): dw, then db in the last column
    floating[:, :, ::1] lanes,          # scratch (n_threads, kh * kw + 1, ow rounded up to 8)
    const Py_ssize_t[::1] offsets,      # IN  (kh * kw,), as for the forward pass
    floating[:, ::1] planes,            # scratch (n_threads, plane_size), zero on entry
    Layout lay,
    int n_threads,
):
    """dw[f, t] = the sum over the batch and the output positions of dy[n, f]
    times the input tap t read; db[f] that of dy[n, f].

    The batch is cut into chunks that depend on its size only. Within a chunk
    each (tap, output column) has its own running sum over the samples and
    output rows in order (so the loop over columns vectorises with no
    reordering); the chunk's sum is then each tap's lanes in fixed_order_sum's
    order, and dw the chunks' sums in chunk order. Tasks are (chunk, filter)
    pairs, each on one thread: the bits do not depend on the thread count.
    """
    cdef Py_ssize_t n_samples = x.shape[0], n_chunks = dw_part.shape[0], nf = dw.shape[0]
    cdef Py_ssize_t taps = dw.shape[1] - 1, m = dw.shape[0] // x.shape[1], ow = lay.ow
    cdef Py_ssize_t stride = lanes.shape[2], task, chunk, f, n, k, tid
    cdef bint vector = simd_path() > 0
    cdef floating *acc
    cdef floating *plane
    cdef floating total
    with nogil:
        for task in prange(n_chunks * nf, schedule='static', num_threads=n_threads):
            chunk = task // nf
            f = task % nf
            tid = threadid()
            acc = &lanes[tid, 0, 0]
            plane = &planes[tid, 0]
            memset(acc, 0, (taps + 1) * stride * sizeof(floating))
            for n in range(chunk * n_samples // n_chunks, (chunk + 1) * n_samples // n_chunks):
                _fill(&x[n, f // m, 0, 0], plane, &lay, vector)
                if floating is float:
                    skc_dw_weights_s(acc, stride, &dy[n, f, 0, 0], plane, &offsets[0], taps,
                                     lay.row_step, lay.oh, ow, vector)
                else:
                    skc_dw_weights_d(acc, stride, &dy[n, f, 0, 0], plane, &offsets[0], taps,
                                     lay.row_step, lay.oh, ow, vector)
            for k in range(taps + 1):
                dw_part[chunk, f, k] = fixed_order_sum(acc + k * stride, ow)
        for f in prange(nf, schedule='static', num_threads=n_threads):
            for k in range(taps + 1):
                total = dw_part[0, f, k]
                for chunk in range(1, n_chunks):
                    total = total + dw_part[chunk, f, k]
                dw[f, k] = total
