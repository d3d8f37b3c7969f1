/*
 * tree_schema.c — a tree_schema as the attributes of an ai.kiln::TreeEnsemble node, and the graph around it
 * (see tree_schema.h).
 *
 * Per-node arrays become int32 or float64 tensor attributes that point at the loader's arrays (which live
 * in the model's region), so storing and reading them back copies nothing. Real-valued scalars (the average
 * divisor, the sigmoid slope) are one-element float64 tensors rather than ONNX's float attributes, so that
 * a slope such as LightGBM's `sigmoid:0.7` reaches the transform as the exact double the library uses.
 */
#include "formats/tree_schema.h"

#include <string.h>

#include "core/error.h"
#include "core/tensor.h"

typedef struct array_attr {
    const char *name;
    kiln_dtype dtype;
    size_t offset;     /* of the array pointer in tree_schema */
    size_t count_at;   /* of its int32_t element count in tree_schema */
} array_attr;

#define ARRAY(name, dtype, count) {#name, dtype, offsetof(tree_schema, name), offsetof(tree_schema, count)}

static const array_attr arrays[] = {
    ARRAY(tree_roots, KILN_INT32, n_trees),
    ARRAY(nodes_kind, KILN_INT32, n_nodes),
    ARRAY(nodes_feature, KILN_INT32, n_nodes),
    ARRAY(nodes_compare, KILN_INT32, n_nodes),
    ARRAY(nodes_threshold, KILN_FLOAT64, n_nodes),
    ARRAY(nodes_missing, KILN_INT32, n_nodes),
    ARRAY(nodes_zero_missing, KILN_INT32, n_nodes),
    ARRAY(nodes_true, KILN_INT32, n_nodes),
    ARRAY(nodes_false, KILN_INT32, n_nodes),
    ARRAY(nodes_category_first, KILN_INT32, n_nodes),
    ARRAY(nodes_category_count, KILN_INT32, n_nodes),
    ARRAY(nodes_leaf_first, KILN_INT32, n_nodes),
    ARRAY(nodes_leaf_count, KILN_INT32, n_nodes),
    ARRAY(category_words, KILN_UINT32, n_category_words),
    ARRAY(leaf_targets, KILN_INT32, n_leaf_weights),
    ARRAY(leaf_weights, KILN_FLOAT64, n_leaf_weights),
    ARRAY(base_values, KILN_FLOAT64, n_targets),
};

typedef struct int_attr {
    const char *name;
    size_t offset;
    bool is_bool; /* a bool field rather than int32_t */
} int_attr;

static const int_attr ints[] = {
    {"n_features", offsetof(tree_schema, n_features), false},
    {"n_targets", offsetof(tree_schema, n_targets), false},
    {"n_trees", offsetof(tree_schema, n_trees), false},
    {"n_nodes", offsetof(tree_schema, n_nodes), false},
    {"n_category_words", offsetof(tree_schema, n_category_words), false},
    {"n_leaf_weights", offsetof(tree_schema, n_leaf_weights), false},
    {"aggregate", offsetof(tree_schema, aggregate), false},
    {"n_classes", offsetof(tree_schema, n_classes), false},
    {"thresholds_are_double", offsetof(tree_schema, thresholds_are_double), true},
    {"sum_in_float32", offsetof(tree_schema, sum_in_float32), true},
    {"zero_tiny_inputs", offsetof(tree_schema, zero_tiny_inputs), true},
    {"categories_nonnegative", offsetof(tree_schema, categories_nonnegative), true},
    {"classifier", offsetof(tree_schema, classifier), true},
};

static const char *const transforms[] = {"NONE", "LOGISTIC", "SOFTMAX", "EXP", "SOFTPLUS", "SIGNED_SQUARE", "HINGE"};

#define N_ARRAYS (sizeof arrays / sizeof arrays[0])
#define N_INTS (sizeof ints / sizeof ints[0])
#define N_ATTRS (N_ARRAYS + N_INTS + 4) /* + average_divisor, sigmoid_scale, post_transform, source */

static const void **array_field(tree_schema *s, const array_attr *a) { return (const void **)((char *)s + a->offset); }
static int32_t array_count(const tree_schema *s, const array_attr *a) { return *(const int32_t *)((const char *)s + a->count_at); }

static int32_t read_int_field(const tree_schema *s, const int_attr *a)
{
    const char *p = (const char *)s + a->offset;
    return a->is_bool ? *(const bool *)p : *(const int32_t *)p;
}

static void write_int_field(tree_schema *s, const int_attr *a, int64_t v)
{
    char *p = (char *)s + a->offset;
    if (a->is_bool) *(bool *)p = v != 0;
    else *(int32_t *)p = (int32_t)v;
}

/* A real-valued scalar as a one-element float64 tensor attribute (the value is copied into g->mem). */
static kiln_status double_attr(graph *g, const char *name, double value, graph_attr *out)
{
    kiln_tensor *t = region_alloc(g->mem, 1, sizeof *t);
    double *data = region_alloc(g->mem, 1, sizeof *data);
    if (!t || !data) return KILN_ERR_OUT_OF_MEMORY;
    *data = value;
    t->dtype = KILN_FLOAT64;
    t->rank = 1;
    t->dims[0] = 1;
    t->data = data;
    *out = (graph_attr){.name = name, .type = ATTR_TENSOR, .t = t};
    return KILN_OK;
}

static double read_double_attr(const graph_node *node, const char *name, double absent)
{
    const graph_attr *a = graph_node_attr(node, name);
    if (!a || a->type != ATTR_TENSOR || !a->t || a->t->dtype != KILN_FLOAT64 || a->t->rank != 1 || a->t->dims[0] != 1)
        return absent;
    return *(const double *)a->t->data;
}

kiln_status tree_schema_write_node(graph *g, int index, const tree_schema *schema)
{
    graph_node *n = &g->nodes[index];
    graph_attr *attrs = region_alloc(g->mem, N_ATTRS, sizeof *attrs);
    if (!attrs) return KILN_ERR_OUT_OF_MEMORY;
    int k = 0;
    tree_schema copy = *schema; /* array_field wants a non-const view; nothing is written through it */
    for (size_t i = 0; i < N_ARRAYS; i++) {
        const void *data = *array_field(&copy, &arrays[i]);
        if (!data) continue; /* optional arrays (base_values, categories of a model without any) */
        kiln_tensor *t = region_alloc(g->mem, 1, sizeof *t);
        if (!t) return KILN_ERR_OUT_OF_MEMORY;
        t->dtype = arrays[i].dtype;
        t->rank = 1;
        t->dims[0] = array_count(schema, &arrays[i]);
        t->data = (void *)data;
        attrs[k++] = (graph_attr){.name = arrays[i].name, .type = ATTR_TENSOR, .t = t};
    }
    for (size_t i = 0; i < N_INTS; i++)
        attrs[k++] = (graph_attr){.name = ints[i].name, .type = ATTR_INT, .i = read_int_field(schema, &ints[i])};
    KILN_TRY(double_attr(g, "average_divisor", schema->average_divisor, &attrs[k++]));
    KILN_TRY(double_attr(g, "sigmoid_scale", schema->sigmoid_scale, &attrs[k++]));
    const char *transform = transforms[schema->transform];
    attrs[k++] = (graph_attr){.name = "post_transform", .type = ATTR_STRING, .s = transform, .s_len = strlen(transform)};
    const char *source = schema->source ? schema->source : "";
    attrs[k++] = (graph_attr){.name = "source", .type = ATTR_STRING, .s = source, .s_len = strlen(source)};
    n->attrs = attrs;
    n->n_attrs = k;
    return KILN_OK;
}

kiln_status tree_schema_read_node(const graph_node *node, tree_schema *s)
{
    memset(s, 0, sizeof *s);
    for (size_t i = 0; i < N_INTS; i++) {
        const graph_attr *a = graph_node_attr(node, ints[i].name);
        if (!a || a->type != ATTR_INT) return kiln_fail(KILN_ERR_MALFORMED, "attribute '%s' is missing", ints[i].name);
        if (a->i < 0 || a->i > INT32_MAX) return kiln_fail(KILN_ERR_MALFORMED, "attribute '%s' is out of range", ints[i].name);
        write_int_field(s, &ints[i], a->i);
    }
    for (size_t i = 0; i < N_ARRAYS; i++) {
        const graph_attr *a = graph_node_attr(node, arrays[i].name);
        if (!a) continue; /* checked below where required */
        const kiln_tensor *t = a->type == ATTR_TENSOR ? a->t : NULL;
        if (!t || t->dtype != arrays[i].dtype || t->rank != 1 || t->dims[0] != array_count(s, &arrays[i]))
            return kiln_fail(KILN_ERR_MALFORMED, "attribute '%s' must be a %s tensor of %d values", arrays[i].name,
                             kiln_dtype_name(arrays[i].dtype), array_count(s, &arrays[i]));
        *array_field(s, &arrays[i]) = t->data;
    }
    if (!s->tree_roots || !s->nodes_kind || !s->nodes_feature || !s->nodes_compare || !s->nodes_threshold ||
        !s->nodes_missing || !s->nodes_zero_missing || !s->nodes_true || !s->nodes_false || !s->nodes_leaf_first ||
        !s->nodes_leaf_count || !s->leaf_targets || !s->leaf_weights)
        return kiln_fail(KILN_ERR_MALFORMED, "a tree array attribute is missing");
    if (s->n_category_words && (!s->category_words || !s->nodes_category_first || !s->nodes_category_count))
        return kiln_fail(KILN_ERR_MALFORMED, "category attributes are missing");
    s->average_divisor = read_double_attr(node, "average_divisor", 0);
    s->sigmoid_scale = read_double_attr(node, "sigmoid_scale", 1);
    const graph_attr *a = graph_node_attr(node, "post_transform");
    s->transform = TREE_TRANSFORM_NONE;
    for (int i = 0; a && a->type == ATTR_STRING && i < (int)(sizeof transforms / sizeof transforms[0]); i++)
        if (strcmp(a->s, transforms[i]) == 0) s->transform = (tree_schema_transform)i;
    a = graph_node_attr(node, "source");
    s->source = a && a->type == ATTR_STRING ? a->s : "";
    return KILN_OK;
}

static kiln_status add_output(graph *g, int node, int k, const char *name, kiln_dtype dtype)
{
    int v;
    KILN_TRY(graph_intern_value(g, name, &v));
    g->values[v].producer = node;
    g->values[v].is_output = true;
    g->values[v].declared_dtype = dtype;
    g->nodes[node].outputs[k] = v;
    g->outputs[g->n_outputs++] = v;
    return KILN_OK;
}

kiln_status tree_schema_make_graph(region *mem, const tree_schema *schema, graph **out)
{
    graph *g;
    KILN_TRY(graph_create(mem, NULL, &g));
    *out = g;
    g->name = "trees";
    g->inputs = region_alloc(mem, 1, sizeof *g->inputs);
    g->outputs = region_alloc(mem, 2, sizeof *g->outputs);
    if (!g->inputs || !g->outputs) return KILN_ERR_OUT_OF_MEMORY;
    int x, batch, node;
    KILN_TRY(graph_intern_value(g, "input", &x));
    KILN_TRY(graph_intern_symbol(g, "N", &batch));
    graph_value *input = &g->values[x];
    input->is_input = true;
    input->dtype = KILN_FLOAT32;
    input->rank = 2;
    input->dims[0] = -1;
    input->sym[0] = batch;
    input->dims[1] = schema->n_features;
    g->inputs[g->n_inputs++] = x;
    KILN_TRY(graph_add_node(g, 1, schema->classifier ? 2 : 1, 0, &node));
    graph_node *n = &g->nodes[node];
    n->name = "trees";
    n->domain = TREE_SCHEMA_DOMAIN;
    n->op_type = TREE_SCHEMA_OP;
    n->opset = 1;
    n->inputs[0] = x;
    KILN_TRY(tree_schema_write_node(g, node, schema));
    if (schema->classifier) {
        KILN_TRY(add_output(g, node, 0, "label", KILN_INT64));
        KILN_TRY(add_output(g, node, 1, "probabilities", KILN_FLOAT32));
    } else {
        KILN_TRY(add_output(g, node, 0, "variable", KILN_FLOAT32));
    }
    return KILN_OK;
}
