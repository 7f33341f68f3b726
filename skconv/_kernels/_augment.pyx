from cython cimport floating
from libc.string cimport memcpy, memset
from cython.parallel cimport prange

# Data augmentation fused with the batch gather: out[b] = T_k(x[k]) with
# k = rows[b], one pass over the batch, one image per thread. Each output
# value is computed by one thread from a fixed formula, so the result does not
# depend on the thread count. The transforms are drawn and checked in Python
# (skconv._augment); rows are in [0, x.shape[0]) and the per-image parameters
# are indexed by the image (k), not by its place in the batch.

# what X may be stored as: the estimator's batch gather reads it as it is
ctypedef fused stored:
    unsigned char
    unsigned short
    float
    double


cdef inline floating _load(stored v, floating divisor, bint scaled) noexcept nogil:
    """One stored value in the model dtype, divided by the input scale if any."""
    cdef floating x = <floating>v
    if scaled:
        return x / divisor
    return x


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
            _affine_edge(src, d + j, a1 * j + r_row, a4 * j + q_row, n_c, h, w, plane, 1,
                         1, False)
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
            _affine_edge(src, d + j, a1 * j + r_row, a4 * j + q_row, n_c, h, w, plane, 1,
                         1, False)


cdef inline bint _inside(double r, double q, Py_ssize_t h, Py_ssize_t w) noexcept nogil:
    """All four neighbours of (r, q) are inside the image."""
    return r >= 0 and r < h - 1 and q >= 0 and q < w - 1


cdef inline void _affine_edge(
    const stored* src,                  # IN  one image, value (c, i, j) at
                                        #     c * s_c + (i * w + j) * s_p
    floating* d,                        # OUT the pixel in channel 0; channel c at c * h * w
    double r,                           # the source point
    double q,
    Py_ssize_t n_c,
    Py_ssize_t h,
    Py_ssize_t w,
    Py_ssize_t s_c,                     # h * w and 1 for (c, h, w) images,
    Py_ssize_t s_p,                     # 1 and n_c for (h, w, c) rows
    floating divisor,                   # the input scale,
    bint scaled,                        # if any
) noexcept nogil:
    """One output pixel near or beyond the image's edge: the neighbours outside
    read as zeros. Each value read is cast to the model dtype (and divided by
    the input scale) before any arithmetic."""
    cdef Py_ssize_t c, r0, q0
    cdef Py_ssize_t plane = h * w
    cdef floating fr, fq, x00, x01, x10, x11, top, bottom
    cdef bint in_r0, in_r1, in_q0, in_q1
    cdef const stored* p
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
        p = src + c * s_c
        x00 = _load(p[(r0 * w + q0) * s_p], divisor, scaled) if in_r0 and in_q0 else 0
        x01 = _load(p[(r0 * w + q0 + 1) * s_p], divisor, scaled) if in_r0 and in_q1 else 0
        x10 = _load(p[((r0 + 1) * w + q0) * s_p], divisor, scaled) if in_r1 and in_q0 else 0
        x11 = (_load(p[((r0 + 1) * w + q0 + 1) * s_p], divisor, scaled)
               if in_r1 and in_q1 else 0)
        # one lerp along the columns in each row, then one between the rows:
        # a zero fraction returns the pixel itself, exactly
        top = x00 + fq * (x01 - x00)
        bottom = x10 + fq * (x11 - x10)
        d[c * plane] = top + fr * (bottom - top)


# ---------------------------------------------------------------------------
# The estimator's batch gather from X as stored: rows in (h, w, c) order of
# any stored dtype (uint8, uint16, float32, float64) become a float batch in
# (c, h, w) order, cast, divided by the input scale and transformed, in one
# pass. The transform parameters are indexed by the place in the batch (b),
# since the rows may come from a buffer of a chunked store, not from X.
# Every value is cast to the model dtype before any arithmetic, in the order
# of the kernels above, so the bits are those of casting X as a whole first.

def gather_rows(
    const stored[:, ::1] src,           # IN  (m, h * w * c): rows in (h, w, c) order
    const Py_ssize_t[::1] rows,         # IN  (batch,): rows of src to take
    double scale,                       # values are divided by it; 0 for no division
    floating[:, :, :, ::1] out,         # OUT (batch, c, h, w)
    int n_threads,
):
    """out[b, c, i, j] = src[rows[b], (i * w + j) * n_c + c] / scale, cast first."""
    cdef Py_ssize_t b, k, c, i, j
    cdef Py_ssize_t n_c = out.shape[1], h = out.shape[2], w = out.shape[3]
    cdef bint scaled = scale != 0
    cdef floating divisor = <floating>scale
    with nogil:
        for b in prange(rows.shape[0], schedule='static', num_threads=n_threads):
            k = rows[b]
            for c in range(n_c):
                for i in range(h):
                    for j in range(w):
                        out[b, c, i, j] = _load(src[k, (i * w + j) * n_c + c], divisor, scaled)


def gather_shift_flip_rows(
    const stored[:, ::1] src,           # IN  (m, h * w * c): rows in (h, w, c) order
    const Py_ssize_t[::1] rows,         # IN  (batch,): rows of src to take
    double scale,                       # values are divided by it; 0 for no division
    const Py_ssize_t[:, ::1] shift,     # IN  (batch, 2): (dy, dx) of out[b]
    const unsigned char[::1] flip,      # IN  (batch,): 1 to mirror out[b] left-right
    floating[:, :, :, ::1] out,         # OUT (batch, c, h, w)
    int n_threads,
):
    """shift_flip_gather's map from the (h, w, c) rows: exact copies after the cast."""
    cdef Py_ssize_t b, k, c, i, j, r, dy, dx, j0, j1, q
    cdef Py_ssize_t n_c = out.shape[1], h = out.shape[2], w = out.shape[3]
    cdef bint scaled = scale != 0
    cdef floating divisor = <floating>scale
    with nogil:
        for b in prange(rows.shape[0], schedule='static', num_threads=n_threads):
            k = rows[b]
            dy = shift[b, 0]
            dx = shift[b, 1]
            j0 = max(dx, 0)
            j1 = min(w, w + dx)
            for c in range(n_c):
                for i in range(h):
                    r = i - dy
                    for j in range(w):
                        if r < 0 or r >= h or j < j0 or j >= j1:
                            out[b, c, i, j] = 0
                            continue
                        q = w - 1 - j + dx if flip[b] else j - dx
                        out[b, c, i, j] = _load(src[k, (r * w + q) * n_c + c], divisor, scaled)


def gather_affine_rows(
    const stored[:, ::1] src,           # IN  (m, h * w * c): rows in (h, w, c) order
    const Py_ssize_t[::1] rows,         # IN  (batch,): rows of src to take
    double scale,                       # values are divided by it; 0 for no division
    const double[:, ::1] coef,          # IN  (batch, 6): the affine map of out[b]
    floating[:, :, :, ::1] out,         # OUT (batch, c, h, w)
    int n_threads,
):
    """affine_gather's bilinear resampling from the (h, w, c) rows.

    The same formula, in the same order, as ``_affine_edge`` applies to each
    output pixel, on values cast (and scaled) first: the same bits as
    ``affine_gather`` on the cast images.
    """
    cdef Py_ssize_t b, k, i, j
    cdef Py_ssize_t n_c = out.shape[1], h = out.shape[2], w = out.shape[3]
    cdef bint scaled = scale != 0
    cdef floating divisor = <floating>scale
    if rows.shape[0] == 0 or n_c * h * w == 0:
        return
    with nogil:
        for b in prange(rows.shape[0], schedule='static', num_threads=n_threads):
            k = rows[b]
            for i in range(h):
                for j in range(w):
                    # summed in affine_gather's order: the row's term first
                    _affine_edge(&src[k, 0], &out[b, 0, i, j],
                                 coef[b, 1] * j + (coef[b, 0] * i + coef[b, 2]),
                                 coef[b, 4] * j + (coef[b, 3] * i + coef[b, 5]),
                                 n_c, h, w, 1, n_c, divisor, scaled)
