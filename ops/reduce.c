/*
 * reduce.c — the Reduce* operators (Sum, Mean, Max, Min, Prod, L1, L2, LogSum, LogSumExp, SumSquare) and
 * ArgMax / ArgMin.
 *
 * Every Reduce* operator is a fold over each output's reduced set followed by a finish (ReduceL2 is the
 * square root of a sum of squares, ReduceLogSumExp the max plus the log of a sum of exps shifted by that
 * max so nothing overflows), so one driver runs them all over a reduce_layout (axes.h). Floats, and the
 * transcendental operators on integers, fold in double; integer sums, products and extremes fold exactly
 * in 64 bits and wrap as the type's own arithmetic would. An empty reduced set gives the fold's identity:
 * 0 for sums, 1 for products, -inf / +inf (the type's limits for integers) for max / min.
 *
 * The axes come from the `axes` attribute before opset 13 (ReduceSum) or 18 (the others), and from the
 * optional second input afterwards; that input decides the output's shape, so it is a value input.
 */
#include <math.h>
#include <string.h>

#include "core/dtype.h"
#include "kernels/strided_sum.h"
#include "ops/axes.h"
#include "ops/numeric_types.h"
#include "ops/op.h"

/* Output dims of a reduction over `mask`: reduced dims become 1 or disappear. Returns the rank. */
static int reduced_shape(int rank, const int64_t *dims, const bool *mask, bool keepdims, int64_t *out)
{
    int out_rank = 0;
    for (int d = 0; d < rank; d++) {
        if (!mask[d])
            out[out_rank++] = dims[d];
        else if (keepdims)
            out[out_rank++] = 1;
    }
    return out_rank;
}

/* ---- folds: one typed loop per element type --------------------------------------------------------- */

typedef enum fold_kind {
    FOLD_SUM,
    FOLD_SUM_ABS,
    FOLD_SUM_SQUARE,
    FOLD_SUM_EXP, /* sum of exp(v - shift) */
    FOLD_PROD,
    FOLD_MAX,
    FOLD_MIN,
} fold_kind;

/* Folds the reduced set starting at element `base` into `acc`. Max and min propagate NaN as numpy does. */
typedef double (*fold_double_fn)(const void *x, int64_t base, const reduce_layout *l, fold_kind f, double acc,
                                 double shift);
/* Folds exactly in 64 bits; max and min return the extreme value converted to uint64_t. */
typedef uint64_t (*fold_int_fn)(const void *x, int64_t base, const reduce_layout *l, fold_kind f);

#define DEFINE_STRIDED_SUM_OF(D, T, LOWEST, HIGHEST) DEFINE_STRIDED_SUM(T)
KILN_NUMERIC_TYPES(DEFINE_STRIDED_SUM_OF)

#define DEFINE_FOLD_DOUBLE(D, T, LOWEST, HIGHEST)                                                                      \
    static double fold_double_##T(const void *data, int64_t base, const reduce_layout *l, fold_kind f, double acc,     \
                                  double shift)                                                                        \
    {                                                                                                                  \
        const T *x = (const T *)data + base;                                                                           \
        int64_t len = l->run_length, s = l->run_stride;                                                                \
        for (int64_t r = 0; r < l->n_runs; r++) {                                                                      \
            const T *p = x + reduce_layout_run(l, r);                                                                  \
            switch (f) {                                                                                               \
            case FOLD_SUM: acc += strided_sum_##T(p, len, s, 0, false); break;                                         \
            case FOLD_SUM_SQUARE: acc += strided_sum_##T(p, len, s, 0, true); break;                                   \
            case FOLD_SUM_ABS:                                                                                         \
                for (int64_t k = 0; k < len; k++) acc += fabs((double)p[k * s]);                                       \
                break;                                                                                                 \
            case FOLD_SUM_EXP:                                                                                         \
                for (int64_t k = 0; k < len; k++) acc += exp((double)p[k * s] - shift);                                \
                break;                                                                                                 \
            case FOLD_PROD:                                                                                            \
                for (int64_t k = 0; k < len; k++) acc *= (double)p[k * s];                                             \
                break;                                                                                                 \
            case FOLD_MAX:                                                                                             \
                for (int64_t k = 0; k < len; k++) {                                                                    \
                    double v = (double)p[k * s];                                                                       \
                    if (v > acc || isnan(v)) acc = v;                                                                  \
                }                                                                                                      \
                break;                                                                                                 \
            case FOLD_MIN:                                                                                             \
                for (int64_t k = 0; k < len; k++) {                                                                    \
                    double v = (double)p[k * s];                                                                       \
                    if (v < acc || isnan(v)) acc = v;                                                                  \
                }                                                                                                      \
                break;                                                                                                 \
            }                                                                                                          \
        }                                                                                                              \
        return acc;                                                                                                    \
    }
KILN_NUMERIC_TYPES(DEFINE_FOLD_DOUBLE)

/* Unsigned 64-bit arithmetic wraps by definition, and its low bits are those of the type's own sum or
 * product, so the result converts back exactly as if the type had done the work. */
#define DEFINE_FOLD_INT(D, T, LOWEST, HIGHEST)                                                                         \
    static uint64_t fold_int_##T(const void *data, int64_t base, const reduce_layout *l, fold_kind f)                  \
    {                                                                                                                  \
        const T *x = (const T *)data + base;                                                                           \
        uint64_t acc = f == FOLD_PROD ? 1 : 0;                                                                         \
        T extreme = f == FOLD_MAX ? LOWEST : HIGHEST;                                                                  \
        for (int64_t r = 0; r < l->n_runs; r++) {                                                                      \
            const T *p = x + reduce_layout_run(l, r);                                                                  \
            for (int64_t k = 0; k < l->run_length; k++) {                                                              \
                T v = p[k * l->run_stride];                                                                            \
                switch (f) {                                                                                           \
                case FOLD_SUM: acc += (uint64_t)v; break;                                                              \
                case FOLD_SUM_ABS: acc += v > 0 ? (uint64_t)v : 0 - (uint64_t)v; break;                                \
                case FOLD_SUM_SQUARE: acc += (uint64_t)v * (uint64_t)v; break;                                         \
                case FOLD_PROD: acc *= (uint64_t)v; break;                                                             \
                case FOLD_MAX: extreme = v > extreme ? v : extreme; break;                                             \
                case FOLD_MIN: extreme = v < extreme ? v : extreme; break;                                             \
                case FOLD_SUM_EXP: break; /* integers fold exps in double */                                           \
                }                                                                                                      \
            }                                                                                                          \
        }                                                                                                              \
        return f == FOLD_MAX || f == FOLD_MIN ? (uint64_t)extreme : acc;                                               \
    }
KILN_INTEGER_TYPES(DEFINE_FOLD_INT)

static fold_double_fn fold_double_for(kiln_dtype dtype)
{
    switch (dtype) {
#define FOLD_DOUBLE_CASE(D, T, LOWEST, HIGHEST)                                                                        \
    case D: return fold_double_##T;
        KILN_NUMERIC_TYPES(FOLD_DOUBLE_CASE)
#undef FOLD_DOUBLE_CASE
    default: return NULL;
    }
}

static fold_int_fn fold_int_for(kiln_dtype dtype)
{
    switch (dtype) {
#define FOLD_INT_CASE(D, T, LOWEST, HIGHEST)                                                                           \
    case D: return fold_int_##T;
        KILN_INTEGER_TYPES(FOLD_INT_CASE)
#undef FOLD_INT_CASE
    default: return NULL;
    }
}

/* Double to integer without the undefined behaviour of converting NaN or an out-of-range value. */
static int64_t double_to_int64(double v)
{
    if (isnan(v)) return 0;
    if (v >= 9223372036854775807.0) return INT64_MAX;
    if (v <= -9223372036854775808.0) return INT64_MIN;
    return (int64_t)v;
}

static void store_double(kiln_dtype dtype, void *y, int64_t i, double v)
{
    switch (dtype) {
#define STORE_FLOAT_CASE(D, T, LOWEST, HIGHEST)                                                                        \
    case D: ((T *)y)[i] = (T)v; break;
#define STORE_INT_CASE(D, T, LOWEST, HIGHEST)                                                                          \
    case D: ((T *)y)[i] = (T)double_to_int64(v); break;
        KILN_FLOAT_TYPES(STORE_FLOAT_CASE)
        KILN_INTEGER_TYPES(STORE_INT_CASE)
#undef STORE_FLOAT_CASE
#undef STORE_INT_CASE
    default: break;
    }
}

static void store_bits(kiln_dtype dtype, void *y, int64_t i, uint64_t bits)
{
    switch (dtype) {
#define STORE_BITS_CASE(D, T, LOWEST, HIGHEST)                                                                         \
    case D: ((T *)y)[i] = (T)bits; break;
        KILN_INTEGER_TYPES(STORE_BITS_CASE)
#undef STORE_BITS_CASE
    default: break;
    }
}

/* ---- the Reduce* operators ---------------------------------------------------------------------------- */

typedef enum reduce_kind {
    REDUCE_SUM,
    REDUCE_MEAN,
    REDUCE_MAX,
    REDUCE_MIN,
    REDUCE_PROD,
    REDUCE_L1,
    REDUCE_L2,
    REDUCE_LOG_SUM,
    REDUCE_LOG_SUM_EXP,
    REDUCE_SUM_SQUARE,
} reduce_kind;

typedef struct reduce_op {
    const char *op_type;
    reduce_kind kind;
    int axes_input_since; /* the opset from which axes is an input instead of an attribute */
} reduce_op;

static const reduce_op reduce_ops[] = {
    {"ReduceSum", REDUCE_SUM, 13},
    {"ReduceMean", REDUCE_MEAN, 18},
    {"ReduceMax", REDUCE_MAX, 18},
    {"ReduceMin", REDUCE_MIN, 18},
    {"ReduceProd", REDUCE_PROD, 18},
    {"ReduceL1", REDUCE_L1, 18},
    {"ReduceL2", REDUCE_L2, 18},
    {"ReduceLogSum", REDUCE_LOG_SUM, 18},
    {"ReduceLogSumExp", REDUCE_LOG_SUM_EXP, 18},
    {"ReduceSumSquare", REDUCE_SUM_SQUARE, 18},
};

typedef struct reduce_params {
    reduce_kind kind;
    bool in_double; /* fold in double: floats, and the transcendental operators on integers */
    bool keepdims, noop_with_empty_axes, axes_from_input;
    int n_axes; /* from the attribute */
    int64_t axes[KILN_MAX_RANK];
} reduce_params;

static const reduce_op *find_reduce_op(const char *op_type)
{
    for (size_t i = 0; i < sizeof reduce_ops / sizeof reduce_ops[0]; i++)
        if (strcmp(reduce_ops[i].op_type, op_type) == 0) return &reduce_ops[i];
    return NULL;
}

static kiln_status reduce_init(op_init_ctx *ctx)
{
    reduce_params *p = ctx->params;
    const reduce_op *op = find_reduce_op(ctx->node->op_type);
    if (!op) return kiln_fail(KILN_ERR_INTERNAL, "'%s' is not a Reduce operator", ctx->node->op_type);
    p->kind = op->kind;
    p->axes_from_input = ctx->opset >= op->axes_input_since;
    KILN_TRY(op_require_arity(ctx, 1, p->axes_from_input ? 2 : 1, 1, 1));
    KILN_TRY(op_require_dtype(ctx, 0, DTYPES_NUMERIC));
    int64_t keepdims, noop;
    KILN_TRY(attr_int(ctx->node, "keepdims", 1, &keepdims));
    p->keepdims = keepdims != 0;
    if (p->axes_from_input) {
        KILN_TRY(attr_int(ctx->node, "noop_with_empty_axes", 0, &noop));
        p->noop_with_empty_axes = noop != 0;
        if (op_has_input(ctx, 1)) {
            KILN_TRY(op_require_dtype(ctx, 1, (const kiln_dtype[]){KILN_INT64, KILN_UNDEFINED}));
            ctx->value_inputs = 1u << 1;
        }
    } else {
        KILN_TRY(attr_ints(ctx->node, "axes", p->axes, KILN_MAX_RANK, &p->n_axes));
    }
    kiln_dtype dtype = ctx->input_dtypes[0];
    p->in_double =
        dtype_is_float(dtype) || p->kind == REDUCE_L2 || p->kind == REDUCE_LOG_SUM || p->kind == REDUCE_LOG_SUM_EXP;
    ctx->output_dtypes[0] = dtype;
    return KILN_OK;
}

/* The dims this call reduces. Empty axes mean all dims, or none (*noop: the output is the input) when
 * noop_with_empty_axes is set. */
static kiln_status reduce_mask(const op_ctx *ctx, bool *mask, bool *noop)
{
    const reduce_params *p = ctx->params;
    int rank = ctx->inputs[0]->rank;
    int64_t axes[KILN_MAX_RANK];
    int n = p->n_axes;
    if (n > 0) memcpy(axes, p->axes, (size_t)n * sizeof *axes);
    if (p->axes_from_input && ctx->n_inputs > 1 && ctx->inputs[1]) KILN_TRY(axes_from_tensor(ctx->inputs[1], axes, &n));
    *noop = n == 0 && p->noop_with_empty_axes;
    if (n > 0) return axes_to_mask(axes, n, rank, mask);
    for (int d = 0; d < rank; d++) mask[d] = !*noop;
    return KILN_OK;
}

static kiln_status reduce_shape(op_ctx *ctx)
{
    const reduce_params *p = ctx->params;
    const kiln_tensor *in = ctx->inputs[0];
    bool mask[KILN_MAX_RANK], noop;
    KILN_TRY(reduce_mask(ctx, mask, &noop));
    int64_t dims[KILN_MAX_RANK];
    int rank = reduced_shape(in->rank, in->dims, mask, p->keepdims, dims);
    op_set_output_shape(ctx, 0, rank, dims);
    return KILN_OK;
}

typedef struct reduce_job {
    reduce_layout layout;
    reduce_kind kind;
    kiln_dtype dtype;
    bool is_signed;
    fold_double_fn fold_double; /* exactly one of the two folds is set */
    fold_int_fn fold_int;
    const void *x;
    void *y;
} reduce_job;

static double reduce_in_double(const reduce_job *job, int64_t base)
{
    const reduce_layout *l = &job->layout;
    fold_double_fn fold = job->fold_double;
    switch (job->kind) {
    case REDUCE_SUM: return fold(job->x, base, l, FOLD_SUM, 0, 0);
    case REDUCE_MEAN: return fold(job->x, base, l, FOLD_SUM, 0, 0) / (double)l->n_reduced;
    case REDUCE_MAX: return fold(job->x, base, l, FOLD_MAX, -INFINITY, 0);
    case REDUCE_MIN: return fold(job->x, base, l, FOLD_MIN, INFINITY, 0);
    case REDUCE_PROD: return fold(job->x, base, l, FOLD_PROD, 1, 0);
    case REDUCE_L1: return fold(job->x, base, l, FOLD_SUM_ABS, 0, 0);
    case REDUCE_L2: return sqrt(fold(job->x, base, l, FOLD_SUM_SQUARE, 0, 0));
    case REDUCE_LOG_SUM: return log(fold(job->x, base, l, FOLD_SUM, 0, 0));
    case REDUCE_SUM_SQUARE: return fold(job->x, base, l, FOLD_SUM_SQUARE, 0, 0);
    case REDUCE_LOG_SUM_EXP: {
        double max = fold(job->x, base, l, FOLD_MAX, -INFINITY, 0);
        if (isinf(max) || isnan(max)) return max; /* empty, all -inf, or an inf or NaN that decides the sum */
        return max + log(fold(job->x, base, l, FOLD_SUM_EXP, 0, max));
    }
    }
    return 0;
}

static uint64_t reduce_in_int(const reduce_job *job, int64_t base)
{
    const reduce_layout *l = &job->layout;
    fold_int_fn fold = job->fold_int;
    switch (job->kind) {
    case REDUCE_SUM: return fold(job->x, base, l, FOLD_SUM);
    case REDUCE_MAX: return fold(job->x, base, l, FOLD_MAX);
    case REDUCE_MIN: return fold(job->x, base, l, FOLD_MIN);
    case REDUCE_PROD: return fold(job->x, base, l, FOLD_PROD);
    case REDUCE_L1: return fold(job->x, base, l, FOLD_SUM_ABS);
    case REDUCE_SUM_SQUARE: return fold(job->x, base, l, FOLD_SUM_SQUARE);
    case REDUCE_MEAN: {
        uint64_t sum = fold(job->x, base, l, FOLD_SUM);
        int64_t n = l->n_reduced;
        if (n == 0) return 0;
        return job->is_signed ? (uint64_t)((int64_t)sum / n) : sum / (uint64_t)n;
    }
    default: return 0; /* the transcendental operators fold in double */
    }
}

static void reduce_range(void *arg, int64_t begin, int64_t end)
{
    const reduce_job *job = arg;
    for (int64_t o = begin; o < end; o++) {
        int64_t base = reduce_layout_base(&job->layout, o);
        if (job->fold_double)
            store_double(job->dtype, job->y, o, reduce_in_double(job, base));
        else
            store_bits(job->dtype, job->y, o, reduce_in_int(job, base));
    }
}

static kiln_status reduce_eval(op_ctx *ctx)
{
    const reduce_params *p = ctx->params;
    const kiln_tensor *in = ctx->inputs[0];
    bool mask[KILN_MAX_RANK], noop;
    KILN_TRY(reduce_mask(ctx, mask, &noop));
    if (noop) {
        if (tensor_bytes(in)) memcpy(ctx->outputs[0]->data, in->data, tensor_bytes(in));
        return KILN_OK;
    }
    reduce_job job = {.kind = p->kind,
                      .dtype = in->dtype,
                      .is_signed = dtype_is_signed_integer(in->dtype),
                      .x = in->data,
                      .y = ctx->outputs[0]->data};
    reduce_layout_init(&job.layout, in->rank, in->dims, mask);
    if (p->in_double)
        job.fold_double = fold_double_for(in->dtype);
    else
        job.fold_int = fold_int_for(in->dtype);
    if (!job.fold_double && !job.fold_int)
        return kiln_fail(KILN_ERR_INTERNAL, "no reduction kernel for %s", kiln_dtype_name(in->dtype));
    int64_t grain = 1 + 16384 / (job.layout.n_reduced + 1);
    parallel_for(ctx->parallel, job.layout.n_out, grain, reduce_range, &job);
    return KILN_OK;
}

/* ---- ArgMax and ArgMin -------------------------------------------------------------------------------- */

typedef struct arg_params {
    int64_t axis;
    bool keepdims, select_last_index, want_min;
} arg_params;

/* Index of the extreme of x[0], x[stride], ... x[(n-1)*stride], n >= 1. Ties go to the first index (the
 * last with `last`); a NaN beats every number, as in numpy. */
typedef int64_t (*arg_extreme_fn)(const void *x, int64_t n, int64_t stride, bool want_min, bool last);

#define DEFINE_ARG_EXTREME(D, T, LOWEST, HIGHEST)                                                                      \
    static int64_t arg_extreme_##T(const void *data, int64_t n, int64_t stride, bool want_min, bool last)              \
    {                                                                                                                  \
        const T *x = data;                                                                                             \
        int64_t best = 0;                                                                                              \
        T b = x[0];                                                                                                    \
        for (int64_t j = 1; j < n; j++) {                                                                              \
            T v = x[j * stride];                                                                                       \
            bool wins = VALUE_IS_NAN(b) ? last && VALUE_IS_NAN(v)                                                      \
                                        : VALUE_IS_NAN(v) || (want_min ? v < b : v > b) || (last && v == b);           \
            if (wins) {                                                                                                \
                best = j;                                                                                              \
                b = v;                                                                                                 \
            }                                                                                                          \
        }                                                                                                              \
        return best;                                                                                                   \
    }
KILN_NUMERIC_TYPES(DEFINE_ARG_EXTREME)

static arg_extreme_fn arg_extreme_for(kiln_dtype dtype)
{
    switch (dtype) {
#define ARG_EXTREME_CASE(D, T, LOWEST, HIGHEST)                                                                        \
    case D: return arg_extreme_##T;
        KILN_NUMERIC_TYPES(ARG_EXTREME_CASE)
#undef ARG_EXTREME_CASE
    default: return NULL;
    }
}

static kiln_status arg_init(op_init_ctx *ctx, bool want_min)
{
    arg_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 1, 1, 1, 1));
    KILN_TRY(op_require_dtype(ctx, 0, DTYPES_NUMERIC));
    int64_t keepdims, last;
    KILN_TRY(attr_int(ctx->node, "axis", 0, &p->axis));
    KILN_TRY(attr_int(ctx->node, "keepdims", 1, &keepdims));
    KILN_TRY(attr_int(ctx->node, "select_last_index", 0, &last));
    p->keepdims = keepdims != 0;
    p->select_last_index = last != 0;
    p->want_min = want_min;
    ctx->output_dtypes[0] = KILN_INT64;
    return KILN_OK;
}

static kiln_status argmax_init(op_init_ctx *ctx) { return arg_init(ctx, false); }
static kiln_status argmin_init(op_init_ctx *ctx) { return arg_init(ctx, true); }

static kiln_status arg_shape(op_ctx *ctx)
{
    const arg_params *p = ctx->params;
    const kiln_tensor *in = ctx->inputs[0];
    int axis;
    KILN_TRY(axis_resolve(p->axis, in->rank, &axis));
    axis_split split = axis_split_single(axis, in->rank, in->dims);
    if (split.n == 0 && split.outer * split.inner > 0)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "axis %d has size 0: there is no extreme to index", axis);
    bool mask[KILN_MAX_RANK] = {false};
    mask[axis] = true;
    int64_t dims[KILN_MAX_RANK];
    int rank = reduced_shape(in->rank, in->dims, mask, p->keepdims, dims);
    op_set_output_shape(ctx, 0, rank, dims);
    return KILN_OK;
}

typedef struct arg_job {
    axis_split split;
    arg_extreme_fn extreme;
    bool want_min, last;
    const void *x;
    size_t elem_size;
    int64_t *y;
} arg_job;

static void arg_range(void *arg, int64_t begin, int64_t end)
{
    const arg_job *job = arg;
    for (int64_t row = begin; row < end; row++) {
        const char *x = (const char *)job->x + (size_t)axis_split_row(&job->split, row) * job->elem_size;
        job->y[row] = job->extreme(x, job->split.n, job->split.inner, job->want_min, job->last);
    }
}

static kiln_status arg_eval(op_ctx *ctx)
{
    const arg_params *p = ctx->params;
    const kiln_tensor *in = ctx->inputs[0];
    int axis;
    KILN_TRY(axis_resolve(p->axis, in->rank, &axis));
    arg_job job = {.split = axis_split_single(axis, in->rank, in->dims),
                   .extreme = arg_extreme_for(in->dtype),
                   .want_min = p->want_min,
                   .last = p->select_last_index,
                   .x = in->data,
                   .elem_size = kiln_dtype_size(in->dtype),
                   .y = ctx->outputs[0]->data};
    if (!job.extreme) return kiln_fail(KILN_ERR_INTERNAL, "no ArgMax kernel for %s", kiln_dtype_name(in->dtype));
    if (job.split.n == 0) return KILN_OK;
    int64_t grain = 1 + 16384 / job.split.n;
    parallel_for(ctx->parallel, job.split.outer * job.split.inner, grain, arg_range, &job);
    return KILN_OK;
}

#define REDUCE_OP(name)                                                                                                \
    {                                                                                                                  \
        "", name, 1, 18, sizeof(reduce_params), reduce_init, reduce_shape, reduce_eval, 0                              \
    }

const op_def ops_reduce[] = {
    REDUCE_OP("ReduceSum"),
    REDUCE_OP("ReduceMean"),
    REDUCE_OP("ReduceMax"),
    REDUCE_OP("ReduceMin"),
    REDUCE_OP("ReduceProd"),
    REDUCE_OP("ReduceL1"),
    REDUCE_OP("ReduceL2"),
    REDUCE_OP("ReduceLogSum"),
    REDUCE_OP("ReduceLogSumExp"),
    REDUCE_OP("ReduceSumSquare"),
    {"", "ArgMax", 1, 18, sizeof(arg_params), argmax_init, arg_shape, arg_eval, 0},
    {"", "ArgMin", 1, 18, sizeof(arg_params), argmin_init, arg_shape, arg_eval, 0},
    OP_TABLE_END,
};
