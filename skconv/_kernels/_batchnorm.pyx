# Batch normalization in training mode, a range of channels per thread
# (batchnorm.h does the passes on the products' SIMD path). A channel's sums run
# in one thread in a fixed order (in double), so results are the same bits for
# any number of threads and on every path.
from cython cimport floating
from cython.parallel cimport prange

from ._gemm cimport simd_path

# doubles of work a channel: its sums' lanes
WORK_PER_CHANNEL = 2 * SKC_BN_LANES


def batch_norm_forward(
    const floating[:, :, ::1] x,        # IN  (n, c, m): statistics over n and m
    const floating[::1] scale,          # IN  (c,)
    const floating[::1] shift,          # IN  (c,)
    floating[:, :, ::1] y,              # OUT (n, c, m)
    double[::1] mean,                   # OUT (c,)
    double[::1] var,                    # OUT (c,), biased
    double[:, ::1] work,                # IN/OUT (c, WORK_PER_CHANNEL) zeros
    double eps,
    bint relu,                          # y = max(scale * x_hat + shift, 0)
    Py_ssize_t group,                   # channels a task
    int n_threads,
    *,
    x_hat=None,                         # OUT (n, c, m) of x's dtype: (x - mean) / sqrt(var + eps), or None
    residual=None,                      # IN  (n, c, m) of x's dtype, or None
):
    """A task is ``group`` channels, both passes over them (a channel's sums are
    one thread's, in a fixed order: the same bits for any thread count).

    With ``residual``, y = scale * x_hat + shift + residual, then with ``relu``
    max(., 0) as np.maximum computes it (NaN and -0.0 stay): the bits of the
    batch norm written out, then a residual block's addition and ReLU."""
    cdef Py_ssize_t t, c0, c1, channels = x.shape[1], tasks = (channels + group - 1) // group
    cdef int path = simd_path()
    cdef floating *x_hat_p = NULL
    cdef const floating *res_p = NULL
    cdef floating[:, :, ::1] x_hat_v
    cdef const floating[:, :, ::1] res_v
    if x_hat is not None:
        x_hat_v = x_hat
        x_hat_p = &x_hat_v[0, 0, 0]
    if residual is not None:
        res_v = residual
        if res_v.shape[0] != x.shape[0] or res_v.shape[1] != x.shape[1] or res_v.shape[2] != x.shape[2]:
            raise ValueError("the residual's shape is not the batch norm's")
        res_p = &res_v[0, 0, 0]
    n_threads = max(1, min(n_threads, tasks))
    with nogil:
        for t in prange(tasks, schedule='dynamic', num_threads=n_threads):
            c0 = t * group
            c1 = min(c0 + group, channels)
            if floating is float:
                skc_bn_forward_s(&x[0, 0, 0], &y[0, 0, 0], x_hat_p, x.shape[0], channels,
                                 x.shape[2], c0, c1, &scale[0], &shift[0], eps, relu, res_p,
                                 &mean[0], &var[0], &work[c0, 0], path)
            else:
                skc_bn_forward_d(&x[0, 0, 0], &y[0, 0, 0], x_hat_p, x.shape[0], channels,
                                 x.shape[2], c0, c1, &scale[0], &shift[0], eps, relu, res_p,
                                 &mean[0], &var[0], &work[c0, 0], path)


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
    double[:, ::1] work,                # IN/OUT (c, WORK_PER_CHANNEL) zeros
    Py_ssize_t group,                   # channels a task
    int n_threads,
    *,
    dx=None,                            # OUT (n, c, m) of dy's dtype, or None; may be dy
    after=None,                         # IN  (n, c, m) of dy's dtype, or None (not with relu)
    g_out=None,                         # OUT (n, c, m) of dy's dtype with after; may be dy
):
    """The closed form per channel, with count = n * m and g the gradient of the
    batch norm's output (dy, or dy where scale * x_hat + shift > 0 with relu):

        dshift = sum(g)        dscale = sum(g * x_hat)
        dx = coef / count * (count * g - dshift - x_hat * dscale)

    With ``after``, the output of a ReLU after the batch norm's addition (a
    residual block's), g = dy * (after > 0), as _elementwise.relu_backward
    computes it, written to ``g_out`` as it is formed: the gradient of the
    addition's other input too.
    """
    cdef Py_ssize_t t, c0, c1, channels = dy.shape[1], tasks = (channels + group - 1) // group
    cdef int path = simd_path()
    cdef floating *dx_p = NULL
    cdef floating *g_p = NULL
    cdef const floating *after_p = NULL
    cdef floating[:, :, ::1] dx_v, g_v
    cdef const floating[:, :, ::1] after_v
    if dx is not None:
        dx_v = dx
        dx_p = &dx_v[0, 0, 0]
    if after is not None:
        after_v, g_v = after, g_out
        for t in range(3):
            if after_v.shape[t] != dy.shape[t] or g_v.shape[t] != dy.shape[t]:
                raise ValueError("after and g_out take dy's shape")
        if relu:
            raise ValueError("after is a ReLU after the batch norm's addition: no relu before it")
        after_p, g_p = &after_v[0, 0, 0], &g_v[0, 0, 0]
    n_threads = max(1, min(n_threads, tasks))
    with nogil:
        for t in prange(tasks, schedule='dynamic', num_threads=n_threads):
            c0 = t * group
            c1 = min(c0 + group, channels)
            if floating is float:
                skc_bn_backward_s(&dy[0, 0, 0], &x[0, 0, 0], &center[0], &inv_std[0], relu,
                                  &scale[0], &shift[0], dx_p, dy.shape[0], channels,
                                  dy.shape[2], c0, c1, &coef[0], &dshift[0], &dscale[0],
                                  &work[c0, 0], after_p, g_p, path)
            else:
                skc_bn_backward_d(&dy[0, 0, 0], &x[0, 0, 0], &center[0], &inv_std[0], relu,
                                  &scale[0], &shift[0], dx_p, dy.shape[0], channels,
                                  dy.shape[2], c0, c1, &coef[0], &dshift[0], &dscale[0],
                                  &work[c0, 0], after_p, g_p, path)


def batch_norm_input_gradient(
    const floating[:, :, ::1] g,        # IN  (n, c, m): batch_norm_backward's dy (g_out with after)
    const floating[:, :, ::1] x,        # IN  (n, c, m): as batch_norm_backward's
    const floating[::1] center,         # IN  (c,)
    const floating[::1] inv_std,        # IN  (c,)
    const double[::1] coef,             # IN  (c,)
    bint relu,
    const floating[::1] scale,          # IN  (c,)
    const floating[::1] shift,          # IN  (c,)
    double[:, ::1] work,                # IN  (c, WORK_PER_CHANNEL): a batch_norm_backward's
                                        #     without dx, its factors at each channel's start
    floating[:, :, ::1] dx,             # OUT (n, c, m)
    Py_ssize_t group,                   # channels a task
    int n_threads,
):
    """The dx of a batch_norm_backward called without it, from the factors it
    left in ``work``: its second pass, the same bits."""
    cdef Py_ssize_t t, c0, c1, channels = g.shape[1], tasks = (channels + group - 1) // group
    cdef int path = simd_path()
    for t in range(3):
        if x.shape[t] != g.shape[t] or dx.shape[t] != g.shape[t]:
            raise ValueError("x and dx take g's shape")
    if work.shape[0] != channels or work.shape[1] != WORK_PER_CHANNEL:
        raise ValueError("work takes WORK_PER_CHANNEL doubles a channel")
    n_threads = max(1, min(n_threads, tasks))
    with nogil:
        for t in prange(tasks, schedule='dynamic', num_threads=n_threads):
            c0 = t * group
            c1 = min(c0 + group, channels)
            if floating is float:
                skc_bn_dx_rows_s(&g[0, 0, 0], &x[0, 0, 0], &center[0], &inv_std[0], relu,
                                 &scale[0], &shift[0], &dx[0, 0, 0], g.shape[0], channels,
                                 g.shape[2], c0, c1, &coef[0], &work[c0, 0], path)
            else:
                skc_bn_dx_rows_d(&g[0, 0, 0], &x[0, 0, 0], &center[0], &inv_std[0], relu,
                                 &scale[0], &shift[0], &dx[0, 0, 0], g.shape[0], channels,
                                 g.shape[2], c0, c1, &coef[0], &work[c0, 0], path)
