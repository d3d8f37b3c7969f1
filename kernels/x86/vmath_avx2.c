/*
 * vmath_avx2.c — exp, sigmoid, tanh and erf over float32 arrays with AVX2 and FMA, eight lanes at a time
 * (see vmath.h; compiled with -mavx2 -mfma and used only when the CPU has both).
 *
 * exp reduces x = n ln2 + r with |r| <= ln2/2 and evaluates e^r with Cephes' degree-6 polynomial; 2^n is
 * applied as two factors 2^(n/2), so results down in the denormals and up to overflow come out as expf's
 * do. sigmoid and tanh are built on it (tanh uses Cephes' odd polynomial near 0, where 1 - 2/(e^2x + 1)
 * would lose relative precision). erf is the rational approximation Eigen and XLA use, exact to float
 * precision once clamped to [-4, 4]. Clamping with min/max would turn NaN into a bound, so every function
 * restores NaN lanes at the end. The last n % 8 elements go through masked loads and stores.
 */
#include <immintrin.h>
#include <math.h>

#include "kernels/vmath.h"

static inline __m256 keep_nan(__m256 result, __m256 x)
{
    return _mm256_blendv_ps(result, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

/* 2^k for integer k in [-126, 127] */
static inline __m256 pow2i(__m256i k)
{
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k, _mm256_set1_epi32(127)), 23));
}

/* e^x = 2^n e^r with n = round(x / ln2) and |r| <= ln2 / 2 (ln2 split in two for exactness): returns e^r
 * (Cephes' degree-6 polynomial) and sets *n. */
static inline __m256 exp_reduced(__m256 x, __m256 *n_out)
{
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    *n_out = n;
    return _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
}

static inline __m256 exp_avx2(__m256 x)
{
    /* beyond these e^x is inf / rounds to 0 anyway; inside them n stays within [-150, 128] */
    __m256 xc = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-104.0f)), _mm256_set1_ps(88.8f));
    __m256 n, p = exp_reduced(xc, &n);
    __m256i ni = _mm256_cvtps_epi32(n);
    __m256i half = _mm256_srai_epi32(ni, 1);
    p = _mm256_mul_ps(_mm256_mul_ps(p, pow2i(half)), pow2i(_mm256_sub_epi32(ni, half)));
    return keep_nan(p, x);
}

static inline __m256 sigmoid_avx2(__m256 x)
{
    __m256 one = _mm256_set1_ps(1.0f);
    __m256 e = exp_avx2(_mm256_sub_ps(_mm256_setzero_ps(), x));
    return _mm256_div_ps(one, _mm256_add_ps(one, e));
}

static inline __m256 tanh_avx2(__m256 x)
{
    __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 ax = _mm256_andnot_ps(sign, x);
    /* |x| < 0.625: x + x^3 P(x^2) */
    __m256 s = _mm256_mul_ps(x, x);
    __m256 p = _mm256_set1_ps(-5.70498872745e-3f);
    p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(2.06390887954e-2f));
    p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(-5.37397155531e-2f));
    p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(1.33314422036e-1f));
    p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(-3.33332819422e-1f));
    __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(p, s), x, x);
    /* otherwise: sign(x) (1 - 2 / (e^2|x| + 1)) */
    __m256 one = _mm256_set1_ps(1.0f), two = _mm256_set1_ps(2.0f);
    __m256 e = exp_avx2(_mm256_mul_ps(two, ax));
    __m256 large = _mm256_sub_ps(one, _mm256_div_ps(two, _mm256_add_ps(e, one)));
    large = _mm256_or_ps(large, _mm256_and_ps(sign, x));
    __m256 is_small = _mm256_cmp_ps(ax, _mm256_set1_ps(0.625f), _CMP_LT_OQ);
    return keep_nan(_mm256_blendv_ps(large, small, is_small), x);
}

static inline __m256 erf_avx2(__m256 x)
{
    __m256 xc = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-4.0f)), _mm256_set1_ps(4.0f));
    __m256 x2 = _mm256_mul_ps(xc, xc);
    __m256 p = _mm256_set1_ps(-2.72614225801306e-10f); /* odd numerator */
    p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(2.77068142495902e-08f));
    p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-2.10102402082508e-06f));
    p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-5.69250639462346e-05f));
    p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-7.34990630326855e-04f));
    p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-2.95459980854025e-03f));
    p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-1.60960333262415e-02f));
    p = _mm256_mul_ps(p, xc);
    __m256 q = _mm256_set1_ps(-1.45660718464996e-05f); /* even denominator */
    q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(-2.13374055278905e-04f));
    q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(-1.68282697438203e-03f));
    q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(-7.37332916720468e-03f));
    q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(-1.42647390514189e-02f));
    return keep_nan(_mm256_div_ps(p, q), x);
}

/* Lanes [0, k) of a masked load or store. */
static inline __m256i first_lanes(int64_t k)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)k), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

#define VMATH_ARRAY_FUNCTION(name, vector_fn)                                                               \
    void name(float *out, const float *in, int64_t n)                                                       \
    {                                                                                                       \
        int64_t i = 0;                                                                                      \
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, vector_fn(_mm256_loadu_ps(in + i)));           \
        if (i < n) {                                                                                        \
            __m256i mask = first_lanes(n - i);                                                              \
            _mm256_maskstore_ps(out + i, mask, vector_fn(_mm256_maskload_ps(in + i, mask)));                \
        }                                                                                                   \
    }

VMATH_ARRAY_FUNCTION(exp_f32_avx2, exp_avx2)
VMATH_ARRAY_FUNCTION(sigmoid_f32_avx2, sigmoid_avx2)
VMATH_ARRAY_FUNCTION(tanh_f32_avx2, tanh_avx2)
VMATH_ARRAY_FUNCTION(erf_f32_avx2, erf_avx2)

/* ---- softmax over a row: max, then exponentials and their sum, then the scaling ---------------------------- */

/* The row's max; NaN when the row holds one (which then makes the whole row NaN, as in the reference). */
static float row_max(const float *in, int64_t n)
{
    __m256 m = _mm256_set1_ps(-INFINITY), nan = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_loadu_ps(in + i);
        m = _mm256_max_ps(x, m);
        nan = _mm256_or_ps(nan, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
    }
    if (i < n) {
        __m256i mask = first_lanes(n - i);
        __m256 x = _mm256_blendv_ps(_mm256_set1_ps(-INFINITY), _mm256_maskload_ps(in + i, mask),
                                    _mm256_castsi256_ps(mask));
        m = _mm256_max_ps(x, m);
        nan = _mm256_or_ps(nan, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
    }
    if (_mm256_movemask_ps(nan)) return NAN;
    float lanes[8], max = -INFINITY;
    _mm256_storeu_ps(lanes, m);
    for (int k = 0; k < 8; k++) max = lanes[k] > max ? lanes[k] : max;
    return max;
}

/* e^x for x in [-87, 0]: exp_avx2's reduction and polynomial, with 2^n applied in one factor (n >= -126
 * keeps it a normal number) and no clamping or NaN handling, which the row's checks make unnecessary. */
static inline __m256 exp_nonpositive(__m256 x)
{
    __m256 n, p = exp_reduced(x, &n);
    return _mm256_mul_ps(p, pow2i(_mm256_cvtps_epi32(n)));
}

/* e^(x - max) for a finite max, with arguments under -87 (x = -inf among them) taken as 0 (see
 * vmath_softmax_fn). */
static inline __m256 softmax_exp(__m256 x, __m256 max)
{
    __m256 shifted = _mm256_sub_ps(x, max), floor = _mm256_set1_ps(-87.0f);
    __m256 e = exp_nonpositive(_mm256_max_ps(shifted, floor));
    return _mm256_andnot_ps(_mm256_cmp_ps(shifted, floor, _CMP_LT_OQ), e);
}

void softmax_f32_avx2(float *out, const float *in, int64_t n)
{
    float row_top = row_max(in, n);
    if (!(fabsf(row_top) < INFINITY)) { /* NaN, +inf or a row of -inf: inf - inf makes every value NaN */
        for (int64_t i = 0; i < n; i++) out[i] = NAN;
        return;
    }
    __m256 max = _mm256_set1_ps(row_top), sums = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = softmax_exp(_mm256_loadu_ps(in + i), max);
        _mm256_storeu_ps(out + i, e);
        sums = _mm256_add_ps(sums, e);
    }
    if (i < n) {
        __m256i mask = first_lanes(n - i);
        __m256 e = _mm256_and_ps(softmax_exp(_mm256_maskload_ps(in + i, mask), max), _mm256_castsi256_ps(mask));
        _mm256_maskstore_ps(out + i, mask, e);
        sums = _mm256_add_ps(sums, e);
    }
    float lanes[8];
    _mm256_storeu_ps(lanes, sums);
    double sum = 0; /* eight float partial sums of values in [0, 1], added in double */
    for (int k = 0; k < 8; k++) sum += lanes[k];
    __m256 scale = _mm256_set1_ps((float)(1.0 / sum));
    for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_loadu_ps(out + i), scale));
    for (; i < n; i++) out[i] *= (float)(1.0 / sum);
}

const vmath_set vmath_avx2 = {"avx2", exp_f32_avx2, sigmoid_f32_avx2, tanh_f32_avx2, erf_f32_avx2, softmax_f32_avx2};
