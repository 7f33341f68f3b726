cdef extern from "gemm.h":
    int SKC_PORTABLE, SKC_AVX2, SKC_AVX512
    int skc_cpu_supports(int path) nogil
    int skc_set_path(int path) nogil
    int skc_get_path() nogil
    ctypedef struct skc_kernel_shape "skc_kernel_s":
        int mr, nr
    skc_kernel_shape skc_kernels_s[3]
    skc_kernel_shape skc_kernels_d[3]
    Py_ssize_t skc_gemm_work_size(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k) nogil
    void skc_gemm_s(int m, int n, int k, const float *a, Py_ssize_t rsa, Py_ssize_t csa,
                    const float *b, Py_ssize_t rsb, Py_ssize_t csb, const Py_ssize_t *coff,
                    const Py_ssize_t *poff, float *c, Py_ssize_t ldc,
                    int accumulate, const float *bias, int bias_mode, float *work) nogil
    void skc_gemm_d(int m, int n, int k, const double *a, Py_ssize_t rsa, Py_ssize_t csa,
                    const double *b, Py_ssize_t rsb, Py_ssize_t csb, const Py_ssize_t *coff,
                    const Py_ssize_t *poff, double *c, Py_ssize_t ldc,
                    int accumulate, const double *bias, int bias_mode, double *work) nogil
    void skc_pack_panels_s(int m, int k, const float *a, Py_ssize_t rsa, Py_ssize_t csa,
                           float *out) nogil
    void skc_pack_panels_d(int m, int k, const double *a, Py_ssize_t rsa, Py_ssize_t csa,
                           double *out) nogil
    void skc_implicit_gemm_s(int m, int n_tiles, const Py_ssize_t *starts, int k,
                             const float *apack, const float *x, const Py_ssize_t *boff,
                             float *c, Py_ssize_t ldc, int narrow,
                             Py_ssize_t gap) nogil
    void skc_implicit_gemm_d(int m, int n_tiles, const Py_ssize_t *starts, int k,
                             const double *apack, const double *x, const Py_ssize_t *boff,
                             double *c, Py_ssize_t ldc, int narrow,
                             Py_ssize_t gap) nogil
    void skc_gemm_tap_rows_s(int m, int n, int k, const float *x, const Py_ssize_t *roff,
                             const Py_ssize_t *pos, const float *b, Py_ssize_t rsb,
                             Py_ssize_t csb, float *c, Py_ssize_t ldc, int accumulate,
                             int whole_tiles, int run, float *work) nogil
    void skc_gemm_tap_rows_d(int m, int n, int k, const double *x, const Py_ssize_t *roff,
                             const Py_ssize_t *pos, const double *b, Py_ssize_t rsb,
                             Py_ssize_t csb, double *c, Py_ssize_t ldc, int accumulate,
                             int whole_tiles, int run, double *work) nogil
    void skc_pack_tap_rows_b_s(int n, int k, const float *b, Py_ssize_t rsb, Py_ssize_t csb,
                               float *out) nogil
    void skc_pack_tap_rows_b_d(int n, int k, const double *b, Py_ssize_t rsb, Py_ssize_t csb,
                               double *out) nogil
    void skc_gemm_tap_rows_packed_s(int m, int n, int k, const float *x, const Py_ssize_t *roff,
                                    const Py_ssize_t *pos, const float *b, Py_ssize_t rsb,
                                    Py_ssize_t csb, const float *bpacked, float *c,
                                    Py_ssize_t ldc, int accumulate, int whole_tiles, int run,
                                    float *work) nogil
    void skc_gemm_tap_rows_packed_d(int m, int n, int k, const double *x, const Py_ssize_t *roff,
                                    const Py_ssize_t *pos, const double *b, Py_ssize_t rsb,
                                    Py_ssize_t csb, const double *bpacked, double *c,
                                    Py_ssize_t ldc, int accumulate, int whole_tiles, int run,
                                    double *work) nogil
    Py_ssize_t skc_tap_rows_packed_size(int n, int k, int double_precision) nogil
    int skc_panel_rows(int m, int double_precision) nogil
    int skc_product_rows(int m, int narrow, int double_precision) nogil
    void skc_tap_rows_tile(int n, int run, int double_precision, int *mr, int *nr) nogil
    int skc_tile_width(int double_precision) nogil
    int skc_narrow_tile_width(int double_precision) nogil
    int skc_split_tile_width(int double_precision) nogil

from cython.parallel cimport prange, threadid

# Path names, in the order of the C enum.
PATHS = ("portable", "avx2", "avx512")


cdef void sgemm(int m, int n, int k, const float *a, Py_ssize_t rsa, Py_ssize_t csa,
                const float *b, Py_ssize_t rsb, Py_ssize_t csb, const Py_ssize_t *coff,
                const Py_ssize_t *poff, float *c, Py_ssize_t ldc,
                bint accumulate, const float *bias, int bias_mode, float *work) noexcept nogil:
    skc_gemm_s(m, n, k, a, rsa, csa, b, rsb, csb, coff, poff, c, ldc, accumulate, bias, bias_mode,
               work)


cdef void dgemm(int m, int n, int k, const double *a, Py_ssize_t rsa, Py_ssize_t csa,
                const double *b, Py_ssize_t rsb, Py_ssize_t csb, const Py_ssize_t *coff,
                const Py_ssize_t *poff, double *c, Py_ssize_t ldc,
                bint accumulate, const double *bias, int bias_mode, double *work) noexcept nogil:
    skc_gemm_d(m, n, k, a, rsa, csa, b, rsb, csb, coff, poff, c, ldc, accumulate, bias, bias_mode,
               work)


cdef void spack_panels(int m, int k, const float *a, Py_ssize_t rsa, Py_ssize_t csa,
                       float *out) noexcept nogil:
    skc_pack_panels_s(m, k, a, rsa, csa, out)


cdef void dpack_panels(int m, int k, const double *a, Py_ssize_t rsa, Py_ssize_t csa,
                       double *out) noexcept nogil:
    skc_pack_panels_d(m, k, a, rsa, csa, out)


cdef int panel_rows(int m, bint double_precision) noexcept nogil:
    return skc_panel_rows(m, double_precision)


cdef int product_rows(int m, bint narrow, bint double_precision) noexcept nogil:
    return skc_product_rows(m, narrow, double_precision)


cdef int tile_width(bint double_precision) noexcept nogil:
    return skc_tile_width(double_precision)


cdef void simplicit_gemm(int m, int n_tiles, const Py_ssize_t *starts, int k,
                         const float *apack, const float *x, const Py_ssize_t *boff,
                         float *c, Py_ssize_t ldc, bint narrow,
                         Py_ssize_t gap) noexcept nogil:
    skc_implicit_gemm_s(m, n_tiles, starts, k, apack, x, boff, c, ldc, narrow, gap)


cdef void dimplicit_gemm(int m, int n_tiles, const Py_ssize_t *starts, int k,
                         const double *apack, const double *x, const Py_ssize_t *boff,
                         double *c, Py_ssize_t ldc, bint narrow,
                         Py_ssize_t gap) noexcept nogil:
    skc_implicit_gemm_d(m, n_tiles, starts, k, apack, x, boff, c, ldc, narrow, gap)


cdef void sgemm_tap_rows(int m, int n, int k, const float *x, const Py_ssize_t *roff,
                         const Py_ssize_t *pos, const float *b, Py_ssize_t rsb, Py_ssize_t csb,
                         float *c, Py_ssize_t ldc, bint accumulate, bint whole_tiles, int run,
                         float *work) noexcept nogil:
    skc_gemm_tap_rows_s(m, n, k, x, roff, pos, b, rsb, csb, c, ldc, accumulate, whole_tiles,
                          run, work)


cdef void dgemm_tap_rows(int m, int n, int k, const double *x, const Py_ssize_t *roff,
                         const Py_ssize_t *pos, const double *b, Py_ssize_t rsb, Py_ssize_t csb,
                         double *c, Py_ssize_t ldc, bint accumulate, bint whole_tiles, int run,
                         double *work) noexcept nogil:
    skc_gemm_tap_rows_d(m, n, k, x, roff, pos, b, rsb, csb, c, ldc, accumulate, whole_tiles,
                          run, work)


cdef void spack_tap_rows_b(int n, int k, const float *b, Py_ssize_t rsb, Py_ssize_t csb,
                          float *out) noexcept nogil:
    skc_pack_tap_rows_b_s(n, k, b, rsb, csb, out)


cdef void dpack_tap_rows_b(int n, int k, const double *b, Py_ssize_t rsb, Py_ssize_t csb,
                          double *out) noexcept nogil:
    skc_pack_tap_rows_b_d(n, k, b, rsb, csb, out)


cdef void sgemm_tap_rows_packed(int m, int n, int k, const float *x, const Py_ssize_t *roff,
                                const Py_ssize_t *pos, const float *bpacked, float *c,
                                Py_ssize_t ldc, bint whole_tiles, float *work) noexcept nogil:
    skc_gemm_tap_rows_packed_s(m, n, k, x, roff, pos, NULL, 0, 0, bpacked, c, ldc, False,
                               whole_tiles, 1, work)


cdef void dgemm_tap_rows_packed(int m, int n, int k, const double *x, const Py_ssize_t *roff,
                                const Py_ssize_t *pos, const double *bpacked, double *c,
                                Py_ssize_t ldc, bint whole_tiles, double *work) noexcept nogil:
    skc_gemm_tap_rows_packed_d(m, n, k, x, roff, pos, NULL, 0, 0, bpacked, c, ldc, False,
                               whole_tiles, 1, work)


cdef Py_ssize_t gemm_work_size(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k) noexcept nogil:
    return skc_gemm_work_size(m, n, k)


cdef int simd_path() noexcept nogil:
    return skc_get_path()


def work_size(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k):
    """Elements of scratch one gemm of c[m, n] = a[m, k] @ b[k, n] needs."""
    return skc_gemm_work_size(m, n, k)


def tile_shape(dtype_char):
    """(MR, NR) of the micro-kernel in use, for dtype 'f' or 'd'."""
    cdef int path = skc_get_path()
    if dtype_char == 'f':
        return skc_kernels_s[path].mr, skc_kernels_s[path].nr
    return skc_kernels_d[path].mr, skc_kernels_d[path].nr


def implicit_tile_widths(dtype_char):
    """Columns of the implicit product's tiles, full, narrow and split (two
    output rows of half as many columns), 0 where the path has none, for dtype
    'f' or 'd'."""
    cdef bint dp = dtype_char == 'd'
    return skc_tile_width(dp), skc_narrow_tile_width(dp), skc_split_tile_width(dp)


def tap_rows_tile(int n, dtype_char, int run=1):
    """(MR, NR) of the tile that gemm_tap_rows computes an n-column product in,
    its taps in runs of ``run`` consecutive offsets (see gemm_tap_rows)."""
    cdef int mr, nr
    skc_tap_rows_tile(n, run, dtype_char == 'd', &mr, &nr)
    return mr, nr


def tap_rows_packed_size(int n, int k, dtype_char):
    """Elements of pack_tap_rows_b's packing of a (k, n) operand, for dtype 'f' or 'd'."""
    return skc_tap_rows_packed_size(n, k, dtype_char == 'd')


def output_rows(Py_ssize_t m, dtype_char):
    """Rows of implicit_gemm's output for m rows: m rounded up to the tile's.

    For sizing scratch in Python; a kernel packs with pack_panels_of.
    """
    return skc_panel_rows(<int> m, dtype_char == 'd')


def cpu_supports(str path):
    """Whether this CPU can run the SIMD path named ``path``."""
    return bool(skc_cpu_supports(PATHS.index(path)))


def set_path(str path):
    """Make every later product use ``path``; the caller has checked cpu_supports."""
    if skc_set_path(PATHS.index(path)) != 0:
        raise RuntimeError(f"this CPU cannot run the {path} path")


def get_path():
    return PATHS[skc_get_path()]


cdef inline void _matmul_block(
    const floating[:, :] a, const floating[:, :] b, const floating *bias, int bias_mode,
    floating[:, ::1] c, bint relu, floating *work,
    Py_ssize_t i0, Py_ssize_t i1,       # the block's rows
    Py_ssize_t j0, Py_ssize_t j1,       # the block's columns
) noexcept nogil:
    cdef Py_ssize_t k = a.shape[1], i, j
    if i1 <= i0 or j1 <= j0:
        return
    gemm(<int> (i1 - i0), <int> (j1 - j0), <int> k,
         &a[i0, 0] if k > 0 else NULL, a.strides[0] // sizeof(floating),
         a.strides[1] // sizeof(floating),
         &b[0, j0] if k > 0 else NULL, b.strides[0] // sizeof(floating),
         b.strides[1] // sizeof(floating),
         &c[i0, j0], c.shape[1], False, bias + j0 if bias != NULL else NULL, bias_mode,
         work)
    if relu:
        for i in range(i0, i1):
            for j in range(j0, j1):
                c[i, j] = 0 if c[i, j] < 0 else c[i, j]


cdef inline void _matmul_task(
    const floating[:, :] a, const floating[:, :] b, const floating *bias, int bias_mode,
    floating[:, ::1] c, bint relu, floating *work,
    Py_ssize_t task, Py_ssize_t row_blocks, Py_ssize_t col_blocks,
) noexcept nogil:
    """Block ``task`` of the row_blocks x col_blocks grid, in row-major order:
    rows split evenly, columns in whole tiles of the micro-kernel's width."""
    cdef Py_ssize_t m = a.shape[0], n = b.shape[1]
    cdef Py_ssize_t rb = task // col_blocks, cb = task % col_blocks
    cdef Py_ssize_t nr = tile_width(floating is double)
    cdef Py_ssize_t tiles = (n + nr - 1) // nr
    _matmul_block(a, b, bias, bias_mode, c, relu, work,
                  rb * m // row_blocks, (rb + 1) * m // row_blocks,
                  min(n, cb * tiles // col_blocks * nr), min(n, (cb + 1) * tiles // col_blocks * nr))


def matmul(
    const floating[:, :] a,             # IN  (m, k), any strides
    const floating[:, :] b,             # IN  (k, n), any strides
    floating[:, ::1] c,                 # OUT (m, n)
    floating[:, ::1] work,              # scratch (n_threads, work_size(block rows, n, k))
    Py_ssize_t row_blocks,
    Py_ssize_t col_blocks,
    *,
    bias=None,                          # IN  (n,) of a's dtype, added per column, or None
    bint relu=False,
):
    """c = a @ b + bias, in a grid of row_blocks x col_blocks blocks that the
    threads (one per row of ``work``) take in turn; then max(c, 0) with
    ``relu`` (NaN stays, as in np.maximum).

    A block is a sub-product over all of k, so every element is still one
    chain over k and the bits do not depend on the blocks or the threads.
    """
    cdef Py_ssize_t m = a.shape[0], n = b.shape[1]
    cdef Py_ssize_t n_tasks = row_blocks * col_blocks, task
    cdef int n_threads = <int> work.shape[0]
    cdef const floating[::1] bias_v
    cdef int bias_mode = NO_BIAS
    cdef const floating *bias_ptr = NULL
    if bias is not None:
        bias_v = bias
        bias_mode, bias_ptr = BIAS_PER_COLUMN, &bias_v[0]
    if m == 0 or n == 0:
        return
    if row_blocks < 1 or col_blocks < 1 or work.shape[1] < skc_gemm_work_size(
            (m + row_blocks - 1) // row_blocks, n, a.shape[1]):
        raise ValueError(f"work of shape ({work.shape[0]}, {work.shape[1]}) is too small for "
                         f"blocks of {(m + row_blocks - 1) // max(row_blocks, 1)} rows of "
                         f"a ({m}, {a.shape[1]}) @ ({b.shape[0]}, {n}) product")
    with nogil:
        if n_threads == 1:
            # no parallel region for one thread: opening one costs about a
            # microsecond, much of a one-row product's time
            for task in range(n_tasks):
                _matmul_task(a, b, bias_ptr, bias_mode, c, relu, &work[0, 0],
                             task, row_blocks, col_blocks)
        else:
            for task in prange(n_tasks, schedule='dynamic', num_threads=n_threads):
                _matmul_task(a, b, bias_ptr, bias_mode, c, relu, &work[threadid(), 0], task,
                             row_blocks, col_blocks)
