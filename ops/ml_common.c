/*
 * ml_common.c — post_transform formulas and attribute readers shared by the ONNX-ML operators (ml_common.h).
 *
 * The formulas are written in float32 on purpose: onnxruntime evaluates them in float, and doing the same
 * keeps kiln's probabilities within an ulp or two of onnxruntime's instead of merely close.
 */
#include <float.h>
#include <math.h>
#include <string.h>

#include "ops/ml_common.h"

kiln_status ml_read_transform(const graph_node *node, ml_transform *out)
{
    static const char *const names[] = {"NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO", "PROBIT", NULL};
    int index;
    KILN_TRY(attr_choice(node, "post_transform", "NONE", names, &index));
    *out = (ml_transform)index;
    return KILN_OK;
}

float ml_logistic(float x)
{
    float v = 1.0f / (1.0f + expf(-fabsf(x)));
    return x < 0 ? 1.0f - v : v;
}

/* Winitzki's approximation of erfinv, as onnxruntime evaluates it. */
static float erfinv_approx(float x)
{
    const float a = 0.147f, pi = 3.14159265358979323846f;
    float sign = x < 0 ? -1.0f : 1.0f;
    float ln = logf((1.0f - x) * (1.0f + x));
    float v = 2.0f / (pi * a) + 0.5f * ln;
    float v2 = 1.0f / a * ln;
    return sign * sqrtf(-v + sqrtf(v * v - v2));
}

float ml_probit(float x) { return 1.41421356237309504880f * erfinv_approx(2.0f * x - 1.0f); }

static void softmax(float *s, int64_t n, bool keep_zeros)
{
    float max = -FLT_MAX, sum = 0.0f;
    for (int64_t k = 0; k < n; k++) max = s[k] > max ? s[k] : max;
    float zero_scale = expf(-max);
    for (int64_t k = 0; k < n; k++) {
        if (keep_zeros && !(s[k] > 1e-7f || s[k] < -1e-7f)) {
            s[k] *= zero_scale; /* a (near) zero score stays (near) zero and is not counted */
            continue;
        }
        s[k] = expf(s[k] - max);
        sum += s[k];
    }
    for (int64_t k = 0; k < n; k++) s[k] /= sum;
}

void ml_transform_scores(ml_transform transform, float *scores, int64_t n)
{
    switch (transform) {
    case ML_TRANSFORM_NONE: return;
    case ML_TRANSFORM_LOGISTIC:
        for (int64_t k = 0; k < n; k++) scores[k] = ml_logistic(scores[k]);
        return;
    case ML_TRANSFORM_SOFTMAX: softmax(scores, n, false); return;
    case ML_TRANSFORM_SOFTMAX_ZERO: softmax(scores, n, true); return;
    case ML_TRANSFORM_PROBIT:
        for (int64_t k = 0; k < n; k++) scores[k] = ml_probit(scores[k]);
        return;
    }
}

void ml_binary_scores(ml_transform transform, ml_second_column how, float score, float out[2])
{
    bool logistic = transform == ML_TRANSFORM_LOGISTIC;
    if (transform == ML_TRANSFORM_PROBIT || how == ML_ONE_COLUMN) {
        out[0] = transform == ML_TRANSFORM_PROBIT ? ml_probit(score) : score;
        out[1] = 0.0f;
    } else if (how == ML_COMPLEMENT) {
        out[1] = logistic ? ml_logistic(score) : score;
        out[0] = 1.0f - out[1];
    } else {
        out[0] = logistic ? ml_logistic(-score) : -score;
        out[1] = logistic ? ml_logistic(score) : score;
    }
}

/* ---- attributes ---------------------------------------------------------------------------------- */

kiln_status ml_ints(const graph_node *node, const char *name, const int64_t **values, int *count)
{
    const graph_attr *a;
    KILN_TRY(attr_find(node, name, ATTR_INTS, &a));
    *values = a ? a->ints : NULL;
    *count = a ? a->count : 0;
    return KILN_OK;
}

kiln_status ml_floats(const graph_node *node, const char *name, const float **values, int *count)
{
    const graph_attr *a;
    KILN_TRY(attr_find(node, name, ATTR_FLOATS, &a));
    *values = a ? a->floats : NULL;
    *count = a ? a->count : 0;
    return KILN_OK;
}

kiln_status ml_strings(const graph_node *node, const char *name, const char *const **values, int *count)
{
    const graph_attr *a;
    KILN_TRY(attr_find(node, name, ATTR_STRINGS, &a));
    *values = a ? a->strings : NULL;
    *count = a ? a->count : 0;
    return KILN_OK;
}

kiln_status ml_tensor_values(const graph_node *node, const char *name, region *mem, double **values, int64_t *count)
{
    const kiln_tensor *t;
    KILN_TRY(attr_tensor(node, name, &t));
    *values = NULL;
    *count = 0;
    if (!t) return KILN_OK;
    if (t->dtype != KILN_FLOAT32 && t->dtype != KILN_FLOAT64 && t->dtype != KILN_INT64 && t->dtype != KILN_INT32 &&
        t->dtype != KILN_UINT8)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "attribute '%s' is a %s tensor, expected float, double or integers",
                         name, kiln_dtype_name(t->dtype));
    int64_t n = tensor_numel(t);
    if (n > INT32_MAX) return kiln_fail(KILN_ERR_UNSUPPORTED, "attribute '%s' has too many values", name);
    if (n > 0 && !t->data) return kiln_fail(KILN_ERR_MALFORMED, "attribute '%s' has no data", name);
    *values = region_alloc(mem, (size_t)n + 1, sizeof **values);
    if (!*values) return KILN_ERR_OUT_OF_MEMORY;
    for (int64_t i = 0; i < n; i++) (*values)[i] = tensor_get_double(t, i);
    *count = n;
    return KILN_OK;
}

kiln_status ml_read_labels(op_init_ctx *ctx, const char *ints_name, ml_labels *out)
{
    int n_ints, n_names;
    memset(out, 0, sizeof *out);
    KILN_TRY(ml_ints(ctx->node, ints_name, &out->ints, &n_ints));
    KILN_TRY(ml_strings(ctx->node, "classlabels_strings", &out->names, &n_names));
    if (n_ints && n_names)
        return kiln_fail(KILN_ERR_MALFORMED, "attributes '%s' and 'classlabels_strings' are both given", ints_name);
    out->count = n_names ? n_names : n_ints;
    ctx->output_dtypes[0] = n_names ? KILN_STRING : KILN_INT64;
    if (!n_names) return KILN_OK;
    int64_t *indices = region_alloc(ctx->mem, (size_t)n_names, sizeof *indices);
    if (!indices) return KILN_ERR_OUT_OF_MEMORY;
    for (int k = 0; k < n_names; k++) indices[k] = k;
    out->ints = indices;
    return KILN_OK;
}

size_t ml_label_scratch_bytes(const ml_labels *labels, int64_t rows)
{
    return labels->names ? mem_align_up((size_t)rows * sizeof(int64_t), KILN_ALIGNMENT) : 0;
}

int64_t *ml_label_slots(op_ctx *ctx, const ml_labels *labels, void *scratch)
{
    return labels->names ? scratch : ctx->outputs[0]->data;
}

kiln_status ml_name_labels(op_ctx *ctx, const ml_labels *labels, const int64_t *slots, int64_t rows)
{
    if (!labels->names) return KILN_OK;
    const char **out = ctx->outputs[0]->data;
    for (int64_t r = 0; r < rows; r++) {
        int64_t k = slots[r];
        if (k < 0 || k >= labels->count) return kiln_fail(KILN_ERR_INTERNAL, "class index %lld", (long long)k);
        if (!(out[r] = region_strdup(ctx->strings, labels->names[k]))) return KILN_ERR_OUT_OF_MEMORY;
    }
    return KILN_OK;
}

kiln_status ml_require_same_length(const char *a, int64_t a_count, const char *b, int64_t b_count)
{
    if (a_count != b_count)
        return kiln_fail(KILN_ERR_MALFORMED,
                         "attributes '%s' and '%s' must have the same length, they have %lld and %lld", a, b,
                         (long long)a_count, (long long)b_count);
    return KILN_OK;
}

/* ---- inputs -------------------------------------------------------------------------------------- */

kiln_status ml_rows_cols(const kiln_tensor *x, int64_t *rows, int64_t *cols)
{
    if (x->rank == 1) {
        *rows = 1;
        *cols = x->dims[0];
        return KILN_OK;
    }
    if (x->rank == 2) {
        *rows = x->dims[0];
        *cols = x->dims[1];
        return KILN_OK;
    }
    return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "input must be [N, F] or [F], not rank %d", x->rank);
}

void ml_to_float(const kiln_tensor *x, float *out)
{
    int64_t n = tensor_numel(x);
    if (n == 0) return;
    switch (x->dtype) {
    case KILN_FLOAT32: memcpy(out, x->data, (size_t)n * sizeof *out); return;
    case KILN_FLOAT64:
        for (int64_t i = 0; i < n; i++) out[i] = (float)((const double *)x->data)[i];
        return;
    case KILN_INT32:
        for (int64_t i = 0; i < n; i++) out[i] = (float)((const int32_t *)x->data)[i];
        return;
    default:
        for (int64_t i = 0; i < n; i++) out[i] = (float)((const int64_t *)x->data)[i];
        return;
    }
}
