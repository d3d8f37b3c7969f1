/*
 * test_tree_predict.c — the fast tree traversal (kernels/tree_predict.c, tree_walk.c, x86/tree_*.c) against
 * the reference (kernels/tree_ref.c).
 *
 * Both add every row's leaf values in tree order with the same arithmetic, so the scores must be equal bit
 * for bit, not close. Random ensembles cover what loaders can build: XGBoost-like balanced trees (implicit
 * layout), LightGBM-like lopsided and deep trees with double thresholds, zero-as-missing and tiny inputs
 * (explicit layout), trees with equality and categorical splits (general layout), single- and multi-target
 * leaves, every aggregate, float32 and double sums. Inputs are drawn from the thresholds themselves, their
 * float neighbours, NaN, signed zeros, infinities and tiny values. Every kernel variant this CPU runs is
 * forced in turn, on one thread and on three, for row counts around the kernels' vector and block sizes.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kernels/tree_ensemble.h"
#include "kernels/tree_fast.h"
#include "runtime/pool.h"
#include "testlib.h"

#define MAX_NODES 65536
#define MAX_WEIGHTS 120000
#define MAX_WORDS 4000

typedef enum tree_style {
    STYLE_BALANCED,    /* XGBoost-like: x < t on floats, full-ish trees */
    STYLE_LOPSIDED,    /* LightGBM-like: (double)x <= t, zero-as-missing, leaves at any depth */
    STYLE_CHAIN,       /* one long branch, deeper than any implicit layout */
    STYLE_MIXED_KINDS, /* every comparison, equality and categorical splits */
    STYLE_COUNT
} tree_style;

/* A random ensemble and the storage its description points into. */
typedef struct forest {
    tree_raw_ensemble raw;
    tree_raw_tree *trees;
    tree_raw_node *nodes;
    tree_leaf_weight *weights;
    uint32_t *words;
    double base[8];
    int32_t n_nodes, n_weights, n_words;
    bool single_target;
} forest;

/* Values thresholds and inputs share, so that inputs meet thresholds exactly. */
static const double special[] = {-2, -1, -0.5, -1e-36, 0, 1e-36, 1e-35, 1.5e-35, 0.1, 0.5, 1, 2, 3, 7, 3.4e38};

static double random_threshold(bool is_double)
{
    int pick = (int)random_int(0, 19);
    if (pick < 15) return special[pick];
    if (pick == 15) return random_int(0, 1) ? INFINITY : -INFINITY;
    if (pick == 16 && random_int(0, 3) == 0) return NAN;
    double t = random_uniform(-2.5, 2.5);
    return is_double ? t : (double)(float)t;
}

static float random_input(const forest *f)
{
    int pick = (int)random_int(0, 29);
    (void)f;
    if (pick < 15) {
        float v = (float)special[pick];
        int nudge = (int)random_int(0, 3); /* the value, or its float neighbours */
        return nudge == 1 ? nextafterf(v, INFINITY) : nudge == 2 ? nextafterf(v, -INFINITY) : v;
    }
    switch (pick) {
    case 15: return NAN;
    case 16: return -0.0f;
    case 17: return INFINITY;
    case 18: return -INFINITY;
    case 19: return 1e-40f; /* subnormal */
    case 20: return (float)random_int(0, 70);   /* categories */
    case 21: return (float)random_int(0, 40) + 0.5f;
    case 22: return -(float)random_int(0, 3) - 0.5f;
    default: return (float)random_uniform(-2.5, 2.5);
    }
}

static int32_t new_node(forest *f)
{
    assert_true(f->n_nodes < MAX_NODES);
    return f->n_nodes++;
}

static void make_leaf(forest *f, tree_raw_node *n, int32_t tree)
{
    *n = (tree_raw_node){.kind = TREE_RAW_LEAF, .weights = f->weights + f->n_weights};
    n->n_weights = f->single_target ? 1 : (int32_t)random_int(0, 3);
    for (int32_t w = 0; w < n->n_weights; w++) {
        assert_true(f->n_weights < MAX_WEIGHTS);
        int32_t target = f->single_target ? tree % f->raw.n_targets : (int32_t)random_int(0, f->raw.n_targets - 1);
        int pick = (int)random_int(0, 49);
        double weight = pick < 5 ? special[random_int(0, 13)] : pick == 5 ? (random_int(0, 1) ? INFINITY : -INFINITY)
                                                                          : random_uniform(-1, 1);
        f->weights[f->n_weights++] = (tree_leaf_weight){target, weight};
    }
}

static void make_numeric(tree_raw_node *n, tree_style style)
{
    n->kind = TREE_RAW_NUMERIC;
    n->threshold_is_double = style == STYLE_LOPSIDED || (style == STYLE_MIXED_KINDS && random_int(0, 1));
    n->threshold = random_threshold(n->threshold_is_double);
    n->compare = style == STYLE_BALANCED ? TREE_CMP_LT
                 : style == STYLE_MIXED_KINDS ? (tree_compare)random_int(TREE_CMP_LT, TREE_CMP_NE)
                 : random_int(0, 4) ? TREE_CMP_LE : (tree_compare)random_int(TREE_CMP_LT, TREE_CMP_GE);
    n->missing = (tree_missing)random_int(TREE_MISSING_TRUE, TREE_MISSING_AS_ZERO);
    if (style == STYLE_LOPSIDED && random_int(0, 4) == 0) {
        n->zero_is_missing = true;
        n->missing = random_int(0, 1) ? TREE_MISSING_TRUE : TREE_MISSING_FALSE;
    }
}

static void make_categorical(forest *f, tree_raw_node *n)
{
    n->kind = TREE_RAW_CATEGORICAL;
    n->category_words = (int32_t)random_int(0, 3);
    assert_true(f->n_words + n->category_words <= MAX_WORDS);
    n->category_bits = f->words + f->n_words;
    for (int32_t w = 0; w < n->category_words; w++)
        f->words[f->n_words++] = (uint32_t)random_int(0, UINT32_MAX);
    n->category_exact = random_int(0, 1);
    n->missing = (tree_missing)random_int(TREE_MISSING_TRUE, TREE_MISSING_COMPARE);
}

static bool stops_here(tree_style style, int depth, int max_depth, bool first_child)
{
    if (depth >= max_depth) return true;
    switch (style) {
    case STYLE_BALANCED: return random_int(0, 9) == 0;
    case STYLE_LOPSIDED: return depth > 0 && random_int(0, 99) < 35;
    case STYLE_CHAIN: return first_child;
    default: return random_int(0, 5) == 0;
    }
}

/* Grows node `index` of the tree starting at node `first` (children are indices relative to it). */
static void grow(forest *f, int32_t first, int32_t index, int32_t tree, tree_style style, int depth, int max_depth,
                 bool first_child)
{
    tree_raw_node *n = &f->nodes[index];
    if (stops_here(style, depth, max_depth, first_child)) {
        make_leaf(f, n, tree);
        return;
    }
    *n = (tree_raw_node){.feature = (int32_t)random_int(0, f->raw.n_features - 1)};
    if (style == STYLE_MIXED_KINDS && random_int(0, 5) == 0) make_categorical(f, n);
    else make_numeric(n, style);
    int32_t a = new_node(f), b = new_node(f);
    bool swap = random_int(0, 1);
    n->true_child = (swap ? b : a) - first;
    n->false_child = (swap ? a : b) - first;
    grow(f, first, a, tree, style, depth + 1, max_depth, true);
    grow(f, first, b, tree, style, depth + 1, max_depth, false);
}

static void forest_alloc(forest *f, int32_t n_trees)
{
    memset(f, 0, sizeof *f);
    f->trees = calloc((size_t)n_trees + 1, sizeof *f->trees);
    f->nodes = calloc(MAX_NODES, sizeof *f->nodes);
    f->weights = calloc(MAX_WEIGHTS, sizeof *f->weights);
    f->words = calloc(MAX_WORDS, sizeof *f->words);
    assert_true(f->trees && f->nodes && f->weights && f->words);
}

static void forest_free(forest *f)
{
    free(f->trees);
    free(f->nodes);
    free(f->weights);
    free(f->words);
}

/* A random ensemble of n_trees trees (styles picked per tree among `styles`, a bit mask). */
static void forest_random(forest *f, int32_t n_trees, unsigned styles, int max_depth)
{
    forest_alloc(f, n_trees);
    tree_raw_ensemble *raw = &f->raw;
    /* few features (each split on many trees' paths), or more than one or two vector registers hold */
    static const int32_t widest[] = {12, 12, 24, 40, 70};
    raw->n_features = (int32_t)random_int(1, widest[random_int(0, 4)]);
    raw->n_targets = (int32_t)random_int(1, 4);
    raw->n_trees = n_trees;
    raw->trees = f->trees;
    raw->aggregate = (tree_aggregate)random_int(TREE_AGG_SUM, TREE_AGG_MAX);
    raw->sum_in_float32 = random_int(0, 2) == 0;
    raw->zero_tiny_inputs = random_int(0, 2) == 0;
    raw->average_divisor = random_int(0, 2) == 0 ? 2.5 : 0;
    for (int32_t k = 0; k < raw->n_targets; k++) f->base[k] = random_int(0, 1) ? random_uniform(-1, 1) : 0.0;
    raw->base_values = random_int(0, 3) ? f->base : NULL;
    f->single_target = random_int(0, 3) != 0;
    for (int32_t t = 0; t < n_trees; t++) {
        tree_style style;
        do style = (tree_style)random_int(0, STYLE_COUNT - 1);
        while (!(styles & (1u << style)));
        int32_t first = new_node(f);
        int depth = style == STYLE_CHAIN ? (int)random_int(TREE_IMPLICIT_MAX_DEPTH, 16) : (int)random_int(0, max_depth);
        grow(f, first, first, t, style, 0, depth, false);
        f->trees[t] = (tree_raw_tree){f->nodes + first, f->n_nodes - first, 0};
    }
}

static float *random_rows(const forest *f, int64_t rows, int64_t stride)
{
    float *x = malloc((size_t)(rows * stride + 1) * sizeof *x);
    assert_non_null(x);
    for (int64_t i = 0; i < rows * stride; i++) x[i] = random_input(f);
    return x;
}

/* Every available variant, on `runner`, equal bit for bit to the reference on these rows. */
static void expect_reference(const tree_ensemble *e, const float *x, int64_t rows, int64_t stride,
                             const parallel_runner *runner, const char *what)
{
    size_t bytes = (size_t)(rows * e->n_targets + 1) * sizeof(double);
    double *want = malloc(bytes), *got = malloc(bytes);
    assert_true(want && got);
    tree_ensemble_predict_reference(e, x, rows, stride, want);
    for (int v = TREE_VARIANT_AUTO; v < TREE_VARIANT_COUNT; v++) {
        if (!tree_variant_available((tree_variant)v)) continue;
        memset(got, 0xa5, bytes);
        tree_ensemble_predict_with_variant((tree_variant)v, e, x, rows, stride, got, runner);
        for (int64_t i = 0; i < rows * e->n_targets; i++)
            if (memcmp(&got[i], &want[i], sizeof got[i]) != 0)
                fail_msg("%s, %s, %d thread(s), %lld rows: score %lld (row %lld) is %.17g, the reference %.17g", what,
                         tree_variant_name((tree_variant)v), parallel_threads(runner), (long long)rows, (long long)i,
                         (long long)(i / e->n_targets), got[i], want[i]);
    }
    free(want);
    free(got);
}

/* Around the one-row threshold, the vector widths and the block size. */
static const int64_t row_counts[] = {0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129,
                                     200, 257};

static void check_forest(forest *f, const parallel_runner *pool, const char *what, int counts[3])
{
    region mem;
    region_init(&mem);
    tree_ensemble e;
    assert_int_equal(tree_ensemble_build(&f->raw, &mem, &e), KILN_OK);
    assert_non_null(e.fast);
    for (int32_t t = 0; counts && t < e.n_trees; t++) counts[e.fast->trees[t].layout]++;
    int64_t stride = f->raw.n_features + random_int(0, 2);
    float *x = random_rows(f, 257, stride);
    for (size_t i = 0; i < sizeof row_counts / sizeof row_counts[0]; i++) {
        expect_reference(&e, x, row_counts[i], stride, NULL, what);
        if (pool && (row_counts[i] % 2 == 1 || row_counts[i] == 200))
            expect_reference(&e, x, row_counts[i], stride, pool, what);
    }
    free(x);
    region_free(&mem);
}

static void test_random_ensembles(void **state)
{
    (void)state;
    thread_pool *pool;
    assert_int_equal(pool_create(3, &pool), KILN_OK);
    parallel_runner runner = pool_runner(pool);
    int counts[3] = {0};
    random_seed(4);
    for (int seed = 0; seed < 160; seed++) {
        forest f;
        unsigned styles = seed % 5 == 4 ? (1u << STYLE_COUNT) - 1 : 1u << (seed % 5 % STYLE_COUNT);
        int max_depth = seed % 3 == 0 ? 11 : 8;
        forest_random(&f, (int32_t)random_int(1, max_depth > 8 ? 8 : 40), styles, max_depth);
        char what[64];
        snprintf(what, sizeof what, "ensemble %d (styles %#x)", seed, styles);
        check_forest(&f, &runner, what, counts);
        forest_free(&f);
    }
    /* the random ensembles did exercise every layout */
    assert_true(counts[TREE_LAYOUT_IMPLICIT] > 100);
    assert_true(counts[TREE_LAYOUT_EXPLICIT] > 100);
    assert_true(counts[TREE_LAYOUT_GENERAL] > 100);
    pool_free(pool);
}

/* More trees than one chunk of the one-row walk (TREE_CHUNK), with a partial last chunk. */
static void test_many_trees(void **state)
{
    (void)state;
    thread_pool *pool;
    assert_int_equal(pool_create(3, &pool), KILN_OK);
    parallel_runner runner = pool_runner(pool);
    random_seed(11);
    for (int round = 0; round < 3; round++) {
        forest f;
        unsigned styles = round == 2 ? (1u << STYLE_COUNT) - 1 : 1u << STYLE_BALANCED;
        forest_random(&f, 2 * TREE_CHUNK + 37, styles, 4);
        check_forest(&f, &runner, "many trees", NULL);
        forest_free(&f);
    }
    pool_free(pool);
}

/* No trees at all, and trees that are a single leaf: scores are the base values (or the aggregate's empty
 * value). */
static void test_degenerate_ensembles(void **state)
{
    (void)state;
    random_seed(12);
    for (int32_t n_trees = 0; n_trees < 3; n_trees++) {
        forest f;
        forest_random(&f, n_trees, 1u << STYLE_BALANCED, 0);
        check_forest(&f, NULL, "single leaves", NULL);
        forest_free(&f);
    }
}

/* Implicit trees of every depth the layout allows, with one row of every kind per lane. */
static void test_implicit_depths(void **state)
{
    (void)state;
    random_seed(13);
    for (int depth = 0; depth <= TREE_IMPLICIT_MAX_DEPTH; depth++) {
        forest f;
        forest_alloc(&f, 3);
        f.raw = (tree_raw_ensemble){.n_features = 5, .n_targets = 1, .trees = f.trees, .n_trees = 3};
        f.single_target = true;
        for (int32_t t = 0; t < 3; t++) {
            int32_t first = new_node(&f);
            grow(&f, first, first, t, STYLE_BALANCED, 0, depth, false);
            f.trees[t] = (tree_raw_tree){f.nodes + first, f.n_nodes - first, 0};
        }
        check_forest(&f, NULL, "implicit depths", NULL);
        forest_free(&f);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_ensembles),
        cmocka_unit_test(test_many_trees),
        cmocka_unit_test(test_degenerate_ensembles),
        cmocka_unit_test(test_implicit_depths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
