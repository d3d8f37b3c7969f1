/*
 * softmax.c — Softmax, LogSoftmax and Hardmax.
 *
 * Up to opset 12 these operators flatten their input into a matrix at `axis` (default 1) and normalise
 * each row of prod(dims[axis..]) elements; from opset 13 they work along the single dim `axis` (default
 * -1). Both are the rows of an axis_split (axes.h): contiguous rows before 13, rows whose elements are
 * `inner` apart from 13. Each row subtracts its max before exponentiating, so large inputs cannot
 * overflow, and sums its exponentials in double.
 *
 * Contiguous float32 Softmax rows (the last axis, as attention uses it) run on kernels/vmath.h's row
 * softmax when the CPU has a set.
 */
#include <math.h>

#include "kernels/vmath.h"
#include "ops/axes.h"
#include "ops/numeric_types.h"
#include "ops/op.h"

typedef enum softmax_kind {
    SOFTMAX,
    LOG_SOFTMAX,
    HARDMAX,
} softmax_kind;

typedef struct softmax_params {
    int64_t axis;
    softmax_kind kind;
} softmax_params;

/* exp in the row's own precision: expf for float rows. */
#define TYPED_EXP(v) _Generic((v), float : expf, default : exp)(v)

/* One row of n elements, `stride` apart. Hardmax marks the first maximum. */
typedef void (*softmax_row_fn)(const void *x, void *y, int64_t n, int64_t stride, softmax_kind kind);

#define DEFINE_SOFTMAX_ROW(D, T, LOWEST, HIGHEST)                                                                      \
    static void softmax_row_##T(const void *xv, void *yv, int64_t n, int64_t stride, softmax_kind kind)                \
    {                                                                                                                  \
        const T *x = xv;                                                                                               \
        T *y = yv;                                                                                                     \
        if (kind == HARDMAX) {                                                                                         \
            int64_t argmax = 0;                                                                                        \
            for (int64_t j = 1; j < n; j++)                                                                            \
                if (x[j * stride] > x[argmax * stride]) argmax = j;                                                    \
            for (int64_t j = 0; j < n; j++) y[j * stride] = j == argmax;                                               \
            return;                                                                                                    \
        }                                                                                                              \
        T max = x[0];                                                                                                  \
        for (int64_t j = 1; j < n; j++) max = x[j * stride] > max ? x[j * stride] : max;                               \
        double sum = 0;                                                                                                \
        for (int64_t j = 0; j < n; j++) {                                                                              \
            T e = TYPED_EXP(x[j * stride] - max);                                                                      \
            if (kind == SOFTMAX) y[j * stride] = e;                                                                    \
            sum += e;                                                                                                  \
        }                                                                                                              \
        if (kind == SOFTMAX) {                                                                                         \
            T scale = (T)(1.0 / sum);                                                                                  \
            for (int64_t j = 0; j < n; j++) y[j * stride] *= scale;                                                    \
        } else {                                                                                                       \
            T log_sum = (T)log(sum);                                                                                   \
            for (int64_t j = 0; j < n; j++) y[j * stride] = (x[j * stride] - max) - log_sum;                           \
        }                                                                                                              \
    }
KILN_FLOAT_TYPES(DEFINE_SOFTMAX_ROW)

/* A contiguous float32 Softmax row on kernels/vmath.h (see vmath_softmax_fn for its one departure from
 * softmax_row_float: exponentials below 1.7e-38 are 0). */
static void softmax_row_float_vmath(const void *xv, void *yv, int64_t n, int64_t stride, softmax_kind kind)
{
    if (n < 8) { /* shorter than a vector (a classifier's few classes): the plain row is faster */
        softmax_row_float(xv, yv, n, stride, kind);
        return;
    }
    vmath_fast_f32()->softmax(yv, xv, n);
}

static softmax_row_fn softmax_row_for(kiln_dtype dtype, softmax_kind kind, int64_t stride)
{
    if (dtype == KILN_FLOAT32 && kind == SOFTMAX && stride == 1 && vmath_fast_f32()) return softmax_row_float_vmath;
    switch (dtype) {
#define SOFTMAX_ROW_CASE(D, T, LOWEST, HIGHEST)                                                                        \
    case D: return softmax_row_##T;
        KILN_FLOAT_TYPES(SOFTMAX_ROW_CASE)
#undef SOFTMAX_ROW_CASE
    default: return NULL;
    }
}

static kiln_status softmax_init(op_init_ctx *ctx, softmax_kind kind)
{
    softmax_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 1, 1, 1, 1));
    KILN_TRY(op_require_dtype(ctx, 0, DTYPES_FLOAT));
    KILN_TRY(attr_int(ctx->node, "axis", ctx->opset >= 13 ? -1 : 1, &p->axis));
    p->kind = kind;
    ctx->output_dtypes[0] = ctx->input_dtypes[0];
    return KILN_OK;
}

static kiln_status softmax_op_init(op_init_ctx *ctx) { return softmax_init(ctx, SOFTMAX); }
static kiln_status log_softmax_init(op_init_ctx *ctx) { return softmax_init(ctx, LOG_SOFTMAX); }
static kiln_status hardmax_init(op_init_ctx *ctx) { return softmax_init(ctx, HARDMAX); }

static kiln_status softmax_shape(op_ctx *ctx)
{
    const softmax_params *p = ctx->params;
    const kiln_tensor *in = ctx->inputs[0];
    int axis;
    KILN_TRY(axis_resolve(p->axis, in->rank, &axis));
    op_set_output_shape(ctx, 0, in->rank, in->dims);
    return KILN_OK;
}

typedef struct softmax_job {
    axis_split split;
    softmax_kind kind;
    softmax_row_fn row;
    size_t elem_size;
    const char *x;
    char *y;
} softmax_job;

static void softmax_range(void *arg, int64_t begin, int64_t end)
{
    const softmax_job *job = arg;
    for (int64_t r = begin; r < end; r++) {
        size_t offset = (size_t)axis_split_row(&job->split, r) * job->elem_size;
        job->row(job->x + offset, job->y + offset, job->split.n, job->split.inner, job->kind);
    }
}

static kiln_status softmax_eval(op_ctx *ctx)
{
    const softmax_params *p = ctx->params;
    const kiln_tensor *in = ctx->inputs[0];
    int axis;
    KILN_TRY(axis_resolve(p->axis, in->rank, &axis));
    softmax_job job = {
        .split =
            ctx->opset >= 13 ? axis_split_single(axis, in->rank, in->dims) : axis_split_tail(axis, in->rank, in->dims),
        .kind = p->kind,
        .row = NULL,
        .elem_size = kiln_dtype_size(in->dtype),
        .x = in->data,
        .y = ctx->outputs[0]->data,
    };
    job.row = softmax_row_for(in->dtype, p->kind, job.split.inner);
    if (!job.row) return kiln_fail(KILN_ERR_INTERNAL, "no softmax kernel for %s", kiln_dtype_name(in->dtype));
    if (job.split.n == 0) return KILN_OK;
    parallel_for(ctx->parallel, job.split.outer * job.split.inner, 1 + 16384 / job.split.n, softmax_range, &job);
    return KILN_OK;
}

const op_def ops_softmax[] = {
    {"", "Softmax", 1, 18, sizeof(softmax_params), softmax_op_init, softmax_shape, softmax_eval, 0},
    {"", "LogSoftmax", 1, 18, sizeof(softmax_params), log_softmax_init, softmax_shape, softmax_eval, 0},
    {"", "Hardmax", 1, 18, sizeof(softmax_params), hardmax_init, softmax_shape, softmax_eval, 0},
    OP_TABLE_END,
};
