/*
 * conv.c — Conv and ConvTranspose in float32 over 1 to 3 spatial dims, with groups (depthwise included),
 * dilations, strides, pads, auto_pad, output_padding and output_shape.
 *
 * The operators only describe the problem: input shapes and attributes become a conv_shape (window sizes
 * from conv_geometry.c), and kernels/conv.c picks the algorithm (im2col + GEMM, a plain GEMM for pointwise
 * kernels, direct loops for depthwise) and how to spread it over threads. ONNX's (M, C/group, k...) weight
 * layout already is the row-major GEMM operand, but a constant forward weight is packed once at load into
 * the GEMM's panels (counted as pre-packed memory), which every run would otherwise redo.
 */
#include <math.h>
#include <string.h>

#include "kernels/conv.h"
#include "kernels/winograd.h"
#include "ops/conv_geometry.h"
#include "ops/op.h"

typedef struct conv_params {
    conv_attrs attrs;
    int64_t groups;
    bool has_packed;
    conv_packed_filters packed; /* the constant weight of a forward, non-depthwise convolution */
    gemm_activation act;        /* FusedConv: the fused activation, with a clamp's bounds */
    float lo, hi;
    bool x_blocked, y_blocked;  /* FusedConv: channel-blocked input or output (graph/layout.c) */
} conv_params;

static const kiln_dtype DTYPES_FLOAT32[] = {KILN_FLOAT32, KILN_UNDEFINED};

static kiln_status conv_init_with(op_init_ctx *ctx, unsigned features)
{
    conv_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 2, 3, 1, 1));
    for (int i = 0; i < ctx->n_inputs; i++)
        if (op_has_input(ctx, i)) KILN_TRY(op_require_dtype(ctx, i, DTYPES_FLOAT32));
    KILN_TRY(attr_int(ctx->node, "group", 1, &p->groups));
    if (p->groups < 1 || p->groups > INT32_MAX)
        return kiln_fail(KILN_ERR_MALFORMED, "group is %lld, expected a positive count", (long long)p->groups);
    KILN_TRY(conv_attrs_read(ctx->node, features, &p->attrs));
    ctx->output_dtypes[0] = KILN_FLOAT32;
    return KILN_OK;
}

/* A 4-D constant weight that Winograd can take (3x3, stride 1, ...), transformed for it instead of packed
 * for im2col: every 2-D input then runs by Winograd, except outputs narrower than 3 (im2col on w as it is). */
static bool pack_winograd_filters(op_init_ctx *ctx, conv_params *p, const kiln_tensor *w, kiln_status *st)
{
    const conv_attrs *a = &p->attrs;
    int64_t ones[2] = {1, 1};
    if (w->rank != 4 || (a->n_strides && a->n_strides != 2) || (a->n_dilations && a->n_dilations != 2) ||
        (a->n_kernel && (a->n_kernel != 2 || a->kernel[0] != w->dims[2] || a->kernel[1] != w->dims[3])) ||
        !conv_winograd_filters_apply(w->dims[0], w->dims[1], w->dims + 2, a->n_strides ? a->strides : ones,
                                     a->n_dilations ? a->dilations : ones, 2, p->groups))
        return false;
    size_t bytes = conv_winograd_filters_bytes(w->dims[0], w->dims[1]);
    void *memory = bytes < SIZE_MAX ? op_alloc_prepacked(ctx, bytes) : NULL;
    if (!memory) return false; /* im2col then, which needs no memory of its own */
    *st = conv_winograd_pack_filters(w->dims[0], w->dims[1], w->data, memory, &p->packed.winograd);
    p->has_packed = *st == KILN_OK;
    return true;
}

/* A constant forward weight (M, C/group, k...) packed for the GEMM, unless it is depthwise (no GEMM). */
static kiln_status pack_constant_filters(op_init_ctx *ctx, conv_params *p)
{
    const kiln_tensor *w = ctx->constants[1];
    if (!w || w->dtype != KILN_FLOAT32 || w->rank < 3 || !w->data || tensor_numel(w) == 0) return KILN_OK;
    int64_t out_channels = w->dims[0], per_group_k = tensor_numel(w) / out_channels;
    bool depthwise = w->dims[1] == 1 && out_channels == p->groups;
    if (depthwise || out_channels % p->groups != 0) return KILN_OK;
    kiln_status st = KILN_OK;
    if (pack_winograd_filters(ctx, p, w, &st)) return st;
    size_t bytes = conv_f32_pack_filters_bytes(out_channels, per_group_k, p->groups);
    void *memory = bytes && bytes < SIZE_MAX ? op_alloc_prepacked(ctx, bytes) : NULL;
    if (!memory) return bytes == SIZE_MAX ? KILN_OK : KILN_ERR_OUT_OF_MEMORY;
    conv_f32_pack_filters(out_channels, per_group_k, p->groups, w->data, memory, &p->packed);
    p->has_packed = true;
    return KILN_OK;
}

static kiln_status conv_init(op_init_ctx *ctx)
{
    KILN_TRY(conv_init_with(ctx, 0));
    return pack_constant_filters(ctx, ctx->params);
}

/* FusedConv's `blocked_input` and `blocked_output` (0 or 1, absent 0): which activations are channel-blocked
 * (kernels/conv.h). Whether the convolution can take them is known once shapes are. */
static kiln_status read_layouts(op_init_ctx *ctx, conv_params *p)
{
    int64_t x_blocked, y_blocked;
    KILN_TRY(attr_int(ctx->node, "blocked_input", 0, &x_blocked));
    KILN_TRY(attr_int(ctx->node, "blocked_output", 0, &y_blocked));
    if ((x_blocked != 0 && x_blocked != 1) || (y_blocked != 0 && y_blocked != 1))
        return kiln_fail(KILN_ERR_MALFORMED, "blocked_input and blocked_output must be 0 or 1");
    p->x_blocked = x_blocked, p->y_blocked = y_blocked;
    return KILN_OK;
}

/* ai.kiln::FusedConv (made by graph/fuse.c and graph/layout.c): Conv, then the activation named by
 * `activation`, if any: "Relu" or "Clip" (a clamp to `activation_params` [lo, hi]), "Sigmoid", "SiLU"
 * (x * sigmoid(x)), "HardSigmoid" or "HardSwish" (x * hard_sigmoid(x)), the last two with
 * `activation_params` [alpha, beta]; its input or output may be channel-blocked (read_layouts). */
static kiln_status fused_conv_init(op_init_ctx *ctx)
{
    static const struct {
        const char *name;
        gemm_activation act;
        bool has_params;
    } known[] = {{"Relu", GEMM_ACT_CLAMP, true},         {"Clip", GEMM_ACT_CLAMP, true},
                 {"Sigmoid", GEMM_ACT_SIGMOID, false},   {"SiLU", GEMM_ACT_SILU, false},
                 {"HardSigmoid", GEMM_ACT_HARD_SIGMOID, true}, {"HardSwish", GEMM_ACT_HARD_SWISH, true}};
    conv_params *p = ctx->params;
    KILN_TRY(conv_init(ctx));
    KILN_TRY(read_layouts(ctx, p));
    const graph_attr *act = graph_node_attr(ctx->node, "activation");
    if (!act) return KILN_OK;
    if (act->type != ATTR_STRING) return kiln_fail(KILN_ERR_MALFORMED, "attribute 'activation' must be a string");
    size_t k = 0, count = sizeof known / sizeof known[0];
    while (k < count && strcmp(act->s, known[k].name) != 0) k++;
    if (k == count)
        return kiln_fail(KILN_ERR_MALFORMED,
                         "activation '%s' is not one of Relu, Clip, Sigmoid, SiLU, HardSigmoid, HardSwish", act->s);
    p->act = known[k].act;
    if (!known[k].has_params) return KILN_OK;
    const graph_attr *params = graph_node_attr(ctx->node, "activation_params");
    bool bounds = p->act == GEMM_ACT_CLAMP; /* else alpha and beta, which must be finite */
    if (!params || params->type != ATTR_FLOATS || params->count != 2 || isnan(params->floats[0]) ||
        isnan(params->floats[1]) || (!bounds && (!isfinite(params->floats[0]) || !isfinite(params->floats[1]))))
        return kiln_fail(KILN_ERR_MALFORMED, "activation_params must be two numbers: [lo, hi] or [alpha, beta]");
    p->lo = params->floats[0], p->hi = params->floats[1];
    return KILN_OK;
}
static kiln_status conv_transpose_init(op_init_ctx *ctx) { return conv_init_with(ctx, CONV_ATTR_OUTPUT_PADDING); }

static const conv_packed_filters *packed_filters(const op_ctx *ctx)
{
    const conv_params *p = ctx->params;
    return p->has_packed ? &p->packed : NULL;
}

static const kiln_tensor *bias_input(const op_ctx *ctx) { return ctx->n_inputs > 2 ? ctx->inputs[2] : NULL; }

/* The convolution the current input shapes describe; shape() and eval() both derive it. */
static kiln_status describe_conv(const op_ctx *ctx, bool transpose, conv_shape *s, int *spatial)
{
    const conv_params *p = ctx->params;
    const kiln_tensor *b = bias_input(ctx);
    KILN_TRY(conv_describe(&p->attrs, p->groups, transpose, ctx->inputs[0], ctx->inputs[1], s, spatial));
    s->x_blocked = p->x_blocked && conv_blocked_layout_pays_for(conv_volume(s->win.in));
    s->y_blocked = p->y_blocked && conv_blocked_layout_pays_for(conv_volume(s->win.out));
    if (!conv_blocked_layout_fits(s))
        return kiln_fail(KILN_ERR_MALFORMED,
                         "a channel-blocked %s needs a pointwise or depthwise convolution with a multiple of %d "
                         "channels there", s->x_blocked ? "input" : "output", CONV_BLOCK);
    if (b && (b->rank != 1 || b->dims[0] != s->out_channels))
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "the bias must be 1-D with %lld values", (long long)s->out_channels);
    return KILN_OK;
}

static kiln_status conv_shape_with(op_ctx *ctx, bool transpose)
{
    conv_shape s;
    int spatial = 0;
    KILN_TRY(describe_conv(ctx, transpose, &s, &spatial));
    int64_t dims[2 + CONV_SPATIAL], numel;
    conv_output_dims(&s.win, spatial, s.batch, s.out_channels, dims);
    KILN_TRY(shape_numel_checked(spatial + 2, dims, &numel));
    op_set_output_shape(ctx, 0, spatial + 2, dims);
    if (numel == 0) return KILN_OK;
    int threads = ctx->threads > 0 ? ctx->threads : 1;
    ctx->scratch_bytes = transpose ? conv_transpose_f32_scratch_bytes(&s, conv_transpose_f32_choose(&s), threads)
                                   : conv_f32_scratch_bytes(&s, conv_f32_choose(&s, packed_filters(ctx)), threads);
    if (ctx->scratch_bytes > KILN_MAX_ELEMENTS)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "the convolution needs too much working memory");
    return KILN_OK;
}

static kiln_status conv_infer_shape(op_ctx *ctx) { return conv_shape_with(ctx, false); }
static kiln_status conv_transpose_infer_shape(op_ctx *ctx) { return conv_shape_with(ctx, true); }

static kiln_status conv_eval_with(op_ctx *ctx, bool transpose)
{
    const conv_params *p = ctx->params;
    conv_shape s;
    int spatial = 0;
    KILN_TRY(describe_conv(ctx, transpose, &s, &spatial));
    if (tensor_numel(ctx->outputs[0]) == 0) return KILN_OK;
    const kiln_tensor *b = bias_input(ctx);
    const float *x = ctx->inputs[0]->data, *w = ctx->inputs[1]->data, *bias = b ? b->data : NULL;
    float *y = ctx->outputs[0]->data;
    if (transpose) {
        conv_transpose_f32(&s, conv_transpose_f32_choose(&s), x, w, bias, y, ctx->scratch, ctx->scratch_bytes,
                           ctx->parallel);
        return KILN_OK;
    }
    conv_extras extras = {.packed = packed_filters(ctx), .act = p->act, .lo = p->lo, .hi = p->hi};
    conv_f32(&s, conv_f32_choose(&s, extras.packed), x, w, bias, &extras, y, ctx->scratch, ctx->scratch_bytes, ctx->parallel);
    return KILN_OK;
}

static kiln_status conv_eval(op_ctx *ctx) { return conv_eval_with(ctx, false); }
static kiln_status conv_transpose_eval(op_ctx *ctx) { return conv_eval_with(ctx, true); }

const op_def ops_conv[] = {
    {"", "Conv", 1, 18, sizeof(conv_params), conv_init, conv_infer_shape, conv_eval, 0},
    {"ai.kiln", "FusedConv", 1, 1, sizeof(conv_params), fused_conv_init, conv_infer_shape, conv_eval, 0},
    {"", "ConvTranspose", 1, 18, sizeof(conv_params), conv_transpose_init, conv_transpose_infer_shape, conv_transpose_eval, 0},
    OP_TABLE_END,
};
