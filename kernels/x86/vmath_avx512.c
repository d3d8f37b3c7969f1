/*
 * vmath_avx512.c — the AVX-512 vmath set (see vmath.h): sigmoid and the row softmax sixteen lanes and four
 * vectors at a time, on x86/activation_avx512.h's exponential; exp, tanh and erf are AVX2's.
 *
 * The softmax takes the row's max (NaN anywhere, +inf, or a row of -inf make the whole row NaN, as in the
 * reference), then e^(x - max) with arguments under -86 taken as 0 (exp_bounded_avx512's range; below it
 * e^x < 4.5e-38, which keeps denormals out, for a change under 4.5e-38 / sum), summing the exponentials in
 * float partial sums per lane that are added in double at the end, and scales by the reciprocal of the
 * sum. tests/unit/test_ops_elementwise.c checks every set against softmax in double.
 */
#include <immintrin.h>
#include <math.h>

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

/* The row's max, or NaN when the row holds a NaN. */
static float row_max(const float *in, int64_t n)
{
    __m512 m = _mm512_set1_ps(-INFINITY);
    __mmask16 nan = 0;
    for (int64_t i = 0; i < n; i += LANES) {
        __mmask16 mask = first_lanes(n - i);
        __m512 x = _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), mask, in + i);
        m = _mm512_max_ps(x, m);
        nan |= _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    }
    return nan ? NAN : _mm512_reduce_max_ps(m);
}

static void softmax_f32_avx512(float *out, const float *in, int64_t n)
{
    float top = row_max(in, n);
    if (!(fabsf(top) < INFINITY)) { /* NaN, +inf or a row of -inf: inf - inf makes every value NaN */
        for (int64_t i = 0; i < n; i++) out[i] = NAN;
        return;
    }
    const __m512 max = _mm512_set1_ps(top), floor = _mm512_set1_ps(-86.0f);
    __m512 sums = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += GROUP) {
        __m512 e[ACT_WIDTH];
        __mmask16 keep[ACT_WIDTH], mask[ACT_WIDTH];
        for (int k = 0; k < ACT_WIDTH; k++) {
            int64_t at = i + k * LANES;
            mask[k] = at < n ? first_lanes(n - at) : 0;
            __m512 shifted = _mm512_sub_ps(_mm512_maskz_loadu_ps(mask[k], in + (at < n ? at : i)), max);
            keep[k] = mask[k] & _mm512_cmp_ps_mask(shifted, floor, _CMP_GE_OQ);
            e[k] = _mm512_max_ps(shifted, floor);
        }
        exp_bounded_avx512(e);
        for (int k = 0; k < ACT_WIDTH; k++) {
            int64_t at = i + k * LANES;
            e[k] = _mm512_maskz_mov_ps(keep[k], e[k]);
            _mm512_mask_storeu_ps(out + (at < n ? at : i), mask[k], e[k]);
            sums = _mm512_add_ps(sums, e[k]);
        }
    }
    float lanes[LANES];
    _mm512_storeu_ps(lanes, sums);
    double sum = 0; /* sixteen float partial sums of values in [0, 1], added in double */
    for (int k = 0; k < LANES; k++) sum += lanes[k];
    __m512 scale = _mm512_set1_ps((float)(1.0 / sum));
    for (int64_t i = 0; i < n; i += LANES) {
        __mmask16 mask = first_lanes(n - i);
        _mm512_mask_storeu_ps(out + i, mask, _mm512_mul_ps(_mm512_maskz_loadu_ps(mask, out + i), scale));
    }
}

const vmath_set vmath_avx512 = {"avx512", exp_f32_avx2, sigmoid_f32_avx512, tanh_f32_avx2, erf_f32_avx2,
                                softmax_f32_avx512};
