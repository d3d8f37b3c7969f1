/*
 * concat_split.c — Concat and Split.
 *
 * Around the axis, a tensor is (outer, axis * inner) with each outer row one contiguous run. Concat copies
 * each input's rows into its column band of the output's rows, and Split is the reverse: a 2-d strided copy
 * per input or output, each row a memcpy (ops/copy.h merges and parallelises).
 */
#include <string.h>

#include "ops/copy.h"
#include "ops/op.h"

/* Copies `rows` rows of `width` elements between row-major matrices with the given row strides. */
static void copy_band(op_ctx *ctx, size_t elem_size, int64_t rows, int64_t width, const void *src,
                      int64_t src_row_stride, void *dst, int64_t dst_row_stride)
{
    copy_view view = {.rank = 2, .dims = {rows, width}, .src_strides = {src_row_stride, 1},
                      .dst_strides = {dst_row_stride, 1}};
    copy_strided(&view, elem_size, src, dst, ctx->parallel);
}

/* ---- Concat ------------------------------------------------------------------------------------------ */

typedef struct concat_params {
    int64_t axis;
} concat_params;

static kiln_status concat_init(op_init_ctx *ctx)
{
    concat_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 1, ctx->n_inputs, 1, 1));
    KILN_TRY(op_require_dtype(ctx, 0, DTYPES_ALL));
    for (int i = 1; i < ctx->n_inputs; i++) {
        if (!op_has_input(ctx, i)) return kiln_fail(KILN_ERR_MALFORMED, "input %d is required", i);
        if (ctx->input_dtypes[i] != ctx->input_dtypes[0])
            return kiln_fail(KILN_ERR_MALFORMED, "input %d is %s, input 0 is %s", i,
                             kiln_dtype_name(ctx->input_dtypes[i]), kiln_dtype_name(ctx->input_dtypes[0]));
    }
    /* opset 1 defaulted the axis to 1; from opset 4 it is required */
    if (ctx->opset >= 4 && !graph_node_attr(ctx->node, "axis"))
        return kiln_fail(KILN_ERR_MALFORMED, "attribute 'axis' is required");
    KILN_TRY(attr_int(ctx->node, "axis", 1, &p->axis));
    ctx->output_dtypes[0] = ctx->input_dtypes[0];
    return KILN_OK;
}

static kiln_status concat_shape(op_ctx *ctx)
{
    const concat_params *p = ctx->params;
    const kiln_tensor *first = ctx->inputs[0];
    int axis;
    if (!axis_normalize(p->axis, first->rank, &axis))
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "axis %lld is out of range for rank %d", (long long)p->axis,
                         first->rank);
    int64_t dims[KILN_MAX_RANK];
    memcpy(dims, first->dims, sizeof dims);
    dims[axis] = 0;
    for (int i = 0; i < ctx->n_inputs; i++) {
        const kiln_tensor *in = ctx->inputs[i];
        bool same = in->rank == first->rank;
        for (int d = 0; same && d < in->rank; d++) same = d == axis || in->dims[d] == first->dims[d];
        if (!same) {
            char a[128], b[128];
            return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "input %d %s does not match input 0 %s outside axis %d", i,
                             shape_format(a, sizeof a, in->rank, in->dims),
                             shape_format(b, sizeof b, first->rank, first->dims), axis);
        }
        dims[axis] += in->dims[axis];
        if (dims[axis] > KILN_MAX_ELEMENTS) return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "output is too large");
    }
    op_set_output_shape(ctx, 0, first->rank, dims);
    return KILN_OK;
}

static kiln_status concat_eval(op_ctx *ctx)
{
    const concat_params *p = ctx->params;
    kiln_tensor *out = ctx->outputs[0];
    int axis;
    axis_normalize(p->axis, out->rank, &axis);
    size_t elem_size = kiln_dtype_size(out->dtype);
    int64_t outer = shape_span(out->dims, 0, axis), inner = shape_span(out->dims, axis + 1, out->rank);
    int64_t out_row = out->dims[axis] * inner, offset = 0;
    for (int i = 0; i < ctx->n_inputs; i++) {
        const kiln_tensor *in = ctx->inputs[i];
        int64_t in_row = in->dims[axis] * inner;
        copy_band(ctx, elem_size, outer, in_row, in->data, in_row, (char *)out->data + offset * (int64_t)elem_size,
                  out_row);
        offset += in_row;
    }
    return KILN_OK;
}

/* ---- Split ------------------------------------------------------------------------------------------- */

typedef struct split_params {
    int64_t axis;
    int64_t *split;      /* the `split` attribute (opsets 2..12), n_outputs entries, or NULL */
    bool split_input;    /* opset 13+: sizes come from input 1 */
    int64_t num_outputs; /* opset 18: 0 when absent */
} split_params;

static kiln_status split_init(op_init_ctx *ctx)
{
    split_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 1, ctx->opset >= 13 ? 2 : 1, 1, ctx->n_outputs > 0 ? ctx->n_outputs : 1));
    KILN_TRY(op_require_dtype(ctx, 0, DTYPES_ALL));
    KILN_TRY(attr_int(ctx->node, "axis", 0, &p->axis));
    if (ctx->opset >= 13) {
        p->split_input = op_has_input(ctx, 1);
        if (p->split_input) {
            KILN_TRY(op_require_dtype(ctx, 1, (const kiln_dtype[]){KILN_INT64, KILN_UNDEFINED}));
            ctx->value_inputs = 1u << 1;
        }
    } else if (graph_node_attr(ctx->node, "split")) {
        int count;
        p->split = region_alloc(ctx->mem, (size_t)ctx->n_outputs, sizeof *p->split);
        if (!p->split) return KILN_ERR_OUT_OF_MEMORY;
        KILN_TRY(attr_ints(ctx->node, "split", p->split, ctx->n_outputs, &count));
        if (count != ctx->n_outputs)
            return kiln_fail(KILN_ERR_MALFORMED, "attribute 'split' has %d sizes for %d outputs", count,
                             ctx->n_outputs);
    }
    if (ctx->opset >= 18) {
        KILN_TRY(attr_int(ctx->node, "num_outputs", 0, &p->num_outputs));
        if (graph_node_attr(ctx->node, "num_outputs") && p->num_outputs != ctx->n_outputs)
            return kiln_fail(KILN_ERR_MALFORMED, "num_outputs is %lld but the node has %d outputs",
                             (long long)p->num_outputs, ctx->n_outputs);
        if (p->num_outputs && p->split_input)
            return kiln_fail(KILN_ERR_MALFORMED, "give either the split input or num_outputs, not both");
    }
    for (int k = 0; k < ctx->n_outputs; k++) ctx->output_dtypes[k] = ctx->input_dtypes[0];
    return KILN_OK;
}

/* Equal parts; from opset 18 the last part may be smaller (each part is ceil(dim / n)). */
static kiln_status equal_split(const op_ctx *ctx, int64_t dim, int64_t *sizes)
{
    int n = ctx->n_outputs;
    int64_t part = dim / n;
    if (dim % n != 0) {
        if (ctx->opset < 18)
            return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "axis of size %lld does not split into %d equal parts",
                             (long long)dim, n);
        part++;
    }
    int64_t last = dim - part * (n - 1);
    if (last < 0)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "axis of size %lld cannot be split into %d parts of %lld",
                         (long long)dim, n, (long long)part);
    for (int k = 0; k < n; k++) sizes[k] = k == n - 1 ? last : part;
    return KILN_OK;
}

/* Part sizes along the axis (n_outputs of them), from the attribute, the input, or equal parts. */
static kiln_status split_sizes(const op_ctx *ctx, int axis, int64_t *sizes)
{
    const split_params *p = ctx->params;
    int64_t dim = ctx->inputs[0]->dims[axis];
    const kiln_tensor *given = p->split_input ? ctx->inputs[1] : NULL;
    if (!p->split && !given) return equal_split(ctx, dim, sizes);
    if (given && (given->rank != 1 || given->dims[0] != ctx->n_outputs))
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "split must be 1-D with %d sizes, one per output", ctx->n_outputs);
    int64_t total = 0;
    for (int k = 0; k < ctx->n_outputs; k++) {
        sizes[k] = given ? ((const int64_t *)given->data)[k] : p->split[k];
        if (sizes[k] < 0 || sizes[k] > dim)
            return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "split size %lld is out of range", (long long)sizes[k]);
        total += sizes[k];
    }
    if (total != dim)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "split sizes add up to %lld, the axis has %lld", (long long)total,
                         (long long)dim);
    return KILN_OK;
}

static kiln_status split_axis(const op_ctx *ctx, int *axis)
{
    const split_params *p = ctx->params;
    if (!axis_normalize(p->axis, ctx->inputs[0]->rank, axis))
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "axis %lld is out of range for rank %d", (long long)p->axis,
                         ctx->inputs[0]->rank);
    return KILN_OK;
}

static kiln_status split_shape(op_ctx *ctx)
{
    const kiln_tensor *in = ctx->inputs[0];
    int axis;
    KILN_TRY(split_axis(ctx, &axis));
    /* eval recomputes the sizes into scratch: it must know them even for outputs left out */
    ctx->scratch_bytes = (size_t)ctx->n_outputs * sizeof(int64_t);
    int64_t *sizes = mem_alloc(ctx->scratch_bytes);
    if (!sizes) return KILN_ERR_OUT_OF_MEMORY;
    kiln_status st = split_sizes(ctx, axis, sizes);
    for (int k = 0; st == KILN_OK && k < ctx->n_outputs; k++) {
        op_set_output_shape(ctx, k, in->rank, in->dims);
        ctx->outputs[k]->dims[axis] = sizes[k];
    }
    mem_free(sizes);
    return st;
}

static kiln_status split_eval(op_ctx *ctx)
{
    const kiln_tensor *in = ctx->inputs[0];
    int axis;
    KILN_TRY(split_axis(ctx, &axis));
    int64_t *sizes = ctx->scratch;
    KILN_TRY(split_sizes(ctx, axis, sizes));
    size_t elem_size = kiln_dtype_size(in->dtype);
    int64_t outer = shape_span(in->dims, 0, axis), inner = shape_span(in->dims, axis + 1, in->rank);
    int64_t in_row = in->dims[axis] * inner, offset = 0;
    for (int k = 0; k < ctx->n_outputs; k++) {
        int64_t out_row = sizes[k] * inner;
        if (ctx->outputs[k])
            copy_band(ctx, elem_size, outer, out_row, (const char *)in->data + offset * (int64_t)elem_size, in_row,
                      ctx->outputs[k]->data, out_row);
        offset += out_row;
    }
    return KILN_OK;
}

const op_def ops_concat_split[] = {
    {"", "Concat", 1, 18, sizeof(concat_params), concat_init, concat_shape, concat_eval, 0},
    {"", "Split", 2, 18, sizeof(split_params), split_init, split_shape, split_eval, 0},
    OP_TABLE_END,
};
