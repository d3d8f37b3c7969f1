/*
 * quantize.c — the quantization operators: QuantizeLinear and DequantizeLinear (per tensor, and per axis
 * from opset 13), DynamicQuantizeLinear, and the integer convolutions ConvInteger and QLinearConv.
 *
 * Values become integers only through kernels/quant.h (round half to even, add the zero point, saturate),
 * the same helper QLinearMatMul uses, so every quantized op rounds and clamps alike. Divisions by a scale
 * happen in the input's precision first, as the spec's reference does (float32 x / float32 scale), so ties
 * land where onnxruntime puts them.
 *
 * The convolutions share Conv's attributes and geometry (ops/conv_geometry.h) and compute the exact int32
 * sums in kernels/qconv.c; QLinearConv then adds its int32 bias and requantizes each output channel with
 * x_scale * w_scale[m] / y_scale, computed in float as onnxruntime does.
 */
#include "core/mem.h"
#include "kernels/qconv.h"
#include "kernels/quant.h"
#include "ops/conv_geometry.h"
#include "ops/op.h"

static const kiln_dtype SCALE_DTYPES[] = {KILN_FLOAT32, KILN_UNDEFINED};
static const kiln_dtype QUANTIZE_INPUT_DTYPES[] = {KILN_FLOAT32, KILN_INT32, KILN_UNDEFINED};
static const kiln_dtype DEQUANTIZE_INPUT_DTYPES[] = {KILN_INT8, KILN_UINT8, KILN_INT32, KILN_UNDEFINED};

/* ---- per-tensor and per-axis scales ------------------------------------------------------------------ */

typedef struct linear_params {
    int64_t axis; /* as written; normalised against the input's rank at plan time */
} linear_params;

/* How the scale and zero point apply to x: element i uses entry (i / inner) % channels; channels is 1 for
 * a per-tensor scale. */
typedef struct quant_axis {
    int64_t channels, inner;
} quant_axis;

static kiln_status quant_axis_get(const op_ctx *ctx, quant_axis *q)
{
    const linear_params *p = ctx->params;
    const kiln_tensor *x = ctx->inputs[0], *scale = ctx->inputs[1];
    const kiln_tensor *zero = ctx->n_inputs > 2 ? ctx->inputs[2] : NULL;
    q->channels = 1;
    q->inner = 1;
    if (zero && tensor_numel(zero) != tensor_numel(scale))
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "the zero point has %lld values but the scale %lld",
                         (long long)tensor_numel(zero), (long long)tensor_numel(scale));
    if (scale->rank == 0 || (scale->rank == 1 && scale->dims[0] == 1)) return KILN_OK;
    int axis;
    if (ctx->opset < 13 || scale->rank != 1 || !axis_normalize(p->axis, x->rank, &axis))
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "the scale must be a scalar%s",
                         ctx->opset < 13 ? " before opset 13" : ", or 1-D along a valid axis");
    if (scale->dims[0] != x->dims[axis])
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "the scale has %lld values but axis %d has %lld",
                         (long long)scale->dims[0], axis, (long long)x->dims[axis]);
    q->channels = x->dims[axis];
    q->inner = shape_span(x->dims, axis + 1, x->rank);
    return KILN_OK;
}

static int64_t quant_channel(const quant_axis *q, int64_t i)
{
    return q->channels == 1 ? 0 : i / q->inner % q->channels;
}

static kiln_status linear_shape(op_ctx *ctx)
{
    quant_axis q;
    KILN_TRY(quant_axis_get(ctx, &q));
    return op_shape_like_input0(ctx);
}

/* ---- QuantizeLinear ---------------------------------------------------------------------------------- */

static kiln_status quantize_linear_init(op_init_ctx *ctx)
{
    linear_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 2, 3, 1, 1));
    KILN_TRY(op_require_dtype(ctx, 0, QUANTIZE_INPUT_DTYPES));
    KILN_TRY(op_require_dtype(ctx, 1, SCALE_DTYPES));
    if (op_has_input(ctx, 2)) KILN_TRY(op_require_dtype(ctx, 2, QUANT_DTYPES));
    KILN_TRY(attr_int(ctx->node, "axis", 1, &p->axis));
    /* without a zero point the output is uint8 */
    ctx->output_dtypes[0] = op_has_input(ctx, 2) ? ctx->input_dtypes[2] : KILN_UINT8;
    return KILN_OK;
}

/* What a parallel chunk of QuantizeLinear or DequantizeLinear reads. */
typedef struct linear_run {
    const op_ctx *ctx;
    quant_axis q;
} linear_run;

/* Elements per parallel chunk: each costs a few nanoseconds. */
#define LINEAR_GRAIN 16384

static void quantize_range(void *arg, int64_t begin, int64_t end)
{
    const linear_run *run = arg;
    const op_ctx *ctx = run->ctx;
    const kiln_tensor *x = ctx->inputs[0], *zero = ctx->n_inputs > 2 ? ctx->inputs[2] : NULL;
    const float *scale = ctx->inputs[1]->data;
    kiln_tensor *y = ctx->outputs[0];
    for (int64_t i = begin; i < end; i++) {
        int64_t c = quant_channel(&run->q, i);
        int32_t z = zero ? quant_load(zero->data, zero->dtype, c) : 0;
        /* float32 / float32 stays in float, as in the spec's reference; int32 / float32 is double in numpy */
        double scaled = x->dtype == KILN_FLOAT32 ? (double)(((const float *)x->data)[i] / scale[c])
                                                 : ((const int32_t *)x->data)[i] / (double)scale[c];
        quant_store(y->data, y->dtype, i, quant_saturate(scaled, z, y->dtype));
    }
}

static kiln_status quantize_linear_eval(op_ctx *ctx)
{
    linear_run run = {ctx, {1, 1}};
    KILN_TRY(quant_axis_get(ctx, &run.q));
    parallel_for(ctx->parallel, tensor_numel(ctx->inputs[0]), LINEAR_GRAIN, quantize_range, &run);
    return KILN_OK;
}

/* ---- DequantizeLinear -------------------------------------------------------------------------------- */

static kiln_status dequantize_linear_init(op_init_ctx *ctx)
{
    linear_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 2, 3, 1, 1));
    KILN_TRY(op_require_dtype(ctx, 0, DEQUANTIZE_INPUT_DTYPES));
    KILN_TRY(op_require_dtype(ctx, 1, SCALE_DTYPES));
    if (op_has_input(ctx, 2) && ctx->input_dtypes[2] != ctx->input_dtypes[0])
        return kiln_fail(KILN_ERR_MALFORMED, "the zero point is %s but x is %s", kiln_dtype_name(ctx->input_dtypes[2]),
                         kiln_dtype_name(ctx->input_dtypes[0]));
    KILN_TRY(attr_int(ctx->node, "axis", 1, &p->axis));
    ctx->output_dtypes[0] = KILN_FLOAT32;
    return KILN_OK;
}

/* Element i of an int8, uint8 or int32 tensor. */
static int64_t integer_at(const kiln_tensor *t, int64_t i)
{
    return t->dtype == KILN_INT32 ? ((const int32_t *)t->data)[i] : quant_load(t->data, t->dtype, i);
}

static void dequantize_range(void *arg, int64_t begin, int64_t end)
{
    const linear_run *run = arg;
    const op_ctx *ctx = run->ctx;
    const kiln_tensor *x = ctx->inputs[0], *zero = ctx->n_inputs > 2 ? ctx->inputs[2] : NULL;
    const float *scale = ctx->inputs[1]->data;
    float *y = ctx->outputs[0]->data;
    for (int64_t i = begin; i < end; i++) {
        int64_t c = quant_channel(&run->q, i);
        int64_t z = zero ? integer_at(zero, c) : 0;
        y[i] = (float)(integer_at(x, i) - z) * scale[c];
    }
}

static kiln_status dequantize_linear_eval(op_ctx *ctx)
{
    linear_run run = {ctx, {1, 1}};
    KILN_TRY(quant_axis_get(ctx, &run.q));
    parallel_for(ctx->parallel, tensor_numel(ctx->inputs[0]), LINEAR_GRAIN, dequantize_range, &run);
    return KILN_OK;
}

/* ---- DynamicQuantizeLinear --------------------------------------------------------------------------- */

/* y = QuantizeLinear(x, scale, zero_point) into uint8, with scale and zero point chosen so that the range
 * [min(0, min x), max(0, max x)] maps onto [0, 255]. All arithmetic is float32, as in the spec's reference. */
static kiln_status dynamic_quantize_init(op_init_ctx *ctx)
{
    KILN_TRY(op_require_arity(ctx, 1, 1, 3, 3));
    KILN_TRY(op_require_dtype(ctx, 0, SCALE_DTYPES));
    ctx->output_dtypes[0] = KILN_UINT8;
    ctx->output_dtypes[1] = KILN_FLOAT32;
    ctx->output_dtypes[2] = KILN_UINT8;
    return KILN_OK;
}

static kiln_status dynamic_quantize_shape(op_ctx *ctx)
{
    op_set_output_shape(ctx, 0, ctx->inputs[0]->rank, ctx->inputs[0]->dims);
    op_set_output_shape(ctx, 1, 0, NULL);
    op_set_output_shape(ctx, 2, 0, NULL);
    return KILN_OK;
}

static kiln_status dynamic_quantize_eval(op_ctx *ctx)
{
    const float *x = ctx->inputs[0]->data;
    int64_t n = tensor_numel(ctx->inputs[0]);
    float lo = 0.0f, hi = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
    }
    float scale = (hi - lo) / 255.0f;
    /* an all-zero x gives scale 0: the NaN of 0 / 0 saturates to 0 for the zero point and every y */
    int32_t zero = quant_saturate((double)((0.0f - lo) / scale), 0, KILN_UINT8);
    uint8_t *y = ctx->outputs[0]->data;
    for (int64_t i = 0; i < n; i++) y[i] = (uint8_t)quant_saturate((double)(x[i] / scale), zero, KILN_UINT8);
    if (ctx->outputs[1]) *(float *)ctx->outputs[1]->data = scale;
    if (ctx->outputs[2]) *(uint8_t *)ctx->outputs[2]->data = (uint8_t)zero;
    return KILN_OK;
}

/* ---- ConvInteger and QLinearConv --------------------------------------------------------------------- */

typedef struct qconv_params {
    conv_attrs attrs;
    int64_t groups;
    bool qlinear; /* QLinearConv (inputs x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp, B) */
} qconv_params;

/* Where each input sits in either operator's list. */
typedef struct qconv_inputs {
    int x, x_zero, w, w_zero;
} qconv_inputs;

static const qconv_inputs CONV_INTEGER_INPUTS = {0, 2, 1, 3};
static const qconv_inputs QLINEAR_CONV_INPUTS = {0, 2, 3, 5};

static const qconv_inputs *qconv_inputs_of(const qconv_params *p)
{
    return p->qlinear ? &QLINEAR_CONV_INPUTS : &CONV_INTEGER_INPUTS;
}

static kiln_status qconv_read_attrs(op_init_ctx *ctx, qconv_params *p)
{
    KILN_TRY(attr_int(ctx->node, "group", 1, &p->groups));
    if (p->groups < 1 || p->groups > INT32_MAX)
        return kiln_fail(KILN_ERR_MALFORMED, "group is %lld, expected a positive count", (long long)p->groups);
    return conv_attrs_read(ctx->node, 0, &p->attrs);
}

/* A zero point must have the dtype of what it shifts. */
static kiln_status require_zero_dtype(const op_init_ctx *ctx, int zero, int of)
{
    if (op_has_input(ctx, zero) && ctx->input_dtypes[zero] != ctx->input_dtypes[of])
        return kiln_fail(KILN_ERR_MALFORMED, "input %d is %s but input %d is %s", zero,
                         kiln_dtype_name(ctx->input_dtypes[zero]), of, kiln_dtype_name(ctx->input_dtypes[of]));
    return KILN_OK;
}

static kiln_status conv_integer_init(op_init_ctx *ctx)
{
    qconv_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 2, 4, 1, 1));
    KILN_TRY(op_require_dtype(ctx, 0, QUANT_DTYPES));
    KILN_TRY(op_require_dtype(ctx, 1, QUANT_DTYPES));
    KILN_TRY(require_zero_dtype(ctx, 2, 0));
    KILN_TRY(require_zero_dtype(ctx, 3, 1));
    ctx->output_dtypes[0] = KILN_INT32;
    return qconv_read_attrs(ctx, p);
}

static kiln_status qlinear_conv_init(op_init_ctx *ctx)
{
    static const kiln_dtype BIAS_DTYPES[] = {KILN_INT32, KILN_UNDEFINED};
    qconv_params *p = ctx->params;
    p->qlinear = true;
    KILN_TRY(op_require_arity(ctx, 8, 9, 1, 1));
    for (int operand = 0; operand <= 3; operand += 3) { /* x and w: value, scale, zero point */
        KILN_TRY(op_require_dtype(ctx, operand, QUANT_DTYPES));
        KILN_TRY(op_require_dtype(ctx, operand + 1, SCALE_DTYPES));
        KILN_TRY(require_zero_dtype(ctx, operand + 2, operand));
    }
    KILN_TRY(op_require_dtype(ctx, 6, SCALE_DTYPES));
    KILN_TRY(op_require_dtype(ctx, 7, QUANT_DTYPES));
    if (op_has_input(ctx, 8)) KILN_TRY(op_require_dtype(ctx, 8, BIAS_DTYPES));
    ctx->output_dtypes[0] = ctx->input_dtypes[7];
    return qconv_read_attrs(ctx, p);
}

static const kiln_tensor *optional_input(const op_ctx *ctx, int i) { return i < ctx->n_inputs ? ctx->inputs[i] : NULL; }

/* Fails unless t is absent or holds one value or, when `per_channel`, one per output channel. */
static kiln_status check_per_channel(const kiln_tensor *t, const char *what, bool per_channel, int64_t channels)
{
    if (!t || tensor_numel(t) == 1) return KILN_OK;
    if (per_channel && t->rank == 1 && t->dims[0] == channels) return KILN_OK;
    return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "%s has %lld values, expected 1%s", what, (long long)tensor_numel(t),
                     per_channel ? " or one per output channel" : "");
}

/* The convolution the input shapes describe, with every scale, zero point and bias checked. */
static kiln_status describe_qconv(const op_ctx *ctx, conv_shape *s, int *spatial)
{
    const qconv_params *p = ctx->params;
    const qconv_inputs *in = qconv_inputs_of(p);
    KILN_TRY(conv_describe(&p->attrs, p->groups, false, ctx->inputs[in->x], ctx->inputs[in->w], s, spatial));
    int64_t m = s->out_channels;
    KILN_TRY(check_per_channel(optional_input(ctx, in->x_zero), "the input zero point", false, m));
    KILN_TRY(check_per_channel(optional_input(ctx, in->w_zero), "the weight zero point", true, m));
    if (!p->qlinear) return KILN_OK;
    KILN_TRY(check_per_channel(ctx->inputs[1], "x_scale", false, m));
    KILN_TRY(check_per_channel(ctx->inputs[4], "w_scale", true, m));
    KILN_TRY(check_per_channel(ctx->inputs[6], "y_scale", false, m));
    KILN_TRY(check_per_channel(ctx->inputs[7], "y_zero_point", false, m));
    const kiln_tensor *b = optional_input(ctx, 8);
    if (b && (b->rank != 1 || b->dims[0] != m))
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "the bias must be 1-D with %lld values", (long long)m);
    return KILN_OK;
}

/* Scratch: the output channels' weight zero points, the int32 sums (QLinearConv only), then the unfolded
 * matrix. */
typedef struct qconv_scratch {
    size_t zeros, sums, col, total;
} qconv_scratch;

static qconv_scratch qconv_scratch_layout(const qconv_params *p, const conv_shape *s, int64_t y_count)
{
    qconv_scratch l;
    l.zeros = 0;
    l.sums = mem_align_up((size_t)s->out_channels * sizeof(int32_t), KILN_ALIGNMENT);
    l.col = l.sums + (p->qlinear ? mem_align_up((size_t)y_count * sizeof(int32_t), KILN_ALIGNMENT) : 0);
    l.total = l.col + qconv_int32_scratch_bytes(s);
    return l;
}

static kiln_status qconv_shape(op_ctx *ctx)
{
    conv_shape s;
    int spatial = 0;
    KILN_TRY(describe_qconv(ctx, &s, &spatial));
    int64_t dims[2 + CONV_SPATIAL], numel;
    conv_output_dims(&s.win, spatial, s.batch, s.out_channels, dims);
    KILN_TRY(shape_numel_checked(spatial + 2, dims, &numel));
    op_set_output_shape(ctx, 0, spatial + 2, dims);
    if (numel == 0) return KILN_OK;
    ctx->scratch_bytes = qconv_scratch_layout(ctx->params, &s, numel).total;
    if (ctx->scratch_bytes > KILN_MAX_ELEMENTS)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "the convolution needs too much working memory");
    return KILN_OK;
}

/* The int32 sums of either operator into `sums`. */
static void qconv_sums(const op_ctx *ctx, const conv_shape *s, const qconv_scratch *l, int32_t *sums)
{
    const qconv_params *p = ctx->params;
    const qconv_inputs *in = qconv_inputs_of(p);
    const kiln_tensor *x = ctx->inputs[in->x], *w = ctx->inputs[in->w];
    const kiln_tensor *x_zero = optional_input(ctx, in->x_zero), *w_zero = optional_input(ctx, in->w_zero);
    int32_t *zeros = (int32_t *)((char *)ctx->scratch + l->zeros);
    bool per_channel = w_zero && tensor_numel(w_zero) > 1;
    for (int64_t m = 0; m < (per_channel ? s->out_channels : 1); m++)
        zeros[m] = w_zero ? quant_load(w_zero->data, w_zero->dtype, m) : 0;
    qconv_operands q = {x->data, x->dtype, x_zero ? quant_load(x_zero->data, x_zero->dtype, 0) : 0,
                        w->data, w->dtype, zeros, per_channel};
    qconv_int32(s, &q, sums, (char *)ctx->scratch + l->col, ctx->parallel);
}

static kiln_status conv_integer_eval(op_ctx *ctx)
{
    conv_shape s;
    int spatial = 0;
    KILN_TRY(describe_qconv(ctx, &s, &spatial));
    int64_t count = tensor_numel(ctx->outputs[0]);
    if (count == 0) return KILN_OK;
    qconv_scratch l = qconv_scratch_layout(ctx->params, &s, count);
    qconv_sums(ctx, &s, &l, ctx->outputs[0]->data);
    return KILN_OK;
}

/* y[n, m, :] = saturate(round((sums + B[m]) * x_scale * w_scale[m] / y_scale) + y_zero). */
static void requantize(const op_ctx *ctx, const conv_shape *s, const int32_t *sums)
{
    const kiln_tensor *w_scale = ctx->inputs[4], *bias = optional_input(ctx, 8);
    const kiln_tensor *y_zero = ctx->inputs[7];
    kiln_tensor *y = ctx->outputs[0];
    float x_scale = *(const float *)ctx->inputs[1]->data, y_scale = *(const float *)ctx->inputs[6]->data;
    int32_t zero = quant_load(y_zero->data, y_zero->dtype, 0);
    int64_t plane = conv_volume(s->win.out), i = 0;
    for (int64_t n = 0; n < s->batch; n++)
        for (int64_t m = 0; m < s->out_channels; m++) {
            float ws = ((const float *)w_scale->data)[tensor_numel(w_scale) > 1 ? m : 0];
            float multiplier = x_scale * ws / y_scale;
            uint32_t b = bias ? (uint32_t)((const int32_t *)bias->data)[m] : 0;
            for (int64_t o = 0; o < plane; o++, i++) {
                int32_t sum = (int32_t)((uint32_t)sums[i] + b);
                quant_store(y->data, y->dtype, i, quant_saturate((double)((float)sum * multiplier), zero, y->dtype));
            }
        }
}

static kiln_status qlinear_conv_eval(op_ctx *ctx)
{
    conv_shape s;
    int spatial = 0;
    KILN_TRY(describe_qconv(ctx, &s, &spatial));
    int64_t count = tensor_numel(ctx->outputs[0]);
    if (count == 0) return KILN_OK;
    qconv_scratch l = qconv_scratch_layout(ctx->params, &s, count);
    int32_t *sums = (int32_t *)((char *)ctx->scratch + l.sums);
    qconv_sums(ctx, &s, &l, sums);
    requantize(ctx, &s, sums);
    return KILN_OK;
}

const op_def ops_quantize[] = {
    {"", "QuantizeLinear", 10, 18, sizeof(linear_params), quantize_linear_init, linear_shape, quantize_linear_eval, 0},
    {"", "DequantizeLinear", 10, 18, sizeof(linear_params), dequantize_linear_init, linear_shape,
     dequantize_linear_eval, 0},
    {"", "DynamicQuantizeLinear", 11, 18, 0, dynamic_quantize_init, dynamic_quantize_shape, dynamic_quantize_eval, 0},
    {"", "ConvInteger", 10, 18, sizeof(qconv_params), conv_integer_init, qconv_shape, conv_integer_eval, 0},
    {"", "QLinearConv", 10, 18, sizeof(qconv_params), qlinear_conv_init, qconv_shape, qlinear_conv_eval, 0},
    OP_TABLE_END,
};
