/*
 * conv_avx512.c — the depthwise convolution of one 2-D channel plane with AVX-512.
 *
 * The portable path (depthwise_plane in conv.c) adds each kernel row into the output row with row_taps and
 * handles the outputs whose window reaches into the padding one by one; at MobileNet's small planes (14 and
 * 7 wide) those edges and the vector tails are most of the work. Here each input row a kernel row needs is
 * first copied into a zero-padded line, so that every output, edge or not, is the same run of taps, and the
 * row's tail is one masked vector. Sixteen outputs are accumulated in one register over every tap of the
 * kernel, then bias and clamp (a fused Relu or Clip) are applied as they are stored.
 * Stride 2 loads 32 inputs and keeps the even ones. conv_f32_reference is what the tests compare it with.
 */
#include <immintrin.h>
#include <stdbool.h>

#include "kernels/conv.h"

/* Lines longer than MAX_LINE floats or kernels taller than MAX_ROWS go to the portable path. */
enum { LANES = 16, MAX_LINE = 1024, MAX_ROWS = 7 };

static __mmask16 lane_mask(int64_t count)
{
    if (count <= 0) return 0;
    return count >= LANES ? (__mmask16)0xffff : (__mmask16)((1u << count) - 1u);
}

/* line[stride*i + t*dilation] for the 16 outputs i from `line`, stride 1 or 2 */
static inline __m512 load_taps(const float *line, int64_t stride)
{
    if (stride == 1) return _mm512_loadu_ps(line);
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    return _mm512_permutex2var_ps(_mm512_loadu_ps(line), even, _mm512_loadu_ps(line + LANES));
}

/* line[0 .. length) = the input row `src` (in_w floats) placed at column `pad`, zeros around it. Vector
 * moves with masks: these lines are short, and library calls would cost more than the copy. */
static void fill_line(const float *src, int64_t in_w, int64_t pad, int64_t length, float *line)
{
    const __m512 zero = _mm512_setzero_ps();
    int64_t count = in_w < length - pad ? in_w : length - pad;
    for (int64_t j = 0; j < pad; j += LANES) _mm512_mask_storeu_ps(line + j, lane_mask(pad - j), zero);
    for (int64_t j = 0; j < count; j += LANES) {
        __mmask16 m = lane_mask(count - j);
        _mm512_mask_storeu_ps(line + pad + j, m, _mm512_maskz_loadu_ps(m, src + j));
    }
    for (int64_t j = pad + count; j < length; j += LANES) _mm512_mask_storeu_ps(line + j, lane_mask(length - j), zero);
}

bool conv_depthwise_plane_avx512(const conv_window *w, const float *x, const float *kernel, float bias,
                                 const conv_extras *extras, float *y)
{
    int64_t stride = w->stride[2], dil = w->dilation[2], kw_n = w->kernel[2], out_w = w->out[2];
    if (out_w > MAX_LINE || kw_n > MAX_LINE || dil > MAX_LINE || w->kernel[1] > MAX_ROWS) return false;
    int64_t chunks = (out_w + LANES - 1) / LANES;
    /* the last chunk's full-width loads reach this far into the line */
    int64_t length = chunks * LANES * stride + (kw_n - 1) * dil + LANES;
    bool planar = w->in[0] == 1 && w->out[0] == 1 && w->kernel[0] == 1 && w->pad[0] == 0;
    if (!planar || (stride != 1 && stride != 2) || w->pad[2] < 0 || w->pad[2] > MAX_LINE || length > MAX_LINE)
        return false;
    _Alignas(64) float lines[MAX_ROWS][MAX_LINE];
    const float *taps[MAX_ROWS];
    __m512 lo = _mm512_set1_ps(extras->clamp ? extras->lo : 0.0f), hi = _mm512_set1_ps(extras->clamp ? extras->hi : 0.0f);
    for (int64_t oh = 0; oh < w->out[1]; oh++) {
        int rows = 0; /* the kernel rows that fall inside the input, their lines filled */
        for (int64_t kh = 0; kh < w->kernel[1]; kh++) {
            int64_t ih = oh * w->stride[1] - w->pad[1] + kh * w->dilation[1];
            if (ih < 0 || ih >= w->in[1]) continue;
            fill_line(x + ih * w->in[2], w->in[2], w->pad[2], length, lines[rows]);
            taps[rows++] = kernel + kh * kw_n;
        }
        float *row = y + oh * out_w;
        for (int64_t c = 0; c < chunks; c++) {
            __m512 acc = _mm512_set1_ps(bias);
            for (int r = 0; r < rows; r++) {
                const float *base = lines[r] + c * LANES * stride;
                for (int64_t t = 0; t < kw_n; t++)
                    acc = _mm512_fmadd_ps(_mm512_set1_ps(taps[r][t]), load_taps(base + t * dil, stride), acc);
            }
            /* max/min return their second operand when either is NaN: NaN passes through, as in Relu */
            if (extras->clamp) acc = _mm512_min_ps(hi, _mm512_max_ps(lo, acc));
            _mm512_mask_storeu_ps(row + c * LANES, lane_mask(out_w - c * LANES), acc);
        }
    }
    return true;
}
