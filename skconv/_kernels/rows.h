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
 * its own, which vectorises; skc_rows_split takes both of its phases in one
 * pass over the rows, which short rows (16 columns a phase of ResNet's 32 x 32
 * maps) make several times faster than a call a phase. skc_rows_put is
 * rows_take's inverse, out[r * ldo + k * step] = x[r * ldx + k]: a strided
 * convolution's input gradient computed by phases put in place; for a step of
 * 2, skc_rows_merge puts both column phases of a row at once, with the
 * residual.
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

/* out[TO(k)] = x[FROM(k)] along rows: skc_rows_take (every step-th taken) and
 * skc_rows_put (put every step-th); a step of 2 (the common stride) a loop of its
 * own, its stride a constant to the compiler */
#define SKC_EACH(k, step) (k)
#define SKC_EVERY(k, step) ((k) * (step))
#define SKC_STEPPED(NAME, TO, FROM, SFX, TARGET, T)                             \
    TARGET static void NAME##_##SFX(const T *x, ptrdiff_t ldx, ptrdiff_t step,  \
                                    ptrdiff_t rows, ptrdiff_t n, T *out, ptrdiff_t ldo) \
    {                                                                           \
        for (ptrdiff_t r = 0; r < rows; r++, x += ldx, out += ldo)              \
            if (step == 2)                                                      \
                for (ptrdiff_t k = 0; k < n; k++)                               \
                    out[TO(k, 2)] = x[FROM(k, 2)];                              \
            else                                                                \
                for (ptrdiff_t k = 0; k < n; k++)                               \
                    out[TO(k, step)] = x[FROM(k, step)];                        \
    }
#define SKC_TAKE(...) SKC_STEPPED(skc_rows_take, SKC_EACH, SKC_EVERY, __VA_ARGS__)
#define SKC_PUT(...) SKC_STEPPED(skc_rows_put, SKC_EVERY, SKC_EACH, __VA_ARGS__)

/* skc_rows_split: both columns' phases of a stride of 2 in one pass over the rows,
 * even[r * ldo + k] = x[r * ldx + 2 * k] (k < n_even) and odd[r * ldo + k] =
 * x[r * ldx + 2 * k + 1] (k < n_odd), n_odd <= n_even <= n_odd + 1: each row read
 * once, not once a phase, in a loop that vectorises as one deinterleave */
#define SKC_SPLIT(SFX, TARGET, T)                                               \
    TARGET static void skc_rows_split_##SFX(const T *x, ptrdiff_t ldx, ptrdiff_t rows, \
                                            ptrdiff_t n_even, ptrdiff_t n_odd, T *even, \
                                            T *odd, ptrdiff_t ldo)             \
    {                                                                           \
        for (ptrdiff_t r = 0; r < rows; r++) {                                  \
            const T *restrict from = x + r * ldx;                               \
            T *restrict e = even + r * ldo, *restrict o = odd + r * ldo;        \
            ptrdiff_t k = 0;                                                    \
            for (; k < n_odd; k++) {                                            \
                e[k] = from[2 * k];                                             \
                o[k] = from[2 * k + 1];                                         \
            }                                                                   \
            if (k < n_even)                                                     \
                e[k] = from[2 * k];                                             \
        }                                                                       \
    }

/* skc_rows_merge: skc_rows_split's inverse with a residual, both column phases
 * of a stride of 2 put in one pass over the rows of out: out[r * ldo + 2 * k] =
 * even[r * lde + k] (+ res) (k < n_even) and out[r * ldo + 2 * k + 1] = odd[r *
 * ldd + k] (+ res) (k < n_odd), n_odd <= n_even <= n_odd + 1. The residual is
 * res[r * ldr + 2 * k] and res[r * ldr + 2 * k + 1], out's shape; or with
 * even_only, res[r * ldr + k] added to the even columns alone (a gradient that
 * is zero but on them); res NULL for none. The sums are skc_rows_out's (a
 * product plus its residual): a strided convolution's input gradient, its two
 * column phases interleaved as they leave the products, with x's gradient from
 * its other readers added, each row written once in a loop that vectorises */
#define SKC_MERGE_LOOP(T, EVEN, ODD)                                            \
    for (ptrdiff_t r = 0; r < rows; r++) {                                      \
        const T *restrict e = even + r * lde, *restrict d = odd + r * ldd;      \
        const T *q = res + r * ldr; /* out may be res */                        \
        T *to = out + r * ldo;                                                  \
        (void)q; /* unread without a residual */                               \
        ptrdiff_t k = 0;                                                        \
        for (; k < n_odd; k++) {                                                \
            to[2 * k] = EVEN;                                                   \
            to[2 * k + 1] = ODD;                                                \
        }                                                                       \
        if (k < n_even)                                                         \
            to[2 * k] = EVEN;                                                   \
    }
#define SKC_MERGE(SFX, TARGET, T)                                               \
    TARGET static void skc_rows_merge_##SFX(const T *even, ptrdiff_t lde, const T *odd, \
                                            ptrdiff_t ldd, ptrdiff_t rows, ptrdiff_t n_even, \
                                            ptrdiff_t n_odd, const T *res, ptrdiff_t ldr, \
                                            int even_only, T *out, ptrdiff_t ldo) \
    {                                                                           \
        if (res && even_only) {                                                 \
            SKC_MERGE_LOOP(T, e[k] + q[k], d[k])                                \
        } else if (res) {                                                       \
            SKC_MERGE_LOOP(T, e[k] + q[2 * k], d[k] + q[2 * k + 1])             \
        } else {                                                                \
            res = even, ldr = 0; /* stepped through, never read */              \
            SKC_MERGE_LOOP(T, e[k], d[k])                                       \
        }                                                                       \
    }

SKC_ROWS(portable_s, , float)
SKC_ROWS(portable_d, , double)
SKC_TAKE(portable_s, , float)
SKC_TAKE(portable_d, , double)
SKC_PUT(portable_s, , float)
SKC_PUT(portable_d, , double)
SKC_SPLIT(portable_s, , float)
SKC_SPLIT(portable_d, , double)
SKC_MERGE(portable_s, , float)
SKC_MERGE(portable_d, , double)

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
SKC_PUT(avx2_s, SKC_ROWS_AVX2, float)
SKC_PUT(avx2_d, SKC_ROWS_AVX2, double)
SKC_PUT(avx512_s, SKC_ROWS_AVX512, float)
SKC_PUT(avx512_d, SKC_ROWS_AVX512, double)
SKC_SPLIT(avx2_s, SKC_ROWS_AVX2, float)
SKC_SPLIT(avx2_d, SKC_ROWS_AVX2, double)
SKC_SPLIT(avx512_s, SKC_ROWS_AVX512, float)
SKC_SPLIT(avx512_d, SKC_ROWS_AVX512, double)
SKC_MERGE(avx2_s, SKC_ROWS_AVX2, float)
SKC_MERGE(avx2_d, SKC_ROWS_AVX2, double)
SKC_MERGE(avx512_s, SKC_ROWS_AVX512, float)
SKC_MERGE(avx512_d, SKC_ROWS_AVX512, double)
#define SKC_ROWS_CALL(F, SFX, path, ...)                                        \
    ((path) == 2 ? F##avx512_##SFX(__VA_ARGS__)                                 \
     : (path) == 1 ? F##avx2_##SFX(__VA_ARGS__) : F##portable_##SFX(__VA_ARGS__))
#else
#define SKC_ROWS_CALL(F, SFX, path, ...) F##portable_##SFX(__VA_ARGS__)
#endif

/* skc_rows_transpose_out: out[j * ldo + i] = c[i * ldc + j] (+ bias[j]) (+ res[j * ldr +
 * i]), then max(., 0) with relu, i < rows, j < n: a product of positions by filters
 * written out as the filters' planes, with skc_rows_out's sums in its order (so its bits).
 * bias and res may be NULL. c must be readable for rows and n rounded up to 8; nothing is
 * written past rows and n. In blocks of 8 x 8 floats (4 x 4 doubles) through AVX2's
 * shuffles on the SIMD paths. */
#define SKC_TRANSPOSE_VALUE(T, v, i, j)                                         \
    do {                                                                        \
        if (bias)                                                               \
            v = v + bias[j];                                                    \
        if (res)                                                                \
            v = v + res[(j) * ldr + (i)];                                       \
        out[(j) * ldo + (i)] = relu && v < 0 ? 0 : v;                           \
    } while (0)
#define SKC_TRANSPOSE_PORTABLE(SFX, T)                                          \
    static void skc_rows_transpose_out_portable_##SFX(                          \
        const T *c, ptrdiff_t ldc, const T *bias, const T *res, ptrdiff_t ldr, int relu, \
        ptrdiff_t rows, ptrdiff_t n, T *out, ptrdiff_t ldo)                     \
    {                                                                           \
        for (ptrdiff_t i = 0; i < rows; i++)                                    \
            for (ptrdiff_t j = 0; j < n; j++) {                                 \
                T v = c[i * ldc + j];                                           \
                SKC_TRANSPOSE_VALUE(T, v, i, j);                                \
            }                                                                   \
    }
SKC_TRANSPOSE_PORTABLE(s, float)
SKC_TRANSPOSE_PORTABLE(d, double)
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
/* v[k] = column k of the 8 x 8 block at c (row stride ldc) */
__attribute__((target("avx2")))
static inline void skc_block8_s(const float *c, ptrdiff_t ldc, __m256 v[8])
{
    __m256 t[8], u[8];
    for (int r = 0; r < 8; r += 2) {
        const __m256 a = _mm256_loadu_ps(c + r * ldc), b = _mm256_loadu_ps(c + (r + 1) * ldc);
        t[r] = _mm256_unpacklo_ps(a, b), t[r + 1] = _mm256_unpackhi_ps(a, b);
    }
    for (int r = 0; r < 8; r += 4) {
        u[r] = _mm256_shuffle_ps(t[r], t[r + 2], 0x44);
        u[r + 1] = _mm256_shuffle_ps(t[r], t[r + 2], 0xEE);
        u[r + 2] = _mm256_shuffle_ps(t[r + 1], t[r + 3], 0x44);
        u[r + 3] = _mm256_shuffle_ps(t[r + 1], t[r + 3], 0xEE);
    }
    for (int k = 0; k < 4; k++) {
        v[k] = _mm256_permute2f128_ps(u[k], u[k + 4], 0x20);
        v[k + 4] = _mm256_permute2f128_ps(u[k], u[k + 4], 0x31);
    }
}
__attribute__((target("avx2")))
static inline void skc_block4_d(const double *c, ptrdiff_t ldc, __m256d v[4])
{
    const __m256d r0 = _mm256_loadu_pd(c), r1 = _mm256_loadu_pd(c + ldc);
    const __m256d r2 = _mm256_loadu_pd(c + 2 * ldc), r3 = _mm256_loadu_pd(c + 3 * ldc);
    const __m256d t0 = _mm256_unpacklo_pd(r0, r1), t1 = _mm256_unpackhi_pd(r0, r1);
    const __m256d t2 = _mm256_unpacklo_pd(r2, r3), t3 = _mm256_unpackhi_pd(r2, r3);
    v[0] = _mm256_permute2f128_pd(t0, t2, 0x20), v[1] = _mm256_permute2f128_pd(t1, t3, 0x20);
    v[2] = _mm256_permute2f128_pd(t0, t2, 0x31), v[3] = _mm256_permute2f128_pd(t1, t3, 0x31);
}
/* B x B blocks, each column then a vector of B positions of one filter; a last block of
 * rows through a stack tile, its valid part finished element by element */
#define SKC_TRANSPOSE_BLOCKS(SFX, T, VEC, B, BLOCK, LOADU, STOREU, SET1, ADD, RELU)  \
    __attribute__((target("avx2")))                                             \
    static void skc_rows_transpose_out_avx2_##SFX(                              \
        const T *c, ptrdiff_t ldc, const T *bias, const T *res, ptrdiff_t ldr, int relu, \
        ptrdiff_t rows, ptrdiff_t n, T *out, ptrdiff_t ldo)                     \
    {                                                                           \
        T tile[B * B];                                                          \
        for (ptrdiff_t j0 = 0; j0 < n; j0 += B) {                               \
            const ptrdiff_t cols = n - j0 < B ? n - j0 : B;                     \
            for (ptrdiff_t i0 = 0; i0 < rows; i0 += B) {                        \
                VEC v[B];                                                       \
                BLOCK(c + i0 * ldc + j0, ldc, v);                               \
                if (rows - i0 >= B) {                                           \
                    for (ptrdiff_t k = 0; k < cols; k++) {                      \
                        VEC x = v[k];                                           \
                        if (bias)                                               \
                            x = ADD(x, SET1(bias[j0 + k]));                     \
                        if (res)                                                \
                            x = ADD(x, LOADU(res + (j0 + k) * ldr + i0));       \
                        STOREU(out + (j0 + k) * ldo + i0, relu ? RELU(x) : x);  \
                    }                                                           \
                    continue;                                                   \
                }                                                               \
                for (int k = 0; k < B; k++)                                     \
                    STOREU(tile + k * B, v[k]);                                 \
                for (ptrdiff_t k = 0; k < cols; k++)                            \
                    for (ptrdiff_t i = 0; i < rows - i0; i++) {                 \
                        T x = tile[k * B + i];                                  \
                        SKC_TRANSPOSE_VALUE(T, x, i0 + i, j0 + k);              \
                    }                                                           \
            }                                                                   \
        }                                                                       \
    }
#define SKC_RELU256_S(x) _mm256_blendv_ps(x, _mm256_setzero_ps(),               \
                                          _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ))
#define SKC_RELU256_D(x) _mm256_blendv_pd(x, _mm256_setzero_pd(),               \
                                          _mm256_cmp_pd(x, _mm256_setzero_pd(), _CMP_LT_OQ))
SKC_TRANSPOSE_BLOCKS(s, float, __m256, 8, skc_block8_s, _mm256_loadu_ps, _mm256_storeu_ps,
                     _mm256_set1_ps, _mm256_add_ps, SKC_RELU256_S)
SKC_TRANSPOSE_BLOCKS(d, double, __m256d, 4, skc_block4_d, _mm256_loadu_pd, _mm256_storeu_pd,
                     _mm256_set1_pd, _mm256_add_pd, SKC_RELU256_D)
/* AVX2's shuffles serve the AVX-512 path too */
#define skc_rows_transpose_out_avx512_s skc_rows_transpose_out_avx2_s
#define skc_rows_transpose_out_avx512_d skc_rows_transpose_out_avx2_d
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
static void skc_rows_transpose_out_s(const float *c, ptrdiff_t ldc, const float *bias,
                                     const float *res, ptrdiff_t ldr, int relu, ptrdiff_t rows,
                                     ptrdiff_t n, float *out, ptrdiff_t ldo, int path)
{
    SKC_ROWS_CALL(skc_rows_transpose_out_, s, path, c, ldc, bias, res, ldr, relu, rows, n, out,
                  ldo);
}
static void skc_rows_transpose_out_d(const double *c, ptrdiff_t ldc, const double *bias,
                                     const double *res, ptrdiff_t ldr, int relu, ptrdiff_t rows,
                                     ptrdiff_t n, double *out, ptrdiff_t ldo, int path)
{
    SKC_ROWS_CALL(skc_rows_transpose_out_, d, path, c, ldc, bias, res, ldr, relu, rows, n, out,
                  ldo);
}
/* the stepped copies' entry points, float and double */
#define SKC_STEPPED_CALLS(NAME)                                                 \
    static void NAME##_s(const float *x, ptrdiff_t ldx, ptrdiff_t step, ptrdiff_t rows, \
                         ptrdiff_t n, float *out, ptrdiff_t ldo, int path)      \
    {                                                                           \
        SKC_ROWS_CALL(NAME##_, s, path, x, ldx, step, rows, n, out, ldo);       \
    }                                                                           \
    static void NAME##_d(const double *x, ptrdiff_t ldx, ptrdiff_t step, ptrdiff_t rows, \
                         ptrdiff_t n, double *out, ptrdiff_t ldo, int path)     \
    {                                                                           \
        SKC_ROWS_CALL(NAME##_, d, path, x, ldx, step, rows, n, out, ldo);       \
    }
SKC_STEPPED_CALLS(skc_rows_take)
SKC_STEPPED_CALLS(skc_rows_put)
#define SKC_SPLIT_CALL(SFX, T)                                                  \
    static void skc_rows_split_##SFX(const T *x, ptrdiff_t ldx, ptrdiff_t rows, ptrdiff_t n_even, \
                                     ptrdiff_t n_odd, T *even, T *odd, ptrdiff_t ldo, int path) \
    {                                                                           \
        SKC_ROWS_CALL(skc_rows_split_, SFX, path, x, ldx, rows, n_even, n_odd, even, odd, ldo); \
    }
SKC_SPLIT_CALL(s, float)
SKC_SPLIT_CALL(d, double)
#define SKC_MERGE_CALL(SFX, T)                                                  \
    static void skc_rows_merge_##SFX(const T *even, ptrdiff_t lde, const T *odd, ptrdiff_t ldd, \
                                     ptrdiff_t rows, ptrdiff_t n_even, ptrdiff_t n_odd, \
                                     const T *res, ptrdiff_t ldr, int even_only, T *out, \
                                     ptrdiff_t ldo, int path)                   \
    {                                                                           \
        SKC_ROWS_CALL(skc_rows_merge_, SFX, path, even, lde, odd, ldd, rows, n_even, n_odd, res, \
                      ldr, even_only, out, ldo);                                \
    }
SKC_MERGE_CALL(s, float)
SKC_MERGE_CALL(d, double)

/* bytes from p asked for into L2 ahead of their reading, a cache line (64
 * bytes on x86-64) at a time: a hint that changes no value. A convolution's
 * loop over samples asks for the next sample's input while this one's product
 * runs, which leaves memory idle, so that its copy into the padded image reads
 * more of it from L2. Not all of it: asked for at once, many requests find
 * the queue of misses full and are dropped (docs/benchmarks.rst: spread over
 * the product they all arrive, yet the epoch was no shorter). */
static inline void skc_prefetch_l2(const void *p, ptrdiff_t bytes)
{
#if defined(__GNUC__) || defined(__clang__)
    const char *c = (const char *)p;
    for (ptrdiff_t i = 0; i < bytes; i += 64)
        __builtin_prefetch(c + i, 0, 2);
#else
    (void)p, (void)bytes;
#endif
}

#endif
