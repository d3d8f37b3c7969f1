/*
 * cumsum.c — CumSum: running sums along one axis, inclusive or exclusive, forwards or reversed.
 *
 * The tensor is seen as (outer, len, inner) and each outer block is summed independently, row by row, so the
 * inner loop runs over contiguous memory; one macro generates the loop for each dtype.
 */
#include "ops/op.h"

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
    KILN_TRY(op_require_one_value(ctx->inputs[1], "axis"));
    axis_value = tensor_get_int(ctx->inputs[1], 0);
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

const op_def ops_cumsum[] = {
    {"", "CumSum", 11, 18, sizeof(cumsum_params), cumsum_init, op_shape_like_input0, cumsum_eval, 0},
    OP_TABLE_END,
};
