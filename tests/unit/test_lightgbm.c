/*
 * test_lightgbm.c — LightGBM text models (formats/lightgbm.c), on three kinds of evidence:
 *
 *   - LightGBM's own choices: for each reference vector in the directory named by KILN_LIGHTGBM_DATA
 *     (../shared/testdata/lightgbm, see its README), every row must reach, in every tree, the leaf LightGBM
 *     reached (leaf.npy, bit-exact), and the raw scores must equal raw.npy. Skipped when the data is absent.
 *   - A small hand-written model whose splits cover each of LightGBM's rules (missing types None, Zero and
 *     NaN, default left and right, a categorical bitset, tiny inputs, NaN, negative, fractional and huge
 *     categories), with the leaves worked out by hand from LightGBM's tree.h; and single-leaf models for the
 *     transform of every objective.
 *   - Hostile files: every truncation, random byte corruptions, bad numbers, counts that disagree,
 *     children out of range, cycles, features beyond max_feature_idx, linear trees — each refused with a
 *     message that names the line, never a crash (the suite also runs under AddressSanitizer).
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

#include "core/error.h"
#include "core/platform/platform.h"
#include "formats/npy.h"
#include "formats/tree_loaders.h"
#include "kernels/tree_ensemble.h"
#include "kiln.h"
#include "testlib.h"

/* ---- the hand-written model ------------------------------------------------------------------------------
 *
 * Tree 0, features a (0), b (1), c (2):
 *   node 0: c categorical, set 0 = {1, 33} (words 2 2)     in set -> node 1, else -> node 2 (NaN, < 0: else)
 *   node 1: a <= 0.5, missing type None (NaN -> 0)           -> leaf 0 (1) / leaf 1 (2)
 *   node 2: b <= ~1e-35, missing type Zero, default left     -> node 3 / leaf 2 (3); 0 and NaN -> node 3
 *   node 3: a <= -0.25, missing type NaN, default right      -> leaf 3 (4) / leaf 4 (5); NaN -> leaf 4
 * Tree 1: a single leaf, 0.5.
 */
static const char small_model[] =
    "tree\n"
    "version=v4\n"
    "num_class=1\n"
    "num_tree_per_iteration=1\n"
    "label_index=0\n"
    "max_feature_idx=2\n"
    "objective=regression\n"
    "feature_names=a b c\n"
    "feature_infos=[-1:1] [-1:1] -1:1:33\n"
    "\n"
    "Tree=0\n"
    "num_leaves=5\n"
    "num_cat=1\n"
    "split_feature=2 0 1 0\n"
    "split_gain=4 3 2 1\n"
    "threshold=0 0.5 1.0000000180025095e-35 -0.25\n"
    "decision_type=1 0 6 8\n"
    "left_child=1 -1 3 -4\n"
    "right_child=2 -2 -3 -5\n"
    "leaf_value=1 2 3 4 5\n"
    "leaf_weight=1 1 1 1 1\n"
    "leaf_count=1 1 1 1 1\n"
    "internal_value=0 0 0 0\n"
    "internal_weight=4 2 2 1\n"
    "internal_count=4 2 2 1\n"
    "cat_boundaries=0 2\n"
    "cat_threshold=2 2\n"
    "is_linear=0\n"
    "shrinkage=1\n"
    "\n"
    "\n"
    "Tree=1\n"
    "num_leaves=1\n"
    "num_cat=0\n"
    "split_feature=\n"
    "split_gain=\n"
    "threshold=\n"
    "decision_type=\n"
    "left_child=\n"
    "right_child=\n"
    "leaf_value=0.5\n"
    "leaf_weight=4\n"
    "leaf_count=4\n"
    "internal_value=\n"
    "internal_weight=\n"
    "internal_count=\n"
    "is_linear=0\n"
    "shrinkage=1\n"
    "\n"
    "\n"
    "end of trees\n"
    "\n"
    "feature_importances:\n"
    "a=2\n"
    "\n"
    "parameters:\n"
    "[boosting: gbdt]\n"
    "end of parameters\n"
    "\n"
    "pandas_categorical:null\n";

/* Rows of (a, b, c) and the leaf of tree 0 each must reach, from the rules above. */
typedef struct small_case {
    float x[3];
    int32_t leaf;
} small_case;

static const small_case small_cases[] = {
    {{0.0f, 0.0f, 1.0f}, 0},          /* c = 1 in the set; a = 0 <= 0.5 */
    {{NAN, 0.0f, 33.0f}, 0},          /* c = 33 in the set (second word); NaN a counts as 0 (None) */
    {{0.6f, 0.0f, 1.9f}, 1},          /* c truncates to 1 */
    {{0.5f, 0.0f, 1.0f}, 0},          /* exactly at the threshold: left */
    {{0.50000006f, 0.0f, 1.0f}, 1},   /* one float step above */
    {{1.0f, 5.0f, 33.9f}, 1},         /* 33.9 truncates to 33 */
    {{0.0f, 0.0f, -0.5f}, 4},         /* -0.5 truncates to category 0, not in the set; b = 0 is missing (Zero),
                                       * default left; a = 0 > -0.25 */
    {{-1.0f, 1.0f, NAN}, 2},          /* a NaN category goes right; b = 1 > threshold */
    {{-1.0f, -1.0f, -1.0f}, 3},       /* negative category right; b <= threshold; a <= -0.25 */
    {{NAN, NAN, 2.0f}, 4},            /* b NaN is missing under Zero (left); a NaN under NaN: default right */
    {{-1.0f, 1e-36f, 64.0f}, 3},      /* category 64 is past the 2-word set: right; tiny b is 0: missing */
    {{-1.0f, -1e-36f, 3e9f}, 3},      /* a category beyond int32 goes right; -1e-36 is 0 too */
    {{-0.25f, -1.0f, 5.0f}, 3},       /* a exactly -0.25 */
    {{-0.24999999f, -1.0f, 5.0f}, 4}, /* one float step above -0.25 */
    {{-1.0f, 5.0f, INFINITY}, 2},     /* an infinite category goes right */
    {{-1.0f, 2e-35f, 0.0f}, 2},       /* 2e-35 is not tiny: b > 1.00000002e-35 */
    {{-1.0f, 1e-35f, 0.0f}, 3},       /* 1e-35f is tiny (|x| <= 1e-35f): 0, missing, left */
};
#define N_SMALL_CASES ((int)(sizeof small_cases / sizeof small_cases[0]))

/* ---- helpers ----------------------------------------------------------------------------------------- */

/* An exact-size heap copy, so that AddressSanitizer catches a read one byte past the end. */
static char *exact_copy(const char *text, size_t n)
{
    char *copy = malloc(n ? n : 1);
    assert_non_null(copy);
    memcpy(copy, text, n);
    return copy;
}

/* `text` with the first occurrence of `from` replaced by `to` (which must exist), NUL-terminated. */
static char *edited(const char *text, const char *from, const char *to)
{
    const char *at = strstr(text, from);
    if (!at) fail_msg("'%s' is not in the text", from);
    size_t head = (size_t)(at - text), n = strlen(text) - strlen(from) + strlen(to);
    char *out = malloc(n + 1);
    assert_non_null(out);
    memcpy(out, text, head);
    strcpy(out + head, to);
    strcat(out, at + strlen(from));
    return out;
}

/* `text` with the line that starts with the first occurrence of `prefix` replaced by `line` (given without
 * its '\n'), or removed with its '\n' when `line` is NULL. */
static char *replace_line(const char *text, const char *prefix, const char *line)
{
    const char *at = strstr(text, prefix);
    if (!at) fail_msg("no line starts with '%s'", prefix);
    size_t length = strcspn(at, "\n") + (line ? 0 : 1);
    char *old = malloc(length + 1);
    assert_non_null(old);
    memcpy(old, at, length);
    old[length] = '\0';
    char *out = edited(text, old, line ? line : "");
    free(old);
    return out;
}

/* Adds the tree_sizes line LightGBM writes: each tree's bytes from its "Tree=" line to the next tree or to
 * "end of trees". */
static char *with_tree_sizes(const char *text)
{
    char sizes[256] = "tree_sizes=";
    for (const char *tree = strstr(text, "Tree="); tree;) {
        const char *next = strstr(tree + 1, "Tree=");
        const char *end = next ? next : strstr(tree, "end of trees");
        size_t used = strlen(sizes);
        snprintf(sizes + used, sizeof sizes - used, "%s%ld", used > 11 ? " " : "", (long)(end - tree));
        tree = next;
    }
    strcat(sizes, "\n\nTree=0");
    return edited(text, "\nTree=0", sizes);
}

static char *to_crlf(const char *text)
{
    size_t n = strlen(text), lines = 0, k = 0;
    for (size_t i = 0; i < n; i++) lines += text[i] == '\n';
    char *out = malloc(n + lines + 1);
    assert_non_null(out);
    for (size_t i = 0; i < n; i++) {
        if (text[i] == '\n') out[k++] = '\r';
        out[k++] = text[i];
    }
    out[k] = '\0';
    return out;
}

/* lightgbm_read and then the engine's build: the status of loading `text`. */
static kiln_status read_text(const char *text, size_t n, region *mem, tree_schema *s, tree_ensemble *e)
{
    char *copy = exact_copy(text, n);
    kiln_status st = lightgbm_read((const uint8_t *)copy, n, mem, s);
    if (st == KILN_OK) st = tree_ensemble_build_schema(s, mem, e);
    free(copy); /* the schema holds no pointer into the text */
    return st;
}

static void refused(const char *text, kiln_status want, const char *words)
{
    region mem;
    region_init(&mem);
    tree_schema s;
    tree_ensemble e;
    assert_refused(read_text(text, strlen(text), &mem, &s, &e), want, words);
    region_free(&mem);
}

static void refused_edit(const char *from, const char *to, kiln_status want, const char *words)
{
    char *text = edited(small_model, from, to);
    refused(text, want, words);
    free(text);
}

/* Number of leaves of tree t of a schema: its 2L-1 nodes. */
static int32_t schema_tree_leaves(const tree_schema *s, int32_t t)
{
    int32_t end = t + 1 < s->n_trees ? s->tree_roots[t + 1] : s->n_nodes;
    return (end - s->tree_roots[t] + 1) / 2;
}

/* LightGBM's leaf number for tree t of a row: kiln's leaf, mapped back through leaf_node (schema node
 * (L-1)+k of a tree is LightGBM's leaf k). */
static void lightgbm_leaves(const tree_schema *s, const tree_ensemble *e, const float *row, int32_t *leaves)
{
    tree_ensemble_leaves(e, row, leaves);
    for (int32_t t = 0; t < e->n_trees; t++) leaves[t] = e->leaf_node[leaves[t]] - (schema_tree_leaves(s, t) - 1);
}

/* Loads `text` through the public API and runs it on `rows` rows of `x`; out[k] receives output k (copied
 * as float32 values); returns the first failure. */
static kiln_status run_text(const char *text, size_t n, bool raw, const float *x, int64_t rows, int64_t cols,
                            float *out0, float *out1)
{
    char *copy = exact_copy(text, n);
    kiln_model *model = NULL;
    kiln_session *session = NULL;
    kiln_session_options options;
    kiln_session_options_init(&options);
    options.raw_scores = raw;
    kiln_status st = kiln_model_load_from_memory(copy, n, NULL, 0, &model);
    if (st == KILN_OK) st = kiln_session_create(model, &options, &session);
    if (st == KILN_OK) st = kiln_session_set_input(session, 0, KILN_FLOAT32, 2, (int64_t[]){rows, cols}, x);
    if (st == KILN_OK) st = kiln_session_run(session);
    for (int k = 0; st == KILN_OK && k < kiln_model_output_count(model); k++) {
        kiln_tensor t;
        float *out = k == 0 ? out0 : out1;
        st = kiln_session_output(session, k, &t);
        int64_t count = 1;
        for (int d = 0; d < t.rank; d++) count *= t.dims[d];
        for (int64_t i = 0; st == KILN_OK && out && i < count; i++)
            out[i] = t.dtype == KILN_INT64 ? (float)((const int64_t *)t.data)[i] : ((const float *)t.data)[i];
    }
    kiln_session_free(session);
    kiln_model_free(model);
    free(copy);
    return st;
}

/* ---- the hand-written model -------------------------------------------------------------------------- */

static void small_model_takes_every_branch_lightgbm_takes(void **state)
{
    (void)state;
    region mem;
    region_init(&mem);
    tree_schema s;
    tree_ensemble e;
    assert_int_equal(read_text(small_model, strlen(small_model), &mem, &s, &e), KILN_OK);
    assert_int_equal(e.n_trees, 2);
    for (int i = 0; i < N_SMALL_CASES; i++) {
        int32_t leaves[2];
        lightgbm_leaves(&s, &e, small_cases[i].x, leaves);
        if (leaves[0] != small_cases[i].leaf || leaves[1] != 0)
            fail_msg("row %d (%g, %g, %g) reached leaves %d, %d; LightGBM's rules give %d, 0", i,
                     (double)small_cases[i].x[0], (double)small_cases[i].x[1], (double)small_cases[i].x[2], leaves[0],
                     leaves[1], small_cases[i].leaf);
    }
    region_free(&mem);
    /* and through the public API: leaf k of tree 0 is worth k + 1, tree 1 adds 0.5 */
    float x[N_SMALL_CASES * 3], y[N_SMALL_CASES];
    double want[N_SMALL_CASES];
    for (int i = 0; i < N_SMALL_CASES; i++) {
        memcpy(&x[3 * i], small_cases[i].x, sizeof small_cases[i].x);
        want[i] = small_cases[i].leaf + 1.5;
    }
    assert_int_equal(run_text(small_model, strlen(small_model), false, x, N_SMALL_CASES, 3, y, NULL), KILN_OK);
    assert_close(y, want, N_SMALL_CASES, 0);
}

static void windows_line_ends_are_accepted(void **state)
{
    (void)state;
    char *crlf = to_crlf(small_model);
    float y[1];
    assert_int_equal(run_text(crlf, strlen(crlf), false, small_cases[6].x, 1, 3, y, NULL), KILN_OK);
    assert_true(y[0] == 5.5f);
    free(crlf);
}

/* LightGBM seeks to each tree with tree_sizes; kiln checks them, which catches cut-off and edited trees. */
static void tree_sizes_must_match_the_trees(void **state)
{
    (void)state;
    char *sized = with_tree_sizes(small_model);
    float y[1];
    assert_int_equal(run_text(sized, strlen(sized), false, small_cases[0].x, 1, 3, y, NULL), KILN_OK);
    assert_true(y[0] == 1.5f);
    char *longer = edited(sized, "tree_sizes=", "tree_sizes=1");
    refused(longer, KILN_ERR_MALFORMED, "tree 0 is");
    char *fewer = replace_line(sized, "tree_sizes=", "tree_sizes=100");
    refused(fewer, KILN_ERR_MALFORMED, "tree_sizes has 1 value, a file with 2 trees needs 2");
    char *crlf = to_crlf(sized); /* sizes count LightGBM's '\n' line ends */
    refused(crlf, KILN_ERR_MALFORMED, "tree_sizes says");
    free(crlf);
    free(fewer);
    free(longer);
    free(sized);
}

/* ---- objectives: single-leaf models, one feature ----------------------------------------------------- */

/* Tree t is a single leaf worth values[t]; `objective` is the objective line's value (NULL: none, as for a
 * custom objective). */
static char *leaf_model(const char *objective, int num_class, int per_iteration, bool average, const double *values,
                        int n_trees)
{
    size_t capacity = 1024 + 256 * (size_t)n_trees, n = 0;
    char *text = malloc(capacity);
    assert_non_null(text);
    n += (size_t)snprintf(text + n, capacity - n,
                          "tree\nversion=v4\nnum_class=%d\nnum_tree_per_iteration=%d\nlabel_index=0\nmax_feature_idx=0\n"
                          "%s%s%s%sfeature_names=x\nfeature_infos=none\n\n",
                          num_class, per_iteration, objective ? "objective=" : "", objective ? objective : "",
                          objective ? "\n" : "", average ? "average_output\n" : "");
    for (int t = 0; t < n_trees; t++)
        n += (size_t)snprintf(text + n, capacity - n,
                              "Tree=%d\nnum_leaves=1\nnum_cat=0\nsplit_feature=\nthreshold=\nleft_child=\nright_child=\n"
                              "leaf_value=%.17g\nshrinkage=1\n\n\n",
                              t, values[t]);
    snprintf(text + n, capacity - n, "end of trees\n");
    return text;
}

/* Runs a single-leaf model on one row and compares output `which` (0: label or variable, 1: probabilities)
 * with want[0..n_want). */
static void check_output(const char *text, bool raw, int which, const double *want, int n_want)
{
    float x[1] = {0}, out0[8], out1[8];
    assert_int_equal(run_text(text, strlen(text), raw, x, 1, 1, out0, out1), KILN_OK);
    assert_close(which ? out1 : out0, want, n_want, 1e-7);
}

static double sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

static void regression_objectives_transform_like_lightgbm(void **state)
{
    (void)state;
    const double values[2] = {0.3, -1.1}; /* raw score -0.8 */
    const double s = values[0] + values[1];
    const struct { const char *objective; bool average; double want; } cases[] = {
        {"regression", false, s},
        {NULL, false, s},
        {"regression", true, s / 2},           /* average_output: over the 2 iterations */
        {"regression sqrt", false, -s * s},    /* sign(s) * s * s */
        {"regression_l1 sqrt", false, -s * s},
        {"huber sqrt", false, s},              /* LightGBM turns sqrt off for huber */
        {"poisson", false, exp(s)},
        {"gamma", false, exp(s)},
        {"tweedie", false, exp(s)},
        {"cross_entropy", false, sigmoid(s)},
        {"cross_entropy_lambda", false, log1p(exp(s))},
        {"lambdarank", false, s},
        {"custom", false, s},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *text = leaf_model(cases[i].objective, 1, 1, cases[i].average, values, 2);
        check_output(text, false, 0, &cases[i].want, 1);
        double raw = cases[i].average ? s / 2 : s;
        check_output(text, true, 0, &raw, 1);
        free(text);
    }
}

static void classifier_objectives_transform_like_lightgbm(void **state)
{
    (void)state;
    const double values[6] = {0.1, 0.2, -0.3, 0.5, 0.1, 0.2}; /* three classes: 0.6, 0.3, -0.1 */
    const double s[3] = {0.6, 0.3, -0.1};
    /* binary, sigmoid slope 0.7, two trees: p = sigmoid(0.7 * 0.3) */
    char *binary = leaf_model("binary sigmoid:0.7", 1, 1, false, values, 2);
    double p = sigmoid(0.7 * 0.3), probabilities[2] = {1 - p, p}, label = 1, raw[2] = {-0.3, 0.3};
    check_output(binary, false, 1, probabilities, 2);
    check_output(binary, false, 0, &label, 1);
    check_output(binary, true, 1, raw, 2);
    free(binary);
    char *softmax = leaf_model("multiclass num_class:3", 3, 3, false, values, 6);
    double total = exp(s[0]) + exp(s[1]) + exp(s[2]), want[3] = {exp(s[0]) / total, exp(s[1]) / total, exp(s[2]) / total};
    label = 0;
    check_output(softmax, false, 1, want, 3);
    check_output(softmax, false, 0, &label, 1);
    check_output(softmax, true, 1, s, 3);
    free(softmax);
    char *ova = leaf_model("multiclassova num_class:3 sigmoid:2", 3, 3, false, values, 6);
    double each[3] = {sigmoid(2 * s[0]), sigmoid(2 * s[1]), sigmoid(2 * s[2])};
    check_output(ova, false, 1, each, 3);
    free(ova);
    char *forest = leaf_model("multiclass num_class:3", 3, 3, true, values, 6); /* averaged over 2 iterations */
    total = exp(s[0] / 2) + exp(s[1] / 2) + exp(s[2] / 2);
    double averaged[3] = {exp(s[0] / 2) / total, exp(s[1] / 2) / total, exp(s[2] / 2) / total};
    check_output(forest, false, 1, averaged, 3);
    free(forest);
}

static void objectives_that_cannot_be_followed_are_refused(void **state)
{
    (void)state;
    const double values[3] = {1, 2, 3};
    const struct { const char *objective; int num_class, per_iteration, n_trees; kiln_status status; const char *words; }
    cases[] = {
        {"lambdamart", 1, 1, 1, KILN_ERR_UNSUPPORTED, "objective 'lambdamart' is not one kiln knows"},
        {"binary", 1, 1, 1, KILN_ERR_MALFORMED, "objective binary needs sigmoid:<slope>"},
        {"binary sigmoid:0", 1, 1, 1, KILN_ERR_MALFORMED, "positive finite sigmoid slope"},
        {"binary sigmoid:abc", 1, 1, 1, KILN_ERR_MALFORMED, "'sigmoid:abc'"},
        {"binary sigmoid:1", 2, 2, 2, KILN_ERR_MALFORMED, "a binary model has one score per row"},
        {"multiclass num_class:4", 3, 3, 3, KILN_ERR_MALFORMED, "num_class:4 does not fit num_class=3"},
        {"multiclass", 3, 3, 3, KILN_ERR_MALFORMED, "num_class:-1 does not fit"},
        {"multiclass num_class:3", 3, 1, 3, KILN_ERR_MALFORMED, "num_tree_per_iteration=1"},
        {"regression sq", 1, 1, 1, KILN_ERR_MALFORMED, "'sq' is not 'sqrt' or key:value"},
        {"regression", 1, 2, 3, KILN_ERR_MALFORMED, "3 trees, not a multiple of num_tree_per_iteration=2"},
        {"", 1, 1, 1, KILN_ERR_MALFORMED, "objective is empty"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *text = leaf_model(cases[i].objective, cases[i].num_class, cases[i].per_iteration, false, values,
                                cases[i].n_trees);
        refused(text, cases[i].status, cases[i].words);
        free(text);
    }
}

/* ---- LightGBM's reference vectors -------------------------------------------------------------------- */

typedef struct npy_array {
    file_mapping map;
    kiln_tensor t;
} npy_array;

static void load_npy(const char *dir, const char *name, kiln_dtype dtype, npy_array *a)
{
    char path[1024];
    size_t offset;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (platform_map_file(path, &a->map) != KILN_OK) fail_msg("%s: %s", path, kiln_last_error());
    if (npy_parse(a->map.data, a->map.size, &a->t, &offset) != KILN_OK) fail_msg("%s: %s", path, kiln_last_error());
    if (a->t.dtype != dtype) fail_msg("%s holds %s, not %s", path, kiln_dtype_name(a->t.dtype), kiln_dtype_name(dtype));
    a->t.data = (void *)(a->map.data + offset);
}

/* Every row's leaf in every tree is LightGBM's (leaf.npy), and the raw scores are raw.npy. */
static void compare_with_reference(const char *name, const tree_schema *s, const tree_ensemble *e, const char *dir)
{
    npy_array input, leaf, raw;
    load_npy(dir, "input.npy", KILN_FLOAT32, &input);
    load_npy(dir, "leaf.npy", KILN_INT32, &leaf);
    load_npy(dir, "raw.npy", KILN_FLOAT64, &raw);
    int64_t rows = input.t.dims[0];
    assert_int_equal(input.t.dims[1], e->n_features);
    assert_int_equal(leaf.t.dims[0], rows);
    assert_int_equal(leaf.t.dims[1], e->n_trees);
    assert_int_equal(raw.t.dims[0], rows);
    assert_int_equal(raw.t.rank == 1 ? 1 : raw.t.dims[1], e->n_targets);
    const float *x = input.t.data;
    const int32_t *want_leaf = leaf.t.data;
    const double *want_raw = raw.t.data;
    int32_t *leaves = malloc((size_t)e->n_trees * sizeof *leaves);
    double *scores = malloc((size_t)(rows * e->n_targets) * sizeof *scores);
    assert_true(leaves && scores);
    int64_t wrong_leaves = 0;
    for (int64_t r = 0; r < rows; r++) {
        lightgbm_leaves(s, e, x + r * e->n_features, leaves);
        for (int32_t t = 0; t < e->n_trees; t++) {
            if (leaves[t] == want_leaf[r * e->n_trees + t]) continue;
            if (wrong_leaves++ < 5)
                print_error("%s: row %lld tree %d reached leaf %d, LightGBM leaf %d\n", name, (long long)r, t,
                            leaves[t], want_leaf[r * e->n_trees + t]);
        }
    }
    tree_ensemble_predict(e, x, rows, e->n_features, scores, NULL);
    double worst = 0;
    for (int64_t i = 0; i < rows * e->n_targets; i++) worst = fmax(worst, fabs(scores[i] - want_raw[i]));
    print_message("%s: %lld rows x %d trees: %lld leaves differ from LightGBM's; raw scores max |diff| %g\n", name,
                  (long long)rows, e->n_trees, (long long)wrong_leaves, worst);
    assert_int_equal(wrong_leaves, 0);
    /* the same leaf values summed in the same order, in double: LightGBM's raw score to the last bit */
    assert_true(worst == 0);
    free(scores);
    free(leaves);
    platform_unmap_file(&input.map);
    platform_unmap_file(&leaf.map);
    platform_unmap_file(&raw.map);
}

static void matches_lightgbm_reference(void **state)
{
    const char *name = *state, *root = getenv("KILN_LIGHTGBM_DATA");
    char dir[1024], path[1100];
    snprintf(dir, sizeof dir, "%s/%s", root ? root : "", name);
    snprintf(path, sizeof path, "%s/model.txt", dir);
    file_mapping model;
    if (!root || !*root || platform_map_file(path, &model) != KILN_OK) {
        print_message("skipped: LightGBM reference vector %s absent (KILN_LIGHTGBM_DATA=%s)\n", name, root ? root : "");
        skip();
    }
    region mem;
    region_init(&mem);
    tree_schema s;
    tree_ensemble e;
    if (lightgbm_read(model.data, model.size, &mem, &s) != KILN_OK || tree_ensemble_build_schema(&s, &mem, &e) != KILN_OK)
        fail_msg("%s: %s", path, kiln_last_error());
    compare_with_reference(name, &s, &e, dir);
    region_free(&mem);
    platform_unmap_file(&model);
}

/* ---- hostile files ----------------------------------------------------------------------------------- */

/* Cuts `text` at every length: every cut before `complete` bytes must be refused with a message; a longer
 * cut (inside the trailer LightGBM does not need) may load, but then predicts exactly what the whole file
 * does. */
static void check_every_truncation(const char *text, size_t complete)
{
    float x[N_SMALL_CASES * 3], whole[N_SMALL_CASES], y[N_SMALL_CASES];
    for (int i = 0; i < N_SMALL_CASES; i++) memcpy(&x[3 * i], small_cases[i].x, sizeof small_cases[i].x);
    size_t n = strlen(text);
    assert_int_equal(run_text(text, n, false, x, N_SMALL_CASES, 3, whole, NULL), KILN_OK);
    for (size_t cut = 0; cut < n; cut++) {
        kiln_clear_error();
        kiln_status st = run_text(text, cut, false, x, N_SMALL_CASES, 3, y, NULL);
        if (st != KILN_OK) {
            if (!kiln_last_error()[0]) fail_msg("a cut at byte %zu was refused without a message", cut);
            continue;
        }
        if (cut < complete) fail_msg("a cut at byte %zu of %zu (before byte %zu) loaded", cut, n, complete);
        if (memcmp(y, whole, sizeof y) != 0) fail_msg("a cut at byte %zu loaded and predicts differently", cut);
    }
}

static void every_truncation_is_refused(void **state)
{
    (void)state;
    const char *end = strstr(small_model, "end of trees");
    check_every_truncation(small_model, (size_t)(end - small_model) + strlen("end of trees"));
    /* format v2: no "end of trees"; tree_sizes alone mark where the trees end */
    char *sized = with_tree_sizes(small_model), *v2 = edited(sized, "version=v4", "version=v2");
    char *old = edited(v2, "end of trees\n", "");
    check_every_truncation(old, (size_t)(strstr(old, "\nfeature_importances") - old));
    free(old);
    free(v2);
    free(sized);
}

/* Loads a corrupted copy and, when it loads, runs it on a few rows of its declared width. */
static bool load_and_run_anything(const char *text, size_t n)
{
    kiln_model *model = NULL;
    kiln_session *session = NULL;
    kiln_clear_error();
    kiln_status st = kiln_model_load_from_memory(text, n, NULL, 0, &model);
    if (st != KILN_OK) {
        if (!kiln_last_error()[0]) fail_msg("a corrupted model was refused without a message");
        return false;
    }
    kiln_value_info info;
    assert_int_equal(kiln_model_input_info(model, 0, &info), KILN_OK);
    int64_t cols = info.dims[1], rows = N_SMALL_CASES;
    float *x = calloc((size_t)(rows * cols), sizeof *x);
    assert_non_null(x);
    for (int64_t i = 0; i < rows * cols; i++) x[i] = small_cases[i % rows].x[i % 3];
    if (kiln_session_create(model, NULL, &session) == KILN_OK &&
        kiln_session_set_input(session, 0, KILN_FLOAT32, 2, (int64_t[]){rows, cols}, x) == KILN_OK)
        (void)kiln_session_run(session);
    kiln_session_free(session);
    kiln_model_free(model);
    free(x);
    return true;
}

static void random_corruptions_never_crash(void **state)
{
    (void)state;
    static const char likely[] = "0123456789-+.e=\n :nai~";
    size_t n = strlen(small_model);
    int loaded = 0, mutants = 3000;
    random_seed(20240531);
    for (int m = 0; m < mutants; m++) {
        char *copy = exact_copy(small_model, n);
        for (int64_t flips = random_int(1, 4); flips > 0; flips--) {
            size_t at = (size_t)random_int(0, (int64_t)n - 1);
            copy[at] = random_int(0, 1) ? likely[random_int(0, (int64_t)sizeof likely - 2)] : (char)random_int(0, 255);
        }
        loaded += load_and_run_anything(copy, n);
        free(copy);
    }
    print_message("%d of %d corrupted copies loaded (and ran); the rest were refused\n", loaded, mutants);
}

static void bad_numbers_are_refused(void **state)
{
    (void)state;
    const char *bad[] = {"0.5.1", "abc", "1e999", "-1e400", "0x10", "--1", "1e", ".", "e5", "nanx", "0.5f", "1,5",
                         "1e+", "+-1", "infinit", "0.123456789012345678901234567890123456789012345678901234567890123456789012345678901"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char line[160];
        snprintf(line, sizeof line, "threshold=0 %s 1.0000000180025095e-35 -0.25", bad[i]);
        char *text = replace_line(small_model, "threshold=", line);
        refused(text, KILN_ERR_MALFORMED, "line 16: threshold value 1");
        free(text);
    }
    /* the spellings LightGBM writes and strtod reads alike */
    const char *good[] = {"inf", "-inf", "Infinity", "nan", "1E-3", "+.5", "5.", "-0"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char line[160];
        snprintf(line, sizeof line, "threshold=0 %s 1.0000000180025095e-35 -0.25", good[i]);
        char *text = replace_line(small_model, "threshold=", line);
        region mem;
        region_init(&mem);
        tree_schema s;
        tree_ensemble e;
        if (read_text(text, strlen(text), &mem, &s, &e) != KILN_OK) fail_msg("'%s': %s", good[i], kiln_last_error());
        region_free(&mem);
        free(text);
    }
    refused_edit("num_class=1", "num_class=x", KILN_ERR_MALFORMED, "line 3: num_class 'x' is not an integer");
    refused_edit("num_class=1", "num_class=99999999999999999999", KILN_ERR_MALFORMED, "num_class '9999");
    /* 2^64 + 1: an unsigned accumulator would wrap to 1 */
    refused_edit("num_class=1", "num_class=18446744073709551617", KILN_ERR_MALFORMED, "num_class '1844");
    refused_edit("num_class=1", "num_class=1 2", KILN_ERR_MALFORMED, "num_class has more than one value");
    refused_edit("num_class=1", "num_class=", KILN_ERR_MALFORMED, "num_class has no value");
    refused_edit("cat_threshold=2 2", "cat_threshold=2 -2", KILN_ERR_MALFORMED, "cat_threshold value 1 '-2'");
    refused_edit("cat_threshold=2 2", "cat_threshold=2 4294967296", KILN_ERR_MALFORMED, "not a 32-bit word");
    refused_edit("decision_type=1 0 6 8", "decision_type=1 0 6 16", KILN_ERR_MALFORMED,
                 "decision_type value 3 '16' is not an integer from 0 to 15");
    refused_edit("decision_type=1 0 6 8", "decision_type=1 0 14 8", KILN_ERR_MALFORMED, "missing type 3");
}

static void counts_that_disagree_are_refused(void **state)
{
    (void)state;
    refused_edit("leaf_value=1 2 3 4 5", "leaf_value=1 2 3 4", KILN_ERR_MALFORMED,
                 "line 20: leaf_value has 4 values, num_leaves=5 needs 5");
    refused_edit("num_leaves=5", "num_leaves=500000000", KILN_ERR_MALFORMED,
                 "leaf_value has 5 values, num_leaves=500000000 needs 500000000");
    refused_edit("num_leaves=5", "num_leaves=2000000000", KILN_ERR_MALFORMED, "is not an integer from 1 to");
    refused_edit("num_leaves=5", "num_leaves=0", KILN_ERR_MALFORMED, "num_leaves '0' is not an integer from 1");
    refused_edit("split_feature=2 0 1 0", "split_feature=2 0 1", KILN_ERR_MALFORMED, "split_feature has 3 values");
    refused_edit("threshold=0 0.5", "threshold=0 0.5 7", KILN_ERR_MALFORMED, "threshold has 5 values");
    refused_edit("leaf_count=1 1 1 1 1", "leaf_count=1 1", KILN_ERR_MALFORMED, "leaf_count has 2 values");
    refused_edit("internal_count=4 2 2 1", "internal_count=4", KILN_ERR_MALFORMED, "internal_count has 1 value,");
    refused_edit("num_cat=1", "num_cat=5", KILN_ERR_MALFORMED, "num_cat '5' is not an integer from 0 to 4");
    refused_edit("cat_boundaries=0 2", "cat_boundaries=0 1", KILN_ERR_MALFORMED, "must rise from 0 to the 2");
    refused_edit("cat_boundaries=0 2", "cat_boundaries=1 2", KILN_ERR_MALFORMED, "must rise from 0");
    refused_edit("cat_boundaries=0 2", "cat_boundaries=0 2 2", KILN_ERR_MALFORMED, "cat_boundaries has 3 values");
    refused_edit("threshold=0 0.5", "threshold=1 0.5", KILN_ERR_MALFORMED, "not a category set below num_cat=1");
    refused_edit("threshold=0 0.5", "threshold=0.5 0.5", KILN_ERR_MALFORMED, "(0.5) of a categorical split");
    refused_edit("feature_names=a b c", "feature_names=a b", KILN_ERR_MALFORMED,
                 "feature_names has 2 values, max_feature_idx=2 needs 3");
    refused_edit("leaf_value=0.5\n", "leaf_value=\n", KILN_ERR_MALFORMED, "leaf_value has 0 values, num_leaves=1");
    refused_edit("Tree=1\nnum_leaves=1\nnum_cat=0\nsplit_feature=", "Tree=1\nnum_leaves=1\nnum_cat=0\nsplit_feature=3",
                 KILN_ERR_MALFORMED, "split_feature has 1 value, num_leaves=1 needs 0");
}

/* The small model with tree 0 replaced by three numerical splits, four leaves and the given child lists. */
static char *four_leaf_model(const char *left, const char *right)
{
    const char *const lines[][2] = {
        {"num_leaves=", "num_leaves=4"},   {"num_cat=", "num_cat=0"},
        {"split_feature=", "split_feature=0 1 2"}, {"threshold=", "threshold=0 1 2"},
        {"decision_type=", "decision_type=0 0 0"}, {"leaf_value=", "leaf_value=1 2 3 4"},
        {"left_child=", left},             {"right_child=", right},
        {"cat_boundaries=", NULL},         {"cat_threshold=", NULL},
        {"split_gain=", NULL},             {"internal_value=", NULL},
        {"internal_weight=", NULL},        {"internal_count=", NULL},
        {"leaf_weight=", NULL},            {"leaf_count=", NULL},
    };
    char *text = edited(small_model, "", "");
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        char *next = replace_line(text, lines[i][0], lines[i][1]);
        free(text);
        text = next;
    }
    return text;
}

static void bad_structures_are_refused(void **state)
{
    (void)state;
    char *good = four_leaf_model("left_child=1 -1 -3", "right_child=2 -2 -4");
    float y[1];
    assert_int_equal(run_text(good, strlen(good), false, small_cases[0].x, 1, 3, y, NULL), KILN_OK);
    free(good);
    const struct { const char *left, *right, *words; } cases[] = {
        {"left_child=1 -1 3", "right_child=2 -2 -4", "left_child value 2 '3' is not an integer from -4 to 2"},
        {"left_child=1 -1 -5", "right_child=2 -2 -4", "left_child value 2 '-5'"},
        {"left_child=1 -1 0", "right_child=2 -2 -4", "tree 0: node 2's child is the root (a cycle)"},
        {"left_child=1 1 -3", "right_child=2 -2 -4", "tree 0: node 1 is the child of two nodes"},
        {"left_child=1 -1 -1", "right_child=2 -2 -4", "tree 0: leaf 0 is the child of two nodes"},
        /* nodes 1 and 2 form a cycle of their own, out of the root's reach */
        {"left_child=-1 2 1", "right_child=-2 -3 -4", "tree 0: 4 of its 7 nodes cannot be reached from the root"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *text = four_leaf_model(cases[i].left, cases[i].right);
        refused(text, KILN_ERR_MALFORMED, cases[i].words);
        free(text);
    }
    refused_edit("split_feature=2 0 1 0", "split_feature=2 0 3 0", KILN_ERR_MALFORMED,
                 "line 14: split_feature value 2 '3' is not an integer from 0 to 2");
    refused_edit("split_feature=2 0 1 0", "split_feature=2 0 -1 0", KILN_ERR_MALFORMED, "split_feature value 2 '-1'");
}

static void bad_layouts_are_refused(void **state)
{
    (void)state;
    refused_edit("is_linear=0", "is_linear=1", KILN_ERR_UNSUPPORTED, "line 28: tree 0 is a linear tree");
    refused_edit("Tree=1", "Tree=2", KILN_ERR_MALFORMED, "expected 'Tree=1', found 'Tree=2'");
    refused_edit("num_cat=1\n", "", KILN_ERR_MALFORMED, "line 11: tree 0 has no 'num_cat'");
    refused_edit("left_child=1 -1 3 -4\n", "", KILN_ERR_MALFORMED, "tree 0 has no 'left_child'");
    refused_edit("cat_threshold=2 2\n", "", KILN_ERR_MALFORMED, "tree 0 has no 'cat_threshold'");
    refused_edit("num_cat=1\n", "num_cat=1\nnum_cat=1\n", KILN_ERR_MALFORMED, "tree 0 has a second 'num_cat'");
    refused_edit("num_cat=1\n", "num_cat\n", KILN_ERR_MALFORMED, "line 13: expected key=value in tree 0");
    refused_edit("shrinkage=1\n\n\nTree=1", "shrinkage=1\nTree=1", KILN_ERR_MALFORMED, "fields must end with a blank line");
    refused_edit("\n\nTree=1", "\n\nsurprise\nTree=1", KILN_ERR_MALFORMED, "expected 'Tree=1' or 'end of trees', found 'surprise'");
    refused_edit("end of trees\n", "", KILN_ERR_MALFORMED, "ends without 'end of trees'");
    refused_edit("end of parameters\n", "", KILN_ERR_MALFORMED, "parameters section opened on line");
    refused_edit("max_feature_idx=2\n", "", KILN_ERR_MALFORMED, "the header has no 'max_feature_idx'");
    refused_edit("num_class=1\n", "num_class=1\nnum_class=1\n", KILN_ERR_MALFORMED, "a second 'num_class'");
    refused_edit("\nTree=0", "\nend of trees\nTree=0", KILN_ERR_MALFORMED, "the model has no trees");
    char *old = edited(small_model, "version=v4", "version=v2"), *unmarked = edited(old, "end of trees\n", "");
    refused(unmarked, KILN_ERR_MALFORMED, "neither 'end of trees' nor tree_sizes");
    free(unmarked);
    free(old);
    char *headless = edited(small_model, "\nTree=0", ""); /* tree 0's fields read as unknown header keys */
    refused(headless, KILN_ERR_MALFORMED, "expected 'Tree=0', found 'Tree=1'");
    free(headless);
    refused("tree\nversion=v4\nnum_class=1\n", KILN_ERR_MALFORMED, "the file ends before its first tree");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(small_model_takes_every_branch_lightgbm_takes),
        cmocka_unit_test(windows_line_ends_are_accepted),
        cmocka_unit_test(tree_sizes_must_match_the_trees),
        cmocka_unit_test(regression_objectives_transform_like_lightgbm),
        cmocka_unit_test(classifier_objectives_transform_like_lightgbm),
        cmocka_unit_test(objectives_that_cannot_be_followed_are_refused),
        cmocka_unit_test_prestate(matches_lightgbm_reference, (void *)"binary_small"),
        cmocka_unit_test_prestate(matches_lightgbm_reference, (void *)"multiclass_cat"),
        cmocka_unit_test_prestate(matches_lightgbm_reference, (void *)"regression_zero_missing"),
        cmocka_unit_test_prestate(matches_lightgbm_reference, (void *)"many_thresholds"),
        cmocka_unit_test_prestate(matches_lightgbm_reference, (void *)"treelite_toy_categorical"),
        cmocka_unit_test(every_truncation_is_refused),
        cmocka_unit_test(random_corruptions_never_crash),
        cmocka_unit_test(bad_numbers_are_refused),
        cmocka_unit_test(counts_that_disagree_are_refused),
        cmocka_unit_test(bad_structures_are_refused),
        cmocka_unit_test(bad_layouts_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
