/*
 * select.c — operators whose output size is decided by the input's contents: Compress, NonZero and Unique.
 *
 * They carry OP_DATA_DEPENDENT_SHAPE, so the planner runs shape() and then eval() once, at plan time, with
 * every input's contents at hand; their results become constants of the plan. shape() therefore reads the
 * data to count what eval() will write, and both go through the same helper (compress_count, nonzero_count,
 * unique_group), so the size planned and the size written cannot disagree.
 *
 * Unique sorts item numbers (elements, or slices along `axis`) with a stable merge sort: equal items end up
 * adjacent with the first occurrence leading, which gives the groups, their first indices and, when
 * sorted=0, their order of appearance, in O(n log n). Its shape() borrows heap memory for that sort; that is
 * allowed because it only ever runs while planning, never in the run path.
 */
#include <string.h>

#include "core/mem.h"
#include "ops/copy.h"
#include "ops/numeric_types.h"
#include "ops/op.h"

/* The data viewed as (outer, len, inner) around `axis`: `len` items, each `outer` blocks of `inner`
 * elements. Without an axis, every element is an item. */
typedef struct item_layout {
    int64_t outer, len, inner;
    size_t elem_size;
} item_layout;

static item_layout layout_around(const kiln_tensor *t, int axis, bool flatten)
{
    item_layout l = {1, tensor_numel(t), 1, kiln_dtype_size(t->dtype)};
    if (!flatten) {
        l.outer = shape_span(t->dims, 0, axis);
        l.len = t->dims[axis];
        l.inner = shape_span(t->dims, axis + 1, t->rank);
    }
    return l;
}

/* Copies item `from` of `src` to item `to` of `dst`; dst has `dst_len` items per outer block. */
static void copy_item(const item_layout *l, const void *src, int64_t from, void *dst, int64_t to, int64_t dst_len)
{
    size_t block = (size_t)l->inner * l->elem_size;
    for (int64_t o = 0; o < l->outer; o++) {
        char *target = (char *)dst + (size_t)(o * dst_len + to) * block;
        memcpy(target, (const char *)src + (size_t)(o * l->len + from) * block, block);
    }
}

typedef struct axis_params {
    int64_t axis;
    bool has_axis;
} axis_params;

static kiln_status read_optional_axis(op_init_ctx *ctx, axis_params *p)
{
    p->has_axis = graph_node_attr(ctx->node, "axis") != NULL;
    return attr_int(ctx->node, "axis", 0, &p->axis);
}

static kiln_status resolve_axis(const axis_params *p, const kiln_tensor *t, int *axis)
{
    *axis = 0;
    if (p->has_axis && !axis_normalize(p->axis, t->rank, axis))
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "axis %lld is out of range for rank %d", (long long)p->axis,
                         t->rank);
    return KILN_OK;
}

/* ---- Compress ---------------------------------------------------------------------------------------- */

static kiln_status compress_init(op_init_ctx *ctx)
{
    KILN_TRY(op_require_arity(ctx, 2, 2, 1, 1));
    KILN_TRY(op_require_dtype(ctx, 0, DTYPES_ALL));
    KILN_TRY(op_require_dtype(ctx, 1, DTYPES_BOOL));
    KILN_TRY(read_optional_axis(ctx, ctx->params));
    ctx->output_dtypes[0] = ctx->input_dtypes[0];
    return KILN_OK;
}

/* How many items the 1-D condition selects. It may be shorter than the axis (the rest are dropped) but may
 * not select past its end. */
static kiln_status compress_count(const kiln_tensor *condition, int64_t len, int64_t *count)
{
    if (condition->rank != 1)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "condition must be 1-D, it has rank %d", condition->rank);
    *count = 0;
    for (int64_t i = 0; i < condition->dims[0]; i++) {
        if (!tensor_get_int(condition, i)) continue;
        if (i >= len)
            return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "condition selects item %lld of an axis of %lld",
                             (long long)i, (long long)len);
        ++*count;
    }
    return KILN_OK;
}

static kiln_status compress_shape(op_ctx *ctx)
{
    const axis_params *p = ctx->params;
    const kiln_tensor *x = ctx->inputs[0];
    int axis;
    KILN_TRY(resolve_axis(p, x, &axis));
    item_layout l = layout_around(x, axis, !p->has_axis);
    int64_t count;
    KILN_TRY(compress_count(ctx->inputs[1], l.len, &count));
    if (!p->has_axis) {
        op_set_output_shape(ctx, 0, 1, &count);
        return KILN_OK;
    }
    op_set_output_shape(ctx, 0, x->rank, x->dims);
    ctx->outputs[0]->dims[axis] = count;
    return KILN_OK;
}

static kiln_status compress_eval(op_ctx *ctx)
{
    const axis_params *p = ctx->params;
    const kiln_tensor *x = ctx->inputs[0], *condition = ctx->inputs[1];
    int axis;
    KILN_TRY(resolve_axis(p, x, &axis));
    item_layout l = layout_around(x, axis, !p->has_axis);
    int64_t count = 0;
    KILN_TRY(compress_count(condition, l.len, &count));
    for (int64_t i = 0, to = 0; i < condition->dims[0] && i < l.len; i++)
        if (tensor_get_int(condition, i)) copy_item(&l, x->data, i, ctx->outputs[0]->data, to++, count);
    return KILN_OK;
}

/* ---- NonZero ----------------------------------------------------------------------------------------- */

static kiln_status nonzero_init(op_init_ctx *ctx)
{
    KILN_TRY(op_require_arity(ctx, 1, 1, 1, 1));
    KILN_TRY(op_require_dtype(ctx, 0, DTYPES_ALL));
    ctx->output_dtypes[0] = KILN_INT64;
    return KILN_OK;
}

/* As a double every dtype keeps its zeroness (-0.0 is zero, NaN is not). */
static bool is_nonzero(const kiln_tensor *t, int64_t i) { return tensor_get_double(t, i) != 0; }

static int64_t nonzero_count(const kiln_tensor *x)
{
    int64_t count = 0, n = tensor_numel(x);
    for (int64_t i = 0; i < n; i++) count += is_nonzero(x, i);
    return count;
}

/* A scalar counts as a 1-D tensor of one element, as numpy and onnxruntime treat it: the output is
 * [max(rank, 1), count]. */
static kiln_status nonzero_shape(op_ctx *ctx)
{
    const kiln_tensor *x = ctx->inputs[0];
    int64_t dims[2] = {x->rank > 0 ? x->rank : 1, nonzero_count(x)};
    op_set_output_shape(ctx, 0, 2, dims);
    return KILN_OK;
}

/* Row d of the output holds coordinate d of each nonzero element, in row-major order. */
static kiln_status nonzero_eval(op_ctx *ctx)
{
    const kiln_tensor *x = ctx->inputs[0];
    int64_t *y = ctx->outputs[0]->data, count = ctx->outputs[0]->dims[1], n = tensor_numel(x);
    int rank = x->rank;
    for (int64_t i = 0, k = 0; i < n; i++) {
        if (!is_nonzero(x, i)) continue;
        if (rank == 0) y[k] = 0;
        int64_t flat = i;
        for (int d = rank - 1; d >= 0; d--) {
            y[d * count + k] = flat % x->dims[d];
            flat /= x->dims[d];
        }
        k++;
    }
    return KILN_OK;
}

/* ---- Unique ------------------------------------------------------------------------------------------ */

typedef struct unique_params {
    axis_params axis;
    bool sorted;
} unique_params;

static kiln_status unique_init(op_init_ctx *ctx)
{
    unique_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 1, 1, 1, 4));
    KILN_TRY(op_require_dtype(ctx, 0, DTYPES_NUMERIC));
    KILN_TRY(read_optional_axis(ctx, &p->axis));
    int64_t sorted;
    KILN_TRY(attr_int(ctx->node, "sorted", 1, &sorted));
    p->sorted = sorted != 0;
    ctx->output_dtypes[0] = ctx->input_dtypes[0];
    for (int k = 1; k < ctx->n_outputs; k++) ctx->output_dtypes[k] = KILN_INT64;
    return KILN_OK;
}

/* Three-way comparison of n elements, lexicographic. NaN sorts after every number and equals NaN, as in
 * numpy.unique. */
#define DEFINE_COMPARE(DTYPE, T, LO, HI)                                                                      \
    static int compare_##T(const void *a, const void *b, int64_t n)                                           \
    {                                                                                                         \
        const T *x = a, *y = b;                                                                               \
        for (int64_t i = 0; i < n; i++) {                                                                     \
            bool x_nan = VALUE_IS_NAN(x[i]), y_nan = VALUE_IS_NAN(y[i]);                                      \
            if (x_nan || y_nan) {                                                                             \
                if (x_nan != y_nan) return x_nan ? 1 : -1;                                                    \
                continue;                                                                                     \
            }                                                                                                 \
            if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;                                                    \
        }                                                                                                     \
        return 0;                                                                                             \
    }
KILN_NUMERIC_TYPES(DEFINE_COMPARE)

typedef int (*compare_fn)(const void *a, const void *b, int64_t n);

static compare_fn compare_kernel(kiln_dtype dtype)
{
#define COMPARE_CASE(DTYPE, T, LO, HI)                                                                        \
    case DTYPE: return compare_##T;
    switch (dtype) {
        KILN_NUMERIC_TYPES(COMPARE_CASE)
    default: return NULL;
    }
#undef COMPARE_CASE
}

typedef struct unique_job {
    item_layout l;
    const char *data;
    compare_fn compare;
    bool sorted;
} unique_job;

/* Compares items a and b: block by block over the outer dims, as numpy compares slices moved to the front. */
static int compare_items(const unique_job *job, int64_t a, int64_t b)
{
    size_t block = (size_t)job->l.inner * job->l.elem_size;
    for (int64_t o = 0; o < job->l.outer; o++) {
        int64_t base = o * job->l.len;
        int c = job->compare(job->data + (size_t)(base + a) * block, job->data + (size_t)(base + b) * block,
                             job->l.inner);
        if (c) return c;
    }
    return 0;
}

/* Stable merge sort of order[0..n) by item value; tmp holds n entries. */
static void sort_items(const unique_job *job, int64_t *order, int64_t *tmp, int64_t n)
{
    for (int64_t width = 1; width < n; width *= 2) {
        for (int64_t lo = 0; lo < n; lo += 2 * width) {
            int64_t mid = lo + width < n ? lo + width : n, hi = lo + 2 * width < n ? lo + 2 * width : n;
            int64_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi) tmp[k++] = compare_items(job, order[j], order[i]) < 0 ? order[j++] : order[i++];
            while (i < mid) tmp[k++] = order[i++];
            while (j < hi) tmp[k++] = order[j++];
        }
        memcpy(order, tmp, (size_t)n * sizeof *order);
    }
}

/* slot[i] = the output position of item i's group; *count = the number of groups. order and slot hold
 * len entries each. Output positions follow the sorted order, or (sorted=0) the first occurrences. */
static void unique_group(const unique_job *job, int64_t *order, int64_t *slot, int64_t *count)
{
    int64_t n = job->l.len;
    for (int64_t i = 0; i < n; i++) order[i] = i;
    sort_items(job, order, slot, n);
    /* a stable sort puts each group's first occurrence first: slot[i] = that leader */
    int64_t groups = 0, leader = -1;
    for (int64_t s = 0; s < n; s++) {
        if (s == 0 || compare_items(job, order[s - 1], order[s]) != 0) {
            leader = order[s];
            groups++;
        }
        slot[order[s]] = job->sorted ? groups - 1 : leader;
    }
    *count = groups;
    if (job->sorted) return;
    /* leaders numbered in order of appearance; order[] is free now and maps leader -> position */
    for (int64_t i = 0, next = 0; i < n; i++)
        if (slot[i] == i) order[i] = next++;
    for (int64_t i = 0; i < n; i++) slot[i] = order[slot[i]];
}

static kiln_status unique_prepare(const op_ctx *ctx, unique_job *job, int *axis)
{
    const unique_params *p = ctx->params;
    const kiln_tensor *x = ctx->inputs[0];
    KILN_TRY(resolve_axis(&p->axis, x, axis));
    job->l = layout_around(x, *axis, !p->axis.has_axis);
    job->data = x->data;
    job->compare = compare_kernel(x->dtype);
    job->sorted = p->sorted;
    return KILN_OK;
}

static kiln_status unique_shape(op_ctx *ctx)
{
    const unique_params *p = ctx->params;
    const kiln_tensor *x = ctx->inputs[0];
    unique_job job;
    int axis;
    KILN_TRY(unique_prepare(ctx, &job, &axis));
    int64_t n = job.l.len, count;
    int64_t *buffers = mem_alloc((size_t)(2 * n + 1) * sizeof *buffers);
    if (!buffers) return KILN_ERR_OUT_OF_MEMORY;
    unique_group(&job, buffers, buffers + n, &count);
    mem_free(buffers);
    if (p->axis.has_axis) {
        op_set_output_shape(ctx, 0, x->rank, x->dims);
        ctx->outputs[0]->dims[axis] = count;
    } else {
        op_set_output_shape(ctx, 0, 1, &count);
    }
    int64_t sizes[4] = {0, count, n, count};
    for (int k = 1; k < ctx->n_outputs; k++) op_set_output_shape(ctx, k, 1, &sizes[k]);
    ctx->scratch_bytes = (size_t)(2 * n) * sizeof(int64_t);
    return KILN_OK;
}

/* Writes Y and, when requested, indices (first occurrences), inverse_indices and counts. */
static kiln_status unique_eval(op_ctx *ctx)
{
    unique_job job;
    int axis;
    KILN_TRY(unique_prepare(ctx, &job, &axis));
    int64_t n = job.l.len, count;
    int64_t *first = ctx->scratch, *slot = first + n;
    unique_group(&job, first, slot, &count);
    kiln_tensor *indices = ctx->n_outputs > 1 ? ctx->outputs[1] : NULL;
    kiln_tensor *inverse = ctx->n_outputs > 2 ? ctx->outputs[2] : NULL;
    kiln_tensor *counts = ctx->n_outputs > 3 ? ctx->outputs[3] : NULL;
    for (int64_t p = 0; p < count; p++) first[p] = -1;
    if (counts) memset(counts->data, 0, (size_t)count * sizeof(int64_t));
    for (int64_t i = 0; i < n; i++) {
        int64_t p = slot[i];
        if (first[p] < 0) {
            first[p] = i;
            copy_item(&job.l, job.data, i, ctx->outputs[0]->data, p, count);
            if (indices) ((int64_t *)indices->data)[p] = i;
        }
        if (inverse) ((int64_t *)inverse->data)[i] = p;
        if (counts) ((int64_t *)counts->data)[p]++;
    }
    return KILN_OK;
}

const op_def ops_select[] = {
    {"", "Compress", 9, 18, sizeof(axis_params), compress_init, compress_shape, compress_eval,
     OP_DATA_DEPENDENT_SHAPE},
    {"", "NonZero", 9, 18, 0, nonzero_init, nonzero_shape, nonzero_eval, OP_DATA_DEPENDENT_SHAPE},
    {"", "Unique", 11, 18, sizeof(unique_params), unique_init, unique_shape, unique_eval, OP_DATA_DEPENDENT_SHAPE},
    OP_TABLE_END,
};
