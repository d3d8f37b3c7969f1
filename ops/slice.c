/*
 * slice.c — Slice: attributes starts/ends/axes (opsets 1..9), inputs starts/ends/axes/steps (opset 10+).
 *
 * Both forms reduce to one (start, step, length) per axis, clamped exactly as the spec says, so that any
 * start or end — INT64_MAX and INT64_MIN included — selects a valid range. A slice is then a strided view of
 * the input (stride x step, negative for reversed axes) copied out by the shared strided copy.
 */
#include <string.h>

#include "ops/copy.h"
#include "ops/op.h"

typedef struct slice_params {
    bool from_inputs; /* opset 10+ */
    int n;            /* opsets 1..9: entries in the attribute lists */
    bool has_axes;
    int64_t starts[KILN_MAX_RANK], ends[KILN_MAX_RANK], axes[KILN_MAX_RANK];
} slice_params;

/* What to take from every axis of the input. */
typedef struct slice_range {
    int64_t start[KILN_MAX_RANK], step[KILN_MAX_RANK], length[KILN_MAX_RANK];
} slice_range;

static kiln_status slice_init(op_init_ctx *ctx)
{
    slice_params *p = ctx->params;
    ctx->output_dtypes[0] = ctx->input_dtypes[0];
    if (ctx->opset >= 10) {
        KILN_TRY(op_require_arity(ctx, 3, 5, 1, 1));
        KILN_TRY(op_require_dtype(ctx, 0, DTYPES_ALL));
        for (int i = 1; i < ctx->n_inputs; i++) {
            if (!op_has_input(ctx, i)) continue;
            KILN_TRY(op_require_dtype(ctx, i, DTYPES_INDEX));
            ctx->value_inputs |= 1u << i;
        }
        p->from_inputs = true;
        return KILN_OK;
    }
    KILN_TRY(op_require_arity(ctx, 1, 1, 1, 1));
    KILN_TRY(op_require_dtype(ctx, 0, DTYPES_ALL));
    int n_ends, n_axes;
    KILN_TRY(attr_ints(ctx->node, "starts", p->starts, KILN_MAX_RANK, &p->n));
    KILN_TRY(attr_ints(ctx->node, "ends", p->ends, KILN_MAX_RANK, &n_ends));
    KILN_TRY(attr_ints(ctx->node, "axes", p->axes, KILN_MAX_RANK, &n_axes));
    if (!graph_node_attr(ctx->node, "starts") || !graph_node_attr(ctx->node, "ends"))
        return kiln_fail(KILN_ERR_MALFORMED, "attributes 'starts' and 'ends' are required");
    p->has_axes = graph_node_attr(ctx->node, "axes") != NULL;
    if (n_ends != p->n || (p->has_axes && n_axes != p->n))
        return kiln_fail(KILN_ERR_MALFORMED, "starts, ends and axes must have the same length");
    return KILN_OK;
}

/* Reads input i (a 1-D int32/int64 tensor of n values) into out; absent inputs leave out alone. */
static kiln_status read_list(const op_ctx *ctx, int i, const char *name, int n, int64_t *out)
{
    const kiln_tensor *t = i < ctx->n_inputs ? ctx->inputs[i] : NULL;
    if (!t) return KILN_OK;
    if (t->rank != 1 || t->dims[0] != n)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "%s must be 1-D with %d values, like starts", name, n);
    for (int k = 0; k < n; k++) out[k] = tensor_get_int(t, k);
    return KILN_OK;
}

/* Clamps one axis as the spec says and returns its length. |step| is capped at dim + 1, which selects the
 * same elements and keeps stride * step from overflowing. */
static int64_t clamp_axis(int64_t dim, int64_t *start, int64_t end, int64_t *step)
{
    if (dim == 0) {
        *start = 0;
        return 0;
    }
    int64_t s = *start < 0 ? *start + dim : *start, e = end < 0 ? end + dim : end;
    if (*step > dim + 1) *step = dim + 1;
    if (*step < -(dim + 1)) *step = -(dim + 1);
    if (*step > 0) {
        s = s < 0 ? 0 : s > dim ? dim : s;
        e = e < 0 ? 0 : e > dim ? dim : e;
        *start = s;
        return e > s ? (e - s + *step - 1) / *step : 0;
    }
    s = s < 0 ? 0 : s > dim - 1 ? dim - 1 : s;
    e = e < -1 ? -1 : e > dim - 1 ? dim - 1 : e;
    *start = s;
    return s > e ? (s - e - *step - 1) / -*step : 0;
}

/* The per-axis ranges for this call, from the attributes or the inputs. */
static kiln_status slice_ranges(const op_ctx *ctx, slice_range *r)
{
    const slice_params *p = ctx->params;
    const kiln_tensor *in = ctx->inputs[0];
    int64_t starts[KILN_MAX_RANK], ends[KILN_MAX_RANK], axes[KILN_MAX_RANK], steps[KILN_MAX_RANK];
    int n = p->n;
    if (p->from_inputs) {
        const kiln_tensor *t = ctx->inputs[1];
        if (t->rank != 1 || t->dims[0] > in->rank)
            return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "starts must be 1-D with at most %d values", in->rank);
        n = (int)t->dims[0];
        KILN_TRY(read_list(ctx, 1, "starts", n, starts));
        KILN_TRY(read_list(ctx, 2, "ends", n, ends));
    } else {
        memcpy(starts, p->starts, sizeof starts);
        memcpy(ends, p->ends, sizeof ends);
    }
    for (int k = 0; k < n; k++) {
        axes[k] = p->from_inputs || !p->has_axes ? k : p->axes[k];
        steps[k] = 1;
    }
    if (p->from_inputs) {
        KILN_TRY(read_list(ctx, 3, "axes", n, axes));
        KILN_TRY(read_list(ctx, 4, "steps", n, steps));
    }
    for (int d = 0; d < in->rank; d++) r->start[d] = 0, r->step[d] = 1, r->length[d] = in->dims[d];
    bool seen[KILN_MAX_RANK] = {0};
    for (int k = 0; k < n; k++) {
        int axis;
        if (!axis_normalize(axes[k], in->rank, &axis) || seen[axis])
            return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "axis %lld is out of range for rank %d or repeated",
                             (long long)axes[k], in->rank);
        if (steps[k] == 0) return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "step for axis %d is 0", axis);
        seen[axis] = true;
        r->start[axis] = starts[k];
        r->step[axis] = steps[k];
        r->length[axis] = clamp_axis(in->dims[axis], &r->start[axis], ends[k], &r->step[axis]);
    }
    return KILN_OK;
}

static kiln_status slice_shape(op_ctx *ctx)
{
    slice_range r;
    KILN_TRY(slice_ranges(ctx, &r));
    op_set_output_shape(ctx, 0, ctx->inputs[0]->rank, r.length);
    return KILN_OK;
}

static kiln_status slice_eval(op_ctx *ctx)
{
    const kiln_tensor *in = ctx->inputs[0];
    kiln_tensor *out = ctx->outputs[0];
    slice_range r;
    KILN_TRY(slice_ranges(ctx, &r));
    if (tensor_numel(out) == 0) return KILN_OK;
    size_t elem_size = kiln_dtype_size(in->dtype);
    int64_t in_strides[KILN_MAX_RANK], first = 0;
    shape_strides(in->rank, in->dims, in_strides);
    copy_view view = {.rank = in->rank};
    for (int d = 0; d < in->rank; d++) {
        view.dims[d] = r.length[d];
        view.src_strides[d] = in_strides[d] * r.step[d];
        first += r.start[d] * in_strides[d];
    }
    shape_strides(out->rank, out->dims, view.dst_strides);
    copy_strided(&view, elem_size, (const char *)in->data + first * (int64_t)elem_size, out->data, ctx->parallel);
    return KILN_OK;
}

const op_def ops_slice[] = {
    {"", "Slice", 1, 18, sizeof(slice_params), slice_init, slice_shape, slice_eval, 0},
    OP_TABLE_END,
};
