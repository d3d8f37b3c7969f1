/*
 * tree_build.c — from a loader's description of trees to the engine's canonical, validated layout.
 *
 * Canonical split: for a non-missing float32 x, go left when `x <= t` (or `x == t`, or category in set).
 * Every ordered comparison a library makes has an exact equivalent of that form, because between two
 * adjacent float32 values there is no float32 input:
 *
 *     float  x <  t   <=>  x <= prev(t)               (prev: the next float32 towards -inf)
 *     float  x >  t   <=>  not (x <= t)               (children swapped)
 *     float  x >= t   <=>  not (x <= prev(t))
 *     double x <= d   <=>  x <= down(d)               (down: the largest float32 <= d)
 *     double x <  d   <=>  x <= down(d), or prev(d) when d is itself a float32
 *
 * A comparison that can never be true (x < -inf) gets threshold NaN, which makes `x <= t` false for every
 * x. Missing values (NaN, and zero where the node says so) never reach the comparison: their direction is
 * worked out here, once, from the library's rule, so the hot loop needs one flag test.
 *
 * Layout: trees are laid out breadth-first, each node's two children in adjacent slots, so a traversal step
 * is `node = left + (goes right)`.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "kernels/tree_ensemble.h"
#include "kernels/tree_fast.h"

/* ---- thresholds ---------------------------------------------------------------------------------------- */

static float previous_float(float f) { return nextafterf(f, -INFINITY); }

/* The largest float32 <= d (d not NaN). */
static float float_at_or_below(double d)
{
    float f = (float)d; /* round to nearest: may be above d */
    if ((double)f > d) f = previous_float(f);
    return f;
}

typedef struct canonical_split {
    float threshold;
    bool equality; /* x == threshold instead of x <= threshold */
    bool swap;     /* the original test's true branch is the canonical right child */
} canonical_split;

static canonical_split canonicalize(tree_compare compare, double threshold, bool is_double)
{
    canonical_split c = {NAN, false, false};
    if (isnan(threshold)) { /* every comparison with NaN is false, except NE */
        c.equality = true;
        c.swap = compare == TREE_CMP_NE;
        return c;
    }
    bool swap = compare == TREE_CMP_GT || compare == TREE_CMP_GE || compare == TREE_CMP_NE;
    c.swap = swap;
    if (compare == TREE_CMP_EQ || compare == TREE_CMP_NE) {
        c.equality = true;
        float f = (float)threshold;
        /* a double no float32 equals can never be met */
        c.threshold = (!is_double || (double)f == threshold) ? f : NAN;
        return c;
    }
    bool strict = compare == TREE_CMP_LT || compare == TREE_CMP_GE; /* x < t, or the negation of it */
    float bound;
    if (!is_double) {
        float f = (float)threshold;
        bound = strict ? previous_float(f) : f;
        if (strict && f == -INFINITY) bound = NAN;
    } else {
        float f = float_at_or_below(threshold);
        bound = (strict && (double)f == threshold) ? previous_float(f) : f;
        if (strict && threshold == -INFINITY) bound = NAN;
    }
    c.threshold = bound;
    return c;
}

/* The original test's outcome for x = 0 (LightGBM replaces NaN by 0 on some nodes). */
static bool test_at_zero(const tree_raw_node *n)
{
    double t = n->threshold_is_double ? n->threshold : (double)(float)n->threshold;
    switch (n->compare) {
    case TREE_CMP_LT: return 0.0 < t;
    case TREE_CMP_LE: return 0.0 <= t;
    case TREE_CMP_GT: return 0.0 > t;
    case TREE_CMP_GE: return 0.0 >= t;
    case TREE_CMP_EQ: return 0.0 == t;
    case TREE_CMP_NE: return 0.0 != t;
    }
    return false;
}

/* Whether a missing value takes the original test's true branch. */
static bool missing_takes_true(const tree_raw_node *n)
{
    switch (n->missing) {
    case TREE_MISSING_TRUE: return true;
    case TREE_MISSING_FALSE: return false;
    case TREE_MISSING_COMPARE: return n->kind == TREE_RAW_NUMERIC && n->compare == TREE_CMP_NE;
    case TREE_MISSING_AS_ZERO: return n->kind == TREE_RAW_NUMERIC && test_at_zero(n);
    }
    return false;
}

/* ---- validation ---------------------------------------------------------------------------------------- */

typedef struct build_state {
    const tree_raw_ensemble *raw;
    region *mem;
    tree_ensemble *e;
    int32_t *slot_of;     /* per raw node of the current tree: its slot, or -1 before it is reached */
    int32_t *queue;       /* raw node indices in breadth-first order */
    int32_t tree_capacity;
    /* totals over all trees, from the counting pass */
    int64_t nodes, leaves, weights, category_words;
    bool *target_used;    /* per target, for the current tree */
    int32_t *trees_per_target;
} build_state;

static kiln_status node_error(int tree, int node, const char *what)
{
    return kiln_fail(KILN_ERR_MALFORMED, "tree %d node %d: %s", tree, node, what);
}

static kiln_status check_node(const build_state *b, int tree, int index, const tree_raw_node *n)
{
    const tree_raw_ensemble *raw = b->raw;
    char message[160];
    if (n->kind == TREE_RAW_LEAF) {
        if (n->n_weights < 0 || (n->n_weights > 0 && !n->weights)) return node_error(tree, index, "bad leaf weights");
        for (int32_t w = 0; w < n->n_weights; w++)
            if (n->weights[w].target < 0 || n->weights[w].target >= raw->n_targets) {
                snprintf(message, sizeof message, "leaf weight for target %d, the model has %d targets",
                         n->weights[w].target, raw->n_targets);
                return node_error(tree, index, message);
            }
        return KILN_OK;
    }
    if (n->kind != TREE_RAW_NUMERIC && n->kind != TREE_RAW_CATEGORICAL) return node_error(tree, index, "unknown node kind");
    if (n->feature < 0 || n->feature >= raw->n_features) {
        snprintf(message, sizeof message, "feature %d is beyond the input's %d features", n->feature, raw->n_features);
        return node_error(tree, index, message);
    }
    if (n->kind == TREE_RAW_CATEGORICAL && (n->category_words < 0 || n->category_words > (1 << 20) ||
                                             (n->category_words > 0 && !n->category_bits)))
        return node_error(tree, index, "bad category set");
    if (n->zero_is_missing && n->missing != TREE_MISSING_TRUE && n->missing != TREE_MISSING_FALSE)
        return node_error(tree, index, "zero-as-missing needs a missing direction");
    for (int side = 0; side < 2; side++) {
        int32_t child = side ? n->false_child : n->true_child;
        if (child < 0 || child >= b->raw->trees[tree].n_nodes) {
            snprintf(message, sizeof message, "child %d is not a node of this tree (it has %d)", child,
                     b->raw->trees[tree].n_nodes);
            return node_error(tree, index, message);
        }
    }
    return KILN_OK;
}

/* Breadth-first walk of one tree: checks every reachable node, that none is reached twice (which catches
 * cycles too) and the depth; fills b->queue and returns the reachable count. */
static kiln_status walk_tree(build_state *b, int tree, int32_t *reached)
{
    const tree_raw_tree *t = &b->raw->trees[tree];
    if (t->n_nodes <= 0 || t->n_nodes > b->tree_capacity) return kiln_fail(KILN_ERR_MALFORMED, "tree %d has no nodes", tree);
    if (t->root < 0 || t->root >= t->n_nodes)
        return kiln_fail(KILN_ERR_MALFORMED, "tree %d: root %d is not one of its %d nodes", tree, t->root, t->n_nodes);
    for (int32_t i = 0; i < t->n_nodes; i++) b->slot_of[i] = -1;
    int32_t head = 0, tail = 0, depth_end = 1, depth = 0;
    b->queue[tail++] = t->root;
    b->slot_of[t->root] = 0;
    while (head < tail) {
        if (head == depth_end) {
            if (++depth > TREE_MAX_DEPTH)
                return kiln_fail(KILN_ERR_UNSUPPORTED, "tree %d is deeper than %d levels", tree, TREE_MAX_DEPTH);
            depth_end = tail;
        }
        int32_t index = b->queue[head++];
        const tree_raw_node *n = &t->nodes[index];
        KILN_TRY(check_node(b, tree, index, n));
        if (n->kind == TREE_RAW_LEAF) continue;
        for (int side = 0; side < 2; side++) {
            int32_t child = side ? n->false_child : n->true_child;
            if (b->slot_of[child] >= 0) return node_error(tree, index, "a child is reached twice (a cycle?)");
            b->slot_of[child] = 0;
            b->queue[tail++] = child;
        }
    }
    *reached = tail;
    return KILN_OK;
}

static kiln_status count_everything(build_state *b)
{
    int32_t widest = 1;
    for (int t = 0; t < b->raw->n_trees; t++)
        if (b->raw->trees[t].n_nodes > widest) widest = b->raw->trees[t].n_nodes;
    b->tree_capacity = widest;
    b->slot_of = mem_calloc((size_t)widest, sizeof *b->slot_of);
    b->queue = mem_calloc((size_t)widest, sizeof *b->queue);
    if (!b->slot_of || !b->queue) return KILN_ERR_OUT_OF_MEMORY;
    for (int t = 0; t < b->raw->n_trees; t++) {
        int32_t reached;
        KILN_TRY(walk_tree(b, t, &reached));
        const tree_raw_tree *tree = &b->raw->trees[t];
        for (int32_t i = 0; i < reached; i++) {
            const tree_raw_node *n = &tree->nodes[b->queue[i]];
            b->nodes++;
            if (n->kind == TREE_RAW_LEAF) b->leaves++, b->weights += n->n_weights;
            if (n->kind == TREE_RAW_CATEGORICAL) b->category_words += 1 + n->category_words;
        }
        if (b->nodes > INT32_MAX / 2 || b->weights > INT32_MAX / 2 || b->category_words > INT32_MAX / 2)
            return kiln_fail(KILN_ERR_UNSUPPORTED, "the ensemble has too many nodes");
    }
    return KILN_OK;
}

/* ---- layout -------------------------------------------------------------------------------------------- */

/* Fills an internal node; returns whether the original test's true branch is the left child. */
static bool place_internal(build_state *b, const tree_raw_node *n, tree_node *out, int32_t *category_fill)
{
    bool true_goes_left = true;
    out->feature = n->feature;
    if (n->kind == TREE_RAW_CATEGORICAL) {
        out->kind = TREE_NODE_CATEGORICAL;
        out->test.category_words = *category_fill;
        b->e->category_bits[(*category_fill)++] = (uint32_t)n->category_words;
        for (int32_t w = 0; w < n->category_words; w++) b->e->category_bits[(*category_fill)++] = n->category_bits[w];
        if (n->category_exact) out->flags |= TREE_CATEGORY_EXACT;
        if (n->category_nonnegative) out->flags |= TREE_CATEGORY_NONNEGATIVE;
    } else {
        canonical_split c = canonicalize(n->compare, n->threshold, n->threshold_is_double);
        out->kind = c.equality ? TREE_NODE_EQ : TREE_NODE_LE;
        out->test.threshold = c.threshold;
        true_goes_left = !c.swap;
        if (n->zero_is_missing) out->flags |= TREE_ZERO_MISSING;
    }
    if (missing_takes_true(n) == true_goes_left) out->flags |= TREE_MISSING_LEFT;
    return true_goes_left;
}

/* Lays one tree out breadth-first from slot `first`; returns the next free slot. */
static kiln_status lay_out_tree(build_state *b, int tree, int32_t first, int32_t *next_slot, int32_t *leaf_fill,
                                int32_t *weight_fill, int32_t *category_fill)
{
    const tree_raw_tree *t = &b->raw->trees[tree];
    tree_ensemble *e = b->e;
    int32_t reached;
    KILN_TRY(walk_tree(b, tree, &reached)); /* refills queue in breadth-first order */
    int32_t free_slot = first + 1;
    b->slot_of[t->root] = first;
    memset(b->target_used, 0, (size_t)e->n_targets * sizeof *b->target_used);
    for (int32_t q = 0; q < reached; q++) {
        const tree_raw_node *n = &t->nodes[b->queue[q]];
        tree_node *out = &e->nodes[b->slot_of[b->queue[q]]];
        memset(out, 0, sizeof *out);
        if (n->kind == TREE_RAW_LEAF) {
            out->kind = TREE_NODE_LEAF;
            out->left = (*leaf_fill)++;
            e->leaf_node[out->left] = b->queue[q];
            e->leaf_first[out->left] = *weight_fill;
            for (int32_t w = 0; w < n->n_weights; w++) {
                e->leaf_weights[(*weight_fill)++] = n->weights[w];
                b->target_used[n->weights[w].target] = true;
            }
            continue;
        }
        bool true_goes_left = place_internal(b, n, out, category_fill);
        out->left = free_slot;
        b->slot_of[true_goes_left ? n->true_child : n->false_child] = free_slot;
        b->slot_of[true_goes_left ? n->false_child : n->true_child] = free_slot + 1;
        free_slot += 2;
    }
    for (int32_t target = 0; target < e->n_targets; target++) b->trees_per_target[target] += b->target_used[target];
    *next_slot = free_slot;
    return KILN_OK;
}

static void set_depths(tree_ensemble *e)
{
    e->max_depth = 0;
    for (int32_t t = 0; t < e->n_trees; t++) {
        int32_t end = t + 1 < e->n_trees ? e->roots[t + 1] : e->n_nodes;
        e->nodes[e->roots[t]].depth = 0;
        for (int32_t i = e->roots[t]; i < end; i++) { /* breadth-first: parents come before children */
            tree_node *n = &e->nodes[i];
            if (n->kind == TREE_NODE_LEAF) {
                if (n->depth > e->max_depth) e->max_depth = n->depth;
                continue;
            }
            e->nodes[n->left].depth = e->nodes[n->left + 1].depth = (uint16_t)(n->depth + 1);
        }
    }
}

/* The fast path's tables, when every leaf holds one weight and each tree one target. */
static void find_single_targets(tree_ensemble *e, region *mem)
{
    e->single_target_trees = false;
    int32_t *tree_target = region_alloc(mem, (size_t)e->n_trees + 1, sizeof *tree_target);
    double *leaf_value = region_alloc(mem, (size_t)e->n_leaves + 1, sizeof *leaf_value);
    if (!tree_target || !leaf_value) return; /* the general path still works */
    for (int32_t t = 0; t < e->n_trees; t++) {
        int32_t end = t + 1 < e->n_trees ? e->roots[t + 1] : e->n_nodes;
        tree_target[t] = -1;
        for (int32_t i = e->roots[t]; i < end; i++) {
            const tree_node *n = &e->nodes[i];
            if (n->kind != TREE_NODE_LEAF) continue;
            int32_t first = e->leaf_first[n->left], count = e->leaf_first[n->left + 1] - first;
            if (count != 1) return;
            if (tree_target[t] >= 0 && tree_target[t] != e->leaf_weights[first].target) return;
            tree_target[t] = e->leaf_weights[first].target;
            leaf_value[n->left] = e->leaf_weights[first].weight;
        }
        if (tree_target[t] < 0) tree_target[t] = 0; /* a tree with no leaves cannot exist; keep it defined */
    }
    e->tree_target = tree_target;
    e->leaf_value = leaf_value;
    e->single_target_trees = true;
}

static kiln_status allocate_tables(build_state *b)
{
    tree_ensemble *e = b->e;
    region *mem = b->mem;
    e->nodes = region_alloc(mem, (size_t)b->nodes + 1, sizeof *e->nodes);
    e->roots = region_alloc(mem, (size_t)e->n_trees + 1, sizeof *e->roots);
    e->leaf_first = region_alloc(mem, (size_t)b->leaves + 1, sizeof *e->leaf_first);
    e->leaf_node = region_alloc(mem, (size_t)b->leaves + 1, sizeof *e->leaf_node);
    e->leaf_weights = region_alloc(mem, (size_t)b->weights + 1, sizeof *e->leaf_weights);
    e->category_bits = region_alloc(mem, (size_t)b->category_words + 1, sizeof *e->category_bits);
    e->base_values = region_alloc(mem, (size_t)e->n_targets, sizeof *e->base_values);
    e->average_divisor = region_alloc(mem, (size_t)e->n_targets, sizeof *e->average_divisor);
    b->target_used = mem_calloc((size_t)e->n_targets, sizeof *b->target_used);
    b->trees_per_target = mem_calloc((size_t)e->n_targets, sizeof *b->trees_per_target);
    if (!e->nodes || !e->roots || !e->leaf_first || !e->leaf_node || !e->leaf_weights || !e->category_bits || !e->base_values ||
        !e->average_divisor || !b->target_used || !b->trees_per_target)
        return KILN_ERR_OUT_OF_MEMORY;
    return KILN_OK;
}

static kiln_status build(build_state *b)
{
    const tree_raw_ensemble *raw = b->raw;
    tree_ensemble *e = b->e;
    if (raw->n_features < 0 || raw->n_features > TREE_MAX_FEATURES)
        return kiln_fail(KILN_ERR_MALFORMED, "the model has %d features", raw->n_features);
    if (raw->n_targets < 1 || raw->n_targets > TREE_MAX_TARGETS)
        return kiln_fail(KILN_ERR_MALFORMED, "the model has %d targets", raw->n_targets);
    if (raw->n_trees < 0 || (raw->n_trees > 0 && !raw->trees)) return kiln_fail(KILN_ERR_MALFORMED, "bad tree list");
    e->n_features = raw->n_features;
    e->n_targets = raw->n_targets;
    e->n_trees = raw->n_trees;
    e->aggregate = raw->aggregate;
    e->sum_in_float32 = raw->sum_in_float32;
    e->zero_tiny_inputs = raw->zero_tiny_inputs;
    KILN_TRY(count_everything(b));
    KILN_TRY(allocate_tables(b));
    e->n_nodes = (int32_t)b->nodes;
    e->n_leaves = (int32_t)b->leaves;
    int32_t slot = 0, leaf_fill = 0, weight_fill = 0, category_fill = 0;
    for (int32_t t = 0; t < e->n_trees; t++) {
        e->roots[t] = slot;
        KILN_TRY(lay_out_tree(b, t, slot, &slot, &leaf_fill, &weight_fill, &category_fill));
    }
    e->leaf_first[e->n_leaves] = weight_fill;
    for (int32_t target = 0; target < e->n_targets; target++) {
        e->base_values[target] = raw->base_values ? raw->base_values[target] : 0.0;
        e->average_divisor[target] = raw->average_divisor > 0 ? raw->average_divisor : b->trees_per_target[target];
    }
    set_depths(e);
    find_single_targets(e, b->mem);
    return tree_fast_build(e, b->mem);
}

kiln_status tree_ensemble_build(const tree_raw_ensemble *raw, region *mem, tree_ensemble *out)
{
    memset(out, 0, sizeof *out);
    build_state b = {.raw = raw, .mem = mem, .e = out};
    kiln_status st = build(&b);
    mem_free(b.slot_of);
    mem_free(b.queue);
    mem_free(b.target_used);
    mem_free(b.trees_per_target);
    return st;
}
