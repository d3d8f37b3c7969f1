/*
 * trilu.c — Trilu: the upper or lower triangle of each matrix in the last two dims, the rest zeroed.
 *
 * Elements are moved as bytes of the dtype's size, so every dtype works without a loop per dtype; rows are
 * spread over the session's threads.
 */
#include <string.h>

#include "ops/op.h"

typedef struct trilu_params {
    bool upper;
} trilu_params;

static kiln_status trilu_init(op_init_ctx *ctx)
{
    trilu_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 1, 2, 1, 1));
    KILN_TRY(op_require_dtype(ctx, 0, DTYPES_ALL));
    if (op_has_input(ctx, 1)) KILN_TRY(op_require_dtype(ctx, 1, (const kiln_dtype[]){KILN_INT64, KILN_UNDEFINED}));
    int64_t upper;
    KILN_TRY(attr_int(ctx->node, "upper", 1, &upper));
    p->upper = upper != 0;
    ctx->output_dtypes[0] = ctx->input_dtypes[0];
    return KILN_OK;
}

static kiln_status trilu_shape(op_ctx *ctx)
{
    if (ctx->inputs[0]->rank < 2)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "input must have rank 2 or more, it has rank %d",
                         ctx->inputs[0]->rank);
    if (ctx->n_inputs > 1 && ctx->inputs[1]) KILN_TRY(op_require_one_value(ctx->inputs[1], "k"));
    return op_shape_like_input0(ctx);
}

typedef struct trilu_job {
    const uint8_t *x;
    uint8_t *y;
    int64_t rows, cols, k;
    size_t elem_size;
    bool upper;
} trilu_job;

/* Row i of each matrix keeps columns j >= i+k (upper) or j <= i+k (lower) and zeroes the rest. */
static void trilu_rows(void *arg, int64_t begin, int64_t end)
{
    const trilu_job *job = arg;
    size_t row_bytes = (size_t)job->cols * job->elem_size;
    for (int64_t r = begin; r < end; r++) {
        int64_t i = r % job->rows, edge = i + job->k;
        int64_t lo = job->upper ? edge : 0, hi = job->upper ? job->cols : edge + 1;
        lo = lo < 0 ? 0 : lo > job->cols ? job->cols : lo;
        hi = hi < lo ? lo : hi > job->cols ? job->cols : hi;
        uint8_t *y = job->y + (size_t)r * row_bytes;
        const uint8_t *x = job->x + (size_t)r * row_bytes;
        memset(y, 0, (size_t)lo * job->elem_size);
        memcpy(y + (size_t)lo * job->elem_size, x + (size_t)lo * job->elem_size, (size_t)(hi - lo) * job->elem_size);
        memset(y + (size_t)hi * job->elem_size, 0, (size_t)(job->cols - hi) * job->elem_size);
    }
}

static kiln_status trilu_eval(op_ctx *ctx)
{
    const trilu_params *p = ctx->params;
    const kiln_tensor *x = ctx->inputs[0];
    int64_t k = 0;
    if (ctx->n_inputs > 1 && ctx->inputs[1]) k = tensor_get_int(ctx->inputs[1], 0);
    trilu_job job = {.x = x->data, .y = ctx->outputs[0]->data, .rows = x->dims[x->rank - 2],
                     .cols = x->dims[x->rank - 1], .elem_size = kiln_dtype_size(x->dtype), .upper = p->upper};
    /* beyond rows+cols every k means "keep all" or "keep none"; clamping keeps i+k from overflowing */
    int64_t reach = job.rows + job.cols;
    job.k = k < -reach ? -reach : k > reach ? reach : k;
    int64_t all_rows = tensor_numel(x) / (job.cols ? job.cols : 1);
    if (job.cols == 0 || job.rows == 0) return KILN_OK;
    parallel_for(ctx->parallel, all_rows, 1 + 4096 / job.cols, trilu_rows, &job);
    return KILN_OK;
}

const op_def ops_trilu[] = {
    {"", "Trilu", 14, 18, sizeof(trilu_params), trilu_init, trilu_shape, trilu_eval, 0},
    OP_TABLE_END,
};
