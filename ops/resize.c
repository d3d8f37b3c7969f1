/*
 * resize.c — Resize (opsets 10 to 18) and Upsample (7 to 9): sampling a tensor onto a new grid by nearest,
 * N-linear or N-cubic interpolation.
 *
 * Every variant the spec allows reduces to one idea: along each axis, output coordinate j reads a fixed list
 * of input positions ("taps") with fixed weights, and N-D interpolation is the product of the axes' 1-D
 * interpolations. Coordinate transformation modes, nearest rounding modes, the cubic coefficient,
 * exclude_outside, antialiasing and tf_crop_and_resize's extrapolation only change how those per-axis tap
 * tables are filled. So eval first fills the tables in scratch (work proportional to the sum of the output
 * lengths, not their product) and then runs loops that never evaluate a coordinate formula per element:
 *   - nearest: one tap per axis, so the output is a gather of source rows; an output row whose source row
 *     repeats the previous one is copied from it (integer upsampling writes each row once, copies the rest);
 *   - linear/cubic: separable passes, one per resized axis, last axis first as the ONNX reference nests
 *     them, ping-ponging through two scratch buffers; a pass over an outer axis is a weighted sum of whole
 *     rows, which vectorises.
 * Axes whose table is the identity get no pass, so an NCHW resize touches only H and W.
 *
 * Coordinates are computed in double exactly as the ONNX reference generator computes them (including its
 * use of scale * input_length as the resized length), so rounding-mode decisions agree with it; weights are
 * stored as float, whose error is far below the tolerance of float32 data.
 */
#include <math.h>
#include <string.h>

#include "core/dtype.h"
#include "core/mem.h"
#include "ops/copy.h"
#include "ops/op.h"

typedef enum { INTERP_NEAREST, INTERP_LINEAR, INTERP_CUBIC } interp_mode;

typedef enum {
    COORD_HALF_PIXEL,
    COORD_PYTORCH_HALF_PIXEL,
    COORD_ALIGN_CORNERS,
    COORD_ASYMMETRIC,
    COORD_TF_HALF_PIXEL_FOR_NN,
    COORD_TF_CROP_AND_RESIZE
} coord_mode;

/* ROUND_LEGACY is what Upsample and Resize-10 did before nearest_mode existed (as onnxruntime keeps it):
 * ceil when the axis shrinks, floor otherwise. */
typedef enum { ROUND_PREFER_FLOOR, ROUND_PREFER_CEIL, ROUND_FLOOR, ROUND_CEIL, ROUND_LEGACY } nearest_rounding;

typedef enum { ASPECT_STRETCH, ASPECT_NOT_LARGER, ASPECT_NOT_SMALLER } aspect_policy;

typedef struct resize_params {
    interp_mode mode;
    coord_mode coord;
    nearest_rounding rounding;
    aspect_policy aspect;
    float cubic_a, extrapolation;
    bool exclude_outside, antialias;
    int n_axes; /* opset 18 `axes`: which axes scales/sizes/roi describe; 0 = all of them */
    int64_t axes[KILN_MAX_RANK];
    int roi_input, scales_input, sizes_input; /* input positions, -1 when absent */
    int n_attr_scales;                        /* Upsample-7 carries its scales as an attribute */
    float attr_scales[KILN_MAX_RANK];
} resize_params;

/* ---- attributes -------------------------------------------------------------------------------------- */

/* Attribute values, in the order of their enums. */
static const char *const interp_modes[] = {"nearest", "linear", "cubic", NULL};
static const char *const coord_modes[] = {"half_pixel",       "pytorch_half_pixel",   "align_corners",
                                          "asymmetric",       "tf_half_pixel_for_nn", "tf_crop_and_resize",
                                          NULL};
static const char *const nearest_modes[] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil", NULL};
static const char *const aspect_policies[] = {"stretch", "not_larger", "not_smaller", NULL};

/* Input X: any fixed-size dtype for nearest (a copy), float32/float64 for the interpolating modes. */
static kiln_status resize_require_x(op_init_ctx *ctx, interp_mode mode)
{
    KILN_TRY(op_require_dtype(ctx, 0, mode == INTERP_NEAREST ? DTYPES_ALL : DTYPES_FLOAT));
    ctx->output_dtypes[0] = ctx->input_dtypes[0];
    return KILN_OK;
}

static int optional_input(const op_init_ctx *ctx, int i) { return op_has_input(ctx, i) ? i : -1; }

/* Upsample-7/9 and Resize-10: asymmetric coordinates, nearest or linear, legacy nearest rounding. */
static kiln_status upsample_init(op_init_ctx *ctx)
{
    resize_params *p = ctx->params;
    bool scales_attr = ctx->opset < 9 && strcmp(ctx->node->op_type, "Upsample") == 0;
    KILN_TRY(op_require_arity(ctx, scales_attr ? 1 : 2, scales_attr ? 1 : 2, 1, 1));
    int mode = 0;
    KILN_TRY(attr_choice(ctx->node, "mode", "nearest", interp_modes, &mode));
    if (mode == INTERP_CUBIC) return kiln_fail(KILN_ERR_MALFORMED, "mode 'cubic' needs Resize from opset 11");
    p->mode = (interp_mode)mode;
    p->coord = COORD_ASYMMETRIC;
    p->rounding = ROUND_LEGACY;
    p->roi_input = p->sizes_input = -1;
    p->scales_input = scales_attr ? -1 : 1;
    if (scales_attr) {
        KILN_TRY(attr_floats(ctx->node, "scales", p->attr_scales, KILN_MAX_RANK, &p->n_attr_scales));
        if (p->n_attr_scales == 0) return kiln_fail(KILN_ERR_MALFORMED, "attribute 'scales' is required");
    } else {
        KILN_TRY(op_require_dtype(ctx, 1, (const kiln_dtype[]){KILN_FLOAT32, KILN_UNDEFINED}));
        ctx->value_inputs = 1u << 1;
    }
    return resize_require_x(ctx, p->mode);
}

/* Resize-18's additions: a subset of axes, aspect-ratio policies for `sizes`, antialiasing. */
static kiln_status resize18_attrs(op_init_ctx *ctx, resize_params *p)
{
    KILN_TRY(attr_ints(ctx->node, "axes", p->axes, KILN_MAX_RANK, &p->n_axes));
    int aspect = 0;
    KILN_TRY(attr_choice(ctx->node, "keep_aspect_ratio_policy", "stretch", aspect_policies, &aspect));
    p->aspect = (aspect_policy)aspect;
    int64_t antialias;
    KILN_TRY(attr_int(ctx->node, "antialias", 0, &antialias));
    p->antialias = antialias != 0 && p->mode != INTERP_NEAREST; /* the spec ignores it for nearest */
    return KILN_OK;
}

static kiln_status resize_attrs(op_init_ctx *ctx, resize_params *p)
{
    int mode = 0, coord = 0, rounding = 0;
    KILN_TRY(attr_choice(ctx->node, "mode", "nearest", interp_modes, &mode));
    KILN_TRY(attr_choice(ctx->node, "coordinate_transformation_mode", "half_pixel", coord_modes, &coord));
    KILN_TRY(attr_choice(ctx->node, "nearest_mode", "round_prefer_floor", nearest_modes, &rounding));
    p->mode = (interp_mode)mode;
    p->coord = (coord_mode)coord;
    p->rounding = (nearest_rounding)rounding;
    KILN_TRY(attr_float(ctx->node, "cubic_coeff_a", -0.75f, &p->cubic_a));
    KILN_TRY(attr_float(ctx->node, "extrapolation_value", 0.0f, &p->extrapolation));
    int64_t exclude;
    KILN_TRY(attr_int(ctx->node, "exclude_outside", 0, &exclude));
    p->exclude_outside = exclude != 0 && p->mode != INTERP_NEAREST;
    if (!isfinite(p->cubic_a)) return kiln_fail(KILN_ERR_MALFORMED, "cubic_coeff_a must be finite");
    if (ctx->opset >= 18) KILN_TRY(resize18_attrs(ctx, p));
    return KILN_OK;
}

/* Resize-11 and later: X, roi, scales, sizes. Opsets 11-12 declare roi and scales required but let them be
 * empty tensors; exporters also leave them out, which is accepted as the same thing. */
static kiln_status resize_init(op_init_ctx *ctx)
{
    resize_params *p = ctx->params;
    if (ctx->opset < 11) return upsample_init(ctx);
    KILN_TRY(op_require_arity(ctx, 1, 4, 1, 1));
    KILN_TRY(resize_attrs(ctx, p));
    p->roi_input = optional_input(ctx, 1);
    p->scales_input = optional_input(ctx, 2);
    p->sizes_input = optional_input(ctx, 3);
    if (p->scales_input < 0 && p->sizes_input < 0)
        return kiln_fail(KILN_ERR_MALFORMED, "one of the inputs 'scales' and 'sizes' is required");
    if (p->coord == COORD_TF_CROP_AND_RESIZE && p->roi_input < 0)
        return kiln_fail(KILN_ERR_MALFORMED, "coordinate_transformation_mode 'tf_crop_and_resize' needs the 'roi' input");
    if (p->roi_input >= 0) KILN_TRY(op_require_dtype(ctx, 1, (const kiln_dtype[]){KILN_FLOAT16, KILN_FLOAT32, KILN_FLOAT64, KILN_UNDEFINED}));
    if (p->scales_input >= 0) {
        KILN_TRY(op_require_dtype(ctx, 2, (const kiln_dtype[]){KILN_FLOAT32, KILN_UNDEFINED}));
        ctx->value_inputs |= 1u << 2;
    }
    if (p->sizes_input >= 0) {
        KILN_TRY(op_require_dtype(ctx, 3, (const kiln_dtype[]){KILN_INT64, KILN_UNDEFINED}));
        ctx->value_inputs |= 1u << 3;
    }
    return resize_require_x(ctx, p->mode);
}

/* ---- geometry: output lengths, scales and tap counts per axis ----------------------------------------- */

typedef struct resize_axis {
    int64_t in_len, out_len;
    double scale;              /* out/in as the coordinate transformation sees it */
    double roi_start, roi_end; /* tf_crop_and_resize only, read at eval */
    int tap_start, taps;       /* taps sit at offsets tap_start .. tap_start+taps-1 from the left neighbour */
    bool identity;             /* the output equals the input along this axis: no work */
} resize_axis;

typedef struct resize_geometry {
    int rank;
    resize_axis axis[KILN_MAX_RANK];
} resize_geometry;

/* The axes scales/sizes/roi describe, normalised; all axes in order when `axes` is not given. */
static kiln_status resize_axes(const resize_params *p, int rank, int *axes, int *n)
{
    bool seen[KILN_MAX_RANK] = {0};
    *n = p->n_axes ? p->n_axes : rank;
    for (int i = 0; i < *n; i++) {
        if (!p->n_axes) {
            axes[i] = i;
            continue;
        }
        if (!axis_normalize(p->axes[i], rank, &axes[i]) || seen[axes[i]])
            return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "axis %lld is out of range for rank %d or repeated",
                             (long long)p->axes[i], rank);
        seen[axes[i]] = true;
    }
    return KILN_OK;
}

/* Input i when given with at least one element, else NULL (opsets 11-12 pass an empty tensor for "absent"). */
static const kiln_tensor *nonempty_input(const op_ctx *ctx, int i)
{
    if (i < 0 || i >= ctx->n_inputs || !ctx->inputs[i]) return NULL;
    return tensor_numel(ctx->inputs[i]) > 0 ? ctx->inputs[i] : NULL;
}

static kiln_status check_count(const char *what, int64_t count, int expected)
{
    if (count != expected)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "'%s' has %lld values, expected %d", what, (long long)count,
                         expected);
    return KILN_OK;
}

static kiln_status apply_scale(resize_axis *a, double scale)
{
    if (!(scale > 0) || !isfinite(scale))
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "scale %g is not a positive number", scale);
    double out = floor((double)a->in_len * scale);
    if (out > (double)KILN_MAX_ELEMENTS)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "scale %g makes an axis of %lld too long", scale,
                         (long long)a->in_len);
    a->scale = scale;
    a->out_len = (int64_t)out;
    return KILN_OK;
}

static kiln_status read_scales(const op_ctx *ctx, const kiln_tensor *scales, const int *axes, int n,
                               resize_geometry *g)
{
    const resize_params *p = ctx->params;
    if (p->n_attr_scales) {
        KILN_TRY(check_count("scales", p->n_attr_scales, n));
        for (int i = 0; i < n; i++) KILN_TRY(apply_scale(&g->axis[axes[i]], p->attr_scales[i]));
        return KILN_OK;
    }
    KILN_TRY(check_count("scales", tensor_numel(scales), n));
    for (int i = 0; i < n; i++) KILN_TRY(apply_scale(&g->axis[axes[i]], ((const float *)scales->data)[i]));
    return KILN_OK;
}

/* keep_aspect_ratio_policy: one scale for every listed axis, the smallest or largest sizes asks for. */
static void keep_aspect_ratio(aspect_policy policy, const int *axes, int n, resize_geometry *g)
{
    double scale = 0;
    bool any = false;
    for (int i = 0; i < n; i++) {
        const resize_axis *a = &g->axis[axes[i]];
        if (a->in_len == 0) continue;
        if (!any || (policy == ASPECT_NOT_LARGER ? a->scale < scale : a->scale > scale)) scale = a->scale;
        any = true;
    }
    for (int i = 0; i < n && any; i++) {
        resize_axis *a = &g->axis[axes[i]];
        a->scale = scale;
        a->out_len = (int64_t)(scale * (double)a->in_len + 0.5);
    }
}

static kiln_status read_sizes(const op_ctx *ctx, const kiln_tensor *sizes, const int *axes, int n,
                              resize_geometry *g)
{
    const resize_params *p = ctx->params;
    KILN_TRY(check_count("sizes", tensor_numel(sizes), n));
    for (int i = 0; i < n; i++) {
        resize_axis *a = &g->axis[axes[i]];
        int64_t size = ((const int64_t *)sizes->data)[i];
        if (size < 0 || size > KILN_MAX_ELEMENTS)
            return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "size %lld for axis %d is invalid", (long long)size, axes[i]);
        if (a->in_len == 0 && size != 0)
            return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "axis %d is empty and cannot be resized to %lld", axes[i],
                             (long long)size);
        a->out_len = size;
        a->scale = a->in_len ? (double)size / (double)a->in_len : 1.0;
    }
    if (p->aspect != ASPECT_STRETCH) keep_aspect_ratio(p->aspect, axes, n, g);
    return KILN_OK;
}

/* Where the taps of an output coordinate start and how many there are. Interpolation kernels have a
 * half-width of 1 (linear) or 2 (cubic) input samples; antialiasing stretches them by 1/scale when an axis
 * shrinks, as the ONNX reference does. */
static kiln_status plan_taps(const resize_params *p, resize_axis *a)
{
    if (p->mode == INTERP_NEAREST) {
        a->tap_start = 0;
        a->taps = 1;
        return KILN_OK;
    }
    double half_width = p->mode == INTERP_LINEAR ? 1.0 : 2.0;
    double stretch = p->antialias && a->scale < 1.0 ? a->scale : 1.0;
    double start = floor(-half_width / stretch) + 1.0;
    /* with out_len >= 1, 1/scale is at most about twice in_len, so this bound only rejects nonsense */
    if (a->out_len > 0 && -start > 2.0 * (double)a->in_len + 4.0)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "scale %g is too small to antialias", a->scale);
    a->tap_start = a->out_len > 0 ? (int)start : 0;
    a->taps = 2 - 2 * a->tap_start;
    return KILN_OK;
}

/* An axis that keeps its length at scale 1 is the identity (eval may find more identity axes from the
 * tables, never fewer). The formulas map x to exactly x there, except tf_crop_and_resize, whose roi may
 * still crop, and tf_half_pixel_for_nn, which maps x to x+0.5: read literally, ceil-like rounding would
 * shift every unscaled axis (batch, channels) by one; like onnxruntime, kiln leaves such axes alone. */
static bool axis_is_identity(const resize_params *p, const resize_axis *a)
{
    return a->out_len == a->in_len && a->scale == 1.0 && p->coord != COORD_TF_CROP_AND_RESIZE;
}

static kiln_status resize_geometry_init(const op_ctx *ctx, resize_geometry *g)
{
    const resize_params *p = ctx->params;
    const kiln_tensor *x = ctx->inputs[0];
    int axes[KILN_MAX_RANK], n;
    KILN_TRY(resize_axes(p, x->rank, axes, &n));
    g->rank = x->rank;
    for (int d = 0; d < x->rank; d++)
        g->axis[d] = (resize_axis){.in_len = x->dims[d], .out_len = x->dims[d], .scale = 1.0, .roi_end = 1.0};
    const kiln_tensor *scales = nonempty_input(ctx, p->scales_input);
    const kiln_tensor *sizes = nonempty_input(ctx, p->sizes_input);
    if (scales && sizes) return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "only one of 'scales' and 'sizes' may be given");
    if (p->n_attr_scales || scales) KILN_TRY(read_scales(ctx, scales, axes, n, g));
    else if (sizes) KILN_TRY(read_sizes(ctx, sizes, axes, n, g));
    else return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "neither 'scales' nor 'sizes' has values");
    for (int d = 0; d < g->rank; d++) {
        KILN_TRY(plan_taps(p, &g->axis[d]));
        g->axis[d].identity = axis_is_identity(p, &g->axis[d]);
    }
    return KILN_OK;
}

/* tf_crop_and_resize's region of interest: [starts..., ends...] over the listed axes, at eval only. */
static kiln_status read_roi(const op_ctx *ctx, resize_geometry *g)
{
    const resize_params *p = ctx->params;
    const kiln_tensor *roi = nonempty_input(ctx, p->roi_input);
    if (p->coord != COORD_TF_CROP_AND_RESIZE) return KILN_OK;
    int axes[KILN_MAX_RANK], n;
    KILN_TRY(resize_axes(p, g->rank, axes, &n));
    if (!roi) return kiln_fail(KILN_ERR_RUNTIME, "tf_crop_and_resize needs the 'roi' input");
    if (tensor_numel(roi) != 2 * n)
        return kiln_fail(KILN_ERR_RUNTIME, "'roi' has %lld values, expected %d", (long long)tensor_numel(roi), 2 * n);
    for (int i = 0; i < n; i++) {
        g->axis[axes[i]].roi_start = tensor_get_double(roi, i);
        g->axis[axes[i]].roi_end = tensor_get_double(roi, n + i);
    }
    return KILN_OK;
}

/* ---- scratch layout ---------------------------------------------------------------------------------- */

/* Tables for the axes that need work, then the two ping-pong buffers of the separable passes. */
typedef struct resize_tables {
    int64_t *index[KILN_MAX_RANK];  /* out_len*taps input positions, clamped into the axis */
    float *weight[KILN_MAX_RANK];   /* out_len*taps weights (unused for nearest) */
    uint8_t *outside[KILN_MAX_RANK]; /* out_len flags: the output is the extrapolation value */
    void *buffer[2];
} resize_tables;

/* Bump allocation within scratch; with base NULL it only measures. Fails on overflow. */
static bool carve(size_t *used, size_t count, size_t size, uint8_t *base, void **out)
{
    size_t bytes;
    if (!mem_mul_ok(count, size, &bytes) || bytes > SIZE_MAX / 2 - *used) return false;
    if (out) *out = base ? base + *used : NULL;
    *used = mem_align_up(*used + bytes, 64);
    return true;
}

/* Elements of the largest intermediate result of the separable passes. Passes run from the last resized
 * axis to the first, and every result but the final pass's lives in a scratch buffer. */
static int64_t largest_intermediate(const resize_geometry *g)
{
    int64_t dims[KILN_MAX_RANK], largest = 0;
    int passes = 0;
    for (int d = 0; d < g->rank; d++) {
        dims[d] = g->axis[d].in_len;
        passes += !g->axis[d].identity;
    }
    for (int d = g->rank - 1; d >= 0 && passes > 1; d--) {
        if (g->axis[d].identity) continue;
        dims[d] = g->axis[d].out_len;
        passes--;
        int64_t numel = shape_numel(g->rank, dims);
        if (numel > largest) largest = numel;
    }
    return largest;
}

static kiln_status resize_layout(const resize_params *p, const resize_geometry *g, size_t elem_size, uint8_t *base,
                                 resize_tables *t, size_t *bytes)
{
    size_t used = 0;
    bool ok = true;
    memset(t, 0, sizeof *t);
    for (int d = 0; d < g->rank; d++) {
        const resize_axis *a = &g->axis[d];
        if (a->identity) continue;
        size_t entries;
        ok = ok && mem_mul_ok((size_t)a->out_len, (size_t)a->taps, &entries);
        ok = ok && carve(&used, entries, sizeof(int64_t), base, (void **)&t->index[d]);
        if (p->mode != INTERP_NEAREST) ok = ok && carve(&used, entries, sizeof(float), base, (void **)&t->weight[d]);
        ok = ok && carve(&used, (size_t)a->out_len, 1, base, (void **)&t->outside[d]);
    }
    if (p->mode != INTERP_NEAREST) {
        size_t n = (size_t)largest_intermediate(g);
        ok = ok && carve(&used, n, elem_size, base, &t->buffer[0]) && carve(&used, n, elem_size, base, &t->buffer[1]);
    }
    if (!ok) return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "the resize tables would be too large");
    *bytes = used;
    return KILN_OK;
}

static kiln_status resize_shape(op_ctx *ctx)
{
    const resize_params *p = ctx->params;
    resize_geometry g;
    KILN_TRY(resize_geometry_init(ctx, &g));
    int64_t dims[KILN_MAX_RANK];
    for (int d = 0; d < g.rank; d++) dims[d] = g.axis[d].out_len;
    op_set_output_shape(ctx, 0, g.rank, dims);
    resize_tables unused;
    return resize_layout(p, &g, kiln_dtype_size(ctx->inputs[0]->dtype), NULL, &unused, &ctx->scratch_bytes);
}

/* ---- tap tables -------------------------------------------------------------------------------------- */

/* Where output coordinate x samples the input axis (the ONNX formulas, in the reference's arithmetic). */
static double original_coordinate(coord_mode coord, const resize_axis *a, int64_t x_out)
{
    double x = (double)x_out, in = (double)a->in_len, out = a->scale * in;
    switch (coord) {
    case COORD_ALIGN_CORNERS: return out == 1 ? 0.0 : x * (in - 1) / (out - 1);
    case COORD_ASYMMETRIC: return x / a->scale;
    case COORD_TF_HALF_PIXEL_FOR_NN: return (x + 0.5) / a->scale;
    case COORD_TF_CROP_AND_RESIZE: {
        double span = a->roi_end - a->roi_start;
        double offset = a->roi_start * (in - 1);
        return out == 1 ? span * (in - 1) / 2 + offset : x * span * (in - 1) / (out - 1) + offset;
    }
    case COORD_PYTORCH_HALF_PIXEL: return out == 1 ? -0.5 : (x + 0.5) / a->scale - 0.5;
    case COORD_HALF_PIXEL:
    default: return (x + 0.5) / a->scale - 0.5;
    }
}

static int64_t clamp_index(int64_t i, int64_t len) { return i < 0 ? 0 : i >= len ? len - 1 : i; }

/* The interpolation kernel at distance u (in input samples): triangle or Keys' cubic with parameter A,
 * in the ONNX reference's Horner forms. */
static double kernel_weight(interp_mode mode, double A, double u)
{
    u = fabs(u);
    if (mode == INTERP_LINEAR) return u < 1 ? 1 - u : 0;
    if (u <= 1) return ((A + 2) * u - (A + 3)) * u * u + 1;
    if (u < 2) return ((A * u - 5 * A) * u + 8 * A) * u - 4 * A;
    return 0;
}

/* Splits a coordinate into the left neighbour and the fraction in (0, 1] beyond it: an integer coordinate
 * counts as a whole step past its left neighbour, which is how the reference picks its neighbourhoods. */
static int64_t left_neighbour(double x, double *ratio)
{
    double fl = floor(x);
    *ratio = x == fl ? 1.0 : x - fl;
    return (int64_t)(x == fl ? fl - 1 : fl);
}

static int64_t nearest_index(const resize_params *p, const resize_axis *a, double x)
{
    double ratio;
    int64_t left = left_neighbour(x, &ratio);
    bool right;
    switch (p->rounding) {
    case ROUND_PREFER_FLOOR: right = ratio > 0.5; break;
    case ROUND_PREFER_CEIL: right = ratio >= 0.5; break;
    case ROUND_FLOOR: right = ratio == 1.0; break;
    case ROUND_CEIL: right = true; break;
    case ROUND_LEGACY:
    default: right = a->scale < 1.0 || ratio == 1.0; break;
    }
    return clamp_index(left + (right ? 1 : 0), a->in_len);
}

/* Fills one output coordinate's taps. With antialias or exclude_outside the weights are normalised to sum
 * to 1, as the reference does. */
static void fill_taps(const resize_params *p, const resize_axis *a, double x, int64_t *index, float *weight)
{
    double ratio, stretch = p->antialias && a->scale < 1.0 ? a->scale : 1.0, sum = 0;
    int64_t left = left_neighbour(x, &ratio);
    for (int t = 0; t < a->taps; t++) {
        int64_t pos = left + a->tap_start + t;
        double w = kernel_weight(p->mode, p->cubic_a, ((double)(a->tap_start + t) - ratio) * stretch);
        if (p->exclude_outside && (pos < 0 || pos >= a->in_len)) w = 0;
        sum += w;
    }
    double norm = (p->antialias || p->exclude_outside) && sum != 0 ? 1.0 / sum : 1.0;
    for (int t = 0; t < a->taps; t++) {
        int64_t pos = left + a->tap_start + t;
        double w = kernel_weight(p->mode, p->cubic_a, ((double)(a->tap_start + t) - ratio) * stretch);
        if (p->exclude_outside && (pos < 0 || pos >= a->in_len)) w = 0;
        index[t] = clamp_index(pos, a->in_len);
        weight[t] = (float)(w * norm);
    }
}

/* True when the table maps every output coordinate j to input j with weight 1. */
static bool table_is_identity(const resize_params *p, const resize_axis *a, const resize_tables *t, int d)
{
    if (a->in_len != a->out_len) return false;
    for (int64_t j = 0; j < a->out_len; j++) {
        if (t->outside[d][j]) return false;
        const int64_t *index = t->index[d] + j * a->taps;
        if (p->mode == INTERP_NEAREST) {
            if (index[0] != j) return false;
            continue;
        }
        const float *weight = t->weight[d] + j * a->taps;
        float own = 0;
        for (int k = 0; k < a->taps; k++) {
            if (index[k] == j) own += weight[k];
            else if (weight[k] != 0) return false;
        }
        if (own != 1.0f) return false;
    }
    return true;
}

static void build_axis_table(const resize_params *p, resize_axis *a, resize_tables *t, int d)
{
    /* a coordinate never strays further than the tap span from the axis; clamping keeps hostile rois finite */
    double low = -2.0 - a->taps, high = (double)a->in_len + a->taps;
    for (int64_t j = 0; j < a->out_len; j++) {
        double x = original_coordinate(p->coord, a, j);
        bool outside = p->coord == COORD_TF_CROP_AND_RESIZE && !(x >= 0 && x <= (double)(a->in_len - 1));
        t->outside[d][j] = outside;
        x = outside || !(x >= low) ? low : x > high ? high : x;
        int64_t *index = t->index[d] + j * a->taps;
        if (p->mode == INTERP_NEAREST) index[0] = nearest_index(p, a, x);
        else fill_taps(p, a, x, index, t->weight[d] + j * a->taps);
    }
    a->identity = table_is_identity(p, a, t, d);
}

/* ---- nearest: a gather of rows ----------------------------------------------------------------------- */

/* The output is walked in rows along the last axis that is not the identity (`gather_axis`); trailing identity
 * axes are folded into the element copied per tap (`block` bytes). */
typedef struct nearest_job {
    const uint8_t *src;
    uint8_t *dst;
    int gather_axis;
    int64_t out_dims[KILN_MAX_RANK];
    int64_t src_strides[KILN_MAX_RANK]; /* bytes */
    const int64_t *offset[KILN_MAX_RANK]; /* byte offsets of each output coordinate's source, NULL = identity */
    const uint8_t *outside[KILN_MAX_RANK];
    size_t block;
    uint8_t fill[8]; /* the extrapolation value as one element */
    size_t elem_size;
} nearest_job;

static void fill_block(const nearest_job *job, uint8_t *dst, int64_t blocks)
{
    for (size_t i = 0; i < (size_t)blocks * job->block; i += job->elem_size) memcpy(dst + i, job->fill, job->elem_size);
}

/* Source byte offset of output row r (coordinates over the axes before gather_axis); false when outside. */
static bool nearest_row_source(const nearest_job *job, int64_t r, int64_t *offset)
{
    bool inside = true;
    *offset = 0;
    for (int d = job->gather_axis - 1; d >= 0; d--) {
        int64_t c = r % job->out_dims[d];
        r /= job->out_dims[d];
        if (!job->offset[d]) {
            *offset += c * job->src_strides[d];
            continue;
        }
        *offset += job->offset[d][c];
        if (job->outside[d][c]) inside = false;
    }
    return inside;
}

static void nearest_rows(void *arg, int64_t begin, int64_t end)
{
    const nearest_job *job = arg;
    int64_t len = job->out_dims[job->gather_axis];
    const int64_t *offset = job->offset[job->gather_axis];
    const uint8_t *outside = job->outside[job->gather_axis];
    size_t row_bytes = (size_t)len * job->block;
    int64_t previous = -1;
    for (int64_t r = begin; r < end; r++) {
        uint8_t *dst = job->dst + (size_t)r * row_bytes;
        int64_t base;
        if (!nearest_row_source(job, r, &base)) {
            fill_block(job, dst, len);
            previous = -1;
            continue;
        }
        if (base == previous) {
            memcpy(dst, dst - row_bytes, row_bytes);
            continue;
        }
        for (int64_t j = 0; j < len; j++) {
            if (outside[j]) fill_block(job, dst + (size_t)j * job->block, 1);
            else copy_element(dst + (size_t)j * job->block, job->src + base + offset[j], job->block);
        }
        previous = base;
    }
}

/* Stores `value` as one element of `dtype` (the extrapolation value), saturating integers. */
static void store_scalar(kiln_dtype dtype, double value, void *out)
{
    double v = isnan(value) ? 0 : value;
    switch (dtype) {
    case KILN_FLOAT32: *(float *)out = (float)value; break;
    case KILN_FLOAT64: *(double *)out = value; break;
    case KILN_FLOAT16: *(uint16_t *)out = dtype_float_to_half((float)value); break;
    case KILN_BFLOAT16: *(uint16_t *)out = dtype_float_to_bfloat16((float)value); break;
    case KILN_BOOL: *(uint8_t *)out = value != 0; break;
    case KILN_INT8: *(int8_t *)out = (int8_t)fmax(-128, fmin(127, v)); break;
    case KILN_UINT8: *(uint8_t *)out = (uint8_t)fmax(0, fmin(255, v)); break;
    case KILN_INT16: *(int16_t *)out = (int16_t)fmax(-32768, fmin(32767, v)); break;
    case KILN_UINT16: *(uint16_t *)out = (uint16_t)fmax(0, fmin(65535, v)); break;
    case KILN_INT32: *(int32_t *)out = (int32_t)fmax(-2147483648.0, fmin(2147483647.0, v)); break;
    case KILN_UINT32: *(uint32_t *)out = (uint32_t)fmax(0, fmin(4294967295.0, v)); break;
    case KILN_INT64: *(int64_t *)out = (int64_t)fmax(-9223372036854775808.0, fmin(9223372036854774784.0, v)); break;
    case KILN_UINT64: *(uint64_t *)out = (uint64_t)fmax(0, fmin(18446744073709549568.0, v)); break;
    default: memset(out, 0, 8); break;
    }
}

static void resize_nearest(op_ctx *ctx, const resize_geometry *g, resize_tables *t)
{
    const resize_params *p = ctx->params;
    const kiln_tensor *x = ctx->inputs[0];
    kiln_tensor *y = ctx->outputs[0];
    nearest_job job = {.src = x->data, .dst = y->data, .elem_size = kiln_dtype_size(x->dtype)};
    store_scalar(x->dtype, p->extrapolation, job.fill);
    int64_t strides[KILN_MAX_RANK];
    shape_strides(x->rank, x->dims, strides);
    job.gather_axis = -1;
    job.block = job.elem_size;
    for (int d = g->rank - 1; d >= 0 && job.gather_axis < 0; d--) {
        if (g->axis[d].identity) job.block *= (size_t)g->axis[d].in_len;
        else job.gather_axis = d;
    }
    for (int d = 0; d <= job.gather_axis; d++) {
        job.out_dims[d] = g->axis[d].out_len;
        job.src_strides[d] = strides[d] * (int64_t)job.elem_size;
        if (g->axis[d].identity) continue;
        for (int64_t j = 0; j < g->axis[d].out_len; j++) t->index[d][j] *= job.src_strides[d];
        job.offset[d] = t->index[d];
        job.outside[d] = t->outside[d];
    }
    int64_t rows = shape_span(job.out_dims, 0, job.gather_axis);
    int64_t row_bytes = job.out_dims[job.gather_axis] * (int64_t)job.block;
    parallel_for(ctx->parallel, rows, 1 + (1 << 16) / (row_bytes + 1), nearest_rows, &job);
}

/* ---- linear and cubic: separable passes -------------------------------------------------------------- */

/* One pass resamples axis `axis` of a tensor seen as (outer, in_len, inner) into (outer, out_len, inner). */
typedef struct resample_job {
    const void *src;
    void *dst;
    int64_t outer, in_len, out_len, inner;
    int taps;
    const int64_t *index;
    const float *weight;
    const uint8_t *outside;
    double extrapolation;
} resample_job;

/* Outer axes: each output row is a weighted sum of whole input rows (vectorisable over `inner`).
 * Last axis (inner == 1): each output element is a short dot product of gathered inputs. */
#define DEFINE_RESAMPLE(T, NAME)                                                                              \
    static void NAME##_rows(void *arg, int64_t begin, int64_t end)                                            \
    {                                                                                                         \
        const resample_job *job = arg;                                                                        \
        int64_t inner = job->inner;                                                                           \
        for (int64_t r = begin; r < end; r++) {                                                               \
            int64_t o = r / job->out_len, j = r % job->out_len;                                               \
            T *dst = (T *)job->dst + r * inner;                                                               \
            if (job->outside[j]) {                                                                            \
                for (int64_t i = 0; i < inner; i++) dst[i] = (T)job->extrapolation;                           \
                continue;                                                                                     \
            }                                                                                                 \
            const T *src = (const T *)job->src + o * job->in_len * inner;                                     \
            const int64_t *index = job->index + j * job->taps;                                                \
            const float *weight = job->weight + j * job->taps;                                                \
            const T *first = src + index[0] * inner;                                                          \
            T w0 = (T)weight[0];                                                                              \
            for (int64_t i = 0; i < inner; i++) dst[i] = w0 * first[i];                                       \
            for (int k = 1; k < job->taps; k++) {                                                             \
                if (weight[k] == 0) continue;                                                                 \
                const T *row = src + index[k] * inner;                                                        \
                T w = (T)weight[k];                                                                           \
                for (int64_t i = 0; i < inner; i++) dst[i] += w * row[i];                                     \
            }                                                                                                 \
        }                                                                                                     \
    }                                                                                                         \
    static void NAME##_points(void *arg, int64_t begin, int64_t end)                                          \
    {                                                                                                         \
        const resample_job *job = arg;                                                                        \
        for (int64_t o = begin; o < end; o++) {                                                               \
            const T *src = (const T *)job->src + o * job->in_len;                                             \
            T *dst = (T *)job->dst + o * job->out_len;                                                        \
            for (int64_t j = 0; j < job->out_len; j++) {                                                      \
                const int64_t *index = job->index + j * job->taps;                                            \
                const float *weight = job->weight + j * job->taps;                                            \
                T acc = 0;                                                                                    \
                for (int k = 0; k < job->taps; k++) acc += (T)weight[k] * src[index[k]];                      \
                dst[j] = job->outside[j] ? (T)job->extrapolation : acc;                                       \
            }                                                                                                 \
        }                                                                                                     \
    }

DEFINE_RESAMPLE(float, resample_f32)
DEFINE_RESAMPLE(double, resample_f64)

static void run_pass(const op_ctx *ctx, resample_job *job)
{
    bool f32 = ctx->inputs[0]->dtype == KILN_FLOAT32;
    int64_t work_per_item = job->inner == 1 ? job->out_len * job->taps : job->inner * job->taps;
    int64_t grain = 1 + (1 << 15) / (work_per_item + 1);
    if (job->inner == 1)
        parallel_for(ctx->parallel, job->outer, grain, f32 ? resample_f32_points : resample_f64_points, job);
    else
        parallel_for(ctx->parallel, job->outer * job->out_len, grain, f32 ? resample_f32_rows : resample_f64_rows, job);
}

static void resize_separable(op_ctx *ctx, const resize_geometry *g, const resize_tables *t)
{
    const resize_params *p = ctx->params;
    int64_t dims[KILN_MAX_RANK];
    int passes = 0, pass_axes[KILN_MAX_RANK];
    for (int d = g->rank - 1; d >= 0; d--)
        if (!g->axis[d].identity) pass_axes[passes++] = d;
    for (int d = 0; d < g->rank; d++) dims[d] = g->axis[d].in_len;
    const void *src = ctx->inputs[0]->data;
    for (int k = 0; k < passes; k++) {
        int d = pass_axes[k];
        const resize_axis *a = &g->axis[d];
        resample_job job = {.src = src,
                            .dst = k == passes - 1 ? ctx->outputs[0]->data : t->buffer[k % 2],
                            .outer = shape_span(dims, 0, d),
                            .in_len = a->in_len,
                            .out_len = a->out_len,
                            .inner = shape_span(dims, d + 1, g->rank),
                            .taps = a->taps,
                            .index = t->index[d],
                            .weight = t->weight[d],
                            .outside = t->outside[d],
                            .extrapolation = p->extrapolation};
        run_pass(ctx, &job);
        src = job.dst;
        dims[d] = a->out_len;
    }
}

static kiln_status resize_eval(op_ctx *ctx)
{
    const resize_params *p = ctx->params;
    const kiln_tensor *x = ctx->inputs[0];
    kiln_tensor *y = ctx->outputs[0];
    if (tensor_numel(y) == 0) return KILN_OK;
    resize_geometry g;
    resize_tables t;
    size_t bytes;
    KILN_TRY(resize_geometry_init(ctx, &g));
    KILN_TRY(read_roi(ctx, &g));
    KILN_TRY(resize_layout(p, &g, kiln_dtype_size(x->dtype), ctx->scratch, &t, &bytes));
    if (bytes > ctx->scratch_bytes) return kiln_fail(KILN_ERR_INTERNAL, "resize scratch was planned too small");
    bool all_identity = true;
    for (int d = 0; d < g.rank; d++) {
        if (!g.axis[d].identity) build_axis_table(p, &g.axis[d], &t, d);
        all_identity = all_identity && g.axis[d].identity;
    }
    if (all_identity) memcpy(y->data, x->data, tensor_bytes(x));
    else if (p->mode == INTERP_NEAREST) resize_nearest(ctx, &g, &t);
    else resize_separable(ctx, &g, &t);
    return KILN_OK;
}

const op_def ops_resize[] = {
    {"", "Upsample", 7, 9, sizeof(resize_params), upsample_init, resize_shape, resize_eval, 0},
    {"", "Resize", 10, 18, sizeof(resize_params), resize_init, resize_shape, resize_eval, 0},
    OP_TABLE_END,
};
