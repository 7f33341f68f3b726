from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport sqrt

# Batch normalization in training mode, one channel per thread. A channel's
# sums run in one thread in a fixed order (in double), so results are the
# same bits for any number of threads.


# Sixteen running sums in a fixed pattern, not one: a single accumulator makes
# every add wait for the previous one (the C compiler may not reorder
# floating-point adds), while sixteen independent lanes vectorise as they
# are, and their final combination is a fixed tree. The bits are the same on
# every SIMD width and for any thread count.
cdef enum:
    LANES = 16


cdef inline double _combine(double *acc) noexcept nogil:
    cdef int width = LANES // 2, j
    while width >= 1:
        for j in range(width):
            acc[j] = acc[j] + acc[j + width]
        width = width // 2
    return acc[0]


cdef inline double _sum(const floating *a, Py_ssize_t m, double shift) noexcept nogil:
    """sum(a[k] - shift)."""
    cdef double acc[LANES]
    cdef Py_ssize_t k = 0
    cdef int j
    for j in range(LANES):
        acc[j] = 0
    while k + LANES <= m:
        for j in range(LANES):
            acc[j] += a[k + j] - shift
        k += LANES
    for j in range(m - k):
        acc[j] += a[k + j] - shift
    return _combine(acc)


cdef inline double _sum_sq(const floating *a, Py_ssize_t m, double shift) noexcept nogil:
    """sum((a[k] - shift) ** 2)."""
    cdef double acc[LANES]
    cdef double d
    cdef Py_ssize_t k = 0
    cdef int j
    for j in range(LANES):
        acc[j] = 0
    while k + LANES <= m:
        for j in range(LANES):
            d = a[k + j] - shift
            acc[j] += d * d
        k += LANES
    for j in range(m - k):
        d = a[k + j] - shift
        acc[j] += d * d
    return _combine(acc)


cdef inline void _sums(const floating *dy, const floating *x_hat, Py_ssize_t m,
                       double *s_dy, double *s_dyx) noexcept nogil:
    """s_dy += sum(dy), s_dyx += sum(dy * x_hat)."""
    cdef double a1[LANES]
    cdef double a2[LANES]
    cdef Py_ssize_t k = 0
    cdef int j
    for j in range(LANES):
        a1[j] = 0
        a2[j] = 0
    while k + LANES <= m:
        for j in range(LANES):
            a1[j] += dy[k + j]
            a2[j] += <double> dy[k + j] * x_hat[k + j]
        k += LANES
    for j in range(m - k):
        a1[j] += dy[k + j]
        a2[j] += <double> dy[k + j] * x_hat[k + j]
    s_dy[0] += _combine(a1)
    s_dyx[0] += _combine(a2)


cdef inline void _unmask(const floating *dy, const floating *y, floating *g,
                         Py_ssize_t m) noexcept nogil:
    """g = dy * (y > 0): the gradient through the ReLU whose output is y. A product,
    not a branch (which mispredicts on half the values), as np.multiply(dy, y > 0)."""
    cdef Py_ssize_t k
    # the mask in a statement of its own: GCC 12 if-converts (and vectorises) the
    # comparison then, not when it sits inside the product
    cdef floating zero = 0, mask
    for k in range(m):
        mask = <floating> (y[k] > zero)
        g[k] = dy[k] * mask


def batch_norm_forward(
    const floating[:, :, ::1] x,        # IN  (n, c, m): statistics over n and m
    const floating[::1] scale,          # IN  (c,)
    const floating[::1] shift,          # IN  (c,)
    floating[:, :, ::1] y,              # OUT (n, c, m)
    floating[:, :, ::1] x_hat,          # OUT (n, c, m): (x - mean) / sqrt(var + eps)
    double[::1] mean,                   # OUT (c,)
    double[::1] var,                    # OUT (c,), biased
    double eps,
    bint relu,                          # y = max(scale * x_hat + shift, 0)
    int n_threads,
):
    cdef Py_ssize_t n, c, k, n_samples = x.shape[0], m = x.shape[2]
    cdef double s, mu, inv_std, count = x.shape[0] * x.shape[2]
    cdef floating mu_f, inv_std_f, g_f, b_f, d_f, v_f
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
                    v_f = g_f * d_f + b_f
                    y[n, c, k] = (v_f if v_f > 0 else 0) if relu else v_f


def batch_norm_backward(
    const floating[:, :, ::1] dy,       # IN  (n, c, m)
    const floating[:, :, ::1] x_hat,    # IN  (n, c, m), from batch_norm_forward
    const floating[:, :, ::1] relu_y,   # IN  (n, c, m): y of a forward with relu, or (0, 0, 0)
    const floating[::1] scale,          # IN  (c,)
    const double[::1] var,              # IN  (c,), from batch_norm_forward
    double eps,
    floating[:, :, ::1] dx,             # OUT (n, c, m), or (0, 0, 0) to skip dx
    floating[::1] dscale,               # OUT (c,)
    floating[::1] dshift,               # OUT (c,)
    floating[:, :, ::1] work,           # OUT (n, c, m) scratch with relu_y, else (0, 0, 0)
    int n_threads,
):
    """The closed form per channel, with count = n * m and g the gradient of the
    batch norm's output (dy, or dy where relu_y > 0 after a ReLU):

        dshift = sum(g)        dscale = sum(g * x_hat)
        dx = scale / sqrt(var + eps) / count * (count * g - dshift - x_hat * dscale)
    """
    cdef Py_ssize_t n, c, k, n_samples = dy.shape[0], m = dy.shape[2]
    cdef double s_dy, s_dyx, count = dy.shape[0] * dy.shape[2]
    cdef floating coef_f, mean_dy_f, mean_dyx_f
    cdef bint need_dx = dx.shape[0] > 0, masked = relu_y.shape[0] > 0
    cdef const floating *g
    with nogil:
        for c in prange(dy.shape[1], schedule='dynamic', num_threads=n_threads):
            s_dy = 0
            s_dyx = 0
            for n in range(n_samples):
                g = &dy[n, c, 0]
                if masked:
                    # the masked gradient goes to work[n, c], read back below
                    _unmask(g, &relu_y[n, c, 0], &work[n, c, 0], m)
                    g = &work[n, c, 0]
                _sums(g, &x_hat[n, c, 0], m, &s_dy, &s_dyx)
            dshift[c] = s_dy
            dscale[c] = s_dyx
            if need_dx:
                # dx = coef * (g - mean(g) - x_hat * mean(g * x_hat)), in the array's precision
                coef_f = <floating> (scale[c] / sqrt(var[c] + eps))
                mean_dy_f = <floating> (s_dy / count)
                mean_dyx_f = <floating> (s_dyx / count)
                for n in range(n_samples):
                    g = &work[n, c, 0] if masked else &dy[n, c, 0]
                    for k in range(m):
                        dx[n, c, k] = coef_f * (g[k] - mean_dy_f - x_hat[n, c, k] * mean_dyx_f)
