/* exp and log in double, the same bits on every x86-64 CPU.
 *
 * The C library's exp and log are not: glibc picks an FMA or a non-FMA
 * variant at load time, and numpy's float64 exp and log take an AVX-512
 * kernel where the CPU has one, so an output activation through either gives
 * other last bits on another machine. These are written with fma(), which is
 * correctly rounded wherever it runs (an instruction or the C library's
 * emulation), and with operations that are exact (ldexp, frexp, floor, the
 * reduction's products): each result is one fixed chain of correctly rounded
 * operations. Against the C library's: exp within 1 unit in the last place,
 * log within 2, log1p within 6 (tests/test_layers.py).
 * Compiled with -ffp-contract=off, as every kernel.
 */
#ifndef SKC_ELEMENTARY_H
#define SKC_ELEMENTARY_H

#include <math.h>

/* ln 2 split so that k * SKC_LN2_HI is exact for |k| < 2^11 (fdlibm's split) */
#define SKC_LN2_HI 6.93147180369123816490e-01
#define SKC_LN2_LO 1.90821492927058770002e-10

static inline double skc_exp(double x)
{
    if (!(x == x))
        return x;
    if (x > 709.782712893384)
        return HUGE_VAL;
    if (x < -745.2)
        return 0.0;
    /* x = k ln2 + r, |r| <= ln2 / 2 (a little more from the rounding of x / ln2) */
    double k = floor(x * 1.4426950408889634 + 0.5);
    double r = fma(-k, SKC_LN2_HI, x);
    r = fma(-k, SKC_LN2_LO, r);
    /* exp(r) by its Taylor series to r^13 / 13!: the next term is below
       2^-60 for |r| <= 0.35 */
    double p = 1.6059043836821613e-10;           /* 1 / 13! */
    p = fma(p, r, 2.08767569878680990e-09);      /* 1 / 12! */
    p = fma(p, r, 2.50521083854417188e-08);      /* 1 / 11! */
    p = fma(p, r, 2.75573192239858907e-07);      /* 1 / 10! */
    p = fma(p, r, 2.75573192239858883e-06);      /* 1 / 9! */
    p = fma(p, r, 2.48015873015873016e-05);      /* 1 / 8! */
    p = fma(p, r, 1.98412698412698413e-04);      /* 1 / 7! */
    p = fma(p, r, 1.38888888888888894e-03);      /* 1 / 6! */
    p = fma(p, r, 8.33333333333333322e-03);      /* 1 / 5! */
    p = fma(p, r, 4.16666666666666644e-02);      /* 1 / 4! */
    p = fma(p, r, 1.66666666666666657e-01);      /* 1 / 3! */
    p = fma(p, r, 0.5);
    p = fma(p, r, 1.0);
    p = fma(p, r, 1.0);
    return ldexp(p, (int) k);
}

static inline double skc_log(double x)
{
    if (!(x > 0.0)) {
        if (x == 0.0)
            return -HUGE_VAL;
        return NAN;    /* negative or NaN */
    }
    if (x == HUGE_VAL)
        return x;
    /* x = 2^e m, m in [sqrt(1/2), sqrt(2)) */
    int e;
    double m = frexp(x, &e);
    if (m < 0.70710678118654752) {
        m = 2.0 * m;
        e = e - 1;
    }
    /* log(m) = 2 atanh(s) = 2 (s + s^3/3 + s^5/5 + ...), s = (m - 1) / (m + 1),
       |s| <= 0.172: the terms to s^25 / 25, the next below 2^-60 of s */
    double f = m - 1.0;    /* exact: m is within a factor of 2 of 1 */
    double s = f / (m + 1.0);
    double z = s * s;
    double p = 1.0 / 25;
    p = fma(p, z, 1.0 / 23);
    p = fma(p, z, 1.0 / 21);
    p = fma(p, z, 1.0 / 19);
    p = fma(p, z, 1.0 / 17);
    p = fma(p, z, 1.0 / 15);
    p = fma(p, z, 1.0 / 13);
    p = fma(p, z, 1.0 / 11);
    p = fma(p, z, 1.0 / 9);
    p = fma(p, z, 1.0 / 7);
    p = fma(p, z, 1.0 / 5);
    p = fma(p, z, 1.0 / 3);
    /* log(m) = f - (f - 2s) - ... is cancellation-prone; 2 s (1 + z p) is not */
    double log_m = 2.0 * fma(s * z, p, s);
    double de = (double) e;
    return fma(de, SKC_LN2_HI, fma(de, SKC_LN2_LO, log_m));
}

/* log(1 + t) for t >= 0, accurate for small t: log(u) t / (u - 1), u = 1 + t
   rounded (Goldberg's correction of the rounding of 1 + t) */
static inline double skc_log1p(double t)
{
    double u = 1.0 + t;
    if (u == 1.0)
        return t;
    return skc_log(u) * (t / (u - 1.0));
}

#endif
