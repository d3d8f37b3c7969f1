/*
 * kiln_tree.c — ai.kiln::TreeEnsemble, the operator natively loaded XGBoost and LightGBM models run as.
 *
 * init reads the node's tree_schema attributes (formats/tree_schema.h) and builds the engine's ensemble from
 * them once (tree_ensemble_build_schema in kernels/tree_ensemble.h), which validates the structure a hostile
 * file could break. eval scores the rows and applies the objective's
 * transform: the model's outputs are those of its usual ONNX-ML conversion (label + probabilities, or
 * variable), or the margins before the transform when the session asks for raw scores.
 */
#include <math.h>
#include <string.h>

#include "formats/tree_schema.h"
#include "kernels/tree_ensemble.h"
#include "ops/op.h"

typedef struct kiln_tree_params {
    tree_ensemble ensemble;
    tree_schema_transform transform;
    double sigmoid_scale;
    bool classifier;
    int32_t n_classes;
} kiln_tree_params;

static kiln_status kiln_tree_init(op_init_ctx *ctx)
{
    kiln_tree_params *p = ctx->params;
    tree_schema s;
    KILN_TRY(tree_schema_read_node(ctx->node, &s));
    KILN_TRY(op_require_arity(ctx, 1, 1, s.classifier ? 2 : 1, s.classifier ? 2 : 1));
    KILN_TRY(op_require_dtype(ctx, 0, (const kiln_dtype[]){KILN_FLOAT32, KILN_UNDEFINED}));
    if (s.classifier && (s.n_classes < 2 || (s.n_targets != s.n_classes && !(s.n_classes == 2 && s.n_targets == 1))))
        return kiln_fail(KILN_ERR_MALFORMED, "a classifier with %d classes cannot have %d scores", s.n_classes,
                         s.n_targets);
    KILN_TRY(tree_ensemble_build_schema(&s, ctx->mem, &p->ensemble));
    op_note_trees(ctx, &p->ensemble);
    p->transform = s.transform;
    p->sigmoid_scale = s.sigmoid_scale;
    p->classifier = s.classifier;
    p->n_classes = s.n_classes;
    if (s.classifier) {
        ctx->output_dtypes[0] = KILN_INT64;
        ctx->output_dtypes[1] = KILN_FLOAT32;
    } else {
        ctx->output_dtypes[0] = KILN_FLOAT32;
    }
    return KILN_OK;
}

static kiln_status kiln_tree_shape(op_ctx *ctx)
{
    const kiln_tree_params *p = ctx->params;
    const kiln_tensor *x = ctx->inputs[0];
    if (x->rank != 2 || x->dims[1] != p->ensemble.n_features)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "input must be [N, %d], not rank %d with %lld columns",
                         p->ensemble.n_features, x->rank, (long long)(x->rank ? x->dims[x->rank - 1] : 0));
    int64_t rows = x->dims[0];
    if (p->classifier) {
        op_set_output_shape(ctx, 0, 1, (int64_t[]){rows});
        op_set_output_shape(ctx, 1, 2, (int64_t[]){rows, p->n_classes});
    } else {
        op_set_output_shape(ctx, 0, 2, (int64_t[]){rows, p->ensemble.n_targets});
    }
    ctx->scratch_bytes = (size_t)rows * (size_t)p->ensemble.n_targets * sizeof(double);
    return KILN_OK;
}

static double sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

/* Applies the objective's transform to one row of scores in place. */
static void transform_row(const kiln_tree_params *p, double *s, int32_t n)
{
    switch (p->transform) {
    case TREE_TRANSFORM_NONE: return;
    case TREE_TRANSFORM_LOGISTIC:
        for (int32_t k = 0; k < n; k++) s[k] = sigmoid(p->sigmoid_scale * s[k]);
        return;
    case TREE_TRANSFORM_EXP:
        for (int32_t k = 0; k < n; k++) s[k] = exp(s[k]);
        return;
    case TREE_TRANSFORM_SOFTPLUS:
        for (int32_t k = 0; k < n; k++) s[k] = log1p(exp(s[k]));
        return;
    case TREE_TRANSFORM_SIGNED_SQUARE:
        for (int32_t k = 0; k < n; k++) s[k] = (double)((s[k] > 0) - (s[k] < 0)) * s[k] * s[k];
        return;
    case TREE_TRANSFORM_HINGE:
        for (int32_t k = 0; k < n; k++) s[k] = s[k] > 0 ? 1.0 : 0.0;
        return;
    case TREE_TRANSFORM_SOFTMAX: {
        double max = s[0], sum = 0;
        for (int32_t k = 1; k < n; k++) max = s[k] > max ? s[k] : max;
        for (int32_t k = 0; k < n; k++) sum += (s[k] = exp(s[k] - max));
        for (int32_t k = 0; k < n; k++) s[k] /= sum;
        return;
    }
    }
}

static void write_classifier_row(const kiln_tree_params *p, const double *s, bool raw, int64_t *label, float *probs)
{
    if (p->ensemble.n_targets == 1) { /* binary: one score for class 1 */
        if (raw) {
            probs[0] = (float)-s[0];
            probs[1] = (float)s[0];
            *label = s[0] > 0;
        } else {
            probs[0] = (float)(1.0 - s[0]);
            probs[1] = (float)s[0];
            *label = s[0] > 0.5;
        }
        return;
    }
    int32_t best = 0;
    for (int32_t k = 0; k < p->n_classes; k++) {
        probs[k] = (float)s[k];
        if (s[k] > s[best]) best = k;
    }
    *label = best;
}

static kiln_status kiln_tree_eval(op_ctx *ctx)
{
    const kiln_tree_params *p = ctx->params;
    const kiln_tensor *x = ctx->inputs[0];
    int64_t rows = x->dims[0];
    int32_t n = p->ensemble.n_targets;
    double *scores = ctx->scratch;
    tree_ensemble_predict(&p->ensemble, x->data, rows, x->dims[1], scores, ctx->parallel);
    for (int64_t r = 0; r < rows; r++) {
        double *s = scores + r * n;
        if (!ctx->raw_scores) transform_row(p, s, n);
        if (p->classifier) {
            write_classifier_row(p, s, ctx->raw_scores, (int64_t *)ctx->outputs[0]->data + r,
                                 (float *)ctx->outputs[1]->data + r * p->n_classes);
        } else {
            float *y = (float *)ctx->outputs[0]->data + r * n;
            for (int32_t k = 0; k < n; k++) y[k] = (float)s[k];
        }
    }
    return KILN_OK;
}

const op_def ops_kiln_tree[] = {
    {TREE_SCHEMA_DOMAIN, TREE_SCHEMA_OP, 1, 1, sizeof(kiln_tree_params), kiln_tree_init, kiln_tree_shape,
     kiln_tree_eval, 0},
    OP_TABLE_END,
};
