/*
 * ml_preprocess.c — the ONNX-ML preprocessing operators: Scaler, Normalizer, Binarizer, Imputer,
 * OneHotEncoder, LabelEncoder, CategoryMapper, ArrayFeatureExtractor, FeatureVectorizer, ZipMap.
 *
 * The arithmetic is onnxruntime's, in the same types: Scaler and Normalizer compute in float32 (in double for
 * double inputs, rounded once), integer inputs are converted the way C converts them. Operators that only
 * accept some types in onnxruntime accept here every type the specification lists. Lookups (OneHotEncoder's
 * categories, LabelEncoder's and CategoryMapper's keys) are one sorted table of numbers or strings searched
 * by bisection; string outputs are copied into the run's strings (op_ctx.strings).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/value.h"
#include "ops/ml_common.h"

static const kiln_dtype ML_NUMBERS[] = {KILN_FLOAT32, KILN_FLOAT64, KILN_INT32, KILN_INT64, KILN_UNDEFINED};

/* The feature count of a [N, F] or [F] input: the length per-feature attributes must have. */
static kiln_status feature_count(const kiln_tensor *x, int64_t *features)
{
    int64_t rows;
    return ml_rows_cols(x, &rows, features);
}

/* Element i of a float32/float64/int32/int64 tensor as float32, converted as C converts. */
static float element_as_float(const kiln_tensor *x, int64_t i)
{
    switch (x->dtype) {
    case KILN_FLOAT32: return ((const float *)x->data)[i];
    case KILN_FLOAT64: return (float)((const double *)x->data)[i];
    case KILN_INT32: return (float)((const int32_t *)x->data)[i];
    default: return (float)((const int64_t *)x->data)[i];
    }
}

/* ---- Scaler: y = (x - offset) * scale, per feature or with one value for all ---------------------- */

typedef struct scaler_params {
    const float *offset, *scale;
    int count;
} scaler_params;

static kiln_status scaler_init(op_init_ctx *ctx)
{
    scaler_params *p = ctx->params;
    int n_offset;
    KILN_TRY(op_require_arity(ctx, 1, 1, 1, 1));
    KILN_TRY(op_require_dtype(ctx, 0, ML_NUMBERS));
    KILN_TRY(ml_floats(ctx->node, "scale", &p->scale, &p->count));
    KILN_TRY(ml_floats(ctx->node, "offset", &p->offset, &n_offset));
    if (p->count < 1) return kiln_fail(KILN_ERR_MALFORMED, "attribute 'scale' is required");
    KILN_TRY(ml_require_same_length("scale", p->count, "offset", n_offset));
    ctx->output_dtypes[0] = KILN_FLOAT32;
    return KILN_OK;
}

/* Per-feature attributes have one value per feature, or one for all. */
static kiln_status check_per_feature(const kiln_tensor *x, const char *name, int count)
{
    int64_t features;
    KILN_TRY(feature_count(x, &features));
    if (count != 1 && count != features)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT,
                         "attribute '%s' has %d values for %lld features (1 or %lld expected)", name, count,
                         (long long)features, (long long)features);
    return KILN_OK;
}

static kiln_status scaler_shape(op_ctx *ctx)
{
    const scaler_params *p = ctx->params;
    KILN_TRY(check_per_feature(ctx->inputs[0], "scale", p->count));
    return op_shape_like_input0(ctx);
}

static kiln_status scaler_eval(op_ctx *ctx)
{
    const scaler_params *p = ctx->params;
    const kiln_tensor *x = ctx->inputs[0];
    float *y = ctx->outputs[0]->data;
    int64_t n = tensor_numel(x);
    for (int64_t i = 0; i < n; i++) {
        int k = p->count == 1 ? 0 : (int)(i % p->count);
        if (x->dtype == KILN_FLOAT64) y[i] = (float)((((const double *)x->data)[i] - p->offset[k]) * p->scale[k]);
        else y[i] = (element_as_float(x, i) - p->offset[k]) * p->scale[k];
    }
    return KILN_OK;
}

/* ---- Normalizer: each row divided by its MAX, L1 or L2 norm ------------------------------------------ */

enum { NORM_MAX, NORM_L1, NORM_L2 };

typedef struct normalizer_params {
    int norm;
} normalizer_params;

static kiln_status normalizer_init(op_init_ctx *ctx)
{
    normalizer_params *p = ctx->params;
    static const char *const names[] = {"MAX", "L1", "L2", NULL};
    KILN_TRY(op_require_arity(ctx, 1, 1, 1, 1));
    KILN_TRY(op_require_dtype(ctx, 0, ML_NUMBERS));
    KILN_TRY(attr_choice(ctx->node, "norm", "MAX", names, &p->norm));
    ctx->output_dtypes[0] = KILN_FLOAT32;
    return KILN_OK;
}

static kiln_status rows_shape(op_ctx *ctx)
{
    int64_t rows, cols;
    KILN_TRY(ml_rows_cols(ctx->inputs[0], &rows, &cols));
    return op_shape_like_input0(ctx);
}

/* x * x in the input's type (in double for integers, which cannot overflow there), as float32. */
static float element_squared(const kiln_tensor *x, int64_t i)
{
    if (x->dtype == KILN_FLOAT32) {
        float v = ((const float *)x->data)[i];
        return v * v;
    }
    double v = tensor_get_double(x, i);
    return (float)(v * v);
}

/* One row: MAX divides by the largest value (not the largest magnitude), L1 by the sum of magnitudes, L2
 * takes sqrt(x^2 / sum of squares) with x's sign; a zero norm leaves the row as it is. */
static void normalize_row(int norm, const kiln_tensor *x, int64_t first, int64_t n, float *y)
{
    float total = norm == NORM_MAX ? -3.402823466e+38f : 0.0f;
    for (int64_t i = 0; i < n; i++) {
        float v = element_as_float(x, first + i);
        if (norm == NORM_MAX) total = v > total ? v : total;
        else if (norm == NORM_L1) total += fabsf(v);
        else total += y[i] = element_squared(x, first + i);
    }
    for (int64_t i = 0; i < n; i++) {
        float v = element_as_float(x, first + i);
        if (total == 0.0f) y[i] = v;
        else if (norm == NORM_L2) y[i] = v < 0 ? -sqrtf(y[i] / total) : sqrtf(y[i] / total);
        else y[i] = v / total;
    }
}

static kiln_status normalizer_eval(op_ctx *ctx)
{
    const normalizer_params *p = ctx->params;
    const kiln_tensor *x = ctx->inputs[0];
    int64_t rows, cols;
    KILN_TRY(ml_rows_cols(x, &rows, &cols));
    for (int64_t r = 0; r < rows; r++)
        normalize_row(p->norm, x, r * cols, cols, (float *)ctx->outputs[0]->data + r * cols);
    return KILN_OK;
}

/* ---- Binarizer: 1 where x > threshold, else 0 -------------------------------------------------------- */

typedef struct binarizer_params {
    float threshold;
} binarizer_params;

static kiln_status binarizer_init(op_init_ctx *ctx)
{
    binarizer_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 1, 1, 1, 1));
    KILN_TRY(op_require_dtype(ctx, 0, ML_NUMBERS));
    KILN_TRY(attr_float(ctx->node, "threshold", 0.0f, &p->threshold));
    ctx->output_dtypes[0] = ctx->input_dtypes[0];
    return KILN_OK;
}

/* onnxruntime refuses NaN inputs rather than guess which side they fall on. */
static kiln_status binarizer_eval(op_ctx *ctx)
{
    const binarizer_params *p = ctx->params;
    const kiln_tensor *x = ctx->inputs[0];
    kiln_tensor *y = ctx->outputs[0];
    int64_t n = tensor_numel(x);
    for (int64_t i = 0; i < n; i++) {
        double v = x->dtype == KILN_FLOAT64 ? ((const double *)x->data)[i] : element_as_float(x, i);
        if (isnan(v)) return kiln_fail(KILN_ERR_RUNTIME, "input value %lld is NaN", (long long)i);
        bool above = v > p->threshold;
        switch (y->dtype) {
        case KILN_FLOAT32: ((float *)y->data)[i] = above; break;
        case KILN_FLOAT64: ((double *)y->data)[i] = above; break;
        case KILN_INT32: ((int32_t *)y->data)[i] = above; break;
        default: ((int64_t *)y->data)[i] = above; break;
        }
    }
    return KILN_OK;
}

/* ---- Imputer: replaced_value (NaN matches NaN) becomes the imputed value of its feature --------------- */

typedef struct imputer_params {
    const float *floats;
    const int64_t *ints;
    int count;
    float replaced_float;
    int64_t replaced_int;
} imputer_params;

static kiln_status imputer_init(op_init_ctx *ctx)
{
    imputer_params *p = ctx->params;
    int n_floats, n_ints;
    KILN_TRY(op_require_arity(ctx, 1, 1, 1, 1));
    KILN_TRY(ml_floats(ctx->node, "imputed_value_floats", &p->floats, &n_floats));
    KILN_TRY(ml_ints(ctx->node, "imputed_value_int64s", &p->ints, &n_ints));
    KILN_TRY(attr_float(ctx->node, "replaced_value_float", 0.0f, &p->replaced_float));
    KILN_TRY(attr_int(ctx->node, "replaced_value_int64", 0, &p->replaced_int));
    if ((n_floats > 0) == (n_ints > 0))
        return kiln_fail(KILN_ERR_MALFORMED,
                         "exactly one of 'imputed_value_floats' and 'imputed_value_int64s' is needed");
    p->count = n_floats ? n_floats : n_ints;
    KILN_TRY(op_require_dtype(ctx, 0, (const kiln_dtype[]){n_floats ? KILN_FLOAT32 : KILN_INT64, KILN_UNDEFINED}));
    ctx->output_dtypes[0] = ctx->input_dtypes[0];
    return KILN_OK;
}

static kiln_status imputer_shape(op_ctx *ctx)
{
    const imputer_params *p = ctx->params;
    KILN_TRY(check_per_feature(ctx->inputs[0], p->floats ? "imputed_value_floats" : "imputed_value_int64s", p->count));
    return op_shape_like_input0(ctx);
}

static kiln_status imputer_eval(op_ctx *ctx)
{
    const imputer_params *p = ctx->params;
    const kiln_tensor *x = ctx->inputs[0];
    int64_t n = tensor_numel(x);
    bool replace_nan = isnan(p->replaced_float);
    for (int64_t i = 0; i < n; i++) {
        int k = p->count == 1 ? 0 : (int)(i % p->count);
        if (p->floats) {
            float v = ((const float *)x->data)[i];
            bool replace = (replace_nan && isnan(v)) || v == p->replaced_float;
            ((float *)ctx->outputs[0]->data)[i] = replace ? p->floats[k] : v;
        } else {
            int64_t v = ((const int64_t *)x->data)[i];
            ((int64_t *)ctx->outputs[0]->data)[i] = v == p->replaced_int ? p->ints[k] : v;
        }
    }
    return KILN_OK;
}

/* ---- lookups shared by OneHotEncoder and LabelEncoder ------------------------------------------------ */

/* A key and where it maps to, kept sorted for binary search. Integer keys compare exactly through `i` (a
 * double cannot tell all int64 values apart); float keys have i = 0; string keys (one list never mixes them
 * with numbers) compare bytewise through `s`. */
typedef struct ml_key {
    double f;
    int64_t i;
    const char *s;
    int32_t index;
} ml_key;

static ml_key int_key(int64_t v) { return (ml_key){(double)v, v, NULL, 0}; }
static ml_key float_key(double v) { return (ml_key){v, 0, NULL, 0}; }
static ml_key string_key(const char *v) { return (ml_key){0, 0, v, 0}; }

static int order_keys(const ml_key *a, const ml_key *b)
{
    if (a->s && b->s) return strcmp(a->s, b->s);
    if (a->f != b->f) return a->f < b->f ? -1 : 1;
    return a->i < b->i ? -1 : a->i > b->i;
}

static int compare_ml_keys(const void *pa, const void *pb)
{
    const ml_key *a = pa, *b = pb;
    int order = order_keys(a, b);
    return order ? order : (a->index < b->index ? -1 : a->index > b->index);
}

/* Sorts keys (none NaN); equal keys are an error unless `last_wins` keeps only the last one listed. */
static kiln_status sort_keys(ml_key *keys, int32_t *count, bool last_wins, const char *name)
{
    qsort(keys, (size_t)*count, sizeof *keys, compare_ml_keys);
    int32_t kept = 0;
    for (int32_t k = 0; k < *count; k++) {
        if (kept > 0 && order_keys(&keys[kept - 1], &keys[k]) == 0) {
            if (!last_wins && keys[k].s)
                return kiln_fail(KILN_ERR_MALFORMED, "attribute '%s' lists '%.40s' twice", name, keys[k].s);
            if (!last_wins) return kiln_fail(KILN_ERR_MALFORMED, "attribute '%s' lists %g twice", name, keys[k].f);
            keys[kept - 1] = keys[k];
            continue;
        }
        keys[kept++] = keys[k];
    }
    *count = kept;
    return KILN_OK;
}

/* The index `key` maps to, or -1. */
static int32_t find_key(const ml_key *keys, int32_t count, ml_key key)
{
    int32_t lo = 0, hi = count;
    while (lo < hi) {
        int32_t mid = lo + (hi - lo) / 2;
        if (order_keys(&keys[mid], &key) < 0) lo = mid + 1;
        else hi = mid;
    }
    return lo < count && order_keys(&keys[lo], &key) == 0 ? keys[lo].index : -1;
}

/* ---- OneHotEncoder: [..., category count] with a 1 at the input's category ------------------------- */

typedef struct onehot_params {
    ml_key *categories; /* integers (cats_int64s) or strings (cats_strings) */
    int32_t n_keys, n_categories;
    bool zeros; /* an unknown category gives a row of zeros (else an error) */
} onehot_params;

static kiln_status onehot_init(op_init_ctx *ctx)
{
    onehot_params *p = ctx->params;
    const int64_t *cats;
    const char *const *names;
    int n_cats, n_names;
    int64_t zeros;
    KILN_TRY(op_require_arity(ctx, 1, 1, 1, 1));
    KILN_TRY(ml_ints(ctx->node, "cats_int64s", &cats, &n_cats));
    KILN_TRY(ml_strings(ctx->node, "cats_strings", &names, &n_names));
    KILN_TRY(attr_int(ctx->node, "zeros", 1, &zeros));
    if ((n_cats > 0) == (n_names > 0))
        return kiln_fail(KILN_ERR_MALFORMED, "exactly one of 'cats_int64s' and 'cats_strings' is needed");
    static const kiln_dtype strings[] = {KILN_STRING, KILN_UNDEFINED};
    KILN_TRY(op_require_dtype(ctx, 0, n_names ? strings : ML_NUMBERS));
    int n = n_cats ? n_cats : n_names;
    p->categories = region_alloc(ctx->mem, (size_t)n, sizeof *p->categories);
    if (!p->categories) return KILN_ERR_OUT_OF_MEMORY;
    for (int i = 0; i < n; i++) {
        p->categories[i] = n_cats ? int_key(cats[i]) : string_key(names[i]);
        p->categories[i].index = i;
    }
    p->n_keys = p->n_categories = n;
    p->zeros = zeros != 0;
    ctx->output_dtypes[0] = KILN_FLOAT32;
    return sort_keys(p->categories, &p->n_keys, true, "categories"); /* onnxruntime keeps the last index */
}

static kiln_status onehot_shape(op_ctx *ctx)
{
    const onehot_params *p = ctx->params;
    const kiln_tensor *x = ctx->inputs[0];
    if (x->rank > 2) return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "input must have rank 2 at most, not %d", x->rank);
    int64_t dims[KILN_MAX_RANK];
    memcpy(dims, x->dims, (size_t)x->rank * sizeof *dims);
    dims[x->rank] = p->n_categories;
    op_set_output_shape(ctx, 0, x->rank + 1, dims);
    return KILN_OK;
}

/* The category of element i: strings and integers as they are, floats truncated toward zero (NaN and values
 * beyond int64 match no category). */
static bool element_category(const kiln_tensor *x, int64_t i, ml_key *category)
{
    if (x->dtype == KILN_STRING) {
        *category = string_key(((const char *const *)x->data)[i]);
        return true;
    }
    if (x->dtype == KILN_INT64 || x->dtype == KILN_INT32) {
        *category = int_key(tensor_get_int(x, i));
        return true;
    }
    double v = tensor_get_double(x, i);
    if (!(fabs(v) < 9.2233720368547758e18)) return false;
    *category = int_key((int64_t)v);
    return true;
}

static kiln_status onehot_eval(op_ctx *ctx)
{
    const onehot_params *p = ctx->params;
    const kiln_tensor *x = ctx->inputs[0];
    float *y = ctx->outputs[0]->data;
    int64_t n = tensor_numel(x);
    memset(y, 0, (size_t)n * (size_t)p->n_categories * sizeof *y);
    for (int64_t i = 0; i < n; i++) {
        ml_key category;
        int32_t at = element_category(x, i, &category) ? find_key(p->categories, p->n_keys, category) : -1;
        if (at >= 0) y[i * p->n_categories + at] = 1.0f;
        else if (!p->zeros)
            return kiln_fail(KILN_ERR_RUNTIME, "input value %lld is not a known category", (long long)i);
    }
    return KILN_OK;
}

/* ---- LabelEncoder and CategoryMapper: keys mapped to values, anything else to the default ------------- */

/* keys_* or values_*: one of the int64s / floats / strings lists, or (opset 4) a tensor. */
typedef struct typed_list {
    kiln_dtype dtype;
    int64_t count;
    const int64_t *ints;
    const float *floats;
    const char *const *strings;
    const kiln_tensor *tensor;
} typed_list;

static kiln_status read_typed_list(const graph_node *node, const char *what, typed_list *out)
{
    char name[4][32];
    const char *const suffix[] = {"int64s", "floats", "strings", "tensor"};
    for (int k = 0; k < 4; k++) snprintf(name[k], sizeof name[k], "%s_%s", what, suffix[k]);
    int n_ints, n_floats, n_strings, given = 0;
    memset(out, 0, sizeof *out);
    KILN_TRY(ml_ints(node, name[0], &out->ints, &n_ints));
    KILN_TRY(ml_floats(node, name[1], &out->floats, &n_floats));
    KILN_TRY(ml_strings(node, name[2], &out->strings, &n_strings));
    KILN_TRY(attr_tensor(node, name[3], &out->tensor));
    given = (n_ints > 0) + (n_floats > 0) + (n_strings > 0) + (out->tensor != NULL);
    if (given != 1)
        return kiln_fail(KILN_ERR_MALFORMED, "exactly one of '%s', '%s', '%s' or '%s' is needed", name[0], name[1],
                         name[2], name[3]);
    out->dtype = n_ints ? KILN_INT64 : n_floats ? KILN_FLOAT32 : n_strings ? KILN_STRING : out->tensor->dtype;
    out->count = n_ints ? n_ints : n_floats ? n_floats : n_strings ? n_strings : tensor_numel(out->tensor);
    if (out->tensor && out->count > 0 && !out->tensor->data)
        return kiln_fail(KILN_ERR_MALFORMED, "attribute '%s' has no data", name[3]);
    if (out->tensor && out->dtype == KILN_STRING) out->strings = out->tensor->data;
    static const kiln_dtype supported[] = {KILN_INT64, KILN_INT32, KILN_INT16, KILN_FLOAT32, KILN_FLOAT64, KILN_STRING};
    for (size_t k = 0; k < sizeof supported / sizeof supported[0]; k++)
        if (out->dtype == supported[k]) return KILN_OK;
    return kiln_fail(KILN_ERR_UNSUPPORTED, "%s of type %s are not supported", what, kiln_dtype_name(out->dtype));
}

static bool is_integer_type(kiln_dtype t) { return t == KILN_INT64 || t == KILN_INT32 || t == KILN_INT16; }

static int64_t list_int(const typed_list *l, int64_t k) { return l->ints ? l->ints[k] : tensor_get_int(l->tensor, k); }
static double list_double(const typed_list *l, int64_t k)
{
    return l->ints ? (double)l->ints[k] : l->floats ? l->floats[k] : tensor_get_double(l->tensor, k);
}

typedef struct label_encoder_params {
    ml_key *keys;
    int32_t n_keys;
    int32_t nan_value; /* opset 4 float keys: the value a NaN maps to (NaN keys match NaN), or -1 */
    kiln_dtype key_type, value_type;
    int64_t *int_values;               /* integer values, or */
    double *float_values;              /* float values, or */
    const char *const *string_values;  /* strings */
    int64_t int_default;
    double float_default;
    const char *string_default;
} label_encoder_params;

static kiln_status read_label_default(const op_init_ctx *ctx, label_encoder_params *p)
{
    const kiln_tensor *t;
    float f;
    KILN_TRY(attr_int(ctx->node, "default_int64", -1, &p->int_default));
    KILN_TRY(attr_float(ctx->node, "default_float", -0.0f, &f));
    KILN_TRY(attr_string(ctx->node, "default_string", "_Unused", &p->string_default));
    p->float_default = f;
    KILN_TRY(attr_tensor(ctx->node, "default_tensor", &t));
    if (!t) return KILN_OK;
    if (t->dtype != p->value_type || tensor_numel(t) != 1 || !t->data)
        return kiln_fail(KILN_ERR_MALFORMED, "default_tensor must hold one %s value", kiln_dtype_name(p->value_type));
    if (t->dtype == KILN_STRING) {
        p->string_default = ((const char *const *)t->data)[0];
        return KILN_OK;
    }
    p->int_default = is_integer_type(t->dtype) ? tensor_get_int(t, 0) : 0;
    p->float_default = tensor_get_double(t, 0);
    return KILN_OK;
}

static kiln_status read_label_map(op_init_ctx *ctx, label_encoder_params *p, const typed_list *keys,
                                  const typed_list *values)
{
    if (keys->count > INT32_MAX - 1) return kiln_fail(KILN_ERR_UNSUPPORTED, "too many keys");
    p->keys = region_alloc(ctx->mem, (size_t)keys->count + 1, sizeof *p->keys);
    p->int_values = region_alloc(ctx->mem, (size_t)values->count + 1, sizeof *p->int_values);
    p->float_values = region_alloc(ctx->mem, (size_t)values->count + 1, sizeof *p->float_values);
    if (!p->keys || !p->int_values || !p->float_values) return KILN_ERR_OUT_OF_MEMORY;
    p->string_values = values->strings;
    p->nan_value = -1;
    for (int64_t k = 0; k < keys->count; k++) {
        if (values->dtype != KILN_STRING) {
            p->int_values[k] = is_integer_type(values->dtype) ? list_int(values, k) : 0;
            p->float_values[k] = list_double(values, k);
        }
        ml_key key = keys->dtype == KILN_STRING     ? string_key(keys->strings[k])
                     : is_integer_type(keys->dtype) ? int_key(list_int(keys, k))
                                                    : float_key(list_double(keys, k));
        key.index = (int32_t)k;
        if (!key.s && isnan(key.f)) {
            if (ctx->opset < 4) continue; /* before opset 4 a NaN key matches nothing */
            if (p->nan_value >= 0) return kiln_fail(KILN_ERR_MALFORMED, "the keys list NaN twice");
            p->nan_value = (int32_t)k;
            continue;
        }
        p->keys[p->n_keys++] = key;
    }
    return sort_keys(p->keys, &p->n_keys, false, "keys");
}

/* What LabelEncoder and CategoryMapper share once their keys and values are known. */
static kiln_status label_map_init(op_init_ctx *ctx, const typed_list *keys, const typed_list *values)
{
    label_encoder_params *p = ctx->params;
    KILN_TRY(ml_require_same_length("keys", keys->count, "values", values->count));
    p->key_type = keys->dtype;
    p->value_type = values->dtype;
    KILN_TRY(op_require_dtype(ctx, 0, (const kiln_dtype[]){keys->dtype, KILN_UNDEFINED}));
    KILN_TRY(read_label_default(ctx, p));
    KILN_TRY(read_label_map(ctx, p, keys, values));
    ctx->output_dtypes[0] = values->dtype;
    return KILN_OK;
}

/* LabelEncoder 1 and CategoryMapper map strings to integers or integers to strings, as the input's type
 * says: `keys` and `values` are the pairs in that direction. */
static kiln_status string_int_pairs(const op_init_ctx *ctx, const char *const *strings, const int64_t *ints,
                                    int64_t count, typed_list *keys, typed_list *values)
{
    static const kiln_dtype either[] = {KILN_STRING, KILN_INT64, KILN_UNDEFINED};
    KILN_TRY(op_require_dtype(ctx, 0, either));
    typed_list s = {.dtype = KILN_STRING, .count = count, .strings = strings};
    typed_list i = {.dtype = KILN_INT64, .count = count, .ints = ints};
    bool from_strings = ctx->input_dtypes[0] == KILN_STRING;
    *keys = from_strings ? s : i;
    *values = from_strings ? i : s;
    return KILN_OK;
}

/* Opset 1: classes_strings[k] <-> k. */
static kiln_status label_encoder_v1_init(op_init_ctx *ctx, typed_list *keys, typed_list *values)
{
    const char *const *classes;
    int n;
    KILN_TRY(ml_strings(ctx->node, "classes_strings", &classes, &n));
    int64_t *indices = region_alloc(ctx->mem, (size_t)n + 1, sizeof *indices);
    if (!indices) return KILN_ERR_OUT_OF_MEMORY;
    for (int k = 0; k < n; k++) indices[k] = k;
    return string_int_pairs(ctx, classes, indices, n, keys, values);
}

static kiln_status label_encoder_init(op_init_ctx *ctx)
{
    typed_list keys, values;
    KILN_TRY(op_require_arity(ctx, 1, 1, 1, 1));
    if (ctx->opset < 2) {
        KILN_TRY(label_encoder_v1_init(ctx, &keys, &values));
    } else {
        KILN_TRY(read_typed_list(ctx->node, "keys", &keys));
        KILN_TRY(read_typed_list(ctx->node, "values", &values));
    }
    return label_map_init(ctx, &keys, &values);
}

static kiln_status category_mapper_init(op_init_ctx *ctx)
{
    const char *const *strings;
    const int64_t *ints;
    int n_strings, n_ints;
    typed_list keys, values;
    KILN_TRY(op_require_arity(ctx, 1, 1, 1, 1));
    KILN_TRY(ml_strings(ctx->node, "cats_strings", &strings, &n_strings));
    KILN_TRY(ml_ints(ctx->node, "cats_int64s", &ints, &n_ints));
    KILN_TRY(ml_require_same_length("cats_strings", n_strings, "cats_int64s", n_ints));
    KILN_TRY(string_int_pairs(ctx, strings, ints, n_ints, &keys, &values));
    return label_map_init(ctx, &keys, &values);
}

/* The index element i of x maps to, or -1 (the default). */
static int32_t find_label(const label_encoder_params *p, const kiln_tensor *x, int64_t i)
{
    if (p->key_type == KILN_STRING)
        return find_key(p->keys, p->n_keys, string_key(((const char *const *)x->data)[i]));
    if (is_integer_type(p->key_type)) return find_key(p->keys, p->n_keys, int_key(tensor_get_int(x, i)));
    double v = tensor_get_double(x, i);
    return isnan(v) ? p->nan_value : find_key(p->keys, p->n_keys, float_key(v));
}

static kiln_status label_encoder_eval(op_ctx *ctx)
{
    const label_encoder_params *p = ctx->params;
    const kiln_tensor *x = ctx->inputs[0];
    kiln_tensor *y = ctx->outputs[0];
    int64_t n = tensor_numel(x);
    for (int64_t i = 0; i < n; i++) {
        int32_t at = find_label(p, x, i);
        if (p->value_type == KILN_STRING) {
            const char *copy = region_strdup(ctx->strings, at >= 0 ? p->string_values[at] : p->string_default);
            if (!copy) return KILN_ERR_OUT_OF_MEMORY;
            ((const char **)y->data)[i] = copy;
            continue;
        }
        int64_t iv = at >= 0 ? p->int_values[at] : p->int_default;
        double fv = at >= 0 ? p->float_values[at] : p->float_default;
        switch (p->value_type) {
        case KILN_INT64: ((int64_t *)y->data)[i] = iv; break;
        case KILN_INT32: ((int32_t *)y->data)[i] = (int32_t)iv; break;
        case KILN_INT16: ((int16_t *)y->data)[i] = (int16_t)iv; break;
        case KILN_FLOAT32: ((float *)y->data)[i] = (float)fv; break;
        default: ((double *)y->data)[i] = fv; break;
        }
    }
    return KILN_OK;
}

/* ---- ArrayFeatureExtractor: the last axis' elements at the given indices ----------------------------- */

static kiln_status array_feature_extractor_init(op_init_ctx *ctx)
{
    KILN_TRY(op_require_arity(ctx, 2, 2, 1, 1));
    KILN_TRY(op_require_dtype(ctx, 0, DTYPES_ALL));
    KILN_TRY(op_require_dtype(ctx, 1, (const kiln_dtype[]){KILN_INT64, KILN_UNDEFINED}));
    ctx->output_dtypes[0] = ctx->input_dtypes[0];
    return KILN_OK;
}

/* [F] gives [1, k] (onnxruntime's compatibility rule); otherwise the last axis becomes k. */
static kiln_status array_feature_extractor_shape(op_ctx *ctx)
{
    const kiln_tensor *x = ctx->inputs[0];
    int64_t k = tensor_numel(ctx->inputs[1]);
    if (x->rank < 1) return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "X must have at least one axis");
    if (k < 1) return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "Y holds no indices");
    int64_t dims[KILN_MAX_RANK];
    if (x->rank == 1) {
        op_set_output_shape(ctx, 0, 2, (int64_t[]){1, k});
        return KILN_OK;
    }
    memcpy(dims, x->dims, (size_t)x->rank * sizeof *dims);
    dims[x->rank - 1] = k;
    op_set_output_shape(ctx, 0, x->rank, dims);
    return KILN_OK;
}

static kiln_status array_feature_extractor_eval(op_ctx *ctx)
{
    const kiln_tensor *x = ctx->inputs[0], *indices = ctx->inputs[1];
    int64_t width = x->dims[x->rank - 1], k = tensor_numel(indices), rows = width ? tensor_numel(x) / width : 0;
    size_t size = kiln_dtype_size(x->dtype);
    const int64_t *at = indices->data;
    for (int64_t j = 0; j < k; j++)
        if (at[j] < 0 || at[j] >= width)
            return kiln_fail(KILN_ERR_RUNTIME, "index %lld is out of range for the last axis of size %lld",
                             (long long)at[j], (long long)width);
    const char *src = x->data;
    char *dst = ctx->outputs[0]->data;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t j = 0; j < k; j++) memcpy(dst + (r * k + j) * size, src + (r * width + at[j]) * size, size);
    return KILN_OK;
}

/* ---- FeatureVectorizer: inputs side by side, each cut or zero-padded to its inputdimensions ---------- */

typedef struct feature_vectorizer_params {
    const int64_t *widths;
    int n_widths;
    int64_t total;
} feature_vectorizer_params;

static kiln_status feature_vectorizer_init(op_init_ctx *ctx)
{
    feature_vectorizer_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 1, 4096, 1, 1));
    KILN_TRY(ml_ints(ctx->node, "inputdimensions", &p->widths, &p->n_widths));
    KILN_TRY(ml_require_same_length("inputdimensions", p->n_widths, "the inputs", ctx->n_inputs));
    for (int k = 0; k < ctx->n_inputs; k++) {
        KILN_TRY(op_require_dtype(ctx, k, ML_NUMBERS));
        if (p->widths[k] < 0 || p->widths[k] > KILN_MAX_ELEMENTS)
            return kiln_fail(KILN_ERR_MALFORMED, "inputdimensions[%d] is %lld", k, (long long)p->widths[k]);
        p->total += p->widths[k];
    }
    ctx->output_dtypes[0] = KILN_FLOAT32;
    return KILN_OK;
}

/* Rows and values per row of input k: [F] is one row. */
static void vectorizer_input(const kiln_tensor *x, int64_t *rows, int64_t *per_row)
{
    *rows = x->rank <= 1 ? 1 : x->dims[0];
    *per_row = x->rank <= 1 ? tensor_numel(x) : shape_span(x->dims, 1, x->rank);
}

static kiln_status feature_vectorizer_shape(op_ctx *ctx)
{
    const feature_vectorizer_params *p = ctx->params;
    int64_t rows, first_rows = 0, per_row, numel;
    for (int k = 0; k < ctx->n_inputs; k++) {
        vectorizer_input(ctx->inputs[k], &rows, &per_row);
        if (k == 0) first_rows = rows;
        else if (rows != first_rows)
            return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "input %d has %lld rows, input 0 has %lld", k, (long long)rows,
                             (long long)first_rows);
    }
    KILN_TRY(shape_numel_checked(2, (int64_t[]){first_rows, p->total}, &numel));
    op_set_output_shape(ctx, 0, 2, (int64_t[]){first_rows, p->total});
    return KILN_OK;
}

static kiln_status feature_vectorizer_eval(op_ctx *ctx)
{
    const feature_vectorizer_params *p = ctx->params;
    float *y = ctx->outputs[0]->data;
    int64_t rows = ctx->outputs[0]->dims[0], offset = 0;
    memset(y, 0, (size_t)tensor_numel(ctx->outputs[0]) * sizeof *y);
    for (int k = 0; k < ctx->n_inputs; k++) {
        const kiln_tensor *x = ctx->inputs[k];
        int64_t x_rows, per_row;
        vectorizer_input(x, &x_rows, &per_row);
        int64_t copied = per_row < p->widths[k] ? per_row : p->widths[k];
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < copied; c++) y[r * p->total + offset + c] = element_as_float(x, r * per_row + c);
        offset += p->widths[k];
    }
    return KILN_OK;
}

/* ---- ZipMap: each row of scores as a map from class label to score ----------------------------------- */

/* The output is a sequence of maps, which is not a tensor the planner can size: like the sequence operators
 * ZipMap runs while planning (OP_PLAN_TIME), its maps allocated from the plan's memory. All maps share one
 * keys tensor, and each map's values point into one copy of the scores. */
typedef struct zipmap_params {
    const int64_t *ints;       /* classlabels_int64s, or */
    const char *const *names;  /* classlabels_strings */
    int count;
} zipmap_params;

static kiln_status zipmap_init(op_init_ctx *ctx)
{
    zipmap_params *p = ctx->params;
    int n_ints, n_names;
    KILN_TRY(op_require_arity(ctx, 1, 1, 1, 1));
    if (op_input_type(ctx, 0).kind != VALUE_TENSOR) return kiln_fail(KILN_ERR_MALFORMED, "input 0 must be a tensor");
    KILN_TRY(op_require_dtype(ctx, 0, (const kiln_dtype[]){KILN_FLOAT32, KILN_UNDEFINED}));
    KILN_TRY(ml_ints(ctx->node, "classlabels_int64s", &p->ints, &n_ints));
    KILN_TRY(ml_strings(ctx->node, "classlabels_strings", &p->names, &n_names));
    if ((n_ints > 0) == (n_names > 0))
        return kiln_fail(KILN_ERR_MALFORMED, "exactly one of 'classlabels_int64s' and 'classlabels_strings' is needed");
    p->count = n_ints ? n_ints : n_names;
    kiln_dtype key = n_ints ? KILN_INT64 : KILN_STRING;
    op_set_output_type(ctx, 0, (value_type){VALUE_SEQUENCE, VALUE_MAP, KILN_FLOAT32, key});
    return KILN_OK;
}

/* The keys every map shares, in the plan's memory. */
static kiln_status zipmap_keys(op_ctx *ctx, const zipmap_params *p, kiln_tensor *keys)
{
    *keys = (kiln_tensor){.dtype = p->names ? KILN_STRING : KILN_INT64, .rank = 1, .dims = {p->count}};
    keys->data = region_alloc(ctx->mem, (size_t)p->count, kiln_dtype_size(keys->dtype));
    if (!keys->data) return KILN_ERR_OUT_OF_MEMORY;
    if (!p->names) {
        memcpy(keys->data, p->ints, (size_t)p->count * sizeof *p->ints);
        return KILN_OK;
    }
    for (int k = 0; k < p->count; k++)
        if (!(((const char **)keys->data)[k] = region_strdup(ctx->mem, p->names[k]))) return KILN_ERR_OUT_OF_MEMORY;
    return KILN_OK;
}

static kiln_status zipmap_eval(op_ctx *ctx)
{
    const zipmap_params *p = ctx->params;
    const kiln_tensor *x = ctx->inputs[0];
    kiln_tensor *out = ctx->outputs[0], keys;
    int64_t rows, cols;
    KILN_TRY(ml_rows_cols(x, &rows, &cols));
    if (cols != p->count)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "the input has %lld columns for %d class labels", (long long)cols,
                         p->count);
    KILN_TRY(zipmap_keys(ctx, p, &keys));
    float *values = region_alloc(ctx->mem, (size_t)(rows * cols) + 1, sizeof *values);
    if (!values) return KILN_ERR_OUT_OF_MEMORY;
    if (rows > 0 && cols > 0) memcpy(values, x->data, (size_t)(rows * cols) * sizeof *values);
    KILN_TRY(value_make_list(ctx->mem, KILN_FLOAT32, rows, out));
    for (int64_t r = 0; r < rows; r++)
        KILN_TRY(value_make_map(ctx->mem, &keys, KILN_FLOAT32, values + r * cols, &value_items(out)[r]));
    return KILN_OK;
}

const op_def ops_ml_preprocess[] = {
    {ML_DOMAIN, "Scaler", 1, ML_MAX_OPSET, sizeof(scaler_params), scaler_init, scaler_shape, scaler_eval, 0},
    {ML_DOMAIN, "Normalizer", 1, ML_MAX_OPSET, sizeof(normalizer_params), normalizer_init, rows_shape, normalizer_eval,
     0},
    {ML_DOMAIN, "Binarizer", 1, ML_MAX_OPSET, sizeof(binarizer_params), binarizer_init, op_shape_like_input0,
     binarizer_eval, 0},
    {ML_DOMAIN, "Imputer", 1, ML_MAX_OPSET, sizeof(imputer_params), imputer_init, imputer_shape, imputer_eval, 0},
    {ML_DOMAIN, "OneHotEncoder", 1, ML_MAX_OPSET, sizeof(onehot_params), onehot_init, onehot_shape, onehot_eval, 0},
    {ML_DOMAIN, "LabelEncoder", 1, ML_MAX_OPSET, sizeof(label_encoder_params), label_encoder_init, op_shape_like_input0,
     label_encoder_eval, 0},
    {ML_DOMAIN, "ArrayFeatureExtractor", 1, ML_MAX_OPSET, 0, array_feature_extractor_init,
     array_feature_extractor_shape, array_feature_extractor_eval, 0},
    {ML_DOMAIN, "FeatureVectorizer", 1, ML_MAX_OPSET, sizeof(feature_vectorizer_params), feature_vectorizer_init,
     feature_vectorizer_shape, feature_vectorizer_eval, 0},
    {ML_DOMAIN, "CategoryMapper", 1, ML_MAX_OPSET, sizeof(label_encoder_params), category_mapper_init,
     op_shape_like_input0, label_encoder_eval, 0},
    {ML_DOMAIN, "ZipMap", 1, ML_MAX_OPSET, sizeof(zipmap_params), zipmap_init, NULL, zipmap_eval,
     OP_PLAN_TIME | OP_DATA_DEPENDENT_SHAPE | OP_ANY_VALUE_KIND},
    OP_TABLE_END,
};
