from cython cimport floating
from libc.math cimport exp

# The estimator's per-call boundary: what a one-row prediction would otherwise
# spend in several numpy calls of a few microseconds each.


# Row-wise softmax of the output layer's logits, in double whatever their
# dtype. One pass per row instead of numpy's five calls (max, subtract, exp,
# sum, divide, and a float64 copy before them), each of which costs more than
# the arithmetic on a row of ten logits. A row is computed from that row only,
# in a fixed order, with the C library's exp: the bits depend on nothing else.


def softmax_rows(
    const floating[:, ::1] z,           # IN  (n, k) logits
    double[:, ::1] p,                   # OUT (n, k)
):
    """p[i] = exp(z[i] - max(z[i])) / sum(exp(z[i] - max(z[i]))), in double.

    The sum runs over the row in order. A row holding NaN or +inf (or only
    -inf) comes out all NaN, as numpy's formula gives.
    """
    cdef Py_ssize_t i, j, k = z.shape[1]
    cdef double top, total
    if k == 0:
        return
    with nogil:
        for i in range(z.shape[0]):
            top = z[i, 0]
            for j in range(1, k):
                # NaN never compares greater: a NaN makes exp(NaN - top) NaN below
                if z[i, j] > top:
                    top = z[i, j]
            total = 0
            for j in range(k):
                p[i, j] = exp(<double> z[i, j] - top)
                total = total + p[i, j]
            for j in range(k):
                p[i, j] = p[i, j] / total
