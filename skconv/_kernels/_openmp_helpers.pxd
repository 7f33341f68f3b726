# A build without OpenMP must still compile: the shim below stands in for
# <omp.h> (the same approach as scikit-learn's sklearn/utils/_openmp_helpers.pxd).
cdef extern from *:
    """
    #ifdef _OPENMP
        #include <omp.h>
        #define SKCONV_OPENMP_ENABLED 1
    #else
        #define SKCONV_OPENMP_ENABLED 0
        #define omp_get_max_threads() 1
        #define omp_set_num_threads(n) ((void)(n))
    #endif
    """
    bint SKCONV_OPENMP_ENABLED
    int omp_get_max_threads() noexcept nogil
    void omp_set_num_threads(int) noexcept nogil
