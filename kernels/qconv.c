/*
 * qconv.c — integer convolution (see qconv.h): im2col with the input zero point subtracted, then an integer
 * product, plus the direct reference.
 *
 * The unfolded matrix holds x - x_zero as int16 (it lies in [-255, 255]), zero in the padding, so the
 * product needs no bounds tests and no per-tap correction. Each output row m is a sum of unfolded rows
 * scaled by (w[m, k] - w_zero[m]), the weights shifted once per call. The product runs in blocks of a few
 * channels by a few hundred positions, whose sums stay in L1 while the unfolded rows stream past once per
 * block; qconv_block is the portable block (a widening int16 multiply-add that compilers vectorise) and
 * kernels/x86/qconv_avx2.c the AVX2 one. Sums are kept in uint32 so that overflow wraps (defined) instead
 * of being undefined signed overflow.
 */
#include "kernels/qconv.h"

#include "core/mem.h"
#include "core/platform/platform.h"
#include "kernels/quant.h"

/* Elements of work a parallel chunk should have at least, so scheduling stays cheap. */
#define GRAIN_ELEMENTS 32768

/* dst[i] = x[start + i*stride] - zero for i < n, with the dtype test outside the loop. */
static void gather_shifted(int16_t *dst, const qconv_operands *q, int64_t start, int64_t n, int64_t stride)
{
    if (q->x_dtype == KILN_INT8) {
        const int8_t *x = (const int8_t *)q->x + start;
        for (int64_t i = 0; i < n; i++) dst[i] = (int16_t)(x[i * stride] - q->x_zero);
    } else {
        const uint8_t *x = (const uint8_t *)q->x + start;
        for (int64_t i = 0; i < n; i++) dst[i] = (int16_t)(x[i * stride] - q->x_zero);
    }
}

static void zero_int16s(int16_t *p, int64_t n)
{
    for (int64_t i = 0; i < n; i++) p[i] = 0;
}

/* Row (channel plane at element `plane`, tap k) of the unfolded matrix: x - x_zero where tap k lands inside
 * the input, 0 in the padding. */
static void im2col_row_int16(const conv_window *w, const qconv_operands *q, int64_t plane,
                             const int64_t k[CONV_SPATIAL], int16_t *row)
{
    int64_t off_w = k[2] * w->dilation[2] - w->pad[2], lo, hi;
    conv_valid_range(off_w, w->stride[2], w->in[2], w->out[2], &lo, &hi);
    for (int64_t od = 0; od < w->out[0]; od++) {
        int64_t id = od * w->stride[0] - w->pad[0] + k[0] * w->dilation[0];
        for (int64_t oh = 0; oh < w->out[1]; oh++, row += w->out[2]) {
            int64_t ih = oh * w->stride[1] - w->pad[1] + k[1] * w->dilation[1];
            if (id < 0 || id >= w->in[0] || ih < 0 || ih >= w->in[1]) {
                zero_int16s(row, w->out[2]);
                continue;
            }
            int64_t src = plane + (id * w->in[1] + ih) * w->in[2] + off_w;
            zero_int16s(row, lo);
            if (hi > lo) gather_shifted(row + lo, q, src + lo * w->stride[2], hi - lo, w->stride[2]);
            zero_int16s(row + hi, w->out[2] - hi);
        }
    }
}

/* What the parallel loops of one (image, group) share. */
typedef struct qconv_task {
    const conv_shape *s;
    const qconv_operands *q;
    qconv_block_fn block;
    int64_t x_plane0;       /* element offset of the group's first input channel */
    const int16_t *weights; /* the group's shifted weights, (M/groups) x rows */
    int16_t *col;
    int32_t *y;             /* the group's first output plane */
} qconv_task;

static void unfold_rows(void *arg, int64_t begin, int64_t end)
{
    const qconv_task *t = arg;
    const conv_window *w = &t->s->win;
    int64_t kvol = conv_volume(w->kernel), in_vol = conv_volume(w->in), out_vol = conv_volume(w->out);
    for (int64_t r = begin; r < end; r++) {
        int64_t k[CONV_SPATIAL];
        conv_split_tap(w, r % kvol, k);
        im2col_row_int16(w, t->q, t->x_plane0 + r / kvol * in_vol, k, t->col + r * out_vol);
    }
}

/* Output positions a block covers: its sums stay in L1 while every unfolded row streams by once. */
#define BLOCK_COLS 256

void qconv_block(const int16_t *w, int64_t mb, const int16_t *col, int64_t ldc, int64_t rows, int64_t n,
                 int32_t *y, int64_t ldy)
{
    for (int64_t j = 0; j < mb; j++) {
        uint32_t *sum = (uint32_t *)(y + j * ldy);
        for (int64_t i = 0; i < n; i++) sum[i] = 0;
        for (int64_t r = 0; r < rows; r++) {
            int32_t weight = w[j * rows + r];
            const int16_t *c = col + r * ldc;
            for (int64_t i = 0; i < n; i++) sum[i] += (uint32_t)(weight * c[i]);
        }
    }
}

/* Blocks [begin, end) of the group's product: block b covers channels (b / col_blocks) * QCONV_BLOCK_ROWS...
 * and positions (b % col_blocks) * BLOCK_COLS... */
static void multiply_blocks(void *arg, int64_t begin, int64_t end)
{
    const qconv_task *t = arg;
    int64_t mg = t->s->out_channels / t->s->groups, out_vol = conv_volume(t->s->win.out);
    int64_t rows = t->s->in_channels / t->s->groups * conv_volume(t->s->win.kernel);
    int64_t col_blocks = (out_vol + BLOCK_COLS - 1) / BLOCK_COLS;
    for (int64_t b = begin; b < end; b++) {
        int64_t m0 = b / col_blocks * QCONV_BLOCK_ROWS, s0 = b % col_blocks * BLOCK_COLS;
        int64_t mb = mg - m0 < QCONV_BLOCK_ROWS ? mg - m0 : QCONV_BLOCK_ROWS;
        int64_t n = out_vol - s0 < BLOCK_COLS ? out_vol - s0 : BLOCK_COLS;
        t->block(t->weights + m0 * rows, mb, t->col + s0, out_vol, rows, n, t->y + m0 * out_vol + s0, out_vol);
    }
}

/* Scratch: the unfolded matrix of one (image, group), then every output channel's shifted weights. */
static size_t col_bytes(const conv_shape *s)
{
    int64_t rows = s->in_channels / s->groups * conv_volume(s->win.kernel);
    return mem_align_up((size_t)(rows * conv_volume(s->win.out)) * sizeof(int16_t), KILN_ALIGNMENT);
}

size_t qconv_int32_scratch_bytes(const conv_shape *s)
{
    int64_t rows = s->in_channels / s->groups * conv_volume(s->win.kernel);
    return col_bytes(s) + (size_t)(s->out_channels * rows) * sizeof(int16_t);
}

/* weights[m * rows + r] = w[m, r] - w_zero[m]: in [-255, 255] for any int8 or uint8 pair. */
static void shift_weights(const conv_shape *s, const qconv_operands *q, int16_t *weights)
{
    int64_t rows = s->in_channels / s->groups * conv_volume(s->win.kernel);
    for (int64_t m = 0; m < s->out_channels; m++) {
        int32_t zero = q->w_zero[q->w_zero_per_channel ? m : 0];
        for (int64_t r = 0; r < rows; r++)
            weights[m * rows + r] = (int16_t)(quant_load(q->w, q->w_dtype, m * rows + r) - zero);
    }
}

static qconv_block_fn fastest_block(void)
{
#if defined(KILN_HAVE_X86_KERNELS)
    if (platform_cpu_features()->avx2_fma) return qconv_block_avx2;
#endif
    return qconv_block;
}

void qconv_int32_with(qconv_block_fn block, const conv_shape *s, const qconv_operands *q, int32_t *y,
                      void *scratch, const parallel_runner *parallel)
{
    int64_t cg = s->in_channels / s->groups, mg = s->out_channels / s->groups;
    int64_t in_vol = conv_volume(s->win.in), out_vol = conv_volume(s->win.out);
    int64_t rows = cg * conv_volume(s->win.kernel);
    int16_t *weights = (int16_t *)((char *)scratch + col_bytes(s));
    shift_weights(s, q, weights);
    int64_t blocks = (mg + QCONV_BLOCK_ROWS - 1) / QCONV_BLOCK_ROWS * ((out_vol + BLOCK_COLS - 1) / BLOCK_COLS);
    for (int64_t n = 0; n < s->batch; n++)
        for (int64_t g = 0; g < s->groups; g++) {
            qconv_task t = {s, q, block, (n * s->in_channels + g * cg) * in_vol, weights + g * mg * rows, scratch,
                            y + (n * s->out_channels + g * mg) * out_vol};
            parallel_for(parallel, rows, parallel_grain(out_vol, GRAIN_ELEMENTS), unfold_rows, &t);
            int64_t block_work = QCONV_BLOCK_ROWS * BLOCK_COLS * rows;
            parallel_for(parallel, blocks, parallel_grain(block_work, GRAIN_ELEMENTS), multiply_blocks, &t);
        }
}

void qconv_int32(const conv_shape *s, const qconv_operands *q, int32_t *y, void *scratch,
                 const parallel_runner *parallel)
{
    qconv_int32_with(fastest_block(), s, q, y, scratch, parallel);
}

/* Input position of tap k at output position o along dim d, or -1 when it falls into the padding. */
static int64_t tap_source(const conv_window *w, int d, int64_t o, int64_t k)
{
    int64_t i = o * w->stride[d] - w->pad[d] + k * w->dilation[d];
    return i >= 0 && i < w->in[d] ? i : -1;
}

/* One output element y[n, m, o], summed in int64 and wrapped to int32 at the end (the same value modulo
 * 2^32 as the fast path's wrapping sum). */
static int32_t reference_element(const conv_shape *s, const qconv_operands *q, int64_t n, int64_t m,
                                 const int64_t o[CONV_SPATIAL])
{
    const conv_window *win = &s->win;
    int64_t cg = s->in_channels / s->groups, mg = s->out_channels / s->groups, g = m / mg;
    int32_t w_zero = q->w_zero[q->w_zero_per_channel ? m : 0];
    int64_t sum = 0;
    for (int64_t c = 0; c < cg; c++)
        for (int64_t kd = 0; kd < win->kernel[0]; kd++)
            for (int64_t kh = 0; kh < win->kernel[1]; kh++)
                for (int64_t kw = 0; kw < win->kernel[2]; kw++) {
                    int64_t id = tap_source(win, 0, o[0], kd), ih = tap_source(win, 1, o[1], kh),
                            iw = tap_source(win, 2, o[2], kw);
                    if (id < 0 || ih < 0 || iw < 0) continue;
                    int64_t xi = ((n * s->in_channels + g * cg + c) * win->in[0] + id) * win->in[1] * win->in[2] +
                                 ih * win->in[2] + iw;
                    int64_t wi = (((m * cg + c) * win->kernel[0] + kd) * win->kernel[1] + kh) * win->kernel[2] + kw;
                    sum += (int64_t)(quant_load(q->x, q->x_dtype, xi) - q->x_zero) *
                           (quant_load(q->w, q->w_dtype, wi) - w_zero);
                }
    return (int32_t)(uint32_t)(uint64_t)sum;
}

void qconv_int32_reference(const conv_shape *s, const qconv_operands *q, int32_t *y)
{
    const conv_window *win = &s->win;
    for (int64_t n = 0; n < s->batch; n++)
        for (int64_t m = 0; m < s->out_channels; m++)
            for (int64_t od = 0; od < win->out[0]; od++)
                for (int64_t oh = 0; oh < win->out[1]; oh++)
                    for (int64_t ow = 0; ow < win->out[2]; ow++) {
                        int64_t o[CONV_SPATIAL] = {od, oh, ow};
                        *y++ = reference_element(s, q, n, m, o);
                    }
}
