/*
 * pad.c — Pad: attributes pads/mode/value (opsets 2..10); inputs pads, constant_value (11+) and axes (18).
 * Modes constant, reflect and edge; negative pads crop.
 *
 * The output is filled in two steps, both strided copies (ops/copy.h):
 *   1. the interior — the input, cropped by any negative pads — goes to its place in the output;
 *   2. axis by axis, the borders are filled: for axis d, over the full extent of the axes already done and
 *      the interior of the others, each border block is copied from the pad value (source stride 0), the edge
 *      slab (stride 0 along d) or, for reflect, the mirrored slab, one per border position.
 * Each output element is written once, and reflect/edge read only parts of the output already written.
 */
#include <string.h>

#include "kernels/cast.h"
#include "ops/copy.h"
#include "ops/op.h"

typedef enum pad_mode { PAD_CONSTANT, PAD_REFLECT, PAD_EDGE } pad_mode;

typedef struct pad_params {
    pad_mode mode;
    float value;    /* opsets 2..10 */
    int n_pads;     /* opsets 2..10: entries in pads */
    int64_t pads[2 * KILN_MAX_RANK];
} pad_params;

/* Per axis: the pads (negative crops), the interior (the input's extent that survives the crops) and the
 * output position of the interior's first element. */
typedef struct pad_layout {
    int64_t begin[KILN_MAX_RANK], end[KILN_MAX_RANK], interior[KILN_MAX_RANK], first[KILN_MAX_RANK];
} pad_layout;

static kiln_status pad_init(op_init_ctx *ctx)
{
    pad_params *p = ctx->params;
    /* in the order of pad_mode; "wrap" (opset 19) is valid ONNX that kiln does not implement yet */
    static const char *const modes[] = {"constant", "reflect", "edge", "wrap", NULL};
    int mode;
    KILN_TRY(attr_choice(ctx->node, "mode", "constant", modes, &mode));
    if (mode == 3) return kiln_fail(KILN_ERR_UNSUPPORTED, "mode 'wrap' is not supported yet");
    p->mode = (pad_mode)mode;
    ctx->output_dtypes[0] = ctx->input_dtypes[0];
    if (ctx->opset < 11) {
        KILN_TRY(op_require_arity(ctx, 1, 1, 1, 1));
        KILN_TRY(op_require_dtype(ctx, 0, DTYPES_ALL));
        if (!graph_node_attr(ctx->node, "pads")) return kiln_fail(KILN_ERR_MALFORMED, "attribute 'pads' is required");
        KILN_TRY(attr_ints(ctx->node, "pads", p->pads, 2 * KILN_MAX_RANK, &p->n_pads));
        return attr_float(ctx->node, "value", 0.0f, &p->value);
    }
    KILN_TRY(op_require_arity(ctx, 2, ctx->opset >= 18 ? 4 : 3, 1, 1));
    KILN_TRY(op_require_dtype(ctx, 0, DTYPES_ALL));
    KILN_TRY(op_require_dtype(ctx, 1, (const kiln_dtype[]){KILN_INT64, KILN_UNDEFINED}));
    ctx->value_inputs = 1u << 1;
    if (op_has_input(ctx, 2) && ctx->input_dtypes[2] != ctx->input_dtypes[0])
        return kiln_fail(KILN_ERR_MALFORMED, "constant_value is %s but data is %s",
                         kiln_dtype_name(ctx->input_dtypes[2]), kiln_dtype_name(ctx->input_dtypes[0]));
    if (op_has_input(ctx, 3)) {
        KILN_TRY(op_require_dtype(ctx, 3, DTYPES_INDEX));
        ctx->value_inputs |= 1u << 3;
    }
    return KILN_OK;
}

/* The pads as (axis list, values): from the attribute, or the pads input with the optional axes input. */
static kiln_status read_pads(const op_ctx *ctx, int *n_axes, int64_t *axes, int64_t *pads)
{
    const pad_params *p = ctx->params;
    int rank = ctx->inputs[0]->rank;
    int n_pads = p->n_pads;
    if (ctx->opset >= 11) {
        const kiln_tensor *t = ctx->inputs[1];
        if (t->rank != 1 || t->dims[0] > 2 * KILN_MAX_RANK)
            return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "pads must be 1-D with at most %d values", 2 * KILN_MAX_RANK);
        n_pads = (int)t->dims[0];
        memcpy(pads, t->data, (size_t)n_pads * sizeof *pads);
    } else {
        memcpy(pads, p->pads, (size_t)n_pads * sizeof *pads);
    }
    const kiln_tensor *given = ctx->n_inputs > 3 ? ctx->inputs[3] : NULL;
    if (given && (given->rank != 1 || given->dims[0] > rank))
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "axes must be 1-D with at most %d values", rank);
    *n_axes = given ? (int)given->dims[0] : rank;
    for (int k = 0; k < *n_axes; k++) axes[k] = given ? tensor_get_int(given, k) : k;
    if (n_pads != 2 * *n_axes)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "pads has %d values, expected %d (begin and end per axis)", n_pads,
                         2 * *n_axes);
    return KILN_OK;
}

/* Pads per axis, checked: within bounds, an output dim >= 0, and reflect/edge need a non-empty interior. */
static kiln_status pad_layout_of(const op_ctx *ctx, pad_layout *l)
{
    const pad_params *p = ctx->params;
    const kiln_tensor *in = ctx->inputs[0];
    int n_axes = 0;
    int64_t axes[KILN_MAX_RANK], pads[2 * KILN_MAX_RANK];
    KILN_TRY(read_pads(ctx, &n_axes, axes, pads));
    bool seen[KILN_MAX_RANK] = {0};
    memset(l, 0, sizeof *l);
    for (int k = 0; k < n_axes; k++) {
        int axis;
        if (!axis_normalize(axes[k], in->rank, &axis) || seen[axis])
            return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "axis %lld is out of range for rank %d or repeated",
                             (long long)axes[k], in->rank);
        seen[axis] = true;
        l->begin[axis] = pads[k];
        l->end[axis] = pads[k + n_axes];
    }
    for (int d = 0; d < in->rank; d++) {
        int64_t b = l->begin[d], e = l->end[d];
        if (b < -KILN_MAX_ELEMENTS || b > KILN_MAX_ELEMENTS || e < -KILN_MAX_ELEMENTS || e > KILN_MAX_ELEMENTS)
            return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "pads %lld, %lld for axis %d are out of range", (long long)b,
                             (long long)e, d);
        l->interior[d] = in->dims[d] + (b < 0 ? b : 0) + (e < 0 ? e : 0);
        l->first[d] = b > 0 ? b : 0;
        if (l->interior[d] < 0)
            return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "pads %lld, %lld crop more than axis %d's %lld elements",
                             (long long)b, (long long)e, d, (long long)in->dims[d]);
        if (p->mode != PAD_CONSTANT && l->interior[d] == 0 && (b > 0 || e > 0))
            return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "cannot %s-pad axis %d, which has no elements",
                             p->mode == PAD_REFLECT ? "reflect" : "edge", d);
    }
    return KILN_OK;
}

static kiln_status pad_shape(op_ctx *ctx)
{
    const kiln_tensor *in = ctx->inputs[0];
    pad_layout l;
    KILN_TRY(pad_layout_of(ctx, &l));
    int64_t dims[KILN_MAX_RANK];
    for (int d = 0; d < in->rank; d++)
        dims[d] = l.first[d] + l.interior[d] + (l.end[d] > 0 ? l.end[d] : 0);
    op_set_output_shape(ctx, 0, in->rank, dims);
    return KILN_OK;
}

/* The pad value as one element of the data's dtype (zero when not given). */
static void pad_value(const op_ctx *ctx, unsigned char *value)
{
    const pad_params *p = ctx->params;
    kiln_dtype dtype = ctx->inputs[0]->dtype;
    memset(value, 0, 8);
    if (ctx->opset < 11) cast_elements(&p->value, KILN_FLOAT32, value, dtype, 1);
    else if (ctx->n_inputs > 2 && ctx->inputs[2] && tensor_numel(ctx->inputs[2]) > 0)
        memcpy(value, ctx->inputs[2]->data, kiln_dtype_size(dtype));
}

/* Position in [0, n) that reflect padding reads for position i relative to the interior's start: the
 * interior mirrored without repeating its edges, periodically (numpy's pad, which ONNX follows). */
static int64_t reflect_index(int64_t i, int64_t n)
{
    if (n == 1) return 0;
    int64_t period = 2 * (n - 1), r = i % period;
    if (r < 0) r += period;
    return r < n ? r : period - r;
}

typedef struct pad_pass {
    op_ctx *ctx;
    const pad_layout *l;
    size_t elem_size;
    copy_view view;    /* axes done: full extent; others: interior; axis d's dim and src strides set per copy */
    int64_t origin;    /* output element at the view's index 0 */
    const unsigned char *value;
} pad_pass;

/* Copies `count` slabs along axis d starting at output position `at`, from output position `from` (stride
 * `from_stride` along d), or from the pad value when `from` is negative. */
static void fill_slabs(pad_pass *pass, int d, int64_t at, int64_t count, int64_t from, int64_t from_stride)
{
    copy_view v = pass->view;
    v.dims[d] = count;
    if (shape_numel(v.rank, v.dims) == 0) return;
    char *out = pass->ctx->outputs[0]->data;
    int64_t stride = v.dst_strides[d], first = pass->l->first[d], elem = (int64_t)pass->elem_size;
    const void *src = pass->value;
    if (from >= 0) {
        v.src_strides[d] = from_stride;
        src = out + (pass->origin + (from - first) * stride) * elem;
    } else {
        for (int e = 0; e < v.rank; e++) v.src_strides[e] = 0;
    }
    copy_strided(&v, pass->elem_size, src, out + (pass->origin + (at - first) * stride) * elem, pass->ctx->parallel);
}

/* Fills the border positions [at, at + count) of axis d (output coordinates). */
static void fill_border(pad_pass *pass, int d, int64_t at, int64_t count)
{
    const pad_params *p = pass->ctx->params;
    int64_t first = pass->l->first[d], n = pass->l->interior[d];
    if (count <= 0) return;
    if (p->mode == PAD_CONSTANT) {
        fill_slabs(pass, d, at, count, -1, 0);
    } else if (p->mode == PAD_EDGE) {
        fill_slabs(pass, d, at, count, at < first ? first : first + n - 1, 0);
    } else {
        for (int64_t j = at; j < at + count; j++) fill_slabs(pass, d, j, 1, first + reflect_index(j - first, n), 0);
    }
}

static kiln_status pad_eval(op_ctx *ctx)
{
    const kiln_tensor *in = ctx->inputs[0];
    kiln_tensor *out = ctx->outputs[0];
    pad_layout l;
    KILN_TRY(pad_layout_of(ctx, &l));
    if (tensor_numel(out) == 0) return KILN_OK;
    unsigned char value[8];
    pad_value(ctx, value);
    pad_pass pass = {.ctx = ctx, .l = &l, .elem_size = kiln_dtype_size(in->dtype), .value = value};
    int64_t in_strides[KILN_MAX_RANK], src_first = 0, elem = (int64_t)pass.elem_size;
    shape_strides(in->rank, in->dims, in_strides);
    copy_view *view = &pass.view;
    view->rank = in->rank;
    shape_strides(out->rank, out->dims, view->dst_strides);
    for (int d = 0; d < in->rank; d++) {
        view->dims[d] = l.interior[d];
        view->src_strides[d] = in_strides[d];
        src_first += (l.begin[d] < 0 ? -l.begin[d] : 0) * in_strides[d];
        pass.origin += l.first[d] * view->dst_strides[d];
    }
    if (shape_numel(view->rank, view->dims) > 0)
        copy_strided(view, pass.elem_size, (const char *)in->data + src_first * elem,
                     (char *)out->data + pass.origin * elem, ctx->parallel);
    /* from here on sources are slabs of the output itself */
    memcpy(view->src_strides, view->dst_strides, sizeof view->src_strides);
    for (int d = 0; d < in->rank; d++) {
        fill_border(&pass, d, 0, l.first[d]);
        fill_border(&pass, d, l.first[d] + l.interior[d], out->dims[d] - l.first[d] - l.interior[d]);
        /* axis d is complete: later axes cover its full extent */
        pass.origin -= l.first[d] * view->dst_strides[d];
        view->dims[d] = out->dims[d];
    }
    return KILN_OK;
}

const op_def ops_pad[] = {
    {"", "Pad", 2, 18, sizeof(pad_params), pad_init, pad_shape, pad_eval, 0},
    OP_TABLE_END,
};
