# batchnorm.h's passes, for _batchnorm.pyx and for the products that form a
# batch norm's input gradient as they read it (_conv.pyx)
cdef extern from "batchnorm.h":
    enum: SKC_BN_LANES
    void skc_bn_forward_s(const float *x, float *y, float *x_hat, Py_ssize_t n,
                          Py_ssize_t channels, Py_ssize_t m, Py_ssize_t c0, Py_ssize_t c1,
                          const float *scale, const float *shift, double eps, int relu,
                          const float *res, double *mean, double *var, double *work,
                          int path) noexcept nogil
    void skc_bn_forward_d(const double *x, double *y, double *x_hat, Py_ssize_t n,
                          Py_ssize_t channels, Py_ssize_t m, Py_ssize_t c0, Py_ssize_t c1,
                          const double *scale, const double *shift, double eps, int relu,
                          const double *res, double *mean, double *var, double *work,
                          int path) noexcept nogil
    void skc_bn_backward_s(const float *dy, const float *x, const float *center,
                           const float *inv_std, int relu, const float *scale,
                           const float *shift, float *dx, Py_ssize_t n, Py_ssize_t channels,
                           Py_ssize_t m, Py_ssize_t c0, Py_ssize_t c1, const double *coef,
                           float *dshift, float *dscale, double *work, const float *after,
                           float *g_out, int path) noexcept nogil
    void skc_bn_backward_d(const double *dy, const double *x, const double *center,
                           const double *inv_std, int relu, const double *scale,
                           const double *shift, double *dx, Py_ssize_t n, Py_ssize_t channels,
                           Py_ssize_t m, Py_ssize_t c0, Py_ssize_t c1, const double *coef,
                           double *dshift, double *dscale, double *work, const double *after,
                           double *g_out, int path) noexcept nogil
    void skc_bn_dx_rows_s(const float *dy, const float *x, const float *center,
                          const float *inv_std, int relu, const float *scale, const float *shift,
                          float *dx, Py_ssize_t n, Py_ssize_t channels, Py_ssize_t m,
                          Py_ssize_t c0, Py_ssize_t c1, const double *coef, double *work,
                          int path) noexcept nogil
    void skc_bn_dx_rows_d(const double *dy, const double *x, const double *center,
                          const double *inv_std, int relu, const double *scale,
                          const double *shift, double *dx, Py_ssize_t n, Py_ssize_t channels,
                          Py_ssize_t m, Py_ssize_t c0, Py_ssize_t c1, const double *coef,
                          double *work, int path) noexcept nogil
