/*
 * expand_tile.c — Expand (broadcast to a shape) and Tile (repeat along each axis).
 *
 * Both are strided copies whose source strides repeat data: Expand reads a broadcast dim with stride 0, and
 * Tile views each output axis as (repeat, dim) where the repeat has source stride 0. The shared strided copy
 * (ops/copy.h) merges what it can and copies the runs that stay contiguous with memcpy.
 */
#include "ops/copy.h"
#include "ops/op.h"

/* Input 1 (Expand's shape, Tile's repeats) as a 1-D int64 list of at most KILN_MAX_RANK values. */
static kiln_status read_dims_input(const op_ctx *ctx, const char *name, int *n, int64_t *values)
{
    const kiln_tensor *t = ctx->inputs[1];
    if (t->rank != 1 || t->dims[0] > KILN_MAX_RANK)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "%s must be 1-D with at most %d values", name, KILN_MAX_RANK);
    *n = (int)t->dims[0];
    for (int i = 0; i < *n; i++) {
        values[i] = ((const int64_t *)t->data)[i];
        if (values[i] < 0)
            return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "%s has negative value %lld", name, (long long)values[i]);
    }
    return KILN_OK;
}

static kiln_status expand_tile_init(op_init_ctx *ctx)
{
    KILN_TRY(op_require_arity(ctx, 2, 2, 1, 1));
    KILN_TRY(op_require_dtype(ctx, 0, DTYPES_ALL));
    KILN_TRY(op_require_dtype(ctx, 1, (const kiln_dtype[]){KILN_INT64, KILN_UNDEFINED}));
    ctx->output_dtypes[0] = ctx->input_dtypes[0];
    ctx->value_inputs = 1u << 1;
    return KILN_OK;
}

/* ---- Expand ------------------------------------------------------------------------------------------ */

static kiln_status expand_shape(op_ctx *ctx)
{
    const kiln_tensor *in = ctx->inputs[0];
    int n = 0, rank;
    int64_t shape[KILN_MAX_RANK], dims[KILN_MAX_RANK];
    KILN_TRY(read_dims_input(ctx, "shape", &n, shape));
    KILN_TRY(shape_broadcast(in->rank, in->dims, n, shape, &rank, dims));
    op_set_output_shape(ctx, 0, rank, dims);
    return KILN_OK;
}

static kiln_status expand_eval(op_ctx *ctx)
{
    const kiln_tensor *in = ctx->inputs[0];
    kiln_tensor *out = ctx->outputs[0];
    int64_t in_strides[KILN_MAX_RANK];
    shape_strides(in->rank, in->dims, in_strides);
    copy_view view = {.rank = out->rank};
    int lead = out->rank - in->rank;
    for (int d = 0; d < out->rank; d++) {
        view.dims[d] = out->dims[d];
        view.src_strides[d] = d < lead || in->dims[d - lead] == 1 ? 0 : in_strides[d - lead];
    }
    shape_strides(out->rank, out->dims, view.dst_strides);
    copy_strided(&view, kiln_dtype_size(in->dtype), in->data, out->data, ctx->parallel);
    return KILN_OK;
}

/* ---- Tile -------------------------------------------------------------------------------------------- */

static kiln_status tile_shape(op_ctx *ctx)
{
    const kiln_tensor *in = ctx->inputs[0];
    int n = 0;
    int64_t repeats[KILN_MAX_RANK], dims[KILN_MAX_RANK];
    KILN_TRY(read_dims_input(ctx, "repeats", &n, repeats));
    if (n != in->rank)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "repeats has %d values for an input of rank %d", n, in->rank);
    for (int d = 0; d < n; d++) {
        if (repeats[d] != 0 && in->dims[d] > KILN_MAX_ELEMENTS / repeats[d])
            return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "output is too large");
        dims[d] = in->dims[d] * repeats[d];
    }
    op_set_output_shape(ctx, 0, n, dims);
    return KILN_OK;
}

/* Output axis d is viewed as (repeats[d], dims[d]): the repeat walks the output in blocks of the input's
 * extent and reads the input from its start again (source stride 0). */
static kiln_status tile_eval(op_ctx *ctx)
{
    const kiln_tensor *in = ctx->inputs[0];
    kiln_tensor *out = ctx->outputs[0];
    int64_t in_strides[KILN_MAX_RANK], out_strides[KILN_MAX_RANK];
    shape_strides(in->rank, in->dims, in_strides);
    shape_strides(out->rank, out->dims, out_strides);
    copy_view view = {.rank = 2 * in->rank};
    for (int d = 0; d < in->rank; d++) {
        int64_t repeats = in->dims[d] ? out->dims[d] / in->dims[d] : 0;
        view.dims[2 * d] = repeats;
        view.src_strides[2 * d] = 0;
        view.dst_strides[2 * d] = in->dims[d] * out_strides[d];
        view.dims[2 * d + 1] = in->dims[d];
        view.src_strides[2 * d + 1] = in_strides[d];
        view.dst_strides[2 * d + 1] = out_strides[d];
    }
    copy_strided(&view, kiln_dtype_size(in->dtype), in->data, out->data, ctx->parallel);
    return KILN_OK;
}

const op_def ops_expand_tile[] = {
    {"", "Expand", 8, 18, 0, expand_tile_init, expand_shape, expand_eval, 0},
    {"", "Tile", 6, 18, 0, expand_tile_init, tile_shape, tile_eval, 0},
    OP_TABLE_END,
};
