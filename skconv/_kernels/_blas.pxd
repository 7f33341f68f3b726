# Row-major GEMM on top of the column-major BLAS in scipy.linalg.cython_blas.
# A row-major matrix is its column-major transpose, so C = op(A) op(B) is
# computed as C^T = op(B)^T op(A)^T by swapping the operands.
from cython cimport floating
from scipy.linalg.cython_blas cimport sgemm, dgemm


cdef inline void gemm(bint trans_a, bint trans_b, int m, int n, int k,
                      floating alpha, const floating *a, int lda,
                      const floating *b, int ldb,
                      floating beta, floating *c, int ldc) noexcept nogil:
    """c[m, n] = alpha * op(a)[m, k] @ op(b)[k, n] + beta * c, all row-major."""
    cdef char ta = b'T' if trans_b else b'N'
    cdef char tb = b'T' if trans_a else b'N'
    if floating is float:
        sgemm(&ta, &tb, &n, &m, &k, &alpha, <float *> b, &ldb,
              <float *> a, &lda, &beta, c, &ldc)
    else:
        dgemm(&ta, &tb, &n, &m, &k, &alpha, <double *> b, &ldb,
              <double *> a, &lda, &beta, c, &ldc)
