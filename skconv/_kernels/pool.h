/* 2x2, stride-2 max pooling with the winners' indices, eight (four) windows a step.
 *
 * Training needs each window's argmax, and the scalar kernel in _pool.pyx
 * makes its choices with integer arithmetic (a float select there compiles to
 * a branch, mispredicted half the time), which the compiler cannot vectorise.
 * Here the same choices are vector compares and blends: each row's pair, then
 * the two rows, each keeping the earlier operand unless the later one is
 * larger or NaN. So ties go to the first maximum in row-major window order
 * and the last NaN wins, exactly as in _pool.pyx's _replaces, and a blend
 * moves the chosen element's bits unchanged (-0.0 and NaN payloads included).
 *
 * Each function does all ow windows of a row, the last few through masked
 * loads and stores, and returns ow; the caller's scalar loop (the portable
 * path's) then has nothing left. A narrow map leaves most or all of its
 * windows to that last step (LeNet-5's second pooling has rows of 4).
 */
#ifndef SKCONV_POOL_H
#define SKCONV_POOL_H

#include <stddef.h>
#include <stdint.h>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

/* Loads and stores of the first n lanes (all if n >= the width; none if n <= 0):
 * the masked ones read nothing past them and write nothing there. */
__attribute__((target("avx2")))
static inline __m256i skc_lanes32(int n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
__attribute__((target("avx2")))
static inline __m256i skc_lanes64(int n)
{
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
}
__attribute__((target("avx2")))
static inline __m256 skc_load_s(const float *p, int n)
{
    return n >= 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, skc_lanes32(n));
}
__attribute__((target("avx2")))
static inline void skc_store_s(float *p, __m256 v, int n)
{
    if (n >= 8)
        _mm256_storeu_ps(p, v);
    else
        _mm256_maskstore_ps(p, skc_lanes32(n), v);
}
__attribute__((target("avx2")))
static inline __m256d skc_load_d(const double *p, int n)
{
    return n >= 4 ? _mm256_loadu_pd(p) : _mm256_maskload_pd(p, skc_lanes64(n));
}
__attribute__((target("avx2")))
static inline void skc_store_d(double *p, __m256d v, int n)
{
    if (n >= 4)
        _mm256_storeu_pd(p, v);
    else
        _mm256_maskstore_pd(p, skc_lanes64(n), v);
}
__attribute__((target("avx2")))
static inline __m256i skc_load_i(const ptrdiff_t *p, int n)
{
    return n >= 4 ? _mm256_loadu_si256((const __m256i *)p)
                  : _mm256_maskload_epi64((const long long *)p, skc_lanes64(n));
}
__attribute__((target("avx2")))
static inline void skc_store_i(ptrdiff_t *p, __m256i v, int n)
{
    if (n >= 4)
        _mm256_storeu_si256((__m256i *)p, v);
    else
        _mm256_maskstore_epi64((long long *)p, skc_lanes64(n), v);
}

/* top, bottom: the window rows 2i and 2i + 1; k0: the flat index of top[0] in the
 * plane, w: the plane's width; out[j], index[j]: window j's maximum and its flat index.
 * bias: NULL, or a value added to every element first (a convolution's output before
 * its bias); relu: out[j] = max(out[j], 0) after (NaN and -0.0 stay); index may be
 * NULL (the values alone). */
__attribute__((target("avx2")))
static inline ptrdiff_t skc_max_pool_2x2_row_s(const float *top, const float *bottom, ptrdiff_t ow,
                                               ptrdiff_t k0, ptrdiff_t w, const float *bias,
                                               int relu, float *out, ptrdiff_t *index)
{
    const __m256i first = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
    const __m256i below = _mm256_set1_epi32((int)w);
    const __m256 zero = _mm256_setzero_ps();
    ptrdiff_t j = 0;
    for (; j < ow; j += 8) {
        const int n = ow - j < 8 ? (int)(ow - j) : 8; /* windows this step */
        /* even and odd columns of 16: shuffle within 128-bit lanes, then fix the lane order */
        __m256 t0 = skc_load_s(top + 2 * j, 2 * n), t1 = skc_load_s(top + 2 * j + 8, 2 * n - 8);
        __m256 b0 = skc_load_s(bottom + 2 * j, 2 * n), b1 = skc_load_s(bottom + 2 * j + 8, 2 * n - 8);
        if (bias) {
            const __m256 v = _mm256_set1_ps(*bias);
            t0 = _mm256_add_ps(t0, v), t1 = _mm256_add_ps(t1, v);
            b0 = _mm256_add_ps(b0, v), b1 = _mm256_add_ps(b1, v);
        }
#define SKC_COLUMNS_S(u, v, sel) _mm256_castpd_ps(_mm256_permute4x64_pd(                \
            _mm256_castps_pd(_mm256_shuffle_ps(u, v, sel)), _MM_SHUFFLE(3, 1, 2, 0)))
        __m256 a = SKC_COLUMNS_S(t0, t1, _MM_SHUFFLE(2, 0, 2, 0));
        __m256 b = SKC_COLUMNS_S(t0, t1, _MM_SHUFFLE(3, 1, 3, 1));
        __m256 d = SKC_COLUMNS_S(b0, b1, _MM_SHUFFLE(2, 0, 2, 0));
        __m256 e = SKC_COLUMNS_S(b0, b1, _MM_SHUFFLE(3, 1, 3, 1));
#undef SKC_COLUMNS_S
#define SKC_REPLACES_S(best, v) _mm256_or_ps(_mm256_cmp_ps(v, best, _CMP_GT_OQ),          \
                                             _mm256_cmp_ps(v, v, _CMP_UNORD_Q))
        __m256 right = SKC_REPLACES_S(a, b), lower_right = SKC_REPLACES_S(d, e);
        __m256 upper = _mm256_blendv_ps(a, b, right), lower = _mm256_blendv_ps(d, e, lower_right);
        __m256 down = SKC_REPLACES_S(upper, lower);
#undef SKC_REPLACES_S
        __m256 best = _mm256_blendv_ps(upper, lower, down);
        if (relu)
            best = _mm256_blendv_ps(best, zero, _mm256_cmp_ps(best, zero, _CMP_LT_OQ));
        skc_store_s(out + j, best, n);
        if (!index)
            continue;
        /* offsets from top[2j]: the column step is the mask's top bit */
        __m256i k_upper = _mm256_srli_epi32(_mm256_castps_si256(right), 31);
        __m256i k_lower = _mm256_add_epi32(below, _mm256_srli_epi32(_mm256_castps_si256(lower_right), 31));
        __m256i k = _mm256_add_epi32(first, _mm256_blendv_epi8(k_upper, k_lower, _mm256_castps_si256(down)));
        __m256i base = _mm256_set1_epi64x((long long)(k0 + 2 * j));
        skc_store_i(index + j, _mm256_add_epi64(base, _mm256_cvtepi32_epi64(_mm256_castsi256_si128(k))),
                    n);
        skc_store_i(index + j + 4,
                    _mm256_add_epi64(base, _mm256_cvtepi32_epi64(_mm256_extracti128_si256(k, 1))),
                    n - 4);
    }
    return j;
}

__attribute__((target("avx2")))
static inline ptrdiff_t skc_max_pool_2x2_row_d(const double *top, const double *bottom, ptrdiff_t ow,
                                               ptrdiff_t k0, ptrdiff_t w, const double *bias,
                                               int relu, double *out, ptrdiff_t *index)
{
    const __m256i first = _mm256_setr_epi64x(0, 2, 4, 6);
    const __m256i below = _mm256_set1_epi64x((long long)w);
    const __m256d zero = _mm256_setzero_pd();
    ptrdiff_t j = 0;
    for (; j < ow; j += 4) {
        const int n = ow - j < 4 ? (int)(ow - j) : 4;
        __m256d t0 = skc_load_d(top + 2 * j, 2 * n), t1 = skc_load_d(top + 2 * j + 4, 2 * n - 4);
        __m256d b0 = skc_load_d(bottom + 2 * j, 2 * n), b1 = skc_load_d(bottom + 2 * j + 4, 2 * n - 4);
        if (bias) {
            const __m256d v = _mm256_set1_pd(*bias);
            t0 = _mm256_add_pd(t0, v), t1 = _mm256_add_pd(t1, v);
            b0 = _mm256_add_pd(b0, v), b1 = _mm256_add_pd(b1, v);
        }
#define SKC_COLUMNS_D(unpack, u, v) _mm256_permute4x64_pd(unpack(u, v), _MM_SHUFFLE(3, 1, 2, 0))
        __m256d a = SKC_COLUMNS_D(_mm256_unpacklo_pd, t0, t1);
        __m256d b = SKC_COLUMNS_D(_mm256_unpackhi_pd, t0, t1);
        __m256d d = SKC_COLUMNS_D(_mm256_unpacklo_pd, b0, b1);
        __m256d e = SKC_COLUMNS_D(_mm256_unpackhi_pd, b0, b1);
#undef SKC_COLUMNS_D
#define SKC_REPLACES_D(best, v) _mm256_or_pd(_mm256_cmp_pd(v, best, _CMP_GT_OQ),          \
                                             _mm256_cmp_pd(v, v, _CMP_UNORD_Q))
        __m256d right = SKC_REPLACES_D(a, b), lower_right = SKC_REPLACES_D(d, e);
        __m256d upper = _mm256_blendv_pd(a, b, right), lower = _mm256_blendv_pd(d, e, lower_right);
        __m256d down = SKC_REPLACES_D(upper, lower);
#undef SKC_REPLACES_D
        __m256d best = _mm256_blendv_pd(upper, lower, down);
        if (relu)
            best = _mm256_blendv_pd(best, zero, _mm256_cmp_pd(best, zero, _CMP_LT_OQ));
        skc_store_d(out + j, best, n);
        if (!index)
            continue;
        __m256i k_upper = _mm256_srli_epi64(_mm256_castpd_si256(right), 63);
        __m256i k_lower = _mm256_add_epi64(below, _mm256_srli_epi64(_mm256_castpd_si256(lower_right), 63));
        __m256i k = _mm256_add_epi64(first, _mm256_blendv_epi8(k_upper, k_lower, _mm256_castpd_si256(down)));
        skc_store_i(index + j, _mm256_add_epi64(_mm256_set1_epi64x((long long)(k0 + 2 * j)), k), n);
    }
    return j;
}

/* The backward of those windows for one row of them: dx of rows 2i (top) and
 * 2i + 1 (top + w) written whole, d + 0 at each window's maximum and 0 at its
 * other three places (the values of adding d into zeros: -0.0 becomes +0.0).
 * index as above, k0 the flat index of top[0]; y: the pooled maps after a ReLU,
 * whose gradient keeps d only where y > 0, or NULL. The choices are masks on
 * d's bits, and unpacks interleave each row's two columns. */
__attribute__((target("avx2")))
static inline ptrdiff_t skc_max_pool_2x2_backward_row_s(const float *dy, const ptrdiff_t *index,
                                                        const float *y, ptrdiff_t ow, ptrdiff_t k0,
                                                        ptrdiff_t w, float *top)
{
    const __m256i evens = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
    const __m256i first = _mm256_setr_epi64x(0, 2, 4, 6), step = _mm256_set1_epi64x(8);
    const __m256i one = _mm256_set1_epi32(1), below = _mm256_set1_epi32((int)w);
    const __m256i below_right = _mm256_set1_epi32((int)w + 1);
    float *bottom = top + w;
    ptrdiff_t j = 0;
    for (; j < ow; j += 8) {
        const int n = ow - j < 8 ? (int)(ow - j) : 8;
        __m256 d = _mm256_add_ps(skc_load_s(dy + j, n), _mm256_setzero_ps());
        if (y)
            d = _mm256_and_ps(d, _mm256_cmp_ps(skc_load_s(y + j, n), _mm256_setzero_ps(),
                                               _CMP_GT_OQ));
        /* each window's place of its maximum, 0, 1, w or w + 1, as 32-bit lanes */
        __m256i base = _mm256_add_epi64(_mm256_set1_epi64x((long long)(k0 + 2 * j)), first);
        __m256i k_lo = _mm256_sub_epi64(skc_load_i(index + j, n), base);
        __m256i k_hi = _mm256_sub_epi64(skc_load_i(index + j + 4, n - 4),
                                        _mm256_add_epi64(base, step));
        __m256i k = _mm256_permute2x128_si256(_mm256_permutevar8x32_epi32(k_lo, evens),
                                              _mm256_permutevar8x32_epi32(k_hi, evens), 0x20);
#define SKC_AT_S(place) _mm256_and_ps(d, _mm256_castsi256_ps(_mm256_cmpeq_epi32(k, place)))
        __m256 tl = SKC_AT_S(_mm256_setzero_si256()), tr = SKC_AT_S(one);
        __m256 bl = SKC_AT_S(below), br = SKC_AT_S(below_right);
#undef SKC_AT_S
        __m256 lo = _mm256_unpacklo_ps(tl, tr), hi = _mm256_unpackhi_ps(tl, tr);
        skc_store_s(top + 2 * j, _mm256_permute2f128_ps(lo, hi, 0x20), 2 * n);
        skc_store_s(top + 2 * j + 8, _mm256_permute2f128_ps(lo, hi, 0x31), 2 * n - 8);
        lo = _mm256_unpacklo_ps(bl, br);
        hi = _mm256_unpackhi_ps(bl, br);
        skc_store_s(bottom + 2 * j, _mm256_permute2f128_ps(lo, hi, 0x20), 2 * n);
        skc_store_s(bottom + 2 * j + 8, _mm256_permute2f128_ps(lo, hi, 0x31), 2 * n - 8);
    }
    return j;
}

__attribute__((target("avx2")))
static inline ptrdiff_t skc_max_pool_2x2_backward_row_d(const double *dy, const ptrdiff_t *index,
                                                        const double *y, ptrdiff_t ow, ptrdiff_t k0,
                                                        ptrdiff_t w, double *top)
{
    const __m256i first = _mm256_setr_epi64x(0, 2, 4, 6), one = _mm256_set1_epi64x(1);
    const __m256i below = _mm256_set1_epi64x((long long)w);
    const __m256i below_right = _mm256_set1_epi64x((long long)w + 1);
    double *bottom = top + w;
    ptrdiff_t j = 0;
    for (; j < ow; j += 4) {
        const int n = ow - j < 4 ? (int)(ow - j) : 4;
        __m256d d = _mm256_add_pd(skc_load_d(dy + j, n), _mm256_setzero_pd());
        if (y)
            d = _mm256_and_pd(d, _mm256_cmp_pd(skc_load_d(y + j, n), _mm256_setzero_pd(),
                                               _CMP_GT_OQ));
        __m256i base = _mm256_add_epi64(_mm256_set1_epi64x((long long)(k0 + 2 * j)), first);
        __m256i k = _mm256_sub_epi64(skc_load_i(index + j, n), base);
#define SKC_AT_D(place) _mm256_and_pd(d, _mm256_castsi256_pd(_mm256_cmpeq_epi64(k, place)))
        __m256d tl = SKC_AT_D(_mm256_setzero_si256()), tr = SKC_AT_D(one);
        __m256d bl = SKC_AT_D(below), br = SKC_AT_D(below_right);
#undef SKC_AT_D
        __m256d lo = _mm256_unpacklo_pd(tl, tr), hi = _mm256_unpackhi_pd(tl, tr);
        skc_store_d(top + 2 * j, _mm256_permute2f128_pd(lo, hi, 0x20), 2 * n);
        skc_store_d(top + 2 * j + 4, _mm256_permute2f128_pd(lo, hi, 0x31), 2 * n - 4);
        lo = _mm256_unpacklo_pd(bl, br);
        hi = _mm256_unpackhi_pd(bl, br);
        skc_store_d(bottom + 2 * j, _mm256_permute2f128_pd(lo, hi, 0x20), 2 * n);
        skc_store_d(bottom + 2 * j + 4, _mm256_permute2f128_pd(lo, hi, 0x31), 2 * n - 4);
    }
    return j;
}

/* The values alone (inference: no indices), a plane at a time, in AVX-512's sixteen
 * (eight) lanes: the choices above, in the same order, on mask registers. Window (i, j)
 * reads top + 2 i * ldt + 2 j and the row ldt further; out[i * pw + j]. The even and
 * odd columns of a step's rows come out of two-source permutes: rows of at most half
 * a vector of windows (7 for 14 x 14 maps) go two at a time, their windows side by side
 * in one vector as they are in out. Whole and masked loads and stores read and write
 * nothing past the rows (a masked AVX2 store is slow on AMD's cores, and the row
 * kernel above pays one a row for short rows). Not in the emulated build
 * (tools/avx512_emulated.sh), whose avx512 path takes the row kernel. */
#ifndef SKC_EMULATE_AVX512
/* PICK(best, v): v where larger than best or NaN, else best; RELU(v): 0 where v < 0
 * (NaN and -0.0 stay): the choices of every AVX-512 pooling kernel here */
#define SKC_PICK_AVX512_S(best, v) _mm512_mask_blend_ps(                        \
    _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), best, v)
#define SKC_PICK_AVX512_D(best, v) _mm512_mask_blend_pd(                        \
    _mm512_cmp_pd_mask(v, best, _CMP_GT_OQ) | _mm512_cmp_pd_mask(v, v, _CMP_UNORD_Q), best, v)
#define SKC_RELU_AVX512_S(v) _mm512_mask_blend_ps(                              \
    _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ), v, _mm512_setzero_ps())
#define SKC_RELU_AVX512_D(v) _mm512_mask_blend_pd(                              \
    _mm512_cmp_pd_mask(v, _mm512_setzero_pd(), _CMP_LT_OQ), v, _mm512_setzero_pd())
#define SKC_POOL_PLANE(SFX, T, VEC, VL, MASK_T, IDX_T, SET1, LOADZ, STOREM, PERM, PICK, RELU, \
                       ADD)                                                             \
    __attribute__((target("avx512f")))                                                  \
    static void skc_max_pool_2x2_plane_##SFX(const T *top, ptrdiff_t ldt, ptrdiff_t ph,  \
                                              ptrdiff_t pw, const T *bias, int relu, T *out) \
    {                                                                                   \
        const int pair = 2 * pw <= VL; /* two rows a step */                            \
        IDX_T even_idx[VL], odd_idx[VL];                                                \
        for (int l = 0; l < VL; l++) {                                                  \
            even_idx[l] = pair && l >= pw ? VL + 2 * (l - pw) : 2 * l;                  \
            odd_idx[l] = even_idx[l] + 1;                                               \
        }                                                                               \
        const __m512i even = _mm512_loadu_si512(even_idx), odd = _mm512_loadu_si512(odd_idx); \
        /* without a bias, -0.0: the one addend that leaves every value's bits (+0.0   \
         * would turn -0.0 into +0.0) */                                                \
        const VEC shift = SET1(bias ? *bias : (T)-0.0);                                 \
        for (ptrdiff_t i = 0; i < ph; i += pair ? 2 : 1)                                \
            for (ptrdiff_t j = 0; j < pw; j += VL) {                                    \
                const T *t0 = top + 2 * i * ldt + 2 * j, *b0 = t0 + ldt, *t1, *b1;      \
                MASK_T m0, m1;                                                          \
                ptrdiff_t n; /* windows this step */                                   \
                if (pair) {                                                             \
                    const int second = i + 1 < ph;                                      \
                    t1 = t0 + 2 * ldt, b1 = b0 + 2 * ldt;                               \
                    m0 = (MASK_T)((1u << 2 * pw) - 1), m1 = second ? m0 : 0;            \
                    n = second ? 2 * pw : pw;                                           \
                } else {                                                                \
                    n = pw - j < VL ? pw - j : VL;                                      \
                    t1 = t0 + VL, b1 = b0 + VL;                                         \
                    m0 = (MASK_T)(2 * n >= VL ? (1u << VL) - 1 : (1u << 2 * n) - 1);   \
                    m1 = (MASK_T)(2 * n > VL ? (1u << (2 * n - VL)) - 1 : 0);           \
                }                                                                       \
                const VEC tt0 = ADD(LOADZ(m0, t0), shift), tt1 = ADD(LOADZ(m1, t1), shift); \
                const VEC bb0 = ADD(LOADZ(m0, b0), shift), bb1 = ADD(LOADZ(m1, b1), shift); \
                const VEC a = PERM(tt0, even, tt1), b = PERM(tt0, odd, tt1);            \
                const VEC d = PERM(bb0, even, bb1), e = PERM(bb0, odd, bb1);            \
                const VEC best = PICK(PICK(a, b), PICK(d, e));                         \
                STOREM(out + i * pw + j, (MASK_T)((1u << n) - 1), relu ? RELU(best) : best); \
            }                                                                           \
    }
SKC_POOL_PLANE(s, float, __m512, 16, __mmask16, int32_t, _mm512_set1_ps, _mm512_maskz_loadu_ps,
               _mm512_mask_storeu_ps, _mm512_permutex2var_ps, SKC_PICK_AVX512_S,
               SKC_RELU_AVX512_S, _mm512_add_ps)
SKC_POOL_PLANE(d, double, __m512d, 8, __mmask8, int64_t, _mm512_set1_pd, _mm512_maskz_loadu_pd,
               _mm512_mask_storeu_pd, _mm512_permutex2var_pd, SKC_PICK_AVX512_D,
               SKC_RELU_AVX512_D, _mm512_add_pd)
#define SKC_HAVE_POOL_PLANE 1
#endif

#define SKC_HAVE_VECTOR_POOL 1
#else
#define SKC_HAVE_VECTOR_POOL 0
static inline ptrdiff_t skc_max_pool_2x2_backward_row_s(const float *dy, const ptrdiff_t *index,
                                                        const float *y, ptrdiff_t ow, ptrdiff_t k0,
                                                        ptrdiff_t w, float *top)
{
    return 0;
}
static inline ptrdiff_t skc_max_pool_2x2_backward_row_d(const double *dy, const ptrdiff_t *index,
                                                        const double *y, ptrdiff_t ow, ptrdiff_t k0,
                                                        ptrdiff_t w, double *top)
{
    return 0;
}
static inline ptrdiff_t skc_max_pool_2x2_row_s(const float *top, const float *bottom, ptrdiff_t ow,
                                               ptrdiff_t k0, ptrdiff_t w, const float *bias,
                                               int relu, float *out, ptrdiff_t *index)
{
    return 0;
}
static inline ptrdiff_t skc_max_pool_2x2_row_d(const double *top, const double *bottom, ptrdiff_t ow,
                                               ptrdiff_t k0, ptrdiff_t w, const double *bias,
                                               int relu, double *out, ptrdiff_t *index)
{
    return 0;
}
#endif

#ifndef SKC_HAVE_POOL_PLANE
#define SKC_HAVE_POOL_PLANE 0
static void skc_max_pool_2x2_plane_s(const float *top, ptrdiff_t ldt, ptrdiff_t ph, ptrdiff_t pw,
                                     const float *bias, int relu, float *out) {}
static void skc_max_pool_2x2_plane_d(const double *top, ptrdiff_t ldt, ptrdiff_t ph,
                                     ptrdiff_t pw, const double *bias, int relu, double *out) {}
#endif

/* The values of 2x2 max pooling over a product of positions by filters (a convolution's
 * output with the filters along its rows: see _conv.conv2d_forward_implicit): window
 * (i, j) of each filter f reads rows (2i) * ow + 2j, the one after, and the two ow rows
 * further, at element f; out[(i * pw + j) * ldo + f]. bias[f] (or NULL: none) is added
 * to each first; the choices of max_pool_2x2_row, in its order (each row's pair, then
 * the two rows, the later operand winning if larger or NaN), then the ReLU, so the same
 * bits. Each filter a lane: on the SIMD paths the rows are read and out written in whole
 * vectors up to n rounded up to the vector (the product's tiles and the caller's
 * scratch have that room; bias is read masked). */
#define SKC_PICK(best, v) (((v) > (best)) | ((v) != (v)) ? (v) : (best))
#define SKC_POSITIONS_PORTABLE(SFX, T)                                          \
    static inline void skc_pool_positions_window_portable_##SFX(                \
        const T *top, const T *bottom, ptrdiff_t ldc, ptrdiff_t n, const T *bias, \
        int relu, T *o)                                                         \
    {                                                                           \
        for (ptrdiff_t f = 0; f < n; f++) {                                     \
            T a = top[f], b = top[ldc + f], d = bottom[f], e = bottom[ldc + f]; \
            if (bias) /* (no shift at all without one: -0.0 + 0 is +0.0) */     \
                a += bias[f], b += bias[f], d += bias[f], e += bias[f];         \
            const T best = SKC_PICK(SKC_PICK(a, b), SKC_PICK(d, e));           \
            o[f] = relu && best < 0 ? 0 : best;                                 \
        }                                                                       \
    }
SKC_POSITIONS_PORTABLE(s, float)
SKC_POSITIONS_PORTABLE(d, double)
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
/* PICK(best, v): v where larger than best or NaN, else best; BIAS(p, k): k values from
 * p, zeros past them; RELU(v): 0 where v < 0 (NaN and -0.0 stay) */
#define SKC_POSITIONS_SIMD(SFX, TARGET, T, VEC, VL, LOADU, STOREU, ADD, BIAS, PICK, RELU) \
    __attribute__((target(TARGET)))                                             \
    static inline void skc_pool_positions_window_##SFX(                         \
        const T *top, const T *bottom, ptrdiff_t ldc, ptrdiff_t n, const T *bias, \
        int relu, T *o)                                                         \
    {                                                                           \
        for (ptrdiff_t f = 0; f < n; f += VL) {                                 \
            VEC a = LOADU(top + f), b = LOADU(top + ldc + f);                   \
            VEC d = LOADU(bottom + f), e = LOADU(bottom + ldc + f);             \
            if (bias) {                                                         \
                const VEC v = BIAS(bias + f, n - f);                            \
                a = ADD(a, v), b = ADD(b, v), d = ADD(d, v), e = ADD(e, v);     \
            }                                                                   \
            const VEC best = PICK(PICK(a, b), PICK(d, e));                     \
            STOREU(o + f, relu ? RELU(best) : best);                            \
        }                                                                       \
    }
#define SKC_PICK_AVX2_S(best, v) _mm256_blendv_ps(best, v, _mm256_or_ps(        \
    _mm256_cmp_ps(v, best, _CMP_GT_OQ), _mm256_cmp_ps(v, v, _CMP_UNORD_Q)))
#define SKC_PICK_AVX2_D(best, v) _mm256_blendv_pd(best, v, _mm256_or_pd(        \
    _mm256_cmp_pd(v, best, _CMP_GT_OQ), _mm256_cmp_pd(v, v, _CMP_UNORD_Q)))
#define SKC_RELU_AVX2_S(v) _mm256_blendv_ps(v, _mm256_setzero_ps(),             \
                                            _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_LT_OQ))
#define SKC_RELU_AVX2_D(v) _mm256_blendv_pd(v, _mm256_setzero_pd(),             \
                                            _mm256_cmp_pd(v, _mm256_setzero_pd(), _CMP_LT_OQ))
#define SKC_BIAS_AVX2_S(p, k) skc_load_s(p, (int)((k) < 8 ? (k) : 8))
#define SKC_BIAS_AVX2_D(p, k) skc_load_d(p, (int)((k) < 4 ? (k) : 4))
SKC_POSITIONS_SIMD(avx2_s, "avx2", float, __m256, 8, _mm256_loadu_ps, _mm256_storeu_ps,
                   _mm256_add_ps, SKC_BIAS_AVX2_S, SKC_PICK_AVX2_S, SKC_RELU_AVX2_S)
SKC_POSITIONS_SIMD(avx2_d, "avx2", double, __m256d, 4, _mm256_loadu_pd, _mm256_storeu_pd,
                   _mm256_add_pd, SKC_BIAS_AVX2_D, SKC_PICK_AVX2_D, SKC_RELU_AVX2_D)
#ifndef SKC_EMULATE_AVX512
#define SKC_BIAS_AVX512_S(p, k) _mm512_maskz_loadu_ps(                          \
    (__mmask16)((k) >= 16 ? 0xFFFFu : (1u << (k)) - 1), p)
#define SKC_BIAS_AVX512_D(p, k) _mm512_maskz_loadu_pd(                          \
    (__mmask8)((k) >= 8 ? 0xFFu : (1u << (k)) - 1), p)
SKC_POSITIONS_SIMD(avx512_s, "avx512f", float, __m512, 16, _mm512_loadu_ps, _mm512_storeu_ps,
                   _mm512_add_ps, SKC_BIAS_AVX512_S, SKC_PICK_AVX512_S, SKC_RELU_AVX512_S)
SKC_POSITIONS_SIMD(avx512_d, "avx512f", double, __m512d, 8, _mm512_loadu_pd, _mm512_storeu_pd,
                   _mm512_add_pd, SKC_BIAS_AVX512_D, SKC_PICK_AVX512_D, SKC_RELU_AVX512_D)
#else /* the emulated build runs AVX-512's path with AVX2's code */
#define skc_pool_positions_window_avx512_s skc_pool_positions_window_avx2_s
#define skc_pool_positions_window_avx512_d skc_pool_positions_window_avx2_d
#endif
#define SKC_POSITIONS_WINDOW(SFX, path, ...)                                    \
    ((path) == 2 ? skc_pool_positions_window_avx512_##SFX(__VA_ARGS__)          \
     : (path) == 1 ? skc_pool_positions_window_avx2_##SFX(__VA_ARGS__)          \
     : skc_pool_positions_window_portable_##SFX(__VA_ARGS__))
#else
#define SKC_POSITIONS_WINDOW(SFX, path, ...) skc_pool_positions_window_portable_##SFX(__VA_ARGS__)
#endif
#define SKC_POOL_POSITIONS(SFX, T)                                              \
    static inline void skc_max_pool_2x2_positions_##SFX(                        \
        const T *c, ptrdiff_t ldc, ptrdiff_t ph, ptrdiff_t pw, ptrdiff_t ow, ptrdiff_t n, \
        const T *bias, int relu, T *out, ptrdiff_t ldo, int path)               \
    {                                                                           \
        for (ptrdiff_t i = 0; i < ph; i++)                                      \
            for (ptrdiff_t j = 0; j < pw; j++) {                                \
                const T *top = c + (2 * i * ow + 2 * j) * ldc;                  \
                SKC_POSITIONS_WINDOW(SFX, path, top, top + ow * ldc, ldc, n, bias, relu, \
                                     out + (i * pw + j) * ldo);                 \
            }                                                                   \
    }
/* path: gemm.h's numbering (0 portable, 1 AVX2, 2 AVX-512) */
SKC_POOL_POSITIONS(s, float)
SKC_POOL_POSITIONS(d, double)

/* skc_max_pool_2x2_plane on the avx512 path where the build has it: the rows it did
 * (all of them, or none: the caller's row kernel then does them). path: gemm.h's
 * numbering, 2 for AVX-512. */
#define SKC_PLANE_ROWS(SFX, T)                                                  \
    static inline ptrdiff_t skc_max_pool_2x2_plane_rows_##SFX(                  \
        const T *top, ptrdiff_t ldt, ptrdiff_t ph, ptrdiff_t pw, const T *bias, int relu, \
        T *out, int path)                                                       \
    {                                                                           \
        if (!SKC_HAVE_POOL_PLANE || path != 2)                                  \
            return 0;                                                           \
        skc_max_pool_2x2_plane_##SFX(top, ldt, ph, pw, bias, relu, out);        \
        return ph;                                                              \
    }
SKC_PLANE_ROWS(s, float)
SKC_PLANE_ROWS(d, double)

#endif /* SKCONV_POOL_H */
