from cython.parallel cimport prange


def im2col(
    const floating[:, :, :, ::1] x,     # IN  (n, c, h, w)
    floating[:, :, ::1] cols,           # OUT (n, c * kh * kw, oh * ow)
    Geometry g,
    int n_threads,
):
    cdef Py_ssize_t n
    with nogil:
        for n in prange(x.shape[0], schedule='static', num_threads=n_threads):
            im2col_sample(x[n], cols[n], &g)


def col2im(
    const floating[:, :, ::1] cols,     # IN  (n, c * kh * kw, oh * ow)
    floating[:, :, :, ::1] x,           # OUT (n, c, h, w)
    Geometry g,
    int n_threads,
):
    cdef Py_ssize_t n
    with nogil:
        for n in prange(x.shape[0], schedule='static', num_threads=n_threads):
            col2im_sample(cols[n], x[n], &g)
