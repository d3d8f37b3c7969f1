/*
 * gelu.h — GELU in its erf form, y = 0.5 * x * (1 + erf(x / sqrt(2))), over float32 arrays: the kernel of
 * ai.kiln::Gelu (ops/kiln_transformer.c), which graph/fuse_transformer.c fuses exporters' five-node GELU into.
 *
 * gelu_f32_reference is the scalar formula with libm's erf; gelu_f32 runs erf through kernels/vmath.h when
 * the CPU has a set (else it is the reference). The tanh approximation,
 * y = 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3))), has the same pair (gelu_tanh_f32*).
 * tests/unit/test_fuse_transformer.c compares each fast function with its reference.
 */
#ifndef KILN_KERNELS_GELU_H
#define KILN_KERNELS_GELU_H

#include <stdint.h>

/* y[i] = gelu(x[i]) for i < n; y may equal x. */
void gelu_f32_reference(const float *x, float *y, int64_t n);
void gelu_f32(const float *x, float *y, int64_t n);
void gelu_tanh_f32_reference(const float *x, float *y, int64_t n);
void gelu_tanh_f32(const float *x, float *y, int64_t n);

#endif
