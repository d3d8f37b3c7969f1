/*
 * kiln_transformer.c — operators of the ai.kiln domain that graph/fuse_transformer.c fuses transformer
 * subgraphs into. Files do not contain them; the fusion pass creates them at load.
 *
 *   Gelu   y = 0.5 * x * (1 + erf(x / sqrt(2)))   float32, any shape (kernels/gelu.h)
 */
#include "kernels/gelu.h"
#include "ops/op.h"

static const kiln_dtype FLOAT32_ONLY[] = {KILN_FLOAT32, KILN_UNDEFINED};

static kiln_status gelu_init(op_init_ctx *ctx)
{
    KILN_TRY(op_require_arity(ctx, 1, 1, 1, 1));
    KILN_TRY(op_require_dtype(ctx, 0, FLOAT32_ONLY));
    ctx->output_dtypes[0] = KILN_FLOAT32;
    return KILN_OK;
}

typedef struct gelu_job {
    const float *x;
    float *y;
} gelu_job;

static void gelu_range(void *arg, int64_t begin, int64_t end)
{
    const gelu_job *job = arg;
    gelu_f32(job->x + begin, job->y + begin, end - begin);
}

static kiln_status gelu_eval(op_ctx *ctx)
{
    gelu_job job = {ctx->inputs[0]->data, ctx->outputs[0]->data};
    parallel_for(ctx->parallel, tensor_numel(ctx->inputs[0]), 16384, gelu_range, &job);
    return KILN_OK;
}

const op_def ops_kiln_transformer[] = {
    {"ai.kiln", "Gelu", 1, 1, 0, gelu_init, op_shape_like_input0, gelu_eval, 0},
    OP_TABLE_END,
};
