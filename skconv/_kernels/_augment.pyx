from cython cimport floating
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
    cdef Py_ssize_t b, k
    with nogil:
        for b in prange(rows.shape[0], schedule='static', num_threads=n_threads):
            k = rows[b]
            _affine_one(x, k, coef, out, b)


cdef inline void _affine_one(
    const floating[:, :, :, ::1] x,     # IN  (n, c, h, w)
    Py_ssize_t k,                       # the image of x
    const double[:, ::1] coef,          # IN  (n, 6)
    floating[:, :, :, ::1] out,         # OUT (batch, c, h, w)
    Py_ssize_t b,                       # the place of image k in out
) noexcept nogil:
    cdef Py_ssize_t c, i, j, r0, q0
    cdef Py_ssize_t n_c = x.shape[1], h = x.shape[2], w = x.shape[3]
    cdef double a0 = coef[k, 0], a1 = coef[k, 1], a2 = coef[k, 2]
    cdef double a3 = coef[k, 3], a4 = coef[k, 4], a5 = coef[k, 5]
    cdef double r, q, r_row, q_row
    cdef floating fr, fq, x00, x01, x10, x11, top, bottom
    cdef bint in_r0, in_r1, in_q0, in_q1
    for i in range(h):
        r_row = a0 * i + a2
        q_row = a3 * i + a5
        for j in range(w):
            r = a1 * j + r_row
            q = a4 * j + q_row
            # far outside: no neighbour is inside (and no overflow below)
            if not (r > -1 and r < h and q > -1 and q < w):
                for c in range(n_c):
                    out[b, c, i, j] = 0
                continue
            # floor of a number in (-1, h): truncate, then step down below 0
            r0 = <Py_ssize_t>r
            r0 = r0 - (r < r0)
            q0 = <Py_ssize_t>q
            q0 = q0 - (q < q0)
            fr = <floating>(r - r0)
            fq = <floating>(q - q0)
            if <size_t>r0 < <size_t>(h - 1) and <size_t>q0 < <size_t>(w - 1):
                # all four neighbours inside: the common case, no tests
                for c in range(n_c):
                    top = x[k, c, r0, q0] + fq * (x[k, c, r0, q0 + 1] - x[k, c, r0, q0])
                    bottom = x[k, c, r0 + 1, q0] + fq * (x[k, c, r0 + 1, q0 + 1]
                                                         - x[k, c, r0 + 1, q0])
                    out[b, c, i, j] = top + fr * (bottom - top)
                continue
            in_r0 = r0 >= 0
            in_r1 = r0 + 1 < h
            in_q0 = q0 >= 0
            in_q1 = q0 + 1 < w
            for c in range(n_c):
                # the neighbours outside the image read as zeros
                x00 = x[k, c, r0, q0] if in_r0 and in_q0 else 0
                x01 = x[k, c, r0, q0 + 1] if in_r0 and in_q1 else 0
                x10 = x[k, c, r0 + 1, q0] if in_r1 and in_q0 else 0
                x11 = x[k, c, r0 + 1, q0 + 1] if in_r1 and in_q1 else 0
                # one lerp along the columns in each row, then one between the
                # rows (the same formula as above): a zero fraction returns the
                # pixel itself, exactly
                top = x00 + fq * (x01 - x00)
                bottom = x10 + fq * (x11 - x10)
                out[b, c, i, j] = top + fr * (bottom - top)
