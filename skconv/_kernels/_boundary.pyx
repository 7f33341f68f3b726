from cython cimport floating
from libc.math cimport exp, isfinite

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


ctypedef fused floating_out:
    float
    double


def rows_to_images(
    const floating[:, ::1] rows,        # IN  (n, h * w * c), each row in (h, w, c) order
    floating_out[:, :, :, ::1] x,       # OUT (n, c, h, w)
):
    """x[n, c, i, j] = rows[n, (i * w + j) * n_channels + c], cast to x's dtype as numpy
    casts.

    Returns whether every value of ``x`` is finite: the check that input
    validation makes, done in the same pass as the copy, on the values cast
    (a double beyond float's range is infinite in a float32 model).
    """
    cdef Py_ssize_t n, c, i, j, n_channels = x.shape[1], h = x.shape[2], w = x.shape[3]
    cdef bint finite = True
    cdef floating v
    with nogil:
        for n in range(x.shape[0]):
            for c in range(n_channels):
                for i in range(h):
                    for j in range(w):
                        v = rows[n, (i * w + j) * n_channels + c]
                        x[n, c, i, j] = <floating_out> v
                        finite &= isfinite(x[n, c, i, j])
    return finite


ctypedef fused stored:
    unsigned char
    unsigned short
    float
    double


def check_block(
    const stored[:, ::1] block,         # IN  (n, n_features): rows of X as stored
    unsigned char[::1] bad,             # OUT (n,): 1 for a row holding NaN or +-inf
):
    """Flag the rows that are not finite; return the sum of squares of the
    finite rows' values, in double, summed row after row (for the raw-value
    warning). One pass over a block of X as stored: no cast copy. A row's
    sum runs in eight interleaved partial sums (a chain of one add per value
    would take four cycles a value), combined in a fixed order."""
    cdef Py_ssize_t n, f, lane, m = block.shape[1], m8 = block.shape[1] - block.shape[1] % 8
    cdef double v, row_sum, total = 0
    cdef double lanes[8]
    cdef bint finite
    with nogil:
        for n in range(block.shape[0]):
            finite = True
            for lane in range(8):
                lanes[lane] = 0
            for f in range(0, m8, 8):
                for lane in range(8):
                    v = <double>block[n, f + lane]
                    finite &= isfinite(v)
                    lanes[lane] = lanes[lane] + v * v
            row_sum = ((lanes[0] + lanes[4]) + (lanes[2] + lanes[6])) + \
                ((lanes[1] + lanes[5]) + (lanes[3] + lanes[7]))
            for f in range(m8, m):
                v = <double>block[n, f]
                finite &= isfinite(v)
                row_sum = row_sum + v * v
            bad[n] = not finite
            if finite:
                total = total + row_sum
    return total
