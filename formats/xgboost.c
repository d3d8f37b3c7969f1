/*
 * xgboost.c — XGBoost models saved by Booster.save_model() as JSON or UBJSON, schema 1.x and 2.x.
 *
 * Both encodings are parsed into one document (formats/json.h) and read here into a tree_schema in
 * XGBoost's own terms; the engine (kernels/tree_ensemble.h) canonicalises the splits and validates the
 * structure. What the schema says is what XGBoost's CPU predictor does (src/predictor/cpu_predictor.cc,
 * predict_fn.h, common/categorical.h), checked against libxgboost 1.7.4 by tests/ml/xgboost:
 *
 *   - a numeric split sends float32 x LEFT when x < split_condition; a missing value (NaN) goes to the
 *     default child (default_left);
 *   - a categorical split (split_type 1) sends x RIGHT when its category — x truncated toward zero — is in
 *     the node's set, and LEFT otherwise, including for x < 0 (even -0.5) and categories past the set; NaN
 *     goes to the default child;
 *   - a leaf's value is its split_condition; the margin starts at the base score in margin space and adds each
 *     tree's leaf value in float32, in tree order, to output group tree_info[tree]; dart multiplies each
 *     tree's leaf value by its weight_drop in float32 first;
 *   - base_score is stored in the objective's output space and turned into a margin the way the objective's
 *     ProbToMargin does, in float32: -logf(1/b - 1) for the logistic objectives, logf(b) for the ones whose
 *     prediction is exp(margin), b itself otherwise.
 *
 * Binary objectives become classifiers (label, [1-p, p]), multi:softprob/softmax classifiers with softmax
 * probabilities, everything else regressors with one output per target (so do binary objectives with several
 * targets: one probability per label). Things the engine cannot express
 * are refused by name: gblinear boosters, vector-leaf trees (multi_strategy="multi_output_tree"), unknown
 * objectives.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "formats/json.h"
#include "formats/tree_loaders.h"
#include "formats/ubjson.h"
#include "kernels/tree_ensemble.h"

/* ---- objectives ---------------------------------------------------------------------------------------- */

typedef enum base_space { BASE_MARGIN, BASE_PROBABILITY, BASE_POSITIVE } base_space;
typedef enum output_kind { OUTPUT_REGRESSION, OUTPUT_BINARY, OUTPUT_MULTICLASS } output_kind;

typedef struct xgb_objective {
    const char *name;
    tree_schema_transform transform;
    base_space base;   /* how base_score becomes a margin: as is, logit, log */
    output_kind output;
} xgb_objective;

/* binary:logitraw predicts the margin itself; as a classifier its probabilities are the logistic of it (what
 * `kiln run --raw` returns is XGBoost's own prediction). */
static const xgb_objective objectives[] = {
    {"binary:logistic", TREE_TRANSFORM_LOGISTIC, BASE_PROBABILITY, OUTPUT_BINARY},
    {"binary:logitraw", TREE_TRANSFORM_LOGISTIC, BASE_MARGIN, OUTPUT_BINARY},
    {"binary:hinge", TREE_TRANSFORM_HINGE, BASE_MARGIN, OUTPUT_BINARY},
    {"multi:softprob", TREE_TRANSFORM_SOFTMAX, BASE_MARGIN, OUTPUT_MULTICLASS},
    {"multi:softmax", TREE_TRANSFORM_SOFTMAX, BASE_MARGIN, OUTPUT_MULTICLASS},
    {"reg:logistic", TREE_TRANSFORM_LOGISTIC, BASE_PROBABILITY, OUTPUT_REGRESSION},
    {"reg:squarederror", TREE_TRANSFORM_NONE, BASE_MARGIN, OUTPUT_REGRESSION},
    {"reg:linear", TREE_TRANSFORM_NONE, BASE_MARGIN, OUTPUT_REGRESSION},
    {"reg:squaredlogerror", TREE_TRANSFORM_NONE, BASE_MARGIN, OUTPUT_REGRESSION},
    {"reg:pseudohubererror", TREE_TRANSFORM_NONE, BASE_MARGIN, OUTPUT_REGRESSION},
    {"reg:absoluteerror", TREE_TRANSFORM_NONE, BASE_MARGIN, OUTPUT_REGRESSION},
    {"reg:quantileerror", TREE_TRANSFORM_NONE, BASE_MARGIN, OUTPUT_REGRESSION},
    {"count:poisson", TREE_TRANSFORM_EXP, BASE_POSITIVE, OUTPUT_REGRESSION},
    {"reg:gamma", TREE_TRANSFORM_EXP, BASE_POSITIVE, OUTPUT_REGRESSION},
    {"reg:tweedie", TREE_TRANSFORM_EXP, BASE_POSITIVE, OUTPUT_REGRESSION},
    {"survival:cox", TREE_TRANSFORM_EXP, BASE_POSITIVE, OUTPUT_REGRESSION},
    {"survival:aft", TREE_TRANSFORM_EXP, BASE_POSITIVE, OUTPUT_REGRESSION},
    {"rank:pairwise", TREE_TRANSFORM_NONE, BASE_MARGIN, OUTPUT_REGRESSION},
    {"rank:ndcg", TREE_TRANSFORM_NONE, BASE_MARGIN, OUTPUT_REGRESSION},
    {"rank:map", TREE_TRANSFORM_NONE, BASE_MARGIN, OUTPUT_REGRESSION},
};

static const xgb_objective *find_objective(const json_value *name)
{
    for (size_t i = 0; i < sizeof objectives / sizeof objectives[0]; i++)
        if (json_string_is(name, objectives[i].name)) return &objectives[i];
    return NULL;
}

/* ---- reading the document ------------------------------------------------------------------------------ */

static kiln_status require(const json_value *parent, const char *key, json_type type, const json_value **out)
{
    const json_value *v = json_get(parent, key);
    if (!v) return kiln_fail(KILN_ERR_MALFORMED, "'%s' is missing", key);
    if (v->type != type)
        return kiln_fail(KILN_ERR_MALFORMED, "byte %zu: '%s' should be %s, not %s", v->offset, key,
                         json_type_name(type), json_type_name((json_type)v->type));
    *out = v;
    return KILN_OK;
}

#define REQUIRED INT64_MIN /* a parameter's fallback when it must be present */

/* XGBoost writes parameters as strings ("num_feature": "30"); numbers are accepted too. */
static kiln_status read_integer_param(const json_value *parent, const char *key, int64_t fallback, int64_t *out)
{
    const json_value *v = json_get(parent, key);
    if (!v && fallback == REQUIRED) return kiln_fail(KILN_ERR_MALFORMED, "'%s' is missing", key);
    if (!v) return *out = fallback, KILN_OK;
    if (v->type != JSON_STRING) {
        kiln_status st = json_to_int64(v, out);
        return st == KILN_OK ? KILN_OK : kiln_fail_prefix(st, "'%s'", key);
    }
    json_value number = *v;
    number.type = JSON_NUMBER;
    number.encoding = JSON_ENC_TEXT;
    if (json_to_int64(&number, out) != KILN_OK)
        return kiln_fail(KILN_ERR_MALFORMED, "byte %zu: '%s' is \"%.*s\", not an integer", v->offset, key,
                         (int)(v->length < 40 ? v->length : 40), (const char *)v->data);
    return KILN_OK;
}

static kiln_status read_bounded_param(const json_value *parent, const char *key, int64_t fallback, int64_t min,
                                      int64_t max, int32_t *out)
{
    int64_t v;
    KILN_TRY(read_integer_param(parent, key, fallback, &v));
    if (v < min || v > max)
        return kiln_fail(KILN_ERR_MALFORMED, "'%s' is %lld, it must be within %lld..%lld", key, (long long)v,
                         (long long)min, (long long)max);
    *out = (int32_t)v;
    return KILN_OK;
}

static kiln_status element_int(const json_value *array, const char *name, size_t i, int64_t *out)
{
    json_value v;
    json_array_at(array, i, &v);
    kiln_status st = json_to_int64(&v, out);
    return st == KILN_OK ? KILN_OK : kiln_fail_prefix(st, "%s[%zu]", name, i);
}

static kiln_status element_float(const json_value *array, const char *name, size_t i, float *out)
{
    json_value v;
    json_array_at(array, i, &v);
    kiln_status st = json_to_float(&v, out);
    return st == KILN_OK ? KILN_OK : kiln_fail_prefix(st, "%s[%zu]", name, i);
}

/* default_left: 0/1 (1.x JSON and UBJSON's uint8 arrays) or false/true (older JSON). */
static kiln_status element_flag(const json_value *array, const char *name, size_t i, bool *out)
{
    json_value v;
    json_array_at(array, i, &v);
    if (v.type == JSON_TRUE || v.type == JSON_FALSE) return *out = v.type == JSON_TRUE, KILN_OK;
    int64_t flag;
    KILN_TRY(element_int(array, name, i, &flag));
    if (flag != 0 && flag != 1)
        return kiln_fail(KILN_ERR_MALFORMED, "%s[%zu] is %lld, not 0 or 1", name, i, (long long)flag);
    *out = flag == 1;
    return KILN_OK;
}

/* An array of exactly n elements (n < 0: any length). */
static kiln_status require_array(const json_value *parent, const char *key, int64_t n, const json_value **out)
{
    KILN_TRY(require(parent, key, JSON_ARRAY, out));
    if (n >= 0 && (*out)->length != (size_t)n)
        return kiln_fail(KILN_ERR_MALFORMED, "'%s' has %zu elements, %lld expected", key, (*out)->length, (long long)n);
    return KILN_OK;
}

/* ---- the model's parameters ---------------------------------------------------------------------------- */

typedef struct xgb_model {
    const json_value *learner, *booster_model, *trees, *tree_info;
    const json_value *weight_drop; /* dart only */
    const xgb_objective *objective;
    const json_value *objective_name, *booster_name;
    int32_t n_features, n_groups, n_trees;
} xgb_model;

/* Finds the tree list: learner.gradient_booster.model (gbtree) or .gbtree.model (dart). */
static kiln_status read_booster(xgb_model *m)
{
    const json_value *booster = NULL, *model = NULL;
    KILN_TRY(require(m->learner, "gradient_booster", JSON_OBJECT, &booster));
    KILN_TRY(require(booster, "name", JSON_STRING, &m->booster_name));
    if (json_string_is(m->booster_name, "dart")) {
        const json_value *gbtree = NULL;
        KILN_TRY(require(booster, "gbtree", JSON_OBJECT, &gbtree));
        KILN_TRY(require(gbtree, "model", JSON_OBJECT, &model));
        KILN_TRY(require(booster, "weight_drop", JSON_ARRAY, &m->weight_drop));
    } else if (json_string_is(m->booster_name, "gbtree")) {
        KILN_TRY(require(booster, "model", JSON_OBJECT, &model));
    } else {
        return kiln_fail(KILN_ERR_UNSUPPORTED, "the '%.*s' booster is not supported (only gbtree and dart: kiln runs "
                         "tree models)", (int)m->booster_name->length, (const char *)m->booster_name->data);
    }
    m->booster_model = model;
    KILN_TRY(require(model, "trees", JSON_ARRAY, &m->trees));
    if (m->trees->length > INT32_MAX / 2) return kiln_fail(KILN_ERR_UNSUPPORTED, "the model has too many trees");
    m->n_trees = (int32_t)m->trees->length;
    KILN_TRY(require_array(model, "tree_info", m->n_trees, &m->tree_info));
    if (m->weight_drop && m->weight_drop->length != (size_t)m->n_trees)
        return kiln_fail(KILN_ERR_MALFORMED, "'weight_drop' has %zu weights for %d trees", m->weight_drop->length,
                         m->n_trees);
    const json_value *param = json_get(model, "gbtree_model_param");
    int64_t declared;
    KILN_TRY(read_integer_param(param, "num_trees", m->n_trees, &declared));
    if (declared != m->n_trees)
        return kiln_fail(KILN_ERR_MALFORMED, "'num_trees' is %lld but the model holds %d trees", (long long)declared,
                         m->n_trees);
    return KILN_OK;
}

static kiln_status read_learner(const json_value *root, xgb_model *m)
{
    const json_value *param = NULL, *objective = NULL;
    if (root->type != JSON_OBJECT) return kiln_fail(KILN_ERR_MALFORMED, "an XGBoost model is an object, not %s",
                                                   json_type_name((json_type)root->type));
    KILN_TRY(require(root, "learner", JSON_OBJECT, &m->learner));
    KILN_TRY(require(m->learner, "learner_model_param", JSON_OBJECT, &param));
    KILN_TRY(require(m->learner, "objective", JSON_OBJECT, &objective));
    KILN_TRY(require(objective, "name", JSON_STRING, &m->objective_name));
    m->objective = find_objective(m->objective_name);
    if (!m->objective)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "objective '%.*s' is not supported", (int)m->objective_name->length,
                         (const char *)m->objective_name->data);
    KILN_TRY(read_bounded_param(param, "num_feature", REQUIRED, 1, TREE_MAX_FEATURES, &m->n_features));
    int32_t n_classes, n_targets;
    KILN_TRY(read_bounded_param(param, "num_class", 0, 0, TREE_MAX_TARGETS, &n_classes));
    KILN_TRY(read_bounded_param(param, "num_target", 1, 1, TREE_MAX_TARGETS, &n_targets));
    m->n_groups = n_classes > n_targets ? n_classes : n_targets; /* XGBoost's num_output_group */
    if (m->objective->output == OUTPUT_MULTICLASS && (n_classes < 2 || n_targets != 1))
        return kiln_fail(KILN_ERR_MALFORMED, "%s needs num_class >= 2 and one target, not %d classes and %d targets",
                         m->objective->name, n_classes, n_targets);
    if (m->objective->output != OUTPUT_MULTICLASS && n_classes > 1)
        return kiln_fail(KILN_ERR_MALFORMED, "num_class is %d for objective %s", n_classes, m->objective->name);
    return read_booster(m);
}

/* base_score: "5E-1" (1.x), "[5E-1]" or "[5E-1,2E-1]" (2.x vector intercepts) or a number; in the objective's
 * output space. Returns one margin per output group (allocated in mem; `doc` holds the parsed string). */
static kiln_status read_base_margins(const xgb_model *m, region *doc, region *mem, double **out)
{
    const json_value *param = json_get(m->learner, "learner_model_param");
    const json_value *text = json_get(param, "base_score");
    json_value parsed = {.type = JSON_NUMBER, .encoding = JSON_ENC_TEXT, .data = "0.5", .length = 3};
    if (text && text->type == JSON_STRING) {
        kiln_status st = json_parse(text->data, text->length, doc, &parsed);
        if (st != KILN_OK) return kiln_fail_prefix(st, "base_score");
    } else if (text) {
        parsed = *text;
    }
    bool is_list = parsed.type == JSON_ARRAY;
    if (is_list && parsed.length != 1 && parsed.length != (size_t)m->n_groups)
        return kiln_fail(KILN_ERR_MALFORMED, "base_score has %zu values for %d outputs", parsed.length, m->n_groups);
    double *margins = region_alloc(mem, (size_t)m->n_groups, sizeof *margins);
    if (!margins) return KILN_ERR_OUT_OF_MEMORY;
    for (int32_t g = 0; g < m->n_groups; g++) {
        json_value v = parsed;
        if (is_list) json_array_at(&parsed, parsed.length == 1 ? 0 : (size_t)g, &v);
        float b;
        kiln_status st = json_to_float(&v, &b);
        if (st != KILN_OK) return kiln_fail_prefix(st, "base_score");
        float margin = m->objective->base == BASE_PROBABILITY ? -logf(1.0f / b - 1.0f)
                     : m->objective->base == BASE_POSITIVE  ? logf(b)
                                                            : b;
        if (!isfinite(margin))
            return kiln_fail(KILN_ERR_MALFORMED, "base_score %g has no finite margin for %s", (double)b,
                             m->objective->name);
        margins[g] = margin;
    }
    *out = margins;
    return KILN_OK;
}

/* ---- trees --------------------------------------------------------------------------------------------- */

/* The schema's arrays while they are filled (the schema itself holds const pointers). */
typedef struct schema_builder {
    int32_t *roots, *kind, *feature, *compare, *missing, *zero_missing, *true_child, *false_child;
    int32_t *category_first, *category_count, *leaf_first, *leaf_count, *leaf_targets;
    double *threshold, *leaf_weights;
    int32_t n_nodes, n_leaves;
    uint32_t *words; /* category bitsets, grown on the heap, copied to the region at the end */
    size_t n_words, words_capacity;
} schema_builder;

typedef struct tree_arrays {
    const json_value *left, *right, *feature, *condition, *default_left, *split_type;
    const json_value *category_nodes, *category_segments, *category_sizes, *categories; /* with categorical splits */
    size_t next_category; /* index into category_nodes of the next categorical node */
} tree_arrays;

/* num_nodes, checked against the length of left_children so that the node count, and with it every
 * allocation, is bounded by the document's size. */
static kiln_status tree_node_count(const json_value *tree, int32_t *out)
{
    const json_value *param = NULL, *left = NULL;
    KILN_TRY(require(tree, "tree_param", JSON_OBJECT, &param));
    int64_t leaf_vector;
    KILN_TRY(read_integer_param(param, "size_leaf_vector", 0, &leaf_vector));
    if (leaf_vector > 1)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "vector-leaf trees (size_leaf_vector %lld, multi_strategy="
                         "\"multi_output_tree\") are not supported", (long long)leaf_vector);
    KILN_TRY(read_bounded_param(param, "num_nodes", REQUIRED, 1, INT32_MAX / 2, out));
    return require_array(tree, "left_children", *out, &left);
}

static kiln_status find_tree_arrays(const json_value *tree, int32_t n, tree_arrays *a)
{
    memset(a, 0, sizeof *a);
    KILN_TRY(require_array(tree, "left_children", n, &a->left));
    KILN_TRY(require_array(tree, "right_children", n, &a->right));
    KILN_TRY(require_array(tree, "split_indices", n, &a->feature));
    KILN_TRY(require_array(tree, "split_conditions", n, &a->condition));
    KILN_TRY(require_array(tree, "default_left", n, &a->default_left));
    if (!json_get(tree, "split_type")) return KILN_OK; /* before categorical support: all numeric */
    KILN_TRY(require_array(tree, "split_type", n, &a->split_type));
    KILN_TRY(require_array(tree, "categories_nodes", -1, &a->category_nodes));
    KILN_TRY(require_array(tree, "categories_segments", (int64_t)a->category_nodes->length, &a->category_segments));
    KILN_TRY(require_array(tree, "categories_sizes", (int64_t)a->category_nodes->length, &a->category_sizes));
    return require_array(tree, "categories", -1, &a->categories);
}

/* Category bitsets are held to 64 MiB in all, so that a small hostile file cannot ask for much more memory
 * (one category near 2^24 needs 2 MiB) than a real model of its size. */
#define XGB_MAX_CATEGORY_WORDS (1u << 24)

static kiln_status push_word(schema_builder *b, uint32_t word)
{
    if (b->n_words >= XGB_MAX_CATEGORY_WORDS)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "the categorical splits' sets need more than 64 MiB");
    if (b->n_words == b->words_capacity) {
        size_t capacity = b->words_capacity ? 2 * b->words_capacity : 64;
        uint32_t *grown = mem_realloc(b->words, capacity * sizeof *grown);
        if (!grown) return KILN_ERR_OUT_OF_MEMORY;
        b->words = grown;
        b->words_capacity = capacity;
    }
    b->words[b->n_words++] = word;
    return KILN_OK;
}

/* Largest category XGBoost can match: its float input holds integers exactly only below 2^24. */
#define XGB_MAX_CATEGORY ((1 << 24) - 1)

/* The category set of node i, when categories_nodes lists it next (XGBoost's loader walks both in
 * increasing order; a categorical node it does not list has an empty set). Appends a bitset to b->words. */
static kiln_status read_category_set(schema_builder *b, tree_arrays *a, int32_t i, int32_t global)
{
    b->category_first[global] = (int32_t)b->n_words;
    b->category_count[global] = 0;
    int64_t listed = -1, begin, size;
    if (a->next_category < a->category_nodes->length)
        KILN_TRY(element_int(a->category_nodes, "categories_nodes", a->next_category, &listed));
    if (listed != i) return KILN_OK;
    size_t k = a->next_category++;
    KILN_TRY(element_int(a->category_segments, "categories_segments", k, &begin));
    KILN_TRY(element_int(a->category_sizes, "categories_sizes", k, &size));
    size_t available = a->categories->length;
    if (begin < 0 || size < 1 || (uint64_t)begin > available || (uint64_t)size > available - (uint64_t)begin)
        return kiln_fail(KILN_ERR_MALFORMED, "node %d: %lld categories from index %lld do not fit in the %zu "
                         "categories", i, (long long)size, (long long)begin, available);
    size_t first_word = b->n_words;
    for (int64_t j = begin; j < begin + size; j++) {
        int64_t category;
        KILN_TRY(element_int(a->categories, "categories", (size_t)j, &category));
        if (category < 0 || category > XGB_MAX_CATEGORY)
            return kiln_fail(KILN_ERR_MALFORMED, "node %d: category %lld is outside 0..%d", i, (long long)category,
                             XGB_MAX_CATEGORY);
        size_t word = first_word + (size_t)category / 32;
        while (b->n_words <= word) KILN_TRY(push_word(b, 0));
        b->words[word] |= 1u << (category % 32);
    }
    b->category_count[global] = (int32_t)(b->n_words - first_word);
    return KILN_OK;
}

static kiln_status read_leaf(schema_builder *b, const tree_arrays *a, int32_t i, int32_t global, int32_t group,
                             float drop_weight)
{
    float value;
    KILN_TRY(element_float(a->condition, "split_conditions", (size_t)i, &value));
    b->kind[global] = TREE_SCHEMA_LEAF;
    b->true_child[global] = b->false_child[global] = global;
    b->leaf_first[global] = b->n_leaves;
    b->leaf_count[global] = 1;
    b->leaf_targets[b->n_leaves] = group;
    b->leaf_weights[b->n_leaves++] = value * drop_weight; /* in float32, as dart weighs each tree */
    return KILN_OK;
}

static kiln_status read_split(schema_builder *b, tree_arrays *a, int32_t i, int32_t first, int32_t n,
                              int64_t left, int32_t n_features)
{
    int32_t global = first + i;
    int64_t right, feature, split_type = 0;
    float condition = 0;
    bool default_left = false;
    KILN_TRY(element_int(a->right, "right_children", (size_t)i, &right));
    KILN_TRY(element_int(a->feature, "split_indices", (size_t)i, &feature));
    KILN_TRY(element_float(a->condition, "split_conditions", (size_t)i, &condition));
    KILN_TRY(element_flag(a->default_left, "default_left", (size_t)i, &default_left));
    if (a->split_type) KILN_TRY(element_int(a->split_type, "split_type", (size_t)i, &split_type));
    if (left < 0 || left >= n || right < 0 || right >= n)
        return kiln_fail(KILN_ERR_MALFORMED, "node %d: children %lld and %lld are not both among the tree's %d nodes",
                         i, (long long)left, (long long)right, n);
    if (feature < 0 || feature >= n_features)
        return kiln_fail(KILN_ERR_MALFORMED, "node %d: split feature %lld is beyond the model's %d features "
                         "(num_feature)", i, (long long)feature, n_features);
    if (split_type != 0 && split_type != 1)
        return kiln_fail(KILN_ERR_MALFORMED, "node %d: split_type %lld is neither numeric (0) nor categorical (1)", i,
                         (long long)split_type);
    bool categorical = split_type == 1;
    b->feature[global] = (int32_t)feature;
    b->compare[global] = TREE_CMP_LT;
    b->threshold[global] = condition;
    /* numeric: x < condition is true and goes left; categorical: "in the set" is true and goes right */
    b->kind[global] = categorical ? TREE_SCHEMA_CATEGORICAL : TREE_SCHEMA_NUMERIC;
    b->true_child[global] = first + (int32_t)(categorical ? right : left);
    b->false_child[global] = first + (int32_t)(categorical ? left : right);
    b->missing[global] = default_left != categorical ? TREE_MISSING_TRUE : TREE_MISSING_FALSE;
    return categorical ? read_category_set(b, a, i, global) : KILN_OK;
}

static kiln_status read_tree(schema_builder *b, const xgb_model *m, int32_t t)
{
    json_value tree;
    json_array_at(m->trees, (size_t)t, &tree);
    if (tree.type != JSON_OBJECT) return kiln_fail(KILN_ERR_MALFORMED, "a tree should be an object");
    int32_t n, first = b->n_nodes;
    KILN_TRY(tree_node_count(&tree, &n));
    tree_arrays a;
    KILN_TRY(find_tree_arrays(&tree, n, &a));
    int64_t group;
    float drop_weight = 1.0f;
    KILN_TRY(element_int(m->tree_info, "tree_info", (size_t)t, &group));
    if (group < 0 || group >= m->n_groups)
        return kiln_fail(KILN_ERR_MALFORMED, "tree_info[%d] is %lld, the model has %d output groups", t,
                         (long long)group, m->n_groups);
    if (m->weight_drop) KILN_TRY(element_float(m->weight_drop, "weight_drop", (size_t)t, &drop_weight));
    b->roots[t] = first;
    for (int32_t i = 0; i < n; i++) {
        int64_t left;
        KILN_TRY(element_int(a.left, "left_children", (size_t)i, &left));
        if (left == -1) KILN_TRY(read_leaf(b, &a, i, first + i, (int32_t)group, drop_weight)); /* XGBoost's IsLeaf */
        else KILN_TRY(read_split(b, &a, i, first, n, left, m->n_features));
    }
    if (a.category_nodes && a.next_category != a.category_nodes->length)
        return kiln_fail(KILN_ERR_MALFORMED, "categories_nodes lists nodes that are not categorical splits, or out of "
                         "order");
    b->n_nodes += n;
    return KILN_OK;
}

/* Counts every tree's nodes first, so the schema's arrays are allocated once. */
static kiln_status count_nodes(const xgb_model *m, int64_t *total)
{
    *total = 0;
    for (int32_t t = 0; t < m->n_trees; t++) {
        json_value tree;
        json_array_at(m->trees, (size_t)t, &tree);
        int32_t n;
        kiln_status st = tree.type == JSON_OBJECT ? tree_node_count(&tree, &n)
                                                  : kiln_fail(KILN_ERR_MALFORMED, "a tree should be an object");
        if (st != KILN_OK) return kiln_fail_prefix(st, "tree %d", t);
        *total += n;
        if (*total > INT32_MAX / 2) return kiln_fail(KILN_ERR_UNSUPPORTED, "the model has too many nodes");
    }
    return KILN_OK;
}

static kiln_status allocate_builder(schema_builder *b, region *mem, int32_t n_trees, int32_t n_nodes)
{
    int32_t **ints[] = {&b->kind, &b->feature, &b->compare, &b->missing, &b->zero_missing, &b->true_child,
                        &b->false_child, &b->category_first, &b->category_count, &b->leaf_first, &b->leaf_count,
                        &b->leaf_targets};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if (!(*ints[i] = region_alloc(mem, (size_t)n_nodes, sizeof(int32_t)))) return KILN_ERR_OUT_OF_MEMORY;
    b->roots = region_alloc(mem, (size_t)n_trees + 1, sizeof *b->roots);
    b->threshold = region_alloc(mem, (size_t)n_nodes, sizeof *b->threshold);
    b->leaf_weights = region_alloc(mem, (size_t)n_nodes, sizeof *b->leaf_weights);
    return b->roots && b->threshold && b->leaf_weights ? KILN_OK : KILN_ERR_OUT_OF_MEMORY;
}

static kiln_status read_trees(const xgb_model *m, region *mem, schema_builder *b)
{
    int64_t total;
    KILN_TRY(count_nodes(m, &total));
    KILN_TRY(allocate_builder(b, mem, m->n_trees, (int32_t)total));
    for (int32_t t = 0; t < m->n_trees; t++) {
        kiln_status st = read_tree(b, m, t);
        if (st != KILN_OK) return kiln_fail_prefix(st, "tree %d", t);
    }
    return KILN_OK;
}

/* ---- the schema ---------------------------------------------------------------------------------------- */

static void set_outputs(const xgb_model *m, tree_schema *s)
{
    s->n_features = m->n_features;
    s->n_targets = m->n_groups;
    s->transform = m->objective->transform;
    s->sigmoid_scale = 1.0;
    s->sum_in_float32 = true;
    s->categories_nonnegative = true;
    s->aggregate = TREE_AGG_SUM;
    if (m->objective->output == OUTPUT_MULTICLASS) s->classifier = true, s->n_classes = m->n_groups;
    if (m->objective->output == OUTPUT_BINARY && m->n_groups == 1) s->classifier = true, s->n_classes = 2;
}

static kiln_status describe_source(const json_value *root, const xgb_model *m, region *mem, tree_schema *s)
{
    const json_value *version = json_get(root, "version");
    char release[64] = "";
    if (version && version->type == JSON_ARRAY && version->length == 3) {
        int64_t part[3];
        for (size_t i = 0; i < 3; i++) KILN_TRY(element_int(version, "version", i, &part[i]));
        snprintf(release, sizeof release, " %lld.%lld.%lld", (long long)part[0], (long long)part[1],
                 (long long)part[2]);
    }
    s->source = region_printf(mem, "xgboost%s %s%s, %d tree%s", release, m->weight_drop ? "dart " : "",
                              m->objective->name, m->n_trees, m->n_trees == 1 ? "" : "s");
    return s->source ? KILN_OK : KILN_ERR_OUT_OF_MEMORY;
}

static kiln_status build_schema(const json_value *root, region *doc, region *mem, tree_schema *s)
{
    xgb_model m = {0};
    schema_builder b = {0};
    KILN_TRY(read_learner(root, &m));
    double *base_values = NULL;
    KILN_TRY(read_base_margins(&m, doc, mem, &base_values));
    kiln_status st = read_trees(&m, mem, &b);
    uint32_t *words = NULL;
    if (st == KILN_OK && b.n_words) {
        words = region_alloc(mem, b.n_words, sizeof *words);
        if (words) memcpy(words, b.words, b.n_words * sizeof *words);
        else st = KILN_ERR_OUT_OF_MEMORY;
    }
    mem_free(b.words);
    KILN_TRY(st);
    memset(s, 0, sizeof *s);
    set_outputs(&m, s);
    s->n_trees = m.n_trees;
    s->n_nodes = b.n_nodes;
    s->tree_roots = b.roots;
    s->nodes_kind = b.kind;
    s->nodes_feature = b.feature;
    s->nodes_compare = b.compare;
    s->nodes_threshold = b.threshold;
    s->nodes_missing = b.missing;
    s->nodes_zero_missing = b.zero_missing;
    s->nodes_true = b.true_child;
    s->nodes_false = b.false_child;
    s->nodes_category_first = words ? b.category_first : NULL;
    s->nodes_category_count = words ? b.category_count : NULL;
    s->category_words = words;
    s->n_category_words = (int32_t)b.n_words;
    s->nodes_leaf_first = b.leaf_first;
    s->nodes_leaf_count = b.leaf_count;
    s->leaf_targets = b.leaf_targets;
    s->leaf_weights = b.leaf_weights;
    s->n_leaf_weights = b.n_leaves;
    s->base_values = base_values;
    return describe_source(root, &m, mem, s);
}

kiln_status xgboost_read(const uint8_t *data, size_t size, bool ubjson, region *mem, tree_schema *schema)
{
    region doc;
    region_init(&doc);
    json_value root;
    kiln_status st = ubjson ? ubjson_parse(data, size, &doc, &root) : json_parse(data, size, &doc, &root);
    if (st == KILN_OK) st = build_schema(&root, &doc, mem, schema);
    region_free(&doc);
    if (st != KILN_OK) kiln_fail_prefix(st, "XGBoost model");
    return st;
}
