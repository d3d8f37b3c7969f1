/*
 * transpose.c — Transpose, DepthToSpace and SpaceToDepth.
 *
 * All three are one permutation of axes: DepthToSpace and SpaceToDepth are a Transpose of the input viewed with
 * its channel (or spatial) dims split into blocks. Each describes that view to transpose_copy, which hands it
 * to the shared strided copy (ops/copy.h) — tiled when the permutation moves the contiguous axis.
 */
#include <string.h>

#include "ops/copy.h"
#include "ops/op.h"

/* out = in viewed with `in_dims` and its axes permuted: output dim d is input dim perm[d]. */
static void transpose_copy(op_ctx *ctx, int rank, const int64_t *in_dims, const int *perm)
{
    const kiln_tensor *in = ctx->inputs[0];
    copy_view view = {.rank = rank};
    int64_t in_strides[KILN_MAX_RANK];
    shape_strides(rank, in_dims, in_strides);
    for (int d = 0; d < rank; d++) {
        view.dims[d] = in_dims[perm[d]];
        view.src_strides[d] = in_strides[perm[d]];
    }
    shape_strides(rank, view.dims, view.dst_strides);
    copy_strided(&view, kiln_dtype_size(in->dtype), in->data, ctx->outputs[0]->data, ctx->parallel);
}

/* ---- Transpose --------------------------------------------------------------------------------------- */

typedef struct transpose_params {
    bool has_perm; /* without perm, the axes are reversed */
    int n_perm;
    int perm[KILN_MAX_RANK];
} transpose_params;

static kiln_status transpose_init(op_init_ctx *ctx)
{
    transpose_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 1, 1, 1, 1));
    KILN_TRY(op_require_dtype(ctx, 0, DTYPES_ALL));
    int64_t perm[KILN_MAX_RANK];
    KILN_TRY(attr_ints(ctx->node, "perm", perm, KILN_MAX_RANK, &p->n_perm));
    p->has_perm = graph_node_attr(ctx->node, "perm") != NULL;
    bool seen[KILN_MAX_RANK] = {0};
    for (int d = 0; d < p->n_perm; d++) {
        if (perm[d] < 0 || perm[d] >= p->n_perm || seen[perm[d]])
            return kiln_fail(KILN_ERR_MALFORMED, "perm is not a permutation of 0..%d (entry %d is %lld)",
                             p->n_perm - 1, d, (long long)perm[d]);
        seen[perm[d]] = true;
        p->perm[d] = (int)perm[d];
    }
    ctx->output_dtypes[0] = ctx->input_dtypes[0];
    return KILN_OK;
}

/* The permutation for this input: the attribute, or the reversed axes. */
static kiln_status transpose_perm(const op_ctx *ctx, int *perm)
{
    const transpose_params *p = ctx->params;
    int rank = ctx->inputs[0]->rank;
    if (!p->has_perm) {
        for (int d = 0; d < rank; d++) perm[d] = rank - 1 - d;
        return KILN_OK;
    }
    if (p->n_perm != rank)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "perm has %d entries for an input of rank %d", p->n_perm, rank);
    memcpy(perm, p->perm, (size_t)rank * sizeof *perm);
    return KILN_OK;
}

static kiln_status transpose_shape(op_ctx *ctx)
{
    const kiln_tensor *in = ctx->inputs[0];
    int perm[KILN_MAX_RANK];
    KILN_TRY(transpose_perm(ctx, perm));
    int64_t dims[KILN_MAX_RANK];
    for (int d = 0; d < in->rank; d++) dims[d] = in->dims[perm[d]];
    op_set_output_shape(ctx, 0, in->rank, dims);
    return KILN_OK;
}

static kiln_status transpose_eval(op_ctx *ctx)
{
    int perm[KILN_MAX_RANK];
    KILN_TRY(transpose_perm(ctx, perm));
    transpose_copy(ctx, ctx->inputs[0]->rank, ctx->inputs[0]->dims, perm);
    return KILN_OK;
}

/* ---- DepthToSpace and SpaceToDepth ------------------------------------------------------------------- */

typedef struct block_params {
    int64_t blocksize;
    bool crd; /* DepthToSpace mode CRD (column-row-depth) instead of DCR */
} block_params;

static kiln_status block_init(op_init_ctx *ctx, bool has_mode)
{
    block_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 1, 1, 1, 1));
    KILN_TRY(op_require_dtype(ctx, 0, DTYPES_ALL));
    if (!graph_node_attr(ctx->node, "blocksize"))
        return kiln_fail(KILN_ERR_MALFORMED, "attribute 'blocksize' is required");
    KILN_TRY(attr_int(ctx->node, "blocksize", 0, &p->blocksize));
    if (p->blocksize < 1 || p->blocksize > (INT64_C(1) << 24))
        return kiln_fail(KILN_ERR_MALFORMED, "blocksize %lld is out of range", (long long)p->blocksize);
    if (has_mode) {
        static const char *const modes[] = {"DCR", "CRD", NULL};
        int mode;
        KILN_TRY(attr_choice(ctx->node, "mode", "DCR", modes, &mode));
        p->crd = mode == 1;
    }
    ctx->output_dtypes[0] = ctx->input_dtypes[0];
    return KILN_OK;
}

static kiln_status depth_to_space_init(op_init_ctx *ctx) { return block_init(ctx, true); }
static kiln_status space_to_depth_init(op_init_ctx *ctx) { return block_init(ctx, false); }

static kiln_status require_nchw(const kiln_tensor *in)
{
    if (in->rank != 4)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "input must be 4-D (N,C,H,W), not rank %d", in->rank);
    return KILN_OK;
}

static kiln_status depth_to_space_shape(op_ctx *ctx)
{
    const block_params *p = ctx->params;
    const kiln_tensor *in = ctx->inputs[0];
    KILN_TRY(require_nchw(in));
    int64_t b = p->blocksize;
    if (in->dims[1] % (b * b) != 0)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "channels %lld are not a multiple of blocksize^2 = %lld",
                         (long long)in->dims[1], (long long)(b * b));
    if (in->dims[2] > KILN_MAX_ELEMENTS / b || in->dims[3] > KILN_MAX_ELEMENTS / b)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "output is too large");
    int64_t dims[4] = {in->dims[0], in->dims[1] / (b * b), in->dims[2] * b, in->dims[3] * b};
    op_set_output_shape(ctx, 0, 4, dims);
    return KILN_OK;
}

/* DCR views the input as (N, b, b, C', H, W), CRD as (N, C', b, b, H, W); both become (N, C', H, b, W, b). */
static kiln_status depth_to_space_eval(op_ctx *ctx)
{
    const block_params *p = ctx->params;
    const int64_t *d = ctx->inputs[0]->dims, b = p->blocksize, c = d[1] / (b * b);
    if (p->crd) {
        static const int perm[6] = {0, 1, 4, 2, 5, 3};
        transpose_copy(ctx, 6, (const int64_t[]){d[0], c, b, b, d[2], d[3]}, perm);
    } else {
        static const int perm[6] = {0, 3, 4, 1, 5, 2};
        transpose_copy(ctx, 6, (const int64_t[]){d[0], b, b, c, d[2], d[3]}, perm);
    }
    return KILN_OK;
}

static kiln_status space_to_depth_shape(op_ctx *ctx)
{
    const block_params *p = ctx->params;
    const kiln_tensor *in = ctx->inputs[0];
    KILN_TRY(require_nchw(in));
    int64_t b = p->blocksize;
    if (in->dims[2] % b != 0 || in->dims[3] % b != 0)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "spatial dims %lldx%lld are not multiples of blocksize %lld",
                         (long long)in->dims[2], (long long)in->dims[3], (long long)b);
    if (in->dims[1] > KILN_MAX_ELEMENTS / (b * b)) return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "output is too large");
    int64_t dims[4] = {in->dims[0], in->dims[1] * b * b, in->dims[2] / b, in->dims[3] / b};
    op_set_output_shape(ctx, 0, 4, dims);
    return KILN_OK;
}

/* The input viewed as (N, C, H', b, W', b) becomes (N, b, b, C, H', W'). */
static kiln_status space_to_depth_eval(op_ctx *ctx)
{
    const block_params *p = ctx->params;
    const int64_t *d = ctx->inputs[0]->dims, b = p->blocksize;
    static const int perm[6] = {0, 3, 5, 1, 2, 4};
    transpose_copy(ctx, 6, (const int64_t[]){d[0], d[1], d[2] / b, b, d[3] / b, b}, perm);
    return KILN_OK;
}

const op_def ops_transpose[] = {
    {"", "Transpose", 1, 18, sizeof(transpose_params), transpose_init, transpose_shape, transpose_eval, 0},
    {"", "DepthToSpace", 1, 18, sizeof(block_params), depth_to_space_init, depth_to_space_shape,
     depth_to_space_eval, 0},
    {"", "SpaceToDepth", 1, 18, sizeof(block_params), space_to_depth_init, space_to_depth_shape,
     space_to_depth_eval, 0},
    OP_TABLE_END,
};
