/*
 * ml_forest_read.c — reading the attributes of the ONNX-ML tree operators into an ml_forest (ml_forest.h):
 * the nodes_* lists with class_* or target_* weights of TreeEnsembleClassifier / TreeEnsembleRegressor
 * (opsets 1 and 3, including the double *_as_tensor forms), and TreeEnsemble's (opset 5).
 *
 * Every list is checked here against the others (lengths, ids, features, targets, modes), so that expanding
 * the forest can trust its indices. Opsets 1 and 3 name nodes by (tree id, node id): the nodes are sorted by
 * that key once and children and leaf weights are found by binary search; a tree's root is its first listed
 * node. Opset 5 numbers split nodes and leaves separately: in the forest the leaves follow the split nodes,
 * and BRANCH_MEMBER sets are read from membership_values, each ended by a NaN. Where opsets 1 and 3 leave
 * room, the forest holds what onnxruntime makes of it: weights on split nodes are dropped, and a one-target
 * regressor's leaf keeps one value (its first weight, or its nodes_values entry when it has none).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ml_common.h"
#include "ops/ml_forest.h"

void ml_forest_free(ml_forest *f)
{
    mem_free(f->nodes);
    mem_free(f->roots);
    mem_free(f->weights);
    mem_free(f->members);
    memset(f, 0, sizeof *f);
}

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

kiln_status ml_forest_read_v3(op_init_ctx *ctx, bool classifier, ml_forest *f)
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

kiln_status ml_forest_read_v5(op_init_ctx *ctx, ml_forest *f)
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
