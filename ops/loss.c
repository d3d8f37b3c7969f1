/*
 * loss.c — NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss.
 *
 * Both are ONNX functions, implemented here as kernels sharing one step: the negative log-likelihood of
 * log-probabilities, with class weights, ignore_index and the none/sum/mean reductions. Scores are seen as
 * (N, C, D) with D the product of the trailing dims. SoftmaxCrossEntropyLoss first writes the log-softmax
 * into its log_prob output (or into scratch when that output is not requested).
 */
#include <math.h>

#include "ops/op.h"

enum { LOSS_NONE, LOSS_SUM, LOSS_MEAN };
static const char *const loss_reductions[] = {"none", "sum", "mean", NULL};

typedef struct loss_params {
    int reduction;
    bool has_ignore_index;
    int64_t ignore_index;
} loss_params;

/* Inputs: scores (N, C, d1..dk) as float or double, target (N, d1..dk), optional weight (C). */
static kiln_status loss_init(op_init_ctx *ctx, int max_outputs)
{
    loss_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 2, 3, 1, max_outputs));
    KILN_TRY(op_require_dtype(ctx, 0, DTYPES_FLOAT));
    KILN_TRY(op_require_dtype(ctx, 1, DTYPES_INDEX));
    if (op_has_input(ctx, 2))
        KILN_TRY(op_require_dtype(ctx, 2, (const kiln_dtype[]){ctx->input_dtypes[0], KILN_UNDEFINED}));
    KILN_TRY(attr_choice(ctx->node, "reduction", "mean", loss_reductions, &p->reduction));
    p->has_ignore_index = graph_node_attr(ctx->node, "ignore_index") != NULL;
    KILN_TRY(attr_int(ctx->node, "ignore_index", 0, &p->ignore_index));
    for (int k = 0; k < ctx->n_outputs; k++) ctx->output_dtypes[k] = ctx->input_dtypes[0];
    return KILN_OK;
}

static kiln_status nll_init(op_init_ctx *ctx) { return loss_init(ctx, 1); }
static kiln_status sce_init(op_init_ctx *ctx) { return loss_init(ctx, 2); }

static const kiln_tensor *loss_weight(const op_ctx *ctx)
{
    return ctx->n_inputs > 2 ? ctx->inputs[2] : NULL;
}

static kiln_status loss_check_shapes(const op_ctx *ctx)
{
    const kiln_tensor *scores = ctx->inputs[0], *target = ctx->inputs[1], *weight = loss_weight(ctx);
    bool ok = scores->rank >= 2 && target->rank == scores->rank - 1 && target->dims[0] == scores->dims[0];
    for (int d = 1; ok && d < target->rank; d++) ok = target->dims[d] == scores->dims[d + 1];
    if (!ok) {
        char a[128], b[128];
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "target shape %s does not match scores shape %s (N, C, d1...)",
                         shape_format(a, sizeof a, target->rank, target->dims),
                         shape_format(b, sizeof b, scores->rank, scores->dims));
    }
    if (weight && (weight->rank != 1 || weight->dims[0] != scores->dims[1]))
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "weight must have shape [%lld]", (long long)scores->dims[1]);
    return KILN_OK;
}

static kiln_status loss_shape(op_ctx *ctx)
{
    const loss_params *p = ctx->params;
    const kiln_tensor *target = ctx->inputs[1];
    KILN_TRY(loss_check_shapes(ctx));
    if (p->reduction == LOSS_NONE) op_set_output_shape(ctx, 0, target->rank, target->dims);
    else op_set_output_shape(ctx, 0, 0, NULL);
    return KILN_OK;
}

/* SoftmaxCrossEntropyLoss writes the log-softmax into log_prob, or into scratch when log_prob is omitted. */
static bool log_prob_requested(const op_ctx *ctx)
{
    return ctx->node->n_outputs > 1 && ctx->node->outputs[1] >= 0;
}

static kiln_status sce_shape(op_ctx *ctx)
{
    KILN_TRY(loss_shape(ctx));
    const kiln_tensor *scores = ctx->inputs[0];
    if (ctx->n_outputs > 1) op_set_output_shape(ctx, 1, scores->rank, scores->dims);
    if (!log_prob_requested(ctx)) ctx->scratch_bytes = tensor_bytes(scores);
    return KILN_OK;
}

/* Scores seen as (N, C, D) with D the product of d1..dk. */
typedef struct loss_job {
    const void *log_prob;
    const void *target;
    kiln_dtype target_dtype;
    const void *weight; /* NULL: every class weighs 1 */
    int64_t n, classes, positions;
    const loss_params *params;
    void *out;
} loss_job;

static int64_t target_at(const loss_job *job, int64_t i)
{
    return job->target_dtype == KILN_INT32 ? ((const int32_t *)job->target)[i] : ((const int64_t *)job->target)[i];
}

/* loss[n, d] = -weight[t] * log_prob[n, t, d] with t = target[n, d]; ignored targets weigh 0. "mean" divides
 * the sum by the total weight, as the spec's function body does (NaN when every target is ignored). */
#define DEFINE_LOSS(T, NAME)                                                                                  \
    static kiln_status NAME##_nll(const loss_job *job)                                                        \
    {                                                                                                         \
        const T *lp = job->log_prob, *weight = job->weight;                                                   \
        T *out = job->out;                                                                                    \
        double total = 0, total_weight = 0;                                                                   \
        for (int64_t i = 0; i < job->n * job->positions; i++) {                                               \
            int64_t t = target_at(job, i), n = i / job->positions, d = i % job->positions;                    \
            double w = 0, loss = 0;                                                                           \
            if (!job->params->has_ignore_index || t != job->params->ignore_index) {                           \
                if (t < 0 || t >= job->classes)                                                               \
                    return kiln_fail(KILN_ERR_RUNTIME, "target %lld is out of range for %lld classes",        \
                                     (long long)t, (long long)job->classes);                                  \
                w = weight ? (double)weight[t] : 1.0;                                                         \
                loss = -w * (double)lp[(n * job->classes + t) * job->positions + d];                          \
            }                                                                                                 \
            if (job->params->reduction == LOSS_NONE) out[i] = (T)loss;                                        \
            total += loss;                                                                                    \
            total_weight += w;                                                                                \
        }                                                                                                     \
        if (job->params->reduction == LOSS_SUM) out[0] = (T)total;                                            \
        if (job->params->reduction == LOSS_MEAN) out[0] = (T)(total / total_weight);                          \
        return KILN_OK;                                                                                       \
    }                                                                                                         \
    static void NAME##_log_softmax(const T *x, T *y, int64_t n, int64_t classes, int64_t positions)           \
    {                                                                                                         \
        if (classes == 0) return; /* no scores: every target is out of range, which nll reports */           \
        for (int64_t i = 0; i < n * positions; i++) {                                                         \
            const T *xs = x + (i / positions) * classes * positions + i % positions;                          \
            T *ys = y + (xs - x);                                                                             \
            T max = xs[0];                                                                                    \
            for (int64_t c = 1; c < classes; c++) max = xs[c * positions] > max ? xs[c * positions] : max;    \
            double sum = 0;                                                                                   \
            for (int64_t c = 0; c < classes; c++) sum += exp((double)(xs[c * positions] - max));              \
            T log_sum = (T)log(sum);                                                                          \
            for (int64_t c = 0; c < classes; c++) ys[c * positions] = xs[c * positions] - max - log_sum;      \
        }                                                                                                     \
    }

DEFINE_LOSS(float, loss_f32)
DEFINE_LOSS(double, loss_f64)

static loss_job loss_job_for(op_ctx *ctx, const void *log_prob)
{
    const kiln_tensor *scores = ctx->inputs[0], *target = ctx->inputs[1], *weight = loss_weight(ctx);
    return (loss_job){.log_prob = log_prob,
                      .target = target->data,
                      .target_dtype = target->dtype,
                      .weight = weight ? weight->data : NULL,
                      .n = scores->dims[0],
                      .classes = scores->dims[1],
                      .positions = shape_span(scores->dims, 2, scores->rank),
                      .params = ctx->params,
                      .out = ctx->outputs[0]->data};
}

static kiln_status nll_eval(op_ctx *ctx)
{
    KILN_TRY(loss_check_shapes(ctx));
    loss_job job = loss_job_for(ctx, ctx->inputs[0]->data);
    return ctx->inputs[0]->dtype == KILN_FLOAT32 ? loss_f32_nll(&job) : loss_f64_nll(&job);
}

static kiln_status sce_eval(op_ctx *ctx)
{
    KILN_TRY(loss_check_shapes(ctx));
    const kiln_tensor *scores = ctx->inputs[0];
    void *log_prob = ctx->n_outputs > 1 && ctx->outputs[1] ? ctx->outputs[1]->data : ctx->scratch;
    loss_job job = loss_job_for(ctx, log_prob);
    if (scores->dtype == KILN_FLOAT32) {
        loss_f32_log_softmax(scores->data, log_prob, job.n, job.classes, job.positions);
        return loss_f32_nll(&job);
    }
    loss_f64_log_softmax(scores->data, log_prob, job.n, job.classes, job.positions);
    return loss_f64_nll(&job);
}

const op_def ops_loss[] = {
    {"", "NegativeLogLikelihoodLoss", 12, 18, sizeof(loss_params), nll_init, loss_shape, nll_eval, 0},
    {"", "SoftmaxCrossEntropyLoss", 12, 18, sizeof(loss_params), sce_init, sce_shape, sce_eval, 0},
    OP_TABLE_END,
};
