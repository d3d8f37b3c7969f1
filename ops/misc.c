/*
 * misc.c — operators that index, accumulate or score along one axis: Trilu, CumSum, GatherElements,
 * ScatterElements, OneHot, NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss.
 *
 * Operators that only move elements (Trilu, GatherElements, ScatterElements without a reduction, OneHot)
 * work on elements as bytes of the dtype's size, so they take every dtype without a typed copy loop per
 * dtype. Operators that do arithmetic (CumSum, the scatter reductions, the losses) are generated for each
 * dtype by one macro per operator.
 *
 * GatherElements and ScatterElements share one step: each entry of `indices` becomes the offset of the data
 * element it names, validated and with negative indices wrapped (into scratch), after which gathering is a
 * copy loop and scattering a reduction loop. The two losses are ONNX functions, implemented here as kernels
 * that share one step: the negative log-likelihood of log-probabilities. SoftmaxCrossEntropyLoss first
 * writes the log-softmax into its log_prob output (or scratch when that output is not requested).
 */
#include <math.h>
#include <string.h>

#include "ops/op.h"

/* Copies elements of `size` bytes; constant-size memcpy compiles to one load and store. */
static void copy_element(void *dst, const void *src, size_t size)
{
    switch (size) {
    case 1: memcpy(dst, src, 1); break;
    case 2: memcpy(dst, src, 2); break;
    case 4: memcpy(dst, src, 4); break;
    case 8: memcpy(dst, src, 8); break;
    default: memcpy(dst, src, size);
    }
}

/* A one-element tensor input read as an integer at eval (Trilu's k, CumSum's axis). */
static kiln_status scalar_input(const kiln_tensor *t, const char *what, int64_t *value)
{
    if (tensor_numel(t) != 1)
        return kiln_fail(KILN_ERR_RUNTIME, "'%s' must hold one value, it has %lld", what, (long long)tensor_numel(t));
    *value = tensor_get_int(t, 0);
    return KILN_OK;
}

/* ---- Trilu ------------------------------------------------------------------------------------------- */

typedef struct trilu_params {
    bool upper;
} trilu_params;

static kiln_status trilu_init(op_init_ctx *ctx)
{
    trilu_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 1, 2, 1, 1));
    KILN_TRY(op_require_dtype(ctx, 0, DTYPES_ALL));
    if (op_has_input(ctx, 1)) KILN_TRY(op_require_dtype(ctx, 1, (const kiln_dtype[]){KILN_INT64, KILN_UNDEFINED}));
    int64_t upper;
    KILN_TRY(attr_int(ctx->node, "upper", 1, &upper));
    p->upper = upper != 0;
    ctx->output_dtypes[0] = ctx->input_dtypes[0];
    return KILN_OK;
}

static kiln_status trilu_shape(op_ctx *ctx)
{
    if (ctx->inputs[0]->rank < 2)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "input must have rank 2 or more, it has rank %d",
                         ctx->inputs[0]->rank);
    return op_shape_like_input0(ctx);
}

typedef struct trilu_job {
    const uint8_t *x;
    uint8_t *y;
    int64_t rows, cols, k;
    size_t elem_size;
    bool upper;
} trilu_job;

/* Row i of each matrix keeps columns j >= i+k (upper) or j <= i+k (lower) and zeroes the rest. */
static void trilu_rows(void *arg, int64_t begin, int64_t end)
{
    const trilu_job *job = arg;
    size_t row_bytes = (size_t)job->cols * job->elem_size;
    for (int64_t r = begin; r < end; r++) {
        int64_t i = r % job->rows, edge = i + job->k;
        int64_t lo = job->upper ? edge : 0, hi = job->upper ? job->cols : edge + 1;
        lo = lo < 0 ? 0 : lo > job->cols ? job->cols : lo;
        hi = hi < lo ? lo : hi > job->cols ? job->cols : hi;
        uint8_t *y = job->y + (size_t)r * row_bytes;
        const uint8_t *x = job->x + (size_t)r * row_bytes;
        memset(y, 0, (size_t)lo * job->elem_size);
        memcpy(y + (size_t)lo * job->elem_size, x + (size_t)lo * job->elem_size, (size_t)(hi - lo) * job->elem_size);
        memset(y + (size_t)hi * job->elem_size, 0, (size_t)(job->cols - hi) * job->elem_size);
    }
}

static kiln_status trilu_eval(op_ctx *ctx)
{
    const trilu_params *p = ctx->params;
    const kiln_tensor *x = ctx->inputs[0];
    int64_t k = 0;
    if (ctx->n_inputs > 1 && ctx->inputs[1]) KILN_TRY(scalar_input(ctx->inputs[1], "k", &k));
    trilu_job job = {.x = x->data, .y = ctx->outputs[0]->data, .rows = x->dims[x->rank - 2],
                     .cols = x->dims[x->rank - 1], .elem_size = kiln_dtype_size(x->dtype), .upper = p->upper};
    /* beyond rows+cols every k means "keep all" or "keep none"; clamping keeps i+k from overflowing */
    int64_t reach = job.rows + job.cols;
    job.k = k < -reach ? -reach : k > reach ? reach : k;
    int64_t all_rows = tensor_numel(x) / (job.cols ? job.cols : 1);
    if (job.cols == 0 || job.rows == 0) return KILN_OK;
    parallel_for(ctx->parallel, all_rows, 1 + 4096 / job.cols, trilu_rows, &job);
    return KILN_OK;
}

/* ---- CumSum ------------------------------------------------------------------------------------------ */

typedef struct cumsum_params {
    bool exclusive, reverse;
} cumsum_params;

static const kiln_dtype cumsum_dtypes[] = {KILN_FLOAT32, KILN_FLOAT64, KILN_INT32,
                                           KILN_INT64,   KILN_UINT32,  KILN_UINT64, KILN_UNDEFINED};

static kiln_status cumsum_init(op_init_ctx *ctx)
{
    cumsum_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 2, 2, 1, 1));
    KILN_TRY(op_require_dtype(ctx, 0, cumsum_dtypes));
    KILN_TRY(op_require_dtype(ctx, 1, DTYPES_INDEX));
    int64_t exclusive, reverse;
    KILN_TRY(attr_int(ctx->node, "exclusive", 0, &exclusive));
    KILN_TRY(attr_int(ctx->node, "reverse", 0, &reverse));
    p->exclusive = exclusive != 0;
    p->reverse = reverse != 0;
    ctx->output_dtypes[0] = ctx->input_dtypes[0];
    return KILN_OK;
}

/* x and y are (outer, len, inner); each outer block is summed independently. */
typedef struct cumsum_job {
    const void *x;
    void *y;
    int64_t len, inner;
    bool exclusive, reverse;
} cumsum_job;

/* U is the type additions happen in: unsigned for signed integers, so overflow wraps instead of being
 * undefined behaviour. Each output row is the previous output row plus one input row (the current one, or
 * for an exclusive sum the previous one). */
#define DEFINE_CUMSUM(T, U, NAME)                                                                             \
    static void NAME(void *arg, int64_t begin, int64_t end)                                                   \
    {                                                                                                         \
        const cumsum_job *job = arg;                                                                          \
        int64_t len = job->len, inner = job->inner, step = job->reverse ? -1 : 1;                             \
        for (int64_t o = begin; o < end; o++) {                                                               \
            const T *x = (const T *)job->x + o * len * inner;                                                 \
            T *y = (T *)job->y + o * len * inner;                                                             \
            int64_t k = job->reverse ? len - 1 : 0;                                                           \
            for (int64_t i = 0; i < inner; i++) y[k * inner + i] = job->exclusive ? (T)0 : x[k * inner + i];  \
            for (int64_t s = 1; s < len; s++) {                                                               \
                int64_t prev = k;                                                                             \
                k += step;                                                                                    \
                const T *add = x + (job->exclusive ? prev : k) * inner;                                       \
                const T *acc = y + prev * inner;                                                              \
                T *dst = y + k * inner;                                                                       \
                for (int64_t i = 0; i < inner; i++) dst[i] = (T)((U)acc[i] + (U)add[i]);                      \
            }                                                                                                 \
        }                                                                                                     \
    }

DEFINE_CUMSUM(float, float, cumsum_f32)
DEFINE_CUMSUM(double, double, cumsum_f64)
DEFINE_CUMSUM(int32_t, uint32_t, cumsum_i32)
DEFINE_CUMSUM(int64_t, uint64_t, cumsum_i64)
DEFINE_CUMSUM(uint32_t, uint32_t, cumsum_u32)
DEFINE_CUMSUM(uint64_t, uint64_t, cumsum_u64)

static parallel_fn cumsum_kernel(kiln_dtype dtype)
{
    switch (dtype) {
    case KILN_FLOAT32: return cumsum_f32;
    case KILN_FLOAT64: return cumsum_f64;
    case KILN_INT32: return cumsum_i32;
    case KILN_INT64: return cumsum_i64;
    case KILN_UINT32: return cumsum_u32;
    default: return cumsum_u64;
    }
}

static kiln_status cumsum_eval(op_ctx *ctx)
{
    const cumsum_params *p = ctx->params;
    const kiln_tensor *x = ctx->inputs[0];
    int64_t axis_value = 0;
    int axis;
    KILN_TRY(scalar_input(ctx->inputs[1], "axis", &axis_value));
    if (!axis_normalize(axis_value, x->rank, &axis))
        return kiln_fail(KILN_ERR_RUNTIME, "axis %lld is out of range for rank %d", (long long)axis_value, x->rank);
    cumsum_job job = {.x = x->data, .y = ctx->outputs[0]->data, .len = x->dims[axis],
                      .inner = shape_span(x->dims, axis + 1, x->rank), .exclusive = p->exclusive,
                      .reverse = p->reverse};
    int64_t block = job.len * job.inner;
    if (block == 0) return KILN_OK;
    parallel_for(ctx->parallel, shape_span(x->dims, 0, axis), 1 + 16384 / block, cumsum_kernel(x->dtype), &job);
    return KILN_OK;
}

/* ---- GatherElements and ScatterElements -------------------------------------------------------------- */

typedef struct elements_params {
    int64_t axis;
    int reduction; /* ScatterElements: position in scatter_reductions */
} elements_params;

enum { REDUCE_NONE, REDUCE_ADD, REDUCE_MUL, REDUCE_MAX, REDUCE_MIN };
static const char *const scatter_reductions[] = {"none", "add", "mul", "max", "min", NULL};

/* data (input 0) and indices (input 1) have equal ranks; indices may not exceed data on the other axes. */
static kiln_status elements_check_shapes(const op_ctx *ctx, int *axis)
{
    const elements_params *p = ctx->params;
    const kiln_tensor *data = ctx->inputs[0], *indices = ctx->inputs[1];
    if (data->rank < 1 || indices->rank != data->rank)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "data (rank %d) and indices (rank %d) need the same rank >= 1",
                         data->rank, indices->rank);
    if (!axis_normalize(p->axis, data->rank, axis))
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "axis %lld is out of range for rank %d", (long long)p->axis,
                         data->rank);
    for (int d = 0; d < data->rank; d++)
        if (d != *axis && indices->dims[d] > data->dims[d]) {
            char a[128], b[128];
            return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "indices shape %s exceeds data shape %s on axis %d",
                             shape_format(a, sizeof a, indices->rank, indices->dims),
                             shape_format(b, sizeof b, data->rank, data->dims), d);
        }
    return KILN_OK;
}

/* The offset in data of the element each entry of indices names: its own coordinates, with the index along
 * `axis`. Walks indices' coordinates like an odometer, keeping the offset of the non-axis part. */
static kiln_status element_offsets(const kiln_tensor *data, const kiln_tensor *indices, int axis, int64_t *offsets)
{
    int rank = data->rank;
    int64_t strides[KILN_MAX_RANK], coord[KILN_MAX_RANK] = {0}, base = 0, axis_len = data->dims[axis];
    shape_strides(rank, data->dims, strides);
    int64_t n = tensor_numel(indices);
    for (int64_t e = 0; e < n; e++) {
        int64_t index = tensor_get_int(indices, e);
        if (index < -axis_len || index >= axis_len)
            return kiln_fail(KILN_ERR_RUNTIME, "index %lld is out of range for axis %d of size %lld", (long long)index,
                             axis, (long long)axis_len);
        offsets[e] = base + (index < 0 ? index + axis_len : index) * strides[axis];
        for (int d = rank - 1; d >= 0; d--) {
            int64_t stride = d == axis ? 0 : strides[d];
            base += stride;
            if (++coord[d] < indices->dims[d]) break;
            base -= coord[d] * stride;
            coord[d] = 0;
        }
    }
    return KILN_OK;
}

static kiln_status gather_elements_init(op_init_ctx *ctx)
{
    elements_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 2, 2, 1, 1));
    KILN_TRY(op_require_dtype(ctx, 0, DTYPES_ALL));
    KILN_TRY(op_require_dtype(ctx, 1, DTYPES_INDEX));
    KILN_TRY(attr_int(ctx->node, "axis", 0, &p->axis));
    ctx->output_dtypes[0] = ctx->input_dtypes[0];
    return KILN_OK;
}

static kiln_status gather_elements_shape(op_ctx *ctx)
{
    int axis;
    KILN_TRY(elements_check_shapes(ctx, &axis));
    op_set_output_shape(ctx, 0, ctx->inputs[1]->rank, ctx->inputs[1]->dims);
    ctx->scratch_bytes = (size_t)tensor_numel(ctx->inputs[1]) * sizeof(int64_t);
    return KILN_OK;
}

static kiln_status gather_elements_eval(op_ctx *ctx)
{
    const kiln_tensor *data = ctx->inputs[0], *indices = ctx->inputs[1];
    int axis;
    KILN_TRY(elements_check_shapes(ctx, &axis));
    int64_t *offsets = ctx->scratch;
    KILN_TRY(element_offsets(data, indices, axis, offsets));
    size_t size = kiln_dtype_size(data->dtype);
    const uint8_t *src = data->data;
    uint8_t *dst = ctx->outputs[0]->data;
    int64_t n = tensor_numel(indices);
    for (int64_t e = 0; e < n; e++) copy_element(dst + (size_t)e * size, src + (size_t)offsets[e] * size, size);
    return KILN_OK;
}

static kiln_status scatter_elements_init(op_init_ctx *ctx)
{
    elements_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 3, 3, 1, 1));
    KILN_TRY(attr_int(ctx->node, "axis", 0, &p->axis));
    p->reduction = REDUCE_NONE;
    if (ctx->opset >= 16) KILN_TRY(attr_choice(ctx->node, "reduction", "none", scatter_reductions, &p->reduction));
    if (ctx->opset < 18 && p->reduction > REDUCE_MUL)
        return kiln_fail(KILN_ERR_MALFORMED, "reduction '%s' needs opset 18", scatter_reductions[p->reduction]);
    KILN_TRY(op_require_dtype(ctx, 0, p->reduction == REDUCE_NONE ? DTYPES_ALL : DTYPES_NUMERIC));
    KILN_TRY(op_require_dtype(ctx, 1, DTYPES_INDEX));
    KILN_TRY(op_require_dtype(ctx, 2, (const kiln_dtype[]){ctx->input_dtypes[0], KILN_UNDEFINED}));
    ctx->output_dtypes[0] = ctx->input_dtypes[0];
    return KILN_OK;
}

static kiln_status scatter_elements_shape(op_ctx *ctx)
{
    int axis;
    KILN_TRY(elements_check_shapes(ctx, &axis));
    const kiln_tensor *indices = ctx->inputs[1], *updates = ctx->inputs[2];
    if (!shape_equal(indices->rank, indices->dims, updates->rank, updates->dims)) {
        char a[128], b[128];
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "updates shape %s differs from indices shape %s",
                         shape_format(a, sizeof a, updates->rank, updates->dims),
                         shape_format(b, sizeof b, indices->rank, indices->dims));
    }
    ctx->scratch_bytes = (size_t)tensor_numel(indices) * sizeof(int64_t);
    return op_shape_like_input0(ctx);
}

/* Folds each update into its target with the reduction; U is the type arithmetic happens in (unsigned for
 * signed integers so that overflow wraps). Updates apply in order, so duplicates accumulate. */
#define DEFINE_SCATTER_REDUCE(T, U, NAME)                                                                     \
    static void NAME(void *out, const void *updates, const int64_t *offsets, int64_t n, int reduction)        \
    {                                                                                                         \
        T *y = out;                                                                                           \
        const T *u = updates;                                                                                 \
        for (int64_t e = 0; e < n; e++) {                                                                     \
            T *t = y + offsets[e];                                                                            \
            switch (reduction) {                                                                              \
            case REDUCE_ADD: *t = (T)((U)*t + (U)u[e]); break;                                                \
            case REDUCE_MUL: *t = (T)((U)*t * (U)u[e]); break;                                                \
            case REDUCE_MAX: *t = u[e] > *t ? u[e] : *t; break;                                               \
            default: *t = u[e] < *t ? u[e] : *t; break;                                                       \
            }                                                                                                 \
        }                                                                                                     \
    }

DEFINE_SCATTER_REDUCE(float, float, scatter_f32)
DEFINE_SCATTER_REDUCE(double, double, scatter_f64)
DEFINE_SCATTER_REDUCE(int8_t, uint32_t, scatter_i8)
DEFINE_SCATTER_REDUCE(int16_t, uint32_t, scatter_i16)
DEFINE_SCATTER_REDUCE(int32_t, uint32_t, scatter_i32)
DEFINE_SCATTER_REDUCE(int64_t, uint64_t, scatter_i64)
DEFINE_SCATTER_REDUCE(uint8_t, uint32_t, scatter_u8)
DEFINE_SCATTER_REDUCE(uint16_t, uint32_t, scatter_u16)
DEFINE_SCATTER_REDUCE(uint32_t, uint32_t, scatter_u32)
DEFINE_SCATTER_REDUCE(uint64_t, uint64_t, scatter_u64)

typedef void (*scatter_fn)(void *out, const void *updates, const int64_t *offsets, int64_t n, int reduction);

static scatter_fn scatter_kernel(kiln_dtype dtype)
{
    switch (dtype) {
    case KILN_FLOAT32: return scatter_f32;
    case KILN_FLOAT64: return scatter_f64;
    case KILN_INT8: return scatter_i8;
    case KILN_INT16: return scatter_i16;
    case KILN_INT32: return scatter_i32;
    case KILN_INT64: return scatter_i64;
    case KILN_UINT8: return scatter_u8;
    case KILN_UINT16: return scatter_u16;
    case KILN_UINT32: return scatter_u32;
    default: return scatter_u64;
    }
}

static kiln_status scatter_elements_eval(op_ctx *ctx)
{
    const elements_params *p = ctx->params;
    const kiln_tensor *data = ctx->inputs[0], *indices = ctx->inputs[1], *updates = ctx->inputs[2];
    kiln_tensor *out = ctx->outputs[0];
    int axis;
    KILN_TRY(elements_check_shapes(ctx, &axis));
    int64_t *offsets = ctx->scratch;
    KILN_TRY(element_offsets(data, indices, axis, offsets));
    if (out->data != data->data) memcpy(out->data, data->data, tensor_bytes(data));
    int64_t n = tensor_numel(indices);
    size_t size = kiln_dtype_size(data->dtype);
    if (p->reduction != REDUCE_NONE) {
        scatter_kernel(data->dtype)(out->data, updates->data, offsets, n, p->reduction);
        return KILN_OK;
    }
    uint8_t *dst = out->data;
    const uint8_t *src = updates->data;
    for (int64_t e = 0; e < n; e++) copy_element(dst + (size_t)offsets[e] * size, src + (size_t)e * size, size);
    return KILN_OK;
}

/* ---- OneHot ------------------------------------------------------------------------------------------ */

typedef struct onehot_params {
    int64_t axis;
} onehot_params;

static kiln_status onehot_init(op_init_ctx *ctx)
{
    onehot_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 3, 3, 1, 1));
    KILN_TRY(op_require_dtype(ctx, 0, DTYPES_NUMERIC));
    KILN_TRY(op_require_dtype(ctx, 1, DTYPES_NUMERIC));
    KILN_TRY(op_require_dtype(ctx, 2, DTYPES_ALL));
    KILN_TRY(attr_int(ctx->node, "axis", -1, &p->axis));
    ctx->output_dtypes[0] = ctx->input_dtypes[2];
    ctx->value_inputs = 1u << 1;
    return KILN_OK;
}

/* The output is indices' shape with `depth` inserted at the axis: (before, depth, after). */
static kiln_status onehot_layout(const op_ctx *ctx, int *axis, int64_t *depth)
{
    const onehot_params *p = ctx->params;
    const kiln_tensor *indices = ctx->inputs[0], *depth_t = ctx->inputs[1], *values = ctx->inputs[2];
    if (tensor_numel(depth_t) != 1)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "depth must hold one value, it has %lld",
                         (long long)tensor_numel(depth_t));
    double d = tensor_get_double(depth_t, 0);
    if (!(d >= 1) || d > (double)KILN_MAX_ELEMENTS)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "depth %g must be a positive count", d);
    *depth = (int64_t)d;
    if (indices->rank + 1 > KILN_MAX_RANK)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "output rank %d exceeds kiln's maximum of %d", indices->rank + 1,
                         KILN_MAX_RANK);
    if (!axis_normalize(p->axis, indices->rank + 1, axis))
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "axis %lld is out of range for rank %d", (long long)p->axis,
                         indices->rank + 1);
    if (tensor_numel(values) != 2)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "values must hold [off_value, on_value], it has %lld values",
                         (long long)tensor_numel(values));
    return KILN_OK;
}

static kiln_status onehot_shape(op_ctx *ctx)
{
    const kiln_tensor *indices = ctx->inputs[0];
    int axis;
    int64_t depth, dims[KILN_MAX_RANK];
    KILN_TRY(onehot_layout(ctx, &axis, &depth));
    for (int d = 0, k = 0; d <= indices->rank; d++) dims[d] = d == axis ? depth : indices->dims[k++];
    op_set_output_shape(ctx, 0, indices->rank + 1, dims);
    return KILN_OK;
}

/* The class of indices element e, or -1 when it lies outside [-depth, depth) (or, before opset 11,
 * [0, depth)) or is not a whole number: such an entry is all off_value. */
static int64_t onehot_class(const kiln_tensor *indices, int64_t e, int64_t depth, bool wrap_negative)
{
    double v = tensor_get_double(indices, e);
    if (v != floor(v) || v < -(double)depth || v >= (double)depth) return -1;
    int64_t c = (int64_t)v;
    if (c < 0) c = wrap_negative ? c + depth : -1;
    return c;
}

static kiln_status onehot_eval(op_ctx *ctx)
{
    const kiln_tensor *indices = ctx->inputs[0], *values = ctx->inputs[2];
    kiln_tensor *out = ctx->outputs[0];
    int axis;
    int64_t depth;
    KILN_TRY(onehot_layout(ctx, &axis, &depth));
    size_t size = kiln_dtype_size(out->dtype);
    const uint8_t *off_value = values->data, *on_value = off_value + size;
    uint8_t *y = out->data;
    int64_t total = tensor_numel(out), after = shape_span(indices->dims, axis, indices->rank);
    for (int64_t i = 0; i < total; i++) copy_element(y + (size_t)i * size, off_value, size);
    int64_t n = tensor_numel(indices);
    for (int64_t e = 0; e < n; e++) {
        int64_t c = onehot_class(indices, e, depth, ctx->opset >= 11);
        if (c < 0) continue;
        int64_t before = e / after, rest = e % after;
        copy_element(y + (size_t)((before * depth + c) * after + rest) * size, on_value, size);
    }
    return KILN_OK;
}

/* ---- NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss ------------------------------------------- */

enum { LOSS_NONE, LOSS_SUM, LOSS_MEAN };
static const char *const loss_reductions[] = {"none", "sum", "mean", NULL};

typedef struct loss_params {
    int reduction;
    bool has_ignore_index;
    int64_t ignore_index;
} loss_params;

/* Inputs: scores (N, C, d1..dk) as float or double, target (N, d1..dk), optional weight (C). */
static kiln_status loss_init(op_init_ctx *ctx, int max_outputs)
{
    loss_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 2, 3, 1, max_outputs));
    KILN_TRY(op_require_dtype(ctx, 0, DTYPES_FLOAT));
    KILN_TRY(op_require_dtype(ctx, 1, DTYPES_INDEX));
    if (op_has_input(ctx, 2))
        KILN_TRY(op_require_dtype(ctx, 2, (const kiln_dtype[]){ctx->input_dtypes[0], KILN_UNDEFINED}));
    KILN_TRY(attr_choice(ctx->node, "reduction", "mean", loss_reductions, &p->reduction));
    p->has_ignore_index = graph_node_attr(ctx->node, "ignore_index") != NULL;
    KILN_TRY(attr_int(ctx->node, "ignore_index", 0, &p->ignore_index));
    for (int k = 0; k < ctx->n_outputs; k++) ctx->output_dtypes[k] = ctx->input_dtypes[0];
    return KILN_OK;
}

static kiln_status nll_init(op_init_ctx *ctx) { return loss_init(ctx, 1); }
static kiln_status sce_init(op_init_ctx *ctx) { return loss_init(ctx, 2); }

static const kiln_tensor *loss_weight(const op_ctx *ctx)
{
    return ctx->n_inputs > 2 ? ctx->inputs[2] : NULL;
}

static kiln_status loss_check_shapes(const op_ctx *ctx)
{
    const kiln_tensor *scores = ctx->inputs[0], *target = ctx->inputs[1], *weight = loss_weight(ctx);
    bool ok = scores->rank >= 2 && target->rank == scores->rank - 1 && target->dims[0] == scores->dims[0];
    for (int d = 1; ok && d < target->rank; d++) ok = target->dims[d] == scores->dims[d + 1];
    if (!ok) {
        char a[128], b[128];
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "target shape %s does not match scores shape %s (N, C, d1...)",
                         shape_format(a, sizeof a, target->rank, target->dims),
                         shape_format(b, sizeof b, scores->rank, scores->dims));
    }
    if (weight && (weight->rank != 1 || weight->dims[0] != scores->dims[1]))
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "weight must have shape [%lld]", (long long)scores->dims[1]);
    return KILN_OK;
}

static kiln_status loss_shape(op_ctx *ctx)
{
    const loss_params *p = ctx->params;
    const kiln_tensor *target = ctx->inputs[1];
    KILN_TRY(loss_check_shapes(ctx));
    if (p->reduction == LOSS_NONE) op_set_output_shape(ctx, 0, target->rank, target->dims);
    else op_set_output_shape(ctx, 0, 0, NULL);
    return KILN_OK;
}

/* SoftmaxCrossEntropyLoss writes the log-softmax into log_prob, or into scratch when log_prob is omitted. */
static bool log_prob_requested(const op_ctx *ctx)
{
    return ctx->node->n_outputs > 1 && ctx->node->outputs[1] >= 0;
}

static kiln_status sce_shape(op_ctx *ctx)
{
    KILN_TRY(loss_shape(ctx));
    const kiln_tensor *scores = ctx->inputs[0];
    if (ctx->n_outputs > 1) op_set_output_shape(ctx, 1, scores->rank, scores->dims);
    if (!log_prob_requested(ctx)) ctx->scratch_bytes = tensor_bytes(scores);
    return KILN_OK;
}

/* Scores seen as (N, C, D) with D the product of d1..dk. */
typedef struct loss_job {
    const void *log_prob;
    const void *target;
    kiln_dtype target_dtype;
    const void *weight; /* NULL: every class weighs 1 */
    int64_t n, classes, positions;
    const loss_params *params;
    void *out;
} loss_job;

static int64_t target_at(const loss_job *job, int64_t i)
{
    return job->target_dtype == KILN_INT32 ? ((const int32_t *)job->target)[i] : ((const int64_t *)job->target)[i];
}

/* loss[n, d] = -weight[t] * log_prob[n, t, d] with t = target[n, d]; ignored targets weigh 0. "mean" divides
 * the sum by the total weight, as the spec's function body does (NaN when every target is ignored). */
#define DEFINE_LOSS(T, NAME)                                                                                  \
    static kiln_status NAME##_nll(const loss_job *job)                                                        \
    {                                                                                                         \
        const T *lp = job->log_prob, *weight = job->weight;                                                   \
        T *out = job->out;                                                                                    \
        double total = 0, total_weight = 0;                                                                   \
        for (int64_t i = 0; i < job->n * job->positions; i++) {                                               \
            int64_t t = target_at(job, i), n = i / job->positions, d = i % job->positions;                    \
            double w = 0, loss = 0;                                                                           \
            if (!job->params->has_ignore_index || t != job->params->ignore_index) {                           \
                if (t < 0 || t >= job->classes)                                                               \
                    return kiln_fail(KILN_ERR_RUNTIME, "target %lld is out of range for %lld classes",        \
                                     (long long)t, (long long)job->classes);                                  \
                w = weight ? (double)weight[t] : 1.0;                                                         \
                loss = -w * (double)lp[(n * job->classes + t) * job->positions + d];                          \
            }                                                                                                 \
            if (job->params->reduction == LOSS_NONE) out[i] = (T)loss;                                        \
            total += loss;                                                                                    \
            total_weight += w;                                                                                \
        }                                                                                                     \
        if (job->params->reduction == LOSS_SUM) out[0] = (T)total;                                            \
        if (job->params->reduction == LOSS_MEAN) out[0] = (T)(total / total_weight);                          \
        return KILN_OK;                                                                                       \
    }                                                                                                         \
    static void NAME##_log_softmax(const T *x, T *y, int64_t n, int64_t classes, int64_t positions)           \
    {                                                                                                         \
        if (classes == 0) return; /* no scores: every target is out of range, which nll reports */           \
        for (int64_t i = 0; i < n * positions; i++) {                                                         \
            const T *xs = x + (i / positions) * classes * positions + i % positions;                          \
            T *ys = y + (xs - x);                                                                             \
            T max = xs[0];                                                                                    \
            for (int64_t c = 1; c < classes; c++) max = xs[c * positions] > max ? xs[c * positions] : max;    \
            double sum = 0;                                                                                   \
            for (int64_t c = 0; c < classes; c++) sum += exp((double)(xs[c * positions] - max));              \
            T log_sum = (T)log(sum);                                                                          \
            for (int64_t c = 0; c < classes; c++) ys[c * positions] = xs[c * positions] - max - log_sum;      \
        }                                                                                                     \
    }

DEFINE_LOSS(float, loss_f32)
DEFINE_LOSS(double, loss_f64)

static loss_job loss_job_for(op_ctx *ctx, const void *log_prob)
{
    const kiln_tensor *scores = ctx->inputs[0], *target = ctx->inputs[1], *weight = loss_weight(ctx);
    return (loss_job){.log_prob = log_prob,
                      .target = target->data,
                      .target_dtype = target->dtype,
                      .weight = weight ? weight->data : NULL,
                      .n = scores->dims[0],
                      .classes = scores->dims[1],
                      .positions = shape_span(scores->dims, 2, scores->rank),
                      .params = ctx->params,
                      .out = ctx->outputs[0]->data};
}

static kiln_status nll_eval(op_ctx *ctx)
{
    KILN_TRY(loss_check_shapes(ctx));
    loss_job job = loss_job_for(ctx, ctx->inputs[0]->data);
    return ctx->inputs[0]->dtype == KILN_FLOAT32 ? loss_f32_nll(&job) : loss_f64_nll(&job);
}

static kiln_status sce_eval(op_ctx *ctx)
{
    KILN_TRY(loss_check_shapes(ctx));
    const kiln_tensor *scores = ctx->inputs[0];
    void *log_prob = ctx->n_outputs > 1 && ctx->outputs[1] ? ctx->outputs[1]->data : ctx->scratch;
    loss_job job = loss_job_for(ctx, log_prob);
    if (scores->dtype == KILN_FLOAT32) {
        loss_f32_log_softmax(scores->data, log_prob, job.n, job.classes, job.positions);
        return loss_f32_nll(&job);
    }
    loss_f64_log_softmax(scores->data, log_prob, job.n, job.classes, job.positions);
    return loss_f64_nll(&job);
}

const op_def ops_misc[] = {
    {"", "Trilu", 14, 18, sizeof(trilu_params), trilu_init, trilu_shape, trilu_eval, 0},
    {"", "CumSum", 11, 18, sizeof(cumsum_params), cumsum_init, op_shape_like_input0, cumsum_eval, 0},
    {"", "GatherElements", 11, 18, sizeof(elements_params), gather_elements_init, gather_elements_shape,
     gather_elements_eval, 0},
    {"", "ScatterElements", 11, 18, sizeof(elements_params), scatter_elements_init, scatter_elements_shape,
     scatter_elements_eval, 0},
    /* Scatter (opsets 9-10) is ScatterElements under its deprecated name */
    {"", "Scatter", 9, 10, sizeof(elements_params), scatter_elements_init, scatter_elements_shape,
     scatter_elements_eval, 0},
    {"", "OneHot", 9, 18, sizeof(onehot_params), onehot_init, onehot_shape, onehot_eval, 0},
    {"", "NegativeLogLikelihoodLoss", 12, 18, sizeof(loss_params), nll_init, loss_shape, nll_eval, 0},
    {"", "SoftmaxCrossEntropyLoss", 12, 18, sizeof(loss_params), sce_init, sce_shape, sce_eval, 0},
    OP_TABLE_END,
};
