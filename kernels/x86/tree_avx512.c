/*
 * tree_avx512.c — the walks of tree_fast.h with AVX-512F, 16 walks per vector.
 *
 * A step needs the split's threshold and test word, then the input value its feature names. Gathers are the
 * obvious way to fetch all three, but a gather costs about a cycle per element, so three per step dominate.
 * Rows walking one implicit tree avoid two of them: the splits of level L are 2^L contiguous entries of each
 * array, and for L <= 7 (up to 128 entries, eight registers) a permute by each lane's position in the level
 * picks them out of registers. Only the input value is gathered, and splits below level 7 are gathered too.
 * Two vectors (32 rows) advance side by side so that two chains of gathers are in flight.
 *
 * Explicit trees, and one row walking many trees (lanes then belong to different trees), gather everything;
 * lanes of shorter trees are masked off once their depth is reached.
 *
 * NaN compares false, so the missing-value rule folds into the compare's mask:
 * `left = (x <= t) | (isnan(x) & missing_left)`, and on zero-missing splits a 0 takes the missing direction.
 */
#include <immintrin.h>
#include <stddef.h>

#include "kernels/tree_fast.h"
#include "kernels/x86/tree_simd.h"

#define LANES 16
/* Levels whose splits are looked up by permutes (at most 2^7 = 128 per level, eight registers). */
#define PERMUTE_LEVELS 8

/* Lanes that go left at splits {thr, test} for input values v. */
static inline __mmask16 goes_left(__m512 thr, __m512i test, __m512 v, walk_rules rules)
{
    const __m512 zero = _mm512_setzero_ps();
    if (rules.tiny) {
        __mmask16 tiny = _mm512_cmp_ps_mask(_mm512_abs_ps(v), _mm512_set1_ps(1e-35f), _CMP_LE_OQ);
        v = _mm512_mask_mov_ps(v, tiny, zero);
    }
    __mmask16 missing_left = _mm512_cmplt_epi32_mask(test, _mm512_setzero_si512()); /* the sign bit */
    __mmask16 left = _mm512_cmp_ps_mask(v, thr, _CMP_LE_OQ) | (_mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q) & missing_left);
    if (rules.zero_missing) {
        __mmask16 zero_is_missing = _mm512_test_epi32_mask(test, _mm512_set1_epi32((int)TREE_TEST_ZERO_MISSING)) &
                                    _mm512_cmp_ps_mask(v, zero, _CMP_EQ_OQ);
        left = (left & ~zero_is_missing) | (zero_is_missing & missing_left);
    }
    return left;
}

/* The input values of rows at x + row_offset, at the features of test words `test`, for `active` lanes. */
static inline __m512 input_values(const float *x, __m512i row_offset, __m512i test, __mmask16 active)
{
    __m512i column = _mm512_add_epi32(row_offset, _mm512_and_si512(test, _mm512_set1_epi32((int)TREE_TEST_FEATURE)));
    return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), active, column, x, 4);
}

/* ---- rows down one implicit tree ------------------------------------------------------------------------ */

/* Entry pos % 32 of the 32 values at table. */
static inline __m512 pair_lookup(const float *table, __m512i pos)
{
    return _mm512_permutex2var_ps(_mm512_loadu_ps(table), pos, _mm512_loadu_ps(table + LANES));
}

/* Entry pos of a level's table of 2^level (level < PERMUTE_LEVELS) 32-bit values, by permutes. */
static inline __m512 level_lookup(const float *table, int32_t level, __m512i pos)
{
    if (level == 0) return _mm512_set1_ps(table[0]);
    if (level <= 4) return _mm512_permutexvar_ps(pos, _mm512_loadu_ps(table));
    __m512 lo = pair_lookup(table, pos);
    if (level == 5) return lo;
    __mmask16 bit5 = _mm512_test_epi32_mask(pos, _mm512_set1_epi32(32));
    lo = _mm512_mask_blend_ps(bit5, lo, pair_lookup(table + 32, pos));
    if (level == 6) return lo;
    __m512 hi = _mm512_mask_blend_ps(bit5, pair_lookup(table + 64, pos), pair_lookup(table + 96, pos));
    return _mm512_mask_blend_ps(_mm512_test_epi32_mask(pos, _mm512_set1_epi32(64)), lo, hi);
}

/* One level of an implicit tree (threshold / test at the tree's slot 0): pos, the lanes' positions in the
 * level, becomes their positions in the next. */
static inline __m512i implicit_step(const float *threshold, const uint32_t *test, int32_t level, __m512i pos,
                                    const float *x, __m512i row_offset, walk_rules rules)
{
    int32_t first = (1 << level) - 1; /* the level's first slot */
    __m512 thr;
    __m512i word;
    if (level < PERMUTE_LEVELS) {
        thr = level_lookup(threshold + first, level, pos);
        word = _mm512_castps_si512(level_lookup((const float *)(test + first), level, pos));
    } else {
        __m512i at = _mm512_add_epi32(pos, _mm512_set1_epi32(first));
        thr = _mm512_i32gather_ps(at, threshold, 4);
        word = _mm512_i32gather_epi32(at, test, 4);
    }
    __mmask16 left = goes_left(thr, word, input_values(x, row_offset, word, 0xffff), rules);
    pos = _mm512_add_epi32(pos, pos);
    return _mm512_mask_add_epi32(pos, (__mmask16)~left, pos, _mm512_set1_epi32(1));
}

/* Offsets of rows first_lane + lane (the last of rows_left repeated past it) from the first row. */
static inline __m512i row_offsets(int first_lane, int rows_left, int64_t stride)
{
    __m512i lane = _mm512_add_epi32(_mm512_set1_epi32(first_lane), _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9,
                                                                                  10, 11, 12, 13, 14, 15));
    lane = _mm512_min_epi32(lane, _mm512_set1_epi32(rows_left - 1));
    return _mm512_mullo_epi32(lane, _mm512_set1_epi32((int32_t)stride));
}

static inline __mmask16 first_lanes(int n) { return n >= LANES ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1); }

static inline void walk_implicit(const tree_fast *f, const tree_fast_tree *t, const float *x, int64_t stride, int n,
                                 int32_t *slots, walk_rules rules)
{
    const float *threshold = f->threshold + t->base;
    const uint32_t *test = f->test + t->base;
    __m512i leaves = _mm512_set1_epi32((1 << t->depth) - 1); /* the first leaf slot */
    int r0 = 0;
    for (; n - r0 > LANES; r0 += 2 * LANES) { /* two vectors in flight; past n, rows repeat */
        const float *xr = x + r0 * stride;
        __m512i offset_a = row_offsets(0, n - r0, stride), offset_b = row_offsets(LANES, n - r0, stride);
        __m512i a = _mm512_setzero_si512(), b = _mm512_setzero_si512();
        for (int32_t level = 0; level < t->depth; level++) {
            a = implicit_step(threshold, test, level, a, xr, offset_a, rules);
            b = implicit_step(threshold, test, level, b, xr, offset_b, rules);
        }
        _mm512_storeu_si512(slots + r0, _mm512_add_epi32(a, leaves));
        _mm512_mask_storeu_epi32(slots + r0 + LANES, first_lanes(n - r0 - LANES), _mm512_add_epi32(b, leaves));
    }
    if (r0 < n) { /* the last 16 rows or fewer */
        __m512i offset = row_offsets(0, n - r0, stride), a = _mm512_setzero_si512();
        for (int32_t level = 0; level < t->depth; level++)
            a = implicit_step(threshold, test, level, a, x + r0 * stride, offset, rules);
        _mm512_mask_storeu_epi32(slots + r0, first_lanes(n - r0), _mm512_add_epi32(a, leaves));
    }
}

/* ---- everything else: gathered splits ----------------------------------------------------------------- */

/* The next slot (relative to its tree) of walks at `slot`, whose split is entry `at` of f's arrays, for rows
 * at x + row_offset; `left` is f->left (explicit trees) or NULL (implicit). Only `active` lanes load anything. */
static inline __m512i gathered_step(const tree_fast *f, const int32_t *left, __m512i at, __m512i slot,
                                    const float *x, __m512i row_offset, __mmask16 active, walk_rules rules)
{
    const __m512i none = _mm512_setzero_si512(), one = _mm512_set1_epi32(1);
    __m512i test = _mm512_mask_i32gather_epi32(none, active, at, f->test, 4);
    __m512 thr = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), active, at, f->threshold, 4);
    __mmask16 go_left = goes_left(thr, test, input_values(x, row_offset, test, active), rules);
    __m512i right = left ? _mm512_add_epi32(_mm512_mask_i32gather_epi32(none, active, at, left, 4), one)
                         : _mm512_add_epi32(_mm512_add_epi32(slot, slot), _mm512_set1_epi32(2));
    return _mm512_mask_sub_epi32(right, go_left, right, one);
}

static inline void walk_explicit(const tree_fast *f, const tree_fast_tree *t, const float *x, int64_t stride, int n,
                                 int32_t *slots, walk_rules rules)
{
    __m512i base = _mm512_set1_epi32(t->base);
    for (int r0 = 0; r0 < n; r0 += 2 * LANES) {
        const float *xr = x + r0 * stride;
        __m512i offset_a = row_offsets(0, n - r0, stride), offset_b = row_offsets(LANES, n - r0, stride);
        __m512i a = _mm512_setzero_si512(), b = _mm512_setzero_si512();
        for (int32_t s = 0; s < t->depth; s++) {
            a = gathered_step(f, f->left, _mm512_add_epi32(base, a), a, xr, offset_a, 0xffff, rules);
            b = gathered_step(f, f->left, _mm512_add_epi32(base, b), b, xr, offset_b, 0xffff, rules);
        }
        _mm512_mask_storeu_epi32(slots + r0, first_lanes(n - r0), a);
        if (n - r0 > LANES) _mm512_mask_storeu_epi32(slots + r0 + LANES, first_lanes(n - r0 - LANES), b);
    }
}

/* One row's input values, for walks of one row down many trees: rows of up to 32 features are held in two
 * registers and looked up by a permute, wider rows are gathered. */
typedef struct row_values {
    const float *row;
    bool in_registers;
    __m512 lo, hi;
} row_values;

static inline row_values load_row(const tree_fast *f, const float *row, int32_t n_features, walk_rules rules)
{
    row_values rv = {row, n_features <= 2 * LANES, _mm512_setzero_ps(), _mm512_setzero_ps()};
    if (!rv.in_registers) return rv;
    rv.lo = _mm512_maskz_loadu_ps(first_lanes(n_features), row);
    if (n_features > LANES) rv.hi = _mm512_maskz_loadu_ps(first_lanes(n_features - LANES), row + LANES);
    (void)f, (void)rules;
    return rv;
}

static inline __m512 row_lookup(const row_values *rv, __m512i test, __mmask16 active)
{
    if (!rv->in_registers) return input_values(rv->row, _mm512_setzero_si512(), test, active);
    return _mm512_permutex2var_ps(rv->lo, _mm512_and_si512(test, _mm512_set1_epi32(31)), rv->hi);
}

/* The next slots of lanes walking trees whose slots start at `base`, for one row (see gathered_step). */
static inline __m512i row_step(const tree_fast *f, const int32_t *left, __m512i base, __m512i slot,
                               const row_values *rv, __mmask16 active, walk_rules rules)
{
    const __m512i none = _mm512_setzero_si512(), one = _mm512_set1_epi32(1);
    __m512i at = _mm512_add_epi32(base, slot);
    __m512i test = _mm512_mask_i32gather_epi32(none, active, at, f->test, 4);
    __m512 thr = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), active, at, f->threshold, 4);
    __mmask16 go_left = goes_left(thr, test, row_lookup(rv, test, active), rules);
    __m512i right = left ? _mm512_add_epi32(_mm512_mask_i32gather_epi32(none, active, at, left, 4), one)
                         : _mm512_add_epi32(_mm512_add_epi32(slot, slot), _mm512_set1_epi32(2));
    return _mm512_mask_mov_epi32(slot, active, _mm512_mask_sub_epi32(right, go_left, right, one));
}

/* The base / tree fields of up to 16 trees (tree_fast_tree is four int32: base, depth, layout, tree). */
static inline __m512i tree_field(const tree_fast_tree *trees, int field, __mmask16 valid)
{
    __m512i at = _mm512_slli_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), 2);
    return _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), valid, at, (const int32_t *)trees + field, 4);
}

/* One row walks trees[0 .. n) (one layout, one depth), 32 at a time: two vectors keep two chains of gathers in
 * flight. Slots are relative to each tree's base. */
static inline void walk_tree_run(const tree_fast *f, const tree_fast_tree *trees, int n, const row_values *rv,
                                 int32_t first, int32_t *slots, walk_rules rules)
{
    const int32_t *left = trees[0].layout == TREE_LAYOUT_EXPLICIT ? f->left : NULL;
    for (int k = 0; k < n; k += 2 * LANES) {
        __mmask16 valid_a = first_lanes(n - k), valid_b = n - k > LANES ? first_lanes(n - k - LANES) : 0;
        __m512i base_a = tree_field(trees + k, 0, valid_a), base_b = tree_field(trees + k + LANES, 0, valid_b);
        __m512i a = _mm512_setzero_si512(), b = _mm512_setzero_si512();
        for (int32_t s = 0; s < trees[0].depth; s++) {
            a = row_step(f, left, base_a, a, rv, valid_a, rules);
            b = row_step(f, left, base_b, b, rv, valid_b, rules);
        }
        __m512i shift = _mm512_set1_epi32(first);
        _mm512_mask_i32scatter_epi32(slots, valid_a, _mm512_sub_epi32(tree_field(trees + k, 3, valid_a), shift), a, 4);
        _mm512_mask_i32scatter_epi32(slots, valid_b, _mm512_sub_epi32(tree_field(trees + k + LANES, 3, valid_b), shift),
                                     b, 4);
    }
}

static inline void walk_trees_with(const tree_fast *f, const tree_fast_tree *trees, int n, const float *row,
                                   int32_t first, int32_t *slots, walk_rules rules)
{
    row_values rv = load_row(f, row, f->n_features, rules);
    for (int k0 = 0, k1; k0 < n; k0 = k1) {
        for (k1 = k0 + 1; k1 < n && trees[k1].layout == trees[k0].layout && trees[k1].depth == trees[k0].depth;) k1++;
        walk_tree_run(f, trees + k0, k1 - k0, &rv, first, slots, rules);
    }
}

/* Row offsets of 32 rows live in 32-bit lanes. */
const tree_kernels tree_kernels_avx512 = {"avx512", walk_rows, walk_trees, (int64_t)1 << 25};
