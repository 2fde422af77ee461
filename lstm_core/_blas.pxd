# The one BLAS facade of lstm_core: a row-major GEMM over scipy.linalg.cython_blas.
#
# Nobody else calls BLAS.  The functions are inline in this .pxd so every module that cimports
# them gets its own copy and can hand their address to the C kernels (lstm_core.h, lstm_gemm_*).
from scipy.linalg.cython_blas cimport dgemm, dgemv, sgemm, sgemv

ctypedef fused real:
    float
    double


cdef inline void _scale_rows(int m, int n, real beta, real *c, int ldc) noexcept nogil:
    # c[m,n] *= beta, with beta == 0 writing exact zeros (NaN in c must not survive).
    cdef Py_ssize_t r, k
    for r in range(m):
        for k in range(n):
            c[r * <Py_ssize_t>ldc + k] = 0 if beta == 0 else beta * c[r * <Py_ssize_t>ldc + k]


cdef inline void _gemv(int trans_a, int trans_b, int n, int k, real alpha, const real *a,
                       int lda, const real *b, int ldb, real beta, real *c) noexcept nogil:
    # The one-row case of _gemm, c[1,n] = alpha * op(a)[1,k] @ op(b)[k,n] + beta * c, as a
    # matrix-vector product: OpenBLAS's gemm is up to 3x slower than its gemv for one row
    # (H >= 512), which is every step of a batch of one.
    #
    # The vector op(a) is a[0:k], or a column of stride lda when trans_a.  In column-major
    # terms the memory of b is b.T: op(b) = b gives c = (that matrix, n x k) @ a ('N'), and
    # op(b) = b.T gives c = (that matrix, k x n).T @ a ('T').
    cdef int inc_a = lda if trans_a else 1
    cdef int inc_c = 1
    cdef char tb = b'T' if trans_b else b'N'
    cdef int rows = k if trans_b else n
    cdef int cols = n if trans_b else k
    if real is float:
        sgemv(&tb, &rows, &cols, &alpha, <float *>b, &ldb, <float *>a, &inc_a, &beta, c, &inc_c)
    else:
        dgemv(&tb, &rows, &cols, &alpha, <double *>b, &ldb, <double *>a, &inc_a, &beta, c, &inc_c)


cdef inline void _gemm(int trans_a, int trans_b, int m, int n, int k, real alpha,
                       const real *a, int lda, const real *b, int ldb, real beta,
                       real *c, int ldc) noexcept nogil:
    # c[m,n] = alpha * op(a) @ op(b) + beta * c in row-major storage.
    #
    # A row-major matrix is the column-major view of its transpose, so the column-major
    # product c.T = op(b).T @ op(a).T is the same memory: swap the operands and m with n,
    # keep the flags and leading dimensions.  Zero sizes never reach the BLAS (its argument
    # checks would reject a leading dimension of 0).
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    if m <= 0 or n <= 0:
        return
    if k <= 0:
        if beta != 1:
            _scale_rows(m, n, beta, c, ldc)
        return
    if m == 1:
        _gemv(trans_a, trans_b, n, k, alpha, a, lda, b, ldb, beta, c)
    elif real is float:
        sgemm(&tb, &ta, &n, &m, &k, &alpha, <float *>b, &ldb, <float *>a, &lda, &beta, c, &ldc)
    else:
        dgemm(&tb, &ta, &n, &m, &k, &alpha, <double *>b, &ldb, <double *>a, &lda, &beta, c, &ldc)


cdef inline void gemm_f32(int trans_a, int trans_b, int m, int n, int k, float alpha,
                          const float *a, int lda, const float *b, int ldb, float beta,
                          float *c, int ldc) noexcept nogil:
    _gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)


cdef inline void gemm_f64(int trans_a, int trans_b, int m, int n, int k, double alpha,
                          const double *a, int lda, const double *b, int ldb, double beta,
                          double *c, int ldc) noexcept nogil:
    _gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
