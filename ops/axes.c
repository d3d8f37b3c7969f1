/*
 * axes.c — axis resolution and the merged kept/reduced layout shared by the reducing operators (see axes.h).
 *
 * Merging happens once per call, so the inner loops see at most a handful of strided dims whatever the
 * input's rank; offsets of outputs and runs are recomputed by division, which costs little beside the
 * run of elements each one leads to.
 */
#include <string.h>

#include "core/error.h"
#include "core/tensor.h"
#include "ops/axes.h"

kiln_status axis_resolve(int64_t axis, int rank, int *out)
{
    if (!axis_normalize(axis, rank, out))
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "axis %lld is out of range for rank %d", (long long)axis, rank);
    return KILN_OK;
}

axis_split axis_split_single(int axis, int rank, const int64_t *dims)
{
    return (axis_split){shape_span(dims, 0, axis), dims[axis], shape_span(dims, axis + 1, rank)};
}

axis_split axis_split_tail(int axis, int rank, const int64_t *dims)
{
    return (axis_split){shape_span(dims, 0, axis), shape_span(dims, axis, rank), 1};
}

kiln_status axes_from_tensor(const kiln_tensor *t, int64_t *axes, int *n)
{
    if (t->dtype != KILN_INT64 || t->rank != 1 || t->dims[0] > KILN_MAX_RANK)
        return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "axes must be a 1-D int64 tensor of at most %d values",
                         KILN_MAX_RANK);
    *n = (int)t->dims[0];
    if (*n > 0) memcpy(axes, t->data, (size_t)*n * sizeof *axes);
    return KILN_OK;
}

kiln_status axes_to_mask(const int64_t *axes, int n, int rank, bool *mask)
{
    for (int d = 0; d < rank; d++) mask[d] = false;
    for (int i = 0; i < n; i++) {
        int axis;
        KILN_TRY(axis_resolve(axes[i], rank, &axis));
        if (mask[axis]) return kiln_fail(KILN_ERR_INVALID_ARGUMENT, "axis %lld is repeated", (long long)axes[i]);
        mask[axis] = true;
    }
    return KILN_OK;
}

/* Appends dim d to one side of the layout, folding it into the previous dim of that side when they were
 * adjacent in the input (then the pair is one contiguous loop). */
static void layout_append(int64_t *dims, int64_t *strides, int *rank, bool adjacent, int64_t dim, int64_t stride)
{
    if (adjacent) {
        dims[*rank - 1] *= dim;
        strides[*rank - 1] = stride;
    } else {
        dims[*rank] = dim;
        strides[*rank] = stride;
        (*rank)++;
    }
}

void reduce_layout_init(reduce_layout *l, int rank, const int64_t *dims, const bool *reduced)
{
    memset(l, 0, sizeof *l);
    int64_t strides[KILN_MAX_RANK];
    shape_strides(rank, dims, strides);
    int last = -1; /* kind of the previous dim that was not 1: 0 kept, 1 reduced */
    for (int d = 0; d < rank; d++) {
        if (dims[d] == 1) continue;
        if (reduced[d])
            layout_append(l->reduced_dims, l->reduced_strides, &l->reduced_rank, last == 1, dims[d], strides[d]);
        else
            layout_append(l->kept_dims, l->kept_strides, &l->kept_rank, last == 0, dims[d], strides[d]);
        last = reduced[d] ? 1 : 0;
    }
    l->n_out = shape_span(l->kept_dims, 0, l->kept_rank);
    l->n_reduced = shape_span(l->reduced_dims, 0, l->reduced_rank);
    l->run_length = l->reduced_rank ? l->reduced_dims[l->reduced_rank - 1] : 1;
    l->run_stride = l->reduced_rank ? l->reduced_strides[l->reduced_rank - 1] : 1;
    l->n_runs = l->n_reduced ? l->n_reduced / l->run_length : 0;
}

int64_t reduce_layout_base(const reduce_layout *l, int64_t out)
{
    int64_t offset = 0;
    for (int d = l->kept_rank - 1; d >= 0; d--) {
        offset += out % l->kept_dims[d] * l->kept_strides[d];
        out /= l->kept_dims[d];
    }
    return offset;
}

int64_t reduce_layout_run(const reduce_layout *l, int64_t r)
{
    int64_t offset = 0;
    for (int d = l->reduced_rank - 2; d >= 0; d--) {
        offset += r % l->reduced_dims[d] * l->reduced_strides[d];
        r /= l->reduced_dims[d];
    }
    return offset;
}
