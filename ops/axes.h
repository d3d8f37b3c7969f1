/*
 * axes.h — how the reducing operators (Reduce*, ArgMax/ArgMin, Softmax, TopK and the normalisations) see
 * the dims they work along.
 *
 * Operators with one axis view their input as [outer, n, inner]: `outer` independent blocks, each holding
 * `inner` independent rows of `n` elements spaced `inner` apart. Operators with a set of axes (Reduce*,
 * MeanVarianceNormalization) use a reduce_layout: the kept and the reduced dims, each merged into the fewest
 * strided loops (adjacent dims of the same kind fold into one, dims of size 1 vanish), so that reducing
 * axes {2,3} of NCHW is one contiguous run per output and reducing {0,2,3} is N runs per output.
 */
#ifndef KILN_OPS_AXES_H
#define KILN_OPS_AXES_H

#include <stdbool.h>
#include <stdint.h>

#include "kiln.h"

/* A tensor seen along one axis: element (o, j, i) is at offset (o * n + j) * inner + i. */
typedef struct axis_split {
    int64_t outer, n, inner;
} axis_split;

/* Offset of the first element of row `row` (0 <= row < outer * inner); its elements are `inner` apart. */
static inline int64_t axis_split_row(const axis_split *s, int64_t row)
{
    return row / s->inner * s->n * s->inner + row % s->inner;
}

/* Resolves a possibly negative axis against `rank`, failing with a message when it is out of range. */
kiln_status axis_resolve(int64_t axis, int rank, int *out);
/* The single-axis view: n = dims[axis]. */
axis_split axis_split_single(int axis, int rank, const int64_t *dims);
/* The view that flattens every dim from `axis` on into n (inner = 1): Softmax before opset 13, LayerNorm. */
axis_split axis_split_tail(int axis, int rank, const int64_t *dims);

/* Reads an axes input: a 1-D int64 tensor of at most KILN_MAX_RANK values. */
kiln_status axes_from_tensor(const kiln_tensor *t, int64_t *axes, int *n);
/* Sets mask[d] for each axis (possibly negative); fails on one out of range or repeated. */
kiln_status axes_to_mask(const int64_t *axes, int n, int rank, bool *mask);

/* The kept and reduced dims of a tensor, merged. Output element `out` (row-major over the kept dims, which is
 * the order of the reduced tensor whether or not it keeps its dims) gathers the input elements at
 * reduce_layout_base(out) + reduce_layout_run(r) + k * run_stride, for runs r < n_runs and k < run_length. */
typedef struct reduce_layout {
    int64_t n_out, n_reduced;
    int64_t n_runs, run_length, run_stride;
    int kept_rank, reduced_rank;
    int64_t kept_dims[KILN_MAX_RANK], kept_strides[KILN_MAX_RANK];
    int64_t reduced_dims[KILN_MAX_RANK], reduced_strides[KILN_MAX_RANK];
} reduce_layout;

void reduce_layout_init(reduce_layout *l, int rank, const int64_t *dims, const bool *reduced);
/* Input offset of output element `out`'s first reduced element. */
int64_t reduce_layout_base(const reduce_layout *l, int64_t out);
/* Offset of run r from the base. */
int64_t reduce_layout_run(const reduce_layout *l, int64_t r);

#endif
