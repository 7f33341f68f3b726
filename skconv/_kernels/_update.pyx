# The optimizer's update of every parameter in one pass. As numpy ufuncs it
# was a dozen passes over all the parameters per batch (~1 ms for the default
# net's 0.5 M), serial while the products around it run on every thread.
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport sqrt, sqrtf


def adam_update(
    floating[::1] params,               # IN/OUT (n_params,)
    const floating[::1] grads,          # IN  (n_params,)
    floating[::1] m,                    # IN/OUT first moments
    floating[::1] v,                    # IN/OUT second moments
    double beta_1,
    double beta_2,
    double learning_rate,               # bias correction included
    double epsilon,
    int n_threads,
):
    """m = beta_1 m + (1 - beta_1) g, v = beta_2 v + (1 - beta_2) g^2,
    params -= m / (sqrt(v) + epsilon) * learning_rate, element by element.

    Each constant is rounded to the parameters' dtype and each operation
    rounds in that dtype, in the order numpy's in-place ufuncs took: the
    same bits as those (the build forbids contracting a * b + c into an FMA).
    """
    cdef floating b1 = beta_1, c1 = 1 - beta_1, b2 = beta_2, c2 = 1 - beta_2
    cdef floating lr = learning_rate, eps = epsilon, root
    cdef Py_ssize_t i
    with nogil:
        for i in prange(params.shape[0], schedule='static', num_threads=n_threads):
            m[i] = m[i] * b1 + grads[i] * c1
            v[i] = v[i] * b2 + (grads[i] * grads[i]) * c2
            if floating is float:
                root = sqrtf(v[i])
            else:
                root = sqrt(v[i])
            params[i] = params[i] - m[i] / (root + eps) * lr
