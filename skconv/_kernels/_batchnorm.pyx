# Batch normalization in training mode, one channel per task (batchnorm.h does a
# channel's passes on the products' SIMD path). A channel's sums run in one task
# in a fixed order (in double), so results are the same bits for any number of
# threads and on every path.
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport sqrt

from ._gemm cimport simd_path

cdef extern from "batchnorm.h":
    void skc_bn_forward_channel_s(const float *x, float *y, float *x_hat, Py_ssize_t n,
                                  Py_ssize_t stride, Py_ssize_t m, float scale, float shift,
                                  double eps, int relu, double *mean, double *var,
                                  int path) noexcept nogil
    void skc_bn_forward_channel_d(const double *x, double *y, double *x_hat, Py_ssize_t n,
                                  Py_ssize_t stride, Py_ssize_t m, double scale, double shift,
                                  double eps, int relu, double *mean, double *var,
                                  int path) noexcept nogil
    void skc_bn_backward_channel_s(const float *dy, const float *x, float center,
                                   float inv_std, int relu, float scale, float shift, float *dx,
                                   Py_ssize_t n, Py_ssize_t stride, Py_ssize_t m, double coef,
                                   float *dshift, float *dscale, int path) noexcept nogil
    void skc_bn_backward_channel_d(const double *dy, const double *x, double center,
                                   double inv_std, int relu, double scale, double shift,
                                   double *dx, Py_ssize_t n, Py_ssize_t stride, Py_ssize_t m,
                                   double coef, double *dshift, double *dscale,
                                   int path) noexcept nogil


def batch_norm_forward(
    const floating[:, :, ::1] x,        # IN  (n, c, m): statistics over n and m
    const floating[::1] scale,          # IN  (c,)
    const floating[::1] shift,          # IN  (c,)
    floating[:, :, ::1] y,              # OUT (n, c, m)
    double[::1] mean,                   # OUT (c,)
    double[::1] var,                    # OUT (c,), biased
    double eps,
    bint relu,                          # y = max(scale * x_hat + shift, 0)
    int n_threads,
    *,
    x_hat=None,                         # OUT (n, c, m) of x's dtype: (x - mean) / sqrt(var + eps), or None
):
    cdef Py_ssize_t c, n = x.shape[0], m = x.shape[2], stride = x.shape[1] * x.shape[2]
    cdef int path = simd_path()
    cdef floating[:, :, ::1] x_hat_v
    cdef bint keep_x_hat = x_hat is not None
    if keep_x_hat:
        x_hat_v = x_hat
    with nogil:
        for c in prange(x.shape[1], schedule='dynamic', num_threads=n_threads):
            if floating is float:
                skc_bn_forward_channel_s(&x[0, c, 0], &y[0, c, 0],
                                         &x_hat_v[0, c, 0] if keep_x_hat else NULL, n, stride, m,
                                         scale[c], shift[c], eps, relu, &mean[c], &var[c], path)
            else:
                skc_bn_forward_channel_d(&x[0, c, 0], &y[0, c, 0],
                                         &x_hat_v[0, c, 0] if keep_x_hat else NULL, n, stride, m,
                                         scale[c], shift[c], eps, relu, &mean[c], &var[c], path)


def batch_norm_backward(
    const floating[:, :, ::1] dy,       # IN  (n, c, m)
    const floating[:, :, ::1] x,        # IN  (n, c, m): the forward's input (or x_hat itself)
    const floating[::1] center,         # IN  (c,): x_hat = (x - center) * inv_std, per channel,
    const floating[::1] inv_std,        # IN  (c,)  as the forward pass computed it
    const double[::1] coef,             # IN  (c,): scale / sqrt(var + eps)
    bint relu,                          # dy is the gradient of max(scale * x_hat + shift, 0)
    const floating[::1] scale,          # IN  (c,)
    const floating[::1] shift,          # IN  (c,)
    floating[::1] dscale,               # OUT (c,)
    floating[::1] dshift,               # OUT (c,)
    int n_threads,
    *,
    dx=None,                            # OUT (n, c, m) of dy's dtype, or None; may be dy
):
    """The closed form per channel, with count = n * m and g the gradient of the
    batch norm's output (dy, or dy where scale * x_hat + shift > 0 with relu):

        dshift = sum(g)        dscale = sum(g * x_hat)
        dx = coef / count * (count * g - dshift - x_hat * dscale)
    """
    cdef Py_ssize_t c, n = dy.shape[0], m = dy.shape[2], stride = dy.shape[1] * dy.shape[2]
    cdef int path = simd_path()
    cdef floating[:, :, ::1] dx_v
    cdef bint need_dx = dx is not None
    if need_dx:
        dx_v = dx
    with nogil:
        for c in prange(dy.shape[1], schedule='dynamic', num_threads=n_threads):
            if floating is float:
                skc_bn_backward_channel_s(&dy[0, c, 0], &x[0, c, 0], center[c], inv_std[c], relu,
                                          scale[c], shift[c], &dx_v[0, c, 0] if need_dx else NULL,
                                          n, stride, m, coef[c], &dshift[c], &dscale[c], path)
            else:
                skc_bn_backward_channel_d(&dy[0, c, 0], &x[0, c, 0], center[c], inv_std[c], relu,
                                          scale[c], shift[c], &dx_v[0, c, 0] if need_dx else NULL,
                                          n, stride, m, coef[c], &dshift[c], &dscale[c], path)
