/*
 * test_ml_strings.c — the ONNX-ML operators' string and map forms: classifiers with named classes
 * (classlabels_strings) must take exactly the decisions of their integer-label twins, lookups (LabelEncoder,
 * CategoryMapper, OneHotEncoder) must send unknown keys to their defaults, ZipMap must build one map per row
 * with the labels as keys, and every ambiguous or inconsistent label attribute must be refused at load.
 * The fixture comparisons with sklearn and onnxruntime (tests/ml/onnxml) cover trained models; these cover
 * the edges: empty batches, defaults, malformed attributes, the map encoding itself.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "testlib.h"

static const char *const NAMES[] = {"setosa", "versicolor", "virginica"};

/* Runs node `op` on input x ([rows, cols], or [rows] when cols < 0) and returns the run's status. */
static kiln_status run_on_x(test_run *r, int ml_opset, const char *op, int n_outputs, const pbw *attrs,
                            kiln_dtype dtype, int64_t rows, int64_t cols, const void *x)
{
    tr_init(r, 17);
    tr_input(r, "x", dtype, cols < 0 ? 1 : 2, (int64_t[]){rows, cols}, x);
    tr_ml_node(r, ml_opset, op, LIST("x"), n_outputs, attrs);
    return tr_run(r, 1);
}

static kiln_status load_on_x(int ml_opset, const char *op, int n_outputs, const pbw *attrs, kiln_dtype dtype)
{
    test_run r;
    tr_init(&r, 17);
    tr_input(&r, "x", dtype, 2, (int64_t[]){-1, 2}, NULL);
    tr_ml_node(&r, ml_opset, op, LIST("x"), n_outputs, attrs);
    kiln_status st = tr_load(&r);
    tr_free(&r);
    return st;
}

static void assert_strings(const kiln_tensor *t, const char *const *want, int64_t n)
{
    assert_int_equal(t->dtype, KILN_STRING);
    assert_int_equal(t->dims[0], n);
    for (int64_t i = 0; i < n; i++) assert_string_equal(((const char *const *)t->data)[i], want[i]);
}

/* ---- classifiers with named classes ------------------------------------------------------------------- */

/* One tree: x0 <= 0.5 goes to leaf 1 (classes 0.7 / 0.2 / 0.1), else leaf 2 (class 2 0.9, class 1 0.1). */
static void tree_attrs(pbw *a)
{
    tm_attr_ints(a, "nodes_treeids", (int64_t[]){0, 0, 0}, 3);
    tm_attr_ints(a, "nodes_nodeids", (int64_t[]){0, 1, 2}, 3);
    tm_attr_ints(a, "nodes_featureids", (int64_t[]){0, 0, 0}, 3);
    tm_attr_strings(a, "nodes_modes", (const char *const[]){"BRANCH_LEQ", "LEAF", "LEAF"}, 3);
    tm_attr_floats(a, "nodes_values", (float[]){0.5f, 0, 0}, 3);
    tm_attr_ints(a, "nodes_truenodeids", (int64_t[]){1, 0, 0}, 3);
    tm_attr_ints(a, "nodes_falsenodeids", (int64_t[]){2, 0, 0}, 3);
    tm_attr_ints(a, "class_treeids", (int64_t[]){0, 0, 0, 0, 0}, 5);
    tm_attr_ints(a, "class_nodeids", (int64_t[]){1, 1, 1, 2, 2}, 5);
    tm_attr_ints(a, "class_ids", (int64_t[]){0, 1, 2, 2, 1}, 5);
    tm_attr_floats(a, "class_weights", (float[]){0.7f, 0.2f, 0.1f, 0.9f, 0.1f}, 5);
}

static const float ROWS[] = {0.0f, 1.0f, 0.5f, 0.0f, 0.75f, -1.0f, 2.0f, 0.0f};

static void test_tree_string_labels_match_integer_labels(void **state)
{
    (void)state;
    pbw named = {0}, numbered = {0};
    tree_attrs(&named);
    tree_attrs(&numbered);
    tm_attr_strings(&named, "classlabels_strings", NAMES, 3);
    tm_attr_ints(&numbered, "classlabels_int64s", (int64_t[]){0, 1, 2}, 3);
    test_run a, b;
    assert_int_equal(run_on_x(&a, 3, "TreeEnsembleClassifier", 2, &named, KILN_FLOAT32, 4, 2, ROWS), KILN_OK);
    assert_int_equal(run_on_x(&b, 3, "TreeEnsembleClassifier", 2, &numbered, KILN_FLOAT32, 4, 2, ROWS), KILN_OK);
    const int64_t *ids = b.out[0].data;
    for (int r = 0; r < 4; r++) assert_string_equal(((const char *const *)a.out[0].data)[r], NAMES[ids[r]]);
    assert_strings(&a.out[0], (const char *const[]){"setosa", "setosa", "virginica", "virginica"}, 4);
    assert_memory_equal(a.out[1].data, b.out[1].data, 4 * 3 * sizeof(float));
    tr_free(&a);
    tr_free(&b);
    pbw_free(&named);
    pbw_free(&numbered);
}

/* Two classes with every weight on class 0 (skl2onnx's binary forests): the label is names[score > 0.5]. */
static void test_tree_binary_case_names_both_classes(void **state)
{
    (void)state;
    pbw a = {0};
    tm_attr_ints(&a, "nodes_treeids", (int64_t[]){0, 0, 0}, 3);
    tm_attr_ints(&a, "nodes_nodeids", (int64_t[]){0, 1, 2}, 3);
    tm_attr_ints(&a, "nodes_featureids", (int64_t[]){0, 0, 0}, 3);
    tm_attr_strings(&a, "nodes_modes", (const char *const[]){"BRANCH_LEQ", "LEAF", "LEAF"}, 3);
    tm_attr_floats(&a, "nodes_values", (float[]){0.5f, 0, 0}, 3);
    tm_attr_ints(&a, "nodes_truenodeids", (int64_t[]){1, 0, 0}, 3);
    tm_attr_ints(&a, "nodes_falsenodeids", (int64_t[]){2, 0, 0}, 3);
    tm_attr_ints(&a, "class_treeids", (int64_t[]){0, 0}, 2);
    tm_attr_ints(&a, "class_nodeids", (int64_t[]){1, 2}, 2);
    tm_attr_ints(&a, "class_ids", (int64_t[]){0, 0}, 2);
    tm_attr_floats(&a, "class_weights", (float[]){0.2f, 0.8f}, 2);
    tm_attr_strings(&a, "classlabels_strings", (const char *const[]){"benign", "malignant"}, 2);
    test_run r;
    assert_int_equal(run_on_x(&r, 3, "TreeEnsembleClassifier", 2, &a, KILN_FLOAT32, 4, 2, ROWS), KILN_OK);
    assert_strings(&r.out[0], (const char *const[]){"benign", "benign", "malignant", "malignant"}, 4);
    const float *p = r.out[1].data; /* [1 - score, score] */
    assert_true(p[1] == 0.2f && p[5] == 0.8f);
    tr_free(&r);
    pbw_free(&a);
}

static void test_linear_and_svm_string_labels(void **state)
{
    (void)state;
    pbw a = {0};
    tm_attr_floats(&a, "coefficients", (float[]){1, 0, 0, 1, -1, -1}, 6);
    tm_attr_floats(&a, "intercepts", (float[]){0, 0, 0}, 3);
    tm_attr_strings(&a, "classlabels_strings", NAMES, 3);
    test_run r;
    /* rows (0, 1), (0.5, 0), (0.75, -1), (2, 0): best scores x1, x0, -x0-x1, x0 */
    assert_int_equal(run_on_x(&r, 1, "LinearClassifier", 2, &a, KILN_FLOAT32, 4, 2, ROWS), KILN_OK);
    assert_strings(&r.out[0], (const char *const[]){"versicolor", "setosa", "setosa", "setosa"}, 4);
    tr_free(&r);
    pbw_free(&a);

    /* one row of coefficients: names[score > 0] */
    tm_attr_floats(&a, "coefficients", (float[]){1, -1}, 2);
    tm_attr_floats(&a, "intercepts", (float[]){0}, 1);
    tm_attr_strings(&a, "classlabels_strings", (const char *const[]){"no", "yes"}, 2);
    assert_int_equal(run_on_x(&r, 1, "LinearClassifier", 2, &a, KILN_FLOAT32, 4, 2, ROWS), KILN_OK);
    assert_strings(&r.out[0], (const char *const[]){"no", "yes", "yes", "yes"}, 4);
    tr_free(&r);
    pbw_free(&a);

    /* an SVM without support vectors: one linear score per class */
    tm_attr_floats(&a, "coefficients", (float[]){1, 0, 0, 1, -1, -1}, 6);
    tm_attr_floats(&a, "rho", (float[]){0}, 1);
    tm_attr_strings(&a, "classlabels_strings", NAMES, 3);
    assert_int_equal(run_on_x(&r, 1, "SVMClassifier", 2, &a, KILN_FLOAT32, 4, 2, ROWS), KILN_OK);
    assert_strings(&r.out[0], (const char *const[]){"versicolor", "setosa", "setosa", "setosa"}, 4);
    tr_free(&r);
    pbw_free(&a);
}

/* ---- lookups ------------------------------------------------------------------------------------------- */

static const char *const WORDS[] = {"pear", "plum", "", "apple", "Apple"};

static void test_label_encoder_defaults_and_unknown_keys(void **state)
{
    (void)state;
    pbw a = {0};
    test_run r;
    tm_attr_strings(&a, "keys_strings", (const char *const[]){"apple", "pear"}, 2);
    tm_attr_ints(&a, "values_int64s", (int64_t[]){1, 2}, 2);
    assert_int_equal(run_on_x(&r, 2, "LabelEncoder", 1, &a, KILN_STRING, 5, -1, WORDS), KILN_OK);
    assert_memory_equal(r.out[0].data, ((int64_t[]){2, -1, -1, 1, -1}), 5 * sizeof(int64_t)); /* default -1 */
    tr_free(&r);
    pbw_free(&a);

    tm_attr_ints(&a, "keys_int64s", (int64_t[]){7, 3}, 2);
    tm_attr_strings(&a, "values_strings", (const char *const[]){"seven", "three"}, 2);
    int64_t ints[] = {3, 4, 7, -3};
    assert_int_equal(run_on_x(&r, 2, "LabelEncoder", 1, &a, KILN_INT64, 4, -1, ints), KILN_OK);
    assert_strings(&r.out[0], (const char *const[]){"three", "_Unused", "seven", "_Unused"}, 4);
    tr_free(&r);
    tm_attr_string(&a, "default_string", "none");
    assert_int_equal(run_on_x(&r, 2, "LabelEncoder", 1, &a, KILN_INT64, 4, -1, ints), KILN_OK);
    assert_strings(&r.out[0], (const char *const[]){"three", "none", "seven", "none"}, 4);
    tr_free(&r);
    pbw_free(&a);

    /* opset 1: classes_strings[k] <-> k, the direction given by the input's type */
    tm_attr_strings(&a, "classes_strings", (const char *const[]){"apple", "pear", "plum"}, 3);
    tm_attr_int(&a, "default_int64", 42);
    assert_int_equal(run_on_x(&r, 1, "LabelEncoder", 1, &a, KILN_STRING, 5, -1, WORDS), KILN_OK);
    assert_memory_equal(r.out[0].data, ((int64_t[]){1, 2, 42, 0, 42}), 5 * sizeof(int64_t));
    tr_free(&r);
    assert_int_equal(run_on_x(&r, 1, "LabelEncoder", 1, &a, KILN_INT64, 4, -1, ints), KILN_OK);
    assert_strings(&r.out[0], (const char *const[]){"_Unused", "_Unused", "_Unused", "_Unused"}, 4);
    int64_t small[] = {2, 0, 3};
    tr_free(&r);
    assert_int_equal(run_on_x(&r, 1, "LabelEncoder", 1, &a, KILN_INT64, 3, -1, small), KILN_OK);
    assert_strings(&r.out[0], (const char *const[]){"plum", "apple", "_Unused"}, 3);
    tr_free(&r);
    pbw_free(&a);
}

static void test_category_mapper_both_ways(void **state)
{
    (void)state;
    pbw a = {0};
    test_run r;
    tm_attr_strings(&a, "cats_strings", (const char *const[]){"apple", "pear", "plum"}, 3);
    tm_attr_ints(&a, "cats_int64s", (int64_t[]){10, 20, 30}, 3);
    assert_int_equal(run_on_x(&r, 1, "CategoryMapper", 1, &a, KILN_STRING, 5, -1, WORDS), KILN_OK);
    assert_memory_equal(r.out[0].data, ((int64_t[]){20, 30, -1, 10, -1}), 5 * sizeof(int64_t));
    tr_free(&r);
    int64_t ids[] = {30, 11, 10};
    assert_int_equal(run_on_x(&r, 1, "CategoryMapper", 1, &a, KILN_INT64, 3, -1, ids), KILN_OK);
    assert_strings(&r.out[0], (const char *const[]){"plum", "_Unused", "apple"}, 3);
    tr_free(&r);
    tm_attr_string(&a, "default_string", "?");
    tm_attr_int(&a, "default_int64", 0);
    assert_int_equal(run_on_x(&r, 1, "CategoryMapper", 1, &a, KILN_INT64, 3, -1, ids), KILN_OK);
    assert_strings(&r.out[0], (const char *const[]){"plum", "?", "apple"}, 3);
    tr_free(&r);
    pbw_free(&a);
}

static void test_onehot_string_categories(void **state)
{
    (void)state;
    pbw a = {0};
    test_run r;
    tm_attr_strings(&a, "cats_strings", (const char *const[]){"apple", "pear"}, 2);
    assert_int_equal(run_on_x(&r, 1, "OneHotEncoder", 1, &a, KILN_STRING, 5, -1, WORDS), KILN_OK);
    assert_memory_equal(r.out[0].data, ((float[]){0, 1, 0, 0, 0, 0, 1, 0, 0, 0}), 10 * sizeof(float));
    tr_free(&r);
    tm_attr_int(&a, "zeros", 0);
    assert_refused(run_on_x(&r, 1, "OneHotEncoder", 1, &a, KILN_STRING, 5, -1, WORDS), KILN_ERR_RUNTIME,
                   "not a known category");
    tr_free(&r);
    pbw_free(&a);
}

/* ---- ZipMap -------------------------------------------------------------------------------------------- */

static const float SCORES[] = {0.1f, 0.2f, 0.7f, 0.5f, 0.25f, 0.25f};

/* out is a sequence of `rows` maps, each with these keys and the row's scores as values. */
static void assert_maps(const kiln_tensor *out, int64_t rows, kiln_dtype key_dtype, const void *keys)
{
    assert_int_equal(out->rank, 1);
    assert_int_equal(out->dims[0], rows);
    const kiln_tensor *maps = out->data;
    for (int64_t r = 0; r < rows; r++) {
        const kiln_tensor *pair = maps[r].data;
        assert_int_equal(maps[r].dims[0], 3);
        assert_int_equal(pair[0].dtype, key_dtype);
        assert_int_equal(pair[1].dtype, KILN_FLOAT32);
        assert_int_equal(pair[0].dims[0], 3);
        assert_int_equal(pair[1].dims[0], 3);
        assert_memory_equal(pair[1].data, SCORES + 3 * r, 3 * sizeof(float));
        if (key_dtype == KILN_STRING) assert_strings(&pair[0], keys, 3);
        else assert_memory_equal(pair[0].data, keys, 3 * sizeof(int64_t));
    }
}

static void test_zipmap_int_and_string_labels(void **state)
{
    (void)state;
    pbw a = {0};
    test_run r;
    tm_attr_strings(&a, "classlabels_strings", NAMES, 3);
    assert_int_equal(run_on_x(&r, 1, "ZipMap", 1, &a, KILN_FLOAT32, 2, 3, SCORES), KILN_OK);
    assert_maps(&r.out[0], 2, KILN_STRING, NAMES);
    kiln_value_info info;
    assert_int_equal(kiln_model_output_info(r.model, 0, &info), KILN_OK);
    assert_int_equal(info.kind, KILN_VALUE_SEQUENCE);
    assert_int_equal(info.elem_kind, KILN_VALUE_MAP);
    assert_int_equal(info.key_dtype, KILN_STRING);
    assert_int_equal(info.dtype, KILN_FLOAT32);
    tr_free(&r);
    pbw_free(&a);

    int64_t labels[] = {-5, 0, 1000000000000};
    tm_attr_ints(&a, "classlabels_int64s", labels, 3);
    assert_int_equal(run_on_x(&r, 1, "ZipMap", 1, &a, KILN_FLOAT32, 2, 3, SCORES), KILN_OK);
    assert_maps(&r.out[0], 2, KILN_INT64, labels);
    /* a second run with other scores: the maps follow the new input */
    float again[6];
    memcpy(again, SCORES + 3, 3 * sizeof(float));
    memcpy(again + 3, SCORES, 3 * sizeof(float));
    assert_int_equal(kiln_session_set_input(r.session, 0, KILN_FLOAT32, 2, (int64_t[]){2, 3}, again), KILN_OK);
    assert_int_equal(kiln_session_run(r.session), KILN_OK);
    kiln_tensor out;
    assert_int_equal(kiln_session_output(r.session, 0, &out), KILN_OK);
    const kiln_tensor *maps = out.data;
    assert_memory_equal(((const kiln_tensor *)maps[1].data)[1].data, SCORES, 3 * sizeof(float));
    tr_free(&r);
    pbw_free(&a);
}

/* A classifier's named labels and ZipMap'd probabilities in one graph, as skl2onnx writes them. */
static void test_classifier_then_zipmap(void **state)
{
    (void)state;
    pbw tree = {0}, zip = {0};
    tree_attrs(&tree);
    tm_attr_strings(&tree, "classlabels_strings", NAMES, 3);
    tm_attr_strings(&zip, "classlabels_strings", NAMES, 3);
    test_run r;
    tr_init(&r, 17);
    tr_input(&r, "x", KILN_FLOAT32, 2, (int64_t[]){4, 2}, ROWS);
    pbw node = {0}; /* ZipMap on the classifier's y1, written before it: the loader sorts the graph */
    pbw_string_field(&node, 1, "y1");
    pbw_string_field(&node, 2, "probabilities");
    pbw_string_field(&node, 4, "ZipMap");
    pbw_string_field(&node, 7, "ai.onnx.ml");
    pbw_append(&node, &zip);
    pbw_message_field(&r.tm.graph, 1, &node);
    tr_output(&r, "probabilities", KILN_UNDEFINED);
    tr_ml_node(&r, 3, "TreeEnsembleClassifier", LIST("x"), 2, &tree);
    assert_int_equal(tr_run(&r, 1), KILN_OK);
    assert_strings(&r.out[1], (const char *const[]){"setosa", "setosa", "virginica", "virginica"}, 4);
    const kiln_tensor *maps = r.out[0].data;
    assert_int_equal(r.out[0].dims[0], 4);
    const kiln_tensor *first = maps[0].data;
    assert_strings(&first[0], NAMES, 3);
    assert_memory_equal(first[1].data, r.out[2].data, 3 * sizeof(float));
    tr_free(&r);
    pbw_free(&node);
    pbw_free(&tree);
    pbw_free(&zip);
}

/* ---- empty batches -------------------------------------------------------------------------------------- */

static void test_empty_batch(void **state)
{
    (void)state;
    pbw a = {0};
    test_run r;
    float none[1] = {0};
    tree_attrs(&a);
    tm_attr_strings(&a, "classlabels_strings", NAMES, 3);
    assert_int_equal(run_on_x(&r, 3, "TreeEnsembleClassifier", 2, &a, KILN_FLOAT32, 0, 2, none), KILN_OK);
    assert_int_equal(r.out[0].dims[0], 0);
    assert_int_equal(r.out[0].dtype, KILN_STRING);
    tr_free(&r);
    pbw_free(&a);
    tm_attr_strings(&a, "classlabels_strings", NAMES, 3);
    assert_int_equal(run_on_x(&r, 1, "ZipMap", 1, &a, KILN_FLOAT32, 0, 3, none), KILN_OK);
    assert_int_equal(r.out[0].dims[0], 0);
    assert_non_null(r.out[0].data);
    tr_free(&r);
    pbw_free(&a);
    tm_attr_strings(&a, "keys_strings", (const char *const[]){"a"}, 1);
    tm_attr_ints(&a, "values_int64s", (int64_t[]){1}, 1);
    const char *no_words[1] = {""};
    assert_int_equal(run_on_x(&r, 2, "LabelEncoder", 1, &a, KILN_STRING, 0, -1, no_words), KILN_OK);
    assert_int_equal(r.out[0].dims[0], 0);
    tr_free(&r);
    pbw_free(&a);
}

/* ---- refusals -------------------------------------------------------------------------------------------- */

static void test_bad_label_attributes_are_refused_at_load(void **state)
{
    (void)state;
    pbw a = {0};
    /* both kinds of labels */
    tm_attr_floats(&a, "coefficients", (float[]){1, 0, 0, 1}, 4);
    tm_attr_floats(&a, "intercepts", (float[]){0, 0}, 2);
    tm_attr_strings(&a, "classlabels_strings", (const char *const[]){"a", "b"}, 2);
    tm_attr_ints(&a, "classlabels_ints", (int64_t[]){0, 1}, 2);
    assert_refused(load_on_x(1, "LinearClassifier", 2, &a, KILN_FLOAT32), KILN_ERR_MALFORMED, "both given");
    pbw_free(&a);
    /* three names for two rows of coefficients */
    tm_attr_floats(&a, "coefficients", (float[]){1, 0, 0, 1}, 4);
    tm_attr_floats(&a, "intercepts", (float[]){0, 0}, 2);
    tm_attr_strings(&a, "classlabels_strings", NAMES, 3);
    assert_refused(load_on_x(1, "LinearClassifier", 2, &a, KILN_FLOAT32), KILN_ERR_MALFORMED, "same length");
    pbw_free(&a);
    /* one name for a tree with three classes of weights */
    tree_attrs(&a);
    tm_attr_strings(&a, "classlabels_strings", (const char *const[]){"only"}, 1);
    assert_refused(load_on_x(3, "TreeEnsembleClassifier", 2, &a, KILN_FLOAT32), KILN_ERR_MALFORMED, "at least 2");
    pbw_free(&a);
    tree_attrs(&a);
    tm_attr_strings(&a, "classlabels_strings", (const char *const[]){"a", "b"}, 2);
    assert_refused(load_on_x(3, "TreeEnsembleClassifier", 2, &a, KILN_FLOAT32), KILN_ERR_MALFORMED, "");
    pbw_free(&a);
    /* SVM: vectors_per_class for two classes, three names */
    tm_attr_floats(&a, "coefficients", (float[]){1, 1}, 2);
    tm_attr_floats(&a, "rho", (float[]){0, 0, 0}, 3);
    tm_attr_floats(&a, "support_vectors", (float[]){1, 2, 3, 4}, 4);
    tm_attr_ints(&a, "vectors_per_class", (int64_t[]){1, 1}, 2);
    tm_attr_strings(&a, "classlabels_strings", NAMES, 3);
    assert_refused(load_on_x(1, "SVMClassifier", 2, &a, KILN_FLOAT32), KILN_ERR_MALFORMED, "same length");
    pbw_free(&a);
    /* ZipMap: both label lists, none, or a non-float input */
    tm_attr_strings(&a, "classlabels_strings", NAMES, 3);
    tm_attr_ints(&a, "classlabels_int64s", (int64_t[]){1, 2, 3}, 3);
    assert_refused(load_on_x(1, "ZipMap", 1, &a, KILN_FLOAT32), KILN_ERR_MALFORMED, "exactly one");
    pbw_free(&a);
    tm_attr_strings(&a, "classlabels_strings", NAMES, 3);
    assert_refused(load_on_x(1, "ZipMap", 1, &a, KILN_INT64), KILN_ERR_UNSUPPORTED, "int64");
    pbw_free(&a);
    /* LabelEncoder: lengths, repeated string keys, a key list of each kind */
    tm_attr_strings(&a, "keys_strings", (const char *const[]){"a", "b"}, 2);
    tm_attr_ints(&a, "values_int64s", (int64_t[]){1}, 1);
    assert_refused(load_on_x(2, "LabelEncoder", 1, &a, KILN_STRING), KILN_ERR_MALFORMED, "same length");
    pbw_free(&a);
    tm_attr_strings(&a, "keys_strings", (const char *const[]){"a", "a"}, 2);
    tm_attr_ints(&a, "values_int64s", (int64_t[]){1, 2}, 2);
    assert_refused(load_on_x(2, "LabelEncoder", 1, &a, KILN_STRING), KILN_ERR_MALFORMED, "'a' twice");
    assert_refused(load_on_x(2, "LabelEncoder", 1, &a, KILN_INT64), KILN_ERR_UNSUPPORTED, "int64");
    pbw_free(&a);
    /* CategoryMapper: a float input */
    tm_attr_strings(&a, "cats_strings", (const char *const[]){"a"}, 1);
    tm_attr_ints(&a, "cats_int64s", (int64_t[]){1}, 1);
    assert_refused(load_on_x(1, "CategoryMapper", 1, &a, KILN_FLOAT32), KILN_ERR_UNSUPPORTED, "float32");
    pbw_free(&a);
}

/* ZipMap's width is checked when the input's shape is known. */
static void test_zipmap_width_mismatch_fails_cleanly(void **state)
{
    (void)state;
    pbw a = {0};
    test_run r;
    tm_attr_strings(&a, "classlabels_strings", NAMES, 3);
    assert_refused(run_on_x(&r, 1, "ZipMap", 1, &a, KILN_FLOAT32, 3, 2, SCORES), TEST_ANY_ERROR, "2 columns");
    tr_free(&r);
    pbw_free(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tree_string_labels_match_integer_labels),
        cmocka_unit_test(test_tree_binary_case_names_both_classes),
        cmocka_unit_test(test_linear_and_svm_string_labels),
        cmocka_unit_test(test_label_encoder_defaults_and_unknown_keys),
        cmocka_unit_test(test_category_mapper_both_ways),
        cmocka_unit_test(test_onehot_string_categories),
        cmocka_unit_test(test_zipmap_int_and_string_labels),
        cmocka_unit_test(test_classifier_then_zipmap),
        cmocka_unit_test(test_empty_batch),
        cmocka_unit_test(test_bad_label_attributes_are_refused_at_load),
        cmocka_unit_test(test_zipmap_width_mismatch_fails_cleanly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
