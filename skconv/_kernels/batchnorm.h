/* Batch normalization in training mode: the passes over a range of channels.
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
 * a channel's rows in row order, its lanes combined once by a fixed tree; a
 * channel is one thread's.
 *
 * The arrays are (n, channels, m): a channel's values are n rows of m, far
 * apart (a power of two apart in ResNet's and FCN's maps). So both passes
 * over a range of channels (the caller's task: as many as the second pass
 * finds in L2) sweep it image by image, through contiguous memory, each
 * channel's lanes in a work array: where rows are short (7 x 7 maps), a
 * row's accumulators are reloaded a range of rows later, off any chain of
 * latency, and combined once, not per row.
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

/* The sums' inner loops, over whole blocks of lanes (the caller's portable
 * loop takes the last few elements): d = (double)a[k] - shift, acc[j] += d
 * and sq[j] += d * d (sums); a1[j] += u[k], a2[j] += (double)u[k] * v[k]
 * (dot). Each has a portable version and, because GCC 12 vectorises
 * these conversions to double poorly (slower than its SSE2 code on AVX-512),
 * one in intrinsics per vector path. They return the elements done. */
#define SKC_BN_PORTABLE_LANES(SFX, T)                                           \
    static ptrdiff_t skc_bn_lanes_sums_##SFX(const T *a, ptrdiff_t m, double shift, \
                                             double *acc, double *sq)           \
    {                                                                           \
        ptrdiff_t k = 0;                                                        \
        for (; k + SKC_BN_LANES <= m; k += SKC_BN_LANES)                        \
            for (int j = 0; j < SKC_BN_LANES; j++) {                            \
                double d = (double)a[k + j] - shift;                            \
                acc[j] += d;                                                    \
                sq[j] += d * d;                                                 \
            }                                                                   \
        return k;                                                               \
    }                                                                           \
    static ptrdiff_t skc_bn_lanes_dot_##SFX(const T *u, const T *v, ptrdiff_t m, \
                                            double *a1, double *a2)             \
    {                                                                           \
        ptrdiff_t k = 0;                                                        \
        for (; k + SKC_BN_LANES <= m; k += SKC_BN_LANES)                        \
            for (int j = 0; j < SKC_BN_LANES; j++) {                            \
                a1[j] += u[k + j];                                              \
                a2[j] += (double)u[k + j] * v[k + j];                           \
            }                                                                   \
        return k;                                                               \
    }

/* NV vectors of double make the lanes; WIDEN(p, out) reads a block of lanes. */
#define SKC_BN_VECTOR_LANES(SFX, TARGET, T, VD, NV, WIDEN, ADD, SUB, MUL, SET1, LOAD, STORE) \
    TARGET static ptrdiff_t skc_bn_lanes_sums_##SFX(const T *a, ptrdiff_t m, double shift, \
                                                    double *acc, double *sq)    \
    {                                                                           \
        const ptrdiff_t step = SKC_BN_LANES / NV;                               \
        VD s[NV], q[NV], w[NV], sh = SET1(shift);                               \
        ptrdiff_t k = 0;                                                        \
        for (int v = 0; v < NV; v++) {                                          \
            s[v] = LOAD(acc + v * step);                                        \
            q[v] = LOAD(sq + v * step);                                         \
        }                                                                       \
        for (; k + SKC_BN_LANES <= m; k += SKC_BN_LANES) {                      \
            WIDEN(a + k, w);                                                    \
            for (int v = 0; v < NV; v++) {                                      \
                VD d = SUB(w[v], sh);                                           \
                s[v] = ADD(s[v], d);                                            \
                q[v] = ADD(q[v], MUL(d, d));                                    \
            }                                                                   \
        }                                                                       \
        for (int v = 0; v < NV; v++) {                                          \
            STORE(acc + v * step, s[v]);                                        \
            STORE(sq + v * step, q[v]);                                         \
        }                                                                       \
        return k;                                                               \
    }                                                                           \
    TARGET static ptrdiff_t skc_bn_lanes_dot_##SFX(const T *u, const T *vv, ptrdiff_t m, \
                                                   double *a1, double *a2)      \
    {                                                                           \
        const ptrdiff_t step = SKC_BN_LANES / NV;                               \
        VD s1[NV], s2[NV], wu[NV], wv[NV];                                      \
        ptrdiff_t k = 0;                                                        \
        for (int v = 0; v < NV; v++) {                                          \
            s1[v] = LOAD(a1 + v * step);                                        \
            s2[v] = LOAD(a2 + v * step);                                        \
        }                                                                       \
        for (; k + SKC_BN_LANES <= m; k += SKC_BN_LANES) {                      \
            WIDEN(u + k, wu);                                                   \
            WIDEN(vv + k, wv);                                                  \
            for (int v = 0; v < NV; v++) {                                      \
                s1[v] = ADD(s1[v], wu[v]);                                      \
                s2[v] = ADD(s2[v], MUL(wu[v], wv[v]));                          \
            }                                                                   \
        }                                                                       \
        for (int v = 0; v < NV; v++) {                                          \
            STORE(a1 + v * step, s1[v]);                                        \
            STORE(a2 + v * step, s2[v]);                                        \
        }                                                                       \
        return k;                                                               \
    }

/* the expansion of the OPS lists into SKC_BN_VECTOR_LANES's arguments */
#define SKC_BN_VECTOR(...) SKC_BN_VECTOR_LANES(__VA_ARGS__)

SKC_BN_PORTABLE_LANES(portable_s, float)
SKC_BN_PORTABLE_LANES(portable_d, double)
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define SKC_BN_HAVE_X86 1
#include <immintrin.h>
#define SKC_BN_AVX2 __attribute__((target("avx2")))
#define SKC_BN_WIDEN_AVX2_S(p, out)                                             \
    for (int i = 0; i < 4; i++) out[i] = _mm256_cvtps_pd(_mm_loadu_ps((p) + 4 * i))
#define SKC_BN_WIDEN_AVX2_D(p, out)                                             \
    for (int i = 0; i < 4; i++) out[i] = _mm256_loadu_pd((p) + 4 * i)
#define SKC_BN_AVX2_OPS _mm256_add_pd, _mm256_sub_pd, _mm256_mul_pd, _mm256_set1_pd, \
    _mm256_loadu_pd, _mm256_storeu_pd
SKC_BN_VECTOR(avx2_s, SKC_BN_AVX2, float, __m256d, 4, SKC_BN_WIDEN_AVX2_S, SKC_BN_AVX2_OPS)
SKC_BN_VECTOR(avx2_d, SKC_BN_AVX2, double, __m256d, 4, SKC_BN_WIDEN_AVX2_D, SKC_BN_AVX2_OPS)
#ifdef SKC_EMULATE_AVX512 /* the emulated build runs AVX-512's path with AVX2's code */
#define SKC_BN_AVX512 SKC_BN_AVX2
#define skc_bn_lanes_sums_avx512_s skc_bn_lanes_sums_avx2_s
#define skc_bn_lanes_sums_avx512_d skc_bn_lanes_sums_avx2_d
#define skc_bn_lanes_dot_avx512_s skc_bn_lanes_dot_avx2_s
#define skc_bn_lanes_dot_avx512_d skc_bn_lanes_dot_avx2_d
#else
#define SKC_BN_AVX512 __attribute__((target("avx512f")))
#define SKC_BN_WIDEN_AVX512_S(p, out)                                           \
    for (int i = 0; i < 2; i++) out[i] = _mm512_cvtps_pd(_mm256_loadu_ps((p) + 8 * i))
#define SKC_BN_WIDEN_AVX512_D(p, out)                                           \
    for (int i = 0; i < 2; i++) out[i] = _mm512_loadu_pd((p) + 8 * i)
#define SKC_BN_AVX512_OPS _mm512_add_pd, _mm512_sub_pd, _mm512_mul_pd, _mm512_set1_pd, \
    _mm512_loadu_pd, _mm512_storeu_pd
SKC_BN_VECTOR(avx512_s, SKC_BN_AVX512, float, __m512d, 2, SKC_BN_WIDEN_AVX512_S,
              SKC_BN_AVX512_OPS)
SKC_BN_VECTOR(avx512_d, SKC_BN_AVX512, double, __m512d, 2, SKC_BN_WIDEN_AVX512_D,
              SKC_BN_AVX512_OPS)
#endif
#else
#define SKC_BN_HAVE_X86 0
#endif

/* A row's work in each pass, written once, compiled per path (SFX) with that
 * path's lane loops. */
#define SKC_BN_KERNELS(SFX, TARGET, T)                                          \
    /* acc[j] += d, sq[j] += d * d, d = (double)a[k] - shift, k % LANES = j */  \
    TARGET static void skc_bn_row_sums_##SFX(const T *a, ptrdiff_t m, double shift, \
                                             double *acc, double *sq)           \
    {                                                                           \
        ptrdiff_t k = skc_bn_lanes_sums_##SFX(a, m, shift, acc, sq);            \
        for (int j = 0; k + j < m; j++) {                                       \
            double d = (double)a[k + j] - shift;                                \
            acc[j] += d;                                                        \
            sq[j] += d * d;                                                     \
        }                                                                       \
    }                                                                           \
    /* y = scale * x_hat + shift (then the ReLU), x_hat = (x - mean) * inv_std  \
     * stored too where x_hat is not NULL; in T's precision. With res (not     \
     * NULL), y = that + res then, with relu, max(., 0) as np.maximum (NaN and \
     * -0.0 stay): the bits of the batch norm written out, then a residual     \
     * block's addition and ReLU (rows.h's skc_rows_out). */                   \
    TARGET static void skc_bn_normalize_##SFX(const T *x, T *y, T *x_hat, ptrdiff_t m, \
                                              T mean, T inv_std, T scale, T shift, \
                                              int relu, const T *res)           \
    {                                                                           \
        if (x_hat)                                                              \
            for (ptrdiff_t k = 0; k < m; k++)                                   \
                x_hat[k] = (x[k] - mean) * inv_std;                             \
        if (res && relu)                                                        \
            for (ptrdiff_t k = 0; k < m; k++) {                                 \
                T v = (scale * ((x[k] - mean) * inv_std) + shift) + res[k];     \
                y[k] = v < 0 ? 0 : v;                                           \
            }                                                                   \
        else if (res)                                                           \
            for (ptrdiff_t k = 0; k < m; k++)                                   \
                y[k] = (scale * ((x[k] - mean) * inv_std) + shift) + res[k];    \
        else if (relu)                                                          \
            for (ptrdiff_t k = 0; k < m; k++) {                                 \
                T v = scale * ((x[k] - mean) * inv_std) + shift;                \
                y[k] = v > 0 ? v : 0;                                           \
            }                                                                   \
        else                                                                    \
            for (ptrdiff_t k = 0; k < m; k++)                                   \
                y[k] = scale * ((x[k] - mean) * inv_std) + shift;               \
    }                                                                           \
    /* With relu, the ReLU after the batch norm passed scale * x_hat + shift on  \
     * where that was > 0: its gradient g = dy * mask, the mask recomputed from \
     * x_hat (the forward's comparison, bit for bit) rather than read from the   \
     * output. A product, not a branch (which mispredicts on half the values),   \
     * as np.multiply(dy, y > 0); the mask in a statement of its own: GCC 12     \
     * vectorises the comparison's conversion then, not inside the product. */  \
    /* a1[j] += g, a2[j] += g * x_hat over a row, x_hat = (x - center) *        \
     * inv_std as the forward pass computed it; a chunk at a time into buffers  \
     * in L1, whole blocks of lanes, so each element meets the lane it would in \
     * one pass over the row */                                                 \
    /* With after (not NULL), the output of a ReLU after the batch norm's       \
     * addition (a residual block's), g = dy * (after > 0) as                  \
     * elementwise.pyx's relu_backward computes it, also written to g_out. */    \
    TARGET static void skc_bn_grad_row_##SFX(const T *dy, const T *x, T center, T inv_std, \
                                             int relu, T scale, T shift, ptrdiff_t m, \
                                             double *a1, double *a2, const T *after, \
                                             T *g_out)                          \
    {                                                                           \
        T masked[SKC_BN_CHUNK], x_hat[SKC_BN_CHUNK];                            \
        for (ptrdiff_t start = 0; start < m; start += SKC_BN_CHUNK) {           \
            ptrdiff_t size = m - start < SKC_BN_CHUNK ? m - start : SKC_BN_CHUNK, k; \
            const T *g = dy + start, *xs = x + start;                           \
            for (k = 0; k < size; k++)                                          \
                x_hat[k] = (xs[k] - center) * inv_std;                          \
            if (after) {                                                        \
                for (k = 0; k < size; k++) {                                    \
                    T mask = (T)(after[start + k] > 0);                         \
                    masked[k] = g[k] * mask;                                    \
                    g_out[start + k] = masked[k];                               \
                }                                                               \
                g = masked;                                                     \
            } else if (relu) {                                                  \
                for (k = 0; k < size; k++) {                                    \
                    T mask = (T)(scale * x_hat[k] + shift > 0);                 \
                    masked[k] = g[k] * mask;                                    \
                }                                                               \
                g = masked;                                                     \
            }                                                                   \
            k = skc_bn_lanes_dot_##SFX(g, x_hat, size, a1, a2);                 \
            for (int j = 0; k + j < size; j++) {                                \
                a1[j] += g[k + j];                                              \
                a2[j] += (double)g[k + j] * x_hat[k + j];                       \
            }                                                                   \
        }                                                                       \
    }                                                                           \
    /* dx = coef * (g - mean_g - x_hat * mean_gx), g and x_hat as above */      \
    TARGET static void skc_bn_dx_##SFX(const T *dy, const T *x, T center, T inv_std, int relu, \
                                       T scale, T shift, T *dx, ptrdiff_t m, T coef, \
                                       T mean_g, T mean_gx)                     \
    {                                                                           \
        if (relu)                                                               \
            for (ptrdiff_t k = 0; k < m; k++) {                                 \
                T h = (x[k] - center) * inv_std;                                \
                T mask = (T)(scale * h + shift > 0);                            \
                dx[k] = coef * (dy[k] * mask - mean_g - h * mean_gx);           \
            }                                                                   \
        else                                                                    \
            for (ptrdiff_t k = 0; k < m; k++) {                                 \
                T h = (x[k] - center) * inv_std;                                \
                dx[k] = coef * (dy[k] - mean_g - h * mean_gx);                  \
            }                                                                   \
    }

/* The passes over channels c0 ... c1 - 1, image by image: the rows' work
 * above inlined into one loop per path, with each channel's lanes in work
 * (2 * SKC_BN_LANES doubles a channel); the second pass of each direction
 * reads its channel's two factors from the start of the channel's work. */
/* body, for each row of the channels (row at, channel c, its work w) */
#define SKC_BN_EACH_ROW(...)                                                    \
    for (ptrdiff_t i = 0; i < n; i++)                                           \
        for (ptrdiff_t c = c0; c < c1; c++) {                                   \
            double *w = work + (c - c0) * 2 * SKC_BN_LANES;                     \
            ptrdiff_t at = (i * channels + c) * m;                              \
            __VA_ARGS__;                                                        \
        }

#define SKC_BN_SWEEPS(SFX, TARGET, T)                                           \
    TARGET static void skc_bn_sweep_sums_##SFX(const T *x, ptrdiff_t n, ptrdiff_t channels, \
                                               ptrdiff_t m, ptrdiff_t c0, ptrdiff_t c1, \
                                               double *work)                    \
    {                                                                           \
        SKC_BN_EACH_ROW(skc_bn_row_sums_##SFX(x + at, m, (double)x[c * m], w,   \
                                              w + SKC_BN_LANES))                \
    }                                                                           \
    /* with each channel's mean and 1 / sqrt(var + eps); in the array's         \
     * precision, so that it vectorises */                                      \
    TARGET static void skc_bn_sweep_normalize_##SFX(const T *x, T *y, T *x_hat, ptrdiff_t n, \
                                                    ptrdiff_t channels, ptrdiff_t m, \
                                                    ptrdiff_t c0, ptrdiff_t c1, const T *scale, \
                                                    const T *shift, int relu, const T *res, \
                                                    double *work)                   \
    {                                                                           \
        SKC_BN_EACH_ROW(skc_bn_normalize_##SFX(x + at, y + at, x_hat ? x_hat + at : NULL, m, \
                                               (T)w[0], (T)w[1], scale[c], shift[c], relu, \
                                               res ? res + at : NULL))          \
    }                                                                           \
    TARGET static void skc_bn_sweep_grad_##SFX(const T *dy, const T *x, const T *center, \
                                               const T *inv_std, int relu, const T *scale, \
                                               const T *shift, ptrdiff_t n, ptrdiff_t channels, \
                                               ptrdiff_t m, ptrdiff_t c0, ptrdiff_t c1, \
                                               double *work, const T *after, T *g_out) \
    {                                                                           \
        SKC_BN_EACH_ROW(skc_bn_grad_row_##SFX(dy + at, x + at, center[c], inv_std[c], relu, \
                                              scale[c], shift[c], m, w, w + SKC_BN_LANES, \
                                              after ? after + at : NULL,        \
                                              g_out ? g_out + at : NULL))       \
    }                                                                           \
    /* with each channel's mean_g and mean_gx */                                \
    TARGET static void skc_bn_sweep_dx_##SFX(const T *dy, const T *x, const T *center, \
                                             const T *inv_std, int relu, const T *scale, \
                                             const T *shift, T *dx, ptrdiff_t n,   \
                                             ptrdiff_t channels, ptrdiff_t m, ptrdiff_t c0, \
                                             ptrdiff_t c1, const double *coef, double *work) \
    {                                                                           \
        SKC_BN_EACH_ROW(skc_bn_dx_##SFX(dy + at, x + at, center[c], inv_std[c], relu, scale[c], \
                                        shift[c], dx + at, m, (T)coef[c], (T)w[0], (T)w[1])) \
    }

#define SKC_BN_PATH(SFX, TARGET, T)                                             \
    SKC_BN_KERNELS(SFX, TARGET, T)                                              \
    SKC_BN_SWEEPS(SFX, TARGET, T)

SKC_BN_PATH(portable_s, , float)
SKC_BN_PATH(portable_d, , double)
#if SKC_BN_HAVE_X86
SKC_BN_PATH(avx2_s, SKC_BN_AVX2, float)
SKC_BN_PATH(avx2_d, SKC_BN_AVX2, double)
SKC_BN_PATH(avx512_s, SKC_BN_AVX512, float)
SKC_BN_PATH(avx512_d, SKC_BN_AVX512, double)
#endif

/* ---- channels c0 ... c1 - 1's forward and backward, on the SIMD path given
 * (as gemm.h's); work: 2 * SKC_BN_LANES zeros a channel of the range. Inline:
 * _conv.pyx includes this header for skc_bn_dx_rows alone ---- */

#if SKC_BN_HAVE_X86
#define SKC_BN_CALL(F, SFX, ...)                                                \
    (path == 2 ? F##avx512_##SFX(__VA_ARGS__)                                   \
     : path == 1 ? F##avx2_##SFX(__VA_ARGS__) : F##portable_##SFX(__VA_ARGS__))
#else
#define SKC_BN_CALL(F, SFX, ...) F##portable_##SFX(__VA_ARGS__)
#endif

#define SKC_BN_CHANNELS(SFX, T)                                                 \
    /* mean and biased variance, from the sums of d = x - first and d^2 in     \
     * double, first being the channel's first value: one pass through memory, \
     * and in double a shift within the values' range leaves no cancellation  \
     * to speak of; then y (and x_hat), plus res unless NULL (see              \
     * skc_bn_normalize) */                                                    \
    static inline void skc_bn_forward_##SFX(const T *x, T *y, T *x_hat, ptrdiff_t n,   \
                                     ptrdiff_t channels, ptrdiff_t m, ptrdiff_t c0, \
                                     ptrdiff_t c1, const T *scale, const T *shift, \
                                     double eps, int relu, const T *res, double *mean, \
                                     double *var, double *work, int path)       \
    {                                                                           \
        double count = (double)n * (double)m;                                   \
        if (c1 <= c0 || count == 0)                                             \
            return;                                                             \
        SKC_BN_CALL(skc_bn_sweep_sums_, SFX, x, n, channels, m, c0, c1, work);   \
        for (ptrdiff_t c = c0; c < c1; c++) {                                   \
            double *acc = work + (c - c0) * 2 * SKC_BN_LANES;                   \
            double d = skc_bn_combine(acc) / count;                             \
            double d2 = skc_bn_combine(acc + SKC_BN_LANES) / count;             \
            mean[c] = (double)x[c * m] + d;                                     \
            var[c] = d2 - d * d > 0 ? d2 - d * d : 0;                           \
            acc[0] = mean[c];                                                   \
            acc[1] = 1 / sqrt(var[c] + eps);                                    \
        }                                                                       \
        SKC_BN_CALL(skc_bn_sweep_normalize_, SFX, x, y, x_hat, n, channels, m, c0, c1, scale, \
                    shift, relu, res, work);                                    \
    }                                                                           \
    /* the backward's second pass over channels c0 ... c1 - 1 of n images: dx =  \
     * coef / count * (count * g - dshift - x_hat * dscale), from the factors   \
     * skc_bn_backward leaves at the start of each channel's work; dy is g      \
     * (g_out where skc_bn_backward had after). On its own for a product that   \
     * forms its input's gradient an image at a time as it reads it            \
     * (_conv.conv2d_backward_implicit's formed): the same bits. */             \
    static inline void skc_bn_dx_rows_##SFX(const T *dy, const T *x, const T *center,   \
                                     const T *inv_std, int relu, const T *scale, \
                                     const T *shift, T *dx, ptrdiff_t n, ptrdiff_t channels, \
                                     ptrdiff_t m, ptrdiff_t c0, ptrdiff_t c1,   \
                                     const double *coef, double *work, int path) \
    {                                                                           \
        SKC_BN_CALL(skc_bn_sweep_dx_, SFX, dy, x, center, inv_std, relu, scale, shift, dx, \
                    n, channels, m, c0, c1, coef, work);                        \
    }                                                                           \
    /* dshift = sum(g), dscale = sum(g * x_hat), and dx (when not NULL; it may  \
     * be dy) = coef / count * (count * g - dshift - x_hat * dscale), coef =     \
     * scale / sqrt(var + eps), x_hat = (x - center) * inv_std recomputed as    \
     * the forward pass computed it (center = 0, inv_std = 1 take x_hat itself \
     * as x), g = dy or, with relu, dy through the ReLU. Neither x_hat nor g is \
     * stored: passes less through memory. With after (not NULL), g = dy *      \
     * (after > 0), written to g_out (which may be dy) as it is formed, and the \
     * dx pass reads it there (see skc_bn_grad_row). */                        \
    static inline void skc_bn_backward_##SFX(const T *dy, const T *x, const T *center,  \
                                      const T *inv_std, int relu, const T *scale, \
                                      const T *shift, T *dx, ptrdiff_t n, ptrdiff_t channels, \
                                      ptrdiff_t m, ptrdiff_t c0, ptrdiff_t c1, \
                                      const double *coef, T *dshift, T *dscale, \
                                      double *work, const T *after, T *g_out, int path) \
    {                                                                           \
        double count = (double)n * (double)m;                                   \
        if (c1 <= c0)                                                           \
            return;                                                             \
        SKC_BN_CALL(skc_bn_sweep_grad_, SFX, dy, x, center, inv_std, relu, scale, shift, n, \
                    channels, m, c0, c1, work, after, g_out);                   \
        if (after)                                                              \
            dy = g_out;                                                         \
        for (ptrdiff_t c = c0; c < c1; c++) {                                   \
            double *acc = work + (c - c0) * 2 * SKC_BN_LANES;                   \
            double sum_g = skc_bn_combine(acc), sum_gx = skc_bn_combine(acc + SKC_BN_LANES); \
            dshift[c] = (T)sum_g;                                               \
            dscale[c] = (T)sum_gx;                                              \
            acc[0] = sum_g / count;                                             \
            acc[1] = sum_gx / count;                                            \
        }                                                                       \
        if (dx)                                                                 \
            skc_bn_dx_rows_##SFX(dy, x, center, inv_std, relu, scale, shift, dx, n, channels, \
                                 m, c0, c1, coef, work, path);                  \
    }

SKC_BN_CHANNELS(s, float)
SKC_BN_CHANNELS(d, double)

#endif
