# Per-sample im2col / col2im, shared by the batch kernels in _im2col.pyx and
# the convolution in _conv.pyx. Rows of a column matrix are output positions
# (oh, ow) and its columns are (c, kh, kw), both row-major.
from libc.string cimport memset
from cython cimport floating


ctypedef struct Geometry:
    Py_ssize_t c, h, w      # input channels, height, width
    Py_ssize_t kh, kw       # kernel
    Py_ssize_t sh, sw       # stride
    Py_ssize_t ph, pw       # zero padding
    Py_ssize_t dh, dw       # dilation
    Py_ssize_t oh, ow       # output


cdef inline int im2col_sample(
    const floating[:, :, ::1] x,    # IN  (c, h, w)
    floating[:, ::1] cols,          # OUT (oh * ow, c * kh * kw)
    const Geometry *g,
) except -1 nogil:
    cdef Py_ssize_t i, j, c, ki, kj, row, col, y, xx
    for i in range(g.oh):
        for j in range(g.ow):
            row = i * g.ow + j
            col = 0
            for c in range(g.c):
                for ki in range(g.kh):
                    y = i * g.sh - g.ph + ki * g.dh
                    if y < 0 or y >= g.h:
                        for kj in range(g.kw):
                            cols[row, col + kj] = 0
                    else:
                        for kj in range(g.kw):
                            xx = j * g.sw - g.pw + kj * g.dw
                            if 0 <= xx < g.w:
                                cols[row, col + kj] = x[c, y, xx]
                            else:
                                cols[row, col + kj] = 0
                    col = col + g.kw
    return 0


cdef inline int col2im_sample(
    const floating[:, ::1] cols,    # IN  (oh * ow, c * kh * kw)
    floating[:, :, ::1] x,          # OUT (c, h, w), zeroed then accumulated
    const Geometry *g,
) except -1 nogil:
    # The exact adjoint of im2col_sample: every read there is an add here.
    cdef Py_ssize_t i, j, c, ki, kj, row, col, y, xx
    memset(&x[0, 0, 0], 0, g.c * g.h * g.w * sizeof(floating))
    for i in range(g.oh):
        for j in range(g.ow):
            row = i * g.ow + j
            col = 0
            for c in range(g.c):
                for ki in range(g.kh):
                    y = i * g.sh - g.ph + ki * g.dh
                    if 0 <= y < g.h:
                        for kj in range(g.kw):
                            xx = j * g.sw - g.pw + kj * g.dw
                            if 0 <= xx < g.w:
                                x[c, y, xx] += cols[row, col + kj]
                    col = col + g.kw
    return 0
