/*
 * scatter.h — the update step ScatterElements and ScatterND share: fold updates into the output at offsets
 * computed (and validated) by each operator, with the `reduction` their opsets allow.
 */
#ifndef KILN_OPS_SCATTER_H
#define KILN_OPS_SCATTER_H

#include <stdint.h>

#include "ops/op.h"

enum { SCATTER_NONE, SCATTER_ADD, SCATTER_MUL, SCATTER_MAX, SCATTER_MIN };

/* Reads the `reduction` attribute (opset 16 on; max and min from 18), checks data (input 0, any dtype for
 * SCATTER_NONE, numeric otherwise), indices (input 1, int32/int64) and updates (input 2, data's dtype), and sets
 * output 0's dtype. */
kiln_status scatter_init_common(op_init_ctx *ctx, int *reduction);

/* out[offsets[e]] = reduction(out[offsets[e]], updates[e]) for e = 0..n-1 in order, so duplicate offsets
 * accumulate (or, without reduction, the last update wins). Offsets are in elements and already valid. */
void scatter_apply(kiln_dtype dtype, int reduction, void *out, const void *updates, const int64_t *offsets,
                   int64_t n);

#endif
