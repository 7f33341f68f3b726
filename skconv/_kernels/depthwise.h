/* The depthwise convolution's loops that Cython cannot make fast: rows of
 * multiply-adds in SIMD registers. See _depthwise.pyx for the layout.
 *
 * The kernels read a plane that _depthwise.pyx copied into a zero-padded,
 * column-phase-split buffer: output (i, j)'s tap t reads
 * src[i * row_step + offsets[t] + j], contiguous in j whatever the stride.
 *
 * Every output is one chain: 0, + x * w for each tap in order, + bias, then
 * max(., 0); multiply and add are separate instructions (no FMA), so the
 * portable loops here and the AVX2 ones give the same bits. A tap on the
 * padding adds +0 or -0 (a finite weight times zero), which leaves the chain's
 * value unchanged. The AVX2 loops serve the avx512 path too (as pool.h's do)
 * but for the forward pass over rows wider than one AVX2 vector.
 */
#ifndef SKCONV_DEPTHWISE_H
#define SKCONV_DEPTHWISE_H

#include <stddef.h>

/* Portable: elementwise loops the compiler vectorises at the baseline width. */
#define SKC_DW_PORTABLE(T, SUF)                                                          \
static inline void skc_dw_axpy_##SUF##_portable(T *dst, const T *src, T a, ptrdiff_t n)  \
{                                                                                        \
    for (ptrdiff_t j = 0; j < n; j++)                                                    \
        dst[j] = dst[j] + src[j] * a;                                                    \
}                                                                                        \
static inline void skc_dw_madd_##SUF##_portable(T *acc, const T *a, const T *b,          \
                                                ptrdiff_t n)                             \
{                                                                                        \
    for (ptrdiff_t j = 0; j < n; j++)                                                    \
        acc[j] = acc[j] + a[j] * b[j];                                                   \
}                                                                                        \
static inline void skc_dw_plane_##SUF##_portable(                                        \
    const T *src, const ptrdiff_t *offsets, ptrdiff_t taps, ptrdiff_t row_step,          \
    const T *w, T bias, int has_bias, int relu, T *out, ptrdiff_t oh, ptrdiff_t ow)      \
{                                                                                        \
    for (ptrdiff_t i = 0; i < oh; i++) {                                                 \
        T *row = out + i * ow;                                                           \
        for (ptrdiff_t j = 0; j < ow; j++)                                               \
            row[j] = 0;                                                                  \
        for (ptrdiff_t t = 0; t < taps; t++)                                             \
            skc_dw_axpy_##SUF##_portable(row, src + i * row_step + offsets[t], w[t], ow); \
        for (ptrdiff_t j = 0; has_bias && j < ow; j++)                                   \
            row[j] = row[j] + bias;                                                      \
        for (ptrdiff_t j = 0; relu && j < ow; j++)                                       \
            row[j] = row[j] < 0 ? 0 : row[j];                                            \
    }                                                                                    \
}

SKC_DW_PORTABLE(float, s)
SKC_DW_PORTABLE(double, d)

/* Copy a (h, w) plane into the padded plane's interior: column q of row r goes
 * to padded column qq = q + pw of row r + ph, that is sub-row qq % sw at
 * qq // sw. The padding is left as it is (the caller keeps it zero). */
#define SKC_DW_FILL_PORTABLE(T, SUF)                                                     \
static inline void skc_dw_fill_##SUF##_portable(                                         \
    const T *x, ptrdiff_t h, ptrdiff_t w, T *plane, ptrdiff_t ph, ptrdiff_t pw,          \
    ptrdiff_t sw, ptrdiff_t sub_row)                                                     \
{                                                                                        \
    for (ptrdiff_t r = 0; r < h; r++) {                                                  \
        T *row = plane + (r + ph) * sw * sub_row;                                        \
        for (ptrdiff_t q = 0; q < w; q++) {                                              \
            const ptrdiff_t qq = q + pw;                                                 \
            row[qq % sw * sub_row + qq / sw] = x[r * w + q];                             \
        }                                                                                \
    }                                                                                    \
}

SKC_DW_FILL_PORTABLE(float, s)
SKC_DW_FILL_PORTABLE(double, d)

/* The backward passes over one plane, portable. scatter: dst (the padded
 * input gradient) += each output row's dy times each tap, where the tap read.
 * weights: acc[t * stride + j] += dy[i, j] * (what tap t read for (i, j)) for
 * each row i in order, and the bias's acc[taps * stride + j] += dy[i, j]. */
#define SKC_DW_PORTABLE_BACKWARD(T, SUF)                                                 \
static inline void skc_dw_scatter_##SUF##_portable(                                      \
    T *dst, const T *dy, const ptrdiff_t *offsets, ptrdiff_t taps, ptrdiff_t row_step,   \
    const T *w, ptrdiff_t oh, ptrdiff_t ow)                                              \
{                                                                                        \
    for (ptrdiff_t i = 0; i < oh; i++)                                                   \
        for (ptrdiff_t t = 0; t < taps; t++)                                             \
            skc_dw_axpy_##SUF##_portable(dst + i * row_step + offsets[t], dy + i * ow,   \
                                         w[t], ow);                                      \
}                                                                                        \
static inline void skc_dw_weights_##SUF##_portable(                                      \
    T *acc, ptrdiff_t stride, const T *dy, const T *src, const ptrdiff_t *offsets,       \
    ptrdiff_t taps, ptrdiff_t row_step, ptrdiff_t oh, ptrdiff_t ow)                      \
{                                                                                        \
    for (ptrdiff_t i = 0; i < oh; i++) {                                                 \
        for (ptrdiff_t j = 0; j < ow; j++)                                               \
            acc[taps * stride + j] = acc[taps * stride + j] + dy[i * ow + j];            \
        for (ptrdiff_t t = 0; t < taps; t++)                                             \
            skc_dw_madd_##SUF##_portable(acc + t * stride, dy + i * ow,                  \
                                         src + i * row_step + offsets[t], ow);            \
    }                                                                                    \
}

SKC_DW_PORTABLE_BACKWARD(float, s)
SKC_DW_PORTABLE_BACKWARD(double, d)

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include "pool.h" /* skc_store_s / skc_store_d: masked stores of the first n lanes */

/* A block of R output rows by NV vectors of columns, its R * NV sums in
 * registers through all the taps (so each tap costs a load, a multiply and an
 * add per vector, and R * NV independent chains hide the add's latency).
 * Loads may run up to a vector past the row's end (the buffer has the slack;
 * those lanes are never stored). R and NV are constants at every call site. */
#define SKC_DW_SIMD_PLANE(T, SUF, TARGET, V, LANES, SET1, LOADU, ADD, MUL, MAX, ZERO, STORE) \
__attribute__((target(TARGET), always_inline))                                           \
static inline void skc_dw_block_##SUF(                                                   \
    const int R, const int NV, const T *src, const ptrdiff_t *offsets, ptrdiff_t taps,   \
    ptrdiff_t row_step, const T *w, T bias, int has_bias, int relu, T *out,              \
    ptrdiff_t ow, ptrdiff_t n_last)                                                      \
{                                                                                        \
    V acc[8][4];                                                                         \
    for (int r = 0; r < R; r++)                                                          \
        for (int v = 0; v < NV; v++)                                                     \
            acc[r][v] = ZERO();                                                          \
    for (ptrdiff_t t = 0; t < taps; t++) {                                               \
        const V tap = SET1(w[t]);                                                        \
        const T *p = src + offsets[t];                                                   \
        for (int r = 0; r < R; r++)                                                      \
            for (int v = 0; v < NV; v++)                                                 \
                acc[r][v] = ADD(acc[r][v], MUL(LOADU(p + r * row_step + v * LANES), tap)); \
    }                                                                                    \
    for (int r = 0; r < R; r++)                                                          \
        for (int v = 0; v < NV; v++) {                                                   \
            V y = acc[r][v];                                                             \
            if (has_bias)                                                                \
                y = ADD(y, SET1(bias));                                                  \
            if (relu) /* MAX returns its second operand for NaN: NaN stays */            \
                y = MAX(ZERO(), y);                                                      \
            STORE(out + r * ow + v * LANES, y, v == NV - 1 ? (int)n_last : LANES);       \
        }                                                                                \
}                                                                                        \
                                                                                         \
__attribute__((target(TARGET)))                                                          \
static void skc_dw_plane_##SUF(                                                          \
    const T *src, const ptrdiff_t *offsets, ptrdiff_t taps, ptrdiff_t row_step,          \
    const T *w, T bias, int has_bias, int relu, T *out, ptrdiff_t oh, ptrdiff_t ow)      \
{                                                                                        \
    const ptrdiff_t vectors = (ow + LANES - 1) / LANES;                                  \
    for (ptrdiff_t v0 = 0; v0 < vectors; v0 += 4) {                                      \
        const int nv = vectors - v0 < 4 ? (int)(vectors - v0) : 4;                       \
        const int rows = 8 / nv;                                                         \
        const ptrdiff_t j0 = v0 * LANES, n_last = ow - j0 - (nv - 1) * LANES;            \
        for (ptrdiff_t i = 0; i < oh; i += rows) {                                       \
            const int r = oh - i < rows ? (int)(oh - i) : rows;                          \
            const T *s = src + i * row_step + j0;                                        \
            T *o = out + i * ow + j0;                                                    \
            switch (nv * 8 + r) {                                                        \
            SKC_DW_CASES(SUF)                                                            \
            }                                                                            \
        }                                                                                \
    }                                                                                    \
}

/* every (rows, vectors) with rows * vectors <= 8 and vectors <= 4 */
#define SKC_DW_CASE(SUF, NV, R)                                                          \
    case NV * 8 + R:                                                                     \
        skc_dw_block_##SUF(R, NV, s, offsets, taps, row_step, w, bias, has_bias, relu,   \
                           o, ow, n_last);                                               \
        break;
#define SKC_DW_CASES(SUF)                                                                \
    SKC_DW_CASE(SUF, 1, 1) SKC_DW_CASE(SUF, 1, 2) SKC_DW_CASE(SUF, 1, 3)                 \
    SKC_DW_CASE(SUF, 1, 4) SKC_DW_CASE(SUF, 1, 5) SKC_DW_CASE(SUF, 1, 6)                 \
    SKC_DW_CASE(SUF, 1, 7) SKC_DW_CASE(SUF, 1, 8) SKC_DW_CASE(SUF, 2, 1)                 \
    SKC_DW_CASE(SUF, 2, 2) SKC_DW_CASE(SUF, 2, 3) SKC_DW_CASE(SUF, 2, 4)                 \
    SKC_DW_CASE(SUF, 3, 1) SKC_DW_CASE(SUF, 3, 2) SKC_DW_CASE(SUF, 4, 1)                 \
    SKC_DW_CASE(SUF, 4, 2)

/* The backward loops in AVX2. The last vector of a row is masked (loads and
 * stores of its first n lanes only): a store past it would add a +0 or -0
 * product into the padded plane, and +0 turns a -0 sum into +0, where the
 * portable loops leave it. The weights' sums of G taps stay in registers over
 * all the rows (G independent chains); acc rows are padded to whole vectors. */
#define SKC_DW_AVX2_BACKWARD(T, SUF, V, LANES, SET1, LOADU, ADD, MUL, LOAD_N, STORE_N)  \
__attribute__((target("avx2")))                                                          \
static void skc_dw_scatter_##SUF##_avx2(                                                 \
    T *dst, const T *dy, const ptrdiff_t *offsets, ptrdiff_t taps, ptrdiff_t row_step,   \
    const T *w, ptrdiff_t oh, ptrdiff_t ow)                                              \
{                                                                                        \
    for (ptrdiff_t i = 0; i < oh; i++)                                                   \
        for (ptrdiff_t j = 0; j < ow; j += LANES) {                                      \
            const int n = ow - j < LANES ? (int)(ow - j) : LANES;                        \
            const V d = LOAD_N(dy + i * ow + j, n);                                      \
            for (ptrdiff_t t = 0; t < taps; t++) {                                       \
                T *p = dst + i * row_step + offsets[t] + j;                              \
                STORE_N(p, ADD(LOAD_N(p, n), MUL(d, SET1(w[t]))), n);                    \
            }                                                                            \
        }                                                                                \
}                                                                                        \
__attribute__((target("avx2"), always_inline))                                           \
static inline void skc_dw_weights_block_##SUF(                                           \
    const int G, T *acc, ptrdiff_t stride, const T *dy, const T *src,                    \
    const ptrdiff_t *offsets, ptrdiff_t row_step, ptrdiff_t oh, ptrdiff_t ow,            \
    ptrdiff_t j, int n)                                                                  \
{                                                                                        \
    V sums[4];                                                                           \
    for (int g = 0; g < G; g++)                                                          \
        sums[g] = LOADU(acc + g * stride + j);                                           \
    for (ptrdiff_t i = 0; i < oh; i++) {                                                 \
        const V d = LOAD_N(dy + i * ow + j, n);                                          \
        for (int g = 0; g < G; g++)                                                      \
            sums[g] = ADD(sums[g], MUL(d, LOADU(src + i * row_step + offsets[g] + j)));  \
    }                                                                                    \
    for (int g = 0; g < G; g++)                                                          \
        STORE_N(acc + g * stride + j, sums[g], LANES);                                   \
}                                                                                        \
__attribute__((target("avx2")))                                                          \
static void skc_dw_weights_##SUF##_avx2(                                                 \
    T *acc, ptrdiff_t stride, const T *dy, const T *src, const ptrdiff_t *offsets,       \
    ptrdiff_t taps, ptrdiff_t row_step, ptrdiff_t oh, ptrdiff_t ow)                      \
{                                                                                        \
    for (ptrdiff_t j = 0; j < ow; j += LANES) {                                          \
        const int n = ow - j < LANES ? (int)(ow - j) : LANES;                            \
        V bias = LOADU(acc + taps * stride + j);                                         \
        for (ptrdiff_t i = 0; i < oh; i++)                                               \
            bias = ADD(bias, LOAD_N(dy + i * ow + j, n));                                \
        STORE_N(acc + taps * stride + j, bias, LANES);                                   \
        for (ptrdiff_t t = 0; t < taps; t += 4) {                                        \
            T *a = acc + t * stride;                                                     \
            const ptrdiff_t *o = offsets + t;                                            \
            switch (taps - t < 4 ? taps - t : 4) {                                       \
            case 1: skc_dw_weights_block_##SUF(1, a, stride, dy, src, o, row_step, oh, ow, j, n); break; \
            case 2: skc_dw_weights_block_##SUF(2, a, stride, dy, src, o, row_step, oh, ow, j, n); break; \
            case 3: skc_dw_weights_block_##SUF(3, a, stride, dy, src, o, row_step, oh, ow, j, n); break; \
            default: skc_dw_weights_block_##SUF(4, a, stride, dy, src, o, row_step, oh, ow, j, n); \
            }                                                                            \
        }                                                                                \
    }                                                                                    \
}

SKC_DW_AVX2_BACKWARD(float, s, __m256, 8, _mm256_set1_ps, _mm256_loadu_ps, _mm256_add_ps,
                     _mm256_mul_ps, skc_load_s, skc_store_s)
SKC_DW_AVX2_BACKWARD(double, d, __m256d, 4, _mm256_set1_pd, _mm256_loadu_pd, _mm256_add_pd,
                     _mm256_mul_pd, skc_load_d, skc_store_d)

/* The fill in AVX2 for strides 1 and 2 (others take the portable loop): a row
 * is copied a vector at a time, or split into its even and odd columns, 2 *
 * LANES columns a step, the last step masked (so nothing past x's row is
 * read, nor past the sub-rows' columns written). */
__attribute__((target("avx2")))
static inline void skc_dw_split_s(const float *src, int n, float *even, float *odd)
{
    const __m256 t0 = skc_load_s(src, n), t1 = skc_load_s(src + 8, n - 8);
    const __m256 e = _mm256_castpd_ps(_mm256_permute4x64_pd(
        _mm256_castps_pd(_mm256_shuffle_ps(t0, t1, _MM_SHUFFLE(2, 0, 2, 0))), _MM_SHUFFLE(3, 1, 2, 0)));
    const __m256 o = _mm256_castpd_ps(_mm256_permute4x64_pd(
        _mm256_castps_pd(_mm256_shuffle_ps(t0, t1, _MM_SHUFFLE(3, 1, 3, 1))), _MM_SHUFFLE(3, 1, 2, 0)));
    skc_store_s(even, e, (n + 1) / 2);
    skc_store_s(odd, o, n / 2);
}
__attribute__((target("avx2")))
static inline void skc_dw_split_d(const double *src, int n, double *even, double *odd)
{
    const __m256d t0 = skc_load_d(src, n), t1 = skc_load_d(src + 4, n - 4);
    const __m256d e = _mm256_permute4x64_pd(_mm256_unpacklo_pd(t0, t1), _MM_SHUFFLE(3, 1, 2, 0));
    const __m256d o = _mm256_permute4x64_pd(_mm256_unpackhi_pd(t0, t1), _MM_SHUFFLE(3, 1, 2, 0));
    skc_store_d(even, e, (n + 1) / 2);
    skc_store_d(odd, o, n / 2);
}
#define SKC_DW_FILL_AVX2(T, SUF, LANES, LOAD_N, STORE_N)                                 \
__attribute__((target("avx2")))                                                          \
static void skc_dw_fill_##SUF##_avx2(                                                    \
    const T *x, ptrdiff_t h, ptrdiff_t w, T *plane, ptrdiff_t ph, ptrdiff_t pw,          \
    ptrdiff_t sw, ptrdiff_t sub_row)                                                     \
{                                                                                        \
    for (ptrdiff_t r = 0; r < h; r++) {                                                  \
        const T *src = x + r * w;                                                        \
        T *row = plane + (r + ph) * sw * sub_row;                                        \
        if (sw == 1) {                                                                   \
            for (ptrdiff_t q = 0; q < w; q += LANES) {                                   \
                const int n = w - q < LANES ? (int)(w - q) : LANES;                      \
                STORE_N(row + pw + q, LOAD_N(src + q, n), n);                            \
            }                                                                            \
        } else {                                                                         \
            /* even column 2u -> padded pw + 2u; odd 2u + 1 -> pw + 2u + 1 */            \
            T *even = row + pw % 2 * sub_row + pw / 2;                                   \
            T *odd = row + (pw + 1) % 2 * sub_row + (pw + 1) / 2;                        \
            for (ptrdiff_t q = 0; q < w; q += 2 * LANES) {                               \
                const int n = w - q < 2 * LANES ? (int)(w - q) : 2 * LANES;              \
                skc_dw_split_##SUF(src + q, n, even + q / 2, odd + q / 2);               \
            }                                                                            \
        }                                                                                \
    }                                                                                    \
}

SKC_DW_FILL_AVX2(float, s, 8, skc_load_s, skc_store_s)
SKC_DW_FILL_AVX2(double, d, 4, skc_load_d, skc_store_d)

SKC_DW_SIMD_PLANE(float, s_avx2, "avx2", __m256, 8, _mm256_set1_ps, _mm256_loadu_ps,
                  _mm256_add_ps, _mm256_mul_ps, _mm256_max_ps, _mm256_setzero_ps, skc_store_s)
SKC_DW_SIMD_PLANE(double, d_avx2, "avx2", __m256d, 4, _mm256_set1_pd, _mm256_loadu_pd,
                  _mm256_add_pd, _mm256_mul_pd, _mm256_max_pd, _mm256_setzero_pd, skc_store_d)
#define SKC_DW_HAVE_AVX2 1

/* The forward pass in AVX-512's sixteen (eight) lanes, on its path: the same
 * chains. Not in the emulated build (tools/avx512_emulated.sh), which runs
 * the avx512 path on CPUs without AVX-512: there the AVX2 loops serve it. */
#ifndef SKC_EMULATE_AVX512
__attribute__((target("avx512f")))
static inline void skc_store512_s(float *p, __m512 v, int n)
{
    if (n >= 16)
        _mm512_storeu_ps(p, v);
    else
        _mm512_mask_storeu_ps(p, (__mmask16)((1u << n) - 1), v);
}
__attribute__((target("avx512f")))
static inline void skc_store512_d(double *p, __m512d v, int n)
{
    if (n >= 8)
        _mm512_storeu_pd(p, v);
    else
        _mm512_mask_storeu_pd(p, (__mmask8)((1u << n) - 1), v);
}
SKC_DW_SIMD_PLANE(float, s_avx512, "avx512f", __m512, 16, _mm512_set1_ps, _mm512_loadu_ps,
                  _mm512_add_ps, _mm512_mul_ps, _mm512_max_ps, _mm512_setzero_ps, skc_store512_s)
SKC_DW_SIMD_PLANE(double, d_avx512, "avx512f", __m512d, 8, _mm512_set1_pd, _mm512_loadu_pd,
                  _mm512_add_pd, _mm512_mul_pd, _mm512_max_pd, _mm512_setzero_pd, skc_store512_d)
#define SKC_DW_HAVE_AVX512 1
#endif
#else
#define SKC_DW_HAVE_AVX2 0
#endif
#ifndef SKC_DW_HAVE_AVX512
#define SKC_DW_HAVE_AVX512 0
#endif

/* Entry points: ``vector`` (a SIMD path is in use) picks the AVX2 loops; the
 * forward's ``path`` (skconv's: 0 portable, 1 avx2, 2 avx512) its own, but
 * rows no wider than an AVX2 vector stay there: half-empty AVX-512 vectors
 * and their masked stores measured slower (7x7 and 8x8 maps). */
#define SKC_DW_DISPATCH(T, SUF)                                                          \
static inline void skc_dw_plane_##SUF(                                                   \
    const T *src, const ptrdiff_t *offsets, ptrdiff_t taps, ptrdiff_t row_step,          \
    const T *w, T bias, int has_bias, int relu, T *out, ptrdiff_t oh, ptrdiff_t ow,      \
    int path)                                                                            \
{                                                                                        \
    SKC_DW_IF_AVX512(path >= 2 && ow * (ptrdiff_t)sizeof(T) > 32,                        \
                     skc_dw_plane_##SUF##_avx512(src, offsets, taps, row_step, w, bias,  \
                                                 has_bias, relu, out, oh, ow))           \
    SKC_DW_IF_AVX2(path >= 1, skc_dw_plane_##SUF##_avx2(src, offsets, taps, row_step, w, \
                                                        bias, has_bias, relu, out, oh, ow)) \
    skc_dw_plane_##SUF##_portable(src, offsets, taps, row_step, w, bias, has_bias, relu, \
                                  out, oh, ow);                                          \
}
#if SKC_DW_HAVE_AVX2
#define SKC_DW_IF_AVX2(vector, call) if (vector) { call; return; }
#else
#define SKC_DW_IF_AVX2(vector, call)
#endif
#if SKC_DW_HAVE_AVX512
#define SKC_DW_IF_AVX512(vector, call) if (vector) { call; return; }
#else
#define SKC_DW_IF_AVX512(vector, call)
#endif

SKC_DW_DISPATCH(float, s)
SKC_DW_DISPATCH(double, d)

#define SKC_DW_DISPATCH_BACKWARD(T, SUF)                                                 \
static inline void skc_dw_scatter_##SUF(                                                 \
    T *dst, const T *dy, const ptrdiff_t *offsets, ptrdiff_t taps, ptrdiff_t row_step,   \
    const T *w, ptrdiff_t oh, ptrdiff_t ow, int vector)                                  \
{                                                                                        \
    SKC_DW_IF_AVX2(vector, skc_dw_scatter_##SUF##_avx2(dst, dy, offsets, taps, row_step, \
                                                       w, oh, ow))                       \
    skc_dw_scatter_##SUF##_portable(dst, dy, offsets, taps, row_step, w, oh, ow);        \
}                                                                                        \
static inline void skc_dw_weights_##SUF(                                                 \
    T *acc, ptrdiff_t stride, const T *dy, const T *src, const ptrdiff_t *offsets,       \
    ptrdiff_t taps, ptrdiff_t row_step, ptrdiff_t oh, ptrdiff_t ow, int vector)          \
{                                                                                        \
    SKC_DW_IF_AVX2(vector, skc_dw_weights_##SUF##_avx2(acc, stride, dy, src, offsets,    \
                                                       taps, row_step, oh, ow))          \
    skc_dw_weights_##SUF##_portable(acc, stride, dy, src, offsets, taps, row_step, oh, ow); \
}

SKC_DW_DISPATCH_BACKWARD(float, s)
SKC_DW_DISPATCH_BACKWARD(double, d)

#define SKC_DW_DISPATCH_FILL(T, SUF)                                                     \
static inline void skc_dw_fill_##SUF(                                                    \
    const T *x, ptrdiff_t h, ptrdiff_t w, T *plane, ptrdiff_t ph, ptrdiff_t pw,          \
    ptrdiff_t sw, ptrdiff_t sub_row, int vector)                                         \
{                                                                                        \
    SKC_DW_IF_AVX2(vector && sw <= 2, skc_dw_fill_##SUF##_avx2(x, h, w, plane, ph, pw,   \
                                                              sw, sub_row))              \
    skc_dw_fill_##SUF##_portable(x, h, w, plane, ph, pw, sw, sub_row);                   \
}

SKC_DW_DISPATCH_FILL(float, s)
SKC_DW_DISPATCH_FILL(double, d)

#endif
