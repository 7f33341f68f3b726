# skconv's own GEMM (gemm.h), shared by every kernel module through this
# module's C-API, so that one SIMD path is chosen once for all of them.
from cython cimport floating

cdef void sgemm(int m, int n, int k, const float *a, Py_ssize_t rsa, Py_ssize_t csa,
                const float *b, Py_ssize_t rsb, Py_ssize_t csb, const Py_ssize_t *coff,
                const Py_ssize_t *poff, float *c, Py_ssize_t ldc,
                bint accumulate, const float *bias, int bias_mode, float *work) noexcept nogil
cdef void dgemm(int m, int n, int k, const double *a, Py_ssize_t rsa, Py_ssize_t csa,
                const double *b, Py_ssize_t rsb, Py_ssize_t csb, const Py_ssize_t *coff,
                const Py_ssize_t *poff, double *c, Py_ssize_t ldc,
                bint accumulate, const double *bias, int bias_mode, double *work) noexcept nogil
cdef void spack_panels(int m, int k, const float *a, Py_ssize_t rsa, Py_ssize_t csa,
                       float *out) noexcept nogil
cdef void dpack_panels(int m, int k, const double *a, Py_ssize_t rsa, Py_ssize_t csa,
                       double *out) noexcept nogil
cdef int panel_rows(int m, bint double_precision) noexcept nogil
# rows of implicit_gemm's output that it writes: m, or panel_rows(m)
cdef int product_rows(int m, bint narrow, bint double_precision) noexcept nogil
cdef int tile_width(bint double_precision) noexcept nogil
cdef void simplicit_gemm(int m, int n_tiles, const Py_ssize_t *starts, int k,
                         const float *apack, const float *x, const Py_ssize_t *boff,
                         float *c, Py_ssize_t ldc, bint narrow,
                         Py_ssize_t gap) noexcept nogil
cdef void dimplicit_gemm(int m, int n_tiles, const Py_ssize_t *starts, int k,
                         const double *apack, const double *x, const Py_ssize_t *boff,
                         double *c, Py_ssize_t ldc, bint narrow,
                         Py_ssize_t gap) noexcept nogil
cdef void sgemm_tap_rows(int m, int n, int k, const float *x, const Py_ssize_t *roff,
                         const Py_ssize_t *pos, const float *b, Py_ssize_t rsb, Py_ssize_t csb,
                         float *c, Py_ssize_t ldc, bint accumulate, bint whole_tiles, int run,
                         float *work) noexcept nogil
cdef void dgemm_tap_rows(int m, int n, int k, const double *x, const Py_ssize_t *roff,
                         const Py_ssize_t *pos, const double *b, Py_ssize_t rsb, Py_ssize_t csb,
                         double *c, Py_ssize_t ldc, bint accumulate, bint whole_tiles, int run,
                         double *work) noexcept nogil
cdef void spack_tap_rows_b(int n, int k, const float *b, Py_ssize_t rsb, Py_ssize_t csb,
                          float *out) noexcept nogil
cdef void dpack_tap_rows_b(int n, int k, const double *b, Py_ssize_t rsb, Py_ssize_t csb,
                          double *out) noexcept nogil
cdef void sgemm_tap_rows_packed(int m, int n, int k, const float *x, const Py_ssize_t *roff,
                                const Py_ssize_t *pos, const float *bpacked, float *c,
                                Py_ssize_t ldc, bint whole_tiles, float *work) noexcept nogil
cdef void dgemm_tap_rows_packed(int m, int n, int k, const double *x, const Py_ssize_t *roff,
                                const Py_ssize_t *pos, const double *bpacked, double *c,
                                Py_ssize_t ldc, bint whole_tiles, double *work) noexcept nogil
cdef Py_ssize_t gemm_work_size(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k) noexcept nogil
# the SIMD path in use, as gemm.h numbers them: 0 portable, 1 AVX2, 2 AVX-512
cdef int simd_path() noexcept nogil

# bias_mode of gemm
cdef enum:
    NO_BIAS = 0
    BIAS_PER_ROW = 1
    BIAS_PER_COLUMN = 2


cdef inline void gemm(int m, int n, int k,
                      const floating *a, Py_ssize_t rsa, Py_ssize_t csa,   # IN  a[m, k]
                      const floating *b, Py_ssize_t rsb, Py_ssize_t csb,   # IN  b[k, n]
                      floating *c, Py_ssize_t ldc,                          # OUT c[m, n], unit column stride
                      bint accumulate, const floating *bias, int bias_mode,
                      floating *work) noexcept nogil:                       # scratch, gemm_work_size(m, n, k)
    """c = (c if accumulate else 0) + a @ b (+ bias): each c[i, j] one FMA chain over k in order."""
    if floating is float:
        sgemm(m, n, k, a, rsa, csa, b, rsb, csb, NULL, NULL, c, ldc, accumulate, bias, bias_mode,
              work)
    else:
        dgemm(m, n, k, a, rsa, csa, b, rsb, csb, NULL, NULL, c, ldc, accumulate, bias, bias_mode,
              work)


cdef inline void implicit_gemm(int m, int n_tiles,
                               const Py_ssize_t *starts,            # IN  (n_tiles,) each tile's first q
                               int k,
                               const floating *apack,               # IN  a packed by pack_panels_of
                               const floating *x,                   # IN  B[p, q] = x[boff[p] + q]
                               const Py_ssize_t *boff,              # IN  (k,)
                               floating *c, Py_ssize_t ldc,         # OUT (panel_rows(m), ldc)
                               bint narrow,
                               Py_ssize_t gap) noexcept nogil:   # IN  0, or a split tile's
    """c[:, t * NR:(t + 1) * NR] = a @ B[:, starts[t]:starts[t] + NR] for an implicit B:
    each element the same FMA chain over p as gemm's. NR: the tile's width,
    narrow or not (implicit_tile_widths). With a gap (split tiles, narrow), a
    tile's columns are B's NR / 2 from starts[t] on, then NR / 2 from
    starts[t] + gap on."""
    if floating is float:
        simplicit_gemm(m, n_tiles, starts, k, apack, x, boff, c, ldc, narrow, gap)
    else:
        dimplicit_gemm(m, n_tiles, starts, k, apack, x, boff, c, ldc, narrow, gap)


cdef inline void pack_panels_of(int m, int k, const floating *a, Py_ssize_t rsa, Py_ssize_t csa,
                                floating *out) noexcept nogil:      # OUT panel_rows(m) * k
    """Pack a[m, k] for implicit_gemm: panels of the micro-kernel's rows, all of k in each."""
    if floating is float:
        spack_panels(m, k, a, rsa, csa, out)
    else:
        dpack_panels(m, k, a, rsa, csa, out)


cdef inline void gemm_taps(int m, int n, int k,
                           const floating *a, Py_ssize_t rsa, Py_ssize_t csa,  # IN  a[m, k]
                           const floating *x,                   # IN  B[p, j] = x[poff[p] + coff[j]]
                           const Py_ssize_t *coff,              # IN  (n,)
                           const Py_ssize_t *poff,              # IN  (k,), increasing
                           floating *c, Py_ssize_t ldc,          # OUT c[m, n]
                           bint accumulate, floating *work) noexcept nogil:
    """c = (c if accumulate else 0) + a @ B for an implicit B whose column j is x at
    coff[j] + poff[0], coff[j] + poff[1], ... (a convolution's taps at its output
    positions): the chains of gemm's, B never formed."""
    if floating is float:
        sgemm(m, n, k, a, rsa, csa, x, 1, 0, coff, poff, c, ldc, accumulate, NULL, NO_BIAS, work)
    else:
        dgemm(m, n, k, a, rsa, csa, x, 1, 0, coff, poff, c, ldc, accumulate, NULL, NO_BIAS, work)


cdef inline void gemm_tap_rows(int m, int n, int k,
                               const floating *x,               # IN  A[i, p] = x[roff[i] + pos[p]]
                               const Py_ssize_t *roff,          # IN  (m,)
                               const Py_ssize_t *pos,           # IN  (k,)
                               const floating *b, Py_ssize_t rsb, Py_ssize_t csb,  # IN  b[k, n]
                               floating *c, Py_ssize_t ldc,      # OUT c[m, n]
                               bint accumulate, bint whole_tiles,
                               int run,                         # taps in runs of run (or 1)
                               floating *work) noexcept nogil:
    """c = (c if accumulate else 0) + A @ b for an implicit A whose row i is x at
    roff[i] + pos[0], roff[i] + pos[1], ... (a convolution's taps at its output
    positions): gemm_taps's product transposed, with its chains; A never formed.
    With ``whole_tiles`` c has tap_rows_tile's whole tiles of room (m and n
    rounded up), and edge tiles are stored whole, their padding for the caller
    to drop. ``run``: how many consecutive offsets each run of roff is
    (roff[i + 1] = roff[i] + 1 within a run; the runs start at i = 0, run,
    ...): a kernel row's taps at a stride and dilation of 1, or 1; the tile
    is tap_rows_tile(n, dtype, run)'s."""
    if floating is float:
        sgemm_tap_rows(m, n, k, x, roff, pos, b, rsb, csb, c, ldc, accumulate, whole_tiles, run,
                       work)
    else:
        dgemm_tap_rows(m, n, k, x, roff, pos, b, rsb, csb, c, ldc, accumulate, whole_tiles, run,
                       work)


cdef inline void pack_tap_rows_b(int n, int k,
                                 const floating *b, Py_ssize_t rsb, Py_ssize_t csb,  # IN  b[k, n]
                                 floating *out) noexcept nogil:   # OUT tap_rows_packed_size(n, k)
    """Pack b[k, n] once for gemm_tap_rows_packed's calls (n at most the GEMM's NC)."""
    if floating is float:
        spack_tap_rows_b(n, k, b, rsb, csb, out)
    else:
        dpack_tap_rows_b(n, k, b, rsb, csb, out)


cdef inline void gemm_tap_rows_packed(int m, int n, int k,
                                      const floating *x,            # IN  A[i, p] = x[roff[i] + pos[p]]
                                      const Py_ssize_t *roff,       # IN  (m,)
                                      const Py_ssize_t *pos,        # IN  (k,)
                                      const floating *bpacked,      # IN  from pack_tap_rows_b
                                      floating *c, Py_ssize_t ldc,  # OUT c[m, n]
                                      bint whole_tiles,
                                      floating *work) noexcept nogil:
    """c = A @ b as gemm_tap_rows computes it, b packed once by pack_tap_rows_b."""
    if floating is float:
        sgemm_tap_rows_packed(m, n, k, x, roff, pos, bpacked, c, ldc, whole_tiles, work)
    else:
        dgemm_tap_rows_packed(m, n, k, x, roff, pos, bpacked, c, ldc, whole_tiles, work)
