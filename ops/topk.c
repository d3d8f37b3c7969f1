/*
 * topk.c — TopK: the k largest (or smallest) elements along an axis, with their indices.
 *
 * Each row is scanned once while a heap of k indices keeps the best seen so far, its root being the one
 * that would be dropped next; the heap is then sorted in place. That is O(n log k) per row and needs no
 * memory beyond the Indices output, which holds the heap (rows of it are `inner` apart, like the input's).
 * Ranking follows the ONNX spec: larger values first (smaller with largest=0), equal values by lower index,
 * and NaN above every number as numpy sorts it. The output is always sorted, which sorted=0 permits.
 *
 * k is an attribute before opset 10 and an input (a value input: it decides the output shape) from 10;
 * `largest` and `sorted` arrive in opset 11.
 */
#include "ops/axes.h"
#include "ops/numeric_types.h"
#include "ops/op.h"

typedef struct topk_params {
    int64_t axis, k; /* k: the attribute, before opset 10 */
    bool largest;
} topk_params;

/* Selects the top k of x[0], x[stride], ..., x[(n-1)*stride] into idx[] and values[] (also `stride` apart). */
typedef void (*topk_row_fn)(const void *x, int64_t n, int64_t stride, int64_t k, int64_t *idx, void *values,
                            bool largest);

#define DEFINE_TOPK_ROW(D, T, LOWEST, HIGHEST)                                                                         \
    /* Whether element a ranks after element b. */                                                                     \
    static bool ranks_after_##T(const T *x, int64_t stride, int64_t a, int64_t b, bool largest)                        \
    {                                                                                                                  \
        T va = x[a * stride], vb = x[b * stride];                                                                      \
        bool nan_a = VALUE_IS_NAN(va), nan_b = VALUE_IS_NAN(vb);                                                       \
        if (va == vb || (nan_a && nan_b)) return a > b;                                                                \
        bool greater = nan_a || (!nan_b && va > vb);                                                                   \
        return greater != largest;                                                                                     \
    }                                                                                                                  \
    static void sift_down_##T(const T *x, int64_t stride, int64_t *h, int64_t size, int64_t i, bool largest)           \
    {                                                                                                                  \
        for (;;) {                                                                                                     \
            int64_t last = i, left = 2 * i + 1, right = left + 1;                                                      \
            if (left < size && ranks_after_##T(x, stride, h[left * stride], h[last * stride], largest)) last = left;   \
            if (right < size && ranks_after_##T(x, stride, h[right * stride], h[last * stride], largest))              \
                last = right;                                                                                          \
            if (last == i) return;                                                                                     \
            int64_t t = h[i * stride];                                                                                 \
            h[i * stride] = h[last * stride];                                                                          \
            h[last * stride] = t;                                                                                      \
            i = last;                                                                                                  \
        }                                                                                                              \
    }                                                                                                                  \
    static void topk_row_##T(const void *xv, int64_t n, int64_t stride, int64_t k, int64_t *h, void *values,           \
                             bool largest)                                                                             \
    {                                                                                                                  \
        const T *x = xv;                                                                                               \
        for (int64_t j = 0; j < k; j++) h[j * stride] = j;                                                             \
        for (int64_t i = k / 2 - 1; i >= 0; i--) sift_down_##T(x, stride, h, k, i, largest);                           \
        for (int64_t j = k; j < n; j++)                                                                                \
            if (ranks_after_##T(x, stride, h[0], j, largest)) {                                                        \
                h[0] = j;                                                                                              \
                sift_down_##T(x, stride, h, k, 0, largest);                                                            \
            }                                                                                                          \
        for (int64_t end = k - 1; end > 0; end--) {                                                                    \
            int64_t t = h[0];                                                                                          \
            h[0] = h[end * stride];                                                                                    \
            h[end * stride] = t;                                                                                       \
            sift_down_##T(x, stride, h, end, 0, largest);                                                              \
        }                                                                                                              \
        T *y = values;                                                                                                 \
        for (int64_t j = 0; j < k; j++) y[j * stride] = x[h[j * stride] * stride];                                     \
    }
KILN_NUMERIC_TYPES(DEFINE_TOPK_ROW)

static topk_row_fn topk_row_for(kiln_dtype dtype)
{
    switch (dtype) {
#define TOPK_ROW_CASE(D, T, LOWEST, HIGHEST)                                                                           \
    case D: return topk_row_##T;
        KILN_NUMERIC_TYPES(TOPK_ROW_CASE)
#undef TOPK_ROW_CASE
    default: return NULL;
    }
}

static kiln_status topk_init(op_init_ctx *ctx)
{
    topk_params *p = ctx->params;
    bool k_is_input = ctx->opset >= 10;
    KILN_TRY(op_require_arity(ctx, k_is_input ? 2 : 1, k_is_input ? 2 : 1, 2, 2));
    KILN_TRY(op_require_dtype(ctx, 0, DTYPES_NUMERIC));
    if (k_is_input) {
        KILN_TRY(op_require_dtype(ctx, 1, (const kiln_dtype[]){KILN_INT64, KILN_UNDEFINED}));
        ctx->value_inputs = 1u << 1;
    } else {
        if (!graph_node_attr(ctx->node, "k")) return kiln_fail(KILN_ERR_MALFORMED, "attribute 'k' is required");
        KILN_TRY(attr_int(ctx->node, "k", 0, &p->k));
    }
    int64_t largest, sorted;
    KILN_TRY(attr_int(ctx->node, "axis", -1, &p->axis));
    KILN_TRY(attr_int(ctx->node, "largest", 1, &largest));
    KILN_TRY(attr_int(ctx->node, "sorted", 1, &sorted));
    p->largest = largest != 0;
    ctx->output_dtypes[0] = ctx->input_dtypes[0];
    ctx->output_dtypes[1] = KILN_INT64;
    return KILN_OK;
}

/* The axis and k of this call, validated against the input's shape. */
static kiln_status topk_axis_and_k(const op_ctx *ctx, int *axis, int64_t *k)
{
    const topk_params *p = ctx->params;
    const kiln_tensor *in = ctx->inputs[0];
    KILN_TRY(axis_resolve(p->axis, in->rank, axis));
    *k = p->k;
    if (ctx->opset >= 10) {
        const kiln_tensor *kt = ctx->inputs[1];
        if (kt->rank > 1) return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "k must be a 1-D tensor of one value");
        KILN_TRY(op_require_one_value(kt, "k"));
        *k = *(const int64_t *)kt->data;
    }
    if (*k < 0 || *k > in->dims[*axis])
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "k=%lld is out of range for axis %d of size %lld", (long long)*k,
                         *axis, (long long)in->dims[*axis]);
    return KILN_OK;
}

static kiln_status topk_shape(op_ctx *ctx)
{
    const kiln_tensor *in = ctx->inputs[0];
    int axis;
    int64_t k;
    KILN_TRY(topk_axis_and_k(ctx, &axis, &k));
    int64_t dims[KILN_MAX_RANK];
    for (int d = 0; d < in->rank; d++) dims[d] = d == axis ? k : in->dims[d];
    op_set_output_shape(ctx, 0, in->rank, dims);
    op_set_output_shape(ctx, 1, in->rank, dims);
    return KILN_OK;
}

typedef struct topk_job {
    axis_split in, out;
    topk_row_fn row;
    bool largest;
    size_t elem_size;
    const char *x;
    char *values;
    int64_t *indices;
} topk_job;

static void topk_range(void *arg, int64_t begin, int64_t end)
{
    const topk_job *job = arg;
    for (int64_t r = begin; r < end; r++) {
        int64_t in_offset = axis_split_row(&job->in, r), out_offset = axis_split_row(&job->out, r);
        job->row(job->x + (size_t)in_offset * job->elem_size, job->in.n, job->in.inner, job->out.n,
                 job->indices + out_offset, job->values + (size_t)out_offset * job->elem_size, job->largest);
    }
}

static kiln_status topk_eval(op_ctx *ctx)
{
    const topk_params *p = ctx->params;
    const kiln_tensor *in = ctx->inputs[0];
    int axis;
    int64_t k;
    KILN_TRY(topk_axis_and_k(ctx, &axis, &k));
    topk_job job = {
        .in = axis_split_single(axis, in->rank, in->dims),
        .out = axis_split_single(axis, in->rank, ctx->outputs[0]->dims),
        .row = topk_row_for(in->dtype),
        .largest = p->largest,
        .elem_size = kiln_dtype_size(in->dtype),
        .x = in->data,
        .values = ctx->outputs[0]->data,
        .indices = ctx->outputs[1]->data,
    };
    if (!job.row) return kiln_fail(KILN_ERR_INTERNAL, "no TopK kernel for %s", kiln_dtype_name(in->dtype));
    if (k == 0) return KILN_OK;
    parallel_for(ctx->parallel, job.in.outer * job.in.inner, 1 + 16384 / job.in.n, topk_range, &job);
    return KILN_OK;
}

const op_def ops_topk[] = {
    {"", "TopK", 1, 18, sizeof(topk_params), topk_init, topk_shape, topk_eval, 0},
    OP_TABLE_END,
};
