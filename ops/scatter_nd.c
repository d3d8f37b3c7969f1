/*
 * scatter_nd.c — ScatterND: a copy of data with slices replaced (or reduced into) at index tuples.
 *
 *     data is (r dims), indices is (q-1 dims, k), updates is indices.dims[:-1] + data.dims[k:]
 *
 * Each tuple of k indices addresses one slice of data.dims[k:]; eval validates every tuple (an index outside
 * its dim is a KILN_ERR_RUNTIME naming it), turns each update element into the offset it lands on, and hands
 * the offsets to the scatter step ScatterElements uses (scatter.h), which applies them in order so that
 * duplicate tuples accumulate under add and mul.
 */
#include <string.h>

#include "ops/op.h"
#include "ops/scatter.h"

typedef struct scatter_nd_params {
    int reduction;
} scatter_nd_params;

static kiln_status scatter_nd_init(op_init_ctx *ctx)
{
    scatter_nd_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 3, 3, 1, 1));
    return scatter_init_common(ctx, &p->reduction);
}

static kiln_status scatter_nd_shape(op_ctx *ctx)
{
    const kiln_tensor *data = ctx->inputs[0], *indices = ctx->inputs[1], *updates = ctx->inputs[2];
    if (indices->rank < 1)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "indices must have rank 1 or more, it has rank 0");
    int64_t k = indices->dims[indices->rank - 1];
    if (k > data->rank)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "index tuples of %lld values address a data tensor of rank %d",
                         (long long)k, data->rank);
    int64_t want[2 * KILN_MAX_RANK];
    int rank = 0;
    for (int d = 0; d < indices->rank - 1; d++) want[rank++] = indices->dims[d];
    for (int d = (int)k; d < data->rank; d++) want[rank++] = data->dims[d];
    if (!shape_equal(updates->rank, updates->dims, rank, want)) {
        char a[128], b[128];
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "updates shape %s should be %s",
                         shape_format(a, sizeof a, updates->rank, updates->dims),
                         shape_format(b, sizeof b, rank, want));
    }
    ctx->scratch_bytes = (size_t)tensor_numel(updates) * sizeof(int64_t);
    return op_shape_like_input0(ctx);
}

/* offsets[t * slice + j] = where element j of tuple t's slice lands in data. */
static kiln_status scatter_nd_offsets(const kiln_tensor *data, const kiln_tensor *indices, int64_t *offsets)
{
    int k = (int)indices->dims[indices->rank - 1];
    int64_t tuples = shape_span(indices->dims, 0, indices->rank - 1);
    int64_t slice = shape_span(data->dims, k, data->rank);
    for (int64_t t = 0; t < tuples; t++) {
        int64_t base = 0;
        for (int d = 0; d < k; d++) {
            int64_t index;
            KILN_TRY(op_wrap_index(tensor_get_int(indices, t * k + d), data->dims[d], d, &index));
            base = base * data->dims[d] + index;
        }
        for (int64_t j = 0; j < slice; j++) offsets[t * slice + j] = base * slice + j;
    }
    return KILN_OK;
}

static kiln_status scatter_nd_eval(op_ctx *ctx)
{
    const scatter_nd_params *p = ctx->params;
    const kiln_tensor *data = ctx->inputs[0], *indices = ctx->inputs[1], *updates = ctx->inputs[2];
    kiln_tensor *out = ctx->outputs[0];
    int64_t *offsets = ctx->scratch;
    KILN_TRY(scatter_nd_offsets(data, indices, offsets));
    if (out->data != data->data) memcpy(out->data, data->data, tensor_bytes(data));
    scatter_apply(data->dtype, p->reduction, out->data, updates->data, offsets, tensor_numel(updates));
    return KILN_OK;
}

const op_def ops_scatter_nd[] = {
    {"", "ScatterND", 11, 18, sizeof(scatter_nd_params), scatter_nd_init, scatter_nd_shape, scatter_nd_eval, 0},
    OP_TABLE_END,
};
