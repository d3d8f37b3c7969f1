/*
 * conv_avx512.c — the depthwise convolution (and max pooling) of one 2-D channel plane with AVX-512.
 *
 * The portable path (depthwise_plane in conv.c) adds each kernel row into the output row with row_taps and
 * handles the outputs whose window reaches into the padding one by one; at MobileNet's small planes (14 and
 * 7 wide) those edges and the vector tails are most of the work. Here every tap of every output is one lane
 * of a masked load straight from the input row: lanes whose input column falls into the padding are masked
 * off (they read as zero and never touch memory), so edges, tails and the interior are the same code, and
 * nothing is copied. (Copying rows into zero-padded lines first was measured slower: the loads that read
 * the freshly written lines stalled on store forwarding.) Up to four chunks of sixteen outputs, with two
 * accumulators each, are independent FMA chains. Bias and clamp (a fused Relu or Clip) are applied as the
 * outputs are stored. Stride 2 loads 32 inputs and keeps the even ones.
 *
 * conv_gather_row_avx512 is the same masked load serving the im2col panels of the GEMM convolutions.
 *
 * MaxPool's float32 planes (without the Indices output) run through the same loops, taking maxima instead
 * of multiply-adds and reading padding as -inf.
 *
 * A masked load's address may lie before its row (a left padding column): the address is computed as an
 * integer, and the lanes that would read there are masked off, so memory outside the input is never read.
 * conv_f32_reference is what the tests compare this with.
 */
#include <immintrin.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "kernels/conv.h"

/* Kernels taller than MAX_ROWS, rows wider than MAX_WIDTH go to the portable path. */
enum { LANES = 16, MAX_ROWS = 7, GROUP = 4, MAX_WIDTH = 1 << 20 };

/* Lanes [lo, hi) of a 16-lane mask, both clipped to [0, 16]. */
static inline __mmask16 lane_range(int64_t lo, int64_t hi)
{
    lo = lo < 0 ? 0 : lo > LANES ? LANES : lo;
    hi = hi < 0 ? 0 : hi > LANES ? LANES : hi;
    if (hi <= lo) return 0;
    return (__mmask16)(((1u << hi) - 1u) & ~((1u << lo) - 1u));
}

/* Columns [col, col + 16) of an input row, `outside` in lanes outside [0, width). */
static inline __m512 load_columns(const float *row, int64_t col, int64_t width, __m512 outside)
{
    const float *p = (const float *)((uintptr_t)row + (uintptr_t)col * sizeof(float));
    return _mm512_mask_loadu_ps(outside, lane_range(-col, width - col), p);
}

/* The 16 inputs at columns col, col + stride, ... (stride 1 or 2), `outside` outside the row. */
static inline __m512 load_taps(const float *row, int64_t col, int64_t width, int64_t stride, __m512 outside)
{
    if (stride == 1) return load_columns(row, col, width, outside);
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    return _mm512_permutex2var_ps(load_columns(row, col, width, outside), even,
                                  load_columns(row, col + LANES, width, outside));
}

void conv_gather_row_avx512(const float *row, int64_t col, int64_t width, int64_t stride, int64_t count, float *dst)
{
    const __m512 zero = _mm512_setzero_ps();
    for (int64_t i = 0; i < count; i += LANES, col += LANES * stride) {
        __m512 v = row ? load_taps(row, col, width, stride, zero) : zero;
        _mm512_mask_storeu_ps(dst + i, lane_range(0, count - i), v);
    }
}

/* Panel rows k0 .. k0+kc-1 for one run of output columns on output row oh, starting at output column ow:
 * the loop over k is innermost, so that the run's geometry is worked out once, and each row of the panel
 * is one or two masked loads and stores. */
/* Where one kernel column reads along a run: the first input column and, for each 16-column span of input
 * the run's loads cover, which of its lanes lie inside the row. Computed once per run for every kw. */
enum { RUN_TAPS = 8 };
typedef struct run_tap {
    int64_t col;
    __mmask16 inside[4];
} run_tap;

static run_tap make_run_tap(int64_t col, int64_t width)
{
    run_tap t = {.col = col};
    for (int i = 0; i < 4; i++) t.inside[i] = lane_range(-(col + i * LANES), width - (col + i * LANES));
    return t;
}

/* Output lanes [16 v, 16 v + 16) of the run: input spans 2v, 2v+1 at stride 2, span v at stride 1. */
static inline __m512 load_run(const float *row, const run_tap *t, int v, int64_t stride)
{
    const __m512 zero = _mm512_setzero_ps();
    if (stride == 1) return _mm512_mask_loadu_ps(zero, t->inside[v], (const float *)((uintptr_t)row + (uintptr_t)(t->col + v * LANES) * sizeof(float)));
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const float *p = (const float *)((uintptr_t)row + (uintptr_t)(t->col + 2 * v * LANES) * sizeof(float));
    const float *q = (const float *)((uintptr_t)p + LANES * sizeof(float));
    return _mm512_permutex2var_ps(_mm512_mask_loadu_ps(zero, t->inside[2 * v], p), even,
                                  _mm512_mask_loadu_ps(zero, t->inside[2 * v + 1], q));
}

/* Panel rows k0 .. k0+kc-1 for one run of output columns on output row oh, starting at output column ow:
 * the loop over k is innermost, so that the run's geometry is worked out once, and each row of the panel
 * is one or two masked loads and stores. */
static void panel_run_rows(const conv_window *w, const float *x, int64_t k0, int64_t kc, int64_t oh, int64_t ow,
                           int64_t length, int width, float *dst)
{
    const __m512 zero = _mm512_setzero_ps();
    int64_t kvol = w->kernel[1] * w->kernel[2], plane = w->in[1] * w->in[2], stride = w->stride[2];
    int64_t c = k0 / kvol, kh = k0 % kvol / w->kernel[2], kw = k0 % w->kernel[2];
    int64_t ih0 = oh * w->stride[1] - w->pad[1], col0 = ow * stride - w->pad[2];
    __mmask16 m0 = lane_range(0, length), m1 = lane_range(0, length - LANES);
    run_tap taps[RUN_TAPS];
    bool cached = w->kernel[2] <= RUN_TAPS;
    for (int64_t t = 0; cached && t < w->kernel[2]; t++) taps[t] = make_run_tap(col0 + t * w->dilation[2], w->in[2]);
    for (int64_t r = 0; r < kc; r++, dst += width) {
        int64_t ih = ih0 + kh * w->dilation[1];
        if (ih >= 0 && ih < w->in[1]) {
            const float *row = x + c * plane + ih * w->in[2];
            run_tap uncached;
            const run_tap *t = cached ? &taps[kw] : &uncached;
            if (!cached) uncached = make_run_tap(col0 + kw * w->dilation[2], w->in[2]);
            _mm512_mask_storeu_ps(dst, m0, load_run(row, t, 0, stride));
            if (m1) _mm512_mask_storeu_ps(dst + LANES, m1, load_run(row, t, 1, stride));
        } else {
            _mm512_mask_storeu_ps(dst, m0, zero);
            if (m1) _mm512_mask_storeu_ps(dst + LANES, m1, zero);
        }
        if (++kw < w->kernel[2]) continue;
        kw = 0;
        if (++kh < w->kernel[1]) continue;
        kh = 0, c++;
    }
}

bool conv_im2col_panel_avx512(const conv_window *w, const float *x, int64_t k0, int64_t kc, int64_t j0, int count,
                              int width, float *dst)
{
    bool planar = w->in[0] == 1 && w->out[0] == 1 && w->kernel[0] == 1 && w->pad[0] == 0;
    if (!planar || (w->stride[2] != 1 && w->stride[2] != 2) || width > 2 * LANES) return false;
    int64_t ow = j0 % w->out[2], oh = j0 / w->out[2];
    for (int j = 0; j < count; oh++) {
        int64_t length = w->out[2] - ow < count - j ? w->out[2] - ow : count - j;
        panel_run_rows(w, x, k0, kc, oh, ow, length, width, dst + j);
        j += (int)length, ow = 0;
    }
    if (count < width)
        for (int64_t r = 0; r < kc; r++) {
            float *tail = dst + r * width + count;
            _mm512_mask_storeu_ps(tail, lane_range(0, width - count), _mm512_setzero_ps());
            if (width - count > LANES) _mm512_mask_storeu_ps(tail + LANES, lane_range(0, width - count - LANES), _mm512_setzero_ps());
        }
    return true;
}

/* load_taps with the lane masks of columns [col, col + 16) and [col + 16, col + 32) given. */
static inline __m512 load_taps_masked(const float *row, int64_t col, int64_t stride, __mmask16 m0, __mmask16 m1,
                                      __m512 outside)
{
    const float *p = (const float *)((uintptr_t)row + (uintptr_t)col * sizeof(float));
    if (stride == 1) return _mm512_mask_loadu_ps(outside, m0, p);
    const float *q = (const float *)((uintptr_t)p + LANES * sizeof(float));
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    return _mm512_permutex2var_ps(_mm512_mask_loadu_ps(outside, m0, p), even, _mm512_mask_loadu_ps(outside, m1, q));
}

/* One output row's inputs: the input rows inside the plane and their kernel rows. */
typedef struct plane_row {
    const float *rows[MAX_ROWS];
    const float *taps[MAX_ROWS];
    int n_rows;
    int64_t kw_n, stride, dil, pad, in_w;
    float bias;
    bool clamp;
    __m512 lo, hi;
    __m512 outside; /* what a padding column reads as: 0 for convolutions, -inf for max pooling */
} plane_row;

/* The 16 taps at `col` when the whole window is known to lie inside the row: plain loads. */
static inline __m512 load_taps_inside(const float *row, int64_t col, int64_t stride)
{
    if (stride == 1) return _mm512_loadu_ps(row + col);
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    return _mm512_permutex2var_ps(_mm512_loadu_ps(row + col), even, _mm512_loadu_ps(row + col + LANES));
}

/* max(acc, in) where a NaN in either wins (max_ps alone returns its second operand when one is NaN, so a
 * NaN already in acc stays, and a NaN arriving in `in` is put in explicitly). */
static inline __m512 max_keeping_nan(__m512 acc, __m512 in)
{
    __m512 m = _mm512_max_ps(in, acc);
    return _mm512_mask_mov_ps(m, _mm512_cmp_ps_mask(in, in, _CMP_UNORD_Q), in);
}

/* acc combined with tap t of kernel row r for the sixteen outputs whose first input column is col. */
static inline __attribute__((always_inline)) __m512 accumulate(const int64_t stride, const bool inside, const bool max,
                                                               const plane_row *pr, int r, int64_t t, int64_t col,
                                                               __mmask16 m0, __mmask16 m1, __m512 acc)
{
    __m512 in = inside ? load_taps_inside(pr->rows[r], col, stride)
                       : load_taps_masked(pr->rows[r], col, stride, m0, m1, pr->outside);
    return max ? max_keeping_nan(acc, in) : _mm512_fmadd_ps(_mm512_set1_ps(pr->taps[r][t]), in, acc);
}

/* Outputs [c*16, (c+n)*16) of a row, n a constant after inlining: n chunks with two accumulators each (even
 * and odd kernel rows) are independent chains, so the FMAs' latency overlaps instead of adding up. `inside`
 * (also a constant) says every load of the group lies within the row, so no masks are needed; `stride` is
 * the row stride, 1 or 2, made a constant too so that the loads need no test. */
static inline __attribute__((always_inline)) void output_chunks(const int64_t stride, const int n, const bool inside,
                                                               const bool max, const plane_row *pr, int64_t c,
                                                               int64_t out_w, float *out)
{
    __m512 acc[GROUP][2];
    for (int g = 0; g < n; g++)
        acc[g][0] = max ? pr->outside : _mm512_set1_ps(pr->bias), acc[g][1] = max ? pr->outside : _mm512_setzero_ps();
    for (int64_t t = 0; t < pr->kw_n; t++)
        for (int g = 0; g < n; g++) {
            int64_t col = (c + g) * LANES * stride - pr->pad + t * pr->dil;
            /* the lanes inside the row are the same for every kernel row: worked out once here */
            __mmask16 m0 = inside ? 0 : lane_range(-col, pr->in_w - col);
            __mmask16 m1 = inside || stride == 1 ? 0 : lane_range(-col - LANES, pr->in_w - col - LANES);
            /* rows in pairs, so that which accumulator a row feeds is known at compile time */
            int r = 0;
            for (; r + 1 < pr->n_rows; r += 2) {
                acc[g][0] = accumulate(stride, inside, max, pr, r, t, col, m0, m1, acc[g][0]);
                acc[g][1] = accumulate(stride, inside, max, pr, r + 1, t, col, m0, m1, acc[g][1]);
            }
            if (r < pr->n_rows) acc[g][0] = accumulate(stride, inside, max, pr, r, t, col, m0, m1, acc[g][0]);
        }
    for (int g = 0; g < n; g++) {
        __m512 v = max ? max_keeping_nan(acc[g][0], acc[g][1]) : _mm512_add_ps(acc[g][0], acc[g][1]);
        /* max/min return their second operand when either is NaN: NaN passes through, as in Relu */
        if (pr->clamp) v = _mm512_min_ps(pr->hi, _mm512_max_ps(pr->lo, v));
        _mm512_mask_storeu_ps(out + (c + g) * LANES, lane_range(0, out_w - (c + g) * LANES), v);
    }
}

/* output_chunks with stride, n, inside and max made constants, one copy per combination. */
static inline __attribute__((always_inline)) void run_chunks_at(const int64_t stride, int n, bool inside,
                                                               const bool max, const plane_row *pr, int64_t c,
                                                               int64_t out_w, float *out)
{
    if (!inside) output_chunks(stride, 1, false, max, pr, c, out_w, out);
    else if (n == 1) output_chunks(stride, 1, true, max, pr, c, out_w, out);
    else if (n == 2) output_chunks(stride, 2, true, max, pr, c, out_w, out);
    else if (n == 3) output_chunks(stride, 3, true, max, pr, c, out_w, out);
    else output_chunks(stride, 4, true, max, pr, c, out_w, out);
}

static inline __attribute__((always_inline)) void run_chunks(int n, bool inside, const bool max, const plane_row *pr,
                                                            int64_t c, int64_t out_w, float *out)
{
    if (pr->stride == 1) run_chunks_at(1, n, inside, max, pr, c, out_w, out);
    else run_chunks_at(2, n, inside, max, pr, c, out_w, out);
}

static void plane_rows(const conv_window *w, const float *x, const float *kernel, bool max, plane_row *pr, float *y)
{
    int64_t out_w = w->out[2], chunks = (out_w + LANES - 1) / LANES, span = LANES * pr->stride;
    /* chunks [inside_lo, inside_hi) read only inside the row: c*span - pad >= 0 and
     * (c+1)*span - pad + (kw-1)*dil <= in_w */
    int64_t inside_lo = (pr->pad + span - 1) / span;
    int64_t reach = pr->in_w + pr->pad - (pr->kw_n - 1) * pr->dil;
    int64_t inside_hi = reach >= span ? reach / span : 0;
    if (inside_hi > chunks) inside_hi = chunks;
    if (inside_lo > inside_hi) inside_lo = inside_hi;
    for (int64_t oh = 0; oh < w->out[1]; oh++) {
        pr->n_rows = 0;
        for (int64_t kh = 0; kh < w->kernel[1]; kh++) {
            int64_t ih = oh * w->stride[1] - w->pad[1] + kh * w->dilation[1];
            if (ih < 0 || ih >= w->in[1]) continue;
            pr->rows[pr->n_rows] = x + ih * w->in[2];
            pr->taps[pr->n_rows++] = kernel ? kernel + kh * pr->kw_n : NULL;
        }
        float *out = y + oh * out_w;
        /* edge chunks (some load reaches outside the row) one at a time with masks, the interior in groups
         * with plain loads */
        for (int64_t c = 0; c < chunks;) {
            int n = 1;
            bool inside = c >= inside_lo && c < inside_hi;
            if (inside) n = inside_hi - c < GROUP ? (int)(inside_hi - c) : GROUP;
            if (max) run_chunks(n, inside, true, pr, c, out_w, out);
            else run_chunks(n, inside, false, pr, c, out_w, out);
            c += n;
        }
    }
}

/* The window shapes these kernels take: one plane (2-D), strides 1 or 2 along rows, sizes in range. */
static bool plane_supported(const conv_window *w)
{
    bool planar = w->in[0] == 1 && w->out[0] == 1 && w->kernel[0] == 1 && w->pad[0] == 0;
    return planar && (w->stride[2] == 1 || w->stride[2] == 2) && w->kernel[1] <= MAX_ROWS && w->out[2] <= MAX_WIDTH &&
           w->in[2] <= MAX_WIDTH && w->kernel[2] <= MAX_WIDTH && w->dilation[2] <= MAX_WIDTH && w->pad[2] <= MAX_WIDTH;
}

bool conv_depthwise_plane_avx512(const conv_window *w, const float *x, const float *kernel, float bias,
                                 const conv_extras *extras, float *y)
{
    if (!plane_supported(w)) return false;
    plane_row pr = {.kw_n = w->kernel[2], .stride = w->stride[2], .dil = w->dilation[2], .pad = w->pad[2],
                    .in_w = w->in[2], .bias = bias, .clamp = extras->act == GEMM_ACT_CLAMP,
                    .lo = _mm512_set1_ps(extras->act == GEMM_ACT_CLAMP ? extras->lo : 0.0f),
                    .hi = _mm512_set1_ps(extras->act == GEMM_ACT_CLAMP ? extras->hi : 0.0f), .outside = _mm512_setzero_ps()};
    plane_rows(w, x, kernel, false, &pr, y);
    return true;
}

bool conv_max_pool_plane_avx512(const conv_window *w, const float *x, float *y)
{
    if (!plane_supported(w)) return false;
    plane_row pr = {.kw_n = w->kernel[2], .stride = w->stride[2], .dil = w->dilation[2], .pad = w->pad[2],
                    .in_w = w->in[2], .outside = _mm512_set1_ps(-INFINITY)};
    plane_rows(w, x, NULL, true, &pr, y);
    return true;
}
