/*
 * conv_avx512.c — depthwise convolution and max pooling with AVX-512: one 2-D channel plane at a time, and
 * (depthwise) sixteen channels at a time, channel-last.
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
 * conv_depthwise_plane_avx512 now serves only planes whose band (below) would not fit in scratch; depthwise
 * convolutions otherwise run sixteen channels at a time, channel-last (conv_depthwise_rows_avx512, at the end
 * of the file): a band of input rows of sixteen channels is transposed into scratch with zero padding
 * columns, 16 floats per pixel, and every tap of every output is then one aligned load and one FMA against
 * the tap's sixteen filter values, whatever the plane's width, stride (no deinterleaving) or padding. Tiles
 * of up to sixteen outputs get bias and activation in registers and are transposed back into the planes. On
 * MobileNet's and EfficientNet's shapes this ran 2.8x faster than the per-plane kernel, most on the small
 * planes, where a row of 7 or 14 outputs left most of a vector's lanes empty.
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
#include "kernels/x86/activation_avx512.h"

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

/* ---- depthwise convolution, sixteen channels to a vector ------------------------------------------------ */

/* Output rows per band are as many as keep the band's input under DW_BAND_BYTES (in L2 beside the planes
 * being read and written); a shape whose single output row needs more than DW_MAX_BAND_BYTES, or whose
 * filter has more than DW_MAX_TAPS taps, goes to the portable path. */
enum { DW_BAND_BYTES = 128 << 10, DW_MAX_BAND_BYTES = 1 << 20, DW_MAX_TAPS = 1024, VEC_BYTES = LANES * 4 };

/* Columns of a band row: input column iw sits at iw + pad, and the last column any output reads is
 * (out_w - 1) * stride + (kernel_w - 1) * dilation. */
static int64_t dw_band_width(const conv_window *w)
{
    return (w->out[2] - 1) * w->stride[2] + (w->kernel[2] - 1) * w->dilation[2] + 1;
}

/* Input rows that `out_rows` consecutive output rows read. */
static int64_t dw_band_input_rows(const conv_window *w, int64_t out_rows)
{
    return (out_rows - 1) * w->stride[1] + (w->kernel[1] - 1) * w->dilation[1] + 1;
}

static bool dw_supported(const conv_window *w)
{
    bool planar = w->in[0] == 1 && w->out[0] == 1 && w->kernel[0] == 1 && w->pad[0] == 0;
    if (!planar || (w->stride[2] != 1 && w->stride[2] != 2) || w->pad[1] < 0 || w->pad[2] < 0) return false;
    for (int d = 1; d < CONV_SPATIAL; d++)
        if (w->in[d] > MAX_WIDTH || w->out[d] < 1 || w->out[d] > MAX_WIDTH || w->kernel[d] > MAX_WIDTH ||
            w->stride[d] > MAX_WIDTH || w->dilation[d] > MAX_WIDTH || w->pad[d] > MAX_WIDTH)
            return false;
    if (w->kernel[1] * w->kernel[2] > DW_MAX_TAPS) return false;
    /* each factor bounded first, so that the product cannot overflow */
    int64_t rows = dw_band_input_rows(w, 1), width = dw_band_width(w);
    return rows <= MAX_WIDTH && width <= MAX_WIDTH && rows * width * VEC_BYTES <= DW_MAX_BAND_BYTES;
}

int64_t conv_depthwise_avx512_band_rows(const conv_window *w)
{
    if (!dw_supported(w)) return 0;
    int64_t rows_that_fit = DW_BAND_BYTES / (dw_band_width(w) * VEC_BYTES);
    int64_t band = (rows_that_fit - dw_band_input_rows(w, 1)) / w->stride[1] + 1;
    return band < 1 ? 1 : band > w->out[1] ? w->out[1] : band;
}

size_t conv_depthwise_avx512_scratch_bytes(const conv_window *w)
{
    int64_t band = conv_depthwise_avx512_band_rows(w);
    if (band == 0) return 0;
    int64_t vectors = w->kernel[1] * w->kernel[2] + dw_band_input_rows(w, band) * dw_band_width(w) + LANES;
    return (size_t)vectors * VEC_BYTES;
}

/* r[i] lane j <- r[j] lane i: unpacks interleave pairs of rows, then pairs of pairs, then 128-bit lanes are
 * gathered from four rows in two steps. */
static inline __attribute__((always_inline)) void transpose16(__m512 *r)
{
    __m512 t[LANES];
    for (int i = 0; i < LANES; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    /* r[4q + m], 128-bit lane l: rows 4q .. 4q+3 at column 4l + m */
    for (int i = 0; i < LANES; i += 4)
        for (int h = 0; h < 2; h++) {
            __m512d a = _mm512_castps_pd(t[i + h]), b = _mm512_castps_pd(t[i + h + 2]);
            r[i + 2 * h] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
            r[i + 2 * h + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
        }
    for (int i = 0; i < 4; i++) {
        t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
        t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xdd);
        t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
        t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xdd);
    }
    for (int i = 0; i < 8; i++) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
    }
}

/* One band row: input row `row` of `channels` planes (`plane` floats apart) laid out channel-last, 16 floats
 * per column, with the padding columns zero. */
static inline __attribute__((always_inline)) void dw_fill_row_with(const bool all_channels, const float *row,
                                                                   int64_t plane, int channels, const conv_window *w,
                                                                   int64_t width, float *dst)
{
    const __m512 zero = _mm512_setzero_ps();
    int64_t left = w->pad[2] < width ? w->pad[2] : width;
    int64_t inside = width - left < w->in[2] ? width - left : w->in[2];
    for (int64_t col = 0; col < left; col++) _mm512_store_ps(dst + col * LANES, zero);
    for (int64_t iw = 0; iw < inside; iw += LANES) {
        int64_t n = inside - iw < LANES ? inside - iw : LANES;
        __mmask16 mask = lane_range(0, n);
        __m512 v[LANES];
        if (all_channels && n == LANES)
            for (int c = 0; c < LANES; c++) v[c] = _mm512_loadu_ps(row + c * plane + iw);
        else
            for (int c = 0; c < LANES; c++)
                v[c] = all_channels || c < channels ? _mm512_maskz_loadu_ps(mask, row + c * plane + iw) : zero;
        transpose16(v);
        /* all sixteen columns, also those past the row's inside: the right padding is written after them, and
         * the scratch has a spare row of vectors at its end (a store count known at compile time keeps the
         * vectors in registers; a variable one became a memcpy) */
        for (int k = 0; k < LANES; k++) _mm512_store_ps(dst + (left + iw + k) * LANES, v[k]);
    }
    for (int64_t col = left + inside; col < width; col++) _mm512_store_ps(dst + col * LANES, zero);
}

/* dw_fill_row with the common case, all sixteen channels present, as its own copy: its loads need no test. */
static void dw_fill_row(const float *row, int64_t plane, int channels, const conv_window *w, int64_t width,
                        float *dst)
{
    if (channels == LANES) dw_fill_row_with(true, row, plane, channels, w, width, dst);
    else dw_fill_row_with(false, row, plane, channels, w, width, dst);
}

/* The same band row from a channel-blocked input, whose row already holds 16 floats per column: a copy
 * between the padding columns. */
static void dw_fill_row_blocked(const float *row, const conv_window *w, int64_t width, float *dst)
{
    const __m512 zero = _mm512_setzero_ps();
    int64_t left = w->pad[2] < width ? w->pad[2] : width;
    int64_t inside = width - left < w->in[2] ? width - left : w->in[2];
    for (int64_t col = 0; col < left; col++) _mm512_store_ps(dst + col * LANES, zero);
    for (int64_t iw = 0; iw < inside; iw++) _mm512_store_ps(dst + (left + iw) * LANES, _mm512_loadu_ps(row + iw * LANES));
    for (int64_t col = left + inside; col < width; col++) _mm512_store_ps(dst + col * LANES, zero);
}

/* What the tiles of one band share: the filters channel-last (16 floats per tap), strides in floats. */
typedef struct dw_band {
    const float *taps;
    __m512 bias;
    int64_t kernel_h, kernel_w;
    int64_t tap_step;  /* between kernel columns: dilation * 16 */
    int64_t line_step; /* between kernel rows: dilation * band width * 16 */
    int64_t row_step;  /* between output rows: stride * band width * 16 */
} dw_band;

/* acc[r * n + j] = bias + the filter over output j of the tile's row r (rows 1 or 2, n <= 16 / rows);
 * stride, rows and n are constants after inlining, so the accumulators live in registers and each tap is one
 * load of the filter and n * rows FMAs reading the band directly. */
static inline __attribute__((always_inline)) void dw_tile(const int64_t stride, const int rows, const int n,
                                                         const dw_band *b, const float *src, __m512 *acc)
{
    __m512 sum[LANES];
#pragma GCC unroll 16
    for (int j = 0; j < rows * n; j++) sum[j] = b->bias;
    const float *tap = b->taps;
    for (int64_t kh = 0; kh < b->kernel_h; kh++, src += b->line_step) {
        const float *at = src;
        for (int64_t kw = 0; kw < b->kernel_w; kw++, at += b->tap_step, tap += LANES) {
            __m512 weight = _mm512_load_ps(tap);
            for (int r = 0; r < rows; r++)
                for (int j = 0; j < n; j++)
                    sum[r * n + j] = _mm512_fmadd_ps(_mm512_load_ps(at + r * b->row_step + j * stride * LANES), weight,
                                                     sum[r * n + j]);
        }
    }
#pragma GCC unroll 16
    for (int j = 0; j < rows * n; j++) acc[j] = sum[j];
}

/* Where a tile's outputs go: `channels` planes, or a channel-blocked y. */
typedef struct dw_out {
    int channels;
    bool y_blocked;
} dw_out;

/* The activation on the tile's `count` outputs, starting at output position `first`, then back to channel
 * planes: after the transpose acc[c] holds channel c's outputs, stored to y + c * plane + first. A
 * channel-blocked y takes the vectors as they are, one per position. count is a constant after inlining and
 * every index below one too, so that acc stays in registers. */
static inline __attribute__((always_inline)) void dw_store_tile(__m512 *acc, const int count, dw_out out,
                                                               const conv_extras *e, int64_t plane, int64_t first,
                                                               float *y)
{
    __m512 lo = _mm512_set1_ps(e->lo), hi = _mm512_set1_ps(e->hi);
    /* the lanes past the tile, transposed into lanes that are not stored, only need a value */
#pragma GCC unroll 16
    for (int j = count; j < LANES; j++) acc[j] = _mm512_setzero_ps();
#pragma GCC unroll 4
    for (int k = 0; k < count; k += ACT_WIDTH) activate_avx512(acc + k, e->act, lo, hi);
    if (out.y_blocked) {
#pragma GCC unroll 16
        for (int j = 0; j < count; j++) _mm512_storeu_ps(y + (first + j) * LANES, acc[j]);
        return;
    }
    y += first;
    transpose16(acc);
    /* a whole vector per channel stores without a mask (masked stores are several times slower on some cores) */
    __mmask16 mask = lane_range(0, count);
#pragma GCC unroll 16
    for (int c = 0; c < LANES; c++) {
        if (c >= out.channels) break;
        if (count == LANES) _mm512_storeu_ps(y + c * plane, acc[c]);
        else _mm512_mask_storeu_ps(y + c * plane, mask, acc[c]);
    }
}

#define DW_TILE_CASE(stride, rows, n)                                                                        \
    case n: {                                                                                                \
        __m512 acc[LANES];                                                                                   \
        dw_tile(stride, rows, n, b, src, acc);                                                               \
        dw_store_tile(acc, rows * n, out, e, plane, first, y);                                               \
        break;                                                                                               \
    }
#define DW_TILE_CASES_8(stride, rows)                                                                        \
    DW_TILE_CASE(stride, rows, 1) DW_TILE_CASE(stride, rows, 2) DW_TILE_CASE(stride, rows, 3)                \
    DW_TILE_CASE(stride, rows, 4) DW_TILE_CASE(stride, rows, 5) DW_TILE_CASE(stride, rows, 6)                \
    DW_TILE_CASE(stride, rows, 7) DW_TILE_CASE(stride, rows, 8)
#define DW_TILE_CASES_16(stride, rows)                                                                       \
    DW_TILE_CASES_8(stride, rows) DW_TILE_CASE(stride, rows, 9) DW_TILE_CASE(stride, rows, 10)               \
    DW_TILE_CASE(stride, rows, 11) DW_TILE_CASE(stride, rows, 12) DW_TILE_CASE(stride, rows, 13)             \
    DW_TILE_CASE(stride, rows, 14) DW_TILE_CASE(stride, rows, 15) DW_TILE_CASE(stride, rows, 16)

/* dw_tile and dw_store_tile with their constants chosen: one copy per (stride, rows, n), the accumulators
 * kept in registers from the first multiply-add to the store; a function per (stride, rows), so that none
 * grows too large to compile with debugging information. */
#define DW_TILES(name, stride, rows, cases)                                                                   \
    static void name(int n, const dw_band *b, const float *src, dw_out out, const conv_extras *e, int64_t plane, \
                     int64_t first, float *y)                                                                 \
    {                                                                                                         \
        switch (n) { cases(stride, rows) default: break; }                                                    \
    }
DW_TILES(dw_tiles_s1_r1, 1, 1, DW_TILE_CASES_16)
DW_TILES(dw_tiles_s1_r2, 1, 2, DW_TILE_CASES_8)
DW_TILES(dw_tiles_s2_r1, 2, 1, DW_TILE_CASES_16)
DW_TILES(dw_tiles_s2_r2, 2, 2, DW_TILE_CASES_8)

static void dw_tile_any(int64_t stride, int rows, int n, const dw_band *b, const float *src, dw_out out,
                        const conv_extras *e, int64_t plane, int64_t first, float *y)
{
    if (stride == 1 && rows == 1) dw_tiles_s1_r1(n, b, src, out, e, plane, first, y);
    else if (stride == 1) dw_tiles_s1_r2(n, b, src, out, e, plane, first, y);
    else if (rows == 1) dw_tiles_s2_r1(n, b, src, out, e, plane, first, y);
    else dw_tiles_s2_r2(n, b, src, out, e, plane, first, y);
}

/* Output rows [oh0, oh1) from the band holding their input: rows of at most 8 outputs two at a time (both
 * are contiguous in each output plane), longer rows in chunks of 16 and a last one of the rest. */
static void dw_band_outputs(const conv_window *w, const dw_band *b, int channels, const conv_extras *e,
                            int64_t oh0, int64_t oh1, const float *band, bool y_blocked, float *y)
{
    int64_t out_w = w->out[2], plane = conv_volume(w->out), chunks = (out_w + LANES - 1) / LANES;
    dw_out out = {channels, y_blocked};
    for (int64_t oh = oh0; oh < oh1;) {
        const float *src = band + (oh - oh0) * b->row_step;
        if (2 * out_w <= LANES && oh + 1 < oh1) {
            dw_tile_any(w->stride[2], 2, (int)out_w, b, src, out, e, plane, oh * out_w, y);
            oh += 2;
            continue;
        }
        /* whole vectors first, so that only the last tile of a row stores through masks */
        for (int64_t k = 0; k < chunks; k++) {
            int64_t ow0 = k * LANES, n = out_w - ow0 < LANES ? out_w - ow0 : LANES;
            dw_tile_any(w->stride[2], 1, (int)n, b, src + ow0 * w->stride[2] * LANES, out, e, plane, oh * out_w + ow0,
                        y);
        }
        oh++;
    }
}

void conv_depthwise_rows_avx512(const conv_window *w, int channels, const float *x, const float *kernel,
                                const float *bias, const conv_extras *extras, int64_t oh0, int64_t oh1, float *scratch,
                                bool x_blocked, bool y_blocked, float *y)
{
    int64_t taps = w->kernel[1] * w->kernel[2], width = dw_band_width(w), in_plane = conv_volume(w->in);
    /* the filters channel-last, zero for the channels past `channels` */
    for (int64_t t = 0; t < taps; t++)
        for (int c = 0; c < LANES; c++) scratch[t * LANES + c] = c < channels ? kernel[c * taps + t] : 0.0f;
    float *band = scratch + taps * LANES;
    int64_t ih0 = oh0 * w->stride[1] - w->pad[1], rows = dw_band_input_rows(w, oh1 - oh0);
    for (int64_t r = 0; r < rows; r++) {
        int64_t ih = ih0 + r;
        float *dst = band + r * width * LANES;
        if (ih >= 0 && ih < w->in[1] && x_blocked) dw_fill_row_blocked(x + ih * w->in[2] * LANES, w, width, dst);
        else if (ih >= 0 && ih < w->in[1]) dw_fill_row(x + ih * w->in[2], in_plane, channels, w, width, dst);
        else
            for (int64_t col = 0; col < width; col++) _mm512_store_ps(dst + col * LANES, _mm512_setzero_ps());
    }
    _Alignas(64) float lanes[LANES] = {0};
    for (int c = 0; c < channels && bias; c++) lanes[c] = bias[c];
    dw_band b = {.taps = scratch, .bias = _mm512_load_ps(lanes), .kernel_h = w->kernel[1], .kernel_w = w->kernel[2],
                 .tap_step = w->dilation[2] * LANES, .line_step = w->dilation[1] * width * LANES,
                 .row_step = w->stride[1] * width * LANES};
    dw_band_outputs(w, &b, channels, extras, oh0, oh1, band, y_blocked, y);
}
