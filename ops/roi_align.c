/*
 * roi_align.c — RoiAlign (opsets 10 and 16): pools each region of interest of X (N, C, H, W) into a fixed
 * (output_height, output_width) grid of bins, each the average (or maximum) of bilinear samples on a regular
 * sampling_ratio x sampling_ratio grid inside the bin (adaptive: ceil(bin size) samples when 0).
 *
 * Opset 16 added coordinate_transformation_mode: "half_pixel" shifts the region by half a pixel, while
 * "output_half_pixel" (opset 10's only behaviour) does not and grows regions to at least one pixel. The
 * sampling and the max mode are onnxruntime's, which the spec's reference implementation copies: a sample
 * more than a pixel outside the image is 0, and "max" takes the largest *weighted* corner of each sample
 * (max(w1 v1, ..., w4 v4)) rather than the maximum of interpolated values.
 */
#include <math.h>

#include "ops/op.h"

typedef struct roi_params {
    bool max_mode, half_pixel;
    int64_t out_h, out_w, sampling_ratio;
    double spatial_scale;
} roi_params;

/* More samples per bin than this is a hostile region, not a picture: refused instead of looping for hours. */
#define ROI_MAX_SAMPLES_PER_BIN (INT64_C(1) << 24)

static kiln_status roi_init(op_init_ctx *ctx)
{
    static const char *const modes[] = {"avg", "max", NULL};
    static const char *const transforms[] = {"half_pixel", "output_half_pixel", NULL};
    roi_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 3, 3, 1, 1));
    KILN_TRY(op_require_dtype(ctx, 0, DTYPES_FLOAT));
    KILN_TRY(op_require_dtype(ctx, 1, DTYPES_FLOAT));
    KILN_TRY(op_require_dtype(ctx, 2, (const kiln_dtype[]){KILN_INT64, KILN_UNDEFINED}));
    int mode, transform = 1;
    KILN_TRY(attr_choice(ctx->node, "mode", "avg", modes, &mode));
    if (ctx->opset >= 16)
        KILN_TRY(attr_choice(ctx->node, "coordinate_transformation_mode", "half_pixel", transforms, &transform));
    float scale;
    KILN_TRY(attr_int(ctx->node, "output_height", 1, &p->out_h));
    KILN_TRY(attr_int(ctx->node, "output_width", 1, &p->out_w));
    KILN_TRY(attr_int(ctx->node, "sampling_ratio", 0, &p->sampling_ratio));
    KILN_TRY(attr_float(ctx->node, "spatial_scale", 1.0f, &scale));
    if (p->out_h < 1 || p->out_w < 1 || p->out_h > KILN_MAX_ELEMENTS || p->out_w > KILN_MAX_ELEMENTS)
        return kiln_fail(KILN_ERR_MALFORMED, "output size %lldx%lld must be positive", (long long)p->out_h,
                         (long long)p->out_w);
    if (p->sampling_ratio < 0 || p->sampling_ratio * p->sampling_ratio > ROI_MAX_SAMPLES_PER_BIN)
        return kiln_fail(KILN_ERR_MALFORMED, "sampling_ratio %lld is out of range", (long long)p->sampling_ratio);
    if (!isfinite(scale)) return kiln_fail(KILN_ERR_MALFORMED, "spatial_scale must be finite");
    p->max_mode = mode == 1;
    p->half_pixel = transform == 0;
    p->spatial_scale = scale;
    ctx->output_dtypes[0] = ctx->input_dtypes[0];
    return KILN_OK;
}

/* One region in pixel coordinates: where bin (0, 0) starts, a bin's size, and samples per bin per axis. */
typedef struct roi_box {
    double start_y, start_x, bin_h, bin_w;
    int64_t grid_h, grid_w;
} roi_box;

/* X is (N, C, H, W), rois is (R, 4) as (x1, y1, x2, y2), batch_indices is (R); Y is (R, C, out_h, out_w). */
static kiln_status roi_shape(op_ctx *ctx)
{
    const roi_params *p = ctx->params;
    const kiln_tensor *x = ctx->inputs[0], *rois = ctx->inputs[1], *batch = ctx->inputs[2];
    if (x->rank != 4) return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "X must be 4-D (N, C, H, W), got rank %d", x->rank);
    if (rois->rank != 2 || rois->dims[1] != 4)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "rois must have shape [num_rois, 4]");
    if (batch->rank != 1 || batch->dims[0] != rois->dims[0])
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "batch_indices must have shape [num_rois]");
    int64_t dims[4] = {rois->dims[0], x->dims[1], p->out_h, p->out_w}, numel;
    KILN_TRY(shape_numel_checked(4, dims, &numel));
    op_set_output_shape(ctx, 0, 4, dims);
    ctx->scratch_bytes = (size_t)rois->dims[0] * sizeof(roi_box);
    return KILN_OK;
}

static kiln_status roi_box_of(const roi_params *p, const kiln_tensor *rois, int64_t r, roi_box *box)
{
    double offset = p->half_pixel ? 0.5 : 0.0, c[4];
    for (int k = 0; k < 4; k++) c[k] = tensor_get_double(rois, r * 4 + k) * p->spatial_scale - offset;
    double h = c[3] - c[1], w = c[2] - c[0];
    if (!p->half_pixel) {
        h = h > 1 ? h : 1;
        w = w > 1 ? w : 1;
    }
    box->start_x = c[0], box->start_y = c[1];
    box->bin_h = h / (double)p->out_h, box->bin_w = w / (double)p->out_w;
    double grid_h = p->sampling_ratio ? (double)p->sampling_ratio : ceil(box->bin_h);
    double grid_w = p->sampling_ratio ? (double)p->sampling_ratio : ceil(box->bin_w);
    if (!(isfinite(h) && isfinite(w) && grid_h * grid_w <= (double)ROI_MAX_SAMPLES_PER_BIN))
        return kiln_fail(KILN_ERR_RUNTIME, "region %lld (%g x %g pixels) is not a usable region", (long long)r, h, w);
    box->grid_h = grid_h > 1 ? (int64_t)grid_h : 1;
    box->grid_w = grid_w > 1 ? (int64_t)grid_w : 1;
    return KILN_OK;
}

/* The two neighbouring pixels of coordinate v along an axis of `size` pixels and the weight of the second;
 * false when v is more than a pixel outside (the sample is then 0). */
static bool roi_axis_neighbours(double v, int64_t size, int64_t *low, int64_t *high, double *frac)
{
    if (v < -1.0 || v > (double)size) return false;
    if (v <= 0) v = 0;
    *low = (int64_t)v;
    if (*low >= size - 1) {
        *low = *high = size - 1;
        v = (double)*low;
    } else {
        *high = *low + 1;
    }
    *frac = v - (double)*low;
    return true;
}

/* Adds one sample's weighted corners: their sum (avg) or their largest (max). */
static double roi_accumulate(bool max_mode, double acc, const double *v)
{
    if (!max_mode) return acc + v[0] + v[1] + v[2] + v[3];
    for (int k = 0; k < 4; k++) acc = v[k] > acc ? v[k] : acc;
    return acc;
}

typedef struct roi_job {
    const roi_params *p;
    const kiln_tensor *x, *rois, *batch;
    kiln_tensor *y;
    const roi_box *boxes; /* per region, computed before the parallel part */
} roi_job;

/* Items are (region, channel) planes. */
#define DEFINE_ROI_ALIGN(T, NAME)                                                                             \
    static void NAME(void *arg, int64_t begin, int64_t end)                                                   \
    {                                                                                                         \
        const roi_job *job = arg;                                                                             \
        const roi_params *p = job->p;                                                                         \
        int64_t channels = job->x->dims[1], h = job->x->dims[2], w = job->x->dims[3];                         \
        for (int64_t item = begin; item < end; item++) {                                                      \
            int64_t r = item / channels, c = item % channels;                                                 \
            const roi_box *b = &job->boxes[r];                                                                \
            const T *x = (const T *)job->x->data + (tensor_get_int(job->batch, r) * channels + c) * h * w;    \
            T *y = (T *)job->y->data + item * p->out_h * p->out_w;                                            \
            for (int64_t ph = 0; ph < p->out_h; ph++)                                                         \
                for (int64_t pw = 0; pw < p->out_w; pw++) {                                                   \
                    double acc = p->max_mode ? -INFINITY : 0.0;                                               \
                    for (int64_t iy = 0; iy < b->grid_h; iy++) {                                              \
                        double sy = b->start_y + (double)ph * b->bin_h +                                      \
                                    ((double)iy + 0.5) * b->bin_h / (double)b->grid_h;                        \
                        int64_t y0 = 0, y1 = 0;                                                               \
                        double fy = 0;                                                                        \
                        bool y_inside = roi_axis_neighbours(sy, h, &y0, &y1, &fy);                            \
                        for (int64_t ix = 0; ix < b->grid_w; ix++) {                                          \
                            double sx = b->start_x + (double)pw * b->bin_w +                                  \
                                        ((double)ix + 0.5) * b->bin_w / (double)b->grid_w;                    \
                            int64_t x0 = 0, x1 = 0;                                                           \
                            double fx = 0, v[4] = {0, 0, 0, 0};                                               \
                            if (y_inside && roi_axis_neighbours(sx, w, &x0, &x1, &fx)) {                      \
                                v[0] = (1 - fy) * (1 - fx) * (double)x[y0 * w + x0];                          \
                                v[1] = (1 - fy) * fx * (double)x[y0 * w + x1];                                \
                                v[2] = fy * (1 - fx) * (double)x[y1 * w + x0];                                \
                                v[3] = fy * fx * (double)x[y1 * w + x1];                                      \
                            }                                                                                 \
                            acc = roi_accumulate(p->max_mode, acc, v);                                        \
                        }                                                                                     \
                    }                                                                                         \
                    y[ph * p->out_w + pw] = (T)(p->max_mode ? acc : acc / (double)(b->grid_h * b->grid_w));   \
                }                                                                                             \
        }                                                                                                     \
    }

DEFINE_ROI_ALIGN(float, roi_align_f32)
DEFINE_ROI_ALIGN(double, roi_align_f64)

static kiln_status roi_eval(op_ctx *ctx)
{
    const roi_params *p = ctx->params;
    const kiln_tensor *x = ctx->inputs[0], *rois = ctx->inputs[1], *batch = ctx->inputs[2];
    int64_t n_rois = rois->dims[0];
    roi_box *boxes = ctx->scratch;
    for (int64_t r = 0; r < n_rois; r++) {
        int64_t b = tensor_get_int(batch, r);
        if (b < 0 || b >= x->dims[0])
            return kiln_fail(KILN_ERR_RUNTIME, "batch index %lld of region %lld is outside [0, %lld)", (long long)b,
                             (long long)r, (long long)x->dims[0]);
        KILN_TRY(roi_box_of(p, rois, r, &boxes[r]));
    }
    if (tensor_numel(ctx->outputs[0]) == 0) return KILN_OK;
    if (x->dims[2] == 0 || x->dims[3] == 0)
        return kiln_fail(KILN_ERR_RUNTIME, "cannot sample regions of an empty image");
    roi_job job = {p, x, rois, batch, ctx->outputs[0], boxes};
    parallel_for(ctx->parallel, n_rois * x->dims[1], 1, x->dtype == KILN_FLOAT32 ? roi_align_f32 : roi_align_f64,
                 &job);
    return KILN_OK;
}

const op_def ops_roi_align[] = {
    {"", "RoiAlign", 10, 18, sizeof(roi_params), roi_init, roi_shape, roi_eval, 0},
    OP_TABLE_END,
};
