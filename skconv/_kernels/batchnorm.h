/* Batch normalization in training mode: the passes over one channel.
 *
 * Plain loops, compiled once per SIMD path (what Cython cannot ask for): the
 * extension is built for the baseline instruction set, where a sum in double
 * of float values converts and adds two at a time and is compute-bound; on
 * the AVX2 and AVX-512 paths the same loops run four to eight times wider.
 *
 * The bits do not depend on the path or the thread: an element-wise result
 * is the same operations in the same order at any vector width (no fused
 * multiply-add: the build has -ffp-contract=off), and every sum runs in
 * SKC_BN_LANES double lanes, element k of a row into lane k % SKC_BN_LANES,
 * rows in order, each row's lanes combined by a fixed tree and added to the
 * channel's total in row order.
 *
 * A channel's values are n rows of m, row i at x + i * stride.
 */
#ifndef SKCONV_BATCHNORM_H
#define SKCONV_BATCHNORM_H

#include <math.h>
#include <stddef.h>

#define SKC_BN_LANES 16
/* elements of a masked gradient computed at a time, into a buffer on the stack
 * that stays in L1; a multiple of SKC_BN_LANES */
#define SKC_BN_CHUNK 256

static inline double skc_bn_combine(double *acc)
{
    for (int width = SKC_BN_LANES / 2; width >= 1; width /= 2)
        for (int j = 0; j < width; j++)
            acc[j] = acc[j] + acc[j + width];
    return acc[0];
}

/* BODY for element k + j of a row of m, into lane j: the whole blocks of
 * lanes, then the last few elements into the first lanes */
#define SKC_BN_LANE_LOOP(m, ...)                                                \
    {                                                                           \
        ptrdiff_t k = 0;                                                        \
        for (; k + SKC_BN_LANES <= (m); k += SKC_BN_LANES)                      \
            for (int j = 0; j < SKC_BN_LANES; j++) { __VA_ARGS__ }              \
        for (int j = 0; k + j < (m); j++) { __VA_ARGS__ }                       \
    }

#define SKC_BN_KERNELS(SFX, TARGET, T)                                          \
    /* sum over the channel of (x - shift), or of its square */                 \
    TARGET static double skc_bn_sum_##SFX(const T *x, ptrdiff_t n, ptrdiff_t stride, \
                                          ptrdiff_t m, double shift, int square) \
    {                                                                           \
        double total = 0;                                                       \
        for (ptrdiff_t i = 0; i < n; i++) {                                     \
            const T *a = x + i * stride;                                        \
            double acc[SKC_BN_LANES] = {0};                                     \
            if (square)                                                         \
                SKC_BN_LANE_LOOP(m, double d = (double)a[k + j] - shift; acc[j] += d * d;) \
            else                                                                \
                SKC_BN_LANE_LOOP(m, acc[j] += (double)a[k + j] - shift;)        \
            total += skc_bn_combine(acc);                                       \
        }                                                                       \
        return total;                                                           \
    }                                                                           \
    /* x_hat = (x - mean) * inv_std, y = scale * x_hat + shift (then the ReLU) */ \
    TARGET static void skc_bn_normalize_##SFX(const T *x, T *y, T *x_hat, ptrdiff_t n, \
                                              ptrdiff_t stride, ptrdiff_t m, T mean, \
                                              T inv_std, T scale, T shift, int relu) \
    {                                                                           \
        for (ptrdiff_t i = 0; i < n; i++) {                                     \
            const T *xi = x + i * stride;                                       \
            T *yi = y + i * stride, *hi = x_hat + i * stride;                   \
            if (relu)                                                           \
                for (ptrdiff_t k = 0; k < m; k++) {                             \
                    T d = (xi[k] - mean) * inv_std;                             \
                    T v = scale * d + shift;                                    \
                    hi[k] = d;                                                  \
                    yi[k] = v > 0 ? v : 0;                                      \
                }                                                               \
            else                                                                \
                for (ptrdiff_t k = 0; k < m; k++) {                             \
                    T d = (xi[k] - mean) * inv_std;                             \
                    hi[k] = d;                                                  \
                    yi[k] = scale * d + shift;                                  \
                }                                                               \
        }                                                                       \
    }                                                                           \
    /* g = dy * (y > 0), the gradient through the ReLU whose output is y: a     \
     * product, not a branch (which mispredicts on half the values), as         \
     * np.multiply(dy, y > 0). The mask in a statement of its own: GCC 12       \
     * vectorises the comparison's conversion then, not inside the product. */  \
    TARGET static void skc_bn_unmask_##SFX(const T *dy, const T *y, T *g, ptrdiff_t m) \
    {                                                                           \
        for (ptrdiff_t k = 0; k < m; k++) {                                     \
            T mask = (T)(y[k] > 0);                                             \
            g[k] = dy[k] * mask;                                                \
        }                                                                       \
    }                                                                           \
    /* sums[0] = sum(g), sums[1] = sum(g * x_hat) over the channel, with g = dy, \
     * or dy * (relu_y > 0) after a ReLU (relu_y not NULL), computed a chunk at \
     * a time: whole blocks of lanes, so each element meets the lane it would   \
     * in one pass over the row */                                              \
    TARGET static void skc_bn_grad_sums_##SFX(const T *dy, const T *relu_y, const T *x_hat, \
                                              ptrdiff_t n, ptrdiff_t stride, ptrdiff_t m, \
                                              double *sums)                     \
    {                                                                           \
        T buffer[SKC_BN_CHUNK];                                                 \
        sums[0] = sums[1] = 0;                                                  \
        for (ptrdiff_t i = 0; i < n; i++) {                                     \
            double a1[SKC_BN_LANES] = {0}, a2[SKC_BN_LANES] = {0};               \
            for (ptrdiff_t start = 0; start < m; start += SKC_BN_CHUNK) {       \
                ptrdiff_t size = m - start < SKC_BN_CHUNK ? m - start : SKC_BN_CHUNK; \
                const T *g = dy + i * stride + start, *h = x_hat + i * stride + start; \
                if (relu_y) {                                                   \
                    skc_bn_unmask_##SFX(g, relu_y + i * stride + start, buffer, size); \
                    g = buffer;                                                 \
                }                                                               \
                SKC_BN_LANE_LOOP(size, a1[j] += g[k + j];                       \
                                 a2[j] += (double)g[k + j] * h[k + j];)         \
            }                                                                   \
            sums[0] += skc_bn_combine(a1);                                      \
            sums[1] += skc_bn_combine(a2);                                      \
        }                                                                       \
    }                                                                           \
    /* dx = coef * (g - mean_g - x_hat * mean_gx), g as above */                \
    TARGET static void skc_bn_dx_##SFX(const T *dy, const T *relu_y, const T *x_hat, T *dx, \
                                       ptrdiff_t n, ptrdiff_t stride, ptrdiff_t m, T coef, \
                                       T mean_g, T mean_gx)                     \
    {                                                                           \
        for (ptrdiff_t i = 0; i < n; i++) {                                     \
            const T *d = dy + i * stride, *h = x_hat + i * stride;              \
            T *o = dx + i * stride;                                             \
            if (relu_y) {                                                       \
                const T *r = relu_y + i * stride;                               \
                for (ptrdiff_t k = 0; k < m; k++) {                             \
                    T mask = (T)(r[k] > 0);                                     \
                    o[k] = coef * (d[k] * mask - mean_g - h[k] * mean_gx);      \
                }                                                               \
            } else                                                              \
                for (ptrdiff_t k = 0; k < m; k++)                               \
                    o[k] = coef * (d[k] - mean_g - h[k] * mean_gx);             \
        }                                                                       \
    }

SKC_BN_KERNELS(portable_s, , float)
SKC_BN_KERNELS(portable_d, , double)
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define SKC_BN_HAVE_X86 1
SKC_BN_KERNELS(avx2_s, __attribute__((target("avx2"))), float)
SKC_BN_KERNELS(avx2_d, __attribute__((target("avx2"))), double)
#ifdef SKC_EMULATE_AVX512 /* the emulated build runs AVX-512's path with AVX2's code */
#define SKC_BN_AVX512 __attribute__((target("avx2")))
#else
#define SKC_BN_AVX512 __attribute__((target("avx512f")))
#endif
SKC_BN_KERNELS(avx512_s, SKC_BN_AVX512, float)
SKC_BN_KERNELS(avx512_d, SKC_BN_AVX512, double)
#else
#define SKC_BN_HAVE_X86 0
#endif

/* ---- a channel's forward and backward, on the SIMD path given (as gemm.h's) ---- */

#if SKC_BN_HAVE_X86
#define SKC_BN_CALL(F, SFX, ...)                                                \
    (path == 2 ? F##avx512_##SFX(__VA_ARGS__)                                   \
     : path == 1 ? F##avx2_##SFX(__VA_ARGS__) : F##portable_##SFX(__VA_ARGS__))
#else
#define SKC_BN_CALL(F, SFX, ...) F##portable_##SFX(__VA_ARGS__)
#endif

#define SKC_BN_CHANNEL(SFX, T)                                                  \
    /* mean and biased variance (two passes: no cancellation as in              \
     * E[x^2] - E[x]^2), then x_hat and y */                                    \
    static void skc_bn_forward_channel_##SFX(const T *x, T *y, T *x_hat, ptrdiff_t n, \
                                             ptrdiff_t stride, ptrdiff_t m, T scale, \
                                             T shift, double eps, int relu, double *mean, \
                                             double *var, int path)             \
    {                                                                           \
        double count = (double)n * (double)m;                                   \
        double mu = SKC_BN_CALL(skc_bn_sum_, SFX, x, n, stride, m, 0.0, 0) / count; \
        double v = SKC_BN_CALL(skc_bn_sum_, SFX, x, n, stride, m, mu, 1) / count; \
        *mean = mu;                                                             \
        *var = v;                                                               \
        /* in the array's precision, so that it vectorises */                   \
        SKC_BN_CALL(skc_bn_normalize_, SFX, x, y, x_hat, n, stride, m, (T)mu,   \
                    (T)(1 / sqrt(v + eps)), scale, shift, relu);                \
    }                                                                           \
    /* dshift = sum(g), dscale = sum(g * x_hat), and dx (when not NULL; it may  \
     * be dy) = coef / count * (count * g - dshift - x_hat * dscale), coef =     \
     * scale / sqrt(var + eps); g is computed where it is needed, twice after   \
     * a ReLU, rather than stored: a pass less through memory */                \
    static void skc_bn_backward_channel_##SFX(const T *dy, const T *relu_y, const T *x_hat, \
                                              T *dx, ptrdiff_t n, ptrdiff_t stride, \
                                              ptrdiff_t m, double coef, T *dshift, \
                                              T *dscale, int path)              \
    {                                                                           \
        double count = (double)n * (double)m, sums[2];                          \
        SKC_BN_CALL(skc_bn_grad_sums_, SFX, dy, relu_y, x_hat, n, stride, m, sums); \
        if (dx)                                                                 \
            SKC_BN_CALL(skc_bn_dx_, SFX, dy, relu_y, x_hat, dx, n, stride, m, (T)coef, \
                        (T)(sums[0] / count), (T)(sums[1] / count));            \
        *dshift = (T)sums[0];                                                   \
        *dscale = (T)sums[1];                                                   \
    }

SKC_BN_CHANNEL(s, float)
SKC_BN_CHANNEL(d, double)

#endif
