# A sum whose order is a property of this code, not of numpy or the compiler:
# shared by the convolutions' bias gradients, the global pooling and the
# depthwise convolution's weight gradient.
from cython cimport floating


cdef inline floating fixed_order_sum(const floating *v, Py_ssize_t n) noexcept nogil:
    """v[0] + ... + v[n - 1] in eight interleaved partial sums, then a fixed tree.

    The order depends on n only, so the bits do not depend on threads, batches
    or the SIMD path; the eight independent chains let the compiler use one
    vector of them instead of one four-cycle add per element.
    """
    cdef floating lanes[8]
    cdef Py_ssize_t i, lane, n8 = n - n % 8
    cdef floating total
    for lane in range(8):
        lanes[lane] = 0
    for i in range(0, n8, 8):
        for lane in range(8):
            lanes[lane] = lanes[lane] + v[i + lane]
    total = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5])
                                                               + (lanes[6] + lanes[7]))
    for i in range(n8, n):
        total = total + v[i]
    return total
