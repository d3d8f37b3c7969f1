/*
 * conv_avx512.c — the depthwise convolution of one 2-D channel plane with AVX-512.
 *
 * The portable path (depthwise_plane in conv.c) adds each kernel row into the output row with row_taps and
 * handles the outputs whose window reaches into the padding one by one; at MobileNet's small planes (14 and
 * 7 wide) those edges and the vector tails are most of the work. Here each input row a kernel row needs is
 * first copied into a zero-padded line, so that every output, edge or not, is the same run of taps, and the
 * row's tail is one masked vector. Sixteen outputs are accumulated in a register per kernel row, in an
 * L1-resident row of sums; bias and clamp (a fused Relu or Clip) are applied as the row is stored.
 * Stride 2 loads 32 inputs and keeps the even ones. conv_f32_reference is what the tests compare it with.
 */
#include <immintrin.h>
#include <stdbool.h>
#include <string.h>

#include "kernels/conv.h"

enum { LANES = 16, MAX_LINE = 2048 };

static __mmask16 lane_mask(int64_t count)
{
    return count >= LANES ? (__mmask16)0xffff : (__mmask16)((1u << count) - 1u);
}

/* line[stride*i + t*dilation] for the 16 outputs i from `line`, stride 1 or 2 */
static inline __m512 load_taps(const float *line, int64_t stride)
{
    if (stride == 1) return _mm512_loadu_ps(line);
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    return _mm512_permutex2var_ps(_mm512_loadu_ps(line), even, _mm512_loadu_ps(line + LANES));
}

/* Input row ih (or zeros outside the plane) laid out so that line[j] is input column j - pad. */
static void fill_line(const conv_window *w, const float *x, int64_t ih, int64_t length, float *line)
{
    memset(line, 0, (size_t)length * sizeof *line);
    if (ih < 0 || ih >= w->in[1]) return;
    int64_t start = w->pad[2], count = w->in[2];
    if (start + count > length) count = length - start;
    if (start >= 0 && count > 0) memcpy(line + start, x + ih * w->in[2], (size_t)count * sizeof *line);
}

bool conv_depthwise_plane_avx512(const conv_window *w, const float *x, const float *kernel, float bias,
                                 const conv_extras *extras, float *y)
{
    int64_t stride = w->stride[2], dil = w->dilation[2], kw_n = w->kernel[2], out_w = w->out[2];
    if (out_w > MAX_LINE || kw_n > MAX_LINE || dil > MAX_LINE) return false;
    int64_t chunks = (out_w + LANES - 1) / LANES;
    /* the last chunk's full-width loads reach this far into the line */
    int64_t length = chunks * LANES * stride + (kw_n - 1) * dil + LANES;
    bool planar = w->in[0] == 1 && w->out[0] == 1 && w->kernel[0] == 1 && w->pad[0] == 0;
    if (!planar || (stride != 1 && stride != 2) || w->pad[2] < 0 || length > MAX_LINE)
        return false;
    _Alignas(64) float line[MAX_LINE];
    _Alignas(64) float sums[MAX_LINE];
    __m512 lo = _mm512_set1_ps(extras->clamp ? extras->lo : 0.0f), hi = _mm512_set1_ps(extras->clamp ? extras->hi : 0.0f);
    for (int64_t oh = 0; oh < w->out[1]; oh++) {
        for (int64_t c = 0; c < chunks; c++) _mm512_store_ps(sums + c * LANES, _mm512_set1_ps(bias));
        for (int64_t kh = 0; kh < w->kernel[1]; kh++) {
            int64_t ih = oh * w->stride[1] - w->pad[1] + kh * w->dilation[1];
            if (ih < 0 || ih >= w->in[1]) continue;
            fill_line(w, x, ih, length, line);
            const float *taps = kernel + kh * kw_n;
            for (int64_t c = 0; c < chunks; c++) {
                __m512 acc = _mm512_load_ps(sums + c * LANES);
                const float *base = line + c * LANES * stride;
                for (int64_t t = 0; t < kw_n; t++)
                    acc = _mm512_fmadd_ps(_mm512_set1_ps(taps[t]), load_taps(base + t * dil, stride), acc);
                _mm512_store_ps(sums + c * LANES, acc);
            }
        }
        float *row = y + oh * out_w;
        for (int64_t c = 0; c < chunks; c++) {
            __m512 v = _mm512_load_ps(sums + c * LANES);
            /* max/min return their second operand when either is NaN: NaN passes through, as in Relu */
            if (extras->clamp) v = _mm512_min_ps(hi, _mm512_max_ps(lo, v));
            _mm512_mask_storeu_ps(row + c * LANES, lane_mask(out_w - c * LANES), v);
        }
    }
    return true;
}
