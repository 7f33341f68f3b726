from cython cimport floating
from libc.string cimport memcpy, memset
from cython.parallel cimport prange

# Data augmentation fused with the batch gather: out[b] = T_k(x[k]) with
# k = rows[b], one pass over the batch, one image per thread. Each output
# value is computed by one thread from a fixed formula, so the result does not
# depend on the thread count. The transforms are drawn and checked in Python
# (skconv._augment); rows are in [0, x.shape[0]) and the per-image parameters
# are indexed by the image (k), not by its place in the batch.

# columns per pass of the bilinear kernel's two-pass inner loop (on the stack)
cdef enum:
    _CHUNK = 32


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
    cdef Py_ssize_t n_c = x.shape[1], h = x.shape[2], w = x.shape[3]
    cdef Py_ssize_t size = n_c * h * w
    if rows.shape[0] == 0 or size == 0:
        return
    # raw pointers: the inner loop indexes one image with plain offsets instead
    # of 4-D memoryview arithmetic, and the compiler can keep them in registers
    cdef const floating* x0 = &x[0, 0, 0, 0]
    cdef floating* out0 = &out[0, 0, 0, 0]
    cdef const double* coef0 = &coef[0, 0]
    with nogil:
        for b in prange(rows.shape[0], schedule='static', num_threads=n_threads):
            k = rows[b]
            # the usual single-channel image gets its own copy of the loop,
            # with the channel count a constant the compiler folds away
            if n_c == 1:
                _affine_one(x0 + k * size, out0 + b * size, 1, h, w, coef0 + 6 * k)
            else:
                _affine_one(x0 + k * size, out0 + b * size, n_c, h, w, coef0 + 6 * k)


cdef inline void _interval(
    double a,                           # the slope of the coordinate along a row
    double b,                           # its value at j = 0
    double n,                           # the image extent along that axis
    Py_ssize_t* lo,                     # IN/OUT: the columns kept, [lo, hi)
    Py_ssize_t* hi,                     # IN/OUT
) noexcept nogil:
    """Narrow [lo, hi) to about the columns j whose coordinate a * j + b lies
    in [0, n - 1); the caller settles the ends with the exact formula."""
    cdef double t0, t1
    if a == 0:
        if not (b >= 0 and b < n - 1):
            hi[0] = lo[0]
        return
    t0 = (0 - b) / a
    t1 = (n - 1 - b) / a
    if t0 > t1:
        t0, t1 = t1, t0
    # clamped in double first, so that a tiny slope cannot overflow the casts
    t0 = min(max(t0, <double>lo[0]), <double>hi[0])
    t1 = min(max(t1 + 1, <double>lo[0]), <double>hi[0])
    lo[0] = <Py_ssize_t>t0
    hi[0] = <Py_ssize_t>t1


cdef inline void _affine_one(
    const floating* src,                # IN  (n_c, h, w): the image
    floating* dst,                      # OUT (n_c, h, w)
    Py_ssize_t n_c,
    Py_ssize_t h,
    Py_ssize_t w,
    const double* a,                    # IN  (6,): the image's affine map
) noexcept nogil:
    cdef Py_ssize_t c, i, j, lo, hi
    # int: packed int32 <-> double conversions vectorize (augment_batch
    # refuses images of 2**31 rows or columns)
    cdef int t, m
    cdef int r_last = <int>(h - 2), q_last = <int>(w - 2)   # the last r0, q0 inside
    cdef double jd
    cdef Py_ssize_t plane = h * w
    cdef int rs[_CHUNK]
    cdef int qs[_CHUNK]
    cdef floating frs[_CHUNK]
    cdef floating fqs[_CHUNK]
    cdef double a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3], a4 = a[4], a5 = a[5]
    cdef double r, q, r_row, q_row
    cdef floating fr, fq, top, bottom
    cdef const floating* p
    cdef floating* d
    for i in range(h):
        r_row = a0 * i + a2
        q_row = a3 * i + a5
        d = dst + i * w
        # The columns [lo, hi) whose four neighbours are all inside, so that
        # they skip every test. Rounded products and sums are monotone, so
        # r = a1 * j + r_row is monotone in j (likewise q) and the columns
        # inside form one interval: a sub-interval whose two ends are checked
        # with the exact formula is inside throughout. The estimate only has
        # to be close: its ends step inwards until they pass.
        lo = 0
        hi = w
        _interval(a1, r_row, h, &lo, &hi)
        _interval(a4, q_row, w, &lo, &hi)
        while lo < hi and not _inside(a1 * lo + r_row, a4 * lo + q_row, h, w):
            lo += 1
        while lo < hi and not _inside(a1 * (hi - 1) + r_row, a4 * (hi - 1) + q_row, h, w):
            hi -= 1
        if lo == hi:
            lo = hi = w
        for j in range(lo):
            _affine_edge(src, d + j, a1 * j + r_row, a4 * j + q_row, n_c, h, w)
        # In chunks, two passes: the source points of a chunk first (no reads
        # from the image, so the compiler vectorizes it), then the gathers.
        j = lo
        while j < hi:
            m = min(_CHUNK, hi - j)
            jd = <double>j
            for t in range(m):
                # the same formula as in _affine_edge (jd + t is the column,
                # exactly), where r, q >= 0 make the truncation the floor.
                # The clamps change nothing when this rounds as _inside did;
                # they keep the reads inside the image in a build that
                # contracts one of the two into an FMA and not the other.
                r = a1 * (jd + t) + r_row
                q = a4 * (jd + t) + q_row
                rs[t] = min(<int>r, r_last)
                qs[t] = min(<int>q, q_last)
                frs[t] = <floating>(r - rs[t])
                fqs[t] = <floating>(q - qs[t])
            for t in range(m):
                p = src + <Py_ssize_t>rs[t] * w + qs[t]
                fr = frs[t]
                fq = fqs[t]
                for c in range(n_c):
                    top = p[0] + fq * (p[1] - p[0])
                    bottom = p[w] + fq * (p[w + 1] - p[w])
                    d[c * plane + j + t] = top + fr * (bottom - top)
                    p += plane
            j += m
        for j in range(hi, w):
            _affine_edge(src, d + j, a1 * j + r_row, a4 * j + q_row, n_c, h, w)


cdef inline bint _inside(double r, double q, Py_ssize_t h, Py_ssize_t w) noexcept nogil:
    """All four neighbours of (r, q) are inside the image."""
    return r >= 0 and r < h - 1 and q >= 0 and q < w - 1


cdef inline void _affine_edge(
    const floating* src,                # IN  (n_c, h, w): the image
    floating* d,                        # OUT the pixel in channel 0; channel c at c * h * w
    double r,                           # the source point
    double q,
    Py_ssize_t n_c,
    Py_ssize_t h,
    Py_ssize_t w,
) noexcept nogil:
    """One output pixel near or beyond the image's edge: the neighbours outside
    read as zeros."""
    cdef Py_ssize_t c, r0, q0
    cdef Py_ssize_t plane = h * w
    cdef floating fr, fq, x00, x01, x10, x11, top, bottom
    cdef bint in_r0, in_r1, in_q0, in_q1
    cdef const floating* p
    # far outside: no neighbour is inside (and no overflow below)
    if not (r > -1 and r < h and q > -1 and q < w):
        for c in range(n_c):
            d[c * plane] = 0
        return
    # floor of a number in (-1, h): truncate, then step down below 0
    r0 = <Py_ssize_t>r
    r0 = r0 - (r < r0)
    q0 = <Py_ssize_t>q
    q0 = q0 - (q < q0)
    fr = <floating>(r - r0)
    fq = <floating>(q - q0)
    in_r0 = r0 >= 0
    in_r1 = r0 + 1 < h
    in_q0 = q0 >= 0
    in_q1 = q0 + 1 < w
    for c in range(n_c):
        # the pointer is formed only for the neighbours inside
        p = src + c * plane
        x00 = p[r0 * w + q0] if in_r0 and in_q0 else 0
        x01 = p[r0 * w + q0 + 1] if in_r0 and in_q1 else 0
        x10 = p[(r0 + 1) * w + q0] if in_r1 and in_q0 else 0
        x11 = p[(r0 + 1) * w + q0 + 1] if in_r1 and in_q1 else 0
        # one lerp along the columns in each row, then one between the rows:
        # a zero fraction returns the pixel itself, exactly
        top = x00 + fq * (x01 - x00)
        bottom = x10 + fq * (x11 - x10)
        d[c * plane] = top + fr * (bottom - top)
