/*
 * optimizer.c — the training optimisers of the ai.onnx.preview.training domain (opset 1): Adagrad, Momentum
 * (standard and Nesterov) and Adam. Each takes a learning rate R and step count T (scalars), then n tensors X
 * to optimise, their gradients G, and per X one (Adagrad's H, Momentum's V) or two (Adam's V then H)
 * accumulated states; it outputs the n updated X, then the updated states in the same order.
 *
 * The three share everything but the per-element rule: inputs are laid out as groups of n, and one loop
 * walks every tensor, widening each element to double, applying the rule of optimiser_update and narrowing
 * the results back. The step's scalars (the decayed or bias-corrected rate, the first-step gradient weight)
 * are computed once per run in optimizer_step_scalars, exactly as the spec's reference does.
 */
#include <math.h>

#include "ops/op.h"

#define OPTIMIZER_GRAIN 16384
#define OPTIMIZER_MAX_STATES 2

typedef enum optimizer_kind { OPT_ADAGRAD, OPT_MOMENTUM, OPT_NESTEROV, OPT_ADAM } optimizer_kind;

typedef struct optimizer_params {
    optimizer_kind kind;
    int states; /* accumulated tensors per X */
    int n;      /* tensors optimised */
    double norm_coefficient, norm_coefficient_post, epsilon, decay_factor, alpha, beta;
} optimizer_params;

/* What one run's R and T make of the attributes. */
typedef struct optimizer_step {
    double rate;          /* learning rate after Adagrad's decay or Adam's bias correction */
    double gradient_gain; /* Momentum: beta, or 1 on the first step (T = 0) */
} optimizer_step;

/* ---- the rules -------------------------------------------------------------------------------------- */

static optimizer_step optimizer_step_scalars(const optimizer_params *p, double r, int64_t t)
{
    optimizer_step s = {r, 1.0};
    switch (p->kind) {
    case OPT_ADAGRAD: s.rate = r / (1.0 + (double)t * p->decay_factor); break;
    case OPT_MOMENTUM:
    case OPT_NESTEROV: s.gradient_gain = t > 0 ? p->beta : 1.0; break;
    case OPT_ADAM:
        if (t > 0) s.rate = r * sqrt(1.0 - pow(p->beta, (double)t)) / (1.0 - pow(p->alpha, (double)t));
        break;
    }
    return s;
}

/* Updates one element: x and state[] in, the new x returned and state[] overwritten. */
static double optimizer_update(const optimizer_params *p, const optimizer_step *s, double x, double g,
                               double *state)
{
    double regularized = p->norm_coefficient * x + g;
    switch (p->kind) {
    case OPT_ADAGRAD: {
        state[0] += regularized * regularized;
        return x - s->rate * regularized / (sqrt(state[0]) + p->epsilon);
    }
    case OPT_MOMENTUM:
        state[0] = p->alpha * state[0] + s->gradient_gain * regularized;
        return x - s->rate * state[0];
    case OPT_NESTEROV:
        state[0] = p->alpha * state[0] + s->gradient_gain * regularized;
        return x - s->rate * (regularized + p->alpha * state[0]);
    case OPT_ADAM: {
        state[0] = p->alpha * state[0] + (1.0 - p->alpha) * regularized;
        state[1] = p->beta * state[1] + (1.0 - p->beta) * (regularized * regularized);
        double moved = x - s->rate * (state[0] / (sqrt(state[1]) + p->epsilon));
        return (1.0 - p->norm_coefficient_post) * moved;
    }
    }
    return x;
}

/* ---- init and shape ----------------------------------------------------------------------------------- */

static int x_input(int i) { return 2 + i; }
static int g_input(const optimizer_params *p, int i) { return 2 + p->n + i; }
static int state_input(const optimizer_params *p, int k, int i) { return 2 + (2 + k) * p->n + i; }
static int state_output(const optimizer_params *p, int k, int i) { return (1 + k) * p->n + i; }

static kiln_status read_double(const graph_node *node, const char *name, float dflt, bool required, double *out)
{
    if (required && !graph_node_attr(node, name))
        return kiln_fail(KILN_ERR_MALFORMED, "attribute '%s' is required", name);
    float v;
    KILN_TRY(attr_float(node, name, dflt, &v));
    if (!isfinite(v)) return kiln_fail(KILN_ERR_MALFORMED, "attribute '%s' must be finite, not %g", name, v);
    *out = v;
    return KILN_OK;
}

static kiln_status optimizer_read_attrs(op_init_ctx *ctx, optimizer_params *p)
{
    const graph_node *node = ctx->node;
    switch (p->kind) {
    case OPT_ADAGRAD:
        KILN_TRY(read_double(node, "decay_factor", 0.0f, false, &p->decay_factor));
        KILN_TRY(read_double(node, "epsilon", 1e-6f, false, &p->epsilon));
        return read_double(node, "norm_coefficient", 0.0f, false, &p->norm_coefficient);
    case OPT_ADAM:
        KILN_TRY(read_double(node, "alpha", 0.9f, false, &p->alpha));
        KILN_TRY(read_double(node, "beta", 0.999f, false, &p->beta));
        KILN_TRY(read_double(node, "epsilon", 1e-6f, false, &p->epsilon));
        KILN_TRY(read_double(node, "norm_coefficient", 0.0f, false, &p->norm_coefficient));
        return read_double(node, "norm_coefficient_post", 0.0f, false, &p->norm_coefficient_post);
    default: {
        static const char *const modes[] = {"standard", "nesterov", NULL};
        int mode;
        if (!graph_node_attr(node, "mode")) return kiln_fail(KILN_ERR_MALFORMED, "attribute 'mode' is required");
        KILN_TRY(attr_choice(node, "mode", "", modes, &mode));
        p->kind = mode == 0 ? OPT_MOMENTUM : OPT_NESTEROV;
        KILN_TRY(read_double(node, "alpha", 0.0f, true, &p->alpha));
        KILN_TRY(read_double(node, "beta", 0.0f, true, &p->beta));
        return read_double(node, "norm_coefficient", 0.0f, true, &p->norm_coefficient);
    }
    }
}

static kiln_status optimizer_init(op_init_ctx *ctx, optimizer_kind kind, int states)
{
    optimizer_params *p = ctx->params;
    p->kind = kind;
    p->states = states;
    int group = 2 + states;
    if (ctx->n_inputs < 2 + group || (ctx->n_inputs - 2) % group != 0)
        return kiln_fail(KILN_ERR_MALFORMED, "has %d inputs; expected R, T and groups of %d tensors (X, G, %s)",
                         ctx->n_inputs, group, states == 2 ? "V, H" : kind == OPT_ADAGRAD ? "H" : "V");
    p->n = (ctx->n_inputs - 2) / group;
    if (ctx->n_outputs != p->n * (1 + states))
        return kiln_fail(KILN_ERR_MALFORMED, "has %d outputs for %d optimised tensors; expected %d", ctx->n_outputs,
                         p->n, p->n * (1 + states));
    KILN_TRY(op_require_dtype(ctx, 0, DTYPES_FLOAT));
    KILN_TRY(op_require_dtype(ctx, 1, (const kiln_dtype[]){KILN_INT64, KILN_UNDEFINED}));
    for (int i = 2; i < ctx->n_inputs; i++) {
        KILN_TRY(op_require_dtype(ctx, i, DTYPES_FLOAT));
        if (ctx->input_dtypes[i] != ctx->input_dtypes[2])
            return kiln_fail(KILN_ERR_MALFORMED, "input %d has dtype %s, input 2 (X) has %s", i,
                             kiln_dtype_name(ctx->input_dtypes[i]), kiln_dtype_name(ctx->input_dtypes[2]));
    }
    KILN_TRY(optimizer_read_attrs(ctx, p));
    for (int k = 0; k < ctx->n_outputs; k++) ctx->output_dtypes[k] = ctx->input_dtypes[2];
    return KILN_OK;
}

static kiln_status adagrad_init(op_init_ctx *ctx) { return optimizer_init(ctx, OPT_ADAGRAD, 1); }
static kiln_status momentum_init(op_init_ctx *ctx) { return optimizer_init(ctx, OPT_MOMENTUM, 1); }
static kiln_status adam_init(op_init_ctx *ctx) { return optimizer_init(ctx, OPT_ADAM, 2); }

static kiln_status require_like_x(const op_ctx *ctx, int input, int x)
{
    const kiln_tensor *a = ctx->inputs[input], *b = ctx->inputs[x];
    if (!shape_equal(a->rank, a->dims, b->rank, b->dims)) {
        char sa[128], sb[128];
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "input %d has shape %s, its X (input %d) has %s", input,
                         shape_format(sa, sizeof sa, a->rank, a->dims), x, shape_format(sb, sizeof sb, b->rank, b->dims));
    }
    return KILN_OK;
}

static kiln_status optimizer_shape(op_ctx *ctx)
{
    const optimizer_params *p = ctx->params;
    KILN_TRY(op_require_one_value(ctx->inputs[0], "R"));
    KILN_TRY(op_require_one_value(ctx->inputs[1], "T"));
    for (int i = 0; i < p->n; i++) {
        const kiln_tensor *x = ctx->inputs[x_input(i)];
        KILN_TRY(require_like_x(ctx, g_input(p, i), x_input(i)));
        op_set_output_shape(ctx, i, x->rank, x->dims);
        for (int k = 0; k < p->states; k++) {
            KILN_TRY(require_like_x(ctx, state_input(p, k, i), x_input(i)));
            op_set_output_shape(ctx, state_output(p, k, i), x->rank, x->dims);
        }
    }
    return KILN_OK;
}

/* ---- eval --------------------------------------------------------------------------------------------- */

typedef struct optimizer_job {
    const optimizer_params *p;
    optimizer_step step;
    const kiln_tensor *x, *g, *state[OPTIMIZER_MAX_STATES];
    kiln_tensor *x_new, *state_new[OPTIMIZER_MAX_STATES]; /* NULL when the output is omitted */
} optimizer_job;

/* The element loop for X's C type T; states are read before any output is written, so in-place is safe. */
#define OPTIMIZER_RANGE(T)                                                                                  \
    for (int64_t j = begin; j < end; j++) {                                                                 \
        double state[OPTIMIZER_MAX_STATES] = {0};                                                           \
        for (int k = 0; k < job->p->states; k++) state[k] = ((const T *)job->state[k]->data)[j];            \
        double x = optimizer_update(job->p, &job->step, ((const T *)job->x->data)[j],                       \
                                    ((const T *)job->g->data)[j], state);                                   \
        if (job->x_new) ((T *)job->x_new->data)[j] = (T)x;                                                  \
        for (int k = 0; k < job->p->states; k++)                                                            \
            if (job->state_new[k]) ((T *)job->state_new[k]->data)[j] = (T)state[k];                        \
    }

static void optimizer_range(void *arg, int64_t begin, int64_t end)
{
    const optimizer_job *job = arg;
    if (job->x->dtype == KILN_FLOAT32) {
        OPTIMIZER_RANGE(float)
    } else {
        OPTIMIZER_RANGE(double)
    }
}

#undef OPTIMIZER_RANGE

static kiln_status optimizer_eval(op_ctx *ctx)
{
    const optimizer_params *p = ctx->params;
    optimizer_job job = {.p = p};
    job.step = optimizer_step_scalars(p, tensor_get_double(ctx->inputs[0], 0), tensor_get_int(ctx->inputs[1], 0));
    for (int i = 0; i < p->n; i++) {
        job.x = ctx->inputs[x_input(i)];
        job.g = ctx->inputs[g_input(p, i)];
        job.x_new = ctx->outputs[i];
        for (int k = 0; k < p->states; k++) {
            job.state[k] = ctx->inputs[state_input(p, k, i)];
            job.state_new[k] = ctx->outputs[state_output(p, k, i)];
        }
        parallel_for(ctx->parallel, tensor_numel(job.x), OPTIMIZER_GRAIN, optimizer_range, &job);
    }
    return KILN_OK;
}

#define TRAINING_DOMAIN "ai.onnx.preview.training"

const op_def ops_optimizer[] = {
    {TRAINING_DOMAIN, "Adagrad", 1, 1, sizeof(optimizer_params), adagrad_init, optimizer_shape, optimizer_eval, 0},
    {TRAINING_DOMAIN, "Momentum", 1, 1, sizeof(optimizer_params), momentum_init, optimizer_shape, optimizer_eval, 0},
    {TRAINING_DOMAIN, "Adam", 1, 1, sizeof(optimizer_params), adam_init, optimizer_shape, optimizer_eval, 0},
    OP_TABLE_END,
};
