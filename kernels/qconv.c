/*
 * qconv.c — integer convolution (see qconv.h): im2col with the input zero point subtracted, then an integer
 * product, plus the direct reference.
 *
 * The unfolded matrix holds x - x_zero as int32, zero in the padding, so the product needs no bounds tests
 * and no per-tap correction. Each output row m is a sum of unfolded rows scaled by (w[m, k] - w_zero[m]):
 * the m-k-s loop order streams both matrices and keeps the innermost loop a plain multiply-add over
 * contiguous int32, which compilers vectorise. Sums are kept in uint32 so that overflow wraps (defined)
 * instead of being undefined signed overflow.
 */
#include "kernels/qconv.h"

#include "kernels/quant.h"

/* Elements of work a parallel chunk should have at least, so scheduling stays cheap. */
#define GRAIN_ELEMENTS 32768

/* Row (channel plane xc, tap k) of the unfolded matrix: x - x_zero where tap k lands inside the input, 0 in
 * the padding. */
static void im2col_row_int32(const conv_window *w, const qconv_operands *q, int64_t plane,
                             const int64_t k[CONV_SPATIAL], int32_t *row)
{
    int64_t off_w = k[2] * w->dilation[2] - w->pad[2], lo, hi;
    conv_valid_range(off_w, w->stride[2], w->in[2], w->out[2], &lo, &hi);
    for (int64_t od = 0; od < w->out[0]; od++) {
        int64_t id = od * w->stride[0] - w->pad[0] + k[0] * w->dilation[0];
        for (int64_t oh = 0; oh < w->out[1]; oh++, row += w->out[2]) {
            int64_t ih = oh * w->stride[1] - w->pad[1] + k[1] * w->dilation[1];
            bool inside = id >= 0 && id < w->in[0] && ih >= 0 && ih < w->in[1];
            int64_t src = plane + (id * w->in[1] + ih) * w->in[2] + off_w;
            for (int64_t ow = 0; ow < w->out[2]; ow++)
                row[ow] = inside && ow >= lo && ow < hi
                              ? quant_load(q->x, q->x_dtype, src + ow * w->stride[2]) - q->x_zero
                              : 0;
        }
    }
}

/* What the parallel loops of one (image, group) share. */
typedef struct qconv_task {
    const conv_shape *s;
    const qconv_operands *q;
    int64_t x_plane0; /* element offset of the group's first input channel */
    int64_t m0;       /* the group's first output channel */
    int32_t *col;
    int32_t *y;       /* the group's first output plane */
} qconv_task;

static void unfold_rows(void *arg, int64_t begin, int64_t end)
{
    const qconv_task *t = arg;
    const conv_window *w = &t->s->win;
    int64_t kvol = conv_volume(w->kernel), in_vol = conv_volume(w->in), out_vol = conv_volume(w->out);
    for (int64_t r = begin; r < end; r++) {
        int64_t k[CONV_SPATIAL];
        conv_split_tap(w, r % kvol, k);
        im2col_row_int32(w, t->q, t->x_plane0 + r / kvol * in_vol, k, t->col + r * out_vol);
    }
}

/* Output channels [begin, end) of the group: y[m, :] = sum over k of (w[m, k] - w_zero[m]) * col[k, :]. */
static void multiply_rows(void *arg, int64_t begin, int64_t end)
{
    const qconv_task *t = arg;
    const qconv_operands *q = t->q;
    int64_t rows = t->s->in_channels / t->s->groups * conv_volume(t->s->win.kernel);
    int64_t out_vol = conv_volume(t->s->win.out);
    for (int64_t m = begin; m < end; m++) {
        int64_t channel = t->m0 + m;
        int32_t w_zero = q->w_zero[q->w_zero_per_channel ? channel : 0];
        uint32_t *y = (uint32_t *)t->y + m * out_vol;
        for (int64_t i = 0; i < out_vol; i++) y[i] = 0;
        for (int64_t r = 0; r < rows; r++) {
            uint32_t weight = (uint32_t)(quant_load(q->w, q->w_dtype, channel * rows + r) - w_zero);
            const uint32_t *col = (const uint32_t *)t->col + r * out_vol;
            for (int64_t i = 0; i < out_vol; i++) y[i] += weight * col[i];
        }
    }
}

static int64_t grain_for(int64_t elements_per_item)
{
    return elements_per_item >= GRAIN_ELEMENTS ? 1 : GRAIN_ELEMENTS / (elements_per_item > 0 ? elements_per_item : 1);
}

size_t qconv_int32_scratch_bytes(const conv_shape *s)
{
    int64_t rows = s->in_channels / s->groups * conv_volume(s->win.kernel);
    return (size_t)(rows * conv_volume(s->win.out)) * sizeof(int32_t);
}

void qconv_int32(const conv_shape *s, const qconv_operands *q, int32_t *y, void *scratch,
                 const parallel_runner *parallel)
{
    int64_t cg = s->in_channels / s->groups, mg = s->out_channels / s->groups;
    int64_t in_vol = conv_volume(s->win.in), out_vol = conv_volume(s->win.out);
    int64_t rows = cg * conv_volume(s->win.kernel);
    for (int64_t n = 0; n < s->batch; n++)
        for (int64_t g = 0; g < s->groups; g++) {
            qconv_task t = {s, q, (n * s->in_channels + g * cg) * in_vol, g * mg, scratch,
                            y + (n * s->out_channels + g * mg) * out_vol};
            parallel_for(parallel, rows, grain_for(out_vol), unfold_rows, &t);
            parallel_for(parallel, mg, grain_for(out_vol * rows), multiply_rows, &t);
        }
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
