# Depthwise convolution (groups == channels, m filters per channel) by direct
# loops: each filter's kh * kw weights over one input plane. im2col + GEMM would
# multiply a 1-row matrix per channel, all packing and no reuse; here every tap
# is one multiply-add over a row of outputs, which the compiler vectorises
# along the output columns.
#
# Every output element is one chain in a fixed order: 0, then each tap that
# falls inside the image in (ki, kj) order (a tap on the zero padding adds
# nothing, so it is skipped), then the bias. So its bits do not depend on the
# batch, the sample's place in it, the threads or the SIMD path.
from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.string cimport memset

from ._im2col cimport Geometry
from ._reduce cimport fixed_order_sum


def depthwise_conv2d_forward(
    const floating[:, :, :, ::1] x,     # IN  (n, c, h, w)
    const floating[:, ::1] w,           # IN  (c * m, kh * kw)
    const floating[::1] b,              # IN  (c * m,), or empty for no bias
    floating[:, :, :, ::1] y,           # OUT (n, c * m, oh, ow)
    bint relu,                          # then max(., 0) (NaN stays)
    const Py_ssize_t[:, ::1] columns,   # IN  (kw, 2): tap column kj feeds outputs [first, stop)
    Geometry g,
    int n_threads,
):
    """y[n, f] = the correlation of x[n, f // m] with w[f], + b[f]; one plane per task."""
    cdef Py_ssize_t task, n, f, nf = w.shape[0], m = w.shape[0] // g.c
    cdef bint has_bias = b.shape[0] > 0
    with nogil:
        for task in prange(x.shape[0] * nf, schedule='static', num_threads=n_threads):
            n = task // nf
            f = task % nf
            _forward_plane(&x[n, f // m, 0, 0], &w[f, 0], b[f] if has_bias else 0, has_bias,
                           relu, &columns[0, 0], &y[n, f, 0, 0], &g)


cdef void _forward_plane(
    const floating *x,                  # IN  (h, w)
    const floating *w,                  # IN  (kh, kw)
    floating bias,
    bint has_bias,
    bint relu,
    const Py_ssize_t *columns,          # IN  (kw, 2)
    floating *y,                        # OUT (oh, ow)
    const Geometry *g,
) noexcept nogil:
    # locals, not g->field: the stores into y could alias *g for the compiler
    cdef Py_ssize_t h = g.h, wd = g.w, oh = g.oh, ow = g.ow, sh = g.sh, sw = g.sw
    cdef Py_ssize_t kh = g.kh, kw = g.kw, ph = g.ph, pw = g.pw, dh = g.dh, dw = g.dw
    cdef Py_ssize_t i, j, ki, kj, r, x0, j0, j1
    cdef const floating *src
    cdef floating *row
    cdef floating tap
    for i in range(oh):
        row = y + i * ow
        for j in range(ow):
            row[j] = 0
        for ki in range(kh):
            r = i * sh - ph + ki * dh
            if r < 0 or r >= h:
                continue
            src = x + r * wd
            for kj in range(kw):
                tap = w[ki * kw + kj]
                x0 = kj * dw - pw
                j0 = columns[2 * kj]
                j1 = columns[2 * kj + 1]
                # explicit multiply, then add: no fused multiply-add (the build
                # forbids contraction), so every path rounds the same way
                if sw == 1:
                    for j in range(j0, j1):
                        row[j] = row[j] + src[j + x0] * tap
                else:
                    for j in range(j0, j1):
                        row[j] = row[j] + src[j * sw + x0] * tap
        if has_bias:
            for j in range(ow):
                row[j] = row[j] + bias
        if relu:
            for j in range(ow):
                row[j] = 0 if row[j] < 0 else row[j]


def depthwise_conv2d_backward_input(
    const floating[:, :, :, ::1] dy,    # IN  (n, c * m, oh, ow)
    const floating[:, ::1] w,           # IN  (c * m, kh * kw)
    floating[:, :, :, ::1] dx,          # OUT (n, c, h, w)
    const Py_ssize_t[:, ::1] columns,   # IN  (kw, 2), as for the forward pass
    Geometry g,
    int n_threads,
):
    """dx = the adjoint of the forward correlation: each output's gradient times
    each tap, added where the tap read. One input plane per task, its m filters
    in order, then the output rows and taps in order: every dx element is one
    chain in an order fixed by the geometry."""
    cdef Py_ssize_t task, n, c, k, m = w.shape[0] // g.c
    with nogil:
        for task in prange(dx.shape[0] * g.c, schedule='static', num_threads=n_threads):
            n = task // g.c
            c = task % g.c
            memset(&dx[n, c, 0, 0], 0, g.h * g.w * sizeof(floating))
            for k in range(m):
                _backward_input_plane(&dy[n, c * m + k, 0, 0], &w[c * m + k, 0],
                                      &columns[0, 0], &dx[n, c, 0, 0], &g)


cdef void _backward_input_plane(
    const floating *dy,                 # IN  (oh, ow)
    const floating *w,                  # IN  (kh, kw)
    const Py_ssize_t *columns,          # IN  (kw, 2)
    floating *dx,                       # IN/OUT (h, w)
    const Geometry *g,
) noexcept nogil:
    cdef Py_ssize_t h = g.h, wd = g.w, oh = g.oh, ow = g.ow, sh = g.sh, sw = g.sw
    cdef Py_ssize_t kh = g.kh, kw = g.kw, ph = g.ph, pw = g.pw, dh = g.dh, dw = g.dw
    cdef Py_ssize_t i, j, ki, kj, r, x0, j0, j1
    cdef const floating *src
    cdef floating *dst
    cdef floating tap
    for i in range(oh):
        src = dy + i * ow
        for ki in range(kh):
            r = i * sh - ph + ki * dh
            if r < 0 or r >= h:
                continue
            dst = dx + r * wd
            for kj in range(kw):
                tap = w[ki * kw + kj]
                x0 = kj * dw - pw
                j0 = columns[2 * kj]
                j1 = columns[2 * kj + 1]
                if sw == 1:
                    for j in range(j0, j1):
                        dst[j + x0] = dst[j + x0] + src[j] * tap
                else:
                    for j in range(j0, j1):
                        dst[j * sw + x0] = dst[j * sw + x0] + src[j] * tap


def depthwise_conv2d_backward_weights(
    const floating[:, :, :, ::1] dy,    # IN  (n, c * m, oh, ow)
    const floating[:, :, :, ::1] x,     # IN  (n, c, h, w)
    floating[:, :, ::1] dw_part,        # OUT (n_chunks, c * m, kh * kw + 1): per chunk dw, then db
    floating[:, ::1] dw,                # OUT (c * m, kh * kw + 1): dw, then db in the last column
    floating[:, ::1] lanes,             # scratch (n_threads, (kh * kw + 1) * ow)
    const Py_ssize_t[:, ::1] columns,   # IN  (kw, 2), as for the forward pass
    Geometry g,
    int n_threads,
):
    """dw[f, tap] = the sum over the batch and the output positions of
    dy[n, f] * the input the tap read; db[f] that of dy[n, f].

    The batch is cut into chunks that depend on its size only. Within a chunk
    each (tap, output column) has its own running sum over the samples and
    output rows in order (so the loop over columns vectorises with no
    reordering); the chunk's sum is then each tap's lanes in fixed_order_sum's
    order, and dw the chunks' sums in chunk order. Tasks are (chunk, filter)
    pairs, each on one thread: the bits do not depend on the thread count.
    """
    cdef Py_ssize_t n_samples = x.shape[0], n_chunks = dw_part.shape[0], nf = dw.shape[0]
    cdef Py_ssize_t taps = g.kh * g.kw, m = dw.shape[0] // g.c, ow = g.ow
    cdef Py_ssize_t task, chunk, f, n, k, tid
    cdef floating *acc
    cdef floating total
    with nogil:
        for task in prange(n_chunks * nf, schedule='static', num_threads=n_threads):
            chunk = task // nf
            f = task % nf
            tid = threadid()
            acc = &lanes[tid, 0]
            memset(acc, 0, (taps + 1) * ow * sizeof(floating))
            for n in range(chunk * n_samples // n_chunks, (chunk + 1) * n_samples // n_chunks):
                _backward_weights_plane(&dy[n, f, 0, 0], &x[n, f // m, 0, 0], &columns[0, 0],
                                        acc, &g)
            for k in range(taps + 1):
                dw_part[chunk, f, k] = fixed_order_sum(acc + k * ow, ow)
        for f in prange(nf, schedule='static', num_threads=n_threads):
            for k in range(taps + 1):
                total = dw_part[0, f, k]
                for chunk in range(1, n_chunks):
                    total = total + dw_part[chunk, f, k]
                dw[f, k] = total


cdef void _backward_weights_plane(
    const floating *dy,                 # IN  (oh, ow)
    const floating *x,                  # IN  (h, w)
    const Py_ssize_t *columns,          # IN  (kw, 2)
    floating *acc,                      # IN/OUT (kh * kw + 1, ow): per tap, then the bias's
    const Geometry *g,
) noexcept nogil:
    cdef Py_ssize_t h = g.h, wd = g.w, oh = g.oh, ow = g.ow, sh = g.sh, sw = g.sw
    cdef Py_ssize_t kh = g.kh, kw = g.kw, ph = g.ph, pw = g.pw, dh = g.dh, dw = g.dw
    cdef Py_ssize_t i, j, ki, kj, r, x0, j0, j1
    cdef const floating *grad
    cdef const floating *src
    cdef floating *lane
    cdef floating *bias_lane = acc + kh * kw * ow
    for i in range(oh):
        grad = dy + i * ow
        for j in range(ow):
            bias_lane[j] = bias_lane[j] + grad[j]
        for ki in range(kh):
            r = i * sh - ph + ki * dh
            if r < 0 or r >= h:
                continue
            src = x + r * wd
            for kj in range(kw):
                lane = acc + (ki * kw + kj) * ow
                x0 = kj * dw - pw
                j0 = columns[2 * kj]
                j1 = columns[2 * kj + 1]
                if sw == 1:
                    for j in range(j0, j1):
                        lane[j] = lane[j] + grad[j] * src[j + x0]
                else:
                    for j in range(j0, j1):
                        lane[j] = lane[j] + grad[j] * src[j * sw + x0]
