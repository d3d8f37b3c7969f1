/*
 * copy.h — the one N-d strided copy behind every data-movement operator.
 *
 * Transpose, Slice, Expand, Tile, Pad, Concat, Split and DepthToSpace all move elements from one strided view
 * of memory into another: they differ only in the dims and strides they describe. Each operator describes its
 * views and calls copy_strided, which merges dims that are contiguous in both views, copies contiguous runs
 * with memcpy, tiles transposes so that both sides stay in cache, and splits large copies over the session's
 * threads. Bytes are moved by element size only, so any dtype works.
 */
#ifndef KILN_OPS_COPY_H
#define KILN_OPS_COPY_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/parallel.h"
#include "kiln.h"

/* Tile describes each axis as (repeat, dim): twice the tensor rank. */
#define COPY_MAX_RANK (2 * KILN_MAX_RANK)

/* An N-d view: dims, and strides in elements (0 repeats an element, negative walks backwards). */
typedef struct copy_view {
    int rank;
    int64_t dims[COPY_MAX_RANK];
    int64_t src_strides[COPY_MAX_RANK];
    int64_t dst_strides[COPY_MAX_RANK];
} copy_view;

/* For every index i of view->dims: dst[sum i_d * dst_strides[d]] = src[sum i_d * src_strides[d]], where src and
 * dst point at element 0 of each view. The destination elements must be distinct and must not overlap the
 * source elements. `parallel` may be NULL. */
void copy_strided(const copy_view *view, size_t elem_size, const void *src, void *dst,
                  const parallel_runner *parallel);

/* The same copy, one element at a time: the reference copy_strided is tested against. */
void copy_strided_reference(const copy_view *view, size_t elem_size, const void *src, void *dst);

/* Copies one element; a constant-size memcpy compiles to a single load and store. */
static inline void copy_element(void *dst, const void *src, size_t elem_size)
{
    switch (elem_size) {
    case 1: memcpy(dst, src, 1); break;
    case 2: memcpy(dst, src, 2); break;
    case 4: memcpy(dst, src, 4); break;
    case 8: memcpy(dst, src, 8); break;
    default: memcpy(dst, src, elem_size);
    }
}

/* Fills n elements of elem_size bytes with the element at `value`. */
void copy_fill(void *dst, int64_t n, size_t elem_size, const void *value, const parallel_runner *parallel);

#endif
