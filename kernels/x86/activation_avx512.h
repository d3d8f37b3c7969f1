/*
 * activation_avx512.h — the fused activations of the GEMM and convolution kernels (gemm_activation) on one
 * vector of sixteen floats, for the AVX-512 files that apply them to results still in registers.
 *
 * Sigmoid is the costly one, and it runs on every output of EfficientNet's convolutions, so each operation
 * counts (the multiplies and FMAs, which share two pipes on the cores measured, set its speed): 1 / (1 + e^-v)
 * with
 *  - e^x = 2^(i/32) e^r, i = round(32 x / ln2), found by adding 1.5 * 2^23 (whose float spacing is 1, so the
 *    sum rounds to an integer and holds i in its low mantissa bits); ln2 / 32 split in two keeps
 *    r = x - i ln2 / 32 exact to |r| <= ln2 / 64;
 *  - 2^(i/32) = 2^(i >> 5) * 2^((i & 31) / 32): the second factor from a 32-entry table (one two-vector
 *    permute), the first added into its exponent field; the table holds halves, so that 2^(i >> 5) up to
 *    2^128 stays a normal float, and e^r's polynomial (Taylor to r^3, the next term under 6e-10) is doubled;
 *  - 1 + e^x in the same FMA that applies the scale, and the reciprocal by VRCP14PS and one Newton step
 *    instead of a division (within an ulp or two).
 * x = -v is clamped to [-86, 88.72], so every scale is a normal float and e^x finite. Below
 * v = -ln(FLT_MAX) the plain definition's e^-v overflows and its result is exactly 0, which is restored.
 * NaN propagates through every step (the clamp keeps it, as min/max return their second operand when either
 * is NaN). Measured against the plain definitions: within 3 ulp (tests/unit/test_vmath_activation.c); per
 * sixteen floats in a loop, 3.5 ns for sigmoid (4.1 ns with a degree-6 polynomial on |r| <= ln2 / 2).
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

/* 2^(j/32) / 2 for j = 0 .. 31, rounded to float: the table e^x's reduction looks up (two vectors). */
static _Alignas(64) const float exp_table_avx512[32] = {
    0x1p-1f, 0x1.059b0ep-1f, 0x1.0b5586p-1f, 0x1.11301ep-1f,
    0x1.172b84p-1f, 0x1.1d4874p-1f, 0x1.2387a6p-1f, 0x1.29e9ep-1f,
    0x1.306fep-1f, 0x1.371a74p-1f, 0x1.3dea64p-1f, 0x1.44e086p-1f,
    0x1.4bfdaep-1f, 0x1.5342b6p-1f, 0x1.5ab07ep-1f, 0x1.6247ecp-1f,
    0x1.6a09e6p-1f, 0x1.71f75ep-1f, 0x1.7a1148p-1f, 0x1.82589ap-1f,
    0x1.8ace54p-1f, 0x1.93737cp-1f, 0x1.9c4918p-1f, 0x1.a5503cp-1f,
    0x1.ae89fap-1f, 0x1.b7f77p-1f, 0x1.c199bep-1f, 0x1.cb720ep-1f,
    0x1.d5818ep-1f, 0x1.dfc974p-1f, 0x1.ea4afap-1f, 0x1.f50766p-1f,
};

/* x[k] = 1 + e^x[k] for x in [-86, 88.72]; NaN gives NaN. */
static inline __attribute__((always_inline)) void exp_plus_one_avx512(__m512 *x)
{
    const __m512 round = _mm512_set1_ps(12582912.0f); /* 1.5 * 2^23 */
    const __m512 table_lo = _mm512_load_ps(exp_table_avx512), table_hi = _mm512_load_ps(exp_table_avx512 + 16);
    __m512 t[ACT_WIDTH], r[ACT_WIDTH], p[ACT_WIDTH];
#pragma GCC unroll 4
    for (int k = 0; k < ACT_WIDTH; k++) t[k] = _mm512_fmadd_ps(x[k], _mm512_set1_ps(46.1662413f), round); /* 32/ln2 */
#pragma GCC unroll 4
    for (int k = 0; k < ACT_WIDTH; k++) {
        __m512 i = _mm512_sub_ps(t[k], round);
        r[k] = _mm512_fnmadd_ps(i, _mm512_set1_ps(0.693359375f / 32), x[k]);
        r[k] = _mm512_fnmadd_ps(i, _mm512_set1_ps(-2.12194440e-4f / 32), r[k]);
    }
    /* 2 e^r for |r| <= ln2 / 64: Taylor's terms to r^3 (the next is under 6e-10), doubled */
#pragma GCC unroll 4
    for (int k = 0; k < ACT_WIDTH; k++) {
        p[k] = _mm512_fmadd_ps(_mm512_set1_ps(1.0f / 3), r[k], _mm512_set1_ps(1.0f));
        p[k] = _mm512_fmadd_ps(p[k], r[k], _mm512_set1_ps(2.0f));
        p[k] = _mm512_fmadd_ps(p[k], r[k], _mm512_set1_ps(2.0f));
    }
    /* the table entry (low 5 bits of i), times 2^(i >> 5) added into its exponent field */
#pragma GCC unroll 4
    for (int k = 0; k < ACT_WIDTH; k++) {
        __m512i bits = _mm512_castps_si512(t[k]);
        __m512i entry = _mm512_castps_si512(_mm512_permutex2var_ps(table_lo, bits, table_hi));
        __m512 scale = _mm512_castsi512_ps(_mm512_add_epi32(entry, _mm512_slli_epi32(_mm512_srli_epi32(bits, 5), 23)));
        x[k] = _mm512_fmadd_ps(p[k], scale, _mm512_set1_ps(1.0f));
    }
}

/* v[k] = 1 / (1 + e^-v[k]). */
static inline __attribute__((always_inline)) void sigmoid_avx512(__m512 *v)
{
    __m512 one = _mm512_set1_ps(1.0f), d[ACT_WIDTH], r[ACT_WIDTH];
#pragma GCC unroll 4
    for (int k = 0; k < ACT_WIDTH; k++)
        d[k] = _mm512_min_ps(_mm512_set1_ps(88.72f),
                             _mm512_max_ps(_mm512_set1_ps(-86.0f), _mm512_sub_ps(_mm512_setzero_ps(), v[k])));
    exp_plus_one_avx512(d);
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
