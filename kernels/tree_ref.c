/*
 * tree_ref.c — the reference tree traversal: one row, one tree, one node at a time, exactly as the
 * canonical split is defined in tree_ensemble.h. Every faster traversal is tested against it.
 */
#include <math.h>

#include "kernels/tree_ensemble.h"

/* The value a split sees: LightGBM maps |x| <= 1e-35 to 0 before any split. */
static float input_value(const tree_ensemble *e, float x)
{
    return e->zero_tiny_inputs && fabsf(x) <= 1e-35f ? 0.0f : x;
}

/* True when the category test sends x left. */
static bool category_goes_left(const tree_ensemble *e, const tree_node *n, float x)
{
    if (!(x > -1.0f && x < 2147483648.0f)) return false; /* negative after truncation, or beyond int32 */
    if ((n->flags & TREE_CATEGORY_EXACT) && x != truncf(x)) return false;
    if ((n->flags & TREE_CATEGORY_NONNEGATIVE) && x < 0.0f) return false;
    uint32_t category = (uint32_t)x; /* truncation toward zero: -0.5 is category 0 */
    const uint32_t *words = &e->category_bits[n->test.category_words];
    if (category / 32 >= words[0]) return false;
    return (words[1 + category / 32] >> (category % 32)) & 1u;
}

static bool goes_left(const tree_ensemble *e, const tree_node *n, float x)
{
    bool missing = isnan(x) || ((n->flags & TREE_ZERO_MISSING) && x == 0.0f);
    if (missing) return (n->flags & TREE_MISSING_LEFT) != 0;
    switch (n->kind) {
    case TREE_NODE_LE: return x <= n->test.threshold;
    case TREE_NODE_EQ: return x == n->test.threshold;
    case TREE_NODE_CATEGORICAL: return category_goes_left(e, n, x);
    }
    return false;
}

int32_t tree_ensemble_walk_tree(const tree_ensemble *e, int32_t tree, const float *row)
{
    int32_t node = e->roots[tree];
    while (e->nodes[node].kind != TREE_NODE_LEAF) {
        const tree_node *n = &e->nodes[node];
        node = n->left + (goes_left(e, n, input_value(e, row[n->feature])) ? 0 : 1);
    }
    return node;
}

static int32_t find_leaf(const tree_ensemble *e, int32_t tree, const float *row)
{
    return e->nodes[tree_ensemble_walk_tree(e, tree, row)].left;
}

void tree_ensemble_leaves(const tree_ensemble *e, const float *row, int32_t *leaves)
{
    for (int32_t t = 0; t < e->n_trees; t++) leaves[t] = find_leaf(e, t, row);
}

/* Aggregates one row's leaves into scores[0 .. n_targets) (scores may hold garbage on entry).
 *
 * With sum_in_float32 (XGBoost) the running sum starts at the base value and every addition is rounded to
 * float32, in tree order; each partial sum is held exactly in the double array. MIN and MAX start from an
 * infinity that a target no leaf contributes to turns back into 0, as onnxruntime leaves such scores. */
static void score_row(const tree_ensemble *e, const float *row, double *scores)
{
    int32_t targets = e->n_targets;
    double start = e->sum_in_float32 ? 0.0 : e->aggregate == TREE_AGG_MIN ? INFINITY
                                           : e->aggregate == TREE_AGG_MAX ? -INFINITY
                                                                          : 0.0;
    for (int32_t k = 0; k < targets; k++) scores[k] = e->sum_in_float32 ? (float)e->base_values[k] : start;
    for (int32_t t = 0; t < e->n_trees; t++) {
        int32_t leaf = find_leaf(e, t, row);
        for (int32_t w = e->leaf_first[leaf]; w < e->leaf_first[leaf + 1]; w++) {
            const tree_leaf_weight *lw = &e->leaf_weights[w];
            double *s = &scores[lw->target];
            if (e->sum_in_float32) *s = (float)((float)*s + (float)lw->weight);
            else if (e->aggregate == TREE_AGG_MIN) *s = lw->weight < *s ? lw->weight : *s;
            else if (e->aggregate == TREE_AGG_MAX) *s = lw->weight > *s ? lw->weight : *s;
            else *s += lw->weight;
        }
    }
    if (e->sum_in_float32) return;
    for (int32_t k = 0; k < targets; k++) {
        if (e->aggregate == TREE_AGG_AVERAGE && e->average_divisor[k] > 0) scores[k] /= e->average_divisor[k];
        if ((e->aggregate == TREE_AGG_MIN || e->aggregate == TREE_AGG_MAX) && scores[k] == start) scores[k] = 0.0;
        scores[k] += e->base_values[k];
    }
}

void tree_ensemble_predict_reference(const tree_ensemble *e, const float *x, int64_t rows, int64_t row_stride,
                                     double *scores)
{
    for (int64_t r = 0; r < rows; r++) score_row(e, x + r * row_stride, scores + r * e->n_targets);
}
