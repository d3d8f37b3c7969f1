/*
 * activation_avx512.h — the fused activations of the GEMM and convolution kernels (gemm_activation) on one
 * vector of sixteen floats, for the AVX-512 files that apply them to results still in registers.
 *
 * Sigmoid is the costly one, and it runs on every output of EfficientNet's convolutions, so each operation
 * counts: 1 / (1 + e^-v) with
 *  - e^x = 2^n e^r, n = round(x / ln2), found by adding 1.5 * 2^23 (whose float spacing is 1, so the sum
 *    rounds x / ln2 to an integer and holds n + 126 in its low mantissa bits, from where one shift makes
 *    2^(n-1)); ln2 split in two keeps r = x - n ln2 exact to |r| <= ln2 / 2;
 *  - e^r by a degree-6 polynomial fitted to e^r over that range (relative error 2e-9, about an ulp when
 *    evaluated in float), its coefficients doubled so that 2 e^r * 2^(n-1) needs no extra multiply;
 *  - the reciprocal by VRCP14PS and one Newton step instead of a division (within an ulp or two).
 * x = -v is clamped to [-86, 88.72]: n stays in [-124, 128], so 2^(n-1) is a normal float and e^x finite.
 * Below v = -ln(FLT_MAX) the plain definition's e^-v overflows and its result is exactly 0, which is
 * restored. NaN propagates through every step (the clamp keeps it, as min/max return their second operand
 * when either is NaN). Measured against the plain definitions: within 2.5 ulp (tests/unit/test_vmath_activation.c).
 */
#ifndef KILN_KERNELS_X86_ACTIVATION_AVX512_H
#define KILN_KERNELS_X86_ACTIVATION_AVX512_H

#include <immintrin.h>

#include "kernels/gemm.h"

/* Four vectors at a time: sigmoid is a chain of some twenty dependent operations, and with one vector at a
 * time the core's floating-point scheduler fills with operations waiting on their predecessors (measured:
 * about twice the cycles of four interleaved chains). Each step below runs across the four; the loops are
 * unrolled explicitly, as an array left in memory (which GCC does in some inlining contexts) costs 3x. */
enum { ACT_WIDTH = 4 };

/* e^x for x in [-86, 88.72]; NaN gives NaN. */
static inline __attribute__((always_inline)) void exp_bounded_avx512(__m512 *x)
{
    const __m512 round = _mm512_set1_ps(12582912.0f + 126.0f); /* 1.5 * 2^23, plus the exponent bias - 1 */
    __m512 t[ACT_WIDTH], n[ACT_WIDTH], r[ACT_WIDTH], p[ACT_WIDTH];
    #pragma GCC unroll 4
    for (int k = 0; k < ACT_WIDTH; k++) t[k] = _mm512_fmadd_ps(x[k], _mm512_set1_ps(1.44269504088896341f), round);
    #pragma GCC unroll 4
    for (int k = 0; k < ACT_WIDTH; k++) n[k] = _mm512_sub_ps(t[k], round);
    #pragma GCC unroll 4
    for (int k = 0; k < ACT_WIDTH; k++) r[k] = _mm512_fnmadd_ps(n[k], _mm512_set1_ps(0.693359375f), x[k]);
    #pragma GCC unroll 4
    for (int k = 0; k < ACT_WIDTH; k++) r[k] = _mm512_fnmadd_ps(n[k], _mm512_set1_ps(-2.12194440e-4f), r[k]);
    /* 2 e^r: the fitted coefficients 1, 1, 0.49999994, 0.16666432, 0.041668002, 0.0083741639, 0.0013843643,
     * doubled */
    const float coef[] = {2.7687286e-3f, 1.6748328e-2f, 8.3336003e-2f, 3.3332863e-1f, 9.9999988e-1f, 2.0f, 2.0f};
    #pragma GCC unroll 4
    for (int k = 0; k < ACT_WIDTH; k++) p[k] = _mm512_set1_ps(coef[0]);
    #pragma GCC unroll 6
    for (int c = 1; c < 7; c++)
        #pragma GCC unroll 4
        for (int k = 0; k < ACT_WIDTH; k++) p[k] = _mm512_fmadd_ps(p[k], r[k], _mm512_set1_ps(coef[c]));
    #pragma GCC unroll 4
    for (int k = 0; k < ACT_WIDTH; k++) /* times 2^(n-1) */
        x[k] = _mm512_mul_ps(p[k], _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_castps_si512(t[k]), 23)));
}

/* v[k] = 1 / (1 + e^-v[k]). */
static inline __attribute__((always_inline)) void sigmoid_avx512(__m512 *v)
{
    __m512 one = _mm512_set1_ps(1.0f), d[ACT_WIDTH], r[ACT_WIDTH];
    #pragma GCC unroll 4
    for (int k = 0; k < ACT_WIDTH; k++)
        d[k] = _mm512_min_ps(_mm512_set1_ps(88.72f),
                             _mm512_max_ps(_mm512_set1_ps(-86.0f), _mm512_sub_ps(_mm512_setzero_ps(), v[k])));
    exp_bounded_avx512(d);
    #pragma GCC unroll 4
    for (int k = 0; k < ACT_WIDTH; k++) d[k] = _mm512_add_ps(one, d[k]);
    #pragma GCC unroll 4
    for (int k = 0; k < ACT_WIDTH; k++) r[k] = _mm512_rcp14_ps(d[k]);
    #pragma GCC unroll 4
    for (int k = 0; k < ACT_WIDTH; k++) {
        /* where e^-v overflows float (v < -88.7228), 1 / (1 + e^-v) is 0; NaN lanes compare unordered, kept */
        __mmask16 finite = _mm512_cmp_ps_mask(v[k], _mm512_set1_ps(-88.7228394f), _CMP_NLT_UQ);
        v[k] = _mm512_maskz_fmadd_ps(finite, r[k], _mm512_fnmadd_ps(d[k], r[k], one), r[k]);
    }
}

/* min(max(v, lo), hi); max/min return their second operand when either is NaN, so NaN passes through. */
static inline __m512 clamp_avx512(__m512 v, __m512 lo, __m512 hi) { return _mm512_min_ps(hi, _mm512_max_ps(lo, v)); }

/* v[k] = the activation `act` (a gemm_activation) of v[k] for k < ACT_WIDTH; lo and hi are GEMM_ACT_CLAMP's
 * bounds, or the hard activations' alpha and beta. */
static inline __attribute__((always_inline)) void activate_avx512(__m512 *v, int act, __m512 lo, __m512 hi)
{
    if (act == GEMM_ACT_CLAMP) {
        #pragma GCC unroll 4
        for (int k = 0; k < ACT_WIDTH; k++) v[k] = clamp_avx512(v[k], lo, hi);
        return;
    }
    if (act == GEMM_ACT_HARD_SIGMOID || act == GEMM_ACT_HARD_SWISH) { /* lo, hi: alpha, beta */
        __m512 zero = _mm512_setzero_ps(), one = _mm512_set1_ps(1.0f);
        #pragma GCC unroll 4
        for (int k = 0; k < ACT_WIDTH; k++) {
            __m512 h = clamp_avx512(_mm512_fmadd_ps(v[k], lo, hi), zero, one);
            v[k] = act == GEMM_ACT_HARD_SWISH ? _mm512_mul_ps(v[k], h) : h;
        }
        return;
    }
    if (act != GEMM_ACT_SIGMOID && act != GEMM_ACT_SILU) return;
    __m512 s[ACT_WIDTH];
    #pragma GCC unroll 4
    for (int k = 0; k < ACT_WIDTH; k++) s[k] = v[k];
    sigmoid_avx512(s);
    #pragma GCC unroll 4
    for (int k = 0; k < ACT_WIDTH; k++) v[k] = act == GEMM_ACT_SILU ? _mm512_mul_ps(v[k], s[k]) : s[k];
}

#endif
