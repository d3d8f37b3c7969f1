/*
 * ml_tree.c — the ONNX-ML tree operators: TreeEnsembleClassifier and TreeEnsembleRegressor (ai.onnx.ml 1 and
 * 3, including the double *_as_tensor forms) and TreeEnsemble (ai.onnx.ml 5).
 *
 * Both encodings are first read into one description, an ml_forest (split nodes with a mode, a threshold and
 * two children; leaves with their weights), which is expanded tree by tree into the engine's raw trees
 * (kernels/tree_ensemble.h) and built once at load. The engine makes every comparison; this file only says
 * which comparison each node makes:
 *   BRANCH_LEQ, _LT, _GTE, _GT, _EQ, _NEQ  the same test, against float32 thresholds (or doubles from
 *                                         *_as_tensor / double tensors);
 *   nodes_missing_value_tracks_true       NaN takes the true branch; otherwise NaN is compared like any value
 *                                         (so only BRANCH_NEQ sends it to the true branch);
 *   BRANCH_MEMBER (opset 5), and chains   a categorical split on exact integer categories. Converters wrote set
 *   of BRANCH_EQ on one feature that      membership as such chains before opset 5 (LightGBM's categorical
 *   share their true child                splits); merging them avoids copying the shared subtree per member.
 * A node reached from several parents (a shared subtree) is copied for each, within a node budget; a node
 * that is its own ancestor is refused as a cycle.
 *
 * The outputs are onnxruntime's, which settles what the specification leaves open. Leaf values are summed in
 * float32 in tree order (in double when the model's values are doubles), base_values are added after
 * aggregation, AVERAGE divides by the number of trees. A one-target ensemble applies only PROBIT; with more
 * targets every post_transform applies to the row. Classifiers always sum and know which classes received a
 * weight in a row ("has a score"): with more than two classes the label is the best class among those; with
 * two classes, onnxruntime's rules for one score column, base_values of length 1 or 2 and all-positive
 * weights decide the label and how the second probability column is made (classify_binary).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/tree_ensemble.h"
#include "ops/ml_common.h"

/* ---- the common description of both encodings ------------------------------------------------------ */

enum ml_mode { ML_LEAF, ML_LEQ, ML_LT, ML_GTE, ML_GT, ML_EQ, ML_NEQ, ML_MEMBER };

typedef struct ml_node {
    uint8_t mode;      /* enum ml_mode */
    bool missing_true; /* NaN takes the true branch */
    int32_t feature;
    double threshold;
    int32_t child[2];     /* true, false: indices of ml_forest.nodes */
    int32_t first, count; /* leaves: their weights; ML_MEMBER: their members */
} ml_node;

typedef struct ml_forest {
    ml_node *nodes;
    int32_t n_nodes;
    int32_t *roots;
    int32_t n_trees;
    tree_leaf_weight *weights;
    double *members;
    int32_t n_targets;
    bool doubles;       /* thresholds and weights are doubles: compare and sum in double precision */
    bool one_target_id; /* every listed weight is for the same target (class) */
    bool weights_nonnegative;
} ml_forest;

static void forest_free(ml_forest *f)
{
    mem_free(f->nodes);
    mem_free(f->roots);
    mem_free(f->weights);
    mem_free(f->members);
    memset(f, 0, sizeof *f);
}

/* Categories a categorical split can hold: exact integers 0 .. ML_MAX_CATEGORY-1 (a bitset of 8 KB at most). */
#define ML_MAX_CATEGORY (1 << 16)
#define ML_MAX_CATEGORY_WORDS (1 << 24) /* all category sets together: 64 MB */

static bool is_category(double v) { return v >= 0 && v < ML_MAX_CATEGORY && v == floor(v); }

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
    const int64_t *labels; /* n_targets class labels */
    bool binary_case;      /* two classes, and every weight is for the same class */
    bool weights_all_positive;
    const bool *scored;    /* per class: whether it receives a weight (has a score) in every row, or NULL: */
    bool presence_per_row; /* it depends on the row, found from the leaves the row reaches */
} ml_tree_params;

/* ---- reading TreeEnsembleClassifier / TreeEnsembleRegressor ------------------------------------------ */

typedef struct node_key {
    int64_t tree, node;
    int32_t index;
} node_key;

static int compare_keys(const void *pa, const void *pb)
{
    const node_key *a = pa, *b = pb;
    if (a->tree != b->tree) return a->tree < b->tree ? -1 : 1;
    if (a->node != b->node) return a->node < b->node ? -1 : 1;
    return a->index < b->index ? -1 : a->index > b->index;
}

/* Position of (tree, node) in the nodes_* lists, or -1. */
static int32_t find_node(const node_key *keys, int32_t n, int64_t tree, int64_t node)
{
    int32_t lo = 0, hi = n;
    while (lo < hi) {
        int32_t mid = lo + (hi - lo) / 2;
        if (keys[mid].tree < tree || (keys[mid].tree == tree && keys[mid].node < node)) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && keys[lo].tree == tree && keys[lo].node == node ? keys[lo].index : -1;
}

/* The nodes_* attributes of opsets 1 and 3. */
typedef struct v3_nodes {
    const int64_t *tree_ids, *node_ids, *features, *true_ids, *false_ids, *missing;
    const char *const *modes;
    const float *values;
    double *values_d; /* nodes_values_as_tensor */
    int n, n_missing;
    node_key *keys; /* sorted by (tree, node) */
} v3_nodes;

static kiln_status read_v3_lists(op_init_ctx *ctx, v3_nodes *v)
{
    const graph_node *node = ctx->node;
    int n_nodes, n_features, n_modes, n_true, n_false, n_values;
    int64_t n_values_d;
    KILN_TRY(ml_ints(node, "nodes_treeids", &v->tree_ids, &v->n));
    KILN_TRY(ml_ints(node, "nodes_nodeids", &v->node_ids, &n_nodes));
    KILN_TRY(ml_ints(node, "nodes_featureids", &v->features, &n_features));
    KILN_TRY(ml_strings(node, "nodes_modes", &v->modes, &n_modes));
    KILN_TRY(ml_ints(node, "nodes_truenodeids", &v->true_ids, &n_true));
    KILN_TRY(ml_ints(node, "nodes_falsenodeids", &v->false_ids, &n_false));
    KILN_TRY(ml_ints(node, "nodes_missing_value_tracks_true", &v->missing, &v->n_missing));
    KILN_TRY(ml_floats(node, "nodes_values", &v->values, &n_values));
    KILN_TRY(ml_tensor_values(node, "nodes_values_as_tensor", ctx->mem, &v->values_d, &n_values_d));
    if (v->n < 1) return kiln_fail(KILN_ERR_MALFORMED, "the ensemble has no nodes (attribute 'nodes_treeids')");
    KILN_TRY(ml_require_same_length("nodes_treeids", v->n, "nodes_nodeids", n_nodes));
    KILN_TRY(ml_require_same_length("nodes_treeids", v->n, "nodes_featureids", n_features));
    KILN_TRY(ml_require_same_length("nodes_treeids", v->n, "nodes_modes", n_modes));
    KILN_TRY(ml_require_same_length("nodes_treeids", v->n, "nodes_truenodeids", n_true));
    KILN_TRY(ml_require_same_length("nodes_treeids", v->n, "nodes_falsenodeids", n_false));
    if (v->n_missing)
        KILN_TRY(ml_require_same_length("nodes_treeids", v->n, "nodes_missing_value_tracks_true", v->n_missing));
    if (n_values && n_values_d)
        return kiln_fail(KILN_ERR_MALFORMED, "attributes 'nodes_values' and 'nodes_values_as_tensor' are both given");
    if (n_values_d) return ml_require_same_length("nodes_treeids", v->n, "nodes_values_as_tensor", n_values_d);
    return ml_require_same_length("nodes_treeids", v->n, "nodes_values", n_values);
}

static kiln_status parse_mode(const char *s, int index, uint8_t *mode)
{
    static const char *const names[] = {"LEAF",      "BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE",
                                        "BRANCH_GT", "BRANCH_EQ",  "BRANCH_NEQ"};
    for (int m = 0; m < (int)(sizeof names / sizeof names[0]); m++)
        if (strcmp(s, names[m]) == 0) {
            *mode = (uint8_t)m;
            return KILN_OK;
        }
    return kiln_fail(KILN_ERR_MALFORMED,
                     "nodes_modes[%d] is '%s', expected LEAF or BRANCH_LEQ, BRANCH_LT, BRANCH_GTE, "
                     "BRANCH_GT, BRANCH_EQ, BRANCH_NEQ",
                     index, s);
}

/* Sorts the (tree, node) keys and refuses duplicates and trees whose nodes are not listed together. */
static kiln_status index_v3_nodes(v3_nodes *v, int32_t *n_trees)
{
    v->keys = mem_calloc((size_t)v->n, sizeof *v->keys);
    if (!v->keys) return KILN_ERR_OUT_OF_MEMORY;
    int32_t runs = 0;
    for (int32_t i = 0; i < v->n; i++) {
        v->keys[i] = (node_key){v->tree_ids[i], v->node_ids[i], i};
        runs += i == 0 || v->tree_ids[i] != v->tree_ids[i - 1];
    }
    qsort(v->keys, (size_t)v->n, sizeof *v->keys, compare_keys);
    int32_t trees = 0;
    for (int32_t i = 0; i < v->n; i++) {
        if (i > 0 && v->keys[i].tree == v->keys[i - 1].tree && v->keys[i].node == v->keys[i - 1].node)
            return kiln_fail(KILN_ERR_MALFORMED, "node %lld of tree %lld is listed twice", (long long)v->keys[i].node,
                             (long long)v->keys[i].tree);
        trees += i == 0 || v->keys[i].tree != v->keys[i - 1].tree;
    }
    if (runs != trees)
        return kiln_fail(KILN_ERR_MALFORMED, "the nodes of each tree must be listed together (nodes_treeids)");
    *n_trees = trees;
    return KILN_OK;
}

/* Fills f->nodes (splits and leaves, no weights yet) and f->roots: a tree's root is its first listed node. */
static kiln_status read_v3_nodes(const v3_nodes *v, ml_forest *f)
{
    f->n_nodes = v->n;
    f->nodes = mem_calloc((size_t)v->n, sizeof *f->nodes);
    f->roots = mem_calloc((size_t)f->n_trees, sizeof *f->roots);
    if (!f->nodes || !f->roots) return KILN_ERR_OUT_OF_MEMORY;
    for (int32_t i = 0, t = 0; i < v->n; i++) {
        if (i == 0 || v->tree_ids[i] != v->tree_ids[i - 1]) f->roots[t++] = i;
        ml_node *n = &f->nodes[i];
        KILN_TRY(parse_mode(v->modes[i], i, &n->mode));
        n->threshold = v->values_d ? v->values_d[i] : v->values[i];
        n->missing_true = v->n_missing && v->missing[i] == 1;
        if (n->mode == ML_LEAF) continue;
        if (v->features[i] < 0 || v->features[i] >= TREE_MAX_FEATURES)
            return kiln_fail(KILN_ERR_MALFORMED, "nodes_featureids[%d] is %lld", i, (long long)v->features[i]);
        n->feature = (int32_t)v->features[i];
        const int64_t *ids[2] = {v->true_ids, v->false_ids};
        for (int side = 0; side < 2; side++) {
            n->child[side] = find_node(v->keys, v->n, v->tree_ids[i], ids[side][i]);
            if (n->child[side] < 0)
                return kiln_fail(KILN_ERR_MALFORMED, "node %lld of tree %lld: its %s child %lld does not exist",
                                 (long long)v->node_ids[i], (long long)v->tree_ids[i], side ? "false" : "true",
                                 (long long)ids[side][i]);
        }
    }
    return KILN_OK;
}

/* The class_* or target_* attributes: leaf weights, grouped by leaf in the order they are listed. Weights on
 * split nodes are ignored, as onnxruntime does (old converters wrote some). */
static kiln_status read_v3_weights(op_init_ctx *ctx, const v3_nodes *v, const char *prefix, ml_forest *f)
{
    char name[4][40];
    const int64_t *ids, *nodes, *trees;
    const float *w;
    double *wd;
    int n, n_nodes, n_trees, n_w;
    int64_t n_wd;
    snprintf(name[0], sizeof name[0], "%s_ids", prefix);
    snprintf(name[1], sizeof name[1], "%s_nodeids", prefix);
    snprintf(name[2], sizeof name[2], "%s_treeids", prefix);
    snprintf(name[3], sizeof name[3], "%s_weights", prefix);
    KILN_TRY(ml_ints(ctx->node, name[0], &ids, &n));
    KILN_TRY(ml_ints(ctx->node, name[1], &nodes, &n_nodes));
    KILN_TRY(ml_ints(ctx->node, name[2], &trees, &n_trees));
    KILN_TRY(ml_floats(ctx->node, name[3], &w, &n_w));
    char tensor_name[56];
    snprintf(tensor_name, sizeof tensor_name, "%s_as_tensor", name[3]);
    KILN_TRY(ml_tensor_values(ctx->node, tensor_name, ctx->mem, &wd, &n_wd));
    KILN_TRY(ml_require_same_length(name[0], n, name[1], n_nodes));
    KILN_TRY(ml_require_same_length(name[0], n, name[2], n_trees));
    KILN_TRY(ml_require_same_length(name[0], n, n_wd ? tensor_name : name[3], n_wd ? n_wd : n_w));
    int32_t *leaf_of = mem_calloc((size_t)n + 1, sizeof *leaf_of);
    f->weights = mem_calloc((size_t)n + 1, sizeof *f->weights);
    if (!leaf_of || !f->weights) return mem_free(leaf_of), KILN_ERR_OUT_OF_MEMORY;
    kiln_status st = KILN_OK;
    f->one_target_id = n > 0;
    f->weights_nonnegative = true;
    for (int i = 0; i < n; i++) {
        f->one_target_id &= ids[i] == ids[0];
        f->weights_nonnegative &= !((wd ? wd[i] : w[i]) < 0);
    }
    for (int i = 0; i < n && st == KILN_OK; i++) {
        leaf_of[i] = find_node(v->keys, v->n, trees[i], nodes[i]);
        if (leaf_of[i] < 0)
            st = kiln_fail(KILN_ERR_MALFORMED, "%s[%d] names node %lld of tree %lld, which does not exist", name[1], i,
                           (long long)nodes[i], (long long)trees[i]);
        else if (ids[i] < 0 || ids[i] >= f->n_targets)
            st = kiln_fail(KILN_ERR_MALFORMED, "%s[%d] is %lld, the model has %d %s", name[0], i, (long long)ids[i],
                           f->n_targets, strcmp(prefix, "class") == 0 ? "classes" : "targets");
        else if (f->nodes[leaf_of[i]].mode != ML_LEAF) leaf_of[i] = -1;
        else f->nodes[leaf_of[i]].count++;
    }
    /* counting sort: each leaf's weights become contiguous, in the order they are listed */
    int32_t next = 0;
    for (int32_t k = 0; k < f->n_nodes && st == KILN_OK; k++) {
        f->nodes[k].first = next;
        next += f->nodes[k].count;
        f->nodes[k].count = 0;
    }
    for (int i = 0; i < n && st == KILN_OK; i++) {
        if (leaf_of[i] < 0) continue;
        ml_node *leaf = &f->nodes[leaf_of[i]];
        f->weights[leaf->first + leaf->count++] = (tree_leaf_weight){(int32_t)ids[i], wd ? wd[i] : w[i]};
    }
    mem_free(leaf_of);
    return st;
}

/* onnxruntime's one-target path gives each leaf exactly one value: its first weight, or the leaf's own
 * nodes_values entry when it has none. */
static kiln_status single_value_leaves(ml_forest *f)
{
    tree_leaf_weight *one = mem_calloc((size_t)f->n_nodes, sizeof *one);
    if (!one) return KILN_ERR_OUT_OF_MEMORY;
    for (int32_t k = 0; k < f->n_nodes; k++) {
        ml_node *n = &f->nodes[k];
        if (n->mode != ML_LEAF) continue;
        one[k] = (tree_leaf_weight){0, n->count ? f->weights[n->first].weight : n->threshold};
        n->first = k;
        n->count = 1;
    }
    mem_free(f->weights);
    f->weights = one;
    return KILN_OK;
}

static bool is_double_tensor(const graph_node *node, const char *name)
{
    const graph_attr *a = graph_node_attr(node, name);
    return a && a->type == ATTR_TENSOR && a->t && a->t->dtype == KILN_FLOAT64;
}

static kiln_status read_v3_forest(op_init_ctx *ctx, bool classifier, ml_forest *f)
{
    v3_nodes v = {0};
    kiln_status st = read_v3_lists(ctx, &v);
    if (st == KILN_OK) st = index_v3_nodes(&v, &f->n_trees);
    if (st == KILN_OK) st = read_v3_nodes(&v, f);
    if (st == KILN_OK) st = read_v3_weights(ctx, &v, classifier ? "class" : "target", f);
    if (st == KILN_OK && !classifier && f->n_targets == 1) st = single_value_leaves(f);
    f->doubles = is_double_tensor(ctx->node, "nodes_values_as_tensor") ||
                 is_double_tensor(ctx->node, classifier ? "class_weights_as_tensor" : "target_weights_as_tensor");
    mem_free(v.keys);
    return st;
}

/* ---- reading TreeEnsemble (opset 5) ------------------------------------------------------------------ */

typedef struct v5_attrs {
    const int64_t *features, *true_ids, *false_ids, *true_leafs, *false_leafs, *missing, *leaf_targets, *roots;
    double *splits, *modes, *members, *leaf_weights;
    int n, n_missing, n_leaves, n_roots;
    int64_t n_members;
} v5_attrs;

static kiln_status read_v5_lists(op_init_ctx *ctx, v5_attrs *v)
{
    const graph_node *node = ctx->node;
    int n_true, n_false, n_tl, n_fl;
    int64_t n_splits, n_modes, n_weights;
    KILN_TRY(ml_ints(node, "nodes_featureids", &v->features, &v->n));
    KILN_TRY(ml_ints(node, "nodes_truenodeids", &v->true_ids, &n_true));
    KILN_TRY(ml_ints(node, "nodes_falsenodeids", &v->false_ids, &n_false));
    KILN_TRY(ml_ints(node, "nodes_trueleafs", &v->true_leafs, &n_tl));
    KILN_TRY(ml_ints(node, "nodes_falseleafs", &v->false_leafs, &n_fl));
    KILN_TRY(ml_ints(node, "nodes_missing_value_tracks_true", &v->missing, &v->n_missing));
    KILN_TRY(ml_ints(node, "leaf_targetids", &v->leaf_targets, &v->n_leaves));
    KILN_TRY(ml_ints(node, "tree_roots", &v->roots, &v->n_roots));
    KILN_TRY(ml_tensor_values(node, "nodes_splits", ctx->mem, &v->splits, &n_splits));
    KILN_TRY(ml_tensor_values(node, "nodes_modes", ctx->mem, &v->modes, &n_modes));
    KILN_TRY(ml_tensor_values(node, "membership_values", ctx->mem, &v->members, &v->n_members));
    KILN_TRY(ml_tensor_values(node, "leaf_weights", ctx->mem, &v->leaf_weights, &n_weights));
    if (v->n < 1 || v->n_roots < 1 || v->n_leaves < 1)
        return kiln_fail(KILN_ERR_MALFORMED, "the ensemble needs nodes_featureids, tree_roots and leaf_targetids");
    KILN_TRY(ml_require_same_length("nodes_featureids", v->n, "nodes_splits", n_splits));
    KILN_TRY(ml_require_same_length("nodes_featureids", v->n, "nodes_modes", n_modes));
    KILN_TRY(ml_require_same_length("nodes_featureids", v->n, "nodes_truenodeids", n_true));
    KILN_TRY(ml_require_same_length("nodes_featureids", v->n, "nodes_falsenodeids", n_false));
    KILN_TRY(ml_require_same_length("nodes_featureids", v->n, "nodes_trueleafs", n_tl));
    KILN_TRY(ml_require_same_length("nodes_featureids", v->n, "nodes_falseleafs", n_fl));
    if (v->n_missing)
        KILN_TRY(ml_require_same_length("nodes_featureids", v->n, "nodes_missing_value_tracks_true", v->n_missing));
    return ml_require_same_length("leaf_targetids", v->n_leaves, "leaf_weights", n_weights);
}

/* The index in ml_forest.nodes of a child: leaves follow the n split nodes. */
static kiln_status v5_child(const v5_attrs *v, int i, int side, int32_t *out)
{
    int64_t id = side ? v->false_ids[i] : v->true_ids[i];
    bool leaf = (side ? v->false_leafs[i] : v->true_leafs[i]) != 0;
    int64_t limit = leaf ? v->n_leaves : v->n;
    if (id < 0 || id >= limit)
        return kiln_fail(KILN_ERR_MALFORMED, "node %d: %s child %lld is not one of the %lld %s", i,
                         side ? "false" : "true", (long long)id, (long long)limit, leaf ? "leaves" : "nodes");
    *out = (int32_t)(leaf ? v->n + id : id);
    return KILN_OK;
}

/* Each BRANCH_MEMBER node's members, in node order, each set ended by a NaN. */
static kiln_status v5_members(const v5_attrs *v, ml_forest *f)
{
    int64_t at = 0;
    for (int i = 0; i < v->n; i++) {
        ml_node *n = &f->nodes[i];
        if (n->mode != ML_MEMBER) continue;
        n->first = (int32_t)at;
        while (at < v->n_members && !isnan(v->members[at])) at++;
        if (at >= v->n_members)
            return kiln_fail(KILN_ERR_MALFORMED,
                             "membership_values ends before the set of node %d (each set ends with NaN)", i);
        n->count = (int32_t)(at - n->first);
        at++;
    }
    if (at != v->n_members)
        return kiln_fail(KILN_ERR_MALFORMED, "membership_values holds more sets than there are BRANCH_MEMBER nodes");
    f->members = mem_calloc((size_t)v->n_members + 1, sizeof *f->members);
    if (!f->members) return KILN_ERR_OUT_OF_MEMORY;
    if (v->n_members) memcpy(f->members, v->members, (size_t)v->n_members * sizeof *f->members);
    return KILN_OK;
}

static kiln_status read_v5_nodes(const v5_attrs *v, ml_forest *f)
{
    for (int i = 0; i < v->n; i++) {
        ml_node *n = &f->nodes[i];
        double mode = v->modes[i];
        if (!(mode >= 0 && mode <= 6) || mode != floor(mode))
            return kiln_fail(KILN_ERR_MALFORMED, "nodes_modes[%d] is %g, expected 0 (BRANCH_LEQ) to 6 (BRANCH_MEMBER)",
                             i, mode);
        n->mode = (uint8_t)(ML_LEQ + (int)mode);
        if (v->features[i] < 0 || v->features[i] >= TREE_MAX_FEATURES)
            return kiln_fail(KILN_ERR_MALFORMED, "nodes_featureids[%d] is %lld", i, (long long)v->features[i]);
        n->feature = (int32_t)v->features[i];
        n->threshold = v->splits[i];
        n->missing_true = v->n_missing && v->missing[i] == 1;
        KILN_TRY(v5_child(v, i, 0, &n->child[0]));
        KILN_TRY(v5_child(v, i, 1, &n->child[1]));
    }
    for (int j = 0; j < v->n_leaves; j++) {
        if (v->leaf_targets[j] < 0 || v->leaf_targets[j] >= f->n_targets)
            return kiln_fail(KILN_ERR_MALFORMED, "leaf_targetids[%d] is %lld, the model has %d targets", j,
                             (long long)v->leaf_targets[j], f->n_targets);
        f->nodes[v->n + j] = (ml_node){.mode = ML_LEAF, .first = j, .count = 1};
        f->weights[j] = (tree_leaf_weight){(int32_t)v->leaf_targets[j], v->leaf_weights[j]};
    }
    return v5_members(v, f);
}

/* A root is a split node, or a leaf when the node's two children are that same leaf. */
static kiln_status read_v5_roots(const v5_attrs *v, ml_forest *f)
{
    for (int t = 0; t < v->n_roots; t++) {
        int64_t r = v->roots[t];
        if (r < 0 || r >= v->n)
            return kiln_fail(KILN_ERR_MALFORMED, "tree_roots[%d] is %lld, not a node", t, (long long)r);
        bool single_leaf = v->true_leafs[r] && v->false_leafs[r] && v->true_ids[r] == v->false_ids[r];
        f->roots[t] = single_leaf ? f->nodes[r].child[0] : (int32_t)r;
    }
    return KILN_OK;
}

static kiln_status read_v5_forest(op_init_ctx *ctx, ml_forest *f)
{
    v5_attrs v = {0};
    KILN_TRY(read_v5_lists(ctx, &v));
    f->n_nodes = v.n + v.n_leaves;
    f->n_trees = v.n_roots;
    f->nodes = mem_calloc((size_t)f->n_nodes, sizeof *f->nodes);
    f->roots = mem_calloc((size_t)f->n_trees, sizeof *f->roots);
    f->weights = mem_calloc((size_t)v.n_leaves, sizeof *f->weights);
    if (!f->nodes || !f->roots || !f->weights) return KILN_ERR_OUT_OF_MEMORY;
    KILN_TRY(read_v5_nodes(&v, f));
    KILN_TRY(read_v5_roots(&v, f));
    f->doubles = is_double_tensor(ctx->node, "nodes_splits") || is_double_tensor(ctx->node, "leaf_weights");
    return KILN_OK;
}

/* ---- expanding the forest into the engine's raw trees ------------------------------------------------ */

typedef struct expansion {
    const ml_forest *f;
    tree_raw_node *raw;
    int32_t *bits_at; /* per raw node: where its category words start in `bits`, or -1 */
    int32_t n_raw, cap_raw, budget;
    uint32_t *bits;
    int32_t n_bits, cap_bits;
    bool *on_path; /* per forest node: it is an ancestor of the node being expanded */
    int32_t tree, tree_start;
} expansion;

static kiln_status new_raw(expansion *x, int32_t *at)
{
    if (x->n_raw >= x->budget)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "tree %d: copying its shared subtrees would exceed %d nodes", x->tree,
                         x->budget);
    if (x->n_raw == x->cap_raw) {
        int32_t cap = x->cap_raw ? 2 * x->cap_raw : 256;
        tree_raw_node *raw = mem_realloc(x->raw, (size_t)cap * sizeof *raw);
        if (!raw) return KILN_ERR_OUT_OF_MEMORY;
        x->raw = raw;
        int32_t *bits_at = mem_realloc(x->bits_at, (size_t)cap * sizeof *bits_at);
        if (!bits_at) return KILN_ERR_OUT_OF_MEMORY;
        x->bits_at = bits_at;
        x->cap_raw = cap;
    }
    *at = x->n_raw++;
    memset(&x->raw[*at], 0, sizeof x->raw[*at]);
    x->bits_at[*at] = -1;
    return KILN_OK;
}

/* Makes raw node `at` a categorical split of node n's feature whose set can hold 0 .. max_category. */
static kiln_status new_category_set(expansion *x, int32_t at, const ml_node *n, bool missing_true, double max_category)
{
    int32_t words = (int32_t)(max_category / 32) + 1;
    if (x->n_bits + words > ML_MAX_CATEGORY_WORDS)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "tree %d: the category sets need more than %d words", x->tree,
                         ML_MAX_CATEGORY_WORDS);
    if (x->n_bits + words > x->cap_bits) {
        int32_t cap = x->cap_bits ? 2 * x->cap_bits : 1024;
        while (cap < x->n_bits + words) cap *= 2;
        uint32_t *bits = mem_realloc(x->bits, (size_t)cap * sizeof *bits);
        if (!bits) return KILN_ERR_OUT_OF_MEMORY;
        x->bits = bits;
        x->cap_bits = cap;
    }
    memset(x->bits + x->n_bits, 0, (size_t)words * sizeof *x->bits);
    x->raw[at] = (tree_raw_node){.kind = TREE_RAW_CATEGORICAL,
                                 .feature = n->feature,
                                 .category_words = words,
                                 .category_exact = true,
                                 .missing = missing_true ? TREE_MISSING_TRUE : TREE_MISSING_FALSE};
    x->bits_at[at] = x->n_bits;
    x->n_bits += words;
    return KILN_OK;
}

static void add_category(expansion *x, int32_t at, double category)
{
    uint32_t c = (uint32_t)category;
    x->bits[x->bits_at[at] + (int32_t)(c / 32)] |= 1u << (c % 32);
}

static void set_numeric(expansion *x, int32_t at, const ml_node *n, tree_compare compare, double threshold)
{
    x->raw[at] = (tree_raw_node){.kind = TREE_RAW_NUMERIC,
                                 .feature = n->feature,
                                 .compare = compare,
                                 .threshold = threshold,
                                 .threshold_is_double = x->f->doubles,
                                 .missing = n->missing_true ? TREE_MISSING_TRUE : TREE_MISSING_COMPARE};
}

static kiln_status emit(expansion *x, int32_t node, int depth, int32_t *out);

static kiln_status emit_children(expansion *x, int32_t at, int32_t true_node, int32_t false_node, int depth)
{
    int32_t t, f;
    KILN_TRY(emit(x, true_node, depth + 1, &t));
    KILN_TRY(emit(x, false_node, depth + 1, &f));
    x->raw[at].true_child = t - x->tree_start;
    x->raw[at].false_child = f - x->tree_start;
    return KILN_OK;
}

/* Whether `next` continues the BRANCH_EQ chain that `first` starts (same feature, same true child). */
static bool joins_chain(const expansion *x, const ml_node *first, int32_t next)
{
    const ml_node *n = &x->f->nodes[next];
    return !x->on_path[next] && n->mode == ML_EQ && n->feature == first->feature && n->child[0] == first->child[0] &&
           is_category(n->threshold);
}

/* A chain of BRANCH_EQ nodes down the false branches, sharing their true child, as one categorical split
 * (NaN goes to the true child when any of them tracks missing values there). Falls back to a plain equality
 * split when the chain has one node. The chain's nodes stay marked as ancestors while its children are
 * expanded: reaching one of them below would be a cycle. */
static kiln_status emit_eq(expansion *x, int32_t node, int32_t at, int depth)
{
    const ml_node *first = &x->f->nodes[node], *last = first;
    int32_t length = 1;
    double max = first->threshold;
    bool missing_true = first->missing_true;
    if (is_category(first->threshold))
        for (int32_t next = first->child[1]; joins_chain(x, first, next); next = last->child[1], length++) {
            last = &x->f->nodes[next];
            x->on_path[next] = true;
            max = last->threshold > max ? last->threshold : max;
            missing_true |= last->missing_true;
        }
    kiln_status st = KILN_OK;
    if (length == 1) set_numeric(x, at, first, TREE_CMP_EQ, first->threshold);
    else st = new_category_set(x, at, first, missing_true, max);
    for (int32_t k = 0, n = node; st == KILN_OK && length > 1 && k < length; k++, n = x->f->nodes[n].child[1])
        add_category(x, at, x->f->nodes[n].threshold);
    if (st == KILN_OK) st = emit_children(x, at, first->child[0], last->child[1], depth);
    for (int32_t k = 0, n = node; k < length; k++, n = x->f->nodes[n].child[1])
        if (k > 0) x->on_path[n] = false;
    return st;
}

/* x == members[i] ? true subtree : the next member's test (or the false subtree after the last). */
static kiln_status emit_member_chain(expansion *x, const ml_node *n, int32_t i, int32_t at, int depth)
{
    if (depth > TREE_MAX_DEPTH)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "tree %d is deeper than %d levels", x->tree, TREE_MAX_DEPTH);
    set_numeric(x, at, n, TREE_CMP_EQ, x->f->members[n->first + i]);
    int32_t t, f;
    KILN_TRY(emit(x, n->child[0], depth + 1, &t));
    if (i + 1 < n->count) {
        KILN_TRY(new_raw(x, &f));
        KILN_TRY(emit_member_chain(x, n, i + 1, f, depth + 1));
    } else {
        KILN_TRY(emit(x, n->child[1], depth + 1, &f));
    }
    x->raw[at].true_child = t - x->tree_start;
    x->raw[at].false_child = f - x->tree_start;
    return KILN_OK;
}

/* BRANCH_MEMBER: a categorical split when every member is a category, else a chain of equality tests. */
static kiln_status emit_member(expansion *x, const ml_node *n, int32_t at, int depth)
{
    const double *members = x->f->members + n->first;
    double max = 0;
    for (int32_t i = 0; i < n->count; i++) {
        if (!is_category(members[i])) return emit_member_chain(x, n, 0, at, depth);
        max = members[i] > max ? members[i] : max;
    }
    KILN_TRY(new_category_set(x, at, n, n->missing_true, max));
    for (int32_t i = 0; i < n->count; i++) add_category(x, at, members[i]);
    return emit_children(x, at, n->child[0], n->child[1], depth);
}

static kiln_status emit_split(expansion *x, int32_t node, int32_t at, int depth)
{
    static const tree_compare compares[] = {[ML_LEQ] = TREE_CMP_LE,
                                            [ML_LT] = TREE_CMP_LT,
                                            [ML_GTE] = TREE_CMP_GE,
                                            [ML_GT] = TREE_CMP_GT,
                                            [ML_NEQ] = TREE_CMP_NE};
    const ml_node *n = &x->f->nodes[node];
    if (n->mode == ML_MEMBER) return emit_member(x, n, at, depth);
    if (n->mode == ML_EQ) return emit_eq(x, node, at, depth);
    set_numeric(x, at, n, compares[n->mode], n->threshold);
    return emit_children(x, at, n->child[0], n->child[1], depth);
}

/* Emits the subtree under forest node `node` (a copy of it each time it is reached); *out is its raw index. */
static kiln_status emit(expansion *x, int32_t node, int depth, int32_t *out)
{
    if (depth > TREE_MAX_DEPTH)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "tree %d is deeper than %d levels", x->tree, TREE_MAX_DEPTH);
    if (x->on_path[node])
        return kiln_fail(KILN_ERR_MALFORMED, "tree %d: node %d leads back to itself (a cycle)", x->tree, node);
    KILN_TRY(new_raw(x, out));
    const ml_node *n = &x->f->nodes[node];
    if (n->mode == ML_LEAF) {
        x->raw[*out] =
            (tree_raw_node){.kind = TREE_RAW_LEAF, .weights = x->f->weights + n->first, .n_weights = n->count};
        return KILN_OK;
    }
    x->on_path[node] = true;
    kiln_status st = emit_split(x, node, *out, depth);
    x->on_path[node] = false;
    return st;
}

static kiln_status expand_forest(expansion *x, tree_raw_tree *trees)
{
    const ml_forest *f = x->f;
    int64_t budget = 16 * (int64_t)f->n_nodes + 65536;
    x->budget = (int32_t)(budget < INT32_MAX / 4 ? budget : INT32_MAX / 4);
    x->on_path = mem_calloc((size_t)f->n_nodes, sizeof *x->on_path);
    if (!x->on_path) return KILN_ERR_OUT_OF_MEMORY;
    for (int32_t t = 0; t < f->n_trees; t++) {
        int32_t root;
        x->tree = t;
        x->tree_start = x->n_raw;
        KILN_TRY(emit(x, f->roots[t], 0, &root));
        trees[t] = (tree_raw_tree){NULL, x->n_raw - x->tree_start, 0};
    }
    /* the arrays have stopped moving: point the trees and category splits into them */
    for (int32_t t = 0, start = 0; t < f->n_trees; start += trees[t].n_nodes, t++) trees[t].nodes = x->raw + start;
    for (int32_t i = 0; i < x->n_raw; i++)
        if (x->bits_at[i] >= 0) x->raw[i].category_bits = x->bits + x->bits_at[i];
    return KILN_OK;
}

/* Builds the engine's ensemble. AVERAGE is summed here and divided when the scores are finished (as
 * onnxruntime does, by the number of trees); float sums accumulate in float32 in tree order. */
static kiln_status build_forest(const ml_forest *f, tree_aggregate aggregate, bool float_sums, region *mem,
                                tree_ensemble *e)
{
    expansion x = {.f = f};
    tree_raw_tree *trees = mem_calloc((size_t)f->n_trees, sizeof *trees);
    kiln_status st = trees ? expand_forest(&x, trees) : KILN_ERR_OUT_OF_MEMORY;
    if (st == KILN_OK) {
        int32_t n_features = 1;
        for (int32_t i = 0; i < x.n_raw; i++)
            if (x.raw[i].kind != TREE_RAW_LEAF && x.raw[i].feature + 1 > n_features) n_features = x.raw[i].feature + 1;
        bool summed = aggregate == TREE_AGG_SUM || aggregate == TREE_AGG_AVERAGE;
        tree_raw_ensemble raw = {
            .n_features = n_features,
            .n_targets = f->n_targets,
            .trees = trees,
            .n_trees = f->n_trees,
            .aggregate = summed ? TREE_AGG_SUM : aggregate,
            .sum_in_float32 = float_sums && summed,
        };
        st = tree_ensemble_build(&raw, mem, e);
    }
    mem_free(trees);
    mem_free(x.raw);
    mem_free(x.bits_at);
    mem_free(x.bits);
    mem_free(x.on_path);
    return st;
}

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

/* ---- init ---------------------------------------------------------------------------------------------- */

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
    KILN_TRY(build_forest(f, p->aggregate, p->float_sums, ctx->mem, &p->ensemble));
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
    int n_labels;
    KILN_TRY(op_require_arity(ctx, 1, 1, 2, 2));
    KILN_TRY(check_tree_input(ctx, true));
    KILN_TRY(ml_refuse_attr(node, "classlabels_strings",
                            "string class labels are not supported yet (kiln has no "
                            "string tensors): convert the model with integer labels (classlabels_int64s)"));
    KILN_TRY(ml_ints(node, "classlabels_int64s", &p->labels, &n_labels));
    if (n_labels < 2)
        return kiln_fail(KILN_ERR_MALFORMED, "classlabels_int64s has %d labels, a classifier needs at least 2",
                         n_labels);
    p->classifier = true;
    p->n_targets = n_labels;
    p->aggregate = TREE_AGG_SUM; /* onnxruntime's classifiers always sum, whatever aggregate_function says */
    tree_aggregate ignored;
    KILN_TRY(read_aggregate(node, &ignored));
    KILN_TRY(ml_read_transform(node, &p->transform));
    KILN_TRY(read_base_values(ctx, p));
    ml_forest f = {.n_targets = n_labels};
    kiln_status st = read_v3_forest(ctx, true, &f);
    if (st == KILN_OK) st = finish_init(ctx, p, &f);
    forest_free(&f);
    ctx->output_dtypes[0] = KILN_INT64;
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
    kiln_status st = read_v3_forest(ctx, false, &f);
    if (st == KILN_OK) st = finish_init(ctx, p, &f);
    forest_free(&f);
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
    kiln_status st = read_v5_forest(ctx, &f);
    if (st == KILN_OK) st = finish_init(ctx, p, &f);
    forest_free(&f);
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
    size_t total;
} tree_scratch;

static tree_scratch lay_out_scratch(const ml_tree_params *p, int64_t rows, int64_t cols, bool convert)
{
    tree_scratch s = {0};
    s.x = mem_align_up((size_t)rows * (size_t)p->n_targets * sizeof(double), KILN_ALIGNMENT);
    s.leaves = s.x + mem_align_up(convert ? (size_t)rows * (size_t)cols * sizeof(float) : 0, KILN_ALIGNMENT);
    bool per_row = p->classifier && p->presence_per_row;
    s.present = s.leaves + mem_align_up(per_row ? (size_t)p->ensemble.n_trees * sizeof(int32_t) : 0, KILN_ALIGNMENT);
    s.total = s.present + (per_row ? (size_t)p->n_targets : 0);
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
    *label = p->labels[best < 0 ? 0 : best];
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
        *label = p->labels[is_positive];
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
    for (int64_t r = 0; r < rows; r++) {
        const double *s = scores + r * n;
        if (!p->classifier) {
            regression_row(p, s, (float *)ctx->outputs[0]->data + r * n);
            continue;
        }
        if (per_row) find_scored_classes(&p->ensemble, data + r * cols, (int32_t *)(scratch + at.leaves), per_row);
        int64_t *label = (int64_t *)ctx->outputs[0]->data + r;
        float *z = (float *)ctx->outputs[1]->data + r * n;
        if (n == 2) classify_binary(p, s, present, label, z);
        else classify_many(p, s, present, label, z);
    }
    return KILN_OK;
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
