/*
 * kiln_transformer.c — operators of the ai.kiln domain that graph/fuse_transformer.c fuses transformer
 * subgraphs into. Files do not contain them; the fusion pass creates them at load.
 *
 *   Gelu        y = 0.5 * x * (1 + erf(x / sqrt(2))), or with approximate = "tanh" (as ONNX's Gelu-20)
 *               0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))   float32, any shape (kernels/gelu.h)
 *   Attention   Q (B,H,S,D), K^T (B,H,D,T), V (B,H,T,Dv)[, mask broadcast to (B,H,S,T)], attribute scale:
 *               softmax(scale * Q K^T + mask) V, (B,H,S,Dv); leading dims broadcast as MatMul's
 *               (kernels/attention.h)
 */
#include <string.h>

#include "kernels/attention.h"
#include "kernels/gelu.h"
#include "ops/op.h"

static const kiln_dtype FLOAT32_ONLY[] = {KILN_FLOAT32, KILN_UNDEFINED};

typedef struct gelu_params {
    bool tanh_form;
} gelu_params;

static kiln_status gelu_init(op_init_ctx *ctx)
{
    static const char *const FORMS[] = {"none", "tanh", NULL};
    gelu_params *p = ctx->params;
    int form;
    KILN_TRY(attr_choice(ctx->node, "approximate", "none", FORMS, &form));
    p->tanh_form = form == 1;
    KILN_TRY(op_require_arity(ctx, 1, 1, 1, 1));
    KILN_TRY(op_require_dtype(ctx, 0, FLOAT32_ONLY));
    ctx->output_dtypes[0] = KILN_FLOAT32;
    return KILN_OK;
}

typedef struct gelu_job {
    const float *x;
    float *y;
    bool tanh_form;
} gelu_job;

static void gelu_range(void *arg, int64_t begin, int64_t end)
{
    const gelu_job *job = arg;
    if (job->tanh_form) gelu_tanh_f32(job->x + begin, job->y + begin, end - begin);
    else gelu_f32(job->x + begin, job->y + begin, end - begin);
}

static kiln_status gelu_eval(op_ctx *ctx)
{
    const gelu_params *p = ctx->params;
    gelu_job job = {ctx->inputs[0]->data, ctx->outputs[0]->data, p->tanh_form};
    parallel_for(ctx->parallel, tensor_numel(ctx->inputs[0]), 16384, gelu_range, &job);
    return KILN_OK;
}

/* ---- Attention ---------------------------------------------------------------------------------------- */

typedef struct attention_params {
    float scale;
} attention_params;

static kiln_status attention_init(op_init_ctx *ctx)
{
    attention_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 3, 4, 1, 1));
    for (int i = 0; i < ctx->n_inputs; i++)
        if (op_has_input(ctx, i)) KILN_TRY(op_require_dtype(ctx, i, FLOAT32_ONLY));
    KILN_TRY(attr_float(ctx->node, "scale", 1.0f, &p->scale));
    ctx->output_dtypes[0] = KILN_FLOAT32;
    return KILN_OK;
}

/* Dim d of t seen as rank 4, aligned to the right (missing dims are 1). */
static int64_t dim4(const kiln_tensor *t, int d)
{
    int k = d - (4 - t->rank);
    return k >= 0 ? t->dims[k] : 1;
}

/* Leading dim d (0: B, 1: H) of the output from Q, K^T, V and the mask (each equal to it or 1), and each of
 * Q, K^T and V's element step along it (0 where it broadcasts). */
static kiln_status broadcast_lead(const kiln_tensor *const *in, int n, int d, int64_t *dim, int64_t steps[3])
{
    *dim = 1;
    for (int i = 0; i < n; i++)
        if (dim4(in[i], d) != 1) *dim = dim4(in[i], d);
    for (int i = 0; i < n; i++)
        if (dim4(in[i], d) != 1 && dim4(in[i], d) != *dim)
            return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "dim %d of Q, K^T, V and the mask do not broadcast", d);
    for (int i = 0; i < 3; i++)
        steps[i] = in[i]->dims[d] == 1 ? 0 : in[i]->dims[2] * in[i]->dims[3] * (d == 0 ? in[i]->dims[1] : 1);
    return KILN_OK;
}

/* Element steps of the mask (rank <= 4, aligned to the right) along (B, H, S, T). */
static kiln_status mask_steps(const kiln_tensor *mask, const int64_t want[4], int64_t steps[4])
{
    int64_t stride = 1;
    for (int d = 3; d >= 0; d--) {
        int64_t dim = dim4(mask, d);
        if (dim != 1 && dim != want[d])
            return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "the mask does not broadcast to the scores");
        steps[d] = dim == 1 ? 0 : stride;
        stride *= dim;
    }
    return KILN_OK;
}

static kiln_status describe_attention(const op_ctx *ctx, attention_problem *p)
{
    const attention_params *params = ctx->params;
    const kiln_tensor *mask = ctx->n_inputs > 3 ? ctx->inputs[3] : NULL;
    const kiln_tensor *in[4] = {ctx->inputs[0], ctx->inputs[1], ctx->inputs[2], mask};
    for (int i = 0; i < 3; i++)
        if (in[i]->rank != 4)
            return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "input %d has rank %d, expected 4", i, in[i]->rank);
    if (mask && mask->rank > 4)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "the mask has rank %d, above 4", mask->rank);
    memset(p, 0, sizeof *p);
    p->S = in[0]->dims[2], p->D = in[0]->dims[3], p->T = in[1]->dims[3], p->Dv = in[2]->dims[3];
    if (in[1]->dims[2] != p->D || in[2]->dims[2] != p->T)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "Q, K^T and V do not chain: D %lld / %lld, T %lld / %lld",
                         (long long)p->D, (long long)in[1]->dims[2], (long long)p->T, (long long)in[2]->dims[2]);
    int64_t steps[3];
    KILN_TRY(broadcast_lead(in, mask ? 4 : 3, 0, &p->B, steps));
    p->q_step[0] = steps[0], p->k_step[0] = steps[1], p->v_step[0] = steps[2];
    KILN_TRY(broadcast_lead(in, mask ? 4 : 3, 1, &p->H, steps));
    p->q_step[1] = steps[0], p->k_step[1] = steps[1], p->v_step[1] = steps[2];
    p->scale = params->scale;
    p->has_mask = mask != NULL;
    int64_t scores[4] = {p->B, p->H, p->S, p->T};
    return mask ? mask_steps(mask, scores, p->mask_step) : KILN_OK;
}

static kiln_status attention_shape(op_ctx *ctx)
{
    attention_problem p;
    KILN_TRY(describe_attention(ctx, &p));
    int64_t dims[4] = {p.B, p.H, p.S, p.Dv}, count;
    if (shape_numel_checked(4, dims, &count) != KILN_OK)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "the attention output is too large");
    op_set_output_shape(ctx, 0, 4, dims);
    ctx->scratch_bytes = attention_f32_scratch_bytes(&p, ctx->threads > 0 ? ctx->threads : 1);
    return KILN_OK;
}

static kiln_status attention_eval(op_ctx *ctx)
{
    attention_problem p;
    KILN_TRY(describe_attention(ctx, &p));
    attention_tensors t = {ctx->inputs[0]->data, ctx->inputs[1]->data, ctx->inputs[2]->data,
                           p.has_mask ? ctx->inputs[3]->data : NULL, ctx->outputs[0]->data};
    attention_f32(&p, &t, ATTENTION_FAST, ctx->scratch, ctx->parallel);
    return KILN_OK;
}

const op_def ops_kiln_transformer[] = {
    {"ai.kiln", "Gelu", 1, 1, sizeof(gelu_params), gelu_init, op_shape_like_input0, gelu_eval, 0},
    {"ai.kiln", "Attention", 1, 1, sizeof(attention_params), attention_init, attention_shape, attention_eval, 0},
    OP_TABLE_END,
};
