from cython cimport floating
from cython.parallel cimport prange, threadid

from ._blas cimport gemm
from ._im2col cimport Geometry, im2col_sample, col2im_sample


def conv2d_forward(
    const floating[:, :, :, ::1] x,     # IN  (n, c, h, w)
    const floating[:, ::1] w,           # IN  (f, c * kh * kw)
    const floating[::1] b,              # IN  (f,), or empty for no bias
    floating[:, :, ::1] y,              # OUT (n, f, oh * ow)
    floating[:, :, ::1] cols,           # OUT (n, ckk, ohw) if keep_cols, else scratch (n_threads, ...)
    bint keep_cols,
    Geometry g,
    int n_threads,
):
    """y[n] = w @ im2col(x[n]) + b, one sample per thread.

    With ``keep_cols`` every sample's im2col stays in ``cols[n]`` for the
    backward pass; otherwise each thread reuses its own ``cols[thread]``.
    """
    cdef Py_ssize_t n, f, p, slot
    cdef int nf = w.shape[0], ohw = g.oh * g.ow, ckk = g.c * g.kh * g.kw
    cdef floating one = 1, zero = 0
    cdef bint has_bias = b.shape[0] > 0
    with nogil:
        for n in prange(x.shape[0], schedule='static', num_threads=n_threads):
            slot = n if keep_cols else threadid()
            im2col_sample(x[n], cols[slot], &g)
            gemm(False, False, nf, ohw, ckk, one, &w[0, 0], ckk,
                 &cols[slot, 0, 0], ohw, zero, &y[n, 0, 0], ohw)
            if has_bias:
                for f in range(nf):
                    for p in range(ohw):
                        y[n, f, p] += b[f]


def conv2d_backward(
    const floating[:, :, ::1] dy,       # IN  (n, f, oh * ow)
    const floating[:, :, :, ::1] x,     # IN  (n, c, h, w)
    const floating[:, ::1] w,           # IN  (f, c * kh * kw)
    floating[:, :, :, ::1] dx,          # OUT (n, c, h, w), or (0, 0, 0, 0) to skip dx
    floating[:, :, ::1] dw_part,        # OUT (n_chunks, c * kh * kw, f): dw transposed
    floating[:, ::1] db_part,           # OUT (n_chunks, f)
    floating[:, :, ::1] cols,           # IN/OUT (n, ckk, ohw) if have_cols, else scratch (n_threads, ...)
    bint have_cols,
    Geometry g,
    int n_threads,
):
    """Gradients of conv2d_forward.

    With ``have_cols``, ``cols[n]`` already holds im2col(x[n]) (kept by the
    forward pass) and is not recomputed; once dw has used it, it is
    overwritten by the gradient of the columns.

    The batch is cut into ``n_chunks`` contiguous chunks that depend only on
    the batch size; each chunk sums its own dw and db in sample order, and the
    caller adds the chunk sums in chunk order. So the result is the same bits
    whatever the number of threads.
    """
    cdef Py_ssize_t n_samples = x.shape[0], n_chunks = dw_part.shape[0]
    cdef Py_ssize_t ci, n, start, stop, f, p, slot
    cdef int nf = w.shape[0], ohw = g.oh * g.ow, ckk = g.c * g.kh * g.kw
    cdef floating one = 1, zero = 0, beta, s
    cdef bint need_dx = dx.shape[0] > 0
    with nogil:
        for ci in prange(n_chunks, schedule='static', num_threads=n_threads):
            slot = threadid()
            start = ci * n_samples // n_chunks
            stop = (ci + 1) * n_samples // n_chunks
            for n in range(start, stop):
                if have_cols:
                    slot = n
                else:
                    im2col_sample(x[n], cols[slot], &g)
                beta = zero if n == start else one
                # dw^T += cols (ckk, ohw) @ dy[n]^T (ohw, f)
                gemm(False, True, ckk, nf, ohw, one, &cols[slot, 0, 0], ohw,
                     &dy[n, 0, 0], ohw, beta, &dw_part[ci, 0, 0], nf)
                for f in range(nf):
                    s = 0
                    for p in range(ohw):
                        s = s + dy[n, f, p]
                    db_part[ci, f] = s if n == start else db_part[ci, f] + s
                if need_dx:
                    # dcols (ckk, ohw) = w^T (ckk, f) @ dy[n] (f, ohw), then fold
                    gemm(True, False, ckk, ohw, nf, one, &w[0, 0], ckk,
                         &dy[n, 0, 0], ohw, zero, &cols[slot, 0, 0], ohw)
                    col2im_sample(cols[slot], dx[n], &g)
