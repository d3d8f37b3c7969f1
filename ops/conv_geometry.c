/*
 * conv_geometry.c — window attributes and output sizes for Conv, ConvTranspose and the pools (see
 * conv_geometry.h).
 *
 * Sizes follow the ONNX operator specs; where the spec leaves a choice, kiln follows what the ONNX backend
 * tests and onnxruntime expect:
 *   - ceil_mode may add one more output per dim, but never a window that starts in the end padding (the
 *     rule the spec adopted from PyTorch);
 *   - ConvTranspose with output_shape puts the smaller half of the total padding at the start unless auto_pad
 *     is SAME_LOWER, and a negative total (output_shape beyond the natural size) extends the end.
 */
#include "ops/conv_geometry.h"

#include <string.h>

/* Kernel sizes, strides, dilations and pads beyond this are refused: no model needs them, and the bound
 * keeps every product of window arithmetic far from int64 overflow. */
#define WINDOW_ATTR_LIMIT (INT64_C(1) << 24)

/* Reads an int list of at most `capacity` values, each in [lo, hi]. */
static kiln_status read_list(const graph_node *node, const char *name, int capacity, int64_t lo, int64_t hi,
                             int64_t *out, int *count)
{
    int64_t values[2 * KILN_MAX_RANK + 2];
    KILN_TRY(attr_ints(node, name, values, (int)(sizeof values / sizeof values[0]), count));
    if (*count > capacity)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "attribute '%s' has %d values: kiln supports windows of 1 to %d spatial dims",
                         name, *count, CONV_SPATIAL);
    for (int i = 0; i < *count; i++) {
        if (values[i] < lo || values[i] > hi)
            return kiln_fail(KILN_ERR_MALFORMED, "attribute '%s' has value %lld, expected %lld to %lld", name,
                             (long long)values[i], (long long)lo, (long long)hi);
        out[i] = values[i];
    }
    return KILN_OK;
}

static kiln_status read_auto_pad(const graph_node *node, conv_auto_pad *out)
{
    static const char *const names[] = {"NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID", NULL};
    int index;
    KILN_TRY(attr_choice(node, "auto_pad", "NOTSET", names, &index));
    *out = (conv_auto_pad)index;
    return KILN_OK;
}

/* The number of spatial dims the first list given describes, 0 when none is. */
static int listed_dims(const conv_attrs *a)
{
    if (a->n_kernel) return a->n_kernel;
    if (a->n_strides) return a->n_strides;
    if (a->n_dilations) return a->n_dilations;
    if (a->n_output_padding) return a->n_output_padding;
    return a->n_pads / 2;
}

/* The lists given must agree on the number of spatial dims (output_shape may also hold N and C). */
static kiln_status check_lists_agree(const conv_attrs *a)
{
    int n = listed_dims(a);
    if (a->n_pads % 2 != 0) return kiln_fail(KILN_ERR_MALFORMED, "attribute 'pads' has an odd number of values");
    if ((a->n_kernel && a->n_kernel != n) || (a->n_strides && a->n_strides != n) ||
        (a->n_dilations && a->n_dilations != n) || (a->n_output_padding && a->n_output_padding != n) ||
        (a->n_pads && a->n_pads != 2 * n))
        return kiln_fail(KILN_ERR_MALFORMED, "kernel_shape, strides, dilations, pads and output_padding disagree on the "
                                             "number of spatial dims");
    return KILN_OK;
}

kiln_status conv_attrs_read(const graph_node *node, unsigned features, conv_attrs *a)
{
    memset(a, 0, sizeof *a);
    KILN_TRY(read_auto_pad(node, &a->auto_pad));
    KILN_TRY(read_list(node, "kernel_shape", CONV_SPATIAL, 1, WINDOW_ATTR_LIMIT, a->kernel, &a->n_kernel));
    KILN_TRY(read_list(node, "strides", CONV_SPATIAL, 1, WINDOW_ATTR_LIMIT, a->strides, &a->n_strides));
    KILN_TRY(read_list(node, "dilations", CONV_SPATIAL, 1, WINDOW_ATTR_LIMIT, a->dilations, &a->n_dilations));
    KILN_TRY(read_list(node, "pads", 2 * CONV_SPATIAL, 0, WINDOW_ATTR_LIMIT, a->pads, &a->n_pads));
    if (features & CONV_ATTR_CEIL_MODE) {
        int64_t ceil_mode;
        KILN_TRY(attr_int(node, "ceil_mode", 0, &ceil_mode));
        if (ceil_mode != 0 && ceil_mode != 1)
            return kiln_fail(KILN_ERR_MALFORMED, "ceil_mode is %lld, expected 0 or 1", (long long)ceil_mode);
        a->ceil_mode = ceil_mode != 0;
    }
    if (features & CONV_ATTR_OUTPUT_PADDING) {
        KILN_TRY(read_list(node, "output_padding", CONV_SPATIAL, 0, WINDOW_ATTR_LIMIT, a->output_padding,
                           &a->n_output_padding));
        KILN_TRY(read_list(node, "output_shape", CONV_SPATIAL + 2, 0, KILN_MAX_ELEMENTS, a->output_shape,
                           &a->n_output_shape));
    }
    return check_lists_agree(a);
}

static kiln_status check_rank(const conv_attrs *a, int spatial, const int64_t *in, const int64_t *kernel)
{
    if (spatial < 1) return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "the input needs at least one spatial dim after N and C");
    if (spatial > CONV_SPATIAL)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "%d spatial dims: kiln supports windows of 1 to %d", spatial, CONV_SPATIAL);
    int n = listed_dims(a);
    if (n && n != spatial)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "the attributes describe %d spatial dims, the input has %d", n, spatial);
    if (a->n_output_shape && a->n_output_shape != spatial && a->n_output_shape != spatial + 2)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "output_shape has %d values for %d spatial dims", a->n_output_shape,
                         spatial);
    for (int i = 0; i < spatial; i++) {
        /* a tensor with a zero dim may declare any size in its other dims */
        if (in[i] > KILN_MAX_ELEMENTS)
            return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "spatial dim %d of the input (%lld) is too large", i, (long long)in[i]);
        if (kernel[i] < 1 || kernel[i] > WINDOW_ATTR_LIMIT)
            return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "kernel size %lld along spatial dim %d is out of range",
                             (long long)kernel[i], i);
        if (a->n_kernel && a->kernel[i] != kernel[i])
            return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "kernel_shape says %lld along spatial dim %d, the weights have %lld",
                             (long long)a->kernel[i], i, (long long)kernel[i]);
    }
    return KILN_OK;
}

/* A window with no effect in every dim; callers then fill the trailing `spatial` dims. */
static void window_identity(conv_window *w)
{
    for (int d = 0; d < CONV_SPATIAL; d++) {
        w->in[d] = w->out[d] = w->kernel[d] = w->stride[d] = w->dilation[d] = 1;
        w->pad[d] = w->pad_end[d] = 0;
    }
}

static int64_t attr_or_one(const int64_t *values, int count, int i) { return count ? values[i] : 1; }

/* Output size and padding of one forward dim. */
static kiln_status forward_dim(const conv_attrs *a, int spatial, int i, int64_t in, int64_t kernel, int64_t *out,
                               int64_t *begin, int64_t *end)
{
    int64_t stride = attr_or_one(a->strides, a->n_strides, i);
    int64_t extent = (kernel - 1) * attr_or_one(a->dilations, a->n_dilations, i) + 1;
    *begin = *end = 0;
    if (a->auto_pad == CONV_AUTO_PAD_SAME_UPPER || a->auto_pad == CONV_AUTO_PAD_SAME_LOWER) {
        *out = (in + stride - 1) / stride;
        int64_t total = (*out - 1) * stride + extent - in;
        if (total < 0) total = 0;
        *begin = a->auto_pad == CONV_AUTO_PAD_SAME_UPPER ? total / 2 : total - total / 2;
        *end = total - *begin;
        return KILN_OK;
    }
    if (a->auto_pad == CONV_AUTO_PAD_NOTSET && a->n_pads) *begin = a->pads[i], *end = a->pads[spatial + i];
    int64_t span = in + *begin + *end - extent;
    if (span < 0)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "the window (extent %lld) is larger than the padded input (%lld) "
                         "along spatial dim %d", (long long)extent, (long long)(in + *begin + *end), i);
    *out = span / stride + 1;
    /* the extra window of ceil_mode must start inside the input or the start padding */
    if (a->ceil_mode && span % stride != 0 && *out * stride < in + *begin) *out += 1;
    return KILN_OK;
}

kiln_status conv_geometry_forward(const conv_attrs *a, int spatial, const int64_t *in, const int64_t *kernel,
                                  conv_window *w)
{
    KILN_TRY(check_rank(a, spatial, in, kernel));
    window_identity(w);
    for (int i = 0; i < spatial; i++) {
        int d = CONV_SPATIAL - spatial + i;
        KILN_TRY(forward_dim(a, spatial, i, in[i], kernel[i], &w->out[d], &w->pad[d], &w->pad_end[d]));
        w->in[d] = in[i];
        w->kernel[d] = kernel[i];
        w->stride[d] = attr_or_one(a->strides, a->n_strides, i);
        w->dilation[d] = attr_or_one(a->dilations, a->n_dilations, i);
    }
    return KILN_OK;
}

/* Output size and start padding of one transposed dim. */
static kiln_status transpose_dim(const conv_attrs *a, int spatial, int i, int64_t in, int64_t kernel, int64_t *out,
                                 int64_t *begin)
{
    int64_t stride = attr_or_one(a->strides, a->n_strides, i);
    int64_t extent = (kernel - 1) * attr_or_one(a->dilations, a->n_dilations, i) + 1;
    if (in > KILN_MAX_ELEMENTS / stride)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "the output along spatial dim %d would be too large", i);
    int64_t natural = stride * (in - 1) + (a->n_output_padding ? a->output_padding[i] : 0) + extent;
    bool same = a->auto_pad == CONV_AUTO_PAD_SAME_UPPER || a->auto_pad == CONV_AUTO_PAD_SAME_LOWER;
    if (a->n_output_shape || same) {
        *out = a->n_output_shape ? a->output_shape[a->n_output_shape - spatial + i] : in * stride;
        int64_t total = natural - *out; /* C division truncates: a negative total grows the end */
        *begin = a->auto_pad == CONV_AUTO_PAD_SAME_LOWER ? total - total / 2 : total / 2;
        return KILN_OK;
    }
    int64_t end = 0;
    *begin = 0;
    if (a->auto_pad == CONV_AUTO_PAD_NOTSET && a->n_pads) *begin = a->pads[i], end = a->pads[spatial + i];
    *out = natural - *begin - end;
    if (*out < 0)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "pads (%lld, %lld) exceed the output size %lld along spatial dim %d",
                         (long long)*begin, (long long)end, (long long)natural, i);
    return KILN_OK;
}

kiln_status conv_geometry_transpose(const conv_attrs *a, int spatial, const int64_t *in, const int64_t *kernel,
                                    conv_window *w)
{
    KILN_TRY(check_rank(a, spatial, in, kernel));
    window_identity(w);
    for (int i = 0; i < spatial; i++) {
        int d = CONV_SPATIAL - spatial + i;
        KILN_TRY(transpose_dim(a, spatial, i, in[i], kernel[i], &w->out[d], &w->pad[d]));
        w->in[d] = in[i];
        w->kernel[d] = kernel[i];
        w->stride[d] = attr_or_one(a->strides, a->n_strides, i);
        w->dilation[d] = attr_or_one(a->dilations, a->n_dilations, i);
    }
    return KILN_OK;
}

void conv_geometry_global(int64_t volume, conv_window *w)
{
    window_identity(w);
    w->in[CONV_SPATIAL - 1] = w->kernel[CONV_SPATIAL - 1] = volume;
}

void conv_output_dims(const conv_window *w, int spatial, int64_t batch, int64_t channels, int64_t *dims)
{
    dims[0] = batch;
    dims[1] = channels;
    for (int i = 0; i < spatial; i++) dims[2 + i] = w->out[CONV_SPATIAL - spatial + i];
}

/* Channel counts of a forward convolution: w is (M, C/group, k...). */
static kiln_status forward_channels(const kiln_tensor *w, conv_shape *s)
{
    if (w->dims[1] != s->in_channels / s->groups)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "the weights take %lld channels per group, the input has %lld "
                         "channels in %lld groups", (long long)w->dims[1], (long long)s->in_channels, (long long)s->groups);
    s->out_channels = w->dims[0];
    if (s->out_channels % s->groups != 0)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "%lld output channels do not split into %lld groups",
                         (long long)s->out_channels, (long long)s->groups);
    return KILN_OK;
}

/* Channel counts of a transposed convolution: w is (C, M/group, k...). */
static kiln_status transpose_channels(const kiln_tensor *w, conv_shape *s)
{
    if (w->dims[0] != s->in_channels)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "the weights are for %lld input channels, the input has %lld",
                         (long long)w->dims[0], (long long)s->in_channels);
    if (w->dims[1] > KILN_MAX_ELEMENTS / s->groups)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "too many output channels");
    s->out_channels = w->dims[1] * s->groups;
    return KILN_OK;
}

kiln_status conv_describe(const conv_attrs *a, int64_t groups, bool transpose, const kiln_tensor *x,
                          const kiln_tensor *w, conv_shape *s, int *spatial)
{
    if (x->rank < 3) return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "the input has rank %d, expected (N, C, spatial...)", x->rank);
    if (w->rank != x->rank)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "the weights have rank %d, the input %d", w->rank, x->rank);
    *spatial = x->rank - 2;
    s->x_blocked = s->y_blocked = false; /* ONNX's layouts; the caller may say otherwise */
    s->batch = x->dims[0];
    s->in_channels = x->dims[1];
    s->groups = groups;
    if (s->in_channels % s->groups != 0)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "%lld input channels do not split into %lld groups",
                         (long long)s->in_channels, (long long)s->groups);
    KILN_TRY(transpose ? transpose_channels(w, s) : forward_channels(w, s));
    if (transpose) return conv_geometry_transpose(a, *spatial, x->dims + 2, w->dims + 2, &s->win);
    return conv_geometry_forward(a, *spatial, x->dims + 2, w->dims + 2, &s->win);
}
