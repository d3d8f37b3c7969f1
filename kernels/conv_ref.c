/*
 * conv_ref.c — reference convolutions: each output element computed on its own by the textbook formula,
 * accumulated in double. Slow and obviously correct; the unit tests hold every fast path in conv.c to it.
 *
 * The transposed convolution is written as a gather (which inputs reach this output?) rather than the
 * scatter the fast path uses, so the two share no index arithmetic and cannot share a mistake.
 */
#include "kernels/conv.h"

/* Input position of tap k at output position o along dim d, or -1 when it falls into the padding. */
static int64_t forward_source(const conv_window *w, int d, int64_t o, int64_t k)
{
    int64_t i = o * w->stride[d] - w->pad[d] + k * w->dilation[d];
    return i >= 0 && i < w->in[d] ? i : -1;
}

/* One output element y[n, m, o] of the forward convolution. */
static float forward_element(const conv_shape *s, const float *x, const float *w, const float *bias, int64_t n,
                             int64_t m, const int64_t o[CONV_SPATIAL])
{
    const conv_window *win = &s->win;
    int64_t cg = s->in_channels / s->groups, mg = s->out_channels / s->groups, g = m / mg;
    double sum = bias ? bias[m] : 0.0;
    for (int64_t c = 0; c < cg; c++) {
        const float *xc = x + (n * s->in_channels + g * cg + c) * conv_volume(win->in);
        const float *wc = w + (m * cg + c) * conv_volume(win->kernel);
        for (int64_t kd = 0; kd < win->kernel[0]; kd++)
            for (int64_t kh = 0; kh < win->kernel[1]; kh++)
                for (int64_t kw = 0; kw < win->kernel[2]; kw++) {
                    int64_t id = forward_source(win, 0, o[0], kd), ih = forward_source(win, 1, o[1], kh),
                            iw = forward_source(win, 2, o[2], kw);
                    if (id < 0 || ih < 0 || iw < 0) continue;
                    double xv = xc[(id * win->in[1] + ih) * win->in[2] + iw];
                    sum += xv * wc[(kd * win->kernel[1] + kh) * win->kernel[2] + kw];
                }
    }
    return (float)sum;
}

void conv_f32_reference(const conv_shape *s, const float *x, const float *w, const float *bias, float *y)
{
    const conv_window *win = &s->win;
    for (int64_t n = 0; n < s->batch; n++)
        for (int64_t m = 0; m < s->out_channels; m++)
            for (int64_t od = 0; od < win->out[0]; od++)
                for (int64_t oh = 0; oh < win->out[1]; oh++)
                    for (int64_t ow = 0; ow < win->out[2]; ow++) {
                        int64_t o[CONV_SPATIAL] = {od, oh, ow};
                        *y++ = forward_element(s, x, w, bias, n, m, o);
                    }
}

/* Input position that tap k scatters to output position o along dim d, or -1 when none does. */
static int64_t transpose_source(const conv_window *w, int d, int64_t o, int64_t k)
{
    int64_t t = o + w->pad[d] - k * w->dilation[d];
    if (t < 0 || t % w->stride[d] != 0) return -1;
    int64_t i = t / w->stride[d];
    return i < w->in[d] ? i : -1;
}

/* One output element y[n, m, o] of the transposed convolution. */
static float transpose_element(const conv_shape *s, const float *x, const float *w, const float *bias, int64_t n,
                               int64_t m, const int64_t o[CONV_SPATIAL])
{
    const conv_window *win = &s->win;
    int64_t cg = s->in_channels / s->groups, mg = s->out_channels / s->groups, g = m / mg;
    double sum = bias ? bias[m] : 0.0;
    for (int64_t c = 0; c < cg; c++) {
        const float *xc = x + (n * s->in_channels + g * cg + c) * conv_volume(win->in);
        const float *wc = w + ((g * cg + c) * mg + m % mg) * conv_volume(win->kernel);
        for (int64_t kd = 0; kd < win->kernel[0]; kd++)
            for (int64_t kh = 0; kh < win->kernel[1]; kh++)
                for (int64_t kw = 0; kw < win->kernel[2]; kw++) {
                    int64_t id = transpose_source(win, 0, o[0], kd), ih = transpose_source(win, 1, o[1], kh),
                            iw = transpose_source(win, 2, o[2], kw);
                    if (id < 0 || ih < 0 || iw < 0) continue;
                    double xv = xc[(id * win->in[1] + ih) * win->in[2] + iw];
                    sum += xv * wc[(kd * win->kernel[1] + kh) * win->kernel[2] + kw];
                }
    }
    return (float)sum;
}

void conv_transpose_f32_reference(const conv_shape *s, const float *x, const float *w, const float *bias,
                                  float *y)
{
    const conv_window *win = &s->win;
    for (int64_t n = 0; n < s->batch; n++)
        for (int64_t m = 0; m < s->out_channels; m++)
            for (int64_t od = 0; od < win->out[0]; od++)
                for (int64_t oh = 0; oh < win->out[1]; oh++)
                    for (int64_t ow = 0; ow < win->out[2]; ow++) {
                        int64_t o[CONV_SPATIAL] = {od, oh, ow};
                        *y++ = transpose_element(s, x, w, bias, n, m, o);
                    }
}
