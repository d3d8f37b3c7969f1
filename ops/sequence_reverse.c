/*
 * sequence_reverse.c — ReverseSequence: reverses the first seq_lens[b] steps of every batch entry b along the
 * time axis and copies the rest unchanged.
 *
 *     x is (batch, time, ...) or (time, batch, ...), sequence_lens is int64 (batch)
 *
 * Each (batch, time) pair owns one contiguous block of the trailing dims, so the operator is a gather of
 * blocks: output block (b, t) comes from input block (b, len - 1 - t) when t < len, else from (b, t). Blocks
 * are moved as bytes, so every dtype works. A length outside [0, time] is a KILN_ERR_RUNTIME naming it.
 */
#include <string.h>

#include "ops/op.h"

typedef struct sequence_reverse_params {
    int batch_axis, time_axis;
} sequence_reverse_params;

static kiln_status read_axis01(const graph_node *node, const char *name, int64_t dflt, int *out)
{
    int64_t v;
    KILN_TRY(attr_int(node, name, dflt, &v));
    if (v != 0 && v != 1) return kiln_fail(KILN_ERR_MALFORMED, "%s is %lld, expected 0 or 1", name, (long long)v);
    *out = (int)v;
    return KILN_OK;
}

static kiln_status sequence_reverse_init(op_init_ctx *ctx)
{
    sequence_reverse_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 2, 2, 1, 1));
    KILN_TRY(op_require_dtype(ctx, 0, DTYPES_ALL));
    KILN_TRY(op_require_dtype(ctx, 1, (const kiln_dtype[]){KILN_INT64, KILN_UNDEFINED}));
    KILN_TRY(read_axis01(ctx->node, "batch_axis", 1, &p->batch_axis));
    KILN_TRY(read_axis01(ctx->node, "time_axis", 0, &p->time_axis));
    if (p->batch_axis == p->time_axis)
        return kiln_fail(KILN_ERR_MALFORMED, "batch_axis and time_axis are both %d", p->batch_axis);
    ctx->output_dtypes[0] = ctx->input_dtypes[0];
    return KILN_OK;
}

static kiln_status sequence_reverse_shape(op_ctx *ctx)
{
    const sequence_reverse_params *p = ctx->params;
    const kiln_tensor *x = ctx->inputs[0], *lens = ctx->inputs[1];
    if (x->rank < 2)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "input must have rank 2 or more, it has rank %d", x->rank);
    if (lens->rank != 1 || lens->dims[0] != x->dims[p->batch_axis])
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "sequence_lens must be 1-D with %lld values (the batch size)",
                         (long long)x->dims[p->batch_axis]);
    return op_shape_like_input0(ctx);
}

static kiln_status sequence_reverse_eval(op_ctx *ctx)
{
    const sequence_reverse_params *p = ctx->params;
    const kiln_tensor *x = ctx->inputs[0], *lens = ctx->inputs[1];
    int64_t batch = x->dims[p->batch_axis], time = x->dims[p->time_axis];
    /* strides of (batch, time) in blocks */
    int64_t batch_stride = p->batch_axis == 0 ? time : 1, time_stride = p->time_axis == 0 ? batch : 1;
    size_t block = (size_t)shape_span(x->dims, 2, x->rank) * kiln_dtype_size(x->dtype);
    const int64_t *len = lens->data;
    for (int64_t b = 0; b < batch; b++)
        if (len[b] < 0 || len[b] > time)
            return kiln_fail(KILN_ERR_RUNTIME, "sequence length %lld of batch entry %lld is outside [0, %lld]",
                             (long long)len[b], (long long)b, (long long)time);
    const char *src = x->data;
    char *dst = ctx->outputs[0]->data;
    for (int64_t b = 0; b < batch; b++)
        for (int64_t t = 0; t < time; t++) {
            int64_t from = t < len[b] ? len[b] - 1 - t : t;
            memcpy(dst + (size_t)(b * batch_stride + t * time_stride) * block,
                   src + (size_t)(b * batch_stride + from * time_stride) * block, block);
        }
    return KILN_OK;
}

const op_def ops_sequence_reverse[] = {
    {"", "ReverseSequence", 10, 18, sizeof(sequence_reverse_params), sequence_reverse_init, sequence_reverse_shape,
     sequence_reverse_eval, 0},
    OP_TABLE_END,
};
