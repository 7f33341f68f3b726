/* Rows of values moved in one pass, compiled once per SIMD path.
 *
 * skc_rows_out: rows written out with what follows a product:
 *
 *     out[j] = c[j] (+ bias) (+ res[j]), then max(., 0) with relu,
 *
 * the bias (a convolution's, NULL for none) added first, then the residual
 * (NULL for none), the ReLU as np.maximum(., 0) computes it (NaN and -0.0
 * stay). One pass: a convolution's output leaves its product's tiles this
 * way, a residual sum is the same loop without a bias, and a padded image's
 * rows are copied in with neither.
 *
 * skc_rows_take: out[r * ldo + k] = x[r * ldx + k * step], r < rows, k < n:
 * rows' columns of one phase, which a strided convolution reads as a plane of
 * their own (one call a plane). A step of 2 (the common stride) is a loop of
 * its own, which vectorises.
 *
 * Plain loops, compiled once per SIMD path (the extensions are built for the
 * baseline instruction set, four floats a step): each element is the same
 * operations in the same order at every width, so the bits do not depend on
 * the path (no fused multiply-add anywhere here).
 */
#ifndef SKCONV_ROWS_H
#define SKCONV_ROWS_H

#include <stddef.h>

/* rows x n values: row r of c at c + r * ldc, of res at res + r * ldr, of out
 * at out + r * ldo */
#define SKC_ROW_LOOP(T, EXPR)                                                   \
    for (ptrdiff_t r = 0; r < rows; r++, c += ldc, res += ldr, out += ldo)      \
        if (relu)                                                               \
            for (ptrdiff_t j = 0; j < n; j++) {                                 \
                T v = EXPR;                                                     \
                out[j] = v < 0 ? 0 : v;                                         \
            }                                                                   \
        else                                                                    \
            for (ptrdiff_t j = 0; j < n; j++)                                   \
                out[j] = EXPR;

#define SKC_ROWS(SFX, TARGET, T)                                                \
    TARGET static void skc_rows_out_##SFX(const T *c, ptrdiff_t ldc, const T *bias, \
                                          const T *res, ptrdiff_t ldr, int relu, \
                                          ptrdiff_t rows, ptrdiff_t n, T *out,  \
                                          ptrdiff_t ldo)                        \
    {                                                                           \
        const T b = bias ? *bias : 0;                                           \
        const int has_res = res != NULL;                                        \
        if (!has_res) /* stepped through, never read: no arithmetic on NULL */  \
            res = c, ldr = ldc;                                                 \
        if (bias && has_res) {                                                  \
            SKC_ROW_LOOP(T, (c[j] + b) + res[j])                                \
        } else if (bias) {                                                      \
            SKC_ROW_LOOP(T, c[j] + b)                                           \
        } else if (has_res) {                                                   \
            SKC_ROW_LOOP(T, c[j] + res[j])                                      \
        } else if (relu || out != c) { /* a copy inline: a padded image's   \
                                        * rows are too short for memcpy calls */ \
            SKC_ROW_LOOP(T, c[j])                                               \
        }                                                                       \
    }

#define SKC_TAKE(SFX, TARGET, T)                                                \
    TARGET static void skc_rows_take_##SFX(const T *x, ptrdiff_t ldx, ptrdiff_t step, \
                                           ptrdiff_t rows, ptrdiff_t n, T *out, ptrdiff_t ldo) \
    {                                                                           \
        for (ptrdiff_t r = 0; r < rows; r++, x += ldx, out += ldo)              \
            if (step == 2)                                                      \
                for (ptrdiff_t k = 0; k < n; k++)                               \
                    out[k] = x[2 * k];                                          \
            else                                                                \
                for (ptrdiff_t k = 0; k < n; k++)                               \
                    out[k] = x[k * step];                                       \
    }

SKC_ROWS(portable_s, , float)
SKC_ROWS(portable_d, , double)
SKC_TAKE(portable_s, , float)
SKC_TAKE(portable_d, , double)

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define SKC_ROWS_AVX2 __attribute__((target("avx2")))
#ifdef SKC_EMULATE_AVX512 /* the emulated build runs AVX-512's path with AVX2's code */
#define SKC_ROWS_AVX512 SKC_ROWS_AVX2
#else
#define SKC_ROWS_AVX512 __attribute__((target("avx512f")))
#endif
SKC_ROWS(avx2_s, SKC_ROWS_AVX2, float)
SKC_ROWS(avx2_d, SKC_ROWS_AVX2, double)
SKC_ROWS(avx512_s, SKC_ROWS_AVX512, float)
SKC_ROWS(avx512_d, SKC_ROWS_AVX512, double)
SKC_TAKE(avx2_s, SKC_ROWS_AVX2, float)
SKC_TAKE(avx2_d, SKC_ROWS_AVX2, double)
SKC_TAKE(avx512_s, SKC_ROWS_AVX512, float)
SKC_TAKE(avx512_d, SKC_ROWS_AVX512, double)
#define SKC_ROWS_CALL(F, SFX, path, ...)                                        \
    ((path) == 2 ? F##avx512_##SFX(__VA_ARGS__)                                 \
     : (path) == 1 ? F##avx2_##SFX(__VA_ARGS__) : F##portable_##SFX(__VA_ARGS__))
#else
#define SKC_ROWS_CALL(F, SFX, path, ...) F##portable_##SFX(__VA_ARGS__)
#endif

/* path: the SIMD path in use, as gemm.h numbers them (0 portable, 1 AVX2, 2 AVX-512) */
static void skc_rows_out_s(const float *c, ptrdiff_t ldc, const float *bias, const float *res,
                           ptrdiff_t ldr, int relu, ptrdiff_t rows, ptrdiff_t n, float *out,
                           ptrdiff_t ldo, int path)
{
    SKC_ROWS_CALL(skc_rows_out_, s, path, c, ldc, bias, res, ldr, relu, rows, n, out, ldo);
}
static void skc_rows_out_d(const double *c, ptrdiff_t ldc, const double *bias, const double *res,
                           ptrdiff_t ldr, int relu, ptrdiff_t rows, ptrdiff_t n, double *out,
                           ptrdiff_t ldo, int path)
{
    SKC_ROWS_CALL(skc_rows_out_, d, path, c, ldc, bias, res, ldr, relu, rows, n, out, ldo);
}
static void skc_rows_take_s(const float *x, ptrdiff_t ldx, ptrdiff_t step, ptrdiff_t rows,
                            ptrdiff_t n, float *out, ptrdiff_t ldo, int path)
{
    SKC_ROWS_CALL(skc_rows_take_, s, path, x, ldx, step, rows, n, out, ldo);
}
static void skc_rows_take_d(const double *x, ptrdiff_t ldx, ptrdiff_t step, ptrdiff_t rows,
                            ptrdiff_t n, double *out, ptrdiff_t ldo, int path)
{
    SKC_ROWS_CALL(skc_rows_take_, d, path, x, ldx, step, rows, n, out, ldo);
}

#endif
