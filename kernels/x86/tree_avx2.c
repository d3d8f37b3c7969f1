/*
 * tree_avx2.c — the walks of tree_fast.h with AVX2, 8 walks per vector: the scheme of tree_avx512.c (see
 * there) with vector masks (all ones = true) in place of mask registers. AVX2 permutes reach 8 entries, so the
 * splits of levels 0..4 (up to 16 per level, two registers) are permuted out of registers; deeper levels and
 * explicit trees gather them.
 */
#include <immintrin.h>
#include <stddef.h>

#include "kernels/tree_fast.h"
#include "kernels/x86/tree_simd.h"

#define LANES 8
/* Levels whose splits are looked up by permutes (at most 2^4 = 16 per level, two registers). */
#define PERMUTE_LEVELS 5

/* All-ones in lanes that go left at splits {thr, test} for input values v. */
static inline __m256i goes_left(__m256 thr, __m256i test, __m256 v, walk_rules rules)
{
    const __m256 zero = _mm256_setzero_ps();
    if (rules.tiny) {
        __m256 magnitude = _mm256_and_ps(v, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)));
        v = _mm256_andnot_ps(_mm256_cmp_ps(magnitude, _mm256_set1_ps(1e-35f), _CMP_LE_OQ), v);
    }
    __m256i missing_left = _mm256_srai_epi32(test, 31); /* the sign bit, spread */
    __m256i le = _mm256_castps_si256(_mm256_cmp_ps(v, thr, _CMP_LE_OQ));
    __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    __m256i left = _mm256_or_si256(le, _mm256_and_si256(nan, missing_left));
    if (rules.zero_missing) {
        __m256i flag = _mm256_set1_epi32((int)TREE_TEST_ZERO_MISSING);
        __m256i zero_is_missing = _mm256_and_si256(_mm256_cmpeq_epi32(_mm256_and_si256(test, flag), flag),
                                                   _mm256_castps_si256(_mm256_cmp_ps(v, zero, _CMP_EQ_OQ)));
        left = _mm256_blendv_epi8(left, missing_left, zero_is_missing);
    }
    return left;
}

/* The input values of rows at x + row_offset, at the features of test words `test`, for `active` lanes. */
static inline __m256 input_values(const float *x, __m256i row_offset, __m256i test, __m256i active)
{
    __m256i column = _mm256_add_epi32(row_offset, _mm256_and_si256(test, _mm256_set1_epi32((int)TREE_TEST_FEATURE)));
    return _mm256_mask_i32gather_ps(_mm256_setzero_ps(), x, column, _mm256_castsi256_ps(active), 4);
}

/* ---- rows down one implicit tree ------------------------------------------------------------------------ */

/* Entry pos of a level's table of 2^level (level < PERMUTE_LEVELS) 32-bit values, by permutes. */
static inline __m256 level_lookup(const float *table, int32_t level, __m256i pos)
{
    if (level == 0) return _mm256_set1_ps(table[0]);
    __m256 lo = _mm256_permutevar8x32_ps(_mm256_loadu_ps(table), pos);
    if (level <= 3) return lo;
    __m256 hi = _mm256_permutevar8x32_ps(_mm256_loadu_ps(table + 8), pos);
    return _mm256_blendv_ps(lo, hi, _mm256_castsi256_ps(_mm256_slli_epi32(pos, 28))); /* bit 3 */
}

/* One level of an implicit tree (threshold / test at the tree's slot 0): pos, the lanes' positions in the
 * level, becomes their positions in the next. */
static inline __m256i implicit_step(const float *threshold, const uint32_t *test, int32_t level, __m256i pos,
                                    const float *x, __m256i row_offset, walk_rules rules)
{
    int32_t first = (1 << level) - 1; /* the level's first slot */
    __m256 thr;
    __m256i word;
    if (level < PERMUTE_LEVELS) {
        thr = level_lookup(threshold + first, level, pos);
        word = _mm256_castps_si256(level_lookup((const float *)(test + first), level, pos));
    } else {
        __m256i at = _mm256_add_epi32(pos, _mm256_set1_epi32(first));
        thr = _mm256_i32gather_ps(threshold, at, 4);
        word = _mm256_i32gather_epi32((const int *)test, at, 4);
    }
    __m256i left = goes_left(thr, word, input_values(x, row_offset, word, _mm256_set1_epi32(-1)), rules);
    /* 2 pos + 1 going right: left is -1 in lanes going left */
    return _mm256_add_epi32(_mm256_add_epi32(pos, pos), _mm256_add_epi32(left, _mm256_set1_epi32(1)));
}

/* Offsets of rows first_lane + lane (the last of rows_left repeated past it) from the first row. */
static inline __m256i row_offsets(int first_lane, int rows_left, int64_t stride)
{
    __m256i lane = _mm256_add_epi32(_mm256_set1_epi32(first_lane), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    lane = _mm256_min_epi32(lane, _mm256_set1_epi32(rows_left - 1));
    return _mm256_mullo_epi32(lane, _mm256_set1_epi32((int32_t)stride));
}

static inline void store_first(int32_t *out, __m256i v, int n)
{
    int32_t lanes[LANES];
    _mm256_storeu_si256((__m256i *)lanes, v);
    for (int j = 0; j < n && j < LANES; j++) out[j] = lanes[j];
}

static inline void walk_implicit(const tree_fast *f, const tree_fast_tree *t, const float *x, int64_t stride, int n,
                                 int32_t *slots, walk_rules rules)
{
    const float *threshold = f->threshold + t->base;
    const uint32_t *test = f->test + t->base;
    __m256i leaves = _mm256_set1_epi32((1 << t->depth) - 1); /* the first leaf slot */
    for (int r0 = 0; r0 < n; r0 += 2 * LANES) { /* two vectors in flight; past n, rows repeat */
        const float *xr = x + r0 * stride;
        __m256i offset_a = row_offsets(0, n - r0, stride), offset_b = row_offsets(LANES, n - r0, stride);
        __m256i a = _mm256_setzero_si256(), b = _mm256_setzero_si256();
        for (int32_t level = 0; level < t->depth; level++) {
            a = implicit_step(threshold, test, level, a, xr, offset_a, rules);
            b = implicit_step(threshold, test, level, b, xr, offset_b, rules);
        }
        store_first(slots + r0, _mm256_add_epi32(a, leaves), n - r0);
        if (n - r0 > LANES) store_first(slots + r0 + LANES, _mm256_add_epi32(b, leaves), n - r0 - LANES);
    }
}

/* ---- everything else: gathered splits ----------------------------------------------------------------- */

/* The next slot (relative to its tree) of walks at `slot`, whose split is entry `at` of f's arrays, for rows
 * at x + row_offset; `left` is f->left (explicit trees) or NULL (implicit). Only `active` lanes load anything. */
static inline __m256i gathered_step(const tree_fast *f, const int32_t *left, __m256i at, __m256i slot,
                                    const float *x, __m256i row_offset, __m256i active, walk_rules rules)
{
    const __m256i none = _mm256_setzero_si256(), one = _mm256_set1_epi32(1);
    __m256i test = _mm256_mask_i32gather_epi32(none, (const int *)f->test, at, active, 4);
    __m256 thr = _mm256_mask_i32gather_ps(_mm256_setzero_ps(), f->threshold, at, _mm256_castsi256_ps(active), 4);
    __m256i go_left = goes_left(thr, test, input_values(x, row_offset, test, active), rules);
    __m256i right = left ? _mm256_add_epi32(_mm256_mask_i32gather_epi32(none, left, at, active, 4), one)
                         : _mm256_add_epi32(_mm256_add_epi32(slot, slot), _mm256_set1_epi32(2));
    return _mm256_add_epi32(right, go_left); /* go_left is -1 in lanes going left */
}

static inline void walk_explicit(const tree_fast *f, const tree_fast_tree *t, const float *x, int64_t stride, int n,
                                 int32_t *slots, walk_rules rules)
{
    const __m256i all = _mm256_set1_epi32(-1), base = _mm256_set1_epi32(t->base);
    for (int r0 = 0; r0 < n; r0 += 2 * LANES) {
        const float *xr = x + r0 * stride;
        __m256i offset_a = row_offsets(0, n - r0, stride), offset_b = row_offsets(LANES, n - r0, stride);
        __m256i a = _mm256_setzero_si256(), b = _mm256_setzero_si256();
        for (int32_t s = 0; s < t->depth; s++) {
            a = gathered_step(f, f->left, _mm256_add_epi32(base, a), a, xr, offset_a, all, rules);
            b = gathered_step(f, f->left, _mm256_add_epi32(base, b), b, xr, offset_b, all, rules);
        }
        store_first(slots + r0, a, n - r0);
        if (n - r0 > LANES) store_first(slots + r0 + LANES, b, n - r0 - LANES);
    }
}

/* Up to 8 trees' bases (lanes past n repeat the last tree), and where their slots go in the output. */
static inline __m256i tree_bases(const tree_fast_tree *trees, int n, int32_t first, int32_t *out_index)
{
    int32_t base[LANES];
    for (int j = 0; j < LANES; j++) {
        const tree_fast_tree *t = &trees[j < n ? j : n - 1];
        base[j] = t->base;
        out_index[j] = t->tree - first;
    }
    return _mm256_loadu_si256((const __m256i *)base);
}

static inline void store_slots(int32_t *slots, const int32_t *index, __m256i v, int n)
{
    int32_t lanes[LANES];
    _mm256_storeu_si256((__m256i *)lanes, v);
    for (int j = 0; j < n && j < LANES; j++) slots[index[j]] = lanes[j];
}

/* One row walks trees[0 .. n) (one layout, one depth), 16 at a time: two vectors keep two chains of gathers in
 * flight. Slots are relative to each tree's base. */
static inline void walk_tree_run(const tree_fast *f, const tree_fast_tree *trees, int n, const float *row,
                                 int32_t first, int32_t *slots, walk_rules rules)
{
    const int32_t *left = trees[0].layout == TREE_LAYOUT_EXPLICIT ? f->left : NULL;
    const __m256i all = _mm256_set1_epi32(-1), none = _mm256_setzero_si256();
    for (int k = 0; k < n; k += 2 * LANES) {
        int32_t index_a[LANES], index_b[LANES];
        int n_b = n - k - LANES;
        __m256i base_a = tree_bases(trees + k, n - k, first, index_a);
        __m256i base_b = n_b > 0 ? tree_bases(trees + k + LANES, n_b, first, index_b) : base_a;
        __m256i a = none, b = none;
        for (int32_t s = 0; s < trees[0].depth; s++) {
            a = gathered_step(f, left, _mm256_add_epi32(base_a, a), a, row, none, all, rules);
            b = gathered_step(f, left, _mm256_add_epi32(base_b, b), b, row, none, all, rules);
        }
        store_slots(slots, index_a, a, n - k);
        if (n_b > 0) store_slots(slots, index_b, b, n_b);
    }
}

static inline void walk_trees_with(const tree_fast *f, const tree_fast_tree *trees, int n, const float *row,
                                   int32_t first, int32_t *slots, walk_rules rules)
{
    for (int k0 = 0, k1; k0 < n; k0 = k1) {
        for (k1 = k0 + 1; k1 < n && trees[k1].layout == trees[k0].layout && trees[k1].depth == trees[k0].depth;) k1++;
        walk_tree_run(f, trees + k0, k1 - k0, row, first, slots, rules);
    }
}

/* Row offsets of 16 rows live in 32-bit lanes. */
const tree_kernels tree_kernels_avx2 = {"avx2", walk_rows, walk_trees, (int64_t)1 << 26};
