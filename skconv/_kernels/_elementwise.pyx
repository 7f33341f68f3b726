# Element-wise passes that numpy makes in two (and a temporary): one pass
# through memory each, which is what they cost on activations larger than the
# caches. Each element's arithmetic is numpy's, so the bits are the same.
from cython cimport floating
from cython.parallel cimport prange

from ._gemm cimport simd_path
from ._rows cimport rows_out

# elements of a task of add: a few pages, so that the threads split any size
cdef enum:
    BLOCK = 16384


def add(
    const floating[::1] a,              # IN  (size,)
    const floating[::1] b,              # IN  (size,)
    floating[::1] out,                  # OUT (size,), may be a or b
    bint relu,                          # then max(., 0), as np.maximum (NaN and -0.0 stay)
    int n_threads,
):
    cdef Py_ssize_t size = a.shape[0], block, start
    cdef int path = simd_path()
    if size == 0:
        return
    with nogil:
        for block in prange((size + BLOCK - 1) // BLOCK, schedule='static',
                            num_threads=n_threads):
            start = block * BLOCK
            rows_out(&a[start], 0, NULL, &b[start], 0, relu, 1, min(BLOCK, size - start),
                     &out[start], 0, path)


def relu_backward(
    floating[::1] dy,                   # IN/OUT (size,): times (y > 0), in place
    const floating[::1] y,              # IN  (size,): the ReLU's output
    int n_threads,
    *,
    copy=None,                          # OUT (size,) of dy's dtype: the same values, or None
):
    """dy *= (y > 0): a product, not a branch (which mispredicts on half the
    values), as np.multiply(dy, y > 0); NaN in dy stays NaN."""
    cdef Py_ssize_t i
    cdef floating zero = 0, mask, g
    cdef floating[::1] copy_v
    cdef bint keep = copy is not None
    if keep:
        copy_v = copy
    with nogil:
        if keep:
            for i in prange(dy.shape[0], schedule='static', num_threads=n_threads):
                # the mask in a statement of its own: GCC 12 vectorises it then
                mask = <floating> (y[i] > zero)
                g = dy[i] * mask
                dy[i] = g
                copy_v[i] = g
        else:
            for i in prange(dy.shape[0], schedule='static', num_threads=n_threads):
                mask = <floating> (y[i] > zero)
                dy[i] = dy[i] * mask
