/*
 * tree_walk.c — the portable walks over the layout of tree_fast.h, in plain C for every architecture.
 *
 * A walk is a chain of dependent loads (slot -> feature -> value -> next slot), each a few cycles of latency,
 * so one walk at a time leaves the core idle. These walks go level by level instead: one step of every walk
 * (every row down one tree, or one row down every tree of a run), then the next step. The steps of a level are
 * independent and branch-free, so the processor overlaps the loads of many walks; slots wait in an array
 * between levels.
 */
#include <math.h>

#include "kernels/tree_fast.h"

/* One step's direction at split `slot` of f: 1 to go right, 0 to go left. */
static inline int32_t goes_right(const tree_fast *f, int64_t slot, const float *row, bool tiny, bool zero_missing)
{
    uint32_t test = f->test[slot];
    float v = row[test & TREE_TEST_FEATURE];
    if (tiny) v = fabsf(v) <= 1e-35f ? 0.0f : v;
    bool missing_left = (test & TREE_TEST_MISSING_LEFT) != 0;
    bool left = (v <= f->threshold[slot]) | (isnan(v) & missing_left);
    if (zero_missing && (test & TREE_TEST_ZERO_MISSING) && v == 0.0f) left = missing_left;
    return !left;
}

/* Rows walk down one tree level by level: every row's step at a level is independent of the others', so the
 * processor overlaps the loads of many rows. */
static inline void walk_rows_by_level(const tree_fast *f, const tree_fast_tree *t, const float *x, int64_t stride,
                                   int n, int32_t *slots, bool tiny, bool zero_missing)
{
    int64_t base = t->base;
    for (int r = 0; r < n; r++) slots[r] = 0;
    if (t->layout == TREE_LAYOUT_EXPLICIT) {
        const int32_t *left = f->left + base;
        for (int32_t step = 0; step < t->depth; step++)
            for (int r = 0; r < n; r++)
                slots[r] = left[slots[r]] + goes_right(f, base + slots[r], x + r * stride, tiny, zero_missing);
        return;
    }
    for (int32_t step = 0; step < t->depth; step++)
        for (int r = 0; r < n; r++)
            slots[r] = 2 * slots[r] + 1 + goes_right(f, base + slots[r], x + r * stride, tiny, zero_missing);
}

/* One row walks down trees level by level, like rows down one tree: runs of trees of one layout and depth
 * (the list is sorted that way) advance together, each step of each tree independent of the others'. */
static inline void walk_trees_by_level(const tree_fast *f, const tree_fast_tree *trees, int n, const float *row,
                                    int32_t first, int32_t *slots, bool tiny, bool zero_missing)
{
    int32_t base[TREE_CHUNK], slot[TREE_CHUNK]; /* n <= TREE_CHUNK */
    for (int k = 0; k < n; k++) base[k] = trees[k].base, slot[k] = 0;
    for (int k0 = 0, k1; k0 < n; k0 = k1) {
        for (k1 = k0 + 1; k1 < n && trees[k1].layout == trees[k0].layout && trees[k1].depth == trees[k0].depth;) k1++;
        if (trees[k0].layout == TREE_LAYOUT_EXPLICIT) {
            for (int32_t step = 0; step < trees[k0].depth; step++)
                for (int k = k0; k < k1; k++)
                    slot[k] = f->left[base[k] + slot[k]] + goes_right(f, base[k] + slot[k], row, tiny, zero_missing);
        } else {
            for (int32_t step = 0; step < trees[k0].depth; step++)
                for (int k = k0; k < k1; k++)
                    slot[k] = 2 * slot[k] + 1 + goes_right(f, base[k] + slot[k], row, tiny, zero_missing);
        }
    }
    for (int k = 0; k < n; k++) slots[trees[k].tree - first] = slot[k];
}

/* The input rules are constant for an ensemble: one specialised copy of each walk per combination. */
static void walk_rows(const tree_fast *f, const tree_fast_tree *t, const float *x, int64_t stride, int n,
                      int32_t *slots)
{
    if (f->zero_tiny_inputs) {
        if (f->zero_missing) walk_rows_by_level(f, t, x, stride, n, slots, true, true);
        else walk_rows_by_level(f, t, x, stride, n, slots, true, false);
    } else {
        if (f->zero_missing) walk_rows_by_level(f, t, x, stride, n, slots, false, true);
        else walk_rows_by_level(f, t, x, stride, n, slots, false, false);
    }
}

static void walk_trees(const tree_fast *f, const tree_fast_tree *trees, int n, const float *row, int32_t first,
                       int32_t *slots)
{
    if (f->zero_tiny_inputs) {
        if (f->zero_missing) walk_trees_by_level(f, trees, n, row, first, slots, true, true);
        else walk_trees_by_level(f, trees, n, row, first, slots, true, false);
    } else {
        if (f->zero_missing) walk_trees_by_level(f, trees, n, row, first, slots, false, true);
        else walk_trees_by_level(f, trees, n, row, first, slots, false, false);
    }
}

const tree_kernels tree_kernels_portable = {"portable", walk_rows, walk_trees, INT64_MAX};
