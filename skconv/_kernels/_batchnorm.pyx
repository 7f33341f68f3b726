from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport sqrt

# Batch normalization in training mode, one channel per thread. A channel's
# sums run in one thread in a fixed order (in double), so results are the
# same bits for any number of threads.


# Four running sums, not one: a single accumulator makes every add wait for
# the previous one (the C compiler may not reorder floating-point adds), which
# left these passes ~4x slower than memory allows.
cdef inline double _sum(const floating *a, Py_ssize_t m, double shift) noexcept nogil:
    """sum(a[k] - shift)."""
    cdef double s0 = 0, s1 = 0, s2 = 0, s3 = 0
    cdef Py_ssize_t k = 0
    while k + 4 <= m:
        s0 += a[k] - shift
        s1 += a[k + 1] - shift
        s2 += a[k + 2] - shift
        s3 += a[k + 3] - shift
        k += 4
    while k < m:
        s0 += a[k] - shift
        k += 1
    return (s0 + s1) + (s2 + s3)


cdef inline double _sum_sq(const floating *a, Py_ssize_t m, double shift) noexcept nogil:
    """sum((a[k] - shift) ** 2)."""
    cdef double s0 = 0, s1 = 0, s2 = 0, s3 = 0, d0, d1, d2, d3
    cdef Py_ssize_t k = 0
    while k + 4 <= m:
        d0 = a[k] - shift
        d1 = a[k + 1] - shift
        d2 = a[k + 2] - shift
        d3 = a[k + 3] - shift
        s0 += d0 * d0
        s1 += d1 * d1
        s2 += d2 * d2
        s3 += d3 * d3
        k += 4
    while k < m:
        d0 = a[k] - shift
        s0 += d0 * d0
        k += 1
    return (s0 + s1) + (s2 + s3)


cdef inline double _dot(const floating *a, const floating *b, Py_ssize_t m) noexcept nogil:
    """sum(a[k] * b[k])."""
    cdef double s0 = 0, s1 = 0, s2 = 0, s3 = 0
    cdef Py_ssize_t k = 0
    while k + 4 <= m:
        s0 += <double> a[k] * b[k]
        s1 += <double> a[k + 1] * b[k + 1]
        s2 += <double> a[k + 2] * b[k + 2]
        s3 += <double> a[k + 3] * b[k + 3]
        k += 4
    while k < m:
        s0 += <double> a[k] * b[k]
        k += 1
    return (s0 + s1) + (s2 + s3)


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
    cdef double s, mu, inv_std, count = x.shape[0] * x.shape[2]
    cdef floating mu_f, inv_std_f, g_f, b_f, d_f
    with nogil:
        for c in prange(x.shape[1], schedule='dynamic', num_threads=n_threads):
            s = 0
            for n in range(n_samples):
                s = s + _sum(&x[n, c, 0], m, 0)
            mu = s / count
            # a second pass for the variance: no cancellation as in E[x^2] - E[x]^2
            s = 0
            for n in range(n_samples):
                s = s + _sum_sq(&x[n, c, 0], m, mu)
            mean[c] = mu
            var[c] = s / count
            inv_std = 1 / sqrt(s / count + eps)
            # the element-wise pass in the array's own precision, so it vectorises
            mu_f = <floating> mu
            inv_std_f = <floating> inv_std
            g_f = scale[c]
            b_f = shift[c]
            for n in range(n_samples):
                for k in range(m):
                    d_f = (x[n, c, k] - mu_f) * inv_std_f
                    x_hat[n, c, k] = d_f
                    y[n, c, k] = g_f * d_f + b_f


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
    cdef double s_dy, s_dyx, count = dy.shape[0] * dy.shape[2]
    cdef floating coef_f, mean_dy_f, mean_dyx_f
    cdef bint need_dx = dx.shape[0] > 0
    with nogil:
        for c in prange(dy.shape[1], schedule='dynamic', num_threads=n_threads):
            s_dy = 0
            s_dyx = 0
            for n in range(n_samples):
                s_dy = s_dy + _sum(&dy[n, c, 0], m, 0)
                s_dyx = s_dyx + _dot(&dy[n, c, 0], &x_hat[n, c, 0], m)
            dshift[c] = s_dy
            dscale[c] = s_dyx
            if need_dx:
                # dx = coef * (count * dy - s_dy - x_hat * s_dyx), in the array's precision
                coef_f = <floating> (scale[c] / sqrt(var[c] + eps))
                mean_dy_f = <floating> (s_dy / count)
                mean_dyx_f = <floating> (s_dyx / count)
                for n in range(n_samples):
                    for k in range(m):
                        dx[n, c, k] = coef_f * (dy[n, c, k] - mean_dy_f - x_hat[n, c, k] * mean_dyx_f)
