/*
 * ml_tree.c — the ONNX-ML tree operators: TreeEnsembleClassifier and TreeEnsembleRegressor (ai.onnx.ml 1 and
 * 3, including the double *_as_tensor forms) and TreeEnsemble (ai.onnx.ml 5): their parameters, init, shape
 * and eval.
 *
 * Init reads either encoding into an ml_forest (ml_forest_read.c) and builds it once into the engine's
 * ensemble (ml_forest_build.c); the engine makes every comparison and sums the leaf values, so what is left
 * here is each operator's own attributes and turning the engine's scores into outputs.
 *
 * The outputs are onnxruntime's, which settles what the specification leaves open. Leaf values are summed in
 * float32 in tree order (in double when the model's values are doubles), base_values are added after
 * aggregation, AVERAGE divides by the number of trees. A one-target ensemble applies only PROBIT; with more
 * targets every post_transform applies to the row. Classifiers always sum and know which classes received a
 * weight in a row ("has a score"): with more than two classes the label is the best class among those; with
 * two classes, onnxruntime's rules for one score column, base_values of length 1 or 2 and all-positive
 * weights decide the label and how the second probability column is made (classify_binary). Named classes
 * (classlabels_strings) are computed as indices 0..n-1 and named at the end, as onnxruntime does.
 */
#include <string.h>

#include "kernels/tree_ensemble.h"
#include "ops/ml_common.h"
#include "ops/ml_forest.h"

/* ---- the operator's parameters ----------------------------------------------------------------------- */

typedef struct ml_tree_params {
    tree_ensemble ensemble;
    ml_transform transform;
    tree_aggregate aggregate;
    bool float_sums;    /* onnxruntime's float32 arithmetic (false: double) */
    int32_t n_targets;  /* scores per row: targets, or classes */
    const double *base; /* n_base values added after aggregation */
    int32_t n_base;
    bool classifier;
    ml_labels labels;      /* n_targets class labels */
    bool binary_case;      /* two classes, and every weight is for the same class */
    bool weights_all_positive;
    const bool *scored;    /* per class: whether it receives a weight (has a score) in every row, or NULL: */
    bool presence_per_row; /* it depends on the row, found from the leaves the row reaches */
} ml_tree_params;

/* ---- init ---------------------------------------------------------------------------------------------- */

/* Which classes receive a weight in a row. A class is scored in every row when some tree has a weight for it
 * in each of its leaves, and in none when no leaf has one; when every class is one or the other the answer
 * is fixed (*scored, allocated in mem), otherwise eval looks at the leaves each row reaches (*scored NULL). */
static kiln_status find_scored_classes_at_load(const tree_ensemble *e, region *mem, const bool **scored)
{
    int32_t n = e->n_targets, *leaves_with = mem_calloc((size_t)n, sizeof *leaves_with);
    int32_t *last_leaf = mem_calloc((size_t)n, sizeof *last_leaf);
    bool *always = region_alloc(mem, (size_t)n, sizeof *always), *anywhere = mem_calloc((size_t)n, sizeof *anywhere);
    kiln_status st = leaves_with && last_leaf && always && anywhere ? KILN_OK : KILN_ERR_OUT_OF_MEMORY;
    for (int32_t t = 0; st == KILN_OK && t < e->n_trees; t++) {
        int32_t end = t + 1 < e->n_trees ? e->roots[t + 1] : e->n_nodes, leaves = 0;
        for (int32_t k = 0; k < n; k++) leaves_with[k] = 0, last_leaf[k] = -1;
        for (int32_t i = e->roots[t]; i < end; i++) {
            if (e->nodes[i].kind != TREE_NODE_LEAF) continue;
            int32_t leaf = e->nodes[i].left;
            leaves++;
            for (int32_t w = e->leaf_first[leaf]; w < e->leaf_first[leaf + 1]; w++) {
                int32_t k = e->leaf_weights[w].target;
                if (last_leaf[k] != leaf) leaves_with[k]++, last_leaf[k] = leaf;
                anywhere[k] = true;
            }
        }
        for (int32_t k = 0; k < n; k++) always[k] |= leaves_with[k] == leaves;
    }
    *scored = always;
    for (int32_t k = 0; st == KILN_OK && k < n; k++)
        if (anywhere[k] && !always[k]) *scored = NULL; /* scored in some rows only */
    mem_free(leaves_with);
    mem_free(last_leaf);
    mem_free(anywhere);
    return st;
}

static kiln_status check_tree_input(op_init_ctx *ctx, bool integers_too)
{
    if (op_has_input(ctx, 0) && ctx->input_dtypes[0] == KILN_FLOAT64)
        return kiln_fail(KILN_ERR_UNSUPPORTED,
                         "double inputs are not supported: kiln's tree engine compares float32 "
                         "values, and rounding a double to float32 can change a decision (cast the input to float)");
    static const kiln_dtype floats[] = {KILN_FLOAT32, KILN_UNDEFINED};
    static const kiln_dtype numbers[] = {KILN_FLOAT32, KILN_INT32, KILN_INT64, KILN_UNDEFINED};
    return op_require_dtype(ctx, 0, integers_too ? numbers : floats);
}

/* base_values or base_values_as_tensor: per target (classifiers with two classes: 0, 1 or 2 values). */
static kiln_status read_base_values(op_init_ctx *ctx, ml_tree_params *p)
{
    const float *floats;
    int n_floats;
    double *doubles;
    int64_t n_doubles;
    KILN_TRY(ml_floats(ctx->node, "base_values", &floats, &n_floats));
    KILN_TRY(ml_tensor_values(ctx->node, "base_values_as_tensor", ctx->mem, &doubles, &n_doubles));
    if (n_floats && n_doubles)
        return kiln_fail(KILN_ERR_MALFORMED, "attributes 'base_values' and 'base_values_as_tensor' are both given");
    if (n_floats) {
        doubles = region_alloc(ctx->mem, (size_t)n_floats, sizeof *doubles);
        if (!doubles) return KILN_ERR_OUT_OF_MEMORY;
        for (int i = 0; i < n_floats; i++) doubles[i] = floats[i];
    }
    int64_t n = n_floats ? n_floats : n_doubles;
    bool two_classes = p->classifier && p->n_targets == 2;
    if (two_classes ? n > 2 : n != 0 && n != p->n_targets)
        return kiln_fail(KILN_ERR_MALFORMED, "base_values has %lld values, expected %s%d", (long long)n,
                         two_classes ? "at most " : "0 or ", two_classes ? 2 : p->n_targets);
    p->base = doubles;
    p->n_base = (int32_t)n;
    return KILN_OK;
}

/* The input's declared width, when the model states it, must cover every feature the trees read. */
static kiln_status check_declared_width(const op_init_ctx *ctx, int32_t n_features)
{
    const graph_value *x = &ctx->graph->values[ctx->node->inputs[0]];
    int64_t width = x->rank == 2 ? x->dims[1] : x->rank == 1 ? x->dims[0] : -1;
    if (width >= 0 && width < n_features)
        return kiln_fail(KILN_ERR_MALFORMED, "the trees read feature %d, beyond the input's %lld columns",
                         n_features - 1, (long long)width);
    return KILN_OK;
}

/* Builds the ensemble from the forest and works out what eval needs to know about it. */
static kiln_status finish_init(op_init_ctx *ctx, ml_tree_params *p, const ml_forest *f)
{
    p->float_sums = !f->doubles;
    KILN_TRY(ml_forest_build(f, p->aggregate, p->float_sums, ctx->mem, &p->ensemble));
    op_note_trees(ctx, &p->ensemble);
    KILN_TRY(check_declared_width(ctx, p->ensemble.n_features));
    if (p->classifier) {
        KILN_TRY(find_scored_classes_at_load(&p->ensemble, ctx->mem, &p->scored));
        p->presence_per_row = !p->scored;
        p->binary_case = p->n_targets == 2 && f->one_target_id;
        p->weights_all_positive = f->weights_nonnegative;
    }
    return KILN_OK;
}

static kiln_status read_aggregate(const graph_node *node, tree_aggregate *out)
{
    static const char *const names[] = {"SUM", "AVERAGE", "MIN", "MAX", NULL};
    int index;
    KILN_TRY(attr_choice(node, "aggregate_function", "SUM", names, &index));
    *out = (tree_aggregate)index; /* the order of tree_aggregate */
    return KILN_OK;
}

static kiln_status classifier_init(op_init_ctx *ctx)
{
    ml_tree_params *p = ctx->params;
    const graph_node *node = ctx->node;
    KILN_TRY(op_require_arity(ctx, 1, 1, 2, 2));
    KILN_TRY(check_tree_input(ctx, true));
    KILN_TRY(ml_read_labels(ctx, "classlabels_int64s", &p->labels));
    int n_labels = p->labels.count;
    if (n_labels < 2)
        return kiln_fail(KILN_ERR_MALFORMED, "the classifier has %d class labels, it needs at least 2", n_labels);
    p->classifier = true;
    p->n_targets = n_labels;
    p->aggregate = TREE_AGG_SUM; /* onnxruntime's classifiers always sum, whatever aggregate_function says */
    tree_aggregate ignored;
    KILN_TRY(read_aggregate(node, &ignored));
    KILN_TRY(ml_read_transform(node, &p->transform));
    KILN_TRY(read_base_values(ctx, p));
    ml_forest f = {.n_targets = n_labels};
    kiln_status st = ml_forest_read_v3(ctx, true, &f);
    if (st == KILN_OK) st = finish_init(ctx, p, &f);
    ml_forest_free(&f);
    ctx->output_dtypes[1] = KILN_FLOAT32;
    return st;
}

static kiln_status read_target_count(const graph_node *node, int32_t *out)
{
    int64_t n;
    KILN_TRY(attr_int(node, "n_targets", 0, &n));
    if (n < 1 || n > TREE_MAX_TARGETS)
        return kiln_fail(KILN_ERR_MALFORMED, "attribute 'n_targets' is %lld, expected 1 to %d", (long long)n,
                         TREE_MAX_TARGETS);
    *out = (int32_t)n;
    return KILN_OK;
}

static kiln_status regressor_init(op_init_ctx *ctx)
{
    ml_tree_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 1, 1, 1, 1));
    KILN_TRY(check_tree_input(ctx, false));
    KILN_TRY(read_target_count(ctx->node, &p->n_targets));
    KILN_TRY(read_aggregate(ctx->node, &p->aggregate));
    KILN_TRY(ml_read_transform(ctx->node, &p->transform));
    KILN_TRY(read_base_values(ctx, p));
    ml_forest f = {.n_targets = p->n_targets};
    kiln_status st = ml_forest_read_v3(ctx, false, &f);
    if (st == KILN_OK) st = finish_init(ctx, p, &f);
    ml_forest_free(&f);
    ctx->output_dtypes[0] = KILN_FLOAT32;
    return st;
}

/* TreeEnsemble's integer codes, as the specification numbers them. (onnxruntime 1.30 swaps 1 and 2 for
 * post_transform; kiln follows the specification.) */
static kiln_status read_v5_codes(const graph_node *node, ml_tree_params *p)
{
    static const tree_aggregate aggregates[] = {TREE_AGG_AVERAGE, TREE_AGG_SUM, TREE_AGG_MIN, TREE_AGG_MAX};
    static const ml_transform transforms[] = {ML_TRANSFORM_NONE, ML_TRANSFORM_SOFTMAX, ML_TRANSFORM_LOGISTIC,
                                              ML_TRANSFORM_SOFTMAX_ZERO, ML_TRANSFORM_PROBIT};
    int64_t aggregate, transform;
    KILN_TRY(attr_int(node, "aggregate_function", 1, &aggregate));
    KILN_TRY(attr_int(node, "post_transform", 0, &transform));
    if (aggregate < 0 || aggregate > 3)
        return kiln_fail(KILN_ERR_MALFORMED,
                         "aggregate_function is %lld, expected 0 (AVERAGE), 1 (SUM), 2 (MIN) or 3 (MAX)",
                         (long long)aggregate);
    if (transform < 0 || transform > 4)
        return kiln_fail(KILN_ERR_MALFORMED,
                         "post_transform is %lld, expected 0 (NONE), 1 (SOFTMAX), 2 (LOGISTIC), "
                         "3 (SOFTMAX_ZERO) or 4 (PROBIT)",
                         (long long)transform);
    p->aggregate = aggregates[aggregate];
    p->transform = transforms[transform];
    return KILN_OK;
}

static kiln_status tree_ensemble_init(op_init_ctx *ctx)
{
    ml_tree_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 1, 1, 1, 1));
    KILN_TRY(check_tree_input(ctx, false));
    KILN_TRY(read_target_count(ctx->node, &p->n_targets));
    KILN_TRY(read_v5_codes(ctx->node, p));
    ml_forest f = {.n_targets = p->n_targets};
    kiln_status st = ml_forest_read_v5(ctx, &f);
    if (st == KILN_OK) st = finish_init(ctx, p, &f);
    ml_forest_free(&f);
    ctx->output_dtypes[0] = KILN_FLOAT32;
    return st;
}

/* ---- shape and eval ------------------------------------------------------------------------------------ */

/* Where eval's scratch memory holds what (byte offsets). */
typedef struct tree_scratch {
    size_t scores;  /* rows x n_targets doubles: the engine's sums */
    size_t x;       /* rows x cols floats: the input converted to float32, when it is not */
    size_t leaves;  /* n_trees int32: the leaves one row reaches (classes found row by row) */
    size_t present; /* n_targets bools: the classes those leaves give a weight to */
    size_t labels;  /* rows int64: class indices, when the classes are named */
    size_t total;
} tree_scratch;

static tree_scratch lay_out_scratch(const ml_tree_params *p, int64_t rows, int64_t cols, bool convert)
{
    tree_scratch s = {0};
    s.x = mem_align_up((size_t)rows * (size_t)p->n_targets * sizeof(double), KILN_ALIGNMENT);
    s.leaves = s.x + mem_align_up(convert ? (size_t)rows * (size_t)cols * sizeof(float) : 0, KILN_ALIGNMENT);
    bool per_row = p->classifier && p->presence_per_row;
    s.present = s.leaves + mem_align_up(per_row ? (size_t)p->ensemble.n_trees * sizeof(int32_t) : 0, KILN_ALIGNMENT);
    s.labels = s.present + mem_align_up(per_row ? (size_t)p->n_targets : 0, KILN_ALIGNMENT);
    s.total = s.labels + (p->classifier ? ml_label_scratch_bytes(&p->labels, rows) : 0);
    return s;
}

static kiln_status ml_tree_shape(op_ctx *ctx)
{
    const ml_tree_params *p = ctx->params;
    const kiln_tensor *x = ctx->inputs[0];
    int64_t rows, cols, n;
    KILN_TRY(ml_rows_cols(x, &rows, &cols));
    if (cols < p->ensemble.n_features)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "the trees read feature %d but the input has %lld columns",
                         p->ensemble.n_features - 1, (long long)cols);
    KILN_TRY(shape_numel_checked(2, (int64_t[]){rows, p->n_targets}, &n));
    if (p->classifier) {
        op_set_output_shape(ctx, 0, 1, (int64_t[]){rows});
        op_set_output_shape(ctx, 1, 2, (int64_t[]){rows, p->n_targets});
    } else {
        op_set_output_shape(ctx, 0, 2, (int64_t[]){rows, p->n_targets});
    }
    ctx->scratch_bytes = lay_out_scratch(p, rows, cols, x->dtype != KILN_FLOAT32).total;
    return KILN_OK;
}

/* a + b in the precision onnxruntime computes this model's scores in. */
static double add_scores(const ml_tree_params *p, double a, double b)
{
    return p->float_sums ? (double)((float)a + (float)b) : a + b;
}

static void regression_row(const ml_tree_params *p, const double *s, float *y)
{
    int32_t n = p->n_targets;
    double trees = p->ensemble.n_trees;
    for (int32_t k = 0; k < n; k++) {
        double v = s[k];
        if (p->aggregate == TREE_AGG_AVERAGE) v = p->float_sums ? (double)((float)v / (float)trees) : v / trees;
        y[k] = (float)(p->n_base ? add_scores(p, v, p->base[k]) : v);
    }
    if (n > 1) ml_transform_scores(p->transform, y, n);
    else if (p->transform == ML_TRANSFORM_PROBIT) y[0] = ml_probit(y[0]); /* one target: only PROBIT applies */
}

/* Which classes the leaves `row` reaches give a weight to. */
static void find_scored_classes(const tree_ensemble *e, const float *row, int32_t *leaves, bool *present)
{
    memset(present, 0, (size_t)e->n_targets * sizeof *present);
    tree_ensemble_leaves(e, row, leaves);
    for (int32_t t = 0; t < e->n_trees; t++)
        for (int32_t w = e->leaf_first[leaves[t]]; w < e->leaf_first[leaves[t] + 1]; w++)
            present[e->leaf_weights[w].target] = true;
}

/* More than two classes: base values count as scores; the label is the best class that has a score. */
static void classify_many(const ml_tree_params *p, const double *s, const bool *present, int64_t *label, float *z)
{
    int32_t best = -1;
    double best_value = 0;
    for (int32_t k = 0; k < p->n_targets; k++) {
        bool scored = !present || present[k];
        double v = scored ? s[k] : 0;
        if (p->n_base) v = add_scores(p, v, p->base[k]);
        bool has = scored || p->n_base;
        z[k] = has ? (float)v : 0.0f;
        if (has && (best < 0 || v > best_value)) best = k, best_value = v;
    }
    *label = p->labels.ints[best < 0 ? 0 : best];
    ml_transform_scores(p->transform, z, p->n_targets);
}

/* Two classes, onnxruntime's way: with two base values and a class-1 score, the score becomes
 * base[1] + score[0] against its negation; with one base value it is added to class 0; when class 1 has no
 * score the row has one score column, whose label and second column follow from whether all weights are
 * for one class ("binary case") and all positive. Outside the binary case the label is 1 or 0 itself. */
static void classify_binary(const ml_tree_params *p, const double *s, const bool *present, int64_t *label, float z[2])
{
    double s0 = s[0], s1 = s[1];
    bool h0 = !present || present[0], h1 = !present || present[1], two_columns = true;
    int how = -1; /* onnxruntime's write_additional_scores: -1 none, 0 and 1 complement, 2 and 3 negate */
    if (p->n_base == 2) {
        if (h1) {
            s1 = add_scores(p, p->base[1], s0);
            s0 = -s1;
        } else {
            s1 = add_scores(p, s1, p->base[1]);
            s0 = add_scores(p, s0, p->base[0]);
        }
    } else {
        if (p->n_base == 1) s0 = add_scores(p, s0, p->base[0]);
        else how = 3;
        two_columns = h1;
    }
    double positive = two_columns && h1 ? s1 : h0 ? s0 : 0;
    bool is_positive = p->binary_case && p->weights_all_positive ? positive > 0.5 : positive > 0;
    *label = is_positive;
    if (p->binary_case) {
        *label = p->labels.ints[is_positive];
        how = p->weights_all_positive ? (is_positive ? 0 : 1) : (is_positive ? 2 : 3);
    }
    if (two_columns) {
        z[0] = h0 ? (float)s0 : 0.0f;
        z[1] = h1 ? (float)s1 : 0.0f;
        ml_transform_scores(p->transform, z, 2);
        return;
    }
    ml_second_column column = how < 0 ? ML_ONE_COLUMN : how < 2 ? ML_COMPLEMENT : ML_NEGATED;
    ml_binary_scores(p->transform, column, h0 ? (float)s0 : 0.0f, z);
}

static kiln_status ml_tree_eval(op_ctx *ctx)
{
    const ml_tree_params *p = ctx->params;
    const kiln_tensor *x = ctx->inputs[0];
    int64_t rows, cols;
    KILN_TRY(ml_rows_cols(x, &rows, &cols));
    tree_scratch at = lay_out_scratch(p, rows, cols, x->dtype != KILN_FLOAT32);
    char *scratch = ctx->scratch;
    double *scores = (double *)(scratch + at.scores);
    const float *data = x->data;
    if (x->dtype != KILN_FLOAT32) {
        ml_to_float(x, (float *)(scratch + at.x));
        data = (const float *)(scratch + at.x);
    }
    tree_ensemble_predict(&p->ensemble, data, rows, cols, scores, ctx->parallel);
    int32_t n = p->n_targets;
    bool *per_row = p->classifier && p->presence_per_row ? (bool *)(scratch + at.present) : NULL;
    const bool *present = per_row ? per_row : p->scored;
    int64_t *labels = p->classifier ? ml_label_slots(ctx, &p->labels, scratch + at.labels) : NULL;
    for (int64_t r = 0; r < rows; r++) {
        const double *s = scores + r * n;
        if (!p->classifier) {
            regression_row(p, s, (float *)ctx->outputs[0]->data + r * n);
            continue;
        }
        if (per_row) find_scored_classes(&p->ensemble, data + r * cols, (int32_t *)(scratch + at.leaves), per_row);
        int64_t *label = labels + r;
        float *z = (float *)ctx->outputs[1]->data + r * n;
        if (n == 2) classify_binary(p, s, present, label, z);
        else classify_many(p, s, present, label, z);
    }
    return p->classifier ? ml_name_labels(ctx, &p->labels, labels, rows) : KILN_OK;
}

const op_def ops_ml_tree[] = {
    {ML_DOMAIN, "TreeEnsembleClassifier", 1, ML_MAX_OPSET, sizeof(ml_tree_params), classifier_init, ml_tree_shape,
     ml_tree_eval, 0},
    {ML_DOMAIN, "TreeEnsembleRegressor", 1, ML_MAX_OPSET, sizeof(ml_tree_params), regressor_init, ml_tree_shape,
     ml_tree_eval, 0},
    {ML_DOMAIN, "TreeEnsemble", 5, ML_MAX_OPSET, sizeof(ml_tree_params), tree_ensemble_init, ml_tree_shape,
     ml_tree_eval, 0},
    OP_TABLE_END,
};
