/*
 * activation.c — the neural-network activation functions: Relu, LeakyRelu, PRelu, Elu, Selu, Celu,
 * Sigmoid, Tanh, HardSigmoid, HardSwish, Softplus, Softsign, Mish, ThresholdedRelu, Shrink and Clip.
 *
 * Like unary.c, each is a scalar expression expanded per dtype by elementwise.h; attributes are parsed at
 * init into the node's ew_attrs, which the kernels copy into locals. Where the textbook formula overflows
 * (Softplus's log(1 + e^x) for large x) the expressions use an equivalent stable form. PRelu is a binary
 * kernel whose slope broadcasts towards X only. Clip has kernels of its own because its bounds have the
 * input's dtype (exact for int64), and from opset 11 they arrive as optional inputs at run time.
 */
#include <float.h>
#include <string.h>
#include <tgmath.h>

#include "ops/elementwise.h"

/* ---- scalar expressions: F(T, x, attrs) --------------------------------------------------------------- */

#define ALPHA(T, a) ((T)(a)->alpha)
#define BETA(T, a) ((T)(a)->beta)
#define CLAMP01(T, v) ((v) < 0 ? (T)0 : (v) > 1 ? (T)1 : (v))
/* log(1 + e^x) without overflow for large x */
#define SOFTPLUS_OF(T, x) ((x) > 0 ? (x) + log1p(exp(-(x))) : log1p(exp(x)))

#define RELU(T, x, a) ((x) < 0 ? (T)0 : (x)) /* NaN stays NaN, as in numpy */
#define LEAKY_RELU(T, x, a) ((x) < 0 ? ALPHA(T, a) * (x) : (x))
#define ELU(T, x, a) ((x) < 0 ? ALPHA(T, a) * expm1(x) : (x))
/* alpha and gamma (in attrs.gamma) */
#define SELU(T, x, a) ((T)(a)->gamma * ((x) > 0 ? (x) : ALPHA(T, a) * expm1(x)))
#define CELU(T, x, a) ((x) > 0 ? (x) : ALPHA(T, a) * expm1((x) / ALPHA(T, a)))
#define SIGMOID(T, x, a) ((T)1 / ((T)1 + exp(-(x))))
#define TANH(T, x, a) tanh(x)
#define HARD_SIGMOID(T, x, a) CLAMP01(T, ALPHA(T, a) * (x) + BETA(T, a))
#define HARD_SWISH(T, x, a) ((x) * CLAMP01(T, (x) / (T)6 + (T)0.5))
#define SOFTPLUS(T, x, a) SOFTPLUS_OF(T, x)
#define SOFTSIGN(T, x, a) ((x) / ((T)1 + fabs(x)))
#define MISH(T, x, a) ((x) * tanh(SOFTPLUS_OF(T, x)))
#define THRESHOLDED_RELU(T, x, a) ((x) > ALPHA(T, a) ? (x) : (T)0)
/* Shrink's lambd is in attrs.alpha, its bias in attrs.beta; integer results saturate */
#define SHRINK_FLOAT(T, x, a)                                                                               \
    ((x) < -ALPHA(T, a) ? (x) + BETA(T, a) : (x) > ALPHA(T, a) ? (x) - BETA(T, a) : (T)0)
#define SHRINK_INT(T, x, a)                                                                                 \
    ((double)(x) < -(double)(a)->alpha   ? EW_SATURATE(T, (double)(x) + (a)->beta)                          \
     : (double)(x) > (double)(a)->alpha ? EW_SATURATE(T, (double)(x) - (a)->beta)                          \
                                         : (T)0)
/* PRelu: F(T, x, slope) */
#define PRELU(T, x, slope) ((x) < 0 ? (slope) * (x) : (x))
#define PRELU_UNSIGNED(T, x, slope) ((void)(slope), (x)) /* nothing is negative */

/* ---- kernels and their tables ------------------------------------------------------------------------- */

#define FLOAT_OP(op, F)                                                                                     \
    EW_FLOATS(EW_UNARY, op, F, EW_SAME)                                                                     \
    static const ew_table op##_kernels = {EW_FLOATS(EW_ENTRY, op)};

EW_FLOATS(EW_UNARY, relu, RELU, EW_SAME)
EW_SIGNED(EW_UNARY, relu, RELU, EW_SAME)
static const ew_table relu_kernels = {EW_FLOATS(EW_ENTRY, relu) EW_SIGNED(EW_ENTRY, relu)};

FLOAT_OP(leaky_relu, LEAKY_RELU)
FLOAT_OP(elu, ELU)
FLOAT_OP(selu, SELU)
FLOAT_OP(celu, CELU)
FLOAT_OP(sigmoid, SIGMOID)
FLOAT_OP(tanh, TANH)
FLOAT_OP(hard_sigmoid, HARD_SIGMOID)
FLOAT_OP(hard_swish, HARD_SWISH)
FLOAT_OP(softplus, SOFTPLUS)
FLOAT_OP(softsign, SOFTSIGN)
FLOAT_OP(mish, MISH)
FLOAT_OP(thresholded_relu, THRESHOLDED_RELU)

EW_FLOATS(EW_UNARY, shrink, SHRINK_FLOAT, EW_SAME)
EW_INTEGERS(EW_UNARY, shrink, SHRINK_INT, EW_SAME)
static const ew_table shrink_kernels = {EW_FLOATS(EW_ENTRY, shrink) EW_INTEGERS(EW_ENTRY, shrink)};

EW_FLOATS(EW_BINARY, prelu, PRELU, EW_SAME)
EW_SIGNED(EW_BINARY, prelu, PRELU, EW_SAME)
EW_UNSIGNED(EW_BINARY, prelu, PRELU_UNSIGNED, EW_SAME)
static const ew_table prelu_kernels = {EW_FLOATS(EW_ENTRY, prelu) EW_INTEGERS(EW_ENTRY, prelu)};

/* ---- operators with float attributes ------------------------------------------------------------------ */

static kiln_status activation_init(op_init_ctx *ctx, const ew_kernel *table)
{
    ew_node *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 1, 1, 1, 1));
    KILN_TRY(ew_pick(ctx, 0, table, &p->kernel));
    ctx->output_dtypes[0] = ctx->input_dtypes[0];
    return KILN_OK;
}

/* Reads float attribute `name` into *field, then picks the kernel. */
static kiln_status activation_init_with(op_init_ctx *ctx, const ew_kernel *table, const char *name, float dflt,
                                        float *field)
{
    KILN_TRY(attr_float(ctx->node, name, dflt, field));
    return activation_init(ctx, table);
}

static ew_attrs *node_attrs(op_init_ctx *ctx) { return &((ew_node *)ctx->params)->attrs; }

static kiln_status relu_init(op_init_ctx *ctx) { return activation_init(ctx, relu_kernels); }
static kiln_status hard_swish_init(op_init_ctx *ctx) { return activation_init(ctx, hard_swish_kernels); }
static kiln_status softplus_init(op_init_ctx *ctx) { return activation_init(ctx, softplus_kernels); }
static kiln_status softsign_init(op_init_ctx *ctx) { return activation_init(ctx, softsign_kernels); }
static kiln_status mish_init(op_init_ctx *ctx) { return activation_init(ctx, mish_kernels); }

/* Sigmoid and Tanh run vectorised for float32 where the CPU allows (kernels/vmath.h). */
static kiln_status sigmoid_init(op_init_ctx *ctx)
{
    KILN_TRY(activation_init(ctx, sigmoid_kernels));
    ew_prefer_vectorised(ctx, EW_VECTOR_SIGMOID, &((ew_node *)ctx->params)->kernel);
    return KILN_OK;
}

static kiln_status tanh_init(op_init_ctx *ctx)
{
    KILN_TRY(activation_init(ctx, tanh_kernels));
    ew_prefer_vectorised(ctx, EW_VECTOR_TANH, &((ew_node *)ctx->params)->kernel);
    return KILN_OK;
}

static kiln_status leaky_relu_init(op_init_ctx *ctx)
{
    return activation_init_with(ctx, leaky_relu_kernels, "alpha", 0.01f, &node_attrs(ctx)->alpha);
}

static kiln_status elu_init(op_init_ctx *ctx)
{
    return activation_init_with(ctx, elu_kernels, "alpha", 1.0f, &node_attrs(ctx)->alpha);
}

static kiln_status thresholded_relu_init(op_init_ctx *ctx)
{
    return activation_init_with(ctx, thresholded_relu_kernels, "alpha", 1.0f, &node_attrs(ctx)->alpha);
}

static kiln_status celu_init(op_init_ctx *ctx)
{
    KILN_TRY(activation_init_with(ctx, celu_kernels, "alpha", 1.0f, &node_attrs(ctx)->alpha));
    if (node_attrs(ctx)->alpha == 0) return kiln_fail(KILN_ERR_MALFORMED, "attribute 'alpha' must not be 0");
    return KILN_OK;
}

static kiln_status selu_init(op_init_ctx *ctx)
{
    KILN_TRY(attr_float(ctx->node, "gamma", 1.05070102214813232421875f, &node_attrs(ctx)->gamma));
    return activation_init_with(ctx, selu_kernels, "alpha", 1.67326319217681884765625f, &node_attrs(ctx)->alpha);
}

static kiln_status hard_sigmoid_init(op_init_ctx *ctx)
{
    KILN_TRY(attr_float(ctx->node, "beta", 0.5f, &node_attrs(ctx)->beta));
    return activation_init_with(ctx, hard_sigmoid_kernels, "alpha", 0.2f, &node_attrs(ctx)->alpha);
}

static kiln_status shrink_init(op_init_ctx *ctx)
{
    KILN_TRY(attr_float(ctx->node, "bias", 0.0f, &node_attrs(ctx)->beta));
    return activation_init_with(ctx, shrink_kernels, "lambd", 0.5f, &node_attrs(ctx)->alpha);
}

/* ---- PRelu: Y = X < 0 ? slope * X : X, slope broadcast towards X ------------------------------------ */

static kiln_status prelu_init(op_init_ctx *ctx)
{
    ew_node *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 2, 2, 1, 1));
    KILN_TRY(ew_pick(ctx, 0, prelu_kernels, &p->kernel));
    KILN_TRY(ew_require_same_dtype(ctx, 1, 0));
    ctx->output_dtypes[0] = ctx->input_dtypes[0];
    return KILN_OK;
}

static kiln_status prelu_shape(op_ctx *ctx)
{
    const kiln_tensor *x = ctx->inputs[0], *slope = ctx->inputs[1];
    int rank;
    int64_t dims[KILN_MAX_RANK];
    KILN_TRY(shape_broadcast(x->rank, x->dims, slope->rank, slope->dims, &rank, dims));
    if (!shape_equal(rank, dims, x->rank, x->dims)) {
        char sx[128], ss[128];
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "slope of shape %s does not broadcast to X of shape %s",
                         shape_format(ss, sizeof ss, slope->rank, slope->dims),
                         shape_format(sx, sizeof sx, x->rank, x->dims));
    }
    return op_shape_like_input0(ctx);
}

/* ---- Clip: bounds from attributes (opsets 1-10) or optional inputs (opset 11 on) --------------------- */

typedef struct clip_bounds {
    bool has_min, has_max;
    unsigned char min[8], max[8]; /* one element of the input's dtype */
} clip_bounds;

typedef struct clip_params {
    ew_kernel kernel;
    clip_bounds from_attributes;
} clip_params;

#define CLIP_KERNEL(T, sfx, dtype, unused)                                                                  \
    static void clip_##sfx(const void *params, void *out_, const void *const *in, const bool *varies,      \
                           int64_t n)                                                                       \
    {                                                                                                       \
        const clip_bounds *b = params;                                                                      \
        const bool has_min = b->has_min, has_max = b->has_max;                                              \
        T lo, hi;                                                                                           \
        memcpy(&lo, b->min, sizeof lo);                                                                     \
        memcpy(&hi, b->max, sizeof hi);                                                                     \
        const T *x = in[0];                                                                                 \
        T *out = out_;                                                                                      \
        const int64_t step = varies[0];                                                                     \
        for (int64_t i = 0; i < n; i++) {                                                                   \
            T v = x[i * step];                                                                              \
            if (has_min && v < lo) v = lo;                                                                  \
            if (has_max && v > hi) v = hi;                                                                  \
            out[i] = v;                                                                                     \
        }                                                                                                   \
    }

EW_FLOATS(CLIP_KERNEL, unused)
EW_INTEGERS(CLIP_KERNEL, unused)
static const ew_table clip_kernels = {EW_FLOATS(EW_ENTRY, clip) EW_INTEGERS(EW_ENTRY, clip)};
static const ew_table clip_float_kernels = {EW_FLOATS(EW_ENTRY, clip)}; /* opsets 1-10 */

/* Stores attribute `name` as a bound of dtype float32 or float64. An absent bound is open in opset 1 and
 * the end of the float range (`dflt`) from opset 6, which differ only for infinite inputs. */
static kiln_status clip_attribute_bound(op_init_ctx *ctx, const char *name, float dflt, bool *has,
                                        unsigned char *bound)
{
    float f;
    KILN_TRY(attr_float(ctx->node, name, dflt, &f));
    *has = ctx->opset >= 6 || graph_node_attr(ctx->node, name) != NULL;
    double d = f;
    if (ctx->input_dtypes[0] == KILN_FLOAT64) memcpy(bound, &d, sizeof d);
    else memcpy(bound, &f, sizeof f);
    return KILN_OK;
}

static kiln_status clip_init(op_init_ctx *ctx)
{
    clip_params *p = ctx->params;
    if (ctx->opset < 11) {
        KILN_TRY(op_require_arity(ctx, 1, 1, 1, 1));
        KILN_TRY(ew_pick(ctx, 0, clip_float_kernels, &p->kernel));
        clip_bounds *b = &p->from_attributes;
        KILN_TRY(clip_attribute_bound(ctx, "min", -FLT_MAX, &b->has_min, b->min));
        KILN_TRY(clip_attribute_bound(ctx, "max", FLT_MAX, &b->has_max, b->max));
    } else {
        KILN_TRY(op_require_arity(ctx, 1, 3, 1, 1));
        KILN_TRY(ew_pick(ctx, 0, clip_kernels, &p->kernel));
        KILN_TRY(ew_require_same_dtype(ctx, 1, 0));
        KILN_TRY(ew_require_same_dtype(ctx, 2, 0));
    }
    ctx->output_dtypes[0] = ctx->input_dtypes[0];
    return KILN_OK;
}

static kiln_status clip_shape(op_ctx *ctx)
{
    static const char *const names[] = {"", "min", "max"};
    for (int i = 1; i < ctx->n_inputs; i++)
        if (ctx->inputs[i]) KILN_TRY(op_require_one_value(ctx->inputs[i], names[i]));
    return op_shape_like_input0(ctx);
}

static kiln_status clip_eval(op_ctx *ctx)
{
    const clip_params *p = ctx->params;
    clip_bounds bounds = p->from_attributes;
    if (ctx->opset >= 11) {
        size_t size = kiln_dtype_size(ctx->inputs[0]->dtype);
        bounds.has_min = ctx->n_inputs > 1 && ctx->inputs[1];
        bounds.has_max = ctx->n_inputs > 2 && ctx->inputs[2];
        if (bounds.has_min) memcpy(bounds.min, ctx->inputs[1]->data, size);
        if (bounds.has_max) memcpy(bounds.max, ctx->inputs[2]->data, size);
    }
    ew_run(ctx->parallel, p->kernel, &bounds, ctx->outputs[0], 1, (const kiln_tensor *const *)ctx->inputs);
    return KILN_OK;
}

/* Opset 1 versions differ from later ones only by the legacy `consumed_inputs` attribute (ignored) and the
 * dtypes they allow, so each operator is registered from its first version (PRelu excepted). */
#define ACTIVATION(op_type, since, op)                                                                      \
    {"", op_type, since, 18, sizeof(ew_node), op##_init, op_shape_like_input0, ew_eval_node, 0}

const op_def ops_activation[] = {
    ACTIVATION("Relu", 1, relu),
    ACTIVATION("LeakyRelu", 1, leaky_relu),
    ACTIVATION("Elu", 1, elu),
    ACTIVATION("Selu", 1, selu),
    ACTIVATION("Celu", 12, celu),
    ACTIVATION("Sigmoid", 1, sigmoid),
    ACTIVATION("Tanh", 1, tanh),
    ACTIVATION("HardSigmoid", 1, hard_sigmoid),
    ACTIVATION("HardSwish", 14, hard_swish),
    ACTIVATION("Softplus", 1, softplus),
    ACTIVATION("Softsign", 1, softsign),
    ACTIVATION("Mish", 18, mish),
    ACTIVATION("ThresholdedRelu", 10, thresholded_relu),
    ACTIVATION("Shrink", 9, shrink),
    /* before opset 7 a slope's shape followed other (channel-wise) rules */
    {"", "PRelu", 7, 18, sizeof(ew_node), prelu_init, prelu_shape, ew_eval_node, 0},
    {"", "Clip", 1, 18, sizeof(clip_params), clip_init, clip_shape, clip_eval, 0},
    OP_TABLE_END,
};
