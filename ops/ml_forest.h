/*
 * ml_forest.h — the one description that both encodings of the ONNX-ML tree operators are read into, an
 * ml_forest, and the functions that read and build it. Internal to ops/: ml_forest_read.c reads the
 * attributes, ml_forest_build.c builds the engine's ensemble, ml_tree.c (the operators) calls both.
 *
 * TreeEnsembleClassifier and TreeEnsembleRegressor (ai.onnx.ml 1 and 3) and TreeEnsemble (ai.onnx.ml 5)
 * write the same trees in different attributes. Both encodings are first read into one description, an
 * ml_forest (split nodes with a mode, a threshold and two children; leaves with their weights), which is
 * expanded tree by tree into the engine's raw trees (kernels/tree_ensemble.h) and built once at load. The
 * engine makes every comparison; the forest only says which comparison each node makes:
 *   BRANCH_LEQ, _LT, _GTE, _GT, _EQ, _NEQ  the same test, against float32 thresholds (or doubles from
 *                                         *_as_tensor / double tensors);
 *   nodes_missing_value_tracks_true       NaN takes the true branch; otherwise NaN is compared like any value
 *                                         (so only BRANCH_NEQ sends it to the true branch);
 *   BRANCH_MEMBER (opset 5), and chains   a categorical split on exact integer categories. Converters wrote set
 *   of BRANCH_EQ on one feature that      membership as such chains before opset 5 (LightGBM's categorical
 *   share their true child                splits); merging them avoids copying the shared subtree per member.
 */
#ifndef KILN_OPS_ML_FOREST_H
#define KILN_OPS_ML_FOREST_H

#include <stdbool.h>
#include <stdint.h>

#include "kernels/tree_ensemble.h"
#include "ops/op.h"

enum ml_mode { ML_LEAF, ML_LEQ, ML_LT, ML_GTE, ML_GT, ML_EQ, ML_NEQ, ML_MEMBER };

typedef struct ml_node {
    uint8_t mode;      /* enum ml_mode */
    bool missing_true; /* NaN takes the true branch */
    int32_t feature;
    double threshold;
    int32_t child[2];     /* true, false: indices of ml_forest.nodes */
    int32_t first, count; /* leaves: their weights; ML_MEMBER: their members */
} ml_node;

typedef struct ml_forest {
    ml_node *nodes;
    int32_t n_nodes;
    int32_t *roots;
    int32_t n_trees;
    tree_leaf_weight *weights;
    double *members;
    int32_t n_targets;
    bool doubles;       /* thresholds and weights are doubles: compare and sum in double precision */
    bool one_target_id; /* every listed weight is for the same target (class) */
    bool weights_nonnegative;
} ml_forest;

/* Reads the nodes_* and class_* (classifier) or target_* attributes of TreeEnsembleClassifier /
 * TreeEnsembleRegressor (opsets 1 and 3) into f, whose n_targets the caller has set. */
kiln_status ml_forest_read_v3(op_init_ctx *ctx, bool classifier, ml_forest *f);
/* Reads TreeEnsemble's attributes (opset 5) into f, whose n_targets the caller has set. */
kiln_status ml_forest_read_v5(op_init_ctx *ctx, ml_forest *f);
/* Frees what reading allocated, also after a failed read. */
void ml_forest_free(ml_forest *f);

/* Expands every tree of f into the engine's raw trees and builds the ensemble *e (allocated in mem). */
kiln_status ml_forest_build(const ml_forest *f, tree_aggregate aggregate, bool float_sums, region *mem,
                            tree_ensemble *e);

#endif
