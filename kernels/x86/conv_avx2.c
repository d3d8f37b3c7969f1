/*
 * conv_avx2.c — the depthwise convolution's inner loop with AVX2 and FMA.
 *
 * Depthwise convolution (kernels/conv.c) builds each output row from the rows of its kernel, one
 * `row[i] += sum_t w[t] * src[i * stride + t * dilation]` per kernel row, so that loop is all the time it
 * takes. Eight outputs are accumulated in a register across all taps and stored once. Strides 1 and 2
 * (nearly every depthwise layer) are vectorised; stride 2 loads sixteen inputs and keeps the even ones. Other
 * strides, and the tails, run the plain loop. conv_row_taps in conv.c is the reference.
 */
#include <immintrin.h>

#include "kernels/conv.h"

/* src[0], src[2], ..., src[14] */
static __m256 load_even(const float *src)
{
    __m256 lo = _mm256_loadu_ps(src), hi = _mm256_loadu_ps(src + 8);
    /* (l0 l2 h0 h2 | l4 l6 h4 h6), then the 64-bit pairs reordered to l0 l2 l4 l6 h0 h2 h4 h6 */
    __m256 even = _mm256_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0));
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(even), _MM_SHUFFLE(3, 1, 2, 0)));
}

/* 32 outputs at stride 1: four accumulators hide the FMA latency a single one would wait on. */
static void taps32_stride1(float *row, const float *src, const float *w, int64_t taps, int64_t dilation)
{
    __m256 a0 = _mm256_loadu_ps(row), a1 = _mm256_loadu_ps(row + 8), a2 = _mm256_loadu_ps(row + 16),
           a3 = _mm256_loadu_ps(row + 24);
    for (int64_t t = 0; t < taps; t++) {
        __m256 wt = _mm256_set1_ps(w[t]);
        const float *p = src + t * dilation;
        a0 = _mm256_fmadd_ps(wt, _mm256_loadu_ps(p), a0);
        a1 = _mm256_fmadd_ps(wt, _mm256_loadu_ps(p + 8), a1);
        a2 = _mm256_fmadd_ps(wt, _mm256_loadu_ps(p + 16), a2);
        a3 = _mm256_fmadd_ps(wt, _mm256_loadu_ps(p + 24), a3);
    }
    _mm256_storeu_ps(row, a0), _mm256_storeu_ps(row + 8, a1), _mm256_storeu_ps(row + 16, a2), _mm256_storeu_ps(row + 24, a3);
}

/* 16 outputs at stride 2. */
static void taps16_stride2(float *row, const float *src, const float *w, int64_t taps, int64_t dilation)
{
    __m256 a0 = _mm256_loadu_ps(row), a1 = _mm256_loadu_ps(row + 8);
    for (int64_t t = 0; t < taps; t++) {
        __m256 wt = _mm256_set1_ps(w[t]);
        const float *p = src + t * dilation;
        a0 = _mm256_fmadd_ps(wt, load_even(p), a0);
        a1 = _mm256_fmadd_ps(wt, load_even(p + 16), a1);
    }
    _mm256_storeu_ps(row, a0), _mm256_storeu_ps(row + 8, a1);
}

void conv_row_taps_avx2(float *row, const float *src, int64_t n, int64_t stride, const float *w, int64_t taps,
                        int64_t dilation)
{
    int64_t i = 0;
    if (stride == 1) {
        for (; i + 32 <= n; i += 32) taps32_stride1(row + i, src + i, w, taps, dilation);
        for (; i + 8 <= n; i += 8) {
            __m256 acc = _mm256_loadu_ps(row + i);
            for (int64_t t = 0; t < taps; t++)
                acc = _mm256_fmadd_ps(_mm256_set1_ps(w[t]), _mm256_loadu_ps(src + i + t * dilation), acc);
            _mm256_storeu_ps(row + i, acc);
        }
    } else if (stride == 2) {
        /* load_even reaches 15 floats past its start: the last full step must leave an output over, as the
         * row only needs src[2(n-1) + t*dilation] */
        for (; i + 16 < n; i += 16) taps16_stride2(row + i, src + 2 * i, w, taps, dilation);
        for (; i + 8 < n; i += 8) {
            __m256 acc = _mm256_loadu_ps(row + i);
            for (int64_t t = 0; t < taps; t++)
                acc = _mm256_fmadd_ps(_mm256_set1_ps(w[t]), load_even(src + 2 * i + t * dilation), acc);
            _mm256_storeu_ps(row + i, acc);
        }
    }
    for (; i < n; i++) {
        float sum = row[i];
        for (int64_t t = 0; t < taps; t++) sum += w[t] * src[i * stride + t * dilation];
        row[i] = sum;
    }
}
