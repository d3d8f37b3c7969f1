/*
 * test_ml_ops.c — the ONNX-ML operators (ops/ml_*.c) on what the fixture comparisons with sklearn and
 * onnxruntime (tests/ml/onnxml) cannot show: every attribute a hostile or careless file can get wrong must be
 * refused at load with a message naming it (mismatched list lengths, missing or repeated nodes, cycles,
 * features beyond the input, unknown modes and codes, ambiguous string variants), bad data at run time must fail
 * cleanly, and the specification's semantics where onnxruntime departs from it (exact BRANCH_MEMBER tests on
 * non-integer members) hold. Plus the post_transform formulas and the small cases: empty batches, [F] inputs.
 *
 * The models are built in memory; testlib writes ai.onnx nodes, so tr_ml_node() adds the ai.onnx.ml domain and
 * opset import itself.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "kernels/tree_ensemble.h"
#include "ops/ml_common.h"
#include "testlib.h"

/* ---- building ONNX-ML models ------------------------------------------------------------------------- */

/* Loads a one-node model on input x of `dtype` [rows, cols] (negative: symbolic) and returns the status. */
static kiln_status load_ml(int ml_opset, const char *op, int n_outputs, const pbw *attrs, kiln_dtype dtype,
                           int64_t rows, int64_t cols)
{
    test_run r;
    tr_init(&r, 17);
    tr_input(&r, "x", dtype, 2, (int64_t[]){rows, cols}, NULL);
    tr_ml_node(&r, ml_opset, op, LIST("x"), n_outputs, attrs);
    kiln_status st = tr_load(&r);
    tr_free(&r);
    return st;
}

/* ---- a small forest, mutated by the tests ----------------------------------------------------------- */

#define MAX_NODES (TREE_MAX_DEPTH + 16) /* room for a chain one level deeper than the engine allows */

/* Tree 0: x0 <= 0.5 (NaN goes true) ? (x1 < 2 ? 10 : 20) : 30. */
typedef struct forest_spec {
    int n_nodes, n_modes;
    int64_t tree[MAX_NODES], node[MAX_NODES], feature[MAX_NODES], true_id[MAX_NODES], false_id[MAX_NODES],
        missing[MAX_NODES];
    const char *mode[MAX_NODES];
    float value[MAX_NODES];
    int n_weights, n_weight_ids; /* n_weight_ids: how many *_ids to write (0: n_weights) */
    int64_t w_tree[MAX_NODES], w_node[MAX_NODES], w_target[MAX_NODES];
    float weight[MAX_NODES];
} forest_spec;

static void set_node(forest_spec *s, int i, int64_t node, const char *mode, int64_t feature, float value,
                     int64_t true_id, int64_t false_id, int64_t missing)
{
    s->tree[i] = 0, s->node[i] = node, s->mode[i] = mode, s->feature[i] = feature, s->value[i] = value;
    s->true_id[i] = true_id, s->false_id[i] = false_id, s->missing[i] = missing;
}

static void add_weight(forest_spec *s, int64_t node, int64_t target, float weight)
{
    int k = s->n_weights++;
    s->w_tree[k] = 0, s->w_node[k] = node, s->w_target[k] = target, s->weight[k] = weight;
}

static forest_spec base_forest(void)
{
    forest_spec s = {.n_nodes = 5, .n_modes = 5};
    set_node(&s, 0, 0, "BRANCH_LEQ", 0, 0.5f, 1, 2, 1);
    set_node(&s, 1, 1, "BRANCH_LT", 1, 2.0f, 3, 4, 0);
    set_node(&s, 2, 2, "LEAF", 0, 0, 0, 0, 0);
    set_node(&s, 3, 3, "LEAF", 0, 0, 0, 0, 0);
    set_node(&s, 4, 4, "LEAF", 0, 0, 0, 0, 0);
    add_weight(&s, 3, 0, 10);
    add_weight(&s, 4, 0, 20);
    add_weight(&s, 2, 0, 30);
    return s;
}

/* The forest's attributes; `prefix` is "target" or "class". */
static void forest_attrs(const forest_spec *s, const char *prefix, pbw *a)
{
    char name[4][32];
    tm_attr_ints(a, "nodes_treeids", s->tree, s->n_nodes);
    tm_attr_ints(a, "nodes_nodeids", s->node, s->n_nodes);
    tm_attr_ints(a, "nodes_featureids", s->feature, s->n_nodes);
    tm_attr_ints(a, "nodes_truenodeids", s->true_id, s->n_nodes);
    tm_attr_ints(a, "nodes_falsenodeids", s->false_id, s->n_nodes);
    tm_attr_ints(a, "nodes_missing_value_tracks_true", s->missing, s->n_nodes);
    tm_attr_floats(a, "nodes_values", s->value, s->n_nodes);
    tm_attr_strings(a, "nodes_modes", s->mode, s->n_modes);
    snprintf(name[0], sizeof name[0], "%s_treeids", prefix);
    snprintf(name[1], sizeof name[1], "%s_nodeids", prefix);
    snprintf(name[2], sizeof name[2], "%s_ids", prefix);
    snprintf(name[3], sizeof name[3], "%s_weights", prefix);
    tm_attr_ints(a, name[0], s->w_tree, s->n_weights);
    tm_attr_ints(a, name[1], s->w_node, s->n_weights);
    tm_attr_ints(a, name[2], s->w_target, s->n_weight_ids ? s->n_weight_ids : s->n_weights);
    tm_attr_floats(a, name[3], s->weight, s->n_weights);
}

/* Loads the forest as a TreeEnsembleRegressor with one target on [N, 2] inputs. */
static kiln_status load_regressor(const forest_spec *s, const pbw *more)
{
    pbw a = {0};
    forest_attrs(s, "target", &a);
    tm_attr_int(&a, "n_targets", 1);
    if (more) pbw_append(&a, more);
    kiln_status st = load_ml(3, "TreeEnsembleRegressor", 1, &a, KILN_FLOAT32, -1, 2);
    pbw_free(&a);
    return st;
}

static void test_regressor_follows_every_branch(void **state)
{
    (void)state;
    forest_spec s = base_forest();
    pbw a = {0};
    forest_attrs(&s, "target", &a);
    tm_attr_int(&a, "n_targets", 1);
    const float x[] = {0, 1, 0.5f, 2, 0.6f, 0, NAN, 5, 1, NAN, 0, NAN, 0.5f, 1.9999999f};
    test_run r;
    tr_init(&r, 17);
    tr_input(&r, "x", KILN_FLOAT32, 2, (int64_t[]){7, 2}, x);
    tr_ml_node(&r, 3, "TreeEnsembleRegressor", LIST("x"), 1, &a);
    assert_int_equal(tr_run(&r, 1), KILN_OK);
    assert_shape(&r.out[0], 2, (int64_t[]){7, 1});
    const float want[] = {10, 20, 30, 20, 30, 20, 10};
    assert_memory_equal(r.out[0].data, want, sizeof want);
    tr_free(&r);
    pbw_free(&a);
}

/* An empty batch gives an empty output; a [F] input is one row. */
static void test_regressor_empty_batch_and_one_row(void **state)
{
    (void)state;
    forest_spec s = base_forest();
    pbw a = {0};
    forest_attrs(&s, "target", &a);
    tm_attr_int(&a, "n_targets", 1);
    for (int rank = 1; rank <= 2; rank++) {
        const float x[] = {0.6f, 0};
        test_run r;
        tr_init(&r, 17);
        tr_input(&r, "x", KILN_FLOAT32, rank, rank == 1 ? (int64_t[]){2} : (int64_t[]){0, 2}, x);
        tr_ml_node(&r, 3, "TreeEnsembleRegressor", LIST("x"), 1, &a);
        assert_int_equal(tr_run(&r, 2), KILN_OK);
        assert_shape(&r.out[0], 2, rank == 1 ? (int64_t[]){1, 1} : (int64_t[]){0, 1});
        if (rank == 1) assert_true(((const float *)r.out[0].data)[0] == 30);
        tr_free(&r);
    }
    pbw_free(&a);
}

/* ---- errors at load ------------------------------------------------------------------------------------ */

static void test_mismatched_lengths_are_refused(void **state)
{
    (void)state;
    forest_spec s = base_forest();
    s.n_modes = 4;
    assert_refused(load_regressor(&s, NULL), KILN_ERR_MALFORMED, "nodes_modes");
    s = base_forest();
    s.n_weight_ids = 2;
    assert_refused(load_regressor(&s, NULL), KILN_ERR_MALFORMED, "'target_ids' and 'target_nodeids'");
}

static void test_missing_and_repeated_nodes_are_refused(void **state)
{
    (void)state;
    forest_spec s = base_forest();
    s.true_id[1] = 7;
    assert_refused(load_regressor(&s, NULL), KILN_ERR_MALFORMED, "true child 7 does not exist");
    s = base_forest();
    s.false_id[0] = -1;
    assert_refused(load_regressor(&s, NULL), KILN_ERR_MALFORMED, "false child -1 does not exist");
    s = base_forest();
    s.node[4] = 3;
    assert_refused(load_regressor(&s, NULL), KILN_ERR_MALFORMED, "listed twice");
    s = base_forest();
    s.w_node[1] = 9;
    assert_refused(load_regressor(&s, NULL), KILN_ERR_MALFORMED, "does not exist");
    s = base_forest();
    s.tree[1] = 1; /* tree 0, tree 1, tree 0 again */
    assert_refused(load_regressor(&s, NULL), KILN_ERR_MALFORMED, "listed together");
}

static void test_cycles_are_refused(void **state)
{
    (void)state;
    forest_spec s = base_forest();
    s.true_id[1] = 0; /* node 1's true branch leads back to the root */
    assert_refused(load_regressor(&s, NULL), KILN_ERR_MALFORMED, "cycle");
    s = base_forest();
    s.false_id[1] = 1; /* a node that is its own child */
    assert_refused(load_regressor(&s, NULL), KILN_ERR_MALFORMED, "cycle");
    /* an equality chain whose false branches loop (merged into one categorical split, still a cycle) */
    s = base_forest();
    set_node(&s, 0, 0, "BRANCH_EQ", 0, 1, 2, 1, 0);
    set_node(&s, 1, 1, "BRANCH_EQ", 0, 2, 2, 0, 0);
    assert_refused(load_regressor(&s, NULL), KILN_ERR_MALFORMED, "cycle");
}

static void test_unknown_modes_and_codes_are_refused(void **state)
{
    (void)state;
    forest_spec s = base_forest();
    s.mode[1] = "BRANCH_SOMETIMES";
    assert_refused(load_regressor(&s, NULL), KILN_ERR_MALFORMED, "BRANCH_SOMETIMES");
    s = base_forest();
    pbw more = {0};
    tm_attr_string(&more, "aggregate_function", "MEDIAN");
    assert_refused(load_regressor(&s, &more), KILN_ERR_MALFORMED, "MEDIAN");
    pbw_free(&more);
    tm_attr_string(&more, "post_transform", "EXP");
    assert_refused(load_regressor(&s, &more), KILN_ERR_MALFORMED, "EXP");
    pbw_free(&more);
}

static void test_features_beyond_the_input_are_refused(void **state)
{
    (void)state;
    forest_spec s = base_forest();
    s.feature[1] = 5;
    assert_refused(load_regressor(&s, NULL), KILN_ERR_MALFORMED, "beyond the input's 2 columns");
    s.feature[1] = -3;
    assert_refused(load_regressor(&s, NULL), KILN_ERR_MALFORMED, "nodes_featureids[1] is -3");
    /* with an undeclared width the check happens when the input arrives */
    s.feature[1] = 5;
    pbw a = {0};
    forest_attrs(&s, "target", &a);
    tm_attr_int(&a, "n_targets", 1);
    const float x[] = {0, 0, 0, 0};
    test_run r;
    tr_init(&r, 17);
    tr_input(&r, "x", KILN_FLOAT32, 2, (int64_t[]){-1, -1}, x);
    r.inputs[0].dims[0] = r.inputs[0].dims[1] = 2;
    tr_ml_node(&r, 3, "TreeEnsembleRegressor", LIST("x"), 1, &a);
    assert_refused(tr_run(&r, 1), KILN_ERR_INVALID_ARGUMENT, "feature 5 but the input has 2 columns");
    tr_free(&r);
    pbw_free(&a);
}

static void test_targets_and_base_values_are_checked(void **state)
{
    (void)state;
    forest_spec s = base_forest();
    s.w_target[2] = 1;
    assert_refused(load_regressor(&s, NULL), KILN_ERR_MALFORMED, "target_ids[2] is 1, the model has 1 targets");
    s = base_forest();
    pbw more = {0};
    tm_attr_floats(&more, "base_values", (float[]){1, 2}, 2);
    assert_refused(load_regressor(&s, &more), KILN_ERR_MALFORMED, "base_values has 2 values");
    pbw_free(&more);
    pbw a = {0};
    forest_attrs(&s, "target", &a);
    tm_attr_int(&a, "n_targets", 0);
    assert_refused(load_ml(3, "TreeEnsembleRegressor", 1, &a, KILN_FLOAT32, -1, 2), KILN_ERR_MALFORMED, "n_targets");
    pbw_free(&a);
}

static void test_classifier_refusals(void **state)
{
    (void)state;
    forest_spec s = base_forest();
    pbw a = {0};
    forest_attrs(&s, "class", &a);
    tm_attr_strings(&a, "classlabels_strings", (const char *const[]){"no", "yes"}, 2);
    tm_attr_ints(&a, "classlabels_int64s", (int64_t[]){4, 9}, 2);
    assert_refused(load_ml(3, "TreeEnsembleClassifier", 2, &a, KILN_FLOAT32, -1, 2), KILN_ERR_MALFORMED,
                   "both given");
    pbw_free(&a);
    forest_attrs(&s, "class", &a);
    tm_attr_ints(&a, "classlabels_int64s", (int64_t[]){4}, 1);
    assert_refused(load_ml(3, "TreeEnsembleClassifier", 2, &a, KILN_FLOAT32, -1, 2), KILN_ERR_MALFORMED,
                   "at least 2");
    pbw_free(&a);
    forest_attrs(&s, "class", &a);
    tm_attr_ints(&a, "classlabels_int64s", (int64_t[]){4, 9}, 2);
    assert_refused(load_ml(3, "TreeEnsembleClassifier", 2, &a, KILN_FLOAT64, -1, 2), KILN_ERR_UNSUPPORTED,
                   "double inputs");
    assert_int_equal(load_ml(3, "TreeEnsembleClassifier", 2, &a, KILN_INT64, -1, 2), KILN_OK);
    pbw_free(&a);
}

/* A chain deeper than the engine's 64 levels, and shared subtrees whose copies would explode. */
static void test_depth_and_copy_limits(void **state)
{
    (void)state;
    enum { CHAIN = TREE_MAX_DEPTH + 8 }; /* splits in a row, each with the final leaf on its true side */
    static forest_spec s; /* too big for some thread stacks */
    s = (forest_spec){.n_nodes = CHAIN + 1, .n_modes = CHAIN + 1};
    for (int i = 0; i < CHAIN; i++) set_node(&s, i, i, "BRANCH_LEQ", 0, (float)i, CHAIN, i + 1, 0);
    set_node(&s, CHAIN, CHAIN, "LEAF", 0, 0, 0, 0, 0);
    add_weight(&s, CHAIN, 0, 1);
    char words[64];
    snprintf(words, sizeof words, "deeper than %d", TREE_MAX_DEPTH);
    assert_refused(load_regressor(&s, NULL), KILN_ERR_UNSUPPORTED, words);
    /* 40 levels whose two branches both lead to the next node: 2^40 paths from 41 nodes */
    s = (forest_spec){.n_nodes = 41, .n_modes = 41};
    for (int i = 0; i < 40; i++) set_node(&s, i, i, "BRANCH_LEQ", 0, (float)i, i + 1, i + 1, 0);
    set_node(&s, 40, 40, "LEAF", 0, 0, 0, 0, 0);
    add_weight(&s, 40, 0, 1);
    assert_refused(load_regressor(&s, NULL), KILN_ERR_UNSUPPORTED, "copying its shared subtrees");
}

/* ---- TreeEnsemble (opset 5) -------------------------------------------------------------------------- */

/* root: x0 in members (NaN true when missing_true) ? leaf 0 (1.0) : leaf 1 (2.0) */
typedef struct v5_spec {
    int64_t feature, true_id, false_id, true_leaf, false_leaf, missing, root, mode;
    float members[8];
    int n_members;
    int64_t aggregate;
} v5_spec;

static v5_spec base_v5(void)
{
    return (v5_spec){.true_id = 0, .false_id = 1, .true_leaf = 1, .false_leaf = 1, .mode = 6,
                     .members = {1.5f, -2.5f, 3.0f, NAN}, .n_members = 4, .aggregate = 1};
}

static void v5_attrs(const v5_spec *s, pbw *a)
{
    tm_attr_ints(a, "nodes_featureids", &s->feature, 1);
    tm_attr_tensor(a, "nodes_splits", KILN_FLOAT32, 1, (int64_t[]){1}, (float[]){0});
    tm_attr_tensor(a, "nodes_modes", KILN_UINT8, 1, (int64_t[]){1}, (uint8_t[]){(uint8_t)s->mode});
    tm_attr_ints(a, "nodes_truenodeids", &s->true_id, 1);
    tm_attr_ints(a, "nodes_falsenodeids", &s->false_id, 1);
    tm_attr_ints(a, "nodes_trueleafs", &s->true_leaf, 1);
    tm_attr_ints(a, "nodes_falseleafs", &s->false_leaf, 1);
    tm_attr_ints(a, "nodes_missing_value_tracks_true", &s->missing, 1);
    tm_attr_tensor(a, "membership_values", KILN_FLOAT32, 1, (int64_t[]){s->n_members}, s->members);
    tm_attr_ints(a, "leaf_targetids", (int64_t[]){0, 0}, 2);
    tm_attr_tensor(a, "leaf_weights", KILN_FLOAT32, 1, (int64_t[]){2}, (float[]){1, 2});
    tm_attr_ints(a, "tree_roots", &s->root, 1);
    tm_attr_int(a, "n_targets", 1);
    tm_attr_int(a, "aggregate_function", s->aggregate);
}

static kiln_status load_v5(const v5_spec *s)
{
    pbw a = {0};
    v5_attrs(s, &a);
    kiln_status st = load_ml(5, "TreeEnsemble", 1, &a, KILN_FLOAT32, -1, 1);
    pbw_free(&a);
    return st;
}

/* The specification's BRANCH_MEMBER is x in the set, exactly (onnxruntime truncates x for large sets, so the
 * fixtures cannot show this): 1.5 is a member, 1.0 and 1.49 are not. */
static void test_v5_member_is_exact(void **state)
{
    (void)state;
    for (int missing = 0; missing <= 1; missing++) {
        v5_spec s = base_v5();
        s.missing = missing;
        pbw a = {0};
        v5_attrs(&s, &a);
        const float x[] = {1.5f, 1.0f, 1.49f, -2.5f, -2.0f, 3.0f, 3.0000002f, NAN};
        test_run r;
        tr_init(&r, 17);
        tr_input(&r, "x", KILN_FLOAT32, 2, (int64_t[]){8, 1}, x);
        tr_ml_node(&r, 5, "TreeEnsemble", LIST("x"), 1, &a);
        assert_int_equal(tr_run(&r, 1), KILN_OK);
        const float want[] = {1, 2, 2, 1, 2, 1, 2, missing ? 1.0f : 2.0f};
        assert_memory_equal(r.out[0].data, want, sizeof want);
        tr_free(&r);
        pbw_free(&a);
    }
}

static void test_v5_errors(void **state)
{
    (void)state;
    v5_spec s = base_v5();
    s.false_id = 2;
    assert_refused(load_v5(&s), KILN_ERR_MALFORMED, "false child 2 is not one of the 2 leaves");
    s = base_v5();
    s.mode = 9;
    assert_refused(load_v5(&s), KILN_ERR_MALFORMED, "nodes_modes[0] is 9");
    s = base_v5();
    s.n_members = 3; /* no NaN to end the set */
    assert_refused(load_v5(&s), KILN_ERR_MALFORMED, "membership_values ends");
    s = base_v5();
    s.root = 1;
    assert_refused(load_v5(&s), KILN_ERR_MALFORMED, "tree_roots[0] is 1");
    s = base_v5();
    s.true_leaf = 0; /* the root's true child is the root itself */
    assert_refused(load_v5(&s), KILN_ERR_MALFORMED, "cycle");
    s = base_v5();
    s.aggregate = 4;
    assert_refused(load_v5(&s), KILN_ERR_MALFORMED, "aggregate_function is 4");
}

/* ---- linear models, SVMs, preprocessing --------------------------------------------------------------- */

static void test_linear_and_svm_refusals(void **state)
{
    (void)state;
    pbw a = {0};
    tm_attr_floats(&a, "coefficients", (float[]){1, 2}, 2);
    tm_attr_floats(&a, "intercepts", (float[]){0}, 1);
    tm_attr_ints(&a, "classlabels_ints", (int64_t[]){1, 2, 3}, 3);
    assert_refused(load_ml(1, "LinearClassifier", 2, &a, KILN_FLOAT32, -1, 2), KILN_ERR_MALFORMED, "exactly 2 class");
    pbw_free(&a);
    /* coefficients that do not fit the input's width: at load when the width is declared */
    tm_attr_floats(&a, "coefficients", (float[]){1, 2, 3}, 3);
    tm_attr_floats(&a, "intercepts", (float[]){0}, 1);
    assert_refused(load_ml(1, "LinearRegressor", 1, &a, KILN_FLOAT32, 4, 2), TEST_ANY_ERROR, "3 coefficients");
    pbw_free(&a);
    tm_attr_string(&a, "kernel_type", "RBF");
    tm_attr_floats(&a, "kernel_params", (float[]){0.1f, 0}, 2);
    tm_attr_floats(&a, "coefficients", (float[]){1, -1}, 2);
    tm_attr_floats(&a, "rho", (float[]){0}, 1);
    tm_attr_floats(&a, "support_vectors", (float[]){1, 2, 3, 4}, 4);
    tm_attr_ints(&a, "vectors_per_class", (int64_t[]){1, 1}, 2);
    tm_attr_ints(&a, "classlabels_ints", (int64_t[]){0, 1}, 2);
    assert_refused(load_ml(1, "SVMClassifier", 2, &a, KILN_FLOAT32, -1, 2), KILN_ERR_MALFORMED, "kernel_params");
    pbw_free(&a);
    tm_attr_floats(&a, "coefficients", (float[]){1, -1}, 2);
    tm_attr_floats(&a, "rho", (float[]){0}, 1);
    tm_attr_floats(&a, "support_vectors", (float[]){1, 2, 3}, 3);
    tm_attr_ints(&a, "vectors_per_class", (int64_t[]){1, 1}, 2);
    tm_attr_ints(&a, "classlabels_ints", (int64_t[]){0, 1}, 2);
    assert_refused(load_ml(1, "SVMClassifier", 2, &a, KILN_FLOAT32, -1, 2), KILN_ERR_MALFORMED, "do not divide");
    pbw_free(&a);
}

static void test_preprocessing_refusals(void **state)
{
    (void)state;
    pbw a = {0};
    tm_attr_floats(&a, "imputed_value_floats", (float[]){1}, 1);
    tm_attr_ints(&a, "imputed_value_int64s", (int64_t[]){1}, 1);
    assert_refused(load_ml(1, "Imputer", 1, &a, KILN_FLOAT32, -1, 2), KILN_ERR_MALFORMED, "exactly one");
    pbw_free(&a);
    tm_attr_ints(&a, "keys_int64s", (int64_t[]){1, 2, 1}, 3);
    tm_attr_floats(&a, "values_floats", (float[]){1, 2, 3}, 3);
    assert_refused(load_ml(2, "LabelEncoder", 1, &a, KILN_INT64, -1, 2), KILN_ERR_MALFORMED, "twice");
    assert_refused(load_ml(1, "LabelEncoder", 1, &a, KILN_FLOAT32, -1, 2), KILN_ERR_UNSUPPORTED, "float32");
    pbw_free(&a);
    tm_attr_ints(&a, "keys_int64s", (int64_t[]){1, 2}, 2);
    tm_attr_strings(&a, "keys_strings", (const char *const[]){"a", "b"}, 2);
    tm_attr_strings(&a, "values_strings", (const char *const[]){"a", "b"}, 2);
    assert_refused(load_ml(2, "LabelEncoder", 1, &a, KILN_INT64, -1, 2), KILN_ERR_MALFORMED, "exactly one");
    pbw_free(&a);
    tm_attr_floats(&a, "offset", (float[]){1}, 1);
    assert_refused(load_ml(1, "Scaler", 1, &a, KILN_FLOAT32, -1, 2), KILN_ERR_MALFORMED, "'scale' is required");
    pbw_free(&a);
    tm_attr_floats(&a, "offset", (float[]){1, 2, 3}, 3);
    tm_attr_floats(&a, "scale", (float[]){1, 2, 3}, 3);
    assert_refused(load_ml(1, "Scaler", 1, &a, KILN_FLOAT32, 4, 2), TEST_ANY_ERROR, "3 values for 2 features");
    pbw_free(&a);
    tm_attr_strings(&a, "cats_strings", (const char *const[]){"a"}, 1);
    assert_refused(load_ml(1, "OneHotEncoder", 1, &a, KILN_INT64, -1, 2), KILN_ERR_UNSUPPORTED, "int64");
    tm_attr_ints(&a, "cats_int64s", (int64_t[]){1, 2}, 2);
    assert_refused(load_ml(1, "CategoryMapper", 1, &a, KILN_INT64, -1, 2), KILN_ERR_MALFORMED, "same length");
    pbw_free(&a);
    assert_refused(load_ml(1, "ZipMap", 1, NULL, KILN_FLOAT32, -1, 2), KILN_ERR_MALFORMED, "exactly one");
}

/* Runs a one-node model on x and returns the run's status. */
static kiln_status run_ml(int ml_opset, const char *op, const pbw *attrs, kiln_dtype dtype, const int64_t dims[2],
                          const void *x, const char *const *more, test_run *r)
{
    tr_init(r, 17);
    tr_input(r, "x", dtype, 2, dims, x);
    const char *inputs[4] = {"x"};
    for (int k = 0; more && more[k]; k++) inputs[k + 1] = more[k];
    tr_ml_node(r, ml_opset, op, inputs, 1, attrs);
    return tr_run(r, 1);
}

static void test_bad_data_fails_at_run_time(void **state)
{
    (void)state;
    test_run r;
    pbw a = {0};
    const float x[] = {0, 1, NAN, 3};
    tm_attr_float(&a, "threshold", 0.5f);
    assert_refused(run_ml(1, "Binarizer", &a, KILN_FLOAT32, (int64_t[]){2, 2}, x, NULL, &r), KILN_ERR_RUNTIME,
                   "value 2 is NaN");
    tr_free(&r);
    pbw_free(&a);
    tm_attr_ints(&a, "cats_int64s", (int64_t[]){1, 3}, 2);
    tm_attr_int(&a, "zeros", 0);
    assert_refused(run_ml(1, "OneHotEncoder", &a, KILN_INT64, (int64_t[]){1, 2}, (int64_t[]){1, 2}, NULL, &r),
                   KILN_ERR_RUNTIME, "value 1 is not a known category");
    tr_free(&r);
    pbw_free(&a);
    tr_init(&r, 17);
    tr_input(&r, "x", KILN_FLOAT32, 2, (int64_t[]){2, 2}, x);
    tr_input(&r, "i", KILN_INT64, 1, (int64_t[]){2}, (int64_t[]){1, 2});
    tr_ml_node(&r, 1, "ArrayFeatureExtractor", LIST("x", "i"), 1, NULL);
    assert_refused(tr_run(&r, 1), KILN_ERR_RUNTIME, "index 2 is out of range");
    tr_free(&r);
}

/* LabelEncoder opset 4: a NaN key maps NaN inputs; before opset 4 NaN matches nothing. */
static void test_label_encoder_nan_keys(void **state)
{
    (void)state;
    for (int opset = 2; opset <= 4; opset += 2) {
        test_run r;
        pbw a = {0};
        tm_attr_floats(&a, "keys_floats", (float[]){NAN, 0.0f, 2.5f}, 3);
        tm_attr_ints(&a, "values_int64s", (int64_t[]){7, 8, 9}, 3);
        const float x[] = {NAN, -0.0f, 2.5f, 1.0f};
        assert_int_equal(run_ml(opset, "LabelEncoder", &a, KILN_FLOAT32, (int64_t[]){2, 2}, x, NULL, &r), KILN_OK);
        const int64_t want[] = {opset == 4 ? 7 : -1, 8, 9, -1};
        assert_memory_equal(r.out[0].data, want, sizeof want);
        tr_free(&r);
        pbw_free(&a);
    }
}

/* ---- post_transform formulas -------------------------------------------------------------------------- */

static void test_transform_formulas(void **state)
{
    (void)state;
    assert_true(ml_logistic(0) == 0.5f);
    assert_true(fabsf(ml_logistic(2) + ml_logistic(-2) - 1) < 1e-7f);
    assert_true(ml_logistic(-200) >= 0 && ml_logistic(200) == 1); /* no overflow */
    assert_true(ml_probit(0.5f) == 0);
    assert_true(fabsf(ml_probit(0.8413447f) - 1) < 2e-3f); /* Winitzki's approximation, as onnxruntime's */
    assert_true(ml_probit(1) == INFINITY && ml_probit(0) == -INFINITY);
    float s[] = {1, 0, 2, -1e-8f};
    ml_transform_scores(ML_TRANSFORM_SOFTMAX_ZERO, s, 4);
    assert_true(s[1] == 0 && fabsf(s[3]) < 1e-8f && fabsf(s[0] + s[2] - 1) < 1e-6f);
    float b[2];
    ml_binary_scores(ML_TRANSFORM_NONE, ML_COMPLEMENT, 0.25f, b);
    assert_true(b[0] == 0.75f && b[1] == 0.25f);
    ml_binary_scores(ML_TRANSFORM_LOGISTIC, ML_NEGATED, 0, b);
    assert_true(b[0] == 0.5f && b[1] == 0.5f);
    ml_binary_scores(ML_TRANSFORM_PROBIT, ML_NEGATED, 0.5f, b);
    assert_true(b[0] == 0 && b[1] == 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_regressor_follows_every_branch),
        cmocka_unit_test(test_regressor_empty_batch_and_one_row),
        cmocka_unit_test(test_mismatched_lengths_are_refused),
        cmocka_unit_test(test_missing_and_repeated_nodes_are_refused),
        cmocka_unit_test(test_cycles_are_refused),
        cmocka_unit_test(test_unknown_modes_and_codes_are_refused),
        cmocka_unit_test(test_features_beyond_the_input_are_refused),
        cmocka_unit_test(test_targets_and_base_values_are_checked),
        cmocka_unit_test(test_classifier_refusals),
        cmocka_unit_test(test_depth_and_copy_limits),
        cmocka_unit_test(test_v5_member_is_exact),
        cmocka_unit_test(test_v5_errors),
        cmocka_unit_test(test_linear_and_svm_refusals),
        cmocka_unit_test(test_preprocessing_refusals),
        cmocka_unit_test(test_bad_data_fails_at_run_time),
        cmocka_unit_test(test_label_encoder_nan_keys),
        cmocka_unit_test(test_transform_formulas),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
