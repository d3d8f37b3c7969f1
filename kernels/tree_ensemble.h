/*
 * tree_ensemble.h — the one tree engine behind every tree model kiln loads: ONNX-ML TreeEnsemble* operators,
 * XGBoost JSON/UBJSON and LightGBM text models.
 *
 * Each library decides splits its own way (XGBoost: float32 `x < t`; LightGBM: `(double)x <= t` after
 * mapping |x| <= 1e-35 to 0, with per-node rules for NaN and zero; ONNX-ML: six comparison modes and
 * `missing_value_tracks_true`). Loaders describe trees in those terms (tree_raw_*), and tree_ensemble_build
 * turns every split into one canonical test on the float32 input:
 *
 *     missing(x) ? go the node's missing way : x <= threshold ? left : right
 *
 * where "missing" is NaN, or also zero for LightGBM's zero-as-missing nodes. Any `<`, `<=`, `>`, `>=` against
 * a float or double threshold has an exact float32 `<=` equivalent (see tree_build.c), so the engine never
 * needs to know which library a tree came from — and every decision is the one the library makes. Equality
 * splits and categorical (set membership) splits keep their own test kinds.
 *
 * Building also validates everything a hostile file can get wrong: child indices out of range, cycles, nodes
 * reachable twice, feature indices beyond the input width, depth beyond TREE_MAX_DEPTH, targets out of range.
 *
 * Layout: nodes of all trees in one array; the two children of a node are adjacent (right = left + 1), so a
 * step is `node = left + !(go_left)`. Leaves hold an index into the leaf value table.
 */
#ifndef KILN_KERNELS_TREE_ENSEMBLE_H
#define KILN_KERNELS_TREE_ENSEMBLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/mem.h"
#include "core/parallel.h"
#include "formats/tree_schema.h"
#include "kiln.h"

#define TREE_MAX_DEPTH 1024 /* LightGBM and lossguide trees can be deep; only a safety bound (ml_tree.c recurses per level) */
#define TREE_MAX_FEATURES (1 << 24)
#define TREE_MAX_TARGETS (1 << 20)

/* ---- describing trees (what loaders produce) ---------------------------------------------------------- */

typedef enum tree_raw_kind { TREE_RAW_LEAF, TREE_RAW_NUMERIC, TREE_RAW_CATEGORICAL } tree_raw_kind;

/* One (target, weight) contribution of a leaf; single-output trees use one per leaf. */
typedef struct tree_leaf_weight {
    int32_t target;
    double weight;
} tree_leaf_weight;

typedef struct tree_raw_node {
    tree_raw_kind kind;
    int32_t feature;
    /* numeric splits */
    tree_compare compare;
    double threshold;
    bool threshold_is_double; /* compare (double)x with threshold (LightGBM, *_as_tensor); else float32 */
    tree_missing missing;
    bool zero_is_missing;     /* LightGBM missing type Zero: 0 (and NaN) take the missing branch (`missing`
                               * must then be TRUE or FALSE) */
    /* categorical splits: the true branch is taken when the category is in the set. The category is x
     * truncated toward zero (LightGBM: -0.5 is category 0), or with category_exact only x itself when it is
     * an integer (ONNX-ML BRANCH_MEMBER). Negative categories, values beyond int32 and categories past the
     * set take the false branch; NaN follows `missing` (TRUE, FALSE, or COMPARE = false). */
    const uint32_t *category_bits; /* bit c of word c/32 */
    int32_t category_words;
    bool category_exact;
    bool category_nonnegative; /* XGBoost: a negative x is no category, even -0.5 (which LightGBM truncates to
                                * category 0); it takes the false branch */
    /* children, as indices into this tree's node list */
    int32_t true_child, false_child;
    /* leaves */
    const tree_leaf_weight *weights;
    int32_t n_weights;
} tree_raw_node;

typedef struct tree_raw_tree {
    const tree_raw_node *nodes;
    int32_t n_nodes;
    int32_t root;
} tree_raw_tree;


typedef struct tree_raw_ensemble {
    int32_t n_features; /* input width: every split's feature must be below it */
    int32_t n_targets;  /* scores per row */
    const tree_raw_tree *trees;
    int32_t n_trees;
    tree_aggregate aggregate;
    const double *base_values;   /* per target, or NULL for zeros; added after aggregation */
    bool sum_in_float32;         /* XGBoost: start from the base value and add each tree's leaf value in float32,
                                  * in tree order; otherwise leaf values are summed in double, then the base
                                  * value is added */
    bool zero_tiny_inputs;       /* LightGBM: inputs with |x| <= 1e-35 count as 0 before any split */
    double average_divisor;      /* TREE_AGG_AVERAGE: what sums are divided by; 0 means, per target, the
                                  * number of trees with a leaf weight for it */
} tree_raw_ensemble;

/* ---- the built ensemble (what the engine runs) -------------------------------------------------------- */

enum tree_node_kind {
    TREE_NODE_LEAF = 0,
    TREE_NODE_LE,          /* left when x <= threshold */
    TREE_NODE_EQ,          /* left when x == threshold */
    TREE_NODE_CATEGORICAL  /* left when the category is in the node's set */
};

/* Flags of an internal node. */
#define TREE_MISSING_LEFT 1u    /* a missing value goes left */
#define TREE_ZERO_MISSING 2u    /* 0 counts as missing */
#define TREE_CATEGORY_EXACT 4u  /* CATEGORICAL: only exact integers are categories (ONNX-ML BRANCH_MEMBER);
                                 * otherwise values are truncated toward zero first (LightGBM) */
#define TREE_CATEGORY_NONNEGATIVE 8u /* CATEGORICAL: x < 0 is no category (XGBoost), not truncated to 0 */

typedef struct tree_node {  /* 16 bytes: four nodes per cache line */
    union {
        float threshold;        /* LE, EQ: the bound */
        int32_t category_words; /* CATEGORICAL: offset in category_bits: a word count, then the bit words */
    } test;
    int32_t feature;  /* input column (internal nodes) */
    int32_t left;     /* internal: index of the left child, the right child is left + 1; leaf: leaf index */
    uint8_t kind;     /* enum tree_node_kind */
    uint8_t flags;    /* TREE_MISSING_LEFT, TREE_ZERO_MISSING, TREE_CATEGORY_* */
    uint16_t depth;   /* edges from the root, for layout and tests */
} tree_node;

typedef struct tree_ensemble {
    int32_t n_features, n_targets, n_trees;
    tree_aggregate aggregate;
    bool sum_in_float32;
    bool zero_tiny_inputs;
    tree_node *nodes;
    int32_t n_nodes;
    int32_t *roots;       /* per tree */
    int32_t max_depth;    /* deepest root-to-leaf path, in edges */
    /* leaf values: leaf i contributes leaf_weights[leaf_first[i] .. leaf_first[i+1]) */
    int32_t *leaf_first;
    tree_leaf_weight *leaf_weights;
    int32_t n_leaves;
    /* per leaf: its index in its tree's raw node list, i.e. the node number the library's own files use, so
     * leaf choices can be reported (and tested) in the library's terms */
    int32_t *leaf_node;
    /* When every leaf holds exactly one weight, and every leaf of a tree the same target, the fast path
     * reads leaf_value[leaf] and adds it to tree_target[tree]. */
    bool single_target_trees;
    int32_t *tree_target;
    double *leaf_value;
    uint32_t *category_bits;
    double *base_values; /* per target */
    double *average_divisor; /* per target, for TREE_AGG_AVERAGE */
    /* The same trees laid out for tree_ensemble_predict's batched walks (kernels/tree_fast.h). */
    const struct tree_fast *fast;
} tree_ensemble;

/* Validates and canonicalises `raw` into `out`, with every table allocated in `mem`. Errors name the tree and
 * node ("tree 3 node 17: feature 40 is beyond the input's 30 features"). */
kiln_status tree_ensemble_build(const tree_raw_ensemble *raw, region *mem, tree_ensemble *out);

/* tree_ensemble_build on the trees a tree_schema describes (formats/tree_schema.h): each tree's slice of the
 * schema's flat arrays becomes its raw node list, in the same order (so leaf_node numbers nodes as the schema
 * does, counted from the tree's first node). */
kiln_status tree_ensemble_build_schema(const tree_schema *schema, region *mem, tree_ensemble *out);

/* Scores before any output transform: scores[r * n_targets + t] for rows r of x (row-major, `row_stride`
 * floats apart), aggregated and with base values added (in the order sum_in_float32 says). */
void tree_ensemble_predict(const tree_ensemble *e, const float *x, int64_t rows, int64_t row_stride, double *scores,
                           const parallel_runner *parallel);
/* The plain reference: one row, one tree at a time, straight from the definition. */
void tree_ensemble_predict_reference(const tree_ensemble *e, const float *x, int64_t rows, int64_t row_stride,
                                     double *scores);
/* The leaf each tree reaches for one row (leaf index, for comparing leaf choices with a library). */
void tree_ensemble_leaves(const tree_ensemble *e, const float *row, int32_t *leaves);
/* The reference walk of one row down one tree: the index (into nodes) of the leaf node it reaches. */
int32_t tree_ensemble_walk_tree(const tree_ensemble *e, int32_t tree, const float *row);

#endif
