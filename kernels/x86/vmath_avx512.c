/*
 * vmath_avx512.c — the AVX-512 vmath set (see vmath.h): sigmoid sixteen lanes and four vectors at a time on
 * x86/activation_avx512.h (the fused activations' own code, 3.5 ns per 16 floats against AVX2's 6.5); exp,
 * tanh, erf and the row softmax are AVX2's (an AVX-512 softmax on the same exponential measured no faster
 * on 128-wide attention rows, where the per-row max and sum dominate). tests/unit/test_ops_elementwise.c
 * checks every set against the reference expressions.
 */
#include <immintrin.h>

#include "kernels/vmath.h"
#include "kernels/x86/activation_avx512.h"

enum { LANES = 16, GROUP = ACT_WIDTH * LANES };

static inline __mmask16 first_lanes(int64_t k) { return k >= LANES ? (__mmask16)0xFFFF : (__mmask16)((1u << k) - 1u); }

static void sigmoid_f32_avx512(float *out, const float *in, int64_t n)
{
    for (int64_t i = 0; i < n; i += GROUP) {
        __m512 v[ACT_WIDTH];
        __mmask16 mask[ACT_WIDTH];
        for (int k = 0; k < ACT_WIDTH; k++) {
            int64_t at = i + k * LANES;
            mask[k] = at < n ? first_lanes(n - at) : 0;
            v[k] = _mm512_maskz_loadu_ps(mask[k], in + (at < n ? at : i));
        }
        sigmoid_avx512(v);
        for (int k = 0; k < ACT_WIDTH; k++) {
            int64_t at = i + k * LANES;
            _mm512_mask_storeu_ps(out + (at < n ? at : i), mask[k], v[k]);
        }
    }
}

const vmath_set vmath_avx512 = {"avx512", exp_f32_avx2, sigmoid_f32_avx512, tanh_f32_avx2, erf_f32_avx2,
                                softmax_f32_avx2};
