# rows.h: a row of values written out with a bias, a residual and a ReLU, or
# taken or put every step-th, in one pass compiled per SIMD path; and a
# prefetch hint.
from cython cimport floating

cdef extern from "rows.h":
    void skc_prefetch_l2(const void *p, Py_ssize_t bytes) noexcept nogil
    void skc_rows_out_s(const float *c, Py_ssize_t ldc, const float *bias, const float *res,
                        Py_ssize_t ldr, int relu, Py_ssize_t rows, Py_ssize_t n, float *out,
                        Py_ssize_t ldo, int path) noexcept nogil
    void skc_rows_out_d(const double *c, Py_ssize_t ldc, const double *bias, const double *res,
                        Py_ssize_t ldr, int relu, Py_ssize_t rows, Py_ssize_t n, double *out,
                        Py_ssize_t ldo, int path) noexcept nogil
    void skc_rows_transpose_out_s(const float *c, Py_ssize_t ldc, const float *bias,
                                  const float *res, Py_ssize_t ldr, int relu, Py_ssize_t rows,
                                  Py_ssize_t n, float *out, Py_ssize_t ldo, int path) noexcept nogil
    void skc_rows_transpose_out_d(const double *c, Py_ssize_t ldc, const double *bias,
                                  const double *res, Py_ssize_t ldr, int relu, Py_ssize_t rows,
                                  Py_ssize_t n, double *out, Py_ssize_t ldo,
                                  int path) noexcept nogil
    void skc_rows_take_s(const float *x, Py_ssize_t ldx, Py_ssize_t step, Py_ssize_t rows,
                         Py_ssize_t n, float *out, Py_ssize_t ldo, int path) noexcept nogil
    void skc_rows_take_d(const double *x, Py_ssize_t ldx, Py_ssize_t step, Py_ssize_t rows,
                         Py_ssize_t n, double *out, Py_ssize_t ldo, int path) noexcept nogil
    void skc_rows_put_s(const float *x, Py_ssize_t ldx, Py_ssize_t step, Py_ssize_t rows,
                        Py_ssize_t n, float *out, Py_ssize_t ldo, int path) noexcept nogil
    void skc_rows_put_d(const double *x, Py_ssize_t ldx, Py_ssize_t step, Py_ssize_t rows,
                        Py_ssize_t n, double *out, Py_ssize_t ldo, int path) noexcept nogil
    void skc_rows_split_s(const float *x, Py_ssize_t ldx, Py_ssize_t rows, Py_ssize_t n_even,
                          Py_ssize_t n_odd, float *even, float *odd, Py_ssize_t ldo,
                          int path) noexcept nogil
    void skc_rows_split_d(const double *x, Py_ssize_t ldx, Py_ssize_t rows, Py_ssize_t n_even,
                          Py_ssize_t n_odd, double *even, double *odd, Py_ssize_t ldo,
                          int path) noexcept nogil
    void skc_rows_merge_s(const float *even, Py_ssize_t lde, const float *odd, Py_ssize_t ldd,
                          Py_ssize_t rows, Py_ssize_t n_even, Py_ssize_t n_odd, const float *res,
                          Py_ssize_t ldr, int even_only, float *out, Py_ssize_t ldo,
                          int path) noexcept nogil
    void skc_rows_merge_d(const double *even, Py_ssize_t lde, const double *odd, Py_ssize_t ldd,
                          Py_ssize_t rows, Py_ssize_t n_even, Py_ssize_t n_odd, const double *res,
                          Py_ssize_t ldr, int even_only, double *out, Py_ssize_t ldo,
                          int path) noexcept nogil


cdef inline void rows_out(const floating *c,        # IN  rows x n, row r at c + r * ldc
                          Py_ssize_t ldc,
                          const floating *bias,     # IN  one value, or NULL for none
                          const floating *res,      # IN  rows x n (row stride ldr), or NULL for none
                          Py_ssize_t ldr,
                          bint relu,
                          Py_ssize_t rows, Py_ssize_t n,
                          floating *out,            # OUT rows x n (row stride ldo), may be c or res
                          Py_ssize_t ldo,
                          int path) noexcept nogil:  # the SIMD path in use (_gemm.simd_path())
    """out = c (+ *bias) (+ res), then max(., 0) with relu, as np.maximum
    (NaN and -0.0 stay); the sums in that order."""
    if floating is float:
        skc_rows_out_s(c, ldc, bias, res, ldr, relu, rows, n, out, ldo, path)
    else:
        skc_rows_out_d(c, ldc, bias, res, ldr, relu, rows, n, out, ldo, path)


cdef inline void rows_take(const floating *x,       # IN  rows, row r at x + r * ldx
                           Py_ssize_t ldx, Py_ssize_t step, Py_ssize_t rows, Py_ssize_t n,
                           floating *out,           # OUT rows x n, row r at out + r * ldo
                           Py_ssize_t ldo,
                           int path) noexcept nogil:
    """out[r * ldo + k] = x[r * ldx + k * step]."""
    if floating is float:
        skc_rows_take_s(x, ldx, step, rows, n, out, ldo, path)
    else:
        skc_rows_take_d(x, ldx, step, rows, n, out, ldo, path)


cdef inline void rows_put(const floating *x,        # IN  rows x n, row r at x + r * ldx
                          Py_ssize_t ldx, Py_ssize_t step, Py_ssize_t rows, Py_ssize_t n,
                          floating *out,            # OUT row r's every step-th at out + r * ldo
                          Py_ssize_t ldo,
                          int path) noexcept nogil:
    """out[r * ldo + k * step] = x[r * ldx + k]: rows_take's inverse."""
    if floating is float:
        skc_rows_put_s(x, ldx, step, rows, n, out, ldo, path)
    else:
        skc_rows_put_d(x, ldx, step, rows, n, out, ldo, path)


cdef inline void rows_split(const floating *x,      # IN  rows, row r at x + r * ldx
                            Py_ssize_t ldx, Py_ssize_t rows,
                            Py_ssize_t n_even, Py_ssize_t n_odd,  # n_odd <= n_even <= n_odd + 1
                            floating *even,         # OUT rows x n_even, row r at even + r * ldo
                            floating *odd,          # OUT rows x n_odd, row r at odd + r * ldo
                            Py_ssize_t ldo,
                            int path) noexcept nogil:
    """even[r * ldo + k] = x[r * ldx + 2 * k], odd[r * ldo + k] = x[r * ldx + 2 * k + 1]:
    rows_take's two phases of a step of 2 in one pass."""
    if floating is float:
        skc_rows_split_s(x, ldx, rows, n_even, n_odd, even, odd, ldo, path)
    else:
        skc_rows_split_d(x, ldx, rows, n_even, n_odd, even, odd, ldo, path)


cdef inline void rows_merge(const floating *even,  # IN  rows x n_even, row r at even + r * lde
                            Py_ssize_t lde,
                            const floating *odd,   # IN  rows x n_odd, row r at odd + r * ldd
                            Py_ssize_t ldd, Py_ssize_t rows,
                            Py_ssize_t n_even, Py_ssize_t n_odd,  # n_odd <= n_even <= n_odd + 1
                            const floating *res,   # IN  like out (row stride ldr), or with
                            Py_ssize_t ldr,        #     even_only like even; or NULL for none
                            bint even_only,
                            floating *out,         # OUT rows of n_even + n_odd, row r at out + r * ldo
                            Py_ssize_t ldo,
                            int path) noexcept nogil:
    """out[r * ldo + 2 * k] = even[r * lde + k] (+ res[r * ldr + 2 * k]),
    out[r * ldo + 2 * k + 1] = odd[r * ldd + k] (+ res[r * ldr + 2 * k + 1]):
    rows_split's inverse, with rows_out's sum of a residual; with even_only,
    res[r * ldr + k] is added to the even columns and nothing to the odd."""
    if floating is float:
        skc_rows_merge_s(even, lde, odd, ldd, rows, n_even, n_odd, res, ldr, even_only, out, ldo,
                         path)
    else:
        skc_rows_merge_d(even, lde, odd, ldd, rows, n_even, n_odd, res, ldr, even_only, out, ldo,
                         path)


cdef inline void rows_transpose_out(
        const floating *c,                  # IN  rows x n (row stride ldc), readable for both
        Py_ssize_t ldc,                     #     rounded up to 8
        const floating *bias,               # IN  (n,), or NULL for none
        const floating *res,                # IN  n x rows (row stride ldr), or NULL for none
        Py_ssize_t ldr,
        bint relu,
        Py_ssize_t rows, Py_ssize_t n,
        floating *out,                      # OUT n x rows, row stride ldo
        Py_ssize_t ldo,
        int path) noexcept nogil:           # the SIMD path in use
    """out[j * ldo + i] = c[i * ldc + j] (+ bias[j]) (+ res[j * ldr + i]), then
    max(., 0) with relu: rows_out's sums in its order, a product of positions by
    filters written out as the filters' planes."""
    if floating is float:
        skc_rows_transpose_out_s(c, ldc, bias, res, ldr, relu, rows, n, out, ldo, path)
    else:
        skc_rows_transpose_out_d(c, ldc, bias, res, ldr, relu, rows, n, out, ldo, path)
