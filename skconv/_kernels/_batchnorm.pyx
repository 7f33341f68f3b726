from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport sqrt

# Batch normalization in training mode, one channel per thread. A channel's
# sums run in one thread in a fixed order (in double), so results are the
# same bits for any number of threads.


def batch_norm_forward(
    const floating[:, :, ::1] x,        # IN  (n, c, m): statistics over n and m
    const floating[::1] scale,          # IN  (c,)
    const floating[::1] shift,          # IN  (c,)
    floating[:, :, ::1] y,              # OUT (n, c, m)
    floating[:, :, ::1] x_hat,          # OUT (n, c, m): (x - mean) / sqrt(var + eps)
    double[::1] mean,                   # OUT (c,)
    double[::1] var,                    # OUT (c,), biased
    double eps,
    int n_threads,
):
    cdef Py_ssize_t n, c, k, n_samples = x.shape[0], m = x.shape[2]
    cdef double s, d, mu, inv_std, g, b, count = x.shape[0] * x.shape[2]
    with nogil:
        for c in prange(x.shape[1], schedule='static', num_threads=n_threads):
            s = 0
            for n in range(n_samples):
                for k in range(m):
                    s = s + x[n, c, k]
            mu = s / count
            # a second pass for the variance: no cancellation as in E[x^2] - E[x]^2
            s = 0
            for n in range(n_samples):
                for k in range(m):
                    d = x[n, c, k] - mu
                    s = s + d * d
            mean[c] = mu
            var[c] = s / count
            inv_std = 1 / sqrt(s / count + eps)
            g = scale[c]
            b = shift[c]
            for n in range(n_samples):
                for k in range(m):
                    d = (x[n, c, k] - mu) * inv_std
                    x_hat[n, c, k] = d
                    y[n, c, k] = g * d + b


def batch_norm_backward(
    const floating[:, :, ::1] dy,       # IN  (n, c, m)
    const floating[:, :, ::1] x_hat,    # IN  (n, c, m), from batch_norm_forward
    const floating[::1] scale,          # IN  (c,)
    const double[::1] var,              # IN  (c,), from batch_norm_forward
    double eps,
    floating[:, :, ::1] dx,             # OUT (n, c, m), or (0, 0, 0) to skip dx
    floating[::1] dscale,               # OUT (c,)
    floating[::1] dshift,               # OUT (c,)
    int n_threads,
):
    """The closed form per channel, with count = n * m:

        dshift = sum(dy)        dscale = sum(dy * x_hat)
        dx = scale / sqrt(var + eps) / count * (count * dy - dshift - x_hat * dscale)
    """
    cdef Py_ssize_t n, c, k, n_samples = dy.shape[0], m = dy.shape[2]
    cdef double s_dy, s_dyx, coef, count = dy.shape[0] * dy.shape[2]
    cdef bint need_dx = dx.shape[0] > 0
    with nogil:
        for c in prange(dy.shape[1], schedule='static', num_threads=n_threads):
            s_dy = 0
            s_dyx = 0
            for n in range(n_samples):
                for k in range(m):
                    s_dy = s_dy + dy[n, c, k]
                    s_dyx = s_dyx + dy[n, c, k] * x_hat[n, c, k]
            dshift[c] = s_dy
            dscale[c] = s_dyx
            if need_dx:
                coef = scale[c] / sqrt(var[c] + eps) / count
                for n in range(n_samples):
                    for k in range(m):
                        dx[n, c, k] = coef * (count * dy[n, c, k] - s_dy - x_hat[n, c, k] * s_dyx)
