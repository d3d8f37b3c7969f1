/*
 * unpool.c — MaxUnpool: the partial inverse of MaxPool, scattering each pooled value back to the position
 * MaxPool's Indices output recorded for it, zeros everywhere else.
 *
 *     X and I are (N, C, spatial...), I int64 flat indices into the whole default-sized output (as MaxPool
 *     writes them)
 *
 * The default output size is the transposed window's, (in - 1) * stride + kernel - pads, so the window
 * attributes are read and sized by conv_geometry (shared with ConvTranspose and the pools). The optional
 * output_shape input enlarges the output: as in the ONNX reference, an index still names coordinates of the
 * default-sized output, which keep their place in the larger one (the extra rows and columns stay zero).
 * Indices come from data: eval checks each one against both shapes.
 */
#include <string.h>

#include "ops/conv_geometry.h"
#include "ops/copy.h"
#include "ops/op.h"

typedef struct unpool_params {
    conv_attrs attrs;
} unpool_params;

static kiln_status unpool_init(op_init_ctx *ctx)
{
    unpool_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 2, 3, 1, 1));
    KILN_TRY(op_require_dtype(ctx, 0, DTYPES_FLOAT));
    KILN_TRY(op_require_dtype(ctx, 1, (const kiln_dtype[]){KILN_INT64, KILN_UNDEFINED}));
    if (op_has_input(ctx, 2)) {
        KILN_TRY(op_require_dtype(ctx, 2, (const kiln_dtype[]){KILN_INT64, KILN_UNDEFINED}));
        ctx->value_inputs = 1u << 2;
    }
    KILN_TRY(conv_attrs_read(ctx->node, 0, &p->attrs));
    if (!p->attrs.n_kernel) return kiln_fail(KILN_ERR_MALFORMED, "attribute 'kernel_shape' is required");
    ctx->output_dtypes[0] = ctx->input_dtypes[0];
    return KILN_OK;
}

/* The output shape written in the output_shape input: one non-negative dim per dim of X. */
static kiln_status explicit_output_shape(const kiln_tensor *shape, int rank, int64_t *dims)
{
    if (shape->rank != 1 || shape->dims[0] != rank)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "output_shape must list %d dims, it has %lld values in rank %d",
                         rank, (long long)tensor_numel(shape), shape->rank);
    for (int d = 0; d < rank; d++) {
        dims[d] = tensor_get_int(shape, d);
        if (dims[d] < 0 || dims[d] > KILN_MAX_ELEMENTS)
            return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "output_shape dim %d is %lld", d, (long long)dims[d]);
    }
    return KILN_OK;
}

/* The output shape MaxUnpool would have without output_shape: the transposed window's. */
static kiln_status default_output_dims(const unpool_params *p, const kiln_tensor *x, int64_t *dims)
{
    int spatial = x->rank - 2;
    conv_window w;
    KILN_TRY(conv_geometry_transpose(&p->attrs, spatial, x->dims + 2, p->attrs.kernel, &w));
    conv_output_dims(&w, spatial, x->dims[0], x->dims[1], dims);
    return KILN_OK;
}

static kiln_status unpool_shape(op_ctx *ctx)
{
    const unpool_params *p = ctx->params;
    const kiln_tensor *x = ctx->inputs[0], *indices = ctx->inputs[1];
    const kiln_tensor *shape = ctx->n_inputs > 2 ? ctx->inputs[2] : NULL;
    if (!shape_equal(x->rank, x->dims, indices->rank, indices->dims)) {
        char a[128], b[128];
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "indices shape %s differs from X shape %s",
                         shape_format(a, sizeof a, indices->rank, indices->dims),
                         shape_format(b, sizeof b, x->rank, x->dims));
    }
    int64_t dims[KILN_MAX_RANK];
    KILN_TRY(default_output_dims(p, x, dims));
    if (shape) KILN_TRY(explicit_output_shape(shape, x->rank, dims));
    op_set_output_shape(ctx, 0, x->rank, dims);
    ctx->scratch_bytes = (size_t)tensor_numel(x) * sizeof(int64_t);
    return KILN_OK;
}

/* Where default-shape flat index `index` lands in the output: the same coordinates, raveled in the output's
 * dims. KILN_ERR_RUNTIME when the index is outside the default shape or its coordinates outside the output. */
static kiln_status unpool_target(int64_t index, int rank, const int64_t *from, const int64_t *to, int64_t *target)
{
    if (index < 0 || index >= shape_numel(rank, from))
        return kiln_fail(KILN_ERR_RUNTIME, "index %lld is out of range for an output of %lld elements",
                         (long long)index, (long long)shape_numel(rank, from));
    int64_t rest = index, place = 1;
    *target = 0;
    for (int d = rank - 1; d >= 0; d--) {
        int64_t coord = rest % from[d];
        rest /= from[d];
        if (coord >= to[d])
            return kiln_fail(KILN_ERR_RUNTIME, "index %lld lands outside output_shape on axis %d", (long long)index, d);
        *target += coord * place;
        place *= to[d];
    }
    return KILN_OK;
}

static kiln_status unpool_eval(op_ctx *ctx)
{
    const unpool_params *p = ctx->params;
    const kiln_tensor *x = ctx->inputs[0], *indices = ctx->inputs[1];
    kiln_tensor *y = ctx->outputs[0];
    int64_t from[KILN_MAX_RANK];
    KILN_TRY(default_output_dims(p, x, from));
    int64_t n = tensor_numel(x), *targets = ctx->scratch;
    const int64_t *where = indices->data;
    for (int64_t i = 0; i < n; i++) KILN_TRY(unpool_target(where[i], x->rank, from, y->dims, &targets[i]));
    size_t elem = kiln_dtype_size(x->dtype);
    memset(y->data, 0, tensor_bytes(y));
    for (int64_t i = 0; i < n; i++)
        copy_element((char *)y->data + (size_t)targets[i] * elem, (const char *)x->data + (size_t)i * elem, elem);
    return KILN_OK;
}

const op_def ops_unpool[] = {
    {"", "MaxUnpool", 9, 18, sizeof(unpool_params), unpool_init, unpool_shape, unpool_eval, 0},
    OP_TABLE_END,
};
