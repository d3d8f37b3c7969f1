/*
 * grid_sample.c — GridSample (opset 16): samples X (N, C, H, W) at the points of grid (N, H_out, W_out, 2),
 * whose last axis holds (x, y) normalised to [-1, 1], giving Y (N, C, H_out, W_out).
 *
 * Every mode reduces to the same shape of work: one grid point becomes a short list of taps (pixel offset and
 * weight: 1 for nearest, 4 for bilinear, 16 for bicubic), computed once in double and then applied to all C
 * channels. Padding decides the taps too: "zeros" drops taps outside the image, "border" clamps coordinates,
 * "reflection" mirrors them at the image's edges (at pixel centres with align_corners, at pixel borders
 * without). The arithmetic follows PyTorch's grid_sampler_2d, which the ONNX operator was specified from and
 * its test data comes from: bilinear and nearest pad the sampling point, bicubic (A = -0.75) pads each of its
 * 16 taps, nearest rounds halves to even. A NaN coordinate samples nothing (zero).
 */
#include <math.h>

#include "ops/op.h"

enum grid_mode { GRID_BILINEAR, GRID_NEAREST, GRID_BICUBIC };
enum grid_padding { GRID_ZEROS, GRID_BORDER, GRID_REFLECTION };

typedef struct grid_params {
    int mode, padding;
    bool align_corners;
} grid_params;

static kiln_status grid_init(op_init_ctx *ctx)
{
    static const char *const modes[] = {"bilinear", "nearest", "bicubic", NULL};
    static const char *const paddings[] = {"zeros", "border", "reflection", NULL};
    grid_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 2, 2, 1, 1));
    KILN_TRY(op_require_dtype(ctx, 0, DTYPES_FLOAT));
    KILN_TRY(op_require_dtype(ctx, 1, DTYPES_FLOAT));
    KILN_TRY(attr_choice(ctx->node, "mode", "bilinear", modes, &p->mode));
    KILN_TRY(attr_choice(ctx->node, "padding_mode", "zeros", paddings, &p->padding));
    int64_t align_corners;
    KILN_TRY(attr_int(ctx->node, "align_corners", 0, &align_corners));
    p->align_corners = align_corners != 0;
    ctx->output_dtypes[0] = ctx->input_dtypes[0];
    return KILN_OK;
}

static kiln_status grid_shape(op_ctx *ctx)
{
    const kiln_tensor *x = ctx->inputs[0], *grid = ctx->inputs[1];
    if (x->rank != 4) return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "X must be 4-D (N, C, H, W), got rank %d", x->rank);
    if (grid->rank != 4 || grid->dims[0] != x->dims[0] || grid->dims[3] != 2)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "grid must have shape [N, H_out, W_out, 2] with X's N");
    int64_t dims[4] = {x->dims[0], x->dims[1], grid->dims[1], grid->dims[2]};
    op_set_output_shape(ctx, 0, 4, dims);
    return KILN_OK;
}

/* ---- from a grid value to taps ----------------------------------------------------------------------- */

typedef struct grid_taps {
    int n;
    int64_t offset[16]; /* into one (H, W) channel */
    double weight[16];
} grid_taps;

/* A normalised coordinate in [-1, 1] as a pixel coordinate: -1 and 1 are the outer pixels' centres with
 * align_corners, their outer borders without. */
static double grid_unnormalize(double g, int64_t size, bool align_corners)
{
    return align_corners ? (g + 1) / 2 * (double)(size - 1) : ((g + 1) * (double)size - 1) / 2;
}

/* Mirrors x into [twice_low / 2, twice_high / 2] (bounds given doubled, as they are half-integers without
 * align_corners). */
static double grid_reflect(double x, double twice_low, double twice_high)
{
    if (twice_low == twice_high) return 0;
    double low = twice_low / 2, span = (twice_high - twice_low) / 2;
    x = fabs(x - low);
    double extra = fmod(x, span), flips = floor(x / span);
    return fmod(flips, 2) == 0 ? extra + low : span - extra + low;
}

/* Applies border or reflection padding to a pixel coordinate; zeros padding leaves it (taps outside drop). */
static double grid_pad(const grid_params *p, double x, int64_t size)
{
    if (p->padding == GRID_ZEROS || isnan(x)) return x;
    if (p->padding == GRID_REFLECTION)
        x = p->align_corners ? grid_reflect(x, 0, 2.0 * (double)(size - 1)) : grid_reflect(x, -1, 2.0 * (double)size - 1);
    return x < 0 ? 0 : x > (double)(size - 1) ? (double)(size - 1) : x;
}

/* Adds pixel (x, y) with `weight` unless it lies outside the (h, w) image. Coordinates truncate toward zero,
 * as PyTorch's integer conversion does; NaN fails the range test. */
static void grid_add_tap(grid_taps *t, double x, double y, double weight, int64_t h, int64_t w)
{
    if (!(x > -1.0 && x < (double)w && y > -1.0 && y < (double)h)) return;
    t->offset[t->n] = (int64_t)y * w + (int64_t)x;
    t->weight[t->n] = weight;
    t->n++;
}

/* Keys' cubic convolution weights for the 4 taps around fraction t, with A = -0.75 (PyTorch's). */
static void grid_cubic_weights(double t, double *wt)
{
    const double a = -0.75;
    double near0 = t, near1 = 1 - t, far0 = t + 1, far1 = 2 - t;
    wt[0] = ((a * far0 - 5 * a) * far0 + 8 * a) * far0 - 4 * a;
    wt[1] = ((a + 2) * near0 - (a + 3)) * near0 * near0 + 1;
    wt[2] = ((a + 2) * near1 - (a + 3)) * near1 * near1 + 1;
    wt[3] = ((a * far1 - 5 * a) * far1 + 8 * a) * far1 - 4 * a;
}

/* The taps for grid value (gx, gy) in an (h, w) image. */
static void grid_point_taps(const grid_params *p, double gx, double gy, int64_t h, int64_t w, grid_taps *t)
{
    double x = grid_unnormalize(gx, w, p->align_corners), y = grid_unnormalize(gy, h, p->align_corners);
    t->n = 0;
    if (p->mode == GRID_BICUBIC) {
        double x0 = floor(x), y0 = floor(y), wx[4], wy[4];
        grid_cubic_weights(x - x0, wx);
        grid_cubic_weights(y - y0, wy);
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++)
                grid_add_tap(t, grid_pad(p, x0 - 1 + j, w), grid_pad(p, y0 - 1 + i, h), wy[i] * wx[j], h, w);
        return;
    }
    x = grid_pad(p, x, w);
    y = grid_pad(p, y, h);
    if (p->mode == GRID_NEAREST) {
        grid_add_tap(t, nearbyint(x), nearbyint(y), 1.0, h, w);
        return;
    }
    double x0 = floor(x), y0 = floor(y), fx = x - x0, fy = y - y0;
    grid_add_tap(t, x0, y0, (1 - fx) * (1 - fy), h, w);
    grid_add_tap(t, x0 + 1, y0, fx * (1 - fy), h, w);
    grid_add_tap(t, x0, y0 + 1, (1 - fx) * fy, h, w);
    grid_add_tap(t, x0 + 1, y0 + 1, fx * fy, h, w);
}

/* ---- applying taps to every channel ------------------------------------------------------------------ */

typedef struct grid_job {
    const grid_params *p;
    const kiln_tensor *x, *grid;
    kiln_tensor *y;
} grid_job;

/* Items are grid points (n, ho, wo); each one is sampled in all C channels. The grid may have another float
 * dtype than X, so it is read as double. */
#define DEFINE_GRID_SAMPLE(T, NAME)                                                                           \
    static void NAME(void *arg, int64_t begin, int64_t end)                                                   \
    {                                                                                                         \
        const grid_job *job = arg;                                                                            \
        int64_t channels = job->x->dims[1], h = job->x->dims[2], w = job->x->dims[3];                         \
        int64_t points = job->grid->dims[1] * job->grid->dims[2];                                             \
        for (int64_t i = begin; i < end; i++) {                                                               \
            int64_t n = i / points, point = i % points;                                                       \
            grid_taps taps;                                                                                   \
            double gx = tensor_get_double(job->grid, i * 2), gy = tensor_get_double(job->grid, i * 2 + 1);    \
            grid_point_taps(job->p, gx, gy, h, w, &taps);                                                     \
            const T *x = (const T *)job->x->data + n * channels * h * w;                                      \
            T *y = (T *)job->y->data + n * channels * points + point;                                         \
            for (int64_t c = 0; c < channels; c++, x += h * w, y += points) {                                 \
                double sum = 0;                                                                               \
                for (int k = 0; k < taps.n; k++) sum += taps.weight[k] * (double)x[taps.offset[k]];           \
                *y = (T)sum;                                                                                  \
            }                                                                                                 \
        }                                                                                                     \
    }

DEFINE_GRID_SAMPLE(float, grid_sample_f32)
DEFINE_GRID_SAMPLE(double, grid_sample_f64)

static kiln_status grid_eval(op_ctx *ctx)
{
    const kiln_tensor *x = ctx->inputs[0], *grid = ctx->inputs[1];
    grid_job job = {ctx->params, x, grid, ctx->outputs[0]};
    int64_t points = grid->dims[0] * grid->dims[1] * grid->dims[2];
    if (tensor_numel(ctx->outputs[0]) == 0) return KILN_OK;
    int64_t grain = 1 + 4096 / (1 + x->dims[1]);
    parallel_for(ctx->parallel, points, grain, x->dtype == KILN_FLOAT32 ? grid_sample_f32 : grid_sample_f64, &job);
    return KILN_OK;
}

const op_def ops_grid_sample[] = {
    {"", "GridSample", 16, 18, sizeof(grid_params), grid_init, grid_shape, grid_eval, 0},
    OP_TABLE_END,
};
