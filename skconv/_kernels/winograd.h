/* The transforms of a series' convolution by Winograd's minimal filtering
 * F(m, r) (Winograd 1980; Lavin and Gray 2016, "Fast Algorithms for
 * Convolutional Neural Networks"), compiled once per SIMD path. See
 * _conv.conv1d_forward_winograd for the whole product and
 * _engine.winograd_matrices for the matrices.
 *
 * m outputs of a kernel of r taps (a tile) are y = A^T [U . V], U = G g the
 * filter's transform of alpha = m + r - 1 values (skc_wino_filter, G from
 * Python) and V = B^T d that of the tile's alpha inputs d; the product over channels at each of
 * the alpha positions of U . V is one GEMM (skconv's). So a tile costs alpha
 * multiplications a channel and filter, not m * r.
 *
 * The input is read from m phase rows of the zero-padded series, padded
 * position m j + p at row p, column j: tile t's input i is at row i % m,
 * column t + i / m, unit strides along the tiles. Each transform is a sum of
 * the inputs times the matrices' nonzero coefficients, multiplied then added
 * (no fused multiply-add), in the matrices' order: every element of V and y
 * is the same operations in the same order at every vector width, so the
 * bits do not depend on the SIMD path. Kernels of 5 taps take tiles of 4
 * outputs, kernels of 3 tiles of 6: 8 positions either way.
 */
#ifndef SKCONV_WINOGRAD_H
#define SKCONV_WINOGRAD_H

#include <stddef.h>

/* The transforms at the points 0, 1, -1, 2, -2, 1/2, -1/2 and infinity, alpha =
 * 8: _engine.winograd_matrices(m, r)'s B^T and A^T (B^T is the same for every
 * m + r = 9), their zero terms left out, in their order (a term that
 * disagreed would fail the float64 tests against loop references and torch).
 * VT is T or a vector of T. */
#define SKC_WINO_BT(VT, T)                                                      \
    VT v0 = ((((T)4.0 * d0) - (T)21.0 * d2) + (T)21.0 * d4) - (T)4.0 * d6;      \
    VT v1 = ((((((T)-4.0 * d1) - (T)4.0 * d2) + (T)17.0 * d3) + (T)17.0 * d4)    \
             - (T)4.0 * d5) - (T)4.0 * d6;                                      \
    VT v2 = (((((((T)4.0 * d1) - (T)4.0 * d2) - (T)17.0 * d3) + (T)17.0 * d4)    \
             + (T)4.0 * d5) - (T)4.0 * d6);                                     \
    VT v3 = ((((((T)2.0 * d1) + d2) - (T)10.0 * d3) - (T)5.0 * d4) + (T)8.0 * d5) \
            + (T)4.0 * d6;                                                      \
    VT v4 = ((((((T)-2.0 * d1) + d2) + (T)10.0 * d3) - (T)5.0 * d4) - (T)8.0 * d5) \
            + (T)4.0 * d6;                                                      \
    VT v5 = ((((((T)4.0 * d1) + (T)8.0 * d2) - (T)5.0 * d3) - (T)10.0 * d4) + d5) \
            + (T)2.0 * d6;                                                      \
    VT v6 = ((((((T)-4.0 * d1) + (T)8.0 * d2) + (T)5.0 * d3) - (T)10.0 * d4) - d5) \
            + (T)2.0 * d6;                                                      \
    VT v7 = ((((T)-4.0 * d1) + (T)21.0 * d3) - (T)21.0 * d5) + (T)4.0 * d7;

/* A^T's first four rows (m = 4 has a fourth of its own: the point at infinity) */
#define SKC_WINO_AT3(VT, T)                                                     \
    VT y0 = (((((s0 + s1) + s2) + s3) + s4) + s5) + s6;                         \
    VT y1 = ((((s1 - s2) + (T)2.0 * s3) - (T)2.0 * s4) + (T)0.5 * s5) - (T)0.5 * s6; \
    VT y2 = ((((s1 + s2) + (T)4.0 * s3) + (T)4.0 * s4) + (T)0.25 * s5) + (T)0.25 * s6;
#define SKC_WINO_AT_M4(VT, T)                                                   \
    SKC_WINO_AT3(VT, T)                                                         \
    VT y3 = (((((s1 - s2) + (T)8.0 * s3) - (T)8.0 * s4) + (T)0.125 * s5)        \
             - (T)0.125 * s6) + s7;
#define SKC_WINO_AT_M6(VT, T)                                                   \
    SKC_WINO_AT3(VT, T)                                                         \
    VT y3 = ((((s1 - s2) + (T)8.0 * s3) - (T)8.0 * s4) + (T)0.125 * s5)         \
            - (T)0.125 * s6;                                                    \
    VT y4 = ((((s1 + s2) + (T)16.0 * s3) + (T)16.0 * s4) + (T)0.0625 * s5)      \
            + (T)0.0625 * s6;                                                   \
    VT y5 = (((((s1 - s2) + (T)32.0 * s3) - (T)32.0 * s4) + (T)0.03125 * s5)    \
             - (T)0.03125 * s6) + s7;

/* A's product with a tile's m output gradients e0 ... e(m-1): the gradient of
 * the 8 positions' products (the transpose of A^T's) */
#define SKC_WINO_A3(VT, T)                                                      \
    VT z0 = e0;                                                                 \
    VT z1 = ((e0 + e1) + e2) + e3;                                              \
    VT z2 = ((e0 - e1) + e2) - e3;                                              \
    VT z3 = ((e0 + (T)2.0 * e1) + (T)4.0 * e2) + (T)8.0 * e3;                   \
    VT z4 = ((e0 - (T)2.0 * e1) + (T)4.0 * e2) - (T)8.0 * e3;                   \
    VT z5 = ((e0 + (T)0.5 * e1) + (T)0.25 * e2) + (T)0.125 * e3;                \
    VT z6 = ((e0 - (T)0.5 * e1) + (T)0.25 * e2) - (T)0.125 * e3;
#define SKC_WINO_A_M4(VT, T, LD)                                                  \
    VT e0 = LD(src[0] + j), e1 = LD(src[1] + j), e2 = LD(src[2] + j), e3 = LD(src[3] + j); \
    SKC_WINO_A3(VT, T)                                                          \
    VT z7 = e3;
#define SKC_WINO_A_M6(VT, T, LD)                                                  \
    VT e0 = LD(src[0] + j), e1 = LD(src[1] + j), e2 = LD(src[2] + j), e3 = LD(src[3] + j); \
    VT e4 = LD(src[4] + j), e5 = LD(src[5] + j);                                \
    VT z0 = e0;                                                                 \
    VT z1 = ((((e0 + e1) + e2) + e3) + e4) + e5;                                \
    VT z2 = ((((e0 - e1) + e2) - e3) + e4) - e5;                                \
    VT z3 = ((((e0 + (T)2.0 * e1) + (T)4.0 * e2) + (T)8.0 * e3) + (T)16.0 * e4) \
            + (T)32.0 * e5;                                                     \
    VT z4 = ((((e0 - (T)2.0 * e1) + (T)4.0 * e2) - (T)8.0 * e3) + (T)16.0 * e4) \
            - (T)32.0 * e5;                                                     \
    VT z5 = ((((e0 + (T)0.5 * e1) + (T)0.25 * e2) + (T)0.125 * e3)              \
             + (T)0.0625 * e4) + (T)0.03125 * e5;                               \
    VT z6 = ((((e0 - (T)0.5 * e1) + (T)0.25 * e2) - (T)0.125 * e3)              \
             + (T)0.0625 * e4) - (T)0.03125 * e5;                               \
    VT z7 = e5;

/* rows 0..7 of a step, r0..r7, stored pos_stride apart at index j */
#define SKC_WINO_STORE_ROWS(ST, r, j)                                           \
    ST(r + j, r##0); ST(r + pos_stride + j, r##1);                              \
    ST(r + 2 * pos_stride + j, r##2); ST(r + 3 * pos_stride + j, r##3);         \
    ST(r + 4 * pos_stride + j, r##4); ST(r + 5 * pos_stride + j, r##5);         \
    ST(r + 6 * pos_stride + j, r##6); ST(r + 7 * pos_stride + j, r##7);

/* one step of the output gradient's transform at index j of the tiles */
#define SKC_WINO_DY_STEP(VT, T, LD, ST, M, j)                                   \
    {                                                                           \
        SKC_WINO_A_M##M(VT, T, LD)                                              \
        SKC_WINO_STORE_ROWS(ST, z, j)                                           \
    }

/* one step of the input transform at index j of the tiles: the 8 inputs of
 * each of its tiles, then their transforms to V's 8 rows */
#define SKC_WINO_IN_STEP(VT, T, LD, ST, j)                                      \
    {                                                                           \
        VT d0 = LD(src[0] + j), d1 = LD(src[1] + j), d2 = LD(src[2] + j);       \
        VT d3 = LD(src[3] + j), d4 = LD(src[4] + j), d5 = LD(src[5] + j);       \
        VT d6 = LD(src[6] + j), d7 = LD(src[7] + j);                            \
        SKC_WINO_BT(VT, T)                                                      \
        SKC_WINO_STORE_ROWS(ST, v, j)                                           \
    }

/* one step of the output transform at index j of the tiles, for tiles of M
 * outputs (4 or 6): M's 8 rows, then each tile's outputs in order */
#define SKC_WINO_OUT_STEP(VT, T, LD, ST, M, j)                                  \
    {                                                                           \
        VT s0 = LD(mrows + j), s1 = LD(mrows + pos_stride + j);                 \
        VT s2 = LD(mrows + 2 * pos_stride + j), s3 = LD(mrows + 3 * pos_stride + j); \
        VT s4 = LD(mrows + 4 * pos_stride + j), s5 = LD(mrows + 5 * pos_stride + j); \
        VT s6 = LD(mrows + 6 * pos_stride + j), s7 = LD(mrows + 7 * pos_stride + j); \
        SKC_WINO_AT_M##M(VT, T)                                                 \
        SKC_WINO_STORE_M##M(ST)                                                 \
    }
#define SKC_WINO_STORE_M4(ST)                                                   \
    ST(sums + j, y0); ST(sums + n + j, y1); ST(sums + 2 * n + j, y2);           \
    ST(sums + 3 * n + j, y3);
#define SKC_WINO_STORE_M6(ST)                                                   \
    SKC_WINO_STORE_M4(ST) ST(sums + 4 * n + j, y4); ST(sums + 5 * n + j, y5);

/* rows of n values, m of them, interleaved: out[m t + j] = sums[j n + t]; m a
 * constant, which the compiler's shuffles vectorise */
#define SKC_WINO_INTERLEAVE(M)                                                  \
    for (ptrdiff_t t = 0; t < n; t++)                                           \
        for (int j = 0; j < M; j++)                                             \
            out[M * t + j] = sums[j * n + t];

/* the m phase rows of x: zeros where the padding is, x's values between,
 * read in order (a group of M a tile, which the compiler's shuffles
 * vectorise), zeros after */
#define SKC_WINO_SPLIT(T, M)                                                    \
    {                                                                           \
        /* tiles j whose M values all lie in x: lo <= j < hi */                 \
        ptrdiff_t lo = (pad + M - 1) / M, hi = (n + pad) / M;                   \
        lo = lo < j_len ? lo : j_len;                                           \
        hi = hi < lo ? lo : hi > j_len ? j_len : hi;                            \
        for (ptrdiff_t j = 0; j < j_len; j++) {                                 \
            if (j == lo) {                                                      \
                const T *restrict src = x + M * lo - pad;                       \
                for (ptrdiff_t q = 0; q < hi - lo; q++)                         \
                    for (int p = 0; p < M; p++)                                 \
                        rows[p * ldr + lo + q] = src[M * q + p];              \
                j = hi;                                                         \
                if (j >= j_len)                                                 \
                    break;                                                      \
            }                                                                   \
            for (int p = 0; p < M; p++) {                                       \
                ptrdiff_t u = M * j + p - pad;                                  \
                rows[p * ldr + j] = u >= 0 && u < n ? x[u] : 0;                 \
            }                                                                   \
        }                                                                       \
    }

#define SKC_LD_ONE(p) (*(p))
#define SKC_ST_ONE(p, x) (*(p) = (x))

/* Vectors of VL values of T (GCC's vector extension: the same operations on
 * each lane), the last one overlapping the one before (the same values
 * again); single values where there are fewer than VL. */
#define SKC_WINO_LOOP(VL, STEP_VEC, STEP_ONE)                                   \
    if (n >= VL)                                                                \
        for (ptrdiff_t j0 = 0; j0 < n; j0 += VL) {                              \
            ptrdiff_t j = j0 + VL <= n ? j0 : n - VL;                           \
            STEP_VEC                                                            \
        }                                                                       \
    else                                                                        \
        for (ptrdiff_t j = 0; j < n; j++) {                                     \
            STEP_ONE                                                            \
        }

/* skc_wino_split: the m phase rows (each j_len long, row p at rows + p * ldr)
 * of x (length n) padded by pad zeros before and zeros after.
 * skc_wino_in: V's 8 rows (row xi at v + xi * pos_stride) over the n tiles,
 * from the phase rows: tile t's input i at rows[i % m][t + i / m].
 * skc_wino_dy: Z's 8 rows (row xi at z + xi * pos_stride) over the n tiles,
 * A's products with the phase rows of an output gradient: tile t's output j
 * at rows[j][t]. The weight gradient's positions' products are then sums over
 * the tiles of Z's rows times V's (_conv.conv1d_weight_gradient_winograd).
 * skc_wino_out: the m outputs of each of n tiles from M's 8 rows (at mrows +
 * xi * pos_stride), tile t's at out[m t] ... out[m t + m - 1], through sums
 * (m rows of n). */
#define SKC_WINO(SFX, TARGET, T, VL)                                            \
    typedef T skc_wino_vec_##SFX __attribute__((vector_size(VL * sizeof(T)), aligned(sizeof(T)), \
                                                 may_alias));                   \
    TARGET static void skc_wino_split_##SFX(const T *restrict x, ptrdiff_t n, ptrdiff_t pad, \
                                            ptrdiff_t m, ptrdiff_t j_len, T *restrict rows, \
                                            ptrdiff_t ldr)                      \
    {                                                                           \
        if (m == 4) {                                                           \
            SKC_WINO_SPLIT(T, 4)                                                \
        } else {                                                                \
            SKC_WINO_SPLIT(T, 6)                                                \
        }                                                                       \
    }                                                                           \
    TARGET static void skc_wino_in_##SFX(const T *restrict rows, ptrdiff_t j_len, ptrdiff_t m, \
                                         ptrdiff_t n, T *restrict v, ptrdiff_t pos_stride) \
    {                                                                           \
        const T *src[8];                                                        \
        for (int i = 0; i < 8; i++)                                             \
            src[i] = rows + (i % m) * j_len + i / m;                            \
        SKC_WINO_LOOP(VL,                                                       \
            SKC_WINO_IN_STEP(skc_wino_vec_##SFX, T, SKC_LD_##SFX, SKC_ST_##SFX, j), \
            SKC_WINO_IN_STEP(T, T, SKC_LD_ONE, SKC_ST_ONE, j))                  \
    }                                                                           \
    TARGET static void skc_wino_dy_##SFX(const T *restrict rows, ptrdiff_t j_len, ptrdiff_t m, \
                                         ptrdiff_t n, T *restrict z, ptrdiff_t pos_stride) \
    {                                                                           \
        const T *src[6];                                                        \
        for (int i = 0; i < 6; i++)                                             \
            src[i] = rows + (i < m ? i : 0) * j_len;                            \
        if (m == 4) {                                                           \
            SKC_WINO_LOOP(VL,                                                   \
                SKC_WINO_DY_STEP(skc_wino_vec_##SFX, T, SKC_LD_##SFX, SKC_ST_##SFX, 4, j), \
                SKC_WINO_DY_STEP(T, T, SKC_LD_ONE, SKC_ST_ONE, 4, j))           \
        } else {                                                                \
            SKC_WINO_LOOP(VL,                                                   \
                SKC_WINO_DY_STEP(skc_wino_vec_##SFX, T, SKC_LD_##SFX, SKC_ST_##SFX, 6, j), \
                SKC_WINO_DY_STEP(T, T, SKC_LD_ONE, SKC_ST_ONE, 6, j))           \
        }                                                                       \
    }                                                                           \
    TARGET static void skc_wino_out_##SFX(const T *restrict mrows, ptrdiff_t pos_stride, \
                                          ptrdiff_t m, ptrdiff_t n, T *restrict sums, \
                                          T *restrict out)                      \
    {                                                                           \
        if (m == 4) {                                                           \
            SKC_WINO_LOOP(VL,                                                   \
                SKC_WINO_OUT_STEP(skc_wino_vec_##SFX, T, SKC_LD_##SFX, SKC_ST_##SFX, 4, j), \
                SKC_WINO_OUT_STEP(T, T, SKC_LD_ONE, SKC_ST_ONE, 4, j))          \
            SKC_WINO_INTERLEAVE(4)                                              \
        } else {                                                                \
            SKC_WINO_LOOP(VL,                                                   \
                SKC_WINO_OUT_STEP(skc_wino_vec_##SFX, T, SKC_LD_##SFX, SKC_ST_##SFX, 6, j), \
                SKC_WINO_OUT_STEP(T, T, SKC_LD_ONE, SKC_ST_ONE, 6, j))          \
            SKC_WINO_INTERLEAVE(6)                                              \
        }                                                                       \
    }

/* skc_wino_filter: U[p][f] = G g for filter f of w (c channels of r taps, at w +
 * f * c * r): u[p * ldu + ci] = sum over the taps k in order of g[p][k] *
 * w[f][ci][k], in double, rounded once. Channels in chunks whose sums stay
 * in registers and L1. */
#define SKC_WINO_FILTER(SFX, TARGET, T)                                         \
    TARGET static void skc_wino_filter_##SFX(const T *restrict w, ptrdiff_t c, ptrdiff_t r, \
                                             const double *restrict g, T *restrict u, \
                                             ptrdiff_t ldu)                     \
    {                                                                           \
        double acc[8][64], wk[64];                                              \
        for (ptrdiff_t c0 = 0; c0 < c; c0 += 64) {                              \
            ptrdiff_t len = c - c0 < 64 ? c - c0 : 64;                          \
            for (int p = 0; p < 8; p++)                                         \
                for (ptrdiff_t i = 0; i < len; i++)                             \
                    acc[p][i] = 0;                                              \
            for (ptrdiff_t k = 0; k < r; k++) {                                 \
                for (ptrdiff_t i = 0; i < len; i++)                             \
                    wk[i] = w[(c0 + i) * r + k];                                \
                for (int p = 0; p < 8; p++) {                                   \
                    const double gk = g[p * r + k];                             \
                    for (ptrdiff_t i = 0; i < len; i++)                         \
                        acc[p][i] = acc[p][i] + gk * wk[i];                     \
                }                                                               \
            }                                                                   \
            for (int p = 0; p < 8; p++)                                         \
                for (ptrdiff_t i = 0; i < len; i++)                             \
                    u[p * ldu + c0 + i] = (T)acc[p][i];                         \
        }                                                                       \
    }

#define SKC_LD_portable_s(p) (*(const skc_wino_vec_portable_s *)(p))
#define SKC_ST_portable_s(p, x) (*(skc_wino_vec_portable_s *)(p) = (x))
#define SKC_LD_portable_d(p) (*(const skc_wino_vec_portable_d *)(p))
#define SKC_ST_portable_d(p, x) (*(skc_wino_vec_portable_d *)(p) = (x))
SKC_WINO(portable_s, , float, 4)
SKC_WINO(portable_d, , double, 2)
SKC_WINO_FILTER(portable_s, , float)
SKC_WINO_FILTER(portable_d, , double)

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define SKC_WINO_AVX2 __attribute__((target("avx2")))
#ifdef SKC_EMULATE_AVX512 /* the emulated build runs AVX-512's path with AVX2's code */
#define SKC_WINO_AVX512 SKC_WINO_AVX2
#define SKC_WINO_AVX512_LANES 8
#else
#define SKC_WINO_AVX512 __attribute__((target("avx512f")))
#define SKC_WINO_AVX512_LANES 16
#endif
#define SKC_LD_avx2_s(p) (*(const skc_wino_vec_avx2_s *)(p))
#define SKC_ST_avx2_s(p, x) (*(skc_wino_vec_avx2_s *)(p) = (x))
#define SKC_LD_avx2_d(p) (*(const skc_wino_vec_avx2_d *)(p))
#define SKC_ST_avx2_d(p, x) (*(skc_wino_vec_avx2_d *)(p) = (x))
#define SKC_LD_avx512_s(p) (*(const skc_wino_vec_avx512_s *)(p))
#define SKC_ST_avx512_s(p, x) (*(skc_wino_vec_avx512_s *)(p) = (x))
#define SKC_LD_avx512_d(p) (*(const skc_wino_vec_avx512_d *)(p))
#define SKC_ST_avx512_d(p, x) (*(skc_wino_vec_avx512_d *)(p) = (x))
SKC_WINO(avx2_s, SKC_WINO_AVX2, float, 8)
SKC_WINO(avx2_d, SKC_WINO_AVX2, double, 4)
SKC_WINO(avx512_s, SKC_WINO_AVX512, float, SKC_WINO_AVX512_LANES)
SKC_WINO(avx512_d, SKC_WINO_AVX512, double, SKC_WINO_AVX512_LANES / 2)
SKC_WINO_FILTER(avx2_s, SKC_WINO_AVX2, float)
SKC_WINO_FILTER(avx2_d, SKC_WINO_AVX2, double)
SKC_WINO_FILTER(avx512_s, SKC_WINO_AVX512, float)
SKC_WINO_FILTER(avx512_d, SKC_WINO_AVX512, double)
#define SKC_WINO_CALL(F, SFX, path, ...)                                        \
    ((path) == 2 ? F##avx512_##SFX(__VA_ARGS__)                                 \
     : (path) == 1 ? F##avx2_##SFX(__VA_ARGS__) : F##portable_##SFX(__VA_ARGS__))
#else
#define SKC_WINO_CALL(F, SFX, path, ...) F##portable_##SFX(__VA_ARGS__)
#endif

/* path: the SIMD path in use, as gemm.h numbers them (0 portable, 1 AVX2, 2 AVX-512) */
#define SKC_WINO_ENTRIES(SFX, T)                                                \
    static void skc_wino_split_##SFX(const T *x, ptrdiff_t n, ptrdiff_t pad, ptrdiff_t m, \
                                     ptrdiff_t j_len, T *rows, ptrdiff_t ldr, int path) \
    {                                                                           \
        SKC_WINO_CALL(skc_wino_split_, SFX, path, x, n, pad, m, j_len, rows, ldr); \
    }                                                                           \
    static void skc_wino_in_##SFX(const T *rows, ptrdiff_t j_len, ptrdiff_t m, ptrdiff_t n, \
                                  T *v, ptrdiff_t pos_stride, int path)         \
    {                                                                           \
        SKC_WINO_CALL(skc_wino_in_, SFX, path, rows, j_len, m, n, v, pos_stride); \
    }                                                                           \
    static void skc_wino_dy_##SFX(const T *rows, ptrdiff_t j_len, ptrdiff_t m, ptrdiff_t n, \
                                  T *z, ptrdiff_t pos_stride, int path)         \
    {                                                                           \
        SKC_WINO_CALL(skc_wino_dy_, SFX, path, rows, j_len, m, n, z, pos_stride); \
    }                                                                           \
    static void skc_wino_out_##SFX(const T *mrows, ptrdiff_t pos_stride, ptrdiff_t m,       \
                                   ptrdiff_t n, T *sums, T *out, int path)      \
    {                                                                           \
        SKC_WINO_CALL(skc_wino_out_, SFX, path, mrows, pos_stride, m, n, sums, out); \
    }

#define SKC_WINO_FILTER_ENTRY(SFX, T)                                           \
    static void skc_wino_filter_##SFX(const T *w, ptrdiff_t c, ptrdiff_t r, const double *g, \
                                      T *u, ptrdiff_t ldu, int path)            \
    {                                                                           \
        SKC_WINO_CALL(skc_wino_filter_, SFX, path, w, c, r, g, u, ldu);         \
    }
SKC_WINO_FILTER_ENTRY(s, float)
SKC_WINO_FILTER_ENTRY(d, double)

SKC_WINO_ENTRIES(s, float)
SKC_WINO_ENTRIES(d, double)

#endif
