/*
 * vmath.h — vectorised float32 functions over arrays: exp, sigmoid, tanh and erf, the transcendental inner
 * loops that dominate the elementwise operators' cost (Exp, Sigmoid, Tanh, and Erf inside GELU).
 *
 * The plain C reference for each is the operator's own scalar expression in ops/ (expf, 1 / (1 + expf(-x)),
 * tanhf, erff), which runs wherever no set here applies. The SIMD sets use polynomial approximations accurate
 * to a few float ulp, keep NaN, and give the reference's limits (exp overflows to inf and underflows through
 * denormals to 0; sigmoid, tanh and erf saturate); tests/unit/test_ops_elementwise.c compares them.
 */
#ifndef KILN_KERNELS_VMATH_H
#define KILN_KERNELS_VMATH_H

#include <stdint.h>

/* out[i] = f(in[i]) for i < n; out may equal in. */
typedef void (*vmath_f32_fn)(float *out, const float *in, int64_t n);

/* out = softmax(in) over one contiguous row of n > 0 values (out may equal in): the max is subtracted before
 * exponentiating, and exponentials below 1.7e-38 (arguments under -87) are taken as 0, which keeps denormals
 * — slow on every x86 — out of the row and of whatever reads it, for a change under 1.7e-38 / sum. */
typedef void (*vmath_softmax_fn)(float *out, const float *in, int64_t n);

typedef struct vmath_set {
    const char *name;
    vmath_f32_fn exp, sigmoid, tanh, erf;
    vmath_softmax_fn softmax;
} vmath_set;

/* The fastest set this CPU runs, or NULL when there is none (the operators' C loops then run). */
const vmath_set *vmath_fast_f32(void);

#if defined(KILN_HAVE_X86_KERNELS)
/* The AVX2 set, and the AVX-512 one, which has its own sigmoid (x86/activation_avx512.h's, four vectors in
 * flight) and shares the rest with AVX2. */
extern const vmath_set vmath_avx2;
extern const vmath_set vmath_avx512;
void exp_f32_avx2(float *out, const float *in, int64_t n);
void sigmoid_f32_avx2(float *out, const float *in, int64_t n);
void tanh_f32_avx2(float *out, const float *in, int64_t n);
void erf_f32_avx2(float *out, const float *in, int64_t n);
void softmax_f32_avx2(float *out, const float *in, int64_t n);
#endif

#endif
