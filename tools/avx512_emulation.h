/* The AVX-512 intrinsics that gemm.h's micro-kernels use, in plain C, for
 * testing the AVX-512 path on a CPU without it (tools/avx512_emulated.sh).
 *
 * gemm.h builds its AVX-512 kernels from the same templates as its AVX2 ones;
 * what differs is their tile shapes (8 x 32 and 8 x 16, a pair kernel of 4
 * rows, a row kernel of 64 and 32 columns), and so the edges, the packing and
 * the buffers of the driver around them. With this header those kernels run
 * anywhere that AVX2 does, one fmaf() per lane: the same chains, so the same
 * bits as the real instructions, and the suite's path tests cover the path.
 * Never part of a release build: gemm.h includes it only when the build
 * defines SKC_EMULATE_AVX512.
 */
#ifndef SKCONV_AVX512_EMULATION_H
#define SKCONV_AVX512_EMULATION_H

#include <math.h>
#include <string.h>

typedef struct { float lane[16]; } skc_emu_m512;
typedef struct { double lane[8]; } skc_emu_m512d;

#define SKC_EMU_VECTOR(SUFFIX, VEC, T, LANES, FMA)                              \
    static inline VEC skc_emu_loadu_##SUFFIX(const T *p)                        \
    {                                                                           \
        VEC v;                                                                  \
        memcpy(v.lane, p, sizeof v.lane);                                       \
        return v;                                                               \
    }                                                                           \
    static inline void skc_emu_storeu_##SUFFIX(T *p, VEC v)                     \
    {                                                                           \
        memcpy(p, v.lane, sizeof v.lane);                                       \
    }                                                                           \
    static inline VEC skc_emu_set1_##SUFFIX(T x)                                \
    {                                                                           \
        VEC v;                                                                  \
        for (int i = 0; i < LANES; i++)                                         \
            v.lane[i] = x;                                                      \
        return v;                                                               \
    }                                                                           \
    static inline VEC skc_emu_setzero_##SUFFIX(void) { return skc_emu_set1_##SUFFIX(0); } \
    static inline VEC skc_emu_loadu_halves_##SUFFIX(const T *lo, const T *hi)   \
    {                                                                           \
        VEC v;                                                                  \
        memcpy(v.lane, lo, sizeof v.lane / 2);                                  \
        memcpy(v.lane + LANES / 2, hi, sizeof v.lane / 2);                      \
        return v;                                                               \
    }                                                                           \
    static inline VEC skc_emu_fmadd_##SUFFIX(VEC a, VEC b, VEC c)               \
    {                                                                           \
        for (int i = 0; i < LANES; i++)                                         \
            c.lane[i] = FMA(a.lane[i], b.lane[i], c.lane[i]);                   \
        return c;                                                               \
    }

SKC_EMU_VECTOR(ps, skc_emu_m512, float, 16, fmaf)
SKC_EMU_VECTOR(pd, skc_emu_m512d, double, 8, fma)

#define __m512 skc_emu_m512
#define __m512d skc_emu_m512d
#define _mm512_loadu_ps skc_emu_loadu_ps
#define _mm512_loadu_pd skc_emu_loadu_pd
#define _mm512_storeu_ps skc_emu_storeu_ps
#define _mm512_storeu_pd skc_emu_storeu_pd
#define _mm512_set1_ps skc_emu_set1_ps
#define _mm512_set1_pd skc_emu_set1_pd
#define _mm512_setzero_ps skc_emu_setzero_ps
#define _mm512_setzero_pd skc_emu_setzero_pd
#define _mm512_fmadd_ps skc_emu_fmadd_ps
#define _mm512_fmadd_pd skc_emu_fmadd_pd

/* the kernels compile for AVX2 (the transposes that the AVX-512 path shares
 * are AVX2 code), and the path runs wherever AVX2 does */
#define SKC_AVX512_TARGET "avx2,fma"
#define SKC_CPU_HAS_AVX512() (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))

#endif /* SKCONV_AVX512_EMULATION_H */
