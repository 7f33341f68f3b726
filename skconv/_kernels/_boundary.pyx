from cython cimport floating
from libc.math cimport isfinite


cdef extern from "elementary.h" nogil:
    double skc_exp(double x)
    double skc_log(double x)
    double skc_log1p(double t)

# The estimator's per-call boundary: what a one-row prediction would otherwise
# spend in several numpy calls of a few microseconds each.


# Row-wise softmax of the output layer's logits, in double whatever their
# dtype. One pass per row instead of numpy's five calls (max, subtract, exp,
# sum, divide, and a float64 copy before them), each of which costs more than
# the arithmetic on a row of ten logits. A row is computed from that row only,
# in a fixed order, with elementary.h's exp and log (the C library's and
# numpy's differ from one CPU to another): the bits depend on nothing else.
# The output activations' other forms (log-softmax, the logistic and its log,
# the exponential) are here for the same reason.


def softmax_rows(
    const floating[:, ::1] z,           # IN  (n, k) logits
    double[:, ::1] out,                 # OUT (n, k)
    bint log,
):
    """out[i] = exp(z[i] - max(z[i])) / sum(exp(z[i] - max(z[i]))), in double; with
    ``log`` its log, (z[i] - max(z[i])) - log(sum(exp(z[i] - max(z[i])))).

    The sum runs over the row in order. A row holding NaN or +inf (or only
    -inf) comes out all NaN, as numpy's formula gives.
    """
    cdef Py_ssize_t i, j, k = z.shape[1]
    cdef double top, total, shifted, e
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
                shifted = <double> z[i, j] - top
                e = skc_exp(shifted)
                out[i, j] = shifted if log else e
                total = total + e
            if log:
                total = skc_log(total)
                for j in range(k):
                    out[i, j] = out[i, j] - total
            else:
                for j in range(k):
                    out[i, j] = out[i, j] / total


def logistic_values(
    const floating[:, ::1] z,           # IN  (n, k) logits
    double[:, ::1] out,                 # OUT (n, k)
    bint log,
):
    """out = 1 / (1 + exp(-z)), or with ``log`` its log, -log1p(exp(-z)), in double,
    either without overflow: exp is taken of -|z| only."""
    cdef Py_ssize_t i, j
    cdef double v, e
    with nogil:
        for i in range(z.shape[0]):
            for j in range(z.shape[1]):
                v = z[i, j]
                e = skc_exp(-v if v >= 0 else v)
                if log:
                    out[i, j] = -(skc_log1p(e) + (-v if v < 0 else 0.0))
                elif v >= 0:
                    out[i, j] = 1 / (1 + e)
                else:
                    out[i, j] = e / (1 + e)


def exp_values(
    const floating[:, ::1] z,           # IN  (n, k)
    double[:, ::1] out,                 # OUT (n, k)
):
    """out = exp(z), in double."""
    cdef Py_ssize_t i, j
    with nogil:
        for i in range(z.shape[0]):
            for j in range(z.shape[1]):
                out[i, j] = skc_exp(z[i, j])


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
