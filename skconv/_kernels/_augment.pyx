from cython cimport floating
from libc.math cimport floor
from libc.string cimport memcpy, memset
from cython.parallel cimport prange

# Data augmentation fused with the batch gather: out[b] = T_k(x[k]) with
# k = rows[b], one pass over the batch, one image per thread. Each output
# value is computed by one thread from a fixed formula, so the result does not
# depend on the thread count. The transforms are drawn and checked in Python
# (skconv._augment); rows are in [0, x.shape[0]) and the per-image parameters
# are indexed by the image (k), not by its place in the batch.


def shift_flip_gather(
    const floating[:, :, :, ::1] x,     # IN  (n, c, h, w)
    const Py_ssize_t[::1] rows,         # IN  (batch,): images of x to take
    const Py_ssize_t[:, ::1] shift,     # IN  (n, 2): (dy, dx) of each image of x
    const unsigned char[::1] flip,      # IN  (n,): 1 to mirror left-right, else 0
    floating[:, :, :, ::1] out,         # OUT (batch, c, h, w)
    int n_threads,
):
    """out[b, :, i, j] = x[k, :, i - dy, j' - dx] (zero outside), k = rows[b],
    j' = w - 1 - j when flipped, else j: exact copies, no arithmetic."""
    cdef Py_ssize_t b, k, c, i, j, r, dy, dx, j0, j1
    cdef Py_ssize_t n_c = x.shape[1], h = x.shape[2], w = x.shape[3]
    with nogil:
        for b in prange(rows.shape[0], schedule='static', num_threads=n_threads):
            k = rows[b]
            dy = shift[k, 0]
            dx = shift[k, 1]
            # the columns that have a source, the same with or without the flip
            j0 = max(dx, 0)
            j1 = min(w, w + dx)
            for c in range(n_c):
                for i in range(h):
                    r = i - dy
                    if r < 0 or r >= h or j0 >= j1:
                        memset(&out[b, c, i, 0], 0, w * sizeof(floating))
                        continue
                    if j0 > 0:
                        memset(&out[b, c, i, 0], 0, j0 * sizeof(floating))
                    if j1 < w:
                        memset(&out[b, c, i, j1], 0, (w - j1) * sizeof(floating))
                    if flip[k]:
                        for j in range(j0, j1):
                            out[b, c, i, j] = x[k, c, r, w - 1 - j + dx]
                    else:
                        memcpy(&out[b, c, i, j0], &x[k, c, r, j0 - dx],
                               (j1 - j0) * sizeof(floating))


def affine_gather(
    const floating[:, :, :, ::1] x,     # IN  (n, c, h, w)
    const Py_ssize_t[::1] rows,         # IN  (batch,): images of x to take
    const double[:, ::1] coef,          # IN  (n, 6): source = A @ (i, j) + t per image
    floating[:, :, :, ::1] out,         # OUT (batch, c, h, w)
    int n_threads,
):
    """Bilinear resampling at an affine map of the output grid, zero outside.

    For output pixel (i, j) of image k = rows[b], the source point is
    ``r = coef[k, 0] * i + coef[k, 1] * j + coef[k, 2]`` and
    ``q = coef[k, 3] * i + coef[k, 4] * j + coef[k, 5]``; the value is the
    bilinear interpolation of x[k, c] at (r, q), with the pixels outside the
    image read as zeros (scipy.ndimage's mode='grid-constant', order=1).
    """
    cdef Py_ssize_t b, k, c, i, j, r0, q0
    cdef Py_ssize_t n_c = x.shape[1], h = x.shape[2], w = x.shape[3]
    cdef double r, q, fr_d, fq_d
    cdef floating fr, fq, w00, w01, w10, w11, v
    cdef bint in_r0, in_r1, in_q0, in_q1
    with nogil:
        for b in prange(rows.shape[0], schedule='static', num_threads=n_threads):
            k = rows[b]
            for i in range(h):
                for j in range(w):
                    r = coef[k, 0] * i + coef[k, 1] * j + coef[k, 2]
                    q = coef[k, 3] * i + coef[k, 4] * j + coef[k, 5]
                    fr_d = floor(r)
                    fq_d = floor(q)
                    # far outside: no neighbour can be inside (and no overflow
                    # in the conversion to an index)
                    if fr_d < -1 or fr_d >= h or fq_d < -1 or fq_d >= w:
                        for c in range(n_c):
                            out[b, c, i, j] = 0
                        continue
                    r0 = <Py_ssize_t>fr_d
                    q0 = <Py_ssize_t>fq_d
                    fr = <floating>(r - fr_d)
                    fq = <floating>(q - fq_d)
                    w00 = (1 - fr) * (1 - fq)
                    w01 = (1 - fr) * fq
                    w10 = fr * (1 - fq)
                    w11 = fr * fq
                    in_r0 = r0 >= 0
                    in_r1 = r0 + 1 < h
                    in_q0 = q0 >= 0
                    in_q1 = q0 + 1 < w
                    if in_r0 and in_r1 and in_q0 and in_q1:
                        for c in range(n_c):
                            out[b, c, i, j] = (w00 * x[k, c, r0, q0] + w01 * x[k, c, r0, q0 + 1]
                                               + w10 * x[k, c, r0 + 1, q0]
                                               + w11 * x[k, c, r0 + 1, q0 + 1])
                        continue
                    for c in range(n_c):
                        v = 0
                        if in_r0 and in_q0:
                            v = v + w00 * x[k, c, r0, q0]
                        if in_r0 and in_q1:
                            v = v + w01 * x[k, c, r0, q0 + 1]
                        if in_r1 and in_q0:
                            v = v + w10 * x[k, c, r0 + 1, q0]
                        if in_r1 and in_q1:
                            v = v + w11 * x[k, c, r0 + 1, q0 + 1]
                        out[b, c, i, j] = v
