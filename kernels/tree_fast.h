/*
 * tree_fast.h — the layout tree_ensemble_predict runs on, and the traversal kernels that walk it.
 *
 * tree_ensemble_build lays out every tree a second time (tree_fast_build) in a form made for walking many rows,
 * or many trees, at once without branches:
 *
 *   IMPLICIT  a tree of depth D whose splits are all `x <= t` becomes a complete binary tree in heap order:
 *             the children of slot i are 2i+1 and 2i+2, so a step is `i = 2i + 2 - go_left` and needs no child
 *             pointer. A leaf above depth D is padded with pass-through splits that send every value left
 *             (threshold +inf, missing left), so every walk takes exactly D steps and ends in slot
 *             2^D-1 .. 2^(D+1)-2. Used while the padding costs at most a few times the tree's own size.
 *   EXPLICIT  the same splits with a child pointer (`left`, the right child is left + 1) for deep or lopsided
 *             trees; leaves point at themselves with a pass-through split, so walking further is harmless
 *             and a walk takes the tree's depth in steps.
 *   GENERAL   trees with equality or categorical splits are walked on the builder's nodes, one row at a time,
 *             with the full canonical test (as the reference does).
 *
 * Each tree owns a range of `slots`. A split slot has a threshold and a test word, which packs the feature with
 * the node's missing-value flags. They are kept in two arrays rather than as pairs: in the implicit layout the
 * splits of one level are then contiguous thresholds and contiguous test words, small tables that vector kernels
 * look up by permuting registers instead of gathering from memory. A walk ends in a leaf slot, whose value
 * (single-target ensembles) or leaf index (the general aggregation) sits at the same slot in `value` /
 * `value32` / `leaf`.
 *
 * A missing value never reaches the comparison in the builder's definition; here it does, and the flags make
 * the answer right: NaN compares false, so `go_left = (x <= t) | (isnan(x) & missing_left)`, and on zero-missing
 * nodes a 0 is forced to the missing direction.
 */
#ifndef KILN_KERNELS_TREE_FAST_H
#define KILN_KERNELS_TREE_FAST_H

#include <stdbool.h>
#include <stdint.h>

#include "kernels/tree_ensemble.h"

/* The test word of a split slot. */
#define TREE_TEST_FEATURE 0x00ffffffu   /* the input column (TREE_MAX_FEATURES is 1 << 24) */
#define TREE_TEST_ZERO_MISSING (1u << 30)
#define TREE_TEST_MISSING_LEFT (1u << 31)

/* Slots readable after the last one (never used by a walk). */
#define TREE_SLOT_PADDING 64

/* Beyond this depth a tree is never laid out implicitly (2^(D+1) slots). */
#define TREE_IMPLICIT_MAX_DEPTH 12

enum tree_layout { TREE_LAYOUT_IMPLICIT, TREE_LAYOUT_EXPLICIT, TREE_LAYOUT_GENERAL };

typedef struct tree_fast_tree {
    int32_t base;   /* first slot; slot numbers inside the tree are relative to it */
    int32_t depth;  /* steps of a walk: D (implicit), the deepest leaf (explicit); general: unused */
    int32_t layout; /* enum tree_layout */
    int32_t tree;   /* its index in the ensemble */
} tree_fast_tree;

/* Trees are walked for one row in chunks of this many (the slots of a chunk fit on the stack). */
#define TREE_CHUNK 512

typedef struct tree_fast {
    tree_fast_tree *trees;    /* per tree, in ensemble order */
    /* The implicit and explicit trees of each chunk sorted by (layout, depth), so that trees walked side by
     * side for one row need the same number of steps: chunk c's are by_depth[chunk_start[c] ..
     * chunk_start[c + 1]). */
    tree_fast_tree *by_depth;
    int32_t *chunk_start;
    bool has_general;         /* some tree is GENERAL */
    float *threshold;         /* per slot, and TREE_SLOT_PADDING more: kernels may read whole vectors at a level */
    uint32_t *test;           /* per slot (and padding): feature | TREE_TEST_* flags */
    int32_t *left;            /* per slot of explicit trees: the left child's slot (relative); NULL if none */
    int32_t *leaf;            /* per leaf slot: the leaf index */
    double *value;            /* per leaf slot, single-target ensembles: the leaf value */
    float *value32;           /* per leaf slot, single-target ensembles summed in float32: (float)value */
    int64_t slots;
    bool zero_missing;        /* some split counts 0 as missing */
    bool zero_tiny_inputs;    /* |x| <= 1e-35 is 0 (copied from the ensemble) */
    int32_t n_features;       /* copied from the ensemble */
} tree_fast;

/* Lays out e's trees as above (allocating in mem) and sets e->fast. Called by tree_ensemble_build. */
kiln_status tree_fast_build(tree_ensemble *e, region *mem);

/* ---- kernels ---------------------------------------------------------------------------------------------- */

/* Rows r < n (row r at x + r * stride) walk tree t; slots[r] = the slot each ends in (relative to t->base).
 * t is implicit or explicit. */
typedef void (*tree_walk_rows_fn)(const tree_fast *f, const tree_fast_tree *t, const float *x, int64_t stride,
                                  int n, int32_t *slots);
/* One row walks trees[k] for k < n (implicit or explicit); slots[trees[k].tree - first] = the slot (relative to
 * the tree's base) tree k ends in. */
typedef void (*tree_walk_trees_fn)(const tree_fast *f, const tree_fast_tree *trees, int n, const float *row,
                                   int32_t first, int32_t *slots);

typedef struct tree_kernels {
    const char *name;
    tree_walk_rows_fn walk_rows;
    tree_walk_trees_fn walk_trees;
    int64_t max_stride; /* walk_rows needs stride <= this (offsets in 32-bit lanes) */
} tree_kernels;

extern const tree_kernels tree_kernels_portable;
#if defined(KILN_HAVE_X86_KERNELS)
extern const tree_kernels tree_kernels_avx2;
extern const tree_kernels tree_kernels_avx512;
#endif

/* The kernel families tree_ensemble_predict chooses from; AUTO is the fastest this CPU runs, the others let
 * tests and benchmarks run each one. */
typedef enum tree_variant {
    TREE_VARIANT_AUTO = 0,
    TREE_VARIANT_PORTABLE,
    TREE_VARIANT_AVX2,
    TREE_VARIANT_AVX512,
    TREE_VARIANT_COUNT
} tree_variant;

bool tree_variant_available(tree_variant variant);
const char *tree_variant_name(tree_variant variant);
/* tree_ensemble_predict with the given variant, which must be available. */
void tree_ensemble_predict_with_variant(tree_variant variant, const tree_ensemble *e, const float *x, int64_t rows,
                                        int64_t row_stride, double *scores, const parallel_runner *parallel);

#endif
