/*
 * normalization.c — BatchNormalization (inference and training mode), InstanceNormalization, LayerNormalization, LRN and
 * MeanVarianceNormalization.
 *
 * Batch normalisation folds its scale and variance into one factor per channel before it touches the data,
 * so its pass over X is a subtract and a multiply-add. The operators that compute statistics
 * (instance, layer and mean-variance normalisation) take the mean first and then the mean squared deviation
 * from it, in double: the one-pass E[x^2] - E[x]^2 loses every digit when the mean is large beside the
 * spread. Rows (or groups, for mean-variance normalisation) are independent and run in parallel.
 *
 * The typed kernels are instantiated for float and double from one macro and reached through a table per
 * element type.
 */
#include <math.h>
#include <string.h>

#include "kernels/strided_sum.h"
#include "ops/axes.h"
#include "ops/numeric_types.h"
#include "ops/op.h"

/* ---- typed kernels -------------------------------------------------------------------------------------- */

typedef struct norm_kernels {
    /* Mean and biased variance of n contiguous values. */
    void (*moments)(const void *x, int64_t n, double *mean, double *var);
    /* y[k] = (x[k] - mean) * factor + shift. */
    void (*standardize)(const void *x, void *y, int64_t n, double mean, double factor, double shift);
    /* y[k] = (x[k] - mean) * inv_std * scale[k % scale_n] + bias[k % bias_n] (bias may be NULL); scale_n and
     * bias_n divide n, and the smaller divides the larger. */
    void (*normalize)(const void *x, void *y, int64_t n, double mean, double inv_std, const void *scale,
                      int64_t scale_n, const void *bias, int64_t bias_n);
    /* Normalises the reduce_layout group at `base` by its own mean and deviation (MVN). */
    void (*mvn_group)(const void *x, void *y, int64_t base, const reduce_layout *l);
    /* LRN of channel c of one image x (channels x spatial). */
    void (*lrn_channel)(const void *x, void *y, int64_t c, int64_t channels, int64_t spatial, double alpha_over_size,
                        double beta, double bias, int64_t size);
} norm_kernels;

/* The deviations are taken in the element type: x - mean is exact or nearly so when the two are close,
 * which is where precision matters. */
#define DEFINE_NORM_KERNELS(D, T, LOWEST, HIGHEST)                                                                     \
    DEFINE_STRIDED_SUM(T)                                                                                              \
    static void moments_##T(const void *xv, int64_t n, double *mean, double *var)                                      \
    {                                                                                                                  \
        double m = n ? strided_sum_##T(xv, n, 1, 0, false) / (double)n : 0;                                            \
        *mean = m;                                                                                                     \
        *var = n ? strided_sum_##T(xv, n, 1, m, true) / (double)n : 0;                                                 \
    }                                                                                                                  \
    static void standardize_##T(const void *xv, void *yv, int64_t n, double mean, double factor, double shift)         \
    {                                                                                                                  \
        const T *x = xv;                                                                                               \
        T *y = yv, m = (T)mean, f = (T)factor, b = (T)shift;                                                           \
        for (int64_t k = 0; k < n; k++) y[k] = (x[k] - m) * f + b;                                                     \
    }                                                                                                                  \
    static void normalize_##T(const void *xv, void *yv, int64_t n, double mean, double inv_std, const void *scale_v,   \
                              int64_t scale_n, const void *bias_v, int64_t bias_n)                                     \
    {                                                                                                                  \
        const T *x = xv, *scale = scale_v, *bias = bias_v;                                                             \
        T *y = yv, m = (T)mean, f = (T)inv_std;                                                                        \
        int64_t period = bias && bias_n < scale_n ? bias_n : scale_n;                                                  \
        for (int64_t o = 0; o < n; o += period) {                                                                      \
            const T *sc = scale + o % scale_n;                                                                         \
            if (bias) {                                                                                                \
                const T *bi = bias + o % bias_n;                                                                       \
                for (int64_t k = 0; k < period; k++) y[o + k] = (x[o + k] - m) * f * sc[k] + bi[k];                    \
            } else {                                                                                                   \
                for (int64_t k = 0; k < period; k++) y[o + k] = (x[o + k] - m) * f * sc[k];                            \
            }                                                                                                          \
        }                                                                                                              \
    }                                                                                                                  \
    static void mvn_group_##T(const void *xv, void *yv, int64_t base, const reduce_layout *l)                          \
    {                                                                                                                  \
        const T *x = (const T *)xv + base;                                                                             \
        T *y = (T *)yv + base;                                                                                         \
        int64_t len = l->run_length, s = l->run_stride;                                                                \
        double sum = 0, squares = 0;                                                                                   \
        for (int64_t r = 0; r < l->n_runs; r++) sum += strided_sum_##T(x + reduce_layout_run(l, r), len, s, 0, false); \
        double mean = sum / (double)l->n_reduced;                                                                      \
        for (int64_t r = 0; r < l->n_runs; r++)                                                                        \
            squares += strided_sum_##T(x + reduce_layout_run(l, r), len, s, mean, true);                               \
        double inv = 1.0 / (sqrt(squares / (double)l->n_reduced) + 1e-9);                                              \
        for (int64_t r = 0; r < l->n_runs; r++)                                                                        \
            for (int64_t k = 0, o = reduce_layout_run(l, r); k < len; k++)                                             \
                y[o + k * s] = (T)(((double)x[o + k * s] - mean) * inv);                                               \
    }                                                                                                                  \
    static void lrn_channel_##T(const void *xv, void *yv, int64_t c, int64_t channels, int64_t spatial,                \
                                double alpha_over_size, double beta, double bias, int64_t size)                        \
    {                                                                                                                  \
        const T *x = xv;                                                                                               \
        T *y = (T *)yv + c * spatial;                                                                                  \
        int64_t first = c - (size - 1) / 2, last = c + size / 2;                                                       \
        if (first < 0) first = 0;                                                                                      \
        if (last > channels - 1) last = channels - 1;                                                                  \
        for (int64_t i = 0; i < spatial; i++) {                                                                        \
            double squares = 0;                                                                                        \
            for (int64_t j = first; j <= last; j++) squares += (double)x[j * spatial + i] * x[j * spatial + i];        \
            y[i] = (T)(x[c * spatial + i] / pow(bias + alpha_over_size * squares, beta));                              \
        }                                                                                                              \
    }                                                                                                                  \
    static const norm_kernels norm_kernels_##T = {moments_##T, standardize_##T, normalize_##T, mvn_group_##T,          \
                                                  lrn_channel_##T};
KILN_FLOAT_TYPES(DEFINE_NORM_KERNELS)

static const norm_kernels *norm_kernels_for(kiln_dtype dtype)
{
    switch (dtype) {
#define NORM_KERNELS_CASE(D, T, LOWEST, HIGHEST)                                                                       \
    case D: return &norm_kernels_##T;
        KILN_FLOAT_TYPES(NORM_KERNELS_CASE)
#undef NORM_KERNELS_CASE
    default: return NULL;
    }
}

/* Rows of a [rows, n] tensor and their typed kernels, as every row-wise job here sees them. */
typedef struct row_job {
    const norm_kernels *k;
    size_t elem_size;
    int64_t n;
    const char *x;
    char *y;
    const op_ctx *ctx;
} row_job;

static row_job row_job_make(const op_ctx *ctx, int64_t n)
{
    const kiln_tensor *in = ctx->inputs[0];
    return (row_job){norm_kernels_for(in->dtype), kiln_dtype_size(in->dtype), n, in->data, ctx->outputs[0]->data, ctx};
}

/* Runs fn over `rows` rows of job->n elements in parallel. */
static kiln_status run_rows(const op_ctx *ctx, row_job *job, int64_t rows, parallel_fn fn)
{
    if (!job->k)
        return kiln_fail(KILN_ERR_INTERNAL, "no normalisation kernel for %s", kiln_dtype_name(ctx->inputs[0]->dtype));
    parallel_for(ctx->parallel, rows, 1 + 16384 / (job->n + 1), fn, job);
    return KILN_OK;
}

/* Fails unless input i holds exactly `count` elements (a per-channel parameter). */
static kiln_status require_count(const op_ctx *ctx, int i, const char *what, int64_t count)
{
    int64_t numel = tensor_numel(ctx->inputs[i]);
    if (numel != count)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "%s (input %d) has %lld elements, expected %lld", what, i,
                         (long long)numel, (long long)count);
    return KILN_OK;
}

static kiln_status require_rank(const kiln_tensor *t, int min_rank)
{
    if (t->rank < min_rank)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "input has rank %d, expected at least %d (N, C, ...)", t->rank,
                         min_rank);
    return KILN_OK;
}

/* Fails unless input i has input 0's dtype. */
static kiln_status require_same_dtype(const op_init_ctx *ctx, int i)
{
    return op_require_dtype(ctx, i, (const kiln_dtype[]){ctx->input_dtypes[0], KILN_UNDEFINED});
}

/* ---- BatchNormalization ------------------------------------------------------------------------------- */

typedef struct batchnorm_params {
    float epsilon;
    float momentum;      /* training: running = running * momentum + batch * (1 - momentum) */
    bool per_activation; /* spatial=0 (opsets 7 and 8): one set of parameters per (C, D1, ...) element */
    bool training;       /* training_mode=1 (opset 14+): normalise by the batch's own statistics */
} batchnorm_params;

static const char *const batchnorm_inputs[] = {"X", "scale", "B", "input_mean", "input_var"};

static kiln_status batchnorm_init(op_init_ctx *ctx)
{
    batchnorm_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 5, 5, 1, ctx->opset >= 14 ? 3 : 5));
    for (int i = 0; i < 5; i++) KILN_TRY(op_require_dtype(ctx, i, DTYPES_FLOAT));
    int64_t training = 0, spatial = 1;
    if (ctx->opset >= 14) KILN_TRY(attr_int(ctx->node, "training_mode", 0, &training));
    if (training != 0 && training != 1)
        return kiln_fail(KILN_ERR_MALFORMED, "training_mode is %lld, not 0 or 1", (long long)training);
    for (int k = 1; k < ctx->n_outputs && !training; k++)
        if (ctx->node->outputs[k] >= 0)
            return kiln_fail(KILN_ERR_UNSUPPORTED, "output %d holds training statistics%s", k,
                             ctx->opset >= 14 ? ", which need training_mode=1" : "; training before opset 14 is not supported");
    if (ctx->opset < 9) KILN_TRY(attr_int(ctx->node, "spatial", 1, &spatial));
    KILN_TRY(attr_float(ctx->node, "epsilon", 1e-5f, &p->epsilon));
    KILN_TRY(attr_float(ctx->node, "momentum", 0.9f, &p->momentum));
    if (!(p->epsilon >= 0) || !isfinite(p->epsilon))
        return kiln_fail(KILN_ERR_MALFORMED, "epsilon must be finite and not negative, not %g", p->epsilon);
    p->per_activation = spatial == 0;
    p->training = training == 1;
    ctx->output_dtypes[0] = ctx->input_dtypes[0];
    for (int k = 1; k < ctx->n_outputs; k++) ctx->output_dtypes[k] = ctx->input_dtypes[2 + k]; /* running stats */
    return KILN_OK;
}

/* The number of (scale, shift) pairs: one per channel, or one per (C, D1, ...) element. */
static int64_t batchnorm_groups(const batchnorm_params *p, const kiln_tensor *x)
{
    return p->per_activation ? shape_span(x->dims, 1, x->rank) : x->dims[1];
}

static kiln_status batchnorm_shape(op_ctx *ctx)
{
    const kiln_tensor *x = ctx->inputs[0];
    KILN_TRY(require_rank(x, 2));
    int64_t groups = batchnorm_groups(ctx->params, x);
    for (int i = 1; i < 5; i++) KILN_TRY(require_count(ctx, i, batchnorm_inputs[i], groups));
    ctx->scratch_bytes = 3 * (size_t)groups * sizeof(double);
    for (int k = 1; k < ctx->n_outputs; k++) op_set_output_shape(ctx, k, 1, &groups);
    return op_shape_like_input0(ctx);
}

/* Row r of [N * groups, per_group], g = r % groups: y = (x - mean[g]) * factor[g] + shift[g]. */
static void batchnorm_rows(void *arg, int64_t begin, int64_t end)
{
    const row_job *job = arg;
    int64_t groups = tensor_numel(job->ctx->inputs[1]);
    const double *mean = job->ctx->scratch, *factor = mean + groups, *shift = factor + groups;
    for (int64_t r = begin; r < end; r++) {
        size_t offset = (size_t)(r * job->n) * job->elem_size;
        int64_t g = r % groups;
        job->k->standardize(job->x + offset, job->y + offset, job->n, mean[g], factor[g], shift[g]);
    }
}

/* Mean and biased variance of channel g over the batch: the N rows' own moments, merged one row at a time
 * by Chan's rule (rows of equal size: the new mean moves by delta / count, and the squared deviations gain
 * the row's own plus delta^2 * (count - 1) / count of a row), which keeps the two-pass precision. */
static void batch_moments(const row_job *job, int64_t g, int64_t batch, int64_t groups, double *mean, double *var)
{
    double m = 0, spread = 0; /* spread: the squared deviations over the rows so far, in units of a row */
    for (int64_t b = 0; b < batch; b++) {
        double row_mean, row_var;
        job->k->moments(job->x + (size_t)((b * groups + g) * job->n) * job->elem_size, job->n, &row_mean, &row_var);
        double count = (double)(b + 1), delta = row_mean - m;
        m += delta / count;
        spread += row_var + delta * delta * (count - 1) / count;
    }
    *mean = m;
    *var = batch ? spread / (double)batch : 0;
}

static void store_double(kiln_tensor *t, int64_t i, double v)
{
    if (t->dtype == KILN_FLOAT32) ((float *)t->data)[i] = (float)v;
    else ((double *)t->data)[i] = v;
}

/* Training mode: the batch's statistics replace input_mean and input_var, which the running outputs blend. */
static void batchnorm_training_stats(op_ctx *ctx, const row_job *job, double *mean, double *var)
{
    const batchnorm_params *p = ctx->params;
    const kiln_tensor *x = ctx->inputs[0];
    int64_t groups = x->dims[1];
    for (int64_t g = 0; g < groups; g++) {
        batch_moments(job, g, x->dims[0], groups, &mean[g], &var[g]);
        double m = p->momentum;
        if (ctx->n_outputs > 1 && ctx->outputs[1])
            store_double(ctx->outputs[1], g, tensor_get_double(ctx->inputs[3], g) * m + mean[g] * (1 - m));
        if (ctx->n_outputs > 2 && ctx->outputs[2])
            store_double(ctx->outputs[2], g, tensor_get_double(ctx->inputs[4], g) * m + var[g] * (1 - m));
    }
}

static kiln_status batchnorm_eval(op_ctx *ctx)
{
    const batchnorm_params *p = ctx->params;
    const kiln_tensor *x = ctx->inputs[0];
    int64_t groups = batchnorm_groups(p, x);
    double *mean = ctx->scratch, *factor = mean + groups, *shift = factor + groups;
    int64_t per_group = groups && x->dims[0] ? tensor_numel(x) / (x->dims[0] * groups) : 0;
    row_job job = row_job_make(ctx, per_group);
    if (p->training) batchnorm_training_stats(ctx, &job, mean, factor); /* factor holds the variance for now */
    for (int64_t g = 0; g < groups; g++) {
        double variance = p->training ? factor[g] : tensor_get_double(ctx->inputs[4], g);
        if (!p->training) mean[g] = tensor_get_double(ctx->inputs[3], g);
        factor[g] = tensor_get_double(ctx->inputs[1], g) / sqrt(variance + p->epsilon);
        shift[g] = tensor_get_double(ctx->inputs[2], g);
    }
    if (tensor_numel(x) == 0) return KILN_OK;
    return run_rows(ctx, &job, x->dims[0] * groups, batchnorm_rows);
}

/* ---- InstanceNormalization ---------------------------------------------------------------------------- */

typedef struct epsilon_params {
    float epsilon;
} epsilon_params;

static kiln_status instancenorm_init(op_init_ctx *ctx)
{
    epsilon_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 3, 3, 1, 1));
    KILN_TRY(op_require_dtype(ctx, 0, DTYPES_FLOAT));
    KILN_TRY(require_same_dtype(ctx, 1));
    KILN_TRY(require_same_dtype(ctx, 2));
    KILN_TRY(attr_float(ctx->node, "epsilon", 1e-5f, &p->epsilon));
    ctx->output_dtypes[0] = ctx->input_dtypes[0];
    return KILN_OK;
}

static kiln_status instancenorm_shape(op_ctx *ctx)
{
    const kiln_tensor *x = ctx->inputs[0];
    KILN_TRY(require_rank(x, 2));
    KILN_TRY(require_count(ctx, 1, "scale", x->dims[1]));
    KILN_TRY(require_count(ctx, 2, "B", x->dims[1]));
    return op_shape_like_input0(ctx);
}

/* Row r = (n, c) of [N * C, spatial], normalised by its own statistics, then scaled by channel c's. */
static void instancenorm_rows(void *arg, int64_t begin, int64_t end)
{
    const row_job *job = arg;
    const epsilon_params *p = job->ctx->params;
    const kiln_tensor *scale = job->ctx->inputs[1], *bias = job->ctx->inputs[2];
    int64_t channels = tensor_numel(scale);
    for (int64_t r = begin; r < end; r++) {
        size_t offset = (size_t)(r * job->n) * job->elem_size;
        int64_t c = r % channels;
        double mean, var;
        job->k->moments(job->x + offset, job->n, &mean, &var);
        job->k->standardize(job->x + offset, job->y + offset, job->n, mean,
                            tensor_get_double(scale, c) / sqrt(var + p->epsilon), tensor_get_double(bias, c));
    }
}

static kiln_status instancenorm_eval(op_ctx *ctx)
{
    const kiln_tensor *x = ctx->inputs[0];
    int64_t rows = x->dims[0] * x->dims[1];
    if (rows == 0) return KILN_OK;
    row_job job = row_job_make(ctx, tensor_numel(x) / rows);
    return run_rows(ctx, &job, rows, instancenorm_rows);
}

/* ---- LayerNormalization ------------------------------------------------------------------------------- */

typedef struct layernorm_params {
    int64_t axis;
    float epsilon;
} layernorm_params;

static kiln_status layernorm_init(op_init_ctx *ctx)
{
    layernorm_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 2, 3, 1, 3));
    KILN_TRY(op_require_dtype(ctx, 0, DTYPES_FLOAT));
    KILN_TRY(require_same_dtype(ctx, 1));
    if (op_has_input(ctx, 2)) KILN_TRY(require_same_dtype(ctx, 2));
    int64_t stash_type;
    KILN_TRY(attr_int(ctx->node, "axis", -1, &p->axis));
    KILN_TRY(attr_float(ctx->node, "epsilon", 1e-5f, &p->epsilon));
    KILN_TRY(attr_int(ctx->node, "stash_type", KILN_FLOAT32, &stash_type));
    if (stash_type != KILN_FLOAT32)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "stash_type %lld is not supported (only 1, float32)",
                         (long long)stash_type);
    ctx->output_dtypes[0] = ctx->input_dtypes[0];
    for (int k = 1; k < ctx->n_outputs; k++) ctx->output_dtypes[k] = KILN_FLOAT32;
    return KILN_OK;
}

/* Whether t's dims, leading 1s aside, are the trailing dims of `dims`: then t repeats along a row of
 * shape `dims`, and element k of the row pairs with t[k % numel(t)]. This is numpy broadcasting of the
 * scale and bias to the normalised shape, bar the rare shapes with inner 1s (e.g. [D1, 1]). */
static bool repeats_along(const kiln_tensor *t, int rank, const int64_t *dims)
{
    int lead = 0;
    while (lead < t->rank && t->dims[lead] == 1) lead++;
    int tail = t->rank - lead;
    if (tail > rank) return false;
    for (int d = 0; d < tail; d++)
        if (t->dims[lead + d] != dims[rank - tail + d]) return false;
    return true;
}

static kiln_status layernorm_shape(op_ctx *ctx)
{
    const layernorm_params *p = ctx->params;
    const kiln_tensor *x = ctx->inputs[0];
    int axis;
    KILN_TRY(axis_resolve(p->axis, x->rank, &axis));
    for (int i = 1; i < ctx->n_inputs; i++) {
        if (!ctx->inputs[i] || repeats_along(ctx->inputs[i], x->rank - axis, x->dims + axis)) continue;
        char a[128], b[128];
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "%s %s does not broadcast to the normalised shape %s",
                         i == 1 ? "Scale" : "B", shape_format(a, sizeof a, ctx->inputs[i]->rank, ctx->inputs[i]->dims),
                         shape_format(b, sizeof b, x->rank - axis, x->dims + axis));
    }
    int64_t stat_dims[KILN_MAX_RANK];
    for (int d = 0; d < x->rank; d++) stat_dims[d] = d < axis ? x->dims[d] : 1;
    op_set_output_shape(ctx, 0, x->rank, x->dims);
    for (int k = 1; k < ctx->n_outputs; k++) op_set_output_shape(ctx, k, x->rank, stat_dims);
    return KILN_OK;
}

/* Row r of [outer, n]: y = (x - mean) / sqrt(var + epsilon) * Scale + B; Mean and InvStdDev if asked for. */
static void layernorm_rows(void *arg, int64_t begin, int64_t end)
{
    const row_job *job = arg;
    const op_ctx *ctx = job->ctx;
    const layernorm_params *p = job->ctx->params;
    const kiln_tensor *scale = ctx->inputs[1], *bias = ctx->n_inputs > 2 ? ctx->inputs[2] : NULL;
    float *mean_out = ctx->n_outputs > 1 && ctx->outputs[1] ? ctx->outputs[1]->data : NULL;
    float *inv_std_out = ctx->n_outputs > 2 && ctx->outputs[2] ? ctx->outputs[2]->data : NULL;
    for (int64_t r = begin; r < end; r++) {
        size_t offset = (size_t)(r * job->n) * job->elem_size;
        double mean, var;
        job->k->moments(job->x + offset, job->n, &mean, &var);
        double inv_std = 1.0 / sqrt(var + p->epsilon);
        job->k->normalize(job->x + offset, job->y + offset, job->n, mean, inv_std, scale->data, tensor_numel(scale),
                          bias ? bias->data : NULL, bias ? tensor_numel(bias) : 1);
        if (mean_out) mean_out[r] = (float)mean;
        if (inv_std_out) inv_std_out[r] = (float)inv_std;
    }
}

static kiln_status layernorm_eval(op_ctx *ctx)
{
    const layernorm_params *p = ctx->params;
    const kiln_tensor *x = ctx->inputs[0];
    int axis;
    KILN_TRY(axis_resolve(p->axis, x->rank, &axis));
    axis_split split = axis_split_tail(axis, x->rank, x->dims);
    if (split.n == 0) return KILN_OK; /* no elements; Mean and InvStdDev then have none either */
    row_job job = row_job_make(ctx, split.n);
    return run_rows(ctx, &job, split.outer, layernorm_rows);
}

/* ---- LRN ---------------------------------------------------------------------------------------------- */

typedef struct lrn_params {
    float alpha, beta, bias;
    int64_t size;
} lrn_params;

static kiln_status lrn_init(op_init_ctx *ctx)
{
    lrn_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 1, 1, 1, 1));
    KILN_TRY(op_require_dtype(ctx, 0, DTYPES_FLOAT));
    if (!graph_node_attr(ctx->node, "size")) return kiln_fail(KILN_ERR_MALFORMED, "attribute 'size' is required");
    KILN_TRY(attr_int(ctx->node, "size", 1, &p->size));
    if (p->size < 1) return kiln_fail(KILN_ERR_MALFORMED, "size %lld must be at least 1", (long long)p->size);
    KILN_TRY(attr_float(ctx->node, "alpha", 1e-4f, &p->alpha));
    KILN_TRY(attr_float(ctx->node, "beta", 0.75f, &p->beta));
    KILN_TRY(attr_float(ctx->node, "bias", 1.0f, &p->bias));
    ctx->output_dtypes[0] = ctx->input_dtypes[0];
    return KILN_OK;
}

static kiln_status lrn_shape(op_ctx *ctx)
{
    KILN_TRY(require_rank(ctx->inputs[0], 2));
    return op_shape_like_input0(ctx);
}

/* Row r = (n, c): channel c of image n, normalised by the squares of its neighbouring channels. */
static void lrn_rows(void *arg, int64_t begin, int64_t end)
{
    const row_job *job = arg;
    const lrn_params *p = job->ctx->params;
    int64_t channels = job->ctx->inputs[0]->dims[1];
    for (int64_t r = begin; r < end; r++) {
        size_t image = (size_t)(r / channels * channels * job->n) * job->elem_size;
        job->k->lrn_channel(job->x + image, job->y + image, r % channels, channels, job->n,
                            (double)p->alpha / (double)p->size, p->beta, p->bias, p->size);
    }
}

static kiln_status lrn_eval(op_ctx *ctx)
{
    const kiln_tensor *x = ctx->inputs[0];
    int64_t rows = x->dims[0] * x->dims[1];
    if (rows == 0) return KILN_OK;
    row_job job = row_job_make(ctx, tensor_numel(x) / rows);
    return run_rows(ctx, &job, rows, lrn_rows);
}

/* ---- MeanVarianceNormalization ------------------------------------------------------------------------ */

typedef struct mvn_params {
    int n_axes;
    int64_t axes[KILN_MAX_RANK];
} mvn_params;

static kiln_status mvn_init(op_init_ctx *ctx)
{
    mvn_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 1, 1, 1, 1));
    KILN_TRY(op_require_dtype(ctx, 0, DTYPES_FLOAT));
    KILN_TRY(attr_ints(ctx->node, "axes", p->axes, KILN_MAX_RANK, &p->n_axes));
    if (!graph_node_attr(ctx->node, "axes")) {
        static const int64_t per_channel[] = {0, 2, 3};
        memcpy(p->axes, per_channel, sizeof per_channel);
        p->n_axes = 3;
    }
    ctx->output_dtypes[0] = ctx->input_dtypes[0];
    return KILN_OK;
}

static kiln_status mvn_layout(const op_ctx *ctx, reduce_layout *l)
{
    const mvn_params *p = ctx->params;
    const kiln_tensor *x = ctx->inputs[0];
    bool mask[KILN_MAX_RANK];
    KILN_TRY(axes_to_mask(p->axes, p->n_axes, x->rank, mask));
    reduce_layout_init(l, x->rank, x->dims, mask);
    return KILN_OK;
}

static kiln_status mvn_shape(op_ctx *ctx)
{
    reduce_layout l;
    KILN_TRY(mvn_layout(ctx, &l));
    return op_shape_like_input0(ctx);
}

typedef struct mvn_job {
    reduce_layout layout;
    const norm_kernels *k;
    const void *x;
    void *y;
} mvn_job;

static void mvn_groups(void *arg, int64_t begin, int64_t end)
{
    const mvn_job *job = arg;
    for (int64_t g = begin; g < end; g++)
        job->k->mvn_group(job->x, job->y, reduce_layout_base(&job->layout, g), &job->layout);
}

static kiln_status mvn_eval(op_ctx *ctx)
{
    mvn_job job = {.k = norm_kernels_for(ctx->inputs[0]->dtype), .x = ctx->inputs[0]->data, .y = ctx->outputs[0]->data};
    KILN_TRY(mvn_layout(ctx, &job.layout));
    if (!job.k)
        return kiln_fail(KILN_ERR_INTERNAL, "no normalisation kernel for %s", kiln_dtype_name(ctx->inputs[0]->dtype));
    parallel_for(ctx->parallel, job.layout.n_out, 1 + 16384 / (job.layout.n_reduced + 1), mvn_groups, &job);
    return KILN_OK;
}

const op_def ops_normalization[] = {
    {"", "BatchNormalization", 7, 18, sizeof(batchnorm_params), batchnorm_init, batchnorm_shape, batchnorm_eval, 0},
    {"", "InstanceNormalization", 1, 18, sizeof(epsilon_params), instancenorm_init, instancenorm_shape,
     instancenorm_eval, 0},
    {"", "LayerNormalization", 17, 18, sizeof(layernorm_params), layernorm_init, layernorm_shape, layernorm_eval, 0},
    {"", "LRN", 1, 18, sizeof(lrn_params), lrn_init, lrn_shape, lrn_eval, 0},
    {"", "MeanVarianceNormalization", 9, 18, sizeof(mvn_params), mvn_init, mvn_shape, mvn_eval, 0},
    OP_TABLE_END,
};
