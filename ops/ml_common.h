/*
 * ml_common.h — what the ONNX-ML operators (domain ai.onnx.ml: trees, linear models, SVMs, preprocessing)
 * share: the post_transform vocabulary with its formulas, and readers for their attributes.
 *
 * Scores become outputs exactly the way onnxruntime computes them, because that is what users compare
 * against: in float32 arithmetic, with its logistic (1 / (1 + exp(-|x|)) mirrored for negative x), its
 * softmax (shifted by the maximum), its SOFTMAX_ZERO (zeros stay zero) and its PROBIT, which is not the exact
 * inverse normal CDF but sqrt(2) * erfinv(2p - 1) through Winitzki's closed-form approximation (a = 0.147).
 * A binary model with one score column gets its second column by onnxruntime's rules too (ml_binary_scores).
 */
#ifndef KILN_OPS_ML_COMMON_H
#define KILN_OPS_ML_COMMON_H

#include <stdbool.h>
#include <stdint.h>

#include "ops/op.h"

#define ML_DOMAIN "ai.onnx.ml"
#define ML_MAX_OPSET 5 /* the newest ai.onnx.ml opset; each operator's semantics hold up to it */

typedef enum ml_transform {
    ML_TRANSFORM_NONE,
    ML_TRANSFORM_LOGISTIC,
    ML_TRANSFORM_SOFTMAX,
    ML_TRANSFORM_SOFTMAX_ZERO,
    ML_TRANSFORM_PROBIT
} ml_transform;

/* The string attribute `post_transform` (default NONE). */
kiln_status ml_read_transform(const graph_node *node, ml_transform *out);

float ml_logistic(float x);
float ml_probit(float x);
/* Transforms one row of n >= 2 scores in place (NONE leaves them as they are). */
void ml_transform_scores(ml_transform transform, float *scores, int64_t n);

/* How a binary model with one score column fills two output columns (onnxruntime's cases): */
typedef enum ml_second_column {
    ML_ONE_COLUMN, /* only the score itself, the second column 0 */
    ML_COMPLEMENT, /* [1 - p, p]: the score is class 1's probability (LOGISTIC: of the logistic) */
    ML_NEGATED     /* [-s, s]: the score is a margin (LOGISTIC: [logistic(-s), logistic(s)]) */
} ml_second_column;
/* PROBIT writes [probit(s), 0] whatever `how` says. */
void ml_binary_scores(ml_transform transform, ml_second_column how, float score, float out[2]);

/* ---- attributes ---------------------------------------------------------------------------------- */

/* List attributes read in place: the graph holds them as long as the model lives. *count is 0 when absent. */
kiln_status ml_ints(const graph_node *node, const char *name, const int64_t **values, int *count);
kiln_status ml_floats(const graph_node *node, const char *name, const float **values, int *count);
kiln_status ml_strings(const graph_node *node, const char *name, const char *const **values, int *count);
/* A numeric tensor attribute (the *_as_tensor forms, TreeEnsemble's splits and weights) as doubles allocated
 * in `mem`; *count is 0 when absent. */
kiln_status ml_tensor_values(const graph_node *node, const char *name, region *mem, double **values, int64_t *count);
/* A classifier's class labels: integers, or names (classlabels_strings), never both. Named classes are
 * computed as their indices and named at the end (ml_name_labels), which is how onnxruntime does it too. */
typedef struct ml_labels {
    const int64_t *ints;      /* the integer labels; for named classes their indices 0 .. count-1 */
    const char *const *names; /* the class names, or NULL */
    int count;
} ml_labels;
/* Reads `ints_name` (classlabels_int64s or classlabels_ints) or classlabels_strings and sets output 0's dtype
 * (int64 or string). Giving both is malformed. */
kiln_status ml_read_labels(op_init_ctx *ctx, const char *ints_name, ml_labels *out);
/* Scratch bytes a classifier needs for `rows` int64 labels before naming them (0 for integer labels). */
size_t ml_label_scratch_bytes(const ml_labels *labels, int64_t rows);
/* Where a classifier writes its int64 labels: output 0 itself, or `scratch` when the classes are named. */
int64_t *ml_label_slots(op_ctx *ctx, const ml_labels *labels, void *scratch);
/* Named classes: output 0[r] = names[slots[r]], copied into the run's strings. Integer labels: nothing to do. */
kiln_status ml_name_labels(op_ctx *ctx, const ml_labels *labels, const int64_t *slots, int64_t rows);

/* Fails unless list attributes `a` and `b` have the same length. */
kiln_status ml_require_same_length(const char *a, int64_t a_count, const char *b, int64_t b_count);

/* ---- inputs -------------------------------------------------------------------------------------- */

/* The rows and columns of a [N, F] or [F] input (onnxruntime reads [F] as one row); fails for other ranks. */
kiln_status ml_rows_cols(const kiln_tensor *x, int64_t *rows, int64_t *cols);
/* Copies any float32/float64/int32/int64 tensor as float32, converting the way C does. */
void ml_to_float(const kiln_tensor *x, float *out);

#endif
