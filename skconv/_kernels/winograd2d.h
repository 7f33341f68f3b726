/* The transforms of a 3x3 stride-1 convolution by Winograd's minimal
 * filtering F(2x2, 3x3) (Lavin and Gray 2016, "Fast Algorithms for
 * Convolutional Neural Networks"), compiled once per SIMD path. See
 * _conv.conv2d_forward_winograd2d for the whole product, and
 * _conv.conv2d_weight_gradient_winograd2d for the weights' gradient, dU = Z V^T
 * over the tiles, Z = A dY A^T the output gradient's transform (skc_wino2_dy).
 *
 * A 2x2 block of outputs (a tile) is Y = A^T [U . V] A, U = G g G^T the
 * filter's 4x4 transform (_conv._winograd2d_filter), V = B^T d B that of the
 * tile's 4x4 input patch d; the product over channels of each of the 16
 * positions of U . V is one GEMM (skconv's). With
 *
 *     B^T = [1  0 -1  0]      A^T = [1  1  1  0]
 *           [0  1  1  0]            [0  1 -1 -1]
 *           [0 -1  1  0]
 *           [0  1  0 -1]
 *
 * both transforms are additions and subtractions only, in the order written
 * below: each element of V and Y is the same operations in the same order at
 * every vector width, so the bits do not depend on the path.
 *
 * The input is a zero-padded image split by the parity of rows and columns
 * (_conv._copy_padded with strides of 2): padded row 2u + a, column 2t + b
 * at plane (a, b), row u, column t, planes of width wq, (a, b)'s at img +
 * (2a + b) * plane. Tile (ti, tj) reads rows 2 ti ... 2 ti + 3 and columns
 * 2 tj ... 2 tj + 3, that is rows ti and ti + 1 and columns tj and tj + 1 of
 * each plane: all at q = ti * wq + tj or one or wq further. So both
 * transforms run over q, unit strides throughout; the column tj = wq - 1 of
 * each row of tiles lies past the output and is computed and dropped.
 */
#ifndef SKCONV_WINOGRAD2D_H
#define SKCONV_WINOGRAD2D_H

#include <stddef.h>

/* One step of each transform on the values at index j of its rows, VT being
 * T or a vector of T, read and written through LD and ST. */
#define SKC_WINO2_IN_STEP(VT, LD, ST, j)                                         \
    {                                                                           \
        /* rows: B^T d, one column of the patch at a time */                    \
        VT a0 = LD(e0 + j) - LD(e2 + j), a1 = LD(o0 + j) - LD(o2 + j);         \
        VT a2 = LD(e0 + j + 1) - LD(e2 + j + 1), a3 = LD(o0 + j + 1) - LD(o2 + j + 1); \
        VT b0 = LD(e1 + j) + LD(e2 + j), b1 = LD(o1 + j) + LD(o2 + j);         \
        VT b2 = LD(e1 + j + 1) + LD(e2 + j + 1), b3 = LD(o1 + j + 1) + LD(o2 + j + 1); \
        VT c0 = LD(e2 + j) - LD(e1 + j), c1 = LD(o2 + j) - LD(o1 + j);         \
        VT c2 = LD(e2 + j + 1) - LD(e1 + j + 1), c3 = LD(o2 + j + 1) - LD(o1 + j + 1); \
        VT d0 = LD(e1 + j) - LD(e3 + j), d1 = LD(o1 + j) - LD(o3 + j);         \
        VT d2 = LD(e1 + j + 1) - LD(e3 + j + 1), d3 = LD(o1 + j + 1) - LD(o3 + j + 1); \
        /* columns: (B^T d) B */                                                \
        ST(out + j, a0 - a2);                                                   \
        ST(out + pos_stride + j, a1 + a2);                                      \
        ST(out + 2 * pos_stride + j, a2 - a1);                                  \
        ST(out + 3 * pos_stride + j, a1 - a3);                                  \
        ST(out + 4 * pos_stride + j, b0 - b2);                                  \
        ST(out + 5 * pos_stride + j, b1 + b2);                                  \
        ST(out + 6 * pos_stride + j, b2 - b1);                                  \
        ST(out + 7 * pos_stride + j, b1 - b3);                                  \
        ST(out + 8 * pos_stride + j, c0 - c2);                                  \
        ST(out + 9 * pos_stride + j, c1 + c2);                                  \
        ST(out + 10 * pos_stride + j, c2 - c1);                                 \
        ST(out + 11 * pos_stride + j, c1 - c3);                                 \
        ST(out + 12 * pos_stride + j, d0 - d2);                                 \
        ST(out + 13 * pos_stride + j, d1 + d2);                                 \
        ST(out + 14 * pos_stride + j, d2 - d1);                                 \
        ST(out + 15 * pos_stride + j, d1 - d3);                                 \
    }

/* rows: A^T M, one column of the tile's 4x4 at a time; the columns, (A^T M) A,
 * come out as each output row's even and odd values */
#define SKC_WINO2_OUT_STEP(VT, LD, j)                                            \
    VT s0 = (LD(m + j) + LD(m + 4 * pos_stride + j)) + LD(m + 8 * pos_stride + j); \
    VT s1 = (LD(m + pos_stride + j) + LD(m + 5 * pos_stride + j)) + LD(m + 9 * pos_stride + j); \
    VT s2 = (LD(m + 2 * pos_stride + j) + LD(m + 6 * pos_stride + j))          \
            + LD(m + 10 * pos_stride + j);                                      \
    VT s3 = (LD(m + 3 * pos_stride + j) + LD(m + 7 * pos_stride + j))          \
            + LD(m + 11 * pos_stride + j);                                      \
    VT t0 = (LD(m + 4 * pos_stride + j) - LD(m + 8 * pos_stride + j))          \
            - LD(m + 12 * pos_stride + j);                                      \
    VT t1 = (LD(m + 5 * pos_stride + j) - LD(m + 9 * pos_stride + j))          \
            - LD(m + 13 * pos_stride + j);                                      \
    VT t2 = (LD(m + 6 * pos_stride + j) - LD(m + 10 * pos_stride + j))         \
            - LD(m + 14 * pos_stride + j);                                      \
    VT t3 = (LD(m + 7 * pos_stride + j) - LD(m + 11 * pos_stride + j))         \
            - LD(m + 15 * pos_stride + j);                                      \
    VT even0 = (s0 + s1) + s2, odd0 = (s1 - s2) - s3;                           \
    VT even1 = (t0 + t1) + t2, odd1 = (t1 - t2) - t3;

/* The weight gradient's transform of the output gradient, Z = A dY A^T (A =
 * (A^T)^T): a tile's 2x2 dY from the four parity planes of one filter's
 * (y00 at d, y01 at d + plane, y10 at d + 2 plane, y11 at d + 3 plane); the
 * rows A dY are (y0, y0 + y1, y0 - y1, -y1) of dY's rows y0, y1, and each
 * row's (p, q) goes to (p, p + q, p - q, -q). Negation is exact: each value
 * one rounding at most twice, in the order written. */
#define SKC_WINO2_DY_STEP(VT, LD, ST, j)                                         \
    {                                                                           \
        VT y00 = LD(d + j), y01 = LD(d + plane + j);                            \
        VT y10 = LD(d + 2 * plane + j), y11 = LD(d + 3 * plane + j);            \
        VT s0 = y00 + y10, s1 = y01 + y11, u0 = y00 - y10, u1 = y01 - y11;      \
        ST(out + j, y00);                                                       \
        ST(out + pos_stride + j, y00 + y01);                                    \
        ST(out + 2 * pos_stride + j, y00 - y01);                                \
        ST(out + 3 * pos_stride + j, -y01);                                     \
        ST(out + 4 * pos_stride + j, s0);                                       \
        ST(out + 5 * pos_stride + j, s0 + s1);                                  \
        ST(out + 6 * pos_stride + j, s0 - s1);                                  \
        ST(out + 7 * pos_stride + j, -s1);                                      \
        ST(out + 8 * pos_stride + j, u0);                                       \
        ST(out + 9 * pos_stride + j, u0 + u1);                                  \
        ST(out + 10 * pos_stride + j, u0 - u1);                                 \
        ST(out + 11 * pos_stride + j, -u1);                                     \
        ST(out + 12 * pos_stride + j, -y10);                                    \
        ST(out + 13 * pos_stride + j, -(y10 + y11));                            \
        ST(out + 14 * pos_stride + j, y11 - y10);                               \
        ST(out + 15 * pos_stride + j, y11);                                     \
    }

#define SKC_LD2_SCALAR(p) (*(p))
#define SKC_ST2_SCALAR(p, v) (*(p) = (v))

/* STEP on each q < n of a row: vectors of VL, the last one again where n is
 * not a multiple (overlapping: the same values written twice), single
 * values where n < VL */
#define SKC_WINO2_EACH(STEP, SFX, T, VL)                                         \
    {                                                                           \
        ptrdiff_t j = 0;                                                        \
        for (; j + VL <= n; j += VL)                                            \
            STEP(skc_wino2_vec_##SFX, SKC_LD2_VEC_##SFX, SKC_ST2_VEC_##SFX, j)   \
        if (j < n && n >= VL) {                                                 \
            j = n - VL;                                                         \
            STEP(skc_wino2_vec_##SFX, SKC_LD2_VEC_##SFX, SKC_ST2_VEC_##SFX, j)   \
            j = n;                                                              \
        }                                                                       \
        for (; j < n; j++)                                                      \
            STEP(T, SKC_LD2_SCALAR, SKC_ST2_SCALAR, j)                          \
    }

/* skc_wino2_in: V[4a + b][ci][q] (position (a, b) at v + (4a + b) * pstride,
 * channel ci at + ci * ldv) for each channel and each q < n of one image.
 * skc_wino2_out: one filter's raw outputs of its q < n from M[4a + b][q] (at m
 * + (4a + b) * pstride + q): those of output rows 2 ti at row0[2q] and
 * row0[2q + 1], of rows 2 ti + 1 likewise in row1. Vectors of VL values of T
 * (GCC's vector extension: the same operations on each lane), then single
 * values for the rest. */
#define SKC_WINO2_IN_LOOP(SFX, T, VL)                                            \
    for (ptrdiff_t ci = 0; ci < c; ci++) {                                      \
        const T *e0 = img + ci * channel_stride, *o0 = e0 + plane;              \
        const T *e1 = o0 + plane, *o1 = e1 + plane;                             \
        const T *e2 = e0 + wq, *o2 = o0 + wq, *e3 = e1 + wq, *o3 = o1 + wq;     \
        T *out = v + ci * ldv;                                                  \
        SKC_WINO2_EACH(SKC_WINO2_IN_STEP, SFX, T, VL)                           \
    }

#define SKC_WINO2_OUT_LOOP(SFX, T, VL)                                           \
    for (ptrdiff_t j0 = 0; j0 < n && n >= VL; j0 += VL) {                       \
        /* the last vector overlaps the one before: the same values again */    \
        ptrdiff_t j = j0 + VL <= n ? j0 : n - VL;                               \
        SKC_WINO2_OUT_STEP(skc_wino2_vec_##SFX, SKC_LD2_VEC_##SFX, j)              \
        for (int l = 0; l < VL; l++) { /* interleaved: the compiler's shuffles */ \
            row0[2 * (j + l)] = even0[l];                                       \
            row0[2 * (j + l) + 1] = odd0[l];                                    \
            row1[2 * (j + l)] = even1[l];                                       \
            row1[2 * (j + l) + 1] = odd1[l];                                    \
        }                                                                       \
    }                                                                           \
    for (ptrdiff_t j = 0; j < n && n < VL; j++) {                               \
        SKC_WINO2_OUT_STEP(T, SKC_LD2_SCALAR, j)                                  \
        row0[2 * j] = even0;                                                    \
        row0[2 * j + 1] = odd0;                                                 \
        row1[2 * j] = even1;                                                    \
        row1[2 * j + 1] = odd1;                                                 \
    }

/* skc_wino2_dy: Z[4a + b][fi][q] (at z + (4a + b) * pstride + fi * ldz + q) of
 * each of f filters' planes (filter fi's at dy + fi * channel_stride) and each
 * q < n, as SKC_WINO2_IN_LOOP goes. */
#define SKC_WINO2_DY_LOOP(SFX, T, VL)                                            \
    for (ptrdiff_t fi = 0; fi < f; fi++) {                                      \
        const T *d = dy + fi * channel_stride;                                  \
        T *out = z + fi * ldz;                                                  \
        SKC_WINO2_EACH(SKC_WINO2_DY_STEP, SFX, T, VL)                           \
    }

/* The loops with the positions' distance a constant where it is a product
 * tile's width (as _conv lays V and M out): one base pointer and constant
 * offsets for the 16 positions, not 16 pointers spilled to the stack. */
#define SKC_WINO2_SPECIALISED(LOOP)                                              \
    switch (pstride) {                                                          \
    case 4: { const ptrdiff_t pos_stride = 4; LOOP } break;                     \
    case 8: { const ptrdiff_t pos_stride = 8; LOOP } break;                     \
    case 16: { const ptrdiff_t pos_stride = 16; LOOP } break;                   \
    case 32: { const ptrdiff_t pos_stride = 32; LOOP } break;                   \
    default: { const ptrdiff_t pos_stride = pstride; LOOP }                     \
    }

#define SKC_WINO2(SFX, TARGET, T, VL)                                            \
    typedef T skc_wino2_vec_##SFX __attribute__((vector_size(VL * sizeof(T)), aligned(sizeof(T)), \
                                                 may_alias));                   \
    TARGET static void skc_wino2_in_##SFX(const T *restrict img, ptrdiff_t channel_stride, \
                                         ptrdiff_t plane, ptrdiff_t wq, ptrdiff_t c, \
                                         ptrdiff_t n, T *restrict v, ptrdiff_t ldv, \
                                         ptrdiff_t pstride)                     \
    {                                                                           \
        SKC_WINO2_SPECIALISED(SKC_WINO2_IN_LOOP(SFX, T, VL))                      \
    }                                                                           \
    TARGET static void skc_wino2_out_##SFX(const T *restrict m, ptrdiff_t pstride, \
                                          ptrdiff_t n, T *restrict row0,        \
                                          T *restrict row1)                     \
    {                                                                           \
        SKC_WINO2_SPECIALISED(SKC_WINO2_OUT_LOOP(SFX, T, VL))                     \
    }                                                                           \
    TARGET static void skc_wino2_dy_##SFX(const T *restrict dy, ptrdiff_t channel_stride, \
                                         ptrdiff_t plane, ptrdiff_t f, ptrdiff_t n, \
                                         T *restrict z, ptrdiff_t ldz, ptrdiff_t pstride) \
    {                                                                           \
        SKC_WINO2_SPECIALISED(SKC_WINO2_DY_LOOP(SFX, T, VL))                      \
    }

#define SKC_LD2_VEC_portable_s(p) (*(const skc_wino2_vec_portable_s *)(p))
#define SKC_ST2_VEC_portable_s(p, v) (*(skc_wino2_vec_portable_s *)(p) = (v))
#define SKC_LD2_VEC_portable_d(p) (*(const skc_wino2_vec_portable_d *)(p))
#define SKC_ST2_VEC_portable_d(p, v) (*(skc_wino2_vec_portable_d *)(p) = (v))
SKC_WINO2(portable_s, , float, 4)
SKC_WINO2(portable_d, , double, 2)

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define SKC_WINO2_AVX2 __attribute__((target("avx2")))
#ifdef SKC_EMULATE_AVX512 /* the emulated build runs AVX-512's path with AVX2's code */
#define SKC_WINO2_AVX512 SKC_WINO2_AVX2
#define SKC_WINO2_AVX512_LANES 8
#else
#define SKC_WINO2_AVX512 __attribute__((target("avx512f")))
#define SKC_WINO2_AVX512_LANES 16
#endif
#define SKC_LD2_VEC_avx2_s(p) (*(const skc_wino2_vec_avx2_s *)(p))
#define SKC_ST2_VEC_avx2_s(p, v) (*(skc_wino2_vec_avx2_s *)(p) = (v))
#define SKC_LD2_VEC_avx2_d(p) (*(const skc_wino2_vec_avx2_d *)(p))
#define SKC_ST2_VEC_avx2_d(p, v) (*(skc_wino2_vec_avx2_d *)(p) = (v))
#define SKC_LD2_VEC_avx512_s(p) (*(const skc_wino2_vec_avx512_s *)(p))
#define SKC_ST2_VEC_avx512_s(p, v) (*(skc_wino2_vec_avx512_s *)(p) = (v))
#define SKC_LD2_VEC_avx512_d(p) (*(const skc_wino2_vec_avx512_d *)(p))
#define SKC_ST2_VEC_avx512_d(p, v) (*(skc_wino2_vec_avx512_d *)(p) = (v))
SKC_WINO2(avx2_s, SKC_WINO2_AVX2, float, 8)
SKC_WINO2(avx2_d, SKC_WINO2_AVX2, double, 4)
SKC_WINO2(avx512_s, SKC_WINO2_AVX512, float, SKC_WINO2_AVX512_LANES)
SKC_WINO2(avx512_d, SKC_WINO2_AVX512, double, SKC_WINO2_AVX512_LANES / 2)
#define SKC_WINO2_CALL(F, SFX, path, ...)                                        \
    ((path) == 2 ? F##avx512_##SFX(__VA_ARGS__)                                 \
     : (path) == 1 ? F##avx2_##SFX(__VA_ARGS__) : F##portable_##SFX(__VA_ARGS__))
#else
#define SKC_WINO2_CALL(F, SFX, path, ...) F##portable_##SFX(__VA_ARGS__)
#endif

/* path: the SIMD path in use, as gemm.h numbers them (0 portable, 1 AVX2, 2 AVX-512) */
static void skc_wino2_in_s(const float *img, ptrdiff_t channel_stride, ptrdiff_t plane,
                          ptrdiff_t wq, ptrdiff_t c, ptrdiff_t n, float *v, ptrdiff_t ldv,
                          ptrdiff_t pos_stride, int path)
{
    SKC_WINO2_CALL(skc_wino2_in_, s, path, img, channel_stride, plane, wq, c, n, v, ldv,
                  pos_stride);
}
static void skc_wino2_in_d(const double *img, ptrdiff_t channel_stride, ptrdiff_t plane,
                          ptrdiff_t wq, ptrdiff_t c, ptrdiff_t n, double *v, ptrdiff_t ldv,
                          ptrdiff_t pos_stride, int path)
{
    SKC_WINO2_CALL(skc_wino2_in_, d, path, img, channel_stride, plane, wq, c, n, v, ldv,
                  pos_stride);
}
static void skc_wino2_out_s(const float *m, ptrdiff_t pos_stride, ptrdiff_t n, float *row0,
                           float *row1, int path)
{
    SKC_WINO2_CALL(skc_wino2_out_, s, path, m, pos_stride, n, row0, row1);
}
static void skc_wino2_out_d(const double *m, ptrdiff_t pos_stride, ptrdiff_t n, double *row0,
                           double *row1, int path)
{
    SKC_WINO2_CALL(skc_wino2_out_, d, path, m, pos_stride, n, row0, row1);
}

static void skc_wino2_dy_s(const float *dy, ptrdiff_t channel_stride, ptrdiff_t plane,
                          ptrdiff_t f, ptrdiff_t n, float *z, ptrdiff_t ldz, ptrdiff_t pos_stride,
                          int path)
{
    SKC_WINO2_CALL(skc_wino2_dy_, s, path, dy, channel_stride, plane, f, n, z, ldz, pos_stride);
}
static void skc_wino2_dy_d(const double *dy, ptrdiff_t channel_stride, ptrdiff_t plane,
                          ptrdiff_t f, ptrdiff_t n, double *z, ptrdiff_t ldz,
                          ptrdiff_t pos_stride, int path)
{
    SKC_WINO2_CALL(skc_wino2_dy_, d, path, dy, channel_stride, plane, f, n, z, ldz, pos_stride);
}

#endif
