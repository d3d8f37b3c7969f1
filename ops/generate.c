/*
 * generate.c — operators whose output comes from attributes and shapes rather than input data: Constant,
 * ConstantOfShape, Range and EyeLike.
 *
 * Constant is folded at load (graph/fold.c runs its eval once), so it simply copies its attribute; the others
 * usually feed shape computations and are small. Values given as numbers in one dtype but stored in another
 * (EyeLike's ones) go through the cast kernel, the one place that knows every dtype's representation.
 */
#include <math.h>
#include <string.h>

#include "core/dtype.h"
#include "kernels/cast.h"
#include "ops/copy.h"
#include "ops/op.h"

/* ---- Constant ---------------------------------------------------------------------------------------- */

typedef struct constant_params {
    kiln_tensor value; /* data points into the attribute, which lives as long as the model */
} constant_params;

/* Points `value` at the one value attribute the node has. */
static kiln_status constant_value(const op_init_ctx *ctx, kiln_tensor *value)
{
    static const char *const unsupported[] = {"sparse_value", "value_string", "value_strings"};
    for (size_t i = 0; i < sizeof unsupported / sizeof unsupported[0]; i++)
        if (graph_node_attr(ctx->node, unsupported[i]))
            return kiln_fail(KILN_ERR_UNSUPPORTED, "attribute '%s' is not supported", unsupported[i]);
    const graph_attr *a;
    if ((a = graph_node_attr(ctx->node, "value"))) {
        if (a->type != ATTR_TENSOR || !a->t) return kiln_fail(KILN_ERR_MALFORMED, "attribute 'value' must be a tensor");
        *value = *a->t;
        if (!cast_supported(value->dtype))
            return kiln_fail(KILN_ERR_UNSUPPORTED, "a %s constant is not supported", kiln_dtype_name(value->dtype));
    } else if (ctx->opset >= 12 && (a = graph_node_attr(ctx->node, "value_float")) && a->type == ATTR_FLOAT) {
        *value = (kiln_tensor){.dtype = KILN_FLOAT32, .rank = 0, .data = (void *)&a->f};
    } else if (ctx->opset >= 12 && (a = graph_node_attr(ctx->node, "value_floats")) && a->type == ATTR_FLOATS) {
        *value = (kiln_tensor){.dtype = KILN_FLOAT32, .rank = 1, .dims = {a->count}, .data = a->floats};
    } else if (ctx->opset >= 12 && (a = graph_node_attr(ctx->node, "value_int")) && a->type == ATTR_INT) {
        *value = (kiln_tensor){.dtype = KILN_INT64, .rank = 0, .data = (void *)&a->i};
    } else if (ctx->opset >= 12 && (a = graph_node_attr(ctx->node, "value_ints")) && a->type == ATTR_INTS) {
        *value = (kiln_tensor){.dtype = KILN_INT64, .rank = 1, .dims = {a->count}, .data = a->ints};
    } else {
        return kiln_fail(KILN_ERR_MALFORMED, "has no value attribute of the expected type");
    }
    if (!value->data && tensor_numel(value) > 0) return kiln_fail(KILN_ERR_MALFORMED, "the value has no data");
    return KILN_OK;
}

static kiln_status constant_init(op_init_ctx *ctx)
{
    constant_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 0, 0, 1, 1));
    if (ctx->node->n_attrs != 1) return kiln_fail(KILN_ERR_MALFORMED, "must have exactly one value attribute");
    KILN_TRY(constant_value(ctx, &p->value));
    ctx->output_dtypes[0] = p->value.dtype;
    return KILN_OK;
}

static kiln_status constant_shape(op_ctx *ctx)
{
    const constant_params *p = ctx->params;
    op_set_output_shape(ctx, 0, p->value.rank, p->value.dims);
    return KILN_OK;
}

static kiln_status constant_eval(op_ctx *ctx)
{
    const constant_params *p = ctx->params;
    size_t bytes = tensor_bytes(&p->value);
    if (bytes) memcpy(ctx->outputs[0]->data, p->value.data, bytes);
    return KILN_OK;
}

/* ---- ConstantOfShape --------------------------------------------------------------------------------- */

typedef struct constant_of_shape_params {
    unsigned char value[8]; /* one element of the output dtype */
} constant_of_shape_params;

static kiln_status constant_of_shape_init(op_init_ctx *ctx)
{
    constant_of_shape_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 1, 1, 1, 1));
    KILN_TRY(op_require_dtype(ctx, 0, (const kiln_dtype[]){KILN_INT64, KILN_UNDEFINED}));
    const kiln_tensor *value;
    KILN_TRY(attr_tensor(ctx->node, "value", &value));
    ctx->output_dtypes[0] = KILN_FLOAT32; /* and value stays zero */
    if (value) {
        if (tensor_numel(value) != 1 || !value->data)
            return kiln_fail(KILN_ERR_MALFORMED, "attribute 'value' must hold exactly one element");
        if (!cast_supported(value->dtype))
            return kiln_fail(KILN_ERR_UNSUPPORTED, "a %s value is not supported", kiln_dtype_name(value->dtype));
        memcpy(p->value, value->data, kiln_dtype_size(value->dtype));
        ctx->output_dtypes[0] = value->dtype;
    }
    ctx->value_inputs = 1u << 0;
    return KILN_OK;
}

static kiln_status constant_of_shape_shape(op_ctx *ctx)
{
    const kiln_tensor *shape = ctx->inputs[0];
    if (shape->rank != 1 || shape->dims[0] > KILN_MAX_RANK)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "shape must be 1-D with at most %d values", KILN_MAX_RANK);
    int rank = (int)shape->dims[0];
    op_set_output_shape(ctx, 0, rank, shape->data);
    for (int d = 0; d < rank; d++)
        if (ctx->outputs[0]->dims[d] < 0)
            return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "shape has negative dim %lld",
                             (long long)ctx->outputs[0]->dims[d]);
    return KILN_OK;
}

static kiln_status constant_of_shape_eval(op_ctx *ctx)
{
    const constant_of_shape_params *p = ctx->params;
    kiln_tensor *out = ctx->outputs[0];
    copy_fill(out->data, tensor_numel(out), kiln_dtype_size(out->dtype), p->value, ctx->parallel);
    return KILN_OK;
}

/* ---- Range ------------------------------------------------------------------------------------------- */

static const kiln_dtype range_dtypes[] = {KILN_FLOAT32, KILN_FLOAT64, KILN_INT16, KILN_INT32, KILN_INT64,
                                          KILN_UNDEFINED};

static kiln_status range_init(op_init_ctx *ctx)
{
    KILN_TRY(op_require_arity(ctx, 3, 3, 1, 1));
    for (int i = 0; i < 3; i++) {
        KILN_TRY(op_require_dtype(ctx, i, range_dtypes));
        if (ctx->input_dtypes[i] != ctx->input_dtypes[0])
            return kiln_fail(KILN_ERR_MALFORMED, "start, limit and delta must have the same dtype");
    }
    ctx->output_dtypes[0] = ctx->input_dtypes[0];
    ctx->value_inputs = 7u;
    return KILN_OK;
}

/* Number of values, max(ceil((limit - start) / delta), 0), computed exactly for integers. */
static kiln_status range_count(const op_ctx *ctx, int64_t *count)
{
    for (int i = 0; i < 3; i++)
        if (tensor_numel(ctx->inputs[i]) != 1)
            return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "start, limit and delta must be scalars");
    double n;
    if (dtype_is_float(ctx->inputs[0]->dtype)) {
        double start = tensor_get_double(ctx->inputs[0], 0), limit = tensor_get_double(ctx->inputs[1], 0);
        double delta = tensor_get_double(ctx->inputs[2], 0);
        n = ceil((limit - start) / delta);
        if (delta == 0 || isnan(n)) return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "delta is 0 or a bound is not finite");
    } else {
        int64_t start = tensor_get_int(ctx->inputs[0], 0), limit = tensor_get_int(ctx->inputs[1], 0);
        int64_t delta = tensor_get_int(ctx->inputs[2], 0);
        if (delta == 0) return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "delta is 0");
        /* the distance and the step as unsigned magnitudes cannot overflow */
        uint64_t distance = delta > 0 ? (uint64_t)limit - (uint64_t)start : (uint64_t)start - (uint64_t)limit;
        uint64_t step = delta > 0 ? (uint64_t)delta : (uint64_t)(-(delta + 1)) + 1;
        bool forward = delta > 0 ? limit > start : limit < start;
        n = forward ? (double)((distance - 1) / step + 1) : 0;
    }
    if (n > (double)KILN_MAX_ELEMENTS)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "the range has more than 2^48 values");
    *count = n > 0 ? (int64_t)n : 0;
    return KILN_OK;
}

static kiln_status range_shape(op_ctx *ctx)
{
    int64_t count;
    KILN_TRY(range_count(ctx, &count));
    op_set_output_shape(ctx, 0, 1, &count);
    return KILN_OK;
}

/* out[i] = start + i * delta; integers in unsigned arithmetic, which wraps to the exact result. */
static kiln_status range_eval(op_ctx *ctx)
{
    kiln_tensor *out = ctx->outputs[0];
    int64_t n = out->dims[0];
#define RANGE_INT(T)                                                                                        \
    do {                                                                                                    \
        uint64_t start = (uint64_t)tensor_get_int(ctx->inputs[0], 0);                                      \
        uint64_t delta = (uint64_t)tensor_get_int(ctx->inputs[2], 0);                                      \
        for (int64_t i = 0; i < n; i++) ((T *)out->data)[i] = (T)(start + (uint64_t)i * delta);             \
    } while (0)
    switch (out->dtype) {
    case KILN_FLOAT32:
    case KILN_FLOAT64: {
        double start = tensor_get_double(ctx->inputs[0], 0), delta = tensor_get_double(ctx->inputs[2], 0);
        for (int64_t i = 0; i < n; i++) {
            double v = start + (double)i * delta;
            if (out->dtype == KILN_FLOAT32) ((float *)out->data)[i] = (float)v;
            else ((double *)out->data)[i] = v;
        }
        break;
    }
    case KILN_INT16: RANGE_INT(int16_t); break;
    case KILN_INT32: RANGE_INT(int32_t); break;
    default: RANGE_INT(int64_t); break;
    }
#undef RANGE_INT
    return KILN_OK;
}

/* ---- EyeLike ----------------------------------------------------------------------------------------- */

typedef struct eye_like_params {
    int64_t k;
} eye_like_params;

static kiln_status eye_like_init(op_init_ctx *ctx)
{
    eye_like_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 1, 1, 1, 1));
    KILN_TRY(op_require_dtype(ctx, 0, DTYPES_ALL));
    int64_t dtype;
    KILN_TRY(attr_int(ctx->node, "dtype", ctx->input_dtypes[0], &dtype));
    if (!dtype_is_known((int)dtype) || dtype != (int)dtype || !cast_supported((kiln_dtype)dtype))
        return kiln_fail(KILN_ERR_UNSUPPORTED, "dtype %lld is not supported", (long long)dtype);
    KILN_TRY(attr_int(ctx->node, "k", 0, &p->k));
    /* beyond any dim the diagonal is simply empty; bounding k keeps its arithmetic from overflowing */
    if (p->k > KILN_MAX_ELEMENTS) p->k = KILN_MAX_ELEMENTS;
    if (p->k < -KILN_MAX_ELEMENTS) p->k = -KILN_MAX_ELEMENTS;
    ctx->output_dtypes[0] = (kiln_dtype)dtype;
    return KILN_OK;
}

static kiln_status eye_like_shape(op_ctx *ctx)
{
    const kiln_tensor *in = ctx->inputs[0];
    if (in->rank != 2) return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "input must be 2-D, not rank %d", in->rank);
    op_set_output_shape(ctx, 0, 2, in->dims);
    return KILN_OK;
}

/* Zeros with ones on diagonal k: out[i][i + k] = 1. */
static kiln_status eye_like_eval(op_ctx *ctx)
{
    const eye_like_params *p = ctx->params;
    kiln_tensor *out = ctx->outputs[0];
    size_t elem_size = kiln_dtype_size(out->dtype);
    int64_t rows = out->dims[0], cols = out->dims[1];
    memset(out->data, 0, tensor_bytes(out));
    double one = 1.0;
    unsigned char one_bytes[8];
    cast_elements(&one, KILN_FLOAT64, one_bytes, out->dtype, 1);
    int64_t first = p->k < 0 ? -p->k : 0;
    for (int64_t i = first; i < rows && p->k < cols - i; i++)
        memcpy((char *)out->data + (i * cols + i + p->k) * (int64_t)elem_size, one_bytes, elem_size);
    return KILN_OK;
}

const op_def ops_generate[] = {
    {"", "Constant", 1, 18, sizeof(constant_params), constant_init, constant_shape, constant_eval, 0},
    {"", "ConstantOfShape", 9, 18, sizeof(constant_of_shape_params), constant_of_shape_init,
     constant_of_shape_shape, constant_of_shape_eval, 0},
    {"", "Range", 11, 18, 0, range_init, range_shape, range_eval, 0},
    {"", "EyeLike", 9, 18, sizeof(eye_like_params), eye_like_init, eye_like_shape, eye_like_eval, 0},
    OP_TABLE_END,
};
