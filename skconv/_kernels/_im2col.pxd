# Per-sample im2col / col2im, shared by the batch kernels in _im2col.pyx and
# the convolution in _conv.pyx. A sample's column matrix has one row per
# kernel tap (c, kh, kw) and one column per output position (oh, ow), both
# row-major (Caffe's layout): each row is filled by a branch-free copy of an
# input row, and the convolution is one GEMM w (f, c*kh*kw) @ cols.
from libc.string cimport memset
from cython cimport floating


ctypedef struct Geometry:
    Py_ssize_t c, h, w      # input channels, height, width
    Py_ssize_t kh, kw       # kernel
    Py_ssize_t sh, sw       # stride
    Py_ssize_t ph, pw       # zero padding
    Py_ssize_t dh, dw       # dilation
    Py_ssize_t oh, ow       # output


cdef inline int _valid_range(Py_ssize_t offset, Py_ssize_t stride, Py_ssize_t size,
                             Py_ssize_t n_out, Py_ssize_t *first, Py_ssize_t *stop) except -1 nogil:
    """Outputs j in [first, stop) read input j * stride + offset inside [0, size)."""
    # integer ceil-division of non-negative numerators only: cdivision truncates
    first[0] = 0 if offset >= 0 else (-offset + stride - 1) // stride
    stop[0] = 0 if size - offset <= 0 else (size - offset + stride - 1) // stride
    first[0] = min(first[0], n_out)
    stop[0] = max(first[0], min(stop[0], n_out))
    return 0


cdef inline int im2col_sample(
    const floating[:, :, ::1] x,    # IN  (c, h, w)
    floating[:, ::1] cols,          # OUT (c * kh * kw, oh * ow)
    const Geometry *g,
) except -1 nogil:
    cdef Py_ssize_t c, ki, kj, i, j, row, y, x0, j0, j1
    # locals, not g->field: the stores into cols could alias *g as far as the
    # C compiler knows, which would reload them and stop vectorisation
    cdef Py_ssize_t h = g.h, w = g.w, oh = g.oh, ow = g.ow, sw = g.sw
    cdef const floating *src
    cdef floating *dst
    for c in range(g.c):
        for ki in range(g.kh):
            for kj in range(g.kw):
                row = (c * g.kh + ki) * g.kw + kj
                x0 = kj * g.dw - g.pw
                _valid_range(x0, sw, w, ow, &j0, &j1)
                for i in range(oh):
                    y = i * g.sh - g.ph + ki * g.dh
                    dst = &cols[row, i * ow]
                    if y < 0 or y >= h:
                        memset(dst, 0, ow * sizeof(floating))
                        continue
                    src = &x[c, y, 0]
                    for j in range(j0):
                        dst[j] = 0
                    # the hot loop: no branch; a plain copy when the stride is 1
                    if sw == 1:
                        for j in range(j0, j1):
                            dst[j] = src[j + x0]
                    else:
                        for j in range(j0, j1):
                            dst[j] = src[j * sw + x0]
                    for j in range(j1, ow):
                        dst[j] = 0
    return 0


cdef inline int col2im_sample(
    const floating[:, ::1] cols,    # IN  (c * kh * kw, oh * ow)
    floating[:, :, ::1] x,          # OUT (c, h, w), zeroed then accumulated
    const Geometry *g,
) except -1 nogil:
    # The exact adjoint of im2col_sample: every read there is an add here.
    cdef Py_ssize_t c, ki, kj, i, j, row, y, x0, j0, j1, base
    cdef Py_ssize_t h = g.h, w = g.w, oh = g.oh, ow = g.ow, sw = g.sw  # see im2col_sample
    memset(&x[0, 0, 0], 0, g.c * h * w * sizeof(floating))
    for c in range(g.c):
        for ki in range(g.kh):
            for kj in range(g.kw):
                row = (c * g.kh + ki) * g.kw + kj
                x0 = kj * g.dw - g.pw
                _valid_range(x0, sw, w, ow, &j0, &j1)
                for i in range(oh):
                    y = i * g.sh - g.ph + ki * g.dh
                    if y < 0 or y >= h:
                        continue
                    base = i * ow
                    for j in range(j0, j1):
                        x[c, y, j * sw + x0] += cols[row, base + j]
    return 0
