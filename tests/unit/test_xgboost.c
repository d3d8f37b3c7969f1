/*
 * test_xgboost.c — the XGBoost model loader (formats/xgboost.c) on small models written here by hand.
 *
 * The fixtures in tests/ml/xgboost prove kiln equals libxgboost on trained models; these tests pin the rules
 * one at a time on trees small enough to reason about (split at the threshold and one float32 step below it,
 * the default direction of NaN, the categorical set rule, dart weights, base_score in its 1.x and 2.x forms,
 * float32 sums), and break the model in every way the loader must catch: every truncation, wrong types,
 * cycles, children and features out of range, inconsistent counts. A broken model is a clean error at load
 * naming what is wrong — never a crash.
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

#include "kiln.h"
#include "testlib.h"

/* binary:logistic on 2 features, one tree: feature 1 < 0.5 goes left (leaf -1), else right (leaf +1); NaN
 * goes left. base_score 0.5 is margin 0. */
static const char tiny_model[] =
    "{\"learner\":{\"attributes\":{},\"feature_names\":[],\"feature_types\":[],"
    "\"gradient_booster\":{\"model\":{\"gbtree_model_param\":{\"num_parallel_tree\":\"1\",\"num_trees\":\"1\","
    "\"size_leaf_vector\":\"0\"},\"tree_info\":[0],\"trees\":[{\"base_weights\":[0E0,0E0,0E0],"
    "\"categories\":[],\"categories_nodes\":[],\"categories_segments\":[],\"categories_sizes\":[],"
    "\"default_left\":[1,0,0],\"id\":0,\"left_children\":[1,-1,-1],\"loss_changes\":[0E0,0E0,0E0],"
    "\"parents\":[2147483647,0,0],\"right_children\":[2,-1,-1],\"split_conditions\":[5E-1,-1E0,1E0],"
    "\"split_indices\":[1,0,0],\"split_type\":[0,0,0],\"sum_hessian\":[1E0,1E0,1E0],"
    "\"tree_param\":{\"num_deleted\":\"0\",\"num_feature\":\"2\",\"num_nodes\":\"3\",\"size_leaf_vector\":\"0\"}}]},"
    "\"name\":\"gbtree\"},"
    "\"learner_model_param\":{\"base_score\":\"5E-1\",\"boost_from_average\":\"1\",\"num_class\":\"0\","
    "\"num_feature\":\"2\",\"num_target\":\"1\"},"
    "\"objective\":{\"name\":\"binary:logistic\",\"reg_loss_param\":{\"scale_pos_weight\":\"1\"}}},"
    "\"version\":[1,7,4]}";

/* The model text with each `from` replaced (once, and it must occur) by its `to`; NULL-terminated pairs. */
static char *edited(const char *text, const char *const *edits)
{
    char *out = malloc(strlen(text) + 1);
    assert_non_null(out);
    strcpy(out, text);
    for (int i = 0; edits[i]; i += 2) {
        char *at = strstr(out, edits[i]);
        if (!at) fail_msg("'%s' is not in the model", edits[i]);
        size_t head = (size_t)(at - out), from = strlen(edits[i]), to = strlen(edits[i + 1]);
        char *next = malloc(strlen(out) - from + to + 1);
        assert_non_null(next);
        memcpy(next, out, head);
        memcpy(next + head, edits[i + 1], to);
        strcpy(next + head + to, at + from);
        free(out);
        out = next;
    }
    return out;
}

#define EDITS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* The text of the tiny model's tree object. */
static char *tiny_tree(void)
{
    const char *start = strstr(tiny_model, "{\"base_weights\""), *end = strstr(start, "]},\"name\"");
    char *tree = malloc((size_t)(end - start) + 1);
    assert_non_null(tree);
    memcpy(tree, start, (size_t)(end - start));
    tree[end - start] = '\0';
    return tree;
}

/* Loads n bytes from their own exact-size heap block. */
static kiln_status load(const void *bytes, size_t n, kiln_model **model)
{
    void *copy = malloc(n ? n : 1);
    assert_non_null(copy);
    memcpy(copy, bytes, n);
    kiln_status st = kiln_model_load_from_memory(copy, n, NULL, 0, model);
    free(copy); /* a loaded tree model keeps nothing of the file */
    return st;
}

static kiln_model *load_text(const char *text)
{
    kiln_model *model = NULL;
    if (load(text, strlen(text), &model) != KILN_OK) fail_msg("the model did not load: %s", kiln_last_error());
    return model;
}

/* Runs the model on rows of x and copies the last output (probabilities or values) into out. */
static void run(kiln_model *model, bool raw, const float *x, int64_t rows, float *out, int64_t *labels)
{
    kiln_value_info input;
    assert_int_equal(kiln_model_input_info(model, 0, &input), KILN_OK);
    kiln_session_options options;
    kiln_session_options_init(&options);
    options.raw_scores = raw;
    kiln_session *session;
    assert_int_equal(kiln_session_create(model, &options, &session), KILN_OK);
    int64_t dims[2] = {rows, input.dims[1]};
    assert_int_equal(kiln_session_set_input(session, 0, KILN_FLOAT32, 2, dims, x), KILN_OK);
    if (kiln_session_run(session) != KILN_OK) fail_msg("run: %s", kiln_last_error());
    int outputs = kiln_model_output_count(model);
    kiln_tensor t;
    assert_int_equal(kiln_session_output(session, outputs - 1, &t), KILN_OK);
    int64_t n = 1;
    for (int d = 0; d < t.rank; d++) n *= t.dims[d];
    memcpy(out, t.data, (size_t)n * sizeof *out);
    if (labels && outputs == 2) {
        assert_int_equal(kiln_session_output(session, 0, &t), KILN_OK);
        memcpy(labels, t.data, (size_t)rows * sizeof *labels);
    }
    kiln_session_free(session);
}

static void refused(const char *text, kiln_status expected, const char *words)
{
    kiln_model *model = NULL;
    kiln_status st = load(text, strlen(text), &model);
    if (st == KILN_OK) fail_msg("the model loaded; expected an error about '%s'", words);
    assert_refused(st, expected, words);
    assert_null(model);
}

/* ---- the rules ----------------------------------------------------------------------------------------- */

static void splits_follow_xgboost(void **state)
{
    (void)state;
    kiln_model *model = load_text(tiny_model);
    kiln_model_summary summary;
    assert_int_equal(kiln_model_summarize(model, &summary), KILN_OK);
    assert_string_equal(summary.format, "xgboost-json");
    assert_string_equal(summary.producer, "xgboost 1.7.4 binary:logistic, 1 tree");
    const float below = nextafterf(0.5f, 0.0f);
    const float x[] = {9, 0.4f, 9, 0.5f, 9, below, 9, NAN, NAN, 0.6f, 9, INFINITY, 9, -INFINITY};
    const float margins[] = {-1, 1, -1, -1, 1, 1, -1}; /* x < 0.5 left; NaN default left */
    float probabilities[14];
    int64_t labels[7];
    run(model, true, x, 7, probabilities, labels);
    for (int r = 0; r < 7; r++) {
        assert_true(probabilities[2 * r + 1] == margins[r]);
        assert_true(probabilities[2 * r] == -margins[r]);
        assert_int_equal(labels[r], margins[r] > 0);
    }
    run(model, false, x, 7, probabilities, labels);
    for (int r = 0; r < 7; r++) {
        double p = 1.0 / (1.0 + exp(-margins[r]));
        assert_float_equal(probabilities[2 * r + 1], p, 1e-7);
        assert_float_equal(probabilities[2 * r], 1.0 - p, 1e-7);
    }
    kiln_model_free(model);
}

/* The margin of one row (class 1's for a binary classifier). */
static float raw_margin(const char *text, const float *row)
{
    kiln_model *model = load_text(text);
    float out[2];
    run(model, true, row, 1, out, NULL);
    int outputs = kiln_model_output_count(model);
    kiln_model_free(model);
    return out[outputs == 2 ? 1 : 0];
}

static void base_score_takes_every_form(void **state)
{
    (void)state;
    const float row[] = {0, 1}; /* leaf +1 */
    const float logit_03 = -logf(1.0f / 0.3f - 1.0f);
    const char *forms[] = {"\"3E-1\"", "\"[3E-1]\"", "3E-1", "\"0.3\""};
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        char *text = edited(tiny_model, EDITS("\"5E-1\"", forms[i]));
        assert_true(raw_margin(text, row) == logit_03 + 1.0f);
        free(text);
    }
    /* identity and log objectives */
    char *text = edited(tiny_model, EDITS("\"5E-1\"", "\"2.5E0\"", "binary:logistic", "reg:squarederror"));
    assert_true(raw_margin(text, row) == 3.5f);
    free(text);
    text = edited(tiny_model, EDITS("\"5E-1\"", "\"2.5E0\"", "binary:logistic", "count:poisson"));
    assert_true(raw_margin(text, row) == logf(2.5f) + 1.0f);
    free(text);
    /* 1.0-era JSON: booleans for default_left, numbers for parameters */
    text = edited(tiny_model, EDITS("\"default_left\":[1,0,0]", "\"default_left\":[true,false,false]",
                                    "\"num_nodes\":\"3\"", "\"num_nodes\":3"));
    const float missing[] = {0, NAN};
    assert_true(raw_margin(text, missing) == -1.0f);
    free(text);
}

static void leaves_add_in_float32_in_tree_order(void **state)
{
    (void)state;
    /* two trees: 1e8 then 1; in float32 1e8 + 1 is 1e8, then a third tree's -1e8 leaves 0 (not 1) */
    char *tree = tiny_tree();
    char *trees = malloc(4 * strlen(tree) + 16);
    assert_non_null(trees);
    const char *values[] = {"1E8", "1E0", "-1E8"};
    trees[0] = '\0';
    for (int t = 0; t < 3; t++) {
        char leaf[64];
        snprintf(leaf, sizeof leaf, "[5E-1,%s,%s]", values[t], values[t]);
        char *one = edited(tree, EDITS("[5E-1,-1E0,1E0]", leaf));
        strcat(trees, t ? "," : "");
        strcat(trees, one);
        free(one);
    }
    char *text = edited(tiny_model, EDITS(tree, trees, "\"tree_info\":[0]", "\"tree_info\":[0,0,0]",
                                          "\"num_trees\":\"1\"", "\"num_trees\":\"3\"", "\"5E-1\"", "\"0\"",
                                          "binary:logistic", "reg:squarederror"));
    const float row[] = {0, 0};
    assert_true(raw_margin(text, row) == 0.0f);
    free(text);
    free(trees);
    free(tree);
}

/* One categorical split on feature 0 with the set {0, 3, 33}: in the set goes right (+1), NaN right too. */
static void categorical_splits_follow_xgboost(void **state)
{
    (void)state;
    char *text = edited(tiny_model, EDITS("\"categories\":[]", "\"categories\":[0,3,33]",
                                          "\"categories_nodes\":[]", "\"categories_nodes\":[0]",
                                          "\"categories_segments\":[]", "\"categories_segments\":[0]",
                                          "\"categories_sizes\":[]", "\"categories_sizes\":[3]",
                                          "\"split_type\":[0,0,0]", "\"split_type\":[1,0,0]",
                                          "\"split_indices\":[1,0,0]", "\"split_indices\":[0,0,0]",
                                          "\"default_left\":[1,0,0]", "\"default_left\":[0,0,0]"));
    kiln_model *model = load_text(text);
    const struct { float x, margin; } cases[] = {
        {0, 1},   {-0.0f, 1}, {0.5f, 1},  {3, 1},     {3.99f, 1},   {33, 1},  {1, -1},
        {-0.5f, -1}, {-1, -1}, {34, -1},  {63, -1},   {64, -1},     {1e9f, -1}, {NAN, 1},
        {INFINITY, -1}, {-INFINITY, -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const float row[] = {cases[i].x, 0};
        float out[2];
        run(model, true, row, 1, out, NULL);
        if (out[1] != cases[i].margin) fail_msg("category %g went to %g, not %g", (double)cases[i].x, (double)out[1],
                                                (double)cases[i].margin);
    }
    kiln_model_free(model);
    free(text);
}

static void dart_weighs_leaves_in_float32(void **state)
{
    (void)state;
    char *text = edited(tiny_model, EDITS("\"gradient_booster\":{\"model\"",
                                          "\"gradient_booster\":{\"name\":\"dart\",\"weight_drop\":[3E-1],"
                                          "\"gbtree\":{\"name\":\"gbtree\",\"model\"",
                                          "\"name\":\"gbtree\"},", "\"name\":\"gbtree\"}},",
                                          "[5E-1,-1E0,1E0]", "[5E-1,-1E0,7E-1]"));
    kiln_model *model = load_text(text);
    kiln_model_summary summary;
    assert_int_equal(kiln_model_summarize(model, &summary), KILN_OK);
    assert_string_equal(summary.producer, "xgboost 1.7.4 dart binary:logistic, 1 tree");
    const float row[] = {0, 1};
    float out[2];
    run(model, true, row, 1, out, NULL);
    volatile float weight = 0.3f, leaf = 0.7f; /* the product rounded to float32, as XGBoost computes it */
    assert_true(out[1] == (float)(leaf * weight));
    kiln_model_free(model);
    free(text);
}

static void multiclass_models_are_classifiers(void **state)
{
    (void)state;
    /* three one-leaf trees, one per class */
    const char *leaf = "{\"base_weights\":[0E0],\"default_left\":[0],\"id\":0,\"left_children\":[-1],"
                       "\"loss_changes\":[0E0],\"parents\":[2147483647],\"right_children\":[-1],"
                       "\"split_conditions\":[%s],\"split_indices\":[0],\"sum_hessian\":[1E0],"
                       "\"tree_param\":{\"num_deleted\":\"0\",\"num_feature\":\"2\",\"num_nodes\":\"1\","
                       "\"size_leaf_vector\":\"0\"}}";
    char trees[2048] = "", one[512];
    const char *values[] = {"1E-1", "2E-1", "-3E-1"};
    for (int t = 0; t < 3; t++) {
        snprintf(one, sizeof one, leaf, values[t]);
        strcat(trees, t ? "," : "");
        strcat(trees, one);
    }
    char *original = tiny_tree();
    char *text = edited(tiny_model, EDITS(original, trees, "\"tree_info\":[0]", "\"tree_info\":[0,1,2]",
                                          "\"num_trees\":\"1\"", "\"num_trees\":\"3\"", "\"num_class\":\"0\"",
                                          "\"num_class\":\"3\"", "binary:logistic", "multi:softprob"));
    kiln_model *model = load_text(text);
    const float row[] = {0, 0};
    float scores[3];
    int64_t label;
    run(model, true, row, 1, scores, &label);
    assert_true(scores[0] == 0.5f + 0.1f && scores[1] == 0.5f + 0.2f && scores[2] == 0.5f - 0.3f);
    run(model, false, row, 1, scores, &label);
    assert_int_equal(label, 1);
    assert_float_equal(scores[0] + scores[1] + scores[2], 1.0, 1e-6);
    kiln_model_free(model);
    free(text);
    free(original);
}

/* ---- broken models ------------------------------------------------------------------------------------- */

typedef struct broken_case {
    kiln_status status;
    const char *words;
    const char *edits[5]; /* from, to, from, to... (NULL-terminated) */
} broken_case;

static void broken_models_are_refused_at_load(void **state)
{
    (void)state;
    const broken_case cases[] = {
        /* structure */
        {KILN_ERR_MALFORMED, "tree 0: node 0: children 7 and 2",
         {"\"left_children\":[1,-1,-1]", "\"left_children\":[7,-1,-1]"}},
        {KILN_ERR_MALFORMED, "children 1 and -5", {"\"right_children\":[2,-1,-1]", "\"right_children\":[-5,-1,-1]"}},
        {KILN_ERR_MALFORMED, "cycle", {"\"left_children\":[1,-1,-1]", "\"left_children\":[0,-1,-1]"}},
        {KILN_ERR_MALFORMED, "cycle",
         {"\"left_children\":[1,-1,-1]", "\"left_children\":[1,0,-1]",
          "\"right_children\":[2,-1,-1]", "\"right_children\":[2,2,-1]"}},
        {KILN_ERR_MALFORMED, "reached twice", {"\"left_children\":[1,-1,-1]", "\"left_children\":[2,-1,-1]"}},
        {KILN_ERR_MALFORMED, "children 2 and -1", {"\"left_children\":[1,-1,-1]", "\"left_children\":[1,-1,2]"}},
        {KILN_ERR_MALFORMED, "split feature 2 is beyond the model's 2 features",
         {"\"split_indices\":[1,0,0]", "\"split_indices\":[2,0,0]"}},
        {KILN_ERR_MALFORMED, "split feature -1", {"\"split_indices\":[1,0,0]", "\"split_indices\":[-1,0,0]"}},
        {KILN_ERR_MALFORMED, "split_type 2", {"\"split_type\":[0,0,0]", "\"split_type\":[2,0,0]"}},
        {KILN_ERR_MALFORMED, "default_left[0] is 2", {"\"default_left\":[1,0,0]", "\"default_left\":[2,0,0]"}},
        /* types */
        {KILN_ERR_MALFORMED, "expected an integer, found an array", {"\"num_nodes\":\"3\"", "\"num_nodes\":[3]"}},
        {KILN_ERR_MALFORMED, "split_conditions[0]: byte", {"[5E-1,-1E0,1E0]", "[\"a\",-1E0,1E0]"}},
        {KILN_ERR_MALFORMED, "expected a number, found a boolean", {"[5E-1,-1E0,1E0]", "[5E-1,-1E0,true]"}},
        {KILN_ERR_MALFORMED, "'left_children' should be an array, not a string",
         {"\"left_children\":[1,-1,-1]", "\"left_children\":\"1,-1,-1\""}},
        {KILN_ERR_MALFORMED, "left_children[0]", {"\"left_children\":[1,-1,-1]", "\"left_children\":[1.5,-1,-1]"}},
        {KILN_ERR_MALFORMED, "children 10000000000", {"\"left_children\":[1,-1,-1]", "\"left_children\":[1e10,-1,-1]"}},
        {KILN_ERR_MALFORMED, "JSON: byte", {"{\"learner\":{", "{\"learner\":[{"}},
        {KILN_ERR_MALFORMED, "'learner' should be an object, not a number",
         {"\"learner\":{\"attributes\"", "\"learner\":7,\"x\":{\"attributes\""}},
        {KILN_ERR_MALFORMED, "tree_info[0]", {"\"tree_info\":[0]", "\"tree_info\":[\"0\"]"}},
        /* counts */
        {KILN_ERR_MALFORMED, "'left_children' has 3 elements, 4 expected",
         {"\"num_nodes\":\"3\"", "\"num_nodes\":\"4\""}},
        {KILN_ERR_MALFORMED, "'num_nodes' is 0", {"\"num_nodes\":\"3\"", "\"num_nodes\":\"0\""}},
        {KILN_ERR_MALFORMED, "'left_children' has 3 elements, 1000000000 expected", /* before any allocation */
         {"\"num_nodes\":\"3\"", "\"num_nodes\":\"1000000000\""}},
        {KILN_ERR_MALFORMED, "'num_trees' is 2 but the model holds 1", {"\"num_trees\":\"1\"", "\"num_trees\":\"2\""}},
        {KILN_ERR_MALFORMED, "tree_info[0] is 1", {"\"tree_info\":[0]", "\"tree_info\":[1]"}},
        {KILN_ERR_MALFORMED, "'tree_info' has 2 elements", {"\"tree_info\":[0]", "\"tree_info\":[0,0]"}},
        {KILN_ERR_MALFORMED, "'num_feature' is 0",
         {"\"num_feature\":\"2\",\"num_target\"", "\"num_feature\":\"0\",\"num_target\""}},
        {KILN_ERR_MALFORMED, "'num_feature' is missing", {"\"num_feature\":\"2\",\"num_target\"", "\"num_target\""}},
        {KILN_ERR_MALFORMED, "'num_nodes' is \"three\", not an integer",
         {"\"num_nodes\":\"3\"", "\"num_nodes\":\"three\""}},
        {KILN_ERR_MALFORMED, "num_class is 3 for objective binary:logistic",
         {"\"num_class\":\"0\"", "\"num_class\":\"3\""}},
        {KILN_ERR_MALFORMED, "base_score has 2 values for 1 outputs", {"\"5E-1\"", "\"[5E-1,5E-1]\""}},
        {KILN_ERR_MALFORMED, "no finite margin", {"\"5E-1\"", "\"2\""}},
        {KILN_ERR_MALFORMED, "base_score: JSON: byte 0", {"\"5E-1\"", "\"x\""}},
        {KILN_ERR_MALFORMED, "tree 0: a tree should be an object", {"\"trees\":[{", "\"trees\":[7],\"x\":[{"}},
        /* categories */
        {KILN_ERR_MALFORMED, "'split_type' has 2 elements, 3 expected",
         {"\"split_type\":[0,0,0]", "\"split_type\":[0,0]"}},
        {KILN_ERR_MALFORMED, "'categories_segments' has 0", {"\"categories_nodes\":[]", "\"categories_nodes\":[1]"}},
        /* what kiln does not run */
        {KILN_ERR_UNSUPPORTED, "the 'gblinear' booster is not supported",
         {"\"name\":\"gbtree\"}", "\"name\":\"gblinear\"}"}},
        {KILN_ERR_UNSUPPORTED, "objective 'binary:unknown' is not supported", {"binary:logistic", "binary:unknown"}},
        {KILN_ERR_UNSUPPORTED, "vector-leaf trees",
         {"\"num_nodes\":\"3\",\"size_leaf_vector\":\"0\"", "\"num_nodes\":\"3\",\"size_leaf_vector\":\"2\""}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *text = edited(tiny_model, cases[i].edits);
        refused(text, cases[i].status, cases[i].words);
        free(text);
    }
}

static void broken_category_sets_are_refused(void **state)
{
    (void)state;
    const char *categorical[] = {"\"split_type\":[0,0,0]", "\"split_type\":[1,0,0]", "\"categories_segments\":[]",
                                 "\"categories_segments\":[0]", "\"categories_sizes\":[]", "\"categories_sizes\":[1]",
                                 "\"categories_nodes\":[]", "\"categories_nodes\":[0]"};
    const broken_case cases[] = {
        {KILN_ERR_MALFORMED, "category -1 is outside 0..16777215", {"\"categories\":[]", "\"categories\":[-1]"}},
        {KILN_ERR_MALFORMED, "category 16777216", {"\"categories\":[]", "\"categories\":[16777216]"}},
        {KILN_ERR_MALFORMED, "1 categories from index 0 do not fit in the 0 categories", {"\"categories\":[]", "\"categories\":[]"}},
        {KILN_ERR_MALFORMED, "categories[0]", {"\"categories\":[]", "\"categories\":[\"a\"]"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *base = edited(tiny_model, EDITS(categorical[0], categorical[1], categorical[2], categorical[3],
                                              categorical[4], categorical[5], categorical[6], categorical[7]));
        char *text = edited(base, cases[i].edits);
        refused(text, cases[i].status, cases[i].words);
        free(text);
        free(base);
    }
    /* a listed node that is no categorical split (node 1 is a leaf) */
    char *text = edited(tiny_model, EDITS("\"categories\":[]", "\"categories\":[1]", "\"categories_nodes\":[]",
                                          "\"categories_nodes\":[1]", "\"categories_segments\":[]",
                                          "\"categories_segments\":[0]", "\"categories_sizes\":[]",
                                          "\"categories_sizes\":[1]"));
    refused(text, KILN_ERR_MALFORMED, "categories_nodes lists nodes that are not categorical splits");
    free(text);
}

static void every_truncation_is_refused(void **state)
{
    (void)state;
    size_t n = strlen(tiny_model);
    for (size_t cut = 0; cut < n; cut++) {
        kiln_model *model = NULL;
        kiln_status st = load(tiny_model, cut, &model);
        if (st == KILN_OK) fail_msg("the first %zu bytes loaded", cut);
        if (cut > 0 && !strstr(kiln_last_error(), "XGBoost model: JSON: byte "))
            fail_msg("cut at %zu: %s", cut, kiln_last_error());
        assert_null(model);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(splits_follow_xgboost),
        cmocka_unit_test(base_score_takes_every_form),
        cmocka_unit_test(leaves_add_in_float32_in_tree_order),
        cmocka_unit_test(categorical_splits_follow_xgboost),
        cmocka_unit_test(dart_weighs_leaves_in_float32),
        cmocka_unit_test(multiclass_models_are_classifiers),
        cmocka_unit_test(broken_models_are_refused_at_load),
        cmocka_unit_test(broken_category_sets_are_refused),
        cmocka_unit_test(every_truncation_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
