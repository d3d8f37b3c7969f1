/*
 * tree_walk.c — the portable walks over the layout of tree_fast.h, in plain C for every architecture.
 *
 * A walk is a chain of dependent loads (slot -> feature -> value -> next slot), each a few cycles of latency,
 * so one walk at a time leaves the core idle. These walks advance WALK_LANES independent walks side by side
 * (several rows down one tree, or one row down several trees), each step branch-free, so the loads of all
 * lanes overlap; the compiler keeps each lane's slot in a register.
 */
#include <math.h>

#include "kernels/tree_fast.h"

#define WALK_LANES 8

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
static inline void walk_rows_lanes(const tree_fast *f, const tree_fast_tree *t, const float *x, int64_t stride,
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

/* One row walks down trees of one layout WALK_LANES at a time; a lane whose tree is shallower than the
 * group's deepest stops when its own depth is reached. */
static inline void walk_trees_lanes(const tree_fast *f, const tree_fast_tree *trees, int n, const float *row,
                                    int32_t first, int32_t *slots, bool tiny, bool zero_missing)
{
    for (int k0 = 0; k0 < n;) {
        int lanes = 0;
        int32_t layout = trees[k0].layout, steps = 0, depth[WALK_LANES], slot[WALK_LANES];
        int64_t base[WALK_LANES];
        const int32_t *left[WALK_LANES];
        for (; lanes < WALK_LANES && k0 + lanes < n && trees[k0 + lanes].layout == layout; lanes++) {
            const tree_fast_tree *t = &trees[k0 + lanes];
            base[lanes] = t->base;
            left[lanes] = layout == TREE_LAYOUT_EXPLICIT ? f->left + t->base : NULL;
            depth[lanes] = t->depth;
            slot[lanes] = 0;
            steps = t->depth > steps ? t->depth : steps;
        }
        for (int32_t step = 0; step < steps; step++) {
            for (int j = 0; j < lanes; j++) {
                int32_t right = goes_right(f, base[j] + slot[j], row, tiny, zero_missing);
                int32_t next = (left[j] ? left[j][slot[j]] : 2 * slot[j] + 1) + right;
                slot[j] = step < depth[j] ? next : slot[j];
            }
        }
        for (int j = 0; j < lanes; j++) slots[trees[k0 + j].tree - first] = slot[j];
        k0 += lanes;
    }
}

/* The input rules are constant for an ensemble: one specialised copy of each walk per combination. */
static void walk_rows(const tree_fast *f, const tree_fast_tree *t, const float *x, int64_t stride, int n,
                      int32_t *slots)
{
    if (f->zero_tiny_inputs) {
        if (f->zero_missing) walk_rows_lanes(f, t, x, stride, n, slots, true, true);
        else walk_rows_lanes(f, t, x, stride, n, slots, true, false);
    } else {
        if (f->zero_missing) walk_rows_lanes(f, t, x, stride, n, slots, false, true);
        else walk_rows_lanes(f, t, x, stride, n, slots, false, false);
    }
}

static void walk_trees(const tree_fast *f, const tree_fast_tree *trees, int n, const float *row, int32_t first,
                       int32_t *slots)
{
    if (f->zero_tiny_inputs) {
        if (f->zero_missing) walk_trees_lanes(f, trees, n, row, first, slots, true, true);
        else walk_trees_lanes(f, trees, n, row, first, slots, true, false);
    } else {
        if (f->zero_missing) walk_trees_lanes(f, trees, n, row, first, slots, false, true);
        else walk_trees_lanes(f, trees, n, row, first, slots, false, false);
    }
}

const tree_kernels tree_kernels_portable = {"portable", walk_rows, walk_trees, INT64_MAX};
