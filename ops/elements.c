/*
 * elements.c — operators that address single elements by index tensors: GatherElements, ScatterElements
 * (and its deprecated name Scatter) and OneHot.
 *
 * GatherElements and ScatterElements share one step: each entry of `indices` becomes the offset of the data
 * element it names, validated and with negative indices wrapped (into scratch); gathering is then a copy
 * loop and scattering a reduction loop. Moves are by element size, so they take every dtype; the scatter
 * reductions (add, mul, max, min) are generated per numeric dtype. That scatter step is also ScatterND's
 * (scatter.h): the two operators differ only in how they turn indices into offsets.
 */
#include <math.h>
#include <string.h>

#include "ops/copy.h"
#include "ops/op.h"
#include "ops/scatter.h"

/* ---- GatherElements and ScatterElements -------------------------------------------------------------- */

typedef struct elements_params {
    int64_t axis;
    int reduction; /* ScatterElements: SCATTER_NONE, SCATTER_ADD... */
} elements_params;

/* data (input 0) and indices (input 1) have equal ranks; indices may not exceed data on the other axes. */
static kiln_status elements_check_shapes(const op_ctx *ctx, int *axis)
{
    const elements_params *p = ctx->params;
    const kiln_tensor *data = ctx->inputs[0], *indices = ctx->inputs[1];
    if (data->rank < 1 || indices->rank != data->rank)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "data (rank %d) and indices (rank %d) need the same rank >= 1",
                         data->rank, indices->rank);
    if (!axis_normalize(p->axis, data->rank, axis))
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "axis %lld is out of range for rank %d", (long long)p->axis,
                         data->rank);
    for (int d = 0; d < data->rank; d++)
        if (d != *axis && indices->dims[d] > data->dims[d]) {
            char a[128], b[128];
            return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "indices shape %s exceeds data shape %s on axis %d",
                             shape_format(a, sizeof a, indices->rank, indices->dims),
                             shape_format(b, sizeof b, data->rank, data->dims), d);
        }
    return KILN_OK;
}

/* The offset in data of the element each entry of indices names: its own coordinates, with the index along
 * `axis`. Walks indices' coordinates like an odometer, keeping the offset of the non-axis part. */
static kiln_status element_offsets(const kiln_tensor *data, const kiln_tensor *indices, int axis, int64_t *offsets)
{
    int rank = data->rank;
    int64_t strides[KILN_MAX_RANK], coord[KILN_MAX_RANK] = {0}, base = 0, axis_len = data->dims[axis];
    shape_strides(rank, data->dims, strides);
    int64_t n = tensor_numel(indices);
    for (int64_t e = 0; e < n; e++) {
        int64_t index;
        KILN_TRY(op_wrap_index(tensor_get_int(indices, e), axis_len, axis, &index));
        offsets[e] = base + index * strides[axis];
        for (int d = rank - 1; d >= 0; d--) {
            int64_t stride = d == axis ? 0 : strides[d];
            base += stride;
            if (++coord[d] < indices->dims[d]) break;
            base -= coord[d] * stride;
            coord[d] = 0;
        }
    }
    return KILN_OK;
}

static kiln_status gather_elements_init(op_init_ctx *ctx)
{
    elements_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 2, 2, 1, 1));
    KILN_TRY(op_require_dtype(ctx, 0, DTYPES_ALL));
    KILN_TRY(op_require_dtype(ctx, 1, DTYPES_INDEX));
    KILN_TRY(attr_int(ctx->node, "axis", 0, &p->axis));
    ctx->output_dtypes[0] = ctx->input_dtypes[0];
    return KILN_OK;
}

static kiln_status gather_elements_shape(op_ctx *ctx)
{
    int axis;
    KILN_TRY(elements_check_shapes(ctx, &axis));
    op_set_output_shape(ctx, 0, ctx->inputs[1]->rank, ctx->inputs[1]->dims);
    ctx->scratch_bytes = (size_t)tensor_numel(ctx->inputs[1]) * sizeof(int64_t);
    return KILN_OK;
}

static kiln_status gather_elements_eval(op_ctx *ctx)
{
    const kiln_tensor *data = ctx->inputs[0], *indices = ctx->inputs[1];
    int axis;
    KILN_TRY(elements_check_shapes(ctx, &axis));
    int64_t *offsets = ctx->scratch;
    KILN_TRY(element_offsets(data, indices, axis, offsets));
    size_t size = kiln_dtype_size(data->dtype);
    const uint8_t *src = data->data;
    uint8_t *dst = ctx->outputs[0]->data;
    int64_t n = tensor_numel(indices);
    for (int64_t e = 0; e < n; e++) copy_element(dst + (size_t)e * size, src + (size_t)offsets[e] * size, size);
    return KILN_OK;
}

static kiln_status scatter_elements_init(op_init_ctx *ctx)
{
    elements_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 3, 3, 1, 1));
    KILN_TRY(attr_int(ctx->node, "axis", 0, &p->axis));
    return scatter_init_common(ctx, &p->reduction);
}

static kiln_status scatter_elements_shape(op_ctx *ctx)
{
    int axis;
    KILN_TRY(elements_check_shapes(ctx, &axis));
    const kiln_tensor *indices = ctx->inputs[1], *updates = ctx->inputs[2];
    if (!shape_equal(indices->rank, indices->dims, updates->rank, updates->dims)) {
        char a[128], b[128];
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "updates shape %s differs from indices shape %s",
                         shape_format(a, sizeof a, updates->rank, updates->dims),
                         shape_format(b, sizeof b, indices->rank, indices->dims));
    }
    ctx->scratch_bytes = (size_t)tensor_numel(indices) * sizeof(int64_t);
    return op_shape_like_input0(ctx);
}

/* ---- the scatter step shared with ScatterND (scatter.h) ---------------------------------------------- */

static const char *const scatter_reductions[] = {"none", "add", "mul", "max", "min", NULL};

kiln_status scatter_init_common(op_init_ctx *ctx, int *reduction)
{
    *reduction = SCATTER_NONE;
    if (ctx->opset >= 16) KILN_TRY(attr_choice(ctx->node, "reduction", "none", scatter_reductions, reduction));
    if (ctx->opset < 18 && *reduction > SCATTER_MUL)
        return kiln_fail(KILN_ERR_MALFORMED, "reduction '%s' needs opset 18", scatter_reductions[*reduction]);
    KILN_TRY(op_require_dtype(ctx, 0, *reduction == SCATTER_NONE ? DTYPES_ALL : DTYPES_NUMERIC));
    KILN_TRY(op_require_dtype(ctx, 1, DTYPES_INDEX));
    KILN_TRY(op_require_dtype(ctx, 2, (const kiln_dtype[]){ctx->input_dtypes[0], KILN_UNDEFINED}));
    ctx->output_dtypes[0] = ctx->input_dtypes[0];
    return KILN_OK;
}

/* Folds each update into its target with the reduction; U is the type arithmetic happens in (unsigned for
 * signed integers so that overflow wraps). Updates apply in order, so duplicates accumulate. */
#define DEFINE_SCATTER_REDUCE(T, U, NAME)                                                                     \
    static void NAME(void *out, const void *updates, const int64_t *offsets, int64_t n, int reduction)        \
    {                                                                                                         \
        T *y = out;                                                                                           \
        const T *u = updates;                                                                                 \
        for (int64_t e = 0; e < n; e++) {                                                                     \
            T *t = y + offsets[e];                                                                            \
            switch (reduction) {                                                                              \
            case SCATTER_ADD: *t = (T)((U)*t + (U)u[e]); break;                                               \
            case SCATTER_MUL: *t = (T)((U)*t * (U)u[e]); break;                                               \
            case SCATTER_MAX: *t = u[e] > *t ? u[e] : *t; break;                                              \
            default: *t = u[e] < *t ? u[e] : *t; break;                                                       \
            }                                                                                                 \
        }                                                                                                     \
    }

DEFINE_SCATTER_REDUCE(float, float, scatter_f32)
DEFINE_SCATTER_REDUCE(double, double, scatter_f64)
DEFINE_SCATTER_REDUCE(int8_t, uint32_t, scatter_i8)
DEFINE_SCATTER_REDUCE(int16_t, uint32_t, scatter_i16)
DEFINE_SCATTER_REDUCE(int32_t, uint32_t, scatter_i32)
DEFINE_SCATTER_REDUCE(int64_t, uint64_t, scatter_i64)
DEFINE_SCATTER_REDUCE(uint8_t, uint32_t, scatter_u8)
DEFINE_SCATTER_REDUCE(uint16_t, uint32_t, scatter_u16)
DEFINE_SCATTER_REDUCE(uint32_t, uint32_t, scatter_u32)
DEFINE_SCATTER_REDUCE(uint64_t, uint64_t, scatter_u64)

typedef void (*scatter_fn)(void *out, const void *updates, const int64_t *offsets, int64_t n, int reduction);

static scatter_fn scatter_kernel(kiln_dtype dtype)
{
    switch (dtype) {
    case KILN_FLOAT32: return scatter_f32;
    case KILN_FLOAT64: return scatter_f64;
    case KILN_INT8: return scatter_i8;
    case KILN_INT16: return scatter_i16;
    case KILN_INT32: return scatter_i32;
    case KILN_INT64: return scatter_i64;
    case KILN_UINT8: return scatter_u8;
    case KILN_UINT16: return scatter_u16;
    case KILN_UINT32: return scatter_u32;
    default: return scatter_u64;
    }
}

void scatter_apply(kiln_dtype dtype, int reduction, void *out, const void *updates, const int64_t *offsets,
                   int64_t n)
{
    if (reduction != SCATTER_NONE) {
        scatter_kernel(dtype)(out, updates, offsets, n, reduction);
        return;
    }
    size_t size = kiln_dtype_size(dtype);
    uint8_t *dst = out;
    const uint8_t *src = updates;
    for (int64_t e = 0; e < n; e++) copy_element(dst + (size_t)offsets[e] * size, src + (size_t)e * size, size);
}

static kiln_status scatter_elements_eval(op_ctx *ctx)
{
    const elements_params *p = ctx->params;
    const kiln_tensor *data = ctx->inputs[0], *indices = ctx->inputs[1], *updates = ctx->inputs[2];
    kiln_tensor *out = ctx->outputs[0];
    int axis;
    KILN_TRY(elements_check_shapes(ctx, &axis));
    int64_t *offsets = ctx->scratch;
    KILN_TRY(element_offsets(data, indices, axis, offsets));
    if (out->data != data->data) memcpy(out->data, data->data, tensor_bytes(data));
    scatter_apply(data->dtype, p->reduction, out->data, updates->data, offsets, tensor_numel(indices));
    return KILN_OK;
}

/* ---- OneHot ------------------------------------------------------------------------------------------ */

typedef struct onehot_params {
    int64_t axis;
} onehot_params;

static kiln_status onehot_init(op_init_ctx *ctx)
{
    onehot_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 3, 3, 1, 1));
    KILN_TRY(op_require_dtype(ctx, 0, DTYPES_NUMERIC));
    KILN_TRY(op_require_dtype(ctx, 1, DTYPES_NUMERIC));
    KILN_TRY(op_require_dtype(ctx, 2, DTYPES_ALL));
    KILN_TRY(attr_int(ctx->node, "axis", -1, &p->axis));
    ctx->output_dtypes[0] = ctx->input_dtypes[2];
    ctx->value_inputs = 1u << 1;
    return KILN_OK;
}

/* The output is indices' shape with `depth` inserted at the axis: (before, depth, after). */
static kiln_status onehot_layout(const op_ctx *ctx, int *axis, int64_t *depth)
{
    const onehot_params *p = ctx->params;
    const kiln_tensor *indices = ctx->inputs[0], *depth_t = ctx->inputs[1], *values = ctx->inputs[2];
    KILN_TRY(op_require_one_value(depth_t, "depth"));
    double d = tensor_get_double(depth_t, 0);
    if (!(d >= 1) || d > (double)KILN_MAX_ELEMENTS)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "depth %g must be a positive count", d);
    *depth = (int64_t)d;
    if (indices->rank + 1 > KILN_MAX_RANK)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "output rank %d exceeds kiln's maximum of %d", indices->rank + 1,
                         KILN_MAX_RANK);
    if (!axis_normalize(p->axis, indices->rank + 1, axis))
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "axis %lld is out of range for rank %d", (long long)p->axis,
                         indices->rank + 1);
    if (tensor_numel(values) != 2)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "values must hold [off_value, on_value], it has %lld values",
                         (long long)tensor_numel(values));
    return KILN_OK;
}

static kiln_status onehot_shape(op_ctx *ctx)
{
    const kiln_tensor *indices = ctx->inputs[0];
    int axis;
    int64_t depth, dims[KILN_MAX_RANK];
    KILN_TRY(onehot_layout(ctx, &axis, &depth));
    for (int d = 0, k = 0; d <= indices->rank; d++) dims[d] = d == axis ? depth : indices->dims[k++];
    op_set_output_shape(ctx, 0, indices->rank + 1, dims);
    return KILN_OK;
}

/* The class of indices element e, or -1 when it lies outside [-depth, depth) (or, before opset 11,
 * [0, depth)) or is not a whole number: such an entry is all off_value. */
static int64_t onehot_class(const kiln_tensor *indices, int64_t e, int64_t depth, bool wrap_negative)
{
    double v = tensor_get_double(indices, e);
    if (v != floor(v) || v < -(double)depth || v >= (double)depth) return -1;
    int64_t c = (int64_t)v;
    if (c < 0) c = wrap_negative ? c + depth : -1;
    return c;
}

static kiln_status onehot_eval(op_ctx *ctx)
{
    const kiln_tensor *indices = ctx->inputs[0], *values = ctx->inputs[2];
    kiln_tensor *out = ctx->outputs[0];
    int axis;
    int64_t depth;
    KILN_TRY(onehot_layout(ctx, &axis, &depth));
    size_t size = kiln_dtype_size(out->dtype);
    const uint8_t *off_value = values->data, *on_value = off_value + size;
    uint8_t *y = out->data;
    int64_t total = tensor_numel(out), after = shape_span(indices->dims, axis, indices->rank);
    for (int64_t i = 0; i < total; i++) copy_element(y + (size_t)i * size, off_value, size);
    int64_t n = tensor_numel(indices);
    for (int64_t e = 0; e < n; e++) {
        int64_t c = onehot_class(indices, e, depth, ctx->opset >= 11);
        if (c < 0) continue;
        int64_t before = e / after, rest = e % after;
        copy_element(y + (size_t)((before * depth + c) * after + rest) * size, on_value, size);
    }
    return KILN_OK;
}

const op_def ops_elements[] = {
    {"", "GatherElements", 11, 18, sizeof(elements_params), gather_elements_init, gather_elements_shape,
     gather_elements_eval, 0},
    {"", "ScatterElements", 11, 18, sizeof(elements_params), scatter_elements_init, scatter_elements_shape,
     scatter_elements_eval, 0},
    /* Scatter (opsets 9-10) is ScatterElements under its deprecated name */
    {"", "Scatter", 9, 10, sizeof(elements_params), scatter_elements_init, scatter_elements_shape,
     scatter_elements_eval, 0},
    {"", "OneHot", 9, 18, sizeof(onehot_params), onehot_init, onehot_shape, onehot_eval, 0},
    OP_TABLE_END,
};
