/*
 * tree_schema.h — how natively loaded tree models (XGBoost, LightGBM) appear in kiln's graph: one node
 * `ai.kiln::TreeEnsemble` whose attributes describe the trees in each library's own terms.
 *
 * Loaders fill a tree_schema (flat per-node arrays, like ONNX-ML's) and tree_schema_write_node() stores it as
 * the node's attributes; the operator (ops/kiln_tree.c) reads it back with tree_schema_read_node(), checks it
 * and builds the engine's ensemble (kernels/tree_ensemble.h). Keeping the description as ordinary attributes
 * makes the model inspectable like any other graph and keeps file parsing (formats/) apart from validation
 * and execution (ops/, kernels/).
 *
 * The graph built around it has the signature of the model's usual ONNX-ML conversion: input `input`
 * (float32 [N, n_features], NaN = missing) and, for classifiers, outputs `label` (int64 [N]) and
 * `probabilities` (float32 [N, n_classes]; binary as [1-p, p]), for regressors `variable` (float32 [N, n_targets]).
 */
#ifndef KILN_FORMATS_TREE_SCHEMA_H
#define KILN_FORMATS_TREE_SCHEMA_H

#include <stdbool.h>
#include <stdint.h>

#include "graph/graph.h"
#include "kiln.h"

/* The vocabulary of splits, shared with the engine (kernels/tree_ensemble.h). */
typedef enum tree_compare {
    TREE_CMP_LT, /* the node's test is true when x <  threshold */
    TREE_CMP_LE, /*                          x <= threshold */
    TREE_CMP_GT,
    TREE_CMP_GE,
    TREE_CMP_EQ,
    TREE_CMP_NE
} tree_compare;

typedef enum tree_missing {
    TREE_MISSING_TRUE,    /* NaN takes the true branch */
    TREE_MISSING_FALSE,   /* NaN takes the false branch */
    TREE_MISSING_COMPARE, /* NaN is compared like any value (every ordered comparison with NaN is false; NE true) */
    TREE_MISSING_AS_ZERO  /* NaN is replaced by 0 and compared (LightGBM missing type None) */
} tree_missing;

typedef enum tree_aggregate { TREE_AGG_SUM, TREE_AGG_AVERAGE, TREE_AGG_MIN, TREE_AGG_MAX } tree_aggregate;

#define TREE_SCHEMA_DOMAIN "ai.kiln"
#define TREE_SCHEMA_OP "TreeEnsemble"

/* Node kinds (nodes_kind). */
enum { TREE_SCHEMA_LEAF = 0, TREE_SCHEMA_NUMERIC = 1, TREE_SCHEMA_CATEGORICAL = 2 };

/* How scores become outputs (post_transform). */
typedef enum tree_schema_transform {
    TREE_TRANSFORM_NONE,         /* identity */
    TREE_TRANSFORM_LOGISTIC,     /* 1 / (1 + exp(-sigmoid_scale * s)) */
    TREE_TRANSFORM_SOFTMAX,      /* over the targets of a row */
    TREE_TRANSFORM_EXP,          /* exp(s): XGBoost count:poisson, reg:gamma, reg:tweedie */
    TREE_TRANSFORM_SOFTPLUS,     /* log1p(exp(s)): LightGBM cross_entropy_lambda */
    TREE_TRANSFORM_SIGNED_SQUARE, /* sign(s) * s * s: LightGBM regression objectives trained with `sqrt` */
    TREE_TRANSFORM_HINGE         /* s > 0 ? 1 : 0: XGBoost binary:hinge */
} tree_schema_transform;

typedef struct tree_schema {
    int32_t n_features, n_targets, n_trees, n_nodes;
    /* per tree: tree t's nodes are the range [tree_roots[t], tree_roots[t+1]) (the last runs to n_nodes) of the
     * per-node arrays, its root first; children are global indices inside the same range */
    const int32_t *tree_roots;
    /* per node */
    const int32_t *nodes_kind;     /* TREE_SCHEMA_* */
    const int32_t *nodes_feature;
    const int32_t *nodes_compare;  /* tree_compare: the test that sends x to `true` */
    const double *nodes_threshold;
    const int32_t *nodes_missing;  /* tree_missing */
    const int32_t *nodes_zero_missing; /* 0/1: zero counts as missing (LightGBM missing type Zero) */
    const int32_t *nodes_true, *nodes_false; /* global node indices */
    const int32_t *nodes_category_first, *nodes_category_count; /* into category_words */
    const int32_t *nodes_leaf_first, *nodes_leaf_count;         /* into leaf_targets / leaf_weights */
    const uint32_t *category_words;
    int32_t n_category_words;
    const int32_t *leaf_targets;
    const double *leaf_weights;
    int32_t n_leaf_weights;
    /* the ensemble as a whole */
    bool thresholds_are_double;    /* LightGBM compares doubles; XGBoost float32 */
    bool sum_in_float32;           /* XGBoost's accumulation */
    bool zero_tiny_inputs;         /* LightGBM's |x| <= 1e-35 -> 0 */
    bool categories_nonnegative;   /* XGBoost: categorical splits see no category in x < 0 (LightGBM truncates
                                    * -0.5 to category 0) */
    int32_t aggregate;             /* tree_aggregate */
    double average_divisor;        /* see tree_raw_ensemble (stored exactly, as a float64 attribute) */
    const double *base_values;     /* n_targets values, or NULL */
    tree_schema_transform transform;
    double sigmoid_scale;          /* LOGISTIC slope (1 for XGBoost; LightGBM's `sigmoid`), stored exactly */
    /* classifiers: n_classes labels 0..n_classes-1; a binary model has n_targets 1 and n_classes 2 */
    bool classifier;
    int32_t n_classes;
    const char *source;            /* "xgboost 2.0.3 binary:logistic", for `kiln info` */
} tree_schema;

/* Stores the schema as the attributes of `node` (allocating in g->mem). */
kiln_status tree_schema_write_node(graph *g, int node, const tree_schema *schema);
/* Reads a node's attributes back; the arrays point into the graph's memory. Checks array lengths, not
 * tree structure (tree_ensemble_build does that). */
kiln_status tree_schema_read_node(const graph_node *node, tree_schema *schema);

/* Builds the graph native loaders return: input `input`, one TreeEnsemble node, the outputs above. */
kiln_status tree_schema_make_graph(region *mem, const tree_schema *schema, graph **out);

#endif
