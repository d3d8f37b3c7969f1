/*
 * tree_schema_build.c — the engine's ensemble from a tree_schema (the attributes of ai.kiln::TreeEnsemble).
 *
 * A schema stores the trees of every library as flat per-node arrays with global node indices; the engine's
 * builder takes one raw node list per tree with local children. This file is that translation and nothing
 * more: it checks what the translation itself relies on (each child inside its tree, leaf weight and
 * category ranges inside their tables) and leaves everything structural to tree_ensemble_build. The operator
 * and the loaders' tests use it, so both run the very ensemble a model file describes.
 */
#include <string.h>

#include "core/error.h"
#include "kernels/tree_ensemble.h"

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

/* The raw description of every tree; `nodes`, `trees` and `weights` are the caller's, sized from the schema. */
static kiln_status describe_trees(const tree_schema *s, tree_raw_node *nodes, tree_raw_tree *trees,
                                  tree_leaf_weight *weights)
{
    for (int32_t w = 0; w < s->n_leaf_weights; w++) weights[w] = (tree_leaf_weight){s->leaf_targets[w], s->leaf_weights[w]};
    for (int32_t t = 0; t < s->n_trees; t++) {
        int32_t first = s->tree_roots[t], end = t + 1 < s->n_trees ? s->tree_roots[t + 1] : s->n_nodes;
        if (first < 0 || end <= first || end > s->n_nodes || (t == 0 && first != 0))
            return kiln_fail(KILN_ERR_MALFORMED, "tree %d: node range %d..%d is invalid", t, first, end);
        for (int32_t i = first; i < end; i++) {
            KILN_TRY(raw_node(s, i, first, end, &nodes[i]));
            if (nodes[i].kind == TREE_RAW_LEAF) nodes[i].weights = weights + s->nodes_leaf_first[i];
        }
        trees[t] = (tree_raw_tree){nodes + first, end - first, 0};
    }
    return KILN_OK;
}

kiln_status tree_ensemble_build_schema(const tree_schema *s, region *mem, tree_ensemble *out)
{
    if (s->n_trees < 1 || s->n_nodes < 1) return kiln_fail(KILN_ERR_MALFORMED, "the model has no trees");
    if (s->aggregate < TREE_AGG_SUM || s->aggregate > TREE_AGG_MAX)
        return kiln_fail(KILN_ERR_MALFORMED, "unknown aggregate %d", s->aggregate);
    tree_raw_node *nodes = mem_calloc((size_t)s->n_nodes, sizeof *nodes);
    tree_raw_tree *trees = mem_calloc((size_t)s->n_trees, sizeof *trees);
    tree_leaf_weight *weights = mem_calloc((size_t)s->n_leaf_weights + 1, sizeof *weights);
    kiln_status st = nodes && trees && weights ? describe_trees(s, nodes, trees, weights) : KILN_ERR_OUT_OF_MEMORY;
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
        st = tree_ensemble_build(&raw, mem, out);
    }
    mem_free(nodes);
    mem_free(trees);
    mem_free(weights);
    return st;
}
