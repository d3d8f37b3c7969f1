/*
 * kiln_tree.c — ai.kiln::TreeEnsemble, the operator natively loaded XGBoost and LightGBM models run as.
 *
 * init reads the node's tree_schema attributes (formats/tree_schema.h), turns each tree's slice of the flat
 * arrays into the engine's raw description and builds the ensemble once (kernels/tree_ensemble.h), which
 * validates the structure a hostile file could break. eval scores the rows and applies the objective's
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

/* One schema node as the engine's raw node, children made local to its tree (first = the tree's start). */
static kiln_status raw_node(const tree_schema *s, int32_t i, int32_t first, int32_t end, tree_raw_node *out)
{
    memset(out, 0, sizeof *out);
    int32_t kind = s->nodes_kind[i];
    if (kind == TREE_SCHEMA_LEAF) {
        int32_t at = s->nodes_leaf_first[i], count = s->nodes_leaf_count[i];
        if (at < 0 || count < 0 || at > s->n_leaf_weights || count > s->n_leaf_weights - at)
            return kiln_fail(KILN_ERR_MALFORMED, "node %d: leaf weights out of range", i);
        out->kind = TREE_RAW_LEAF;
        out->n_weights = count;
        return KILN_OK; /* weights are gathered by the caller, which owns their storage */
    }
    if (kind != TREE_SCHEMA_NUMERIC && kind != TREE_SCHEMA_CATEGORICAL)
        return kiln_fail(KILN_ERR_MALFORMED, "node %d: unknown kind %d", i, kind);
    int32_t t = s->nodes_true[i], f = s->nodes_false[i];
    if (t < first || t >= end || f < first || f >= end)
        return kiln_fail(KILN_ERR_MALFORMED, "node %d: a child is outside its tree", i);
    if (s->nodes_compare[i] < TREE_CMP_LT || s->nodes_compare[i] > TREE_CMP_NE ||
        s->nodes_missing[i] < TREE_MISSING_TRUE || s->nodes_missing[i] > TREE_MISSING_AS_ZERO)
        return kiln_fail(KILN_ERR_MALFORMED, "node %d: unknown comparison or missing rule", i);
    out->kind = kind == TREE_SCHEMA_NUMERIC ? TREE_RAW_NUMERIC : TREE_RAW_CATEGORICAL;
    out->feature = s->nodes_feature[i];
    out->compare = (tree_compare)s->nodes_compare[i];
    out->threshold = s->nodes_threshold[i];
    out->threshold_is_double = s->thresholds_are_double;
    out->missing = (tree_missing)s->nodes_missing[i];
    out->zero_is_missing = s->nodes_zero_missing[i] != 0;
    out->true_child = t - first;
    out->false_child = f - first;
    if (out->kind == TREE_RAW_CATEGORICAL) {
        int32_t at = s->nodes_category_first ? s->nodes_category_first[i] : 0;
        int32_t count = s->nodes_category_count ? s->nodes_category_count[i] : 0;
        if (at < 0 || count < 0 || at > s->n_category_words || count > s->n_category_words - at)
            return kiln_fail(KILN_ERR_MALFORMED, "node %d: category set out of range", i);
        out->category_bits = count ? s->category_words + at : NULL;
        out->category_words = count;
        out->category_nonnegative = s->categories_nonnegative;
    }
    return KILN_OK;
}

/* The engine's raw description of the schema; nodes, trees and leaf weights are allocated in one block. */
static kiln_status build_ensemble(const tree_schema *s, region *mem, tree_ensemble *out)
{
    if (s->n_trees < 1 || s->n_nodes < 1) return kiln_fail(KILN_ERR_MALFORMED, "the model has no trees");
    tree_raw_node *nodes = mem_calloc((size_t)s->n_nodes, sizeof *nodes);
    tree_raw_tree *trees = mem_calloc((size_t)s->n_trees, sizeof *trees);
    tree_leaf_weight *weights = mem_calloc((size_t)s->n_leaf_weights + 1, sizeof *weights);
    kiln_status st = nodes && trees && weights ? KILN_OK : KILN_ERR_OUT_OF_MEMORY;
    for (int32_t w = 0; st == KILN_OK && w < s->n_leaf_weights; w++)
        weights[w] = (tree_leaf_weight){s->leaf_targets[w], s->leaf_weights[w]};
    for (int32_t t = 0; st == KILN_OK && t < s->n_trees; t++) {
        int32_t first = s->tree_roots[t], end = t + 1 < s->n_trees ? s->tree_roots[t + 1] : s->n_nodes;
        if (first < 0 || end <= first || end > s->n_nodes || (t == 0 && first != 0)) {
            st = kiln_fail(KILN_ERR_MALFORMED, "tree %d: node range %d..%d is invalid", t, first, end);
            break;
        }
        for (int32_t i = first; st == KILN_OK && i < end; i++) {
            st = raw_node(s, i, first, end, &nodes[i]);
            if (st == KILN_OK && nodes[i].kind == TREE_RAW_LEAF) nodes[i].weights = weights + s->nodes_leaf_first[i];
        }
        trees[t] = (tree_raw_tree){nodes + first, end - first, 0};
    }
    if (st == KILN_OK) {
        tree_raw_ensemble raw = {
            .n_features = s->n_features,
            .n_targets = s->n_targets,
            .trees = trees,
            .n_trees = s->n_trees,
            .aggregate = (tree_aggregate)s->aggregate,
            .base_values = s->base_values,
            .sum_in_float32 = s->sum_in_float32,
            .zero_tiny_inputs = s->zero_tiny_inputs,
            .average_divisor = s->average_divisor,
        };
        if (s->aggregate < TREE_AGG_SUM || s->aggregate > TREE_AGG_MAX)
            st = kiln_fail(KILN_ERR_MALFORMED, "unknown aggregate %d", s->aggregate);
        else st = tree_ensemble_build(&raw, mem, out);
    }
    mem_free(nodes);
    mem_free(trees);
    mem_free(weights);
    return st;
}

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
    KILN_TRY(build_ensemble(&s, ctx->mem, &p->ensemble));
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
