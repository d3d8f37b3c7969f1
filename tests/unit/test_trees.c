/*
 * test_trees.c — the tree engine's builder and reference traversal.
 *
 * The central claim of kernels/tree_build.c is that every library's split rule becomes one canonical float32
 * test without changing a single decision. This is checked directly: one-split trees for every comparison,
 * float and double thresholds (including infinities, NaN, subnormals and doubles between two floats), every
 * missing rule, evaluated on inputs at, just below and just above the threshold and on the special values,
 * against the rule written out plainly here. Then categorical splits, aggregation orders, and the structural
 * errors a hostile file can contain.
 */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "kernels/tree_ensemble.h"
#include "testlib.h"

/* The library's own decision for a numeric split, written out from its definition. */
static bool library_goes_true(const tree_raw_node *n, float x)
{
    if (isnan(x) || (n->zero_is_missing && x == 0.0f)) {
        switch (n->missing) {
        case TREE_MISSING_TRUE: return true;
        case TREE_MISSING_FALSE: return false;
        case TREE_MISSING_COMPARE: break; /* compare NaN itself */
        case TREE_MISSING_AS_ZERO: x = 0.0f; break;
        }
    }
    if (!n->threshold_is_double) { /* float32 comparison (XGBoost, ONNX-ML float thresholds) */
        float fx = x, ft = (float)n->threshold;
        switch (n->compare) {
        case TREE_CMP_LT: return fx < ft;
        case TREE_CMP_LE: return fx <= ft;
        case TREE_CMP_GT: return fx > ft;
        case TREE_CMP_GE: return fx >= ft;
        case TREE_CMP_EQ: return fx == ft;
        case TREE_CMP_NE: return fx != ft;
        }
    }
    double v = x, t = n->threshold; /* double comparison (LightGBM) */
    switch (n->compare) {
    case TREE_CMP_LT: return v < t;
    case TREE_CMP_LE: return v <= t;
    case TREE_CMP_GT: return v > t;
    case TREE_CMP_GE: return v >= t;
    case TREE_CMP_EQ: return v == t;
    case TREE_CMP_NE: return v != t;
    }
    return false;
}

/* A one-split tree: leaf values 1 (true branch) and 2 (false branch). */
static void one_split(tree_raw_node nodes[3], tree_leaf_weight weights[2], const tree_raw_node *split)
{
    weights[0] = (tree_leaf_weight){0, 1.0};
    weights[1] = (tree_leaf_weight){0, 2.0};
    nodes[0] = *split;
    nodes[0].true_child = 1;
    nodes[0].false_child = 2;
    nodes[1] = (tree_raw_node){.kind = TREE_RAW_LEAF, .weights = &weights[0], .n_weights = 1};
    nodes[2] = (tree_raw_node){.kind = TREE_RAW_LEAF, .weights = &weights[1], .n_weights = 1};
}

static kiln_status build_one(const tree_raw_node *split, region *mem, tree_ensemble *e)
{
    static tree_raw_node nodes[3];
    static tree_leaf_weight weights[2];
    one_split(nodes, weights, split);
    tree_raw_tree tree = {nodes, 3, 0};
    tree_raw_ensemble raw = {.n_features = 1, .n_targets = 1, .trees = &tree, .n_trees = 1};
    return tree_ensemble_build(&raw, mem, e);
}

static double predict_one(const tree_ensemble *e, float x)
{
    double score;
    tree_ensemble_predict_reference(e, &x, 1, 1, &score);
    return score;
}

static void every_comparison_keeps_every_decision(void **state)
{
    (void)state;
    const double thresholds[] = {0.0, -0.0, 1.0, -1.0, 0.1, 1e-40, -1e-40, 1e-45, FLT_MAX, -FLT_MAX, 1e300, -1e300,
                                 INFINITY, -INFINITY, NAN, 3.0000001, 0.30000000000000004, 16777217.0,
                                 (double)nextafterf(1.0f, 2.0f) - 1e-12};
    const float specials[] = {0.0f, -0.0f, 1.0f, -1.0f, INFINITY, -INFINITY, NAN, FLT_MAX, -FLT_MAX, 1e-45f, -1e-45f};
    int checked = 0;
    for (size_t ti = 0; ti < sizeof thresholds / sizeof thresholds[0]; ti++)
        for (int is_double = 0; is_double < 2; is_double++)
            for (int cmp = TREE_CMP_LT; cmp <= TREE_CMP_NE; cmp++)
                for (int missing = TREE_MISSING_TRUE; missing <= TREE_MISSING_AS_ZERO; missing++)
                    for (int zero_missing = 0; zero_missing < 2; zero_missing++) {
                        if (zero_missing && missing > TREE_MISSING_FALSE) continue;
                        tree_raw_node split = {.kind = TREE_RAW_NUMERIC, .compare = (tree_compare)cmp,
                                               .threshold = thresholds[ti], .threshold_is_double = is_double,
                                               .missing = (tree_missing)missing, .zero_is_missing = zero_missing};
                        region mem;
                        region_init(&mem);
                        tree_ensemble e;
                        assert_int_equal(build_one(&split, &mem, &e), KILN_OK);
                        /* inputs: the specials and the float32 neighbourhood of the threshold */
                        float inputs[32];
                        int n = 0;
                        for (size_t s = 0; s < sizeof specials / sizeof specials[0]; s++) inputs[n++] = specials[s];
                        float near = (float)thresholds[ti];
                        for (int k = 0; k < 3 && !isnan(near); k++) {
                            inputs[n++] = near;
                            inputs[n++] = nextafterf(near, INFINITY);
                            inputs[n++] = nextafterf(near, -INFINITY);
                            near = nextafterf(near, k % 2 ? INFINITY : -INFINITY);
                        }
                        for (int i = 0; i < n; i++) {
                            double want = library_goes_true(&split, inputs[i]) ? 1.0 : 2.0;
                            double got = predict_one(&e, inputs[i]);
                            if (got != want)
                                fail_msg("cmp %d threshold %.17g (%s) missing %d zero %d: x=%.9g went %s", cmp,
                                         thresholds[ti], is_double ? "double" : "float", missing, zero_missing,
                                         (double)inputs[i], got == 1.0 ? "true" : "false");
                            checked++;
                        }
                        region_free(&mem);
                    }
    assert_true(checked > 10000);
}

static void categorical_splits(void **state)
{
    (void)state;
    static const uint32_t bits[2] = {(1u << 0) | (1u << 3), 1u << 1}; /* categories 0, 3, 33 */
    for (int mode = 0; mode < 3; mode++) { /* truncating (LightGBM), exact (ONNX-ML), non-negative (XGBoost) */
        bool exact = mode == 1;
        tree_raw_node split = {.kind = TREE_RAW_CATEGORICAL, .category_bits = bits, .category_words = 2,
                               .category_exact = exact, .category_nonnegative = mode == 2,
                               .missing = TREE_MISSING_FALSE};
        region mem;
        region_init(&mem);
        tree_ensemble e;
        assert_int_equal(build_one(&split, &mem, &e), KILN_OK);
        const struct { float x; bool in_truncating, in_exact, in_nonnegative; } cases[] = {
            {0.0f, true, true, true},     {-0.5f, true, false, false},    {0.9f, true, false, true},
            {3.0f, true, true, true},     {3.7f, true, false, true},      {33.0f, true, true, true},
            {-0.0f, true, true, true},    {1.0f, false, false, false},    {-1.0f, false, false, false},
            {64.0f, false, false, false}, {NAN, false, false, false},     {INFINITY, false, false, false},
            {4e9f, false, false, false},  {-1e-30f, true, false, false},
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            bool in = mode == 0 ? cases[i].in_truncating : mode == 1 ? cases[i].in_exact : cases[i].in_nonnegative;
            if (predict_one(&e, cases[i].x) != (in ? 1.0 : 2.0))
                fail_msg("mode %d: category of %g should be %s the set", mode, (double)cases[i].x, in ? "in" : "out of");
        }
        region_free(&mem);
    }
}

static void tiny_inputs_count_as_zero_for_lightgbm(void **state)
{
    (void)state;
    /* (double)x <= 0 goes true; 1e-36 > 0 would go false, but LightGBM sees it as 0 */
    tree_raw_node split = {.kind = TREE_RAW_NUMERIC, .compare = TREE_CMP_LE, .threshold = 0.0,
                           .threshold_is_double = true, .missing = TREE_MISSING_FALSE};
    tree_raw_node nodes[3];
    tree_leaf_weight weights[2];
    one_split(nodes, weights, &split);
    tree_raw_tree tree = {nodes, 3, 0};
    for (int tiny = 0; tiny < 2; tiny++) {
        tree_raw_ensemble raw = {.n_features = 1, .n_targets = 1, .trees = &tree, .n_trees = 1, .zero_tiny_inputs = tiny};
        region mem;
        region_init(&mem);
        tree_ensemble e;
        assert_int_equal(tree_ensemble_build(&raw, &mem, &e), KILN_OK);
        assert_true(predict_one(&e, 1e-36f) == (tiny ? 1.0 : 2.0));
        assert_true(predict_one(&e, 1e-30f) == 2.0);
        region_free(&mem);
    }
}

/* Two-target ensemble: tree 0 gives target 0, tree 1 target 1, tree 2 both. */
static void aggregation_and_base_values(void **state)
{
    (void)state;
    tree_leaf_weight w0[1] = {{0, 0.1}}, w1[1] = {{1, 0.2}}, w2[2] = {{0, 0.3}, {1, 0.4}};
    tree_raw_node t0[1] = {{.kind = TREE_RAW_LEAF, .weights = w0, .n_weights = 1}};
    tree_raw_node t1[1] = {{.kind = TREE_RAW_LEAF, .weights = w1, .n_weights = 1}};
    tree_raw_node t2[1] = {{.kind = TREE_RAW_LEAF, .weights = w2, .n_weights = 2}};
    tree_raw_tree trees[3] = {{t0, 1, 0}, {t1, 1, 0}, {t2, 1, 0}};
    double base[2] = {10, 20};
    const struct { tree_aggregate agg; double divisor; double want0, want1; } cases[] = {
        {TREE_AGG_SUM, 0, 10.4, 20.6},
        {TREE_AGG_AVERAGE, 0, 10.2, 20.3},   /* per target: two trees each */
        {TREE_AGG_AVERAGE, 3, 10 + 0.4 / 3, 20 + 0.6 / 3}, /* over all three trees */
        {TREE_AGG_MIN, 0, 10.1, 20.2},
        {TREE_AGG_MAX, 0, 10.3, 20.4},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        tree_raw_ensemble raw = {.n_features = 1, .n_targets = 2, .trees = trees, .n_trees = 3,
                                 .aggregate = cases[c].agg, .base_values = base, .average_divisor = cases[c].divisor};
        region mem;
        region_init(&mem);
        tree_ensemble e;
        assert_int_equal(tree_ensemble_build(&raw, &mem, &e), KILN_OK);
        assert_false(e.single_target_trees); /* tree 2 feeds two targets */
        float x = 0;
        double scores[2];
        tree_ensemble_predict_reference(&e, &x, 1, 1, scores);
        assert_true(fabs(scores[0] - cases[c].want0) < 1e-12);
        assert_true(fabs(scores[1] - cases[c].want1) < 1e-12);
        region_free(&mem);
    }
}

static void float32_accumulation_follows_xgboost(void **state)
{
    (void)state;
    /* 1e8 + 1 + 1 ... in float32 from base 1e8: every +1 is lost; in double it is not */
    enum { TREES = 8 };
    tree_leaf_weight one = {0, 1.0};
    tree_raw_node leaf = {.kind = TREE_RAW_LEAF, .weights = &one, .n_weights = 1};
    tree_raw_tree trees[TREES];
    for (int t = 0; t < TREES; t++) trees[t] = (tree_raw_tree){&leaf, 1, 0};
    double base = 1e8;
    for (int f32 = 0; f32 < 2; f32++) {
        tree_raw_ensemble raw = {.n_features = 1, .n_targets = 1, .trees = trees, .n_trees = TREES,
                                 .base_values = &base, .sum_in_float32 = f32};
        region mem;
        region_init(&mem);
        tree_ensemble e;
        assert_int_equal(tree_ensemble_build(&raw, &mem, &e), KILN_OK);
        assert_true(e.single_target_trees);
        assert_true(predict_one(&e, 0) == (f32 ? 1e8 : 1e8 + TREES));
        region_free(&mem);
    }
}

static void refuses(const tree_raw_node *nodes, int32_t n, int32_t n_features, const char *words)
{
    tree_raw_tree tree = {nodes, n, 0};
    tree_raw_ensemble raw = {.n_features = n_features, .n_targets = 1, .trees = &tree, .n_trees = 1};
    region mem;
    region_init(&mem);
    tree_ensemble e;
    assert_refused(tree_ensemble_build(&raw, &mem, &e), TEST_ANY_ERROR, words);
    region_free(&mem);
}

static void hostile_structures_are_refused(void **state)
{
    (void)state;
    tree_leaf_weight w = {0, 1.0};
    tree_raw_node leaf = {.kind = TREE_RAW_LEAF, .weights = &w, .n_weights = 1};
    tree_raw_node split = {.kind = TREE_RAW_NUMERIC, .compare = TREE_CMP_LT, .threshold = 0.5, .true_child = 1,
                           .false_child = 2};
    tree_raw_node nodes[3] = {split, leaf, leaf};
    nodes[0].false_child = 7;
    refuses(nodes, 3, 1, "child 7 is not a node of this tree");
    nodes[0].false_child = 0; /* back to the root: a cycle */
    refuses(nodes, 3, 1, "reached twice");
    nodes[0].false_child = 1; /* both children the same node */
    refuses(nodes, 3, 1, "reached twice");
    nodes[0].false_child = 2;
    nodes[0].feature = 30;
    refuses(nodes, 3, 30, "feature 30 is beyond the input's 30 features");
    nodes[0].feature = -1;
    refuses(nodes, 3, 30, "feature -1");
    nodes[0].feature = 0;
    tree_leaf_weight bad = {5, 1.0};
    nodes[1].weights = &bad;
    refuses(nodes, 3, 1, "target 5");
    nodes[1].weights = &w;
    /* a chain of splits, each with a leaf on its true side, one level deeper than allowed */
    enum { SPLITS = TREE_MAX_DEPTH + 1, DEEP = 2 * SPLITS + 1 };
    tree_raw_node chain[DEEP];
    for (int i = 0; i < SPLITS; i++) {
        chain[2 * i] = split;
        chain[2 * i].true_child = 2 * i + 1;
        chain[2 * i].false_child = 2 * i + 2;
        chain[2 * i + 1] = leaf;
    }
    chain[DEEP - 1] = leaf;
    refuses(chain, DEEP, 1, "deeper than");
    tree_raw_tree tree = {nodes, 3, 5};
    tree_raw_ensemble raw = {.n_features = 1, .n_targets = 1, .trees = &tree, .n_trees = 1};
    region mem;
    region_init(&mem);
    tree_ensemble e;
    assert_refused(tree_ensemble_build(&raw, &mem, &e), KILN_ERR_MALFORMED, "root 5");
    raw.n_targets = 0;
    tree.root = 0;
    assert_refused(tree_ensemble_build(&raw, &mem, &e), KILN_ERR_MALFORMED, "targets");
    region_free(&mem);
}

/* Leaves are reported per tree, and leaf_node gives back the raw node each came from (node 1 is the true
 * branch of one_split's tree), also when the canonical layout swaps the branches (x > t). */
static void leaves_are_reported_per_tree(void **state)
{
    (void)state;
    for (int cmp = TREE_CMP_LT; cmp <= TREE_CMP_GT; cmp++) {
        tree_raw_node split = {.kind = TREE_RAW_NUMERIC, .compare = (tree_compare)cmp, .threshold = 0.5};
        region mem;
        region_init(&mem);
        tree_ensemble e;
        assert_int_equal(build_one(&split, &mem, &e), KILN_OK);
        assert_int_equal(e.n_nodes, 3);
        assert_int_equal(e.max_depth, 1);
        int32_t leaf;
        float x = 0.25f;
        tree_ensemble_leaves(&e, &x, &leaf);
        int32_t low_leaf = leaf;
        assert_int_equal(e.leaf_node[low_leaf], cmp == TREE_CMP_GT ? 2 : 1);
        x = 0.75f;
        tree_ensemble_leaves(&e, &x, &leaf);
        assert_int_not_equal(leaf, low_leaf);
        assert_int_equal(e.leaf_node[leaf], cmp == TREE_CMP_GT ? 1 : 2);
        region_free(&mem);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_comparison_keeps_every_decision),
        cmocka_unit_test(categorical_splits),
        cmocka_unit_test(tiny_inputs_count_as_zero_for_lightgbm),
        cmocka_unit_test(aggregation_and_base_values),
        cmocka_unit_test(float32_accumulation_follows_xgboost),
        cmocka_unit_test(hostile_structures_are_refused),
        cmocka_unit_test(leaves_are_reported_per_tree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
