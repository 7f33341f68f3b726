/* skconv's GEMM: C[m, n] (+)= A[m, k] @ B[k, n], float32 and float64.
 *
 * BLIS's layering (Van Zee & van de Geijn): only the micro-kernel, an MR x NR
 * register-blocked update C_tile += A_panel[MR, kc] @ B_panel[kc, NR], depends
 * on the instruction set; packing, the loops over blocks and the edges are
 * portable and written once.
 *
 * Determinism is a property of the design: every element of C is one chain of
 * fused multiply-adds over k = 0, 1, ..., k-1, starting from 0 (or from C's
 * old value when accumulating), whatever tile, path or thread computes it. A
 * vector lane holds one output column and never mixes with another lane (no
 * horizontal reduction), a k-block boundary stores and reloads the running
 * sum in its own precision (exact), and the portable path calls fma()/fmaf().
 * So the bits of an output do not depend on the other rows, the batch size,
 * the thread count or the SIMD width.
 *
 * Compile with -ffp-contract=off: every fused multiply-add here is explicit.
 */
#ifndef SKCONV_GEMM_H
#define SKCONV_GEMM_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define SKC_HAVE_X86_PATHS 1
#include <immintrin.h>
#ifdef SKC_EMULATE_AVX512 /* a test build: see tools/avx512_emulated.sh */
#include "avx512_emulation.h"
#endif
#ifndef SKC_AVX512_TARGET
#define SKC_AVX512_TARGET "avx512f"
#define SKC_CPU_HAS_AVX512() __builtin_cpu_supports("avx512f")
#endif
#else
#define SKC_HAVE_X86_PATHS 0
#endif

enum { SKC_PORTABLE = 0, SKC_AVX2 = 1, SKC_AVX512 = 2, SKC_N_PATHS = 3 };

/* Blocking: a kc x NR panel of B stays in L1, an MC x kc block of A in L2, a
 * kc x NC block of B in L3. MC is a multiple of every MR, NC of every NR. */
#define SKC_KC 256
#define SKC_MC 120
#define SKC_NC 1536
#define SKC_MR_MAX 8
#define SKC_NR_MAX 64
#define SKC_TILE_MAX 288 /* the largest MR * NR */
#define SKC_TAP_ROWS_MAX 18 /* the largest MR of skc_gemm_tap_rows' kernels (runs') */
#define SKC_ALIGN 64

typedef void (*skc_ukr_s)(int, const float *, const float *, ptrdiff_t, float *, ptrdiff_t, int);
typedef void (*skc_ukr_d)(int, const double *, const double *, ptrdiff_t, double *, ptrdiff_t, int);
typedef void (*skc_ukr_offsets_s)(int, const float *, const float *, const ptrdiff_t *, float *,
                                  ptrdiff_t, int);
typedef void (*skc_ukr_offsets_d)(int, const double *, const double *, const ptrdiff_t *, double *,
                                  ptrdiff_t, int);
typedef void (*skc_ukr_taps_s)(int, const float *const *, const ptrdiff_t *, const float *,
                               ptrdiff_t, float *, ptrdiff_t, int);
typedef void (*skc_ukr_taps_d)(int, const double *const *, const ptrdiff_t *, const double *,
                               ptrdiff_t, double *, ptrdiff_t, int);
typedef void (*skc_ukr_pair_s)(int, const float *, const float *, const float *,
                               const ptrdiff_t *, float *, float *, ptrdiff_t, ptrdiff_t);
typedef void (*skc_ukr_pair_d)(int, const double *, const double *, const double *,
                               const ptrdiff_t *, double *, double *, ptrdiff_t, ptrdiff_t);

/* ---- micro-kernels ------------------------------------------------------
 * c[MR, NR] (row stride ldc, unit column stride) = (load_c ? c : 0)
 *     + sum over p of a[p, 0:MR]^T b[p, 0:NR], one FMA per (p, row, column).
 * A's element (r, p) is AELEM(p, r, MR): a[p * MR + r] for a packed panel, or
 * a[r][apos[p]] for an implicit A whose rows are a convolution's taps read in
 * the padded image (a[r] the tap's start, apos the output positions: see
 * skc_gemm_tap_rows). Row p of b starts at BROW(p): p * ldb for a packed panel
 * (ldb = NR) or B itself when its rows are contiguous, or boff[p] for an
 * implicit B whose rows are anywhere (a convolution's taps, each a shifted
 * window of one padded image: see skc_implicit_gemm). APARAM, A's parameters
 * in parentheses, may hold a comma. */
#define SKC_A_PACKED(p, r, MR) a[(ptrdiff_t)(p) * (MR) + (r)]
#define SKC_A_TAPS(p, r, MR) a[r][apos[p]]
#define SKC_ROW_STRIDED(p) ((ptrdiff_t)(p) * ldb)
#define SKC_ROW_OFFSET(p) (boff[p])
#define SKC_UNPAREN(...) __VA_ARGS__

#define SKC_PORTABLE_UKR(NAME, T, FMA, MR, NR, APARAM, AELEM, BPARAM, BROW)     \
    static void NAME(int k, SKC_UNPAREN APARAM, const T *restrict b,            \
                     BPARAM, T *restrict c, ptrdiff_t ldc, int load_c)          \
    {                                                                           \
        T acc[MR][NR];                                                          \
        for (int r = 0; r < MR; r++)                                            \
            for (int j = 0; j < NR; j++)                                        \
                acc[r][j] = load_c ? c[r * ldc + j] : (T)0;                     \
        for (int p = 0; p < k; p++)                                             \
            for (int r = 0; r < MR; r++)                                        \
                for (int j = 0; j < NR; j++)                                    \
                    acc[r][j] = FMA(AELEM(p, r, MR), b[BROW(p) + j], acc[r][j]); \
        for (int r = 0; r < MR; r++)                                            \
            for (int j = 0; j < NR; j++)                                        \
                c[r * ldc + j] = acc[r][j];                                     \
    }

#define SKC_PACKED_S (const float *restrict a), SKC_A_PACKED
#define SKC_PACKED_D (const double *restrict a), SKC_A_PACKED
#define SKC_TAPS_S (const float *const *restrict a, const ptrdiff_t *restrict apos), SKC_A_TAPS
#define SKC_TAPS_D (const double *const *restrict a, const ptrdiff_t *restrict apos), SKC_A_TAPS
#define SKC_STRIDED ptrdiff_t ldb, SKC_ROW_STRIDED
#define SKC_OFFSETS const ptrdiff_t *restrict boff, SKC_ROW_OFFSET
/* The expansion of A's and B's pairs of arguments into the templates'. */
#define SKC_PORTABLE(...) SKC_PORTABLE_UKR(__VA_ARGS__)

SKC_PORTABLE(skc_ukr_portable_s, float, fmaf, 4, 8, SKC_PACKED_S, SKC_STRIDED)
SKC_PORTABLE(skc_ukr_portable_d, double, fma, 4, 4, SKC_PACKED_D, SKC_STRIDED)
SKC_PORTABLE(skc_ukr_portable_offsets_s, float, fmaf, 4, 8, SKC_PACKED_S, SKC_OFFSETS)
SKC_PORTABLE(skc_ukr_portable_offsets_d, double, fma, 4, 4, SKC_PACKED_D, SKC_OFFSETS)
SKC_PORTABLE(skc_ukr_portable_taps_s, float, fmaf, 4, 8, SKC_TAPS_S, SKC_STRIDED)
SKC_PORTABLE(skc_ukr_portable_taps_d, double, fma, 4, 4, SKC_TAPS_D, SKC_STRIDED)

#if SKC_HAVE_X86_PATHS
/* One template for every vector width: NV vectors of VL lanes make NR. */
#define SKC_VECTOR_UKR(NAME, TARGET, T, VEC, VL, NV, MR, LOADU, STOREU, SET1, ZERO, FMA,   \
                       APARAM, AELEM, BPARAM, BROW)                             \
    __attribute__((target(TARGET)))                                             \
    static void NAME(int k, SKC_UNPAREN APARAM, const T *restrict b,            \
                     BPARAM, T *restrict c, ptrdiff_t ldc, int load_c)          \
    {                                                                           \
        VEC acc[MR][NV];                                                        \
        _Pragma("GCC unroll 8")                                                 \
        for (int r = 0; r < MR; r++)                                            \
            _Pragma("GCC unroll 8")                                             \
            for (int v = 0; v < NV; v++)                                        \
                acc[r][v] = load_c ? LOADU(c + r * ldc + v * VL) : ZERO();      \
        for (int p = 0; p < k; p++) {                                           \
            VEC bv[NV];                                                         \
            const T *brow = b + BROW(p);                                        \
            _Pragma("GCC unroll 8")                                             \
            for (int v = 0; v < NV; v++)                                        \
                bv[v] = LOADU(brow + v * VL);                                   \
            _Pragma("GCC unroll 8")                                             \
            for (int r = 0; r < MR; r++) {                                      \
                VEC av = SET1(AELEM(p, r, MR));                                 \
                _Pragma("GCC unroll 8")                                         \
                for (int v = 0; v < NV; v++)                                    \
                    acc[r][v] = FMA(av, bv[v], acc[r][v]);                      \
            }                                                                   \
        }                                                                       \
        _Pragma("GCC unroll 8")                                                 \
        for (int r = 0; r < MR; r++)                                            \
            _Pragma("GCC unroll 8")                                             \
            for (int v = 0; v < NV; v++)                                        \
                STOREU(c + r * ldc + v * VL, acc[r][v]);                        \
    }

#define SKC_AVX2_S(NAME, NV, MR, ...)                                           \
    SKC_VECTOR_UKR(NAME, "avx2,fma", float, __m256, 8, NV, MR, _mm256_loadu_ps,  \
                   _mm256_storeu_ps, _mm256_set1_ps, _mm256_setzero_ps,         \
                   _mm256_fmadd_ps, __VA_ARGS__)
#define SKC_AVX2_D(NAME, NV, MR, ...)                                           \
    SKC_VECTOR_UKR(NAME, "avx2,fma", double, __m256d, 4, NV, MR, _mm256_loadu_pd, \
                   _mm256_storeu_pd, _mm256_set1_pd, _mm256_setzero_pd,         \
                   _mm256_fmadd_pd, __VA_ARGS__)
#define SKC_AVX512_S(NAME, NV, MR, ...)                                         \
    SKC_VECTOR_UKR(NAME, SKC_AVX512_TARGET, float, __m512, 16, NV, MR, _mm512_loadu_ps,  \
                   _mm512_storeu_ps, _mm512_set1_ps, _mm512_setzero_ps,         \
                   _mm512_fmadd_ps, __VA_ARGS__)
#define SKC_AVX512_D(NAME, NV, MR, ...)                                         \
    SKC_VECTOR_UKR(NAME, SKC_AVX512_TARGET, double, __m512d, 8, NV, MR, _mm512_loadu_pd, \
                   _mm512_storeu_pd, _mm512_set1_pd, _mm512_setzero_pd,         \
                   _mm512_fmadd_pd, __VA_ARGS__)

/* The implicit product's last panel when it holds at most MR / 2 rows (32
 * filters are five panels of 6 and one of 2): those rows of two tiles at once,
 * c0 from the image at b0 and c1 at b1, so that as many accumulators work as
 * in a full tile instead of MR - rows of them on zeros. a is a panel packed for
 * MR rows (a stride of MR per p); only rows 0 .. HR - 1 are computed and stored.
 * Each element is the same FMA chain over p as in the full kernel.
 * BLOAD(LOADU, P) loads a vector of B at P: whole (SKC_B_WHOLE), or its two
 * halves from P and P + gap (SKC_B_HALVES_*: a tile of two output rows of a
 * map half a vector wide, the second gap positions after the first in the
 * image); gap is unused otherwise. */
#define SKC_B_WHOLE(LOADU, P) LOADU(P)
#define SKC_VECTOR_UKR_PAIR(NAME, TARGET, T, VEC, VL, NV, HR, MR, LOADU, STOREU, SET1, ZERO, \
                            FMA, BLOAD)                                                 \
    __attribute__((target(TARGET)))                                             \
    static void NAME(int k, const T *restrict a, const T *restrict b0,          \
                     const T *restrict b1, const ptrdiff_t *restrict boff,      \
                     T *restrict c0, T *restrict c1, ptrdiff_t ldc, ptrdiff_t gap) \
    {                                                                           \
        VEC acc0[HR][NV], acc1[HR][NV];                                         \
        (void)gap;                                                              \
        _Pragma("GCC unroll 8")                                                 \
        for (int r = 0; r < HR; r++)                                            \
            _Pragma("GCC unroll 8")                                             \
            for (int v = 0; v < NV; v++)                                        \
                acc0[r][v] = acc1[r][v] = ZERO();                               \
        for (int p = 0; p < k; p++) {                                           \
            VEC bv0[NV], bv1[NV];                                               \
            _Pragma("GCC unroll 8")                                             \
            for (int v = 0; v < NV; v++) {                                      \
                bv0[v] = BLOAD(LOADU, b0 + boff[p] + v * VL);                   \
                bv1[v] = BLOAD(LOADU, b1 + boff[p] + v * VL);                   \
            }                                                                   \
            _Pragma("GCC unroll 8")                                             \
            for (int r = 0; r < HR; r++) {                                      \
                VEC av = SET1(a[(ptrdiff_t)p * MR + r]);                        \
                _Pragma("GCC unroll 8")                                         \
                for (int v = 0; v < NV; v++) {                                  \
                    acc0[r][v] = FMA(av, bv0[v], acc0[r][v]);                   \
                    acc1[r][v] = FMA(av, bv1[v], acc1[r][v]);                   \
                }                                                               \
            }                                                                   \
        }                                                                       \
        _Pragma("GCC unroll 8")                                                 \
        for (int r = 0; r < HR; r++)                                            \
            _Pragma("GCC unroll 8")                                             \
            for (int v = 0; v < NV; v++) {                                      \
                STOREU(c0 + r * ldc + v * VL, acc0[r][v]);                      \
                STOREU(c1 + r * ldc + v * VL, acc1[r][v]);                      \
            }                                                                   \
    }

/* A vector from two half-vectors, lo's lanes first (data movement only). */
#ifdef SKC_EMULATE_AVX512
#define skc_avx512_loadu_halves_s skc_emu_loadu_halves_ps
#define skc_avx512_loadu_halves_d skc_emu_loadu_halves_pd
#else
__attribute__((target("avx512f")))
static inline __m512 skc_avx512_loadu_halves_s(const float *lo, const float *hi)
{
    return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_castps256_ps512(
        _mm256_loadu_ps(lo))), _mm256_castps_pd(_mm256_loadu_ps(hi)), 1));
}
__attribute__((target("avx512f")))
static inline __m512d skc_avx512_loadu_halves_d(const double *lo, const double *hi)
{
    return _mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_loadu_pd(lo)), _mm256_loadu_pd(hi), 1);
}
#endif
#define SKC_B_HALVES_S(LOADU, P) skc_avx512_loadu_halves_s(P, (P) + gap)
#define SKC_B_HALVES_D(LOADU, P) skc_avx512_loadu_halves_d(P, (P) + gap)

/* The pair template at each path's vectors: NV vectors of HR rows, MR the
 * panel's rows (the full kernel's), B loaded by BLOAD. */
#define SKC_AVX2_PAIR_S(NAME, NV, HR, MR, BLOAD)                                \
    SKC_VECTOR_UKR_PAIR(NAME, "avx2,fma", float, __m256, 8, NV, HR, MR, _mm256_loadu_ps, \
                        _mm256_storeu_ps, _mm256_set1_ps, _mm256_setzero_ps, _mm256_fmadd_ps, \
                        BLOAD)
#define SKC_AVX2_PAIR_D(NAME, NV, HR, MR, BLOAD)                                \
    SKC_VECTOR_UKR_PAIR(NAME, "avx2,fma", double, __m256d, 4, NV, HR, MR, _mm256_loadu_pd, \
                        _mm256_storeu_pd, _mm256_set1_pd, _mm256_setzero_pd, _mm256_fmadd_pd, \
                        BLOAD)
#define SKC_AVX512_PAIR_S(NAME, NV, HR, MR, BLOAD)                              \
    SKC_VECTOR_UKR_PAIR(NAME, SKC_AVX512_TARGET, float, __m512, 16, NV, HR, MR,  \
                        _mm512_loadu_ps, _mm512_storeu_ps, _mm512_set1_ps,      \
                        _mm512_setzero_ps, _mm512_fmadd_ps, BLOAD)
#define SKC_AVX512_PAIR_D(NAME, NV, HR, MR, BLOAD)                              \
    SKC_VECTOR_UKR_PAIR(NAME, SKC_AVX512_TARGET, double, __m512d, 8, NV, HR, MR, \
                        _mm512_loadu_pd, _mm512_storeu_pd, _mm512_set1_pd,      \
                        _mm512_setzero_pd, _mm512_fmadd_pd, BLOAD)

SKC_AVX2_PAIR_S(skc_ukr_avx2_pair_s, 2, 3, 6, SKC_B_WHOLE)
SKC_AVX2_PAIR_D(skc_ukr_avx2_pair_d, 2, 3, 6, SKC_B_WHOLE)
SKC_AVX512_PAIR_S(skc_ukr_avx512_pair_s, 2, 4, 8, SKC_B_WHOLE)
SKC_AVX512_PAIR_D(skc_ukr_avx512_pair_d, 2, 4, 8, SKC_B_WHOLE)
/* Narrow tiles (one vector wide) two at a time, every row of the panel: the
 * full tile's sixteen accumulators and its loads per multiply-add. */
SKC_AVX512_PAIR_S(skc_ukr_avx512_pair_narrow_s, 1, 8, 8, SKC_B_WHOLE)
SKC_AVX512_PAIR_D(skc_ukr_avx512_pair_narrow_d, 1, 8, 8, SKC_B_WHOLE)
/* Split tiles: narrow tiles of two output rows each, a map half a vector wide
 * (ResNet's 8 x 8 maps in floats), whose positions between two rows would be
 * a fifth of the narrow tiles' columns. */
SKC_AVX512_PAIR_S(skc_ukr_avx512_pair_split_s, 1, 8, 8, SKC_B_HALVES_S)
SKC_AVX512_PAIR_D(skc_ukr_avx512_pair_split_d, 1, 8, 8, SKC_B_HALVES_D)

/* The implicit product's last panel when it holds more than MR / 2 rows but
 * fewer than MR (16 filters are two panels of 6 and one of 4 on AVX2): only
 * its rows, one tile, where the full kernel would compute MR - rows rows of
 * zeros. a is still a panel packed for the full kernel's rows (a stride of
 * 6 or 8 per p); each element is the same FMA chain over p. */
#define SKC_A_PANEL6(p, r, MR) a[(ptrdiff_t)(p) * 6 + (r)]
#define SKC_A_PANEL8(p, r, MR) a[(ptrdiff_t)(p) * 8 + (r)]
#define SKC_PANEL6_S (const float *restrict a), SKC_A_PANEL6
#define SKC_PANEL6_D (const double *restrict a), SKC_A_PANEL6
#define SKC_PANEL8_S (const float *restrict a), SKC_A_PANEL8
#define SKC_PANEL8_D (const double *restrict a), SKC_A_PANEL8
SKC_AVX2_S(skc_ukr_avx2_part4_s, 2, 4, SKC_PANEL6_S, SKC_OFFSETS)
SKC_AVX2_S(skc_ukr_avx2_part5_s, 2, 5, SKC_PANEL6_S, SKC_OFFSETS)
SKC_AVX2_D(skc_ukr_avx2_part4_d, 2, 4, SKC_PANEL6_D, SKC_OFFSETS)
SKC_AVX2_D(skc_ukr_avx2_part5_d, 2, 5, SKC_PANEL6_D, SKC_OFFSETS)
SKC_AVX512_S(skc_ukr_avx512_part5_s, 2, 5, SKC_PANEL8_S, SKC_OFFSETS)
SKC_AVX512_S(skc_ukr_avx512_part6_s, 2, 6, SKC_PANEL8_S, SKC_OFFSETS)
SKC_AVX512_S(skc_ukr_avx512_part7_s, 2, 7, SKC_PANEL8_S, SKC_OFFSETS)
SKC_AVX512_D(skc_ukr_avx512_part5_d, 2, 5, SKC_PANEL8_D, SKC_OFFSETS)
SKC_AVX512_D(skc_ukr_avx512_part6_d, 2, 6, SKC_PANEL8_D, SKC_OFFSETS)
SKC_AVX512_D(skc_ukr_avx512_part7_d, 2, 7, SKC_PANEL8_D, SKC_OFFSETS)

SKC_AVX2_S(skc_ukr_avx2_s, 2, 6, SKC_PACKED_S, SKC_STRIDED)
SKC_AVX2_D(skc_ukr_avx2_d, 2, 6, SKC_PACKED_D, SKC_STRIDED)
SKC_AVX512_S(skc_ukr_avx512_s, 2, 8, SKC_PACKED_S, SKC_STRIDED)
SKC_AVX512_D(skc_ukr_avx512_d, 2, 8, SKC_PACKED_D, SKC_STRIDED)
/* The same tiles over an implicit B, and over an implicit A. */
SKC_AVX2_S(skc_ukr_avx2_offsets_s, 2, 6, SKC_PACKED_S, SKC_OFFSETS)
SKC_AVX2_D(skc_ukr_avx2_offsets_d, 2, 6, SKC_PACKED_D, SKC_OFFSETS)
SKC_AVX512_S(skc_ukr_avx512_offsets_s, 2, 8, SKC_PACKED_S, SKC_OFFSETS)
SKC_AVX512_D(skc_ukr_avx512_offsets_d, 2, 8, SKC_PACKED_D, SKC_OFFSETS)
SKC_AVX2_S(skc_ukr_avx2_taps_s, 2, 6, SKC_TAPS_S, SKC_STRIDED)
SKC_AVX2_D(skc_ukr_avx2_taps_d, 2, 6, SKC_TAPS_D, SKC_STRIDED)
SKC_AVX512_S(skc_ukr_avx512_taps_s, 2, 8, SKC_TAPS_S, SKC_STRIDED)
SKC_AVX512_D(skc_ukr_avx512_taps_d, 2, 8, SKC_TAPS_D, SKC_STRIDED)
/* Taps as rows by one vector of columns: for a weight gradient of at most a
 * vector's filters (LeNet-5's first, 6), where the full tile's second vector
 * would multiply zeros. 8 rows keep 8 accumulators busy, enough to hide the
 * FMA latency, with the 8 taps' pointers still in registers. */
SKC_AVX2_S(skc_ukr_avx2_taps_narrow_s, 1, 8, SKC_TAPS_S, SKC_STRIDED)
SKC_AVX2_D(skc_ukr_avx2_taps_narrow_d, 1, 8, SKC_TAPS_D, SKC_STRIDED)
SKC_AVX512_S(skc_ukr_avx512_taps_narrow_s, 1, 8, SKC_TAPS_S, SKC_STRIDED)
SKC_AVX512_D(skc_ukr_avx512_taps_narrow_d, 1, 8, SKC_TAPS_D, SKC_STRIDED)
/* Taps in runs of KW by one vector of columns: for a weight gradient of at
 * most a vector's filters whose kernel rows are KW taps at consecutive
 * offsets (a 3x3 kernel, stride and dilation 1: ResNet's 16-filter layers).
 * Rows r * KW ... r * KW + KW - 1 of the tile are run r, whose tap t reads
 * a[r * KW] + t; the image's value at position p + q of a run's start is tap
 * t's at position p + q - t, so over P consecutive positions one broadcast
 * serves up to KW multiply-adds: P + KW - 1 broadcasts for P * KW of them,
 * where the narrow kernel makes one for each. Each accumulator still takes
 * its positions in order (the value for tap t at position p + i is
 * broadcast at q = i + t, q increasing), so each element is the chain of
 * the other kernels. Positions not P consecutive ones (across an output
 * row's end) go one at a time. */
#define SKC_VECTOR_UKR_RUNS(NAME, TARGET, T, VEC, RUNS, KW, P, LOADU, STOREU, SET1, ZERO, FMA) \
    __attribute__((target(TARGET)))                                             \
    static void NAME(int k, const T *const *restrict a, const ptrdiff_t *restrict apos, \
                     const T *restrict b, ptrdiff_t ldb, T *restrict c, ptrdiff_t ldc,   \
                     int load_c)                                                \
    {                                                                           \
        VEC acc[RUNS][KW];                                                      \
        _Pragma("GCC unroll 8")                                                 \
        for (int r = 0; r < RUNS; r++)                                          \
            _Pragma("GCC unroll 8")                                             \
            for (int t = 0; t < KW; t++)                                        \
                acc[r][t] = load_c ? LOADU(c + (r * KW + t) * ldc) : ZERO();    \
        for (int p = 0; p < k;) {                                               \
            const ptrdiff_t at = apos[p];                                       \
            if (p + P <= k && apos[p + P - 1] - at == P - 1) {                  \
                VEC bv[P];                                                      \
                _Pragma("GCC unroll 8")                                         \
                for (int i = 0; i < P; i++)                                     \
                    bv[i] = LOADU(b + (ptrdiff_t)(p + i) * ldb);                \
                _Pragma("GCC unroll 8")                                         \
                for (int r = 0; r < RUNS; r++) {                                \
                    const T *x = a[r * KW] + at;                                \
                    _Pragma("GCC unroll 16")                                    \
                    for (int q = 0; q < P + KW - 1; q++) {                      \
                        VEC v = SET1(x[q]);                                     \
                        _Pragma("GCC unroll 8")                                 \
                        for (int t = 0; t < KW; t++)                            \
                            if (q - t >= 0 && q - t < P)                        \
                                acc[r][t] = FMA(v, bv[q - t], acc[r][t]);       \
                    }                                                           \
                }                                                               \
                p += P;                                                         \
            } else {                                                            \
                VEC bv = LOADU(b + (ptrdiff_t)p * ldb);                         \
                _Pragma("GCC unroll 8")                                         \
                for (int r = 0; r < RUNS; r++)                                  \
                    _Pragma("GCC unroll 8")                                     \
                    for (int t = 0; t < KW; t++)                                \
                        acc[r][t] = FMA(SET1(a[r * KW][at + t]), bv, acc[r][t]); \
                p++;                                                            \
            }                                                                   \
        }                                                                       \
        _Pragma("GCC unroll 8")                                                 \
        for (int r = 0; r < RUNS; r++)                                          \
            _Pragma("GCC unroll 8")                                             \
            for (int t = 0; t < KW; t++)                                        \
                STOREU(c + (r * KW + t) * ldc, acc[r][t]);                      \
    }
/* Six runs of three taps (18 accumulators) by four positions: as fast as
 * eight runs, 284 against the narrow kernel's 232 GFLOP/s on ResNet's 16 ->
 * 16 weight gradient, one sample in cache (a C harness, Zen 5, one core,
 * 2026-12-05), with fewer rows to pad where the taps are few (27 of a
 * 3-channel input's). */
#define SKC_RUN_TAPS 3
#define SKC_RUNS_PER_TILE 6
SKC_VECTOR_UKR_RUNS(skc_ukr_avx512_taps_runs_s, SKC_AVX512_TARGET, float, __m512,
                    SKC_RUNS_PER_TILE, SKC_RUN_TAPS, 4, _mm512_loadu_ps, _mm512_storeu_ps,
                    _mm512_set1_ps, _mm512_setzero_ps, _mm512_fmadd_ps)
SKC_VECTOR_UKR_RUNS(skc_ukr_avx512_taps_runs_d, SKC_AVX512_TARGET, double, __m512d,
                    SKC_RUNS_PER_TILE, SKC_RUN_TAPS, 4, _mm512_loadu_pd, _mm512_storeu_pd,
                    _mm512_set1_pd, _mm512_setzero_pd, _mm512_fmadd_pd)
/* The implicit product in tiles one vector wide, for feature maps whose rows
 * leave most of a second vector on the padding between them (8 x 8 outputs
 * in rows of 10 are 78 positions: three tiles of 32, five of 16). Eight
 * accumulators still hide the FMA latency; the rows are the full tile's
 * (AVX-512's MR), so that one packing of A serves both. */
SKC_AVX512_S(skc_ukr_avx512_offsets_narrow_s, 1, 8, SKC_PACKED_S, SKC_OFFSETS)
SKC_AVX512_D(skc_ukr_avx512_offsets_narrow_d, 1, 8, SKC_PACKED_D, SKC_OFFSETS)
/* One row by four vectors: for products of a row or two (a one-row
 * prediction's dense layers), where an MR-row tile would compute mostly
 * padding. Wider tiles would hide more FMA latency but pad the last, narrow
 * panel of B with more zeros, which costs more at these sizes. */
SKC_AVX2_S(skc_ukr_avx2_row_s, 4, 1, SKC_PACKED_S, SKC_STRIDED)
SKC_AVX2_D(skc_ukr_avx2_row_d, 4, 1, SKC_PACKED_D, SKC_STRIDED)
SKC_AVX512_S(skc_ukr_avx512_row_s, 4, 1, SKC_PACKED_S, SKC_STRIDED)
SKC_AVX512_D(skc_ukr_avx512_row_d, 4, 1, SKC_PACKED_D, SKC_STRIDED)
#endif

#if SKC_HAVE_X86_PATHS
/* Transposes for packing, data movement only (no bit changes); AVX2 runs on
 * every AVX-512 CPU too. Packing an operand element by element costs more
 * than the product it feeds when the operand must be transposed: B's columns
 * when they are contiguous (a convolution's weight gradient reads its input's
 * taps as columns), and A's rows always (the panels interleave MR rows).
 *
 * v[q] = (rows[0][q], ..., rows[7][q]) for a block of 8 x 8 floats. */
__attribute__((target("avx2")))
static inline void skc_transpose8_s(const float *const *rows, __m256 v[8])
{
    __m256 r[8], t[8], u[8];
    for (int i = 0; i < 8; i++)
        r[i] = _mm256_loadu_ps(rows[i]);
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
        u[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int i = 0; i < 4; i++) {
        v[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
        v[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
    }
}

/* v[q] = (rows[0][q], ..., rows[3][q]) for a block of 4 x 4 doubles. */
__attribute__((target("avx2")))
static inline void skc_transpose4_d(const double *const *rows, __m256d v[4])
{
    __m256d r[4], t[4];
    for (int i = 0; i < 4; i++)
        r[i] = _mm256_loadu_pd(rows[i]);
    for (int i = 0; i < 4; i += 2) {
        t[i] = _mm256_unpacklo_pd(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_pd(r[i], r[i + 1]);
    }
    v[0] = _mm256_permute2f128_pd(t[0], t[2], 0x20);
    v[1] = _mm256_permute2f128_pd(t[1], t[3], 0x20);
    v[2] = _mm256_permute2f128_pd(t[0], t[2], 0x31);
    v[3] = _mm256_permute2f128_pd(t[1], t[3], 0x31);
}

/* out[q * ldo + r] = rows[r][q] for a square block (B's panels). */
__attribute__((target("avx2")))
static void skc_transpose_block_s(const float *const *rows, float *out, ptrdiff_t ldo)
{
    __m256 v[8];
    skc_transpose8_s(rows, v);
    for (int q = 0; q < 8; q++)
        _mm256_storeu_ps(out + q * ldo, v[q]);
}

__attribute__((target("avx2")))
static void skc_transpose_block_d(const double *const *rows, double *out, ptrdiff_t ldo)
{
    __m256d v[4];
    skc_transpose4_d(rows, v);
    for (int q = 0; q < 4; q++)
        _mm256_storeu_pd(out + q * ldo, v[q]);
}

/* out[q * mr + r] = rows[r][q] for r < mr, q < 8 (A's panels of mr = 6 or 8 rows);
 * rows[mr:8] are read and dropped, so they must be readable. */
__attribute__((target("avx2")))
static void skc_transpose_panel_s(const float *const *rows, float *out, int mr)
{
    __m256 v[8];
    skc_transpose8_s(rows, v);
    for (int q = 0; q < 8; q++) {
        if (mr == 8) {
            _mm256_storeu_ps(out + q * 8, v[q]);
        } else {
            _mm_storeu_ps(out + q * 6, _mm256_castps256_ps128(v[q]));
            _mm_storel_pi((__m64 *)(out + q * 6 + 4), _mm256_extractf128_ps(v[q], 1));
        }
    }
}

/* The same for q < 4: two 4 x 4 blocks, rows 0-3 and rows 4-7. */
__attribute__((target("avx2")))
static void skc_transpose_panel_d(const double *const *rows, double *out, int mr)
{
    __m256d v[4], w[4];
    skc_transpose4_d(rows, v);
    skc_transpose4_d(rows + 4, w);
    for (int q = 0; q < 4; q++) {
        _mm256_storeu_pd(out + q * mr, v[q]);
        if (mr == 8)
            _mm256_storeu_pd(out + q * 8 + 4, w[q]);
        else
            _mm_storeu_pd(out + q * 6 + 4, _mm256_castpd256_pd128(w[q]));
    }
}
#define SKC_TRANSPOSES(path) ((path) >= SKC_AVX2)
#else
#define skc_transpose_block_s(rows, out, ldo) ((void)0)
#define skc_transpose_block_d(rows, out, ldo) ((void)0)
#define skc_transpose_panel_s(rows, out, mr) ((void)0)
#define skc_transpose_panel_d(rows, out, mr) ((void)0)
#define SKC_TRANSPOSES(path) 0
#endif

/* ---- dispatch: chosen once (at import, by skconv), read by every call ---- */

/* ukr_pair: the implicit product's last panel of at most mr / 2 rows, two tiles at
 * a time (NULL: the full kernel computes it, rows of zeros included) */
typedef struct {
    int mr, nr; skc_ukr_s ukr; skc_ukr_offsets_s ukr_offsets; skc_ukr_taps_s ukr_taps;
    skc_ukr_pair_s ukr_pair;
} skc_kernel_s;
typedef struct {
    int mr, nr; skc_ukr_d ukr; skc_ukr_offsets_d ukr_offsets; skc_ukr_taps_d ukr_taps;
    skc_ukr_pair_d ukr_pair;
} skc_kernel_d;

static const skc_kernel_s skc_kernels_s[SKC_N_PATHS] = {
    {4, 8, skc_ukr_portable_s, skc_ukr_portable_offsets_s, skc_ukr_portable_taps_s, NULL},
#if SKC_HAVE_X86_PATHS
    {6, 16, skc_ukr_avx2_s, skc_ukr_avx2_offsets_s, skc_ukr_avx2_taps_s, skc_ukr_avx2_pair_s},
    {8, 32, skc_ukr_avx512_s, skc_ukr_avx512_offsets_s, skc_ukr_avx512_taps_s,
     skc_ukr_avx512_pair_s},
#endif
};
static const skc_kernel_d skc_kernels_d[SKC_N_PATHS] = {
    {4, 4, skc_ukr_portable_d, skc_ukr_portable_offsets_d, skc_ukr_portable_taps_d, NULL},
#if SKC_HAVE_X86_PATHS
    {6, 8, skc_ukr_avx2_d, skc_ukr_avx2_offsets_d, skc_ukr_avx2_taps_d, skc_ukr_avx2_pair_d},
    {8, 16, skc_ukr_avx512_d, skc_ukr_avx512_offsets_d, skc_ukr_avx512_taps_d,
     skc_ukr_avx512_pair_d},
#endif
};
/* For products with fewer than MR / 2 rows. Any tile shape computes each
 * element by the same chain, so the choice changes speed only. */
static const skc_kernel_s skc_row_kernels_s[SKC_N_PATHS] = {
    {4, 8, skc_ukr_portable_s, NULL, NULL, NULL},
#if SKC_HAVE_X86_PATHS
    {1, 32, skc_ukr_avx2_row_s, NULL, NULL, NULL},
    {1, 64, skc_ukr_avx512_row_s, NULL, NULL, NULL},
#endif
};
static const skc_kernel_d skc_row_kernels_d[SKC_N_PATHS] = {
    {4, 4, skc_ukr_portable_d, NULL, NULL, NULL},
#if SKC_HAVE_X86_PATHS
    {1, 16, skc_ukr_avx2_row_d, NULL, NULL, NULL},
    {1, 32, skc_ukr_avx512_row_d, NULL, NULL, NULL},
#endif
};

/* Tiles one vector wide (none on the portable path): ukr_taps for
 * skc_gemm_tap_rows with at most nr columns; ukr_offsets and ukr_pair (two
 * tiles at once, all mr rows) for skc_implicit_gemm where the layout asks for
 * them, only where mr is the full kernel's, whose panels they read. */
static const skc_kernel_s skc_narrow_kernels_s[SKC_N_PATHS] = {
    {0, 0, NULL, NULL, NULL, NULL},
#if SKC_HAVE_X86_PATHS
    {8, 8, NULL, NULL, skc_ukr_avx2_taps_narrow_s, NULL},
    {8, 16, NULL, skc_ukr_avx512_offsets_narrow_s, skc_ukr_avx512_taps_narrow_s,
     skc_ukr_avx512_pair_narrow_s},
#endif
};
static const skc_kernel_d skc_narrow_kernels_d[SKC_N_PATHS] = {
    {0, 0, NULL, NULL, NULL, NULL},
#if SKC_HAVE_X86_PATHS
    {8, 4, NULL, NULL, skc_ukr_avx2_taps_narrow_d, NULL},
    {8, 8, NULL, skc_ukr_avx512_offsets_narrow_d, skc_ukr_avx512_taps_narrow_d,
     skc_ukr_avx512_pair_narrow_d},
#endif
};

/* skc_gemm_tap_rows' kernels for taps in runs of SKC_RUN_TAPS, at most nr
 * columns (mr 0: the path has none). */
static const skc_kernel_s skc_run_kernels_s[SKC_N_PATHS] = {
    {0, 0, NULL, NULL, NULL, NULL},
#if SKC_HAVE_X86_PATHS
    {0, 0, NULL, NULL, NULL, NULL},
    {SKC_RUNS_PER_TILE * SKC_RUN_TAPS, 16, NULL, NULL, skc_ukr_avx512_taps_runs_s, NULL},
#endif
};
static const skc_kernel_d skc_run_kernels_d[SKC_N_PATHS] = {
    {0, 0, NULL, NULL, NULL, NULL},
#if SKC_HAVE_X86_PATHS
    {0, 0, NULL, NULL, NULL, NULL},
    {SKC_RUNS_PER_TILE * SKC_RUN_TAPS, 8, NULL, NULL, skc_ukr_avx512_taps_runs_d, NULL},
#endif
};

/* The implicit product's kernels for a last panel of that many rows (NULL:
 * the full kernel, or the pair kernel, computes it). */
static const skc_ukr_offsets_s skc_part_kernels_s[SKC_N_PATHS][SKC_MR_MAX] = {
    {NULL},
#if SKC_HAVE_X86_PATHS
    {NULL, NULL, NULL, NULL, skc_ukr_avx2_part4_s, skc_ukr_avx2_part5_s},
    {NULL, NULL, NULL, NULL, NULL, skc_ukr_avx512_part5_s, skc_ukr_avx512_part6_s,
     skc_ukr_avx512_part7_s},
#endif
};
static const skc_ukr_offsets_d skc_part_kernels_d[SKC_N_PATHS][SKC_MR_MAX] = {
    {NULL},
#if SKC_HAVE_X86_PATHS
    {NULL, NULL, NULL, NULL, skc_ukr_avx2_part4_d, skc_ukr_avx2_part5_d},
    {NULL, NULL, NULL, NULL, NULL, skc_ukr_avx512_part5_d, skc_ukr_avx512_part6_d,
     skc_ukr_avx512_part7_d},
#endif
};

/* Split tiles' pair kernels (NULL: the path has none), where the narrow tile
 * is as wide as two rows of the map: see skc_implicit_gemm. */
static const skc_ukr_pair_s skc_split_kernels_s[SKC_N_PATHS] = {
    NULL,
#if SKC_HAVE_X86_PATHS
    NULL, skc_ukr_avx512_pair_split_s,
#endif
};
static const skc_ukr_pair_d skc_split_kernels_d[SKC_N_PATHS] = {
    NULL,
#if SKC_HAVE_X86_PATHS
    NULL, skc_ukr_avx512_pair_split_d,
#endif
};

static int skc_path = SKC_PORTABLE;

/* Whether this CPU (and OS) can run a path; the portable path runs anywhere. */
static int skc_cpu_supports(int path)
{
    if (path == SKC_PORTABLE)
        return 1;
#if SKC_HAVE_X86_PATHS
    __builtin_cpu_init();
    if (path == SKC_AVX2)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (path == SKC_AVX512)
        return SKC_CPU_HAS_AVX512() != 0;
#endif
    return 0;
}

static int skc_set_path(int path)
{
    if (path < 0 || path >= SKC_N_PATHS || !skc_cpu_supports(path))
        return -1;
    skc_path = path;
    return 0;
}

static int skc_get_path(void) { return skc_path; }

/* Elements of workspace one gemm call of this size needs (any path). */
static ptrdiff_t skc_gemm_work_size(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k)
{
    ptrdiff_t kc = k < SKC_KC ? k : SKC_KC;
    ptrdiff_t mc = m < SKC_MC ? m : SKC_MC;
    ptrdiff_t nc = n < SKC_NC ? n : SKC_NC;
    if (kc < 1)
        kc = 1;
    /* rows (columns) rounded up to any path's MR (NR), and room to align both
     * packed blocks to a cache line */
    return (mc + SKC_MR_MAX + nc + SKC_NR_MAX) * kc + 2 * SKC_ALIGN;
}

/* ---- packing and the loops around the micro-kernel: one template, two types */

#define SKC_GEMM_DRIVER(S, T, KERNELS, ROW_KERNELS, NARROW_KERNELS, SPLIT_KERNELS,        \
                        RUN_KERNELS, PART_KERNELS, TB)                                     \
    /* a[mc, kc] (strides rsa, csa) -> panels of MR rows: out[panel][p][r], zero-padded. \
     * Rows contiguous along k (csa == 1): TB columns at a time, transposed (the rows   \
     * past the last panel's are any readable ones, then zeroed) */                      \
    static void skc_pack_a_##S(int mc, int kc, const T *a, ptrdiff_t rsa, ptrdiff_t csa,  \
                               int mr, T *restrict out)                                    \
    {                                                                                      \
        const int blocks = csa == 1 && (mr == 6 || mr == 8) && SKC_TRANSPOSES(skc_path);  \
        const T *rows[8];                                                                  \
        for (int i0 = 0; i0 < mc; i0 += mr, out += (ptrdiff_t)mr * kc) {                   \
            int rows_here = mc - i0 < mr ? mc - i0 : mr, p = 0;                            \
            if (blocks) {                                                                  \
                for (int r = 0; r < 8; r++)                                                \
                    rows[r] = a + (i0 + (r < rows_here ? r : 0)) * rsa;                    \
                for (; p + TB <= kc; p += TB) {                                            \
                    skc_transpose_panel_##S(rows, out + (ptrdiff_t)p * mr, mr);            \
                    for (int q = p; q < p + TB; q++)                                       \
                        for (int r = rows_here; r < mr; r++)                               \
                            out[(ptrdiff_t)q * mr + r] = 0;                                \
                    for (int r = 0; r < 8; r++)                                            \
                        rows[r] += TB;                                                     \
                }                                                                          \
            }                                                                              \
            for (; p < kc; p++) {                                                          \
                const T *src = a + i0 * rsa + p * csa;                                     \
                T *dst = out + (ptrdiff_t)p * mr;                                          \
                int r = 0;                                                                 \
                for (; r < rows_here; r++)                                                 \
                    dst[r] = src[r * rsa];                                                 \
                for (; r < mr; r++)                                                        \
                    dst[r] = 0;                                                            \
            }                                                                              \
        }                                                                                  \
    }                                                                                      \
    static const T skc_zero_block_##S[TB] = {0};                                         \
    /* b[kc, nc] -> panels of NR columns: out[panel][p][j] = b[p * rsb + j * csb] */    \
    static void skc_pack_b_##S(int kc, int nc, const T *b, ptrdiff_t rsb, ptrdiff_t csb,  \
                               int nr, T *restrict out)                                    \
    {                                                                                      \
        /* columns contiguous (a transposed B): square blocks at once */                   \
        const int blocks = rsb == 1 && csb != 1 && SKC_TRANSPOSES(skc_path);               \
        const T *rows[TB];                                                                 \
        for (int j0 = 0; j0 < nc; j0 += nr, out += (ptrdiff_t)kc * nr) {                   \
            int cols = nc - j0 < nr ? nc - j0 : nr;                                        \
            /* a last block of fewer than TB columns reads zeros for the others (a panel's \
             * width is a multiple of TB): a few filters' weight gradient (LeNet-5's 6)   \
             * is one such block a row */                                                  \
            int block_end = blocks ? (cols + TB - 1) / TB * TB : 0, blocked_rows = 0;      \
            /* TB columns of b (rows of its transpose) at a time, down all the rows:   \
             * TB streams through memory rather than the panel's nr, whose rows a      \
             * power of two apart (a feature map's) would share L1's sets */           \
            if (block_end > 0) {                                                           \
                blocked_rows = kc / TB * TB;                                               \
                for (int jb = 0; jb < block_end; jb += TB) {                               \
                    for (int r = 0; r < TB; r++)                                           \
                        rows[r] = jb + r < cols ? b + (j0 + jb + r) * csb : skc_zero_block_##S; \
                    for (int p0 = 0; p0 < blocked_rows; p0 += TB) {                        \
                        skc_transpose_block_##S(rows, out + (ptrdiff_t)p0 * nr + jb, nr);  \
                        for (int r = 0; r < TB; r++)                                       \
                            if (rows[r] != skc_zero_block_##S)                             \
                                rows[r] += TB;                                             \
                    }                                                                      \
                }                                                                          \
            }                                                                              \
            /* the rest: rows the blocks did not fill, or all of a full panel's past them */ \
            for (int p = block_end == nr ? blocked_rows : 0; p < kc; p++) {                \
                T *dst = out + (ptrdiff_t)p * nr;                                          \
                int j = p < blocked_rows ? block_end : 0;                                  \
                const T *src = b + p * rsb + j0 * csb;                                     \
                if (csb == 1)                                                              \
                    for (; j < cols; j++)                                                  \
                        dst[j] = src[j];                                                   \
                else                                                                       \
                    for (; j < cols; j++)                                                  \
                        dst[j] = src[j * csb];                                             \
                for (; j < nr; j++)                                                        \
                    dst[j] = 0;                                                            \
            }                                                                              \
        }                                                                                  \
    }                                                                                      \
                                                                                           \
    /* An implicit B, B[p, j] = x[poff[p] + coff[j]] (a convolution's taps, each a        \
     * window of one padded image, at the positions poff), -> panels of NR columns.        \
     * TB positions in a row of the image are TB consecutive elements of every tap:        \
     * those blocks go by transposes, the rest (a block across two rows) one by one. */    \
    static void skc_pack_b_taps_##S(int kc, int nc, const T *x, const ptrdiff_t *coff,     \
                                    const ptrdiff_t *poff, int nr, T *restrict out)        \
    {                                                                                      \
        const int blocks = SKC_TRANSPOSES(skc_path);                                       \
        const T *rows[TB];                                                                 \
        for (int j0 = 0; j0 < nc; j0 += nr, out += (ptrdiff_t)kc * nr) {                   \
            int cols = nc - j0 < nr ? nc - j0 : nr;                                        \
            for (int p0 = 0; p0 < kc; p0 += TB) {                                          \
                int p_stop = kc - p0 < TB ? kc : p0 + TB, jb = 0;                          \
                if (blocks && p_stop - p0 == TB && poff[p0 + TB - 1] - poff[p0] == TB - 1) \
                    for (; jb + TB <= cols; jb += TB) {                                    \
                        for (int r = 0; r < TB; r++)                                       \
                            rows[r] = x + poff[p0] + coff[j0 + jb + r];                    \
                        skc_transpose_block_##S(rows, out + (ptrdiff_t)p0 * nr + jb, nr);  \
                    }                                                                      \
                for (int p = p0; p < p_stop; p++) {                                        \
                    T *dst = out + (ptrdiff_t)p * nr;                                      \
                    const T *src = x + poff[p];                                            \
                    int j = jb;                                                            \
                    for (; j < cols; j++)                                                  \
                        dst[j] = src[coff[j0 + j]];                                        \
                    for (; j < nr; j++)                                                    \
                        dst[j] = 0;                                                        \
                }                                                                          \
            }                                                                              \
        }                                                                                  \
    }                                                                                      \
                                                                                           \
    /* An edge tile (rows x cols of c) goes through a full mr x nr tile on the stack,     \
     * whose other elements are computed and dropped. */                                  \
    static void skc_tile_in_##S(T *tile, const T *c, ptrdiff_t ldc, int rows, int cols,   \
                                int mr, int nr, int load_c)                                \
    {                                                                                      \
        memset(tile, 0, (size_t)mr * nr * sizeof(T));                                      \
        if (load_c)                                                                        \
            for (int r = 0; r < rows; r++)                                                 \
                memcpy(tile + r * nr, c + r * ldc, cols * sizeof(T));                      \
    }                                                                                      \
    /* c[m, n] = 0: a product over k = 0 */                                               \
    static void skc_clear_##S(int m, int n, T *c, ptrdiff_t ldc)                           \
    {                                                                                      \
        for (int i = 0; i < m; i++)                                                        \
            memset(c + i * ldc, 0, n * sizeof(T));                                         \
    }                                                                                      \
    static void skc_tile_out_##S(const T *tile, T *c, ptrdiff_t ldc, int rows, int cols,  \
                                 int nr)                                                   \
    {                                                                                      \
        for (int r = 0; r < rows; r++)                                                     \
            memcpy(c + r * ldc, tile + r * nr, cols * sizeof(T));                          \
    }                                                                                      \
                                                                                           \
    /* c[m, n] (row stride ldc) = (accumulate ? c : 0) + a @ b, then + bias: bias[i]      \
     * per row (bias_mode 1) or bias[j] per column (2). B[p, j] is b[p * rsb + j * csb],   \
     * or b[poff[p] + coff[j]] when coff is not NULL (see skc_pack_b_taps). Serial:        \
     * callers thread over independent blocks. work holds skc_gemm_work_size(m, n, k). */  \
    static void skc_gemm_##S(int m, int n, int k,                                          \
                             const T *a, ptrdiff_t rsa, ptrdiff_t csa,                     \
                             const T *b, ptrdiff_t rsb, ptrdiff_t csb, const ptrdiff_t *coff,\
                             const ptrdiff_t *poff, T *c, ptrdiff_t ldc, int accumulate,   \
                             const T *bias, int bias_mode, T *work)                        \
    {                                                                                      \
        const skc_kernel_##S *kern = 2 * m < KERNELS[skc_path].mr ? &ROW_KERNELS[skc_path]    \
                                                                  : &KERNELS[skc_path];    \
        const int mr = kern->mr, nr = kern->nr;                                            \
        const int kc_max = k < SKC_KC ? (k < 1 ? 1 : k) : SKC_KC;                          \
        const int mc_max = (m < SKC_MC ? m : SKC_MC) + SKC_MR_MAX;                         \
        T *apack = (T *)(((uintptr_t)work + SKC_ALIGN - 1) & ~(uintptr_t)(SKC_ALIGN - 1)); \
        T *bpack = (T *)(((uintptr_t)(apack + (ptrdiff_t)mc_max * kc_max) + SKC_ALIGN - 1) \
                         & ~(uintptr_t)(SKC_ALIGN - 1));                                   \
        T tile[SKC_TILE_MAX];                                                              \
        if (k == 0 && !accumulate)                                                         \
            skc_clear_##S(m, n, c, ldc);                                                   \
        for (int jc = 0; jc < n; jc += SKC_NC) {                                           \
            int nc = n - jc < SKC_NC ? n - jc : SKC_NC;                                    \
            for (int pc = 0; pc < k; pc += SKC_KC) {                                       \
                int kc = k - pc < SKC_KC ? k - pc : SKC_KC;                                \
                int load_c = pc > 0 || accumulate;                                         \
                /* B is read in place when one row panel uses each of its panels    \
                 * once and its rows are contiguous; otherwise packed, since rows a     \
                 * power of two apart share L1 sets and evict each other. The last,     \
                 * narrow panel is always packed (zero-padded). */                      \
                int direct_b = !coff && csb == 1 && m <= mr;                               \
                const T *bblock = coff ? b : b + pc * rsb + jc * csb;                      \
                if (coff) {                                                                \
                    skc_pack_b_taps_##S(kc, nc, b, coff + jc, poff + pc, nr, bpack);       \
                } else if (direct_b) {                                                     \
                    int full = nc / nr * nr;                                               \
                    if (full < nc)                                                         \
                        skc_pack_b_##S(kc, nc - full, bblock + full, rsb, 1, nr,           \
                                       bpack + (ptrdiff_t)full * kc);                      \
                } else {                                                                   \
                    skc_pack_b_##S(kc, nc, bblock, rsb, csb, nr, bpack);                   \
                }                                                                          \
                for (int ic = 0; ic < m; ic += SKC_MC) {                                   \
                    int mc = m - ic < SKC_MC ? m - ic : SKC_MC;                            \
                    skc_pack_a_##S(mc, kc, a + ic * rsa + pc * csa, rsa, csa, mr, apack);  \
                    for (int jr = 0; jr < nc; jr += nr) {                                  \
                        int cols = nc - jr < nr ? nc - jr : nr;                            \
                        int in_place = direct_b && cols == nr;                             \
                        const T *bp = in_place ? bblock + jr : bpack + (ptrdiff_t)jr * kc; \
                        ptrdiff_t ldb = in_place ? rsb : nr;                               \
                        for (int ir = 0; ir < mc; ir += mr) {                              \
                            int rows = mc - ir < mr ? mc - ir : mr;                        \
                            const T *ap = apack + (ptrdiff_t)ir * kc;                      \
                            T *ct = c + (ptrdiff_t)(ic + ir) * ldc + jc + jr;              \
                            if (rows == mr && cols == nr) {                                \
                                kern->ukr(kc, ap, bp, ldb, ct, ldc, load_c);               \
                                continue;                                                  \
                            }                                                              \
                            skc_tile_in_##S(tile, ct, ldc, rows, cols, mr, nr, load_c);    \
                            kern->ukr(kc, ap, bp, ldb, tile, nr, load_c);                  \
                            skc_tile_out_##S(tile, ct, ldc, rows, cols, nr);               \
                        }                                                                  \
                    }                                                                      \
                }                                                                          \
            }                                                                              \
        }                                                                                  \
        if (bias_mode == 1)                                                                \
            for (int i = 0; i < m; i++)                                                    \
                for (int j = 0; j < n; j++)                                                \
                    c[i * ldc + j] += bias[i];                                             \
        else if (bias_mode == 2)                                                           \
            for (int i = 0; i < m; i++)                                                    \
                for (int j = 0; j < n; j++)                                                \
                    c[i * ldc + j] += bias[j];                                             \
    }                                                                                      \
                                                                                           \
    /* The kernels skc_gemm_tap_rows takes for n columns: one vector wide if that holds  \
     * them (the tile's second vector would multiply zeros), by runs of taps where the    \
     * taps come in runs of SKC_RUN_TAPS (run: how many consecutive offsets each row of   \
     * the kernel is, 1 if none) and the path has such a kernel, else the full tile. */   \
    static const skc_kernel_##S *skc_tap_rows_kernel_##S(int n, int run)                  \
    {                                                                                      \
        const skc_kernel_##S *narrow = &NARROW_KERNELS[skc_path];                          \
        const skc_kernel_##S *runs = &RUN_KERNELS[skc_path];                               \
        if (run == SKC_RUN_TAPS && runs->ukr_taps && n <= runs->nr)                        \
            return runs;                                                                   \
        return narrow->ukr_taps && n <= narrow->nr ? narrow : &KERNELS[skc_path];          \
    }                                                                                      \
                                                                                           \
    /* b[k, n] (strides rsb, csb) packed once for any number of skc_gemm_tap_rows_packed   \
     * calls (a convolution's weights, for each sample's product), n <= SKC_NC: out holds  \
     * skc_tap_rows_packed_size(n, k) elements, the blocks of SKC_KC taps one after the    \
     * other, each as skc_gemm_tap_rows packs it. */                                       \
    static void skc_pack_tap_rows_b_##S(int n, int k, const T *b, ptrdiff_t rsb,            \
                                        ptrdiff_t csb, T *out)                             \
    {                                                                                      \
        const int nr = skc_tap_rows_kernel_##S(n, 1)->nr;                                  \
        const ptrdiff_t ncr = (ptrdiff_t)(n + nr - 1) / nr * nr;                           \
        for (int pc = 0; pc < k; pc += SKC_KC)                                             \
            skc_pack_b_##S(k - pc < SKC_KC ? k - pc : SKC_KC, n, b + pc * rsb, rsb, csb, nr, \
                           out + pc * ncr);                                                \
    }                                                                                      \
                                                                                           \
    /* skc_gemm_tap_rows, with B packed already (bpacked, from skc_pack_tap_rows_b; n <= \
     * SKC_NC) or, if bpacked is NULL, packed here from b. */                              \
    static void skc_gemm_tap_rows_packed_##S(int m, int n, int k, const T *x,              \
                                             const ptrdiff_t *roff, const ptrdiff_t *pos,  \
                                             const T *b, ptrdiff_t rsb, ptrdiff_t csb,     \
                                             const T *bpacked, T *c, ptrdiff_t ldc,        \
                                             int accumulate, int whole_tiles, int run,     \
                                             T *work)                                      \
    {                                                                                      \
        const skc_kernel_##S *kern = skc_tap_rows_kernel_##S(n, run);                      \
        const int mr = kern->mr, nr = kern->nr;                                            \
        const ptrdiff_t ncr = (ptrdiff_t)(n + nr - 1) / nr * nr;                           \
        T *bpack = (T *)(((uintptr_t)work + SKC_ALIGN - 1) & ~(uintptr_t)(SKC_ALIGN - 1)); \
        T tile[SKC_TILE_MAX];                                                              \
        const T *rows[SKC_TAP_ROWS_MAX];                                                   \
        if (k == 0 && !accumulate)                                                         \
            skc_clear_##S(m, n, c, ldc);                                                   \
        for (int jc = 0; jc < n; jc += SKC_NC) {                                           \
            int nc = n - jc < SKC_NC ? n - jc : SKC_NC;                                    \
            for (int pc = 0; pc < k; pc += SKC_KC) {                                       \
                int kc = k - pc < SKC_KC ? k - pc : SKC_KC;                                \
                int load_c = pc > 0 || accumulate;                                         \
                const T *block = bpacked ? bpacked + pc * ncr : bpack;                     \
                if (!bpacked)                                                              \
                    skc_pack_b_##S(kc, nc, b + pc * rsb + jc * csb, rsb, csb, nr, bpack);  \
                for (int jr = 0; jr < nc; jr += nr) {                                      \
                    int cols = nc - jr < nr ? nc - jr : nr;                                \
                    const T *bp = block + (ptrdiff_t)jr * kc;                              \
                    for (int ir = 0; ir < m; ir += mr) {                                   \
                        int rows_here = m - ir < mr ? m - ir : mr;                         \
                        T *ct = c + (ptrdiff_t)ir * ldc + jc + jr;                         \
                        /* a last panel's missing rows read row ir's taps, then dropped */ \
                        for (int r = 0; r < mr; r++)                                       \
                            rows[r] = x + roff[ir + (r < rows_here ? r : 0)];              \
                        if (whole_tiles || (rows_here == mr && cols == nr)) {              \
                            kern->ukr_taps(kc, (const T *const *)rows, pos + pc, bp, nr, ct, \
                                           ldc, load_c);                                   \
                            continue;                                                      \
                        }                                                                  \
                        skc_tile_in_##S(tile, ct, ldc, rows_here, cols, mr, nr, load_c);   \
                        kern->ukr_taps(kc, (const T *const *)rows, pos + pc, bp, nr, tile, nr,\
                                       load_c);                                            \
                        skc_tile_out_##S(tile, ct, ldc, rows_here, cols, nr);              \
                    }                                                                      \
                }                                                                          \
            }                                                                              \
        }                                                                                  \
    }                                                                                      \
                                                                                           \
    /* c[m, n] (row stride ldc) = (accumulate ? c : 0) + A @ b for an implicit A,         \
     * A[i, p] = x[roff[i] + pos[p]]: a convolution's taps as rows, which the micro-kernel \
     * reads in the padded image, never packed; B[p, j] = b[p * rsb + j * csb], packed.   \
     * The transpose of skc_gemm's product over an implicit B (coff, poff), with the same \
     * chains: for a weight gradient whose filters fill a tile's columns, it packs the     \
     * output gradient only, not the taps. work holds skc_gemm_work_size(m, n, k).        \
     * whole_tiles: c has room for whole tiles (skc_tap_rows_tile: m and n rounded up to    \
     * mr and nr), so that edge tiles are stored whole, their extra rows and columns        \
     * computed and left for the caller to drop, instead of going through a copy.          \
     * run: SKC_RUN_TAPS if the taps come in runs of that many consecutive offsets (roff    \
     * [i + 1] = roff[i] + 1 but at every run's end: a 3x3 kernel's rows at a stride and a   \
     * dilation of 1), else 1 (see skc_tap_rows_kernel). */                              \
    static void skc_gemm_tap_rows_##S(int m, int n, int k, const T *x, const ptrdiff_t *roff,\
                                      const ptrdiff_t *pos, const T *b, ptrdiff_t rsb,     \
                                      ptrdiff_t csb, T *c, ptrdiff_t ldc, int accumulate,  \
                                      int whole_tiles, int run, T *work)                   \
    {                                                                                      \
        skc_gemm_tap_rows_packed_##S(m, n, k, x, roff, pos, b, rsb, csb, NULL, c, ldc,      \
                                     accumulate, whole_tiles, run, work);                  \
    }                                                                                      \
                                                                                           \
    /* a[m, k] (strides rsa, csa) -> skc_implicit_gemm's operand: one panel of MR rows    \
     * by all of k per MR rows, zero-padded; out holds skc_panel_rows(m) * k elements. */  \
    static void skc_pack_panels_##S(int m, int k, const T *a, ptrdiff_t rsa, ptrdiff_t csa,\
                                    T *out)                                                \
    {                                                                                      \
        skc_pack_a_##S(m, k, a, rsa, csa, KERNELS[skc_path].mr, out);                       \
    }                                                                                      \
                                                                                           \
    /* c = a @ B with B[p, q] = x[boff[p] + q], an operand never formed: the implicit    \
     * GEMM of a stride-1 convolution, whose taps are shifted windows of one padded        \
     * image. Only NR-wide tiles of q are computed: tile t, the columns q = starts[t] ...   \
     * starts[t] + NR - 1, goes to c's columns t * NR ... (t + 1) * NR - 1. Every element   \
     * is the same FMA chain over p as skc_gemm's, so the bits equal those of the im2col   \
     * product. apack comes from skc_pack_panels; c has skc_panel_rows(m) rows of stride   \
     * ldc >= n_tiles * NR, and x is readable up to max(boff) + max(starts) + NR: the rows \
     * past m are padding the caller drops, as are the columns of a tile that it does not  \
     * need.                                                                              \
     * The taps go in blocks of at most SKC_KC, each over every tile: a tile's rows of B   \
     * (every tap's window, for all the panels of A in turn) then stay in L1, where all    \
     * of them at once would not (256 channels of 3 taps fill a 48 KiB L1). A block goes  \
     * on from the partial sums the one before stored in c, exact values of T: the same   \
     * chain, split as skc_gemm splits it. A pair kernel's tail panel takes all the taps   \
     * at once (it does not load c), so with one there is one block. With narrow, the      \
     * tiles are skc_narrow_tile_width's wide; with a gap too, split tiles: the columns    \
     * of tile t are q = starts[t] ... starts[t] + NR / 2 - 1, then the NR / 2 from        \
     * starts[t] + gap on (two rows of an output map NR / 2 wide, gap apart in the image). \
     * A split tile's path has skc_split_kernels. */                                   \
    static void skc_implicit_gemm_##S(int m, int n_tiles, const ptrdiff_t *starts, int k,   \
                                      const T *apack, const T *x, const ptrdiff_t *boff,   \
                                      T *c, ptrdiff_t ldc, int narrow, ptrdiff_t gap)      \
    {                                                                                      \
        const skc_kernel_##S *kern = narrow ? &NARROW_KERNELS[skc_path] : &KERNELS[skc_path];\
        const int mr = kern->mr, nr = kern->nr;                                            \
        if (narrow) {                                                                      \
            /* two tiles at a time, all the taps at once: the maps are small, their       \
             * image stays in L1 */                                                        \
            const skc_ukr_pair_##S pair = gap ? SPLIT_KERNELS[skc_path] : kern->ukr_pair;  \
            T spare[2 * SKC_TILE_MAX];                                                     \
            for (int t = 0; t < n_tiles; t += 2)                                           \
                for (int ir = 0; ir < m; ir += mr) {                                       \
                    const T *ap = apack + (ptrdiff_t)ir * k;                               \
                    T *ct = c + (ptrdiff_t)ir * ldc + (ptrdiff_t)t * nr;                   \
                    if (t + 1 < n_tiles)                                                   \
                        pair(k, ap, x + starts[t], x + starts[t + 1], boff, ct, ct + nr,   \
                             ldc, gap);                                                    \
                    else if (!gap)                                                         \
                        kern->ukr_offsets(k, ap, x + starts[t], boff, ct, ldc, 0);         \
                    else { /* a last split tile: computed twice, into spare */             \
                        pair(k, ap, x + starts[t], x + starts[t], boff, spare,             \
                             spare + SKC_TILE_MAX, nr, gap);                               \
                        for (int r = 0; r < mr; r++)                                       \
                            memcpy(ct + (ptrdiff_t)r * ldc, spare + r * nr, nr * sizeof(T)); \
                    }                                                                      \
                }                                                                          \
            return;                                                                        \
        }                                                                                  \
        /* the last panel's rows if a pair kernel takes them, else 0 */                    \
        const int tail = kern->ukr_pair && m % mr && m % mr <= mr / 2 ? m % mr : 0;        \
        const int full = m - tail;                                                         \
        /* a last panel of more rows goes through a kernel of its rows where the path     \
         * has one (the full kernel otherwise): it starts at row last */                   \
        const skc_ukr_offsets_##S part = tail || m % mr == 0 ? NULL                        \
                                                             : PART_KERNELS[skc_path][m % mr]; \
        const int last = part ? m - m % mr : full;                                         \
        /* blocks of about equal size: no short last block */                              \
        const int n_blocks = tail ? 1 : (k + SKC_KC - 1) / SKC_KC;                         \
        const int kb = n_blocks > 1 ? (k + n_blocks - 1) / n_blocks : k;                   \
        for (int pc = 0; pc < k; pc += kb) {                                               \
            int kc = k - pc < kb ? k - pc : kb;                                            \
            for (int t = 0; t < n_tiles; t++)                                              \
                for (int ir = 0; ir < full; ir += mr)                                      \
                    (ir == last ? part : kern->ukr_offsets)(                               \
                        kc, apack + (ptrdiff_t)ir * k + (ptrdiff_t)pc * mr, x + starts[t], \
                        boff + pc, c + (ptrdiff_t)ir * ldc + (ptrdiff_t)t * nr, ldc, pc > 0); \
        }                                                                                  \
        if (!tail)                                                                         \
            return;                                                                        \
        for (int t = 0; t < n_tiles; t++) {                                                \
            T *ct = c + (ptrdiff_t)full * ldc + (ptrdiff_t)t * nr;                         \
            if (t % 2 == 0 && t + 1 < n_tiles)                                             \
                kern->ukr_pair(k, apack + (ptrdiff_t)full * k, x + starts[t],              \
                               x + starts[t + 1], boff, ct, ct + nr, ldc, 0);              \
            else if (t % 2 == 0) /* a last tile of its own */                              \
                kern->ukr_offsets(k, apack + (ptrdiff_t)full * k, x + starts[t], boff, ct, \
                                  ldc, 0);                                                 \
        }                                                                                  \
    }

SKC_GEMM_DRIVER(s, float, skc_kernels_s, skc_row_kernels_s, skc_narrow_kernels_s,
                skc_split_kernels_s, skc_run_kernels_s, skc_part_kernels_s, 8)
SKC_GEMM_DRIVER(d, double, skc_kernels_d, skc_row_kernels_d, skc_narrow_kernels_d,
                skc_split_kernels_d, skc_run_kernels_d, skc_part_kernels_d, 4)

/* Rows of skc_implicit_gemm's padded output for m rows. */
static int skc_panel_rows(int m, int double_precision)
{
    int mr = double_precision ? skc_kernels_d[skc_path].mr : skc_kernels_s[skc_path].mr;
    return (m + mr - 1) / mr * mr;
}

/* Rows of skc_implicit_gemm's output that it writes for m rows: m where its
 * last panel is whole or has a kernel of its rows (the caller may then give
 * c with m rows only), else skc_panel_rows(m). */
static int skc_product_rows(int m, int narrow, int double_precision)
{
    int mr = double_precision ? skc_kernels_d[skc_path].mr : skc_kernels_s[skc_path].mr;
    int part = double_precision ? skc_part_kernels_d[skc_path][m % mr] != NULL
                                : skc_part_kernels_s[skc_path][m % mr] != NULL;
    return m % mr == 0 || (part && !narrow) ? m : skc_panel_rows(m, double_precision);
}

/* The tile (mr, nr) that skc_gemm_tap_rows computes an n-column product in, its
 * taps in runs of run. */
static void skc_tap_rows_tile(int n, int run, int double_precision, int *mr, int *nr)
{
    if (double_precision) {
        const skc_kernel_d *kern = skc_tap_rows_kernel_d(n, run);
        *mr = kern->mr, *nr = kern->nr;
    } else {
        const skc_kernel_s *kern = skc_tap_rows_kernel_s(n, run);
        *mr = kern->mr, *nr = kern->nr;
    }
}

/* Elements of skc_pack_tap_rows_b's packing of b[k, n]. */
static ptrdiff_t skc_tap_rows_packed_size(int n, int k, int double_precision)
{
    int mr, nr;
    skc_tap_rows_tile(n, 1, double_precision, &mr, &nr);
    return (ptrdiff_t)k * ((n + nr - 1) / nr * nr);
}

/* Columns of one of skc_implicit_gemm's tiles (and of the GEMM's). */
static int skc_tile_width(int double_precision)
{
    return double_precision ? skc_kernels_d[skc_path].nr : skc_kernels_s[skc_path].nr;
}

/* Columns of one of skc_implicit_gemm's split tiles (two rows of a map half as
 * wide); 0 where the path has none. */
static int skc_split_tile_width(int double_precision)
{
    if (double_precision)
        return skc_split_kernels_d[skc_path] ? skc_narrow_kernels_d[skc_path].nr : 0;
    return skc_split_kernels_s[skc_path] ? skc_narrow_kernels_s[skc_path].nr : 0;
}

/* Columns of one of skc_implicit_gemm's narrow tiles; 0 where the path has none. */
static int skc_narrow_tile_width(int double_precision)
{
    if (double_precision)
        return skc_narrow_kernels_d[skc_path].ukr_offsets ? skc_narrow_kernels_d[skc_path].nr : 0;
    return skc_narrow_kernels_s[skc_path].ukr_offsets ? skc_narrow_kernels_s[skc_path].nr : 0;
}

#endif /* SKCONV_GEMM_H */
