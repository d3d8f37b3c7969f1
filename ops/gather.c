/*
 * gather.c — Gather and GatherND.
 *
 * Both copy whole slices picked by indices: Gather slices of data[.., i, ..] along one axis, GatherND slices
 * addressed by a tuple of leading indices. Indices come from the data, so eval checks every one of them
 * before copying anything: an out-of-range index is a KILN_ERR_RUNTIME naming it, never a read outside the
 * tensor. The copies (one memcpy per slice) then run in parallel.
 */
#include <string.h>

#include "ops/op.h"

/* Grain for parallel slice copies: about 64 KiB per task. */
static int64_t slice_grain(int64_t slice_bytes) { return (64 * 1024) / (slice_bytes + 1) + 1; }

/* Element i of an int32 or int64 index tensor. */
static int64_t raw_index(const kiln_tensor *indices, int64_t i)
{
    if (indices->dtype == KILN_INT32) return ((const int32_t *)indices->data)[i];
    return ((const int64_t *)indices->data)[i];
}

/* Index i made non-negative when it counts from the end of a dim of size `dim` (callers have checked it is in
 * [-dim, dim)). */
static int64_t index_at(const kiln_tensor *indices, int64_t i, int64_t dim)
{
    int64_t v = raw_index(indices, i);
    return v < 0 ? v + dim : v;
}

static kiln_status check_index(const kiln_tensor *indices, int64_t i, int64_t dim, int axis)
{
    int64_t wrapped;
    return op_wrap_index(raw_index(indices, i), dim, axis, &wrapped);
}

/* ---- Gather ------------------------------------------------------------------------------------------ */

typedef struct gather_params {
    int64_t axis;
} gather_params;

static kiln_status gather_init(op_init_ctx *ctx)
{
    gather_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 2, 2, 1, 1));
    KILN_TRY(op_require_dtype(ctx, 0, DTYPES_ALL));
    KILN_TRY(op_require_dtype(ctx, 1, DTYPES_INDEX));
    KILN_TRY(attr_int(ctx->node, "axis", 0, &p->axis));
    ctx->output_dtypes[0] = ctx->input_dtypes[0];
    return KILN_OK;
}

static kiln_status gather_axis(const op_ctx *ctx, int *axis)
{
    const gather_params *p = ctx->params;
    if (!axis_normalize(p->axis, ctx->inputs[0]->rank, axis))
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "axis %lld is out of range for rank %d", (long long)p->axis,
                         ctx->inputs[0]->rank);
    return KILN_OK;
}

/* out is data with dims[axis] replaced by the indices' dims. */
static kiln_status gather_shape(op_ctx *ctx)
{
    const kiln_tensor *data = ctx->inputs[0], *indices = ctx->inputs[1];
    int axis;
    KILN_TRY(gather_axis(ctx, &axis));
    int rank = data->rank - 1 + indices->rank;
    if (rank > KILN_MAX_RANK)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "output rank %d exceeds kiln's maximum of %d", rank, KILN_MAX_RANK);
    int64_t dims[KILN_MAX_RANK];
    int r = 0;
    for (int d = 0; d < axis; d++) dims[r++] = data->dims[d];
    for (int d = 0; d < indices->rank; d++) dims[r++] = indices->dims[d];
    for (int d = axis + 1; d < data->rank; d++) dims[r++] = data->dims[d];
    op_set_output_shape(ctx, 0, rank, dims);
    return KILN_OK;
}

typedef struct gather_job {
    const kiln_tensor *indices;
    const char *data;
    char *out;
    int64_t n_indices, dim, slice_bytes;
} gather_job;

/* Items are (outer, index) pairs; each copies one slice. */
static void gather_slices(void *arg, int64_t begin, int64_t end)
{
    const gather_job *job = arg;
    for (int64_t item = begin; item < end; item++) {
        int64_t outer = item / job->n_indices, j = item % job->n_indices;
        int64_t row = outer * job->dim + index_at(job->indices, j, job->dim);
        memcpy(job->out + item * job->slice_bytes, job->data + row * job->slice_bytes, (size_t)job->slice_bytes);
    }
}

static kiln_status gather_eval(op_ctx *ctx)
{
    const kiln_tensor *data = ctx->inputs[0], *indices = ctx->inputs[1];
    int axis;
    KILN_TRY(gather_axis(ctx, &axis));
    gather_job job = {
        .indices = indices,
        .data = data->data,
        .out = ctx->outputs[0]->data,
        .n_indices = tensor_numel(indices),
        .dim = data->dims[axis],
        .slice_bytes = shape_span(data->dims, axis + 1, data->rank) * (int64_t)kiln_dtype_size(data->dtype),
    };
    for (int64_t j = 0; j < job.n_indices; j++) KILN_TRY(check_index(indices, j, job.dim, axis));
    int64_t items = shape_span(data->dims, 0, axis) * job.n_indices;
    if (job.slice_bytes > 0) parallel_for(ctx->parallel, items, slice_grain(job.slice_bytes), gather_slices, &job);
    return KILN_OK;
}

/* ---- GatherND ---------------------------------------------------------------------------------------- */

typedef struct gather_nd_params {
    int64_t batch_dims;
} gather_nd_params;

static kiln_status gather_nd_init(op_init_ctx *ctx)
{
    gather_nd_params *p = ctx->params;
    KILN_TRY(op_require_arity(ctx, 2, 2, 1, 1));
    KILN_TRY(op_require_dtype(ctx, 0, DTYPES_ALL));
    KILN_TRY(op_require_dtype(ctx, 1, DTYPES_INDEX));
    KILN_TRY(attr_int(ctx->node, "batch_dims", 0, &p->batch_dims));
    if (p->batch_dims < 0 || p->batch_dims >= KILN_MAX_RANK)
        return kiln_fail(KILN_ERR_MALFORMED, "batch_dims %lld is out of range", (long long)p->batch_dims);
    ctx->output_dtypes[0] = ctx->input_dtypes[0];
    return KILN_OK;
}

/* out is indices.dims[:-1] + data.dims[batch_dims + m:], m = indices.dims[-1] leading indices per tuple. */
static kiln_status gather_nd_shape(op_ctx *ctx)
{
    const gather_nd_params *p = ctx->params;
    const kiln_tensor *data = ctx->inputs[0], *indices = ctx->inputs[1];
    int b = (int)p->batch_dims;
    if (indices->rank < 1 || b >= indices->rank || b >= data->rank)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "batch_dims %d needs data and indices of higher rank (%d, %d)", b,
                         data->rank, indices->rank);
    int64_t m = indices->dims[indices->rank - 1];
    if (m > data->rank - b)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "index tuples of %lld values address a data tensor of rank %d",
                         (long long)m, data->rank);
    for (int d = 0; d < b; d++)
        if (data->dims[d] != indices->dims[d])
            return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "batch dim %d is %lld in data but %lld in indices", d,
                             (long long)data->dims[d], (long long)indices->dims[d]);
    int rank = indices->rank - 1 + data->rank - b - (int)m;
    if (rank > KILN_MAX_RANK)
        return kiln_fail(KILN_ERR_UNSUPPORTED, "output rank %d exceeds kiln's maximum of %d", rank, KILN_MAX_RANK);
    int64_t dims[KILN_MAX_RANK];
    int r = 0;
    for (int d = 0; d < indices->rank - 1; d++) dims[r++] = indices->dims[d];
    for (int d = b + (int)m; d < data->rank; d++) dims[r++] = data->dims[d];
    op_set_output_shape(ctx, 0, rank, dims);
    return KILN_OK;
}

typedef struct gather_nd_job {
    const kiln_tensor *indices;
    const int64_t *dims;   /* the m data dims the tuples index */
    const char *data;
    char *out;
    int m;
    int64_t tuples_per_batch, batch_slices, slice_bytes;
} gather_nd_job;

/* Slice number (within its batch) addressed by tuple t. */
static int64_t tuple_slice(const gather_nd_job *job, int64_t t)
{
    int64_t slice = 0;
    for (int k = 0; k < job->m; k++)
        slice = slice * job->dims[k] + index_at(job->indices, t * job->m + k, job->dims[k]);
    return slice;
}

static void gather_nd_slices(void *arg, int64_t begin, int64_t end)
{
    const gather_nd_job *job = arg;
    for (int64_t t = begin; t < end; t++) {
        int64_t slice = (t / job->tuples_per_batch) * job->batch_slices + tuple_slice(job, t);
        memcpy(job->out + t * job->slice_bytes, job->data + slice * job->slice_bytes, (size_t)job->slice_bytes);
    }
}

static kiln_status gather_nd_eval(op_ctx *ctx)
{
    const gather_nd_params *p = ctx->params;
    const kiln_tensor *data = ctx->inputs[0], *indices = ctx->inputs[1];
    int b = (int)p->batch_dims, m = (int)indices->dims[indices->rank - 1];
    gather_nd_job job = {
        .indices = indices,
        .dims = data->dims + b,
        .data = data->data,
        .out = ctx->outputs[0]->data,
        .m = m,
        .tuples_per_batch = shape_span(indices->dims, b, indices->rank - 1),
        .batch_slices = shape_span(data->dims, b, b + m),
        .slice_bytes = shape_span(data->dims, b + m, data->rank) * (int64_t)kiln_dtype_size(data->dtype),
    };
    int64_t tuples = shape_span(indices->dims, 0, indices->rank - 1);
    for (int64_t t = 0; t < tuples; t++)
        for (int k = 0; k < m; k++) KILN_TRY(check_index(indices, t * m + k, job.dims[k], b + k));
    if (job.slice_bytes > 0 && job.tuples_per_batch > 0)
        parallel_for(ctx->parallel, tuples, slice_grain(job.slice_bytes), gather_nd_slices, &job);
    return KILN_OK;
}

const op_def ops_gather[] = {
    {"", "Gather", 1, 18, sizeof(gather_params), gather_init, gather_shape, gather_eval, 0},
    {"", "GatherND", 11, 18, sizeof(gather_nd_params), gather_nd_init, gather_nd_shape, gather_nd_eval, 0},
    OP_TABLE_END,
};
