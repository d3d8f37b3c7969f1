/*
 * tree_simd.h — what the AVX2 and AVX-512 tree walks share: the input rules their walks are specialised for,
 * and the two entry points of tree_kernels that pick the specialisation.
 *
 * A kernel file includes this, then defines walk_implicit, walk_explicit and walk_trees_with for its
 * instruction set. The entry points call each walk with compile-time rules when no rule applies (the common
 * case), so the inlined walk loses the checks for tiny and zero-as-missing inputs.
 */
#ifndef KILN_KERNELS_X86_TREE_SIMD_H
#define KILN_KERNELS_X86_TREE_SIMD_H

#include <stdbool.h>
#include <stdint.h>

#include "kernels/tree_fast.h"

typedef struct walk_rules {
    bool tiny;         /* |x| <= 1e-35 counts as 0 */
    bool zero_missing; /* splits may count 0 as missing */
} walk_rules;

/* Defined by the including kernel file. */
static inline void walk_implicit(const tree_fast *f, const tree_fast_tree *t, const float *x, int64_t stride, int n,
                                 int32_t *slots, walk_rules rules);
static inline void walk_explicit(const tree_fast *f, const tree_fast_tree *t, const float *x, int64_t stride, int n,
                                 int32_t *slots, walk_rules rules);
static inline void walk_trees_with(const tree_fast *f, const tree_fast_tree *trees, int n, const float *row,
                                   int32_t first, int32_t *slots, walk_rules rules);

static inline void walk_rows_with(const tree_fast *f, const tree_fast_tree *t, const float *x, int64_t stride, int n,
                                  int32_t *slots, walk_rules rules)
{
    if (t->layout == TREE_LAYOUT_IMPLICIT) walk_implicit(f, t, x, stride, n, slots, rules);
    else walk_explicit(f, t, x, stride, n, slots, rules);
}

/* tree_kernels.walk_rows */
static void walk_rows(const tree_fast *f, const tree_fast_tree *t, const float *x, int64_t stride, int n,
                      int32_t *slots)
{
    if (f->zero_tiny_inputs || f->zero_missing)
        walk_rows_with(f, t, x, stride, n, slots, (walk_rules){f->zero_tiny_inputs, f->zero_missing});
    else walk_rows_with(f, t, x, stride, n, slots, (walk_rules){false, false});
}

/* tree_kernels.walk_trees */
static void walk_trees(const tree_fast *f, const tree_fast_tree *trees, int n, const float *row, int32_t first,
                       int32_t *slots)
{
    if (f->zero_tiny_inputs || f->zero_missing)
        walk_trees_with(f, trees, n, row, first, slots, (walk_rules){f->zero_tiny_inputs, f->zero_missing});
    else walk_trees_with(f, trees, n, row, first, slots, (walk_rules){false, false});
}

#endif
