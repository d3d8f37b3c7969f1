/*
 * tree_fast.c — lays a built ensemble out for the batched walks of tree_ensemble_predict (see tree_fast.h).
 *
 * Each tree gets the densest layout it allows: implicit (no child pointers, a fixed number of steps) when
 * its splits are all `x <= t` and padding it to a complete tree costs little, explicit (child pointers) when
 * it is deep and sparse, general (the builder's nodes, walked by the reference) when it has equality or
 * categorical splits. Leaf values are copied next to the slots the walks end in.
 */
#include <math.h>
#include <stdlib.h>

#include "core/error.h"
#include "kernels/tree_fast.h"

/* An implicit tree may take this many times its own node count in slots (short branches padded). */
#define IMPLICIT_MAX_GROWTH 4
/* Slots of all trees together stay below this, so slot numbers and byte offsets fit 32-bit lanes. */
#define MAX_SLOTS (INT32_MAX / 16)

static int32_t tree_end(const tree_ensemble *e, int32_t t) { return t + 1 < e->n_trees ? e->roots[t + 1] : e->n_nodes; }

/* Layout, depth and slot count of tree t, given the slots already used. */
static tree_fast_tree choose_layout(const tree_ensemble *e, int32_t t, int64_t used)
{
    int32_t root = e->roots[t], nodes = tree_end(e, t) - root, depth = 0;
    bool splits_are_le = true;
    for (int32_t i = root; i < root + nodes; i++) {
        const tree_node *n = &e->nodes[i];
        if (n->kind == TREE_NODE_LEAF) depth = n->depth > depth ? n->depth : depth;
        else splits_are_le &= n->kind == TREE_NODE_LE;
    }
    tree_fast_tree ft = {.depth = depth, .layout = TREE_LAYOUT_GENERAL, .tree = t};
    if (!splits_are_le) return ft;
    ft.layout = TREE_LAYOUT_EXPLICIT;
    if (depth <= TREE_IMPLICIT_MAX_DEPTH) {
        int64_t implicit = ((int64_t)2 << depth) - 1;
        if ((implicit <= 64 || implicit <= (int64_t)IMPLICIT_MAX_GROWTH * nodes) && used + implicit <= MAX_SLOTS)
            ft.layout = TREE_LAYOUT_IMPLICIT;
    }
    return ft;
}

static int64_t slot_count(const tree_ensemble *e, const tree_fast_tree *ft)
{
    if (ft->layout == TREE_LAYOUT_IMPLICIT) return ((int64_t)2 << ft->depth) - 1;
    return tree_end(e, ft->tree) - e->roots[ft->tree];
}

/* Slot `slot` as split n, or, for a leaf, as a split that sends every value left: NaN goes left by its flag,
 * everything else is <= +inf. */
static void set_split(tree_fast *f, int64_t slot, const tree_node *n)
{
    if (n->kind == TREE_NODE_LEAF) {
        f->threshold[slot] = INFINITY;
        f->test[slot] = TREE_TEST_MISSING_LEFT;
        return;
    }
    uint32_t test = (uint32_t)n->feature;
    if (n->flags & TREE_MISSING_LEFT) test |= TREE_TEST_MISSING_LEFT;
    if (n->flags & TREE_ZERO_MISSING) test |= TREE_TEST_ZERO_MISSING;
    f->threshold[slot] = n->test.threshold;
    f->test[slot] = test;
}

static void set_leaf(const tree_ensemble *e, tree_fast *f, int64_t slot, const tree_node *leaf)
{
    f->leaf[slot] = leaf->left;
    if (f->value) f->value[slot] = e->leaf_value[leaf->left];
    if (f->value32) f->value32[slot] = (float)e->leaf_value[leaf->left];
}

/* Places builder node `node` at implicit slot `slot` (relative to base) at `level`; a leaf above the last
 * level becomes a pass-through whose whole subtree ends in copies of it. */
static void place_implicit(const tree_ensemble *e, tree_fast *f, const tree_fast_tree *ft, int32_t node,
                           int64_t slot, int32_t level)
{
    const tree_node *n = &e->nodes[node];
    if (level == ft->depth) {
        set_leaf(e, f, ft->base + slot, n);
        return;
    }
    bool leaf = n->kind == TREE_NODE_LEAF;
    set_split(f, ft->base + slot, n);
    place_implicit(e, f, ft, leaf ? node : n->left, 2 * slot + 1, level + 1);
    place_implicit(e, f, ft, leaf ? node : n->left + 1, 2 * slot + 2, level + 1);
}

/* Explicit and general trees keep the builder's breadth-first order: slot = node - root. */
static void place_in_order(const tree_ensemble *e, tree_fast *f, const tree_fast_tree *ft)
{
    int32_t root = e->roots[ft->tree], end = tree_end(e, ft->tree);
    for (int32_t i = root; i < end; i++) {
        const tree_node *n = &e->nodes[i];
        int64_t slot = ft->base + (i - root);
        if (n->kind == TREE_NODE_LEAF) set_leaf(e, f, slot, n);
        if (ft->layout != TREE_LAYOUT_EXPLICIT) continue;
        set_split(f, slot, n);
        f->left[slot] = n->kind == TREE_NODE_LEAF ? i - root : n->left - root;
    }
}

static int compare_by_depth(const void *a, const void *b)
{
    const tree_fast_tree *x = a, *y = b;
    if (x->layout != y->layout) return x->layout - y->layout;
    if (x->depth != y->depth) return x->depth - y->depth;
    return x->tree - y->tree;
}

static kiln_status sort_chunks(const tree_ensemble *e, tree_fast *f, region *mem)
{
    int32_t chunks = (e->n_trees + TREE_CHUNK - 1) / TREE_CHUNK;
    f->by_depth = region_alloc(mem, (size_t)e->n_trees + 1, sizeof *f->by_depth);
    f->chunk_start = region_alloc(mem, (size_t)chunks + 1, sizeof *f->chunk_start);
    if (!f->by_depth || !f->chunk_start) return KILN_ERR_OUT_OF_MEMORY;
    int32_t n = 0;
    for (int32_t c = 0; c < chunks; c++) {
        f->chunk_start[c] = n;
        for (int32_t t = c * TREE_CHUNK; t < e->n_trees && t < (c + 1) * TREE_CHUNK; t++)
            if (f->trees[t].layout != TREE_LAYOUT_GENERAL) f->by_depth[n++] = f->trees[t];
        qsort(f->by_depth + f->chunk_start[c], (size_t)(n - f->chunk_start[c]), sizeof *f->by_depth, compare_by_depth);
    }
    f->chunk_start[chunks] = n;
    return KILN_OK;
}

/* The per-slot arrays share one allocation, each starting a different distance into a page: a walk reads all
 * of them at the same slot, and arrays that all start page-aligned (as big allocations do) put those reads in
 * the same cache sets, which cost a third of the one-row walk's time on a 500-tree model. */
#define ARRAY_STAGGER (17 * 64)

/* The next array of count x size bytes in block, one stagger further into a page than the previous one. */
static void *carve(char *block, size_t *used, int *arrays, size_t count, size_t size)
{
    size_t at = mem_align_up(*used, 4096) + (size_t)++*arrays * ARRAY_STAGGER;
    *used = at + count * size;
    return block + at;
}

static kiln_status allocate_slots(const tree_ensemble *e, tree_fast *f, region *mem, bool any_explicit)
{
    size_t slots = (size_t)f->slots + TREE_SLOT_PADDING, per_slot = sizeof *f->threshold + sizeof *f->test +
                   sizeof *f->leaf + sizeof *f->left + sizeof *f->value;
    char *block = region_alloc(mem, slots * per_slot + 5 * (4096 + 5 * ARRAY_STAGGER), 1);
    if (!block) return KILN_ERR_OUT_OF_MEMORY;
    size_t used = 0;
    int arrays = 0;
    f->threshold = carve(block, &used, &arrays, slots, sizeof *f->threshold);
    f->test = carve(block, &used, &arrays, slots, sizeof *f->test);
    f->leaf = carve(block, &used, &arrays, slots, sizeof *f->leaf);
    if (any_explicit) f->left = carve(block, &used, &arrays, slots, sizeof *f->left);
    if (e->single_target_trees && !e->sum_in_float32) f->value = carve(block, &used, &arrays, slots, sizeof *f->value);
    if (e->single_target_trees && e->sum_in_float32)
        f->value32 = carve(block, &used, &arrays, slots, sizeof *f->value32);
    return KILN_OK;
}

kiln_status tree_fast_build(tree_ensemble *e, region *mem)
{
    tree_fast *f = region_alloc(mem, 1, sizeof *f);
    if (!f || !(f->trees = region_alloc(mem, (size_t)e->n_trees + 1, sizeof *f->trees))) return KILN_ERR_OUT_OF_MEMORY;
    bool any_explicit = false;
    for (int32_t t = 0; t < e->n_trees; t++) {
        f->trees[t] = choose_layout(e, t, f->slots);
        f->trees[t].base = (int32_t)f->slots; /* below MAX_SLOTS + the builder's INT32_MAX / 2 nodes */
        f->slots += slot_count(e, &f->trees[t]);
        any_explicit |= f->trees[t].layout == TREE_LAYOUT_EXPLICIT;
        f->has_general |= f->trees[t].layout == TREE_LAYOUT_GENERAL;
    }
    if (f->slots > INT32_MAX) return kiln_fail(KILN_ERR_UNSUPPORTED, "the ensemble has too many nodes");
    KILN_TRY(allocate_slots(e, f, mem, any_explicit));
    for (int32_t t = 0; t < e->n_trees; t++) {
        const tree_fast_tree *ft = &f->trees[t];
        if (ft->layout == TREE_LAYOUT_IMPLICIT) place_implicit(e, f, ft, e->roots[t], 0, 0);
        else place_in_order(e, f, ft);
    }
    for (int64_t s = 0; s < f->slots && !f->zero_missing; s++)
        f->zero_missing = (f->test[s] & TREE_TEST_ZERO_MISSING) != 0;
    f->zero_tiny_inputs = e->zero_tiny_inputs;
    f->n_features = e->n_features;
    KILN_TRY(sort_chunks(e, f, mem));
    e->fast = f;
    return KILN_OK;
}
